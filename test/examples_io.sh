#!/bin/sh
# The I/O examples, run against each other on both backends:
#   echo_server + echo_client: 1000 connections x 1 MiB in random chunks,
#   every byte verified; SIGINT and SIGTERM with connections open (exit 0,
#   connections closed); a server under valgrind; error exits.
#   http_server: keep-alive, pipelining, 404/405/400, Connection: close
#   (test/http_check.py).
#   cat: files, standard input, a missing file, a closed pipe.
#   echo_server_mt: 2 loops on 2 threads, the 1000 x 1 MiB run again.
# Ends with "N passed, N failed".
B=build/examples
P=0; F=0
tmp=$(mktemp -d); trap 'kill $spid 2>/dev/null; rm -rf $tmp' EXIT
ok() { P=$((P + 1)); }
bad() { F=$((F + 1)); echo "FAIL $*"; }

# start_server BACKEND [WRAPPER...]: starts $server (echo_server) on a free
# port; sets spid and port (it prints "listening on 127.0.0.1:PORT").
server=echo_server
start_server() {
    be=$1; shift
    CORO_BACKEND=$be "$@" $B/$server 0 >$tmp/server.out 2>&1 &
    spid=$!
    port=
    for i in $(seq 1 200); do
        port=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\).*/\1/p' $tmp/server.out)
        [ -n "$port" ] && return 0
        sleep 0.05
    done
    bad "$server [$be] did not start"; cat $tmp/server.out
    return 1
}

# stop_server SIGNAL: signals the server; it must exit 0 having printed
# "closed".
stop_server() {
    kill -$1 $spid
    (sleep 60; kill -9 $spid 2>/dev/null) & watchdog=$! # a server that hangs fails
    wait $spid; rc=$?
    kill $watchdog 2>/dev/null
    if [ $rc -eq 0 ] && grep -q '^closed$' $tmp/server.out; then ok
    else bad "$server [$be] on SIG$1: exit $rc"; cat $tmp/server.out; fi
}

for be in uring epoll; do
    # 1000 concurrent clients, 1 MiB each, chunks of 1..65536 bytes.
    start_server $be || continue
    grep -q "($([ $be = uring ] && echo io_uring || echo epoll))" $tmp/server.out && ok ||
        bad "echo_server [$be]: wrong backend: $(cat $tmp/server.out)"
    if CORO_BACKEND=$be timeout 300 $B/echo_client $port 1000 1048576 65536 7 >$tmp/client.out 2>&1 &&
        grep -q '^1000 connections, 1048576 bytes each way, every byte verified' $tmp/client.out; then ok
    else bad "echo_client [$be] 1000 x 1 MiB"; tail -5 $tmp/client.out; fi
    stop_server INT

    # Stopping with connections open: SIGTERM closes them, exit 0.
    start_server $be || continue
    python3 - $port $tmp/held <<'PY' &
import socket, sys, time
port = int(sys.argv[1])
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(10)]
for s in socks:
    s.sendall(b"ping")
    assert s.recv(4) == b"ping"
open(sys.argv[2], "w").write("ready")
for s in socks:
    s.settimeout(20)
    assert s.recv(1) == b"", "connection not closed by the server"
open(sys.argv[2], "w").write("closed")
PY
    ppid=$!
    for i in $(seq 1 200); do [ -s $tmp/held ] && break; sleep 0.05; done
    stop_server TERM
    wait $ppid && [ "$(cat $tmp/held)" = closed ] && ok || bad "[$be] held connections not closed"
    grep -q '^stopping: 10 connection(s) open$' $tmp/server.out && ok ||
        bad "[$be] server did not see 10 connections: $(cat $tmp/server.out)"
    rm -f $tmp/held

    # The server under valgrind: no error, no leak.
    if command -v valgrind >/dev/null 2>&1 && [ -z "$CORO_NO_VALGRIND" ]; then
        start_server $be valgrind -q --error-exitcode=99 --leak-check=full \
            --errors-for-leak-kinds=all || continue
        CORO_BACKEND=$be timeout 300 $B/echo_client $port 50 65536 8192 3 >$tmp/client.out 2>&1 &&
            ok || { bad "echo_client [$be] against valgrind"; tail -5 $tmp/client.out; }
        stop_server INT
    fi

    # Errors: nobody listening; bad arguments.
    CORO_BACKEND=$be $B/echo_client $port 3 >$tmp/client.out 2>&1
    rc=$?
    [ $rc -eq 1 ] && grep -q 'connect.*refused' $tmp/client.out && ok ||
        { bad "echo_client [$be] to a closed port: exit $rc"; cat $tmp/client.out; }
