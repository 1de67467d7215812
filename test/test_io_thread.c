/* test_io_thread.c - coro_io.h's threads (R-TH-1..3; T117, T119): the
 * thread pool (to_thread / run_in_executor, how many threads it starts,
 * cancellation before and while a job runs, shutdown), call_soon_threadsafe
 * (FIFO, hammered while the loop sleeps), run_coroutine_threadsafe (result,
 * error, timeout then cancel, cancellation on the loop side), several loops
 * on several threads, a loop freed right after a message, and host names
 * in open_connection (resolved on the pool).
 *
 * Built plain, with ASan+UBSan and with TSan; run on both backends and
 * under valgrind. The loop runs on the real clock: nothing asserts on
 * elapsed time. Outcomes are made deterministic by construction (gates a
 * job waits at, rendezvous, joins); every wait is bounded (GUARD) so that
 * a bug fails a check instead of hanging. Checks run on the test's thread
 * only: other threads record what they saw, the test checks it after a
 * join or after the loop received their message. */
/* The longest any wait may take before the test calls it a failure. */
#define GUARD CORO_S(30)

#include "test_io.h"

#include <dirent.h>
#include <pthread.h>
#include <sys/time.h>

/* ---- helpers */

static void *nothing(void *arg)
{
    return arg;
}

/* TSan starts a helper thread at the first pthread_create: start it now,
 * so that the thread counts the tests compare do not see it appear. */
__attribute__((constructor)) static void settle_thread_count(void)
{
    pthread_t th;
    if (pthread_create(&th, NULL, nothing, NULL) == 0) pthread_join(th, NULL);
}

/* Counts for stress loops: valgrind serialises threads, so it gets fewer. */
static int scaled(int n, int on_valgrind)
{
    return RUNNING_ON_VALGRIND ? on_valgrind : n;
}

/* For a condition another thread makes true without waking the loop:
 * runs L one iteration at a time, each at most 1 ms, until cond holds (at
 * most GUARD); fails the test if it never does. */
#define POLL_FOR(L, cond)                                                      \
    do {                                                                       \
        int64_t pf_end__ = coro_loop_time(L) + GUARD;                          \
        while (!(cond) && coro_loop_time(L) < pf_end__) {                      \
            coro_call pf_call__;                                               \
            memset(&pf_call__, 0, sizeof pf_call__);                           \
            coro_call_later(L, &pf_call__, CORO_MS(1), noop_cb, NULL);         \
            coro_loop_run_once(L);                                             \
            coro_call_cancel(L, &pf_call__);                                   \
        }                                                                      \
        if (!(cond)) CHECK(!"timed out waiting for: " #cond);                  \
    } while (0)

/* The number of threads of this process, io_uring's kernel workers
 * (iou-wrk-*, iou-sqp-*) left out: they come and go on their own. */
static int thread_count(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));) {
        char path[300], comm[64] = "";
        if (e->d_name[0] == '.') continue;
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            if (!fgets(comm, sizeof comm, f)) comm[0] = 0;
            fclose(f);
        }
        if (strncmp(comm, "iou-", 4) != 0) n++;
    }
    closedir(d);
    return n;
}

/* An absolute CLOCK_REALTIME deadline ns from now (pthread timed waits). */
static struct timespec deadline_in(int64_t ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ns += ts.tv_nsec;
    ts.tv_sec += (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    return ts;
}

/* A gate a job waits at until the test opens it (bounded: GUARD). */
struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;
};

static void gate_init(struct gate *g)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->open = 0;
}

/* 1 once open, 0 if ns passed first. */
static int gate_wait(struct gate *g, int64_t ns)
{
    struct timespec until = deadline_in(ns);
    int rc = 0;
    pthread_mutex_lock(&g->mu);
    while (!g->open && rc == 0) rc = pthread_cond_timedwait(&g->cv, &g->mu, &until);
    int open = g->open;
    pthread_mutex_unlock(&g->mu);
    return open;
}

static void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

