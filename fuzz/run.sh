#!/usr/bin/env bash
# Builds the fuzz targets with the stable toolchain, and runs each for a bounded time.
#
#   fuzz/run.sh check        # type-checks every target (what CI does on every run)
#   fuzz/run.sh run [SECS]   # libFuzzer + SanitizerCoverage build, each target SECS (60) s
#                            # (what `SOAK=1 .ci/run` does)
#
# cargo-fuzz needs a nightly compiler (for -Zsanitizer) and its own install; CI has
# neither. The coverage instrumentation libFuzzer needs is plain LLVM passes, which stable
# rustc accepts through -C flags: the same flags cargo-fuzz passes, minus AddressSanitizer
# (these targets reach no unsafe code of ours). `cargo fuzz` still works as the README says.
set -euo pipefail
cd "$(dirname "$0")"
mode="${1:-check}"
secs="${2:-60}"
target_dir="${CARGO_TARGET_DIR:-$PWD/../target}/fuzz"
triple="$(rustc -vV | sed -n 's/^host: //p')"
targets=$(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^storenode-fuzz$')

case "$mode" in
  check)
    CARGO_TARGET_DIR="$target_dir" cargo check --locked --bins
    ;;
  run)
    # With --target, RUSTFLAGS reach the targets' crates but not build scripts or proc macros.
    RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks" \
      CARGO_TARGET_DIR="$target_dir" cargo build --locked --release --bins --target "$triple"
    mkdir -p corpus artifacts
    for t in $targets; do
      mkdir -p "corpus/$t" "artifacts/$t"
      echo "== fuzz $t (${secs}s)"
      "$target_dir/$triple/release/$t" -max_total_time="$secs" -rss_limit_mb=2048 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 "corpus/$t" 2>&1 | tail -12
    done
    ;;
  *)
    echo "usage: $0 check | run [seconds per target]" >&2
    exit 2
    ;;
esac
