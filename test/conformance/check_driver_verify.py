#!/usr/bin/env python3
"""`towns-e2ee vectors verify --driver` against our own driver, and against
drivers broken on purpose (broken_driver.py): each break is caught by exactly
the cases that should catch it, with the reason, and the run goes on after a
peer that hangs, exits or answers garbage.

    check_driver_verify.py TOWNS_E2EE VECTORS_DIR [--client "COMMAND" WORKDIR]

With --client, runs the canonical client's driver instead and requires that it
passes, its documented deviations aside."""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from checks import check, summary  # noqa: E402


def run(cli, vectors, driver, report, *extra, cwd=None):
    r = subprocess.run([cli, "vectors", "verify", vectors, "--driver", driver, "--report", report, *extra],
                       capture_output=True, text=True, cwd=cwd)
    with open(os.path.join(report, "report.json")) as f:
        return r.returncode, r.stdout, json.load(f)


def cases_of(vectors, name, pred):
    with open(os.path.join(vectors, name)) as f:
        doc = json.load(f)
    return {f"{name} tcId {t['tcId']}" for g in doc["testGroups"] for t in g["tests"] if pred(g["type"], t)}


def main():
    cli, vectors = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    tmp = tempfile.mkdtemp(prefix="towns-driver-verify-")
    if len(sys.argv) > 3 and sys.argv[3] == "--client":
        code, out, rep = run(cli, vectors, sys.argv[4], os.path.join(tmp, "client"), cwd=sys.argv[5])
        s = rep["summary"]
        check(code == 0 and s["failed"] == 0, f"the client's driver conforms, deviations aside: {out.strip()}")
        check(s["deviations"] > 0 and s["passed"] > 200, f"the client's documented deviations are reported: {s}")
        dev = [c for c in rep["cases"] if c["result"] == "deviation"]
        check(all(c["exchanges"] for c in dev), "each deviation shows what was sent and answered")
        return summary()

    ours = f"{cli} driver"
    code, out, rep = run(cli, vectors, ours, os.path.join(tmp, "ours"))
    s = rep["summary"]
    check(code == 0 and s["failed"] == 0 and s["deviations"] == 0 and s["passed"] > 250,
          f"our driver passes every expressible vector: {out.strip()}")
    check(out.strip() == f"{s['passed']} passed, 0 failed, 0 documented deviations, "
          f"{s['notExpressible']} not expressible by a driver", "the summary line")
    check(len(rep["cases"]) == sum(s.values()), "a row per case")
    check(all(c.get("section", "").startswith("protocol.md") for c in rep["cases"] if c["result"] == "pass"),
          "every case that ran names its protocol section")
    with open(os.path.join(tmp, "ours", "report.html")) as f:
        html = f.read()
    check(html.startswith("<!DOCTYPE html>") and "towns-e2ee vectors verify --driver" in html and "<script" not in html,
          "the HTML report is one self-contained page")

    def broken(mode, only, want_failed, why_has, *extra):
        code, out, rep = run(cli, vectors, f"{sys.executable} {HERE}/broken_driver.py {mode} {ours}",
                             os.path.join(tmp, mode.replace("=", "-")), "--only", only, *extra)
        got = {c["id"] for c in rep["cases"] if c["result"] == "fail"}
        check(code == 1, f"{mode}: the run fails")
        check(got == want_failed, f"{mode}: failed {sorted(got - want_failed)[:5]} not expected, "
              f"{sorted(want_failed - got)[:5]} not caught")
        whys = [c.get("why", "") for c in rep["cases"] if c["result"] == "fail"]
        check(all(why_has in w for w in whys), f"{mode}: each failure says why ({why_has}): {whys[:2]}")
        others = [c for c in rep["cases"] if c["id"] not in want_failed and c["result"] != "not-expressible"]
        check(others and all(c["result"] == "pass" for c in others), f"{mode}: every other case of {only} passes")

    broken("flip-plaintext", "megolm.json",
           cases_of(vectors, "megolm.json", lambda ty, t: ty == "megolmDecrypt" and t["result"] == "valid"),
           "plaintext differs")
    broken("wrong-code", "grpaes.json",
           cases_of(vectors, "grpaes.json", lambda ty, t: ty == "hybridDecrypt" and t.get("error") == "DECRYPTION_FAILED"),
           "")
    derived_encrypt = cases_of(vectors, "derived.json", lambda ty, t: ty == "derivedEncrypt")
    broken("hang-on=derived_encrypt", "derived.json", derived_encrypt, "did not answer derived_encrypt within 1000 ms",
           "--timeout-ms", "1000")
    broken("exit-on=derived_encrypt", "derived.json", derived_encrypt, "exited with status 3")
    broken("garbage-on=derived_encrypt", "derived.json", derived_encrypt, "not a JSON object")
    broken("swap-id-on=derived_encrypt", "derived.json", derived_encrypt, "out of order")
    # A peer noisy on stderr is read as it writes, and each failed case's row
    # holds the tail of what the peer wrote during that case.
    broken("shout-exit-on=derived_encrypt", "derived.json", derived_encrypt, "exited with status 3")
    with open(os.path.join(tmp, "shout-exit-on-derived_encrypt", "report.json")) as f:
        rows = json.load(f)["cases"]
    line = "broken_driver.py: giving up before answering derived_encrypt, exit status 3\n"
    check(all([e["driver"] for e in c.get("stderr", [])] == ["peer"] and c["stderr"][0]["text"].endswith(line)
              for c in rows if c["result"] == "fail"), "shout: each failed case's row ends with the peer's stderr line")
    check(not any("stderr" in c for c in rows if c["result"] != "fail"), "shout: other rows show no stderr")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
