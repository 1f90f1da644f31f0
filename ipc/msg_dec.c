/* msg_dec.c - decoding and type names of wire messages; see msg.h and docs/protocol.md. */
#include "msg.h"

#include <math.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mp.h"

/* ------------------------------------------------------------ names ---- */

static const char *const type_names[IPC_T_COUNT] = {
    [IPC_T_UNKNOWN] = NULL,
    [IPC_T_HELLO] = "hello",
    [IPC_T_PING] = "ping",
    [IPC_T_PONG] = "pong",
    [IPC_T_GENERATE] = "generate",
    [IPC_T_TOKEN] = "token",
    [IPC_T_DONE] = "done",
    [IPC_T_ERROR] = "error",
    [IPC_T_CANCEL] = "cancel",
    [IPC_T_OK] = "ok",
    [IPC_T_TOKENIZE] = "tokenize",
    [IPC_T_TOKENIZE_R] = "tokenize_result",
    [IPC_T_DETOKENIZE] = "detokenize",
    [IPC_T_DETOKENIZE_R] = "detokenize_result",
    [IPC_T_TEMPLATE] = "template",
    [IPC_T_TEMPLATE_R] = "template_result",
    [IPC_T_LOAD] = "load",
    [IPC_T_PROGRESS] = "progress",
    [IPC_T_UNLOAD] = "unload",
    [IPC_T_LIST] = "list",
    [IPC_T_LIST_R] = "list_result",
    [IPC_T_STATUS] = "status",
    [IPC_T_STATUS_R] = "status_result",
    [IPC_T_SETTINGS_GET] = "settings_get",
    [IPC_T_SETTINGS_R] = "settings_result",
    [IPC_T_SETTINGS_SET] = "settings_set",
    [IPC_T_METRICS] = "metrics",
    [IPC_T_METRICS_R] = "metrics_result",
    [IPC_T_SHUTDOWN] = "shutdown",
};

const char *ipc_type_name(ipc_type t) {
    return (unsigned)t < IPC_T_COUNT ? type_names[t] : NULL;
}

ipc_type ipc_type_from_name(const char *s, size_t len) {
    for (int t = 1; t < IPC_T_COUNT; t++)
        if (strlen(type_names[t]) == len && memcmp(type_names[t], s, len) == 0) return (ipc_type)t;
    return IPC_T_UNKNOWN;
}

bool ipc_type_is_request(ipc_type t) {
    switch (t) {
    case IPC_T_HELLO: case IPC_T_PING: case IPC_T_GENERATE: case IPC_T_CANCEL: case IPC_T_TOKENIZE:
    case IPC_T_DETOKENIZE: case IPC_T_TEMPLATE: case IPC_T_LOAD: case IPC_T_UNLOAD: case IPC_T_LIST:
    case IPC_T_STATUS: case IPC_T_SETTINGS_GET: case IPC_T_SETTINGS_SET: case IPC_T_METRICS:
    case IPC_T_SHUTDOWN:
        return true;
    default:
        return false;
    }
}

bool ipc_type_is_terminal(ipc_type t) {
    return t != IPC_T_TOKEN && t != IPC_T_PROGRESS && !ipc_type_is_request(t) && t != IPC_T_UNKNOWN;
}

static const char *const finish_names[] = {"stop", "length", "context", "cancel", "error"};
const char *ipc_finish_name(ipc_finish f) {
    return (unsigned)f < 5 ? finish_names[f] : "error";
}
static const char *const stage_names[] = {"mapped", "validated", "uploaded", "ready"};
const char *ipc_stage_name(ipc_stage s) {
    return (unsigned)s < 4 ? stage_names[s] : "ready";
}

ipc_str ipc_cstr(const char *s) {
    ipc_str r = {s, s ? (uint32_t)strlen(s) : 0};
    return r;
}

void ipc_msg_init(ipc_msg *m, ipc_type type, uint32_t id) {
    memset(m, 0, sizeof *m);
    m->type = type;
    m->id = id;
    if (type == IPC_T_GENERATE) {
        ipc_gen *g = &m->u.gen;
        g->add_bos = -1;
        g->temperature = 1.0f;
        g->top_p = 1.0f;
        g->typical_p = 1.0f;
        g->repetition_penalty = 1.0f;
        g->penalty_window = 64;
        g->stream = true;
    } else if (type == IPC_T_TOKENIZE) {
        m->u.tokenize.add_bos = true;
    } else if (type == IPC_T_TEMPLATE) {
        m->u.tmpl.add_generation_prompt = true;
    } else if (type == IPC_T_HELLO) {
        m->u.hello.proto_major = IPC_PROTO_MAJOR;
        m->u.hello.proto_minor = IPC_PROTO_MINOR;
    }
}

