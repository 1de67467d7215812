/* test_loop.c - the loop: R-LOOP-*, sleep (R-SLEEP, T29-T30), timers,
 * run/stop/close (T116-T117), clocks, deadlock, diagnostics, coro_run
 * (R-RUN, T110-T111). */
#include "test.h"

static void trace_cb(coro_loop *L, void *arg)
{
    (void)L;
    TRACE("%s", (const char *)arg);
}

struct chained {
    coro_call first, second;
};

static void schedule_more(coro_loop *L, void *arg)
{
    struct chained *ch = (struct chained *)arg;
    TRACE("A");
    coro_call_soon(L, &ch->second, trace_cb, "A2");
}

TEST(R_LOOP_2_what_a_pass_schedules_runs_next_pass)
{
    coro_loop L;
    struct chained ch;
    coro_call b;
    test_loop(&L);
    coro_call_soon(&L, &ch.first, schedule_more, &ch);
    coro_call_soon(&L, &b, trace_cb, "B");
    coro_loop_run_once(&L);
    CHECK_TRACE("A B");
    coro_loop_run_once(&L);
    CHECK_TRACE("A2");
    coro_loop_close(&L);
}

/* ---- T29: sleep(0) lets exactly the already-queued handles run */
struct t29 {
    coro_frame co;
    coro_call k;
    int num;
};

static void inc_cb(coro_loop *L, void *arg)
{
    (void)L;
    ++*(int *)arg;
}

static int t29_fn(coro_ctx *c)
{
    struct t29 *f = CORO_SELF(c, struct t29);
    CORO_BEGIN(c);
    coro_call_soon(c->loop, &f->k, inc_cb, &f->num);
    CORO_YIELD(c);
    CORO_RETURN(c, f->num + 10);
    CORO_END(c);
}

TEST(T29_sleep_zero)
{
    coro_loop L;
    coro_task t;
    struct t29 f = {.num = 0};
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, t29_fn)), 11);
    CHECK_EQ(test_ms(&L), 0);
    coro_loop_close(&L);
}

struct t30 {
    coro_frame co;
};

static int t30_fn(coro_ctx *c)
{
    CORO_BEGIN(c);
    CORO_SLEEP(c, CORO_MS(50));
    CORO_SLEEP(c, CORO_MS(50));
    CORO_RETURN(c, 99);
    CORO_END(c);
}

TEST(T30_sleeps_add_up_on_the_clock)
{
    coro_loop L;
    coro_task t;
    struct t30 f;
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, t30_fn)), 99);
    CHECK_EQ(test_ms(&L), 100);
    coro_loop_close(&L);
}

TEST(T116_negative_delays_ordered_by_deadline)
{
    coro_loop L;
    coro_call a, b;
    test_loop(&L);
    coro_call_later(&L, &a, CORO_S(-1), trace_cb, "a");
    coro_call_later(&L, &b, CORO_S(-2), trace_cb, "b");
    coro_loop_run_once(&L);
    CHECK_TRACE("b a");
    coro_loop_close(&L);
}

TEST(equal_deadlines_fire_first_armed_first)
{
    coro_loop L;
    coro_call k[5];
    static const char *names[5] = {"0", "1", "2", "3", "4"};
    test_loop(&L);
    for (int i = 0; i < 5; i++) coro_call_at(&L, &k[i], CORO_MS(10), trace_cb, (void *)names[i]);
    while (coro_loop_run_once(&L) == 0 && test_ms(&L) < 10) {
    }
    CHECK_TRACE("0 1 2 3 4");
    coro_loop_close(&L);
}

static void reschedule_cb(coro_loop *L, void *arg)
{
    coro_call *k = (coro_call *)arg;
    TRACE("timer");
    coro_call_soon(L, k, trace_cb, "soon");
}

TEST(T116_timer_callback_call_soon_runs_next_pass)
{
    coro_loop L;
    coro_call t, s;
    test_loop(&L);
    coro_call_later(&L, &t, CORO_MS(1), reschedule_cb, &s);
    coro_loop_run_once(&L);
    CHECK_TRACE("timer");
    CHECK(coro_call_pending(&s));
    coro_loop_run_once(&L);
    CHECK_TRACE("soon");
    coro_loop_close(&L);
}

