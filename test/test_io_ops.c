/* test_io_ops.c - every operation of coro_io.h's ops layer on the current
 * backend (CORO_BACKEND=uring|epoll): files (read/write at offsets and at
 * the position, readv/writev, fsync/fdatasync, openat/close, statx), sockets
 * over loopback (socket/connect/accept/send/recv/shutdown/poll), nop; the
 * errno of each failure; deadlines; hundreds of operations in flight; and
 * the same script on both backends giving the same results.
 *
 * Every outcome is made deterministic by construction: a peer writes before
 * the reader reads, or nothing is ever written; nothing depends on elapsed
 * time. Each test ends with IO_END (no report, no fd leaked). */
#include "test_io.h"

#include <netinet/tcp.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* ---------------------------------------------------------------------- */
/* helpers                                                                 */
/* ---------------------------------------------------------------------- */

/* A run that takes longer than this is a hang (a lost completion, a missed
 * wake-up): the test fails and the suite goes on. */
#define HANG_S 10

static int run_tasks(coro_loop *L)
{
    return io_run_tasks(L, HANG_S);
}

/* Spawns frame as a task and runs the loop until every task is done. */
static int run1(coro_loop *L, coro_task *t, coro_frame *frame)
{
    CHECK_EQ(coro_spawn(L, t, frame), 0);
    return run_tasks(L);
}

/* An fd number that is certainly not open. */
static int closed_fd(void)
{
    int fd = 1000;
    CHECK_EQ(fcntl(fd, F_GETFD), -1);
    return fd;
}

static int is_open(int fd)
{
    return fcntl(fd, F_GETFD) >= 0;
}

/* Bytes readable now on a non-blocking socket (drains it). */
static size_t drain_fd(int fd, char *into, size_t cap)
{
    size_t got = 0;
    char tmp[4096];
    for (;;) {
        ssize_t r = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
        if (r <= 0) break;
        if (into && got + (size_t)r <= cap) memcpy(into + got, tmp, (size_t)r);
        got += (size_t)r;
    }
    return got;
}

/* A loopback port where nothing listens (bound, then closed). */
static int dead_port(void)
{
    int port, l = io_listener(&port);
    close(l);
    return port;
}

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons((uint16_t)port);
    return a;
}

/* Makes the next close(2) of fd send a RST instead of a FIN. */
static void linger0(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
}

/* ---------------------------------------------------------------------- */
/* one operation in a task                                                 */
/* ---------------------------------------------------------------------- */

enum {
    K_NOP, K_READ, K_WRITE, K_FSYNC, K_CLOSE, K_SOCKET, K_CONNECT, K_ACCEPT,
    K_RECV, K_SEND, K_SHUTDOWN, K_POLL, K_STATX
};

/* Starts one operation of `kind`, optionally bounded by a timeout; records
 * its outcome (rc) and the outcome of one CORO_YIELD after it (next). */
struct op1 {
    coro_frame co;
    coro_io_op op;
    coro_timeout tm;
    int kind, fd, arg;
    void *buf;
    size_t n;
    int64_t off, timeout;
    const struct sockaddr *addr;
    socklen_t alen;
    struct statx stx;
    int rc, next, done;
};

static coro_waitable *op1_start(struct op1 *f, coro_loop *L)
{
    switch (f->kind) {
    case K_READ: return coro_read(&f->op, L, f->fd, f->buf, f->n, f->off);
    case K_WRITE: return coro_write(&f->op, L, f->fd, f->buf, f->n, f->off);
    case K_FSYNC: return coro_fsync(&f->op, L, f->fd, f->arg);
    case K_CLOSE: return coro_close(&f->op, L, f->fd);
    case K_SOCKET: return coro_socket(&f->op, L, AF_INET, SOCK_STREAM, 0);
    case K_CONNECT: return coro_connect(&f->op, L, f->fd, f->addr, f->alen);
    case K_ACCEPT: return coro_accept(&f->op, L, f->fd, NULL, NULL);
    case K_RECV: return coro_recv(&f->op, L, f->fd, f->buf, f->n, f->arg);
    case K_SEND: return coro_send(&f->op, L, f->fd, f->buf, f->n, f->arg);
    case K_SHUTDOWN: return coro_shutdown(&f->op, L, f->fd, f->arg);
    case K_POLL: return coro_poll(&f->op, L, f->fd, (unsigned)f->arg);
    case K_STATX: return coro_statx(&f->op, L, f->fd, "", AT_EMPTY_PATH, STATX_SIZE, &f->stx);
    default: return coro_nop(&f->op, L);
    }
}

static int op1_fn(coro_ctx *c)
{
    struct op1 *f = CORO_SELF(c, struct op1);
    CORO_BEGIN(c);
    if (f->timeout > 0)
        CORO_TIMEOUT(c, &f->tm, f->timeout, CORO_IO(c, op1_start(f, c->loop)));
    else
        CORO_IO(c, op1_start(f, c->loop));
    f->rc = c->rc;
    CORO_YIELD(c);
    f->next = c->rc;
    f->done = 1;
    CORO_END(c);
}

static coro_frame *op1(struct op1 *f, int kind, int fd)
{
    memset(f, 0, sizeof *f);
    f->kind = kind;
    f->fd = fd;
    f->off = -1;
    f->rc = f->next = 1; /* "never set" */
    return coro_frame_init(&f->co, op1_fn);
}

/* Runs one operation to its end in its own task; returns its outcome. */
static int run_op(coro_loop *L, struct op1 *f)
{
    coro_task t;
    run1(L, &t, &f->co);
    CHECK(f->done);
    return f->rc;
}

/* ---------------------------------------------------------------------- */
/* the backend                                                             */
/* ---------------------------------------------------------------------- */

TEST(io_init_picks_the_backend_and_coro_io_of_finds_it)
{
    coro_loop L;
    coro_io io;
    IO_BEGIN(&L, &io);
    CHECK(coro_io_of(&L) == &io);
    CHECK_EQ(coro_io_backend(&io), strcmp(io_backend(), "epoll") ? CORO_IO_URING : CORO_IO_EPOLL);
    CHECK_EQ(io.stats.completed, 0);
    CHECK_EQ(io.stats.cancels, 0);
    CHECK_STR(coro_io_strerror(-ENOENT), strerror(ENOENT));
    CHECK_STR(coro_io_strerror(CORO_ECANCELED), "cancelled");
    CHECK_STR(coro_io_strerror(CORO_ETIMEDOUT), "timed out");
    CHECK_STR(coro_io_strerror(5), "success");
    IO_END(&L);
}

TEST(nop_completes_with_zero_and_is_counted)
{
    coro_loop L;
    coro_io io;
    struct op1 f;
    IO_BEGIN(&L, &io);
    uint64_t before = io.stats.completed;
    op1(&f, K_NOP, -1);
    CHECK_EQ(run_op(&L, &f), 0);
    CHECK_EQ(f.next, 0);
    CHECK_EQ(io.stats.completed - before, 1);
    if (coro_io_backend(&io) == CORO_IO_URING) CHECK_EQ(io.stats.submitted, 1);
    IO_END(&L);
}

