/* test_io_fault.c - fault injection through coro_io's test hooks, on the
 * current backend (CORO_BACKEND=uring|epoll): a full SQ (the hook, and a
 * genuinely tiny ring), the in-flight cap, errors injected on chosen
 * operations, short reads and writes, failing waits; cancellation of
 * operations queued behind a full SQ; the stats counters.
 *
 * The hooks (coro_io_set_fault): fault(arg, op) runs before an operation is
 * submitted and may return 0, n > 0 (shrink it to n bytes),
 * CORO_IO_FAULT_SQ_FULL (it must wait, never be dropped) or -errno (it
 * fails with that without reaching the kernel); enter_fault(arg) runs
 * before each wait for events and may make it fail with -EBUSY/-EAGAIN/
 * -EINTR. epoll has no SQ: there CORO_IO_FAULT_SQ_FULL lets the op go on.
 *
 * Every test checks that nothing is lost: every operation completes, with
 * its own result; bytes and fds are accounted for; IO_END finds no fd
 * leaked. Nothing depends on elapsed time. */
#include "test_io.h"

#include <setjmp.h>
#include <signal.h>

/* ---------------------------------------------------------------------- */
/* helpers                                                                 */
/* ---------------------------------------------------------------------- */

/* A run longer than this is a hang (a lost op, a cancel never submitted):
 * the test fails and the suite goes on. */
#define HANG_S 3

static int run_tasks(coro_loop *L)
{
    return io_run_tasks(L, HANG_S);
}

static coro_io_config config(unsigned entries, unsigned max_inflight)
{
    coro_io_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.entries = entries;
    cfg.max_inflight = max_inflight;
    return cfg;
}

static int uring(const coro_io *io)
{
    return coro_io_backend(io) == CORO_IO_URING;
}

static size_t drain_fd(int fd, char *into, size_t cap)
{
    size_t got = 0;
    char tmp[4096];
    for (;;) {
        ssize_t r = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
        if (r <= 0) break;
        if (into && got + (size_t)r <= cap) memcpy(into + got, tmp, (size_t)r);
        got += (size_t)r;
    }
    return got;
}

/* ---- the fault plan */

#define MAXERR 16

struct plan {
    int sq_full_every;         /* > 0: SQ_FULL unless calls % every == 0 */
    int sq_full_first;         /* SQ_FULL for the first N calls */
    int shrink;                /* > 0: shrink every read/write to this */
    coro_io_op *err_op[MAXERR]; /* fail these ops (once) with err[i] */
    int err[MAXERR], nerr;
    coro_io_op *hold_op;       /* SQ_FULL for this op while hold is set */
    int hold, hold_reached;    /* reached: the hook let it go */
    int calls, sq_full_returned, errs_returned, shrunk;
    int enter_every, enter_err; /* enter_fault: fail one wait in `every` */
    int enter_calls, enter_faults;
};

static int plan_fault(void *arg, coro_io_op *op)
{
    struct plan *p = (struct plan *)arg;
    p->calls++;
    for (int i = 0; i < p->nerr; i++)
        if (op == p->err_op[i] && p->err[i]) {
            int e = p->err[i];
            p->err[i] = 0;
            p->errs_returned++;
            return e;
        }
    if (p->hold_op && op == p->hold_op) {
        if (p->hold) {
            p->sq_full_returned++;
            return CORO_IO_FAULT_SQ_FULL;
        }
        p->hold_reached = 1;
    }
    if (p->sq_full_first > 0) {
        p->sq_full_first--;
        p->sq_full_returned++;
        return CORO_IO_FAULT_SQ_FULL;
    }
    if (p->sq_full_every > 0 && p->calls % p->sq_full_every != 0) {
        p->sq_full_returned++;
        return CORO_IO_FAULT_SQ_FULL;
    }
    if (p->shrink) {
        p->shrunk++;
        return p->shrink;
    }
    return 0;
}

static int plan_enter(void *arg)
{
    struct plan *p = (struct plan *)arg;
    if (p->enter_every > 0 && ++p->enter_calls % p->enter_every == 0) {
        p->enter_faults++;
        return p->enter_err;
    }
    return 0;
}

/* ---- tasks */

enum { K_NOP, K_RECV, K_SEND, K_READ, K_WRITE, K_ACCEPT, K_POLL };

/* One operation (optionally under a timeout); rc: its outcome; next: the
 * outcome of a CORO_YIELD after it. */
struct op1 {
    coro_frame co;
    coro_io_op op;
    coro_timeout tm;
    int kind, fd;
    void *buf;
    size_t n;
    int64_t off, timeout;
    int rc, next, done;
};

static coro_waitable *op1_start(struct op1 *f, coro_loop *L)
{
    switch (f->kind) {
    case K_RECV: return coro_recv(&f->op, L, f->fd, f->buf, f->n, 0);
    case K_SEND: return coro_send(&f->op, L, f->fd, f->buf, f->n, 0);
    case K_READ: return coro_read(&f->op, L, f->fd, f->buf, f->n, f->off);
    case K_WRITE: return coro_write(&f->op, L, f->fd, f->buf, f->n, f->off);
    case K_ACCEPT: return coro_accept(&f->op, L, f->fd, NULL, NULL);
    case K_POLL: return coro_poll(&f->op, L, f->fd, POLLIN);
    default: return coro_nop(&f->op, L);
    }
}