TEST(T116_stop_before_run_forever_polls_once)
{
    coro_loop L;
    coro_call t, s;
    test_loop(&L);
    coro_call_later(&L, &t, CORO_MS(5), trace_cb, "late");
    coro_call_soon(&L, &s, trace_cb, "now");
    coro_loop_stop(&L);
    CHECK_EQ(coro_loop_run_forever(&L), 0);
    CHECK_TRACE("now");
    CHECK_EQ(test_ms(&L), 0); /* the poll did not wait for the timer */
    CHECK(coro_call_pending(&t));
    coro_loop_close(&L);
}

TEST(call_cancel_queued_and_armed)
{
    coro_loop L;
    coro_call a, b, c;
    test_loop(&L);
    coro_call_soon(&L, &a, trace_cb, "a");
    coro_call_later(&L, &b, CORO_MS(1), trace_cb, "b");
    coro_call_soon(&L, &c, trace_cb, "c");
    CHECK_EQ(coro_call_cancel(&L, &a), 1);
    CHECK_EQ(coro_call_cancel(&L, &b), 1);
    CHECK_EQ(coro_call_cancel(&L, &b), 0);
    coro_loop_stop(&L);
    coro_loop_run_forever(&L);
    CHECK_TRACE("c");
    CHECK_EQ(coro_call_cancel(&L, &c), 0); /* it ran */
    CHECK_EQ(coro_loop_run_forever(&L), CORO_EDEADLK); /* nothing left at all */
    coro_loop_close(&L);
}

/* ---- the timer tree under load: random deadlines, random cancellations */
struct stamp {
    coro_call k;
    coro_time when;
    int id, fired, cancelled;
};

static coro_time last_when;
static int last_id, order_ok;

static void stamp_cb(coro_loop *L, void *arg)
{
    struct stamp *s = (struct stamp *)arg;
    (void)L;
    if (s->when < last_when || (s->when == last_when && s->id < last_id)) order_ok = 0;
    last_when = s->when;
    last_id = s->id;
    s->fired++;
}

TEST(timers_fire_sorted_under_random_load)
{
    enum { N = 20000 };
    coro_loop L;
    struct stamp *s = calloc(N, sizeof *s);
    unsigned seed = 12345;
    test_loop(&L);
    for (int i = 0; i < N; i++) {
        seed = seed * 1103515245u + 12345u;
        s[i].id = i;
        s[i].when = CORO_MS((seed >> 8) % 500); /* many equal deadlines */
        coro_call_at(&L, &s[i].k, s[i].when, stamp_cb, &s[i]);
    }
    for (int i = 0; i < N; i += 3) {
        seed = seed * 1103515245u + 12345u;
        int j = (int)((seed >> 8) % N);
        if (!s[j].cancelled) CHECK_EQ(coro_call_cancel(&L, &s[j].k), 1);
        s[j].cancelled = 1;
    }
    last_when = -1; /* before every deadline */
    last_id = -1;
    order_ok = 1;
    CHECK_EQ(coro_loop_run_forever(&L), CORO_EDEADLK);
    int bad = 0;
    for (int i = 0; i < N; i++) bad += s[i].fired != !s[i].cancelled;
    CHECK_EQ(bad, 0);
    CHECK(order_ok);
    CHECK(test_ms(&L) <= 499);
    coro_loop_close(&L);
    free(s);
}

/* ---- T117 */
struct nested {
    coro_frame co;
    int rc;
};

static int nested_fn(coro_ctx *c)
{
    struct nested *f = CORO_SELF(c, struct nested);
    CORO_BEGIN(c);
    f->rc = coro_loop_run_forever(c->loop);
    coro_loop_stop(c->loop);
    CORO_YIELD(c);
    CORO_RETURN(c, 1);
    CORO_END(c);
}

