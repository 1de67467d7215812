/* test_gather.c - asyncio.gather: R-GATH-1..5, T42-T49.
 *
 * Orderings were checked against CPython 3.13.0 on a virtual-time loop
 * (/work/main/test/conformance/ref.py's VirtualLoop: integer ms, timers with
 * equal deadlines fire first-armed-first). The Python probes are quoted
 * above the tests whose ordering is subtle.
 * Not expressible (API gap): cancel messages (T48's CancelledError carrying
 * the message of qwe.cancel(msg), R-GATH-3's CancelledError(msg) slots):
 * coro_task_cancel takes no message. Coroutine arguments (wrapped in tasks
 * by asyncio) are spawned as tasks by the tests. */
#include "test.h"

/* ---------------------------------------------------------------------- */
/* helpers                                                                 */
/* ---------------------------------------------------------------------- */

/* A readable name for an rc in traces: "E<n>" for user errors. */
static const char *rcs(int rc)
{
    static char buf[8][16];
    static int next;
    char *b = buf[next++ & 7];
    if (rc == CORO_ECANCELED) return "ECANCELED";
    if (rc == CORO_ETIMEDOUT) return "ETIMEDOUT";
    if (rc == CORO_EINVAL) return "EINVAL";
    if (coro_is_user_error(rc))
        snprintf(b, 16, "E%d", -rc - CORO_EUSER_BASE);
    else
        snprintf(b, 16, "%d", rc);
    return b;
}

/* Sleeps `ms`, then traces "<name>@<ms>" and returns `ret` (< 0: fails with
 * it). When the sleep is cancelled it traces "<name>:x@<ms>" and returns
 * `on_cancel` (CORO_ECANCELED: propagate; a value: swallow). */
struct sleeper {
    coro_frame co;
    const char *name;
    int ms, ret, on_cancel;
};

static int sleeper_fn(coro_ctx *c)
{
    struct sleeper *s = CORO_SELF(c, struct sleeper);
    CORO_BEGIN(c);
    CORO_SLEEP(c, CORO_MS(s->ms));
    if (c->rc < 0) {
        TRACE("%s:x@%ld", s->name, test_ms(c->loop));
        CORO_RETURN(c, s->on_cancel);
    }
    TRACE("%s@%ld", s->name, test_ms(c->loop));
    CORO_RETURN(c, s->ret);
    CORO_END(c);
}

static coro_frame *sleeper(struct sleeper *s, const char *name, int ms, int ret)
{
    memset(s, 0, sizeof *s);
    s->name = name;
    s->ms = ms;
    s->ret = ret;
    s->on_cancel = CORO_ECANCELED;
    return coro_frame_init(&s->co, sleeper_fn);
}

/* A sleeper that swallows its cancellation and returns `ret` anyway. */
static coro_frame *swallower(struct sleeper *s, const char *name, int ms, int ret)
{
    sleeper(s, name, ms, ret);
    s->on_cancel = ret;
    return &s->co;
}

/* Awaits the future f; on success bumps *proof (if set) and returns f's
 * value; on failure traces "<name>:x@<ms>" and fails with it. */
struct fwait {
    coro_frame co;
    const char *name;
    coro_future *f;
    int *proof;
};

static int fwait_fn(coro_ctx *c)
{
    struct fwait *w = CORO_SELF(c, struct fwait);
    CORO_BEGIN(c);
    CORO_AWAIT_FUTURE(c, w->f);
    if (c->rc < 0) {
        TRACE("%s:x@%ld", w->name, test_ms(c->loop));
        CORO_FAIL(c, c->rc);
    }
    if (w->proof) (*w->proof)++;
    CORO_RETURN(c, (int)coro_future_value(w->f));
    CORO_END(c);
}

static coro_frame *fwait(struct fwait *w, const char *name, coro_future *f, int *proof)
{
    memset(w, 0, sizeof *w);
    w->name = name;
    w->f = f;
    w->proof = proof;
    return coro_frame_init(&w->co, fwait_fn);
}

/* Sleeps `ms`, then traces "tick0".."tick<n-1>", one CORO_YIELD apart: it
 * counts loop iterations next to the code under test. */
struct ticker {
    coro_frame co;
    int ms, n, i;
};

static int ticker_fn(coro_ctx *c)
{
    struct ticker *t = CORO_SELF(c, struct ticker);
    CORO_BEGIN(c);
    CORO_SLEEP(c, CORO_MS(t->ms));
    for (t->i = 0; t->i < t->n; t->i++) {
        TRACE("tick%d", t->i);
        if (t->i + 1 < t->n) CORO_YIELD(c);
    }
    CORO_END(c);
}

static coro_frame *ticker(struct ticker *t, int ms, int n)
{
    memset(t, 0, sizeof *t);
    t->ms = ms;
    t->n = n;
    return coro_frame_init(&t->co, ticker_fn);
}

static void count_cb(coro_loop *L, void *arg)
{
    (void)L;
    (*(int *)arg)++;
}

static void cancel_task_cb(coro_loop *L, void *arg)
{
    coro_task_cancel(L, (coro_task *)arg);
}

/* gather's outer future refuses or accepts a cancel (asyncio's
 * _GatheringFuture.cancel): the record's waitable hook is that method. */
static int gather_cancel(coro_loop *L, coro_gather *g)
{
    return g->outer.cancel(L, &g->outer);
}

/* ---------------------------------------------------------------------- */
/* T43: results in argument order                                          */
/* ---------------------------------------------------------------------- */

/* T43 (FutureGatherTests.test_success): futures a, b, c; b=1 then a=2; one
 * iteration later the gather is still pending; c=3 completes it on the next
 * iteration, its done-callback runs one iteration after that, once. */