static int op1_fn(coro_ctx *c)
{
    struct op1 *f = CORO_SELF(c, struct op1);
    CORO_BEGIN(c);
    if (f->timeout > 0)
        CORO_TIMEOUT(c, &f->tm, f->timeout, CORO_IO(c, op1_start(f, c->loop)));
    else
        CORO_IO(c, op1_start(f, c->loop));
    f->rc = c->rc;
    CORO_YIELD(c);
    f->next = c->rc;
    f->done = 1;
    CORO_END(c);
}

static coro_frame *op1(struct op1 *f, int kind, int fd, void *buf, size_t n)
{
    memset(f, 0, sizeof *f);
    f->kind = kind;
    f->fd = fd;
    f->buf = buf;
    f->n = n;
    f->off = -1;
    f->rc = f->next = 1; /* "never set" */
    return coro_frame_init(&f->co, op1_fn);
}

/* Writes message i to pb[i] for every i, once `delay` iterations passed. */
struct feeder {
    coro_frame co;
    const int *fds;
    int n, delay, i;
};

static void message(int i, char *msg, size_t cap, int *len)
{
    *len = snprintf(msg, cap, "message-%d", i);
}

static int feeder_fn(coro_ctx *c)
{
    struct feeder *w = CORO_SELF(c, struct feeder);
    CORO_BEGIN(c);
    for (w->i = 0; w->i < w->delay; w->i++) CORO_YIELD(c);
    for (int i = w->n - 1; i >= 0; i--) {
        char msg[32];
        int len;
        message(i, msg, sizeof msg, &len);
        if (write(w->fds[i], msg, (size_t)len) != len) CORO_RETURN(c, CORO_EUSER(1));
    }
    CORO_END(c);
}

/* Cancels `target` after `delay` iterations, then runs act(arg). */
struct canceller {
    coro_frame co;
    coro_task *target;
    int delay, i;
    void (*act)(void *arg);
    void *arg;
};

static int canceller_fn(coro_ctx *c)
{
    struct canceller *k = CORO_SELF(c, struct canceller);
    CORO_BEGIN(c);
    for (k->i = 0; k->i < k->delay; k->i++) CORO_YIELD(c);
    coro_task_cancel(c->loop, k->target);
    if (k->act) k->act(k->arg);
    CORO_END(c);
}

static coro_frame *canceller(struct canceller *k, coro_task *target, int delay)
{
    memset(k, 0, sizeof *k);
    k->target = target;
    k->delay = delay;
    return coro_frame_init(&k->co, canceller_fn);
}

/* Yields n times (n < 0: as long as other tasks are left): the loop never
 * sleeps meanwhile. Keeps tests about order and loss independent of the
 * "SQ full with nothing in flight" hang, which has its own test. */
struct ticker {
    coro_frame co;
    int n, i;
};

static int ticker_fn(coro_ctx *c)
{
    struct ticker *k = CORO_SELF(c, struct ticker);
    CORO_BEGIN(c);
    for (k->i = 0; k->n < 0 ? coro_loop_task_count(c->loop) > 1 : k->i < k->n; k->i++)
        CORO_YIELD(c);
    CORO_END(c);
}

static coro_frame *ticker(struct ticker *k, int n)
{
    memset(k, 0, sizeof *k);
    k->n = n;
    return coro_frame_init(&k->co, ticker_fn);
}

/* ---------------------------------------------------------------------- */
/* a full SQ                                                               */
/* ---------------------------------------------------------------------- */

/* The hook says "SQ full" once for the only operation: with nothing else in
 * flight, the loop must still submit it later (not sleep forever). */
TEST(op_refused_once_by_sq_full_with_nothing_in_flight_completes)
{
    coro_loop L;
    coro_io io;
    struct plan p;
    struct op1 f;
    coro_task t;
    IO_BEGIN(&L, &io);
    memset(&p, 0, sizeof p);
    p.sq_full_first = 2; /* at the start, and at the next poll's flush */
    coro_io_set_fault(&io, plan_fault, NULL, &p);
    coro_spawn(&L, &t, op1(&f, K_NOP, -1, NULL, 0));
    /* Regression (fixed) (uring, plain and asan builds): the op waits in the
     * pending list, nothing is in flight and no timer is armed, and the
     * poll then blocks in io_uring_submit_and_wait(1) forever: a hang (the
     * flush after a refused SQE must not be followed by an unbounded wait
     * with nothing in flight). Under valgrind the 10 ms wait cap hides it. */
    CHECK_EQ(io_run_tasks(&L, 1), 0);
    CHECK_EQ(f.rc, 0);
    if (uring(&io)) CHECK_EQ(io.stats.sq_full, 2);
    coro_io_set_fault(&io, NULL, NULL, NULL);
    IO_END(&L);
}

/* The hook says "SQ full" two times in three: 120 one-byte sends on one
 * socket (from 120 tasks, in order) and 60 nops all complete, none lost,
 * and the bytes arrive in the order the sends were started. */
