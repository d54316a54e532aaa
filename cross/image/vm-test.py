#!/usr/bin/env python3
"""Boots the storenode disk image in qemu (TCG, real systemd) and checks it as a box in a shop.

    cross/image/vm-test.py [--binary target/debug/storenode] [--cycles N] [--keep DIR]
    cross/image/vm-test.py --arch arm64 --binary target/aarch64-unknown-linux-gnu/release/storenode
        (arm64: boots the image under qemu-system-aarch64 through its UEFI firmware, a sale,
        figures only; not in CI)
    cross/image/vm-test.py ... --keep DIR, then ... --image DIR [--boot direct|uefi]: boots a
        fresh copy of the image DIR holds again, without building it

Builds two .debs from the binary (a "previous" version baked into the image, the current
one to upgrade to), builds the amd64 image with a test-only overlay (config with tokens,
an ssh key for root, openssh-server and sqlite3), boots it and checks:
  1. storenode.service (Type=notify) reaches active and /readyz through a forwarded port;
  2. a sale through the forwarded port; disk bytes written per sale (a figure);
  3. SIGSTOP of the node: the systemd watchdog kills and restarts it;
  4. its log lines reach journald with their fields (tracing-journald);
  5. dpkg -i of the new package, stdin closed: non-interactive, config untouched, data kept;
  6. power cuts: two tills sell through the forwarded port, qemu is SIGKILLed at a random
     moment (the guest's page cache dies with it), rebooted, the tills retry what was in
     flight; every acknowledged sale is in the database exactly once;
  7. the store's own broker: a provisioning file with `local_broker = true` dropped on the
     boot partition, a reboot (storenode-provision.service writes Mosquitto's listener
     and bridge, then Mosquitto and the node start); a second lane (a transient unit with
     its own data directory and forwarded port) on the guest's Mosquitto; with HQ's broker
     (10.0.2.2 = a Mosquitto on this machine, mutual TLS, the chain's ACL) not running, the
     two lanes converge through the guest's broker alone; then HQ's broker starts and the
     bridge delivers the store's changes to it with the store's certificate.
Cycles: 3 (SOAK=1: 50, or --cycles N). SEED= replays the random kill times. Every wait is
bounded. Needs root (image build), qemu-system-x86, openssh-client, openssl, mosquitto; for
arm64 also qemu-system-arm and qemu-efi-aarch64 (its UEFI firmware). Concurrent runs do not
collide: each has its own work directory (image, firmware variables, ssh key, logs) and
ports the kernel handed out free.
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOKENS = {"pos1": "vm-test-token-pos1-0123456789", "pos2": "vm-test-token-pos2-0123456789"}
LANE2_TOKEN = "vm-test-token-lane2-0123456789"
# The second lane's configuration: the same store, its own node id, data and port, and the
# store's broker on loopback (as provisioning points the first lane at it).
LANE2_CONFIG = """[node]
tenant = "vmtest"
store_id = "s1"
node_id = "lane2"
data_dir = "/var/lib/storenode-lane2"

[api]
listen = "0.0.0.0:8081"

[[api.terminals]]
id = "pos3"
token = "{token}"

[sync]
broker = "{broker}"
"""
BOOT_TIMEOUT = 420  # TCG on a loaded 2-core machine: a boot takes 1 to 2 minutes.
BOOT_TIMEOUT_ARM64 = 1200  # an aarch64 guest on x86 (TCG, UEFI firmware) is several times slower
# UEFI firmware (Debian's ovmf, qemu-efi-aarch64): code, and the variable store to copy.
FIRMWARE = {"amd64": [("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
                      ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd")],
            "arm64": [("/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd")]}
OPENING = 1_000_000
SALE = {"lines": [{"sku": "MILK", "quantity": 1}],
        "payments": [{"method": "card", "amount_minor": 119}]}
CONFIG = """[node]
tenant = "vmtest"
store_id = "s1"
node_id = "lane1"
data_dir = "/var/lib/storenode"

[log]
level = "info"
format = "auto"

[api]
listen = "0.0.0.0:8080"
rate_per_terminal = 100000
burst_per_terminal = 100000