/* ---------------------------------------------------------------------- */
/* files                                                                   */
/* ---------------------------------------------------------------------- */

struct file_rw {
    coro_frame co;
    coro_io_op op;
    int fd;
    char buf[64];
    int r[12];
    char got[4][16];
};

/* pwrite/pread at offsets leave the position alone; reads past the end
 * return 0, reads across it what is there. */
static int file_offsets_fn(coro_ctx *c)
{
    struct file_rw *f = CORO_SELF(c, struct file_rw);
    CORO_BEGIN(c);
    CORO_IO(c, coro_write(&f->op, c->loop, f->fd, "hello", 5, 10)); /* a hole before */
    f->r[0] = c->rc;
    CORO_IO(c, coro_write(&f->op, c->loop, f->fd, "HE", 2, 10)); /* overwrite */
    f->r[1] = c->rc;
    memset(f->buf, '?', sizeof f->buf);
    CORO_IO(c, coro_read(&f->op, c->loop, f->fd, f->buf, 5, 10));
    f->r[2] = c->rc;
    memcpy(f->got[0], f->buf, 5);
    CORO_IO(c, coro_read(&f->op, c->loop, f->fd, f->buf, 64, 12)); /* across the end */
    f->r[3] = c->rc;
    memcpy(f->got[1], f->buf, 3);
    CORO_IO(c, coro_read(&f->op, c->loop, f->fd, f->buf, 8, 15)); /* at the end */
    f->r[4] = c->rc;
    CORO_IO(c, coro_read(&f->op, c->loop, f->fd, f->buf, 8, 4096)); /* past it */
    f->r[5] = c->rc;
    CORO_IO(c, coro_read(&f->op, c->loop, f->fd, f->buf, 4, 0)); /* the hole */
    f->r[6] = c->rc;
    memcpy(f->got[2], f->buf, 4);
    CORO_END(c);
}

TEST(file_write_and_read_at_offsets_leave_the_position_alone)
{
    coro_loop L;
    coro_io io;
    coro_task t;
    static struct file_rw f;
    IO_BEGIN(&L, &io);
    memset(&f, 0, sizeof f);
    f.fd = io_tmpfile(NULL, 0);
    CHECK_EQ(run1(&L, &t, coro_frame_init(&f.co, file_offsets_fn)), 0);
    CHECK_EQ(f.r[0], 5);
    CHECK_EQ(f.r[1], 2);
    CHECK_EQ(f.r[2], 5);
    CHECK(!memcmp(f.got[0], "HEllo", 5));
    CHECK_EQ(f.r[3], 3);
    CHECK(!memcmp(f.got[1], "llo", 3));
    CHECK_EQ(f.r[4], 0);
    CHECK_EQ(f.r[5], 0);
    CHECK_EQ(f.r[6], 4);
    CHECK(!memcmp(f.got[2], "\0\0\0\0", 4));
    CHECK_EQ(lseek(f.fd, 0, SEEK_CUR), 0); /* never moved */
    struct stat st;
    fstat(f.fd, &st);
    CHECK_EQ(st.st_size, 15);
    close(f.fd);
    IO_END(&L);
}

/* off -1: read and write at the file position, which advances. */
static int file_position_fn(coro_ctx *c)
{
    struct file_rw *f = CORO_SELF(c, struct file_rw);
    CORO_BEGIN(c);
    CORO_IO(c, coro_write(&f->op, c->loop, f->fd, "abc", 3, -1));
    f->r[0] = c->rc;
    CORO_IO(c, coro_write(&f->op, c->loop, f->fd, "defg", 4, -1));
    f->r[1] = c->rc;
    f->r[2] = (int)lseek(f->fd, 0, SEEK_CUR);
    lseek(f->fd, 1, SEEK_SET);
    CORO_IO(c, coro_read(&f->op, c->loop, f->fd, f->buf, 2, -1));
    f->r[3] = c->rc;
    memcpy(f->got[0], f->buf, 2);
    CORO_IO(c, coro_read(&f->op, c->loop, f->fd, f->buf, 10, -1));
    f->r[4] = c->rc;
    memcpy(f->got[1], f->buf, 4);
    CORO_IO(c, coro_read(&f->op, c->loop, f->fd, f->buf, 10, -1)); /* at the end */
    f->r[5] = c->rc;
    f->r[6] = (int)lseek(f->fd, 0, SEEK_CUR);
    CORO_END(c);
}

TEST(file_read_and_write_at_the_position_advance_it)
{
    coro_loop L;
    coro_io io;
    coro_task t;
    static struct file_rw f;
    IO_BEGIN(&L, &io);
    memset(&f, 0, sizeof f);
    f.fd = io_tmpfile(NULL, 0);
    CHECK_EQ(run1(&L, &t, coro_frame_init(&f.co, file_position_fn)), 0);
    CHECK_EQ(f.r[0], 3);
    CHECK_EQ(f.r[1], 4);
    CHECK_EQ(f.r[2], 7);
    CHECK_EQ(f.r[3], 2);
    CHECK(!memcmp(f.got[0], "bc", 2));
    CHECK_EQ(f.r[4], 4);
    CHECK(!memcmp(f.got[1], "defg", 4));
    CHECK_EQ(f.r[5], 0);
    CHECK_EQ(f.r[6], 7);
    close(f.fd);
    IO_END(&L);
}

struct file_vec {
    coro_frame co;
    coro_io_op op;
    int fd;
    struct iovec iov[3];
    char a[4], b[7], cc[16];
    int r[6];
    char got[3][16];
};

static int file_vec_fn(coro_ctx *c)
{
    struct file_vec *f = CORO_SELF(c, struct file_vec);
    CORO_BEGIN(c);
    f->iov[0].iov_base = (void *)"one-";
    f->iov[0].iov_len = 4;
    f->iov[1].iov_base = (void *)"two-";
    f->iov[1].iov_len = 4;
    f->iov[2].iov_base = (void *)"three";
    f->iov[2].iov_len = 5;
    CORO_IO(c, coro_writev(&f->op, c->loop, f->fd, f->iov, 3, 2)); /* at offset 2 */
    f->r[0] = c->rc;
    f->iov[0].iov_base = f->a;
    f->iov[0].iov_len = sizeof f->a;
    f->iov[1].iov_base = f->b;
    f->iov[1].iov_len = sizeof f->b;
    CORO_IO(c, coro_readv(&f->op, c->loop, f->fd, f->iov, 2, 2)); /* scatter */
    f->r[1] = c->rc;
    memcpy(f->got[0], f->a, 4);
    memcpy(f->got[1], f->b, 7);
    /* at the position: write "XY" + "Z", then read the whole file back */
    f->iov[0].iov_base = (void *)"XY";
    f->iov[0].iov_len = 2;
    f->iov[1].iov_base = (void *)"Z";
    f->iov[1].iov_len = 1;
    CORO_IO(c, coro_writev(&f->op, c->loop, f->fd, f->iov, 2, -1));
    f->r[2] = c->rc;
    f->r[3] = (int)lseek(f->fd, 0, SEEK_CUR);
    lseek(f->fd, 0, SEEK_SET);
    f->iov[0].iov_base = f->cc;
    f->iov[0].iov_len = sizeof f->cc;
    CORO_IO(c, coro_readv(&f->op, c->loop, f->fd, f->iov, 1, -1));
    f->r[4] = c->rc;
    memcpy(f->got[2], f->cc, 15);
    f->r[5] = (int)lseek(f->fd, 0, SEEK_CUR);
    CORO_END(c);
}

