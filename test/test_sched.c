/* test_sched.c - coro_sync.h's bounded job scheduler (aiojobs-like): the
 * limit, FIFO start of pending jobs, slots freed by failing and cancelled
 * jobs (its CANCEL-SAFETY line), coro_sched_wait with and without timeout,
 * coro_sched_close (dropping, cancelling, grace timeout), error paths. The
 * scheduler is not in asyncio: exact times and orders follow the header's
 * contract (a slot frees when the job's done-callback runs, one pass after
 * the job's task ends, at the same virtual time). */
#include "test.h"
#include "coro_sync.h"

/* ---- helpers */

static const char *rcw(int rc)
{
    if (rc >= 0) return "";
    if (rc == CORO_ECANCELED) return "-cancel";
    if (rc == CORO_ETIMEDOUT) return "-timeout";
    if (rc == CORO_EINVAL) return "-inval";
    return "-other";
}

/* Runs the loop until nothing is left to run (no ready handle, no timer:
 * run_once reports CORO_EDEADLK); returns the tasks still unfinished then,
 * which is 0 unless one waits forever. (A job's slot frees in a done-
 * callback after its task ended, so "no task left" is not "all done".) */
static int drain(coro_loop *L)
{
    while (coro_loop_run_once(L) == 0) {
    }
    return (int)coro_loop_task_count(L);
}

#define CLOSE_CLEAN(L)                                                         \
    do {                                                                       \
        CHECK_EQ(coro_loop_task_count(L), 0);                                  \
        CHECK_EQ(coro_loop_close(L), 0);                                       \
        CHECK_EQ(test_reports(), 0);                                           \
    } while (0)

/* A job: traces "s<id>@ms" when it starts and "e<id>@ms" when it ends
 * (after sleeping `ms`), or "x<id>@ms" when cancelled. `fail`: ends with
 * CORO_EUSER(id). `stubborn`: swallows a cancellation and sleeps
 * `stubborn` ms more. `ev`: waits for that event instead of sleeping.
 * Counts the jobs running at any instant. */
static int running, max_running;
static coro_sched *cur_sched;

struct job {
    coro_frame co;
    coro_job j;
    coro_event *ev;
    coro_event_op eop;
    int id, ms, fail, stubborn;
};

static int job_fn(coro_ctx *c)
{
    struct job *f = CORO_SELF(c, struct job);
    CORO_BEGIN(c);
    if (++running > max_running) max_running = running;
    if (cur_sched) CHECK(running <= (int)cur_sched->limit);
    CHECK_EQ(coro_job_state(&f->j), CORO_JOB_ACTIVE);
    TRACE("s%d@%ld", f->id, test_ms(c->loop));
    if (f->ev)
        CORO_AWAIT(c, coro_event_wait(&f->eop, f->ev));
    else
        CORO_SLEEP(c, CORO_MS(f->ms));
    if (c->rc < 0 && f->stubborn) {
        TRACE("ignore%d@%ld", f->id, test_ms(c->loop));
        CORO_SLEEP(c, CORO_MS(f->stubborn));
    }
    running--;
    if (c->rc < 0) {
        TRACE("x%d@%ld", f->id, test_ms(c->loop));
        CORO_FAIL(c, c->rc);
    }
    TRACE("e%d@%ld", f->id, test_ms(c->loop));
    CORO_RETURN(c, f->fail ? CORO_EUSER(f->id) : f->id);
    CORO_END(c);
}

static coro_frame *job(struct job *f, int id, int ms)
{
    memset(f, 0, sizeof *f);
    f->id = id;
    f->ms = ms;
    return coro_frame_init(&f->co, job_fn);
}

static void reset(coro_sched *s)
{
    running = max_running = 0;
    cur_sched = s;
}

/* A task running coro_sched_wait (close = 0) or coro_sched_close
 * (close = 1), tracing "<name>[-outcome]@ms". */
