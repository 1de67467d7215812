// The Boost.Context peer of coro's benchmarks: B1 (switch) and B2 (spawn +
// complete), each with Boost's two layers:
//   fcontext      boost::context::detail::make_fcontext / jump_fcontext, the
//                 assembly switch everything in Boost.Context (and
//                 Boost.Fiber, Boost.Coroutine2) is built on; what Boost's own
//                 performance/fcontext benchmark measures;
//   continuation  boost::context::callcc / continuation::resume, the public
//                 API over it.
// The faster of the two is the reported value (api= in the details); both
// are printed. Uses bench/bench.h for the statistics and the RESULT lines.
//
// B1: one context ping-pongs with main: each resume is one switch (from one
//     stack to the other), so ns per switch = total / (2 * iterations).
//     Unlike coro's switch, no scheduler or ready queue is involved: it is
//     the raw register-and-stack swap.
// B2: create a context on a stack, enter it, let its function end (return
//     to the creator); one at a time. fcontext: make_fcontext on one
//     preallocated 64 KiB stack, reused (an expert's pool of one);
//     continuation: callcc with a pooled_fixedsize_stack (Boost's pool).
#include "bench.h"

#include <boost/context/continuation.hpp>
#include <boost/context/detail/fcontext.hpp>
#include <boost/context/pooled_fixedsize_stack.hpp>
#include <boost/version.hpp>

namespace ctx = boost::context;
using ctx::detail::fcontext_t;
using ctx::detail::jump_fcontext;
using ctx::detail::make_fcontext;
using ctx::detail::transfer_t;

static const std::size_t STACK = 64 * 1024;
static char *stack_mem;

// ------------------------------------------------------------------ B1

static void pong(transfer_t t)
{
    for (;;) t = jump_fcontext(t.fctx, nullptr);
}

static double switch_fcontext(long n)
{
    fcontext_t c = make_fcontext(stack_mem + STACK, STACK, pong);
    transfer_t t = {c, nullptr};
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++) t = jump_fcontext(t.fctx, nullptr);
    return (double)(bench_now() - t0) / (2.0 * (double)n);
}

static double switch_continuation(long n)
{
    ctx::continuation c = ctx::callcc([](ctx::continuation &&sink) {
        for (;;) sink = sink.resume();
        return std::move(sink);
    });
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++) c = c.resume();
    return (double)(bench_now() - t0) / (2.0 * (double)n);
}

// ------------------------------------------------------------------ B2

static void finish_at_once(transfer_t t)
{
    jump_fcontext(t.fctx, nullptr); // done: back to the creator, never resumed
}

static double spawn_fcontext(long n)
{
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++) {
        fcontext_t c = make_fcontext(stack_mem + STACK, STACK, finish_at_once);
        transfer_t t = jump_fcontext(c, (void *)i);
        bench_sink += (uintptr_t)t.data;
    }
    return (double)(bench_now() - t0) / (double)n;
}

static double spawn_continuation(ctx::pooled_fixedsize_stack &pool, long n)
{
    int64_t t0 = bench_now();
    for (long i = 0; i < n; i++) {
        ctx::continuation c = ctx::callcc(std::allocator_arg, pool,
                                          [](ctx::continuation &&sink) { return std::move(sink); });
        bench_sink += (uintptr_t)(bool)c; // false: the context has finished
    }
    return (double)(bench_now() - t0) / (double)n;
}

// ------------------------------------------------------------------ main

typedef double measure_fn(long n, void *arg);

static void measure(const char *bench, long n, double (*fcont)(long),
                    double (*cont)(long, void *), void *arg, const char *extra_fmt)
{
    int runs = bench_runs(7);
    double vf[BENCH_MAX_RUNS], vc[BENCH_MAX_RUNS];
    char extra[160];
    fcont(n / 10 + 1); // warm-up
    cont(n / 10 + 1, arg);
    for (int r = 0; r < runs; r++) {
        bench_progress("%s run %d/%d", bench, r + 1, runs);
        vf[r] = fcont(n);
        vc[r] = cont(n, arg);
    }
    bench_stats f = bench_stats_of(vf, runs), c = bench_stats_of(vc, runs);
    printf("   %s: fcontext %.2f ns, continuation %.2f ns (medians)\n", bench, f.median,
           c.median);
    int use_f = f.median <= c.median;
    snprintf(extra, sizeof extra, extra_fmt, n);
    char all[240];
    snprintf(all, sizeof all, "%s api=%s fcontext=%.4g continuation=%.4g boost=%d", extra,
             use_f ? "fcontext" : "continuation", f.median, c.median, BOOST_VERSION);
    bench_report(bench, "boost_context", "ns/op", use_f ? vf : vc, runs, all);
}

static double sw_cont(long n, void *) { return switch_continuation(n); }
static double sp_cont(long n, void *arg)
{
    return spawn_continuation(*(ctx::pooled_fixedsize_stack *)arg, n);
}

int main(int argc, char **argv)
{
    stack_mem = (char *)aligned_alloc(64, STACK);
    memset(stack_mem, 0, STACK);
    ctx::pooled_fixedsize_stack pool(STACK);
    long ni; // `icount KERNEL N`: one untimed run, for callgrind (bench/README.md)
    if (bench_icount(argc, argv, "switch", &ni)) return (int)(switch_fcontext(ni) < 0);
    if (bench_icount(argc, argv, "switch_continuation", &ni)) return (int)(sw_cont(ni, nullptr) < 0);
    if (bench_icount(argc, argv, "spawn", &ni)) return (int)(spawn_fcontext(ni) < 0);
    if (bench_icount(argc, argv, "spawn_continuation", &ni)) return (int)(sp_cont(ni, &pool) < 0);
    if (bench_icount_usage(argc, argv)) return 2;
    printf("== boost_context: Boost %d.%d.%d, fcontext and continuation\n",
           BOOST_VERSION / 100000, BOOST_VERSION / 100 % 1000, BOOST_VERSION % 100);
    long nsw = bench_size(5000000, 20000000);
    long nsp = bench_size(2000000, 5000000);
    measure("switch", nsw, switch_fcontext, sw_cont, nullptr, "n=%ld");
    measure("spawn", nsp, spawn_fcontext, sp_cont, &pool, "n=%ld stack=65536");
    free(stack_mem);
    return 0;
}
