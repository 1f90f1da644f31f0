/* llm.h - open a model directory as one ready-to-generate object: the checkpoint
 * (eng_model_load), its tokenizer (tokenizer.json + tokenizer_config.json), the chat template
 * when there is one, and a backend with its generator (engine/gen.h).
 *
 * Thread safety: an eng_llm is driven by one thread (its generator's); the model, tokenizer and
 * template inside are immutable and may be read from any thread.
 */
#ifndef ENG_LLM_H
#define ENG_LLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "awq_err.h"
#include "gen.h"
#include "model.h"
#include "tmpl.h"
#include "tok.h"

#define ENG_LLM_DEFAULT_CTX 4096 /* context when none is asked: min(this, max_position_embeddings) */

typedef struct eng_llm_opts {
    const char *device; /* "cpu", "cuda", "auto" (CUDA when built in and it starts, else CPU); NULL = auto */
    int threads;        /* CPU threads; 0 = all cores */
    int max_ctx;        /* 0 = default */
    int max_seqs;       /* 0 = 1 */
    size_t kv_budget;   /* 0 = backend decides */
    int gpu;            /* CUDA device ordinal */
    bool no_cpu_fallback; /* device "auto": fail instead of using the CPU when CUDA cannot start */
    bool fp16_weights;  /* CUDA: fp16 weight copies for prompts (eng_backend_opts) */
} eng_llm_opts;

typedef struct eng_llm {
    eng_model *model;
    eng_tok *tok;
    eng_tmpl *tmpl;     /* NULL when tokenizer_config.json has no chat_template */
    eng_gen *gen;
    int max_ctx;
} eng_llm;

/* Opens dir; on success *out owns everything (free with eng_llm_free). Errors name the file and
 * the reason, e.g. a config vocab_size smaller than the tokenizer's. */
AWQ_NODISCARD int eng_llm_open(char *err, const char *dir, const eng_llm_opts *o, eng_llm **out) AWQ_NONNULL(2, 3, 4);
void eng_llm_free(eng_llm *l);

/* Creates l->gen for l->model and l->tok (both loaded, l->max_ctx set) on the backend o->device
 * asks for: "cuda", "cpu", or "auto" (CUDA when built in and it starts, else the CPU unless
 * o->no_cpu_fallback). eng_llm_open calls it; the daemon calls it for its staged load. */
AWQ_NODISCARD int eng_llm_open_backend(char *err, eng_llm *l, const eng_llm_opts *o) AWQ_NONNULL(2, 3);

/* config.json's vocab_size must cover every tokenizer id: AWQ_EFORMAT naming both otherwise. */
AWQ_NODISCARD int eng_llm_check_vocab(char *err, int config_vocab, int tokenizer_vocab);

/* Renders msgs with the chat template (add_generation_prompt) and encodes the text without
 * adding BOS (the template writes it). *ids_p is malloc'ed; caller frees. AWQ_ENOTFOUND when
 * the model has no template. */
AWQ_NODISCARD int eng_llm_chat_ids(char *err, const eng_llm *l, const eng_msg *msgs, size_t n_msgs, int32_t **ids_p,
                                   size_t *n_p) AWQ_NONNULL(2, 3, 5, 6);

#endif
