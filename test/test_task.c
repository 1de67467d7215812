/* test_task.c - tasks and cancellation: R-TASK-*, T07-T28. */
#include "test.h"

/* ---- helpers */

/* Sleeps `ms`, traces "<name>" (or "<name>x" when cancelled); a swallowing
 * sleeper returns `ret` even when cancelled. */
struct sleeper {
    coro_frame co;
    const char *name;
    int ms, ret, swallow;
};

static int sleeper_fn(coro_ctx *c)
{
    struct sleeper *s = CORO_SELF(c, struct sleeper);
    CORO_BEGIN(c);
    CORO_SLEEP(c, CORO_MS(s->ms));
    if (c->rc < 0) {
        TRACE("%sx", s->name);
        if (!s->swallow) CORO_FAIL(c, c->rc);
    } else {
        TRACE("%s", s->name);
    }
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

/* Awaits a future; on ECANCELED traces and propagates. */
struct fwait {
    coro_frame co;
    coro_future *f;
};

static int fwait_fn(coro_ctx *c)
{
    struct fwait *w = CORO_SELF(c, struct fwait);
    CORO_BEGIN(c);
    CORO_AWAIT_FUTURE(c, w->f);
    CORO_RETURN(c, c->rc < 0 ? c->rc : (int)coro_future_value(w->f));
    CORO_END(c);
}

static coro_frame *fwait(struct fwait *w, coro_future *f)
{
    w->f = f;
    return coro_frame_init(&w->co, fwait_fn);
}

static void cancel_cb(coro_loop *L, void *arg)
{
    coro_task_cancel(L, (coro_task *)arg);
}

/* ---- T07 */
struct adder {
    coro_frame co;
    struct sleeper s1, s2;
    coro_task t1, t2;
    int use_tasks, sum;
};

static int adder_fn(coro_ctx *c)
{
    struct adder *f = CORO_SELF(c, struct adder);
    CORO_BEGIN(c);
    if (f->use_tasks) {
        coro_spawn(c->loop, &f->t1, sleeper(&f->s1, "i1", 1, 42));
        coro_spawn(c->loop, &f->t2, sleeper(&f->s2, "i2", 1, 1000));
        CORO_AWAIT_TASK(c, &f->t1);
        f->sum = c->rc;
        CORO_AWAIT_TASK(c, &f->t2);
    } else {
        CORO_AWAIT(c, sleeper(&f->s1, "i1", 1, 42));
        f->sum = c->rc;
        CORO_AWAIT(c, sleeper(&f->s2, "i2", 1, 1000));
    }
    CORO_RETURN(c, f->sum + c->rc);
    CORO_END(c);
}

TEST(T07_task_basics)
{
    for (int tasks = 0; tasks < 2; tasks++) {
        coro_loop L;
        coro_task t;
        struct adder f = {.use_tasks = tasks};
        test_loop(&L);
        coro_spawn(&L, &t, coro_frame_init(&f.co, adder_fn));
        CHECK_EQ(coro_loop_run_until_complete(&L, &t), 1042);
        CHECK_EQ(test_ms(&L), tasks ? 1 : 2); /* tasks ran concurrently */
        CHECK_EQ(coro_loop_close(&L), 0);
        CHECK_EQ(test_reports(), 0);
    }
}

TEST(T08_cancel_sleeping_task)
{
    coro_loop L;
    coro_task t;
    coro_call k;
    struct sleeper s;
    test_loop(&L);
    coro_spawn(&L, &t, sleeper(&s, "s", 10000, 12));
    coro_call_soon(&L, &k, cancel_cb, &t);
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), CORO_ECANCELED);
    CHECK(coro_task_done(&t));
    CHECK(coro_task_cancelled(&t));
    CHECK_EQ(coro_task_cancel(&L, &t), 0);
    CHECK_EQ(test_ms(&L), 0); /* the timer was disarmed, nothing waited */
    CHECK_TRACE("sx");
    coro_loop_close(&L);
}

struct yielder {
    coro_frame co;
    int n, done;
};

static int yielder_fn(coro_ctx *c)
{
    struct yielder *y = CORO_SELF(c, struct yielder);
    CORO_BEGIN(c);
    while (y->done < y->n) {
        CORO_YIELD(c);
        CORO_CHECK(c);
        y->done++;
    }
    CORO_RETURN(c, y->done);
    CORO_END(c);
}

TEST(T09_cancel_while_scheduled)
{
    coro_loop L;
    coro_task t;
    struct yielder y = {.n = 2};
    test_loop(&L);
    coro_spawn(&L, &t, coro_frame_init(&y.co, yielder_fn));
    coro_loop_run_once(&L);
    CHECK_EQ(coro_task_cancel(&L, &t), 1);
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), CORO_ECANCELED);
    CHECK(coro_task_cancelled(&t));
    CHECK_EQ(y.done, 0); /* the first yield returned ECANCELED */
    coro_loop_close(&L);
}

