/* test_io.h - what the I/O suites (test/test_io_*.c) share, on top of
 * test.h. test/run.sh runs each of them twice, with CORO_BACKEND=uring and
 * CORO_BACKEND=epoll; coro_io_init picks the backend from there.
 *
 *   IO_BEGIN(&L, &io)      a loop on coro_io (reports captured); notes the
 *                          open fds
 *   IO_BEGIN_CFG(&L, &io, &cfg)   the same with a coro_io_config (its
 *                          backend field is set from CORO_BACKEND)
 *   IO_END(&L)             closes the loop; checks that no report came and
 *                          that exactly the fds open at IO_BEGIN are open
 *   io_tcp_pair(&a, &b)    two connected non-blocking loopback TCP sockets
 *   io_listener(&port)     a non-blocking listening socket on 127.0.0.1
 *   io_tmpfile(data, n)    an O_RDWR temporary file holding data (unlinked)
 *   io_backend()           "uring" or "epoll": what CORO_BACKEND asked for
 *   RUNNING_ON_VALGRIND    valgrind's, or 0 where its header is missing
 *   WATCHDOG()             SIGALRM in 120 s: a hang fails the binary
 *   RUN_UNTIL(L, cond, ns) / WAIT_FOR(L, cond) / RUN_FOR(L, ns)   run the
 *                          loop, bounded by a timer (WAIT_FOR: by GUARD,
 *                          which each suite defines, and it CHECKs cond)
 *   run_idle(L, n)         n iterations of at most 1 ms
 *   run_task(L, &t, frame) spawn, run until done (a suite that defines
 *                          GUARD before including this)
 *   pat / pat_fill / pat_ok   a cheap byte sequence per stream id
 *   child_exit(fn)         fn in a child process: CHILD_OK if it returned
 */
#ifndef TEST_IO_H
#define TEST_IO_H

#include "coro_io.h"
#include "test.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

/* A watchdog per test: a hang (a lost wake-up in a blocking call that has
 * no timeout) kills the binary with SIGALRM instead of blocking the suite. */
#define WATCHDOG() alarm(120)

__attribute__((unused)) static void noop_cb(coro_loop *L, void *arg)
{
    (void)L;
    (void)arg;
}

/* Runs loop iterations until cond holds, `ns` of loop time passed, or the
 * loop fails (CORO_EDEADLK); a timer bounds each wait, so this never
 * blocks for ever. */
#define RUN_UNTIL(L, cond, ns)                                                 \
    do {                                                                       \
        coro_call ru_call__;                                                   \
        int64_t ru_end__ = coro_loop_time(L) + (ns);                           \
        memset(&ru_call__, 0, sizeof ru_call__);                               \
        coro_call_at(L, &ru_call__, ru_end__, noop_cb, NULL);                  \
        while (!(cond) && coro_loop_time(L) < ru_end__ &&                      \
               coro_loop_run_once(L) == 0) {                                   \
        }                                                                      \
        coro_call_cancel(L, &ru_call__);                                       \
    } while (0)

/* Runs the loop until cond holds; a failure if it does not within GUARD
 * (each suite defines GUARD: how long a wait may take). */
#define WAIT_FOR(L, cond)                                                      \
    do {                                                                       \
        RUN_UNTIL(L, cond, GUARD);                                             \
        if (!(cond)) CHECK(!"timed out waiting for: " #cond);                  \
    } while (0)

/* Runs the loop for `ns` (nothing is expected to happen). */
#define RUN_FOR(L, ns) RUN_UNTIL(L, 0, ns)

/* Runs L for n iterations of at most 1 ms each, to check that nothing
 * happens meanwhile (a bare coro_loop_run_once would block until an
 * event). */
__attribute__((unused)) static void run_idle(coro_loop *L, int n)
{
    for (int k = 0; k < n; k++) {
        coro_call tick;
        memset(&tick, 0, sizeof tick);
        coro_call_later(L, &tick, CORO_MS(1), noop_cb, NULL);
        coro_loop_run_once(L);
        coro_call_cancel(L, &tick);
    }
}

#ifdef GUARD /* (a suite that defines it before including this) */
/* Spawns frame as task t and runs the loop until t is done (at most
 * GUARD; then t is cancelled). Returns t's result, or CORO_ETIMEDOUT. */
__attribute__((unused)) static int run_task(coro_loop *L, coro_task *t, coro_frame *frame)
{
    CHECK_EQ(coro_spawn(L, t, frame), 0);
    WAIT_FOR(L, coro_task_done(t));
    if (!coro_task_done(t)) {
        coro_task_cancel(L, t);
        RUN_UNTIL(L, coro_task_done(t), GUARD);
        return CORO_ETIMEDOUT;
    }
    return coro_task_result(t);
}
#endif

/* Byte `off` of stream `id`'s test sequence (cheap: big transfers). */
__attribute__((unused)) static unsigned char pat(unsigned id, size_t off)
{
    return (unsigned char)(off * 131u + (off >> 9) * 7u + id * 29u);
}

__attribute__((unused)) static void pat_fill(unsigned id, size_t off, unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = pat(id, off + i);
}

__attribute__((unused)) static int pat_ok(unsigned id, size_t off, const unsigned char *p,
                                          size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != pat(id, off + i)) return 0;
    return 1;
}

