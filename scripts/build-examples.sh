#!/bin/sh
# Rebuilds the example guests of docs/GUESTS.md (committed: CI never needs clang or rustc).
# Needs Debian's toolchains: apt-get install -y clang lld rustc libstd-rust-dev-wasm32 (rustc alone
# has no core library for wasm32-unknown-unknown: E0463 can't find crate for `core`)
# (/usr/bin/rustc explicitly, so a rustup toolchain earlier on PATH does not interfere).
set -eu
cd "$(dirname "$0")/.."
# clang runs any wasm-opt it finds on PATH (npm's node_modules/.bin has binaryen's): build with
# Debian's tools only, so the bytes are reproducible (test/sdk/other-languages.test.ts checks).
PATH=/usr/bin:/bin
CC=${CC:-clang}
RUSTC=${RUSTC:-/usr/bin/rustc}
"$CC" --target=wasm32 -nostdlib -Oz -I include -Wl,--no-entry -Wl,--export=_start -Wl,--strip-all -o examples/c/hello.wasm examples/c/hello.c
echo "built examples/c/hello.wasm ($(wc -c < examples/c/hello.wasm) bytes)"
"$RUSTC" --target wasm32-unknown-unknown --crate-type cdylib --edition 2021 -C opt-level=z -C panic=abort -C strip=symbols -o examples/rust/upper.wasm examples/rust/upper.rs
echo "built examples/rust/upper.wasm ($(wc -c < examples/rust/upper.wasm) bytes)"
