/* test_event_lock.c - coro_sync.h's Event (R-EV, T82) and Lock (R-LOCK,
 * T78-T81): exact wake-up orders, error paths, close, the CANCEL-SAFETY
 * lines of Event and Lock, deadlines, and the CORO_LOCK_ACQUIRE fast path.
 *
 * Probe outputs quoted below come from CPython 3.13.0 on a virtual-time loop
 * (BaseEventLoop whose selector jumps an integer-millisecond clock; equal
 * deadlines fire in arming order), mirroring each test step for step. */
#include "test.h"
#include "coro_sync.h"

/* ---- helpers */

/* A word for an outcome, appended to a task's name in the trace. */
static const char *rcw(int rc)
{
    if (rc >= 0) return "";
    if (rc == CORO_ECANCELED) return "-cancel";
    if (rc == CORO_ETIMEDOUT) return "-timeout";
    if (rc == CORO_ESHUTDOWN) return "-shutdown";
    if (rc == CORO_EINVAL) return "-inval";
    if (rc == CORO_EAGAIN) return "-again";
    return "-other";
}

/* What a worker task ends with: a cancellation stays a cancellation (so
 * coro_task_cancelled() tells), other outcomes are in the trace and in the
 * worker's rc field, and the task itself succeeds (no unretrieved errors). */
static int task_rc(int rc)
{
    return rc == CORO_ECANCELED ? rc : 0;
}

/* Runs the loop until no task is left; returns the last run_once rc. */
static int drain(coro_loop *L)
{
    int rc = 0;
    while (coro_loop_task_count(L) && (rc = coro_loop_run_once(L)) == 0) {
    }
    return rc;
}

static void cancel_cb(coro_loop *L, void *arg)
{
    coro_task_cancel(L, (coro_task *)arg);
}

/* Closes the loop and checks that nothing was left behind. */
#define CLOSE_CLEAN(L)                                                         \
    do {                                                                       \
        CHECK_EQ(coro_loop_task_count(L), 0);                                  \
        CHECK_EQ(coro_loop_close(L), 0);                                       \
        CHECK_EQ(test_reports(), 0);                                           \
    } while (0)

/* ---- Event waiter: waits, traces "<name>[-outcome]" */
struct evw {
    coro_frame co;
    const char *name;
    coro_event *e;
    coro_event_op op;
    int rc;
};

static int evw_fn(coro_ctx *c)
{
    struct evw *w = CORO_SELF(c, struct evw);
    CORO_BEGIN(c);
    CORO_AWAIT(c, coro_event_wait(&w->op, w->e));
    w->rc = c->rc;
    TRACE("%s%s", w->name, rcw(c->rc));
    CORO_RETURN(c, task_rc(c->rc));
    CORO_END(c);
}

static coro_frame *evw(struct evw *w, const char *name, coro_event *e)
{
    memset(w, 0, sizeof *w);
    w->name = name;
    w->e = e;
    w->rc = 1;
    return coro_frame_init(&w->co, evw_fn);
}

/* ---- Lock worker: acquires (frame form, or CORO_LOCK_ACQUIRE when `fast`),
 * optionally under a deadline; traces "<name>[-outcome]" (with "@ms" when
 * `at`); then holds the lock: awaits `block` if set, sleeps `hold` ms (0:
 * releases at once), and releases, or keeps it when hold < 0. `rounds` times,
 * with a yield after each release. Counts the holders at any instant. */
static int holders, max_holders, lock_count;

struct locker {
    coro_frame co;
    const char *name;
    coro_lock *lk;
    coro_lock_op op;
    coro_timeout tm;
    coro_time deadline; /* CORO_NEVER: none */
    coro_future *block;
    int fast, hold, rounds, round, at, rc;
};

