/* bench.h - what every benchmark shares: a clock, repeated measurements
 * reduced to a median and a spread, RSS readings, and the output protocol
 * that bench/run.sh collects (see bench/README.md).
 *
 * Include it FIRST (it sets the feature-test macros), then coro_loop.h.
 *
 * CHEAT-SHEET
 *   int runs = bench_runs(7);                 // BENCH_RUNS overrides (min 5)
 *   long n = bench_n(1000000);                // scaled by BENCH_SCALE
 *   double v[BENCH_MAX_RUNS];
 *   for (int r = 0; r < runs; r++) {
 *       int64_t t0 = bench_now();
 *       ... n operations ...
 *       v[r] = (double)(bench_now() - t0) / n;   // ns/op
 *   }
 *   bench_report("switch", "coro", "ns/op", v, runs, "N=...");
 *   bench_target_le("switch", "coro", 10);    // acceptance target (optional)
 *   long big = bench_size(100000, 1000000);   // quick / `make bench-full` size
 *   bench_point("memory", "coro", n, bytes, NULL);   // a point of a chart
 *   if (bench_icount(argc, argv, "switch", &n)) { kernel(n); return 0; }
 *
 * OUTPUT PROTOCOL (one machine line per measurement, on stdout)
 *   RESULT bench=<id> impl=<name> unit=<unit> value=<median> spread=<x>
 *          spread_kind=range runs=<n> [min=<x> max=<x>] [more key=value]
 *   TARGET bench=<id> impl=<name> le=<x>        value must be <= x
 *   TARGET bench=<id> impl=<name> ge=<x>        value must be >= x
 *   TARGET bench=<id> ratio=<peer> ge=<x>       peer/coro must be >= x
 *   POINT chart=<name> impl=<name> x=<x> y=<y>  a point of a scaling chart
 *   SKIP [impl=<peer>] [bench=<id,id...>] <reason>   could not run
 *   A RESULT with better=higher (a count, a rate) is compared the other
 *   way round: its ratio column is coro/peer. bound=lower: the value is a
 *   lower bound (nothing failed before the run stopped).
 *   Anything else on stdout is for humans; progress goes to stderr.
 */
#ifndef BENCH_H
#define BENCH_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* clock_gettime, mmap's MAP_ANONYMOUS, pthreads */
#endif

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_MAX_RUNS 64

/* Monotonic time in ns. */
static inline int64_t bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + (int64_t)ts.tv_nsec;
}

/* Keeps the optimiser from deleting work whose result is unused. */
static volatile uintptr_t bench_sink;

/* Timed repetitions: BENCH_RUNS from the environment, else `def`; never
 * fewer than 5 (the runner's contract) nor more than BENCH_MAX_RUNS. */
static inline int bench_runs(int def)
{
    const char *s = getenv("BENCH_RUNS");
    int n = s ? atoi(s) : def;
    if (n < 5) n = 5;
    if (n > BENCH_MAX_RUNS) n = BENCH_MAX_RUNS;
    return n;
}

/* An iteration count scaled by BENCH_SCALE (e.g. 0.01 under callgrind). */
static inline long bench_n(long def)
{
    const char *s = getenv("BENCH_SCALE");
    double f = s ? atof(s) : 1.0;
    long n = (long)((double)def * (f > 0 ? f : 1.0));
    return n < 1 ? 1 : n;
}

/* 1 under `make bench-full` (BENCH_PROFILE=full): the large sizes. */
static inline int bench_full(void)
{
    const char *s = getenv("BENCH_PROFILE");
    return s && strcmp(s, "full") == 0;
}

/* The quick or the full size of a benchmark, scaled by BENCH_SCALE. */
static inline long bench_size(long quick, long full)
{
    return bench_n(bench_full() ? full : quick);
}

/* `prog icount KERNEL N`: the instruction-count mode of `make bench-check`
 * (bench/check.py runs it under callgrind at two sizes). Returns 1 and sets
 * *n if argv asks for `kernel`: the caller runs that kernel once, untimed,
 * and exits. */
static inline int bench_icount(int argc, char **argv, const char *kernel, long *n)
{
    if (argc < 4 || strcmp(argv[1], "icount") != 0 || strcmp(argv[2], kernel) != 0)
        return 0;
    *n = atol(argv[3]);
    return *n > 0;
}

/* An unknown `icount` kernel: a usage error. */
static inline int bench_icount_usage(int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, "usage: %s [icount KERNEL N]\n", argv[0]);
        return 2;
    }
    return 0;
}

/* Work added to a coro hot loop when built with -DBENCH_INJECT=K: K volatile
 * increments. Only `make bench-check BENCH_INJECT=K` builds it, to show that
 * an instruction-count regression is caught; normal builds have nothing. */
#ifdef BENCH_INJECT
#define BENCH_INJECTED()                                                       \
    do {                                                                       \
        for (int bench__k = 0; bench__k < (BENCH_INJECT); bench__k++) bench_sink++; \
    } while (0)
#else
#define BENCH_INJECTED() ((void)0)
#endif