TEST(T43_gather_futures_done_after_last_child_callback_fires_once)
{
    coro_loop L;
    coro_future a, b, c;
    coro_future *futs[3] = {&a, &b, &c};
    coro_gather g;
    coro_gather_item items[3];
    coro_call k;
    int calls = 0;
    test_loop(&L);
    coro_future_init(&a);
    coro_future_init(&b);
    coro_future_init(&c);
    coro_gather_start(&L, &g, items, futs, 3, 0);
    coro_future_add_done_callback(&L, &g.outer.fut, &k, count_cb, &calls);
    CHECK(!coro_future_done(&g.outer.fut));
    CHECK_EQ(coro_future_set_result(&L, &b, 1), 0);
    CHECK_EQ(coro_future_set_result(&L, &a, 2), 0);
    CHECK(!coro_future_done(&g.outer.fut)); /* callbacks are not inline */
    CHECK_EQ(coro_loop_run_once(&L), 0);
    CHECK(!coro_future_done(&g.outer.fut));
    CHECK_EQ(coro_gather_result(&g, 2), CORO_EAGAIN);
    CHECK_EQ(coro_future_set_result(&L, &c, 3), 0);
    CHECK_EQ(coro_loop_run_once(&L), 0);
    CHECK_EQ(coro_future_state(&g.outer.fut), CORO_FUTURE_RESULT);
    CHECK_EQ(calls, 0); /* the gather's own callbacks: next iteration */
    CHECK_EQ(coro_loop_run_once(&L), 0);
    CHECK_EQ(calls, 1);
    /* argument order: [2, 1, 3] */
    for (int i = 0; i < 3; i++) CHECK_EQ(coro_gather_result(&g, (unsigned)i), 0);
    CHECK_EQ(coro_future_value(g.items[0].fut), 2);
    CHECK_EQ(coro_future_value(g.items[1].fut), 1);
    CHECK_EQ(coro_future_value(g.items[2].fut), 3);
    CHECK_EQ(calls, 1);
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

/* T43 with tasks awaited by a task: results come back in argument order
 * whatever the completion order, and the awaiter resumes exactly two
 * iterations after the last child finished (child done -> gather callback
 * -> awaiter's wake-up).
 *
 *   async def main():
 *       a = create_task(s('a',30,1)); b = create_task(s('b',10,2))
 *       c = create_task(s('c',20,3)); create_task(ticker(30, 3))
 *       r = await gather(a, b, c); T('main', r, now())
 *   -> b@10 c@20 a@30 tick0 tick1 main [1, 2, 3] 30 tick2
 */
struct t43 {
    coro_frame co;
    struct sleeper s[3];
    struct ticker tk;
    coro_task t[3], tt;
    coro_future *futs[3];
    coro_gather g;
    coro_gather_item items[3];
};

static int t43_fn(coro_ctx *c)
{
    struct t43 *f = CORO_SELF(c, struct t43);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->t[0], sleeper(&f->s[0], "a", 30, 1));
    coro_spawn(c->loop, &f->t[1], sleeper(&f->s[1], "b", 10, 2));
    coro_spawn(c->loop, &f->t[2], sleeper(&f->s[2], "c", 20, 3));
    coro_spawn(c->loop, &f->tt, ticker(&f->tk, 30, 3));
    for (int i = 0; i < 3; i++) f->futs[i] = coro_task_future(&f->t[i]);
    coro_gather_start(c->loop, &f->g, f->items, f->futs, 3, 0);
    CORO_AWAIT_GATHER(c, &f->g);
    TRACE("main=%s@%ld", rcs(c->rc), test_ms(c->loop));
    CORO_RETURN(c, coro_gather_result(&f->g, 0) * 100 +
                       coro_gather_result(&f->g, 1) * 10 +
                       coro_gather_result(&f->g, 2));
    CORO_END(c);
}

TEST(T43_gather_tasks_results_in_argument_order_exact_iterations)
{
    coro_loop L;
    coro_task t;
    struct t43 f;
    memset(&f, 0, sizeof f);
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, t43_fn)), 123);
    CHECK_TRACE("b@10 c@20 a@30 tick0 tick1 main=0@30 tick2");
    CHECK_EQ(test_ms(&L), 30);
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

/* ---------------------------------------------------------------------- */
/* T44: the first error completes the gather, the others keep running      */
/* ---------------------------------------------------------------------- */

/* T44 (GatherTestsBase.test_one_exception): five futures; a=1, b fails; the
 * gather is done with b's error after one iteration; later completions of
 * c (result), d (cancel), e (error) change nothing. */
