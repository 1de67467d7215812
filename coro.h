/* coro.h - stackless coroutines for C: frames, awaits, errors, futures.
 *
 * Header-only, freestanding C11 (and C++17): needs only <stdint.h> and
 * <stddef.h> (plus <string.h> on compilers without GCC builtins). Never
 * allocates. The event loop lives in coro_loop.h.
 *
 * CHEAT-SHEET
 *   A coroutine is a function over its own state struct (the frame), which
 *   begins with a coro_frame. Locals that live across an await live in the
 *   struct, never on the C stack.
 *
 *     struct add { coro_frame co; int a, b; };
 *
 *     static int add_fn(coro_ctx *c)              // the body
 *     {
 *         struct add *f = CORO_SELF(c, struct add);
 *         CORO_BEGIN(c);
 *         CORO_YIELD(c);                          // (coro_loop.h) one loop pass
 *         CORO_RETURN(c, f->a + f->b);
 *         CORO_END(c);
 *     }
 *     static coro_frame *add(struct add *f, int a, int b)   // "calling" it
 *     {
 *         f->a = a; f->b = b;
 *         return coro_frame_init(&f->co, add_fn);
 *     }
 *
 *   In another coroutine:
 *     CORO_AWAIT(c, add(&f->sum, 1, 2));   // runs the child inline; c->rc = 3
 *     CORO_TRY(c, add(&f->sum, 1, 2));     // same, but a negative rc is returned
 *                                           // to our caller (Rust's `?`)
 *     CORO_FINALLY(c);                      // cleanup: runs on success, error
 *                                           // and cancellation
 *
 *   Results follow the system-call convention: a coroutine finishes with an
 *   int; >= 0 is a value, < 0 is an error (-errno style, see CORO_E*). Richer
 *   results live in the frame. After every await, c->rc holds the outcome.
 *
 *   Macros: CORO_BEGIN CORO_END CORO_FINALLY CORO_RETURN CORO_FAIL
 *           CORO_AWAIT CORO_TRY CORO_SELF
 *   Futures: coro_future (state queries here; completion in coro_loop.h).
 *
 * LIMITS (each is checked at compile time or traps at run time)
 *   - Resume points per translation unit: < 0xFFF0 (static assertion).
 *   - No await inside a user `switch` (the resume label would belong to the
 *     inner switch): resuming then hits the trapping `default:`. Move the
 *     switch into a helper function.
 *   - An await macro must not be passed as an argument to another macro that
 *     expands it twice (duplicate case labels: a compile error).
 *   - Locals declared between CORO_BEGIN and CORO_END do not survive an
 *     await; compiled as C++ the jump over their initialisation is an error.
 *   - Awaiting a frame that already finished, or resuming a frame whose state
 *     was overwritten, traps (CORO_TRAP) instead of silently restarting.
 */
#ifndef CORO_H
#define CORO_H

#include <stddef.h>
#include <stdint.h>
#if defined(__GNUC__) || defined(__clang__)
#define coro__memset __builtin_memset
#define coro__memcpy __builtin_memcpy
#define coro__strlen __builtin_strlen
#else
#include <string.h>
#define coro__memset memset
#define coro__memcpy memcpy
#define coro__strlen strlen
#endif

/* ---------------------------------------------------------------------- */
/* Configuration                                                           */
/* ---------------------------------------------------------------------- */

/* Every function is static inline: drop the header in, no library to link. */
#ifndef CORO_API
#define CORO_API static inline
#endif

/* Size options for small targets (define them before including, or with
 * -D; each is exercised by `make qemu-test`, see test/embedded):
 *   CORO_NO_DIAG   no diagnostics. Removes the report handler and every
 *                  report (error never retrieved, slow step, pending at
 *                  close, error during coro_run's shutdown, group orphan,
 *                  cancel cycle: coro_loop_set_report and
 *                  coro_loop_set_slow_threshold are accepted and ignored),
 *                  the bookkeeping of unread task errors, coro_loop_dump,
 *                  and the source line of each suspension (coro_frame_line
 *                  returns 0). Behaviour is otherwise the same.
 *   CORO_TIME32    time is int32_t milliseconds (coro_time) instead of
 *                  int64_t nanoseconds, on a clock that may wrap around
 *                  (a free-running 32-bit tick count): no 64-bit arithmetic,
 *                  4 bytes less per timer; see coro_loop.h, "Time", for
 *                  what it limits.
 *   CORO_NO_REGISTRY  the loop keeps no list of its tasks (8 bytes less per
 *                  task): coro_run no longer cancels the tasks still
 *                  running when main ends (asyncio.run's shutdown: they
 *                  are left as they are), coro_loop_first_task/_next_task
 *                  are gone, and so are the diagnostics that need the list
 *                  (unread errors, tasks pending at close, coro_loop_dump).
 *   CORO_TIMER_LIST  timers in a list sorted by deadline instead of a splay
 *                  tree: arming a timer walks the list (O(n) in the timers
 *                  armed, O(log n) amortized without it), and the tie-break
 *                  counter (coro_handle's seq, 4 bytes) goes. */
