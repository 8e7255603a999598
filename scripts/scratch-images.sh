#!/usr/bin/env bash
# Builds the shard-server and operator images without a container engine or registry: buildah
# `FROM scratch` with the release binaries and exactly the shared libraries `ldd` lists for
# them, and the image settings (USER, ENTRYPOINT, CMD, EXPOSE, VOLUME) read from the matching
# stage of images/Dockerfile, so both ways declare the same images.
#
#   scripts/scratch-images.sh BIN_DIR OUT_DIR [TAG]
#
# BIN_DIR holds shard-server, shardctl and shardline-operator (a release build). Writes
# OUT_DIR/shard-server.tar and OUT_DIR/shardline-operator.tar (docker-archive, ready for
# `ctr images import`) of localhost/shardline/shard-server:TAG and
# localhost/shardline/shardline-operator:TAG (TAG defaults to dev), and prints OUT_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN_DIR="$1"
OUT_DIR="$2"
TAG="${3:-dev}"
DOCKERFILE=images/Dockerfile

if ! command -v buildah >/dev/null; then
  echo "installing buildah" >&2
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends buildah >&2
fi
mkdir -p "$OUT_DIR"

# The instruction lines (continuations joined) of one Dockerfile stage.
stage() {
  awk -v stage="$1" '
    /\\$/ { sub(/\\$/, ""); held = held $0; next }
    { line = held $0; held = "" }
    tolower(line) ~ /^from / { inside = (tolower(line) ~ (" as " stage "$")); next }
    inside && line !~ /^[ \t]*(#|$)/ { print line }
  ' "$DOCKERFILE"
}

# Files to copy into the image: the binaries and every library the dynamic loader maps.
libraries() {
  # Library lines are indented ("name => /path (addr)", or "/path (addr)" for the loader);
  # with several binaries ldd also prints each binary's path as a header, unindented.
  ldd "$@" | awk '/^[ \t]/ && /=> \// { print $3 } /^[ \t]+\// { print $1 }' | sort -u
}

build() {
  local stage_name="$1" image="$2"
  shift 2
  local instructions
  instructions="$(stage "$stage_name")"
  [ -n "$instructions" ] || { echo "no stage $stage_name in $DOCKERFILE" >&2; exit 1; }
  local container
  container="$(buildah from scratch)"
  trap 'buildah rm "$container" >/dev/null 2>&1 || true' RETURN
  local mount
  mount="$(buildah mount "$container")"
  local bin lib
  for bin in "$@"; do
    install -D -s -m 0755 "$BIN_DIR/$bin" "$mount/usr/local/bin/$bin"
  done
  for lib in $(libraries "${@/#/$BIN_DIR/}"); do
    install -D -m 0755 "$(readlink -f "$lib")" "$mount$lib"
  done
  buildah umount "$container" >/dev/null
  local keyword rest
  local config=()
  while read -r keyword rest; do
    case "${keyword^^}" in
      USER) config+=(--user "$rest") ;;
      ENTRYPOINT) config+=(--entrypoint "$rest") ;;
      CMD) config+=(--cmd "$rest") ;;
      # As docker records them: a port without a protocol is TCP.
      EXPOSE) for port in $rest; do [[ "$port" == */* ]] || port="$port/tcp"; config+=(--port "$port"); done ;;
      VOLUME) config+=(--volume "$rest") ;;
    esac
  done <<<"$instructions"
  buildah config "${config[@]}" "$container"
  buildah commit --quiet --rm "$container" "$image" >/dev/null
  trap - RETURN
  local name archive
  name="$(basename "${image%%:*}")"
  archive="$OUT_DIR/$name.tar"
  rm -f "$archive.tmp"
  buildah push --quiet "$image" "docker-archive:$archive.tmp:$image" >&2
  mv "$archive.tmp" "$archive"
  echo "built $image" >&2
}

build shard-server "localhost/shardline/shard-server:$TAG" shard-server shardctl
build operator "localhost/shardline/shardline-operator:$TAG" shardline-operator
echo "$OUT_DIR"
