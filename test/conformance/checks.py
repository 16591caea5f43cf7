"""The counting both conformance check scripts use: check(ok, what) records a
result and prints what failed; summary() prints the totals and gives the exit
status."""
passed = failed = 0


def check(ok, what):
    global passed, failed
    if ok:
        passed += 1
    else:
        failed += 1
        print(f"FAIL: {what}")


def summary():
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0