static void gate_destroy(struct gate *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

static int load(const int *p)
{
    return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static void store(int *p, int v)
{
    __atomic_store_n(p, v, __ATOMIC_SEQ_CST);
}

static int add(int *p, int v)
{
    return __atomic_add_fetch(p, v, __ATOMIC_SEQ_CST);
}

/* ---- a job for the pool: counts its runs, notes its thread, optionally
 * meets the others at a rendezvous and waits at a gate */
struct job {
    int value;            /* what it returns */
    struct gate *gate;    /* NULL: none */
    int *meet, meet_n;    /* rendezvous: waits until *meet reaches meet_n */
    int runs, started, finished, met;
    pthread_t thread;
};

static void job_init(struct job *j, int value, struct gate *g)
{
    memset(j, 0, sizeof *j);
    j->value = value;
    j->gate = g;
}

static int job_fn(void *arg)
{
    struct job *j = (struct job *)arg;
    j->thread = pthread_self();
    add(&j->runs, 1);
    store(&j->started, 1);
    if (j->meet) {
        add(j->meet, 1);
        for (int i = 0; i < 30000 && load(j->meet) < j->meet_n; i++) usleep(1000);
        store(&j->met, load(j->meet) >= j->meet_n);
    }
    if (j->gate) gate_wait(j->gate, GUARD);
    store(&j->finished, 1);
    return j->value;
}

/* T119's to_thread(sum, [40, 2]). */
struct sum_args {
    const int *v;
    int n, calls;
};

static int sum_fn(void *arg)
{
    struct sum_args *a = (struct sum_args *)arg;
    int s = 0;
    add(&a->calls, 1);
    for (int i = 0; i < a->n; i++) s += a->v[i];
    return s;
}

/* ---- an awaiter: one to_thread (pool NULL) or run_in_executor; keeps the
 * outcome in rc; the task ends cancelled if the await was, else with 0 */
struct awaiter {
    coro_frame co;
    coro_work work;
    coro_pool *pool;
    coro_work_fn *fn;
    void *arg;
    int rc, done;
};

static int awaiter_fn(coro_ctx *c)
{
    struct awaiter *a = CORO_SELF(c, struct awaiter);
    CORO_BEGIN(c);
    if (a->pool)
        CORO_IO(c, coro_run_in_executor(&a->work, c->loop, a->pool, a->fn, a->arg));
    else
        CORO_IO(c, coro_to_thread(&a->work, c->loop, a->fn, a->arg));
    a->rc = c->rc;
    a->done = 1;
    CORO_RETURN(c, c->rc == CORO_ECANCELED ? c->rc : 0);
    CORO_END(c);
}

static coro_frame *awaiter(struct awaiter *a, coro_pool *p, coro_work_fn *fn, void *arg)
{
    memset(a, 0, sizeof *a);
    a->pool = p;
    a->fn = fn;
    a->arg = arg;
    a->rc = 1;
    return coro_frame_init(&a->co, awaiter_fn);
}

/* Runs the loop until the job started (on its worker). */
#define WAIT_STARTED(L, j) POLL_FOR(L, load(&(j)->started))

/* ====================================================================== */
/* to_thread / run_in_executor (T119, R-TH-1/2)                           */
/* ====================================================================== */

TEST(T119_to_thread_returns_the_value_of_fn_called_once_on_a_pool_thread)
{
    coro_loop L;
    coro_io io;
    coro_task t;
    struct awaiter a;
    static const int v[] = {40, 2};
    struct sum_args s = {v, 2, 0};
    int threads = thread_count();
    WATCHDOG();
    IO_BEGIN(&L, &io);
    CHECK_EQ(run_task(&L, &t, awaiter(&a, NULL, sum_fn, &s)), 0);
    CHECK_EQ(a.rc, 42);
    CHECK_EQ(load(&s.calls), 1);
    IO_END(&L);
    CHECK_EQ(thread_count(), threads); /* the default pool went with the loop */
}

TEST(T119_to_thread_error_of_fn_propagates_to_the_awaiter)
{
    coro_loop L;
    coro_io io;
    coro_task t;
    struct awaiter a;
    struct job j;
    WATCHDOG();
    job_init(&j, CORO_EUSER(7), NULL);
    IO_BEGIN(&L, &io);
    CHECK_EQ(run_task(&L, &t, awaiter(&a, NULL, job_fn, &j)), 0);
    CHECK_EQ(a.rc, CORO_EUSER(7));
    CHECK_EQ(load(&j.runs), 1);
    IO_END(&L);
}

TEST(T119_ten_concurrent_to_thread_calls_all_run_on_pool_threads)
{
    coro_loop L;
    coro_io io;
    coro_task t[10];
    struct awaiter a[10];
    struct job j[10];
    WATCHDOG();
    IO_BEGIN(&L, &io);
    for (int i = 0; i < 10; i++) {
        job_init(&j[i], 100 + i, NULL);
        coro_spawn(&L, &t[i], awaiter(&a[i], NULL, job_fn, &j[i]));
    }
    WAIT_FOR(&L, a[0].done && a[1].done && a[2].done && a[3].done && a[4].done &&
                     a[5].done && a[6].done && a[7].done && a[8].done && a[9].done);
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(a[i].rc, 100 + i);
        CHECK_EQ(load(&j[i].runs), 1);
        CHECK(!pthread_equal(j[i].thread, pthread_self())); /* not the loop's thread */
        CHECK_EQ(coro_task_result(&t[i]), 0);
    }
    IO_END(&L);
}

/* test_events.py::test_run_in_executor: fn runs in another thread, on the
 * pool given; the pool can be shut down and freed afterwards. */
TEST(T119_run_in_executor_on_an_explicit_pool_runs_fn_in_another_thread)
{
    coro_loop L;
    coro_io io;
    coro_pool p;
    coro_task t;
    struct awaiter a;
    struct job j;
    int threads = thread_count();
    WATCHDOG();
    job_init(&j, 5, NULL);
    CHECK_EQ(coro_pool_init(&p, 2), 0);
    IO_BEGIN(&L, &io);
    CHECK_EQ(run_task(&L, &t, awaiter(&a, &p, job_fn, &j)), 0);
    CHECK_EQ(a.rc, 5);
    CHECK_EQ(load(&j.runs), 1);
    CHECK(!pthread_equal(j.thread, pthread_self()));
    CHECK_EQ(coro_pool_shutdown(&p, GUARD), 0);
    coro_pool_free(&p);
    CHECK_EQ(thread_count(), threads);
    IO_END(&L);
}

/* A pool of n threads runs n jobs at once (they meet at a rendezvous that
 * needs all of them) and no more: the (n+1)th waits, unstarted, while the
 * n hold their threads. The pool has exactly n threads then. */
TEST(pool_of_three_runs_three_jobs_in_parallel_and_queues_the_fourth)
{
    coro_loop L;
    coro_io io;
    coro_pool p;
    coro_task t[4];
    struct awaiter a[4];
    struct job j[4];
    struct gate g;
    int meet = 0, threads = thread_count();
    WATCHDOG();
    gate_init(&g);
    CHECK_EQ(coro_pool_init(&p, 3), 0);
    IO_BEGIN(&L, &io);
    for (int i = 0; i < 4; i++) {
        job_init(&j[i], i, &g);
        if (i < 3) {
            j[i].meet = &meet;
            j[i].meet_n = 3;
        }
        coro_spawn(&L, &t[i], awaiter(&a[i], &p, job_fn, &j[i]));
    }
    POLL_FOR(&L, load(&meet) == 3);
    run_idle(&L, 20); /* nothing can finish */
    CHECK_EQ(load(&j[3].started), 0);
    CHECK_EQ(thread_count(), threads + 3);
    CHECK(!a[0].done && !a[1].done && !a[2].done && !a[3].done);
    gate_open(&g);
    WAIT_FOR(&L, a[0].done && a[1].done && a[2].done && a[3].done);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(a[i].rc, i);
        CHECK_EQ(load(&j[i].runs), 1);
    }
    for (int i = 0; i < 3; i++) CHECK_EQ(load(&j[i].met), 1);
    CHECK(!pthread_equal(j[0].thread, j[1].thread) && !pthread_equal(j[1].thread, j[2].thread) &&
          !pthread_equal(j[0].thread, j[2].thread));
    CHECK_EQ(coro_pool_shutdown(&p, GUARD), 0);
    coro_pool_free(&p);
    gate_destroy(&g);
    IO_END(&L);
}

/* Three jobs submitted in one iteration to a pool of three whose one
 * thread is idle: they still run in parallel (they meet). The idle thread
 * is owed the first job only; the pool starts threads for the others
 * (asyncio's idle semaphore), instead of queueing them all behind it. */
TEST(pool_with_one_idle_thread_starts_more_for_jobs_submitted_together)
{
    coro_loop L;
    coro_io io;
    coro_pool p;
    coro_task t0, t[3];
    struct awaiter a0, a[3];
    struct job j0, j[3];
    int meet = 0, idle = 0;
    WATCHDOG();
    CHECK_EQ(coro_pool_init(&p, 3), 0);
    IO_BEGIN(&L, &io);
    job_init(&j0, 7, NULL);
    CHECK_EQ(run_task(&L, &t0, awaiter(&a0, &p, job_fn, &j0)), 0);
    CHECK_EQ(a0.rc, 7);
    for (int k = 0; k < 30000 && !idle; k++) { /* its thread waits for work */
        pthread_mutex_lock(&p.mu);
        idle = p.idle == 1;
        pthread_mutex_unlock(&p.mu);
        if (!idle) usleep(1000);
    }
    CHECK(idle);
    for (int i = 0; i < 3; i++) {
        job_init(&j[i], i, NULL);
        j[i].meet = &meet;
        j[i].meet_n = 3;
        coro_spawn(&L, &t[i], awaiter(&a[i], &p, job_fn, &j[i]));
    }
    WAIT_FOR(&L, a[0].done && a[1].done && a[2].done);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(a[i].rc, i);
        CHECK_EQ(load(&j[i].met), 1);
    }
    CHECK_EQ(coro_pool_shutdown(&p, GUARD), 0);
    coro_pool_free(&p);
    IO_END(&L);
}

/* R-TH-1: cancelling a job that has not started removes it: its await ends
 * with CORO_ECANCELED at once (while the job before it still runs), and
 * it never runs. */
TEST(R_TH_1_cancelling_a_queued_job_ends_its_await_at_once_and_it_never_runs)
{
    coro_loop L;
    coro_io io;
    coro_pool p;
    coro_task ta, tb;
    struct awaiter a, b;
    struct job ja, jb;
    struct gate g;
    WATCHDOG();
    gate_init(&g);
    job_init(&ja, 1, &g);
    job_init(&jb, 2, NULL);
    CHECK_EQ(coro_pool_init(&p, 1), 0);
    IO_BEGIN(&L, &io);
    coro_spawn(&L, &ta, awaiter(&a, &p, job_fn, &ja));
    coro_spawn(&L, &tb, awaiter(&b, &p, job_fn, &jb));
    WAIT_STARTED(&L, &ja); /* the one thread is busy: b waits in the queue */
    CHECK(!coro_task_done(&tb));
    coro_task_cancel(&L, &tb);
    WAIT_FOR(&L, coro_task_done(&tb));
    CHECK_EQ(b.rc, CORO_ECANCELED);
    CHECK(coro_task_cancelled(&tb));
    CHECK(!a.done); /* a still runs: b's await did not wait for it */
    gate_open(&g);
    WAIT_FOR(&L, coro_task_done(&ta));
    CHECK_EQ(a.rc, 1);
    CHECK_EQ(coro_pool_shutdown(&p, GUARD), 0); /* the workers are gone: */
    CHECK_EQ(load(&jb.runs), 0);                 /* b never ran */
    coro_pool_free(&p);
    gate_destroy(&g);
    IO_END(&L);
}

