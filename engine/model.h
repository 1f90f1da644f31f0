/* model.h - a loaded Llama/Mistral AWQ checkpoint: its config and its (mmapped) weights.
 *
 * eng_model_load maps every shard, validates everything (config bounds, every safetensors
 * header, dtypes and shapes against the config, spans, overlaps) and only then hands back a
 * model; nothing downstream re-checks. Weights are never copied: every pointer below points
 * into a read-only mapping that lives as long as the model.
 *
 * Thread safety: a loaded model is immutable and may be read from any number of threads.
 */
#ifndef ENG_MODEL_H
#define ENG_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "awq_err.h"
#include "plat.h"

/* Bounds checked on every config before anything is allocated (threat model row 12). */
#define ENG_MAX_HIDDEN 65536
#define ENG_MAX_LAYERS 512
#define ENG_MAX_HEADS 1024
#define ENG_MAX_VOCAB 1048576
#define ENG_MAX_CONTEXT 1048576
#define ENG_MAX_SHARDS 1024
#define ENG_MAX_DIMS 4
#define ENG_ST_HEADER_MAX (100u * 1024u * 1024u) /* safetensors' own cap */
#define ENG_MAX_EOS 8

typedef enum eng_dtype {
    ENG_DT_F16 = 0,
    ENG_DT_BF16,
    ENG_DT_F32,
    ENG_DT_I32,
    ENG_DT_I64,
    ENG_DT_I8,
    ENG_DT_U8,
    ENG_DT_BOOL,
    ENG_DT_F64,
    ENG_DT_I16,
    ENG_DT_COUNT
} eng_dtype;

size_t eng_dtype_size(eng_dtype t);
const char *eng_dtype_name(eng_dtype t); /* safetensors spelling: "F16", "I32", ... */

typedef struct eng_config {
    char arch[64];       /* architectures[0]: "MistralForCausalLM" or "LlamaForCausalLM" */
    char model_type[32]; /* "mistral" / "llama" */
    int hidden;          /* hidden_size */
    int intermediate;    /* intermediate_size */
    int layers;          /* num_hidden_layers */
    int heads;           /* num_attention_heads */
    int kv_heads;        /* num_key_value_heads (defaults to heads) */
    int head_dim;        /* head_dim (defaults to hidden / heads) */
    int vocab;           /* vocab_size */
    int max_pos;         /* max_position_embeddings */
    int sliding_window;  /* 0 when null/absent */
    float rope_theta;    /* default 10000 */
    float rms_eps;       /* rms_norm_eps */
    bool tie_embeddings; /* tie_word_embeddings */
    int bos_id;          /* -1 when absent */
    int eos_ids[ENG_MAX_EOS]; /* eos_token_id (int or list) */
    int n_eos;
    /* quantization_config (or quant_config.json) */
    int bits;       /* 4 */
    int group_size; /* 128 */
    bool zero_point;
    char quant_version[16]; /* "gemm" */
} eng_config;

/* One tensor of a shard, after validation. */
typedef struct eng_tensor {
    const char *name;  /* owned by the model */
    eng_dtype dtype;
    int ndim;
    int64_t shape[ENG_MAX_DIMS];
    const void *data;  /* into the shard's mapping */
    size_t nbytes;
    int shard;         /* index into eng_model.shards */
} eng_tensor;

/* One AutoAWQ GEMM linear layer computing y = x . W with W (in, out), 4-bit, groups along in.
 * Eight nibbles per int32 along out; nibble i of column c holds out column 8c + ORDER[i] with
 * ORDER = {0, 2, 4, 6, 1, 3, 5, 7}. w[k][n] = (q[k][n] - z[k/group][n]) * s[k/group][n]. */
typedef struct eng_qlinear {
    int in, out, group;
    const int32_t *qweight;  /* (in, out/8) */
    const int32_t *qzeros;   /* (in/group, out/8) */
    const uint16_t *scales;  /* fp16 (in/group, out) */
} eng_qlinear;

extern const int ENG_AWQ_ORDER[8]; /* {0, 2, 4, 6, 1, 3, 5, 7} */
extern const int ENG_AWQ_REV[8];   /* {0, 4, 1, 5, 2, 6, 3, 7}: out column 8c+j is nibble REV[j] */

typedef struct eng_layer {
    const uint16_t *attn_norm; /* fp16 (hidden): input_layernorm */
    const uint16_t *ffn_norm;  /* fp16 (hidden): post_attention_layernorm */
    eng_qlinear q, k, v, o;    /* q (hidden, heads*hd), k/v (hidden, kv_heads*hd), o (heads*hd, hidden) */
    eng_qlinear gate, up, down; /* gate/up (hidden, intermediate), down (intermediate, hidden) */
} eng_layer;

/* Sampling defaults from generation_config.json; has_* say which were present. */
typedef struct eng_gen_defaults {
    bool has_temperature, has_top_p, has_top_k, has_repetition_penalty, has_do_sample;
    float temperature, top_p, repetition_penalty;
    int top_k;
    bool do_sample;
    int max_new_tokens; /* 0 when absent */
} eng_gen_defaults;

typedef struct eng_model {
    eng_config cfg;
    eng_gen_defaults gen;
    char dir[PLAT_PATH_MAX];   /* canonical path of the model directory */
    int n_shards;
    plat_map *shards;          /* (n_shards) */
    char **shard_names;        /* (n_shards) file names, no directories */
    int n_tensors;
    eng_tensor *tensors;       /* (n_tensors) sorted by name */
    const uint16_t *embed;     /* fp16 (vocab, hidden) */
    const uint16_t *norm;      /* fp16 (hidden) */
    const uint16_t *lm_head;   /* fp16 (vocab, hidden); == embed when tied */
    eng_layer *layers;         /* (cfg.layers) */
    size_t weight_bytes;       /* sum of all tensor bytes */
    void *priv;                /* loader-private storage (names arena, ...) */
} eng_model;

/* Load and validate the checkpoint in dir (config.json or quant_config.json, the index or a
 * single model.safetensors, every shard). On success *out owns the mappings; free with
 * eng_model_free. On failure nothing is left allocated and err names the file, the tensor
 * and the reason. */
AWQ_NODISCARD int eng_model_load(char *err, const char *dir, eng_model **out) AWQ_NONNULL(2, 3);
void eng_model_free(eng_model *m);
/* The shards' pages out of this process's resident memory (plat_map_release): after a backend
 * copied the weights (the GPU's upload); the model stays readable. */
void eng_model_release_pages(const eng_model *m);

/* Look a tensor up by exact name (binary search); NULL when absent. */
const eng_tensor *eng_model_tensor(const eng_model *m, const char *name);

/* Parse and validate config.json text (plus optional quant_config.json text, may be NULL) into
 * cfg. Exposed for tests and the fuzzer. */
AWQ_NODISCARD int eng_config_parse(char *err, const char *json, size_t len, const char *quant_json,
                                   size_t quant_len, eng_config *cfg) AWQ_NONNULL(2, 6);

/* Dequantize row k (in-feature k) of a linear into out (out floats): the plain-loop reference
 * every fast path and every GPU kernel is tested against. */
void eng_qlinear_dequant_row(const eng_qlinear *l, int k, float *out);

#endif