[[api.terminals]]
id = "pos1"
token = "{pos1}"

[[api.terminals]]
id = "pos2"
token = "{pos2}"
"""
CATALOG = ("sku,name,price_minor,currency,tax_class,variable_measure,gtins\n"
           "MILK,Milk 1 l,119,EUR,reduced,false,4006381333931\n"
           "BREAD,Bread 500 g,249,EUR,reduced,false,4006381333948\n")
CONVERGE_TIMEOUT = 240  # two lanes on a TCG guest, each re-offering every 2 s
BRIDGE_TIMEOUT = 300  # the bridge retries with backoff up to 120 s (restart_timeout 5 120)


def log(*args):
    print(time.strftime("%H:%M:%S"), *args, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(port, method, path, body=None, token=None, key=None, timeout=15):
    """One request on a fresh connection; returns (status, json or None)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        headers = {"content-type": "application/json"}
        if token:
            headers["authorization"] = f"Bearer {token}"
        if key:
            headers["idempotency-key"] = key
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        resp = conn.getresponse()
        data = resp.read()
        try:
            return resp.status, json.loads(data) if data else None
        except ValueError:
            return resp.status, None
    finally:
        conn.close()


class Vm:
    """One qemu process booting the image; kill() is a power cut."""

    def __init__(self, work, img_dir, disk, arch="amd64", boot="direct"):
        self.work, self.img_dir, self.disk, self.arch, self.boot = work, img_dir, disk, arch, boot
        self.api, self.ssh_port, self.lane2 = free_port(), free_port(), free_port()
        self.proc, self.boots = None, 0
        self.timeout = BOOT_TIMEOUT if arch == "amd64" else BOOT_TIMEOUT_ARM64
        if boot == "uefi":
            # The firmware's variables are written at boot: each run its own copy.
            code, vars = uefi_firmware(arch)
            self.firmware = ["-drive", f"if=pflash,format=raw,readonly=on,file={code}"]
            if vars:
                shutil.copy(vars, work / "efivars.fd")
                self.firmware += ["-drive", f"if=pflash,format=raw,file={work / 'efivars.fd'}"]

    def start(self):
        self.boots += 1
        console = self.work / f"console-{self.boots}.log"
        # TCG (software emulation) on purpose for both: the machines this runs on (CI) have
        # no KVM, and an aarch64 guest on x86 is TCG anyway.
        machine = (["qemu-system-x86_64", "-accel", "tcg"] if self.arch == "amd64" else
                   ["qemu-system-aarch64", "-M", "virt", "-accel", "tcg", "-cpu", "cortex-a72"])
        if self.boot == "uefi":
            # As on a box: the firmware finds systemd-boot on the EFI system partition,
            # which loads the kernel and the command line from the image itself.
            boot = self.firmware
        else:
            cmdline = (self.img_dir / f"cmdline-{self.arch}").read_text().strip()
            boot = ["-kernel", str(self.img_dir / f"vmlinuz-{self.arch}"), "-append", f"{cmdline} quiet"]
        self.proc = subprocess.Popen(
            machine + boot + ["-m", "1024", "-smp", "2", "-display", "none",
             "-serial", f"file:{console}", "-monitor", "none",
             "-drive", f"file={self.disk},if=none,id=d0,format=raw,cache=writeback",
             "-device", "nvme,drive=d0,serial=storenode" + (",bootindex=0" if self.boot == "uefi" else ""),
             "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{self.api}-:8080,"
                        f"hostfwd=tcp:127.0.0.1:{self.ssh_port}-:22,"
                        f"hostfwd=tcp:127.0.0.1:{self.lane2}-:8081",
             "-device", "virtio-net-pci,netdev=n0"],
            stdin=subprocess.DEVNULL)
        self.started = time.monotonic()

    def kill(self):
        """A power cut: SIGKILL, so nothing the guest had not written to the disk survives."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def wait_ready(self):
        """Seconds from qemu's start until /readyz answers 200."""
        deadline = self.started + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"qemu exited ({self.proc.returncode}); see {self.work}/console-{self.boots}.log")
            try:
                if call(self.api, "GET", "/readyz", timeout=5)[0] == 200:
                    return time.monotonic() - self.started
            except OSError:
                pass
            time.sleep(2)
        raise RuntimeError(f"not ready within {self.timeout} s; see {self.work}/console-{self.boots}.log")

    def ssh(self, command, check=True, timeout=120, stdin=None):
        out = subprocess.run(
            ["ssh", "-i", str(self.work / "key"), "-p", str(self.ssh_port), "-o", "BatchMode=yes",
             "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
             "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR", "root@127.0.0.1", command],
            capture_output=True, text=True, timeout=timeout, stdin=stdin)
        if check and out.returncode != 0:
            raise RuntimeError(f"guest: {command}: exit {out.returncode}\n{out.stdout}{out.stderr}")
        return out.stdout

    def wait_ssh(self):
        limit = 180 if self.arch == "amd64" else 600
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                if self.ssh("true", check=False, timeout=40) == "":
                    return
            except subprocess.TimeoutExpired:
                pass
            time.sleep(3)
        raise RuntimeError(f"no ssh into the guest within {limit} s")

    def unit(self, *props):
        out = self.ssh("systemctl show storenode.service " + " ".join(f"-p {p}" for p in props))
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def sales_in_db(self):
        out = self.ssh("sqlite3 -readonly /var/lib/storenode/store.db 'SELECT sale_no FROM sale'")
        return out.split()


