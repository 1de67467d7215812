#!/bin/sh
# size.sh - the tables of `make size` (markdown), from the images that
# test/embedded/embedded.mk built into $1 (build/embedded), each in the
# default configuration and in the slim one (name ending in -slim; the
# options in $CORO_SLIM):
#   size-arm-N.elf           reference firmware of feature set N, Cortex-M4 -Os
#   size-arm-N-noinline.elf  the same with every library function out of line
#                            (CORO_API noinline): attributes code to library/app
#   size-rv32-N.elf          the same set on RV32IMAC -Os
#   firmware.elf             examples/embedded
#   sizes-arm.o, sizes-rv32.o  sizeof() of the records, as symbol sizes
#   all-arm.o                every library function, out of line, once
# Ends with "FAIL ..." lines (and status 1) if a check does not hold: the
# library must add no .data/.bss of its own.
B=${1:-build/embedded}
SLIM=${CORO_SLIM:-(see embedded.mk)}
ARM_SIZE=${ARM_SIZE:-arm-none-eabi-size}
ARM_NM=${ARM_NM:-arm-none-eabi-nm}
RV_SIZE=${RV_SIZE:-riscv64-unknown-elf-size}
RV_NM=${RV_NM:-riscv64-unknown-elf-nm}
fail=0

# text data bss of an image (Berkeley format: .text counts vectors and rodata)
tdb() { $1 "$2" | awk 'NR == 2 { print $1, $2, $3 }'; }

# Code of the functions the reference application itself defines.
app_syms() {
    $1 -S -t d "$2" | awk '
        NF == 4 && $4 ~ /^(main|app_fn|worker|worker_fn|syncer_fn|board_now|board_idle|by_value|pred_set|complete_cb)$/ { s += $2 }
        END { print s + 0 }'
}

# Code of the runtime helpers beyond the empty image (memset, memcpy, libgcc).
rt_syms() {
    $1 -S -t d "$2" | awk '
        NF == 4 && ($4 ~ /^(memset|memcpy)$/ || $4 ~ /^__(aeabi|udiv|div|mod|umod|ash|lsh|cmp|ucmp)/) { s += $2 }
        END { print s + 0 }'
}

set -- $(tdb $ARM_SIZE $B/size-arm-0.elf)
E_T=$1
set -- $(tdb $RV_SIZE $B/size-rv32-0.elf)
R_T=$1

echo "### Code size: Cortex-M4 (\`arm-none-eabi-gcc $(arm-none-eabi-gcc -dumpversion) -mcpu=cortex-m4 -mthumb -Os\`), RV32IMAC (\`-march=rv32imac -mabi=ilp32 -Os\`)"
echo
echo "Freestanding (\`-ffreestanding -nostdinc\`, \`-nostdlib\`: no libc at all), \`-ffunction-sections -fdata-sections -Wl,--gc-sections\`."
echo "Bytes. \"empty\" is the startup code alone (vector table, reset and fault handlers): the"
echo "other rows subtract it. \"library alone\" counts the library's own functions (all named"
echo "\`coro_*\`) and string constants in a build where none of them is inlined into the"
echo "reference application (\`CORO_API\` = \`static __attribute__((noinline))\`); the rest of"
echo "\"− empty\" is the application's coroutine bodies, which inline small library calls."
echo
echo "Default configuration, then slim: \`$SLIM\` (see coro.h, \"Size options\")."
echo
echo "| image (test/embedded/size_fw.c) | .text | .data | .bss | .text − empty | library alone | RV32 .text − empty | slim: .text − empty | slim: library alone | slim: RV32 |"
echo "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
echo "| empty: startup code only | $E_T | $(tdb $ARM_SIZE $B/size-arm-0.elf | cut -d' ' -f2) | $(tdb $ARM_SIZE $B/size-arm-0.elf | cut -d' ' -f3) | 0 | 0 | 0 | 0 | 0 | 0 |"
# lib ELF: the library's share of a noinline image
lib() {
    app=$(app_syms $ARM_NM "$1")
    rt=$(rt_syms $ARM_NM "$1")
    set -- $(tdb $ARM_SIZE "$1")
    echo $(($1 - E_T - app - rt))
}
for n in 1 2 3; do
    case $n in
    1) name="(a) core: tasks, yield, coro_run" ;;
    2) name="(b) + timers, signals, gather/wait/timeout/wait_for/shield/as_completed/TaskGroup" ;;
    3) name="(c) + all of coro_sync.h" ;;
    esac
    row="| $name"
    for cfg in "" -slim; do
        set -- $(tdb $ARM_SIZE $B/size-arm-$n$cfg.elf)
        t=$1 d=$2 b=$3
        l=$(lib $B/size-arm-$n$cfg-noinline.elf)
        set -- $(tdb $RV_SIZE $B/size-rv32-$n$cfg.elf)
        rv=$(($1 - R_T))
        if [ -z "$cfg" ]; then
            row="$row | $t | $d | $b | $((t - E_T)) | $l | $rv"
            eval "LIB_$n=$l IMG_$n=$((t - E_T))"
        else
            row="$row | $((t - E_T)) | $l | $rv"
            eval "SLIB_$n=$l SIMG_$n=$((t - E_T))"
        fi
        [ "$d" -eq 0 ] && [ "$b" -eq 0 ] || { echo "FAIL size: set $n$cfg has .data/.bss ($d/$b): the library must define none"; fail=1; }
    done
    echo "$row |"
