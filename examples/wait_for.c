/* wait_for: the slow task is cancelled when the timeout passes, and the
 * caller gets a timeout error once the task has finished its cleanup.
 *
 *   try: await asyncio.wait_for(slow(), timeout=1.0)
 *   except TimeoutError: print("timeout!")
 */
#include "example.h"

struct slow { coro_frame co; };

static int slow_fn(coro_ctx *c)
{
    CORO_BEGIN(c);
    CORO_SLEEP(c, CORO_S(3600));
    if (c->rc == CORO_ECANCELED) printf("slow: cancelled at %.1f s\n", example_secs(c->loop));
    CORO_FAIL(c, c->rc);
    CORO_END(c);
}

struct app { coro_frame co; struct slow s; coro_task t; coro_wait_for wf; };

static int app_fn(coro_ctx *c)
{
    struct app *a = CORO_SELF(c, struct app);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &a->t, coro_frame_init(&a->s.co, slow_fn));
    CORO_AWAIT(c, coro_wait_for_init(&a->wf, coro_task_future(&a->t), CORO_S(1)));
    if (c->rc == CORO_ETIMEDOUT) printf("main: timeout! (%.1f s)\n", example_secs(c->loop));
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
