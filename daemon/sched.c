/* sched.c - the engine thread: it owns the model, every sequence and the prompt cache.
 *
 * Each turn of its loop it (1) takes everything the I/O thread queued (requests, cancels,
 * closed connections, pauses), (2) admits waiting generations while sequence slots are free
 * (prompt ids from the template or the raw text, a cached sequence with the longest common
 * prefix or a new one), (3) runs ONE batched eng_gen_step over every running, unpaused
 * sequence (continuous batching: a request admitted now joins this very step, a finished one
 * has left), and (4) posts token and done events with ipc_server_send. No lock is held during
 * the step; the queue mutex is held only to unlink the list of items.
 *
 * Fairness: every running sequence advances by one token (or one prefill chunk of at most
 * ENG_GEN_CHUNK tokens) per step, so a long prompt delays the others by one chunk, not by its
 * whole prefill, and no stream gets two tokens while another waits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "awqd.h"
#include "gen.h"
#include "llm.h"
#include "log.h"
#include "models.h"
#include "service.h"

/* One generate request, from arrival to done. */
typedef struct greq {
    struct greq *next; /* waiting list */
    uint64_t conn;
    uint32_t id;
    ipc_msg *m;         /* the request (owned) */
    eng_gen_seq *seq;   /* NULL until admitted */
    int32_t *ids;       /* (n_ids) prompt */
    size_t n_ids, reused;
    uint64_t t_arrive, t_admit, t_first, t_last;
    bool stepped;       /* part of the last step */
    /* stream = false: everything is sent as one token event before done */
    awq_buf text;
    uint32_t *acc_ids;  /* (n_acc) */
    ipc_lp *acc_lps;    /* (n_acc) when logprobs; top pointers fixed up when sent */
    ipc_top *acc_top;   /* (n_acc * logprobs) */
    size_t n_acc, cap_acc;
} greq;

struct awqd_engine {
    eng_llm *llm;
    int max_seqs;
    greq *wait_head, *wait_tail;
    greq **run;           /* (max_seqs) admitted generations */
    int n_run;
    int peak_run;         /* most generations at once since the engine was last idle */
    eng_gen_seq **batch;  /* (max_seqs) step scratch */
    eng_gen_seq *pool[AWQD_CACHE_MAX]; /* finished sequences, oldest first */
    int n_pool;
    uint64_t *paused;     /* (n_paused) connections whose output is over its cap */
    size_t n_paused, cap_paused;
    uint64_t last_activity_ns;
    bool exit;
};

/* ------------------------------------------------------------ helpers ---- */

static void greq_free(greq *g) {
    if (!g) return;
    eng_gen_seq_free(g->seq);
    if (g->m) ipc_msg_free(g->m);
    free(g->m);
    free(g->ids);
    awq_buf_free(&g->text);
    free(g->acc_ids);
    free(g->acc_lps);
    free(g->acc_top);
    free(g);
}

static bool is_paused(const awqd_engine *e, uint64_t conn) {
    for (size_t i = 0; i < e->n_paused; i++)
        if (e->paused[i] == conn) return true;
    return false;
}

static void set_paused(awqd_engine *e, uint64_t conn, bool on) {
    for (size_t i = 0; i < e->n_paused; i++)
        if (e->paused[i] == conn) {
            if (!on) e->paused[i] = e->paused[--e->n_paused];
            return;
        }
    if (!on) return;
    if (e->n_paused == e->cap_paused) {
        size_t nc = e->cap_paused ? 2 * e->cap_paused : 16;
        uint64_t *p = realloc(e->paused, nc * sizeof *p);
        if (!p) {
            /* without room to remember the pause the stream keeps going; the server's 8x cap
             * still bounds the memory by closing that connection */
            awqd_err("out of memory pausing connection %llu", (unsigned long long)conn);
            return;
        }
        e->paused = p;
        e->cap_paused = nc;
    }
    e->paused[e->n_paused++] = conn;
}

static void pool_clear(awqd_engine *e) {
    for (int i = 0; i < e->n_pool; i++) eng_gen_seq_free(e->pool[i]);
    e->n_pool = 0;
}

/* Keep a finished sequence for prompt-cache reuse (the oldest goes when the pool is full). */
static void pool_put(awqd_engine *e, eng_gen_seq *s) {
    if (e->n_pool == AWQD_CACHE_MAX) {
        eng_gen_seq_free(e->pool[0]);
        memmove(e->pool, e->pool + 1, (AWQD_CACHE_MAX - 1) * sizeof *e->pool);
        e->n_pool--;
    }
    e->pool[e->n_pool++] = s;
}

static eng_gen_seq *pool_take(awqd_engine *e, int i) {
    eng_gen_seq *s = e->pool[i];
    memmove(e->pool + i, e->pool + i + 1, (size_t)(e->n_pool - i - 1) * sizeof *e->pool);
    e->n_pool--;
    return s;
}

static float ms_between(uint64_t a, uint64_t b) { return b > a ? (float)((double)(b - a) / 1e6) : 0.0f; }

/* ------------------------------------------------------------ snapshot ---- */