#ifdef CORO_NO_DIAG
#define CORO__DIAG 0
#else
#define CORO__DIAG 1
#endif
#ifdef CORO_NO_REGISTRY
#define CORO__REGISTRY 0
#else
#define CORO__REGISTRY 1
#endif
/* Unread task errors are kept in a list through the tasks' registry link. */
#define CORO__UNREAD (CORO__DIAG && CORO__REGISTRY)

/* What a detected misuse does. Must not return. */
#ifndef CORO_TRAP
#if defined(__GNUC__) || defined(__clang__)
#define CORO_TRAP() __builtin_trap()
#else
#define CORO_TRAP() (*(volatile int *)0 = 0)
#endif
#endif

/* Resume-point ids: __COUNTER__ where the compiler has it, else __LINE__
 * (then two awaits on one line are a "duplicate case" compile error). */
#ifdef __COUNTER__
#define CORO__ID() (__COUNTER__ + 1)
#else
#define CORO__ID() (__LINE__)
#endif

#ifdef __cplusplus
#define CORO__STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#define CORO__ALIGNOF(t) alignof(t)
#else
#define CORO__STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#define CORO__ALIGNOF(t) _Alignof(t)
#endif

/* Rare paths kept out of line (diagnostics): a plain static function. */
#if defined(__GNUC__) || defined(__clang__)
#define CORO__COLD_API static __attribute__((noinline, cold, unused))
#else
#define CORO__COLD_API CORO_API
#endif

/* A helper shared by two hot paths that differ in a constant argument:
 * inlined into each (so the constant folds) unless optimizing for size. */
#if (defined(__GNUC__) || defined(__clang__)) && !defined(__OPTIMIZE_SIZE__)
#define CORO__SPLIT_API static inline __attribute__((always_inline, unused))
#else
#define CORO__SPLIT_API CORO_API
#endif

/* Handles are 8-byte aligned: futures keep 3 tag bits in a handle pointer. */
#ifdef __cplusplus
#define CORO__ALIGN8 alignas(8)
#else
#define CORO__ALIGN8 _Alignas(8)
#endif

#if defined(__cplusplus) && __cplusplus >= 201703L
#define CORO__FALLTHROUGH [[fallthrough]]
#elif defined(__GNUC__) && __GNUC__ >= 7 || defined(__clang__)
#define CORO__FALLTHROUGH __attribute__((fallthrough))
#else
#define CORO__FALLTHROUGH ((void)0)
#endif

/* ---------------------------------------------------------------------- */
/* Errors: negative errno-style ints                                       */
/* ---------------------------------------------------------------------- */

/* Hosted builds take the values from <errno.h>; freestanding builds use the
 * Linux numbers. Either way compare against CORO_E*, or -E* on Linux. */
#if defined(__STDC_HOSTED__) && __STDC_HOSTED__ && !defined(CORO_NO_ERRNO_H)
#include <errno.h>
#endif
#ifdef ECANCELED
#define CORO_ECANCELED (-ECANCELED)
#else
#define CORO_ECANCELED (-125)
#endif
#ifdef ETIMEDOUT
#define CORO_ETIMEDOUT (-ETIMEDOUT)
#else
#define CORO_ETIMEDOUT (-110)
#endif
#ifdef EINVAL
#define CORO_EINVAL (-EINVAL)
#else
#define CORO_EINVAL (-22)
#endif
#ifdef EAGAIN
#define CORO_EAGAIN (-EAGAIN)
#else
#define CORO_EAGAIN (-11)
#endif
#ifdef EALREADY
#define CORO_EALREADY (-EALREADY)
#else
#define CORO_EALREADY (-114)
#endif
#ifdef EDEADLK
#define CORO_EDEADLK (-EDEADLK)
#else
#define CORO_EDEADLK (-35)
#endif
#ifdef EINTR
#define CORO_EINTR (-EINTR)
#else
#define CORO_EINTR (-4)
#endif
#ifdef EBUSY
#define CORO_EBUSY (-EBUSY)
#else
#define CORO_EBUSY (-16)
#endif
#ifdef EPIPE
#define CORO_EPIPE (-EPIPE)
#else
#define CORO_EPIPE (-32)
#endif
#ifdef ESHUTDOWN
#define CORO_ESHUTDOWN (-ESHUTDOWN)
#else
#define CORO_ESHUTDOWN (-108)
#endif
#ifdef ENOMEM
#define CORO_ENOMEM (-ENOMEM)
#else
#define CORO_ENOMEM (-12)
#endif

