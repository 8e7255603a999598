#!/usr/bin/env bash
# Runs kinesalite 3.3.3 (an in-memory Kinesis emulator from npm) on 127.0.0.1:4568, in the
# foreground, for comparing `shardctl bench` figures side by side. Installed into
# ~/.cache/shardline/kinesalite, outside the clone. `make kinesalite` runs it together with
# scripts/kinesis-mock.sh.
set -euo pipefail
version=3.3.3
dir="${HOME}/.cache/shardline/kinesalite"
mkdir -p "$dir"
installed=$(node -p "require('$dir/node_modules/kinesalite/package.json').version" 2>/dev/null || true)
if [ "$installed" != "$version" ] || [ ! -x "$dir/node_modules/.bin/kinesalite" ]; then
  echo "installing kinesalite@$version into $dir" >&2
  (cd "$dir" && npm install --silent --no-save --ignore-scripts "kinesalite@$version" >/dev/null)
fi
port="${KINESALITE_PORT:-4568}"
echo "kinesalite $version on http://127.0.0.1:$port" >&2
exec "$dir/node_modules/.bin/kinesalite" --port "$port" \
  --createStreamMs 50 --deleteStreamMs 50 --updateStreamMs 50 \
  --shardLimit "${KINESALITE_SHARD_LIMIT:-10000}"