static void publish(awqd *d) {
    awqd_engine *e = d->eng;
    plat_mutex_lock(&d->snap_mu);
    awqd_snap *s = &d->snap;
    s->loaded = e->llm != NULL;
    s->running = (uint32_t)e->n_run;
    s->kv_used = (uint32_t)e->n_run;
    s->kv_cached = (uint32_t)e->n_pool;
    s->kv_total = e->llm ? (uint32_t)e->max_seqs : 0;
    s->last_activity_ns = e->last_activity_ns;
    if (e->llm) {
        size_t w = 0, kv = 0;
        eng_gen_memory(e->llm->gen, &w, &kv);
        s->weights_bytes = w + e->llm->model->weight_bytes;
        s->kv_bytes = kv;
    } else {
        s->weights_bytes = s->kv_bytes = 0;
    }
    plat_mutex_unlock(&d->snap_mu);
}

/* ------------------------------------------------------------ ending generations ---- */

/* The done message of g (no pointers into g: it may be sent after g is gone). */
static void make_done(const greq *g, ipc_finish f, ipc_msg *mp) {
    ipc_msg_init(mp, IPC_T_DONE, g->id);
    ipc_msg m = *mp;
    m.u.done.finish = f;
    uint64_t now = plat_now_ns();
    ipc_stats *st = &m.u.done.stats;
    st->prompt_tokens = (uint32_t)g->n_ids;
    size_t gen = g->seq ? eng_gen_seq_n_generated(g->seq) : 0;
    st->gen_tokens = (uint32_t)gen;
    st->ttft_ms = g->t_first ? ms_between(g->t_arrive, g->t_first) : 0;
    float pre_ms = g->t_first ? ms_between(g->t_admit, g->t_first) : 0;
    st->prefill_tok_s = pre_ms > 0 ? (float)(g->n_ids - g->reused) / (pre_ms / 1e3f) : 0;
    float dec_ms = g->t_first ? ms_between(g->t_first, g->t_last) : 0;
    st->decode_tok_s = dec_ms > 0 && gen > 1 ? (float)(gen - 1) / (dec_ms / 1e3f) : 0;
    st->total_ms = ms_between(g->t_arrive, now);
    *mp = m;
}

static void send_done(awqd *d, greq *g, ipc_finish f) {
    ipc_msg m;
    make_done(g, f, &m);
    awqd_send(d, g->conn, &m);
}

/* The accumulated output of a stream = false request, as one token event. */
static void send_accumulated(awqd *d, greq *g, int logprobs) {
    ipc_msg m;
    ipc_msg_init(&m, IPC_T_TOKEN, g->id);
    m.u.token.text.s = g->text.data ? g->text.data : "";
    m.u.token.text.len = (uint32_t)g->text.len;
    m.u.token.ids = g->acc_ids;
    m.u.token.n_ids = (uint32_t)g->n_acc;
    if (logprobs && g->acc_lps) {
        for (size_t i = 0; i < g->n_acc; i++) g->acc_lps[i].top = g->acc_top + i * (size_t)logprobs;
        m.u.token.lps = g->acc_lps;
        m.u.token.n_lps = (uint32_t)g->n_acc;
    }
    awqd_send(d, g->conn, &m);
}

/* End running generation i with finish f (done sent unless quiet), keep its sequence for
 * prompt-cache reuse when it finished normally, and drop it from the running set. */
static void run_end(awqd *d, int i, ipc_finish f, bool quiet) {
    awqd_engine *e = d->eng;
    greq *g = e->run[i];
    e->run[i] = e->run[--e->n_run];
    ipc_msg done;
    if (!quiet) {
        if (!g->m->u.gen.stream && f != IPC_FINISH_ERROR) send_accumulated(d, g, (int)g->m->u.gen.logprobs);
        make_done(g, f, &done);
    }
    if (f == IPC_FINISH_STOP || f == IPC_FINISH_LENGTH || f == IPC_FINISH_CONTEXT) {
        pool_put(e, g->seq);
        g->seq = NULL;
    }
    if (f == IPC_FINISH_CANCEL) awqd_metric_add(&d->metrics.cancelled, 1);
    eng_gen_seq_free(g->seq); /* the KV slot is free at once when not pooled */
    g->seq = NULL;
    publish(d); /* a status right after the done sees the slot free */
    if (!quiet) awqd_send(d, g->conn, &done);
    greq_free(g);
}

/* Remove waiting request g (already unlinked) with a done/cancel unless quiet. */
static void wait_end(awqd *d, greq *g, bool quiet) {
    atomic_fetch_sub(&d->n_pending, 1);
    awqd_metric_add(&d->metrics.cancelled, 1);
    if (!quiet) send_done(d, g, IPC_FINISH_CANCEL);
    greq_free(g);
}

/* Cancel every generation matching conn (and id when by_id); quiet for closed connections. */
static int cancel_matching(awqd *d, uint64_t conn, bool by_id, uint32_t id, bool quiet) {
    awqd_engine *e = d->eng;
    int n = 0;
    for (greq **pp = &e->wait_head; *pp;) {
        greq *g = *pp;
        if (g->conn == conn && (!by_id || g->id == id)) {
            *pp = g->next;
            wait_end(d, g, quiet);
            n++;
        } else {
            pp = &g->next;
        }
    }
    e->wait_tail = NULL;
    for (greq *g = e->wait_head; g; g = g->next) e->wait_tail = g;
    for (int i = e->n_run - 1; i >= 0; i--)
        if (e->run[i]->conn == conn && (!by_id || e->run[i]->id == id)) {
            run_end(d, i, IPC_FINISH_CANCEL, quiet);
            n++;
        }
    return n;
}

/* End everything (unload, forced drain): running and waiting get code (or done/cancel when
 * code is 0). */