/* Runs fn in a child process (output silenced): its exit code, which is
 * CHILD_OK if fn returned, CHILD_OK + n if it exited so; anything below
 * CHILD_OK is a death (sanitizers exit with 1; -1: a signal). For checks
 * that must not take the whole binary down when a bug is there. */
#define CHILD_OK 100
__attribute__((unused)) static int child_exit(void (*fn)(void))
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        if (devnull >= 0) {
            dup2(devnull, 1);
            dup2(devnull, 2);
        }
        fn();
        _exit(CHILD_OK);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int test_io__fds;

/* The number of open fds of this process. */
__attribute__((unused)) static int io_fd_count(void)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n - 1; /* the directory's own fd */
}

__attribute__((unused)) static const char *io_backend(void)
{
    const char *b = getenv("CORO_BACKEND");
    return b && !strcmp(b, "epoll") ? "epoll" : "uring";
}

#define IO_BEGIN(L, io) IO_BEGIN_CFG(L, io, NULL)

__attribute__((unused)) static const coro_io_config *io__cfg(coro_io_config *cfg)
{
    if (cfg) cfg->backend = strcmp(io_backend(), "epoll") ? CORO_IO_URING : CORO_IO_EPOLL;
    return cfg;
}

#define IO_BEGIN_CFG(L, io, cfg)                                               \
    do {                                                                       \
        test_io__fds = io_fd_count();                                          \
        CHECK_EQ(coro_io_init((io), (L), io__cfg(cfg)), 0);                    \
        CHECK_STR(coro_io_backend_name(io),                                    \
                  strcmp(io_backend(), "epoll") ? "io_uring" : "epoll");       \
        coro_loop_set_report((L), test__report, NULL);                         \
        test__nreports = 0;                                                    \
    } while (0)

#define IO_END(L)                                                              \
    do {                                                                       \
        coro_loop_close(L);                                                    \
        CHECK_EQ(test_reports(), 0);                                           \
        CHECK_EQ(io_fd_count(), test_io__fds);                                 \
    } while (0)

__attribute__((unused)) static int io_listener(int *port)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 1024) < 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
        test__fail(__FILE__, __LINE__, "io_listener: %s", strerror(errno));
        return -1;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

__attribute__((unused)) static void io_tcp_pair(int *a, int *b)
{
    int port, l = io_listener(&port);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    *a = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (connect(*a, (struct sockaddr *)&sa, sizeof sa) < 0)
        test__fail(__FILE__, __LINE__, "io_tcp_pair: %s", strerror(errno));
    for (int i = 0; i < 1000 && (*b = accept4(l, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK)) < 0; i++)
        usleep(1000);
    fcntl(*a, F_SETFL, fcntl(*a, F_GETFL) | O_NONBLOCK);
    close(l);
}

__attribute__((unused)) static int io_tmpfile(const void *data, size_t n)
{
    char path[] = "/tmp/coro-test-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return -1;
    unlink(path);
    if (n && write(fd, data, n) != (ssize_t)n) {
        close(fd);
        return -1;
    }
    return fd;
}

/* FAIL lines reach the log even if a sanitizer aborts the run later. */
__attribute__((constructor)) static void io_line_buffered_stdout(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
}

__attribute__((unused)) static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static sigjmp_buf io_hang_jmp;
static volatile sig_atomic_t io_hang_armed;

__attribute__((unused)) static void io_hang_alarm(int sig)
{
    (void)sig;
    if (io_hang_armed) siglongjmp(io_hang_jmp, 1);
    _exit(3);
}

/* Runs the loop until no task is left. Returns 0, the loop's error
 * (CORO_EDEADLK: nothing could make progress), or -1 after a hang of
 * `secs` (the test has failed; IO_END then reports the tasks left). */
__attribute__((unused)) static int io_run_tasks(coro_loop *L, unsigned secs)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = io_hang_alarm;
    sigaction(SIGALRM, &sa, NULL);
    if (sigsetjmp(io_hang_jmp, 1)) {
        io_hang_armed = 0;
        test__fail(__FILE__, __LINE__, "hang: tasks still pending after %u s (a wait never ended)", secs + 1);
        return -1;
    }
    io_hang_armed = 1;
    alarm(secs + 1); /* the loop may never turn: a wait that never ends */
    int rc = 0;
    int64_t until = mono_ns() + CORO_S(secs);
    while (coro_loop_task_count(L) && (rc = coro_loop_run_once(L)) == 0) {
        if (mono_ns() > until) { /* the loop turns, but nothing ends */
            alarm(0);
            io_hang_armed = 0;
            test__fail(__FILE__, __LINE__, "hang: tasks still pending after %u s", secs);
            return -1;
        }
    }
    alarm(0);
    io_hang_armed = 0;
    return rc;
}

#endif
