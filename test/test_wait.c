/* test_wait.c - asyncio.wait and asyncio.as_completed: R-WAIT-1..4,
 * R-ASC-1..4, T31-T39.
 *
 * Orderings were checked against CPython 3.13.0 on a virtual-time loop
 * (test/conformance/ref.py's VirtualLoop: integer ms, equal deadlines fire
 * first-armed-first); the Python probes are quoted above the tests.
 * Not expressible (API gap): T37's "reverse wait" (awaiting the 2nd
 * awaitable of a plain as_completed iteration before the 1st): coro's
 * next() frame lives in the record, so only one next() can be in progress
 * per as_completed; R-WAIT-1/R-ASC-4 TypeErrors (a bare future or a
 * coroutine instead of a list) are compile-time errors in C. */
#include "test.h"

/* What coro_run's shutdown traces for the tasks main left running (it
 * cancels them); with CORO_NO_REGISTRY it leaves them as they are. */
#ifdef CORO_NO_REGISTRY
#define LEFT(trace) ""
#else
#define LEFT(trace) trace
#endif

/* ---------------------------------------------------------------------- */
/* helpers                                                                 */
/* ---------------------------------------------------------------------- */

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

/* Sleeps `ms` (0: one CORO_YIELD, < 0: no await at all), then traces
 * "<name>@<ms>" and returns `ret` (< 0: fails with it). A cancelled sleep
 * traces "<name>:x@<ms>" and propagates. */
struct sleeper {
    coro_frame co;
    const char *name;
    int ms, ret;
};

static int sleeper_fn(coro_ctx *c)
{
    struct sleeper *s = CORO_SELF(c, struct sleeper);
    CORO_BEGIN(c);
    if (s->ms >= 0) {
        CORO_SLEEP(c, CORO_MS(s->ms));
        if (c->rc < 0) {
            TRACE("%s:x@%ld", s->name, test_ms(c->loop));
            CORO_FAIL(c, c->rc);
        }
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
    return coro_frame_init(&s->co, sleeper_fn);
}

/* Yields `n` times, then traces "<name>" and returns `ret`. */
struct yielder {
    coro_frame co;
    const char *name;
    int n, i, ret;
};

static int yielder_fn(coro_ctx *c)
{
    struct yielder *y = CORO_SELF(c, struct yielder);
    CORO_BEGIN(c);
    for (y->i = 0; y->i < y->n; y->i++) CORO_YIELD(c);
    TRACE("%s", y->name);
    CORO_RETURN(c, y->ret);
    CORO_END(c);
}

static coro_frame *yielder(struct yielder *y, const char *name, int n, int ret)
{
    memset(y, 0, sizeof *y);
    y->name = name;
    y->n = n;
    y->ret = ret;
    return coro_frame_init(&y->co, yielder_fn);
}

/* Traces "tick0".."tick<n-1>", one CORO_YIELD apart (counts iterations). */
struct ticker {
    coro_frame co;
    int n, i;
};

static int ticker_fn(coro_ctx *c)
{
    struct ticker *t = CORO_SELF(c, struct ticker);
    CORO_BEGIN(c);
    for (t->i = 0; t->i < t->n; t->i++) {
        TRACE("tick%d", t->i);
        if (t->i + 1 < t->n) CORO_YIELD(c);
    }
    CORO_END(c);
}

static coro_frame *ticker(struct ticker *t, int n)
{
    memset(t, 0, sizeof *t);
    t->n = n;
    return coro_frame_init(&t->co, ticker_fn);
}

static void cancel_task_cb(coro_loop *L, void *arg)
{
    coro_task_cancel(L, (coro_task *)arg);
}

/* "done[..] pending[..]" over the argument names, like the conformance
 * traces. */
static const char *done_pending(coro_future *const *futs, const char *const *names,
                                unsigned n)
{
    static char buf[128];
    size_t len = 0;
    len += (size_t)snprintf(buf + len, sizeof buf - len, "done[");
    for (int pass = 0; pass < 2; pass++) {
        int first = 1;
        if (pass) len += (size_t)snprintf(buf + len, sizeof buf - len, "] pending[");
        for (unsigned i = 0; i < n; i++)
            if (coro_future_done(futs[i]) == !pass) {
                len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s",
                                        first ? "" : ",", names[i]);
                first = 0;
            }
    }
    snprintf(buf + len, sizeof buf - len, "]");
    return buf;
}

/* A main coroutine shared by most wait tests: spawns up to 3 children from
 * `kids`, then runs `wait` with the given mode and timeout over `order`
 * (indices into the children) and traces "wait=<rc>@<ms> done[..] pending[..]". */
struct kid {
    const char *name;
    int ms, ret;
};

struct wmain {
    coro_frame co;
    const struct kid *kids;
    unsigned nkids, n;
    const unsigned *order;
    int return_when;
    coro_time timeout;
    struct sleeper s[3];
    coro_task t[3];
    coro_future *futs[3];
    const char *names[3];
    coro_wait w;
    coro_wait_item items[3];
    int after;       /* 1: then await every child, tracing its outcome */
    int yield_first; /* 1: let the children arm their timers first */
    unsigned i;
};