static void end_all(awqd *d, int code, const char *why) {
    awqd_engine *e = d->eng;
    while (e->wait_head) {
        greq *g = e->wait_head;
        e->wait_head = g->next;
        if (code) {
            atomic_fetch_sub(&d->n_pending, 1);
            awqd_send_error(d, g->conn, g->id, code, "generate: %s", why);
            greq_free(g);
        } else {
            wait_end(d, g, false);
        }
    }
    e->wait_tail = NULL;
    while (e->n_run) {
        if (code) {
            greq *g = e->run[e->n_run - 1];
            awqd_send_error(d, g->conn, g->id, code, "generate: %s", why);
            run_end(d, e->n_run - 1, IPC_FINISH_ERROR, true);
        } else {
            run_end(d, e->n_run - 1, IPC_FINISH_CANCEL, false);
        }
    }
}

/* ------------------------------------------------------------ load / unload ---- */

static void unload(awqd *d, const char *why) {
    awqd_engine *e = d->eng;
    if (!e->llm) return;
    end_all(d, AWQ_ENOMODEL, why);
    pool_clear(e);
    awqd_info("unloaded %s (%s)", e->llm->model->dir, why);
    eng_llm_free(e->llm);
    e->llm = NULL;
    free(e->run);
    free(e->batch);
    e->run = NULL;
    e->batch = NULL;
    e->max_seqs = 0;
    plat_mutex_lock(&d->snap_mu);
    d->snap.loaded = false;
    d->snap.model_name[0] = d->snap.model_path[0] = d->snap.backend[0] = 0;
    d->snap.ctx = d->snap.vocab = 0;
    plat_mutex_unlock(&d->snap_mu);
    publish(d);
}

typedef struct load_ctx {
    awqd *d;
    uint64_t conn; /* 0: preload, nobody to tell */
    uint32_t id;
    const char *dir;
} load_ctx;

static void on_progress(void *user, ipc_stage stage, float pct) {
    load_ctx *lc = user;
    const char *name = ipc_stage_name(stage);
    plat_mutex_lock(&lc->d->snap_mu);
    snprintf(lc->d->snap.load_stage, sizeof lc->d->snap.load_stage, "%s", name);
    plat_mutex_unlock(&lc->d->snap_mu);
    if (awqd_svc_status(NULL, "loading %s: %s (%.0f%%)", lc->dir, name, pct) < 0) { /* not under systemd */ }
    awqd_info("loading %s: %s (%.0f%%)", lc->dir, name, pct);
    if (!lc->conn) return;
    ipc_msg m;
    ipc_msg_init(&m, IPC_T_PROGRESS, lc->id);
    m.u.progress.stage = stage;
    m.u.progress.pct = pct;
    awqd_send(lc->d, lc->conn, &m);
}

/* Load canonical dir, replacing any loaded model. */
static int load(char *err, awqd *d, const char *dir, uint64_t conn, uint32_t id) {
    awqd_engine *e = d->eng;
    unload(d, "another model is being loaded");
    awqd_open_opts o;
    static const char *const devs[] = {"auto", "cuda", "cpu"};
    plat_mutex_lock(&d->cfg_mu);
    const cfg *c = d->eff;
    o.device = devs[c->model.device >= 0 && c->model.device <= 2 ? c->model.device : 0];
    o.cpu_fallback = c->model.cpu_fallback;
    o.threads = (int)c->model.threads;
    o.max_ctx = (int)c->model.context;
    o.max_seqs = (int)c->model.max_sequences;
    o.kv_budget = (size_t)c->model.kv_cache_mb << 20;
    o.fp16_weights = c->model.prefill_fp16_weights;
    plat_mutex_unlock(&d->cfg_mu);
    plat_mutex_lock(&d->snap_mu);
    d->snap.loading = true;
    snprintf(d->snap.load_stage, sizeof d->snap.load_stage, "started");
    plat_mutex_unlock(&d->snap_mu);
    load_ctx lc = {d, conn, id, dir};
    uint64_t t0 = plat_now_ns();
    eng_llm *l = NULL;
    int rc = awqd_model_open(err, dir, &o, on_progress, &lc, &l);
    if (!rc) {
        e->run = calloc((size_t)o.max_seqs, sizeof *e->run);
        e->batch = calloc((size_t)o.max_seqs, sizeof *e->batch);
        if (!e->run || !e->batch) {
            free(e->run);
            free(e->batch);
            e->run = NULL;
            e->batch = NULL;
            eng_llm_free(l);
            rc = awq_seterr(err, AWQ_ENOMEM, "out of memory");
        }
    }
    plat_mutex_lock(&d->snap_mu);
    d->snap.loading = false;
    snprintf(d->snap.load_stage, sizeof d->snap.load_stage, "%s", rc ? "failed" : "ready");
    if (!rc) {
        const char *base = strrchr(l->model->dir, PLAT_PATH_SEP);
        snprintf(d->snap.model_name, sizeof d->snap.model_name, "%.255s", base && base[1] ? base + 1 : l->model->dir);
        snprintf(d->snap.model_path, sizeof d->snap.model_path, "%s", l->model->dir);
        snprintf(d->snap.backend, sizeof d->snap.backend, "%s", eng_gen_backend_name(l->gen));
        d->snap.ctx = l->max_ctx;
        d->snap.vocab = l->model->cfg.vocab;
    }
    plat_mutex_unlock(&d->snap_mu);
    if (rc) {
        awqd_err("load %s failed: %s", dir, err);
        if (awqd_svc_status(NULL, "no model loaded (load of %s failed)", dir) < 0) { /* not under systemd */ }
        return rc;
    }
    e->llm = l;
    e->max_seqs = o.max_seqs;
    e->last_activity_ns = plat_now_ns();
    publish(d);
    awqd_info("loaded %s on %s in %.2f s: context %d, %d sequences, weights %.1f MB, KV cache %.1f MB", l->model->dir,
              eng_gen_backend_name(l->gen), (double)(plat_now_ns() - t0) / 1e9, l->max_ctx, o.max_seqs,
              (double)d->snap.weights_bytes / 1e6, (double)d->snap.kv_bytes / 1e6);
    if (awqd_svc_status(NULL, "serving %s on %s", d->snap.model_name, d->snap.backend) < 0) { /* not under systemd */ }
    on_progress(&lc, IPC_STAGE_READY, 100);
    return 0;
}