TEST(T117_nested_run_refused_and_stop_from_inside)
{
    coro_loop L;
    coro_task t;
    struct nested f = {.rc = 0};
    test_loop(&L);
    coro_spawn(&L, &t, coro_frame_init(&f.co, nested_fn));
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), CORO_EINTR);
    CHECK_EQ(f.rc, CORO_EBUSY);
    CHECK(!coro_loop_is_running(&L));
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), 1);
    coro_loop_close(&L);
}

static void close_from_inside(coro_loop *L, void *arg)
{
    *(int *)arg = coro_loop_close(L);
}

TEST(R_LOOP_7_close_rules)
{
    coro_loop L;
    coro_call k;
    int rc = 0;
    test_loop(&L);
    coro_call_soon(&L, &k, close_from_inside, &rc);
    coro_loop_stop(&L);
    coro_loop_run_forever(&L);
    CHECK_EQ(rc, CORO_EBUSY);
    CHECK(!coro_loop_is_closed(&L));
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK(coro_loop_is_closed(&L));
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(coro_loop_run_forever(&L), CORO_EINVAL);
}

/* ---- deadlock: waiting on a future nobody will set */
struct stuck {
    coro_frame co;
    coro_future f;
};

static int stuck_fn(coro_ctx *c)
{
    struct stuck *s = CORO_SELF(c, struct stuck);
    CORO_BEGIN(c);
    coro_future_init(&s->f);
    CORO_SLEEP(c, CORO_MS(3));
    CORO_AWAIT_FUTURE(c, &s->f);
    CORO_END(c);
}

TEST(deadlock_is_reported_not_hung)
{
    coro_loop L;
    coro_task t;
    struct stuck s;
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&s.co, stuck_fn)), CORO_EDEADLK);
    CHECK(coro_loop_deadlocked(&L));
    CHECK_EQ(test_ms(&L), 3);
    CHECK(!coro_task_done(&t));
    coro_loop_close(&L);
#if !defined(CORO_NO_DIAG) && !defined(CORO_NO_REGISTRY) /* the report */
    CHECK_EQ(test_report_kind(0), CORO_REPORT_PENDING);
#endif
}

/* ---- clocks */
struct tick_clock {
    coro_time now;
    int idles;
};

static coro_time tick_now(void *arg)
{
    return ((struct tick_clock *)arg)->now;
}

static int tick_idle(void *arg, coro_time timeout)
{
    struct tick_clock *k = (struct tick_clock *)arg;
    k->idles++;
    if (timeout < 0) return CORO_EDEADLK;
    k->now += CORO_MS(1); /* a 1 ms tick interrupt, like WFI waking */
    return 0;
}

TEST(user_clock_with_idle_hook)
{
    coro_loop L;
    coro_user_clock u;
    struct tick_clock k = {0, 0};
    coro_task t;
    struct t30 f;
    coro_loop_init(&L, coro_user_clock_init(&u, tick_now, tick_idle, &k));
    coro_loop_set_report(&L, NULL, NULL);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, t30_fn)), 99);
    CHECK_EQ(k.now, CORO_MS(100));
    CHECK_EQ(k.idles, 100);
    coro_loop_close(&L);
}

TEST(virtual_clock_advance_runs_nothing)
{
    coro_loop L;
    coro_call a;
    test_loop(&L);
    coro_call_later(&L, &a, CORO_MS(10), trace_cb, "a");
    coro_virtual_advance(&test__clock, CORO_MS(25)); /* a blocking call */
    CHECK_TRACE("");
    CHECK_EQ(test_ms(&L), 25);
    coro_loop_run_once(&L);
    CHECK_TRACE("a");
    CHECK_EQ(test_ms(&L), 25);
    coro_loop_close(&L);
}

#ifndef TEST_EMBEDDED /* needs the POSIX clock */
TEST(posix_clock_sleeps_for_real)
{
    coro_loop L;
    coro_task t;
    struct t30 f;
    coro_loop_init(&L, NULL);
    coro_time t0 = coro_loop_time(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, t30_fn)), 99);
    coro_time dt = coro_loop_time(&L) - t0;
    CHECK(dt >= CORO_MS(100));
    CHECK(dt < CORO_S(5));
    coro_loop_close(&L);
}
#endif

