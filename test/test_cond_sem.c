/* test_cond_sem.c - coro_sync.h's Condition (R-COND, T83-T86) and
 * Semaphore / BoundedSemaphore (R-SEM, T87-T90): exact orders, error paths,
 * close, the CANCEL-SAFETY lines of Condition and Semaphore, deadlines and
 * the CORO_SEM_ACQUIRE fast path.
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

static void cancel_cb(coro_loop *L, void *arg)
{
    coro_task_cancel(L, (coro_task *)arg);
}

#define CLOSE_CLEAN(L)                                                         \
    do {                                                                       \
        CHECK_EQ(coro_loop_task_count(L), 0);                                  \
        CHECK_EQ(coro_loop_close(L), 0);                                       \
        CHECK_EQ(test_reports(), 0);                                           \
    } while (0)

/* ====================================================================== */
/* Condition                                                               */
/* ====================================================================== */

/* A condition waiter: acquires the lock (unless `nolock`), waits (wait_for
 * when `pred` is set; under a relative timeout when `timeout` is not
 * CORO_NEVER), records whether the lock is held on return, traces
 * "<name>[-outcome]" (with "@ms" when `at`), then releases when `release`
 * (like leaving `async with cond`). */
struct condw {
    coro_frame co;
    const char *name;
    coro_cond *cv;
    coro_lock_op lop;
    coro_cond_op op;
    coro_timeout tm;
    coro_pred *pred;
    void *arg;
    coro_time timeout;
    int nolock, release, at, rc, held;
};

static int condw_fn(coro_ctx *c)
{
    struct condw *w = CORO_SELF(c, struct condw);
    CORO_BEGIN(c);
    if (!w->nolock) {
        CORO_AWAIT(c, coro_lock_acquire(&w->lop, coro_cond_lock(w->cv)));
        CORO_CHECK(c);
    }
    if (w->timeout != CORO_NEVER) {
        if (w->pred)
            CORO_TIMEOUT(c, &w->tm, w->timeout,
                         CORO_AWAIT(c, coro_cond_wait_for(&w->op, w->cv, w->pred, w->arg)));
        else
            CORO_TIMEOUT(c, &w->tm, w->timeout, CORO_AWAIT(c, coro_cond_wait(&w->op, w->cv)));
    } else if (w->pred) {
        CORO_AWAIT(c, coro_cond_wait_for(&w->op, w->cv, w->pred, w->arg));
    } else {
        CORO_AWAIT(c, coro_cond_wait(&w->op, w->cv));
    }
    w->rc = c->rc;
    w->held = coro_lock_locked(coro_cond_lock(w->cv));
    if (w->at)
        TRACE("%s%s@%ld", w->name, rcw(c->rc), test_ms(c->loop));
    else
        TRACE("%s%s", w->name, rcw(c->rc));
    if (w->release && w->rc != CORO_EINVAL)
        CHECK_EQ(coro_lock_release(c->loop, coro_cond_lock(w->cv)), 0);
    CORO_RETURN(c, task_rc(w->rc));
    CORO_END(c);
}

static coro_frame *condw(struct condw *w, const char *name, coro_cond *cv, int release)
{
    memset(w, 0, sizeof *w);
    w->name = name;
    w->cv = cv;
    w->release = release;
    w->timeout = CORO_NEVER;
    w->rc = 1;
    return coro_frame_init(&w->co, condw_fn);
}

/* T83 test_wait: three waiters that keep the lock once woken. notify()
 * under the lock wakes nobody until release; notify(2) while c1 holds the
 * lock; each release lets one more through: [1], [1,2], [1,2,3]. */
TEST(T83_condition_wait)
{
    coro_loop L;
    coro_cond cv;
    coro_lock *lk;
    coro_task t[3];
    struct condw w[3];
    static const char *names[3] = {"1", "2", "3"};
    test_loop(&L);
    coro_cond_init(&cv, NULL);
    lk = coro_cond_lock(&cv);
    for (int i = 0; i < 3; i++) coro_spawn(&L, &t[i], condw(&w[i], names[i], &cv, 0));
    coro_loop_run_once(&L);
    CHECK_TRACE("");
    CHECK(!coro_lock_locked(lk));
    CHECK_EQ(coro__fifo_len(&cv.waiters), 3);

    CHECK_EQ(coro_lock_try_acquire(lk), 0);
    CHECK_EQ(coro_cond_notify(&L, &cv, 1), 0);
    coro_loop_run_once(&L);
    CHECK_TRACE("");
    CHECK(coro_lock_locked(lk));

    CHECK_EQ(coro_lock_release(&L, lk), 0);
    coro_loop_run_once(&L);
    CHECK_TRACE("1");
    CHECK(coro_lock_locked(lk));

    CHECK_EQ(coro_cond_notify(&L, &cv, 2), 0);
    coro_loop_run_once(&L);
    CHECK_TRACE("");
    CHECK(coro_lock_locked(lk));

    CHECK_EQ(coro_lock_release(&L, lk), 0);
    coro_loop_run_once(&L);
    CHECK_TRACE("2");
    CHECK(coro_lock_locked(lk));

    CHECK_EQ(coro_lock_release(&L, lk), 0);
    coro_loop_run_once(&L);
    CHECK_TRACE("3");
    CHECK(coro_lock_locked(lk));
    for (int i = 0; i < 3; i++) {
        CHECK(coro_task_done(&t[i]));
        CHECK_EQ(w[i].rc, 0);
        CHECK(w[i].held);
    }
    CHECK_EQ(coro__fifo_len(&cv.waiters), 0);
    CLOSE_CLEAN(&L);
}

/* T83 test_notify: notify(1) -> [1]; notify(1) then notify(2048) in one
 * critical section -> everyone: [1,2,3]. */
TEST(T83_condition_notify)
{
    coro_loop L;
    coro_cond cv;
    coro_lock *lk;
    coro_task t[3];
    struct condw w[3];
    static const char *names[3] = {"1", "2", "3"};
    test_loop(&L);
    coro_cond_init(&cv, NULL);
    lk = coro_cond_lock(&cv);
    for (int i = 0; i < 3; i++) coro_spawn(&L, &t[i], condw(&w[i], names[i], &cv, 1));
    coro_loop_run_once(&L);
    CHECK_TRACE("");
    CHECK_EQ(coro_lock_try_acquire(lk), 0);
    CHECK_EQ(coro_cond_notify(&L, &cv, 1), 0);
    CHECK_EQ(coro_lock_release(&L, lk), 0);
    coro_loop_run_once(&L);
    CHECK_TRACE("1");
    CHECK_EQ(coro_lock_try_acquire(lk), 0);
    CHECK_EQ(coro_cond_notify(&L, &cv, 1), 0);
    CHECK_EQ(coro_cond_notify(&L, &cv, 2048), 0);
    CHECK_EQ(coro_lock_release(&L, lk), 0);
    coro_loop_run_once(&L);
    CHECK_TRACE("2 3");
    for (int i = 0; i < 3; i++) CHECK_EQ(coro_task_result(&t[i]), 0);
    CHECK(!coro_lock_locked(lk));
    CLOSE_CLEAN(&L);
}

/* T83 test_notify_all. */
TEST(T83_condition_notify_all)
{
    coro_loop L;
    coro_cond cv;
    coro_lock *lk;
    coro_task t[2];
    struct condw w[2];
    test_loop(&L);
    coro_cond_init(&cv, NULL);
    lk = coro_cond_lock(&cv);
    coro_spawn(&L, &t[0], condw(&w[0], "1", &cv, 1));
    coro_spawn(&L, &t[1], condw(&w[1], "2", &cv, 1));
    coro_loop_run_once(&L);
    CHECK_TRACE("");
    CHECK_EQ(coro_lock_try_acquire(lk), 0);
    CHECK_EQ(coro_cond_notify_all(&L, &cv), 0);
    CHECK_EQ(coro_lock_release(&L, lk), 0);
    coro_loop_run_once(&L);
    CHECK_TRACE("1 2");
    CHECK(coro_task_done(&t[0]) && coro_task_done(&t[1]));
    CLOSE_CLEAN(&L);
}

/* T84 test_wait_cancel: a task running cond.wait() (the lock held by the
 * test) is cancelled before it starts waiting: it still returns with the
 * lock held, and leaves no waiter. */
struct rawwait {
    coro_frame co;
    coro_cond *cv;
    coro_cond_op op;
    int rc;
};

