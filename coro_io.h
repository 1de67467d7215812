/* coro_io.h - I/O for coro: an io_uring backend with an epoll fallback,
 * file and socket operations as awaitables, and (below) streams, servers
 * and clients. The only header of the library that uses liburing (link
 * with -luring) and that may allocate (the per-fd table, stream buffers,
 * server connections).
 *
 * Include it before any system header, or compile with -D_GNU_SOURCE.
 *
 * CHEAT-SHEET
 *   coro_loop L; coro_io io;
 *   coro_io_init(&io, &L, NULL);        // io_uring, or epoll where it is refused;
 *                                        // CORO_BACKEND=uring|epoll forces one
 *   coro_io_backend_name(&io)           // "io_uring" or "epoll"
 *   In a body (op: a coro_io_op in the frame; c->rc = result or -errno):
 *     CORO_IO(c, coro_read(&f->op, c->loop, fd, buf, n, off))   // off -1: position
 *     CORO_IO(c, coro_write / coro_readv / coro_writev / coro_fsync ...)
 *     CORO_IO(c, coro_openat / coro_close / coro_statx ...)
 *     CORO_IO(c, coro_socket / coro_connect / coro_accept / coro_recv / coro_send
 *                / coro_shutdown / coro_poll / coro_nop ...)
 *   Bounded by a deadline: CORO_DEADLINE(c, &f->tm, when, CORO_IO(c, ...)).
 *   Blocking work on a thread (work: a coro_work in the frame; c->rc = fn(arg)):
 *     CORO_IO(c, coro_to_thread(&f->work, c->loop, fn, arg))  // the default pool
 *     CORO_IO(c, coro_run_in_executor(&f->work, c->loop, &pool, fn, arg))
 *     cancelled: a queued job never runs; a running one is waited for, its
 *     result dropped (CORO_ECANCELED): the record is never left to a thread
 *   From other threads: coro_io_threadsafe(&io) first, then
 *     coro_call_soon_threadsafe / coro_run_coroutine_threadsafe
 *   Streams, servers, clients, subprocesses: see the second half of this file.
 *   A server accepts with one multishot accept on io_uring (kernel >= 5.19,
 *   probed once per ring): one SQE for many connections; elsewhere up to
 *   CORO_ACCEPT_BATCH connections per readiness event; see "ACCEPTING".
 *   A stream reads with one multishot recv on io_uring (kernel >= 5.19:
 *   provided buffers), kept armed while it holds less than 2 * limit.
 *
 * CANCELLATION (io_uring): a cancelled operation ends only when the kernel's
 * completion for that operation arrives; its record (and buffer) must stay
 * alive until the await returns. If it completed before the cancel took
 * effect, its result is delivered (no byte received, no accepted fd is
 * lost) and the cancellation reaches the task at its next await. Closing an
 * fd cancels what waits on it; those waiters get -EBADF (a stream's reader
 * sees the end of stream instead: asyncio's connection_lost).
 *
 * LIMITS: one coro_io per loop and per thread; nothing here is thread-safe
 * except what "Other threads" lists (coro_call_soon_threadsafe, the
 * coro_run_coroutine_threadsafe family) and coro_signal_raise (coro_loop.h).
 */
#ifndef CORO_IO_H
#define CORO_IO_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "coro_sync.h"

/* Under valgrind, what the kernel wrote through the ring is marked defined
 * (memcheck cannot see those writes). Costs nothing outside valgrind. */
#if defined(__has_include)
#if __has_include(<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#define CORO__IO_DEFINED(p, n) ((void)VALGRIND_MAKE_MEM_DEFINED(p, n))
#define CORO__IO_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef CORO__IO_DEFINED
#define CORO__IO_DEFINED(p, n) ((void)(p), (void)(n))
#define CORO__IO_VALGRIND() 0
#endif

/* ---------------------------------------------------------------------- */
/* Types                                                                   */
/* ---------------------------------------------------------------------- */

#define CORO_IO_URING 1
#define CORO_IO_EPOLL 2

/* How long an idle pool worker watches the job queue before it sleeps on
 * its condition variable, and how long a loop with jobs out watches its
 * inbox before it sleeps in the kernel (io_uring backend): a job posted or
 * returned meanwhile (a task awaiting to_thread after to_thread) is picked
 * up without a futex or eventfd wake-up, which costs 5-13 us on a VM. Each
 * idle spell burns up to this much CPU; 0 turns spinning off. */
#ifndef CORO_POOL_SPIN_NS
#define CORO_POOL_SPIN_NS 50000
#endif

typedef struct coro_io coro_io;
typedef struct coro_io_op coro_io_op;
typedef struct coro_pool coro_pool;
typedef struct coro_remote coro_remote;

/* A message from another thread to a loop: fn runs on the loop's thread
 * (see "Other threads" below). */
struct coro_remote {
    coro_remote *next;
    void (*fn)(coro_loop *L, coro_remote *r);
};

/* One awaitable operation: caller-owned (usually a frame field), reusable
 * once its await returned. */
struct coro_io_op {
    coro_waitable w;
    coro_io *io;
    coro__link link; /* pending submission / epoll fd waiters / done list */
    int fd, res;
    uint8_t code, state, flags;
    union {
        struct { void *buf; size_t len; int64_t off; } rw;
        struct { const struct iovec *iov; int cnt; int64_t off; } v;
        struct { const char *path; int dirfd, flags; mode_t mode; } open;
        struct { const char *path; int dirfd, flags; unsigned mask; struct statx *out; } stx;
        struct { int domain, type, proto; } sock;
        struct { const struct sockaddr *addr; socklen_t len; } conn;
        struct { struct sockaddr *addr; socklen_t *len; } acc;
        struct { void *buf; size_t len; int flags; } sr;
        struct { int how; } shut;
        struct { unsigned events; } poll;
        struct { int datasync; } sync;
        /* a multishot (io_uring): on(op, res, 1) per result (cflags: its CQE's
         * flags, e.g. the buffer of a recv), on(op, res, 0) at its end */
        struct { void (*on)(coro_io_op *op, int res, int more); unsigned cflags; } ms;
    } a;
};

/* Operation codes. */
enum {
    CORO__OP_NOP = 1, CORO__OP_READ, CORO__OP_WRITE, CORO__OP_READV, CORO__OP_WRITEV,
    CORO__OP_FSYNC, CORO__OP_OPENAT, CORO__OP_CLOSE, CORO__OP_STATX, CORO__OP_SOCKET,
    CORO__OP_CONNECT, CORO__OP_ACCEPT, CORO__OP_RECV, CORO__OP_SEND, CORO__OP_SHUTDOWN,
    CORO__OP_POLL, CORO__OP_ACCEPT_MULTI, CORO__OP_RECV_MULTI
};

/* Multishot ops: several CQEs per SQE (see coro__multishot). */
#define CORO__OP_MULTI(code) ((code) >= CORO__OP_ACCEPT_MULTI)

/* Provided buffers for multishot recv (see coro__rbufs). */
#ifndef CORO_IO_RBUFS
#define CORO_IO_RBUFS 64 /* a power of two */
#endif
#ifndef CORO_IO_RBUF_SIZE
#define CORO_IO_RBUF_SIZE 4096
#endif
#define CORO__RBUF_GROUP 0
#define CORO__RBUF_RING 4096 /* the ring's own page, before the buffers */

/* Operation states. */
#define CORO__IO_IDLE 0
#define CORO__IO_PENDING 1     /* waiting for an SQE / under the in-flight cap */
#define CORO__IO_INFLIGHT 2    /* submitted (uring) or waiting for readiness (epoll) */
#define CORO__IO_CANCELLING 3  /* a cancel was submitted; the target's CQE decides */
#define CORO__IO_CANCEL_QUEUED 4 /* a cancel waits for an SQE */
#define CORO__IO_COMPLETING 5  /* epoll: done, reported at the next poll */
#define CORO__IO_DONE 6
#define CORO__IO_CANCEL_FD 7   /* a close's cancel of everything on its fd, queued */

/* Per-fd bookkeeping (both backends): in-flight ops, closing, and, for
 * epoll, the readiness waiters, the registration and the readiness known. */
typedef struct coro__fdslot {
    coro__link readers, writers, pollers; /* epoll: who waits, per direction */
    uint32_t inflight;
    uint32_t events; /* epoll: registered (edge-triggered, once per fd) */
    uint8_t ready;   /* epoll: 1 readable, 2 writable, as far as we know */
    uint8_t kind;    /* 0 unknown, 1 pollable, 2 regular file (no epoll) */
    uint8_t closing;
    int accq_next;   /* an accepted fd a server queued: the one after it */
    coro_io_op *close_op; /* deferred until the in-flight ops are back */
} coro__fdslot;

/* Counters, for tests and tuning (both backends unless marked).
 *   submitted  operations handed to the kernel (uring)
 *   completed  operations finished, with any result
 *   enters     waits for events (io_uring_enter / epoll_wait)
 *   sq_full    times an SQE was not available (real or injected; uring)
 *   pending    operations or cancels that had to wait for room (uring)
 *   cancels    cancellations of operations in flight
 *   overflow_flushes  CQ overflows flushed (uring)
 *   busy_retries      waits that failed with -EBUSY/-EAGAIN/-EINTR
 *   wakes      wake-ups from other threads or signal handlers seen */
typedef struct coro_io_stats {
    uint64_t submitted, completed, enters, sq_full, pending, cancels,
        overflow_flushes, busy_retries, wakes;
} coro_io_stats;

/* Fault injection (tests): called before an operation is submitted.
 * Return 0 to go on, n > 0 to shrink its length to n (short I/O),
 * CORO_IO_FAULT_SQ_FULL to behave as if the SQ were full (uring only: epoll
 * has no SQ, the operation just runs), or another negative errno to fail
 * it with that error without submitting it. */
#define CORO_IO_FAULT_SQ_FULL (-100000)
typedef int coro_io_fault(void *arg, coro_io_op *op);
/* ... and before each wait for events: return 0, or -EBUSY/-EAGAIN/-EINTR
 * to make that wait fail that way (the loop must reap and retry). */
typedef int coro_io_enter_fault(void *arg);

/* Configuration (NULL: defaults). */
typedef struct coro_io_config {
    unsigned entries;  /* SQ size (power of two; default 256) */
    int backend;       /* 0 (probe), CORO_IO_URING or CORO_IO_EPOLL */
    unsigned max_inflight; /* 0: the CQ size */
} coro_io_config;

struct coro_io {
    coro_backend base; /* first: the loop's backend */
    uint32_t magic;
    int kind;
    coro_loop *loop;
    /* io_uring */
    struct io_uring ring;
    unsigned ring_flags, cq_entries;
    int vg; /* io_uring under valgrind: wait in ppoll (coro__uring_ppoll), and
             * mark what the kernel wrote as defined (coro__io_defined) */
    uint32_t inflight, max_inflight;
    int wake_armed;
    uint64_t wake_buf;
    int accept_multi; /* multishot accept: 0 not probed yet, 1 yes, -1 no */
    int rbufs;        /* provided buffers (coro__rbufs): 0 not yet, 1 ready, -1 refused */
    struct io_uring_buf_ring *rbr;
    unsigned char *rbuf_mem;
    /* epoll */
    int epfd, nwait; /* nwait: operations waiting for readiness */
    int no_pwait2;    /* epoll_pwait2 refused (old kernel, valgrind) */
    struct epoll_event events[64];
    /* both */
    coro__link pending; /* ops to submit (uring) or completed (epoll) */
    coro__link cancels; /* uring: cancels to submit (first; not under the cap) */
    coro__fdslot *fds;
    int nfds;
    int wakefd;
    coro_io_fault *fault;
    coro_io_enter_fault *enter_fault;
    void *fault_arg;
    coro_io_stats stats;
    /* other threads (see "Other threads") */
    coro_remote *inbox;     /* pushed by any thread, drained by the loop */
    unsigned posting;       /* posts under way (atomic): close waits for them */
    coro_signal inbox_signal;
    unsigned inbox_users;   /* jobs out + threadsafe mode: registered while > 0 */
    int threadsafe;
    coro_pool *pool;        /* the default pool, made by the first coro_to_thread */
    int internal;           /* > 0 while the library starts its own operations */
};

#define CORO__IO_MAGIC 0x636f696fu /* "coio" */

/* The coro_io the loop runs on (traps if it runs on another backend). */
CORO_API coro_io *coro_io_of(coro_loop *L)
{
    coro_io *io = (coro_io *)(void *)L->backend;
    if (io->magic != CORO__IO_MAGIC) CORO_TRAP();
    return io;
}

CORO_API int coro_io_backend(const coro_io *io)
{
    return io->kind;
}

CORO_API const char *coro_io_backend_name(const coro_io *io)
{
    return io->kind == CORO_IO_URING ? "io_uring" : "epoll";
}

CORO_API void coro_io_set_fault(coro_io *io, coro_io_fault *fault,
                                coro_io_enter_fault *enter_fault, void *arg)
{
    io->fault = fault;
    io->enter_fault = enter_fault;
    io->fault_arg = arg;
}

/* ---------------------------------------------------------------------- */
/* The fd table                                                            */
/* ---------------------------------------------------------------------- */

/* A list head moved by realloc from old: its neighbours point at it again. */
CORO_API void coro__fdslot_moved(coro__link *head, const coro__link *old)
{
    if (head->next == old)
        coro__link_init(head);
    else
        head->next->prev = head->prev->next = head;
}

/* The slot of fd (grown on demand); NULL only if memory runs out. */
CORO_API coro__fdslot *coro__fdslot_of(coro_io *io, int fd)
{
    if (fd < 0) return NULL;
    if (fd >= io->nfds) {
        int n = io->nfds ? io->nfds : 64;
        while (n <= fd) n *= 2;
        coro__fdslot *t = (coro__fdslot *)realloc(io->fds, (size_t)n * sizeof *t);
        if (!t) return NULL;
        for (int i = 0; i < io->nfds; i++) { /* the lists point at themselves */
            coro__fdslot_moved(&t[i].readers, &io->fds[i].readers);
            coro__fdslot_moved(&t[i].writers, &io->fds[i].writers);
            coro__fdslot_moved(&t[i].pollers, &io->fds[i].pollers);
        }
        for (int i = io->nfds; i < n; i++) {
            memset(&t[i], 0, sizeof t[i]);
            coro__link_init(&t[i].readers);
            coro__link_init(&t[i].writers);
            coro__link_init(&t[i].pollers);
        }
        io->fds = t;
        io->nfds = n;
    }
    return &io->fds[fd];
}

/* The fd was closed: its number may come back as a new fd. */
CORO_API void coro__fdslot_reset(coro_io *io, coro__fdslot *s)
{
    s->closing = 0;
    s->kind = 0;
    s->inflight = 0;
    s->close_op = NULL;
    s->events = 0; /* close(2) took it out of the epoll set */
    s->ready = 0;
    (void)io;
}

/* Does this operation need an fd (not a path, not nothing)? */
CORO_API int coro__op_needs_fd(const coro_io_op *op)
{
    return op->code != CORO__OP_NOP && op->code != CORO__OP_OPENAT &&
           op->code != CORO__OP_SOCKET && op->code != CORO__OP_STATX;
}

/* Does this operation work on an fd the table tracks? */
CORO_API int coro__op_has_fd(const coro_io_op *op)
{
    return op->code != CORO__OP_NOP && op->code != CORO__OP_OPENAT &&
           op->code != CORO__OP_SOCKET && op->fd >= 0 &&
           !(op->code == CORO__OP_STATX && op->a.stx.path && op->a.stx.path[0]);
}

/* ---------------------------------------------------------------------- */
/* Completion (both backends)                                              */
/* ---------------------------------------------------------------------- */

CORO_API void coro__io_submit(coro_io *io, coro_io_op *op);

/* io_uring: tells memcheck what the kernel wrote for op. */
CORO_API void coro__io_defined(const coro_io_op *op, int res)
{
    if (res < 0) return;
    switch (op->code) {
    case CORO__OP_READ: CORO__IO_DEFINED(op->a.rw.buf, (size_t)res); break;
    case CORO__OP_RECV: CORO__IO_DEFINED(op->a.sr.buf, (size_t)res); break;
    case CORO__OP_READV:
        for (int i = 0; i < op->a.v.cnt && res > 0; i++) {
            size_t n = op->a.v.iov[i].iov_len < (size_t)res ? op->a.v.iov[i].iov_len : (size_t)res;
            CORO__IO_DEFINED(op->a.v.iov[i].iov_base, n);
            res -= (int)n;
        }
        break;
    case CORO__OP_ACCEPT:
        if (op->a.acc.len) {
            CORO__IO_DEFINED(op->a.acc.len, sizeof *op->a.acc.len);
            if (op->a.acc.addr) CORO__IO_DEFINED(op->a.acc.addr, *op->a.acc.len);
        }
        break;
    case CORO__OP_STATX: CORO__IO_DEFINED(op->a.stx.out, sizeof *op->a.stx.out); break;
    default: break;
    }
}

/* The operation is over: settle its future (the awaiting task wakes). */
CORO_API void coro__io_finish(coro_io *io, coro_io_op *op, int res)
{
    if (res >= 0 && (op->code == CORO__OP_ACCEPT || op->code == CORO__OP_SOCKET)) {
        coro__fdslot *ns = coro__fdslot_of(io, res); /* a socket, non-blocking */
        if (ns) ns->kind = 1; /* (first: this may move the table) */
    }
    if (res > 0 && op->code == CORO__OP_POLL) /* only what was asked, as poll(2) */
        res &= (int)(op->a.poll.events | POLLERR | POLLHUP | POLLNVAL);
    coro__fdslot *s = coro__op_has_fd(op) ? coro__fdslot_of(io, op->fd) : NULL;
    if (op->state == CORO__IO_CANCEL_QUEUED) coro__link_del(&op->link); /* drop it */
    if (s && op->code != CORO__OP_CLOSE) {
        if (s->inflight) s->inflight--;
        if (s->closing && res == -ECANCELED) res = -EBADF; /* closed under it */
    } else if (s) {
        coro__fdslot_reset(io, s);
    }
    if (io->vg) coro__io_defined(op, res);
    op->res = res;
    op->state = CORO__IO_DONE;
    io->stats.completed++;
    if (res >= 0)
        coro__future_finish(io->loop, &op->w.fut, CORO_FUTURE_RESULT, res);
    else
        coro__future_finish(io->loop, &op->w.fut, CORO_FUTURE_ERROR, res);
    if (s && s->closing && !s->inflight && s->close_op) { /* the close may go */
        coro_io_op *cl = s->close_op;
        s->close_op = NULL;
        coro__io_submit(io, cl);
    }
    if (CORO__OP_MULTI(op->code)) op->a.ms.on(op, res, 0); /* last: s is stale */
}

/* ---------------------------------------------------------------------- */
/* io_uring                                                                */
/* ---------------------------------------------------------------------- */

/* user_data: the op's address; low bits tag what is not an op's own CQE,
 * or a multishot's CQEs (several per SQE: IORING_CQE_F_MORE on all but
 * the last, which alone ends the op and frees its in-flight slot). */
#define CORO__UD_CANCEL 1u
#define CORO__UD_WAKE 2u
#define CORO__UD_MULTI 4u

CORO_API uint64_t coro__uring_ud(const coro_io_op *op)
{
    return (uint64_t)(uintptr_t)op | (CORO__OP_MULTI(op->code) ? CORO__UD_MULTI : 0u);
}

