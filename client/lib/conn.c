/* conn.c - libawq: connecting (handshake, pinning, hello), sending, and the reader that routes
 * incoming messages to synchronous callers, callbacks or the event queue. See awq.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "keys.h"

#define RBUF (64u << 10)
#define CLIENT_MAX_FRAME_DEFAULT (64u << 20)

uint64_t cl_deadline(int timeout_ms) {
    return timeout_ms < 0 ? 0 : plat_now_ns() + (uint64_t)timeout_ms * 1000000u;
}

static int ms_left(uint64_t deadline_ns) {
    if (!deadline_ns) return -1;
    uint64_t now = plat_now_ns();
    return now >= deadline_ns ? 0 : (int)((deadline_ns - now + 999999) / 1000000u);
}

void cl_msg_free(ipc_msg *m) {
    if (!m) return;
    ipc_msg_free(m);
    free(m);
}

/* ------------------------------------------------------------ raw frames ---- */

/* Read one whole frame (blocking up to the deadline). *p is borrowed until the next read.
 * Only the reader (connect, or the thread holding c->reading) calls this. */
static int read_frame(char *err, awq_conn *c, uint64_t deadline_ns, const uint8_t **p, uint32_t *n) {
    for (;;) {
        while (c->roff < c->rlen) {
            size_t used;
            int rc = ipc_frame_dec_feed(err, c->dec, c->rbuf + c->roff, c->rlen - c->roff, &used);
            c->roff += used;
            if (rc < 0) return rc;
            if (rc == 1) {
                ipc_frame_dec_take(c->dec, p, n);
                return 0;
            }
        }
        c->roff = c->rlen = 0;
        int rc = ipc_sock_read(c->sock, c->rbuf, RBUF, &c->rlen);
        if (rc == AWQ_EAGAIN) {
            /* about to wait for the server: make the next frame's keystream now, off the
             * round trip's critical path (the reader owns the receiving half) */
            if (c->chan) ipc_chan_prepare(c->chan, IPC_CHAN_RX);
            int left = ms_left(deadline_ns);
            if (left == 0) return awq_seterr(err, AWQ_ETIMEDOUT, "timed out waiting for the server");
            if ((rc = ipc_sock_wait(c->sock, false, left)) == AWQ_ETIMEDOUT)
                return awq_seterr(err, AWQ_ETIMEDOUT, "timed out waiting for the server");
            continue;
        }
        if (rc == AWQ_ECLOSED) return awq_seterr(err, AWQ_ECLOSED, "the server closed the connection");
        if (rc) return awq_seterr(err, rc, "reading from the server failed");
    }
}

/* A frame's plaintext (decrypted into c->cbuf when the channel is up). */
static int read_payload(char *err, awq_conn *c, uint64_t deadline_ns, const uint8_t **p, size_t *n) {
    const uint8_t *f;
    uint32_t fl;
    int rc = read_frame(err, c, deadline_ns, &f, &fl);
    if (rc) return rc;
    if (!c->chan) {
        *p = f;
        *n = fl;
        return 0;
    }
    if ((rc = ipc_chan_open(err, c->chan, f, fl, c->cbuf, n))) {
        /* the server refuses some things before encryption starts (e.g. an unknown client key
         * after msg3): show its plaintext error, but never trust it for anything else */
        ipc_msg m;
        if (ipc_msg_decode(NULL, f, fl, &m) == 0 && m.type == IPC_T_ERROR && m.u.error.message.s)
            awq_seterr(err, AWQ_ECRYPTO, "the server refused the encrypted session: %s", m.u.error.message.s);
        ipc_msg_free(&m);
        return AWQ_ECRYPTO;
    }
    *p = c->cbuf;
    return 0;
}

/* Frame (and seal) payload and write it. Called with wmu held (or before the connection is
 * shared, during connect). */
