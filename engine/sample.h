/* sample.h - the token sampler: greedy, temperature, top-k, top-p, min-p, typical-p,
 * repetition / presence / frequency penalties over a window of recent tokens, logit bias, a
 * seeded PRNG (xoshiro256**, seeded through splitmix64: same seed, same choices), and top-n
 * logprobs. The generation-level settings (max tokens, stop ids and strings, ignore EOS) live in
 * the same parameter block because callers fill them together; engine/gen.c applies them.
 *
 * Order of operations on a step's logits (as Hugging Face generate): logit bias, penalties,
 * then greedy argmax when temperature == 0; otherwise temperature, top-k, top-p, min-p,
 * typical-p (each filter renormalises over the survivors), then one draw.
 *
 * Logprobs are those of the RAW model logits (log-softmax before bias, penalties and
 * temperature), the way OpenAI-style APIs report them: they describe the model, not the sampler.
 *
 * Thread safety: a sampler belongs to one sequence and one thread at a time.
 */
#ifndef ENG_SAMP_H
#define ENG_SAMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "awq_err.h"
#include "backend.h"
#include "model.h"

#define ENG_SAMP_MAX_LOGPROBS 20 /* top-n logprobs per step */
#define ENG_SAMP_MAX_STOP 16     /* stop strings per request */
#define ENG_SAMP_STOP_LEN 256    /* bytes per stop string */
#define ENG_SAMP_MAX_STOP_IDS 64
#define ENG_SAMP_MAX_BIAS 1024   /* logit-bias entries */
int eng_samp_max_logprobs(void);
int eng_samp_max_stop(void);

typedef struct eng_samp_bias {
    int32_t id;
    float delta; /* added to the logit; -INFINITY bans the token */
} eng_samp_bias;

typedef struct eng_samp_params {
    float temperature;        /* >= 0; 0 = greedy (ties go to the lowest id) */
    int top_k;                /* >= 0; 0 = off */
    float top_p;              /* (0, 1]; 1 = off */
    float min_p;              /* [0, 1]; 0 = off: drop tokens below min_p * p(best) */
    float typical_p;          /* (0, 1]; 1 = off */
    float repetition_penalty; /* > 0; 1 = off (HF: positive logits divided, negative multiplied) */
    float presence_penalty;   /* subtracted once from every token present in the window */
    float frequency_penalty;  /* subtracted once per occurrence in the window */
    int penalty_last_n;       /* window of the most recent tokens (prompt included); -1 = all */
    uint64_t seed;
    bool has_seed;            /* false: seeded from the clock */
    const eng_samp_bias *logit_bias; /* (n_logit_bias) borrowed; copied by eng_samp_create */
    int n_logit_bias;
    /* generation level (engine/gen.c) */
    int max_tokens;           /* > 0 */
    bool ignore_eos;
    const int32_t *stop_ids;  /* (n_stop_ids) borrowed; copied by eng_gen_seq_create */
    int n_stop_ids;
    const char *const *stop;  /* (n_stop) UTF-8 strings, borrowed; copied by eng_gen_seq_create */
    int n_stop;
    int logprobs;             /* top-n logprobs to report, 0..ENG_SAMP_MAX_LOGPROBS */
} eng_samp_params;

/* Neutral defaults (greedy off: temperature 1, no filters, no penalties, max_tokens 256,
 * penalty window 64), then the model's generation_config.json values where present
 * (do_sample false means greedy). gd may be NULL. */
void eng_samp_params_default(eng_samp_params *p, const eng_gen_defaults *gd) AWQ_NONNULL(1);
/* AWQ_EINVAL with a message naming the field and the allowed range. */
AWQ_NODISCARD int eng_samp_params_check(char *err, const eng_samp_params *p, int vocab) AWQ_NONNULL(2);

typedef struct eng_samp eng_samp;

/* The working memory of one eng_samp_sample call: three vocab-sized arrays, ~24 bytes per
 * token of the vocabulary. Whoever samples keeps one and lends it to every sampler it drives,
 * one call at a time (a generator owns one for all of its sequences: with a 120k-token
 * vocabulary that is 2.9 MB once instead of per running sequence). Not thread-safe: one per
 * sampling thread. */
typedef struct eng_samp_scratch eng_samp_scratch;
eng_samp_scratch *eng_samp_scratch_create(char *err, int vocab);
void eng_samp_scratch_free(eng_samp_scratch *sc);