static int wmain_fn(coro_ctx *c)
{
    struct wmain *f = CORO_SELF(c, struct wmain);
    CORO_BEGIN(c);
    for (unsigned i = 0; i < f->nkids; i++)
        coro_spawn(c->loop, &f->t[i],
                   sleeper(&f->s[i], f->kids[i].name, f->kids[i].ms, f->kids[i].ret));
    for (unsigned i = 0; i < f->n; i++) {
        f->futs[i] = coro_task_future(&f->t[f->order[i]]);
        f->names[i] = f->kids[f->order[i]].name;
    }
    if (f->yield_first) CORO_YIELD(c);
    CORO_AWAIT(c, coro_wait_init(&f->w, f->items, f->futs, f->n, f->return_when,
                                 f->timeout));
    TRACE("wait=%s@%ld %s", rcs(c->rc), test_ms(c->loop),
          done_pending(f->futs, f->names, f->n));
    CHECK(!coro_call_pending(&f->w.timer)); /* the timeout is disarmed */
    for (unsigned i = 0; i < f->n; i++) /* and our callbacks are gone */
        CHECK_EQ(coro_future_remove_done_callback(c->loop, f->futs[i], &f->items[i].cb), 0);
    for (unsigned i = 0; i < f->nkids; i++)
        if (!coro_task_done(&f->t[i])) CHECK_EQ(coro_task_cancelling(&f->t[i]), 0);
    if (f->after) {
        for (f->i = 0; f->i < f->nkids; f->i++) {
            CORO_AWAIT_TASK(c, &f->t[f->i]);
            TRACE("%s=%s", f->kids[f->i].name, rcs(c->rc));
        }
    }
    CORO_END(c);
}

static int run_wmain(struct wmain *f)
{
    coro_loop L;
    coro_task t;
    test_loop(&L);
    int rc = coro_run(&L, &t, coro_frame_init(&f->co, wmain_fn));
    CHECK_EQ(coro_loop_close(&L), 0);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* T31-T35: wait                                                           */
/* ---------------------------------------------------------------------- */

/* T31 (test_wait): a sleeps 100, b 150; wait([b, a]) returns at 150 with
 * both done. */
TEST(T31_wait_all_completed)
{
    static const struct kid kids[] = {{"a", 100, 1}, {"b", 150, 2}};
    static const unsigned order[] = {1, 0};
    struct wmain f;
    memset(&f, 0, sizeof f);
    f.kids = kids;
    f.nkids = 2;
    f.order = order;
    f.n = 2;
    f.return_when = CORO_ALL_COMPLETED;
    f.timeout = CORO_NEVER;
    CHECK_EQ(run_wmain(&f), 0);
    CHECK_TRACE("a@100 b@150 wait=0@150 done[b,a] pending[]");
    CHECK_EQ(test_reports(), 0);
}

/* T31 (second half): a wait on finished tasks takes no time, but it is
 * not free: the done-callbacks go through the ready queue, so the waiter
 * resumes two iterations later (like asyncio's _wait).
 *
 *   await wait([b, a]); create_task(ticker(3)); await wait([b, a]); T('wait2')
 *   -> ... tick0 tick1 wait2 tick2
 */
struct t31b {
    coro_frame co;
    struct sleeper s[2];
    struct ticker tk;
    coro_task t[2], tt;
    coro_future *futs[2];
    coro_wait w;
    coro_wait_item items[2];
};

static int t31b_fn(coro_ctx *c)
{
    struct t31b *f = CORO_SELF(c, struct t31b);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->t[0], sleeper(&f->s[0], "a", 100, 1));
    coro_spawn(c->loop, &f->t[1], sleeper(&f->s[1], "b", 150, 2));
    f->futs[0] = coro_task_future(&f->t[1]);
    f->futs[1] = coro_task_future(&f->t[0]);
    CORO_AWAIT(c, coro_wait_init(&f->w, f->items, f->futs, 2, CORO_ALL_COMPLETED,
                                 CORO_NEVER));
    TRACE("wait1=%s@%ld", rcs(c->rc), test_ms(c->loop));
    coro_spawn(c->loop, &f->tt, ticker(&f->tk, 3));
    CORO_AWAIT(c, coro_wait_init(&f->w, f->items, f->futs, 2, CORO_ALL_COMPLETED,
                                 CORO_NEVER));
    TRACE("wait2=%s@%ld", rcs(c->rc), test_ms(c->loop));
    CORO_END(c);
}

TEST(T31_wait_on_done_tasks_takes_no_time_two_iterations)
{
    coro_loop L;
    coro_task t;
    struct t31b f;
    memset(&f, 0, sizeof f);
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, t31b_fn)), 0);
    CHECK_TRACE("a@100 b@150 wait1=0@150 tick0 tick1 wait2=0@150 tick2");
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

/* T32 (test_wait_first_completed): a sleeps 10 s, b 100 ms;
 * FIRST_COMPLETED returns at 100 with done {b}, pending {a}; a is not
 * cancelled (coro_run's shutdown cancels it afterwards). */