static int write_frame(char *err, awq_conn *c, const void *payload, size_t n, bool raw) {
    awq_buf *b = &c->wbuf;
    int rc;
    b->len = 0;
    if (c->chan && !raw) {
        rc = awq_buf_reserve(b, n + IPC_CHAN_ABYTES + IPC_FRAME_HDR);
        if (!rc) {
            size_t t = n + IPC_CHAN_ABYTES;
            uint8_t *h = (uint8_t *)b->data;
            h[0] = (uint8_t)t, h[1] = (uint8_t)(t >> 8), h[2] = (uint8_t)(t >> 16), h[3] = (uint8_t)(t >> 24);
            rc = ipc_chan_seal(err, c->chan, payload, n, h + IPC_FRAME_HDR);
            b->len = t + IPC_FRAME_HDR;
        }
    } else {
        rc = ipc_frame_put(b, payload, n);
    }
    if (!rc) {
        rc = ipc_sock_write_all(c->sock, b->data, b->len, c->io_timeout_ms);
        if (rc) awq_seterr(err, rc, "sending to the server failed: %s", awq_strerror(rc));
        /* the server is busy with this frame now: make the next one's keystream meanwhile
         * (wmu is held, and it guards the sending half) */
        else if (c->chan && !raw) ipc_chan_prepare(c->chan, IPC_CHAN_TX);
    }
    if (b->cap > (1u << 20)) awq_buf_free(b); /* do not keep a big burst's memory */
    return rc;
}

int cl_send(char *err, awq_conn *c, const ipc_msg *m) {
    plat_mutex_lock(&c->wmu);
    c->ebuf.len = 0;
    int rc = ipc_msg_encode(err, m, &c->ebuf);
    if (!rc) rc = write_frame(err, c, c->ebuf.data, c->ebuf.len, false);
    if (c->ebuf.cap > (1u << 20)) awq_buf_free(&c->ebuf);
    plat_mutex_unlock(&c->wmu);
    return rc;
}

/* ------------------------------------------------------------ routing ---- */

uint32_t cl_next_id(awq_conn *c) {
    if (++c->next_id == 0) c->next_id = 1;
    return c->next_id;
}

pend *cl_pend_add(awq_conn *c, uint32_t id) {
    pend *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->id = id;
    p->next = c->pend;
    c->pend = p;
    return p;
}

void cl_pend_remove(awq_conn *c, pend *p) {
    for (pend **pp = &c->pend; *pp; pp = &(*pp)->next)
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    cl_msg_free(p->resp);
    free(p);
}

static pend *pend_find(awq_conn *c, uint32_t id) {
    for (pend *p = c->pend; p; p = p->next)
        if (p->id == id) return p;
    return NULL;
}

static void set_broken(awq_conn *c, int code, const char *msg) {
    if (c->broken) return;
    c->broken = code;
    snprintf(c->broken_msg, sizeof c->broken_msg, "%s", msg);
}

/* Route one message (mu held on entry and exit; dropped around callbacks). Takes m. */
static void route(awq_conn *c, ipc_msg *m) {
    if (m->id == 0 && m->type == IPC_T_ERROR) { /* the connection itself failed */
        char t[AWQ_ERR_LEN];
        snprintf(t, sizeof t, "server: %s", m->u.error.message.s ? m->u.error.message.s : "error");
        set_broken(c, m->u.error.code ? m->u.error.code : AWQ_EPROTO, t);
        cl_msg_free(m);
        return;
    }
    pend *p = pend_find(c, m->id);
    bool terminal = ipc_type_is_terminal(m->type);
    if (p && p->sync) {
        if (terminal) {
            p->resp = m;
            return;
        }
        if (m->type == IPC_T_PROGRESS && p->progress) {
            awq_progress_cb cb = p->progress;
            void *u = p->puser;
            plat_mutex_unlock(&c->mu);
            cb(u, ipc_stage_name(m->u.progress.stage), m->u.progress.pct);
            plat_mutex_lock(&c->mu);
        }
        cl_msg_free(m);
        return;
    }
    if (p && p->cb) {
        awq_event_cb cb = p->cb;
        void *u = p->user;
        if (terminal) cl_pend_remove(c, p);
        awq_event ev;
        cl_event_from(&ev, m);
        plat_mutex_unlock(&c->mu);
        cb(u, &ev);
        plat_mutex_lock(&c->mu);
        cl_msg_free(m);
        return;
    }
    if (p && terminal) cl_pend_remove(c, p);
    qmsg *q = malloc(sizeof *q);
    if (!q) {
        cl_msg_free(m);
        set_broken(c, AWQ_ENOMEM, "out of memory queueing an event");
        return;
    }
    q->m = m;
    q->next = NULL;
    if (c->qtail) c->qtail->next = q;
    else c->qhead = q;
    c->qtail = q;
}