def uefi_firmware(arch):
    for code, vars in FIRMWARE[arch]:
        if os.path.exists(code) and os.path.exists(vars):
            return code, vars
    package = "ovmf" if arch == "amd64" else "qemu-efi-aarch64"
    raise RuntimeError(f"no UEFI firmware for {arch} (apt-get install {package})")


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    log("ok:", what)


def build(work, binary, arch="amd64"):
    """Two packages of the same binary (previous and current version) and the test image."""
    version = next(line.split('"')[1] for line in (ROOT / "Cargo.toml").read_text().splitlines()
                   if line.startswith("version = "))
    # The previous release shipped a different example config, as two releases do: a
    # package that installs it as a conffile the node rewrote stops at dpkg's prompt.
    example = work / "previous.example.toml"
    example.write_text((ROOT / "config/storenode.example.toml").read_text() + "# previous release\n")
    debs = {}
    for name, ver in (("prev", f"{version}~vmprev"), ("new", version)):
        out = work / f"deb-{name}"
        # gzip: xz takes minutes for a debug binary on a busy 2-core machine.
        env = dict(os.environ, DEB_COMPRESSION="gzip")
        if name == "prev":
            env["EXAMPLE_CONFIG"] = str(example)
        debs[name] = subprocess.run(
            [str(ROOT / "cross/deb/build-deb.sh"), "native" if arch == "amd64" else "aarch64",
             "--binary", str(binary),
             "--out", str(out), "--version", ver],
            check=True, capture_output=True, text=True, env=env).stdout.strip()
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / "key")], check=True)
    overlay = work / "overlay"
    (overlay / "root/.ssh").mkdir(parents=True, mode=0o700)
    shutil.copy(work / "key.pub", overlay / "root/.ssh/authorized_keys")
    (overlay / "etc/storenode").mkdir(parents=True)
    (overlay / "etc/storenode/storenode.toml").write_text(CONFIG.format(**TOKENS))
    (overlay / "etc/storenode/catalog.csv").write_text(CATALOG)
    # The catalog goes in before the first boot, with the packaged binary in the image.
    hook = ('chroot "$1" runuser -u storenode -- storenode --config /etc/storenode/storenode.toml '
            'catalog import /etc/storenode/catalog.csv && rm "$1/etc/storenode/catalog.csv"')
    img_dir = work / "img"
    started = time.monotonic()
    subprocess.run([str(ROOT / "cross/image/build.sh"), arch, "--deb", debs["prev"],
                    "--include", "openssh-server,sqlite3", "--overlay", str(overlay),
                    "--hook", hook, "--out", str(img_dir)], check=True, stdout=subprocess.DEVNULL)
    img = img_dir / f"storenode-{arch}.img"
    log(f"image built in {time.monotonic() - started:.0f} s: {img.stat().st_size >> 20} MiB")
    return debs, img_dir, img