static int locker_fn(coro_ctx *c)
{
    struct locker *w = CORO_SELF(c, struct locker);
    CORO_BEGIN(c);
    for (w->round = 0; w->round < w->rounds; w->round++) {
        if (w->deadline != CORO_NEVER) {
            if (w->fast)
                CORO_DEADLINE(c, &w->tm, w->deadline, CORO_LOCK_ACQUIRE(c, &w->op, w->lk));
            else
                CORO_DEADLINE(c, &w->tm, w->deadline,
                              CORO_AWAIT(c, coro_lock_acquire(&w->op, w->lk)));
        } else if (w->fast) {
            CORO_LOCK_ACQUIRE(c, &w->op, w->lk);
        } else {
            CORO_AWAIT(c, coro_lock_acquire(&w->op, w->lk));
        }
        w->rc = c->rc;
        if (w->rounds > 1)
            TRACE("%s%d%s@%ld", w->name, w->round, rcw(c->rc), test_ms(c->loop));
        else if (w->at)
            TRACE("%s%s@%ld", w->name, rcw(c->rc), test_ms(c->loop));
        else
            TRACE("%s%s", w->name, rcw(c->rc));
        if (c->rc < 0) CORO_RETURN(c, task_rc(c->rc));
        CHECK(coro_lock_locked(w->lk));
        lock_count++;
        if (++holders > max_holders) max_holders = holders;
        if (w->block) CORO_AWAIT_FUTURE(c, w->block);
        if (w->hold > 0) CORO_SLEEP(c, CORO_MS(w->hold));
        holders--;
        if (w->hold < 0) CORO_RETURN(c, 0);
        CHECK_EQ(coro_lock_release(c->loop, w->lk), 0);
        if (w->rounds > 1) CORO_YIELD(c);
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static coro_frame *locker(struct locker *w, const char *name, coro_lock *lk, int hold)
{
    memset(w, 0, sizeof *w);
    w->name = name;
    w->lk = lk;
    w->hold = hold;
    w->rounds = 1;
    w->deadline = CORO_NEVER;
    w->rc = 1;
    return coro_frame_init(&w->co, locker_fn);
}

static void reset_counts(void)
{
    holders = max_holders = lock_count = 0;
}

/* ====================================================================== */
/* Event                                                                   */
/* ====================================================================== */

/* T82 test_wait: t1 and t2 wait, t3 is created (not started), set(), one
 * pass: t3 sees the flag first, then the woken t1 and t2: [3, 1, 2]. */
TEST(T82_event_wait_order)
{
    coro_loop L;
    coro_event e;
    coro_task t[3];
    struct evw w[3];
    test_loop(&L);
    coro_event_init(&e);
    CHECK(!coro_event_is_set(&e));
    coro_spawn(&L, &t[0], evw(&w[0], "t1", &e));
    coro_spawn(&L, &t[1], evw(&w[1], "t2", &e));
    coro_loop_run_once(&L);
    CHECK_TRACE("");
    coro_spawn(&L, &t[2], evw(&w[2], "t3", &e));
    coro_event_set(&L, &e);
    CHECK(coro_event_is_set(&e));
    coro_loop_run_once(&L);
    CHECK_TRACE("t3 t1 t2");
    for (int i = 0; i < 3; i++) {
        CHECK(coro_task_done(&t[i]));
        CHECK_EQ(w[i].rc, 0); /* asyncio: wait() returns True */
        CHECK_EQ(coro_task_result(&t[i]), 0);
    }
    CHECK_EQ(coro__fifo_len(&e.waiters), 0);
    CLOSE_CLEAN(&L);
}

/* test_wait_on_set: a set event's wait() returns at once, without giving
 * the loop a pass. Probe: "main-waited x" (x was spawned before the wait). */
struct ev_main {
    coro_frame co;
    coro_event *e;
    coro_event_op op;
    coro_task x;
    struct evw xw;
    coro_event other;
};

static int ev_main_fn(coro_ctx *c)
{
    struct ev_main *f = CORO_SELF(c, struct ev_main);
    CORO_BEGIN(c);
    coro_event_init(&f->other);
    coro_event_set(c->loop, &f->other);
    coro_spawn(c->loop, &f->x, evw(&f->xw, "x", &f->other));
    CORO_AWAIT(c, coro_event_wait(&f->op, f->e));
    TRACE("main-waited%s", rcw(c->rc));
    CORO_YIELD(c);
    CORO_RETURN(c, 0);
    CORO_END(c);
}

TEST(T82_event_wait_on_set_does_not_suspend)
{
    coro_loop L;
    coro_event e;
    coro_task t;
    struct ev_main f;
    memset(&f, 0, sizeof f);
    test_loop(&L);
    coro_event_init(&e);
    coro_event_set(&L, &e);
    f.e = &e;
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, ev_main_fn)), 0);
    CHECK_TRACE("main-waited x");
    CHECK_EQ(coro__fifo_len(&e.waiters), 0);
    CLOSE_CLEAN(&L);
}

/* T82 test_clear_with_waiters: set(); clear(); set(); set(): the waiter is
 * woken once, the list holds it until it runs. */
TEST(T82_event_clear_with_waiters)
{
    coro_loop L;
    coro_event e;
    coro_task t;
    struct evw w;
    test_loop(&L);
    coro_event_init(&e);
    coro_spawn(&L, &t, evw(&w, "c1", &e));
    coro_loop_run_once(&L);
    CHECK_TRACE("");
    coro_event_set(&L, &e);
    coro_event_clear(&e);
    CHECK(!coro_event_is_set(&e));
    coro_event_set(&L, &e);
    coro_event_set(&L, &e);
    CHECK(coro_event_is_set(&e));
    CHECK_EQ(coro__fifo_len(&e.waiters), 1);
    coro_loop_run_once(&L);
    CHECK_TRACE("c1");
    CHECK_EQ(coro__fifo_len(&e.waiters), 0);
    CHECK(coro_task_done(&t));
    CHECK_EQ(coro_task_result(&t), 0);
    CLOSE_CLEAN(&L);
}

/* R-EV-2: clear() after set() does not un-wake a waiter already released. */
TEST(R_EV_2_clear_after_set_keeps_waiters_woken)
{
    coro_loop L;
    coro_event e;
    coro_task t[2];
    struct evw w[2];
    test_loop(&L);
    coro_event_init(&e);
    coro_spawn(&L, &t[0], evw(&w[0], "a", &e));
    coro_spawn(&L, &t[1], evw(&w[1], "b", &e));
    coro_loop_run_once(&L);
    coro_event_set(&L, &e);
    coro_event_clear(&e);
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("a b");
    CHECK(!coro_event_is_set(&e));
    CLOSE_CLEAN(&L);
}

/* T82 test_wait_cancel: cancel scheduled right after create_task. */
TEST(T82_event_wait_cancel)
{
    coro_loop L;
    coro_event e;
    coro_task t;
    coro_call k;
    struct evw w;
    test_loop(&L);
    coro_event_init(&e);
    coro_spawn(&L, &t, evw(&w, "w", &e));
    coro_call_soon(&L, &k, cancel_cb, &t);
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), CORO_ECANCELED);
    CHECK(coro_task_cancelled(&t));
    CHECK_TRACE("w-cancel");
    CHECK_EQ(coro__fifo_len(&e.waiters), 0);
    CLOSE_CLEAN(&L);
}

/* CANCEL-SAFETY "Event.wait: nothing to give back; the waiter is removed,
 * set() still wakes the others."
 * Probe: "t2-cancel waiters 2 t1 t3 waiters 0". */
