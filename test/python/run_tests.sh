#!/usr/bin/env bash
# The Python package (python/) against the built library: a venv in the build
# directory that sees the system's setuptools and pytest (no PyPI access needed),
# the package installed into it from a copy of python/ (pip writes build/ and
# *.egg-info beside the sources it builds), then pytest on the copy's tests.
# Nothing is written into the source tree.
#   run_tests.sh <source root> <build root> [pytest args...]
set -euo pipefail
src=$(cd "$1" && pwd)
build=$(cd "$2" && pwd)
shift 2

lib="$build/lib/libtowns-e2ee.so.0"
[ -e "$lib" ] || { echo "no $lib: build the library first" >&2; exit 1; }

# A Python with venv, setuptools, wheel and pytest (Debian 12: python3-venv,
# python3-setuptools, python3-wheel, python3-pytest). The first python3 on PATH
# may be another one (pyenv); /usr/bin/python3 is Debian's.
python=
for p in ${TOWNS_PYTHON:-} python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import venv, ensurepip, setuptools, wheel, pytest' 2>/dev/null; then
    python=$(command -v "$p")
    break
  fi
done
if [ -z "$python" ]; then
  echo "no python3 with venv, ensurepip, setuptools, wheel and pytest:" \
       "apt-get install python3-venv python3-setuptools python3-wheel python3-pytest" >&2
  exit 1
fi

work="$build/python-test"
rm -rf "$work"
mkdir -p "$work"
export PIP_CACHE_DIR="$work/pip-cache" PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
export PYTHONPYCACHEPREFIX="$work/pycache"  # no __pycache__ beside any source
export TMPDIR="$work/tmp"
mkdir -p "$TMPDIR"

export TOWNS_E2EE_LIBRARY="$lib"
export TOWNS_E2EE_VECTORS_DIR="$src/test/vectors"
"$python" -m venv --system-site-packages "$work/venv"
cp -r "$src/python" "$work/src"
"$work/venv/bin/python" -m pip install --quiet --no-build-isolation --no-index "$work/src"
(cd "$work" && "$work/venv/bin/python" -c 'import towns_e2ee, sys; f = towns_e2ee.__file__
sys.exit(0 if "site-packages" in f else "towns_e2ee was imported from " + f + ", not the venv")')

# From the work dir: the package imported is the installed one (tests/ holds none,
# and the copy's towns_e2ee/ is not on sys.path).
cd "$work"
exec "$work/venv/bin/python" -m pytest -p no:cacheprovider --rootdir "$work/src" -q "$work/src/tests" "$@"