/* ---- diagnostics (CORO_NO_DIAG removes them) */
#if !defined(CORO_NO_DIAG)
static void slow_cb(coro_loop *L, void *arg)
{
    (void)L;
    coro_virtual_advance(&test__clock, *(coro_time *)arg);
}

static coro_time slow_seen;
static void capture_slow(coro_loop *L, const coro_report *r, void *arg)
{
    (void)L;
    (void)arg;
    if (r->kind == CORO_REPORT_SLOW) slow_seen = r->duration;
}

TEST(T118_slow_steps_are_reported)
{
    coro_loop L;
    coro_call a, b;
    coro_time slow = CORO_MS(150), fast = CORO_MS(10);
    test_loop(&L);
    coro_loop_set_report(&L, capture_slow, NULL);
    coro_loop_set_slow_threshold(&L, CORO_MS(100));
    slow_seen = 0;
    coro_call_soon(&L, &a, slow_cb, &fast);
    coro_loop_run_once(&L);
    CHECK_EQ(slow_seen, 0);
    coro_call_soon(&L, &b, slow_cb, &slow);
    coro_loop_run_once(&L);
    CHECK_EQ(slow_seen, CORO_MS(150));
    coro_loop_close(&L);
}

#ifndef CORO_NO_REGISTRY /* coro_loop_dump walks the task list */
static char dump_buf[4096];
static void dump_write(void *arg, const char *s, size_t n)
{
    (void)arg;
    strncat(dump_buf, s, n);
}

struct deep {
    coro_frame co;
    struct t30 inner;
};

static int deep_fn(coro_ctx *c)
{
    struct deep *f = CORO_SELF(c, struct deep);
    CORO_BEGIN(c);
    CORO_AWAIT(c, coro_frame_init(&f->inner.co, t30_fn));
    CORO_END(c);
}

TEST(dump_lists_tasks_states_and_lines)
{
    coro_loop L;
    coro_task a, b;
    struct deep fa;
    struct stuck fb;
    test_loop(&L);
    coro_spawn_named(&L, &a, coro_frame_init(&fa.co, deep_fn), "worker");
    coro_spawn(&L, &b, coro_frame_init(&fb.co, stuck_fn));
    coro_loop_run_once(&L);
    dump_buf[0] = 0;
    coro_loop_dump(&L, dump_write, NULL);
    CHECK(strstr(dump_buf, "task worker: sleeping\n") != NULL);
    CHECK(strstr(dump_buf, "task @0x") != NULL);
    char line[32];
    snprintf(line, sizeof line, " line %u\n", coro_frame_line(&fa.inner.co));
    CHECK(coro_frame_line(&fa.inner.co) > 0);
    CHECK(strstr(dump_buf, line) != NULL);
    coro_future_set_result(&L, &fb.f, 0);
    CHECK_EQ(coro_loop_run_until_complete(&L, &b), 0);
    CHECK_EQ(coro_loop_run_until_complete(&L, &a), 0);
    CHECK_EQ(coro_loop_task_count(&L), 0);
    coro_loop_close(&L);
    CHECK_EQ(test_reports(), 0);
}
#endif /* CORO_NO_REGISTRY */
#endif /* CORO_NO_DIAG */

/* ---- coro_run: T110, T111, shutdown order */
#ifndef CORO_NO_REGISTRY /* coro_run's shutdown */
struct looper {
    coro_frame co;
    const char *name;
};

static int looper_fn(coro_ctx *c)
{
    struct looper *f = CORO_SELF(c, struct looper);
    CORO_BEGIN(c);
    for (;;) {
        TRACE("%s", f->name);
        CORO_YIELD(c);
        if (c->rc < 0) {
            TRACE("%sx", f->name);
            CORO_FAIL(c, c->rc);
        }
    }
    CORO_END(c);
}

struct swallower {
    coro_frame co;
    int fail;
};