TEST(file_writev_gathers_and_readv_scatters_at_offsets_and_position)
{
    coro_loop L;
    coro_io io;
    coro_task t;
    static struct file_vec f;
    IO_BEGIN(&L, &io);
    memset(&f, 0, sizeof f);
    f.fd = io_tmpfile(NULL, 0);
    CHECK_EQ(run1(&L, &t, coro_frame_init(&f.co, file_vec_fn)), 0);
    CHECK_EQ(f.r[0], 13);
    CHECK_EQ(f.r[1], 11);
    CHECK(!memcmp(f.got[0], "one-", 4));
    CHECK(!memcmp(f.got[1], "two-thr", 7));
    CHECK_EQ(f.r[2], 3);
    CHECK_EQ(f.r[3], 3);
    CHECK_EQ(f.r[4], 15);
    CHECK(!memcmp(f.got[2], "XYZne-two-three", 15));
    CHECK_EQ(f.r[5], 15);
    close(f.fd);
    IO_END(&L);
}

TEST(fsync_and_fdatasync_succeed_on_a_file_and_fail_on_a_socket)
{
    coro_loop L;
    coro_io io;
    struct op1 f;
    int a, b;
    IO_BEGIN(&L, &io);
    int fd = io_tmpfile("data", 4);
    op1(&f, K_FSYNC, fd);
    CHECK_EQ(run_op(&L, &f), 0);
    op1(&f, K_FSYNC, fd);
    f.arg = 1; /* fdatasync */
    CHECK_EQ(run_op(&L, &f), 0);
    io_tcp_pair(&a, &b);
    op1(&f, K_FSYNC, a);
    CHECK_EQ(run_op(&L, &f), -EINVAL);
    close(fd);
    close(a);
    close(b);
    IO_END(&L);
}

struct file_open {
    coro_frame co;
    coro_io_op op;
    char path[64], name[32];
    int dirfd, fd, fd2;
    int r[10];
    char buf[16];
};

static int file_open_fn(coro_ctx *c)
{
    struct file_open *f = CORO_SELF(c, struct file_open);
    CORO_BEGIN(c);
    CORO_IO(c, coro_openat(&f->op, c->loop, AT_FDCWD, f->path, O_CREAT | O_EXCL | O_RDWR, 0600));
    f->fd = f->r[0] = c->rc;
    if (c->rc < 0) CORO_RETURN(c, 0);
    f->r[1] = fcntl(f->fd, F_GETFD) & FD_CLOEXEC; /* O_CLOEXEC added */
    CORO_IO(c, coro_write(&f->op, c->loop, f->fd, "xyz", 3, 0));
    f->r[2] = c->rc;
    CORO_IO(c, coro_close(&f->op, c->loop, f->fd));
    f->r[3] = c->rc;
    f->r[4] = is_open(f->fd);
    /* again, relative to a directory fd, read-only */
    CORO_IO(c, coro_openat(&f->op, c->loop, f->dirfd, f->name, O_RDONLY, 0));
    f->fd2 = f->r[5] = c->rc;
    if (c->rc < 0) CORO_RETURN(c, 0);
    CORO_IO(c, coro_read(&f->op, c->loop, f->fd2, f->buf, sizeof f->buf, 0));
    f->r[6] = c->rc;
    CORO_IO(c, coro_write(&f->op, c->loop, f->fd2, "no", 2, 0)); /* read-only */
    f->r[7] = c->rc;
    CORO_IO(c, coro_close(&f->op, c->loop, f->fd2));
    f->r[8] = c->rc;
    CORO_IO(c, coro_close(&f->op, c->loop, f->fd2)); /* twice */
    f->r[9] = c->rc;
    CORO_END(c);
}

TEST(openat_creates_with_cloexec_and_close_closes)
{
    coro_loop L;
    coro_io io;
    coro_task t;
    static struct file_open f;
    char dir[] = "/tmp/coro-io-ops-XXXXXX";
    IO_BEGIN(&L, &io);
    memset(&f, 0, sizeof f);
    CHECK(mkdtemp(dir) != NULL);
    snprintf(f.name, sizeof f.name, "file");
    snprintf(f.path, sizeof f.path, "%s/%s", dir, f.name);
    f.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    CHECK_EQ(run1(&L, &t, coro_frame_init(&f.co, file_open_fn)), 0);
    CHECK(f.r[0] >= 0);
    CHECK_EQ(f.r[1], FD_CLOEXEC);
    CHECK_EQ(f.r[2], 3);
    CHECK_EQ(f.r[3], 0);
    CHECK_EQ(f.r[4], 0);
    CHECK(f.r[5] >= 0);
    CHECK_EQ(f.r[6], 3);
    CHECK(!memcmp(f.buf, "xyz", 3));
    CHECK_EQ(f.r[7], -EBADF);
    CHECK_EQ(f.r[8], 0);
    CHECK_EQ(f.r[9], -EBADF);
    close(f.dirfd);
    unlink(f.path);
    rmdir(dir);
    IO_END(&L);
}

struct open_err {
    coro_frame co;
    coro_io_op op;
    const char *path;
    int r[4];
};

static int open_err_fn(coro_ctx *c)
{
    struct open_err *f = CORO_SELF(c, struct open_err);
    CORO_BEGIN(c);
    CORO_IO(c, coro_openat(&f->op, c->loop, AT_FDCWD, "/nonexistent-coro/x", O_RDONLY, 0));
    f->r[0] = c->rc;
    CORO_IO(c, coro_openat(&f->op, c->loop, AT_FDCWD, f->path, O_CREAT | O_EXCL | O_RDWR, 0600));
    f->r[1] = c->rc;
    CORO_IO(c, coro_openat(&f->op, c->loop, AT_FDCWD, f->path, O_RDONLY | O_DIRECTORY, 0));
    f->r[2] = c->rc;
    CORO_IO(c, coro_openat(&f->op, c->loop, 1000, "relative", O_RDONLY, 0)); /* bad dirfd */
    f->r[3] = c->rc;
    CORO_END(c);
}

TEST(openat_fails_with_enoent_eexist_enotdir_ebadf)
{
    coro_loop L;
    coro_io io;
    coro_task t;
    struct open_err f;
    char path[] = "/tmp/coro-io-ops-XXXXXX";
    IO_BEGIN(&L, &io);
    memset(&f, 0, sizeof f);
    int fd = mkstemp(path);
    close(fd);
    closed_fd();
    f.path = path;
    CHECK_EQ(run1(&L, &t, coro_frame_init(&f.co, open_err_fn)), 0);
    CHECK_EQ(f.r[0], -ENOENT);
    CHECK_EQ(f.r[1], -EEXIST);
    CHECK_EQ(f.r[2], -ENOTDIR);
    CHECK_EQ(f.r[3], -EBADF);
    unlink(path);
    IO_END(&L);
}