struct waiter {
    coro_frame co;
    const char *name;
    coro_sched *s;
    coro_sched_op op;
    coro_time timeout;
    int close, rc;
};

static int waiter_fn(coro_ctx *c)
{
    struct waiter *w = CORO_SELF(c, struct waiter);
    CORO_BEGIN(c);
    if (w->close)
        CORO_AWAIT(c, coro_sched_close(&w->op, w->s, w->timeout));
    else
        CORO_AWAIT(c, coro_sched_wait(&w->op, w->s, w->timeout));
    w->rc = c->rc;
    TRACE("%s%s@%ld", w->name, rcw(c->rc), test_ms(c->loop));
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static coro_frame *waiter(struct waiter *w, const char *name, coro_sched *s, int close,
                          coro_time timeout)
{
    memset(w, 0, sizeof *w);
    w->name = name;
    w->s = s;
    w->close = close;
    w->timeout = timeout;
    w->rc = 1;
    return coro_frame_init(&w->co, waiter_fn);
}

/* ---- tests */

TEST(sched_init_rejects_zero_limit)
{
    coro_sched s;
    CHECK_EQ(coro_sched_init(&s, 0), CORO_EINVAL);
    CHECK_EQ(coro_sched_init(&s, 1), 0);
    CHECK_EQ(coro_sched_active(&s), 0);
    CHECK_EQ(coro_sched_pending(&s), 0);
}

/* limit 3, ten jobs of 10 ms spawned at once: three start now, the others
 * wait in FIFO order and start as slots free; never more than 3 run. */
TEST(sched_limit_holds_and_pending_start_fifo)
{
    coro_loop L;
    coro_sched s;
    struct job f[10];
    struct waiter w;
    coro_task wt;
    test_loop(&L);
    CHECK_EQ(coro_sched_init(&s, 3), 0);
    reset(&s);
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(coro_sched_spawn(&L, &s, &f[i].j, job(&f[i], i, 10)), 0);
        CHECK_EQ(coro_job_state(&f[i].j), i < 3 ? CORO_JOB_ACTIVE : CORO_JOB_PENDING);
    }
    CHECK_EQ(coro_sched_active(&s), 3);
    CHECK_EQ(coro_sched_pending(&s), 7);
    coro_spawn(&L, &wt, waiter(&w, "wait", &s, 0, CORO_NEVER));
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("s0@0 s1@0 s2@0 e0@10 e1@10 e2@10 s3@10 s4@10 s5@10 e3@20 e4@20 e5@20 "
                "s6@20 s7@20 s8@20 e6@30 e7@30 e8@30 s9@30 e9@40 wait@40");
    CHECK_EQ(max_running, 3);
    CHECK_EQ(w.rc, 0);
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(coro_job_state(&f[i].j), CORO_JOB_DONE);
        CHECK_EQ(coro_task_result(&f[i].j.task), i);
    }
    CHECK_EQ(coro_sched_active(&s), 0);
    CHECK_EQ(coro_sched_pending(&s), 0);
    CLOSE_CLEAN(&L);
}

/* Jobs of different lengths: a slot goes to the oldest pending job as soon
 * as any running one ends; active/pending counts along the way. */
TEST(sched_slot_goes_to_oldest_pending)
{
    coro_loop L;
    coro_sched s;
    struct job f[5];
    static const int ms[5] = {30, 10, 20, 5, 5};
    test_loop(&L);
    CHECK_EQ(coro_sched_init(&s, 2), 0);
    reset(&s);
    for (int i = 0; i < 5; i++) CHECK_EQ(coro_sched_spawn(&L, &s, &f[i].j, job(&f[i], i, ms[i])), 0);
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("s0@0 s1@0 e1@10 s2@10 e0@30 e2@30 s3@30 s4@30 e3@35 e4@35");
    CHECK_EQ(max_running, 2);
    for (int i = 0; i < 5; i++) CHECK_EQ(coro_task_result(&f[i].j.task), i);
    CLOSE_CLEAN(&L);
}

