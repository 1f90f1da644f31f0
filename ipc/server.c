/* server.c - the IPC server: connections, handshake, protocol rules, fair I/O; see server.h. */
#define _POSIX_C_SOURCE 200809L
#include "server.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channel.h"
#include "frame.h"
#include "loop.h"
#include "plat.h"
#include "transport.h"

/* A connection must finish the handshake and hello within this time, or it is closed: an idle
 * socket that never speaks must not hold a connection slot for ever. */
#define HELLO_TIMEOUT_MS 10000
#define ACCEPT_BURST 64

enum { ST_FIRST, ST_HS3, ST_HELLO, ST_READY };

typedef struct conn {
    uint64_t id;
    ipc_sock *sock;
    int state;
    bool closing; /* close once the output is written; read nothing more */
    bool dead;    /* closed: freed at the end of the loop iteration, never mid-dispatch */
    bool paused;
    bool helloed;
    bool in_dirty;
    unsigned watch;
    uint64_t born_ns;
    ipc_frame_dec *dec;
    awq_buf out;    /* (out.len) bytes of frames, written from out_off */
    size_t out_off;
    ipc_hs *hs;
    ipc_chan *chan;
    size_t backlog;     /* bytes queued for it + not yet written; guarded by qmu */
    uint32_t *inflight; /* (max_inflight) request ids */
    uint32_t n_inflight;
    ipc_conn_info info;
    struct conn *next_dirty, *next_dead;
} conn;

typedef struct qitem {
    struct qitem *next;
    uint64_t conn;
    bool close;
    ipc_type type;
    uint32_t id;
    char *data;
    size_t len;
} qitem;

struct ipc_server {
    ipc_server_opts o;
    uint32_t *allow_uids, *allow_gids;
    char *version;
    ipc_listener *lis;
    ipc_loop *loop;
    ipc_keypair *kp;
    ipc_authkeys *auth;
    conn **tab; /* open-addressing hash of live connections by id; changed on the loop thread
                 * under qmu, so other threads may look up under qmu */
    size_t tab_cap;
    uint32_t n_conns;
    _Atomic uint32_t n_conns_pub;
    uint64_t next_id;
    plat_mutex qmu;
    qitem *qhead, *qtail;
    atomic_int stop;
    conn *dirty, *dead;
    uint8_t *rbuf;     /* (IPC_READ_BUDGET) */
    uint8_t *cbuf;     /* (cbuf_cap) decrypted payload */
    size_t cbuf_cap;
    awq_buf scratch;   /* encoding on the loop thread */
    uint64_t last_sweep_ns;
};

/* Set while a server's loop runs on this thread: sends from its callbacks skip the queue. */
static _Thread_local ipc_server *tls_loop;

/* ------------------------------------------------------------ connection table ---- */

static size_t slot_of(const ipc_server *s, uint64_t id) {
    return (size_t)((id * 0x9E3779B97F4A7C15ull) >> 17) & (s->tab_cap - 1);
}

static conn *conn_find(const ipc_server *s, uint64_t id) {
    for (size_t i = slot_of(s, id);; i = (i + 1) & (s->tab_cap - 1)) {
        if (!s->tab[i]) return NULL;
        if (s->tab[i]->id == id) return s->tab[i];
    }
}

static void conn_insert(ipc_server *s, conn *c) {
    size_t i = slot_of(s, c->id);
    while (s->tab[i]) i = (i + 1) & (s->tab_cap - 1);
    s->tab[i] = c;
}

/* Linear-probing delete with backward shift (no tombstones). */
static void conn_remove(ipc_server *s, conn *c) {
    size_t m = s->tab_cap - 1, i = slot_of(s, c->id);
    while (s->tab[i] != c) {
        if (!s->tab[i]) return;
        i = (i + 1) & m;
    }
    s->tab[i] = NULL;
    for (size_t j = (i + 1) & m; s->tab[j]; j = (j + 1) & m) {
        size_t h = slot_of(s, s->tab[j]->id);
        /* move j back to i when its home slot h is not in the cyclic range (i, j] */
        if ((j > i && (h <= i || h > j)) || (j < i && (h <= i && h > j))) {
            s->tab[i] = s->tab[j];
            s->tab[j] = NULL;
            i = j;
        }
    }
}

