/* bench_spawn.c - B2, spawn + complete an empty task.
 *
 * coro (bench "spawn"): coro_spawn B = 1000 tasks whose body returns at
 *          once, run the loop until all have finished, repeat with the same
 *          task records; ns per task = total / N. Timed: spawn (task record
 *          init, registry link, ready-queue push), the loop iteration, the
 *          step that runs the body, and the completion (future settled,
 *          registry unlink). The 1000 records (88 KB) stay in cache, as a
 *          thread's stack stays in glibc's stack cache below.
 * coro (bench "spawn_bulk"): the same for 1,000,000 tasks spawned before
 *          the loop runs them all (records no longer fit in cache: what a
 *          burst of a million tasks costs). Pages are touched beforehand,
 *          so page faults are not counted.
 * pthread: pthread_create + pthread_join of an empty thread function, one
 *          at a time (default attributes: 8 MiB stack from glibc's cache).
 */
#include "bench.h"

#include <pthread.h>
#include <sys/mman.h>

#include "coro_loop.h"

struct empty {
    coro_frame co;
};

static int empty_fn(coro_ctx *c)
{
    CORO_BEGIN(c);
    BENCH_INJECTED(); /* nothing, unless built for bench-check's demo */
    CORO_END(c);
}

struct slot {
    coro_task t;
    struct empty f;
};

static struct slot *slots_alloc(long n)
{
    void *p = mmap(NULL, sizeof(struct slot) * (size_t)n, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    memset(p, 0, sizeof(struct slot) * (size_t)n); /* fault the pages in now */
    return (struct slot *)p;
}

/* Spawns n tasks in batches of b, running the loop to completion after
 * each batch; returns the total ns. */
static int64_t coro_spawn_run(struct slot *s, long n, long b)
{
    coro_loop L;
    coro_loop_init(&L, NULL);
    int64_t t0 = bench_now();
    for (long done = 0; done < n; done += b) {
        long k = n - done < b ? n - done : b;
        for (long i = 0; i < k; i++)
            coro_spawn(&L, &s[i].t, coro_frame_init(&s[i].f.co, empty_fn));
        while (coro_loop_task_count(&L)) coro_loop_run_once(&L);
    }
    int64_t dt = bench_now() - t0;
    for (long i = 0; i < (n < b ? n : b); i++)
        if (coro_task_result(&s[i].t) != 0) {
            fprintf(stderr, "bench_spawn: task %ld did not finish\n", i);
            exit(1);
        }
    coro_loop_close(&L);
    return dt;
}

static void *empty_thread(void *arg)
{
    return arg;
}

static int64_t pthread_spawn_run(long n)
{
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++) {
        pthread_t th;
        void *ret;
        if (pthread_create(&th, NULL, empty_thread, (void *)i) != 0) {
            perror("pthread_create");
            exit(1);
        }
        pthread_join(th, &ret);
        bench_sink += (uintptr_t)ret;
    }
    return bench_now() - t0;
}

int main(int argc, char **argv)
{
    long ni;
    if (bench_icount(argc, argv, "spawn", &ni)) { /* make bench-check */
        struct slot *si = slots_alloc(1000);
        coro_spawn_run(si, ni, 1000);
        return 0;
    }
    if (bench_icount_usage(argc, argv)) return 2;
    int runs = bench_runs(7);
    long n = bench_n(2000000), batch = 1000; /* coro, cached batches */
    long nb = bench_n(1000000);              /* coro, one burst      */
    long m = bench_n(2000);                  /* pthread              */
    double vc[BENCH_MAX_RUNS], vb[BENCH_MAX_RUNS], vp[BENCH_MAX_RUNS];
    char extra[64];

    bench_banner("spawn", "spawn + run to completion of an empty task");
    printf("   coro: %ld tasks in batches of %ld; coro bulk: %ld tasks at once; "
           "pthread: %ld create+join; %d runs each\n", n, batch, nb, m, runs);
    struct slot *s = slots_alloc(nb > batch ? nb : batch);

    coro_spawn_run(s, n / 10, batch); /* warm-up */
    pthread_spawn_run(m / 10);
    for (int r = 0; r < runs; r++) {
        bench_progress("spawn run %d/%d", r + 1, runs);
        vc[r] = (double)coro_spawn_run(s, n, batch) / (double)n;
        vb[r] = (double)coro_spawn_run(s, nb, nb) / (double)nb;
        vp[r] = (double)pthread_spawn_run(m) / (double)m;
    }
    snprintf(extra, sizeof extra, "n=%ld batch=%ld", n, batch);
    double c = bench_report("spawn", "coro", "ns/op", vc, runs, extra);
    snprintf(extra, sizeof extra, "n=%ld", m);
    double p = bench_report("spawn", "pthread", "ns/op", vp, runs, extra);
    snprintf(extra, sizeof extra, "n=%ld batch=%ld", nb, nb);
    double b = bench_report("spawn_bulk", "coro", "ns/op", vb, runs, extra);
    printf("   pthread/coro: %.0fx (batched), %.0fx (bulk)\n", p / c, p / b);
    printf("   sizeof(coro_task) = %zu, sizeof(coro_frame) = %zu\n",
           sizeof(coro_task), sizeof(coro_frame));
    bench_target_le("spawn", "coro", 30);
    bench_target_ratio("spawn", "go", 10); /* issue 7 */
    bench_target_ratio("spawn", "pthread", 2000);
    munmap(s, sizeof(struct slot) * (size_t)(nb > batch ? nb : batch));
    return 0;
}
