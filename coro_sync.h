/* coro_sync.h - asyncio's synchronization primitives and queues, plus a
 * bounded job scheduler (aiojobs), on coro_loop.h.
 *
 * Header-only, never allocates, needs no I/O library. Not thread-safe (one
 * loop's thread). Each primitive is a small caller-owned struct; each
 * blocking operation is a child coroutine whose waiter lives in a
 * caller-owned op record (usually a field of your frame):
 *
 *     coro_lock lk;            coro_lock_init(&lk);
 *     struct my { coro_frame co; coro_lock_op op; ... };
 *     CORO_LOCK_ACQUIRE(c, &f->op, &lk);      // or CORO_AWAIT(c, coro_lock_acquire(&f->op, &lk))
 *     ... critical section ...
 *     coro_lock_release(c->loop, &lk);
 *
 * CHEAT-SHEET (c->rc after each await: 0 / value, or an error)
 *   Event      coro_event_init set clear is_set close;  wait: coro_event_wait(op, e)
 *   Lock       coro_lock_init try_acquire release locked close;
 *              acquire: coro_lock_acquire(op, lk) / CORO_LOCK_ACQUIRE(c, op, lk)
 *   Condition  coro_cond_init(cv, lock or NULL) notify notify_all close;
 *              wait: coro_cond_wait(op, cv), wait_for: coro_cond_wait_for(op, cv, pred, arg)
 *   Semaphore  coro_sem_init / coro_bsem_init try_acquire release locked value close;
 *              acquire: coro_sem_acquire(op, s) / CORO_SEM_ACQUIRE(c, op, s)
 *   Barrier    coro_barrier_init parties n_waiting broken;
 *              wait (rc = arrival index): coro_barrier_wait(op, b); coro_barrier_reset, _abort
 *   Queue      coro_queue_init(q, CORO_FIFO|CORO_LIFO|CORO_PRIO, buf, item_size, capacity, maxsize, cmp)
 *              put_nowait get_nowait qsize empty full maxsize task_done shutdown;
 *              put: coro_queue_put(op, q, item) / CORO_QUEUE_PUT(c, op, q, item)
 *              get: coro_queue_get(op, q, out)  / CORO_QUEUE_GET(c, op, q, out)
 *              join: coro_queue_join(event_op, q)
 *   Scheduler  coro_sched_init(s, limit) spawn active pending;
 *              wait: coro_sched_wait(op, s, timeout); close: coro_sched_close(op, s, grace)
 *   Deadline on any of them: CORO_DEADLINE(c, &tm, when, CORO_AWAIT(...)) (coro_loop.h)
 *
 * ERRORS: CORO_ECANCELED (the waiting task was cancelled), CORO_ETIMEDOUT
 * (a deadline), CORO_EINVAL (misuse: releasing an unlocked lock, notifying
 * without the lock, ...), CORO_EAGAIN (a non-blocking form would block),
 * CORO_ESHUTDOWN (the object was closed / the queue shut down),
 * CORO_EBROKEN (barrier aborted or reset), CORO_ENOMEM (queue storage full).
 *
 * CANCEL-SAFETY (what a cancelled waiter gives back; each line is tested)
 *   Event.wait:     nothing to give back; the waiter is removed, set() still wakes the others.
 *   Lock.acquire:   never holds the lock; a wake-up meant for it passes to the next waiter.
 *   Condition.wait: returns with the lock re-acquired; a notification it got passes on.
 *   Semaphore:      a permit reserved for it at wake-up is returned and handed on.
 *   Barrier.wait:   leaves the count (n_waiting drops); the barrier stays usable.
 *   Queue.get/put:  takes no item / slot; a wake-up it got passes to the next getter/putter.
 *   Scheduler:      a cancelled job frees its slot; the next pending job starts.
 *
 * SEMANTICS: CPython 3.13's asyncio.locks and asyncio.queues, to the
 * iteration: FIFO-fair, no barging, permits reserved at wake-up, queues
 * "wake, then re-check". Closing an object (not in asyncio) wakes all its
 * waiters with CORO_ESHUTDOWN and fails later waits the same way.
 */
#ifndef CORO_SYNC_H
#define CORO_SYNC_H

#include "coro_loop.h"

/* ---------------------------------------------------------------------- */
/* Waiters                                                                 */
/* ---------------------------------------------------------------------- */

/* A waiting operation: asyncio's per-waiter future, in a primitive's FIFO. */
typedef struct coro_waiter {
    coro_future fut;
    coro__link link;
} coro_waiter;

CORO_API coro_waiter *coro__waiter_of(coro__link *l)
{
    return CORO__CONTAINER(coro_waiter, link, l);
}

CORO_API void coro__waiter_add(coro__link *fifo, coro_waiter *w)
{
    coro_future_init(&w->fut);
    coro__link_add(fifo, &w->link);
}

CORO_API int coro__waiter_linked(const coro_waiter *w)
{
    return w->link.next != &w->link;
}

CORO_API int coro__fifo_empty(const coro__link *fifo)
{
    return fifo->next == fifo;
}

CORO_API coro_waiter *coro__fifo_first(coro__link *fifo)
{
    return coro__fifo_empty(fifo) ? NULL : coro__waiter_of(fifo->next);
}

CORO_API unsigned coro__fifo_len(const coro__link *fifo)
{
    unsigned n = 0;
    for (const coro__link *l = fifo->next; l != fifo; l = l->next) n++;
    return n;
}

/* Is any waiter of the FIFO not cancelled? */
CORO_API int coro__fifo_any_live(coro__link *fifo)
{
    for (coro__link *l = fifo->next; l != fifo; l = l->next)
        if (!coro_future_cancelled(&coro__waiter_of(l)->fut)) return 1;
    return 0;
}

#define CORO__ALL 0xFFFFFFFFu

/* Every wake-up of this header: completes up to n pending waiters of the
 * FIFO, in order, with rc (0: a result, < 0: an error). `pop` also unlinks
 * each waiter it passes, done or not (the queues' deque.popleft()).
 * Returns how many it completed. */