/* R-TH-1: a running job is not interrupted; its result is discarded. In
 * C the await ends only once fn returned (the record is in the frame). */
TEST(R_TH_1_cancelling_a_running_job_waits_for_fn_and_discards_its_result)
{
    coro_loop L;
    coro_io io;
    coro_pool p;
    coro_task t;
    struct awaiter a;
    struct job j;
    struct gate g;
    WATCHDOG();
    gate_init(&g);
    job_init(&j, 9, &g);
    CHECK_EQ(coro_pool_init(&p, 1), 0);
    IO_BEGIN(&L, &io);
    coro_spawn(&L, &t, awaiter(&a, &p, job_fn, &j));
    WAIT_STARTED(&L, &j);
    coro_task_cancel(&L, &t);
    run_idle(&L, 20); /* the gate is shut: the await goes on */
    CHECK(!coro_task_done(&t));
    CHECK_EQ(load(&j.finished), 0);
    gate_open(&g);
    WAIT_FOR(&L, coro_task_done(&t));
    CHECK_EQ(a.rc, CORO_ECANCELED); /* 9 was discarded */
    CHECK(coro_task_cancelled(&t));
    CHECK_EQ(load(&j.finished), 1);
    CHECK_EQ(load(&j.runs), 1);
    CHECK_EQ(coro_pool_shutdown(&p, GUARD), 0);
    coro_pool_free(&p);
    gate_destroy(&g);
    IO_END(&L);
}

/* test_events.py::test_run_in_executor_cancel: a job cancelled at once,
 * then the loop closed: nothing calls back into the closed loop (the
 * default pool's threads are gone with it). */
TEST(T119_cancelled_to_thread_job_never_calls_back_into_the_closed_loop)
{
    coro_loop L;
    coro_io io;
    coro_task t;
    struct awaiter a;
    struct job j;
    struct gate g;
    int threads = thread_count();
    WATCHDOG();
    gate_init(&g);
    job_init(&j, 3, &g);
    IO_BEGIN(&L, &io);
    coro_spawn(&L, &t, awaiter(&a, NULL, job_fn, &j));
    coro_loop_run_once(&L); /* submitted */
    coro_task_cancel(&L, &t);
    gate_open(&g); /* whether it started or not: it may go on now */
    WAIT_FOR(&L, coro_task_done(&t));
    CHECK_EQ(a.rc, CORO_ECANCELED);
    IO_END(&L);
    CHECK_EQ(thread_count(), threads);
    CHECK(load(&j.runs) == load(&j.finished)); /* ran to its end, or never */
    gate_destroy(&g);
}

/* ---- thousands of jobs, cancelled at random moments */

struct sjob {
    coro_frame co;
    coro_work work;
    struct stress *st;
    int idx, rc, started_at_end, finished_at_end, done;
};

struct stress {
    coro_frame co; /* the driver's frame: first */
    coro_pool pool;
    struct sjob *jobs;
    coro_task *tasks;
    int *runs, *started, *finished; /* per job, atomics */
    int n, ndone;
    uint32_t rng;
    int i, k, cancels;
};

static uint32_t rnd(uint32_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    return *s;
}

static int sjob_value(int idx)
{
    return idx % 5 == 0 ? CORO_EUSER(idx % 100) : idx * 3 + 1;
}

/* On a worker: notes the run, sometimes spins a little, returns. */
static int sjob_work(void *arg)
{
    struct sjob *j = (struct sjob *)arg;
    struct stress *st = j->st;
    add(&st->runs[j->idx], 1);
    store(&st->started[j->idx], 1);
    if (j->idx % 3 == 0) {
        volatile unsigned x = 0;
        for (unsigned i = 0; i < 100000; i++) x += i;
    } else if (j->idx % 3 == 1) {
        usleep((useconds_t)(50 + j->idx % 200));
    }
    store(&st->finished[j->idx], 1);
    return sjob_value(j->idx);
}

static int sjob_fn(coro_ctx *c)
{
    struct sjob *j = CORO_SELF(c, struct sjob);
    CORO_BEGIN(c);
    if (j->idx % 2)
        CORO_IO(c, coro_to_thread(&j->work, c->loop, sjob_work, j));
    else
        CORO_IO(c, coro_run_in_executor(&j->work, c->loop, &j->st->pool, sjob_work, j));
    j->rc = c->rc;
    if (c->rc == CORO_ECANCELED) CORO_FAIL(c, c->rc);
    CORO_FINALLY(c);
    j->started_at_end = load(&j->st->started[j->idx]);
    j->finished_at_end = load(&j->st->finished[j->idx]);
    j->done = 1;
    j->st->ndone++;
    CORO_END(c);
}

/* Spawns the jobs in batches, cancelling some at once (before their first
 * step), others a few iterations or sleeps later, at random. */