def reuse(work, kept, arch):
    """The packages, ssh key and a fresh copy of the image an earlier run kept (--keep): the
    copy, not the kept image, boots, so every run starts from an image that never booted."""
    img_dir = work / "img"
    img_dir.mkdir(exist_ok=True)
    for name in ("key", "key.pub"):
        if kept.resolve() != work.resolve():
            shutil.copy(kept / name, work / name)
    for name in (f"vmlinuz-{arch}", f"initrd-{arch}.img", f"cmdline-{arch}"):
        shutil.copy(kept / "img" / name, img_dir / name)
    img = img_dir / f"storenode-{arch}-boot.img"
    subprocess.run(["cp", "--sparse=always", str(kept / "img" / f"storenode-{arch}.img"), str(img)],
                   check=True)
    debs = {name: str(next((kept / f"deb-{name}").glob("*.deb"))) for name in ("prev", "new")}
    return debs, img_dir, img


def till(port, name, prefix, stop, acked, unknown):
    """Sells with fresh keys until stopped or the connection breaks."""
    n = 0
    while not stop.is_set():
        key = f"{prefix}-{n}"
        n += 1
        try:
            status, body = call(port, "POST", "/v1/sales", SALE, TOKENS[name], key, timeout=20)
        except OSError:
            unknown.append((name, key))
            return
        if status != 201:
            unknown.append((name, key))
            return
        acked[key] = body["sale_id"]


def retry(vm, unknown, acked):
    """After the reboot the tills resend what was in flight, same key, same body."""
    for name, key in unknown:
        status, body = call(vm.api, "POST", "/v1/sales", SALE, TOKENS[name], key, timeout=30)
        check(status == 201, f"retry of {key} after the reboot answers 201 (got {status})")
        if key in acked:
            check(acked[key] == body["sale_id"], f"retry of {key} returns the same sale")
        acked[key] = body["sale_id"]


def check_sales(vm, acked):
    in_db = vm.sales_in_db()
    check(len(in_db) == len(set(in_db)), f"no sale twice in the database ({len(in_db)} rows)")
    check(set(in_db) == set(acked.values()),
          f"the database holds exactly the {len(acked)} acknowledged sales")
    status, stock = call(vm.api, "GET", "/v1/stock/MILK", token=TOKENS["pos1"])
    on_hand = stock.get("on_hand") if isinstance(stock, dict) else None
    check(status == 200 and on_hand == OPENING - len(acked),
          f"stock of MILK = opening - sales ({on_hand})")


def first_boot(vm, acked):
    ready = vm.wait_ready()
    log(f"boot to ready: {ready:.0f} s")
    vm.wait_ssh()
    # Where the boot's time went, as systemd saw it (firmware and loader only under UEFI).
    analyze = vm.ssh("systemd-analyze time; systemd-analyze blame | head -n 8", check=False)
    log("systemd-analyze:", analyze.strip().replace("\n", " | "))
    unit = vm.unit("Type", "ActiveState", "SubState", "NRestarts", "StatusText")
    check(unit["Type"] == "notify" and unit["ActiveState"] == "active",
          f"storenode.service Type=notify, active: {unit}")
    status, _ = call(vm.api, "POST", "/v1/receipts",
                     {"lines": [{"sku": "MILK", "quantity": OPENING}]}, TOKENS["pos1"], "opening")
    check(status == 201, "opening stock received")
    status, body = call(vm.api, "POST", "/v1/sales", SALE, TOKENS["pos1"], "first-sale")
    check(status == 201, f"a sale through the forwarded port: {body}")
    acked["first-sale"] = body["sale_id"]
    # Bytes written per sale: the NVMe disk's sector counter around 200 sequential sales
    # (everything the guest writes meanwhile counts: WAL, checkpoints, journald, ext4).
    # Twice: right after boot, while the WAL file grows from nothing, and in the steady state
    # of a box that has sold for a while (the WAL restarted at the top of a file that keeps
    # its length: 4 MiB of frames is a few hundred sales).
    def kib_per_sale(label, count):
        vm.ssh("sync")
        before = int(vm.ssh("cat /sys/block/nvme0n1/stat").split()[6])
        for n in range(count):
            status, body = call(vm.api, "POST", "/v1/sales", SALE, TOKENS["pos2"], f"{label}-{n}")
            if status != 201:
                raise AssertionError(f"sale {label}-{n}: {status} {body}")
            acked[f"{label}-{n}"] = body["sale_id"]
        vm.ssh("sync")
        after = int(vm.ssh("cat /sys/block/nvme0n1/stat").split()[6])
        return (after - before) * 512 / count / 1024

    after_boot = kib_per_sale("wear", 200)
    kib_per_sale("warm", 600)
    steady = kib_per_sale("steady", 200)
    log(f"figure: {after_boot:.1f} KiB written to the disk per sale right after boot, "
        f"{steady:.1f} KiB in the steady state (200 sales each)")
    return ready