CORO_API unsigned coro__wake(coro_loop *L, coro__link *fifo, unsigned n, int rc, int pop)
{
    unsigned k = 0;
    for (coro__link *l = fifo->next, *next; l != fifo && k < n; l = next) {
        coro_future *f = &coro__waiter_of(l)->fut;
        next = l->next;
        if (pop) coro__link_del(l);
        if (coro_future_done(f)) continue;
        coro__future_finish(L, f, rc < 0 ? CORO_FUTURE_ERROR : CORO_FUTURE_RESULT, rc);
        k++;
    }
    return k;
}

/* Closing an object: wakes every waiter with CORO_ESHUTDOWN. */
CORO_API void coro__close(coro_loop *L, coro__link *fifo, uint8_t *closed)
{
    *closed = 1;
    coro__wake(L, fifo, CORO__ALL, CORO_ESHUTDOWN, 0);
}

/* Queues w at the end of fifo, then parks on it (see coro__op_done in
 * coro_loop.h for how the operations below are written). */
CORO_API int coro__op_wait(coro_ctx *c, coro_waiter *w, coro__link *fifo, unsigned phase)
{
    coro__waiter_add(fifo, w);
    return coro__op_park(c, &w->fut, phase);
}

/* ---------------------------------------------------------------------- */
/* Event                                                                   */
/* ---------------------------------------------------------------------- */

/* asyncio.Event. Cancel-safety: a cancelled waiter is removed; set() still
 * wakes every other waiter. */
typedef struct coro_event {
    coro__link waiters;
    uint8_t value, closed;
} coro_event;

typedef struct coro_event_op {
    coro_frame co;
    coro_event *e;
    coro_waiter w;
} coro_event_op;

CORO_API void coro_event_init(coro_event *e)
{
    coro__link_init(&e->waiters);
    e->value = 0;
    e->closed = 0;
}

CORO_API int coro_event_is_set(const coro_event *e)
{
    return e->value;
}

/* Sets the flag and wakes every waiter (no-op when already set). */
CORO_API void coro_event_set(coro_loop *L, coro_event *e)
{
    if (e->value) return;
    e->value = 1;
    coro__wake(L, &e->waiters, CORO__ALL, 0, 0);
}

/* Clears the flag; waiters already woken stay woken. */
CORO_API void coro_event_clear(coro_event *e)
{
    e->value = 0;
}

/* Wakes every waiter with CORO_ESHUTDOWN; later waits fail the same way,
 * whether the flag is set or not. */
CORO_API void coro_event_close(coro_loop *L, coro_event *e)
{
    coro__close(L, &e->waiters, &e->closed);
}

CORO_API int coro__event_wait_fn(coro_ctx *c)
{
    coro_event_op *op = CORO_SELF(c, coro_event_op);
    if (c->self->state) { /* woken */
        coro__link_del(&op->w.link);
        return coro__op_done(c, c->rc);
    }
    if (op->e->closed) return coro__op_done(c, CORO_ESHUTDOWN); /* even if set */
    if (op->e->value) return coro__op_done(c, 0);
    return coro__op_wait(c, &op->w, &op->e->waiters, 1);
}

/* Waits until the flag is set (at once if it is). */
CORO_API coro_frame *coro_event_wait(coro_event_op *op, coro_event *e)
{
    op->e = e;
    return coro_frame_init(&op->co, coro__event_wait_fn);
}

/* ---------------------------------------------------------------------- */
/* Lock                                                                    */
/* ---------------------------------------------------------------------- */

/* asyncio.Lock: not owned (any task may release), FIFO without barging.
 * Cancel-safety: a cancelled waiter never holds the lock; a wake-up meant
 * for it passes to the next waiter. */
typedef struct coro_lock {
    coro__link waiters;
    uint8_t locked, closed;
} coro_lock;

typedef struct coro_lock_op {
    coro_frame co;
    coro_lock *lk;
    coro_waiter w;
} coro_lock_op;

CORO_API void coro_lock_init(coro_lock *lk)
{
    coro__link_init(&lk->waiters);
    lk->locked = 0;
    lk->closed = 0;
}

CORO_API int coro_lock_locked(const coro_lock *lk)
{
    return lk->locked;
}

/* Takes the lock if it is free and nobody is queued for it: 0, or
 * CORO_EAGAIN, or CORO_ESHUTDOWN once closed. */
CORO_API int coro_lock_try_acquire(coro_lock *lk)
{
    if (lk->closed) return CORO_ESHUTDOWN;
    if (lk->locked || coro__fifo_any_live(&lk->waiters)) return CORO_EAGAIN;
    lk->locked = 1;
    return 0;
}

/* asyncio's _wake_up_first: only the head waiter, if it is still pending. */
CORO_API void coro__lock_wake_first(coro_loop *L, coro_lock *lk)
{
    coro_waiter *w = coro__fifo_first(&lk->waiters);
    if (w && !coro_future_done(&w->fut)) coro__future_finish(L, &w->fut, CORO_FUTURE_RESULT, 0);
}

/* Releases the lock and wakes the first waiter. CORO_EINVAL if unlocked. */
CORO_API int coro_lock_release(coro_loop *L, coro_lock *lk)
{
    if (!lk->locked) return CORO_EINVAL;
    lk->locked = 0;
    coro__lock_wake_first(L, lk);
    return 0;
}

/* Wakes every waiter with CORO_ESHUTDOWN; later acquires fail the same
 * way (the lock itself stays as it is and can still be released). */
CORO_API void coro_lock_close(coro_loop *L, coro_lock *lk)
{
    coro__close(L, &lk->waiters, &lk->closed);
}

/* A wait in the lock's FIFO ended with rc: take the lock, or (cancelled)
 * pass on a wake-up that may have been meant for us. Returns rc. */
