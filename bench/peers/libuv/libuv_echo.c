/* libuv_echo.c - B8's libuv peer: an echo server on libuv (Debian's
 * libuv1-dev 1.44, which is pure epoll), written as libuv's own examples
 * write it, with the fast path its docs recommend: each read callback
 * answers with uv_try_write (the bytes go out at once, no request, no
 * copy) and only what the socket does not take is copied into a uv_write
 * request. One loop, one thread. Built and started by bench/bench_io_echo
 * (through bench/io_peers.sh):
 *
 *   libuv_echo PORT        listens on 127.0.0.1:PORT until SIGTERM
 */
#define _GNU_SOURCE 1 /* pthread_rwlock_t in <uv.h> under -std=c11 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define BUFSZ 16384

struct conn {
    uv_tcp_t tcp;
    char buf[BUFSZ]; /* one read at a time: libuv reads into it */
};

struct wreq {
    uv_write_t req;
    uv_buf_t buf;
    char data[];
};

static uv_loop_t *loop;

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct conn *c = (struct conn *)h;
    (void)hint;
    *b = uv_buf_init(c->buf, BUFSZ);
}

static void on_close(uv_handle_t *h)
{
    free(h);
}

static void on_written(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n < 0) {
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    if (n == 0) return;
    uv_buf_t out = uv_buf_init(b->base, (unsigned)n);
    int w = uv_try_write(s, &out, 1);
    if (w == n) return;
    if (w < 0 && w != UV_EAGAIN) {
        uv_close((uv_handle_t *)s, on_close);
        return;
    }
    if (w < 0) w = 0;
    struct wreq *r = malloc(sizeof *r + (size_t)(n - w)); /* the rest, queued */
    memcpy(r->data, b->base + w, (size_t)(n - w));
    r->buf = uv_buf_init(r->data, (unsigned)(n - w));
    uv_write(&r->req, s, &r->buf, 1, on_written);
}

static void on_connection(uv_stream_t *server, int status)
{
    if (status < 0) return;
    struct conn *c = malloc(sizeof *c);
    uv_tcp_init(loop, &c->tcp);
    if (uv_accept(server, (uv_stream_t *)&c->tcp) == 0)
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    else
        uv_close((uv_handle_t *)&c->tcp, on_close);
}

static void on_signal(uv_signal_t *h, int sig)
{
    (void)sig;
    uv_stop(h->loop);
}

int main(int argc, char **argv)
{
    struct sockaddr_in addr;
    uv_tcp_t server;
    uv_signal_t term;
    if (argc != 2) {
        fprintf(stderr, "usage: libuv_echo PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    loop = uv_default_loop();
    uv_tcp_init(loop, &server);
    uv_ip4_addr("127.0.0.1", atoi(argv[1]), &addr);
    if (uv_tcp_bind(&server, (const struct sockaddr *)&addr, 0) != 0 ||
        uv_listen((uv_stream_t *)&server, 4096, on_connection) != 0) {
        fprintf(stderr, "libuv_echo: cannot listen on port %s\n", argv[1]);
        return 1;
    }
    uv_signal_init(loop, &term);
    uv_signal_start(&term, on_signal, SIGTERM);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
