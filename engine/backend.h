/* backend.h - the table of functions a compute backend (CPU, CUDA) implements. The generation
 * API (engine/gen.h) drives a backend; the CPU backend is the reference the CUDA one is tested
 * against, and both have exactly this signature.
 *
 * Sequences live in "slots": a slot owns the KV cache of one sequence (for CUDA, a list of
 * paged blocks). The caller tells the backend at which position each fed token sits, so
 * rewinding a sequence to a prefix (prompt-cache reuse) is simply feeding from an earlier
 * position: entries past it are overwritten.
 *
 * Thread safety: one backend instance is driven by one thread at a time.
 */
#ifndef ENG_BACKEND_H
#define ENG_BACKEND_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "awq_err.h"
#include "model.h"

typedef struct eng_backend_opts {
    int threads;         /* CPU worker threads; 0 = all cores */
    int max_ctx;         /* context length of one sequence (<= cfg.max_pos) */
    int max_seqs;        /* slots to provision */
    size_t kv_budget;    /* bytes for the KV cache of all slots; 0 = backend decides */
    int device;          /* CUDA device ordinal */
    bool fp16_weights;   /* CUDA: also keep an fp16 copy of every AWQ linear for prompts and large
                          * batches (no dequant pass per step; ~3.8x the 4-bit linears' memory) */
} eng_backend_opts;

/* Sampling reduced on the backend ("picking"). A sampled row need not cross to the host whole
 * (480 KB at a 120k vocabulary, where the GPU's step is ~2.5 ms): the backend applies the row's
 * sparse edits (logit bias and penalties, which touch few tokens), then hands back only what
 * the sampler needs. engine/sample.c decides the mode per token (eng_samp_plan), holds the
 * reference implementation (eng_samp_pick, which the CPU backend runs and the CUDA kernels are
 * tested against) and finishes the choice on the host (eng_samp_finish). */
#define ENG_PICK_MAX 1024 /* candidates a TOP row may ask for */

typedef enum eng_pick_mode {
    ENG_PICK_FULL = 0, /* the raw logits row into eng_batch.logits (no edits applied) */
    ENG_PICK_ARGMAX,   /* the largest edited logit, lowest id on ties */
    ENG_PICK_TOP,      /* the `top` best of l = w / T (l desc, then id), with lmax, z and n_cut */
    ENG_PICK_DRAW,     /* inverse CDF of softmax(l) in vocabulary order at u */
    ENG_PICK_NUCLEUS,  /* top-p, then min-p, over softmax(l); the inverse CDF in the sorted
                        * order (l desc, then id) at u: the host sampler's choice without a
                        * top-k, whatever the nucleus's size */
} eng_pick_mode;

/* One edited token of a row, ids distinct within the row: w = logit + delta; then when
 * count > 0, the repetition penalty (w > 0 ? w / rep : w * rep) and
 * w -= freq * count + pres (each operation rounded to float, no fused multiply-add). */
typedef struct eng_pick_edit {
    int32_t id;
    float delta;
    int32_t count;
} eng_pick_edit;

typedef struct eng_pick {
    int mode;            /* eng_pick_mode */
    float temperature;   /* TOP, DRAW: > 0 (ARGMAX ignores it) */
    int top;             /* TOP: 1..ENG_PICK_MAX */
    double u;            /* DRAW, NUCLEUS: uniform in [0, 1) */
    float top_p, min_p;  /* NUCLEUS: (0, 1] and [0, 1] */
    float rep, freq, pres;
    const eng_pick_edit *edit; /* (n_edit) borrowed, ids distinct (a repeated id's result is
                                * unspecified); FULL rows carry none */
    int n_edit;
} eng_pick;

/* Tokens whose l lies more than ENG_PICK_CUT below lmax (probability < e^-40 relative to the
 * best) are dropped by TOP and DRAW: no float-visible mass, and the sorts stay short. */
#define ENG_PICK_CUT 40.0f

