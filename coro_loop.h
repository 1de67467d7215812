/* coro_loop.h - the event loop: tasks, futures, timers, cancellation, and
 * asyncio's awaiting family (gather, wait, wait_for, timeout, shield,
 * as_completed, TaskGroup), on a pluggable backend.
 *
 * Header-only, never allocates, needs no I/O library. Freestanding except for the optional
 * POSIX backend and stderr reports (CORO_POSIX, on by default when hosted on
 * Unix). Everything here is for the loop's own thread; nothing is
 * thread-safe (coro_io.h adds the one thread-safe entry point).
 *
 * CHEAT-SHEET (see coro.h for frames and CORO_BEGIN/END/AWAIT/TRY/RETURN)
 *   coro_loop L; coro_loop_init(&L, NULL);          // NULL: POSIX clock
 *   coro_task t; int rc = coro_run(&L, &t, main_frame);   // asyncio.run
 *   coro_loop_close(&L);                            // reports leftovers
 *
 *   Inside a body (c is the coro_ctx *):
 *     CORO_YIELD(c)                 sleep(0): exactly one loop iteration
 *     CORO_SLEEP(c, CORO_MS(50))    sleep
 *     CORO_AWAIT_TASK(c, &t)        await a task: c->rc = result or error
 *     CORO_AWAIT_FUTURE(c, &fut)    await a future: c->rc = 0 or error
 *     coro_spawn(c->loop, &t, child_frame)     create_task (runs later)
 *     coro_task_cancel(c->loop, &t)            request cancellation
 *   Time is int64_t nanoseconds: CORO_NS/US/MS/S(x), coro_loop_time(L).
 *   Interrupt handlers: coro_signal_init(L, &s, fn, arg); from the ISR
 *     coro_signal_raise(&s) (the one ISR/thread-safe call); fn runs in the loop.
 *
 *   Awaiting family (caller-owned records, no allocation):
 *     gather:   coro_gather_start(L, &g, items, futs, n, flags); CORO_AWAIT_GATHER(c, &g)
 *     wait:     CORO_AWAIT(c, coro_wait_init(&w, items, futs, n, CORO_FIRST_COMPLETED, timeout))
 *     wait_for: CORO_AWAIT(c, coro_wait_for_init(&wf, fut, timeout))
 *     timeout:  coro_timeout_enter(c, &tm, delay); ...; rc = coro_timeout_exit(c, &tm, rc)
 *               or CORO_TIMEOUT(c, &tm, delay, CORO_AWAIT(...)) / CORO_DEADLINE(c, &tm, when, ...)
 *     shield:   CORO_AWAIT_FUTURE(c, coro_shield_start(L, &s, fut))
 *     as_completed: coro_as_completed_init(L, &ac, items, futs, n, timeout);
 *               CORO_AWAIT(c, coro_as_completed_next(&ac))  -> c->rc = index
 *     TaskGroup: coro_group_enter(c, &g, errs, max); coro_group_spawn(L, &g, &gt, frame);
 *               CORO_AWAIT(c, coro_group_exit(&g, body_rc))
 *
 * SEMANTICS: asyncio's (CPython 3.13). One iteration (coro_loop_run_once)
 * polls the backend, moves due timers to the ready queue, then runs exactly
 * the handles that were ready at that point; what they schedule runs next
 * iteration. Done-callbacks are scheduled, never called inline. Equal
 * deadlines fire first-armed-first. Cancellation is a request delivered as
 * CORO_ECANCELED at the task's current or next await, forwarded to what it
 * awaits. Leftover tasks at shutdown are cancelled in creation order.
 *
 * LIMITS
 *   - A task's cancellation counter saturates at 65535.
 *   - Timer ties are broken by a 32-bit arming counter: two live timers with
 *     the same deadline must be armed fewer than 2^31 arms apart.
 *   - Task results are ints (>= 0); errors are < 0 (see coro.h).
 */
#ifndef CORO_LOOP_H
#define CORO_LOOP_H

#include "coro.h"

#ifndef CORO_POSIX
#if defined(__STDC_HOSTED__) && __STDC_HOSTED__ &&                             \
    (defined(__unix__) || defined(__APPLE__))
#define CORO_POSIX 1
#else
#define CORO_POSIX 0
#endif
#endif

#if CORO_POSIX
#include <stdio.h>
#include <time.h>
#if !defined(CLOCK_MONOTONIC) && defined(__linux__)
/* Strict ISO modes (-std=c11) hide these POSIX declarations; on Linux the
 * clock id type is int and CLOCK_MONOTONIC is 1. */
int clock_gettime(int clk, struct timespec *ts);
int nanosleep(const struct timespec *req, struct timespec *rem);
#define CLOCK_MONOTONIC 1
#endif
#endif

/* ---------------------------------------------------------------------- */
/* Time                                                                    */
/* ---------------------------------------------------------------------- */

/* Loop time is a coro_time (coro.h): int64_t nanoseconds. With
 * CORO_TIME32 it is int32_t milliseconds on a clock that may wrap around
 * (a free-running 32-bit tick count), which limits it so:
 *   - CORO_NS and CORO_US round down to whole milliseconds;
 *   - deadlines compare modulo 2^32: an armed deadline must lie within
 *     2^31 - 1 ms (24.8 days) of the current time;
 *   - a CORO_NEVER deadline arms no timer (a loop with nothing else to wait
 *     for reports a deadlock), and a computed deadline that would equal
 *     CORO_NEVER moves 1 ms later. */
#ifdef CORO_TIME32
#define CORO_NS(x) ((coro_time)((x) / 1000000))
#define CORO_US(x) ((coro_time)((x) / 1000))
#define CORO_MS(x) ((coro_time)(x))
#define CORO_S(x) ((coro_time)(x) * 1000)
#define CORO_NEVER INT32_MAX /* "no deadline" */
#else
#define CORO_NS(x) ((int64_t)(x))
#define CORO_US(x) ((int64_t)(x) * 1000)
#define CORO_MS(x) ((int64_t)(x) * 1000000)
#define CORO_S(x) ((int64_t)(x) * 1000000000)
#define CORO_NEVER INT64_MAX /* "no deadline" */
#endif

/* a + b without overflow (deadlines far in the future saturate); with
 * CORO_TIME32 modulo 2^32, CORO_NEVER staying CORO_NEVER. */
CORO_API coro_time coro__add_time(coro_time a, coro_time b)
{
#ifdef CORO_TIME32
    if (a == CORO_NEVER || b == CORO_NEVER) return CORO_NEVER;
    a = (coro_time)((uint32_t)a + (uint32_t)b);
    return a == CORO_NEVER ? INT32_MIN : a;
#else
    if (b > 0 && a > INT64_MAX - b) return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b) return INT64_MIN;
    return a + b;
#endif
}

/* a - b, and "is a before b?" (with CORO_TIME32, modulo 2^32). */
#ifdef CORO_TIME32
#define coro__time_diff(a, b) ((coro_time)((uint32_t)(a) - (uint32_t)(b)))
#define coro__before(a, b) (coro__time_diff(a, b) < 0)
#else
#define coro__time_diff(a, b) ((a) - (b))
#define coro__before(a, b) ((a) < (b))
#endif

/* ---------------------------------------------------------------------- */
/* Types                                                                   */
/* ---------------------------------------------------------------------- */

typedef struct coro_backend coro_backend;
typedef struct coro_call coro_call;
typedef struct coro_report coro_report;
typedef struct coro_waitable coro_waitable;

/* A plain callback: call_soon / call_later / future done-callbacks. */
typedef void coro_callback(coro_loop *L, void *arg);

/* A scheduled callback (asyncio's Handle and TimerHandle): caller-owned,
 * reusable once it ran or was cancelled. Zero it (= {0}) before the first
 * coro_call_cancel/_pending on it. 48 bytes. */
struct coro_call {
    coro_handle h;
    coro_callback *fn;
    void *arg;
};

/* Internal list link (task registry, group members). */
typedef struct coro__link coro__link;
struct coro__link {
    coro__link *prev, *next;
};

/* A task: a future plus the frame chain it runs. Caller-owned; 64 bytes on
 * 64-bit targets. It may be reused once done and, if it failed, once its
 * error was read (coro_task_error/result or an await). */
struct coro_task {
    coro_handle h;   /* ready queue / awaited ring / sleep timer */
    coro_future fut; /* outcome; while pending .value is the leaf frame */
#if CORO__REGISTRY
    coro__link link; /* registry of unfinished tasks, creation order */
#endif
};

/* An awaitable future with its own cancellation (gather's outer future,
 * I/O operations). Awaiting it forwards cancellation to `cancel`, and gives
 * c->rc = its int result (the future's value) or its error. */
struct coro_waitable {
    coro_future fut;
    int (*cancel)(coro_loop *L, coro_waitable *w); /* 1 if it accepted */
    unsigned flags;                                  /* CORO_WAITABLE_* */
};

/* The operation may complete even though a cancellation was requested (an
 * I/O completion racing its cancel): its result is then delivered, and the
 * cancellation waits for the task's next await. Nothing is lost. */
#define CORO_WAITABLE_KEEP_RESULT 1u

/* A waitable's outcome as an rc: its int result, or its error. */
CORO_API int coro__waitable_rc(const coro_waitable *w)
{
    return coro_future_state(&w->fut) == CORO_FUTURE_RESULT ? (int)w->fut.value
                                                           : coro_future_rc(&w->fut);
}

/* The backend: the clock, and the wait for events until a deadline. */
struct coro_backend {
    coro_time (*now)(coro_backend *b);
    /* Waits at most `timeout` ns (0: poll, < 0: until an event), queueing
     * what became ready. Returns >= 0, or CORO_EDEADLK when `timeout` < 0
     * and nothing could ever arrive, or another error. */
    int (*poll)(coro_backend *b, coro_loop *L, coro_time timeout);
    void (*close)(coro_backend *b, coro_loop *L); /* may be NULL */
    /* Interrupts a poll in progress; may be called from an interrupt
     * handler or another thread (coro_signal_raise). May be NULL. */
    void (*wake)(coro_backend *b);
    int quiet; /* no events to poll: the loop skips zero-timeout polls */
};

/* A diagnostic: passed to the loop's report handler. */
enum {
    CORO_REPORT_UNRETRIEVED = 1, /* a task failed and nobody read its error */
    CORO_REPORT_PENDING,         /* the loop closed with this task pending  */
    CORO_REPORT_SLOW,            /* one step took >= the slow threshold     */
    CORO_REPORT_SHUTDOWN_ERROR,  /* a task failed while coro_run shut down  */
    CORO_REPORT_GROUP_ORPHAN,    /* a group child failed after its parent   */
    CORO_REPORT_CANCEL_CYCLE,    /* cancel() met tasks awaiting in a cycle  */
    CORO_REPORT_HANDLER_ERROR    /* a server's connection handler failed    */
};
struct coro_report {
    int kind;            /* CORO_REPORT_* */
    const char *message; /* asyncio's wording */
    coro_task *task;     /* NULL for a slow plain callback */
    int error;           /* the error, when there is one */
    coro_time duration;  /* CORO_REPORT_SLOW: the step's length */
};
typedef void coro_report_fn(coro_loop *L, const coro_report *r, void *arg);

struct coro__step; /* a task step in progress */

struct coro_loop {
    coro_handle ready;        /* ready-queue sentinel (next/prev)        */
    coro_handle *timers;      /* armed timers: splay tree (or list)      */
#if CORO__REGISTRY
    coro__link tasks;         /* unfinished tasks, creation order        */
#endif
#if CORO__UNREAD
    coro__link unretrieved;   /* failed tasks whose error nobody read    */
#endif
    coro_ctx *ctx;            /* the running step (current task), or NULL */
    coro_backend *backend;    /* the clock and poll                      */
    coro_backend builtin;     /* storage for the default POSIX backend   */
#ifndef CORO_TIMER_LIST
    uint32_t seq;             /* timer arming counter                    */
#endif
    uint32_t ntasks;          /* unfinished tasks                        */
#if CORO__REGISTRY
    uint32_t shutdown_left;   /* coro_run: cancelled tasks still running */
#endif
    uint8_t flags;            /* CORO__L_*                               */
#if CORO__DIAG
    coro_time slow;           /* slow-step threshold, 0: off             */
    coro_report_fn *report;   /* diagnostics handler                     */
    void *report_arg;
#endif
#if CORO__REGISTRY
    coro_call *shutdown_call; /* coro_run: fired when the last one ends  */
#endif
    struct coro_signal *signals; /* registered interrupt signals         */
};

#define CORO__L_RUNNING 1u
#define CORO__L_STOPPING 2u
#define CORO__L_CLOSED 4u
#define CORO__L_DEADLOCK 8u

