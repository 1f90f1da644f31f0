/* cpu.c - the CPU backend: the Llama/Mistral forward pass over mmapped AWQ weights, the KV
 * cache slots, and the eng_cpu_backend table (backend.h).
 *
 * KV cache: fp32, per slot (layers, max_ctx, kv_dim) for K and the same for V, allocated with
 * calloc when a slot is claimed (pages are touched only as positions fill, so RSS grows with the
 * tokens actually held) and freed when it is released. fp32 keeps the CPU path exact against
 * the fp32 reference; 7B at 4096 tokens costs 1 GiB per slot (fp16 would halve it).
 *
 * A batch is processed as sub-batches of at most CPU_MAX_M tokens in sequence order: each
 * linear layer sees all of a sub-batch's tokens at once (GEMV for a few decode tokens, blocked
 * GEMM for prefill chunks), attention runs per (token, head) on the pool. Every per-token
 * operation is independent of the other tokens in the call, so a sequence's logits are bitwise
 * the same alone or batched (see cpu.h on the matmul paths).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "awq_util.h"
#include "backend.h"
#include "cpu.h"
#include "sample.h"

/* Tokens per sub-batch: bounds the activation scratch (about 100 KB per token for 7B). */
#define CPU_MAX_M 128

typedef struct cpu_slot {
    bool used;
    float *k; /* (layers, max_ctx, kv_dim) */
    float *v; /* (layers, max_ctx, kv_dim) */
} cpu_slot;

typedef struct cpu_state {
    const eng_model *m;
    eng_cpu_impl impl;
    eng_cpu_pool *pool;
    int max_ctx, max_seqs, q_dim, kv_dim;
    size_t kv_slot_bytes, kv_budget;
    cpu_slot *slots;   /* (max_seqs) */
    /* activations of one sub-batch */
    float *x;          /* (CPU_MAX_M, hidden) residual stream */
    float *xn;         /* (CPU_MAX_M, hidden) normed */
    float *q;          /* (CPU_MAX_M, q_dim) */
    float *k, *v;      /* (CPU_MAX_M, kv_dim) */
    float *att;        /* (CPU_MAX_M, q_dim) */
    float *o;          /* (CPU_MAX_M, hidden) */
    float *g, *u;      /* (CPU_MAX_M, intermediate) */
    float *last;       /* (max_seqs, hidden) hidden state of each sequence's last token */
    float *lastn;      /* (max_seqs, hidden) */
    float *logits;     /* (max_seqs, vocab) when the caller wants only argmax or picks */
    int n_rows;        /* rows of logits the last picking forward left there (for row()) */
    eng_samp_scratch *pick_sc;
    float *scores;     /* (threads, max_ctx) attention scratch */
    int *t_slot, *t_pos, *t_seq; /* (CPU_MAX_M) per token of the sub-batch */
} cpu_state;

static void cpu_destroy(void *state);

/* ---------------------------------------------------------------- creation ---- */

static int check_lin(char *err, const eng_qlinear *l, int layer, const char *name, int in, int out) {
    char e2[AWQ_ERR_LEN];
    if (eng_cpu_qlinear_check(e2, l)) return awq_seterr(err, AWQ_EINVAL, "layer %d %s: %s", layer, name, e2);
    if (l->in != in || l->out != out)
        return awq_seterr(err, AWQ_EINVAL, "layer %d %s: shape (%d, %d), expected (%d, %d)", layer, name, l->in,
                          l->out, in, out);
    return 0;
}