/* Codes of this library, placed above every errno value and below the user
 * range. */
#define CORO_EGROUP (-3001)  /* a TaskGroup collected errors: see its list   */
#define CORO_EBROKEN (-3002) /* a Barrier was broken (aborted or reset)      */
#define CORO_EINCOMPLETE (-3003) /* a stream ended before the bytes asked for */
#define CORO_ELIMIT (-3004)  /* a stream line/chunk exceeds the limit        */

/* The user range: CORO_EUSER(0) .. CORO_EUSER(CORO_EUSER_MAX). */
#define CORO_EUSER_BASE 4096
#define CORO_EUSER_MAX 4095
#define CORO_EUSER(n) (-(CORO_EUSER_BASE + (n)))

/* Is rc one of the user codes? */
CORO_API int coro_is_user_error(int rc)
{
    return rc <= CORO_EUSER(0) && rc >= CORO_EUSER(CORO_EUSER_MAX);
}

/* A short static description of an error code (never NULL). */
CORO_API const char *coro_strerror(int rc)
{
    if (rc >= 0) return "success";
    if (coro_is_user_error(rc)) return "user error";
    if (rc == CORO_ECANCELED) return "cancelled";
    if (rc == CORO_ETIMEDOUT) return "timed out";
    if (rc == CORO_EINVAL) return "invalid argument or state";
    if (rc == CORO_EAGAIN) return "would block / not ready";
    if (rc == CORO_EALREADY) return "already done";
    if (rc == CORO_EDEADLK) return "deadlock: nothing can make progress";
    if (rc == CORO_EINTR) return "interrupted: loop stopped";
    if (rc == CORO_EBUSY) return "busy";
    if (rc == CORO_EPIPE) return "broken pipe";
    if (rc == CORO_ESHUTDOWN) return "shut down";
    if (rc == CORO_ENOMEM) return "out of memory";
    if (rc == CORO_EGROUP) return "task group errors";
    if (rc == CORO_EBROKEN) return "broken barrier";
    if (rc == CORO_EINCOMPLETE) return "incomplete read: end of stream";
    if (rc == CORO_ELIMIT) return "separator not found within the limit";
    return "system error";
}

/* ---------------------------------------------------------------------- */
/* Types                                                                   */
/* ---------------------------------------------------------------------- */

typedef struct coro_frame coro_frame;
typedef struct coro_ctx coro_ctx;
typedef struct coro_handle coro_handle;
typedef struct coro_future coro_future;
typedef struct coro_loop coro_loop; /* coro_loop.h */
typedef struct coro_task coro_task; /* coro_loop.h */

/* Loop time (coro_loop.h, "Time"): int64_t nanoseconds, or with
 * CORO_TIME32 int32_t milliseconds on a clock that may wrap around. */
#ifdef CORO_TIME32
typedef int32_t coro_time;
#else
typedef int64_t coro_time;
#endif

/* A coroutine body. Returns a CORO__R_* code to the driver. */
typedef int coro_fn(coro_ctx *c);

/* The frame header: the first member of every coroutine state struct.
 * 24 bytes on 64-bit targets, 16 on 32-bit. */
struct coro_frame {
    coro_fn *fn; /* the body */
    union {
        coro_frame *parent; /* the frame awaiting this one          */
        const char *name;   /* a task's root frame: the task's name */
    };
    int rc;         /* the result, once finished (pending one while unwinding) */
    uint16_t state; /* resume point: CORO__S_* or an id from CORO__ID()        */
    uint16_t info;  /* CORO__F_* flags and the line of the last suspension     */
};

/* What a body sees while it runs: handed to it by the driver. */
struct coro_ctx {
    coro_loop *loop;   /* the loop running the task (NULL: no loop)  */
    coro_task *task;   /* the task being stepped (NULL: no task)     */
    coro_frame *self;  /* the frame being resumed                     */
    coro_frame *child; /* set by CORO_AWAIT: the frame to run next    */
    int rc;            /* outcome of the last await (0 on first entry) */
};

