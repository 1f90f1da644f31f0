/* transport.h - the byte-stream transport behind the server and libawq: a listener that
 * accepts connections carrying the peer's identity, and connected streams with non-blocking
 * reads and writes. One implementation per OS: transport_posix.c (Unix domain sockets) and
 * transport_win.c (named pipes, \\.\pipe\NAME; its safety rules are at the top of that file and
 * in docs/windows.md); nothing outside these files sees sockets or pipes. On Windows "path" is
 * the pipe name and the handles are the objects loop_win.c watches (win_io.h).
 *
 * Unix socket safety (docs/protocol.md "Transport"; threat model rows 1-2):
 *  - the socket lives in a private directory: created 0700 (0710 with a group), refused when it
 *    exists and is not a directory we own, is a symlink, or grants group/other access that the
 *    configuration did not ask for;
 *  - bound under umask 0177, then mode 0600 (0660 + chown to the group when one is configured);
 *  - something at the path is replaced only when it is a socket we own and nobody answers on it
 *    (connect fails with ECONNREFUSED); a symlink, a regular file or a live server is refused.
 *  - WARNING: umask is process-wide: another thread creating files during ipc_listen gets 0177.
 *
 * Thread safety: a listener or stream belongs to one thread at a time.
 */
#ifndef IPC_TRANSPORT_H
#define IPC_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "awq_err.h"

#define IPC_PATH_MAX 108 /* sun_path */

typedef struct ipc_listener ipc_listener;
typedef struct ipc_sock ipc_sock;

/* Who is on the other end, from the kernel (SO_PEERCRED), not from anything the peer sent. */
typedef struct ipc_peer {
    uint32_t uid, gid;
    int64_t pid;
} ipc_peer;

typedef struct ipc_listen_opts {
    const char *path;  /* socket path (ignored with listen_fd >= 0) */
    int64_t group;     /* gid allowed to connect (mode 0660, dir 0710), or -1 */
    int listen_fd;     /* >= 0: adopt this already-bound listening socket (systemd) */
    const char *pipe_group; /* Windows: a group (SID "S-1-..." or name) allowed to connect, or
                             * NULL; ignored on POSIX, where group is the gid */
} ipc_listen_opts;

/* The default socket path: $XDG_RUNTIME_DIR/awqd/awqd.sock for a user, /run/awqd/awqd.sock for
 * root. AWQ_ENOTFOUND when XDG_RUNTIME_DIR is unset for a non-root user (no /tmp fallback:
 * a world-writable directory invites races), AWQ_ETOOBIG when it does not fit in n bytes. */
AWQ_NODISCARD int ipc_default_socket_path(char *err, char *out, size_t n) AWQ_NONNULL(2);

AWQ_NODISCARD int ipc_listen(char *err, const ipc_listen_opts *o, ipc_listener **out) AWQ_NONNULL(2, 3);
/* Close the listener; removes the socket file when this listener created it. */
void ipc_listener_free(ipc_listener *l);
intptr_t ipc_listener_handle(const ipc_listener *l);
const char *ipc_listener_path(const ipc_listener *l);
/* Accept one pending connection (non-blocking). AWQ_EAGAIN when none is pending. */
AWQ_NODISCARD int ipc_accept(char *err, ipc_listener *l, ipc_sock **out) AWQ_NONNULL(2, 3);

/* Connect to a server socket (the stream is non-blocking; see ipc_sock_wait). */
AWQ_NODISCARD int ipc_connect(char *err, const char *path, ipc_sock **out) AWQ_NONNULL(2, 3);

int ipc_sock_peer(const ipc_sock *s, ipc_peer *p);
intptr_t ipc_sock_handle(const ipc_sock *s);
/* Read up to n bytes: 0 with *got > 0, AWQ_EAGAIN (nothing now), AWQ_ECLOSED (peer closed),
 * AWQ_EIO. */
AWQ_NODISCARD int ipc_sock_read(ipc_sock *s, void *buf, size_t n, size_t *got);
/* Write up to n bytes: 0 with *put > 0, AWQ_EAGAIN, AWQ_ECLOSED, AWQ_EIO. Never raises SIGPIPE. */
AWQ_NODISCARD int ipc_sock_write(ipc_sock *s, const void *buf, size_t n, size_t *put);
/* Wait until readable (write = false) or writable: 0, AWQ_ETIMEDOUT; timeout_ms < 0 waits forever. */
AWQ_NODISCARD int ipc_sock_wait(ipc_sock *s, bool write, int timeout_ms);
/* Write all of buf, waiting up to timeout_ms in total (< 0: forever). */
AWQ_NODISCARD int ipc_sock_write_all(ipc_sock *s, const void *buf, size_t n, int timeout_ms);
void ipc_sock_free(ipc_sock *s);

#endif
