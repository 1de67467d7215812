/* test_timeout.c - shield (R-SH-*, T40-T41), wait_for (R-WF-*, T51-T59) and
 * timeout scopes (R-TO-*, T60-T67).
 *
 * Orderings were checked against CPython 3.13.0 on a virtual-time loop
 * (test/conformance/ref.py's VirtualLoop: integer ms, equal deadlines fire
 * first-armed-first); the Python probes are quoted above the tests. asyncio
 * runs a coroutine passed to wait_for inline in the caller; coro's wait_for
 * takes futures, so "wait_for(coro(), t)" is written as the timeout scope it
 * is built on (R-WF-3: `async with timeout(t): return await aw`). */
#include "test.h"

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

/* Sleeps `ms` (0: one yield; < 0: no await at all), then traces "<name>@<ms>" and returns `ret`.
 * When cancelled it traces "<name>:x@<ms>", sleeps `cleanup_ms` more (if
 * any), and returns `on_cancel` (CORO_ECANCELED: propagate; a value:
 * swallow; another error: "raise in finally"). With `fin` set, its
 * CORO_FINALLY traces "<name>:fin@<ms>" on every exit. */
struct worker {
    coro_frame co;
    const char *name;
    int ms, ret, on_cancel, cleanup_ms, fin;
};

static int worker_fn(coro_ctx *c)
{
    struct worker *w = CORO_SELF(c, struct worker);
    CORO_BEGIN(c);
    if (w->ms >= 0) {
        CORO_SLEEP(c, CORO_MS(w->ms));
        if (c->rc < 0) {
            TRACE("%s:x@%ld", w->name, test_ms(c->loop));
            if (w->cleanup_ms) CORO_SLEEP(c, CORO_MS(w->cleanup_ms));
            CORO_RETURN(c, w->on_cancel);
        }
    }
    TRACE("%s@%ld", w->name, test_ms(c->loop));
    CORO_RETURN(c, w->ret);
    CORO_FINALLY(c);
    if (w->fin) TRACE("%s:fin@%ld", w->name, test_ms(c->loop));
    CORO_END(c);
}

static coro_frame *worker(struct worker *w, const char *name, int ms, int ret)
{
    memset(w, 0, sizeof *w);
    w->name = name;
    w->ms = ms;
    w->ret = ret;
    w->on_cancel = CORO_ECANCELED;
    return coro_frame_init(&w->co, worker_fn);
}

/* asyncio's SlowTask (test_waitfor.py): runs until `exitat` ms, swallowing
 * every cancellation ("slow:swallow@<ms>"), then returns 0. */
struct slow {
    coro_frame co;
    long exitat;
};

static int slow_fn(coro_ctx *c)
{
    struct slow *s = CORO_SELF(c, struct slow);
    CORO_BEGIN(c);
    while (test_ms(c->loop) < s->exitat) {
        CORO_SLEEP(c, CORO_MS(s->exitat - test_ms(c->loop)));
        if (c->rc < 0) TRACE("slow:swallow@%ld", test_ms(c->loop));
    }
    TRACE("slow:exit@%ld", test_ms(c->loop));
    CORO_END(c);
}

static coro_frame *slow(struct slow *s, long exitat)
{
    s->exitat = exitat;
    return coro_frame_init(&s->co, slow_fn);
}

/* Awaits future f; traces "<name>:x@<ms>" on failure; bumps *proof on
 * success and returns f's value. */
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

static void cancel_task_cb(coro_loop *L, void *arg)
{
    coro_task_cancel(L, (coro_task *)arg);
}

/* Runs `frame` as the main task with coro_run; checks the loop closes with
 * no report; returns main's result. */
static int run_main(coro_frame *frame)
{
    coro_loop L;
    coro_task t;
    test_loop(&L);
    int rc = coro_run(&L, &t, frame);
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
    return rc;
}

/* ====================================================================== */
/* shield                                                                  */
/* ====================================================================== */

/* T40 (test_shield_result / _exception): the inner outcome reaches the
 * outer future through one done-callback (one iteration). */
TEST(T40_shield_result_and_error_propagate)
{
    for (int err = 0; err < 2; err++) {
        coro_loop L;
        coro_future inner;
        coro_shield s;
        coro_future *outer;
        test_loop(&L);
        coro_future_init(&inner);
        outer = coro_shield_start(&L, &s, &inner);
        CHECK(outer != &inner);
        if (err)
            coro_future_set_error(&L, &inner, CORO_EUSER(1));
        else
            coro_future_set_result(&L, &inner, 42);
        CHECK(!coro_future_done(outer));
        CHECK_EQ(coro_loop_run_once(&L), 0);
        if (err) {
            CHECK_EQ(coro_future_state(outer), CORO_FUTURE_ERROR);
            CHECK_EQ(coro_future_rc(outer), CORO_EUSER(1));
        } else {
            CHECK_EQ(coro_future_state(outer), CORO_FUTURE_RESULT);
            CHECK_EQ(coro_future_value(outer), 42);
        }
        CHECK_EQ(coro_loop_close(&L), 0);
        CHECK_EQ(test_reports(), 0);
    }
}

/* T40 (test_shield_cancel_inner): cancelling the inner cancels the outer. */
TEST(T40_shield_cancel_inner_cancels_outer)
{
    coro_loop L;
    coro_future inner;
    coro_shield s;
    coro_future *outer;
    test_loop(&L);
    coro_future_init(&inner);
    outer = coro_shield_start(&L, &s, &inner);
    CHECK_EQ(coro_future_cancel(&L, &inner), 1);
    CHECK_EQ(coro_loop_run_once(&L), 0);
    CHECK(coro_future_cancelled(outer));
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

/* T40 (test_shield_cancel_outer): cancelling the outer leaves it cancelled
 * with no callbacks left, unhooks the shield from the inner, and the inner
 * keeps going: completing it later schedules nothing. */
TEST(T40_shield_cancel_outer_leaves_inner_running)
{
    coro_loop L;
    coro_future inner;
    coro_shield s;
    coro_future *outer;
    test_loop(&L);
    coro_future_init(&inner);
    outer = coro_shield_start(&L, &s, &inner);
    CHECK_EQ(coro_future_cancel(&L, outer), 1);
    CHECK_EQ(coro_loop_run_once(&L), 0);
    CHECK(coro_future_cancelled(outer));
    CHECK(!coro_future_done(&inner));
    CHECK_EQ(coro_future_remove_done_callback(&L, outer, &s.outer_cb), 0);
    CHECK_EQ(coro_future_remove_done_callback(&L, &inner, &s.inner_cb), 0);
    CHECK_EQ(coro_future_set_result(&L, &inner, 1), 0);
    CHECK_EQ(coro_loop_run_once(&L), CORO_EDEADLK); /* nothing was scheduled */
    CHECK(coro_future_cancelled(outer));
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

/* T40 (test_shield_shortcut) / R-SH-1: an already-done argument is
 * returned unchanged (plain future or task). */
TEST(T40_shield_shortcut_returns_done_argument)
{
    coro_loop L;
    coro_future f;
    coro_shield s;
    coro_task t;
    struct worker w;
    test_loop(&L);
    coro_future_init(&f);
    coro_future_set_result(&L, &f, 5);
    CHECK(coro_shield_start(&L, &s, &f) == &f);
    coro_spawn(&L, &t, worker(&w, "t", 0, 6));
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), 6);
    CHECK(coro_shield_start(&L, &s, &t.fut) == &t.fut);
    CHECK_TRACE("t@0");
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

/* T40 with a task inner: the outer future's value is the task's result. */
struct shield_task {
    coro_frame co;
    struct worker w;
    coro_task t;
    coro_shield s;
};

static int shield_task_fn(coro_ctx *c)
{
    struct shield_task *f = CORO_SELF(c, struct shield_task);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->t, worker(&f->w, "t", 10, 33));
    CORO_AWAIT_FUTURE(c, coro_shield_start(c->loop, &f->s, &f->t.fut));
    TRACE("main=%s value=%d@%ld", rcs(c->rc), (int)coro_future_value(&f->s.outer),
          test_ms(c->loop));
    CORO_END(c);
}

TEST(T40_shield_of_task_carries_its_result)
{
    struct shield_task f;
    memset(&f, 0, sizeof f);
    CHECK_EQ(run_main(coro_frame_init(&f.co, shield_task_fn)), 0);
    CHECK_TRACE("t@10 main=0 value=33@10");
}

/* T41 (test_shield_effect): outer awaits shield(inner task); cancelling
 * outer raises CancelledError in it at once, inner keeps waiting; after
 * waiter.set_result inner completes (proof 1) and outer's +100 never ran. */