/* Frame states. Resume ids are 1..CORO__S_MAX; START is what no resume
 * point can be, so a zeroed frame starts and nothing else can restart. */
#define CORO__S_START 0u
#define CORO__S_MAX 0xFFEFu
#define CORO__S_UNWIND 0xFFFDu /* jump into CORO_FINALLY           */
#define CORO__S_FINISH 0xFFFEu /* jump past CORO_END's switch       */
#define CORO__S_DONE 0xFFFFu   /* finished: resuming it again traps */

/* Frame info bits; the low 14 bits hold a source line (debug dumps). */
#define CORO__F_ROOT 0x8000u    /* the root frame of a task   */
#define CORO__F_FINALLY 0x4000u /* executing the finally part */
#define CORO__F_LINE 0x3FFFu

/* Codes a body returns to the driver. */
#define CORO__R_SUSPEND 0 /* parked: something will wake the task      */
#define CORO__R_CALL 1    /* run c->child now, then resume this frame   */
#define CORO__R_DONE 2    /* finished; the result is in the frame's rc  */

/* ---------------------------------------------------------------------- */
/* Frames                                                                  */
/* ---------------------------------------------------------------------- */

/* Prepares a frame to run `fn` from its start; returns it (to be awaited or
 * spawned). Like calling an async function in Python: nothing runs yet. */
CORO_API coro_frame *coro_frame_init(coro_frame *f, coro_fn *fn)
{
    f->fn = fn;
    f->parent = NULL;
    f->rc = 0;
    f->state = CORO__S_START;
    f->info = 0;
    return f;
}

/* Has the frame finished? Its result is then coro_frame_result(). */
CORO_API int coro_frame_done(const coro_frame *f)
{
    return f->state == CORO__S_DONE;
}

CORO_API int coro_frame_result(const coro_frame *f)
{
    return f->rc;
}

/* The source line where the frame last suspended (0: never). */
CORO_API unsigned coro_frame_line(const coro_frame *f)
{
    return f->info & CORO__F_LINE;
}

/* The state struct of the running body: `struct x *f = CORO_SELF(c, struct x)`. */
#define CORO_SELF(c, type) ((type *)(void *)(c)->self)

/* ---------------------------------------------------------------------- */
/* Body macros                                                             */
/* ---------------------------------------------------------------------- */

/* Opens a body. An unwinding frame (CORO_RETURN/CORO_FAIL/CORO_TRY) comes
 * back through coro__unwind into the switch, which sends it to CORO_FINALLY
 * or, when there is none, to the default label and out. */
#define CORO_BEGIN(c)                                                          \
    coro_frame *const coro__self = (c)->self;                                  \
    if (0) {                                                                   \
    coro__unwind:                                                              \
        coro__self->state = (coro__self->info & CORO__F_FINALLY)               \
                                ? (uint16_t)CORO__S_FINISH                     \
                                : (uint16_t)CORO__S_UNWIND;                    \
    }                                                                          \
    switch (coro__self->state) {                                               \
    case CORO__S_START:;

/* Marks the cleanup part: reached by falling through (success) and by every
 * CORO_RETURN / CORO_FAIL / CORO_TRY failure before it. It may await; the
 * pending result is kept in the frame. A CORO_RETURN inside it ends the
 * frame with the new result. */
#define CORO_FINALLY(c)                                                        \
    CORO__FALLTHROUGH;                                                         \
    case CORO__S_UNWIND:                                                       \
        coro__self->info |= CORO__F_FINALLY;

/* Closes a body. Falling off the end finishes with the pending result (0
 * unless a CORO_RETURN before a CORO_FINALLY set it). */
#define CORO_END(c)                                                            \
        break;                                                                 \
    default:                                                                   \
        if (coro__self->state != CORO__S_UNWIND &&                             \
            coro__self->state != CORO__S_FINISH)                               \
            CORO_TRAP();                                                       \
    }                                                                          \
    if (0) goto coro__unwind;                                                  \
    coro__self->state = CORO__S_DONE;                                          \
    return CORO__R_DONE

/* Finishes the frame with result v (>= 0 a value, < 0 an error), running
 * CORO_FINALLY first if the body has one. */
#define CORO_RETURN(c, v)                                                      \
    do {                                                                       \
        coro__self->rc = (v);                                                  \
        goto coro__unwind;                                                     \
    } while (0)

