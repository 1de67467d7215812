/* startup.c - reset and fault handlers and the vector table for the
 * Cortex-M builds (test/embedded/mps2.ld): copies .data, zeroes .bss, runs
 * the constructors (the tests register themselves with them), calls main
 * and ends the emulation with its status. A fault (CORO_TRAP's udf, a bad
 * pointer) prints where it happened and exits with status 3.
 *
 * -DSTARTUP_NEWLIB: main's status goes through newlib's exit(), which
 * flushes stdio (test builds); otherwise straight to semihosting. */
#include <stdint.h>

#include "semihost.h"

extern uint32_t __data_start[], __data_end[], __data_load[], __bss_start[], __bss_end[];
extern uint32_t __stack_top[];
extern void (*const __init_array_start[])(void);
extern void (*const __init_array_end[])(void);
int main(void);
#ifdef STARTUP_NEWLIB
void exit(int status) __attribute__((noreturn));
#endif

void Reset_Handler(void);
void Fault_Handler(void);
void Default_Handler(void);
void SysTick_Handler(void);

__attribute__((noreturn)) void Reset_Handler(void)
{
    uint32_t *s = __data_load, *d = __data_start;
    while (d < __data_end) *d++ = *s++;
    for (d = __bss_start; d < __bss_end;) *d++ = 0;
    for (void (*const *f)(void) = __init_array_start; f < __init_array_end; f++) (*f)();
    int rc = main();
#ifdef STARTUP_NEWLIB
    exit(rc);
#else
    sh_exit(rc);
#endif
}

/* The exception frame's stacked PC is at sp + 24. */
__attribute__((noreturn, used)) static void fault_report(const uint32_t *sp)
{
    sh_puts("\nFAULT: hard fault at pc 0x");
    sh_putu(sp[6], 16);
    sh_puts(" (CORO_TRAP or a bad access)\n");
    sh_exit(3);
}

__attribute__((naked)) void Fault_Handler(void)
{
    __asm__ volatile("tst lr, #4\n"
                     "ite eq\n"
                     "mrseq r0, msp\n"
                     "mrsne r0, psp\n"
                     "b fault_report\n");
}

__attribute__((noreturn)) void Default_Handler(void)
{
    sh_puts("\nFAULT: unexpected interrupt\n");
    sh_exit(4);
}

/* The example firmware defines its own. */
__attribute__((weak)) void SysTick_Handler(void)
{
    Default_Handler();
}

__attribute__((section(".vectors"), used)) void (*const vectors[16])(void) = {
    (void (*)(void))(uintptr_t)__stack_top,
    Reset_Handler,
    Default_Handler, /* NMI */
    Fault_Handler,   /* HardFault */
    Fault_Handler,   /* MemManage */
    Fault_Handler,   /* BusFault */
    Fault_Handler,   /* UsageFault */
    0, 0, 0, 0,
    Default_Handler, /* SVCall */
    Default_Handler, /* DebugMonitor */
    0,
    Default_Handler, /* PendSV */
    SysTick_Handler,
};