struct t41_outer {
    coro_frame co;
    coro_shield s;
    coro_task *inner;
    int *proof;
};

static int t41_outer_fn(coro_ctx *c)
{
    struct t41_outer *o = CORO_SELF(c, struct t41_outer);
    CORO_BEGIN(c);
    CORO_AWAIT_FUTURE(c, coro_shield_start(c->loop, &o->s, &o->inner->fut));
    if (c->rc < 0) {
        TRACE("outer:x@%ld", test_ms(c->loop));
        CORO_FAIL(c, c->rc);
    }
    *o->proof += 100;
    CORO_END(c);
}

struct t41 {
    coro_frame co;
    coro_future waiter;
    struct fwait w;
    struct t41_outer o;
    coro_task inner, outer;
    int proof;
};

static int t41_fn(coro_ctx *c)
{
    struct t41 *f = CORO_SELF(c, struct t41);
    CORO_BEGIN(c);
    coro_future_init(&f->waiter);
    coro_spawn(c->loop, &f->inner, fwait(&f->w, "inner", &f->waiter, &f->proof));
    f->o.inner = &f->inner;
    f->o.proof = &f->proof;
    coro_spawn(c->loop, &f->outer, coro_frame_init(&f->o.co, t41_outer_fn));
    CORO_YIELD(c);
    CHECK_EQ(coro_task_cancel(c->loop, &f->outer), 1);
    CORO_AWAIT_TASK(c, &f->outer);
    TRACE("main=%s", rcs(c->rc));
    CHECK(!coro_task_done(&f->inner));
    CHECK_EQ(coro_task_cancelling(&f->inner), 0);
    coro_future_set_result(c->loop, &f->waiter, 0);
    CORO_AWAIT_TASK(c, &f->inner);
    TRACE("inner=%s proof=%d", rcs(c->rc), f->proof);
    CORO_END(c);
}

TEST(T41_shield_effect)
{
    struct t41 f;
    memset(&f, 0, sizeof f);
    CHECK_EQ(run_main(coro_frame_init(&f.co, t41_fn)), 0);
    CHECK_TRACE("outer:x@0 main=ECANCELED inner=0 proof=1");
    CHECK(coro_task_cancelled(&f.outer));
}

/* R-SH-2: the outer was cancelled and unhooked long before the inner task
 * failed: nobody reads that error, so it is reported (asyncio logs "Task
 * exception was never retrieved").
 *
 *   it = create_task(inner())  # sleep(10); raise ZeroDivisionError
 *   o = shield(it); await sleep(0); o.cancel(); await sleep(20); del it, o
 *   -> errors: ['Task exception was never retrieved']
 */
struct sh_unread {
    coro_frame co;
    struct worker w;
    coro_task t;
    coro_shield s;
};

static int sh_unread_fn(coro_ctx *c)
{
    struct sh_unread *f = CORO_SELF(c, struct sh_unread);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->t, worker(&f->w, "inner", 10, CORO_EUSER(1)));
    coro_future_cancel(c->loop, coro_shield_start(c->loop, &f->s, &f->t.fut));
    CORO_SLEEP(c, CORO_MS(20));
    CHECK(coro_task_done(&f->t));
    CORO_END(c);
}

TEST(R_SH_2_inner_error_after_outer_cancel_is_reported)
{
    coro_loop L;
    coro_task t;
    struct sh_unread f;
    memset(&f, 0, sizeof f);
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, sh_unread_fn)), 0);
    CHECK_TRACE("inner@10");
    CHECK_EQ(coro_loop_close(&L), 0);
#if !defined(CORO_NO_DIAG) && !defined(CORO_NO_REGISTRY) /* the report */
    CHECK_EQ(test_reports(), 1);
    CHECK_EQ(test_report_kind(0), CORO_REPORT_UNRETRIEVED);
#endif
}

/* R-SH-2: the inner fails in the same iteration in which the outer is
 * cancelled, before the outer's unhook callback ran: the shield's inner
 * callback sees a cancelled outer and marks the error retrieved.
 *
 *   inner: await gate; raise ZeroDivisionError
 *   o = shield(it); await sleep(0)
 *   call_soon(A)  # A: gate.set_result(); call_soon(B)   B: o.cancel()
 *   -> 'inner fails' 'B', no log
 */
struct race {
    coro_future gate;
    coro_future *outer;
    coro_call a, b;
};

static void race_b(coro_loop *L, void *arg)
{
    struct race *r = (struct race *)arg;
    TRACE("B");
    coro_future_cancel(L, r->outer);
}

static void race_a(coro_loop *L, void *arg)
{
    struct race *r = (struct race *)arg;
    coro_future_set_error(L, &r->gate, CORO_EUSER(1)); /* inner will fail */
    coro_call_soon(L, &r->b, race_b, r);
}

TEST(R_SH_2_inner_error_racing_outer_cancel_is_retrieved)
{
    coro_loop L;
    coro_task t;
    struct fwait w;
    coro_shield s;
    struct race r;
    test_loop(&L);
    memset(&r, 0, sizeof r);
    coro_future_init(&r.gate);
    coro_spawn(&L, &t, fwait(&w, "inner", &r.gate, NULL));
    r.outer = coro_shield_start(&L, &s, &t.fut);
    CHECK_EQ(coro_loop_run_once(&L), 0); /* inner parks on gate */
    coro_call_soon(&L, &r.a, race_a, &r);
    CHECK_EQ(coro_loop_run_once(&L), 0); /* A: gate set, B queued */
    CHECK_EQ(coro_loop_run_once(&L), 0); /* inner resumes first, then B */
    CHECK(coro_task_done(&t));
    CHECK(coro_future_cancelled(r.outer));
    CHECK_EQ(coro_future_state(&t.fut), CORO_FUTURE_ERROR); /* (does not retrieve) */
    CHECK_EQ(coro_loop_run_once(&L), 0); /* shield callbacks */
    CHECK_TRACE("inner:x@0 B");
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

/* ====================================================================== */
/* wait_for                                                                */
/* ====================================================================== */

/* A main coroutine running wait_for(fut, timeout) and tracing
 * "wf=<rc>@<ms>". */
struct wfmain {
    coro_frame co;
    coro_wait_for wf;
    struct worker w;
    coro_task t;
    coro_time timeout;
    int yield_first; /* let the task start before wait_for */
};

static int wf_spawned_fn(coro_ctx *c)
{
    struct wfmain *f = CORO_SELF(c, struct wfmain);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->t, &f->w.co);
    if (f->yield_first) CORO_YIELD(c);
    CORO_AWAIT(c, coro_wait_for_init(&f->wf, &f->t.fut, f->timeout));
    TRACE("wf=%s@%ld", rcs(c->rc), test_ms(c->loop));
    CHECK_EQ(coro_task_cancelling(c->task), 0);
    CHECK(!coro_call_pending(&f->wf.tm.call));
    CORO_RETURN(c, c->rc);
    CORO_END(c);
}

/* T51 (test_wait_for): the task sleeps for a long time; wait_for(task,
 * 100 ms) cancels it at 100, waits for it, and raises TimeoutError; the
 * task is done and cancelled and its finally ran. */
TEST(T51_wait_for_times_out_and_cancels_task)
{
    struct wfmain f;
    memset(&f, 0, sizeof f);
    worker(&f.w, "foo", 100000, 7);
    f.w.fin = 1;
    f.timeout = CORO_MS(100);
    CHECK_EQ(run_main(coro_frame_init(&f.co, wf_spawned_fn)), CORO_ETIMEDOUT);
    CHECK_TRACE("foo:x@100 foo:fin@100 wf=ETIMEDOUT@100");
    CHECK(coro_task_cancelled(&f.t));
    CHECK_EQ(coro_task_cancelling(&f.t), 1);
}

/* R-WF-1 / test_wait_for_blocking: no timeout simply awaits. */
TEST(R_WF_1_wait_for_without_timeout_awaits)
{
    struct wfmain f;
    memset(&f, 0, sizeof f);
    worker(&f.w, "foo", 30, 7);
    f.timeout = CORO_NEVER;
    CHECK_EQ(run_main(coro_frame_init(&f.co, wf_spawned_fn)), 7);
    CHECK_TRACE("foo@30 wf=7@30");
}