static int cpu_create(char *err, const eng_model *m, const eng_backend_opts *o, void **out) {
    const eng_config *c = &m->cfg;
    int rc;
    *out = NULL;
    if (c->hidden <= 0 || c->layers <= 0 || c->heads <= 0 || c->kv_heads <= 0 || c->vocab <= 0 ||
        c->intermediate <= 0 || c->head_dim <= 0)
        return awq_seterr(err, AWQ_EINVAL, "model config has a non-positive dimension");
    if (c->head_dim % 2 || c->head_dim > 1024)
        return awq_seterr(err, AWQ_EUNSUPPORTED, "head_dim %d: the CPU backend needs an even head_dim <= 1024",
                          c->head_dim);
    if (c->heads % c->kv_heads)
        return awq_seterr(err, AWQ_EINVAL, "num_attention_heads %d is not a multiple of num_key_value_heads %d",
                          c->heads, c->kv_heads);
    if (!m->embed || !m->norm || !m->lm_head || !m->layers)
        return awq_seterr(err, AWQ_EINVAL, "model has no embedding, norm, lm_head or layers");
    if (o->max_ctx <= 0 || o->max_seqs <= 0)
        return awq_seterr(err, AWQ_EINVAL, "max_ctx %d and max_seqs %d must be positive", o->max_ctx, o->max_seqs);
    if (c->max_pos > 0 && o->max_ctx > c->max_pos)
        return awq_seterr(err, AWQ_ECONTEXT, "context %d exceeds the model's max_position_embeddings %d",
                          o->max_ctx, c->max_pos);
    const int qd = c->heads * c->head_dim, kvd = c->kv_heads * c->head_dim;
    for (int i = 0; i < c->layers; i++) {
        const eng_layer *L = &m->layers[i];
        if (!L->attn_norm || !L->ffn_norm) return awq_seterr(err, AWQ_EINVAL, "layer %d: missing norm weights", i);
        if ((rc = check_lin(err, &L->q, i, "q_proj", c->hidden, qd)) || (rc = check_lin(err, &L->k, i, "k_proj", c->hidden, kvd)) ||
            (rc = check_lin(err, &L->v, i, "v_proj", c->hidden, kvd)) || (rc = check_lin(err, &L->o, i, "o_proj", qd, c->hidden)) ||
            (rc = check_lin(err, &L->gate, i, "gate_proj", c->hidden, c->intermediate)) ||
            (rc = check_lin(err, &L->up, i, "up_proj", c->hidden, c->intermediate)) ||
            (rc = check_lin(err, &L->down, i, "down_proj", c->intermediate, c->hidden)))
            return rc;
    }
    size_t per = 0;
    if (!awq_mul_ok((size_t)c->layers * (size_t)o->max_ctx, (size_t)kvd * 2 * sizeof(float), &per))
        return awq_seterr(err, AWQ_ERANGE, "KV cache size overflows");
    cpu_state *s = calloc(1, sizeof *s);
    if (!s) return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    s->m = m;
    s->impl = eng_cpu_impl_best();
    s->max_ctx = o->max_ctx;
    s->max_seqs = o->max_seqs;
    s->q_dim = qd;
    s->kv_dim = kvd;
    s->kv_slot_bytes = per;
    s->kv_budget = o->kv_budget;
    s->pool = eng_cpu_pool_create(err, o->threads);
    if (!s->pool) {
        cpu_destroy(s);
        return AWQ_ENOMEM;
    }
    const size_t M = CPU_MAX_M, H = (size_t)c->hidden, I = (size_t)c->intermediate;
    int nt = eng_cpu_pool_size(s->pool);
    s->slots = calloc((size_t)o->max_seqs, sizeof *s->slots);
    s->x = malloc(M * H * sizeof(float));
    s->xn = malloc(M * H * sizeof(float));
    s->q = malloc(M * (size_t)qd * sizeof(float));
    s->k = malloc(M * (size_t)kvd * sizeof(float));
    s->v = malloc(M * (size_t)kvd * sizeof(float));
    s->att = malloc(M * (size_t)qd * sizeof(float));
    s->o = malloc(M * H * sizeof(float));
    s->g = malloc(M * I * sizeof(float));
    s->u = malloc(M * I * sizeof(float));
    s->last = malloc((size_t)o->max_seqs * H * sizeof(float));
    s->lastn = malloc((size_t)o->max_seqs * H * sizeof(float));
    s->logits = malloc((size_t)o->max_seqs * (size_t)c->vocab * sizeof(float));
    s->scores = malloc((size_t)nt * (size_t)o->max_ctx * sizeof(float));
    s->t_slot = malloc(M * sizeof(int));
    s->t_pos = malloc(M * sizeof(int));
    s->t_seq = malloc(M * sizeof(int));
    s->pick_sc = eng_samp_scratch_create(err, c->vocab);
    if (!s->pick_sc || !s->slots || !s->x || !s->xn || !s->q || !s->k || !s->v || !s->att || !s->o || !s->g || !s->u || !s->last ||
        !s->lastn || !s->logits || !s->scores || !s->t_slot || !s->t_pos || !s->t_seq) {
        cpu_destroy(s);
        return awq_seterr(err, AWQ_ENOMEM, "out of memory for CPU activations (%d sequences, context %d)",
                          o->max_seqs, o->max_ctx);
    }
    *out = s;
    return 0;
}

