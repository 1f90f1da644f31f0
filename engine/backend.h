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
    /* Bytes held: weights (beyond the mapping) and KV cache. */
    void (*memory)(void *state, size_t *weights, size_t *kv);
    void (*destroy)(void *state);
} eng_backend_ops;

extern const eng_backend_ops eng_cpu_backend;
#ifdef AWQ_HAVE_CUDA
extern const eng_backend_ops eng_cuda_backend; /* cuda/ provides it */
#endif

#endif
