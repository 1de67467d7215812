/* test_io_process.c - coro_io.h's subprocesses (R-SP-1..4; T120):
 * coro_process_exec / _shell, wait, returncode (exit status, -signal),
 * kill / terminate / send_signal, communicate over PIPEs (one way, both
 * ways, large outputs on stdout and stderr at once, stderr to STDOUT,
 * DEVNULL, a child that does not read its input), several waiters on one
 * process, a cancelled wait (the child keeps running), reading stdout after
 * the exit, the options (envp, cwd), closing a running process, and the
 * failure modes (no such program, bad arguments).
 *
 * Built plain and with ASan+UBSan; run on both backends and under
 * valgrind. The loop runs on the real clock: nothing asserts on elapsed
 * time; every wait is bounded (GUARD) so that a bug fails a check instead
 * of hanging. Each test checks (IO_END) that no fd is left open, and after
 * each wait that the child was reaped (no zombie). Only binaries of a base
 * Debian system are run: sh, true, false, cat, head, sleep. */
/* The longest any wait may take before the test calls it a failure. */
#define GUARD CORO_S(30)

#include "test_io.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

/* ---- helpers */

/* 1 if pid was reaped (it is no child of ours any more: no zombie). */
static int reaped(pid_t pid)
{
    errno = 0;
    return pid > 0 && waitpid(pid, NULL, WNOHANG) == -1 && errno == ECHILD;
}

/* 1 while pid is alive (and not reaped): /proc/<pid> is there. */
static int proc_alive(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d", (int)pid);
    return access(path, F_OK) == 0;
}

/* Whether posix_spawnp reports the child's exec error. It does (glibc:
 * the vfork'ed child writes it to the shared memory), except under
 * valgrind, which runs a vfork as a fork: there the spawn succeeds and
 * the child exits with 127, which is then all the library can see. */
static int spawn_reports_exec_errors(void)
{
    static int known, reports;
    if (!known) {
        char *argv[] = {(char *)"coro-no-such-program-xyz", NULL};
        pid_t pid;
        int rc = posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ);
        if (rc == 0) waitpid(pid, NULL, 0);
        reports = rc != 0;
        known = 1;
    }
    return reports;
}

/* An exec that must fail with -errno_: where the spawn cannot report it,
 * it succeeds instead and the child fails (glibc's 127; valgrind, running
 * that child, may exit with its --error-exitcode): checked, then closed. */
#define CHECK_EXEC_FAILS(L, p, call, errno_)                                   \
    do {                                                                       \
        int ef_rc__ = (call);                                                  \
        if (spawn_reports_exec_errors()) {                                     \
            CHECK_EQ(ef_rc__, -(errno_));                                      \
        } else {                                                               \
            CHECK_EQ(ef_rc__, 0);                                              \
            if (ef_rc__ == 0) {                                                \
                CHECK(proc_wait(L, p) > 0); /* 127, or valgrind's own code */  \
                CHECK_EQ(proc_close(L, p), 0);                                 \
            }                                                                  \
        }                                                                      \
        CHECK((p)->in == NULL && (p)->out == NULL && (p)->err == NULL);        \
    } while (0)

/* coro_process_exec with the three stdio modes and argv. */
#define EXEC(p, L, in_, out_, err_, ...)                                       \
    coro_process_exec((p), (L), (char *const[]){__VA_ARGS__, NULL},            \
                      &(coro_process_opts){(in_), (out_), (err_), NULL, NULL, 0})

/* ---- tasks */

/* wait(): keeps the outcome; the task ends with it (or cancelled). */
struct waiter {
    coro_frame co;
    coro_process_op op;
    coro_process *p;
    int rc, done;
};

static int waiter_fn(coro_ctx *c)
{
    struct waiter *w = CORO_SELF(c, struct waiter);
    CORO_BEGIN(c);
    CORO_AWAIT(c, coro_process_wait(&w->op, w->p));
    w->rc = c->rc;
    w->done = 1;
    CORO_RETURN(c, c->rc);
    CORO_END(c);
}

static coro_frame *waiter(struct waiter *w, coro_process *p)
{
    memset(w, 0, sizeof *w);
    w->p = p;
    w->rc = 1000;
    return coro_frame_init(&w->co, waiter_fn);
}

/* communicate(input): out / err collected when wanted. */
struct comm {
    coro_frame co;
    coro_communicate_op op;
    coro_process *p;
    const void *input;
    size_t len;
    coro_bytes out, err;
    int want_out, want_err, rc;
};

static int comm_fn(coro_ctx *c)
{
    struct comm *m = CORO_SELF(c, struct comm);
    CORO_BEGIN(c);
    CORO_AWAIT(c, coro_process_communicate(&m->op, m->p, m->input, m->len,
                                           m->want_out ? &m->out : NULL,
                                           m->want_err ? &m->err : NULL));
    m->rc = c->rc;
    CORO_RETURN(c, c->rc);
    CORO_END(c);
}

static coro_frame *comm(struct comm *m, coro_process *p, const void *input, size_t len,
                        int want_out, int want_err)
{
    memset(m, 0, sizeof *m);
    m->p = p;
    m->input = input;
    m->len = len;
    m->want_out = want_out;
    m->want_err = want_err;
    m->rc = 1000;
    return coro_frame_init(&m->co, comm_fn);
}

static void comm_free(struct comm *m)
{
    free(m->out.data);
    free(m->err.data);
    m->out.data = m->err.data = NULL;
}

