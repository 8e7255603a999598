#!/usr/bin/env bash
# Runs kinesalite (an in-memory Kinesis emulator from npm) on 127.0.0.1:4568, for comparing
# `shardctl bench` figures side by side. Installed into a cache directory, outside the clone.
set -euo pipefail
dir="${HOME}/.cache/shardline/kinesalite"
mkdir -p "$dir"
if [ ! -x "$dir/node_modules/.bin/kinesalite" ]; then
  (cd "$dir" && npm install --silent --ignore-scripts kinesalite >/dev/null)
fi
exec "$dir/node_modules/.bin/kinesalite" --port "${KINESALITE_PORT:-4568}" --createStreamMs 50 --deleteStreamMs 50 --shardLimit 100
