/* test_future.c - futures (R-FUT, T01-T05) and awaiting them. */
#include "test.h"

TEST(T01_initial_state_and_cancel)
{
    coro_loop L;
    coro_future f = CORO_FUTURE_INIT;
    test_loop(&L);
    CHECK(!coro_future_done(&f));
    CHECK(!coro_future_cancelled(&f));
    CHECK_EQ(coro_future_rc(&f), CORO_EAGAIN); /* "Result is not ready" */
    CHECK_EQ(coro_future_cancel(&L, &f), 1);
    CHECK(coro_future_done(&f));
    CHECK(coro_future_cancelled(&f));
    CHECK_EQ(coro_future_rc(&f), CORO_ECANCELED);
    CHECK_EQ(coro_future_set_result(&L, &f, 1), CORO_EINVAL);
    CHECK_EQ(coro_future_set_error(&L, &f, CORO_EUSER(1)), CORO_EINVAL);
    CHECK_EQ(coro_future_cancel(&L, &f), 0);
    coro_loop_close(&L);
}

TEST(T02_result_and_error)
{
    coro_loop L;
    coro_future f, g;
    test_loop(&L);
    coro_future_init(&f);
    coro_future_init(&g);
    CHECK_EQ(coro_future_set_result(&L, &f, 42), 0);
    CHECK_EQ(coro_future_state(&f), CORO_FUTURE_RESULT);
    CHECK_EQ(coro_future_value(&f), 42);
    CHECK_EQ(coro_future_rc(&f), 0);
    CHECK_EQ(coro_future_set_result(&L, &f, 43), CORO_EINVAL);
    CHECK_EQ(coro_future_cancel(&L, &f), 0);
    CHECK_EQ(coro_future_value(&f), 42);
    CHECK_EQ(coro_future_set_error(&L, &g, 5), CORO_EINVAL); /* not an error code */
    CHECK_EQ(coro_future_set_error(&L, &g, CORO_EUSER(2)), 0);
    CHECK_EQ(coro_future_state(&g), CORO_FUTURE_ERROR);
    CHECK_EQ(coro_future_rc(&g), CORO_EUSER(2));
    CHECK_EQ(coro_future_value(&g), 0);
    coro_loop_close(&L);
}

static void bag_cb(coro_loop *L, void *arg)
{
    (void)L;
    TRACE("%d", (int)(intptr_t)arg);
}

TEST(T03_callbacks_run_next_iteration_in_order)
{
    coro_loop L;
    coro_future f = CORO_FUTURE_INIT;
    coro_call c42, c17;
    test_loop(&L);
    coro_future_add_done_callback(&L, &f, &c42, bag_cb, (void *)42);
    coro_future_add_done_callback(&L, &f, &c17, bag_cb, (void *)17);
    coro_future_set_result(&L, &f, 0);
    CHECK_TRACE(""); /* never called inline */
    coro_loop_run_once(&L);
    CHECK_TRACE("42 17");
    coro_loop_close(&L);
}

TEST(T03_callback_on_done_future_is_scheduled_not_called)
{
    coro_loop L;
    coro_future f = CORO_FUTURE_INIT;
    coro_call k;
    test_loop(&L);
    coro_future_set_result(&L, &f, 1);
    coro_future_add_done_callback(&L, &f, &k, bag_cb, (void *)5);
    CHECK_TRACE("");
    coro_loop_run_once(&L);
    CHECK_TRACE("5");
    coro_loop_close(&L);
}

TEST(T04_remove_done_callback)
{
    coro_loop L;
    coro_future f = CORO_FUTURE_INIT;
    coro_call k1, k2, k3, k4 = {0};
    test_loop(&L);
    coro_future_add_done_callback(&L, &f, &k1, bag_cb, (void *)1);
    coro_future_add_done_callback(&L, &f, &k2, bag_cb, (void *)2);
    coro_future_add_done_callback(&L, &f, &k3, bag_cb, (void *)3);
    CHECK_EQ(coro_future_remove_done_callback(&L, &f, &k2), 1);
    CHECK_EQ(coro_future_remove_done_callback(&L, &f, &k2), 0);
    CHECK_EQ(coro_future_remove_done_callback(&L, &f, &k3), 1); /* the tail */
    CHECK_EQ(coro_future_remove_done_callback(&L, &f, &k4 /* never added */), 0);
    coro_future_add_done_callback(&L, &f, &k2, bag_cb, (void *)2);
    CHECK_EQ(coro_future_remove_done_callback(&L, &f, &k1), 1); /* the head */
    coro_future_set_result(&L, &f, 0);
    coro_loop_run_once(&L);
    CHECK_TRACE("2");
    coro_loop_close(&L);
}

TEST(remove_scheduled_callback_cancels_it)
{
    coro_loop L;
    coro_future f = CORO_FUTURE_INIT;
    coro_call k1, k2;
    test_loop(&L);
    coro_future_add_done_callback(&L, &f, &k1, bag_cb, (void *)1);
    coro_future_add_done_callback(&L, &f, &k2, bag_cb, (void *)2);
    coro_future_set_result(&L, &f, 0);
    CHECK_EQ(coro_future_remove_done_callback(&L, &f, &k1), 1);
    coro_loop_run_once(&L);
    CHECK_TRACE("2");
    coro_loop_close(&L);
}