/* T52 (test_asyncio_wait_for_timeout): SlowTask swallows the cancellation
 * and runs to 200; wait_for(.., 100) returns only when it exited, and since
 * the inner swallowed the cancel and finished normally, with its result
 * (no TimeoutError), both inline (a timeout scope) and as a task.
 *
 *   await wait_for(SlowTask(200).run(), 100) -> None at 200
 *   st = create_task(SlowTask(now+200).run()); await wait_for(st, 100) -> None at 400
 *   -> slow:swallow@100 slow:exit@200 wf=None@200 slow:swallow@300 slow:exit@400 wf=None@400
 */
struct t52 {
    coro_frame co;
    struct slow s;
    coro_timeout tm;
    coro_task t;
    coro_wait_for wf;
};

static int t52_fn(coro_ctx *c)
{
    struct t52 *f = CORO_SELF(c, struct t52);
    CORO_BEGIN(c);
    CHECK_EQ(coro_timeout_enter(c, &f->tm, CORO_MS(100)), 0);
    CORO_AWAIT(c, slow(&f->s, 200));
    c->rc = coro_timeout_exit(c, &f->tm, c->rc);
    TRACE("wf=%s@%ld expired=%d", rcs(c->rc), test_ms(c->loop),
          coro_timeout_expired(&f->tm));
    coro_spawn(c->loop, &f->t, slow(&f->s, test_ms(c->loop) + 200));
    CORO_AWAIT(c, coro_wait_for_init(&f->wf, &f->t.fut, CORO_MS(100)));
    TRACE("wf=%s@%ld/%d", rcs(c->rc), test_ms(c->loop), coro_task_cancelling(&f->t));
    CHECK_EQ(coro_task_cancelling(c->task), 0);
    CORO_END(c);
}

TEST(T52_wait_for_waits_for_inner_to_exit)
{
    struct t52 f;
    memset(&f, 0, sizeof f);
    CHECK_EQ(run_main(coro_frame_init(&f.co, t52_fn)), 0);
    CHECK_TRACE("slow:swallow@100 slow:exit@200 wf=0@200 expired=1 "
                "slow:swallow@300 slow:exit@400 wf=0@400/1");
}

/* T52 (test_asyncio_wait_for_cancelled): the task running wait_for(slow,
 * 400) is cancelled after one iteration: the cancel reaches SlowTask, which
 * swallows it and exits at 200; the wait_for task then ends normally.
 *
 *   w = create_task(wait_for(SlowTask(200).run(), 400)); await sleep(0)
 *   w.cancel(); await wait({w})
 *   -> slow:swallow@0 slow:exit@200 w cancelled=False res=None@200
 */
struct t52c_w {
    coro_frame co;
    struct slow s;
    coro_task t;
    coro_wait_for wf;
};

static int t52c_w_fn(coro_ctx *c)
{
    struct t52c_w *f = CORO_SELF(c, struct t52c_w);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->t, slow(&f->s, 200));
    CORO_AWAIT(c, coro_wait_for_init(&f->wf, &f->t.fut, CORO_MS(400)));
    CORO_RETURN(c, c->rc);
    CORO_END(c);
}

struct t52c {
    coro_frame co;
    struct t52c_w wm;
    coro_task w;
};

static int t52c_fn(coro_ctx *c)
{
    struct t52c *f = CORO_SELF(c, struct t52c);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->w, coro_frame_init(&f->wm.co, t52c_w_fn));
    CORO_YIELD(c);
    CORO_YIELD(c); /* the SlowTask has started its sleep */
    CHECK_EQ(coro_task_cancel(c->loop, &f->w), 1);
    CORO_AWAIT_TASK(c, &f->w);
    TRACE("w=%s cancelled=%d@%ld", rcs(c->rc), coro_task_cancelled(&f->w),
          test_ms(c->loop));
    CORO_END(c);
}

TEST(T52_wait_for_cancelled_waits_for_inner_to_exit)
{
    struct t52c f;
    memset(&f, 0, sizeof f);
    CHECK_EQ(run_main(coro_frame_init(&f.co, t52c_fn)), 0);
    CHECK_TRACE("slow:swallow@0 slow:exit@200 w=0 cancelled=0@200");
    CHECK(!coro_call_pending(&f.wm.wf.tm.call));
}

/* T53 (test_wait_for_timeout_less_then_0_or_0_future_done): timeout 0 on
 * a done future (or task) returns its outcome without cancelling it. */
struct t53_done {
    coro_frame co;
    coro_future fut;
    struct worker w;
    coro_task t;
    coro_wait_for wf;
};

static int t53_done_fn(coro_ctx *c)
{
    struct t53_done *f = CORO_SELF(c, struct t53_done);
    CORO_BEGIN(c);
    coro_future_init(&f->fut);
    coro_future_set_result(c->loop, &f->fut, 11);
    CORO_AWAIT(c, coro_wait_for_init(&f->wf, &f->fut, 0));
    TRACE("fut=%s value=%d", rcs(c->rc), (int)coro_future_value(&f->fut));
    coro_spawn(c->loop, &f->t, worker(&f->w, "t", 0, 12));
    CORO_AWAIT_TASK(c, &f->t);
    CORO_AWAIT(c, coro_wait_for_init(&f->wf, &f->t.fut, CORO_MS(-1)));
    TRACE("task=%s cancelled=%d", rcs(c->rc), coro_task_cancelled(&f->t));
    CORO_END(c);
}

TEST(T53_wait_for_zero_timeout_done_future_returns_result)
{
    struct t53_done f;
    memset(&f, 0, sizeof f);
    CHECK_EQ(run_main(coro_frame_init(&f.co, t53_done_fn)), 0);
    CHECK_TRACE("fut=0 value=11 t@0 task=12 cancelled=0");
}

/* T53 (..._coroutine_do_not_started / R-WF-2): wait_for(coro(), 0) wraps the
 * coroutine in a task and cancels it before its first step: TimeoutError,
 * and the body never ran. */
struct t53_ns {
    coro_frame co;
    struct worker w;
    coro_task t;
    coro_wait_for wf;
};

static int t53_ns_fn(coro_ctx *c)
{
    struct t53_ns *f = CORO_SELF(c, struct t53_ns);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->t, worker(&f->w, "foo", 0, 1));
    f->w.fin = 1;
    CORO_AWAIT(c, coro_wait_for_init(&f->wf, &f->t.fut, 0));
    TRACE("wf=%s@%ld", rcs(c->rc), test_ms(c->loop));
    CHECK(coro_task_cancelled(&f->t));
    CORO_END(c);
}

TEST(T53_wait_for_zero_timeout_coroutine_never_starts)
{
    struct t53_ns f;
    memset(&f, 0, sizeof f);
    CHECK_EQ(run_main(coro_frame_init(&f.co, t53_ns_fn)), 0);
    CHECK_TRACE("wf=ETIMEDOUT@0"); /* no "foo", not even its finally */
}

/* T53 (test_wait_for_timeout_less_then_0_or_0): timeout 0 or -1 on a
 * running task: it is cancelled and awaited (its finally ran), then
 * TimeoutError. */
struct t53_run {
    coro_frame co;
    struct worker w;
    coro_task t;
    coro_wait_for wf;
    coro_time timeout;
};

static int t53_run_fn(coro_ctx *c)
{
    struct t53_run *f = CORO_SELF(c, struct t53_run);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->t, worker(&f->w, "foo", 10000, 1));
    f->w.fin = 1;
    CORO_YIELD(c); /* await started */
    CORO_AWAIT(c, coro_wait_for_init(&f->wf, &f->t.fut, f->timeout));
    TRACE("wf=%s@%ld", rcs(c->rc), test_ms(c->loop));
    CHECK(coro_task_cancelled(&f->t));
    CORO_END(c);
}

TEST(T53_wait_for_zero_or_negative_timeout_cancels_running_task)
{
    for (int neg = 0; neg < 2; neg++) {
        struct t53_run f;
        memset(&f, 0, sizeof f);
        f.timeout = neg ? CORO_MS(-1) : 0;
        CHECK_EQ(run_main(coro_frame_init(&f.co, t53_run_fn)), 0);
        CHECK_TRACE("foo:x@0 foo:fin@0 wf=ETIMEDOUT@0");
    }
}

/* T54 (test_wait_for_cancel_suppressed / _cancellation_race_condition,
 * GH-86296): the inner work catches the cancellation and returns 42:
 * wait_for returns 42, inline (timeout scope) and as a task. */
struct t54 {
    coro_frame co;
    struct worker w;
    coro_timeout tm;
    coro_task t;
    coro_wait_for wf;
};

