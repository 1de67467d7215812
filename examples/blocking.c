/* A blocking call freezes every task; an await lets them run.
 *
 *   async def ticker():
 *       while True: print("tick"); await asyncio.sleep(0.25)
 *   time.sleep(1)           # no tick for a second
 *   await asyncio.sleep(1)  # four ticks meanwhile
 */
#include "example.h"

struct ticker { coro_frame co; int ticks; };

static int ticker_fn(coro_ctx *c)
{
    struct ticker *f = CORO_SELF(c, struct ticker);
    CORO_BEGIN(c);
    for (;;) {
        f->ticks++;
        CORO_SLEEP(c, CORO_MS(250));
        CORO_CHECK(c);
    }
    CORO_END(c);
}

struct app { coro_frame co; struct ticker tk; coro_task t; int before; };

static int app_fn(coro_ctx *c)
{
    struct app *a = CORO_SELF(c, struct app);
    CORO_BEGIN(c);
    coro_spawn(c->loop, &a->t, coro_frame_init(&a->tk.co, ticker_fn));
    CORO_SLEEP(c, CORO_MS(100));
    a->before = a->tk.ticks;
    example_block(CORO_S(1));
    printf("blocking 1 s: %d ticks meanwhile\n", a->tk.ticks - a->before);
    a->before = a->tk.ticks;
    CORO_SLEEP(c, CORO_S(1));
    printf("awaiting 1 s: %d ticks meanwhile\n", a->tk.ticks - a->before);
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