TEST(sq_full_from_the_hook_delays_ops_loses_none_keeps_send_order)
{
    enum { NS = 120, NN = 60 };
    static struct op1 s[NS], n[NN];
    static coro_task st[NS], nt[NN];
    static unsigned char bytes[NS], got[NS + 8];
    coro_loop L;
    coro_io io;
    struct plan p;
    int a, b;
    IO_BEGIN(&L, &io);
    io_tcp_pair(&a, &b);
    memset(&p, 0, sizeof p);
    p.sq_full_every = 3;
    coro_io_set_fault(&io, plan_fault, NULL, &p);
    struct ticker tick;
    coro_task tt;
    coro_spawn(&L, &tt, ticker(&tick, -1));
    for (int i = 0; i < NS; i++) {
        bytes[i] = (unsigned char)i;
        coro_spawn(&L, &st[i], op1(&s[i], K_SEND, a, &bytes[i], 1));
        if (i % 2 == 0) coro_spawn(&L, &nt[i / 2], op1(&n[i / 2], K_NOP, -1, NULL, 0));
    }
    CHECK_EQ(run_tasks(&L), 0);
    int bad = 0;
    for (int i = 0; i < NS; i++) bad += s[i].rc != 1;
    for (int i = 0; i < NN; i++) bad += n[i].rc != 0;
    CHECK_EQ(bad, 0);
    CHECK_EQ(drain_fd(b, (char *)got, sizeof got), NS);
    CHECK(!memcmp(got, bytes, NS));
    if (uring(&io)) {
        CHECK(p.sq_full_returned > 0);
        CHECK_EQ(io.stats.sq_full, p.sq_full_returned);
    } else {
        CHECK_EQ(io.stats.sq_full, 0); /* no SQ: the hint is ignored */
    }
    coro_io_set_fault(&io, NULL, NULL, NULL);
    close(a);
    close(b);
    IO_END(&L);
}

/* A genuinely tiny ring (2 SQ entries, 8 CQ) and 260 concurrent ops:
 * 100 recvs on 100 pairs (fed later), 100 one-byte sends in order on one
 * socket, 60 nops. Everything completes; the SQ really was full. */
TEST(tiny_ring_with_hundreds_of_concurrent_ops_completes_them_all)
{
    enum { NR = 100, NS = 100, NN = 60 };
    static struct op1 r[NR], s[NS], n[NN];
    static coro_task rt[NR], st[NS], nt[NN];
    static int pa[NR], pb[NR];
    static char rbuf[NR][32];
    static unsigned char bytes[NS], got[NS + 8];
    coro_loop L;
    coro_io io;
    coro_io_config cfg = config(2, 0);
    struct feeder fd;
    coro_task ft;
    int a, b;
    IO_BEGIN_CFG(&L, &io, &cfg);
    for (int i = 0; i < NR; i++) io_tcp_pair(&pa[i], &pb[i]);
    io_tcp_pair(&a, &b);
    for (int i = 0; i < NR; i++) coro_spawn(&L, &rt[i], op1(&r[i], K_RECV, pa[i], rbuf[i], 32));
    for (int i = 0; i < NS; i++) {
        bytes[i] = (unsigned char)i;
        coro_spawn(&L, &st[i], op1(&s[i], K_SEND, a, &bytes[i], 1));
    }
    for (int i = 0; i < NN; i++) coro_spawn(&L, &nt[i], op1(&n[i], K_NOP, -1, NULL, 0));
    memset(&fd, 0, sizeof fd);
    fd.fds = pb;
    fd.n = NR;
    fd.delay = 2;
    coro_spawn(&L, &ft, coro_frame_init(&fd.co, feeder_fn));
    CHECK_EQ(run_tasks(&L), 0);
    int bad = 0;
    for (int i = 0; i < NR; i++) {
        char msg[32];
        int len;
        message(i, msg, sizeof msg, &len);
        bad += r[i].rc != len || memcmp(rbuf[i], msg, (size_t)len);
    }
    for (int i = 0; i < NS; i++) bad += s[i].rc != 1;
    for (int i = 0; i < NN; i++) bad += n[i].rc != 0;
    CHECK_EQ(bad, 0);
    CHECK_EQ(drain_fd(b, (char *)got, sizeof got), NS);
    CHECK(!memcmp(got, bytes, NS));
    if (uring(&io)) CHECK(io.stats.sq_full > 0);
    for (int i = 0; i < NR; i++) {
        close(pa[i]);
        close(pb[i]);
    }
    close(a);
    close(b);
    IO_END(&L);
}

/* A tiny ring with no in-flight cap below the number of ops: 120 recvs in
 * flight at once on a CQ of 16; they all complete in the same moment (the
 * CQ overflows): none is lost. */
