// cr-sqlite beside storenode (issue 20, item 4). A benchmark, not a test: run by
// `cargo run --release --example bench_sync -- --peer` (which writes the plan and prints
// the comparison), or alone:
//
//   node examples/peer_crsqlite/bench.mjs --plan PLAN.csv --per-commit 100 --dir /tmp/x
//
// The model is storenode's: per-writer totals, one row per (writer, SKU) in a CRR table.
// PLAN.csv holds one movement per line, `sku_index,delta`, exactly the movements
// bench_sync makes at the store node (line 1 is synced before the cut, the rest are made
// "offline"). Durability as storenode's: WAL, synchronous=FULL, one transaction per
// commit of `--per-commit` movements. Prints one JSON object on stdout.
//
// Shipped: every row change since the cut (`crsql_changes WHERE db_version > cut AND
// site_id = crsql_site_id()`), encoded compactly (table, column and site id once; per
// row the packed primary key, the value and the clocks as varints) and DEFLATE-compressed
// (zlib level 6, the compression automerge applies to its columns). Merge: a second
// database (another site, as HQ) inserts them into its `crsql_changes` in one transaction.

import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import Database from "better-sqlite3";
import { extensionPath } from "@vlcn.io/crsqlite";

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const planPath = arg("--plan");
const perCommit = Number(arg("--per-commit", "100"));
const dir = arg("--dir", fs.mkdtempSync("/tmp/peer-crsqlite-"));
if (!planPath || !(perCommit > 0)) {
  console.error("usage: bench.mjs --plan PLAN.csv --per-commit N [--dir DIR]");
  process.exit(2);
}

const plan = fs
  .readFileSync(planPath, "utf8")
  .split("\n")
  .filter((l) => l.length > 0)
  .map((l) => {
    const [sku, delta] = l.split(",");
    return { sku: `SKU-${String(sku).padStart(5, "0")}`, delta: Number(delta) };
  });

function open(file) {
  const db = new Database(file);
  db.loadExtension(extensionPath);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.exec(`CREATE TABLE IF NOT EXISTS stock (
             writer TEXT NOT NULL, sku TEXT NOT NULL, total INTEGER NOT NULL DEFAULT 0,
             PRIMARY KEY (writer, sku));
           SELECT crsql_as_crr('stock');`);
  return db;
}

const store = open(path.join(dir, "store.db"));
const writer = "s1.lane1";
const upsert = store.prepare(
  `INSERT INTO stock (writer, sku, total) VALUES (?, ?, ?)
   ON CONFLICT (writer, sku) DO UPDATE SET total = total + excluded.total`,
);
const commit = store.transaction((chunk) => {
  for (const m of chunk) upsert.run(writer, m.sku, m.delta);
});

// Movement 0 is synced before the cut, as at the store node.
commit(plan.slice(0, 1));
const cut = store.prepare("SELECT crsql_db_version() AS v").get().v;

const offline = plan.slice(1);
const times = [];
const began = process.hrtime.bigint();
for (let i = 0; i < offline.length; i += perCommit) {
  const t0 = process.hrtime.bigint();
  commit(offline.slice(i, i + perCommit));
  times.push(Number(process.hrtime.bigint() - t0) / 1000);
}
const localTotalUs = Number(process.hrtime.bigint() - began) / 1000;

// What a sync ships from the cut on.
const t0 = process.hrtime.bigint();
const changes = store
  .prepare(
    `SELECT "table", pk, cid, val, col_version, db_version, site_id, cl, seq
     FROM crsql_changes WHERE db_version > ? AND site_id = crsql_site_id()`,
  )
  .raw()
  .all(cut);
const raw = encode(changes);
const compressed = zlib.deflateRawSync(raw, { level: 6 });
const extractMs = Number(process.hrtime.bigint() - t0) / 1e6;

