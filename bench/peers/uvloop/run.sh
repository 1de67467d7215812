#!/bin/sh
# bench/peers/uvloop/run.sh - the uvloop peer: the asyncio programs of
# bench/peers/asyncio/asyncio_bench.py (B1-B5) on uvloop's event loop
# (Debian package python3-uvloop, for /usr/bin/python3).
# Run from the repository root by bench/run.sh; prints RESULT or SKIP lines.
BENCHES=switch,spawn,queue,ring,timers,timers_sleep
PY=/usr/bin/python3
if ! [ -x "$PY" ] || ! "$PY" -c 'import asyncio, uvloop; asyncio.Runner' >/dev/null 2>&1; then
    echo "SKIP impl=uvloop bench=$BENCHES uvloop is not installed for /usr/bin/python3 (Debian package python3-uvloop)"
    exit 0
fi
exec "$PY" bench/peers/asyncio/asyncio_bench.py --loop uvloop
