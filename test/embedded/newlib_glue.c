/* newlib_glue.c - the system calls newlib needs, for the test builds:
 * output to the semihosting console, a heap in PSRAM, exit through
 * semihosting. The rest are libnosys stubs (--specs=nosys.specs). */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "semihost.h"

int _write(int fd, const char *buf, int n);
void *_sbrk(ptrdiff_t incr);
void _exit(int status);
int _isatty(int fd);
int _fstat(int fd, struct stat *st);
void _init(void);
void _fini(void);

/* exit() runs __libc_fini_array, which calls _fini (no crti/crtn here). */
void _init(void) {}
void _fini(void) {}

int _write(int fd, const char *buf, int n)
{
    (void)fd;
    sh_write(buf, (size_t)n);
    return n;
}

extern char __heap_start[], __heap_end[];
static char *brk = __heap_start;

void *_sbrk(ptrdiff_t incr)
{
    if (incr > __heap_end - brk) {
        errno = ENOMEM;
        return (void *)-1;
    }
    char *old = brk;
    brk += incr;
    return old;
}

void _exit(int status)
{
    sh_exit(status);
}

int _isatty(int fd)
{
    return fd <= 2;
}

int _fstat(int fd, struct stat *st)
{
    (void)fd;
    st->st_mode = S_IFCHR;
    return 0;
}
