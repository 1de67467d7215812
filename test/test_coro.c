/* test_coro.c - the coroutine mechanics of coro.h: frames, child awaits,
 * results and errors, CORO_TRY / CORO_FINALLY, misuse traps, and the
 * leaf-resume driver (cost independent of depth, no recursion). */
#include "test.h"

/* ---- a child that adds, or fails on negative input */
struct add {
    coro_frame co;
    int a, b, calls;
};

static int add_fn(coro_ctx *c)
{
    struct add *f = CORO_SELF(c, struct add);
    f->calls++;
    CORO_BEGIN(c);
    if (f->a < 0) CORO_FAIL(c, CORO_EUSER(f->b));
    CORO_RETURN(c, f->a + f->b);
    CORO_END(c);
}

static coro_frame *add(struct add *f, int a, int b)
{
    f->a = a;
    f->b = b;
    f->calls = 0;
    return coro_frame_init(&f->co, add_fn);
}

/* ---- a parent using AWAIT, TRY and FINALLY */
struct parent {
    coro_frame co;
    struct add child;
    int first, second, after_try, cleanups, fail_at;
};

static int parent_fn(coro_ctx *c)
{
    struct parent *p = CORO_SELF(c, struct parent);
    CORO_BEGIN(c);
    CORO_AWAIT(c, add(&p->child, 1, 2));
    p->first = c->rc;
    CORO_TRY(c, add(&p->child, p->fail_at == 2 ? -1 : p->first, 7));
    p->second = c->rc;
    CORO_TRY(c, add(&p->child, p->fail_at == 3 ? -1 : 0, 9));
    p->after_try = 1;
    CORO_FINALLY(c);
    p->cleanups++;
    CORO_END(c);
}

static coro_frame *parent(struct parent *p, int fail_at)
{
    memset(p, 0, sizeof *p);
    p->fail_at = fail_at;
    return coro_frame_init(&p->co, parent_fn);
}

TEST(await_child_hands_back_value)
{
    struct parent p;
    CHECK_EQ(coro_frame_run(parent(&p, 0)), 0);
    CHECK_EQ(p.first, 3);
    CHECK_EQ(p.second, 10);
    CHECK_EQ(p.after_try, 1);
    CHECK_EQ(p.cleanups, 1);
    CHECK(coro_frame_done(&p.co));
}

TEST(try_propagates_error_and_runs_finally)
{
    struct parent p;
    CHECK_EQ(coro_frame_run(parent(&p, 2)), CORO_EUSER(7));
    CHECK_EQ(p.first, 3);
    CHECK_EQ(p.second, 0); /* the statement after the failed TRY never ran */
    CHECK_EQ(p.cleanups, 1);
    CHECK_EQ(coro_frame_run(parent(&p, 3)), CORO_EUSER(9));
    CHECK_EQ(p.second, 10);
    CHECK_EQ(p.after_try, 0);
    CHECK_EQ(p.cleanups, 1);
}

TEST(child_called_once_per_resume)
{
    struct add a;
    CHECK_EQ(coro_frame_run(add(&a, 2, 3)), 5);
    CHECK_EQ(a.calls, 1);
    CHECK_EQ(coro_frame_result(&a.co), 5);
}

/* ---- RETURN before FINALLY keeps its value; RETURN inside FINALLY wins */
struct fin {
    coro_frame co;
    int mode, ran;
};

static int fin_fn(coro_ctx *c)
{
    struct fin *f = CORO_SELF(c, struct fin);
    CORO_BEGIN(c);
    if (f->mode == 1) CORO_RETURN(c, 11);
    if (f->mode == 2) CORO_FAIL(c, CORO_EINVAL);
    CORO_FINALLY(c);
    f->ran++;
    if (f->mode == 3) CORO_RETURN(c, 33);
    CORO_END(c);
}

TEST(finally_runs_on_return_error_and_fallthrough)
{
    struct fin f;
    for (int mode = 0; mode < 4; mode++) {
        memset(&f, 0, sizeof f);
        f.mode = mode;
        int rc = coro_frame_run(coro_frame_init(&f.co, fin_fn));
        CHECK_EQ(f.ran, 1);
        CHECK_EQ(rc, mode == 1 ? 11 : mode == 2 ? CORO_EINVAL : mode == 3 ? 33 : 0);
    }
}