/* A failing job frees its slot like any other; its task holds the error. */
TEST(sched_failing_job_frees_slot)
{
    coro_loop L;
    coro_sched s;
    struct job f[3];
    test_loop(&L);
    CHECK_EQ(coro_sched_init(&s, 1), 0);
    reset(&s);
    CHECK_EQ(coro_sched_spawn(&L, &s, &f[0].j, job(&f[0], 0, 5)), 0);
    f[0].fail = 1;
    CHECK_EQ(coro_sched_spawn(&L, &s, &f[1].j, job(&f[1], 1, 5)), 0);
    f[1].fail = 1;
    CHECK_EQ(coro_sched_spawn(&L, &s, &f[2].j, job(&f[2], 2, 5)), 0);
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("s0@0 e0@5 s1@5 e1@10 s2@10 e2@15");
    CHECK_EQ(coro_task_result(&f[0].j.task), CORO_EUSER(0));
    CHECK_EQ(coro_task_result(&f[1].j.task), CORO_EUSER(1));
    CHECK_EQ(coro_task_result(&f[2].j.task), 2);
    CHECK_EQ(max_running, 1);
    CLOSE_CLEAN(&L);
}

/* CANCEL-SAFETY "Scheduler: a cancelled job frees its slot; the next
 * pending job starts" - cancelled while sleeping, and cancelled after its
 * event woke it but before it ran. */
static void cancel_cb(coro_loop *L, void *arg)
{
    coro_task_cancel(L, (coro_task *)arg);
}

TEST(cancel_safety_sched_cancelled_job_frees_slot)
{
    coro_loop L;
    coro_sched s;
    struct job f[3];
    coro_call k;
    test_loop(&L);
    CHECK_EQ(coro_sched_init(&s, 1), 0);
    reset(&s);
    for (int i = 0; i < 3; i++) CHECK_EQ(coro_sched_spawn(&L, &s, &f[i].j, job(&f[i], i, 100)), 0);
    coro_call_at(&L, &k, CORO_MS(7), cancel_cb, &f[0].j.task);
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("s0@0 x0@7 s1@7 e1@107 s2@107 e2@207");
    CHECK(coro_task_cancelled(&f[0].j.task));
    CHECK_EQ(coro_job_state(&f[0].j), CORO_JOB_DONE);
    CHECK_EQ(max_running, 1);
    CLOSE_CLEAN(&L);
}

TEST(cancel_safety_sched_woken_then_cancelled_job_frees_slot)
{
    coro_loop L;
    coro_sched s;
    coro_event ev;
    struct job f[2];
    test_loop(&L);
    coro_event_init(&ev);
    CHECK_EQ(coro_sched_init(&s, 1), 0);
    reset(&s);
    CHECK_EQ(coro_sched_spawn(&L, &s, &f[0].j, job(&f[0], 0, 0)), 0);
    f[0].ev = &ev;
    CHECK_EQ(coro_sched_spawn(&L, &s, &f[1].j, job(&f[1], 1, 4)), 0);
    coro_loop_run_once(&L);
    CHECK_TRACE("s0@0");
    coro_event_set(&L, &ev);            /* job 0 woken ... */
    coro_task_cancel(&L, &f[0].j.task); /* ... and cancelled before it runs */
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("x0@0 s1@0 e1@4");
    CHECK(coro_task_cancelled(&f[0].j.task));
    CHECK_EQ(coro_sched_pending(&s), 0);
    CHECK_EQ(coro_sched_active(&s), 0);
    CLOSE_CLEAN(&L);
}

/* coro_sched_wait with a timeout: ETIMEDOUT at exactly the timeout, the
 * jobs keep running; a second wait without timeout returns 0 when the last
 * one ends. A wait on an idle scheduler returns 0 at once. */