int cl_pump(char *err, awq_conn *c, bool (*done)(awq_conn *, void *), void *arg, uint64_t deadline_ns) {
    for (;;) {
        if (done(c, arg)) return 0;
        if (c->broken) return awq_seterr(err, c->broken, "%s", c->broken_msg);
        if (deadline_ns && plat_now_ns() >= deadline_ns)
            return awq_seterr(err, AWQ_ETIMEDOUT, "timed out waiting for the server");
        if (c->reading) { /* another thread reads: wait for what it routes */
            int left = ms_left(deadline_ns);
            if (left < 0) plat_cond_wait(&c->cv, &c->mu);
            else plat_cond_timedwait(&c->cv, &c->mu, (unsigned)left);
            continue;
        }
        c->reading = true;
        plat_mutex_unlock(&c->mu);
        char rerr[AWQ_ERR_LEN] = "";
        const uint8_t *p;
        size_t n;
        int rc = read_payload(rerr, c, deadline_ns, &p, &n);
        ipc_msg *m = NULL;
        if (!rc) {
            m = malloc(sizeof *m);
            if (!m) rc = awq_seterr(rerr, AWQ_ENOMEM, "out of memory");
            else if ((rc = ipc_msg_decode(rerr, p, n, m))) {
                cl_msg_free(m);
                m = NULL;
                /* the server sent something we cannot read: a bug or a hostile server */
                rc = AWQ_EPROTO;
            }
        }
        plat_mutex_lock(&c->mu);
        if (m) route(c, m);
        else if (rc != AWQ_ETIMEDOUT) set_broken(c, rc, rerr);
        c->reading = false;
        plat_cond_broadcast(&c->cv);
    }
}

static bool sync_done(awq_conn *c, void *arg) {
    (void)c;
    return ((pend *)arg)->resp != NULL;
}

int cl_call(char *err, awq_conn *c, ipc_msg *m, ipc_msg **resp, awq_progress_cb progress, void *puser) {
    *resp = NULL;
    plat_mutex_lock(&c->mu);
    if (c->broken) {
        int rc = awq_seterr(err, c->broken, "%s", c->broken_msg);
        plat_mutex_unlock(&c->mu);
        return rc;
    }
    m->id = cl_next_id(c);
    pend *p = cl_pend_add(c, m->id);
    if (!p) {
        plat_mutex_unlock(&c->mu);
        return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    }
    p->sync = true;
    p->progress = progress;
    p->puser = puser;
    plat_mutex_unlock(&c->mu);
    int rc = cl_send(err, c, m);
    plat_mutex_lock(&c->mu);
    if (!rc) rc = cl_pump(err, c, sync_done, p, cl_deadline(c->io_timeout_ms));
    if (!rc) {
        ipc_msg *r = p->resp;
        p->resp = NULL;
        if (r->type == IPC_T_ERROR) {
            rc = r->u.error.code < 0 ? r->u.error.code : AWQ_EPROTO;
            awq_seterr(err, rc, "%s", r->u.error.message.s ? r->u.error.message.s : awq_strerror(rc));
            cl_msg_free(r);
        } else {
            *resp = r;
        }
    }
    cl_pend_remove(c, p);
    plat_mutex_unlock(&c->mu);
    return rc;
}

/* ------------------------------------------------------------ connect ---- */

