/* worker.c - awq-tray's worker thread: owns the libawq connection, keeps it up (identity
 * check, backoff), polls status, runs the UI's requests and posts events back. See worker.h. */
#include "worker.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"

#define EXES_MAX 8
#define QUIT_WAIT_MS 3000

struct tray_worker {
    tray_worker_opts o;            /* copy; the pointers below replace o's borrowed ones */
    char sock[PLAT_PATH_MAX], key[PLAT_PATH_MAX], known[PLAT_PATH_MAX];
    char exe_buf[EXES_MAX][64];
    const char *exes[EXES_MAX];
    size_t n_exes;

    plat_thread th;
    plat_mutex mu;                 /* guards queue, q_head, q_len, quit, finished */
    plat_cond cv;
    tray_req *queue;               /* (TRAY_QUEUE_MAX) ring of waiting requests */
    size_t q_head, q_len;
    bool quit, finished;

    /* worker thread only */
    awq_conn *conn;
    int64_t server_pid;            /* from the identity check; 0 when unknown */
    tray_view last;                /* the view posted last */
    bool have_last, busy;
    float progress;                /* load progress of our own load, -1 when none */
    char load_error[AWQ_ERR_LEN];  /* the last load's failure, until the next load/unload */
    uint64_t next_try_ns, next_poll_ns;
    int backoff_ms;
};

static const char *const req_names[] = {"?", "start", "stop", "load", "unload", "set", "settings", "refresh"};

const char *tray_req_name(tray_req_kind k) {
    return (unsigned)k < sizeof req_names / sizeof req_names[0] ? req_names[k] : "?";
}

/* snprintf for messages that may be cut (a long path): vsnprintf keeps -Wformat-truncation
 * quiet where cutting is the intent. */
static void AWQ_PRINTF(3, 4) msgf(char *out, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, cap, fmt, ap);
    va_end(ap);
}

/* ------------------------------------------------------------ events ---- */

void tray_event_free(tray_event *ev) {
    if (!ev) return;
    for (size_t i = 0; i < ev->n_settings; i++) {
        free(ev->settings[i].key);
        free(ev->settings[i].value);
    }
    free(ev->settings);
    free(ev);
}

const char *tray_event_setting(const tray_event *ev, const char *key) {
    for (size_t i = 0; i < ev->n_settings; i++)
        if (strcmp(ev->settings[i].key, key) == 0) return ev->settings[i].value;
    return NULL;
}

/* Publish v when it differs from what was posted last. An event that cannot be allocated is
 * dropped: the next poll posts the view again. */
static void publish(tray_worker *w, tray_view v) {
    v.busy = w->busy;
    if (w->have_last && tray_view_equal(&w->last, &v)) return;
    tray_event *ev = calloc(1, sizeof *ev);
    if (!ev) return;
    w->last = v;
    w->have_last = true;
    ev->kind = TRAY_EV_VIEW;
    ev->view = v;
    w->o.post(w->o.user, ev);
}

static void post_done(tray_worker *w, tray_req_kind k, int rc, const char *arg, const char *msg) {
    tray_event *ev = calloc(1, sizeof *ev);
    if (!ev) return;
    ev->kind = TRAY_EV_DONE;
    ev->req = k;
    ev->rc = rc;
    snprintf(ev->arg, sizeof ev->arg, "%s", arg ? arg : "");
    snprintf(ev->message, sizeof ev->message, "%s", msg ? msg : "");
    w->o.post(w->o.user, ev);
}

static void set_busy(tray_worker *w, bool busy) {
    w->busy = busy;
    if (w->have_last) publish(w, w->last);
}

/* ------------------------------------------------------------ connection ---- */

/* Codes after which the connection is gone or cannot be trusted to be in step. */
static bool conn_lost(int rc) {
    return rc == AWQ_ECLOSED || rc == AWQ_EIO || rc == AWQ_ETIMEDOUT || rc == AWQ_EPROTO || rc == AWQ_ECRYPTO;
}

