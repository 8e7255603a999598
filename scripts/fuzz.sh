#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for SECONDS each (default 60): `make fuzz`, and CI's smoke
# run with a few seconds. Installs cargo-fuzz (from crates.io) into the cache when missing.
# With a nightly toolchain the targets run under AddressSanitizer; with stable only, without
# a sanitizer (libFuzzer's coverage still guides them; panics and hangs are still found).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
shift || true
targets=("$@")
cache="${SHARDLINE_CACHE:-$HOME/.cache/shardline}"
export PATH="$cache/tools/bin:$PATH"
export CARGO_TARGET_DIR="${SHARDLINE_FUZZ_TARGET_DIR:-$cache/fuzz-target}"

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz into $cache/tools" >&2
  cargo install cargo-fuzz --locked --root "$cache/tools" >&2
fi
if rustup run nightly rustc --version >/dev/null 2>&1; then
  toolchain=(+nightly)
  sanitizer=address
else
  toolchain=()
  sanitizer=none
fi
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(cd fuzz && cargo "${toolchain[@]}" fuzz list)
fi
for target in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$target"
  # Hand-written seeds (valid requests) start the corpus where there are some.
  seeds=()
  [ -d "fuzz/seeds/$target" ] && seeds=("seeds/$target")
  echo "fuzzing $target for ${seconds}s (sanitizer: $sanitizer)" >&2
  (cd fuzz && cargo "${toolchain[@]}" fuzz run --sanitizer "$sanitizer" "$target" "corpus/$target" "${seeds[@]}" \
    -- -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -print_final_stats=1)
done