static int swallower_fn(coro_ctx *c)
{
    struct swallower *f = CORO_SELF(c, struct swallower);
    CORO_BEGIN(c);
    CORO_SLEEP(c, CORO_S(100));
    TRACE("sw-caught");
    CORO_SLEEP(c, CORO_MS(5));
    TRACE("sw-done");
    if (f->fail) CORO_FAIL(c, CORO_EUSER(1));
    CORO_RETURN(c, 5);
    CORO_END(c);
}

struct runmain {
    coro_frame co;
    coro_task a, s, b;
    struct looper la, lb;
    struct swallower sw;
    int fail;
};

static int runmain_fn(coro_ctx *c)
{
    struct runmain *f = CORO_SELF(c, struct runmain);
    CORO_BEGIN(c);
    f->la.name = "a";
    f->lb.name = "b";
    f->sw.fail = f->fail;
    coro_spawn(c->loop, &f->a, coro_frame_init(&f->la.co, looper_fn));
    coro_spawn(c->loop, &f->s, coro_frame_init(&f->sw.co, swallower_fn));
    coro_spawn(c->loop, &f->b, coro_frame_init(&f->lb.co, looper_fn));
    CORO_YIELD(c);
    TRACE("main-end");
    if (f->fail) CORO_FAIL(c, CORO_EUSER(9));
    CORO_RETURN(c, 42);
    CORO_END(c);
}

/* CPython 3.13, asyncio.Runner on a virtual clock:
 *   "a b main-end a b ax bx sw-caught sw-done", time 0.005: the loop runs
 *   one more pass after main ends (the stop callback's), then cancels; the
 *   loopers were already queued, the sleeper's wake-up goes behind them. */
TEST(T110_T111_run_returns_and_cancels_leftovers_in_creation_order)
{
    coro_loop L;
    coro_task t;
    struct runmain f;
    memset(&f, 0, sizeof f);
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, runmain_fn)), 42);
    CHECK_TRACE("a b main-end a b ax bx sw-caught sw-done");
    CHECK_EQ(test_ms(&L), 5);
    CHECK(coro_task_cancelled(&f.a));
    CHECK(coro_task_cancelled(&f.b));
    CHECK_EQ(coro_task_result(&f.s), 5);
    CHECK_EQ(coro_loop_task_count(&L), 0);
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0);
}

TEST(T110_T111_run_propagates_error_and_reports_shutdown_failures)
{
    coro_loop L;
    coro_task t;
    struct runmain f;
    memset(&f, 0, sizeof f);
    f.fail = 1;
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, runmain_fn)), CORO_EUSER(9));
    CHECK_EQ(coro_task_error(&f.s), CORO_EUSER(1));
    CHECK_EQ(coro_loop_close(&L), 0);
#if !defined(CORO_NO_DIAG) && !defined(CORO_NO_REGISTRY) /* the report */
    CHECK_EQ(test_reports(), 1);
    CHECK_EQ(test_report_kind(0), CORO_REPORT_SHUTDOWN_ERROR);
#endif
}
#endif

TEST(run_on_closed_loop_is_refused)
{
    coro_loop L;
    coro_task t;
    struct t30 f;
    test_loop(&L);
    coro_loop_close(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, t30_fn)), CORO_EINVAL);
}

#ifndef TEST_EMBEDDED /* the POSIX backend and stderr reports */
TEST(default_backend_and_report_handler)
{
    coro_loop L;
    CHECK_EQ(coro_loop_init(&L, NULL), 0);
    CHECK(L.backend == &L.builtin);
#ifndef CORO_NO_DIAG
    CHECK(L.report != NULL);
#endif
    coro_loop_close(&L);
}
#endif

/* ---- signals: the interrupt-handler entry point */
struct irq_board {
    coro_time now;
    int ticks, fire_at;
    coro_signal *sig;
    int masked_checks;
    coro_loop *L;
};

static coro_time irq_now(void *arg)
{
    return ((struct irq_board *)arg)->now;
}

/* An idle hook like a firmware's: mask interrupts, check for a pending
 * signal, sleep (WFI) until the next tick; the "interrupt" on tick
 * fire_at raises the signal as an ISR would. */
