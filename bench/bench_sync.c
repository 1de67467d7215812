/* bench_sync.c - coro_sync.h against pthreads.
 *
 * queue:  B3, queue ping-pong. Two coro tasks and two coro_queues of
 *         maxsize 1: the first puts a message on `there` and gets the reply
 *         from `back`, the second echoes each message. Every message wakes
 *         the other task through the ready queue.
 *         ns per message = total / (2N).
 *         pthread: the same over two bounded queues of one slot, each a
 *         mutex and two condition variables, one thread per side.
 * lock:   an uncontended lock: acquire + release in a loop inside one task
 *         (CORO_LOCK_ACQUIRE's inline fast path), vs pthread_mutex_lock +
 *         pthread_mutex_unlock in a loop. ns per pair.
 */
#include "bench.h"

#include <pthread.h>

#include "coro_sync.h"

/* ---------------------------------------------------------------- coro */

struct side {
    coro_frame co;
    coro_queue *out, *in;
    coro_queue_op op;
    long i, n, msg;
    int first;
};

static int side_fn(coro_ctx *c)
{
    struct side *f = CORO_SELF(c, struct side);
    CORO_BEGIN(c);
    for (f->i = 0; f->i < f->n; f->i++) {
        if (f->first) {
            f->msg = f->i;
            CORO_QUEUE_PUT(c, &f->op, f->out, &f->msg);
            CORO_QUEUE_GET(c, &f->op, f->in, &f->msg);
        } else {
            CORO_QUEUE_GET(c, &f->op, f->in, &f->msg);
            CORO_QUEUE_PUT(c, &f->op, f->out, &f->msg);
        }
        if (c->rc < 0 || f->msg != f->i) CORO_FAIL(c, CORO_EINVAL);
        BENCH_INJECTED(); /* nothing, unless built for bench-check's demo */
    }
    CORO_END(c);
}

static int64_t coro_queue_pingpong(long n)
{
    coro_loop L;
    coro_queue q[2];
    long buf[2][1];
    coro_task t[2];
    struct side s[2];
    coro_loop_init(&L, NULL);
    for (int k = 0; k < 2; k++) coro_queue_init(&q[k], CORO_FIFO, buf[k], sizeof(long), 1, 1, NULL);
    int64_t t0 = bench_now();
    for (int k = 0; k < 2; k++) {
        memset(&s[k], 0, sizeof s[k]);
        s[k].n = n;
        s[k].first = k == 0;
        s[k].out = &q[k];
        s[k].in = &q[!k];
        coro_spawn(&L, &t[k], coro_frame_init(&s[k].co, side_fn));
    }
    while (coro_loop_task_count(&L)) coro_loop_run_once(&L);
    int64_t dt = bench_now() - t0;
    if (coro_task_result(&t[0]) != 0 || coro_task_result(&t[1]) != 0) {
        fprintf(stderr, "bench_sync: coro queue ping-pong went wrong\n");
        exit(1);
    }
    coro_loop_close(&L);
    return dt;
}

struct locker {
    coro_frame co;
    coro_lock *lk;
    coro_lock_op op;
    long i, n;
};

static int locker_fn(coro_ctx *c)
{
    struct locker *f = CORO_SELF(c, struct locker);
    CORO_BEGIN(c);
    for (f->i = 0; f->i < f->n; f->i++) {
        CORO_LOCK_ACQUIRE(c, &f->op, f->lk);
        bench_sink += (uintptr_t)f->i;
        BENCH_INJECTED();
        coro_lock_release(c->loop, f->lk);
    }
    CORO_END(c);
}

/* ns for n acquire+release pairs, timed inside the task's single step. */
static int64_t locker_dt;
struct locker_timed {
    coro_frame co;
    struct locker inner;
};

static int locker_timed_fn(coro_ctx *c)
{
    struct locker_timed *f = CORO_SELF(c, struct locker_timed);
    CORO_BEGIN(c);
    locker_dt = bench_now();
    CORO_AWAIT(c, coro_frame_init(&f->inner.co, locker_fn));
    locker_dt = bench_now() - locker_dt;
    CORO_END(c);
}

static int64_t coro_lock_loop(long n)
{
    coro_loop L;
    coro_lock lk;
    coro_task t;
    struct locker_timed f;
    coro_loop_init(&L, NULL);
    coro_lock_init(&lk);
    memset(&f, 0, sizeof f);
    f.inner.lk = &lk;
    f.inner.n = n;
    coro_run(&L, &t, coro_frame_init(&f.co, locker_timed_fn));
    if (f.inner.i != n || coro_lock_locked(&lk)) {
        fprintf(stderr, "bench_sync: coro lock loop went wrong\n");
        exit(1);
    }
    coro_loop_close(&L);
    return locker_dt;
}

