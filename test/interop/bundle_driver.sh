#!/usr/bin/env bash
# The canonical client's driver (driver.ts, with the npm packages it imports) as
# one ES module, for the test that starts it most: `towns-e2ee conformance
# --client` starts a driver process for each role of each run (over 140), and
# through tsx each start resolved and transpiled hundreds of modules (0.8 s of
# CPU, against 0.2 s bundled). The code is the same: esbuild is what tsx itself
# transpiles with, at the version test/interop/package-lock.json pins.
#   bundle_driver.sh OUT.mjs
# writes OUT.mjs and, beside it, the olm.wasm that @towns-protocol/olm loads from
# its own directory.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: bundle_driver.sh OUT.mjs}
esbuild="$here/node_modules/.bin/esbuild"
[ -x "$esbuild" ] || { echo "bundle_driver.sh: $esbuild is missing: run tools/bootstrap" >&2; exit 1; }
# The packages' CommonJS parts call require(), which an ES module lacks: the
# banner defines it, under a name the bundle does not otherwise use.
"$esbuild" "$here/driver.ts" --bundle --platform=node --format=esm --log-level=warning --outfile="$out" \
  --banner:js="import { createRequire as __townsCreateRequire } from 'node:module'; const require = __townsCreateRequire(import.meta.url);"
cp "$here/node_modules/@towns-protocol/olm/olm.wasm" "$(dirname "$out")/olm.wasm"
