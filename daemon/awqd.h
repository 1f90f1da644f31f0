/* awqd.h - the daemon core: the state the two threads share, the I/O-thread side (the IPC
 * server's callbacks: hello, requests, pause, close; answers for status, metrics, list and
 * settings) and the engine thread (daemon/sched.c: load/unload, tokenize, template and
 * continuous-batching generation).
 *
 * Threads (docs/daemon.md):
 *  - the I/O thread runs ipc_server_run and every callback of ipc_server_cb;
 *  - the engine thread runs awqd_engine_main: it owns the model, every sequence and the
 *    prompt cache, and sends events with ipc_server_send (thread-safe);
 *  - the main thread starts both, watches signals and drives drain and reload.
 * What they share: the inbound queue (items, a mutex and a condition variable), the settings
 * (a mutex, never held across a model step), atomics for counters and a snapshot of the engine
 * for status (a mutex held only to copy a few fields).
 */
#ifndef AWQD_AWQD_H
#define AWQD_AWQD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "awq_err.h"
#include "cfg.h"
#include "metrics.h"
#include "msg.h"
#include "plat.h"
#include "server.h"

#define AWQD_CACHE_MAX 4         /* finished sequences kept for prompt-cache reuse */
#define AWQD_DRAIN_TIMEOUT_S 60  /* SIGTERM: running generations get this long, then are cancelled */

/* Command-line values that override the settings file (kept apart so that saving settings
 * never writes them into the file). NULL / 0: not given. */
typedef struct awqd_overrides {
    const char *socket, *model, *device;
    int threads, ctx, log_level; /* log_level -1: not given */
} awqd_overrides;

/* One unit of work for the engine thread. */
enum awqd_item_kind {
    AWQD_IT_MSG,    /* a request (m owned by the item) */
    AWQD_IT_CANCEL, /* cancel request target of conn */
    AWQD_IT_CLOSE,  /* conn is gone: drop its requests and free their sequences */
    AWQD_IT_PAUSE,  /* hold conn's sequences out of steps */
    AWQD_IT_RESUME,
    AWQD_IT_FORCE,  /* cancel every generation now (drain timeout, second SIGTERM) */
    AWQD_IT_EXIT,   /* free everything and leave the thread */
};

typedef struct awqd_item {
    struct awqd_item *next;
    int kind;
    uint64_t conn;
    uint32_t target;   /* CANCEL */
    uint64_t t_arrive; /* plat_now_ns at arrival, for ttft */
    ipc_msg *m;        /* MSG: decoded copy owned by the item */
} awqd_item;

/* The engine's state as status shows it; written by the engine thread under snap_mu. */
typedef struct awqd_snap {
    bool loaded, loading;
    char model_name[256], model_path[PLAT_PATH_MAX], backend[32], load_stage[32];
    uint64_t weights_bytes, kv_bytes;
    int ctx, vocab;
    uint32_t running, kv_used, kv_cached, kv_total;
    uint64_t last_activity_ns;
} awqd_snap;

typedef struct awqd_engine awqd_engine; /* sched.c, engine-thread private */

typedef struct awqd {
    /* set before the threads start, read-only after */
    char cfg_path[PLAT_PATH_MAX]; /* "" = built-in defaults, no file to save into */
    awqd_overrides ov;
    uint64_t start_ns;
    ipc_server *srv;
    /* settings: file = what the file says (what settings_set saves), eff = what runs
     * (file + command-line overrides, non-live keys frozen at start) */
    plat_mutex cfg_mu;
    cfg *file, *eff;
    /* counters */
    awqd_metrics metrics;
    /* the inbound queue */
    plat_mutex qmu;
    plat_cond qcv;
    awqd_item *qhead, *qtail;
    _Atomic uint32_t n_pending;     /* requests queued or waiting for a slot (queue_depth bound) */
    _Atomic bool draining;          /* refuse new generate and load: AWQ_ESHUTDOWN */
    _Atomic bool shutdown_asked;    /* a "shutdown" request came; main starts the drain */
    _Atomic bool preload_done;
    /* engine snapshot */
    plat_mutex snap_mu;
    awqd_snap snap;
    /* live connections (for closing them all at the end of a drain) */
    plat_mutex conn_mu;
    uint64_t *conns;
    size_t n_conns, cap_conns;
    /* engine thread */
    awqd_engine *eng;
    plat_thread eng_thread;
} awqd;

/* ---- core.c: setup and I/O-thread callbacks ---- */

/* Build the core from settings (file: the file's settings; borrowed, copied) and overrides.
 * NULL with err on failure. Does not open the socket (awqd_serve does). */
awqd *awqd_create(char *err, const cfg *file, const char *cfg_path, const awqd_overrides *ov) AWQ_NONNULL(2, 4);
void awqd_free(awqd *d);
/* Apply the command-line overrides on top of c (settings as the file gives them). */
AWQ_NODISCARD int awqd_apply_overrides(char *err, cfg *c, const awqd_overrides *ov) AWQ_NONNULL(2, 3);
/* The IPC server callbacks, user = the awqd. */
ipc_server_cb awqd_callbacks(void);
/* Reload the settings file (SIGHUP): live keys take effect, the others are logged as needing a
 * restart. A file that does not parse leaves everything as it was (logged). */
void awqd_reload(awqd *d);
/* Push an item to the engine (takes it). */
void awqd_push(awqd *d, awqd_item *it);
/* Send m to conn, counting errors; failures only mean the connection is gone. */
void awqd_send(awqd *d, uint64_t conn, const ipc_msg *m);
/* Send an error for request id. */
void awqd_send_error(awqd *d, uint64_t conn, uint32_t id, int code, const char *fmt, ...) AWQ_PRINTF(5, 6);
/* Copies of the live connection ids (caller frees *ids). */
size_t awqd_conn_ids(awqd *d, uint64_t **ids);

/* ---- sched.c: the engine thread ---- */

AWQ_NODISCARD int awqd_engine_create(char *err, awqd *d) AWQ_NONNULL(2);
/* The engine thread's body (arg = the awqd). Preloads [model] path first. */
void *awqd_engine_main(void *arg);
void awqd_engine_free(awqd *d);
/* True when the engine has nothing running, waiting or queued. */
bool awqd_engine_idle(awqd *d);

#endif