def watchdog(vm, acked):
    pid = vm.unit("MainPID")["MainPID"]
    restarts = int(vm.unit("NRestarts")["NRestarts"])
    vm.ssh(f"kill -STOP {pid}")
    log(f"node {pid} stopped with SIGSTOP; waiting for the watchdog (WatchdogSec=30)")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        unit = vm.unit("MainPID", "NRestarts", "ActiveState")
        if unit["MainPID"] not in ("0", pid) and int(unit["NRestarts"]) > restarts \
                and unit["ActiveState"] == "active":
            break
        time.sleep(5)
    else:
        raise AssertionError(f"the watchdog did not restart the stopped node: {unit}")
    journal = vm.ssh("journalctl -u storenode.service --no-pager -o cat | grep -i watchdog || true")
    check("Watchdog timeout" in journal, "systemd logged a watchdog timeout and restarted the node")
    vm.wait_ready()
    check_sales(vm, acked)


def journald_fields(vm):
    out = vm.ssh("journalctl -u storenode.service -o json --no-pager MESSAGE='storenode ready'")
    entries = [json.loads(line) for line in out.splitlines() if line.strip()]
    check(entries, "the 'storenode ready' log line is in the journal")
    entry = entries[-1]
    # tracing-journald prefixes the event's own fields with F_.
    check(entry.get("F_STORE") == "s1" and entry.get("F_NODE") == "lane1" and "F_LISTEN" in entry
          and entry.get("TARGET", "").startswith("storenode") and "CODE_FILE" in entry,
          f"its fields reach journald (F_STORE, F_NODE, F_LISTEN, TARGET, CODE_FILE): {entry}")


def upgrade(vm, debs, acked):
    config_before = vm.ssh("sha256sum /etc/storenode/storenode.toml")
    with open(debs["new"], "rb") as deb:
        vm.ssh("cat >/tmp/new.deb", stdin=deb)
    # stdin closed and no --force-conf*: any prompt fails the upgrade.
    out = vm.ssh("dpkg -i /tmp/new.deb </dev/null 2>&1", timeout=600)
    log("upgrade:", out.strip().replace("\n", " | ")[:400])
    status = vm.ssh("dpkg-query -W -f '${Version} ${Status}' storenode")
    check(status.endswith("install ok installed") and "~vmprev" not in status,
          f"upgraded, not half-configured: {status}")
    check(vm.ssh("sha256sum /etc/storenode/storenode.toml") == config_before,
          "the provisioned configuration is untouched")
    check(vm.ssh("ls /var/lib/storenode/backups/").strip() != "", "a pre-upgrade backup was made")
    vm.wait_ready()
    check(vm.unit("ActiveState")["ActiveState"] == "active", "the upgraded node is running")
    check_sales(vm, acked)