static int rawwait_fn(coro_ctx *c)
{
    struct rawwait *f = CORO_SELF(c, struct rawwait);
    CORO_BEGIN(c);
    CORO_AWAIT(c, coro_cond_wait(&f->op, f->cv));
    f->rc = c->rc;
    TRACE("wait%s locked=%d", rcw(c->rc), coro_lock_locked(coro_cond_lock(f->cv)));
    CORO_RETURN(c, c->rc);
    CORO_END(c);
}

TEST(T84_condition_wait_cancel)
{
    coro_loop L;
    coro_cond cv;
    coro_task t;
    coro_call k;
    struct rawwait f;
    test_loop(&L);
    coro_cond_init(&cv, NULL);
    CHECK_EQ(coro_lock_try_acquire(coro_cond_lock(&cv)), 0);
    f.cv = &cv;
    coro_spawn(&L, &t, coro_frame_init(&f.co, rawwait_fn));
    coro_call_soon(&L, &k, cancel_cb, &t);
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), CORO_ECANCELED);
    CHECK_TRACE("wait-cancel locked=1");
    CHECK_EQ(coro__fifo_len(&cv.waiters), 0);
    CHECK(coro_lock_locked(coro_cond_lock(&cv)));
    CLOSE_CLEAN(&L);
}

/* T84 test_wait_cancel_contested: notified, then cancelled while
 * re-acquiring a contested lock, then the lock is released: the waiter
 * swallows its lock-waiter's cancellation, re-acquires, and ends cancelled
 * with the lock held.
 * Probe: "locked False | wait cancelled | locked True waiters 0 lockwaiters 0". */
static void release_cb(coro_loop *L, void *arg)
{
    CHECK_EQ(coro_lock_release(L, (coro_lock *)arg), 0);
}

TEST(T84_condition_wait_cancel_contested)
{
    coro_loop L;
    coro_cond cv;
    coro_lock *lk;
    coro_task t;
    coro_call k1, k2;
    struct rawwait f;
    test_loop(&L);
    coro_cond_init(&cv, NULL);
    lk = coro_cond_lock(&cv);
    CHECK_EQ(coro_lock_try_acquire(lk), 0);
    f.cv = &cv;
    coro_spawn(&L, &t, coro_frame_init(&f.co, rawwait_fn));
    coro_loop_run_once(&L);
    CHECK(!coro_lock_locked(lk));
    CHECK_EQ(coro_lock_try_acquire(lk), 0);
    CHECK_EQ(coro_cond_notify(&L, &cv, 1), 0);
    coro_call_soon(&L, &k1, cancel_cb, &t);
    coro_call_soon(&L, &k2, release_cb, lk);
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), CORO_ECANCELED);
    CHECK_TRACE("wait-cancel locked=1");
    CHECK(coro_lock_locked(lk));
    CHECK_EQ(coro__fifo_len(&cv.waiters), 0);
    CHECK_EQ(coro__fifo_len(&lk->waiters), 0);
    CLOSE_CLEAN(&L);
}

/* T84 test_wait_cancel_after_notify: the waiter ran its body ("waited"),
 * was notified, blocked re-acquiring, got cancelled there; it keeps
 * re-acquiring, gets the lock when the test releases it, and ends
 * cancelled; leaving `async with` releases the lock.
 * Probe: "waited | step | w-cancel locked True | cancelled True locked False". */
TEST(T84_condition_wait_cancel_after_notify)
{
    coro_loop L;
    coro_cond cv;
    coro_lock *lk;
    coro_task t;
    struct condw w;
    test_loop(&L);
    coro_cond_init(&cv, NULL);
    lk = coro_cond_lock(&cv);
    coro_spawn(&L, &t, condw(&w, "w", &cv, 1));
    coro_loop_run_once(&L);
    CHECK_EQ(coro__fifo_len(&cv.waiters), 1); /* "waited": the body ran */
    CHECK_EQ(coro_lock_try_acquire(lk), 0);
    CHECK_EQ(coro_cond_notify(&L, &cv, 1), 0);
    coro_loop_run_once(&L); /* to acquire() */
    CHECK_EQ(coro__fifo_len(&lk->waiters), 1);
    coro_task_cancel(&L, &t);
    coro_loop_run_once(&L); /* the cancellation is swallowed, acquire again */
    CHECK_TRACE("");
    CHECK(!coro_task_done(&t));
    CHECK_EQ(coro__fifo_len(&lk->waiters), 1);
    CHECK_EQ(coro_lock_release(&L, lk), 0);
    coro_loop_run_once(&L);
    CHECK_TRACE("w-cancel");
    CHECK(coro_task_cancelled(&t));
    CHECK(w.held);
    CHECK(!coro_lock_locked(lk));
    CLOSE_CLEAN(&L);
}

/* T84 test_wait_unacquired / test_notify_unacquired / notify_all. */
TEST(T84_condition_unacquired_is_einval)
{
    coro_loop L;
    coro_cond cv;
    coro_task t;
    struct condw w;
    test_loop(&L);
    coro_cond_init(&cv, NULL);
    CHECK_EQ(coro_cond_notify(&L, &cv, 1), CORO_EINVAL);
    CHECK_EQ(coro_cond_notify_all(&L, &cv), CORO_EINVAL);
    coro_spawn(&L, &t, condw(&w, "w", &cv, 1));
    w.nolock = 1;
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("w-inval");
    CHECK_EQ(w.rc, CORO_EINVAL);
    CHECK(!coro_lock_locked(coro_cond_lock(&cv)));
    CHECK_EQ(coro__fifo_len(&cv.waiters), 0);
    CLOSE_CLEAN(&L);
}

/* T85 test_cancelled_wakeup / test_cancelled_wakeup_relock: two consumers;
 * one item; notify(1); the woken consumer is cancelled before it runs
 * (wakeup) or while it re-acquires (relock): the other consumer takes the
 * item, so the notification is not lost.
 * Probe, both variants:
 *   "c0-cancel locked True | c1-consumed 0 | main-timeout 10 | state 0 |
 *    c1-exit | c0 cancelled True 10". */
struct consumer {
    coro_frame co;
    const char *name;
    struct t85 *m;
    coro_lock_op lop;
    coro_cond_op op;
};

struct t85 {
    coro_frame co;
    coro_cond cv;
    int state, relock;
    coro_task c[2];
    struct consumer cons[2];
    coro_lock_op lop;
    coro_cond_op op;
    coro_timeout tm;
};

static int state_nonzero(void *arg)
{
    return ((struct t85 *)arg)->state != 0;
}

static int state_zero(void *arg)
{
    return ((struct t85 *)arg)->state == 0;
}

