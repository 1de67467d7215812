/* echo_server_mt.c - the echo server, one loop per thread: each thread
 * has its own loop, its own io_uring (or epoll) and its own SO_REUSEPORT
 * listener on the same port, and the kernel spreads the connections among
 * them. Nothing is shared, nothing is locked (the thread-per-core design
 * of monoio, glommio and Seastar).
 *
 *   build/examples/echo_server_mt PORT THREADS
 *
 * SIGINT or SIGTERM stops every loop (serve.h); exit 0.
 */
#include "echo.h"

int main(int argc, char **argv)
{
    return serve_main_mt(argc, argv, "echo_server_mt", echo, sizeof(struct echo));
}
