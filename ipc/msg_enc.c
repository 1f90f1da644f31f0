/* msg_enc.c - encoding of wire messages; see msg.h and docs/protocol.md.
 *
 * Maps whose entry count depends on optional fields are written with a map16 header whose count
 * is patched at the end (valid msgpack: a writer may use any header width). */
#include "msg.h"

#include <string.h>

#include "mp.h"

typedef struct enc {
    ipc_mp_wr w;
    char *err;
} enc;

/* Begin a map of unknown size: returns its offset, count patched by map_end. */
static size_t map_begin(enc *e) {
    static const uint8_t h[3] = {0xde, 0, 0};
    size_t at = e->w.b->len;
    if (!e->w.rc && awq_buf_append(e->w.b, h, 3)) e->w.rc = AWQ_ENOMEM;
    return at;
}

static void map_end(enc *e, size_t at, unsigned count) {
    if (e->w.rc) return;
    e->w.b->data[at + 1] = (char)(count >> 8);
    e->w.b->data[at + 2] = (char)count;
}

static void key(enc *e, const char *k) { ipc_mp_cstr(&e->w, k); }
static void s_(enc *e, ipc_str s) { ipc_mp_str(&e->w, s.s ? s.s : "", s.s ? s.len : 0); }

static void chats(enc *e, const ipc_chat *c, uint32_t n) {
    ipc_mp_array(&e->w, n);
    for (uint32_t i = 0; i < n; i++) {
        ipc_mp_map(&e->w, 2);
        key(e, "role");
        s_(e, c[i].role);
        key(e, "content");
        s_(e, c[i].content);
    }
}

static void ids(enc *e, const uint32_t *v, uint32_t n) {
    ipc_mp_array(&e->w, n);
    for (uint32_t i = 0; i < n; i++) ipc_mp_uint(&e->w, v[i]);
}

static void kvs(enc *e, const ipc_kv *kv, uint32_t n) {
    ipc_mp_map(&e->w, n);
    for (uint32_t i = 0; i < n; i++) {
        s_(e, kv[i].key);
        switch (kv[i].kind) {
        case IPC_KV_STR: s_(e, kv[i].s); break;
        case IPC_KV_INT: ipc_mp_int(&e->w, kv[i].i); break;
        case IPC_KV_FLOAT: ipc_mp_float(&e->w, kv[i].f); break;
        case IPC_KV_BOOL: ipc_mp_bool(&e->w, kv[i].b); break;
        }
    }
}

/* Fields of generate that differ from the protocol defaults are sent; the rest are left out. */
static unsigned gen(enc *e, const ipc_gen *g) {
    unsigned n = 0;
    ipc_mp_wr *w = &e->w;
    if (g->messages || g->n_messages) { key(e, "messages"); chats(e, g->messages, g->n_messages); n++; }
    else { key(e, "prompt"); s_(e, g->prompt); n++; }
    if (g->raw) { key(e, "raw"); ipc_mp_bool(w, true); n++; }
    if (g->add_bos >= 0) { key(e, "add_bos"); ipc_mp_bool(w, g->add_bos != 0); n++; }
    if (g->max_tokens) { key(e, "max_tokens"); ipc_mp_uint(w, g->max_tokens); n++; }
#define F(name, def) if (g->name != (def)) { key(e, #name); ipc_mp_float(w, g->name); n++; }
    F(temperature, 1.0f) F(top_p, 1.0f) F(min_p, 0.0f) F(typical_p, 1.0f) F(repetition_penalty, 1.0f)
    F(presence_penalty, 0.0f) F(frequency_penalty, 0.0f)
#undef F
    if (g->top_k) { key(e, "top_k"); ipc_mp_uint(w, g->top_k); n++; }
    if (g->penalty_window != 64) { key(e, "penalty_window"); ipc_mp_uint(w, g->penalty_window); n++; }
    if (g->has_seed) { key(e, "seed"); ipc_mp_uint(w, g->seed); n++; }
    if (g->n_stop) {
        key(e, "stop");
        ipc_mp_array(w, g->n_stop);
        for (uint32_t i = 0; i < g->n_stop; i++) s_(e, g->stop[i]);
        n++;
    }
    if (g->n_stop_ids) { key(e, "stop_ids"); ids(e, g->stop_ids, g->n_stop_ids); n++; }
    if (g->n_logit_bias) {
        key(e, "logit_bias");
        ipc_mp_map(w, g->n_logit_bias);
        for (uint32_t i = 0; i < g->n_logit_bias; i++) {
            ipc_mp_uint(w, g->logit_bias[i].id);
            ipc_mp_float(w, g->logit_bias[i].bias);
        }
        n++;
    }
    if (g->ignore_eos) { key(e, "ignore_eos"); ipc_mp_bool(w, true); n++; }
    if (g->logprobs) { key(e, "logprobs"); ipc_mp_uint(w, g->logprobs); n++; }
    if (!g->stream) { key(e, "stream"); ipc_mp_bool(w, false); n++; }
    return n;
}

