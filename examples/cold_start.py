#!/usr/bin/env python3
"""Start-to-ready of `storenode run` on a cold (posix_fadvise DONTNEED) or --warm database, and
peak RSS. Usage: examples/cold_start.py STORENODE_BIN CONFIG DATA_DIR [--warm]"""
import http.client, os, subprocess, sys, time, glob
bin_, cfg, d = sys.argv[1], sys.argv[2], sys.argv[3]
cold = '--warm' not in sys.argv
port = int(open(cfg).read().split('127.0.0.1:')[1].split('"')[0])
if cold:
    for f in glob.glob(d + '/store.db*'):
        fd = os.open(f, os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)
t0 = time.monotonic()
p = subprocess.Popen([bin_, '--config', cfg, 'run'], stderr=subprocess.DEVNULL)
while True:
    try:
        c = http.client.HTTPConnection('127.0.0.1', port, timeout=1); c.request('GET', '/readyz'); r = c.getresponse(); r.read()
        if r.status == 200: break
    except OSError: pass
    time.sleep(0.01)
    if time.monotonic() - t0 > 60: print('timeout'); break
t = time.monotonic() - t0
hwm = [l for l in open(f'/proc/{p.pid}/status') if l.startswith('VmHWM')][0].split()[1]
p.terminate(); p.wait()
print(f"{'cold' if cold else 'warm'} start to ready {t*1000:.0f} ms, peak RSS {int(hwm)//1024} MiB")