TEST(T44_gather_futures_first_error_wins_later_ones_ignored)
{
    coro_loop L;
    coro_future fs[5];
    coro_future *futs[5];
    coro_gather g;
    coro_gather_item items[5];
    coro_call k;
    int calls = 0;
    test_loop(&L);
    for (int i = 0; i < 5; i++) {
        coro_future_init(&fs[i]);
        futs[i] = &fs[i];
    }
    coro_gather_start(&L, &g, items, futs, 5, 0);
    coro_future_add_done_callback(&L, &g.outer.fut, &k, count_cb, &calls);
    coro_future_set_result(&L, &fs[0], 1);
    coro_future_set_error(&L, &fs[1], CORO_EUSER(1));
    CHECK_EQ(coro_loop_run_once(&L), 0);
    CHECK_EQ(coro_future_state(&g.outer.fut), CORO_FUTURE_ERROR);
    CHECK_EQ(coro_future_rc(&g.outer.fut), CORO_EUSER(1));
    CHECK_EQ(coro_loop_run_once(&L), 0);
    CHECK_EQ(calls, 1);
    /* does nothing (whether the gather still has hooks on them to run is
     * not observable: coro unhooks at once, asyncio's run as no-ops) */
    coro_future_set_result(&L, &fs[2], 3);
    CHECK_EQ(coro_future_cancel(&L, &fs[3]), 1);
    coro_future_set_error(&L, &fs[4], CORO_EUSER(2));
    coro_loop_run_once(&L);
    CHECK_EQ(coro_future_state(&g.outer.fut), CORO_FUTURE_ERROR);
    CHECK_EQ(coro_future_rc(&g.outer.fut), CORO_EUSER(1));
    CHECK_EQ(calls, 1);
    CHECK_EQ(gather_cancel(&L, &g), 0); /* R-GATH-5: done, refuses */
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

/* T44 / R-GATH-2 / R-GATH-5 with tasks: the awaiter gets the first error
 * at once; the siblings are not cancelled and run to the end; cancelling
 * the (done) gather afterwards is refused and reaches no child; a later
 * sibling's error is marked retrieved by the gather (nothing reported).
 *
 *   a = s('a',10,E1); b = s('b',20,2); c = s('c',30,E2)
 *   try: await gather(a,b,c)  except E1: T('main=E1', now())
 *   T(g.cancel(), b.cancelling()); T(await b); await sleep(20)
 *   -> a@10 main=E1@10 False 0 b@20 2 c@30, no "never retrieved" log
 */
struct t44 {
    coro_frame co;
    struct sleeper s[3];
    coro_task t[3];
    coro_future *futs[3];
    coro_gather g;
    coro_gather_item items[3];
};

static int t44_fn(coro_ctx *c)
{
    struct t44 *f = CORO_SELF(c, struct t44);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->t[0], sleeper(&f->s[0], "a", 10, CORO_EUSER(1)));
    coro_spawn(c->loop, &f->t[1], sleeper(&f->s[1], "b", 20, 2));
    coro_spawn(c->loop, &f->t[2], sleeper(&f->s[2], "c", 30, CORO_EUSER(2)));
    for (int i = 0; i < 3; i++) f->futs[i] = coro_task_future(&f->t[i]);
    coro_gather_start(c->loop, &f->g, f->items, f->futs, 3, 0);
    CORO_AWAIT_GATHER(c, &f->g);
    TRACE("main=%s@%ld", rcs(c->rc), test_ms(c->loop));
    CHECK_EQ(coro_future_state(&f->g.outer.fut), CORO_FUTURE_ERROR);
    CHECK_EQ(gather_cancel(c->loop, &f->g), 0);
    CHECK_EQ(coro_task_cancelling(&f->t[1]), 0);
    CHECK_EQ(coro_task_cancelling(&f->t[2]), 0);
    CORO_AWAIT_TASK(c, &f->t[1]);
    TRACE("b=%s", rcs(c->rc));
    CORO_SLEEP(c, CORO_MS(20));
    CHECK(coro_task_done(&f->t[2]));
    CHECK(!coro_task_cancelled(&f->t[2]));
    CORO_END(c);
}

TEST(T44_gather_tasks_first_error_siblings_keep_running)
{
    coro_loop L;
    coro_task t;
    struct t44 f;
    memset(&f, 0, sizeof f);
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, t44_fn)), 0);
    CHECK_TRACE("a@10 main=E1@10 b@20 b=2 c@30");
    CHECK_EQ(test_ms(&L), 40);
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0); /* c's late error was retrieved by gather */
}

/* ---------------------------------------------------------------------- */
/* T45: return_exceptions                                                  */
/* ---------------------------------------------------------------------- */

/* T45 (GatherTestsBase.test_return_exceptions): b=1, c fails, a=3: not done
 * until d fails too; then every slot holds its outcome: [3, 1, exc, exc2]. */
TEST(T45_gather_futures_return_exceptions_waits_for_all)
{
    coro_loop L;
    coro_future fs[4];
    coro_future *futs[4];
    coro_gather g;
    coro_gather_item items[4];
    test_loop(&L);
    for (int i = 0; i < 4; i++) {
        coro_future_init(&fs[i]);
        futs[i] = &fs[i];
    }
    coro_gather_start(&L, &g, items, futs, 4, CORO_RETURN_EXCEPTIONS);
    coro_future_set_result(&L, &fs[1], 1);
    coro_future_set_error(&L, &fs[2], CORO_EUSER(1));
    coro_future_set_result(&L, &fs[0], 3);
    CHECK_EQ(coro_loop_run_once(&L), 0);
    CHECK(!coro_future_done(&g.outer.fut));
    coro_future_set_error(&L, &fs[3], CORO_EUSER(2));
    CHECK_EQ(coro_loop_run_once(&L), 0);
    CHECK_EQ(coro_future_state(&g.outer.fut), CORO_FUTURE_RESULT);
    CHECK_EQ(coro_gather_result(&g, 0), 0);
    CHECK_EQ(coro_future_value(&fs[0]), 3);
    CHECK_EQ(coro_gather_result(&g, 1), 0);
    CHECK_EQ(coro_future_value(&fs[1]), 1);
    CHECK_EQ(coro_gather_result(&g, 2), CORO_EUSER(1));
    CHECK_EQ(coro_gather_result(&g, 3), CORO_EUSER(2));
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

/* T45 with tasks: the awaiter resumes only after the last child, with
 * c->rc 0, and reads [3, 1, E1, E2]; the errors count as retrieved. */
struct t45 {
    coro_frame co;
    struct sleeper s[4];
    coro_task t[4];
    coro_future *futs[4];
    coro_gather g;
    coro_gather_item items[4];
};

static int t45_fn(coro_ctx *c)
{
    struct t45 *f = CORO_SELF(c, struct t45);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->t[0], sleeper(&f->s[0], "a", 30, 3));
    coro_spawn(c->loop, &f->t[1], sleeper(&f->s[1], "b", 10, 1));
    coro_spawn(c->loop, &f->t[2], sleeper(&f->s[2], "c", 20, CORO_EUSER(1)));
    coro_spawn(c->loop, &f->t[3], sleeper(&f->s[3], "d", 40, CORO_EUSER(2)));
    for (int i = 0; i < 4; i++) f->futs[i] = coro_task_future(&f->t[i]);
    coro_gather_start(c->loop, &f->g, f->items, f->futs, 4, CORO_RETURN_EXCEPTIONS);
    CORO_AWAIT_GATHER(c, &f->g);
    TRACE("main=%s@%ld [%s %s %s %s]", rcs(c->rc), test_ms(c->loop),
          rcs(coro_gather_result(&f->g, 0)), rcs(coro_gather_result(&f->g, 1)),
          rcs(coro_gather_result(&f->g, 2)), rcs(coro_gather_result(&f->g, 3)));
    CORO_END(c);
}