/* close(): kills a running process, reaps it, closes the pipes. */
struct closer {
    coro_frame co;
    coro_process_close_op op;
    coro_process *p;
};

static int closer_fn(coro_ctx *c)
{
    struct closer *k = CORO_SELF(c, struct closer);
    CORO_BEGIN(c);
    CORO_AWAIT(c, coro_process_close(&k->op, k->p));
    CORO_RETURN(c, c->rc);
    CORO_END(c);
}

static int proc_close(coro_loop *L, coro_process *p)
{
    struct closer k;
    coro_task t;
    memset(&k, 0, sizeof k);
    k.p = p;
    return run_task(L, &t, coro_frame_init(&k.co, closer_fn));
}

static int proc_wait(coro_loop *L, coro_process *p)
{
    struct waiter w;
    coro_task t;
    int rc = run_task(L, &t, waiter(&w, p));
    return rc;
}

/* Reads a stream to its end into buf (at most cap); returns the count. */
struct slurp {
    coro_frame co;
    coro_stream_op op;
    coro_stream *s;
    char *buf;
    size_t cap;
};

static int slurp_fn(coro_ctx *c)
{
    struct slurp *r = CORO_SELF(c, struct slurp);
    CORO_BEGIN(c);
    CORO_AWAIT(c, coro_stream_read(&r->op, r->s, r->buf, r->cap, (size_t)-1));
    CORO_RETURN(c, c->rc);
    CORO_END(c);
}

static int slurp(coro_loop *L, coro_stream *s, char *buf, size_t cap)
{
    struct slurp r;
    coro_task t;
    memset(&r, 0, sizeof r);
    r.s = s;
    r.buf = buf;
    r.cap = cap;
    return run_task(L, &t, coro_frame_init(&r.co, slurp_fn));
}

/* write + drain on stdin (T120's test_stdin_broken_pipe). */
struct feeder {
    coro_frame co;
    coro_stream_op op;
    coro_stream *s;
    const void *data;
    size_t len;
};

static int feeder_fn(coro_ctx *c)
{
    struct feeder *f = CORO_SELF(c, struct feeder);
    CORO_BEGIN(c);
    CHECK_EQ(coro_stream_write(f->s, f->data, f->len), 0);
    CORO_AWAIT(c, coro_stream_drain(&f->op, f->s));
    CORO_RETURN(c, c->rc);
    CORO_END(c);
}

/* ====================================================================== */
/* Exit status and returncode (R-SP-1, R-SP-3, T120)                      */
/* ====================================================================== */

TEST(R_SP_1_true_exits_0_and_is_reaped)
{
    coro_loop L;
    coro_io io;
    coro_process p;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    CHECK_EQ(EXEC(&p, &L, CORO_INHERIT, CORO_INHERIT, CORO_INHERIT, "true"), 0);
    CHECK(coro_process_pid(&p) > 0);
    CHECK(p.in == NULL && p.out == NULL && p.err == NULL);
    CHECK_EQ(proc_wait(&L, &p), 0);
    CHECK(coro_process_exited(&p));
    CHECK_EQ(coro_process_returncode(&p), 0);
    CHECK(reaped(coro_process_pid(&p)));
    CHECK_EQ(proc_close(&L, &p), 0);
    IO_END(&L);
}

TEST(R_SP_1_false_exits_1)
{
    coro_loop L;
    coro_io io;
    coro_process p;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    CHECK_EQ(EXEC(&p, &L, CORO_INHERIT, CORO_INHERIT, CORO_INHERIT, "false"), 0);
    CHECK_EQ(proc_wait(&L, &p), 1);
    CHECK_EQ(coro_process_returncode(&p), 1);
    CHECK(reaped(coro_process_pid(&p)));
    /* wait again once it has exited: at once, the same code */
    CHECK_EQ(proc_wait(&L, &p), 1);
    CHECK_EQ(proc_close(&L, &p), 0);
    IO_END(&L);
}

TEST(R_SP_3_T120_shell_exit_7_and_exec_sh_c_exit_7)
{
    coro_loop L;
    coro_io io;
    coro_process p;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    CHECK_EQ(coro_process_shell(&p, &L, "exit 7", NULL), 0);
    CHECK_EQ(proc_wait(&L, &p), 7);
    CHECK_EQ(coro_process_returncode(&p), 7);
    CHECK(reaped(coro_process_pid(&p)));
    CHECK_EQ(proc_close(&L, &p), 0);

    CHECK_EQ(EXEC(&p, &L, CORO_INHERIT, CORO_INHERIT, CORO_INHERIT, "sh", "-c", "exit 7"), 0);
    CHECK_EQ(proc_wait(&L, &p), 7);
    CHECK_EQ(coro_process_returncode(&p), 7);
    CHECK(reaped(coro_process_pid(&p)));
    CHECK_EQ(proc_close(&L, &p), 0);
    IO_END(&L);
}

TEST(R_SP_1_returncode_unset_while_running)
{
    coro_loop L;
    coro_io io;
    coro_process p;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    CHECK_EQ(EXEC(&p, &L, CORO_INHERIT, CORO_INHERIT, CORO_INHERIT, "sleep", "30"), 0);
    run_idle(&L, 5);
    CHECK(!coro_process_exited(&p));
    CHECK(proc_alive(coro_process_pid(&p)));
    CHECK_EQ(coro_process_kill(&p), 0);
    CHECK_EQ(proc_wait(&L, &p), 128 + SIGKILL);
    CHECK_EQ(proc_close(&L, &p), 0);
    IO_END(&L);
}

