#!/usr/bin/env bash
# Installs the build into a scratch DESTDIR and builds a small program against it
# with nothing but pkg-config, as another project would; then runs the program.
set -euo pipefail
build_dir=$1
source_dir=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
DESTDIR="$scratch/root" meson install -C "$build_dir" --quiet --no-rebuild >/dev/null
pc=$(find "$scratch/root" -name towns-e2ee.pc | head -1)
[ -n "$pc" ] || { echo "no towns-e2ee.pc installed"; exit 1; }
for h in towns/error.h towns/protocol/group_encryption_crypto.h towns/protocol/derived.h towns/protocol/media.h \
         towns/proto/protocol.pb.h; do
  find "$scratch/root" -path "*/include/$h" | grep -q . || { echo "header $h not installed"; exit 1; }
done
export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR="$scratch/root"
libdir=$(dirname "$(dirname "$pc")")
ls "$libdir"/libtowns-e2ee.so.0 >/dev/null
# shellcheck disable=SC2046
c++ -std=c++20 "$source_dir/consumer.cpp" $(pkg-config --cflags --libs towns-e2ee) -o "$scratch/consumer"
LD_LIBRARY_PATH="$libdir" "$scratch/consumer"
echo "1 passed, 0 failed"