static int stress_fn(coro_ctx *c)
{
    struct stress *st = CORO_SELF(c, struct stress);
    CORO_BEGIN(c);
    for (st->i = 0; st->i < st->n; st->i++) {
        struct sjob *j = &st->jobs[st->i];
        j->st = st;
        j->idx = st->i;
        j->rc = 1;
        coro_spawn(c->loop, &st->tasks[st->i], coro_frame_init(&j->co, sjob_fn));
        if (rnd(&st->rng) % 16 == 0) {
            coro_task_cancel(c->loop, &st->tasks[st->i]);
            st->cancels++;
        }
        if (st->i % 50 != 49) continue;
        for (st->k = 0; st->k < 30; st->k++) { /* cancel some of this batch */
            uint32_t r = rnd(&st->rng);
            coro_task *t = &st->tasks[st->i - (int)(r % 50)];
            if (!coro_task_done(t) && r % 3 == 0) {
                coro_task_cancel(c->loop, t);
                st->cancels++;
            }
            if (r % 8 == 0)
                CORO_SLEEP(c, CORO_US(r % 100));
            else if (r % 4 == 0)
                CORO_YIELD(c);
        }
    }
    while (coro_loop_task_count(c->loop) > 1) { /* the rest: cancel now and then */
        coro_task *t = &st->tasks[rnd(&st->rng) % (uint32_t)st->n];
        if (!coro_task_done(t) && rnd(&st->rng) % 8 == 0) {
            coro_task_cancel(c->loop, t);
            st->cancels++;
        }
        CORO_SLEEP(c, CORO_US(100));
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

TEST(R_TH_1_thousands_of_jobs_with_random_cancellations_none_lost_pool_drains)
{
    coro_loop L;
    coro_io io;
    coro_task t;
    struct stress st;
    int n = scaled(2000, 300), delivered = 0, dropped = 0, discarded = 0, unstarted = 0;
    int threads = thread_count();
    WATCHDOG();
    memset(&st, 0, sizeof st);
    st.n = n;
    st.rng = 0x9e3779b9u;
    st.jobs = (struct sjob *)calloc((size_t)n, sizeof *st.jobs);
    st.tasks = (coro_task *)calloc((size_t)n, sizeof *st.tasks);
    st.runs = (int *)calloc((size_t)n, sizeof(int));
    st.started = (int *)calloc((size_t)n, sizeof(int));
    st.finished = (int *)calloc((size_t)n, sizeof(int));
    CHECK_EQ(coro_pool_init(&st.pool, 4), 0);
    IO_BEGIN(&L, &io);
    CHECK_EQ(run_task(&L, &t, coro_frame_init(&st.co, stress_fn)), 0);
    CHECK_EQ(coro_pool_shutdown(&st.pool, GUARD), 0); /* the pool drained */
    for (int i = 0; i < n; i++) {
        struct sjob *j = &st.jobs[i];
        int runs = load(&st.runs[i]);
        CHECK(coro_task_done(&st.tasks[i])); /* none lost */
        if (!j->done) { /* cancelled before its first step: never submitted */
            CHECK(coro_task_cancelled(&st.tasks[i]));
            CHECK_EQ(runs, 0);
            unstarted++;
            continue;
        }
        CHECK(runs <= 1);
        /* the await ended only after fn returned, or fn never started */
        if (j->started_at_end && !j->finished_at_end) {
            CHECK(!"an await ended while its job was still running");
            printf("  job %d\n", i);
        }
        /* what was not started when its await ended never ran */
        if (!j->started_at_end && runs) {
            CHECK(!"a job dropped by its cancellation ran anyway");
            printf("  job %d\n", i);
        }
        if (j->rc == CORO_ECANCELED) {
            CHECK(coro_task_cancelled(&st.tasks[i]));
            if (runs)
                discarded++;
            else
                dropped++;
        } else {
            CHECK_EQ(j->rc, sjob_value(i)); /* delivered: fn's own value */
            CHECK_EQ(runs, 1);
            CHECK_EQ(coro_task_result(&st.tasks[i]), 0);
            delivered++;
        }
    }
    CHECK_EQ(delivered + dropped + discarded + unstarted, n);
    CHECK_EQ(st.ndone + unstarted, n);
    CHECK(delivered > 0);
    CHECK(dropped + unstarted > 0);
    if (getenv("TEST_VERBOSE"))
        printf("  %d delivered, %d dropped, %d discarded, %d never started, %d cancels\n",
               delivered, dropped, discarded, unstarted, st.cancels);
    coro_pool_free(&st.pool);
    IO_END(&L);
    CHECK_EQ(thread_count(), threads);
    free(st.jobs);
    free(st.tasks);
    free(st.runs);
    free(st.started);
    free(st.finished);
}

/* ---- shutdown */

struct shutdown_test {
    coro_frame co;
    coro_pool *p;
    coro_task t[3];
    struct awaiter a[3];
    struct job j[3];
    struct gate g;
    coro_work late;
    int first_rc, second_rc, late_rc, late_cancel_rc, b_done_before_a;
};

static int shutdown_fn(coro_ctx *c)
{
    struct shutdown_test *s = CORO_SELF(c, struct shutdown_test);
    CORO_BEGIN(c);
    for (int i = 0; i < 3; i++)
        coro_spawn(c->loop, &s->t[i], awaiter(&s->a[i], s->p, job_fn, &s->j[i]));
    while (!load(&s->j[0].started)) CORO_SLEEP(c, CORO_MS(1)); /* bounded by run_task */
    /* job 0 runs (held at the gate), jobs 1 and 2 wait in the queue */
    s->first_rc = coro_pool_shutdown(s->p, CORO_MS(20));
    CORO_AWAIT_TASK(c, &s->t[1]);
    CORO_AWAIT_TASK(c, &s->t[2]);
    s->b_done_before_a = !s->a[0].done;
    gate_open(&s->g);
    CORO_AWAIT_TASK(c, &s->t[0]);
    s->second_rc = coro_pool_shutdown(s->p, GUARD);
    CORO_IO(c, coro_run_in_executor(&s->late, c->loop, s->p, job_fn, &s->j[1]));
    s->late_rc = c->rc;
    CORO_RETURN(c, 0);
    CORO_END(c);
}

/* Shutdown drops the queued jobs (their awaits end with CORO_ECANCELED,
 * they never run), lets the running one finish (its result is delivered)
 * and times out while it runs; called again later it returns 0. A job
 * submitted after shutdown fails with CORO_ESHUTDOWN. */
TEST(pool_shutdown_drops_queued_jobs_times_out_on_a_running_one_then_refuses_new_ones)
{
    coro_loop L;
    coro_io io;
    coro_pool p;
    coro_task t;
    struct shutdown_test s;
    WATCHDOG();
    memset(&s, 0, sizeof s);
    s.p = &p;
    gate_init(&s.g);
    job_init(&s.j[0], 10, &s.g);
    job_init(&s.j[1], 11, NULL);
    job_init(&s.j[2], 12, NULL);
    CHECK_EQ(coro_pool_init(&p, 1), 0);
    IO_BEGIN(&L, &io);
    CHECK_EQ(run_task(&L, &t, coro_frame_init(&s.co, shutdown_fn)), 0);
    CHECK_EQ(s.first_rc, CORO_ETIMEDOUT);
    CHECK_EQ(s.a[1].rc, CORO_ECANCELED);
    CHECK_EQ(s.a[2].rc, CORO_ECANCELED);
    CHECK(s.b_done_before_a);
    CHECK_EQ(s.a[0].rc, 10);
    CHECK_EQ(s.second_rc, 0);
    CHECK_EQ(s.late_rc, CORO_ESHUTDOWN);
    CHECK_EQ(load(&s.j[0].runs), 1);
    CHECK_EQ(load(&s.j[1].runs), 0);
    CHECK_EQ(load(&s.j[2].runs), 0);
    coro_pool_free(&p);
    gate_destroy(&s.g);
    IO_END(&L);
}

TEST(pool_submit_after_shutdown_fails_with_eshutdown_and_never_runs)
{
    coro_loop L;
    coro_io io;
    coro_pool p;
    coro_task t;
    struct awaiter a;
    struct job j;
    WATCHDOG();
    job_init(&j, 1, NULL);
    CHECK_EQ(coro_pool_init(&p, 2), 0);
    CHECK_EQ(coro_pool_shutdown(&p, 0), 0); /* never started a thread */
    IO_BEGIN(&L, &io);
    CHECK_EQ(run_task(&L, &t, awaiter(&a, &p, job_fn, &j)), 0);
    CHECK_EQ(a.rc, CORO_ESHUTDOWN);
    CHECK_EQ(load(&j.runs), 0);
    coro_pool_free(&p);
    IO_END(&L);
}

/* ====================================================================== */
/* call_soon_threadsafe (T117)                                            */
/* ====================================================================== */

static void trace_cb(coro_loop *L, void *arg)
{
    (void)L;
    TRACE("%s", (const char *)arg);
}

struct poster {
    coro_loop *L;
    coro_tcall t;
    const char *word;
};

static void *post_word(void *arg)
{
    struct poster *p = (struct poster *)arg;
    coro_call_soon_threadsafe(p->L, &p->t, trace_cb, (void *)(uintptr_t)p->word);
    return NULL;
}

/* T117 test_call_soon_threadsafe: a call_soon_threadsafe made from another
 * thread before the loop thread's call_soon runs first: hello world. */
TEST(T117_call_soon_threadsafe_from_a_thread_runs_before_a_later_call_soon)
{
    coro_loop L;
    coro_io io;
    coro_call k;
    pthread_t th;
    struct poster p;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    coro_io_threadsafe(&io);
    p.L = &L;
    p.word = "hello";
    pthread_create(&th, NULL, post_word, &p);
    pthread_join(th, NULL);
    coro_call_soon(&L, &k, trace_cb, (void *)"world");
    WAIT_FOR(&L, strlen(test__trace) >= strlen("hello world"));
    /* asyncio appends both to one ready queue, in call order: call_soon
     * collects the raised inbox signal before it queues "world". */
    CHECK_TRACE("hello world");
    IO_END(&L);
}

/* T117 test_call_soon_threadsafe_same_thread: the same order when both
 * calls come from the loop's thread. */
TEST(T117_call_soon_threadsafe_from_the_loop_thread_keeps_call_order)
{
    coro_loop L;
    coro_io io;
    coro_call k;
    coro_tcall t;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    coro_io_threadsafe(&io);
    coro_call_soon_threadsafe(&L, &t, trace_cb, (void *)"hello");
    coro_call_soon(&L, &k, trace_cb, (void *)"world");
    WAIT_FOR(&L, strlen(test__trace) >= strlen("hello world"));
    /* The same order when both calls come from the loop's thread. */
    CHECK_TRACE("hello world");
    IO_END(&L);
}

/* ---- FIFO and exactly once, with threads hammering the inbox */

struct hcall {
    coro_tcall t;
    struct hammer *h;
    int i, runs;
};

struct hammer {
    coro_loop *L;
    pthread_t th;
    struct hcall *calls;
    int n, next, order_errors, wrong_thread;
    pthread_t loop_thread;
    int *total;
};

static void hcall_cb(coro_loop *L, void *arg)
{
    struct hcall *hc = (struct hcall *)arg;
    struct hammer *h = hc->h;
    (void)L;
    hc->runs++;
    if (hc->i != h->next) h->order_errors++;
    h->next = hc->i + 1;
    if (!pthread_equal(pthread_self(), h->loop_thread)) h->wrong_thread++;
    ++*h->total;
}

static void *hammer_fn(void *arg)
{
    struct hammer *h = (struct hammer *)arg;
    for (int i = 0; i < h->n; i++) {
        struct hcall *hc = &h->calls[i];
        hc->h = h;
        hc->i = i;
        coro_call_soon_threadsafe(h->L, &hc->t, hcall_cb, hc);
        if (i % 1000 == 999) sched_yield();
    }
    return NULL;
}

struct sleeper {
    coro_frame co;
    int *total, want, naps;
};

static int sleeper_fn(coro_ctx *c)
{
    struct sleeper *s = CORO_SELF(c, struct sleeper);
    CORO_BEGIN(c);
    while (*s->total < s->want) {
        CORO_SLEEP(c, CORO_MS(5));
        s->naps++;
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

/* Threads hammer call_soon_threadsafe while the loop sleeps: every call
 * runs exactly once, on the loop's thread, each thread's in its order. */
static void hammer_test(int nthreads, int per_thread)
{
    coro_loop L;
    coro_io io;
    coro_task t;
    struct sleeper s;
    struct hammer h[8];
    int total = 0;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    coro_io_threadsafe(&io);
    memset(&s, 0, sizeof s);
    s.total = &total;
    s.want = nthreads * per_thread;
    for (int k = 0; k < nthreads; k++) {
        memset(&h[k], 0, sizeof h[k]);
        h[k].L = &L;
        h[k].n = per_thread;
        h[k].calls = (struct hcall *)calloc((size_t)per_thread, sizeof *h[k].calls);
        h[k].loop_thread = pthread_self();
        h[k].total = &total;
    }
    CHECK_EQ(coro_spawn(&L, &t, coro_frame_init(&s.co, sleeper_fn)), 0);
    coro_loop_run_once(&L); /* the sleeper sleeps */
    for (int k = 0; k < nthreads; k++) pthread_create(&h[k].th, NULL, hammer_fn, &h[k]);
    WAIT_FOR(&L, coro_task_done(&t));
    for (int k = 0; k < nthreads; k++) pthread_join(h[k].th, NULL);
    CHECK_EQ(total, nthreads * per_thread);
    for (int k = 0; k < nthreads; k++) {
        int bad = 0;
        for (int i = 0; i < per_thread; i++) bad += h[k].calls[i].runs != 1;
        CHECK_EQ(bad, 0);
        CHECK_EQ(h[k].order_errors, 0);
        CHECK_EQ(h[k].wrong_thread, 0);
        free(h[k].calls);
    }
    IO_END(&L);
}

TEST(T117_call_soon_threadsafe_calls_from_one_thread_run_in_fifo_order)
{
    hammer_test(1, scaled(20000, 3000));
}

TEST(call_soon_threadsafe_hammered_by_four_threads_while_the_loop_sleeps_runs_each_once)
{
    hammer_test(4, scaled(20000, 2000));
}

/* The loop in threadsafe mode waits for other threads instead of
 * reporting a deadlock when it has nothing else to do. */
struct setter {
    coro_loop *L;
    coro_future *f;
    coro_tcall t;
};

static void set_cb(coro_loop *L, void *arg)
{
    coro_future_set_result(L, (coro_future *)arg, 17);
}

static void *set_later(void *arg)
{
    struct setter *s = (struct setter *)arg;
    usleep(20000); /* lets the loop block first (not asserted) */
    coro_call_soon_threadsafe(s->L, &s->t, set_cb, s->f);
    return NULL;
}

struct future_waiter {
    coro_frame co;
    coro_future *f;
};

static int future_waiter_fn(coro_ctx *c)
{
    struct future_waiter *w = CORO_SELF(c, struct future_waiter);
    CORO_BEGIN(c);
    CORO_AWAIT_FUTURE(c, w->f);
    CORO_CHECK(c);
    CORO_RETURN(c, (int)coro_future_value(w->f));
    CORO_END(c);
}

TEST(threadsafe_loop_waits_for_another_thread_instead_of_reporting_deadlock)
{
    coro_loop L;
    coro_io io;
    coro_task t;
    coro_future f;
    struct future_waiter w;
    struct setter s;
    pthread_t th;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    coro_io_threadsafe(&io);
    coro_future_init(&f);
    w.f = &f;
    s.L = &L;
    s.f = &f;
    pthread_create(&th, NULL, set_later, &s);
    /* no guard timer: only the other thread can end this run */
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&w.co, future_waiter_fn)), 17);
    CHECK(!coro_loop_deadlocked(&L));
    pthread_join(th, NULL);
    IO_END(&L);
}

TEST(loop_not_in_threadsafe_mode_still_reports_deadlock)
{
    coro_loop L;
    coro_io io;
    coro_task t;
    coro_future f;
    struct future_waiter w;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    coro_future_init(&f);
    w.f = &f;
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&w.co, future_waiter_fn)), CORO_EDEADLK);
    coro_task_cancel(&L, &t);
    RUN_UNTIL(&L, coro_task_done(&t), GUARD);
    CHECK(coro_task_cancelled(&t));
    IO_END(&L);
}

