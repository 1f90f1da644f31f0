/* serve.c - start, run and drain the daemon; see serve.h and docs/daemon.md. The OS pieces
 * (signals or console/service controls, descriptor limits, groups, the state directory, the
 * lock) are service.h functions: service_linux.c, service_win.c. */
#include "serve.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "keys.h"
#include "log.h"
#include "service.h"

/* ------------------------------------------------------------ setup helpers ---- */

/* Key paths for encryption = on/required: the configured ones, or a server key created on
 * first start in the state directory. */
static int key_paths(char *err, const cfg *c, char *key, char *pub) {
    if (!c->security.authorized_keys[0])
        return awq_seterr(err, AWQ_EINVAL,
                          "[security] encryption = %s needs authorized_keys (a file of allowed client public keys)",
                          c->security.encryption == CFG_ENC_REQUIRED ? "required" : "on");
    if (c->security.server_key[0]) {
        snprintf(key, PLAT_PATH_MAX, "%s", c->security.server_key);
        return 0;
    }
    int rc = awqd_svc_state_file(err, "server.key", key);
    if (rc) return rc;
    if (plat_is_file(key)) return 0;
    char dir[PLAT_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", key);
    char *sep = strrchr(dir, '/');
#ifdef _WIN32
    char *bs = strrchr(dir, '\\'); /* %LOCALAPPDATA%\awqd\server.key */
    if (bs && (!sep || bs > sep)) sep = bs;
#endif
    if (sep) *sep = 0;
    if ((rc = plat_mkdirs(err, dir, 0700))) return rc;
    if (c->security.server_pub[0]) snprintf(pub, PLAT_PATH_MAX, "%s", c->security.server_pub);
    else if ((rc = awqd_svc_state_file(err, "server.pub", pub))) return rc;
    if ((rc = ipc_keygen(err, key, pub))) return rc;
    awqd_info("created the server key %s (public key %s)", key, pub);
    return 0;
}

/* ------------------------------------------------------------ threads ---- */

typedef struct io_ctx {
    awqd *d;
    int rc;
    char err[AWQ_ERR_LEN];
    _Atomic bool done;
} io_ctx;

static void *io_main(void *arg) {
    io_ctx *x = arg;
    x->rc = ipc_server_run(x->err, x->d->srv);
    atomic_store(&x->done, true);
    return NULL;
}

static void notify(const char *state) {
    char err[AWQ_ERR_LEN];
    if (awqd_svc_notify(err, state) < 0) awqd_warn("sd_notify: %s", err);
}

/* Wait up to ms for a signal (or console / service control); returns the signal bits. */
static unsigned wait_signals(int ms) { return awqd_svc_wait(ms); }

static void push_kind(awqd *d, int kind) {
    awqd_item *it = calloc(1, sizeof *it);
    if (!it) {
        awqd_err("out of memory signalling the engine thread");
        return;
    }
    it->kind = kind;
    awqd_push(d, it);
}

/* Drain: no new generate or load; running generations finish (or are cancelled at the
 * timeout or on a second signal); then every connection is closed once its output is
 * written. */
static void drain(awqd *d, io_ctx *io) {
    atomic_store(&d->draining, true);
    notify("STOPPING=1");
    plat_mutex_lock(&d->snap_mu);
    uint32_t running = d->snap.running;
    plat_mutex_unlock(&d->snap_mu);
    awqd_info("draining: refusing new generations, waiting up to %d s for %u running", AWQD_DRAIN_TIMEOUT_S, running);
    uint64_t deadline = plat_now_ns() + (uint64_t)AWQD_DRAIN_TIMEOUT_S * 1000000000ull;
    bool forced = false;
    while (!awqd_engine_idle(d) && !atomic_load(&io->done)) {
        unsigned sig = wait_signals(50);
        if (!forced && ((sig & (AWQD_SVC_SIG_FORCE | AWQD_SVC_SIG_DRAIN)) || plat_now_ns() > deadline)) {
            awqd_warn("drain: %s; cancelling what still runs", plat_now_ns() > deadline ? "timed out" : "signalled again");
            push_kind(d, AWQD_IT_FORCE);
            forced = true;
            deadline = plat_now_ns() + 5000000000ull;
        } else if (forced && plat_now_ns() > deadline) {
            awqd_err("drain: the engine did not stop in time");
            break;
        }
    }
    uint64_t *ids = NULL;
    size_t n = awqd_conn_ids(d, &ids);
    for (size_t i = 0; i < n; i++) ipc_server_close_conn(d->srv, ids[i]);
    free(ids);
    uint64_t until = plat_now_ns() + 2000000000ull;
    while (ipc_server_conn_count(d->srv) && plat_now_ns() < until && !atomic_load(&io->done)) plat_sleep_ms(10);
}

/* ------------------------------------------------------------ serve ---- */

int awqd_serve(const char *config, const awqd_overrides *ov) {
    char err[AWQ_ERR_LEN] = "", used[PLAT_PATH_MAX] = "", sock[PLAT_PATH_MAX], key[PLAT_PATH_MAX],
                         pub[PLAT_PATH_MAX];
    int status = 1, lock_fd = -1, listen_fd = -1;
    bool io_started = false, eng_started = false, sig_ok = false;
    plat_thread io_thr, eng_thr;
    io_ctx io = {0};
    awqd *d = NULL;
    cfg *file = malloc(sizeof *file);
    if (!file) {
        fprintf(stderr, "awqd: out of memory\n");
        return 1;
    }
    if (cfg_load(err, config, file, used)) {
        fprintf(stderr, "awqd: %s\n", err);
        goto out;
    }
    if (!(d = awqd_create(err, file, used, ov))) {
        fprintf(stderr, "awqd: %s\n", err);
        goto out;
    }
    const cfg *c = d->eff; /* only this thread changes it before the threads start */
    char logpath[PLAT_PATH_MAX];
    const char *logf = c->log.file;
    if (!logf[0] && awqd_svc_default_log(logpath)) logf = logpath; /* a Windows service has no console */
    if (awqd_log_open(err, logf, c->log.level, c->log.log_prompts)) {
        fprintf(stderr, "awqd: %s\n", err);
        goto out;
    }
    awqd_info("awqd %s starting (settings: %s)", AWQD_VERSION, used[0] ? used : "built-in defaults");
    if (awqd_svc_signals_init(err)) goto fail;
    sig_ok = true;
    awqd_svc_raise_nofile(c->server.max_connections);
    if (cfg_socket_path(err, c, sock) || awqd_svc_listen_fd(err, &listen_fd)) goto fail;
    int64_t gid;
    if (awqd_svc_group_id(err, c->server.socket_group, &gid)) goto fail;
    if (listen_fd < 0) {
        /* the lock lives beside the socket, so its private directory must exist first */
        char dir[PLAT_PATH_MAX];
        snprintf(dir, sizeof dir, "%s", sock);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = 0;
            if (!plat_is_dir(dir) && plat_mkdirs(err, dir, gid >= 0 ? 0710 : 0700)) goto fail;
        }
    }
    int rc = awqd_svc_lock(err, sock, &lock_fd);
    if (rc) {
        if (rc == AWQ_EEXIST) {
            char e2[AWQ_ERR_LEN + PLAT_PATH_MAX + 64];
            snprintf(e2, sizeof e2, "another awqd is already serving %s: %s", sock, err);
            snprintf(err, AWQ_ERR_LEN, "%.*s", AWQ_ERR_LEN - 1, e2);
        }
        goto fail;
    }
    key[0] = pub[0] = 0;
    if (c->security.encryption != CFG_ENC_OFF && key_paths(err, c, key, pub)) goto fail;
    static const ipc_enc_mode encs[] = {IPC_ENC_OFF, IPC_ENC_ON, IPC_ENC_REQUIRED};
    char version[64];
    snprintf(version, sizeof version, "awqd %s", AWQD_VERSION);
    ipc_server_opts so = {
        .path = listen_fd >= 0 ? NULL : sock,
        .listen_fd = listen_fd,
        .group = gid,
        .pipe_group = c->server.socket_group[0] ? c->server.socket_group : NULL, /* Windows only */
        .max_conns = (uint32_t)c->server.max_connections,
        .max_frame = (uint32_t)c->server.max_frame_bytes,
        .max_inflight = (uint32_t)c->server.max_inflight_per_conn,
        .allow_uids = c->server.allow_uids.id,
        .n_allow_uids = c->server.allow_uids.n,
        .allow_gids = c->server.allow_gids.id,
        .n_allow_gids = c->server.allow_gids.n,
        .enc = encs[c->security.encryption >= 0 && c->security.encryption <= 2 ? c->security.encryption : 0],
        .key_path = key[0] ? key : NULL,
        .authorized_keys = c->security.authorized_keys[0] ? c->security.authorized_keys : NULL,
        .version = version,
        .cb = awqd_callbacks(),
        .user = d,
    };
    if (!(d->srv = ipc_server_create(err, &so))) goto fail;
    awqd_info("listening on %s%s (max %lld connections, encryption %s)", ipc_server_path(d->srv),
              listen_fd >= 0 ? " (socket activation)" : "", (long long)c->server.max_connections,
              c->security.encryption == CFG_ENC_OFF ? "off" : c->security.encryption == CFG_ENC_ON ? "on" : "required");
    io.d = d;
    if (plat_thread_create(&io_thr, io_main, &io)) {
        awq_seterr(err, AWQ_ENOMEM, "cannot start the I/O thread");
        goto fail;
    }
    io_started = true;
    if (plat_thread_create(&eng_thr, awqd_engine_main, d)) {
        awq_seterr(err, AWQ_ENOMEM, "cannot start the engine thread");
        goto fail;
    }
    eng_started = true;
    /* ready once the preload (if any) is done: a client started after us finds the model */
    bool drain_now = false;
    while (!atomic_load(&d->preload_done) && !atomic_load(&io.done)) {
        if (wait_signals(50) & (AWQD_SVC_SIG_DRAIN | AWQD_SVC_SIG_FORCE)) {
            drain_now = true; /* the preload finishes first: the engine thread cannot be interrupted mid-load */
        }
    }
    notify("READY=1");
    awqd_info("ready");
    while (!drain_now && !atomic_load(&io.done)) {
        unsigned sig = wait_signals(200);
        if (sig & AWQD_SVC_SIG_RELOAD) {
            notify("RELOADING=1");
            awqd_info("SIGHUP: reloading %s", d->cfg_path[0] ? d->cfg_path : "(no settings file)");
            awqd_reload(d);
            notify("READY=1");
        }
        if (sig & (AWQD_SVC_SIG_DRAIN | AWQD_SVC_SIG_FORCE)) {
            awqd_info("signal: draining");
            drain_now = true;
        }
        if (atomic_load(&d->shutdown_asked)) drain_now = true;
    }
    if (atomic_load(&io.done)) {
        awq_seterr(err, io.rc ? io.rc : AWQ_EINTERNAL, "the I/O loop stopped: %s", io.err);
        goto fail;
    }
    drain(d, &io);
    status = 0;
    goto stop;
fail:
    awqd_err("%s", err);
    fprintf(stderr, "awqd: %s\n", err);
    status = 1;
stop:
    if (io_started) {
        ipc_server_stop(d->srv);
        plat_thread_join(&io_thr);
    }
    if (eng_started) {
        push_kind(d, AWQD_IT_EXIT);
        plat_thread_join(&eng_thr);
    }
    if (d) {
        ipc_server_free(d->srv);
        d->srv = NULL;
    }
    awqd_svc_unlock(lock_fd);
    if (sig_ok) awqd_svc_signals_free();
    if (status == 0) awqd_info("stopped");
    awqd_log_close();
out:
    awqd_free(d);
    free(file);
    return status;
}