/* ====================================================================== */
/* Signals: returncode is -signal (R-SP-1, T120 test_kill/test_terminate) */
/* ====================================================================== */

TEST(R_SP_1_T120_kill_gives_minus_SIGKILL)
{
    coro_loop L;
    coro_io io;
    coro_process p;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    CHECK_EQ(EXEC(&p, &L, CORO_INHERIT, CORO_INHERIT, CORO_INHERIT, "sleep", "30"), 0);
    CHECK_EQ(coro_process_kill(&p), 0);
    CHECK_EQ(proc_wait(&L, &p), 128 + SIGKILL);
    CHECK_EQ(coro_process_returncode(&p), -SIGKILL);
    CHECK(reaped(coro_process_pid(&p)));
    CHECK(!proc_alive(coro_process_pid(&p)));
    CHECK_EQ(proc_close(&L, &p), 0);
    IO_END(&L);
}

TEST(R_SP_1_T120_terminate_gives_minus_SIGTERM)
{
    coro_loop L;
    coro_io io;
    coro_process p;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    CHECK_EQ(EXEC(&p, &L, CORO_INHERIT, CORO_INHERIT, CORO_INHERIT, "sleep", "30"), 0);
    CHECK_EQ(coro_process_terminate(&p), 0);
    CHECK_EQ(proc_wait(&L, &p), 128 + SIGTERM);
    CHECK_EQ(coro_process_returncode(&p), -SIGTERM);
    CHECK(reaped(coro_process_pid(&p)));
    CHECK_EQ(proc_close(&L, &p), 0);
    IO_END(&L);
}

TEST(R_SP_1_send_signal_SIGKILL_and_signals_after_exit_are_ESRCH)
{
    coro_loop L;
    coro_io io;
    coro_process p;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    CHECK_EQ(EXEC(&p, &L, CORO_INHERIT, CORO_INHERIT, CORO_INHERIT, "sleep", "30"), 0);
    CHECK_EQ(coro_process_send_signal(&p, SIGKILL), 0);
    CHECK_EQ(proc_wait(&L, &p), 128 + SIGKILL);
    CHECK_EQ(coro_process_returncode(&p), -SIGKILL);
    CHECK_EQ(coro_process_send_signal(&p, SIGTERM), -ESRCH);
    CHECK_EQ(coro_process_terminate(&p), -ESRCH);
    CHECK_EQ(coro_process_kill(&p), -ESRCH);
    CHECK_EQ(coro_process_returncode(&p), -SIGKILL);
    CHECK_EQ(proc_close(&L, &p), 0);
    IO_END(&L);
}

/* Any signal that ends the child by default: -that signal. */
TEST(R_SP_1_send_signal_SIGUSR1_gives_minus_SIGUSR1)
{
    coro_loop L;
    coro_io io;
    coro_process p;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    CHECK_EQ(EXEC(&p, &L, CORO_INHERIT, CORO_INHERIT, CORO_INHERIT, "sleep", "30"), 0);
    CHECK_EQ(coro_process_send_signal(&p, SIGUSR1), 0);
    CHECK_EQ(proc_wait(&L, &p), 128 + SIGUSR1);
    CHECK_EQ(coro_process_returncode(&p), -SIGUSR1);
    CHECK_EQ(proc_close(&L, &p), 0);
    IO_END(&L);
}

/* ====================================================================== */
/* Pipes and communicate (R-SP-2, R-SP-4, T120)                           */
/* ====================================================================== */

TEST(R_SP_2_T120_cat_communicate_returns_the_same_bytes)
{
    static const char msg[] = "some data\nover two lines\n";
    coro_loop L;
    coro_io io;
    coro_process p;
    coro_task t;
    struct comm m;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    CHECK_EQ(EXEC(&p, &L, CORO_PIPE, CORO_PIPE, CORO_INHERIT, "cat"), 0);
    CHECK(p.in != NULL && p.out != NULL && p.err == NULL);
    CHECK_EQ(run_task(&L, &t, comm(&m, &p, msg, sizeof msg - 1, 1, 1)), 0);
    CHECK_EQ(m.out.len, sizeof msg - 1);
    CHECK(m.out.data && memcmp(m.out.data, msg, sizeof msg - 1) == 0);
    CHECK_EQ(m.err.len, 0); /* stderr not a PIPE: untouched */
    CHECK(m.err.data == NULL);
    CHECK_EQ(coro_process_returncode(&p), 0);
    CHECK(reaped(coro_process_pid(&p)));
    comm_free(&m);
    CHECK_EQ(proc_close(&L, &p), 0);
    IO_END(&L);
}

/* stdout and stderr are PIPEs but nobody wants their bytes (out / err
 * NULL): communicate still reads them, or the child, blocked writing its
 * 1 MiB into a full pipe, would never exit. */
TEST(communicate_drains_pipes_whose_bytes_nobody_wants)
{
    coro_loop L;
    coro_io io;
    coro_process p;
    coro_task t;
    struct comm m;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    CHECK_EQ(EXEC(&p, &L, CORO_DEVNULL, CORO_PIPE, CORO_PIPE, "sh", "-c",
                  "head -c 1048576 /dev/zero; head -c 1048576 /dev/zero >&2; exit 3"),
             0);
    CHECK_EQ(run_task(&L, &t, comm(&m, &p, NULL, 0, 0, 0)), 3);
    CHECK_EQ(m.rc, 3);
    CHECK(m.out.data == NULL && m.err.data == NULL);
    CHECK_EQ(coro_process_returncode(&p), 3);
    CHECK_EQ(proc_close(&L, &p), 0);
    IO_END(&L);
}