TEST(T45_gather_tasks_return_exceptions_slots_in_argument_order)
{
    coro_loop L;
    coro_task t;
    struct t45 f;
    memset(&f, 0, sizeof f);
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, t45_fn)), 0);
    CHECK_TRACE("b@10 c@20 a@30 d@40 main=0@40 [3 1 E1 E2]");
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

/* ---------------------------------------------------------------------- */
/* T46: a cancelled child                                                   */
/* ---------------------------------------------------------------------- */

/* T46 (FutureGatherTests.test_one_cancellation): a cancelled child makes the
 * gather fail with CancelledError; the gather itself is NOT cancelled. */
TEST(T46_gather_one_cancelled_child_is_an_error_not_a_cancellation)
{
    coro_loop L;
    coro_future fs[3];
    coro_future *futs[3];
    coro_gather g;
    coro_gather_item items[3];
    test_loop(&L);
    for (int i = 0; i < 3; i++) {
        coro_future_init(&fs[i]);
        futs[i] = &fs[i];
    }
    coro_gather_start(&L, &g, items, futs, 3, 0);
    coro_future_set_result(&L, &fs[0], 1);
    CHECK_EQ(coro_future_cancel(&L, &fs[1]), 1);
    CHECK_EQ(coro_loop_run_once(&L), 0);
    CHECK(coro_future_done(&g.outer.fut));
    CHECK(!coro_future_cancelled(&g.outer.fut));
    CHECK_EQ(coro_future_state(&g.outer.fut), CORO_FUTURE_ERROR);
    CHECK_EQ(coro_future_rc(&g.outer.fut), CORO_ECANCELED);
    coro_future_set_result(&L, &fs[2], 3);
    coro_loop_run_once(&L); /* see T44: nothing to observe but the state */
    CHECK_EQ(coro_future_state(&g.outer.fut), CORO_FUTURE_ERROR);
    CHECK_EQ(coro_future_rc(&g.outer.fut), CORO_ECANCELED);
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

/* T46 (test_result_exception_one_cancellation): with return_exceptions the
 * cancelled children's slots hold CancelledError: [1, E1, CE, 3, CE, E2];
 * still pending after the first batch. */
TEST(T46_gather_return_exceptions_cancelled_slots)
{
    coro_loop L;
    coro_future fs[6];
    coro_future *futs[6];
    coro_gather g;
    coro_gather_item items[6];
    coro_call k;
    int calls = 0;
    test_loop(&L);
    for (int i = 0; i < 6; i++) {
        coro_future_init(&fs[i]);
        futs[i] = &fs[i];
    }
    coro_gather_start(&L, &g, items, futs, 6, CORO_RETURN_EXCEPTIONS);
    coro_future_add_done_callback(&L, &g.outer.fut, &k, count_cb, &calls);
    coro_future_set_result(&L, &fs[0], 1);
    coro_future_set_error(&L, &fs[1], CORO_EUSER(1));
    coro_future_cancel(&L, &fs[2]);
    CHECK_EQ(coro_loop_run_once(&L), 0);
    CHECK(!coro_future_done(&g.outer.fut));
    coro_future_set_result(&L, &fs[3], 3);
    coro_future_cancel(&L, &fs[4]);
    coro_future_set_error(&L, &fs[5], CORO_EUSER(2));
    CHECK_EQ(coro_loop_run_until(&L, &g.outer.fut), 0);
    CHECK_EQ(coro_future_state(&g.outer.fut), CORO_FUTURE_RESULT);
    CHECK_EQ(coro_gather_result(&g, 0), 0);
    CHECK_EQ(coro_future_value(&fs[0]), 1);
    CHECK_EQ(coro_gather_result(&g, 1), CORO_EUSER(1));
    CHECK_EQ(coro_gather_result(&g, 2), CORO_ECANCELED);
    CHECK_EQ(coro_gather_result(&g, 3), 0);
    CHECK_EQ(coro_future_value(&fs[3]), 3);
    CHECK_EQ(coro_gather_result(&g, 4), CORO_ECANCELED);
    CHECK_EQ(coro_gather_result(&g, 5), CORO_EUSER(2));
    coro_loop_run_once(&L);
    CHECK_EQ(calls, 1);
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

/* T46 / rules-of-thumb "child of gather cancelled independently": the
 * awaiter gets ECANCELED, the sibling keeps running and is not cancelled;
 * the awaiter itself is not being cancelled (cancelling() 0) and goes on.
 *
 *   a = s('a',100,1); b = s('b',100,2); call_later(10, b.cancel)
 *   try: await gather(a, b) except CancelledError: T('main=CE', now(), cur.cancelling())
 *   T(await a, a.cancelling())
 *   -> b:x@10 main=CE@10 0 a@100 1 0
 */
struct t46 {
    coro_frame co;
    struct sleeper s[2];
    coro_task t[2];
    coro_future *futs[2];
    coro_gather g;
    coro_gather_item items[2];
    coro_call k;
};

static int t46_fn(coro_ctx *c)
{
    struct t46 *f = CORO_SELF(c, struct t46);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->t[0], sleeper(&f->s[0], "a", 100, 1));
    coro_spawn(c->loop, &f->t[1], sleeper(&f->s[1], "b", 100, 2));
    coro_call_later(c->loop, &f->k, CORO_MS(10), cancel_task_cb, &f->t[1]);
    for (int i = 0; i < 2; i++) f->futs[i] = coro_task_future(&f->t[i]);
    coro_gather_start(c->loop, &f->g, f->items, f->futs, 2, 0);
    CORO_AWAIT_GATHER(c, &f->g);
    TRACE("main=%s@%ld/%d", rcs(c->rc), test_ms(c->loop),
          coro_task_cancelling(c->task));
    CORO_AWAIT_TASK(c, &f->t[0]);
    TRACE("a=%s/%d", rcs(c->rc), coro_task_cancelling(&f->t[0]));
    CORO_RETURN(c, 7);
    CORO_END(c);
}

TEST(T46_gather_child_cancelled_independently_awaiter_not_cancelled)
{
    coro_loop L;
    coro_task t;
    struct t46 f;
    memset(&f, 0, sizeof f);
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, t46_fn)), 7);
    CHECK_TRACE("b:x@10 main=ECANCELED@10/0 a@100 a=1/0");
    CHECK(!coro_task_cancelled(&t));
    CHECK(coro_task_cancelled(&f.t[1]));
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

