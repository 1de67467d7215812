/* An error raised in a task is kept by the task and seen by its awaiter.
 *
 *   async def fetch():
 *       await asyncio.sleep(0.5); raise ValueError("bad reply")
 *   task = create_task(fetch())
 *   try: await task
 *   except ValueError as e: print("main: caught", e)
 */
#include "example.h"

#define BAD_REPLY CORO_EUSER(1)

struct fetch { coro_frame co; };

static int fetch_fn(coro_ctx *c)
{
    CORO_BEGIN(c);
    CORO_SLEEP(c, CORO_MS(500));
    printf("fetch: failing at %.1f s\n", example_secs(c->loop));
    CORO_FAIL(c, BAD_REPLY);
    CORO_END(c);
}

struct app { coro_frame co; struct fetch f; coro_task t; };

static int app_fn(coro_ctx *c)
{
    struct app *a = CORO_SELF(c, struct app);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &a->t, coro_frame_init(&a->f.co, fetch_fn));
    CORO_AWAIT_TASK(c, &a->t);
    if (c->rc == BAD_REPLY) printf("main: caught bad reply (%d)\n", c->rc);
    printf("main: the task kept it: error %d\n", coro_task_error(&a->t));
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