static int consumer_fn(coro_ctx *c)
{
    struct consumer *f = CORO_SELF(c, struct consumer);
    CORO_BEGIN(c);
    CORO_AWAIT(c, coro_lock_acquire(&f->lop, coro_cond_lock(&f->m->cv)));
    CORO_CHECK(c);
    for (;;) {
        CORO_AWAIT(c, coro_cond_wait_for(&f->op, &f->m->cv, state_nonzero, f->m));
        if (c->rc < 0) {
            TRACE("%s%s locked=%d", f->name, rcw(c->rc),
                  coro_lock_locked(coro_cond_lock(&f->m->cv)));
            coro_lock_release(c->loop, coro_cond_lock(&f->m->cv));
            CORO_FAIL(c, c->rc);
        }
        if (f->m->state < 0) {
            TRACE("%s-exit", f->name);
            break;
        }
        f->m->state--;
        TRACE("%s-consumed@%ld", f->name, test_ms(c->loop));
    }
    coro_lock_release(c->loop, coro_cond_lock(&f->m->cv));
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static int t85_fn(coro_ctx *c)
{
    struct t85 *m = CORO_SELF(c, struct t85);
    CORO_BEGIN(c);
    coro_cond_init(&m->cv, NULL);
    for (int i = 0; i < 2; i++) {
        m->cons[i].name = i ? "c1" : "c0";
        m->cons[i].m = m;
        coro_spawn(c->loop, &m->c[i], coro_frame_init(&m->cons[i].co, consumer_fn));
    }
    CORO_YIELD(c);
    CORO_AWAIT(c, coro_lock_acquire(&m->lop, coro_cond_lock(&m->cv)));
    m->state++;
    CHECK_EQ(coro_cond_notify(c->loop, &m->cv, 1), 0);
    if (m->relock) CORO_YIELD(c); /* c0 wakes and blocks on the lock */
    coro_task_cancel(c->loop, &m->c[0]);
    CORO_TIMEOUT(c, &m->tm, CORO_MS(10),
                 CORO_AWAIT(c, coro_cond_wait_for(&m->op, &m->cv, state_zero, m)));
    TRACE("main%s@%ld", rcw(c->rc), test_ms(c->loop));
    TRACE("state=%d", m->state);
    m->state = -1;
    CHECK_EQ(coro_cond_notify_all(c->loop, &m->cv), 0);
    CHECK_EQ(coro_lock_release(c->loop, coro_cond_lock(&m->cv)), 0);
    CORO_AWAIT_TASK(c, &m->c[1]);
    CHECK_EQ(c->rc, 0);
    TRACE("c0cancelled=%d@%ld", coro_task_cancelled(&m->c[0]), test_ms(c->loop));
    CORO_RETURN(c, 0);
    CORO_END(c);
}

TEST(T85_condition_cancelled_wakeup_not_lost)
{
    for (int relock = 0; relock < 2; relock++) {
        coro_loop L;
        coro_task t;
        struct t85 m;
        memset(&m, 0, sizeof m);
        m.relock = relock;
        test_loop(&L);
        CHECK_EQ(coro_run(&L, &t, coro_frame_init(&m.co, t85_fn)), 0);
        CHECK_TRACE("c0-cancel locked=1 c1-consumed@0 main-timeout@10 state=0 c1-exit "
                    "c0cancelled=1@10");
        CLOSE_CLEAN(&L);
    }
}

/* T86 test_wait_for: wait_for returns only once the predicate holds. */
static int flag_pred(void *arg)
{
    return *(int *)arg;
}

TEST(T86_condition_wait_for)
{
    coro_loop L;
    coro_cond cv;
    coro_lock *lk;
    coro_task t;
    struct condw w;
    int presult = 0;
    test_loop(&L);
    coro_cond_init(&cv, NULL);
    lk = coro_cond_lock(&cv);
    coro_spawn(&L, &t, condw(&w, "1", &cv, 1));
    w.pred = flag_pred;
    w.arg = &presult;
    coro_loop_run_once(&L);
    CHECK_TRACE("");
    CHECK_EQ(coro_lock_try_acquire(lk), 0);
    CHECK_EQ(coro_cond_notify(&L, &cv, 1), 0);
    CHECK_EQ(coro_lock_release(&L, lk), 0);
    coro_loop_run_once(&L);
    CHECK_TRACE(""); /* woken, predicate false: waits again */
    CHECK_EQ(coro__fifo_len(&cv.waiters), 1);
    presult = 1;
    CHECK_EQ(coro_lock_try_acquire(lk), 0);
    CHECK_EQ(coro_cond_notify(&L, &cv, 1), 0);
    CHECK_EQ(coro_lock_release(&L, lk), 0);
    coro_loop_run_once(&L);
    CHECK_TRACE("1");
    CHECK(coro_task_done(&t));
    CHECK_EQ(coro_task_result(&t), 0);
    CLOSE_CLEAN(&L);
}

/* T86 test_wait_for_unacquired: a true predicate returns at once without
 * the lock; a false one without the lock is CORO_EINVAL. */
TEST(T86_condition_wait_for_unacquired)
{
    coro_loop L;
    coro_cond cv;
    coro_task t1, t2;
    struct condw w1, w2;
    int yes = 1, no = 0;
    test_loop(&L);
    coro_cond_init(&cv, NULL);
    coro_spawn(&L, &t1, condw(&w1, "true", &cv, 0));
    w1.nolock = 1;
    w1.pred = flag_pred;
    w1.arg = &yes;
    coro_spawn(&L, &t2, condw(&w2, "false", &cv, 1));
    w2.nolock = 1;
    w2.pred = flag_pred;
    w2.arg = &no;
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("true false-inval");
    CHECK_EQ(w1.rc, 1); /* the predicate's value, asyncio's True */
    CHECK_EQ(w1.held, 0);
    CHECK_EQ(w2.rc, CORO_EINVAL);
    CLOSE_CLEAN(&L);
}

/* T86 test_timeout_in_block: `async with cond: await wait_for(cond.wait(),
 * 0.5)`: wait_for runs the wait in a task; on expiry the task is cancelled,
 * re-acquires the lock, and wait_for gives ETIMEDOUT at exactly 500 ms.
 * Probe: "timeout 500 locked True waiters 0 | locked False". */
struct t86 {
    coro_frame co;
    coro_cond cv;
    coro_lock_op lop;
    coro_task inner;
    struct rawwait w;
    coro_wait_for wf;
};

static int t86_fn(coro_ctx *c)
{
    struct t86 *f = CORO_SELF(c, struct t86);
    CORO_BEGIN(c);
    coro_cond_init(&f->cv, NULL);
    CORO_AWAIT(c, coro_lock_acquire(&f->lop, coro_cond_lock(&f->cv)));
    f->w.cv = &f->cv;
    coro_spawn(c->loop, &f->inner, coro_frame_init(&f->w.co, rawwait_fn));
    CORO_AWAIT(c, coro_wait_for_init(&f->wf, coro_task_future(&f->inner), CORO_MS(500)));
    TRACE("main%s@%ld locked=%d waiters=%u", rcw(c->rc), test_ms(c->loop),
          coro_lock_locked(coro_cond_lock(&f->cv)), coro__fifo_len(&f->cv.waiters));
    CHECK(coro_task_cancelled(&f->inner));
    CHECK_EQ(coro_lock_release(c->loop, coro_cond_lock(&f->cv)), 0);
    CORO_RETURN(c, 0);
    CORO_END(c);
}

TEST(T86_condition_timeout_in_block)
{
    coro_loop L;
    coro_task t;
    struct t86 f;
    memset(&f, 0, sizeof f);
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, t86_fn)), 0);
    CHECK_TRACE("wait-cancel locked=1 main-timeout@500 locked=1 waiters=0");
    CHECK(!coro_lock_locked(coro_cond_lock(&f.cv)));
    CLOSE_CLEAN(&L);
}

/* CORO_TIMEOUT around coro_cond_wait: ETIMEDOUT at exactly 30 ms with the
 * lock re-acquired; leaving, the waiter passes a (spurious) notification to
 * b, which wakes at 30 too (R-COND-2); the waiter is gone: the notify at
 * 100 ms goes to c.
 * Probe: "a-timeout 30 True | b 30 | waiters 1 | notify 100 | c 100". */
static void notify1_cb(coro_loop *L, void *arg)
{
    coro_cond *cv = (coro_cond *)arg;
    CHECK_EQ(coro_lock_try_acquire(coro_cond_lock(cv)), 0);
    TRACE("waiters=%u", coro__fifo_len(&cv->waiters));
    CHECK_EQ(coro_cond_notify(L, cv, 1), 0);
    TRACE("notify@%ld", test_ms(L));
    CHECK_EQ(coro_lock_release(L, coro_cond_lock(cv)), 0);
}

TEST(condition_wait_timeout_exact_time_waiter_gone)
{
    coro_loop L;
    coro_cond cv;
    coro_task ta, tb, tc;
    coro_call k;
    struct condw a, b, cc;
    test_loop(&L);
    coro_cond_init(&cv, NULL);
    coro_spawn(&L, &ta, condw(&a, "a", &cv, 1));
    a.timeout = CORO_MS(30);
    a.at = 1;
    coro_spawn(&L, &tb, condw(&b, "b", &cv, 1));
    b.at = 1;
    coro_spawn(&L, &tc, condw(&cc, "c", &cv, 1));
    cc.at = 1;
    coro_call_at(&L, &k, CORO_MS(100), notify1_cb, &cv);
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("a-timeout@30 b@30 waiters=1 notify@100 c@100");
    CHECK_EQ(a.rc, CORO_ETIMEDOUT);
    CHECK(a.held);
    CHECK_EQ(coro_task_cancelling(&ta), 0);
    CHECK_EQ(coro__fifo_len(&cv.waiters), 0);
    CHECK(!coro_lock_locked(coro_cond_lock(&cv)));
    CLOSE_CLEAN(&L);
}

