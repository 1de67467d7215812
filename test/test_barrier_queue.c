/* test_barrier_queue.c - coro_sync.h's Barrier (R-BAR, T91-T92) and Queue /
 * LifoQueue / PriorityQueue (R-Q, T93-T100): exact orders and indices, error
 * paths, shutdown, the CANCEL-SAFETY lines of Barrier and Queue, deadlines
 * and the CORO_QUEUE_PUT / CORO_QUEUE_GET fast paths.
 *
 * Probe outputs quoted below come from CPython 3.13.0 on a virtual-time loop
 * (BaseEventLoop whose selector jumps an integer-millisecond clock; equal
 * deadlines fire in arming order), mirroring each test step for step. */
#include "test.h"
#include "coro_sync.h"

/* ---- helpers */

static const char *rcw(int rc)
{
    if (rc >= 0) return "";
    if (rc == CORO_ECANCELED) return "-cancel";
    if (rc == CORO_ETIMEDOUT) return "-timeout";
    if (rc == CORO_ESHUTDOWN) return "-shutdown";
    if (rc == CORO_EINVAL) return "-inval";
    if (rc == CORO_EAGAIN) return "-again";
    if (rc == CORO_EBROKEN) return "-broken";
    if (rc == CORO_ENOMEM) return "-nomem";
    return "-other";
}

static int task_rc(int rc)
{
    return rc == CORO_ECANCELED ? rc : 0;
}

static int drain(coro_loop *L)
{
    int rc = 0;
    while (coro_loop_task_count(L) && (rc = coro_loop_run_once(L)) == 0) {
    }
    return rc;
}

#define CLOSE_CLEAN(L)                                                         \
    do {                                                                       \
        CHECK_EQ(coro_loop_task_count(L), 0);                                  \
        CHECK_EQ(coro_loop_close(L), 0);                                       \
        CHECK_EQ(test_reports(), 0);                                           \
    } while (0)

/* ====================================================================== */
/* Barrier                                                                 */
/* ====================================================================== */

static const char *bstate(const coro_barrier *b)
{
    static const char *names[4] = {"filling", "draining", "resetting", "broken"};
    return names[b->state & 3];
}

/* A barrier party: waits `rounds` times (under a relative timeout when set)
 * and traces "<name>=<index>" ("<name>a=", "<name>b=" for several rounds;
 * ":<state>" appended when `show`), or "<name>-<outcome>" on failure. */
struct barw {
    coro_frame co;
    const char *name;
    coro_barrier *b;
    coro_barrier_op op;
    coro_timeout tm;
    coro_time timeout;
    int rounds, round, show, at, rc;
};