// Merge into a second database (HQ's copy), from the compressed bytes.
const hq = open(path.join(dir, "hq.db"));
const t1 = process.hrtime.bigint();
const rows = decode(zlib.inflateRawSync(compressed));
const insert = hq.prepare(
  `INSERT INTO crsql_changes ("table", pk, cid, val, col_version, db_version, site_id, cl, seq)
   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
);
hq.transaction(() => {
  for (const r of rows) insert.run(r);
})();
const mergeMs = Number(process.hrtime.bigint() - t1) / 1e6;

// The merged totals must be the store's (from the cut on; movement 0 is not shipped, so
// compare the SKUs the shipped rows name).
const atStore = new Map(
  store.prepare("SELECT sku, total FROM stock WHERE writer = ?").raw().all(writer),
);
let mismatches = 0;
for (const [sku, total] of hq.prepare("SELECT sku, total FROM stock").raw().all()) {
  if (atStore.get(sku) !== total) mismatches += 1;
}

for (const db of [store, hq]) {
  db.prepare("SELECT crsql_finalize()").get();
  db.close();
}

function medianUs(list) {
  const sorted = [...list].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)] : 0;
}
const tenth = Math.max(1, Math.floor(times.length / 10));
console.log(
  JSON.stringify({
    peer: "cr-sqlite",
    movements: offline.length,
    commits: times.length,
    per_commit: perCommit,
    local_us_per_movement_mean: localTotalUs / offline.length,
    local_us_first: medianUs(times.slice(0, tenth)) / perCommit,
    local_us_last: medianUs(times.slice(times.length - tenth)) / perCommit,
    row_changes: changes.length,
    bytes_raw: raw.length,
    bytes_compressed: compressed.length,
    extract_ms: extractMs,
    merge_ms: mergeMs,
    merged_rows: rows.length,
    mismatches,
  }),
);

// --- the compact change encoding -------------------------------------------------------

function varint(out, n) {
  let v = BigInt(n);
  while (v >= 0x80n) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
}

function zigzag(n) {
  const v = BigInt(n);
  return v >= 0n ? v << 1n : (-v << 1n) - 1n;
}

function unzigzag(v) {
  return v & 1n ? -((v + 1n) >> 1n) : v >> 1n;
}

function bytes(out, buf) {
  varint(out, buf.length);
  for (const b of buf) out.push(b);
}

// Header: table, column, site id (one writer ships its own rows). Per row: pk, val
// (zigzag), col_version, db_version, cl, seq.
function encode(list) {
  const out = [];
  varint(out, list.length);
  if (list.length === 0) return Buffer.from(out);
  const [table, , cid, , , , site] = list[0];
  for (const r of list) {
    if (r[0] !== table || r[2] !== cid || !Buffer.from(r[6]).equals(Buffer.from(site))) {
      throw new Error("one table, one column and one site expected");
    }
  }
  bytes(out, Buffer.from(table));
  bytes(out, Buffer.from(cid));
  bytes(out, Buffer.from(site));
  for (const [, pk, , val, colVersion, dbVersion, , cl, seq] of list) {
    bytes(out, Buffer.from(pk));
    varint(out, zigzag(val));
    varint(out, colVersion);
    varint(out, dbVersion);
    varint(out, cl);
    varint(out, seq);
  }
  return Buffer.from(out);
}

function decode(buf) {
  let at = 0;
  const readVarint = () => {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      const b = buf[at++];
      v |= BigInt(b & 0x7f) << shift;
      if (b < 0x80) return v;
      shift += 7n;
    }
  };
  const readBytes = () => {
    const n = Number(readVarint());
    const slice = buf.subarray(at, at + n);
    at += n;
    return slice;
  };
  const count = Number(readVarint());
  if (count === 0) return [];
  const table = readBytes().toString();
  const cid = readBytes().toString();
  const site = Buffer.from(readBytes());
  const out = [];
  for (let i = 0; i < count; i++) {
    const pk = Buffer.from(readBytes());
    const val = Number(unzigzag(readVarint()));
    const colVersion = Number(readVarint());
    const dbVersion = Number(readVarint());
    const cl = Number(readVarint());
    const seq = Number(readVarint());
    out.push([table, pk, cid, val, colVersion, dbVersion, site, cl, seq]);
  }
  return out;
}
