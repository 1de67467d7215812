/* firmware.c - a sensor pipeline as bare-metal firmware on a Cortex-M4
 * (QEMU's mps2-an386; `make qemu-test` runs it, `make size` measures it):
 *
 *   SysTick, 1 kHz ──ISR──▶ coro_signal_raise()      every 10th tick: "a sample is ready"
 *   producer task:  waits for the sample event, reads the sample, puts it into a queue
 *   consumer task:  drains the queue (4 slots), processes each sample, kicks the watchdog
 *   watchdog task:  each kick must come within 50 ms; when one does not, it cancels
 *                   the consumer (the sensor died: the producer gave up after 6 samples)
 *
 * No heap, no OS, no libc: the loop runs on a user clock (the SysTick tick
 * count) whose idle hook sleeps in WFI with interrupts masked around the
 * "is a signal pending?" check, so that no raise is lost. The interrupt
 * handler calls nothing but coro_signal_raise(), the one ISR-safe call.
 * Output goes through semihosting (test/embedded/semihost.h); on a real
 * board that would be a UART. Board support: test/embedded/startup.c
 * (vectors, reset) and test/embedded/mps2.ld (memory map). */
#include <stddef.h>
#include <stdint.h>

#include "coro_sync.h"
#include "semihost.h"

/* ---- the board: SysTick at 1 kHz on the 25 MHz core clock */
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define CPU_HZ 25000000u
#define SAMPLES 6 /* the sensor dies after this many */

static volatile uint32_t ticks;          /* ms since boot (ISR writes)  */
static volatile uint32_t adc_value;      /* the last sample (ISR writes) */
static volatile uint32_t adc_seq;        /* samples taken (ISR writes)  */
static coro_signal *volatile sample_sig; /* set once the loop is ready  */

void SysTick_Handler(void);
void SysTick_Handler(void)
{
    uint32_t t = ticks + 1;
    ticks = t;
    if (t % 10 == 0 && adc_seq < SAMPLES) {
        adc_value = 1000 + 7 * t % 97; /* "read the ADC" */
        adc_seq = adc_seq + 1;
        if (sample_sig) coro_signal_raise(sample_sig); /* the only coro call here */
    }
}

static coro_time board_now(void *arg)
{
    (void)arg;
    return CORO_MS(ticks);
}

/* Sleeps until the next interrupt. Interrupts are masked while we check
 * for a pending signal; WFI still wakes on a pending interrupt, which then
 * runs as soon as they are unmasked. */
static int board_idle(void *arg, coro_time timeout)
{
    coro_loop *L = (coro_loop *)arg;
    (void)timeout; /* the 1 ms tick wakes us: every deadline is met */
    __asm__ volatile("cpsid i" ::: "memory");
    if (!coro_loop_signal_pending(L)) __asm__ volatile("wfi");
    __asm__ volatile("cpsie i" ::: "memory");
    return 0;
}

/* Loop time in ms is the tick count (dividing the int64_t ns of
 * coro_loop_time() would pull in libgcc's 64-bit division, 700 bytes;
 * built with CORO_TIME32, coro_loop_time() is the ms count itself). */
static void log_ms(coro_loop *L, const char *who)
{
    uint32_t ms = ticks;
    (void)L;
    sh_puts("[");
    if (ms < 100) sh_puts(ms < 10 ? "  " : " ");
    sh_putu(ms, 10);
    sh_puts(" ms] ");
    sh_puts(who);
}

/* ---- the application */
struct app {
    coro_event sample_ready, kick;
    coro_queue queue;
    uint32_t slots[4];
    uint32_t produced, consumed;
};

/* Runs in the loop, after the ISR raised the signal. */
static void on_sample(coro_loop *L, void *arg)
{
    coro_event_set(L, &((struct app *)arg)->sample_ready);
}

struct producer {
    coro_frame co;
    struct app *app;
    coro_event_op wait;
    coro_queue_op put;
    uint32_t sample;
    coro_timeout tm;
};

static int producer_fn(coro_ctx *c)
{
    struct producer *f = CORO_SELF(c, struct producer);
    struct app *a = f->app;
    CORO_BEGIN(c);
    for (;;) {
        /* A sensor that stays silent for 30 ms is dead. */
        CORO_TIMEOUT(c, &f->tm, CORO_MS(30), CORO_AWAIT(c, coro_event_wait(&f->wait, &a->sample_ready)));
        if (c->rc == CORO_ETIMEDOUT) break;
        CORO_CHECK(c);
        coro_event_clear(&a->sample_ready);
        f->sample = adc_value;
        a->produced++;
        log_ms(c->loop, "producer: sample ");
        sh_putu(a->produced, 10);
        sh_puts(" = ");
        sh_putu(f->sample, 10);
        sh_puts("\n");
        CORO_QUEUE_PUT(c, &f->put, &a->queue, &f->sample);
        CORO_CHECK(c);
    }
    log_ms(c->loop, "producer: no sample for 30 ms, sensor lost\n");
    CORO_RETURN(c, 0);
    CORO_END(c);
}

