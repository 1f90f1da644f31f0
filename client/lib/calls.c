/* calls.c - libawq: request builders, synchronous calls, event and result conversion. */
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "keys.h"

_Static_assert(sizeof(awq_top) == sizeof(ipc_top) && offsetof(awq_top, lp) == offsetof(ipc_top, lp), "top layout");
_Static_assert(sizeof(awq_logprob) == sizeof(ipc_lp) && offsetof(awq_logprob, top) == offsetof(ipc_lp, top) &&
                   offsetof(awq_logprob, n_top) == offsetof(ipc_lp, n_top),
               "logprob layout");

/* ------------------------------------------------------------ events ---- */

void cl_event_from(awq_event *ev, const ipc_msg *m) {
    memset(ev, 0, sizeof *ev);
    ev->id = m->id;
    switch (m->type) {
    case IPC_T_TOKEN:
        ev->type = AWQ_EV_TOKEN;
        ev->text = m->u.token.text.s ? m->u.token.text.s : "";
        ev->text_len = m->u.token.text.len;
        ev->ids = m->u.token.ids;
        ev->n_ids = m->u.token.n_ids;
        ev->logprobs = (const awq_logprob *)m->u.token.lps; /* same layout, checked above */
        ev->n_logprobs = m->u.token.n_lps;
        break;
    case IPC_T_DONE:
        ev->type = AWQ_EV_DONE;
        ev->finish_reason = ipc_finish_name(m->u.done.finish);
        memcpy(&ev->stats, &m->u.done.stats, sizeof ev->stats);
        break;
    case IPC_T_ERROR:
        ev->type = AWQ_EV_ERROR;
        ev->code = m->u.error.code;
        ev->err_name = m->u.error.name.s ? m->u.error.name.s : awq_errname(m->u.error.code);
        ev->message = m->u.error.message.s ? m->u.error.message.s : awq_strerror(m->u.error.code);
        break;
    case IPC_T_PROGRESS:
        ev->type = AWQ_EV_PROGRESS;
        ev->stage = ipc_stage_name(m->u.progress.stage);
        ev->pct = m->u.progress.pct;
        break;
    default:
        ev->type = AWQ_EV_OTHER;
        ev->kind = ipc_type_name(m->type);
        break;
    }
}
_Static_assert(sizeof(awq_stats) == sizeof(ipc_stats), "stats layout");

/* ------------------------------------------------------------ generation ---- */

void awq_gen_req_init(awq_gen_req *r) {
    memset(r, 0, sizeof *r);
    r->add_bos = -1;
    r->temperature = 1.0f;
    r->top_p = 1.0f;
    r->typical_p = 1.0f;
    r->repetition_penalty = 1.0f;
    r->penalty_window = 64;
    r->stream = true;
}

static ipc_chat *chats_of(const awq_message *msgs, size_t n) {
    ipc_chat *c = calloc(n ? n : 1, sizeof *c);
    if (!c) return NULL;
    for (size_t i = 0; i < n; i++) {
        c[i].role = ipc_cstr(msgs[i].role ? msgs[i].role : "");
        c[i].content = ipc_cstr(msgs[i].content ? msgs[i].content : "");
    }
    return c;
}