TEST(T32_wait_first_completed)
{
    static const struct kid kids[] = {{"a", 10000, 1}, {"b", 100, 2}};
    static const unsigned order[] = {1, 0};
    struct wmain f;
    memset(&f, 0, sizeof f);
    f.kids = kids;
    f.nkids = 2;
    f.order = order;
    f.n = 2;
    f.return_when = CORO_FIRST_COMPLETED;
    f.timeout = CORO_NEVER;
    CHECK_EQ(run_wmain(&f), 0);
    CHECK_TRACE("b@100 wait=0@100 done[b] pending[a]" LEFT(" a:x@100"));
    CHECK_EQ(test_reports(), 0);
}

/* T33 (test_wait_first_exception): b fails at its first step (no await);
 * FIRST_EXCEPTION returns at 0 with done {b}, pending {a}; the wait's
 * callback read b's error (asyncio's f.exception()), so nothing is
 * reported although nobody else looks at b. */
TEST(T33_wait_first_exception_immediate)
{
    static const struct kid kids[] = {{"a", 10000, 1}, {"b", -1, CORO_EUSER(1)}};
    static const unsigned order[] = {1, 0};
    struct wmain f;
    memset(&f, 0, sizeof f);
    f.kids = kids;
    f.nkids = 2;
    f.order = order;
    f.n = 2;
    f.return_when = CORO_FIRST_EXCEPTION;
    f.timeout = CORO_NEVER;
    CHECK_EQ(run_wmain(&f), 0);
    CHECK_TRACE("b@0 wait=0@0 done[b] pending[a]" LEFT(" a:x@0"));
    CHECK_EQ(test_reports(), 0);
}

/* T33 (test_wait_first_exception_in_wait): b fails after 10 ms: the wait
 * returns at 10. */
TEST(T33_wait_first_exception_in_wait)
{
    static const struct kid kids[] = {{"a", 10000, 1}, {"b", 10, CORO_EUSER(1)}};
    static const unsigned order[] = {1, 0};
    struct wmain f;
    memset(&f, 0, sizeof f);
    f.kids = kids;
    f.nkids = 2;
    f.order = order;
    f.n = 2;
    f.return_when = CORO_FIRST_EXCEPTION;
    f.timeout = CORO_NEVER;
    CHECK_EQ(run_wmain(&f), 0);
    CHECK_TRACE("b@10 wait=0@10 done[b] pending[a]" LEFT(" a:x@10"));
    CHECK_EQ(test_reports(), 0);
}

/* R-WAIT-3: with FIRST_EXCEPTION a cancelled task does not count: the wait
 * goes on until every task is done (conformance T33_wait_exception_cancelled).
 *   b cancelled at 0, a returns 1 at 30 -> wait returns at 30, done[b,a] */
struct t33c {
    coro_frame co;
    struct sleeper s[2];
    coro_task t[2];
    coro_future *futs[2];
    const char *names[2];
    coro_wait w;
    coro_wait_item items[2];
};

static int t33c_fn(coro_ctx *c)
{
    struct t33c *f = CORO_SELF(c, struct t33c);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->t[0], sleeper(&f->s[0], "a", 30, 1));
    coro_spawn(c->loop, &f->t[1], sleeper(&f->s[1], "b", 1000, 2));
    CORO_YIELD(c);
    CHECK_EQ(coro_task_cancel(c->loop, &f->t[1]), 1);
    f->futs[0] = coro_task_future(&f->t[1]);
    f->futs[1] = coro_task_future(&f->t[0]);
    f->names[0] = "b";
    f->names[1] = "a";
    CORO_AWAIT(c, coro_wait_init(&f->w, f->items, f->futs, 2, CORO_FIRST_EXCEPTION,
                                 CORO_NEVER));
    TRACE("wait=%s@%ld %s", rcs(c->rc), test_ms(c->loop),
          done_pending(f->futs, f->names, 2));
    CORO_END(c);
}

TEST(R_WAIT_3_first_exception_ignores_cancelled_tasks)
{
    coro_loop L;
    coro_task t;
    struct t33c f;
    memset(&f, 0, sizeof f);
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, t33c_fn)), 0);
    CHECK_TRACE("b:x@0 a@30 wait=0@30 done[b,a] pending[]");
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

/* R-WAIT-3 / R-FUT-5: asyncio's _on_completion reads f.exception() only
 * when it gets that far in its condition:
 *     counter <= 0 or FIRST_COMPLETED or (FIRST_EXCEPTION and f.exception())
 * so when the failing task is the LAST one to complete (counter reaches 0)
 * - or the mode is FIRST_COMPLETED / ALL_COMPLETED - the error is not
 * marked retrieved and "exception was never retrieved" is logged.
 *
 *   t = create_task(bad())     # sleep(10); raise ZeroDivisionError
 *   await wait([t], return_when=FIRST_EXCEPTION); del t
 *   -> errors: ['Task exception was never retrieved']
 *   (same for FIRST_COMPLETED and ALL_COMPLETED; and wait([t, ok5ms]) with
 *   FIRST_EXCEPTION, where t completes last, also logs)
 */
static void run_unretrieved_case(int mode, unsigned n, const char *trace)
{
    static const struct kid kids[] = {{"t", 10, CORO_EUSER(1)}, {"u", 5, 1}};
    static const unsigned order[] = {0, 1};
    struct wmain f;
    memset(&f, 0, sizeof f);
    f.kids = kids;
    f.nkids = n;
    f.order = order;
    f.n = n;
    f.return_when = mode;
    f.timeout = CORO_NEVER;
    CHECK_EQ(run_wmain(&f), 0);
    CHECK_TRACE(trace);
#if !defined(CORO_NO_DIAG) && !defined(CORO_NO_REGISTRY) /* the report */
    CHECK_EQ(test_reports(), 1);
    CHECK_EQ(test_report_kind(0), CORO_REPORT_UNRETRIEVED);
#endif
}

