#!/usr/bin/env python3
"""Checks tools/bench's reporting half (tools/bench_report.py and tools/bench
--from) on the fixed run in test/bench/samples.json: the plan, the medians and
per-round ratios, the fitted exponents, the markdown cells, the SVG's
structure and coordinates, and the rewrite between docs/performance.md's
markers. No timing is measured or asserted.

The fixture's numbers are made to follow known laws, so the expected values
below are worked out by hand, not copied from the output:
  megolm_decrypt (sizes 256, 1024, 4096): ours 10,000 / 5,000 / 2,500 ops/s
    (time ~ n^0.5), the client 16,000 / 4,000 / 1,000 (time ~ n^1); at 1 KiB
    the rounds vary: ours 4,000, 5,000, 5,500; client 4,000, 4,000, 5,000;
    raw 5,000 each round.
  share (10, 1,000, 100,000 devices; the last in 2 rounds): ours 2,000
    devices/s (flat; 1,800 and 2,200 at 100,000), the client 10,000 / 1,000 /
    100 (time ~ n^0.5), raw 1,000.
  store (1,000 and 1,000,000 sessions): lookup p50 4 and 16 us (~ n^0.2007),
    open 1 ms and 1 s (~ n^1), p99 1,500 us at 1M.
    python3 test/bench/check_bench_report.py <source root>
"""
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(root, "tools"))
import bench_report as br  # noqa: E402

failures = []


def check(what, got, want):
    if got != want:
        failures.append(f"{what}:\n  got  {got!r}\n  want {want!r}")


with open(os.path.join(root, "test", "bench", "samples.json"), encoding="utf-8") as f:
    samples = json.load(f)

# ---------------------------------------------------------------- the plan

full = br.plan()
check("full plan size", len(full), 36)
check("full plan, fewer rounds", [(f, n, r) for f, n, r in full if r != 5], [("backlog", 100000, 3)])
check("full plan, share sizes", [n for f, n, _ in full if f == "share"], [10, 100, 1000, 10000])
check("full plan, store sizes", [n for f, n, _ in full if f == "store"], [1000, 10000, 100000, 1000000])
quick = br.plan(quick=True)
check("quick plan size", len(quick), 31)
check("quick plan rounds", {r for _, _, r in quick}, {1})
check("quick receive sizes", [n for f, n, _ in quick if f == "receive"], [10, 100, 300])
check("plan, 2 rounds", [(f, n, r) for f, n, r in br.plan(rounds=2) if f in ("share", "backlog") and n >= 10000],
      [("share", 10000, 2), ("backlog", 10000, 2), ("backlog", 100000, 2)])
check("plan, only store", br.plan(only=["store"]),
      [("store", 1000, 5), ("store", 10000, 5), ("store", 100000, 5), ("store", 1000000, 5)])
check("plan, only a name", br.plan(only=["to_1000_devices"]), [("share", 1000, 5)])
check("plan, sizes", br.plan(sizes={"share": [5, 50]}, only=["share"]), [("share", 5, 5), ("share", 50, 5)])
check("names", [br.workload_name("megolm_encrypt", 32768), br.workload_name("grpaes_decrypt", 100),
                br.workload_name("backlog", 10000), br.workload_name("answer", 1000)],
      ["megolm_encrypt_32k", "grpaes_decrypt_100b", "decrypt_backlog_10000_events_100_sessions_cold",
       "answer_new_device_solicitation_1000_sessions"])

# ---------------------------------------------------------------- numbers

check("fit, linear", br.fit_exponent([(10, 1.0), (100, 10.0), (1000, 100.0)]), 1.0)
check("fit, flat", br.fit_exponent([(2, 8.0), (4, 8.0)]), 0.0)
check("fit, one point", br.fit_exponent([(2, 8.0)]), None)
check("fit, least squares", round(br.fit_exponent([(1, 1.0), (10, 10.0), (100, 10.0)]), 6), 0.5)