static void cpu_destroy(void *state) {
    cpu_state *s = state;
    if (!s) return;
    if (s->slots)
        for (int i = 0; i < s->max_seqs; i++) {
            free(s->slots[i].k);
            free(s->slots[i].v);
        }
    eng_cpu_pool_free(s->pool);
    free(s->slots);
    free(s->x);
    free(s->xn);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->att);
    free(s->o);
    free(s->g);
    free(s->u);
    free(s->last);
    free(s->lastn);
    free(s->logits);
    free(s->scores);
    free(s->t_slot);
    free(s->t_pos);
    free(s->t_seq);
    eng_samp_scratch_free(s->pick_sc);
    free(s);
}

/* ---------------------------------------------------------------- slots ---- */

static int cpu_slot_alloc(char *err, void *state, int *slot) {
    cpu_state *s = state;
    int used = 0, free_i = -1;
    for (int i = 0; i < s->max_seqs; i++) {
        if (s->slots[i].used) used++;
        else if (free_i < 0) free_i = i;
    }
    if (free_i < 0) return awq_seterr(err, AWQ_EBUSY, "all %d sequence slots are in use", s->max_seqs);
    if (s->kv_budget && (size_t)(used + 1) * s->kv_slot_bytes > s->kv_budget)
        return awq_seterr(err, AWQ_EBUSY, "KV budget of %zu bytes holds %d sequences; %d in use", s->kv_budget,
                          (int)(s->kv_budget / s->kv_slot_bytes), used);
    cpu_slot *sl = &s->slots[free_i];
    /* calloc: the pages stay untouched (and out of RSS) until positions are written */
    sl->k = calloc(1, s->kv_slot_bytes / 2);
    sl->v = calloc(1, s->kv_slot_bytes / 2);
    if (!sl->k || !sl->v) {
        free(sl->k);
        free(sl->v);
        sl->k = sl->v = NULL;
        return awq_seterr(err, AWQ_ENOMEM, "out of memory for a KV cache of %zu bytes", s->kv_slot_bytes);
    }
    sl->used = true;
    *slot = free_i;
    return 0;
}

static void cpu_slot_free(void *state, int slot) {
    cpu_state *s = state;
    if (slot < 0 || slot >= s->max_seqs || !s->slots[slot].used) return;
    free(s->slots[slot].k);
    free(s->slots[slot].v);
    s->slots[slot] = (cpu_slot){0};
}

static void cpu_memory(void *state, size_t *weights, size_t *kv) {
    cpu_state *s = state;
    size_t n = 0;
    for (int i = 0; i < s->max_seqs; i++)
        if (s->slots[i].used) n += s->kv_slot_bytes;
    if (weights) *weights = 0; /* weights stay in the read-only mapping */
    if (kv) *kv = n;
}

/* ---------------------------------------------------------------- attention ---- */

typedef struct attn_job {
    cpu_state *s;
    int layer, n;   /* n tokens in the sub-batch */
} attn_job;

