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
 *   Streams, servers, clients: see the second half of this file.
 *
 * CANCELLATION (io_uring): a cancelled operation ends only when the kernel's
 * completion for that operation arrives; its record (and buffer) must stay
 * alive until the await returns. If it completed before the cancel took
 * effect, its result is delivered (no byte received, no accepted fd is
 * lost) and the cancellation reaches the task at its next await. Closing an
 * fd cancels what waits on it; those waiters get -EBADF.
 *
 * LIMITS: one coro_io per loop and per thread; nothing here is thread-safe
 * except coro_signal_raise (coro_loop.h), which wakes the backend.
 */
#ifndef CORO_IO_H
#define CORO_IO_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
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

typedef struct coro_io coro_io;
typedef struct coro_io_op coro_io_op;

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
    } a;
};

/* Operation codes. */
enum {
    CORO__OP_NOP = 1, CORO__OP_READ, CORO__OP_WRITE, CORO__OP_READV, CORO__OP_WRITEV,
    CORO__OP_FSYNC, CORO__OP_OPENAT, CORO__OP_CLOSE, CORO__OP_STATX, CORO__OP_SOCKET,
    CORO__OP_CONNECT, CORO__OP_ACCEPT, CORO__OP_RECV, CORO__OP_SEND, CORO__OP_SHUTDOWN,
    CORO__OP_POLL
};

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
    coro__link readers, writers;
    uint32_t inflight;
    uint32_t events; /* epoll: registered (edge-triggered, once per fd) */
    uint8_t ready;   /* epoll: 1 readable, 2 writable, as far as we know */
    uint8_t kind;    /* 0 unknown, 1 pollable, 2 regular file (no epoll) */
    uint8_t closing;
    coro_io_op *close_op; /* deferred until the in-flight ops are back */
} coro__fdslot;

/* Counters, for tests and tuning. */
typedef struct coro_io_stats {
    uint64_t submitted, completed, enters, sq_full, pending, cancels,
        overflow_flushes, busy_retries, wakes;
} coro_io_stats;

/* Fault injection (tests): called before an operation is submitted.
 * Return 0 to go on, n > 0 to shrink its length to n (short I/O),
 * CORO_IO_FAULT_SQ_FULL to behave as if the SQ were full, or another
 * negative errno to fail it with that error without submitting it. */
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
    int64_t wait_cap; /* longest wait in the kernel, or -1 (see coro_io_init) */
    uint32_t inflight, max_inflight;
    int wake_armed;
    uint64_t wake_buf;
    /* epoll */
    int epfd, nwait; /* nwait: operations waiting for readiness */
    int no_pwait2;    /* epoll_pwait2 refused (old kernel, valgrind) */
    struct epoll_event events[64];
    /* both */
    coro__link pending; /* ops to submit (uring) or completed (epoll) */
    coro__fdslot *fds;
    int nfds;
    int wakefd;
    coro_io_fault *fault;
    coro_io_enter_fault *enter_fault;
    void *fault_arg;
    coro_io_stats stats;
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
            coro__fdslot *s = &t[i];
            if (s->readers.next == &io->fds[i].readers) coro__link_init(&s->readers);
            else s->readers.next->prev = s->readers.prev->next = &s->readers;
            if (s->writers.next == &io->fds[i].writers) coro__link_init(&s->writers);
            else s->writers.next->prev = s->writers.prev->next = &s->writers;
        }
        for (int i = io->nfds; i < n; i++) {
            memset(&t[i], 0, sizeof t[i]);
            coro__link_init(&t[i].readers);
            coro__link_init(&t[i].writers);
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
    coro__fdslot *s = coro__op_has_fd(op) ? coro__fdslot_of(io, op->fd) : NULL;
    if (op->state == CORO__IO_CANCEL_QUEUED) coro__link_del(&op->link); /* drop it */
    if (s && op->code != CORO__OP_CLOSE) {
        if (s->inflight) s->inflight--;
        if (s->closing && res == -ECANCELED) res = -EBADF; /* closed under it */
    } else if (s) {
        coro__fdslot_reset(io, s);
    }
    if (io->kind == CORO_IO_URING) coro__io_defined(op, res);
    if (res >= 0 && (op->code == CORO__OP_ACCEPT || op->code == CORO__OP_SOCKET)) {
        coro__fdslot *ns = coro__fdslot_of(io, res); /* a socket, non-blocking */
        if (ns) ns->kind = 1;
    }
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
}