int awq_generate(char *err, awq_conn *c, const awq_gen_req *req, awq_event_cb cb, void *user, uint32_t *id) {
    if ((req->messages == NULL) == (req->prompt == NULL))
        return awq_seterr(err, AWQ_EINVAL, "generate: set exactly one of messages or prompt");
    if (req->n_messages > IPC_MAX_MESSAGES || req->n_stop > IPC_MAX_STOP || req->n_stop_ids > IPC_MAX_STOP_IDS ||
        req->n_logit_bias > IPC_MAX_BIAS || req->logprobs > IPC_MAX_LOGPROBS)
        return awq_seterr(err, AWQ_ERANGE, "generate: too many messages, stops, biases or logprobs");
    ipc_msg m;
    ipc_msg_init(&m, IPC_T_GENERATE, 0);
    ipc_gen *g = &m.u.gen;
    ipc_chat *chats = NULL;
    ipc_str stops[IPC_MAX_STOP];
    if (req->messages) {
        if (!(chats = chats_of(req->messages, req->n_messages))) return awq_seterr(err, AWQ_ENOMEM, "out of memory");
        g->messages = chats;
        g->n_messages = (uint32_t)req->n_messages;
    } else {
        g->prompt = ipc_cstr(req->prompt);
    }
    g->raw = req->raw;
    g->add_bos = req->add_bos < 0 ? -1 : req->add_bos != 0;
    g->max_tokens = req->max_tokens;
    g->temperature = req->temperature;
    g->top_p = req->top_p;
    g->min_p = req->min_p;
    g->typical_p = req->typical_p;
    g->top_k = req->top_k;
    g->repetition_penalty = req->repetition_penalty;
    g->presence_penalty = req->presence_penalty;
    g->frequency_penalty = req->frequency_penalty;
    g->penalty_window = req->penalty_window;
    g->has_seed = req->has_seed;
    g->seed = req->seed;
    for (size_t i = 0; i < req->n_stop; i++) stops[i] = ipc_cstr(req->stop[i]);
    g->stop = stops;
    g->n_stop = (uint32_t)req->n_stop;
    g->stop_ids = (uint32_t *)req->stop_ids;
    g->n_stop_ids = (uint32_t)req->n_stop_ids;
    g->logit_bias = (ipc_bias *)req->logit_bias; /* same layout */
    g->n_logit_bias = (uint32_t)req->n_logit_bias;
    g->ignore_eos = req->ignore_eos;
    g->logprobs = req->logprobs;
    g->stream = req->stream;

    plat_mutex_lock(&c->mu);
    int rc = c->broken;
    if (rc) awq_seterr(err, rc, "%s", c->broken_msg);
    pend *p = NULL;
    if (!rc) {
        m.id = cl_next_id(c);
        p = cl_pend_add(c, m.id);
        if (!p) rc = awq_seterr(err, AWQ_ENOMEM, "out of memory");
        else {
            p->cb = cb;
            p->user = user;
        }
    }
    plat_mutex_unlock(&c->mu);
    if (!rc) rc = cl_send(err, c, &m);
    if (rc && p) {
        plat_mutex_lock(&c->mu);
        cl_pend_remove(c, p);
        plat_mutex_unlock(&c->mu);
    }
    free(chats);
    if (!rc && id) *id = m.id;
    return rc;
}
_Static_assert(sizeof(awq_bias) == sizeof(ipc_bias), "bias layout");

int awq_cancel(char *err, awq_conn *c, uint32_t id) {
    ipc_msg m, *r;
    ipc_msg_init(&m, IPC_T_CANCEL, 0);
    m.u.target = id;
    int rc = cl_call(err, c, &m, &r, NULL, NULL);
    cl_msg_free(r);
    return rc;
}

/* ------------------------------------------------------------ simple calls ---- */

static int simple(char *err, awq_conn *c, ipc_type t, ipc_type want, ipc_msg **resp) {
    ipc_msg m;
    ipc_msg_init(&m, t, 0);
    int rc = cl_call(err, c, &m, resp, NULL, NULL);
    if (!rc && (*resp)->type != want) {
        cl_msg_free(*resp);
        *resp = NULL;
        rc = awq_seterr(err, AWQ_EPROTO, "%s: the server answered with another message type", ipc_type_name(t));
    }
    return rc;
}

int awq_ping(char *err, awq_conn *c) {
    ipc_msg *r;
    int rc = simple(err, c, IPC_T_PING, IPC_T_PONG, &r);
    cl_msg_free(r);
    return rc;
}

int awq_unload(char *err, awq_conn *c) {
    ipc_msg *r;
    int rc = simple(err, c, IPC_T_UNLOAD, IPC_T_OK, &r);
    cl_msg_free(r);
    return rc;
}

int awq_shutdown(char *err, awq_conn *c) {
    ipc_msg *r;
    int rc = simple(err, c, IPC_T_SHUTDOWN, IPC_T_OK, &r);
    cl_msg_free(r);
    return rc;
}