/* FIRST_EXCEPTION, the failing task completes last (alone, or after u). */
TEST(R_WAIT_3_first_exception_error_of_last_task_not_retrieved)
{
    /* asyncio's `or` short-circuits before f.exception() once the counter
     * reaches 0, so the last future's error stays unread and is reported. */
    run_unretrieved_case(CORO_FIRST_EXCEPTION, 1, "t@10 wait=0@10 done[t] pending[]");
    run_unretrieved_case(CORO_FIRST_EXCEPTION, 2, "u@5 t@10 wait=0@10 done[t,u] pending[]");
}

/* FIRST_COMPLETED and ALL_COMPLETED never read the error. */
TEST(R_WAIT_3_first_and_all_completed_do_not_retrieve_errors)
{
    run_unretrieved_case(CORO_FIRST_COMPLETED, 1, "t@10 wait=0@10 done[t] pending[]");
    run_unretrieved_case(CORO_ALL_COMPLETED, 1, "t@10 wait=0@10 done[t] pending[]");
    run_unretrieved_case(CORO_ALL_COMPLETED, 2, "u@5 t@10 wait=0@10 done[t,u] pending[]");
}

/* T34 (test_wait_with_timeout): a 100, b 150, timeout 110: returns at 110
 * with done {a}, pending {b}, no error; b keeps running to 150. */
TEST(T34_wait_with_timeout)
{
    static const struct kid kids[] = {{"a", 100, 1}, {"b", 150, 2}};
    static const unsigned order[] = {1, 0};
    struct wmain f;
    memset(&f, 0, sizeof f);
    f.kids = kids;
    f.nkids = 2;
    f.order = order;
    f.n = 2;
    f.return_when = CORO_ALL_COMPLETED;
    f.timeout = CORO_MS(110);
    f.after = 1;
    CHECK_EQ(run_wmain(&f), 0);
    CHECK_TRACE("a@100 wait=0@110 done[a] pending[b] a=1 b@150 b=2");
    CHECK_EQ(test_reports(), 0);
}

/* T34 (test_wait_concurrent_complete): the timeout equals a's deadline.
 * Equal deadlines fire first-armed-first, and what wait sees depends on it:
 * - the test's setup (the wait starts after a and b armed their sleeps):
 *   a's step runs before the waiter's wake-up: done {a}, pending {b};
 * - wait started in the same step that spawned them: its timer is armed
 *   first, the waiter resumes before a's step: done {}, pending {b, a}.
 *
 *   a = s('a',100,1); b = s('b',150,2); [await sleep(0)]
 *   await wait([b, a], timeout=100)
 *   -> with the sleep(0): a@100 wait@100 done[a] pending[b]
 *   -> without:           wait@100 done[] pending[b,a] a@100
 */
TEST(T34_wait_timeout_equal_to_completion_time)
{
    static const struct kid kids[] = {{"a", 100, 1}, {"b", 150, 2}};
    static const unsigned order[] = {1, 0};
    for (int yield_first = 1; yield_first >= 0; yield_first--) {
        struct wmain f;
        memset(&f, 0, sizeof f);
        f.kids = kids;
        f.nkids = 2;
        f.order = order;
        f.n = 2;
        f.return_when = CORO_ALL_COMPLETED;
        f.timeout = CORO_MS(100);
        f.yield_first = yield_first;
        CHECK_EQ(run_wmain(&f), 0);
        if (yield_first)
            CHECK_TRACE("a@100 wait=0@100 done[a] pending[b]" LEFT(" b:x@100"));
        else
            CHECK_TRACE("wait=0@100 done[] pending[b,a] a@100" LEFT(" b:x@100"));
        CHECK_EQ(test_reports(), 0);
    }
}

/* R-WAIT-2: a timeout longer than the work: the wait returns when the
 * condition holds and its timer is disarmed (checked in wmain). */
TEST(R_WAIT_2_condition_before_timeout_disarms_timer)
{
    static const struct kid kids[] = {{"a", 100, 1}, {"b", 150, 2}};
    static const unsigned order[] = {0, 1};
    struct wmain f;
    memset(&f, 0, sizeof f);
    f.kids = kids;
    f.nkids = 2;
    f.order = order;
    f.n = 2;
    f.return_when = CORO_FIRST_COMPLETED;
    f.timeout = CORO_MS(5000);
    f.after = 1;
    CHECK_EQ(run_wmain(&f), 0);
    CHECK_TRACE("a@100 wait=0@100 done[a] pending[b] a=1 b@150 b=2");
    CHECK_EQ(test_reports(), 0);
}

/* T35 (test_wait_really_done): coro1 yields once, coro2 twice;
 * FIRST_COMPLETED: both are done, because "done" is read when the waiter
 * resumes (coro2 finished in between). */
struct t35 {
    coro_frame co;
    struct yielder y[2];
    coro_task t[2];
    coro_future *futs[2];
    const char *names[2];
    coro_wait w;
    coro_wait_item items[2];
};

