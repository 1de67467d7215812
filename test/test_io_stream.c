/* test_io_stream.c - coro_io.h's stream reader and writer (R-SR-1..6,
 * R-SW-1; T101-T106, T108, T109): asyncio's StreamReader/StreamWriter
 * cases from test_streams.py, adapted to a stream over one end of a
 * loopback TCP pair. The other end (the peer) is driven with plain
 * send/recv/shutdown, or by a task in the loop when it must read while the
 * stream writes.
 *
 * Determinism: the peer writes what a read needs before the loop runs (or
 * while the reader is parked, then the test runs the loop until the
 * reader took that piece), and closes its side to produce EOF. The loop
 * runs on the real clock; the only waits with a time bound are guards
 * that fire when a test is already failing (WAIT_FOR), and "nothing
 * happens while the peer does not read" windows (RUN_FOR), which cannot
 * turn a correct run into a failure.
 *
 * Reader tests run a small script per task (struct sop), tokens separated
 * by spaces:
 *   rN  read(N)          r*  read(-1)        xN  readexactly(N)
 *   uSEP  readuntil(SEP) (SEP: the bytes up to a space or '/')
 *   l   readline()       y   yield           e   note at_eof()
 *   b   note the number of buffered bytes
 *   /CAP after r, u or l: the output capacity (default: 8192 bytes)
 * Each outcome is appended to the trace: 'data' (\n escaped, #N if
 * long), INCOMPLETE'partial', LIMIT:consumed, BUSY, INVAL, CANCELLED,
 * EUSER7, ECONNRESET, EBADF...; e gives eof or !eof, b gives b=N. So
 * "r5 x36 u\n l e" on "line1line2..." might trace "'line1' '...' ...". */
#include "test_io.h"

#include <poll.h>
#include <sys/wait.h>

/* ---- helpers */

#define GUARD CORO_S(10) /* a wait that should take microseconds */

/* The peer: blocking-with-a-bound calls on a non-blocking socket. */
static void peer_send(int fd, const void *p, size_t n)
{
    const char *c = (const char *)p;
    while (n) {
        ssize_t r = send(fd, c, n, MSG_NOSIGNAL);
        if (r < 0 && errno == EAGAIN) {
            struct pollfd pf = {fd, POLLOUT, 0};
            if (poll(&pf, 1, 5000) <= 0) break;
            continue;
        }
        if (r <= 0) break;
        c += r;
        n -= (size_t)r;
    }
    if (n) CHECK(!"peer_send could not send everything");
}

static void peer_says(int fd, const char *s)
{
    peer_send(fd, s, strlen(s));
}

/* Receives until n bytes or EOF (or 5 s without data); returns the count. */
static size_t peer_recv(int fd, void *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = recv(fd, (char *)p + got, n - got, MSG_DONTWAIT);
        if (r < 0 && errno == EAGAIN) {
            struct pollfd pf = {fd, POLLIN, 0};
            if (poll(&pf, 1, 5000) <= 0) break;
            continue;
        }
        if (r <= 0) break;
        got += (size_t)r;
    }
    return got;
}

/* Does the peer see the end of stream next (nothing else)? */
static int peer_sees_eof(int fd)
{
    char c;
    return peer_recv(fd, &c, 1) == 0;
}

/* Closes the peer with a reset (RST) instead of a FIN. */
static void peer_reset(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
}

/* Text of an error code for the trace. */
static const char *errw(int rc)
{
    static char b[32];
    if (rc == CORO_EINCOMPLETE) return "INCOMPLETE";
    if (rc == CORO_ELIMIT) return "LIMIT";
    if (rc == CORO_EBUSY) return "BUSY";
    if (rc == CORO_EINVAL) return "INVAL";
    if (rc == CORO_ECANCELED) return "CANCELLED";
    if (rc == -EBADF) return "EBADF";
    if (rc == -ECONNRESET) return "ECONNRESET";
    if (rc == -EPIPE) return "EPIPE";
    if (coro_is_user_error(rc)) {
        snprintf(b, sizeof b, "EUSER%d", -rc - CORO_EUSER_BASE);
        return b;
    }
    snprintf(b, sizeof b, "E%d", -rc);
    return b;
}

/* Bytes for the trace: quoted, \n escaped; long ones as #length. */
static const char *show(const unsigned char *p, size_t n)
{
    static char b[256];
    size_t k = 0;
    if (n > 60) {
        snprintf(b, sizeof b, "#%zu", n);
        return b;
    }
    b[k++] = '\'';
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n') {
            b[k++] = '\\';
            b[k++] = 'n';
        } else if (p[i] < 32 || p[i] > 126) {
            k += (size_t)snprintf(b + k, sizeof b - k, "\\x%02x", p[i]);
        } else {
            b[k++] = (char)p[i];
        }
    }
    b[k++] = '\'';
    b[k] = 0;
    return b;
}

/* Two connected non-blocking loopback TCP sockets: a (the stream's end)
 * and b (the peer). small: tiny buffers (a sends little, b receives
 * little), so that the kernel holds far less than what a writer queues.
 * (Like test_io.h's io_tcp_pair, which gcc -O2 flags with
 * -Wmaybe-uninitialized when inlined.) */
static void tcp_pair(int *a, int *b, int small)
{
    int l, sz = 4096;
    struct sockaddr_in sa;
    socklen_t len = sizeof sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *a = *b = -1;
    l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (small) setsockopt(l, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz); /* inherited */
    if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(l, 8) < 0 ||
        getsockname(l, (struct sockaddr *)&sa, &len) < 0) {
        CHECK(!"tcp_pair: listener");
        if (l >= 0) close(l);
        return;
    }
    *a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (small) setsockopt(*a, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz);
    if (connect(*a, (struct sockaddr *)&sa, sizeof sa) < 0) CHECK(!"tcp_pair: connect");
    *b = accept4(l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (*b < 0) CHECK(!"tcp_pair: accept");
    fcntl(*a, F_SETFL, fcntl(*a, F_GETFL) | O_NONBLOCK);
    close(l);
}

/* ---- fixture: a loop, a stream over one end of a TCP pair, the peer */
struct fx {
    coro_loop L;
    coro_io io;
    coro_stream s;
    int peer;
};

static void fx_open_pair(struct fx *x, size_t limit, int small)
{
    int a, b;
    IO_BEGIN(&x->L, &x->io);
    tcp_pair(&a, &b, small);
    x->peer = b;
    CHECK_EQ(coro_stream_init(&x->s, &x->L, a, limit), 0);
}

static void fx_open(struct fx *x, size_t limit)
{
    fx_open_pair(x, limit, 0);
}

/* Closes the stream (waits for it), the peer, the loop; checks fds. */
static void fx_close(struct fx *x)
{
    coro_stream_close(&x->s);
    WAIT_FOR(&x->L, coro_future_done(coro_stream_closed(&x->s)));
    coro_stream_free(&x->s);
    if (x->peer >= 0) close(x->peer);
    CHECK_EQ(coro_loop_task_count(&x->L), 0);
    IO_END(&x->L);
}

/* ---- the script reader */
struct sop {
    coro_frame co;
    coro_stream *s;
    const char *pc; /* what is left of the script */
    char kind;
    size_t n, cap, seplen;
    char sep[16];
    coro_stream_op op;
    int last;  /* the last outcome */
    int quiet; /* no trace */
    size_t nall;
    unsigned char all[8192]; /* every byte returned, in order */
    unsigned char buf[8192];
};

/* Parses the next token into kind/n/cap/sep; 0 at the end. */
static int sop_next(struct sop *f)
{
    const char *p = f->pc;
    while (*p == ' ') p++;
    if (!*p) return 0;
    f->kind = *p++;
    f->n = 0;
    f->cap = sizeof f->buf;
    f->seplen = 0;
    if (f->kind == 'r' && *p == '*') {
        f->n = (size_t)-1;
        p++;
    } else if (f->kind == 'r' || f->kind == 'x') {
        f->n = strtoul(p, (char **)&p, 10);
    } else if (f->kind == 'u') {
        while (*p && *p != ' ' && *p != '/' && f->seplen < sizeof f->sep)
            f->sep[f->seplen++] = *p++;
    }
    if (*p == '/') f->cap = strtoul(p + 1, (char **)&p, 10);
    f->pc = p;
    return 1;
}

static void sop_record(struct sop *f, int rc)
{
    f->last = rc;
    if (f->quiet) {
        if (rc >= 0 && f->nall + (size_t)rc <= sizeof f->all)
            memcpy(f->all + f->nall, f->buf, (size_t)rc);
        if (rc >= 0) f->nall += (size_t)rc;
    } else if (rc >= 0) {
        TRACE("%s", show(f->buf, (size_t)rc));
        if (f->nall + (size_t)rc <= sizeof f->all) memcpy(f->all + f->nall, f->buf, (size_t)rc);
        f->nall += (size_t)rc;
    } else if (rc == CORO_EINCOMPLETE) {
        TRACE("INCOMPLETE%s", show(f->buf, f->op.got));
        if (f->nall + f->op.got <= sizeof f->all) memcpy(f->all + f->nall, f->buf, f->op.got);
        f->nall += f->op.got;
    } else if (rc == CORO_ELIMIT) {
        TRACE("LIMIT:%zu", f->op.got);
    } else {
        TRACE("%s", errw(rc));
    }
}