TEST(cancel_safety_event_waiter_removed_set_wakes_others)
{
    coro_loop L;
    coro_event e;
    coro_task t[3];
    struct evw w[3];
    static const char *names[3] = {"t1", "t2", "t3"};
    test_loop(&L);
    coro_event_init(&e);
    for (int i = 0; i < 3; i++) coro_spawn(&L, &t[i], evw(&w[i], names[i], &e));
    coro_loop_run_once(&L);
    CHECK_EQ(coro__fifo_len(&e.waiters), 3);
    CHECK_EQ(coro_task_cancel(&L, &t[1]), 1);
    coro_loop_run_once(&L);
    CHECK_TRACE("t2-cancel");
    CHECK_EQ(coro__fifo_len(&e.waiters), 2);
    coro_event_set(&L, &e);
    coro_loop_run_once(&L);
    CHECK_TRACE("t1 t3");
    CHECK_EQ(coro__fifo_len(&e.waiters), 0);
    CHECK(coro_task_cancelled(&t[1]));
    CHECK(!coro_task_cancelled(&t[0]) && !coro_task_cancelled(&t[2]));
    CLOSE_CLEAN(&L);
}

/* The same line, woken-but-not-run: set() completed t1's future, then t1 is
 * cancelled before it runs: t1 ends cancelled, t2 still wakes.
 * Probe: "t1-cancel t2 waiters 0 t1c True". */
TEST(cancel_safety_event_woken_then_cancelled)
{
    coro_loop L;
    coro_event e;
    coro_task t[2];
    struct evw w[2];
    test_loop(&L);
    coro_event_init(&e);
    coro_spawn(&L, &t[0], evw(&w[0], "t1", &e));
    coro_spawn(&L, &t[1], evw(&w[1], "t2", &e));
    coro_loop_run_once(&L);
    coro_event_set(&L, &e);
    CHECK_EQ(coro_task_cancel(&L, &t[0]), 1);
    coro_loop_run_once(&L);
    CHECK_TRACE("t1-cancel t2");
    CHECK_EQ(coro__fifo_len(&e.waiters), 0);
    CHECK(coro_task_cancelled(&t[0]));
    CHECK_EQ(coro_task_result(&t[1]), 0);
    CHECK(coro_event_is_set(&e));
    CLOSE_CLEAN(&L);
}

/* coro_event_close (not in asyncio): every waiter wakes with ESHUTDOWN, in
 * FIFO order; later waits on the (unset) event fail the same way. */
TEST(event_close_wakes_waiters_and_fails_later_waits)
{
    coro_loop L;
    coro_event e;
    coro_task t[3];
    struct evw w[3];
    test_loop(&L);
    coro_event_init(&e);
    coro_spawn(&L, &t[0], evw(&w[0], "t1", &e));
    coro_spawn(&L, &t[1], evw(&w[1], "t2", &e));
    coro_loop_run_once(&L);
    coro_event_close(&L, &e);
    CHECK(!coro_event_is_set(&e));
    coro_loop_run_once(&L);
    CHECK_TRACE("t1-shutdown t2-shutdown");
    CHECK_EQ(w[0].rc, CORO_ESHUTDOWN);
    CHECK_EQ(w[1].rc, CORO_ESHUTDOWN);
    CHECK_EQ(coro__fifo_len(&e.waiters), 0);
    coro_spawn(&L, &t[2], evw(&w[2], "t3", &e));
    coro_loop_run_once(&L);
    CHECK_TRACE("t3-shutdown");
    CHECK_EQ(w[2].rc, CORO_ESHUTDOWN);
    CHECK_EQ(coro__fifo_len(&e.waiters), 0);
    CLOSE_CLEAN(&L);
}

/* Closing after set(): the waiters set() already woke keep their wake-up. */
TEST(event_close_after_set_keeps_wakeups)
{
    coro_loop L;
    coro_event e;
    coro_task t[2];
    struct evw w[2];
    test_loop(&L);
    coro_event_init(&e);
    coro_spawn(&L, &t[0], evw(&w[0], "t1", &e));
    coro_spawn(&L, &t[1], evw(&w[1], "t2", &e));
    coro_loop_run_once(&L);
    coro_event_set(&L, &e);
    coro_event_close(&L, &e);
    coro_loop_run_once(&L);
    CHECK_TRACE("t1 t2");
    CLOSE_CLEAN(&L);
}

/* A wait that starts after close fails even though the flag is set: close
 * is final, as the header says. */
TEST(event_wait_after_close_fails_even_if_set)
{
    coro_loop L;
    coro_event e;
    coro_task t;
    struct evw w;
    test_loop(&L);
    coro_event_init(&e);
    coro_event_set(&L, &e);
    coro_event_close(&L, &e);
    CHECK(coro_event_is_set(&e));
    coro_spawn(&L, &t, evw(&w, "t1", &e));
    coro_loop_run_once(&L);
    CHECK_TRACE("t1-shutdown");
    CHECK_EQ(w.rc, CORO_ESHUTDOWN);
    CLOSE_CLEAN(&L);
}

/* An event wait under a deadline: ETIMEDOUT at the exact time, the waiter
 * is gone, set() later wakes only the other waiter. */
struct evdl {
    coro_frame co;
    coro_event *e;
    coro_event_op op;
    coro_timeout tm;
    int ms;
};