/* ------------------------------------------------------------ connection lifecycle ---- */

static void conn_watch(ipc_server *s, conn *c) {
    if (c->dead) return;
    unsigned w = 0;
    if (!c->closing && !c->paused) w |= IPC_LOOP_READ;
    if (c->out.len > c->out_off) w |= IPC_LOOP_WRITE;
    if (w != c->watch) {
        if (ipc_loop_mod(s->loop, ipc_sock_handle(c->sock), w, c) == 0) c->watch = w;
    }
}

/* Close now: out of the table and the loop at once, freed by reap() after this iteration. */
static void conn_kill(ipc_server *s, conn *c) {
    if (c->dead) return;
    c->dead = true;
    ipc_loop_del(s->loop, ipc_sock_handle(c->sock));
    plat_mutex_lock(&s->qmu);
    conn_remove(s, c);
    plat_mutex_unlock(&s->qmu);
    s->n_conns--;
    atomic_store(&s->n_conns_pub, s->n_conns);
    c->next_dead = s->dead;
    s->dead = c;
}

/* The one function that tears a connection down completely. */
static void conn_free(ipc_server *s, conn *c) {
    if (c->helloed && s->o.cb.on_close) s->o.cb.on_close(s->o.user, c->id);
    ipc_sock_free(c->sock);
    ipc_frame_dec_free(c->dec);
    awq_buf_free(&c->out);
    ipc_hs_free(c->hs);
    ipc_chan_free(c->chan);
    free(c->inflight);
    free(c);
}

static void reap(ipc_server *s) {
    while (s->dead) {
        conn *c = s->dead;
        s->dead = c->next_dead;
        conn_free(s, c);
    }
}

static void mark_dirty(ipc_server *s, conn *c) {
    if (c->in_dirty || c->dead) return;
    c->in_dirty = true;
    c->next_dirty = s->dirty;
    s->dirty = c;
}

static void set_paused(ipc_server *s, conn *c, bool p) {
    if (c->paused == p) return;
    c->paused = p;
    if (c->helloed && s->o.cb.on_pause) s->o.cb.on_pause(s->o.user, c->id, p);
}

/* ------------------------------------------------------------ output ---- */

/* Append one frame carrying payload (sealed when the channel is up, unless raw). */
static int conn_put(ipc_server *s, conn *c, const void *payload, size_t n, bool raw, size_t queued) {
    if (c->dead) return AWQ_ECLOSED;
    size_t before = c->out.len - c->out_off;
    if (c->out_off && c->out_off == c->out.len) c->out.len = c->out_off = 0;
    int rc;
    if (c->chan && !raw) {
        size_t total = n + IPC_CHAN_ABYTES;
        if ((rc = awq_buf_reserve(&c->out, total + IPC_FRAME_HDR))) return rc;
        uint8_t *h = (uint8_t *)c->out.data + c->out.len;
        h[0] = (uint8_t)total, h[1] = (uint8_t)(total >> 8), h[2] = (uint8_t)(total >> 16), h[3] = (uint8_t)(total >> 24);
        if ((rc = ipc_chan_seal(NULL, c->chan, payload, n, h + IPC_FRAME_HDR))) {
            conn_kill(s, c);
            return rc;
        }
        c->out.len += total + IPC_FRAME_HDR;
    } else if ((rc = ipc_frame_put(&c->out, payload, n))) {
        return rc;
    }
    /* queued: the payload was counted at enqueue; count the frame's extra bytes now */
    size_t added = c->out.len - c->out_off - before;
    plat_mutex_lock(&s->qmu);
    c->backlog += added - queued;
    plat_mutex_unlock(&s->qmu);
    mark_dirty(s, c);
    if (c->out.len - c->out_off > s->o.out_cap) set_paused(s, c, true);
    return 0;
}

static void inflight_remove(conn *c, uint32_t id) {
    for (uint32_t i = 0; i < c->n_inflight; i++)
        if (c->inflight[i] == id) {
            c->inflight[i] = c->inflight[--c->n_inflight];
            return;
        }
}

