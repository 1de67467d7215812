/* as_completed: results in the order the tasks finish, not the order they
 * were started.
 *
 *   for coro in asyncio.as_completed([job(3), job(1), job(2)]):
 *       print(await coro)
 */
#include "example.h"

struct job { coro_frame co; int secs; };

static int job_fn(coro_ctx *c)
{
    struct job *f = CORO_SELF(c, struct job);
    CORO_BEGIN(c);
    CORO_SLEEP(c, CORO_S(f->secs));
    CORO_RETURN(c, f->secs * 100);
    CORO_END(c);
}

struct app {
    coro_frame co;
    struct job j[3];
    coro_task t[3];
    coro_future *futs[3];
    coro_as_completed ac;
    coro_ac_item items[3];
};

static int app_fn(coro_ctx *c)
{
    struct app *a = CORO_SELF(c, struct app);
    static const int secs[3] = {3, 1, 2};
    CORO_BEGIN(c);
    for (int i = 0; i < 3; i++) {
        a->j[i].secs = secs[i];
        coro_spawn(c->loop, &a->t[i], coro_frame_init(&a->j[i].co, job_fn));
        a->futs[i] = coro_task_future(&a->t[i]);
    }
    coro_as_completed_init(c->loop, &a->ac, a->items, a->futs, 3, CORO_NEVER);
    while (coro_as_completed_left(&a->ac)) {
        CORO_AWAIT(c, coro_as_completed_next(&a->ac));
        printf("%.1f s: job %d returned %d\n", example_secs(c->loop), c->rc,
               coro_task_result(&a->t[c->rc]));
    }
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