static int barw_fn(coro_ctx *c)
{
    struct barw *w = CORO_SELF(c, struct barw);
    CORO_BEGIN(c);
    for (w->round = 0; w->round < w->rounds; w->round++) {
        if (w->timeout != CORO_NEVER)
            CORO_TIMEOUT(c, &w->tm, w->timeout, CORO_AWAIT(c, coro_barrier_wait(&w->op, w->b)));
        else
            CORO_AWAIT(c, coro_barrier_wait(&w->op, w->b));
        w->rc = c->rc;
        if (c->rc < 0) {
            if (w->at)
                TRACE("%s%s@%ld", w->name, rcw(c->rc), test_ms(c->loop));
            else
                TRACE("%s%s", w->name, rcw(c->rc));
            CORO_RETURN(c, task_rc(c->rc));
        }
        if (w->rounds > 1)
            TRACE("%s%c=%d", w->name, 'a' + w->round, c->rc);
        else if (w->show)
            TRACE("%s=%d:%s", w->name, c->rc, bstate(w->b));
        else
            TRACE("%s=%d", w->name, c->rc);
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static coro_frame *barw(struct barw *w, const char *name, coro_barrier *b)
{
    memset(w, 0, sizeof *w);
    w->name = name;
    w->b = b;
    w->rounds = 1;
    w->timeout = CORO_NEVER;
    w->rc = 1;
    return coro_frame_init(&w->co, barw_fn);
}

/* A task running reset() (what 1) or abort() (what 2), tracing the state. */
struct barctl {
    coro_frame co;
    coro_barrier *b;
    coro_barrier_op op;
    int what;
};

static int barctl_fn(coro_ctx *c)
{
    struct barctl *f = CORO_SELF(c, struct barctl);
    CORO_BEGIN(c);
    if (f->what == 1)
        CORO_AWAIT(c, coro_barrier_reset(&f->op, f->b));
    else
        CORO_AWAIT(c, coro_barrier_abort(&f->op, f->b));
    CHECK_EQ(c->rc, 0);
    TRACE("%s:%s", f->what == 1 ? "reset" : "abort", bstate(f->b));
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static coro_frame *barctl(struct barctl *f, coro_barrier *b, int what)
{
    f->b = b;
    f->what = what;
    return coro_frame_init(&f->co, barctl_fn);
}

static const char *tnames[8] = {"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"};

/* T91 test_filling_task_by_task: n_waiting 1, 2, then the third trips it
 * and the waiters leave in FIFO order.
 * Probe: "n 1 | n 2 | t3=2 | n 0 draining | t1=0 | t2=1 | n 0 False filling". */
TEST(T91_barrier_filling_task_by_task)
{
    coro_loop L;
    coro_barrier b;
    coro_task t[3];
    struct barw w[3];
    test_loop(&L);
    CHECK_EQ(coro_barrier_init(&b, 3), 0);
    CHECK_EQ(coro_barrier_parties(&b), 3);
    coro_spawn(&L, &t[0], barw(&w[0], "t1", &b));
    coro_loop_run_once(&L);
    CHECK_EQ(coro_barrier_n_waiting(&b), 1);
    coro_spawn(&L, &t[1], barw(&w[1], "t2", &b));
    coro_loop_run_once(&L);
    CHECK_EQ(coro_barrier_n_waiting(&b), 2);
    coro_spawn(&L, &t[2], barw(&w[2], "t3", &b));
    coro_loop_run_once(&L);
    CHECK_TRACE("t3=2");
    CHECK_EQ(coro_barrier_n_waiting(&b), 0);
    CHECK_STR(bstate(&b), "draining");
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("t1=0 t2=1");
    CHECK_EQ(coro_barrier_n_waiting(&b), 0);
    CHECK(!coro_barrier_broken(&b));
    CHECK_STR(bstate(&b), "filling");
    CLOSE_CLEAN(&L);
}

/* T91 test_draining_state: inside the `async with` body the first N-1 to
 * run see "draining", the last one "filling".
 * Probe: "t4=4:draining | t0=0:draining | t1=1:draining | t2=2:draining |
 *         t3=3:filling". */
TEST(T91_barrier_draining_state)
{
    coro_loop L;
    coro_barrier b;
    coro_task t[5];
    struct barw w[5];
    test_loop(&L);
    CHECK_EQ(coro_barrier_init(&b, 5), 0);
    for (int i = 0; i < 5; i++) {
        coro_spawn(&L, &t[i], barw(&w[i], tnames[i], &b));
        w[i].show = 1;
    }
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("t4=4:draining t0=0:draining t1=1:draining t2=2:draining t3=3:filling");
    CHECK_EQ(coro_barrier_n_waiting(&b), 0);
    CHECK(!coro_barrier_broken(&b));
    CLOSE_CLEAN(&L);
}

/* T91 test_filling_tasks_check_return_value: two rounds; each round's
 * indices are a permutation of 0..N-1, in this exact order.
 * Probe: "t4a=4 | t0a=0 | t1a=1 | t2a=2 | t3a=3 | t2b=4 | t3b=0 | t4b=1 |
 *         t0b=2 | t1b=3". */
TEST(T91_barrier_check_return_value)
{
    coro_loop L;
    coro_barrier b;
    coro_task t[5];
    struct barw w[5];
    test_loop(&L);
    CHECK_EQ(coro_barrier_init(&b, 5), 0);
    for (int i = 0; i < 5; i++) {
        coro_spawn(&L, &t[i], barw(&w[i], tnames[i], &b));
        w[i].rounds = 2;
    }
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("t4a=4 t0a=0 t1a=1 t2a=2 t3a=3 t2b=4 t3b=0 t4b=1 t0b=2 t1b=3");
    CHECK_EQ(coro_barrier_n_waiting(&b), 0);
    CHECK(!coro_barrier_broken(&b));
    CLOSE_CLEAN(&L);
}

/* T91 test_barrier_parties, test_filling_one_task(_twice). */
TEST(T91_barrier_parties_and_single_party)
{
    coro_loop L;
    coro_barrier b;
    coro_task t[2];
    struct barw w[2];
    CHECK_EQ(coro_barrier_init(&b, 0), CORO_EINVAL);
    CHECK_EQ(coro_barrier_init(&b, -4), CORO_EINVAL);
    test_loop(&L);
    CHECK_EQ(coro_barrier_init(&b, 1), 0);
    coro_spawn(&L, &t[0], barw(&w[0], "t1", &b));
    coro_loop_run_once(&L);
    CHECK_EQ(coro_barrier_n_waiting(&b), 0);
    coro_spawn(&L, &t[1], barw(&w[1], "t2", &b));
    coro_loop_run_once(&L);
    CHECK_TRACE("t1=0 t2=0");
    CHECK(coro_task_done(&t[0]) && coro_task_done(&t[1]));
    CHECK_EQ(coro_barrier_n_waiting(&b), 0);
    CHECK(!coro_barrier_broken(&b));
    CLOSE_CLEAN(&L);
}

/* R-BAR-1: a party arriving while the barrier drains blocks until it is
 * filling again, then starts the next round.
 * Probe (Barrier(2); t1, t2, t3 created together; t4 later):
 *   "t2=1 | state draining n 0 count 1 condw 2 | t1=0 |
 *    state filling n 0 count 0 | state filling n 1 count 1 | t4=1 | t3=0 |
 *    n 0 filling". */
TEST(R_BAR_1_blocking_while_draining)
{
    coro_loop L;
    coro_barrier b;
    coro_task t[4];
    struct barw w[4];
    test_loop(&L);
    CHECK_EQ(coro_barrier_init(&b, 2), 0);
    for (int i = 0; i < 3; i++) coro_spawn(&L, &t[i], barw(&w[i], tnames[i + 1], &b));
    coro_loop_run_once(&L);
    CHECK_TRACE("t2=1");
    CHECK_STR(bstate(&b), "draining");
    CHECK_EQ(coro_barrier_n_waiting(&b), 0);
    CHECK_EQ(b.count, 1);
    CHECK_EQ(coro__fifo_len(&b.cond.waiters), 2); /* t1 and the blocked t3 */
    coro_loop_run_once(&L);
    CHECK_TRACE("t1=0");
    CHECK_STR(bstate(&b), "filling");
    CHECK_EQ(b.count, 0);
    coro_loop_run_once(&L);
    CHECK_EQ(coro_barrier_n_waiting(&b), 1); /* t3 is in the next round */
    coro_spawn(&L, &t[3], barw(&w[3], "t4", &b));
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("t4=1 t3=0");
    CHECK_EQ(coro_barrier_n_waiting(&b), 0);
    CHECK_STR(bstate(&b), "filling");
    CLOSE_CLEAN(&L);
}

/* T92 test_filling_tasks_cancel_one; CANCEL-SAFETY "Barrier.wait: leaves
 * the count (n_waiting drops); the barrier stays usable". Indices follow
 * the count, so after a cancellation they repeat, as in asyncio.
 * Probe: "n 1 | n 2 | t1-cancel | n 1 | t1 cancelled True | n 2 | t4=2 |
 *         t2=1 | t3=1 | n 0 False". */
TEST(T92_barrier_filling_tasks_cancel_one)
{
    coro_loop L;
    coro_barrier b;
    coro_task t[4];
    struct barw w[4];
    test_loop(&L);
    CHECK_EQ(coro_barrier_init(&b, 3), 0);
    coro_spawn(&L, &t[0], barw(&w[0], "t1", &b));
    coro_loop_run_once(&L);
    CHECK_EQ(coro_barrier_n_waiting(&b), 1);
    coro_spawn(&L, &t[1], barw(&w[1], "t2", &b));
    coro_loop_run_once(&L);
    CHECK_EQ(coro_barrier_n_waiting(&b), 2);
    coro_task_cancel(&L, &t[0]);
    coro_loop_run_once(&L);
    CHECK_TRACE("t1-cancel");
    CHECK_EQ(coro_barrier_n_waiting(&b), 1);
    CHECK(coro_task_cancelled(&t[0]));
    coro_spawn(&L, &t[2], barw(&w[2], "t3", &b));
    coro_loop_run_once(&L);
    CHECK_EQ(coro_barrier_n_waiting(&b), 2);
    coro_spawn(&L, &t[3], barw(&w[3], "t4", &b));
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("t4=2 t2=1 t3=1");
    CHECK_EQ(coro_barrier_n_waiting(&b), 0);
    CHECK(!coro_barrier_broken(&b));
    CHECK(!coro_lock_locked(coro_cond_lock(&b.cond)));
    CLOSE_CLEAN(&L);
}

/* The same line, woken-but-not-run: the barrier tripped (t1 notified),
 * then t1 is cancelled before it runs: t1 ends cancelled, t2 gets its
 * index, the barrier drains back to filling and the next round works.
 * Probe: "t3=2 | state draining | t1-cancel | t2=1 |
 *         state filling n 0 count 0 | r2=2 | r0=0 | r1=1 | n 0 filling". */
TEST(cancel_safety_barrier_woken_then_cancelled)
{
    coro_loop L;
    coro_barrier b;
    coro_task t[3], r[3];
    struct barw w[3], rw[3];
    static const char *rn[3] = {"r0", "r1", "r2"};
    test_loop(&L);
    CHECK_EQ(coro_barrier_init(&b, 3), 0);
    coro_spawn(&L, &t[0], barw(&w[0], "t1", &b));
    coro_spawn(&L, &t[1], barw(&w[1], "t2", &b));
    coro_loop_run_once(&L);
    coro_spawn(&L, &t[2], barw(&w[2], "t3", &b));
    coro_loop_run_once(&L);
    CHECK_TRACE("t3=2");
    CHECK_STR(bstate(&b), "draining");
    coro_task_cancel(&L, &t[0]);
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("t1-cancel t2=1");
    CHECK(coro_task_cancelled(&t[0]));
    CHECK_STR(bstate(&b), "filling");
    CHECK_EQ(b.count, 0);
    for (int i = 0; i < 3; i++) coro_spawn(&L, &r[i], barw(&rw[i], rn[i], &b));
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("r2=2 r0=0 r1=1");
    CHECK_EQ(coro_barrier_n_waiting(&b), 0);
    CHECK_STR(bstate(&b), "filling");
    CLOSE_CLEAN(&L);
}

/* T92 test_reset_barrier_while_tasks_waiting: N-1 waiters all get
 * EBROKEN; afterwards the barrier is filling and not broken.
 * Probe: "reset resetting | t0-broken | t1-broken | t2-broken | t3-broken |
 *         n 0 filling False". */
TEST(T92_barrier_reset_while_waiting)
{
    coro_loop L;
    coro_barrier b;
    coro_task t[4], tr;
    struct barw w[4];
    struct barctl ctl;
    test_loop(&L);
    CHECK_EQ(coro_barrier_init(&b, 5), 0);
    for (int i = 0; i < 4; i++) coro_spawn(&L, &t[i], barw(&w[i], tnames[i], &b));
    coro_loop_run_once(&L);
    CHECK_EQ(coro_barrier_n_waiting(&b), 4);
    coro_spawn(&L, &tr, barctl(&ctl, &b, 1));
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("reset:resetting t0-broken t1-broken t2-broken t3-broken");
    for (int i = 0; i < 4; i++) CHECK_EQ(w[i].rc, CORO_EBROKEN);
    CHECK_EQ(coro_barrier_n_waiting(&b), 0);
    CHECK_STR(bstate(&b), "filling");
    CHECK(!coro_barrier_broken(&b));
    CLOSE_CLEAN(&L);
}

/* test_reset_barrier / test_abort_barrier on an empty Barrier(1).
 * Probe: "n 0 False filling | n 0 True broken". */
TEST(T92_barrier_reset_and_abort_when_empty)
{
    coro_loop L;
    coro_barrier b;
    coro_task t;
    struct barctl ctl;
    test_loop(&L);
    CHECK_EQ(coro_barrier_init(&b, 1), 0);
    coro_spawn(&L, &t, barctl(&ctl, &b, 1));
    coro_loop_run_once(&L);
    CHECK_TRACE("reset:filling");
    CHECK_EQ(coro_barrier_n_waiting(&b), 0);
    CHECK(!coro_barrier_broken(&b));
    coro_spawn(&L, &t, barctl(&ctl, &b, 2));
    coro_loop_run_once(&L);
    CHECK_TRACE("abort:broken");
    CHECK_EQ(coro_barrier_n_waiting(&b), 0);
    CHECK(coro_barrier_broken(&b));
    CLOSE_CLEAN(&L);
}

/* T92 test_abort_barrier_when_exception: the party with index N//2 "raises"
 * and aborts; every other party's second wait gets EBROKEN.
 * Probe: "t2-abort | t3-broken | t4-broken | t0-broken | t1-broken |
 *         broken True n 0". */
struct abx {
    coro_frame co;
    const char *name;
    coro_barrier *b;
    coro_barrier_op op;
    int n;
};

static int abx_fn(coro_ctx *c)
{
    struct abx *f = CORO_SELF(c, struct abx);
    CORO_BEGIN(c);
    CORO_AWAIT(c, coro_barrier_wait(&f->op, f->b));
    if (c->rc < 0) {
        TRACE("%s%s", f->name, rcw(c->rc));
        CORO_RETURN(c, 0);
    }
    if (c->rc == f->n / 2) {
        TRACE("%s-abort", f->name);
        CORO_AWAIT(c, coro_barrier_abort(&f->op, f->b));
        CORO_RETURN(c, 0);
    }
    CORO_AWAIT(c, coro_barrier_wait(&f->op, f->b));
    TRACE("%s%s", f->name, c->rc >= 0 ? "-second" : rcw(c->rc));
    CORO_RETURN(c, 0);
    CORO_END(c);
}

TEST(T92_barrier_abort_when_exception)
{
    coro_loop L;
    coro_barrier b;
    coro_task t[5];
    struct abx f[5];
    test_loop(&L);
    CHECK_EQ(coro_barrier_init(&b, 5), 0);
    for (int i = 0; i < 5; i++) {
        f[i].name = tnames[i];
        f[i].b = &b;
        f[i].n = 5;
        coro_spawn(&L, &t[i], coro_frame_init(&f[i].co, abx_fn));
    }
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("t2-abort t3-broken t4-broken t0-broken t1-broken");
    CHECK(coro_barrier_broken(&b));
    CHECK_EQ(coro_barrier_n_waiting(&b), 0);
    CLOSE_CLEAN(&L);
}

/* T92 test_abort_barrier_when_exception_then_resetting: after the abort,
 * all meet at barrier2, one resets barrier1, and barrier1 works again.
 * Probe: "t2-abort | t3-broken | t4-broken | t0-broken | t1-broken |
 *         t4-reset | t3=4 | t4=0 | t0=1 | t1=2 | t2=3 | broken False n 0". */
struct abr {
    coro_frame co;
    const char *name;
    coro_barrier *b1, *b2;
    coro_barrier_op op;
    int n;
};

static int abr_fn(coro_ctx *c)
{
    struct abr *f = CORO_SELF(c, struct abr);
    CORO_BEGIN(c);
    CORO_AWAIT(c, coro_barrier_wait(&f->op, f->b1));
    if (c->rc < 0) {
        TRACE("%s%s", f->name, rcw(c->rc));
    } else if (c->rc == f->n / 2) {
        TRACE("%s-abort", f->name);
        CORO_AWAIT(c, coro_barrier_abort(&f->op, f->b1));
    } else {
        CORO_AWAIT(c, coro_barrier_wait(&f->op, f->b1));
        TRACE("%s%s", f->name, c->rc >= 0 ? "-r1" : rcw(c->rc));
    }
    CORO_AWAIT(c, coro_barrier_wait(&f->op, f->b2));
    if (c->rc == f->n / 2) {
        TRACE("%s-reset", f->name);
        CORO_AWAIT(c, coro_barrier_reset(&f->op, f->b1));
    }
    CORO_AWAIT(c, coro_barrier_wait(&f->op, f->b2));
    CORO_AWAIT(c, coro_barrier_wait(&f->op, f->b1));
    TRACE("%s=%d", f->name, c->rc);
    CORO_RETURN(c, 0);
    CORO_END(c);
}

TEST(T92_barrier_abort_then_reset)
{
    coro_loop L;
    coro_barrier b1, b2;
    coro_task t[5];
    struct abr f[5];
    test_loop(&L);
    CHECK_EQ(coro_barrier_init(&b1, 5), 0);
    CHECK_EQ(coro_barrier_init(&b2, 5), 0);
    for (int i = 0; i < 5; i++) {
        f[i].name = tnames[i];
        f[i].b1 = &b1;
        f[i].b2 = &b2;
        f[i].n = 5;
        coro_spawn(&L, &t[i], coro_frame_init(&f[i].co, abr_fn));
    }
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("t2-abort t3-broken t4-broken t0-broken t1-broken t4-reset t3=4 t4=0 t0=1 "
                "t1=2 t2=3");
    CHECK(!coro_barrier_broken(&b1));
    CHECK_EQ(coro_barrier_n_waiting(&b1), 0);
    CLOSE_CLEAN(&L);
}

/* R-BAR-3: after abort() current and later waits fail with EBROKEN until a
 * reset.
 * Probe: "broken True | t1-broken | t2-broken | broken False filling |
 *         t4=1 | t3=0". */
TEST(R_BAR_3_abort_fails_later_waits_until_reset)
{
    coro_loop L;
    coro_barrier b;
    coro_task t[4], tc;
    struct barw w[4];
    struct barctl ctl;
    test_loop(&L);
    CHECK_EQ(coro_barrier_init(&b, 2), 0);
    coro_spawn(&L, &t[0], barw(&w[0], "t1", &b));
    coro_loop_run_once(&L);
    coro_spawn(&L, &tc, barctl(&ctl, &b, 2));
    CHECK_EQ(coro_loop_run_until_complete(&L, &tc), 0);
    CHECK(coro_barrier_broken(&b));
    coro_spawn(&L, &t[1], barw(&w[1], "t2", &b));
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("abort:broken t1-broken t2-broken");
    coro_spawn(&L, &tc, barctl(&ctl, &b, 1));
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("reset:filling");
    CHECK(!coro_barrier_broken(&b));
    coro_spawn(&L, &t[2], barw(&w[2], "t3", &b));
    coro_spawn(&L, &t[3], barw(&w[3], "t4", &b));
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("t4=1 t3=0");
    CLOSE_CLEAN(&L);
}

/* CANCEL-SAFETY, Barrier, cancelled by its deadline: ETIMEDOUT at exactly
 * 30 ms, the party leaves the count, the barrier trips later with the
 * others (indices follow the count, as in asyncio).
 * Probe: "a-timeout 30 n 1 | n 1 | t3=2 | t1=1 | t2=1 | n 0 50". */
struct bartm {
    coro_frame co;
    coro_barrier b;
    coro_task ta, t[3];
    struct barw a, w[3];
};

static int bartm_fn(coro_ctx *c)
{
    struct bartm *m = CORO_SELF(c, struct bartm);
    CORO_BEGIN(c);
    coro_barrier_init(&m->b, 3);
    coro_spawn(c->loop, &m->ta, barw(&m->a, "a", &m->b));
    m->a.timeout = CORO_MS(30);
    m->a.at = 1;
    coro_spawn(c->loop, &m->t[0], barw(&m->w[0], "t1", &m->b));
    CORO_SLEEP(c, CORO_MS(50));
    TRACE("n=%u", coro_barrier_n_waiting(&m->b));
    coro_spawn(c->loop, &m->t[1], barw(&m->w[1], "t2", &m->b));
    coro_spawn(c->loop, &m->t[2], barw(&m->w[2], "t3", &m->b));
    CORO_AWAIT_TASK(c, &m->t[0]);
    CORO_AWAIT_TASK(c, &m->t[1]);
    CORO_AWAIT_TASK(c, &m->t[2]);
    TRACE("n=%u@%ld", coro_barrier_n_waiting(&m->b), test_ms(c->loop));
    CORO_RETURN(c, 0);
    CORO_END(c);
}

TEST(cancel_safety_barrier_deadline_leaves_count)
{
    coro_loop L;
    coro_task t;
    struct bartm m;
    memset(&m, 0, sizeof m);
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&m.co, bartm_fn)), 0);
    CHECK_TRACE("a-timeout@30 n=1 t3=2 t1=1 t2=1 n=0@50");
    CHECK_EQ(m.a.rc, CORO_ETIMEDOUT);
    CLOSE_CLEAN(&L);
}

