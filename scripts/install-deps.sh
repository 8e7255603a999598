#!/usr/bin/env bash
# Installs what building Shardline needs beyond the Rust toolchain: libclang, which the RocksDB
# crate's bindgen (through clang-sys) loads at build time. Does nothing when it is already there.
#
# The check looks where clang-sys looks and for the names it loads: `libclang.so`,
# `libclang-<N>.so`, `libclang.so.<N>` and `libclang-<N>.so.<N>`, never `libclang-cpp.so.<N>`
# (a different library, preinstalled on Debian 12, which clang-sys skips as well).
#
#   install-deps.sh           install libclang-dev when clang-sys would not find libclang
#   install-deps.sh --check   only say whether it would (exit 0: found, 1: missing)
#
# SHARDLINE_LIBCLANG_ROOT prefixes every searched directory (the script's own test points it at
# fake library trees); LIBCLANG_PATH, when set, is the only place searched, as in clang-sys.
set -euo pipefail

root="${SHARDLINE_LIBCLANG_ROOT:-}"

# Prints the first libclang clang-sys would load, or nothing.
find_libclang() {
  local dirs=() dir name
  if [ -n "${LIBCLANG_PATH:-}" ]; then
    dirs=("$root$LIBCLANG_PATH")
  else
    if [ -z "$root" ] && command -v llvm-config >/dev/null; then
      local prefix
      prefix="$(llvm-config --prefix 2>/dev/null || true)"
      [ -n "$prefix" ] && dirs+=("$prefix/bin" "$prefix/lib" "$prefix/lib64")
    fi
    shopt -s nullglob
    for dir in "$root"/usr/local/llvm*/lib* "$root"/usr/local/lib*/*/* "$root"/usr/local/lib*/* \
      "$root"/usr/local/lib* "$root"/usr/lib*/*/* "$root"/usr/lib*/* "$root"/usr/lib*; do
      [ -d "$dir" ] && dirs+=("$dir")
    done
    shopt -u nullglob
  fi
  for dir in "${dirs[@]}"; do
    for name in "$dir"/libclang.so "$dir"/libclang-*.so "$dir"/libclang.so.* "$dir"/libclang-*.so.*; do
      [ -e "$name" ] || continue
      case "$(basename "$name")" in *-cpp.*) continue ;; esac
      echo "$name"
      return 0
    done
  done
}

if [ "${1:-}" = "--check" ]; then
  found="$(find_libclang)"
  if [ -n "$found" ]; then echo "libclang: $found"; exit 0; fi
  echo "libclang: missing"
  exit 1
fi

if [ -n "$(find_libclang)" ]; then
  exit 0
fi
echo "installing libclang-dev (needed by the rocksdb crate's bindings)" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libclang-dev >/dev/null
[ -n "$(find_libclang)" ] || { echo "libclang is still missing after installing libclang-dev" >&2; exit 1; }