/* ------------------------------------------------------------ small requests ---- */

static void reply_text(awqd *d, uint64_t conn, uint32_t id, ipc_type t, const char *s, size_t n) {
    ipc_msg m;
    ipc_msg_init(&m, t, id);
    m.u.text.s = s;
    m.u.text.len = (uint32_t)n;
    awqd_send(d, conn, &m);
}

static void reply_ok(awqd *d, uint64_t conn, uint32_t id) {
    ipc_msg m;
    ipc_msg_init(&m, IPC_T_OK, id);
    awqd_send(d, conn, &m);
}

/* eng_msg views of the request's chat messages (strings stay in the message's arena). */
static eng_msg *chat_of(const ipc_chat *c, uint32_t n) {
    eng_msg *ms = calloc(n ? n : 1, sizeof *ms);
    if (!ms) return NULL;
    for (uint32_t i = 0; i < n; i++) {
        ms[i].role = c[i].role.s ? c[i].role.s : "";
        ms[i].content = c[i].content.s ? c[i].content.s : "";
    }
    return ms;
}

static void do_tokenize(awqd *d, uint64_t conn, const ipc_msg *r) {
    char err[AWQ_ERR_LEN];
    const eng_tok *tok = d->eng->llm->tok;
    int32_t *ids = NULL;
    size_t n = 0;
    const ipc_tokenize *t = &r->u.tokenize;
    int rc = eng_tok_encode(err, tok, t->text.s ? t->text.s : "", t->text.len, t->add_bos, &ids, &n);
    if (rc) {
        awqd_send_error(d, conn, r->id, rc, "tokenize: %s", err);
        return;
    }
    /* The tokenizer always matches special-token text; without "special" the client asked for
     * it to be plain text, which this tokenizer cannot give: refuse rather than answer wrong. */
    if (!t->special)
        for (size_t i = (t->add_bos && n && ids[0] == eng_tok_bos_id(tok)) ? 1 : 0; i < n; i++)
            if (eng_tok_is_special(tok, ids[i])) {
                const char *piece = eng_tok_piece(tok, ids[i]);
                awqd_send_error(d, conn, r->id, AWQ_EUNSUPPORTED,
                                "tokenize: the text contains special-token text (\"%s\"); send special = true to "
                                "tokenize it as that token",
                                piece ? piece : "?");
                free(ids);
                return;
            }
    ipc_msg m;
    ipc_msg_init(&m, IPC_T_TOKENIZE_R, r->id);
    m.u.ids.ids = (uint32_t *)ids; /* ids are >= 0: same bits */
    m.u.ids.n_ids = (uint32_t)n;
    awqd_send(d, conn, &m);
    free(ids);
}

static void do_detokenize(awqd *d, uint64_t conn, const ipc_msg *r) {
    char err[AWQ_ERR_LEN];
    const ipc_ids *x = &r->u.ids;
    int32_t *ids = malloc((x->n_ids ? x->n_ids : 1) * sizeof *ids);
    if (!ids) {
        awqd_send_error(d, conn, r->id, AWQ_ENOMEM, "detokenize: out of memory");
        return;
    }
    int vocab = eng_tok_vocab_size(d->eng->llm->tok);
    for (uint32_t i = 0; i < x->n_ids; i++) {
        if (x->ids[i] >= (uint32_t)vocab) {
            free(ids);
            awqd_send_error(d, conn, r->id, AWQ_ERANGE, "detokenize: ids[%u] = %u is not a token id (vocabulary %d)",
                            i, x->ids[i], vocab);
            return;
        }
        ids[i] = (int32_t)x->ids[i];
    }
    char *text = NULL;
    size_t len = 0;
    int rc = eng_tok_decode(err, d->eng->llm->tok, ids, x->n_ids, x->skip_special, &text, &len);
    free(ids);
    if (rc) awqd_send_error(d, conn, r->id, rc, "detokenize: %s", err);
    else reply_text(d, conn, r->id, IPC_T_DETOKENIZE_R, text, len);
    free(text);
}

