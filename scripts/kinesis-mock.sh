#!/usr/bin/env bash
# Runs kinesis-mock (npm package kinesis-local 0.6.2: a Scala.js build of kinesis-mock, one
# node script, no JVM) on 127.0.0.1:4571 over plain HTTP, in the foreground, for comparing
# `shardctl bench` figures side by side. Installed into ~/.cache/shardline/kinesis-mock,
# outside the clone. `make kinesalite` runs it together with scripts/kinesalite.sh.
#
# It also serves TLS, by default on 4567 (the shard-server's Kinesis port), moved here to 4572;
# 4569 and 4570 are left to a shard-server beside it (its internal gRPC listener is 4569).
# Stream transitions take 50 ms instead of 500 ms, the account shard limit is
# raised from 50 to 10,000, and per-request logging is off (LOG_LEVEL=WARN): each is an
# environment variable the caller can override.
set -euo pipefail
version=0.6.2
# shellcheck source=npm-tool.sh
source "$(dirname "${BASH_SOURCE[0]}")/npm-tool.sh"
kinesis_local="$(npm_tool kinesis-mock kinesis-local "$version" kinesis-local)"
dir="${HOME}/.cache/shardline/kinesis-mock"
export KINESIS_MOCK_PLAIN_PORT="${KINESIS_MOCK_PLAIN_PORT:-4571}"
export KINESIS_MOCK_TLS_PORT="${KINESIS_MOCK_TLS_PORT:-4572}"
export SHARD_LIMIT="${SHARD_LIMIT:-10000}"
export LOG_LEVEL="${LOG_LEVEL:-WARN}"
for transition in CREATE_STREAM DELETE_STREAM REGISTER_STREAM_CONSUMER DEREGISTER_STREAM_CONSUMER \
  MERGE_SHARDS SPLIT_SHARD UPDATE_SHARD_COUNT UPDATE_STREAM_MODE START_STREAM_ENCRYPTION STOP_STREAM_ENCRYPTION; do
  name="${transition}_DURATION"
  export "$name=${!name:-50ms}"
done
for port in "$KINESIS_MOCK_PLAIN_PORT" "$KINESIS_MOCK_TLS_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "kinesis-mock: port $port is taken; choose others with KINESIS_MOCK_PLAIN_PORT and KINESIS_MOCK_TLS_PORT" >&2
    exit 1
  fi
done
echo "kinesis-mock (kinesis-local $version) on http://127.0.0.1:$KINESIS_MOCK_PLAIN_PORT" >&2
# The TLS certificate ships beside main.js; the path would otherwise be relative to the
# working directory.
export KINESIS_MOCK_CERT_PATH="${KINESIS_MOCK_CERT_PATH:-$dir/node_modules/kinesis-local/server.json}"
cd "$dir"
exec "$kinesis_local"