/* Our own stdin, stdout and stderr are closed (a daemon): the pipes'
 * ends land on fds 0..2, and the child must still get each on the right
 * one (it does: the ends are made in the order 0, 1, 2, ours first, so a
 * child's end never sits on a lower stdio fd that an earlier dup2 of the
 * spawn would overwrite). cat echoes its stdin to its stdout; stderr goes
 * to /dev/null. */
TEST(exec_with_our_stdio_closed_gives_the_child_the_right_pipes)
{
    static const char msg[] = "through fds 0 and 1\n";
    coro_loop L;
    coro_io io;
    coro_process p;
    coro_task t;
    struct comm m;
    int saved[3], rc, fd_of_in, fd_of_out, closed = -1;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    fflush(stdout);
    for (int k = 0; k < 3; k++) {
        saved[k] = fcntl(k, F_DUPFD_CLOEXEC, 10);
        close(k);
    }
    rc = EXEC(&p, &L, CORO_PIPE, CORO_PIPE, CORO_DEVNULL, "cat");
    fd_of_in = rc == 0 ? p.in->fd : -1;
    fd_of_out = rc == 0 ? p.out->fd : -1;
    if (rc == 0) {
        run_task(&L, &t, comm(&m, &p, msg, sizeof msg - 1, 1, 0));
        closed = proc_close(&L, &p); /* our ends on 0..2 closed before we restore them */
    }
    for (int k = 0; k < 3; k++) {
        dup2(saved[k], k);
        close(saved[k]);
    }
    CHECK_EQ(rc, 0);
    if (rc < 0) {
        IO_END(&L);
        return;
    }
    CHECK(fd_of_in <= 2 && fd_of_out <= 2); /* the case under test */
    CHECK_EQ(m.rc, 0);
    CHECK_EQ(m.out.len, sizeof msg - 1);
    CHECK(m.out.data && memcmp(m.out.data, msg, sizeof msg - 1) == 0);
    comm_free(&m);
    CHECK_EQ(closed, 0);
    IO_END(&L);
}

TEST(T120_communicate_with_no_input_gives_empty_output)
{
    coro_loop L;
    coro_io io;
    coro_process p;
    coro_task t;
    struct comm m;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    CHECK_EQ(EXEC(&p, &L, CORO_PIPE, CORO_PIPE, CORO_PIPE, "cat"), 0);
    CHECK_EQ(run_task(&L, &t, comm(&m, &p, NULL, 0, 1, 1)), 0);
    CHECK_EQ(m.out.len, 0);
    CHECK_EQ(m.err.len, 0);
    CHECK_EQ(coro_process_returncode(&p), 0);
    comm_free(&m);
    CHECK_EQ(proc_close(&L, &p), 0);
    IO_END(&L);
}

TEST(R_SP_2_cat_large_input_round_trip)
{
    enum { N = 2000000 };
    coro_loop L;
    coro_io io;
    coro_process p;
    coro_task t;
    struct comm m;
    unsigned char *data = (unsigned char *)malloc(N);
    WATCHDOG();
    for (size_t i = 0; i < N; i++) data[i] = (unsigned char)(i * 7 + (i >> 11));
    IO_BEGIN(&L, &io);
    CHECK_EQ(EXEC(&p, &L, CORO_PIPE, CORO_PIPE, CORO_PIPE, "cat"), 0);
    CHECK_EQ(run_task(&L, &t, comm(&m, &p, data, N, 1, 1)), 0);
    CHECK_EQ(m.out.len, N);
    CHECK(m.out.data && memcmp(m.out.data, data, N) == 0);
    CHECK_EQ(m.err.len, 0);
    comm_free(&m);
    CHECK_EQ(proc_close(&L, &p), 0);
    IO_END(&L);
    free(data);
}

static size_t count_byte(const coro_bytes *b, unsigned char v)
{
    size_t n = 0;
    for (size_t i = 0; i < b->len; i++) n += b->data[i] == v;
    return n;
}

TEST(R_SP_2_large_outputs_on_stdout_and_stderr_at_once_no_deadlock)
{
    coro_loop L;
    coro_io io;
    coro_process p;
    coro_task t;
    struct comm m;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    CHECK_EQ(coro_process_shell(&p, &L,
                                "head -c 3000000 /dev/zero; head -c 3000000 /dev/zero >&2; exit 3",
                                &(coro_process_opts){CORO_DEVNULL, CORO_PIPE, CORO_PIPE, NULL,
                                                     NULL, 0}),
             0);
    CHECK(p.in == NULL && p.out != NULL && p.err != NULL);
    CHECK_EQ(run_task(&L, &t, comm(&m, &p, NULL, 0, 1, 1)), 3);
    CHECK_EQ(m.out.len, 3000000);
    CHECK_EQ(m.err.len, 3000000);
    CHECK_EQ(count_byte(&m.out, 0), 3000000);
    CHECK_EQ(count_byte(&m.err, 0), 3000000);
    CHECK_EQ(coro_process_returncode(&p), 3);
    comm_free(&m);
    CHECK_EQ(proc_close(&L, &p), 0);
    IO_END(&L);
}

