#!/usr/bin/env python3
"""What a WAL cut back to nothing costs the card (docs/benchmarks.md, "The WAL keeps its length").

Bare SQLite (Python's sqlite3), WAL, synchronous=FULL, 1 KiB pages, one 300-byte row per
commit, SQLite's default checkpoint every 1,000 pages: once with journal_size_limit=0 (the WAL
truncated at every restart, as the node had it) and once with the WAL keeping its length.
Prints /proc/self/io write_bytes per commit and the sectors written to the block device under
DIR per commit (the file system's journal included). Needs DIR on a file system of its own:

    truncate -s 1G /var/tmp/ext4.img && mkfs.ext4 -q -F /var/tmp/ext4.img
    mkdir -p /mnt/walfs && mount -o loop /var/tmp/ext4.img /mnt/walfs
    examples/wal_file_growth.py /mnt/walfs
"""
import os
import sqlite3
import sys

DIR = sys.argv[1] if len(sys.argv) > 1 else sys.exit(__doc__)
COMMITS = 3000


def device_sectors():
    st = os.stat(DIR).st_dev
    with open(f'/sys/dev/block/{os.major(st)}:{os.minor(st)}/stat') as f:
        return int(f.read().split()[6])


def write_bytes():
    with open('/proc/self/io') as f:
        return int(next(l for l in f if l.startswith('write_bytes:')).split()[1])


for limit in (0, -1):
    path = os.path.join(DIR, f'growth-{limit}.db')
    for suffix in ('', '-wal', '-shm'):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    db = sqlite3.connect(path, isolation_level=None)
    for pragma in ('page_size=1024', 'journal_mode=WAL', 'synchronous=FULL',
                   f'journal_size_limit={limit}'):
        db.execute(f'PRAGMA {pragma}')
    db.execute('CREATE TABLE t (id INTEGER PRIMARY KEY, payload BLOB NOT NULL)')
    for _ in range(1500):  # past the first checkpoint: the WAL has restarted once
        db.execute('INSERT INTO t (payload) VALUES (?)', (os.urandom(300),))
    os.sync()
    w0, s0 = write_bytes(), device_sectors()
    for _ in range(COMMITS):
        db.execute('INSERT INTO t (payload) VALUES (?)', (os.urandom(300),))
    os.sync()
    w1, s1 = write_bytes(), device_sectors()
    db.close()
    what = 'cut back to nothing' if limit == 0 else 'keeps its length  '
    print(f'WAL {what}: write_bytes {(w1 - w0) / COMMITS:6.0f} B/commit, '
          f'block device {(s1 - s0) * 512 / COMMITS:6.0f} B/commit')