CORO_API int coro__lock_woken(coro_loop *L, coro_lock *lk, coro_waiter *w, int rc)
{
    coro__link_del(&w->link);
    if (rc >= 0)
        lk->locked = 1;
    else if (rc == CORO_ECANCELED && !lk->locked)
        coro__lock_wake_first(L, lk);
    return rc;
}

CORO_API int coro__lock_acquire_fn(coro_ctx *c)
{
    coro_lock_op *op = CORO_SELF(c, coro_lock_op);
    int rc = c->rc;
    if (c->self->state) return coro__op_done(c, coro__lock_woken(c->loop, op->lk, &op->w, rc));
    rc = coro_lock_try_acquire(op->lk);
    if (rc != CORO_EAGAIN) return coro__op_done(c, rc);
    return coro__op_wait(c, &op->w, &op->lk->waiters, 1);
}

/* Acquires the lock, waiting in FIFO order if needed. */
CORO_API coro_frame *coro_lock_acquire(coro_lock_op *op, coro_lock *lk)
{
    op->lk = lk;
    return coro_frame_init(&op->co, coro__lock_acquire_fn);
}

/* Same, with the uncontended case inline (no child frame at all). */
#define CORO_LOCK_ACQUIRE(c, op, lk)                                           \
    do {                                                                       \
        if (coro_lock_try_acquire(lk) == 0)                                    \
            (c)->rc = 0;                                                       \
        else                                                                   \
            CORO_AWAIT(c, coro_lock_acquire(op, lk));                          \
    } while (0)

/* ---------------------------------------------------------------------- */
/* Condition                                                               */
/* ---------------------------------------------------------------------- */

/* asyncio.Condition, with its own lock or a shared one. Cancel-safety:
 * wait() returns (even cancelled) with the lock re-acquired, and a
 * notification a failing waiter got is passed to another waiter. */
typedef struct coro_cond {
    coro_lock own;
    coro_lock *lock;
    coro__link waiters;
    uint8_t closed;
} coro_cond;

/* Predicate for coro_cond_wait_for: nonzero when satisfied. */
typedef int coro_pred(void *arg);

typedef struct coro_cond_op {
    coro_frame co;
    coro_cond *cv;
    coro_waiter w;      /* in the condition's FIFO */
    coro_waiter relock; /* in the lock's FIFO, re-acquiring */
    coro_pred *pred;
    void *arg;
    int rc, err;
} coro_cond_op;

/* Shares `lock` (NULL: the condition has its own). */
CORO_API void coro_cond_init(coro_cond *cv, coro_lock *lock)
{
    coro_lock_init(&cv->own);
    cv->lock = lock ? lock : &cv->own;
    coro__link_init(&cv->waiters);
    cv->closed = 0;
}

/* The condition's lock: acquire/release it with the coro_lock calls. */
CORO_API coro_lock *coro_cond_lock(coro_cond *cv)
{
    return cv->lock;
}

/* Wakes the first n waiters. CORO_EINVAL unless the lock is held. */
CORO_API int coro_cond_notify(coro_loop *L, coro_cond *cv, unsigned n)
{
    if (!cv->lock->locked) return CORO_EINVAL;
    coro__wake(L, &cv->waiters, n, 0, 0);
    return 0;
}

CORO_API int coro_cond_notify_all(coro_loop *L, coro_cond *cv)
{
    return coro_cond_notify(L, cv, CORO__ALL);
}

/* Wakes every waiter with CORO_ESHUTDOWN (each still re-acquires the lock
 * before returning); later waits fail the same way. The lock stays usable. */
CORO_API void coro_cond_close(coro_loop *L, coro_cond *cv)
{
    coro__close(L, &cv->waiters, &cv->closed);
}

/* Ends a wait_for whose predicate holds: its value, as in asyncio (a value
 * that would read as an error becomes 1). */
CORO_API int coro__pred_done(coro_ctx *c, int v)
{
    return coro__op_done(c, v > 0 ? v : 1);
}

/* Releases the lock and waits for a notification (phase 1). */
CORO_API int coro__cond_sleep(coro_ctx *c, coro_cond_op *op)
{
    coro_cond *cv = op->cv;
    if (!cv->lock->locked) return coro__op_done(c, CORO_EINVAL);
    if (cv->closed) return coro__op_done(c, CORO_ESHUTDOWN);
    coro_lock_release(c->loop, cv->lock);
    return coro__op_wait(c, &op->w, &cv->waiters, 1);
}

/* Back from a wait with the lock re-acquired (rc 0), or not (rc < 0: the
 * lock was closed): fail, passing a notification on, or check again. */
CORO_API int coro__cond_locked(coro_ctx *c, coro_cond_op *op, int rc)
{
    if (rc < 0)
        op->rc = rc;
    else if (op->err)
        op->rc = op->err;
    if (op->rc < 0) {
        coro__wake(c->loop, &op->cv->waiters, 1, 0, 0);
        return coro__op_done(c, op->rc);
    }
    if (!op->pred) return coro__op_done(c, 0);
    if ((rc = op->pred(op->arg))) return coro__pred_done(c, rc);
    return coro__cond_sleep(c, op);
}

CORO_API int coro__cond_wait_fn(coro_ctx *c)
{
    coro_cond_op *op = CORO_SELF(c, coro_cond_op);
    coro_lock *lk = op->cv->lock;
    int rc = c->rc;
    switch (c->self->state) {
    case 0: /* wait_for: `while not pred(): await wait()` */
        if (op->pred && (rc = op->pred(op->arg))) return coro__pred_done(c, rc);
        return coro__cond_sleep(c, op);
    case 1: /* notified, or failed: re-acquire the lock, even if cancelled */
        op->rc = rc;
        op->err = 0;
        coro__link_del(&op->w.link);
        break;
    default: /* 2: woken in the lock's FIFO */
        rc = coro__lock_woken(c->loop, lk, &op->relock, rc);
        if (rc != CORO_ECANCELED) return coro__cond_locked(c, op, rc);
        op->err = rc;
        break;
    }
    rc = coro_lock_try_acquire(lk);
    if (rc == CORO_EAGAIN) return coro__op_wait(c, &op->relock, &lk->waiters, 2);
    return coro__cond_locked(c, op, rc);
}