static int evdl_fn(coro_ctx *c)
{
    struct evdl *f = CORO_SELF(c, struct evdl);
    CORO_BEGIN(c);
    CORO_TIMEOUT(c, &f->tm, CORO_MS(f->ms), CORO_AWAIT(c, coro_event_wait(&f->op, f->e)));
    TRACE("dl%s@%ld", rcw(c->rc), test_ms(c->loop));
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static void set_cb(coro_loop *L, void *arg)
{
    coro_event_set(L, (coro_event *)arg);
}

TEST(event_wait_timeout_exact_time_and_removed)
{
    coro_loop L;
    coro_event e;
    coro_task a, b;
    coro_call k;
    struct evdl f = {.e = &e, .ms = 30};
    struct evw w;
    test_loop(&L);
    coro_event_init(&e);
    coro_spawn(&L, &a, coro_frame_init(&f.co, evdl_fn));
    coro_spawn(&L, &b, evw(&w, "b", &e));
    coro_call_at(&L, &k, CORO_MS(100), set_cb, &e);
    CHECK_EQ(coro_loop_run_until_complete(&L, &a), 0);
    CHECK_TRACE("dl-timeout@30");
    CHECK_EQ(coro__fifo_len(&e.waiters), 1);
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("b");
    CHECK_EQ(test_ms(&L), 100);
    CHECK_EQ(coro__fifo_len(&e.waiters), 0);
    CLOSE_CLEAN(&L);
}

/* ====================================================================== */
/* Lock                                                                    */
/* ====================================================================== */

/* T78 test_acquire, in both the frame form and CORO_LOCK_ACQUIRE: the main
 * task holds the lock; c1, c2 wait; release -> [1]; c3 created; release ->
 * [1,2] (c3 queues behind the woken c2); release -> [1,2,3]. */
TEST(T78_lock_acquire_fifo)
{
    for (int fast = 0; fast < 2; fast++) {
        coro_loop L;
        coro_lock lk;
        coro_task t[3];
        struct locker w[3];
        test_loop(&L);
        reset_counts();
        coro_lock_init(&lk);
        CHECK(!coro_lock_locked(&lk));
        CHECK_EQ(coro_lock_try_acquire(&lk), 0); /* await lock.acquire() */
        coro_spawn(&L, &t[0], locker(&w[0], "1", &lk, -1));
        coro_spawn(&L, &t[1], locker(&w[1], "2", &lk, -1));
        w[0].fast = w[1].fast = fast;
        coro_loop_run_once(&L);
        CHECK_TRACE("");
        CHECK_EQ(coro_lock_release(&L, &lk), 0);
        coro_loop_run_once(&L);
        CHECK_TRACE("1");
        coro_loop_run_once(&L);
        CHECK_TRACE("");
        coro_spawn(&L, &t[2], locker(&w[2], "3", &lk, -1));
        w[2].fast = fast;
        CHECK_EQ(coro_lock_release(&L, &lk), 0);
        coro_loop_run_once(&L);
        CHECK_TRACE("2");
        CHECK_EQ(coro_lock_release(&L, &lk), 0);
        coro_loop_run_once(&L);
        CHECK_TRACE("3");
        CHECK(coro_lock_locked(&lk));
        for (int i = 0; i < 3; i++) {
            CHECK(coro_task_done(&t[i]));
            CHECK_EQ(coro_task_result(&t[i]), 0);
        }
        CHECK_EQ(coro__fifo_len(&lk.waiters), 0);
        CLOSE_CLEAN(&L);
    }
}

/* T79 test_acquire_cancel: a cancelled waiting acquire leaves no waiter. */
TEST(T79_lock_acquire_cancel)
{
    coro_loop L;
    coro_lock lk;
    coro_task t;
    coro_call k;
    struct locker w;
    test_loop(&L);
    reset_counts();
    coro_lock_init(&lk);
    CHECK_EQ(coro_lock_try_acquire(&lk), 0);
    coro_spawn(&L, &t, locker(&w, "w", &lk, 0));
    coro_call_soon(&L, &k, cancel_cb, &t);
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), CORO_ECANCELED);
    CHECK_TRACE("w-cancel");
    CHECK_EQ(coro__fifo_len(&lk.waiters), 0);
    CHECK(coro_lock_locked(&lk));
    CHECK_EQ(lock_count, 0);
    CLOSE_CLEAN(&L);
}

/* T79 test_cancel_race: A holds the lock (blocked on fa), B and C wait;
 * fa completes and B is cancelled in the same pass: A's release finds B's
 * cancelled future first and wakes nobody; B, leaving, wakes C. */
TEST(T79_lock_cancel_race)
{
    coro_loop L;
    coro_lock lk;
    coro_future fa = CORO_FUTURE_INIT;
    coro_task ta, tb, tc;
    struct locker a, b, cc;
    test_loop(&L);
    reset_counts();
    coro_lock_init(&lk);
    coro_spawn(&L, &ta, locker(&a, "A", &lk, 0));
    a.block = &fa; /* lockit('A', fa): acquire; await fa; release */
    coro_loop_run_once(&L);
    CHECK(coro_lock_locked(&lk));
    coro_spawn(&L, &tb, locker(&b, "B", &lk, 0));
    coro_loop_run_once(&L);
    CHECK_EQ(coro__fifo_len(&lk.waiters), 1);
    coro_spawn(&L, &tc, locker(&cc, "C", &lk, 0));
    coro_loop_run_once(&L);
    CHECK_EQ(coro__fifo_len(&lk.waiters), 2);
    CHECK_TRACE("A");
    coro_future_set_result(&L, &fa, 0);
    CHECK_EQ(coro_task_cancel(&L, &tb), 1);
    CHECK(coro_future_cancelled(&coro__fifo_first(&lk.waiters)->fut));
    coro_loop_run_once(&L); /* A wakes and releases, then B leaves */
    CHECK_TRACE("B-cancel");
    CHECK(!coro_lock_locked(&lk));
    CHECK(coro_task_done(&ta));
    CHECK(coro_task_cancelled(&tb));
    CHECK_EQ(coro_loop_run_until_complete(&L, &tc), 0);
    CHECK_TRACE("C");
    CHECK(coro_task_done(&ta));
    CHECK_EQ(max_holders, 1);
    CHECK(!coro_lock_locked(&lk));
    CLOSE_CLEAN(&L);
}

