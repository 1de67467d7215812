"""The Python peers of coro's benchmarks: B1-B5 on asyncio's own event loop,
or on uvloop's (--loop uvloop), written the way asyncio code is written.
Prints the RESULT protocol of bench/bench.h.

    /usr/bin/python3 bench/peers/asyncio/asyncio_bench.py --loop asyncio|uvloop

Environment: BENCH_RUNS (>= 5, default 5), BENCH_SCALE, BENCH_PROFILE=full.

Sizes are smaller than coro's, because asyncio is 100-3000 times slower
and the quick profile must end in 5 minutes; the per-op figure is what is
compared, and n= in the details says what ran. The ring (B4) and the timer
counts (B5) are part of those benchmarks' definition: the quick profile
runs them at 10,000 whispers, 50,000 timers and 20,000 sleeping tasks
(about a second a run each here); `make bench-full` runs 100,000 whispers,
coro's 1,000,000 timers and 100,000 sleeping tasks (a million asyncio tasks
take a minute a run). Smaller structures favour
asyncio, if anything (its timer heap is shallower).
"""
import argparse
import asyncio
import gc
import os
import sys
import time

IMPL = "asyncio"


def runs():
    try:
        n = int(os.environ.get("BENCH_RUNS", "5"))
    except ValueError:
        n = 5
    return max(n, 5)


def full():
    return os.environ.get("BENCH_PROFILE") == "full"


def size(quick, big):
    n = big if full() else quick
    try:
        f = float(os.environ.get("BENCH_SCALE", "1"))
    except ValueError:
        f = 1.0
    return max(1, int(n * (f if f > 0 else 1.0)))


def progress(msg):
    print("  .. " + msg, file=sys.stderr, flush=True)


def quantile(s, q):
    pos = q * (len(s) - 1)
    i = int(pos)
    if i >= len(s) - 1:
        return s[-1]
    return s[i] + (pos - i) * (s[i + 1] - s[i])


def report(bench, v, extra):
    s = sorted(v)
    med = quantile(s, 0.5)
    print("%-14s %-10s median %12.3f ns/op  min %.3f  max %.3f  (%d runs)"
          % (bench, IMPL, med, s[0], s[-1], len(s)))
    print("RESULT bench=%s impl=%s unit=ns/op value=%.6g spread=%.6g spread_kind=range "
          "runs=%d min=%.6g max=%.6g iqr=%.6g %s"
          % (bench, IMPL, med, s[-1] - s[0], len(s), s[0], s[-1],
             quantile(s, 0.75) - quantile(s, 0.25), extra), flush=True)


def measure(runner, bench, extra, make, warm):
    """make() returns the coroutine of one run, which returns ns/op."""
    runner.run(warm())
    v = []
    for r in range(runs()):
        progress("%s run %d/%d" % (bench, r + 1, runs()))
        gc.collect()
        v.append(runner.run(make()))
    report(bench, v, extra)


# B1: two tasks each await asyncio.sleep(0) n times.
async def pinger(n):
    for _ in range(n):
        await asyncio.sleep(0)


async def switch(n):
    t0 = time.perf_counter_ns()
    await asyncio.gather(pinger(n), pinger(n))
    return (time.perf_counter_ns() - t0) / (2 * n)


# B2: create_task of an empty coroutine, awaited in batches of 1,000.
async def empty():
    pass


