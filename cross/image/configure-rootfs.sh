#!/usr/bin/env bash
# Called by build.sh: turns a bootstrapped root directory into a store box's system.
#
#   configure-rootfs.sh ROOTFS ROOT_PARTUUID ESP_PARTUUID
set -euo pipefail
rootfs="$1" root_uuid="$2" esp_uuid="$3"

echo storenode >"$rootfs/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tstorenode\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
  >"$rootfs/etc/hosts"

# noatime: fewer writes to the SD card. x-systemd.growfs: the root file system grows to
# its partition on first boot (systemd-repart below grows the partition to the card). The
# ESP is the boot partition IT can write from any computer: mounted at /boot/firmware,
# where storenode-provision.service looks for storenode-provision.toml; on first access
# only (that check, kernel updates): no writes otherwise.
cat >"$rootfs/etc/fstab" <<FSTAB
PARTUUID=$root_uuid / ext4 rw,noatime,errors=remount-ro,x-systemd.growfs 0 1
PARTUUID=$esp_uuid /boot/firmware vfat umask=0077,noatime,nofail,noauto,x-systemd.automount 0 0
FSTAB
mkdir -p "$rootfs/boot/firmware"

mkdir -p "$rootfs/etc/repart.d"
cat >"$rootfs/etc/repart.d/50-root.conf" <<'REPART'
# Grow the root partition (the last one) over the rest of the card or eMMC on first boot.
[Partition]
Type=root
REPART

cat >"$rootfs/etc/systemd/network/20-wired.network" <<'NETWORK'
[Match]
Name=en* eth*

[Network]
DHCP=yes
NETWORK
# A shop without network still sells: do not hold network-online.target (and storenode,
# ordered after it) for the default two minutes when no cable is in.
mkdir -p "$rootfs/etc/systemd/system/systemd-networkd-wait-online.service.d"
cat >"$rootfs/etc/systemd/system/systemd-networkd-wait-online.service.d/storenode.conf" <<'WAIT'
[Service]
ExecStart=
ExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=20
WAIT

# Persistent journal, bounded so it cannot fill a small card.
mkdir -p "$rootfs/var/log/journal" "$rootfs/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=persistent\nSystemMaxUse=200M\n' \
  >"$rootfs/etc/systemd/journald.conf.d/storenode.conf"

# The store's own broker (Mosquitto, Debian's package): enabled, with Debian's settings
# (persistence in /var/lib/mosquitto, log in /var/log/mosquitto) and no listener of ours
# until provisioning: `storenode provision --local-broker` (or `local_broker = true` in the
# provisioning file on the boot partition) writes its loopback listener and its bridge to
# HQ's broker into /etc/mosquitto/conf.d/storenode-*.conf. Unprovisioned, Mosquitto 2
# listens on loopback only.
systemctl --root="$rootfs" enable mosquitto.service

systemctl --root="$rootfs" enable systemd-networkd.service systemd-resolved.service \
  systemd-networkd-wait-online.service
[ -e "$rootfs/lib/systemd/system/systemd-repart.service" ] &&
  systemctl --root="$rootfs" enable systemd-repart.service >/dev/null 2>&1 || true
# Each box gets its own machine id on first boot.
: >"$rootfs/etc/machine-id"

# Kernel updates from apt reach the EFI system partition.
here="$(cd "$(dirname "$0")" && pwd)"
install -D -m 0755 "$here/storenode-esp" "$rootfs/etc/kernel/postinst.d/zz-storenode-esp"
install -D -m 0755 "$here/storenode-esp" "$rootfs/etc/initramfs/post-update.d/storenode-esp"
