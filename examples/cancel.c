/* Cancelling a task: it sees the cancellation at its await, cleans up,
 * and its awaiter sees it cancelled.
 *
 *   async def worker():
 *       try: await asyncio.sleep(3600)
 *       finally: print("worker: cleaning up")
 *   task = create_task(worker()); await asyncio.sleep(1); task.cancel()
 *   try: await task
 *   except asyncio.CancelledError: print("main: task is cancelled")
 */
#include "example.h"

struct worker { coro_frame co; };

static int worker_fn(coro_ctx *c)
{
    CORO_BEGIN(c);
    printf("worker: started\n");
    CORO_SLEEP(c, CORO_S(3600));
    CORO_CHECK(c);
    printf("worker: never printed\n");
    CORO_FINALLY(c);
    printf("worker: cleaning up at %.1f s\n", example_secs(c->loop));
    CORO_END(c);
}

struct app { coro_frame co; struct worker w; coro_task t; };

static int app_fn(coro_ctx *c)
{
    struct app *a = CORO_SELF(c, struct app);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &a->t, coro_frame_init(&a->w.co, worker_fn));
    CORO_SLEEP(c, CORO_S(1));
    printf("main: cancel() = %d\n", coro_task_cancel(c->loop, &a->t));
    CORO_AWAIT_TASK(c, &a->t);
    if (c->rc == CORO_ECANCELED) printf("main: task is cancelled: %d\n", coro_task_cancelled(&a->t));
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
