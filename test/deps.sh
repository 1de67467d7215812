#!/bin/sh
# test/deps.sh - installs, from Debian's packages, what `make test` needs
# and the machine lacks, saying what first. Run by `make test` before it
# builds anything; exits 1 if something is missing and cannot be installed.
#
#   TEST_NO_INSTALL=1   check and report only
#
# package             | what needs it                      | present if
PKGS='
gcc                   | everything                         | command -v gcc
g++                   | the C++17 header test              | command -v g++
liburing-dev          | coro_io.h                          | test -f /usr/include/liburing.h
libhttp-parser-dev    | examples/http_server               | test -f /usr/include/http_parser.h
valgrind              | the valgrind run, memcheck.h       | command -v valgrind
python3               | conformance, examples_io.sh        | command -v python3
'

missing=
for pkg in $(echo "$PKGS" | awk -F'|' 'NF == 3 { print $1 }'); do
    test_cmd=$(echo "$PKGS" | awk -F'|' -v p="$pkg" '{ k = $1; gsub(/ /, "", k) } k == p { print $3 }')
    sh -c "$test_cmd" >/dev/null 2>&1 || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
echo "test: missing:$missing" >&2
if [ -n "$TEST_NO_INSTALL" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "test: install them (Debian: apt-get install$missing) and run make test again" >&2
    exit 1
fi
SUDO=
[ "$(id -u)" != 0 ] && SUDO=sudo
echo "test: installing$missing from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2 && $SUDO apt-get install -y -qq $missing >&2 && exit 0
echo "test: could not install$missing" >&2
exit 1