/* ---- T11 / T12: a task that catches the cancellation */
struct catcher {
    coro_frame co;
    coro_future *f1, *f2, *f3;
};

static int catcher_fn(coro_ctx *c)
{
    struct catcher *f = CORO_SELF(c, struct catcher);
    CORO_BEGIN(c);
    CORO_AWAIT_FUTURE(c, f->f1);
    CORO_AWAIT_FUTURE(c, f->f2);
    if (c->rc == CORO_ECANCELED && !f->f3) CORO_RETURN(c, 42); /* T11 */
    if (f->f3) {                                               /* T12 */
        CORO_AWAIT_FUTURE(c, f->f3);
        CORO_RETURN(c, (int)coro_future_value(f->f3));
    }
    CORO_END(c);
}

TEST(T11_T12_cancel_caught_by_task)
{
    for (int ignore = 0; ignore < 2; ignore++) {
        coro_loop L;
        coro_task t;
        coro_future f1 = CORO_FUTURE_INIT, f2 = CORO_FUTURE_INIT, f3 = CORO_FUTURE_INIT;
        struct catcher f = {.f1 = &f1, .f2 = &f2, .f3 = ignore ? &f3 : NULL};
        test_loop(&L);
        coro_spawn(&L, &t, coro_frame_init(&f.co, catcher_fn));
        coro_loop_run_once(&L);
        coro_future_set_result(&L, &f1, 0);
        coro_loop_run_once(&L);
        coro_loop_run_once(&L);
        CHECK_EQ(coro_task_cancel(&L, &t), 1);
        CHECK(coro_future_cancelled(&f2));
        if (ignore) {
            coro_loop_run_once(&L);
            coro_loop_run_once(&L);
            coro_future_set_result(&L, &f3, 42);
        }
        CHECK_EQ(coro_loop_run_until_complete(&L, &t), 42);
        CHECK(!coro_task_cancelled(&t));
        CHECK(!coro_future_cancelled(&f3));
        coro_loop_close(&L);
    }
}

/* ---- T13 / T14: a task cancelling itself */
struct selfcancel {
    coro_frame co;
    int then_sleep, count_after;
};

static int selfcancel_fn(coro_ctx *c)
{
    struct selfcancel *f = CORO_SELF(c, struct selfcancel);
    CORO_BEGIN(c);
    coro_task_cancel(c->loop, c->task);
    if (f->then_sleep) {
        CORO_SLEEP(c, CORO_S(100));
        f->count_after = coro_task_cancelling(c->task);
        CORO_FAIL(c, c->rc);
    }
    CORO_RETURN(c, 12);
    CORO_END(c);
}

TEST(T13_cancel_current_task_then_sleep)
{
    coro_loop L;
    coro_task t;
    struct selfcancel f = {.then_sleep = 1};
    test_loop(&L);
    coro_spawn(&L, &t, coro_frame_init(&f.co, selfcancel_fn));
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), CORO_ECANCELED);
    CHECK(coro_task_cancelled(&t));
    CHECK_EQ(test_ms(&L), 0); /* the sleep was cancelled at once */
    CHECK_EQ(f.count_after, 1);
    CHECK_EQ(t.h.flags & CORO__T_MUST_CANCEL, 0);
    coro_loop_close(&L);
}

TEST(T14_cancel_then_return_is_cancelled)
{
    coro_loop L;
    coro_task t;
    struct selfcancel f = {.then_sleep = 0};
    test_loop(&L);
    coro_spawn(&L, &t, coro_frame_init(&f.co, selfcancel_fn));
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), CORO_ECANCELED);
    CHECK(coro_task_cancelled(&t));
    coro_loop_close(&L);
}

/* ---- T15: the next thing a self-cancelled task awaits is cancelled */
struct t15 {
    coro_frame co;
    coro_task nested;
    struct fwait w;
    coro_future *fut;
};

static int t15_fn(coro_ctx *c)
{
    struct t15 *f = CORO_SELF(c, struct t15);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->nested, fwait(&f->w, f->fut));
    CORO_YIELD(c);
    coro_task_cancel(c->loop, c->task);
    CORO_AWAIT_TASK(c, &f->nested);
    CORO_FAIL(c, c->rc);
    CORO_END(c);
}

TEST(T15_cancel_awaited_task)
{
    coro_loop L;
    coro_task t;
    coro_future fut = CORO_FUTURE_INIT;
    struct t15 f = {.fut = &fut};
    test_loop(&L);
    coro_spawn(&L, &t, coro_frame_init(&f.co, t15_fn));
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), CORO_ECANCELED);
    CHECK(coro_task_cancelled(&t));
    CHECK(coro_task_cancelled(&f.nested));
    CHECK(coro_future_cancelled(&fut));
    coro_loop_close(&L);
}