CORO_API void coro__uring_prep(struct io_uring_sqe *sqe, coro_io_op *op)
{
    switch (op->code) {
    case CORO__OP_NOP: io_uring_prep_nop(sqe); break;
    case CORO__OP_READ:
        io_uring_prep_read(sqe, op->fd, op->a.rw.buf, (unsigned)op->a.rw.len,
                           (uint64_t)op->a.rw.off);
        break;
    case CORO__OP_WRITE:
        io_uring_prep_write(sqe, op->fd, op->a.rw.buf, (unsigned)op->a.rw.len,
                            (uint64_t)op->a.rw.off);
        break;
    case CORO__OP_READV:
        io_uring_prep_readv(sqe, op->fd, op->a.v.iov, (unsigned)op->a.v.cnt, (uint64_t)op->a.v.off);
        break;
    case CORO__OP_WRITEV:
        io_uring_prep_writev(sqe, op->fd, op->a.v.iov, (unsigned)op->a.v.cnt, (uint64_t)op->a.v.off);
        break;
    case CORO__OP_FSYNC:
        io_uring_prep_fsync(sqe, op->fd, op->a.sync.datasync ? IORING_FSYNC_DATASYNC : 0);
        break;
    case CORO__OP_OPENAT:
        io_uring_prep_openat(sqe, op->a.open.dirfd, op->a.open.path, op->a.open.flags,
                             op->a.open.mode);
        break;
    case CORO__OP_CLOSE: io_uring_prep_close(sqe, op->fd); break;
    case CORO__OP_STATX:
        io_uring_prep_statx(sqe, op->a.stx.dirfd, op->a.stx.path, op->a.stx.flags,
                            op->a.stx.mask, op->a.stx.out);
        break;
    case CORO__OP_SOCKET:
        io_uring_prep_socket(sqe, op->a.sock.domain, op->a.sock.type, op->a.sock.proto, 0);
        break;
    case CORO__OP_CONNECT:
        io_uring_prep_connect(sqe, op->fd, op->a.conn.addr, op->a.conn.len);
        break;
    case CORO__OP_ACCEPT:
        io_uring_prep_accept(sqe, op->fd, op->a.acc.addr, op->a.acc.len,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
        break;
    case CORO__OP_RECV:
        io_uring_prep_recv(sqe, op->fd, op->a.sr.buf, op->a.sr.len, op->a.sr.flags);
        break;
    case CORO__OP_SEND:
        io_uring_prep_send(sqe, op->fd, op->a.sr.buf, op->a.sr.len, op->a.sr.flags | MSG_NOSIGNAL);
        break;
    case CORO__OP_SHUTDOWN: io_uring_prep_shutdown(sqe, op->fd, op->a.shut.how); break;
    case CORO__OP_POLL: io_uring_prep_poll_add(sqe, op->fd, op->a.poll.events); break;
    case CORO__OP_ACCEPT_MULTI: /* no address: the kernel would share it across shots */
        io_uring_prep_multishot_accept(sqe, op->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        break;
    case CORO__OP_RECV_MULTI: /* into the loop's provided buffers (coro__rbufs) */
        io_uring_prep_recv_multishot(sqe, op->fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = CORO__RBUF_GROUP;
        break;
    default: io_uring_prep_nop(sqe); break;
    }
}

/* An SQE, submitting what is queued if the SQ is full; NULL if still full. */
CORO_API struct io_uring_sqe *coro__uring_sqe(coro_io *io)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&io->ring);
    if (!sqe) {
        io->stats.sq_full++;
        io_uring_submit(&io->ring);
        sqe = io_uring_get_sqe(&io->ring);
    }
    return sqe;
}

/* Submits op (or its cancel, in state CANCEL_QUEUED); returns 0 if it went,
 * -1 if it must wait (SQ full, in-flight cap). */
CORO_API int coro__uring_is_cancel(const coro_io_op *op)
{
    return op->state == CORO__IO_CANCEL_QUEUED || op->state == CORO__IO_CANCEL_FD;
}

CORO_API int coro__uring_try(coro_io *io, coro_io_op *op)
{
    /* The cap bounds operations; a cancel must always be able to go. */
    if (io->inflight >= io->max_inflight && !coro__uring_is_cancel(op)) return -1;
    if (io->fault && !coro__uring_is_cancel(op)) {
        int f = io->fault(io->fault_arg, op);
        if (f == CORO_IO_FAULT_SQ_FULL) {
            io->stats.sq_full++;
            return -1;
        }
        if (f < 0) {
            op->state = CORO__IO_INFLIGHT;
            coro__io_finish(io, op, f);
            return 0;
        }
        if (f > 0) { /* short I/O */
            if (op->code == CORO__OP_READ || op->code == CORO__OP_WRITE) {
                if ((size_t)f < op->a.rw.len) op->a.rw.len = (size_t)f;
            } else if (op->code == CORO__OP_RECV || op->code == CORO__OP_SEND) {
                if ((size_t)f < op->a.sr.len) op->a.sr.len = (size_t)f;
            }
        }
    }
    struct io_uring_sqe *sqe = coro__uring_sqe(io);
    if (!sqe) return -1;
    if (op->state == CORO__IO_CANCEL_QUEUED) {
        io_uring_prep_cancel64(sqe, coro__uring_ud(op), 0);
        io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | CORO__UD_CANCEL);
        op->state = CORO__IO_CANCELLING;
        io->stats.cancels++;
    } else if (op->state == CORO__IO_CANCEL_FD) { /* the close waits for them */
        io_uring_prep_cancel_fd(sqe, op->fd, IORING_ASYNC_CANCEL_ALL);
        io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | CORO__UD_CANCEL);
        op->state = CORO__IO_IDLE;
        io->stats.cancels++;
    } else {
        coro__uring_prep(sqe, op);
        io_uring_sqe_set_data64(sqe, coro__uring_ud(op));
        op->state = CORO__IO_INFLIGHT;
        io->stats.submitted++;
    }
    io->inflight++;
    return 0;
}

/* Submits what waited on list, in order; stops at the first that cannot. */
CORO_API void coro__uring_flush_list(coro_io *io, coro__link *list)
{
    while (list->next != list) {
        coro_io_op *op = CORO__CONTAINER(coro_io_op, link, list->next);
        coro__link_del(&op->link);
        uint8_t st = op->state;
        if (coro__uring_try(io, op) < 0) { /* back at the head */
            op->state = st;
            op->link.next = list->next;
            op->link.prev = list;
            list->next->prev = &op->link;
            list->next = &op->link;
            return;
        }
    }
}

/* Cancels first: they free room, and are never held back by the cap. */
CORO_API void coro__uring_flush(coro_io *io)
{
    coro__uring_flush_list(io, &io->cancels);
    coro__uring_flush_list(io, &io->pending);
}

CORO_API void coro__uring_queue(coro_io *io, coro_io_op *op)
{
    coro__link *list = coro__uring_is_cancel(op) ? &io->cancels : &io->pending;
    if (list->next == list && coro__uring_try(io, op) == 0) return;
    if (!coro__uring_is_cancel(op)) op->state = CORO__IO_PENDING;
    io->stats.pending++;
    coro__link_add(list, &op->link);
}

CORO_API void coro__uring_arm_wake(coro_io *io)
{
    struct io_uring_sqe *sqe = coro__uring_sqe(io);
    if (!sqe) return; /* tried again next poll */
    io_uring_prep_read(sqe, io->wakefd, &io->wake_buf, sizeof io->wake_buf, 0);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)io | CORO__UD_WAKE);
    io->inflight++;
    io->wake_armed = 1;
}

/* A CQE of a multishot op: a result (F_MORE: more to come), or its last
 * one, which may carry a result too (a multishot accept ends with an fd
 * when the CQ had no room for it as a shot). */
CORO_API void coro__uring_multishot(coro_io *io, coro_io_op *op, int res, unsigned flags)
{
    op->a.ms.cflags = flags;
    if (flags & IORING_CQE_F_MORE) {
        op->a.ms.on(op, res, 1);
        return;
    }
    if (res >= 0) op->a.ms.on(op, res, 1);
    coro__io_finish(io, op, res < 0 ? res : 0); /* then on(op, res, 0) */
}

/* Reaps every CQE that is there. */
CORO_API void coro__uring_reap(coro_io *io)
{
    unsigned head, n = 0;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&io->ring, head, cqe)
    {
        uint64_t ud = cqe->user_data;
        n++;
        if (!(cqe->flags & IORING_CQE_F_MORE)) io->inflight--; /* a multishot goes on */
        if (ud & CORO__UD_WAKE) {
            CORO__IO_DEFINED(&io->wake_buf, sizeof io->wake_buf);
            io->wake_armed = 0;
            io->stats.wakes++;
        } else if ((ud & CORO__UD_MULTI) && !(ud & CORO__UD_CANCEL)) {
            coro__uring_multishot(io, (coro_io_op *)(uintptr_t)(ud & ~(uint64_t)CORO__UD_MULTI),
                                  cqe->res, cqe->flags);
        } else if (!(ud & CORO__UD_CANCEL) && ud) {
            coro__io_finish(io, (coro_io_op *)(uintptr_t)ud, cqe->res);
        }
    }
    io_uring_cq_advance(&io->ring, n);
}

/* Before the loop sleeps while pool jobs are out: watches for up to
 * CORO_POOL_SPIN_NS for a job to come back (or a completion) and returns 1
 * if one did, so that a task awaiting to_thread after to_thread is not
 * woken through the kernel each time. Submissions go out first. */
/* Calls ready(arg) in a loop until it says yes (1) or CORO_POOL_SPIN_NS
 * have gone by (0). The clock is read every 64 tries. */
CORO_API int coro__spin(int (*ready)(void *), void *arg)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned i = 1;; i++) {
        if (ready(arg)) return 1;
        if (i % 64) continue;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec) > CORO_POOL_SPIN_NS)
            return 0;
    }
}

CORO_API int coro__uring_spin_ready(void *arg)
{
    coro_io *io = (coro_io *)arg;
    return __atomic_load_n(&io->inbox, __ATOMIC_RELAXED) || io_uring_cq_ready(&io->ring);
}

CORO_API int coro__uring_spin(coro_io *io)
{
    if (CORO_POOL_SPIN_NS <= 0 || io->vg || /* not under valgrind */
        io->inbox_users <= (unsigned)io->threadsafe)
        return 0;
    io_uring_submit(&io->ring);
    return coro__spin(coro__uring_spin_ready, io);
}

/* The wait for valgrind, which does not know that io_uring_enter blocks:
 * it would hold every other thread and every signal through the wait.
 * Submits, then sleeps in ppoll until the ring has a completion (so the
 * ring must not defer its task work: see coro__uring_setup). Returns 0
 * (reap without waiting) or the timeout left if ppoll failed. */
CORO_API int64_t coro__uring_ppoll(coro_io *io, int64_t timeout)
{
    struct pollfd pfd = {io->ring.ring_fd, POLLIN, 0};
    struct timespec ts;
    io_uring_submit(&io->ring);
    if (io_uring_cq_ready(&io->ring)) return 0;
    ts.tv_sec = timeout / 1000000000;
    ts.tv_nsec = timeout % 1000000000;
    if (ppoll(&pfd, 1, timeout < 0 ? NULL : &ts, NULL) < 0 && errno != EINTR) return timeout;
    return 0;
}

CORO_API int coro__uring_poll(coro_backend *b, coro_loop *L, int64_t timeout)
{
    coro_io *io = (coro_io *)(void *)b;
    struct io_uring_cqe *cqe;
    int rc = 0;
    coro__uring_flush(io);
    if (L->signals && !io->wake_armed && io->wakefd >= 0) coro__uring_arm_wake(io);
    if (timeout < 0 && !io->inflight && io->pending.next == &io->pending &&
        !io_uring_sq_ready(&io->ring))
        return CORO_EDEADLK;
    if (timeout == 0 && !io->inflight && !io_uring_sq_ready(&io->ring)) return 0;
    if (!io->inflight && io->pending.next != &io->pending) /* held back (a hook): retry */
        timeout = 0;
    if (timeout != 0 && io->vg) timeout = coro__uring_ppoll(io, timeout);
    if (timeout != 0 && coro__uring_spin(io)) timeout = 0;
    io->stats.enters++;
    if (io->enter_fault && (rc = io->enter_fault(io->fault_arg)) < 0) {
        /* counted below with the kernel's own -EBUSY / -EAGAIN / -EINTR */
    } else if (timeout == 0) {
        rc = io_uring_submit_and_get_events(&io->ring);
    } else if (timeout > 0) {
        struct __kernel_timespec ts;
        ts.tv_sec = timeout / 1000000000;
        ts.tv_nsec = timeout % 1000000000;
        rc = io_uring_submit_and_wait_timeout(&io->ring, &cqe, 1, &ts, NULL);
    } else {
        rc = io_uring_submit_and_wait(&io->ring, 1);
    }
    if (rc == -EBUSY || rc == -EAGAIN || rc == -EINTR) io->stats.busy_retries++;
    if (io_uring_cq_has_overflow(&io->ring)) {
        io->stats.overflow_flushes++;
        io_uring_get_events(&io->ring);
    }
    coro__uring_reap(io);
    coro__uring_flush(io);
    return 0;
}

/* Cancels an operation (its waitable's cancel hook). */
CORO_API int coro__io_cancel(coro_loop *L, coro_waitable *w)
{
    coro_io_op *op = CORO__CONTAINER(coro_io_op, w, w);
    coro_io *io = op->io;
    (void)L;
    switch (op->state) {
    case CORO__IO_PENDING: /* never reached the kernel */
        coro__link_del(&op->link);
        coro__io_finish(io, op, -ECANCELED);
        return 1;
    case CORO__IO_INFLIGHT:
        if (io->kind == CORO_IO_EPOLL) { /* it only waited for readiness */
            coro__link_del(&op->link);
            io->nwait--;
            io->stats.cancels++;
            coro__io_finish(io, op, -ECANCELED);
            return 1;
        }
        op->state = CORO__IO_CANCEL_QUEUED;
        coro__uring_queue(io, op);
        return 0; /* the target's completion decides; nothing is lost */
    default:
        return 0;
    }
}

/* ---------------------------------------------------------------------- */
/* epoll                                                                   */
/* ---------------------------------------------------------------------- */

/* Runs the system call of op now (non-blocking); returns its result, or
 * -EAGAIN when it must wait for readiness. */
