#!/bin/sh
# Installs the cr-sqlite peer for examples/bench_sync.rs (a benchmark, not a test; CI does
# not run it). With access to github.com a plain `npm ci` is enough: @vlcn.io/crsqlite
# downloads its prebuilt extension from the GitHub release. Without it (this development
# box), both native parts are built from source:
#   - better-sqlite3 12 against the installed Node headers (version 13 crashes on Node 20);
#   - cr-sqlite's loadable extension with `make loadable`, which needs clang's libclang
#     (Debian: libclang-dev) and the Rust toolchain its sources pin (rustup installs
#     nightly-2023-10-05 with rust-src; a current nightly compiles it but the extension
#     then fails every crsql_as_crr() with "out of memory").
set -eu
cd "$(dirname "$0")"

# Outside this repository: cargo would take storenode's Cargo.toml (edition 2024, which the
# pinned toolchain cannot read) for the workspace root.
build_from_source() {
    src=$(mktemp -d)
    cp -a node_modules/@vlcn.io/crsqlite/. "$src"
    (cd "$src" && rm -rf dist && env -u CARGO_TARGET_DIR -u RUSTUP_TOOLCHAIN make loadable)
    mkdir -p node_modules/@vlcn.io/crsqlite/dist
    cp "$src/dist/crsqlite.so" node_modules/@vlcn.io/crsqlite/dist/
    rm -rf "$src"
}
npm ci --ignore-scripts --no-audit --no-fund
npm rebuild better-sqlite3
if [ ! -e node_modules/@vlcn.io/crsqlite/dist/crsqlite.so ]; then
    (cd node_modules/@vlcn.io/crsqlite && node ./nodejs-install-helper.js) ||
        (rustup toolchain install nightly-2023-10-05 --profile minimal -c rust-src &&
         build_from_source)
fi
node -e 'import("@vlcn.io/crsqlite").then(m => console.log("cr-sqlite extension:", m.extensionPath))'