/* A wait_for under a deadline whose predicate never holds. */
TEST(condition_wait_for_timeout)
{
    coro_loop L;
    coro_cond cv;
    coro_task ta;
    struct condw a;
    int no = 0;
    test_loop(&L);
    coro_cond_init(&cv, NULL);
    coro_spawn(&L, &ta, condw(&a, "a", &cv, 1));
    a.timeout = CORO_MS(45);
    a.at = 1;
    a.pred = flag_pred;
    a.arg = &no;
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("a-timeout@45");
    CHECK(a.held);
    CHECK_EQ(coro__fifo_len(&cv.waiters), 0);
    CLOSE_CLEAN(&L);
}

/* CANCEL-SAFETY "Condition.wait: returns with the lock re-acquired; a
 * notification it got passes on" - plain cancellation of a waiter: the
 * lock is re-acquired before it returns ECANCELED. */
TEST(cancel_safety_cond_cancelled_wait_returns_with_lock)
{
    coro_loop L;
    coro_cond cv;
    coro_task t;
    struct condw w;
    test_loop(&L);
    coro_cond_init(&cv, NULL);
    coro_spawn(&L, &t, condw(&w, "w", &cv, 0));
    coro_loop_run_once(&L);
    CHECK(!coro_lock_locked(coro_cond_lock(&cv)));
    coro_task_cancel(&L, &t);
    coro_loop_run_once(&L);
    CHECK_TRACE("w-cancel");
    CHECK(coro_task_cancelled(&t));
    CHECK(w.held);
    CHECK(coro_lock_locked(coro_cond_lock(&cv)));
    CHECK_EQ(coro__fifo_len(&cv.waiters), 0);
    CHECK_EQ(coro_lock_release(&L, coro_cond_lock(&cv)), 0);
    CLOSE_CLEAN(&L);
}

/* The same line, woken-but-not-run: notify(1) completed w1's future, then
 * w1 is cancelled before it runs; w1 re-acquires, and its notification
 * passes to w2 (not to w3). */
TEST(cancel_safety_cond_woken_then_cancelled_passes_notification)
{
    coro_loop L;
    coro_cond cv;
    coro_lock *lk;
    coro_task t[3];
    struct condw w[3];
    static const char *names[3] = {"w1", "w2", "w3"};
    test_loop(&L);
    coro_cond_init(&cv, NULL);
    lk = coro_cond_lock(&cv);
    for (int i = 0; i < 3; i++) coro_spawn(&L, &t[i], condw(&w[i], names[i], &cv, 1));
    coro_loop_run_once(&L);
    CHECK_EQ(coro_lock_try_acquire(lk), 0);
    CHECK_EQ(coro_cond_notify(&L, &cv, 1), 0);
    coro_task_cancel(&L, &t[0]);
    CHECK_EQ(coro_lock_release(&L, lk), 0);
    coro_loop_run_once(&L);
    CHECK_TRACE("w1-cancel");
    CHECK(w[0].held);
    coro_loop_run_once(&L);
    CHECK_TRACE("w2");
    CHECK_EQ(coro__fifo_len(&cv.waiters), 1); /* w3 still waits */
    CHECK(!coro_task_done(&t[2]));
    CHECK_EQ(coro_lock_try_acquire(lk), 0);
    CHECK_EQ(coro_cond_notify_all(&L, &cv), 0);
    CHECK_EQ(coro_lock_release(&L, lk), 0);
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("w3");
    CLOSE_CLEAN(&L);
}

/* R-COND-5: a condition on a shared lock uses that lock. */
TEST(R_COND_5_shared_lock)
{
    coro_loop L;
    coro_lock lk;
    coro_cond cv;
    coro_task t;
    struct condw w;
    test_loop(&L);
    coro_lock_init(&lk);
    coro_cond_init(&cv, &lk);
    CHECK(coro_cond_lock(&cv) == &lk);
    CHECK_EQ(coro_cond_notify(&L, &cv, 1), CORO_EINVAL);
    coro_spawn(&L, &t, condw(&w, "w", &cv, 1));
    coro_loop_run_once(&L);
    CHECK(!coro_lock_locked(&lk)); /* wait released the shared lock */
    CHECK_EQ(coro_lock_try_acquire(&lk), 0);
    CHECK_EQ(coro_cond_notify(&L, &cv, 1), 0);
    CHECK_EQ(coro_lock_release(&L, &lk), 0);
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("w");
    CHECK(w.held);
    CHECK(!coro_lock_locked(&lk));
    CLOSE_CLEAN(&L);
}

/* coro_cond_close: every waiter wakes with ESHUTDOWN after re-acquiring the
 * lock (one after the other); later waits fail at once, lock still held. */
TEST(condition_close_wakes_waiters_and_fails_later_waits)
{
    coro_loop L;
    coro_cond cv;
    coro_lock *lk;
    coro_task t[3];
    struct condw w[3];
    test_loop(&L);
    coro_cond_init(&cv, NULL);
    lk = coro_cond_lock(&cv);
    coro_spawn(&L, &t[0], condw(&w[0], "a", &cv, 1));
    coro_spawn(&L, &t[1], condw(&w[1], "b", &cv, 1));
    coro_loop_run_once(&L);
    coro_cond_close(&L, &cv);
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("a-shutdown b-shutdown");
    CHECK(w[0].held && w[1].held);
    CHECK_EQ(coro__fifo_len(&cv.waiters), 0);
    CHECK(!coro_lock_locked(lk)); /* the lock stays usable */
    coro_spawn(&L, &t[2], condw(&w[2], "c", &cv, 1));
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("c-shutdown");
    CHECK(w[2].held);
    CHECK(!coro_lock_locked(lk));
    CHECK_EQ(coro_lock_try_acquire(lk), 0);
    CHECK_EQ(coro_lock_release(&L, lk), 0);
    CLOSE_CLEAN(&L);
}

/* ====================================================================== */
/* Semaphore                                                               */
/* ====================================================================== */

/* A semaphore worker: acquires (frame form, or CORO_SEM_ACQUIRE when
 * `fast`; under a relative timeout when set), traces, holds `hold` ms (<0:
 * keeps the permit; 0: releases at once), `rounds` times. Counts holders. */
static int sem_holders, sem_max_holders;

struct semw {
    coro_frame co;
    const char *name;
    coro_sem *s;
    coro_sem_op op;
    coro_timeout tm;
    coro_time timeout;
    int fast, hold, rounds, round, at, rc;
};