/* T80 test_cancel_release_race: one callback does t1.cancel(); release():
 * exactly one acquire succeeds (t2), t3 still waits. Conformance
 * T80_lock_cancel_release_race.expected: t1 cancelled, "t2 log got",
 * t3 pending, lock locked. */
static coro_lock *t80_lock;
static coro_task *t80_t1;

static void t80_trigger(coro_loop *L, void *arg)
{
    (void)arg;
    coro_task_cancel(L, t80_t1);
    CHECK_EQ(coro_lock_release(L, t80_lock), 0);
}

TEST(T80_cancel_release_race_one_holder)
{
    coro_loop L;
    coro_lock lk;
    coro_task t[3];
    coro_call k;
    struct locker w[3];
    static const char *names[3] = {"t1", "t2", "t3"};
    test_loop(&L);
    reset_counts();
    coro_lock_init(&lk);
    CHECK_EQ(coro_lock_try_acquire(&lk), 0);
    for (int i = 0; i < 3; i++) coro_spawn(&L, &t[i], locker(&w[i], names[i], &lk, -1));
    coro_loop_run_once(&L);
    t80_lock = &lk;
    t80_t1 = &t[0];
    coro_call_soon(&L, &k, t80_trigger, NULL);
    /* `await t1`: the awaiter wakes in the pass where t2 (woken by t1's
     * leaving) takes the lock, and after it */
    CHECK_EQ(coro_loop_run_until_complete(&L, &t[0]), CORO_ECANCELED);
    CHECK_TRACE("t1-cancel t2");
    CHECK_EQ(lock_count, 1);
    CHECK(coro_task_cancelled(&t[0]));
    CHECK(coro_task_done(&t[1]));
    CHECK(!coro_task_done(&t[2]));
    CHECK(coro_lock_locked(&lk));
    coro_task_cancel(&L, &t[2]);
    coro_loop_run_once(&L);
    CHECK(coro_task_cancelled(&t[2]));
    CHECK_TRACE("t3-cancel");
    CHECK_EQ(lock_count, 1);
    CHECK_EQ(coro__fifo_len(&lk.waiters), 0);
    CLOSE_CLEAN(&L);
}

/* T79 test_finished_waiter_cancelled: tb waits, tc is created, tb is
 * cancelled, then the lock is released: tc (first step) finds only a
 * cancelled waiter and takes the lock at once; tb leaves cancelled.
 * Probe: "tc tb-cancel locked True waiters 0". */
TEST(T79_lock_finished_waiter_cancelled)
{
    coro_loop L;
    coro_lock lk;
    coro_task tb, tc;
    struct locker b, cc;
    test_loop(&L);
    reset_counts();
    coro_lock_init(&lk);
    CHECK_EQ(coro_lock_try_acquire(&lk), 0);
    coro_spawn(&L, &tb, locker(&b, "tb", &lk, -1));
    coro_loop_run_once(&L);
    CHECK_EQ(coro__fifo_len(&lk.waiters), 1);
    coro_spawn(&L, &tc, locker(&cc, "tc", &lk, -1));
    coro_task_cancel(&L, &tb);
    CHECK_EQ(coro_lock_release(&L, &lk), 0);
    coro_loop_run_once(&L);
    CHECK_TRACE("tc tb-cancel");
    CHECK(coro_lock_locked(&lk));
    CHECK(coro_task_cancelled(&tb));
    CHECK_EQ(coro__fifo_len(&lk.waiters), 0);
    CHECK_EQ(coro_task_result(&tc), 0);
    CLOSE_CLEAN(&L);
}

/* CANCEL-SAFETY "Lock.acquire: never holds the lock; a wake-up meant for it
 * passes to the next waiter" - the woken-but-not-run case: release() woke
 * tb, tb is cancelled before it runs; tc (created before) queued behind tb's
 * live wake-up, and gets it from tb one pass later.
 * Probe: "tb-cancel locked False waiters 1 tc locked True waiters 0". */
TEST(cancel_safety_lock_woken_then_cancelled_passes_wakeup)
{
    for (int fast = 0; fast < 2; fast++) {
        coro_loop L;
        coro_lock lk;
        coro_task tb, tc;
        struct locker b, cc;
        test_loop(&L);
        reset_counts();
        coro_lock_init(&lk);
        CHECK_EQ(coro_lock_try_acquire(&lk), 0);
        coro_spawn(&L, &tb, locker(&b, "tb", &lk, -1));
        b.fast = fast;
        coro_loop_run_once(&L);
        coro_spawn(&L, &tc, locker(&cc, "tc", &lk, -1));
        cc.fast = fast;
        CHECK_EQ(coro_lock_release(&L, &lk), 0);
        CHECK_EQ(coro_task_cancel(&L, &tb), 1);
        coro_loop_run_once(&L);
        CHECK_TRACE("tb-cancel");
        CHECK(!coro_lock_locked(&lk));
        CHECK_EQ(coro__fifo_len(&lk.waiters), 1);
        coro_loop_run_once(&L);
        CHECK_TRACE("tc");
        CHECK(coro_lock_locked(&lk));
        CHECK_EQ(coro__fifo_len(&lk.waiters), 0);
        CHECK_EQ(lock_count, 1);
        CHECK(coro_task_cancelled(&tb));
        CHECK_EQ(b.rc, CORO_ECANCELED);
        CLOSE_CLEAN(&L);
    }
}

/* CANCEL-SAFETY, Lock, plain case: a waiter cancelled while queued never
 * holds the lock, and the next release goes to the waiter behind it. */
