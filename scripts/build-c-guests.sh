#!/bin/sh
# Rebuilds the C guests in guests/c/*.c into guests/c/*.wasm (committed: CI never needs clang).
# Needs Debian's toolchain: apt-get install -y clang lld wasi-libc libclang-rt-dev-wasm32
set -eu
cd "$(dirname "$0")/../guests/c"
CC=${CC:-clang}
for src in *.c; do
  out="${src%.c}.wasm"
  "$CC" --target=wasm32-wasi --sysroot=/usr -Oz -Wall -Wno-unused-result -Wl,--strip-all -o "$out" "$src"
  echo "built guests/c/$out ($(wc -c < "$out") bytes)"
done