static void do_template(awqd *d, uint64_t conn, const ipc_msg *r) {
    char err[AWQ_ERR_LEN];
    const eng_llm *l = d->eng->llm;
    if (!l->tmpl) {
        awqd_send_error(d, conn, r->id, AWQ_ENOTFOUND, "template: the model has no chat_template");
        return;
    }
    eng_msg *ms = chat_of(r->u.tmpl.messages, r->u.tmpl.n_messages);
    if (!ms) {
        awqd_send_error(d, conn, r->id, AWQ_ENOMEM, "template: out of memory");
        return;
    }
    char *text = NULL;
    size_t len = 0;
    int rc = eng_tmpl_render(err, l->tmpl, ms, r->u.tmpl.n_messages, eng_tok_bos_text(l->tok), eng_tok_eos_text(l->tok),
                             r->u.tmpl.add_generation_prompt, &text, &len);
    free(ms);
    if (rc) awqd_send_error(d, conn, r->id, rc, "template: %s", err);
    else reply_text(d, conn, r->id, IPC_T_TEMPLATE_R, text, len);
    free(text);
}

static void do_load(awqd *d, uint64_t conn, const ipc_msg *r) {
    char err[AWQ_ERR_LEN], dir[PLAT_PATH_MAX], mp[CFG_VALUE_MAX];
    cfg_paths *roots = malloc(sizeof *roots);
    if (!roots) {
        awqd_send_error(d, conn, r->id, AWQ_ENOMEM, "load: out of memory");
        return;
    }
    plat_mutex_lock(&d->cfg_mu);
    *roots = d->eff->model.roots;
    memcpy(mp, d->eff->model.path, sizeof mp);
    plat_mutex_unlock(&d->cfg_mu);
    int rc = awqd_model_resolve(err, roots, mp, r->u.text.s ? r->u.text.s : "", dir);
    free(roots);
    if (rc) {
        awqd_warn("connection %llu: %s", (unsigned long long)conn, err);
        awqd_send_error(d, conn, r->id, rc, "%s", err);
        return;
    }
    if ((rc = load(err, d, dir, conn, r->id))) awqd_send_error(d, conn, r->id, rc, "load: %s", err);
    else reply_ok(d, conn, r->id);
}

/* ------------------------------------------------------------ generate ---- */

/* The prompt ids of a generate request. */
static int prompt_ids(char *err, const eng_llm *l, const ipc_gen *g, int32_t **ids, size_t *n) {
    const eng_tok *tok = l->tok;
    if (g->n_messages || !g->raw) {
        if (!l->tmpl && !g->n_messages) { /* no template: the prompt is the text */
            bool bos = g->add_bos < 0 ? eng_tok_add_bos(tok) : g->add_bos == 1;
            return eng_tok_encode(err, tok, g->prompt.s ? g->prompt.s : "", g->prompt.len, bos, ids, n);
        }
        eng_msg one = {"user", g->prompt.s ? g->prompt.s : ""};
        eng_msg *ms = g->n_messages ? chat_of(g->messages, g->n_messages) : &one;
        if (!ms) return awq_seterr(err, AWQ_ENOMEM, "out of memory");
        int rc = eng_llm_chat_ids(err, l, ms, g->n_messages ? g->n_messages : 1, ids, n);
        if (ms != &one) free(ms);
        return rc;
    }
    bool bos = g->add_bos < 0 ? eng_tok_add_bos(tok) : g->add_bos == 1;
    return eng_tok_encode(err, tok, g->prompt.s ? g->prompt.s : "", g->prompt.len, bos, ids, n);
}

/* Sampling parameters, most specific first: the request's values; then the model's
 * generation_config.json (its author's recommendation, as awq-run and Hugging Face use it);
 * then the [generation] settings. A request field left at its protocol default counts as not
 * given (the wire cannot tell "absent" from "sent the default"). */
static void params_of(const ipc_gen *g, const eng_gen_defaults *md, const struct cfg_generation *def,
                      eng_samp_params *p, const char **stop, int32_t *stop_ids, eng_samp_bias *bias) {
    eng_samp_params_default(p, NULL);
    float temp = (float)def->temperature, top_p = (float)def->top_p, rep = (float)def->repetition_penalty;
    int top_k = (int)def->top_k, max_tokens = (int)def->max_tokens;
    if (md->has_temperature) temp = md->temperature;
    if (md->has_do_sample && !md->do_sample) temp = 0;
    if (md->has_top_p) top_p = md->top_p;
    if (md->has_top_k) top_k = md->top_k;
    if (md->has_repetition_penalty) rep = md->repetition_penalty;
    if (md->max_new_tokens > 0) max_tokens = md->max_new_tokens;
    p->temperature = g->temperature != 1.0f ? g->temperature : temp;
    p->top_k = g->top_k ? (int)g->top_k : top_k;
    p->top_p = g->top_p != 1.0f ? g->top_p : top_p;
    p->min_p = g->min_p != 0.0f ? g->min_p : (float)def->min_p;
    p->typical_p = g->typical_p;
    p->repetition_penalty = g->repetition_penalty != 1.0f ? g->repetition_penalty : rep;
    p->presence_penalty = g->presence_penalty;
    p->frequency_penalty = g->frequency_penalty;
    p->penalty_last_n = (int)g->penalty_window;
    p->has_seed = g->has_seed || def->seed != 0;
    p->seed = g->has_seed ? g->seed : (uint64_t)def->seed;
    p->max_tokens = g->max_tokens ? (int)g->max_tokens : max_tokens;
    p->ignore_eos = g->ignore_eos;
    p->logprobs = (int)g->logprobs;
    for (uint32_t i = 0; i < g->n_stop; i++) stop[i] = g->stop[i].s ? g->stop[i].s : "";
    p->stop = stop;
    p->n_stop = (int)g->n_stop;
    for (uint32_t i = 0; i < g->n_stop_ids; i++) stop_ids[i] = (int32_t)g->stop_ids[i];
    p->stop_ids = stop_ids;
    p->n_stop_ids = (int)g->n_stop_ids;
    for (uint32_t i = 0; i < g->n_logit_bias; i++)
        bias[i] = (eng_samp_bias){(int32_t)g->logit_bias[i].id, g->logit_bias[i].bias};
    p->logit_bias = bias;
    p->n_logit_bias = (int)g->n_logit_bias;
}

