#!/bin/sh
# Runs the whole suite: every test binary plain, under ASan+UBSan (the core
# ones also with every size option: build/test/slim), and plain
# under valgrind (when installed); the thread suites also under TSan; every
# example against its expected output; the I/O examples against each other
# (examples_io.sh); the header checks; the conformance scenarios.
# Ends with "N passed, N failed[, N skipped]".
B=build
P=0; F=0; S=0
add() { # add "N passed, M failed" from a log, or count a crash as a failure
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
    if [ -z "$line" ]; then F=$((F + 1)); echo "CRASH $2"; tail -n 20 "$1"; return; fi
    p=${line%% passed*}; f=${line#*, }; f=${f%% failed*}
    case $line in *skipped*) k=${line##*failed, }; S=$((S + ${k%% skipped*})) ;; esac
    P=$((P + p)); F=$((F + f))
    [ "$f" -ne 0 ] && grep '^FAIL' "$1" | sed "s|^|[$2] |"
    [ "$3" -ne 0 ] && [ "$f" -eq 0 ] && { F=$((F + 1)); echo "EXIT $3 $2"; tail -n 20 "$1"; }
    return 0
}
log=$(mktemp); trap 'rm -f $log' EXIT

# run LABEL CMD...: runs a test binary; the I/O suites (test_io_*) run
# once per backend (CORO_BACKEND=uring, then epoll).
run() {
    label=$1; shift
    case $label in
    */test_io_*)
        for be in uring epoll; do
            CORO_BACKEND=$be "$@" >"$log" 2>&1; rc=$?
            add "$log" "$label[$be]" $rc
        done ;;
    *)
        "$@" >"$log" 2>&1; rc=$?
        add "$log" "$label" $rc ;;
    esac
}

for flavor in plain asan tsan slim; do
    for t in $B/test/$flavor/test_*; do
        [ -x "$t" ] || continue
        run "$flavor/${t##*/}" "$t"
    done
done

if [ -n "$CORO_NO_VALGRIND" ]; then
    echo "valgrind run skipped (CORO_NO_VALGRIND)"; S=$((S + 1))
elif command -v valgrind >/dev/null 2>&1; then
    # --fair-sched: valgrind runs one thread at a time, and its default
    # lock lets a thread that never blocks (a loop with a task always
    # ready) take it back at once, starving a poster for minutes.
    for t in $B/test/plain/test_*; do
        run "valgrind/${t##*/}" valgrind -q --fair-sched=yes --error-exitcode=99 --leak-check=full \
            --errors-for-leak-kinds=all --child-silent-after-fork=yes "$t"
    done
else
    echo "valgrind not installed: valgrind run skipped"; S=$((S + 1))
fi

# Examples: exact output on the virtual clock; plus a real-clock run.
for e in examples/*.c; do
    name=$(basename "$e" .c)
    bin=$B/examples/$name
    [ -f "examples/$name.expected" ] || continue
    if CORO_CLOCK=virtual "$bin" >"$log" 2>&1 && cmp -s "$log" "examples/$name.expected"; then
        P=$((P + 1))
    else
        F=$((F + 1)); echo "FAIL example $name (virtual clock)"; diff "examples/$name.expected" "$log" | head -20
    fi
    if "$bin" >"$log" 2>&1 && [ "$(wc -l <"$log")" -eq "$(wc -l <"examples/$name.expected")" ]; then
        P=$((P + 1))
    else
        F=$((F + 1)); echo "FAIL example $name (real clock)"; head -20 "$log"
    fi
done

# The I/O examples against each other, on both backends.
sh test/examples_io.sh >"$log" 2>&1
add "$log" "examples_io" 0

sh test/check_headers.sh >"$log" 2>&1
add "$log" "check_headers" 0

# Conformance with CPython asyncio: shipped scenarios (ASan+UBSan build),
# plus 300 random ones when CPython >= 3.13 is here (else said skipped).
sh test/conformance/run.sh 300 1 >"$log" 2>&1
grep -E '^(FAIL|CRASH|TIMEOUT)' "$log" | head -20
grep -q 'random part is skipped' "$log" && { echo "conformance: no CPython >= 3.13, random scenarios skipped"; S=$((S + 1)); }
for line in $(grep -E '^conformance: [0-9]+ passed, [0-9]+ failed' "$log" | sed 's/conformance: \([0-9]*\) passed, \([0-9]*\) failed/\1:\2/'); do
    P=$((P + ${line%%:*})); F=$((F + ${line##*:}))
done
grep -qE '^conformance: [0-9]+ passed' "$log" || { F=$((F + 1)); echo "FAIL conformance did not run"; tail -5 "$log"; }

if [ "$S" -ne 0 ]; then echo "$P passed, $F failed, $S skipped"; else echo "$P passed, $F failed"; fi
[ "$F" -eq 0 ]