struct consumer {
    coro_frame co;
    struct app *app;
    coro_queue_op get;
    uint32_t sample, sum;
};

static int consumer_fn(coro_ctx *c)
{
    struct consumer *f = CORO_SELF(c, struct consumer);
    struct app *a = f->app;
    CORO_BEGIN(c);
    for (;;) {
        CORO_QUEUE_GET(c, &f->get, &a->queue, &f->sample);
        CORO_CHECK(c); /* cancelled: on to the finally part */
        CORO_SLEEP(c, CORO_MS(3)); /* "filtering" takes a while */
        CORO_CHECK(c);
        a->consumed++;
        f->sum += f->sample;
        log_ms(c->loop, "consumer: processed ");
        sh_putu(f->sample, 10);
        sh_puts(", running sum ");
        sh_putu(f->sum, 10);
        sh_puts("\n");
        coro_event_set(c->loop, &a->kick);
    }
    CORO_FINALLY(c);
    log_ms(c->loop, f->co.rc == CORO_ECANCELED ? "consumer: stopped (cancelled)\n"
                                               : "consumer: stopped\n");
    CORO_END(c);
}

struct watchdog {
    coro_frame co;
    struct app *app;
    coro_task *victim;
    coro_event_op wait;
    coro_timeout tm;
};

static int watchdog_fn(coro_ctx *c)
{
    struct watchdog *f = CORO_SELF(c, struct watchdog);
    CORO_BEGIN(c);
    for (;;) {
        CORO_TIMEOUT(c, &f->tm, CORO_MS(50), CORO_AWAIT(c, coro_event_wait(&f->wait, &f->app->kick)));
        if (c->rc < 0) break;
        coro_event_clear(&f->app->kick);
    }
    log_ms(c->loop, "watchdog: no kick for 50 ms, cancelling the consumer\n");
    coro_task_cancel(c->loop, f->victim);
    CORO_AWAIT_TASK(c, f->victim);
    CORO_RETURN(c, 0);
    CORO_END(c);
}

struct main_task {
    coro_frame co;
    struct app *app;
    coro_task tp, tc, tw;
    struct producer p;
    struct consumer k;
    struct watchdog w;
};

static int main_fn(coro_ctx *c)
{
    struct main_task *f = CORO_SELF(c, struct main_task);
    coro_loop *L = c->loop;
    CORO_BEGIN(c);
    f->p.app = f->k.app = f->w.app = f->app;
    f->w.victim = &f->tc;
    coro_spawn(L, &f->tp, coro_frame_init(&f->p.co, producer_fn));
    coro_spawn(L, &f->tc, coro_frame_init(&f->k.co, consumer_fn));
    coro_spawn(L, &f->tw, coro_frame_init(&f->w.co, watchdog_fn));
    CORO_AWAIT_TASK(c, &f->tw);
    CORO_AWAIT_TASK(c, &f->tp);
    log_ms(L, "main: produced ");
    sh_putu(f->app->produced, 10);
    sh_puts(", consumed ");
    sh_putu(f->app->consumed, 10);
    sh_puts(", consumer ");
    sh_puts(coro_task_cancelled(&f->tc) ? "cancelled" : "still running");
    sh_puts("\n");
    CORO_RETURN(c, f->app->produced == SAMPLES && f->app->consumed == SAMPLES ? 0 : 1);
    CORO_END(c);
}

int main(void)
{
    static coro_loop L;
    static coro_user_clock clock;
    static coro_signal sig;
    static struct app app;
    static struct main_task m;
    static coro_task t;

    coro_loop_init(&L, coro_user_clock_init(&clock, board_now, board_idle, &L));
    coro_event_init(&app.sample_ready);
    coro_event_init(&app.kick);
    coro_queue_init(&app.queue, CORO_FIFO, app.slots, sizeof app.slots[0], 4, 4, NULL);
    coro_signal_init(&L, &sig, on_sample, &app);
    sample_sig = &sig;

    SYST_RVR = CPU_HZ / 1000 - 1;
    SYST_CVR = 0;
    SYST_CSR = 7; /* core clock, interrupt, enable */

    sh_puts("boot: coro on Cortex-M4, SysTick 1 kHz\n");
    m.app = &app;
    int rc = coro_run(&L, &t, coro_frame_init(&m.co, main_fn));
    SYST_CSR = 0;
    sample_sig = NULL;
    coro_signal_remove(&L, &sig);
    coro_loop_close(&L);
    sh_puts(rc == 0 ? "halt: ok\n" : "halt: FAILED\n");
    return rc;
}
