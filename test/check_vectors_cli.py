#!/usr/bin/env python3
"""`towns-e2ee vectors verify <dir>` passes every vector of the corpus and says so.

  check_vectors_cli.py <towns-e2ee> <dir>

The expected count is the number of tests in the corpus's *.json files (every
testGroups[].tests[] entry), so regenerating with more vectors keeps this exact.
The output must be exactly "<count> passed, 0 failed" and the exit status 0.

Then crafted files: a malformed case is one failed vector with its reason (no
abort), a malformed file is reported and the run goes on, and a FIFO named
*.json is skipped without blocking.
"""
import glob
import json
import os
import subprocess
import sys
import tempfile


def crafted(exe):
    def vector_file(groups, count):
        return json.dumps({"numberOfTests": count, "testGroups": groups})

    hex_ok = {"type": "hexDecode", "tests": [{"tcId": 1, "result": "valid", "input": "0a", "output": "0a"}]}
    unknown_alg = {"type": "decideAnswer", "ownDeviceKey": "k", "tests": [
        {"tcId": 7, "result": "valid", "known": {"some-id": "no-such-algorithm"},
         "solicitation": {"deviceKey": "d", "sessionIds": ["some-id"]}, "requesterEntitled": True, "answer": None}]}
    files = {
        "a_good.json": vector_file([hex_ok], 1),
        "b_unknown_algorithm.json": vector_file([unknown_alg], 1),
        "c_no_groups.json": json.dumps({"numberOfTests": 0, "testGroups": 5}),
        "d_bad_group.json": vector_file([{"type": "hexDecode", "tests": [{"tcId": 1, "result": "valid"}]}, {"tests": 3}], 1),
        "e_not_json.json": "{",
    }
    with tempfile.TemporaryDirectory() as d:
        for name, text in files.items():
            with open(os.path.join(d, name), "w", encoding="utf-8") as f:
                f.write(text)
        os.mkfifo(os.path.join(d, "f_fifo.json"))
        try:
            p = subprocess.run([exe, "vectors", "verify", d], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, timeout=60)
        except subprocess.TimeoutExpired:
            print("crafted files: vectors verify did not finish (blocked on the FIFO?)")
            return False
    out = p.stdout
    wanted = [
        "FAIL b_unknown_algorithm.json tcId 7",
        "unknown algorithm \"no-such-algorithm\"",
        "FAIL c_no_groups.json: malformed: no testGroups list",
        "FAIL d_bad_group.json tcId 1",
        "FAIL d_bad_group.json group 2: malformed",
        "FAIL e_not_json.json: not JSON",
        "1 passed, 5 failed\n",
    ]
    missing = [w for w in wanted if w not in out]
    if p.returncode != 1 or missing or "fifo" in out or p.stderr:
        print(f"crafted files: expected exit 1 and {wanted!r}\ngot exit {p.returncode}, missing {missing!r}, "
              f"output {out!r}, stderr {p.stderr!r}")
        return False
    return True


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
    if not crafted(exe):
        return 1
    print("crafted files: malformed cases and files reported, FIFO skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
