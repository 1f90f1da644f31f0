/* gen.c - sequences, batched steps, sampling and the streaming text side (see gen.h). */
#include <stdlib.h>
#include <string.h>

#include "awq_util.h"
#include "cpu.h"
#include "gen.h"
#include "plat.h"

int eng_gen_chunk(void) { return ENG_GEN_CHUNK; }

struct eng_gen {
    const eng_model *m;
    const eng_tok *tok;            /* may be NULL: no text */
    const eng_backend_ops *be;
    void *be_state;
    int max_ctx, max_seqs, vocab;
    eng_gen_seq **seqs;            /* (max_seqs) open sequences, for eng_gen_free */
    /* step scratch */
    int *slot, *pos, *ntok;        /* (max_seqs) */
    int32_t *tokens;               /* (max_seqs * ENG_GEN_CHUNK) */
    float *logits;                 /* (max_seqs, vocab): the last step's rows */
    uint64_t steps;                /* forward passes run: a sequence's logits row is this step's */
    eng_gen_seq **batch;           /* (max_seqs) */
    eng_samp_scratch *samp_sc;     /* the sequential sampling's working memory */
    /* picking (backend.h): the step's requests and answers, in batch order; off when the
     * backend does not by default (eng_backend_ops.picks) or cannot read a row back, or
     * eng_gen_keep_logits asked for whole rows */
    bool picking;
    eng_pick *pick;                /* (max_seqs) */
    eng_pick_out *pick_out;        /* (max_seqs) */
    /* parallel sampling (steps where >= GEN_PAR_MIN sequences sample): a pool made at the first
     * such step, one scratch per worker, the step's sampling sequences and their results */
    int par_threads;               /* workers wanted; 1 = never in parallel */
    eng_cpu_pool *pool;
    eng_samp_scratch **par_sc;     /* (par_threads) */
    eng_gen_seq **samp;            /* (max_seqs) */
    int *samp_rc;                  /* (max_seqs) */
    char (*par_err)[AWQ_ERR_LEN];  /* (par_threads) */
    int n_samp;
};

struct eng_gen_seq {
    eng_gen *g;
    int slot;
    int32_t *hist;       /* (max_ctx + 1) prompt then generated */
    size_t n_hist;
    size_t n_past;       /* hist[0..n_past) are in the KV cache */
    size_t n_prompt, n_gen;
    bool prompted;
    eng_gen_finish finish;
    eng_samp *samp;
    eng_samp_params p;   /* stop / stop_ids point at the copies below */
    char *stop_buf;      /* the stop strings, NUL-separated */
    const char *stop[ENG_SAMP_MAX_STOP];
    int32_t stop_ids[ENG_SAMP_MAX_STOP_IDS];
    eng_tok_stream ts;
    awq_buf hold;        /* decoded text not yet released */
    awq_buf out;         /* text released by the last step */
    const float *logits; /* (vocab) its row of g->logits, valid while logits_step == g->steps:
                          * no copy per sequence (480 KB a step at a 120k vocabulary) */
    uint64_t logits_step;
    int host;            /* this step samples on the host: HOST_RAW (raw row) or HOST_EDITED */
    eng_pick_edit *edits; /* (edit_cap) the plan's edits */
    int edit_cap;
    int32_t *cand_id;    /* (ENG_PICK_MAX) a TOP answer's candidates */
    float *cand_l;
    eng_gen_event ev;
};

/* Steps where at least GEN_PAR_MIN sequences sample spread the sampling over up to
 * GEN_PAR_MAX threads (the backend's thread count, else the cores): one sampled token costs
 * ~0.2 ms at a 120k vocabulary, 13 ms per step at 64 streams on one thread, twice the
 * GPU's whole step (bench/RESULTS.md). */
#define GEN_PAR_MIN 4
#define GEN_PAR_MAX 8

/* where a sampling sequence's token comes from this step (eng_gen_seq.host) */
enum { HOST_NONE /* the backend's answer settled it */, HOST_RAW /* the raw row */, HOST_EDITED /* the edited row */ };

const char *eng_gen_finish_name(eng_gen_finish f) {
    switch (f) {
    case ENG_GEN_STOP: return "stop";
    case ENG_GEN_LENGTH: return "length";
    case ENG_GEN_CONTEXT: return "context";
    case ENG_GEN_CANCEL: return "cancel";
    default: return NULL;
    }
}

/* ---------------------------------------------------------------- engine ---- */