rows = br.summarize(samples)
check("rows", [(r["workload"], r["rounds"]) for r in rows],
      [("megolm_decrypt_256b", 3), ("megolm_decrypt_1k", 3), ("megolm_decrypt_4k", 3),
       ("share_session_to_10_devices", 3), ("share_session_to_1000_devices", 3),
       ("share_session_to_100000_devices", 2), ("store_1000_inbound_sessions", 3),
       ("store_1000000_inbound_sessions", 3)])
kib = rows[1]
check("1k ours", kib["ours"], {"median": 5000.0, "min": 4000.0, "max": 5500.0, "n": 3})
check("1k client", kib["client"], {"median": 4000.0, "min": 4000.0, "max": 5000.0, "n": 3})
# per round: 4000/4000, 5000/4000, 5500/5000
check("1k x client", kib["x_client"], {"median": 1.1, "min": 1.0, "max": 1.25, "n": 3})
check("1k x raw", kib["x_raw"], {"median": 1.0, "min": 0.8, "max": 1.1, "n": 3})
check("share 100k ours (even count)", rows[5]["ours"], {"median": 2000.0, "min": 1800.0, "max": 2200.0, "n": 2})
check("share 100k x client", rows[5]["x_client"], {"median": 20.0, "min": 18.0, "max": 22.0, "n": 2})
check("store 1k p99", rows[6]["extra"]["lookup_p99_us"], {"median": 12.0, "min": 10.0, "max": 30.0, "n": 3})
check("store client", rows[6]["client"], None)

check("exponents", [(g["family"], g["what"], g["ours"], g["client"]) for g in br.growth(rows)],
      [("megolm_decrypt", "op", 0.5, 1.0), ("share", "op", 0.0, 0.5), ("store", "op", 0.2, None),
       ("store", "open", 1.0, None)])

# ---------------------------------------------------------------- markdown

md = br.markdown_section(samples)
lines = md.splitlines()
for want in [
    "| megolm_decrypt_1k | 5,000 (4,000–5,500) | 4,000 (4,000–5,000) | 5,000 | 1.10 (1.00–1.25) "
    "| 1.00 (0.80–1.10) | >= 0.97x raw: met |",
    "| share_session_to_1000_devices (devices/s) | 2,000 | 1,000 | 1,000 | 2.00 | 2.00 | >= 1.7x client: met |",
    "| 1k | 1.00 ms | 500 µs | 4.00 µs | 12.0 µs (10.0 µs–30.0 µs) | 0.6 MB | 20 MB |  |",
    "| 1M | 1.00 s | 2.00 ms | 16.0 µs | 1.50 ms | 600 MB | 50 MB | open < 1 s: **missed**; "
    "p99 < 1 ms: **missed**; RSS < 200 MB: met |",
    "| megolm decrypt | event | payload | n^0.50 | n^1.00 | fixed cost + O(payload) |",
    "| share a session | device | devices | n^0.00 | n^0.50 | O(1) per device: O(n) per share |",
    "| store lookup (p50) | lookup | inbound sessions stored | n^0.20 | none | O(log n) per lookup |",
    "| store open (verifying rows) | open | inbound sessions stored | n^1.00 | none "
    "| O(n): the default open checks every row |",
    "| megolm_decrypt_256b | 256 B | 3 | 100 µs | 62.5 µs | 0.62 |",
    "| megolm_decrypt_1k | 1 KiB | 3 | 200 µs (182 µs–250 µs) | 250 µs (200 µs–250 µs) | 1.10 (1.00–1.25) |",
    "| share_session_to_100000_devices | 100k | 2 | 500 µs (455 µs–556 µs) | 10.0 ms | 20.0 (18.0–22.0) |",
    "| store_1000000_inbound_sessions | 1M | 3 | 16.0 µs |  |  |",
    "Fewer rounds (each round of these takes minutes): `share_session_to_100000_devices` 2 of 3.",
    "Machine: 2 cores (Test CPU 3000); 8 GB RAM; Test OS; load average 0.10 / 0.20 / 0.30 at the start, "
    "0.40 / 0.50 / 0.60 at the end.",
    "Versions: towns-e2ee 0.1.0, commit abc1234, libolm 3.2.13, Node.js v22.23.5.",
    "The store files were written once for the run (1k sessions in 0.5 s, 1M sessions in 90 s) and each "
    "round opens them in a fresh process.",
    "![Time per operation against size, log-log](performance-growth.svg)",
    "Chart of the ratios: [performance-ratios.svg](performance-ratios.svg).",
]:
    check(f"markdown holds {want[:50]}...", want in lines, True)
