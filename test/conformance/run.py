#!/usr/bin/env python3
"""Differential conformance runner: the C scenario interpreter against the
Python reference (ref.py, CPython asyncio).

  run.py [--c BIN] [--random N] [--seed S] [--jobs J] [--timeout SEC]
      (a) every scenarios/*.co is run through BIN and its stdout compared
          byte for byte with scenarios/*.expected (exit status must be 0);
          every scenarios/reject/*.co must make BIN exit 2 with no stdout;
      (b) N random scenarios (gen.py, seeds S, S+1, ...) are run through
          ref.py (in-process) and BIN, and their outputs compared.
          Part (b) needs CPython >= 3.13; without it, it is skipped.
  run.py --check-expected
      re-runs ref.py on every shipped scenario and checks that the .expected
      files are current and that every reject/*.co is rejected.
  run.py --write-expected
      (re)writes the .expected files from ref.py.

BIN is invoked as `BIN FILE.co`; a relative BIN is taken from the repository
root (default build/scenario).  The last line is always
`conformance: N passed, M failed`; the exit status is 1 if anything failed.
"""

import argparse
import concurrent.futures
import glob
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCENARIOS = os.path.join(HERE, "scenarios")
REJECTS = os.path.join(SCENARIOS, "reject")
sys.path.insert(0, HERE)

import gen  # noqa: E402  (pure standard library, any Python 3)

HAVE_REF = sys.version_info >= (3, 13)
if HAVE_REF:
    import ref  # noqa: E402


class Tally:
    def __init__(self):
        self.passed = self.failed = self.crashes = self.timeouts = 0

    def ok(self):
        self.passed += 1

    def fail(self, message):
        self.failed += 1
        print(message, flush=True)


def first_difference(expected, actual):
    """Describe the first differing line of two outputs."""
    exp, act = expected.split("\n"), actual.split("\n")
    for i in range(max(len(exp), len(act))):
        e = exp[i] if i < len(exp) else "<end of output>"
        a = act[i] if i < len(act) else "<end of output>"
        if e != a:
            return f"line {i + 1}: expected {e!r}, got {a!r}"
    return "outputs differ"


def run_bin(binary, path, timeout):
    """Run the C interpreter; return (status, stdout) or (None, reason)."""
    try:
        proc = subprocess.run([binary, path], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, "timeout"
    return proc.returncode, proc.stdout.decode("latin-1")


def judge(tally, label, want_status, want_out, result):
    """Compare one C run with what is expected; update the tally."""
    status, out = result
    if status is None:
        tally.timeouts += 1
        tally.fail(f"TIMEOUT {label}")
    elif status < 0:
        tally.crashes += 1
        tally.fail(f"CRASH {label}: killed by signal {-status}")
    elif status not in (0, 2):
        tally.crashes += 1
        tally.fail(f"CRASH {label}: exit status {status}")
    elif status != want_status:
        tally.fail(f"FAIL {label}: exit status {status}, expected {want_status}")
    elif out != want_out:
        tally.fail(f"FAIL {label}: {first_difference(want_out, out)}")
    else:
        tally.ok()


def read(path):
    with open(path, "rb") as f:
        return f.read().decode("latin-1")


def shipped():
    """(path, expected status, expected stdout) of every shipped scenario."""
    cases = []
    for path in sorted(glob.glob(os.path.join(SCENARIOS, "*.co"))):
        exp = path[:-3] + ".expected"
        cases.append((path, 0, read(exp) if os.path.exists(exp) else None))
    for path in sorted(glob.glob(os.path.join(REJECTS, "*.co"))):
        cases.append((path, 2, ""))
    return cases


def label_of(path):
    return os.path.relpath(path, HERE)


def part_shipped(tally, binary, jobs, timeout):
    cases = shipped()
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        futures = [(case, pool.submit(run_bin, binary, case[0], timeout))
                   for case in cases]
        for (path, status, expected), fut in futures:
            if expected is None:
                tally.fail(f"FAIL {label_of(path)}: no .expected file")
                continue
            judge(tally, label_of(path), status, expected, fut.result())


def part_random(tally, binary, count, seed, jobs, timeout):
    if not HAVE_REF:
        print(f"random part skipped: ref.py needs CPython >= 3.13, this is "
              f"{sys.version.split()[0]} (try PYENV_VERSION=3.13.0)", flush=True)
        return
    with tempfile.TemporaryDirectory(prefix="coro-conf-") as tmp, \
            concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        pending = []
        for s in range(seed, seed + count):
            text = gen.generate(s)
            try:
                want = ref.run_text(text)
            except Exception as exc:           # a bug in ref.py
                tally.fail(f"REF-BUG seed {s}: {exc}")
                continue
            path = os.path.join(tmp, f"rand_{s}.co")
            with open(path, "w") as f:
                f.write(text)
            pending.append((s, want, pool.submit(run_bin, binary, path, timeout)))
            if len(pending) >= 4 * jobs:
                drain(tally, pending[:jobs])
                del pending[:jobs]
        drain(tally, pending)


def drain(tally, pending):
    for s, (status, out, _err), fut in pending:
        judge(tally, f"seed {s} (python3 gen.py --seed {s})", status, out, fut.result())


def check_expected(tally, write):
    if not HAVE_REF:
        print("--check-expected needs CPython >= 3.13 (try PYENV_VERSION=3.13.0)")
        return False
    for path, status, expected in shipped():
        got_status, out, err = ref.run_text(read(path))
        if write and status == 0 and got_status == 0:
            with open(path[:-3] + ".expected", "w", encoding="latin-1", newline="") as f:
                f.write(out)
            expected = out
        if got_status != status:
            tally.fail(f"FAIL {label_of(path)}: ref.py exit status {got_status}, "
                       f"expected {status} {err.strip()}")
        elif expected is None:
            tally.fail(f"FAIL {label_of(path)}: no .expected file")
        elif out != expected:
            tally.fail(f"FAIL {label_of(path)}: stale .expected: "
                       f"{first_difference(expected, out)}")
        else:
            tally.ok()
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(
        description="coro conformance: C interpreter vs CPython asyncio")
    parser.add_argument("--c", dest="binary", default="build/scenario",
                        help="C scenario interpreter (default build/scenario, "
                             "relative to the repository root)")
    parser.add_argument("--random", type=int, default=1000,
                        help="number of random scenarios (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="first random seed")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--timeout", type=float, default=10.0,
                        help="seconds allowed per C run (default 10)")
    parser.add_argument("--check-expected", action="store_true",
                        help="only check that the .expected files are current")
    parser.add_argument("--write-expected", action="store_true",
                        help="only regenerate the .expected files with ref.py")
    args = parser.parse_args(argv)
    tally = Tally()

    if args.check_expected or args.write_expected:
        if not check_expected(tally, args.write_expected):
            return 2
    else:
        binary = args.binary if os.path.isabs(args.binary) \
            else os.path.join(ROOT, args.binary)
        if not os.access(binary, os.X_OK):
            print(f"run.py: {binary} is not an executable (build it, or use --c)")
            print(f"conformance: 0 passed, 0 failed")
            return 2
        part_shipped(tally, binary, args.jobs, args.timeout)
        if args.random > 0:
            part_random(tally, binary, args.random, args.seed, args.jobs, args.timeout)
        print(f"crashes: {tally.crashes}, timeouts: {tally.timeouts}")
    print(f"conformance: {tally.passed} passed, {tally.failed} failed")
    return 1 if tally.failed else 0


if __name__ == "__main__":
    sys.exit(main())