CORO_API int coro__epoll_run(coro_io_op *op)
{
    ssize_t r = 0;
    switch (op->code) {
    case CORO__OP_NOP: return 0;
    case CORO__OP_READ:
        r = op->a.rw.off < 0 ? read(op->fd, op->a.rw.buf, op->a.rw.len)
                             : pread(op->fd, op->a.rw.buf, op->a.rw.len, (off_t)op->a.rw.off);
        break;
    case CORO__OP_WRITE:
        r = op->a.rw.off < 0 ? write(op->fd, op->a.rw.buf, op->a.rw.len)
                             : pwrite(op->fd, op->a.rw.buf, op->a.rw.len, (off_t)op->a.rw.off);
        break;
    case CORO__OP_READV:
        r = op->a.v.off < 0 ? readv(op->fd, op->a.v.iov, op->a.v.cnt)
                            : preadv(op->fd, op->a.v.iov, op->a.v.cnt, (off_t)op->a.v.off);
        break;
    case CORO__OP_WRITEV:
        r = op->a.v.off < 0 ? writev(op->fd, op->a.v.iov, op->a.v.cnt)
                            : pwritev(op->fd, op->a.v.iov, op->a.v.cnt, (off_t)op->a.v.off);
        break;
    case CORO__OP_FSYNC: r = op->a.sync.datasync ? fdatasync(op->fd) : fsync(op->fd); break;
    case CORO__OP_OPENAT:
        r = openat(op->a.open.dirfd, op->a.open.path, op->a.open.flags, op->a.open.mode);
        break;
    case CORO__OP_CLOSE: r = close(op->fd); break;
    case CORO__OP_STATX:
        r = statx(op->a.stx.dirfd, op->a.stx.path, op->a.stx.flags, op->a.stx.mask, op->a.stx.out);
        break;
    case CORO__OP_SOCKET:
        r = socket(op->a.sock.domain, op->a.sock.type, op->a.sock.proto);
        break;
    case CORO__OP_CONNECT:
        if (op->flags & 1) { /* in progress: readiness came, read the outcome */
            int err = 0;
            socklen_t len = sizeof err;
            if (getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return -errno;
            return -err;
        }
        r = connect(op->fd, op->a.conn.addr, op->a.conn.len);
        if (r < 0 && errno == EINPROGRESS) {
            op->flags |= 1;
            return -EAGAIN;
        }
        break;
    case CORO__OP_ACCEPT:
        r = accept4(op->fd, op->a.acc.addr, op->a.acc.len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        break;
    case CORO__OP_RECV:
        r = recv(op->fd, op->a.sr.buf, op->a.sr.len, op->a.sr.flags | MSG_DONTWAIT);
        break;
    case CORO__OP_SEND:
        r = send(op->fd, op->a.sr.buf, op->a.sr.len, op->a.sr.flags | MSG_DONTWAIT | MSG_NOSIGNAL);
        break;
    case CORO__OP_SHUTDOWN: r = shutdown(op->fd, op->a.shut.how); break;
    case CORO__OP_POLL: return -EAGAIN; /* always through epoll */
    default: return -EINVAL;
    }
    if (r < 0) return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    return (int)r;
}

/* Which readiness an operation waits for: 1 read, 2 write, 3 any (poll),
 * 0 none. */
CORO_API int coro__epoll_dir(const coro_io_op *op)
{
    switch (op->code) {
    case CORO__OP_READ: case CORO__OP_READV: case CORO__OP_ACCEPT: case CORO__OP_RECV:
        return 1;
    case CORO__OP_WRITE: case CORO__OP_WRITEV: case CORO__OP_CONNECT: case CORO__OP_SEND:
        return 2;
    case CORO__OP_POLL: return 3; /* its own list: edges of either kind */
    default: return 0;
    }
}

/* Registers fd once, edge-triggered for both directions; from then on the
 * events only update s->ready, so a connection costs one epoll_ctl. */
CORO_API int coro__epoll_register(coro_io *io, int fd, coro__fdslot *s)
{
    if (s->events) return 0;
    struct epoll_event ev;
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = (uint64_t)fd;
    if (epoll_ctl(io->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 &&
        (errno != EEXIST || epoll_ctl(io->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)) /* a dup */
        return -errno; /* -EBADF: not open; -EPERM: not pollable */
    s->events = ev.events;
    s->ready = 3; /* unknown: try the system call first */
    return 0;
}

/* An epoll operation is over: report it at the next poll, like a CQE. */
CORO_API void coro__epoll_done(coro_io *io, coro_io_op *op, int res)
{
    op->res = res;
    op->state = CORO__IO_COMPLETING;
    coro__link_add(&io->pending, &op->link);
}

CORO_API void coro__epoll_wait_on(coro_io *io, coro__link *q, coro_io_op *op)
{
    coro__link_add(q, &op->link);
    io->nwait++;
}

/* poll(2) now: the events of op that fd has (0: none yet). */
CORO_API int coro__epoll_poll_now(const coro_io_op *op)
{
    struct pollfd p;
    p.fd = op->fd;
    p.events = (short)op->a.poll.events;
    p.revents = 0;
    if (poll(&p, 1, 0) <= 0) return 0;
    return p.revents & POLLNVAL ? -EBADF : p.revents;
}

/* Runs op now if its fd may be ready, else queues it behind the others
 * waiting in the same direction (their order is kept). */
CORO_API void coro__epoll_submit(coro_io *io, coro_io_op *op)
{
    coro__fdslot *s = coro__op_has_fd(op) ? coro__fdslot_of(io, op->fd) : NULL;
    int dir = coro__epoll_dir(op), res;
    if (s && !s->kind) { /* epoll refuses regular files: they are always ready */
        struct stat st;
        s->kind = fstat(op->fd, &st) == 0 && S_ISREG(st.st_mode) ? 2 : 1;
        if (s->kind == 1 && dir && op->code != CORO__OP_POLL) {
            int fl = fcntl(op->fd, F_GETFL);
            if (fl >= 0 && !(fl & O_NONBLOCK)) fcntl(op->fd, F_SETFL, fl | O_NONBLOCK);
        }
    }
    if (s && s->kind == 2) dir = 0;
    coro__link *q = dir == 1 ? &s->readers : dir == 2 ? &s->writers : dir ? &s->pollers : NULL;
    op->state = CORO__IO_INFLIGHT;
    if (q && (res = coro__epoll_register(io, op->fd, s)) < 0) {
        if (res == -EPERM) { /* epoll refuses it, as a regular file: always ready */
            s->kind = 2;
            q = NULL;
        } else {
            coro__epoll_done(io, op, res);
            return;
        }
    }
    if (q && dir != 3 && (q->next != q || !(s->ready & dir))) { /* others first / not ready */
        coro__epoll_wait_on(io, q, op);
        return;
    }
    res = op->code == CORO__OP_POLL ? coro__epoll_poll_now(op) : coro__epoll_run(op);
    if (q && (res == -EAGAIN || (op->code == CORO__OP_POLL && !res))) {
        if (res == -EAGAIN) s->ready &= (uint8_t)~dir;
        coro__epoll_wait_on(io, q, op);
        return;
    }
    coro__epoll_done(io, op, res);
}

/* An edge on fd in direction dir: run its waiters in order until one
 * would block. */
CORO_API void coro__epoll_ready(coro_io *io, coro__fdslot *s, int dir)
{
    coro__link *q = dir == 1 ? &s->readers : &s->writers;
    s->ready |= (uint8_t)dir;
    while (q->next != q) {
        coro_io_op *op = CORO__CONTAINER(coro_io_op, link, q->next);
        int res = coro__epoll_run(op);
        if (res == -EAGAIN) {
            s->ready &= (uint8_t)~dir;
            break;
        }
        coro__link_del(&op->link);
        io->nwait--;
        coro__epoll_done(io, op, res);
    }
}

/* An edge on fd: the polls that wait for one of its events are done. */
CORO_API void coro__epoll_polled(coro_io *io, coro__fdslot *s, uint32_t ev)
{
    for (coro__link *l = s->pollers.next, *nx; l != &s->pollers; l = nx) {
        coro_io_op *op = CORO__CONTAINER(coro_io_op, link, l);
        int res = (int)(ev & (op->a.poll.events | POLLERR | POLLHUP));
        nx = l->next;
        if (!res) continue;
        coro__link_del(&op->link);
        io->nwait--;
        coro__epoll_done(io, op, res);
    }
}

/* epoll_pwait2 (nanosecond timeout), or epoll_wait with the timeout
 * rounded up to a millisecond where the former is refused. */
CORO_API int coro__epoll_wait(coro_io *io, int64_t timeout)
{
    if (!io->no_pwait2) {
        struct timespec ts;
        ts.tv_sec = (time_t)(timeout / 1000000000);
        ts.tv_nsec = (long)(timeout % 1000000000);
        int n = epoll_pwait2(io->epfd, io->events, 64, timeout >= 0 ? &ts : NULL, NULL);
        if (n >= 0 || errno != ENOSYS) return n;
        io->no_pwait2 = 1;
    }
    int ms = timeout < 0 ? -1 : timeout >= (int64_t)INT32_MAX * 1000000 ? INT32_MAX
                                                                     : (int)((timeout + 999999) / 1000000);
    return epoll_wait(io->epfd, io->events, 64, ms);
}

CORO_API int coro__epoll_poll(coro_backend *b, coro_loop *L, int64_t timeout)
{
    coro_io *io = (coro_io *)(void *)b;
    if (io->pending.next != &io->pending) timeout = 0; /* completions to report */
    if (timeout < 0 && !io->nwait && !L->signals) return CORO_EDEADLK;
    io->stats.enters++;
    int n = -1;
    if (io->enter_fault && io->enter_fault(io->fault_arg) < 0) {
        io->stats.busy_retries++;
    } else {
        n = coro__epoll_wait(io, timeout);
    }
    for (int i = 0; i < n; i++) {
        int fd = (int)io->events[i].data.u64;
        uint32_t ev = io->events[i].events;
        if (fd == io->wakefd) {
            uint64_t v;
            if (read(io->wakefd, &v, sizeof v) > 0) io->stats.wakes++;
            continue;
        }
        coro__fdslot *s = coro__fdslot_of(io, fd);
        if (!s || !s->events) continue; /* closed meanwhile */
        if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) coro__epoll_ready(io, s, 1);
        if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) coro__epoll_ready(io, s, 2);
        if (s->pollers.next != &s->pollers) coro__epoll_polled(io, s, ev);
    }
    while (io->pending.next != &io->pending) { /* report what completed */
        coro_io_op *op = CORO__CONTAINER(coro_io_op, link, io->pending.next);
        coro__link_del(&op->link);
        coro__io_finish(io, op, op->res);
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Submission and the operations                                          */
/* ---------------------------------------------------------------------- */

CORO_API void coro__io_submit(coro_io *io, coro_io_op *op)
{
    if (io->kind == CORO_IO_URING) {
        coro__uring_queue(io, op);
    } else {
        if (io->fault) {
            int f = io->fault(io->fault_arg, op);
            if (f < 0 && f != CORO_IO_FAULT_SQ_FULL) {
                op->state = CORO__IO_INFLIGHT;
                coro__epoll_done(io, op, f);
                return;
            }
            if (f > 0 && (op->code == CORO__OP_READ || op->code == CORO__OP_WRITE) &&
                (size_t)f < op->a.rw.len)
                op->a.rw.len = (size_t)f;
            if (f > 0 && (op->code == CORO__OP_RECV || op->code == CORO__OP_SEND) &&
                (size_t)f < op->a.sr.len)
                op->a.sr.len = (size_t)f;
        }
        coro__epoll_submit(io, op);
    }
}

/* A cancellation that an operation's result held back (KEEP_RESULT) ends
 * the task's next operation before it starts: otherwise each new operation
 * could complete at once, keep its result, and postpone the cancellation
 * forever. Not a close (it always goes on), nor the library's own
 * operations that no task awaits (io->internal: a stream's sends). */
CORO_API int coro__io_cancel_due(coro_io *io, const coro_io_op *op)
{
    coro_task *t = coro_current_task(io->loop);
    if (!t || io->internal || op->code == CORO__OP_CLOSE) return 0;
    if (!(t->h.flags & CORO__T_MUST_CANCEL)) return 0;
    t->h.flags &= (uint8_t)~CORO__T_MUST_CANCEL; /* delivered by this op */
    return 1;
}

/* Starts an operation: its fields are set; returns its waitable. */
CORO_API coro_waitable *coro__io_start(coro_io_op *op)
{
    coro_io *io = op->io;
    coro_future_init(&op->w.fut);
    op->w.cancel = coro__io_cancel;
    op->w.flags = CORO_WAITABLE_KEEP_RESULT;
    op->res = 0;
    op->flags = 0;
    if (coro__io_cancel_due(io, op)) {
        op->state = CORO__IO_DONE;
        coro__future_finish(io->loop, &op->w.fut, CORO_FUTURE_ERROR, CORO_ECANCELED);
        return &op->w;
    }
    if (op->fd < 0 && coro__op_needs_fd(op)) { /* as the kernel would say */
        op->state = CORO__IO_DONE;
        coro__future_finish(io->loop, &op->w.fut, CORO_FUTURE_ERROR, -EBADF);
        return &op->w;
    }
    if (coro__op_has_fd(op)) {
        coro__fdslot *s = coro__fdslot_of(io, op->fd);
        if (!s) {
            op->state = CORO__IO_INFLIGHT;
            coro__io_finish(io, op, -ENOMEM);
            return &op->w;
        }
        if (s->closing && op->code != CORO__OP_CLOSE) { /* closed: refused */
            op->state = CORO__IO_DONE;
            coro__future_finish(io->loop, &op->w.fut, CORO_FUTURE_ERROR, -EBADF);
            return &op->w;
        }
        if (op->code != CORO__OP_CLOSE) s->inflight++;
    }
    coro__io_submit(io, op);
    return &op->w;
}

CORO_API coro_io_op *coro__io_op(coro_io_op *op, coro_loop *L, int code, int fd)
{
    op->io = coro_io_of(L);
    op->code = (uint8_t)code;
    op->fd = fd;
    op->state = CORO__IO_IDLE;
    coro__link_init(&op->link);
    return op;
}

/* Awaits an operation: c->rc = its result (bytes, an fd, 0) or -errno
 * (CORO_ECANCELED if the task was cancelled first: see coro__io_start). */
#define CORO_IO(c, waitable) CORO_AWAIT_WAITABLE(c, waitable)

/* read(2)/pread(2): off >= 0 reads at that offset, -1 at the position. */
CORO_API coro_waitable *coro_read(coro_io_op *op, coro_loop *L, int fd, void *buf,
                                  size_t n, int64_t off)
{
    coro__io_op(op, L, CORO__OP_READ, fd);
    op->a.rw.buf = buf;
    op->a.rw.len = n;
    op->a.rw.off = off;
    return coro__io_start(op);
}

CORO_API coro_waitable *coro_write(coro_io_op *op, coro_loop *L, int fd,
                                   const void *buf, size_t n, int64_t off)
{
    coro__io_op(op, L, CORO__OP_WRITE, fd);
    op->a.rw.buf = (void *)(uintptr_t)buf;
    op->a.rw.len = n;
    op->a.rw.off = off;
    return coro__io_start(op);
}

CORO_API coro_waitable *coro_readv(coro_io_op *op, coro_loop *L, int fd,
                                   const struct iovec *iov, int cnt, int64_t off)
{
    coro__io_op(op, L, CORO__OP_READV, fd);
    op->a.v.iov = iov;
    op->a.v.cnt = cnt;
    op->a.v.off = off;
    return coro__io_start(op);
}

CORO_API coro_waitable *coro_writev(coro_io_op *op, coro_loop *L, int fd,
                                    const struct iovec *iov, int cnt, int64_t off)
{
    coro__io_op(op, L, CORO__OP_WRITEV, fd);
    op->a.v.iov = iov;
    op->a.v.cnt = cnt;
    op->a.v.off = off;
    return coro__io_start(op);
}

/* fsync(2) (datasync: fdatasync). */
CORO_API coro_waitable *coro_fsync(coro_io_op *op, coro_loop *L, int fd, int datasync)
{
    coro__io_op(op, L, CORO__OP_FSYNC, fd);
    op->a.sync.datasync = datasync;
    return coro__io_start(op);
}

/* openat(2); O_CLOEXEC is added. c->rc: the new fd. */
CORO_API coro_waitable *coro_openat(coro_io_op *op, coro_loop *L, int dirfd,
                                    const char *path, int flags, mode_t mode)
{
    coro__io_op(op, L, CORO__OP_OPENAT, -1);
    op->a.open.dirfd = dirfd;
    op->a.open.path = path;
    op->a.open.flags = flags | O_CLOEXEC;
    op->a.open.mode = mode;
    return coro__io_start(op);
}

/* Ends, with -EBADF, the operations on fd that have not reached the
 * kernel (io_uring) or wait for readiness (epoll). */
CORO_API void coro__io_fail_waiting(coro_io *io, int fd, coro__fdslot *s)
{
    if (io->kind == CORO_IO_URING) {
        for (coro__link *l = io->pending.next, *nx; l != &io->pending; l = nx) {
            coro_io_op *w = CORO__CONTAINER(coro_io_op, link, l);
            nx = l->next;
            if (w->state == CORO__IO_PENDING && w->fd == fd && coro__op_has_fd(w)) {
                coro__link_del(&w->link);
                coro__io_finish(io, w, -EBADF);
            }
        }
        return;
    }
    coro__link *qs[3] = {&s->readers, &s->writers, &s->pollers};
    for (int k = 0; k < 3; k++)
        while (qs[k]->next != qs[k]) {
            coro_io_op *w = CORO__CONTAINER(coro_io_op, link, qs[k]->next);
            coro__link_del(&w->link);
            io->nwait--;
            coro__epoll_done(io, w, -EBADF);
        }
}

/* Closes fd once the operations in flight on it have ended; they are
 * cancelled first and end with -EBADF (or with their result, if they
 * completed before the cancel); new ones are refused with -EBADF. */
CORO_API coro_waitable *coro_close(coro_io_op *op, coro_loop *L, int fd)
{
    coro__io_op(op, L, CORO__OP_CLOSE, fd);
    coro_io *io = op->io;
    coro__fdslot *s = coro__fdslot_of(io, fd);
    if (s && s->closing) { /* a close is already under way: this one is late */
        coro_future_init(&op->w.fut);
        op->w.cancel = coro__io_cancel;
        op->w.flags = 0;
        op->state = CORO__IO_DONE;
        coro__future_finish(io->loop, &op->w.fut, CORO_FUTURE_ERROR, -EBADF);
        return &op->w;
    }
    if (s) {
        s->closing = 1;
        if (s->inflight) coro__io_fail_waiting(io, fd, s);
    }
    if (!s || !s->inflight) return coro__io_start(op);
    coro_future_init(&op->w.fut);
    op->w.cancel = coro__io_cancel; /* a close is not cancellable: it goes on */
    op->w.flags = CORO_WAITABLE_KEEP_RESULT;
    s->close_op = op; /* submitted when the last one is back */
    if (io->kind == CORO_IO_URING) {
        op->state = CORO__IO_CANCEL_FD;
        coro__uring_queue(io, op);
    }
    return &op->w;
}

/* After a plain close(2) of an fd that coro_io has seen: forget what the
 * table knew about it (its number will be reused). CORO_EBUSY while
 * operations on it are in flight (close it with coro_close instead). */
CORO_API int coro_io_forget(coro_loop *L, int fd)
{
    coro_io *io = coro_io_of(L);
    if (fd < 0 || fd >= io->nfds) return 0;
    coro__fdslot *s = &io->fds[fd];
    if (s->inflight) return CORO_EBUSY;
    if (s->events && io->kind == CORO_IO_EPOLL) {
        struct epoll_event ev;
        epoll_ctl(io->epfd, EPOLL_CTL_DEL, fd, &ev); /* gone already if closed */
    }
    coro__fdslot_reset(io, s);
    return 0;
}

/* statx(2) into *out. */
CORO_API coro_waitable *coro_statx(coro_io_op *op, coro_loop *L, int dirfd, const char *path,
                                   int flags, unsigned mask, struct statx *out)
{
    coro__io_op(op, L, CORO__OP_STATX, dirfd);
    op->a.stx.dirfd = dirfd;
    op->a.stx.path = path;
    op->a.stx.flags = flags;
    op->a.stx.mask = mask;
    op->a.stx.out = out;
    return coro__io_start(op);
}

/* socket(2), non-blocking and close-on-exec. c->rc: the new fd. */
CORO_API coro_waitable *coro_socket(coro_io_op *op, coro_loop *L, int domain, int type,
                                    int proto)
{
    coro__io_op(op, L, CORO__OP_SOCKET, -1);
    op->a.sock.domain = domain;
    op->a.sock.type = type | SOCK_NONBLOCK | SOCK_CLOEXEC;
    op->a.sock.proto = proto;
    return coro__io_start(op);
}

/* connect(2); addr must stay valid until the await returns. */
CORO_API coro_waitable *coro_connect(coro_io_op *op, coro_loop *L, int fd,
                                     const struct sockaddr *addr, socklen_t len)
{
    coro__io_op(op, L, CORO__OP_CONNECT, fd);
    op->a.conn.addr = addr;
    op->a.conn.len = len;
    return coro__io_start(op);
}

/* accept4(2), the new fd non-blocking and close-on-exec (addr may be NULL).
 * c->rc: the new fd, which is the caller's even if it was cancelled. */
CORO_API coro_waitable *coro_accept(coro_io_op *op, coro_loop *L, int fd,
                                    struct sockaddr *addr, socklen_t *len)
{
    coro__io_op(op, L, CORO__OP_ACCEPT, fd);
    op->a.acc.addr = addr;
    op->a.acc.len = len;
    return coro__io_start(op);
}

/* Does the ring take multishot accepts? Probed once per ring: they came
 * with kernel 5.19, as IORING_OP_SOCKET did (the probe lists opcodes, not
 * flags). 0 on epoll. */
CORO_API int coro__accept_multi_ok(coro_io *io)
{
    if (io->kind != CORO_IO_URING) return 0;
    if (!io->accept_multi) {
        struct io_uring_probe *p = io_uring_get_probe_ring(&io->ring);
        io->accept_multi = p && io_uring_opcode_supported(p, IORING_OP_SOCKET) ? 1 : -1;
        if (p) io_uring_free_probe(p);
    }
    return io->accept_multi > 0;
}

/* Starts a multishot op (io_uring only): one SQE, then on(op, res, 1) for
 * each result and on(op, res, 0) once when it ends (0: the kernel ended
 * it, arm it again; or -errno, -ECANCELED after coro__io_cancel). No task
 * awaits op: the caller keeps it alive until on(op, res, 0). */
CORO_API void coro__multishot(coro_io_op *op, coro_loop *L, int code, int fd,
                              void (*on)(coro_io_op *op, int res, int more))
{
    coro__io_op(op, L, code, fd);
    op->a.ms.on = on;
    if (fd < 0 || (fd < op->io->nfds && op->io->fds[fd].closing)) { /* refused: not started */
        op->state = CORO__IO_DONE;
        on(op, -EBADF, 0);
        return;
    }
    op->io->internal++; /* the library's own: the running task's cancellation is not its */
    coro__io_start(op);
    op->io->internal--;
}

/* A multishot accept on the listener fd: on(op, fd, 1) for each connection
 * (the fd is on's: non-blocking, close-on-exec). */
CORO_API void coro__accept_multi(coro_io_op *op, coro_loop *L, int fd,
                                 void (*on)(coro_io_op *op, int res, int more))
{
    coro__multishot(op, L, CORO__OP_ACCEPT_MULTI, fd, on);
}

/* Provided buffers for multishot recv (streams on io_uring): a ring of
 * CORO_IO_RBUFS buffers of CORO_IO_RBUF_SIZE bytes (256 KiB) that the
 * loop's streams share, set up at the first stream read. The kernel picks
 * one per result; its bytes are copied into the stream's own buffer and it
 * is handed back while the CQE is reaped, so a burst larger than the ring
 * only ends the multishot (-ENOBUFS), to be armed again. */

/* Are the provided buffers there (set up now if not yet tried)? */
CORO_API int coro__rbufs(coro_io *io)
{
    if (io->rbufs) return io->rbufs > 0;
    io->rbufs = -1;
    if (io->kind != CORO_IO_URING) return 0;
    size_t size = CORO__RBUF_RING + (size_t)CORO_IO_RBUFS * CORO_IO_RBUF_SIZE;
    void *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) return 0;
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof reg);
    reg.ring_addr = (uint64_t)(uintptr_t)m;
    reg.ring_entries = CORO_IO_RBUFS;
    reg.bgid = CORO__RBUF_GROUP;
    if (io_uring_register_buf_ring(&io->ring, &reg, 0) < 0) { /* before Linux 5.19 */
        munmap(m, size);
        return 0;
    }
    io->rbr = (struct io_uring_buf_ring *)m;
    io->rbuf_mem = (unsigned char *)m + CORO__RBUF_RING;
    io_uring_buf_ring_init(io->rbr);
    for (unsigned i = 0; i < CORO_IO_RBUFS; i++)
        io_uring_buf_ring_add(io->rbr, io->rbuf_mem + (size_t)i * CORO_IO_RBUF_SIZE,
                              CORO_IO_RBUF_SIZE, (unsigned short)i,
                              io_uring_buf_ring_mask(CORO_IO_RBUFS), (int)i);
    io_uring_buf_ring_advance(io->rbr, CORO_IO_RBUFS);
    io->rbufs = 1;
    return 1;
}

/* The buffer a multishot recv's result came in (its CQE's flags). */
CORO_API unsigned char *coro__rbuf(coro_io *io, unsigned cflags)
{
    return io->rbuf_mem + (size_t)(cflags >> IORING_CQE_BUFFER_SHIFT) * CORO_IO_RBUF_SIZE;
}

/* Hands that buffer back to the kernel. */
CORO_API void coro__rbuf_put(coro_io *io, unsigned cflags)
{
    unsigned bid = cflags >> IORING_CQE_BUFFER_SHIFT;
    io_uring_buf_ring_add(io->rbr, io->rbuf_mem + (size_t)bid * CORO_IO_RBUF_SIZE,
                          CORO_IO_RBUF_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(CORO_IO_RBUFS), 0);
    io_uring_buf_ring_advance(io->rbr, 1);
}

/* recv(2): c->rc = bytes (0: the peer closed its side). */
CORO_API coro_waitable *coro_recv(coro_io_op *op, coro_loop *L, int fd, void *buf,
                                  size_t n, int flags)
{
    coro__io_op(op, L, CORO__OP_RECV, fd);
    op->a.sr.buf = buf;
    op->a.sr.len = n;
    op->a.sr.flags = flags;
    return coro__io_start(op);
}

/* send(2) with MSG_NOSIGNAL; may be short (see coro_stream for a writer
 * that sends everything, one send at a time, in order). */
CORO_API coro_waitable *coro_send(coro_io_op *op, coro_loop *L, int fd, const void *buf,
                                  size_t n, int flags)
{
    coro__io_op(op, L, CORO__OP_SEND, fd);
    op->a.sr.buf = (void *)(uintptr_t)buf;
    op->a.sr.len = n;
    op->a.sr.flags = flags;
    return coro__io_start(op);
}

CORO_API coro_waitable *coro_shutdown(coro_io_op *op, coro_loop *L, int fd, int how)
{
    coro__io_op(op, L, CORO__OP_SHUTDOWN, fd);
    op->a.shut.how = how;
    return coro__io_start(op);
}

/* Waits until fd is ready for `events` (POLLIN, POLLOUT...): c->rc = the
 * events that happened. */
CORO_API coro_waitable *coro_poll(coro_io_op *op, coro_loop *L, int fd, unsigned events)
{
    coro__io_op(op, L, CORO__OP_POLL, fd);
    op->a.poll.events = events;
    return coro__io_start(op);
}

/* An operation that does nothing (io_uring's NOP; measures the overhead). */
CORO_API coro_waitable *coro_nop(coro_io_op *op, coro_loop *L)
{
    coro__io_op(op, L, CORO__OP_NOP, -1);
    return coro__io_start(op);
}

/* coro_strerror, with the system's text for -errno codes. */
CORO_API const char *coro_io_strerror(int rc)
{
    if (rc == -3005) return "host name not resolved"; /* CORO_ENAME */
    const char *s = coro_strerror(rc);
    return rc < 0 && !strcmp(s, "system error") ? strerror(-rc) : s;
}

/* ---------------------------------------------------------------------- */
/* Initialisation                                                          */
/* ---------------------------------------------------------------------- */

CORO_API int64_t coro__io_now(coro_backend *b)
{
    struct timespec ts;
    (void)b;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + (int64_t)ts.tv_nsec;
}

CORO_API void coro__io_wake(coro_backend *b)
{
    coro_io *io = (coro_io *)(void *)b;
    uint64_t one = 1;
    if (io->wakefd >= 0) {
        ssize_t r = write(io->wakefd, &one, sizeof one); /* async-signal-safe */
        (void)r;
    }
}

CORO_API void coro__io_close_pool(coro_io *io);
CORO_API void coro__inbox_quiesce(coro_io *io);

CORO_API void coro__io_close(coro_backend *b, coro_loop *L)
{
    coro_io *io = (coro_io *)(void *)b;
    (void)L;
    coro__io_close_pool(io);
    coro__inbox_quiesce(io);
    if (io->kind == CORO_IO_URING)
        io_uring_queue_exit(&io->ring);
    else if (io->epfd >= 0)
        close(io->epfd);
    if (io->rbr) /* after the ring: the kernel no longer writes there */
        munmap(io->rbr, CORO__RBUF_RING + (size_t)CORO_IO_RBUFS * CORO_IO_RBUF_SIZE);
    io->rbr = NULL;
    if (io->wakefd >= 0) close(io->wakefd);
    free(io->fds);
    io->fds = NULL;
    io->nfds = 0;
    io->wakefd = io->epfd = -1;
}

CORO_API void coro__inbox_drain(coro_loop *L, void *arg);

/* Creates the ring, dropping setup flags the kernel refuses. */
CORO_API int coro__uring_setup(coro_io *io, unsigned entries)
{
    static const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL |
            IORING_SETUP_CQSIZE,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE,
        IORING_SETUP_CQSIZE,
        0,
    };
    int rc = -EINVAL;
    /* Deferred task work is run only inside io_uring_enter: a ppoll on
     * the ring would never see it (coro__uring_ppoll, under valgrind). */
    for (unsigned i = CORO__IO_VALGRIND(); i < sizeof tries / sizeof tries[0]; i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof p);
        p.flags = tries[i];
        p.cq_entries = entries * 4;
        rc = io_uring_queue_init_params(entries, &io->ring, &p);
        if (rc == 0) {
            io->ring_flags = tries[i];
            io->cq_entries = p.cq_entries;
            io_uring_register_ring_fd(&io->ring); /* one fewer fd lookup per enter */
            return 0;
        }
        if (rc != -EINVAL) break;
    }
    return rc;
}

