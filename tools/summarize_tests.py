#!/usr/bin/env python3
"""Sums up meson test logs (testlog.json): Catch2 suites count their test cases,
tests that print "N passed, N failed" count those, other tests count as one
each. Prints the closing line "N passed, N failed"."""
import json
import re
import sys

CATCH_ALL = re.compile(r"All tests passed \((\d+) assertions? in (\d+) test cases?\)")
CATCH_SOME = re.compile(r"test cases:\s+(\d+)\s+\|\s+(\d+) passed\s+\|\s+(\d+) failed")
SUMMARY = re.compile(r"^(?:\w+: )?(\d+) passed, (\d+) failed", re.M)


def count(entry):
    """(passed, failed, skipped) for one test of a log."""
    out = entry.get("stdout", "") or ""
    result = entry.get("result", "")
    if result == "SKIP":
        return 0, 0, 1
    ok = result in ("OK", "EXPECTEDFAIL")
    m_all, m_some, m_sum = CATCH_ALL.search(out), CATCH_SOME.search(out), SUMMARY.findall(out)
    if m_all and ok:
        return int(m_all.group(2)), 0, 0
    if m_some:
        return int(m_some.group(2)), int(m_some.group(3)), 0
    if m_sum:
        p, f = (int(x) for x in m_sum[-1])
        return p, (f if f > 0 or ok else 1), 0
    return (1, 0, 0) if ok else (0, 1, 0)


passed = failed = skipped = 0
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as log:
        for line in log:
            p, f, s = count(json.loads(line))
            passed, failed, skipped = passed + p, failed + f, skipped + s
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