struct stx {
    coro_frame co;
    coro_io_op op;
    const char *path;
    int fd;
    struct statx a, b;
    int r[4];
};

static int stx_fn(coro_ctx *c)
{
    struct stx *f = CORO_SELF(c, struct stx);
    CORO_BEGIN(c);
    CORO_IO(c, coro_statx(&f->op, c->loop, AT_FDCWD, f->path, 0, STATX_SIZE | STATX_INO, &f->a));
    f->r[0] = c->rc;
    CORO_IO(c, coro_statx(&f->op, c->loop, f->fd, "", AT_EMPTY_PATH, STATX_SIZE | STATX_INO, &f->b));
    f->r[1] = c->rc;
    CORO_IO(c, coro_statx(&f->op, c->loop, AT_FDCWD, "/nonexistent-coro/x", 0, STATX_SIZE, &f->a));
    f->r[2] = c->rc;
    CORO_IO(c, coro_statx(&f->op, c->loop, 1000, "", AT_EMPTY_PATH, STATX_SIZE, &f->a));
    f->r[3] = c->rc;
    CORO_END(c);
}

TEST(statx_on_a_path_and_on_an_fd_with_empty_path)
{
    coro_loop L;
    coro_io io;
    coro_task t;
    static struct stx f;
    char path[] = "/tmp/coro-io-ops-XXXXXX";
    IO_BEGIN(&L, &io);
    memset(&f, 0, sizeof f);
    f.fd = mkstemp(path);
    CHECK_EQ(write(f.fd, "0123456789abc", 13), 13);
    f.path = path;
    closed_fd();
    CHECK_EQ(run1(&L, &t, coro_frame_init(&f.co, stx_fn)), 0);
    CHECK_EQ(f.r[0], 0);
    CHECK_EQ(f.r[1], 0);
    CHECK_EQ(f.a.stx_size, 13); /* the failing statx calls after it leave f.a alone */
    CHECK_EQ(f.b.stx_size, 13);
    CHECK_EQ(f.b.stx_ino, f.a.stx_ino);
    CHECK_EQ(f.r[2], -ENOENT);
    CHECK_EQ(f.r[3], -EBADF);
    close(f.fd);
    unlink(path);
    IO_END(&L);
}

/* ---------------------------------------------------------------------- */
/* sockets                                                                 */
/* ---------------------------------------------------------------------- */

/* One task walks a connection's whole life: socket, connect (the loopback
 * handshake completes without an accept), accept, send/recv both ways,
 * shutdown, end of stream, poll, close. */
struct conn_life {
    coro_frame co;
    coro_io_op op;
    int lfd, cfd, sfd;
    struct sockaddr_in addr, peer;
    socklen_t plen;
    char buf[32];
    int r[16];
};

static int conn_life_fn(coro_ctx *c)
{
    struct conn_life *f = CORO_SELF(c, struct conn_life);
    CORO_BEGIN(c);
    CORO_IO(c, coro_socket(&f->op, c->loop, AF_INET, SOCK_STREAM, 0));
    f->cfd = f->r[0] = c->rc;
    if (c->rc < 0) CORO_RETURN(c, 0);
    f->r[1] = (fcntl(f->cfd, F_GETFL) & O_NONBLOCK) != 0;
    f->r[2] = (fcntl(f->cfd, F_GETFD) & FD_CLOEXEC) != 0;
    CORO_IO(c, coro_connect(&f->op, c->loop, f->cfd, (struct sockaddr *)&f->addr, sizeof f->addr));
    f->r[3] = c->rc;
    f->plen = sizeof f->peer;
    CORO_IO(c, coro_accept(&f->op, c->loop, f->lfd, (struct sockaddr *)&f->peer, &f->plen));
    f->sfd = f->r[4] = c->rc;
    if (c->rc < 0) CORO_RETURN(c, 0);
    CORO_IO(c, coro_send(&f->op, c->loop, f->cfd, "ping", 4, 0));
    f->r[5] = c->rc;
    CORO_IO(c, coro_recv(&f->op, c->loop, f->sfd, f->buf, sizeof f->buf, 0));
    f->r[6] = c->rc;
    if (c->rc == 4 && memcmp(f->buf, "ping", 4)) f->r[6] = -1000;
    CORO_IO(c, coro_send(&f->op, c->loop, f->sfd, "pong!", 5, 0));
    f->r[7] = c->rc;
    CORO_IO(c, coro_poll(&f->op, c->loop, f->cfd, POLLIN)); /* data waits */
    f->r[8] = c->rc;
    CORO_IO(c, coro_recv(&f->op, c->loop, f->cfd, f->buf, sizeof f->buf, 0));
    f->r[9] = c->rc;
    if (c->rc == 5 && memcmp(f->buf, "pong!", 5)) f->r[9] = -1000;
    CORO_IO(c, coro_shutdown(&f->op, c->loop, f->cfd, SHUT_WR));
    f->r[10] = c->rc;
    CORO_IO(c, coro_recv(&f->op, c->loop, f->sfd, f->buf, sizeof f->buf, 0)); /* EOF */
    f->r[11] = c->rc;
    CORO_IO(c, coro_poll(&f->op, c->loop, f->sfd, POLLOUT | POLLIN)); /* EOF, writable */
    f->r[12] = c->rc;
    CORO_IO(c, coro_close(&f->op, c->loop, f->sfd));
    f->r[13] = c->rc;
    CORO_IO(c, coro_recv(&f->op, c->loop, f->cfd, f->buf, sizeof f->buf, 0)); /* EOF too */
    f->r[14] = c->rc;
    CORO_IO(c, coro_close(&f->op, c->loop, f->cfd));
    f->r[15] = c->rc;
    CORO_END(c);
}

TEST(socket_connect_accept_send_recv_shutdown_poll_close_over_loopback)
{
    coro_loop L;
    coro_io io;
    coro_task t;
    static struct conn_life f;
    int port;
    IO_BEGIN(&L, &io);
    memset(&f, 0, sizeof f);
    f.lfd = io_listener(&port);
    f.addr = loopback(port);
    CHECK_EQ(run1(&L, &t, coro_frame_init(&f.co, conn_life_fn)), 0);
    CHECK(f.r[0] >= 0);
    CHECK_EQ(f.r[1], 1);
    CHECK_EQ(f.r[2], 1);
    CHECK_EQ(f.r[3], 0);
    CHECK(f.r[4] >= 0);
    CHECK_EQ(f.plen, sizeof(struct sockaddr_in));
    CHECK_EQ(f.peer.sin_family, AF_INET);
    CHECK_EQ(f.peer.sin_addr.s_addr, htonl(INADDR_LOOPBACK));
    CHECK_EQ(f.r[5], 4);
    CHECK_EQ(f.r[6], 4);
    CHECK_EQ(f.r[7], 5);
    CHECK_EQ(f.r[8], POLLIN);
    CHECK_EQ(f.r[9], 5);
    CHECK_EQ(f.r[10], 0);
    CHECK_EQ(f.r[11], 0);
    CHECK_EQ(f.r[12] & (POLLIN | POLLOUT | POLLERR | POLLHUP), POLLIN | POLLOUT); /* +POLLRDHUP: see poll_reports_only_the_events_asked_for */
    CHECK_EQ(f.r[13], 0);
    CHECK_EQ(f.r[14], 0);
    CHECK_EQ(f.r[15], 0);
    CHECK(!is_open(f.sfd));
    CHECK(!is_open(f.cfd));
    close(f.lfd);
    IO_END(&L);
}