check("markdown opening", lines[0].startswith("2026-01-15, `tools/bench` (3 rounds); "), True)
check("markdown duration", lines[0].endswith("The run took 25 minutes."), True)
check("markdown table rows", sum(1 for line in lines if line.startswith("| ") and "---" not in line),
      # headline 1 + 2, store 1 + 2, growth 1 + 4, per size 1 + 8
      3 + 3 + 5 + 9)

# ---------------------------------------------------------------- SVG

svg = ET.fromstring(br.growth_svg(samples))
ns = "{http://www.w3.org/2000/svg}"
check("svg root", svg.tag, ns + "svg")
panels = svg.findall(f"{ns}g[@class='panel']")
check("panels", [p.get("data-series") for p in panels], ["megolm_decrypt:op", "share:op", "store:op", "store:open"])
check("lines per panel", [[pl.get("class") for pl in p.findall(ns + "polyline")] for p in panels],
      [["ours", "client"], ["ours", "client"], ["ours"], ["ours"]])
check("points per line", [[len(pl.get("points").split()) for pl in p.findall(ns + "polyline")] for p in panels],
      [[3, 3], [3, 3], [2], [2]])
check("ours markers", len(svg.findall(f".//{ns}circle[@class='ours']")), 10)
check("client markers", len(svg.findall(f".//{ns}rect[@class='client']")), 6)
check("whiskers (every point has two or more rounds)", len([e for e in svg.iter(ns + "line")
                                                            if "whisker" in (e.get("class") or "")]), 16)
texts = lambda p, cls: [t.text for t in p.findall(f"{ns}text[@class='{cls}']")]
check("titles", [texts(p, "title")[0] for p in panels],
      ["megolm decrypt", "share a session", "store lookup (p50)", "store open (verifying rows)"])
check("fits", [texts(p, "fit")[0] for p in panels],
      ["per event: ours n^0.50, client n^1.00", "per device: ours n^0.00, client n^0.50",
       "per lookup: ours n^0.20", "per open: ours n^1.00"])
check("x labels", [texts(p, "xlabel")[0] for p in panels],
      ["payload", "devices", "inbound sessions stored", "inbound sessions stored"])
check("y labels", [texts(p, "ylabel")[0] for p in panels],
      ["time per event", "time per device", "time per lookup", "time per open"])
check("x ticks", [texts(p, "xtick") for p in panels],
      [["256 B", "1 KiB", "4 KiB"], ["10", "1k", "100k"], ["1k", "1M"], ["1k", "1M"]])
# y spans whole decades around the data: 1, 2 and 5 ticks over two decades, powers of ten over three
check("y ticks", [texts(p, "ytick") for p in panels],
      [["10 µs", "20 µs", "50 µs", "100 µs", "200 µs", "500 µs", "1 ms"],
       ["100 µs", "200 µs", "500 µs", "1 ms", "2 ms", "5 ms", "10 ms"],
       ["1 µs", "2 µs", "5 µs", "10 µs", "20 µs", "50 µs", "100 µs"],
       ["1 ms", "10 ms", "100 ms", "1 s"]])
# Panel 1 plots x over [76, 296] with 8% of the size span padded each side
# (256 B at 91.2, 1 KiB in the middle at 186.0, 4 KiB at 280.8) and y over
# [96, 242] for 10 µs..1 ms: y = 242 - (log10(t) + 5) / 2 * 146.
check("ours line", panels[0].find(ns + "polyline").get("points"), "91.2,169.0 186.0,147.0 280.8,125.0")
check("client line", panels[0].findall(ns + "polyline")[1].get("points"), "91.2,183.9 186.0,140.0 280.8,96.0")

