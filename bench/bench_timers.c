/* bench_timers.c - B5, a timer storm: N timers armed, then all fired.
 *
 * Deadlines: uniformly at random over the 10 ms after arming starts (a
 * fixed-seed xorshift; every peer draws the same distribution), so timers
 * are armed out of order and, as arming N of them takes longer than 10 ms,
 * most are due by the time the loop runs. ns per timer = (time from the
 * first arm to the last callback) / N: the arming, the timer structure's
 * ordering work, and the dispatch of every callback. The lateness of the
 * last timer is in the details.
 *
 * timers, coro: N = 200,000 (1,000,000, the size B5 names, under `make
 *          bench-full`; Python's 1,000,000 take 12 s a run, too long for the
 *          quick profile) coro_call records armed with coro_call_at
 *          (asyncio's loop.call_at; 48 bytes each, caller-owned, pre-faulted),
 *          each callback counting. This is the row to compare with
 *          asyncio's call_at, libuv's uv_timer_start and Go's time.AfterFunc:
 *          a timer without a task.
 * timers_sleep, coro: N = 100,000 (1,000,000 in full) tasks each doing
 *          CORO_SLEEP(c, its delay) and finishing: a timer per task, armed
 *          in the task's first step (the task's own handle is the timer
 *          node). Compared with goroutines in time.Sleep, asyncio tasks in
 *          asyncio.sleep, and threads in clock_nanosleep.
 * timers_sleep, pthread: 2,000 threads (10,000 in full) each in
 *          clock_nanosleep(TIMER_ABSTIME) until its deadline; joined. Thread
 *          creation is included, as task creation is for coro.
 */
#include "bench.h"

#include <pthread.h>
#include <sys/mman.h>

#include "coro_loop.h"

#define WINDOW_NS 10000000 /* deadlines spread over 10 ms */

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static int64_t next_delay(void)
{
    rng ^= rng >> 12; /* xorshift64* */
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (int64_t)((rng * 0x2545F4914F6CDD1Dull >> 11) % WINDOW_NS);
}

static void *map(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    memset(p, 0, bytes);
    return p;
}

/* ------------------------------------------------------ coro: call_at */

static long fired;

static void on_timer(coro_loop *L, void *arg)
{
    (void)L;
    (void)arg;
    fired++;
}

/* Returns ns per timer; *late: ns from the last deadline to the end. */
static double coro_timers(coro_call *k, const int64_t *delay, long n, double *arm_ns,
                          double *late)
{
    coro_loop L;
    coro_loop_init(&L, NULL);
    fired = 0;
    int64_t t0 = bench_now();
    int64_t base = coro_loop_time(&L);
    for (long i = 0; i < n; i++) coro_call_at(&L, &k[i], base + delay[i], on_timer, NULL);
    int64_t t1 = bench_now();
    while (fired < n) coro_loop_run_once(&L);
    int64_t t2 = bench_now();
    coro_loop_close(&L);
    *arm_ns = (double)(t1 - t0) / (double)n;
    *late = (double)(t2 - (t0 + WINDOW_NS));
    return (double)(t2 - t0) / (double)n;
}

/* -------------------------------------------------- coro: sleeping tasks */

struct sleeper {
    coro_frame co;
    int64_t delay;
};

struct sslot {
    coro_task t;
    struct sleeper f;
};

static int sleeper_fn(coro_ctx *c)
{
    struct sleeper *f = CORO_SELF(c, struct sleeper);
    CORO_BEGIN(c);
    CORO_SLEEP(c, f->delay);
    CORO_RETURN(c, c->rc);
    CORO_END(c);
}

static double coro_sleepers(struct sslot *s, const int64_t *delay, long n)
{
    coro_loop L;
    coro_loop_init(&L, NULL);
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++) {
        s[i].f.delay = delay[i];
        coro_spawn(&L, &s[i].t, coro_frame_init(&s[i].f.co, sleeper_fn));
    }
    while (coro_loop_task_count(&L)) coro_loop_run_once(&L);
    int64_t dt = bench_now() - t0;
    for (long i = 0; i < n; i++)
        if (coro_task_result(&s[i].t) != 0) {
            fprintf(stderr, "bench_timers: sleeper %ld failed\n", i);
            exit(1);
        }
    coro_loop_close(&L);
    return (double)dt / (double)n;
}

