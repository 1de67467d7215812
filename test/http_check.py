"""Checks examples/http_server on 127.0.0.1:PORT (run by test/examples_io.sh).

Keep-alive (several requests on one connection), 404 and 405, pipelined
requests, Connection: close, a malformed request (400 and close), and a
hundred clients one after another. Exits 1 with a message on the first
difference.
"""
import http.client
import socket
import sys

port = int(sys.argv[1])


def check(cond, what):
    if not cond:
        print("FAIL", what)
        sys.exit(1)


def read_response(sock_file):
    """One HTTP/1.1 response from a socket's file: (status, headers, body)."""
    status = sock_file.readline().decode()
    headers = {}
    while True:
        line = sock_file.readline().decode()
        if line in ("\r\n", ""):
            break
        k, v = line.split(":", 1)
        headers[k.strip().lower()] = v.strip()
    body = sock_file.read(int(headers.get("content-length", "0")))
    return status.split(" ", 2)[1] if status else "", headers, body


# Keep-alive: three requests on one connection.
conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
for path, want in (("/", 200), ("/missing", 404), ("/", 200)):
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    check(r.status == want, f"GET {path}: {r.status}")
    check(r.version == 11 and not r.will_close, f"GET {path}: connection not kept alive")
    if want == 200:
        check(body == b"Hello, world!\n", f"body {body!r}")
first_sock = conn.sock
conn.request("POST", "/", body=b"x")
r = conn.getresponse()
r.read()
check(r.status == 405, f"POST: {r.status}")
check(conn.sock is first_sock, "keep-alive: a new connection was made")
conn.close()

# Pipelining: two requests in one write, two responses in order.
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n")
f = s.makefile("rb")
check(read_response(f)[0] == "200", "pipelined 1")
check(read_response(f)[0] == "404", "pipelined 2")

# Connection: close: the response says so and the server closes.
s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
status, headers, body = read_response(f)
check(status == "200" and headers.get("connection") == "close", "Connection: close")
check(f.read() == b"", "server did not close after Connection: close")
s.close()

# Malformed: 400 and close.
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(b"NOT HTTP AT ALL\r\n\r\n")
f = s.makefile("rb")
check(read_response(f)[0] == "400", "malformed request")
check(f.read() == b"", "server did not close after 400")
s.close()

# A hundred clients, one request each (HTTP/1.0: the server closes).
for i in range(100):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/")
    r = c.getresponse()
    check(r.status == 200 and r.read() == b"Hello, world!\n", f"client {i}")
    c.close()

# One connection left open: the server's SIGTERM must close it.
print("ok")
