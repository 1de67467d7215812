/* sizes.c - the RAM the library's records take on the target: each
 * sizeof() becomes the size of a symbol, read back with nm -S (so the
 * object is compiled, never run). */
#include "coro_sync.h"

#define SIZE_OF(name, type) char size__##name[sizeof(type)]
SIZE_OF(coro_frame, coro_frame);
SIZE_OF(coro_task, coro_task);
SIZE_OF(coro_handle, coro_handle);
SIZE_OF(coro_future, coro_future);
SIZE_OF(coro_loop, coro_loop);
SIZE_OF(coro_call, coro_call);
SIZE_OF(coro_signal, coro_signal);
SIZE_OF(coro_user_clock, coro_user_clock);
SIZE_OF(coro_timeout, coro_timeout);
SIZE_OF(coro_group_task, coro_group_task);
SIZE_OF(coro_event, coro_event);
SIZE_OF(coro_event_op, coro_event_op);
SIZE_OF(coro_lock, coro_lock);
SIZE_OF(coro_lock_op, coro_lock_op);
SIZE_OF(coro_sem, coro_sem);
SIZE_OF(coro_queue, coro_queue);
SIZE_OF(coro_queue_op, coro_queue_op);
SIZE_OF(coro_job, coro_job);