eng_gen *eng_gen_create(char *err, const eng_model *m, const eng_tok *tok, const eng_backend_ops *be,
                        const eng_backend_opts *o) {
    eng_gen *g = calloc(1, sizeof *g);
    if (!g) goto oom;
    g->m = m;
    g->tok = tok;
    g->be = be;
    g->max_ctx = o->max_ctx;
    g->max_seqs = o->max_seqs;
    g->vocab = m->cfg.vocab;
    if (be->create(err, m, o, &g->be_state)) {
        free(g);
        return NULL;
    }
    g->seqs = calloc((size_t)g->max_seqs, sizeof *g->seqs);
    g->slot = calloc((size_t)g->max_seqs, sizeof *g->slot);
    g->pos = calloc((size_t)g->max_seqs, sizeof *g->pos);
    g->ntok = calloc((size_t)g->max_seqs, sizeof *g->ntok);
    g->tokens = calloc((size_t)g->max_seqs * ENG_GEN_CHUNK, sizeof *g->tokens);
    g->logits = malloc((size_t)g->max_seqs * (size_t)g->vocab * sizeof *g->logits);
    g->batch = calloc((size_t)g->max_seqs, sizeof *g->batch);
    g->picking = be->picks && be->row != NULL;
    g->pick = calloc((size_t)g->max_seqs, sizeof *g->pick);
    g->pick_out = calloc((size_t)g->max_seqs, sizeof *g->pick_out);
    g->samp_sc = eng_samp_scratch_create(err, g->vocab);
    const int cores = o->threads > 0 ? o->threads : plat_ncpu();
    g->par_threads = cores < GEN_PAR_MAX ? (cores > 1 ? cores : 1) : GEN_PAR_MAX;
    g->samp = calloc((size_t)g->max_seqs, sizeof *g->samp);
    g->samp_rc = calloc((size_t)g->max_seqs, sizeof *g->samp_rc);
    if (!g->seqs || !g->slot || !g->pos || !g->ntok || !g->tokens || !g->logits || !g->batch || !g->samp_sc ||
        !g->samp || !g->samp_rc || !g->pick || !g->pick_out) {
        eng_gen_free(g);
        goto oom;
    }
    return g;
oom:
    awq_seterr(err, AWQ_ENOMEM, "out of memory creating the generator");
    return NULL;
}

void eng_gen_free(eng_gen *g) {
    if (!g) return;
    if (g->seqs)
        for (int i = 0; i < g->max_seqs; i++) eng_gen_seq_free(g->seqs[i]);
    if (g->be_state) g->be->destroy(g->be_state);
    free(g->seqs);
    free(g->slot);
    free(g->pos);
    free(g->ntok);
    free(g->tokens);
    free(g->logits);
    free(g->batch);
    free(g->pick);
    free(g->pick_out);
    eng_samp_scratch_free(g->samp_sc);
    eng_cpu_pool_free(g->pool);
    if (g->par_sc)
        for (int i = 0; i < g->par_threads; i++) eng_samp_scratch_free(g->par_sc[i]);
    free(g->par_sc);
    free(g->par_err);
    free(g->samp);
    free(g->samp_rc);
    free(g);
}

int eng_gen_max_ctx(const eng_gen *g) { return g->max_ctx; }
void eng_gen_keep_logits(eng_gen *g, bool keep) { g->picking = !keep && g->be->row != NULL; }
const char *eng_gen_backend_name(const eng_gen *g) { return g->be->name; }
void eng_gen_memory(const eng_gen *g, size_t *weights, size_t *kv) { g->be->memory(g->be_state, weights, kv); }

/* ---------------------------------------------------------------- sequences ---- */