/* ---------------------------------------------------------------------- */
/* T47 / R-GATH-4: cancelling the awaiter broadcasts to the children       */
/* ---------------------------------------------------------------------- */

/* T47 (CoroutineGatherTests.test_cancellation_broadcast): outer awaits
 * gather(child1, child2), both blocked on one waiter future; cancelling
 * outer cancels the waiter (through child1) and child2 (its waiter already
 * cancelled: delivered at its next step); outer raises CancelledError; the
 * gather refuses a later cancel; proof stays 0. */
struct t47_outer {
    coro_frame co;
    coro_gather *g;
    int *proof;
};

static int t47_outer_fn(coro_ctx *c)
{
    struct t47_outer *o = CORO_SELF(c, struct t47_outer);
    CORO_BEGIN(c);
    CORO_AWAIT_GATHER(c, o->g);
    if (c->rc < 0) {
        TRACE("outer:x@%ld", test_ms(c->loop));
        CORO_FAIL(c, c->rc);
    }
    *o->proof += 100;
    CORO_END(c);
}

struct t47 {
    coro_frame co;
    coro_future waiter;
    struct fwait w[2];
    coro_task child[2], outer;
    struct t47_outer o;
    coro_future *futs[2];
    coro_gather g;
    coro_gather_item items[2];
    int proof;
};

static int t47_fn(coro_ctx *c)
{
    struct t47 *f = CORO_SELF(c, struct t47);
    CORO_BEGIN(c);
    coro_future_init(&f->waiter);
    coro_spawn(c->loop, &f->child[0], fwait(&f->w[0], "c1", &f->waiter, &f->proof));
    coro_spawn(c->loop, &f->child[1], fwait(&f->w[1], "c2", &f->waiter, &f->proof));
    f->futs[0] = coro_task_future(&f->child[0]);
    f->futs[1] = coro_task_future(&f->child[1]);
    coro_gather_start(c->loop, &f->g, f->items, f->futs, 2, 0);
    f->o.g = &f->g;
    f->o.proof = &f->proof;
    coro_spawn(c->loop, &f->outer, coro_frame_init(&f->o.co, t47_outer_fn));
    CORO_YIELD(c); /* run_briefly: everybody parks */
    CHECK_EQ(coro_task_cancel(c->loop, &f->outer), 1);
    CHECK(coro_future_cancelled(&f->waiter)); /* forwarded at once */
    CHECK_EQ(coro_task_cancelling(&f->child[0]), 1);
    CHECK_EQ(coro_task_cancelling(&f->child[1]), 1);
    CORO_AWAIT_TASK(c, &f->outer);
    TRACE("main=%s", rcs(c->rc));
    CORO_END(c);
}

TEST(T47_gather_cancellation_broadcast)
{
    coro_loop L;
    coro_task t;
    struct t47 f;
    memset(&f, 0, sizeof f);
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, t47_fn)), 0);
    CHECK_TRACE("c1:x@0 c2:x@0 outer:x@0 main=ECANCELED");
    CHECK(coro_task_cancelled(&f.outer));
    CHECK_EQ(gather_cancel(&L, &f.g), 0);
    CHECK(coro_future_cancelled(&f.waiter));
    CHECK(coro_task_cancelled(&f.child[0]));
    CHECK(coro_task_cancelled(&f.child[1]));
    /* the gather failed with CancelledError, it was not itself cancelled */
    CHECK_EQ(coro_future_state(&f.g.outer.fut), CORO_FUTURE_ERROR);
    CHECK_EQ(coro_future_rc(&f.g.outer.fut), CORO_ECANCELED);
    CHECK_EQ(f.proof, 0);
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

/* R-GATH-4 (probes #3 and #5): children swallow the cancellation and
 * return values; the gather still ends in CancelledError, with or without
 * return_exceptions, and the per-child results stay readable.
 *
 *   c1 = child(); c2 = child()       # try: sleep(100) except CE: pass; return 1
 *   o = create_task(outer())         # await gather(c1, c2, return_exceptions=x)
 *   await sleep(0); o.cancel(); await o  -> CancelledError at 0
 *   await gather(c1, c2) -> [1, 1]
 */
struct swallow_main {
    coro_frame co;
    unsigned flags;
    struct sleeper s[2];
    coro_task child[2], outer;
    struct t47_outer o;
    coro_future *futs[2];
    coro_gather g;
    coro_gather_item items[2];
    int proof;
};

static int swallow_main_fn(coro_ctx *c)
{
    struct swallow_main *f = CORO_SELF(c, struct swallow_main);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->child[0], swallower(&f->s[0], "c1", 100, 1));
    coro_spawn(c->loop, &f->child[1], swallower(&f->s[1], "c2", 100, 1));
    f->futs[0] = coro_task_future(&f->child[0]);
    f->futs[1] = coro_task_future(&f->child[1]);
    coro_gather_start(c->loop, &f->g, f->items, f->futs, 2, f->flags);
    f->o.g = &f->g;
    f->o.proof = &f->proof;
    coro_spawn(c->loop, &f->outer, coro_frame_init(&f->o.co, t47_outer_fn));
    CORO_YIELD(c);
    CHECK_EQ(coro_task_cancel(c->loop, &f->outer), 1);
    CORO_AWAIT_TASK(c, &f->outer);
    TRACE("main=%s@%ld", rcs(c->rc), test_ms(c->loop));
    CORO_END(c);
}