/* ====================================================================== */
/* run_coroutine_threadsafe (R-TH-3)                                      */
/* ====================================================================== */

/* The coroutine another thread starts on the loop. */
enum { RCO_VALUE, RCO_FAIL, RCO_SLEEP_LONG, RCO_SELF_CANCEL };

struct rco {
    coro_frame co;
    int kind, value, saw, ran;
    pthread_t thread;
    coro_call cc;
};

static void cancel_task_cb(coro_loop *L, void *arg)
{
    coro_task_cancel(L, (coro_task *)arg);
}

static int rco_fn(coro_ctx *c)
{
    struct rco *r = CORO_SELF(c, struct rco);
    CORO_BEGIN(c);
    r->thread = pthread_self();
    r->ran++;
    if (r->kind == RCO_SELF_CANCEL) /* the loop side cancels it */
        coro_call_soon(c->loop, &r->cc, cancel_task_cb, c->task);
    if (r->kind == RCO_SLEEP_LONG || r->kind == RCO_SELF_CANCEL) {
        CORO_SLEEP(c, CORO_S(3600));
        r->saw = c->rc;
        CORO_CHECK(c);
    } else {
        CORO_YIELD(c);
    }
    CORO_RETURN(c, r->kind == RCO_FAIL ? CORO_EUSER(r->value) : r->value);
    CORO_END(c);
}

