#!/bin/sh
# bench/io_peers.sh - builds B8's echo-server peers and says how to start
# each; run by bench_io_echo from the repository root (stdout is parsed):
#   PEER <impl> <argv...>        start it with the port appended
#   SKIP impl=<impl> bench=<ids> <reason>
# Builds into $BENCH_DIR/peers/echo/ (build/bench), only when the source is
# newer. The peers' packages are in bench/deps.sh.
B=${BENCH_DIR:-build/bench}
D=$B/peers/echo
IDS=${BENCH_ECHO_IDS:-echo}
CC=${CC:-cc}
PY=/usr/bin/python3
mkdir -p "$D"

newer() { # newer TARGET SOURCE...: does TARGET need a rebuild?
    n_t=$1; shift
    [ -x "$n_t" ] || return 0
    for n_s in "$@"; do [ -n "$(find "$n_s" -newer "$n_t" 2>/dev/null)" ] && return 0; done
    return 1
}

# libuv (libuv1-dev)
if [ ! -f /usr/include/uv.h ]; then
    echo "SKIP impl=libuv bench=$IDS libuv is not installed (Debian package libuv1-dev)"
elif newer "$D/libuv_echo" bench/peers/libuv/libuv_echo.c &&
     ! $CC -std=c11 -O2 -g -Wall -o "$D/libuv_echo" bench/peers/libuv/libuv_echo.c -luv \
        >"$D/libuv_build.log" 2>&1; then
    cat "$D/libuv_build.log" >&2
    echo "SKIP impl=libuv bench=$IDS build failed (see $D/libuv_build.log)"
else
    echo "PEER libuv $D/libuv_echo"
fi

# Go (golang-go)
if ! command -v go >/dev/null 2>&1; then
    echo "SKIP impl=go bench=$IDS go is not installed (Debian package golang-go)"
else
    G=$(pwd)/$B/peers/go
    mkdir -p "$G"
    if newer "$D/goecho" bench/peers/go/echo/main.go &&
       ! (cd bench/peers/go && GOCACHE="$G/cache" GOPATH="$G/gopath" GOPROXY=off \
              GOFLAGS=-mod=mod GO111MODULE=on go build -o "$OLDPWD/$D/goecho" ./echo) \
            >"$D/go_build.log" 2>&1; then
        cat "$D/go_build.log" >&2
        echo "SKIP impl=go bench=$IDS go build failed (see $D/go_build.log)"
    else
        echo "PEER go $D/goecho"
    fi
fi

# asyncio and uvloop (Debian's python3 3.11, python3-uvloop)
if [ -x "$PY" ] && "$PY" -c 'import asyncio; asyncio.Runner' >/dev/null 2>&1; then
    echo "PEER asyncio $PY bench/peers/asyncio/echo_server.py --loop asyncio"
    if "$PY" -c 'import uvloop' >/dev/null 2>&1; then
        echo "PEER uvloop $PY bench/peers/asyncio/echo_server.py --loop uvloop"
    else
        echo "SKIP impl=uvloop bench=$IDS uvloop is not installed for $PY (Debian package python3-uvloop)"
    fi
else
    echo "SKIP impl=asyncio bench=$IDS $PY (3.11 or later) is not installed (Debian package python3)"
    echo "SKIP impl=uvloop bench=$IDS $PY (3.11 or later) is not installed (Debian package python3)"
fi
exit 0