/* ====================================================================== */
/* Queues                                                                  */
/* ====================================================================== */

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static const char *kname[3] = {"fifo", "lifo", "prio"};

/* A queue worker: `n` puts (values base, base+1, ...) or gets, each under a
 * relative timeout when set; fast: the CORO_QUEUE_* macros. After each it
 * sleeps `pause` ms (0: nothing). Traces "<name>+<v>" / "<name>=<v>" (with
 * "@ms" when `at`) or "<name>-<outcome>"; `sum` adds what it got. */
struct qw {
    coro_frame co;
    const char *name;
    coro_queue *q;
    coro_queue_op op;
    coro_timeout tm;
    coro_time timeout;
    int put, fast, n, i, base, pause, at, rc, in, out, got, sum;
};

static int qw_fn(coro_ctx *c)
{
    struct qw *w = CORO_SELF(c, struct qw);
    CORO_BEGIN(c);
    for (w->i = 0; w->i < w->n; w->i++) {
        w->in = w->base + w->i;
        if (w->put) {
            if (w->timeout != CORO_NEVER) {
                if (w->fast)
                    CORO_TIMEOUT(c, &w->tm, w->timeout, CORO_QUEUE_PUT(c, &w->op, w->q, &w->in));
                else
                    CORO_TIMEOUT(c, &w->tm, w->timeout,
                                 CORO_AWAIT(c, coro_queue_put(&w->op, w->q, &w->in)));
            } else if (w->fast) {
                CORO_QUEUE_PUT(c, &w->op, w->q, &w->in);
            } else {
                CORO_AWAIT(c, coro_queue_put(&w->op, w->q, &w->in));
            }
        } else {
            if (w->timeout != CORO_NEVER) {
                if (w->fast)
                    CORO_TIMEOUT(c, &w->tm, w->timeout, CORO_QUEUE_GET(c, &w->op, w->q, &w->out));
                else
                    CORO_TIMEOUT(c, &w->tm, w->timeout,
                                 CORO_AWAIT(c, coro_queue_get(&w->op, w->q, &w->out)));
            } else if (w->fast) {
                CORO_QUEUE_GET(c, &w->op, w->q, &w->out);
            } else {
                CORO_AWAIT(c, coro_queue_get(&w->op, w->q, &w->out));
            }
        }
        w->rc = c->rc;
        if (c->rc < 0) {
            if (w->at)
                TRACE("%s%s@%ld", w->name, rcw(c->rc), test_ms(c->loop));
            else
                TRACE("%s%s", w->name, rcw(c->rc));
            CORO_RETURN(c, task_rc(c->rc));
        }
        if (!w->put) {
            w->got++;
            w->sum += w->out;
        }
        if (w->at)
            TRACE("%s%c%d@%ld", w->name, w->put ? '+' : '=', w->put ? w->in : w->out,
                  test_ms(c->loop));
        else
            TRACE("%s%c%d", w->name, w->put ? '+' : '=', w->put ? w->in : w->out);
        if (w->pause) CORO_SLEEP(c, CORO_MS(w->pause));
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static coro_frame *qput(struct qw *w, const char *name, coro_queue *q, int v)
{
    memset(w, 0, sizeof *w);
    w->name = name;
    w->q = q;
    w->put = 1;
    w->n = 1;
    w->base = v;
    w->timeout = CORO_NEVER;
    w->rc = 1;
    return coro_frame_init(&w->co, qw_fn);
}

static coro_frame *qget(struct qw *w, const char *name, coro_queue *q)
{
    qput(w, name, q, 0);
    w->put = 0;
    return &w->co;
}

/* T93 test_order (Queue, LifoQueue, PriorityQueue) + test_empty/test_full. */
TEST(T93_queue_order_empty_full)
{
    static const int want[3][3] = {{1, 3, 2}, {2, 3, 1}, {1, 2, 3}};
    for (int k = 0; k < 3; k++) {
        coro_loop L;
        coro_queue q;
        int buf[8], in[3] = {1, 3, 2}, out;
        test_loop(&L);
        CHECK_EQ(coro_queue_init(&q, k, buf, sizeof(int), 8, 0, cmp_int), 0);
        CHECK(coro_queue_empty(&q));
        CHECK(!coro_queue_full(&q));
        CHECK_EQ(coro_queue_maxsize(&q), 0);
        for (int i = 0; i < 3; i++) CHECK_EQ(coro_queue_put_nowait(&L, &q, &in[i]), 0);
        CHECK(!coro_queue_empty(&q));
        CHECK(!coro_queue_full(&q)); /* unbounded: never full */
        CHECK_EQ(coro_queue_qsize(&q), 3);
        for (int i = 0; i < 3; i++) {
            out = -1;
            CHECK_EQ(coro_queue_get_nowait(&L, &q, &out), 0);
            if (out != want[k][i]) test__fail(__FILE__, __LINE__, "%s item %d: %d != %d", kname[k], i, out, want[k][i]);
        }
        CHECK(coro_queue_empty(&q));
        /* Queue(maxsize=1) is full after one put */
        CHECK_EQ(coro_queue_init(&q, k, buf, sizeof(int), 8, 1, cmp_int), 0);
        CHECK_EQ(coro_queue_maxsize(&q), 1);
        CHECK(!coro_queue_full(&q));
        CHECK_EQ(coro_queue_put_nowait(&L, &q, &in[0]), 0);
        CHECK(coro_queue_full(&q));
        CLOSE_CLEAN(&L);
    }
}

/* Items are copied whole; get_nowait may drop the item (out NULL); the FIFO
 * ring wraps around its storage. */
struct rec {
    int pri;
    char tag[12];
};

static int cmp_rec(const void *a, const void *b)
{
    return cmp_int(&((const struct rec *)a)->pri, &((const struct rec *)b)->pri);
}

TEST(queue_items_copied_and_ring_wraps)
{
    coro_loop L;
    coro_queue q;
    struct rec buf[4], r, out;
    int ibuf[3], v;
    test_loop(&L);
    CHECK_EQ(coro_queue_init(&q, CORO_PRIO, buf, sizeof(struct rec), 4, 4, cmp_rec), 0);
    static const int pris[4] = {5, 1, 4, 2};
    for (int i = 0; i < 4; i++) {
        r.pri = pris[i];
        snprintf(r.tag, sizeof r.tag, "item%d", pris[i]);
        CHECK_EQ(coro_queue_put_nowait(&L, &q, &r), 0);
    }
    memset(&r, 0, sizeof r); /* the queue holds copies */
    CHECK_EQ(coro_queue_put_nowait(&L, &q, &r), CORO_EAGAIN);
    static const char *tags[4] = {"item1", "item2", "item4", "item5"};
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(coro_queue_get_nowait(&L, &q, &out), 0);
        CHECK_STR(out.tag, tags[i]);
    }
    CHECK_EQ(coro_queue_init(&q, CORO_FIFO, ibuf, sizeof(int), 3, 3, NULL), 0);
    for (int i = 0; i < 20; i++) {
        CHECK_EQ(coro_queue_put_nowait(&L, &q, &i), 0);
        if (i % 3 == 2) {
            CHECK_EQ(coro_queue_get_nowait(&L, &q, &v), 0);
            CHECK_EQ(v, i - 2);
            CHECK_EQ(coro_queue_get_nowait(&L, &q, NULL), 0);
            CHECK_EQ(coro_queue_get_nowait(&L, &q, &v), 0);
            CHECK_EQ(v, i);
        }
    }
    CHECK_EQ(coro_queue_qsize(&q), 2);
    CHECK_EQ(coro_queue_get_nowait(&L, &q, &v), 0);
    CHECK_EQ(v, 18);
    CLOSE_CLEAN(&L);
}

/* The priority queue against a sort, on 2000 pseudo-random keys. */
TEST(queue_prio_heap_sorted_order)
{
    enum { N = 2000 };
    coro_loop L;
    coro_queue q;
    static int buf[N], keys[N];
    unsigned x = 12345;
    test_loop(&L);
    CHECK_EQ(coro_queue_init(&q, CORO_PRIO, buf, sizeof(int), N, 0, cmp_int), 0);
    for (int i = 0; i < N; i++) {
        x = x * 1103515245u + 12345u;
        keys[i] = (int)((x >> 8) % 500);
        CHECK_EQ(coro_queue_put_nowait(&L, &q, &keys[i]), 0);
    }
    qsort(keys, N, sizeof(int), cmp_int);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        int v = -1;
        CHECK_EQ(coro_queue_get_nowait(&L, &q, &v), 0);
        if (v != keys[i]) bad++;
    }
    CHECK_EQ(bad, 0);
    CHECK(coro_queue_empty(&q));
    CLOSE_CLEAN(&L);
}

/* coro_queue_init rejects bad arguments. */
TEST(queue_init_rejects_bad_arguments)
{
    coro_queue q;
    int buf[4];
    CHECK_EQ(coro_queue_init(&q, -1, buf, sizeof(int), 4, 0, NULL), CORO_EINVAL);
    CHECK_EQ(coro_queue_init(&q, 3, buf, sizeof(int), 4, 0, cmp_int), CORO_EINVAL);
    CHECK_EQ(coro_queue_init(&q, CORO_FIFO, NULL, sizeof(int), 4, 0, NULL), CORO_EINVAL);
    CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, 0, 4, 0, NULL), CORO_EINVAL);
    CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), 0, 0, NULL), CORO_EINVAL);
    CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), 4, 5, NULL), CORO_EINVAL);
    CHECK_EQ(coro_queue_init(&q, CORO_PRIO, buf, sizeof(int), 4, 0, NULL), CORO_EINVAL);
    if (sizeof(size_t) > 4) {
        CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), (size_t)UINT32_MAX + 1, 0, NULL),
                 CORO_EINVAL);
        CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, (size_t)UINT32_MAX + 1, 4, 0, NULL),
                 CORO_EINVAL);
    }
    CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), 4, 4, NULL), 0);
    CHECK_EQ(coro_queue_init(&q, CORO_LIFO, buf, sizeof(int), 4, 0, NULL), 0);
    CHECK_EQ(coro_queue_init(&q, CORO_PRIO, buf, sizeof(int), 4, 2, cmp_int), 0);
}

