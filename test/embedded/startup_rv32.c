/* startup_rv32.c - the RV32 reset code for the size images (test/embedded/
 * rv32.ld): stack, .data, .bss, main, then park. Not run by the tests. */
#include <stdint.h>

extern uint32_t __data_start[], __data_end[], __data_load[], __bss_start[], __bss_end[];
int main(void);
void _start(void);
void start_c(void);

__attribute__((naked, section(".text.start"))) void _start(void)
{
    __asm__ volatile(".option push\n"
                     ".option norelax\n"
                     "la gp, __global_pointer$\n"
                     ".option pop\n"
                     "la sp, __stack_top\n"
                     "j start_c\n");
}

__attribute__((noreturn, used)) void start_c(void)
{
    uint32_t *s = __data_load, *d = __data_start;
    while (d < __data_end) *d++ = *s++;
    for (d = __bss_start; d < __bss_end;) *d++ = 0;
    main();
    for (;;) __asm__ volatile("wfi");
}