/* ---------------------------------------------------------------------- */
/* io_uring                                                                */
/* ---------------------------------------------------------------------- */

/* user_data: the op's address; low bits tag what is not an op's own CQE. */
#define CORO__UD_CANCEL 1u
#define CORO__UD_WAKE 2u

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
CORO_API int coro__uring_try(coro_io *io, coro_io_op *op)
{
    if (io->inflight >= io->max_inflight) return -1;
    if (io->fault && op->state != CORO__IO_CANCEL_QUEUED && op->state != CORO__IO_CANCEL_FD) {
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
        io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op, 0);
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
        io_uring_sqe_set_data(sqe, op);
        op->state = CORO__IO_INFLIGHT;
        io->stats.submitted++;
    }
    io->inflight++;
    return 0;
}

/* Submits what waited for room, in order; stops at the first that cannot. */
CORO_API void coro__uring_flush(coro_io *io)
{
    while (io->pending.next != &io->pending) {
        coro_io_op *op = CORO__CONTAINER(coro_io_op, link, io->pending.next);
        coro__link_del(&op->link);
        uint8_t st = op->state;
        if (coro__uring_try(io, op) < 0) { /* back at the head */
            op->state = st;
            op->link.next = io->pending.next;
            op->link.prev = &io->pending;
            io->pending.next->prev = &op->link;
            io->pending.next = &op->link;
            return;
        }
    }
}