TEST(R_GATH_4_children_swallow_cancel_gather_still_cancelled)
{
    for (unsigned flags = 0; flags <= CORO_RETURN_EXCEPTIONS; flags += CORO_RETURN_EXCEPTIONS) {
        coro_loop L;
        coro_task t;
        struct swallow_main f;
        memset(&f, 0, sizeof f);
        f.flags = flags;
        test_loop(&L);
        CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, swallow_main_fn)), 0);
        CHECK_TRACE("c1:x@0 c2:x@0 outer:x@0 main=ECANCELED@0");
        CHECK(coro_task_cancelled(&f.outer));
        CHECK(!coro_task_cancelled(&f.child[0]));
        CHECK_EQ(coro_gather_result(&f.g, 0), 1);
        CHECK_EQ(coro_gather_result(&f.g, 1), 1);
        CHECK_EQ(coro_future_state(&f.g.outer.fut), CORO_FUTURE_ERROR);
        CHECK_EQ(coro_future_rc(&f.g.outer.fut), CORO_ECANCELED);
        CHECK_EQ(f.proof, 0);
        CHECK_EQ(coro_loop_close(&L), 0);
        CHECK_EQ(test_reports(), 0);
    }
}

/* R-GATH-4: outer.cancel() calls cancel() on every child of the argument
 * list, duplicates included, and on plain futures too.
 *
 *   t = create_task(child()); f = loop.create_future(); g = gather(t, t, f)
 *   await sleep(0); g.cancel() -> True; t.cancelling() -> 2; f.cancelled() -> True
 *   await g -> CancelledError
 */
TEST(R_GATH_4_cancel_reaches_every_argument_duplicates_twice)
{
    coro_loop L;
    coro_task t;
    coro_future fut;
    struct sleeper s;
    coro_future *futs[3] = {&t.fut, &t.fut, &fut};
    coro_gather g;
    coro_gather_item items[3];
    test_loop(&L);
    coro_future_init(&fut);
    coro_spawn(&L, &t, sleeper(&s, "t", 100, 1));
    coro_gather_start(&L, &g, items, futs, 3, 0);
    CHECK_EQ(coro_loop_run_once(&L), 0); /* t parks in its sleep */
    CHECK_EQ(gather_cancel(&L, &g), 1);
    CHECK_EQ(coro_task_cancelling(&t), 2);
    CHECK(coro_future_cancelled(&fut));
    CHECK_EQ(coro_loop_run_until(&L, &g.outer.fut), CORO_ECANCELED);
    CHECK(!coro_future_cancelled(&g.outer.fut));
    CHECK(coro_task_cancelled(&t));
    CHECK_TRACE("t:x@0");
    CHECK_EQ(test_ms(&L), 0); /* t's timer was disarmed */
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

/* R-GATH-5 / R-TASK-3: a cancel that reaches the awaiter after the gather
 * completed (its done-callback runs before the awaiter's wake-up) is not
 * forwarded to the children; the awaiter still sees CancelledError.
 *
 *   a = s('a',10,5); g = gather(a); g.add_done_callback(lambda _: cur.cancel())
 *   try: await g  except CancelledError: T('main=CE', now(), g.result())
 *   -> a@10 main=CE 10 [5]
 */
struct late_cancel {
    coro_frame co;
    struct sleeper s;
    coro_task a;
    coro_future *futs[1];
    coro_gather g;
    coro_gather_item items[1];
    coro_call k;
};

static int late_cancel_fn(coro_ctx *c)
{
    struct late_cancel *f = CORO_SELF(c, struct late_cancel);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->a, sleeper(&f->s, "a", 10, 5));
    f->futs[0] = coro_task_future(&f->a);
    coro_gather_start(c->loop, &f->g, f->items, f->futs, 1, 0);
    coro_future_add_done_callback(c->loop, &f->g.outer.fut, &f->k, cancel_task_cb, c->task);
    CORO_AWAIT_GATHER(c, &f->g);
    TRACE("main=%s@%ld g=%s [%s]", rcs(c->rc), test_ms(c->loop),
          rcs(coro_future_rc(&f->g.outer.fut)), rcs(coro_gather_result(&f->g, 0)));
    CORO_RETURN(c, c->rc);
    CORO_END(c);
}

TEST(R_GATH_5_cancel_after_gather_done_not_forwarded_awaiter_cancelled)
{
    coro_loop L;
    coro_task t;
    struct late_cancel f;
    memset(&f, 0, sizeof f);
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, late_cancel_fn)), CORO_ECANCELED);
    CHECK_TRACE("a@10 main=ECANCELED@10 g=0 [5]");
    CHECK(coro_task_cancelled(&t));
    CHECK_EQ(coro_task_cancelling(&f.a), 0);
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

/* ---------------------------------------------------------------------- */
/* T48: a gather whose children are all done refuses cancellation         */
/* ---------------------------------------------------------------------- */

/* T48 (test_cancel_gather_1, issue 26923): the child task awaits fut; a
 * done-callback on fut (registered after the child's wake-up) cancels the
 * gather in the same iteration in which the child finished, before the
 * gather's own callback ran: cancel() returns False, the result is [42]. */
struct cancel_result {
    coro_gather *g;
    int result;
};

static void cancel_gather_cb(coro_loop *L, void *arg)
{
    struct cancel_result *r = (struct cancel_result *)arg;
    r->result = gather_cancel(L, r->g);
}