static int map_of(char *err, ipc_msg *r, awq_map *out) {
    out->n = r->u.kvs.n_kv;
    out->kv = calloc(out->n ? out->n : 1, sizeof *out->kv);
    if (!out->kv) {
        cl_msg_free(r);
        return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < out->n; i++) {
        const ipc_kv *kv = &r->u.kvs.kv[i];
        out->kv[i].key = kv->key.s;
        out->kv[i].kind = (awq_kv_kind)kv->kind;
        out->kv[i].s = kv->s.s;
        out->kv[i].i = kv->i;
        out->kv[i].f = kv->f;
        out->kv[i].b = kv->b;
    }
    out->priv_ = r;
    return 0;
}

void awq_map_free(awq_map *m) {
    if (!m) return;
    free(m->kv);
    cl_msg_free(m->priv_);
    memset(m, 0, sizeof *m);
}

const awq_kv *awq_map_get(const awq_map *m, const char *key) {
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->kv[i].key, key) == 0) return &m->kv[i];
    return NULL;
}

int awq_status(char *err, awq_conn *c, awq_map *out) {
    memset(out, 0, sizeof *out);
    ipc_msg *r;
    int rc = simple(err, c, IPC_T_STATUS, IPC_T_STATUS_R, &r);
    return rc ? rc : map_of(err, r, out);
}

int awq_settings_get(char *err, awq_conn *c, const char *key, awq_map *out) {
    memset(out, 0, sizeof *out);
    ipc_msg m, *r;
    ipc_msg_init(&m, IPC_T_SETTINGS_GET, 0);
    m.u.setting.key = ipc_cstr(key);
    int rc = cl_call(err, c, &m, &r, NULL, NULL);
    if (rc) return rc;
    if (r->type != IPC_T_SETTINGS_R) {
        cl_msg_free(r);
        return awq_seterr(err, AWQ_EPROTO, "settings_get: unexpected answer");
    }
    return map_of(err, r, out);
}

int awq_settings_set(char *err, awq_conn *c, const char *key, const char *value) {
    ipc_msg m, *r;
    ipc_msg_init(&m, IPC_T_SETTINGS_SET, 0);
    m.u.setting.key = ipc_cstr(key);
    m.u.setting.value = ipc_cstr(value);
    int rc = cl_call(err, c, &m, &r, NULL, NULL);
    cl_msg_free(r);
    return rc;
}

int awq_tokenize(char *err, awq_conn *c, const char *text, size_t len, bool add_bos, bool special, uint32_t **ids,
                 size_t *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    if (len > UINT32_MAX) return awq_seterr(err, AWQ_ETOOBIG, "tokenize: text too long");
    ipc_msg m, *r;
    ipc_msg_init(&m, IPC_T_TOKENIZE, 0);
    m.u.tokenize.text.s = text;
    m.u.tokenize.text.len = (uint32_t)len;
    m.u.tokenize.add_bos = add_bos;
    m.u.tokenize.special = special;
    int rc = cl_call(err, c, &m, &r, NULL, NULL);
    if (rc) return rc;
    if (r->type != IPC_T_TOKENIZE_R) rc = awq_seterr(err, AWQ_EPROTO, "tokenize: unexpected answer");
    else if (!(*ids = malloc((r->u.ids.n_ids ? r->u.ids.n_ids : 1) * sizeof **ids)))
        rc = awq_seterr(err, AWQ_ENOMEM, "out of memory");
    else {
        memcpy(*ids, r->u.ids.ids, r->u.ids.n_ids * sizeof **ids);
        *n_ids = r->u.ids.n_ids;
    }
    cl_msg_free(r);
    return rc;
}

/* The text of a *_result message, copied to a malloc'ed string. */
static int text_of(char *err, ipc_msg *r, ipc_type want, char **text, size_t *len) {
    int rc = 0;
    if (r->type != want) rc = awq_seterr(err, AWQ_EPROTO, "unexpected answer from the server");
    else if (!(*text = malloc((size_t)r->u.text.len + 1))) rc = awq_seterr(err, AWQ_ENOMEM, "out of memory");
    else {
        if (r->u.text.len) memcpy(*text, r->u.text.s, r->u.text.len);
        (*text)[r->u.text.len] = 0;
        if (len) *len = r->u.text.len;
    }
    cl_msg_free(r);
    return rc;
}

