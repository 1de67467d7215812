#!/usr/bin/python3
"""bench/run.py - merges the lines that bench/run.sh collected into one table
(stdout, and build/bench/results.md), the JSON records, and the charts.
Standard library only; the charts need gnuplot.

    python3 bench/run.py build/bench/results.txt --json build/bench/results.json

Input lines (see bench/README.md, "Output protocol"):
    RESULT bench=<id> impl=<name> unit=<unit> value=<median> [spread=<x>]
           [spread_kind=range|iqr] [runs=<n>] [better=higher] [bound=lower]
           [any other key=value]
    TARGET bench=<id> impl=<name> le=<x> | ge=<x>
    TARGET bench=<id> ratio=<peer> ge=<x>     (how many times coro is better)
    POINT chart=<name> impl=<name> x=<x> y=<y>
    FAILED name=<binary> rc=<n>               (written by run.sh)
    SKIP name=<binary> [impl=<peer>] [bench=<id,...>] <reason>
Everything else is ignored. Rows are keyed by (bench, unit) and ordered as in
BENCHES below (unknown ones after, in order of appearance); "coro" is the
library, every other impl a peer column, then one ratio column per peer.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys

CORO = "coro"

# The benchmarks in table order: id -> the B-number of peers.md section 5
# (and io_uring-notes.md section 6 for the I/O rows), for the first column.
# B8 (echo), B9 (files) and the io rows (NOP, threads) come from the
# bench_io_* binaries, which need coro_io.h and liburing; POINT lines with
# chart=echo draw build/bench/echo.svg. A row not listed here gets its id
# from the longest listed prefix (echo_4k_c300 -> B8) and goes last.
BENCHES = [
    ("switch", "B1"), ("nesting_d1", "B1"), ("nesting_d16", "B1"),
    ("nesting_d64", "B1"), ("nesting_ratio", "B1"),
    ("spawn", "B2"), ("spawn_bulk", "B2"),
    ("queue", "B3"), ("lock", "B3"),
    ("ring", "B4"),
    ("timers", "B5"), ("timers_sleep", "B5"),
    ("memory_sleep", "B6"), ("memory_gate", "B6"), ("memory_total", "B6"),
    ("memory_sizeof", "B6"),
    ("memory_max", "B6"),
    ("cancel", "B7"),
    ("echo_c1", "B8"), ("echo_c10", "B8"), ("echo", "B8"), ("echo_c300", "B8"),
    ("echo_c1000", "B8"), ("echo_4k_c1", "B8"), ("echo_4k", "B8"), ("echo_4k_c1000", "B8"),
    ("echo_epoll_backend", "B8"), ("echo_raw_ops", "B8"), ("echo_1cpu", "B8"),
    ("echo_cpu", "B8"), ("echo_mt_t1", "B8"), ("echo_mt_t2", "B8"),
    ("files", "B9"), ("files_cached", "B9"),
    ("nop", "io"), ("nop_b32", "io"), ("nop_b256", "io"),
    ("to_thread", "io"), ("to_thread_par", "io"), ("xloop_wake", "io"),
]
# Said under the table when none of a family's rows was measured (their
# binary failed, was skipped, or was not selected).
PENDING = [("echo", "B8 echo server vs raw epoll, threads, libuv, Go, asyncio, uvloop"),
           ("files", "B9 random file reads vs fio"),
           ("nop", "NOP round trip vs raw liburing"),
           ("to_thread", "to_thread and cross-loop wake vs pthreads")]
PEER_ORDER = ["pthread", "epoll", "go", "boost_context", "libuv", "asyncio", "uvloop", "fio",
              "liburing"]

# Charts drawn from POINT lines: chart -> (title, x label, y label, y scale).
CHARTS = {
    "memory": ("Memory of parked tasks against their count (Rss delta, log-log)",
               "tasks parked", "bytes resident", 1.0),
    "echo": ("Echo throughput against connections (B8, 64-byte ping-pong)",
             "connections", "round trips/s", 1.0),
}


def parse_kv(words):
    out = {}
    for w in words:
        if "=" in w:
            k, v = w.split("=", 1)
            out[k] = v
    return out


def num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def jval(s):
    """A key=value value for JSON: int, float, or the string."""
    try:
        return int(s)
    except (TypeError, ValueError):
        pass
    f = num(s)
    return f if f is not None else s


def read_lines(path):
    results, targets, failed, skipped, points = [], [], [], [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            words = line.split()
            if not words:
                continue
            kind, kv = words[0], parse_kv(words[1:])
            if kind == "RESULT" and {"bench", "impl", "unit", "value"} <= kv.keys():
                if num(kv["value"]) is None:
                    continue
                results.append(kv)
            elif kind == "TARGET" and "bench" in kv:
                targets.append(kv)
            elif kind == "POINT" and {"chart", "impl", "x", "y"} <= kv.keys():
                if num(kv["x"]) is not None and num(kv["y"]) is not None:
                    points.append(kv)
            elif kind == "FAILED":
                failed.append(kv.get("name", "?") + " (exit " + kv.get("rc", "?") + ")")
            elif kind == "SKIP":
                rest = " ".join(w for w in words[1:]
                                if not w.startswith(("name=", "impl=", "bench=")))
                skipped.append({"name": kv.get("name", "?"), "impl": kv.get("impl"),
                                "benches": [b for b in kv.get("bench", "").split(",") if b],
                                "reason": rest})
    return results, targets, failed, skipped, points


def sh(cmd):
    try:
        out = subprocess.run(cmd, shell=True, capture_output=True, text=True, timeout=10)
        return out.stdout.strip().splitlines()[0] if out.stdout.strip() else ""
    except Exception:  # noqa: BLE001 - informational only
        return ""


def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    osname = ""
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    osname = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    try:
        load = "%.2f %.2f %.2f" % os.getloadavg()
    except OSError:
        load = ""
    cc = os.environ.get("CC", "cc")
    commit = sh("git rev-parse --short HEAD 2>/dev/null") or "uncommitted"
    dirty = sh("git status --porcelain 2>/dev/null | head -1")
    return {
        "cpu": cpu or platform.processor() or "unknown",
        "cpus": os.cpu_count(),
        "kernel": platform.system() + " " + platform.release(),
        "os": osname,
        "compiler": sh(cc + " --version 2>/dev/null") or cc,
        "cflags": "-std=c11 -O2 -g (Makefile bench rule)",
        "profile": os.environ.get("BENCH_PROFILE") or "quick",
        "pinned": os.environ.get("BENCH_PINNED") or "no",
        "loadavg_before": os.environ.get("BENCH_LOAD_BEFORE", ""),
        "loadavg_after": load,
        "duration_s": num(os.environ.get("BENCH_DURATION")),
        "commit": commit + ("+dirty" if dirty and commit != "uncommitted" else ""),
        "hostname": platform.node(),
    }


def fmt(v):
    if v is None:
        return "-"
    a = abs(v)
    if a >= 1000:
        return "{:,.0f}".format(v)
    if a >= 100:
        return "%.0f" % v
    if a >= 10:
        return "%.1f" % v
    if a >= 1:
        return "%.2f" % v
    return "%.3f" % v


def rel_spread(r):
    v, s = num(r.get("value")), num(r.get("spread"))
    if v is None or s is None or v == 0:
        return ""
    tag = "~" if r.get("spread_kind", "range") == "range" else "iqr "
    return " %s%.0f%%" % (tag, 100.0 * s / abs(v))


def lower_bound(r):
    return r is not None and r.get("bound") == "lower"


def higher_better(impls):
    return any(r.get("better") == "higher" for r in impls.values())


def ratio(impls, peer):
    """How many times coro is better than peer: (value, text) or (None, "")."""
    c, p = impls.get(CORO), impls.get(peer)
    if not c or not p:
        return None, ""
    cv, pv = num(c["value"]), num(p["value"])
    if not cv or not pv:
        return None, ""
    hb = higher_better(impls)
    val = cv / pv if hb else pv / cv
    # A lower bound on the better side gives a lower bound on the ratio; on
    # both sides (or only on the worse one) nothing can be said.
    cb, pb = lower_bound(c), lower_bound(p)
    if cb and pb:
        return None, "n/a"
    if cb or pb:
        if (hb and cb) or (not hb and pb):
            return val, ">=%sx" % fmt(val)
        return None, "n/a"
    return val, "%sx" % fmt(val)


def build(results, skipped):
    rows = {}  # (bench, unit) -> {impl: result}
    order = []
    peers = []
    for r in results:
        key = (r["bench"], r["unit"])
        if key not in rows:
            rows[key] = {}
            order.append(key)
        rows[key][r["impl"]] = r
        if r["impl"] != CORO and r["impl"] not in peers:
            peers.append(r["impl"])
    for s in skipped:  # a skipped peer keeps its column, with SKIP cells
        if s["impl"] and s["impl"] != CORO and s["impl"] not in peers:
            peers.append(s["impl"])
    rank = {name: i for i, (name, _b) in enumerate(BENCHES)}
    seen = {k: i for i, k in enumerate(order)}
    order.sort(key=lambda k: (rank.get(k[0], len(rank)), seen[k]))
    prank = {p: i for i, p in enumerate(PEER_ORDER)}
    pseen = {p: i for i, p in enumerate(peers)}
    peers.sort(key=lambda p: (prank.get(p, len(prank)), pseen[p]))
    return rows, order, peers


def skip_cell(skipped, peer, bench):
    for s in skipped:
        if s["impl"] == peer and bench in s["benches"]:
            return True
    return False


def bid(bench):
    ids = dict(BENCHES)
    if bench in ids:
        return ids[bench]
    best = ""
    for name, b in BENCHES:  # the longest listed prefix: echo_4k_c300 -> B8
        if bench.startswith(name + "_") and len(name) > len(best):
            best = name
    return ids.get(best, "")


def table_cells(rows, order, peers, skipped):
    head = ["", "benchmark", "unit", CORO] + peers + ["%s/%s" % (p, CORO) for p in peers]
    body = []
    for key in order:
        impls = rows[key]
        c = impls.get(CORO)
        line = [bid(key[0]), key[0], key[1]]
        cell = lambda r: ((">=" if lower_bound(r) else "") + fmt(num(r["value"]))  # noqa: E731
                          + ("" if lower_bound(r) else rel_spread(r)))
        line.append(cell(c) if c else "-")
        for p in peers:
            r = impls.get(p)
            line.append(cell(r) if r else ("SKIP" if skip_cell(skipped, p, key[0]) else ""))
        for p in peers:
            line.append(ratio(impls, p)[1]
                        or ("SKIP" if skip_cell(skipped, p, key[0]) and not impls.get(p) else ""))
        body.append(line)
    return head, body


def table_text(head, body):
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    out = []
    for i, line in enumerate([head] + body):
        cells = [line[j].ljust(widths[j]) for j in range(3)]
        cells += [line[j].rjust(widths[j]) for j in range(3, len(line))]
        out.append("  ".join(cells).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def table_md(head, body):
    h = ["B"] + head[1:]
    out = ["| " + " | ".join(h) + " |",
           "|" + "|".join(["---"] * 3 + ["---:"] * (len(h) - 3)) + "|"]
    for line in body:
        out.append("| " + " | ".join(x.replace("~", "±") if x else " " for x in line) + " |")
    return out


def check_targets(rows, targets):
    """Returns [(text, ok or None, target, value)]; None: no value to check."""
    out = []
    by_bench = {}
    for (bench, _unit), impls in rows.items():
        by_bench.setdefault(bench, {}).update(impls)
    for t in targets:
        impls = by_bench.get(t["bench"], {})
        if "ratio" in t:
            peer = t["ratio"]
            val = ratio(impls, peer)[0]
            what = "%s %s/%s" % (t["bench"], peer, CORO)
            unit = "x"
        else:
            r = impls.get(t.get("impl", CORO))
            val = num(r["value"]) if r else None
            what = "%s %s" % (t["bench"], t.get("impl", CORO))
            unit = r["unit"] if r else ""
        if "le" in t:
            lim, op, ok = num(t["le"]), "<=", None
            if val is not None:
                ok = val <= lim
        else:
            lim, op, ok = num(t.get("ge")), ">=", None
            if val is not None:
                ok = val >= lim
        text = "%-28s %s %-6s %-10s measured %s" % (what, op, fmt(lim), unit, fmt(val))
        if ok is False and val:
            text += "  (%s short)" % ("%.2fx" % (lim / val) if op == ">=" else
                                      "%.2fx" % (val / lim))
        out.append((text, ok, t, val))
    return out


# ---------------------------------------------------------------- charts

def gnuplot_quote(s):
    return '"' + s.replace('"', "'") + '"'


def charts(outdir, rows, order, peers, points, m, date):
    """Writes <outdir>/*.dat and *.gp, and the SVGs if gnuplot is there."""
    made = []
    sub = "%s, %s CPUs; %s" % (m["cpu"], m["cpus"], date[:10])
    # Bar chart of ratios: one group per benchmark, one bar per peer.
    rrows = []
    for key in order:
        impls = rows[key]
        if key[0] in ("memory_sizeof", "memory_max") or not impls.get(CORO):
            continue
        vals = [ratio(impls, p)[0] for p in peers]
        if any(v for v in vals):
            rrows.append((key[0], vals))
    gp = []
    if rrows:
        rpeers = [p for i, p in enumerate(peers) if any(v[i] for _b, v in rrows)]
        idx = [peers.index(p) for p in rpeers]
        with open(os.path.join(outdir, "ratios.dat"), "w", encoding="utf-8") as f:
            f.write("# bench " + " ".join(rpeers) + "\n")
            for bench, vals in rrows:
                f.write(bench + " " + " ".join("%.6g" % vals[i] if vals[i] else "?"
                                               for i in idx) + "\n")
        cols = ", ".join("'ratios.dat' using %d:xtic(1) title %s" % (j + 2, gnuplot_quote(p))
                         for j, p in enumerate(rpeers))
        gp.append(("ratios", """set terminal svg size 1000,520 dynamic noenhanced font 'sans,11' background '#ffffff'
set output 'ratios.svg'
set title %s
set ylabel 'peer time (or bytes) / coro, log scale'
set logscale y
set yrange [0.5:*]
set grid ytics
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set datafile missing '?'
set key outside right top vertical noenhanced
set xtics rotate by 30 right noenhanced
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 1.5 dt 2
plot %s
""" % (gnuplot_quote("How many times coro is better than each peer (" + sub + ")"), cols)))
    # Scaling charts from POINT lines.
    by_chart = {}
    for p in points:
        by_chart.setdefault(p["chart"], {}).setdefault(p["impl"], []).append(
            (num(p["x"]), num(p["y"])))
    for chart, series in sorted(by_chart.items()):
        title, xl, yl, _s = CHARTS.get(chart, (chart, "x", "y", 1.0))
        names = sorted(series, key=lambda i: (i != CORO, PEER_ORDER.index(i)
                                              if i in PEER_ORDER else 99, i))
        plots = []
        for name in names:
            fn = "%s_%s.dat" % (chart, name)
            with open(os.path.join(outdir, fn), "w", encoding="utf-8") as f:
                for x, y in sorted(series[name]):
                    f.write("%.6g %.6g\n" % (x, y))
            plots.append("'%s' using 1:2 with linespoints lw 2 pt 7 title %s"
                         % (fn, gnuplot_quote(name)))
        gp.append((chart, """set terminal svg size 800,500 dynamic noenhanced font 'sans,11' background '#ffffff'
set output '%s.svg'
set title %s
set xlabel %s
set ylabel %s
set logscale xy
set format y '%%.0s%%c'
set format x '%%.0s%%c'
set grid
set key top left
plot %s
""" % (chart, gnuplot_quote(title + " (" + sub + ")"), gnuplot_quote(xl),
            gnuplot_quote(yl), ", ".join(plots))))
    gnuplot = shutil.which("gnuplot")
    for name, script in gp:
        path = os.path.join(outdir, name + ".gp")
        with open(path, "w", encoding="utf-8") as f:
            f.write(script)
        if gnuplot:
            r = subprocess.run([gnuplot, name + ".gp"], cwd=outdir, capture_output=True,
                               text=True)
            if r.returncode == 0:
                made.append(os.path.join(outdir, name + ".svg"))
            else:
                print("gnuplot failed on %s: %s" % (path, r.stderr.strip()[:300]))
    if gp and not gnuplot:
        print("charts: gnuplot is not installed (Debian: gnuplot-nox): scripts left in %s/*.gp"
              % outdir)
    return made, by_chart


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="file with RESULT/TARGET/POINT lines")
    ap.add_argument("--json", help="write the JSON records here (and the charts, "
                    "results.md and series.json beside it)")
    args = ap.parse_args()

    results, targets, failed, skipped, points = read_lines(args.results)
    rows, order, peers = build(results, skipped)
    m = machine()
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")

    head_lines = [
        "coro benchmarks, %s, %s profile" % (date, m["profile"]),
        "machine: %s, %s CPUs; %s; %s" % (m["cpu"], m["cpus"], m["kernel"], m["os"]),
        "compiler: %s; %s; commit %s" % (m["compiler"], m["cflags"], m["commit"]),
        "pinned: %s; load average before the run: %s (other work on the machine skews "
        "the timings)" % (m["pinned"], m["loadavg_before"] or "?"),
    ]
    for line in head_lines:
        print(line)
    print()
    head, body = table_cells(rows, order, peers, skipped)
    legend = ("Cells: median over the runs, ~N% = spread (max-min) / median; >= a lower "
              "bound (nothing failed). Last columns: how many times coro is better than "
              "the peer (peer/coro for ns/op and bytes/task, coro/peer for tasks, rt/s and "
              "IOPS); SKIP: "
              "the peer could not run here; empty: the peer has no such benchmark.")
    if order:
        for line in table_text(head, body):
            print(line)
        print()
        print(legend)
    else:
        print("(no results)")
    measured = {k[0] for k in order}
    pending = [what for bench, what in PENDING
               if not any(m == bench or m.startswith(bench + "_") for m in measured)]
    if pending:
        print("Not measured in this run: " + "; ".join(pending) + ".")
    checked = check_targets(rows, targets)
    if checked:
        print()
        print("Acceptance targets:")
        for text, ok, _t, _v in checked:
            print("  %s  %s" % (text, "ok" if ok else ("MISSED" if ok is False else "no value")))
    for f in failed:
        print("FAILED: %s" % f)
    for s in skipped:
        print("skipped: %s%s: %s" % (s["name"], " (" + s["impl"] + ")" if s["impl"] else "",
                                     s["reason"]))

    if args.json:
        outdir = os.path.dirname(os.path.abspath(args.json))
        recs = []
        for key in order:
            impls = rows[key]
            c = impls.get(CORO, {})
            details = {}
            for impl, r in impls.items():
                details[impl] = {k: jval(v) for k, v in r.items()
                                 if k not in ("bench", "impl", "unit")}
            recs.append({
                "name": key[0],
                "id": bid(key[0]),
                "unit": key[1],
                "better": "higher" if higher_better(impls) else "lower",
                "coro": num(c.get("value")),
                "peers": {p: num(r["value"]) for p, r in impls.items() if p != CORO},
                "ratios": {p: ratio(impls, p)[0] for p in impls if p != CORO},
                "skipped": [p for p in peers if skip_cell(skipped, p, key[0])
                            and p not in impls],
                "runs": int(num(c["runs"])) if num(c.get("runs")) is not None else None,
                "spread": num(c.get("spread")),
                "spread_kind": c.get("spread_kind", "range") if c else None,
                "details": details,
                "targets": [{"target": {k: jval(v) for k, v in t.items() if k != "bench"},
                             "measured": v, "ok": ok}
                            for _x, ok, t, v in checked if t["bench"] == key[0]],
                "machine": m,
                "date": date,
            })
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(recs, f, indent=1)
            f.write("\n")
        made, series = charts(outdir, rows, order, peers, points, m, date)
        with open(os.path.join(outdir, "series.json"), "w", encoding="utf-8") as f:
            json.dump({"machine": m, "date": date, "charts": {
                c: {i: sorted(pts) for i, pts in s.items()} for c, s in series.items()}},
                f, indent=1)
            f.write("\n")
        md = os.path.join(outdir, "results.md")
        with open(md, "w", encoding="utf-8") as f:
            f.write("%s, %s profile: %s, %s CPUs, %s, %s; %s; commit %s. Load average "
                    "before: %s.\n\n" % (date, m["profile"], m["cpu"], m["cpus"], m["kernel"],
                                         m["os"], m["compiler"], m["commit"],
                                         m["loadavg_before"] or "?"))
            f.write("\n".join(table_md(head, body)) + "\n\n" + legend.replace("~", "±") + "\n")
            if checked:
                f.write("\nAcceptance targets:\n\n")
                for text, ok, _t, _v in checked:
                    f.write("- `%s` %s\n" % (" ".join(text.split()),
                                             "ok" if ok else ("**MISSED**" if ok is False
                                                              else "no value")))
        print()
        print("JSON: %s; table: %s; charts: %s; per-benchmark logs beside them (*.log)"
              % (args.json, md, ", ".join(made) or "none"))

    missed = any(ok is False for _x, ok, _t, _v in checked)
    if failed:
        return 1
    if missed and os.environ.get("BENCH_STRICT") == "1":
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