/* T94 test_maxsize: a putter of 0, 1, 2 on Queue(2) blocks after two; one
 * get lets it put the third in the next pass.
 * Probe: "put 0 | put 1 | have [0, 1] | have [0, 1] | get 0 | put 2 |
 *         have [0, 1, 2] | get 1 2". */
TEST(T94_queue_maxsize)
{
    for (int fast = 0; fast < 2; fast++) {
        coro_loop L;
        coro_queue q;
        coro_task t;
        struct qw p;
        int buf[4], v;
        test_loop(&L);
        CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), 4, 2, NULL), 0);
        CHECK_EQ(coro_queue_maxsize(&q), 2);
        coro_spawn(&L, &t, qput(&p, "put", &q, 0));
        p.n = 3;
        p.fast = fast;
        coro_loop_run_once(&L);
        coro_loop_run_once(&L);
        CHECK_TRACE("put+0 put+1");
        CHECK_EQ(coro_queue_get_nowait(&L, &q, &v), 0);
        CHECK_EQ(v, 0);
        coro_loop_run_once(&L);
        CHECK_TRACE("put+2");
        CHECK_EQ(coro_queue_get_nowait(&L, &q, &v), 0);
        CHECK_EQ(v, 1);
        CHECK_EQ(coro_queue_get_nowait(&L, &q, &v), 0);
        CHECK_EQ(v, 2);
        CHECK(coro_task_done(&t));
        CHECK_EQ(coro_task_result(&t), 0);
        CLOSE_CLEAN(&L);
    }
}

/* T95 test_nonblocking_get_exception / test_nonblocking_put_exception. The
 * float maxsize of test_float_maxsize has no C counterpart (size_t). */
TEST(T95_queue_nonblocking_errors)
{
    coro_loop L;
    coro_queue q;
    int buf[2], v = 1;
    test_loop(&L);
    CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), 2, 0, NULL), 0);
    CHECK_EQ(coro_queue_get_nowait(&L, &q, &v), CORO_EAGAIN);
    CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), 2, 1, NULL), 0);
    CHECK_EQ(coro_queue_put_nowait(&L, &q, &v), 0);
    CHECK_EQ(coro_queue_put_nowait(&L, &q, &v), CORO_EAGAIN);
    CHECK_EQ(coro_queue_qsize(&q), 1);
    CLOSE_CLEAN(&L);
}

/* maxsize 0 ("unbounded") over finite storage: a put beyond the storage is
 * CORO_ENOMEM in every form, without blocking, and is not counted as
 * unfinished; full() stays false. */
TEST(queue_storage_exhausted_is_enomem)
{
    coro_loop L;
    coro_queue q;
    coro_task t[2];
    struct qw w[2];
    int buf[2], v = 5;
    test_loop(&L);
    CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), 2, 0, NULL), 0);
    CHECK_EQ(coro_queue_put_nowait(&L, &q, &v), 0);
    CHECK_EQ(coro_queue_put_nowait(&L, &q, &v), 0);
    CHECK_EQ(coro_queue_put_nowait(&L, &q, &v), CORO_ENOMEM);
    CHECK(!coro_queue_full(&q));
    CHECK_EQ(coro_queue_qsize(&q), 2);
    coro_spawn(&L, &t[0], qput(&w[0], "frame", &q, 6));
    coro_spawn(&L, &t[1], qput(&w[1], "macro", &q, 7));
    w[1].fast = 1;
    coro_loop_run_once(&L);
    CHECK_TRACE("frame-nomem macro-nomem");
    CHECK_EQ(w[0].rc, CORO_ENOMEM);
    CHECK_EQ(w[1].rc, CORO_ENOMEM);
    CHECK_EQ(coro__fifo_len(&q.putters), 0);
    CHECK_EQ(coro_queue_task_done(&L, &q), 0);
    CHECK_EQ(coro_queue_task_done(&L, &q), 0);
    CHECK_EQ(coro_queue_task_done(&L, &q), CORO_EINVAL);
    CLOSE_CLEAN(&L);
}

/* T96 test_get_cancelled_race: getters t1, t2; t1 cancelled; put 'a': t2.
 * Probe: "t1-cancel | t1done True | t2=a | t2 a". */
TEST(T96_queue_get_cancelled_race)
{
    coro_loop L;
    coro_queue q;
    coro_task t[2];
    struct qw w[2];
    int buf[4], v = 'a';
    test_loop(&L);
    CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), 4, 0, NULL), 0);
    coro_spawn(&L, &t[0], qget(&w[0], "t1", &q));
    coro_spawn(&L, &t[1], qget(&w[1], "t2", &q));
    coro_loop_run_once(&L);
    coro_task_cancel(&L, &t[0]);
    coro_loop_run_once(&L);
    CHECK(coro_task_done(&t[0]));
    CHECK_EQ(coro__fifo_len(&q.getters), 1);
    CHECK_EQ(coro_queue_put_nowait(&L, &q, &v), 0);
    coro_loop_run_once(&L);
    CHECK_TRACE("t1-cancel t2=97");
    CHECK(coro_task_done(&t[1]));
    CLOSE_CLEAN(&L);
}

/* T96 test_get_with_waiting_putters: two blocked putters on Queue(1).
 * Probe: "pa+a | get a | pb+b | get b". */
struct getter2 {
    coro_frame co;
    coro_queue *q;
    coro_queue_op op;
    int out, fast, i;
};

static int getter2_fn(coro_ctx *c)
{
    struct getter2 *f = CORO_SELF(c, struct getter2);
    CORO_BEGIN(c);
    for (f->i = 0; f->i < 2; f->i++) {
        if (f->fast)
            CORO_QUEUE_GET(c, &f->op, f->q, &f->out);
        else
            CORO_AWAIT(c, coro_queue_get(&f->op, f->q, &f->out));
        CORO_CHECK(c);
        TRACE("get=%c", f->out);
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

TEST(T96_queue_get_with_waiting_putters)
{
    for (int fast = 0; fast < 2; fast++) {
        coro_loop L;
        coro_queue q;
        coro_task tm, ta, tb;
        struct getter2 m;
        struct qw a, b;
        int buf[2];
        test_loop(&L);
        CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), 2, 1, NULL), 0);
        m.q = &q;
        m.fast = fast;
        coro_spawn(&L, &ta, qput(&a, "pa", &q, 'a'));
        coro_spawn(&L, &tb, qput(&b, "pb", &q, 'b'));
        a.fast = b.fast = fast;
        coro_spawn(&L, &tm, coro_frame_init(&m.co, getter2_fn));
        CHECK_EQ(drain(&L), 0);
        CHECK_TRACE("pa+97 get=a pb+98 get=b");
        CLOSE_CLEAN(&L);
    }
}

/* T96 test_get_with_putters: get() on a full queue wakes the waiting
 * putter (its waiter is completed before it runs). */
TEST(T96_queue_get_wakes_putter)
{
    coro_loop L;
    coro_queue q;
    coro_task t;
    struct qw p;
    int buf[1], v = 1;
    test_loop(&L);
    CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), 1, 1, NULL), 0);
    CHECK_EQ(coro_queue_put_nowait(&L, &q, &v), 0);
    coro_spawn(&L, &t, qput(&p, "p", &q, 2));
    coro_loop_run_once(&L);
    CHECK(!coro_future_done(&p.op.w.fut));
    CHECK_EQ(coro_queue_get_nowait(&L, &q, &v), 0);
    CHECK_EQ(v, 1);
    CHECK(coro_future_done(&p.op.w.fut));
    CHECK_EQ(coro__fifo_len(&q.putters), 0);
    coro_loop_run_once(&L);
    CHECK_TRACE("p+2");
    CLOSE_CLEAN(&L);
}

/* T97 test_get_cancel_drop_one_pending_reader: the reader was woken by the
 * first put and cancelled before it ran: it takes nothing; a new reader
 * gets 1 (nothing dropped).
 * Probe: "r-cancel | r2=1 | result 1 qsize 1" (and reference probe E). */
TEST(T97_queue_get_cancel_drop_one_pending_reader)
{
    for (int fast = 0; fast < 2; fast++) {
        coro_loop L;
        coro_queue q;
        coro_task r;
        struct qw w;
        int buf[4], one = 1, two = 2;
        test_loop(&L);
        CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), 4, 0, NULL), 0);
        coro_spawn(&L, &r, qget(&w, "r", &q));
        w.fast = fast;
        coro_loop_run_once(&L);
        CHECK_EQ(coro_queue_put_nowait(&L, &q, &one), 0);
        CHECK_EQ(coro_queue_put_nowait(&L, &q, &two), 0);
        coro_task_cancel(&L, &r);
        CHECK_EQ(coro_loop_run_until_complete(&L, &r), CORO_ECANCELED);
        coro_spawn(&L, &r, qget(&w, "r2", &q));
        w.fast = fast;
        CHECK_EQ(coro_loop_run_until_complete(&L, &r), 0);
        CHECK_TRACE("r-cancel r2=1");
        CHECK_EQ(coro_queue_qsize(&q), 1);
        CLOSE_CLEAN(&L);
    }
}

/* CANCEL-SAFETY (= T97 test_get_cancel_drop_many_pending_readers)
 * "Queue.get/put: takes no item / slot; a wake-up it got passes to the
 * next getter/putter" (getter side, woken-but-not-run): r1's wake-up
 * passes to r3, so r2 and r3 receive {1, 2}.
 * Probe: "r1-cancel | r2=1 | r3=2 | r1 cancelled". */
TEST(cancel_safety_queue_get_woken_then_cancelled_passes_wakeup)
{
    for (int fast = 0; fast < 2; fast++) {
        coro_loop L;
        coro_queue q;
        coro_task t[3];
        struct qw w[3];
        static const char *names[3] = {"r1", "r2", "r3"};
        int buf[4], one = 1, two = 2;
        test_loop(&L);
        CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), 4, 0, NULL), 0);
        for (int i = 0; i < 3; i++) {
            coro_spawn(&L, &t[i], qget(&w[i], names[i], &q));
            w[i].fast = fast;
        }
        coro_loop_run_once(&L);
        CHECK_EQ(coro_queue_put_nowait(&L, &q, &one), 0);
        CHECK_EQ(coro_queue_put_nowait(&L, &q, &two), 0);
        coro_task_cancel(&L, &t[0]);
        CHECK_EQ(drain(&L), 0);
        CHECK_TRACE("r1-cancel r2=1 r3=2");
        CHECK(coro_task_cancelled(&t[0]));
        CHECK_EQ(coro_queue_qsize(&q), 0);
        CHECK_EQ(coro__fifo_len(&q.getters), 0);
        CLOSE_CLEAN(&L);
    }
}

/* T98 test_put_cancel_drop; CANCEL-SAFETY, putter side, woken-but-not-run:
 * the writer was woken by get_nowait() and cancelled before it ran; it
 * takes no slot, and a retry puts 2.
 * Probe: "get 1 | w-cancel | w2+2 | get 2 qsize 0". */