TEST(accepted_fd_is_nonblocking_and_cloexec_and_knows_its_peer)
{
    coro_loop L;
    coro_io io;
    struct op1 f;
    int port;
    IO_BEGIN(&L, &io);
    int l = io_listener(&port);
    struct sockaddr_in a = loopback(port), me, peer;
    socklen_t len = sizeof me;
    int cl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK_EQ(connect(cl, (struct sockaddr *)&a, sizeof a), 0); /* queued first */
    getsockname(cl, (struct sockaddr *)&me, &len);
    op1(&f, K_ACCEPT, l);
    int fd = run_op(&L, &f);
    CHECK(fd >= 0);
    if (fd >= 0) {
        CHECK((fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
        CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
        len = sizeof peer;
        CHECK_EQ(getpeername(fd, (struct sockaddr *)&peer, &len), 0);
        CHECK_EQ(peer.sin_port, me.sin_port);
        close(fd);
    }
    close(cl);
    close(l);
    IO_END(&L);
}

TEST(connect_to_a_closed_port_is_econnrefused)
{
    coro_loop L;
    coro_io io;
    struct op1 f;
    IO_BEGIN(&L, &io);
    struct sockaddr_in a = loopback(dead_port());
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    op1(&f, K_CONNECT, fd);
    f.addr = (struct sockaddr *)&a;
    f.alen = sizeof a;
    f.timeout = CORO_S(5); /* a lost wake-up must not hang the suite */
    CHECK_EQ(run_op(&L, &f), -ECONNREFUSED);
    close(fd);
    IO_END(&L);
}

TEST(recv_after_peer_close_returns_the_data_then_zero)
{
    coro_loop L;
    coro_io io;
    struct op1 f;
    char buf[16];
    int a, b;
    IO_BEGIN(&L, &io);
    io_tcp_pair(&a, &b);
    CHECK_EQ(write(b, "bye", 3), 3);
    close(b);
    op1(&f, K_RECV, a);
    f.buf = buf;
    f.n = sizeof buf;
    CHECK_EQ(run_op(&L, &f), 3);
    op1(&f, K_RECV, a);
    f.buf = buf;
    f.n = sizeof buf;
    CHECK_EQ(run_op(&L, &f), 0);
    op1(&f, K_RECV, a); /* and again: still 0 */
    f.buf = buf;
    f.n = sizeof buf;
    CHECK_EQ(run_op(&L, &f), 0);
    close(a);
    IO_END(&L);
}

/* The peer resets: the first send reports the reset, the next a broken
 * pipe; MSG_NOSIGNAL: no SIGPIPE kills the process. */
TEST(send_after_peer_reset_is_econnreset_then_epipe_without_sigpipe)
{
    coro_loop L;
    coro_io io;
    struct op1 f;
    int a, b;
    IO_BEGIN(&L, &io);
    io_tcp_pair(&a, &b);
    linger0(b);
    close(b);
    op1(&f, K_POLL, a); /* wait until the RST is there */
    f.arg = POLLIN;
    f.timeout = CORO_S(5);
    CHECK(run_op(&L, &f) > 0);
    op1(&f, K_SEND, a);
    f.buf = (void *)"x";
    f.n = 1;
    int rc = run_op(&L, &f);
    CHECK(rc == -ECONNRESET || rc == -EPIPE);
    op1(&f, K_SEND, a);
    f.buf = (void *)"x";
    f.n = 1;
    CHECK_EQ(run_op(&L, &f), -EPIPE);
    close(a);
    IO_END(&L);
}

TEST(recv_on_a_file_is_enotsock_and_accept_on_a_connected_socket_einval)
{
    coro_loop L;
    coro_io io;
    struct op1 f;
    char buf[4];
    int a, b;
    IO_BEGIN(&L, &io);
    int fd = io_tmpfile("abcd", 4);
    io_tcp_pair(&a, &b);
    op1(&f, K_RECV, fd);
    f.buf = buf;
    f.n = sizeof buf;
    CHECK_EQ(run_op(&L, &f), -ENOTSOCK);
    op1(&f, K_ACCEPT, a);
    f.timeout = CORO_S(5);
    CHECK_EQ(run_op(&L, &f), -EINVAL);
    close(fd);
    close(a);
    close(b);
    IO_END(&L);
}

/* Every operation on an fd number that is not open fails with -EBADF
 * (each bounded by a deadline, so that a wait that never ends shows as
 * CORO_ETIMEDOUT instead of hanging the suite). */
TEST(every_op_on_a_closed_fd_fails_with_ebadf)
{
    static const int kinds[] = {K_READ, K_WRITE, K_FSYNC, K_CONNECT, K_ACCEPT, K_RECV,
                                K_SEND, K_SHUTDOWN, K_POLL, K_STATX, K_CLOSE};
    static const char *names[] = {"read", "write", "fsync", "connect", "accept", "recv",
                                  "send", "shutdown", "poll", "statx", "close"};
    coro_loop L;
    coro_io io;
    struct op1 f;
    char buf[8] = "abcdefg";
    IO_BEGIN(&L, &io);
    struct sockaddr_in a = loopback(dead_port());
    int fd = closed_fd();
    for (unsigned i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        op1(&f, kinds[i], fd);
        f.buf = buf;
        f.n = sizeof buf;
        f.addr = (struct sockaddr *)&a;
        f.alen = sizeof a;
        f.arg = kinds[i] == K_POLL ? POLLIN : kinds[i] == K_SHUTDOWN ? SHUT_RDWR : 0;
        f.timeout = CORO_MS(500);
        int rc = run_op(&L, &f);
        /* Regression (fixed) (epoll): coro_poll on an fd that is not open ends
         * with rc = POLLNVAL (32), the revents of poll(2), where io_uring
         * gives -EBADF. Expected -EBADF on both backends. */
        if (rc != -EBADF) test__fail(__FILE__, __LINE__, "%s on a closed fd: %d, not -EBADF", names[i], rc);
    }
    IO_END(&L);
}

/* fd -1 (a failed open's result passed on) must fail like any bad fd. Run in
 * a child: a crash there (or a sanitizer's exit) is reported as a failure,
 * not as the end of the suite. The child writes the op's rc to `out`. */
static void minus_one_child(int kind, int out)
{
    coro_loop L;
    coro_io io;
    coro_task t;
    static struct op1 f;
    char buf[4] = "abc";
    if (coro_io_init(&io, &L, NULL) != 0) _exit(2);
    op1(&f, kind, -1);
    f.buf = buf;
    f.n = sizeof buf;
    f.arg = kind == K_POLL ? POLLIN : 0;
    f.timeout = CORO_MS(500);
    coro_spawn(&L, &t, &f.co);
    alarm(HANG_S);
    while (coro_loop_task_count(&L) && coro_loop_run_once(&L) == 0) {
    }
    coro_loop_close(&L);
    if (write(out, &f.rc, sizeof f.rc) != sizeof f.rc) _exit(2);
    close(out);
    _exit(0);
}

TEST(ops_on_fd_minus_one_fail_with_ebadf)
{
    static const int kinds[] = {K_READ, K_WRITE, K_RECV, K_SEND, K_POLL, K_ACCEPT, K_FSYNC};
    static const char *names[] = {"read", "write", "recv", "send", "poll", "accept", "fsync"};
    coro_loop L;
    coro_io io;
    IO_BEGIN(&L, &io);
    for (unsigned i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        int p[2], rc = 1;
        CHECK_EQ(pipe2(p, O_CLOEXEC), 0);
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            int devnull = open("/dev/null", O_WRONLY);
            if (devnull >= 0) dup2(devnull, 2); /* sanitizer chatter */
            close(p[0]);
            minus_one_child(kinds[i], p[1]);
        }
        close(p[1]);
        int got = (int)read(p[0], &rc, sizeof rc);
        close(p[0]);
        int st = 0;
        waitpid(pid, &st, 0);
        /* Regression (fixed) (epoll): an op on fd -1 has no fd slot, and
         * coro__epoll_submit uses the NULL slot anyway: write and send on
         * fd -1 die with SIGSEGV, every op that waits for readiness is a
         * null member access under UBSan, and poll on fd -1 ends with 0
         * (poll(2) ignores negative fds). Expected -EBADF, as io_uring gives. */
        if (got != sizeof rc)
            test__fail(__FILE__, __LINE__, "%s on fd -1: crashed (%s %d)", names[i],
                       WIFSIGNALED(st) ? "signal" : "exit", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
        else if (rc != -EBADF)
            test__fail(__FILE__, __LINE__, "%s on fd -1: rc %d, not -EBADF", names[i], rc);
    }
    IO_END(&L);
}

/* poll(POLLIN|POLLOUT) on a socket that is writable but has nothing to
 * read reports POLLOUT at once (as poll(2) does): on a fresh socket, and
 * after a recv on it found nothing (timed out) first. */
TEST(poll_for_in_or_out_reports_a_writable_socket)
{
    coro_loop L;
    coro_io io;
    struct op1 f;
    char buf[8];
    int a, b;
    IO_BEGIN(&L, &io);
    io_tcp_pair(&a, &b);
    op1(&f, K_POLL, a);
    f.arg = POLLIN | POLLOUT;
    f.timeout = CORO_S(2);
    CHECK_EQ(run_op(&L, &f), POLLOUT);
    op1(&f, K_RECV, a);
    f.buf = buf;
    f.n = sizeof buf;
    f.timeout = CORO_MS(10);
    CHECK_EQ(run_op(&L, &f), CORO_ETIMEDOUT);
    op1(&f, K_POLL, a);
    f.arg = POLLIN | POLLOUT;
    f.timeout = CORO_MS(500);
    /* Regression (fixed) (epoll): once a recv on the socket saw EAGAIN, a poll for
     * POLLIN|POLLOUT waits in the readers' queue for a read edge only and
     * never sees that the socket is writable: CORO_ETIMEDOUT, not POLLOUT. */
    CHECK_EQ(run_op(&L, &f), POLLOUT);
    close(a);
    close(b);
    IO_END(&L);
}

/* poll's result holds the events asked for plus POLLERR/POLLHUP/POLLNVAL,
 * as poll(2)'s revents, on both backends. */
TEST(poll_reports_only_the_events_asked_for)
{
    coro_loop L;
    coro_io io;
    struct op1 f;
    int a, b;
    IO_BEGIN(&L, &io);
    io_tcp_pair(&a, &b);
    shutdown(b, SHUT_WR); /* a sees its peer's FIN: POLLRDHUP is true */
    op1(&f, K_POLL, a);
    f.arg = POLLOUT;
    f.timeout = CORO_S(2);
    /* Regression (fixed) (uring): IORING_OP_POLL_ADD always reports POLLRDHUP
     * (IO_POLL_UNMASK): POLLOUT|POLLRDHUP (0x2004) where epoll and poll(2)
     * give POLLOUT (4). The result should be masked to what was asked. */
    CHECK_EQ(run_op(&L, &f), POLLOUT);
    close(a);
    close(b);
    IO_END(&L);
}

TEST(poll_reports_hangup_and_input_after_peer_close)
{
    coro_loop L;
    coro_io io;
    struct op1 f;
    int a, b;
    IO_BEGIN(&L, &io);
    io_tcp_pair(&a, &b);
    close(b);
    op1(&f, K_POLL, a);
    f.arg = POLLIN | POLLRDHUP;
    f.timeout = CORO_S(5);
    int rc = run_op(&L, &f);
    CHECK((rc & POLLIN) != 0);
    CHECK((rc & POLLRDHUP) != 0);
    close(a);
    IO_END(&L);
}

/* ---------------------------------------------------------------------- */
/* deadlines                                                               */
/* ---------------------------------------------------------------------- */

TEST(recv_with_a_deadline_times_out_and_later_data_is_still_readable)
{
    coro_loop L;
    coro_io io;
    struct op1 f;
    char buf[16];
    int a, b;
    IO_BEGIN(&L, &io);
    io_tcp_pair(&a, &b);
    op1(&f, K_RECV, a);
    f.buf = buf;
    f.n = sizeof buf;
    f.timeout = CORO_MS(20); /* nothing is ever written before it */
    CHECK_EQ(run_op(&L, &f), CORO_ETIMEDOUT);
    CHECK_EQ(f.next, 0); /* the deadline's cancellation was its own */
    if (coro_io_backend(&io) == CORO_IO_URING) CHECK_EQ(io.stats.cancels, 1);
    CHECK_EQ(write(b, "late", 4), 4);
    op1(&f, K_RECV, a);
    f.buf = buf;
    f.n = sizeof buf;
    f.timeout = CORO_S(5);
    CHECK_EQ(run_op(&L, &f), 4);
    CHECK(!memcmp(buf, "late", 4));
    close(a);
    close(b);
    IO_END(&L);
}

/* A deadline already past while the data is already there: the recv's
 * result wins (nothing received is lost) and no stray cancellation is left
 * for the task's next await. */
struct past_deadline {
    coro_frame co;
    coro_io_op op;
    coro_timeout tm;
    int fd;
    char buf[16];
    int rc, next;
};

static int past_deadline_fn(coro_ctx *c)
{
    struct past_deadline *f = CORO_SELF(c, struct past_deadline);
    CORO_BEGIN(c);
    CORO_DEADLINE(c, &f->tm, coro_loop_time(c->loop),
                  CORO_IO(c, coro_recv(&f->op, c->loop, f->fd, f->buf, sizeof f->buf, 0)));
    f->rc = c->rc;
    CORO_YIELD(c);
    f->next = c->rc;
    CORO_END(c);
}

TEST(past_deadline_with_data_there_delivers_the_data_and_no_stray_cancel)
{
    coro_loop L;
    coro_io io;
    coro_task t;
    struct past_deadline f;
    int a, b;
    IO_BEGIN(&L, &io);
    io_tcp_pair(&a, &b);
    for (int i = 0; i < 20; i++) {
        memset(&f, 0, sizeof f);
        f.fd = a;
        CHECK_EQ(write(b, "abc", 3), 3);
        CHECK_EQ(run1(&L, &t, coro_frame_init(&f.co, past_deadline_fn)), 0);
        size_t left = drain_fd(a, NULL, 0);
        /* either the recv got the 3 bytes, or it was cancelled and they wait */
        CHECK((f.rc == 3 && left == 0) || (f.rc == CORO_ETIMEDOUT && left == 3));
        CHECK_EQ(f.next, 0);
    }
    close(a);
    close(b);
    IO_END(&L);
}

/* ---------------------------------------------------------------------- */
/* many operations in flight                                               */
/* ---------------------------------------------------------------------- */

#define NPAIRS 256

static int pa[NPAIRS], pb[NPAIRS];
static struct op1 readers[NPAIRS];
static coro_task rtasks[NPAIRS];
static char rbufs[NPAIRS][32];

/* Writes message i to every pair, last first, once every reader waits. */
struct writer {
    coro_frame co;
    int n;
};

static int writer_fn(coro_ctx *c)
{
    struct writer *w = CORO_SELF(c, struct writer);
    CORO_BEGIN(c);
    CORO_YIELD(c); /* the readers' recvs are submitted */
    CORO_YIELD(c);
    for (int i = w->n - 1; i >= 0; i--) {
        char msg[32];
        int len = snprintf(msg, sizeof msg, "message-%d", i);
        if (write(pb[i], msg, (size_t)len) != len) CORO_RETURN(c, CORO_EUSER(1));
    }
    CORO_END(c);
}

TEST(hundreds_of_concurrent_recvs_on_hundreds_of_pairs_all_complete)
{
    coro_loop L;
    coro_io io;
    coro_task wt;
    struct writer w;
    IO_BEGIN(&L, &io);
    for (int i = 0; i < NPAIRS; i++) io_tcp_pair(&pa[i], &pb[i]);
    uint64_t before = io.stats.completed;
    for (int i = 0; i < NPAIRS; i++) {
        op1(&readers[i], K_RECV, pa[i]);
        readers[i].buf = rbufs[i];
        readers[i].n = sizeof rbufs[i];
        readers[i].timeout = CORO_S(8);
        coro_spawn(&L, &rtasks[i], &readers[i].co);
    }
    w.n = NPAIRS;
    CHECK_EQ(run1(&L, &wt, coro_frame_init(&w.co, writer_fn)), 0);
    CHECK_EQ(coro_task_result(&wt), 0);
    int ok = 0;
    for (int i = 0; i < NPAIRS; i++) {
        char msg[32];
        int len = snprintf(msg, sizeof msg, "message-%d", i);
        if (readers[i].rc == len && !memcmp(rbufs[i], msg, (size_t)len))
            ok++;
        else if (ok >= 0)
            test__fail(__FILE__, __LINE__, "reader %d: rc %d", i, readers[i].rc), ok = -100000;
    }
    CHECK_EQ(ok, NPAIRS);
    CHECK(io.stats.completed - before >= NPAIRS);
    for (int i = 0; i < NPAIRS; i++) {
        close(pa[i]);
        close(pb[i]);
    }
    IO_END(&L);
}

/* Many tasks each run a burst of different operations at once. */
struct mixed {
    coro_frame co;
    coro_io_op op;
    int i, fd, file, r[4];
    char buf[8];
};

static int mixed_fn(coro_ctx *c)
{
    struct mixed *f = CORO_SELF(c, struct mixed);
    CORO_BEGIN(c);
    CORO_IO(c, coro_nop(&f->op, c->loop));
    f->r[0] = c->rc;
    CORO_IO(c, coro_poll(&f->op, c->loop, f->fd, POLLOUT));
    f->r[1] = c->rc;
    CORO_IO(c, coro_read(&f->op, c->loop, f->file, f->buf, 4, f->i % 60));
    f->r[2] = c->rc;
    CORO_IO(c, coro_send(&f->op, c->loop, f->fd, f->buf, 4, 0));
    f->r[3] = c->rc;
    CORO_END(c);
}

TEST(hundreds_of_mixed_operations_in_flight_all_complete)
{
    enum { N = 200 };
    static struct mixed m[N];
    static coro_task t[N];
    static char content[64];
    coro_loop L;
    coro_io io;
    int a, b;
    IO_BEGIN(&L, &io);
    for (int i = 0; i < 64; i++) content[i] = (char)('A' + i % 26);
    int file = io_tmpfile(content, 64);
    io_tcp_pair(&a, &b);
    for (int i = 0; i < N; i++) {
        memset(&m[i], 0, sizeof m[i]);
        m[i].i = i;
        m[i].fd = a;
        m[i].file = file;
        coro_spawn(&L, &t[i], coro_frame_init(&m[i].co, mixed_fn));
    }
    CHECK_EQ(run_tasks(&L), 0);
    size_t got = drain_fd(b, NULL, 0);
    int bad = 0;
    for (int i = 0; i < N; i++)
        if (m[i].r[0] != 0 || m[i].r[1] != POLLOUT || m[i].r[2] != 4 || m[i].r[3] != 4 ||
            memcmp(m[i].buf, content + i % 60, 4))
            bad++;
    CHECK_EQ(bad, 0);
    CHECK_EQ(got, 4 * N);
    close(file);
    close(a);
    close(b);
    IO_END(&L);
}

/* ---------------------------------------------------------------------- */
/* the same script on both backends                                        */
/* ---------------------------------------------------------------------- */

struct script {
    coro_frame co;
    coro_io_op op;
    int file, a, b, lfd, rst, dead, accepted;
    struct sockaddr_in refused;
    struct iovec iov[2];
    struct statx stx;
    char buf[32], x[4], y[4];
};

#define T(what) TRACE("%s=%d", what, c->rc)

static int script_fn(coro_ctx *c)
{
    struct script *f = CORO_SELF(c, struct script);
    CORO_BEGIN(c);
    CORO_IO(c, coro_nop(&f->op, c->loop));
    T("nop");
    CORO_IO(c, coro_write(&f->op, c->loop, f->file, "0123456789", 10, 0));
    T("write");
    CORO_IO(c, coro_read(&f->op, c->loop, f->file, f->buf, 32, 4));
    T("read");
    CORO_IO(c, coro_read(&f->op, c->loop, f->file, f->buf, 32, 99));
    T("read-eof");
    f->iov[0].iov_base = f->x;
    f->iov[0].iov_len = 4;
    f->iov[1].iov_base = f->y;
    f->iov[1].iov_len = 4;
    CORO_IO(c, coro_readv(&f->op, c->loop, f->file, f->iov, 2, 1));
    T("readv");
    CORO_IO(c, coro_writev(&f->op, c->loop, f->file, f->iov, 2, 20));
    T("writev");
    CORO_IO(c, coro_fsync(&f->op, c->loop, f->file, 0));
    T("fsync");
    CORO_IO(c, coro_statx(&f->op, c->loop, f->file, "", AT_EMPTY_PATH, STATX_SIZE, &f->stx));
    TRACE("statx=%d/%d", c->rc, (int)f->stx.stx_size);
    CORO_IO(c, coro_statx(&f->op, c->loop, AT_FDCWD, "/nonexistent-coro", 0, STATX_SIZE, &f->stx));
    T("statx-missing");
    CORO_IO(c, coro_openat(&f->op, c->loop, AT_FDCWD, "/nonexistent-coro", O_RDONLY, 0));
    T("open-missing");
    CORO_IO(c, coro_read(&f->op, c->loop, 1000, f->buf, 4, 0));
    T("read-badf");
    CORO_IO(c, coro_recv(&f->op, c->loop, f->file, f->buf, 4, 0));
    T("recv-file");
    CORO_IO(c, coro_poll(&f->op, c->loop, f->a, POLLOUT));
    T("poll-out");
    CORO_IO(c, coro_send(&f->op, c->loop, f->b, "hey", 3, 0));
    T("send");
    CORO_IO(c, coro_poll(&f->op, c->loop, f->a, POLLIN));
    T("poll-in");
    CORO_IO(c, coro_recv(&f->op, c->loop, f->a, f->buf, 2, MSG_PEEK));
    T("recv-peek");
    CORO_IO(c, coro_recv(&f->op, c->loop, f->a, f->buf, 32, 0));
    T("recv");
    CORO_IO(c, coro_shutdown(&f->op, c->loop, f->b, SHUT_WR));
    T("shutdown");
    CORO_IO(c, coro_recv(&f->op, c->loop, f->a, f->buf, 32, 0));
    T("recv-eof");
    CORO_IO(c, coro_shutdown(&f->op, c->loop, f->file, SHUT_WR));
    T("shutdown-file");
    CORO_IO(c, coro_socket(&f->op, c->loop, AF_INET, SOCK_STREAM, 0));
    f->dead = c->rc;
    TRACE("socket=%s", c->rc >= 0 ? "fd" : "err");
    CORO_IO(c, coro_connect(&f->op, c->loop, f->dead, (struct sockaddr *)&f->refused, sizeof f->refused));
    T("connect-refused");
    CORO_IO(c, coro_close(&f->op, c->loop, f->dead));
    T("close");
    CORO_IO(c, coro_accept(&f->op, c->loop, f->lfd, NULL, NULL));
    f->accepted = c->rc;
    TRACE("accept=%s", c->rc >= 0 ? "fd" : "err");
    CORO_IO(c, coro_close(&f->op, c->loop, f->accepted));
    T("close-accepted");
    CORO_IO(c, coro_poll(&f->op, c->loop, f->rst, POLLIN));
    TRACE("poll-rst=%s", c->rc > 0 ? "ready" : "err");
    CORO_IO(c, coro_send(&f->op, c->loop, f->rst, "x", 1, 0));
    T("send-reset");
    CORO_IO(c, coro_send(&f->op, c->loop, f->rst, "x", 1, 0));
    T("send-reset-again");
    CORO_IO(c, coro_close(&f->op, c->loop, 1000));
    T("close-badf");
    CORO_END(c);
}

static void run_script(int backend, char *out, size_t cap)
{
    coro_loop L;
    coro_io io;
    coro_io_config cfg;
    coro_task t;
    static struct script f;
    int port, x, y;
    memset(&cfg, 0, sizeof cfg);
    cfg.backend = backend;
    if (coro_io_init(&io, &L, &cfg) != 0) {
        snprintf(out, cap, "init failed");
        return;
    }
    coro_loop_set_report(&L, test__report, NULL);
    memset(&f, 0, sizeof f);
    f.file = io_tmpfile(NULL, 0);
    io_tcp_pair(&f.a, &f.b);
    f.lfd = io_listener(&port);
    struct sockaddr_in sa = loopback(port);
    int cl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    connect(cl, (struct sockaddr *)&sa, sizeof sa);
    f.refused = loopback(dead_port());
    io_tcp_pair(&x, &y);
    f.rst = x;
    linger0(y);
    close(y);
    test__trace[0] = 0;
    run1(&L, &t, coro_frame_init(&f.co, script_fn));
    snprintf(out, cap, "%s", test__trace);
    test__trace[0] = 0;
    coro_loop_close(&L);
    close(f.file);
    close(f.a);
    close(f.b);
    close(f.lfd);
    close(cl);
    close(x);
}

TEST(the_same_script_gives_the_same_results_on_uring_and_epoll)
{
    static char on_uring[2048], on_epoll[2048];
    coro_loop L;
    coro_io io;
    IO_BEGIN(&L, &io);
    closed_fd();
    run_script(CORO_IO_URING, on_uring, sizeof on_uring);
    run_script(CORO_IO_EPOLL, on_epoll, sizeof on_epoll);
    CHECK_STR(on_uring, on_epoll);
    CHECK_STR(on_uring,
              "nop=0 write=10 read=6 read-eof=0 readv=8 writev=8 fsync=0 statx=0/28 "
              "statx-missing=-2 open-missing=-2 read-badf=-9 recv-file=-88 poll-out=4 "
              "send=3 poll-in=1 recv-peek=2 recv=3 shutdown=0 recv-eof=0 "
              "shutdown-file=-88 socket=fd connect-refused=-111 close=0 accept=fd "
              "close-accepted=0 poll-rst=ready send-reset=-104 send-reset-again=-32 "
              "close-badf=-9");
    IO_END(&L);
}

/* ---------------------------------------------------------------------- */
/* last: a failure here under ASan ends the run                            */
/* ---------------------------------------------------------------------- */

/* The accepted fd's number is beyond the loop's fd table (which then
 * grows while the listener's slot is in use): the fd is delivered and
 * usable, and nothing reads the table's old memory (ASan, valgrind). */
TEST(accept_of_an_fd_beyond_the_fd_table)
{
    coro_loop L;
    coro_io io;
    struct op1 f;
    int port, fill[200], nfill = 0;
    IO_BEGIN(&L, &io);
    int l = io_listener(&port);
    struct sockaddr_in a = loopback(port);
    int cl = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK_EQ(connect(cl, (struct sockaddr *)&a, sizeof a), 0);
    CHECK(l < 64);
    while (nfill < 200 && (fill[nfill] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0 &&
           fill[nfill++] < 100) {
    }
    op1(&f, K_ACCEPT, l);
    /* Regression (fixed) (both, ASan/valgrind): coro__io_finish keeps the
     * listener's slot pointer, then calls coro__fdslot_of(new fd), which
     * reallocs the table, then reads s->closing from the freed table
     * (heap-use-after-free at "if (s && s->closing ...)"). */
    int fd = run_op(&L, &f);
    CHECK(fd > 100);
    if (fd >= 0) {
        CHECK_EQ(send(cl, "hi", 2, 0), 2);
        char buf[4];
        op1(&f, K_RECV, fd);
        f.buf = buf;
        f.n = sizeof buf;
        f.timeout = CORO_S(5);
        CHECK_EQ(run_op(&L, &f), 2);
        close(fd);
    }
    for (int i = 0; i < nfill; i++) close(fill[i]);
    close(cl);
    close(l);
    IO_END(&L);
}
