/* serve.c - start, run and drain the daemon; see serve.h and docs/daemon.md. */
#define _GNU_SOURCE /* getgrnam_r */
#include "serve.h"

#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "keys.h"
#include "log.h"
#include "service.h"

/* ------------------------------------------------------------ setup helpers ---- */

/* Every connection is a descriptor: lift the soft limit to the hard one so that
 * server.max_connections, not a default of 1024 descriptors, is what limits clients. */
static void raise_nofile(int64_t want) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    rlim_t need = (rlim_t)want + 64; /* listener, lock, pipes, model shards, log */
    if (rl.rlim_cur >= need) return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) awqd_warn("cannot raise the descriptor limit: %s", strerror(errno));
    if (rl.rlim_cur < need)
        awqd_warn("descriptor limit %llu is below server.max_connections + 64 = %llu; raise LimitNOFILE",
                  (unsigned long long)rl.rlim_cur, (unsigned long long)need);
}

/* server.socket_group: a group name or number; "" = -1. */
static int group_id(char *err, const char *g, int64_t *out) {
    *out = -1;
    if (!g[0]) return 0;
    char *end;
    errno = 0;
    long long v = strtoll(g, &end, 10);
    if (!errno && *end == 0 && v >= 0) {
        *out = v;
        return 0;
    }
    struct group gr, *res = NULL;
    char buf[4096];
    if (getgrnam_r(g, &gr, buf, sizeof buf, &res) != 0 || !res)
        return awq_seterr(err, AWQ_ENOTFOUND, "[server] socket_group: no group named '%s'", g);
    *out = res->gr_gid;
    return 0;
}

/* The state directory for default key files: $XDG_STATE_HOME/awqd, ~/.local/state/awqd, or
 * /var/lib/awqd for root. */
static int state_file(char *err, const char *name, char *out) {
    const char *x = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    int n;
    if (geteuid() == 0) n = snprintf(out, PLAT_PATH_MAX, "/var/lib/awqd/%s", name);
    else if (x && x[0] == '/') n = snprintf(out, PLAT_PATH_MAX, "%s/awqd/%s", x, name);
    else if (home && home[0] == '/') n = snprintf(out, PLAT_PATH_MAX, "%s/.local/state/awqd/%s", home, name);
    else return awq_seterr(err, AWQ_ENOTFOUND, "[security] server_key is empty and neither $XDG_STATE_HOME nor $HOME is set");
    if (n < 0 || n >= PLAT_PATH_MAX) return awq_seterr(err, AWQ_ETOOBIG, "state directory path too long");
    return 0;
}

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
    int rc = state_file(err, "server.key", key);
    if (rc) return rc;
    if (plat_is_file(key)) return 0;
    char dir[PLAT_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", key);
    *strrchr(dir, '/') = 0;
    if ((rc = plat_mkdirs(err, dir, 0700))) return rc;
    if (c->security.server_pub[0]) snprintf(pub, PLAT_PATH_MAX, "%s", c->security.server_pub);
    else if ((rc = state_file(err, "server.pub", pub))) return rc;
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

/* Wait up to ms for the signal pipe; returns the signal bits. */
static unsigned wait_signals(int ms) {
    struct pollfd p = {.fd = awqd_svc_signal_fd(), .events = POLLIN};
    if (p.fd >= 0 && poll(&p, 1, ms) < 0 && errno != EINTR) plat_sleep_ms((unsigned)ms);
    return awqd_svc_take_signals();
}

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
    if (awqd_log_open(err, c->log.file, c->log.level, c->log.log_prompts)) {
        fprintf(stderr, "awqd: %s\n", err);
        goto out;
    }
    awqd_info("awqd %s starting (settings: %s)", AWQD_VERSION, used[0] ? used : "built-in defaults");
    if (awqd_svc_signals_init(err)) goto fail;
    sig_ok = true;
    raise_nofile(c->server.max_connections);
    if (cfg_socket_path(err, c, sock) || awqd_svc_listen_fd(err, &listen_fd)) goto fail;
    int64_t gid;
    if (group_id(err, c->server.socket_group, &gid)) goto fail;
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