ratios = ET.fromstring(br.ratios_svg(samples))
check("ratio bars", len(ratios.findall(f"{ns}rect[@class='bar']")), 4)  # x client and x raw, two workloads

# ---------------------------------------------------------------- the doc

begin, end = br.BEGIN, br.END
doc = "# Performance\n\nhand-written\n\n" + begin + "\nan old table\n" + end + "\n\nmore hand-written text\n"
new = br.replace_section(doc, md)
check("rewrite", new, "# Performance\n\nhand-written\n\n" + begin + "\n" + md + end + "\n\nmore hand-written text\n")
check("rewrite twice", br.replace_section(new, md), new)
for name, bad in (("no markers", "# text\n"), ("two begins", begin + begin + end),
                  ("end first", end + "\n" + begin)):
    try:
        br.replace_section(bad, md)
        failures.append(f"replace_section accepted a document with {name}")
    except ValueError:
        pass
with open(os.path.join(root, "docs", "performance.md"), encoding="utf-8") as f:
    real = f.read()
check("docs/performance.md has one pair of markers", (real.count(begin), real.count(end)), (1, 1))
check("docs/performance.md keeps its text outside the markers",
      br.replace_section(real, md).split(begin)[0], real.split(begin)[0])

with tempfile.TemporaryDirectory() as tmp:
    with open(os.path.join(tmp, "performance.md"), "w", encoding="utf-8") as f:
        f.write(doc)
    br.write_docs(samples, tmp)
    with open(os.path.join(tmp, "performance.md"), encoding="utf-8") as f:
        check("write_docs", f.read(), new)
    check("write_docs charts", sorted(os.listdir(tmp)), ["performance-growth.svg", "performance-ratios.svg",
                                                          "performance.md"])

    # ------------------------------------------------------------ the command
    out = os.path.join(tmp, "out")
    bench = os.path.join(root, "tools", "bench")
    done = subprocess.run([sys.executable, bench, "--from", os.path.join(root, "test", "bench", "samples.json"),
                           "--out", out], capture_output=True, text=True)
    check("--from exit", done.returncode, 0)
    check("--from fewer rounds line",
          "Fewer rounds (too slow for all 3): share_session_to_100000_devices (2)" in done.stdout.splitlines(), True)
    check("--from files", sorted(os.listdir(out)), ["bench.json", "performance-growth.svg",
                                                    "performance-ratios.svg", "report.md"])
    with open(os.path.join(out, "report.md"), encoding="utf-8") as f:
        check("--from report.md", f.read(), md)
    with open(os.path.join(out, "bench.json"), encoding="utf-8") as f:
        summary = json.load(f)
    check("bench.json 1k", {k: summary["results"][1][k] for k in
                            ("workload", "ours_ops_per_s", "reference_ops_per_s", "ratio_vs_reference",
                             "ratio_vs_reference_min", "ratio_vs_raw")},
          {"workload": "megolm_decrypt_1k", "ours_ops_per_s": 5000.0, "reference_ops_per_s": 4000.0,
           "ratio_vs_reference": 1.1, "ratio_vs_reference_min": 1.0, "ratio_vs_raw": 1.0})
    refused = subprocess.run([sys.executable, bench, "--write-docs", "--only", "share"], capture_output=True, text=True)
    check("--write-docs with --only refused", refused.returncode, 2)
    listed = subprocess.run([sys.executable, bench, "--list"], capture_output=True, text=True)
    check("--list", [line.split() for line in listed.stdout.splitlines()][30:32],
          [["decrypt_backlog_10000_events_100_sessions_cold", "5", "rounds"],
           ["decrypt_backlog_100000_events_100_sessions_cold", "3", "rounds"]])

if failures:
    print("\n".join(failures))
    sys.exit(1)
print("bench report: all checks passed")