static int irq_idle(void *arg, coro_time timeout)
{
    struct irq_board *b = (struct irq_board *)arg;
    if (coro_loop_signal_pending(b->L)) {
        b->masked_checks++;
        return 0;
    }
    if (timeout < 0 && b->ticks >= b->fire_at + 5) return CORO_EDEADLK;
    b->now += CORO_MS(1);
    if (++b->ticks == b->fire_at) {
        coro_signal_raise(b->sig);
        coro_signal_raise(b->sig); /* coalesced with the first */
    }
    return 0;
}

static void irq_cb(coro_loop *L, void *arg)
{
    TRACE("irq@%ld", test_ms(L));
    coro_future *f = (coro_future *)arg;
    if (!coro_future_done(f)) coro_future_set_result(L, f, 7);
}

struct irq_waiter {
    coro_frame co;
    coro_future *f;
};

static int irq_waiter_fn(coro_ctx *c)
{
    struct irq_waiter *w = CORO_SELF(c, struct irq_waiter);
    CORO_BEGIN(c);
    CORO_AWAIT_FUTURE(c, w->f);
    TRACE("woke@%ld", test_ms(c->loop));
    CORO_RETURN(c, (int)coro_future_value(w->f));
    CORO_END(c);
}

TEST(signal_from_interrupt_wakes_a_task)
{
    coro_loop L;
    coro_user_clock u;
    coro_signal sig;
    coro_future f = CORO_FUTURE_INIT;
    struct irq_board b = {0, 0, 25, &sig, 0, &L};
    struct irq_waiter w = {.f = &f};
    coro_task t;
    coro_loop_init(&L, coro_user_clock_init(&u, irq_now, irq_idle, &b));
    coro_loop_set_report(&L, NULL, NULL);
    coro_signal_init(&L, &sig, irq_cb, &f);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&w.co, irq_waiter_fn)), 7);
    CHECK_TRACE("irq@25 woke@25"); /* one callback for two raises */
    CHECK_EQ(b.ticks, 25);
    coro_signal_remove(&L, &sig);
    coro_signal_raise(&sig); /* removed: nobody looks any more */
    CHECK_EQ(coro_loop_signal_pending(&L), 0);
    coro_loop_close(&L);
}

TEST(signal_pending_is_seen_before_sleeping)
{
    coro_loop L;
    coro_signal sig;
    coro_future f = CORO_FUTURE_INIT;
    test_loop(&L);
    coro_signal_init(&L, &sig, irq_cb, &f);
    CHECK_EQ(coro_loop_signal_pending(&L), 0);
    coro_signal_raise(&sig);
    CHECK_EQ(coro_loop_signal_pending(&L), 1);
    coro_loop_run_once(&L); /* collected at the poll step and run in the
                               same iteration, like an I/O callback */
    CHECK_EQ(coro_loop_signal_pending(&L), 0);
    CHECK_TRACE("irq@0");
    CHECK_EQ(coro_future_value(&f), 7);
    coro_signal_remove(&L, &sig);
    coro_loop_close(&L);
}

#ifndef TEST_EMBEDDED /* threads and the POSIX clock */
#include <pthread.h>

static void *raise_later(void *arg)
{
    struct timespec ts = {0, 20 * 1000000};
    nanosleep(&ts, NULL);
    coro_signal_raise((coro_signal *)arg);
    return NULL;
}

TEST(signal_from_another_thread_on_the_posix_clock)
{
    coro_loop L;
    coro_signal sig;
    coro_future f = CORO_FUTURE_INIT;
    struct irq_waiter w = {.f = &f};
    coro_task t;
    pthread_t th;
    coro_loop_init(&L, NULL);
    coro_loop_set_report(&L, NULL, NULL);
    coro_signal_init(&L, &sig, irq_cb, &f);
    test__trace[0] = 0;
    pthread_create(&th, NULL, raise_later, &sig);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&w.co, irq_waiter_fn)), 7);
    pthread_join(th, NULL);
    coro_signal_remove(&L, &sig);
    coro_loop_close(&L);
}
#endif