done
# echo_server_mt: two loops on two threads, the same 1000 x 1 MiB run.
server=echo_server_mt
for be in uring epoll; do
    CORO_BACKEND=$be $B/echo_server_mt 0 2 >$tmp/server.out 2>&1 &
    spid=$!
    port=
    for i in $(seq 1 200); do
        port=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\) (.*, 2 threads)$/\1/p' $tmp/server.out)
        [ -n "$port" ] && break
        sleep 0.05
    done
    [ -n "$port" ] || { bad "echo_server_mt [$be] did not start: $(cat $tmp/server.out)"; continue; }
    if CORO_BACKEND=$be timeout 300 $B/echo_client $port 1000 1048576 65536 11 >$tmp/client.out 2>&1 &&
        grep -q '^1000 connections, 1048576 bytes each way, every byte verified' $tmp/client.out; then ok
    else bad "echo_client [$be] 1000 x 1 MiB against echo_server_mt"; tail -5 $tmp/client.out; fi
    stop_server TERM
    [ "$(grep -c '^closed$' $tmp/server.out)" -eq 2 ] && ok || bad "echo_server_mt [$be]: both loops must close"
done
$B/echo_server_mt 0 >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "echo_server_mt without THREADS"

# http_server: the protocol checks, then a stop with a connection open.
server=http_server
for be in uring epoll; do
    start_server $be || continue
    if python3 test/http_check.py $port >$tmp/http.out 2>&1; then ok
    else bad "http_server [$be]"; cat $tmp/http.out; fi
    stop_server TERM
done
server=echo_server

# cat: overlapped copies, standard input, errors.
head -c 5000000 /dev/urandom >$tmp/a
head -c 777 /dev/urandom >$tmp/b
: >$tmp/empty
cat $tmp/a $tmp/b $tmp/empty $tmp/a >$tmp/want
cat $tmp/b $tmp/a $tmp/b >$tmp/want2
for be in uring epoll; do
    CORO_BACKEND=$be $B/cat $tmp/a $tmp/b $tmp/empty $tmp/a >$tmp/got && cmp -s $tmp/got $tmp/want &&
        ok || bad "cat [$be] files"
    cat $tmp/b $tmp/a | CORO_BACKEND=$be $B/cat - $tmp/b >$tmp/got && cmp -s $tmp/got $tmp/want2 &&
        ok || bad "cat [$be] standard input"
    CORO_BACKEND=$be $B/cat $tmp/nonexistent $tmp/b >$tmp/got 2>$tmp/err
    [ $? -eq 1 ] && cmp -s $tmp/got $tmp/b && grep -q 'nonexistent: No such file' $tmp/err &&
        ok || bad "cat [$be] missing file: $(cat $tmp/err)"
    (trap '' PIPE; CORO_BACKEND=$be $B/cat $tmp/a $tmp/a 2>$tmp/err | head -c 10 >/dev/null
     exit $(cat $tmp/err | grep -c 'write error: broken pipe'))
    [ $? -eq 1 ] && ok || bad "cat [$be] closed pipe: $(cat $tmp/err)"
    if command -v valgrind >/dev/null 2>&1 && [ -z "$CORO_NO_VALGRIND" ]; then
        if CORO_BACKEND=$be valgrind -q --error-exitcode=99 --leak-check=full \
            --errors-for-leak-kinds=all $B/cat $tmp/a $tmp/b >$tmp/got 2>$tmp/err &&
            cat $tmp/a $tmp/b | cmp -s - $tmp/got; then ok
        else bad "cat [$be] under valgrind"; head $tmp/err; fi
    fi
done

$B/echo_server >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "echo_server without PORT"
$B/http_server x >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "http_server with a bad PORT"
$B/echo_client 0 >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "echo_client with port 0"

echo "$P passed, $F failed"
