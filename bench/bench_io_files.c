/* bench_io_files.c - B9: 4 KiB random reads at queue depth 32 from a
 * 64 MiB file (1 GiB in bench-full), through coro and through fio's io_uring engine, on the
 * same file with the same parameters.
 *
 * The file: $BENCH_DIR/files.dat (build/bench/), 64 MiB (full: 1 GiB) of pseudo-random
 * bytes, written once (fallocate + a fill: an extent that was only
 * allocated reads back as zeros without touching the disk) and reused by
 * later runs; BENCH_FILES_SIZE_MB changes its size (the file is remade).
 *
 * coro: 32 tasks on one loop, each in a loop of
 *       CORO_IO(c, coro_read(&op, c->loop, fd, buf, 4096, off)) at a random
 *       4 KiB-aligned offset (xorshift, with replacement): 32 reads in
 *       flight, each completion answered by the next read of that task; the
 *       loop submits what its tasks queued in one io_uring_enter per
 *       iteration and reaps every completion there is.
 * fio:  fio --ioengine=io_uring --rw=randread --bs=4k --iodepth=32
 *       --norandommap --randrepeat=0 --invalidate=0 --time_based, given its
 *       best shot with the features coro uses too: batched submission and
 *       reaping as coro's loop does (--iodepth_batch_submit=32
 *       --iodepth_batch_complete_max=32; fio's default submits one I/O per
 *       io_uring_enter and reached about half the IOPS here) and no
 *       per-I/O clock reads (--gtod_reduce=1). Not --fixedbufs,
 *       --registerfiles or --sqthread_poll: coro uses none of them (they
 *       changed nothing measurable here). IOPS from its JSON output.
 * `files`: both with O_DIRECT (fio --direct=1) where the file system takes
 * it (checked: an aligned O_DIRECT pread), so the device, not the page
 * cache, serves every read; where it refuses O_DIRECT, both read buffered
 * after a warm-up and the row says direct=0. `files_cached`: both buffered
 * (--direct=0) with the whole file in the page cache: every read is a
 * 4 KiB copy that io_uring completes inline, so that row measures the
 * submission / completion path (the loop's overhead) rather than the disk.
 * (--invalidate=0: by default fio drops the file's pages from the page
 * cache before it starts, which would turn the cached row into disk reads
 * for whichever side runs after it.)
 * Each run measures T seconds of each, coro and fio alternating.
 * IOPS, higher is better. Acceptance (issue 5): coro >= 80% of fio's IOPS
 * (coro/fio >= 0.8 in the ratio column) on `files`.
 * Note: the disk here is a virtio block device of a Firecracker VM: the
 * host may serve "O_DIRECT" reads from its own page cache.
 */
#include "bench.h"

#include <sys/wait.h>

#include "coro_io.h"

#define QD 32
#define BS 4096

static const char *path_of_file(void)
{
    static char path[512];
    const char *d = getenv("BENCH_DIR");
    snprintf(path, sizeof path, "%s/files.dat", d && *d ? d : "build/bench");
    return path;
}

/* Makes (or reuses) the file of `bytes` bytes; returns 0 or -1. */
static int make_file(const char *path, long long bytes)
{
    struct stat st;
    if (stat(path, &st) == 0 && st.st_size == bytes && st.st_blocks * 512LL >= bytes) return 0;
    printf("   creating %s (%lld MiB of pseudo-random data, once)\n", path, bytes >> 20);
    fflush(stdout);
    bench_progress("creating %s (%lld MiB), once", path, bytes >> 20);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return -1;
    if (fallocate(fd, 0, 0, bytes) < 0 && errno != EOPNOTSUPP) {
        close(fd);
        return -1;
    }
    size_t chunk = 1 << 20;
    uint64_t *buf = (uint64_t *)malloc(chunk), x = 0x9e3779b97f4a7c15ull;
    if (!buf) return -1;
    for (long long off = 0; off < bytes; off += (long long)chunk) {
        for (size_t i = 0; i < chunk / 8; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[i] = x;
        }
        if (pwrite(fd, buf, chunk, off) != (ssize_t)chunk) {
            free(buf);
            close(fd);
            return -1;
        }
    }
    free(buf);
    fsync(fd);
    close(fd);
    return 0;
}

/* ---------------------------------------------------------------- coro */

static struct {
    int fd;
    long long blocks;
    int64_t until;
    int stop;
} run;

struct reader {
    coro_frame co;
    coro_io_op op;
    unsigned char *buf;
    uint64_t rng;
    long reads, errors;
};

