#!/usr/bin/env bash
# Builds a bootable Debian 12 disk image for a store box from Debian's packages:
#
#   cross/image/build.sh [arm64|amd64] [--deb FILE] [--out DIR] [--kernel cloud|generic]
#                        [--include PKG,...] [--overlay DIR] [--hook 'SHELL CMD'] [--keep-rootfs]
#
# The image holds the storenode .deb (default: the newest target/deb/storenode_*_<arch>.deb),
# a Debian kernel, chrony, the store's own Mosquitto (enabled; `storenode provision
# --local-broker` gives it its listener and bridge to HQ), systemd-networkd (DHCP on every
# wired interface) and persistent journald. Disk layout (GPT): an EFI system
# partition with systemd-boot, the kernel and its initramfs (mounted at /boot/firmware: drop
# storenode-provision.toml there to provision the box), then the ext4 root partition,
# which grows to fill the card or eMMC on first boot.
#
# Output in DIR (default target/image): storenode-<arch>.img (raw, write it with dd or
# bmaptool), and vmlinuz-<arch>, initrd-<arch>.img and cmdline-<arch> for booting it
# directly with qemu (tests; cross/image/vm-test.py).
# --kernel cloud (default): linux-image-cloud-*, NVMe/virtio built in: qemu, UEFI VMs and
# servers. --kernel generic: linux-image-<arch> with every board driver (SD/eMMC), from
# its initramfs.
# Test-only: --include adds packages (openssh-server), --overlay copies a directory
# over the root (config, keys), --hook runs a command with $1 = the root directory.
# Needs root (mmdebstrap --mode=root, chroot). A foreign architecture runs under qemu-user
# through binfmt_misc, which this script mounts and enables where it is missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"

arch="arm64"
deb=""
out="${CARGO_TARGET_DIR:-$root/target}/image"
kernel="cloud"
extra=""
overlay=""
hooks=()
keep_rootfs=0
usage() {
  sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
    arm64 | aarch64) arch=arm64 ;;
    amd64 | x86_64) arch=amd64 ;;
    --deb) deb="$2"; shift ;;
    --out) out="$2"; shift ;;
    --kernel) kernel="$2"; shift ;;
    --include) extra="$2"; shift ;;
    --overlay) overlay="$2"; shift ;;
    --hook) hooks+=("$2"); shift ;;
    --keep-rootfs) keep_rootfs=1 ;;
    *) usage ;;
  esac
  shift
done
fail() { echo "image/build.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "run as root (mmdebstrap --mode=root and chroot need it)"

case "$arch" in
  amd64)
    efi_name=BOOTX64.EFI efi_stub=systemd-bootx64.efi console=ttyS0
    # GPT type "Linux root (x86-64)" from the Discoverable Partitions Specification.
    root_type=4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709
    ;;
  arm64)
    efi_name=BOOTAA64.EFI efi_stub=systemd-bootaa64.efi console=ttyAMA0
    root_type=B921B045-1DF0-41C3-AF44-4C6F280D3FAE
    ;;
esac
case "$kernel" in
  cloud) kernel_pkg="linux-image-cloud-$arch" ;;
  generic) kernel_pkg="linux-image-$arch" ;;
  *) fail "--kernel cloud or generic" ;;
esac
if [ -z "$deb" ]; then
  deb="$(ls -t "${CARGO_TARGET_DIR:-$root/target}"/deb/storenode_*_"$arch".deb 2>/dev/null | head -n1 || true)"
fi
[ -n "$deb" ] && [ -f "$deb" ] || fail "no storenode .deb for $arch (cross/deb/build-deb.sh, or --deb FILE)"
deb="$(cd "$(dirname "$deb")" && pwd)/$(basename "$deb")"

