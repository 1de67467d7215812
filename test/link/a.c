/* Two translation units include the headers; a task created in one runs on
 * a loop driven from the other. Nothing is defined twice, nothing global. */
#include "../test.h"

struct child { coro_frame co; int x; };
coro_frame *link_child(struct child *f, int x);          /* b.c */
int link_run(coro_loop *L, coro_task *t, coro_frame *fr); /* b.c */

struct parent { coro_frame co; struct child ch; int sum; };
static int parent_fn(coro_ctx *c)
{
    struct parent *p = CORO_SELF(c, struct parent);
    CORO_BEGIN(c);
    CORO_AWAIT(c, link_child(&p->ch, 20));
    p->sum = c->rc;
    CORO_YIELD(c);
    CORO_RETURN(c, p->sum + 1);
    CORO_END(c);
}

TEST(link_two_translation_units)
{
    coro_loop L;
    struct parent p;
    coro_task t;
    test_loop(&L);
    CHECK_EQ(link_run(&L, &t, coro_frame_init(&p.co, parent_fn)), 41);
    CHECK_EQ(coro_loop_close(&L), 0);
}