/* ---- awaiting a future from a task */
struct waiter {
    coro_frame co;
    coro_future *f;
    int rc;
};

static int waiter_fn(coro_ctx *c)
{
    struct waiter *w = CORO_SELF(c, struct waiter);
    CORO_BEGIN(c);
    TRACE("wait");
    CORO_AWAIT_FUTURE(c, w->f);
    w->rc = c->rc;
    TRACE("woke%d", c->rc);
    CORO_RETURN(c, c->rc < 0 ? c->rc : (int)coro_future_value(w->f));
    CORO_END(c);
}

static coro_frame *waiter(struct waiter *w, coro_future *f)
{
    w->f = f;
    w->rc = 99;
    return coro_frame_init(&w->co, waiter_fn);
}

TEST(await_done_future_does_not_suspend)
{
    coro_loop L;
    coro_future f = CORO_FUTURE_INIT;
    struct waiter w;
    coro_task t;
    test_loop(&L);
    coro_future_set_result(&L, &f, 7);
    coro_spawn(&L, &t, waiter(&w, &f));
    coro_loop_run_once(&L); /* one step: starts and finishes */
    CHECK(coro_task_done(&t));
    CHECK_EQ(coro_task_result(&t), 7);
    CHECK_TRACE("wait woke0");
    coro_loop_close(&L);
}

static void set_later(coro_loop *L, void *arg)
{
    coro_future_set_result(L, (coro_future *)arg, 5);
}

TEST(await_pending_future_wakes_one_pass_after_it_completes)
{
    coro_loop L;
    coro_future f = CORO_FUTURE_INIT;
    struct waiter w;
    coro_task t;
    coro_call k;
    test_loop(&L);
    coro_spawn(&L, &t, waiter(&w, &f));
    coro_call_later(&L, &k, CORO_MS(30), set_later, &f);
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), 5);
    CHECK_EQ(test_ms(&L), 30);
    CHECK_TRACE("wait woke0");
    coro_loop_close(&L);
}

TEST(T10_cancelling_inner_future_cancels_task)
{
    coro_loop L;
    coro_future f = CORO_FUTURE_INIT;
    struct waiter w;
    coro_task t;
    test_loop(&L);
    coro_spawn(&L, &t, waiter(&w, &f));
    coro_loop_run_once(&L);
    CHECK_EQ(coro_future_cancel(&L, &f), 1);
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), CORO_ECANCELED);
    CHECK(coro_task_cancelled(&t));
    CHECK_EQ(w.rc, CORO_ECANCELED);
    coro_loop_close(&L);
}

TEST(T10_cancelling_task_cancels_awaited_future)
{
    coro_loop L;
    coro_future f = CORO_FUTURE_INIT;
    struct waiter w;
    coro_task t;
    test_loop(&L);
    coro_spawn(&L, &t, waiter(&w, &f));
    coro_loop_run_once(&L);
    CHECK_EQ(coro_task_cancel(&L, &t), 1);
    CHECK(coro_future_cancelled(&f)); /* forwarded at once */
    CHECK(!coro_task_done(&t));       /* a request, not a state change */
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), CORO_ECANCELED);
    CHECK(coro_task_cancelled(&t));
    coro_loop_close(&L);
}

TEST(future_error_reaches_awaiter)
{
    coro_loop L;
    coro_future f = CORO_FUTURE_INIT;
    struct waiter w;
    coro_task t;
    test_loop(&L);
    coro_spawn(&L, &t, waiter(&w, &f));
    coro_loop_run_once(&L);
    coro_future_set_error(&L, &f, CORO_EUSER(3));
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), CORO_EUSER(3));
    CHECK_EQ(w.rc, CORO_EUSER(3));
    CHECK_EQ(coro_loop_close(&L), 0);
    CHECK_EQ(test_reports(), 0); /* the error was retrieved by run_until_complete */
}

TEST(T25_task_future_cannot_be_set)
{
    coro_loop L;
    coro_future f = CORO_FUTURE_INIT;
    struct waiter w;
    coro_task t;
    test_loop(&L);
    coro_spawn(&L, &t, waiter(&w, &f));
    CHECK_EQ(coro_future_set_result(&L, coro_task_future(&t), 1), CORO_EINVAL);
    CHECK_EQ(coro_future_set_error(&L, coro_task_future(&t), CORO_EUSER(0)), CORO_EINVAL);
    coro_future_set_result(&L, &f, 3);
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), 3);
    coro_loop_close(&L);
}

/* A file-scope future awaited: gcc -O2 -Warray-bounds once mistook it for a
 * task's (this file is built with -O2 -Werror). */
static coro_future global_gate;

TEST(await_file_scope_future)
{
    coro_loop L;
    struct waiter w;
    coro_task t;
    test_loop(&L);
    coro_future_init(&global_gate);
    coro_spawn(&L, &t, waiter(&w, &global_gate));
    coro_loop_run_once(&L);
    coro_future_set_result(&L, &global_gate, 11);
    CHECK_EQ(coro_loop_run_until_complete(&L, &t), 11);
    coro_loop_close(&L);
}