/* Releases the lock (which must be held: else CORO_EINVAL), waits for a
 * notification, re-acquires the lock. Spurious wake-ups are possible.
 * Returns with the lock held - also on CORO_ECANCELED - except when the
 * lock was closed meanwhile (CORO_ESHUTDOWN from coro_lock_close). */
CORO_API coro_frame *coro_cond_wait(coro_cond_op *op, coro_cond *cv)
{
    op->cv = cv;
    op->pred = NULL;
    return coro_frame_init(&op->co, coro__cond_wait_fn);
}

/* Waits until pred(arg) holds (at once, without the lock, if it does);
 * c->rc is then the predicate's value (1 if it was negative). */
CORO_API coro_frame *coro_cond_wait_for(coro_cond_op *op, coro_cond *cv,
                                        coro_pred *pred, void *arg)
{
    op->cv = cv;
    op->pred = pred;
    op->arg = arg;
    return coro_frame_init(&op->co, coro__cond_wait_fn);
}

/* ---------------------------------------------------------------------- */
/* Semaphore / BoundedSemaphore                                            */
/* ---------------------------------------------------------------------- */

/* asyncio.Semaphore: FIFO; the permit is taken on the waiter's behalf at
 * wake-up. Cancel-safety: a cancelled waiter returns the permit reserved
 * for it, and it is handed to the next waiter. */
typedef struct coro_sem {
    coro__link waiters;
    int32_t value;
    int32_t bound; /* BoundedSemaphore's initial value; -1: unbounded */
    uint8_t closed;
} coro_sem;

typedef struct coro_sem_op {
    coro_frame co;
    coro_sem *s;
    coro_waiter w;
} coro_sem_op;

/* CORO_EINVAL if value < 0. */
CORO_API int coro_sem_init(coro_sem *s, int value)
{
    if (value < 0) return CORO_EINVAL;
    coro__link_init(&s->waiters);
    s->value = value;
    s->bound = -1;
    s->closed = 0;
    return 0;
}

/* A BoundedSemaphore: releasing past `value` is CORO_EINVAL. */
CORO_API int coro_bsem_init(coro_sem *s, int value)
{
    int rc = coro_sem_init(s, value);
    if (rc == 0) s->bound = value;
    return rc;
}

CORO_API int coro_sem_value(const coro_sem *s)
{
    return s->value;
}

/* asyncio's locked(): no permit, or live waiters queued (FIFO). */
CORO_API int coro_sem_locked(coro_sem *s)
{
    return s->value == 0 || coro__fifo_any_live(&s->waiters);
}

CORO_API int coro_sem_try_acquire(coro_sem *s)
{
    if (s->closed) return CORO_ESHUTDOWN;
    if (coro_sem_locked(s)) return CORO_EAGAIN;
    s->value--;
    return 0;
}

/* asyncio's _wake_up_next: reserves a permit for the first pending waiter. */
CORO_API int coro__sem_wake_next(coro_loop *L, coro_sem *s)
{
    if (!coro__wake(L, &s->waiters, 1, 0, 0)) return 0;
    s->value--;
    return 1;
}

/* Returns a permit and wakes the first waiter. CORO_EINVAL for a bounded
 * semaphore already at its initial value. */
CORO_API int coro_sem_release(coro_loop *L, coro_sem *s)
{
    if (s->bound >= 0 && s->value >= s->bound) return CORO_EINVAL;
    s->value++;
    coro__sem_wake_next(L, s);
    return 0;
}

CORO_API void coro_sem_close(coro_loop *L, coro_sem *s)
{
    coro__close(L, &s->waiters, &s->closed);
}

CORO_API int coro__sem_acquire_fn(coro_ctx *c)
{
    coro_sem_op *op = CORO_SELF(c, coro_sem_op);
    coro_sem *s = op->s;
    int rc = c->rc;
    if (!c->self->state) {
        rc = coro_sem_try_acquire(s);
        if (rc != CORO_EAGAIN) return coro__op_done(c, rc);
        return coro__op_wait(c, &op->w, &s->waiters, 1);
    }
    coro__link_del(&op->w.link);
    if (rc == CORO_ECANCELED && coro_future_state(&op->w.fut) == CORO_FUTURE_RESULT)
        s->value++; /* woken, then cancelled: give the permit back */
    while (s->value > 0 && coro__sem_wake_next(c->loop, s)) {
    }
    return coro__op_done(c, rc < 0 ? rc : 0);
}

CORO_API coro_frame *coro_sem_acquire(coro_sem_op *op, coro_sem *s)
{
    op->s = s;
    return coro_frame_init(&op->co, coro__sem_acquire_fn);
}

#define CORO_SEM_ACQUIRE(c, op, s)                                             \
    do {                                                                       \
        if (coro_sem_try_acquire(s) == 0)                                      \
            (c)->rc = 0;                                                       \
        else                                                                   \
            CORO_AWAIT(c, coro_sem_acquire(op, s));                            \
    } while (0)

/* ---------------------------------------------------------------------- */
/* Barrier                                                                 */
/* ---------------------------------------------------------------------- */

/* asyncio.Barrier, built like CPython's on a Condition. wait() gives the
 * arrival index 0..parties-1; tasks arriving while it drains or resets wait
 * for the next round. Cancel-safety: a cancelled waiter leaves the count and
 * the barrier stays usable. */
typedef struct coro_barrier {
    coro_cond cond;
    uint32_t parties, count;
    uint8_t state;
} coro_barrier;

#define CORO__BAR_FILLING 0u
#define CORO__BAR_DRAINING 1u
#define CORO__BAR_RESETTING 2u
#define CORO__BAR_BROKEN 3u

typedef struct coro_barrier_op {
    coro_frame co;
    coro_barrier *b;
    coro_cond_op cw; /* its relock waiter also takes the lock first */
    int index, what;
} coro_barrier_op;