/* ------------------------------------------------------------- pthread */

struct slot { /* a bounded queue of one item */
    pthread_mutex_t m;
    pthread_cond_t not_empty, not_full;
    int full;
    long item;
};

static void slot_put(struct slot *s, long v)
{
    pthread_mutex_lock(&s->m);
    while (s->full) pthread_cond_wait(&s->not_full, &s->m);
    s->item = v;
    s->full = 1;
    pthread_cond_signal(&s->not_empty);
    pthread_mutex_unlock(&s->m);
}

static long slot_get(struct slot *s)
{
    pthread_mutex_lock(&s->m);
    while (!s->full) pthread_cond_wait(&s->not_empty, &s->m);
    long v = s->item;
    s->full = 0;
    pthread_cond_signal(&s->not_full);
    pthread_mutex_unlock(&s->m);
    return v;
}

static struct slot slots[2];
static long echo_n;

static void *echo_thread(void *arg)
{
    (void)arg;
    for (long i = 0; i < echo_n; i++) slot_put(&slots[1], slot_get(&slots[0]));
    return NULL;
}

static int64_t pthread_queue_pingpong(long n)
{
    pthread_t th;
    for (int k = 0; k < 2; k++) {
        pthread_mutex_init(&slots[k].m, NULL);
        pthread_cond_init(&slots[k].not_empty, NULL);
        pthread_cond_init(&slots[k].not_full, NULL);
        slots[k].full = 0;
    }
    echo_n = n;
    int64_t t0 = bench_now();
    pthread_create(&th, NULL, echo_thread, NULL);
    for (long i = 0; i < n; i++) {
        slot_put(&slots[0], i);
        if (slot_get(&slots[1]) != i) {
            fprintf(stderr, "bench_sync: pthread ping-pong went wrong\n");
            exit(1);
        }
    }
    pthread_join(th, NULL);
    return bench_now() - t0;
}

static int64_t pthread_lock_loop(long n)
{
    pthread_mutex_t m;
    pthread_mutex_init(&m, NULL);
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++) {
        pthread_mutex_lock(&m);
        bench_sink += (uintptr_t)i;
        pthread_mutex_unlock(&m);
    }
    int64_t dt = bench_now() - t0;
    pthread_mutex_destroy(&m);
    return dt;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    long ni;
    if (bench_icount(argc, argv, "queue", &ni)) { /* make bench-check */
        coro_queue_pingpong(ni);
        return 0;
    }
    if (bench_icount(argc, argv, "lock", &ni)) {
        coro_lock_loop(ni);
        return 0;
    }
    if (bench_icount_usage(argc, argv)) return 2;
    int runs = bench_runs(7);
    long nq = bench_n(2000000), npq = bench_n(20000), nl = bench_n(20000000);
    double v[BENCH_MAX_RUNS];
    char extra[128];

    bench_progress("queue ping-pong: coro (N=%ld), pthread (N=%ld)", nq, npq);
    coro_queue_pingpong(nq / 10); /* warm-up */
    for (int r = 0; r < runs; r++) v[r] = (double)coro_queue_pingpong(nq) / (2.0 * (double)nq);
    snprintf(extra, sizeof extra, "n=%ld", nq);
    bench_report("queue", "coro", "ns/op", v, runs, extra);
    pthread_queue_pingpong(npq / 10);
    for (int r = 0; r < runs; r++) v[r] = (double)pthread_queue_pingpong(npq) / (2.0 * (double)npq);
    snprintf(extra, sizeof extra, "n=%ld", npq);
    bench_report("queue", "pthread", "ns/op", v, runs, extra);
    bench_target_le("queue", "coro", 30);
    bench_target_ratio("queue", "pthread", 100);

    bench_progress("uncontended lock: coro vs pthread mutex (N=%ld)", nl);
    coro_lock_loop(nl / 10);
    for (int r = 0; r < runs; r++) v[r] = (double)coro_lock_loop(nl) / (double)nl;
    snprintf(extra, sizeof extra, "n=%ld", nl);
    bench_report("lock", "coro", "ns/op", v, runs, extra);
    pthread_lock_loop(nl / 10);
    for (int r = 0; r < runs; r++) v[r] = (double)pthread_lock_loop(nl) / (double)nl;
    bench_report("lock", "pthread", "ns/op", v, runs, extra);
    bench_target_ratio("lock", "pthread", 0.5); /* coro <= 2x the mutex */
    return 0;
}
