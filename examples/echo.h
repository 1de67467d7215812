/* echo.h - the echo handler of echo_server and echo_server_mt: one task
 * per connection, a read / write / drain loop over its stream. */
#ifndef ECHO_H
#define ECHO_H
#include "serve.h"

/* One connection's handler; the server allocates it with the connection. */
struct echo {
    coro_frame co;
    coro_stream *s;
    coro_stream_op op;
    unsigned char buf[16384];
};

static int echo_fn(coro_ctx *c)
{
    struct echo *f = CORO_SELF(c, struct echo);
    CORO_BEGIN(c);
    for (;;) {
        CORO_AWAIT(c, coro_stream_read(&f->op, f->s, f->buf, sizeof f->buf, sizeof f->buf));
        if (c->rc <= 0) break; /* end of stream, or closed by the server */
        coro_stream_write(f->s, f->buf, (size_t)c->rc);
        CORO_AWAIT(c, coro_stream_drain(&f->op, f->s));
        if (c->rc < 0) break;
    }
    CORO_RETURN(c, 0); /* the server closes the stream */
    CORO_END(c);
}

__attribute__((unused)) static coro_frame *echo(coro_conn *conn, void *mem, void *arg)
{
    struct echo *f = (struct echo *)mem;
    (void)arg;
    f->s = coro_conn_stream(conn);
    return coro_frame_init(&f->co, echo_fn);
}
#endif
