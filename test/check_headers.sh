#!/bin/sh
# Each header alone compiles warning-free with the strictest flags, as C11
# and as C++17, with gcc and clang; coro.h and coro_loop.h also compile
# freestanding; the core headers never allocate and never name liburing.
P=0; F=0
tmp=$(mktemp -d); trap 'rm -rf $tmp' EXIT
ok() { P=$((P + 1)); }
ko() { F=$((F + 1)); echo "FAIL headers: $1"; cat "$tmp/err" | head -20; }
C_FLAGS="-std=c11 -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Werror"
X_FLAGS="-std=c++17 -Wall -Wextra -Wpedantic -Wshadow -Werror"
for h in coro.h coro_loop.h coro_sync.h coro_io.h; do
    printf '#include "%s"\n#include "%s"\nint main(void) { return 0; }\n' "$h" "$h" >"$tmp/t.c"
    cp "$tmp/t.c" "$tmp/t.cpp"
    for cc in gcc clang; do
        command -v $cc >/dev/null || continue
        $cc $C_FLAGS -I. -c "$tmp/t.c" -o "$tmp/t.o" 2>"$tmp/err" && ok || ko "$h as C11 with $cc"
    done
    for cxx in g++ clang++; do
        command -v $cxx >/dev/null || continue
        $cxx $X_FLAGS -I. -c "$tmp/t.cpp" -o "$tmp/t.o" 2>"$tmp/err" && ok || ko "$h as C++17 with $cxx"
    done
done
for h in coro.h coro_loop.h; do
    printf '#include "%s"\nint f(void) { return 0; }\n' "$h" >"$tmp/f.c"
    gcc -std=c11 -ffreestanding -nostdinc -isystem "$(gcc -print-file-name=include)" \
        -Wall -Wextra -Werror -I. -c "$tmp/f.c" -o "$tmp/f.o" 2>"$tmp/err" \
        && ok || ko "$h freestanding (compiler headers only)"
done
# Freestanding on the host and on the embedded targets (when their compilers
# are installed): each core header alone with the compiler's own headers
# only, and nothing included but <stddef.h> and <stdint.h>.
for t in "gcc" "arm-none-eabi-gcc -mcpu=cortex-m4 -mthumb" "riscv64-unknown-elf-gcc -march=rv32imac -mabi=ilp32"; do
    command -v ${t%% *} >/dev/null || continue
    inc=$($t -print-file-name=include)
    for h in coro.h coro_loop.h coro_sync.h; do
        printf '#include "%s"\nint f(void) { return 0; }\n' "$h" >"$tmp/f.c"
        if $t $C_FLAGS -Os -ffreestanding -nostdinc -isystem "$inc" -I. -c "$tmp/f.c" -o "$tmp/f.o" 2>"$tmp/err" &&
            $t -std=c11 -ffreestanding -nostdinc -isystem "$inc" -I. -M "$tmp/f.c" >"$tmp/deps" 2>"$tmp/err"; then
            tr ' \\' '\n\n' <"$tmp/deps" | grep "^$inc/" | sed 's|.*/||' | sort -u |
                grep -vxE 'stddef.h|stdint.h|stdint-gcc.h' >"$tmp/err" && ko "$h freestanding for ${t%% *} includes more than stddef.h/stdint.h" || ok
        else
            ko "$h freestanding for ${t%% *}"
        fi
    done
done
for h in coro.h coro_loop.h coro_sync.h; do
    if grep -nE '\b(malloc|calloc|realloc|free)[[:space:]]*\(' "$h" >"$tmp/err" || grep -n 'liburing' "$h" >>"$tmp/err"; then
        ko "$h allocates or names liburing"
    else ok; fi
done
echo "$P passed, $F failed"