TEST(cq_overflow_with_many_completions_at_once_loses_none)
{
    enum { NR = 120 };
    static struct op1 r[NR];
    static coro_task rt[NR];
    static int pa[NR], pb[NR];
    static char rbuf[NR][32];
    coro_loop L;
    coro_io io;
    coro_io_config cfg = config(4, 1024);
    struct feeder fd;
    coro_task ft;
    IO_BEGIN_CFG(&L, &io, &cfg);
    for (int i = 0; i < NR; i++) io_tcp_pair(&pa[i], &pb[i]);
    for (int i = 0; i < NR; i++) coro_spawn(&L, &rt[i], op1(&r[i], K_RECV, pa[i], rbuf[i], 32));
    memset(&fd, 0, sizeof fd);
    fd.fds = pb;
    fd.n = NR;
    fd.delay = 3;
    coro_spawn(&L, &ft, coro_frame_init(&fd.co, feeder_fn));
    CHECK_EQ(run_tasks(&L), 0);
    int bad = 0;
    for (int i = 0; i < NR; i++) {
        char msg[32];
        int len;
        message(i, msg, sizeof msg, &len);
        bad += r[i].rc != len || memcmp(rbuf[i], msg, (size_t)len);
    }
    CHECK_EQ(bad, 0);
    if (uring(&io)) printf("  note: overflow flushes: %llu\n", (unsigned long long)io.stats.overflow_flushes);
    for (int i = 0; i < NR; i++) {
        close(pa[i]);
        close(pb[i]);
    }
    IO_END(&L);
}

/* ---------------------------------------------------------------------- */
/* cancellation and a full SQ / the in-flight cap                          */
/* ---------------------------------------------------------------------- */

/* A recv waits behind a full SQ (the hook refuses it while `hold`) with its
 * data already in the socket; a send on another socket waits behind it.
 * Cancelled there, the recv never reaches the kernel: CORO_ECANCELED, and
 * the data is all still readable; the send behind it then goes. */
TEST(cancel_while_queued_behind_sq_full_never_reaches_the_kernel)
{
    coro_loop L;
    coro_io io;
    struct plan p;
    struct op1 x, y;
    struct canceller k;
    coro_task xt, yt, kt;
    char buf[16];
    int a, b, c2, d;
    IO_BEGIN(&L, &io);
    io_tcp_pair(&a, &b);
    io_tcp_pair(&c2, &d);
    CHECK_EQ(write(b, "queued", 6), 6);
    memset(&p, 0, sizeof p);
    p.hold_op = &x.op;
    p.hold = 1;
    coro_io_set_fault(&io, plan_fault, NULL, &p);
    coro_spawn(&L, &xt, op1(&x, K_RECV, a, buf, sizeof buf));
    coro_spawn(&L, &yt, op1(&y, K_SEND, c2, (void *)"behind", 6));
    coro_spawn(&L, &kt, canceller(&k, &xt, 3));
    CHECK_EQ(run_tasks(&L), 0);
    if (uring(&io)) {
        CHECK_EQ(x.rc, CORO_ECANCELED);
        CHECK_EQ(p.hold_reached, 0);
        CHECK_EQ(drain_fd(a, NULL, 0), 6); /* nothing consumed */
        CHECK(p.sq_full_returned >= 3);
        CHECK_EQ(io.stats.cancels, 0); /* no cancel SQE was needed */
    } else { /* no SQ: the recv ran at once (the cancel may come after) */
        CHECK_EQ(x.rc, 6);
        CHECK(x.next == 0 || x.next == CORO_ECANCELED);
        CHECK_EQ(drain_fd(a, NULL, 0), 0);
    }
    CHECK_EQ(y.rc, 6);
    CHECK_EQ(drain_fd(d, NULL, 0), 6);
    coro_io_set_fault(&io, NULL, NULL, NULL);
    close(a);
    close(b);
    close(c2);
    close(d);
    IO_END(&L);
}

/* A recv waits behind a full SQ; its fd is closed with coro_close: the recv
 * ends with -EBADF without reaching the kernel, the close completes, the
 * fd is closed. */
struct closer {
    coro_frame co;
    coro_io_op op;
    int fd, i, rc;
};

static int closer_fn(coro_ctx *c)
{
    struct closer *k = CORO_SELF(c, struct closer);
    CORO_BEGIN(c);
    for (k->i = 0; k->i < 3; k->i++) CORO_YIELD(c);
    CORO_IO(c, coro_close(&k->op, c->loop, k->fd));
    k->rc = c->rc;
    CORO_END(c);
}

TEST(close_of_an_fd_whose_op_waits_behind_sq_full)
{
    coro_loop L;
    coro_io io;
    struct plan p;
    struct op1 x;
    struct closer k;
    coro_task xt, kt;
    char buf[8];
    int a, b;
    IO_BEGIN(&L, &io);
    io_tcp_pair(&a, &b);
    memset(&p, 0, sizeof p);
    p.hold_op = &x.op;
    p.hold = 1;
    coro_io_set_fault(&io, plan_fault, NULL, &p);
    coro_spawn(&L, &xt, op1(&x, K_RECV, a, buf, sizeof buf));
    memset(&k, 0, sizeof k);
    k.fd = a;
    coro_spawn(&L, &kt, coro_frame_init(&k.co, closer_fn));
    CHECK_EQ(run_tasks(&L), 0);
    CHECK_EQ(x.rc, -EBADF);
    CHECK_EQ(k.rc, 0);
    CHECK_EQ(fcntl(a, F_GETFD), -1);
    if (uring(&io)) CHECK_EQ(p.hold_reached, 0);
    coro_io_set_fault(&io, NULL, NULL, NULL);
    close(b);
    IO_END(&L);
}

