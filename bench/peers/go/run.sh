#!/bin/sh
# bench/peers/go/run.sh - the Go peer: B1-B6 (main.go), built with the Go
# toolchain from Debian (golang-go), run from the repository root by
# bench/run.sh. Prints the RESULT protocol, or a SKIP line.
BENCHES=switch,spawn,queue,ring,timers,timers_sleep,memory_sleep,memory_gate,memory_total,memory_max
D=$(pwd)/${BENCH_DIR:-build/bench}/peers/go
if ! command -v go >/dev/null 2>&1; then
    echo "SKIP impl=go bench=$BENCHES go is not installed (Debian package golang-go)"
    exit 0
fi
mkdir -p "$D"
# Everything under build/: no module download (there are no dependencies).
export GOCACHE="$D/cache" GOPATH="$D/gopath" GOPROXY=off GOFLAGS=-mod=mod GO111MODULE=on
if ! (cd bench/peers/go && go build -o "$D/gobench" .) >"$D/build.log" 2>&1; then
    cat "$D/build.log" >&2
    echo "SKIP impl=go bench=$BENCHES go build failed (see $D/build.log)"
    exit 0
fi
exec "$D/gobench"