/* Task flags (h.flags) and what a task waits on (CORO__W_*, 3 bits). */
#define CORO__T_MUST_CANCEL 0x01u /* deliver ECANCELED at the next step      */
#define CORO__T_POISONED 0x02u    /* awaited itself: awaits of it now fail   */
#define CORO__T_RETRIEVED 0x04u   /* its error has been read                 */
#define CORO__T_MARK 0x08u        /* scratch: cancel in progress, dedupe     */
#define CORO__T_WAIT 0x70u
#define CORO__T_SHUTDOWN 0x80u /* coro_run is waiting for it to end       */
#define CORO__W_NONE 0x00u
#define CORO__W_FUTURE 0x10u /* a plain future (aux)                      */
#define CORO__W_TASK 0x20u   /* another task (aux)                        */
#define CORO__W_CUSTOM 0x30u /* a coro_waitable (aux)                     */
#define CORO__W_SLEEP 0x40u  /* its own timer                             */
#define CORO__W_WOKEN 0x50u  /* sleep ended by cancellation: ECANCELED    */
#define CORO__W_SELF 0x60u   /* awaited itself: EDEADLK                   */
#define CORO__W_HOP 0x70u    /* its sleep timer fired: re-queue once      */

/* Call flags. */
#define CORO__C_ARMED 0x01u  /* in the timer tree */
#define CORO__C_QUEUED 0x02u /* in the ready queue */
#define CORO__C_RING 0x04u   /* in a future's callback ring */

/* ---------------------------------------------------------------------- */
/* Ready queue: circular, doubly linked through next/prev                  */
/* ---------------------------------------------------------------------- */

CORO_API void coro__q_init(coro_handle *s)
{
    s->next = s;
    s->prev = s;
}

CORO_API int coro__q_empty(const coro_handle *s)
{
    return s->next == s;
}

CORO_API void coro__q_push(coro_handle *s, coro_handle *h)
{
    h->next = s;
    h->prev = s->prev;
    s->prev->next = h;
    s->prev = h;
}

CORO_API coro_handle *coro__q_pop(coro_handle *s)
{
    coro_handle *h = s->next;
    s->next = h->next;
    h->next->prev = s;
    return h;
}

CORO_API void coro__q_unlink(coro_handle *h)
{
    h->prev->next = h->next;
    h->next->prev = h->prev;
}

/* Moves every node of src to the empty queue dst. */
CORO_API void coro__q_take(coro_handle *dst, coro_handle *src)
{
    coro__q_init(dst);
    if (coro__q_empty(src)) return;
    dst->next = src->next;
    dst->prev = src->prev;
    dst->next->prev = dst;
    dst->prev->next = dst;
    coro__q_init(src);
}

CORO_API void coro__schedule(coro_loop *L, coro_handle *h)
{
    coro__q_push(&L->ready, h);
}

/* ---------------------------------------------------------------------- */
/* Timers: a top-down splay tree keyed by (when, seq)                      */
/* ---------------------------------------------------------------------- */

/* With CORO_TIME32, a CORO_NEVER deadline is not armed at all (it would
 * come round again when the clock wraps). */
#ifdef CORO_TIME32
#define CORO__UNARMED(h) ((h)->when == CORO_NEVER)
#else
#define CORO__UNARMED(h) 0
#endif

#ifdef CORO_TIMER_LIST
/* The small-target variant: a list sorted by deadline, linked through
 * next; a new timer goes after those with the same deadline. */
CORO_API void coro__timer_insert(coro_loop *L, coro_handle *h)
{
    coro_handle **p = &L->timers;
    if (CORO__UNARMED(h)) return;
    while (*p && !coro__before(h->when, (*p)->when)) p = &(*p)->next;
    h->next = *p;
    *p = h;
}

/* Disarms h, which must be in the list. */
CORO_API void coro__timer_remove(coro_loop *L, coro_handle *h)
{
    coro_handle **p = &L->timers;
    if (CORO__UNARMED(h)) return;
    while (*p != h) p = &(*p)->next;
    *p = h->next;
}

CORO_API coro_handle *coro__timer_first(const coro_loop *L)
{
    return L->timers;
}
#else

/* Left child in next, right child in aux. Splay trees suit timers: arming
 * later and later deadlines, and popping the earliest, are O(1) amortized;
 * arbitrary removal (a cancelled sleep) is O(log n) amortized; and the links
 * reuse fields a sleeping task does not need, so a task's timer costs only
 * its deadline. */
#define CORO__L(n) ((n)->next)
#define CORO__R(n) ((n)->right)

CORO_API int coro__tless(const coro_handle *a, const coro_handle *b)
{
    if (a->when != b->when) return coro__before(a->when, b->when);
    return (int32_t)(a->seq - b->seq) < 0;
}

/* Brings the node with k's key (or its last neighbour) to the root. */
CORO_API coro_handle *coro__splay(coro_handle *t, const coro_handle *k)
{
    coro_handle n, *l = &n, *r = &n, *y;
    CORO__L(&n) = NULL;
    CORO__R(&n) = NULL;
    for (;;) {
        if (coro__tless(k, t)) {
            if (!CORO__L(t)) break;
            if (coro__tless(k, CORO__L(t))) { /* rotate right */
                y = CORO__L(t);
                CORO__L(t) = CORO__R(y);
                CORO__R(y) = t;
                t = y;
                if (!CORO__L(t)) break;
            }
            CORO__L(r) = t; /* link right */
            r = t;
            t = CORO__L(t);
        } else if (coro__tless(t, k)) {
            if (!CORO__R(t)) break;
            if (coro__tless(CORO__R(t), k)) { /* rotate left */
                y = CORO__R(t);
                CORO__R(t) = CORO__L(y);
                CORO__L(y) = t;
                t = y;
                if (!CORO__R(t)) break;
            }
            CORO__R(l) = t; /* link left */
            l = t;
            t = CORO__R(t);
        } else {
            break;
        }
    }
    CORO__R(l) = CORO__L(t);
    CORO__L(r) = CORO__R(t);
    CORO__L(t) = CORO__R(&n);
    CORO__R(t) = CORO__L(&n);
    return t;
}

/* Arms h (h->when set by the caller) as the newest timer. */
CORO_API void coro__timer_insert(coro_loop *L, coro_handle *h)
{
    coro_handle *t = L->timers;
    if (CORO__UNARMED(h)) return;
    h->seq = L->seq++;
    if (!t) {
        CORO__L(h) = NULL;
        CORO__R(h) = NULL;
    } else {
        t = coro__splay(t, h);
        if (coro__tless(h, t)) {
            CORO__L(h) = CORO__L(t);
            CORO__R(h) = t;
            CORO__L(t) = NULL;
        } else {
            CORO__R(h) = CORO__R(t);
            CORO__L(h) = t;
            CORO__R(t) = NULL;
        }
    }
    L->timers = h;
}

/* Disarms h, which must be in the tree. */
CORO_API void coro__timer_remove(coro_loop *L, coro_handle *h)
{
    if (CORO__UNARMED(h)) return;
    coro_handle *t = coro__splay(L->timers, h); /* t == h: keys are unique */
    if (!CORO__L(t)) {
        L->timers = CORO__R(t);
    } else {
        coro_handle *m = coro__splay(CORO__L(t), h); /* max of left side */
        CORO__R(m) = CORO__R(t);
        L->timers = m;
    }
}

/* The earliest armed timer, or NULL. */
CORO_API coro_handle *coro__timer_first(const coro_loop *L)
{
    coro_handle *t = L->timers;
    if (t)
        while (CORO__L(t)) t = CORO__L(t);
    return t;
}
#endif /* CORO_TIMER_LIST */

/* ---------------------------------------------------------------------- */
/* Loop clock                                                              */
/* ---------------------------------------------------------------------- */

/* The loop's current time in ns (monotonic, virtual or user clock). */
CORO_API coro_time coro_loop_time(coro_loop *L)
{
    return L->backend->now(L->backend);
}

/* The running task (asyncio.current_task), or NULL in a plain callback. */
CORO_API coro_task *coro_current_task(const coro_loop *L)
{
    return L->ctx ? L->ctx->task : NULL;
}

/* ---------------------------------------------------------------------- */
/* Calls: call_soon, call_later, call_at                                   */
/* ---------------------------------------------------------------------- */

CORO_API void coro__call_prep(coro_call *k, coro_callback *fn, void *arg)
{
    k->h.kind = CORO__H_CALL;
    k->h.flags = 0;
    k->fn = fn;
    k->arg = arg;
}

/* Queues a prepared call at the end of the ready queue. */
CORO_API void coro__call_queue(coro_loop *L, coro_call *k)
{
    k->h.flags = CORO__C_QUEUED;
    coro__schedule(L, &k->h);
}

CORO__COLD_API void coro__collect_signals_cold(coro_loop *L);

/* Schedules fn(L, arg) for the next run phase (FIFO). Signals raised
 * before are collected first: a callback another thread posted with
 * call_soon_threadsafe runs before one queued after it here (asyncio
 * appends both to one ready queue: T117). */
CORO_API void coro_call_soon(coro_loop *L, coro_call *k, coro_callback *fn,
                             void *arg)
{
    if (L->signals) coro__collect_signals_cold(L);
    coro__call_prep(k, fn, arg);
    coro__call_queue(L, k);
}

/* Schedules fn(L, arg) at loop time `when` (ns). */
CORO_API void coro_call_at(coro_loop *L, coro_call *k, coro_time when,
                           coro_callback *fn, void *arg)
{
    coro__call_prep(k, fn, arg);
    k->h.flags = CORO__C_ARMED;
    k->h.when = when;
    coro__timer_insert(L, &k->h);
}

/* Schedules fn(L, arg) `delay` ns from now (negative delays are fine). */
CORO_API void coro_call_later(coro_loop *L, coro_call *k, coro_time delay,
                              coro_callback *fn, void *arg)
{
    coro_call_at(L, k, coro__add_time(coro_loop_time(L), delay), fn, arg);
}

/* Cancels a call that has not run yet. Returns 1 if it was pending. */
CORO_API int coro_call_cancel(coro_loop *L, coro_call *k)
{
    if (k->h.flags & CORO__C_ARMED) {
        coro__timer_remove(L, &k->h);
    } else if (k->h.flags & CORO__C_QUEUED) {
        coro__q_unlink(&k->h);
    } else {
        return 0;
    }
    k->h.flags = 0;
    return 1;
}

/* Is the call waiting to run (armed or queued)? */
CORO_API int coro_call_pending(const coro_call *k)
{
    return (k->h.flags & (CORO__C_ARMED | CORO__C_QUEUED)) != 0;
}

/* ---------------------------------------------------------------------- */
/* Futures: completion and callbacks                                       */
/* ---------------------------------------------------------------------- */

/* Moves every node of a callback ring to the ready queue, in order. */
CORO_API void coro__schedule_ring(coro_loop *L, coro_handle *tail)
{
    coro_handle *h = tail->next, *next;
    for (;;) {
        next = h->next;
        if (h->kind == CORO__H_CALL) h->flags = CORO__C_QUEUED;
        coro__schedule(L, h);
        if (h == tail) break;
        h = next;
    }
}

CORO_API void coro__future_finish(coro_loop *L, coro_future *f, unsigned state,
                                  intptr_t value)
{
    coro_handle *tail = coro__ring_tail(f);
    f->cbs = (f->cbs & CORO__FK_TASK) | state;
    f->value = value;
    if (tail) coro__schedule_ring(L, tail);
}

/* Sets the result. CORO_EINVAL if f is done or is a task's future. */
CORO_API int coro_future_set_result(coro_loop *L, coro_future *f, intptr_t v)
{
    if (coro_future_done(f) || (f->cbs & CORO__FK_TASK)) return CORO_EINVAL;
    coro__future_finish(L, f, CORO_FUTURE_RESULT, v);
    return 0;
}

/* Sets an error (err < 0). CORO_EINVAL if f is done, is a task's, or err >= 0. */
CORO_API int coro_future_set_error(coro_loop *L, coro_future *f, int err)
{
    if (err >= 0 || coro_future_done(f) || (f->cbs & CORO__FK_TASK))
        return CORO_EINVAL;
    coro__future_finish(L, f, CORO_FUTURE_ERROR, err);
    return 0;
}

/* Cancels a plain future. Returns 1, or 0 if it was already done. */
CORO_API int coro_future_cancel(coro_loop *L, coro_future *f)
{
    if (coro_future_done(f)) return 0;
    coro__future_finish(L, f, CORO_FUTURE_CANCELLED, CORO_ECANCELED);
    return 1;
}

/* Registers fn(L, arg) to be scheduled when f completes (at once, through
 * the ready queue, if it is already done). k is owned by the caller until
 * it ran or was removed. */
CORO_API void coro_future_add_done_callback(coro_loop *L, coro_future *f,
                                            coro_call *k, coro_callback *fn,
                                            void *arg)
{
    if (coro_future_done(f)) {
        coro_call_soon(L, k, fn, arg);
        return;
    }
    coro__call_prep(k, fn, arg);
    k->h.flags = CORO__C_RING;
    coro__ring_add(f, &k->h);
}

/* Unregisters a done-callback that has not been scheduled yet (or cancels
 * it if it was scheduled but has not run). Returns 1 if it was removed. */