static size_t common_prefix(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    size_t i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    return i;
}

/* Admit g: prompt ids, a sequence (cached with the longest common prefix, or new), prompt. */
static int admit_one(char *err, awqd *d, greq *g) {
    awqd_engine *e = d->eng;
    const ipc_gen *r = &g->m->u.gen;
    int rc = prompt_ids(err, e->llm, r, &g->ids, &g->n_ids);
    if (rc) return rc;
    if (!g->n_ids) return awq_seterr(err, AWQ_EINVAL, "the prompt is empty (no tokens)");
    if (awqd_log_prompts()) {
        char *t = NULL;
        size_t tl = 0;
        if (eng_tok_decode(NULL, e->llm->tok, g->ids, g->n_ids, false, &t, &tl) == 0)
            awqd_log_text("prompt", t, tl);
        free(t);
    }
    struct cfg_generation def;
    plat_mutex_lock(&d->cfg_mu);
    def = d->eff->generation;
    plat_mutex_unlock(&d->cfg_mu);
    eng_samp_params p;
    const char *stop[IPC_MAX_STOP];
    int32_t stop_ids[IPC_MAX_STOP_IDS];
    eng_samp_bias *bias = malloc((r->n_logit_bias ? r->n_logit_bias : 1) * sizeof *bias);
    if (!bias) return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    params_of(r, &e->llm->model->gen, &def, &p, stop, stop_ids, bias);
    /* the cached sequence sharing the longest prefix with this prompt */
    int best = -1;
    size_t best_n = 0;
    for (int i = 0; i < e->n_pool; i++) {
        const int32_t *h;
        size_t nh = eng_gen_seq_history(e->pool[i], &h);
        size_t c = common_prefix(h, nh, g->ids, g->n_ids);
        if (c > best_n) best = i, best_n = c;
    }
    if (best >= 0) {
        g->seq = pool_take(e, best);
        rc = eng_gen_seq_set_params(err, g->seq, &p);
    } else {
        while ((rc = eng_gen_seq_create(err, e->llm->gen, &p, &g->seq)) == AWQ_EBUSY && e->n_pool)
            eng_gen_seq_free(pool_take(e, 0)); /* the slot of the oldest cached sequence */
    }
    free(bias);
    if (!rc) rc = eng_gen_seq_prompt(err, g->seq, g->ids, g->n_ids, &g->reused);
    if (rc) return rc;
    g->t_admit = plat_now_ns();
    awqd_metric_add(&d->metrics.prompt_tokens, g->n_ids);
    awqd_metric_add(&d->metrics.prompt_cache_reused, g->reused);
    awqd_debug("request %u on connection %llu admitted: %zu prompt tokens, %zu reused from the cache", g->id,
               (unsigned long long)g->conn, g->n_ids, g->reused);
    return 0;
}

static void admit(awqd *d) {
    awqd_engine *e = d->eng;
    while (e->wait_head && e->n_run < e->max_seqs) {
        greq *g = e->wait_head;
        e->wait_head = g->next;
        if (!e->wait_head) e->wait_tail = NULL;
        atomic_fetch_sub(&d->n_pending, 1);
        char err[AWQ_ERR_LEN];
        int rc = admit_one(err, d, g);
        if (rc) {
            awqd_send_error(d, g->conn, g->id, rc, "generate: %s", err);
            greq_free(g);
            continue;
        }
        e->run[e->n_run++] = g;
        if (e->n_run > e->peak_run) e->peak_run = e->n_run;
    }
}

/* Append this step's token of g to its output: an event now (stream) or the accumulation. */
static int emit_token(awqd *d, greq *g, const eng_gen_event *ev) {
    const ipc_gen *r = &g->m->u.gen;
    int nlp = (int)r->logprobs;
    uint32_t id = (uint32_t)ev->tok.id;
    ipc_top top[IPC_MAX_LOGPROBS];
    ipc_lp lp = {.id = id, .lp = ev->tok.logprob, .top = top, .n_top = (uint32_t)nlp};
    for (int i = 0; i < nlp && i < ev->tok.n_top; i++) top[i] = (ipc_top){(uint32_t)ev->tok.top[i].id, ev->tok.top[i].logprob};
    if (ev->tok.n_top < nlp) lp.n_top = (uint32_t)ev->tok.n_top;
    if (r->stream) {
        ipc_msg m;
        ipc_msg_init(&m, IPC_T_TOKEN, g->id);
        m.u.token.text.s = ev->text ? ev->text : "";
        m.u.token.text.len = (uint32_t)ev->text_len;
        m.u.token.ids = &id;
        m.u.token.n_ids = 1;
        if (nlp) {
            m.u.token.lps = &lp;
            m.u.token.n_lps = 1;
        }
        awqd_send(d, g->conn, &m);
        return 0;
    }
    if (ev->text_len && awq_buf_append(&g->text, ev->text, ev->text_len)) return AWQ_ENOMEM;
    if (g->n_acc == g->cap_acc) {
        size_t nc = g->cap_acc ? 2 * g->cap_acc : 64;
        uint32_t *ni = realloc(g->acc_ids, nc * sizeof *ni);
        if (!ni) return AWQ_ENOMEM;
        g->acc_ids = ni;
        if (nlp) {
            ipc_lp *nl = realloc(g->acc_lps, nc * sizeof *nl);
            if (!nl) return AWQ_ENOMEM;
            g->acc_lps = nl;
            ipc_top *nt = realloc(g->acc_top, nc * (size_t)nlp * sizeof *nt);
            if (!nt) return AWQ_ENOMEM;
            g->acc_top = nt;
        }
        g->cap_acc = nc;
    }
    g->acc_ids[g->n_acc] = id;
    if (nlp) {
        memcpy(g->acc_top + g->n_acc * (size_t)nlp, top, (size_t)nlp * sizeof *top);
        g->acc_lps[g->n_acc] = lp;
    }
    g->n_acc++;
    return 0;
}