/* Copies p's borrowed arrays into s and builds its sampler. */
static int seq_params(char *err, eng_gen_seq *s, const eng_samp_params *p) {
    if (p->n_stop && !s->g->tok)
        return awq_seterr(err, AWQ_EINVAL, "stop strings need a tokenizer (none loaded)");
    int rc = eng_samp_params_check(err, p, s->g->vocab);
    if (rc) return rc;
    eng_samp *samp = eng_samp_create(err, p, s->g->vocab);
    if (!samp) return AWQ_ENOMEM;
    size_t total = 0;
    for (int i = 0; i < p->n_stop; i++) total += strlen(p->stop[i]) + 1;
    char *buf = total ? malloc(total) : NULL;
    if (total && !buf) {
        eng_samp_free(samp);
        return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    }
    eng_samp_free(s->samp);
    free(s->stop_buf);
    s->samp = samp;
    s->stop_buf = buf;
    s->p = *p;
    for (int i = 0; i < p->n_stop; i++) {
        size_t n = strlen(p->stop[i]) + 1;
        memcpy(buf, p->stop[i], n);
        s->stop[i] = buf;
        buf += n;
    }
    /* the plan's edit list: the bias entries and the penalty window's distinct tokens */
    const int cap = eng_samp_edit_cap(samp, (size_t)s->g->max_ctx + 1);
    if (cap > s->edit_cap) {
        eng_pick_edit *e = realloc(s->edits, sizeof *e * (size_t)cap);
        if (e) s->edits = e, s->edit_cap = cap; /* else those plans go FULL: slower, same ids */
    }
    memcpy(s->stop_ids, p->stop_ids ? p->stop_ids : s->stop_ids, sizeof(int32_t) * (size_t)p->n_stop_ids);
    s->p.stop = s->stop;
    s->p.stop_ids = s->stop_ids;
    s->p.logit_bias = NULL; /* the sampler has its own copy */
    return 0;
}

int eng_gen_seq_create(char *err, eng_gen *g, const eng_samp_params *p, eng_gen_seq **out) {
    *out = NULL;
    int rc = eng_samp_params_check(err, p, g->vocab);
    if (rc) return rc;
    int idx = -1;
    for (int i = 0; i < g->max_seqs; i++)
        if (!g->seqs[i]) {
            idx = i;
            break;
        }
    if (idx < 0) return awq_seterr(err, AWQ_EBUSY, "all %d sequences are in use", g->max_seqs);
    eng_gen_seq *s = calloc(1, sizeof *s);
    if (!s) return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    s->g = g;
    s->slot = -1;
    s->hist = malloc(sizeof *s->hist * ((size_t)g->max_ctx + 1));
    s->cand_id = malloc(sizeof *s->cand_id * ENG_PICK_MAX);
    s->cand_l = malloc(sizeof *s->cand_l * ENG_PICK_MAX);
    if (!s->hist || !s->cand_id || !s->cand_l) {
        rc = awq_seterr(err, AWQ_ENOMEM, "out of memory for a sequence of %d tokens", g->max_ctx);
        goto fail;
    }
    if ((rc = seq_params(err, s, p))) goto fail;
    if ((rc = g->be->slot_alloc(err, g->be_state, &s->slot))) {
        s->slot = -1;
        goto fail;
    }
    g->seqs[idx] = s;
    *out = s;
    return 0;
fail:
    s->g = NULL; /* not registered: free without touching g->seqs */
    eng_samp_free(s->samp);
    free(s->stop_buf);
    free(s->hist);
    free(s->edits);
    free(s->cand_id);
    free(s->cand_l);
    free(s);
    return rc;
}

void eng_gen_seq_free(eng_gen_seq *s) {
    if (!s) return;
    eng_gen *g = s->g;
    for (int i = 0; i < g->max_seqs; i++)
        if (g->seqs[i] == s) g->seqs[i] = NULL;
    if (s->slot >= 0) g->be->slot_free(g->be_state, s->slot);
    eng_samp_free(s->samp);
    free(s->stop_buf);
    free(s->hist);
    free(s->edits);
    free(s->cand_id);
    free(s->cand_l);
    awq_buf_free(&s->hold);
    awq_buf_free(&s->out);
    free(s);
}

int eng_gen_seq_set_params(char *err, eng_gen_seq *s, const eng_samp_params *p) {
    int rc = eng_samp_params_check(err, p, s->g->vocab);
    return rc ? rc : seq_params(err, s, p);
}

int eng_gen_seq_prompt(char *err, eng_gen_seq *s, const int32_t *ids, size_t n, size_t *reused) {
    eng_gen *g = s->g;
    if (n == 0) return awq_seterr(err, AWQ_EINVAL, "empty prompt: at least one token is needed");
    if (n > (size_t)g->max_ctx)
        return awq_seterr(err, AWQ_ECONTEXT, "prompt has %zu tokens; the context holds %d", n, g->max_ctx);
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= g->vocab)
            return awq_seterr(err, AWQ_ERANGE, "prompt token %zu: id %d outside the vocabulary of %d", i, (int)ids[i],
                              g->vocab);
    size_t keep = 0;
    while (keep < s->n_past && keep < n && s->hist[keep] == ids[keep]) keep++;
    if (keep > n - 1) keep = n - 1; /* the last prompt token is fed again for its logits */
    memmove(s->hist, ids, n * sizeof *ids);
    s->n_hist = s->n_prompt = n;
    s->n_past = keep;
    s->n_gen = 0;
    s->prompted = true;
    s->finish = ENG_GEN_RUNNING;
    s->logits = NULL;
    memset(&s->ev, 0, sizeof s->ev);
    s->hold.len = s->out.len = 0;
    if (g->tok) eng_tok_stream_init(&s->ts, g->tok, true);
    if (reused) *reused = keep;
    return 0;
}