typedef struct eng_pick_out {
    int32_t id;    /* ARGMAX, DRAW, NUCLEUS: the token, -1 when every logit is -inf or NaN */
    int n;         /* TOP: candidates written, min(top, n_cut); TOP, ARGMAX: -1 when the backend could
                    * not reduce the row (the host then reads it with eng_backend_ops.row) */
    int n_cut;     /* TOP, DRAW: tokens with l >= lmax - ENG_PICK_CUT (0: every logit -inf or NaN);
                    * a NUCLEUS answer carries the id alone */
    float lmax;    /* TOP, DRAW: the largest l */
    double z;      /* TOP, DRAW: the sum of expf(l - lmax) over those tokens */
    int32_t *ids;  /* TOP: (top) the caller's arrays, best first */
    float *l;
} eng_pick_out;

/* One batched step: sequence i feeds n_tokens[i] tokens starting at position pos[i] (a prefill
 * chunk or a single decode token). Outputs are for the last fed token of each sequence. */
typedef struct eng_batch {
    int n_seq;
    const int *slot;         /* (n_seq) */
    const int *pos;          /* (n_seq) position of the first fed token */
    const int *n_tokens;     /* (n_seq) >= 1 */
    const int32_t *tokens;   /* (sum n_tokens) concatenated in sequence order */
    float *logits;           /* (n_seq, vocab) out, fp32; NULL when only argmax is wanted */
    int32_t *argmax;         /* (n_seq) out; NULL when not wanted */
    /* (n_seq) or NULL: when set, row i is reduced as pick[i] says into pick_out[i] (FULL rows go
     * to logits, which must then be set; other rows of logits are not written) */
    const eng_pick *pick;
    eng_pick_out *pick_out;
} eng_batch;

/* The checks every backend's forward makes before it touches anything (shared so the two
 * backends refuse the same batches with the same words): 1..max_seqs entries, each on an
 * allocated slot (used(st, slot)) that no other entry uses, >= 1 token at a position >= 0,
 * positions inside max_ctx (AWQ_ECONTEXT), token ids inside the vocabulary (AWQ_ERANGE). */
