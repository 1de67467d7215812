#!/bin/sh
# qemu_test.sh - runs on an emulated Cortex-M4 (qemu-system-arm -M
# mps2-an386, output and exit status through semihosting):
#   - every test suite built with TEST_EMBEDDED ($1/test/*.elf),
#   - the size images of `make size` (each checks its own results),
#   - the example firmware, whose output must match
#     examples/embedded/firmware.expected (run with -icount: the clock is
#     the instruction count, so the SysTick times are exact).
# Ends with "N passed, N failed, N skipped" (tests skipped: death tests).
B=${1:-build/embedded}
QEMU_ARM=${QEMU_ARM:-qemu-system-arm}
QEMU="$QEMU_ARM -M mps2-an386 -display none -monitor none -serial none -semihosting-config enable=on,target=native"
P=0; F=0; S=0
log=$(mktemp); trap 'rm -f $log' EXIT
start=$(date +%s)

run() { # run ELF [qemu options]: output in $log, status in $rc
    elf=$1; shift
    timeout 600 $QEMU "$@" -kernel "$elf" >"$log" 2>&1; rc=$?
}

for t in "$B"/test/test_*.elf; do
    name=${t##*/}; name=${name%.elf}
    run "$t"
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    if [ -z "$line" ]; then
        F=$((F + 1)); echo "CRASH qemu/$name (status $rc)"; tail -n 20 "$log"; continue
    fi
    p=${line%% passed*}; f=${line#*, }; f=${f%% failed*}
    s=0; case $line in *skipped*) s=${line##*failed, }; s=${s%% skipped*} ;; esac
    P=$((P + p)); F=$((F + f)); S=$((S + s))
    [ "$f" -ne 0 ] && grep '^FAIL' "$log" | sed "s|^|[qemu/$name] |"
    [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && { F=$((F + 1)); echo "EXIT $rc qemu/$name"; tail -n 20 "$log"; }
done

for n in 0 1 2 3; do
    run "$B/size-arm-$n.elf"
    if [ "$rc" -eq 0 ]; then P=$((P + 1)); else F=$((F + 1)); echo "FAIL qemu/size-arm-$n.elf: status $rc"; tail -n 5 "$log"; fi
done

run "$B/firmware.elf" -icount shift=4,sleep=off
if [ "$rc" -eq 0 ] && cmp -s "$log" examples/embedded/firmware.expected; then
    P=$((P + 1))
else
    F=$((F + 1)); echo "FAIL example examples/embedded (status $rc)"; diff examples/embedded/firmware.expected "$log" | head -20
fi

echo "qemu-test: $(($(date +%s) - start)) s on $($QEMU_ARM --version | head -n 1)"
if [ "$S" -ne 0 ]; then echo "$P passed, $F failed, $S skipped"; else echo "$P passed, $F failed"; fi
[ "$F" -eq 0 ]