/* Initialises io and the loop L on it: io_uring if the kernel allows it
 * (setup flags dropped one by one on -EINVAL), else epoll on -EPERM /
 * -ENOSYS; CORO_BACKEND=uring|epoll in the environment forces one. Returns
 * 0 or a negative errno (-ENOMEM is reported, not hidden by a fallback). */
CORO_API int coro_io_init(coro_io *io, coro_loop *L, const coro_io_config *cfg)
{
    unsigned entries = cfg && cfg->entries ? cfg->entries : 256;
    int want = cfg ? cfg->backend : 0;
    const char *env = getenv("CORO_BACKEND");
    if (!want && env) want = !strcmp(env, "epoll") ? CORO_IO_EPOLL : !strcmp(env, "uring") ? CORO_IO_URING : 0;
    memset(io, 0, sizeof *io);
    io->magic = CORO__IO_MAGIC;
    io->epfd = io->wakefd = -1;
    coro__link_init(&io->pending);
    coro__link_init(&io->cancels);
    io->base.now = coro__io_now;
    io->base.close = coro__io_close;
    io->base.wake = coro__io_wake;
    io->base.quiet = 0;
    int rc = want == CORO_IO_EPOLL ? -EPERM : coro__uring_setup(io, entries);
    if (rc == 0) {
        io->kind = CORO_IO_URING;
        io->base.poll = coro__uring_poll;
        io->max_inflight = cfg && cfg->max_inflight ? cfg->max_inflight : io->cq_entries;
        io->vg = CORO__IO_VALGRIND();
    } else if ((rc == -EPERM || rc == -ENOSYS) && want != CORO_IO_URING) {
        io->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (io->epfd < 0) return -errno;
        io->kind = CORO_IO_EPOLL;
        io->base.poll = coro__epoll_poll;
    } else {
        return rc;
    }
    io->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (io->kind == CORO_IO_EPOLL && io->wakefd >= 0) {
        struct epoll_event ev;
        ev.events = EPOLLIN;
        ev.data.u64 = (uint64_t)io->wakefd;
        epoll_ctl(io->epfd, EPOLL_CTL_ADD, io->wakefd, &ev);
    }
    rc = coro_loop_init(L, &io->base);
    io->loop = L;
    coro_signal_init(L, &io->inbox_signal, coro__inbox_drain, io); /* set up, */
    coro_signal_remove(L, &io->inbox_signal); /* registered only while used */
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Other threads: the inbox, call_soon_threadsafe, run_coroutine_threadsafe */
/* ---------------------------------------------------------------------- */

/* THREAD SAFETY: a loop and everything on it belong to the thread that
 * runs it. The only calls allowed from other threads are
 * coro_call_soon_threadsafe, coro_run_coroutine_threadsafe and the
 * coro_tfuture_* calls, coro_signal_raise (coro_loop.h), and the worker
 * side of the thread pool (internal). Each goes through the loop's inbox:
 * a lock-free stack of caller-owned coro_remote records that the loop
 * drains on its own thread, woken through its backend (an eventfd).
 * The loop may be closed (and freed) as soon as it has handled the last
 * message: coro_loop_close waits for posts still under way. Posting to a
 * closed loop is an error. */

CORO_API void coro__inbox_drain(coro_loop *L, void *arg);

/* Registers the inbox's signal while someone may post (loop thread).
 * The signal is set up once, at coro_io_init: a worker may still be
 * inside coro_signal_raise when its message was already handled, so the
 * record is only ever linked and unlinked, never re-initialised. */
CORO_API void coro__inbox_use(coro_io *io, int delta)
{
    coro_loop *L = io->loop;
    if (delta > 0 && io->inbox_users++ == 0) {
        io->inbox_signal.next = L->signals;
        L->signals = &io->inbox_signal;
    } else if (delta < 0 && --io->inbox_users == 0) {
        coro_signal_remove(L, &io->inbox_signal);
    }
}

/* Posts r to io's loop (any thread). Only the post that finds the inbox
 * empty wakes the loop: the loop empties it in one exchange, so a later
 * post finds it empty again. */
CORO_API void coro__inbox_post(coro_io *io, coro_remote *r)
{
    __atomic_add_fetch(&io->posting, 1u, __ATOMIC_SEQ_CST);
    coro_remote *head = __atomic_load_n(&io->inbox, __ATOMIC_RELAXED);
    do {
        r->next = head;
    } while (!__atomic_compare_exchange_n(&io->inbox, &head, r, 1, __ATOMIC_RELEASE,
                                          __ATOMIC_RELAXED));
    if (!head) coro_signal_raise(&io->inbox_signal);
    __atomic_sub_fetch(&io->posting, 1u, __ATOMIC_RELEASE); /* io may be gone after */
}

/* At close (loop thread): the loop may have handled a message before its
 * poster left coro_signal_raise (which reads the loop and writes the
 * wake fd); wait for it to leave before the fd and the memory go. */
CORO_API void coro__inbox_quiesce(coro_io *io)
{
    while (__atomic_load_n(&io->posting, __ATOMIC_ACQUIRE)) sched_yield();
}

/* The inbox's signal callback: runs every posted record, oldest first. */
CORO_API void coro__inbox_drain(coro_loop *L, void *arg)
{
    coro_io *io = (coro_io *)arg;
    coro_remote *r = __atomic_exchange_n(&io->inbox, (coro_remote *)NULL, __ATOMIC_ACQUIRE);
    coro_remote *fifo = NULL;
    while (r) { /* the stack is newest first */
        coro_remote *next = r->next;
        r->next = fifo;
        fifo = r;
        r = next;
    }
    while (fifo) {
        coro_remote *next = fifo->next; /* fn may end the record's life */
        fifo->fn(L, fifo);
        fifo = next;
    }
}

/* Lets other threads call into this loop (loop thread, before they do).
 * From then on the loop waits for them instead of reporting a deadlock
 * when it has nothing else to do. */
CORO_API void coro_io_threadsafe(coro_io *io)
{
    if (!io->threadsafe) {
        io->threadsafe = 1;
        coro__inbox_use(io, 1);
    }
}

/* asyncio's call_soon_threadsafe: fn(L, arg) runs on L's thread, in the
 * loop's next iteration, in the order of the calls. The record belongs to
 * the loop until fn has started. L must be in threadsafe mode. */
typedef struct coro_tcall {
    coro_remote r;
    coro_callback *fn;
    void *arg;
} coro_tcall;

CORO_API void coro__tcall_run(coro_loop *L, coro_remote *r)
{
    coro_tcall *t = CORO__CONTAINER(coro_tcall, r, r);
    t->fn(L, t->arg);
}

CORO_API void coro_call_soon_threadsafe(coro_loop *L, coro_tcall *t, coro_callback *fn,
                                        void *arg)
{
    t->fn = fn;
    t->arg = arg;
    t->r.fn = coro__tcall_run;
    coro__inbox_post(coro_io_of(L), &t->r);
}

/* asyncio's run_coroutine_threadsafe: another thread starts frame as a
 * task on L (threadsafe mode) and can wait for its outcome with a timeout,
 * or cancel it; cancellation is chained both ways (a task cancelled on
 * the loop gives CORO_ECANCELED to the waiting thread).
 *     coro_tfuture tf;
 *     coro_run_coroutine_threadsafe(&tf, L, frame);   // other thread
 *     int rc = coro_tfuture_wait(&tf, CORO_S(1));       // CORO_ETIMEDOUT, or the task's result
 *     if (rc == CORO_ETIMEDOUT) { coro_tfuture_cancel(&tf); rc = coro_tfuture_wait(&tf, -1); }
 *     coro_tfuture_destroy(&tf);                        // only once a wait saw it done
 * The record and the frame must live until a wait returned the outcome. */
typedef struct coro_tfuture {
    coro_remote start, cancel;
    coro_io *io;
    coro_frame *frame;
    coro_task task;
    coro_call done_cb;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, result, msgs, cancel_sent;
} coro_tfuture;

/* A record was processed by the loop (under mu): the waiter may go on. */
CORO_API void coro__tfuture_ack(coro_tfuture *tf)
{
    pthread_mutex_lock(&tf->mu);
    if (--tf->msgs == 0 && tf->done) pthread_cond_broadcast(&tf->cv);
    pthread_mutex_unlock(&tf->mu);
}

CORO_API void coro__tfuture_done(coro_loop *L, void *arg)
{
    coro_tfuture *tf = (coro_tfuture *)arg;
    (void)L;
    pthread_mutex_lock(&tf->mu);
    tf->result = coro_task_result(&tf->task);
    tf->done = 1;
    if (tf->msgs == 0) pthread_cond_broadcast(&tf->cv);
    pthread_mutex_unlock(&tf->mu);
}

CORO_API void coro__tfuture_start(coro_loop *L, coro_remote *r)
{
    coro_tfuture *tf = CORO__CONTAINER(coro_tfuture, start, r);
    coro_spawn(L, &tf->task, tf->frame);
    coro_task_add_done_callback(L, &tf->task, &tf->done_cb, coro__tfuture_done, tf);
    coro__tfuture_ack(tf); /* a cancel is posted after this: it comes next */
}

CORO_API void coro__tfuture_cancel(coro_loop *L, coro_remote *r)
{
    coro_tfuture *tf = CORO__CONTAINER(coro_tfuture, cancel, r);
    if (tf->task.h.kind && !coro_task_done(&tf->task)) coro_task_cancel(L, &tf->task);
    coro__tfuture_ack(tf);
}

CORO_API int coro_run_coroutine_threadsafe(coro_tfuture *tf, coro_loop *L, coro_frame *frame)
{
    memset(tf, 0, sizeof *tf);
    tf->io = coro_io_of(L);
    tf->frame = frame;
    if (pthread_mutex_init(&tf->mu, NULL) != 0) return CORO_ENOMEM;
    if (pthread_cond_init(&tf->cv, NULL) != 0) {
        pthread_mutex_destroy(&tf->mu);
        return CORO_ENOMEM;
    }
    tf->msgs = 1;
    tf->start.fn = coro__tfuture_start;
    tf->cancel.fn = coro__tfuture_cancel;
    coro__inbox_post(tf->io, &tf->start);
    return 0;
}

/* Blocks until the task is done and the loop is finished with the record
 * (timeout_ns < 0: no limit): its result or error, or CORO_ETIMEDOUT. */
CORO_API int coro_tfuture_wait(coro_tfuture *tf, int64_t timeout_ns)
{
    struct timespec until;
    int rc = 0;
    clock_gettime(CLOCK_REALTIME, &until);
    if (timeout_ns >= 0) {
        int64_t ns = until.tv_nsec + timeout_ns % 1000000000;
        until.tv_sec += (time_t)(timeout_ns / 1000000000 + ns / 1000000000);
        until.tv_nsec = (long)(ns % 1000000000);
    }
    pthread_mutex_lock(&tf->mu);
    while (!(tf->done && tf->msgs == 0) && rc == 0)
        rc = timeout_ns < 0 ? pthread_cond_wait(&tf->cv, &tf->mu)
                            : pthread_cond_timedwait(&tf->cv, &tf->mu, &until);
    rc = tf->done && tf->msgs == 0 ? tf->result : CORO_ETIMEDOUT;
    pthread_mutex_unlock(&tf->mu);
    return rc;
}

/* Asks the loop to cancel the task (once; no effect once it is done). */
CORO_API void coro_tfuture_cancel(coro_tfuture *tf)
{
    pthread_mutex_lock(&tf->mu);
    int send = !tf->cancel_sent && !tf->done;
    if (send) {
        tf->cancel_sent = 1;
        tf->msgs++;
    }
    pthread_mutex_unlock(&tf->mu);
    if (send) coro__inbox_post(tf->io, &tf->cancel);
}

CORO_API void coro_tfuture_destroy(coro_tfuture *tf)
{
    pthread_cond_destroy(&tf->cv);
    pthread_mutex_destroy(&tf->mu);
}

/* ---------------------------------------------------------------------- */
/* The thread pool: to_thread / run_in_executor                            */
/* ---------------------------------------------------------------------- */

/* A fixed set of worker threads, started as jobs need them, running
 * caller-owned job records in FIFO order. A job's completion is posted to
 * its loop's inbox. asyncio's rules: cancelling a job that has not started
 * removes it (it never runs); a running job is not interrupted and its
 * result is discarded - in C the await then ends, with CORO_ECANCELED,
 * only once the function returned and the worker let go of the record,
 * because the record lives in the awaiting frame. Like asyncio's
 * executor, a job starts a new worker unless an idle one is left for it. */
struct coro_pool {
    pthread_mutex_t mu;
    pthread_cond_t work;
    coro__link queue;
    pthread_t *threads;
    unsigned nthreads, started;
    unsigned idle, queued; /* workers waiting for a job; jobs waiting for one */
    unsigned sleeping;     /* idle workers asleep on `work` (not spinning) */
    int stopping;
};

/* A piece of work: the function runs on a worker thread and returns an int (c->rc
 * of the await: >= 0 a value, < 0 an error); anything bigger goes
 * through arg. */
typedef int coro_work_fn(void *arg);

typedef struct coro_work {
    coro_waitable w;
    coro_remote r;
    coro__link link;
    coro_io *io;
    coro_pool *pool;
    coro_work_fn *fn;
    void *arg;
    int result;
    uint8_t state;
} coro_work;

#define CORO__WORK_QUEUED 1
#define CORO__WORK_RUNNING 2
#define CORO__WORK_DROPPED 3 /* cancelled before it started, or the pool stopped */

/* Makes a pool of at most nthreads workers (0: as asyncio, min(32, CPUs + 4)).
 * Returns 0 or CORO_ENOMEM. */
CORO_API int coro_pool_init(coro_pool *p, unsigned nthreads)
{
    memset(p, 0, sizeof *p);
    if (!nthreads) {
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        nthreads = (unsigned)(cpus > 0 ? cpus : 1) + 4;
        if (nthreads > 32) nthreads = 32;
    }
    p->threads = (pthread_t *)calloc(nthreads, sizeof *p->threads);
    if (!p->threads) return CORO_ENOMEM;
    p->nthreads = nthreads;
    coro__link_init(&p->queue);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work, NULL);
    return 0;
}

/* The job went back to its loop (loop thread): settle the await. */
CORO_API void coro__work_back(coro_loop *L, coro_remote *r)
{
    coro_work *j = CORO__CONTAINER(coro_work, r, r);
    coro_io *io = j->io;
    int rc = j->state == CORO__WORK_DROPPED ? CORO_ECANCELED : j->result;
    coro__future_finish(L, &j->w.fut, rc >= 0 ? CORO_FUTURE_RESULT : CORO_FUTURE_ERROR, rc);
    coro__inbox_use(io, -1);
}

/* Takes a queued job off the queue (under mu), into `state`. */
CORO_API void coro__pool_take(coro_pool *p, coro_work *j, uint8_t state)
{
    coro__link_del(&j->link);
    __atomic_store_n(&p->queued, p->queued - 1, __ATOMIC_RELAXED);
    j->state = state;
}

/* A spinning worker's test, without the lock: a job queued, or stopping. */
CORO_API int coro__pool_spin_ready(void *arg)
{
    coro_pool *p = (coro_pool *)arg;
    return __atomic_load_n(&p->queued, __ATOMIC_ACQUIRE) ||
           __atomic_load_n(&p->stopping, __ATOMIC_RELAXED);
}

CORO_API void *coro__pool_worker(void *arg)
{
    coro_pool *p = (coro_pool *)arg;
    int spin = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->queue.next == &p->queue && !p->stopping) {
            p->idle++;
            if (spin) { /* just finished a job: another may follow at once */
                pthread_mutex_unlock(&p->mu);
                coro__spin(coro__pool_spin_ready, p);
                pthread_mutex_lock(&p->mu);
                spin = 0;
            } else {
                p->sleeping++;
                pthread_cond_wait(&p->work, &p->mu);
                p->sleeping--;
            }
            p->idle--;
        }
        if (p->queue.next == &p->queue) break; /* stopping, nothing left */
        coro_work *j = CORO__CONTAINER(coro_work, link, p->queue.next);
        coro__pool_take(p, j, CORO__WORK_RUNNING);
        pthread_mutex_unlock(&p->mu);
        j->result = j->fn(j->arg);
        coro__inbox_post(j->io, &j->r); /* the last touch of the record */
        spin = CORO_POOL_SPIN_NS > 0 && !CORO__IO_VALGRIND(); /* it runs one thread at a time */
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Cancelling the await: a job still queued is dropped at once; a running
 * one is left alone and its result discarded when it comes back. */