TEST(R_SP_2_large_stderr_first_then_stdout)
{
    coro_loop L;
    coro_io io;
    coro_process p;
    coro_task t;
    struct comm m;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    CHECK_EQ(coro_process_shell(&p, &L,
                                "head -c 1000000 /dev/zero >&2; head -c 2000000 /dev/zero",
                                &(coro_process_opts){CORO_PIPE, CORO_PIPE, CORO_PIPE, NULL,
                                                     NULL, 0}),
             0);
    CHECK_EQ(run_task(&L, &t, comm(&m, &p, "ignored", 7, 1, 1)), 0);
    CHECK_EQ(m.out.len, 2000000);
    CHECK_EQ(m.err.len, 1000000);
    comm_free(&m);
    CHECK_EQ(proc_close(&L, &p), 0);
    IO_END(&L);
}

TEST(R_SP_2_stderr_STDOUT_merges_into_stdout)
{
    coro_loop L;
    coro_io io;
    coro_process p;
    coro_task t;
    struct comm m;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    CHECK_EQ(EXEC(&p, &L, CORO_DEVNULL, CORO_PIPE, CORO_STDOUT, "sh", "-c",
                  "echo out; echo err >&2; echo out2"),
             0);
    CHECK(p.out != NULL && p.err == NULL && p.in == NULL);
    CHECK_EQ(run_task(&L, &t, comm(&m, &p, NULL, 0, 1, 1)), 0);
    CHECK_EQ(m.out.len, 13);
    CHECK(m.out.data && memcmp(m.out.data, "out\nerr\nout2\n", 13) == 0);
    CHECK_EQ(m.err.len, 0);
    comm_free(&m);
    CHECK_EQ(proc_close(&L, &p), 0);
    IO_END(&L);
}

TEST(R_SP_2_DEVNULL_stdin_gives_eof_and_stdout_stderr_are_discarded)
{
    coro_loop L;
    coro_io io;
    coro_process p;
    coro_task t;
    struct comm m;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    /* stdin /dev/null: cat sees EOF at once */
    CHECK_EQ(EXEC(&p, &L, CORO_DEVNULL, CORO_PIPE, CORO_PIPE, "cat"), 0);
    CHECK(p.in == NULL);
    CHECK_EQ(run_task(&L, &t, comm(&m, &p, "dropped", 7, 1, 1)), 0);
    CHECK_EQ(m.out.len, 0);
    CHECK_EQ(m.err.len, 0);
    comm_free(&m);
    CHECK_EQ(proc_close(&L, &p), 0);
    /* stdout and stderr to /dev/null: nothing to read, the child runs on */
    CHECK_EQ(EXEC(&p, &L, CORO_PIPE, CORO_DEVNULL, CORO_DEVNULL, "sh", "-c",
                  "cat; echo x; echo y >&2; exit 4"),
             0);
    CHECK(p.in != NULL && p.out == NULL && p.err == NULL);
    CHECK_EQ(run_task(&L, &t, comm(&m, &p, "abc\n", 4, 1, 1)), 4);
    CHECK_EQ(m.out.len, 0);
    CHECK_EQ(m.err.len, 0);
    CHECK(m.out.data == NULL && m.err.data == NULL);
    comm_free(&m);
    CHECK_EQ(proc_close(&L, &p), 0);
    IO_END(&L);
}

TEST(R_SP_2_T120_communicate_ignores_a_broken_pipe)
{
    enum { N = 4000000 };
    coro_loop L;
    coro_io io;
    coro_process p;
    coro_task t;
    struct comm m;
    unsigned char *data = (unsigned char *)calloc(1, N);
    WATCHDOG();
    IO_BEGIN(&L, &io);
    /* exits without reading its stdin */
    CHECK_EQ(EXEC(&p, &L, CORO_PIPE, CORO_INHERIT, CORO_INHERIT, "true"), 0);
    CHECK_EQ(run_task(&L, &t, comm(&m, &p, data, N, 1, 1)), 0);
    CHECK_EQ(coro_process_returncode(&p), 0);
    comm_free(&m);
    CHECK_EQ(proc_close(&L, &p), 0);
    /* reads a little, then exits: the rest of the input is refused */
    CHECK_EQ(EXEC(&p, &L, CORO_PIPE, CORO_PIPE, CORO_INHERIT, "head", "-c", "10"), 0);
    CHECK_EQ(run_task(&L, &t, comm(&m, &p, data, N, 1, 1)), 0);
    CHECK_EQ(m.out.len, 10);
    CHECK_EQ(coro_process_returncode(&p), 0);
    comm_free(&m);
    CHECK_EQ(proc_close(&L, &p), 0);
    /* the same, after the child is gone for sure */
    CHECK_EQ(EXEC(&p, &L, CORO_PIPE, CORO_PIPE, CORO_INHERIT, "true"), 0);
    CHECK_EQ(proc_wait(&L, &p), 0);
    CHECK_EQ(run_task(&L, &t, comm(&m, &p, data, N, 1, 1)), 0);
    CHECK_EQ(m.out.len, 0);
    comm_free(&m);
    CHECK_EQ(proc_close(&L, &p), 0);
    IO_END(&L);
    free(data);
}

