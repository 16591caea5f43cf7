#!/usr/bin/env python3
"""tools/node/fetch.py refuses what it must, offline: a tarball whose sha512 is
not the lock's, a lock integrity that is not sha512, an unreachable registry,
and tarball entries outside package/, with '..', or of another type than file
or directory; a good tarball unpacks with its modes.

    check_fetch.py ROOT
"""
import base64
import hashlib
import importlib.util
import io
import os
import sys
import tarfile
import tempfile
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "conformance"))
from checks import check, summary  # noqa: E402

root = sys.argv[1]
spec = importlib.util.spec_from_file_location("fetch", os.path.join(root, "tools", "node", "fetch.py"))
fetch = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fetch)


def refused(fn, *args):
    """The message fetch.py exits with, or None when it did not exit."""
    try:
        fn(*args)
    except SystemExit as e:
        return str(e.code)
    return None


def tarball(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.REGTYPE:
                info.size = len(data)
                info.mode = 0o755 if name.endswith("/run") else 0o644
                t.addfile(info, io.BytesIO(data))
            else:
                if kind == tarfile.SYMTYPE:
                    info.linkname = "/etc/passwd"
                t.addfile(info)
    return buf.getvalue()


def sri(data):
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


class Response(io.BytesIO):
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


good = tarball([("package/package.json", tarfile.REGTYPE, b"{}"), ("package/bin/run", tarfile.REGTYPE, b"#!/bin/sh\n")])
served = {}


def urlopen(url, timeout=None):
    if url not in served:
        raise OSError("unreachable")
    return Response(served[url])


urllib.request.urlopen = urlopen
url = f"{fetch.REGISTRY}/pkg/-/pkg-1.0.0.tgz"
served[url] = good

check(refused(fetch.fetch, "pkg", "1.0.0", sri(good)) is None, "a tarball matching the lock's sha512 is taken")
msg = refused(fetch.fetch, "pkg", "1.0.0", sri(good + b"x"))
check(msg is not None and "does not match package-lock.json's integrity" in msg, f"a changed tarball is refused: {msg}")
msg = refused(fetch.fetch, "pkg", "1.0.0", "sha1-" + base64.b64encode(hashlib.sha1(good).digest()).decode())
check(msg is not None and "not sha512" in msg, f"an integrity other than sha512 is refused: {msg}")
msg = refused(fetch.fetch, "other", "1.0.0", sri(good))
check(msg is not None and "cannot fetch" in msg, f"an unreachable tarball is refused: {msg}")

with tempfile.TemporaryDirectory() as d:
    dest = os.path.join(d, "pkg")
    check(refused(fetch.unpack, good, dest) is None, "a good tarball unpacks")
    check(open(os.path.join(dest, "package.json")).read() == "{}", "its files are there")
    check(os.stat(os.path.join(dest, "bin", "run")).st_mode & 0o777 == 0o755, "executables keep their mode")
    check(os.stat(os.path.join(dest, "package.json")).st_mode & 0o777 == 0o644, "other files are 0644")
    for name, entries in [
        ("an entry outside package/", [("other/x", tarfile.REGTYPE, b"")]),
        ("an entry with '..'", [("package/../../x", tarfile.REGTYPE, b"")]),
        ("an absolute entry", [("/package/x", tarfile.REGTYPE, b"")]),
        ("a symbolic link", [("package/link", tarfile.SYMTYPE, b"")]),
    ]:
        # Over the package installed above: a refusal leaves it as it was.
        msg = refused(fetch.unpack, tarball(entries), dest)
        check(msg is not None and "unexpected" in msg, f"{name} is refused: {msg}")
        check(sorted(os.listdir(dest)) == ["bin", "package.json"] and open(os.path.join(dest, "package.json")).read() == "{}",
              f"{name}: the installed package is left alone")

sys.exit(summary())