/* Every op the cap allows is in flight, waiting for data that never comes,
 * under a deadline: when the deadlines pass, their cancellations must
 * still be submitted (a cancel must not wait for a free in-flight slot
 * that only the cancel itself can free). */
TEST(deadlines_fire_when_the_inflight_cap_is_full)
{
    enum { N = 4 };
    static struct op1 r[N];
    static coro_task rt[N];
    static char rbuf[N][8];
    int pa[N], pb[N];
    coro_loop L;
    coro_io io;
    coro_io_config cfg = config(8, N);
    IO_BEGIN_CFG(&L, &io, &cfg);
    for (int i = 0; i < N; i++) {
        io_tcp_pair(&pa[i], &pb[i]);
        op1(&r[i], K_RECV, pa[i], rbuf[i], 8);
        r[i].timeout = CORO_MS(10);
        coro_spawn(&L, &rt[i], &r[i].co);
    }
    /* Regression (fixed) (uring): with max_inflight ops all waiting, the cancels
     * of their deadlines count against the same cap, so they wait in the
     * pending list behind a cap that never frees: the loop sleeps forever
     * (hang). Expected: four CORO_ETIMEDOUT. Cancels need reserved room. */
    CHECK_EQ(io_run_tasks(&L, 1), 0);
    for (int i = 0; i < N; i++) CHECK_EQ(r[i].rc, CORO_ETIMEDOUT);
    for (int i = 0; i < N; i++) {
        close(pa[i]);
        close(pb[i]);
    }
    IO_END(&L);
}

/* 100 recvs in flight on a 2-entry SQ, all cancelled in the same step: 100
 * cancels go through a full SQ, none is dropped; each recv ends with
 * CORO_ECANCELED and consumed nothing. */
static int *cancel_all_fds;

static void write_all(void *arg)
{
    int n = *(int *)arg;
    for (int i = 0; i < n; i++)
        if (write(cancel_all_fds[i], "z", 1) != 1) test__fail(__FILE__, __LINE__, "write");
}

struct cancel_all {
    coro_frame co;
    coro_task *ts;
    int n, i;
};

static int cancel_all_fn(coro_ctx *c)
{
    struct cancel_all *k = CORO_SELF(c, struct cancel_all);
    CORO_BEGIN(c);
    for (k->i = 0; k->i < 3; k->i++) CORO_YIELD(c); /* all are in flight */
    for (int i = 0; i < k->n; i++) coro_task_cancel(c->loop, &k->ts[i]);
    CORO_END(c);
}

TEST(cancels_through_a_full_sq_are_never_dropped)
{
    enum { N = 100 };
    static struct op1 r[N];
    static coro_task rt[N];
    static int pa[N], pb[N];
    static char rbuf[N][8];
    coro_loop L;
    coro_io io;
    coro_io_config cfg = config(2, 1024);
    struct cancel_all k;
    coro_task kt;
    int n = N;
    IO_BEGIN_CFG(&L, &io, &cfg);
    for (int i = 0; i < N; i++) {
        io_tcp_pair(&pa[i], &pb[i]);
        coro_spawn(&L, &rt[i], op1(&r[i], K_RECV, pa[i], rbuf[i], 8));
    }
    memset(&k, 0, sizeof k);
    k.ts = rt;
    k.n = N;
    coro_spawn(&L, &kt, coro_frame_init(&k.co, cancel_all_fn));
    uint64_t full_before = io.stats.sq_full;
    CHECK_EQ(run_tasks(&L), 0);
    int bad = 0;
    for (int i = 0; i < N; i++) bad += r[i].rc != CORO_ECANCELED;
    CHECK_EQ(bad, 0);
    if (uring(&io)) {
        CHECK_EQ(io.stats.cancels, N);
        CHECK(io.stats.sq_full > full_before);
    }
    cancel_all_fds = pb;
    write_all(&n);
    for (int i = 0; i < N; i++) {
        struct pollfd pf = {pa[i], POLLIN, 0};
        poll(&pf, 1, 1000);
        bad += drain_fd(pa[i], NULL, 0) != 1;
    }
    CHECK_EQ(bad, 0);
    for (int i = 0; i < N; i++) {
        close(pa[i]);
        close(pb[i]);
    }
    IO_END(&L);
}

/* ---------------------------------------------------------------------- */
/* injected errors                                                         */
/* ---------------------------------------------------------------------- */

/* Errors injected on chosen ops reach exactly those tasks; those ops never
 * reached the kernel (their data is still in the socket, their bytes were
 * not sent, their connection is still queued); the others succeed. */
