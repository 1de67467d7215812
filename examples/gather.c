/* Two tasks gathered: the total time is the longest sleep, not the sum.
 *
 *   async def say(what, delay):
 *       await asyncio.sleep(delay); print(what)
 *   async def main():
 *       await asyncio.gather(say("hello", 1), say("world", 2))
 */
#include "example.h"

struct say { coro_frame co; const char *what; int64_t delay; };

static int say_fn(coro_ctx *c)
{
    struct say *f = CORO_SELF(c, struct say);
    CORO_BEGIN(c);
    CORO_SLEEP(c, f->delay);
    printf("%.1f s: %s\n", example_secs(c->loop), f->what);
    CORO_END(c);
}

static coro_frame *say(struct say *f, const char *what, int64_t delay)
{
    f->what = what;
    f->delay = delay;
    return coro_frame_init(&f->co, say_fn);
}

struct app {
    coro_frame co;
    struct say s[2];
    coro_task t[2];
    coro_future *futs[2];
    coro_gather g;
    coro_gather_item items[2];
};

static int app_fn(coro_ctx *c)
{
    struct app *a = CORO_SELF(c, struct app);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &a->t[0], say(&a->s[0], "hello", CORO_S(1)));
    coro_spawn(c->loop, &a->t[1], say(&a->s[1], "world", CORO_S(2)));
    a->futs[0] = coro_task_future(&a->t[0]);
    a->futs[1] = coro_task_future(&a->t[1]);
    coro_gather_start(c->loop, &a->g, a->items, a->futs, 2, 0);
    CORO_AWAIT_GATHER(c, &a->g);
    printf("%.1f s: both done (not 3 s)\n", example_secs(c->loop));
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