TEST(R_SP_2_T120_stdin_drain_raises_a_broken_pipe)
{
    enum { N = 4000000 };
    coro_loop L;
    coro_io io;
    coro_process p;
    coro_task t;
    struct feeder f;
    unsigned char *data = (unsigned char *)calloc(1, N);
    WATCHDOG();
    IO_BEGIN(&L, &io);
    CHECK_EQ(EXEC(&p, &L, CORO_PIPE, CORO_INHERIT, CORO_INHERIT, "true"), 0);
    CHECK_EQ(proc_wait(&L, &p), 0);
    memset(&f, 0, sizeof f);
    f.s = p.in;
    f.data = data;
    f.len = N;
    int rc = run_task(&L, &t, coro_frame_init(&f.co, feeder_fn));
    CHECK(rc == -EPIPE || rc == -ECONNRESET);
    CHECK_EQ(proc_close(&L, &p), 0);
    IO_END(&L);
    free(data);
}

TEST(R_SP_4_stdout_read_to_eof_after_the_process_exited)
{
    coro_loop L;
    coro_io io;
    coro_process p;
    char buf[64];
    WATCHDOG();
    IO_BEGIN(&L, &io);
    CHECK_EQ(EXEC(&p, &L, CORO_INHERIT, CORO_PIPE, CORO_INHERIT, "sh", "-c", "echo hello; exit 2"),
             0);
    CHECK_EQ(proc_wait(&L, &p), 2);
    CHECK(reaped(coro_process_pid(&p)));
    CHECK_EQ(slurp(&L, p.out, buf, sizeof buf), 6);
    CHECK(memcmp(buf, "hello\n", 6) == 0);
    CHECK_EQ(slurp(&L, p.out, buf, sizeof buf), 0);
    CHECK_EQ(proc_close(&L, &p), 0);
    IO_END(&L);
}

TEST(R_SP_2_envp_and_cwd_options)
{
    static char *const env[] = {(char *)"CORO_TEST_VAR=hello", (char *)"PATH=/usr/bin:/bin", NULL};
    coro_loop L;
    coro_io io;
    coro_process p;
    coro_task t;
    struct comm m;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    CHECK_EQ(coro_process_shell(&p, &L, "echo $CORO_TEST_VAR; pwd",
                                &(coro_process_opts){CORO_DEVNULL, CORO_PIPE, CORO_INHERIT, env,
                                                     "/", 0}),
             0);
    CHECK_EQ(run_task(&L, &t, comm(&m, &p, NULL, 0, 1, 0)), 0);
    CHECK_EQ(m.out.len, 8);
    CHECK(m.out.data && memcmp(m.out.data, "hello\n/\n", 8) == 0);
    comm_free(&m);
    CHECK_EQ(proc_close(&L, &p), 0);
    IO_END(&L);
}

/* ====================================================================== */
/* Waiters (R-SP-1, T120 test_subprocess_concurrent_wait / cancel_wait)   */
/* ====================================================================== */

TEST(R_SP_1_T120_ten_concurrent_waiters_all_get_the_returncode)
{
    coro_loop L;
    coro_io io;
    coro_process p;
    coro_task t[10];
    struct waiter w[10];
    WATCHDOG();
    IO_BEGIN(&L, &io);
    /* exits with 5 once it reads a line */
    CHECK_EQ(EXEC(&p, &L, CORO_PIPE, CORO_INHERIT, CORO_INHERIT, "sh", "-c", "read x; exit 5"),
             0);
    for (int i = 0; i < 10; i++) CHECK_EQ(coro_spawn(&L, &t[i], waiter(&w[i], &p)), 0);
    run_idle(&L, 5);
    for (int i = 0; i < 10; i++) CHECK(!w[i].done);
    CHECK(!coro_process_exited(&p));
    CHECK_EQ(coro_stream_write(p.in, "go\n", 3), 0);
    WAIT_FOR(&L, coro_task_done(&t[9]));
    for (int i = 0; i < 10; i++) {
        WAIT_FOR(&L, coro_task_done(&t[i]));
        CHECK_EQ(coro_task_result(&t[i]), 5);
        CHECK_EQ(w[i].rc, 5);
    }
    CHECK_EQ(coro_process_returncode(&p), 5);
    CHECK(reaped(coro_process_pid(&p)));
    CHECK_EQ(proc_close(&L, &p), 0);
    IO_END(&L);
}

TEST(R_SP_1_T120_concurrent_waiters_on_a_killed_process)
{
    coro_loop L;
    coro_io io;
    coro_process p;
    coro_task t[3];
    struct waiter w[3];
    WATCHDOG();
    IO_BEGIN(&L, &io);
    CHECK_EQ(EXEC(&p, &L, CORO_INHERIT, CORO_INHERIT, CORO_INHERIT, "sleep", "30"), 0);
    for (int i = 0; i < 3; i++) CHECK_EQ(coro_spawn(&L, &t[i], waiter(&w[i], &p)), 0);
    run_idle(&L, 3);
    CHECK_EQ(coro_process_terminate(&p), 0);
    for (int i = 0; i < 3; i++) {
        WAIT_FOR(&L, coro_task_done(&t[i]));
        CHECK_EQ(coro_task_result(&t[i]), 128 + SIGTERM);
    }
    CHECK_EQ(coro_process_returncode(&p), -SIGTERM);
    CHECK_EQ(proc_close(&L, &p), 0);
    IO_END(&L);
}

