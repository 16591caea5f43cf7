#!/usr/bin/env python3
"""Sums up a meson test log: Catch2 suites count their test cases, other tests
count as one each. Prints the closing line "N passed, N failed"."""
import json
import re
import sys

CATCH_ALL = re.compile(r"All tests passed \((\d+) assertions? in (\d+) test cases?\)")
CATCH_SOME = re.compile(r"test cases:\s+(\d+)\s+\|\s+(\d+) passed\s+\|\s+(\d+) failed")
SUMMARY = re.compile(r"^(?:\w+: )?(\d+) passed, (\d+) failed", re.M)

passed = failed = skipped = 0
with open(sys.argv[1], encoding="utf-8") as log:
    for line in log:
        entry = json.loads(line)
        out = entry.get("stdout", "") or ""
        result = entry.get("result", "")
        if result == "SKIP":
            skipped += 1
            continue
        ok = result in ("OK", "EXPECTEDFAIL")
        m_all, m_some, m_sum = CATCH_ALL.search(out), CATCH_SOME.search(out), SUMMARY.findall(out)
        if m_all and ok:
            passed += int(m_all.group(2))
        elif m_some:
            passed += int(m_some.group(2))
            failed += int(m_some.group(3))
        elif m_sum:
            p, f = m_sum[-1]
            passed += int(p)
            failed += int(f) if ok or int(f) > 0 else 1
        elif ok:
            passed += 1
        else:
            failed += 1
print(f"{passed} passed, {failed} failed" + (f", {skipped} skipped" if skipped else ""))
