#!/usr/bin/env python3
"""`towns-e2ee vectors verify <dir>` passes every vector of the corpus and says so.

  check_vectors_cli.py <towns-e2ee> <dir>

The expected count is the number of tests in the corpus's *.json files (every
testGroups[].tests[] entry), so regenerating with more vectors keeps this exact.
The output must be exactly "<count> passed, 0 failed" and the exit status 0.
"""
import glob
import json
import os
import subprocess
import sys


def main():
    exe, corpus = sys.argv[1], sys.argv[2]
    count = 0
    for path in sorted(glob.glob(os.path.join(corpus, "*.json"))):
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
        count += sum(len(g["tests"]) for g in doc["testGroups"])
    if count == 0:
        print(f"no vectors in {corpus}")
        return 1
    p = subprocess.run([exe, "vectors", "verify", corpus], stdout=subprocess.PIPE, text=True, timeout=300)
    expected = f"{count} passed, 0 failed\n"
    if p.returncode != 0 or p.stdout != expected:
        print(f"expected exit 0 and output {expected!r}\ngot exit {p.returncode} and output {p.stdout!r}")
        return 1
    print(expected, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