static int t54_fn(coro_ctx *c)
{
    struct t54 *f = CORO_SELF(c, struct t54);
    CORO_BEGIN(c);
    CHECK_EQ(coro_timeout_enter(c, &f->tm, CORO_MS(100)), 0);
    worker(&f->w, "inline", 10000, 1);
    f->w.on_cancel = 42;
    CORO_AWAIT(c, &f->w.co);
    c->rc = coro_timeout_exit(c, &f->tm, c->rc);
    TRACE("inline=%s@%ld expired=%d", rcs(c->rc), test_ms(c->loop),
          coro_timeout_expired(&f->tm));
    coro_spawn(c->loop, &f->t, worker(&f->w, "task", 10000, 1));
    f->w.on_cancel = 42;
    CORO_AWAIT(c, coro_wait_for_init(&f->wf, &f->t.fut, CORO_MS(100)));
    TRACE("task=%s@%ld", rcs(c->rc), test_ms(c->loop));
    CHECK_EQ(coro_task_cancelling(c->task), 0);
    CHECK(!coro_task_cancelled(&f->t));
    CORO_END(c);
}

TEST(T54_R_WF_3_wait_for_returns_value_when_inner_swallows_cancel)
{
    struct t54 f;
    memset(&f, 0, sizeof f);
    CHECK_EQ(run_main(coro_frame_init(&f.co, t54_fn)), 0);
    CHECK_TRACE("inline:x@100 inline=42@100 expired=1 task:x@200 task=42@200");
}

/* T55 (test_wait_for_waits_for_task_cancellation): on cancellation the
 * inner task sleeps 1 ms more, then re-raises: TimeoutError comes only
 * after it finished (at 2, not 1). */
TEST(T55_wait_for_waits_for_task_cancellation)
{
    struct wfmain f;
    memset(&f, 0, sizeof f);
    worker(&f.w, "inner", 10000, 7);
    f.w.cleanup_ms = 1;
    f.w.fin = 1;
    f.timeout = CORO_MS(1);
    CHECK_EQ(run_main(coro_frame_init(&f.co, wf_spawned_fn)), CORO_ETIMEDOUT);
    CHECK_TRACE("inner:x@1 inner:fin@2 wf=ETIMEDOUT@2");
    CHECK(coro_task_cancelled(&f.t));
}

/* T55 (..._w_timeout_0): the same with timeout 0 after the task started:
 * the cancel-and-wait path also waits for the cleanup. */
struct t55z {
    coro_frame co;
    struct worker w;
    coro_task t;
    coro_wait_for wf;
};

static int t55z_fn(coro_ctx *c)
{
    struct t55z *f = CORO_SELF(c, struct t55z);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->t, worker(&f->w, "inner", 10000, 7));
    f->w.cleanup_ms = 1;
    f->w.fin = 1;
    CORO_SLEEP(c, CORO_MS(1));
    CORO_AWAIT(c, coro_wait_for_init(&f->wf, &f->t.fut, 0));
    TRACE("wf=%s@%ld", rcs(c->rc), test_ms(c->loop));
    CORO_END(c);
}

TEST(T55_wait_for_zero_timeout_waits_for_task_cancellation)
{
    struct t55z f;
    memset(&f, 0, sizeof f);
    CHECK_EQ(run_main(coro_frame_init(&f.co, t55z_fn)), 0);
    CHECK_TRACE("inner:x@1 inner:fin@2 wf=ETIMEDOUT@2");
}

/* T56 (test_wait_for_reraises_exception_during_cancellation): the inner
 * task's finally raises: wait_for raises that error, not TimeoutError
 * (both for timeout > 0 and timeout 0). */
TEST(T56_wait_for_reraises_error_raised_during_cancellation)
{
    for (int zero = 0; zero < 2; zero++) {
        struct wfmain f;
        memset(&f, 0, sizeof f);
        worker(&f.w, "inner", 200, 7);
        f.w.on_cancel = CORO_EUSER(5);
        f.timeout = zero ? 0 : CORO_MS(1);
        f.yield_first = 1;
        CHECK_EQ(run_main(coro_frame_init(&f.co, wf_spawned_fn)), CORO_EUSER(5));
        if (zero)
            CHECK_TRACE("inner:x@0 wf=E5@0");
        else
            CHECK_TRACE("inner:x@1 wf=E5@1");
        CHECK(!coro_task_cancelled(&f.t));
    }
}

/* T57 (test_cancel_wait_for / test_cancel_blocking_wait_for, issue 23219):
 * the task running wait_for(task, 60 s or None) around a forever-blocked
 * task is cancelled: CancelledError, the inner task is cancelled too, and
 * the 60 s timer is disarmed (the loop does not wait for it). */
struct t57_wait {
    coro_frame co;
    coro_wait_for wf;
    coro_task *t;
    coro_time timeout;
};

static int t57_wait_fn(coro_ctx *c)
{
    struct t57_wait *f = CORO_SELF(c, struct t57_wait);
    CORO_BEGIN(c);
    CORO_AWAIT(c, coro_wait_for_init(&f->wf, &f->t->fut, f->timeout));
    TRACE("wf=%s@%ld", rcs(c->rc), test_ms(c->loop));
    CORO_RETURN(c, c->rc);
    CORO_END(c);
}

struct t57 {
    coro_frame co;
    coro_future never;
    struct fwait b;
    struct t57_wait wm;
    coro_task blocking, wait;
    coro_call k;
};

static int t57_fn(coro_ctx *c)
{
    struct t57 *f = CORO_SELF(c, struct t57);
    CORO_BEGIN(c);
    coro_future_init(&f->never);
    coro_spawn(c->loop, &f->blocking, fwait(&f->b, "blocking", &f->never, NULL));
    f->wm.t = &f->blocking;
    coro_spawn(c->loop, &f->wait, coro_frame_init(&f->wm.co, t57_wait_fn));
    coro_call_soon(c->loop, &f->k, cancel_task_cb, &f->wait);
    CORO_AWAIT_TASK(c, &f->wait);
    TRACE("main=%s@%ld", rcs(c->rc), test_ms(c->loop));
    CHECK(coro_task_cancelled(&f->blocking));
    CHECK(coro_future_cancelled(&f->never));
    CHECK(!coro_call_pending(&f->wm.wf.tm.call));
    CORO_END(c);
}

TEST(T57_cancel_wait_for_cancels_inner_task)
{
    static const coro_time timeouts[] = {CORO_S(60), CORO_NEVER};
    for (int i = 0; i < 2; i++) {
        struct t57 f;
        memset(&f, 0, sizeof f);
        f.wm.timeout = timeouts[i];
        CHECK_EQ(run_main(coro_frame_init(&f.co, t57_fn)), 0);
        CHECK_TRACE("blocking:x@0 wf=ECANCELED@0 main=ECANCELED@0");
    }
}

/* T58 (test_wait_for_race_condition): the future is resolved by call_soon
 * before the 200 ms timeout: the result is "ok"; no timer survives. */
static void set_7(coro_loop *L, void *arg)
{
    coro_future_set_result(L, (coro_future *)arg, 7);
}

struct t58 {
    coro_frame co;
    coro_future fut;
    coro_call k;
    coro_wait_for wf;
};

static int t58_fn(coro_ctx *c)
{
    struct t58 *f = CORO_SELF(c, struct t58);
    CORO_BEGIN(c);
    coro_future_init(&f->fut);
    coro_call_soon(c->loop, &f->k, set_7, &f->fut);
    CORO_AWAIT(c, coro_wait_for_init(&f->wf, &f->fut, CORO_MS(200)));
    TRACE("wf=%s value=%d@%ld", rcs(c->rc), (int)coro_future_value(&f->fut),
          test_ms(c->loop));
    CHECK(!coro_call_pending(&f->wf.tm.call));
    CHECK(!coro_timeout_expired(&f->wf.tm));
    CORO_END(c);
}

TEST(T58_wait_for_race_condition_result_before_timeout)
{
    struct t58 f;
    memset(&f, 0, sizeof f);
    CHECK_EQ(run_main(coro_frame_init(&f.co, t58_fn)), 0);
    CHECK_TRACE("wf=0 value=7@0");
}

/* T58 (test_wait_for_issue86296): inner completes in one cycle; the outer
 * task awaits wait_for(inner, 100) then sleep(1000) and is cancelled after
 * one cycle: it raises CancelledError (the cancel is not lost), inner's
 * result is still there, the code after the sleep never runs. */
struct t58b_w {
    coro_frame co;
    coro_wait_for wf;
    coro_task *inner;
};

static int t58b_w_fn(coro_ctx *c)
{
    struct t58b_w *f = CORO_SELF(c, struct t58b_w);
    CORO_BEGIN(c);
    CORO_AWAIT(c, coro_wait_for_init(&f->wf, &f->inner->fut, CORO_MS(100)));
    TRACE("wf=%s", rcs(c->rc));
    CORO_SLEEP(c, CORO_MS(1000));
    if (c->rc < 0) CORO_FAIL(c, c->rc);
    TRACE("reached_end");
    CORO_END(c);
}

