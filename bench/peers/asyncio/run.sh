#!/bin/sh
# bench/peers/asyncio/run.sh - the asyncio peer: B1-B5 on CPython's own
# event loop (asyncio_bench.py), with Debian's /usr/bin/python3 (3.11).
# Run from the repository root by bench/run.sh; prints RESULT or SKIP lines.
BENCHES=switch,spawn,queue,ring,timers,timers_sleep
PY=/usr/bin/python3
if ! [ -x "$PY" ] || ! "$PY" -c 'import asyncio; asyncio.Runner' >/dev/null 2>&1; then
    echo "SKIP impl=asyncio bench=$BENCHES /usr/bin/python3 (3.11 or later) is not installed (Debian package python3)"
    exit 0
fi
exec "$PY" bench/peers/asyncio/asyncio_bench.py --loop asyncio
