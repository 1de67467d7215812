/* Awaiting coroutines one after the other takes the sum of their times;
 * running them as tasks takes the longest.
 *
 *   await say_after(1, 'hello'); await say_after(2, 'world')       # 3 s
 *   t1 = create_task(say_after(1, 'hello'))
 *   t2 = create_task(say_after(2, 'world')); await t1; await t2   # 2 s
 */
#include "example.h"

struct say_after { coro_frame co; int64_t delay; const char *what; };

static int say_after_fn(coro_ctx *c)
{
    struct say_after *f = CORO_SELF(c, struct say_after);
    CORO_BEGIN(c);
    CORO_SLEEP(c, f->delay);
    printf("  %.1f s: %s\n", example_secs(c->loop), f->what);
    CORO_END(c);
}

static coro_frame *say_after(struct say_after *f, int64_t delay, const char *what)
{
    f->delay = delay;
    f->what = what;
    return coro_frame_init(&f->co, say_after_fn);
}

struct app { coro_frame co; struct say_after s1, s2; coro_task t1, t2; double start; };

static int app_fn(coro_ctx *c)
{
    struct app *a = CORO_SELF(c, struct app);
    CORO_BEGIN(c);
    printf("in sequence:\n");
    CORO_AWAIT(c, say_after(&a->s1, CORO_S(1), "hello"));
    CORO_AWAIT(c, say_after(&a->s2, CORO_S(2), "world"));
    printf("in parallel:\n");
    a->start = example_secs(c->loop);
    coro_spawn(c->loop, &a->t1, say_after(&a->s1, CORO_S(1), "hello"));
    coro_spawn(c->loop, &a->t2, say_after(&a->s2, CORO_S(2), "world"));
    CORO_AWAIT_TASK(c, &a->t1);
    CORO_AWAIT_TASK(c, &a->t2);
    printf("sequence took 3.0 s, parallel took %.1f s\n", example_secs(c->loop) - a->start);
    CORO_END(c);
}

int main(void)
{
    coro_loop L;
    coro_task t;
    struct app a;
    example_loop(&L);
    int rc = coro_run(&L, &t, coro_frame_init(&a.co, app_fn));
    coro_loop_close(&L);
    return rc < 0;
}