def power_cuts(vm, cycles, rng, acked):
    for cycle in range(cycles):
        stop, unknown = threading.Event(), []
        tills = [threading.Thread(target=till, args=(vm.api, name, f"c{cycle}-{name}", stop, acked, unknown))
                 for name in TOKENS]
        for t in tills:
            t.start()
        cut_after = rng.uniform(1.0, 12.0)
        time.sleep(cut_after)
        vm.kill()
        stop.set()
        for t in tills:
            t.join(timeout=60)
        log(f"cycle {cycle + 1}/{cycles}: power cut after {cut_after:.1f} s, "
            f"{len(acked)} acknowledged, {len(unknown)} in flight")
        vm.start()
        log(f"rebooted, ready after {vm.wait_ready():.0f} s")
        retry(vm, unknown, acked)
    vm.wait_ssh()
    check_sales(vm, acked)


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def pki(dir):
    """A CA, the store's client certificate (CN s1), HQ's (CN hq) and HQ's broker's server
    certificate for the address the guest dials (10.0.2.2, qemu's alias of this host)."""
    dir.mkdir(parents=True, exist_ok=True)
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
            "-keyout", str(dir / "ca.key"), "-out", str(dir / "ca.pem"), "-days", "2",
            "-subj", "/CN=vm-test CA", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    for name, ext in (("s1", "extendedKeyUsage=clientAuth"),
                      ("hq-broker", "extendedKeyUsage=serverAuth\n"
                                    "subjectAltName=IP:10.0.2.2,IP:127.0.0.1")):
        (dir / f"{name}.ext").write_text(f"basicConstraints=CA:FALSE\n{ext}\n")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", str(dir / f"{name}.key"), "-out", str(dir / f"{name}.csr"),
                "-subj", f"/CN={name}")
        openssl("x509", "-req", "-in", str(dir / f"{name}.csr"), "-CA", str(dir / "ca.pem"),
                "-CAkey", str(dir / "ca.key"), "-CAcreateserial", "-days", "2",
                "-out", str(dir / f"{name}.pem"), "-extfile", str(dir / f"{name}.ext"))


class HqBroker:
    """HQ's broker: Mosquitto on this machine's loopback, mutual TLS and the chain's ACL,
    logging every PUBLISH it receives."""

    def __init__(self, dir):
        self.dir, self.port, self.proc = dir, free_port(), None
        acl = (ROOT / "config/mosquitto/acl").read_text().replace("TENANT_ID", "vmtest")
        (dir / "acl").write_text(acl)
        (dir / "hq-mosquitto.conf").write_text(
            f"user root\npersistence false\nlog_dest file {dir}/hq-mosquitto.log\nlog_type all\n"
            f"listener {self.port} 127.0.0.1\ncafile {dir}/ca.pem\ncertfile {dir}/hq-broker.pem\n"
            f"keyfile {dir}/hq-broker.key\nrequire_certificate true\nuse_identity_as_username true\n"
            f"allow_anonymous false\nacl_file {dir}/acl\n")

    def start(self):
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.dir / "hq-mosquitto.conf")],
                                     stdin=subprocess.DEVNULL)

    def log(self):
        try:
            return (self.dir / "hq-mosquitto.log").read_text()
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def on_hand(port, token, sku):
    try:
        status, body = call(port, "GET", f"/v1/stock/{sku}", token=token)
    except OSError:
        return None
    return body.get("on_hand") if status == 200 and isinstance(body, dict) else None


def wait_for(what, timeout, probe):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if probe():
                log("ok:", what)
                return
        except OSError:
            pass  # the forwarded port accepts, then resets, until the guest listens
        time.sleep(2)
    raise AssertionError(f"not within {timeout} s: {what}")


def reboot(vm):
    """A clean reboot of the guest (qemu stays up); waits until the new boot is ready."""
    boot_id = vm.ssh("cat /proc/sys/kernel/random/boot_id").strip()
    vm.ssh("systemctl reboot", check=False, timeout=30)
    vm.started = time.monotonic()
    deadline = vm.started + BOOT_TIMEOUT
    while time.monotonic() < deadline:
        time.sleep(5)
        try:
            if call(vm.api, "GET", "/readyz", timeout=5)[0] != 200:
                continue
            now = vm.ssh("cat /proc/sys/kernel/random/boot_id", check=False, timeout=40).strip()
        except (OSError, subprocess.TimeoutExpired):
            continue
        if now and now != boot_id:
            return time.monotonic() - vm.started
    raise RuntimeError(f"no new boot ready within {BOOT_TIMEOUT} s")


