/* coro_io.h - io_uring backend with epoll fallback, file and socket I/O,
 * streams, servers and clients (the only header that uses liburing).
 *
 * Not written yet: this header is a placeholder so that the file layout is
 * complete; including it gives you coro_loop.h.
 */
#ifndef CORO_IO_H
#define CORO_IO_H
#include "coro_loop.h"
#endif
