#!/usr/bin/env python3
"""Start-to-ready of `storenode run` on a cold or --warm data directory, and peak RSS.

Usage: examples/cold_start.py STORENODE_BIN CONFIG DATA_DIR [--warm] [--settle SECONDS]

Cold: every file of DATA_DIR's store.db (and -wal, -shm) and the binary itself are fsynced
and dropped from the page cache (posix_fadvise DONTNEED), as after a reboot (shared
libraries stay cached). Prints the time from spawning the process to /readyz 200 and, when
the config has [sync], to /metrics showing the sync documents loaded (they load in the
background after ready); then VmHWM (peak resident set) and VmRSS, read once the documents
are loaded and again after --settle seconds (default 5) of idling. The node is stopped with
SIGTERM (a clean stop, so the next start skips the full quick_check)."""
import glob, http.client, os, re, subprocess, sys, time

bin_, cfg, d = sys.argv[1], sys.argv[2], sys.argv[3]
cold = '--warm' not in sys.argv
settle = float(sys.argv[sys.argv.index('--settle') + 1]) if '--settle' in sys.argv else 5.0
text = open(cfg).read()
port = int(text.split('127.0.0.1:')[1].split('"')[0])
token = (re.search(r'token\s*=\s*"([^"]+)"', text) or [None, ''])[1]
sync = '[sync]' in text


def drop(path):
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)


def get(path):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=2)
    c.request('GET', path, headers={'Authorization': f'Bearer {token}'})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body.decode(errors='replace')


def status(pid):
    out = {}
    for line in open(f'/proc/{pid}/status'):
        k, _, v = line.partition(':')
        if k in ('VmHWM', 'VmRSS'):
            out[k] = int(v.split()[0]) / 1024
    return out


if cold:
    for f in glob.glob(d + '/store.db*') + [bin_]:
        drop(f)
t0 = time.monotonic()
p = subprocess.Popen([bin_, '--config', cfg, 'run'], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
ready = loaded = None
while time.monotonic() - t0 < 300:
    try:
        if ready is None:
            if get('/readyz')[0] == 200:
                ready = time.monotonic() - t0
                at_ready = status(p.pid)
        if ready is not None:
            if not sync or re.search(r'^storenode_sync_documents_loaded 1', get('/metrics')[1], re.M):
                loaded = time.monotonic() - t0
                break
    except OSError:
        pass
    time.sleep(0.01)
at_loaded = status(p.pid)
time.sleep(settle)
later = status(p.pid)
p.terminate()
p.wait()
kind = 'cold' if cold else 'warm'
print(f"{kind} start to ready {ready * 1000:.0f} ms" if ready else f"{kind}: not ready", end='')
if sync:
    print(f", to sync documents loaded {loaded * 1000:.0f} ms" if loaded else ", documents not loaded", end='')
print(f"; VmHWM at ready {at_ready['VmHWM']:.1f} MiB, loaded {at_loaded['VmHWM']:.1f}, "
      f"+{settle:.0f} s {later['VmHWM']:.1f} MiB; VmRSS then {later['VmRSS']:.1f} MiB" if ready else "")