static int handshake(char *err, awq_conn *c, const awq_connect_opts *o, uint64_t deadline) {
    if (!o->key_path || !o->known_servers)
        return awq_seterr(err, AWQ_EINVAL, "encryption needs key_path and known_servers");
    int rc = ipc_keypair_load(err, o->key_path, &c->kp);
    if (rc) return rc;
    ipc_hs *hs = ipc_hs_client_create(c->kp);
    if (!hs) return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    uint8_t m1[IPC_HS1_LEN], m3[IPC_HS3_LEN], spk[IPC_KEY_BYTES];
    const uint8_t *p;
    uint32_t n;
    if ((rc = ipc_hs_client_msg1(err, hs, m1)) || (rc = write_frame(err, c, m1, sizeof m1, true)) ||
        (rc = read_frame(err, c, deadline, &p, &n)))
        goto out;
    if (n && p[0] != 0x02) { /* a plaintext error instead of msg2 */
        ipc_msg m;
        if (ipc_msg_decode(NULL, p, n, &m) == 0 && m.type == IPC_T_ERROR) {
            rc = m.u.error.code < 0 ? m.u.error.code : AWQ_EPROTO;
            awq_seterr(err, rc, "server: %s", m.u.error.message.s ? m.u.error.message.s : "error");
        } else {
            rc = awq_seterr(err, AWQ_EPROTO, "handshake: unexpected reply from the server");
        }
        ipc_msg_free(&m);
        goto out;
    }
    if ((rc = ipc_hs_client_msg2(err, hs, p, n, spk, m3))) goto out;
    bool added = false;
    if ((rc = ipc_known_check(err, o->known_servers, c->path, spk, &added))) goto out;
    ipc_fingerprint(spk, c->info.fingerprint);
    if (added) {
        if (o->on_new_server) o->on_new_server(o->user, c->path, c->info.fingerprint);
        else
            fprintf(stderr, "libawq: new server %s, key fingerprint %s; pinned in %s\n", c->path, c->info.fingerprint,
                    o->known_servers);
    }
    if ((rc = write_frame(err, c, m3, sizeof m3, true))) goto out;
    c->chan = ipc_hs_take_channel(hs);
    c->cbuf = malloc(c->max_frame);
    if (!c->cbuf) rc = awq_seterr(err, AWQ_ENOMEM, "out of memory");
    c->info.encrypted = true;
out:
    ipc_hs_free(hs);
    return rc;
}

static int say_hello(char *err, awq_conn *c, const awq_connect_opts *o, uint64_t deadline) {
    ipc_msg m;
    ipc_msg_init(&m, IPC_T_HELLO, 0);
    ipc_str feats[] = {ipc_cstr("cancel"), ipc_cstr("stream")};
    m.u.hello.client = ipc_cstr(o->client_name ? o->client_name : "libawq");
    m.u.hello.features = feats;
    m.u.hello.n_features = 2;
    int rc = cl_send(err, c, &m);
    if (rc) return rc;
    const uint8_t *p;
    size_t n;
    if ((rc = read_payload(err, c, deadline, &p, &n))) return rc;
    c->hello = malloc(sizeof *c->hello);
    if (!c->hello) return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    if ((rc = ipc_msg_decode(err, p, n, c->hello))) return rc;
    if (c->hello->type == IPC_T_ERROR) {
        rc = c->hello->u.error.code < 0 ? c->hello->u.error.code : AWQ_EPROTO;
        return awq_seterr(err, rc, "server: %s", c->hello->u.error.message.s ? c->hello->u.error.message.s : "error");
    }
    if (c->hello->type != IPC_T_HELLO) return awq_seterr(err, AWQ_EPROTO, "the server did not answer hello");
    const ipc_hello *h = &c->hello->u.hello;
    if (h->proto_major != IPC_PROTO_MAJOR)
        return awq_seterr(err, AWQ_EUNSUPPORTED, "server speaks protocol %u.%u, this library %d.%d", h->proto_major,
                          h->proto_minor, IPC_PROTO_MAJOR, IPC_PROTO_MINOR);
    c->info.server = h->server.s ? h->server.s : "";
    c->info.model = h->model.s ? h->model.s : "";
    c->info.proto_major = h->proto_major;
    c->info.proto_minor = h->proto_minor;
    for (uint32_t i = 0; i < h->n_limits; i++) {
        const ipc_kv *kv = &h->limits[i];
        if (kv->kind != IPC_KV_INT || kv->i < 0 || kv->i > UINT32_MAX) continue;
        if (strcmp(kv->key.s, "max_frame_bytes") == 0) c->info.max_frame_bytes = (uint32_t)kv->i;
        if (strcmp(kv->key.s, "max_inflight") == 0) c->info.max_inflight = (uint32_t)kv->i;
    }
    return 0;
}

/* The server may refuse a connection (peer not allowed, too many connections) with one error
 * frame and close it before our first write lands: that write then fails, but the server's
 * reason is still readable. Replace the write error with it when there is one. */
static void refusal(char *err, awq_conn *c, int *rc) {
    if (!c->sock || c->chan) return;
    const uint8_t *p;
    uint32_t n;
    ipc_msg m;
    if (read_frame(NULL, c, cl_deadline(200), &p, &n) != 0) return;
    if (ipc_msg_decode(NULL, p, n, &m) == 0 && m.type == IPC_T_ERROR && m.u.error.code < 0) {
        *rc = m.u.error.code;
        awq_seterr(err, *rc, "server: %s", m.u.error.message.s ? m.u.error.message.s : awq_strerror(*rc));
    }
    ipc_msg_free(&m);
}