struct waits {
    coro_frame co;
    coro_sched *s;
    coro_sched_op op;
};

static int waits_fn(coro_ctx *c)
{
    struct waits *m = CORO_SELF(c, struct waits);
    CORO_BEGIN(c);
    CORO_AWAIT(c, coro_sched_wait(&m->op, m->s, CORO_MS(25)));
    TRACE("wait1%s@%ld active=%u pending=%u", rcw(c->rc), test_ms(c->loop),
          coro_sched_active(m->s), coro_sched_pending(m->s));
    CORO_AWAIT(c, coro_sched_wait(&m->op, m->s, CORO_NEVER));
    TRACE("wait2%s@%ld", rcw(c->rc), test_ms(c->loop));
    CORO_AWAIT(c, coro_sched_wait(&m->op, m->s, CORO_MS(5)));
    TRACE("wait3%s@%ld", rcw(c->rc), test_ms(c->loop));
    CORO_RETURN(c, 0);
    CORO_END(c);
}

TEST(sched_wait_with_and_without_timeout)
{
    coro_loop L;
    coro_sched s;
    coro_task t;
    struct job f[3];
    struct waits m;
    test_loop(&L);
    CHECK_EQ(coro_sched_init(&s, 2), 0);
    reset(&s);
    for (int i = 0; i < 3; i++) CHECK_EQ(coro_sched_spawn(&L, &s, &f[i].j, job(&f[i], i, 20)), 0);
    m.s = &s;
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&m.co, waits_fn)), 0);
    CHECK_TRACE("s0@0 s1@0 e0@20 e1@20 s2@20 wait1-timeout@25 active=1 pending=0 e2@40 "
                "wait2@40 wait3@40");
    for (int i = 0; i < 3; i++) CHECK_EQ(coro_task_result(&f[i].j.task), i);
    CLOSE_CLEAN(&L);
}

/* coro_sched_close: pending jobs are dropped (never started), running ones
 * cancelled; the close returns when they ended; later spawns fail. */
TEST(sched_close_drops_pending_cancels_active)
{
    coro_loop L;
    coro_sched s;
    coro_task t;
    struct job f[5], g;
    struct waiter w;
    test_loop(&L);
    CHECK_EQ(coro_sched_init(&s, 2), 0);
    reset(&s);
    for (int i = 0; i < 5; i++) CHECK_EQ(coro_sched_spawn(&L, &s, &f[i].j, job(&f[i], i, 50)), 0);
    coro_spawn(&L, &t, waiter(&w, "close", &s, 1, CORO_MS(100)));
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("s0@0 s1@0 x0@0 x1@0 close@0");
    CHECK_EQ(w.rc, 0);
    CHECK(coro_task_cancelled(&f[0].j.task));
    CHECK(coro_task_cancelled(&f[1].j.task));
    for (int i = 2; i < 5; i++) CHECK_EQ(coro_job_state(&f[i].j), CORO_JOB_DROPPED);
    CHECK_EQ(coro_sched_active(&s), 0);
    CHECK_EQ(coro_sched_pending(&s), 0);
    CHECK_EQ(coro_sched_spawn(&L, &s, &g.j, job(&g, 9, 1)), CORO_EINVAL);
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE(""); /* the refused job never ran */
    CLOSE_CLEAN(&L);
}

/* coro_sched_close on an idle scheduler returns 0 at once; spawn after
 * close is CORO_EINVAL; closing twice is harmless. */
TEST(sched_close_idle_then_spawn_einval)
{
    coro_loop L;
    coro_sched s;
    coro_task t;
    struct waiter w;
    struct job g;
    test_loop(&L);
    CHECK_EQ(coro_sched_init(&s, 4), 0);
    reset(&s);
    coro_spawn(&L, &t, waiter(&w, "close", &s, 1, CORO_MS(10)));
    coro_loop_run_once(&L);
    CHECK_TRACE("close@0");
    CHECK_EQ(coro_sched_spawn(&L, &s, &g.j, job(&g, 1, 1)), CORO_EINVAL);
    coro_spawn(&L, &t, waiter(&w, "again", &s, 1, CORO_NEVER));
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("again@0");
    CLOSE_CLEAN(&L);
}