TEST(cancel_safety_lock_cancelled_waiter_never_holds)
{
    coro_loop L;
    coro_lock lk;
    coro_task t[3];
    struct locker w[3];
    static const char *names[3] = {"a", "b", "c"};
    test_loop(&L);
    reset_counts();
    coro_lock_init(&lk);
    CHECK_EQ(coro_lock_try_acquire(&lk), 0);
    for (int i = 0; i < 3; i++) coro_spawn(&L, &t[i], locker(&w[i], names[i], &lk, 0));
    coro_loop_run_once(&L);
    coro_task_cancel(&L, &t[0]);
    coro_loop_run_once(&L);
    CHECK_TRACE("a-cancel");
    CHECK(coro_lock_locked(&lk)); /* a's leaving did not touch the held lock */
    CHECK_EQ(coro__fifo_len(&lk.waiters), 2);
    CHECK_EQ(coro_lock_release(&L, &lk), 0);
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("b c");
    CHECK_EQ(lock_count, 2);
    CHECK_EQ(max_holders, 1);
    CHECK(!coro_lock_locked(&lk));
    CLOSE_CLEAN(&L);
}

/* T81 test_release_not_acquired / test_release_no_waiters. */
TEST(T81_lock_release_not_acquired)
{
    coro_loop L;
    coro_lock lk;
    test_loop(&L);
    coro_lock_init(&lk);
    CHECK_EQ(coro_lock_release(&L, &lk), CORO_EINVAL);
    CHECK_EQ(coro_lock_try_acquire(&lk), 0);
    CHECK(coro_lock_locked(&lk));
    CHECK_EQ(coro_lock_try_acquire(&lk), CORO_EAGAIN);
    CHECK_EQ(coro_lock_release(&L, &lk), 0);
    CHECK(!coro_lock_locked(&lk));
    CHECK_EQ(coro_lock_release(&L, &lk), CORO_EINVAL);
    CLOSE_CLEAN(&L);
}

/* T81 test_context_manager: locked inside, unlocked after, in a task. */
struct cm {
    coro_frame co;
    coro_lock *lk;
    coro_lock_op op;
};

static int cm_fn(coro_ctx *c)
{
    struct cm *f = CORO_SELF(c, struct cm);
    CORO_BEGIN(c);
    CHECK(!coro_lock_locked(f->lk));
    CORO_AWAIT(c, coro_lock_acquire(&f->op, f->lk));
    CORO_CHECK(c);
    TRACE("in=%d", coro_lock_locked(f->lk));
    CORO_YIELD(c);
    CHECK_EQ(coro_lock_release(c->loop, f->lk), 0);
    TRACE("out=%d", coro_lock_locked(f->lk));
    CORO_LOCK_ACQUIRE(c, &f->op, f->lk);
    CORO_CHECK(c);
    TRACE("in=%d", coro_lock_locked(f->lk));
    CHECK_EQ(coro_lock_release(c->loop, f->lk), 0);
    CORO_RETURN(c, 7);
    CORO_END(c);
}

TEST(T81_lock_context_manager)
{
    coro_loop L;
    coro_lock lk;
    coro_task t;
    struct cm f;
    test_loop(&L);
    coro_lock_init(&lk);
    f.lk = &lk;
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, cm_fn)), 7);
    CHECK_TRACE("in=1 out=0 in=1");
    CHECK(!coro_lock_locked(&lk));
    CLOSE_CLEAN(&L);
}

/* R-LOCK-2: between release() and the woken waiter's step the lock is
 * unlocked, yet a newcomer queues behind the live waiter (no barging):
 * try_acquire says EAGAIN, and the order is B then C.
 * Probe: "locked False B C". */
TEST(R_LOCK_2_no_barging_in_release_window)
{
    for (int fast = 0; fast < 2; fast++) {
        coro_loop L;
        coro_lock lk;
        coro_task tb, tc;
        struct locker b, cc;
        test_loop(&L);
        reset_counts();
        coro_lock_init(&lk);
        CHECK_EQ(coro_lock_try_acquire(&lk), 0);
        coro_spawn(&L, &tb, locker(&b, "B", &lk, 0));
        coro_loop_run_once(&L);
        CHECK_EQ(coro_lock_release(&L, &lk), 0);
        CHECK(!coro_lock_locked(&lk));
        CHECK_EQ(coro_lock_try_acquire(&lk), CORO_EAGAIN);
        coro_spawn(&L, &tc, locker(&cc, "C", &lk, 0));
        cc.fast = fast;
        CHECK_EQ(drain(&L), 0);
        CHECK_TRACE("B C");
        CHECK_EQ(max_holders, 1);
        CLOSE_CLEAN(&L);
    }
}

/* R-LOCK-2: the fast path is taken when every queued waiter is cancelled. */
TEST(R_LOCK_2_try_acquire_skips_cancelled_waiters)
{
    coro_loop L;
    coro_lock lk;
    coro_task t;
    struct locker w;
    test_loop(&L);
    reset_counts();
    coro_lock_init(&lk);
    CHECK_EQ(coro_lock_try_acquire(&lk), 0);
    coro_spawn(&L, &t, locker(&w, "w", &lk, 0));
    coro_loop_run_once(&L);
    coro_task_cancel(&L, &t);     /* its future is cancelled, still queued */
    CHECK_EQ(coro_lock_release(&L, &lk), 0);
    CHECK_EQ(coro__fifo_len(&lk.waiters), 1);
    CHECK_EQ(coro_lock_try_acquire(&lk), 0);
    coro_loop_run_once(&L);
    CHECK_TRACE("w-cancel");
    CHECK(coro_lock_locked(&lk));
    CHECK_EQ(coro__fifo_len(&lk.waiters), 0);
    CHECK_EQ(coro_lock_release(&L, &lk), 0);
    CLOSE_CLEAN(&L);
}

/* coro_lock_close: every waiter wakes with ESHUTDOWN (in order), later
 * acquires in every form fail the same way; the lock stays held and can
 * still be released once. */
