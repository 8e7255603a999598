#!/usr/bin/env bash
# Builds the shard-server and operator images where a docker engine runs:
#   scripts/images.sh [TAG]   → shardline/shard-server:TAG, shardline/shardline-operator:TAG (default: dev)
set -euo pipefail
cd "$(dirname "$0")/.."
TAG="${1:-dev}"
if ! docker info >/dev/null 2>&1; then
  echo "skipped: docker not available" >&2
  exit 0
fi
export DOCKER_BUILDKIT=1
docker build -f images/Dockerfile --target shard-server -t "shardline/shard-server:$TAG" .
docker build -f images/Dockerfile --target operator -t "shardline/shardline-operator:$TAG" .
echo "built shardline/shard-server:$TAG shardline/shardline-operator:$TAG"