/* Grace timeout: a job that ignores its cancellation makes the close give
 * ETIMEDOUT at exactly the grace period; the job ends later by itself. */
TEST(sched_close_grace_timeout_when_job_ignores_cancel)
{
    coro_loop L;
    coro_sched s;
    coro_task t;
    struct job f[3];
    struct waiter w;
    test_loop(&L);
    CHECK_EQ(coro_sched_init(&s, 2), 0);
    reset(&s);
    CHECK_EQ(coro_sched_spawn(&L, &s, &f[0].j, job(&f[0], 0, 100)), 0);
    f[0].stubborn = 40;
    CHECK_EQ(coro_sched_spawn(&L, &s, &f[1].j, job(&f[1], 1, 100)), 0);
    CHECK_EQ(coro_sched_spawn(&L, &s, &f[2].j, job(&f[2], 2, 100)), 0);
    coro_loop_run_once(&L);
    coro_virtual_advance(&test__clock, CORO_MS(10));
    coro_spawn(&L, &t, waiter(&w, "close", &s, 1, CORO_MS(15)));
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("s0@0 s1@0 ignore0@10 x1@10 close-timeout@25 e0@50");
    CHECK_EQ(w.rc, CORO_ETIMEDOUT);
    CHECK_EQ(coro_job_state(&f[2].j), CORO_JOB_DROPPED);
    CHECK_EQ(coro_task_result(&f[0].j.task), 0);
    CHECK(coro_task_cancelled(&f[1].j.task));
    CHECK_EQ(coro_sched_active(&s), 0);
    CLOSE_CLEAN(&L);
}

/* Jobs spawning jobs: a job spawned from inside a job queues behind the
 * pending ones. */
struct spawner {
    coro_frame co;
    coro_sched *s;
    struct job *kids;
    coro_job j;
};

static int spawner_fn(coro_ctx *c)
{
    struct spawner *f = CORO_SELF(c, struct spawner);
    CORO_BEGIN(c);
    TRACE("spawner@%ld", test_ms(c->loop));
    CHECK_EQ(coro_sched_spawn(c->loop, f->s, &f->kids[0].j, job(&f->kids[0], 7, 3)), 0);
    CHECK_EQ(coro_sched_pending(f->s), 2);
    CORO_SLEEP(c, CORO_MS(1));
    CORO_RETURN(c, 0);
    CORO_END(c);
}

TEST(sched_job_spawns_job)
{
    coro_loop L;
    coro_sched s;
    struct spawner sp;
    struct job f[2], kids[1];
    test_loop(&L);
    CHECK_EQ(coro_sched_init(&s, 1), 0);
    reset(&s);
    sp.s = &s;
    sp.kids = kids;
    CHECK_EQ(coro_sched_spawn(&L, &s, &sp.j, coro_frame_init(&sp.co, spawner_fn)), 0);
    CHECK_EQ(coro_sched_spawn(&L, &s, &f[0].j, job(&f[0], 0, 2)), 0);
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("spawner@0 s0@1 e0@3 s7@3 e7@6");
    CLOSE_CLEAN(&L);
}

/* Two tasks waiting on the same scheduler (e.g. a coro_sched_wait while
 * another task closes it) must both return when the jobs are done, and one
 * waiter's timeout must not disturb the other. (Regression: at 5a61116
 * every waiter re-initialised one shared future, so the earlier waiter was
 * never woken and a timeout cancelled the future of all; fixed in 19650c8.) */
