/* bench_memory.c - B6, the memory of many parked tasks.
 *
 * Each measurement: read Rss (/proc/self/smaps_rollup), then allocate and
 * park everything, then read Rss again; bytes per task = delta / N.
 *
 * memory_sleep, coro: N = 1,000,000 tasks, each one coro_task plus the
 *          minimal frame `struct { coro_frame co; }`, in one mmap'd array
 *          (allocated after the "before" reading, so its pages count). Each
 *          task does CORO_SLEEP(c, CORO_S(3600)); one loop iteration parks
 *          them all in the timer tree. The loop runs on the virtual clock,
 *          so afterwards time jumps an hour and every task wakes and
 *          finishes (checked). The figure includes: the task records, the
 *          frames, the timer (it lives inside the task's handle), page
 *          rounding of the array; the loop itself never allocates.
 * memory_gate, coro: the same tasks awaiting one shared future
 *          (CORO_AWAIT_FUTURE(c, &gate)): the B6 "gate" shape. The gate
 *          is then completed and every task finishes.
 * pthread (both rows): N = 10,000 threads with default attributes (8 MiB
 *          stack reserved, only touched pages are resident) blocked on one
 *          condition variable; the figure includes their resident stack
 *          pages, glibc's thread descriptor and TLS (inside the stack
 *          mapping), and the pthread_t array (8 B/thread). It does NOT
 *          include kernel memory (kernel stack, task_struct, page tables),
 *          which Rss never shows: printed separately as a hint from
 *          /proc/meminfo. A thread parked in nanosleep costs the same.
 * memory_sizeof: sizeof(coro_task) + sizeof the minimal frame, the floor
 *          the measured figures approach.
 * memory_total: memory_gate plus the kernel memory the tasks cost, which Rss
 *          never shows: this process's page tables (VmPTE delta) for both,
 *          and for threads the kernel stacks (KernelStack delta of
 *          /proc/meminfo: 16 KiB a thread; system-wide, but 10,000 threads
 *          dwarf what other processes do meanwhile). task_struct and the
 *          other slab objects of a thread are still not counted.
 * memory_max (tasks, higher is better): the largest count parked in this
 *          run. coro: N (1,000,000; 10,000,000 under `make bench-full`),
 *          which always fits: a lower bound, with the projection
 *          MemAvailable / bytes per task in the details. pthread: 10,000
 *          in the quick profile (a lower bound: nothing failed); in the
 *          full profile threads are created until pthread_create fails, and
 *          the count and the error are reported. The machine-wide limits
 *          (pid_max, 32,768 here, and threads-max) are shared with every
 *          other process, which could not fork while we hold them all: the
 *          run stops 512 threads short of them, and says so, unless
 *          BENCH_THREADS_TO_FAILURE=1.
 * Scaling chart (POINT chart=memory): Rss delta against the task count,
 *          one run per count (coro 1k..N, gate shape; threads 100..10k, or
 *          up to the failure in full).
 */
#include "bench.h"

#include <pthread.h>
#include <sys/mman.h>

#include "coro_loop.h"

struct minimal {
    coro_frame co;
};

struct slot {
    coro_task t;
    struct minimal f;
};

static coro_future gate_storage;
static coro_future *gate; /* via a pointer: see README, "gcc -Warray-bounds" */

static int sleeper_fn(coro_ctx *c)
{
    CORO_BEGIN(c);
    CORO_SLEEP(c, CORO_S(3600));
    CORO_END(c);
}

static int gated_fn(coro_ctx *c)
{
    CORO_BEGIN(c);
    CORO_AWAIT_FUTURE(c, gate);
    CORO_END(c);
}

/* Anonymous memory, pre-faulted (MAP_POPULATE): the pages are resident,
 * and counted, at once; page faults cost ~12 us each on the project's VM
 * and would dominate the time, not the figure. */
static void *map(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    return p;
}

/* Parks n tasks (sleeping, or on the gate); returns bytes per task and
 * the ns per task it took to spawn and park them. */