static inline int eng_batch_check(char *err, const eng_batch *b, int max_seqs, int max_ctx, int vocab,
                                  bool (*used)(const void *st, int slot), const void *st) {
    if (b->n_seq <= 0 || b->n_seq > max_seqs)
        return awq_seterr(err, AWQ_EINVAL, "batch of %d sequences; this backend holds 1..%d", b->n_seq, max_seqs);
    size_t total = 0;
    for (int i = 0; i < b->n_seq; i++) {
        const int sl = b->slot[i];
        if (sl < 0 || sl >= max_seqs || !used(st, sl))
            return awq_seterr(err, AWQ_EINVAL, "batch entry %d: slot %d is not allocated", i, sl);
        for (int j = 0; j < i; j++)
            if (b->slot[j] == sl) return awq_seterr(err, AWQ_EINVAL, "batch entries %d and %d share slot %d", j, i, sl);
        if (b->n_tokens[i] < 1 || b->pos[i] < 0)
            return awq_seterr(err, AWQ_EINVAL, "batch entry %d: %d tokens at position %d", i, b->n_tokens[i], b->pos[i]);
        if ((long long)b->pos[i] + b->n_tokens[i] > max_ctx)
            return awq_seterr(err, AWQ_ECONTEXT, "batch entry %d: positions %d..%d exceed the context of %d tokens", i,
                              b->pos[i], b->pos[i] + b->n_tokens[i] - 1, max_ctx);
        total += (size_t)b->n_tokens[i];
    }
    for (size_t i = 0; i < total; i++)
        if (b->tokens[i] < 0 || b->tokens[i] >= vocab)
            return awq_seterr(err, AWQ_ERANGE, "token %zu of the batch: id %d outside the vocabulary of %d", i,
                              (int)b->tokens[i], vocab);
    if (b->pick && !b->pick_out) return awq_seterr(err, AWQ_EINVAL, "batch with pick requests but no pick_out");
    for (int i = 0; b->pick && i < b->n_seq; i++) {
        const eng_pick *p = &b->pick[i];
        if (p->mode < ENG_PICK_FULL || p->mode > ENG_PICK_NUCLEUS)
            return awq_seterr(err, AWQ_EINVAL, "batch entry %d: pick mode %d", i, p->mode);
        if (p->mode == ENG_PICK_FULL && (!b->logits || p->n_edit))
            return awq_seterr(err, AWQ_EINVAL, "batch entry %d: a FULL pick needs logits and carries no edits", i);
        if ((p->mode == ENG_PICK_TOP || p->mode == ENG_PICK_DRAW || p->mode == ENG_PICK_NUCLEUS) &&
            !(p->temperature > 0 && p->temperature < INFINITY))
            return awq_seterr(err, AWQ_EINVAL, "batch entry %d: pick temperature %g", i, (double)p->temperature);
        if (p->mode == ENG_PICK_TOP && (p->top < 1 || p->top > ENG_PICK_MAX || !b->pick_out[i].ids || !b->pick_out[i].l))
            return awq_seterr(err, AWQ_EINVAL, "batch entry %d: pick top %d (1..%d) with its output arrays", i, p->top,
                              ENG_PICK_MAX);
        if ((p->mode == ENG_PICK_DRAW || p->mode == ENG_PICK_NUCLEUS) && !(p->u >= 0 && p->u < 1))
            return awq_seterr(err, AWQ_EINVAL, "batch entry %d: pick draw at %g, outside [0, 1)", i, p->u);
        if (p->mode == ENG_PICK_NUCLEUS && (!(p->top_p > 0 && p->top_p <= 1) || !(p->min_p >= 0 && p->min_p <= 1)))
            return awq_seterr(err, AWQ_EINVAL, "batch entry %d: pick top_p %g, min_p %g", i, (double)p->top_p,
                              (double)p->min_p);
        if (p->n_edit < 0 || (p->n_edit && !p->edit))
            return awq_seterr(err, AWQ_EINVAL, "batch entry %d: %d pick edits", i, p->n_edit);
        for (int e = 0; e < p->n_edit; e++)
            if (p->edit[e].id < 0 || p->edit[e].id >= vocab)
                return awq_seterr(err, AWQ_ERANGE, "batch entry %d: edit of token %d outside the vocabulary of %d", i,
                                  (int)p->edit[e].id, vocab);
    }
    return 0;
}

typedef struct eng_backend_ops {
    const char *name; /* "cpu", "cuda" */
    /* Prepare weights (repack/upload) and the KV cache; *state owned by the backend. */
    int (*create)(char *err, const eng_model *m, const eng_backend_opts *o, void **state);
    /* Claim a free slot (AWQ_EBUSY when none). */
    int (*slot_alloc)(char *err, void *state, int *slot);
    /* Release a slot and its KV memory at once (finish, cancel, disconnect). */
    void (*slot_free)(void *state, int slot);
    /* Run one batched step; see eng_batch. */
    int (*forward)(char *err, void *state, const eng_batch *b);
    /* Row i of the last forward's logits, with that row's pick edits applied, into out (vocab):
     * the host's way back when a TOP row's candidates were not enough (a wide top-p nucleus). */
    int (*row)(char *err, void *state, int i, float *out);
    /* Bytes held: weights (beyond the mapping) and KV cache. */
    void (*memory)(void *state, size_t *weights, size_t *kv);
    void (*destroy)(void *state);
    /* The generator reduces sampled rows here by default (CUDA: the row would cross PCIe and
     * wait for the host; the CPU backend's rows are already in host memory, where the
     * generator's own sampler, parallel over sequences, is the faster of the two). */
    bool picks;
} eng_backend_ops;

extern const eng_backend_ops eng_cpu_backend;
#ifdef AWQ_HAVE_CUDA
extern const eng_backend_ops eng_cuda_backend; /* cuda/ provides it */
#endif

#endif