struct t58b {
    coro_frame co;
    struct worker iw;
    struct t58b_w wm;
    coro_task inner, task;
};

static int t58b_fn(coro_ctx *c)
{
    struct t58b *f = CORO_SELF(c, struct t58b);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->inner, worker(&f->iw, "inner", -1, 9));
    f->wm.inner = &f->inner;
    coro_spawn(c->loop, &f->task, coro_frame_init(&f->wm.co, t58b_w_fn));
    CORO_YIELD(c);
    CHECK_EQ(coro_task_cancel(c->loop, &f->task), 1);
    CORO_AWAIT_TASK(c, &f->task);
    TRACE("task=%s@%ld", rcs(c->rc), test_ms(c->loop));
    CORO_AWAIT_TASK(c, &f->inner);
    TRACE("inner=%s", rcs(c->rc));
    CORO_END(c);
}

TEST(T58_wait_for_issue86296_cancel_not_lost)
{
    struct t58b f;
    memset(&f, 0, sizeof f);
    CHECK_EQ(run_main(coro_frame_init(&f.co, t58b_fn)), 0);
    CHECK_TRACE("inner@0 wf=9 task=ECANCELED@0 inner=9");
    CHECK(coro_task_cancelled(&f.task));
}

/* R-WF-4: the inner task finished and the wait_for task's wake-up is
 * queued when the cancel arrives (a done-callback on inner registered
 * before the waiter's): the cancel is not lost, the waiter raises
 * CancelledError, and inner's result stays available.
 *
 *   it = create_task(inner())  # sleep(10); return 5
 *   it.add_done_callback(lambda _: W.cancel())
 *   W = create_task(wait_for(it, 100)); await W
 *   -> cb True, wf=CE@10, W cancelled, it.result() 5
 */
struct wf4_w {
    coro_frame co;
    coro_wait_for wf;
    coro_task *inner;
};

static int wf4_w_fn(coro_ctx *c)
{
    struct wf4_w *f = CORO_SELF(c, struct wf4_w);
    CORO_BEGIN(c);
    CORO_AWAIT(c, coro_wait_for_init(&f->wf, &f->inner->fut, CORO_MS(100)));
    TRACE("wf=%s@%ld", rcs(c->rc), test_ms(c->loop));
    CORO_RETURN(c, c->rc);
    CORO_END(c);
}

struct wf4 {
    coro_frame co;
    struct worker iw;
    struct wf4_w wm;
    coro_task inner, w;
    coro_call k;
};

static int wf4_fn(coro_ctx *c)
{
    struct wf4 *f = CORO_SELF(c, struct wf4);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->inner, worker(&f->iw, "inner", 10, 5));
    coro_task_add_done_callback(c->loop, &f->inner, &f->k, cancel_task_cb, &f->w);
    f->wm.inner = &f->inner;
    coro_spawn(c->loop, &f->w, coro_frame_init(&f->wm.co, wf4_w_fn));
    CORO_AWAIT_TASK(c, &f->w);
    TRACE("W=%s inner=%d", rcs(c->rc), coro_task_result(&f->inner));
    CORO_END(c);
}

TEST(R_WF_4_cancel_after_inner_done_is_not_lost)
{
    struct wf4 f;
    memset(&f, 0, sizeof f);
    CHECK_EQ(run_main(coro_frame_init(&f.co, wf4_fn)), 0);
    CHECK_TRACE("inner@10 wf=ECANCELED@10 W=ECANCELED inner=5");
    CHECK(coro_task_cancelled(&f.w));
}

/* T59 (WaitForShieldTests) / R-WF-5: wait_for(shield(task), 10) times out,
 * the task is neither done nor cancelled and later gives its result;
 * timeout 0 cancels the shield's future only; no timeout just completes. */
struct t59 {
    coro_frame co;
    struct worker w;
    coro_task t;
    coro_shield s;
    coro_wait_for wf;
    coro_time timeout;
};

static int t59_fn(coro_ctx *c)
{
    struct t59 *f = CORO_SELF(c, struct t59);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->t, worker(&f->w, "task", 100, 7));
    CORO_AWAIT(c, coro_wait_for_init(&f->wf, coro_shield_start(c->loop, &f->s, &f->t.fut),
                                     f->timeout));
    TRACE("wf=%s@%ld done=%d cancelled=%d shield=%s", rcs(c->rc), test_ms(c->loop),
          coro_task_done(&f->t), coro_task_cancelled(&f->t),
          rcs(coro_future_rc(&f->s.outer)));
    CORO_AWAIT_TASK(c, &f->t);
    TRACE("task=%s@%ld", rcs(c->rc), test_ms(c->loop));
    CORO_END(c);
}

TEST(T59_wait_for_shielded_task)
{
    struct t59 f;
    memset(&f, 0, sizeof f);
    f.timeout = CORO_MS(10);
    CHECK_EQ(run_main(coro_frame_init(&f.co, t59_fn)), 0);
    CHECK_TRACE("wf=ETIMEDOUT@10 done=0 cancelled=0 shield=ECANCELED task@100 task=7@100");

    memset(&f, 0, sizeof f);
    f.timeout = 0;
    CHECK_EQ(run_main(coro_frame_init(&f.co, t59_fn)), 0);
    CHECK_TRACE("wf=ETIMEDOUT@0 done=0 cancelled=0 shield=ECANCELED task@100 task=7@100");

    memset(&f, 0, sizeof f);
    f.timeout = CORO_NEVER;
    CHECK_EQ(run_main(coro_frame_init(&f.co, t59_fn)), 0);
    CHECK_TRACE("task@100 wf=0@100 done=1 cancelled=0 shield=0 task=7@100");
    CHECK_EQ(coro_future_value(&f.s.outer), 7);
}

/* ====================================================================== */
/* timeout scopes                                                          */
/* ====================================================================== */

/* A main coroutine: one timeout scope (delay or absolute deadline) around
 * an inline worker; traces "to=<rc>@<ms> expired=<0|1>". */
struct tomain {
    coro_frame co;
    coro_timeout tm;
    struct worker w;
    coro_time delay, at;
    int use_at;
};

static int tomain_fn(coro_ctx *c)
{
    struct tomain *f = CORO_SELF(c, struct tomain);
    CORO_BEGIN(c);
    if (f->use_at)
        CHECK_EQ(coro_timeout_enter_at(c, &f->tm, f->at), 0);
    else
        CHECK_EQ(coro_timeout_enter(c, &f->tm, f->delay), 0);
    CORO_AWAIT(c, &f->w.co);
    c->rc = coro_timeout_exit(c, &f->tm, c->rc);
    TRACE("to=%s@%ld expired=%d", rcs(c->rc), test_ms(c->loop),
          coro_timeout_expired(&f->tm));
    CHECK(!coro_call_pending(&f->tm.call));
    CHECK_EQ(coro_task_cancelling(c->task), 0);
    CORO_RETURN(c, c->rc);
    CORO_END(c);
}

/* T60 (test_timeout_basic / test_timeout_at_basic / test_waiter_cancelled):
 * timeout(10) around sleep(10 s): TimeoutError at 10, expired, the inner
 * code saw CancelledError; timeout_at(d).when() == d. */
TEST(T60_timeout_basic_and_timeout_at)
{
    for (int at = 0; at < 2; at++) {
        struct tomain f;
        memset(&f, 0, sizeof f);
        worker(&f.w, "w", 10000, 1);
        f.use_at = at;
        f.delay = CORO_MS(10);
        f.at = CORO_MS(10);
        CHECK_EQ(run_main(coro_frame_init(&f.co, tomain_fn)), CORO_ETIMEDOUT);
        CHECK_TRACE("w:x@10 to=ETIMEDOUT@10 expired=1");
        CHECK_EQ(coro_timeout_when(&f.tm), CORO_MS(10));
    }
}

/* T61 (test_nested_timeouts): two nested timeout_at with the same deadline:
 * both expire; the inner sees its count above its baseline and lets
 * CancelledError through; the outermost converts it. */
struct t61 {
    coro_frame co;
    coro_timeout outer, inner;
    struct worker w;
    coro_time outer_at, inner_at;
};