done
set -- $(tdb $ARM_SIZE $B/firmware.elf)
fw="| examples/embedded firmware (its own .bss: its static records) | $1 | $2 | $3 | $(($1 - E_T)) | | "
set -- $(tdb $ARM_SIZE $B/firmware-slim.elf)
echo "$fw| $(($1 - E_T)) | | |"
echo

# Library symbols in .data/.bss, in any image (there must be none).
for f in $B/size-arm-*.elf $B/firmware.elf; do
    $ARM_NM "$f" | awk -v f="$f" '$2 ~ /^[bBdD]$/ && $3 ~ /^coro_/ { print "FAIL size: " f ": library data symbol " $3; bad = 1 } END { exit bad }' || fail=1
done

echo "### RAM per record (bytes, 32-bit targets)"
echo
echo "| record | Cortex-M4 | RV32 | slim: Cortex-M4 | slim: RV32 |"
echo "|---|--:|--:|--:|--:|"
rec() { $1 -S -t d "$2" | awk '$4 ~ /^size__/ { sub(/^size__/, "", $4); print $4, $2 + 0 }'; }
rec $ARM_NM $B/sizes-arm.o >$B/sizes-arm.txt
rec $RV_NM $B/sizes-rv32.o >$B/sizes-rv32.txt
rec $ARM_NM $B/sizes-arm-slim.o >$B/sizes-arm-slim.txt
rec $RV_NM $B/sizes-rv32-slim.o >$B/sizes-rv32-slim.txt
get() { awk -v k="$2" '$1 == k { print $2 }' "$1"; }
for r in coro_task coro_frame coro_handle coro_future coro_loop coro_call coro_signal coro_user_clock \
         coro_timeout coro_group_task coro_event coro_event_op coro_lock coro_lock_op coro_sem \
         coro_queue coro_queue_op coro_job; do
    echo "| \`$r\` | $(get $B/sizes-arm.txt $r) | $(get $B/sizes-rv32.txt $r) | $(get $B/sizes-arm-slim.txt $r) | $(get $B/sizes-rv32-slim.txt $r) |"
done
TASK=$(get $B/sizes-arm.txt coro_task)
FRAME=$(get $B/sizes-arm.txt coro_frame)
STASK=$(get $B/sizes-arm-slim.txt coro_task)
SFRAME=$(get $B/sizes-arm-slim.txt coro_frame)
echo
echo "Per task: \`coro_task\` $TASK (its sleep timer is inside: the handle's deadline and timer links) +"
echo "the root frame's \`coro_frame\` header $FRAME = **$((TASK + FRAME)) bytes** beyond the user's own"
echo "frame fields (slim: $STASK + $SFRAME = **$((STASK + SFRAME)) bytes**); each further frame the task"
echo "awaits adds a $FRAME-byte header."
echo

echo "### What costs what: every library function out of line, once (Cortex-M4 -Os)"
echo
awk -f test/embedded/areas.awk coro.h coro_loop.h coro_sync.h >$B/areas.txt
# areas OBJECT: "size<TAB>area" lines, and "total<TAB>~TOTAL"
areas() {
$ARM_NM -S -t d "$1" | awk -F'\t' 'NR == FNR { area[$1] = $2; next }
    {
        split($0, f, " ")
        if (f[3] !~ /^[tT]$/) next
        n = f[4]; sub(/\..*/, "", n)
        a = (n in area) ? area[n] : "(other)"
        s[a] += f[2]; tot += f[2]
    }
    END { for (a in s) printf "%d\t%s\n", s[a], a; printf "%d\t%s\n", tot, "~TOTAL" }' $B/areas.txt -
}
areas $B/all-arm.o >$B/areas-default.txt
areas $B/all-arm-slim.o >$B/areas-slim.txt
sort -t "$(printf '\t')" -k1,1nr $B/areas-default.txt | awk -F'\t' -v all="$($ARM_SIZE $B/all-arm.o | awk 'NR == 2 { print $1 }')" \
    -v sall="$($ARM_SIZE $B/all-arm-slim.o | awk 'NR == 2 { print $1 }')" '
        NR == FNR { slim[$2] = $1; next }
        BEGIN { print "| area (header: section) | .text | slim |"; print "|---|--:|--:|" }
        $2 == "~TOTAL" { total = $1; next }
        { print "| " $2 " | " $1 " | " (($2 in slim) ? slim[$2] : 0) " |" }
        END { print "| **all functions** (plus " all - total " / " sall - slim["~TOTAL"] " of string constants) | **" total "** | **" slim["~TOTAL"] "** |" }' $B/areas-slim.txt -
echo
echo "Per function: \`$ARM_NM --size-sort -S $B/all-arm.o\`."
echo

bar() { if [ "$1" -le "$2" ]; then echo met; else echo "**missed** by $(($1 - $2))"; fi; }
set -- $(tdb $ARM_SIZE $B/size-arm-3.elf)
echo "### Acceptance bars (issue 8)"
echo
echo "| bar | default | | slim | |"
echo "|---|--:|---|--:|---|"
echo "| core + timers + awaiting family + all of coro_sync.h ≤ 4096 B .text (library alone; image − empty in brackets) | $LIB_3 ($IMG_3) | $(bar "$LIB_3" 4096) | $SLIB_3 ($SIMG_3) | $(bar "$SLIB_3" 4096) |"
echo "| ≤ 32 B of RAM per task beyond the user's frame fields (task + root frame header) | $((TASK + FRAME)) | $(bar $((TASK + FRAME)) 32) | $((STASK + SFRAME)) | $(bar $((STASK + SFRAME)) 32) |"
echo "| no .data/.bss from the library | $(($2 + $3)) | $(bar $(($2 + $3)) 0) | 0 | met |"
echo
[ "$fail" -eq 0 ]
