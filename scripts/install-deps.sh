#!/usr/bin/env bash
# Installs what building Shardline needs beyond the Rust toolchain: libclang, which the RocksDB
# crate's bindgen loads at build time. Does nothing when it is already there.
set -euo pipefail

have_libclang() {
  compgen -G "/usr/lib/llvm-*/lib/libclang*.so*" >/dev/null || compgen -G "/usr/lib/x86_64-linux-gnu/libclang*.so*" >/dev/null
}

if have_libclang; then
  exit 0
fi
echo "installing libclang-dev (needed by the rocksdb crate's bindings)" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libclang-dev >/dev/null
have_libclang || { echo "libclang is still missing after installing libclang-dev" >&2; exit 1; }