CORO_API int coro__work_cancel(coro_loop *L, coro_waitable *w)
{
    coro_work *j = CORO__CONTAINER(coro_work, w, w);
    coro_pool *p = j->pool;
    pthread_mutex_lock(&p->mu);
    int queued = j->state == CORO__WORK_QUEUED;
    if (queued) coro__pool_take(p, j, CORO__WORK_DROPPED);
    pthread_mutex_unlock(&p->mu);
    if (!queued) return 0;
    coro__future_finish(L, &j->w.fut, CORO_FUTURE_ERROR, CORO_ECANCELED);
    coro__inbox_use(j->io, -1);
    return 1;
}

/* asyncio's loop.run_in_executor(pool, fn, arg): await the waitable with
 * CORO_IO / CORO_AWAIT_WAITABLE; c->rc = fn's result. CORO_ESHUTDOWN once
 * the pool is shut down; -errno if no worker thread could be started. */
CORO_API coro_waitable *coro_run_in_executor(coro_work *j, coro_loop *L, coro_pool *p,
                                             coro_work_fn *fn, void *arg)
{
    coro_future_init(&j->w.fut);
    j->w.cancel = coro__work_cancel;
    j->w.flags = 0; /* a cancelled job's result is discarded */
    j->io = coro_io_of(L);
    j->pool = p;
    j->fn = fn;
    j->arg = arg;
    j->r.fn = coro__work_back;
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    if (p->stopping) {
        rc = CORO_ESHUTDOWN;
    } else {
        /* Each idle worker is owed the jobs queued before this one (it has
         * not woken up yet): one more worker unless one is left over. */
        if (p->idle <= p->queued && p->started < p->nthreads) {
            rc = -pthread_create(&p->threads[p->started], NULL, coro__pool_worker, p);
            if (rc == 0) p->started++;
            else if (p->started) rc = 0; /* the others will get to it */
        }
        if (rc == 0) {
            j->state = CORO__WORK_QUEUED;
            coro__link_add(&p->queue, &j->link);
            __atomic_store_n(&p->queued, p->queued + 1, __ATOMIC_RELEASE);
        }
    }
    int wake = rc == 0 && p->sleeping > 0;
    pthread_mutex_unlock(&p->mu);
    if (wake) pthread_cond_signal(&p->work); /* unlocked: the woken one can take mu */
    if (rc < 0)
        coro__future_finish(L, &j->w.fut, CORO_FUTURE_ERROR, rc);
    else
        coro__inbox_use(j->io, 1);
    return &j->w;
}

/* Stops the pool: jobs not started are dropped (their awaits end with
 * CORO_ECANCELED), running ones finish; waits up to timeout_ns (< 0: no
 * limit) for the workers to exit. 0, or CORO_ETIMEDOUT: some still run,
 * and the pool must then not be freed - call again later. */
CORO_API int coro_pool_shutdown(coro_pool *p, int64_t timeout_ns)
{
    struct timespec until;
    pthread_mutex_lock(&p->mu);
    __atomic_store_n(&p->stopping, 1, __ATOMIC_RELAXED); /* read by spinning workers */
    while (p->queue.next != &p->queue) {
        coro_work *j = CORO__CONTAINER(coro_work, link, p->queue.next);
        coro__pool_take(p, j, CORO__WORK_DROPPED);
        coro__inbox_post(j->io, &j->r);
    }
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    clock_gettime(CLOCK_REALTIME, &until);
    if (timeout_ns >= 0) {
        int64_t ns = until.tv_nsec + timeout_ns % 1000000000;
        until.tv_sec += (time_t)(timeout_ns / 1000000000 + ns / 1000000000);
        until.tv_nsec = (long)(ns % 1000000000);
    }
    while (p->started) {
        int rc = timeout_ns < 0 ? pthread_join(p->threads[p->started - 1], NULL)
                                : pthread_timedjoin_np(p->threads[p->started - 1], NULL, &until);
        if (rc == ETIMEDOUT) return CORO_ETIMEDOUT;
        p->started--;
    }
    return 0;
}

/* Releases a pool that was shut down. */
CORO_API void coro_pool_free(coro_pool *p)
{
    pthread_cond_destroy(&p->work);
    pthread_mutex_destroy(&p->mu);
    free(p->threads);
    p->threads = NULL;
}

/* asyncio.to_thread(fn, arg): run_in_executor on the loop's default pool
 * (made on first use, shut down by coro_loop_close). */
CORO_API coro_waitable *coro_to_thread(coro_work *j, coro_loop *L, coro_work_fn *fn, void *arg)
{
    coro_io *io = coro_io_of(L);
    if (!io->pool) {
        coro_pool *p = (coro_pool *)malloc(sizeof *p);
        if (!p || coro_pool_init(p, 0) < 0) {
            free(p);
            coro_future_init(&j->w.fut);
            j->w.cancel = NULL;
            j->w.flags = 0;
            coro__future_finish(L, &j->w.fut, CORO_FUTURE_ERROR, CORO_ENOMEM);
            return &j->w;
        }
        io->pool = p;
    }
    return coro_run_in_executor(j, L, io->pool, fn, arg);
}

/* At loop close: the default pool's workers finish and exit. */
CORO_API void coro__io_close_pool(coro_io *io)
{
    if (!io->pool) return;
    coro_pool_shutdown(io->pool, -1);
    coro_pool_free(io->pool);
    free(io->pool);
    io->pool = NULL;
}

/* ---------------------------------------------------------------------- */
/* Streams (asyncio's StreamReader / StreamWriter over one socket)         */
/* ---------------------------------------------------------------------- */

/* A buffered connection. The reader receives only when a read needs more
 * data: on io_uring with one multishot recv into the loop's provided
 * buffers (coro__rbufs), copied into the stream's buffer as each result is
 * reaped, kept armed while the buffer holds less than 2 * limit bytes
 * (asyncio's pause_reading); on epoll, or when the kernel has no provided
 * buffers, with one recv per read into the stream's buffer; the writer
 * never blocks: writes are buffered (the buffer grows) and sent one send
 * at a time, in order, short sends completed; drain() waits while more
 * than the high-water mark is buffered, until it is below the low mark.
 * A failed send or recv (the connection is lost) drops the queue and
 * closes the stream, as asyncio's transport does; reads and drain() then
 * fail with that error.
 * Allocates its two buffers (coro_stream_init); coro_stream_free releases
 * them once the stream is closed.
 * Cancel-safety: a cancelled read loses nothing (bytes that arrived stay
 * buffered for the next read, and so do those a readexactly or read(-1)
 * had already moved to its output: the buffer grows for them); a
 * cancelled drain leaves the data queued. */
typedef struct coro_stream {
    coro_loop *loop;
    int fd;
    /* reader */
    unsigned char *rbuf;
    size_t rcap, rstart, rend, limit;
    int eof, rerr, rbusy;
    int ms, rwaiting;    /* multishot recv: 0 off, 1 armed, 2 cancelled (paused); a read waits on rwait */
    coro_io_op rop;      /* the recv, or the multishot recv */
    coro_waitable rwait; /* settled when the multishot brings data, the end, an error */
    /* writer */
    unsigned char *wbuf, *wold;
    size_t wcap, wstart, wend, high, low;
    int werr, closing, closed, want_eof, lost, sending;
    coro_io_op wop;
    coro_call wcb;
    coro_event drained, closed_ev; /* drain() and wait_closed() wait on them */
    coro_future closed_fut;
    coro_callback *on_closed; /* internal (servers): runs last, once closed */
    void *on_closed_arg;
    coro_io_op cop;
    coro_call ccb;
} coro_stream;

#define CORO_STREAM_LIMIT 65536 /* asyncio's default limit */
/* The read buffer starts this big and doubles when a recv finds it full,
 * up to 2 * limit: an idle connection costs 16 KiB, not 128. */
#ifndef CORO_STREAM_RBUF0
#define CORO_STREAM_RBUF0 16384
#endif

/* Wraps a connected, non-blocking socket. limit 0: 64 KiB. Returns 0,
 * CORO_EINVAL or -ENOMEM. The stream owns fd from now on. */
CORO_API int coro__stream_rwait_cancel(coro_loop *L, coro_waitable *w);

CORO_API int coro_stream_init(coro_stream *s, coro_loop *L, int fd, size_t limit)
{
    memset(s, 0, sizeof *s);
    s->loop = L;
    coro_future_init(&s->rwait.fut);
    s->rwait.cancel = coro__stream_rwait_cancel;
    s->rwait.flags = CORO_WAITABLE_KEEP_RESULT;
    s->fd = fd;
    s->limit = limit ? limit : CORO_STREAM_LIMIT;
    s->rcap = 2 * s->limit < CORO_STREAM_RBUF0 ? 2 * s->limit : CORO_STREAM_RBUF0;
    s->rbuf = (unsigned char *)malloc(s->rcap);
    s->high = s->limit;
    s->low = s->limit / 4;
    coro_event_init(&s->drained);
    coro_event_init(&s->closed_ev);
    coro_future_init(&s->closed_fut);
    if (!s->rbuf) return -ENOMEM;
    return 0;
}

/* Releases the buffers once the stream is closed (coro_stream_closed()
 * done: until then an io_uring multishot recv may still write into the
 * stream, so its memory must stay too); the fd is not touched. */
CORO_API void coro_stream_free(coro_stream *s)
{
    free(s->rbuf);
    free(s->wbuf);
    free(s->wold);
    s->rbuf = s->wbuf = s->wold = NULL;
}

CORO_API size_t coro_stream_buffered(const coro_stream *s)
{
    return s->rend - s->rstart;
}

/* asyncio's at_eof(): end of stream seen and nothing left buffered. */
CORO_API int coro_stream_at_eof(const coro_stream *s)
{
    return s->eof && s->rend == s->rstart;
}

/* asyncio's set_exception(): the read waiting for data fails with err at
 * once (its recv is cancelled; bytes it still receives stay buffered), and
 * so does every later read. */
CORO_API void coro__stream_wake(coro_stream *s);

CORO_API void coro_stream_set_error(coro_stream *s, int err)
{
    s->rerr = err;
    if (err < 0 && s->rwaiting)
        coro__stream_wake(s);
    else if (err < 0 && s->rbusy)
        coro__io_cancel(s->loop, &s->rop.w);
}

/* Unsent bytes (asyncio's transport.get_write_buffer_size()). */
CORO_API size_t coro_stream_write_buffered(const coro_stream *s)
{
    return s->wend - s->wstart;
}

CORO_API int coro_stream_is_closing(const coro_stream *s)
{
    return s->closing || s->closed;
}

/* ---- reading */

typedef struct coro_stream_op {
    coro_frame co;
    coro_stream *s;
    unsigned char *out;
    size_t cap, n, got, offset;
    const unsigned char *sep;
    size_t seplen;
    int kind, ncancel;
    coro_event_op ev;
} coro_stream_op;

#define CORO__SR_READ 1
#define CORO__SR_EXACTLY 2
#define CORO__SR_UNTIL 3
#define CORO__SR_LINE 4

/* Makes room at the end of the read buffer (moves what is buffered to
 * the front). */
CORO_API void coro__stream_compact(coro_stream *s)
{
    if (s->rstart == 0) return;
    memmove(s->rbuf, s->rbuf + s->rstart, s->rend - s->rstart);
    s->rend -= s->rstart;
    s->rstart = 0;
}

/* Doubles a full read buffer, up to 2 * limit. 0, CORO_ELIMIT (it is
 * that big already) or -ENOMEM. */
CORO_API int coro__stream_grow(coro_stream *s)
{
    if (s->rcap >= 2 * s->limit) return CORO_ELIMIT;
    size_t cap = 2 * s->rcap < 2 * s->limit ? 2 * s->rcap : 2 * s->limit;
    unsigned char *nb = (unsigned char *)realloc(s->rbuf, cap);
    if (!nb) return -ENOMEM;
    s->rbuf = nb;
    s->rcap = cap;
    return 0;
}

/* Back to the usual 2 * limit once empty, after a give-back grew it. */
CORO_API void coro__stream_shrink(coro_stream *s)
{
    unsigned char *nb = (unsigned char *)realloc(s->rbuf, 2 * s->limit);
    if (!nb) return;
    s->rbuf = nb;
    s->rcap = 2 * s->limit;
}

/* Takes up to n buffered bytes into out. While a recv is in flight it
 * writes at rend: nothing moves then. */
CORO_API size_t coro__stream_take(coro_stream *s, unsigned char *out, size_t n)
{
    size_t have = s->rend - s->rstart;
    if (n > have) n = have;
    if (out && n) memcpy(out, s->rbuf + s->rstart, n);
    s->rstart += n;
    if (s->rstart == s->rend && !s->rbusy) {
        s->rstart = s->rend = 0;
        if (s->rcap > 2 * s->limit) coro__stream_shrink(s);
    }
    return n;
}

/* Puts n bytes back in front of the buffered ones, growing the buffer if
 * it must. 0, or -ENOMEM. (While a recv is in flight the bytes were taken
 * in this same step, so they fit where they came from.) */
CORO_API int coro__stream_unread(coro_stream *s, const unsigned char *p, size_t n)
{
    size_t have = s->rend - s->rstart;
    if (s->rstart >= n) {
        s->rstart -= n;
        if (n) memcpy(s->rbuf + s->rstart, p, n);
        return 0;
    }
    if (s->rbusy) return -ENOMEM; /* cannot happen (see above) */
    if (have + n > s->rcap) {
        unsigned char *nb = (unsigned char *)realloc(s->rbuf, have + n);
        if (!nb) return -ENOMEM;
        s->rbuf = nb;
        s->rcap = have + n;
    }
    memmove(s->rbuf + n, s->rbuf + s->rstart, have);
    memcpy(s->rbuf, p, n);
    s->rstart = 0;
    s->rend = have + n;
    return 0;
}

/* A read that ends without its data (cancelled, or refused because
 * another reader waits) gives back what it had taken into out: readexactly
 * and read(-1) lose nothing. Returns err. */
CORO_API int coro__stream_giveback(coro_stream_op *op, int err)
{
    if (op->kind == CORO__SR_EXACTLY || op->kind == CORO__SR_READ) {
        if (coro__stream_unread(op->s, op->out, op->got) < 0)
            op->s->rerr = CORO_ENOMEM; /* lost: later reads say so */
        op->got = 0;
    }
    return err;
}

/* asyncio's connection_lost for the reader: EOF after a clean close, the
 * error after a lost connection. */
CORO_API void coro__stream_feed_end(coro_stream *s)
{
    if (s->rerr || s->eof) return;
    if (s->werr)
        s->rerr = s->werr;
    else
        s->eof = 1;
}

CORO_API void coro__stream_kick(coro_stream *s);
CORO_API void coro__stream_wake_drainers(coro_stream *s);

/* The connection is lost (a send or a recv failed): the reader fails with
 * the error from now on (asyncio's connection_lost(exc) sets it on the
 * reader), what is queued is dropped (after the send in flight, which the
 * kernel still reads) and the stream closes, as asyncio's transport does
 * on a fatal error. */
CORO_API void coro__stream_lost(coro_stream *s, int err)
{
    if (!s->werr) s->werr = err == -EBADF ? -ECONNRESET : err;
    if (!s->rerr) coro_stream_set_error(s, s->werr);
    if (!s->sending) s->wstart = s->wend = 0;
    if (!s->closing) s->closing = 1;
    coro__stream_wake_drainers(s);
    coro__stream_kick(s);
}

/* ---- the multishot recv (io_uring) */

/* Wakes the read waiting for the multishot, if one waits. */
CORO_API void coro__stream_wake(coro_stream *s)
{
    if (s->rwaiting && !coro_future_done(&s->rwait.fut))
        coro__future_finish(s->loop, &s->rwait.fut, CORO_FUTURE_RESULT, 0);
}

/* A cancelled read stops waiting; what arrives stays buffered. */
CORO_API int coro__stream_rwait_cancel(coro_loop *L, coro_waitable *w)
{
    return coro_future_cancel(L, &w->fut);
}

/* Appends n received bytes, growing the buffer past 2 * limit if it must
 * (results already on their way when reading paused). 0 or -ENOMEM. */
CORO_API int coro__stream_append(coro_stream *s, const unsigned char *p, size_t n)
{
    if (s->rcap - s->rend < n) coro__stream_compact(s);
    if (s->rcap - s->rend < n) {
        size_t cap = s->rcap;
        while (cap - s->rend < n) cap *= 2;
        unsigned char *nb = (unsigned char *)realloc(s->rbuf, cap);
        if (!nb) return -ENOMEM;
        s->rbuf = nb;
        s->rcap = cap;
    }
    memcpy(s->rbuf + s->rend, p, n);
    s->rend += n;
    return 0;
}

CORO_API void coro__stream_arm(coro_stream *s);

/* A result of the multishot recv: bytes (copied, their buffer handed
 * back), the end of the stream (0), or its end: re-armed if a read waits
 * and nothing else happened (-ENOBUFS: the buffers ran out; -ECANCELED:
 * reading paused), else an error, or EOF if the stream is being closed. */
CORO_API void coro__stream_on_recv(coro_io_op *op, int res, int more)
{
    coro_stream *s = CORO__CONTAINER(coro_stream, rop, op);
    coro_io *io = op->io;
    if (!more) {
        s->ms = 0;
        if (s->closing)
            coro__stream_feed_end(s); /* the close cancelled it */
        else if (res < 0 && res != -ECANCELED && res != -ENOBUFS && !s->rerr && !s->eof)
            coro__stream_lost(s, s->rerr = res);
        if (s->rwaiting && !s->rerr && !s->eof)
            coro__stream_arm(s);
        else
            coro__stream_wake(s);
        return;
    }
    if (res > 0 && (op->a.ms.cflags & IORING_CQE_F_BUFFER)) {
        unsigned char *b = coro__rbuf(io, op->a.ms.cflags);
        if (io->vg) CORO__IO_DEFINED(b, (size_t)res);
        if (coro__stream_append(s, b, (size_t)res) < 0 && !s->rerr) s->rerr = CORO_ENOMEM;
        coro__rbuf_put(io, op->a.ms.cflags);
        if (s->ms == 1 && s->rend - s->rstart >= 2 * s->limit) { /* pause_reading */
            s->ms = 2;
            coro__io_cancel(s->loop, &op->w);
        }
    } else if (res == 0) {
        s->eof = 1;
    }
    coro__stream_wake(s);
}

/* Arms the multishot recv (it may end at once: the fd is being closed). */
CORO_API void coro__stream_arm(coro_stream *s)
{
    s->ms = 1;
    coro__multishot(&s->rop, s->loop, CORO__OP_RECV_MULTI, s->fd, coro__stream_on_recv);
}

/* Does this stream read through the multishot? (io_uring with provided
 * buffers; not while a test's fault hook is on, which shapes single recvs) */
CORO_API int coro__stream_multi(coro_stream *s)
{
    coro_io *io = coro_io_of(s->loop);
    return io->kind == CORO_IO_URING && !io->fault && coro__rbufs(io);
}

/* The outcome of a fill's recv: bytes buffered, EOF or an error noted.
 * Returns 0 to go on, or what the read fails with. ncancel: the task's
 * cancelling() count before the recv, to tell its own cancellation from
 * the recv cancelled by coro_stream_set_error. */
CORO_API int coro__stream_filled(coro_stream_op *op, coro_task *t, int rc)
{
    coro_stream *s = op->s;
    if (rc == CORO_ECANCELED && (!s->rerr || (t && coro_task_cancelling(t) != op->ncancel)))
        return coro__stream_giveback(op, CORO_ECANCELED);
    if (rc == -EBADF && s->closing)
        coro__stream_feed_end(s); /* closed under the read by close() */
    else if (rc == CORO_ECANCELED)
        ; /* coro_stream_set_error woke the read: rerr says it */
    else if (rc < 0)
        coro__stream_lost(s, s->rerr = rc); /* set_exception, and the transport closes */
    else if (rc == 0)
        s->eof = 1;
    else
        s->rend += (size_t)rc;
    return s->rerr;
}