/* ---- T16: cancelling() and uncancel() */
struct stubborn {
    coro_frame co;
    int caught;
};

static int stubborn_fn(coro_ctx *c)
{
    struct stubborn *f = CORO_SELF(c, struct stubborn);
    CORO_BEGIN(c);
    CORO_SLEEP(c, CORO_S(10));
    if (c->rc == CORO_ECANCELED) {
        f->caught++;
        TRACE("uncancel=%d", coro_task_uncancel(c->task));
        CORO_SLEEP(c, CORO_S(10));
        CORO_CHECK(c);
    }
    CORO_RETURN(c, 1);
    CORO_END(c);
}

TEST(T16_cancelling_and_uncancel)
{
    coro_loop L;
    coro_task t;
    struct stubborn f = {.caught = 0};
    test_loop(&L);
    coro_spawn(&L, &t, coro_frame_init(&f.co, stubborn_fn));
    CHECK_EQ(coro_task_cancelling(&t), 0);
    coro_loop_run_once(&L);
    CHECK_EQ(coro_task_cancel(&L, &t), 1);
    CHECK_EQ(coro_task_cancelling(&t), 1);
    CHECK_EQ(coro_task_cancel(&L, &t), 1); /* every request counts */
    CHECK_EQ(coro_task_cancelling(&t), 2);
    coro_loop_run_once(&L); /* it catches, uncancels once (2 -> 1) and sleeps again */
    CHECK_TRACE("uncancel=1");
    CHECK(!coro_task_done(&t));
    CHECK_EQ(coro_task_cancel(&L, &t), 1);
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), CORO_ECANCELED);
    CHECK_EQ(f.caught, 1);
    CHECK(coro_task_cancelled(&t));
    CHECK_EQ(coro_task_uncancel(&t), 1); /* the count moves; the outcome does not */
    CHECK(coro_task_cancelled(&t));
    coro_loop_close(&L);
}

TEST(T17_uncancel_drops_undelivered_cancel)
{
    coro_loop L;
    coro_task t;
    coro_future fut = CORO_FUTURE_INIT;
    struct fwait w;
    test_loop(&L);
    coro_spawn(&L, &t, fwait(&w, &fut));
    coro_loop_run_once(&L);
    coro_future_set_result(&L, &fut, 42); /* its wake-up is now queued */
    CHECK_EQ(coro_task_cancel(&L, &t), 1);
    CHECK_EQ(coro_task_cancelling(&t), 1);
    CHECK(t.h.flags & CORO__T_MUST_CANCEL);
    CHECK_EQ(coro_task_uncancel(&t), 0);
    CHECK_EQ(t.h.flags & CORO__T_MUST_CANCEL, 0);
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), 42);
    coro_loop_close(&L);
}

/* ---- T18: a hand-made timeout built on uncancel() */
struct t18 {
    coro_frame co;
    coro_call timer;
    int sleep_ms, timed_out, flag, block_finished, outer_ran, cancelling;
};

static int t18_fn(coro_ctx *c)
{
    struct t18 *f = CORO_SELF(c, struct t18);
    CORO_BEGIN(c);
    coro_call_later(c->loop, &f->timer, CORO_MS(100), cancel_cb, c->task);
    CORO_SLEEP(c, CORO_MS(f->sleep_ms));
    if (c->rc == 0) f->block_finished = 1;
    f->flag = !coro_call_pending(&f->timer); /* the timer fired */
    coro_call_cancel(c->loop, &f->timer);
    if (f->flag && coro_task_uncancel(c->task) == 0 && c->rc == CORO_ECANCELED)
        f->timed_out = 1;
    f->outer_ran = 1;
    f->cancelling = coro_task_cancelling(c->task);
    CORO_END(c);
}

TEST(T18_uncancel_structured_block)
{
    for (int sleep0 = 0; sleep0 < 2; sleep0++) {
        coro_loop L;
        coro_task t;
        struct t18 f = {.sleep_ms = sleep0 ? 0 : 10000};
        test_loop(&L);
        coro_spawn(&L, &t, coro_frame_init(&f.co, t18_fn));
        CHECK_EQ(coro_loop_run_until_complete(&L, &t), 0);
        CHECK_EQ(f.timed_out, !sleep0);
        CHECK_EQ(f.block_finished, sleep0);
        CHECK_EQ(f.outer_ran, 1);
        CHECK_EQ(f.cancelling, 0);
        CHECK_EQ(test_ms(&L), sleep0 ? 0 : 100);
        coro_loop_close(&L);
    }
}

TEST(T19_cancel_before_first_step_body_never_runs)
{
    coro_loop L;
    coro_task t;
    struct sleeper s;
    test_loop(&L);
    coro_spawn(&L, &t, sleeper(&s, "s", 1, 5));
    CHECK_EQ(coro_task_cancel(&L, &t), 1);
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), CORO_ECANCELED);
    CHECK_TRACE(""); /* not even "sx": the body never started */
    CHECK_EQ(s.co.state, CORO__S_DONE);
    coro_loop_close(&L);
}

