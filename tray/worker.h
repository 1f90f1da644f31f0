/* worker.h - awq-tray's worker thread: it alone owns the libawq connection, so nothing the
 * daemon does (a slow load, a hang, a restart) can block the UI thread. The UI submits requests
 * into a queue; the worker answers with events handed to a post function, which the front end
 * implements by moving them onto its UI thread (g_idle_add on GTK, PostMessage on Win32).
 *
 * The worker keeps itself connected: it checks that the server on the socket is ours
 * (sys.h tray_sys_check_server), says hello through libawq, polls `status` every poll_ms and
 * posts a VIEW event whenever the view changes. When the daemon goes away it posts a STOPPED
 * view and retries with exponential backoff (backoff_min_ms doubling up to backoff_max_ms); a
 * START request or a refresh retries at once. A server that is not ours is never talked to: the
 * view is ERROR with the reason, and the worker keeps checking (the real daemon may come back).
 *
 * Thread safety: tray_worker_submit may be called from any thread; the post function is called
 * on the worker thread and must hand the event over (it owns it) without blocking for long.
 */
#ifndef TRAY_WORKER_H
#define TRAY_WORKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core.h"
#include "sys.h"

typedef enum tray_req_kind {
    TRAY_REQ_START = 1, /* start the daemon (sys.h tray_sys_service_start) */
    TRAY_REQ_STOP,      /* stop it: the service manager, else the protocol's shutdown */
    TRAY_REQ_LOAD,      /* load the folder arg (already checked against the roots by the UI) */
    TRAY_REQ_UNLOAD,
    TRAY_REQ_SET,       /* settings_set arg = value */
    TRAY_REQ_SETTINGS,  /* fetch every setting (answered with a SETTINGS event) */
    TRAY_REQ_REFRESH,   /* reconnect / poll status now */
} tray_req_kind;

/* The name of a request kind as the test hook prints it ("start", "load", "set", ...). */
const char *tray_req_name(tray_req_kind k);

typedef struct tray_req {
    tray_req_kind kind;
    char arg[PLAT_PATH_MAX]; /* LOAD: folder; SET: key */
    char value[1024];        /* SET: value */
} tray_req;

typedef enum tray_ev_kind {
    TRAY_EV_VIEW = 1, /* view: what to draw now */
    TRAY_EV_DONE,     /* a request ended: req, rc (0 or AWQ_E*), message */
    TRAY_EV_SETTINGS, /* settings[0..n_settings): every setting, as the daemon reports them */
} tray_ev_kind;

typedef struct tray_kv {
    char *key, *value;
} tray_kv;

typedef struct tray_event {
    tray_ev_kind kind;
    tray_view view;               /* VIEW */
    tray_req_kind req;            /* DONE */
    int rc;                       /* DONE */
    char arg[PLAT_PATH_MAX];      /* DONE: the request's arg (load folder, setting key) */
    char message[AWQ_ERR_LEN];    /* DONE: the daemon's (or the OS's) message, or what happened */
    tray_kv *settings;            /* SETTINGS, owned by the event */
    size_t n_settings;
} tray_event;

/* Free an event and what it owns. NULL is fine. */
void tray_event_free(tray_event *ev);
/* The value of key in a SETTINGS event, or NULL. */
const char *tray_event_setting(const tray_event *ev, const char *key) AWQ_NONNULL(1, 2);

/* Takes ev (free it with tray_event_free, on whichever thread ends up with it). */
typedef void (*tray_post_fn)(void *user, tray_event *ev);

typedef struct tray_worker_opts {
    const char *socket_path;       /* NULL: libawq's default */
    const char *const *server_exes;/* accepted server binary names; NULL: {"awqd"} (awqd.exe on Windows) */
    size_t n_server_exes;
    bool encrypt;                  /* libawq's secure channel (then the pinned key proves the server) */
    const char *key_path, *known_servers;
    int poll_ms;                   /* status poll period; 0 = 1000 */
    int backoff_min_ms;            /* first retry delay; 0 = 250 */
    int backoff_max_ms;            /* longest retry delay; 0 = 5000 */
    int io_timeout_ms;             /* libawq call timeout (a load may take long); 0 = 600000 */
    tray_service service;          /* how Start/Stop work */
    tray_post_fn post;             /* required */
    void *user;
} tray_worker_opts;

typedef struct tray_worker tray_worker;

/* Start the worker thread (it connects at once). Copies o. NULL on failure (err says why). */
tray_worker *tray_worker_create(char *err, const tray_worker_opts *o) AWQ_NONNULL(2);

/* Queue a request (copied). AWQ_EBUSY when TRAY_QUEUE_MAX requests are already waiting. */
#define TRAY_QUEUE_MAX 64
AWQ_NODISCARD int tray_worker_submit(char *err, tray_worker *w, const tray_req *r) AWQ_NONNULL(2, 3);

/* Stop the worker and free it. Waits up to 3 s for a call in flight (a long load) to end; if it
 * does not, the thread and its memory are abandoned on purpose: the caller is about to exit, the
 * OS closes the socket and the daemon cancels the request. Events already posted stay valid.
 * NULL is fine. */
void tray_worker_free(tray_worker *w);

#endif
