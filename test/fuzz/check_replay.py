#!/usr/bin/env python3
"""The fuzz replayer's verdicts (tools/fuzz/replay_main.cpp), checked exactly.

  check_replay.py <fuzz-replay-selftest> <fuzz-replay-X>...

The self-test target does what each input's text names (tools/fuzz/
fuzz_replay_selftest.cpp). Every case checks the exit status and the whole
output. The real replayers are checked to refuse a missing and an empty input
directory.
"""
import os
import signal
import subprocess
import sys
import tempfile

problems = []


def run(exe, *args):
    p = subprocess.run([exe, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=120)
    return p.returncode, p.stdout


def expect(name, exe, args, rc, out):
    got_rc, got_out = run(exe, *args)
    if got_rc != rc or got_out != out:
        problems.append(f"{name} ({os.path.basename(exe)}): expected exit {rc} and output\n{out!r}\n"
                        f"  got exit {got_rc} and output\n{got_out!r}")


def inputs(folder, **files):
    os.makedirs(folder, exist_ok=True)
    for name, text in files.items():
        with open(os.path.join(folder, name), "w") as f:
            f.write(text)
    return folder


def main():
    selftest, replayers = sys.argv[1], sys.argv[2:]
    with tempfile.TemporaryDirectory() as tmp:
        missing = os.path.join(tmp, "missing")
        empty = os.path.join(tmp, "empty")
        os.makedirs(empty)
        # An empty directory inside another still holds no inputs.
        os.makedirs(os.path.join(tmp, "nested_empty", "sub"))
        nested_empty = os.path.join(tmp, "nested_empty")
        good = inputs(os.path.join(tmp, "good"), a="plain", b="refusal", c="")
        one = inputs(os.path.join(tmp, "one"), x="plain")

        expect("no arguments", selftest, [], 1, "FAIL no input given\n0 passed, 1 failed\n")
        expect("good inputs", selftest, [good], 0, "3 passed, 0 failed\n")
        expect("a file argument", selftest, [os.path.join(one, "x")], 0, "1 passed, 0 failed\n")
        expect("two directories", selftest, [good, one], 0, "4 passed, 0 failed\n")
        expect("missing directory", selftest, [missing], 1,
               f"FAIL {missing}: no such file or directory\n0 passed, 1 failed\n")
        expect("missing after good", selftest, [good, missing], 1,
               f"FAIL {missing}: no such file or directory\n3 passed, 1 failed\n")
        expect("empty directory", selftest, [empty], 1, f"FAIL {empty}: directory holds no inputs\n0 passed, 1 failed\n")
        expect("nested empty directory", selftest, [nested_empty, one], 1,
               f"FAIL {nested_empty}: directory holds no inputs\n1 passed, 1 failed\n")

        bad = inputs(os.path.join(tmp, "bad"), a="plain", b="escape", c="error-escapes", d="refusal")
        expect("exceptions the target may not raise", selftest, [bad], 1,
               f"FAIL {bad}/b: the target let an exception escape: not a refusal\n"
               f"FAIL {bad}/c: the target let an exception escape: INTERNAL: outside refusals_ok\n"
               "2 passed, 2 failed\n")

        crash = inputs(os.path.join(tmp, "crash"), a="plain", b="escape", c="trap", d="plain")
        expect("a crash", selftest, [crash], -signal.SIGILL,
               f"FAIL {crash}/b: the target let an exception escape: not a refusal\n"
               f"CRASH {crash}/c\n1 passed, 2 failed\n")

        for exe in replayers:
            expect("missing directory", exe, [missing], 1,
                   f"FAIL {missing}: no such file or directory\n0 passed, 1 failed\n")
            expect("empty directory", exe, [empty], 1, f"FAIL {empty}: directory holds no inputs\n0 passed, 1 failed\n")

    for p in problems:
        print("PROBLEM " + p)
    print(f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
