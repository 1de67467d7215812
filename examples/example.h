/* example.h - what every example shares: a loop on the real monotonic
 * clock, or on the virtual clock when CORO_CLOCK=virtual (the test suite
 * uses it to compare the output exactly), and a "blocking call" that
 * really blocks (or, virtually, moves the clock without running anything).
 */
#ifndef EXAMPLE_H
#define EXAMPLE_H
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "coro_loop.h"

static coro_virtual example__clock;
static int example__virtual;
static int64_t example__t0;

/* Initialises L on the clock CORO_CLOCK selects; time 0 is now. */
__attribute__((unused)) static void example_loop(coro_loop *L)
{
    const char *clk = getenv("CORO_CLOCK");
    example__virtual = clk && strcmp(clk, "virtual") == 0;
    coro_loop_init(L, example__virtual ? coro_virtual_init(&example__clock, 0) : NULL);
    example__t0 = coro_loop_time(L);
}

/* Seconds since example_loop, to one decimal. */
__attribute__((unused)) static double example_secs(coro_loop *L)
{
    double s = (double)(coro_loop_time(L) - example__t0) / 1e9;
    return (double)(long)(s * 10 + 0.5) / 10;
}

/* A blocking call (like time.sleep): nothing else runs meanwhile. */
__attribute__((unused)) static void example_block(int64_t ns)
{
    if (example__virtual) {
        coro_virtual_advance(&example__clock, ns);
    } else {
        struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
        nanosleep(&ts, NULL);
    }
}
#endif