/* The outcome of a wait on the multishot: the data, EOF or error is in the
 * stream already; a cancellation is handled as a recv's. */
CORO_API int coro__stream_woken(coro_stream_op *op, coro_task *t, int rc)
{
    if (rc == CORO_ECANCELED) return coro__stream_filled(op, t, rc);
    return op->s->rerr;
}

/* asyncio's _wait_for_data: until the multishot brings something, or one
 * recv into the free space. Inside a reader body only (uses op and c). */
#define CORO__STREAM_FILL(c, op)                                               \
    do {                                                                       \
        if ((op)->s->rbusy) CORO_FAIL(c, coro__stream_giveback(op, CORO_EBUSY)); \
        coro__stream_compact((op)->s);                                         \
        if ((op)->s->rend == (op)->s->rcap && ((c)->rc = coro__stream_grow((op)->s))) \
            CORO_FAIL(c, (c)->rc);                                             \
        (op)->s->rbusy = 1;                                                    \
        (op)->ncancel = (c)->task ? coro_task_cancelling((c)->task) : 0;       \
        if (coro__stream_multi((op)->s)) {                                     \
            if (!(op)->s->ms) coro__stream_arm((op)->s);                      \
            (op)->s->rwaiting = 1;                                             \
            coro_future_init(&(op)->s->rwait.fut);                             \
            if ((op)->s->eof || (op)->s->rerr) /* ended at once */            \
                coro__stream_wake((op)->s);                                    \
            CORO_AWAIT_WAITABLE(c, &(op)->s->rwait);                           \
            (op)->s->rwaiting = (op)->s->rbusy = 0;                            \
            (c)->rc = coro__stream_woken(op, (c)->task, (c)->rc);              \
        } else {                                                               \
            CORO_IO(c, coro_recv(&(op)->s->rop, (op)->s->loop, (op)->s->fd,    \
                                 (op)->s->rbuf + (op)->s->rend,                \
                                 (op)->s->rcap - (op)->s->rend, 0));           \
            (op)->s->rbusy = 0;                                                \
            (c)->rc = coro__stream_filled(op, (c)->task, (c)->rc);             \
        }                                                                      \
        if ((c)->rc < 0) CORO_FAIL(c, (c)->rc);                                \
    } while (0)

/* The offset of sep in the buffer from `from`, or -1. */
CORO_API long coro__stream_find(const coro_stream *s, const unsigned char *sep, size_t seplen,
                                size_t from)
{
    size_t len = s->rend - s->rstart;
    const unsigned char *b = s->rbuf + s->rstart;
    for (size_t i = from; i + seplen <= len; i++)
        if (b[i] == sep[0] && !memcmp(b + i, sep, seplen)) return (long)i;
    return -1;
}

#include <sys/ioctl.h>

/* The bytes that arrived on the socket and were not received yet (0 if it
 * cannot tell). */
CORO_API size_t coro__stream_pending(const coro_stream *s)
{
    int n = 0;
    if (s->fd < 0 || ioctl(s->fd, FIONREAD, &n) < 0 || n < 0) return 0;
    return (size_t)n;
}

CORO_API int coro__stream_read_fn(coro_ctx *c)
{
    coro_stream_op *op = CORO_SELF(c, coro_stream_op);
    coro_stream *s = op->s;
    long isep;
    CORO_BEGIN(c);
    if (s->rerr) CORO_FAIL(c, s->rerr);
    if (op->kind == CORO__SR_READ) {
        if (op->n == 0) CORO_RETURN(c, 0);
        if (op->n == (size_t)-1) { /* read(-1): everything until EOF */
            while (!s->eof) {
                op->got += coro__stream_take(s, op->out + op->got, op->cap - op->got);
                if (op->got == op->cap) CORO_RETURN(c, (int)op->got);
                CORO__STREAM_FILL(c, op);
            }
            op->got += coro__stream_take(s, op->out + op->got, op->cap - op->got);
            CORO_RETURN(c, (int)op->got);
        }
        if (s->rend == s->rstart && !s->eof) CORO__STREAM_FILL(c, op);
        CORO_RETURN(c, (int)coro__stream_take(s, op->out, op->n));
    }
    if (op->kind == CORO__SR_EXACTLY) { /* op->got bytes are in out already */
        while (coro_stream_buffered(s) < op->n - op->got) {
            if (s->eof) { /* IncompleteReadError(partial, expected) */
                op->got += coro__stream_take(s, op->out + op->got, op->n - op->got);
                CORO_FAIL(c, CORO_EINCOMPLETE);
            }
            if (coro_stream_buffered(s) == s->rcap) /* n is more than it holds */
                op->got += coro__stream_take(s, op->out + op->got, s->rcap);
            CORO__STREAM_FILL(c, op);
        }
        op->got += coro__stream_take(s, op->out + op->got, op->n - op->got);
        CORO_RETURN(c, (int)op->got);
    }
    /* readuntil / readline, as asyncio's readuntil */
    op->offset = 0;
    for (;;) {
        if (coro_stream_buffered(s) - op->offset >= op->seplen) {
            isep = coro__stream_find(s, op->sep, op->seplen, op->offset);
            if (isep >= 0) break;
            op->offset = coro_stream_buffered(s) + 1 - op->seplen;
            if (op->offset > s->limit) {
                op->got = op->offset;
                goto limit; /* separator not found, chunk exceeds the limit */
            }
        }
        if (s->eof) { /* IncompleteReadError(whole buffer, None) */
            op->got = coro__stream_take(s, op->out, coro_stream_buffered(s));
            if (op->kind == CORO__SR_LINE) CORO_RETURN(c, (int)op->got);
            CORO_FAIL(c, CORO_EINCOMPLETE);
        }
        CORO__STREAM_FILL(c, op);
    }
    if ((size_t)isep > s->limit) {
        op->got = (size_t)isep;
        goto limit; /* separator found, chunk longer than the limit */
    }
    CORO_RETURN(c, (int)coro__stream_take(s, op->out, (size_t)isep + op->seplen));
limit:
    if (op->kind != CORO__SR_LINE) CORO_FAIL(c, CORO_ELIMIT);
    /* readline drops the over-long line: through its separator if that is
     * here, else all that has arrived, including what the socket still
     * holds (asyncio, whose buffer has no cap, would hold it too). */
    if (op->got + op->seplen <= coro_stream_buffered(s) &&
        !memcmp(s->rbuf + s->rstart + op->got, op->sep, op->seplen)) {
        coro__stream_take(s, NULL, op->got + op->seplen);
        CORO_FAIL(c, CORO_ELIMIT);
    }
    op->n = coro__stream_pending(s); /* op->n: what is left to drop */
    coro__stream_take(s, NULL, coro_stream_buffered(s));
    while (op->n && !s->eof) {
        CORO__STREAM_FILL(c, op);
        op->n -= coro_stream_buffered(s) < op->n ? coro_stream_buffered(s) : op->n;
        isep = coro__stream_find(s, op->sep, op->seplen, 0);
        if (isep >= 0) { /* the rest of the line ends here */
            coro__stream_take(s, NULL, (size_t)isep + op->seplen);
            break;
        }
        coro__stream_take(s, NULL, coro_stream_buffered(s));
    }
    CORO_FAIL(c, CORO_ELIMIT);
    CORO_END(c);
}

CORO_API coro_frame *coro__stream_op(coro_stream_op *op, coro_stream *s, int kind, void *out,
                                     size_t cap, size_t n)
{
    op->s = s;
    op->kind = kind;
    op->out = (unsigned char *)out;
    op->cap = cap;
    op->n = n;
    op->got = 0;
    return coro_frame_init(&op->co, coro__stream_read_fn);
}

/* read(n): up to n bytes as soon as any are there (0 at end of stream);
 * n == (size_t)-1: everything until the end, at most cap bytes. */
CORO_API coro_frame *coro_stream_read(coro_stream_op *op, coro_stream *s, void *out,
                                      size_t cap, size_t n)
{
    return coro__stream_op(op, s, CORO__SR_READ, out, cap, n == (size_t)-1 ? n : (n < cap ? n : cap));
}

/* readexactly(n): n bytes into out (n may exceed the read buffer), or
 * CORO_EINCOMPLETE with op->got bytes (the partial read) in out when the
 * stream ends first. */
CORO_API coro_frame *coro_stream_readexactly(coro_stream_op *op, coro_stream *s, void *out,
                                             size_t n)
{
    return coro__stream_op(op, s, CORO__SR_EXACTLY, out, n, n);
}

/* readuntil(sep): the data up to and including sep (c->rc bytes in out,
 * which must hold limit + seplen). CORO_ELIMIT (nothing consumed) when
 * the limit is exceeded; CORO_EINCOMPLETE with op->got bytes when the
 * stream ends without sep. */
CORO_API coro_frame *coro_stream_readuntil(coro_stream_op *op, coro_stream *s, const void *sep,
                                           size_t seplen, void *out, size_t cap)
{
    coro__stream_op(op, s, CORO__SR_UNTIL, out, cap, 0);
    op->sep = (const unsigned char *)sep;
    op->seplen = seplen;
    if (!seplen || cap < s->limit + seplen) { /* asyncio: ValueError */
        op->kind = CORO__SR_READ;
        op->n = 0;
        op->co.rc = CORO_EINVAL;
        op->co.state = CORO__S_FINISH; /* finishes at once with EINVAL */
    }
    return &op->co;
}

/* readline(): a line with its '\n'; at the end of stream the partial line
 * (or 0 bytes); CORO_ELIMIT if longer than the limit: as asyncio does,
 * the line is dropped through its '\n' if that arrived, else all that
 * arrived is (what the socket holds beyond the buffer too). out must hold
 * limit + 1 bytes. */
CORO_API coro_frame *coro_stream_readline(coro_stream_op *op, coro_stream *s, void *out,
                                          size_t cap)
{
    coro_stream_readuntil(op, s, "\n", 1, out, cap);
    if (op->kind == CORO__SR_UNTIL) op->kind = CORO__SR_LINE;
    return &op->co;
}

/* ---- writing */

/* Wakes drain(): each re-checks (the error, or the buffer below the low
 * mark). */
CORO_API void coro__stream_wake_drainers(coro_stream *s)
{
    coro_event_set(s->loop, &s->drained);
}

CORO_API void coro__stream_closed(coro_loop *L, void *arg)
{
    coro_stream *s = (coro_stream *)arg;
    s->closed = 1;
    s->fd = -1;
    coro__stream_feed_end(s);
    if (!coro_future_done(&s->closed_fut)) coro_future_set_result(L, &s->closed_fut, 0);
    coro_event_set(L, &s->closed_ev);
    if (s->on_closed) s->on_closed(L, s->on_closed_arg); /* may free s: last */
}

CORO_API void coro__stream_sent(coro_loop *L, void *arg)
{
    coro_stream *s = (coro_stream *)arg;
    int rc = s->wop.res;
    (void)L;
    s->sending = 0;
    free(s->wold);
    s->wold = NULL;
    if (rc < 0 || s->werr) { /* lost (maybe while this send was out) */
        coro__stream_lost(s, rc < 0 ? rc : s->werr);
        return;
    }
    s->wstart += (size_t)rc;
    if (s->wstart == s->wend) s->wstart = s->wend = 0;
    if (s->wend - s->wstart <= s->low) coro__stream_wake_drainers(s);
    coro__stream_kick(s);
}

/* Starts the next send, or what comes after the last one (EOF, close). */
CORO_API void coro__stream_kick(coro_stream *s)
{
    if (s->sending || s->closed || s->fd < 0) return;
    coro_io *io = coro_io_of(s->loop);
    if (s->wstart < s->wend && !s->werr) {
        s->sending = 1;
        io->internal++; /* no task awaits it: a cancellation is not its business */
        coro_future_add_done_callback(
            s->loop, &coro_send(&s->wop, s->loop, s->fd, s->wbuf + s->wstart, s->wend - s->wstart, 0)->fut,
            &s->wcb, coro__stream_sent, s);
        io->internal--;
        return;
    }
    if (s->want_eof == 1 && !s->werr) {
        shutdown(s->fd, SHUT_WR);
        s->want_eof = 2;
    }
    if (s->closing == 1) {
        s->closing = 2; /* (a close is never refused for a cancellation) */
        coro_future_add_done_callback(s->loop, &coro_close(&s->cop, s->loop, s->fd)->fut,
                                      &s->ccb, coro__stream_closed, s);
    }
}

/* Makes room for n more bytes. While a send is in flight the kernel reads
 * the buffer: nothing in it moves, and a buffer replaced meanwhile lives
 * until that send completes (wold). */
CORO_API int coro__stream_room(coro_stream *s, size_t n)
{
    size_t live = s->wend - s->wstart;
    if (s->wend + n <= s->wcap) return 0;
    if (!s->sending && s->wstart) { /* reuse the front */
        memmove(s->wbuf, s->wbuf + s->wstart, live);
        s->wstart = 0;
        s->wend = live;
        if (s->wend + n <= s->wcap) return 0;
    }
    size_t cap = s->wcap ? s->wcap : 4096;
    while (cap < live + n) cap *= 2;
    unsigned char *nb = (unsigned char *)malloc(cap);
    if (!nb) return -ENOMEM;
    if (live) memcpy(nb, s->wbuf + s->wstart, live);
    if (s->sending && !s->wold)
        s->wold = s->wbuf; /* the send in flight still reads it */
    else
        free(s->wbuf);
    s->wbuf = nb;
    s->wcap = cap;
    s->wstart = 0;
    s->wend = live;
    return 0;
}

/* write(): queues the bytes, never blocks (the buffer grows). After
 * close() or a lost connection the bytes are dropped and the next drain()
 * fails, as asyncio does. Returns 0 or -ENOMEM. */
CORO_API int coro_stream_write(coro_stream *s, const void *data, size_t n)
{
    if (!n) return 0; /* asyncio: write(b'') does nothing, even then */
    if (s->closing || s->closed || s->werr) {
        s->lost++;
        return 0;
    }
    if (coro__stream_room(s, n) < 0) return -ENOMEM;
    memcpy(s->wbuf + s->wend, data, n);
    s->wend += n;
    coro__stream_kick(s);
    return 0;
}

/* write_eof(): shuts down the sending side once everything is sent. */
CORO_API void coro_stream_write_eof(coro_stream *s)
{
    if (!s->want_eof) s->want_eof = 1;
    coro__stream_kick(s);
}

/* close(): is_closing() at once; what is queued is sent, then the fd is
 * closed and the reader is at EOF (asyncio's connection_lost(None)): a
 * read in progress ends as at the end of the stream (0, the partial line,
 * CORO_EINCOMPLETE). wait_closed() waits for it. */
CORO_API void coro_stream_close(coro_stream *s)
{
    if (s->closing || s->closed) return;
    s->closing = 1;
    coro__stream_kick(s);
}

CORO_API int coro__stream_drain_fn(coro_ctx *c)
{
    coro_stream_op *op = CORO_SELF(c, coro_stream_op);
    coro_stream *s = op->s;
    CORO_BEGIN(c);
    if (s->rerr) CORO_FAIL(c, s->rerr); /* the reader's error first */
    if (s->closing || s->closed) {
        CORO_YIELD(c); /* let the close proceed, as asyncio does */
        CORO_FAIL(c, -ECONNRESET);
    }
    if (s->werr) CORO_FAIL(c, s->werr);
    while (coro_stream_write_buffered(s) > s->high) { /* until below the low mark */
        coro_event_clear(&s->drained);
        CORO_AWAIT(c, coro_event_wait(&op->ev, &s->drained));
        CORO_CHECK(c);
        if (s->werr) CORO_FAIL(c, s->werr); /* the connection was lost */
        if (coro_stream_write_buffered(s) <= s->low) break;
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

/* drain(): waits while more than the high-water mark is queued (until it
 * falls below the low mark); fails if the connection was lost or closed. */
CORO_API coro_frame *coro_stream_drain(coro_stream_op *op, coro_stream *s)
{
    op->s = s;
    return coro_frame_init(&op->co, coro__stream_drain_fn);
}

/* A future done once the fd is closed: for done-callbacks and checks.
 * A task waits with coro_stream_wait_closed: awaiting this future directly
 * would cancel it when the task is cancelled. */
CORO_API coro_future *coro_stream_closed(coro_stream *s)
{
    return &s->closed_fut;
}

CORO_API int coro__stream_wait_closed_fn(coro_ctx *c)
{
    coro_stream_op *op = CORO_SELF(c, coro_stream_op);
    CORO_BEGIN(c);
    if (!op->s->closed) CORO_AWAIT(c, coro_event_wait(&op->ev, &op->s->closed_ev));
    CORO_RETURN(c, c->rc);
    CORO_END(c);
}

/* wait_closed(): until the fd is closed (after coro_stream_close); a
 * cancelled wait changes nothing. */
CORO_API coro_frame *coro_stream_wait_closed(coro_stream_op *op, coro_stream *s)
{
    op->s = s;
    return coro_frame_init(&op->co, coro__stream_wait_closed_fn);
}

/* ---------------------------------------------------------------------- */
/* Servers and clients                                                     */
/* ---------------------------------------------------------------------- */

#include <arpa/inet.h>

/* Parses a numeric IPv4 or IPv6 address (NULL or "": any) and a port. */
CORO_API int coro__sockaddr(struct sockaddr_storage *ss, socklen_t *len, const char *host,
                            int port)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)(void *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)(void *)ss;
    if (port < 0 || port > 65535) return CORO_EINVAL;
    if (!host || !*host) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof *a4;
        return 0;
    }
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *len = sizeof *a4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *len = sizeof *a6;
        return 0;
    }
    return CORO_EINVAL; /* not numeric: host names need a resolver */
}

typedef struct coro_server coro_server;
typedef struct coro_conn coro_conn;

/* Builds the handler of a new connection in `mem` (frame_size bytes,
 * zeroed) and returns its frame; conn->stream is ready. */
typedef coro_frame *coro_conn_fn(coro_conn *conn, void *mem, void *arg);

/* One connection of a server: its task, its stream, and the handler's
 * frame right after it. Allocated by the server, freed once the handler
 * ended and the stream is closed. */
struct coro_conn {
    coro_task task;
    coro_stream stream;
    coro_server *srv;
    coro__link link;
    coro_call done_cb;
    int refs; /* the handler's task and the stream: freed when both ended */
    /* the handler's frame follows (max_align_t aligned) */
};

/* Fds a multishot accept delivered that the acceptor has not served yet:
 * a ring of CORO_ACCEPT_QUEUE, then, for a burst bigger than that in one
 * batch of completions, a FIFO linked through the fd table (which has a
 * slot for every fd anyway). No allocation per connection, no fd dropped,
 * and the multishot stays armed. */
#ifndef CORO_ACCEPT_QUEUE
#define CORO_ACCEPT_QUEUE 32
#endif

typedef struct coro__accq {
    int ring[CORO_ACCEPT_QUEUE];
    unsigned head, n;
    int spill_head, spill_tail; /* the FIFO: coro__fdslot.accq_next links it */
    unsigned nspill;
} coro__accq;

/* Connections the single-shot acceptor takes per step (asyncio takes up to
 * create_server's backlog, 100 by default). One per loop iteration made a
 * burst of 1,000 clients take half a second to accept on a loop busy with
 * the first ones' traffic. */
#ifndef CORO_ACCEPT_BATCH
#define CORO_ACCEPT_BATCH 100
#endif

/* The acceptor task's frame. Single-shot (epoll, or a kernel without
 * multishot accept): one accept op, then the rest of the backlog taken
 * at once (see coro__acceptor_more). Multishot: op is armed once, its CQEs
 * fill q, and the task waits on `next` while q is empty.
 * Counters (tests, tuning): arms = accept ops (single-shot: one per burst;
 * multishot: one per arming), more = fds the single-shot path took after
 * an op, shots = fds delivered by multishot CQEs, spills = those that
 * found the ring full. */
typedef struct coro__acceptor {
    coro_frame co;
    coro_server *srv;
    coro_io_op op;      /* the accept or the multishot; then the listener's close */
    coro_waitable next; /* multishot: settled by a shot or by the end */
    coro__accq q;
    int armed, ended, end; /* end: how the last multishot ended (0 or -errno) */
    int cancelled;         /* the task was cancelled while it waited on next */
    unsigned got;          /* fds the current arming delivered */
    unsigned arms, more, shots, spills;
} coro__acceptor;

