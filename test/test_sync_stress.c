/* test_sync_stress.c - seeded randomized stress of coro_sync.h: for each
 * primitive, a thousand-odd tasks with random yields and sleeps, random
 * forms (frame / fast-path macro / under a deadline), random cancellations
 * at random points by a chaos task, and targeted cancellations of tasks
 * that were just woken but have not run yet. The loop is driven by hand so
 * that invariants are checked between every two iterations; at the end of
 * every run the accounting must balance, no task may be left waiting (the
 * loop never runs dry: no CORO_EDEADLK), the loop must close without a
 * report. Seeds are fixed: every run is reproducible (the failing seed is
 * printed). */
#include "test.h"
#include "coro_sync.h"

#define OWNER(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* ---- random numbers: xorshift64*, one global stream per run */
static uint64_t rng_state;

static void rng_seed(uint64_t seed)
{
    rng_state = seed * 0x9E3779B97F4A7C15ull + 1;
}

static unsigned rnd(unsigned n)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (unsigned)((rng_state * 2685821657736338717ull) >> 33) % n;
}

static int chance(unsigned pct)
{
    return rnd(100) < pct;
}

/* STRESS_VERBOSE=1 in the environment prints each run's counters. */
#define STATS(...)                                                             \
    do {                                                                       \
        if (getenv("STRESS_VERBOSE")) {                                        \
            fprintf(stderr, "seed %llu: ", (unsigned long long)cur_seed);      \
            fprintf(stderr, __VA_ARGS__);                                      \
            fprintf(stderr, " (%lu iterations, %ld ms)\n", iter, test_ms(&L)); \
        }                                                                      \
    } while (0)

static const uint64_t seeds[] = {1, 0xC0FFEE, 20240917, 777, 31337};
#define NSEEDS (sizeof seeds / sizeof seeds[0])
static uint64_t cur_seed;