TEST(T48_gather_refuses_cancel_once_children_done)
{
    coro_loop L;
    coro_future fut;
    coro_task child;
    struct fwait w;
    coro_future *futs[1] = {&child.fut};
    coro_gather g;
    coro_gather_item items[1];
    coro_call k;
    struct cancel_result r = {&g, -1};
    test_loop(&L);
    coro_future_init(&fut);
    coro_spawn(&L, &child, fwait(&w, "child", &fut, NULL));
    coro_gather_start(&L, &g, items, futs, 1, 0);
    CHECK_EQ(coro_loop_run_once(&L), 0); /* child parks on fut */
    coro_future_add_done_callback(&L, &fut, &k, cancel_gather_cb, &r);
    coro_future_set_result(&L, &fut, 42);
    CHECK_EQ(coro_loop_run_until(&L, &g.outer.fut), 0);
    CHECK_EQ(r.result, 0);
    CHECK(!coro_future_cancelled(&g.outer.fut));
    CHECK_EQ(coro_future_state(&g.outer.fut), CORO_FUTURE_RESULT);
    CHECK_EQ(coro_gather_result(&g, 0), 42);
    CHECK_EQ(coro_task_cancelling(&child), 0);
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

/* T48 (test_cancel_gather_2): a task looping on gather(sleep 50 ms,
 * return_exceptions=True) and cancelled at 120 ms raises CancelledError:
 * return_exceptions does not swallow the awaiter's own cancellation.
 * (The CancelledError's message is not checked: the API has no cancel
 * messages, R-TASK-6.)
 *
 *   async def test():
 *       while now() < 1000: await gather(sleep(50), return_exceptions=True); T('round', now())
 *   qwe = create_task(test()); await sleep(120); qwe.cancel(); await qwe
 *   -> round 50 round 100 then CancelledError at 120
 */
struct looper {
    coro_frame co;
    struct sleeper s;
    coro_task child;
    coro_future *futs[1];
    coro_gather g;
    coro_gather_item items[1];
};

static int looper_fn(coro_ctx *c)
{
    struct looper *f = CORO_SELF(c, struct looper);
    CORO_BEGIN(c);
    while (test_ms(c->loop) < 1000) { /* asyncio's test: `if time > 1: return` */
        coro_spawn(c->loop, &f->child, sleeper(&f->s, "s", 50, 0));
        f->futs[0] = coro_task_future(&f->child);
        coro_gather_start(c->loop, &f->g, f->items, f->futs, 1, CORO_RETURN_EXCEPTIONS);
        CORO_AWAIT_GATHER(c, &f->g);
        CORO_CHECK(c);
        TRACE("round@%ld", test_ms(c->loop));
    }
    CORO_RETURN(c, 1);
    CORO_END(c);
}

struct t48_2 {
    coro_frame co;
    struct looper lp;
    coro_task qwe;
};

static int t48_2_fn(coro_ctx *c)
{
    struct t48_2 *f = CORO_SELF(c, struct t48_2);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->qwe, coro_frame_init(&f->lp.co, looper_fn));
    CORO_SLEEP(c, CORO_MS(120));
    CHECK_EQ(coro_task_cancel(c->loop, &f->qwe), 1);
    CORO_AWAIT_TASK(c, &f->qwe);
    TRACE("main=%s@%ld", rcs(c->rc), test_ms(c->loop));
    CORO_END(c);
}

TEST(T48_gather_return_exceptions_loop_still_cancellable)
{
    coro_loop L;
    coro_task t;
    struct t48_2 f;
    memset(&f, 0, sizeof f);
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, t48_2_fn)), 0);
    CHECK_TRACE("s@50 round@50 s@100 round@100 s:x@120 main=ECANCELED@120");
    CHECK(coro_task_cancelled(&f.qwe));
    CHECK(coro_task_cancelled(&f.lp.child));
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

/* ---------------------------------------------------------------------- */
/* T49: duplicates and the empty gather                                    */
/* ---------------------------------------------------------------------- */

/* T49 (test_duplicate_coroutines): gather(c, c, d, c) runs two children and
 * gives ['abc', 'abc', 'def', 'abc'] (here 7, 7, 9, 7). */
struct t49 {
    coro_frame co;
    struct sleeper s[2];
    coro_task t[2];
    coro_future *futs[4];
    coro_gather g;
    coro_gather_item items[4];
};

static int t49_fn(coro_ctx *c)
{
    struct t49 *f = CORO_SELF(c, struct t49);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->t[0], sleeper(&f->s[0], "c", 10, 7));
    coro_spawn(c->loop, &f->t[1], sleeper(&f->s[1], "d", 20, 9));
    f->futs[0] = f->futs[1] = f->futs[3] = coro_task_future(&f->t[0]);
    f->futs[2] = coro_task_future(&f->t[1]);
    coro_gather_start(c->loop, &f->g, f->items, f->futs, 4, 0);
    CORO_AWAIT_GATHER(c, &f->g);
    TRACE("main=%s@%ld [%d %d %d %d]", rcs(c->rc), test_ms(c->loop),
          coro_gather_result(&f->g, 0), coro_gather_result(&f->g, 1),
          coro_gather_result(&f->g, 2), coro_gather_result(&f->g, 3));
    CORO_END(c);
}

TEST(T49_gather_duplicates_collapse_results_repeat)
{
    coro_loop L;
    coro_task t;
    struct t49 f;
    memset(&f, 0, sizeof f);
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, t49_fn)), 0);
    CHECK_TRACE("c@10 d@20 main=0@20 [7 7 9 7]");
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

/* T49 (test_constructor_empty_sequence) / R-GATH-1: gather() is already
 * done with []; gather over children that are all done completes inside
 * the call (the "eager" path). Awaiting a done gather does not suspend:
 * the sibling spawned before runs only after main yields.
 *
 *   sib = create_task(s()); g0 = gather(); T('g0', g0.done())
 *   await g0; T('after-empty'); await gather(done_task, done_fut) -> no yield
 *   T('after-done'); await sleep(0)  -> sib runs here
 */
struct sib {
    coro_frame co;
};

static int sib_fn(coro_ctx *c)
{
    CORO_BEGIN(c);
    TRACE("sib");
    CORO_END(c);
}

struct t49_empty {
    coro_frame co;
    struct sib sb;
    coro_task sibt, done_task;
    struct sleeper s;
    coro_future done_fut;
    coro_future *futs[2];
    coro_gather g0, g2;
    coro_gather_item items[2];
};