static int t35_fn(coro_ctx *c)
{
    struct t35 *f = CORO_SELF(c, struct t35);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->t[0], yielder(&f->y[0], "a", 1, 1));
    coro_spawn(c->loop, &f->t[1], yielder(&f->y[1], "b", 2, 2));
    f->futs[0] = coro_task_future(&f->t[0]);
    f->futs[1] = coro_task_future(&f->t[1]);
    f->names[0] = "a";
    f->names[1] = "b";
    CORO_AWAIT(c, coro_wait_init(&f->w, f->items, f->futs, 2, CORO_FIRST_COMPLETED,
                                 CORO_NEVER));
    TRACE("wait=%s %s", rcs(c->rc), done_pending(f->futs, f->names, 2));
    CORO_END(c);
}

TEST(T35_wait_really_done)
{
    coro_loop L;
    coro_task t;
    struct t35 f;
    memset(&f, 0, sizeof f);
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, t35_fn)), 0);
    CHECK_TRACE("a b wait=0 done[a,b] pending[]");
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

/* ---------------------------------------------------------------------- */
/* T36: argument errors and duplicates                                     */
/* ---------------------------------------------------------------------- */

/* T36 (test_wait_errors / test_wait_invalid_args): an empty list and a bad
 * return_when are CORO_EINVAL, raised before any suspension (the sibling
 * has not run yet), with nothing registered and no timer armed. */
struct t36 {
    coro_frame co;
    struct sleeper s, sib;
    coro_task t, st;
    coro_future *futs[1];
    coro_wait w;
    coro_wait_item items[1];
    int k;
};

static int t36_fn(coro_ctx *c)
{
    static const int bad[] = {-1, 0, 4};
    struct t36 *f = CORO_SELF(c, struct t36);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->t, sleeper(&f->s, "a", 10, 1));
    coro_spawn(c->loop, &f->st, sleeper(&f->sib, "sib", -1, 0));
    f->futs[0] = coro_task_future(&f->t);
    memset(&f->w, 0, sizeof f->w);
    CORO_AWAIT(c, coro_wait_init(&f->w, f->items, f->futs, 0, CORO_ALL_COMPLETED,
                                 CORO_MS(5)));
    TRACE("empty=%s", rcs(c->rc));
    for (f->k = 0; f->k < 3; f->k++) {
        CORO_AWAIT(c, coro_wait_init(&f->w, f->items, f->futs, 1, bad[f->k],
                                     CORO_MS(5)));
        TRACE("mode%d=%s", bad[f->k], rcs(c->rc));
        CHECK(!coro_call_pending(&f->w.timer));
    }
    /* nothing was hooked on the task: it completes, nobody is woken */
    CORO_AWAIT_TASK(c, &f->t);
    TRACE("a=%s@%ld", rcs(c->rc), test_ms(c->loop));
    CORO_END(c);
}

TEST(T36_wait_invalid_arguments_einval)
{
    coro_loop L;
    coro_task t;
    struct t36 f;
    memset(&f, 0, sizeof f);
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, t36_fn)), 0);
    CHECK_TRACE("empty=EINVAL mode-1=EINVAL mode0=EINVAL mode4=EINVAL sib@0 a@10 a=1@10");
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

/* T36 (test_wait_duplicate_coroutines): wait([c, c, d]) waits for the two
 * distinct tasks (ALL_COMPLETED must not wait for a third completion). */
TEST(T36_wait_duplicates_collapse)
{
    static const struct kid kids[] = {{"c", 10, 1}, {"d", 20, 2}};
    static const unsigned order[] = {0, 0, 1};
    struct wmain f;
    memset(&f, 0, sizeof f);
    f.kids = kids;
    f.nkids = 2;
    f.order = order;
    f.n = 3;
    f.return_when = CORO_ALL_COMPLETED;
    f.timeout = CORO_NEVER;
    f.after = 1;
    CHECK_EQ(run_wmain(&f), 0);
    CHECK_TRACE("c@10 d@20 wait=0@20 done[c,c,d] pending[] c=1 d=2");
    CHECK_EQ(test_reports(), 0);
}

/* ---------------------------------------------------------------------- */
/* R-WAIT-4: cancelling the waiter                                         */
/* ---------------------------------------------------------------------- */

/* R-WAIT-4 (test_yield_wait_does_not_shield_cancel): the task inside wait()
 * is cancelled at 50: wait gives CORO_ECANCELED at once; the waited-on
 * tasks are not cancelled and run on; wait's callbacks are unhooked and
 * its timeout timer disarmed. */
struct t_wait_cancel {
    coro_frame co;
    struct sleeper s[2];
    coro_task t[2];
    coro_future *futs[2];
    coro_wait w;
    coro_wait_item items[2];
    coro_call k;
};