static int semw_fn(coro_ctx *c)
{
    struct semw *w = CORO_SELF(c, struct semw);
    CORO_BEGIN(c);
    for (w->round = 1; w->round <= w->rounds; w->round++) {
        if (w->timeout != CORO_NEVER) {
            if (w->fast)
                CORO_TIMEOUT(c, &w->tm, w->timeout, CORO_SEM_ACQUIRE(c, &w->op, w->s));
            else
                CORO_TIMEOUT(c, &w->tm, w->timeout,
                             CORO_AWAIT(c, coro_sem_acquire(&w->op, w->s)));
        } else if (w->fast) {
            CORO_SEM_ACQUIRE(c, &w->op, w->s);
        } else {
            CORO_AWAIT(c, coro_sem_acquire(&w->op, w->s));
        }
        w->rc = c->rc;
        if (w->rounds > 1)
            TRACE("%s_%d%s@%ld", w->name, w->round, rcw(c->rc), test_ms(c->loop));
        else if (w->at)
            TRACE("%s%s@%ld", w->name, rcw(c->rc), test_ms(c->loop));
        else
            TRACE("%s%s", w->name, rcw(c->rc));
        if (c->rc < 0) CORO_RETURN(c, task_rc(c->rc));
        if (++sem_holders > sem_max_holders) sem_max_holders = sem_holders;
        if (w->hold < 0) CORO_RETURN(c, 0);
        if (w->hold > 0) CORO_SLEEP(c, CORO_MS(w->hold));
        sem_holders--;
        CHECK_EQ(coro_sem_release(c->loop, w->s), 0);
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static coro_frame *semw(struct semw *w, const char *name, coro_sem *s, int hold)
{
    memset(w, 0, sizeof *w);
    w->name = name;
    w->s = s;
    w->hold = hold;
    w->rounds = 1;
    w->timeout = CORO_NEVER;
    w->rc = 1;
    return coro_frame_init(&w->co, semw_fn);
}

static void sem_reset(void)
{
    sem_holders = sem_max_holders = 0;
}

/* T87 test_acquire: Semaphore(3) with 2 taken; c1..c3 try: [1], two
 * waiters, value 0. c4 created, two releases: the value stays 0 (the
 * permits are reserved for c2 and c3). One pass: c4 queues (FIFO rule),
 * c2 and c3 get theirs.
 * Probe: "1 | value 0 | 2 | 3 | waiters 1 [True, True, True, False] | 4". */
TEST(T87_semaphore_acquire)
{
    for (int fast = 0; fast < 2; fast++) {
        coro_loop L;
        coro_sem s;
        coro_task t[4];
        struct semw w[4];
        static const char *names[4] = {"1", "2", "3", "4"};
        test_loop(&L);
        sem_reset();
        CHECK_EQ(coro_sem_init(&s, 3), 0);
        CHECK_EQ(coro_sem_try_acquire(&s), 0);
        CHECK_EQ(coro_sem_try_acquire(&s), 0);
        CHECK(!coro_sem_locked(&s));
        for (int i = 0; i < 3; i++) {
            coro_spawn(&L, &t[i], semw(&w[i], names[i], &s, -1));
            w[i].fast = fast;
        }
        coro_loop_run_once(&L);
        CHECK_TRACE("1");
        CHECK(coro_sem_locked(&s));
        CHECK_EQ(coro__fifo_len(&s.waiters), 2);
        CHECK_EQ(coro_sem_value(&s), 0);
        coro_spawn(&L, &t[3], semw(&w[3], names[3], &s, -1));
        w[3].fast = fast;
        CHECK_EQ(coro_sem_release(&L, &s), 0);
        CHECK_EQ(coro_sem_release(&L, &s), 0);
        CHECK_EQ(coro_sem_value(&s), 0);
        coro_loop_run_once(&L);
        CHECK_TRACE("2 3");
        CHECK_EQ(coro_sem_value(&s), 0);
        CHECK(coro_sem_locked(&s));
        CHECK_EQ(coro__fifo_len(&s.waiters), 1);
        CHECK(coro_task_done(&t[0]) && coro_task_done(&t[1]) && coro_task_done(&t[2]));
        CHECK(!coro_task_done(&t[3]));
        CHECK_EQ(coro_sem_release(&L, &s), 0);
        CHECK_EQ(drain(&L), 0);
        CHECK_TRACE("4");
        CHECK_EQ(coro_sem_value(&s), 0);
        CLOSE_CLEAN(&L);
    }
}

/* test_acquire_cancel: a cancelled acquire leaves no live waiter. */
TEST(T88_semaphore_acquire_cancel)
{
    coro_loop L;
    coro_sem s;
    coro_task t;
    coro_call k;
    struct semw w;
    test_loop(&L);
    sem_reset();
    CHECK_EQ(coro_sem_init(&s, 1), 0);
    CHECK_EQ(coro_sem_try_acquire(&s), 0);
    coro_spawn(&L, &t, semw(&w, "a", &s, 0));
    coro_call_soon(&L, &k, cancel_cb, &t);
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), CORO_ECANCELED);
    CHECK_TRACE("a-cancel");
    CHECK_EQ(coro__fifo_len(&s.waiters), 0);
    CHECK_EQ(coro_sem_value(&s), 0);
    CLOSE_CLEAN(&L);
}

/* T88 test_acquire_cancel_before_awoken: Semaphore(0), t1..t4 wait; cancel
 * t1 and t2, one release: exactly t3 gets it. */
TEST(T88_semaphore_cancel_before_awoken)
{
    coro_loop L;
    coro_sem s;
    coro_task t[4];
    struct semw w[4];
    static const char *names[4] = {"t1", "t2", "t3", "t4"};
    test_loop(&L);
    sem_reset();
    CHECK_EQ(coro_sem_init(&s, 0), 0);
    for (int i = 0; i < 4; i++) coro_spawn(&L, &t[i], semw(&w[i], names[i], &s, -1));
    coro_loop_run_once(&L);
    coro_task_cancel(&L, &t[0]);
    coro_task_cancel(&L, &t[1]);
    CHECK_EQ(coro_sem_release(&L, &s), 0);
    coro_loop_run_once(&L);
    coro_loop_run_once(&L);
    CHECK_TRACE("t1-cancel t2-cancel t3");
    CHECK(coro_task_done(&t[2]));
    CHECK(!coro_task_done(&t[3]));
    CHECK_EQ(coro_sem_value(&s), 0);
    coro_task_cancel(&L, &t[2]);
    coro_task_cancel(&L, &t[3]);
    coro_loop_run_once(&L);
    CHECK_TRACE("t4-cancel");
    CHECK_EQ(coro_sem_value(&s), 0);
    CLOSE_CLEAN(&L);
}

/* T88 test_acquire_hang: cancel t1, release: t2 gets it. */
TEST(T88_semaphore_acquire_hang)
{
    coro_loop L;
    coro_sem s;
    coro_task t[2];
    struct semw w[2];
    test_loop(&L);
    sem_reset();
    CHECK_EQ(coro_sem_init(&s, 0), 0);
    coro_spawn(&L, &t[0], semw(&w[0], "t1", &s, -1));
    coro_spawn(&L, &t[1], semw(&w[1], "t2", &s, -1));
    coro_loop_run_once(&L);
    coro_task_cancel(&L, &t[0]);
    CHECK_EQ(coro_sem_release(&L, &s), 0);
    coro_loop_run_once(&L);
    coro_loop_run_once(&L);
    CHECK_TRACE("t1-cancel t2");
    CHECK(coro_sem_locked(&s));
    CHECK(coro_task_done(&t[1]));
    CLOSE_CLEAN(&L);
}

/* T88 test_acquire_no_hang: c1 holds, yields, releases, then cancels c2
 * (woken for the permit, not yet run): the permit comes back and a later
 * acquire under a 1 s deadline succeeds at once. */
struct nohang {
    coro_frame co;
    coro_sem s;
    coro_task t1, t2;
    struct nh1 {
        coro_frame co;
        struct nohang *m;
        coro_sem_op op;
    } c1, c2;
    coro_gather g;
    coro_gather_item items[2];
    coro_future *futs[2];
    coro_sem_op op;
    coro_timeout tm;
};

static int nh1_fn(coro_ctx *c)
{
    struct nh1 *f = CORO_SELF(c, struct nh1);
    CORO_BEGIN(c);
    CORO_AWAIT(c, coro_sem_acquire(&f->op, &f->m->s));
    CORO_YIELD(c);
    CHECK_EQ(coro_sem_release(c->loop, &f->m->s), 0);
    coro_task_cancel(c->loop, &f->m->t2);
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static int nh2_fn(coro_ctx *c)
{
    struct nh1 *f = CORO_SELF(c, struct nh1);
    CORO_BEGIN(c);
    CORO_AWAIT(c, coro_sem_acquire(&f->op, &f->m->s));
    CORO_CHECK(c);
    CHECK(0); /* self.assertFalse(True) */
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static int nohang_fn(coro_ctx *c)
{
    struct nohang *m = CORO_SELF(c, struct nohang);
    CORO_BEGIN(c);
    coro_sem_init(&m->s, 1);
    m->c1.m = m->c2.m = m;
    coro_spawn(c->loop, &m->t1, coro_frame_init(&m->c1.co, nh1_fn));
    coro_spawn(c->loop, &m->t2, coro_frame_init(&m->c2.co, nh2_fn));
    m->futs[0] = coro_task_future(&m->t1);
    m->futs[1] = coro_task_future(&m->t2);
    coro_gather_start(c->loop, &m->g, m->items, m->futs, 2, CORO_RETURN_EXCEPTIONS);
    CORO_AWAIT_GATHER(c, &m->g);
    CHECK_EQ(c->rc, 0);
    CHECK_EQ(coro_gather_result(&m->g, 0), 0);
    CHECK_EQ(coro_gather_result(&m->g, 1), CORO_ECANCELED);
    TRACE("gathered@%ld value=%d", test_ms(c->loop), coro_sem_value(&m->s));
    CORO_TIMEOUT(c, &m->tm, CORO_S(1), CORO_AWAIT(c, coro_sem_acquire(&m->op, &m->s)));
    TRACE("acquired%s@%ld", rcw(c->rc), test_ms(c->loop));
    CORO_RETURN(c, 0);
    CORO_END(c);
}

TEST(T88_semaphore_acquire_no_hang)
{
    coro_loop L;
    coro_task t;
    struct nohang m;
    memset(&m, 0, sizeof m);
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&m.co, nohang_fn)), 0);
    CHECK_TRACE("gathered@0 value=1 acquired@0");
    CHECK_EQ(coro_sem_value(&m.s), 0);
    CLOSE_CLEAN(&L);
}

