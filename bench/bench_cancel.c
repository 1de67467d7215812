/* bench_cancel.c - B7, the cost of cancelling a blocked task.
 *
 * One cycle: create a task that blocks (asyncio.sleep(3600) in asyncio
 * terms), cancel it while it is blocked, and reap it (it has finished as
 * cancelled and its record is free again). ns per cycle = total / N.
 *
 * coro:    batches of 1,000 task records reused (as in bench_spawn):
 *          coro_spawn each, one loop iteration parks them all in
 *          CORO_SLEEP(c, CORO_S(3600)) (each arms a timer), coro_task_cancel
 *          each (the timer is disarmed, the task re-queued with
 *          CORO_ECANCELED), then the loop runs until all have finished;
 *          each must be coro_task_cancelled(). Timed: all of it. The
 *          asyncio equivalent: t = create_task(sleep(3600)); await sleep(0);
 *          t.cancel(); await t (CancelledError).
 * pthread: pthread_create of a thread that blocks in nanosleep(3600 s),
 *          pthread_cancel (deferred: acted on at the cancellation point),
 *          pthread_join (PTHREAD_CANCELED); one at a time.
 */
#include "bench.h"

#include <pthread.h>

#include "coro_loop.h"

/* ---------------------------------------------------------------- coro */

struct blocked {
    coro_frame co;
};

static int blocked_fn(coro_ctx *c)
{
    CORO_BEGIN(c);
    CORO_SLEEP(c, CORO_S(3600));
    BENCH_INJECTED(); /* nothing, unless built for bench-check's demo */
    CORO_RETURN(c, c->rc); /* CORO_ECANCELED: the task ends cancelled */
    CORO_END(c);
}

struct slot {
    coro_task t;
    struct blocked f;
};

#define BATCH 1000
static struct slot slots[BATCH];

static int64_t coro_cancel_run(long n)
{
    coro_loop L;
    coro_loop_init(&L, NULL);
    int64_t t0 = bench_now();
    for (long done = 0; done < n; done += BATCH) {
        long k = n - done < BATCH ? n - done : BATCH;
        for (long i = 0; i < k; i++)
            coro_spawn(&L, &slots[i].t, coro_frame_init(&slots[i].f.co, blocked_fn));
        coro_loop_run_once(&L); /* all block in their sleep */
        for (long i = 0; i < k; i++) coro_task_cancel(&L, &slots[i].t);
        while (coro_loop_task_count(&L)) coro_loop_run_once(&L);
    }
    int64_t dt = bench_now() - t0;
    for (long i = 0; i < (n < BATCH ? n : BATCH); i++)
        if (!coro_task_cancelled(&slots[i].t)) {
            fprintf(stderr, "bench_cancel: task %ld was not cancelled\n", i);
            exit(1);
        }
    coro_loop_close(&L);
    return dt;
}

/* ------------------------------------------------------------- pthread */

static void *blocked_thread(void *arg)
{
    struct timespec ts = {3600, 0};
    nanosleep(&ts, NULL);
    return arg;
}

static int64_t pthread_cancel_run(long n)
{
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++) {
        pthread_t th;
        void *ret;
        if (pthread_create(&th, NULL, blocked_thread, NULL) != 0) {
            perror("pthread_create");
            exit(1);
        }
        pthread_cancel(th);
        pthread_join(th, &ret);
        if (ret != PTHREAD_CANCELED) {
            fprintf(stderr, "bench_cancel: thread was not cancelled\n");
            exit(1);
        }
    }
    return bench_now() - t0;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    long ni;
    if (bench_icount(argc, argv, "cancel", &ni)) { /* make bench-check */
        coro_cancel_run(ni);
        return 0;
    }
    if (bench_icount_usage(argc, argv)) return 2;
    int runs = bench_runs(7);
    long n = bench_n(1000000), m = bench_n(2000);
    double vc[BENCH_MAX_RUNS], vp[BENCH_MAX_RUNS];
    char extra[64];

    bench_banner("cancel", "create a blocked task, cancel it, reap it");
    printf("   coro: %ld tasks in batches of %d; pthread: %ld threads; %d runs each\n", n,
           BATCH, m, runs);
    coro_cancel_run(n / 10); /* warm-up */
    pthread_cancel_run(m / 10);
    for (int r = 0; r < runs; r++) {
        bench_progress("cancel run %d/%d", r + 1, runs);
        vc[r] = (double)coro_cancel_run(n) / (double)n;
        vp[r] = (double)pthread_cancel_run(m) / (double)m;
    }
    snprintf(extra, sizeof extra, "n=%ld batch=%d", n, BATCH);
    bench_report("cancel", "coro", "ns/op", vc, runs, extra);
    snprintf(extra, sizeof extra, "n=%ld", m);
    bench_report("cancel", "pthread", "ns/op", vp, runs, extra);
    return 0;
}