CORO_API int coro_future_remove_done_callback(coro_loop *L, coro_future *f,
                                              coro_call *k)
{
    if (k->h.flags & CORO__C_RING) {
        k->h.flags = 0;
        return coro__ring_remove(f, &k->h);
    }
    return coro_call_cancel(L, k);
}

/* ---------------------------------------------------------------------- */
/* Tasks                                                                   */
/* ---------------------------------------------------------------------- */

CORO_API void coro__link_init(coro__link *s)
{
    s->prev = s;
    s->next = s;
}

CORO_API void coro__link_add(coro__link *s, coro__link *n)
{
    n->next = s;
    n->prev = s->prev;
    s->prev->next = n;
    s->prev = n;
}

CORO_API void coro__link_del(coro__link *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

/* container_of through an integer: the compiler must not mistake the
 * member for a whole object (gcc's -Warray-bounds on a future that is not
 * a task's, in a branch it cannot rule out). */
#define CORO__CONTAINER(type, member, p)                                       \
    ((type *)(void *)((uintptr_t)(p) - offsetof(type, member)))

#if CORO__REGISTRY
CORO_API coro_task *coro__task_of_link(coro__link *l)
{
    return CORO__CONTAINER(coro_task, link, l);
}
#endif

CORO_API coro_task *coro__task_of_future(coro_future *f)
{
    return CORO__CONTAINER(coro_task, fut, f);
}

/* A task's future (to pass tasks where futures are expected). */
CORO_API coro_future *coro_task_future(coro_task *t)
{
    return &t->fut;
}

CORO_API int coro_task_done(const coro_task *t)
{
    return coro_future_done(&t->fut);
}

CORO_API int coro_task_cancelled(const coro_task *t)
{
    return coro_future_cancelled(&t->fut);
}

/* asyncio's Task.cancelling(): cancellation requests not yet uncancelled. */
CORO_API int coro_task_cancelling(const coro_task *t)
{
    return t->h.count;
}

/* Marks the task's error as read: it will not be reported. */
CORO_API void coro__task_retrieve(coro_task *t)
{
#if CORO__UNREAD
    if (t->h.flags & CORO__T_RETRIEVED) return;
    t->h.flags |= CORO__T_RETRIEVED;
    if (coro_future_state(&t->fut) == CORO_FUTURE_ERROR) coro__link_del(&t->link);
#else
    (void)t;
#endif
}

/* The task's outcome as an rc: its result (>= 0), its error, CORO_ECANCELED,
 * or CORO_EAGAIN while pending. Reading it counts as retrieving the error. */
CORO_API int coro_task_result(coro_task *t)
{
    unsigned st = coro_future_state(&t->fut);
    if (st == CORO_FUTURE_PENDING) return CORO_EAGAIN;
    coro__task_retrieve(t);
    return (int)t->fut.value;
}

/* The task's error (0 if it has a result), CORO_ECANCELED, or CORO_EAGAIN. */
CORO_API int coro_task_error(coro_task *t)
{
    int rc = coro_task_result(t);
    return rc < 0 ? rc : 0;
}

/* The root frame of a pending task (walks up from its current leaf). */
CORO_API coro_frame *coro__task_root(const coro_loop *L, const coro_task *t)
{
    coro_frame *f = (coro_frame *)t->fut.value;
    if (L && L->ctx && L->ctx->task == t) f = L->ctx->self;
    while (f && !(f->info & CORO__F_ROOT)) f = f->parent;
    return f;
}

/* The task's name (NULL if none was set). The string is not copied. */
CORO_API const char *coro_task_name(const coro_loop *L, const coro_task *t)
{
    if (coro_task_done(t)) return (const char *)t->h.aux;
    coro_frame *root = coro__task_root(L, t);
    return root ? root->name : NULL;
}

CORO_API void coro_task_set_name(const coro_loop *L, coro_task *t,
                                 const char *name)
{
    if (coro_task_done(t)) {
        t->h.aux = (void *)(uintptr_t)name;
        return;
    }
    coro_frame *root = coro__task_root(L, t);
    if (root) root->name = name;
}

#if CORO__DIAG
CORO_API void coro__report(coro_loop *L, int kind, const char *message,
                           coro_task *t, int error, coro_time duration)
{
    coro_report r;
    r.kind = kind;
    r.message = message;
    r.task = t;
    r.error = error;
    r.duration = duration;
    if (L->report) L->report(L, &r, L->report_arg);
}

#if CORO__UNREAD
/* Reports a failed task nobody looked at, and forgets it. */
CORO__COLD_API void coro__report_unretrieved(coro_loop *L, coro__link *l)
{
    coro_task *t = coro__task_of_link(l);
    coro__report(L, CORO_REPORT_UNRETRIEVED, "Task exception was never retrieved",
                 t, (int)t->fut.value, 0);
    coro__link_del(l);
}
#endif
#else
#define coro__report(L, kind, message, t, error, duration) ((void)(L))
#endif

/* Creates a task running `root` (from its init function) on L; its first
 * step runs after the ready handles already queued. The task record is
 * caller-owned: see struct coro_task for when it may be reused.
 * Returns 0, or CORO_EINVAL if the loop is closed. */
CORO_API int coro_spawn(coro_loop *L, coro_task *t, coro_frame *root)
{
    if (L->flags & CORO__L_CLOSED) return CORO_EINVAL;
#if CORO__UNREAD
    for (coro__link *l = L->unretrieved.next; l != &L->unretrieved; l = l->next)
        if (l == &t->link) { /* reused without reading its error */
            coro__report_unretrieved(L, l);
            break;
        }
#endif
    coro__memset(t, 0, sizeof *t);
    t->h.kind = CORO__H_TASK;
    t->fut.cbs = CORO__FK_TASK;
    t->fut.value = (intptr_t)root;
    root->info |= CORO__F_ROOT;
    root->name = NULL;
#if CORO__REGISTRY
    coro__link_add(&L->tasks, &t->link);
#endif
    L->ntasks++;
    coro__schedule(L, &t->h);
    return 0;
}

/* coro_spawn, then names the task. */
CORO_API int coro_spawn_named(coro_loop *L, coro_task *t, coro_frame *root,
                              const char *name)
{
    int rc = coro_spawn(L, t, root);
    if (rc == 0) root->name = name;
    return rc;
}

/* Registers a done-callback on a task (see coro_future_add_done_callback). */
CORO_API void coro_task_add_done_callback(coro_loop *L, coro_task *t,
                                          coro_call *k, coro_callback *fn,
                                          void *arg)
{
    coro_future_add_done_callback(L, &t->fut, k, fn, arg);
}

CORO_API int coro_task_remove_done_callback(coro_loop *L, coro_task *t,
                                            coro_call *k)
{
    return coro_future_remove_done_callback(L, &t->fut, k);
}

CORO_API int coro_task_cancel(coro_loop *L, coro_task *t);

/* Cancels whatever a future is (task, or plain future). */
CORO_API int coro__cancel_future(coro_loop *L, coro_future *f)
{
    if (f->cbs & CORO__FK_TASK) return coro_task_cancel(L, coro__task_of_future(f));
    return coro_future_cancel(L, f);
}

/* Forwards a cancellation to what a blocked task waits on; 1 if accepted. */
CORO_API int coro__cancel_wait(coro_loop *L, coro_task *t, unsigned w)
{
    switch (w) {
    case CORO__W_HOP: /* its timer fired; the wake-up had not run */
    case CORO__W_SLEEP:
        if (w == CORO__W_HOP)
            coro__q_unlink(&t->h);
        else
            coro__timer_remove(L, &t->h);
        t->h.flags = (uint8_t)((t->h.flags & ~CORO__T_WAIT) | CORO__W_WOKEN);
        coro__schedule(L, &t->h);
        return 1;
    case CORO__W_FUTURE:
        return coro_future_cancel(L, (coro_future *)t->h.aux);
    case CORO__W_CUSTOM: {
        coro_waitable *w2 = (coro_waitable *)t->h.aux;
        return w2->cancel(L, w2);
    }
    default:
        return 0;
    }
}

/* Follows a chain of tasks awaiting tasks from t, clearing the marks that
 * coro_task_cancel set on the way down. */
CORO_API void coro__unmark_chain(coro_task *t)
{
    while (t->h.flags & CORO__T_MARK) {
        t->h.flags &= (uint8_t)~CORO__T_MARK;
        if ((t->h.flags & CORO__T_WAIT) != CORO__W_TASK) break;
        t = (coro_task *)t->h.aux;
    }
}

#if CORO__DIAG
CORO__COLD_API void coro__report_cycle(coro_loop *L, coro_task *t)
{
    coro__report(L, CORO_REPORT_CANCEL_CYCLE,
                 "cancellation forwarded around an await cycle", t, 0, 0);
}
#else
#define coro__report_cycle(L, t) ((void)0)
#endif

/* Requests the cancellation of a task (asyncio's Task.cancel): increments
 * its cancelling() count and forwards the request to what it awaits; if
 * that cannot take it, CORO_ECANCELED is delivered at the task's next step.
 * Returns 1, or 0 if the task is already done. Tasks awaiting each other in
 * a cycle (asyncio recurses without end) stop the forwarding with a
 * CORO_REPORT_CANCEL_CYCLE report. */
CORO_API int coro_task_cancel(coro_loop *L, coro_task *t)
{
    if (coro_task_done(t)) return 0;
    coro_task *start = t;
    for (;;) {
        if (t->h.flags & CORO__T_MARK) { /* its cancellation is in progress */
            coro__report_cycle(L, t);
            break;
        }
        t->h.flags |= CORO__T_MARK;
        if (t->h.count < 0xFFFFu) t->h.count++;
        unsigned w = t->h.flags & CORO__T_WAIT;
        if (w == CORO__W_TASK) { /* forward down the await chain, no recursion */
            coro_task *inner = (coro_task *)t->h.aux;
            if (!coro_task_done(inner)) {
                t = inner;
                continue;
            }
        } else if (coro__cancel_wait(L, t, w)) {
            break;
        }
        t->h.flags |= CORO__T_MUST_CANCEL;
        break;
    }
    coro__unmark_chain(start);
    return 1;
}

/* asyncio's Task.uncancel(): decrements the count (not below 0); at 0 a
 * pending cancellation that was not delivered yet is dropped. Returns the
 * new count. */
CORO_API int coro_task_uncancel(coro_task *t)
{
    if (t->h.count > 0) t->h.count--;
    if (t->h.count == 0) t->h.flags &= (uint8_t)~CORO__T_MUST_CANCEL;
    return t->h.count;
}

/* The outcome a waking task sees. */
CORO_API int coro__wake_rc(coro_task *t)
{
    unsigned w = t->h.flags & CORO__T_WAIT;
    void *on = t->h.aux;
    int rc = 0, keep = 0;
    t->h.flags &= (uint8_t)~CORO__T_WAIT;
    t->h.aux = NULL;
    switch (w) {
    case CORO__W_FUTURE: rc = coro_future_rc((coro_future *)on); break;
    case CORO__W_TASK: rc = coro_task_result((coro_task *)on); break;
    case CORO__W_CUSTOM: {
        coro_waitable *cw = (coro_waitable *)on;
        rc = coro__waitable_rc(cw);
        keep = rc >= 0 && (cw->flags & CORO_WAITABLE_KEEP_RESULT);
        break;
    }
    case CORO__W_WOKEN: rc = CORO_ECANCELED; break;
    case CORO__W_SELF: rc = CORO_EDEADLK; break;
    default: break;
    }
    if ((t->h.flags & CORO__T_MUST_CANCEL) && !keep) {
        t->h.flags &= (uint8_t)~CORO__T_MUST_CANCEL;
        rc = CORO_ECANCELED;
    }
    return rc;
}

#if CORO__REGISTRY
CORO_API void coro__shutdown_one_done(coro_loop *L);
#endif

/* The root frame finished: settle the task and schedule its callbacks. */
CORO_API void coro__task_finish(coro_loop *L, coro_task *t, coro_frame *root)
{
    int rc = root->rc;
    unsigned st;
    /* asyncio: a cancellation requested during the last step turns a
     * return into cancellation, but an error escaping stays the error. */
    if (rc == CORO_ECANCELED || (rc >= 0 && (t->h.flags & CORO__T_MUST_CANCEL))) {
        st = CORO_FUTURE_CANCELLED;
        rc = CORO_ECANCELED;
    } else {
        st = rc < 0 ? CORO_FUTURE_ERROR : CORO_FUTURE_RESULT;
    }
    t->h.flags &= (uint8_t)~(CORO__T_MUST_CANCEL | CORO__T_WAIT);
    t->h.aux = (void *)(uintptr_t)root->name;
    L->ntasks--;
#if CORO__REGISTRY
    coro__link_del(&t->link);
#endif
#if CORO__UNREAD
    if (st == CORO_FUTURE_ERROR && !(t->h.flags & CORO__T_RETRIEVED))
        coro__link_add(&L->unretrieved, &t->link);
#endif
    coro__future_finish(L, &t->fut, st, rc);
#if CORO__REGISTRY
    if (t->h.flags & CORO__T_SHUTDOWN) {
        t->h.flags &= (uint8_t)~CORO__T_SHUTDOWN;
        if (st == CORO_FUTURE_ERROR) {
            coro__report(L, CORO_REPORT_SHUTDOWN_ERROR,
                         "unhandled exception during coro_run() shutdown", t,
                         rc, 0);
            coro__task_retrieve(t);
        }
        coro__shutdown_one_done(L);
    }
#endif
}

/* One step: resume the leaf frame with what woke the task. */
CORO_API void coro__task_step(coro_loop *L, coro_task *t)
{
    int rc = 0; /* a yield waits on nothing: 0, unless cancelled */
    if (t->h.flags & (CORO__T_WAIT | CORO__T_MUST_CANCEL)) {
        if ((t->h.flags & CORO__T_WAIT) == CORO__W_HOP) {
            /* The sleep timer fired last iteration: like asyncio's timer
             * callback completing the sleep future, re-queue the wake-up. */
            t->h.flags &= (uint8_t)~CORO__T_WAIT;
            coro__schedule(L, &t->h);
            return;
        }
        rc = coro__wake_rc(t);
    }
    coro_ctx c; /* c.child and c.rc are set before they are read */
    c.loop = L;
    c.task = t;
    c.self = (coro_frame *)t->fut.value;
    L->ctx = &c;
    int finished = coro__drive(&c, c.self, rc);
    L->ctx = NULL;
    if (finished)
        coro__task_finish(L, t, c.self);
    else
        t->fut.value = (intptr_t)c.self;
}

/* ---------------------------------------------------------------------- */
/* Awaiting, from inside a body                                            */
/* ---------------------------------------------------------------------- */

/* Internal: the running task; misuse outside a task traps. */
CORO_API coro_task *coro__running(coro_ctx *c)
{
    if (!c->task) CORO_TRAP();
    return c->task;
}

CORO_API void coro__yield(coro_ctx *c)
{
    coro__schedule(c->loop, &coro__running(c)->h);
}

CORO_API void coro__sleep(coro_ctx *c, coro_time delay)
{
    coro_task *t = coro__running(c);
    coro_loop *L = c->loop;
    if (delay <= 0) {
        coro__schedule(L, &t->h);
    } else if (t->h.flags & CORO__T_MUST_CANCEL) {
        /* asyncio cancels the new sleep future at once */
        t->h.flags &= (uint8_t)~CORO__T_MUST_CANCEL;
        t->h.flags = (uint8_t)((t->h.flags & ~CORO__T_WAIT) | CORO__W_WOKEN);
        coro__schedule(L, &t->h);
    } else {
        t->h.when = coro__add_time(coro_loop_time(L), delay);
        t->h.flags = (uint8_t)((t->h.flags & ~CORO__T_WAIT) | CORO__W_SLEEP);
        coro__timer_insert(L, &t->h);
    }
}

/* Parks the running task on a pending future (kind: CORO__W_*). */
CORO_API void coro__park(coro_ctx *c, coro_future *f, unsigned kind, void *on)
{
    coro_task *t = coro__running(c);
    coro__ring_add(f, &t->h);
    t->h.aux = on;
    t->h.flags = (uint8_t)((t->h.flags & ~CORO__T_WAIT) | kind);
    if (t->h.flags & CORO__T_MUST_CANCEL) {
        int took = kind == CORO__W_TASK ? coro_task_cancel(c->loop, (coro_task *)on)
                                        : coro__cancel_wait(c->loop, t, kind);
        if (took) t->h.flags &= (uint8_t)~CORO__T_MUST_CANCEL;
    }
}

/* Returns 1 if the task parked, 0 if the await is over (c->rc set). */
CORO_API int coro__await_task(coro_ctx *c, coro_task *other)
{
    coro_task *t = coro__running(c);
    if (coro_task_done(other)) {
        c->rc = coro_task_result(other);
        return 0;
    }
    if (other->h.flags & CORO__T_POISONED) {
        /* CPython 3.13: a task that awaited itself keeps its future's
         * "blocking" flag set, and every later await of it, while it is
         * pending, fails at once ("await wasn't used with future"). */
        c->rc = CORO_EDEADLK;
        return 0;
    }
    if (other == t) { /* asyncio: RuntimeError on the next step */
        t->h.flags = (uint8_t)((t->h.flags & ~CORO__T_WAIT) | CORO__W_SELF | CORO__T_POISONED);
        coro__schedule(c->loop, &t->h);
        return 1;
    }
    coro__park(c, &other->fut, CORO__W_TASK, other);
    return 1;
}

CORO_API int coro__await_future(coro_ctx *c, coro_future *f)
{
    if (f->cbs & CORO__FK_TASK) return coro__await_task(c, coro__task_of_future(f));
    if (coro_future_done(f)) {
        c->rc = coro_future_rc(f);
        return 0;
    }
    coro__park(c, f, CORO__W_FUTURE, f);
    return 1;
}

CORO_API int coro__await_waitable(coro_ctx *c, coro_waitable *w)
{
    if (coro_future_done(&w->fut)) {
        c->rc = coro__waitable_rc(w);
        return 0;
    }
    coro__park(c, &w->fut, CORO__W_CUSTOM, w);
    return 1;
}

/* The library's own child coroutines are small and written by hand,
 * without CORO_BEGIN: a body's frame state is 0 on its first call, then the
 * phase (1, 2, ...) it suspended in, and c->rc is the outcome of what it
 * awaited. These helpers end a body, or suspend it until `phase`. */
CORO_API int coro__op_done(coro_ctx *c, int rc)
{
    c->self->rc = rc;
    c->self->state = CORO__S_DONE;
    return CORO__R_DONE;
}

/* Parks on a pending future f. */
CORO_API int coro__op_park(coro_ctx *c, coro_future *f, unsigned phase)
{
    c->self->state = (uint16_t)phase;
    coro__park(c, f, CORO__W_FUTURE, f);
    return CORO__R_SUSPEND;
}

/* Awaits any future (a task's too); if it is already done, the body runs
 * its `phase` at once. */
CORO_API int coro__op_await(coro_ctx *c, coro_future *f, unsigned phase)
{
    c->self->state = (uint16_t)phase;
    return coro__await_future(c, f) ? CORO__R_SUSPEND : c->self->fn(c);
}

/* Runs a child frame now; resumes in `phase` with its result. */
CORO_API int coro__op_call(coro_ctx *c, coro_frame *child, unsigned phase)
{
    c->self->state = (uint16_t)phase;
    c->child = child;
    return CORO__R_CALL;
}

/* asyncio.sleep(0): lets every other ready handle run once. */
#define CORO_YIELD(c)                                                          \
    CORO__POINT(c, CORO__ID(), coro__yield(c); return CORO__R_SUSPEND)

/* asyncio.sleep(delay): delay <= 0 is CORO_YIELD. c->rc: 0 or ECANCELED. */
#define CORO_SLEEP(c, delay)                                                   \
    CORO__POINT(c, CORO__ID(), coro__sleep(c, delay); return CORO__R_SUSPEND)

/* Awaits a task: c->rc is its result, its error, or CORO_ECANCELED.
 * Cancelling the awaiting task cancels this one too. */
#define CORO_AWAIT_TASK(c, t)                                                  \
    CORO__POINT(c, CORO__ID(),                                                 \
                if (coro__await_task(c, t)) return CORO__R_SUSPEND)

/* Awaits a future (a task's too): c->rc is 0, its error, or
 * CORO_ECANCELED; read the value with coro_future_value(). Cancelling the
 * awaiting task cancels the future. */
#define CORO_AWAIT_FUTURE(c, f)                                                \
    CORO__POINT(c, CORO__ID(),                                                 \
                if (coro__await_future(c, f)) return CORO__R_SUSPEND)

/* Awaits a coro_waitable (its cancel hook receives cancellations). */
#define CORO_AWAIT_WAITABLE(c, w)                                              \
    CORO__POINT(c, CORO__ID(),                                                 \
                if (coro__await_waitable(c, w)) return CORO__R_SUSPEND)

/* ---------------------------------------------------------------------- */
/* Backends                                                                */
/* ---------------------------------------------------------------------- */

/* The virtual clock: time moves only when the loop is idle, straight to
 * the next deadline, so runs are deterministic (tests, simulations). */
typedef struct coro_virtual {
    coro_backend base;
    coro_time now;
} coro_virtual;

CORO_API coro_time coro__virtual_now(coro_backend *b)
{
    return ((coro_virtual *)(void *)b)->now;
}

CORO_API int coro__virtual_poll(coro_backend *b, coro_loop *L, coro_time timeout)
{
    (void)L;
    if (timeout < 0) return CORO_EDEADLK;
    coro_virtual *v = (coro_virtual *)(void *)b;
    v->now = coro__add_time(v->now, timeout);
    return 0;
}

/* Prepares a virtual clock starting at `start` ns; pass &v->base to
 * coro_loop_init. */
CORO_API coro_backend *coro_virtual_init(coro_virtual *v, coro_time start)
{
    v->base.now = coro__virtual_now;
    v->base.poll = coro__virtual_poll;
    v->base.close = NULL;
    v->base.wake = NULL;
    v->base.quiet = 1;
    v->now = start;
    return &v->base;
}

/* Moves virtual time forward without running anything (a blocking call). */
CORO_API void coro_virtual_advance(coro_virtual *v, coro_time delta)
{
    if (delta > 0) v->now = coro__add_time(v->now, delta);
}

/* A user clock for embedded targets: `now` reads the clock, `idle` waits
 * (e.g. WFI) until `timeout` ns pass or an interrupt wakes it; `idle`
 * returns 0, or CORO_EDEADLK if nothing can ever wake the loop. */
typedef struct coro_user_clock {
    coro_backend base;
    coro_time (*now)(void *arg);
    int (*idle)(void *arg, coro_time timeout);
    void *arg;
} coro_user_clock;

CORO_API coro_time coro__user_now(coro_backend *b)
{
    coro_user_clock *u = (coro_user_clock *)(void *)b;
    return u->now(u->arg);
}

CORO_API int coro__user_poll(coro_backend *b, coro_loop *L, coro_time timeout)
{
    coro_user_clock *u = (coro_user_clock *)(void *)b;
    (void)L;
    if (timeout == 0) return 0;
    if (!u->idle) return timeout < 0 ? CORO_EDEADLK : 0;
    return u->idle(u->arg, timeout);
}

CORO_API coro_backend *coro_user_clock_init(coro_user_clock *u,
                                            coro_time (*now)(void *),
                                            int (*idle)(void *, coro_time),
                                            void *arg)
{
    u->base.now = coro__user_now;
    u->base.poll = coro__user_poll;
    u->base.close = NULL;
    u->base.wake = NULL;
    u->base.quiet = 1;
    u->now = now;
    u->idle = idle;
    u->arg = arg;
    return &u->base;
}

#if CORO_POSIX
/* The POSIX backend: CLOCK_MONOTONIC and nanosleep; no I/O (coro_io.h
 * brings io_uring and epoll). */
CORO_API coro_time coro__posix_now(coro_backend *b)
{
    struct timespec ts;
    (void)b;
    clock_gettime(CLOCK_MONOTONIC, &ts);
#ifdef CORO_TIME32
    return (coro_time)(uint32_t)((uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
#else
    return (int64_t)ts.tv_sec * 1000000000 + (int64_t)ts.tv_nsec;
#endif
}

CORO_API int coro__posix_poll(coro_backend *b, coro_loop *L, coro_time timeout)
{
    struct timespec ts;
    (void)b;
    if (timeout < 0 && !L->signals) return CORO_EDEADLK;
    if (timeout < 0 || timeout > CORO_MS(1)) {
        /* a raise from a signal handler interrupts nanosleep; one from
         * another thread is seen within a millisecond */
        if (L->signals) timeout = CORO_MS(1);
    }
    if (timeout == 0) return 0;
    ts.tv_sec = (time_t)(timeout / CORO_S(1));
    ts.tv_nsec = (long)(timeout % CORO_S(1)) * (1000000000 / CORO_S(1));
    nanosleep(&ts, NULL); /* an early (EINTR) return just re-polls */
    return 0;
}

CORO_API void coro__posix_backend(coro_backend *b)
{
    b->now = coro__posix_now;
    b->poll = coro__posix_poll;
    b->close = NULL;
    b->wake = NULL;
    b->quiet = 1;
}

#if CORO__DIAG
/* The default report handler: one line on stderr. */
CORO_API void coro__report_stderr(coro_loop *L, const coro_report *r, void *arg)
{
    const char *name = r->task ? coro_task_name(L, r->task) : NULL;
    (void)arg;
    fprintf(stderr, "coro: %s", r->message);
    if (r->task) fprintf(stderr, " (task %s @%p)", name ? name : "?", (void *)r->task);
    if (r->error) fprintf(stderr, ": error %d (%s)", r->error, coro_strerror(r->error));
    if (r->kind == CORO_REPORT_SLOW)
        fprintf(stderr, ": took %.3f ms", (double)r->duration / 1e6);
    fputc('\n', stderr);
}
#endif /* CORO__DIAG */
#endif

/* ---------------------------------------------------------------------- */
/* The loop                                                                */
/* ---------------------------------------------------------------------- */

/* Initialises a loop on backend b (NULL: the POSIX monotonic clock; a
 * freestanding build must pass one). Returns 0 or CORO_EINVAL. */
CORO_API int coro_loop_init(coro_loop *L, coro_backend *b)
{
    coro__memset(L, 0, sizeof *L);
    coro__q_init(&L->ready);
#if CORO__REGISTRY
    coro__link_init(&L->tasks);
#endif
#if CORO__UNREAD
    coro__link_init(&L->unretrieved);
#endif
#if CORO__DIAG
#if CORO_POSIX
    L->report = coro__report_stderr;
#endif
#endif
#if CORO_POSIX
    if (!b) {
        coro__posix_backend(&L->builtin);
        b = &L->builtin;
    }
#endif
    if (!b) return CORO_EINVAL;
    L->backend = b;
    return 0;
}

/* Sets the diagnostics handler (NULL: silence). */
CORO_API void coro_loop_set_report(coro_loop *L, coro_report_fn *fn, void *arg)
{
#if CORO__DIAG
    L->report = fn;
    L->report_arg = arg;
#else
    (void)L, (void)fn, (void)arg;
#endif
}

/* Reports every step or callback that runs for `threshold` ns or more
 * (asyncio's slow_callback_duration); 0 turns it off. */
CORO_API void coro_loop_set_slow_threshold(coro_loop *L, coro_time threshold)
{
#if CORO__DIAG
    L->slow = threshold;
#else
    (void)L, (void)threshold;
#endif
}

/* asyncio's loop.stop(): the current iteration finishes, then the run
 * returns. Before a run, the run does one non-blocking iteration. */
CORO_API void coro_loop_stop(coro_loop *L)
{
    L->flags |= CORO__L_STOPPING;
}

CORO_API int coro_loop_is_running(const coro_loop *L)
{
    return (L->flags & CORO__L_RUNNING) != 0;
}

CORO_API int coro_loop_is_closed(const coro_loop *L)
{
    return (L->flags & CORO__L_CLOSED) != 0;
}

#if CORO__REGISTRY
/* Unfinished tasks, in creation order: for (t = first; t; t = next(t)). */
CORO_API coro_task *coro_loop_first_task(coro_loop *L)
{
    return L->tasks.next == &L->tasks ? NULL : coro__task_of_link(L->tasks.next);
}

CORO_API coro_task *coro_loop_next_task(coro_loop *L, coro_task *t)
{
    return t->link.next == &L->tasks ? NULL : coro__task_of_link(t->link.next);
}
#endif

CORO_API unsigned coro_loop_task_count(const coro_loop *L)
{
    return L->ntasks;
}

/* Moves the due timers to the ready queue, earliest first. */
CORO_API void coro__fire_timers(coro_loop *L)
{
    if (!L->timers) return;
    coro_time now = coro_loop_time(L);
    coro_handle *h;
    while ((h = coro__timer_first(L)) != NULL && !coro__before(now, h->when)) {
        coro__timer_remove(L, h);
        if (h->kind == CORO__H_TASK)
            h->flags = (uint8_t)((h->flags & ~CORO__T_WAIT) | CORO__W_HOP);
        else
            h->flags = CORO__C_QUEUED;
        coro__schedule(L, h);
    }
}

CORO_API void coro__dispatch(coro_loop *L, coro_handle *h)
{
    if (h->kind == CORO__H_TASK) {
        coro__task_step(L, (coro_task *)(void *)h);
    } else {
        coro_call *k = (coro_call *)(void *)h;
        k->h.flags = 0;
        k->fn(L, k->arg);
    }
}

#if CORO__DIAG
CORO_API void coro__dispatch_timed(coro_loop *L, coro_handle *h)
{
    coro_task *t = h->kind == CORO__H_TASK ? (coro_task *)(void *)h : NULL;
    coro_time t0 = coro_loop_time(L);
    coro__dispatch(L, h);
    coro_time dt = coro__time_diff(coro_loop_time(L), t0);
    if (dt >= L->slow)
        coro__report(L, CORO_REPORT_SLOW,
                     t ? "Executing task step" : "Executing callback", t, 0, dt);
}
#endif

/* ---------------------------------------------------------------------- */
/* Signals: the one entry point for interrupt handlers                     */
/* ---------------------------------------------------------------------- */

/* A signal lets an interrupt handler (or another thread) wake the loop:
 * coro_signal_raise() only sets a flag, atomically, and calls the
 * backend's wake hook if it has one; at its next iteration the loop sees
 * the flag and schedules fn(L, arg) on the ready queue, where it may do
 * anything (set an event, put an item, complete a future). Raises that
 * happen before the callback runs are coalesced into one call.
 * An idle hook that sleeps (WFI) should mask interrupts, check
 * coro_loop_signal_pending(), and only then sleep, so that no raise is
 * lost between the check and the sleep. */
typedef struct coro_signal coro_signal;
struct coro_signal {
    coro_call call;
    coro_signal *next;
    coro_loop *loop;
    volatile uint32_t raised;
};

/* The builtins where the target has an atomic exchange. Without one
 * (Cortex-M0, RV32 without the A extension, where GCC would call
 * libatomic's __atomic_exchange_4), a plain read and clear: on one core, a
 * raise landing between the two happens before the callback runs, and such
 * raises are coalesced into that run anyway. */
#if (defined(__GNUC__) || defined(__clang__)) && defined(__GCC_HAVE_SYNC_COMPARE_AND_SWAP_4)
#define CORO__XCHG(p, v) __atomic_exchange_n(p, v, __ATOMIC_ACQ_REL)
#define CORO__STORE(p, v) __atomic_store_n(p, v, __ATOMIC_RELEASE)
#define CORO__LOAD(p) __atomic_load_n(p, __ATOMIC_ACQUIRE)
#else /* single core, word stores atomic: enough for an interrupt handler */
#define CORO__XCHG(p, v) coro__xchg_plain(p, v)
#define CORO__STORE(p, v) (*(p) = (v))
#define CORO__LOAD(p) (*(p))
CORO_API uint32_t coro__xchg_plain(volatile uint32_t *p, uint32_t v)
{
    uint32_t old = *p;
    *p = v;
    return old;
}
#endif

/* Registers a signal with L (from the loop's thread). */
CORO_API void coro_signal_init(coro_loop *L, coro_signal *s, coro_callback *fn,
                               void *arg)
{
    coro__call_prep(&s->call, fn, arg);
    s->loop = L;
    s->raised = 0;
    s->next = L->signals;
    L->signals = s;
}

/* Unregisters it (from the loop's thread); a pending callback is dropped. */
CORO_API void coro_signal_remove(coro_loop *L, coro_signal *s)
{
    for (coro_signal **p = &L->signals; *p; p = &(*p)->next)
        if (*p == s) {
            *p = s->next;
            break;
        }
    coro_call_cancel(L, &s->call);
}

/* Raises the signal. The only call allowed from an interrupt handler or
 * another thread: lock-free, never blocks, touches nothing but the flag
 * and the backend's wake hook. */
CORO_API void coro_signal_raise(coro_signal *s)
{
    CORO__STORE(&s->raised, 1u);
    coro_backend *b = s->loop->backend;
    if (b->wake) b->wake(b);
}

/* Is any registered signal raised and not yet seen by the loop? */
CORO_API int coro_loop_signal_pending(const coro_loop *L)
{
    for (const coro_signal *s = L->signals; s; s = s->next)
        if (CORO__LOAD(&s->raised)) return 1;
    return 0;
}

/* Raised signals become scheduled callbacks: at each poll, and before
 * coro_call_soon queues anything (T117). */
CORO_API void coro__collect_signals(coro_loop *L)
{
    for (coro_signal *s = L->signals; s; s = s->next)
        if (CORO__LOAD(&s->raised) && CORO__XCHG(&s->raised, 0u) &&
            !(s->call.h.flags & CORO__C_QUEUED))
            coro__call_queue(L, &s->call);
}

CORO__COLD_API void coro__collect_signals_cold(coro_loop *L)
{
    coro__collect_signals(L);
}

/* How long the poll may wait: asyncio's _run_once rule. */
CORO_API coro_time coro__poll_timeout(coro_loop *L)
{
    if (!coro__q_empty(&L->ready) || (L->flags & CORO__L_STOPPING)) return 0;
    if (L->signals && coro_loop_signal_pending(L)) return 0;
    coro_handle *first = coro__timer_first(L);
    if (!first) return -1;
    coro_time d = coro__time_diff(first->when, coro_loop_time(L));
    if (d < 0) return 0;
    return d > CORO_S(86400) ? CORO_S(86400) : d;
}

/* One iteration: poll, fire due timers, run what was ready (R-LOOP-2).
 * Returns 0, or CORO_EDEADLK when nothing is ready, no timer is armed and
 * the backend can never deliver an event. */
CORO_API int coro_loop_run_once(coro_loop *L)
{
    coro_time timeout = coro__poll_timeout(L);
    if (timeout != 0 || !L->backend->quiet) {
        int rc = L->backend->poll(L->backend, L, timeout);
        if (L->signals) coro__collect_signals(L);
        if (rc < 0 && coro__q_empty(&L->ready) && !L->timers) {
            L->flags |= CORO__L_DEADLOCK;
            return rc;
        }
    } else if (L->signals) {
        coro__collect_signals(L);
    }
    coro__fire_timers(L);
    coro_handle batch;
    coro__q_take(&batch, &L->ready);
#if CORO__DIAG
    if (L->slow) {
        while (!coro__q_empty(&batch)) coro__dispatch_timed(L, coro__q_pop(&batch));
        return 0;
    }
#endif
    while (!coro__q_empty(&batch)) coro__dispatch(L, coro__q_pop(&batch));
    return 0;
}

/* asyncio's run_forever: iterates until coro_loop_stop(). Returns 0,
 * CORO_EDEADLK, CORO_EBUSY (already running) or CORO_EINVAL (closed). */
CORO_API int coro_loop_run_forever(coro_loop *L)
{
    if (L->flags & CORO__L_CLOSED) return CORO_EINVAL;
    if (L->flags & CORO__L_RUNNING) return CORO_EBUSY;
    int rc;
    L->flags |= CORO__L_RUNNING;
    do {
        rc = coro_loop_run_once(L);
    } while (rc == 0 && !(L->flags & CORO__L_STOPPING));
    L->flags &= (uint8_t)~(CORO__L_RUNNING | CORO__L_STOPPING);
    return rc;
}

CORO_API void coro__stop_cb(coro_loop *L, void *arg)
{
    (void)arg;
    coro_loop_stop(L);
}

/* Runs until f is done (asyncio's run_until_complete: a done-callback stops
 * the loop). Returns f's outcome as an rc (for a task: its result), or
 * CORO_EINTR if the loop was stopped first, or a run_forever error. */
CORO_API int coro_loop_run_until(coro_loop *L, coro_future *f)
{
    coro_call stopper;
    coro_future_add_done_callback(L, f, &stopper, coro__stop_cb, NULL);
    int rc = coro_loop_run_forever(L);
    coro_future_remove_done_callback(L, f, &stopper);
    if (rc < 0) return rc;
    if (!coro_future_done(f)) return CORO_EINTR;
    if (f->cbs & CORO__FK_TASK) return coro_task_result(coro__task_of_future(f));
    return coro_future_rc(f);
}

/* Runs until the (spawned) task is done; returns its result or error. */
CORO_API int coro_loop_run_until_complete(coro_loop *L, coro_task *t)
{
    return coro_loop_run_until(L, &t->fut);
}

#if CORO__REGISTRY
struct coro__shutdown {
    coro_call call;
    coro_future gate;
};

/* The last task coro_run was waiting for ended: like asyncio's gather
 * callback, complete the gate on the next pass. */
CORO_API void coro__shutdown_gate(coro_loop *L, void *arg)
{
    struct coro__shutdown *s = (struct coro__shutdown *)arg;
    coro_future_set_result(L, &s->gate, 0);
}

CORO_API void coro__shutdown_one_done(coro_loop *L)
{
    if (--L->shutdown_left == 0 && L->shutdown_call) {
        coro_call *k = L->shutdown_call;
        coro_call_soon(L, k, k->fn, k->arg);
    }
}

/* Cancels every unfinished task in creation order and runs until they have
 * all finished (asyncio.run's _cancel_all_tasks). */
CORO_API int coro__cancel_all(coro_loop *L)
{
    struct coro__shutdown s;
    unsigned n = 0;
    for (coro__link *l = L->tasks.next; l != &L->tasks; l = l->next) {
        coro__task_of_link(l)->h.flags |= CORO__T_SHUTDOWN;
        n++;
    }
    if (n == 0) return 0;
    coro__call_prep(&s.call, coro__shutdown_gate, &s);
    coro_future_init(&s.gate);
    L->shutdown_left = n;
    L->shutdown_call = &s.call;
    for (coro__link *l = L->tasks.next; l != &L->tasks;) {
        coro_task *t = coro__task_of_link(l);
        l = l->next; /* cancel never finishes a task at once, but be safe */
        if (t->h.flags & CORO__T_SHUTDOWN) coro_task_cancel(L, t);
    }
    int rc = coro_loop_run_until(L, &s.gate);
    if (rc < 0) coro_call_cancel(L, &s.call);
    L->shutdown_call = NULL;
    for (coro__link *l = L->tasks.next; l != &L->tasks; l = l->next)
        coro__task_of_link(l)->h.flags &= (uint8_t)~CORO__T_SHUTDOWN;
    return rc;
}
#endif

/* asyncio.run: spawns `main` running `frame`, runs it to completion, then
 * cancels every unfinished task in creation order and runs until they end.
 * Returns main's result or error, or CORO_EDEADLK if the loop could make no
 * progress (tasks are then left as they are). Does not close the loop. With
 * CORO_NO_REGISTRY the leftover tasks are not cancelled. */
CORO_API int coro_run(coro_loop *L, coro_task *main, coro_frame *frame)
{
    int rc = coro_spawn(L, main, frame);
    if (rc < 0) return rc;
    rc = coro_loop_run_until_complete(L, main);
    if (!coro_task_done(main)) return rc; /* deadlock, or stopped */
#if CORO__REGISTRY
    int rc2 = coro__cancel_all(L);
    if (rc2 == CORO_EDEADLK) rc = rc2;
#endif
    return rc;
}

/* Did the last run stop because nothing could make progress? */
CORO_API int coro_loop_deadlocked(const coro_loop *L)
{
    return (L->flags & CORO__L_DEADLOCK) != 0;
}

/* Closes the loop: reports tasks still pending and errors never read,
 * drops what was scheduled, closes the backend. Idempotent. Returns 0, or
 * CORO_EBUSY while running. */
CORO_API int coro_loop_close(coro_loop *L)
{
    if (L->flags & CORO__L_RUNNING) return CORO_EBUSY;
    if (L->flags & CORO__L_CLOSED) return 0;
#if CORO__UNREAD
    for (coro__link *l = L->tasks.next; l != &L->tasks; l = l->next)
        coro__report(L, CORO_REPORT_PENDING, "Task was destroyed but it is pending!",
                     coro__task_of_link(l), 0, 0);
    while (L->unretrieved.next != &L->unretrieved)
        coro__report_unretrieved(L, L->unretrieved.next);
#endif
    coro__q_init(&L->ready);
    L->timers = NULL;
    if (L->backend->close) L->backend->close(L->backend, L);
    L->flags |= CORO__L_CLOSED;
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Helpers shared by the awaiting family                                   */
/* ---------------------------------------------------------------------- */

/* Marks a future's error as read (tasks only keep that bookkeeping). */
CORO_API void coro__retrieve(coro_future *f)
{
    if (f->cbs & CORO__FK_TASK) coro__task_retrieve(coro__task_of_future(f));
}

/* The outcome of a done child as an rc: a task's result or error, a plain
 * future's 0 or error, CORO_ECANCELED. Reading it retrieves the error. */
CORO_API int coro__outcome(coro_future *f)
{
    if (f->cbs & CORO__FK_TASK) return coro_task_result(coro__task_of_future(f));
    return coro_future_rc(f);
}

/* A callback completing the future `arg` if it is still pending (what
 * asyncio's _release_waiter does for wait, wait_for, as_completed). */
CORO_API void coro__release(coro_loop *L, void *arg)
{
    coro_future *f = (coro_future *)arg;
    if (!coro_future_done(f)) coro__future_finish(L, f, CORO_FUTURE_RESULT, 0);
}

/* Argument lists may repeat a future (asyncio collapses duplicates).
 * coro__dup(futs, i) says whether futs[i] appeared before index i. Tasks
 * are recognised in O(1) with a scratch flag set by coro__mark and cleared
 * by coro__unmark; plain futures are compared with the earlier ones. */
CORO_API int coro__dup(coro_future *const *futs, unsigned i)
{
    coro_future *f = futs[i];
    if (f->cbs & CORO__FK_TASK) {
        coro_task *t = coro__task_of_future(f);
        if (t->h.flags & CORO__T_MARK) return 1;
        t->h.flags |= CORO__T_MARK;
        return 0;
    }
    for (unsigned j = 0; j < i; j++)
        if (futs[j] == f) return 1;
    return 0;
}

CORO_API void coro__unmark(coro_future *const *futs, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (futs[i]->cbs & CORO__FK_TASK)
            coro__task_of_future(futs[i])->h.flags &= (uint8_t)~CORO__T_MARK;
}

/* gather, wait and as_completed watch n futures through one item each
 * (a caller-owned array of n): a done-callback, the future, and the owner
 * record (NULL for a repeated argument, which is watched once). */
typedef struct coro_watch_item {
    coro_call cb;
    coro_future *fut;
    void *owner;
} coro_watch_item;

/* Fills the items and registers cb(L, item) on each distinct future: on
 * those already done too when `done_too` (it then runs through the ready
 * queue), else the caller accounts for them. Returns how many futures are
 * distinct. */
CORO_API unsigned coro__watch(coro_loop *L, coro_watch_item *items, coro_future *const *futs,
                              unsigned n, void *owner, coro_callback *cb, int done_too)
{
    unsigned k = 0;
    for (unsigned i = 0; i < n; i++) {
        coro_watch_item *it = &items[i];
        it->fut = futs[i];
        it->cb.h.flags = 0;
        it->owner = coro__dup(futs, i) ? NULL : owner;
        if (!it->owner) continue;
        k++;
        if (done_too || !coro_future_done(it->fut))
            coro_future_add_done_callback(L, it->fut, &it->cb, cb, it);
    }
    coro__unmark(futs, n);
    return k;
}

/* Drops the callbacks that have not run yet; returns how many. */
CORO_API unsigned coro__unwatch(coro_loop *L, coro_watch_item *items, unsigned n)
{
    unsigned k = 0;
    for (unsigned i = 0; i < n; i++)
        if (items[i].owner && coro_future_remove_done_callback(L, items[i].fut, &items[i].cb)) k++;
    return k;
}

/* ---------------------------------------------------------------------- */
/* gather                                                                  */
/* ---------------------------------------------------------------------- */

typedef struct coro_gather coro_gather;

/* One per argument (caller-owned array, same length as the arguments). */
typedef coro_watch_item coro_gather_item;

/* asyncio.gather: a future over children (tasks' futures or plain
 * futures). Awaiting it (CORO_AWAIT_GATHER) gives c->rc = 0 when every
 * child ended, or the first child error (a cancelled child: ECANCELED) when
 * CORO_RETURN_EXCEPTIONS is not set; the other children keep running.
 * Cancelling the awaiting task cancels every child, and the gather then
 * ends with CORO_ECANCELED whatever the children did. Per-child outcomes:
 * coro_gather_result(). Once the gather is done its items are free again
 * (an early failure detaches them from the children still running). */
struct coro_gather {
    coro_waitable outer;
    coro_gather_item *items;
    uint32_t n, nfuts, nfinished;
    uint8_t flags;
};

#define CORO_RETURN_EXCEPTIONS 1u
#define CORO__G_CANCEL_REQUESTED 2u

/* The gather ended before some children: asyncio leaves its callback on
 * them, and it only marks their errors as read when they end. Do that now
 * and drop the callbacks, so the caller's items may be reused at once. */
CORO_API void coro__gather_detach(coro_loop *L, coro_gather *g)
{
    coro__unwatch(L, g->items, g->n);
    for (uint32_t i = 0; i < g->n; i++) {
        coro_future *f = g->items[i].fut;
        if (!g->items[i].owner) continue;
        if (!coro_future_done(f) && (f->cbs & CORO__FK_TASK))
            coro__task_of_future(f)->h.flags |= CORO__T_RETRIEVED;
        else
            coro__retrieve(f);
    }
}

CORO_API void coro__gather_cb(coro_loop *L, void *arg)
{
    coro_gather_item *it = (coro_gather_item *)arg;
    coro_gather *g = (coro_gather *)it->owner;
    coro_future *f = it->fut;
    unsigned st = coro_future_state(f);
    g->nfinished++;
    if (coro_future_done(&g->outer.fut)) {
        coro__retrieve(f);
        return;
    }
    if (!(g->flags & CORO_RETURN_EXCEPTIONS) &&
        (st == CORO_FUTURE_CANCELLED || st == CORO_FUTURE_ERROR)) {
        coro__future_finish(L, &g->outer.fut, CORO_FUTURE_ERROR, coro__outcome(f));
        coro__gather_detach(L, g);
        return;
    }
    if (g->nfinished < g->nfuts) return;
    for (uint32_t i = 0; i < g->n; i++) coro__retrieve(g->items[i].fut);
    if (g->flags & CORO__G_CANCEL_REQUESTED)
        coro__future_finish(L, &g->outer.fut, CORO_FUTURE_ERROR, CORO_ECANCELED);
    else
        coro__future_finish(L, &g->outer.fut, CORO_FUTURE_RESULT, 0);
}

CORO_API int coro__gather_cancel(coro_loop *L, coro_waitable *w)
{
    coro_gather *g = (coro_gather *)(void *)w;
    int took = 0;
    if (coro_future_done(&w->fut)) return 0;
    for (uint32_t i = 0; i < g->n; i++) /* repeats included, like asyncio */
        if (coro__cancel_future(L, g->items[i].fut)) took = 1;
    if (took) g->flags |= CORO__G_CANCEL_REQUESTED;
    return took;
}

/* Starts gathering n children; flags: CORO_RETURN_EXCEPTIONS or 0. The
 * children already done are accounted at once, so the gather may be done
 * before it is awaited. */
CORO_API void coro_gather_start(coro_loop *L, coro_gather *g,
                                coro_gather_item *items,
                                coro_future *const *futs, unsigned n,
                                unsigned flags)
{
    coro_future_init(&g->outer.fut);
    g->outer.cancel = coro__gather_cancel;
    g->outer.flags = 0;
    g->items = items;
    g->n = n;
    g->nfinished = 0;
    g->flags = (uint8_t)(flags & CORO_RETURN_EXCEPTIONS);
    g->nfuts = coro__watch(L, items, futs, n, g, coro__gather_cb, 0);
    if (n == 0) coro__future_finish(L, &g->outer.fut, CORO_FUTURE_RESULT, 0);
    for (unsigned i = 0; i < n; i++)
        if (items[i].owner && coro_future_done(futs[i])) coro__gather_cb(L, &items[i]);
}

/* The i-th argument's outcome: see coro__outcome (CORO_EAGAIN if pending). */
CORO_API int coro_gather_result(coro_gather *g, unsigned i)
{
    coro_future *f = g->items[i].fut;
    return coro_future_done(f) ? coro__outcome(f) : CORO_EAGAIN;
}

#define CORO_AWAIT_GATHER(c, g) CORO_AWAIT_WAITABLE(c, &(g)->outer)

/* ---------------------------------------------------------------------- */
/* wait                                                                    */
/* ---------------------------------------------------------------------- */

#define CORO_FIRST_COMPLETED 1
#define CORO_FIRST_EXCEPTION 2
#define CORO_ALL_COMPLETED 3

typedef coro_watch_item coro_wait_item;

/* asyncio.wait as a child coroutine: returns (c->rc = 0) when the
 * return_when condition holds or the timeout passes, and never cancels or
 * fails because of the futures; done/pending is then each future's own
 * coro_future_done(). CORO_EINVAL for no futures or a bad return_when,
 * CORO_ECANCELED if the awaiting task is cancelled (the futures keep
 * running). */
typedef struct coro_wait {
    coro_frame co;
    coro_future waiter;
    coro_call timer;
    coro_wait_item *items;
    coro_future *const *futs;
    coro_time timeout;
    int32_t counter;
    uint32_t n;
    int return_when;
} coro_wait;

CORO_API void coro__wait_cb(coro_loop *L, void *arg)
{
    coro_wait_item *it = (coro_wait_item *)arg;
    coro_wait *w = (coro_wait *)it->owner;
    /* asyncio's condition, short-circuit included: the error of the last
     * future is not read (so it may still be reported as never read). */
    int fire = --w->counter <= 0 || w->return_when == CORO_FIRST_COMPLETED;
    if (!fire && w->return_when == CORO_FIRST_EXCEPTION &&
        coro_future_state(it->fut) == CORO_FUTURE_ERROR) {
        coro__retrieve(it->fut);
        fire = 1;
    }
    if (!fire) return;
    coro_call_cancel(L, &w->timer);
    coro__release(L, &w->waiter);
}

CORO_API int coro__wait_fn(coro_ctx *c)
{
    coro_wait *w = CORO_SELF(c, coro_wait);
    coro_loop *L = c->loop;
    if (c->self->state) { /* released (or cancelled) */
        coro_call_cancel(L, &w->timer);
        coro__unwatch(L, w->items, w->n);
        return coro__op_done(c, c->rc);
    }
    if (w->n == 0 || w->return_when < CORO_FIRST_COMPLETED ||
        w->return_when > CORO_ALL_COMPLETED)
        return coro__op_done(c, CORO_EINVAL);
    coro_future_init(&w->waiter);
    w->timer.h.flags = 0;
    if (w->timeout != CORO_NEVER)
        coro_call_later(L, &w->timer, w->timeout, coro__release, &w->waiter);
    w->counter = (int32_t)coro__watch(L, w->items, w->futs, w->n, w, coro__wait_cb, 1);
    return coro__op_park(c, &w->waiter, 1);
}

/* Prepares a wait over n futures (items: caller array of n). timeout in ns
 * from when it is awaited, or CORO_NEVER. Await the returned frame. */
CORO_API coro_frame *coro_wait_init(coro_wait *w, coro_wait_item *items,
                                    coro_future *const *futs, unsigned n,
                                    int return_when, coro_time timeout)
{
    w->items = items;
    w->futs = futs;
    w->n = n;
    w->return_when = return_when;
    w->timeout = timeout;
    return coro_frame_init(&w->co, coro__wait_fn);
}
/* ---------------------------------------------------------------------- */
/* timeout scopes                                                          */
/* ---------------------------------------------------------------------- */

/* asyncio.timeout / timeout_at as a pair of calls around a block:
 *     coro_timeout_enter(c, &f->tm, CORO_MS(50));
 *     CORO_AWAIT(c, work(&f->w));              // gets ECANCELED on expiry
 *     rc = coro_timeout_exit(c, &f->tm, c->rc); // ... turned into ETIMEDOUT
 * Only this scope's own cancellation is converted (cancelling() count
 * back at its entry level); a cancellation from elsewhere passes through.
 * The record must be zeroed before its first use (or have been exited). */
typedef struct coro_timeout {
    coro_call call;
    coro_task *task;
    coro_time when;
    uint16_t cancelling;
    uint8_t state;
} coro_timeout;

#define CORO__TO_CREATED 0u
#define CORO__TO_ENTERED 1u
#define CORO__TO_EXPIRING 2u
#define CORO__TO_EXPIRED 3u
#define CORO__TO_EXITED 4u

CORO_API void coro__timeout_fire(coro_loop *L, void *arg)
{
    coro_timeout *t = (coro_timeout *)arg;
    coro_task_cancel(L, t->task);
    t->state = CORO__TO_EXPIRING;
}

/* Moves the deadline (CORO_NEVER: none). CORO_EINVAL unless entered and not
 * expiring. */
CORO_API int coro_timeout_reschedule(coro_loop *L, coro_timeout *t, coro_time when)
{
    if (t->state != CORO__TO_ENTERED) return CORO_EINVAL;
    t->when = when;
    coro_call_cancel(L, &t->call);
    if (when == CORO_NEVER) return 0;
    if (!coro__before(coro_loop_time(L), when))
        coro_call_soon(L, &t->call, coro__timeout_fire, t);
    else
        coro_call_at(L, &t->call, when, coro__timeout_fire, t);
    return 0;
}

/* Enters a scope with an absolute deadline. CORO_EINVAL outside a task or
 * if the scope is already entered. A deadline now or past fires on the next
 * iteration (so even a CORO_YIELD inside is cancelled). */
CORO_API int coro_timeout_enter_at(coro_ctx *c, coro_timeout *t, coro_time when)
{
    if (!c->task || t->state == CORO__TO_ENTERED || t->state == CORO__TO_EXPIRING)
        return CORO_EINVAL;
    t->call.h.flags = 0;
    t->task = c->task;
    t->cancelling = c->task->h.count;
    t->state = CORO__TO_ENTERED;
    return coro_timeout_reschedule(c->loop, t, when);
}

/* Enters a scope that expires `delay` ns from now (CORO_NEVER: never). */
CORO_API int coro_timeout_enter(coro_ctx *c, coro_timeout *t, coro_time delay)
{
    if (!c->task) return CORO_EINVAL;
    coro_time when = delay == CORO_NEVER ? CORO_NEVER
                                       : coro__add_time(coro_loop_time(c->loop), delay);
    return coro_timeout_enter_at(c, t, when);
}

/* Leaves the scope with the block's outcome rc; returns it, with this
 * scope's own expiry turned from CORO_ECANCELED into CORO_ETIMEDOUT. */
CORO_API int coro_timeout_exit(coro_ctx *c, coro_timeout *t, int rc)
{
    if (t->state != CORO__TO_ENTERED && t->state != CORO__TO_EXPIRING)
        return CORO_EINVAL;
    coro_call_cancel(c->loop, &t->call);
    if (t->state == CORO__TO_EXPIRING) {
        t->state = CORO__TO_EXPIRED;
        if (coro_task_uncancel(t->task) <= t->cancelling && rc == CORO_ECANCELED)
            return CORO_ETIMEDOUT;
    } else {
        t->state = CORO__TO_EXITED;
    }
    return rc;
}

/* Bounds one await by an absolute deadline (CORO_NEVER: none): the await
 * is cancelled when the deadline passes and c->rc becomes CORO_ETIMEDOUT.
 * tm: a coro_timeout in the frame (zeroed here).
 *     CORO_DEADLINE(c, &f->tm, when, CORO_AWAIT(c, work(&f->w)));      */
#define CORO_DEADLINE(c, tm, when, await_stmt)                                 \
    do {                                                                       \
        coro__memset(tm, 0, sizeof *(tm));                                     \
        if (coro_timeout_enter_at(c, tm, when) != 0) {                         \
            (c)->rc = CORO_EINVAL;                                             \
        } else {                                                               \
            await_stmt;                                                        \
            (c)->rc = coro_timeout_exit(c, tm, (c)->rc);                       \
        }                                                                      \
    } while (0)

/* Same with a relative delay (asyncio.timeout(delay) around one await). */
#define CORO_TIMEOUT(c, tm, delay, await_stmt)                                 \
    CORO_DEADLINE(c, tm, (delay) == CORO_NEVER                                 \
                             ? CORO_NEVER                                      \
                             : coro__add_time(coro_loop_time((c)->loop), delay), \
                  await_stmt)

/* Did the scope's deadline pass (asyncio's Timeout.expired())? */
CORO_API int coro_timeout_expired(const coro_timeout *t)
{
    return t->state == CORO__TO_EXPIRING || t->state == CORO__TO_EXPIRED;
}

CORO_API coro_time coro_timeout_when(const coro_timeout *t)
{
    return t->when;
}

/* ---------------------------------------------------------------------- */
/* wait_for                                                                */
/* ---------------------------------------------------------------------- */

/* asyncio.wait_for on a future or task, as a child coroutine. c->rc: the
 * outcome (a task's result), CORO_ETIMEDOUT, or CORO_ECANCELED. On expiry
 * the inner work is cancelled and waited for; if it swallowed the
 * cancellation its result is returned. timeout: ns, or CORO_NEVER. */
typedef struct coro_wait_for {
    coro_frame co;
    coro_timeout tm;
    coro_future waiter;
    coro_call cb;
    coro_future *fut;
    coro_time timeout;
} coro_wait_for;

/* Phases: 1 awaiting fut without a deadline; 2 in _cancel_and_wait (a
 * timeout <= 0); 3 awaiting fut inside a timeout scope. */
CORO_API int coro__wait_for_fn(coro_ctx *c)
{
    coro_wait_for *w = CORO_SELF(c, coro_wait_for);
    int rc = c->rc;
    switch (c->self->state) {
    case 0:
        if (w->timeout == CORO_NEVER) return coro__op_await(c, w->fut, 1);
        if (w->timeout > 0) {
            coro__memset(&w->tm, 0, sizeof w->tm);
            coro_timeout_enter(c, &w->tm, w->timeout);
            return coro__op_await(c, w->fut, 3);
        }
        if (coro_future_done(w->fut)) return coro__op_done(c, coro__outcome(w->fut));
        coro_future_init(&w->waiter); /* asyncio's _cancel_and_wait */
        coro_future_add_done_callback(c->loop, w->fut, &w->cb, coro__release, &w->waiter);
        coro__cancel_future(c->loop, w->fut);
        return coro__op_park(c, &w->waiter, 2);
    case 1:
        return coro__op_done(c, rc);
    case 2:
        coro_future_remove_done_callback(c->loop, w->fut, &w->cb);
        if (rc >= 0) rc = coro_future_cancelled(w->fut) ? CORO_ETIMEDOUT : coro__outcome(w->fut);
        return coro__op_done(c, rc);
    default:
        return coro__op_done(c, coro_timeout_exit(c, &w->tm, rc));
    }
}

CORO_API coro_frame *coro_wait_for_init(coro_wait_for *w, coro_future *fut,
                                        coro_time timeout)
{
    w->fut = fut;
    w->timeout = timeout;
    return coro_frame_init(&w->co, coro__wait_for_fn);
}

/* ---------------------------------------------------------------------- */
/* shield                                                                  */
/* ---------------------------------------------------------------------- */

/* asyncio.shield: returns a future that follows `inner` but whose
 * cancellation (e.g. of the task awaiting it) does not reach `inner`.
 * Returns inner itself if it is already done. For a task inner, the outer
 * future's value is the task's result. The record is free again once the
 * awaiting task resumes. */
typedef struct coro_shield {
    coro_future outer;
    coro_call inner_cb, outer_cb;
    coro_future *inner;
} coro_shield;

CORO_API void coro__shield_inner_done(coro_loop *L, void *arg)
{
    coro_shield *s = (coro_shield *)arg;
    unsigned st = coro_future_state(s->inner);
    if (coro_future_cancelled(&s->outer)) {
        if (st != CORO_FUTURE_CANCELLED) coro__retrieve(s->inner);
        return;
    }
    if (st == CORO_FUTURE_CANCELLED) {
        coro_future_cancel(L, &s->outer);
        return;
    }
    int rc = coro__outcome(s->inner);
    if (st == CORO_FUTURE_ERROR)
        coro__future_finish(L, &s->outer, CORO_FUTURE_ERROR, rc);
    else
        coro__future_finish(L, &s->outer, CORO_FUTURE_RESULT,
                            (s->inner->cbs & CORO__FK_TASK) ? rc : s->inner->value);
}

/* Runs before the awaiting task resumes: after it, the record is the
 * caller's again, so the inner callback must be gone. asyncio removes it
 * only while inner is pending; a callback already scheduled would then
 * merely mark inner's error as read, which is done here instead. */
CORO_API void coro__shield_outer_done(coro_loop *L, void *arg)
{
    coro_shield *s = (coro_shield *)arg;
    if (coro_future_remove_done_callback(L, s->inner, &s->inner_cb) &&
        coro_future_done(s->inner) && !coro_future_cancelled(s->inner))
        coro__retrieve(s->inner);
}

CORO_API coro_future *coro_shield_start(coro_loop *L, coro_shield *s,
                                       coro_future *inner)
{
    if (coro_future_done(inner)) return inner;
    coro_future_init(&s->outer);
    s->inner = inner;
    coro_future_add_done_callback(L, inner, &s->inner_cb, coro__shield_inner_done, s);
    coro_future_add_done_callback(L, &s->outer, &s->outer_cb, coro__shield_outer_done, s);
    return &s->outer;
}


/* ---------------------------------------------------------------------- */
/* as_completed                                                            */
/* ---------------------------------------------------------------------- */

typedef struct coro_as_completed coro_as_completed;

/* Once its callback ran, an item's call is idle: its handle's aux links
 * the items completed and not yet returned. */
typedef coro_watch_item coro_ac_item;

/* asyncio.as_completed: each coro_as_completed_next() awaits the next
 * child to complete, in completion order, and gives c->rc = its index in
 * the argument array (read the child's own outcome), CORO_ETIMEDOUT once
 * the timeout passed (the children are not cancelled), or CORO_EINVAL when
 * every child has been returned. Repeated arguments count once. */
struct coro_as_completed {
    coro_frame co;   /* the frame of the next() in progress */
    coro_future getter;
    coro_call timer;
    coro_ac_item *items;
    coro_ac_item *head, *tail; /* completed, not yet returned */
    uint32_t n, todo, left, timeouts;
};

CORO_API void coro__ac_done(coro_loop *L, void *arg)
{
    coro_ac_item *it = (coro_ac_item *)arg;
    coro_as_completed *ac = (coro_as_completed *)it->owner;
    if (!ac->todo) return; /* the timeout came first */
    ac->todo--;
    it->cb.h.aux = NULL;
    if (ac->tail)
        ac->tail->cb.h.aux = it;
    else
        ac->head = it;
    ac->tail = it;
    coro__release(L, &ac->getter);
    if (!ac->todo) coro_call_cancel(L, &ac->timer);
}

CORO_API void coro__ac_timeout(coro_loop *L, void *arg)
{
    coro_as_completed *ac = (coro_as_completed *)arg;
    unsigned k = coro__unwatch(L, ac->items, ac->n);
    ac->timeouts += k;
    if (k) coro__release(L, &ac->getter);
    ac->todo = 0;
}

/* Starts watching n futures (items: caller array of n). timeout: ns from
 * now, or CORO_NEVER. */
CORO_API void coro_as_completed_init(coro_loop *L, coro_as_completed *ac,
                                     coro_ac_item *items,
                                     coro_future *const *futs, unsigned n,
                                     coro_time timeout)
{
    ac->items = items;
    ac->head = ac->tail = NULL;
    ac->n = n;
    ac->timeouts = 0;
    ac->timer.h.flags = 0;
    coro_future_init(&ac->getter);
    ac->getter.cbs = CORO_FUTURE_RESULT; /* no consumer waiting yet */
    ac->todo = ac->left = coro__watch(L, items, futs, n, ac, coro__ac_done, 1);
    if (ac->todo && timeout != CORO_NEVER)
        coro_call_later(L, &ac->timer, timeout, coro__ac_timeout, ac);
}

CORO_API int coro__ac_next_fn(coro_ctx *c)
{
    coro_as_completed *ac = CORO_SELF(c, coro_as_completed);
    coro_ac_item *it = ac->head;
    if (!c->self->state) {
        if (!ac->left) return coro__op_done(c, CORO_EINVAL);
        ac->left--;
    } else if (c->rc < 0) {
        return coro__op_done(c, c->rc); /* cancelled: the slot is used up, like asyncio's */
    }
    if (it) {
        ac->head = (coro_ac_item *)it->cb.h.aux;
        if (!ac->head) ac->tail = NULL;
        return coro__op_done(c, (int)(it - ac->items));
    }
    if (!ac->timeouts) { /* asyncio.Queue.get */
        coro_future_init(&ac->getter);
        return coro__op_park(c, &ac->getter, 1);
    }
    ac->timeouts--;
    return coro__op_done(c, CORO_ETIMEDOUT);
}

/* The next completed child: await the returned frame. */
CORO_API coro_frame *coro_as_completed_next(coro_as_completed *ac)
{
    return coro_frame_init(&ac->co, coro__ac_next_fn);
}

/* How many next() calls remain (asyncio stops iterating at 0). */
CORO_API unsigned coro_as_completed_left(const coro_as_completed *ac)
{
    return ac->left;
}

/* Stops watching (callbacks, timer) before the record is reused early. */
CORO_API void coro_as_completed_close(coro_loop *L, coro_as_completed *ac)
{
    coro_call_cancel(L, &ac->timer);
    coro__unwatch(L, ac->items, ac->n);
    ac->todo = ac->left = ac->timeouts = 0;
}

/* ---------------------------------------------------------------------- */
/* TaskGroup                                                               */
/* ---------------------------------------------------------------------- */

typedef struct coro_group coro_group;

/* A task that belongs to a group: the task, the group's done-callback on
 * it, and its place among the group's members. 128 bytes. */
typedef struct coro_group_task {
    coro_task task;
    coro_call cb;
    coro__link member;
} coro_group_task;

/* asyncio.TaskGroup. The first child to fail cancels the other children
 * and the body (the parent task, once); coro_group_exit waits for every
 * child and gives c->rc = the body's rc when all is well, CORO_EGROUP when
 * errors were collected (errors[0..nerrors), in the order they happened;
 * the body's own error last), or CORO_ECANCELED when the parent was
 * cancelled from outside. The parent's cancelling() count is restored. */
struct coro_group {
    coro_frame co; /* coro_group_exit's frame */
    coro_task *parent;
    coro_future done; /* on_completed_fut */
    coro__link members;
    uint32_t ntasks;
    int *errors;
    uint32_t nerrors, max_errors;
    int body_rc;
    uint8_t flags;
};

#define CORO__TG_ENTERED 0x01u
#define CORO__TG_EXITING 0x02u
#define CORO__TG_ABORTING 0x04u
#define CORO__TG_PARENT_CANCEL 0x08u /* the group cancelled its parent */
#define CORO__TG_WAITING 0x10u       /* `done` is live */
#define CORO__TG_PROPAGATE 0x20u     /* a cancellation to propagate */
#define CORO__TG_FINISHED 0x40u      /* exited: spawns refused, may re-enter */

CORO_API coro_group_task *coro__member_of(coro__link *l)
{
    return CORO__CONTAINER(coro_group_task, member, l);
}

/* Cancels every unfinished child, in creation order. */
CORO_API void coro__group_abort(coro_loop *L, coro_group *g)
{
    g->flags |= CORO__TG_ABORTING;
    for (coro__link *l = g->members.next; l != &g->members; l = l->next) {
        coro_task *t = &coro__member_of(l)->task;
        if (!coro_task_done(t)) coro_task_cancel(L, t);
    }
}

CORO_API void coro__group_error(coro_group *g, int err)
{
    if (g->nerrors < g->max_errors) g->errors[g->nerrors] = err;
    g->nerrors++;
}

CORO_API void coro__group_child_done(coro_loop *L, void *arg)
{
    coro_group_task *gt = (coro_group_task *)arg;
    coro_group *g = (coro_group *)gt->cb.h.aux;
    coro__link_del(&gt->member);
    g->ntasks--;
    if ((g->flags & CORO__TG_WAITING) && !g->ntasks && !coro_future_done(&g->done))
        coro_future_set_result(L, &g->done, 0);
    if (coro_task_cancelled(&gt->task)) return;
    int err = coro_task_error(&gt->task);
    if (!err) return;
    coro__group_error(g, err);
    if (coro_task_done(g->parent)) {
        coro__report(L, CORO_REPORT_GROUP_ORPHAN,
                     "Task has errored out but its parent task is already completed",
                     &gt->task, err, 0);
        return;
    }
    if (!(g->flags & (CORO__TG_ABORTING | CORO__TG_PARENT_CANCEL))) {
        coro__group_abort(L, g);
        g->flags |= CORO__TG_PARENT_CANCEL;
        coro_task_cancel(L, g->parent);
    }
}

/* Enters a group in the running task. errors: caller array of max_errors
 * (may be NULL/0 to only count them). CORO_EINVAL outside a task or if the
 * group is entered and not yet exited. Zero the record before its first
 * use; once exited it may be entered again. */
CORO_API int coro_group_enter(coro_ctx *c, coro_group *g, int *errors,
                              unsigned max_errors)
{
    if (!c->task || (g->flags & CORO__TG_ENTERED)) return CORO_EINVAL;
    coro__memset(g, 0, sizeof *g);
    g->parent = c->task;
    coro__link_init(&g->members);
    g->errors = errors;
    g->max_errors = errors ? max_errors : 0;
    g->flags = CORO__TG_ENTERED;
    return 0;
}

/* Creates a child task of the group. CORO_EINVAL if the group is not
 * entered, is finished, or is shutting down after a failure. */
CORO_API int coro_group_spawn(coro_loop *L, coro_group *g, coro_group_task *gt,
                              coro_frame *frame)
{
    if (!(g->flags & CORO__TG_ENTERED)) return CORO_EINVAL;
    if ((g->flags & CORO__TG_EXITING) && !g->ntasks) return CORO_EINVAL;
    if (g->flags & CORO__TG_ABORTING) return CORO_EINVAL;
    int rc = coro_spawn(L, &gt->task, frame);
    if (rc < 0) return rc;
    coro_future_add_done_callback(L, &gt->task.fut, &gt->cb, coro__group_child_done, gt);
    gt->cb.h.aux = g;
    coro__link_add(&g->members, &gt->member);
    g->ntasks++;
    return 0;
}

/* Waits for the children (phase 1: the last one ended, or we were
 * cancelled: then the children are cancelled and waited for), then
 * settles the outcome as asyncio's __aexit__ does. */
CORO_API int coro__group_exit_fn(coro_ctx *c)
{
    coro_group *g = CORO_SELF(c, coro_group);
    coro_loop *L = c->loop;
    int rc = g->body_rc;
    if (!c->self->state) {
        g->flags |= CORO__TG_EXITING;
        if (rc == CORO_ECANCELED) g->flags |= CORO__TG_PROPAGATE;
        if (rc < 0 && !(g->flags & CORO__TG_ABORTING)) coro__group_abort(L, g);
    } else if (c->rc == CORO_ECANCELED && !(g->flags & CORO__TG_ABORTING)) {
        g->flags |= CORO__TG_PROPAGATE;
        coro__group_abort(L, g);
    }
    if (g->ntasks) {
        coro_future_init(&g->done);
        g->flags |= CORO__TG_WAITING;
        return coro__op_park(c, &g->done, 1);
    }
    if ((g->flags & CORO__TG_PARENT_CANCEL) && coro_task_uncancel(g->parent) == 0)
        g->flags &= (uint8_t)~CORO__TG_PROPAGATE;
    if ((g->flags & CORO__TG_PROPAGATE) && !g->nerrors) {
        rc = CORO_ECANCELED;
    } else {
        if (rc < 0 && rc != CORO_ECANCELED) coro__group_error(g, rc);
        if (g->nerrors) {
            if (coro_task_cancelling(g->parent)) {
                coro_task_uncancel(g->parent);
                coro_task_cancel(L, g->parent);
            }
            rc = CORO_EGROUP;
        }
    }
    g->flags = CORO__TG_FINISHED;
    return coro__op_done(c, rc);
}

/* Leaves the group with the body's outcome: await the returned frame. */
CORO_API coro_frame *coro_group_exit(coro_group *g, int body_rc)
{
    g->body_rc = body_rc;
    return coro_frame_init(&g->co, coro__group_exit_fn);
}

/* Children not finished yet (asyncio's len(tg._tasks)). */
CORO_API unsigned coro_group_task_count(const coro_group *g)
{
    return g->ntasks;
}

/* Errors collected (may exceed max_errors; only that many are stored). */
CORO_API unsigned coro_group_error_count(const coro_group *g)
{
    return g->nerrors;
}

#if CORO__DIAG && CORO__REGISTRY
/* ---------------------------------------------------------------------- */
/* Diagnostics: the task dump                                              */
/* ---------------------------------------------------------------------- */

typedef void coro_write_fn(void *arg, const char *s, size_t n);

CORO_API void coro__puts(coro_write_fn *w, void *arg, const char *s)
{
    w(arg, s, coro__strlen(s));
}

CORO_API void coro__putu(coro_write_fn *w, void *arg, uint64_t v, unsigned base)
{
    char buf[24];
    size_t i = sizeof buf;
    do {
        buf[--i] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    w(arg, buf + i, sizeof buf - i);
}

CORO_API const char *coro__wait_name(const coro_loop *L, const coro_task *t)
{
    if (L->ctx && L->ctx->task == t) return "running";
    switch (t->h.flags & CORO__T_WAIT) {
    case CORO__W_FUTURE: return "waiting on a future";
    case CORO__W_TASK: return "waiting on a task";
    case CORO__W_CUSTOM: return "waiting on an operation";
    case CORO__W_SLEEP: return "sleeping";
    case CORO__W_HOP: return "waking";
    default: return "ready";
    }
}

/* Writes one line per unfinished task (name, state, cancellation count)
 * and one per frame of its await chain (innermost first) with the source
 * line where it waits. write == NULL: stderr (POSIX builds). */
CORO_API void coro_loop_dump(coro_loop *L, coro_write_fn *write, void *arg);

#if CORO_POSIX
CORO_API void coro__write_stderr(void *arg, const char *s, size_t n)
{
    (void)arg;
    fwrite(s, 1, n, stderr);
}
#endif

CORO_API void coro_loop_dump(coro_loop *L, coro_write_fn *write, void *arg)
{
#if CORO_POSIX
    if (!write) write = coro__write_stderr;
#endif
    if (!write) return;
    for (coro_task *t = coro_loop_first_task(L); t; t = coro_loop_next_task(L, t)) {
        const char *name = coro_task_name(L, t);
        coro__puts(write, arg, "task ");
        if (name) {
            coro__puts(write, arg, name);
        } else {
            coro__puts(write, arg, "@0x");
            coro__putu(write, arg, (uint64_t)(uintptr_t)t, 16);
        }
        coro__puts(write, arg, ": ");
        coro__puts(write, arg, coro__wait_name(L, t));
        if (t->h.count) {
            coro__puts(write, arg, ", cancelling ");
            coro__putu(write, arg, t->h.count, 10);
        }
        coro__puts(write, arg, "\n");
        coro_frame *f = (L->ctx && L->ctx->task == t) ? L->ctx->self
                                                    : (coro_frame *)t->fut.value;
        for (; f; f = (f->info & CORO__F_ROOT) ? NULL : f->parent) {
            coro__puts(write, arg, "    frame @0x");
            coro__putu(write, arg, (uint64_t)(uintptr_t)f, 16);
            coro__puts(write, arg, " line ");
            coro__putu(write, arg, coro_frame_line(f), 10);
            coro__puts(write, arg, "\n");
        }
    }
}
#endif /* CORO__DIAG && CORO__REGISTRY */

#endif /* CORO_LOOP_H */