/* ------------------------------------------------ pthread: sleeping threads */

static struct timespec t_base;
static const int64_t *t_delay;

static void *sleeper_thread(void *arg)
{
    long i = (long)(intptr_t)arg;
    int64_t ns = (int64_t)t_base.tv_nsec + t_delay[i];
    struct timespec ts = {t_base.tv_sec + (time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
    }
    return NULL;
}

static double pthread_sleepers(const int64_t *delay, long n)
{
    pthread_t *th = (pthread_t *)calloc((size_t)n, sizeof *th);
    t_delay = delay;
    int64_t t0 = bench_now();
    clock_gettime(CLOCK_MONOTONIC, &t_base);
    for (long i = 0; i < n; i++)
        if (pthread_create(&th[i], NULL, sleeper_thread, (void *)(intptr_t)i) != 0) {
            fprintf(stderr, "bench_timers: pthread_create failed at %ld\n", i);
            exit(1);
        }
    for (long i = 0; i < n; i++) pthread_join(th[i], NULL);
    int64_t dt = bench_now() - t0;
    free(th);
    return (double)dt / (double)n;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    long ni;
    if (bench_icount(argc, argv, "timers", &ni)) { /* callgrind, by hand */
        int64_t *d = (int64_t *)map(sizeof(int64_t) * (size_t)ni);
        for (long i = 0; i < ni; i++) d[i] = next_delay();
        double a0, l0;
        coro_timers((coro_call *)map(sizeof(coro_call) * (size_t)ni), d, ni, &a0, &l0);
        return 0;
    }
    if (bench_icount_usage(argc, argv)) return 2;
    int runs = bench_runs(5);
    long n = bench_size(200000, 1000000);  /* call_at timers */
    long ns = bench_size(100000, 1000000); /* sleeping tasks */
    long nt = bench_size(2000, 10000);     /* sleeping threads */
    long nmax = n > ns ? n : ns;
    double vc[BENCH_MAX_RUNS], arm[BENCH_MAX_RUNS], late[BENCH_MAX_RUNS];
    double vs[BENCH_MAX_RUNS], vp[BENCH_MAX_RUNS];
    char extra[160];

    bench_banner("timers", "N timers with deadlines spread over 10 ms, armed then fired");
    printf("   coro: %ld coro_call_at timers; %ld sleeping tasks; pthread: %ld sleeping "
           "threads; %d runs each\n", n, ns, nt, runs);
    int64_t *delay = (int64_t *)map(sizeof(int64_t) * (size_t)nmax);
    for (long i = 0; i < nmax; i++) delay[i] = next_delay();
    coro_call *k = (coro_call *)map(sizeof(coro_call) * (size_t)n);
    struct sslot *s = (struct sslot *)map(sizeof(struct sslot) * (size_t)ns);

    double a0, l0;
    coro_timers(k, delay, n / 10 + 1, &a0, &l0); /* warm-up */
    coro_sleepers(s, delay, ns / 10 + 1);
    pthread_sleepers(delay, nt / 10 + 1);
    for (int r = 0; r < runs; r++) {
        bench_progress("timers run %d/%d", r + 1, runs);
        vc[r] = coro_timers(k, delay, n, &arm[r], &late[r]);
        vs[r] = coro_sleepers(s, delay, ns);
        vp[r] = pthread_sleepers(delay, nt);
    }
    bench_stats a = bench_stats_of(arm, runs), l = bench_stats_of(late, runs);
    snprintf(extra, sizeof extra, "n=%ld arm_ns=%.4g late_ms=%.4g api=coro_call_at", n,
             a.median, l.median / 1e6);
    bench_report("timers", "coro", "ns/op", vc, runs, extra);
    printf("   coro call_at: arming %.1f ns/timer; last callback %.1f ms after the last "
           "deadline (medians)\n", a.median, l.median / 1e6);
    snprintf(extra, sizeof extra, "n=%ld api=CORO_SLEEP", ns);
    bench_report("timers_sleep", "coro", "ns/op", vs, runs, extra);
    snprintf(extra, sizeof extra, "n=%ld api=clock_nanosleep", nt);
    bench_report("timers_sleep", "pthread", "ns/op", vp, runs, extra);
    return 0;
}
