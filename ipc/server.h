/* server.h - the IPC server the daemon builds on: one I/O thread running an event loop over
 * thousands of connections, doing framing, encryption, message decoding and the protocol's
 * connection-level rules, and handing requests to the handler as plain ipc_msg structs.
 *
 * What the server does itself (docs/protocol.md "State machine"):
 *  - peer check at accept (uid/gid from the kernel against the allow list), max_conns (one more
 *    gets an error frame "busy: too many connections" and is closed), the encryption handshake,
 *    "hello" first with the major-version check, "ping" -> "pong";
 *  - request ids: a request whose id is already in flight gets AWQ_EEXIST, more than
 *    max_inflight at once get AWQ_EBUSY; an id stays in flight until the handler sends a
 *    terminal message for it (anything but token/progress events);
 *  - "cancel" of an id not in flight gets AWQ_ENOTFOUND; of one in flight, the cancel goes to
 *    on_request and the server answers "ok" (the handler then ends the target with done/cancel);
 *  - malformed or unknown messages are answered with an error frame (the connection stays);
 *    frame-level violations (length over max_frame, a bad tag when encrypted) get an error frame
 *    and the connection is closed.
 * Everything else (generate, tokenize, load, ...) goes to on_request.
 *
 * Slow readers: each connection's output buffer has a soft cap (out_cap). Past it, the server
 * stops reading that connection's requests and calls on_pause(conn, true); the producer should
 * hold (or cancel) that connection's streams. Once the buffer drains below out_cap / 4 reading
 * resumes and on_pause(conn, false) is called. A producer that ignores the pause is stopped
 * anyway: once a connection's backlog (queued + unwritten bytes) passes 8 x out_cap,
 * ipc_server_send refuses more with AWQ_EAGAIN, so memory stays bounded either way.
 * Fairness: a connection gets at most IPC_READ_BUDGET bytes read and IPC_WRITE_BUDGET bytes
 * written per loop iteration, so one busy client cannot starve the others.
 *
 * Thread safety: ipc_server_run runs on one thread (the loop thread), and all callbacks are
 * called on it. ipc_server_send and ipc_server_close_conn are thread-safe (a queue plus a
 * wakeup; called on the loop thread they act at once). ipc_server_stop is thread-safe and
 * async-signal-safe. Create/free on the owning thread, free only after run returned.
 */
#ifndef IPC_SERVER_H
#define IPC_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "awq_err.h"
#include "keys.h"
#include "msg.h"

#define IPC_MAX_CONNS_DEFAULT 1024
#define IPC_MAX_INFLIGHT_DEFAULT 64
#define IPC_OUT_CAP_DEFAULT (256u << 10)
#define IPC_READ_BUDGET (64u << 10)
#define IPC_WRITE_BUDGET (256u << 10)

typedef enum ipc_enc_mode {
    IPC_ENC_OFF,      /* plaintext only; a handshake is refused */
    IPC_ENC_ON,       /* the client chooses */
    IPC_ENC_REQUIRED, /* plaintext clients get an error frame and are closed */
} ipc_enc_mode;

typedef struct ipc_server ipc_server;

/* What the handler knows about a connection (from the kernel and the handshake). */
typedef struct ipc_conn_info {
    uint64_t conn;   /* never reused during the server's life */
    uint32_t uid, gid;
    int64_t pid;
    bool encrypted;
    uint8_t client_key[IPC_KEY_BYTES]; /* when encrypted */
    char client_name[64];              /* from hello */
} ipc_conn_info;

typedef struct ipc_server_cb {
    /* A client said hello. reply is pre-filled (protocol version, server limits, features);
     * set server, model, features or limits (pointers must stay valid until return). Return 0
     * to accept or a negative AWQ_E* to refuse (the client gets that error, then is closed).
     * NULL: accept everyone. */
    int (*on_hello)(void *user, const ipc_conn_info *ci, const ipc_msg *hello, ipc_msg *reply);
    /* A request for the handler (the message is borrowed for the call). */
    void (*on_request)(void *user, uint64_t conn, const ipc_msg *req);
    /* The connection's output buffer went over (paused = true) or back under its cap. */
    void (*on_pause)(void *user, uint64_t conn, bool paused);
    /* The connection is gone (only for connections that completed hello). Requests still in
     * flight on it should be cancelled; sends to it are dropped from now on. */
    void (*on_close)(void *user, uint64_t conn);
} ipc_server_cb;

typedef struct ipc_server_opts {
    const char *path;        /* socket path; NULL = ipc_default_socket_path */
    int listen_fd;           /* >= 0: an already-bound listening socket (systemd); else -1 */
    int64_t group;           /* gid for a 0660 socket, or -1 */
    const char *pipe_group;  /* Windows: group (SID or name) the pipe's DACL admits, or NULL */
    uint32_t max_conns;      /* 0 = IPC_MAX_CONNS_DEFAULT */
    uint32_t max_frame;      /* 0 = IPC_FRAME_MAX_DEFAULT */
    uint32_t max_inflight;   /* per connection; 0 = IPC_MAX_INFLIGHT_DEFAULT */
    size_t out_cap;          /* per connection; 0 = IPC_OUT_CAP_DEFAULT */
    /* Allowed peers: a uid in allow_uids or a primary gid in allow_gids. Both empty: only our
     * own uid and root. Non-empty: exactly the listed ones. */
    const uint32_t *allow_uids;
    size_t n_allow_uids;
    const uint32_t *allow_gids;
    size_t n_allow_gids;
    ipc_enc_mode enc;
    const char *key_path;        /* server secret key (required unless enc = OFF) */
    const char *authorized_keys; /* allowed client public keys (required unless enc = OFF) */
    const char *version;         /* server version for hello; NULL = "awqd" */
    ipc_server_cb cb;
    void *user;
} ipc_server_opts;

/* Opens the socket (see transport.h for the checks) and loads keys. NULL on failure, with err. */
ipc_server *ipc_server_create(char *err, const ipc_server_opts *o) AWQ_NONNULL(2);
/* Run the loop on this thread until ipc_server_stop. Closes every connection before returning. */
AWQ_NODISCARD int ipc_server_run(char *err, ipc_server *s) AWQ_NONNULL(2);
void ipc_server_stop(ipc_server *s);
/* Encode m and queue it for connection conn. Returns 0, AWQ_ENOTFOUND (conn is gone),
 * AWQ_EAGAIN (the connection's backlog is over 8 x out_cap: hold the stream until on_pause
 * says false, or cancel it), AWQ_EINVAL (m cannot be encoded), AWQ_ENOMEM. Messages to one
 * connection arrive in the order they were sent from one thread. */
AWQ_NODISCARD int ipc_server_send(ipc_server *s, uint64_t conn, const ipc_msg *m) AWQ_NONNULL(1, 3);
/* Close a connection once what was queued for it is written. */
void ipc_server_close_conn(ipc_server *s, uint64_t conn);
/* The path the server listens on. */
const char *ipc_server_path(const ipc_server *s);
/* Live connections (approximate when read off the loop thread). */
uint32_t ipc_server_conn_count(const ipc_server *s);
void ipc_server_free(ipc_server *s);

#endif