/* Same as CORO_RETURN, for an error code (reads better at error sites). */
#define CORO_FAIL(c, err) CORO_RETURN(c, err)

/* Internal: a resume point. `suspend` is a statement that returns to the
 * driver (or falls through when the await completed at once). */
#define CORO__POINT(c, id, suspend)                                            \
    do {                                                                       \
        CORO__STATIC_ASSERT((id) <= CORO__S_MAX, "too many resume points");    \
        coro__self->state = (uint16_t)(id);                                    \
        CORO__SET_LINE();                                                      \
        suspend;                                                               \
        CORO__FALLTHROUGH;                                                     \
    case (id):;                                                                \
    } while (0)

/* Records the line of the suspension (for coro_loop_dump). */
#if CORO__DIAG
#define CORO__SET_LINE()                                                       \
    (coro__self->info = (uint16_t)((coro__self->info & ~CORO__F_LINE) |       \
                                   ((unsigned)__LINE__ & CORO__F_LINE)))
#else
#define CORO__SET_LINE() ((void)0)
#endif

/* Awaits a child frame (from its init function): the child runs at once,
 * inside this task, and its result lands in c->rc. */
#define CORO_AWAIT(c, frame) CORO__AWAIT(c, frame, CORO__ID())
#define CORO__AWAIT(c, frame, id)                                              \
    CORO__POINT(c, id, (c)->child = (frame); return CORO__R_CALL)

/* Awaits a child and propagates its error (c->rc < 0) to our own caller. */
#define CORO_TRY(c, frame)                                                     \
    do {                                                                       \
        CORO_AWAIT(c, frame);                                                  \
        if ((c)->rc < 0) CORO_FAIL(c, (c)->rc);                                \
    } while (0)

/* Propagates c->rc if the last await failed (after any CORO_AWAIT_* form). */
#define CORO_CHECK(c)                                                          \
    do {                                                                       \
        if ((c)->rc < 0) CORO_FAIL(c, (c)->rc);                                \
    } while (0)

/* ---------------------------------------------------------------------- */
/* The driver                                                              */
/* ---------------------------------------------------------------------- */

/* Resumes the frame chain at `leaf` with outcome `rc` and runs it until it
 * suspends or the root frame (CORO__F_ROOT, or a frame without parent when
 * `rooted` is 0) finishes. Each step calls only the innermost frame: a
 * finished child hands its result to its parent in the same loop, so the
 * cost does not grow with depth and nothing recurses.
 * Returns 1 when the root finished (its result in c->self->rc), 0 when the
 * chain suspended with c->self as the new leaf. */
CORO_API int coro__drive(coro_ctx *c, coro_frame *f, int rc)
{
    if (f->state == CORO__S_START && rc < 0) {
        /* A frame failed (e.g. cancelled) before it started: it never runs. */
        f->rc = rc;
        f->state = CORO__S_DONE;
        c->self = f;
        return 1;
    }
    for (;;) {
        c->self = f;
        c->rc = rc;
        int r = f->fn(c);
        if (r == CORO__R_SUSPEND) {
            c->self = f;
            return 0;
        }
        if (r == CORO__R_CALL) {
            coro_frame *child = c->child;
            child->parent = f;
            f = child;
            rc = 0;
            continue;
        }
        rc = f->rc;
        if ((f->info & CORO__F_ROOT) || (!c->task && !f->parent)) {
            c->self = f;
            return 1;
        }
        f = f->parent;
    }
}

/* Runs a frame to completion without a loop, for coroutines that never
 * suspend on anything but children (tests, generators driven by hand).
 * Returns the result, or CORO_EAGAIN if a body suspended. */
CORO_API int coro_frame_run(coro_frame *f)
{
    coro_ctx c;
    coro__memset(&c, 0, sizeof c);
    f->parent = NULL;
    if (!coro__drive(&c, f, 0)) return CORO_EAGAIN;
    return c.self->rc;
}

/* ---------------------------------------------------------------------- */
/* Handles: the node every schedulable thing starts with                   */
/* ---------------------------------------------------------------------- */

/* One node, three lives: in the loop's ready queue (next/prev), in a
 * future's callback ring (next), or in the timer tree (next = left child,
 * aux = right child, when = deadline). 32 bytes on 64-bit targets. */
