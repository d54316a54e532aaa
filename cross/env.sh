# Sourced by the cross scripts: the Debian cross toolchain for each Rust target.
# Linker and C compiler (rusqlite's bundled SQLite, ring's assembly) per target, given as
# environment variables so no .cargo/config is needed.

# triple_for ARCH -> Rust target triple
triple_for() {
  case "$1" in
    aarch64 | arm64) echo aarch64-unknown-linux-gnu ;;
    armv7 | armhf) echo armv7-unknown-linux-gnueabihf ;;
    *) echo "unknown architecture $1 (aarch64, armv7)" >&2; return 1 ;;
  esac
}

# gnu_prefix ARCH -> the Debian cross toolchain's prefix
gnu_prefix() {
  case "$1" in
    aarch64 | arm64) echo aarch64-linux-gnu ;;
    armv7 | armhf) echo arm-linux-gnueabihf ;;
  esac
}

# deb_arch ARCH -> Debian architecture name
deb_arch() {
  case "$1" in
    aarch64 | arm64) echo arm64 ;;
    armv7 | armhf) echo armhf ;;
    x86_64 | amd64) echo amd64 ;;
  esac
}

# export_toolchain ARCH: exports CARGO_TARGET_<TRIPLE>_LINKER, CC_<triple>, AR_<triple>
export_toolchain() {
  local triple prefix upper lower
  triple="$(triple_for "$1")"
  prefix="$(gnu_prefix "$1")"
  upper="$(echo "$triple" | tr 'a-z-' 'A-Z_')"
  lower="$(echo "$triple" | tr '-' '_')"
  export "CARGO_TARGET_${upper}_LINKER=${prefix}-gcc"
  export "CC_${lower}=${prefix}-gcc"
  export "AR_${lower}=${prefix}-ar"
  # qemu-user runs the target's binaries for `cargo test --target` (see smoke.sh).
  export "CARGO_TARGET_${upper}_RUNNER=qemu-$(echo "$triple" | cut -d- -f1 | sed 's/armv7/arm/') -L /usr/${prefix}"
}
