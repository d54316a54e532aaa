#!/usr/bin/env python3
"""Resident memory of a store node as deployed (issue 18), beside one without sync, same run.

Usage: examples/rss_deployed.py STORENODE_BIN [--items 50000] [--history 1000000] [--idle 20]
           [--node-bin BIN] [--online] [--lines 100] [--keep DIR] [--before-bin BIN] [--heaptrack OUT]
           [--heaptrack-run OUT]

Starts Mosquitto (/usr/sbin/mosquitto) on a free port, `storenode hq`, and two nodes of the
same binary: `sync on` ([sync] towards the broker; the catalog reaches it from HQ) and
`sync off` (the same catalog imported locally with `storenode catalog import`). Then:

1. both ready, empty;
2. HQ publishes the catalog (`storenode hq catalog import FILE`); the sync-on node is waited
   for until it sells the last SKU at the published price (the projection writes SKUs in
   order), then both idle;
3. `--history` movements are written to both nodes as goods receipts of 100 lines (one
   commit and, with sync, one automerge change each) while the sync-on node is cut off
   from the broker (a relay in this script); it reconnects, HQ acknowledges everything,
   then both nodes are restarted and idle once their sync documents are loaded.

`--before-bin BIN` adds a third node, sync on, of BIN (the build before a change), cut off
and restored with the first: before and after in the same run. `--node-bin` runs both nodes on another binary (the box's, built without the default
features: it has no `storenode hq`, so HQ stays on STORENODE_BIN). `--online` writes the
history with the sync-on node connected, as a store on line does: each publish of the node
is then its own stock change (one per receipt or per few receipts, as fast as the publisher
goes), where offline the whole backlog is netted per SKU into a few changes. `--lines` is
the lines per receipt (one commit each). `--keep DIR` leaves both nodes' data directories
in DIR, stopped cleanly (for examples/cold_start.py).

After each step it prints VmRSS and VmHWM (/proc/PID/status) and smaps_rollup's anonymous
and file-backed parts of both nodes, and for a sync-on node how far HQ has acknowledged its
EPCIS events (one per movement: a node still sending them after a long offline history is
not idle yet). The idle periods of step 3 are also looked at once a second (anonymous
memory: min, median, max), since a node still catching up rises and falls. `--heaptrack
OUT` restarts the sync-on node under heaptrack and kills it after the last look
(`heaptrack_print OUT.zst`: "leaked" is what it held then). Nothing is asserted.
`--history 0` skips step 3.
"""
import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

MOSQUITTO = "/usr/sbin/mosquitto"
TOKEN = "rss-token-0123456789abcdef"
HQ_TOKEN = "rss-hq-token-0123456789abcdef"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, limit=20):
    end = time.time() + limit
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on {port}")


class Link:
    """A TCP relay between the sync-on node and the broker that can be cut, as a store's
    uplink is: the history is written offline, then goes to HQ as bundles on reconnect
    (live, one change per message, HQ's ingest of 10,000 changes would outlast the run)."""

    def __init__(self, target):
        self.target, self.up, self.conns = target, True, []
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self):
        while True:
            client, _ = self.server.accept()
            if not self.up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                client.close()
                continue
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self.pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def pipe(a, b):
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        for s in (a, b):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self):
        self.up = False
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.conns = []

    def restore(self):
        self.up = True


def gtin(i):
    body = f"20{i:010}"
    total = sum(int(d) * (3 if k % 2 == 0 else 1) for k, d in enumerate(reversed(body)))
    return body + str((10 - total % 10) % 10)


def sku(i):
    return f"SKU{i:06}"


def catalog_csv(path, items, price):
    with open(path, "w") as f:
        f.write("sku,name,price_minor,currency,tax_class,variable_measure,gtins\n")
        for i in range(items):
            f.write(f"{sku(i)},Item {i},{price},EUR,standard,false,{gtin(i)}\n")


