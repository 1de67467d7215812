/* test.h - the test harness: self-registering tests, checks, an event trace
 * and death tests. Each test binary prints one line per failure and ends
 * with "N passed, N failed"; test/run.sh adds the binaries up.
 *
 *   TEST(name) { ... CHECK(x); CHECK_EQ(a, b); TRACE("a%d", 1); CHECK_TRACE("a1"); }
 *   CHECK_TRAPS(stmt)    the statement must kill the process with a signal
 *   SKIP("why"); return; the test counts as skipped
 *   test_loop(&L)        a loop on a virtual clock starting at 0; reports
 *                        are captured (test_reports(), test_report_kind())
 *
 * TEST_EMBEDDED (bare-metal builds, test/embedded): no fork, so death tests
 * are skipped (a test with a skipped check and no failure counts as
 * skipped; the last line then adds ", N skipped"); tests that need an OS
 * (POSIX clock, threads) are left out with #ifndef TEST_EMBEDDED.
 */
#ifndef TEST_H
#define TEST_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifndef TEST_EMBEDDED
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#endif
#if defined(__GNUC__) && __SIZEOF_POINTER__ < __SIZEOF_LONG_LONG__
/* CHECK_EQ compares pointers as long long too; on 32-bit targets both
 * sides are widened the same way, so equality is unaffected. */
#pragma GCC diagnostic ignored "-Wpointer-to-int-cast"
#endif

#include "coro_loop.h"

typedef void test_fn(void);
static struct {
    const char *name;
    test_fn *fn;
} test__list[512];
static int test__n, test__failed_checks, test__skipped_checks;
static const char *test__current;

__attribute__((unused)) static void test__register(const char *name, test_fn *fn)
{
    test__list[test__n].name = name;
    test__list[test__n].fn = fn;
    test__n++;
}

#define TEST(name)                                                             \
    static void name(void);                                                    \
    __attribute__((constructor)) static void name##__reg(void)                 \
    {                                                                          \
        test__register(#name, name);                                           \
    }                                                                          \
    static void name(void)

__attribute__((unused)) static void test__fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    fprintf(stdout, "FAIL %s (%s:%d): ", test__current, file, line);
    va_start(ap, fmt);
    vfprintf(stdout, fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    test__failed_checks++;
}

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) test__fail(__FILE__, __LINE__, "%s", #cond);              \
    } while (0)

#define CHECK_EQ(a, b)                                                         \
    do {                                                                       \
        long long test__a = (long long)(a), test__b = (long long)(b);          \
        if (test__a != test__b)                                                \
            test__fail(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b,   \
                       test__a, test__b);                                      \
    } while (0)

#define CHECK_STR(a, b)                                                        \
    do {                                                                       \
        const char *test__a = (a), *test__b = (b);                             \
        if (strcmp(test__a, test__b) != 0)                                     \
            test__fail(__FILE__, __LINE__, "%s: \"%s\" != \"%s\"", #a,         \
                       test__a, test__b);                                      \
    } while (0)

/* Counts the test as skipped (unless a check failed) and says why; the
 * caller returns. */
#define SKIP(why)                                                              \
    do {                                                                       \
        fprintf(stdout, "skip %s: %s\n", test__current, why);                  \
        test__skipped_checks++;                                                \
    } while (0)

/* ---- event trace: TRACE appends a word, CHECK_TRACE compares and clears */
static char test__trace[8192];

__attribute__((unused)) static void TRACE(const char *fmt, ...)
{
    size_t n = strlen(test__trace);
    va_list ap;
    if (n && n < sizeof test__trace - 1) test__trace[n++] = ' ';
    va_start(ap, fmt);
    vsnprintf(test__trace + n, sizeof test__trace - n, fmt, ap);
    va_end(ap);
}

#define CHECK_TRACE(expected)                                                  \
    do {                                                                       \
        CHECK_STR(test__trace, expected);                                      \
        test__trace[0] = 0;                                                    \
    } while (0)

/* ---- death tests */
#ifdef TEST_EMBEDDED
/* No fork: fn is not run, the check is counted as skipped, and it is
 * reported as "did not die" (what CHECK(!test__dies(fn)) expects). */
__attribute__((unused)) static int test__dies(void (*fn)(void))
{
    (void)fn;
    test__skipped_checks++;
    return 0;
}

#define CHECK_TRAPS(fn) ((void)test__dies(fn))
#else
__attribute__((unused)) static int test__dies(void (*fn)(void))
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        int devnull = open("/dev/null", 1);
        if (devnull >= 0) dup2(devnull, 2); /* keep sanitizer chatter out */
        fn();
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) != 0);
}

#define CHECK_TRAPS(fn)                                                        \
    do {                                                                       \
        if (!test__dies(fn))                                                   \
            test__fail(__FILE__, __LINE__, "%s did not trap", #fn);            \
    } while (0)
#endif

/* ---- loops on a virtual clock, with captured reports */
static coro_virtual test__clock;
static int test__reports[64], test__nreports;

__attribute__((unused)) static void test__report(coro_loop *L, const coro_report *r, void *arg)
{
    (void)L;
    (void)arg;
    if (test__nreports < 64) test__reports[test__nreports] = r->kind;
    test__nreports++;
}

__attribute__((unused)) static void test_loop(coro_loop *L)
{
    coro_loop_init(L, coro_virtual_init(&test__clock, 0));
    coro_loop_set_report(L, test__report, NULL);
    test__nreports = 0;
}

/* Virtual time in whole milliseconds. */
__attribute__((unused)) static long test_ms(coro_loop *L)
{
    return (long)(coro_loop_time(L) / CORO_MS(1));
}

__attribute__((unused)) static int test_reports(void)
{
    return test__nreports;
}

__attribute__((unused)) static int test_report_kind(int i)
{
    return i < test__nreports ? test__reports[i] : 0;
}

#ifdef TEST_EMBEDDED
int main(void)
{
    int argc = 0;
    char **argv = NULL;
#else
int main(int argc, char **argv)
{
#endif
    int passed = 0, failed = 0, skipped = 0;
    for (int i = 0; i < test__n; i++) {
        if (argc > 1 && !strstr(test__list[i].name, argv[1])) continue;
        int before = test__failed_checks, skips = test__skipped_checks;
        test__current = test__list[i].name;
        test__trace[0] = 0;
        test__list[i].fn();
        if (test__failed_checks != before)
            failed++;
        else if (test__skipped_checks != skips)
            skipped++;
        else
            passed++;
    }
    if (skipped)
        printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    else
        printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}

#endif