TEST(R_SP_1_T120_cancelled_wait_leaves_the_process_running)
{
    coro_loop L;
    coro_io io;
    coro_process p;
    coro_task t, t2;
    struct waiter w, w2;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    CHECK_EQ(EXEC(&p, &L, CORO_INHERIT, CORO_INHERIT, CORO_INHERIT, "sleep", "30"), 0);
    CHECK_EQ(coro_spawn(&L, &t, waiter(&w, &p)), 0);
    CHECK_EQ(coro_spawn(&L, &t2, waiter(&w2, &p)), 0); /* a second one, not cancelled */
    run_idle(&L, 5);
    CHECK(!coro_task_done(&t));
    coro_task_cancel(&L, &t);
    WAIT_FOR(&L, coro_task_done(&t));
    CHECK(coro_task_cancelled(&t));
    CHECK_EQ(coro_task_result(&t), CORO_ECANCELED);
    CHECK_EQ(w.rc, CORO_ECANCELED); /* the await ended cancelled */
    run_idle(&L, 5);
    CHECK(!coro_process_exited(&p));
    CHECK(!coro_task_done(&t2));
    CHECK(proc_alive(coro_process_pid(&p)));
    CHECK_EQ(kill(coro_process_pid(&p), 0), 0);
    CHECK_EQ(coro_process_kill(&p), 0);
    CHECK_EQ(proc_wait(&L, &p), 128 + SIGKILL);
    CHECK_EQ(coro_process_returncode(&p), -SIGKILL);
    WAIT_FOR(&L, coro_task_done(&t2));
    CHECK_EQ(coro_task_result(&t2), 128 + SIGKILL);
    CHECK(reaped(coro_process_pid(&p)));
    CHECK_EQ(proc_close(&L, &p), 0);
    IO_END(&L);
}

TEST(R_SP_2_cancelled_communicate_then_close)
{
    coro_loop L;
    coro_io io;
    coro_process p;
    coro_task t;
    struct comm m;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    CHECK_EQ(EXEC(&p, &L, CORO_PIPE, CORO_PIPE, CORO_PIPE, "sh", "-c", "cat; sleep 30"), 0);
    CHECK_EQ(coro_spawn(&L, &t, comm(&m, &p, "abc", 3, 1, 1)), 0);
    run_idle(&L, 5);
    CHECK(!coro_task_done(&t));
    coro_task_cancel(&L, &t);
    WAIT_FOR(&L, coro_task_done(&t));
    CHECK(coro_task_cancelled(&t));
    CHECK_EQ(coro_task_result(&t), CORO_ECANCELED);
    CHECK(!coro_process_exited(&p));
    comm_free(&m);
    pid_t pid = coro_process_pid(&p);
    CHECK_EQ(proc_close(&L, &p), 0); /* kills it */
    CHECK_EQ(coro_process_returncode(&p), -SIGKILL);
    CHECK(reaped(pid));
    IO_END(&L);
}

/* ====================================================================== */
/* Closing, many processes                                                */
/* ====================================================================== */

TEST(R_SP_1_close_kills_a_running_process_and_reaps_it)
{
    coro_loop L;
    coro_io io;
    coro_process p;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    CHECK_EQ(EXEC(&p, &L, CORO_PIPE, CORO_PIPE, CORO_PIPE, "sleep", "30"), 0);
    pid_t pid = coro_process_pid(&p);
    CHECK_EQ(proc_close(&L, &p), 0);
    CHECK(coro_process_exited(&p));
    CHECK_EQ(coro_process_returncode(&p), -SIGKILL);
    CHECK(p.in == NULL && p.out == NULL && p.err == NULL);
    CHECK(reaped(pid));
    CHECK(!proc_alive(pid));
    IO_END(&L);
}

TEST(R_SP_1_many_processes_at_once)
{
    enum { N = 16 };
    coro_loop L;
    coro_io io;
    static coro_process p[N];
    static coro_task t[N];
    static struct comm m[N];
    static char cmd[N][64]; /* communicate's input: alive until it ends */
    WATCHDOG();
    IO_BEGIN(&L, &io);
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            snprintf(cmd[i], sizeof cmd[i], "cat; exit %d", i);
            CHECK_EQ(coro_process_shell(&p[i], &L, cmd[i],
                                        &(coro_process_opts){CORO_PIPE, CORO_PIPE, CORO_DEVNULL,
                                                             NULL, NULL, 0}),
                     0);
            CHECK_EQ(coro_spawn(&L, &t[i], comm(&m[i], &p[i], cmd[i], strlen(cmd[i]), 1, 1)), 0);
        }
        for (int i = 0; i < N; i++) {
            WAIT_FOR(&L, coro_task_done(&t[i]));
            CHECK_EQ(coro_task_result(&t[i]), i);
            CHECK_EQ(coro_process_returncode(&p[i]), i);
            CHECK(reaped(coro_process_pid(&p[i])));
            CHECK_EQ(m[i].out.len, strlen(cmd[i]));
            CHECK(m[i].out.data && memcmp(m[i].out.data, cmd[i], m[i].out.len) == 0);
            comm_free(&m[i]);
            CHECK_EQ(proc_close(&L, &p[i]), 0);
        }
    }
    IO_END(&L);
}

/* ====================================================================== */
/* Failure modes                                                          */
/* ====================================================================== */

