/* echo_server.c - asyncio's echo server: every byte a client sends comes
 * back (the handler is in echo.h).
 *
 *   build/examples/echo_server PORT      listens on 127.0.0.1:PORT
 *                                        (0: a free port, printed)
 *
 * SIGINT or SIGTERM stops it: no more accepts, every connection closed,
 * then exit 0 (serve.h). CORO_BACKEND=epoll runs it on epoll.
 */
#include "echo.h"

int main(int argc, char **argv)
{
    return serve_main(argc, argv, "echo_server", echo, sizeof(struct echo));
}