async def spawn(n, batch=1000):
    t0 = time.perf_counter_ns()
    create_task = asyncio.create_task
    for _ in range(n // batch):
        tasks = [create_task(empty()) for _ in range(batch)]
        for t in tasks:
            await t
    return (time.perf_counter_ns() - t0) / n


# B3: ping-pong over two asyncio.Queue(maxsize=1); ns per message.
async def echo(there, back, n):
    for _ in range(n):
        await back.put(await there.get())


async def queue(n):
    there, back = asyncio.Queue(1), asyncio.Queue(1)
    t0 = time.perf_counter_ns()
    peer = asyncio.create_task(echo(there, back, n))
    for i in range(n):
        await there.put(i)
        if await back.get() != i:
            raise RuntimeError("queue ping-pong went wrong")
    await peer
    return (time.perf_counter_ns() - t0) / (2 * n)


# B4: whispers over asyncio.Queue(1) links; ns per task, creation included.
async def whisper(left, right):
    await left.put(1 + await right.get())


async def ring(n):
    t0 = time.perf_counter_ns()
    leftmost = asyncio.Queue(1)
    left = right = leftmost
    tasks = []
    for _ in range(n):
        right = asyncio.Queue(1)
        tasks.append(asyncio.create_task(whisper(left, right)))
        left = right
    await right.put(1)
    if await leftmost.get() != n + 1:
        raise RuntimeError("whispers went wrong")
    dt = time.perf_counter_ns() - t0
    await asyncio.gather(*tasks)
    return dt / n


# B5: deadlines uniformly over 10 ms (xorshift64*, as bench_timers.c).
WINDOW = 10_000_000
M64 = (1 << 64) - 1


def delays(n):
    rng, out = 0x9E3779B97F4A7C15, []
    for _ in range(n):
        rng ^= rng >> 12
        rng ^= (rng << 25) & M64
        rng ^= rng >> 27
        out.append((((rng * 0x2545F4914F6CDD1D) & M64) >> 11) % WINDOW / 1e9)
    return out


async def timers(d):
    """loop.call_at for every deadline; ns per timer, first arm to last call."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    left = len(d)

    def fire():
        nonlocal left
        left -= 1
        if not left:
            done.set_result(None)

    t0 = time.perf_counter_ns()
    base = loop.time()
    call_at = loop.call_at
    for x in d:
        call_at(base + x, fire)
    await done
    return (time.perf_counter_ns() - t0) / len(d)


async def timers_sleep(d):
    """A task per deadline in asyncio.sleep."""
    sleep, create_task = asyncio.sleep, asyncio.create_task
    t0 = time.perf_counter_ns()
    tasks = [create_task(sleep(x)) for x in d]
    for t in tasks:
        await t
    return (time.perf_counter_ns() - t0) / len(d)


def main():
    global IMPL
    ap = argparse.ArgumentParser()
    ap.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio")
    args = ap.parse_args()
    IMPL = args.loop
    factory = None
    if IMPL == "uvloop":
        import uvloop  # noqa: PLC0415 - only for this peer
        factory = uvloop.new_event_loop
        version = "uvloop " + uvloop.__version__
    else:
        version = "asyncio"
    print("== %s: Python %s, %s, %d runs" % (IMPL, sys.version.split()[0], version, runs()))
    ver = "python=%s" % sys.version.split()[0]
    with asyncio.Runner(loop_factory=factory) as runner:
        n = size(50000, 200000)
        measure(runner, "switch", "n=%d %s" % (2 * n, ver),
                lambda: switch(n), lambda: switch(n // 10))
        n1 = size(50000, 200000)
        measure(runner, "spawn", "n=%d batch=1000 %s" % (n1, ver),
                lambda: spawn(n1), lambda: spawn(n1 // 10))
        n2 = size(20000, 100000)
        measure(runner, "queue", "n=%d api=asyncio.Queue(1) %s" % (n2, ver),
                lambda: queue(n2), lambda: queue(n2 // 10))
        n3 = size(10000, 100000)
        measure(runner, "ring", "n=%d api=asyncio.Queue(1) %s" % (n3, ver),
                lambda: ring(n3), lambda: ring(n3 // 10))
        d = delays(size(50000, 1000000))
        measure(runner, "timers", "n=%d api=loop.call_at %s" % (len(d), ver),
                lambda: timers(d), lambda: timers(d[: len(d) // 10]))
        ds = delays(size(20000, 100000))
        measure(runner, "timers_sleep", "n=%d api=asyncio.sleep %s" % (len(ds), ver),
                lambda: timers_sleep(ds), lambda: timers_sleep(ds[: len(ds) // 10]))


if __name__ == "__main__":
    main()
