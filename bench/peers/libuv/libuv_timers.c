/* The libuv peer of coro's benchmarks: B5, a timer storm (as
 * bench/bench_timers.c's `timers` row). N uv_timer_t handles are started
 * with deadlines uniformly over the next 10 ms (the same xorshift64* as
 * coro's), then uv_run fires them all; ns per timer = time from the first
 * uv_timer_start to the end of uv_run / N. libuv's timeouts are whole
 * milliseconds (its API), so the delays are rounded to ms; its min-heap
 * breaks ties in start order. The handles (152 bytes each) are caller
 * storage, pre-faulted, as coro's coro_call records; closing them afterwards
 * is not timed. N = 200,000 (1,000,000 under `make bench-full`).
 */
#include "bench.h"

#include <sys/mman.h>
#include <uv.h>

#define WINDOW_NS 10000000

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static int64_t next_delay(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (int64_t)((rng * 0x2545F4914F6CDD1Dull >> 11) % WINDOW_NS);
}

static long fired;

static void on_timer(uv_timer_t *t)
{
    (void)t;
    fired++;
}

static double uv_timers(uv_timer_t *h, const uint64_t *delay_ms, long n)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    fired = 0;
    int64_t t0 = bench_now();
    uv_update_time(&loop);
    for (long i = 0; i < n; i++) {
        uv_timer_init(&loop, &h[i]);
        uv_timer_start(&h[i], on_timer, delay_ms[i], 0);
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    int64_t dt = bench_now() - t0;
    if (fired != n) {
        fprintf(stderr, "libuv_timers: %ld of %ld fired\n", fired, n);
        exit(1);
    }
    for (long i = 0; i < n; i++) uv_close((uv_handle_t *)&h[i], NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    uv_loop_close(&loop);
    return (double)dt / (double)n;
}

int main(void)
{
    int runs = bench_runs(5);
    long n = bench_size(200000, 1000000);
    double v[BENCH_MAX_RUNS];
    char extra[96];
    printf("== libuv: %s, %ld timers, %d runs\n", uv_version_string(), n, runs);
    uint64_t *d = (uint64_t *)malloc(sizeof *d * (size_t)n);
    uv_timer_t *h = (uv_timer_t *)mmap(NULL, sizeof *h * (size_t)n, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (!d || h == MAP_FAILED) {
        perror("alloc");
        return 1;
    }
    for (long i = 0; i < n; i++) d[i] = (uint64_t)((next_delay() + 500000) / 1000000);
    uv_timers(h, d, n / 10 + 1); /* warm-up */
    for (int r = 0; r < runs; r++) {
        bench_progress("timers run %d/%d", r + 1, runs);
        v[r] = uv_timers(h, d, n);
    }
    snprintf(extra, sizeof extra, "n=%ld api=uv_timer_start libuv=%s", n, uv_version_string());
    bench_report("timers", "libuv", "ns/op", v, runs, extra);
    return 0;
}