/* ---- T20: the loop stopped before the task completed */
struct t20 {
    coro_frame co;
    int x;
};

static int t20_fn(coro_ctx *c)
{
    struct t20 *f = CORO_SELF(c, struct t20);
    CORO_BEGIN(c);
    while (f->x < 10) {
        CORO_SLEEP(c, CORO_MS(100));
        CORO_CHECK(c);
        f->x++;
        if (f->x == 2) coro_loop_stop(c->loop);
    }
    CORO_END(c);
}

TEST(T20_stop_while_run_until_complete)
{
    coro_loop L;
    coro_task t;
    struct t20 f = {.x = 0};
    test_loop(&L);
    coro_spawn(&L, &t, coro_frame_init(&f.co, t20_fn));
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), CORO_EINTR);
    CHECK(!coro_task_done(&t));
    CHECK_EQ(f.x, 2);
    CHECK_EQ(test_ms(&L), 200);
    coro_task_cancel(&L, &t);
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), CORO_ECANCELED);
    coro_loop_close(&L);
}

/* ---- T21 / T22 / T23 */
struct awaiter {
    coro_frame co;
    coro_task *target;
    struct sleeper inner;
    int proof;
};

static int t21_fn(coro_ctx *c)
{
    struct awaiter *f = CORO_SELF(c, struct awaiter);
    CORO_BEGIN(c);
    CORO_AWAIT_TASK(c, f->target);
    if (c->rc == CORO_ECANCELED) CORO_RETURN(c, 7);
    CORO_END(c);
}

TEST(T21_awaiter_sees_cancelled_sleeper)
{
    coro_loop L;
    coro_task t, sl;
    coro_call k;
    struct sleeper s;
    struct awaiter f = {.target = &sl};
    test_loop(&L);
    coro_spawn(&L, &sl, sleeper(&s, "sl", 5000000, 0));
    coro_spawn(&L, &t, coro_frame_init(&f.co, t21_fn));
    coro_call_later(&L, &k, CORO_MS(100), cancel_cb, &sl);
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), 7);
    CHECK_EQ(test_ms(&L), 100);
    CHECK(coro_task_cancelled(&sl));
    coro_loop_close(&L);
}

TEST(T22_cancel_waiter_future)
{
    coro_loop L;
    coro_task t;
    coro_future fut = CORO_FUTURE_INIT;
    struct fwait w;
    test_loop(&L);
    coro_spawn(&L, &t, fwait(&w, &fut));
    coro_loop_run_once(&L);
    CHECK_EQ(t.h.aux, (void *)&fut); /* blocked on fut */
    coro_task_cancel(&L, &t);
    coro_loop_run_once(&L);
    CHECK(t.h.aux != (void *)&fut);
    CHECK(coro_future_cancelled(&fut));
    CHECK(coro_task_cancelled(&t));
    coro_loop_close(&L);
}

struct t23_inner {
    coro_frame co;
    coro_future *waiter;
    int *proof;
};

static int t23_inner_fn(coro_ctx *c)
{
    struct t23_inner *f = CORO_SELF(c, struct t23_inner);
    CORO_BEGIN(c);
    CORO_AWAIT_FUTURE(c, f->waiter);
    if (c->rc == CORO_ECANCELED) {
        *f->proof += 1;
        CORO_FAIL(c, c->rc);
    }
    CORO_END(c);
}

struct t23 {
    coro_frame co;
    struct t23_inner in;
    int proof;
};

static int t23_fn(coro_ctx *c)
{
    struct t23 *f = CORO_SELF(c, struct t23);
    CORO_BEGIN(c);
    CORO_AWAIT(c, coro_frame_init(&f->in.co, t23_inner_fn));
    if (c->rc == CORO_ECANCELED) f->proof += 100;
    CORO_END(c);
}

TEST(T23_cancel_passes_through_inline_child)
{
    coro_loop L;
    coro_task t;
    coro_future waiter = CORO_FUTURE_INIT;
    struct t23 f;
    memset(&f, 0, sizeof f);
    f.in.waiter = &waiter;
    f.in.proof = &f.proof;
    test_loop(&L);
    coro_spawn(&L, &t, coro_frame_init(&f.co, t23_fn));
    coro_loop_run_once(&L);
    coro_task_cancel(&L, &t);
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), 0);
    CHECK_EQ(f.proof, 101);
    CHECK(coro_future_cancelled(&waiter));
    coro_loop_close(&L);
}

/* ---- T24 current task */
struct cur {
    coro_frame co;
    coro_task **seen;
};