TEST(T98_queue_put_cancel_drop)
{
    for (int fast = 0; fast < 2; fast++) {
        coro_loop L;
        coro_queue q;
        coro_task t;
        struct qw w;
        int buf[1], v = 1;
        test_loop(&L);
        CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), 1, 1, NULL), 0);
        CHECK_EQ(coro_queue_put_nowait(&L, &q, &v), 0);
        coro_spawn(&L, &t, qput(&w, "w", &q, 2));
        w.fast = fast;
        coro_loop_run_once(&L);
        CHECK_EQ(coro_queue_get_nowait(&L, &q, &v), 0);
        CHECK_EQ(v, 1);
        coro_task_cancel(&L, &t);
        CHECK_EQ(coro_loop_run_until_complete(&L, &t), CORO_ECANCELED);
        CHECK_EQ(coro_queue_qsize(&q), 0);
        coro_spawn(&L, &t, qput(&w, "w2", &q, 2));
        w.fast = fast;
        CHECK_EQ(coro_loop_run_until_complete(&L, &t), 0);
        CHECK_TRACE("w-cancel w2+2");
        CHECK_EQ(coro_queue_get_nowait(&L, &q, &v), 0);
        CHECK_EQ(v, 2);
        CHECK_EQ(coro_queue_qsize(&q), 0);
        CLOSE_CLEAN(&L);
    }
}

/* CANCEL-SAFETY, putter side, with a second putter: p1's wake-up (from a
 * get) passes to p2 when p1 is cancelled before it runs. */
TEST(cancel_safety_queue_put_woken_then_cancelled_passes_slot)
{
    coro_loop L;
    coro_queue q;
    coro_task t[2];
    struct qw w[2];
    int buf[1], v = 0;
    test_loop(&L);
    CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), 1, 1, NULL), 0);
    CHECK_EQ(coro_queue_put_nowait(&L, &q, &v), 0);
    coro_spawn(&L, &t[0], qput(&w[0], "p1", &q, 1));
    coro_spawn(&L, &t[1], qput(&w[1], "p2", &q, 2));
    coro_loop_run_once(&L);
    CHECK_EQ(coro__fifo_len(&q.putters), 2);
    CHECK_EQ(coro_queue_get_nowait(&L, &q, &v), 0);
    coro_task_cancel(&L, &t[0]);
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("p1-cancel p2+2");
    CHECK_EQ(coro_queue_get_nowait(&L, &q, &v), 0);
    CHECK_EQ(v, 2);
    CHECK_EQ(coro__fifo_len(&q.putters), 0);
    CLOSE_CLEAN(&L);
}

/* T98 test_put_cancelled_race: put_c cancelled while queued: the gets
 * return 'a' then 'b'.
 * Probe: "pa+a | a True b False | pc-cancel | c True | get a | pb+b | get b". */
TEST(T98_queue_put_cancelled_race)
{
    coro_loop L;
    coro_queue q;
    coro_task t[3];
    struct qw w[3];
    int buf[1], v;
    test_loop(&L);
    CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), 1, 1, NULL), 0);
    coro_spawn(&L, &t[0], qput(&w[0], "pa", &q, 'a'));
    coro_spawn(&L, &t[1], qput(&w[1], "pb", &q, 'b'));
    coro_spawn(&L, &t[2], qput(&w[2], "pc", &q, 'X'));
    coro_loop_run_once(&L);
    CHECK(coro_task_done(&t[0]));
    CHECK(!coro_task_done(&t[1]));
    coro_task_cancel(&L, &t[2]);
    coro_loop_run_once(&L);
    CHECK(coro_task_done(&t[2]));
    CHECK_EQ(coro_queue_get_nowait(&L, &q, &v), 0);
    CHECK_EQ(v, 'a');
    coro_loop_run_once(&L);
    CHECK_EQ(coro_queue_get_nowait(&L, &q, &v), 0);
    CHECK_EQ(v, 'b');
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("pa+97 pc-cancel pb+98");
    CLOSE_CLEAN(&L);
}

/* T98 test_cancelled_puts_not_being_held_in_self_putters and
 * test_cancelled_put_silence_value_error_exception. */
TEST(T98_queue_cancelled_putters_removed)
{
    for (int already_woken = 0; already_woken < 2; already_woken++) {
        coro_loop L;
        coro_queue q;
        coro_task t;
        struct qw w;
        int buf[1], v = 1;
        test_loop(&L);
        CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), 1, 1, NULL), 0);
        CHECK_EQ(coro_queue_put_nowait(&L, &q, &v), 0);
        coro_spawn(&L, &t, qput(&w, "p", &q, 1));
        coro_loop_run_once(&L);
        CHECK_EQ(coro__fifo_len(&q.putters), 1);
        if (already_woken) { /* get_nowait() took it off the list */
            CHECK_EQ(coro_queue_get_nowait(&L, &q, &v), 0);
            CHECK_EQ(coro__fifo_len(&q.putters), 0);
        }
        coro_task_cancel(&L, &t);
        CHECK_EQ(coro_loop_run_until_complete(&L, &t), CORO_ECANCELED);
        CHECK(coro_task_cancelled(&t));
        CHECK_TRACE("p-cancel");
        CHECK_EQ(coro__fifo_len(&q.putters), 0);
        CHECK_EQ(coro_queue_qsize(&q), already_woken ? 0 : 1);
        CLOSE_CLEAN(&L);
    }
}

/* test_cancelled_getters_not_being_held_in_self_getters: wait_for(get(),
 * 0.1) on an empty queue: ETIMEDOUT at 100 ms, no getter left. */
struct getwf {
    coro_frame co;
    coro_queue *q;
    coro_task inner;
    struct qw w;
    coro_wait_for wf;
};

static int getwf_fn(coro_ctx *c)
{
    struct getwf *f = CORO_SELF(c, struct getwf);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->inner, qget(&f->w, "inner", f->q));
    CORO_AWAIT(c, coro_wait_for_init(&f->wf, coro_task_future(&f->inner), CORO_MS(100)));
    TRACE("main%s@%ld getters=%u", rcw(c->rc), test_ms(c->loop), coro__fifo_len(&f->q->getters));
    CORO_RETURN(c, 0);
    CORO_END(c);
}

TEST(queue_cancelled_getters_not_held)
{
    coro_loop L;
    coro_queue q;
    coro_task t;
    struct getwf f;
    int buf[5];
    test_loop(&L);
    CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), 5, 5, NULL), 0);
    f.q = &q;
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, getwf_fn)), 0);
    CHECK_TRACE("inner-cancel main-timeout@100 getters=0");
    CLOSE_CLEAN(&L);
}

/* A deadline on get(): ETIMEDOUT at exactly 30 ms; the getter is gone so
 * the put at 100 ms goes to b.
 * Probe: "a-timeout 30 getters 1 | put 100 | b=7 | qsize 0". */
struct putat {
    coro_call k;
    coro_queue *q;
    int v;
};

static void putat_cb(coro_loop *L, void *arg)
{
    struct putat *p = (struct putat *)arg;
    TRACE("put@%ld", test_ms(L));
    CHECK_EQ(coro_queue_put_nowait(L, p->q, &p->v), 0);
}

static void getat_cb(coro_loop *L, void *arg)
{
    struct putat *p = (struct putat *)arg;
    CHECK_EQ(coro_queue_get_nowait(L, p->q, &p->v), 0);
    TRACE("get=%d@%ld", p->v, test_ms(L));
}

TEST(queue_get_timeout_exact_time_getter_gone)
{
    for (int fast = 0; fast < 2; fast++) {
        coro_loop L;
        coro_queue q;
        coro_task ta, tb;
        struct qw a, b;
        struct putat p;
        int buf[4];
        test_loop(&L);
        CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), 4, 0, NULL), 0);
        coro_spawn(&L, &ta, qget(&a, "a", &q));
        a.timeout = CORO_MS(30);
        a.fast = fast;
        a.at = 1;
        coro_spawn(&L, &tb, qget(&b, "b", &q));
        b.at = 1;
        p.q = &q;
        p.v = 7;
        coro_call_at(&L, &p.k, CORO_MS(100), putat_cb, &p);
        CHECK_EQ(coro_loop_run_until_complete(&L, &ta), 0);
        CHECK_EQ(coro__fifo_len(&q.getters), 1);
        CHECK_EQ(drain(&L), 0);
        CHECK_TRACE("a-timeout@30 put@100 b=7@100");
        CHECK_EQ(a.rc, CORO_ETIMEDOUT);
        CHECK_EQ(a.got, 0);
        CHECK_EQ(coro_queue_qsize(&q), 0);
        CLOSE_CLEAN(&L);
    }
}

/* A deadline on put(): ETIMEDOUT at 30 ms, no slot taken; the get at 100 ms
 * lets b put.
 * Probe: "a-timeout 30 putters 1 | get 0 100 | b+2 | get 2 qsize 0". */
TEST(queue_put_timeout_exact_time_putter_gone)
{
    for (int fast = 0; fast < 2; fast++) {
        coro_loop L;
        coro_queue q;
        coro_task ta, tb;
        struct qw a, b;
        struct putat g;
        int buf[1], v = 0;
        test_loop(&L);
        CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), 1, 1, NULL), 0);
        CHECK_EQ(coro_queue_put_nowait(&L, &q, &v), 0);
        coro_spawn(&L, &ta, qput(&a, "a", &q, 1));
        a.timeout = CORO_MS(30);
        a.fast = fast;
        a.at = 1;
        coro_spawn(&L, &tb, qput(&b, "b", &q, 2));
        b.at = 1;
        g.q = &q;
        coro_call_at(&L, &g.k, CORO_MS(100), getat_cb, &g);
        CHECK_EQ(coro_loop_run_until_complete(&L, &ta), 0);
        CHECK_EQ(coro__fifo_len(&q.putters), 1);
        CHECK_EQ(drain(&L), 0);
        CHECK_TRACE("a-timeout@30 get=0@100 b+2@100");
        CHECK_EQ(coro_queue_get_nowait(&L, &q, &v), 0);
        CHECK_EQ(v, 2);
        CHECK_EQ(coro_queue_qsize(&q), 0);
        CLOSE_CLEAN(&L);
    }
}

/* The fast-path macros and the frame forms give the same trace: two
 * producers and two consumers on Queue(2) with pauses.
 * Probe: "p+0@0 | P+10@0 | c=0@0 | C=10@0 | p+1@1 | P+11@1 | c=1@3 |
 *         C=11@3 | p+2@3 | P+12@3 | c=2@6 | C=12@6 | p+3@6 | P+13@6 |
 *         c=3@9 | C=13@9". */
TEST(queue_fast_path_macros_same_trace_as_frames)
{
    char traces[2][sizeof test__trace];
    for (int fast = 0; fast < 2; fast++) {
        coro_loop L;
        coro_queue q;
        coro_task t[4];
        struct qw w[4];
        int buf[2];
        test_loop(&L);
        CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), 2, 2, NULL), 0);
        coro_spawn(&L, &t[0], qput(&w[0], "p", &q, 0));
        coro_spawn(&L, &t[1], qput(&w[1], "P", &q, 10));
        coro_spawn(&L, &t[2], qget(&w[2], "c", &q));
        coro_spawn(&L, &t[3], qget(&w[3], "C", &q));
        for (int i = 0; i < 4; i++) {
            w[i].n = 4;
            w[i].pause = i < 2 ? 1 : 3;
            w[i].at = 1;
            w[i].fast = fast;
        }
        CHECK_EQ(drain(&L), 0);
        memcpy(traces[fast], test__trace, sizeof test__trace);
        CHECK_TRACE("p+0@0 P+10@0 c=0@0 C=10@0 p+1@1 P+11@1 c=1@3 C=11@3 p+2@3 P+12@3 c=2@6 "
                    "C=12@6 p+3@6 P+13@6 c=3@9 C=13@9");
        CHECK_EQ(w[2].sum + w[3].sum, 0 + 1 + 2 + 3 + 10 + 11 + 12 + 13);
        CLOSE_CLEAN(&L);
    }
    CHECK_STR(traces[0], traces[1]);
}