static void disconnect(tray_worker *w) {
    awq_close(w->conn);
    w->conn = NULL;
    w->server_pid = 0;
    w->progress = -1;
    /* it ran a moment ago: look again soon rather than after a long backoff */
    w->backoff_ms = w->o.backoff_min_ms;
    w->next_try_ns = plat_now_ns() + (uint64_t)w->backoff_ms * 1000000u;
    tray_view v;
    tray_view_stopped(&v);
    publish(w, v);
}

/* Poll status and publish the view. A lost connection disconnects. */
static void poll_status(tray_worker *w) {
    char e[AWQ_ERR_LEN] = "";
    awq_map m;
    int rc = awq_status(e, w->conn, &m);
    if (rc) {
        if (conn_lost(rc)) disconnect(w);
        return; /* another failure (busy, ...): keep the last view, poll again later */
    }
    /* the daemon reports its pid: it must be the process the identity check looked at, or the
     * socket changed hands in between */
    const awq_kv *pid = awq_map_get(&m, "pid");
    if (pid && pid->kind == AWQ_KV_INT && w->server_pid && pid->i != w->server_pid) {
        char t[AWQ_ERR_LEN];
        msgf(t, sizeof t, "the server on %s says it is pid %lld, but pid %lld answered the check: refusing it",
                 w->sock, (long long)pid->i, (long long)w->server_pid);
        awq_map_free(&m);
        awq_close(w->conn);
        w->conn = NULL;
        tray_view v;
        tray_view_error(&v, t);
        publish(w, v);
        return;
    }
    tray_view v;
    tray_view_from_status(&v, &m, w->progress, w->load_error);
    awq_map_free(&m);
    publish(w, v);
}

/* Fetch every setting and post them. Returns 0 or the libawq error (message in e). */
static int fetch_settings(tray_worker *w, char *e) {
    awq_map m;
    int rc = awq_settings_get(e, w->conn, NULL, &m);
    if (rc) return rc;
    tray_event *ev = calloc(1, sizeof *ev);
    if (ev && m.n) ev->settings = calloc(m.n, sizeof *ev->settings);
    if (!ev || (m.n && !ev->settings)) {
        tray_event_free(ev);
        awq_map_free(&m);
        return awq_seterr(e, AWQ_ENOMEM, "out of memory");
    }
    ev->kind = TRAY_EV_SETTINGS;
    for (size_t i = 0; i < m.n; i++) {
        const awq_kv *kv = &m.kv[i];
        char num[64];
        const char *val = kv->s;
        if (kv->kind == AWQ_KV_INT) snprintf(num, sizeof num, "%lld", (long long)kv->i), val = num;
        else if (kv->kind == AWQ_KV_FLOAT) snprintf(num, sizeof num, "%g", kv->f), val = num;
        else if (kv->kind == AWQ_KV_BOOL) val = kv->b ? "true" : "false";
        tray_kv *d = &ev->settings[ev->n_settings];
        d->key = malloc(strlen(kv->key) + 1);
        d->value = malloc(strlen(val ? val : "") + 1);
        if (!d->key || !d->value) {
            free(d->key);
            free(d->value);
            continue; /* drop one setting rather than all of them */
        }
        strcpy(d->key, kv->key);
        strcpy(d->value, val ? val : "");
        ev->n_settings++;
    }
    awq_map_free(&m);
    w->o.post(w->o.user, ev);
    return 0;
}

/* One connection attempt: identity check, hello, first status and settings. */
static bool try_connect(tray_worker *w) {
    char e[AWQ_ERR_LEN] = "";
    int64_t pid = 0;
    tray_view v;
    int rc = tray_sys_check_server(e, w->sock, w->exes, w->n_exes, !w->o.encrypt, &pid);
    if (rc == 0) {
        awq_connect_opts co = {.socket_path = w->sock,
                               .io_timeout_ms = w->o.io_timeout_ms,
                               .connect_timeout_ms = 5000,
                               .encrypt = w->o.encrypt,
                               .key_path = w->key[0] ? w->key : NULL,
                               .known_servers = w->known[0] ? w->known : NULL,
                               .client_name = "awq-tray"};
        rc = awq_connect(e, &co, &w->conn);
    }
    if (rc) {
        w->conn = NULL;
        if (rc == AWQ_ENOTFOUND || rc == AWQ_ECLOSED || rc == AWQ_EIO) tray_view_stopped(&v);
        else tray_view_error(&v, e);
        publish(w, v);
        return false;
    }
    w->server_pid = pid;
    poll_status(w);
    if (!w->conn) return false; /* refused or lost during the first status */
    int frc = fetch_settings(w, e);
    if (frc && conn_lost(frc)) {
        disconnect(w);
        return false;
    }
    return true;
}

