// The headers compiled as C++17: a coroutine, a task, the awaiting family.
#include <cstdio>
#include "coro_sync.h"
#include "coro_io.h"

namespace {
struct sleeper {
    coro_frame co;
    int ms;
};

int sleeper_fn(coro_ctx *c)
{
    sleeper *f = CORO_SELF(c, sleeper);
    CORO_BEGIN(c);
    CORO_SLEEP(c, CORO_MS(f->ms));
    CORO_RETURN(c, f->ms);
    CORO_END(c);
}

struct app {
    coro_frame co;
    sleeper s[2];
    coro_task t[2];
    coro_future *futs[2];
    coro_gather g;
    coro_gather_item items[2];
};

int app_fn(coro_ctx *c)
{
    app *a = CORO_SELF(c, app);
    CORO_BEGIN(c);
    for (int i = 0; i < 2; i++) {
        a->s[i].ms = 10 * (i + 1);
        coro_spawn(c->loop, &a->t[i], coro_frame_init(&a->s[i].co, sleeper_fn));
        a->futs[i] = coro_task_future(&a->t[i]);
    }
    coro_gather_start(c->loop, &a->g, a->items, a->futs, 2, 0);
    CORO_AWAIT_GATHER(c, &a->g);
    CORO_RETURN(c, coro_gather_result(&a->g, 0) + coro_gather_result(&a->g, 1));
    CORO_END(c);
}
} // namespace

int main()
{
    coro_virtual v;
    coro_loop L;
    coro_loop_init(&L, coro_virtual_init(&v, 0));
    app a;
    coro_task t;
    int rc = coro_run(&L, &t, coro_frame_init(&a.co, app_fn));
    int ok = rc == 30 && coro_loop_time(&L) == CORO_MS(20);
    coro_loop_close(&L);
    std::printf("%d passed, %d failed\n", ok ? 1 : 0, ok ? 0 : 1);
    return ok ? 0 : 1;
}
