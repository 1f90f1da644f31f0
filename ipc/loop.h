/* loop.h - the I/O event loop: readiness for many handles on one thread, plus a wakeup that
 * other threads and signal handlers may trigger. One backend per OS: loop_linux.c (epoll) now;
 * a Windows one (IOCP, reporting completions of zero-byte reads as readiness) later.
 * Level-triggered: a handle stays reported while it is readable/writable.
 *
 * Thread safety: everything runs on the loop thread except ipc_loop_wake, which is thread-safe
 * and async-signal-safe.
 */
#ifndef IPC_LOOP_H
#define IPC_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "awq_err.h"

enum { IPC_LOOP_READ = 1, IPC_LOOP_WRITE = 2, IPC_LOOP_HUP = 4 };

typedef struct ipc_loop ipc_loop;

typedef struct ipc_loop_ev {
    void *ud;
    unsigned events; /* IPC_LOOP_* */
} ipc_loop_ev;

ipc_loop *ipc_loop_create(char *err);
void ipc_loop_free(ipc_loop *l);
/* Watch handle h for events (IPC_LOOP_READ | IPC_LOOP_WRITE); ud comes back with each event. */
AWQ_NODISCARD int ipc_loop_add(ipc_loop *l, intptr_t h, unsigned events, void *ud);
AWQ_NODISCARD int ipc_loop_mod(ipc_loop *l, intptr_t h, unsigned events, void *ud);
void ipc_loop_del(ipc_loop *l, intptr_t h);
/* Wait up to timeout_ms (< 0: forever) and fill up to max events; returns their number (0 on
 * timeout) or a negative AWQ_E*. *woken is set when ipc_loop_wake was called since the last wait. */
int ipc_loop_wait(ipc_loop *l, ipc_loop_ev *evs, int max, int timeout_ms, bool *woken);
/* Wake the loop from any thread or a signal handler. */
void ipc_loop_wake(ipc_loop *l);

#endif