static int cur_fn(coro_ctx *c)
{
    struct cur *f = CORO_SELF(c, struct cur);
    CORO_BEGIN(c);
    f->seen[0] = coro_current_task(c->loop);
    CORO_YIELD(c);
    f->seen[1] = coro_current_task(c->loop);
    CORO_END(c);
}

static void note_current(coro_loop *L, void *arg)
{
    *(coro_task **)arg = coro_current_task(L);
}

TEST(T24_current_task)
{
    coro_loop L;
    coro_task a, b;
    coro_task *sa[2], *sb[2], *in_cb = &a;
    coro_call k;
    struct cur fa = {.seen = sa}, fb = {.seen = sb};
    test_loop(&L);
    CHECK(coro_current_task(&L) == NULL);
    coro_spawn(&L, &a, coro_frame_init(&fa.co, cur_fn));
    coro_spawn(&L, &b, coro_frame_init(&fb.co, cur_fn));
    coro_call_soon(&L, &k, note_current, &in_cb);
    coro_loop_run_until_complete(&L, &b);
    CHECK(sa[0] == &a && sa[1] == &a);
    CHECK(sb[0] == &b && sb[1] == &b);
    CHECK(in_cb == NULL); /* a plain callback runs outside any task */
    CHECK(coro_current_task(&L) == NULL);
    coro_loop_close(&L);
}

/* ---- T25: awaiting itself */
struct selfawait {
    coro_frame co;
};

static int selfawait_fn(coro_ctx *c)
{
    CORO_BEGIN(c);
    CORO_AWAIT_TASK(c, c->task);
    CORO_RETURN(c, c->rc == CORO_EDEADLK ? 5 : 0);
    CORO_END(c);
}

TEST(T25_task_awaiting_itself_fails)
{
    coro_loop L;
    coro_task t;
    struct selfawait f;
    test_loop(&L);
    coro_spawn(&L, &t, coro_frame_init(&f.co, selfawait_fn));
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), 5);
    coro_loop_close(&L);
}

TEST(T27_pending_task_reported_at_close)
{
    coro_loop L;
    coro_task t;
    coro_future never = CORO_FUTURE_INIT;
    struct fwait w;
    test_loop(&L);
    coro_spawn(&L, &t, fwait(&w, &never));
    coro_loop_run_once(&L);
#ifndef CORO_NO_REGISTRY
    CHECK(coro_loop_first_task(&L) == &t);
#endif
    CHECK_EQ(coro_loop_close(&L), 0);
#if !defined(CORO_NO_DIAG) && !defined(CORO_NO_REGISTRY) /* the report */
    CHECK_EQ(test_reports(), 1);
    CHECK_EQ(test_report_kind(0), CORO_REPORT_PENDING);
#endif
    CHECK_EQ(coro_loop_close(&L), 0); /* idempotent */
#if !defined(CORO_NO_DIAG) && !defined(CORO_NO_REGISTRY) /* the report */
    CHECK_EQ(test_reports(), 1);
#endif
    CHECK_EQ(coro_spawn(&L, &t, fwait(&w, &never)), CORO_EINVAL);
}

TEST(T28_task_names)
{
    coro_loop L;
    coro_task a, b;
    struct sleeper sa, sb;
    test_loop(&L);
    coro_spawn_named(&L, &a, sleeper(&sa, "a", 1, 0), "No-op");
    coro_spawn(&L, &b, sleeper(&sb, "b", 1, 0));
    CHECK_STR(coro_task_name(&L, &a), "No-op");
    CHECK(coro_task_name(&L, &b) == NULL);
    coro_task_set_name(&L, &b, "second");
    CHECK_STR(coro_task_name(&L, &b), "second");
    coro_loop_run_until_complete(&L, &b);
    CHECK_STR(coro_task_name(&L, &a), "No-op"); /* still readable once done */
    CHECK_STR(coro_task_name(&L, &b), "second");
    coro_loop_close(&L);
}

/* ---- R-TASK-1: a new task runs only once its creator suspends, FIFO */
struct creator {
    coro_frame co;
    coro_task kids[3];
    struct sleeper s[3];
};

static int creator_fn(coro_ctx *c)
{
    struct creator *f = CORO_SELF(c, struct creator);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->kids[0], sleeper(&f->s[0], "0", 0, 0));
    coro_spawn(c->loop, &f->kids[1], sleeper(&f->s[1], "1", 0, 0));
    coro_spawn(c->loop, &f->kids[2], sleeper(&f->s[2], "2", 0, 0));
    TRACE("creator-continues");
    CORO_SLEEP(c, CORO_MS(1));
    CORO_END(c);
}

TEST(R_TASK_1_start_order)
{
    coro_loop L;
    coro_task t;
    struct creator f;
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, creator_fn)), 0);
    CHECK_TRACE("creator-continues 0 1 2");
    coro_loop_close(&L);
}

/* ---- R-TASK-4: cancelling A cancels the B it awaits; B swallows */
struct outer4 {
    coro_frame co;
    coro_task inner;
    struct sleeper s;
    int got, cancelling;
};

