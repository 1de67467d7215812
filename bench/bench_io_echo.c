/* bench_io_echo.c - B8: echo ping-pong over loopback, one client for every
 * server, the servers measured in turn within each run (so every ratio
 * comes from one run).
 *
 * The client (here, in this process): raw epoll, level-triggered, one
 * thread; N connections (TCP_NODELAY), each sends a message of S bytes,
 * waits until all S bytes came back, sends the next (closed loop); round
 * trips per second over a fixed window, opened after a warm-up in which
 * every connection completed a round trip, closed by letting the messages
 * in flight come back. Per window it also reads the server's CPU time
 * (clock_getcpuclockid on its pid: all its threads) and its own, and a
 * latency histogram (p50 / p99 in the JSON details).
 *
 * The servers, each a process of its own, started once and kept for the
 * whole run (idle while another is measured):
 *   coro        examples/echo_server: the stream handler of examples/echo.h
 *               (read -> write -> drain) under serve.h's coro_server, i.e.
 *               what a user writes; io_uring backend (CORO_BACKEND=uring).
 *               The example's code is compiled into this binary (same
 *               flags as build/examples/).
 *   coro_epoll  the same program on the epoll backend (CORO_BACKEND=epoll)
 *   coro_raw    (full profile) an accept task and a task per connection
 *               doing coro_recv / coro_send on the fd, no stream
 *   epoll       raw epoll in C: one thread, level-triggered, read + write
 *   pthread     thread per connection: blocking read / write
 *   libuv, go, asyncio, uvloop   bench/peers/ (built by bench/io_peers.sh)
 *   mt1, mt2    examples/echo_server_mt with 1 and 2 loops (threads)
 * Pinning (io_uring-notes.md section 6): every server on CPU 1, the client
 * on CPU 0 (BENCH_ECHO_PIN=0: nothing pinned). echo_1cpu puts the client
 * on CPU 1 as well: the two then share one CPU, so the round trips per
 * second measure the CPU time a server spends per round trip, kernel
 * included; echo_cpu is that time. The echo_server_mt rows run unpinned,
 * client too: the client shares the two CPUs with the server's loops, so
 * two loops cannot double anything on this 2-CPU machine.
 *
 * Rows (rt/s, higher is better): echo (64 B x 100 connections: the
 * acceptance row), echo_c1 / echo_c10 (and echo_c300, echo_c1000, echo_4k*
 * in the full profile), echo_epoll_backend (coro on epoll, 64 B x 100,
 * against the same peer figures), echo_1cpu, echo_mt_t1 / echo_mt_t2;
 * echo_cpu (ns of server CPU per round trip, lower is better). Chart
 * `echo`: throughput against connections, 64 B.
 * Acceptance (issue 5): `echo` on io_uring >= 1.0x the raw-epoll server
 * and >= 1.5x the thread-per-connection server. The same targets are
 * checked on echo_1cpu: on this 2-vCPU VM the pinned row's fast servers
 * (coro, epoll, libuv) go idle between batches, and their throughput
 * flips between two levels (~70,000 and ~120,000 rt/s) with how fast the
 * hypervisor wakes an idle vCPU, while echo_1cpu stays within ~5%.
 */
#include "bench.h"

#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "examples/echo.h" /* the echo example's handler, serve_main(_mt) */

/* ------------------------------------------------------------ servers */

enum { K_CORO, K_CORO_RAW, K_EPOLL, K_TPC, K_EXTERNAL, K_MT };

#define MAX_SERVERS 16

struct server {
    const char *impl;
    int kind;
    const char *backend; /* K_CORO: CORO_BACKEND */
    int threads;         /* K_MT */
    char *argv[16];      /* K_EXTERNAL: the command, port appended */
    int pinned;
    pid_t pid;
    int port, ok;
    clockid_t clk;
};

static struct server servers[MAX_SERVERS];
static int nservers;
static int ncpus;

static int free_port(void)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        perror("bench_io_echo: free port");
        exit(1);
    }
    close(fd);
    return ntohs(a.sin_port);
}

static void pin_to(int cpu) /* cpu < 0: every CPU */
{
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int i = 0; i < ncpus; i++)
        if (cpu < 0 || i == cpu) CPU_SET(i, &set);
    sched_setaffinity(0, sizeof set, &set);
}

/* -- the raw epoll server: level-triggered, read then write; a write the
 *    socket does not take whole is kept and finished on EPOLLOUT. */

struct pend {
    char *p;
    size_t len, cap;
};

