/* bench_io_nop.c - the loop's own cost per I/O operation: an io_uring NOP
 * awaited through coro against a raw liburing loop that submits and reaps
 * NOPs in the same batches (io_uring-notes.md section 6.3, item 1).
 *
 * coro:     B tasks, each awaiting CORO_IO(c, coro_nop(&op, c->loop)) in a
 *           loop. Every iteration of the loop submits the B NOPs the tasks
 *           queued in one io_uring_enter, reaps the B completions, and
 *           resumes the B tasks, which queue the next B: a batch of B.
 * liburing: the same ring set-up as coro's (SINGLE_ISSUER | DEFER_TASKRUN |
 *           SUBMIT_ALL, 256 SQ entries, CQ of 1,024, registered ring fd),
 *           then B x (io_uring_get_sqe + io_uring_prep_nop + set_data),
 *           io_uring_submit_and_wait(B), and a CQE walk with
 *           io_uring_cq_advance: the least a program can do per NOP.
 * One operation = one NOP (submitted, completed, reaped, and for coro the
 * task resumed); ns/op = wall time / NOPs. Rows: `nop` (batch 1: one task,
 * one io_uring_enter per NOP, the round trip), `nop_b32`, `nop_b256`; the
 * two sides alternate within each run.
 * Acceptance (issue 5): coro's rate >= 70% of raw liburing's, i.e.
 * liburing/coro >= 0.7 in the ratio column (ns/op: peer/coro).
 */
#include "bench.h"

#include "coro_io.h"

/* ---------------------------------------------------------------- coro */

struct nopper {
    coro_frame co;
    coro_io_op op;
    long left, errors;
};

static int nopper_fn(coro_ctx *c)
{
    struct nopper *f = CORO_SELF(c, struct nopper);
    CORO_BEGIN(c);
    while (f->left-- > 0) {
        CORO_IO(c, coro_nop(&f->op, c->loop));
        if (c->rc < 0) f->errors++;
        BENCH_INJECTED();
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

#define MAX_BATCH 256

static struct nopper nops[MAX_BATCH];
static coro_task tasks[MAX_BATCH];

/* ns per NOP for `iters` rounds of `batch` NOPs through coro. */
static double coro_nops(int batch, long iters, coro_io_stats *st)
{
    coro_loop L;
    coro_io io;
    int rc = coro_io_init(&io, &L, NULL);
    if (rc < 0 || coro_io_backend(&io) != CORO_IO_URING) {
        fprintf(stderr, "bench_io_nop: no io_uring (%s)\n", coro_io_strerror(rc));
        exit(1);
    }
    for (int i = 0; i < batch; i++) {
        memset(&nops[i], 0, sizeof nops[i]);
        nops[i].left = iters;
        coro_spawn(&L, &tasks[i], coro_frame_init(&nops[i].co, nopper_fn));
    }
    int64_t t0 = bench_now();
    while (coro_loop_task_count(&L) > 0)
        if (coro_loop_run_once(&L) < 0) break;
    int64_t dt = bench_now() - t0;
    long errors = 0;
    for (int i = 0; i < batch; i++) errors += nops[i].errors + (nops[i].left >= 0);
    if (errors || coro_loop_task_count(&L) != 0) {
        fprintf(stderr, "bench_io_nop: coro NOPs went wrong (%ld errors)\n", errors);
        exit(1);
    }
    if (st) *st = io.stats;
    coro_loop_close(&L);
    return (double)dt / ((double)batch * (double)iters);
}

/* ------------------------------------------------------------ liburing */

static int raw_ring(struct io_uring *ring)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof p);
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL |
              IORING_SETUP_CQSIZE;
    p.cq_entries = 1024;
    int rc = io_uring_queue_init_params(256, ring, &p);
    if (rc == -EINVAL) { /* an older kernel: what coro falls back to */
        memset(&p, 0, sizeof p);
        p.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_CQSIZE;
        p.cq_entries = 1024;
        rc = io_uring_queue_init_params(256, ring, &p);
    }
    if (rc == 0) io_uring_register_ring_fd(ring);
    return rc;
}