/* asyncio's Server: start_server's listener and its connections.
 *
 * ACCEPTING. epoll, or io_uring without multishot accept: an accept op,
 * then up to CORO_ACCEPT_BATCH - 1 more accept4 calls in the same step, as
 * asyncio's loop takes up to `backlog` connections per readiness event
 * (the listener is made non-blocking). io_uring with it: the acceptor arms one
 * multishot accept; each CQE with IORING_CQE_F_MORE brings one fd, queued
 * in the acceptor's ring (then the fd table: see coro__accq), and the
 * acceptor serves the queue whenever it runs. The kernel ends the
 * multishot with a CQE without F_MORE: on an error (per connection, or out
 * of fds: the acceptor waits 10 ms), or when the CQ had no room for a shot
 * (a burst bigger than the CQ; that last CQE carries the fd); the acceptor
 * arms it again. -EINVAL before any fd means the kernel refused the flag:
 * single-shot accepts from then on, on that ring.
 * Closing: the multishot is cancelled; fds its CQEs bring after that are
 * closed, never served, and the acceptor (so wait_closed) ends only after
 * its last CQE. Limits: the fds queued are served in order but after the
 * whole batch of CQEs they came in; one multishot per server. */
struct coro_server {
    coro_loop *loop;
    int lfd, port;
    coro_conn_fn *fn;
    size_t frame_size, limit;
    void *arg;
    coro_task acceptor;
    coro__acceptor acc;
    coro__link conns;
    unsigned nconns;
    int closing, listening, own; /* own: the listener is ours alone */
    coro_future closed;
    coro_event closed_ev; /* wait_closed() waits on it */
    coro_call acb, ccb;   /* the acceptor's end; the listener's close */
};

CORO_API coro_conn *coro__conn_of(coro__link *l)
{
    return CORO__CONTAINER(coro_conn, link, l);
}

/* The connection's stream (its handler reads and writes it; the server
 * closes it when the handler ends). */
CORO_API coro_stream *coro_conn_stream(coro_conn *conn)
{
    return &conn->stream;
}

/* The handler's frame memory of a connection. */
CORO_API void *coro_conn_frame(coro_conn *conn)
{
    return (void *)((char *)conn + ((sizeof *conn + sizeof(max_align_t) - 1) /
                                    sizeof(max_align_t) * sizeof(max_align_t)));
}

CORO_API void coro__server_check_closed(coro_server *srv)
{
    if (!srv->closing || srv->listening || srv->nconns) return;
    if (!coro_future_done(&srv->closed)) coro_future_set_result(srv->loop, &srv->closed, 0);
    coro_event_set(srv->loop, &srv->closed_ev);
}

/* The handler ended, or the stream is closed: when both, the connection
 * goes (its stream may be closed first, by close_clients, while the
 * handler still runs in the connection's memory). */
CORO_API void coro__conn_release(coro_loop *L, void *arg)
{
    coro_conn *conn = (coro_conn *)arg;
    coro_server *srv = conn->srv;
    (void)L;
    if (--conn->refs > 0) return;
    coro__link_del(&conn->link);
    srv->nconns--;
    coro_stream_free(&conn->stream);
    free(conn);
    coro__server_check_closed(srv);
}

/* The handler ended: report a failure (asyncio logs it), close the stream
 * (what it queued is still sent), free the connection once closed. */
CORO_API void coro__conn_done(coro_loop *L, void *arg)
{
    coro_conn *conn = (coro_conn *)arg;
    int rc = coro_task_result(&conn->task);
    if (rc < 0 && rc != CORO_ECANCELED)
        coro__report(L, CORO_REPORT_HANDLER_ERROR, "Unhandled exception in client_connected_cb",
                     &conn->task, rc, 0);
    coro_stream_close(&conn->stream); /* if not yet: what it queued is still sent */
    coro__conn_release(L, conn);
}

/* A new connection: allocate, wrap, start its handler (-ENOMEM: refused). */
CORO_API int coro__server_conn(coro_server *srv, int fd)
{
    size_t head = (sizeof(coro_conn) + sizeof(max_align_t) - 1) / sizeof(max_align_t) *
                  sizeof(max_align_t);
    coro_conn *conn = (coro_conn *)calloc(1, head + srv->frame_size);
    if (!conn || coro_stream_init(&conn->stream, srv->loop, fd, srv->limit) < 0) {
        if (conn) coro_stream_free(&conn->stream);
        free(conn);
        close(fd);
        return -ENOMEM;
    }
    conn->srv = srv;
    conn->refs = 2;
    conn->stream.on_closed = coro__conn_release;
    conn->stream.on_closed_arg = conn;
    coro__link_add(&srv->conns, &conn->link);
    srv->nconns++;
    coro_spawn(srv->loop, &conn->task, srv->fn(conn, coro_conn_frame(conn), srv->arg));
    coro_task_add_done_callback(srv->loop, &conn->task, &conn->done_cb, coro__conn_done, conn);
    return 0;
}

CORO_API void coro__listener_closed(coro_loop *L, void *arg)
{
    coro_server *srv = (coro_server *)arg;
    (void)L;
    srv->listening = 0;
    srv->lfd = -1;
    coro__server_check_closed(srv);
}

/* An accepted fd: served, or closed if the server closed meanwhile (an
 * accept that completed before its cancel: asyncio's close() would have
 * reset it with the listener's backlog). */
CORO_API void coro__server_accepted(coro_server *srv, int fd)
{
    if (!srv->closing) {
        coro__server_conn(srv, fd);
        return;
    }
    close(fd);
    coro_io_forget(srv->loop, fd);
}

/* Queues an accepted fd for the acceptor (see coro__accq); -ENOMEM if the
 * fd table could not grow for a burst bigger than the ring. */
CORO_API int coro__accq_push(coro__acceptor *a, coro_io *io, int fd)
{
    coro__accq *q = &a->q;
    coro__fdslot *s = coro__fdslot_of(io, fd); /* as for any accept: a socket */
    if (s) s->kind = 1;
    if (!q->nspill && q->n < CORO_ACCEPT_QUEUE) {
        q->ring[(q->head + q->n++) % CORO_ACCEPT_QUEUE] = fd;
        return 0;
    }
    if (!s) return -ENOMEM;
    s->accq_next = -1;
    if (q->nspill++)
        io->fds[q->spill_tail].accq_next = fd;
    else
        q->spill_head = fd;
    q->spill_tail = fd;
    a->spills++;
    return 0;
}

/* The oldest queued fd, or -1. */
CORO_API int coro__accq_take(coro__accq *q, coro_io *io)
{
    int fd;
    if (q->n) {
        fd = q->ring[q->head];
        q->head = (q->head + 1) % CORO_ACCEPT_QUEUE;
        q->n--;
        return fd;
    }
    if (!q->nspill) return -1;
    fd = q->spill_head;
    q->nspill--;
    q->spill_head = io->fds[fd].accq_next;
    return fd;
}

/* Wakes the acceptor if it waits on `next`: rc 0 (look at the queue and
 * the multishot's state), or CORO_ECANCELED once a multishot it cancelled
 * has ended. */
CORO_API void coro__acceptor_wake(coro__acceptor *a, int rc)
{
    if (coro_future_done(&a->next.fut)) return; /* woken already, not yet run */
    coro__future_finish(a->srv->loop, &a->next.fut, rc < 0 ? CORO_FUTURE_ERROR : CORO_FUTURE_RESULT,
                        rc);
}

/* A CQE of the multishot accept (see coro__accept_multi). An fd that comes
 * once the server is closing (its CQE was on the way when the cancel was
 * asked) is closed here: nothing would ever serve it. */
CORO_API void coro__acceptor_on(coro_io_op *op, int res, int more)
{
    coro__acceptor *a = CORO__CONTAINER(coro__acceptor, op, op);
    coro_server *srv = a->srv;
    if (!more) {
        a->armed = 0;
        a->ended = 1;
        a->end = res;
        coro__acceptor_wake(a, a->cancelled ? CORO_ECANCELED : 0);
        return;
    }
    a->shots++;
    a->got++;
    if (!srv->closing && coro__accq_push(a, coro_io_of(srv->loop), res) == 0) {
        coro__acceptor_wake(a, 0);
        return;
    }
    close(res); /* out of memory (fd table): refused, as coro__server_conn would */
    coro_io_forget(srv->loop, res);
}

/* The acceptor's wait on `next` is cancelled: the multishot is cancelled,
 * and the wait ends when its last CQE came (accepted fds before it are
 * served, or closed if the server is closing). */
CORO_API int coro__acceptor_cancel(coro_loop *L, coro_waitable *w)
{
    coro__acceptor *a = CORO__CONTAINER(coro__acceptor, next, w);
    a->cancelled = 1;
    if (a->armed) coro__io_cancel(L, &a->op.w); /* not yet submitted: ends at once */
    return coro_future_done(&w->fut) && coro_future_state(&w->fut) == CORO_FUTURE_ERROR;
}

CORO_API void coro__acceptor_arm(coro__acceptor *a)
{
    a->armed = 1;
    a->got = 0;
    a->arms++;
    coro__accept_multi(&a->op, a->srv->loop, a->srv->lfd, coro__acceptor_on);
}

/* The multishot ended with a->end: 0 to arm it again, 1 to wait a little
 * first (out of fds or memory: let connections end), -1 to stop. -EINVAL
 * before any fd: the kernel refused the multishot flag (the probe was
 * wrong): single-shot accepts from now on (they stop on -EINVAL too). */
CORO_API int coro__acceptor_after(coro__acceptor *a)
{
    int e = a->end;
    if (e == -EMFILE || e == -ENFILE || e == -ENOMEM) return 1;
    if (e == -EINVAL && !a->got) {
        coro_io_of(a->srv->loop)->accept_multi = -1;
        return 0;
    }
    return e == -EBADF || e == -EINVAL ? -1 : 0; /* -ECANCELED not ours, 0, per connection */
}

/* After a single-shot accept: the rest of the backlog, straight from the
 * non-blocking listener, up to CORO_ACCEPT_BATCH in all. Stops at EAGAIN,
 * or at an error the next accept op then meets and reports. */
CORO_API void coro__acceptor_more(coro__acceptor *a, coro_io *io)
{
    coro_server *srv = a->srv;
    for (int k = 1; k < CORO_ACCEPT_BATCH && !srv->closing && !a->cancelled; k++) {
        int fd = accept4(srv->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return;
        coro__fdslot *s = coro__fdslot_of(io, fd); /* as coro__io_finish does */
        if (s) s->kind = 1;
        a->more++;
        coro__server_accepted(srv, fd);
    }
}

CORO_API int coro__acceptor_fn(coro_ctx *c)
{
    coro__acceptor *a = CORO_SELF(c, coro__acceptor);
    coro_server *srv = a->srv;
    coro_io *io = coro_io_of(c->loop);
    int fd, next;
    CORO_BEGIN(c);
    while (!srv->closing && !a->cancelled) {
        if ((fd = coro__accq_take(&a->q, io)) >= 0) {
            coro__server_accepted(srv, fd);
        } else if (a->ended) { /* the multishot ended: why? */
            a->ended = 0;
            if ((next = coro__acceptor_after(a)) < 0) break;
            if (next > 0) {
                CORO_SLEEP(c, CORO_MS(10));
                CORO_CHECK(c);
            }
        } else if (a->armed || coro__accept_multi_ok(io)) {
            if (!a->armed) coro__acceptor_arm(a);
            if (!a->armed) { /* refused at once: no busy loop */
                CORO_YIELD(c);
                continue;
            }
            coro_future_init(&a->next.fut);
            CORO_AWAIT_WAITABLE(c, &a->next);
            if (c->rc == CORO_ECANCELED) break;
        } else {
            a->arms++;
            CORO_IO(c, coro_accept(&a->op, c->loop, srv->lfd, NULL, NULL));
            if (c->rc >= 0) {
                coro__server_accepted(srv, c->rc); /* even if we are being cancelled */
                coro__acceptor_more(a, io);
            } else if (c->rc == CORO_ECANCELED || c->rc == -EBADF || c->rc == -EINVAL) {
                break;
            } else if (c->rc == -EMFILE || c->rc == -ENFILE || c->rc == -ENOMEM) {
                CORO_SLEEP(c, CORO_MS(10)); /* out of fds: let connections end */
                CORO_CHECK(c);
            }
        }
    }
    while (a->armed) { /* the multishot must not outlive the task: its last CQE */
        coro__io_cancel(c->loop, &a->op.w);
        if (!a->armed) break;
        coro_future_init(&a->next.fut);
        CORO_AWAIT_WAITABLE(c, &a->next);
    }
    while ((fd = coro__accq_take(&a->q, io)) >= 0) coro__server_accepted(srv, fd);
    CORO_END(c);
}

/* The acceptor ended (or was cancelled before it ever ran): no accept is
 * in flight on the listener any more, so it is closed now. */
CORO_API void coro__acceptor_done(coro_loop *L, void *arg)
{
    coro_server *srv = (coro_server *)arg;
    coro_future_add_done_callback(L, &coro_close(&srv->acc.op, L, srv->lfd)->fut, &srv->ccb,
                                  coro__listener_closed, srv);
}

/* A listening socket on host:port (numeric; NULL: any IPv4), non-blocking,
 * SO_REUSEADDR; with reuseport also SO_REUSEPORT (one per loop on the same
 * port: the kernel spreads the connections). The fd, or a negative errno. */
CORO_API int coro_listen(const char *host, int port, int reuseport)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int one = 1, rc = coro__sockaddr(&ss, &len, host, port);
    if (rc < 0) return rc;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if ((reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0) ||
        bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 4096) < 0) {
        rc = -errno;
        close(fd);
        return rc;
    }
    return fd;
}

/* start_server(sock=lfd): serves connections accepted on a listening
 * socket the caller made (the server owns it from now on: a failed start
 * closes it; it is made non-blocking, as asyncio does). 0, CORO_EINVAL
 * (loop closed) or a negative errno. */
CORO_API int coro_server_start_fd(coro_server *srv, coro_loop *L, int lfd, coro_conn_fn *fn,
                                  size_t frame_size, void *arg, size_t limit)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    memset(srv, 0, sizeof *srv);
    srv->loop = L;
    srv->fn = fn;
    srv->frame_size = frame_size;
    srv->arg = arg;
    srv->limit = limit;
    coro__link_init(&srv->conns);
    coro_future_init(&srv->closed);
    coro_event_init(&srv->closed_ev);
    srv->lfd = lfd;
    int rc = 0;
    if (L->flags & CORO__L_CLOSED)
        rc = CORO_EINVAL; /* coro_spawn would refuse the acceptor */
    else if (getsockname(lfd, (struct sockaddr *)&ss, &len) < 0 ||
             fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) | O_NONBLOCK) < 0)
        rc = -errno;
    if (rc < 0) {
        close(lfd);
        srv->lfd = -1;
        return rc;
    }
    srv->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)(void *)&ss)->sin_port
                                              : ((struct sockaddr_in6 *)(void *)&ss)->sin6_port);
    srv->listening = 1;
    srv->acc.srv = srv;
    coro_future_init(&srv->acc.next.fut);
    srv->acc.next.cancel = coro__acceptor_cancel;
    srv->acc.next.flags = CORO_WAITABLE_KEEP_RESULT;
    coro_spawn(L, &srv->acceptor, coro_frame_init(&srv->acc.co, coro__acceptor_fn));
    coro_task_add_done_callback(L, &srv->acceptor, &srv->acb, coro__acceptor_done, srv);
    return 0;
}

/* asyncio.start_server: listens on host:port (numeric; NULL: any IPv4;
 * port 0: chosen by the kernel, see coro_server_port) and runs fn's
 * handler in a task per connection, each with a stream of the given limit
 * (0: 64 KiB). Returns 0 or a negative errno. */
CORO_API int coro_server_start(coro_server *srv, coro_loop *L, const char *host, int port,
                               coro_conn_fn *fn, size_t frame_size, void *arg, size_t limit)
{
    int lfd = coro_listen(host, port, 0);
    if (lfd < 0) return lfd;
    int rc = coro_server_start_fd(srv, L, lfd, fn, frame_size, arg, limit);
    if (rc == 0) srv->own = 1;
    return rc;
}

CORO_API int coro_server_port(const coro_server *srv)
{
    return srv->port;
}

CORO_API unsigned coro_server_connections(const coro_server *srv)
{
    return srv->nconns;
}

/* asyncio's Server.close(): stops accepting; connections go on until their
 * handlers end. A listener coro_server_start made refuses connections as
 * soon as this returns (it is shut down, then closed once its accept is
 * cancelled: io_uring holds the socket until then). One given to
 * coro_server_start_fd, which other processes may share, is only closed,
 * so it refuses them once the loop ran. */
CORO_API void coro_server_close(coro_server *srv)
{
    if (srv->closing) return;
    srv->closing = 1;
    if (srv->own && !coro_task_done(&srv->acceptor)) /* (else its close may be under way) */
        shutdown(srv->lfd, SHUT_RDWR);
    coro_task_cancel(srv->loop, &srv->acceptor);
    coro__server_check_closed(srv);
}

/* asyncio's close_clients(): closes every connection's stream (their
 * pending reads see the end of stream, their handlers then end). */
CORO_API void coro_server_close_clients(coro_server *srv)
{
    for (coro__link *l = srv->conns.next; l != &srv->conns; l = l->next)
        coro_stream_close(&coro__conn_of(l)->stream);
}

/* A future done once the server is closed (the listener closed, every
 * connection ended): for done-callbacks and checks. A task waits with
 * coro_server_wait_closed: awaiting this future directly would cancel it,
 * for every waiter, when the task is cancelled. */
CORO_API coro_future *coro_server_closed(coro_server *srv)
{
    return &srv->closed;
}

/* wait_closed(): until the server is closed, after coro_server_close
 * (c->rc 0). Each call waits on its own: a cancelled wait changes
 * nothing. */
CORO_API coro_frame *coro_server_wait_closed(coro_event_op *op, coro_server *srv)
{
    return coro_event_wait(op, &srv->closed_ev);
}

/* asyncio.open_connection: connects to host:port and wraps the socket in
 * a stream. host is a numeric IPv4/IPv6 address, or a name resolved with
 * getaddrinfo on the loop's thread pool (its addresses are tried in turn).
 * On failure or cancellation no socket is left open. Cancelled while the
 * lookup waits for a pool thread, it ends at once and the lookup never
 * runs; while getaddrinfo runs, it ends when getaddrinfo returns (it cannot
 * be interrupted; what it found is freed). */
#include <netdb.h>
#include <stdio.h>

#define CORO_ENAME (-3005) /* a host name could not be resolved */

typedef struct coro_connect_op {
    coro_frame co;
    coro_stream *s;
    const char *host;
    int port, fd, err;
    size_t limit;
    coro_io_op op;
    coro_work work;            /* getaddrinfo, on the pool */
    struct addrinfo *res, *ai; /* what it found; the next one to try */
    struct sockaddr_storage addr;
    socklen_t alen;
} coro_connect_op;

/* Runs on a worker thread: o->res, or an error. */
CORO_API int coro__resolve(void *arg)
{
    coro_connect_op *o = (coro_connect_op *)arg;
    struct addrinfo hints;
    char port[8];
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV;
    snprintf(port, sizeof port, "%d", o->port);
    int rc = getaddrinfo(o->host, port, &hints, &o->res);
    if (rc == 0) return 0;
    o->res = NULL;
    return rc == EAI_SYSTEM ? -errno : rc == EAI_MEMORY ? CORO_ENOMEM : CORO_ENAME;
}

/* The next address to try into o->addr; 0 when there is none left. */
CORO_API int coro__next_addr(coro_connect_op *o)
{
    if (!o->ai) return 0;
    memcpy(&o->addr, o->ai->ai_addr, o->ai->ai_addrlen);
    o->alen = o->ai->ai_addrlen;
    o->ai = o->ai->ai_next;
    return 1;
}