static double coro_parked(long n, int gated, double *park_ns, double *kernel)
{
    coro_virtual v;
    coro_loop L;
    coro_loop_init(&L, coro_virtual_init(&v, 0));
    gate = &gate_storage;
    coro_future_init(gate);
    size_t bytes = sizeof(struct slot) * (size_t)n;

    long long pte0 = bench_status("VmPTE");
    long long before = bench_rss();
    int64_t t0 = bench_now();
    struct slot *s = (struct slot *)map(bytes);
    for (long i = 0; i < n; i++)
        coro_spawn(&L, &s[i].t, coro_frame_init(&s[i].f.co, gated ? gated_fn : sleeper_fn));
    coro_loop_run_once(&L); /* every task runs to its await and parks */
    int64_t t1 = bench_now();
    long long after = bench_rss();
    long long pte1 = bench_status("VmPTE");

    /* Sanity: all parked, none finished. Then release them all. */
    if (coro_loop_task_count(&L) != (unsigned)n || !coro__q_empty(&L.ready) ||
        (!gated && !L.timers) || (gated && !coro__ring_tail(gate))) {
        fprintf(stderr, "bench_memory: tasks did not park\n");
        exit(1);
    }
    if (gated) coro_future_set_result(&L, gate, 0);
    while (coro_loop_task_count(&L)) coro_loop_run_once(&L); /* virtual: instant */
    for (long i = 0; i < n; i++)
        if (coro_task_result(&s[i].t) != 0) {
            fprintf(stderr, "bench_memory: task %ld failed\n", i);
            exit(1);
        }
    if (!gated && coro_loop_time(&L) != CORO_S(3600)) {
        fprintf(stderr, "bench_memory: clock did not reach the deadline\n");
        exit(1);
    }
    coro_loop_close(&L);
    munmap(s, bytes);
    *park_ns = (double)(t1 - t0) / (double)n;
    *kernel = (double)(pte1 - pte0) / (double)n;
    return (double)(after - before) / (double)n;
}

/* ------------------------------------------------------------- pthread */

static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t parked_cv = PTHREAD_COND_INITIALIZER; /* main waits  */
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;   /* threads wait */
static long nparked;
static int open_gate;

static void *parked_thread(void *arg)
{
    pthread_mutex_lock(&m);
    nparked++;
    pthread_cond_signal(&parked_cv);
    while (!open_gate) pthread_cond_wait(&gate_cv, &m);
    pthread_mutex_unlock(&m);
    return arg;
}

static double pthread_parked(long n, double *kernel_hint, double *park_ns, double *kernel)
{
    nparked = 0;
    open_gate = 0;
    long long kbefore = bench_meminfo("KernelStack") + bench_meminfo("PageTables");
    long long ks0 = bench_meminfo("KernelStack"), pte0 = bench_status("VmPTE");
    long long before = bench_rss();
    int64_t t0 = bench_now();
    pthread_t *th = (pthread_t *)map(sizeof(pthread_t) * (size_t)n);
    for (long i = 0; i < n; i++)
        if (pthread_create(&th[i], NULL, parked_thread, NULL) != 0) {
            fprintf(stderr, "bench_memory: pthread_create failed at %ld\n", i);
            exit(1);
        }
    pthread_mutex_lock(&m);
    while (nparked < n) pthread_cond_wait(&parked_cv, &m);
    pthread_mutex_unlock(&m);
    int64_t t1 = bench_now();
    long long after = bench_rss();
    long long kafter = bench_meminfo("KernelStack") + bench_meminfo("PageTables");
    long long ks1 = bench_meminfo("KernelStack"), pte1 = bench_status("VmPTE");

    pthread_mutex_lock(&m);
    open_gate = 1;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&m);
    for (long i = 0; i < n; i++) pthread_join(th[i], NULL);
    munmap(th, sizeof(pthread_t) * (size_t)n);
    *kernel_hint = (double)(kafter - kbefore) / (double)n;
    *kernel = (double)((ks1 - ks0) + (pte1 - pte0)) / (double)n;
    *park_ns = (double)(t1 - t0) / (double)n;
    return (double)(after - before) / (double)n;
}

/* A number from a /proc/sys file, -1 if unreadable. */
static long long sys_long(const char *path)
{
    long long v = -1;
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    if (fscanf(f, "%lld", &v) != 1) v = -1;
    fclose(f);
    return v;
}

/* Threads (pids) in use on the whole machine: /proc/loadavg's "r/total". */
static long long threads_in_use(void)
{
    long long total = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f) return -1;
    if (fscanf(f, "%*f %*f %*f %*d/%lld", &total) != 1) total = -1;
    fclose(f);
    return total;
}

