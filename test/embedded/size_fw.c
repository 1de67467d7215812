/* size_fw.c - the reference firmwares of `make size`, one per feature set:
 *   CORO_SET 0  empty: the startup code alone (the baseline subtracted)
 *   CORO_SET 1  core: tasks, child frames, yield, coro_run
 *   CORO_SET 2  + timers (sleep, call_later), signals (the ISR entry) and
 *               the awaiting family: gather, wait, timeout, wait_for,
 *               shield, as_completed, TaskGroup, cancellation
 *   CORO_SET 3  + all of coro_sync.h: Event, Lock, Condition, Semaphore,
 *               BoundedSemaphore, Barrier, FIFO/LIFO/priority Queue, job
 *               scheduler
 * Each uses every public call of its set once, runs on a user clock that
 * jumps to the next deadline (idle hook), and exits 0 when every result is
 * the expected one (make qemu-test runs them). Built freestanding:
 * -ffreestanding -nostdinc (compiler headers only) -nostdlib. */
#include <stddef.h>
#include <stdint.h>

#if CORO_SET >= 1
#include "coro_loop.h"
#endif
#if CORO_SET >= 3
#include "coro_sync.h"
#endif

int main(void);

#if CORO_SET == 0
int main(void)
{
    return 0;
}
#else

/* ---- the board: a clock that idles by jumping to the deadline. No
 * globals anywhere: the firmware's .data/.bss are the startup code's and
 * the library's (none), the application lives on main's stack. */
static coro_time board_now(void *arg)
{
    return *(coro_time *)arg;
}

static int board_idle(void *arg, coro_time timeout)
{
    if (timeout < 0) return CORO_EDEADLK;
    *(coro_time *)arg += timeout;
    return 0;
}

/* Counts the results that were not the expected ones in f->bad. */
#define EXPECT(cond) ((void)((cond) || (f->bad++, 0)))

/* ---- core: a worker yielding a few times */
struct worker {
    coro_frame co;
    int n, sum;
#if CORO_SET >= 2
    coro_time nap;
#endif
};

static int worker_fn(coro_ctx *c)
{
    struct worker *f = CORO_SELF(c, struct worker);
    CORO_BEGIN(c);
    for (f->n = 1; f->n <= 3; f->n++) {
        f->sum += f->n;
#if CORO_SET >= 2
        if (f->nap) {
            CORO_SLEEP(c, f->nap);
            if (c->rc < 0) CORO_FAIL(c, c->rc);
            continue;
        }
#endif
        CORO_YIELD(c);
    }
    CORO_RETURN(c, f->sum);
    CORO_END(c);
}

static coro_frame *worker(struct worker *f, coro_time nap)
{
    f->sum = 0;
#if CORO_SET >= 2
    f->nap = nap;
#else
    (void)nap;
#endif
    return coro_frame_init(&f->co, worker_fn);
}

