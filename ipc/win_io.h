/* win_io.h - Windows only, private to ipc/: the contract between the named-pipe transport
 * (transport_win.c) and the IOCP event loop (loop_win.c).
 *
 * loop.h promises level-triggered readiness, but Windows pipes complete operations instead.
 * Bridge: every pipe end keeps one overlapped read and at most one overlapped write in flight
 * on its own buffers; "readable" means the read has completed (data or an error is waiting),
 * "writable" means no write is in flight. A completion packet on the loop's port only tells the
 * loop which object to look at again; the object's state, polled without blocking by ready(),
 * is the truth. So a stale or extra packet costs one look and nothing else.
 *
 * ipc_sock_handle / ipc_listener_handle return the object's ipc_wio (cast to intptr_t), which
 * is what ipc_loop_add takes on Windows.
 *
 * Thread safety: as transport.h and loop.h; ready() and attach() run on the loop thread.
 */
#ifndef IPC_WIN_IO_H
#define IPC_WIN_IO_H

#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0A00
#endif
#define WIN32_LEAN_AND_MEAN
#include <windows.h>

#include <stdbool.h>

#define IPC_WIO_MAX_OPS 8

/* The completion key of every pipe handle associated with a loop's port; packets are routed by
 * their OVERLAPPED address (see loop_win.c), because a handle's key is fixed at association and
 * an accepted pipe instance was associated while it still belonged to the listener. */
#define IPC_WIO_KEY_IO 1
#define IPC_WIO_KEY_WAKE 2

typedef struct ipc_wio ipc_wio;
struct ipc_wio {
    /* IPC_LOOP_READ / WRITE / HUP as they are now; never blocks. */
    unsigned (*ready)(ipc_wio *o);
    /* Associate the object's handles with port (once; later handles follow on their own). */
    int (*attach)(ipc_wio *o, HANDLE port);
    /* The OVERLAPPEDs whose completions concern this object; their addresses never change. */
    OVERLAPPED *ops[IPC_WIO_MAX_OPS];
    int n_ops;
    HANDLE port; /* the port its handles are associated with, or NULL */
    int slot;    /* the loop's registration, -1 when not watched */
};

#endif