static int t49_empty_fn(coro_ctx *c)
{
    struct t49_empty *f = CORO_SELF(c, struct t49_empty);
    CORO_BEGIN(c);
    /* a task that is done before the gather starts */
    coro_spawn(c->loop, &f->done_task, sleeper(&f->s, "d", 0, 4));
    CORO_YIELD(c);
    CORO_YIELD(c);
    CHECK(coro_task_done(&f->done_task));
    coro_future_init(&f->done_fut);
    coro_future_set_result(c->loop, &f->done_fut, 5);
    coro_spawn(c->loop, &f->sibt, coro_frame_init(&f->sb.co, sib_fn));
    coro_gather_start(c->loop, &f->g0, NULL, NULL, 0, 0);
    CHECK_EQ(coro_future_state(&f->g0.outer.fut), CORO_FUTURE_RESULT);
    CORO_AWAIT_GATHER(c, &f->g0);
    TRACE("empty=%s", rcs(c->rc));
    f->futs[0] = coro_task_future(&f->done_task);
    f->futs[1] = &f->done_fut;
    coro_gather_start(c->loop, &f->g2, f->items, f->futs, 2, 0);
    CHECK_EQ(coro_future_state(&f->g2.outer.fut), CORO_FUTURE_RESULT);
    CORO_AWAIT_GATHER(c, &f->g2);
    TRACE("done=%s [%d %d]", rcs(c->rc), coro_gather_result(&f->g2, 0),
          (int)coro_future_value(f->g2.items[1].fut));
    CORO_YIELD(c);
    TRACE("main");
    CORO_END(c);
}

TEST(T49_gather_empty_and_all_done_complete_without_suspending)
{
    coro_loop L;
    coro_task t;
    struct t49_empty f;
    memset(&f, 0, sizeof f);
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, t49_empty_fn)), 0);
    CHECK_TRACE("d@0 empty=0 done=0 [4 5] sib main");
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

/* ---------------------------------------------------------------------- */
/* T42: shield and gather                                                  */
/* ---------------------------------------------------------------------- */

/* T42 (test_shield_gather): shield(gather(c1, c2)); cancelling the shield's
 * outer future leaves the gather running: it completes with [1, 2]. */
TEST(T42_shield_of_gather_outer_cancelled_gather_completes)
{
    coro_loop L;
    coro_future c1, c2;
    /* (this exact pattern once failed to build: see the note in
     * T42_gather_of_shields_cancel_stops_at_shields) */
    coro_future *futs[2] = {&c1, &c2};
    coro_gather g;
    coro_gather_item items[2];
    coro_shield s;
    coro_future *outer;
    test_loop(&L);
    coro_future_init(&c1);
    coro_future_init(&c2);
    coro_gather_start(&L, &g, items, futs, 2, 0);
    outer = coro_shield_start(&L, &s, &g.outer.fut);
    CHECK(outer != &g.outer.fut);
    CHECK_EQ(coro_future_cancel(&L, outer), 1);
    CHECK_EQ(coro_loop_run_once(&L), 0);
    CHECK(coro_future_cancelled(outer));
    CHECK(!coro_future_done(&g.outer.fut));
    CHECK(!coro_future_cancelled(&c1));
    coro_future_set_result(&L, &c1, 1);
    coro_future_set_result(&L, &c2, 2);
    CHECK_EQ(coro_loop_run_once(&L), 0);
    CHECK_EQ(coro_future_state(&g.outer.fut), CORO_FUTURE_RESULT);
    CHECK_EQ(coro_future_value(&c1), 1);
    CHECK_EQ(coro_future_value(&c2), 2);
    CHECK(coro_future_cancelled(outer));
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

/* T42 (test_gather_shield): gather(shield(c1), shield(c2)); cancelling the
 * gather cancels the shields, not c1 and c2; the gather's exception is
 * CancelledError (it is not itself cancelled); the shields unhooked
 * themselves from c1 and c2, so completing those later changes nothing. */
TEST(T42_gather_of_shields_cancel_stops_at_shields)
{
    coro_loop L;
    coro_future c1, c2;
    coro_shield s1, s2;
    coro_future *futs[2];
    coro_gather g;
    coro_gather_item items[2];
    test_loop(&L);
    coro_future_init(&c1);
    coro_future_init(&c2);
    /* Compile regression: with the 04:49 coro_loop.h, gcc 12.2 -O2 rejected
     * this (and two plain stack futures gathered directly) with
     * -Werror=array-bounds inside coro__unmark/coro__dup: the container_of
     * of a future it can see is not a task's. It depends on inlining. */
    futs[0] = coro_shield_start(&L, &s1, &c1);
    futs[1] = coro_shield_start(&L, &s2, &c2);
    coro_gather_start(&L, &g, items, futs, 2, 0);
    CHECK_EQ(gather_cancel(&L, &g), 1);
    CHECK_EQ(coro_loop_run_once(&L), 0);
    CHECK_EQ(coro_future_state(&g.outer.fut), CORO_FUTURE_ERROR);
    CHECK_EQ(coro_future_rc(&g.outer.fut), CORO_ECANCELED);
    CHECK(coro_future_cancelled(futs[0]));
    CHECK(coro_future_cancelled(futs[1]));
    CHECK(!coro_future_done(&c1));
    CHECK(!coro_future_done(&c2));
    /* the shields' hooks on c1/c2 were removed by their outer callbacks */
    CHECK_EQ(coro_future_remove_done_callback(&L, &c1, &s1.inner_cb), 0);
    CHECK_EQ(coro_future_remove_done_callback(&L, &c2, &s2.inner_cb), 0);
    coro_future_set_result(&L, &c1, 1);
    coro_future_set_result(&L, &c2, 2);
    CHECK_EQ(coro_loop_run_once(&L), CORO_EDEADLK); /* nothing was scheduled */
    CHECK(coro_future_cancelled(futs[0]));
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}
