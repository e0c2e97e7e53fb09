#!/bin/sh
# Rebuilds the Rust guests in guests/rust/*.rs into guests/rust/*.wasm (committed: CI never needs rustc).
# Uses Debian's rustc and its WASI std: apt-get install -y rustc libstd-rust-dev-wasm32 lld
# (/usr/bin/rustc explicitly, so a rustup toolchain earlier on PATH does not interfere).
set -eu
cd "$(dirname "$0")/../guests/rust"
RUSTC=${RUSTC:-/usr/bin/rustc}
for src in *.rs; do
  out="${src%.rs}.wasm"
  "$RUSTC" --target wasm32-wasi --edition 2021 -C opt-level=z -C strip=symbols -C panic=abort -o "$out" "$src"
  echo "built guests/rust/$out ($(wc -c < "$out") bytes)"
done
