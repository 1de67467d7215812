#!/bin/sh
# bench/run.sh - runs every benchmark and prints one table (make bench).
#
#   sh bench/run.sh [PATTERN...]    only benchmarks whose name contains one
#                                   of the patterns (e.g. switch spawn)
# Environment:
#   BENCH_PIN=CPUS    run every benchmark under `taskset -c CPUS` (e.g. 0)
#   BENCH_RUNS=N      timed repetitions per measurement (default 5-7, min 5)
#   BENCH_SCALE=F     multiply iteration counts by F (e.g. 0.1 for a quick look)
#   BENCH_DIR=DIR     where the binaries are and the results go (build/bench)
#   BENCH_VERBOSE=1   show each benchmark's per-run progress lines
#   BENCH_STRICT=1    exit 1 when an acceptance target is missed
#
# What runs, in order:
#   1. every executable $BENCH_DIR/bench_* (the Makefile builds one per
#      bench/bench_*.c): switch, spawn, nesting, then any other by name,
#      and memory last;
#   2. every bench/peers/*/run.sh (peers in other languages: Go, Python
#      asyncio, ...), run with sh from the repository root; a peer whose
#      toolchain is missing prints `SKIP <reason>` and exits 0.
# Each prints RESULT/TARGET lines (bench/README.md, "Output protocol"); its
# whole output is kept in $BENCH_DIR/<name>.log. Then bench/run.py merges
# the lines into one table on stdout and $BENCH_DIR/results.json.
# Exit status: 0, or 1 if a benchmark failed (or, with BENCH_STRICT=1, if
# an acceptance target was missed; by default a miss is only reported).

B=${BENCH_DIR:-build/bench}
ALL=$B/results.txt
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3 || true)
PIN=
if [ -n "$BENCH_PIN" ]; then
    if command -v taskset >/dev/null 2>&1; then PIN="taskset -c $BENCH_PIN"
    else echo "bench: BENCH_PIN set but taskset is missing: not pinned" >&2; fi
fi

wanted() { # wanted NAME [PATTERN...]: is NAME selected by the patterns?
    w_name=$1; shift
    [ $# -eq 0 ] && return 0
    for w_pat in "$@"; do case $w_name in *"$w_pat"*) return 0 ;; esac; done
    return 1
}

mkdir -p "$B"
: >"$ALL"
failed=0
t_all=$(date +%s)
load0=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)

run_one() { # run_one NAME CMD...: runs it, appends its lines to $ALL
    name=$1; shift
    log=$B/$name.log
    t0=$(date +%s)
    if [ -n "$BENCH_VERBOSE" ]; then
        printf 'bench: %s\n' "$name" >&2
        $PIN "$@" >"$log"          # its progress lines go straight to stderr
    else
        printf 'bench: %-20s ... ' "$name" >&2
        $PIN "$@" >"$log" 2>"$log.err"
    fi
    rc=$?
    t1=$(date +%s)
    [ -n "$BENCH_VERBOSE" ] && printf 'bench: %-20s ' "$name" >&2
    if [ $rc -ne 0 ]; then
        printf 'FAILED (exit %d), see %s\n' "$rc" "$log" >&2
        [ -f "$log.err" ] && tail -n 5 "$log.err" >&2
        echo "FAILED name=$name rc=$rc" >>"$ALL"
        failed=1
    elif grep -q '^SKIP' "$log"; then
        printf 'skipped: %s\n' "$(grep -m1 '^SKIP' "$log" | cut -c6-)" >&2
        grep -m1 '^SKIP' "$log" | sed "s/^SKIP/SKIP name=$name/" >>"$ALL"
    else
        printf 'done in %ss\n' $((t1 - t0)) >&2
    fi
    echo "# $name" >>"$ALL"
    grep -E '^(RESULT|TARGET) ' "$log" >>"$ALL"
    rm -f "$log.err"
}

# The cheap CPU-bound ones first, in this order; then the rest by name.
# bench_memory goes last: tearing down its 10,000 threads keeps the kernel
# busy for a while, which would disturb the next timing.
FIRST="bench_switch bench_spawn bench_nesting"
LAST="bench_memory"
ordered=
for name in $FIRST; do [ -x "$B/$name" ] && ordered="$ordered $name"; done
for bin in "$B"/bench_*; do
    [ -f "$bin" ] && [ -x "$bin" ] || continue
    name=${bin##*/}
    case " $FIRST $LAST " in *" $name "*) continue ;; esac
    ordered="$ordered $name"
done
for name in $LAST; do [ -x "$B/$name" ] && ordered="$ordered $name"; done

found=0
for name in $ordered; do
    wanted "$name" "$@" || continue
    found=1
    run_one "$name" "$B/$name"
done
for peer in bench/peers/*/run.sh; do
    [ -f "$peer" ] || continue
    name=peer_$(basename "$(dirname "$peer")")
    wanted "$name" "$@" || continue
    found=1
    run_one "$name" sh "$peer"
done
if [ $found -eq 0 ]; then
    echo "bench: no benchmark in $B (run 'make bench', or build them first)" >&2
    exit 1
fi
echo "bench: all done in $(( $(date +%s) - t_all ))s" >&2

if [ -n "$PY" ]; then
    BENCH_PINNED="$PIN" BENCH_LOAD_BEFORE="$load0" "$PY" bench/run.py "$ALL" --json "$B/results.json" || failed=1
else
    echo "bench: python3 not found: raw results below, no table or JSON"
    cat "$ALL"
fi
exit $failed