static int wait_cancel_fn(coro_ctx *c)
{
    struct t_wait_cancel *f = CORO_SELF(c, struct t_wait_cancel);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->t[0], sleeper(&f->s[0], "a", 100, 1));
    coro_spawn(c->loop, &f->t[1], sleeper(&f->s[1], "b", 200, 2));
    f->futs[0] = coro_task_future(&f->t[0]);
    f->futs[1] = coro_task_future(&f->t[1]);
    coro_call_later(c->loop, &f->k, CORO_MS(50), cancel_task_cb, c->task);
    CORO_AWAIT(c, coro_wait_init(&f->w, f->items, f->futs, 2, CORO_ALL_COMPLETED,
                                 CORO_MS(1000)));
    TRACE("wait=%s@%ld", rcs(c->rc), test_ms(c->loop));
    CHECK(!coro_call_pending(&f->w.timer));
    CHECK_EQ(coro_future_remove_done_callback(c->loop, f->futs[0], &f->items[0].cb), 0);
    CHECK_EQ(coro_future_remove_done_callback(c->loop, f->futs[1], &f->items[1].cb), 0);
    CHECK_EQ(coro_task_cancelling(&f->t[0]), 0);
    CHECK_EQ(coro_task_cancelling(&f->t[1]), 0);
    CHECK_EQ(coro_task_uncancel(c->task), 0); /* we handle it: go on */
    CORO_AWAIT_TASK(c, &f->t[1]);
    TRACE("b=%s@%ld", rcs(c->rc), test_ms(c->loop));
    CORO_END(c);
}

TEST(R_WAIT_4_cancelling_wait_leaves_tasks_running)
{
    coro_loop L;
    coro_task t;
    struct t_wait_cancel f;
    memset(&f, 0, sizeof f);
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, wait_cancel_fn)), 0);
    CHECK_TRACE("wait=ECANCELED@50 a@100 b@200 b=2@200");
    CHECK_EQ(test_ms(&L), 200); /* the 1000 ms timeout did not hold the loop */
    CHECK(coro_task_done(&f.t[0]));
    CHECK(!coro_task_cancelled(&f.t[0]));
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

/* ---------------------------------------------------------------------- */
/* T37-T39: as_completed                                                   */
/* ---------------------------------------------------------------------- */

/* A main coroutine for as_completed: spawns the children, then calls next()
 * `calls` times, tracing "got<index>@<ms>" or the error. */
struct acmain {
    coro_frame co;
    const struct kid *kids;
    unsigned nkids, n, calls, i;
    const unsigned *order;
    coro_time timeout;
    struct sleeper s[3];
    coro_task t[3];
    coro_future *futs[3];
    coro_as_completed ac;
    coro_ac_item items[3];
    int after;
};

static int acmain_fn(coro_ctx *c)
{
    struct acmain *f = CORO_SELF(c, struct acmain);
    CORO_BEGIN(c);
    for (unsigned i = 0; i < f->nkids; i++)
        coro_spawn(c->loop, &f->t[i],
                   sleeper(&f->s[i], f->kids[i].name, f->kids[i].ms, f->kids[i].ret));
    for (unsigned i = 0; i < f->n; i++) f->futs[i] = coro_task_future(&f->t[f->order[i]]);
    coro_as_completed_init(c->loop, &f->ac, f->items, f->futs, f->n, f->timeout);
    TRACE("left%u", coro_as_completed_left(&f->ac));
    for (f->i = 0; f->i < f->calls; f->i++) {
        CORO_AWAIT(c, coro_as_completed_next(&f->ac));
        if (c->rc >= 0) {
            /* the original future comes back (R-ASC-2) */
            CHECK(f->futs[c->rc] == coro_task_future(&f->t[f->order[c->rc]]));
            TRACE("got%d=%s@%ld", c->rc, rcs(coro_task_result(&f->t[f->order[c->rc]])),
                  test_ms(c->loop));
        } else {
            TRACE("%s@%ld", rcs(c->rc), test_ms(c->loop));
        }
    }
    TRACE("left%u", coro_as_completed_left(&f->ac));
    CHECK(!coro_call_pending(&f->ac.timer));
    if (f->after) {
        for (f->i = 0; f->i < f->nkids; f->i++) {
            CORO_AWAIT_TASK(c, &f->t[f->i]);
            TRACE("%s=%s", f->kids[f->i].name, rcs(c->rc));
        }
    }
    CORO_END(c);
}

static int run_acmain(struct acmain *f)
{
    coro_loop L;
    coro_task t;
    test_loop(&L);
    int rc = coro_run(&L, &t, coro_frame_init(&f->co, acmain_fn));
    CHECK_EQ(coro_loop_close(&L), 0);
    return rc;
}

/* T37 (test_as_completed): a and b sleep 10, c 150, passed as [b, c, a]:
 * completion order a, b (equal deadlines: first armed first), then c, at
 * 150. The second result is already queued: next() returns it without
 * suspending (asyncio.Queue.get on a non-empty queue).
 *
 *   a,b,c = tasks; async for f in as_completed([b, c, a]): T(f.result(), now())
 *   -> a@10 b@10 a 10 b 10 c@150 c 150
 */
TEST(T37_as_completed_completion_order)
{
    static const struct kid kids[] = {{"a", 10, 1}, {"b", 10, 2}, {"c", 150, 3}};
    static const unsigned order[] = {1, 2, 0};
    struct acmain f;
    memset(&f, 0, sizeof f);
    f.kids = kids;
    f.nkids = 3;
    f.order = order;
    f.n = 3;
    f.calls = 4;
    f.timeout = CORO_NEVER;
    CHECK_EQ(run_acmain(&f), 0);
    CHECK_TRACE("left3 a@10 b@10 got2=1@10 got0=2@10 c@150 got1=3@150 EINVAL@150 left0");
    CHECK_EQ(test_reports(), 0);
}