void eng_gen_seq_rewind(eng_gen_seq *s, size_t n) {
    if (n < s->n_hist) s->n_hist = n;
    if (n < s->n_past) s->n_past = n;
    s->prompted = false;
}

size_t eng_gen_seq_history(const eng_gen_seq *s, const int32_t **ids) {
    if (ids) *ids = s->hist;
    return s->n_hist;
}
size_t eng_gen_seq_n_prompt(const eng_gen_seq *s) { return s->n_prompt; }
size_t eng_gen_seq_n_generated(const eng_gen_seq *s) { return s->n_gen; }
size_t eng_gen_seq_pending(const eng_gen_seq *s) {
    return s->prompted && s->n_gen == 0 && s->n_past < s->n_hist ? s->n_hist - s->n_past : 0;
}
void eng_gen_seq_cancel(eng_gen_seq *s) {
    if (s->finish == ENG_GEN_RUNNING) s->finish = ENG_GEN_CANCEL;
}
eng_gen_finish eng_gen_seq_finish(const eng_gen_seq *s) { return s->finish; }
const eng_gen_event *eng_gen_seq_event(const eng_gen_seq *s) { return &s->ev; }
const float *eng_gen_seq_logits(const eng_gen_seq *s) {
    return s->logits && s->host == HOST_RAW && s->logits_step == s->g->steps ? s->logits : NULL;
}

/* ---------------------------------------------------------------- text ---- */

/* Earliest occurrence of any stop string in h[0..n): its offset, or -1. */
static long stop_find(const eng_gen_seq *s, const char *h, size_t n) {
    long best = -1;
    for (int i = 0; i < s->p.n_stop; i++) {
        size_t sl = strlen(s->stop[i]);
        for (size_t at = 0; at + sl <= n && (best < 0 || (long)at < best); at++)
            if (!memcmp(h + at, s->stop[i], sl)) {
                best = (long)at;
                break;
            }
    }
    return best;
}

/* Bytes at the end of h[0..n) that could still grow into a stop string (the longest suffix
 * that is a proper prefix of one). */
static size_t stop_holdback(const eng_gen_seq *s, const char *h, size_t n) {
    size_t keep = 0;
    for (int i = 0; i < s->p.n_stop; i++) {
        size_t sl = strlen(s->stop[i]);
        for (size_t k = sl - 1 < n ? sl - 1 : n; k > keep; k--)
            if (!memcmp(h + n - k, s->stop[i], k)) {
                keep = k;
                break;
            }
    }
    return keep;
}

/* Moves released text from hold to out. final: the sequence ends, release all (up to a stop
 * string). Returns true when a stop string was found. */
static int release_text(eng_gen_seq *s, bool final, bool *stopped) {
    *stopped = false;
    long at = stop_find(s, s->hold.data ? s->hold.data : "", s->hold.len);
    size_t n;
    if (at >= 0) {
        n = (size_t)at;
        *stopped = true;
    } else {
        n = final ? s->hold.len : s->hold.len - stop_holdback(s, s->hold.data, s->hold.len);
    }
    if (n && awq_buf_append(&s->out, s->hold.data, n)) return AWQ_ENOMEM;
    if (*stopped) {
        s->hold.len = 0;
    } else {
        memmove(s->hold.data, s->hold.data + n, s->hold.len - n);
        s->hold.len -= n;
    }
    return 0;
}

static void finish(eng_gen_seq *s, eng_gen_finish f) {
    s->finish = f;
    s->ev.finish = f;
}