/* Full profile: parked threads until pthread_create fails. Returns the
 * count; *err the error; *bytes the Rss delta per thread at that count. */
static long pthread_until_failure(long cap, int *err, double *bytes)
{
    nparked = 0;
    open_gate = 0;
    long n = 0;
    long long before = bench_rss();
    pthread_t *th = (pthread_t *)map(sizeof(pthread_t) * (size_t)cap);
    *err = 0;
    while (n < cap) {
        int rc = pthread_create(&th[n], NULL, parked_thread, NULL);
        if (rc != 0) {
            *err = rc;
            break;
        }
        n++;
        if (n % 5000 == 0) bench_progress("memory_max: %ld threads", n);
    }
    pthread_mutex_lock(&m);
    while (nparked < n) pthread_cond_wait(&parked_cv, &m);
    pthread_mutex_unlock(&m);
    long long after = bench_rss();
    pthread_mutex_lock(&m);
    open_gate = 1;
    pthread_cond_broadcast(&gate_cv);
    pthread_mutex_unlock(&m);
    for (long i = 0; i < n; i++) pthread_join(th[i], NULL);
    munmap(th, sizeof(pthread_t) * (size_t)cap);
    *bytes = n ? (double)(after - before) / (double)n : 0;
    return n;
}

int main(int argc, char **argv)
{
    if (bench_icount_usage(argc, argv)) return 2;
    int runs = bench_runs(5);
    long n = bench_size(1000000, 10000000), nt = bench_n(10000);
    double vs[BENCH_MAX_RUNS], vg[BENCH_MAX_RUNS], vp[BENCH_MAX_RUNS];
    double ps[BENCH_MAX_RUNS], pg[BENCH_MAX_RUNS], pp[BENCH_MAX_RUNS];
    double kh[BENCH_MAX_RUNS], floor_[BENCH_MAX_RUNS];
    double kc[BENCH_MAX_RUNS], kg[BENCH_MAX_RUNS], kp[BENCH_MAX_RUNS];
    char extra[160];

    bench_banner("memory", "Rss of many parked tasks / threads");
    printf("   coro: %ld tasks (sleeping 1 h, or awaiting one gate future); "
           "pthread: %ld threads on a condvar; %d runs each\n", n, nt, runs);
    printf("   sizeof(coro_task) = %zu, sizeof(coro_frame) = %zu, minimal frame = %zu, "
           "task + frame = %zu bytes\n", sizeof(coro_task), sizeof(coro_frame),
           sizeof(struct minimal), sizeof(struct slot));
    long long avail = bench_meminfo("MemAvailable");

    for (int r = 0; r < runs; r++) {
        bench_progress("memory run %d/%d", r + 1, runs);
        vs[r] = coro_parked(n, 0, &ps[r], &kc[r]);
        vg[r] = coro_parked(n, 1, &pg[r], &kg[r]);
        vp[r] = pthread_parked(nt, &kh[r], &pp[r], &kp[r]);
        floor_[r] = (double)sizeof(struct slot);
        kg[r] += vg[r]; /* memory_total: Rss + kernel */
        kp[r] += vp[r];
    }
    snprintf(extra, sizeof extra, "n=%ld", n);
    bench_report("memory_sleep", "coro", "bytes/task", vs, runs, extra);
    double cg = bench_report("memory_gate", "coro", "bytes/task", vg, runs, extra);
    snprintf(extra, sizeof extra, "n=%ld", nt);
    double p = bench_report("memory_sleep", "pthread", "bytes/task", vp, runs, extra);
    bench_report("memory_gate", "pthread", "bytes/task", vp, runs, extra);
    bench_report("memory_sizeof", "coro", "bytes/task", floor_, runs,
                 "note=sizeof(coro_task)+sizeof(minimal_frame)");
    snprintf(extra, sizeof extra, "n=%ld note=Rss+VmPTE", n);
    bench_report("memory_total", "coro", "bytes/task", kg, runs, extra);
    snprintf(extra, sizeof extra, "n=%ld note=Rss+VmPTE+KernelStack", nt);
    bench_report("memory_total", "pthread", "bytes/task", kp, runs, extra);
    bench_stats k = bench_stats_of(kh, runs);
    printf("   pthread kernel-side hint (KernelStack+PageTables, system-wide): "
           "%.0f bytes/thread more, not in Rss\n", k.median);
    printf("   time to spawn and park: coro sleep %.1f ns/task, coro gate %.1f "
           "ns/task, pthread %.0f ns/thread (medians; coro: incl. mmap+populate of the "
           "array and the VM's first-touch cost; pthread: incl. creation)\n",
           bench_stats_of(ps, runs).median, bench_stats_of(pg, runs).median,
           bench_stats_of(pp, runs).median);

    /* The scaling chart: one run per count. */
    double pk, pt, pq, one[BENCH_MAX_RUNS];
    for (long c = 1000; c < n; c *= 10) {
        bench_progress("memory scaling: coro %ld", c);
        bench_point("memory", "coro", (double)c, coro_parked(c, 1, &pt, &pq) * (double)c, NULL);
    }
    bench_point("memory", "coro", (double)n, cg * (double)n, NULL);
    for (long c = 100; c < nt; c *= 10) {
        bench_progress("memory scaling: pthread %ld", c);
        bench_point("memory", "pthread", (double)c,
                    pthread_parked(c, &pk, &pt, &pq) * (double)c, NULL);
    }
    bench_point("memory", "pthread", (double)nt, p * (double)nt, NULL);

    /* The largest count: coro's always fits (a lower bound); threads run
     * out in the full profile. */
    for (int r = 0; r < runs; r++) one[r] = (double)n;
    snprintf(extra, sizeof extra, "better=higher bound=lower n=%ld fits_est=%.3g "
             "note=MemAvailable/bytes_per_task", n,
             avail > 0 && cg > 0 ? (double)avail / cg : 0.0);
    bench_report("memory_max", "coro", "tasks", one, runs, extra);
    if (bench_full()) {
        int err;
        double per;
        bench_progress("memory_max: threads until pthread_create fails");
        /* pid_max and threads-max are the whole machine's: other processes
         * would fail to fork while we hold every pid, so unless
         * BENCH_THREADS_TO_FAILURE=1 we stop MARGIN short of them (the
         * per-process limits, max_map_count and memory, fail for real). */
        long cap = 1000000, margin = getenv("BENCH_THREADS_TO_FAILURE") ? 0 : 512;
        long long pid_max = sys_long("/proc/sys/kernel/pid_max");
        long long threads_max = sys_long("/proc/sys/kernel/threads-max");
        long long in_use = threads_in_use();
        const char *limit = "none";
        if (pid_max > 0 && in_use > 0 && pid_max - in_use - margin < cap) {
            cap = (long)(pid_max - in_use - margin);
            limit = "pid_max";
        }
        if (threads_max > 0 && in_use > 0 && threads_max - in_use - margin < cap) {
            cap = (long)(threads_max - in_use - margin);
            limit = "threads-max";
        }
        long got = pthread_until_failure(cap, &err, &per);
        for (int r = 0; r < runs; r++) one[r] = (double)got;
        char why[64];
        if (err)
            snprintf(why, sizeof why, "%s", strerror(err));
        else
            snprintf(why, sizeof why, "stopped_%ld_short_of_%s", margin, limit);
        for (char *q = why; *q; q++)
            if (*q == ' ') *q = '_'; /* key=value values have no spaces */
        snprintf(extra, sizeof extra, "better=higher n=%ld error=%s bytes_per_thread=%.0f "
                 "pid_max=%lld threads_in_use_before=%lld", got, why, per, pid_max, in_use);
        printf("   threads: %ld created and parked, then %s\n", got,
               err ? "pthread_create failed" : "stopped at the safety margin");
        bench_report("memory_max", "pthread", "tasks", one, runs, extra);
        bench_point("memory", "pthread", (double)got, per * (double)got, "note=at_the_thread_limit");
    } else {
        for (int r = 0; r < runs; r++) one[r] = (double)nt;
        snprintf(extra, sizeof extra, "better=higher bound=lower n=%ld "
                 "note=quick_profile_stops_at_n_(bench-full_runs_to_failure)", nt);
        bench_report("memory_max", "pthread", "tasks", one, runs, extra);
    }
    bench_target_le("memory_sleep", "coro", 96);
    bench_target_le("memory_gate", "coro", 96);
    bench_target_ratio("memory_total", "pthread", 100);
    bench_target_ratio("memory_gate", "go", 30);
    return 0;
}
