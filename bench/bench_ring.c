/* bench_ring.c - B4, Chinese whispers: a ring of N tasks linked by channels.
 *
 * As libmill's and libdill's perf/whispers.c: N tasks in a chain, each
 * linked to the next by a channel; task i gets a number from its right,
 * adds one and puts it to its left. The driver puts 1 at the right end and
 * gets N + 1 at the left end. ns per whisper = total / N, where the total
 * includes creating the N channels and N tasks (spawn, first step parking
 * each on its empty channel) and the token's trip through all of them.
 *
 * coro:    N = 100,000 (1,000,000 under `make bench-full`) tasks; a channel
 *          is a coro_queue of maxsize 1 (asyncio.Queue(1), the closest
 *          thing to an unbuffered channel). Task, frame and queue of each
 *          link live in one mmap'd array, pre-faulted (no page faults
 *          timed; the library never allocates).
 * pthread: the same ring of threads, each channel a one-slot queue (mutex +
 *          two condition variables); N = 2,000 threads (10,000 in full;
 *          creating one costs ~60 us, and pid_max is 32,768
 *          here: 100,000 threads cannot exist). Includes pthread_create.
 */
#include "bench.h"

#include <pthread.h>
#include <sys/mman.h>

#include "coro_sync.h"

/* ---------------------------------------------------------------- coro */

struct whisper {
    coro_frame co;
    coro_queue *left, *right;
    coro_queue_op op;
    long v;
};

static int whisper_fn(coro_ctx *c)
{
    struct whisper *f = CORO_SELF(c, struct whisper);
    CORO_BEGIN(c);
    CORO_QUEUE_GET(c, &f->op, f->right, &f->v);
    if (c->rc < 0) CORO_FAIL(c, c->rc);
    f->v++;
    CORO_QUEUE_PUT(c, &f->op, f->left, &f->v);
    CORO_RETURN(c, c->rc);
    CORO_END(c);
}

struct link { /* one element of the ring: the task and its left channel */
    coro_task t;
    struct whisper w;
    coro_queue q;
    long buf[1];
};

struct driver {
    coro_frame co;
    struct link *ring;
    coro_queue *rightmost;
    coro_queue_op op;
    long n, v;
};

/* Spawns the ring, whispers 1 into its right end, hears N + 1 at the left. */
static int driver_fn(coro_ctx *c)
{
    struct driver *f = CORO_SELF(c, struct driver);
    CORO_BEGIN(c);
    for (long i = 0; i < f->n; i++) {
        struct link *k = &f->ring[i];
        coro_queue_init(&k->q, CORO_FIFO, k->buf, sizeof(long), 1, 1, NULL);
        k->w.left = &k->q;
        k->w.right = i + 1 < f->n ? &f->ring[i + 1].q : f->rightmost;
        coro_spawn(c->loop, &k->t, coro_frame_init(&k->w.co, whisper_fn));
    }
    f->v = 1;
    CORO_QUEUE_PUT(c, &f->op, f->rightmost, &f->v);
    CORO_QUEUE_GET(c, &f->op, &f->ring[0].q, &f->v);
    CORO_RETURN(c, c->rc);
    CORO_END(c);
}

static struct link *ring_alloc(long n)
{
    size_t bytes = sizeof(struct link) * (size_t)n;
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        exit(1);
    }
    memset(p, 0, bytes); /* fault the pages in now */
    return (struct link *)p;
}

/* Total ns for one whisper through a ring of n tasks. */
static int64_t coro_ring(struct link *ring, long n)
{
    coro_loop L;
    coro_task main_task;
    coro_queue rightmost;
    long buf[1];
    struct driver d;
    coro_loop_init(&L, NULL);
    coro_queue_init(&rightmost, CORO_FIFO, buf, sizeof(long), 1, 1, NULL);
    memset(&d, 0, sizeof d);
    d.ring = ring;
    d.rightmost = &rightmost;
    d.n = n;
    int64_t t0 = bench_now();
    int rc = coro_run(&L, &main_task, coro_frame_init(&d.co, driver_fn));
    int64_t dt = bench_now() - t0;
    if (rc != 0 || d.v != n + 1 || coro_loop_task_count(&L) != 0) {
        fprintf(stderr, "bench_ring: coro ring went wrong (rc %d, heard %ld)\n", rc, d.v);
        exit(1);
    }
    coro_loop_close(&L);
    return dt;
}

/* ------------------------------------------------------------- pthread */