static void epoll_server(int lfd)
{
    static char buf[16384];
    struct epoll_event ev, evs[512];
    struct pend *pend = NULL;
    int npend = 0;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    ev.events = EPOLLIN;
    ev.data.fd = lfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    for (;;) {
        int n = epoll_wait(ep, evs, 512, -1);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                int cfd;
                while ((cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    ev.events = EPOLLIN;
                    ev.data.fd = cfd;
                    epoll_ctl(ep, EPOLL_CTL_ADD, cfd, &ev);
                }
                continue;
            }
            if (fd < npend && pend[fd].len) { /* EPOLLOUT: finish the write */
                ssize_t w = write(fd, pend[fd].p, pend[fd].len);
                if (w < 0 && errno != EAGAIN) {
                    pend[fd].len = 0;
                    close(fd);
                    continue;
                }
                if (w > 0) {
                    memmove(pend[fd].p, pend[fd].p + w, pend[fd].len - (size_t)w);
                    pend[fd].len -= (size_t)w;
                }
                if (!pend[fd].len) {
                    ev.events = EPOLLIN;
                    ev.data.fd = fd;
                    epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
                }
                continue;
            }
            ssize_t r = read(fd, buf, sizeof buf);
            if (r < 0 && errno == EAGAIN) continue;
            if (r <= 0) {
                close(fd);
                continue;
            }
            ssize_t w = write(fd, buf, (size_t)r);
            if (w == r) continue;
            if (w < 0 && errno != EAGAIN) {
                close(fd);
                continue;
            }
            if (w < 0) w = 0;
            if (fd >= npend) { /* rare: keep the rest */
                int m = npend ? npend : 64;
                while (m <= fd) m *= 2;
                pend = (struct pend *)realloc(pend, (size_t)m * sizeof *pend);
                memset(pend + npend, 0, (size_t)(m - npend) * sizeof *pend);
                npend = m;
            }
            size_t rest = (size_t)(r - w);
            if (pend[fd].cap < rest) {
                pend[fd].p = (char *)realloc(pend[fd].p, rest);
                pend[fd].cap = rest;
            }
            memcpy(pend[fd].p, buf + w, rest);
            pend[fd].len = rest;
            ev.events = EPOLLOUT;
            ev.data.fd = fd;
            epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
        }
    }
}

/* -- thread per connection: blocking read / write */

static void *tpc_conn(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[16384];
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0) break;
        for (ssize_t off = 0; off < r;) {
            ssize_t w = write(fd, buf + off, (size_t)(r - off));
            if (w <= 0) goto out;
            off += w;
        }
    }
out:
    close(fd);
    return NULL;
}

static void tpc_server(int lfd)
{
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    fcntl(lfd, F_SETFL, fcntl(lfd, F_GETFL) & ~O_NONBLOCK);
    for (;;) {
        pthread_t th;
        int cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (cfd < 0) continue;
        if (pthread_create(&th, &attr, tpc_conn, (void *)(intptr_t)cfd) != 0) close(cfd);
    }
}

/* -- coro_raw: coro_accept, then a task per connection over coro_recv and
 *    coro_send on the fd (what streams are built on), io_uring */

struct rconn {
    coro_frame co;
    coro_io_op op;
    int fd;
    ssize_t n, off;
    coro_task task;
    coro_call done;
    unsigned char buf[16384];
};

