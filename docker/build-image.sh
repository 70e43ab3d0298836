#!/usr/bin/env bash
# Build the cachet image from a binary built here: `docker/build-image.sh [BINARY] [TAG]`.
# Defaults: the release binary under $CARGO_TARGET_DIR (or target/), tag `cachet:local`.
#
# There is no registry to pull a base image from, so the image starts empty (`FROM scratch`)
# and holds exactly what the binary needs: itself, the shared libraries `ldd` lists for it and
# the dynamic loader. Its C and C++ dependencies (RocksDB, jemalloc) are linked in statically.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
target="${CARGO_TARGET_DIR:-$here/../target}"
binary="${1:-$target/release/cachet}"
tag="${2:-cachet:local}"
[ -x "$binary" ] || { echo "no binary at $binary: cargo build --release -p cachet-cli" >&2; exit 1; }

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
rootfs="$context/rootfs"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
# Without its debug information: a tenth of the size, the same code.
strip --strip-debug -o "$rootfs/usr/local/bin/cachet" "$binary"
# Every library the binary loads, at the path the loader looks for it, and the loader itself.
ldd "$binary" | awk '/=> \// { print $3 } /^\t\// { print $1 }' | while read -r lib; do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done
cp "$here/Dockerfile" "$context/Dockerfile"
# The legacy builder warns that it is deprecated on every build: print its output on failure only.
if ! out="$(docker build --quiet --tag "$tag" "$context" 2>&1)"; then
  echo "$out" >&2
  exit 1
fi
echo "$tag"