static coro_frame *rco(struct rco *r, int kind, int value)
{
    memset(r, 0, sizeof *r);
    r->kind = kind;
    r->value = value;
    r->saw = 1;
    return coro_frame_init(&r->co, rco_fn);
}

/* The other thread's side: a script, then a message that ends the run. */
struct remote {
    coro_loop *L;
    pthread_t th;
    void (*script)(struct remote *);
    struct rco r[4];
    coro_tfuture tf[4];
    int rc[8], start_rc[4];
    coro_tcall fin;
    int finished;
};

static void finished_cb(coro_loop *L, void *arg)
{
    (void)L;
    *(int *)arg = 1;
}

static void *remote_main(void *arg)
{
    struct remote *m = (struct remote *)arg;
    m->script(m);
    coro_call_soon_threadsafe(m->L, &m->fin, finished_cb, &m->finished);
    return NULL;
}

/* Runs script on another thread while the loop runs here. */
static void with_remote(coro_loop *L, struct remote *m, void (*script)(struct remote *))
{
    memset(m, 0, sizeof *m);
    m->L = L;
    m->script = script;
    pthread_create(&m->th, NULL, remote_main, m);
    WAIT_FOR(L, m->finished);
    pthread_join(m->th, NULL);
}

static void script_result(struct remote *m)
{
    m->start_rc[0] = coro_run_coroutine_threadsafe(&m->tf[0], m->L, rco(&m->r[0], RCO_VALUE, 42));
    m->rc[0] = coro_tfuture_wait(&m->tf[0], GUARD);
    m->rc[1] = coro_tfuture_wait(&m->tf[0], 0); /* done: at once, again */
    coro_tfuture_cancel(&m->tf[0]);             /* done: no effect */
    m->rc[2] = coro_tfuture_wait(&m->tf[0], GUARD);
    coro_tfuture_destroy(&m->tf[0]);
}

TEST(R_TH_3_run_coroutine_threadsafe_returns_the_result_to_the_other_thread)
{
    coro_loop L;
    coro_io io;
    struct remote m;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    coro_io_threadsafe(&io);
    with_remote(&L, &m, script_result);
    CHECK_EQ(m.start_rc[0], 0);
    CHECK_EQ(m.rc[0], 42);
    CHECK_EQ(m.rc[1], 42);
    CHECK_EQ(m.rc[2], 42);
    CHECK_EQ(m.r[0].ran, 1);
    CHECK(pthread_equal(m.r[0].thread, pthread_self())); /* ran on the loop's thread */
    IO_END(&L);
}

static void script_error(struct remote *m)
{
    coro_run_coroutine_threadsafe(&m->tf[0], m->L, rco(&m->r[0], RCO_FAIL, 4));
    m->rc[0] = coro_tfuture_wait(&m->tf[0], GUARD);
    coro_tfuture_destroy(&m->tf[0]);
}

/* The error reaches the waiting thread, and counts as retrieved (no
 * "exception never retrieved" report at close: IO_END checks). */
TEST(R_TH_3_run_coroutine_threadsafe_passes_the_error_to_the_other_thread)
{
    coro_loop L;
    coro_io io;
    struct remote m;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    coro_io_threadsafe(&io);
    with_remote(&L, &m, script_error);
    CHECK_EQ(m.rc[0], CORO_EUSER(4));
    IO_END(&L);
}

static void script_timeout_cancel(struct remote *m)
{
    coro_run_coroutine_threadsafe(&m->tf[0], m->L, rco(&m->r[0], RCO_SLEEP_LONG, 1));
    m->rc[0] = coro_tfuture_wait(&m->tf[0], CORO_MS(20));
    coro_tfuture_cancel(&m->tf[0]); /* the test's `finally` */
    m->rc[1] = coro_tfuture_wait(&m->tf[0], GUARD);
    coro_tfuture_destroy(&m->tf[0]);
}

/* test_run_coroutine_threadsafe_with_timeout: result(timeout) times out,
 * then cancelling the concurrent future cancels the task on the loop: the
 * task sees CORO_ECANCELED, and so does the waiting thread. */
TEST(R_TH_3_run_coroutine_threadsafe_timeout_then_cancel_reaches_the_task)
{
    coro_loop L;
    coro_io io;
    struct remote m;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    coro_io_threadsafe(&io);
    with_remote(&L, &m, script_timeout_cancel);
    CHECK_EQ(m.rc[0], CORO_ETIMEDOUT);
    CHECK_EQ(m.rc[1], CORO_ECANCELED);
    CHECK_EQ(m.r[0].saw, CORO_ECANCELED);
    IO_END(&L);
}

static void script_loop_side_cancel(struct remote *m)
{
    coro_run_coroutine_threadsafe(&m->tf[0], m->L, rco(&m->r[0], RCO_SELF_CANCEL, 1));
    m->rc[0] = coro_tfuture_wait(&m->tf[0], GUARD);
    coro_tfuture_destroy(&m->tf[0]);
}

TEST(R_TH_3_task_cancelled_on_the_loop_side_gives_ecanceled_to_the_waiting_thread)
{
    coro_loop L;
    coro_io io;
    struct remote m;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    coro_io_threadsafe(&io);
    with_remote(&L, &m, script_loop_side_cancel);
    CHECK_EQ(m.rc[0], CORO_ECANCELED);
    CHECK_EQ(m.r[0].saw, CORO_ECANCELED);
    IO_END(&L);
}

static void script_cancel_before_start(struct remote *m)
{
    /* cancelled right after it was posted: the task may not exist yet */
    coro_run_coroutine_threadsafe(&m->tf[0], m->L, rco(&m->r[0], RCO_SLEEP_LONG, 1));
    coro_tfuture_cancel(&m->tf[0]);
    m->rc[0] = coro_tfuture_wait(&m->tf[0], GUARD);
    coro_tfuture_destroy(&m->tf[0]);
}

TEST(R_TH_3_run_coroutine_threadsafe_cancelled_at_once_ends_cancelled)
{
    coro_loop L;
    coro_io io;
    struct remote m;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    coro_io_threadsafe(&io);
    with_remote(&L, &m, script_cancel_before_start);
    CHECK_EQ(m.rc[0], CORO_ECANCELED);
    CHECK(m.r[0].ran == 0 || m.r[0].saw == CORO_ECANCELED);
    IO_END(&L);
}

/* Several threads, each starting many coroutines in turn. */
struct rct_many {
    coro_loop *L;
    pthread_t th;
    int id, n, bad, timeouts;
    int *finished;
    coro_tcall fin;
};

static void count_cb(coro_loop *L, void *arg)
{
    (void)L;
    ++*(int *)arg;
}

static void *rct_many_fn(void *arg)
{
    struct rct_many *m = (struct rct_many *)arg;
    for (int i = 0; i < m->n; i++) {
        struct rco r;
        coro_tfuture tf;
        int v = m->id * 1000 + i, fail = i % 4 == 3;
        coro_run_coroutine_threadsafe(&tf, m->L, rco(&r, fail ? RCO_FAIL : RCO_VALUE, v));
        int rc = coro_tfuture_wait(&tf, GUARD);
        if (rc == CORO_ETIMEDOUT) {
            m->timeouts++;
            coro_tfuture_cancel(&tf);
            rc = coro_tfuture_wait(&tf, GUARD); /* the frame must outlive the task */
        }
        if (rc != (fail ? CORO_EUSER(v) : v)) m->bad++;
        coro_tfuture_destroy(&tf);
    }
    coro_call_soon_threadsafe(m->L, &m->fin, count_cb, m->finished);
    return NULL;
}