/* CORO_EINVAL if parties < 1. */
CORO_API int coro_barrier_init(coro_barrier *b, int parties)
{
    if (parties < 1) return CORO_EINVAL;
    coro_cond_init(&b->cond, NULL);
    b->parties = (uint32_t)parties;
    b->count = 0;
    b->state = CORO__BAR_FILLING;
    return 0;
}

CORO_API unsigned coro_barrier_parties(const coro_barrier *b)
{
    return b->parties;
}

/* Tasks waiting for the barrier to trip (0 while it drains or resets). */
CORO_API unsigned coro_barrier_n_waiting(const coro_barrier *b)
{
    return b->state == CORO__BAR_FILLING ? b->count : 0;
}

CORO_API int coro_barrier_broken(const coro_barrier *b)
{
    return b->state == CORO__BAR_BROKEN;
}

CORO_API int coro__barrier_not_busy(void *arg)
{
    coro_barrier *b = (coro_barrier *)arg;
    return b->state != CORO__BAR_DRAINING && b->state != CORO__BAR_RESETTING;
}

CORO_API int coro__barrier_not_filling(void *arg)
{
    return ((coro_barrier *)arg)->state != CORO__BAR_FILLING;
}

#define CORO__BAR_WAIT 0
#define CORO__BAR_RESET 1
#define CORO__BAR_ABORT 2

/* Leaves `async with self._cond` with rc. */
CORO_API int coro__barrier_unlock(coro_ctx *c, coro_barrier *b, int rc)
{
    coro_lock_release(c->loop, b->cond.lock);
    return coro__op_done(c, rc);
}

/* wait()'s finally part: the last task out lets the next round in. */
CORO_API int coro__barrier_exit(coro_ctx *c, coro_barrier_op *op, int rc)
{
    coro_barrier *b = op->b;
    if (--b->count == 0) {
        if (b->state == CORO__BAR_RESETTING || b->state == CORO__BAR_DRAINING)
            b->state = CORO__BAR_FILLING;
        coro_cond_notify_all(c->loop, &b->cond);
    }
    return coro__barrier_unlock(c, b, rc < 0 ? rc : op->index);
}

/* Phases: 1 waiting for the lock; 2 in _block(); 3 in _wait(). */
CORO_API int coro__barrier_fn(coro_ctx *c)
{
    coro_barrier_op *op = CORO_SELF(c, coro_barrier_op);
    coro_barrier *b = op->b;
    coro_lock *lk = b->cond.lock;
    int rc = c->rc;
    switch (c->self->state) {
    case 0: /* async with self._cond */
        rc = coro_lock_try_acquire(lk);
        if (rc == CORO_EAGAIN) return coro__op_wait(c, &op->cw.relock, &lk->waiters, 1);
        break;
    case 1:
        rc = coro__lock_woken(c->loop, lk, &op->cw.relock, rc);
        break;
    case 2: /* _block(): wait while it drains or resets */
        if (rc >= 0) rc = b->state == CORO__BAR_BROKEN ? CORO_EBROKEN : 0;
        if (rc < 0) return coro__barrier_unlock(c, b, rc);
        op->index = (int)b->count++;
        if ((uint32_t)op->index + 1 < b->parties) /* _wait() for the trip */
            return coro__op_call(c, coro_cond_wait_for(&op->cw, &b->cond,
                                                       coro__barrier_not_filling, b), 3);
        b->state = CORO__BAR_DRAINING; /* _release(): the last one trips it */
        coro_cond_notify_all(c->loop, &b->cond);
        return coro__barrier_exit(c, op, 0);
    default: /* 3: _wait() woke */
        if (rc >= 0 && (b->state == CORO__BAR_BROKEN || b->state == CORO__BAR_RESETTING))
            rc = CORO_EBROKEN;
        return coro__barrier_exit(c, op, rc);
    }
    if (rc < 0) return coro__op_done(c, rc); /* the lock was not taken */
    if (op->what == CORO__BAR_WAIT)
        return coro__op_call(c, coro_cond_wait_for(&op->cw, &b->cond, coro__barrier_not_busy, b), 2);
    if (op->what == CORO__BAR_ABORT)
        b->state = CORO__BAR_BROKEN;
    else
        b->state = b->count > 0 ? CORO__BAR_RESETTING : CORO__BAR_FILLING;
    coro_cond_notify_all(c->loop, &b->cond);
    return coro__barrier_unlock(c, b, 0);
}

CORO_API coro_frame *coro__barrier_op(coro_barrier_op *op, coro_barrier *b, int what)
{
    op->b = b;
    op->what = what;
    return coro_frame_init(&op->co, coro__barrier_fn);
}

/* Waits for `parties` tasks; c->rc = this task's arrival index, or
 * CORO_EBROKEN if the barrier is or becomes broken or is reset. */
CORO_API coro_frame *coro_barrier_wait(coro_barrier_op *op, coro_barrier *b)
{
    return coro__barrier_op(op, b, CORO__BAR_WAIT);
}

/* Back to the initial state: current waiters get CORO_EBROKEN. */
CORO_API coro_frame *coro_barrier_reset(coro_barrier_op *op, coro_barrier *b)
{
    return coro__barrier_op(op, b, CORO__BAR_RESET);
}

/* Breaks the barrier: current and later waits get CORO_EBROKEN until a
 * reset. */
CORO_API coro_frame *coro_barrier_abort(coro_barrier_op *op, coro_barrier *b)
{
    return coro__barrier_op(op, b, CORO__BAR_ABORT);
}

/* ---------------------------------------------------------------------- */
/* Queues                                                                  */
/* ---------------------------------------------------------------------- */

/* asyncio.Queue / LifoQueue / PriorityQueue over caller storage of
 * `capacity` items of `item_size` bytes. maxsize 0 means asyncio's
 * "unbounded": full() is never true, and only the storage limits it (a put
 * beyond `capacity` fails with CORO_ENOMEM). Items are copied in and out.
 * Cancel-safety: a cancelled getter or putter takes no item or slot, and a
 * wake-up it received passes to the next one ("wake, then re-check"). */