TEST(injected_errors_reach_exactly_the_chosen_ops)
{
    enum { N = 10 };
    static const int errs[] = {-EAGAIN, -EBUSY, -ENOMEM, -ECONNRESET, -EPIPE};
    static struct op1 r[N], s, acc;
    static coro_task rt[N], stt, at;
    static char rbuf[N][16];
    int pa[N], pb[N], a, b, port;
    coro_loop L;
    coro_io io;
    struct plan p;
    IO_BEGIN(&L, &io);
    memset(&p, 0, sizeof p);
    for (int i = 0; i < N; i++) {
        io_tcp_pair(&pa[i], &pb[i]);
        CHECK_EQ(write(pb[i], "data", 4), 4); /* each recv would succeed */
        op1(&r[i], K_RECV, pa[i], rbuf[i], 16);
        if (i % 2) {
            p.err_op[p.nerr] = &r[i].op;
            p.err[p.nerr++] = errs[i / 2];
        }
    }
    io_tcp_pair(&a, &b);
    op1(&s, K_SEND, a, (void *)"never", 5);
    p.err_op[p.nerr] = &s.op;
    p.err[p.nerr++] = -EPIPE;
    int l = io_listener(&port);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    int cl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK_EQ(connect(cl, (struct sockaddr *)&sa, sizeof sa), 0);
    op1(&acc, K_ACCEPT, l, NULL, 0);
    p.err_op[p.nerr] = &acc.op;
    p.err[p.nerr++] = -ENOMEM;
    coro_io_set_fault(&io, plan_fault, NULL, &p);
    for (int i = 0; i < N; i++) coro_spawn(&L, &rt[i], &r[i].co);
    coro_spawn(&L, &stt, &s.co);
    coro_spawn(&L, &at, &acc.co);
    CHECK_EQ(run_tasks(&L), 0);
    for (int i = 0; i < N; i++) {
        if (i % 2) {
            CHECK_EQ(r[i].rc, errs[i / 2]);
            CHECK_EQ(drain_fd(pa[i], NULL, 0), 4); /* never reached the kernel */
        } else {
            CHECK_EQ(r[i].rc, 4);
            CHECK_EQ(drain_fd(pa[i], NULL, 0), 0);
        }
        CHECK_EQ(r[i].next, 0);
    }
    CHECK_EQ(s.rc, -EPIPE);
    CHECK_EQ(drain_fd(b, NULL, 0), 0); /* nothing was sent */
    CHECK_EQ(acc.rc, -ENOMEM);
    int still = accept4(l, NULL, NULL, SOCK_CLOEXEC); /* still queued */
    CHECK(still >= 0);
    CHECK_EQ(p.errs_returned, p.nerr);
    coro_io_set_fault(&io, NULL, NULL, NULL);
    if (still >= 0) close(still);
    close(cl);
    close(l);
    close(a);
    close(b);
    for (int i = 0; i < N; i++) {
        close(pa[i]);
        close(pb[i]);
    }
    IO_END(&L);
}

/* ---------------------------------------------------------------------- */
/* short reads and writes                                                  */
/* ---------------------------------------------------------------------- */

/* Every read/write/recv/send is shrunk to 3 bytes: each op returns at most
 * 3; loops that go on until done move every byte, in order. */
struct shorty {
    coro_frame co;
    coro_io_op op;
    int file, a, b;
    size_t done;
    int ops, over;
    char out[100], in[100];
};

static int shorty_fn(coro_ctx *c)
{
    struct shorty *f = CORO_SELF(c, struct shorty);
    CORO_BEGIN(c);
    /* file: write 100 bytes at offset 0, read them back at offsets */
    for (f->done = 0; f->done < 100; f->done += (size_t)c->rc) {
        CORO_IO(c, coro_write(&f->op, c->loop, f->file, f->out + f->done, 100 - f->done,
                              (int64_t)f->done));
        if (c->rc <= 0) CORO_RETURN(c, c->rc ? c->rc : CORO_EUSER(1));
        f->ops++;
        f->over += c->rc > 3;
    }
    for (f->done = 0; f->done < 100; f->done += (size_t)c->rc) {
        CORO_IO(c, coro_read(&f->op, c->loop, f->file, f->in + f->done, 100 - f->done,
                             (int64_t)f->done));
        if (c->rc <= 0) CORO_RETURN(c, c->rc ? c->rc : CORO_EUSER(2));
        f->ops++;
        f->over += c->rc != 3 && f->done + 3 <= 100;
    }
    if (memcmp(f->in, f->out, 100)) CORO_RETURN(c, CORO_EUSER(3));
    /* socket: send 100 bytes, receive them */
    memset(f->in, 0, sizeof f->in);
    for (f->done = 0; f->done < 100; f->done += (size_t)c->rc) {
        CORO_IO(c, coro_send(&f->op, c->loop, f->a, f->out + f->done, 100 - f->done, 0));
        if (c->rc <= 0) CORO_RETURN(c, c->rc ? c->rc : CORO_EUSER(4));
        f->ops++;
        f->over += c->rc > 3;
    }
    for (f->done = 0; f->done < 100; f->done += (size_t)c->rc) {
        CORO_IO(c, coro_recv(&f->op, c->loop, f->b, f->in + f->done, 100 - f->done, 0));
        if (c->rc <= 0) CORO_RETURN(c, c->rc ? c->rc : CORO_EUSER(5));
        f->ops++;
        f->over += c->rc > 3;
    }
    if (memcmp(f->in, f->out, 100)) CORO_RETURN(c, CORO_EUSER(6));
    CORO_END(c);
}

