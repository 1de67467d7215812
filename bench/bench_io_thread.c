/* bench_io_thread.c - the thread benchmarks of coro_io.h: the to_thread
 * round trip, to_thread throughput with many jobs in flight, and the
 * cross-loop wake round trip.
 *
 * to_thread:  one task awaits CORO_IO(c, coro_to_thread(&w, c->loop, fn, arg))
 *             N times in sequence; fn returns its argument. One operation =
 *             one job handed to the loop's default pool and its result back
 *             in the task: the worker is woken through the pool's condvar,
 *             the loop through its inbox (an eventfd read on the ring).
 *   pthread:  what the same code does without a pool: pthread_create of a
 *             thread running fn, then pthread_join, per job.
 *   Acceptance (issue 6): to_thread >= 5x faster than create + join.
 * to_thread_par: the same with 64 tasks, each awaiting its own jobs one
 *             after the other (64 jobs in flight on the default pool of
 *             min(32, CPUs + 4) workers); ns per job.
 *   pthread:  batches of 64 threads: 64 pthread_create, then 64
 *             pthread_join; ns per thread.
 * xloop_wake: two loops, each on its own thread with its own ring (one loop
 *             per core), ping-pong: a task on loop A posts a callback to
 *             loop B with coro_call_soon_threadsafe; it runs on B's thread
 *             and posts one back to A, which completes the future the task
 *             awaits. One operation = one round trip = two cross-thread
 *             wake-ups (each an eventfd write that ends the other loop's
 *             io_uring_enter).
 *   pthread:  the same round trip between two plain threads, each waiting
 *             on a mutex + condvar for its turn.
 * Nothing is pinned: a round trip is two wake-ups of a thread on the other
 * CPU (an inter-processor interrupt; in a VM, a hypervisor exit), which is
 * what both sides pay. The sides alternate within each run.
 */
#include "bench.h"

#include <pthread.h>

#include "coro_io.h"

/* ------------------------------------------------------------ to_thread */

static int job_fn(void *arg)
{
    return (int)(intptr_t)arg;
}

struct jobber {
    coro_frame co;
    coro_work w;
    long n, i, bad;
};