/* ------------------------------------------------------------ requests ---- */

static void on_progress(void *user, const char *stage, float pct) {
    tray_worker *w = user;
    w->progress = pct;
    tray_view v = w->last;
    v.state = TRAY_ST_LOADING;
    v.pct = pct;
    snprintf(v.stage, sizeof v.stage, "%s", stage ? stage : "");
    publish(w, v);
}

static void handle(tray_worker *w, const tray_req *r) {
    char e[AWQ_ERR_LEN] = "", msg[AWQ_ERR_LEN] = "";
    int rc = 0;
    if (r->kind == TRAY_REQ_REFRESH) {
        w->next_try_ns = w->next_poll_ns = 0;
        return;
    }
    if (r->kind == TRAY_REQ_START) {
        if (w->conn) {
            rc = awq_seterr(e, AWQ_EEXIST, "awqd is already running");
        } else {
            bool spawned = false;
            set_busy(w, true);
            rc = tray_sys_service_start(e, &w->o.service, &spawned);
            set_busy(w, false);
            if (!rc) snprintf(msg, sizeof msg, "awqd started%s", spawned ? "" : " (service manager)");
            /* look for it at once, then at the shortest backoff while it comes up */
            w->backoff_ms = w->o.backoff_min_ms;
            w->next_try_ns = 0;
        }
        post_done(w, r->kind, rc, r->arg, rc ? e : msg);
        return;
    }
    bool managed_stop = r->kind == TRAY_REQ_STOP && w->o.service.mode != TRAY_START_SPAWN;
    if (!w->conn && !managed_stop) {
        snprintf(e, sizeof e, "awqd is not running");
        post_done(w, r->kind, AWQ_ECLOSED, r->arg, e);
        return;
    }
    switch (r->kind) {
    case TRAY_REQ_STOP:
        set_busy(w, true);
        rc = tray_sys_service_stop(e, &w->o.service);
        if (rc == AWQ_EUNSUPPORTED) {
            rc = w->conn ? awq_shutdown(e, w->conn) : awq_seterr(e, AWQ_ECLOSED, "awqd is not running");
        }
        set_busy(w, false);
        if (!rc) snprintf(msg, sizeof msg, "awqd is stopping");
        w->next_poll_ns = 0;
        break;
    case TRAY_REQ_LOAD: {
        w->load_error[0] = 0;
        w->progress = 0;
        w->busy = true;
        tray_view v = w->last;
        v.state = TRAY_ST_LOADING;
        v.pct = 0;
        v.stage[0] = v.model[0] = v.device[0] = v.message[0] = 0;
        v.memory_bytes = 0;
        publish(w, v);
        rc = awq_load(e, w->conn, r->arg, on_progress, w);
        w->progress = -1;
        w->busy = false;
        if (rc && !conn_lost(rc)) snprintf(w->load_error, sizeof w->load_error, "%s", e);
        if (!rc) msgf(msg, sizeof msg, "loaded %s", r->arg);
        break;
    }
    case TRAY_REQ_UNLOAD:
        set_busy(w, true);
        rc = awq_unload(e, w->conn);
        set_busy(w, false);
        if (!rc) {
            w->load_error[0] = 0;
            snprintf(msg, sizeof msg, "model unloaded");
        }
        break;
    case TRAY_REQ_SET:
        rc = awq_settings_set(e, w->conn, r->arg, r->value);
        if (!rc) {
            /* the daemon applies live keys at once; say when the rest wait for a restart */
            msgf(msg, sizeof msg, "saved %s = %s%s", r->arg, r->value,
                     cfg_is_live(r->arg) ? "" : " (takes effect after awqd restarts)");
        }
        break;
    case TRAY_REQ_SETTINGS:
        rc = fetch_settings(w, e);
        if (!rc) return; /* the SETTINGS event is the answer */
        break;
    default:
        rc = awq_seterr(e, AWQ_EINVAL, "unknown request %d", (int)r->kind);
    }
    post_done(w, r->kind, rc, r->arg, rc ? e : msg);
    if (!rc && r->kind == TRAY_REQ_SET) { /* after the DONE: the dialog then shows what was saved */
        char e2[AWQ_ERR_LEN];
        if (fetch_settings(w, e2)) { /* the dialog keeps its values; a lost connection shows at the next poll */ }
    }
    if (rc && conn_lost(rc) && w->conn) disconnect(w);
    else if (w->conn) poll_status(w);
    w->next_poll_ns = plat_now_ns() + (uint64_t)w->o.poll_ms * 1000000u;
}