/* ---- CORO_CHECK after a plain await */
struct checker {
    coro_frame co;
    struct add a;
    int reached;
};

static int checker_fn(coro_ctx *c)
{
    struct checker *f = CORO_SELF(c, struct checker);
    CORO_BEGIN(c);
    CORO_AWAIT(c, add(&f->a, -1, 4));
    CORO_CHECK(c);
    f->reached = 1;
    CORO_END(c);
}

TEST(check_propagates_last_error)
{
    struct checker f;
    memset(&f, 0, sizeof f);
    CHECK_EQ(coro_frame_run(coro_frame_init(&f.co, checker_fn)), CORO_EUSER(4));
    CHECK_EQ(f.reached, 0);
}

/* ---- a finally part that awaits keeps the pending result (needs a loop) */
struct slowfin {
    coro_frame co;
    int fail;
};

static int slowfin_fn(coro_ctx *c)
{
    struct slowfin *f = CORO_SELF(c, struct slowfin);
    CORO_BEGIN(c);
    CORO_SLEEP(c, CORO_MS(5));
    if (f->fail) CORO_FAIL(c, CORO_EUSER(1));
    CORO_RETURN(c, 17);
    CORO_FINALLY(c);
    TRACE("fin@%ld", (long)(coro_loop_time(c->loop) / CORO_MS(1)));
    CORO_SLEEP(c, CORO_MS(10));
    CORO_YIELD(c);
    TRACE("fin-done@%ld", (long)(coro_loop_time(c->loop) / CORO_MS(1)));
    CORO_END(c);
}

TEST(finally_may_await_and_keeps_result)
{
    for (int fail = 0; fail < 2; fail++) {
        coro_loop L;
        coro_task t;
        struct slowfin f = {.fail = fail};
        test_loop(&L);
        CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, slowfin_fn)),
                 fail ? CORO_EUSER(1) : 17);
        CHECK_TRACE("fin@5 fin-done@15");
        CHECK_EQ(coro_loop_close(&L), 0);
    }
}

/* ---- many resume points in one function: ids stay unique */
struct many {
    coro_frame co;
    int n;
};

static int many_fn(coro_ctx *c)
{
    struct many *f = CORO_SELF(c, struct many);
    CORO_BEGIN(c);
    CORO_YIELD(c); f->n++; CORO_YIELD(c); f->n++; CORO_YIELD(c); f->n++;
    CORO_YIELD(c); f->n++; CORO_YIELD(c); f->n++; CORO_YIELD(c); f->n++;
    CORO_YIELD(c); f->n++; CORO_YIELD(c); f->n++; CORO_YIELD(c); f->n++;
    CORO_RETURN(c, f->n);
    CORO_END(c);
}

TEST(resume_points_on_one_line_are_distinct)
{
    coro_loop L;
    coro_task t;
    struct many f = {.n = 0};
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, coro_frame_init(&f.co, many_fn)), 9);
    coro_loop_close(&L);
}

/* ---- misuse traps */
struct switcher {
    coro_frame co;
    int mode;
};

static int switcher_fn(coro_ctx *c)
{
    struct switcher *f = CORO_SELF(c, struct switcher);
    CORO_BEGIN(c);
    switch (f->mode) { /* an await inside a user switch: the classic bug */
    case 0:
        CORO_YIELD(c);
        break;
    default:
        break;
    }
    CORO_END(c);
}

static void yield_in_user_switch(void)
{
    coro_loop L;
    coro_task t;
    struct switcher f = {.mode = 0};
    test_loop(&L);
    coro_run(&L, &t, coro_frame_init(&f.co, switcher_fn));
}

static void await_finished_frame(void)
{
    struct add a;
    coro_frame_run(add(&a, 1, 1));
    coro_frame_run(&a.co); /* finished, not re-initialised */
}

static void yield_outside_task(void)
{
    struct many f = {.n = 0};
    coro_frame_run(coro_frame_init(&f.co, many_fn));
}

static void corrupted_state(void)
{
    struct add a;
    add(&a, 1, 1);
    a.co.state = 0x1234; /* no such resume point */
    coro_frame_run(&a.co);
}

