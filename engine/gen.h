/* gen.h - the generation API the daemon (and awq-run) drives: sequences with a KV-cache slot,
 * prompt prefill in chunks, batched steps over many sequences (continuous batching), sampling,
 * prompt-cache reuse by rewinding to a common prefix, and the streaming text side (per sequence
 * a tokenizer stream decoder plus stop-string hold-back, giving "text ready to send" pieces).
 *
 * One step: every running sequence in the call contributes either its next prefill chunk (up to
 * ENG_GEN_CHUNK prompt tokens) or its last sampled token; the backend runs them as one batch;
 * each sequence whose prompt is now fully fed samples one token. A sequence's tokens and logits
 * do not depend on its batch-mates (on the CPU backend its logits are bitwise identical).
 *
 * Finish reasons: "stop" (EOS unless ignore_eos, a stop id, or a stop string - whose text is
 * never emitted), "length" (max_tokens generated), "context" (the next token would not fit the
 * context), "cancel" (eng_gen_seq_cancel, set by the daemon).
 *
 * Thread safety: an eng_gen and its sequences are driven by one thread (the engine thread).
 */
#ifndef ENG_GEN_H
#define ENG_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "awq_err.h"
#include "backend.h"
#include "model.h"
#include "sample.h"
#include "tok.h"

#define ENG_GEN_CHUNK 128 /* prompt tokens one sequence feeds per step */
int eng_gen_chunk(void);

typedef enum eng_gen_finish {
    ENG_GEN_RUNNING = 0,
    ENG_GEN_STOP,
    ENG_GEN_LENGTH,
    ENG_GEN_CONTEXT,
    ENG_GEN_CANCEL,
} eng_gen_finish;

/* "stop", "length", "context", "cancel"; NULL while running. */
const char *eng_gen_finish_name(eng_gen_finish f);

typedef struct eng_gen eng_gen;
typedef struct eng_gen_seq eng_gen_seq;

/* Creates the backend state for m (borrowed; must outlive the eng_gen). tok (borrowed, may be
 * NULL) enables text streaming and stop strings. NULL with err on failure. */
eng_gen *eng_gen_create(char *err, const eng_model *m, const eng_tok *tok, const eng_backend_ops *be,
                        const eng_backend_opts *o);
/* Frees every sequence still open, then the backend. NULL is fine. */
void eng_gen_free(eng_gen *g);
int eng_gen_max_ctx(const eng_gen *g);
const char *eng_gen_backend_name(const eng_gen *g);
/* Bytes held by the backend: weights beyond the mapping, KV cache. */
void eng_gen_memory(const eng_gen *g, size_t *weights, size_t *kv);

/* Claims a KV slot (AWQ_EBUSY when none) and a sampler for params p (validated; borrowed
 * arrays are copied). The sequence is empty until eng_gen_seq_prompt. */
AWQ_NODISCARD int eng_gen_seq_create(char *err, eng_gen *g, const eng_samp_params *p, eng_gen_seq **out)
    AWQ_NONNULL(2, 3, 4);
/* Releases the slot and its KV memory at once. NULL is fine. */
void eng_gen_seq_free(eng_gen_seq *s);
/* New sampling parameters for the next request on this sequence (history and KV kept). */
AWQ_NODISCARD int eng_gen_seq_set_params(char *err, eng_gen_seq *s, const eng_samp_params *p) AWQ_NONNULL(2, 3);

/* Starts a request with prompt ids (n >= 1). The longest common prefix with the tokens already
 * in the KV cache is kept (*reused, may be NULL, says how many; at least the last prompt token
 * is always fed again so its logits exist); the rest is prefilled by the next steps. Prompt
 * longer than the context: AWQ_ECONTEXT with both numbers. */
AWQ_NODISCARD int eng_gen_seq_prompt(char *err, eng_gen_seq *s, const int32_t *ids, size_t n, size_t *reused)
    AWQ_NONNULL(2, 3);
/* Forgets every token from position n on (n <= history length); the sequence must be prompted
 * again before stepping. */
void eng_gen_seq_rewind(eng_gen_seq *s, size_t n);
/* The token history (prompt + generated), for prompt-cache matching. */
size_t eng_gen_seq_history(const eng_gen_seq *s, const int32_t **ids);
size_t eng_gen_seq_n_prompt(const eng_gen_seq *s);
size_t eng_gen_seq_n_generated(const eng_gen_seq *s);
/* Tokens of the prompt still to prefill. */
size_t eng_gen_seq_pending(const eng_gen_seq *s);
void eng_gen_seq_cancel(eng_gen_seq *s);
eng_gen_finish eng_gen_seq_finish(const eng_gen_seq *s);

/* One batched step over seqs (n of them; finished or unprompted ones are skipped). */
AWQ_NODISCARD int eng_gen_step(char *err, eng_gen *g, eng_gen_seq *const *seqs, int n) AWQ_NONNULL(2, 3);

/* What the last step did for a sequence. text points into the sequence (valid until its next
 * step): UTF-8 released this step, held-back stop-string prefixes excluded, never the stop
 * string itself. */
typedef struct eng_gen_event {
    bool has_token;        /* a token was sampled */
    eng_samp_result tok;   /* the token, its logprob, top-n */
    const char *text;
    size_t text_len;
    eng_gen_finish finish; /* set on the step that finished the sequence */
} eng_gen_event;

const eng_gen_event *eng_gen_seq_event(const eng_gen_seq *s);
/* The raw logits (vocab) this sequence sampled from in the generator's latest step, or NULL
 * (it did not sample in that step, or its backend reduced the row: see eng_gen_keep_logits).
 * Borrowed from the generator: valid until its next eng_gen_step. */
const float *eng_gen_seq_logits(const eng_gen_seq *s);

/* On a backend that picks (eng_backend_ops.picks: CUDA) a step's sampling is reduced there by
 * default (backend.h, "picking": only a token or a few candidates cross to the host) and
 * eng_gen_seq_logits is NULL for rows reduced that way. keep = true: every sampled row comes back
 * whole (tests, logit dumps); keep = false: reduced on the backend, on the CPU backend too
 * (tests of the picking path without a GPU). */
void eng_gen_keep_logits(eng_gen *g, bool keep);

#endif