/* Handles the token just sampled: history, stop conditions, text. */
static int accept_token(char *err, eng_gen_seq *s, int32_t id) {
    eng_gen *g = s->g;
    const eng_config *c = &g->m->cfg;
    s->hist[s->n_hist++] = id;
    s->n_gen++;
    bool stop = false, stopped = false;
    if (!s->p.ignore_eos) {
        for (int i = 0; i < c->n_eos; i++) stop |= id == c->eos_ids[i];
        if (g->tok) stop |= id == eng_tok_eos_id(g->tok);
    }
    for (int i = 0; i < s->p.n_stop_ids; i++) stop |= id == s->stop_ids[i];
    bool ending = stop || s->n_gen >= (size_t)s->p.max_tokens || s->n_hist > (size_t)g->max_ctx;
    if (g->tok) {
        int rc = 0;
        /* config vocab_size may exceed the tokenizer's (padding rows): such ids have no text */
        if (!stop && id < eng_tok_vocab_size(g->tok)) rc = eng_tok_stream_push(&s->ts, id, &s->hold);
        if (!rc && ending) rc = eng_tok_stream_flush(&s->ts, &s->hold);
        if (!rc) rc = release_text(s, ending, &stopped);
        if (rc) return awq_seterr(err, rc, "decoding token %d: %s", (int)id, awq_strerror(rc));
    }
    if (stop || stopped) finish(s, ENG_GEN_STOP);
    else if (s->n_gen >= (size_t)s->p.max_tokens) finish(s, ENG_GEN_LENGTH);
    else if (s->n_hist > (size_t)g->max_ctx) finish(s, ENG_GEN_CONTEXT);
    return 0;
}

/* ---------------------------------------------------------------- step ---- */

/* The pool and the per-worker scratch of parallel sampling, made at the first step that wants
 * them. false (sample one by one) when par_threads is 1 or they cannot be made. */
static bool par_ready(eng_gen *g) {
    if (g->pool) return true;
    if (g->par_threads < 2) return false;
    char e2[AWQ_ERR_LEN];
    g->par_sc = calloc((size_t)g->par_threads, sizeof *g->par_sc);
    g->par_err = calloc((size_t)g->par_threads, sizeof *g->par_err);
    bool ok = g->par_sc && g->par_err;
    for (int i = 0; ok && i < g->par_threads; i++) ok = (g->par_sc[i] = eng_samp_scratch_create(e2, g->vocab)) != NULL;
    if (ok) ok = (g->pool = eng_cpu_pool_create(e2, g->par_threads)) != NULL;
    if (!ok) { /* no memory or no threads: the sequential path still works */
        if (g->par_sc)
            for (int i = 0; i < g->par_threads; i++) eng_samp_scratch_free(g->par_sc[i]);
        free(g->par_sc);
        free(g->par_err);
        g->par_sc = NULL;
        g->par_err = NULL;
        g->par_threads = 1;
    }
    return ok;
}

/* the host's share of a sequence's sampling: from its raw row, or its edited one when the
 * backend's answer could not settle the choice */
static int host_sample(char *err, eng_gen_seq *s, eng_samp_scratch *sc) {
    if (s->host == HOST_EDITED) return eng_samp_sample_edited(err, s->samp, sc, s->logits, &s->ev.tok);
    return eng_samp_sample(err, s->samp, sc, s->logits, s->hist, s->n_hist, &s->ev.tok);
}

/* worker tid samples sequences tid, tid + n, ... of the step, up to its first failure (whose
 * message stays in par_err[tid]) */
static void par_sample(void *ctx, int tid, int n) {
    eng_gen *g = ctx;
    for (int j = tid; j < g->n_samp; j += n) {
        eng_gen_seq *s = g->samp[j];
        if (!s->host) continue;
        g->samp_rc[j] = host_sample(g->par_err[tid], s, g->par_sc[tid]);
        if (g->samp_rc[j]) return;
    }
}