static int t61_fn(coro_ctx *c)
{
    struct t61 *f = CORO_SELF(c, struct t61);
    CORO_BEGIN(c);
    coro_timeout_enter_at(c, &f->outer, f->outer_at);
    coro_timeout_enter_at(c, &f->inner, f->inner_at);
    CORO_AWAIT(c, worker(&f->w, "w", 10000, 1));
    c->rc = coro_timeout_exit(c, &f->inner, c->rc);
    TRACE("inner=%s/%d", rcs(c->rc), coro_task_cancelling(c->task));
    c->rc = coro_timeout_exit(c, &f->outer, c->rc);
    TRACE("outer=%s@%ld/%d expired=%d,%d", rcs(c->rc), test_ms(c->loop),
          coro_task_cancelling(c->task), coro_timeout_expired(&f->outer),
          coro_timeout_expired(&f->inner));
    CORO_RETURN(c, c->rc);
    CORO_END(c);
}

TEST(T61_nested_timeouts_same_deadline_outermost_converts)
{
    struct t61 f;
    memset(&f, 0, sizeof f);
    f.outer_at = f.inner_at = CORO_MS(10);
    CHECK_EQ(run_main(coro_frame_init(&f.co, t61_fn)), CORO_ETIMEDOUT);
    CHECK_TRACE("w:x@10 inner=ECANCELED/1 outer=ETIMEDOUT@10/0 expired=1,1");
}

/* R-TO-4 (probe O): only the outer expires: the inner, not expired, passes
 * CancelledError through untouched, the outer converts it. */
TEST(R_TO_4_outer_expires_inner_passes_cancel_through)
{
    struct t61 f;
    memset(&f, 0, sizeof f);
    f.outer_at = CORO_MS(10);
    f.inner_at = CORO_MS(100);
    CHECK_EQ(run_main(coro_frame_init(&f.co, t61_fn)), CORO_ETIMEDOUT);
    CHECK_TRACE("w:x@10 inner=ECANCELED/1 outer=ETIMEDOUT@10/0 expired=1,0");
}

/* R-TO-4: only the inner expires: it converts, the outer sees a plain
 * TimeoutError error pass through and stays unexpired. */
TEST(R_TO_4_inner_expires_outer_passes_timeout_through)
{
    struct t61 f;
    memset(&f, 0, sizeof f);
    f.outer_at = CORO_MS(100);
    f.inner_at = CORO_MS(10);
    CHECK_EQ(run_main(coro_frame_init(&f.co, t61_fn)), CORO_ETIMEDOUT);
    CHECK_TRACE("w:x@10 inner=ETIMEDOUT/0 outer=ETIMEDOUT@10/0 expired=0,1");
}

/* T62 (test_timeout_not_called): timeout(10 s) around sleep(10 ms): no
 * error, not expired, when() in the future; the timer is disarmed on exit,
 * so a later long sleep is not cut short. */
struct t62 {
    coro_frame co;
    coro_timeout tm;
};

static int t62_fn(coro_ctx *c)
{
    struct t62 *f = CORO_SELF(c, struct t62);
    CORO_BEGIN(c);
    coro_timeout_enter(c, &f->tm, CORO_MS(50));
    CORO_SLEEP(c, CORO_MS(10));
    c->rc = coro_timeout_exit(c, &f->tm, c->rc);
    TRACE("to=%s@%ld expired=%d when=%ld", rcs(c->rc), test_ms(c->loop),
          coro_timeout_expired(&f->tm), (long)(coro_timeout_when(&f->tm) / CORO_MS(1)));
    CHECK(!coro_call_pending(&f->tm.call));
    CORO_SLEEP(c, CORO_MS(100)); /* past the old deadline: not cancelled */
    TRACE("slept=%s@%ld", rcs(c->rc), test_ms(c->loop));
    CORO_END(c);
}

TEST(T62_timeout_not_called_timer_disarmed)
{
    struct t62 f;
    memset(&f, 0, sizeof f);
    CHECK_EQ(run_main(coro_frame_init(&f.co, t62_fn)), 0);
    CHECK_TRACE("to=0@10 expired=0 when=50 slept=0@110");
}

/* T62 (test_timeout_disabled / test_timeout_at_disabled): timeout(None)
 * never fires, when() is "none" (CORO_NEVER), nothing is armed. */
TEST(T62_timeout_disabled_never_fires)
{
    for (int at = 0; at < 2; at++) {
        struct tomain f;
        memset(&f, 0, sizeof f);
        worker(&f.w, "w", 100, 1);
        f.use_at = at;
        f.delay = f.at = CORO_NEVER;
        CHECK_EQ(run_main(coro_frame_init(&f.co, tomain_fn)), 1);
        CHECK_TRACE("w@100 to=1@100 expired=0");
        CHECK_EQ(coro_timeout_when(&f.tm), CORO_NEVER);
    }
}

/* T63 (test_timeout_zero / _zero_sleep_zero / _in_the_past_sleep_zero):
 * timeout(0) or a past deadline fires on the next iteration, so even one
 * CORO_YIELD inside is cancelled; when() is now (zero) or in the past. */
struct t63 {
    coro_frame co;
    coro_timeout tm;
    struct worker w;
    coro_time delay;
    int ms, start;
};

static int t63_fn(coro_ctx *c)
{
    struct t63 *f = CORO_SELF(c, struct t63);
    CORO_BEGIN(c);
    CORO_SLEEP(c, CORO_MS(50));
    f->start = (int)test_ms(c->loop);
    coro_timeout_enter(c, &f->tm, f->delay);
    CORO_AWAIT(c, worker(&f->w, "w", f->ms, 1));
    c->rc = coro_timeout_exit(c, &f->tm, c->rc);
    TRACE("to=%s@%ld expired=%d when=%ld", rcs(c->rc), test_ms(c->loop),
          coro_timeout_expired(&f->tm), (long)(coro_timeout_when(&f->tm) / CORO_MS(1)));
    CORO_RETURN(c, c->rc);
    CORO_END(c);
}

TEST(T63_timeout_zero_or_past_cancels_even_a_yield)
{
    struct t63 f;
    memset(&f, 0, sizeof f);
    f.delay = 0;
    f.ms = 0; /* sleep(0) */
    CHECK_EQ(run_main(coro_frame_init(&f.co, t63_fn)), CORO_ETIMEDOUT);
    CHECK_TRACE("w:x@50 to=ETIMEDOUT@50 expired=1 when=50");

    memset(&f, 0, sizeof f);
    f.delay = CORO_MS(-11);
    f.ms = 0;
    CHECK_EQ(run_main(coro_frame_init(&f.co, t63_fn)), CORO_ETIMEDOUT);
    CHECK_TRACE("w:x@50 to=ETIMEDOUT@50 expired=1 when=39");

    memset(&f, 0, sizeof f);
    f.delay = 0;
    f.ms = 10000; /* test_timeout_zero: sleep(10) */
    CHECK_EQ(run_main(coro_frame_init(&f.co, t63_fn)), CORO_ETIMEDOUT);
    CHECK_TRACE("w:x@50 to=ETIMEDOUT@50 expired=1 when=50");
}

/* T64 (test_foreign_exception_passed): an error inside a timeout that did
 * not expire passes through; not expired. */
TEST(T64_timeout_foreign_error_passes)
{
    struct tomain f;
    memset(&f, 0, sizeof f);
    worker(&f.w, "w", 5, CORO_EUSER(2));
    f.delay = CORO_MS(10000);
    CHECK_EQ(run_main(coro_frame_init(&f.co, tomain_fn)), CORO_EUSER(2));
    CHECK_TRACE("w@5 to=E2@5 expired=0");
}

/* T64 (test_foreign_cancel_doesnt_timeout_if_not_expired): the task cancels
 * itself inside timeout(10 s): CancelledError passes, not expired. */
struct t64c {
    coro_frame co;
    coro_timeout tm;
    struct worker w;
};

static int t64c_fn(coro_ctx *c)
{
    struct t64c *f = CORO_SELF(c, struct t64c);
    CORO_BEGIN(c);
    coro_timeout_enter(c, &f->tm, CORO_MS(10000));
    coro_task_cancel(c->loop, c->task);
    CORO_AWAIT(c, worker(&f->w, "w", 100, 1));
    c->rc = coro_timeout_exit(c, &f->tm, c->rc);
    TRACE("to=%s@%ld expired=%d", rcs(c->rc), test_ms(c->loop),
          coro_timeout_expired(&f->tm));
    CHECK(!coro_call_pending(&f->tm.call));
    CORO_RETURN(c, c->rc);
    CORO_END(c);
}

TEST(T64_timeout_foreign_cancel_is_not_a_timeout)
{
    struct t64c f;
    coro_loop L;
    coro_task t;
    memset(&f, 0, sizeof f);
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, t64c_fn)), CORO_ECANCELED);
    CHECK_TRACE("w:x@0 to=ECANCELED@0 expired=0");
    CHECK(coro_task_cancelled(&t));
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

