/* core.c - the daemon core on the I/O thread: setup, the IPC server callbacks, and the answers
 * that need no model step (status, metrics, list, settings, shutdown). Requests that touch the
 * model go to the engine thread's queue (daemon/sched.c). See awqd.h. */
#define _POSIX_C_SOURCE 200809L
#include "awqd.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "models.h"
#include "service.h"

/* ------------------------------------------------------------ setup ---- */

int awqd_apply_overrides(char *err, cfg *c, const awqd_overrides *ov) {
    char num[32];
    int rc = 0;
    if (ov->socket && (rc = cfg_set(err, c, "server.socket", ov->socket))) return rc;
    if (ov->model && (rc = cfg_set(err, c, "model.path", ov->model))) return rc;
    if (ov->device && (rc = cfg_set(err, c, "model.device", ov->device))) return rc;
    if (ov->threads > 0) {
        snprintf(num, sizeof num, "%d", ov->threads);
        if ((rc = cfg_set(err, c, "model.threads", num))) return rc;
    }
    if (ov->ctx > 0) {
        snprintf(num, sizeof num, "%d", ov->ctx);
        if ((rc = cfg_set(err, c, "model.context", num))) return rc;
    }
    if (ov->log_level >= 0 && (rc = cfg_set(err, c, "log.level", awqd_log_level_name(ov->log_level)))) return rc;
    return 0;
}

awqd *awqd_create(char *err, const cfg *file, const char *cfg_path, const awqd_overrides *ov) {
    awqd *d = calloc(1, sizeof *d);
    if (!d) {
        awq_seterr(err, AWQ_ENOMEM, "out of memory");
        return NULL;
    }
    plat_mutex_init(&d->cfg_mu);
    plat_mutex_init(&d->qmu);
    plat_cond_init(&d->qcv);
    plat_mutex_init(&d->snap_mu);
    plat_mutex_init(&d->conn_mu);
    awqd_metrics_init(&d->metrics);
    d->ov = *ov;
    d->start_ns = plat_now_ns();
    snprintf(d->cfg_path, sizeof d->cfg_path, "%s", cfg_path ? cfg_path : "");
    d->file = malloc(sizeof *d->file);
    d->eff = malloc(sizeof *d->eff);
    if (!d->file || !d->eff) {
        awq_seterr(err, AWQ_ENOMEM, "out of memory");
        goto fail;
    }
    *d->file = *file;
    *d->eff = *file;
    if (awqd_apply_overrides(err, d->eff, ov)) goto fail;
    if (awqd_engine_create(err, d)) goto fail;
    return d;
fail:
    awqd_free(d);
    return NULL;
}

void awqd_free(awqd *d) {
    if (!d) return;
    awqd_engine_free(d);
    for (awqd_item *it = d->qhead, *nx; it; it = nx) {
        nx = it->next;
        if (it->m) ipc_msg_free(it->m);
        free(it->m);
        free(it);
    }
    free(d->file);
    free(d->eff);
    free(d->conns);
    plat_mutex_destroy(&d->cfg_mu);
    plat_mutex_destroy(&d->qmu);
    plat_cond_destroy(&d->qcv);
    plat_mutex_destroy(&d->snap_mu);
    plat_mutex_destroy(&d->conn_mu);
    free(d);
}

/* ------------------------------------------------------------ sending ---- */

void awqd_send(awqd *d, uint64_t conn, const ipc_msg *m) {
    if (m->type == IPC_T_ERROR) awqd_metric_add(&d->metrics.errors, 1);
    int rc = ipc_server_send(d->srv, conn, m);
    if (rc && rc != AWQ_ENOTFOUND) awqd_warn("send %s to connection %llu failed: %s", ipc_type_name(m->type),
                                             (unsigned long long)conn, awq_strerror(rc));
}

