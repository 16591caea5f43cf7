#!/usr/bin/env python3
"""Checks what libtowns-e2ee.so exports and needs (issue 15).

Usage: check_symbols.py LIBRARY [C_HEADER]

Fails when the library
- exports (defines, dynamically) any symbol that is not the API: a C++ symbol
  outside namespace towns (demangled: towns::..., or typeinfo/vtable/VTT/thunk
  of a towns:: type), a C symbol not named towns_*, and in particular anything
  of river:: (generated protobuf classes), google:: (the protobuf runtime) or
  olm_ (libolm);
- needs a protobuf runtime: a NEEDED entry libprotobuf*, or any undefined
  google:: symbol (the library carries its own codec, so that an application
  can use any protobuf version beside it).
Prints the offending symbols, then "N passed, M failed".
"""
import re
import subprocess
import sys

API = re.compile(r"^(towns::|towns_|(typeinfo name|typeinfo|vtable|VTT|non-virtual thunk|virtual thunk) (for|to) towns::)")
# The libolm layer (towns::olm) and private implementations (::Impl) are
# internal even though they live in namespace towns.
FORBIDDEN = re.compile(r"(river::|google::|^olm_|^_olm|towns::olm::|::Impl\b|towns::wire::|towns::trace::)")


def run(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def symbols(lib, defined):
    flag = "--defined-only" if defined else "--undefined-only"
    names = [line.split()[-1].split("@")[0] for line in run("nm", "-D", flag, lib).splitlines() if line.strip()]
    if not names:
        return []
    out = subprocess.run(["c++filt"], input="\n".join(names), check=True, capture_output=True, text=True).stdout
    return out.splitlines()


def main():
    if len(sys.argv) not in (2, 3):
        print(__doc__)
        return 2
    lib = sys.argv[1]
    passed = failed = 0

    def check(ok, what, bad):
        nonlocal passed, failed
        if ok:
            passed += 1
            print(f"ok: {what}")
        else:
            failed += 1
            print(f"FAIL: {what}")
            for b in bad[:40]:
                print(f"    {b}")
            if len(bad) > 40:
                print(f"    ... and {len(bad) - 40} more")

    defined = symbols(lib, True)
    # The version node (TOWNS_E2EE_0) is an absolute symbol, not code.
    exported = [s for s in defined if not re.fullmatch(r"TOWNS_E2EE_\d+", s)]
    check(len(exported) > 100, f"the API is exported ({len(exported)} symbols)", [])
    forbidden = [s for s in exported if FORBIDDEN.search(s)]
    check(not forbidden, "no river::, google::, olm_ or internal towns:: (olm, wire, trace, Impl) symbol is exported", forbidden)
    outside = [s for s in exported if not API.match(s)]
    check(not outside, "every exported symbol is towns:: (C++) or towns_* (C)", outside)
    for header in sys.argv[2:]:
        # Every function the C header declares is exported, and nothing else
        # named towns_ is.
        text = re.sub(r"/\*.*?\*/", "", open(header).read(), flags=re.S)
        # (Declarations are marked TOWNS_API; "towns_status (*callback)(...)"
        # fields of the host struct are not functions.)
        declared = set(re.findall(r"\bTOWNS_API\b[^;{}]*?\b(towns_\w+)\s*\(", text))
        c_api = {s for s in exported if s.startswith("towns_")}
        check(declared and declared <= c_api, f"every function of {header.split('/')[-1]} is exported ({len(declared)})",
              sorted(declared - c_api))
        check(c_api <= declared, "no towns_* symbol outside the C header is exported", sorted(c_api - declared))

    needed = [l for l in run("readelf", "-d", lib).splitlines() if "(NEEDED)" in l]
    protobuf = [l.strip() for l in needed if "libprotobuf" in l]
    check(not protobuf, "no protobuf runtime is NEEDED", protobuf)
    undefined_google = [s for s in symbols(lib, False) if "google::" in s]
    check(not undefined_google, "no google:: symbol is imported", undefined_google)
    soname = [l for l in run("readelf", "-d", lib).splitlines() if "(SONAME)" in l]
    check(len(soname) == 1 and "libtowns-e2ee.so." in soname[0], "the SONAME is libtowns-e2ee.so.<abi>", soname)

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
