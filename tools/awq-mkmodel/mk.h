/* mk.h - awq-mkmodel's parts: the options every part reads, the weight/shard writer
 * (weights.c) and the JSON side files (files.c). */
#ifndef MK_H
#define MK_H

#include <stdint.h>

#include "awq_err.h"
#include "awq_util.h"
#include "model.h"

typedef struct mk_opts {
    eng_config cfg;            /* every dimension; arch, tie, group; bos 1, eos 2 */
    bool head_dim_given;       /* write "head_dim" only when asked for (Mistral v0.1 omits it) */
    int shards;                /* 1..layers; 1 writes model.safetensors without an index */
    uint64_t seed;
    const char *out_dir;
    const char *tokenizer;     /* tokenizer.json to copy */
    const char *template_text; /* chat template (borrowed: built-in or read from a file) */
} mk_opts;

/* ---- weights.c ---- */
/* Write every shard (and model.safetensors.index.json when shards > 1) into o->out_dir. The
 * bytes depend only on the config and the seed: each tensor has its own generator seeded from
 * (seed, tensor name), so the shard count does not change any weight. *total gets the sum of
 * tensor bytes. */
AWQ_NODISCARD int mk_write_weights(char *err, const mk_opts *o, uint64_t *total);

/* ---- files.c ---- */
/* config.json text for o (quantization_config included) into b. */
AWQ_NODISCARD int mk_config_json(const mk_opts *o, awq_buf *b);
/* The number of tokens of a tokenizer.json (model.vocab entries and added token ids). */
AWQ_NODISCARD int mk_tokenizer_vocab(char *err, const char *text, size_t len, int *n);
/* config.json, generation_config.json, tokenizer.json (copied), tokenizer_config.json,
 * special_tokens_map.json. tok is the tokenizer.json text (borrowed). */
AWQ_NODISCARD int mk_write_files(char *err, const mk_opts *o, const char *tok, size_t tok_len);
/* Write data to dir/name (whole file, not atomic: the directory is new output). */
AWQ_NODISCARD int mk_write(char *err, const char *dir, const char *name, const void *data, size_t len);

#endif