/* T89 test_acquire_fifo_order (frame form and CORO_SEM_ACQUIRE).
 * Probe: "c1_1@0 | c2_1@10 | c3_1@20 | c1_2@30 | c2_2@40 | c3_2@50". */
TEST(T89_semaphore_fifo_order)
{
    char traces[2][sizeof test__trace];
    for (int fast = 0; fast < 2; fast++) {
        coro_loop L;
        coro_sem s;
        coro_task t[3];
        struct semw w[3];
        static const char *names[3] = {"c1", "c2", "c3"};
        test_loop(&L);
        sem_reset();
        CHECK_EQ(coro_sem_init(&s, 1), 0);
        for (int i = 0; i < 3; i++) {
            coro_spawn(&L, &t[i], semw(&w[i], names[i], &s, 10));
            w[i].rounds = 2;
            w[i].fast = fast;
        }
        CHECK_EQ(drain(&L), 0);
        memcpy(traces[fast], test__trace, sizeof test__trace);
        CHECK_TRACE("c1_1@0 c2_1@10 c3_1@20 c1_2@30 c2_2@40 c3_2@50");
        CHECK_EQ(sem_max_holders, 1);
        CHECK_EQ(coro_sem_value(&s), 1);
        CLOSE_CLEAN(&L);
    }
    CHECK_STR(traces[0], traces[1]);
}

/* T89 test_acquire_fifo_order_2: c2 releases and re-acquires: it queues
 * behind c3's reserved wake-up; c3's acquire then wakes c2: [1,2,3,4].
 * Probe: "1 | 2 | 3 | 4 | value 0". */
struct fifo2 {
    coro_frame co;
    coro_sem *s;
    coro_sem_op op;
    int id;
};

