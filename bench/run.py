#!/usr/bin/python3
"""bench/run.py - merges the RESULT/TARGET lines that bench/run.sh collected
into one table (stdout) and a JSON file. Standard library only.

    python3 bench/run.py build/bench/results.txt --json build/bench/results.json

Input lines (see bench/README.md, "Output protocol"):
    RESULT bench=<id> impl=<name> unit=<unit> value=<median> [spread=<x>]
           [spread_kind=range|iqr] [runs=<n>] [any other key=value]
    TARGET bench=<id> impl=<name> le=<x> | ge=<x>
    TARGET bench=<id> ratio=<peer> ge=<x>     (peer value / coro value)
    FAILED name=<binary> rc=<n>               (written by run.sh)
    SKIP name=<binary> <reason>               (written by run.sh)
Everything else is ignored. Rows are keyed by (bench, unit), in order of
first appearance; "coro" is the library, every other impl a peer column.
"""
import argparse
import datetime
import json
import os
import platform
import subprocess
import sys

CORO = "coro"


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
    results, targets, failed, skipped = [], [], [], []
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
            elif kind == "FAILED":
                failed.append(kv.get("name", "?") + " (exit " + kv.get("rc", "?") + ")")
            elif kind == "SKIP":
                rest = " ".join(w for w in words[1:] if not w.startswith("name="))
                skipped.append(kv.get("name", "?") + ": " + rest)
    return results, targets, failed, skipped


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
        "pinned": os.environ.get("BENCH_PINNED") or "no",
        "loadavg_before": os.environ.get("BENCH_LOAD_BEFORE", ""),
        "loadavg_after": load,
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


def build(results):
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
    return rows, order, peers


def table(rows, order, peers):
    head = ["benchmark", "unit", CORO] + peers + ["%s/%s" % (p, CORO) for p in peers]
    body = []
    for key in order:
        impls = rows[key]
        c = impls.get(CORO)
        cv = num(c["value"]) if c else None
        line = [key[0], key[1]]
        line.append(fmt(cv) + rel_spread(c) if c else "-")
        for p in peers:
            r = impls.get(p)
            line.append(fmt(num(r["value"])) + rel_spread(r) if r else "")
        for p in peers:
            r = impls.get(p)
            if r and cv:
                line.append("%sx" % fmt(num(r["value"]) / cv))
            else:
                line.append("")
        body.append(line)
    widths = [max(len(x[i]) for x in [head] + body) for i in range(len(head))]
    out = []
    for i, line in enumerate([head] + body):
        cells = [line[0].ljust(widths[0]), line[1].ljust(widths[1])]
        cells += [line[j].rjust(widths[j]) for j in range(2, len(line))]
        out.append("  ".join(cells).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return out


def check_targets(rows, targets):
    """Returns [(text, ok or None)]; None: no value to check."""
    out = []
    by_bench = {}
    for (bench, _unit), impls in rows.items():
        by_bench.setdefault(bench, {}).update(impls)
    for t in targets:
        impls = by_bench.get(t["bench"], {})
        if "ratio" in t:
            peer = t["ratio"]
            c, p = impls.get(CORO), impls.get(peer)
            val = num(p["value"]) / num(c["value"]) if c and p and num(c["value"]) else None
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
        out.append((text, ok, t, val))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", help="file with RESULT/TARGET lines")
    ap.add_argument("--json", help="write the JSON records here")
    args = ap.parse_args()

    results, targets, failed, skipped = read_lines(args.results)
    rows, order, peers = build(results)
    m = machine()
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")

    print("coro benchmarks, %s" % date)
    print("machine: %s, %s CPUs; %s; %s" % (m["cpu"], m["cpus"], m["kernel"], m["os"]))
    print("compiler: %s; %s; commit %s"
          % (m["compiler"], m["cflags"], m["commit"]))
    # (The load after is inflated by bench_memory's own 10,000 threads.)
    print("pinned: %s; load average before the run: %s (other work on the "
          "machine skews the timings)" % (m["pinned"], m["loadavg_before"] or "?"))
    print()
    if order:
        for line in table(rows, order, peers):
            print(line)
        print()
        print("Cells: median over the runs, ~N% = spread (max-min) / median. "
              "Last columns: peer / coro (how many times coro is better for "
              "ns/op and bytes/task).")
    else:
        print("(no results)")
    checked = check_targets(rows, targets)
    if checked:
        print()
        print("Acceptance targets:")
        for text, ok, _t, _v in checked:
            print("  %s  %s" % (text, "ok" if ok else ("MISSED" if ok is False else "no value")))
    for f in failed:
        print("FAILED: %s" % f)
    for s in skipped:
        print("skipped: %s" % s)

    if args.json:
        recs = []
        for key in order:
            impls = rows[key]
            c = impls.get(CORO, {})
            details = {}
            for impl, r in impls.items():
                d = {k: jval(v) for k, v in r.items() if k not in ("bench", "impl", "unit")}
                details[impl] = d
            recs.append({
                "name": key[0],
                "unit": key[1],
                "coro": num(c.get("value")),
                "peers": {p: num(r["value"]) for p, r in impls.items() if p != CORO},
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
        print()
        print("JSON: %s; per-benchmark logs beside it (*.log)" % args.json)

    missed = any(ok is False for _x, ok, _t, _v in checked)
    if failed:
        return 1
    if missed and os.environ.get("BENCH_STRICT") == "1":
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