/* T99 test_task_done (Queue, LifoQueue, PriorityQueue): 100 items, two
 * workers calling task_done(); join() returns once all are processed.
 * Probe: "joined 4950 0 | w1 101 | w2 1". */
struct t99w {
    coro_frame co;
    const char *name;
    struct t99 *m;
    coro_queue_op op;
    int item, count;
};

struct t99 {
    coro_frame co;
    coro_queue q;
    int buf[128];
    int kind, running, acc, zero;
    coro_task t[2];
    struct t99w w[2];
    coro_event_op jop;
};

static int t99w_fn(coro_ctx *c)
{
    struct t99w *f = CORO_SELF(c, struct t99w);
    CORO_BEGIN(c);
    while (f->m->running) {
        CORO_AWAIT(c, coro_queue_get(&f->op, &f->m->q, &f->item));
        CORO_CHECK(c);
        f->m->acc += f->item;
        f->count++;
        CHECK_EQ(coro_queue_task_done(c->loop, &f->m->q), 0);
    }
    TRACE("%s:%d", f->name, f->count);
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static int t99_fn(coro_ctx *c)
{
    struct t99 *m = CORO_SELF(c, struct t99);
    CORO_BEGIN(c);
    coro_queue_init(&m->q, m->kind, m->buf, sizeof(int), 128, 0, cmp_int);
    for (int i = 0; i < 100; i++) CHECK_EQ(coro_queue_put_nowait(c->loop, &m->q, &i), 0);
    m->running = 1;
    for (int i = 0; i < 2; i++) {
        m->w[i].name = i ? "w2" : "w1";
        m->w[i].m = m;
        coro_spawn(c->loop, &m->t[i], coro_frame_init(&m->w[i].co, t99w_fn));
    }
    CORO_AWAIT(c, coro_queue_join(&m->jop, &m->q));
    TRACE("joined=%d@%ld", m->acc, test_ms(c->loop));
    m->running = 0;
    for (int i = 0; i < 2; i++) CHECK_EQ(coro_queue_put_nowait(c->loop, &m->q, &m->zero), 0);
    CORO_AWAIT_TASK(c, &m->t[0]);
    CORO_AWAIT_TASK(c, &m->t[1]);
    CORO_RETURN(c, 0);
    CORO_END(c);
}

TEST(T99_queue_task_done_join)
{
    for (int k = 0; k < 3; k++) {
        coro_loop L;
        coro_task t;
        static struct t99 m;
        memset(&m, 0, sizeof m);
        m.kind = k;
        test_loop(&L);
        CHECK_EQ(coro_run(&L, &t, coro_frame_init(&m.co, t99_fn)), 0);
        CHECK_TRACE("joined=4950@0 w1:101 w2:1");
        CLOSE_CLEAN(&L);
    }
}

/* T99 test_task_done_underflow / test_join_empty_queue: join() on a queue
 * with nothing unfinished returns at once (no pass given to others). */
struct joiner {
    coro_frame co;
    coro_queue *q;
    coro_event_op op;
};

static int joiner_fn(coro_ctx *c)
{
    struct joiner *f = CORO_SELF(c, struct joiner);
    CORO_BEGIN(c);
    CORO_AWAIT(c, coro_queue_join(&f->op, f->q));
    CHECK_EQ(c->rc, 0);
    CORO_AWAIT(c, coro_queue_join(&f->op, f->q));
    CHECK_EQ(c->rc, 0);
    TRACE("joined");
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static void trace_cb(coro_loop *L, void *arg)
{
    (void)L;
    TRACE("%s", (const char *)arg);
}

TEST(T99_queue_task_done_underflow_and_join_empty)
{
    for (int k = 0; k < 3; k++) {
        coro_loop L;
        coro_queue q;
        coro_task t;
        coro_call other;
        struct joiner j;
        int buf[2];
        test_loop(&L);
        CHECK_EQ(coro_queue_init(&q, k, buf, sizeof(int), 2, 0, cmp_int), 0);
        CHECK_EQ(coro_queue_task_done(&L, &q), CORO_EINVAL);
        j.q = &q;
        coro_spawn(&L, &t, coro_frame_init(&j.co, joiner_fn));
        coro_call_soon(&L, &other, trace_cb, "other");
        coro_loop_run_once(&L);
        CHECK_TRACE("joined other");
        CHECK(coro_task_done(&t));
        CLOSE_CLEAN(&L);
    }
}

/* T100: the four shutdown tests, for each queue kind. `post` checks that
 * every put / get form fails with ESHUTDOWN after a shutdown. */
struct t100 {
    coro_frame co;
    coro_queue q;
    int buf[4];
    int kind, variant, v, out;
    coro_task gt, jt, pt;
    struct qw g, p;
    struct joiner2 {
        coro_frame co;
        coro_queue *q;
        coro_event_op op;
    } j;
    coro_queue_op op;
};

static int joiner2_fn(coro_ctx *c)
{
    struct joiner2 *f = CORO_SELF(c, struct joiner2);
    CORO_BEGIN(c);
    CORO_AWAIT(c, coro_queue_join(&f->op, f->q));
    TRACE("join%s@%ld", rcw(c->rc), test_ms(c->loop));
    CORO_RETURN(c, 0);
    CORO_END(c);
}

#define T100_ALL_FAIL(c, m)                                                    \
    do {                                                                       \
        CORO_AWAIT(c, coro_queue_put(&(m)->op, &(m)->q, &(m)->v));             \
        CHECK_EQ((c)->rc, CORO_ESHUTDOWN);                                     \
        CORO_QUEUE_PUT(c, &(m)->op, &(m)->q, &(m)->v);                         \
        CHECK_EQ((c)->rc, CORO_ESHUTDOWN);                                     \
        CHECK_EQ(coro_queue_put_nowait((c)->loop, &(m)->q, &(m)->v), CORO_ESHUTDOWN); \
        CORO_AWAIT(c, coro_queue_get(&(m)->op, &(m)->q, &(m)->out));           \
        CHECK_EQ((c)->rc, CORO_ESHUTDOWN);                                     \
        CORO_QUEUE_GET(c, &(m)->op, &(m)->q, &(m)->out);                       \
        CHECK_EQ((c)->rc, CORO_ESHUTDOWN);                                     \
        CHECK_EQ(coro_queue_get_nowait((c)->loop, &(m)->q, &(m)->out), CORO_ESHUTDOWN); \
    } while (0)

static int t100_fn(coro_ctx *c)
{
    struct t100 *m = CORO_SELF(c, struct t100);
    CORO_BEGIN(c);
    m->j.q = &m->q;
    m->v = 'd';
    if (m->variant == 0) { /* test_shutdown_empty */
        coro_queue_init(&m->q, m->kind, m->buf, sizeof(int), 4, 0, cmp_int);
        coro_spawn(c->loop, &m->gt, qget(&m->g, "get", &m->q));
        CORO_YIELD(c);
        coro_queue_shutdown(c->loop, &m->q, 0);
        CHECK_EQ(coro_queue_qsize(&m->q), 0);
        CORO_AWAIT(c, coro_queue_join(&m->j.op, &m->q));
        CHECK_EQ(c->rc, 0);
        CORO_YIELD(c);
        CHECK(coro_task_done(&m->gt));
        CHECK_EQ(m->g.rc, CORO_ESHUTDOWN);
        T100_ALL_FAIL(c, m);
    } else if (m->variant == 1) { /* test_shutdown_nonempty */
        coro_queue_init(&m->q, m->kind, m->buf, sizeof(int), 4, 1, cmp_int);
        CHECK_EQ(coro_queue_put_nowait(c->loop, &m->q, &m->v), 0);
        coro_spawn(c->loop, &m->jt, coro_frame_init(&m->j.co, joiner2_fn));
        coro_spawn(c->loop, &m->pt, qput(&m->p, "put", &m->q, 'e'));
        CORO_YIELD(c);
        CHECK(!coro_task_done(&m->pt));
        coro_queue_shutdown(c->loop, &m->q, 0);
        CHECK_EQ(coro_queue_qsize(&m->q), 1);
        CORO_YIELD(c);
        CHECK(coro_task_done(&m->pt));
        CHECK_EQ(m->p.rc, CORO_ESHUTDOWN);
        CORO_AWAIT(c, coro_queue_get(&m->op, &m->q, &m->out));
        CHECK_EQ(c->rc, 0);
        CHECK_EQ(m->out, 'd');
        CORO_YIELD(c);
        CHECK(!coro_task_done(&m->jt));
        T100_ALL_FAIL(c, m);
        CHECK_EQ(coro_queue_task_done(c->loop, &m->q), 0);
        CORO_YIELD(c);
        CHECK(coro_task_done(&m->jt));
        CHECK_EQ(coro_queue_task_done(c->loop, &m->q), CORO_EINVAL);
    } else if (m->variant == 2) { /* test_shutdown_immediate */
        coro_queue_init(&m->q, m->kind, m->buf, sizeof(int), 4, 0, cmp_int);
        CHECK_EQ(coro_queue_put_nowait(c->loop, &m->q, &m->v), 0);
        coro_spawn(c->loop, &m->jt, coro_frame_init(&m->j.co, joiner2_fn));
        coro_queue_shutdown(c->loop, &m->q, 1);
        CHECK_EQ(coro_queue_qsize(&m->q), 0);
        CORO_YIELD(c);
        CHECK(coro_task_done(&m->jt));
        T100_ALL_FAIL(c, m);
        CHECK_EQ(coro_queue_task_done(c->loop, &m->q), CORO_EINVAL);
    } else { /* test_shutdown_immediate_with_unfinished */
        coro_queue_init(&m->q, m->kind, m->buf, sizeof(int), 4, 0, cmp_int);
        CHECK_EQ(coro_queue_put_nowait(c->loop, &m->q, &m->v), 0);
        CHECK_EQ(coro_queue_put_nowait(c->loop, &m->q, &m->v), 0);
        coro_spawn(c->loop, &m->jt, coro_frame_init(&m->j.co, joiner2_fn));
        CORO_AWAIT(c, coro_queue_get(&m->op, &m->q, &m->out));
        CHECK_EQ(c->rc, 0);
        CHECK_EQ(m->out, 'd');
        coro_queue_shutdown(c->loop, &m->q, 1);
        CHECK_EQ(coro_queue_qsize(&m->q), 0);
        CORO_YIELD(c);
        CHECK(!coro_task_done(&m->jt));
        T100_ALL_FAIL(c, m);
        CHECK_EQ(coro_queue_task_done(c->loop, &m->q), 0);
        CHECK_EQ(coro_queue_task_done(c->loop, &m->q), CORO_EINVAL);
        CORO_YIELD(c);
        CHECK(coro_task_done(&m->jt));
    }
    TRACE("main");
    CORO_RETURN(c, 0);
    CORO_END(c);
}

TEST(T100_queue_shutdown)
{
    static const char *want[4] = {
        "get-shutdown main",
        "put-shutdown join@0 main",
        "join@0 main",
        "join@0 main",
    };
    for (int k = 0; k < 3; k++)
        for (int variant = 0; variant < 4; variant++) {
            coro_loop L;
            coro_task t;
            static struct t100 m;
            memset(&m, 0, sizeof m);
            m.kind = k;
            m.variant = variant;
            test_loop(&L);
            CHECK_EQ(coro_run(&L, &t, coro_frame_init(&m.co, t100_fn)), 0);
            if (strcmp(test__trace, want[variant]) != 0)
                test__fail(__FILE__, __LINE__, "%s variant %d: \"%s\" != \"%s\"", kname[k],
                           variant, test__trace, want[variant]);
            test__trace[0] = 0;
            CLOSE_CLEAN(&L);
        }
}

/* R-Q-6: shutdown wakes every blocked putter, and they all fail (even one
 * that finds room); gets drain the rest, then fail.
 * Probe (Queue(1): p1 puts at once, p2 and p3 block, then shutdown()):
 *   "p1+1 | p2-shutdown | p3-shutdown | qsize 1 get 1 | g-shutdown". */
TEST(R_Q_6_shutdown_wakes_putters_and_getters)
{
    coro_loop L;
    coro_queue q;
    coro_task t[4];
    struct qw w[4];
    int buf[1], v;
    test_loop(&L);
    CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), 1, 1, NULL), 0);
    coro_spawn(&L, &t[0], qput(&w[0], "p1", &q, 1));
    coro_spawn(&L, &t[1], qput(&w[1], "p2", &q, 2));
    coro_spawn(&L, &t[2], qput(&w[2], "p3", &q, 3));
    coro_loop_run_once(&L);
    coro_queue_shutdown(&L, &q, 0);
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("p1+1 p2-shutdown p3-shutdown");
    CHECK_EQ(coro_queue_qsize(&q), 1);
    CHECK_EQ(coro__fifo_len(&q.putters), 0);
    CHECK_EQ(coro_queue_get_nowait(&L, &q, &v), 0);
    CHECK_EQ(v, 1);
    coro_spawn(&L, &t[3], qget(&w[3], "g", &q));
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("g-shutdown");
    CLOSE_CLEAN(&L);
}