int eng_gen_step(char *err, eng_gen *g, eng_gen_seq *const *seqs, int n) {
    int nb = 0;
    size_t nt = 0;
    bool want = false;
    if (n > g->max_seqs) return awq_seterr(err, AWQ_EINVAL, "step over %d sequences; at most %d", n, g->max_seqs);
    for (int i = 0; i < n; i++) {
        eng_gen_seq *s = seqs[i];
        s->out.len = 0;
        memset(&s->ev, 0, sizeof s->ev);
        if (s->g != g) return awq_seterr(err, AWQ_EINVAL, "sequence %d belongs to another generator", i);
        for (int j = 0; j < nb; j++)
            if (g->batch[j] == s) return awq_seterr(err, AWQ_EINVAL, "sequence %d appears twice in one step", i);
        if (!s->prompted || s->finish != ENG_GEN_RUNNING || s->n_past >= s->n_hist) continue;
        size_t feed = s->n_hist - s->n_past;
        if (feed > ENG_GEN_CHUNK) feed = ENG_GEN_CHUNK;
        g->batch[nb] = s;
        g->slot[nb] = s->slot;
        g->pos[nb] = (int)s->n_past;
        g->ntok[nb] = (int)feed;
        memcpy(g->tokens + nt, s->hist + s->n_past, feed * sizeof *g->tokens);
        nt += feed;
        want |= s->n_past + feed == s->n_hist;
        nb++;
    }
    if (nb == 0) return 0;
    /* what each sampling row's backend reduction is (a row still prefilling wants nothing: the
     * cheapest, an argmax); the plans are made on this thread, in batch order */
    bool full = false;
    for (int i = 0; g->picking && want && i < nb; i++) {
        eng_gen_seq *s = g->batch[i];
        eng_pick_out *po = &g->pick_out[i];
        memset(po, 0, sizeof *po);
        if (s->n_past + (size_t)g->ntok[i] < s->n_hist) {
            memset(&g->pick[i], 0, sizeof g->pick[i]);
            g->pick[i].mode = ENG_PICK_ARGMAX;
            continue;
        }
        eng_samp_plan(s->samp, g->samp_sc, s->hist, s->n_hist, &g->pick[i], s->edits, s->edit_cap);
        full |= g->pick[i].mode == ENG_PICK_FULL;
        po->ids = s->cand_id;
        po->l = s->cand_l;
    }
    const bool pick = g->picking && want;
    eng_batch b = {nb, g->slot, g->pos, g->ntok, g->tokens, want && (full || !pick) ? g->logits : NULL, NULL,
                   pick ? g->pick : NULL, pick ? g->pick_out : NULL};
    g->steps++; /* every row of g->logits is rewritten (or stale) from here on */
    int rc = g->be->forward(err, g->be_state, &b);
    if (rc) return rc;
    g->n_samp = 0;
    int n_host = 0; /* of them, those the host samples from a row */
    for (int i = 0; i < nb; i++) {
        eng_gen_seq *s = g->batch[i];
        s->n_past += (size_t)g->ntok[i];
        s->logits = NULL;
        if (s->n_past < s->n_hist) continue; /* prefill continues next step */
        s->host = HOST_RAW;
        if (pick && g->pick[i].mode != ENG_PICK_FULL) {
            bool need_row = false;
            if ((rc = eng_samp_finish(err, s->samp, g->samp_sc, &g->pick[i], &g->pick_out[i], &s->ev.tok, &need_row)))
                return rc;
            if (!need_row) {
                s->host = HOST_NONE;
                g->samp[g->n_samp++] = s;
                continue;
            }
            /* the backend could not reduce the row (more ties at its threshold than it
             * gathers): the edited row, then the host samples as before */
            if ((rc = g->be->row(err, g->be_state, i, g->logits + (size_t)i * g->vocab))) return rc;
            s->host = HOST_EDITED;
        }
        s->logits = g->logits + (size_t)i * g->vocab;
        s->logits_step = g->steps;
        g->samp[g->n_samp++] = s;
        n_host++;
    }
    /* sample: each sequence has its own sampler (RNG) and reads only its logits row and
     * history, so the order and the thread do not change any id */
    if (n_host >= GEN_PAR_MIN && par_ready(g)) {
        memset(g->samp_rc, 0, sizeof *g->samp_rc * (size_t)g->n_samp);
        eng_cpu_pool_run(g->pool, par_sample, g);
        for (int j = 0; j < g->n_samp; j++)
            if (g->samp_rc[j]) { /* the first failure, with its worker's message */
                awq_seterr(err, g->samp_rc[j], "%s", g->par_err[j % eng_cpu_pool_size(g->pool)]);
                return g->samp_rc[j];
            }
    } else {
        for (int j = 0; j < g->n_samp; j++)
            if (g->samp[j]->host && (rc = host_sample(err, g->samp[j], g->samp_sc))) return rc;
    }
    for (int j = 0; j < g->n_samp; j++) {
        eng_gen_seq *s = g->samp[j];
        s->ev.has_token = true;
        if ((rc = accept_token(err, s, s->ev.tok.id))) return rc;
        s->ev.text = s->out.data ? s->out.data : "";
        s->ev.text_len = s->out.len;
    }
    return 0;
}