int awq_connect(char *err, const awq_connect_opts *o, awq_conn **out) {
    *out = NULL;
    awq_conn *c = calloc(1, sizeof *c);
    if (!c) return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    plat_mutex_init(&c->wmu);
    plat_mutex_init(&c->mu);
    plat_cond_init(&c->cv);
    c->io_timeout_ms = o->io_timeout_ms ? o->io_timeout_ms : 30000;
    c->max_frame = o->max_frame ? o->max_frame : CLIENT_MAX_FRAME_DEFAULT;
    int rc = 0;
    if (o->socket_path) {
        if (strlen(o->socket_path) >= sizeof c->path) rc = awq_seterr(err, AWQ_EINVAL, "socket path too long");
        else snprintf(c->path, sizeof c->path, "%s", o->socket_path);
    } else {
        rc = ipc_default_socket_path(err, c->path, sizeof c->path);
    }
    c->dec = ipc_frame_dec_create(c->max_frame);
    c->rbuf = malloc(RBUF);
    if (!rc && (!c->dec || !c->rbuf)) rc = awq_seterr(err, AWQ_ENOMEM, "out of memory or max_frame too large");
    uint64_t deadline = cl_deadline(o->connect_timeout_ms ? o->connect_timeout_ms : 5000);
    if (!rc) rc = ipc_connect(err, c->path, &c->sock);
    if (!rc && o->encrypt) rc = handshake(err, c, o, deadline);
    if (!rc) rc = say_hello(err, c, o, deadline);
    if (rc == AWQ_ECLOSED || rc == AWQ_EIO) refusal(err, c, &rc);
    if (rc) {
        awq_close(c);
        return rc;
    }
    *out = c;
    return 0;
}

void awq_close(awq_conn *c) {
    if (!c) return;
    ipc_sock_free(c->sock);
    while (c->pend) cl_pend_remove(c, c->pend);
    while (c->qhead) {
        qmsg *q = c->qhead;
        c->qhead = q->next;
        cl_msg_free(q->m);
        free(q);
    }
    cl_msg_free(c->hello);
    awq_buf_free(&c->ebuf);
    awq_buf_free(&c->wbuf);
    ipc_chan_free(c->chan);
    ipc_keypair_free(c->kp);
    ipc_frame_dec_free(c->dec);
    free(c->rbuf);
    free(c->cbuf);
    plat_cond_destroy(&c->cv);
    plat_mutex_destroy(&c->mu);
    plat_mutex_destroy(&c->wmu);
    free(c);
}

const awq_server_info *awq_info(const awq_conn *c) { return &c->info; }

/* ------------------------------------------------------------ pull API ---- */

static bool have_event(awq_conn *c, void *arg) {
    (void)arg;
    return c->qhead != NULL;
}

int awq_next_event(char *err, awq_conn *c, int timeout_ms, awq_event *ev) {
    memset(ev, 0, sizeof *ev);
    plat_mutex_lock(&c->mu);
    int rc = cl_pump(err, c, have_event, NULL, cl_deadline(timeout_ms));
    if (!rc) {
        qmsg *q = c->qhead;
        c->qhead = q->next;
        if (!c->qhead) c->qtail = NULL;
        cl_event_from(ev, q->m);
        ev->priv_ = q->m;
        free(q);
    } else if (c->broken && c->qhead == NULL) {
        rc = awq_seterr(err, c->broken == AWQ_ECLOSED ? AWQ_ECLOSED : c->broken, "%s", c->broken_msg);
    }
    plat_mutex_unlock(&c->mu);
    return rc;
}

void awq_event_free(awq_event *ev) {
    if (!ev) return;
    cl_msg_free(ev->priv_);
    memset(ev, 0, sizeof *ev);
}

typedef struct wait_arg {
    uint32_t id;
} wait_arg;

static bool req_gone(awq_conn *c, void *arg) { return pend_find(c, ((wait_arg *)arg)->id) == NULL; }

int awq_wait(char *err, awq_conn *c, uint32_t id, int timeout_ms) {
    wait_arg a = {id};
    plat_mutex_lock(&c->mu);
    int rc = cl_pump(err, c, req_gone, &a, cl_deadline(timeout_ms));
    plat_mutex_unlock(&c->mu);
    return rc;
}
