#include "coro_loop.h"

struct child { coro_frame co; int x; };

static int child_fn(coro_ctx *c)
{
    struct child *f = CORO_SELF(c, struct child);
    CORO_BEGIN(c);
    CORO_SLEEP(c, CORO_MS(5));
    CORO_RETURN(c, f->x * 2);
    CORO_END(c);
}

coro_frame *link_child(struct child *f, int x);
coro_frame *link_child(struct child *f, int x)
{
    f->x = x;
    return coro_frame_init(&f->co, child_fn);
}

int link_run(coro_loop *L, coro_task *t, coro_frame *fr);
int link_run(coro_loop *L, coro_task *t, coro_frame *fr)
{
    return coro_run(L, t, fr);
}
