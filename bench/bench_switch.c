/* bench_switch.c - B1, switch ping-pong.
 *
 * coro:    two tasks on one loop (POSIX clock backend, as users run it),
 *          each does CORO_YIELD N times; every yield goes through the ready
 *          queue, so the loop alternates A, B, A, B...
 *          ns per switch = total time / (2N). It includes everything one
 *          switch costs: the loop iteration (poll call, timer check, batch
 *          take) shared by the two steps, the task step, the resume of the
 *          body, and the re-queue.
 * pthread: two threads hand a token back and forth under one mutex and
 *          one condition variable; ns per hand-off = total / (2M).
 *          Nothing is pinned: run under `taskset -c 0` to measure a pure
 *          same-CPU switch instead of a cross-CPU wake-up (see README).
 */
#include "bench.h"

#include <pthread.h>

#include "coro_loop.h"

/* ---------------------------------------------------------------- coro */

struct pinger {
    coro_frame co;
    long i, n;
};

static int pinger_fn(coro_ctx *c)
{
    struct pinger *f = CORO_SELF(c, struct pinger);
    CORO_BEGIN(c);
    for (f->i = 0; f->i < f->n; f->i++) {
        BENCH_INJECTED(); /* nothing, unless built for bench-check's demo */
        CORO_YIELD(c);
    }
    CORO_END(c);
}

/* Total ns for two tasks yielding n times each. */
static int64_t coro_pingpong(long n)
{
    coro_loop L;
    coro_task t[2];
    struct pinger p[2];
    coro_loop_init(&L, NULL);
    int64_t t0 = bench_now();
    for (int k = 0; k < 2; k++) {
        p[k].n = n;
        coro_spawn(&L, &t[k], coro_frame_init(&p[k].co, pinger_fn));
    }
    while (coro_loop_task_count(&L)) coro_loop_run_once(&L);
    int64_t dt = bench_now() - t0;
    if (p[0].i != n || p[1].i != n || coro_task_result(&t[0]) != 0) {
        fprintf(stderr, "bench_switch: coro ping-pong went wrong\n");
        exit(1);
    }
    coro_loop_close(&L);
    return dt;
}

/* ------------------------------------------------------------- pthread */

struct court {
    pthread_mutex_t m;
    pthread_cond_t cv;
    int turn; /* whose move: 0 or 1 */
    long n;   /* moves per player */
};

struct player {
    struct court *court;
    int id;
};

static void *player_fn(void *arg)
{
    struct player *p = (struct player *)arg;
    struct court *ct = p->court;
    for (long i = 0; i < ct->n; i++) {
        pthread_mutex_lock(&ct->m);
        while (ct->turn != p->id) pthread_cond_wait(&ct->cv, &ct->m);
        ct->turn = !p->id;
        pthread_cond_signal(&ct->cv);
        pthread_mutex_unlock(&ct->m);
    }
    return NULL;
}

/* Total ns for 2n hand-offs between two threads (creation not timed: both
 * threads start at a barrier-like first turn). */
static int64_t pthread_pingpong(long n)
{
    struct court ct;
    struct player pl[2];
    pthread_t th[2];
    pthread_mutex_init(&ct.m, NULL);
    pthread_cond_init(&ct.cv, NULL);
    ct.turn = -1; /* nobody may move until both threads exist */
    ct.n = n;
    for (int k = 0; k < 2; k++) {
        pl[k].court = &ct;
        pl[k].id = k;
        if (pthread_create(&th[k], NULL, player_fn, &pl[k]) != 0) {
            perror("pthread_create");
            exit(1);
        }
    }
    pthread_mutex_lock(&ct.m);
    int64_t t0 = bench_now();
    ct.turn = 0;
    pthread_cond_broadcast(&ct.cv);
    pthread_mutex_unlock(&ct.m);
    for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
    int64_t dt = bench_now() - t0;
    pthread_cond_destroy(&ct.cv);
    pthread_mutex_destroy(&ct.m);
    return dt;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    long ni;
    if (bench_icount(argc, argv, "switch", &ni)) { /* make bench-check */
        coro_pingpong(ni);
        return 0;
    }
    if (bench_icount_usage(argc, argv)) return 2;
    int runs = bench_runs(7);
    long n = bench_n(5000000);  /* yields per coro task  */
    long m = bench_n(20000);    /* moves per thread      */
    double vc[BENCH_MAX_RUNS], vp[BENCH_MAX_RUNS], vr[BENCH_MAX_RUNS];
    char extra[64];

    bench_banner("switch", "ping-pong between two tasks / two threads");
    printf("   coro: 2 tasks x %ld yields; pthread: 2 threads x %ld moves "
           "(mutex+condvar); %d runs each, interleaved\n", n, m, runs);

    coro_pingpong(n / 10); /* warm-up */
    pthread_pingpong(m / 10);
    for (int r = 0; r < runs; r++) {
        bench_progress("switch run %d/%d", r + 1, runs);
        vc[r] = (double)coro_pingpong(n) / (2.0 * (double)n);
        vp[r] = (double)pthread_pingpong(m) / (2.0 * (double)m);
        vr[r] = vp[r] / vc[r];
    }
    snprintf(extra, sizeof extra, "n=%ld", 2 * n);
    double c = bench_report("switch", "coro", "ns/op", vc, runs, extra);
    snprintf(extra, sizeof extra, "n=%ld", 2 * m);
    double p = bench_report("switch", "pthread", "ns/op", vp, runs, extra);
    bench_stats rs = bench_stats_of(vr, runs);
    printf("   pthread/coro: %.0fx (ratio of medians); per-run ratios %.0fx .. %.0fx\n",
           p / c, rs.min, rs.max);
    bench_target_le("switch", "coro", 10);
    bench_target_ratio("switch", "pthread", 300);
    bench_target_ratio("switch", "boost_context", 2); /* issue 7 */
    bench_target_ratio("switch", "go", 20);
    return 0;
}