static ipc_finish finish_of(eng_gen_finish f) {
    switch (f) {
    case ENG_GEN_STOP: return IPC_FINISH_STOP;
    case ENG_GEN_LENGTH: return IPC_FINISH_LENGTH;
    case ENG_GEN_CONTEXT: return IPC_FINISH_CONTEXT;
    case ENG_GEN_CANCEL: return IPC_FINISH_CANCEL;
    default: return IPC_FINISH_ERROR;
    }
}

/* One batched step over every running, unpaused sequence. */
static void step(awqd *d) {
    awqd_engine *e = d->eng;
    int n = 0;
    for (int i = 0; i < e->n_run; i++) {
        greq *g = e->run[i];
        g->stepped = !is_paused(e, g->conn) && eng_gen_seq_finish(g->seq) == ENG_GEN_RUNNING;
        if (g->stepped) e->batch[n++] = g->seq;
    }
    if (!n) return;
    char err[AWQ_ERR_LEN] = "";
    int rc = eng_gen_step(err, e->llm->gen, e->batch, n);
    uint64_t now = plat_now_ns();
    e->last_activity_ns = now;
    if (rc) {
        awqd_err("generation step over %d sequences failed: %s", n, err);
        for (int i = e->n_run - 1; i >= 0; i--)
            if (e->run[i]->stepped) {
                awqd_send_error(d, e->run[i]->conn, e->run[i]->id, rc, "generate: %s", err);
                run_end(d, i, IPC_FINISH_ERROR, true);
            }
        return;
    }
    for (int i = e->n_run - 1; i >= 0; i--) {
        greq *g = e->run[i];
        if (!g->stepped) continue;
        const eng_gen_event *ev = eng_gen_seq_event(g->seq);
        if (ev->has_token) {
            awqd_metric_add(&d->metrics.tokens_generated, 1);
            if (!g->t_first) {
                g->t_first = now;
                awqd_hist_observe(&d->metrics.ttft, now - g->t_arrive);
            } else {
                awqd_hist_observe(&d->metrics.token, now - g->t_last);
            }
            g->t_last = now;
            if (ev->text_len) awqd_log_text("output", ev->text, ev->text_len);
            if (emit_token(d, g, ev)) {
                awqd_send_error(d, g->conn, g->id, AWQ_ENOMEM, "generate: out of memory collecting the output");
                run_end(d, i, IPC_FINISH_ERROR, true);
                continue;
            }
        }
        if (ev->finish != ENG_GEN_RUNNING) run_end(d, i, finish_of(ev->finish), false);
    }
}

/* ------------------------------------------------------------ items ---- */

static void handle_msg(awqd *d, awqd_item *it) {
    awqd_engine *e = d->eng;
    ipc_msg *m = it->m;
    e->last_activity_ns = plat_now_ns();
    if (m->type == IPC_T_GENERATE) {
        if (!e->llm) {
            atomic_fetch_sub(&d->n_pending, 1);
            awqd_send_error(d, it->conn, m->id, AWQ_ENOMODEL, "generate: no model is loaded (send load first)");
            return;
        }
        greq *g = calloc(1, sizeof *g);
        if (!g) {
            atomic_fetch_sub(&d->n_pending, 1);
            awqd_send_error(d, it->conn, m->id, AWQ_ENOMEM, "generate: out of memory");
            return;
        }
        g->conn = it->conn;
        g->id = m->id;
        g->m = m;
        it->m = NULL; /* the request owns it now; n_pending drops at admission */
        g->t_arrive = it->t_arrive;
        if (e->wait_tail) e->wait_tail->next = g;
        else e->wait_head = g;
        e->wait_tail = g;
        return;
    }
    atomic_fetch_sub(&d->n_pending, 1);
    if (m->type == IPC_T_LOAD) {
        do_load(d, it->conn, m);
        return;
    }
    if (m->type == IPC_T_UNLOAD) {
        unload(d, "unload requested");
        reply_ok(d, it->conn, m->id);
        return;
    }
    if (!e->llm) {
        awqd_send_error(d, it->conn, m->id, AWQ_ENOMODEL, "%s: no model is loaded (send load first)",
                        ipc_type_name(m->type));
        return;
    }
    switch (m->type) {
    case IPC_T_TOKENIZE: do_tokenize(d, it->conn, m); break;
    case IPC_T_DETOKENIZE: do_detokenize(d, it->conn, m); break;
    case IPC_T_TEMPLATE: do_template(d, it->conn, m); break;
    default:
        awqd_send_error(d, it->conn, m->id, AWQ_EINTERNAL, "%s: not an engine request", ipc_type_name(m->type));
    }
}

