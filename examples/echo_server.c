/* echo_server.c - asyncio's echo server: every byte a client sends comes
 * back. One task per connection (start_server), each a read / write /
 * drain loop over its stream.
 *
 *   build/examples/echo_server PORT      listens on 127.0.0.1:PORT
 *                                        (0: a free port, printed)
 *
 * SIGINT or SIGTERM stops it: no more accepts, every connection closed,
 * then exit 0 (serve.h). CORO_BACKEND=epoll runs it on epoll.
 */
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

static coro_frame *echo(coro_conn *conn, void *mem, void *arg)
{
    struct echo *f = (struct echo *)mem;
    (void)arg;
    f->s = coro_conn_stream(conn);
    return coro_frame_init(&f->co, echo_fn);
}

int main(int argc, char **argv)
{
    return serve_main(argc, argv, "echo_server", echo, sizeof(struct echo));
}