/* ------------------------------------------------------------ thread ---- */

static void *run(void *arg) {
    tray_worker *w = arg;
    plat_mutex_lock(&w->mu);
    while (!w->quit) {
        if (w->q_len) {
            tray_req *r = malloc(sizeof *r);
            if (!r) { /* no memory for a copy: wait and try again rather than lose it */
                plat_cond_timedwait(&w->cv, &w->mu, 100);
                continue;
            }
            *r = w->queue[w->q_head];
            w->q_head = (w->q_head + 1) % TRAY_QUEUE_MAX;
            w->q_len--;
            plat_mutex_unlock(&w->mu);
            handle(w, r);
            free(r);
            plat_mutex_lock(&w->mu);
            continue;
        }
        uint64_t now = plat_now_ns();
        if (!w->conn && now >= w->next_try_ns) {
            plat_mutex_unlock(&w->mu);
            bool ok = try_connect(w);
            now = plat_now_ns();
            if (ok) {
                w->backoff_ms = w->o.backoff_min_ms;
                w->next_poll_ns = now + (uint64_t)w->o.poll_ms * 1000000u;
            } else {
                w->next_try_ns = now + (uint64_t)w->backoff_ms * 1000000u;
                w->backoff_ms = w->backoff_ms * 2 > w->o.backoff_max_ms ? w->o.backoff_max_ms : w->backoff_ms * 2;
            }
            plat_mutex_lock(&w->mu);
            continue;
        }
        if (w->conn && now >= w->next_poll_ns) {
            plat_mutex_unlock(&w->mu);
            poll_status(w);
            w->next_poll_ns = plat_now_ns() + (uint64_t)w->o.poll_ms * 1000000u;
            plat_mutex_lock(&w->mu);
            continue;
        }
        uint64_t until = w->conn ? w->next_poll_ns : w->next_try_ns;
        unsigned ms = until > now ? (unsigned)((until - now + 999999) / 1000000u) : 1;
        plat_cond_timedwait(&w->cv, &w->mu, ms);
    }
    plat_mutex_unlock(&w->mu);
    awq_close(w->conn);
    w->conn = NULL;
    plat_mutex_lock(&w->mu);
    w->finished = true;
    plat_cond_broadcast(&w->cv);
    plat_mutex_unlock(&w->mu);
    return NULL;
}

/* ------------------------------------------------------------ create / free ---- */