void awqd_send_error(awqd *d, uint64_t conn, uint32_t id, int code, const char *fmt, ...) {
    char text[AWQ_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    ipc_msg m;
    ipc_msg_init(&m, IPC_T_ERROR, id);
    m.u.error.code = code;
    m.u.error.message = ipc_cstr(text);
    awqd_debug("request %u on connection %llu: %s: %s", id, (unsigned long long)conn, awq_errname(code), text);
    awqd_send(d, conn, &m);
}

void awqd_push(awqd *d, awqd_item *it) {
    it->next = NULL;
    plat_mutex_lock(&d->qmu);
    if (d->qtail) d->qtail->next = it;
    else d->qhead = it;
    d->qtail = it;
    plat_cond_signal(&d->qcv);
    plat_mutex_unlock(&d->qmu);
}

/* Push a control item; a failed allocation is logged (the item is small; the request it was for
 * then ends by its connection closing or the client's own timeout). */
static void push_ctl(awqd *d, int kind, uint64_t conn, uint32_t target) {
    awqd_item *it = calloc(1, sizeof *it);
    if (!it) {
        awqd_err("out of memory queueing a control item for connection %llu", (unsigned long long)conn);
        return;
    }
    it->kind = kind;
    it->conn = conn;
    it->target = target;
    it->t_arrive = plat_now_ns();
    awqd_push(d, it);
}

/* ------------------------------------------------------------ connections ---- */

static void conn_add(awqd *d, uint64_t id) {
    plat_mutex_lock(&d->conn_mu);
    if (d->n_conns == d->cap_conns) {
        size_t nc = d->cap_conns ? d->cap_conns * 2 : 64;
        uint64_t *n = realloc(d->conns, nc * sizeof *n);
        if (n) d->conns = n, d->cap_conns = nc;
    }
    if (d->n_conns < d->cap_conns) d->conns[d->n_conns++] = id;
    plat_mutex_unlock(&d->conn_mu);
}

static void conn_del(awqd *d, uint64_t id) {
    plat_mutex_lock(&d->conn_mu);
    for (size_t i = 0; i < d->n_conns; i++)
        if (d->conns[i] == id) {
            d->conns[i] = d->conns[--d->n_conns];
            break;
        }
    plat_mutex_unlock(&d->conn_mu);
}

size_t awqd_conn_ids(awqd *d, uint64_t **ids) {
    plat_mutex_lock(&d->conn_mu);
    size_t n = d->n_conns;
    *ids = malloc((n ? n : 1) * sizeof **ids);
    if (*ids && n) memcpy(*ids, d->conns, n * sizeof **ids);
    else n = 0;
    plat_mutex_unlock(&d->conn_mu);
    return n;
}

/* ------------------------------------------------------------ callbacks ---- */

static bool uid_allowed(const cfg *c, uint32_t uid, uint32_t gid) {
    const cfg_ids *u = &c->server.allow_uids, *g = &c->server.allow_gids;
    if (!u->n && !g->n) return uid == awqd_svc_uid() || uid == 0;
    for (size_t i = 0; i < u->n; i++)
        if (u->id[i] == uid) return true;
    for (size_t i = 0; i < g->n; i++)
        if (g->id[i] == gid) return true;
    return false;
}

/* The server checked the peer against the lists of the start; these checks apply the live
 * values (a reload may narrow the lists or lower max_connections). */
static int on_hello(void *user, const ipc_conn_info *ci, const ipc_msg *hello, ipc_msg *reply) {
    awqd *d = user;
    (void)hello;
    plat_mutex_lock(&d->cfg_mu);
    bool ok = uid_allowed(d->eff, ci->uid, ci->gid);
    int64_t maxc = d->eff->server.max_connections, qd = d->eff->server.queue_depth,
            mt = d->eff->generation.max_tokens;
    plat_mutex_unlock(&d->cfg_mu);
    if (!ok) {
        awqd_info("refused connection %llu: uid %u is not in the allow list", (unsigned long long)ci->conn, ci->uid);
        return AWQ_EPERM;
    }
    if ((int64_t)ipc_server_conn_count(d->srv) > maxc) return AWQ_EBUSY;
    /* valid until return, which is all the server asks */
    static _Thread_local char model[256];
    static _Thread_local ipc_kv lim[8];
    plat_mutex_lock(&d->snap_mu);
    snprintf(model, sizeof model, "%s", d->snap.loaded ? d->snap.model_name : "");
    int ctx = d->snap.ctx;
    plat_mutex_unlock(&d->snap_mu);
    uint32_t n = reply->u.hello.n_limits < 4 ? reply->u.hello.n_limits : 4;
    for (uint32_t i = 0; i < n; i++) lim[i] = reply->u.hello.limits[i];
    lim[n++] = (ipc_kv){.key = ipc_cstr("queue_depth"), .kind = IPC_KV_INT, .i = qd};
    lim[n++] = (ipc_kv){.key = ipc_cstr("max_tokens"), .kind = IPC_KV_INT, .i = mt};
    lim[n++] = (ipc_kv){.key = ipc_cstr("context"), .kind = IPC_KV_INT, .i = ctx};
    reply->u.hello.limits = lim;
    reply->u.hello.n_limits = n;
    reply->u.hello.model = ipc_cstr(model);
    conn_add(d, ci->conn);
    awqd_debug("connection %llu: uid %u pid %lld client \"%s\"%s", (unsigned long long)ci->conn, ci->uid,
               (long long)ci->pid, ci->client_name, ci->encrypted ? " (encrypted)" : "");
    return 0;
}

static void on_pause(void *user, uint64_t conn, bool paused) {
    push_ctl(user, paused ? AWQD_IT_PAUSE : AWQD_IT_RESUME, conn, 0);
}

static void on_close(void *user, uint64_t conn) {
    awqd *d = user;
    conn_del(d, conn);
    push_ctl(d, AWQD_IT_CLOSE, conn, 0);
}

/* ------------------------------------------------------------ status ---- */

static void do_status(awqd *d, uint64_t conn, uint32_t id) {
    awqd_snap s;
    plat_mutex_lock(&d->snap_mu);
    s = d->snap;
    plat_mutex_unlock(&d->snap_mu);
    plat_mutex_lock(&d->cfg_mu);
    const cfg *c = d->eff;
    int64_t qd = c->server.queue_depth, maxc = c->server.max_connections, mif = c->server.max_inflight_per_conn,
            mfb = c->server.max_frame_bytes, mt = c->generation.max_tokens, ms = c->model.max_sequences,
            ka = c->model.keep_alive, ctxset = c->model.context;
    int enc = c->security.encryption;
    plat_mutex_unlock(&d->cfg_mu);
    static const char *const encs[] = {"off", "on", "required"};
    ipc_kv kv[40];
    uint32_t n = 0;
#define KS(k, v) kv[n++] = (ipc_kv){.key = ipc_cstr(k), .kind = IPC_KV_STR, .s = ipc_cstr(v)}
#define KI(k, v) kv[n++] = (ipc_kv){.key = ipc_cstr(k), .kind = IPC_KV_INT, .i = (int64_t)(v)}
#define KB(k, v) kv[n++] = (ipc_kv){.key = ipc_cstr(k), .kind = IPC_KV_BOOL, .b = (v)}
    KS("version", AWQD_VERSION);
    KI("uptime_s", (plat_now_ns() - d->start_ns) / 1000000000ull);
    KI("pid", getpid());
    KB("loaded", s.loaded);
    KB("loading", s.loading);
    KS("load_stage", s.load_stage);
    KS("model", s.loaded ? s.model_name : "");
    KS("model_path", s.loaded ? s.model_path : "");
    KS("device", s.loaded ? s.backend : "");
    KI("context", s.ctx);
    KI("vocab", s.vocab);
    KI("memory_weights_bytes", s.weights_bytes);
    KI("memory_kv_bytes", s.kv_bytes);
    KI("queue_depth", atomic_load(&d->n_pending));
    KI("running", s.running);
    KI("kv_slots_used", s.kv_used);
    KI("kv_slots_cached", s.kv_cached);
    KI("kv_slots_total", s.kv_total);
    KI("connections", ipc_server_conn_count(d->srv));
    KB("draining", atomic_load(&d->draining));
    KS("encryption", encs[enc >= 0 && enc <= 2 ? enc : 0]);
    KS("socket", ipc_server_path(d->srv));
    KS("config", d->cfg_path);
    KI("limit_max_connections", maxc);
    KI("limit_queue_depth", qd);
    KI("limit_max_inflight_per_conn", mif);
    KI("limit_max_frame_bytes", mfb);
    KI("limit_max_tokens", mt);
    KI("limit_max_sequences", ms);
    KI("limit_context", ctxset);
    KI("keep_alive_s", ka);
    KI("tokens_generated_total", atomic_load(&d->metrics.tokens_generated));
#undef KS
#undef KI
#undef KB
    ipc_msg m;
    ipc_msg_init(&m, IPC_T_STATUS_R, id);
    m.u.kvs.kv = kv;
    m.u.kvs.n_kv = n;
    awqd_send(d, conn, &m);
}

static void do_metrics(awqd *d, uint64_t conn, uint32_t id) {
    awqd_gauges g = {0};
    plat_mutex_lock(&d->snap_mu);
    g.running = d->snap.running;
    g.kv_used = d->snap.kv_used;
    g.kv_cached = d->snap.kv_cached;
    g.kv_total = d->snap.kv_total;
    plat_mutex_unlock(&d->snap_mu);
    g.queue_depth = atomic_load(&d->n_pending);
    g.connections = ipc_server_conn_count(d->srv);
    awq_buf b = {0};
    if (awqd_metrics_render(&d->metrics, &g, &b)) {
        awq_buf_free(&b);
        awqd_send_error(d, conn, id, AWQ_ENOMEM, "metrics: out of memory");
        return;
    }
    ipc_msg m;
    ipc_msg_init(&m, IPC_T_METRICS_R, id);
    m.u.text.s = b.data;
    m.u.text.len = (uint32_t)b.len;
    awqd_send(d, conn, &m);
    awq_buf_free(&b);
}

static void do_list(awqd *d, uint64_t conn, uint32_t id) {
    cfg_paths *roots = malloc(sizeof *roots);
    char mp[CFG_VALUE_MAX], loaded[PLAT_PATH_MAX], err[AWQ_ERR_LEN];
    if (!roots) {
        awqd_send_error(d, conn, id, AWQ_ENOMEM, "list: out of memory");
        return;
    }
    plat_mutex_lock(&d->cfg_mu);
    *roots = d->eff->model.roots;
    memcpy(mp, d->eff->model.path, sizeof mp);
    plat_mutex_unlock(&d->cfg_mu);
    plat_mutex_lock(&d->snap_mu);
    snprintf(loaded, sizeof loaded, "%s", d->snap.loaded ? d->snap.model_path : "");
    plat_mutex_unlock(&d->snap_mu);
    awqd_model_list l;
    int rc = awqd_model_list_make(err, roots, mp, &l);
    free(roots);
    if (rc) {
        awqd_send_error(d, conn, id, rc, "%s", err);
        return;
    }
    ipc_model_info *mi = calloc(l.n ? l.n : 1, sizeof *mi);
    if (!mi) {
        awqd_model_list_free(&l);
        awqd_send_error(d, conn, id, AWQ_ENOMEM, "list: out of memory");
        return;
    }
    for (size_t i = 0; i < l.n; i++) {
        mi[i].name = ipc_cstr(l.e[i].name);
        mi[i].path = ipc_cstr(l.e[i].path);
        mi[i].size = l.e[i].size;
        mi[i].loaded = loaded[0] && !strcmp(loaded, l.e[i].path);
    }
    ipc_msg m;
    ipc_msg_init(&m, IPC_T_LIST_R, id);
    m.u.models.models = mi;
    m.u.models.n_models = (uint32_t)l.n;
    awqd_send(d, conn, &m);
    free(mi);
    awqd_model_list_free(&l);
}

/* ------------------------------------------------------------ settings ---- */

/* Push the live log settings of c into the logger. */
static void apply_log(const cfg *c) {
    awqd_log_set_level(c->log.level);
    awqd_log_set_prompts(c->log.log_prompts);
}

static void do_settings_get(awqd *d, uint64_t conn, uint32_t id, const ipc_msg *req) {
    size_t nk;
    const cfg_keyinfo *keys = cfg_keys(&nk);
    const char *want = req->u.setting.key.s;
    char err[AWQ_ERR_LEN];
    size_t cap = want ? 1 : nk;
    ipc_kv *kv = calloc(cap, sizeof *kv);
    char(*names)[CFG_KEY_MAX] = calloc(cap, sizeof *names);
    char(*vals)[CFG_VALUE_MAX * 2] = calloc(cap, sizeof *vals);
    if (!kv || !names || !vals) {
        awqd_send_error(d, conn, id, AWQ_ENOMEM, "settings_get: out of memory");
        goto out;
    }
    uint32_t n = 0;
    int rc = 0;
    plat_mutex_lock(&d->cfg_mu);
    for (size_t i = 0; i < nk && !rc; i++) {
        snprintf(names[n], CFG_KEY_MAX, "%s.%s", keys[i].section, keys[i].name);
        if (want && strcmp(want, names[n])) continue;
        rc = cfg_get(err, d->file, names[n], vals[n], sizeof vals[n]);
        kv[n] = (ipc_kv){.key = ipc_cstr(names[n]), .kind = IPC_KV_STR, .s = ipc_cstr(vals[n])};
        n++;
        if (want) break;
    }
    plat_mutex_unlock(&d->cfg_mu);
    if (rc) {
        awqd_send_error(d, conn, id, rc, "settings_get: %s", err);
    } else if (want && !n) {
        awqd_send_error(d, conn, id, AWQ_ENOTFOUND, "settings_get: unknown setting '%s' (expected section.key)", want);
    } else {
        ipc_msg m;
        ipc_msg_init(&m, IPC_T_SETTINGS_R, id);
        m.u.kvs.kv = kv;
        m.u.kvs.n_kv = n;
        awqd_send(d, conn, &m);
    }
out:
    free(kv);
    free(names);
    free(vals);
}

/* settings_set: validate, save the file atomically (cfg_save), apply at once when the key is
 * live. Answered with settings_result {key: value, "applied": "live" | "restart"}. */
static void do_settings_set(awqd *d, uint64_t conn, uint32_t id, const ipc_msg *req) {
    const char *key = req->u.setting.key.s, *val = req->u.setting.value.s;
    char err[AWQ_ERR_LEN];
    if (!key || !val) {
        awqd_send_error(d, conn, id, AWQ_EINVAL, "settings_set: both \"key\" and \"value\" are required");
        return;
    }
    if (!d->cfg_path[0]) {
        awqd_send_error(d, conn, id, AWQ_ESTATE,
                        "settings_set: awqd runs on built-in defaults (no settings file); start it with --config "
                        "FILE to change settings");
        return;
    }
    cfg *next = malloc(sizeof *next);
    if (!next) {
        awqd_send_error(d, conn, id, AWQ_ENOMEM, "settings_set: out of memory");
        return;
    }
    plat_mutex_lock(&d->cfg_mu);
    *next = *d->file;
    int rc = cfg_set(err, next, key, val);
    if (rc) {
        plat_mutex_unlock(&d->cfg_mu);
        awqd_send_error(d, conn, id, rc, "settings_set: %s", err);
        free(next);
        return;
    }
    if ((rc = cfg_save(err, next, d->cfg_path))) {
        plat_mutex_unlock(&d->cfg_mu);
        awqd_send_error(d, conn, id, rc, "settings_set: %s", err);
        free(next);
        return;
    }
    *d->file = *next;
    bool live = cfg_is_live(key);
    if (live) {
        /* cannot fail: the same value was just accepted for the same key */
        if (cfg_set(err, d->eff, key, val)) awqd_err("settings_set: applying %s: %s", key, err);
        apply_log(d->eff);
    }
    char shown[CFG_VALUE_MAX];
    if (cfg_get(NULL, d->file, key, shown, sizeof shown)) snprintf(shown, sizeof shown, "%s", val);
    plat_mutex_unlock(&d->cfg_mu);
    free(next);
    awqd_info("setting %s changed (saved to %s)%s", key, d->cfg_path, live ? "" : "; takes effect after a restart");
    ipc_kv kv[2] = {{.key = ipc_cstr(key), .kind = IPC_KV_STR, .s = ipc_cstr(shown)},
                    {.key = ipc_cstr("applied"), .kind = IPC_KV_STR, .s = ipc_cstr(live ? "live" : "restart")}};
    ipc_msg m;
    ipc_msg_init(&m, IPC_T_SETTINGS_R, id);
    m.u.kvs.kv = kv;
    m.u.kvs.n_kv = 2;
    awqd_send(d, conn, &m);
}

void awqd_reload(awqd *d) {
    char err[AWQ_ERR_LEN];
    if (!d->cfg_path[0]) {
        awqd_info("reload: no settings file (built-in defaults); nothing to reload");
        return;
    }
    cfg *next = malloc(sizeof *next), *enext = malloc(sizeof *enext);
    awq_buf restart = {0};
    if (!next || !enext) {
        awqd_err("reload: out of memory");
        goto out;
    }
    cfg_defaults(next);
    int rc = cfg_load_file(err, d->cfg_path, next);
    if (rc) {
        awqd_err("reload: %s; keeping the current settings", err);
        goto out;
    }
    *enext = *next;
    if (awqd_apply_overrides(err, enext, &d->ov)) {
        awqd_err("reload: %s; keeping the current settings", err);
        goto out;
    }
    plat_mutex_lock(&d->cfg_mu);
    int changed = cfg_merge_live(d->eff, enext, &restart);
    *d->file = *next;
    apply_log(d->eff);
    plat_mutex_unlock(&d->cfg_mu);
    if (changed < 0) awqd_err("reload: out of memory listing the changed keys");
    else awqd_info("reload: %s: %d live setting(s) changed", d->cfg_path, changed);
    if (restart.len) awqd_warn("reload: changed, takes effect after a restart: %s", restart.data);
out:
    awq_buf_free(&restart);
    free(next);
    free(enext);
}

/* ------------------------------------------------------------ requests ---- */

/* Hand a request to the engine thread: a deep copy (encode + strict decode, so the copy owns
 * its strings in one arena) behind the queue_depth bound. */
static void enqueue_msg(awqd *d, uint64_t conn, const ipc_msg *req) {
    plat_mutex_lock(&d->cfg_mu);
    uint32_t limit = (uint32_t)d->eff->server.queue_depth;
    plat_mutex_unlock(&d->cfg_mu);
    if (atomic_load(&d->n_pending) >= limit) {
        awqd_metric_add(&d->metrics.busy_rejected, 1);
        awqd_send_error(d, conn, req->id, AWQ_EBUSY, "busy: %u requests are already queued (server.queue_depth = %u)",
                        limit, limit);
        return;
    }
    char err[AWQ_ERR_LEN] = "";
    awq_buf b = {0};
    awqd_item *it = calloc(1, sizeof *it);
    ipc_msg *m = calloc(1, sizeof *m);
    int rc = it && m ? ipc_msg_encode(err, req, &b) : AWQ_ENOMEM;
    if (!rc) {
        rc = ipc_msg_decode(err, (const uint8_t *)b.data, b.len, m);
        if (rc) ipc_msg_free(m);
    }
    awq_buf_free(&b);
    if (rc) {
        free(it);
        free(m);
        awqd_send_error(d, conn, req->id, rc == AWQ_ENOMEM ? rc : AWQ_EINTERNAL, "%s: cannot queue the request: %s",
                        ipc_type_name(req->type), rc == AWQ_ENOMEM ? "out of memory" : err);
        return;
    }
    it->kind = AWQD_IT_MSG;
    it->conn = conn;
    it->m = m;
    it->t_arrive = plat_now_ns();
    atomic_fetch_add(&d->n_pending, 1);
    awqd_push(d, it);
}

static void on_request(void *user, uint64_t conn, const ipc_msg *req) {
    awqd *d = user;
    awqd_metrics_count_request(&d->metrics, req->type);
    switch (req->type) {
    case IPC_T_CANCEL:
        push_ctl(d, AWQD_IT_CANCEL, conn, req->u.target);
        return;
    case IPC_T_STATUS:
        do_status(d, conn, req->id);
        return;
    case IPC_T_METRICS:
        do_metrics(d, conn, req->id);
        return;
    case IPC_T_LIST:
        do_list(d, conn, req->id);
        return;
    case IPC_T_SETTINGS_GET:
        do_settings_get(d, conn, req->id, req);
        return;
    case IPC_T_SETTINGS_SET:
        do_settings_set(d, conn, req->id, req);
        return;
    case IPC_T_SHUTDOWN: {
        awqd_info("shutdown requested by connection %llu", (unsigned long long)conn);
        atomic_store(&d->draining, true);
        atomic_store(&d->shutdown_asked, true);
        ipc_msg m;
        ipc_msg_init(&m, IPC_T_OK, req->id);
        awqd_send(d, conn, &m);
        return;
    }
    case IPC_T_GENERATE:
    case IPC_T_LOAD:
        if (atomic_load(&d->draining)) {
            awqd_send_error(d, conn, req->id, AWQ_ESHUTDOWN, "%s: the server is shutting down",
                            ipc_type_name(req->type));
            return;
        }
        enqueue_msg(d, conn, req);
        return;
    case IPC_T_TOKENIZE:
    case IPC_T_DETOKENIZE:
    case IPC_T_TEMPLATE:
    case IPC_T_UNLOAD:
        enqueue_msg(d, conn, req);
        return;
    default:
        awqd_send_error(d, conn, req->id, AWQ_EUNSUPPORTED, "%s: not supported by this server",
                        ipc_type_name(req->type) ? ipc_type_name(req->type) : "?");
    }
}

ipc_server_cb awqd_callbacks(void) {
    return (ipc_server_cb){.on_hello = on_hello, .on_request = on_request, .on_pause = on_pause, .on_close = on_close};
}
