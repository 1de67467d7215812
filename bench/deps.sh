#!/bin/sh
# bench/deps.sh - installs, from Debian's packages, what the peers of
# `make bench` need and the machine lacks; says what before installing.
# A package that cannot be installed (no apt-get, not root, no network, not
# in the archive) is only reported: its peer prints SKIP and the table shows
# a SKIP column. Never fails.
#
#   BENCH_NO_INSTALL=1   check and report only
#
# package             | what needs it                  | present if
PKGS='
golang-go             | go peer (B1-B6, B8 echo)       | command -v go
libuv1-dev            | libuv peer (B5, B8 echo)       | test -f /usr/include/uv.h
libboost-context-dev  | boost_context peer (B1, B2)    | test -f /usr/include/boost/context/detail/fcontext.hpp
g++                   | boost_context peer             | command -v c++
python3-uvloop        | uvloop peer (B1-B5, B8 echo)   | /usr/bin/python3 -c "import uvloop"
gnuplot-nox           | charts (build/bench/*.svg)     | command -v gnuplot
fio                   | fio peer (B9 files)            | command -v fio
liburing-dev          | bench_io_*, raw liburing (NOP) | test -f /usr/include/liburing.h
'

missing=
for pkg in $(echo "$PKGS" | awk -F'|' 'NF == 3 { print $1 }'); do
    test_cmd=$(echo "$PKGS" | awk -F'|' -v p="$pkg" '{ k = $1; gsub(/ /, "", k) } k == p { print $3 }')
    sh -c "$test_cmd" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -z "$missing" ]; then
    echo "bench: every peer's packages are installed" >&2
    exit 0
fi
echo "bench: missing for the peers:$missing" >&2
if [ -n "$BENCH_NO_INSTALL" ]; then
    echo "bench: BENCH_NO_INSTALL is set: not installing; those peers will be skipped" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "bench: no apt-get (not Debian?): install them yourself; those peers will be skipped" >&2
    exit 0
fi
SUDO=
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "bench: not root and no password-less sudo: not installing; those peers" \
            "will be skipped (as root: apt-get install$missing)" >&2
        exit 0
    fi
fi
echo "bench: about to install from Debian's packages (apt-get install):$missing" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2 || echo "bench: apt-get update failed; trying anyway" >&2
if ! $SUDO apt-get install -y -qq --no-install-recommends $missing >&2; then
    # One at a time, so that one unavailable package does not stop the rest.
    for pkg in $missing; do
        $SUDO apt-get install -y -qq --no-install-recommends "$pkg" >&2 ||
            echo "bench: could not install $pkg: its peer will be skipped" >&2
    done
fi
exit 0