TEST(R_SP_1_exec_of_a_missing_program_is_ENOENT)
{
    coro_loop L;
    coro_io io;
    coro_process p;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    CHECK_EXEC_FAILS(&L, &p,
                     EXEC(&p, &L, CORO_INHERIT, CORO_INHERIT, CORO_INHERIT,
                          "coro-no-such-program-xyz"),
                     ENOENT);
    /* with pipes: they are undone */
    CHECK_EXEC_FAILS(&L, &p,
                     EXEC(&p, &L, CORO_PIPE, CORO_PIPE, CORO_PIPE, "coro-no-such-program-xyz", "a"),
                     ENOENT);
    CHECK_EXEC_FAILS(&L, &p,
                     EXEC(&p, &L, CORO_DEVNULL, CORO_PIPE, CORO_STDOUT, "/nonexistent/dir/prog"),
                     ENOENT);
    /* no child left behind */
    errno = 0;
    CHECK_EQ(waitpid(-1, NULL, WNOHANG), -1);
    CHECK_EQ(errno, ECHILD);
    IO_END(&L);
}

TEST(R_SP_1_exec_of_a_non_executable_file_fails)
{
    coro_loop L;
    coro_io io;
    coro_process p;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    /* a directory, and a file without the x bit */
    CHECK_EXEC_FAILS(&L, &p, EXEC(&p, &L, CORO_PIPE, CORO_PIPE, CORO_PIPE, "/"), EACCES);
    CHECK_EXEC_FAILS(&L, &p, EXEC(&p, &L, CORO_INHERIT, CORO_INHERIT, CORO_INHERIT, "/etc/passwd"),
                     EACCES);
    errno = 0;
    CHECK_EQ(waitpid(-1, NULL, WNOHANG), -1);
    CHECK_EQ(errno, ECHILD);
    IO_END(&L);
}

TEST(R_SP_1_bad_arguments_are_EINVAL)
{
    coro_loop L;
    coro_io io;
    coro_process p;
    char *empty[] = {NULL};
    WATCHDOG();
    IO_BEGIN(&L, &io);
    CHECK_EQ(coro_process_exec(&p, &L, NULL, NULL), CORO_EINVAL);
    CHECK_EQ(coro_process_exec(&p, &L, empty, NULL), CORO_EINVAL);
    CHECK_EQ(coro_process_shell(&p, &L, NULL, NULL), CORO_EINVAL);
    /* STDOUT is for stderr only */
    CHECK_EQ(EXEC(&p, &L, CORO_STDOUT, CORO_PIPE, CORO_PIPE, "true"), CORO_EINVAL);
    CHECK_EQ(EXEC(&p, &L, CORO_PIPE, CORO_STDOUT, CORO_PIPE, "true"), CORO_EINVAL);
    /* a mode that is none of the four */
    CHECK_EQ(EXEC(&p, &L, 7, CORO_PIPE, CORO_PIPE, "true"), CORO_EINVAL);
    CHECK_EQ(EXEC(&p, &L, CORO_PIPE, -1, CORO_PIPE, "true"), CORO_EINVAL);
    CHECK_EQ(EXEC(&p, &L, CORO_PIPE, CORO_PIPE, 4, "true"), CORO_EINVAL);
    CHECK(p.in == NULL && p.out == NULL && p.err == NULL);
    errno = 0;
    CHECK_EQ(waitpid(-1, NULL, WNOHANG), -1);
    CHECK_EQ(errno, ECHILD);
    IO_END(&L);
}

TEST(R_SP_1_stderr_STDOUT_with_inherited_stdout)
{
    coro_loop L;
    coro_io io;
    coro_process p;
    WATCHDOG();
    IO_BEGIN(&L, &io);
    CHECK_EQ(EXEC(&p, &L, CORO_DEVNULL, CORO_DEVNULL, CORO_STDOUT, "sh", "-c", "echo hidden >&2"),
             0);
    CHECK(p.in == NULL && p.out == NULL && p.err == NULL);
    CHECK_EQ(proc_wait(&L, &p), 0);
    CHECK_EQ(proc_close(&L, &p), 0);
    IO_END(&L);
}

/* Someone else reaped the child (SIGCHLD ignored: the kernel reaps it):
 * waitpid fails with ECHILD; the wait ends with asyncio's 255 instead of
 * watching forever. */
TEST(R_SP_1_child_reaped_elsewhere_gives_255)
{
    coro_loop L;
    coro_io io;
    coro_process p;
    struct sigaction ign, old;
    WATCHDOG();
    memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    sigaction(SIGCHLD, &ign, &old);
    IO_BEGIN(&L, &io);
    CHECK_EQ(EXEC(&p, &L, CORO_INHERIT, CORO_INHERIT, CORO_INHERIT, "sh", "-c", "exit 3"), 0);
    CHECK_EQ(proc_wait(&L, &p), 255);
    CHECK(coro_process_exited(&p));
    CHECK_EQ(coro_process_returncode(&p), 255);
    CHECK_EQ(proc_close(&L, &p), 0);
    /* gone before the library looked (pidfd_open finds no such pid) or
     * after (the pidfd fires, waitpid finds no child): 255 either way */
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(EXEC(&p, &L, CORO_INHERIT, CORO_INHERIT, CORO_INHERIT, "true"), 0);
        CHECK_EQ(proc_wait(&L, &p), 255);
        CHECK_EQ(proc_close(&L, &p), 0);
    }
    CHECK_EQ(EXEC(&p, &L, CORO_INHERIT, CORO_INHERIT, CORO_INHERIT, "sleep", "0.2"), 0);
    CHECK(!coro_process_exited(&p));
    CHECK_EQ(proc_wait(&L, &p), 255);
    CHECK_EQ(proc_close(&L, &p), 0);
    IO_END(&L);
    sigaction(SIGCHLD, &old, NULL);
}