static bool inflight_has(const conn *c, uint32_t id) {
    for (uint32_t i = 0; i < c->n_inflight; i++)
        if (c->inflight[i] == id) return true;
    return false;
}

/* Encode and queue m on c (loop thread). track: a terminal message ends its request. */
static int conn_send(ipc_server *s, conn *c, const ipc_msg *m, bool track) {
    s->scratch.len = 0;
    int rc = ipc_msg_encode(NULL, m, &s->scratch);
    if (rc) return rc;
    if (track && m->id && ipc_type_is_terminal(m->type)) inflight_remove(c, m->id);
    return conn_put(s, c, s->scratch.data, s->scratch.len, false, 0);
}

static void conn_error(ipc_server *s, conn *c, uint32_t id, int code, const char *fmt, ...) AWQ_PRINTF(5, 6);
static void conn_error(ipc_server *s, conn *c, uint32_t id, int code, const char *fmt, ...) {
    char text[AWQ_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    ipc_msg m;
    ipc_msg_init(&m, IPC_T_ERROR, id);
    m.u.error.code = code;
    m.u.error.message = ipc_cstr(text);
    (void)conn_send(s, c, &m, false);
}

/* An error the connection cannot survive: say why, then close once it is written. */
static void conn_fail(ipc_server *s, conn *c, uint32_t id, int code, const char *text) {
    conn_error(s, c, id, code, "%s", text);
    c->closing = true;
    mark_dirty(s, c);
}

static void conn_flush(ipc_server *s, conn *c) {
    size_t budget = IPC_WRITE_BUDGET;
    while (!c->dead && c->out.len > c->out_off && budget) {
        size_t n = c->out.len - c->out_off, put;
        if (n > budget) n = budget;
        int rc = ipc_sock_write(c->sock, c->out.data + c->out_off, n, &put);
        if (rc == AWQ_EAGAIN) break;
        if (rc) {
            conn_kill(s, c);
            return;
        }
        c->out_off += put;
        budget -= put;
        plat_mutex_lock(&s->qmu);
        c->backlog -= put;
        plat_mutex_unlock(&s->qmu);
    }
    size_t pending = c->out.len - c->out_off;
    if (pending == 0) {
        /* all written: the client works on it now, so make both directions' next keystream
         * meanwhile, off the round trip's critical path (no-op when already made) */
        if (c->chan && !c->dead) ipc_chan_prepare(c->chan, IPC_CHAN_TX | IPC_CHAN_RX);
        c->out.len = c->out_off = 0;
        if (c->out.cap > (1u << 20)) awq_buf_free(&c->out); /* give a burst's memory back */
        if (c->closing) {
            conn_kill(s, c);
            return;
        }
    } else if (c->out_off > (64u << 10) && c->out_off > pending) {
        memmove(c->out.data, c->out.data + c->out_off, pending);
        c->out.len = pending;
        c->out_off = 0;
    }
    if (c->paused && pending < s->o.out_cap / 4) set_paused(s, c, false);
    conn_watch(s, c);
}

static void flush_dirty(ipc_server *s) {
    while (s->dirty) {
        conn *c = s->dirty;
        s->dirty = c->next_dirty;
        c->in_dirty = false;
        if (!c->dead) conn_flush(s, c);
    }
}

/* ------------------------------------------------------------ requests ---- */

static void do_hello(ipc_server *s, conn *c, const ipc_msg *m) {
    const ipc_hello *h = &m->u.hello;
    if (h->proto_major != IPC_PROTO_MAJOR) {
        char t[AWQ_ERR_LEN];
        snprintf(t, sizeof t, "protocol version %u.%u is not supported (this server speaks %d.%d)", h->proto_major,
                 h->proto_minor, IPC_PROTO_MAJOR, IPC_PROTO_MINOR);
        conn_fail(s, c, m->id, AWQ_EUNSUPPORTED, t);
        return;
    }
    if (h->client.s) snprintf(c->info.client_name, sizeof c->info.client_name, "%s", h->client.s);
    ipc_msg r;
    ipc_msg_init(&r, IPC_T_HELLO, m->id);
    ipc_str feats[] = {ipc_cstr("cancel"), ipc_cstr("stream"), ipc_cstr("logprobs"), ipc_cstr("encryption")};
    ipc_kv lim[3] = {{.key = ipc_cstr("max_frame_bytes"), .kind = IPC_KV_INT, .i = s->o.max_frame},
                     {.key = ipc_cstr("max_inflight"), .kind = IPC_KV_INT, .i = s->o.max_inflight},
                     {.key = ipc_cstr("max_conns"), .kind = IPC_KV_INT, .i = s->o.max_conns}};
    r.u.hello.server = ipc_cstr(s->version);
    r.u.hello.model = ipc_cstr("");
    r.u.hello.features = feats;
    r.u.hello.n_features = s->o.enc == IPC_ENC_OFF ? 3 : 4;
    r.u.hello.limits = lim;
    r.u.hello.n_limits = 3;
    if (s->o.cb.on_hello) {
        int rc = s->o.cb.on_hello(s->o.user, &c->info, m, &r);
        if (rc < 0) {
            char t[AWQ_ERR_LEN];
            snprintf(t, sizeof t, "the server refused this client: %s", awq_strerror(rc));
            conn_fail(s, c, m->id, rc, t);
            return;
        }
    }
    if (conn_send(s, c, &r, false) == 0) {
        c->helloed = true;
        c->state = ST_READY;
    }
}

static void do_request(ipc_server *s, conn *c, const ipc_msg *m) {
    const char *tn = ipc_type_name(m->type);
    switch (m->type) {
    case IPC_T_HELLO:
        conn_error(s, c, m->id, AWQ_ESTATE, "hello was already done on this connection");
        return;
    case IPC_T_PING: {
        ipc_msg r;
        ipc_msg_init(&r, IPC_T_PONG, m->id);
        (void)conn_send(s, c, &r, false);
        return;
    }
    case IPC_T_CANCEL: {
        if (!inflight_has(c, m->u.target)) {
            conn_error(s, c, m->id, AWQ_ENOTFOUND, "cancel: request %u is not in flight on this connection",
                       m->u.target);
            return;
        }
        if (s->o.cb.on_request) s->o.cb.on_request(s->o.user, c->id, m);
        ipc_msg r;
        ipc_msg_init(&r, IPC_T_OK, m->id);
        (void)conn_send(s, c, &r, false);
        return;
    }
    default:
        break;
    }
    if (!ipc_type_is_request(m->type)) {
        conn_error(s, c, m->id, AWQ_EPROTO, "\"%s\" is a server message; a client may not send it", tn);
        return;
    }
    if (inflight_has(c, m->id)) {
        conn_error(s, c, m->id, AWQ_EEXIST, "%s: request id %u is already in flight on this connection", tn, m->id);
        return;
    }
    if (c->n_inflight >= s->o.max_inflight) {
        conn_error(s, c, m->id, AWQ_EBUSY, "%s: too many requests in flight on this connection (max %u)", tn,
                   s->o.max_inflight);
        return;
    }
    if (!s->o.cb.on_request) {
        conn_error(s, c, m->id, AWQ_EUNSUPPORTED, "%s: this server has no request handler", tn);
        return;
    }
    c->inflight[c->n_inflight++] = m->id;
    s->o.cb.on_request(s->o.user, c->id, m);
}

/* One decoded-or-not message payload (plaintext). */
static void handle_msg(ipc_server *s, conn *c, const uint8_t *p, size_t n) {
    char err[AWQ_ERR_LEN] = "";
    ipc_msg m;
    int rc = ipc_msg_decode(err, p, n, &m);
    if (c->state == ST_HELLO) {
        if (rc) conn_fail(s, c, m.id, rc, err);
        else if (m.type != IPC_T_HELLO)
            conn_fail(s, c, m.id, AWQ_EPROTO, "the first message must be \"hello\"");
        else do_hello(s, c, &m);
    } else if (rc) {
        /* the frame boundary is intact: answer and keep the connection */
        conn_error(s, c, m.id, rc, "%s", err);
    } else {
        do_request(s, c, &m);
    }
    ipc_msg_free(&m);
}

static void handle_frame(ipc_server *s, conn *c, const uint8_t *p, uint32_t n) {
    char err[AWQ_ERR_LEN] = "";
    switch (c->state) {
    case ST_FIRST:
        if (ipc_hs_is_msg1(p, n)) {
            if (s->o.enc == IPC_ENC_OFF) {
                conn_fail(s, c, 0, AWQ_EUNSUPPORTED, "encryption is off on this server; connect without it");
                return;
            }
            uint8_t out[IPC_HS2_LEN];
            c->hs = ipc_hs_server_create(s->kp, s->auth);
            int rc = c->hs ? ipc_hs_server_msg1(err, c->hs, p, n, out) : AWQ_ENOMEM;
            if (rc) {
                conn_fail(s, c, 0, rc, c->hs ? err : "out of memory");
                return;
            }
            ipc_hs_peer_key(c->hs, c->info.client_key);
            (void)conn_put(s, c, out, sizeof out, true, 0);
            c->state = ST_HS3;
            return;
        }
        if (s->o.enc == IPC_ENC_REQUIRED) {
            conn_fail(s, c, 0, AWQ_EPERM, "encryption required: this server refuses plaintext clients");
            return;
        }
        c->state = ST_HELLO;
        handle_msg(s, c, p, n);
        return;
    case ST_HS3: {
        int rc = ipc_hs_server_msg3(err, c->hs, p, n);
        if (rc) {
            conn_fail(s, c, 0, rc, err);
            return;
        }
        c->chan = ipc_hs_take_channel(c->hs);
        ipc_hs_free(c->hs);
        c->hs = NULL;
        c->info.encrypted = true;
        c->state = ST_HELLO;
        return;
    }
    default:
        if (c->chan) {
            if (n > s->cbuf_cap) { /* cannot happen: cbuf is sized for max_frame */
                conn_kill(s, c);
                return;
            }
            size_t pl;
            if (ipc_chan_open(err, c->chan, p, n, s->cbuf, &pl)) {
                /* no error frame: the peer's stream is not trustworthy any more */
                conn_kill(s, c);
                return;
            }
            handle_msg(s, c, s->cbuf, pl);
        } else {
            handle_msg(s, c, p, n);
        }
    }
}

static void conn_read(ipc_server *s, conn *c) {
    size_t got;
    int rc = ipc_sock_read(c->sock, s->rbuf, IPC_READ_BUDGET, &got);
    if (rc == AWQ_EAGAIN) return;
    if (rc) {
        conn_kill(s, c);
        return;
    }
    size_t off = 0;
    while (off < got && !c->dead && !c->closing) {
        char err[AWQ_ERR_LEN] = "";
        size_t used;
        rc = ipc_frame_dec_feed(err, c->dec, s->rbuf + off, got - off, &used);
        off += used;
        if (rc < 0) {
            conn_fail(s, c, 0, rc, err);
            break;
        }
        if (rc == 1) {
            const uint8_t *p;
            uint32_t n;
            ipc_frame_dec_take(c->dec, &p, &n);
            handle_frame(s, c, p, n);
        }
    }
    if (!c->dead) conn_watch(s, c);
}

/* ------------------------------------------------------------ accept ---- */

static bool peer_allowed(const ipc_server *s, const ipc_peer *p) {
#ifdef _WIN32
    /* Windows has no uids: the pipe's DACL (our user, SYSTEM, the configured group), checked by
     * the kernel when the client opened the pipe, is the access check; the uid/gid allow lists
     * do not apply there. */
    (void)s;
    (void)p;
    return true;
#else
    if (!s->o.n_allow_uids && !s->o.n_allow_gids) return p->uid == (uint32_t)geteuid() || p->uid == 0;
    for (size_t i = 0; i < s->o.n_allow_uids; i++)
        if (s->allow_uids[i] == p->uid) return true;
    for (size_t i = 0; i < s->o.n_allow_gids; i++)
        if (s->allow_gids[i] == p->gid) return true;
    return false;
#endif
}

/* Refuse a fresh socket with one plaintext error frame (best effort: it is small enough to fit
 * the empty socket buffer) and close it. */
static void refuse(ipc_sock *sock, int code, const char *text) {
    ipc_msg m;
    ipc_msg_init(&m, IPC_T_ERROR, 0);
    m.u.error.code = code;
    m.u.error.message = ipc_cstr(text);
    awq_buf b = {0};
    awq_buf pl = {0};
    if (ipc_msg_encode(NULL, &m, &pl) == 0 && ipc_frame_put(&b, pl.data, pl.len) == 0) {
        size_t put;
        if (ipc_sock_write(sock, b.data, b.len, &put)) { /* nothing more to do for it */ }
    }
    awq_buf_free(&pl);
    awq_buf_free(&b);
    ipc_sock_free(sock);
}

static void accept_all(ipc_server *s) {
    for (int k = 0; k < ACCEPT_BURST; k++) {
        ipc_sock *sock;
        int rc = ipc_accept(NULL, s->lis, &sock);
        if (rc) return; /* EAGAIN, or out of descriptors: try again on the next event */
        ipc_peer peer = {0};
        if (ipc_sock_peer(sock, &peer) != 0) {
            refuse(sock, AWQ_EPERM, "permission denied: cannot read the peer's credentials");
            continue;
        }
        if (!peer_allowed(s, &peer)) {
            char t[128];
            snprintf(t, sizeof t, "permission denied: uid %u is not allowed to use this server", peer.uid);
            refuse(sock, AWQ_EPERM, t);
            continue;
        }
        if (s->n_conns >= s->o.max_conns) {
            char t[128];
            snprintf(t, sizeof t, "busy: too many connections (max %u)", s->o.max_conns);
            refuse(sock, AWQ_EBUSY, t);
            continue;
        }
        conn *c = calloc(1, sizeof *c);
        if (c) {
            c->dec = ipc_frame_dec_create(s->o.max_frame);
            c->inflight = malloc(s->o.max_inflight * sizeof *c->inflight);
        }
        if (!c || !c->dec || !c->inflight ||
            ipc_loop_add(s->loop, ipc_sock_handle(sock), IPC_LOOP_READ, c) != 0) {
            if (c) {
                ipc_frame_dec_free(c->dec);
                free(c->inflight);
                free(c);
            }
            refuse(sock, AWQ_ENOMEM, "out of memory");
            continue;
        }
        c->sock = sock;
        c->id = ++s->next_id;
        c->watch = IPC_LOOP_READ;
        c->born_ns = plat_now_ns();
        c->info.conn = c->id;
        c->info.uid = peer.uid;
        c->info.gid = peer.gid;
        c->info.pid = peer.pid;
        plat_mutex_lock(&s->qmu);
        conn_insert(s, c);
        plat_mutex_unlock(&s->qmu);
        s->n_conns++;
        atomic_store(&s->n_conns_pub, s->n_conns);
    }
}

/* ------------------------------------------------------------ cross-thread queue ---- */

static void drain_queue(ipc_server *s) {
    plat_mutex_lock(&s->qmu);
    qitem *q = s->qhead;
    s->qhead = s->qtail = NULL;
    plat_mutex_unlock(&s->qmu);
    while (q) {
        qitem *next = q->next;
        conn *c = conn_find(s, q->conn);
        if (c && !c->dead) {
            if (q->close) {
                c->closing = true;
                mark_dirty(s, c);
            } else {
                if (q->id && ipc_type_is_terminal(q->type)) inflight_remove(c, q->id);
                if (conn_put(s, c, q->data, q->len, false, q->len)) { /* closed meanwhile */ }
            }
        }
        free(q->data);
        free(q);
        q = next;
    }
}

/* Queue q (takes it). Refused with AWQ_ENOTFOUND when its connection is gone and AWQ_EAGAIN
 * when the connection's backlog is over the hard cap (8 x out_cap). */
static int enqueue(ipc_server *s, qitem *q) {
    plat_mutex_lock(&s->qmu);
    conn *c = conn_find(s, q->conn);
    int rc = !c ? AWQ_ENOTFOUND : !q->close && c->backlog > 8 * s->o.out_cap ? AWQ_EAGAIN : 0;
    if (rc) {
        plat_mutex_unlock(&s->qmu);
        free(q->data);
        free(q);
        return rc;
    }
    if (!q->close) c->backlog += q->len;
    bool was_empty = s->qhead == NULL;
    if (s->qtail) s->qtail->next = q;
    else s->qhead = q;
    s->qtail = q;
    plat_mutex_unlock(&s->qmu);
    /* one wakeup per batch: the loop drains the whole queue each time */
    if (was_empty) ipc_loop_wake(s->loop);
    return 0;
}

int ipc_server_send(ipc_server *s, uint64_t conn_id, const ipc_msg *m) {
    if (tls_loop == s) {
        conn *c = conn_find(s, conn_id);
        if (!c || c->dead) return AWQ_ENOTFOUND;
        if (c->backlog > 8 * s->o.out_cap) return AWQ_EAGAIN;
        return conn_send(s, c, m, true);
    }
    qitem *q = calloc(1, sizeof *q);
    if (!q) return AWQ_ENOMEM;
    awq_buf b = {0};
    int rc = ipc_msg_encode(NULL, m, &b);
    if (rc) {
        awq_buf_free(&b);
        free(q);
        return rc;
    }
    q->conn = conn_id;
    q->type = m->type;
    q->id = m->id;
    q->len = b.len;
    q->data = awq_buf_take(&b);
    return enqueue(s, q);
}

void ipc_server_close_conn(ipc_server *s, uint64_t conn_id) {
    if (tls_loop == s) {
        conn *c = conn_find(s, conn_id);
        if (c && !c->dead) {
            c->closing = true;
            mark_dirty(s, c);
        }
        return;
    }
    qitem *q = calloc(1, sizeof *q);
    if (!q) return;
    q->conn = conn_id;
    q->close = true;
    if (enqueue(s, q)) { /* already gone */ }
}

/* ------------------------------------------------------------ run / create / free ---- */

static void sweep_idle(ipc_server *s) {
    uint64_t now = plat_now_ns();
    if (now - s->last_sweep_ns < 1000000000ull) return;
    s->last_sweep_ns = now;
    for (size_t i = 0; i < s->tab_cap; i++) {
        conn *c = s->tab[i];
        if (c && !c->dead && !c->closing && c->state != ST_READY &&
            now - c->born_ns > (uint64_t)HELLO_TIMEOUT_MS * 1000000u) {
            conn_fail(s, c, 0, AWQ_ETIMEDOUT, "timed out waiting for the handshake / hello");
        }
    }
}

int ipc_server_run(char *err, ipc_server *s) {
    tls_loop = s;
    ipc_loop_ev evs[128];
    int rc = 0;
    while (!atomic_load(&s->stop)) {
        bool woken;
        int n = ipc_loop_wait(s->loop, evs, 128, 1000, &woken);
        if (n < 0) {
            rc = awq_seterr(err, n, "event loop failed");
            break;
        }
        for (int i = 0; i < n; i++) {
            if (evs[i].ud == (void *)&s->lis) {
                accept_all(s);
                continue;
            }
            conn *c = evs[i].ud;
            if (c->dead) continue;
            if (evs[i].events & (IPC_LOOP_READ | IPC_LOOP_HUP)) conn_read(s, c);
            if (!c->dead && (evs[i].events & IPC_LOOP_WRITE)) mark_dirty(s, c);
        }
        if (woken) drain_queue(s);
        flush_dirty(s);
        sweep_idle(s);
        reap(s);
    }
    drain_queue(s); /* frees queued items (their connections are closing anyway) */
    for (size_t i = 0; i < s->tab_cap; i++)
        while (s->tab[i]) conn_kill(s, s->tab[i]);
    s->dirty = NULL;
    reap(s);
    tls_loop = NULL;
    return rc;
}

void ipc_server_stop(ipc_server *s) {
    atomic_store(&s->stop, 1);
    ipc_loop_wake(s->loop);
}

const char *ipc_server_path(const ipc_server *s) { return ipc_listener_path(s->lis); }
uint32_t ipc_server_conn_count(const ipc_server *s) { return atomic_load(&((ipc_server *)s)->n_conns_pub); }

ipc_server *ipc_server_create(char *err, const ipc_server_opts *o) {
    ipc_server *s = calloc(1, sizeof *s);
    if (!s) {
        awq_seterr(err, AWQ_ENOMEM, "out of memory");
        return NULL;
    }
    plat_mutex_init(&s->qmu);
    s->o = *o;
    if (!s->o.max_conns) s->o.max_conns = IPC_MAX_CONNS_DEFAULT;
    if (!s->o.max_frame) s->o.max_frame = IPC_FRAME_MAX_DEFAULT;
    if (!s->o.max_inflight) s->o.max_inflight = IPC_MAX_INFLIGHT_DEFAULT;
    if (!s->o.out_cap) s->o.out_cap = IPC_OUT_CAP_DEFAULT;
    s->o.path = NULL;
    s->o.key_path = s->o.authorized_keys = s->o.version = s->o.pipe_group = NULL;
    char path[IPC_PATH_MAX];
    int rc = 0;
    if (s->o.max_frame > IPC_FRAME_MAX || s->o.max_conns > (1u << 20)) {
        awq_seterr(err, AWQ_EINVAL, "max_frame %u (limit %u) or max_conns %u (limit %u) too large", s->o.max_frame,
                   IPC_FRAME_MAX, s->o.max_conns, 1u << 20);
        goto fail;
    }
    s->version = strdup(o->version ? o->version : "awqd");
    s->allow_uids = calloc(o->n_allow_uids + 1, sizeof *s->allow_uids);
    s->allow_gids = calloc(o->n_allow_gids + 1, sizeof *s->allow_gids);
    s->rbuf = malloc(IPC_READ_BUDGET);
    for (s->tab_cap = 16; s->tab_cap < 2 * (size_t)s->o.max_conns; s->tab_cap *= 2) {}
    s->tab = calloc(s->tab_cap, sizeof *s->tab);
    if (!s->version || !s->allow_uids || !s->allow_gids || !s->rbuf || !s->tab) {
        awq_seterr(err, AWQ_ENOMEM, "out of memory");
        goto fail;
    }
    if (o->n_allow_uids) memcpy(s->allow_uids, o->allow_uids, o->n_allow_uids * sizeof *s->allow_uids);
    if (o->n_allow_gids) memcpy(s->allow_gids, o->allow_gids, o->n_allow_gids * sizeof *s->allow_gids);
    if (o->enc != IPC_ENC_OFF) {
        if (!o->key_path || !o->authorized_keys) {
            awq_seterr(err, AWQ_EINVAL, "encryption needs a server key and an authorized keys file");
            goto fail;
        }
        if ((rc = ipc_keypair_load(err, o->key_path, &s->kp))) goto fail;
        if ((rc = ipc_authkeys_load(err, o->authorized_keys, &s->auth))) goto fail;
        s->cbuf_cap = s->o.max_frame;
        s->cbuf = malloc(s->cbuf_cap);
        if (!s->cbuf) {
            awq_seterr(err, AWQ_ENOMEM, "out of memory");
            goto fail;
        }
    }
    if (!(s->loop = ipc_loop_create(err))) goto fail;
    ipc_listen_opts lo = {.path = o->path, .group = o->group, .listen_fd = o->listen_fd, .pipe_group = o->pipe_group};
    if (o->listen_fd < 0 && !o->path) {
        if ((rc = ipc_default_socket_path(err, path, sizeof path))) goto fail;
        lo.path = path;
    }
    if ((rc = ipc_listen(err, &lo, &s->lis))) goto fail;
    if (ipc_loop_add(s->loop, ipc_listener_handle(s->lis), IPC_LOOP_READ, &s->lis) != 0) {
        awq_seterr(err, AWQ_EIO, "cannot watch the listening socket");
        goto fail;
    }
    return s;
fail:
    ipc_server_free(s);
    return NULL;
}

void ipc_server_free(ipc_server *s) {
    if (!s) return;
    for (size_t i = 0; s->tab && i < s->tab_cap; i++) /* when run was never called */
        while (s->tab[i]) conn_kill(s, s->tab[i]);
    reap(s);
    drain_queue(s);
    ipc_listener_free(s->lis);
    ipc_loop_free(s->loop);
    ipc_keypair_free(s->kp);
    ipc_authkeys_free(s->auth);
    plat_mutex_destroy(&s->qmu);
    awq_buf_free(&s->scratch);
    free(s->tab);
    free(s->rbuf);
    free(s->cbuf);
    free(s->allow_uids);
    free(s->allow_gids);
    free(s->version);
    free(s);
}
