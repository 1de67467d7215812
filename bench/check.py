#!/usr/bin/env python3
"""bench/check.py - `make bench-check`: instructions per operation of coro's
hot paths, counted by valgrind's callgrind, against bench/baseline.json.

    python3 bench/check.py --bin build/bench/check [--baseline bench/baseline.json]
                           [--update] [--tolerance 10]

Each kernel is a benchmark binary's `icount KERNEL N` mode (the coro side
only, run once, untimed). It runs under callgrind at two sizes N1 < N2; the
difference of the two totals, divided by the operations between them,
cancels every fixed cost (process start, loop set-up, the final checks):

    instructions per op = (I(N2) - I(N1)) / (ops per N * (N2 - N1))

Instruction counts do not depend on the machine's load, so a 10% change is
a change of the code (the library, or the compiler: the baseline records
the compiler, and counts from another one are reported, not judged).
Exit status: 0 ok; 1 a kernel is more than --tolerance percent above its
baseline; 2 cannot measure (no valgrind, a binary failed).
--update writes the measured counts as the new baseline.
"""
import argparse
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

# name, binary, icount kernel, operations per unit of N, N1, N2, what one op is
KERNELS = [
    ("switch", "bench_switch", "switch", 2, 20000, 60000,
     "B1: one task-to-task switch (yield, ready queue, step, resume)"),
    ("spawn", "bench_spawn", "spawn", 1, 20000, 60000,
     "B2: spawn + step + finish of an empty task (batches of 1,000)"),
    ("queue", "bench_sync", "queue", 2, 10000, 30000,
     "B3: one message of the coro_queue ping-pong"),
    ("lock", "bench_sync", "lock", 1, 20000, 60000,
     "B3: uncontended coro_lock acquire + release"),
    ("cancel", "bench_cancel", "cancel", 1, 10000, 30000,
     "B7: spawn, block in a sleep, cancel, reap"),
]


def compiler():
    cc = os.environ.get("CC", "cc")
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=10)
        return out.stdout.splitlines()[0].strip()
    except (OSError, IndexError, subprocess.SubprocessError):
        return cc


def count(binary, kernel, n, tmp):
    """Total instructions of `binary icount kernel n` under callgrind."""
    out = os.path.join(tmp, "%s.%s.%d.out" % (os.path.basename(binary), kernel, n))
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
           binary, "icount", kernel, str(n)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("%s failed (exit %d):\n%s" % (" ".join(cmd), r.returncode,
                                                          r.stderr[-2000:]))
    with open(out, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = re.match(r"(summary|totals):\s+(\d+)", line)
            if m:
                return int(m.group(2))
    raise RuntimeError("no instruction total in " + out)


def measure(bindir, only):
    jobs = {}
    with tempfile.TemporaryDirectory(prefix="coro-bench-check-") as tmp, \
            concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        for name, binary, kernel, _ops, n1, n2, _what in KERNELS:
            if only and name not in only:
                continue
            path = os.path.join(bindir, binary)
            for n in (n1, n2):
                jobs[(name, n)] = ex.submit(count, path, kernel, n, tmp)
        totals = {k: f.result() for k, f in jobs.items()}
    per_op = {}
    for name, _b, _k, ops, n1, n2, _w in KERNELS:
        if (name, n1) in totals:
            per_op[name] = (totals[(name, n2)] - totals[(name, n1)]) / (ops * (n2 - n1))
    return per_op


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default="build/bench/check", help="directory of the binaries")
    ap.add_argument("--baseline", default="bench/baseline.json")
    ap.add_argument("--tolerance", type=float, default=10.0, help="percent (default 10)")
    ap.add_argument("--update", action="store_true", help="write the baseline")
    ap.add_argument("kernels", nargs="*", help="only these kernels")
    args = ap.parse_args()

    if not shutil.which("valgrind"):
        print("bench-check: valgrind is not installed (Debian package valgrind)")
        return 2
    cc = compiler()
    print("bench-check: instructions per operation (callgrind, two sizes subtracted); "
          "compiler: %s" % cc)
    try:
        got = measure(args.bin, set(args.kernels))
    except RuntimeError as e:
        print("bench-check: " + str(e))
        return 2

    base = {}
    if os.path.exists(args.baseline):
        with open(args.baseline, encoding="utf-8") as f:
            base = json.load(f)
    counts = base.get("counts", {})
    same_cc = base.get("compiler") == cc
    lim = args.tolerance
    rows, worse = [], []
    for name, _b, _k, _o, _n1, _n2, what in KERNELS:
        if name not in got:
            continue
        v, b = got[name], counts.get(name)
        if b:
            change = 100.0 * (v - b) / b
            if change > lim:
                status = "REGRESSION" if same_cc else "higher (other compiler)"
                if same_cc:
                    worse.append(name)
            elif change < -lim:
                status = "better: update the baseline"
            else:
                status = "ok"
            rows.append((name, "%.1f" % b, "%.1f" % v, "%+.1f%%" % change, status, what))
        else:
            rows.append((name, "-", "%.1f" % v, "", "no baseline", what))
    head = ("kernel", "baseline", "measured", "change", "status", "one operation")
    w = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    for i, r in enumerate([head] + rows):
        print("  " + "  ".join(r[j].rjust(w[j]) if j in (1, 2, 3) else r[j].ljust(w[j])
                               for j in range(len(r))).rstrip())
        if i == 0:
            print("  " + "  ".join("-" * x for x in w))
    if base and not same_cc:
        print("bench-check: the baseline was counted with %r; this compiler differs, so "
              "changes are reported, not judged" % base.get("compiler"))

    if args.update:
        counts.update({k: round(v, 2) for k, v in got.items()})
        with open(args.baseline, "w", encoding="utf-8") as f:
            json.dump({"compiler": cc, "cflags": "-std=c11 -O2 -g",
                       "note": "instructions per operation, from `make bench-check`; "
                               "update with `python3 bench/check.py --update`",
                       "counts": counts}, f, indent=1, sort_keys=True)
            f.write("\n")
        print("bench-check: baseline written to %s" % args.baseline)
        return 0
    if worse:
        print("bench-check: FAILED: %s more than %.0f%% above the baseline (%s)"
              % (", ".join(worse), lim, args.baseline))
        return 1
    print("bench-check: ok (%d kernels within %.0f%% of the baseline)" % (len(rows), lim))
    return 0


if __name__ == "__main__":
    sys.exit(main())