/* T64 (test_outer_task_is_not_cancelled): a task whose body caught the
 * TimeoutError ends normally, not cancelled, cancelling() 0. */
struct t64o {
    coro_frame co;
    struct tomain in;
};

static int t64o_fn(coro_ctx *c)
{
    struct t64o *f = CORO_SELF(c, struct t64o);
    CORO_BEGIN(c);
    worker(&f->in.w, "w", 10000, 1);
    f->in.delay = CORO_MS(1);
    CORO_AWAIT(c, coro_frame_init(&f->in.co, tomain_fn));
    CORO_RETURN(c, c->rc == CORO_ETIMEDOUT ? 3 : -1);
    CORO_END(c);
}

TEST(T64_timeout_caught_outer_task_not_cancelled)
{
    struct t64o f;
    coro_loop L;
    coro_task t;
    memset(&f, 0, sizeof f);
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, t64o_fn)), 3);
    CHECK(!coro_task_cancelled(&t));
    CHECK_EQ(coro_task_cancelling(&t), 0);
    CHECK_TRACE("w:x@1 to=ETIMEDOUT@1 expired=1");
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

/* R-TO-4 (probe N): the block swallows the CancelledError and ends
 * normally: no error, expired() is True, cancelling() back to 0. */
TEST(R_TO_4_block_swallows_expiry_no_error_but_expired)
{
    struct tomain f;
    memset(&f, 0, sizeof f);
    worker(&f.w, "w", 10000, 1);
    f.w.on_cancel = 8;
    f.delay = CORO_MS(10);
    CHECK_EQ(run_main(coro_frame_init(&f.co, tomain_fn)), 8);
    CHECK_TRACE("w:x@10 to=8@10 expired=1");
}

/* R-TO-4: after expiry the block raises another error: it propagates as
 * is (asyncio only chains a TimeoutError into its __context__). */
TEST(R_TO_4_other_error_during_expiry_propagates)
{
    struct tomain f;
    memset(&f, 0, sizeof f);
    worker(&f.w, "w", 10000, 1);
    f.w.on_cancel = CORO_EUSER(3);
    f.delay = CORO_MS(10);
    CHECK_EQ(run_main(coro_frame_init(&f.co, tomain_fn)), CORO_EUSER(3));
    CHECK_TRACE("w:x@10 to=E3@10 expired=1");
}

/* T65 (test_nested_timeouts_loop_busy): inner timeout(10) inside outer
 * timeout(100); the loop is busy for 10 ms (a blocking call), then the
 * block sleeps: the overdue inner fires on the next iteration (caught),
 * then the outer interrupts the following 10 s sleep at 100. */
struct t65 {
    coro_frame co;
    coro_timeout outer, inner;
    coro_time outer_d, inner_d;
};

static int t65_fn(coro_ctx *c)
{
    struct t65 *f = CORO_SELF(c, struct t65);
    CORO_BEGIN(c);
    coro_timeout_enter(c, &f->outer, f->outer_d);
    coro_timeout_enter(c, &f->inner, f->inner_d);
    /* time.sleep(0.01): the clock moves, nothing else runs */
    coro_virtual_advance((coro_virtual *)(void *)c->loop->backend, CORO_MS(10));
    CORO_SLEEP(c, CORO_MS(1000));
    c->rc = coro_timeout_exit(c, &f->inner, c->rc);
    TRACE("inner=%s@%ld", rcs(c->rc), test_ms(c->loop));
    if (c->rc == CORO_ETIMEDOUT) CORO_SLEEP(c, CORO_MS(10000));
    c->rc = coro_timeout_exit(c, &f->outer, c->rc);
    TRACE("outer=%s@%ld", rcs(c->rc), test_ms(c->loop));
    CORO_END(c);
}

TEST(T65_nested_timeouts_loop_busy)
{
    struct t65 f;
    memset(&f, 0, sizeof f);
    f.outer_d = CORO_MS(100);
    f.inner_d = CORO_MS(10);
    CHECK_EQ(run_main(coro_frame_init(&f.co, t65_fn)), 0);
    CHECK_TRACE("inner=ETIMEDOUT@10 outer=ETIMEDOUT@100");
}

/* T65 (test_nested_timeouts_concurrent): outer timeout(2), inner
 * timeout(100), 10 ms busy: the outer (overdue) fires, the inner passes
 * CancelledError through, the outer converts it, at 10. */
TEST(T65_nested_timeouts_concurrent)
{
    struct t65 f;
    memset(&f, 0, sizeof f);
    f.outer_d = CORO_MS(2);
    f.inner_d = CORO_MS(100);
    CHECK_EQ(run_main(coro_frame_init(&f.co, t65_fn)), 0);
    CHECK_TRACE("inner=ECANCELED@10 outer=ETIMEDOUT@10");
}

/* T66 (test_reschedule): the scope's deadline is moved from another task:
 * when() follows; rescheduling to "none" disarms it; cancelling the task
 * then gives CancelledError and expired() is False. */
struct t66_f {
    coro_frame co;
    coro_timeout tm;
    coro_future *ready;
};

static int t66_f_fn(coro_ctx *c)
{
    struct t66_f *f = CORO_SELF(c, struct t66_f);
    CORO_BEGIN(c);
    coro_timeout_enter_at(c, &f->tm, CORO_MS(10));
    coro_future_set_result(c->loop, f->ready, 0);
    CORO_SLEEP(c, CORO_MS(50));
    c->rc = coro_timeout_exit(c, &f->tm, c->rc);
    TRACE("f=%s@%ld expired=%d", rcs(c->rc), test_ms(c->loop),
          coro_timeout_expired(&f->tm));
    CORO_RETURN(c, c->rc);
    CORO_END(c);
}

struct t66 {
    coro_frame co;
    coro_future ready;
    struct t66_f fm;
    coro_task t;
};

static int t66_fn(coro_ctx *c)
{
    struct t66 *f = CORO_SELF(c, struct t66);
    CORO_BEGIN(c);
    coro_future_init(&f->ready);
    f->fm.ready = &f->ready;
    coro_spawn(c->loop, &f->t, coro_frame_init(&f->fm.co, t66_f_fn));
    CORO_AWAIT_FUTURE(c, &f->ready);
    CHECK_EQ(coro_timeout_when(&f->fm.tm), CORO_MS(10));
    CHECK_EQ(coro_timeout_reschedule(c->loop, &f->fm.tm, CORO_MS(30)), 0);
    CHECK_EQ(coro_timeout_when(&f->fm.tm), CORO_MS(30));
    CHECK_EQ(coro_timeout_reschedule(c->loop, &f->fm.tm, CORO_NEVER), 0);
    CHECK_EQ(coro_timeout_when(&f->fm.tm), CORO_NEVER);
    CHECK(!coro_call_pending(&f->fm.tm.call));
    CORO_SLEEP(c, CORO_MS(20)); /* past both old deadlines: nothing fires */
    CHECK(!coro_task_done(&f->t));
    coro_task_cancel(c->loop, &f->t);
    CORO_AWAIT_TASK(c, &f->t);
    TRACE("main=%s@%ld", rcs(c->rc), test_ms(c->loop));
    CORO_END(c);
}

TEST(T66_timeout_reschedule_and_disable)
{
    struct t66 f;
    memset(&f, 0, sizeof f);
    CHECK_EQ(run_main(coro_frame_init(&f.co, t66_fn)), 0);
    CHECK_TRACE("f=ECANCELED@20 expired=0 main=ECANCELED@20");
}

/* R-TO-5: reschedule to an earlier deadline fires then; to a past one,
 * on the next iteration. */
struct reschedule_early {
    coro_frame co;
    coro_timeout tm;
    coro_time to;
};

static int reschedule_early_fn(coro_ctx *c)
{
    struct reschedule_early *f = CORO_SELF(c, struct reschedule_early);
    CORO_BEGIN(c);
    CORO_SLEEP(c, CORO_MS(20));
    coro_timeout_enter(c, &f->tm, CORO_MS(1000));
    CHECK_EQ(coro_timeout_reschedule(c->loop, &f->tm, f->to), 0);
    CORO_SLEEP(c, CORO_MS(5000));
    c->rc = coro_timeout_exit(c, &f->tm, c->rc);
    TRACE("to=%s@%ld", rcs(c->rc), test_ms(c->loop));
    CORO_END(c);
}

