#!/usr/bin/env bash
# tools/abi-check must fail, with the right advice, when the library differs
# from its baseline. Baselines are made from the checked-in one:
#   removed   a function the library no longer has -> incompatible, same SONAME
#   resonamed the same, and the baseline under another SONAME -> incompatible, new SONAME
#   added     a function the baseline lacks -> compatible, update the baseline
# Usage: check_abi_check.sh LIBRARY
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
lib=$1
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
passed=0 failed=0
xz -dc "$root/abi/libtowns-e2ee.abi.xz" > "$scratch/base.abi"
symbol=$(grep -m1 -o "<elf-symbol name='_ZN5towns[^']*'" "$scratch/base.abi" | cut -d"'" -f2)
[ -n "$symbol" ] || { echo "FAIL: no towns:: function symbol in the baseline"; echo "0 passed, 1 failed"; exit 1; }
fake="    <elf-symbol name='_ZN5towns8vanishedEv' version='TOWNS_E2EE_0' is-default-version='yes' type='func-type' binding='global-binding' visibility='default-visibility' is-defined='yes'/>"
awk -v fake="$fake" '{print} /<elf-function-symbols>/{print fake}' "$scratch/base.abi" | xz -c > "$scratch/removed.xz"
awk -v fake="$fake" '{print} /<elf-function-symbols>/{print fake}' "$scratch/base.abi" |
  sed "s/soname='libtowns-e2ee.so.[0-9]*'/soname='libtowns-e2ee.so.99'/" | xz -c > "$scratch/resonamed.xz"
grep -v "<elf-symbol name='$symbol'" "$scratch/base.abi" | xz -c > "$scratch/added.xz"
# The library's own description, made once for every check below.
"$root/tools/abi-check" "$lib" --dump "$scratch/current.abi" || { echo "FAIL: abidw"; echo "0 passed, 1 failed"; exit 1; }

expect() {  # expect <name> <baseline> <text>
  local out rc
  out=$(TOWNS_ABI_CURRENT="$scratch/current.abi" TOWNS_ABI_BASELINE="$2" "$root/tools/abi-check" "$lib" 2>&1)
  rc=$?
  if [ $rc -ne 0 ] && grep -qF "$3" <<<"$out"; then
    echo "ok: $1"
    passed=$((passed + 1))
  else
    echo "FAIL: $1 (status $rc)"
    tail -5 <<<"$out"
    failed=$((failed + 1))
  fi
}
expect "a removed function is an incompatible change under the same SONAME" "$scratch/removed.xz" \
  "an incompatible ABI change under the same SONAME"
expect "an incompatible change with a new SONAME asks for the new baseline" "$scratch/resonamed.xz" \
  "an incompatible ABI change with a new SONAME"
expect "an added function asks for the baseline to be updated" "$scratch/added.xz" "the ABI changed compatibly"
if ! out=$(TOWNS_ABI_CURRENT="$scratch/current.abi" TOWNS_ABI_BASELINE="$scratch/none.xz" "$root/tools/abi-check" "$lib") && grep -q "no baseline" <<<"$out"; then
  echo "ok: a missing baseline fails"; passed=$((passed + 1))
else
  echo "FAIL: a missing baseline"; failed=$((failed + 1))
fi
echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