static void attn_task(void *ctx, int tid, int nt) {
    const attn_job *j = ctx;
    cpu_state *s = j->s;
    const eng_config *c = &s->m->cfg;
    const int hd = c->head_dim, group = c->heads / c->kv_heads;
    const size_t lay = (size_t)j->layer * s->max_ctx * s->kv_dim;
    float *scr = s->scores + (size_t)tid * s->max_ctx;
    for (int w = tid; w < j->n * c->heads; w += nt) {
        int t = w / c->heads, h = w % c->heads;
        const cpu_slot *sl = &s->slots[s->t_slot[t]];
        int pos = s->t_pos[t];
        eng_cpu_attn_head(s->q + (size_t)t * s->q_dim + (size_t)h * hd, sl->k + lay, sl->v + lay, s->kv_dim,
                          (h / group) * hd, hd, eng_cpu_attn_lo(pos, c->sliding_window), pos, scr,
                          s->att + (size_t)t * s->q_dim + (size_t)h * hd);
    }
}

/* ---------------------------------------------------------------- forward ---- */

static inline float silu(float v) { return v / (1.0f + expf(-v)); }

/* The transformer layers over n tokens whose embeddings are in s->x. */
static int run_layers(char *err, cpu_state *s, int n) {
    const eng_model *m = s->m;
    const eng_config *c = &m->cfg;
    const int H = c->hidden, I = c->intermediate, qd = s->q_dim, kvd = s->kv_dim;
    int rc;
    for (int li = 0; li < c->layers; li++) {
        const eng_layer *L = &m->layers[li];
        for (int t = 0; t < n; t++)
            eng_cpu_rmsnorm(s->xn + (size_t)t * H, s->x + (size_t)t * H, L->attn_norm, H, c->rms_eps);
        if ((rc = eng_cpu_qlinear(err, s->impl, s->pool, &L->q, s->xn, n, s->q)) ||
            (rc = eng_cpu_qlinear(err, s->impl, s->pool, &L->k, s->xn, n, s->k)) ||
            (rc = eng_cpu_qlinear(err, s->impl, s->pool, &L->v, s->xn, n, s->v)))
            return rc;
        const size_t lay = (size_t)li * s->max_ctx * kvd;
        for (int t = 0; t < n; t++) {
            eng_cpu_rope(s->q + (size_t)t * qd, c->heads, c->head_dim, s->t_pos[t], c->rope_theta);
            eng_cpu_rope(s->k + (size_t)t * kvd, c->kv_heads, c->head_dim, s->t_pos[t], c->rope_theta);
            cpu_slot *sl = &s->slots[s->t_slot[t]];
            memcpy(sl->k + lay + (size_t)s->t_pos[t] * kvd, s->k + (size_t)t * kvd, (size_t)kvd * sizeof(float));
            memcpy(sl->v + lay + (size_t)s->t_pos[t] * kvd, s->v + (size_t)t * kvd, (size_t)kvd * sizeof(float));
        }
        attn_job aj = {s, li, n};
        eng_cpu_pool_run(s->pool, attn_task, &aj);
        if ((rc = eng_cpu_qlinear(err, s->impl, s->pool, &L->o, s->att, n, s->o))) return rc;
        for (size_t i = 0; i < (size_t)n * H; i++) s->x[i] += s->o[i];
        for (int t = 0; t < n; t++)
            eng_cpu_rmsnorm(s->xn + (size_t)t * H, s->x + (size_t)t * H, L->ffn_norm, H, c->rms_eps);
        if ((rc = eng_cpu_qlinear(err, s->impl, s->pool, &L->gate, s->xn, n, s->g)) ||
            (rc = eng_cpu_qlinear(err, s->impl, s->pool, &L->up, s->xn, n, s->u)))
            return rc;
        for (size_t i = 0; i < (size_t)n * I; i++) s->g[i] = silu(s->g[i]) * s->u[i];
        if ((rc = eng_cpu_qlinear(err, s->impl, s->pool, &L->down, s->g, n, s->o))) return rc;
        for (size_t i = 0; i < (size_t)n * H; i++) s->x[i] += s->o[i];
    }
    return 0;
}