/* T38 (test_as_completed_with_timeout): a 100, b 150, timeout 120: first
 * a's index at 100, then CORO_ETIMEDOUT at 120; every further remaining
 * call also times out; b is not cancelled and completes at 150.
 *
 *   for f in as_completed([a, b], timeout=120): try: T(await f, now()) except TimeoutError: T('TO', now())
 *   -> a@100 1 100 TO 120 ; then await b -> b@150 2
 */
TEST(T38_as_completed_with_timeout)
{
    static const struct kid kids[] = {{"a", 100, 1}, {"b", 150, 2}};
    static const unsigned order[] = {0, 1};
    struct acmain f;
    memset(&f, 0, sizeof f);
    f.kids = kids;
    f.nkids = 2;
    f.order = order;
    f.n = 2;
    f.calls = 3;
    f.timeout = CORO_MS(120);
    f.after = 1;
    CHECK_EQ(run_acmain(&f), 0);
    CHECK_TRACE("left2 a@100 got0=1@100 ETIMEDOUT@120 EINVAL@120 left0 a=1 b@150 b=2");
    CHECK_EQ(test_reports(), 0);
}

/* R-ASC-3: with three children and one done before the timeout, BOTH
 * remaining calls raise TimeoutError at the deadline. */
TEST(R_ASC_3_every_remaining_wait_times_out)
{
    static const struct kid kids[] = {{"a", 100, 1}, {"b", 150, 2}, {"c", 160, 3}};
    static const unsigned order[] = {0, 1, 2};
    struct acmain f;
    memset(&f, 0, sizeof f);
    f.kids = kids;
    f.nkids = 3;
    f.order = order;
    f.n = 3;
    f.calls = 3;
    f.timeout = CORO_MS(120);
    f.after = 1;
    CHECK_EQ(run_acmain(&f), 0);
    CHECK_TRACE("left3 a@100 got0=1@100 ETIMEDOUT@120 ETIMEDOUT@120 left0 a=1 b@150 b=2 "
                "c@160 c=3");
    CHECK_EQ(test_reports(), 0);
}

/* R-ASC-3: when every child completes before the deadline the timer is
 * disarmed (checked in acmain) and nothing times out. */
TEST(R_ASC_3_all_done_before_timeout_disarms_timer)
{
    static const struct kid kids[] = {{"a", 100, 1}, {"b", 150, 2}};
    static const unsigned order[] = {1, 0};
    struct acmain f;
    memset(&f, 0, sizeof f);
    f.kids = kids;
    f.nkids = 2;
    f.order = order;
    f.n = 2;
    f.calls = 2;
    f.timeout = CORO_MS(1000);
    CHECK_EQ(run_acmain(&f), 0);
    CHECK_TRACE("left2 a@100 got1=1@100 b@150 got0=2@150 left0");
    CHECK_EQ(test_reports(), 0);
}

/* T39 (test_as_completed_duplicate_coroutines / _same_tasks_in_as_out):
 * [c, c, d] yields two results; the index names the first occurrence, i.e.
 * the original task. */
TEST(T39_as_completed_duplicates_collapse)
{
    static const struct kid kids[] = {{"c", 10, 1}, {"d", 20, 2}};
    static const unsigned order[] = {0, 0, 1};
    struct acmain f;
    memset(&f, 0, sizeof f);
    f.kids = kids;
    f.nkids = 2;
    f.order = order;
    f.n = 3;
    f.calls = 3;
    f.timeout = CORO_NEVER;
    CHECK_EQ(run_acmain(&f), 0);
    CHECK_TRACE("left2 c@10 got0=1@10 d@20 got2=2@20 EINVAL@20 left0");
    CHECK_EQ(test_reports(), 0);
}

/* as_completed over an erroring child: the error is the child's own
 * outcome; next() itself succeeds with its index. */
TEST(R_ASC_1_failed_child_is_returned_not_raised_by_next)
{
    static const struct kid kids[] = {{"a", 10, CORO_EUSER(3)}, {"b", 20, 2}};
    static const unsigned order[] = {0, 1};
    struct acmain f;
    memset(&f, 0, sizeof f);
    f.kids = kids;
    f.nkids = 2;
    f.order = order;
    f.n = 2;
    f.calls = 2;
    f.timeout = CORO_NEVER;
    CHECK_EQ(run_acmain(&f), 0);
    CHECK_TRACE("left2 a@10 got0=E3@10 b@20 got1=2@20 left0");
    CHECK_EQ(test_reports(), 0); /* read by coro_task_result in acmain */
}

/* as_completed: a consumer cancelled inside next() gets CORO_ECANCELED;
 * the children keep running. asyncio's __anext__ decrements _todo_left
 * BEFORE awaiting, so the cancelled call consumed a slot: afterwards only
 * one more item is produced.
 *
 *   a = s(10); b = s(20); it = as_completed([a, b])
 *   c = create_task(it.__anext__()); await sleep(5); c.cancel(); await c -> CE
 *   T(it._todo_left); async for f in it: T(await f)
 *   -> left 1; ['a'] at 10 (and the loop ends there)
 */