tray_worker *tray_worker_create(char *err, const tray_worker_opts *o) {
    if (!o->post) {
        awq_seterr(err, AWQ_EINVAL, "tray worker: no post function");
        return NULL;
    }
    if (o->n_server_exes > EXES_MAX) {
        awq_seterr(err, AWQ_ERANGE, "tray worker: at most %d server names", EXES_MAX);
        return NULL;
    }
    tray_worker *w = calloc(1, sizeof *w);
    if (!w || !(w->queue = calloc(TRAY_QUEUE_MAX, sizeof *w->queue))) {
        free(w);
        awq_seterr(err, AWQ_ENOMEM, "out of memory");
        return NULL;
    }
    w->o = *o;
    if (!w->o.poll_ms) w->o.poll_ms = 1000;
    if (!w->o.backoff_min_ms) w->o.backoff_min_ms = 250;
    if (!w->o.backoff_max_ms) w->o.backoff_max_ms = 5000;
    if (w->o.backoff_max_ms < w->o.backoff_min_ms) w->o.backoff_max_ms = w->o.backoff_min_ms;
    if (!w->o.io_timeout_ms) w->o.io_timeout_ms = 600000;
    int rc = 0;
    if (o->socket_path) {
        if (strlen(o->socket_path) >= sizeof w->sock) rc = awq_seterr(err, AWQ_ETOOBIG, "socket path too long");
        else snprintf(w->sock, sizeof w->sock, "%s", o->socket_path);
    } else {
        rc = awq_default_socket_path(err, w->sock, sizeof w->sock);
    }
    if (!rc && ((o->key_path && strlen(o->key_path) >= sizeof w->key) ||
                (o->known_servers && strlen(o->known_servers) >= sizeof w->known)))
        rc = awq_seterr(err, AWQ_ETOOBIG, "key path too long");
    if (!rc) {
        snprintf(w->key, sizeof w->key, "%s", o->key_path ? o->key_path : "");
        snprintf(w->known, sizeof w->known, "%s", o->known_servers ? o->known_servers : "");
        if (o->server_exes && o->n_server_exes) {
            for (size_t i = 0; i < o->n_server_exes && !rc; i++) {
                if (strlen(o->server_exes[i]) >= sizeof w->exe_buf[i])
                    rc = awq_seterr(err, AWQ_ETOOBIG, "server name too long: %s", o->server_exes[i]);
                snprintf(w->exe_buf[i], sizeof w->exe_buf[i], "%s", o->server_exes[i]);
                w->exes[i] = w->exe_buf[i];
            }
            w->n_exes = o->n_server_exes;
        } else {
#ifdef _WIN32
            snprintf(w->exe_buf[0], sizeof w->exe_buf[0], "awqd.exe");
#else
            snprintf(w->exe_buf[0], sizeof w->exe_buf[0], "awqd");
#endif
            w->exes[0] = w->exe_buf[0];
            w->n_exes = 1;
        }
    }
    w->o.socket_path = w->sock;
    w->o.server_exes = w->exes;
    w->o.key_path = w->key;
    w->o.known_servers = w->known;
    w->progress = -1;
    w->backoff_ms = w->o.backoff_min_ms;
    if (rc) {
        free(w->queue);
        free(w);
        return NULL;
    }
    plat_mutex_init(&w->mu);
    plat_cond_init(&w->cv);
    if (plat_thread_create(&w->th, run, w) != 0) {
        awq_seterr(err, AWQ_ENOMEM, "cannot start the tray worker thread");
        plat_cond_destroy(&w->cv);
        plat_mutex_destroy(&w->mu);
        free(w->queue);
        free(w);
        return NULL;
    }
    return w;
}

int tray_worker_submit(char *err, tray_worker *w, const tray_req *r) {
    plat_mutex_lock(&w->mu);
    int rc = 0;
    if (w->q_len >= TRAY_QUEUE_MAX) {
        rc = awq_seterr(err, AWQ_EBUSY, "too many requests waiting (%d)", TRAY_QUEUE_MAX);
    } else {
        w->queue[(w->q_head + w->q_len) % TRAY_QUEUE_MAX] = *r;
        w->q_len++;
        plat_cond_signal(&w->cv);
    }
    plat_mutex_unlock(&w->mu);
    return rc;
}

void tray_worker_free(tray_worker *w) {
    if (!w) return;
    plat_mutex_lock(&w->mu);
    w->quit = true;
    plat_cond_broadcast(&w->cv);
    uint64_t end = plat_now_ns() + (uint64_t)QUIT_WAIT_MS * 1000000u;
    while (!w->finished) {
        uint64_t now = plat_now_ns();
        if (now >= end) break;
        plat_cond_timedwait(&w->cv, &w->mu, (unsigned)((end - now) / 1000000u) + 1);
    }
    bool done = w->finished;
    plat_mutex_unlock(&w->mu);
    if (!done) return; /* abandoned on purpose: see worker.h */
    plat_thread_join(&w->th);
    plat_cond_destroy(&w->cv);
    plat_mutex_destroy(&w->mu);
    free(w->queue);
    free(w);
}
