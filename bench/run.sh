#!/bin/sh
# bench/run.sh - runs every benchmark and every peer, prints one table
# (make bench; make bench-full sets BENCH_PROFILE=full).
#
#   sh bench/run.sh [PATTERN...]    only benchmarks whose name contains one
#                                   of the patterns (e.g. switch peer_go)
# Environment:
#   BENCH_PROFILE=full  the large sizes (default: quick, under 5 minutes)
#   BENCH_PIN=CPUS    run every benchmark under `taskset -c CPUS` (e.g. 0)
#   BENCH_RUNS=N      timed repetitions per measurement (default 5-7, min 5)
#   BENCH_SCALE=F     multiply iteration counts by F (e.g. 0.1 for a quick look)
#   BENCH_DIR=DIR     where the binaries are and the results go (build/bench)
#   BENCH_VERBOSE=1   show each benchmark's per-run progress lines
#   BENCH_STRICT=1    exit 1 when an acceptance target is missed
#
# What runs, in order:
#   1. every executable $BENCH_DIR/bench_* (the Makefile builds one per
#      bench/bench_*.c): switch, spawn, nesting, sync, ring, timers, cancel,
#      then any other by name (bench_io_echo, _files, _nop, _thread: B8, B9
#      and the io rows; bench_io_echo starts its own servers and the echo
#      peers of bench/io_peers.sh), and memory last;
#   2. every bench/peers/*/run.sh (the peers: Go, Boost.Context, libuv,
#      asyncio, uvloop, ...), run with sh from the repository root; a peer
#      whose toolchain is missing prints `SKIP impl=<peer> bench=<ids> <why>`
#      and exits 0, and its column shows SKIP.
# Each prints RESULT/TARGET/POINT lines (bench/README.md, "Output protocol");
# its whole output is kept in $BENCH_DIR/<name>.log. Then bench/run.py merges
# the lines into one table on stdout, $BENCH_DIR/results.json, results.md and
# the charts ($BENCH_DIR/*.svg).
# Progress: one line per benchmark on stderr, rewritten in place with its
# current step when stderr is a terminal.
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
export BENCH_PROFILE="${BENCH_PROFILE:-quick}"

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
live=
[ -t 2 ] && [ -z "$BENCH_VERBOSE" ] && live=1

run_one() { # run_one NAME CMD...: runs it, appends its lines to $ALL
    name=$1; shift
    log=$B/$name.log
    i=$((i + 1))
    head=$(printf 'bench: [%d/%d] %-20s' "$i" "$total" "$name")
    t0=$(date +%s)
    if [ -n "$BENCH_VERBOSE" ]; then
        printf '%s\n' "$head" >&2
        $PIN "$@" >"$log"          # its progress lines go straight to stderr
        rc=$?
    elif [ -n "$live" ]; then
        # Its stderr through a pipe: each progress line rewrites ours.
        { $PIN "$@" 2>&1 >"$log"; echo $? >"$log.rc"; } | {
            : >"$log.err"
            while IFS= read -r line; do
                echo "$line" >>"$log.err"
                printf '\r\033[K%s %s (%ss)' "$head" "${line#  .. }" \
                    $(($(date +%s) - t0)) >&2
            done
        }
        rc=$(cat "$log.rc" 2>/dev/null || echo 1)
        rm -f "$log.rc"
        printf '\r\033[K%s ' "$head" >&2
    else
        printf '%s ... ' "$head" >&2
        $PIN "$@" >"$log" 2>"$log.err"
        rc=$?
    fi
    t1=$(date +%s)
    [ -n "$BENCH_VERBOSE" ] && printf '%s ' "$head" >&2
    if [ "$rc" -ne 0 ]; then
        printf 'FAILED (exit %d), see %s\n' "$rc" "$log" >&2
        [ -f "$log.err" ] && tail -n 5 "$log.err" >&2
        echo "FAILED name=$name rc=$rc" >>"$ALL"
        failed=1
    elif grep -q '^SKIP' "$log"; then
        printf 'skipped: %s\n' "$(grep -m1 '^SKIP' "$log" | sed 's/^SKIP *//; s/impl=[^ ]* //; s/bench=[^ ]* //')" >&2
        grep '^SKIP' "$log" | sed "s/^SKIP/SKIP name=$name/" >>"$ALL"
    else
        printf 'done in %ss\n' $((t1 - t0)) >&2
    fi
    echo "# $name" >>"$ALL"
    grep -E '^(RESULT|TARGET|POINT) ' "$log" >>"$ALL"
    rm -f "$log.err"
}

# The cheap CPU-bound ones first, in this order; then the rest by name.
# bench_memory goes last: tearing down its 10,000 threads keeps the kernel
# busy for a while, which would disturb the next timing.
FIRST="bench_switch bench_spawn bench_nesting bench_sync bench_ring bench_timers bench_cancel"
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
# Peers: the compiled ones first, then the slow interpreted ones.
peers=
for p in go boost_context libuv; do [ -f "bench/peers/$p/run.sh" ] && peers="$peers $p"; done
for f in bench/peers/*/run.sh; do
    [ -f "$f" ] || continue
    p=$(basename "$(dirname "$f")")
    case " $peers " in *" $p "*) continue ;; esac
    peers="$peers $p"
done

selected=
for name in $ordered; do wanted "$name" "$@" && selected="$selected $name"; done
for p in $peers; do wanted "peer_$p" "$@" && selected="$selected peer_$p"; done
total=$(echo $selected | wc -w)
if [ "$total" -eq 0 ]; then
    echo "bench: no benchmark in $B (run 'make bench', or build them first)" >&2
    exit 1
fi
echo "bench: $total benchmarks, $BENCH_PROFILE profile; results in $B/" >&2
i=0
for name in $selected; do
    case $name in
    peer_*) run_one "$name" sh "bench/peers/${name#peer_}/run.sh" ;;
    *) run_one "$name" "$B/$name" ;;
    esac
done
dur=$(( $(date +%s) - t_all ))
echo "bench: all done in ${dur}s" >&2

if [ -n "$PY" ]; then
    BENCH_PINNED="$PIN" BENCH_LOAD_BEFORE="$load0" BENCH_DURATION="$dur" \
        "$PY" bench/run.py "$ALL" --json "$B/results.json" || failed=1
else
    echo "bench: python3 not found: raw results below, no table or JSON"
    cat "$ALL"
fi
exit $failed