#define CORO_FIFO 0
#define CORO_LIFO 1
#define CORO_PRIO 2
typedef int coro_cmp(const void *a, const void *b); /* < 0: a comes first */

typedef struct coro_queue {
    unsigned char *buf;
    uint32_t size, capacity, maxsize, head, count;
    uint32_t unfinished;
    uint8_t kind, shutdown;
    coro_cmp *cmp;
    coro__link getters, putters;
    coro_event finished;
} coro_queue;

typedef struct coro_queue_op {
    coro_frame co;
    coro_queue *q;
    coro_waiter w;
    union {
        const void *in;
        void *out;
    };
} coro_queue_op;

/* CORO_EINVAL on a bad kind, zero sizes, maxsize > capacity, or a
 * priority queue without cmp. */
CORO_API int coro_queue_init(coro_queue *q, int kind, void *buf, size_t item_size,
                             size_t capacity, size_t maxsize, coro_cmp *cmp)
{
    if (kind < CORO_FIFO || kind > CORO_PRIO || !buf || !item_size || !capacity ||
        maxsize > capacity || capacity > UINT32_MAX || item_size > UINT32_MAX ||
        (kind == CORO_PRIO && !cmp))
        return CORO_EINVAL;
    q->buf = (unsigned char *)buf;
    q->size = (uint32_t)item_size;
    q->capacity = (uint32_t)capacity;
    q->maxsize = (uint32_t)maxsize;
    q->head = q->count = q->unfinished = 0;
    q->kind = (uint8_t)kind;
    q->shutdown = 0;
    q->cmp = cmp;
    coro__link_init(&q->getters);
    coro__link_init(&q->putters);
    coro_event_init(&q->finished);
    q->finished.value = 1;
    return 0;
}

CORO_API unsigned coro_queue_qsize(const coro_queue *q)
{
    return q->count;
}

CORO_API unsigned coro_queue_maxsize(const coro_queue *q)
{
    return q->maxsize;
}

CORO_API int coro_queue_empty(const coro_queue *q)
{
    return q->count == 0;
}

CORO_API int coro_queue_full(const coro_queue *q)
{
    return q->maxsize > 0 && q->count >= q->maxsize;
}

CORO_API unsigned char *coro__q_slot(coro_queue *q, uint32_t i)
{
    return q->buf + (size_t)i * q->size;
}

CORO_API void coro__q_swap(coro_queue *q, uint32_t i, uint32_t j)
{
    unsigned char *a = coro__q_slot(q, i), *b = coro__q_slot(q, j);
    for (uint32_t k = 0; k < q->size; k++) {
        unsigned char t = a[k];
        a[k] = b[k];
        b[k] = t;
    }
}

/* Copies an item; the common sizes become a single load and store. (The
 * pointers are hidden from the optimizer so that gcc's -Warray-bounds does
 * not judge the branches a smaller item never takes.) */
CORO_API void coro__q_copy(void *dst, const void *src, uint32_t n)
{
#if defined(__GNUC__) || defined(__clang__)
    __asm__("" : "+r"(dst), "+r"(src));
#endif
    if (n == 8)
        coro__memcpy(dst, src, 8);
    else if (n == 4)
        coro__memcpy(dst, src, 4);
    else
        coro__memcpy(dst, src, n);
}

/* A binary min-heap by cmp, like heapq. */
CORO_API void coro__heap_up(coro_queue *q, uint32_t i)
{
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (q->cmp(coro__q_slot(q, i), coro__q_slot(q, parent)) >= 0) break;
        coro__q_swap(q, i, parent);
        i = parent;
    }
}

/* heapq's _siftup: the item at i walks down to a leaf along the smaller
 * children (the right one on ties), then back up. Same comparisons as
 * CPython, so items whose keys compare equal leave in asyncio's order. */
CORO_API void coro__heap_down(coro_queue *q, uint32_t i)
{
    for (uint32_t l; (l = 2 * i + 1) < q->count; i = l) {
        if (l + 1 < q->count && q->cmp(coro__q_slot(q, l), coro__q_slot(q, l + 1)) >= 0) l++;
        coro__q_swap(q, i, l);
    }
    coro__heap_up(q, i);
}

CORO_API void coro__queue_push(coro_queue *q, const void *item)
{
    uint32_t at = q->count;
    if (q->kind == CORO_FIFO && (at += q->head) >= q->capacity) at -= q->capacity;
    coro__q_copy(coro__q_slot(q, at), item, q->size);
    q->count++;
    if (q->kind == CORO_PRIO) coro__heap_up(q, at);
}

CORO_API void coro__queue_pop(coro_queue *q, void *out)
{
    uint32_t at = q->kind == CORO_FIFO ? q->head : q->kind == CORO_LIFO ? q->count - 1 : 0;
    if (out) coro__q_copy(out, coro__q_slot(q, at), q->size);
    q->count--;
    if (q->kind == CORO_FIFO) {
        if (++q->head == q->capacity) q->head = 0;
    } else if (q->kind == CORO_PRIO && q->count) {
        coro__q_copy(coro__q_slot(q, 0), coro__q_slot(q, q->count), q->size);
        coro__heap_down(q, 0);
    }
}

/* Pops waiters until one that is not done, and wakes it. */
CORO_API void coro__queue_wakeup_next(coro_loop *L, coro__link *fifo)
{
    coro__wake(L, fifo, 1, 0, 1);
}

/* Adds an item without waiting: 0, CORO_ESHUTDOWN, CORO_EAGAIN (full), or
 * CORO_ENOMEM (the storage is full on a queue without maxsize). */