/* Validates p and builds a sampler for a vocabulary of vocab logits; NULL with err on failure. */
eng_samp *eng_samp_create(char *err, const eng_samp_params *p, int vocab);
void eng_samp_free(eng_samp *s);

typedef struct eng_samp_logprob {
    int32_t id;
    float logprob;
} eng_samp_logprob;

typedef struct eng_samp_result {
    int32_t id;      /* the chosen token */
    float logprob;   /* its raw-logit logprob (params.logprobs > 0; else 0) */
    int n_top;       /* = params.logprobs */
    eng_samp_logprob top[ENG_SAMP_MAX_LOGPROBS]; /* most likely first (raw logits) */
} eng_samp_result;

/* Choose the next token from logits (vocab, borrowed, not modified) given the token history
 * hist (n_hist, prompt and generated, for penalties), working in sc (made for at least s's
 * vocabulary). AWQ_EINVAL when every token is banned or sc is too small. */
AWQ_NODISCARD int eng_samp_sample(char *err, eng_samp *s, eng_samp_scratch *sc, const float *logits,
                                  const int32_t *hist, size_t n_hist, eng_samp_result *out) AWQ_NONNULL(2, 3, 4, 7);

/* ---- picking on the backend (engine/backend.h): the same choices, without the whole row ----
 *
 * Per token: eng_samp_plan says what the backend should reduce the row to, the backend runs it
 * (eng_samp_pick is the reference, run by the CPU backend), eng_samp_finish chooses from what came
 * back. FULL rows go to eng_samp_sample as before; a TOP answer the backend could not reduce
 * sets *need_row, and the host reads the edited row and calls eng_samp_sample_edited. Every path draws one uniform per sampled token from the sampler's
 * PRNG, so a seeded request gives the same ids on either backend (up to float rounding of the
 * softmax sums at a draw's boundary). */

/* Edits a plan may need: logit-bias entries plus the penalty window (history up to
 * max_hist tokens). Callers size the edits array of eng_samp_plan with it. */
int eng_samp_edit_cap(const eng_samp *s, size_t max_hist) AWQ_NONNULL(1);

/* Fills req (and edits, cap entries, which req then borrows) for the next token after hist:
 * ARGMAX when greedy, TOP for top-k (its candidates; top-p, min-p and typical-p then run on the
 * host over them), NUCLEUS for top-p / min-p without top-k, DRAW for temperature alone; FULL
 * when the raw row is needed: logprobs, typical-p without top-k, top-k > ENG_PICK_MAX, or more
 * edits than cap. DRAW and NUCLEUS take the token's uniform draw now. sc as in eng_samp_sample. */
void eng_samp_plan(eng_samp *s, eng_samp_scratch *sc, const int32_t *hist, size_t n_hist, eng_pick *req,
                   eng_pick_edit *edits, int cap) AWQ_NONNULL(1, 2, 5);

/* Applies req's edits to row in place (the backend's first step). */
void eng_samp_pick_edits(float *row, const eng_pick *req) AWQ_NONNULL(1, 2);
/* The reference reduction of an edited row (vocab V) for a non-FULL req; out->ids/l must hold
 * req->top entries for TOP. AWQ_EINVAL when sc is smaller than V or req is malformed. */
AWQ_NODISCARD int eng_samp_pick(char *err, eng_samp_scratch *sc, const float *row, int V, const eng_pick *req,
                                eng_pick_out *out) AWQ_NONNULL(2, 3, 5, 6);

/* Chooses the token from the backend's answer po to the plan req. *need_row: the answer could
 * not settle it (a TOP answer the backend could not reduce, or one shorter than the top-k;
 * nothing drawn yet): read the edited row and call eng_samp_sample_edited.
 * AWQ_EINVAL when every token is banned. */
AWQ_NODISCARD int eng_samp_finish(char *err, eng_samp *s, eng_samp_scratch *sc, const eng_pick *req,
                                  const eng_pick_out *po, eng_samp_result *out, bool *need_row)
    AWQ_NONNULL(2, 3, 4, 5, 6, 7);
/* eng_samp_sample over a row whose bias and penalties are already applied (no logprobs). */
AWQ_NODISCARD int eng_samp_sample_edited(char *err, eng_samp *s, eng_samp_scratch *sc, const float *w,
                                         eng_samp_result *out) AWQ_NONNULL(2, 3, 4, 5);

#endif