struct ac_consumer {
    coro_frame co;
    coro_as_completed *ac;
};

static int ac_consumer_fn(coro_ctx *c)
{
    struct ac_consumer *k = CORO_SELF(c, struct ac_consumer);
    CORO_BEGIN(c);
    CORO_AWAIT(c, coro_as_completed_next(k->ac));
    TRACE("consumer=%s@%ld", rcs(c->rc), test_ms(c->loop));
    CORO_RETURN(c, c->rc);
    CORO_END(c);
}

struct ac_cancel {
    coro_frame co;
    struct sleeper s[2];
    coro_task t[2], ct;
    struct ac_consumer k;
    coro_future *futs[2];
    coro_as_completed ac;
    coro_ac_item items[2];
};

static int ac_cancel_fn(coro_ctx *c)
{
    struct ac_cancel *f = CORO_SELF(c, struct ac_cancel);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->t[0], sleeper(&f->s[0], "a", 10, 1));
    coro_spawn(c->loop, &f->t[1], sleeper(&f->s[1], "b", 20, 2));
    f->futs[0] = coro_task_future(&f->t[0]);
    f->futs[1] = coro_task_future(&f->t[1]);
    coro_as_completed_init(c->loop, &f->ac, f->items, f->futs, 2, CORO_NEVER);
    f->k.ac = &f->ac;
    coro_spawn(c->loop, &f->ct, coro_frame_init(&f->k.co, ac_consumer_fn));
    CORO_SLEEP(c, CORO_MS(5));
    CHECK_EQ(coro_task_cancel(c->loop, &f->ct), 1);
    CORO_AWAIT_TASK(c, &f->ct);
    TRACE("ct=%s@%ld", rcs(c->rc), test_ms(c->loop));
    CHECK_EQ(coro_task_cancelling(&f->t[0]), 0);
    /* asyncio's __anext__ uses the slot up before awaiting: a cancelled
     * next() loses it. */
    CHECK_EQ(coro_as_completed_left(&f->ac), 1);
    CORO_AWAIT(c, coro_as_completed_next(&f->ac));
    TRACE("next=%s@%ld", rcs(c->rc), test_ms(c->loop));
    CHECK_EQ(coro_as_completed_left(&f->ac), 0);
    if (coro_as_completed_left(&f->ac) == 0) {
        CORO_AWAIT(c, coro_as_completed_next(&f->ac));
        TRACE("next=%s@%ld", rcs(c->rc), test_ms(c->loop));
    }
    coro_as_completed_close(c->loop, &f->ac);
    CORO_AWAIT_TASK(c, &f->t[1]);
    TRACE("b=%s", rcs(c->rc));
    CORO_END(c);
}

TEST(R_ASC_cancelled_next_consumes_a_slot_children_keep_running)
{
    coro_loop L;
    coro_task t;
    struct ac_cancel f;
    memset(&f, 0, sizeof f);
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, ac_cancel_fn)), 0);
    CHECK_TRACE("consumer=ECANCELED@5 ct=ECANCELED@5 a@10 next=0@10 next=EINVAL@10 b@20 b=2");
    CHECK(coro_task_cancelled(&f.ct));
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

/* coro_as_completed_close (the C stand-in for dropping the iterator):
 * unhooks every callback and disarms the timer, so the record can go. */
struct ac_close {
    coro_frame co;
    struct sleeper s[2];
    coro_task t[2];
    coro_future *futs[2];
    coro_as_completed ac;
    coro_ac_item items[2];
};

static int ac_close_fn(coro_ctx *c)
{
    struct ac_close *f = CORO_SELF(c, struct ac_close);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->t[0], sleeper(&f->s[0], "a", 10, 1));
    coro_spawn(c->loop, &f->t[1], sleeper(&f->s[1], "b", 20, 2));
    f->futs[0] = coro_task_future(&f->t[0]);
    f->futs[1] = coro_task_future(&f->t[1]);
    coro_as_completed_init(c->loop, &f->ac, f->items, f->futs, 2, CORO_MS(500));
    CORO_AWAIT(c, coro_as_completed_next(&f->ac));
    TRACE("got%d@%ld", c->rc, test_ms(c->loop));
    coro_as_completed_close(c->loop, &f->ac);
    CHECK(!coro_call_pending(&f->ac.timer));
    CHECK_EQ(coro_future_remove_done_callback(c->loop, f->futs[1], &f->items[1].cb), 0);
    CHECK_EQ(coro_as_completed_left(&f->ac), 0);
    if (!coro_call_pending(&f->ac.timer)) { /* nothing may touch it any more */
        memset(&f->ac, 0xA5, sizeof f->ac);
        memset(f->items, 0xA5, sizeof f->items);
    }
    CORO_AWAIT_TASK(c, &f->t[1]);
    TRACE("b=%s@%ld", rcs(c->rc), test_ms(c->loop));
    CORO_END(c);
}

TEST(R_ASC_close_unhooks_callbacks_and_timer)
{
    coro_loop L;
    coro_task t;
    struct ac_close f;
    memset(&f, 0, sizeof f);
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, ac_close_fn)), 0);
    CHECK_TRACE("a@10 got0@10 b@20 b=2@20");
    CHECK_EQ(test_ms(&L), 20);
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}
