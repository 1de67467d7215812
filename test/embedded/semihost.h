/* semihost.h - ARM semihosting (BKPT 0xAB) for output and the exit status
 * under QEMU (-semihosting-config enable=on). On a board without a debugger
 * attached these calls fault: replace them with a UART there. */
#ifndef SEMIHOST_H
#define SEMIHOST_H

#include <stddef.h>
#include <stdint.h>

#define SH_SYS_WRITE0 0x04
#define SH_SYS_EXIT_EXTENDED 0x20
#define SH_ADP_STOPPED_APPLICATION_EXIT 0x20026

static inline uintptr_t sh_call(uintptr_t op, const void *arg)
{
    register uintptr_t r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

/* Writes n bytes to the host's console (stdout of qemu). */
static inline void sh_write(const char *s, size_t n)
{
    char buf[129];
    while (n) {
        size_t k = n < 128 ? n : 128;
        for (size_t i = 0; i < k; i++) buf[i] = s[i] ? s[i] : ' ';
        buf[k] = 0;
        sh_call(SH_SYS_WRITE0, buf);
        s += k;
        n -= k;
    }
}

static inline void sh_puts(const char *s)
{
    sh_call(SH_SYS_WRITE0, s);
}

/* Decimal (base 10) or hex (base 16) without a libc. */
static inline void sh_putu(uint32_t v, unsigned base)
{
    char buf[12];
    char *p = buf + sizeof buf;
    *--p = 0;
    do {
        *--p = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    sh_puts(p);
}

static inline void sh_puti(int32_t v)
{
    if (v < 0) {
        sh_puts("-");
        sh_putu((uint32_t)0 - (uint32_t)v, 10);
    } else {
        sh_putu((uint32_t)v, 10);
    }
}

/* Ends the emulation with this exit status. */
__attribute__((noreturn)) static inline void sh_exit(int code)
{
    uintptr_t block[2] = {SH_ADP_STOPPED_APPLICATION_EXIT, (uintptr_t)code};
    for (;;) sh_call(SH_SYS_EXIT_EXTENDED, block);
}

#endif