TEST(R_TO_5_reschedule_earlier_and_into_the_past)
{
    struct reschedule_early f;
    memset(&f, 0, sizeof f);
    f.to = CORO_MS(70);
    CHECK_EQ(run_main(coro_frame_init(&f.co, reschedule_early_fn)), 0);
    CHECK_TRACE("to=ETIMEDOUT@70");
    memset(&f, 0, sizeof f);
    f.to = CORO_MS(5);
    CHECK_EQ(run_main(coro_frame_init(&f.co, reschedule_early_fn)), 0);
    CHECK_TRACE("to=ETIMEDOUT@20");
}

/* T66 (test_timeout_expiring / _expired / _finished / _not_entered /
 * _already_entered / _double_enter): reschedule is only allowed while
 * entered; entering twice is refused and leaves the live scope intact. */
struct t66s {
    coro_frame co;
    coro_timeout tm, fresh;
    struct worker w;
};

static int t66s_fn(coro_ctx *c)
{
    struct t66s *f = CORO_SELF(c, struct t66s);
    CORO_BEGIN(c);
    /* not entered (CREATED) */
    CHECK_EQ(coro_timeout_reschedule(c->loop, &f->fresh, CORO_MS(1)), CORO_EINVAL);
    CHECK_EQ(coro_timeout_exit(c, &f->fresh, 0), CORO_EINVAL);
    /* already entered */
    CHECK_EQ(coro_timeout_enter(c, &f->tm, CORO_MS(10)), 0);
    CHECK_EQ(coro_timeout_enter(c, &f->tm, CORO_MS(500)), CORO_EINVAL);
    CHECK_EQ(coro_timeout_enter_at(c, &f->tm, CORO_MS(500)), CORO_EINVAL);
    CHECK_EQ(coro_timeout_when(&f->tm), CORO_MS(10)); /* untouched */
    /* expiring: the deadline passed, the block has not exited yet */
    CORO_AWAIT(c, worker(&f->w, "w", 10000, 1));
    CHECK_EQ(c->rc, CORO_ECANCELED);
    CHECK(coro_timeout_expired(&f->tm));
    CHECK_EQ(coro_timeout_reschedule(c->loop, &f->tm, CORO_MS(100)), CORO_EINVAL);
    CHECK_EQ(coro_timeout_enter(c, &f->tm, CORO_MS(100)), CORO_EINVAL);
    CHECK_EQ(coro_timeout_exit(c, &f->tm, c->rc), CORO_ETIMEDOUT);
    /* expired */
    CHECK_EQ(coro_timeout_reschedule(c->loop, &f->tm, CORO_MS(100)), CORO_EINVAL);
    CHECK_EQ(coro_timeout_exit(c, &f->tm, 0), CORO_EINVAL);
    /* finished (EXITED) */
    memset(&f->fresh, 0, sizeof f->fresh);
    CHECK_EQ(coro_timeout_enter(c, &f->fresh, CORO_MS(100)), 0);
    CHECK_EQ(coro_timeout_exit(c, &f->fresh, 0), 0);
    CHECK(!coro_timeout_expired(&f->fresh));
    CHECK_EQ(coro_timeout_reschedule(c->loop, &f->fresh, CORO_MS(100)), CORO_EINVAL);
    CHECK_EQ(coro_timeout_exit(c, &f->fresh, 0), CORO_EINVAL);
    CHECK_EQ(coro_task_cancelling(c->task), 0);
    TRACE("ok@%ld", test_ms(c->loop));
    CORO_END(c);
}

TEST(T66_timeout_state_errors_einval)
{
    struct t66s f;
    memset(&f, 0, sizeof f);
    CHECK_EQ(run_main(coro_frame_init(&f.co, t66s_fn)), 0);
    CHECK_TRACE("w:x@10 ok@10");
}

/* T66 (test_timeout_without_task): entering outside a task is refused with
 * CORO_EINVAL (asyncio: RuntimeError "...inside a task"). The body runs
 * under coro_frame_run (no loop, no task) in a child process, so a crash
 * is a failure instead of killing the suite. */
struct notask {
    coro_frame co;
    coro_timeout tm;
    int use_at, rc;
};

static int notask_fn(coro_ctx *c)
{
    struct notask *f = CORO_SELF(c, struct notask);
    CORO_BEGIN(c);
    f->rc = f->use_at ? coro_timeout_enter_at(c, &f->tm, CORO_MS(10))
                      : coro_timeout_enter(c, &f->tm, CORO_MS(10));
    CORO_END(c);
}

static void notask_child(int use_at)
{
    struct notask f;
    memset(&f, 0, sizeof f);
    f.use_at = use_at;
    coro_frame_run(coro_frame_init(&f.co, notask_fn));
    _exit(f.rc == CORO_EINVAL ? 0 : 1);
}

static void notask_enter_at(void) { notask_child(1); }
static void notask_enter(void) { notask_child(0); }

TEST(T66_timeout_without_task_einval)
{
    CHECK(!test__dies(notask_enter_at));
    /* Regression: coro_timeout_enter checks for a task before it reads the
     * clock (outside a task c->loop is NULL). */
    CHECK(!test__dies(notask_enter));
}

/* coro's documented contract: a record that has been exited may be entered
 * again (it acts as a new timeout(); asyncio's Timeout objects are one-shot
 * and refuse a second `async with` - see the report). */
struct reuse {
    coro_frame co;
    coro_timeout tm;
};

static int reuse_fn(coro_ctx *c)
{
    struct reuse *f = CORO_SELF(c, struct reuse);
    CORO_BEGIN(c);
    coro_timeout_enter(c, &f->tm, CORO_MS(5));
    CORO_SLEEP(c, CORO_MS(100));
    TRACE("1=%s@%ld", rcs(coro_timeout_exit(c, &f->tm, c->rc)), test_ms(c->loop));
    CHECK_EQ(coro_timeout_enter(c, &f->tm, CORO_MS(5)), 0);
    CHECK(!coro_timeout_expired(&f->tm));
    CORO_SLEEP(c, CORO_MS(100));
    TRACE("2=%s@%ld", rcs(coro_timeout_exit(c, &f->tm, c->rc)), test_ms(c->loop));
    CORO_END(c);
}

TEST(R_TO_1_exited_record_can_be_entered_again)
{
    struct reuse f;
    memset(&f, 0, sizeof f);
    CHECK_EQ(run_main(coro_frame_init(&f.co, reuse_fn)), 0);
    CHECK_TRACE("1=ETIMEDOUT@5 2=ETIMEDOUT@10");
}

/* T67 (test_timeout_after_cancellation): the task swallowed an earlier
 * cancel (cancelling() is 1) and then uses timeout(0): the baseline is 1,
 * so TimeoutError is still raised. If it also cancels itself inside
 * (test_cancel_in_timeout_after_cancellation), CancelledError passes and
 * cancelling() stays 2.
 *
 *   cur.cancel(); try: await sleep(1000) except CE: pass  -> cancelling 1
 *   async with timeout(0) as cm: [cur.cancel()]; await sleep(2000)
 *   -> TO@0 cancelling 1 expired True  /  CE@0 cancelling 2 expired True
 */
struct t67 {
    coro_frame co;
    coro_timeout tm;
    int self_cancel;
};

static int t67_fn(coro_ctx *c)
{
    struct t67 *f = CORO_SELF(c, struct t67);
    CORO_BEGIN(c);
    coro_task_cancel(c->loop, c->task);
    CORO_SLEEP(c, CORO_MS(1000));
    TRACE("swallowed=%s/%d", rcs(c->rc), coro_task_cancelling(c->task));
    coro_timeout_enter(c, &f->tm, 0);
    if (f->self_cancel) coro_task_cancel(c->loop, c->task);
    CORO_SLEEP(c, CORO_MS(2000));
    c->rc = coro_timeout_exit(c, &f->tm, c->rc);
    TRACE("to=%s@%ld/%d expired=%d", rcs(c->rc), test_ms(c->loop),
          coro_task_cancelling(c->task), coro_timeout_expired(&f->tm));
    CORO_END(c);
}

TEST(T67_timeout_after_swallowed_cancellation)
{
    struct t67 f;
    memset(&f, 0, sizeof f);
    CHECK_EQ(run_main(coro_frame_init(&f.co, t67_fn)), 0);
    CHECK_TRACE("swallowed=ECANCELED/1 to=ETIMEDOUT@0/1 expired=1");
    memset(&f, 0, sizeof f);
    f.self_cancel = 1;
    CHECK_EQ(run_main(coro_frame_init(&f.co, t67_fn)), 0);
    CHECK_TRACE("swallowed=ECANCELED/1 to=ECANCELED@0/2 expired=1");
}
