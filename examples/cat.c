/* cat.c - concatenates files to standard output with overlapped I/O: a
 * reader task fills a ring of buffers while a writer task empties it, so
 * the next read is in flight while the previous chunk is being written.
 * The classic bounded buffer: a semaphore counts free buffers, a queue
 * carries the filled ones' lengths, in order.
 *
 *   build/examples/cat [FILE...]        no FILE, or "-": standard input
 *
 * As cat(1): a file that cannot be opened or read is reported on stderr and
 * skipped, and the exit status is 1; a write error (a closed pipe) stops.
 */
#include "coro_io.h"

#include <stdio.h>

#define CAT_BUFS 4
#define CAT_BUFSZ (128 * 1024)

static unsigned char bufs[CAT_BUFS][CAT_BUFSZ];

struct writer {
    coro_frame co;
    coro_queue *full;
    coro_sem *free;
    coro_queue_op qop;
    coro_io_op op;
    long len;
    size_t done;
    unsigned slot;
};

/* Takes each filled buffer in turn and writes all of it (a short write
 * continues where it stopped). A length of -1 ends the stream. */
static int writer_fn(coro_ctx *c)
{
    struct writer *w = CORO_SELF(c, struct writer);
    CORO_BEGIN(c);
    for (;; w->slot = (w->slot + 1) % CAT_BUFS) {
        CORO_QUEUE_GET(c, &w->qop, w->full, &w->len);
        CORO_CHECK(c);
        if (w->len < 0) break;
        for (w->done = 0; w->done < (size_t)w->len; w->done += (size_t)c->rc) {
            CORO_IO(c, coro_write(&w->op, c->loop, 1, bufs[w->slot] + w->done,
                                  (size_t)w->len - w->done, -1));
            if (c->rc < 0) {
                fprintf(stderr, "cat: write error: %s\n", coro_io_strerror(c->rc));
                coro_sem_close(c->loop, w->free); /* the reader stops too */
                CORO_FAIL(c, c->rc);
            }
        }
        coro_sem_release(c->loop, w->free);
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

struct cat {
    coro_frame co;
    int argc, i, fd, failed;
    char **argv;
    int64_t off; /* -1 on a pipe or a terminal */
    unsigned slot;
    long len;
    struct stat st;
    coro_sem free;
    coro_queue full;
    long full_buf[CAT_BUFS + 1];
    coro_sem_op sop;
    coro_queue_op qop;
    coro_io_op op;
    coro_task wtask;
    struct writer w;
};

/* The current file's name (a function, not a local: locals do not
 * survive an await). */
static const char *cat_name(const struct cat *f)
{
    return f->i ? f->argv[f->i] : "-";
}

static int cat_fail(struct cat *f, int rc)
{
    fprintf(stderr, "cat: %s: %s\n", cat_name(f), coro_io_strerror(rc));
    f->failed = 1;
    return rc;
}

/* The reader: every file in turn, each read into the next free buffer. */
static int cat_fn(coro_ctx *c)
{
    struct cat *f = CORO_SELF(c, struct cat);
    CORO_BEGIN(c);
    coro_sem_init(&f->free, CAT_BUFS);
    coro_queue_init(&f->full, CORO_FIFO, f->full_buf, sizeof(long), CAT_BUFS + 1, 0, NULL);
    f->w.full = &f->full;
    f->w.free = &f->free;
    coro_spawn(c->loop, &f->wtask, coro_frame_init(&f->w.co, writer_fn));
    for (f->i = f->argc > 1 ? 1 : 0; f->i < f->argc; f->i++) {
        if (!strcmp(cat_name(f), "-")) {
            f->fd = 0;
        } else {
            CORO_IO(c, coro_openat(&f->op, c->loop, AT_FDCWD, cat_name(f), O_RDONLY, 0));
            if (c->rc < 0) {
                cat_fail(f, c->rc);
                continue;
            }
            f->fd = c->rc;
        }
        f->off = fstat(f->fd, &f->st) == 0 && S_ISREG(f->st.st_mode) ? 0 : -1;
        for (;;) {
            CORO_SEM_ACQUIRE(c, &f->sop, &f->free); /* a free buffer */
            if (c->rc < 0) break; /* closed: the writer gave up */
            CORO_IO(c, coro_read(&f->op, c->loop, f->fd, bufs[f->slot], CAT_BUFSZ, f->off));
            if (c->rc <= 0) {
                if (c->rc < 0) cat_fail(f, c->rc);
                coro_sem_release(c->loop, &f->free);
                break;
            }
            f->len = c->rc;
            if (f->off >= 0) f->off += f->len;
            coro_queue_put_nowait(c->loop, &f->full, &f->len); /* room: one per buffer */
            f->slot = (f->slot + 1) % CAT_BUFS;
        }
        if (f->fd > 0) CORO_IO(c, coro_close(&f->op, c->loop, f->fd));
        if (coro_task_done(&f->wtask)) break; /* it failed */
    }
    f->len = -1;
    coro_queue_put_nowait(c->loop, &f->full, &f->len);
    CORO_AWAIT_TASK(c, &f->wtask);
    CORO_RETURN(c, c->rc < 0 || f->failed);
    CORO_END(c);
}

int main(int argc, char **argv)
{
    coro_loop L;
    coro_io io;
    coro_task t;
    static struct cat f;
    int rc = coro_io_init(&io, &L, NULL);
    if (rc < 0) {
        fprintf(stderr, "cat: %s\n", coro_io_strerror(rc));
        return 1;
    }
    f.argc = argc;
    f.argv = argv;
    rc = coro_run(&L, &t, coro_frame_init(&f.co, cat_fn));
    coro_loop_close(&L);
    return rc != 0;
}