/* R-Q-6: a getter woken by a put before the shutdown still gets its item;
 * the other getter wakes and fails.
 * Probe: "g1=1 | g2-shutdown". */
TEST(R_Q_6_shutdown_after_put_woken_getter_keeps_item)
{
    coro_loop L;
    coro_queue q;
    coro_task t[2];
    struct qw w[2];
    int buf[2], one = 1;
    test_loop(&L);
    CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), 2, 0, NULL), 0);
    coro_spawn(&L, &t[0], qget(&w[0], "g1", &q));
    coro_spawn(&L, &t[1], qget(&w[1], "g2", &q));
    coro_loop_run_once(&L);
    CHECK_EQ(coro_queue_put_nowait(&L, &q, &one), 0);
    coro_queue_shutdown(&L, &q, 0);
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("g1=1 g2-shutdown");
    CHECK_EQ(coro__fifo_len(&q.getters), 0);
    CLOSE_CLEAN(&L);
}

/* A cancellation delivered to a getter woken by shutdown: it is cancelled,
 * not ESHUTDOWN, and leaves nothing behind. */
TEST(queue_shutdown_woken_getter_cancelled)
{
    coro_loop L;
    coro_queue q;
    coro_task t;
    struct qw w;
    int buf[2];
    test_loop(&L);
    CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), 2, 0, NULL), 0);
    coro_spawn(&L, &t, qget(&w, "g", &q));
    coro_loop_run_once(&L);
    coro_queue_shutdown(&L, &q, 0);
    coro_task_cancel(&L, &t);
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("g-cancel");
    CHECK(coro_task_cancelled(&t));
    CLOSE_CLEAN(&L);
}

/* A get() deadline expiring in the pass where a put woke that getter (the
 * put callback armed first, at the same time): the woken-then-cancelled
 * getter takes nothing and passes the wake-up; b gets the item.
 * Probe (call_at(30, put_nowait(7)); timeout_at(30) around get):
 *   "put 30 | a-timeout 30 | b 7 30 | qsize 0". */
TEST(queue_get_deadline_expiring_while_woken_passes_item_on)
{
    for (int fast = 0; fast < 2; fast++) {
        coro_loop L;
        coro_queue q;
        coro_task ta, tb;
        struct qw a, b;
        struct putat p;
        int buf[2];
        test_loop(&L);
        CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), 2, 0, NULL), 0);
        p.q = &q;
        p.v = 7;
        coro_call_at(&L, &p.k, CORO_MS(30), putat_cb, &p);
        coro_spawn(&L, &ta, qget(&a, "a", &q));
        a.timeout = CORO_MS(30);
        a.fast = fast;
        a.at = 1;
        coro_spawn(&L, &tb, qget(&b, "b", &q));
        b.at = 1;
        CHECK_EQ(drain(&L), 0);
        CHECK_TRACE("put@30 a-timeout@30 b=7@30");
        CHECK_EQ(a.got, 0);
        CHECK_EQ(coro_queue_qsize(&q), 0);
        CLOSE_CLEAN(&L);
    }
}

/* The rest of asyncio's BarrierTests (T91/T92 family), N = 5: resets and
 * aborts while parties drain or block, parties waiting again. One script,
 * one variant per test; each trace is the probe's (see each test). */
struct bvctx {
    coro_barrier b, b2;
    int variant, count, rewait_n;
};

struct bv {
    coro_frame co;
    const char *name;
    struct bvctx *m;
    coro_barrier_op op;
    int i;
};

enum {
    BV_HALF_DRAINING,
    BV_HALF_DRAINING_HALF_BLOCKING,
    BV_WHILE_DRAINING,
    BV_ABORT_HALF,
    BV_BLOCKING_WHILE_DRAINING,
    BV_WAIT_TWICE
};

#define BV_WAIT(c, f, bar) CORO_AWAIT(c, coro_barrier_wait(&(f)->op, bar))

static int bv_fn(coro_ctx *c)
{
    struct bv *f = CORO_SELF(c, struct bv);
    struct bvctx *m = f->m;
    CORO_BEGIN(c);
    BV_WAIT(c, f, &m->b);
    f->i = c->rc;
    if (m->variant == BV_HALF_DRAINING) {
        if (f->i < 0) {
            TRACE("%s%s", f->name, rcw(f->i));
        } else {
            TRACE("%s=%d", f->name, f->i);
            if ((int)m->b.count == 5 / 2) { /* rest_of_tasks == barrier._count */
                TRACE("%s-reset", f->name);
                CORO_AWAIT(c, coro_barrier_reset(&f->op, &m->b));
            }
        }
    } else if (m->variant == BV_HALF_DRAINING_HALF_BLOCKING) {
        if (f->i < 0) {
            TRACE("%s%s", f->name, rcw(f->i));
            BV_WAIT(c, f, &m->b);
            TRACE("%sb=%d", f->name, c->rc);
        } else {
            TRACE("%s=%d", f->name, f->i);
            if (++m->count > 5 / 2) {
                TRACE("%s-reset", f->name);
                CORO_AWAIT(c, coro_barrier_reset(&f->op, &m->b));
                BV_WAIT(c, f, &m->b);
                TRACE("%sr=%d", f->name, c->rc);
            } else {
                BV_WAIT(c, f, &m->b);
                if (c->rc < 0)
                    TRACE("%s-broken2", f->name);
                else
                    TRACE("%sw=%d", f->name, c->rc);
            }
        }
    } else if (m->variant == BV_WHILE_DRAINING) {
        TRACE("%sa=%d", f->name, f->i);
        if (++m->count == 5) {
            TRACE("%s-reset", f->name);
            CORO_AWAIT(c, coro_barrier_reset(&f->op, &m->b));
        }
        BV_WAIT(c, f, &m->b);
        if (c->rc < 0)
            TRACE("%s-exc", f->name);
        else
            TRACE("%sb=%d", f->name, c->rc);
        BV_WAIT(c, f, &m->b);
        TRACE("%sc=%d", f->name, c->rc);
    } else if (m->variant == BV_ABORT_HALF) {
        if (f->i < 0) {
            TRACE("%s%s", f->name, rcw(f->i));
        } else {
            TRACE("%s=%d", f->name, f->i);
            if (++m->count > 5 / 2) {
                TRACE("%s-abort", f->name);
                CORO_AWAIT(c, coro_barrier_abort(&f->op, &m->b));
            } else {
                BV_WAIT(c, f, &m->b);
                if (c->rc < 0) TRACE("%s-broken2", f->name);
            }
        }
    } else if (m->variant == BV_BLOCKING_WHILE_DRAINING) {
        TRACE("%sa=%d", f->name, f->i);
        if (m->rewait_n > 0) {
            m->rewait_n--;
        } else {
            BV_WAIT(c, f, &m->b2);
            TRACE("%sx=%d", f->name, c->rc);
        }
        BV_WAIT(c, f, &m->b);
        TRACE("%sb=%d", f->name, c->rc);
    } else { /* BV_WAIT_TWICE */
        TRACE("%sa=%d", f->name, f->i);
        BV_WAIT(c, f, &m->b);
        TRACE("%sb=%d", f->name, c->rc);
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static void bv_run(int variant, const char *want, int broken)
{
    coro_loop L;
    struct bvctx m;
    coro_task t[5];
    struct bv f[5];
    memset(&m, 0, sizeof m);
    m.variant = variant;
    m.rewait_n = 2;
    test_loop(&L);
    CHECK_EQ(coro_barrier_init(&m.b, 5), 0);
    CHECK_EQ(coro_barrier_init(&m.b2, 5 - 2), 0);
    for (int i = 0; i < 5; i++) {
        f[i].name = tnames[i];
        f[i].m = &m;
        coro_spawn(&L, &t[i], coro_frame_init(&f[i].co, bv_fn));
    }
    CHECK_EQ(drain(&L), 0);
    if (strcmp(test__trace, want) != 0)
        test__fail(__FILE__, __LINE__, "variant %d: \"%s\" != \"%s\"", variant, test__trace, want);
    test__trace[0] = 0;
    CHECK_EQ(coro_barrier_n_waiting(&m.b), 0);
    CHECK_EQ(coro_barrier_broken(&m.b), broken);
    if (!broken) CHECK_STR(bstate(&m.b), "filling");
    CLOSE_CLEAN(&L);
}

/* test_reset_barrier_when_tasks_half_draining: the parties still draining
 * when t1 resets get EBROKEN although the barrier tripped.
 * Probe: "t4=4 | t0=0 | t1=1 | t1-reset | t2-broken | t3-broken |
 *         n 0 filling False". */
TEST(T92_barrier_reset_when_tasks_half_draining)
{
    bv_run(BV_HALF_DRAINING, "t4=4 t0=0 t1=1 t1-reset t2-broken t3-broken", 0);
}

/* test_reset_barrier_when_tasks_half_draining_half_blocking.
 * Probe: "t4=4 | t0=0 | t1=1 | t1-reset | t2-broken | t3-broken | t2b=4 |
 *         t3b=0 | t4w=1 | t0w=2 | t1r=3 | n 0 filling False". */
TEST(T92_barrier_reset_half_draining_half_blocking)
{
    bv_run(BV_HALF_DRAINING_HALF_BLOCKING,
           "t4=4 t0=0 t1=1 t1-reset t2-broken t3-broken t2b=4 t3b=0 t4w=1 t0w=2 t1r=3", 0);
}

/* test_reset_barrier_while_tasks_draining: the last to leave resets an
 * already-filling barrier; nobody is broken.
 * Probe: "t4a=4 | t0a=0 | t1a=1 | t2a=2 | t3a=3 | t3-reset | t2b=4 | t3b=0 |
 *         t4b=1 | t0b=2 | t1b=3 | t0c=4 | t1c=0 | t2c=1 | t3c=2 | t4c=3". */
TEST(T92_barrier_reset_while_tasks_draining)
{
    bv_run(BV_WHILE_DRAINING,
           "t4a=4 t0a=0 t1a=1 t2a=2 t3a=3 t3-reset t2b=4 t3b=0 t4b=1 t0b=2 t1b=3 t0c=4 t1c=0 "
           "t2c=1 t3c=2 t4c=3",
           0);
}

/* test_abort_barrier_when_tasks_half_draining_half_blocking.
 * Probe: "t4=4 | t0=0 | t1=1 | t1-abort | t2-broken | t3-broken |
 *         t4-broken2 | t0-broken2 | n 0 True". */
TEST(T92_barrier_abort_half_draining_half_blocking)
{
    bv_run(BV_ABORT_HALF, "t4=4 t0=0 t1=1 t1-abort t2-broken t3-broken t4-broken2 t0-broken2", 1);
}

/* test_blocking_tasks_while_draining (R-BAR-1), as written in CPython.
 * Probe: "t4a=4 | t0a=0 | t1a=1 | t2a=2 | t3a=3 | t3x=2 | t1x=0 | t2x=1 |
 *         t2b=4 | t3b=0 | t4b=1 | t0b=2 | t1b=3". */
TEST(T91_barrier_blocking_tasks_while_draining)
{
    bv_run(BV_BLOCKING_WHILE_DRAINING,
           "t4a=4 t0a=0 t1a=1 t2a=2 t3a=3 t3x=2 t1x=0 t2x=1 t2b=4 t3b=0 t4b=1 t0b=2 t1b=3", 0);
}

/* test_filling_tasks_wait_twice.
 * Probe: "t4a=4 | t0a=0 | t1a=1 | t2a=2 | t3a=3 | t2b=4 | t3b=0 | t4b=1 |
 *         t0b=2 | t1b=3". */
TEST(T91_barrier_filling_tasks_wait_twice)
{
    bv_run(BV_WAIT_TWICE, "t4a=4 t0a=0 t1a=1 t2a=2 t3a=3 t2b=4 t3b=0 t4b=1 t0b=2 t1b=3", 0);
}

/* test_reset_barrier_while_tasks_waiting_and_waiting_again: N-1 parties
 * broken by a reset wait again (in their `finally`) and complete the next
 * round with a fifth party.
 * Probe: "t0-broken | t1-broken | t2-broken | t3-broken | t2=4 | t3=0 |
 *         c2=1 | t0=2 | t1=3 | n 0 False". */
struct again {
    coro_frame co;
    const char *name;
    coro_barrier *b;
    coro_barrier_op op;
};

static int again_fn(coro_ctx *c)
{
    struct again *f = CORO_SELF(c, struct again);
    CORO_BEGIN(c);
    CORO_AWAIT(c, coro_barrier_wait(&f->op, f->b));
    if (c->rc < 0) TRACE("%s%s", f->name, rcw(c->rc));
    CORO_AWAIT(c, coro_barrier_wait(&f->op, f->b));
    TRACE("%s=%d", f->name, c->rc);
    CORO_RETURN(c, 0);
    CORO_END(c);
}

TEST(T92_barrier_reset_while_waiting_and_waiting_again)
{
    coro_loop L;
    coro_barrier b;
    coro_task t[4], tr, tc;
    struct again f[4];
    struct barctl ctl;
    struct barw c2;
    test_loop(&L);
    CHECK_EQ(coro_barrier_init(&b, 5), 0);
    for (int i = 0; i < 4; i++) {
        f[i].name = tnames[i];
        f[i].b = &b;
        coro_spawn(&L, &t[i], coro_frame_init(&f[i].co, again_fn));
    }
    coro_spawn(&L, &tr, barctl(&ctl, &b, 1));
    coro_loop_run_once(&L);
    coro_spawn(&L, &tc, barw(&c2, "c2", &b));
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("reset:resetting t0-broken t1-broken t2-broken t3-broken t2=4 t3=0 c2=1 t0=2 t1=3");
    CHECK(!coro_barrier_broken(&b));
    CHECK_EQ(coro_barrier_n_waiting(&b), 0);
    CLOSE_CLEAN(&L);
}

/* test_why_are_getters_waiting: producer and consumer of 5 items on
 * Queue(1), both blocking; alternate strictly, nobody is left waiting.
 * Probe: "p+0 | c=0 | p+1 | c=1 | p+2 | c=2 | p+3 | c=3 | p+4 | c=4". */
TEST(T96_queue_why_are_getters_waiting)
{
    for (int fast = 0; fast < 2; fast++) {
        coro_loop L;
        coro_queue q;
        coro_task tp, tc;
        struct qw p, cw;
        int buf[1];
        test_loop(&L);
        CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), 1, 1, NULL), 0);
        coro_spawn(&L, &tp, qput(&p, "p", &q, 0));
        coro_spawn(&L, &tc, qget(&cw, "c", &q));
        p.n = cw.n = 5;
        p.fast = cw.fast = fast;
        CHECK_EQ(drain(&L), 0);
        CHECK_TRACE("p+0 c=0 p+1 c=1 p+2 c=2 p+3 c=3 p+4 c=4");
        CHECK(coro__fifo_empty(&q.getters) && coro__fifo_empty(&q.putters));
        CLOSE_CLEAN(&L);
    }
}