static int outer4_fn(coro_ctx *c)
{
    struct outer4 *f = CORO_SELF(c, struct outer4);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &f->inner, sleeper(&f->s, "inner", 1000, 9));
    f->s.swallow = 1;
    CORO_AWAIT_TASK(c, &f->inner);
    f->got = c->rc;
    f->cancelling = coro_task_cancelling(c->task);
    TRACE("outer-continued");
    CORO_RETURN(c, f->got);
    CORO_END(c);
}

TEST(R_TASK_4_inner_swallows_outer_continues)
{
    coro_loop L;
    coro_task t;
    coro_call k;
    struct outer4 f;
    test_loop(&L);
    coro_spawn(&L, &t, coro_frame_init(&f.co, outer4_fn));
    coro_call_later(&L, &k, CORO_MS(10), cancel_cb, &t);
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), 9);
    CHECK_TRACE("innerx outer-continued");
    CHECK(!coro_task_cancelled(&t));
    CHECK_EQ(f.cancelling, 1);
    CHECK_EQ(coro_task_cancelling(&f.inner), 1);
    coro_loop_close(&L);
}

/* ---- cancellation forwarded down a long chain of tasks, iteratively */
struct link_task {
    coro_frame co;
    coro_task *next;
    coro_future *end;
};

static int link_task_fn(coro_ctx *c)
{
    struct link_task *f = CORO_SELF(c, struct link_task);
    CORO_BEGIN(c);
    if (f->next)
        CORO_AWAIT_TASK(c, f->next);
    else
        CORO_AWAIT_FUTURE(c, f->end);
    CORO_FAIL(c, c->rc);
    CORO_END(c);
}

TEST(cancel_forwards_down_100000_task_chain)
{
    enum { N = 100000 };
    coro_loop L;
    coro_future end = CORO_FUTURE_INIT;
    coro_task *t = calloc(N, sizeof *t);
    struct link_task *f = calloc(N, sizeof *f);
    test_loop(&L);
    for (int i = 0; i < N; i++) {
        f[i].next = i + 1 < N ? &t[i + 1] : NULL;
        f[i].end = &end;
        coro_spawn(&L, &t[i], coro_frame_init(&f[i].co, link_task_fn));
    }
    coro_loop_run_once(&L);
    CHECK_EQ(coro_task_cancel(&L, &t[0]), 1);
    CHECK(coro_future_cancelled(&end));
    CHECK_EQ(coro_loop_run_until_complete(&L, &t[0]), CORO_ECANCELED);
    int all = 1;
    for (int i = 0; i < N; i++)
        all &= coro_task_cancelled(&t[i]) && coro_task_cancelling(&t[i]) == 1;
    CHECK(all);
    CHECK_EQ(coro_loop_task_count(&L), 0);
    coro_loop_close(&L);
    free(t);
    free(f);
}

/* ---- the sleep wake-up takes asyncio's extra pass (timer callback, then
 * wake-up), and a cancel arriving in between moves it. CPython 3.13:
 *   timers at 10 ms armed [cb cancels v, O's sleep, v's sleep] -> "Vx O"
 *   timers at 10 ms armed [S's sleep, Y's sleep, cb] then Y yields:
 *   -> "CB S Y0 Y1 Y2" */
struct hopper {
    coro_frame co;
    const char *name;
    int yields, i;
};

static int hopper_fn(coro_ctx *c)
{
    struct hopper *f = CORO_SELF(c, struct hopper);
    CORO_BEGIN(c);
    CORO_SLEEP(c, CORO_MS(10));
    if (c->rc < 0) {
        TRACE("%sx", f->name);
        CORO_FAIL(c, c->rc);
    }
    if (!f->yields) TRACE("%s", f->name);
    for (f->i = 0; f->i < f->yields; f->i++) {
        TRACE("%s%d", f->name, f->i);
        CORO_YIELD(c);
    }
    CORO_END(c);
}

static void trace_cb(coro_loop *L, void *arg)
{
    (void)L;
    TRACE("%s", (const char *)arg);
}

TEST(sleep_wakeup_takes_one_extra_pass)
{
    coro_loop L;
    coro_task s, y;
    coro_call k;
    struct hopper fs = {.name = "S"}, fy = {.name = "Y", .yields = 3};
    test_loop(&L);
    coro_spawn(&L, &s, coro_frame_init(&fs.co, hopper_fn));
    coro_spawn(&L, &y, coro_frame_init(&fy.co, hopper_fn));
    coro_loop_run_once(&L); /* both armed */
    coro_call_later(&L, &k, CORO_MS(10), trace_cb, "CB");
    coro_loop_run_until_complete(&L, &y);
    CHECK_TRACE("CB S Y0 Y1 Y2");
    coro_loop_close(&L);
}