TEST(short_reads_and_writes_return_less_and_a_loop_gets_everything)
{
    coro_loop L;
    coro_io io;
    struct plan p;
    static struct shorty f;
    coro_task t;
    IO_BEGIN(&L, &io);
    memset(&f, 0, sizeof f);
    for (int i = 0; i < 100; i++) f.out[i] = (char)('a' + i % 26);
    f.file = io_tmpfile(NULL, 0);
    io_tcp_pair(&f.a, &f.b);
    memset(&p, 0, sizeof p);
    p.shrink = 3;
    coro_io_set_fault(&io, plan_fault, NULL, &p);
    coro_spawn(&L, &t, coro_frame_init(&f.co, shorty_fn));
    CHECK_EQ(run_tasks(&L), 0);
    CHECK_EQ(coro_task_result(&t), 0);
    CHECK_EQ(f.over, 0);
    CHECK(f.ops >= 4 * 34); /* ceil(100 / 3) ops each way, at least */
    CHECK(p.shrunk >= f.ops);
    coro_io_set_fault(&io, NULL, NULL, NULL);
    close(f.file);
    close(f.a);
    close(f.b);
    IO_END(&L);
}

/* ---------------------------------------------------------------------- */
/* failing waits                                                           */
/* ---------------------------------------------------------------------- */

/* Every other wait for events fails (-EBUSY, -EINTR, -EAGAIN): the loop
 * reaps and retries, and everything completes; busy_retries counts the
 * failed waits, one each. */
struct worker {
    coro_frame co;
    coro_io_op op;
    int a, b, i, sum;
    char buf[8];
};

static int worker_fn(coro_ctx *c)
{
    struct worker *w = CORO_SELF(c, struct worker);
    CORO_BEGIN(c);
    for (w->i = 0; w->i < 20; w->i++) {
        CORO_IO(c, coro_send(&w->op, c->loop, w->a, "ab", 2, 0));
        if (c->rc != 2) CORO_RETURN(c, CORO_EUSER(1));
        CORO_IO(c, coro_recv(&w->op, c->loop, w->b, w->buf, 2, MSG_WAITALL));
        if (c->rc != 2) CORO_RETURN(c, CORO_EUSER(2));
        w->sum += c->rc;
        CORO_IO(c, coro_nop(&w->op, c->loop));
        if (c->rc != 0) CORO_RETURN(c, CORO_EUSER(3));
        CORO_SLEEP(c, CORO_US(100));
    }
    CORO_END(c);
}

TEST(failing_waits_busy_intr_again_lose_nothing_and_are_counted)
{
    static const int errs[] = {-EBUSY, -EINTR, -EAGAIN};
    coro_loop L;
    coro_io io;
    struct plan p;
    static struct worker w[8];
    coro_task t[8];
    IO_BEGIN(&L, &io);
    for (int e = 0; e < 3; e++) {
        memset(&p, 0, sizeof p);
        p.enter_every = 2;
        p.enter_err = errs[e];
        uint64_t before = io.stats.busy_retries;
        coro_io_set_fault(&io, NULL, plan_enter, &p);
        for (int i = 0; i < 8; i++) {
            memset(&w[i], 0, sizeof w[i]);
            io_tcp_pair(&w[i].a, &w[i].b);
            coro_spawn(&L, &t[i], coro_frame_init(&w[i].co, worker_fn));
        }
        CHECK_EQ(run_tasks(&L), 0);
        for (int i = 0; i < 8; i++) {
            CHECK_EQ(coro_task_result(&t[i]), 0);
            CHECK_EQ(w[i].sum, 40);
        }
        CHECK(p.enter_faults > 0);
        /* Regression (fixed) (uring): a failed wait is counted twice in
         * busy_retries (once where enter_fault fails, once more for its
         * -EBUSY/-EAGAIN/-EINTR rc): 2 per failed wait where epoll counts 1. */
        CHECK_EQ(io.stats.busy_retries - before, p.enter_faults);
        coro_io_set_fault(&io, NULL, NULL, NULL);
        for (int i = 0; i < 8; i++) {
            close(w[i].a);
            close(w[i].b);
            coro_io_forget(&L, w[i].a);
            coro_io_forget(&L, w[i].b);
        }
    }
    IO_END(&L);
}

/* ---------------------------------------------------------------------- */
/* everything at once                                                      */
/* ---------------------------------------------------------------------- */

/* A tiny ring, an SQ-full hook, short I/O and failing waits together: 40
 * echo exchanges complete with every byte in order. */
struct echo {
    coro_frame co;
    coro_io_op op;
    int a, b;
    size_t done;
    char out[64], in[64];
};