static int reader_fn(coro_ctx *c)
{
    struct reader *f = CORO_SELF(c, struct reader);
    CORO_BEGIN(c);
    while (!run.stop) {
        f->rng ^= f->rng << 13;
        f->rng ^= f->rng >> 7;
        f->rng ^= f->rng << 17;
        CORO_IO(c, coro_read(&f->op, c->loop, run.fd, f->buf, BS,
                             (int64_t)(f->rng % (uint64_t)run.blocks) * BS));
        if (c->rc != BS) f->errors++;
        f->reads++;
        if ((f->reads & 15) == 0 && bench_now() >= run.until) run.stop = 1;
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static struct reader readers[QD];
static coro_task tasks[QD];
static unsigned char *bufs;

static double last_per_enter; /* reads per io_uring_enter, last coro run */

/* IOPS of coro over `secs` seconds. */
static double coro_iops(const char *path, int direct, double secs, unsigned *seed)
{
    coro_loop L;
    coro_io io;
    run.fd = open(path, O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0));
    if (run.fd < 0) {
        perror(path);
        exit(1);
    }
    if (coro_io_init(&io, &L, NULL) < 0) exit(1);
    run.stop = 0;
    for (int i = 0; i < QD; i++) {
        memset(&readers[i], 0, sizeof readers[i]);
        readers[i].buf = bufs + (size_t)i * BS;
        readers[i].rng = 0x2545F4914F6CDD1Dull * (uint64_t)(++*seed) | 1;
        coro_spawn(&L, &tasks[i], coro_frame_init(&readers[i].co, reader_fn));
    }
    int64_t t0 = bench_now();
    run.until = t0 + (int64_t)(secs * 1e9);
    while (coro_loop_task_count(&L) > 0)
        if (coro_loop_run_once(&L) < 0) break;
    int64_t dt = bench_now() - t0;
    long reads = 0, errors = 0;
    for (int i = 0; i < QD; i++) {
        reads += readers[i].reads;
        errors += readers[i].errors;
    }
    if (reads) last_per_enter = (double)reads / (double)(io.stats.enters ? io.stats.enters : 1);
    coro_loop_close(&L);
    close(run.fd);
    if (errors) {
        fprintf(stderr, "bench_io_files: %ld of %ld coro reads failed or were short\n", errors, reads);
        exit(1);
    }
    return (double)reads * 1e9 / (double)dt;
}

/* ----------------------------------------------------------------- fio */

/* The fio options shared by every run (see the top of the file). */
#define FIO_OPTS                                                               \
    "--ioengine=io_uring --rw=randread --bs=4k --iodepth=32 --norandommap "   \
    "--randrepeat=0 --invalidate=0 --time_based --numjobs=1 "                  \
    "--iodepth_batch_submit=32 --iodepth_batch_complete_max=32 --gtod_reduce=1"

/* IOPS of one fio run (jobs[0].read.iops of its JSON output), or -1. */
static double fio_iops(const char *path, int direct, double secs)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "fio --name=randread --filename=%s " FIO_OPTS " --direct=%d --runtime=%dms "
             "--output-format=json 2>&1",
             path, direct, (int)(secs * 1000 + 0.5));
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t cap = 1 << 16, len = 0;
    char *out = (char *)malloc(cap);
    size_t got;
    while (out && (got = fread(out + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (len + 1 == cap) {
            char *bigger = (char *)realloc(out, cap * 2);
            if (!bigger) break;
            out = bigger;
            cap *= 2;
        }
    }
    int rc = pclose(p);
    if (!out) return -1;
    out[len] = 0;
    /* "jobs" : [ { ... "read" : { "io_bytes" : .., "bw" : .., "iops" : X, */
    double iops = -1;
    char *jobs = strstr(out, "\"jobs\"");
    char *rd = jobs ? strstr(jobs, "\"read\"") : NULL;
    char *io = rd ? strstr(rd, "\"iops\"") : NULL;
    char *colon = io ? strchr(io, ':') : NULL;
    if (rc == 0 && colon) iops = atof(colon + 1);
    if (iops <= 0) fprintf(stderr, "bench_io_files: fio said:\n%s\n", out);
    free(out);
    return iops;
}

static int have_fio(void)
{
    return system("fio --version >/dev/null 2>&1") == 0;
}

/* Reads the whole file once (buffered), so that it is in the page cache. */
static void warm_cache(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *b = (char *)malloc(1 << 20);
    if (fd < 0 || !b) exit(1);
    while (read(fd, b, 1 << 20) > 0) {
    }
    free(b);
    close(fd);
}

/* Does the file system take O_DIRECT for this file (an aligned pread)? */
static int direct_ok(const char *path, void *buf)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_DIRECT);
    if (fd < 0) return 0;
    ssize_t r = pread(fd, buf, BS, BS);
    close(fd);
    return r == BS;
}