CORO_API void coro__uring_queue(coro_io *io, coro_io_op *op)
{
    if (io->pending.next == &io->pending && coro__uring_try(io, op) == 0) return;
    if (op->state != CORO__IO_CANCEL_QUEUED && op->state != CORO__IO_CANCEL_FD)
        op->state = CORO__IO_PENDING;
    io->stats.pending++;
    coro__link_add(&io->pending, &op->link);
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

/* Reaps every CQE that is there. */
CORO_API void coro__uring_reap(coro_io *io)
{
    unsigned head, n = 0;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(&io->ring, head, cqe)
    {
        uint64_t ud = cqe->user_data;
        n++;
        io->inflight--;
        if (ud & CORO__UD_WAKE) {
            CORO__IO_DEFINED(&io->wake_buf, sizeof io->wake_buf);
            io->wake_armed = 0;
            io->stats.wakes++;
        } else if (!(ud & CORO__UD_CANCEL) && ud) {
            coro__io_finish(io, (coro_io_op *)(uintptr_t)ud, cqe->res);
        }
    }
    io_uring_cq_advance(&io->ring, n);
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
    if (io->wait_cap >= 0 && (timeout < 0 || timeout > io->wait_cap)) timeout = io->wait_cap;
    io->stats.enters++;
    if (io->enter_fault && (rc = io->enter_fault(io->fault_arg)) < 0) {
        io->stats.busy_retries++;
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

/* Which readiness an operation waits for: 1 read, 2 write, 0 none. */
CORO_API int coro__epoll_dir(const coro_io_op *op)
{
    switch (op->code) {
    case CORO__OP_READ: case CORO__OP_READV: case CORO__OP_ACCEPT: case CORO__OP_RECV:
        return 1;
    case CORO__OP_WRITE: case CORO__OP_WRITEV: case CORO__OP_CONNECT: case CORO__OP_SEND:
        return 2;
    case CORO__OP_POLL: return (op->a.poll.events & POLLOUT) && !(op->a.poll.events & POLLIN) ? 2 : 1;
    default: return 0;
    }
}

/* Registers fd once, edge-triggered for both directions; from then on the
 * events only update s->ready, so a connection costs one epoll_ctl. */
CORO_API void coro__epoll_register(coro_io *io, int fd, coro__fdslot *s)
{
    if (s->events) return;
    struct epoll_event ev;
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = (uint64_t)fd;
    if (epoll_ctl(io->epfd, EPOLL_CTL_ADD, fd, &ev) < 0 && errno == EEXIST)
        epoll_ctl(io->epfd, EPOLL_CTL_MOD, fd, &ev); /* known from a dup: renew */
    s->events = ev.events;
    s->ready = 3; /* unknown: try the system call first */
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
    return poll(&p, 1, 0) > 0 ? p.revents : 0;
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
    coro__link *q = dir == 1 ? &s->readers : dir == 2 ? &s->writers : NULL;
    op->state = CORO__IO_INFLIGHT;
    if (q) {
        coro__epoll_register(io, op->fd, s);
        if (q->next != q || !(s->ready & dir)) { /* others first / not ready */
            coro__epoll_wait_on(io, q, op);
            return;
        }
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
CORO_API void coro__epoll_ready(coro_io *io, coro__fdslot *s, int dir, uint32_t ev)
{
    coro__link *q = dir == 1 ? &s->readers : &s->writers;
    s->ready |= (uint8_t)dir;
    while (q->next != q) {
        coro_io_op *op = CORO__CONTAINER(coro_io_op, link, q->next);
        int res = op->code == CORO__OP_POLL ? (int)(ev & (op->a.poll.events | POLLERR | POLLHUP))
                                             : coro__epoll_run(op);
        if (res == -EAGAIN) s->ready &= (uint8_t)~dir;
        if (res == -EAGAIN || (op->code == CORO__OP_POLL && !res)) break;
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
        if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) coro__epoll_ready(io, s, 1, ev);
        if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) coro__epoll_ready(io, s, 2, ev);
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

/* Starts an operation: its fields are set; returns its waitable. */
CORO_API coro_waitable *coro__io_start(coro_io_op *op)
{
    coro_io *io = op->io;
    coro_future_init(&op->w.fut);
    op->w.cancel = coro__io_cancel;
    op->w.flags = CORO_WAITABLE_KEEP_RESULT;
    op->res = 0;
    op->flags = 0;
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

/* Awaits an operation: c->rc = its result (bytes, an fd, 0) or -errno. */
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
    coro__link *qs[2] = {&s->readers, &s->writers};
    for (int k = 0; k < 2; k++)
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

CORO_API void coro__io_close(coro_backend *b, coro_loop *L)
{
    coro_io *io = (coro_io *)(void *)b;
    (void)L;
    if (io->kind == CORO_IO_URING)
        io_uring_queue_exit(&io->ring);
    else if (io->epfd >= 0)
        close(io->epfd);
    if (io->wakefd >= 0) close(io->wakefd);
    free(io->fds);
    io->fds = NULL;
    io->nfds = 0;
    io->wakefd = io->epfd = -1;
}

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
    for (unsigned i = 0; i < sizeof tries / sizeof tries[0]; i++) {
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
    io->base.now = coro__io_now;
    io->base.close = coro__io_close;
    io->base.wake = coro__io_wake;
    io->base.quiet = 0;
    int rc = want == CORO_IO_EPOLL ? -EPERM : coro__uring_setup(io, entries);
    if (rc == 0) {
        io->kind = CORO_IO_URING;
        io->base.poll = coro__uring_poll;
        io->max_inflight = cfg && cfg->max_inflight ? cfg->max_inflight : io->cq_entries;
        /* valgrind holds signals while a thread sits in io_uring_enter (it
         * does not know the call blocks): wake up now and then under it. */
        io->wait_cap = CORO__IO_VALGRIND() ? 10000000 : -1;
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
    return rc;
}

/* ---------------------------------------------------------------------- */
/* Streams (asyncio's StreamReader / StreamWriter over one socket)         */
/* ---------------------------------------------------------------------- */

/* A buffered connection. The reader receives only when a read needs more
 * data (one recv per read), into a buffer of 2 * limit bytes; the writer
 * never blocks: writes are buffered (the buffer grows) and sent one send
 * at a time, in order, short sends completed; drain() waits while more
 * than the high-water mark is buffered, until it is below the low mark.
 * Allocates its two buffers (coro_stream_init); coro_stream_free releases
 * them once the stream is closed.
 * Cancel-safety: a cancelled read loses nothing (bytes that arrived stay
 * buffered for the next read); a cancelled drain leaves the data queued. */
typedef struct coro_stream {
    coro_loop *loop;
    int fd;
    /* reader */
    unsigned char *rbuf;
    size_t rcap, rstart, rend, limit;
    int eof, rerr, rbusy;
    coro_io_op rop;
    /* writer */
    unsigned char *wbuf, *wold;
    size_t wcap, wstart, wend, high, low;
    int werr, closing, closed, want_eof, lost, sending;
    coro_io_op wop;
    coro_call wcb;
    coro__link drainers;
    coro_future closed_fut;
    coro_io_op cop;
    coro_call ccb;
} coro_stream;

#define CORO_STREAM_LIMIT 65536 /* asyncio's default limit */

/* Wraps a connected, non-blocking socket. limit 0: 64 KiB. Returns 0,
 * CORO_EINVAL or -ENOMEM. The stream owns fd from now on. */
CORO_API int coro_stream_init(coro_stream *s, coro_loop *L, int fd, size_t limit)
{
    memset(s, 0, sizeof *s);
    s->loop = L;
    s->fd = fd;
    s->limit = limit ? limit : CORO_STREAM_LIMIT;
    s->rcap = 2 * s->limit;
    s->rbuf = (unsigned char *)malloc(s->rcap);
    s->high = s->limit;
    s->low = s->limit / 4;
    coro__link_init(&s->drainers);
    coro_future_init(&s->closed_fut);
    if (!s->rbuf) return -ENOMEM;
    return 0;
}

/* Releases the buffers (after close; the fd is not touched). */
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

/* asyncio's set_exception(): later reads fail with err. */
CORO_API void coro_stream_set_error(coro_stream *s, int err)
{
    s->rerr = err;
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
    int kind;
    coro_waiter w;
} coro_stream_op;

/* Makes room at the end of the read buffer (moves what is buffered to
 * the front). */
CORO_API void coro__stream_compact(coro_stream *s)
{
    if (s->rstart == 0) return;
    memmove(s->rbuf, s->rbuf + s->rstart, s->rend - s->rstart);
    s->rend -= s->rstart;
    s->rstart = 0;
}

/* Takes up to n buffered bytes into out. */
CORO_API size_t coro__stream_take(coro_stream *s, unsigned char *out, size_t n)
{
    size_t have = s->rend - s->rstart;
    if (n > have) n = have;
    if (out) memcpy(out, s->rbuf + s->rstart, n);
    s->rstart += n;
    if (s->rstart == s->rend) s->rstart = s->rend = 0;
    return n;
}

/* asyncio's _wait_for_data, pulled: one recv into the free space. Inside a
 * reader body only (uses op and c). */
#define CORO__STREAM_FILL(c, op)                                               \
    do {                                                                       \
        if ((op)->s->rbusy) CORO_FAIL(c, CORO_EBUSY);                          \
        coro__stream_compact((op)->s);                                         \
        if ((op)->s->rend == (op)->s->rcap) CORO_FAIL(c, CORO_ELIMIT);         \
        (op)->s->rbusy = 1;                                                    \
        CORO_IO(c, coro_recv(&(op)->s->rop, (op)->s->loop, (op)->s->fd,        \
                             (op)->s->rbuf + (op)->s->rend,                    \
                             (op)->s->rcap - (op)->s->rend, 0));               \
        (op)->s->rbusy = 0;                                                    \
        if ((c)->rc == CORO_ECANCELED) CORO_FAIL(c, CORO_ECANCELED);           \
        if ((c)->rc < 0)                                                       \
            (op)->s->rerr = (c)->rc; /* connection lost: set_exception */      \
        else if ((c)->rc == 0)                                                 \
            (op)->s->eof = 1;                                                  \
        else                                                                   \
            (op)->s->rend += (size_t)(c)->rc;                                  \
        if ((op)->s->rerr) CORO_FAIL(c, (op)->s->rerr);                        \
    } while (0)

#define CORO__SR_READ 1
#define CORO__SR_EXACTLY 2
#define CORO__SR_UNTIL 3
#define CORO__SR_LINE 4

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
    if (op->kind == CORO__SR_EXACTLY) {
        while (coro_stream_buffered(s) < op->n) {
            if (s->eof) { /* IncompleteReadError(partial, expected) */
                op->got = coro__stream_take(s, op->out, op->n);
                CORO_FAIL(c, CORO_EINCOMPLETE);
            }
            if (coro_stream_buffered(s) + (s->rcap - s->rend) + s->rstart == 0 ||
                s->rend == s->rcap) { /* more than the buffer holds: hand it over */
                op->got += coro__stream_take(s, op->out + op->got, op->n - op->got);
                op->n -= op->got;
                op->out += op->got;
            }
            CORO__STREAM_FILL(c, op);
        }
        op->got += coro__stream_take(s, op->out, op->n);
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
    if (op->kind == CORO__SR_LINE) { /* readline drops the over-long line */
        if (op->got + op->seplen <= coro_stream_buffered(s) &&
            !memcmp(s->rbuf + s->rstart + op->got, op->sep, op->seplen))
            coro__stream_take(s, NULL, op->got + op->seplen);
        else
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

/* readexactly(n): n bytes, or CORO_EINCOMPLETE with op->got bytes (the
 * partial read) in out when the stream ends first. */
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
 * (or 0 bytes); CORO_ELIMIT if longer than the limit (the line is dropped,
 * as asyncio does). out must hold limit + 1 bytes. */
CORO_API coro_frame *coro_stream_readline(coro_stream_op *op, coro_stream *s, void *out,
                                          size_t cap)
{
    coro_stream_readuntil(op, s, "\n", 1, out, cap);
    if (op->kind == CORO__SR_UNTIL) op->kind = CORO__SR_LINE;
    return &op->co;
}

/* ---- writing */

CORO_API void coro__stream_wake_drainers(coro_stream *s, int err)
{
    for (coro__link *l = s->drainers.next; l != &s->drainers; l = l->next) {
        coro_waiter *w = coro__waiter_of(l);
        if (!coro_future_done(&w->fut)) {
            if (err)
                coro_future_set_error(s->loop, &w->fut, err);
            else
                coro_future_set_result(s->loop, &w->fut, 0);
        }
    }
}

CORO_API void coro__stream_kick(coro_stream *s);

CORO_API void coro__stream_closed(coro_loop *L, void *arg)
{
    coro_stream *s = (coro_stream *)arg;
    s->closed = 1;
    s->fd = -1;
    coro_future_set_result(L, &s->closed_fut, 0);
}

CORO_API void coro__stream_sent(coro_loop *L, void *arg)
{
    coro_stream *s = (coro_stream *)arg;
    int rc = s->wop.res;
    (void)L;
    s->sending = 0;
    free(s->wold);
    s->wold = NULL;
    if (rc < 0) { /* connection lost: drop what is queued */
        s->werr = rc == -EBADF ? -ECONNRESET : rc;
        s->wstart = s->wend = 0;
        coro__stream_wake_drainers(s, s->werr);
    } else {
        s->wstart += (size_t)rc;
        if (s->wstart == s->wend) s->wstart = s->wend = 0;
        if (s->wend - s->wstart <= s->low) coro__stream_wake_drainers(s, 0);
    }
    coro__stream_kick(s);
}

/* Starts the next send, or what comes after the last one (EOF, close). */
CORO_API void coro__stream_kick(coro_stream *s)
{
    if (s->sending || s->closed || s->fd < 0) return;
    if (s->wstart < s->wend && !s->werr) {
        s->sending = 1;
        coro_future_add_done_callback(
            s->loop, &coro_send(&s->wop, s->loop, s->fd, s->wbuf + s->wstart, s->wend - s->wstart, 0)->fut,
            &s->wcb, coro__stream_sent, s);
        return;
    }
    if (s->want_eof == 1 && !s->werr) {
        shutdown(s->fd, SHUT_WR);
        s->want_eof = 2;
    }
    if (s->closing == 1) {
        s->closing = 2;
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
 * closed (a read in progress ends with -EBADF). wait_closed() waits for it. */
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
    if (coro_stream_write_buffered(s) > s->high) {
        coro__waiter_add(&s->drainers, &op->w);
        CORO_AWAIT_FUTURE(c, &op->w.fut);
        coro__link_del(&op->w.link);
    }
    CORO_RETURN(c, c->rc);
    CORO_END(c);
}

/* drain(): waits while more than the high-water mark is queued (until it
 * falls below the low mark); fails if the connection was lost or closed. */
CORO_API coro_frame *coro_stream_drain(coro_stream_op *op, coro_stream *s)
{
    op->s = s;
    return coro_frame_init(&op->co, coro__stream_drain_fn);
}

/* wait_closed(): until the fd is closed. */
CORO_API coro_future *coro_stream_closed(coro_stream *s)
{
    return &s->closed_fut;
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
    coro_call done_cb, closed_cb;
    /* the handler's frame follows (max_align_t aligned) */
};

typedef struct coro__acceptor {
    coro_frame co;
    coro_server *srv;
    coro_io_op op;
} coro__acceptor;

/* asyncio's Server: start_server's listener and its connections. */
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
    int closing, listening;
    coro_future closed;
    coro_io_op cop;
    coro_call ccb;
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
    if (srv->closing && !srv->listening && !srv->nconns && !coro_future_done(&srv->closed))
        coro_future_set_result(srv->loop, &srv->closed, 0);
}

CORO_API void coro__conn_closed(coro_loop *L, void *arg)
{
    coro_conn *conn = (coro_conn *)arg;
    coro_server *srv = conn->srv;
    (void)L;
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
    coro_stream_close(&conn->stream);
    coro_future_add_done_callback(L, coro_stream_closed(&conn->stream), &conn->closed_cb,
                                  coro__conn_closed, conn);
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

CORO_API int coro__acceptor_fn(coro_ctx *c)
{
    coro__acceptor *a = CORO_SELF(c, coro__acceptor);
    coro_server *srv = a->srv;
    CORO_BEGIN(c);
    while (!srv->closing) {
        CORO_IO(c, coro_accept(&a->op, c->loop, srv->lfd, NULL, NULL));
        if (c->rc >= 0) {
            coro__server_conn(srv, c->rc); /* even if we are being cancelled */
        } else if (c->rc == CORO_ECANCELED || c->rc == -EBADF || c->rc == -EINVAL) {
            break;
        } else if (c->rc == -EMFILE || c->rc == -ENFILE || c->rc == -ENOMEM) {
            CORO_SLEEP(c, CORO_MS(10)); /* out of fds: let connections end */
            CORO_CHECK(c);
        }
    }
    CORO_FINALLY(c);
    coro_future_add_done_callback(c->loop, &coro_close(&a->op, c->loop, srv->lfd)->fut, &srv->ccb,
                                  coro__listener_closed, srv);
    CORO_END(c);
}

/* asyncio.start_server: listens on host:port (numeric; NULL: any IPv4;
 * port 0: chosen by the kernel, see coro_server_port) and runs fn's
 * handler in a task per connection, each with a stream of the given limit
 * (0: 64 KiB). Returns 0 or a negative errno. */
CORO_API int coro_server_start(coro_server *srv, coro_loop *L, const char *host, int port,
                               coro_conn_fn *fn, size_t frame_size, void *arg, size_t limit)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int one = 1, rc = coro__sockaddr(&ss, &len, host, port);
    if (rc < 0) return rc;
    memset(srv, 0, sizeof *srv);
    srv->loop = L;
    srv->fn = fn;
    srv->frame_size = frame_size;
    srv->arg = arg;
    srv->limit = limit;
    coro__link_init(&srv->conns);
    coro_future_init(&srv->closed);
    srv->lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (srv->lfd < 0) return -errno;
    setsockopt(srv->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(srv->lfd, (struct sockaddr *)&ss, len) < 0 || listen(srv->lfd, 4096) < 0) {
        rc = -errno;
        close(srv->lfd);
        return rc;
    }
    len = sizeof ss;
    getsockname(srv->lfd, (struct sockaddr *)&ss, &len);
    srv->port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)(void *)&ss)->sin_port
                                              : ((struct sockaddr_in6 *)(void *)&ss)->sin6_port);
    srv->listening = 1;
    srv->acc.srv = srv;
    coro_spawn(L, &srv->acceptor, coro_frame_init(&srv->acc.co, coro__acceptor_fn));
    return 0;
}

CORO_API int coro_server_port(const coro_server *srv)
{
    return srv->port;
}

CORO_API unsigned coro_server_connections(const coro_server *srv)
{
    return srv->nconns;
}

/* asyncio's Server.close(): stops accepting (the listener closes);
 * connections go on until their handlers end. */
CORO_API void coro_server_close(coro_server *srv)
{
    if (srv->closing) return;
    srv->closing = 1;
    coro_task_cancel(srv->loop, &srv->acceptor);
    coro__server_check_closed(srv);
}

/* asyncio's close_clients(): closes every connection's stream (their
 * pending reads end with -EBADF, their handlers then end). */
CORO_API void coro_server_close_clients(coro_server *srv)
{
    for (coro__link *l = srv->conns.next; l != &srv->conns; l = l->next)
        coro_stream_close(&coro__conn_of(l)->stream);
}

/* wait_closed(): until the listener is closed and every connection ended. */
CORO_API coro_future *coro_server_closed(coro_server *srv)
{
    return &srv->closed;
}

/* asyncio.open_connection to a numeric address (host names: see the
 * resolver). On success s is a stream over the connected socket; on
 * failure (or cancellation) the socket is closed. */
typedef struct coro_connect_op {
    coro_frame co;
    coro_stream *s;
    const char *host;
    int port, fd;
    size_t limit;
    coro_io_op op;
    struct sockaddr_storage addr;
    socklen_t alen;
} coro_connect_op;

CORO_API int coro__connect_fn(coro_ctx *c)
{
    coro_connect_op *o = CORO_SELF(c, coro_connect_op);
    CORO_BEGIN(c);
    o->fd = -1;
    c->rc = coro__sockaddr(&o->addr, &o->alen, o->host, o->port);
    CORO_CHECK(c);
    CORO_IO(c, coro_socket(&o->op, c->loop, o->addr.ss_family, SOCK_STREAM, 0));
    CORO_CHECK(c);
    o->fd = c->rc;
    CORO_IO(c, coro_connect(&o->op, c->loop, o->fd, (struct sockaddr *)&o->addr, o->alen));
    CORO_CHECK(c);
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
    CORO_END(c);
}

/* Connects to host:port (numeric IPv4/IPv6): await the frame; c->rc 0 and
 * s is ready, or a negative errno (the socket, if any, is closed). */
CORO_API coro_frame *coro_open_connection(coro_connect_op *o, coro_stream *s, const char *host,
                                          int port, size_t limit)
{
    o->s = s;
    o->host = host;
    o->port = port;
    o->limit = limit;
    return coro_frame_init(&o->co, coro__connect_fn);
}

#endif /* CORO_IO_H */