static int rconn_fn(coro_ctx *c)
{
    struct rconn *f = CORO_SELF(c, struct rconn);
    CORO_BEGIN(c);
    for (;;) {
        CORO_IO(c, coro_recv(&f->op, c->loop, f->fd, f->buf, sizeof f->buf, 0));
        if (c->rc <= 0) break;
        f->n = c->rc;
        for (f->off = 0; f->off < f->n; f->off += c->rc) {
            CORO_IO(c, coro_send(&f->op, c->loop, f->fd, f->buf + f->off,
                                 (size_t)(f->n - f->off), 0));
            if (c->rc <= 0) goto out;
        }
    }
out:
    CORO_IO(c, coro_close(&f->op, c->loop, f->fd));
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static void rconn_free(coro_loop *L, void *arg)
{
    (void)L;
    free(arg);
}

struct racceptor {
    coro_frame co;
    coro_io_op op;
    int lfd;
};

static int racceptor_fn(coro_ctx *c)
{
    struct racceptor *f = CORO_SELF(c, struct racceptor);
    CORO_BEGIN(c);
    for (;;) {
        CORO_IO(c, coro_accept(&f->op, c->loop, f->lfd, NULL, NULL));
        if (c->rc == CORO_ECANCELED) break;
        if (c->rc < 0) continue;
        struct rconn *k = (struct rconn *)calloc(1, sizeof *k);
        if (!k) {
            close(c->rc);
            continue;
        }
        k->fd = c->rc;
        coro_spawn(c->loop, &k->task, coro_frame_init(&k->co, rconn_fn));
        coro_task_add_done_callback(c->loop, &k->task, &k->done, rconn_free, k);
    }
    CORO_RETURN(c, 0);
    CORO_END(c);
}

static int coro_raw_server(int lfd)
{
    static coro_loop L;
    static coro_io io;
    static coro_task t;
    static struct racceptor a;
    if (coro_io_init(&io, &L, NULL) < 0 || coro_io_backend(&io) != CORO_IO_URING) return 1;
    a.lfd = lfd;
    return coro_run(&L, &t, coro_frame_init(&a.co, racceptor_fn)) < 0;
}

/* Starts server s (a child process); 0, or -1 if it did not come up. */
static int start_server(struct server *s, const char *logpath)
{
    char port[16], threads[16];
    s->port = free_port();
    snprintf(port, sizeof port, "%d", s->port);
    snprintf(threads, sizeof threads, "%d", s->threads);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int log = open(logpath, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (log >= 0) dup2(log, 2);
        if (null >= 0) dup2(null, 0), dup2(null, 1);
        signal(SIGPIPE, SIG_IGN);
        pin_to(s->pinned ? 1 : -1); /* both pin modes: the server on CPU 1 */
        if (s->kind == K_CORO) {
            char *argv[] = {(char *)"echo_server", port, NULL};
            setenv("CORO_BACKEND", s->backend, 1);
            _exit(serve_main(2, argv, "echo_server", echo, sizeof(struct echo)));
        }
        if (s->kind == K_MT) {
            char *argv[] = {(char *)"echo_server_mt", port, threads, NULL};
            setenv("CORO_BACKEND", "uring", 1);
            _exit(serve_main_mt(3, argv, "echo_server_mt", echo, sizeof(struct echo)));
        }
        if (s->kind == K_EXTERNAL) {
            int i = 0;
            while (s->argv[i]) i++;
            s->argv[i] = port;
            execv(s->argv[0], s->argv);
            fprintf(stderr, "bench_io_echo: cannot run %s\n", s->argv[0]);
            _exit(127);
        }
        int lfd = coro_listen("127.0.0.1", s->port, 0);
        if (lfd < 0) _exit(1);
        if (s->kind == K_EPOLL) epoll_server(lfd);
        if (s->kind == K_TPC) tpc_server(lfd);
        if (s->kind == K_CORO_RAW) _exit(coro_raw_server(lfd));
        _exit(1);
    }
    s->pid = pid;
    /* Up once a connection goes through. */
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)s->port);
    for (int i = 0; i < 1000; i++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            s->pid = 0;
            return -1;
        }
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        int ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        if (ok) {
            if (clock_getcpuclockid(pid, &s->clk) != 0) return -1;
            s->ok = 1;
            return 0;
        }
        usleep(10000);
    }
    kill(pid, SIGKILL); /* never came up: not left behind */
    waitpid(pid, NULL, 0);
    s->pid = 0;
    return -1;
}

static void stop_servers(void)
{
    for (int i = 0; i < nservers; i++)
        if (servers[i].pid > 0) kill(servers[i].pid, SIGTERM);
    for (int i = 0; i < nservers; i++) {
        if (servers[i].pid <= 0) continue;
        int st;
        for (int k = 0; k < 300 && waitpid(servers[i].pid, &st, WNOHANG) == 0; k++) usleep(10000);
        if (waitpid(servers[i].pid, &st, WNOHANG) == 0) {
            kill(servers[i].pid, SIGKILL);
            waitpid(servers[i].pid, &st, 0);
        }
        servers[i].pid = 0;
    }
}

