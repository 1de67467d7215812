/* serve.h - what the example servers share: a main that serves
 * start_server's connections on 127.0.0.1:PORT until SIGINT or SIGTERM,
 * then stops accepting, closes every connection and exits 0.
 *
 *   int main(int argc, char **argv)
 *   { return serve_main(argc, argv, "echo_server", handler, sizeof(struct h)); }
 *
 * PORT 0 picks a free port; the first line of output says which:
 * "listening on 127.0.0.1:PORT (io_uring|epoll)".
 */
#ifndef SERVE_H
#define SERVE_H
#include "coro_io.h"

#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>

struct serve {
    coro_frame co;
    const char *name;
    int port;
    coro_conn_fn *fn;
    size_t frame_size;
    coro_server srv;
    coro_future stop;
};

static coro_signal serve__signal;

static void serve__on_signal(int sig)
{
    (void)sig;
    coro_signal_raise(&serve__signal); /* the one call allowed here */
}

static void serve__stop(coro_loop *L, void *arg)
{
    coro_future *stop = (coro_future *)arg;
    if (!coro_future_done(stop)) coro_future_set_result(L, stop, 0);
}

static int serve__fn(coro_ctx *c)
{
    struct serve *a = CORO_SELF(c, struct serve);
    CORO_BEGIN(c);
    c->rc = coro_server_start(&a->srv, c->loop, "127.0.0.1", a->port, a->fn, a->frame_size,
                              NULL, 0);
    if (c->rc < 0) {
        fprintf(stderr, "%s: port %d: %s\n", a->name, a->port, coro_io_strerror(c->rc));
        CORO_FAIL(c, c->rc);
    }
    printf("listening on 127.0.0.1:%d (%s)\n", coro_server_port(&a->srv),
           coro_io_backend_name(coro_io_of(c->loop)));
    fflush(stdout);
    CORO_AWAIT_FUTURE(c, &a->stop);
    printf("stopping: %u connection(s) open\n", coro_server_connections(&a->srv));
    coro_server_close(&a->srv);
    coro_server_close_clients(&a->srv);
    CORO_AWAIT_FUTURE(c, coro_server_closed(&a->srv));
    printf("closed\n");
    CORO_RETURN(c, 0);
    CORO_END(c);
}

__attribute__((unused)) static int serve_main(int argc, char **argv, const char *name,
                                              coro_conn_fn *fn, size_t frame_size)
{
    coro_loop L;
    coro_io io;
    coro_task t;
    static struct serve a;
    struct rlimit rl;
    char *end;
    long port = argc == 2 ? strtol(argv[1], &end, 10) : -1;
    if (argc != 2 || *end || port < 0 || port > 65535) {
        fprintf(stderr, "usage: %s PORT\n", name);
        return 2;
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) { /* many clients */
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int rc = coro_io_init(&io, &L, NULL);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", name, coro_io_strerror(rc));
        return 1;
    }
    a.name = name;
    a.port = (int)port;
    a.fn = fn;
    a.frame_size = frame_size;
    coro_future_init(&a.stop);
    coro_signal_init(&L, &serve__signal, serve__stop, &a.stop);
    signal(SIGINT, serve__on_signal);
    signal(SIGTERM, serve__on_signal);
    signal(SIGPIPE, SIG_IGN);
    rc = coro_run(&L, &t, coro_frame_init(&a.co, serve__fn));
    coro_loop_close(&L);
    return rc < 0;
}
#endif