TEST(cancel_between_timer_and_wakeup_moves_the_wakeup)
{
    coro_loop L;
    coro_task o, v;
    coro_call k;
    struct hopper fo = {.name = "O"}, fv = {.name = "V"};
    test_loop(&L);
    coro_call_later(&L, &k, CORO_MS(10), cancel_cb, &v);
    coro_spawn(&L, &o, coro_frame_init(&fo.co, hopper_fn));
    coro_spawn(&L, &v, coro_frame_init(&fv.co, hopper_fn));
    coro_loop_run_until_complete(&L, &o);
    CHECK_TRACE("Vx O");
    CHECK(coro_task_cancelled(&v));
    coro_loop_close(&L);
}

/* ---- unretrieved errors */
struct failer {
    coro_frame co;
};

static int failer_fn(coro_ctx *c)
{
    CORO_BEGIN(c);
    CORO_FAIL(c, CORO_EUSER(5));
    CORO_END(c);
}

TEST(T05_failed_task_never_read_is_reported_at_close)
{
    coro_loop L;
    coro_task t;
    struct failer f;
    test_loop(&L);
    coro_spawn(&L, &t, coro_frame_init(&f.co, failer_fn));
    coro_loop_run_once(&L);
    CHECK(coro_task_done(&t));
    coro_loop_close(&L);
#if !defined(CORO_NO_DIAG) && !defined(CORO_NO_REGISTRY) /* the report */
    CHECK_EQ(test_reports(), 1);
    CHECK_EQ(test_report_kind(0), CORO_REPORT_UNRETRIEVED);
#endif
}

TEST(T05_failed_task_read_is_not_reported)
{
    coro_loop L;
    coro_task t;
    struct failer f;
    test_loop(&L);
    coro_spawn(&L, &t, coro_frame_init(&f.co, failer_fn));
    coro_loop_run_once(&L);
    CHECK_EQ(coro_task_error(&t), CORO_EUSER(5));
    coro_loop_close(&L);
    CHECK_EQ(test_reports(), 0);
}

TEST(T05_failed_task_reused_unread_is_reported_at_spawn)
{
    coro_loop L;
    coro_task t;
    struct failer f;
    struct sleeper s;
    test_loop(&L);
    coro_spawn(&L, &t, coro_frame_init(&f.co, failer_fn));
    coro_loop_run_once(&L);
    coro_spawn(&L, &t, sleeper(&s, "s", 1, 3)); /* the record is reused */
#if !defined(CORO_NO_DIAG) && !defined(CORO_NO_REGISTRY) /* the report */
    CHECK_EQ(test_reports(), 1);
#endif
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), 3);
    coro_loop_close(&L);
#if !defined(CORO_NO_DIAG) && !defined(CORO_NO_REGISTRY) /* the report */
    CHECK_EQ(test_reports(), 1);
#endif
}

#ifndef CORO_NO_REGISTRY /* the task list */
TEST(all_tasks_in_creation_order)
{
    coro_loop L;
    coro_task t[4];
    struct sleeper s[4];
    int ms[4] = {30, 10, 20, 40};
    test_loop(&L);
    for (int i = 0; i < 4; i++) coro_spawn(&L, &t[i], sleeper(&s[i], "s", ms[i], i));
    CHECK_EQ(coro_loop_task_count(&L), 4);
    coro_loop_run_until_complete(&L, &t[2]); /* t[1] and t[2] are done */
    coro_task *it = coro_loop_first_task(&L);
    CHECK(it == &t[0]);
    it = coro_loop_next_task(&L, it);
    CHECK(it == &t[3]);
    CHECK(coro_loop_next_task(&L, it) == NULL);
    CHECK_EQ(coro_loop_task_count(&L), 2);
    coro_loop_run_until_complete(&L, &t[3]);
    CHECK(coro_loop_first_task(&L) == NULL);
    coro_loop_close(&L);
}
#endif

static void done_cb(coro_loop *L, void *arg)
{
    coro_task *t = (coro_task *)arg;
    TRACE("done:%d", coro_task_result(t));
    (void)L;
}

TEST(task_done_callbacks_follow_future_rules)
{
    coro_loop L;
    coro_task t;
    coro_call k1, k2, k3;
    struct sleeper s;
    test_loop(&L);
    coro_spawn(&L, &t, sleeper(&s, "s", 5, 8));
    coro_task_add_done_callback(&L, &t, &k1, done_cb, &t);
    coro_task_add_done_callback(&L, &t, &k2, done_cb, &t);
    CHECK_EQ(coro_task_remove_done_callback(&L, &t, &k1), 1);
    coro_loop_run_until_complete(&L, &t);
    CHECK_TRACE("s done:8");
    coro_task_add_done_callback(&L, &t, &k3, done_cb, &t); /* already done */
    CHECK_TRACE("");
    coro_loop_run_once(&L);
    CHECK_TRACE("done:8");
    coro_loop_close(&L);
}

