/* echo_client.c - many concurrent connections to an echo server, every
 * byte verified. Each connection has two tasks: a writer that sends BYTES
 * bytes in chunks of random size (1..MAXCHUNK), draining after each, then
 * shuts down its sending side; and a reader that checks every byte that
 * comes back against the same sequence and then expects the end of stream.
 *
 *   build/examples/echo_client PORT [CONNS [BYTES [MAXCHUNK [SEED]]]]
 *       defaults: 100 connections, 65536 bytes each, chunks up to 4096
 *
 * Prints one line and exits 0 when everything came back intact; exits 1
 * at the first wrong byte, short stream or connection error.
 */
#include "coro_io.h"

#include <stdio.h>
#include <sys/resource.h>

static int port, conns;
static size_t bytes, maxchunk;
static uint64_t seed;
static unsigned char *chunk; /* the writers take turns: one buffer for all */

/* Byte `off` of connection `id`'s sequence. */
static unsigned char pattern(int id, size_t off)
{
    uint32_t x = (uint32_t)off * 2654435761u ^ (uint32_t)id * 40503u;
    return (unsigned char)((x ^ (x >> 15)) * 2246822519u >> 24);
}

static uint64_t rnd(uint64_t *s) /* xorshift64* */
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

struct client;

struct writer {
    coro_frame co;
    struct client *cl;
    coro_stream_op op;
    size_t sent;
    uint64_t rng;
};

struct client {
    coro_frame co;
    int id;
    coro_connect_op cop;
    coro_stream s;
    coro_stream_op op;
    coro_task wtask;
    struct writer w;
    size_t got;
    int outcome;
    unsigned char buf[16384];
};

static int writer_fn(coro_ctx *c)
{
    struct writer *w = CORO_SELF(c, struct writer);
    CORO_BEGIN(c);
    while (w->sent < bytes) {
        size_t n = 1 + (size_t)(rnd(&w->rng) % maxchunk);
        if (n > bytes - w->sent) n = bytes - w->sent;
        for (size_t i = 0; i < n; i++) chunk[i] = pattern(w->cl->id, w->sent + i);
        c->rc = coro_stream_write(&w->cl->s, chunk, n);
        CORO_CHECK(c);
        w->sent += n;
        CORO_AWAIT(c, coro_stream_drain(&w->op, &w->cl->s));
        CORO_CHECK(c);
    }
    coro_stream_write_eof(&w->cl->s);
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static int fail(struct client *f, const char *what, int rc)
{
    fprintf(stderr, "echo_client: connection %d: %s after %zu bytes: %s\n", f->id, what,
            f->got, coro_io_strerror(rc));
    return rc < 0 ? rc : CORO_EUSER(1);
}

static int client_fn(coro_ctx *c)
{
    struct client *f = CORO_SELF(c, struct client);
    CORO_BEGIN(c);
    CORO_AWAIT(c, coro_open_connection(&f->cop, &f->s, "127.0.0.1", port, 0));
    if (c->rc < 0) CORO_FAIL(c, fail(f, "connect", c->rc));
    f->w.cl = f;
    f->w.rng = seed * 0x9E3779B97F4A7C15ull + (uint64_t)f->id + 1;
    coro_spawn(c->loop, &f->wtask, coro_frame_init(&f->w.co, writer_fn));
    while (f->got < bytes) {
        CORO_AWAIT(c, coro_stream_read(&f->op, &f->s, f->buf, sizeof f->buf, sizeof f->buf));
        if (c->rc <= 0) {
            c->rc = fail(f, c->rc ? "read" : "early end of stream", c->rc);
            break;
        }
        for (int i = 0; i < c->rc; i++)
            if (f->buf[i] != pattern(f->id, f->got + (size_t)i)) {
                fprintf(stderr, "echo_client: connection %d: wrong byte at %zu\n", f->id,
                        f->got + (size_t)i);
                c->rc = CORO_EUSER(2);
                break;
            }
        if (c->rc < 0) break;
        f->got += (size_t)c->rc;
    }
    if (c->rc >= 0) { /* then the end of stream, nothing more */
        CORO_AWAIT(c, coro_stream_read(&f->op, &f->s, f->buf, sizeof f->buf, sizeof f->buf));
        if (c->rc != 0) c->rc = fail(f, "data after the echo", c->rc > 0 ? CORO_EUSER(3) : c->rc);
    }
    f->outcome = c->rc;
    if (c->rc < 0) coro_task_cancel(c->loop, &f->wtask);
    CORO_AWAIT_TASK(c, &f->wtask);
    if (c->rc < 0 && c->rc != CORO_ECANCELED) (void)fail(f, "write", c->rc);
    coro_stream_close(&f->s);
    CORO_AWAIT(c, coro_stream_wait_closed(&f->op, &f->s));
    coro_stream_free(&f->s);
    CORO_RETURN(c, f->outcome);
    CORO_END(c);
}

struct app {
    coro_frame co;
    struct client *cl;
    coro_task *t;
    int i, failed;
};

static int app_fn(coro_ctx *c)
{
    struct app *a = CORO_SELF(c, struct app);
    CORO_BEGIN(c);
    for (a->i = 0; a->i < conns; a->i++) {
        a->cl[a->i].id = a->i;
        coro_spawn(c->loop, &a->t[a->i], coro_frame_init(&a->cl[a->i].co, client_fn));
    }
    for (a->i = 0; a->i < conns; a->i++) {
        CORO_AWAIT_TASK(c, &a->t[a->i]);
        if (c->rc < 0) a->failed++;
    }
    CORO_RETURN(c, a->failed);
    CORO_END(c);
}

int main(int argc, char **argv)
{
    coro_loop L;
    coro_io io;
    coro_task t;
    struct app a;
    struct rlimit rl;
    if (argc < 2 || argc > 6) {
        fprintf(stderr, "usage: echo_client PORT [CONNS [BYTES [MAXCHUNK [SEED]]]]\n");
        return 2;
    }
    port = atoi(argv[1]);
    conns = argc > 2 ? atoi(argv[2]) : 100;
    bytes = argc > 3 ? (size_t)atol(argv[3]) : 65536;
    maxchunk = argc > 4 ? (size_t)atol(argv[4]) : 4096;
    seed = argc > 5 ? (uint64_t)atol(argv[5]) : 1;
    if (port <= 0 || port > 65535 || conns <= 0 || maxchunk == 0) {
        fprintf(stderr, "echo_client: bad arguments\n");
        return 2;
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    memset(&a, 0, sizeof a);
    a.cl = (struct client *)calloc((size_t)conns, sizeof *a.cl);
    a.t = (coro_task *)calloc((size_t)conns, sizeof *a.t);
    chunk = (unsigned char *)malloc(maxchunk);
    if (!a.cl || !a.t || !chunk) return 1;
    int rc = coro_io_init(&io, &L, NULL);
    if (rc < 0) {
        fprintf(stderr, "echo_client: %s\n", coro_io_strerror(rc));
        return 1;
    }
    rc = coro_run(&L, &t, coro_frame_init(&a.co, app_fn));
    coro_loop_close(&L);
    if (rc == 0)
        printf("%d connections, %zu bytes each way, every byte verified (%s)\n", conns, bytes,
               coro_io_backend_name(&io));
    else
        printf("%d of %d connections failed\n", rc < 0 ? conns : rc, conns);
    free(a.cl);
    free(a.t);
    free(chunk);
    return rc != 0;
}