static int sop_fn(coro_ctx *c)
{
    struct sop *f = CORO_SELF(c, struct sop);
    CORO_BEGIN(c);
    while (sop_next(f)) {
        if (f->kind == 'r') {
            CORO_AWAIT(c, coro_stream_read(&f->op, f->s, f->buf, f->cap, f->n));
        } else if (f->kind == 'x') {
            CORO_AWAIT(c, coro_stream_readexactly(&f->op, f->s, f->buf, f->n));
        } else if (f->kind == 'u') {
            CORO_AWAIT(c, coro_stream_readuntil(&f->op, f->s, f->sep, f->seplen, f->buf, f->cap));
        } else if (f->kind == 'l') {
            CORO_AWAIT(c, coro_stream_readline(&f->op, f->s, f->buf, f->cap));
        } else if (f->kind == 'y') {
            CORO_YIELD(c);
            if (c->rc == CORO_ECANCELED) {
                TRACE("CANCELLED");
                CORO_RETURN(c, CORO_ECANCELED);
            }
            continue;
        } else if (f->kind == 'e') {
            TRACE(coro_stream_at_eof(f->s) ? "eof" : "!eof");
            continue;
        } else if (f->kind == 'b') {
            TRACE("b=%zu", coro_stream_buffered(f->s));
            continue;
        } else {
            TRACE("bad-token");
            continue;
        }
        sop_record(f, c->rc);
        if (c->rc == CORO_ECANCELED) CORO_RETURN(c, CORO_ECANCELED);
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static coro_frame *sop(struct sop *f, coro_stream *s, const char *script)
{
    memset(f, 0, sizeof *f);
    f->s = s;
    f->pc = script;
    f->last = 1;
    return coro_frame_init(&f->co, sop_fn);
}

/* Runs a script to its end (the data it needs must be on its way). */
static void run_script(struct fx *x, const char *script)
{
    static struct sop f;
    static coro_task t;
    coro_spawn(&x->L, &t, sop(&f, &x->s, script));
    WAIT_FOR(&x->L, coro_task_done(&t));
    if (!coro_task_done(&t)) { /* failed already: do not leave it behind */
        coro_task_cancel(&x->L, &t);
        RUN_UNTIL(&x->L, coro_task_done(&t), GUARD);
    }
    if (coro_task_done(&t) && !coro_task_cancelled(&t)) CHECK_EQ(coro_task_result(&t), 0);
}

/* Starts a script and runs until it waits for data (one step: a reader
 * that finds nothing buffered parks in its recv). */
static void start_script(struct fx *x, coro_task *t, struct sop *f, const char *script)
{
    coro_spawn(&x->L, t, sop(f, &x->s, script));
    coro_loop_run_once(&x->L);
}

/* ====================================================================== */
/* R-SR-2 read(n)                                                          */
/* ====================================================================== */

TEST(T101_read_zero_returns_nothing_and_keeps_the_buffer)
{
    struct fx x;
    fx_open(&x, 64);
    run_script(&x, "r0 b"); /* nothing buffered, nothing received */
    CHECK_TRACE("'' b=0");
    peer_says(x.peer, "abc");
    run_script(&x, "r2 r0 b r5");
    CHECK_TRACE("'ab' '' b=1 'c'");
    fx_close(&x);
}

TEST(T101_pending_read_gets_data_sent_later)
{
    struct fx x;
    static struct sop f;
    coro_task t;
    fx_open(&x, 64);
    start_script(&x, &t, &f, "r30");
    CHECK(!coro_task_done(&t));
    peer_says(x.peer, "chunk1\n");
    WAIT_FOR(&x.L, coro_task_done(&t));
    CHECK_TRACE("'chunk1\\n'");
    fx_close(&x);
}

TEST(T101_read_n_returns_at_most_n_and_keeps_the_rest)
{
    struct fx x;
    fx_open(&x, 64);
    peer_says(x.peer, "line1line2");
    run_script(&x, "r5 b r5 b");
    CHECK_TRACE("'line1' b=5 'line2' b=0");
    fx_close(&x);
}

TEST(T101_read_returns_what_is_there_without_waiting_for_n)
{
    struct fx x;
    fx_open(&x, 64);
    peer_says(x.peer, "abc");
    run_script(&x, "r100"); /* 1..n bytes as soon as any are buffered */
    CHECK_TRACE("'abc'");
    fx_close(&x);
}

TEST(T101_read_at_eof_returns_empty)
{
    struct fx x;
    fx_open(&x, 64);
    shutdown(x.peer, SHUT_WR);
    run_script(&x, "r1024 e r1024");
    CHECK_TRACE("'' eof ''");
    fx_close(&x);
}

TEST(T101_read_all_collects_pieces_until_eof)
{
    struct fx x;
    static struct sop f;
    coro_task t;
    fx_open(&x, 64);
    start_script(&x, &t, &f, "r* r*");
    peer_says(x.peer, "chunk1\n");
    WAIT_FOR(&x.L, f.op.got == 7); /* took the first piece, waits again */
    CHECK(!coro_task_done(&t));
    peer_says(x.peer, "chunk2");
    WAIT_FOR(&x.L, f.op.got == 13);
    CHECK(!coro_task_done(&t));
    shutdown(x.peer, SHUT_WR);
    WAIT_FOR(&x.L, coro_task_done(&t));
    CHECK_TRACE("'chunk1\\nchunk2' ''");
    fx_close(&x);
}

TEST(T101_limit_caps_neither_read_n_nor_read_all)
{
    struct fx x;
    static struct sop f;
    static unsigned char data[3000];
    coro_task t;
    fx_open(&x, 3); /* a read buffer of 6 bytes */
    peer_says(x.peer, "chunk");
    run_script(&x, "r5");
    CHECK_TRACE("'chunk'");
    pat_fill(1, 0, data, sizeof data);
    peer_send(x.peer, data, sizeof data);
    shutdown(x.peer, SHUT_WR);
    coro_spawn(&x.L, &t, sop(&f, &x.s, "r* r*"));
    WAIT_FOR(&x.L, coro_task_done(&t));
    CHECK_TRACE("#3000 ''");
    CHECK_EQ(f.nall, 3000);
    CHECK(pat_ok(1, 0, f.all, 3000));
    fx_close(&x);
}

TEST(read_all_stops_at_cap_and_leaves_the_rest_buffered)
{
    struct fx x;
    fx_open(&x, 64);
    peer_says(x.peer, "abcdefgh");
    shutdown(x.peer, SHUT_WR);
    run_script(&x, "r*/4 r* e");
    CHECK_TRACE("'abcd' 'efgh' eof");
    fx_close(&x);
}

/* ====================================================================== */
/* R-SR-3 readexactly(n)                                                   */
/* ====================================================================== */

#define DATA18 "line1\nline2\nline3\n"

TEST(T105_readexactly_across_three_chunks_leaves_the_third)
{
    struct fx x;
    static struct sop f;
    coro_task t;
    fx_open(&x, 64);
    start_script(&x, &t, &f, "x36 b");
    peer_says(x.peer, DATA18);
    WAIT_FOR(&x.L, coro_stream_buffered(&x.s) == 18);
    CHECK(!coro_task_done(&t));
    peer_says(x.peer, DATA18);
    WAIT_FOR(&x.L, coro_task_done(&t));
    CHECK_TRACE("'line1\\nline2\\nline3\\nline1\\nline2\\nline3\\n' b=0");
    peer_says(x.peer, DATA18);
    run_script(&x, "r100");
    CHECK_TRACE("'line1\\nline2\\nline3\\n'");
    fx_close(&x);
}

TEST(T105_readexactly_at_eof_is_incomplete_with_the_partial_bytes)
{
    struct fx x;
    static struct sop f;
    coro_task t;
    fx_open(&x, 64);
    peer_says(x.peer, DATA18);
    shutdown(x.peer, SHUT_WR);
    coro_spawn(&x.L, &t, sop(&f, &x.s, "x36"));
    WAIT_FOR(&x.L, coro_task_done(&t));
    CHECK_TRACE("INCOMPLETE'line1\\nline2\\nline3\\n'");
    CHECK_EQ(f.op.got, 18);
    run_script(&x, "b e r5");
    CHECK_TRACE("b=0 eof ''");
    fx_close(&x);
}

TEST(T105_readexactly_zero_returns_nothing)
{
    struct fx x;
    fx_open(&x, 64);
    run_script(&x, "x0 b");
    CHECK_TRACE("'' b=0");
    fx_close(&x);
}

TEST(T105_readexactly_is_not_capped_by_the_limit)
{
    struct fx x;
    fx_open(&x, 3);
    peer_says(x.peer, "chunk");
    run_script(&x, "x5");
    CHECK_TRACE("'chunk'");
    fx_close(&x);
}

/* Is buf[from..n) still the canary byte (nothing written past from)? */
static int canary_ok(const unsigned char *buf, size_t from, size_t n)
{
    for (size_t i = from; i < n; i++)
        if (buf[i] != 0xEE) return 0;
    return 1;
}

/* n much larger than the 2 * limit read buffer: the bytes are handed over
 * as they come, many buffers' worth. */
TEST(readexactly_larger_than_the_read_buffer_gets_every_byte_in_order)
{
    struct fx x;
    static struct sop f;
    static unsigned char data[120];
    coro_task t;
    fx_open(&x, 4); /* an 8-byte read buffer */
    pat_fill(2, 0, data, sizeof data);
    peer_send(x.peer, data, sizeof data);
    shutdown(x.peer, SHUT_WR);
    coro_spawn(&x.L, &t, sop(&f, &x.s, "x100"));
    memset(f.buf, 0xEE, sizeof f.buf);
    WAIT_FOR(&x.L, coro_task_done(&t));
    /* 100 bytes in order, nothing written past out[100] (the canary), and
     * the 20 bytes after them still buffered. */
    CHECK_EQ(f.last, 100);
    CHECK(pat_ok(2, 0, f.buf, 100));
    CHECK(canary_ok(f.buf, 100, sizeof f.buf));
    coro_spawn(&x.L, &t, sop(&f, &x.s, "r*"));
    WAIT_FOR(&x.L, coro_task_done(&t));
    CHECK_EQ(f.last, 20);
    CHECK(pat_ok(2, 100, f.buf, 20));
    fx_close(&x);
}

TEST(readexactly_larger_than_the_read_buffer_incomplete_reports_every_byte)
{
    struct fx x;
    static struct sop f;
    static unsigned char data[35];
    coro_task t;
    fx_open(&x, 8); /* a 16-byte read buffer */
    pat_fill(3, 0, data, sizeof data);
    peer_send(x.peer, data, sizeof data);
    shutdown(x.peer, SHUT_WR);
    coro_spawn(&x.L, &t, sop(&f, &x.s, "x40"));
    memset(f.buf, 0xEE, sizeof f.buf);
    WAIT_FOR(&x.L, coro_task_done(&t));
    /* INCOMPLETE with all 35 bytes in out and op.got (asyncio's
     * IncompleteReadError.partial holds every byte read), including those
     * handed over before the last buffer. */
    CHECK_EQ(f.last, CORO_EINCOMPLETE);
    CHECK_EQ(f.op.got, 35);
    CHECK(pat_ok(3, 0, f.buf, 35));
    CHECK(canary_ok(f.buf, 40, sizeof f.buf));
    fx_close(&x);
}

/* ====================================================================== */
/* R-SR-4 readuntil(sep)                                                   */
/* ====================================================================== */

TEST(T104_readuntil_one_byte_separator)
{
    struct fx x;
    fx_open(&x, 64);
    peer_says(x.peer, "a,bb,,ccc,");
    run_script(&x, "u, u, u, u, b");
    CHECK_TRACE("'a,' 'bb,' ',' 'ccc,' b=0");
    fx_close(&x);
}

TEST(T104_readuntil_multi_byte_separator_across_three_chunks)
{
    struct fx x;
    static struct sop f;
    coro_task t;
    fx_open(&x, 64);
    start_script(&x, &t, &f, "uaaa b");
    peer_says(x.peer, "QWEaa");
    WAIT_FOR(&x.L, coro_stream_buffered(&x.s) == 5);
    peer_says(x.peer, "XYaa");
    WAIT_FOR(&x.L, coro_stream_buffered(&x.s) == 9);
    CHECK(!coro_task_done(&t));
    peer_says(x.peer, "aa");
    WAIT_FOR(&x.L, coro_task_done(&t));
    CHECK_TRACE("'QWEaaXYaaa' b=1");
    run_script(&x, "r5");
    CHECK_TRACE("'a'");
    fx_close(&x);
}

TEST(T104_readuntil_separator_split_across_two_receives)
{
    struct fx x;
    static struct sop f;
    coro_task t;
    fx_open(&x, 64);
    start_script(&x, &t, &f, "u<=> b");
    peer_says(x.peer, "ab<=");
    WAIT_FOR(&x.L, coro_stream_buffered(&x.s) == 4);
    CHECK(!coro_task_done(&t));
    peer_says(x.peer, ">cd");
    WAIT_FOR(&x.L, coro_task_done(&t));
    CHECK_TRACE("'ab<=>' b=2");
    fx_close(&x);
}

TEST(T104_readuntil_separator_at_the_end_of_the_data)
{
    struct fx x;
    fx_open(&x, 64);
    peer_says(x.peer, "hello world\r\n");
    run_script(&x, "u\r\n b");
    CHECK_TRACE("'hello world\\x0d\\n' b=0");
    fx_close(&x);
}

/* The chunk may be exactly `limit` bytes before the separator (asyncio:
 * isep > limit fails), and then fills the limit + seplen output. */
TEST(T104_readuntil_chunk_of_exactly_the_limit_fits)
{
    struct fx x;
    fx_open(&x, 8);
    peer_says(x.peer, "01234567XY");
    run_script(&x, "uXY/10 b");
    CHECK_TRACE("'01234567XY' b=0");
    peer_says(x.peer, "012345678XY");
    run_script(&x, "uXY/10 b");
    CHECK_TRACE("LIMIT:9 b=11");
    fx_close(&x);
}

TEST(T104_readuntil_at_eof_without_separator_is_incomplete_and_clears)
{
    struct fx x;
    static struct sop f;
    coro_task t;
    fx_open(&x, 64);
    peer_says(x.peer, "some dataAA");
    shutdown(x.peer, SHUT_WR);
    coro_spawn(&x.L, &t, sop(&f, &x.s, "uAAA"));
    WAIT_FOR(&x.L, coro_task_done(&t));
    CHECK_TRACE("INCOMPLETE'some dataAA'");
    CHECK_EQ(f.op.got, 11);
    run_script(&x, "b e r5");
    CHECK_TRACE("b=0 eof ''");
    fx_close(&x);
}

/* asyncio: LimitOverrunError('Separator is not found, and chunk exceed the
 * limit', consumed = len - seplen + 1) and the data stays buffered. */
TEST(T104_readuntil_limit_not_found_keeps_the_data)
{
    struct fx x;
    fx_open(&x, 8);
    peer_says(x.peer, "some dataAA");
    run_script(&x, "uAAA b");
    CHECK_TRACE("LIMIT:9 b=11");
    shutdown(x.peer, SHUT_WR);
    run_script(&x, "r* e");
    CHECK_TRACE("'some dataAA' eof");
    fx_close(&x);
}

/* ... and 'Separator is found, but chunk is longer than limit', consumed =
 * the separator's offset; the data stays buffered. */
TEST(T104_readuntil_limit_found_beyond_limit_keeps_the_data)
{
    struct fx x;
    fx_open(&x, 8);
    peer_says(x.peer, "some dataAAAtail");
    run_script(&x, "uAAA b");
    CHECK_TRACE("LIMIT:9 b=16");
    run_script(&x, "r16");
    CHECK_TRACE("'some dataAAAtail'");
    fx_close(&x);
}

/* The limit is found exceeded while data still arrives: the check is made
 * on each new piece, and nothing is consumed. */
TEST(T104_readuntil_limit_exceeded_by_a_later_piece)
{
    struct fx x;
    static struct sop f;
    coro_task t;
    fx_open(&x, 8);
    start_script(&x, &t, &f, "uAAA b");
    peer_says(x.peer, "some ");
    WAIT_FOR(&x.L, coro_stream_buffered(&x.s) == 5);
    CHECK(!coro_task_done(&t));
    peer_says(x.peer, "data!!");
    WAIT_FOR(&x.L, coro_task_done(&t));
    CHECK_TRACE("LIMIT:9 b=11");
    fx_close(&x);
}

TEST(T104_readuntil_empty_separator_or_small_output_is_invalid)
{
    struct fx x;
    fx_open(&x, 8);
    peer_says(x.peer, "abc\n");
    run_script(&x, "u/100 u\n/8 uXY/9 b u\n/9"); /* cap must be >= limit + seplen */
    CHECK_TRACE("INVAL INVAL INVAL b=0 'abc\\n'");
    run_script(&x, "l/8");
    CHECK_TRACE("INVAL");
    fx_close(&x);
}

/* ====================================================================== */
/* R-SR-5 readline()                                                       */
/* ====================================================================== */

TEST(T102_readline_across_chunks_leaves_the_rest)
{
    struct fx x;
    static struct sop f;
    coro_task t;
    fx_open(&x, 64);
    start_script(&x, &t, &f, "l b");
    peer_says(x.peer, "chunk1 ");
    WAIT_FOR(&x.L, coro_stream_buffered(&x.s) == 7);
    peer_says(x.peer, "chunk2 ");
    WAIT_FOR(&x.L, coro_stream_buffered(&x.s) == 14);
    peer_says(x.peer, "chunk3 ");
    WAIT_FOR(&x.L, coro_stream_buffered(&x.s) == 21);
    CHECK(!coro_task_done(&t));
    peer_says(x.peer, "\n chunk4");
    WAIT_FOR(&x.L, coro_task_done(&t));
    CHECK_TRACE("'chunk1 chunk2 chunk3 \\n' b=7");
    shutdown(x.peer, SHUT_WR);
    run_script(&x, "r*");
    CHECK_TRACE("' chunk4'");
    fx_close(&x);
}

TEST(T102_readline_at_eof_returns_the_partial_line_then_empty)
{
    struct fx x;
    fx_open(&x, 64);
    peer_says(x.peer, "line1\nline2");
    shutdown(x.peer, SHUT_WR);
    run_script(&x, "l l l e");
    CHECK_TRACE("'line1\\n' 'line2' '' eof");
    fx_close(&x);
}

TEST(T102_readline_on_empty_eof_returns_empty)
{
    struct fx x;
    fx_open(&x, 64);
    shutdown(x.peer, SHUT_WR);
    run_script(&x, "l e");
    CHECK_TRACE("'' eof");
    fx_close(&x);
}

TEST(T102_readline_then_read_byte_count)
{
    struct fx x;
    fx_open(&x, 64);
    peer_says(x.peer, "line1\nline2\nline3\n");
    run_script(&x, "l r7 b");
    CHECK_TRACE("'line1\\n' 'line2\\nl' b=5");
    fx_close(&x);
}

/* At EOF the separator search must not run past the data (asyncio's
 * readline is readuntil plus that partial return). */
TEST(T102_readline_async_for_yields_lines_until_empty)
{
    struct fx x;
    fx_open(&x, 64);
    peer_says(x.peer, "a\n\nbb\nccc");
    shutdown(x.peer, SHUT_WR);
    run_script(&x, "l l l l l");
    CHECK_TRACE("'a\\n' '\\n' 'bb\\n' 'ccc' ''");
    fx_close(&x);
}

TEST(T103_readline_exactly_the_limit_is_ok_one_more_is_dropped)
{
    struct fx x;
    fx_open(&x, 7);
    peer_says(x.peer, "1234567\n");
    run_script(&x, "l b");
    CHECK_TRACE("'1234567\\n' b=0");
    peer_says(x.peer, "12345678\n");
    shutdown(x.peer, SHUT_WR);
    run_script(&x, "l b l");
    CHECK_TRACE("LIMIT:8 b=0 ''");
    fx_close(&x);
}

/* limit 7: "chunk1" "chunk2\n" "chunk3\n": ValueError, then "chunk3\n". */
TEST(T103_readline_over_limit_drops_the_line_through_its_newline)
{
    struct fx x;
    fx_open(&x, 7);
    peer_says(x.peer, "chunk1chunk2\nchunk3\n");
    shutdown(x.peer, SHUT_WR);
    run_script(&x, "l l l");
    CHECK_TRACE("LIMIT:12 'chunk3\\n' ''");
    fx_close(&x);
}

/* limit 3, "line1\nline2\n": ValueError, and "line2\n" is what is left. */
TEST(T103_readline_over_limit_with_existing_data_keeps_the_next_line)
{
    struct fx x;
    fx_open(&x, 3);
    peer_says(x.peer, "line1\nline2\n");
    shutdown(x.peer, SHUT_WR);
    run_script(&x, "l r*");
    CHECK_TRACE("LIMIT:5 'line2\\n'");
    fx_close(&x);
}

/* No newline within the limit: the whole buffer is cleared; a later line
 * is read normally. */
TEST(T103_readline_over_limit_without_newline_clears_the_buffer)
{
    struct fx x;
    static struct sop f;
    coro_task t;
    fx_open(&x, 7);
    peer_says(x.peer, "0123456789");
    coro_spawn(&x.L, &t, sop(&f, &x.s, "l b"));
    WAIT_FOR(&x.L, coro_task_done(&t));
    CHECK_TRACE("LIMIT:10 b=0");
    peer_says(x.peer, "ab\n");
    run_script(&x, "l");
    CHECK_TRACE("'ab\\n'");
    fx_close(&x);
}

/* limit 7: "chunk1" "chunk2" "chunk3\n" then EOF: ValueError, and the
 * buffer is empty: the next readline returns b'' (T103's first case; over
 * a socket asyncio receives the 19 bytes in one recv and drops them all).
 * asyncio's rule is "drop what has arrived", not "drop the rest of the
 * line whenever it comes": the test above (the line's tail is sent after
 * the failed readline) must keep getting 'ab\n'. */
TEST(T103_readline_over_limit_line_longer_than_the_buffer_is_dropped_whole)
{
    struct fx x;
    static struct sop f;
    coro_task t;
    fx_open(&x, 7); /* the read buffer holds 14 bytes */
    peer_says(x.peer, "chunk1chunk2chunk3\n");
    shutdown(x.peer, SHUT_WR);
    coro_spawn(&x.L, &t, sop(&f, &x.s, "l"));
    f.quiet = 1; /* consumed differs: asyncio says 18 (found), here 14 */
    WAIT_FOR(&x.L, coro_task_done(&t));
    CHECK_EQ(f.last, CORO_ELIMIT);
    run_script(&x, "l");
    /* '' (the over-long line was dropped whole, then EOF): its tail
     * "unk3\n", still in the socket when the 14-byte buffer was full, is
     * dropped too and never comes out as a line. */
    CHECK_TRACE("''");
    fx_close(&x);
}

/* ====================================================================== */
/* R-SR-6 EOF and errors                                                   */
/* ====================================================================== */

TEST(T102_at_eof_only_after_eof_seen_and_buffer_drained)
{
    struct fx x;
    fx_open(&x, 64);
    run_script(&x, "e");
    CHECK_TRACE("!eof");
    peer_says(x.peer, "some data\n");
    run_script(&x, "l e");
    CHECK_TRACE("'some data\\n' !eof");
    peer_says(x.peer, "some data\nmore");
    shutdown(x.peer, SHUT_WR);
    run_script(&x, "l e r2 e r9 r9 e"); /* (after 're': seen or not yet) */
    CHECK_TRACE("'some data\\n' !eof 'mo' !eof 're' '' eof");
    fx_close(&x);
}

TEST(T106_set_error_makes_every_later_read_fail)
{
    struct fx x;
    fx_open(&x, 64);
    peer_says(x.peer, "line1\nline2\n");
    run_script(&x, "r2");
    CHECK_TRACE("'li'");
    coro_stream_set_error(&x.s, CORO_EUSER(7));
    run_script(&x, "r5 l x1 u\n r* r0");
    CHECK_TRACE("EUSER7 EUSER7 EUSER7 EUSER7 EUSER7 EUSER7");
    fx_close(&x);
}

/* R-SW-1: drain() first raises the reader's exception. */
TEST(T106_set_error_makes_drain_fail_with_it)
{
    struct fx x;
    static coro_stream_op op;
    fx_open(&x, 64);
    coro_stream_set_error(&x.s, CORO_EUSER(3));
    coro_stream_write(&x.s, "x", 1);
    CHECK_EQ(coro_frame_run(coro_stream_drain(&op, &x.s)), CORO_EUSER(3));
    fx_close(&x);
}

/* asyncio test_exception_waiter: a pending readline() fails with the
 * exception set while it waits. */
TEST(T106_set_error_wakes_the_pending_reader)
{
    struct fx x;
    static struct sop f;
    coro_task t;
    fx_open(&x, 64);
    start_script(&x, &t, &f, "l");
    CHECK(!coro_task_done(&t));
    coro_stream_set_error(&x.s, CORO_EUSER(7));
    RUN_UNTIL(&x.L, coro_task_done(&t), CORO_S(2));
    /* The pending readline fails with EUSER7 at once, without data or EOF
     * from the peer. */
    CHECK(coro_task_done(&t));
    shutdown(x.peer, SHUT_WR); /* releases it if it is still parked */
    WAIT_FOR(&x.L, coro_task_done(&t));
    CHECK_TRACE("EUSER7");
    fx_close(&x);
}

/* asyncio test_exception_cancel: set_exception after the waiter was
 * cancelled does not fail; later reads get the error. */
TEST(T106_set_error_after_the_reader_was_cancelled)
{
    struct fx x;
    static struct sop f;
    coro_task t;
    fx_open(&x, 64);
    start_script(&x, &t, &f, "l");
    coro_task_cancel(&x.L, &t);
    WAIT_FOR(&x.L, coro_task_done(&t));
    CHECK(coro_task_cancelled(&t));
    CHECK_TRACE("CANCELLED");
    coro_stream_set_error(&x.s, CORO_EUSER(1));
    peer_says(x.peer, "data\n");
    run_script(&x, "l");
    CHECK_TRACE("EUSER1");
    fx_close(&x);
}

/* R-SR-6: a connection lost with an error becomes the reader's exception
 * (every later read fails with it), and the stream closes, as asyncio's
 * transport does on a fatal error: is_closing(), wait_closed() completes,
 * writes are dropped and drain() fails with the error (see also
 * reset_seen_by_the_reader_while_a_send_is_out_closes_after_it). */
TEST(read_after_peer_reset_fails_with_econnreset_and_closes_the_stream)
{
    struct fx x;
    fx_open(&x, 64);
    peer_says(x.peer, "ab");
    run_script(&x, "r1");
    CHECK_TRACE("'a'");
    CHECK(!coro_stream_is_closing(&x.s));
    peer_reset(x.peer);
    x.peer = -1;
    run_script(&x, "r1 r1 r1 l e");
    if (coro__stream_multi(&x.s)) /* received as it came: set_exception, */
        CHECK_TRACE("ECONNRESET ECONNRESET ECONNRESET ECONNRESET !eof"); /* before 'b' */
    else /* one recv per read: the read that needs more meets it */
        CHECK_TRACE("'b' ECONNRESET ECONNRESET ECONNRESET !eof");
    CHECK(coro_stream_is_closing(&x.s));
    WAIT_FOR(&x.L, coro_future_done(coro_stream_closed(&x.s)));
    CHECK(coro_future_done(coro_stream_closed(&x.s)));
    fx_close(&x);
}

/* ====================================================================== */
/* Cancel-safety and the single reader (R-SR-1)                            */
/* ====================================================================== */

TEST(cancelled_read_while_waiting_then_new_read_gets_all)
{
    struct fx x;
    static struct sop f;
    coro_task t;
    fx_open(&x, 64);
    start_script(&x, &t, &f, "r100");
    coro_task_cancel(&x.L, &t);
    WAIT_FOR(&x.L, coro_task_done(&t));
    CHECK(coro_task_cancelled(&t));
    CHECK_TRACE("CANCELLED");
    CHECK_EQ(coro_stream_buffered(&x.s), 0);
    peer_says(x.peer, "hello");
    run_script(&x, "r100");
    CHECK_TRACE("'hello'");
    fx_close(&x);
}

TEST(cancelled_readuntil_keeps_the_partial_line_buffered)
{
    struct fx x;
    static struct sop f;
    coro_task t;
    fx_open(&x, 64);
    start_script(&x, &t, &f, "u\n");
    peer_says(x.peer, "abc");
    WAIT_FOR(&x.L, coro_stream_buffered(&x.s) == 3);
    coro_task_cancel(&x.L, &t);
    WAIT_FOR(&x.L, coro_task_done(&t));
    CHECK_TRACE("CANCELLED");
    CHECK_EQ(coro_stream_buffered(&x.s), 3);
    peer_says(x.peer, "def\n");
    run_script(&x, "l");
    CHECK_TRACE("'abcdef\\n'");
    fx_close(&x);
}

TEST(cancelled_readexactly_keeps_the_partial_bytes_buffered)
{
    struct fx x;
    static struct sop f;
    coro_task t;
    fx_open(&x, 64);
    start_script(&x, &t, &f, "x10");
    peer_says(x.peer, "01234");
    WAIT_FOR(&x.L, coro_stream_buffered(&x.s) == 5);
    coro_task_cancel(&x.L, &t);
    WAIT_FOR(&x.L, coro_task_done(&t));
    CHECK_TRACE("CANCELLED");
    peer_says(x.peer, "56789");
    run_script(&x, "x10");
    CHECK_TRACE("'0123456789'");
    fx_close(&x);
}

/* The data arrives and the cancel is requested before the loop sees the
 * completion: either the read returns the data (and the cancellation hits
 * the next await) or it is cancelled and the data stays for the next
 * read. Nothing is lost either way. (Observed: io_uring takes the first
 * path, epoll the second.) */
TEST(cancel_racing_arriving_data_loses_nothing)
{
    for (int round = 0; round < 20; round++) {
        struct fx x;
        static struct sop f, g;
        coro_task t;
        fx_open(&x, 64);
        start_script(&x, &t, &f, "x10 y");
        peer_says(x.peer, "01234");
        WAIT_FOR(&x.L, coro_stream_buffered(&x.s) == 5);
        peer_says(x.peer, "56789");
        if (round & 1) usleep(200); /* let the completion land first */
        coro_task_cancel(&x.L, &t);
        WAIT_FOR(&x.L, coro_task_done(&t));
        CHECK(coro_task_cancelled(&t));
        coro_task t2;
        coro_spawn(&x.L, &t2, sop(&g, &x.s, f.nall ? "" : "x10"));
        WAIT_FOR(&x.L, coro_task_done(&t2));
        CHECK_EQ(f.nall + g.nall, 10);
        if (f.nall == 10) CHECK(!memcmp(f.all, "0123456789", 10));
        if (g.nall == 10) CHECK(!memcmp(g.all, "0123456789", 10));
        fx_close(&x);
    }
}

/* The header: "a cancelled read loses nothing (bytes that arrived stay
 * buffered for the next read)". read(-1) has taken pieces already. */
TEST(cancelled_read_all_loses_nothing)
{
    struct fx x;
    static struct sop f;
    coro_task t;
    fx_open(&x, 64);
    start_script(&x, &t, &f, "r*");
    peer_says(x.peer, "abc");
    WAIT_FOR(&x.L, f.op.got == 3);
    coro_task_cancel(&x.L, &t);
    WAIT_FOR(&x.L, coro_task_done(&t));
    CHECK_TRACE("CANCELLED");
    peer_says(x.peer, "def");
    shutdown(x.peer, SHUT_WR);
    run_script(&x, "r*");
    /* 'abcdef': the bytes the cancelled read(-1) had already moved into
     * its output went back to the buffer (asyncio's read(-1) would drop its
     * blocks; the header promises that a cancelled read loses nothing). */
    CHECK_TRACE("'abcdef'");
    fx_close(&x);
}

/* asyncio's readexactly(n) leaves the bytes in the buffer until n are
 * there: cancelled, it loses nothing. Here n exceeds the 2 * limit read
 * buffer, so part of it was already handed over to out. */
TEST(cancelled_readexactly_larger_than_the_buffer_loses_nothing)
{
    struct fx x;
    static struct sop f, g;
    static unsigned char data[20];
    coro_task t;
    fx_open(&x, 4); /* an 8-byte read buffer */
    pat_fill(4, 0, data, sizeof data);
    start_script(&x, &t, &f, "x20");
    f.quiet = 1;
    peer_send(x.peer, data, 10);
    WAIT_FOR(&x.L, f.op.got + coro_stream_buffered(&x.s) == 10);
    CHECK(!coro_task_done(&t));
    coro_task_cancel(&x.L, &t);
    WAIT_FOR(&x.L, coro_task_done(&t));
    CHECK(coro_task_cancelled(&t));
    peer_send(x.peer, data + 10, 10);
    shutdown(x.peer, SHUT_WR);
    coro_spawn(&x.L, &t, sop(&g, &x.s, "x20"));
    g.quiet = 1;
    WAIT_FOR(&x.L, coro_task_done(&t));
    /* The 20 bytes in order: the 8 handed over to the cancelled read's
     * output went back to the buffer. */
    CHECK_EQ(g.last, 20);
    CHECK(pat_ok(4, 0, g.buf, 20));
    fx_close(&x);
}

TEST(second_concurrent_reader_gets_ebusy_first_is_unaffected)
{
    struct fx x;
    static struct sop f, g;
    coro_task t, t2;
    fx_open(&x, 64);
    start_script(&x, &t, &f, "r10");
    coro_spawn(&x.L, &t2, sop(&g, &x.s, "r10 l x3 u, r*"));
    WAIT_FOR(&x.L, coro_task_done(&t2));
    CHECK_TRACE("BUSY BUSY BUSY BUSY BUSY");
    CHECK(!coro_task_done(&t));
    peer_says(x.peer, "data\n");
    WAIT_FOR(&x.L, coro_task_done(&t));
    CHECK_TRACE("'data\\n'");
    peer_says(x.peer, "more\n");
    run_script(&x, "l"); /* a reader again once the first is done */
    CHECK_TRACE("'more\\n'");
    fx_close(&x);
}

/* A cancelled reader must not leave the stream marked busy. */
TEST(reader_after_a_cancelled_reader_is_not_busy)
{
    struct fx x;
    static struct sop f;
    coro_task t;
    fx_open(&x, 64);
    start_script(&x, &t, &f, "l");
    coro_task_cancel(&x.L, &t);
    WAIT_FOR(&x.L, coro_task_done(&t));
    CHECK_TRACE("CANCELLED");
    peer_says(x.peer, "x\n");
    run_script(&x, "l");
    CHECK_TRACE("'x\\n'");
    fx_close(&x);
}

/* ====================================================================== */
/* R-SW-1 the writer                                                       */
/* ====================================================================== */

/* A peer task: receives on fd until EOF (or `want` bytes), checking the
 * sequence `id`; can be held back until `go` is set. */
struct sink {
    coro_frame co;
    int fd;
    unsigned id;
    size_t want, got;
    int bad, eof, rc;
    coro_io_op op;
    unsigned char buf[65536];
};

static int sink_fn(coro_ctx *c)
{
    struct sink *k = CORO_SELF(c, struct sink);
    CORO_BEGIN(c);
    while (k->got < k->want) {
        CORO_IO(c, coro_recv(&k->op, c->loop, k->fd, k->buf, sizeof k->buf, 0));
        if (c->rc < 0) {
            k->rc = c->rc;
            break;
        }
        if (c->rc == 0) {
            k->eof = 1;
            break;
        }
        if (!pat_ok(k->id, k->got, k->buf, (size_t)c->rc)) k->bad++;
        k->got += (size_t)c->rc;
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static coro_frame *sink(struct sink *k, int fd, unsigned id, size_t want)
{
    memset(k, 0, sizeof *k);
    k->fd = fd;
    k->id = id;
    k->want = want;
    return coro_frame_init(&k->co, sink_fn);
}

/* A task: write `total` bytes of sequence `id` in chunks of 1..maxchunk,
 * draining after each; then write_eof (if eof). */
struct wr {
    coro_frame co;
    coro_stream *s;
    unsigned id;
    size_t total, sent, maxchunk;
    uint32_t rng;
    int eof, rc, drains;
    coro_stream_op op;
    unsigned char chunk[4096];
};

static int wr_fn(coro_ctx *c)
{
    struct wr *w = CORO_SELF(c, struct wr);
    size_t n;
    CORO_BEGIN(c);
    while (w->sent < w->total) {
        w->rng = w->rng * 1103515245u + 12345u;
        n = 1 + (w->rng >> 8) % w->maxchunk;
        if (n > w->total - w->sent) n = w->total - w->sent;
        pat_fill(w->id, w->sent, w->chunk, n);
        CHECK_EQ(coro_stream_write(w->s, w->chunk, n), 0);
        w->sent += n;
        CORO_AWAIT(c, coro_stream_drain(&w->op, w->s));
        w->drains++;
        if (c->rc < 0) {
            w->rc = c->rc;
            CORO_RETURN(c, 0);
        }
    }
    if (w->eof) coro_stream_write_eof(w->s);
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static coro_frame *wr(struct wr *w, coro_stream *s, unsigned id, size_t total, size_t maxchunk)
{
    memset(w, 0, sizeof *w);
    w->s = s;
    w->id = id;
    w->total = total;
    w->maxchunk = maxchunk;
    w->rng = id * 7919u + 1;
    w->eof = 1;
    return coro_frame_init(&w->co, wr_fn);
}

TEST(write_and_drain_deliver_every_byte_in_order)
{
    struct fx x;
    static struct sink k;
    static struct wr w;
    coro_task tk, tw;
    fx_open(&x, 0);
    coro_spawn(&x.L, &tk, sink(&k, x.peer, 5, (size_t)-1));
    coro_spawn(&x.L, &tw, wr(&w, &x.s, 5, 300000, 4096));
    WAIT_FOR(&x.L, coro_task_done(&tw) && coro_task_done(&tk));
    CHECK_EQ(w.rc, 0);
    CHECK_EQ(k.got, 300000);
    CHECK_EQ(k.bad, 0);
    CHECK(k.eof); /* write_eof after the last byte */
    CHECK_EQ(coro_stream_write_buffered(&x.s), 0);
    coro_io_forget(&x.L, x.peer);
    fx_close(&x);
}

TEST(write_of_nothing_is_a_no_op)
{
    struct fx x;
    static coro_stream_op op;
    fx_open(&x, 64);
    CHECK_EQ(coro_stream_write(&x.s, "ab", 2), 0);
    CHECK_EQ(coro_stream_write(&x.s, "", 0), 0);
    CHECK_EQ(coro_stream_write_buffered(&x.s), 2);
    CHECK_EQ(coro_frame_run(coro_stream_drain(&op, &x.s)), 0);
    coro_stream_write_eof(&x.s);
    WAIT_FOR(&x.L, coro_stream_write_buffered(&x.s) == 0);
    char b[8];
    CHECK_EQ(peer_recv(x.peer, b, sizeof b), 2);
    CHECK(!memcmp(b, "ab", 2));
    fx_close(&x);
}

static void first_write_of_nothing(void)
{
    coro_stream s;
    coro_loop L; /* never run: the write only queues */
    memset(&L, 0, sizeof L);
    if (coro_stream_init(&s, &L, -1, 64) != 0) _exit(CHILD_OK + 1);
    if (coro_stream_write(&s, "", 0) != 0) _exit(CHILD_OK + 2);
    if (coro_stream_write_buffered(&s) != 0) _exit(CHILD_OK + 3);
    coro_stream_free(&s);
}

/* asyncio: write(b'') does nothing. Run in a child: undefined behaviour
 * there (a copy from or to NULL) would abort it under UBSan. */
TEST(first_write_of_nothing_is_a_no_op)
{
    coro_loop L;
    coro_io io;
    IO_BEGIN(&L, &io);
    /* A write of nothing before the write buffer exists copies nothing
     * (no memcpy from or to NULL: UBSan would abort the child). */
    CHECK_EQ(child_exit(first_write_of_nothing), CHILD_OK);
    IO_END(&L);
}

/* Like fx_open, with small socket buffers. */
static void fx_open_small(struct fx *x, size_t limit)
{
    fx_open_pair(x, limit, 1);
}

#define BIG (2u << 20) /* far more than the kernel buffers of small_pair */

static unsigned char big[BIG];

/* A drain task: records its outcome and what was still queued then. */
struct drainer {
    coro_frame co;
    coro_stream *s;
    coro_stream_op op;
    int rc;
    size_t left;
};

static int drainer_fn(coro_ctx *c)
{
    struct drainer *d = CORO_SELF(c, struct drainer);
    CORO_BEGIN(c);
    CORO_AWAIT(c, coro_stream_drain(&d->op, d->s));
    d->rc = c->rc;
    d->left = coro_stream_write_buffered(d->s);
    CORO_RETURN(c, c->rc == CORO_ECANCELED ? c->rc : 0);
    CORO_END(c);
}

static coro_frame *drainer(struct drainer *d, coro_stream *s)
{
    memset(d, 0, sizeof *d);
    d->s = s;
    d->rc = 1;
    return coro_frame_init(&d->co, drainer_fn);
}

static int count_done(coro_task *t, int n)
{
    int done = 0;
    for (int i = 0; i < n; i++) done += coro_task_done(&t[i]);
    return done;
}

/* R-SW-1 / T108 test_multiple_drain: above the high-water mark drain()
 * waits; ten concurrent drains are all released, below the low mark, once
 * the peer reads. */
TEST(T108_drain_waits_for_a_slow_peer_and_releases_every_drainer)
{
    struct fx x;
    static struct drainer d[10];
    static struct sink k;
    coro_task td[10], tk;
    fx_open_small(&x, 0);
    pat_fill(6, 0, big, BIG);
    CHECK_EQ(coro_stream_write(&x.s, big, BIG), 0);
    for (int i = 0; i < 10; i++) coro_spawn(&x.L, &td[i], drainer(&d[i], &x.s));
    RUN_FOR(&x.L, CORO_MS(50)); /* the peer does not read */
    CHECK_EQ(count_done(td, 10), 0);
    CHECK(coro_stream_write_buffered(&x.s) > x.s.high);
    coro_spawn(&x.L, &tk, sink(&k, x.peer, 6, BIG));
    WAIT_FOR(&x.L, count_done(td, 10) == 10);
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(d[i].rc, 0);
        CHECK(d[i].left <= x.s.low);
    }
    WAIT_FOR(&x.L, coro_task_done(&tk));
    CHECK_EQ(k.got, BIG);
    CHECK_EQ(k.bad, 0);
    coro_io_forget(&x.L, x.peer);
    fx_close(&x);
}

/* asyncio: connection_lost(exc) wakes the waiting drains with the error.
 * The peer resets while ten drains wait above the high-water mark: every
 * one fails with a negative errno (none hangs), the queue is dropped. */
TEST(waiting_drains_fail_when_the_peer_resets)
{
    struct fx x;
    static struct drainer d[10];
    coro_task td[10];
    fx_open_small(&x, 0);
    pat_fill(6, 0, big, BIG);
    CHECK_EQ(coro_stream_write(&x.s, big, BIG), 0);
    for (int i = 0; i < 10; i++) coro_spawn(&x.L, &td[i], drainer(&d[i], &x.s));
    RUN_FOR(&x.L, CORO_MS(20));
    CHECK_EQ(count_done(td, 10), 0);
    peer_reset(x.peer);
    x.peer = -1;
    WAIT_FOR(&x.L, count_done(td, 10) == 10);
    for (int i = 0; i < 10; i++)
        CHECK(d[i].rc == -ECONNRESET || d[i].rc == -EPIPE || d[i].rc == -ECONNABORTED);
    CHECK_EQ(coro_stream_write_buffered(&x.s), 0);
    CHECK_EQ(coro_stream_write(&x.s, "x", 1), 0); /* dropped */
    CHECK_EQ(coro_stream_write_buffered(&x.s), 0);
    fx_close(&x);
}

/* The header: "a cancelled drain leaves the data queued". */
TEST(cancelled_drain_leaves_the_data_queued_and_it_is_delivered)
{
    struct fx x;
    static struct drainer d, d2;
    static struct sink k;
    coro_task td, td2, tk;
    fx_open_small(&x, 0);
    pat_fill(7, 0, big, BIG);
    CHECK_EQ(coro_stream_write(&x.s, big, BIG), 0);
    coro_spawn(&x.L, &td, drainer(&d, &x.s));
    RUN_FOR(&x.L, CORO_MS(20));
    CHECK(!coro_task_done(&td));
    size_t queued = coro_stream_write_buffered(&x.s);
    coro_task_cancel(&x.L, &td);
    WAIT_FOR(&x.L, coro_task_done(&td));
    CHECK(coro_task_cancelled(&td));
    CHECK_EQ(d.rc, CORO_ECANCELED);
    CHECK(coro_stream_write_buffered(&x.s) > x.s.high);
    CHECK(coro_stream_write_buffered(&x.s) <= queued);
    coro_spawn(&x.L, &tk, sink(&k, x.peer, 7, BIG));
    coro_spawn(&x.L, &td2, drainer(&d2, &x.s));
    WAIT_FOR(&x.L, coro_task_done(&td2));
    CHECK_EQ(d2.rc, 0);
    WAIT_FOR(&x.L, coro_task_done(&tk));
    CHECK_EQ(k.got, BIG);
    CHECK_EQ(k.bad, 0);
    coro_io_forget(&x.L, x.peer);
    fx_close(&x);
}

/* close() flushes what is queued before closing (asyncio's transport
 * close), even far more than the kernel holds. */
TEST(close_sends_everything_queued_then_the_peer_sees_eof)
{
    struct fx x;
    static struct sink k;
    coro_task tk;
    fx_open_small(&x, 0);
    pat_fill(8, 0, big, BIG);
    CHECK_EQ(coro_stream_write(&x.s, big, BIG), 0);
    coro_stream_close(&x.s);
    CHECK(coro_stream_is_closing(&x.s));
    coro_spawn(&x.L, &tk, sink(&k, x.peer, 8, (size_t)-1));
    WAIT_FOR(&x.L, coro_task_done(&tk) && coro_future_done(coro_stream_closed(&x.s)));
    CHECK_EQ(k.got, BIG);
    CHECK_EQ(k.bad, 0);
    CHECK(k.eof);
    coro_io_forget(&x.L, x.peer);
    fx_close(&x);
}

/* T108 test_async_writer_api_exception_after_close: write after close is
 * dropped; drain raises ConnectionResetError. */
TEST(T108_write_after_close_is_dropped_and_drain_fails)
{
    struct fx x;
    static struct drainer d;
    coro_task td;
    fx_open(&x, 64);
    CHECK_EQ(coro_stream_write(&x.s, "before", 6), 0);
    CHECK(!coro_stream_is_closing(&x.s));
    coro_stream_close(&x.s);
    CHECK(coro_stream_is_closing(&x.s));
    size_t q = coro_stream_write_buffered(&x.s);
    for (int i = 0; i < 6; i++) CHECK_EQ(coro_stream_write(&x.s, "after", 5), 0);
    CHECK_EQ(coro_stream_write_buffered(&x.s), q);
    coro_spawn(&x.L, &td, drainer(&d, &x.s));
    WAIT_FOR(&x.L, coro_task_done(&td));
    CHECK_EQ(d.rc, -ECONNRESET);
    WAIT_FOR(&x.L, coro_future_done(coro_stream_closed(&x.s)));
    char b[32];
    CHECK_EQ(peer_recv(x.peer, b, sizeof b), 6); /* then EOF */
    CHECK(!memcmp(b, "before", 6));
    /* and after wait_closed too */
    CHECK_EQ(coro_stream_write(&x.s, "late", 4), 0);
    CHECK_EQ(coro_stream_write_buffered(&x.s), 0);
    coro_spawn(&x.L, &td, drainer(&d, &x.s));
    WAIT_FOR(&x.L, coro_task_done(&td));
    CHECK_EQ(d.rc, -ECONNRESET);
    fx_close(&x);
}

/* The reader meets the reset while a big send is out (the peer reads
 * nothing): the queue is dropped once that send ends (the kernel reads its
 * buffer until then), the stream closes, later writes are dropped and
 * drain() fails with the reader's error. */
TEST(reset_seen_by_the_reader_while_a_send_is_out_closes_after_it)
{
    struct fx x;
    static struct drainer d;
    coro_task td;
    fx_open_small(&x, 64);
    CHECK_EQ(coro_stream_write(&x.s, big, BIG), 0);
    RUN_FOR(&x.L, CORO_MS(20)); /* the socket buffers fill; the send waits */
    CHECK(coro_stream_write_buffered(&x.s) > 0);
    peer_reset(x.peer);
    x.peer = -1;
    run_script(&x, "r1");
    CHECK_TRACE("ECONNRESET");
    CHECK(coro_stream_is_closing(&x.s));
    WAIT_FOR(&x.L, coro_future_done(coro_stream_closed(&x.s)));
    CHECK_EQ(coro_stream_write_buffered(&x.s), 0);
    CHECK_EQ(coro_stream_write(&x.s, "late", 4), 0);
    CHECK_EQ(coro_stream_write_buffered(&x.s), 0); /* dropped */
    coro_spawn(&x.L, &td, drainer(&d, &x.s));
    WAIT_FOR(&x.L, coro_task_done(&td));
    CHECK_EQ(d.rc, -ECONNRESET);
    fx_close(&x);
}

/* T108 test_drain_raises: the peer goes away while we write + drain in a
 * loop: drain fails with a connection error instead of spinning. */
TEST(T108_drain_fails_after_the_peer_reset_the_connection)
{
    struct fx x;
    static struct drainer d;
    coro_task td;
    fx_open(&x, 64);
    peer_reset(x.peer);
    x.peer = -1;
    int i, rc = 0;
    for (i = 0; i < 100000 && rc == 0; i++) {
        CHECK_EQ(coro_stream_write(&x.s, "foo \n", 5), 0);
        coro_spawn(&x.L, &td, drainer(&d, &x.s));
        WAIT_FOR(&x.L, coro_task_done(&td));
        rc = d.rc;
    }
    CHECK(rc == -ECONNRESET || rc == -EPIPE || rc == -ECONNABORTED);
    /* and it keeps failing */
    coro_spawn(&x.L, &td, drainer(&d, &x.s));
    WAIT_FOR(&x.L, coro_task_done(&td));
    CHECK(d.rc == -ECONNRESET || d.rc == -EPIPE || d.rc == -ECONNABORTED);
    /* asyncio's transport closes itself on the fatal send error:
     * is_closing() is true without a close(). */
    CHECK(coro_stream_is_closing(&x.s));
    fx_close(&x);
}

TEST(write_eof_lets_the_peer_see_eof_while_the_reader_still_works)
{
    struct fx x;
    fx_open(&x, 64);
    CHECK_EQ(coro_stream_write(&x.s, "hello", 5), 0);
    coro_stream_write_eof(&x.s);
    coro_stream_write_eof(&x.s); /* twice is harmless */
    WAIT_FOR(&x.L, coro_stream_write_buffered(&x.s) == 0);
    char b[16];
    CHECK_EQ(peer_recv(x.peer, b, sizeof b), 5); /* then EOF */
    CHECK(!memcmp(b, "hello", 5));
    CHECK(!coro_stream_is_closing(&x.s));
    peer_says(x.peer, "reply\n");
    shutdown(x.peer, SHUT_WR);
    run_script(&x, "l l e");
    CHECK_TRACE("'reply\\n' '' eof");
    fx_close(&x);
}

/* write_eof with data queued: the FIN comes after the last byte. */
TEST(write_eof_waits_for_the_queued_data)
{
    struct fx x;
    static struct sink k;
    coro_task tk;
    fx_open_small(&x, 0);
    pat_fill(9, 0, big, BIG);
    CHECK_EQ(coro_stream_write(&x.s, big, BIG), 0);
    coro_stream_write_eof(&x.s);
    coro_spawn(&x.L, &tk, sink(&k, x.peer, 9, (size_t)-1));
    WAIT_FOR(&x.L, coro_task_done(&tk));
    CHECK_EQ(k.got, BIG);
    CHECK_EQ(k.bad, 0);
    CHECK(k.eof);
    coro_io_forget(&x.L, x.peer);
    fx_close(&x);
}

/* T109 test_wait_closed_on_close: is_closing False before close and True
 * right after; wait_closed completes; close twice is harmless. */
TEST(T109_close_then_wait_closed)
{
    struct fx x;
    fx_open(&x, 64);
    CHECK(!coro_stream_is_closing(&x.s));
    CHECK(!coro_future_done(coro_stream_closed(&x.s)));
    coro_stream_close(&x.s);
    CHECK(coro_stream_is_closing(&x.s));
    coro_stream_close(&x.s);
    WAIT_FOR(&x.L, coro_future_done(coro_stream_closed(&x.s)));
    CHECK_EQ(coro_future_rc(coro_stream_closed(&x.s)), 0);
    CHECK(coro_stream_is_closing(&x.s));
    CHECK(peer_sees_eof(x.peer));
    fx_close(&x); /* closes again: harmless */
}

/* A task in wait_closed(). */
struct closer {
    coro_frame co;
    coro_stream *s;
    coro_stream_op op;
    int rc;
};

static int closer_fn(coro_ctx *c)
{
    struct closer *w = CORO_SELF(c, struct closer);
    CORO_BEGIN(c);
    CORO_AWAIT(c, coro_stream_wait_closed(&w->op, w->s));
    w->rc = c->rc;
    CORO_RETURN(c, c->rc == CORO_ECANCELED ? c->rc : 0);
    CORO_END(c);
}

static coro_frame *closer(struct closer *w, coro_stream *s)
{
    memset(w, 0, sizeof *w);
    w->s = s;
    w->rc = 1;
    return coro_frame_init(&w->co, closer_fn);
}

/* wait_closed() may start before close(); cancelling one waiter leaves
 * the others and the stream alone. */
TEST(T109_wait_closed_waiters_before_close_one_cancelled)
{
    struct fx x;
    static struct closer w1, w2;
    coro_task t1, t2;
    fx_open(&x, 64);
    coro_spawn(&x.L, &t1, closer(&w1, &x.s));
    coro_spawn(&x.L, &t2, closer(&w2, &x.s));
    RUN_FOR(&x.L, CORO_MS(5));
    CHECK(!coro_task_done(&t1) && !coro_task_done(&t2));
    coro_task_cancel(&x.L, &t1);
    WAIT_FOR(&x.L, coro_task_done(&t1));
    CHECK(coro_task_cancelled(&t1));
    CHECK_EQ(w1.rc, CORO_ECANCELED);
    RUN_FOR(&x.L, CORO_MS(5));
    CHECK(!coro_task_done(&t2));
    CHECK(!coro_future_done(coro_stream_closed(&x.s)));
    coro_stream_close(&x.s);
    WAIT_FOR(&x.L, coro_task_done(&t2));
    CHECK_EQ(w2.rc, 0);
    CHECK_EQ(coro_future_rc(coro_stream_closed(&x.s)), 0);
    coro_spawn(&x.L, &t1, closer(&w1, &x.s)); /* after the close: at once */
    WAIT_FOR(&x.L, coro_task_done(&t1));
    CHECK_EQ(w1.rc, 0);
    fx_close(&x);
}

/* In a child (own loop): close, wait_closed, then at_eof() and a read.
 * Exit code: CHILD_OK, + 1 if not at EOF, + 2 if the read did not return
 * 0. */
static void read_after_close(void)
{
    static struct fx x;
    static struct sop f;
    coro_task t;
    int code = 0;
    fx_open(&x, 64);
    coro_stream_close(&x.s);
    RUN_UNTIL(&x.L, coro_future_done(coro_stream_closed(&x.s)), GUARD);
    if (!coro_stream_at_eof(&x.s)) code |= 1;
    coro_spawn(&x.L, &t, sop(&f, &x.s, "r10"));
    RUN_UNTIL(&x.L, coro_task_done(&t), GUARD);
    if (f.last != 0) code |= 2;
    fx_close(&x); /* valgrind counts leaks as errors, in the child too */
    _exit(CHILD_OK + code);
}

/* T109 test_eof_feed_when_closing_writer: after the writer is closed (and
 * wait_closed), the reader is at EOF and read() returns b''. */
TEST(T109_after_close_the_reader_is_at_eof)
{
    coro_loop L;
    coro_io io;
    IO_BEGIN(&L, &io);
    int code = child_exit(read_after_close);
    /* The child did not die (a read after the close submits nothing on
     * the closed fd), and saw at_eof() and read() == 0 (asyncio feeds EOF
     * on connection_lost). */
    CHECK(code >= CHILD_OK);
    CHECK_EQ(code, CHILD_OK);
    IO_END(&L);
}

/* A read pending when the stream is closed ends (asyncio: with EOF, b''). */
TEST(T109_close_ends_a_pending_read_with_eof)
{
    struct fx x;
    static struct sop f;
    coro_task t;
    fx_open(&x, 64);
    start_script(&x, &t, &f, "r10");
    coro_stream_close(&x.s);
    WAIT_FOR(&x.L, coro_task_done(&t) && coro_future_done(coro_stream_closed(&x.s)));
    /* '' (EOF: asyncio's connection_lost(None) feeds EOF), not EBADF. */
    CHECK_TRACE("''");
    fx_close(&x);
}

/* ---- the read buffer starts small and grows to 2 * limit */

struct until_big {
    coro_frame co;
    coro_stream *s;
    coro_stream_op op;
    int rc;
    unsigned char out[65536 + 1];
};

static int until_big_fn(coro_ctx *c)
{
    struct until_big *f = CORO_SELF(c, struct until_big);
    CORO_BEGIN(c);
    CORO_AWAIT(c, coro_stream_readuntil(&f->op, f->s, "\n", 1, f->out, sizeof f->out));
    f->rc = c->rc;
    CORO_END(c);
}

/* A line of 50,000 bytes under the default 64 KiB limit: the buffer
 * starts at CORO_STREAM_RBUF0, grows while the line comes in, and the
 * line arrives whole. */
TEST(read_buffer_grows_for_a_line_longer_than_its_first_size)
{
    struct fx x;
    static struct until_big f;
    static unsigned char data[50001];
    coro_task t;
    fx_open(&x, 0);
    CHECK_EQ(x.s.rcap, (size_t)CORO_STREAM_RBUF0);
    pat_fill(5, 0, data, 50000);
    for (size_t i = 0; i < 50000; i++) if (data[i] == '\n') data[i] = 'n';
    data[50000] = '\n';
    memset(&f, 0, sizeof f);
    f.s = &x.s;
    coro_spawn(&x.L, &t, coro_frame_init(&f.co, until_big_fn));
    peer_send(x.peer, data, sizeof data);
    WAIT_FOR(&x.L, coro_task_done(&t));
    CHECK_EQ(f.rc, 50001);
    CHECK(memcmp(f.out, data, sizeof data) == 0);
    CHECK(x.s.rcap > (size_t)CORO_STREAM_RBUF0 && x.s.rcap <= 2 * (size_t)CORO_STREAM_LIMIT);
    fx_close(&x);
}

/* Without the separator the buffer stops growing at 2 * limit (plus, with
 * the multishot, what was already received when reading paused: at most
 * the provided buffers) and the limit is reported as before (asyncio's
 * LimitOverrunError). */
TEST(read_buffer_growth_stops_at_twice_the_limit)
{
    struct fx x;
    static struct until_big f;
    static unsigned char data[140000];
    coro_task t;
    fx_open(&x, 0);
    memset(data, 'a', sizeof data);
    memset(&f, 0, sizeof f);
    f.s = &x.s;
    coro_spawn(&x.L, &t, coro_frame_init(&f.co, until_big_fn));
    peer_send(x.peer, data, sizeof data);
    WAIT_FOR(&x.L, coro_task_done(&t));
    CHECK_EQ(f.rc, CORO_ELIMIT);
    if (coro__stream_multi(&x.s))
        CHECK(x.s.rcap <= 2 * (2 * (size_t)CORO_STREAM_LIMIT + CORO_IO_RBUFS * CORO_IO_RBUF_SIZE));
    else
        CHECK(x.s.rcap <= 2 * (size_t)CORO_STREAM_LIMIT);
    fx_close(&x);
}

/* ====================================================================== */
/* The multishot recv (io_uring with provided buffers)                     */
/* ====================================================================== */

/* A task that reads n bytes with readexactly, in pieces of `piece`. */
struct drinker {
    coro_frame co;
    coro_stream *s;
    coro_stream_op op;
    size_t n, piece, got;
    int rc;
    unsigned char *out;
};

static int drinker_fn(coro_ctx *c)
{
    struct drinker *d = CORO_SELF(c, struct drinker);
    CORO_BEGIN(c);
    while (d->got < d->n) {
        CORO_AWAIT(c, coro_stream_readexactly(&d->op, d->s, d->out + d->got,
                                              d->n - d->got < d->piece ? d->n - d->got : d->piece));
        if (c->rc < 0) break;
        d->got += (size_t)c->rc;
    }
    d->rc = c->rc;
    CORO_END(c);
}

static coro_frame *drinker(struct drinker *d, coro_stream *s, unsigned char *out, size_t n,
                           size_t piece)
{
    memset(d, 0, sizeof *d);
    d->s = s;
    d->out = out;
    d->n = n;
    d->piece = piece;
    d->rc = 1;
    return coro_frame_init(&d->co, drinker_fn);
}

/* 200 messages, each read before the next is sent: on io_uring one recv
 * SQE stays armed for all of them (a single-shot recv would be one SQE
 * per message); every byte arrives, in order. */
TEST(multishot_one_armed_recv_serves_every_message)
{
    enum { N = 200, M = 100 };
    struct fx x;
    static struct drinker d;
    static unsigned char out[N * M], msg[M];
    coro_task t;
    fx_open(&x, 0);
    coro_spawn(&x.L, &t, drinker(&d, &x.s, out, sizeof out, M));
    RUN_FOR(&x.L, CORO_MS(1));
    uint64_t sqes = x.io.stats.submitted;
    for (int i = 0; i < N; i++) {
        pat_fill(9, (size_t)i * M, msg, M);
        peer_send(x.peer, msg, M);
        WAIT_FOR(&x.L, d.got >= (size_t)(i + 1) * M || coro_task_done(&t));
    }
    WAIT_FOR(&x.L, coro_task_done(&t));
    CHECK_EQ(d.rc, M);
    CHECK_EQ(d.got, sizeof out);
    CHECK(pat_ok(9, 0, out, sizeof out));
    if (coro__stream_multi(&x.s))
        CHECK(x.io.stats.submitted - sqes <= 2); /* (and none per message) */
    fx_close(&x);
}

/* 40 streams at once, each sent 16 KiB while its reader waits: 640 KiB
 * against 256 KiB of provided buffers, so multishots end with ENOBUFS and
 * are armed again; nothing is lost or reordered. */
TEST(multishot_burst_bigger_than_the_provided_buffers_loses_nothing)
{
    enum { S = 40, SZ = 16384 };
    coro_loop L;
    coro_io io;
    static coro_stream st[S];
    static struct drinker d[S];
    static coro_task t[S];
    static unsigned char out[S][SZ], data[SZ];
    int peer[S];
    IO_BEGIN(&L, &io);
    for (int i = 0; i < S; i++) {
        int a;
        tcp_pair(&a, &peer[i], 0);
        CHECK_EQ(coro_stream_init(&st[i], &L, a, 0), 0);
        coro_spawn(&L, &t[i], drinker(&d[i], &st[i], out[i], SZ, SZ));
    }
    RUN_FOR(&L, CORO_MS(1)); /* every reader waits */
    for (int i = 0; i < S; i++) {
        pat_fill((unsigned)i, 0, data, SZ);
        peer_send(peer[i], data, SZ);
    }
    int ok = 0;
    for (int i = 0; i < S; i++) WAIT_FOR(&L, coro_task_done(&t[i]));
    for (int i = 0; i < S; i++) ok += d[i].rc == SZ && pat_ok((unsigned)i, 0, out[i], SZ);
    CHECK_EQ(ok, S);
    for (int i = 0; i < S; i++) {
        coro_stream_close(&st[i]);
        close(peer[i]);
    }
    for (int i = 0; i < S; i++) WAIT_FOR(&L, coro_future_done(coro_stream_closed(&st[i])));
    for (int i = 0; i < S; i++) coro_stream_free(&st[i]);
    IO_END(&L);
}

/* Nobody reads while the peer sends all the socket takes (up to 1 MiB):
 * reading pauses once 2 * limit is buffered (what was received already
 * comes on top: at most the provided buffers) and the rest waits in the
 * socket; a reader then gets all of it, in order. */
TEST(multishot_pauses_at_twice_the_limit_and_resumes_for_the_next_read)
{
    enum { BIGN = 1 << 20, LIMIT = 4096 };
    struct fx x;
    static struct drinker d;
    static unsigned char data[BIGN], out[BIGN];
    coro_task t;
    size_t sent = 0;
    fx_open(&x, LIMIT);
    pat_fill(3, 0, data, BIGN);
    peer_send(x.peer, data, 100);
    coro_spawn(&x.L, &t, drinker(&d, &x.s, out, 100, 100)); /* arms it */
    WAIT_FOR(&x.L, coro_task_done(&t));
    CHECK_EQ(d.rc, 100);
    while (sent < BIGN - 100) { /* as much as the socket takes */
        ssize_t r = send(x.peer, data + 100 + sent, BIGN - 100 - sent, MSG_DONTWAIT);
        if (r <= 0) break;
        sent += (size_t)r;
    }
    CHECK(sent > 4 * LIMIT);
    RUN_FOR(&x.L, CORO_MS(20));
    if (coro__stream_multi(&x.s)) { /* (one recv per read: nothing is received) */
        CHECK(coro_stream_buffered(&x.s) >= 2 * LIMIT);
        CHECK(coro_stream_buffered(&x.s) <= 2 * LIMIT + CORO_IO_RBUFS * CORO_IO_RBUF_SIZE);
        CHECK_EQ(x.s.ms, 0); /* paused */
    }
    coro_spawn(&x.L, &t, drinker(&d, &x.s, out + 100, sent, 1000));
    WAIT_FOR(&x.L, coro_task_done(&t));
    CHECK_EQ(d.got, sent);
    CHECK(pat_ok(3, 0, out, 100 + sent));
    CHECK_EQ(coro_stream_buffered(&x.s), 0);
    fx_close(&x);
}
