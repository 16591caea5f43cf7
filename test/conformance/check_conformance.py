#!/usr/bin/env python3
"""`towns-e2ee conformance` against our own driver, against drivers broken on
purpose (broken_driver.py), and with --client against the canonical client's
driver.

    check_conformance.py TOWNS_E2EE [--client "COMMAND" WORKDIR]

Our driver passes every run with no deviation; the one run in which only the
reference acts is reported as such and not counted. A broken peer fails exactly
the runs it plays a broken part in, and the run goes on. The client's driver
passes, its documented deviations reported as deviations."""
import json
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from checks import check, summary  # noqa: E402


def run(cli, peer, report, *extra, cwd=None):
    r = subprocess.run([cli, "conformance", "--peer", peer, "--report", report, "--quiet", *extra],
                       capture_output=True, text=True, cwd=cwd)
    with open(os.path.join(report, "report.json")) as f:
        return r.returncode, r.stdout, json.load(f)


def common(rep, out, name):
    s = rep["summary"]
    check(len(rep["cases"]) == sum(s.values()), f"{name}: a row per run")
    check(all(c["section"].startswith("protocol.md ") and c["roles"] for c in rep["cases"]),
          f"{name}: every row names its protocol section and roles")
    check(re.fullmatch(r"\d+ passed, \d+ failed, \d+ deviations \(\d+ not expressible, \d+ reference only: not counted\)",
                       out.strip()) is not None, f"{name}: the summary line: {out.strip()}")
    check(out.startswith(f"{s['passed']} passed, {s['failed']} failed, {s['deviations']} deviations"),
          f"{name}: the summary line gives the counts")