TEST(R_TH_3_four_threads_run_coroutines_threadsafe_concurrently)
{
    coro_loop L;
    coro_io io;
    struct rct_many m[4];
    int finished = 0, n = scaled(200, 30);
    WATCHDOG();
    IO_BEGIN(&L, &io);
    coro_io_threadsafe(&io);
    for (int k = 0; k < 4; k++) {
        memset(&m[k], 0, sizeof m[k]);
        m[k].L = &L;
        m[k].id = k + 1;
        m[k].n = n;
        m[k].finished = &finished;
        pthread_create(&m[k].th, NULL, rct_many_fn, &m[k]);
    }
    WAIT_FOR(&L, finished == 4);
    for (int k = 0; k < 4; k++) {
        pthread_join(m[k].th, NULL);
        CHECK_EQ(m[k].bad, 0);
        CHECK_EQ(m[k].timeouts, 0);
    }
    IO_END(&L);
}

/* ====================================================================== */
/* Several loops on several threads                                       */
/* ====================================================================== */

#define MAX_SIDES 4

/* One loop on its own thread (side 0: the test's thread). A token goes
 * around the ring of loops with call_soon_threadsafe; each loop also runs
 * `jobs` to_thread jobs on its own default pool meanwhile. */
struct side {
    coro_loop L;
    coro_io io;
    pthread_t th, self;
    struct ring *ring;
    int id, count, stop, wrong_thread, reports, init_rc;
    coro_tcall to_next, stop_call;
    /* to_thread jobs */
    coro_task jt;
    struct side_jobs {
        coro_frame co;
        coro_work work;
        struct job j;
        int i, n, bad;
    } jobs;
};

struct ring {
    struct side s[MAX_SIDES];
    int n, rounds;
    pthread_barrier_t ready;
};

static void side_report(coro_loop *L, const coro_report *r, void *arg)
{
    (void)L;
    (void)r;
    ((struct side *)arg)->reports++;
}

static void stop_cb(coro_loop *L, void *arg)
{
    (void)L;
    ((struct side *)arg)->stop = 1;
}

/* The token arrives at side s (on s's thread). */
static void token_cb(coro_loop *L, void *arg)
{
    struct side *s = (struct side *)arg;
    struct ring *r = s->ring;
    struct side *next = &r->s[(s->id + 1) % r->n];
    (void)L;
    if (!pthread_equal(pthread_self(), s->self)) s->wrong_thread++;
    s->count++;
    if (s->id == 0 && s->count == r->rounds) { /* done: stop the others */
        s->stop = 1;
        for (int i = 1; i < r->n; i++)
            coro_call_soon_threadsafe(&r->s[i].L, &r->s[i].stop_call, stop_cb, &r->s[i]);
        return;
    }
    coro_call_soon_threadsafe(&next->L, &s->to_next, token_cb, next);
}