TEST(lock_close_wakes_waiters_and_fails_later_acquires)
{
    for (int fast = 0; fast < 2; fast++) {
        coro_loop L;
        coro_lock lk;
        coro_task t[3];
        struct locker w[3];
        test_loop(&L);
        reset_counts();
        coro_lock_init(&lk);
        CHECK_EQ(coro_lock_try_acquire(&lk), 0);
        coro_spawn(&L, &t[0], locker(&w[0], "a", &lk, 0));
        coro_spawn(&L, &t[1], locker(&w[1], "b", &lk, 0));
        w[0].fast = w[1].fast = fast;
        coro_loop_run_once(&L);
        coro_lock_close(&L, &lk);
        coro_loop_run_once(&L);
        CHECK_TRACE("a-shutdown b-shutdown");
        CHECK_EQ(w[0].rc, CORO_ESHUTDOWN);
        CHECK_EQ(coro__fifo_len(&lk.waiters), 0);
        CHECK(coro_lock_locked(&lk));
        CHECK_EQ(coro_lock_try_acquire(&lk), CORO_ESHUTDOWN);
        CHECK_EQ(coro_lock_release(&L, &lk), 0);
        CHECK(!coro_lock_locked(&lk));
        CHECK_EQ(coro_lock_release(&L, &lk), CORO_EINVAL);
        CHECK_EQ(coro_lock_try_acquire(&lk), CORO_ESHUTDOWN);
        coro_spawn(&L, &t[2], locker(&w[2], "c", &lk, 0));
        w[2].fast = fast;
        CHECK_EQ(drain(&L), 0);
        CHECK_TRACE("c-shutdown");
        CHECK(!coro_lock_locked(&lk));
        CHECK_EQ(lock_count, 0);
        CLOSE_CLEAN(&L);
    }
}

static void release_cb(coro_loop *L, void *arg)
{
    TRACE("release@%ld", test_ms(L));
    CHECK_EQ(coro_lock_release(L, (coro_lock *)arg), 0);
}

/* A deadline on a contended acquire: ETIMEDOUT at exactly 30 ms; the waiter
 * is gone, so the release at 100 ms goes to b.
 * Probe (asyncio.timeout(30) around lock.acquire()):
 *   "a-timeout 30 release 100 b 100 waiters 0 locked False". */
TEST(lock_acquire_timeout_exact_time_waiter_gone)
{
    for (int fast = 0; fast < 2; fast++) {
        coro_loop L;
        coro_lock lk;
        coro_task ta, tb;
        coro_call k;
        struct locker a, b;
        test_loop(&L);
        reset_counts();
        coro_lock_init(&lk);
        CHECK_EQ(coro_lock_try_acquire(&lk), 0);
        coro_spawn(&L, &ta, locker(&a, "a", &lk, 0));
        a.deadline = CORO_MS(30);
        a.fast = fast;
        a.at = 1;
        coro_spawn(&L, &tb, locker(&b, "b", &lk, 0));
        b.at = 1;
        coro_call_at(&L, &k, CORO_MS(100), release_cb, &lk);
        CHECK_EQ(coro_loop_run_until_complete(&L, &ta), 0);
        CHECK_TRACE("a-timeout@30");
        CHECK_EQ(a.rc, CORO_ETIMEDOUT);
        CHECK_EQ(coro__fifo_len(&lk.waiters), 1);
        CHECK_EQ(coro_task_cancelling(&ta), 0);
        CHECK_EQ(drain(&L), 0);
        CHECK_TRACE("release@100 b@100");
        CHECK_EQ(lock_count, 1);
        CHECK(!coro_lock_locked(&lk));
        CHECK_EQ(coro__fifo_len(&lk.waiters), 0);
        CLOSE_CLEAN(&L);
    }
}

/* The deadline expires in the pass where release() woke the waiter (the
 * release callback was armed first, at the same time): the woken-then-
 * cancelled waiter times out and passes the lock to b at the same time.
 * Probe (call_at(30, release); timeout_at(30) around acquire):
 *   "release 30 a-timeout 30 b 30 locked False". */
TEST(lock_deadline_expiring_while_woken_passes_lock_on)
{
    for (int fast = 0; fast < 2; fast++) {
        coro_loop L;
        coro_lock lk;
        coro_task ta, tb;
        coro_call k;
        struct locker a, b;
        test_loop(&L);
        reset_counts();
        coro_lock_init(&lk);
        CHECK_EQ(coro_lock_try_acquire(&lk), 0);
        coro_call_at(&L, &k, CORO_MS(30), release_cb, &lk);
        coro_spawn(&L, &ta, locker(&a, "a", &lk, 0));
        a.deadline = CORO_MS(30);
        a.fast = fast;
        a.at = 1;
        coro_spawn(&L, &tb, locker(&b, "b", &lk, 0));
        b.at = 1;
        CHECK_EQ(drain(&L), 0);
        CHECK_TRACE("release@30 a-timeout@30 b@30");
        CHECK_EQ(a.rc, CORO_ETIMEDOUT);
        CHECK_EQ(lock_count, 1);
        CHECK(!coro_lock_locked(&lk));
        CLOSE_CLEAN(&L);
    }
}

/* Same deadline, but the holder sleeps until then: its sleep's wake-up and
 * the deadline land in the same pass; the holder releases first (waking
 * nobody: a's future is cancelled), then a leaves and wakes b.
 * Probe: "release 30 a-timeout 30 b 30 locked False". */
TEST(lock_deadline_same_time_as_holder_release)
{
    coro_loop L;
    coro_lock lk;
    coro_task th, ta, tb;
    struct locker h, a, b;
    test_loop(&L);
    reset_counts();
    coro_lock_init(&lk);
    coro_spawn(&L, &th, locker(&h, "h", &lk, 30));
    h.at = 1;
    coro_spawn(&L, &ta, locker(&a, "a", &lk, 0));
    a.deadline = CORO_MS(30);
    a.at = 1;
    coro_spawn(&L, &tb, locker(&b, "b", &lk, 0));
    b.at = 1;
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("h@0 a-timeout@30 b@30");
    CHECK_EQ(lock_count, 2);
    CHECK_EQ(max_holders, 1);
    CLOSE_CLEAN(&L);
}