/* ------------------------------------------------------------ arena ---- */
/* Every decoded string and array comes from one arena per message. Its total size is bounded by
 * a small multiple of the payload size: each decoded element was at least one byte on the wire. */

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    alignas(max_align_t) unsigned char data[];
} chunk;

static void *ar_alloc(ipc_msg *m, size_t n) {
    n = (n + 15) & ~(size_t)15;
    chunk *c = m->arena_;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 4000 ? n : 4000;
        chunk *nc = malloc(sizeof *nc + cap);
        if (!nc) return NULL;
        nc->used = 0;
        nc->cap = cap;
        if (c && n > 4000) { /* a big one-off: keep using the current chunk for small things */
            nc->next = c->next;
            c->next = nc;
        } else {
            nc->next = c;
            m->arena_ = nc;
        }
        c = nc;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

void ipc_msg_free(ipc_msg *m) {
    if (!m) return;
    chunk *c = m->arena_;
    while (c) {
        chunk *n = c->next;
        free(c);
        c = n;
    }
    m->arena_ = NULL;
}

/* ------------------------------------------------------------ field readers ---- */

typedef struct dc {
    char *err;
    ipc_mp_rd r;
    ipc_msg *m;
    const char *tn; /* type name, for messages */
} dc;

static int bad_type(dc *d, const char *field, const char *want) {
    return awq_seterr(d->err, AWQ_EINVAL, "%s: field \"%s\": expected %s, got %s", d->tn, field, want,
                      ipc_mp_kind_name(ipc_mp_peek(&d->r)));
}

static int nomem(dc *d) { return awq_seterr(d->err, AWQ_ENOMEM, "%s: out of memory", d->tn); }

static int rd_str(dc *d, const char *field, ipc_str *out, uint32_t max_len) {
    const char *s;
    uint32_t len;
    if (ipc_mp_read_str(&d->r, &s, &len)) return bad_type(d, field, "string");
    if (max_len && len > max_len)
        return awq_seterr(d->err, AWQ_ERANGE, "%s: field \"%s\" is %u bytes, the limit is %u", d->tn, field,
                          len, max_len);
    char *c = ar_alloc(d->m, (size_t)len + 1);
    if (!c) return nomem(d);
    memcpy(c, s, len);
    c[len] = 0;
    out->s = c;
    out->len = len;
    return 0;
}

static int rd_u64(dc *d, const char *field, uint64_t *out, uint64_t lo, uint64_t hi) {
    uint64_t v;
    int rc = ipc_mp_read_uint(&d->r, &v);
    if (rc == AWQ_ERANGE)
        return awq_seterr(d->err, AWQ_ERANGE, "%s: field \"%s\" must not be negative", d->tn, field);
    if (rc) return bad_type(d, field, "unsigned integer");
    if (v < lo || v > hi)
        return awq_seterr(d->err, AWQ_ERANGE, "%s: field \"%s\" = %llu is out of range [%llu, %llu]", d->tn,
                          field, (unsigned long long)v, (unsigned long long)lo, (unsigned long long)hi);
    *out = v;
    return 0;
}

static int rd_u32(dc *d, const char *field, uint32_t *out, uint32_t lo, uint32_t hi) {
    uint64_t v;
    int rc = rd_u64(d, field, &v, lo, hi);
    if (!rc) *out = (uint32_t)v;
    return rc;
}

/* A finite float in [lo, hi]; allow_neg_inf admits -inf (log-probabilities). */
static int rd_f32(dc *d, const char *field, float *out, double lo, double hi, bool allow_neg_inf) {
    double v;
    if (ipc_mp_read_float(&d->r, &v)) return bad_type(d, field, "float");
    if (allow_neg_inf && isinf(v) && v < 0) {
        *out = -INFINITY;
        return 0;
    }
    if (isnan(v) || v < lo || v > hi)
        return awq_seterr(d->err, AWQ_ERANGE, "%s: field \"%s\" = %g is out of range [%g, %g]", d->tn, field, v,
                          lo, hi);
    *out = (float)v;
    return 0;
}

static int rd_bool(dc *d, const char *field, bool *out) {
    if (ipc_mp_read_bool(&d->r, out)) return bad_type(d, field, "boolean");
    return 0;
}

static int rd_array(dc *d, const char *field, uint32_t *n, uint32_t max) {
    if (ipc_mp_read_array(&d->r, n)) return bad_type(d, field, "array");
    if (max && *n > max)
        return awq_seterr(d->err, AWQ_ERANGE, "%s: field \"%s\" has %u elements, the limit is %u", d->tn, field,
                          *n, max);
    return 0;
}

/* Arena-allocated array of n elements of size sz (n is bounded by the payload's bytes). */
static void *rd_alloc_n(dc *d, uint32_t n, size_t sz) {
    if (n == 0) return ar_alloc(d->m, 1);
    return ar_alloc(d->m, (size_t)n * sz);
}

static int rd_ids(dc *d, const char *field, uint32_t **ids, uint32_t *n, uint32_t max) {
    int rc = rd_array(d, field, n, max);
    if (rc) return rc;
    *ids = rd_alloc_n(d, *n, sizeof **ids);
    if (!*ids) return nomem(d);
    for (uint32_t i = 0; i < *n; i++)
        if ((rc = rd_u32(d, field, &(*ids)[i], 0, UINT32_MAX))) return rc;
    return 0;
}

static int rd_strs(dc *d, const char *field, ipc_str **out, uint32_t *n, uint32_t max, uint32_t max_len) {
    int rc = rd_array(d, field, n, max);
    if (rc) return rc;
    *out = rd_alloc_n(d, *n, sizeof **out);
    if (!*out) return nomem(d);
    for (uint32_t i = 0; i < *n; i++)
        if ((rc = rd_str(d, field, &(*out)[i], max_len))) return rc;
    return 0;
}

static bool key_is(const char *k, uint32_t kl, const char *name) {
    return strlen(name) == kl && memcmp(k, name, kl) == 0;
}

static int rd_key(dc *d, const char **k, uint32_t *kl) {
    if (ipc_mp_read_str(&d->r, k, kl))
        return awq_seterr(d->err, AWQ_EPROTO, "%s: map key at offset %zu is a %s, not a string", d->tn, d->r.off,
                          ipc_mp_kind_name(ipc_mp_peek(&d->r)));
    return 0;
}

/* [{"role": str, "content": str}, ...] */
static int rd_chats(dc *d, const char *field, ipc_chat **out, uint32_t *n) {
    int rc = rd_array(d, field, n, IPC_MAX_MESSAGES);
    if (rc) return rc;
    *out = rd_alloc_n(d, *n, sizeof **out);
    if (!*out) return nomem(d);
    for (uint32_t i = 0; i < *n; i++) {
        ipc_chat *c = &(*out)[i];
        memset(c, 0, sizeof *c);
        uint32_t nk;
        if (ipc_mp_read_map(&d->r, &nk)) return bad_type(d, field, "array of maps");
        for (uint32_t j = 0; j < nk; j++) {
            const char *k;
            uint32_t kl;
            if ((rc = rd_key(d, &k, &kl))) return rc;
            if (key_is(k, kl, "role")) rc = rd_str(d, "role", &c->role, IPC_MAX_NAME);
            else if (key_is(k, kl, "content")) rc = rd_str(d, "content", &c->content, 0);
            else rc = ipc_mp_skip(&d->r) ? AWQ_EPROTO : 0;
            if (rc) return rc;
        }
        if (!c->role.s || !c->content.s)
            return awq_seterr(d->err, AWQ_EINVAL, "%s: %s[%u] needs \"role\" and \"content\" strings", d->tn,
                              field, i);
    }
    return 0;
}

/* A map of string -> scalar. strings_only: every value must be a string (settings). */
static int rd_kvs(dc *d, const char *field, ipc_kv **out, uint32_t *n, bool strings_only) {
    if (ipc_mp_read_map(&d->r, n)) return bad_type(d, field, "map");
    *out = rd_alloc_n(d, *n, sizeof **out);
    if (!*out) return nomem(d);
    for (uint32_t i = 0; i < *n; i++) {
        ipc_kv *kv = &(*out)[i];
        memset(kv, 0, sizeof *kv);
        int rc = rd_str(d, field, &kv->key, IPC_MAX_NAME);
        if (rc) return rc;
        ipc_mp_kind k = ipc_mp_peek(&d->r);
        if (strings_only && k != IPC_MP_STR) return bad_type(d, kv->key.s, "string");
        switch (k) {
        case IPC_MP_STR: kv->kind = IPC_KV_STR; rc = rd_str(d, kv->key.s, &kv->s, 0); break;
        case IPC_MP_UINT:
        case IPC_MP_INT:
            kv->kind = IPC_KV_INT;
            rc = ipc_mp_read_int(&d->r, &kv->i);
            if (rc) rc = awq_seterr(d->err, AWQ_ERANGE, "%s: \"%s\" does not fit int64", d->tn, kv->key.s);
            break;
        case IPC_MP_FLOAT: kv->kind = IPC_KV_FLOAT; rc = ipc_mp_read_float(&d->r, &kv->f) ? AWQ_EPROTO : 0; break;
        case IPC_MP_BOOL: kv->kind = IPC_KV_BOOL; rc = ipc_mp_read_bool(&d->r, &kv->b) ? AWQ_EPROTO : 0; break;
        default: return bad_type(d, kv->key.s, "string, integer, float or boolean");
        }
        if (rc) return rc;
    }
    return 0;
}

/* {"<id>": float, ...} with uint keys (or decimal strings, for JSON-minded clients). */
static int rd_bias(dc *d, ipc_bias **out, uint32_t *n) {
    if (ipc_mp_read_map(&d->r, n)) return bad_type(d, "logit_bias", "map");
    if (*n > IPC_MAX_BIAS)
        return awq_seterr(d->err, AWQ_ERANGE, "%s: field \"logit_bias\" has %u entries, the limit is %u", d->tn,
                          *n, IPC_MAX_BIAS);
    *out = rd_alloc_n(d, *n, sizeof **out);
    if (!*out) return nomem(d);
    for (uint32_t i = 0; i < *n; i++) {
        uint64_t id = 0;
        if (ipc_mp_peek(&d->r) == IPC_MP_STR) {
            const char *s;
            uint32_t len;
            if (ipc_mp_read_str(&d->r, &s, &len)) return AWQ_EPROTO;
            if (len == 0 || len > 10) return awq_seterr(d->err, AWQ_EINVAL, "%s: logit_bias key is not a token id", d->tn);
            for (uint32_t j = 0; j < len; j++) {
                if (s[j] < '0' || s[j] > '9')
                    return awq_seterr(d->err, AWQ_EINVAL, "%s: logit_bias key \"%.*s\" is not a token id", d->tn,
                                      (int)len, s);
                id = id * 10 + (uint64_t)(s[j] - '0');
            }
            if (id > UINT32_MAX) return awq_seterr(d->err, AWQ_ERANGE, "%s: logit_bias key out of range", d->tn);
        } else {
            int rc = rd_u64(d, "logit_bias", &id, 0, UINT32_MAX);
            if (rc) return rc;
        }
        (*out)[i].id = (uint32_t)id;
        int rc = rd_f32(d, "logit_bias", &(*out)[i].bias, -100, 100, false);
        if (rc) return rc;
    }
    return 0;
}

/* [{"id": uint, "lp": float, "top": [[id, lp], ...]}, ...] */
static int rd_lps(dc *d, ipc_lp **out, uint32_t *n) {
    int rc = rd_array(d, "logprobs", n, 0);
    if (rc) return rc;
    *out = rd_alloc_n(d, *n, sizeof **out);
    if (!*out) return nomem(d);
    for (uint32_t i = 0; i < *n; i++) {
        ipc_lp *l = &(*out)[i];
        memset(l, 0, sizeof *l);
        uint32_t nk;
        if (ipc_mp_read_map(&d->r, &nk)) return bad_type(d, "logprobs", "array of maps");
        for (uint32_t j = 0; j < nk; j++) {
            const char *k;
            uint32_t kl;
            if ((rc = rd_key(d, &k, &kl))) return rc;
            if (key_is(k, kl, "id")) rc = rd_u32(d, "logprobs.id", &l->id, 0, UINT32_MAX);
            else if (key_is(k, kl, "lp")) rc = rd_f32(d, "logprobs.lp", &l->lp, -1e30, 0, true);
            else if (key_is(k, kl, "top")) {
                rc = rd_array(d, "logprobs.top", &l->n_top, IPC_MAX_LOGPROBS);
                if (rc) return rc;
                l->top = rd_alloc_n(d, l->n_top, sizeof *l->top);
                if (!l->top) return nomem(d);
                for (uint32_t t = 0; t < l->n_top && !rc; t++) {
                    uint32_t two;
                    if ((rc = rd_array(d, "logprobs.top", &two, 2))) return rc;
                    if (two != 2) return bad_type(d, "logprobs.top", "[id, lp] pairs");
                    rc = rd_u32(d, "logprobs.top", &l->top[t].id, 0, UINT32_MAX);
                    if (!rc) rc = rd_f32(d, "logprobs.top", &l->top[t].lp, -1e30, 0, true);
                }
            } else rc = ipc_mp_skip(&d->r) ? AWQ_EPROTO : 0;
            if (rc) return rc;
        }
    }
    return 0;
}

/* ------------------------------------------------------------ per-type fields ---- */
/* Each returns 0 after reading (or skipping) the value of key k, or an error. */

#define SKIP_IT() (ipc_mp_skip(&d->r) ? AWQ_EPROTO : 0)
#define K(name) key_is(k, kl, name)

static int f_hello(dc *d, const char *k, uint32_t kl, bool *seen) {
    ipc_hello *h = &d->m->u.hello;
    if (K("proto")) {
        uint32_t n;
        int rc = rd_array(d, "proto", &n, 2);
        if (rc) return rc;
        if (n != 2) return bad_type(d, "proto", "[major, minor]");
        *seen = true;
        if ((rc = rd_u32(d, "proto", &h->proto_major, 0, 65535))) return rc;
        return rd_u32(d, "proto", &h->proto_minor, 0, 65535);
    }
    if (K("client")) return rd_str(d, "client", &h->client, IPC_MAX_NAME);
    if (K("server")) return rd_str(d, "server", &h->server, IPC_MAX_NAME);
    if (K("model")) return rd_str(d, "model", &h->model, 0);
    if (K("features")) return rd_strs(d, "features", &h->features, &h->n_features, IPC_MAX_FEATURES, IPC_MAX_NAME);
    if (K("limits")) return rd_kvs(d, "limits", &h->limits, &h->n_limits, false);
    return SKIP_IT();
}

static int f_gen(dc *d, const char *k, uint32_t kl) {
    ipc_gen *g = &d->m->u.gen;
    if (K("messages")) return rd_chats(d, "messages", &g->messages, &g->n_messages);
    if (K("prompt")) return rd_str(d, "prompt", &g->prompt, 0);
    if (K("raw")) return rd_bool(d, "raw", &g->raw);
    if (K("add_bos")) {
        bool b = false;
        int rc = rd_bool(d, "add_bos", &b);
        if (rc == 0) g->add_bos = b; /* on a type error b was never written */
        return rc;
    }
    if (K("max_tokens")) return rd_u32(d, "max_tokens", &g->max_tokens, 0, IPC_MAX_TOKENS);
    if (K("temperature")) return rd_f32(d, "temperature", &g->temperature, 0, 100, false);
    if (K("top_k")) return rd_u32(d, "top_k", &g->top_k, 0, 1u << 20);
    if (K("top_p")) return rd_f32(d, "top_p", &g->top_p, 0, 1, false);
    if (K("min_p")) return rd_f32(d, "min_p", &g->min_p, 0, 1, false);
    if (K("typical_p")) return rd_f32(d, "typical_p", &g->typical_p, 0, 1, false);
    if (K("repetition_penalty")) {
        int rc = rd_f32(d, "repetition_penalty", &g->repetition_penalty, 0, 10, false);
        if (!rc && g->repetition_penalty <= 0)
            rc = awq_seterr(d->err, AWQ_ERANGE, "%s: field \"repetition_penalty\" must be > 0", d->tn);
        return rc;
    }
    if (K("presence_penalty")) return rd_f32(d, "presence_penalty", &g->presence_penalty, -2, 2, false);
    if (K("frequency_penalty")) return rd_f32(d, "frequency_penalty", &g->frequency_penalty, -2, 2, false);
    if (K("penalty_window")) return rd_u32(d, "penalty_window", &g->penalty_window, 0, 1u << 20);
    if (K("seed")) {
        g->has_seed = true;
        return rd_u64(d, "seed", &g->seed, 0, UINT64_MAX);
    }
    if (K("stop")) return rd_strs(d, "stop", &g->stop, &g->n_stop, IPC_MAX_STOP, IPC_MAX_STOP_LEN);
    if (K("stop_ids")) return rd_ids(d, "stop_ids", &g->stop_ids, &g->n_stop_ids, IPC_MAX_STOP_IDS);
    if (K("logit_bias")) return rd_bias(d, &g->logit_bias, &g->n_logit_bias);
    if (K("ignore_eos")) return rd_bool(d, "ignore_eos", &g->ignore_eos);
    if (K("logprobs")) return rd_u32(d, "logprobs", &g->logprobs, 0, IPC_MAX_LOGPROBS);
    if (K("stream")) return rd_bool(d, "stream", &g->stream);
    return SKIP_IT();
}

static int rd_enum(dc *d, const char *field, const char *const *names, int n, int *out) {
    const char *s;
    uint32_t len;
    if (ipc_mp_read_str(&d->r, &s, &len)) return bad_type(d, field, "string");
    for (int i = 0; i < n; i++)
        if (key_is(s, len, names[i])) {
            *out = i;
            return 0;
        }
    return awq_seterr(d->err, AWQ_EINVAL, "%s: field \"%s\" has unknown value \"%.*s\"", d->tn, field,
                      (int)(len > 64 ? 64 : len), s);
}

static int f_done(dc *d, const char *k, uint32_t kl, bool *seen) {
    ipc_done *o = &d->m->u.done;
    if (K("finish_reason")) {
        int v;
        int rc = rd_enum(d, "finish_reason", finish_names, 5, &v);
        o->finish = (ipc_finish)v;
        *seen = true;
        return rc;
    }
    if (K("stats")) {
        uint32_t n;
        if (ipc_mp_read_map(&d->r, &n)) return bad_type(d, "stats", "map");
        for (uint32_t i = 0; i < n; i++) {
            const char *sk;
            uint32_t skl;
            int rc = rd_key(d, &sk, &skl);
            if (rc) return rc;
            ipc_stats *s = &o->stats;
            if (key_is(sk, skl, "prompt_tokens")) rc = rd_u32(d, "prompt_tokens", &s->prompt_tokens, 0, UINT32_MAX);
            else if (key_is(sk, skl, "gen_tokens")) rc = rd_u32(d, "gen_tokens", &s->gen_tokens, 0, UINT32_MAX);
            else if (key_is(sk, skl, "ttft_ms")) rc = rd_f32(d, "ttft_ms", &s->ttft_ms, 0, 1e12, false);
            else if (key_is(sk, skl, "prefill_tok_s")) rc = rd_f32(d, "prefill_tok_s", &s->prefill_tok_s, 0, 1e12, false);
            else if (key_is(sk, skl, "decode_tok_s")) rc = rd_f32(d, "decode_tok_s", &s->decode_tok_s, 0, 1e12, false);
            else if (key_is(sk, skl, "total_ms")) rc = rd_f32(d, "total_ms", &s->total_ms, 0, 1e12, false);
            else rc = SKIP_IT();
            if (rc) return rc;
        }
        return 0;
    }
    return SKIP_IT();
}

static int f_error(dc *d, const char *k, uint32_t kl, bool *seen) {
    ipc_error *e = &d->m->u.error;
    if (K("code")) {
        int64_t c;
        if (ipc_mp_read_int(&d->r, &c)) return bad_type(d, "code", "integer");
        if (c > 0 || c < -1000000) return awq_seterr(d->err, AWQ_ERANGE, "%s: field \"code\" = %lld is not an error code", d->tn, (long long)c);
        e->code = (int)c;
        *seen = true;
        return 0;
    }
    if (K("name")) return rd_str(d, "name", &e->name, IPC_MAX_NAME);
    if (K("message")) return rd_str(d, "message", &e->message, 0);
    return SKIP_IT();
}

static int f_models(dc *d, const char *k, uint32_t kl) {
    ipc_models *o = &d->m->u.models;
    if (!K("models")) return SKIP_IT();
    int rc = rd_array(d, "models", &o->n_models, 0);
    if (rc) return rc;
    o->models = rd_alloc_n(d, o->n_models, sizeof *o->models);
    if (!o->models) return nomem(d);
    for (uint32_t i = 0; i < o->n_models; i++) {
        ipc_model_info *mi = &o->models[i];
        memset(mi, 0, sizeof *mi);
        uint32_t nk;
        if (ipc_mp_read_map(&d->r, &nk)) return bad_type(d, "models", "array of maps");
        for (uint32_t j = 0; j < nk; j++) {
            const char *mk;
            uint32_t mkl;
            if ((rc = rd_key(d, &mk, &mkl))) return rc;
            if (key_is(mk, mkl, "name")) rc = rd_str(d, "name", &mi->name, 0);
            else if (key_is(mk, mkl, "path")) rc = rd_str(d, "path", &mi->path, 0);
            else if (key_is(mk, mkl, "size")) rc = rd_u64(d, "size", &mi->size, 0, UINT64_MAX);
            else if (key_is(mk, mkl, "loaded")) rc = rd_bool(d, "loaded", &mi->loaded);
            else rc = SKIP_IT();
            if (rc) return rc;
        }
    }
    return 0;
}

/* Fields of the message body; *seen marks that the type's required field was present. */
static int field(dc *d, const char *k, uint32_t kl, bool *seen) {
    ipc_msg *m = d->m;
    switch (m->type) {
    case IPC_T_HELLO: return f_hello(d, k, kl, seen);
    case IPC_T_GENERATE: return f_gen(d, k, kl);
    case IPC_T_TOKEN:
        if (K("text")) return rd_str(d, "text", &m->u.token.text, 0);
        if (K("ids")) return rd_ids(d, "ids", &m->u.token.ids, &m->u.token.n_ids, 0);
        if (K("logprobs")) return rd_lps(d, &m->u.token.lps, &m->u.token.n_lps);
        return SKIP_IT();
    case IPC_T_DONE: return f_done(d, k, kl, seen);
    case IPC_T_ERROR: return f_error(d, k, kl, seen);
    case IPC_T_CANCEL:
        if (K("target")) { *seen = true; return rd_u32(d, "target", &m->u.target, 1, UINT32_MAX); }
        return SKIP_IT();
    case IPC_T_TOKENIZE:
        if (K("text")) { *seen = true; return rd_str(d, "text", &m->u.tokenize.text, 0); }
        if (K("add_bos")) return rd_bool(d, "add_bos", &m->u.tokenize.add_bos);
        if (K("special")) return rd_bool(d, "special", &m->u.tokenize.special);
        return SKIP_IT();
    case IPC_T_TOKENIZE_R:
    case IPC_T_DETOKENIZE:
        if (K("ids")) { *seen = true; return rd_ids(d, "ids", &m->u.ids.ids, &m->u.ids.n_ids, 0); }
        if (K("skip_special") && m->type == IPC_T_DETOKENIZE) return rd_bool(d, "skip_special", &m->u.ids.skip_special);
        return SKIP_IT();
    case IPC_T_DETOKENIZE_R:
    case IPC_T_TEMPLATE_R:
    case IPC_T_METRICS_R:
        if (K("text")) { *seen = true; return rd_str(d, "text", &m->u.text, 0); }
        return SKIP_IT();
    case IPC_T_LOAD:
        if (K("path")) { *seen = true; return rd_str(d, "path", &m->u.text, 4096); }
        return SKIP_IT();
    case IPC_T_TEMPLATE:
        if (K("messages")) { *seen = true; return rd_chats(d, "messages", &m->u.tmpl.messages, &m->u.tmpl.n_messages); }
        if (K("add_generation_prompt")) return rd_bool(d, "add_generation_prompt", &m->u.tmpl.add_generation_prompt);
        return SKIP_IT();
    case IPC_T_PROGRESS:
        if (K("stage")) {
            int v;
            int rc = rd_enum(d, "stage", stage_names, 4, &v);
            m->u.progress.stage = (ipc_stage)v;
            *seen = true;
            return rc;
        }
        if (K("pct")) return rd_f32(d, "pct", &m->u.progress.pct, 0, 100, false);
        return SKIP_IT();
    case IPC_T_LIST_R: return f_models(d, k, kl);
    case IPC_T_STATUS_R:
        if (K("info")) return rd_kvs(d, "info", &m->u.kvs.kv, &m->u.kvs.n_kv, false);
        return SKIP_IT();
    case IPC_T_SETTINGS_R:
        if (K("settings")) return rd_kvs(d, "settings", &m->u.kvs.kv, &m->u.kvs.n_kv, true);
        return SKIP_IT();
    case IPC_T_SETTINGS_GET:
    case IPC_T_SETTINGS_SET:
        if (K("key")) { *seen = true; return rd_str(d, "key", &m->u.setting.key, IPC_MAX_NAME); }
        if (K("value") && m->type == IPC_T_SETTINGS_SET) return rd_str(d, "value", &m->u.setting.value, 65536);
        return SKIP_IT();
    default:
        return SKIP_IT(); /* ping, pong, ok, unload, list, status, metrics, shutdown: no fields */
    }
}

/* ------------------------------------------------------------ decode ---- */

int ipc_msg_decode(char *err, const uint8_t *p, size_t n, ipc_msg *m) {
    memset(m, 0, sizeof *m);
    int rc = ipc_mp_validate(err, p, n, IPC_MP_MAX_DEPTH);
    if (rc) return rc;

    /* pass 1: "t" and "id", wherever they are in the map */
    dc d = {err, {p, n, 0}, m, "message"};
    uint32_t nk;
    if (ipc_mp_read_map(&d.r, &nk)) return awq_seterr(err, AWQ_EPROTO, "message: not a map");
    const char *tname = NULL;
    uint32_t tlen = 0;
    bool have_id = false;
    uint64_t id = 0;
    for (uint32_t i = 0; i < nk; i++) {
        const char *k;
        uint32_t kl;
        if ((rc = rd_key(&d, &k, &kl))) return rc;
        if (K("t")) {
            if (ipc_mp_read_str(&d.r, &tname, &tlen)) return bad_type(&d, "t", "string");
        } else if (K("id")) {
            if ((rc = rd_u64(&d, "id", &id, 0, UINT32_MAX))) return rc;
            have_id = true;
        } else if (ipc_mp_skip(&d.r)) {
            return awq_seterr(err, AWQ_EPROTO, "message: bad value at offset %zu", d.r.off);
        }
    }
    m->id = (uint32_t)id;
    if (!tname) return awq_seterr(err, AWQ_EPROTO, "message: missing field \"t\" (the message type)");
    ipc_type t = ipc_type_from_name(tname, tlen);
    if (t == IPC_T_UNKNOWN)
        return awq_seterr(err, AWQ_EUNSUPPORTED, "unknown message type \"%.*s\"", (int)(tlen > 64 ? 64 : tlen),
                          tname);
    uint32_t keep_id = m->id;
    ipc_msg_init(m, t, keep_id);
    d.tn = ipc_type_name(t);
    if (t != IPC_T_HELLO && t != IPC_T_ERROR && (!have_id || id == 0))
        return awq_seterr(err, AWQ_EPROTO, "%s: missing field \"id\" (a request id from 1 to 4294967295)", d.tn);

    /* pass 2: the fields of this type */
    d.r.off = 0;
    if (ipc_mp_read_map(&d.r, &nk)) return AWQ_EPROTO;
    bool seen = false;
    for (uint32_t i = 0; i < nk; i++) {
        const char *k;
        uint32_t kl;
        if ((rc = rd_key(&d, &k, &kl))) return rc;
        if (K("t") || K("id")) rc = ipc_mp_skip(&d.r) ? AWQ_EPROTO : 0;
        else rc = field(&d, k, kl, &seen);
        if (rc) return rc;
    }

    /* required fields */
    const char *need = NULL;
    switch (t) {
    case IPC_T_DONE: need = seen ? NULL : "finish_reason"; break;
    case IPC_T_ERROR: need = seen ? NULL : "code"; break;
    case IPC_T_CANCEL: need = seen ? NULL : "target"; break;
    case IPC_T_TOKENIZE: need = seen ? NULL : "text"; break;
    case IPC_T_DETOKENIZE: need = seen ? NULL : "ids"; break;
    case IPC_T_TEMPLATE: need = seen ? NULL : "messages"; break;
    case IPC_T_LOAD: need = seen ? NULL : "path"; break;
    case IPC_T_PROGRESS: need = seen ? NULL : "stage"; break;
    case IPC_T_SETTINGS_SET:
        need = !m->u.setting.key.s ? "key" : !m->u.setting.value.s ? "value" : NULL;
        break;
    case IPC_T_HELLO: need = seen ? NULL : "proto"; break;
    case IPC_T_GENERATE: {
        ipc_gen *g = &m->u.gen;
        if ((g->messages != NULL) == (g->prompt.s != NULL))
            return awq_seterr(err, AWQ_EINVAL, "generate: needs exactly one of \"messages\" or \"prompt\"");
        break;
    }
    default: break;
    }
    if (need) return awq_seterr(err, AWQ_EINVAL, "%s: missing field \"%s\"", d.tn, need);
    return 0;
}