#if CORO_SET >= 3
/* ---- coro_sync.h: every primitive once */
static int by_value(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

static int pred_set(void *arg)
{
    return *(int *)arg;
}

struct syncer {
    coro_frame co;
    coro_event ev;
    coro_lock lk;
    coro_cond cv;
    coro_sem sem, bsem;
    coro_barrier bar;
    coro_queue fifo, lifo, prio;
    int fifo_buf[4], lifo_buf[4], prio_buf[4], item, flag;
    coro_sched sched;
    coro_job jobs[3];
    struct worker jw[3];
    coro_task helper;
    struct worker hw;
    union {
        coro_event_op ev;
        coro_lock_op lk;
        coro_cond_op cv;
        coro_sem_op sem;
        coro_barrier_op bar;
        coro_queue_op q;
        coro_sched_op sched;
    } op;
    coro_timeout tm;
    int bad;
};

static int syncer_fn(coro_ctx *c)
{
    struct syncer *f = CORO_SELF(c, struct syncer);
    coro_loop *L = c->loop;
    CORO_BEGIN(c);
    /* Event */
    coro_event_init(&f->ev);
    coro_event_set(L, &f->ev);
    CORO_AWAIT(c, coro_event_wait(&f->op.ev, &f->ev));
    EXPECT(c->rc == 0 && coro_event_is_set(&f->ev));
    coro_event_clear(&f->ev);
    CORO_TIMEOUT(c, &f->tm, CORO_MS(1), CORO_AWAIT(c, coro_event_wait(&f->op.ev, &f->ev)));
    EXPECT(c->rc == CORO_ETIMEDOUT);
    coro_event_close(L, &f->ev);
    /* Lock */
    coro_lock_init(&f->lk);
    CORO_LOCK_ACQUIRE(c, &f->op.lk, &f->lk);
    EXPECT(coro_lock_locked(&f->lk) && coro_lock_try_acquire(&f->lk) != 0);
    CORO_TIMEOUT(c, &f->tm, CORO_MS(1), CORO_AWAIT(c, coro_lock_acquire(&f->op.lk, &f->lk)));
    EXPECT(c->rc == CORO_ETIMEDOUT);
    EXPECT(coro_lock_release(L, &f->lk) == 0);
    /* Condition: wait and wait_for, woken by a helper that notifies */
    coro_cond_init(&f->cv, &f->lk);
    CORO_LOCK_ACQUIRE(c, &f->op.lk, coro_cond_lock(&f->cv));
    f->flag = 0;
    CORO_TIMEOUT(c, &f->tm, CORO_MS(1), CORO_AWAIT(c, coro_cond_wait(&f->op.cv, &f->cv)));
    EXPECT(c->rc == CORO_ETIMEDOUT && coro_lock_locked(&f->lk));
    f->flag = 1;
    CORO_AWAIT(c, coro_cond_wait_for(&f->op.cv, &f->cv, pred_set, &f->flag));
    EXPECT(coro_cond_notify(L, &f->cv, 1) == 0 && coro_cond_notify_all(L, &f->cv) == 0);
    coro_lock_release(L, &f->lk);
    coro_cond_close(L, &f->cv);
    coro_lock_close(L, &f->lk);
    /* Semaphore, BoundedSemaphore */
    coro_sem_init(&f->sem, 1);
    CORO_SEM_ACQUIRE(c, &f->op.sem, &f->sem);
    EXPECT(coro_sem_locked(&f->sem) && coro_sem_try_acquire(&f->sem) != 0);
    CORO_TIMEOUT(c, &f->tm, CORO_MS(1), CORO_AWAIT(c, coro_sem_acquire(&f->op.sem, &f->sem)));
    EXPECT(c->rc == CORO_ETIMEDOUT);
    coro_sem_release(L, &f->sem);
    coro_bsem_init(&f->bsem, 1);
    EXPECT(coro_sem_release(L, &f->bsem) < 0 && coro_sem_value(&f->bsem) == 1);
    coro_sem_close(L, &f->sem);
    /* Barrier of one party; reset, abort */
    coro_barrier_init(&f->bar, 1);
    CORO_AWAIT(c, coro_barrier_wait(&f->op.bar, &f->bar));
    EXPECT(c->rc == 0 && coro_barrier_n_waiting(&f->bar) == 0 && coro_barrier_parties(&f->bar) == 1);
    CORO_AWAIT(c, coro_barrier_reset(&f->op.bar, &f->bar));
    CORO_AWAIT(c, coro_barrier_abort(&f->op.bar, &f->bar));
    EXPECT(coro_barrier_broken(&f->bar));
    /* Queues: FIFO through the frame forms, LIFO through the inline
     * macros, priority; join, task_done, shutdown */
    coro_queue_init(&f->fifo, CORO_FIFO, f->fifo_buf, sizeof(int), 4, 2, NULL);
    coro_queue_init(&f->lifo, CORO_LIFO, f->lifo_buf, sizeof(int), 4, 0, NULL);
    coro_queue_init(&f->prio, CORO_PRIO, f->prio_buf, sizeof(int), 4, 4, by_value);
    f->item = 7;
    CORO_AWAIT(c, coro_queue_put(&f->op.q, &f->fifo, &f->item));
    CORO_QUEUE_PUT(c, &f->op.q, &f->lifo, &f->item);
    EXPECT(coro_queue_put_nowait(L, &f->prio, &f->item) == 0);
    f->item = 3;
    coro_queue_put_nowait(L, &f->prio, &f->item);
    EXPECT(coro_queue_qsize(&f->prio) == 2 && !coro_queue_full(&f->prio) &&
           coro_queue_maxsize(&f->prio) == 4);
    CORO_AWAIT(c, coro_queue_get(&f->op.q, &f->prio, &f->item));
    EXPECT(f->item == 3);
    CORO_QUEUE_GET(c, &f->op.q, &f->lifo, &f->item);
    EXPECT(coro_queue_get_nowait(L, &f->fifo, &f->item) == 0 && coro_queue_empty(&f->fifo));
    coro_queue_task_done(L, &f->fifo);
    CORO_AWAIT(c, coro_queue_join(&f->op.ev, &f->fifo));
    coro_queue_shutdown(L, &f->prio, 1);
    /* Job scheduler: three jobs, two at a time */
    coro_sched_init(&f->sched, 2);
    for (f->item = 0; f->item < 3; f->item++)
        coro_sched_spawn(L, &f->sched, &f->jobs[f->item], worker(&f->jw[f->item], CORO_MS(1)));
    EXPECT(coro_sched_active(&f->sched) == 2 && coro_sched_pending(&f->sched) == 1);
    CORO_AWAIT(c, coro_sched_wait(&f->op.sched, &f->sched, CORO_NEVER));
    EXPECT(coro_job_state(&f->jobs[2]) == CORO_JOB_DONE);
    CORO_AWAIT(c, coro_sched_close(&f->op.sched, &f->sched, CORO_MS(5)));
    CORO_RETURN(c, c->rc);
    CORO_END(c);
}
#endif /* CORO_SET >= 3 */

/* ---- the main task */
struct app {
    coro_frame co;
    coro_task t1, t2;
    struct worker w1, w2, w3;
    int rc, bad;
#if CORO_SET >= 2
    coro_future fut;
    coro_call call;
    coro_signal sig;
    coro_future *futs[2];
    coro_gather g;
    coro_gather_item gi[2];
    coro_wait_item wi[2];
    coro_ac_item ai[2];
    coro_as_completed ac;
    coro_shield sh;
    coro_group grp;
    coro_group_task gt[2];
    struct worker gw[2];
    int errs[2];
    union {
        coro_wait wait;
        coro_wait_for wait_for;
    } op;
    coro_timeout tm;
#endif
#if CORO_SET >= 3
    struct syncer sync;
#endif
};

#if CORO_SET >= 2
static void complete_cb(coro_loop *L, void *arg)
{
    coro_future_set_result(L, (coro_future *)arg, 42);
}
#endif

static int app_fn(coro_ctx *c)
{
    struct app *f = CORO_SELF(c, struct app);
    coro_loop *L = c->loop;
    CORO_BEGIN(c);
    /* core: two tasks and a child frame */
    coro_spawn(L, &f->t1, worker(&f->w1, 0));
    coro_spawn(L, &f->t2, worker(&f->w2, 0));
    CORO_AWAIT(c, worker(&f->w3, 0));
    f->rc = c->rc;
    CORO_AWAIT_TASK(c, &f->t1);
    f->rc += c->rc;
    CORO_AWAIT_TASK(c, &f->t2);
    f->rc += coro_task_result(&f->t2);
    EXPECT(f->rc == 18);
#if CORO_SET >= 2
    /* timers, futures, signals */
    CORO_SLEEP(c, CORO_MS(2));
    coro_future_init(&f->fut);
    coro_call_later(L, &f->call, CORO_MS(1), complete_cb, &f->fut);
    CORO_AWAIT_FUTURE(c, &f->fut);
    EXPECT(coro_future_value(&f->fut) == 42);
    coro_signal_init(L, &f->sig, complete_cb, &f->fut);
    coro_future_init(&f->fut);
    coro_signal_raise(&f->sig); /* what an interrupt handler calls */
    CORO_AWAIT_FUTURE(c, &f->fut);
    coro_signal_remove(L, &f->sig);
    /* gather */
    coro_spawn(L, &f->t1, worker(&f->w1, CORO_MS(1)));
    coro_spawn(L, &f->t2, worker(&f->w2, CORO_MS(2)));
    f->futs[0] = coro_task_future(&f->t1);
    f->futs[1] = coro_task_future(&f->t2);
    coro_gather_start(L, &f->g, f->gi, f->futs, 2, 0);
    CORO_AWAIT_GATHER(c, &f->g);
    EXPECT(c->rc == 0 && coro_gather_result(&f->g, 1) == 6);
    /* wait (first completed), then cancel the rest */
    coro_spawn(L, &f->t1, worker(&f->w1, CORO_MS(1)));
    coro_spawn(L, &f->t2, worker(&f->w2, CORO_MS(5)));
    CORO_AWAIT(c, coro_wait_init(&f->op.wait, f->wi, f->futs, 2, CORO_FIRST_COMPLETED, CORO_MS(100)));
    EXPECT(coro_task_done(&f->t1) && !coro_task_done(&f->t2));
    coro_task_cancel(L, &f->t2);
    CORO_AWAIT_TASK(c, &f->t2);
    EXPECT(c->rc == CORO_ECANCELED);
    /* timeout scope, wait_for */
    CORO_TIMEOUT(c, &f->tm, CORO_MS(1), CORO_SLEEP(c, CORO_MS(10)));
    EXPECT(c->rc == CORO_ETIMEDOUT);
    coro_spawn(L, &f->t1, worker(&f->w1, CORO_MS(10)));
    CORO_AWAIT(c, coro_wait_for_init(&f->op.wait_for, coro_task_future(&f->t1), CORO_MS(1)));
    EXPECT(c->rc == CORO_ETIMEDOUT);
    /* shield */
    coro_spawn(L, &f->t1, worker(&f->w1, CORO_MS(1)));
    CORO_AWAIT_FUTURE(c, coro_shield_start(L, &f->sh, coro_task_future(&f->t1)));
    EXPECT(c->rc == 0);
    /* as_completed */
    coro_spawn(L, &f->t1, worker(&f->w1, CORO_MS(2)));
    coro_spawn(L, &f->t2, worker(&f->w2, CORO_MS(1)));
    coro_as_completed_init(L, &f->ac, f->ai, f->futs, 2, CORO_NEVER);
    CORO_AWAIT(c, coro_as_completed_next(&f->ac));
    EXPECT(c->rc == 1 && coro_as_completed_left(&f->ac) == 1);
    CORO_AWAIT(c, coro_as_completed_next(&f->ac));
    coro_as_completed_close(L, &f->ac);
    /* TaskGroup */
    coro_group_enter(c, &f->grp, f->errs, 2);
    coro_group_spawn(L, &f->grp, &f->gt[0], worker(&f->gw[0], CORO_MS(1)));
    coro_group_spawn(L, &f->grp, &f->gt[1], worker(&f->gw[1], CORO_MS(2)));
    CORO_AWAIT(c, coro_group_exit(&f->grp, 0));
    EXPECT(c->rc == 0 && coro_group_task_count(&f->grp) == 0 && coro_group_error_count(&f->grp) == 0);
#endif
#if CORO_SET >= 3
    CORO_AWAIT(c, coro_frame_init(&f->sync.co, syncer_fn));
    EXPECT(c->rc == 0 && f->sync.bad == 0);
#endif
    CORO_RETURN(c, f->bad);
    CORO_END(c);
}

int main(void)
{
    coro_loop L;
    coro_user_clock clock;
    coro_task t;
    coro_time now = 0;
    struct app app;
    coro__memset(&app, 0, sizeof app);
    coro_loop_init(&L, coro_user_clock_init(&clock, board_now, board_idle, &now));
    int rc = coro_run(&L, &t, coro_frame_init(&app.co, app_fn));
    coro_loop_close(&L);
    return rc == 0 ? 0 : 1;
}
#endif