/* The fast-path macro and the frame form give the same trace on a
 * contended lock: three workers, two rounds of 10 ms each.
 * Probe: "a0@0 b0@10 c0@20 a1@30 b1@40 c1@50". */
TEST(lock_fast_path_macro_same_trace_as_frame)
{
    char traces[2][sizeof test__trace];
    for (int fast = 0; fast < 2; fast++) {
        coro_loop L;
        coro_lock lk;
        coro_task t[3];
        struct locker w[3];
        static const char *names[3] = {"a", "b", "c"};
        test_loop(&L);
        reset_counts();
        coro_lock_init(&lk);
        for (int i = 0; i < 3; i++) {
            coro_spawn(&L, &t[i], locker(&w[i], names[i], &lk, 10));
            w[i].rounds = 2;
            w[i].fast = fast;
        }
        CHECK_EQ(drain(&L), 0);
        memcpy(traces[fast], test__trace, sizeof test__trace);
        CHECK_TRACE("a0@0 b0@10 c0@20 a1@30 b1@40 c1@50");
        CHECK_EQ(max_holders, 1);
        CHECK_EQ(lock_count, 6);
        CLOSE_CLEAN(&L);
    }
    CHECK_STR(traces[0], traces[1]);
}

/* CORO_LOCK_ACQUIRE on a free lock takes no child frame and no pass: the
 * op record is not even touched. */
struct fastfree {
    coro_frame co;
    coro_lock *lk;
    coro_lock_op op;
};

static int fastfree_fn(coro_ctx *c)
{
    struct fastfree *f = CORO_SELF(c, struct fastfree);
    CORO_BEGIN(c);
    f->op.lk = NULL;
    CORO_LOCK_ACQUIRE(c, &f->op, f->lk);
    CHECK_EQ(c->rc, 0);
    CHECK(f->op.lk == NULL);
    CHECK_EQ(coro_lock_release(c->loop, f->lk), 0);
    CORO_AWAIT(c, coro_lock_acquire(&f->op, f->lk)); /* the frame form, free */
    CHECK_EQ(c->rc, 0);
    CHECK(f->op.lk == f->lk);
    CHECK_EQ(coro_lock_release(c->loop, f->lk), 0);
    TRACE("done@%ld", test_ms(c->loop));
    CORO_RETURN(c, 0);
    CORO_END(c);
}

TEST(lock_fast_path_uncontended_no_suspension)
{
    coro_loop L;
    coro_lock lk;
    coro_task t, x;
    struct fastfree f;
    struct evw xw;
    coro_event e;
    test_loop(&L);
    coro_lock_init(&lk);
    coro_event_init(&e);
    coro_event_set(&L, &e);
    f.lk = &lk;
    coro_spawn(&L, &t, coro_frame_init(&f.co, fastfree_fn));
    coro_spawn(&L, &x, evw(&xw, "x", &e));
    coro_loop_run_once(&L);
    CHECK_TRACE("done@0 x"); /* all of main's body ran in its first step */
    CLOSE_CLEAN(&L);
}

/* A deadline already past: an uncontended acquire does not suspend, so it
 * succeeds (the expiry is only delivered at a suspension); a contended one
 * times out in the next pass and leaves no waiter.
 * Probe (at 10 ms, timeout_at(5)): "free acquired True 10 | other ran |
 *   timeout 10 waiters 0". */
struct pastdl {
    coro_frame co;
    coro_lock *lk;
    coro_lock_op op;
    coro_timeout tm;
    coro_task other;
    struct evw ow;
    coro_event ev;
    int fast;
};

static int pastdl_fn(coro_ctx *c)
{
    struct pastdl *f = CORO_SELF(c, struct pastdl);
    CORO_BEGIN(c);
    CORO_SLEEP(c, CORO_MS(10));
    if (f->fast)
        CORO_DEADLINE(c, &f->tm, CORO_MS(5), CORO_LOCK_ACQUIRE(c, &f->op, f->lk));
    else
        CORO_DEADLINE(c, &f->tm, CORO_MS(5), CORO_AWAIT(c, coro_lock_acquire(&f->op, f->lk)));
    TRACE("free%s@%ld locked=%d", rcw(c->rc), test_ms(c->loop), coro_lock_locked(f->lk));
    coro_event_init(&f->ev);
    coro_event_set(c->loop, &f->ev);
    coro_spawn(c->loop, &f->other, evw(&f->ow, "other", &f->ev));
    if (f->fast)
        CORO_DEADLINE(c, &f->tm, CORO_MS(5), CORO_LOCK_ACQUIRE(c, &f->op, f->lk));
    else
        CORO_DEADLINE(c, &f->tm, CORO_MS(5), CORO_AWAIT(c, coro_lock_acquire(&f->op, f->lk)));
    TRACE("held%s@%ld waiters=%u", rcw(c->rc), test_ms(c->loop), coro__fifo_len(&f->lk->waiters));
    CORO_RETURN(c, 0);
    CORO_END(c);
}

TEST(lock_deadline_already_past)
{
    for (int fast = 0; fast < 2; fast++) {
        coro_loop L;
        coro_lock lk;
        coro_task t;
        struct pastdl f;
        memset(&f, 0, sizeof f);
        test_loop(&L);
        coro_lock_init(&lk);
        f.lk = &lk;
        f.fast = fast;
        CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, pastdl_fn)), 0);
        CHECK_TRACE("free@10 locked=1 other held-timeout@10 waiters=0");
        CLOSE_CLEAN(&L);
    }
}