def proc_status(pid):
    out = {}
    for line in open(f"/proc/{pid}/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "Threads"):
            out[key] = int(value.split()[0])
    for line in open(f"/proc/{pid}/smaps_rollup"):
        key, _, value = line.partition(":")
        if key in ("Anonymous", "Rss"):
            out["smaps_" + key] = int(value.split()[0])
    out["file"] = out["smaps_Rss"] - out["smaps_Anonymous"]
    return out


class Node:
    def __init__(self, bin_, dir_, name, broker_port, catalog_file, wrap=()):
        self.bin, self.name = bin_, name
        self.dir = os.path.join(dir_, name)
        os.makedirs(self.dir)
        self.port = free_port()
        sync = f'[sync]\nbroker = "mqtt://127.0.0.1:{broker_port}"\n' if broker_port else ""
        self.config = os.path.join(self.dir, "node.toml")
        with open(self.config, "w") as f:
            f.write(
                f'[node]\ntenant = "rss"\nstore_id = "{name.replace(" ", "")}"\n'
                f'data_dir = "{self.dir}"\n[log]\nlevel = "warn"\nformat = "json"\n'
                f'[api]\nlisten = "127.0.0.1:{self.port}"\n'
                f"rate_per_terminal = 1000000\nburst_per_terminal = 1000000\n"
                f'[[api.terminals]]\nid = "rss"\ntoken = "{TOKEN}"\n{sync}'
            )
        self.sync = bool(broker_port)
        # A command the node runs under from its next start on (e.g. heaptrack).
        self.wrap = list(wrap)
        if catalog_file:
            subprocess.run(
                [bin_, "--config", self.config, "catalog", "import", catalog_file],
                check=True, stdout=subprocess.DEVNULL,
            )
        self.start()

    def start(self):
        self.proc = subprocess.Popen(
            self.wrap + [self.bin, "--config", self.config, "run"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.dir, "log"), "a"),
        )
        end = time.time() + 120
        while time.time() < end:
            try:
                status, _ = self.request("GET", "/readyz")
                if status == 200 and (not self.sync or self.metric("storenode_sync_documents_loaded") == 1):
                    return
            except OSError:
                pass
            time.sleep(0.05)
        sys.exit(f"{self.name} not ready")

    @property
    def pid(self):
        """The node's process: under a wrapper, the wrapper's descendant running the binary."""
        if not self.wrap:
            return self.proc.pid
        exe = os.path.realpath(self.bin)
        todo = [self.proc.pid]
        while todo:
            pid = todo.pop()
            try:
                if os.path.realpath(f"/proc/{pid}/exe") == exe:
                    return pid
                for task in os.listdir(f"/proc/{pid}/task"):
                    todo += [int(c) for c in open(f"/proc/{pid}/task/{task}/children").read().split()]
            except OSError:
                pass
        sys.exit(f"{self.name}: no process of {exe} under {self.wrap[0]}")

    def stop(self):
        os.kill(self.pid, signal.SIGTERM)
        self.proc.wait(timeout=60)

    def request(self, method, path, body=None, key=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        if key:
            headers["Idempotency-Key"] = key
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        reply = conn.getresponse()
        data = reply.read()
        conn.close()
        return reply.status, data

    def metric(self, name):
        _, text = self.request("GET", "/metrics")
        for line in text.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return None

    def wait_price(self, sku_, price, limit=900):
        end = time.time() + limit
        while time.time() < end:
            status, body = self.request("GET", f"/v1/items/{sku_}")
            if status == 200 and json.loads(body).get("item", {}).get("price_minor") == price:
                return
            time.sleep(0.2)
        sys.exit(f"{self.name}: {sku_} not at {price} after {limit} s")


def epcis_state(node):
    """EPCIS events HQ acknowledged / logged by a sync-on node (read-only, while it runs):
    a node still sending its offline history's events is not idle."""
    import sqlite3
    db = sqlite3.connect(f"file:{os.path.join(node.dir, 'store.db')}?mode=ro", uri=True)
    acked, logged = db.execute(
        "SELECT (SELECT COALESCE(MAX(seq), 0) FROM epcis_ack), (SELECT COALESCE(MAX(seq), 0) FROM epcis_event)"
    ).fetchone()
    db.close()
    return f"  EPCIS acked {acked}/{logged}"


def report(step, nodes):
    for node in nodes:
        s = proc_status(node.pid)
        print(
            f"{step:<44} {node.name:<9} VmRSS {s['VmRSS'] / 1024:6.1f} MiB  VmHWM {s['VmHWM'] / 1024:6.1f} MiB"
            f"  anon {s['smaps_Anonymous'] / 1024:6.1f}  file {s['file'] / 1024:5.1f}  threads {s['Threads']}"
            + (epcis_state(node) if node.sync else ""),
            flush=True,
        )


def idle(nodes, seconds):
    """Waits `seconds`, looking at the nodes' anonymous memory once a second: a node that
    is still catching up (EPCIS events) rises and falls with its rounds and the 30 s trim
    of free heap, so one look can land on a peak or a trough."""
    seen = {node.name: [] for node in nodes}
    end = time.time() + seconds
    while time.time() < end:
        for node in nodes:
            seen[node.name].append(proc_status(node.pid)["smaps_Anonymous"] / 1024)
        time.sleep(1)
    return seen


def spread(step, seen):
    for name, values in seen.items():
        values = sorted(values)
        if values:
            print(f"{step:<44} {name:<9} anon over the idle, once a second: min {values[0]:.1f}"
                  f"  median {values[len(values) // 2]:.1f}  max {values[-1]:.1f} MiB ({len(values)} looks)")


def history(node, movements, skus, lines=100):
    """`movements` receipt lines, `lines` per receipt, over `skus` SKUs, on one keep-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", node.port, timeout=60)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    n = 0
    for r in range(movements // lines):
        body = [{"sku": sku((n + k) % skus), "quantity": 1 + k % 5} for k in range(lines)]
        n += lines
        headers["Idempotency-Key"] = f"h{r}"
        conn.request("POST", "/v1/receipts", body=json.dumps({"lines": body}), headers=headers)
        reply = conn.getresponse()
        reply.read()
        if reply.status not in (200, 201):
            sys.exit(f"{node.name}: receipt answered {reply.status}")
    conn.close()


def stock_doc_shape(node):
    """Changes and bytes of the sync-on node's stored stock document (read-only, while it runs)."""
    import sqlite3
    db = sqlite3.connect(f"file:{os.path.join(node.dir, 'store.db')}?mode=ro", uri=True)
    changes, logged = db.execute(
        "SELECT count(*), COALESCE(sum(length(bytes)), 0) FROM sync_change WHERE doc_key LIKE '%/stock'"
    ).fetchone()
    saved = db.execute(
        "SELECT COALESCE(sum(length(saved)), 0) FROM sync_doc WHERE doc_key LIKE '%/stock'"
    ).fetchone()[0]
    db.close()
    return f"{changes} changes logged ({logged // 1024} KiB) since a save of {saved // 1024} KiB"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("bin")
    p.add_argument("--items", type=int, default=50_000)
    p.add_argument("--history", type=int, default=1_000_000)
    p.add_argument("--skus", type=int, default=10_000)
    p.add_argument("--idle", type=int, default=20)
    p.add_argument("--node-bin")
    p.add_argument("--online", action="store_true")
    p.add_argument("--lines", type=int, default=100)
    p.add_argument("--keep")
    p.add_argument("--heaptrack-run", metavar="OUT", help="run the sync-on node under heaptrack "
                   "from its first start and kill it (SIGKILL) after the look once the history is "
                   "written, so 'leaked' is what a long-running node held then; stops there")
    p.add_argument("--heaptrack", metavar="OUT", help="restart the sync-on node under heaptrack "
                   "(file OUT.zst) and kill it (SIGKILL) after the last look, so heaptrack's "
                   "'leaked' is what it held then (heaptrack_print OUT.zst)")
    p.add_argument("--before-bin", help="a third node, sync on, of this binary (the baseline "
                   "of a change, measured in the same run)")
    a = p.parse_args()
    node_bin = a.node_bin or a.bin
    work = tempfile.TemporaryDirectory(prefix="rss-deployed-")
    d = work.name
    procs = []
    try:
        broker = free_port()
        conf = os.path.join(d, "mosquitto.conf")
        with open(conf, "w") as f:
            f.write(f"listener {broker} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    "max_packet_size 1048576\nlog_dest none\n")
        procs.append(subprocess.Popen([MOSQUITTO, "-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_port(broker)
        hq_port = free_port()
        hq_dir = os.path.join(d, "hq")
        os.makedirs(hq_dir)
        hq_conf = os.path.join(hq_dir, "hq.toml")
        with open(hq_conf, "w") as f:
            f.write(f'[hq]\ntenant = "rss"\ndata_dir = "{hq_dir}"\nlisten = "127.0.0.1:{hq_port}"\n'
                    f'token = "{HQ_TOKEN}"\nbroker = "mqtt://127.0.0.1:{broker}"\n')
        env = dict(os.environ, RUST_LOG="warn")
        procs.append(subprocess.Popen([a.bin, "--config", hq_conf, "hq"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=open(os.path.join(hq_dir, "log"), "w")))
        wait_port(hq_port)
        catalog = os.path.join(d, "catalog.csv")
        catalog_csv(catalog, a.items, 100)
        print(f"nodes {node_bin} (HQ {a.bin}): {a.items} catalog items, {a.history} movements of "
              f"history {'online' if a.online else 'offline'} in receipts of {a.lines} lines, idle {a.idle} s\n")
        link = Link(broker)
        on = Node(node_bin, d, "sync on", link.port, None,
                  ["heaptrack", "-o", a.heaptrack_run] if a.heaptrack_run else ())
        off = Node(node_bin, d, "sync off", None, catalog)
        nodes = [on, off]
        syncing = [on]
        if a.before_bin:
            syncing.append(Node(a.before_bin, d, "before on", link.port, None))
            nodes.append(syncing[-1])
        time.sleep(a.idle)
        report("ready, empty catalog (sync off: imported)", nodes)
        t = time.time()
        subprocess.run([a.bin, "--config", hq_conf, "hq", "catalog", "import", catalog], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for node in syncing:
            node.wait_price(sku(a.items - 1), 100)
        print(f"(HQ's {a.items} items sellable at the sync-on node after {time.time() - t:.1f} s)")
        time.sleep(a.idle)
        report(f"HQ published {a.items} items, idle", nodes)
        if a.history:
            t = time.time()
            if not a.online:
                link.cut()
            for node in nodes:
                history(node, a.history, min(a.skus, a.items), a.lines)
            print(f"({a.history} movements written to each node in {time.time() - t:.0f} s, "
                  f"sync-on node {'online' if a.online else 'offline'})")
            link.restore()
            t = time.time()
            end = time.time() + 1800
            while any(n.metric("storenode_sync_outbox_length") not in (0, None) for n in syncing) \
                    and time.time() < end:
                time.sleep(1)
            print(f"(HQ acknowledged them after {time.time() - t:.0f} s)")
            seen = idle(nodes, a.idle)
            report(f"{a.history} movements written, idle", nodes)
            spread(f"{a.history} movements written, idle", seen)
            if a.heaptrack_run:
                os.kill(on.pid, signal.SIGKILL)
                on.proc.wait(timeout=600)
                nodes.remove(on)
                print(f"(heaptrack of the sync-on node's whole run: {a.heaptrack_run}*)")
                return
            for node in nodes:
                node.stop()
                if node is on and a.heaptrack:
                    node.wrap = ["heaptrack", "-o", a.heaptrack]
                node.start()
            seen = idle(nodes, a.idle)
            report(f"restarted with {a.history} movements, idle", nodes)
            # The catalog document, if HQ's messages after the restart made the node read it,
            # is dropped 10 s after HQ's last message: a second look tells it from the rest.
            later = idle(nodes, a.idle)
            report(f"restarted, idle {2 * a.idle} s", nodes)
            spread(f"restarted, idle {2 * a.idle} s", {k: v + later[k] for k, v in seen.items()})
            print(f"(stock document: {stock_doc_shape(on)})")
            if a.heaptrack:
                os.kill(on.pid, signal.SIGKILL)
                on.proc.wait(timeout=600)
                nodes.remove(on)
                print(f"(heaptrack of the restarted sync-on node: {a.heaptrack}*)")
        if a.keep:
            for node in nodes:
                node.stop()
            for node in nodes:
                dest = os.path.join(a.keep, node.name.replace(" ", "-"))
                subprocess.run(["cp", "-a", node.dir, dest], check=True)
            nodes = []
            print(f"(data directories kept in {a.keep})")
    finally:
        for node in [n for n in locals().get("nodes", [])]:
            node.proc.kill()
        for proc in procs:
            proc.kill()
        work.cleanup()


if __name__ == "__main__":
    main()