static void handle_item(awqd *d, awqd_item *it) {
    awqd_engine *e = d->eng;
    switch (it->kind) {
    case AWQD_IT_MSG: handle_msg(d, it); break;
    case AWQD_IT_CANCEL:
        cancel_matching(d, it->conn, true, it->target, false);
        break;
    case AWQD_IT_CLOSE: {
        /* the client is gone: free its slots now, nobody to tell */
        int n = cancel_matching(d, it->conn, false, 0, true);
        set_paused(e, it->conn, false);
        if (n) awqd_debug("connection %llu closed: %d generation(s) dropped", (unsigned long long)it->conn, n);
        break;
    }
    case AWQD_IT_PAUSE: set_paused(e, it->conn, true); break;
    case AWQD_IT_RESUME: set_paused(e, it->conn, false); break;
    case AWQD_IT_FORCE:
        if (e->n_run || e->wait_head) awqd_warn("cancelling %d running generation(s)", e->n_run);
        end_all(d, 0, "");
        break;
    case AWQD_IT_EXIT: e->exit = true; break;
    default: break;
    }
    if (it->m) ipc_msg_free(it->m);
    free(it->m);
    free(it);
}

/* Whether a step could do something now. */
static bool has_work(const awqd_engine *e) {
    if (e->wait_head && e->n_run < e->max_seqs) return true;
    for (int i = 0; i < e->n_run; i++)
        if (!is_paused(e, e->run[i]->conn)) return true;
    return false;
}

/* ------------------------------------------------------------ thread ---- */

int awqd_engine_create(char *err, awqd *d) {
    d->eng = calloc(1, sizeof *d->eng);
    return d->eng ? 0 : awq_seterr(err, AWQ_ENOMEM, "out of memory");
}

bool awqd_engine_idle(awqd *d) {
    plat_mutex_lock(&d->qmu);
    bool q = d->qhead != NULL;
    plat_mutex_unlock(&d->qmu);
    plat_mutex_lock(&d->snap_mu);
    bool busy = d->snap.running || d->snap.loading;
    plat_mutex_unlock(&d->snap_mu);
    return !q && !busy && atomic_load(&d->n_pending) == 0;
}

static void preload(awqd *d) {
    char dir[CFG_VALUE_MAX], canon[PLAT_PATH_MAX], err[AWQ_ERR_LEN];
    plat_mutex_lock(&d->cfg_mu);
    memcpy(dir, d->eff->model.path, sizeof dir);
    plat_mutex_unlock(&d->cfg_mu);
    if (!dir[0]) {
        if (awqd_svc_status(NULL, "no model loaded") < 0) { /* not under systemd */ }
        return;
    }
    /* [model] path is the operator's choice: no roots check, only that it exists */
    if (plat_realpath(err, dir, canon)) {
        awqd_err("preload: [model] path: %s", err);
        return;
    }
    if (load(err, d, canon, 0, 0)) { /* logged by load; the daemon serves on, without a model */ }
}

void *awqd_engine_main(void *arg) {
    awqd *d = arg;
    awqd_engine *e = d->eng;
    preload(d);
    atomic_store(&d->preload_done, true);
    while (!e->exit) {
        plat_mutex_lock(&d->qmu);
        if (!d->qhead && !has_work(e)) plat_cond_timedwait(&d->qcv, &d->qmu, 1000);
        awqd_item *items = d->qhead;
        d->qhead = d->qtail = NULL;
        plat_mutex_unlock(&d->qmu);
        while (items) {
            awqd_item *nx = items->next;
            handle_item(d, items);
            items = nx;
        }
        if (e->exit) break;
        if (e->llm) {
            admit(d);
            step(d);
        }
        /* keep_alive: unload after that long without requests or steps */
        plat_mutex_lock(&d->cfg_mu);
        int64_t ka = d->eff->model.keep_alive;
        plat_mutex_unlock(&d->cfg_mu);
        if (ka > 0 && e->llm && !e->n_run && !e->wait_head &&
            plat_now_ns() - e->last_activity_ns > (uint64_t)ka * 1000000000ull)
            unload(d, "idle for keep_alive");
        /* a burst of concurrent generations just ended: give its per-stream memory (logits,
         * histories, frames) back to the OS instead of keeping the peak RSS while idle */
        if (!e->n_run && !e->wait_head && e->peak_run >= 2) {
            plat_heap_trim();
            e->peak_run = 0;
        }
        publish(d);
    }
    end_all(d, AWQ_ESHUTDOWN, "the server is shutting down");
    if (e->llm) unload(d, "shutting down");
    return NULL;
}

void awqd_engine_free(awqd *d) {
    if (!d || !d->eng) return;
    awqd_engine *e = d->eng;
    /* normally empty: the thread ended everything; this covers a thread that never ran */
    while (e->wait_head) {
        greq *g = e->wait_head;
        e->wait_head = g->next;
        greq_free(g);
    }
    for (int i = 0; i < e->n_run; i++) greq_free(e->run[i]);
    pool_clear(e);
    eng_llm_free(e->llm);
    free(e->run);
    free(e->batch);
    free(e->paused);
    free(e);
    d->eng = NULL;
}