struct coro_handle {
    CORO__ALIGN8 coro_handle *next;
    uint8_t kind;   /* CORO__H_* */
    uint8_t flags;  /* kind-specific */
    uint16_t count; /* tasks: pending cancellation requests */
#ifndef CORO_TIMER_LIST
    uint32_t seq;   /* timers: arming order, breaks deadline ties */
#endif
    union {
        coro_handle *right; /* timer tree right child         */
        void *aux;          /* otherwise: kind-specific        */
    };
    union {
        coro_time when;    /* deadline while in the timer tree      */
        coro_handle *prev; /* back link while in the ready queue    */
    };
};

#define CORO__H_TASK 1u
#define CORO__H_CALL 2u
#define CORO__H_TIMER 3u

/* ---------------------------------------------------------------------- */
/* Futures                                                                 */
/* ---------------------------------------------------------------------- */

/* A future: pending, then exactly one of result / error / cancelled.
 * Done-callbacks are intrusive nodes (a task waiting, or a coro_call) kept
 * in a ring whose tail pointer shares a word with the state bits. Completing
 * one (coro_loop.h) schedules its callbacks, in order, on the ready queue;
 * none is ever called inline. 2 words. */
struct coro_future {
    uintptr_t cbs;  /* ring tail | CORO__FS_* state | CORO__FK_TASK */
    intptr_t value; /* result, or error code; a pending task: its leaf frame */
};

#define CORO_FUTURE_PENDING 0u
#define CORO_FUTURE_RESULT 1u
#define CORO_FUTURE_ERROR 2u
#define CORO_FUTURE_CANCELLED 3u
#define CORO__FS_MASK 3u
#define CORO__FK_TASK 4u /* this future is a task's */
#define CORO__F_TAGS 7u

CORO__STATIC_ASSERT(CORO__ALIGNOF(coro_handle) >= 8, "tag bits need 8-byte nodes");

/* Static initialiser of a pending future (or call coro_future_init). */
#define CORO_FUTURE_INIT {0, 0}

CORO_API void coro_future_init(coro_future *f)
{
    f->cbs = 0;
    f->value = 0;
}

CORO_API unsigned coro_future_state(const coro_future *f)
{
    return (unsigned)(f->cbs & CORO__FS_MASK);
}

CORO_API int coro_future_done(const coro_future *f)
{
    return coro_future_state(f) != CORO_FUTURE_PENDING;
}

CORO_API int coro_future_cancelled(const coro_future *f)
{
    return coro_future_state(f) == CORO_FUTURE_CANCELLED;
}

/* The outcome as an rc: 0 (result), the error, CORO_ECANCELED, or
 * CORO_EAGAIN while pending (asyncio's InvalidStateError). */
CORO_API int coro_future_rc(const coro_future *f)
{
    switch (coro_future_state(f)) {
    case CORO_FUTURE_RESULT: return 0;
    case CORO_FUTURE_ERROR: return (int)f->value;
    case CORO_FUTURE_CANCELLED: return CORO_ECANCELED;
    default: return CORO_EAGAIN;
    }
}

/* The result value (valid when coro_future_state() is RESULT). */
CORO_API intptr_t coro_future_value(const coro_future *f)
{
    return coro_future_state(f) == CORO_FUTURE_RESULT ? f->value : 0;
}

/* Internal: the callback ring. */
CORO_API coro_handle *coro__ring_tail(const coro_future *f)
{
    return (coro_handle *)(f->cbs & ~(uintptr_t)CORO__F_TAGS);
}

CORO_API void coro__ring_set(coro_future *f, coro_handle *tail)
{
    f->cbs = (uintptr_t)tail | (f->cbs & CORO__F_TAGS);
}

/* Appends h to f's ring (f must be pending). */
CORO_API void coro__ring_add(coro_future *f, coro_handle *h)
{
    coro_handle *tail = coro__ring_tail(f);
    if (tail) {
        h->next = tail->next;
        tail->next = h;
    } else {
        h->next = h;
    }
    coro__ring_set(f, h);
}

/* Removes h from f's ring; returns 1 if it was there. O(ring length). */
CORO_API int coro__ring_remove(coro_future *f, coro_handle *h)
{
    coro_handle *tail = coro__ring_tail(f), *p = tail;
    if (!tail) return 0;
    do {
        if (p->next == h) {
            if (h == p) {
                coro__ring_set(f, NULL); /* it was alone */
            } else {
                p->next = h->next;
                if (h == tail) coro__ring_set(f, p);
            }
            h->next = NULL;
            return 1;
        }
        p = p->next;
    } while (p != tail);
    return 0;
}

#endif /* CORO_H */