static void on_fatal(int sig)
{
    for (int i = 0; i < nservers; i++)
        if (servers[i].pid > 0) kill(servers[i].pid, SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* ------------------------------------------------------------ client */

struct cconn {
    int fd;
    uint32_t got;
    uint8_t seq;
    int done_one;
    int64_t sent;
};

#define HIST_US 20000 /* 1 us buckets up to 20 ms */

struct meas {
    double rts, srv_ns, cli_ns, p50_us, p99_us;
};

static struct cconn *cs;
static unsigned char *msg, *rbuf;
static uint32_t hist[HIST_US + 1];
#define RBUF (1 << 16)

static uint64_t total_rts; /* of the last measure(), warm-up and all */

static int64_t cpu_ns(clockid_t clk)
{
    struct timespec ts;
    if (clock_gettime(clk, &ts) != 0) return 0;
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int client_connect(int port, int n)
{
    struct sockaddr_in a;
    int one = 1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    for (int i = 0; i < n; i++) {
        memset(&cs[i], 0, sizeof cs[i]);
        cs[i].fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (cs[i].fd < 0 || connect(cs[i].fd, (struct sockaddr *)&a, sizeof a) < 0) {
            fprintf(stderr, "bench_io_echo: connect %d/%d: %s\n", i, n, strerror(errno));
            for (int k = 0; k <= i; k++)
                if (cs[k].fd >= 0) close(cs[k].fd);
            return -1;
        }
        setsockopt(cs[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(cs[i].fd, F_SETFL, O_NONBLOCK);
    }
    return 0;
}

static void client_close(int n)
{
    for (int i = 0; i < n; i++) close(cs[i].fd);
}

static int send_msg(struct cconn *k, int size, int64_t now)
{
    msg[0] = k->seq;
    for (ssize_t off = 0; off < size;) { /* a short write is rare: wait */
        ssize_t w = write(k->fd, msg + off, (size_t)(size - off));
        if (w < 0 && errno == EAGAIN) {
            struct pollfd p = {k->fd, POLLOUT, 0};
            poll(&p, 1, 100);
            continue;
        }
        if (w <= 0) return -1;
        off += w;
    }
    k->sent = now;
    return 0;
}

static double hist_q(uint64_t total, double q)
{
    uint64_t want = (uint64_t)((double)total * q), acc = 0;
    for (int i = 0; i <= HIST_US; i++) {
        acc += hist[i];
        if (acc > want) return i;
    }
    return HIST_US;
}

/* One measurement on n connected connections: warm-up (>= warm seconds
 * and until every connection has completed a round trip), a window of
 * secs seconds, then quiesce (no message left in flight). */
static int measure(struct server *s, int n, int size, double warm, double secs, struct meas *m)
{
    struct epoll_event ev, evs[512];
    int ep = epoll_create1(EPOLL_CLOEXEC), fresh = n, phase = 0, inflight = 0;
    int64_t now = bench_now(), t_warm = now + (int64_t)(warm * 1e9), t0 = 0, t_end = 0,
            last_progress = now, srv0 = 0, cli0 = 0;
    uint64_t rts = 0, rt0 = 0, inwin = 0;
    memset(hist, 0, sizeof hist);
    for (int i = 0; i < n; i++) {
        ev.events = EPOLLIN;
        ev.data.u32 = (uint32_t)i;
        epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
        cs[i].got = 0;
        cs[i].done_one = 0;
        if (send_msg(&cs[i], size, now) < 0) goto fail;
        inflight++;
    }
    while (phase < 3) {
        int ne = epoll_wait(ep, evs, 512, 100);
        now = bench_now();
        if (ne < 0 && errno != EINTR) goto fail;
        if (ne > 0) last_progress = now;
        if (now - last_progress > CORO_S(10)) {
            fprintf(stderr, "bench_io_echo: %s: no echo for 10 s\n", s->impl);
            goto fail;
        }
        if (phase == 0 && now >= t_warm && fresh == 0) { /* the window opens */
            phase = 1;
            t0 = now;
            rt0 = rts;
            srv0 = cpu_ns(s->clk);
            cli0 = cpu_ns(CLOCK_PROCESS_CPUTIME_ID);
        } else if (phase == 1 && now >= t0 + (int64_t)(secs * 1e9)) { /* it closes */
            phase = 2;
            t_end = now;
            m->srv_ns = (double)(cpu_ns(s->clk) - srv0);
            m->cli_ns = (double)(cpu_ns(CLOCK_PROCESS_CPUTIME_ID) - cli0);
            m->rts = (double)(rts - rt0);
        }
        if (phase == 2 && inflight == 0) phase = 3;
        for (int i = 0; i < ne; i++) {
            struct cconn *k = &cs[evs[i].data.u32];
            ssize_t r = read(k->fd, rbuf, RBUF);
            if (r < 0 && errno == EAGAIN) continue;
            if (r <= 0) {
                fprintf(stderr, "bench_io_echo: %s closed a connection (%s)\n", s->impl,
                        r < 0 ? strerror(errno) : "end of stream");
                goto fail;
            }
            if (k->got == 0 && rbuf[0] != k->seq) {
                fprintf(stderr, "bench_io_echo: %s echoed the wrong message\n", s->impl);
                goto fail;
            }
            k->got += (uint32_t)r;
            if (k->got < (uint32_t)size) continue;
            if (k->got > (uint32_t)size) {
                fprintf(stderr, "bench_io_echo: %s echoed too much\n", s->impl);
                goto fail;
            }
            rts++;
            if (phase == 1) {
                int64_t us = (now - k->sent) / 1000;
                hist[us < HIST_US ? us : HIST_US]++;
                inwin++;
            }
            if (!k->done_one) {
                k->done_one = 1;
                fresh--;
            }
            k->got = 0;
            k->seq++;
            if (phase >= 2) {
                inflight--;
                if (inflight == 0) phase = 3;
                continue;
            }
            if (send_msg(k, size, now) < 0) goto fail;
        }
    }
    close(ep);
    total_rts = rts;
    m->srv_ns /= m->rts > 0 ? m->rts : 1;
    m->cli_ns /= m->rts > 0 ? m->rts : 1;
    m->rts = m->rts * 1e9 / (double)(t_end - t0);
    m->p50_us = hist_q(inwin, 0.5);
    m->p99_us = hist_q(inwin, 0.99);
    return 0;
fail:
    close(ep);
    return -1;
}

/* ------------------------------------------------------------ main */

static const char *only_impls;

/* Server flags: which measurements a server takes part in. */
#define S_MAIN 1   /* the pinned cases (server on CPU 1) */
#define S_1CPU 2   /* echo_1cpu: the client on the server's CPU too */
#define S_MT 4     /* the echo_server_mt cases (nothing pinned) */

static int server_flags[MAX_SERVERS];

static void add_server(const char *impl, int kind, const char *backend, int threads, int pinned,
                       int flags)
{
    if (only_impls) { /* BENCH_ECHO_ONLY=impl,impl...: experiments */
        char pat[64];
        snprintf(pat, sizeof pat, ",%s,", impl);
        if (!strstr(only_impls, pat)) return;
    }
    if (nservers == MAX_SERVERS) return;
    server_flags[nservers] = flags;
    struct server *s = &servers[nservers++];
    memset(s, 0, sizeof *s);
    s->impl = impl;
    s->kind = kind;
    s->backend = backend;
    s->threads = threads;
    s->pinned = pinned;
}

/* The peers bench/io_peers.sh built; SKIP lines go to stdout as they are. */
static void add_peers(int pinned, const char *ids)
{
    char cmd[2048], line[1024];
    snprintf(cmd, sizeof cmd, "BENCH_ECHO_IDS=%s sh bench/io_peers.sh", ids);
    FILE *p = popen(cmd, "r");
    if (!p) return;
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = 0;
        if (!strncmp(line, "SKIP ", 5)) {
            printf("%s\n", line);
            continue;
        }
        if (strncmp(line, "PEER ", 5) != 0 || nservers == MAX_SERVERS) continue;
        char *save = NULL, *w = strtok_r(line + 5, " ", &save);
        if (!w) continue;
        int before = nservers;
        add_server(strdup(w), K_EXTERNAL, NULL, 0, pinned, S_MAIN | S_1CPU);
        if (nservers == before) continue;
        int i = 0;
        while ((w = strtok_r(NULL, " ", &save)) && i < 14) servers[nservers - 1].argv[i++] = strdup(w);
    }
    pclose(p);
}

/* One measured case: a row of the table (for the coro server; the other
 * servers land in the same row as peers). */
struct ecase {
    const char *row;
    int conns, size;
    int mode;  /* S_MAIN: server CPU 1, client CPU 0; S_1CPU: both on CPU 1;
                  S_MT: nothing pinned */
    int chart; /* a point of chart=echo (64 B) / echo_4k */
};

#define MAX_CASES 16

static struct ecase cases[MAX_CASES];
static int ncases;
static double res[MAX_CASES][MAX_SERVERS][BENCH_MAX_RUNS];
static double cpu[MAX_CASES][MAX_SERVERS][BENCH_MAX_RUNS];
static double ccpu[MAX_CASES][MAX_SERVERS][BENCH_MAX_RUNS];
static double p50[MAX_CASES][MAX_SERVERS][BENCH_MAX_RUNS];
static double p99[MAX_CASES][MAX_SERVERS][BENCH_MAX_RUNS];

static void add_case(const char *row, int conns, int size, int mode, int chart)
{
    if (ncases == MAX_CASES) return;
    struct ecase *e = &cases[ncases++];
    e->row = row;
    e->conns = conns;
    e->size = size;
    e->mode = mode;
    e->chart = chart;
}

static double median(const double *v, int n)
{
    return bench_stats_of(v, n).median;
}

/* A RESULT line only (no human line): a peer repeated in a second row. */
static void result_only(const char *row, const char *impl, const char *unit, const double *v,
                        int n, const char *extra)
{
    bench_stats st = bench_stats_of(v, n);
    printf("RESULT bench=%s impl=%s unit=%s value=%.6g spread=%.6g spread_kind=range"
           " runs=%d min=%.6g max=%.6g iqr=%.6g %s\n",
           row, impl, unit, st.median, st.max - st.min, n, st.min, st.max, st.q3 - st.q1, extra);
}

/* `bench_io_echo serve IMPL PORT`: one of the in-binary servers in the
 * foreground; `bench_io_echo client PORT CONNS SIZE SECS`: the client alone,
 * one window, one line (for strace / perf / callgrind on a server). */
static int tool_main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "serve")) {
        static const char *impls[] = {"coro", "coro_epoll", "coro_raw", "epoll", "pthread"};
        static const int kinds[] = {K_CORO, K_CORO, K_CORO_RAW, K_EPOLL, K_TPC};
        for (int i = 0; i < 5; i++) {
            if (strcmp(argv[2], impls[i]) != 0) continue;
            signal(SIGPIPE, SIG_IGN);
            if (kinds[i] == K_CORO) {
                char *av[] = {(char *)"echo_server", argv[3], NULL};
                setenv("CORO_BACKEND", i == 0 ? "uring" : "epoll", 1);
                return serve_main(2, av, "echo_server", echo, sizeof(struct echo));
            }
            int lfd = coro_listen("127.0.0.1", atoi(argv[3]), 0);
            if (lfd < 0) return 1;
            if (kinds[i] == K_EPOLL) epoll_server(lfd);
            if (kinds[i] == K_TPC) tpc_server(lfd);
            return coro_raw_server(lfd);
        }
    }
    if (argc == 6 && !strcmp(argv[1], "client")) {
        struct server s;
        struct meas m;
        int n = atoi(argv[3]), size = atoi(argv[4]);
        memset(&s, 0, sizeof s);
        s.impl = "server";
        s.clk = CLOCK_PROCESS_CPUTIME_ID; /* no server pid: ours */
        cs = (struct cconn *)calloc((size_t)n, sizeof *cs);
        msg = (unsigned char *)malloc(65536);
        rbuf = (unsigned char *)malloc(RBUF);
        memset(msg, 'x', 65536);
        if (client_connect(atoi(argv[2]), n) < 0 || measure(&s, n, size, 0.2, atof(argv[5]), &m) < 0)
            return 1;
        printf("%.0f rt/s, client CPU %.0f ns per round trip, p50 %.0f us, p99 %.0f us; "
               "%llu round trips in all\n", m.rts, m.cli_ns, m.p50_us, m.p99_us,
               (unsigned long long)total_rts);
        client_close(n);
        return 0;
    }
    fprintf(stderr, "usage: %s [serve coro|coro_epoll|coro_raw|epoll|pthread PORT | "
                    "client PORT CONNS SIZE SECS]\n", argv[0]);
    return 2;
}

/* Does server i take part in case c? */
static int in_case(int i, const struct ecase *c)
{
    return (server_flags[i] & c->mode) != 0;
}

static const char *mode_name(int mode, int pin)
{
    if (mode == S_MT || !pin) return "no";
    return mode == S_1CPU ? "server1,client1" : "server1,client0";
}

int main(int argc, char **argv)
{
    if (argc > 1) return tool_main(argc, argv);
    int full = bench_full(), runs = bench_runs(7);
    double secs = full ? 0.5 : 0.1, warm = full ? 0.1 : 0.03;
    const char *sc = getenv("BENCH_SCALE");
    if (sc && atof(sc) > 0 && atof(sc) < 1) secs *= atof(sc);
    const char *pe = getenv("BENCH_ECHO_PIN");
    char logpath[512], ids[1024] = "", extra[320];
    const char *dir = getenv("BENCH_DIR");
    struct rlimit rl;

    ncpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
    /* Pinning (io_uring-notes.md section 6): every server on CPU 1, the
     * client on CPU 0. BENCH_ECHO_PIN=0, or one CPU: nothing pinned. */
    int pin = ncpus >= 2 && !(pe && !strcmp(pe, "0"));
    const char *only = getenv("BENCH_ECHO_ONLY");
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    snprintf(logpath, sizeof logpath, "%s/bench_io_echo.servers.log", dir && *dir ? dir : "build/bench");
    unlink(logpath);

    /* The cases: 64 B ping-pong at 1, 10 and 100 connections (the chart),
     * the acceptance row `echo` (64 B x 100), the same with client and
     * server sharing one CPU, echo_server_mt; full: 300 and 1,000
     * connections, and 4 KiB messages. */
    add_case("echo_c1", 1, 64, S_MAIN, 1);
    add_case("echo_c10", 10, 64, S_MAIN, 1);
    add_case("echo", 100, 64, S_MAIN, 1);
    if (full) { /* 1,000 connections to open and warm up for every server
                   in every run: too slow for the quick profile */
        add_case("echo_c300", 300, 64, S_MAIN, 1);
        add_case("echo_c1000", 1000, 64, S_MAIN, 1);
        add_case("echo_4k_c1", 1, 4096, S_MAIN, 2);
        add_case("echo_4k", 100, 4096, S_MAIN, 2);
        add_case("echo_4k_c1000", 1000, 4096, S_MAIN, 2);
    }
    if (pin) add_case("echo_1cpu", 100, 64, S_1CPU, 0);
    add_case("echo_mt", 100, 64, S_MT, 0);
    for (int k = 0; k < ncases; k++)
        if (cases[k].mode != S_MT)
            snprintf(ids + strlen(ids), sizeof ids - strlen(ids), "%s%s", *ids ? "," : "",
                     cases[k].row);
    snprintf(ids + strlen(ids), sizeof ids - strlen(ids), ",echo_epoll_backend,echo_cpu");

    if (only) {
        static char buf[512];
        snprintf(buf, sizeof buf, ",%s,", only);
        only_impls = buf;
    }
    bench_banner("io_echo", "echo ping-pong over loopback, one client, every server in turn");
    /* coro: examples/echo_server (streams), io_uring, and the same on the
     * epoll backend; coro_raw (coro_recv / coro_send, no stream): full. */
    add_server("coro", K_CORO, "uring", 0, pin, S_MAIN | S_1CPU);
    add_server("coro_epoll", K_CORO, "epoll", 0, pin, S_MAIN);
    if (full || only) add_server("coro_raw", K_CORO_RAW, NULL, 0, pin, S_MAIN);
    add_server("epoll", K_EPOLL, NULL, 0, pin, S_MAIN | S_1CPU);
    add_server("pthread", K_TPC, NULL, 0, pin, S_MAIN | S_1CPU);
    add_peers(pin, ids);
    add_server("mt1", K_MT, NULL, 1, 0, S_MT);
    add_server("mt2", K_MT, NULL, 2, 0, S_MT);
    signal(SIGINT, on_fatal);
    signal(SIGTERM, on_fatal);
    signal(SIGPIPE, SIG_IGN);
    atexit(stop_servers);

    int maxc = 0;
    for (int k = 0; k < ncases; k++) maxc = cases[k].conns > maxc ? cases[k].conns : maxc;
    cs = (struct cconn *)calloc((size_t)maxc, sizeof *cs);
    msg = (unsigned char *)malloc(65536);
    rbuf = (unsigned char *)malloc(RBUF);
    memset(msg, 'x', 65536);
    for (int i = 0; i < nservers; i++) {
        bench_progress("starting %s", servers[i].impl);
        int rc = -1;
        for (int attempt = 0; attempt < 3 && rc < 0; attempt++) /* a port taken meanwhile */
            rc = start_server(&servers[i], logpath);
        if (rc < 0) {
            servers[i].ok = 0;
            if (servers[i].kind == K_MT)
                printf("SKIP impl=coro bench=echo_mt_t%d echo_server_mt did not start (see %s)\n",
                       servers[i].threads, logpath);
            else if (!strcmp(servers[i].impl, "coro"))
                printf("SKIP impl=coro bench=%s the io_uring echo server did not start (see %s)\n",
                       ids, logpath);
            else if (servers[i].kind != K_CORO)
                printf("SKIP impl=%s bench=%s the server did not start (see %s)\n",
                       servers[i].impl, ids, logpath);
            else
                printf("SKIP impl=coro bench=echo_epoll_backend the server did not start "
                       "(see %s)\n", logpath);
        }
    }
    printf("   %d runs; %s; windows of %g s after >= %g s of warm-up (and until every "
           "connection had a round trip)\n   cases:", runs,
           pin ? "every server pinned to CPU 1, the client to CPU 0 (echo_1cpu: CPU 1 too)"
               : "nothing pinned",
           secs, warm);
    for (int k = 0; k < ncases; k++)
        printf(" %s(%d x %d B)", cases[k].row, cases[k].conns, cases[k].size);
    printf("\n   servers:");
    for (int i = 0; i < nservers; i++) printf(" %s%s", servers[i].impl, servers[i].ok ? "" : "(failed)");
    printf("\n");
    fflush(stdout);

    int failed[MAX_SERVERS] = {0};
    for (int r = 0; r < runs; r++) {
        for (int k = 0; k < ncases; k++) {
            struct ecase *e = &cases[k];
            pin_to(!pin || e->mode == S_MT ? -1 : e->mode == S_1CPU ? 1 : 0);
            for (int j = 0; j < nservers; j++) {
                int i = (j + r) % nservers; /* a different order each run */
                struct server *s = &servers[i];
                struct meas m;
                if (!s->ok || failed[i] || !in_case(i, e)) continue;
                bench_progress("run %d/%d: %s, %s", r + 1, runs, e->row, s->impl);
                if (client_connect(s->port, e->conns) < 0) {
                    failed[i] = 1;
                    continue;
                }
                if (measure(s, e->conns, e->size, warm, secs, &m) < 0) {
                    failed[i] = 1;
                    client_close(e->conns);
                    continue;
                }
                res[k][i][r] = m.rts;
                cpu[k][i][r] = m.srv_ns;
                ccpu[k][i][r] = m.cli_ns;
                p50[k][i][r] = m.p50_us;
                p99[k][i][r] = m.p99_us;
                client_close(e->conns);
                usleep(e->conns >= 100 ? 20000 : 2000); /* the server tears them down */
            }
        }
    }
    pin_to(-1);
    stop_servers();
    for (int i = 0; i < nservers; i++)
        if (failed[i]) {
            if (servers[i].kind == K_MT)
                printf("SKIP impl=coro bench=echo_mt_t%d failed during the run (see %s)\n",
                       servers[i].threads, logpath);
            else if (servers[i].kind != K_CORO || !strcmp(servers[i].impl, "coro"))
                printf("SKIP impl=%s bench=%s failed during the run (see the messages above "
                       "and %s)\n", servers[i].impl, ids, logpath);
        }

    /* The rows: round trips per second (higher is better). coro is the
     * io_uring server; the epoll-backend and raw servers get rows of their
     * own at 64 B x 100 (echo_epoll_backend, echo_raw_ops), where the peers
     * are repeated so that each ratio is there. */
    int main_case = -1, cpu_case = -1;
    for (int k = 0; k < ncases; k++) {
        struct ecase *e = &cases[k];
        if (!strcmp(e->row, "echo")) main_case = k;
        if (!strcmp(e->row, "echo_1cpu")) cpu_case = k;
        if (e->mode == S_MT) continue;
        for (int i = 0; i < nservers; i++) {
            struct server *s = &servers[i];
            if (!s->ok || failed[i] || !in_case(i, e)) continue;
            snprintf(extra, sizeof extra,
                     "better=higher conns=%d size=%d srv_cpu_ns=%.0f cli_cpu_ns=%.0f "
                     "p50_us=%.0f p99_us=%.0f pinned=%s secs=%g",
                     e->conns, e->size, median(cpu[k][i], runs), median(ccpu[k][i], runs),
                     median(p50[k][i], runs), median(p99[k][i], runs), mode_name(e->mode, pin),
                     secs);
            double med;
            if (s->kind == K_CORO && strcmp(s->impl, "coro") != 0) {
                med = median(res[k][i], runs); /* coro_epoll: its own row below */
                printf("%-14s %-10s median %12.3f rt/s (the epoll backend)\n", e->row, s->impl, med);
            } else if (s->kind == K_CORO_RAW) {
                med = median(res[k][i], runs);
                printf("%-14s %-10s median %12.3f rt/s (coro_recv/coro_send, no stream)\n",
                       e->row, s->impl, med);
            } else {
                med = bench_report(e->row, s->impl, "rt/s", res[k][i], runs, extra);
            }
            if (e->chart)
                bench_point(e->chart == 1 ? "echo" : "echo_4k", s->impl, e->conns, med, NULL);
        }
        if (k == main_case || e->mode == S_1CPU) { /* the latter: see the top */
            bench_target_ratio(e->row, "epoll", 1.0);
            bench_target_ratio(e->row, "pthread", 1.5);
        }
    }
    if (main_case >= 0) { /* the other coro servers, against the same peers */
        int k = main_case;
        for (int i = 0; i < nservers; i++) {
            struct server *s = &servers[i];
            const char *row = !strcmp(s->impl, "coro_epoll") ? "echo_epoll_backend"
                              : s->kind == K_CORO_RAW       ? "echo_raw_ops"
                                                            : NULL;
            if (!row || !s->ok || failed[i]) continue;
            snprintf(extra, sizeof extra,
                     "better=higher conns=100 size=64 backend=%s srv_cpu_ns=%.0f cli_cpu_ns=%.0f "
                     "p50_us=%.0f p99_us=%.0f pinned=%s secs=%g",
                     s->kind == K_CORO_RAW ? "io_uring" : "epoll", median(cpu[k][i], runs),
                     median(ccpu[k][i], runs), median(p50[k][i], runs), median(p99[k][i], runs),
                     mode_name(S_MAIN, pin), secs);
            bench_report(row, "coro", "rt/s", res[k][i], runs, extra);
            for (int j = 0; j < nservers; j++) {
                struct server *p = &servers[j];
                if (!p->ok || failed[j] || !in_case(j, &cases[k]) || p->kind == K_CORO ||
                    p->kind == K_CORO_RAW)
                    continue;
                snprintf(extra, sizeof extra, "better=higher conns=100 size=64 pinned=%s "
                         "note=same_figures_as_row_echo", mode_name(S_MAIN, pin));
                result_only(row, p->impl, "rt/s", res[k][j], runs, extra);
            }
        }
    }
    if (cpu_case >= 0) { /* server CPU time per round trip, client on its CPU */
        int k = cpu_case;
        for (int i = 0; i < nservers; i++) {
            struct server *s = &servers[i];
            if (!s->ok || failed[i] || !in_case(i, &cases[k])) continue;
            snprintf(extra, sizeof extra, "conns=100 size=64 pinned=%s "
                     "what=server_cpu_time_per_round_trip", mode_name(S_1CPU, pin));
            bench_report("echo_cpu", s->impl, "ns/op", cpu[k][i], runs, extra);
        }
    }
    for (int k = 0; k < ncases; k++) {
        struct ecase *e = &cases[k];
        if (e->mode != S_MT) continue;
        for (int i = 0; i < nservers; i++) {
            char row[32];
            struct server *s = &servers[i];
            if (!s->ok || failed[i] || s->kind != K_MT) continue;
            snprintf(row, sizeof row, "echo_mt_t%d", s->threads);
            snprintf(extra, sizeof extra,
                     "better=higher conns=%d size=%d threads=%d srv_cpu_ns=%.0f cli_cpu_ns=%.0f "
                     "p50_us=%.0f p99_us=%.0f pinned=no secs=%g",
                     e->conns, e->size, s->threads, median(cpu[k][i], runs),
                     median(ccpu[k][i], runs), median(p50[k][i], runs), median(p99[k][i], runs),
                     secs);
            bench_report(row, "coro", "rt/s", res[k][i], runs, extra);
        }
    }
    return 0;
}