/* One row: `runs` runs of `secs` of coro and of fio, alternating. */
static void measure(const char *path, int direct, double secs, int runs, int fio, double *vc,
                    double *vf, unsigned *seed, const char *what)
{
    coro_iops(path, direct, secs / 5, seed); /* warm-up */
    if (fio) fio_iops(path, direct, secs / 5);
    for (int r = 0; r < runs; r++) {
        bench_progress("%s run %d/%d", what, r + 1, runs);
        if (r % 2 == 0) vc[r] = coro_iops(path, direct, secs, seed);
        if (fio && (vf[r] = fio_iops(path, direct, secs)) < 0) {
            fprintf(stderr, "bench_io_files: fio failed\n");
            exit(1);
        }
        if (r % 2 == 1) vc[r] = coro_iops(path, direct, secs, seed);
    }
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    if (bench_icount_usage(argc, argv)) return 2;
    const char *path = path_of_file();
    const char *mb = getenv("BENCH_FILES_SIZE_MB");
    long long bytes = (mb ? atoll(mb) : bench_full() ? 1024 : 64) << 20; /* full: 1 GiB */
    int runs = bench_runs(5);
    double secs = bench_full() ? 2.0 : 0.3, csecs = bench_full() ? 1.0 : 0.2;
    double sc = getenv("BENCH_SCALE") ? atof(getenv("BENCH_SCALE")) : 1;
    if (sc > 0 && sc < 1) secs *= sc, csecs *= sc;
    double vc[BENCH_MAX_RUNS], vf[BENCH_MAX_RUNS], wc[BENCH_MAX_RUNS], wf[BENCH_MAX_RUNS];
    char extra[256];
    unsigned seed = 1;

    bench_banner("io_files", "4 KiB random reads, queue depth 32, coro vs fio (io_uring)");
    if (bytes < (1 << 20) || make_file(path, bytes) < 0) {
        printf("SKIP impl=coro bench=files,files_cached cannot create %s\n", path);
        return 0;
    }
    run.blocks = bytes / BS;
    if (posix_memalign((void **)&bufs, BS, (size_t)QD * BS) != 0) return 1;
    int fio = have_fio(), direct = direct_ok(path, bufs);
    const char *backend;
    {
        coro_loop L;
        coro_io io;
        if (coro_io_init(&io, &L, NULL) < 0) return 1;
        backend = coro_io_backend_name(&io);
        coro_loop_close(&L);
    }
    printf("   file %s, %lld MiB; coro backend %s; `files`: %s; %d runs of %g s (files) and "
           "%g s (files_cached) each, alternating coro / fio\n",
           path, bytes >> 20, backend,
           direct ? "O_DIRECT" : "O_DIRECT refused by the file system: buffered, after a warm-up",
           runs, secs, csecs);
    printf("   fio options: " FIO_OPTS "\n");
    fflush(stdout);
    if (!fio)
        printf("SKIP impl=fio bench=files,files_cached fio is not installed (Debian package fio)\n");
    if (!direct) warm_cache(path);
    measure(path, direct, secs, runs, fio, vc, vf, &seed, direct ? "files (O_DIRECT)" : "files");
    double per_enter = last_per_enter;
    warm_cache(path); /* page cache: every read a copy */
    measure(path, 0, csecs, runs, fio, wc, wf, &seed, "files_cached (page cache)");
    double cper_enter = last_per_enter;

    snprintf(extra, sizeof extra, "better=higher qd=%d bs=%d direct=%d file_mb=%lld secs=%g "
             "backend=%s reads_per_enter=%.1f", QD, BS, direct, bytes >> 20, secs, backend,
             per_enter);
    bench_report("files", "coro", "IOPS", vc, runs, extra);
    if (fio) {
        snprintf(extra, sizeof extra, "better=higher qd=%d bs=%d direct=%d file_mb=%lld secs=%g "
                 "opts=batch_submit32,batch_complete_max32,gtod_reduce", QD, BS, direct,
                 bytes >> 20, secs);
        bench_report("files", "fio", "IOPS", vf, runs, extra);
    }
    bench_target_ratio("files", "fio", 0.8);
    snprintf(extra, sizeof extra, "better=higher qd=%d bs=%d direct=0 file_mb=%lld secs=%g "
             "backend=%s reads_per_enter=%.1f", QD, BS, bytes >> 20, csecs, backend, cper_enter);
    bench_report("files_cached", "coro", "IOPS", wc, runs, extra);
    if (fio) {
        snprintf(extra, sizeof extra, "better=higher qd=%d bs=%d direct=0 file_mb=%lld secs=%g "
                 "opts=batch_submit32,batch_complete_max32,gtod_reduce", QD, BS,
                 bytes >> 20, csecs);
        bench_report("files_cached", "fio", "IOPS", wf, runs, extra);
    }
    free(bufs);
    return 0;
}