TEST(misuse_traps_loudly)
{
    CHECK_TRAPS(yield_in_user_switch);
    CHECK_TRAPS(await_finished_frame);
    CHECK_TRAPS(yield_outside_task);
    CHECK_TRAPS(corrupted_state);
}

TEST(a_zeroed_frame_starts)
{
    struct add a;
    memset(&a, 0, sizeof a);
    a.co.fn = add_fn;
    a.a = 4;
    a.b = 5;
    CHECK_EQ(coro_frame_run(&a.co), 9);
}

/* ---- leaf resume: a deep chain costs one call per resume, no recursion */
struct level {
    coro_frame co;
    int depth, yields, calls;
    struct level *below;
};

static int level_fn(coro_ctx *c)
{
    struct level *f = CORO_SELF(c, struct level);
    f->calls++;
    CORO_BEGIN(c);
    if (f->below) {
        f->below->yields = f->yields;
        CORO_AWAIT(c, coro_frame_init(&f->below->co, level_fn));
        CORO_RETURN(c, c->rc + 1);
    }
    while (f->yields-- > 0) CORO_YIELD(c);
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static struct level *chain(int depth, int yields)
{
    struct level *v = calloc((size_t)depth, sizeof *v);
    for (int i = 0; i < depth; i++) {
        v[i].depth = i;
        v[i].below = i + 1 < depth ? &v[i + 1] : NULL;
    }
    v[0].yields = yields;
    coro_frame_init(&v[0].co, level_fn);
    return v;
}

TEST(resume_calls_only_the_leaf)
{
    coro_loop L;
    coro_task t;
    struct level *v = chain(16, 100);
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, &v[0].co), 15);
    for (int i = 0; i < 15; i++) CHECK_EQ(v[i].calls, 2); /* start + child done */
    CHECK_EQ(v[15].calls, 101);                           /* start + 100 resumes */
    coro_loop_close(&L);
    free(v);
}

TEST(depth_100000_chain_needs_no_stack)
{
    coro_loop L;
    coro_task t;
    struct level *v = chain(100000, 3);
    test_loop(&L);
    CHECK_EQ(coro_run(&L, &t, &v[0].co), 99999);
    coro_loop_close(&L);
    free(v);
}

TEST(strerror_and_user_codes)
{
    CHECK(coro_is_user_error(CORO_EUSER(0)));
    CHECK(coro_is_user_error(CORO_EUSER(CORO_EUSER_MAX)));
    CHECK(!coro_is_user_error(CORO_EUSER(CORO_EUSER_MAX + 1)));
    CHECK(!coro_is_user_error(CORO_ECANCELED));
    CHECK(!coro_is_user_error(0));
    CHECK_STR(coro_strerror(CORO_ECANCELED), "cancelled");
    CHECK_STR(coro_strerror(CORO_ETIMEDOUT), "timed out");
    CHECK_STR(coro_strerror(CORO_EUSER(3)), "user error");
    CHECK_STR(coro_strerror(0), "success");
    CHECK(CORO_EGROUP < -133 && CORO_EGROUP > CORO_EUSER(0));
}

TEST(layout_sizes)
{
    /* The memory claims rest on these (64-bit targets). */
    if (sizeof(void *) == 8) {
        CHECK_EQ(sizeof(coro_frame), 24);
        CHECK_EQ(sizeof(coro_handle), 32);
        CHECK_EQ(sizeof(coro_future), 16);
#ifdef CORO_NO_REGISTRY
        CHECK_EQ(sizeof(coro_task), 48);
#else
        CHECK_EQ(sizeof(coro_task), 64);
#endif
    }
    /* 32-bit targets: make size's RAM table. */
    if (sizeof(void *) == 4) {
        CHECK_EQ(sizeof(coro_frame), 16);
        CHECK_EQ(sizeof(coro_future), 8);
#if defined(CORO_TIME32) && defined(CORO_TIMER_LIST)
        CHECK_EQ(sizeof(coro_handle), 16);
#else
        CHECK_EQ(sizeof(coro_handle), 24);
#endif
#ifdef CORO_NO_REGISTRY
        CHECK_EQ(sizeof(coro_task), sizeof(coro_handle) + 8);
#else
        CHECK_EQ(sizeof(coro_task), sizeof(coro_handle) + 16);
#endif
    }
}