/* ---- tasks awaiting each other in a cycle: asyncio's cancel() recurses
 * without end; coro stops, reports it, and does not hang. */
struct cyc {
    coro_frame co;
    coro_task *other;
    coro_gather g;
    coro_gather_item it[1];
    coro_future *fs[1];
    int gather_self;
};

static int cyc_fn(coro_ctx *c)
{
    struct cyc *f = CORO_SELF(c, struct cyc);
    CORO_BEGIN(c);
    if (f->gather_self) {
        f->fs[0] = coro_task_future(c->task);
        coro_gather_start(c->loop, &f->g, f->it, f->fs, 1, 0);
        CORO_AWAIT_GATHER(c, &f->g);
    } else {
        CORO_AWAIT_TASK(c, f->other);
    }
    CORO_FAIL(c, c->rc);
    CORO_END(c);
}

static int cycles_seen;
static void count_cycles(coro_loop *L, const coro_report *r, void *arg)
{
    (void)L;
    (void)arg;
    if (r->kind == CORO_REPORT_CANCEL_CYCLE) cycles_seen++;
}

TEST(cancel_around_await_cycle_is_reported_not_looped)
{
    coro_loop L;
    coro_task a, b, s;
    struct cyc fa, fb, fs;
    memset(&fa, 0, sizeof fa);
    memset(&fb, 0, sizeof fb);
    memset(&fs, 0, sizeof fs);
    fa.other = &b;
    fb.other = &a;
    fs.gather_self = 1;
    test_loop(&L);
    coro_loop_set_report(&L, count_cycles, NULL);
    cycles_seen = 0;
    coro_spawn(&L, &a, coro_frame_init(&fa.co, cyc_fn));
    coro_spawn(&L, &b, coro_frame_init(&fb.co, cyc_fn));
    coro_spawn(&L, &s, coro_frame_init(&fs.co, cyc_fn));
    coro_loop_run_once(&L);
    CHECK_EQ(coro_task_cancel(&L, &a), 1);
#ifndef CORO_NO_DIAG /* the report */
    CHECK_EQ(cycles_seen, 1);
#endif
    CHECK_EQ(coro_task_cancelling(&a), 1);
    CHECK_EQ(coro_task_cancelling(&b), 1);
    CHECK_EQ(coro_task_cancel(&L, &s), 1);
#ifndef CORO_NO_DIAG /* the report */
    CHECK_EQ(cycles_seen, 2);
#endif
    CHECK_EQ(a.h.flags & CORO__T_MARK, 0); /* no mark left behind */
    CHECK_EQ(b.h.flags & CORO__T_MARK, 0);
    CHECK_EQ(s.h.flags & CORO__T_MARK, 0);
    CHECK_EQ(coro_loop_run_forever(&L), CORO_EDEADLK); /* still stuck, not hung */
    coro_loop_close(&L);
}

/* ---- CPython 3.13: after a task awaited itself, awaiting it fails at
 * once while it is pending (its future's "blocking" flag stays set):
 *   a: try: await a   -> RuntimeError('Task cannot await on itself')
 *   later: await a    -> RuntimeError("await wasn't used with future") */
struct selfish {
    coro_frame co;
    coro_task *target;
    int second;
};

static int selfish_fn(coro_ctx *c)
{
    CORO_BEGIN(c);
    CORO_AWAIT_TASK(c, c->task);
    TRACE("a:%d", c->rc);
    CORO_AWAIT_TASK(c, c->task); /* fails at once this time */
    TRACE("a2:%d", c->rc);
    CORO_SLEEP(c, CORO_MS(10));
    CORO_RETURN(c, 3);
    CORO_END(c);
}

static int later_fn(coro_ctx *c)
{
    struct selfish *f = CORO_SELF(c, struct selfish);
    CORO_BEGIN(c);
    CORO_YIELD(c);
    CORO_AWAIT_TASK(c, f->target);
    TRACE("later:%d", c->rc);
    CORO_SLEEP(c, CORO_MS(20));
    CORO_AWAIT_TASK(c, f->target); /* done by now: its result */
    TRACE("done:%d", c->rc);
    CORO_END(c);
}

TEST(awaiting_a_task_that_awaited_itself_fails_at_once)
{
    coro_loop L;
    coro_task a, b;
    struct selfish fa, fb;
    memset(&fa, 0, sizeof fa);
    memset(&fb, 0, sizeof fb);
    fb.target = &a;
    test_loop(&L);
    coro_spawn(&L, &a, coro_frame_init(&fa.co, selfish_fn));
    coro_spawn(&L, &b, coro_frame_init(&fb.co, later_fn));
    coro_loop_run_until_complete(&L, &b);
    CHECK_TRACE("a:-35 a2:-35 later:-35 done:3");
    coro_loop_close(&L);
}