/* Progress line on stderr (the runner shows it while a benchmark runs). */
static inline void bench_progress(const char *fmt, ...)
{
    va_list ap;
    fputs("  .. ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
}

/* Order statistics of n samples (n >= 1). */
typedef struct bench_stats {
    double median, min, max, q1, q3;
} bench_stats;

static int bench__cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Quantile by linear interpolation over sorted s[0..n-1]. */
static inline double bench__q(const double *s, int n, double q)
{
    double pos = q * (n - 1);
    int i = (int)pos;
    if (i >= n - 1) return s[n - 1];
    return s[i] + (pos - i) * (s[i + 1] - s[i]);
}

static inline bench_stats bench_stats_of(const double *v, int n)
{
    double s[BENCH_MAX_RUNS];
    bench_stats st;
    memcpy(s, v, sizeof(double) * (size_t)n);
    qsort(s, (size_t)n, sizeof(double), bench__cmp);
    st.median = bench__q(s, n, 0.5);
    st.min = s[0];
    st.max = s[n - 1];
    st.q1 = bench__q(s, n, 0.25);
    st.q3 = bench__q(s, n, 0.75);
    return st;
}

/* Prints a human line and the RESULT line for one measurement; `extra` is
 * appended to the RESULT line as-is (key=value pairs, or NULL). Returns
 * the median. The spread is max - min over the runs. */
static inline double bench_report(const char *bench, const char *impl,
                                  const char *unit, const double *v, int n,
                                  const char *extra)
{
    bench_stats st = bench_stats_of(v, n);
    double rel = st.median != 0 ? 100.0 * (st.max - st.min) / st.median : 0;
    printf("%-14s %-10s median %12.3f %-10s  min %.3f  max %.3f  (spread %.1f%%, %d runs)",
           bench, impl, st.median, unit, st.min, st.max, rel, n);
    if (strcmp(unit, "ns/op") == 0 && st.median > 0)
        printf("  = %.3g op/s", 1e9 / st.median);
    putchar('\n');
    printf("RESULT bench=%s impl=%s unit=%s value=%.6g spread=%.6g spread_kind=range"
           " runs=%d min=%.6g max=%.6g iqr=%.6g%s%s\n",
           bench, impl, unit, st.median, st.max - st.min, n, st.min, st.max,
           st.q3 - st.q1, extra ? " " : "", extra ? extra : "");
    fflush(stdout);
    return st.median;
}

/* One point of a scaling chart (build/bench/<chart>.svg): x and y in the
 * chart's units (memory: tasks, bytes); extra key=value pairs or NULL. */
static inline void bench_point(const char *chart, const char *impl, double x, double y,
                               const char *extra)
{
    printf("POINT chart=%s impl=%s x=%.6g y=%.6g%s%s\n", chart, impl, x, y,
           extra ? " " : "", extra ? extra : "");
    fflush(stdout);
}

/* Acceptance targets, checked and shown by the runner. */
static inline void bench_target_le(const char *bench, const char *impl, double x)
{
    printf("TARGET bench=%s impl=%s le=%g\n", bench, impl, x);
}

static inline void bench_target_ge(const char *bench, const char *impl, double x)
{
    printf("TARGET bench=%s impl=%s ge=%g\n", bench, impl, x);
}

/* peer/coro >= x (how many times coro beats the peer). */
static inline void bench_target_ratio(const char *bench, const char *peer, double x)
{
    printf("TARGET bench=%s ratio=%s ge=%g\n", bench, peer, x);
}

/* Resident set size in bytes: Rss of /proc/self/smaps_rollup (exact: it
 * sums the page tables' counts, unlike VmRSS in /proc/self/status, which
 * lags behind per-thread counters), else VmRSS; -1 if neither is there. */
static inline long long bench_rss(void)
{
    char line[256];
    long long kb = -1;
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    const char *key = "Rss:";
    if (!f) {
        f = fopen("/proc/self/status", "r");
        key = "VmRSS:";
    }
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, strlen(key)) == 0) {
            kb = atoll(line + strlen(key));
            break;
        }
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

/* A /proc/meminfo field in bytes (e.g. "KernelStack"), -1 if absent.
 * System-wide: only a rough hint of kernel memory a benchmark causes. */
static inline long long bench_meminfo(const char *field)
{
    char line[256];
    long long kb = -1;
    size_t len = strlen(field);
    FILE *f = fopen("/proc/meminfo", "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, len) == 0 && line[len] == ':') {
            kb = atoll(line + len + 1);
            break;
        }
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

/* A /proc/self/status field in bytes (e.g. "VmPTE", this process's page
 * tables), -1 if absent. */
static inline long long bench_status(const char *field)
{
    char line[256];
    long long kb = -1;
    size_t len = strlen(field);
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, field, len) == 0 && line[len] == ':') {
            kb = atoll(line + len + 1);
            break;
        }
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

/* The header every benchmark prints first. */
static inline void bench_banner(const char *name, const char *what)
{
    printf("== %s: %s\n", name, what);
#ifdef __VERSION__
    printf("   compiler: %s, built %s\n", __VERSION__,
#ifdef __OPTIMIZE__
           "optimised"
#else
           "NOT optimised"
#endif
    );
#endif
    fflush(stdout);
}

#endif /* BENCH_H */
