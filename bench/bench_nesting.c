/* bench_nesting.c - resume cost of a coroutine awaited deep down a chain.
 *
 * A chain of D frames: the task's root frame awaits a child (CORO_AWAIT),
 * which awaits a child, ... and the innermost (D-th) frame does CORO_YIELD
 * N times. Depth 1 means the root frame itself yields (no await at all).
 * Two such tasks ping-pong through the ready queue exactly as in
 * bench_switch, so nesting_d1 reproduces the switch figure; ns per resume
 * = total / (2N). Every run interleaves depths 1 and 16 in 10 chunks of
 * N/10 yields (order swapped chunk by chunk), so a burst of noise on the
 * shared VM hits both alike; the per-run ratio d16/d1 is reported too.
 * Depth 64 (2 chunks per run) is shown for information.
 * The library resumes the leaf frame directly, so the ratio should be ~1;
 * a design that re-enters from the root would pay per level (peers.md:
 * ~2 ns per level for nested protothreads).
 */
#include "bench.h"

#include "coro_loop.h"

#define MAX_DEPTH 64

struct level {
    coro_frame co;
    struct level *child; /* NULL: the innermost frame */
    long i, n;
};

static int level_fn(coro_ctx *c)
{
    struct level *f = CORO_SELF(c, struct level);
    CORO_BEGIN(c);
    if (f->child) {
        f->child->n = f->n;
        CORO_AWAIT(c, coro_frame_init(&f->child->co, level_fn));
        CORO_RETURN(c, c->rc + 1);
    }
    for (f->i = 0; f->i < f->n; f->i++) CORO_YIELD(c);
    CORO_RETURN(c, 1);
    CORO_END(c);
}

/* Total ns for two tasks whose depth-d chains yield n times each. */
static int64_t nested_pingpong(int d, long n)
{
    static struct level chain[2][MAX_DEPTH];
    coro_loop L;
    coro_task t[2];
    coro_loop_init(&L, NULL);
    int64_t t0 = bench_now();
    for (int k = 0; k < 2; k++) {
        for (int j = 0; j < d; j++) chain[k][j].child = j + 1 < d ? &chain[k][j + 1] : NULL;
        chain[k][0].n = n;
        coro_spawn(&L, &t[k], coro_frame_init(&chain[k][0].co, level_fn));
    }
    while (coro_loop_task_count(&L)) coro_loop_run_once(&L);
    int64_t dt = bench_now() - t0;
    for (int k = 0; k < 2; k++)
        if (coro_task_result(&t[k]) != d || chain[k][d - 1].i != n) {
            fprintf(stderr, "bench_nesting: depth %d went wrong (%d)\n", d,
                    coro_task_result(&t[k]));
            exit(1);
        }
    coro_loop_close(&L);
    return dt;
}

int main(void)
{
    enum { CHUNKS = 10 };
    int runs = bench_runs(7);
    long n = bench_n(5000000), cn = n / CHUNKS > 0 ? n / CHUNKS : 1;
    double v1[BENCH_MAX_RUNS], v16[BENCH_MAX_RUNS], v64[BENCH_MAX_RUNS];
    double ratio[BENCH_MAX_RUNS];
    char extra[64];

    n = cn * CHUNKS;
    bench_banner("nesting", "resume of a yield at the bottom of an await chain");
    printf("   2 tasks x %ld yields at depth 1, 16 and 64 (frames in the chain); "
           "%d runs, each interleaving the depths in %d chunks\n", n, runs, CHUNKS);
    nested_pingpong(16, cn); /* warm-up */
    for (int r = 0; r < runs; r++) {
        int64_t t1 = 0, t16 = 0, t64 = 0;
        bench_progress("nesting run %d/%d", r + 1, runs);
        for (int k = 0; k < CHUNKS; k++) {
            /* Alternate the order so that neither depth always goes first. */
            if ((r + k) & 1) {
                t16 += nested_pingpong(16, cn);
                t1 += nested_pingpong(1, cn);
            } else {
                t1 += nested_pingpong(1, cn);
                t16 += nested_pingpong(16, cn);
            }
            if (k % 5 == 0) t64 += nested_pingpong(64, cn); /* 2 chunks: info */
        }
        v1[r] = (double)t1 / (2.0 * (double)n);
        v16[r] = (double)t16 / (2.0 * (double)n);
        v64[r] = (double)t64 / (2.0 * 2.0 * (double)cn);
        ratio[r] = v16[r] / v1[r];
    }
    snprintf(extra, sizeof extra, "n=%ld depth=1", 2 * n);
    bench_report("nesting_d1", "coro", "ns/op", v1, runs, extra);
    snprintf(extra, sizeof extra, "n=%ld depth=16", 2 * n);
    bench_report("nesting_d16", "coro", "ns/op", v16, runs, extra);
    snprintf(extra, sizeof extra, "n=%ld depth=64", 2 * 2 * cn);
    bench_report("nesting_d64", "coro", "ns/op", v64, runs, extra);
    bench_report("nesting_ratio", "coro", "d16/d1", ratio, runs,
                 "note=median_of_per-run_ratios");
    bench_target_le("nesting_ratio", "coro", 1.3);
    return 0;
}