static int side_jobs_fn(coro_ctx *c)
{
    struct side_jobs *sj = CORO_SELF(c, struct side_jobs);
    CORO_BEGIN(c);
    for (sj->i = 0; sj->i < sj->n; sj->i++) {
        job_init(&sj->j, sj->i, NULL);
        CORO_IO(c, coro_to_thread(&sj->work, c->loop, job_fn, &sj->j));
        if (c->rc != sj->i || load(&sj->j.runs) != 1) sj->bad++;
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

/* Sets a side up on the calling thread. */
static void side_init(struct side *s, int jobs)
{
    s->self = pthread_self();
    s->init_rc = coro_io_init(&s->io, &s->L, NULL);
    if (s->init_rc < 0) return;
    coro_loop_set_report(&s->L, side_report, s);
    coro_io_threadsafe(&s->io);
    s->jobs.n = jobs;
    coro_spawn(&s->L, &s->jt, coro_frame_init(&s->jobs.co, side_jobs_fn));
}

static void *side_main(void *arg)
{
    struct side *s = (struct side *)arg;
    side_init(s, s->jobs.n);
    pthread_barrier_wait(&s->ring->ready);
    if (s->init_rc < 0) return NULL;
    RUN_UNTIL(&s->L, s->stop && coro_task_done(&s->jt), GUARD);
    if (!coro_task_done(&s->jt)) { /* failed: end it */
        coro_task_cancel(&s->L, &s->jt);
        RUN_UNTIL(&s->L, coro_task_done(&s->jt), GUARD);
    }
    coro_loop_close(&s->L);
    return NULL;
}

/* n loops (side 0 on this thread, in L/io), the token `rounds` times
 * around, `jobs` to_thread jobs per loop. */
static void ring_test(int n, int rounds, int jobs)
{
    static struct ring r;
    struct side *s0 = &r.s[0];
    int fds = io_fd_count(), threads = thread_count();
    WATCHDOG();
    memset(&r, 0, sizeof r);
    r.n = n;
    r.rounds = rounds;
    pthread_barrier_init(&r.ready, NULL, (unsigned)n);
    for (int i = 0; i < n; i++) {
        r.s[i].ring = &r;
        r.s[i].id = i;
        r.s[i].jobs.n = jobs;
    }
    for (int i = 1; i < n; i++) pthread_create(&r.s[i].th, NULL, side_main, &r.s[i]);
    side_init(s0, jobs);
    CHECK_EQ(s0->init_rc, 0);
    pthread_barrier_wait(&r.ready); /* every loop is threadsafe: go */
    coro_call_soon_threadsafe(&r.s[1].L, &s0->to_next, token_cb, &r.s[1]);
    RUN_UNTIL(&s0->L, s0->stop && coro_task_done(&s0->jt), GUARD);
    CHECK(s0->stop);
    CHECK(coro_task_done(&s0->jt));
    for (int i = 1; i < n; i++) pthread_join(r.s[i].th, NULL);
    coro_loop_close(&s0->L);
    for (int i = 0; i < n; i++) {
        CHECK_EQ(r.s[i].init_rc, 0);
        CHECK_EQ(r.s[i].count, rounds);
        CHECK_EQ(r.s[i].wrong_thread, 0);
        CHECK_EQ(r.s[i].reports, 0);
        CHECK_EQ(r.s[i].jobs.bad, 0);
        CHECK_EQ(r.s[i].jobs.i, jobs);
    }
    pthread_barrier_destroy(&r.ready);
    CHECK_EQ(io_fd_count(), fds);
    CHECK_EQ(thread_count(), threads);
}

TEST(two_loops_on_two_threads_ping_pong_with_call_soon_threadsafe)
{
    ring_test(2, scaled(2000, 300), 0);
}

TEST(three_loops_pass_a_token_around_while_each_runs_its_own_to_thread_jobs)
{
    ring_test(3, scaled(500, 100), scaled(200, 30));
}

/* A loop that is busy (never blocks) sees a message as soon as it is
 * posted, maybe before its poster has left call_soon_threadsafe; here it
 * then closes and its memory is freed and scribbled over at once, before
 * the poster is joined. Closing waits for the poster to be out, so
 * nothing touches the freed loop (ASan/TSan builds would see it; the
 * window is a few instructions, hence the repetitions). */
struct busy_loop {
    coro_frame co; /* first */
    coro_loop L;
    coro_io io;
    coro_tcall t;
    int stop;
};

static int busy_fn(coro_ctx *c)
{
    struct busy_loop *b = CORO_SELF(c, struct busy_loop);
    CORO_BEGIN(c);
    while (!b->stop) CORO_YIELD(c);
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static void *post_stop(void *arg)
{
    struct busy_loop *b = (struct busy_loop *)arg;
    coro_call_soon_threadsafe(&b->L, &b->t, finished_cb, &b->stop);
    return NULL;
}

TEST(loop_closed_and_freed_right_after_a_message_is_not_touched_by_its_poster)
{
    int n = scaled(300, 20), fds = io_fd_count();
    WATCHDOG();
    for (int i = 0; i < n; i++) {
        struct busy_loop *b = (struct busy_loop *)calloc(1, sizeof *b);
        coro_task t;
        pthread_t th;
        CHECK_EQ(coro_io_init(&b->io, &b->L, NULL), 0);
        coro_io_threadsafe(&b->io);
        coro_spawn(&b->L, &t, coro_frame_init(&b->co, busy_fn));
        pthread_create(&th, NULL, post_stop, b);
        while (!coro_task_done(&t)) coro_loop_run_once(&b->L); /* never blocks */
        coro_loop_close(&b->L);
        memset(b, 0xa5, sizeof *b);
        free(b);
        pthread_join(th, NULL);
    }
    CHECK_EQ(io_fd_count(), fds);
}

/* ====================================================================== */
/* Host names in open_connection (resolved on the pool)                   */
/* ====================================================================== */

/* The server's handler: echoes lines until the end of the stream. */
struct echo {
    coro_frame co;
    coro_stream *s;
    coro_stream_op op;
    char line[CORO_STREAM_LIMIT + 1];
};

static int echo_fn(coro_ctx *c)
{
    struct echo *e = CORO_SELF(c, struct echo);
    CORO_BEGIN(c);
    for (;;) {
        CORO_AWAIT(c, coro_stream_readline(&e->op, e->s, e->line, sizeof e->line));
        if (c->rc <= 0) break;
        coro_stream_write(e->s, e->line, (size_t)c->rc);
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static coro_frame *echo_conn(coro_conn *conn, void *mem, void *arg)
{
    struct echo *e = (struct echo *)mem;
    (void)arg;
    e->s = coro_conn_stream(conn);
    return coro_frame_init(&e->co, echo_fn);
}

/* A client: open_connection(host, port), one line there and back. */
struct client {
    coro_frame co;
    const char *host;
    int port, open_rc, rc;
    coro_connect_op op;
    coro_stream s;
    coro_stream_op sop;
    char line[CORO_STREAM_LIMIT + 1];
};

static int client_fn(coro_ctx *c)
{
    struct client *k = CORO_SELF(c, struct client);
    CORO_BEGIN(c);
    CORO_AWAIT(c, coro_open_connection(&k->op, &k->s, k->host, k->port, 0));
    k->open_rc = c->rc;
    CORO_CHECK(c);
    coro_stream_write(&k->s, "ping\n", 5);
    CORO_AWAIT(c, coro_stream_readline(&k->sop, &k->s, k->line, sizeof k->line));
    k->rc = c->rc;
    coro_stream_close(&k->s);
    CORO_AWAIT(c, coro_stream_wait_closed(&k->sop, &k->s));
    coro_stream_free(&k->s);
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static coro_frame *client(struct client *k, const char *host, int port)
{
    memset(k, 0, sizeof *k);
    k->host = host;
    k->port = port;
    k->open_rc = k->rc = 1;
    return coro_frame_init(&k->co, client_fn);
}

/* Closes a server and runs until it is closed. */
static void server_stop(coro_loop *L, coro_server *srv)
{
    coro_server_close(srv);
    coro_server_close_clients(srv);
    WAIT_FOR(L, coro_future_done(coro_server_closed(srv)));
}

TEST(open_connection_resolves_localhost_on_the_pool_and_connects)
{
    coro_loop L;
    coro_io io;
    coro_server srv;
    coro_task t;
    struct client k;
    int threads = thread_count();
    WATCHDOG();
    IO_BEGIN(&L, &io);
    int lfd = coro_listen("127.0.0.1", 0, 0);
    CHECK(lfd >= 0);
    CHECK_EQ(coro_server_start_fd(&srv, &L, lfd, echo_conn, sizeof(struct echo), NULL, 0), 0);
    CHECK_EQ(run_task(&L, &t, client(&k, "localhost", coro_server_port(&srv))), 0);
    CHECK_EQ(k.open_rc, 0);
    CHECK_EQ(k.rc, 5);
    CHECK(!memcmp(k.line, "ping\n", 5));
    server_stop(&L, &srv);
    IO_END(&L);
    CHECK_EQ(thread_count(), threads);
}

TEST(open_connection_to_an_unknown_host_fails_with_ename)
{
    coro_loop L;
    coro_io io;
    coro_task t;
    struct client k;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    CHECK_EQ(run_task(&L, &t, client(&k, "no-such-host.invalid", 80)), CORO_ENAME);
    CHECK_EQ(k.open_rc, CORO_ENAME);
    IO_END(&L);
}

/* Cancelled while its resolution waits for a pool thread (every default
 * pool thread is held at a gate): CORO_ECANCELED, no fd left open, the
 * resolver never runs. */
TEST(open_connection_cancelled_while_resolution_is_queued_leaks_nothing)
{
    coro_loop L;
    coro_io io;
    coro_task t, jt[40];
    struct awaiter a[40];
    struct job j[40];
    struct gate g;
    struct client k;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    int nthreads = (int)(cpus > 0 ? cpus : 1) + 4; /* the default pool: min(32, CPUs + 4) */
    if (nthreads > 32) nthreads = 32;
    WATCHDOG();
    gate_init(&g);
    IO_BEGIN(&L, &io);
    for (int i = 0; i < nthreads; i++) {
        job_init(&j[i], i, &g);
        coro_spawn(&L, &jt[i], awaiter(&a[i], NULL, job_fn, &j[i]));
    }
    for (int i = 0; i < nthreads; i++) WAIT_STARTED(&L, &j[i]);
    coro_spawn(&L, &t, client(&k, "localhost", 0)); /* never reached */
    run_idle(&L, 5); /* resolution queued */
    CHECK(!coro_task_done(&t));
    coro_task_cancel(&L, &t);
    WAIT_FOR(&L, coro_task_done(&t));
    CHECK_EQ(k.open_rc, CORO_ECANCELED);
    CHECK(coro_task_cancelled(&t));
    gate_open(&g);
    WAIT_FOR(&L, coro_loop_task_count(&L) == 0);
    IO_END(&L);
    gate_destroy(&g);
}

/* Cancelled after 0, 1, 2... loop iterations (after 0 it never ran, as
 * an asyncio task cancelled before its first step): at any point of
 * resolving and connecting, it ends cancelled (or connected, then closed)
 * and no fd is left open. */
TEST(open_connection_cancelled_at_every_step_of_resolving_leaks_nothing)
{
    coro_loop L;
    coro_io io;
    coro_server srv;
    int cancelled = 0, connected = 0, n = scaled(60, 15);
    WATCHDOG();
    IO_BEGIN(&L, &io);
    int lfd = coro_listen("127.0.0.1", 0, 0);
    CHECK(lfd >= 0);
    CHECK_EQ(coro_server_start_fd(&srv, &L, lfd, echo_conn, sizeof(struct echo), NULL, 0), 0);
    for (int i = 0; i < n; i++) {
        coro_task t;
        struct client k;
        coro_spawn(&L, &t, client(&k, "localhost", coro_server_port(&srv)));
        for (int s = 0; s < i / 2 && !coro_task_done(&t); s++) coro_loop_run_once(&L);
        if (i % 2 && !coro_task_done(&t)) usleep(100); /* lets the resolver run */
        coro_task_cancel(&L, &t);
        WAIT_FOR(&L, coro_task_done(&t));
        if (k.open_rc == 0) /* a wait_closed cancelled: k (its close op) lives on until closed */
            WAIT_FOR(&L, coro_future_done(coro_stream_closed(&k.s)));
        if (coro_task_cancelled(&t)) { /* before its first step (open_rc still
                                        * 1), while opening, or after */
            cancelled++;
            CHECK(k.open_rc == 1 || k.open_rc == CORO_ECANCELED || k.open_rc == 0);
        } else {
            connected++;
            CHECK_EQ(k.open_rc, 0);
        }
    }
    CHECK(cancelled > 0);
    server_stop(&L, &srv);
    IO_END(&L);
}
