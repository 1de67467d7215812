"""B8's asyncio and uvloop peers: asyncio's own echo server (the streams
example of the asyncio docs: start_server, a handler per connection reading
up to 16 KiB, writing it back and draining), on CPython's loop or on
uvloop's. The same shape as coro's examples/echo.h. Started by
bench/bench_io_echo (through bench/io_peers.sh):

    python3 echo_server.py --loop asyncio|uvloop PORT
"""
import asyncio
import signal
import sys


async def handle(reader, writer):
    try:
        while True:
            data = await reader.read(16384)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def main(port):
    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with server:
        await stop


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "--loop":
        sys.exit("usage: echo_server.py --loop asyncio|uvloop PORT")
    if sys.argv[2] == "uvloop":
        import uvloop
        runner = asyncio.Runner(loop_factory=uvloop.new_event_loop)
    else:
        runner = asyncio.Runner()
    with runner:
        runner.run(main(int(sys.argv[3])))