static int echo_fn(coro_ctx *c)
{
    struct echo *e = CORO_SELF(c, struct echo);
    CORO_BEGIN(c);
    for (e->done = 0; e->done < sizeof e->out; e->done += (size_t)c->rc) {
        CORO_IO(c, coro_send(&e->op, c->loop, e->a, e->out + e->done, sizeof e->out - e->done, 0));
        if (c->rc <= 0) CORO_RETURN(c, CORO_EUSER(1));
    }
    for (e->done = 0; e->done < sizeof e->in; e->done += (size_t)c->rc) {
        CORO_IO(c, coro_recv(&e->op, c->loop, e->b, e->in + e->done, sizeof e->in - e->done, 0));
        if (c->rc <= 0) CORO_RETURN(c, CORO_EUSER(2));
    }
    if (memcmp(e->in, e->out, sizeof e->in)) CORO_RETURN(c, CORO_EUSER(3));
    CORO_END(c);
}

TEST(tiny_ring_sq_full_short_io_and_failing_waits_together)
{
    enum { N = 40 };
    static struct echo e[N];
    static coro_task t[N];
    coro_loop L;
    coro_io io;
    coro_io_config cfg = config(2, 0);
    struct plan p;
    IO_BEGIN_CFG(&L, &io, &cfg);
    memset(&p, 0, sizeof p);
    p.sq_full_every = 4;
    p.shrink = 5;
    p.enter_every = 3;
    p.enter_err = -EBUSY;
    coro_io_set_fault(&io, plan_fault, plan_enter, &p);
    struct ticker tick;
    coro_task tt;
    coro_spawn(&L, &tt, ticker(&tick, -1));
    for (int i = 0; i < N; i++) {
        memset(&e[i], 0, sizeof e[i]);
        for (int j = 0; j < 64; j++) e[i].out[j] = (char)(i * 7 + j);
        io_tcp_pair(&e[i].a, &e[i].b);
        coro_spawn(&L, &t[i], coro_frame_init(&e[i].co, echo_fn));
    }
    CHECK_EQ(run_tasks(&L), 0);
    int bad = 0;
    for (int i = 0; i < N; i++) bad += coro_task_result(&t[i]) != 0;
    CHECK_EQ(bad, 0);
    coro_io_set_fault(&io, NULL, NULL, NULL);
    for (int i = 0; i < N; i++) {
        close(e[i].a);
        close(e[i].b);
    }
    IO_END(&L);
}

/* ---------------------------------------------------------------------- */
/* the counters                                                            */
/* ---------------------------------------------------------------------- */

/* submitted/completed/cancels/pending move as operations do: 10 nops, 3
 * recvs cancelled in flight, 2 ops made to wait by the hook. */
TEST(stats_count_submissions_completions_cancels_and_waits)
{
    coro_loop L;
    coro_io io;
    struct plan p;
    static struct op1 n[10], r[3];
    static coro_task nt[10], rt[3];
    static char rbuf[3][8];
    struct cancel_all k;
    coro_task kt;
    int pa[3], pb[3];
    IO_BEGIN(&L, &io);
    coro_io_stats s0 = io.stats;
    for (int i = 0; i < 10; i++) coro_spawn(&L, &nt[i], op1(&n[i], K_NOP, -1, NULL, 0));
    CHECK_EQ(run_tasks(&L), 0);
    CHECK_EQ(io.stats.completed - s0.completed, 10);
    if (uring(&io)) {
        CHECK_EQ(io.stats.submitted - s0.submitted, 10);
        CHECK(io.stats.enters > s0.enters);
    }
    s0 = io.stats;
    for (int i = 0; i < 3; i++) {
        io_tcp_pair(&pa[i], &pb[i]);
        coro_spawn(&L, &rt[i], op1(&r[i], K_RECV, pa[i], rbuf[i], 8));
    }
    memset(&k, 0, sizeof k);
    k.ts = rt;
    k.n = 3;
    coro_spawn(&L, &kt, coro_frame_init(&k.co, cancel_all_fn));
    CHECK_EQ(run_tasks(&L), 0);
    for (int i = 0; i < 3; i++) CHECK_EQ(r[i].rc, CORO_ECANCELED);
    CHECK_EQ(io.stats.completed - s0.completed, 3);
    if (uring(&io)) CHECK_EQ(io.stats.cancels - s0.cancels, 3);
    s0 = io.stats;
    memset(&p, 0, sizeof p);
    p.sq_full_first = 2;
    coro_io_set_fault(&io, plan_fault, NULL, &p);
    for (int i = 0; i < 2; i++) coro_spawn(&L, &nt[i], op1(&n[i], K_NOP, -1, NULL, 0));
    struct ticker tick; /* keeps the loop turning (see the SQ-full hang test) */
    coro_task tt;
    coro_spawn(&L, &tt, ticker(&tick, 5));
    CHECK_EQ(run_tasks(&L), 0);
    CHECK_EQ(n[0].rc, 0);
    CHECK_EQ(n[1].rc, 0);
    if (uring(&io)) {
        CHECK_EQ(io.stats.sq_full - s0.sq_full, 2);
        CHECK(io.stats.pending - s0.pending >= 1);
    }
    coro_io_set_fault(&io, NULL, NULL, NULL);
    for (int i = 0; i < 3; i++) {
        close(pa[i]);
        close(pb[i]);
    }
    IO_END(&L);
}
