#!/bin/sh
# bench/peers/libuv/run.sh - the libuv peer: B5 (libuv_timers.c), built with
# Debian's libuv1-dev. Run from the repository root by bench/run.sh; prints
# RESULT or SKIP lines. (B8's echo server, libuv_echo.c, is built and
# started by bench_io_echo, through bench/io_peers.sh.)
BENCHES=timers
D=${BENCH_DIR:-build/bench}/peers/libuv
CC=${CC:-cc}
if [ ! -f /usr/include/uv.h ]; then
    echo "SKIP impl=libuv bench=$BENCHES libuv is not installed (Debian package libuv1-dev)"
    exit 0
fi
mkdir -p "$D"
if ! $CC -std=c11 -O2 -g -Wall -Ibench -o "$D/libuv_timers" bench/peers/libuv/libuv_timers.c \
        -luv >"$D/build.log" 2>&1; then
    cat "$D/build.log" >&2
    echo "SKIP impl=libuv bench=$BENCHES build failed (see $D/build.log)"
    exit 0
fi
exec "$D/libuv_timers"