struct chan1 { /* a channel of one slot */
    pthread_mutex_t m;
    pthread_cond_t not_empty, not_full;
    int full;
    long item;
};

static void chan1_init(struct chan1 *ch)
{
    pthread_mutex_init(&ch->m, NULL);
    pthread_cond_init(&ch->not_empty, NULL);
    pthread_cond_init(&ch->not_full, NULL);
    ch->full = 0;
}

static void chan1_destroy(struct chan1 *ch)
{
    pthread_cond_destroy(&ch->not_full);
    pthread_cond_destroy(&ch->not_empty);
    pthread_mutex_destroy(&ch->m);
}

static void chan1_put(struct chan1 *ch, long v)
{
    pthread_mutex_lock(&ch->m);
    while (ch->full) pthread_cond_wait(&ch->not_full, &ch->m);
    ch->item = v;
    ch->full = 1;
    pthread_cond_signal(&ch->not_empty);
    pthread_mutex_unlock(&ch->m);
}

static long chan1_get(struct chan1 *ch)
{
    pthread_mutex_lock(&ch->m);
    while (!ch->full) pthread_cond_wait(&ch->not_empty, &ch->m);
    long v = ch->item;
    ch->full = 0;
    pthread_cond_signal(&ch->not_full);
    pthread_mutex_unlock(&ch->m);
    return v;
}

struct tlink {
    pthread_t th;
    struct chan1 *left, *right;
};

static void *whisper_thread(void *arg)
{
    struct tlink *k = (struct tlink *)arg;
    chan1_put(k->left, chan1_get(k->right) + 1);
    return NULL;
}

static int64_t pthread_ring(long n)
{
    struct chan1 *ch = (struct chan1 *)calloc((size_t)n + 1, sizeof *ch);
    struct tlink *k = (struct tlink *)calloc((size_t)n, sizeof *k);
    if (!ch || !k) {
        perror("calloc");
        exit(1);
    }
    int64_t t0 = bench_now();
    for (long i = 0; i <= n; i++) chan1_init(&ch[i]);
    for (long i = 0; i < n; i++) {
        k[i].left = &ch[i];
        k[i].right = &ch[i + 1];
        if (pthread_create(&k[i].th, NULL, whisper_thread, &k[i]) != 0) {
            fprintf(stderr, "bench_ring: pthread_create failed at %ld\n", i);
            exit(1);
        }
    }
    chan1_put(&ch[n], 1);
    long v = chan1_get(&ch[0]);
    int64_t dt = bench_now() - t0;
    for (long i = 0; i < n; i++) pthread_join(k[i].th, NULL);
    if (v != n + 1) {
        fprintf(stderr, "bench_ring: pthread ring went wrong\n");
        exit(1);
    }
    for (long i = 0; i <= n; i++) chan1_destroy(&ch[i]);
    free(k);
    free(ch);
    return dt;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    long ni;
    if (bench_icount(argc, argv, "ring", &ni)) { /* make bench-check */
        coro_ring(ring_alloc(ni), ni);
        return 0;
    }
    if (bench_icount_usage(argc, argv)) return 2;
    int runs = bench_runs(5);
    long n = bench_size(100000, 1000000); /* coro tasks */
    long m = bench_size(2000, 10000);     /* threads    */
    double vc[BENCH_MAX_RUNS], vp[BENCH_MAX_RUNS];
    char extra[64];

    bench_banner("ring", "whispers: a token through a ring of tasks linked by channels");
    printf("   coro: %ld tasks, coro_queue(maxsize 1) links; pthread: %ld threads, "
           "one-slot queues; %d runs each\n", n, m, runs);
    printf("   sizeof one coro link (task + frame + queue + slot) = %zu bytes\n",
           sizeof(struct link));
    struct link *ring = ring_alloc(n);
    coro_ring(ring, n / 10 + 1); /* warm-up */
    pthread_ring(m / 10 + 1);
    for (int r = 0; r < runs; r++) {
        bench_progress("ring run %d/%d", r + 1, runs);
        vc[r] = (double)coro_ring(ring, n) / (double)n;
        vp[r] = (double)pthread_ring(m) / (double)m;
    }
    snprintf(extra, sizeof extra, "n=%ld", n);
    bench_report("ring", "coro", "ns/op", vc, runs, extra);
    snprintf(extra, sizeof extra, "n=%ld", m);
    bench_report("ring", "pthread", "ns/op", vp, runs, extra);
    bench_target_ratio("ring", "go", 10);
    munmap(ring, sizeof(struct link) * (size_t)n);
    return 0;
}