static int jobber_fn(coro_ctx *c)
{
    struct jobber *f = CORO_SELF(c, struct jobber);
    CORO_BEGIN(c);
    for (f->i = 0; f->i < f->n; f->i++) {
        CORO_IO(c, coro_to_thread(&f->w, c->loop, job_fn, (void *)(intptr_t)(f->i & 1023)));
        if (c->rc != (int)(f->i & 1023)) f->bad++;
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

/* ns per to_thread round trip; the pool (made by the first job) is part of
 * the loop, so a fresh loop per run starts its worker once (one
 * pthread_create per run, not per job: amortised over n). */
static double coro_to_thread_rt(long n)
{
    coro_loop L;
    coro_io io;
    coro_task t;
    struct jobber f;
    if (coro_io_init(&io, &L, NULL) < 0) {
        fprintf(stderr, "bench_io_thread: coro_io_init failed\n");
        exit(1);
    }
    memset(&f, 0, sizeof f);
    f.n = n;
    int64_t t0 = bench_now();
    int rc = coro_run(&L, &t, coro_frame_init(&f.co, jobber_fn));
    int64_t dt = bench_now() - t0;
    if (rc != 0 || f.bad) {
        fprintf(stderr, "bench_io_thread: to_thread went wrong (rc %d, %ld bad)\n", rc, f.bad);
        exit(1);
    }
    coro_loop_close(&L);
    return (double)dt / (double)n;
}

/* to_thread_par: PAR tasks, each awaiting its share of the jobs. */
#define PAR 64

static struct jobber pjobs[PAR];
static coro_task ptasks[PAR];

static double coro_to_thread_par(long n)
{
    coro_loop L;
    coro_io io;
    long per = n / PAR + 1;
    if (coro_io_init(&io, &L, NULL) < 0) {
        fprintf(stderr, "bench_io_thread: coro_io_init failed\n");
        exit(1);
    }
    for (int i = 0; i < PAR; i++) {
        memset(&pjobs[i], 0, sizeof pjobs[i]);
        pjobs[i].n = per;
        coro_spawn(&L, &ptasks[i], coro_frame_init(&pjobs[i].co, jobber_fn));
    }
    int64_t t0 = bench_now();
    while (coro_loop_task_count(&L) > 0)
        if (coro_loop_run_once(&L) < 0) break;
    int64_t dt = bench_now() - t0;
    long bad = 0;
    for (int i = 0; i < PAR; i++) bad += pjobs[i].bad + (pjobs[i].i != per);
    if (bad || coro_loop_task_count(&L) != 0) {
        fprintf(stderr, "bench_io_thread: to_thread_par went wrong (%ld bad)\n", bad);
        exit(1);
    }
    coro_loop_close(&L);
    return (double)dt / ((double)per * PAR);
}

static void *thread_job(void *arg)
{
    return (void *)(intptr_t)job_fn(arg);
}

static double pthread_create_join_rt(long n)
{
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++) {
        pthread_t th;
        void *res;
        if (pthread_create(&th, NULL, thread_job, (void *)(intptr_t)(i & 1023)) != 0) {
            fprintf(stderr, "bench_io_thread: pthread_create failed\n");
            exit(1);
        }
        pthread_join(th, &res);
        bench_sink += (uintptr_t)res;
    }
    return (double)(bench_now() - t0) / (double)n;
}

static double pthread_create_join_par(long n)
{
    pthread_t th[PAR];
    long batches = n / PAR + 1;
    int64_t t0 = bench_now();
    for (long b = 0; b < batches; b++) {
        for (int i = 0; i < PAR; i++)
            if (pthread_create(&th[i], NULL, thread_job, (void *)(intptr_t)i) != 0) {
                fprintf(stderr, "bench_io_thread: pthread_create failed\n");
                exit(1);
            }
        for (int i = 0; i < PAR; i++) {
            void *res;
            pthread_join(th[i], &res);
            bench_sink += (uintptr_t)res;
        }
    }
    return (double)(bench_now() - t0) / ((double)batches * PAR);
}

/* ------------------------------------------------------------ xloop_wake */

struct side { /* one loop on its thread */
    coro_loop L;
    coro_io io;
    coro_task main;
    coro_future stop;
    pthread_t th;
    pthread_barrier_t *ready;
};

struct pingpong {
    struct side a, b;
    coro_tcall to_b, to_a, quit;
    coro_future pong;
    long n;
};

struct waiter {
    coro_frame co;
    coro_future *f;
};

static int waiter_fn(coro_ctx *c) /* B's main task: until told to stop */
{
    struct waiter *w = CORO_SELF(c, struct waiter);
    CORO_BEGIN(c);
    CORO_AWAIT_FUTURE(c, w->f);
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static struct pingpong pp;

static void pong_on_a(coro_loop *L, void *arg) /* A's thread */
{
    (void)arg;
    coro_future_set_result(L, &pp.pong, 0);
}

static void ping_on_b(coro_loop *L, void *arg) /* B's thread */
{
    (void)L;
    (void)arg;
    coro_call_soon_threadsafe(&pp.a.L, &pp.to_a, pong_on_a, NULL);
}

static void stop_b(coro_loop *L, void *arg)
{
    (void)arg;
    coro_future_set_result(L, &pp.b.stop, 0);
}

struct pinger {
    coro_frame co;
    long i;
};

static int pinger_fn(coro_ctx *c) /* A's main task */
{
    struct pinger *f = CORO_SELF(c, struct pinger);
    CORO_BEGIN(c);
    for (f->i = 0; f->i < pp.n; f->i++) {
        coro_future_init(&pp.pong);
        coro_call_soon_threadsafe(&pp.b.L, &pp.to_b, ping_on_b, NULL);
        CORO_AWAIT_FUTURE(c, &pp.pong);
        CORO_CHECK(c);
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static void *side_b_main(void *arg)
{
    struct side *s = (struct side *)arg;
    struct waiter w;
    if (coro_io_init(&s->io, &s->L, NULL) < 0) exit(1);
    coro_io_threadsafe(&s->io);
    coro_future_init(&s->stop);
    w.f = &s->stop;
    pthread_barrier_wait(s->ready);
    int rc = coro_run(&s->L, &s->main, coro_frame_init(&w.co, waiter_fn));
    if (rc != 0) {
        fprintf(stderr, "bench_io_thread: loop B ended with %d\n", rc);
        exit(1);
    }
    coro_loop_close(&s->L);
    return NULL;
}

static double coro_xloop_rt(long n)
{
    pthread_barrier_t ready;
    struct pinger p;
    memset(&pp, 0, sizeof pp);
    pp.n = n;
    pthread_barrier_init(&ready, NULL, 2);
    pp.b.ready = &ready;
    if (coro_io_init(&pp.a.io, &pp.a.L, NULL) < 0) exit(1);
    coro_io_threadsafe(&pp.a.io);
    pthread_create(&pp.b.th, NULL, side_b_main, &pp.b);
    pthread_barrier_wait(&ready); /* B's loop exists and takes calls */
    memset(&p, 0, sizeof p);
    int64_t t0 = bench_now();
    int rc = coro_run(&pp.a.L, &pp.a.main, coro_frame_init(&p.co, pinger_fn));
    int64_t dt = bench_now() - t0;
    coro_call_soon_threadsafe(&pp.b.L, &pp.quit, stop_b, NULL);
    pthread_join(pp.b.th, NULL);
    pthread_barrier_destroy(&ready);
    if (rc != 0) {
        fprintf(stderr, "bench_io_thread: loop A ended with %d\n", rc);
        exit(1);
    }
    coro_loop_close(&pp.a.L);
    return (double)dt / (double)n;
}

/* Two threads taking turns under a mutex + condvar: one round trip = the
 * turn goes to the other thread and comes back. */
static struct {
    pthread_mutex_t m;
    pthread_cond_t cv[2];
    int turn;
    long n;
} tp;

static void *turn_thread(void *arg)
{
    int me = (int)(intptr_t)arg;
    for (long i = 0; i < tp.n; i++) {
        pthread_mutex_lock(&tp.m);
        while (tp.turn != me) pthread_cond_wait(&tp.cv[me], &tp.m);
        tp.turn = !me;
        pthread_cond_signal(&tp.cv[!me]);
        pthread_mutex_unlock(&tp.m);
    }
    return NULL;
}

static double pthread_xthread_rt(long n)
{
    pthread_t th;
    pthread_mutex_init(&tp.m, NULL);
    pthread_cond_init(&tp.cv[0], NULL);
    pthread_cond_init(&tp.cv[1], NULL);
    tp.turn = 0;
    tp.n = n;
    int64_t t0 = bench_now();
    pthread_create(&th, NULL, turn_thread, (void *)(intptr_t)1);
    turn_thread((void *)(intptr_t)0);
    pthread_join(th, NULL);
    double dt = (double)(bench_now() - t0);
    pthread_cond_destroy(&tp.cv[0]);
    pthread_cond_destroy(&tp.cv[1]);
    pthread_mutex_destroy(&tp.m);
    return dt / (double)n;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    if (bench_icount_usage(argc, argv)) return 2;
    int runs = bench_runs(5);
    long nj = bench_size(10000, 50000);  /* to_thread jobs per run */
    long nc = bench_size(1000, 10000);   /* pthread_create + join per run */
    long np = bench_size(30000, 200000); /* to_thread_par jobs per run */
    long ncp = bench_size(1024, 16384);  /* threads per run, in batches of 64 */
    long nx = bench_size(5000, 50000);   /* cross-loop round trips per run */
    double vj[BENCH_MAX_RUNS], vc[BENCH_MAX_RUNS], vp[BENCH_MAX_RUNS], vcp[BENCH_MAX_RUNS],
        vx[BENCH_MAX_RUNS], vt[BENCH_MAX_RUNS];
    char extra[128];
    coro_loop L;
    coro_io io;

    if (coro_io_init(&io, &L, NULL) < 0) {
        printf("SKIP impl=coro bench=to_thread,to_thread_par,xloop_wake coro_io_init failed\n");
        return 0;
    }
    const char *backend = coro_io_backend_name(&io);
    coro_loop_close(&L);
    bench_banner("io_thread", "to_thread and cross-loop wake round trips");
    printf("   backend %s; to_thread: %ld jobs in sequence, pthread create+join: %ld; "
           "to_thread_par: %ld jobs, %d in flight, pthread: %ld threads in batches of %d; "
           "cross-loop: %ld round trips; %d runs, alternating\n",
           backend, nj, nc, np, PAR, ncp, PAR, nx, runs);
    coro_to_thread_rt(nj / 10 + 1); /* warm-up */
    pthread_create_join_rt(nc / 10 + 1);
    coro_to_thread_par(np / 10 + 1);
    pthread_create_join_par(ncp / 10 + 1);
    coro_xloop_rt(nx / 10 + 1);
    pthread_xthread_rt(nx / 10 + 1);
    for (int r = 0; r < runs; r++) {
        bench_progress("thread run %d/%d", r + 1, runs);
        if (r % 2 == 0) {
            vj[r] = coro_to_thread_rt(nj);
            vc[r] = pthread_create_join_rt(nc);
            vp[r] = coro_to_thread_par(np);
            vcp[r] = pthread_create_join_par(ncp);
            vx[r] = coro_xloop_rt(nx);
            vt[r] = pthread_xthread_rt(nx);
        } else {
            vc[r] = pthread_create_join_rt(nc);
            vj[r] = coro_to_thread_rt(nj);
            vcp[r] = pthread_create_join_par(ncp);
            vp[r] = coro_to_thread_par(np);
            vt[r] = pthread_xthread_rt(nx);
            vx[r] = coro_xloop_rt(nx);
        }
    }
    snprintf(extra, sizeof extra, "n=%ld backend=%s in_flight=1", nj, backend);
    bench_report("to_thread", "coro", "ns/op", vj, runs, extra);
    snprintf(extra, sizeof extra, "n=%ld api=pthread_create+pthread_join", nc);
    bench_report("to_thread", "pthread", "ns/op", vc, runs, extra);
    bench_target_ratio("to_thread", "pthread", 5);
    snprintf(extra, sizeof extra, "n=%ld backend=%s in_flight=%d", np, backend, PAR);
    bench_report("to_thread_par", "coro", "ns/op", vp, runs, extra);
    snprintf(extra, sizeof extra, "n=%ld api=pthread_create+pthread_join batch=%d", ncp, PAR);
    bench_report("to_thread_par", "pthread", "ns/op", vcp, runs, extra);
    snprintf(extra, sizeof extra, "n=%ld backend=%s api=coro_call_soon_threadsafe", nx, backend);
    bench_report("xloop_wake", "coro", "ns/op", vx, runs, extra);
    snprintf(extra, sizeof extra, "n=%ld api=mutex+condvar", nx);
    bench_report("xloop_wake", "pthread", "ns/op", vt, runs, extra);
    return 0;
}