CORO_API int coro_queue_put_nowait(coro_loop *L, coro_queue *q, const void *item)
{
    if (q->shutdown) return CORO_ESHUTDOWN;
    if (coro_queue_full(q)) return CORO_EAGAIN;
    if (q->count >= q->capacity) return CORO_ENOMEM;
    coro__queue_push(q, item);
    q->unfinished++;
    coro_event_clear(&q->finished);
    coro__queue_wakeup_next(L, &q->getters);
    return 0;
}

/* Takes an item without waiting (out may be NULL): 0, CORO_EAGAIN (empty)
 * or CORO_ESHUTDOWN (empty and shut down). */
CORO_API int coro_queue_get_nowait(coro_loop *L, coro_queue *q, void *out)
{
    if (!q->count) return q->shutdown ? CORO_ESHUTDOWN : CORO_EAGAIN;
    coro__queue_pop(q, out);
    coro__queue_wakeup_next(L, &q->putters);
    return 0;
}

/* One get()'s item is processed. CORO_EINVAL if called too many times. */
CORO_API int coro_queue_task_done(coro_loop *L, coro_queue *q)
{
    if (q->unfinished == 0) return CORO_EINVAL;
    if (--q->unfinished == 0) coro_event_set(L, &q->finished);
    return 0;
}

/* asyncio's shutdown(immediate): puts fail from now on; gets drain what
 * is left (nothing, if immediate: the items are dropped and counted as
 * done); every blocked getter and putter wakes up to re-check. */
CORO_API void coro_queue_shutdown(coro_loop *L, coro_queue *q, int immediate)
{
    q->shutdown = 1;
    if (immediate) {
        while (q->count) {
            coro__queue_pop(q, NULL);
            if (q->unfinished > 0) q->unfinished--;
        }
        if (q->unfinished == 0) coro_event_set(L, &q->finished);
    }
    coro__wake(L, &q->getters, CORO__ALL, 0, 1);
    coro__wake(L, &q->putters, CORO__ALL, 0, 1);
}

/* Can a put (put = 1) or a get (put = 0) go ahead without waiting? */
CORO__SPLIT_API int coro__queue_ready(const coro_queue *q, int put)
{
    return put ? !coro_queue_full(q) : !coro_queue_empty(q);
}

/* One round of a put or get: does it, setting c->rc, and returns 0; or,
 * when it must wait, queues op's waiter and returns 1 (the caller then
 * awaits op->w.fut and calls coro__queue_woken). */
CORO__SPLIT_API int coro__queue_try(coro_ctx *c, coro_queue_op *op, int put)
{
    coro_queue *q = op->q;
    if (coro__queue_ready(q, put))
        c->rc = put ? coro_queue_put_nowait(c->loop, q, op->in)
                    : coro_queue_get_nowait(c->loop, q, op->out);
    else if (q->shutdown)
        c->rc = CORO_ESHUTDOWN;
    else
        return coro__waiter_add(put ? &q->putters : &q->getters, &op->w), 1;
    return 0;
}

/* After the wait: 0 to try again, or 1 when it failed (c->rc < 0): the
 * "except" branch of asyncio's get()/put(), which passes a wake-up on. */
CORO__SPLIT_API int coro__queue_woken(coro_ctx *c, coro_queue_op *op, int put)
{
    coro_queue *q = op->q;
    coro_waiter *w = &op->w;
    if (c->rc >= 0) return 0;
    coro_future_cancel(c->loop, &w->fut); /* just in case it is not done yet */
    if (coro__waiter_linked(w)) coro__link_del(&w->link);
    if (coro__queue_ready(q, put) && !coro_future_cancelled(&w->fut))
        coro__queue_wakeup_next(c->loop, put ? &q->putters : &q->getters);
    return 1;
}

CORO__SPLIT_API int coro__queue_fn(coro_ctx *c, int put)
{
    coro_queue_op *op = CORO_SELF(c, coro_queue_op);
    if (c->self->state && coro__queue_woken(c, op, put)) return coro__op_done(c, c->rc);
    if (coro__queue_try(c, op, put)) return coro__op_park(c, &op->w.fut, 1);
    return coro__op_done(c, c->rc);
}

CORO_API int coro__queue_put_fn(coro_ctx *c)
{
    return coro__queue_fn(c, 1);
}

CORO_API int coro__queue_get_fn(coro_ctx *c)
{
    return coro__queue_fn(c, 0);
}

/* Puts an item (copied when it goes in; keep it valid until then), waiting
 * for room in FIFO order. */
CORO_API coro_frame *coro_queue_put(coro_queue_op *op, coro_queue *q, const void *item)
{
    op->q = q;
    op->in = item;
    return coro_frame_init(&op->co, coro__queue_put_fn);
}

/* Gets an item into `out` (may be NULL), waiting for one in FIFO order. */
CORO_API coro_frame *coro_queue_get(coro_queue_op *op, coro_queue *q, void *out)
{
    op->q = q;
    op->out = out;
    return coro_frame_init(&op->co, coro__queue_get_fn);
}

/* The same operations waiting inline, in the caller's frame (no child
 * frame): the rounds of coro__queue_fn, in a macro. */
#define CORO__QUEUE_XFER(c, op, put)                                           \
    do {                                                                       \
        while (coro__queue_try(c, op, put)) {                                  \
            CORO_AWAIT_FUTURE(c, &(op)->w.fut);                                \
            if (coro__queue_woken(c, op, put)) break;                          \
        }                                                                      \
    } while (0)

#define CORO_QUEUE_PUT(c, op, queue, item)                                     \
    do {                                                                       \
        (op)->q = (queue);                                                     \
        (op)->in = (item);                                                     \
        CORO__QUEUE_XFER(c, op, 1);                                            \
    } while (0)

#define CORO_QUEUE_GET(c, op, queue, outp)                                     \
    do {                                                                       \
        (op)->q = (queue);                                                     \
        (op)->out = (outp);                                                    \
        CORO__QUEUE_XFER(c, op, 0);                                            \
    } while (0)

/* Waits until every item put has been marked done (at once if none): the
 * queue's "finished" event is set exactly when nothing is unfinished. */
