#!/usr/bin/env bash
# Provides a real kube-apiserver and etcd for the operator tests, on a fresh Debian 12 machine:
# etcd from Debian's etcd-server package, kube-apiserver built once from Debian bookworm's
# kubernetes source package (1.20.2) and cached in ~/.cache/shardline/k8s/bin. Kubernetes 1.20
# vendors modern-go/reflect2 v1.0.1, which crashes under Go 1.19 as soon as custom resources are
# used; the vendored copy is replaced by Debian's v1.0.2 before building.
# Prints the directory holding `kube-apiserver` and `etcd` on its last line.
set -euo pipefail

CACHE="${SHARDLINE_K8S_CACHE:-$HOME/.cache/shardline/k8s}"
BIN="$CACHE/bin"
mkdir -p "$BIN"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
command -v etcd >/dev/null || [ -x /usr/bin/etcd ] || need+=(etcd-server)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
if [ ! -x "$BIN/kube-apiserver" ]; then
  command -v go >/dev/null || need+=(golang-go)
  command -v rsync >/dev/null || need+=(rsync)
  command -v dpkg-source >/dev/null || need+=(dpkg-dev)
  [ -d /usr/share/gocode/src/github.com/modern-go/reflect2 ] || need+=(golang-github-modern-go-reflect2-dev)
fi
if [ ${#need[@]} -gt 0 ]; then
  as_root apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${need[@]}" >&2
fi
ln -sf "$(command -v etcd || echo /usr/bin/etcd)" "$BIN/etcd"

if [ ! -x "$BIN/kube-apiserver" ]; then
  src_list=/etc/apt/sources.list.d/shardline-deb-src.sources
  if [ ! -f "$src_list" ]; then
    printf 'Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      | as_root tee "$src_list" >/dev/null
    as_root apt-get update -qq >&2
  fi
  work="$CACHE/src"
  rm -rf "$work" && mkdir -p "$work"
  (cd "$work" && apt-get source -qq kubernetes >&2)
  tree="$(find "$work" -maxdepth 1 -type d -name 'kubernetes-*' | head -n1)"
  rm -rf "$tree/vendor/github.com/modern-go/reflect2"
  cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$tree/vendor/github.com/modern-go/reflect2"
  (cd "$tree" && make WHAT=cmd/kube-apiserver >&2)
  cp "$tree/_output/bin/kube-apiserver" "$BIN/kube-apiserver"
  rm -rf "$work"
fi
echo "$BIN"