/* A check that names the seed (a failing stress run is replayed by seed). */
#define SCHECK(cond)                                                           \
    do {                                                                       \
        if (!(cond))                                                           \
            test__fail(__FILE__, __LINE__, "seed %llu: %s",                    \
                       (unsigned long long)cur_seed, #cond);                   \
    } while (0)

#define SCHECK_EQ(a, b)                                                        \
    do {                                                                       \
        long long s__a = (long long)(a), s__b = (long long)(b);                \
        if (s__a != s__b)                                                      \
            test__fail(__FILE__, __LINE__, "seed %llu: %s == %s: %lld != %lld", \
                       (unsigned long long)cur_seed, #a, #b, s__a, s__b);      \
    } while (0)

/* A random pause inside a body: nothing, a yield, or a 1-2 ms sleep. c->rc
 * is 0 afterwards unless the pause was cancelled. `r` is frame scratch. */
#define PAUSE(c, r)                                                            \
    do {                                                                       \
        (c)->rc = 0;                                                           \
        (r) = (int)rnd(4);                                                     \
        if ((r) == 1)                                                          \
            CORO_YIELD(c);                                                     \
        else if ((r) >= 2)                                                     \
            CORO_SLEEP(c, CORO_MS((r)-1));                                     \
    } while (0)

/* Leaves a worker's loop with the error of the last await. */
#define STOP(w, c)                                                             \
    {                                                                          \
        (w)->err = (c)->rc;                                                    \
        break;                                                                 \
    }

/* A longer random pause: nothing, a yield, or a 1-4 ms sleep. */
#define LONG_PAUSE(c, r)                                                       \
    do {                                                                       \
        (c)->rc = 0;                                                           \
        (r) = (int)rnd(6);                                                     \
        if ((r) == 1)                                                          \
            CORO_YIELD(c);                                                     \
        else if ((r) >= 2)                                                     \
            CORO_SLEEP(c, CORO_MS((r)-1));                                     \
    } while (0)

/* The chaos task: until *live drops to 0, pauses at random and cancels a
 * random task of tasks[0..n). */
struct chaos {
    coro_frame co;
    coro_task **tasks;
    int n, pct, r, cancels, max; /* max: stop cancelling after that many (0: no limit) */
    int *live;
};

static int chaos_fn(coro_ctx *c)
{
    struct chaos *f = CORO_SELF(c, struct chaos);
    CORO_BEGIN(c);
    while (*f->live > 0) {
        f->r = (int)rnd(3);
        if (f->r == 0)
            CORO_YIELD(c);
        else
            CORO_SLEEP(c, CORO_MS(f->r));
        if (chance((unsigned)f->pct) && (!f->max || f->cancels < f->max)) {
            coro_task *t = f->tasks[rnd((unsigned)f->n)];
            if (coro_task_cancel(c->loop, t)) f->cancels++;
        }
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

/* Drives a run by hand: checks `inv` between iterations until `main` is
 * done. Returns 0, or the run_once error (CORO_EDEADLK: something waits
 * forever). */
static unsigned long iter; /* loop iterations so far */

static int drive(coro_loop *L, coro_task *main, void (*inv)(void))
{
    int rc = 0;
    iter = 0;
    while (!coro_task_done(main)) {
        iter++;
        rc = coro_loop_run_once(L);
        if (rc < 0) break;
        inv();
    }
    return rc;
}

/* Ends a run: nothing may be left, nothing reported. */
static void finish(coro_loop *L, int drive_rc)
{
    SCHECK_EQ(drive_rc, 0);
    SCHECK_EQ(coro_loop_task_count(L), 0);
    SCHECK(!coro_loop_deadlocked(L));
    SCHECK_EQ(coro_loop_close(L), 0);
    SCHECK_EQ(test_reports(), 0);
}

/* ====================================================================== */
/* Lock                                                                    */
/* ====================================================================== */

enum { LK_N = 2000, LK_ROUNDS = 3 };

struct lw {
    coro_frame co;
    coro_task t;
    coro_lock_op op;
    coro_timeout tm;
    int round, r, mode, cancelled, err;
};

static struct lock_run {
    coro_lock lk;
    struct lw w[LK_N];
    coro_task *tasks[LK_N];
    int holders, max_holders, acquired, released, timeouts, cancels, live, woken_cancels;
    coro_task chaos_t;
    struct chaos chaos;
    coro_frame co;
    int i;
} *LR;

/* Cancels, with some probability, the first lock waiter if `op` just woke
 * it (its future completed by the release, the task not yet run). */
static void lock_wake_chaos(coro_loop *L, coro_waiter *first, int was_pending)
{
    if (!first || !was_pending || coro_future_state(&first->fut) != CORO_FUTURE_RESULT) return;
    if (chance(35)) {
        struct lw *w = OWNER(first, struct lw, op.w);
        if (coro_task_cancel(L, &w->t)) LR->woken_cancels++;
    }
}

static int lw_fn(coro_ctx *c)
{
    struct lw *w = CORO_SELF(c, struct lw);
    CORO_BEGIN(c);
    w->err = 0;
    for (w->round = 0; w->round < LK_ROUNDS; w->round++) {
        PAUSE(c, w->r);
        if (c->rc < 0) STOP(w, c);
        w->mode = (int)rnd(6);
        if (w->mode <= 1)
            CORO_AWAIT(c, coro_lock_acquire(&w->op, &LR->lk));
        else if (w->mode <= 3)
            CORO_LOCK_ACQUIRE(c, &w->op, &LR->lk);
        else if (w->mode == 4)
            CORO_TIMEOUT(c, &w->tm, CORO_MS(1 + rnd(6)),
                         CORO_AWAIT(c, coro_lock_acquire(&w->op, &LR->lk)));
        else
            CORO_TIMEOUT(c, &w->tm, CORO_MS(1 + rnd(6)), CORO_LOCK_ACQUIRE(c, &w->op, &LR->lk));
        if (c->rc == CORO_ETIMEDOUT) {
            LR->timeouts++;
            continue;
        }
        if (c->rc < 0) STOP(w, c);
        SCHECK(coro_lock_locked(&LR->lk));
        if (++LR->holders > LR->max_holders) LR->max_holders = LR->holders;
        LR->acquired++;
        PAUSE(c, w->r); /* the critical section; may be cancelled */
        w->cancelled = c->rc < 0;
        LR->holders--;
        {
            coro_waiter *first = coro__fifo_first(&LR->lk.waiters);
            int was_pending = first && !coro_future_done(&first->fut);
            SCHECK_EQ(coro_lock_release(c->loop, &LR->lk), 0);
            LR->released++;
            lock_wake_chaos(c->loop, first, was_pending);
        }
        if (w->cancelled) {
            c->rc = CORO_ECANCELED;
            STOP(w, c);
        }
    }
    LR->live--;
    if (w->err < 0) {
        SCHECK_EQ(w->err, CORO_ECANCELED);
        LR->cancels++;
        CORO_FAIL(c, w->err);
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

/* Between iterations: at most one holder, and no lost wake-up: an unlocked
 * lock with a live queued waiter has a woken (or cancelled) waiter that
 * will run and pass it on. */
static void lock_inv(void)
{
    int pending = 0, done = 0;
    SCHECK(LR->holders <= 1);
    for (coro__link *l = LR->lk.waiters.next; l != &LR->lk.waiters; l = l->next) {
        if (coro_future_done(&coro__waiter_of(l)->fut))
            done++;
        else
            pending++;
    }
    if (!coro_lock_locked(&LR->lk) && pending) SCHECK(done > 0);
    SCHECK_EQ(coro_lock_locked(&LR->lk), LR->holders); /* locked <=> held */
}

static int lock_main_fn(coro_ctx *c)
{
    struct lock_run *m = LR;
    CORO_BEGIN(c);
    for (m->i = 0; m->i < LK_N; m->i++) {
        coro_frame_init(&m->w[m->i].co, lw_fn);
        coro_spawn(c->loop, &m->w[m->i].t, &m->w[m->i].co);
        m->tasks[m->i] = &m->w[m->i].t;
    }
    m->chaos.tasks = m->tasks;
    m->chaos.n = LK_N;
    m->chaos.pct = 60;
    m->chaos.live = &m->live;
    coro_spawn(c->loop, &m->chaos_t, coro_frame_init(&m->chaos.co, chaos_fn));
    for (m->i = 0; m->i < LK_N; m->i++) CORO_AWAIT_TASK(c, &m->w[m->i].t);
    CORO_AWAIT_TASK(c, &m->chaos_t);
    CORO_RETURN(c, 0);
    CORO_END(c);
}

TEST(stress_lock)
{
    static struct lock_run run;
    for (unsigned s = 0; s < NSEEDS; s++) {
        coro_loop L;
        coro_task main;
        cur_seed = seeds[s];
        rng_seed(cur_seed);
        memset(&run, 0, sizeof run);
        LR = &run;
        coro_lock_init(&run.lk);
        run.live = LK_N;
        test_loop(&L);
        coro_spawn(&L, &main, coro_frame_init(&run.co, lock_main_fn));
        int rc = drive(&L, &main, lock_inv);
        STATS("lock: acquired %d timeouts %d cancels %d woken_cancels %d", run.acquired,
              run.timeouts, run.cancels, run.woken_cancels);
        SCHECK_EQ(coro_task_result(&main), 0);
        SCHECK_EQ(run.max_holders, 1);
        SCHECK_EQ(run.acquired, run.released);
        SCHECK(!coro_lock_locked(&run.lk));
        SCHECK(coro__fifo_empty(&run.lk.waiters));
        int cancelled = 0;
        for (int i = 0; i < LK_N; i++) cancelled += coro_task_cancelled(&run.w[i].t);
        SCHECK_EQ(cancelled, run.cancels);
        /* the run exercised what it is meant to */
        SCHECK(run.acquired > LK_N / 2);
        SCHECK(run.timeouts > 10);
        SCHECK(run.cancels > 10);
        SCHECK(run.woken_cancels > 5);
        finish(&L, rc);
    }
}

/* ====================================================================== */
/* Semaphore / BoundedSemaphore                                            */
/* ====================================================================== */

enum { SM_N = 2000, SM_ROUNDS = 3, SM_V = 3 };

struct smw {
    coro_frame co;
    coro_task t;
    coro_sem_op op;
    coro_timeout tm;
    int round, r, mode, cancelled, err;
};

static struct sem_run {
    coro_sem s;
    struct smw w[SM_N];
    coro_task *tasks[SM_N];
    int holders, max_holders, acquired, timeouts, cancels, live, woken_cancels;
    coro_task chaos_t;
    struct chaos chaos;
    coro_frame co;
    int i;
} *SR;

static int reserved_permits(void)
{
    int n = 0;
    for (coro__link *l = SR->s.waiters.next; l != &SR->s.waiters; l = l->next)
        if (coro_future_state(&coro__waiter_of(l)->fut) == CORO_FUTURE_RESULT) n++;
    return n;
}

static int smw_fn(coro_ctx *c)
{
    struct smw *w = CORO_SELF(c, struct smw);
    CORO_BEGIN(c);
    w->err = 0;
    for (w->round = 0; w->round < SM_ROUNDS; w->round++) {
        PAUSE(c, w->r);
        if (c->rc < 0) STOP(w, c);
        w->mode = (int)rnd(4);
        if (w->mode == 0)
            CORO_AWAIT(c, coro_sem_acquire(&w->op, &SR->s));
        else if (w->mode == 1)
            CORO_SEM_ACQUIRE(c, &w->op, &SR->s);
        else if (w->mode == 2)
            CORO_TIMEOUT(c, &w->tm, CORO_MS(1 + rnd(5)),
                         CORO_AWAIT(c, coro_sem_acquire(&w->op, &SR->s)));
        else
            CORO_TIMEOUT(c, &w->tm, CORO_MS(1 + rnd(5)), CORO_SEM_ACQUIRE(c, &w->op, &SR->s));
        if (c->rc == CORO_ETIMEDOUT) {
            SR->timeouts++;
            continue;
        }
        if (c->rc < 0) STOP(w, c);
        if (++SR->holders > SR->max_holders) SR->max_holders = SR->holders;
        SCHECK(SR->holders <= SM_V);
        SR->acquired++;
        PAUSE(c, w->r);
        w->cancelled = c->rc < 0;
        SR->holders--;
        {
            /* release, then maybe cancel a waiter the release just woke */
            coro_waiter *woke = NULL;
            for (coro__link *l = SR->s.waiters.next; l != &SR->s.waiters; l = l->next)
                if (!coro_future_done(&coro__waiter_of(l)->fut)) {
                    woke = coro__waiter_of(l);
                    break;
                }
            SCHECK_EQ(coro_sem_release(c->loop, &SR->s), 0);
            if (woke && coro_future_state(&woke->fut) == CORO_FUTURE_RESULT && chance(35)) {
                struct smw *o = OWNER(woke, struct smw, op.w);
                if (coro_task_cancel(c->loop, &o->t)) SR->woken_cancels++;
            }
        }
        if (w->cancelled) {
            c->rc = CORO_ECANCELED;
            STOP(w, c);
        }
    }
    SR->live--;
    if (w->err < 0) {
        SCHECK_EQ(w->err, CORO_ECANCELED);
        SR->cancels++;
        CORO_FAIL(c, w->err);
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

/* Between iterations: permits are conserved (value + holders + permits
 * reserved for woken waiters == initial), never more holders than permits,
 * and a free permit with a live queued waiter means a woken or cancelled
 * waiter will run and hand it on. */
static void sem_inv(void)
{
    int pending = 0, done = 0;
    for (coro__link *l = SR->s.waiters.next; l != &SR->s.waiters; l = l->next) {
        if (coro_future_done(&coro__waiter_of(l)->fut))
            done++;
        else
            pending++;
    }
    SCHECK(coro_sem_value(&SR->s) >= 0);
    SCHECK(SR->holders <= SM_V);
    SCHECK_EQ(coro_sem_value(&SR->s) + SR->holders + reserved_permits(), SM_V);
    if (coro_sem_value(&SR->s) > 0 && pending) SCHECK(done > 0);
}

static int sem_main_fn(coro_ctx *c)
{
    struct sem_run *m = SR;
    CORO_BEGIN(c);
    for (m->i = 0; m->i < SM_N; m->i++) {
        coro_spawn(c->loop, &m->w[m->i].t, coro_frame_init(&m->w[m->i].co, smw_fn));
        m->tasks[m->i] = &m->w[m->i].t;
    }
    m->chaos.tasks = m->tasks;
    m->chaos.n = SM_N;
    m->chaos.pct = 60;
    m->chaos.live = &m->live;
    coro_spawn(c->loop, &m->chaos_t, coro_frame_init(&m->chaos.co, chaos_fn));
    for (m->i = 0; m->i < SM_N; m->i++) CORO_AWAIT_TASK(c, &m->w[m->i].t);
    CORO_AWAIT_TASK(c, &m->chaos_t);
    CORO_RETURN(c, 0);
    CORO_END(c);
}

TEST(stress_semaphore)
{
    static struct sem_run run;
    for (unsigned s = 0; s < NSEEDS * 2; s++) {
        coro_loop L;
        coro_task main;
        cur_seed = seeds[s / 2] + s % 2;
        rng_seed(cur_seed);
        memset(&run, 0, sizeof run);
        SR = &run;
        if (s % 2)
            coro_bsem_init(&run.s, SM_V); /* BoundedSemaphore: no release may fail */
        else
            coro_sem_init(&run.s, SM_V);
        run.live = SM_N;
        test_loop(&L);
        coro_spawn(&L, &main, coro_frame_init(&run.co, sem_main_fn));
        int rc = drive(&L, &main, sem_inv);
        STATS("sem: acquired %d timeouts %d cancels %d woken_cancels %d", run.acquired,
              run.timeouts, run.cancels, run.woken_cancels);
        SCHECK_EQ(coro_task_result(&main), 0);
        SCHECK_EQ(run.max_holders, SM_V);
        SCHECK_EQ(run.holders, 0);
        SCHECK_EQ(coro_sem_value(&run.s), SM_V); /* value + holders == initial */
        SCHECK(coro__fifo_empty(&run.s.waiters));
        if (s % 2) SCHECK_EQ(coro_sem_release(&L, &run.s), CORO_EINVAL);
        SCHECK(run.timeouts > 10);
        SCHECK(run.cancels > 10);
        SCHECK(run.woken_cancels > 5);
        finish(&L, rc);
    }
}

/* ====================================================================== */
/* Queues                                                                  */
/* ====================================================================== */

enum { Q_PROD = 1000, Q_CONS = 1000, Q_ITEMS = 4, Q_IMMORTAL = 4, Q_MAX = 3 };

struct qsw {
    coro_frame co;
    coro_task t;
    coro_queue_op op;
    coro_timeout tm;
    coro_waiter *peek;
    unsigned long at;
    int id, i, r, mode, in, out, in_op, immortal, err;
};

static struct queue_run {
    coro_queue q;
    int buf[Q_MAX];
    struct qsw prod[Q_PROD], cons[Q_CONS];
    coro_task *tasks[Q_PROD + Q_CONS];
    unsigned char seen[Q_PROD * Q_ITEMS], put_ok[Q_PROD * Q_ITEMS];
    long long sum_put, sum_got;
    int n_put, n_got, timeouts, cancels, live, woken_cancels, drained;
    coro_task chaos_t;
    struct chaos chaos;
    coro_frame co;
    int i;
} *QR;

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The first waiter of a FIFO whose future is pending (the one a put / get
 * would wake). */
static coro_waiter *first_pending(coro__link *fifo)
{
    for (coro__link *l = fifo->next; l != fifo; l = l->next)
        if (!coro_future_done(&coro__waiter_of(l)->fut)) return coro__waiter_of(l);
    return NULL;
}

/* `w` was the first pending getter (putter) before our put (get), taken in
 * iteration `at`: if the operation did not suspend and woke it, cancel its
 * task now, before it runs (now and then). */
static void queue_wake_chaos(coro_loop *L, coro_waiter *w, unsigned long at)
{
    if (!w || at != iter || coro_future_state(&w->fut) != CORO_FUTURE_RESULT || !chance(40))
        return;
    struct qsw *o = OWNER(w, struct qsw, op.w);
    if (o->immortal) return;
    if (coro_task_cancel(L, &o->t)) QR->woken_cancels++;
}

static int qprod_fn(coro_ctx *c)
{
    struct qsw *w = CORO_SELF(c, struct qsw);
    CORO_BEGIN(c);
    w->err = 0;
    for (w->i = 0; w->i < Q_ITEMS; w->i++) {
        PAUSE(c, w->r);
        if (c->rc < 0) STOP(w, c);
        w->in = w->id * Q_ITEMS + w->i;
        w->mode = (int)rnd(4);
        {
            w->peek = first_pending(&QR->q.getters);
            w->at = iter;
            w->in_op = 1;
            if (w->mode == 0)
                CORO_AWAIT(c, coro_queue_put(&w->op, &QR->q, &w->in));
            else if (w->mode == 1)
                CORO_QUEUE_PUT(c, &w->op, &QR->q, &w->in);
            else if (w->mode == 2)
                CORO_TIMEOUT(c, &w->tm, CORO_MS(1 + rnd(5)),
                             CORO_AWAIT(c, coro_queue_put(&w->op, &QR->q, &w->in)));
            else
                CORO_TIMEOUT(c, &w->tm, CORO_MS(1 + rnd(5)),
                             CORO_QUEUE_PUT(c, &w->op, &QR->q, &w->in));
            w->in_op = 0;
            if (c->rc == 0) {
                QR->put_ok[w->in] = 1;
                QR->n_put++;
                QR->sum_put += w->in;
                queue_wake_chaos(c->loop, w->peek, w->at);
            }
        }
        if (c->rc == CORO_ETIMEDOUT) {
            QR->timeouts++;
            continue;
        }
        if (c->rc < 0) STOP(w, c);
    }
    QR->live--;
    if (w->err < 0) {
        SCHECK_EQ(w->err, CORO_ECANCELED);
        QR->cancels++;
        CORO_FAIL(c, w->err);
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static int qcons_fn(coro_ctx *c)
{
    struct qsw *w = CORO_SELF(c, struct qsw);
    CORO_BEGIN(c);
    for (;;) {
        PAUSE(c, w->r);
        if (c->rc < 0) break;
        w->mode = w->immortal ? (int)rnd(2) : (int)rnd(4);
        {
            w->peek = first_pending(&QR->q.putters);
            w->at = iter;
            w->in_op = 1;
            w->out = -1;
            if (w->mode == 0)
                CORO_AWAIT(c, coro_queue_get(&w->op, &QR->q, &w->out));
            else if (w->mode == 1)
                CORO_QUEUE_GET(c, &w->op, &QR->q, &w->out);
            else if (w->mode == 2)
                CORO_TIMEOUT(c, &w->tm, CORO_MS(1 + rnd(5)),
                             CORO_AWAIT(c, coro_queue_get(&w->op, &QR->q, &w->out)));
            else
                CORO_TIMEOUT(c, &w->tm, CORO_MS(1 + rnd(5)),
                             CORO_QUEUE_GET(c, &w->op, &QR->q, &w->out));
            w->in_op = 0;
            if (c->rc == 0) {
                SCHECK(w->out >= 0 && w->out < Q_PROD * Q_ITEMS);
                if (w->out >= 0 && w->out < Q_PROD * Q_ITEMS) {
                    SCHECK(QR->put_ok[w->out]);
                    QR->seen[w->out]++;
                }
                QR->n_got++;
                QR->sum_got += w->out;
                SCHECK_EQ(coro_queue_task_done(c->loop, &QR->q), 0);
                queue_wake_chaos(c->loop, w->peek, w->at);
            }
        }
        if (c->rc == CORO_ETIMEDOUT) {
            QR->timeouts++;
            continue;
        }
        if (c->rc < 0) break;
    }
    if (c->rc == CORO_ESHUTDOWN) CORO_RETURN(c, 0);
    SCHECK_EQ(c->rc, CORO_ECANCELED);
    SCHECK(!w->immortal);
    QR->cancels++;
    CORO_FAIL(c, c->rc);
    CORO_END(c);
}

/* Between iterations, before the shutdown: no item stranded and no slot
 * wasted: while a getter waits with a pending future, every queued item
 * has a woken getter on its way; while a putter waits, every free slot has
 * a woken putter on its way. */
static void queue_inv(void)
{
    int pend_g = 0, pend_p = 0, woke_g = 0, woke_p = 0;
    coro_queue *q = &QR->q;
    SCHECK(coro_queue_qsize(q) <= Q_MAX);
    if (q->shutdown) return;
    for (coro__link *l = q->getters.next; l != &q->getters; l = l->next)
        pend_g += !coro_future_done(&coro__waiter_of(l)->fut);
    for (coro__link *l = q->putters.next; l != &q->putters; l = l->next)
        pend_p += !coro_future_done(&coro__waiter_of(l)->fut);
    for (int i = 0; i < Q_CONS; i++)
        woke_g += QR->cons[i].in_op && !coro_task_done(&QR->cons[i].t) &&
                  coro_future_state(&QR->cons[i].op.w.fut) == CORO_FUTURE_RESULT;
    for (int i = 0; i < Q_PROD; i++)
        woke_p += QR->prod[i].in_op && !coro_task_done(&QR->prod[i].t) &&
                  coro_future_state(&QR->prod[i].op.w.fut) == CORO_FUTURE_RESULT;
    if (pend_g) SCHECK((int)coro_queue_qsize(q) <= woke_g);
    if (pend_p) SCHECK(Q_MAX - (int)coro_queue_qsize(q) <= woke_p);
}

static int queue_main_fn(coro_ctx *c)
{
    struct queue_run *m = QR;
    CORO_BEGIN(c);
    for (m->i = 0; m->i < Q_PROD; m->i++) {
        m->prod[m->i].id = m->i;
        coro_spawn(c->loop, &m->prod[m->i].t, coro_frame_init(&m->prod[m->i].co, qprod_fn));
        m->tasks[m->i] = &m->prod[m->i].t;
    }
    for (m->i = 0; m->i < Q_CONS; m->i++) {
        m->cons[m->i].immortal = m->i < Q_IMMORTAL;
        coro_spawn(c->loop, &m->cons[m->i].t, coro_frame_init(&m->cons[m->i].co, qcons_fn));
        /* the chaos task never picks the immortal consumers */
        m->tasks[Q_PROD + m->i] = m->i < Q_IMMORTAL ? &m->prod[m->i].t : &m->cons[m->i].t;
    }
    m->chaos.tasks = m->tasks;
    m->chaos.n = Q_PROD + Q_CONS;
    m->chaos.pct = 50;
    m->chaos.live = &m->live;
    coro_spawn(c->loop, &m->chaos_t, coro_frame_init(&m->chaos.co, chaos_fn));
    for (m->i = 0; m->i < Q_PROD; m->i++) CORO_AWAIT_TASK(c, &m->prod[m->i].t);
    CORO_AWAIT_TASK(c, &m->chaos_t);
    coro_queue_shutdown(c->loop, &m->q, 0); /* consumers drain, then stop */
    for (m->i = 0; m->i < Q_CONS; m->i++) CORO_AWAIT_TASK(c, &m->cons[m->i].t);
    CORO_RETURN(c, 0);
    CORO_END(c);
}

TEST(stress_queue_fifo_lifo_prio)
{
    static struct queue_run run;
    for (int kind = 0; kind < 3; kind++)
        for (unsigned s = 0; s < NSEEDS; s++) {
            coro_loop L;
            coro_task main;
            int v;
            cur_seed = seeds[s] * 3 + (uint64_t)kind;
            rng_seed(cur_seed);
            memset(&run, 0, sizeof run);
            QR = &run;
            SCHECK_EQ(coro_queue_init(&run.q, kind, run.buf, sizeof(int), Q_MAX, Q_MAX, cmp_int), 0);
            run.live = Q_PROD;
            test_loop(&L);
            coro_spawn(&L, &main, coro_frame_init(&run.co, queue_main_fn));
            int rc = drive(&L, &main, queue_inv);
            STATS("queue %d: put %d got %d timeouts %d cancels %d woken_cancels %d", kind,
                  run.n_put, run.n_got, run.timeouts, run.cancels, run.woken_cancels);
            SCHECK_EQ(coro_task_result(&main), 0);
            while (coro_queue_get_nowait(&L, &run.q, &v) == 0) { /* left over */
                run.seen[v]++;
                run.n_got++;
                run.sum_got += v;
                run.drained++;
                coro_queue_task_done(&L, &run.q);
            }
            SCHECK_EQ(run.drained, 0); /* the immortal consumers drained it */
            /* every item put was got exactly once; no other item appeared */
            int dup = 0, lost = 0, ghost = 0;
            for (int i = 0; i < Q_PROD * Q_ITEMS; i++) {
                if (run.put_ok[i] && run.seen[i] > 1) dup++;
                if (run.put_ok[i] && run.seen[i] == 0) lost++;
                if (!run.put_ok[i] && run.seen[i]) ghost++;
            }
            SCHECK_EQ(dup, 0);
            SCHECK_EQ(lost, 0);
            SCHECK_EQ(ghost, 0);
            SCHECK_EQ(run.n_put, run.n_got);
            SCHECK_EQ(run.sum_put, run.sum_got);
            SCHECK_EQ(run.q.unfinished, 0);
            SCHECK(coro__fifo_empty(&run.q.getters) && coro__fifo_empty(&run.q.putters));
            /* join() would return at once: nothing unfinished */
            SCHECK(coro_event_is_set(&run.q.finished));
            SCHECK(run.n_put > Q_PROD);
            SCHECK(run.timeouts > 10);
            SCHECK(run.cancels > 10);
            SCHECK(run.woken_cancels > 3);
            finish(&L, rc);
        }
}

/* ====================================================================== */
/* Condition                                                               */
/* ====================================================================== */

enum { CV_PROD = 500, CV_ITEMS = 4, CV_CONS = 500, CV_IMMORTAL = 3 };

struct cvw {
    coro_frame co;
    coro_task t;
    coro_lock_op lop;
    coro_cond_op cop;
    coro_timeout tm;
    int i, r, mode, in_wait, immortal, consumed;
};

static struct cond_run {
    coro_cond cv;
    struct cvw prod[CV_PROD], cons[CV_CONS];
    coro_task *tasks[CV_PROD + CV_CONS];
    int items, produced, consumed, done, live, cancels, timeouts, woken_cancels, stranded;
    int tight; /* no timeouts, no random cancels: only notified-then-cancelled */
    coro_task chaos_t;
    struct chaos chaos;
    coro_lock_op lop;
    coro_frame co;
    int i;
} *CR;

static int cv_pred(void *arg)
{
    (void)arg;
    return CR->items > 0 || CR->done;
}

static int cvprod_fn(coro_ctx *c)
{
    struct cvw *w = CORO_SELF(c, struct cvw);
    CORO_BEGIN(c);
    for (w->i = 0; w->i < CV_ITEMS; w->i++) {
        LONG_PAUSE(c, w->r);
        if (c->rc < 0) break;
        if (rnd(2))
            CORO_AWAIT(c, coro_lock_acquire(&w->lop, coro_cond_lock(&CR->cv)));
        else
            CORO_LOCK_ACQUIRE(c, &w->lop, coro_cond_lock(&CR->cv));
        if (c->rc < 0) break;
        CR->items++;
        CR->produced++;
        {
            coro__link *fifo = &CR->cv.waiters;
            coro_waiter *first = first_pending(fifo);
            SCHECK_EQ(coro_cond_notify(c->loop, &CR->cv, 1), 0);
            if (first && chance(70)) { /* notified, not yet run: cancel it */
                struct cvw *o = OWNER(first, struct cvw, cop.w);
                if (!o->immortal && coro_task_cancel(c->loop, &o->t)) CR->woken_cancels++;
            }
        }
        c->rc = 0;
        if (chance(20)) CORO_YIELD(c); /* still holding the lock */
        SCHECK_EQ(coro_lock_release(c->loop, coro_cond_lock(&CR->cv)), 0);
        if (c->rc < 0) break;
    }
    CR->live--;
    if (c->rc < 0) {
        CR->cancels++;
        CORO_FAIL(c, c->rc);
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static int cvcons_fn(coro_ctx *c)
{
    struct cvw *w = CORO_SELF(c, struct cvw);
    CORO_BEGIN(c);
    for (;;) {
        PAUSE(c, w->r);
        if (c->rc < 0) break;
        CORO_AWAIT(c, coro_lock_acquire(&w->lop, coro_cond_lock(&CR->cv)));
        if (c->rc < 0) break;
        w->mode = w->immortal || CR->tight ? 0 : (int)rnd(3);
        w->in_wait = 1;
        if (w->mode == 2)
            CORO_TIMEOUT(c, &w->tm, CORO_MS(1 + rnd(4)),
                         CORO_AWAIT(c, coro_cond_wait_for(&w->cop, &CR->cv, cv_pred, NULL)));
        else
            CORO_AWAIT(c, coro_cond_wait_for(&w->cop, &CR->cv, cv_pred, NULL));
        w->in_wait = 0;
        SCHECK(coro_lock_locked(coro_cond_lock(&CR->cv))); /* held, even on error */
        if (c->rc == CORO_ETIMEDOUT) {
            CR->timeouts++;
            SCHECK_EQ(coro_lock_release(c->loop, coro_cond_lock(&CR->cv)), 0);
            continue;
        }
        if (c->rc < 0) {
            SCHECK_EQ(coro_lock_release(c->loop, coro_cond_lock(&CR->cv)), 0);
            break;
        }
        if (CR->items > 0) {
            CR->items--;
            CR->consumed++;
            w->consumed++;
            SCHECK_EQ(coro_lock_release(c->loop, coro_cond_lock(&CR->cv)), 0);
            continue;
        }
        SCHECK(CR->done);
        SCHECK_EQ(coro_lock_release(c->loop, coro_cond_lock(&CR->cv)), 0);
        CORO_RETURN(c, 0);
    }
    SCHECK_EQ(c->rc, CORO_ECANCELED);
    SCHECK(!w->immortal);
    CR->cancels++;
    CORO_FAIL(c, c->rc);
    CORO_END(c);
}

/* Between iterations: no lost notification. While a consumer waits with a
 * pending future, every unconsumed item has a notified consumer (future
 * done: woken, or failing and passing it on) that has not run yet. */
static void cond_inv(void)
{
    int pend = 0, woke = 0;
    if (CR->done) return;
    SCHECK(CR->items >= 0);
    for (int i = 0; i < CV_CONS; i++) {
        struct cvw *w = &CR->cons[i];
        if (!w->in_wait || coro_task_done(&w->t)) continue;
        if (coro_future_done(&w->cop.w.fut))
            woke++;
        else
            pend++;
    }
    if (pend) SCHECK(CR->items <= woke);
}

static int cond_main_fn(coro_ctx *c)
{
    struct cond_run *m = CR;
    CORO_BEGIN(c);
    for (m->i = 0; m->i < CV_PROD; m->i++) {
        coro_spawn(c->loop, &m->prod[m->i].t, coro_frame_init(&m->prod[m->i].co, cvprod_fn));
        m->tasks[m->i] = &m->prod[m->i].t;
    }
    for (m->i = 0; m->i < CV_CONS; m->i++) {
        m->cons[m->i].immortal = m->i < CV_IMMORTAL;
        coro_spawn(c->loop, &m->cons[m->i].t, coro_frame_init(&m->cons[m->i].co, cvcons_fn));
        m->tasks[CV_PROD + m->i] = m->i < CV_IMMORTAL ? &m->prod[m->i].t : &m->cons[m->i].t;
    }
    m->chaos.tasks = m->tasks;
    m->chaos.n = CV_PROD + CV_CONS;
    m->chaos.pct = m->tight ? 0 : 50;
    m->chaos.live = &m->live;
    coro_spawn(c->loop, &m->chaos_t, coro_frame_init(&m->chaos.co, chaos_fn));
    for (m->i = 0; m->i < CV_PROD; m->i++) CORO_AWAIT_TASK(c, &m->prod[m->i].t);
    CORO_AWAIT_TASK(c, &m->chaos_t);
    /* Production is over. With no lost notification the consumers take
     * every item on their own: nothing is left after a quiet while, or no
     * consumer waits (a lost notify strands an item while they sleep). */
    CORO_SLEEP(c, CORO_MS(50));
    {
        int pend = 0;
        for (int i = 0; i < CV_CONS; i++)
            pend += m->cons[i].in_wait && !coro_task_done(&m->cons[i].t);
        if (pend) SCHECK_EQ(m->items, 0);
        m->stranded = pend ? m->items : 0;
    }
    CORO_AWAIT(c, coro_lock_acquire(&m->lop, coro_cond_lock(&m->cv)));
    m->done = 1;
    SCHECK_EQ(coro_cond_notify_all(c->loop, &m->cv), 0);
    SCHECK_EQ(coro_lock_release(c->loop, coro_cond_lock(&m->cv)), 0);
    for (m->i = 0; m->i < CV_CONS; m->i++) CORO_AWAIT_TASK(c, &m->cons[m->i].t);
    CORO_RETURN(c, 0);
    CORO_END(c);
}

TEST(stress_condition)
{
    static struct cond_run run;
    for (unsigned s = 0; s < NSEEDS * 2; s++) {
        coro_loop L;
        coro_task main;
        cur_seed = seeds[s / 2] + 7 + s % 2;
        rng_seed(cur_seed);
        memset(&run, 0, sizeof run);
        CR = &run;
        run.tight = s % 2;
        coro_cond_init(&run.cv, NULL);
        run.live = CV_PROD;
        test_loop(&L);
        coro_spawn(&L, &main, coro_frame_init(&run.co, cond_main_fn));
        int rc = drive(&L, &main, cond_inv);
        STATS("cond%s: produced %d consumed %d timeouts %d cancels %d woken_cancels %d",
              run.tight ? " tight" : "", run.produced, run.consumed, run.timeouts, run.cancels,
              run.woken_cancels);
        SCHECK_EQ(coro_task_result(&main), 0);
        SCHECK_EQ(run.items, 0);
        SCHECK_EQ(run.produced, run.consumed); /* producer/consumer counts match */
        int per = 0;
        for (int i = 0; i < CV_CONS; i++) per += run.cons[i].consumed;
        SCHECK_EQ(per, run.consumed);
        SCHECK(!coro_lock_locked(coro_cond_lock(&run.cv)));
        SCHECK(coro__fifo_empty(&run.cv.waiters));
        SCHECK(run.produced > CV_PROD);
        SCHECK(run.cancels > 10);
        SCHECK(run.woken_cancels > 2);
        if (!run.tight) SCHECK(run.timeouts > 10);
        finish(&L, rc);
    }
}

/* ====================================================================== */
/* Event                                                                   */
/* ====================================================================== */

enum { EV_N = 2000, EV_ROUNDS = 5 };

struct evsw {
    coro_frame co;
    coro_task t;
    coro_event_op op;
    coro_timeout tm;
    int i, r, in_wait, err;
};

static struct event_run {
    coro_event e;
    struct evsw w[EV_N];
    coro_task *tasks[EV_N];
    int live, woke, cancels, timeouts, woken_cancels, sets, closing;
    coro_task chaos_t, setter_t;
    struct chaos chaos;
    struct setter {
        coro_frame co;
        int r;
    } setter;
    coro_frame co;
    int i;
} *ER;

static int evsw_fn(coro_ctx *c)
{
    struct evsw *w = CORO_SELF(c, struct evsw);
    CORO_BEGIN(c);
    w->err = 0;
    for (w->i = 0; w->i < EV_ROUNDS; w->i++) {
        PAUSE(c, w->r);
        if (c->rc < 0) STOP(w, c);
        w->in_wait = 1;
        if (rnd(3) == 0)
            CORO_TIMEOUT(c, &w->tm, CORO_MS(1 + rnd(4)), CORO_AWAIT(c, coro_event_wait(&w->op, &ER->e)));
        else
            CORO_AWAIT(c, coro_event_wait(&w->op, &ER->e));
        w->in_wait = 0;
        if (c->rc == CORO_ETIMEDOUT) {
            ER->timeouts++;
            continue;
        }
        if (c->rc < 0) STOP(w, c);
        ER->woke++;
    }
    ER->live--;
    if (w->err < 0) {
        SCHECK_EQ(w->err, CORO_ECANCELED);
        ER->cancels++;
        CORO_FAIL(c, w->err);
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

/* Sets and clears at random; right after a set, cancels some of the
 * waiters it woke (woken, not yet run). Sets for good once all are done. */
static int setter_fn(coro_ctx *c)
{
    struct setter *f = CORO_SELF(c, struct setter);
    CORO_BEGIN(c);
    while (ER->live > 0) {
        f->r = (int)rnd(3);
        if (f->r == 0)
            CORO_SLEEP(c, CORO_MS(1));
        else
            CORO_YIELD(c);
        if (coro_event_is_set(&ER->e)) {
            coro_event_clear(&ER->e);
        } else {
            coro_event_set(c->loop, &ER->e);
            ER->sets++;
            for (coro__link *l = ER->e.waiters.next; l != &ER->e.waiters; l = l->next)
                if (chance(10)) {
                    struct evsw *o = OWNER(coro__waiter_of(l), struct evsw, op.w);
                    if (coro_task_cancel(c->loop, &o->t)) ER->woken_cancels++;
                }
        }
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

/* Between iterations: a set event has no waiter left with a pending
 * future (set() wakes all; later waits return at once). */
static void event_inv(void)
{
    if (!coro_event_is_set(&ER->e)) return;
    for (coro__link *l = ER->e.waiters.next; l != &ER->e.waiters; l = l->next)
        SCHECK(coro_future_done(&coro__waiter_of(l)->fut));
}

static int event_main_fn(coro_ctx *c)
{
    struct event_run *m = ER;
    CORO_BEGIN(c);
    for (m->i = 0; m->i < EV_N; m->i++) {
        coro_spawn(c->loop, &m->w[m->i].t, coro_frame_init(&m->w[m->i].co, evsw_fn));
        m->tasks[m->i] = &m->w[m->i].t;
    }
    m->chaos.tasks = m->tasks;
    m->chaos.n = EV_N;
    m->chaos.pct = 40;
    m->chaos.live = &m->live;
    coro_spawn(c->loop, &m->chaos_t, coro_frame_init(&m->chaos.co, chaos_fn));
    coro_spawn(c->loop, &m->setter_t, coro_frame_init(&m->setter.co, setter_fn));
    for (m->i = 0; m->i < EV_N; m->i++) CORO_AWAIT_TASK(c, &m->w[m->i].t);
    CORO_AWAIT_TASK(c, &m->chaos_t);
    CORO_AWAIT_TASK(c, &m->setter_t);
    CORO_RETURN(c, 0);
    CORO_END(c);
}

TEST(stress_event)
{
    static struct event_run run;
    for (unsigned s = 0; s < NSEEDS; s++) {
        coro_loop L;
        coro_task main;
        cur_seed = seeds[s] + 11;
        rng_seed(cur_seed);
        memset(&run, 0, sizeof run);
        ER = &run;
        coro_event_init(&run.e);
        run.live = EV_N;
        test_loop(&L);
        coro_spawn(&L, &main, coro_frame_init(&run.co, event_main_fn));
        int rc = drive(&L, &main, event_inv);
        STATS("event: woke %d sets %d timeouts %d cancels %d woken_cancels %d", run.woke,
              run.sets, run.timeouts, run.cancels, run.woken_cancels);
        SCHECK_EQ(coro_task_result(&main), 0);
        SCHECK(coro__fifo_empty(&run.e.waiters));
        int cancelled = 0;
        for (int i = 0; i < EV_N; i++) cancelled += coro_task_cancelled(&run.w[i].t);
        SCHECK_EQ(cancelled, run.cancels);
        SCHECK(run.woke > EV_N);
        SCHECK(run.timeouts > 10);
        SCHECK(run.cancels > 10);
        SCHECK(run.woken_cancels > 5);
        finish(&L, rc);
    }
}

/* ====================================================================== */
/* Barrier                                                                 */
/* ====================================================================== */

enum { BR_N = 64, BR_ROUNDS = 30, BR_MAXTRIPS = BR_N * BR_ROUNDS };

struct brw {
    coro_frame co;
    coro_task t;
    coro_barrier_op op;
    coro_timeout tm;
    int i, r, err;
};

static struct barrier_run {
    coro_barrier b;
    int parties, chaos_on;
    struct brw w[BR_N];
    coro_task *tasks[BR_N];
    /* per round (trip): how many parties returned each index */
    unsigned char idx[BR_MAXTRIPS + 1][8];
    int trips, ok, broken, cancels, timeouts, live, resets, stuck, woken_cancels;
    coro_task chaos_t, ctl_t;
    struct chaos chaos;
    struct brctl {
        coro_frame co;
        coro_barrier_op op;
        int r;
    } ctl;
    coro_frame co;
    int i;
} *BR;

static int brw_fn(coro_ctx *c)
{
    struct brw *w = CORO_SELF(c, struct brw);
    CORO_BEGIN(c);
    w->err = 0;
    for (w->i = 0; w->i < BR_ROUNDS; w->i++) {
        LONG_PAUSE(c, w->r);
        if (c->rc < 0) STOP(w, c);
        if (BR->chaos_on && rnd(2) == 0)
            CORO_TIMEOUT(c, &w->tm, CORO_MS(1 + rnd(3)), CORO_AWAIT(c, coro_barrier_wait(&w->op, &BR->b)));
        else
            CORO_AWAIT(c, coro_barrier_wait(&w->op, &BR->b));
        if (c->rc >= 0) {
            SCHECK(c->rc < BR->parties);
            if (c->rc == BR->parties - 1) {
                BR->trips++; /* the tripping party returns first */
                /* with chaos: cancel a party this trip just woke */
                for (coro__link *l = BR->b.cond.waiters.next; l != &BR->b.cond.waiters; l = l->next) {
                    coro_waiter *cw = coro__waiter_of(l);
                    if (!BR->chaos_on || BR->woken_cancels >= BR_N / 8) break;
                    if (coro_future_state(&cw->fut) == CORO_FUTURE_RESULT && chance(20)) {
                        struct brw *o = OWNER(cw, struct brw, op.cw.w);
                        if (coro_task_cancel(c->loop, &o->t)) BR->woken_cancels++;
                    }
                }
            }
            if (BR->trips <= BR_MAXTRIPS && c->rc < 8) BR->idx[BR->trips][c->rc]++;
            BR->ok++;
            continue;
        }
        if (c->rc == CORO_EBROKEN) {
            BR->broken++;
            continue;
        }
        if (c->rc == CORO_ETIMEDOUT) {
            BR->timeouts++;
            continue;
        }
        STOP(w, c);
    }
    BR->live--;
    if (w->err < 0) {
        SCHECK_EQ(w->err, CORO_ECANCELED);
        BR->cancels++;
        CORO_FAIL(c, w->err);
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

/* With chaos on: resets the barrier now and then; in every run, once the
 * parties are all done or stuck (no task can complete a round any more),
 * aborts it so the stragglers leave with EBROKEN. */
static int brctl_fn(coro_ctx *c)
{
    struct brctl *f = CORO_SELF(c, struct brctl);
    CORO_BEGIN(c);
    for (;;) {
        CORO_SLEEP(c, CORO_MS(3 + rnd(6)));
        if (BR->live == 0) break;
        if (test_ms(c->loop) > 2000) { /* parties wait forever: a lost wake-up */
            BR->stuck = 1;
            CORO_AWAIT(c, coro_barrier_abort(&f->op, &BR->b));
            continue;
        }
        if ((int)coro_barrier_n_waiting(&BR->b) == BR->live && BR->live < BR->parties) {
            CORO_AWAIT(c, coro_barrier_abort(&f->op, &BR->b));
            SCHECK_EQ(c->rc, 0);
            continue;
        }
        if (BR->chaos_on && chance(50)) {
            CORO_AWAIT(c, coro_barrier_reset(&f->op, &BR->b));
            SCHECK_EQ(c->rc, 0);
            BR->resets++;
        }
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static void barrier_inv(void)
{
    SCHECK(coro_barrier_n_waiting(&BR->b) <= (unsigned)BR->parties);
}

static int barrier_main_fn(coro_ctx *c)
{
    struct barrier_run *m = BR;
    CORO_BEGIN(c);
    for (m->i = 0; m->i < BR_N; m->i++) {
        coro_spawn(c->loop, &m->w[m->i].t, coro_frame_init(&m->w[m->i].co, brw_fn));
        m->tasks[m->i] = &m->w[m->i].t;
    }
    m->chaos.tasks = m->tasks;
    m->chaos.n = BR_N;
    m->chaos.pct = m->chaos_on ? 50 : 0;
    m->chaos.max = BR_N / 4; /* the others must finish their rounds */
    m->chaos.live = &m->live;
    coro_spawn(c->loop, &m->chaos_t, coro_frame_init(&m->chaos.co, chaos_fn));
    coro_spawn(c->loop, &m->ctl_t, coro_frame_init(&m->ctl.co, brctl_fn));
    for (m->i = 0; m->i < BR_N; m->i++) CORO_AWAIT_TASK(c, &m->w[m->i].t);
    CORO_AWAIT_TASK(c, &m->chaos_t);
    CORO_AWAIT_TASK(c, &m->ctl_t);
    CORO_RETURN(c, 0);
    CORO_END(c);
}

TEST(stress_barrier)
{
    static struct barrier_run run;
    for (int chaos_on = 0; chaos_on < 2; chaos_on++)
        for (unsigned s = 0; s < NSEEDS; s++) {
            coro_loop L;
            coro_task main;
            cur_seed = seeds[s] + 13 + (uint64_t)chaos_on;
            rng_seed(cur_seed);
            memset(&run, 0, sizeof run);
            BR = &run;
            run.parties = 3 + (int)(s % 3); /* 3, 4, 5 */
            run.chaos_on = chaos_on;
            SCHECK_EQ(coro_barrier_init(&run.b, run.parties), 0);
            run.live = BR_N;
            test_loop(&L);
            coro_spawn(&L, &main, coro_frame_init(&run.co, barrier_main_fn));
            int rc = drive(&L, &main, barrier_inv);
            STATS("barrier %d/%d: trips %d ok %d broken %d timeouts %d cancels %d resets %d "
                  "woken_cancels %d",
                  run.parties, chaos_on, run.trips, run.ok, run.broken, run.timeouts,
                  run.cancels, run.resets, run.woken_cancels);
            SCHECK_EQ(coro_task_result(&main), 0);
            SCHECK(run.trips > 0);
            /* every round: exactly one tripper; at most `parties` returns */
            int bad_round = 0, not_perm = 0, returns = 0;
            for (int t = 1; t <= run.trips && t <= BR_MAXTRIPS; t++) {
                int n = 0;
                for (int i = 0; i < run.parties; i++) n += run.idx[t][i];
                returns += n;
                if (run.idx[t][run.parties - 1] != 1 || n > run.parties) bad_round++;
                for (int i = 0; i < run.parties; i++)
                    if (run.idx[t][i] != 1) {
                        not_perm++;
                        break;
                    }
            }
            SCHECK_EQ(bad_round, 0);
            SCHECK_EQ(returns, run.ok);
            SCHECK_EQ(run.stuck, 0);
            /* most waits went through */
            SCHECK(run.ok > BR_N * BR_ROUNDS / 2);
            if (!chaos_on) {
                /* no cancellation: every round is a permutation of 0..P-1
                 * and every wait either passed or was broken at the end */
                SCHECK_EQ(not_perm, 0);
                SCHECK_EQ(run.cancels, 0);
                SCHECK_EQ(run.timeouts, 0);
                SCHECK_EQ(run.ok % run.parties, 0);
                SCHECK_EQ(run.ok + run.broken, BR_N * BR_ROUNDS);
                /* only the stragglers of the end (fewer than `parties`
                 * left, all waiting) were broken by the final abort */
                SCHECK(run.broken < run.parties * BR_ROUNDS);
            } else {
                SCHECK(run.cancels > 5);
                SCHECK(run.timeouts > 5);
                SCHECK(run.resets > 0);
                SCHECK(run.woken_cancels > 0);
                SCHECK(not_perm > 0); /* cancellations before a trip reuse indices */
            }
            SCHECK_EQ(coro_barrier_n_waiting(&run.b), 0);
            SCHECK(!coro_lock_locked(coro_cond_lock(&run.b.cond)));
            SCHECK(coro__fifo_empty(&run.b.cond.waiters));
            finish(&L, rc);
        }
}

/* ====================================================================== */
/* Scheduler                                                               */
/* ====================================================================== */

enum { SC_N = 2500, SC_LIMIT = 7 };

struct scj {
    coro_frame co;
    coro_job j;
    coro_event_op eop;
    int id, start_seq, ms, fail, on_event;
};

static struct sched_run {
    coro_sched s;
    struct scj jobs[SC_N];
    coro_event ev;
    int running, max_running, started, failed, cancelled, ok, spawned;
    int start_order_ok;
    struct spawner {
        coro_frame co;
        int i, r;
    } sp;
    struct killer {
        coro_frame co;
        int r;
    } k;
    coro_task sp_t, k_t;
    coro_sched_op op;
    coro_frame co;
    int last_start_id;
} *SCR;

static int scj_fn(coro_ctx *c)
{
    struct scj *f = CORO_SELF(c, struct scj);
    CORO_BEGIN(c);
    if (++SCR->running > SCR->max_running) SCR->max_running = SCR->running;
    SCHECK(SCR->running <= SC_LIMIT);
    SCHECK(f->id > SCR->last_start_id); /* jobs start in spawn order */
    SCR->last_start_id = f->id;
    SCR->started++;
    if (f->on_event)
        CORO_AWAIT(c, coro_event_wait(&f->eop, &SCR->ev));
    else
        CORO_SLEEP(c, CORO_MS(f->ms));
    SCR->running--;
    if (c->rc < 0) {
        SCR->cancelled++;
        CORO_FAIL(c, c->rc);
    }
    if (f->fail) {
        SCR->failed++;
        CORO_FAIL(c, CORO_EUSER(1));
    }
    SCR->ok++;
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static int spawner_fn(coro_ctx *c)
{
    struct spawner *f = CORO_SELF(c, struct spawner);
    CORO_BEGIN(c);
    for (f->i = 0; f->i < SC_N; f->i++) {
        struct scj *j = &SCR->jobs[f->i];
        coro_frame_init(&j->co, scj_fn);
        j->id = f->i;
        j->ms = (int)rnd(4);
        j->fail = chance(10);
        j->on_event = chance(15);
        SCHECK_EQ(coro_sched_spawn(c->loop, &SCR->s, &j->j, &j->co), 0);
        SCR->spawned++;
        SCHECK(coro_sched_active(&SCR->s) <= SC_LIMIT);
        if (chance(30)) {
            f->r = (int)rnd(3);
            if (f->r == 0)
                CORO_YIELD(c);
            else
                CORO_SLEEP(c, CORO_MS(f->r));
        }
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

/* Cancels random active jobs, and sets the event then cancels some of the
 * jobs it woke (woken, not yet run). */
static int killer_fn(coro_ctx *c)
{
    struct killer *f = CORO_SELF(c, struct killer);
    CORO_BEGIN(c);
    while (SCR->spawned < SC_N || coro_sched_active(&SCR->s) || coro_sched_pending(&SCR->s)) {
        f->r = (int)rnd(3);
        if (f->r == 0)
            CORO_YIELD(c);
        else
            CORO_SLEEP(c, CORO_MS(f->r));
        for (coro__link *l = SCR->s.active.next; l != &SCR->s.active; l = l->next)
            if (chance(8)) coro_task_cancel(c->loop, &coro__job_of(l)->task);
        if (chance(50)) {
            coro_event_set(c->loop, &SCR->ev);
            for (coro__link *l = SCR->ev.waiters.next; l != &SCR->ev.waiters; l = l->next)
                if (chance(30)) {
                    struct scj *j = OWNER(coro__waiter_of(l), struct scj, eop.w);
                    coro_task_cancel(c->loop, &j->j.task);
                }
            coro_event_clear(&SCR->ev);
        }
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static void sched_inv(void)
{
    SCHECK(coro_sched_active(&SCR->s) <= SC_LIMIT);
    SCHECK(SCR->running <= SC_LIMIT);
    /* no idle slot while jobs are pending */
    if (coro_sched_pending(&SCR->s)) SCHECK_EQ(coro_sched_active(&SCR->s), SC_LIMIT);
}

static int sched_main_fn(coro_ctx *c)
{
    struct sched_run *m = SCR;
    CORO_BEGIN(c);
    coro_spawn(c->loop, &m->sp_t, coro_frame_init(&m->sp.co, spawner_fn));
    coro_spawn(c->loop, &m->k_t, coro_frame_init(&m->k.co, killer_fn));
    CORO_AWAIT_TASK(c, &m->sp_t);
    CORO_AWAIT_TASK(c, &m->k_t);
    CORO_AWAIT(c, coro_sched_wait(&m->op, &m->s, CORO_NEVER));
    SCHECK_EQ(c->rc, 0);
    CORO_RETURN(c, 0);
    CORO_END(c);
}

TEST(stress_scheduler)
{
    static struct sched_run run;
    for (unsigned s = 0; s < NSEEDS; s++) {
        coro_loop L;
        coro_task main;
        cur_seed = seeds[s] + 17;
        rng_seed(cur_seed);
        memset(&run, 0, sizeof run);
        SCR = &run;
        run.last_start_id = -1;
        SCHECK_EQ(coro_sched_init(&run.s, SC_LIMIT), 0);
        coro_event_init(&run.ev);
        test_loop(&L);
        coro_spawn(&L, &main, coro_frame_init(&run.co, sched_main_fn));
        int rc = drive(&L, &main, sched_inv);
        STATS("sched: started %d ok %d failed %d cancelled %d", run.started, run.ok,
              run.failed, run.cancelled);
        SCHECK_EQ(coro_task_result(&main), 0);
        SCHECK_EQ(run.max_running, SC_LIMIT);
        SCHECK_EQ(run.running, 0);
        int done = 0, cancelled = 0, failed = 0;
        for (int i = 0; i < SC_N; i++) {
            done += coro_job_state(&run.jobs[i].j) == CORO_JOB_DONE;
            cancelled += coro_task_cancelled(&run.jobs[i].j.task);
            failed += coro_task_result(&run.jobs[i].j.task) == CORO_EUSER(1); /* read: no report */
        }
        SCHECK_EQ(done, SC_N);
        /* a job cancelled before its first step never ran its body */
        SCHECK(run.started <= SC_N && run.started > SC_N / 2);
        SCHECK_EQ(run.ok + run.failed + run.cancelled + (SC_N - run.started), SC_N);
        SCHECK_EQ(cancelled, run.cancelled + (SC_N - run.started));
        SCHECK_EQ(failed, run.failed);
        SCHECK(run.cancelled > 20);
        SCHECK(run.failed > 20);
        SCHECK_EQ(coro_sched_active(&run.s), 0);
        SCHECK_EQ(coro_sched_pending(&run.s), 0);
        finish(&L, rc);
    }
}
