#!/usr/bin/env bash
# Provides a real Kubernetes 1.20.2 for the operator tests on a fresh Debian 12 machine, no
# docker and no registry needed:
#   - etcd from Debian's etcd-server package;
#   - kube-apiserver, kubelet, kube-controller-manager and kube-scheduler built once from
#     Debian bookworm's kubernetes source package and cached in ~/.cache/shardline/k8s/bin;
#   - the pause binary (the pods' sandbox) built statically from the same tree, and its image
#     (k8s.gcr.io/pause:3.2, FROM scratch) as pause.tar;
#   - containerd, runc, the CNI plugins and buildah from Debian, for real nodes and images.
# Kubernetes 1.20 vendors modern-go/reflect2 v1.0.1, which crashes under Go 1.19 as soon as
# custom resources are used; the vendored copy is replaced by Debian's v1.0.2 before building.
# Prints the directory holding the binaries on its last line.
set -euo pipefail

CACHE="${SHARDLINE_K8S_CACHE:-$HOME/.cache/shardline/k8s}"
BIN="$CACHE/bin"
COMPONENTS=(kube-apiserver kubelet kube-controller-manager kube-scheduler)
mkdir -p "$BIN"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
for c in "${COMPONENTS[@]}" pause; do [ -x "$BIN/$c" ] || missing+=("$c"); done

need=()
command -v etcd >/dev/null || [ -x /usr/bin/etcd ] || need+=(etcd-server)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
command -v buildah >/dev/null || need+=(buildah)
command -v ip >/dev/null || need+=(iproute2)
command -v iptables >/dev/null || need+=(iptables)
command -v unshare >/dev/null || need+=(util-linux)
command -v mount >/dev/null || need+=(mount)
if [ ${#missing[@]} -gt 0 ]; then
  command -v go >/dev/null || need+=(golang-go)
  command -v rsync >/dev/null || need+=(rsync)
  command -v dpkg-source >/dev/null || need+=(dpkg-dev)
  command -v gcc >/dev/null || need+=(gcc)
  [ -f /usr/lib/x86_64-linux-gnu/libc.a ] || need+=(libc6-dev)
  [ -d /usr/share/gocode/src/github.com/modern-go/reflect2 ] || need+=(golang-github-modern-go-reflect2-dev)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  as_root apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
ln -sf "$(command -v etcd || echo /usr/bin/etcd)" "$BIN/etcd"

if [ ${#missing[@]} -gt 0 ]; then
  echo "building ${missing[*]} from Debian's kubernetes 1.20 source: about 20 minutes on 2 cores, once" >&2
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
  what=()
  for c in "${missing[@]}"; do [ "$c" = pause ] || what+=("cmd/$c"); done
  if [ ${#what[@]} -gt 0 ]; then
    (cd "$tree" && make WHAT="${what[*]}" >&2)
    for c in "${missing[@]}"; do [ "$c" = pause ] || cp "$tree/_output/bin/$c" "$BIN/$c.tmp"; done
  fi
  case " ${missing[*]} " in
    *" pause "*) gcc -Os -static -DVERSION=v3.2-shardline -o "$BIN/pause.tmp" "$tree/build/pause/linux/pause.c" ;;
  esac
  for c in "${missing[@]}"; do mv "$BIN/$c.tmp" "$BIN/$c"; done
  rm -rf "$work"
fi
# The pods' sandbox image, as a tarball for `ctr images import`.
if [ ! -f "$BIN/pause.tar" ] || [ "$BIN/pause" -nt "$BIN/pause.tar" ]; then
  container="$(buildah from scratch)"
  mount="$(buildah mount "$container")"
  install -m 0755 "$BIN/pause" "$mount/pause"
  buildah umount "$container" >/dev/null
  buildah config --entrypoint '["/pause"]' --user 65535:65535 "$container"
  buildah commit --quiet --rm "$container" k8s.gcr.io/pause:3.2 >/dev/null
  rm -f "$BIN/pause.tar.tmp"
  buildah push --quiet k8s.gcr.io/pause:3.2 "docker-archive:$BIN/pause.tar.tmp:k8s.gcr.io/pause:3.2" >&2
  mv "$BIN/pause.tar.tmp" "$BIN/pause.tar"
fi
echo "$BIN"
