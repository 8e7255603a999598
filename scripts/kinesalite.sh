#!/usr/bin/env bash
# Runs kinesalite 3.3.3 (an in-memory Kinesis emulator from npm) on 127.0.0.1:4568, in the
# foreground, for comparing `shardctl bench` figures side by side. Installed into
# ~/.cache/shardline/kinesalite, outside the clone. `make kinesalite` runs it together with
# scripts/kinesis-mock.sh.
set -euo pipefail
version=3.3.3
# shellcheck source=npm-tool.sh
source "$(dirname "${BASH_SOURCE[0]}")/npm-tool.sh"
kinesalite="$(npm_tool kinesalite kinesalite "$version" kinesalite)"
port="${KINESALITE_PORT:-4568}"
echo "kinesalite $version on http://127.0.0.1:$port" >&2
exec "$kinesalite" --port "$port" \
  --createStreamMs 50 --deleteStreamMs 50 --updateStreamMs 50 \
  --shardLimit "${KINESALITE_SHARD_LIMIT:-10000}"