CORO_API coro_frame *coro_queue_join(coro_event_op *op, coro_queue *q)
{
    return coro_event_wait(op, &q->finished);
}

/* ---------------------------------------------------------------------- */
/* Job scheduler (aiojobs)                                                 */
/* ---------------------------------------------------------------------- */

/* At most `limit` jobs run at once; more wait in a pending FIFO and start
 * as running ones end. Cancel-safety: a cancelled (or failed) job frees its
 * slot and the next pending job starts. */
typedef struct coro_sched {
    coro__link active, pending;
    coro__link waiters; /* coro_sched_wait/close callers, until idle */
    uint32_t limit, nactive, npending;
    uint8_t closed;
} coro_sched;

/* A job: its task, the scheduler's callback on it, its place in a list. */
typedef struct coro_job {
    coro_task task;
    coro_call cb;
    coro__link link;
    coro_frame *frame;
    coro_sched *s;
    uint8_t state;
} coro_job;

#define CORO_JOB_PENDING 1
#define CORO_JOB_ACTIVE 2
#define CORO_JOB_DONE 3    /* ran; its task holds the outcome        */
#define CORO_JOB_DROPPED 4 /* closed while pending: it never started */

typedef struct coro_sched_op {
    coro_frame co;
    coro_sched *s;
    coro_waiter w;
    coro_timeout tm;
    coro_time timeout;
    int close;
} coro_sched_op;

/* CORO_EINVAL if limit is 0. */
CORO_API int coro_sched_init(coro_sched *s, unsigned limit)
{
    if (!limit) return CORO_EINVAL;
    coro__link_init(&s->active);
    coro__link_init(&s->pending);
    coro__link_init(&s->waiters);
    s->limit = limit;
    s->nactive = s->npending = 0;
    s->closed = 0;
    return 0;
}

CORO_API unsigned coro_sched_active(const coro_sched *s)
{
    return s->nactive;
}

CORO_API unsigned coro_sched_pending(const coro_sched *s)
{
    return s->npending;
}

CORO_API coro_job *coro__job_of(coro__link *l)
{
    return CORO__CONTAINER(coro_job, link, l);
}

CORO_API void coro__job_done(coro_loop *L, void *arg);

CORO_API void coro__job_start(coro_loop *L, coro_sched *s, coro_job *j)
{
    j->state = CORO_JOB_ACTIVE;
    coro__link_add(&s->active, &j->link);
    s->nactive++;
    coro_spawn(L, &j->task, j->frame);
    coro_future_add_done_callback(L, &j->task.fut, &j->cb, coro__job_done, j);
}

/* Takes the first pending job off the list (one must be pending). */
CORO_API coro_job *coro__job_unqueue(coro_sched *s)
{
    coro_job *j = coro__job_of(s->pending.next);
    coro__link_del(&j->link);
    s->npending--;
    return j;
}

CORO_API void coro__job_done(coro_loop *L, void *arg)
{
    coro_job *j = (coro_job *)arg;
    coro_sched *s = j->s;
    j->state = CORO_JOB_DONE;
    coro__link_del(&j->link);
    s->nactive--;
    if (!s->closed && s->npending) coro__job_start(L, s, coro__job_unqueue(s));
    if (!s->nactive && !s->npending) coro__wake(L, &s->waiters, CORO__ALL, 0, 0);
}

/* Runs `frame` as a job: now if fewer than `limit` run, else when a slot
 * frees (FIFO). The job record is caller-owned until the job is done or
 * dropped. CORO_EINVAL once the scheduler is closed. */
CORO_API int coro_sched_spawn(coro_loop *L, coro_sched *s, coro_job *j,
                              coro_frame *frame)
{
    if (s->closed) return CORO_EINVAL;
    j->frame = frame;
    j->s = s;
    if (s->nactive < s->limit) {
        coro__job_start(L, s, j);
    } else {
        j->state = CORO_JOB_PENDING;
        coro__link_add(&s->pending, &j->link);
        s->npending++;
    }
    return 0;
}

CORO_API int coro_job_state(const coro_job *j)
{
    return j->state;
}

CORO_API int coro__sched_fn(coro_ctx *c)
{
    coro_sched_op *op = CORO_SELF(c, coro_sched_op);
    coro_sched *s = op->s;
    if (c->self->state) { /* idle, or the timeout */
        coro__link_del(&op->w.link);
        return coro__op_done(c, coro_timeout_exit(c, &op->tm, c->rc));
    }
    if (op->close) {
        s->closed = 1;
        while (s->npending) coro__job_unqueue(s)->state = CORO_JOB_DROPPED;
        for (coro__link *l = s->active.next; l != &s->active; l = l->next)
            coro_task_cancel(c->loop, &coro__job_of(l)->task);
    }
    if (!s->nactive && !s->npending) return coro__op_done(c, 0);
    coro__waiter_add(&s->waiters, &op->w);
    coro__memset(&op->tm, 0, sizeof op->tm);
    coro_timeout_enter(c, &op->tm, op->timeout);
    return coro__op_park(c, &op->w.fut, 1);
}

/* Waits until no job is running or pending; c->rc = 0, or CORO_ETIMEDOUT
 * after `timeout` ns (CORO_NEVER: no limit); jobs keep running. */
CORO_API coro_frame *coro_sched_wait(coro_sched_op *op, coro_sched *s, coro_time timeout)
{
    op->s = s;
    op->timeout = timeout;
    op->close = 0;
    return coro_frame_init(&op->co, coro__sched_fn);
}

/* Closes the scheduler: drops pending jobs, cancels running ones and
 * waits up to `grace` ns for them to end (c->rc = 0, or CORO_ETIMEDOUT if
 * some still run: they keep their cancellation and end later). */
CORO_API coro_frame *coro_sched_close(coro_sched_op *op, coro_sched *s, coro_time grace)
{
    op->s = s;
    op->timeout = grace;
    op->close = 1;
    return coro_frame_init(&op->co, coro__sched_fn);
}

#endif /* CORO_SYNC_H */