TEST(sched_two_concurrent_waiters_both_return)
{
    coro_loop L;
    coro_sched s;
    coro_task ta, tb;
    struct job f[2];
    struct waiter a, b;
    test_loop(&L);
    CHECK_EQ(coro_sched_init(&s, 2), 0);
    reset(&s);
    for (int i = 0; i < 2; i++) CHECK_EQ(coro_sched_spawn(&L, &s, &f[i].j, job(&f[i], i, 10 + 10 * i)), 0);
    coro_spawn(&L, &ta, waiter(&a, "a", &s, 0, CORO_NEVER));
    coro_spawn(&L, &tb, waiter(&b, "b", &s, 0, CORO_NEVER));
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("s0@0 s1@0 e0@10 e1@20 a@20 b@20");
    CHECK_EQ(a.rc, 0);
    CHECK_EQ(b.rc, 0);
    CLOSE_CLEAN(&L);
}

TEST(sched_close_while_another_task_waits)
{
    coro_loop L;
    coro_sched s;
    coro_task ta, tb;
    struct job f[1];
    struct waiter a, b;
    test_loop(&L);
    CHECK_EQ(coro_sched_init(&s, 2), 0);
    reset(&s);
    CHECK_EQ(coro_sched_spawn(&L, &s, &f[0].j, job(&f[0], 0, 10)), 0);
    coro_spawn(&L, &ta, waiter(&a, "wait", &s, 0, CORO_NEVER));
    coro_spawn(&L, &tb, waiter(&b, "close", &s, 1, CORO_MS(50)));
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("s0@0 x0@0 wait@0 close@0");
    CHECK(coro_task_cancelled(&f[0].j.task));
    CLOSE_CLEAN(&L);
}

TEST(sched_waiter_timeout_does_not_disturb_other_waiter)
{
    coro_loop L;
    coro_sched s;
    coro_task ta, tb;
    struct job f[1];
    struct waiter a, b;
    test_loop(&L);
    CHECK_EQ(coro_sched_init(&s, 1), 0);
    reset(&s);
    CHECK_EQ(coro_sched_spawn(&L, &s, &f[0].j, job(&f[0], 0, 30)), 0);
    coro_spawn(&L, &tb, waiter(&b, "b", &s, 0, CORO_NEVER));
    coro_spawn(&L, &ta, waiter(&a, "a", &s, 0, CORO_MS(10)));
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("s0@0 a-timeout@10 e0@30 b@30");
    CHECK_EQ(a.rc, CORO_ETIMEDOUT);
    CHECK_EQ(b.rc, 0);
    CHECK_EQ(coro_task_cancelling(&ta), 0);
    CHECK_EQ(coro_task_result(&f[0].j.task), 0);
    CLOSE_CLEAN(&L);
}

/* Closing before the running jobs took their first step: they are
 * cancelled before they start (their bodies never run) and the close
 * returns when their done-callbacks ran. */
TEST(sched_close_before_jobs_start)
{
    coro_loop L;
    coro_sched s;
    coro_task t;
    struct job f[3];
    struct waiter w;
    test_loop(&L);
    CHECK_EQ(coro_sched_init(&s, 2), 0);
    reset(&s);
    coro_spawn(&L, &t, waiter(&w, "close", &s, 1, CORO_MS(5)));
    for (int i = 0; i < 3; i++) CHECK_EQ(coro_sched_spawn(&L, &s, &f[i].j, job(&f[i], i, 1)), 0);
    CHECK_EQ(drain(&L), 0);
    CHECK_TRACE("close@0");
    CHECK_EQ(w.rc, 0);
    CHECK(coro_task_cancelled(&f[0].j.task) && coro_task_cancelled(&f[1].j.task));
    CHECK_EQ(coro_job_state(&f[0].j), CORO_JOB_DONE);
    CHECK_EQ(coro_job_state(&f[2].j), CORO_JOB_DROPPED);
    CHECK_EQ(max_running, 0);
    CLOSE_CLEAN(&L);
}