static int fifo2_fn(coro_ctx *c)
{
    struct fifo2 *f = CORO_SELF(c, struct fifo2);
    CORO_BEGIN(c);
    CORO_AWAIT(c, coro_sem_acquire(&f->op, f->s));
    TRACE("%d", f->id);
    if (f->id == 2) {
        CHECK_EQ(coro_sem_release(c->loop, f->s), 0);
        CORO_AWAIT(c, coro_sem_acquire(&f->op, f->s));
        TRACE("4");
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

TEST(T89_semaphore_fifo_order_2)
{
    coro_loop L;
    coro_sem s;
    coro_task t[3];
    struct fifo2 f[3];
    test_loop(&L);
    CHECK_EQ(coro_sem_init(&s, 1), 0);
    for (int i = 0; i < 3; i++) {
        f[i].s = &s;
        f[i].id = i + 1;
        coro_spawn(&L, &t[i], coro_frame_init(&f[i].co, fifo2_fn));
    }
    coro_loop_run_once(&L);
    CHECK_EQ(coro_sem_release(&L, &s), 0);
    CHECK_EQ(coro_sem_release(&L, &s), 0);
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("1 2 3 4");
    CHECK_EQ(coro_sem_value(&s), 0);
    CLOSE_CLEAN(&L);
}

/* T89 test_acquire_fifo_order_3: t1 cancelled while queued, then two
 * releases: [2,3]. */
TEST(T89_semaphore_fifo_order_3)
{
    coro_loop L;
    coro_sem s;
    coro_task t[3];
    struct semw w[3];
    static const char *names[3] = {"1", "2", "3"};
    test_loop(&L);
    sem_reset();
    CHECK_EQ(coro_sem_init(&s, 0), 0);
    for (int i = 0; i < 3; i++) coro_spawn(&L, &t[i], semw(&w[i], names[i], &s, -1));
    coro_loop_run_once(&L);
    coro_task_cancel(&L, &t[0]);
    coro_loop_run_once(&L);
    CHECK_EQ(coro_sem_release(&L, &s), 0);
    CHECK_EQ(coro_sem_release(&L, &s), 0);
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("1-cancel 2 3");
    CHECK_EQ(coro_sem_value(&s), 0);
    CLOSE_CLEAN(&L);
}

/* T89 test_acquire_fifo_order_4: a successful acquire wakes the further
 * waiters the value allows; c4, created by c1, runs after c3. */
struct fifo4 {
    coro_frame co;
    struct fifo4 *all;
    coro_sem *s;
    coro_sem_op op;
    coro_task *t4;
    int id;
};

static int fifo4_fn(coro_ctx *c)
{
    struct fifo4 *f = CORO_SELF(c, struct fifo4);
    CORO_BEGIN(c);
    if (f->id == 1) {
        CHECK_EQ(coro_sem_value(f->s), 0);
        CORO_AWAIT(c, coro_sem_acquire(&f->op, f->s));
        CHECK_EQ(coro_sem_value(f->s), 0); /* every waiter was woken */
        coro_spawn(c->loop, f->t4, coro_frame_init(&f->all[3].co, fifo4_fn));
        TRACE("1");
    } else if (f->id == 2) {
        coro_sem_release(c->loop, f->s);
        coro_sem_release(c->loop, f->s);
        coro_sem_release(c->loop, f->s);
        CHECK_EQ(coro_sem_value(f->s), 2);
        CHECK(coro_sem_locked(f->s)); /* c1 has not woken up yet */
        CORO_AWAIT(c, coro_sem_acquire(&f->op, f->s));
        TRACE("2");
    } else if (f->id == 3) {
        CORO_AWAIT(c, coro_sem_acquire(&f->op, f->s));
        CHECK(coro_sem_locked(f->s));
        TRACE("3");
    } else {
        TRACE("4");
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

TEST(T89_semaphore_fifo_order_4)
{
    coro_loop L;
    coro_sem s;
    coro_task t[4];
    struct fifo4 f[4];
    test_loop(&L);
    CHECK_EQ(coro_sem_init(&s, 0), 0);
    for (int i = 0; i < 4; i++) {
        f[i].all = f;
        f[i].s = &s;
        f[i].t4 = &t[3];
        f[i].id = i + 1;
    }
    for (int i = 0; i < 3; i++) coro_spawn(&L, &t[i], coro_frame_init(&f[i].co, fifo4_fn));
    coro_loop_run_once(&L);
    CHECK_EQ(coro_sem_value(&s), 2);
    CHECK_EQ(coro__fifo_len(&s.waiters), 3);
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("1 2 3 4");
    CHECK_EQ(coro_sem_value(&s), 0);
    CLOSE_CLEAN(&L);
}

/* T90 test_initial_value_zero / test_semaphore_value /
 * test_release_not_acquired; BoundedSemaphore over-release. */
TEST(T90_semaphore_values_and_bounds)
{
    coro_loop L;
    coro_sem s;
    test_loop(&L);
    CHECK_EQ(coro_sem_init(&s, 0), 0);
    CHECK(coro_sem_locked(&s));
    CHECK_EQ(coro_sem_try_acquire(&s), CORO_EAGAIN);
    CHECK_EQ(coro_sem_init(&s, -1), CORO_EINVAL);
    CHECK_EQ(coro_bsem_init(&s, -1), CORO_EINVAL);
    /* a plain semaphore releases without bound */
    CHECK_EQ(coro_sem_init(&s, 1), 0);
    CHECK_EQ(coro_sem_release(&L, &s), 0);
    CHECK_EQ(coro_sem_release(&L, &s), 0);
    CHECK_EQ(coro_sem_value(&s), 3);
    /* BoundedSemaphore() released too many times */
    CHECK_EQ(coro_bsem_init(&s, 1), 0);
    CHECK_EQ(coro_sem_release(&L, &s), CORO_EINVAL);
    CHECK_EQ(coro_sem_value(&s), 1);
    CHECK_EQ(coro_sem_try_acquire(&s), 0);
    CHECK(coro_sem_locked(&s));
    CHECK_EQ(coro_sem_release(&L, &s), 0);
    CHECK(!coro_sem_locked(&s));
    CHECK_EQ(coro_sem_release(&L, &s), CORO_EINVAL);
    CHECK_EQ(coro_sem_value(&s), 1);
    CHECK_EQ(coro_bsem_init(&s, 0), 0);
    CHECK_EQ(coro_sem_release(&L, &s), CORO_EINVAL);
    CLOSE_CLEAN(&L);
}

/* A BoundedSemaphore with waiters: each release reserves a permit for a
 * waiter (the value stays 0); once the holders gave theirs back the value
 * is at the bound and one more release fails. */
TEST(bounded_semaphore_with_waiters)
{
    coro_loop L;
    coro_sem s;
    coro_task t[2];
    struct semw w[2];
    test_loop(&L);
    sem_reset();
    CHECK_EQ(coro_bsem_init(&s, 2), 0);
    CHECK_EQ(coro_sem_try_acquire(&s), 0);
    CHECK_EQ(coro_sem_try_acquire(&s), 0);
    coro_spawn(&L, &t[0], semw(&w[0], "a", &s, 0));
    coro_spawn(&L, &t[1], semw(&w[1], "b", &s, 0));
    coro_loop_run_once(&L);
    CHECK_EQ(coro_sem_release(&L, &s), 0); /* reserved for a */
    CHECK_EQ(coro_sem_value(&s), 0);
    CHECK_EQ(coro_sem_release(&L, &s), 0); /* reserved for b */
    CHECK_EQ(coro_sem_value(&s), 0);
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("a b");
    CHECK_EQ(coro_sem_value(&s), 2);
    CHECK_EQ(coro_sem_release(&L, &s), CORO_EINVAL);
    CLOSE_CLEAN(&L);
}

/* CANCEL-SAFETY "Semaphore: a permit reserved for it at wake-up is
 * returned and handed on": release() reserved the permit for t1 (value
 * stays 0), t1 is cancelled before it runs: it gives the permit back and
 * wakes t2 in the same step.
 * Probe: "value 0 | t1-cancel 0 | value 0 waiters 1 | t2 |
 *         value 0 waiters 0 locked True" (reference probe I agrees). */
TEST(cancel_safety_sem_woken_then_cancelled_returns_permit)
{
    for (int fast = 0; fast < 2; fast++) {
        coro_loop L;
        coro_sem s;
        coro_task t[2];
        struct semw w[2];
        test_loop(&L);
        sem_reset();
        CHECK_EQ(coro_sem_init(&s, 0), 0);
        coro_spawn(&L, &t[0], semw(&w[0], "t1", &s, -1));
        coro_spawn(&L, &t[1], semw(&w[1], "t2", &s, -1));
        w[0].fast = w[1].fast = fast;
        coro_loop_run_once(&L);
        CHECK_EQ(coro_sem_release(&L, &s), 0);
        CHECK_EQ(coro_sem_value(&s), 0);
        coro_task_cancel(&L, &t[0]);
        coro_loop_run_once(&L);
        CHECK_TRACE("t1-cancel");
        CHECK_EQ(coro_sem_value(&s), 0); /* handed on to t2 at once */
        CHECK_EQ(coro__fifo_len(&s.waiters), 1);
        coro_loop_run_once(&L);
        CHECK_TRACE("t2");
        CHECK_EQ(coro_sem_value(&s), 0);
        CHECK_EQ(coro__fifo_len(&s.waiters), 0);
        CHECK(coro_sem_locked(&s));
        CHECK(coro_task_cancelled(&t[0]));
        CHECK_EQ(sem_holders, 1); /* value + holders == released permits */
        CLOSE_CLEAN(&L);
    }
}

/* The same line with nobody to hand the permit to: it goes back to the
 * value. */
TEST(cancel_safety_sem_woken_then_cancelled_alone_restores_value)
{
    coro_loop L;
    coro_sem s;
    coro_task t;
    struct semw w;
    test_loop(&L);
    sem_reset();
    CHECK_EQ(coro_sem_init(&s, 0), 0);
    coro_spawn(&L, &t, semw(&w, "t1", &s, -1));
    coro_loop_run_once(&L);
    CHECK_EQ(coro_sem_release(&L, &s), 0);
    coro_task_cancel(&L, &t);
    coro_loop_run_once(&L);
    CHECK_TRACE("t1-cancel");
    CHECK_EQ(coro_sem_value(&s), 1);
    CHECK(!coro_sem_locked(&s));
    CLOSE_CLEAN(&L);
}

/* A deadline on a semaphore acquire: ETIMEDOUT at exactly 30 ms, nothing
 * reserved for the gone waiter; the release at 100 ms goes to b.
 * Probe: "a-timeout 30 0 | release 100 | b 100 0 | value 1 waiters 0". */
static void sem_release_cb(coro_loop *L, void *arg)
{
    TRACE("release@%ld", test_ms(L));
    CHECK_EQ(coro_sem_release(L, (coro_sem *)arg), 0);
}

TEST(semaphore_acquire_timeout_exact_time_waiter_gone)
{
    for (int fast = 0; fast < 2; fast++) {
        coro_loop L;
        coro_sem s;
        coro_task ta, tb;
        coro_call k;
        struct semw a, b;
        test_loop(&L);
        sem_reset();
        CHECK_EQ(coro_sem_init(&s, 1), 0);
        CHECK_EQ(coro_sem_try_acquire(&s), 0);
        coro_spawn(&L, &ta, semw(&a, "a", &s, 0));
        a.timeout = CORO_MS(30);
        a.at = 1;
        a.fast = fast;
        coro_spawn(&L, &tb, semw(&b, "b", &s, 0));
        b.at = 1;
        coro_call_at(&L, &k, CORO_MS(100), sem_release_cb, &s);
        CHECK_EQ(drain(&L), 0);
        CHECK_TRACE("a-timeout@30 release@100 b@100");
        CHECK_EQ(a.rc, CORO_ETIMEDOUT);
        CHECK_EQ(coro_sem_value(&s), 1);
        CHECK_EQ(coro__fifo_len(&s.waiters), 0);
        CLOSE_CLEAN(&L);
    }
}

/* coro_sem_close: waiters wake with ESHUTDOWN; later acquires in every form
 * fail; a permit already reserved at wake-up is kept. */
TEST(semaphore_close_wakes_waiters_and_fails_later_acquires)
{
    coro_loop L;
    coro_sem s;
    coro_task t[4];
    struct semw w[4];
    test_loop(&L);
    sem_reset();
    CHECK_EQ(coro_sem_init(&s, 0), 0);
    coro_spawn(&L, &t[0], semw(&w[0], "a", &s, -1));
    coro_spawn(&L, &t[1], semw(&w[1], "b", &s, -1));
    coro_spawn(&L, &t[2], semw(&w[2], "c", &s, -1));
    coro_loop_run_once(&L);
    CHECK_EQ(coro_sem_release(&L, &s), 0); /* reserved for a */
    coro_sem_close(&L, &s);
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("a b-shutdown c-shutdown");
    CHECK_EQ(coro_sem_value(&s), 0);
    CHECK_EQ(coro__fifo_len(&s.waiters), 0);
    CHECK_EQ(coro_sem_release(&L, &s), 0);
    CHECK_EQ(coro_sem_value(&s), 1);
    CHECK_EQ(coro_sem_try_acquire(&s), CORO_ESHUTDOWN);
    coro_spawn(&L, &t[3], semw(&w[3], "d", &s, -1));
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("d-shutdown");
    for (int fast = 0; fast < 2; fast++) {
        coro_spawn(&L, &t[3], semw(&w[3], "e", &s, -1));
        w[3].fast = fast;
        CHECK_EQ(drain(&L), 0);
        CHECK_TRACE("e-shutdown");
    }
    CHECK_EQ(coro_sem_value(&s), 1);
    CLOSE_CLEAN(&L);
}

/* A deadline that expires in the pass where release() reserved the permit
 * for the waiter (the release callback armed first, at the same time): the
 * woken-then-cancelled waiter gives the permit back and b gets it.
 * Probe (call_at(30, release); timeout_at(30) around acquire):
 *   "release 30 | a-timeout 30 0 | b 30 0". */
TEST(semaphore_deadline_expiring_while_woken_passes_permit_on)
{
    for (int fast = 0; fast < 2; fast++) {
        coro_loop L;
        coro_sem s;
        coro_task ta, tb;
        coro_call k;
        struct semw a, b;
        test_loop(&L);
        sem_reset();
        CHECK_EQ(coro_sem_init(&s, 0), 0);
        coro_call_at(&L, &k, CORO_MS(30), sem_release_cb, &s);
        coro_spawn(&L, &ta, semw(&a, "a", &s, -1));
        a.timeout = CORO_MS(30);
        a.at = 1;
        a.fast = fast;
        coro_spawn(&L, &tb, semw(&b, "b", &s, -1));
        b.at = 1;
        CHECK_EQ(drain(&L), 0);
        CHECK_TRACE("release@30 a-timeout@30 b@30");
        CHECK_EQ(a.rc, CORO_ETIMEDOUT);
        CHECK_EQ(coro_sem_value(&s), 0);
        CHECK_EQ(sem_holders, 1);
        CLOSE_CLEAN(&L);
    }
}

/* A condition wait under a deadline, and a notify at the same time (the
 * deadline armed first): the waiter times out with the lock re-acquired and
 * passes a notification on; b wakes.
 * Probe: "a-timeout 30 True | notify 30 | b 30". */
struct notifier {
    coro_frame co;
    coro_cond *cv;
    coro_lock_op lop;
};

static int notifier_fn(coro_ctx *c)
{
    struct notifier *f = CORO_SELF(c, struct notifier);
    CORO_BEGIN(c);
    CORO_SLEEP(c, CORO_MS(30));
    CORO_AWAIT(c, coro_lock_acquire(&f->lop, coro_cond_lock(f->cv)));
    TRACE("notify@%ld", test_ms(c->loop));
    CHECK_EQ(coro_cond_notify(c->loop, f->cv, 1), 0);
    CHECK_EQ(coro_lock_release(c->loop, coro_cond_lock(f->cv)), 0);
    CORO_RETURN(c, 0);
    CORO_END(c);
}

TEST(condition_deadline_and_notify_same_time)
{
    coro_loop L;
    coro_cond cv;
    coro_task ta, tb, tn;
    struct condw a, b;
    struct notifier n;
    test_loop(&L);
    coro_cond_init(&cv, NULL);
    coro_spawn(&L, &ta, condw(&a, "a", &cv, 1));
    a.timeout = CORO_MS(30);
    a.at = 1;
    coro_spawn(&L, &tb, condw(&b, "b", &cv, 1));
    b.at = 1;
    coro_loop_run_once(&L);
    n.cv = &cv;
    coro_spawn(&L, &tn, coro_frame_init(&n.co, notifier_fn));
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("a-timeout@30 notify@30 b@30");
    CHECK(a.held);
    CHECK_EQ(coro__fifo_len(&cv.waiters), 0);
    CLOSE_CLEAN(&L);
}

/* notify(0) wakes nobody (asyncio: the loop breaks at idx >= n). */
TEST(condition_notify_zero_wakes_nobody)
{
    coro_loop L;
    coro_cond cv;
    coro_task t;
    struct condw w;
    test_loop(&L);
    coro_cond_init(&cv, NULL);
    coro_spawn(&L, &t, condw(&w, "w", &cv, 1));
    coro_loop_run_once(&L);
    CHECK_EQ(coro_lock_try_acquire(coro_cond_lock(&cv)), 0);
    CHECK_EQ(coro_cond_notify(&L, &cv, 0), 0);
    CHECK_EQ(coro_lock_release(&L, coro_cond_lock(&cv)), 0);
    coro_loop_run_once(&L);
    coro_loop_run_once(&L);
    CHECK(!coro_task_done(&t));
    CHECK_EQ(coro_lock_try_acquire(coro_cond_lock(&cv)), 0);
    CHECK_EQ(coro_cond_notify(&L, &cv, 1), 0);
    CHECK_EQ(coro_lock_release(&L, coro_cond_lock(&cv)), 0);
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("w");
    CLOSE_CLEAN(&L);
}

/* A condition on a shared lock that gets closed (coro_lock_close) while a
 * notified waiter re-acquires it: the re-acquire fails with ESHUTDOWN, so
 * the wait must not report success - it would claim a lock it does not
 * hold (the CANCEL-SAFETY contract is "returns with the lock re-acquired").
 * Not in asyncio (no close); the expected outcome is the error. */
TEST(condition_wait_relock_on_closed_lock_reports_error)
{
    for (int contended = 0; contended < 2; contended++) {
        coro_loop L;
        coro_lock lk;
        coro_cond cv;
        coro_task t;
        struct condw w;
        test_loop(&L);
        coro_lock_init(&lk);
        coro_cond_init(&cv, &lk);
        coro_spawn(&L, &t, condw(&w, "w", &cv, 0));
        coro_loop_run_once(&L);
        CHECK_EQ(coro_lock_try_acquire(&lk), 0);
        CHECK_EQ(coro_cond_notify(&L, &cv, 1), 0);
        if (contended) {
            coro_loop_run_once(&L); /* w blocks re-acquiring the held lock */
            CHECK_EQ(coro__fifo_len(&lk.waiters), 1);
            coro_lock_close(&L, &lk);
        } else {
            CHECK_EQ(coro_lock_release(&L, &lk), 0);
            coro_lock_close(&L, &lk);
        }
        CHECK_EQ(drain(&L), 0);
        /* Regression: the re-acquire loop used to stop on ESHUTDOWN and
         * return the wait's own 0, claiming a lock it did not hold. */
        CHECK_EQ(w.rc, CORO_ESHUTDOWN);
        CHECK_TRACE("w-shutdown");
        if (contended) CHECK_EQ(coro_lock_release(&L, &lk), 0);
        CLOSE_CLEAN(&L);
    }
}

/* R-COND-4 / T86 test_wait_for_unacquired: wait_for() returns the
 * predicate's value (`await cond.wait_for(lambda: [1, 2, 3])` is the list).
 * A C predicate returns an int; its (positive) value should be c->rc.
 * Probe: "unlocked 7 | after wait 5". */
static int value_pred(void *arg)
{
    return *(int *)arg;
}

TEST(condition_wait_for_returns_predicate_value)
{
    coro_loop L;
    coro_cond cv;
    coro_task t1, t2;
    struct condw w1, w2;
    int seven = 7, v = 0;
    test_loop(&L);
    coro_cond_init(&cv, NULL);
    coro_spawn(&L, &t1, condw(&w1, "unlocked", &cv, 0));
    w1.nolock = 1;
    w1.pred = value_pred;
    w1.arg = &seven;
    coro_spawn(&L, &t2, condw(&w2, "after", &cv, 1));
    w2.pred = value_pred;
    w2.arg = &v;
    coro_loop_run_once(&L);
    CHECK_EQ(coro_lock_try_acquire(coro_cond_lock(&cv)), 0);
    v = 5;
    CHECK_EQ(coro_cond_notify(&L, &cv, 1), 0);
    CHECK_EQ(coro_lock_release(&L, coro_cond_lock(&cv)), 0);
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("unlocked after");
    /* Regression: wait_for used to give 0, not the predicate's value. */
    CHECK_EQ(w1.rc, 7);
    CHECK_EQ(w2.rc, 5);
    CLOSE_CLEAN(&L);
}

/* T86 test_cancelled_error_wakeup / test_cancelled_error_re_aquire: the
 * cancellation that ends wait_for() - while waiting, or while re-acquiring
 * after a notify whose predicate now holds - is what the task ends with
 * (asyncio: the same CancelledError object, message "foo"; in C: ECANCELED
 * out of wait_for, the lock held, the task cancelled).
 * Probe (both): "raised ('foo',) True | task ('foo',) True False". */
TEST(T86_condition_cancelled_error_wakeup_and_reacquire)
{
    for (int reacquire = 0; reacquire < 2; reacquire++) {
        coro_loop L;
        coro_cond cv;
        coro_lock *lk;
        coro_task t;
        struct condw w;
        int wake = 0;
        test_loop(&L);
        coro_cond_init(&cv, NULL);
        lk = coro_cond_lock(&cv);
        coro_spawn(&L, &t, condw(&w, "w", &cv, 1));
        w.pred = flag_pred;
        w.arg = &wake;
        coro_loop_run_once(&L);
        if (reacquire) {
            CHECK_EQ(coro_lock_try_acquire(lk), 0);
            wake = 1;
            CHECK_EQ(coro_cond_notify(&L, &cv, 1), 0);
            coro_loop_run_once(&L); /* now re-acquiring */
            CHECK_EQ(coro__fifo_len(&lk->waiters), 1);
            coro_task_cancel(&L, &t);
            CHECK_EQ(coro_lock_release(&L, lk), 0);
        } else {
            coro_task_cancel(&L, &t);
        }
        CHECK_EQ(coro_loop_run_until_complete(&L, &t), CORO_ECANCELED);
        CHECK_TRACE("w-cancel");
        CHECK_EQ(w.rc, CORO_ECANCELED);
        CHECK(w.held);
        CHECK(coro_task_cancelled(&t));
        CHECK(!coro_lock_locked(lk));
        CLOSE_CLEAN(&L);
    }
}
