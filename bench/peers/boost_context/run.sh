#!/bin/sh
# bench/peers/boost_context/run.sh - the Boost.Context peer: B1 and B2
# (boost_context.cpp), built with Debian's g++ and libboost-context-dev.
# Run from the repository root by bench/run.sh; prints RESULT or SKIP lines.
BENCHES=switch,spawn
D=${BENCH_DIR:-build/bench}/peers/boost_context
CXX=${CXX:-c++}
if [ ! -f /usr/include/boost/context/detail/fcontext.hpp ]; then
    echo "SKIP impl=boost_context bench=$BENCHES Boost.Context is not installed (Debian package libboost-context-dev)"
    exit 0
fi
mkdir -p "$D"
if ! $CXX -std=c++17 -O2 -g -Ibench -o "$D/boost_context" bench/peers/boost_context/boost_context.cpp \
        -lboost_context >"$D/build.log" 2>&1; then
    cat "$D/build.log" >&2
    echo "SKIP impl=boost_context bench=$BENCHES build failed (see $D/build.log)"
    exit 0
fi
exec "$D/boost_context"