install_missing() {
  local packages=()
  command -v mmdebstrap >/dev/null || packages+=(mmdebstrap)
  command -v mkfs.ext4 >/dev/null || packages+=(e2fsprogs)
  command -v mkfs.vfat >/dev/null || packages+=(dosfstools)
  command -v mcopy >/dev/null || packages+=(mtools)
  command -v sfdisk >/dev/null || packages+=(fdisk)
  if [ "$arch" != "$(dpkg --print-architecture)" ]; then
    command -v update-binfmts >/dev/null || packages+=(binfmt-support)
    command -v arch-test >/dev/null || packages+=(arch-test)
    [ -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] || command -v qemu-aarch64-static >/dev/null \
      || packages+=(qemu-user-static)
  fi
  if [ ${#packages[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
  fi
}

# The foreign architecture's maintainer scripts run through qemu-user: binfmt_misc must be
# mounted (containers often lack it) and the qemu-aarch64 handler enabled.
enable_binfmt() {
  [ "$arch" != "$(dpkg --print-architecture)" ] || return 0
  [ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || fail "binfmt handler qemu-aarch64 missing after update-binfmts"
}

install_missing
enable_binfmt
mkdir -p "$out"
work="$(mktemp -d "$out/.build-$arch.XXXXXX")"
rootfs="$work/rootfs"
# --one-file-system: an interrupted mmdebstrap can leave /proc or /dev mounted inside.
cleanup() { [ "$keep_rootfs" = 1 ] && echo "rootfs kept in $rootfs" >&2 || rm -rf --one-file-system "$work"; }
trap cleanup EXIT

start=$SECONDS
packages="systemd,systemd-sysv,systemd-resolved,udev,kmod,iproute2,netbase,ca-certificates,chrony,mosquitto"
packages="$packages,systemd-boot-efi,$kernel_pkg${extra:+,$extra}"
mirror=http://deb.debian.org/debian
# No man pages, translations or docs on a store box (storenode's own docs stay: the unit
# points at them); unsafe-io: the image is written once, synced at the end.
mmdebstrap --mode=root --variant=minbase --arch="$arch" \
  --aptopt='Apt::Install-Recommends "false"' --dpkgopt=force-unsafe-io \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-include=/usr/share/doc/storenode/*' \
  --include="$packages" \
  --customize-hook="copy-in '$deb' /tmp" \
  --customize-hook="chroot \"\$1\" dpkg -i '/tmp/$(basename "$deb")' && rm \"\$1/tmp/$(basename "$deb")\"" \
  bookworm "$rootfs" \
  "deb $mirror bookworm main" "deb $mirror bookworm-updates main" \
  "deb http://deb.debian.org/debian-security bookworm-security main"
echo "root file system: $((SECONDS - start)) s" >&2

root_uuid="$(cat /proc/sys/kernel/random/uuid)"
esp_uuid="$(cat /proc/sys/kernel/random/uuid)"
cmdline="root=PARTUUID=$root_uuid rw console=tty0 console=$console"
"$root/cross/image/configure-rootfs.sh" "$rootfs" "$root_uuid" "$esp_uuid"
[ -z "$overlay" ] || cp -a "$overlay/." "$rootfs/"
for hook in "${hooks[@]}"; do
  sh -c "$hook" hook "$rootfs"
done

vmlinuz="$(ls "$rootfs"/boot/vmlinuz-* | sort -V | tail -n1)"
initrd="$(ls "$rootfs"/boot/initrd.img-* | sort -V | tail -n1)"
cp "$vmlinuz" "$out/vmlinuz-$arch"
cp "$initrd" "$out/initrd-$arch.img"
echo "$cmdline" >"$out/cmdline-$arch"

# EFI system partition: systemd-boot as the removable-media loader, so any UEFI firmware
# boots it without a boot entry. arm64's vmlinuz is a gzipped Image; systemd-boot needs
# the plain Image (an EFI application through its stub).
esp="$work/esp.img"
esp_mib=128
mkfs.vfat -F 32 -n STORENODE -C "$esp" $((esp_mib * 1024)) >/dev/null
if gzip -t "$vmlinuz" 2>/dev/null; then zcat "$vmlinuz" >"$work/linux"; else cp "$vmlinuz" "$work/linux"; fi
printf 'timeout 0\ndefault storenode.conf\n' >"$work/loader.conf"
printf 'title storenode (Debian 12)\nlinux /storenode/linux\ninitrd /storenode/initrd.img\noptions %s\n' \
  "$cmdline" >"$work/storenode.conf"
mmd -i "$esp" ::/EFI ::/EFI/BOOT ::/loader ::/loader/entries ::/storenode
mcopy -i "$esp" "$rootfs/usr/lib/systemd/boot/efi/$efi_stub" "::/EFI/BOOT/$efi_name"
mcopy -i "$esp" "$work/loader.conf" ::/loader/loader.conf
mcopy -i "$esp" "$work/storenode.conf" ::/loader/entries/storenode.conf
mcopy -i "$esp" "$work/linux" ::/storenode/linux
mcopy -i "$esp" "$initrd" ::/storenode/initrd.img

# Root file system: what is installed plus room for the store's data until first boot
# grows it to the whole card.
used_mib=$(($(du -sm "$rootfs" | cut -f1) + 1))
root_mib=$((used_mib + used_mib / 4 + 512))
rootimg="$work/root.img"
mkfs.ext4 -q -L storenode-root -d "$rootfs" "$rootimg" "${root_mib}M"

img="$out/storenode-$arch.img"
rm -f "$img"
truncate -s $(((1 + esp_mib + root_mib + 1) * 1024 * 1024)) "$img"
sfdisk --quiet "$img" <<PARTITIONS
label: gpt
start=2048, size=$((esp_mib * 2048)), type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, uuid=$esp_uuid, name=esp
start=$(((1 + esp_mib) * 2048)), size=$((root_mib * 2048)), type=$root_type, uuid=$root_uuid, name=root
PARTITIONS
dd if="$esp" of="$img" bs=1M seek=1 conv=notrunc,sparse status=none
dd if="$rootimg" of="$img" bs=1M seek=$((1 + esp_mib)) conv=notrunc,sparse status=none
echo "image: $img ($(du -m --apparent-size "$img" | cut -f1) MiB, $(du -m "$img" | cut -f1) MiB allocated) in $((SECONDS - start)) s" >&2
echo "$img"
