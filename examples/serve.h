/* serve.h - what the example servers share: a main that serves
 * start_server's connections on 127.0.0.1:PORT until SIGINT or SIGTERM,
 * then stops accepting, closes every connection and exits 0.
 *
 *   serve_main(argc, argv, "echo_server", handler, sizeof(struct h))
 *       NAME PORT: one loop, on the main thread
 *   serve_main_mt(argc, argv, "echo_server_mt", handler, sizeof(struct h))
 *       NAME PORT THREADS: one loop per thread, each with its own
 *       SO_REUSEPORT listener on the same port (the kernel spreads the
 *       connections); nothing is shared between the loops
 *
 * PORT 0 picks a free port; the first line of output says which:
 * "listening on 127.0.0.1:PORT (io_uring|epoll)". On a signal each loop
 * prints "stopping: N connection(s) open", then "closed" once all are.
 */
#ifndef SERVE_H
#define SERVE_H
#include "coro_io.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/resource.h>

#define SERVE_MAX_THREADS 64

/* One loop and its server. */
struct serve {
    coro_frame co;
    int lfd;
    coro_conn_fn *fn;
    size_t frame_size;
    coro_loop loop;
    coro_io io;
    coro_task task;
    coro_server srv;
    coro_event_op closed;
    coro_future stop;
    coro_signal signal;
    pthread_barrier_t *ready;
    pthread_t thread;
    int rc;
};

static struct serve *serve__all[SERVE_MAX_THREADS];
static int serve__n;

/* SIGINT / SIGTERM: raise every loop's signal (the one call allowed in a
 * signal handler, and from another thread). */
static void serve__on_signal(int sig)
{
    (void)sig;
    for (int i = 0; i < serve__n; i++) coro_signal_raise(&serve__all[i]->signal);
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
    c->rc = coro_server_start_fd(&a->srv, c->loop, a->lfd, a->fn, a->frame_size, NULL, 0);
    if (a->ready) pthread_barrier_wait(a->ready); /* everyone is set up: go */
    CORO_CHECK(c);
    CORO_AWAIT_FUTURE(c, &a->stop);
    printf("stopping: %u connection(s) open\n", coro_server_connections(&a->srv));
    coro_server_close(&a->srv);
    coro_server_close_clients(&a->srv);
    CORO_AWAIT(c, coro_server_wait_closed(&a->closed, &a->srv));
    printf("closed\n");
    fflush(stdout);
    CORO_RETURN(c, 0);
    CORO_END(c);
}

/* Runs one loop to the end (on the calling thread). */
static void *serve__run(void *arg)
{
    struct serve *a = (struct serve *)arg;
    a->rc = coro_io_init(&a->io, &a->loop, NULL);
    if (a->rc < 0) {
        fprintf(stderr, "serve: %s\n", coro_io_strerror(a->rc));
        if (a->ready) pthread_barrier_wait(a->ready);
        return NULL;
    }
    coro_future_init(&a->stop);
    coro_signal_init(&a->loop, &a->signal, serve__stop, &a->stop);
    a->rc = coro_run(&a->loop, &a->task, coro_frame_init(&a->co, serve__fn));
    coro_loop_close(&a->loop);
    return NULL;
}

/* Parses "PORT [THREADS]", opens the listeners; returns the thread count
 * or -1 after a message. */
static int serve__setup(int argc, char **argv, const char *name, int mt, coro_conn_fn *fn,
                        size_t frame_size, struct serve *s)
{
    char *end = NULL;
    long port = argc == 2 + mt ? strtol(argv[1], &end, 10) : -1;
    long n = mt && argc == 3 ? strtol(argv[2], NULL, 10) : 1;
    struct rlimit rl;
    if (port < 0 || port > 65535 || (end && *end) || n < 1 || n > SERVE_MAX_THREADS) {
        fprintf(stderr, "usage: %s PORT%s\n", name, mt ? " THREADS (1-64)" : "");
        return -1;
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) { /* many clients */
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    for (int i = 0; i < n; i++) {
        s[i].lfd = coro_listen("127.0.0.1", (int)port, mt);
        if (s[i].lfd < 0) {
            fprintf(stderr, "%s: port %ld: %s\n", name, port, coro_io_strerror(s[i].lfd));
            return -1;
        }
        if (port == 0) { /* the others join the port the first one got */
            struct sockaddr_in a;
            socklen_t len = sizeof a;
            getsockname(s[i].lfd, (struct sockaddr *)&a, &len);
            port = ntohs(a.sin_port);
        }
        s[i].fn = fn;
        s[i].frame_size = frame_size;
        serve__all[i] = &s[i];
    }
    serve__n = (int)n;
    signal(SIGINT, serve__on_signal);
    signal(SIGTERM, serve__on_signal);
    signal(SIGPIPE, SIG_IGN);
    return (int)n;
}

static void serve__listening(struct serve *s, int n)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    getsockname(s[0].lfd, (struct sockaddr *)&a, &len);
    printf("listening on 127.0.0.1:%d (%s", ntohs(a.sin_port), coro_io_backend_name(&s[0].io));
    printf(n > 1 ? ", %d threads)\n" : ")\n", n);
    fflush(stdout);
}

__attribute__((unused)) static int serve_main(int argc, char **argv, const char *name,
                                              coro_conn_fn *fn, size_t frame_size)
{
    static struct serve s;
    if (serve__setup(argc, argv, name, 0, fn, frame_size, &s) < 0) return 2;
    s.rc = coro_io_init(&s.io, &s.loop, NULL);
    if (s.rc < 0) {
        fprintf(stderr, "%s: %s\n", name, coro_io_strerror(s.rc));
        return 1;
    }
    coro_future_init(&s.stop);
    coro_signal_init(&s.loop, &s.signal, serve__stop, &s.stop);
    serve__listening(&s, 1);
    s.rc = coro_run(&s.loop, &s.task, coro_frame_init(&s.co, serve__fn));
    coro_loop_close(&s.loop);
    return s.rc < 0;
}

__attribute__((unused)) static int serve_main_mt(int argc, char **argv, const char *name,
                                                 coro_conn_fn *fn, size_t frame_size)
{
    static struct serve s[SERVE_MAX_THREADS];
    static pthread_barrier_t ready;
    int n = serve__setup(argc, argv, name, 1, fn, frame_size, s), failed = 0;
    if (n < 0) return 2;
    pthread_barrier_init(&ready, NULL, (unsigned)n + 1);
    for (int i = 0; i < n; i++) {
        s[i].ready = &ready;
        pthread_create(&s[i].thread, NULL, serve__run, &s[i]);
    }
    pthread_barrier_wait(&ready);
    serve__listening(s, n);
    for (int i = 0; i < n; i++) {
        pthread_join(s[i].thread, NULL);
        failed |= s[i].rc < 0;
    }
    pthread_barrier_destroy(&ready);
    return failed;
}
#endif