static double raw_nops(int batch, long iters)
{
    struct io_uring ring;
    if (raw_ring(&ring) < 0) {
        fprintf(stderr, "bench_io_nop: io_uring_queue_init failed\n");
        exit(1);
    }
    long done = 0;
    int64_t t0 = bench_now();
    for (long it = 0; it < iters; it++) {
        for (int i = 0; i < batch; i++) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
            io_uring_prep_nop(sqe);
            io_uring_sqe_set_data64(sqe, (uint64_t)i + 1);
        }
        io_uring_submit_and_wait(&ring, (unsigned)batch);
        unsigned head, n = 0;
        struct io_uring_cqe *cqe;
        io_uring_for_each_cqe(&ring, head, cqe)
        {
            n++;
            bench_sink += cqe->user_data;
        }
        io_uring_cq_advance(&ring, n);
        done += n;
    }
    int64_t dt = bench_now() - t0;
    io_uring_queue_exit(&ring);
    if (done != (long)batch * iters) {
        fprintf(stderr, "bench_io_nop: raw NOPs: %ld of %ld completed\n", done, (long)batch * iters);
        exit(1);
    }
    return (double)dt / ((double)batch * (double)iters);
}

/* ---------------------------------------------------------------- main */

/* Rounds of `batch` for about `total` NOPs; a fifth of them at batch 1,
 * where each NOP is a whole system call (~1 us here). */
static long nop_iters(long total, int batch)
{
    long n = (batch == 1 ? total / 5 : total) / batch;
    return n > 0 ? n : 1;
}

int main(int argc, char **argv)
{
    long ni;
    if (bench_icount(argc, argv, "nop", &ni)) { /* callgrind: coro, batch 32 */
        coro_nops(32, ni / 32 + 1, NULL);
        return 0;
    }
    if (bench_icount(argc, argv, "rawnop", &ni)) {
        raw_nops(32, ni / 32 + 1);
        return 0;
    }
    if (bench_icount_usage(argc, argv)) return 2;
    struct io_uring probe;
    if (raw_ring(&probe) < 0) {
        printf("SKIP impl=coro bench=nop,nop_b32,nop_b256 io_uring is refused here "
               "(seccomp, io_uring_disabled): nothing to compare\n");
        return 0;
    }
    io_uring_queue_exit(&probe);
    static const int batches[] = {1, 32, 256};
    int runs = bench_runs(5);
    long total = bench_size(500000, 5000000); /* NOPs per run and batch (>1) */
    double vc[3][BENCH_MAX_RUNS], vr[3][BENCH_MAX_RUNS];
    coro_io_stats st;
    char extra[160];

    bench_banner("io_nop", "io_uring NOP through coro vs raw liburing, same batch sizes");
    printf("   %ld NOPs per run and batch size (a fifth at batch 1), %d runs, alternating"
           " coro / liburing\n", total, runs);
    for (int b = 0; b < 3; b++) { /* warm-up */
        coro_nops(batches[b], total / batches[b] / 20 + 1, NULL);
        raw_nops(batches[b], total / batches[b] / 20 + 1);
    }
    for (int r = 0; r < runs; r++) {
        bench_progress("nop run %d/%d", r + 1, runs);
        for (int b = 0; b < 3; b++) {
            long iters = nop_iters(total, batches[b]);
            if (r % 2 == 0) {
                vc[b][r] = coro_nops(batches[b], iters, &st);
                vr[b][r] = raw_nops(batches[b], iters);
            } else {
                vr[b][r] = raw_nops(batches[b], iters);
                vc[b][r] = coro_nops(batches[b], iters, &st);
            }
        }
    }
    for (int b = 0; b < 3; b++) {
        char name[32];
        if (batches[b] == 1)
            snprintf(name, sizeof name, "nop");
        else
            snprintf(name, sizeof name, "nop_b%d", batches[b]);
        long iters = nop_iters(total, batches[b]);
        coro_nops(batches[b], iters / 10 + 1, &st);
        snprintf(extra, sizeof extra, "batch=%d n=%ld op=IORING_OP_NOP api=coro_nop enters_per_nop=%.3f",
                 batches[b], iters * batches[b],
                 (double)st.enters / ((double)(iters / 10 + 1) * batches[b]));
        bench_report(name, "coro", "ns/op", vc[b], runs, extra);
        snprintf(extra, sizeof extra, "batch=%d n=%ld op=IORING_OP_NOP api=submit_and_wait",
                 batches[b], iters * batches[b]);
        bench_report(name, "liburing", "ns/op", vr[b], runs, extra);
        bench_target_ratio(name, "liburing", 0.7);
    }
    return 0;
}
