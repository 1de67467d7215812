/* coro_sync.h - Event, Lock, Condition, Semaphore, Barrier, Queue and a
 * bounded job scheduler on top of coro_loop.h.
 *
 * Not written yet: this header is a placeholder so that the file layout is
 * complete; including it gives you coro_loop.h.
 */
#ifndef CORO_SYNC_H
#define CORO_SYNC_H
#include "coro_loop.h"
#endif