static unsigned token(enc *e, const ipc_token *t) {
    ipc_mp_wr *w = &e->w;
    unsigned n = 2;
    key(e, "text");
    s_(e, t->text);
    key(e, "ids");
    ids(e, t->ids, t->n_ids);
    if (t->n_lps) {
        key(e, "logprobs");
        ipc_mp_array(w, t->n_lps);
        for (uint32_t i = 0; i < t->n_lps; i++) {
            const ipc_lp *l = &t->lps[i];
            ipc_mp_map(w, 3);
            key(e, "id");
            ipc_mp_uint(w, l->id);
            key(e, "lp");
            ipc_mp_float(w, l->lp);
            key(e, "top");
            ipc_mp_array(w, l->n_top);
            for (uint32_t j = 0; j < l->n_top; j++) {
                ipc_mp_array(w, 2);
                ipc_mp_uint(w, l->top[j].id);
                ipc_mp_float(w, l->top[j].lp);
            }
        }
        n++;
    }
    return n;
}

static unsigned hello(enc *e, const ipc_hello *h) {
    ipc_mp_wr *w = &e->w;
    unsigned n = 1;
    key(e, "proto");
    ipc_mp_array(w, 2);
    ipc_mp_uint(w, h->proto_major);
    ipc_mp_uint(w, h->proto_minor);
    if (h->client.s) { key(e, "client"); s_(e, h->client); n++; }
    if (h->server.s) { key(e, "server"); s_(e, h->server); n++; }
    if (h->model.s) { key(e, "model"); s_(e, h->model); n++; }
    key(e, "features");
    ipc_mp_array(w, h->n_features);
    for (uint32_t i = 0; i < h->n_features; i++) s_(e, h->features[i]);
    n++;
    if (h->limits) { key(e, "limits"); kvs(e, h->limits, h->n_limits); n++; }
    return n;
}