static bool cpu_slot_used(const void *st, int slot) { return ((const cpu_state *)st)->slots[slot].used; }

static int cpu_forward(char *err, void *state, const eng_batch *b) {
    cpu_state *s = state;
    const eng_config *c = &s->m->cfg;
    const int H = c->hidden, V = c->vocab;
    int rc;
    if ((rc = eng_batch_check(err, b, s->max_seqs, s->max_ctx, V, cpu_slot_used, s))) return rc;
    /* sub-batches of at most CPU_MAX_M tokens, in sequence order */
    int seq = 0, off = 0; /* next token: sequence seq, its token off */
    size_t ti = 0;        /* index into b->tokens */
    while (seq < b->n_seq) {
        int n = 0;
        while (n < CPU_MAX_M && seq < b->n_seq) {
            s->t_seq[n] = seq;
            s->t_slot[n] = b->slot[seq];
            s->t_pos[n] = b->pos[seq] + off;
            const uint16_t *e = s->m->embed + (size_t)b->tokens[ti] * H;
            for (int d = 0; d < H; d++) s->x[(size_t)n * H + d] = awq_f16_to_f32(e[d]);
            n++;
            ti++;
            if (++off == b->n_tokens[seq]) {
                seq++;
                off = 0;
            }
        }
        if ((rc = run_layers(err, s, n))) return rc;
        /* keep the hidden state of every sequence whose last token was in this sub-batch */
        for (int t = 0; t < n; t++) {
            int q = s->t_seq[t];
            if (s->t_pos[t] == b->pos[q] + b->n_tokens[q] - 1)
                memcpy(s->last + (size_t)q * H, s->x + (size_t)t * H, (size_t)H * sizeof(float));
        }
    }
    s->n_rows = 0;
    if (!b->logits && !b->argmax && !b->pick) return 0;
    for (int i = 0; i < b->n_seq; i++)
        eng_cpu_rmsnorm(s->lastn + (size_t)i * H, s->last + (size_t)i * H, s->m->norm, H, c->rms_eps);
    float *lg = b->logits && !b->pick ? b->logits : s->logits;
    if ((rc = eng_cpu_f16_matmul(err, s->impl, s->pool, s->m->lm_head, V, H, s->lastn, b->n_seq, lg))) return rc;
    /* picking: FULL rows are copied out raw, the others edited in place (row() reads them) and
     * reduced by the sampler's reference code */
    for (int i = 0; b->pick && i < b->n_seq; i++) {
        float *row = lg + (size_t)i * V;
        if (b->pick[i].mode == ENG_PICK_FULL) {
            memcpy(b->logits + (size_t)i * V, row, (size_t)V * sizeof *row);
            continue;
        }
        eng_samp_pick_edits(row, &b->pick[i]);
        if ((rc = eng_samp_pick(err, s->pick_sc, row, V, &b->pick[i], &b->pick_out[i]))) return rc;
    }
    if (b->pick) s->n_rows = b->n_seq;
    if (b->argmax)
        for (int i = 0; i < b->n_seq; i++) {
            const float *l = lg + (size_t)i * V;
            int best = 0;
            for (int v = 1; v < V; v++)
                if (l[v] > l[best]) best = v;
            b->argmax[i] = best;
        }
    return 0;
}

static int cpu_row(char *err, void *state, int i, float *out) {
    cpu_state *s = state;
    const int V = s->m->cfg.vocab;
    if (i < 0 || i >= s->n_rows)
        return awq_seterr(err, AWQ_EINVAL, "logits row %d: the last picking step left %d", i, s->n_rows);
    memcpy(out, s->logits + (size_t)i * V, (size_t)V * sizeof *out);
    return 0;
}

const eng_backend_ops eng_cpu_backend = {
    .name = "cpu",
    .create = cpu_create,
    .slot_alloc = cpu_slot_alloc,
    .slot_free = cpu_slot_free,
    .forward = cpu_forward,
    .row = cpu_row,
    .memory = cpu_memory,
    .destroy = cpu_destroy,
};
