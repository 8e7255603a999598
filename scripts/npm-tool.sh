#!/usr/bin/env bash
# Sourced by the neighbour scripts: installs an npm package at a pinned version into
# ~/.cache/shardline/<dir>, outside the clone, unless that version is already there.
#
#   npm_tool DIR PACKAGE VERSION BIN    prints the path of the installed BIN
npm_tool() {
  local dir="${HOME}/.cache/shardline/$1" package="$2" version="$3" bin="$4" installed
  mkdir -p "$dir"
  installed=$(node -p "require('$dir/node_modules/$package/package.json').version" 2>/dev/null || true)
  if [ "$installed" != "$version" ] || [ ! -x "$dir/node_modules/.bin/$bin" ]; then
    echo "installing $package@$version into $dir" >&2
    (cd "$dir" && npm install --silent --no-save --ignore-scripts "$package@$version" >/dev/null)
  fi
  echo "$dir/node_modules/.bin/$bin"
}