int awq_detokenize(char *err, awq_conn *c, const uint32_t *ids, size_t n_ids, bool skip_special, char **text,
                   size_t *len) {
    *text = NULL;
    if (n_ids > UINT32_MAX / 8) return awq_seterr(err, AWQ_ETOOBIG, "detokenize: too many ids");
    ipc_msg m, *r;
    ipc_msg_init(&m, IPC_T_DETOKENIZE, 0);
    m.u.ids.ids = (uint32_t *)ids;
    m.u.ids.n_ids = (uint32_t)n_ids;
    m.u.ids.skip_special = skip_special;
    int rc = cl_call(err, c, &m, &r, NULL, NULL);
    return rc ? rc : text_of(err, r, IPC_T_DETOKENIZE_R, text, len);
}

int awq_template(char *err, awq_conn *c, const awq_message *msgs, size_t n, bool add_generation_prompt,
                 char **text) {
    *text = NULL;
    if (n > IPC_MAX_MESSAGES) return awq_seterr(err, AWQ_ERANGE, "template: more than %d messages", IPC_MAX_MESSAGES);
    ipc_msg m, *r;
    ipc_msg_init(&m, IPC_T_TEMPLATE, 0);
    ipc_chat *chats = chats_of(msgs, n);
    if (!chats) return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    m.u.tmpl.messages = chats;
    m.u.tmpl.n_messages = (uint32_t)n;
    m.u.tmpl.add_generation_prompt = add_generation_prompt;
    int rc = cl_call(err, c, &m, &r, NULL, NULL);
    free(chats);
    return rc ? rc : text_of(err, r, IPC_T_TEMPLATE_R, text, NULL);
}

int awq_metrics(char *err, awq_conn *c, char **text) {
    *text = NULL;
    ipc_msg *r;
    int rc = simple(err, c, IPC_T_METRICS, IPC_T_METRICS_R, &r);
    return rc ? rc : text_of(err, r, IPC_T_METRICS_R, text, NULL);
}

int awq_load(char *err, awq_conn *c, const char *path, awq_progress_cb progress, void *user) {
    ipc_msg m, *r;
    ipc_msg_init(&m, IPC_T_LOAD, 0);
    m.u.text = ipc_cstr(path);
    int rc = cl_call(err, c, &m, &r, progress, user);
    if (!rc && r->type != IPC_T_OK) rc = awq_seterr(err, AWQ_EPROTO, "load: unexpected answer");
    cl_msg_free(r);
    return rc;
}

int awq_list(char *err, awq_conn *c, awq_models *out) {
    memset(out, 0, sizeof *out);
    ipc_msg *r;
    int rc = simple(err, c, IPC_T_LIST, IPC_T_LIST_R, &r);
    if (rc) return rc;
    out->n = r->u.models.n_models;
    out->models = calloc(out->n ? out->n : 1, sizeof *out->models);
    if (!out->models) {
        cl_msg_free(r);
        return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < out->n; i++) {
        const ipc_model_info *mi = &r->u.models.models[i];
        out->models[i].name = mi->name.s ? mi->name.s : "";
        out->models[i].path = mi->path.s ? mi->path.s : "";
        out->models[i].size = mi->size;
        out->models[i].loaded = mi->loaded;
    }
    out->priv_ = r;
    return 0;
}

void awq_models_free(awq_models *m) {
    if (!m) return;
    free(m->models);
    cl_msg_free(m->priv_);
    memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------ keys, misc ---- */

int awq_keygen(char *err, const char *key_path, const char *pub_path) { return ipc_keygen(err, key_path, pub_path); }

int awq_key_fingerprint(char *err, const char *pub_path, char fp[AWQ_FP_LEN]) {
    uint8_t pk[IPC_KEY_BYTES];
    int rc = ipc_crypto_init(err);
    if (!rc) rc = ipc_pubkey_load(err, pub_path, pk);
    if (!rc) ipc_fingerprint(pk, fp);
    return rc;
}

int awq_default_socket_path(char *err, char *out, size_t n) { return ipc_default_socket_path(err, out, n); }

void awq_free(void *p) { free(p); }