def store_broker(vm, work):
    """Provisioning from the boot partition with the store's own broker; two lanes converge
    through it while HQ's broker is down; then the bridge brings the store's changes to HQ."""
    started = time.monotonic()
    certs = work / "pki"
    pki(certs)
    hq = HqBroker(certs)
    # IT drops the file and the certificates on the boot partition (FAT, any computer).
    provisioning = (f'store_id = "s1"\ntenant = "vmtest"\nbroker = "mqtts://10.0.2.2:{hq.port}"\n'
                    'ca = "ca.pem"\ncert = "s1.pem"\nkey = "s1.key"\nlocal_broker = true\n')
    for name, data in (("storenode-provision.toml", provisioning.encode()),
                       ("ca.pem", (certs / "ca.pem").read_bytes()),
                       ("s1.pem", (certs / "s1.pem").read_bytes()),
                       ("s1.key", (certs / "s1.key").read_bytes())):
        (work / "upload").write_bytes(data)
        with open(work / "upload", "rb") as upload:
            vm.ssh(f"cat >/boot/firmware/{name}", stdin=upload)
    vm.ssh("sync")
    log(f"provisioning file on the boot partition; rebooted, ready after {reboot(vm):.0f} s")
    provision_log = vm.ssh("journalctl -b -u storenode-provision.service --no-pager -o cat")
    check(vm.ssh("ls /boot/firmware/").split().count("storenode-provision.toml") == 0,
          "storenode-provision.service consumed the provisioning file")
    check("storenode-30-bridge.conf" in provision_log and "storenode-10-local.conf" in provision_log,
          "provisioning wrote the store broker's listener and bridge")
    check(vm.ssh("systemctl is-active mosquitto.service").strip() == "active",
          "mosquitto.service runs with them")
    config = vm.ssh("cat /etc/storenode/storenode.toml")
    check('broker = "mqtt://127.0.0.1:1883"' in config,
          "the node's [sync] points at the store's broker on loopback")
    check(vm.ssh("stat -c '%a %U:%G' /etc/mosquitto/storenode/store.key").strip() == "640 root:mosquitto",
          "the bridge's key is 0640 root:mosquitto")
    check(vm.unit("ActiveState")["ActiveState"] == "active", "the node runs after provisioning")

    # The second lane: same store, own data directory and port, the same local broker.
    with open(work / "upload", "wb") as upload:
        upload.write(LANE2_CONFIG.format(token=LANE2_TOKEN, broker="mqtt://127.0.0.1:1883").encode())
    with open(work / "upload", "rb") as upload:
        vm.ssh("cat >/etc/storenode/lane2.toml", stdin=upload)
    (work / "upload").write_text(CATALOG)
    with open(work / "upload", "rb") as upload:
        vm.ssh("cat >/tmp/catalog.csv", stdin=upload)
    vm.ssh("install -d -o storenode -g storenode -m 0750 /var/lib/storenode-lane2 && "
           "chmod 0644 /etc/storenode/lane2.toml /tmp/catalog.csv && "
           "runuser -u storenode -- storenode --config /etc/storenode/lane2.toml catalog import /tmp/catalog.csv && "
           "systemd-run --unit=storenode-lane2 --uid=storenode --gid=storenode "
           "/usr/bin/storenode --config /etc/storenode/lane2.toml run")
    wait_for("the second lane is ready", BOOT_TIMEOUT,
             lambda: call(vm.lane2, "GET", "/readyz", timeout=5)[0] == 200)

    # The WAN is down: HQ's broker is not running, the bridge cannot connect.
    check(hq.proc is None, "HQ's broker is unreachable (not started)")
    status, _ = call(vm.api, "POST", "/v1/receipts", {"lines": [{"sku": "BREAD", "quantity": 100}]},
                     TOKENS["pos1"], "bread-in")
    check(status == 201, "lane 1 receives 100 BREAD")
    wait_for("lane 2 sees lane 1's receipt through the store's broker", CONVERGE_TIMEOUT,
             lambda: on_hand(vm.lane2, LANE2_TOKEN, "BREAD") == 100)
    bread = {"lines": [{"sku": "BREAD", "quantity": 1}],
             "payments": [{"method": "card", "amount_minor": 249}]}
    for n in range(3):
        status, _ = call(vm.api, "POST", "/v1/sales", bread, TOKENS["pos1"], f"bread-l1-{n}")
        check(status == 201, f"lane 1 sells BREAD ({n + 1}/3)")
    for n in range(5):
        status, _ = call(vm.lane2, "POST", "/v1/sales", bread, LANE2_TOKEN, f"bread-l2-{n}")
        check(status == 201, f"lane 2 sells BREAD ({n + 1}/5)")
    wait_for("both lanes show 92 BREAD, HQ cut off", CONVERGE_TIMEOUT,
             lambda: on_hand(vm.api, TOKENS["pos1"], "BREAD") == 92
             and on_hand(vm.lane2, LANE2_TOKEN, "BREAD") == 92)
    check("Received PUBLISH" not in hq.log(), "nothing reached HQ's broker while it was down")
    bridge_log = vm.ssh("grep -c 'Connecting bridge' /var/log/mosquitto/mosquitto.log || true").strip()
    log(f"the guest's broker tried the bridge {bridge_log} times while HQ was down")
    converged = time.monotonic()

    # The WAN is back: the bridge reconnects (its backoff) and the store's changes arrive.
    hq.start()
    try:
        wait_for("the bridge connects to HQ's broker with the store's certificate", BRIDGE_TIMEOUT,
                 lambda: "as storenode-bridge-s1" in hq.log())
        wait_for("the store's changes reach HQ's broker over the bridge", CONVERGE_TIMEOUT,
                 lambda: "'storenode/v1/vmtest/s1/changes/" in hq.log())
        denied = [line for line in hq.log().splitlines() if "Denied PUBLISH" in line]
        check(not denied, f"HQ's ACL took everything the bridge sent ({denied[:3]})")
    finally:
        hq.stop()
    log(f"store broker check: {time.monotonic() - started:.0f} s "
        f"(bridge back to changes at HQ: {time.monotonic() - converged:.0f} s)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default=os.path.join(
        os.environ.get("CARGO_TARGET_DIR", ROOT / "target"), "debug", "storenode"))
    parser.add_argument("--cycles", type=int, default=50 if os.environ.get("SOAK") else 3)
    parser.add_argument("--keep", help="work directory to keep (image, console logs)")
    parser.add_argument("--arch", choices=["amd64", "arm64"], default="amd64")
    parser.add_argument("--boot", choices=["direct", "uefi"],
                        help="direct: qemu loads the image's kernel (default on amd64); uefi: the "
                             "firmware boots systemd-boot from the image, as a box does (default on arm64)")
    parser.add_argument("--image", help="a work directory kept by an earlier run (--keep): boot a "
                                        "copy of its image instead of building one")
    args = parser.parse_args()
    args.boot = args.boot or ("direct" if args.arch == "amd64" else "uefi")
    seed = int(os.environ.get("SEED", random.randrange(1 << 32)))
    log(f"vm-test seed {seed} (rerun with SEED={seed}), {args.cycles} power cuts")
    work = Path(args.keep or tempfile.mkdtemp(prefix="storenode-vm-"))
    work.mkdir(parents=True, exist_ok=True)
    vm = None
    try:
        if args.image:
            debs, img_dir, img = reuse(work, Path(args.image), args.arch)
        else:
            debs, img_dir, img = build(work, Path(args.binary), args.arch)
        vm = Vm(work, img_dir, img, args.arch, args.boot)
        log(f"booting {img.name} ({args.boot} boot, TCG)")
        vm.start()
        acked = {}
        first_boot(vm, acked)
        if args.arch != "amd64":
            log("arm64: booted, sold and measured; the other checks run on amd64")
            return
        journald_fields(vm)
        watchdog(vm, acked)
        upgrade(vm, debs, acked)
        power_cuts(vm, args.cycles, random.Random(seed), acked)
        store_broker(vm, work)
        log(f"vm-test passed: {args.cycles} power cuts, {len(acked)} acknowledged sales, each exactly once")
    finally:
        if vm and vm.proc and vm.proc.poll() is None:
            vm.kill()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except (AssertionError, RuntimeError, subprocess.SubprocessError) as err:
        log(f"vm-test FAILED: {err}")
        sys.exit(1)