CORO_API int coro__connect_fn(coro_ctx *c)
{
    coro_connect_op *o = CORO_SELF(c, coro_connect_op);
    CORO_BEGIN(c);
    o->fd = -1;
    o->res = o->ai = NULL;
    if (o->port < 0 || o->port > 65535 || !o->host) CORO_FAIL(c, CORO_EINVAL);
    if (coro__sockaddr(&o->addr, &o->alen, o->host, o->port) < 0) { /* a name */
        CORO_IO(c, coro_to_thread(&o->work, c->loop, coro__resolve, o));
        CORO_CHECK(c);
        o->ai = o->res;
        if (!coro__next_addr(o)) CORO_FAIL(c, CORO_ENAME);
    }
    for (;;) { /* each address in turn, until one connects */
        CORO_IO(c, coro_socket(&o->op, c->loop, o->addr.ss_family, SOCK_STREAM, 0));
        CORO_CHECK(c);
        o->fd = c->rc;
        CORO_IO(c, coro_connect(&o->op, c->loop, o->fd, (struct sockaddr *)&o->addr, o->alen));
        if (c->rc >= 0) break;
        o->err = c->rc;
        close(o->fd);
        coro_io_forget(c->loop, o->fd);
        o->fd = -1;
        if (o->err == CORO_ECANCELED || !coro__next_addr(o)) CORO_FAIL(c, o->err);
    }
    c->rc = coro_stream_init(o->s, c->loop, o->fd, o->limit);
    if (c->rc < 0) {
        coro_stream_free(o->s);
        CORO_FAIL(c, c->rc);
    }
    o->fd = -1; /* the stream owns it */
    CORO_FINALLY(c);
    if (o->fd >= 0) { /* failed or cancelled after socket(): no fd leaks */
        close(o->fd);
        coro_io_forget(c->loop, o->fd);
        o->fd = -1;
    }
    if (o->res) freeaddrinfo(o->res);
    o->res = NULL;
    CORO_END(c);
}

/* Connects to host:port: await the frame; c->rc 0 and s is ready, or a
 * negative errno, CORO_ENAME (no such host) or CORO_EINVAL. */
CORO_API coro_frame *coro_open_connection(coro_connect_op *o, coro_stream *s, const char *host,
                                          int port, size_t limit)
{
    o->s = s;
    o->host = host;
    o->port = port;
    o->limit = limit;
    return coro_frame_init(&o->co, coro__connect_fn);
}

/* ---------------------------------------------------------------------- */
/* Subprocesses                                                            */
/* ---------------------------------------------------------------------- */

/* asyncio's create_subprocess_exec / _shell. The child's standard streams
 * are each inherited, /dev/null, or a PIPE: a coro_stream on our side (a
 * Unix socket pair, so that a closed pipe is an error code, never a
 * SIGPIPE); stderr may also go to stdout. The child's exit is observed
 * through a pidfd (Linux >= 5.3): no SIGCHLD handler, no race with other
 * children (where pidfd_open is refused, waitpid is polled instead).
 * Closing a process that still runs kills it (as asyncio's transport
 * does) so that nothing is left behind. */
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>

extern char **environ;

#define CORO_INHERIT 0
#define CORO_PIPE 1
#define CORO_DEVNULL 2
#define CORO_STDOUT 3 /* stderr only: where stdout goes */

typedef struct coro_process_opts {
    int in, out, err;       /* CORO_INHERIT (0), CORO_PIPE, CORO_DEVNULL, CORO_STDOUT */
    char *const *envp;      /* NULL: this process's environment */
    const char *cwd;        /* NULL: this process's */
    size_t limit;           /* the pipes' stream limit (0: 64 KiB) */
} coro_process_opts;

typedef struct coro_process {
    coro_loop *loop;
    pid_t pid;
    int pidfd, returncode, exited;
    coro_stream *in, *out, *err; /* the PIPEs (NULL otherwise) */
    coro_stream pipes[3];
    coro_event exit;
    coro_io_op watch;
    coro_call watch_cb;
    coro_call poll;   /* no pidfd (see coro_process_exec): waitpid polls */
    coro_time poll_delay;
} coro_process;

CORO_API void coro__process_exited(coro_loop *L, void *arg);

/* Polls the pidfd (readable once the child has exited); no task awaits it. */
CORO_API void coro__process_watch(coro_process *p)
{
    coro_io *io = coro_io_of(p->loop);
    io->internal++;
    coro_future_add_done_callback(p->loop, &coro_poll(&p->watch, p->loop, p->pidfd, POLLIN)->fut,
                                  &p->watch_cb, coro__process_exited, p);
    io->internal--;
}

/* waitpid(WNOHANG): 1 once the child is gone (*rc: its returncode; 255
 * if it was reaped elsewhere, e.g. SIGCHLD ignored, as asyncio reports an
 * unknown child), 0 while it runs. */
CORO_API int coro__process_reap(coro_process *p, int *rc)
{
    int status;
    pid_t r = waitpid(p->pid, &status, WNOHANG);
    if (r == p->pid) {
        *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
        return 1;
    }
    if (r < 0 && errno == ECHILD) {
        *rc = 255;
        return 1;
    }
    return 0;
}

/* The child was reaped: notes its returncode, wakes the waiters. */
CORO_API void coro__process_reaped(coro_loop *L, coro_process *p, int rc)
{
    p->returncode = rc;
    p->exited = 1;
    if (p->pidfd >= 0) {
        close(p->pidfd);
        coro_io_forget(L, p->pidfd);
        p->pidfd = -1;
    }
    coro_event_set(L, &p->exit);
}

/* The pidfd became readable: the child is gone; reap it. */
CORO_API void coro__process_exited(coro_loop *L, void *arg)
{
    coro_process *p = (coro_process *)arg;
    int rc;
    if (p->watch.res < 0 && p->watch.res != -EINTR) return; /* pidfd closed: see close */
    if (!coro__process_reap(p, &rc)) { /* not yet: watch again */
        coro__process_watch(p);
        return;
    }
    coro__process_reaped(L, p, rc);
}

/* Without a pidfd (pidfd_open refused: a kernel before 5.3, a seccomp
 * filter, valgrind): polls waitpid(WNOHANG), every 1 ms at first, backing
 * off to every 50 ms. The child stays unreaped until then, so its pid
 * cannot be reused (kill(2) on it is safe). */
CORO_API void coro__process_poll(coro_loop *L, void *arg)
{
    coro_process *p = (coro_process *)arg;
    int rc;
    if (coro__process_reap(p, &rc)) {
        coro__process_reaped(L, p, rc);
        return;
    }
    p->poll_delay = p->poll_delay ? 2 * p->poll_delay : CORO_MS(1);
    if (p->poll_delay > CORO_MS(50)) p->poll_delay = CORO_MS(50);
    coro_call_later(L, &p->poll, p->poll_delay, coro__process_poll, p);
}

/* One of the child's standard streams: sets *child to the fd it gets (or
 * -1: inherit) and opens our end of a PIPE. 0 or a negative errno. */
CORO_API int coro__process_stdio(coro_process *p, int k, int how, int *child, size_t limit)
{
    int sv[2];
    *child = -1;
    if (how == CORO_DEVNULL) {
        *child = open("/dev/null", O_RDWR | O_CLOEXEC);
        return *child < 0 ? -errno : 0;
    }
    if (how != CORO_PIPE) return 0;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) return -errno;
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    shutdown(sv[0], k == 0 ? SHUT_RD : SHUT_WR); /* one way, like a pipe */
    *child = sv[1];
    int rc = coro_stream_init(&p->pipes[k], p->loop, sv[0], limit);
    if (rc < 0) {
        coro_stream_free(&p->pipes[k]);
        close(sv[0]);
        return rc;
    }
    if (k == 0) p->in = &p->pipes[0];
    else if (k == 1) p->out = &p->pipes[1];
    else p->err = &p->pipes[2];
    return 0;
}

/* Undoes a failed start: our ends, the child's ends. */
CORO_API void coro__process_unwind(coro_process *p, int child[3])
{
    for (int k = 0; k < 3; k++) {
        if (child[k] >= 0 && (k < 2 || child[k] != child[1])) close(child[k]);
        coro_stream *s = k == 0 ? p->in : k == 1 ? p->out : p->err;
        if (s) {
            close(s->fd);
            coro_stream_free(s);
        }
    }
    p->in = p->out = p->err = NULL;
}

/* create_subprocess_exec: runs argv[0] (searched in PATH) with argv.
 * Returns 0 (p is running; await coro_process_wait, and end with
 * coro_process_close) or a negative errno (-ENOENT: no such program;
 * CORO_EINVAL: no argv[0], or a stdio mode that is not one of the four,
 * or CORO_STDOUT anywhere but stderr). */
CORO_API int coro_process_exec(coro_process *p, coro_loop *L, char *const argv[],
                               const coro_process_opts *o)
{
    static const coro_process_opts none = {CORO_INHERIT, CORO_INHERIT, CORO_INHERIT, NULL, NULL, 0};
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t set;
    int child[3] = {-1, -1, -1}, rc = 0;
    if (!o) o = &none;
    memset(p, 0, sizeof *p);
    p->loop = L;
    p->pidfd = -1;
    coro_event_init(&p->exit);
    if (!argv || !argv[0] || o->in == CORO_STDOUT || o->out == CORO_STDOUT ||
        (unsigned)o->in > CORO_DEVNULL || (unsigned)o->out > CORO_DEVNULL ||
        (unsigned)o->err > CORO_STDOUT)
        return CORO_EINVAL;
    rc = coro__process_stdio(p, 0, o->in, &child[0], o->limit);
    if (rc == 0) rc = coro__process_stdio(p, 1, o->out, &child[1], o->limit);
    if (rc == 0 && o->err != CORO_STDOUT) rc = coro__process_stdio(p, 2, o->err, &child[2], o->limit);
    if (rc < 0) {
        coro__process_unwind(p, child);
        return rc;
    }
    posix_spawn_file_actions_init(&fa);
    for (int k = 0; k < 3; k++)
        if (child[k] >= 0) posix_spawn_file_actions_adddup2(&fa, child[k], k);
    if (o->err == CORO_STDOUT) posix_spawn_file_actions_adddup2(&fa, 1, 2);
    if (o->cwd) posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
    posix_spawnattr_init(&at);
    sigemptyset(&set); /* the child starts with no signal blocked ... */
    posix_spawnattr_setsigmask(&at, &set);
    sigaddset(&set, SIGPIPE); /* ... and SIGPIPE, SIGXFSZ as exec gives them */
    sigaddset(&set, SIGXFSZ);
    posix_spawnattr_setsigdefault(&at, &set);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    rc = -posix_spawnp(&p->pid, argv[0], &fa, &at, argv, o->envp ? o->envp : environ);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    for (int k = 0; k < 3; k++)
        if (child[k] >= 0) close(child[k]);
    child[0] = child[1] = child[2] = -1;
    if (rc == 0) {
        p->pidfd = (int)syscall(SYS_pidfd_open, p->pid, 0);
        /* none here: poll; ESRCH: already reaped elsewhere (SIGCHLD
         * ignored): the poll finds it gone at once */
        if (p->pidfd < 0 && (errno == ENOSYS || errno == EPERM || errno == ESRCH)) {
            coro__process_poll(L, p);
            return 0;
        }
        if (p->pidfd < 0) { /* no pidfd: cannot watch it; do not leave it behind */
            rc = -errno;
            kill(p->pid, SIGKILL);
            waitpid(p->pid, NULL, 0);
            p->pid = 0; /* reaped: the pid is not ours any more */
        }
    }
    if (rc < 0) {
        coro__process_unwind(p, child);
        return rc;
    }
    coro__process_watch(p);
    return 0;
}

/* create_subprocess_shell: /bin/sh -c cmd. */
CORO_API int coro_process_shell(coro_process *p, coro_loop *L, const char *cmd,
                                const coro_process_opts *o)
{
    char *argv[] = {(char *)"/bin/sh", (char *)"-c", (char *)(uintptr_t)cmd, NULL};
    if (!cmd) return CORO_EINVAL;
    return coro_process_exec(p, L, argv, o);
}

CORO_API pid_t coro_process_pid(const coro_process *p)
{
    return p->pid;
}

/* asyncio's returncode: the exit status, or -signal if a signal killed it;
 * only meaningful once coro_process_exited(). */
CORO_API int coro_process_returncode(const coro_process *p)
{
    return p->returncode;
}

CORO_API int coro_process_exited(const coro_process *p)
{
    return p->exited;
}

/* send_signal / terminate / kill: 0, or -ESRCH once it has exited. */
CORO_API int coro_process_send_signal(coro_process *p, int sig)
{
    if (p->exited || p->pid <= 0) return -ESRCH;
    if (p->pidfd < 0) return kill(p->pid, sig) < 0 ? -errno : 0; /* polled: see above */
    return syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0) < 0 ? -errno : 0;
}

CORO_API int coro_process_terminate(coro_process *p)
{
    return coro_process_send_signal(p, SIGTERM);
}

CORO_API int coro_process_kill(coro_process *p)
{
    return coro_process_send_signal(p, SIGKILL);
}

/* wait(): until it exits. c->rc = the exit status (0..255), or 128 + the
 * signal that killed it (the shell's convention: rc stays >= 0; see
 * coro_process_returncode for asyncio's -signal). Any number of tasks may
 * wait; cancelling a wait does not touch the process. */
typedef struct coro_process_op {
    coro_frame co;
    coro_process *p;
    coro_event_op ev;
} coro_process_op;

CORO_API int coro__process_status(const coro_process *p)
{
    return p->returncode >= 0 ? p->returncode : 128 - p->returncode;
}

CORO_API int coro__process_wait_fn(coro_ctx *c)
{
    coro_process_op *op = CORO_SELF(c, coro_process_op);
    CORO_BEGIN(c);
    if (!op->p->exited) {
        CORO_AWAIT(c, coro_event_wait(&op->ev, &op->p->exit));
        CORO_CHECK(c);
    }
    CORO_RETURN(c, coro__process_status(op->p));
    CORO_END(c);
}

CORO_API coro_frame *coro_process_wait(coro_process_op *op, coro_process *p)
{
    op->p = p;
    return coro_frame_init(&op->co, coro__process_wait_fn);
}

/* communicate(input): feeds input to stdin and closes it (a broken pipe is
 * ignored, as asyncio does), reads stdout and stderr (those that are
 * PIPEs) to their end concurrently into out / err (grown with realloc;
 * free(out->data) afterwards), then waits for the exit: c->rc as wait().
 * A PIPE whose out / err is NULL is read too and its bytes dropped: left
 * unread, a child writing more than the pipe holds would never exit. */
typedef struct coro_bytes {
    unsigned char *data;
    size_t len, cap;
} coro_bytes;

typedef struct coro__pipe_reader {
    coro_frame co;
    coro_stream *s;
    coro_bytes *b;
    coro_stream_op op;
} coro__pipe_reader;

CORO_API int coro__pipe_read_fn(coro_ctx *c)
{
    coro__pipe_reader *r = CORO_SELF(c, coro__pipe_reader);
    CORO_BEGIN(c);
    while (!r->b) { /* nobody wants the bytes: drop them */
        CORO_AWAIT(c, coro_stream_read(&r->op, r->s, NULL, r->s->limit, r->s->limit));
        if (c->rc <= 0) CORO_RETURN(c, c->rc);
    }
    for (;;) {
        if (r->b->cap - r->b->len < 4096) {
            size_t cap = r->b->cap ? 2 * r->b->cap : 16384;
            unsigned char *d = (unsigned char *)realloc(r->b->data, cap);
            if (!d) CORO_FAIL(c, CORO_ENOMEM);
            r->b->data = d;
            r->b->cap = cap;
        }
        CORO_AWAIT(c, coro_stream_read(&r->op, r->s, r->b->data + r->b->len,
                                       r->b->cap - r->b->len, r->b->cap - r->b->len));
        if (c->rc <= 0) break;
        r->b->len += (size_t)c->rc;
    }
    CORO_RETURN(c, c->rc);
    CORO_END(c);
}

typedef struct coro_communicate_op {
    coro_frame co;
    coro_process *p;
    const void *input;
    size_t len;
    coro_bytes *out, *err;
    coro_task readers[2];
    coro__pipe_reader r[2];
    coro_stream_op op;
    coro_process_op wait;
    int i, rc;
} coro_communicate_op;

CORO_API int coro__communicate_fn(coro_ctx *c)
{
    coro_communicate_op *o = CORO_SELF(c, coro_communicate_op);
    coro_process *p = o->p;
    CORO_BEGIN(c);
    o->rc = 0;
    for (o->i = 0; o->i < 2; o->i++) {
        coro_stream *s = o->i ? p->err : p->out;
        coro_bytes *b = o->i ? o->err : o->out;
        o->r[o->i].s = s;
        o->r[o->i].b = b;
        if (s) coro_spawn(c->loop, &o->readers[o->i], coro_frame_init(&o->r[o->i].co, coro__pipe_read_fn));
    }
    if (p->in) {
        if (o->len) {
            coro_stream_write(p->in, o->input, o->len);
            CORO_AWAIT(c, coro_stream_drain(&o->op, p->in));
            if (c->rc == CORO_ECANCELED) o->rc = c->rc; /* BrokenPipe / reset: ignored */
        }
        coro_stream_close(p->in);
    }
    for (o->i = 0; o->i < 2; o->i++) { /* the readers end at EOF, or are cancelled */
        if (!o->r[o->i].s) continue;
        if (o->rc == CORO_ECANCELED) coro_task_cancel(c->loop, &o->readers[o->i]);
        CORO_AWAIT_TASK(c, &o->readers[o->i]);
        if (c->rc == CORO_ECANCELED && !coro_task_cancelled(&o->readers[o->i])) o->rc = c->rc;
        if (c->rc < 0 && o->rc == 0) o->rc = c->rc;
        if (o->rc == CORO_ECANCELED) {
            coro_task_cancel(c->loop, &o->readers[0]);
            coro_task_cancel(c->loop, &o->readers[1]);
        }
    }
    if (o->rc < 0) CORO_FAIL(c, o->rc);
    CORO_AWAIT(c, coro_process_wait(&o->wait, p));
    CORO_RETURN(c, c->rc);
    CORO_END(c);
}

CORO_API coro_frame *coro_process_communicate(coro_communicate_op *o, coro_process *p,
                                              const void *input, size_t len, coro_bytes *out,
                                              coro_bytes *err)
{
    memset(o, 0, sizeof *o);
    o->p = p;
    o->input = input;
    o->len = len;
    o->out = out;
    o->err = err;
    return coro_frame_init(&o->co, coro__communicate_fn);
}

/* Ends a process's life on our side: kills it if it still runs, waits
 * for it, closes its pipes and frees them. Await it before p goes away;
 * it finishes even if cancelled (then c->rc is CORO_ECANCELED). */
typedef struct coro_process_close_op {
    coro_frame co;
    coro_process *p;
    coro_event_op ev;
    coro_stream_op sop;
    int k, cancelled;
} coro_process_close_op;

CORO_API int coro__process_close_fn(coro_ctx *c)
{
    coro_process_close_op *o = CORO_SELF(c, coro_process_close_op);
    coro_process *p = o->p;
    CORO_BEGIN(c);
    o->cancelled = 0;
    if (!p->exited) coro_process_kill(p);
    while (!p->exited) {
        CORO_AWAIT(c, coro_event_wait(&o->ev, &p->exit));
        if (c->rc == CORO_ECANCELED) o->cancelled = 1;
    }
    for (o->k = 0; o->k < 3; o->k++) {
        if (!(o->k == 0 ? p->in : o->k == 1 ? p->out : p->err)) continue;
        coro_stream_close(&p->pipes[o->k]);
        while (!p->pipes[o->k].closed) {
            CORO_AWAIT(c, coro_stream_wait_closed(&o->sop, &p->pipes[o->k]));
            if (c->rc == CORO_ECANCELED) o->cancelled = 1;
        }
        coro_stream_free(&p->pipes[o->k]);
    }
    p->in = p->out = p->err = NULL;
    CORO_RETURN(c, o->cancelled ? CORO_ECANCELED : 0);
    CORO_END(c);
}

CORO_API coro_frame *coro_process_close(coro_process_close_op *o, coro_process *p)
{
    o->p = p;
    return coro_frame_init(&o->co, coro__process_close_fn);
}

#endif /* CORO_IO_H */