def main():
    cli = os.path.abspath(sys.argv[1])
    tmp = tempfile.mkdtemp(prefix="towns-conformance-")
    if len(sys.argv) > 2 and sys.argv[2] == "--client":
        code, out, rep = run(cli, sys.argv[3], os.path.join(tmp, "client"), cwd=sys.argv[4])
        s = rep["summary"]
        common(rep, out, "client")
        check(code == 0 and s == {"passed": 44, "failed": 0, "deviations": 27, "notExpressible": 0, "referenceOnly": 1},
              f"the client's driver conforms, deviations aside: {out.strip()}")
        # Its snapshot file is changed as this library's store is; it replaces a
        # damaged outbound session and answers libolm's error for an inbound one.
        damaged = sorted((c["id"], c["result"]) for c in rep["cases"] if "damaged" in c["scenario"])
        check(len(damaged) == 6 and all(r == "deviation" for _, r in damaged), f"the store-damaging scenarios deviate: {damaged}")
        check(all("does not unpickle" in c["why"] for c in rep["cases"] if "damaged" in c["scenario"]),
              "and name the docs/compat.md row")
        dev = [c for c in rep["cases"] if c["result"] == "deviation"]
        check(len(dev) > 0 and all(c["exchanges"] and "docs/compat.md" in c["why"] for c in dev),
              "each deviation names docs/compat.md and shows the exchanges")
        return summary()

    ours = f"{cli} driver"
    code, out, rep = run(cli, ours, os.path.join(tmp, "ours"))
    s = rep["summary"]
    common(rep, out, "ours")
    # 20 scenarios: 17 with roles A and B (3 runs each), 3 with a third device C
    # (7 runs each); one run is the reference's alone.
    check(code == 0 and s == {"passed": 71, "failed": 0, "deviations": 0, "notExpressible": 0, "referenceOnly": 1},
          f"our driver passes every run: {out.strip()}")
    check(len({c["scenario"] for c in rep["cases"]}) == 20, "every scenario ran")
    damaged = [c["id"] for c in rep["cases"] if "damaged" in c["scenario"] and c["result"] == "pass"]
    check(len(damaged) == 6, f"the two store-damaging scenarios pass in their three runs each: {damaged}")
    only_ref = [c["id"] for c in rep["cases"] if c["result"] == "reference-only"]
    check(only_ref == ["solicitation_duplicate_pending [A=peer B=reference]"],
          f"the run in which only the reference acts is not counted: {only_ref}")
    with open(os.path.join(tmp, "ours", "report.html")) as f:
        html = f.read()
    check(html.startswith("<!DOCTYPE html>") and "towns-e2ee conformance" in html and "<script" not in html,
          "the HTML report is one self-contained page")

    # Two peers: each against the reference, and the two together.
    code, out, rep = run(cli, ours, os.path.join(tmp, "two"), "--peer", ours, "--only", "version0_payloads")
    ids = [c["id"] for c in rep["cases"]]
    check(code == 0 and len(ids) == 8 and "version0_payloads [A=peer 1 B=peer 2]" in ids,
          f"two peers: 3 runs each with the reference, 2 together: {ids}")

    # A peer whose store file is in a format the suite cannot change: the
    # store-damaging scenarios are not expressible with it, and not counted.
    code, out, rep = run(cli, f"{sys.executable} {HERE}/broken_driver.py foreign-store {ours}",
                         os.path.join(tmp, "foreign-store"), "--only", "damaged")
    results = sorted((c["id"], c["result"]) for c in rep["cases"])
    want = sorted((f"{n} [{r}]", "not-expressible") for n in ("damaged_outbound_session", "import_over_damaged_session")
                  for r in ("A=reference B=peer", "A=peer B=reference", "A=peer B=peer"))
    check(code == 0 and results == want, f"foreign-store: every run not expressible: {results}")
    check(all("in a format the suite does not know" in c["why"] for c in rep["cases"]),
          f"foreign-store: each row says why: {[c['why'] for c in rep['cases']][:1]}")
    check(out.strip() == "0 passed, 0 failed, 0 deviations (6 not expressible, 0 reference only: not counted)",
          f"foreign-store: nothing counted: {out.strip()}")

    # A peer that writes much to stderr is read while it runs (it would block
    # otherwise), and a failed run's row holds the tail of its stderr.
    code, out, rep = run(cli, f"{sys.executable} {HERE}/broken_driver.py shout-exit-on=decrypt_from_device {ours}",
                         os.path.join(tmp, "shout"), "--only", "olm_to_device_payloads", "--timeout-ms", "20000")
    rows = {c["id"]: c for c in rep["cases"]}
    failed = sorted(i for i, c in rows.items() if c["result"] == "fail")
    check(code == 1 and failed == [f"olm_to_device_payloads [{r}]" for r in ("A=peer B=peer", "A=reference B=peer")],
          f"shout: the runs where the peer decrypts from a device fail: {failed}")
    line = "broken_driver.py: giving up before answering decrypt_from_device, exit status 3\n"
    for i in failed:
        err = [e for e in rows[i].get("stderr", []) if e["driver"] == "B (peer)"]
        check(len(err) == 1 and err[0]["text"].endswith(line), f"shout: {i}: the row holds the peer's last stderr line")
        text = err[0]["text"] if err else ""
        note, _, tail = text.partition("\n")
        check(re.fullmatch(r"\(\d+ earlier bytes not kept\)", note) is not None and len(tail.encode()) == 64 * 1024,
              f"shout: {i}: 64 KiB of stderr kept, the rest counted: {note!r}, {len(tail.encode())}")
        check("exited with status 3" in rows[i]["why"], f"shout: {i}: why: {rows[i]['why']}")
    passed = rows.get("olm_to_device_payloads [A=peer B=reference]", {})
    check(passed.get("result") == "pass" and "stderr" not in passed, "shout: a noisy peer that answers passes, no stderr shown")
    with open(os.path.join(tmp, "shout", "report.html")) as f:
        check(line.strip() in f.read(), "shout: the HTML report shows the peer's stderr")

    def broken(mode, only, want_failed, why_has, *extra):
        code, out, rep = run(cli, f"{sys.executable} {HERE}/broken_driver.py {mode} {ours}",
                             os.path.join(tmp, mode.replace("=", "-")), "--only", only, *extra)
        got = {c["id"] for c in rep["cases"] if c["result"] == "fail"}
        check(code == 1, f"{mode}: the run fails")
        check(got == want_failed, f"{mode}: failed {sorted(got - want_failed)} not expected, {sorted(want_failed - got)} not caught")
        whys = [c.get("why", "") for c in rep["cases"] if c["result"] == "fail"]
        check(all(why_has in w for w in whys), f"{mode}: each failure says why ({why_has}): {whys[:2]}")
        check(all(c["exchanges"] for c in rep["cases"] if c["result"] == "fail"), f"{mode}: failures show the exchanges")

    # --vectors: the corpus through the peer in the same report and counts, as
    # `vectors verify --driver` runs it (its own test checks case by case).
    corpus = os.path.join(HERE, "..", "vectors")
    code, out, rep = run(cli, ours, os.path.join(tmp, "vectors"), "--only", "session_export", "--vectors", corpus)
    vec = [c for c in rep["cases"] if c.get("part") == "vectors"]
    results = [c["result"] for c in vec]
    check(code == 0, f"vectors: our driver passes ({out.strip()})")
    check(len(vec) == 643 and results.count("pass") == 296 and results.count("not-expressible") == 347,
          f"vectors: 643 rows, 296 passed, 347 not expressible: {len(vec)}, {results.count('pass')}, {results.count('not-expressible')}")
    check(all(c["roles"] == {"device": "peer"} for c in vec), "vectors: each row names the peer's role")
    check(rep["summary"] == {"passed": 3 + 296, "failed": 0, "deviations": 0, "notExpressible": 347, "referenceOnly": 0},
          f"vectors: the summary counts scenario runs and vectors together: {rep['summary']}")
    code, out, rep = run(cli, f"{sys.executable} {HERE}/broken_driver.py flip-plaintext {ours}",
                         os.path.join(tmp, "vectors-flip"), "--only", "derived_scheme", "--vectors", corpus)
    vec_failed = [c for c in rep["cases"] if c.get("part") == "vectors" and c["result"] == "fail"]
    check(code == 1 and len(vec_failed) > 0, f"vectors: a driver that flips plaintexts fails vectors too ({len(vec_failed)})")
    check(rep["summary"]["failed"] == 3 + len(vec_failed), "vectors: its failures are counted with the scenarios'")

    broken("flip-plaintext", "derived_scheme",
           {f"derived_scheme [{r}]" for r in ("A=reference B=peer", "A=peer B=reference", "A=peer B=peer")}, " reads ")
    # A hang in share fails the runs where the peer shares (it plays A), and only those.
    broken("hang-on=share", "megolm_encrypt_share_decrypt",
           {f"megolm_encrypt_share_decrypt [A=peer {r}]" for r in
            ("B=reference C=reference", "B=reference C=peer", "B=peer C=reference", "B=peer C=peer")},
           "did not answer share within 1500 ms", "--timeout-ms", "1500")
    # A wrong code fails the runs where the peer decrypts from a device (it plays B).
    broken("wrong-code", "olm_to_device_payloads",
           {f"olm_to_device_payloads [{r}]" for r in ("A=reference B=peer", "A=peer B=peer")}, "expected error DECRYPTION_FAILED")
    return summary()


if __name__ == "__main__":
    sys.exit(main())
