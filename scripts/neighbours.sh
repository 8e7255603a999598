#!/usr/bin/env bash
# Runs both Kinesis neighbours for side-by-side `shardctl bench` runs, in the foreground until
# Ctrl-C: kinesalite on 127.0.0.1:4568 (scripts/kinesalite.sh) and kinesis-mock on
# 127.0.0.1:4571 (scripts/kinesis-mock.sh). When either stops, the other is stopped too.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pids=()
stop() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
bash "$here/kinesalite.sh" &
pids+=($!)
bash "$here/kinesis-mock.sh" &
pids+=($!)
# Returns when the first of the two exits (or a signal interrupts the wait).
status=0
wait -n || status=$?
echo "a neighbour stopped (status $status); stopping the other" >&2
exit "$status"