static unsigned body(enc *e, const ipc_msg *m) {
    ipc_mp_wr *w = &e->w;
    switch (m->type) {
    case IPC_T_HELLO: return hello(e, &m->u.hello);
    case IPC_T_GENERATE: return gen(e, &m->u.gen);
    case IPC_T_TOKEN: return token(e, &m->u.token);
    case IPC_T_DONE: {
        const ipc_stats *s = &m->u.done.stats;
        key(e, "finish_reason");
        ipc_mp_cstr(w, ipc_finish_name(m->u.done.finish));
        key(e, "stats");
        ipc_mp_map(w, 6);
        key(e, "prompt_tokens"); ipc_mp_uint(w, s->prompt_tokens);
        key(e, "gen_tokens"); ipc_mp_uint(w, s->gen_tokens);
        key(e, "ttft_ms"); ipc_mp_float(w, s->ttft_ms);
        key(e, "prefill_tok_s"); ipc_mp_float(w, s->prefill_tok_s);
        key(e, "decode_tok_s"); ipc_mp_float(w, s->decode_tok_s);
        key(e, "total_ms"); ipc_mp_float(w, s->total_ms);
        return 2;
    }
    case IPC_T_ERROR:
        key(e, "code"); ipc_mp_int(w, m->u.error.code);
        key(e, "name");
        if (m->u.error.name.s) s_(e, m->u.error.name);
        else ipc_mp_cstr(w, awq_errname(m->u.error.code));
        key(e, "message");
        if (m->u.error.message.s) s_(e, m->u.error.message);
        else ipc_mp_cstr(w, awq_strerror(m->u.error.code));
        return 3;
    case IPC_T_CANCEL: key(e, "target"); ipc_mp_uint(w, m->u.target); return 1;
    case IPC_T_TOKENIZE: {
        unsigned n = 1;
        key(e, "text"); s_(e, m->u.tokenize.text);
        if (!m->u.tokenize.add_bos) { key(e, "add_bos"); ipc_mp_bool(w, false); n++; }
        if (m->u.tokenize.special) { key(e, "special"); ipc_mp_bool(w, true); n++; }
        return n;
    }
    case IPC_T_TOKENIZE_R:
    case IPC_T_DETOKENIZE:
        key(e, "ids"); ids(e, m->u.ids.ids, m->u.ids.n_ids);
        if (m->type == IPC_T_DETOKENIZE && m->u.ids.skip_special) {
            key(e, "skip_special"); ipc_mp_bool(w, true);
            return 2;
        }
        return 1;
    case IPC_T_DETOKENIZE_R:
    case IPC_T_TEMPLATE_R:
    case IPC_T_METRICS_R: key(e, "text"); s_(e, m->u.text); return 1;
    case IPC_T_LOAD: key(e, "path"); s_(e, m->u.text); return 1;
    case IPC_T_TEMPLATE:
        key(e, "messages"); chats(e, m->u.tmpl.messages, m->u.tmpl.n_messages);
        if (!m->u.tmpl.add_generation_prompt) { key(e, "add_generation_prompt"); ipc_mp_bool(w, false); return 2; }
        return 1;
    case IPC_T_PROGRESS:
        key(e, "stage"); ipc_mp_cstr(w, ipc_stage_name(m->u.progress.stage));
        key(e, "pct"); ipc_mp_float(w, m->u.progress.pct);
        return 2;
    case IPC_T_LIST_R:
        key(e, "models");
        ipc_mp_array(w, m->u.models.n_models);
        for (uint32_t i = 0; i < m->u.models.n_models; i++) {
            const ipc_model_info *mi = &m->u.models.models[i];
            ipc_mp_map(w, 4);
            key(e, "name"); s_(e, mi->name);
            key(e, "path"); s_(e, mi->path);
            key(e, "size"); ipc_mp_uint(w, mi->size);
            key(e, "loaded"); ipc_mp_bool(w, mi->loaded);
        }
        return 1;
    case IPC_T_STATUS_R: key(e, "info"); kvs(e, m->u.kvs.kv, m->u.kvs.n_kv); return 1;
    case IPC_T_SETTINGS_R: key(e, "settings"); kvs(e, m->u.kvs.kv, m->u.kvs.n_kv); return 1;
    case IPC_T_SETTINGS_GET:
        if (m->u.setting.key.s) { key(e, "key"); s_(e, m->u.setting.key); return 1; }
        return 0;
    case IPC_T_SETTINGS_SET:
        key(e, "key"); s_(e, m->u.setting.key);
        key(e, "value"); s_(e, m->u.setting.value);
        return 2;
    default:
        return 0; /* ping, pong, ok, unload, list, status, metrics, shutdown */
    }
}

int ipc_msg_encode(char *err, const ipc_msg *m, awq_buf *out) {
    const char *tn = ipc_type_name(m->type);
    if (!tn) return awq_seterr(err, AWQ_EINVAL, "encode: unknown message type %d", (int)m->type);
    if (m->type == IPC_T_SETTINGS_R) /* settings are strings on the wire */
        for (uint32_t i = 0; i < m->u.kvs.n_kv; i++)
            if (m->u.kvs.kv[i].kind != IPC_KV_STR)
                return awq_seterr(err, AWQ_EINVAL, "encode: settings_result value of \"%s\" is not a string",
                                  m->u.kvs.kv[i].key.s ? m->u.kvs.kv[i].key.s : "");
    size_t start = out->len;
    enc e = {.err = err};
    int rc = ipc_mp_wr_init(&e.w, out);
    if (rc) return awq_seterr(err, rc, "encode: out of memory");
    size_t at = map_begin(&e);
    unsigned n = 1;
    key(&e, "t");
    ipc_mp_cstr(&e.w, tn);
    if (m->id || (m->type != IPC_T_HELLO && m->type != IPC_T_ERROR)) {
        key(&e, "id");
        ipc_mp_uint(&e.w, m->id);
        n++;
    }
    n += body(&e, m);
    map_end(&e, at, n);
    rc = e.w.rc;
    ipc_mp_wr_done(&e.w);
    if (rc) {
        out->len = start;
        return awq_seterr(err, rc, "encode %s: %s", tn, awq_strerror(rc));
    }
    return 0;
}
