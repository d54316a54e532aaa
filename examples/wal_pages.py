#!/usr/bin/env python3
"""Where a sale's disk writes go (docs/benchmarks.md, "Where a sale's bytes go"): runs the daemon
with 10,000 items in stock, makes sales, reads /proc/PID/io write_bytes, then maps the WAL
frames of the last commits to their tables and indexes with SQLite's dbstat.
Usage: examples/wal_pages.py STORENODE_BIN [--sync] [--sales N] [--dir DIR]   (--sync needs mosquitto)
With --dir, the node's data lives under DIR, and the sectors written to DIR's block device are
counted too: that includes what the file system writes for the node (its journal), which
/proc/PID/io does not. Put DIR on a file system of its own (a loop device) for a clean count."""
import http.client, json, os, random, shutil, socket, sqlite3, struct, subprocess, sys, tempfile, time
BIN = sys.argv[1]; SYNC = '--sync' in sys.argv
N = int(sys.argv[sys.argv.index('--sales')+1]) if '--sales' in sys.argv else 40
ITEMS = 10000
def free_port():
    s = socket.socket(); s.bind(('127.0.0.1', 0)); p = s.getsockname()[1]; s.close(); return p
BASE = sys.argv[sys.argv.index('--dir')+1] if '--dir' in sys.argv else '/var/tmp'
d = tempfile.mkdtemp(prefix='pages-', dir=BASE)
def device_sectors():
    st = os.stat(d).st_dev
    return int(open(f'/sys/dev/block/{os.major(st)}:{os.minor(st)}/stat').read().split()[6])
procs = []
sync = ''
if SYNC:
    bp = free_port()
    open(f'{d}/m.conf','w').write(f'listener {bp} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest none\n')
    procs.append(subprocess.Popen(['/usr/sbin/mosquitto','-c',f'{d}/m.conf']))
    sync = f'[sync]\nbroker = "mqtt://127.0.0.1:{bp}"\n'
port = free_port()
TOKEN='bench-token-0123456789abcdef'
open(f'{d}/c.toml','w').write(f'[node]\ntenant = "bench"\nstore_id = "bench"\ndata_dir = "{d}"\n[log]\nlevel = "warn"\n[api]\nlisten = "127.0.0.1:{port}"\nrate_per_terminal = 1000000\nburst_per_terminal = 1000000\n[[api.terminals]]\nid = "bench"\ntoken = "{TOKEN}"\n{sync}')
def gtin(i):
    body = f'20{i:010d}'
    s = sum(int(c)*(3 if k%2==0 else 1) for k,c in enumerate(reversed(body)))
    return body + str((10 - s % 10) % 10)
with open(f'{d}/cat.csv','w') as f:
    f.write('sku,name,price_minor,currency,tax_class,variable_measure,gtins\n')
    for i in range(ITEMS): f.write(f'SKU-{i:06d},Item {i},100,EUR,standard,false,{gtin(i)}\n')
subprocess.run([BIN,'--config',f'{d}/c.toml','catalog','import',f'{d}/cat.csv'],check=True,stdout=subprocess.DEVNULL)
p = subprocess.Popen([BIN,'--config',f'{d}/c.toml','run'], stderr=open(f'{d}/err.log','w'))
procs.append(p)
for _ in range(400):
    try:
        c = http.client.HTTPConnection('127.0.0.1', port); c.request('GET','/readyz'); r=c.getresponse(); r.read()
        if r.status == 200: break
    except OSError: pass
    time.sleep(0.05)
conn = http.client.HTTPConnection('127.0.0.1', port)
rng = random.Random(1)
def sale(k):
    lines = [{'sku': f'SKU-{rng.randrange(ITEMS):06d}', 'quantity': rng.randint(1,5)} for _ in range(3)]
    body = json.dumps({'lines': lines, 'payments': [{'method':'cash','amount_minor':1000000}]})
    conn.request('POST','/v1/sales', body, {'Authorization': f'Bearer {TOKEN}', 'Idempotency-Key': f'k-{k}', 'Content-Type':'application/json'})
    r = conn.getresponse(); r.read(); assert r.status == 201, r.status
def post(path, body, key):
    conn.request('POST', path, json.dumps(body), {'Authorization': f'Bearer {TOKEN}', 'Idempotency-Key': key, 'Content-Type':'application/json'})
    r = conn.getresponse(); r.read(); assert r.status in (200, 201), (r.status, path)
# A store has its goods in stock: received in deliveries of 500 lines.
for start in range(0, ITEMS, 500):
    post('/v1/receipts', {'reference': f'D{start}', 'lines': [{'sku': f'SKU-{i:06d}', 'quantity': 1000} for i in range(start, min(ITEMS, start+500))]}, f'r-{start}')
for k in range(10): sale(k)   # warm up
time.sleep(1.5)
io = lambda: int([l for l in open(f'/proc/{p.pid}/io') if l.startswith('write_bytes')][0].split()[1])
wal = f'{d}/store.db-wal'
# checkpoint so the WAL restarts: use a separate connection (passive is fine)
sqlite3.connect(f'{d}/store.db').execute('PRAGMA wal_checkpoint(TRUNCATE)').fetchall()
time.sleep(0.5)
os.sync()
b0 = io(); s0 = device_sectors(); t0=time.time()
for k in range(N): sale(1000+k); time.sleep(0.02)
time.sleep(1.0)
b1 = io(); os.sync(); s1 = device_sectors()
os.kill(p.pid, 19)  # SIGSTOP: freeze the WAL
shutil.copy(f'{d}/store.db', f'{d}/copy.db'); shutil.copy(wal, f'{d}/copy.db-wal')
os.kill(p.pid, 18)
print(f'write_bytes per sale: {(b1-b0)/N:.0f} ({N} sales, sync={SYNC})')
print(f'block device bytes per sale: {(s1-s0)*512/N:.0f} (everything written to {BASE}\'s device meanwhile)')
data = open(f'{d}/copy.db-wal','rb').read()
psz = struct.unpack('>I', data[8:12])[0]
frames = []
off = 32
salts = data[16:24]
# The WAL file keeps its length when SQLite restarts it: frames of an earlier generation
# follow the live ones, with other salts.
while off + 24 + psz <= len(data) and data[off+8:off+16] == salts:
    pg, commit = struct.unpack('>II', data[off:off+8]); frames.append((pg, commit)); off += 24 + psz
db = sqlite3.connect(f'{d}/copy.db')
names = {pg: name for name, pg in db.execute('SELECT name, pageno FROM dbstat')}
commits = []; cur = []
for pg, c in frames:
    cur.append(pg)
    if c: commits.append(cur); cur = []
print(f'page size {psz}; {len(frames)} frames, {len(commits)} commits, {len(frames)/max(1,len(commits)):.1f} frames/commit')
from collections import Counter
per = Counter()
for cm in commits:
    for pg in cm: per[names.get(pg, f'? {pg}')] += 1
for name, n in per.most_common(): print(f'  {n/len(commits):5.2f}  {name}')
distinct = Counter(names.get(pg,'?') for pg in set(pg for pg,_ in frames))
print('distinct pages written in the window (what a checkpoint rewrites):', sum(distinct.values()))
for name, n in distinct.most_common(12): print(f'  {n:5d}  {name}')
for q in procs: q.terminate()
for q in procs: q.wait()
shutil.rmtree(d)
