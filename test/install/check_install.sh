#!/usr/bin/env bash
# The library as an application sees it (issue 15). Installs the build into a
# scratch DESTDIR, then, with nothing but what was installed and pkg-config:
#   1. checks the installed headers: the API's, and no generated protobuf or
#      libolm header;
#   2. checks the installed library's dynamic symbols (check_symbols.py);
#   3. builds and runs a small C++ consumer;
#   4. builds and runs an application that generates the whole upstream Towns
#      protocol.proto (package river, plus a field of a newer protocol) itself
#      and round-trips every facade operation through its own classes;
#   5. builds the C consumer as C99 and runs it.
# Usage: check_install.sh BUILD_DIR
set -euo pipefail
build_dir=$1
source_dir=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
passed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }
fail() { echo "FAIL: $*"; echo "$passed passed, 1 failed"; exit 1; }

DESTDIR="$scratch/root" meson install -C "$build_dir" --quiet --no-rebuild >/dev/null
pc=$(find "$scratch/root" -name towns-e2ee.pc | head -1)
[ -n "$pc" ] || fail "no towns-e2ee.pc installed"
include_dir=$(find "$scratch/root" -type d -path '*/include/towns' | head -1)
for h in towns/error.h towns/protocol/group_encryption_crypto.h towns/protocol/messages.h \
         towns/protocol/derived.h towns/protocol/media.h towns/exchange/key_exchange.h \
         towns/towns.h towns/vectors.h; do
  [ -f "$(dirname "$include_dir")/$h" ] || fail "header $h not installed"
done
ok "the API's headers are installed"
leaked=$(find "$include_dir" -name '*.pb.h' -o -path '*/towns/olm/*' | sed "s|$scratch/root||")
[ -z "$leaked" ] || fail "generated protobuf or libolm headers installed: $leaked"
bad_includes=$(grep -rlE '#include [<"](google/|olm/|towns/proto/)' "$include_dir" | sed "s|$scratch/root||" || true)
[ -z "$bad_includes" ] || fail "installed headers include protobuf or libolm: $bad_includes"
# Nor name their types in code (a forward declaration would leak them as
# surely); comments may name the wire messages (river.EncryptedData).
libolm='\bOlm(Account|Session|InboundGroupSession|OutboundGroupSession|Utility|PkEncryption|PkDecryption|SAS)\b'
libolm+='|\bolm_(account|session|inbound_group|outbound_group|utility|clear|pickle|unpickle|create)'
named=$(grep -rnE "\\briver\\b|google::|$libolm" "$include_dir" |
        grep -vE ':[0-9]+:[[:space:]]*(//|/\*|\*)' | sed "s|$scratch/root||" || true)
[ -z "$named" ] || fail "installed headers name protobuf or libolm types: $named"
ok "no installed header is or includes a protobuf or libolm header"
if grep -q protobuf "$pc"; then fail "towns-e2ee.pc requires protobuf"; fi
ok "towns-e2ee.pc does not require protobuf"

export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR="$scratch/root"
libdir=$(dirname "$(dirname "$pc")")
lib="$libdir/libtowns-e2ee.so.0"
[ -e "$lib" ] || fail "libtowns-e2ee.so.0 not installed"
c_header="$(dirname "$include_dir")/towns/towns.h"
python3 "$source_dir/check_symbols.py" "$(readlink -f "$lib")" "$c_header" || fail "exported symbols"
ok "exported symbols"

# shellcheck disable=SC2046
c++ -std=c++20 "$source_dir/consumer.cpp" $(pkg-config --cflags --libs towns-e2ee) -o "$scratch/consumer"
LD_LIBRARY_PATH="$libdir" "$scratch/consumer" || fail "the C++ consumer"
ok "a C++ consumer builds with pkg-config alone and runs"

mkdir -p "$scratch/app"
protoc --proto_path="$source_dir/app" --cpp_out="$scratch/app" "$source_dir/app/protocol.proto"
# shellcheck disable=SC2046
c++ -std=c++20 -I"$scratch/app" "$source_dir/app/app.cpp" "$scratch/app/protocol.pb.cc" \
  $(pkg-config --cflags --libs towns-e2ee protobuf) -o "$scratch/app/app"
mkdir -p "$scratch/app/stores"
LD_LIBRARY_PATH="$libdir" "$scratch/app/app" "$scratch/app/stores" > "$scratch/app/log" || { cat "$scratch/app/log"; fail "the application with its own protos"; }
tail -1 "$scratch/app/log"
ok "an application with the whole upstream protocol.proto (and a newer field) links and round-trips every facade operation"

# shellcheck disable=SC2046
cc -std=c99 -Wall -Wextra -pedantic -Werror "$source_dir/consumer.c" $(pkg-config --cflags --libs towns-e2ee) -o "$scratch/consumer_c"
mkdir -p "$scratch/c"
LD_LIBRARY_PATH="$libdir" "$scratch/consumer_c" "$scratch/c" || fail "the C consumer"
ok "a C99 consumer builds with pkg-config alone and runs"
echo "$passed passed, 0 failed"