/* test_why_are_putters_waiting: a getter that yields once then takes what
 * is there with get_nowait(); four putters on Queue(2).
 * Probe: "p+0 | p+1 | g=0 | g=1 | p+2 | p+3 | qsize 2". */
struct nowaitget {
    coro_frame co;
    coro_queue *q;
    int n, v;
};

static int nowaitget_fn(coro_ctx *c)
{
    struct nowaitget *f = CORO_SELF(c, struct nowaitget);
    CORO_BEGIN(c);
    CORO_YIELD(c);
    for (f->n = (int)coro_queue_qsize(f->q); f->n > 0; f->n--) {
        CHECK_EQ(coro_queue_get_nowait(c->loop, f->q, &f->v), 0);
        TRACE("g=%d", f->v);
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

TEST(T98_queue_why_are_putters_waiting)
{
    coro_loop L;
    coro_queue q;
    coro_task tg, tp[4];
    struct nowaitget g;
    struct qw p[4];
    static const char *pn[4] = {"p", "p", "p", "p"};
    int buf[2];
    test_loop(&L);
    CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), 2, 2, NULL), 0);
    g.q = &q;
    coro_spawn(&L, &tg, coro_frame_init(&g.co, nowaitget_fn));
    for (int i = 0; i < 4; i++) coro_spawn(&L, &tp[i], qput(&p[i], pn[i], &q, i));
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("p+0 p+1 g=0 g=1 p+2 p+3");
    CHECK_EQ(coro_queue_qsize(&q), 2);
    CLOSE_CLEAN(&L);
}

/* test_blocking_get_wait / test_blocking_put_wait: a put (get) 10 ms later
 * unblocks the waiter at exactly 10 ms.
 * Probe: "got 1 10" and "put1 0 | put2 10 | done 10 1". */
static void put1_cb(coro_loop *L, void *arg)
{
    int one = 1;
    CHECK_EQ(coro_queue_put_nowait(L, (coro_queue *)arg, &one), 0);
}

static void get_cb(coro_loop *L, void *arg)
{
    CHECK_EQ(coro_queue_get_nowait(L, (coro_queue *)arg, NULL), 0);
}

TEST(T96_queue_blocking_get_and_put_wait)
{
    coro_loop L;
    coro_queue q;
    coro_task t;
    coro_call k;
    struct qw w;
    int buf[1];
    test_loop(&L);
    CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), 1, 0, NULL), 0);
    coro_spawn(&L, &t, qget(&w, "got", &q));
    w.at = 1;
    coro_call_later(&L, &k, CORO_MS(10), put1_cb, &q);
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), 0);
    CHECK_TRACE("got=1@10");
    CHECK_EQ(coro_queue_init(&q, CORO_FIFO, buf, sizeof(int), 1, 1, NULL), 0);
    coro_call_later(&L, &k, CORO_MS(10), get_cb, &q);
    coro_spawn(&L, &t, qput(&w, "put", &q, 1));
    w.n = 2;
    w.at = 1;
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), 0);
    CHECK_TRACE("put+1@10 put+2@20");
    CHECK_EQ(coro_queue_qsize(&q), 1);
    CLOSE_CLEAN(&L);
}

/* PriorityQueue pops items whose keys compare equal in heapq's order
 * (heappop: the last item goes to the root, sifts to a leaf taking the
 * right child on ties, then back up), so a cmp on the priority alone gives
 * the same order as a Python item class whose __lt__ compares the priority.
 * Probe (heapq on objects ordered by priority only, tag = push index):
 *   equal5 [0, 2, 4, 1, 3]; mixed [2,1,2,1,2,1,3,1] -> [1, 5, 3, 7, 2, 0, 4, 6];
 *   interleaved push a b c(0) pop push d e pop pop push f(0) pop pop pop ->
 *   ['c', 'b', 'd', 'f', 'e', 'a']. */
struct tagged {
    int pri, tag;
};

static int cmp_pri(const void *a, const void *b)
{
    return cmp_int(&((const struct tagged *)a)->pri, &((const struct tagged *)b)->pri);
}

static void prio_order(const int *pri, int n, const char *want)
{
    coro_loop L;
    coro_queue q;
    struct tagged buf[16], x;
    char got[128] = "";
    test_loop(&L);
    CHECK_EQ(coro_queue_init(&q, CORO_PRIO, buf, sizeof x, 16, 0, cmp_pri), 0);
    for (int i = 0; i < n; i++) {
        x.pri = pri[i];
        x.tag = i;
        CHECK_EQ(coro_queue_put_nowait(&L, &q, &x), 0);
    }
    for (int i = 0; i < n; i++) {
        CHECK_EQ(coro_queue_get_nowait(&L, &q, &x), 0);
        snprintf(got + strlen(got), sizeof got - strlen(got), "%s%d", i ? " " : "", x.tag);
    }
    /* Regression: coro__heap_down was a textbook sift-down (left child on
     * ties, stopping early), which gave "0 4 3 2 1" for equal5. */
    CHECK_STR(got, want);
    CLOSE_CLEAN(&L);
}

TEST(T93_queue_prio_equal_keys_in_heapq_order)
{
    static const int equal5[5] = {1, 1, 1, 1, 1};
    static const int mixed[8] = {2, 1, 2, 1, 2, 1, 3, 1};
    prio_order(equal5, 5, "0 2 4 1 3");
    prio_order(mixed, 8, "1 5 3 7 2 0 4 6");
    /* interleaved pushes and pops */
    coro_loop L;
    coro_queue q;
    struct tagged buf[8], x;
    static const struct tagged seq[12] = {{1, 'a'}, {1, 'b'}, {0, 'c'}, {-1, 0}, {1, 'd'}, {1, 'e'},
                                          {-1, 0},  {-1, 0},  {0, 'f'}, {-1, 0}, {-1, 0}, {-1, 0}};
    test_loop(&L);
    CHECK_EQ(coro_queue_init(&q, CORO_PRIO, buf, sizeof x, 8, 0, cmp_pri), 0);
    for (int i = 0; i < 12; i++) {
        if (seq[i].pri >= 0) {
            CHECK_EQ(coro_queue_put_nowait(&L, &q, &seq[i]), 0);
        } else {
            CHECK_EQ(coro_queue_get_nowait(&L, &q, &x), 0);
            TRACE("%c", x.tag);
        }
    }
    CHECK_TRACE("c b d f e a");
    CLOSE_CLEAN(&L);
}
