/* config.c - config.json, quant_config.json and generation_config.json.
 *
 * Every field is type- and range-checked before anything is sized from it (threat model row
 * 12); defaults are those of transformers' LlamaConfig / MistralConfig, so a file that omits a
 * field means what it means to transformers. Messages name the file and the field. */
#include "config.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define CFG "config.json"

/* ------------------------------------------------------------------ linears ---- */

static const char *const lin_names[ENG_LIN_COUNT] = {
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
    "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj",
};

const char *eng_linear_name(int kind) {
    return kind >= 0 && kind < ENG_LIN_COUNT ? lin_names[kind] : "?";
}

void eng_linear_dims(const eng_config *c, int kind, int *in, int *out) {
    int qd = c->heads * c->head_dim, kvd = c->kv_heads * c->head_dim;
    switch (kind) {
    case ENG_LIN_Q: *in = c->hidden; *out = qd; break;
    case ENG_LIN_K:
    case ENG_LIN_V: *in = c->hidden; *out = kvd; break;
    case ENG_LIN_O: *in = qd; *out = c->hidden; break;
    case ENG_LIN_GATE:
    case ENG_LIN_UP: *in = c->hidden; *out = c->intermediate; break;
    default: *in = c->intermediate; *out = c->hidden; break;
    }
}

/* ------------------------------------------------------------------ field helpers ---- */

static bool is_absent(const cJSON *v) { return !v || cJSON_IsNull(v); }

/* An integer field in [lo, hi]; absent/null gives def when !required. */
static int get_int(char *err, const char *file, const cJSON *o, const char *key, bool required, int def, long lo,
                   long hi, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (is_absent(v)) {
        if (required) return awq_seterr(err, AWQ_EFORMAT, "%s: %s missing", file, key);
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || floor(v->valuedouble) != v->valuedouble)
        return awq_seterr(err, AWQ_EFORMAT, "%s: %s: not an integer", file, key);
    double d = v->valuedouble;
    if (d < (double)lo || d > (double)hi)
        return awq_seterr(err, AWQ_ERANGE, "%s: %s: %.0f outside [%ld, %ld]", file, key, d, lo, hi);
    *out = (int)d;
    return 0;
}

/* A finite number field in (lo, hi]; absent/null gives def. */
static int get_float(char *err, const char *file, const cJSON *o, const char *key, double def, double lo,
                     double hi, float *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (is_absent(v)) {
        *out = (float)def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return awq_seterr(err, AWQ_EFORMAT, "%s: %s: not a number", file, key);
    if (!(v->valuedouble > lo) || v->valuedouble > hi)
        return awq_seterr(err, AWQ_ERANGE, "%s: %s: %g outside (%g, %g]", file, key, v->valuedouble, lo, hi);
    *out = (float)v->valuedouble;
    return 0;
}

static int get_bool(char *err, const char *file, const cJSON *o, const char *key, bool def, bool *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (is_absent(v)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(v)) return awq_seterr(err, AWQ_EFORMAT, "%s: %s: not true or false", file, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

/* Parse text as a JSON object; the message gives the byte where parsing stopped. */
static int parse_object(char *err, const char *file, const char *json, size_t len, cJSON **out) {
    const char *end = NULL;
    *out = NULL;
    cJSON *root = json ? cJSON_ParseWithLengthOpts(json, len, &end, 0) : NULL;
    if (!root) {
        size_t pos = json && end && end >= json && end <= json + len ? (size_t)(end - json) : 0;
        return awq_seterr(err, AWQ_EFORMAT, "%s: invalid JSON near byte %zu", file, pos);
    }
    for (const char *p = end; p && p < json + len; p++) {
        if (!isspace((unsigned char)*p)) {
            cJSON_Delete(root);
            return awq_seterr(err, AWQ_EFORMAT, "%s: invalid JSON: trailing bytes at byte %zu", file,
                              (size_t)(p - json));
        }
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return awq_seterr(err, AWQ_EFORMAT, "%s: not a JSON object", file);
    }
    *out = root;
    return 0;
}

/* Token ids: int, list of ints, or null. Each must be a valid id of the vocabulary. */
static int get_ids(char *err, const char *key, const cJSON *o, int vocab, int *ids, int max, int *n) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *n = 0;
    if (is_absent(v)) return 0;
    const cJSON *one = v, *list = NULL;
    if (cJSON_IsArray(v)) {
        list = v;
        one = v->child;
    }
    for (; one; one = list ? one->next : NULL) {
        if (!cJSON_IsNumber(one) || floor(one->valuedouble) != one->valuedouble)
            return awq_seterr(err, AWQ_EFORMAT, CFG ": %s: not an integer, a list of integers or null", key);
        if (one->valuedouble < 0 || one->valuedouble >= vocab)
            return awq_seterr(err, AWQ_ERANGE, CFG ": %s: %.0f outside the vocabulary [0, %d)", key,
                              one->valuedouble, vocab);
        if (*n >= max) return awq_seterr(err, AWQ_ERANGE, CFG ": %s: more than %d ids", key, max);
        ids[(*n)++] = (int)one->valuedouble;
        if (!list) break;
    }
    return 0;
}

/* Copy a string field, lower-cased, into out (cap bytes); absent gives "". */
static int get_lower(char *err, const char *file, const cJSON *o, const char *key, char *out, size_t cap) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    out[0] = 0;
    if (is_absent(v)) return 0;
    if (!cJSON_IsString(v)) return awq_seterr(err, AWQ_EFORMAT, "%s: %s: not a string", file, key);
    size_t n = strlen(v->valuestring);
    if (n >= cap) return awq_seterr(err, AWQ_EUNSUPPORTED, "%s: %s: unsupported value '%.40s'", file, key, v->valuestring);
    for (size_t i = 0; i <= n; i++) out[i] = (char)tolower((unsigned char)v->valuestring[i]);
    return 0;
}

/* ------------------------------------------------------------------ quantization ---- */

/* The AWQ fields of q (quantization_config, or the whole quant_config.json). AutoAWQ's older
 * exports spell them w_bit / q_group_size and may omit quant_method. */
static int parse_quant(char *err, const char *file, const cJSON *q, bool method_required, eng_config *c) {
    char method[32], ver[16];
    int rc = get_lower(err, file, q, "quant_method", method, sizeof method);
    if (rc) return rc;
    if (!method[0] && method_required)
        return awq_seterr(err, AWQ_EUNSUPPORTED, "%s: unsupported quantization: quant_method missing", file);
    if (method[0] && strcmp(method, "awq"))
        return awq_seterr(err, AWQ_EUNSUPPORTED, "%s: unsupported quantization '%s' (only awq)", file, method);
    const char *bk = cJSON_GetObjectItemCaseSensitive(q, "bits") ? "bits" : "w_bit";
    const char *gk = cJSON_GetObjectItemCaseSensitive(q, "group_size") ? "group_size" : "q_group_size";
    if ((rc = get_int(err, file, q, bk, true, 0, -1000000, 1000000, &c->bits))) return rc;
    if (c->bits != 4)
        return awq_seterr(err, AWQ_EUNSUPPORTED, "%s: unsupported quantization: %d bits (only 4)", file, c->bits);
    if ((rc = get_int(err, file, q, gk, true, 0, -1000000, 1000000, &c->group_size))) return rc;
    if (c->group_size < 1 || c->group_size > ENG_MAX_GROUP)
        return awq_seterr(err, AWQ_EUNSUPPORTED, "%s: unsupported quantization: group size %d", file, c->group_size);
    if ((rc = get_bool(err, file, q, "zero_point", true, &c->zero_point))) return rc;
    if (!c->zero_point)
        return awq_seterr(err, AWQ_EUNSUPPORTED, "%s: unsupported quantization: zero_point false", file);
    if ((rc = get_lower(err, file, q, "version", ver, sizeof ver))) return rc;
    if (!ver[0]) strcpy(ver, "gemm"); /* AutoAWQ's default */
    if (strcmp(ver, "gemm"))
        return awq_seterr(err, AWQ_EUNSUPPORTED, "%s: unsupported quantization version '%s' (only gemm)", file, ver);
    memcpy(c->quant_version, ver, sizeof c->quant_version);
    return 0;
}

/* ------------------------------------------------------------------ config.json ---- */

static int parse_arch(char *err, const cJSON *root, eng_config *c) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    if (!cJSON_IsArray(a) || !cJSON_IsString(a->child))
        return awq_seterr(err, AWQ_EFORMAT, CFG ": architectures missing or not a list of strings");
    const char *arch = a->child->valuestring;
    const char *mt;
    if (!strcmp(arch, "MistralForCausalLM")) mt = "mistral";
    else if (!strcmp(arch, "LlamaForCausalLM")) mt = "llama";
    else
        return awq_seterr(err, AWQ_EUNSUPPORTED, CFG ": unsupported architecture '%.64s' (MistralForCausalLM or LlamaForCausalLM)",
                          arch);
    snprintf(c->arch, sizeof c->arch, "%s", arch);
    int rc = get_lower(err, CFG, root, "model_type", c->model_type, sizeof c->model_type);
    if (rc) return rc;
    if (!c->model_type[0]) snprintf(c->model_type, sizeof c->model_type, "%s", mt);
    if (strcmp(c->model_type, "mistral") && strcmp(c->model_type, "llama"))
        return awq_seterr(err, AWQ_EUNSUPPORTED, CFG ": unsupported model_type '%s'", c->model_type);
    return 0;
}

/* What the rest of the engine cannot do: refuse it here rather than compute something else. */
static int check_unsupported(char *err, const cJSON *root) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (!is_absent(v)) return awq_seterr(err, AWQ_EUNSUPPORTED, CFG ": rope_scaling is not supported (must be null)");
    v = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (!is_absent(v) && (!cJSON_IsString(v) || strcmp(v->valuestring, "silu")))
        return awq_seterr(err, AWQ_EUNSUPPORTED, CFG ": hidden_act must be \"silu\"");
    for (int i = 0; i < 2; i++) {
        const char *k = i ? "mlp_bias" : "attention_bias";
        v = cJSON_GetObjectItemCaseSensitive(root, k);
        if (cJSON_IsTrue(v)) return awq_seterr(err, AWQ_EUNSUPPORTED, CFG ": %s true is not supported", k);
    }
    return 0;
}

static int parse_dims(char *err, const cJSON *root, eng_config *c) {
    int rc;
    bool mistral = !strcmp(c->arch, "MistralForCausalLM");
    if ((rc = get_int(err, CFG, root, "hidden_size", true, 0, 1, ENG_MAX_HIDDEN, &c->hidden)) ||
        (rc = get_int(err, CFG, root, "intermediate_size", true, 0, 1, ENG_MAX_INTERMEDIATE, &c->intermediate)) ||
        (rc = get_int(err, CFG, root, "num_hidden_layers", true, 0, 1, ENG_MAX_LAYERS, &c->layers)) ||
        (rc = get_int(err, CFG, root, "num_attention_heads", true, 0, 1, ENG_MAX_HEADS, &c->heads)) ||
        (rc = get_int(err, CFG, root, "num_key_value_heads", false, c->heads, 1, ENG_MAX_HEADS, &c->kv_heads)) ||
        (rc = get_int(err, CFG, root, "head_dim", false, 0, 1, ENG_MAX_HIDDEN, &c->head_dim)) ||
        (rc = get_int(err, CFG, root, "vocab_size", true, 0, 1, ENG_MAX_VOCAB, &c->vocab)) ||
        (rc = get_int(err, CFG, root, "max_position_embeddings", false, mistral ? 131072 : 2048, 1, ENG_MAX_CONTEXT,
                      &c->max_pos)) ||
        (rc = get_int(err, CFG, root, "sliding_window", false, 0, 0, ENG_MAX_CONTEXT, &c->sliding_window)) ||
        (rc = get_float(err, CFG, root, "rope_theta", 10000.0, 0.0, 1e12, &c->rope_theta)) ||
        (rc = get_float(err, CFG, root, "rms_norm_eps", 1e-6, 0.0, 1.0, &c->rms_eps)) ||
        (rc = get_bool(err, CFG, root, "tie_word_embeddings", false, &c->tie_embeddings)))
        return rc;
    if (c->head_dim == 0) {
        if (c->hidden % c->heads)
            return awq_seterr(err, AWQ_EFORMAT, CFG ": num_attention_heads %d does not divide hidden_size %d", c->heads,
                              c->hidden);
        c->head_dim = c->hidden / c->heads;
    }
    if (c->head_dim % 2) return awq_seterr(err, AWQ_EFORMAT, CFG ": head_dim %d is odd (RoPE rotates pairs)", c->head_dim);
    if ((long)c->heads * c->head_dim > ENG_MAX_INTERMEDIATE)
        return awq_seterr(err, AWQ_ERANGE, CFG ": num_attention_heads x head_dim = %ld too large",
                          (long)c->heads * c->head_dim);
    if (c->kv_heads > c->heads || c->heads % c->kv_heads)
        return awq_seterr(err, AWQ_EFORMAT, CFG ": num_key_value_heads %d does not divide num_attention_heads %d",
                          c->kv_heads, c->heads);
    return 0;
}

/* The AutoAWQ GEMM layout packs 8 outputs per int32 and groups the inputs: check both for
 * every linear, so later shape checks can divide without remainders. */
static int check_linears(char *err, const eng_config *c) {
    for (int k = 0; k < ENG_LIN_COUNT; k++) {
        int in, out;
        eng_linear_dims(c, k, &in, &out);
        if (out % 8)
            return awq_seterr(err, AWQ_EFORMAT, CFG ": %s out-features %d not a multiple of 8", lin_names[k], out);
        if (in % c->group_size)
            return awq_seterr(err, AWQ_EFORMAT, CFG ": group size %d does not divide %s in-features %d", c->group_size,
                              lin_names[k], in);
    }
    return 0;
}

int eng_config_parse(char *err, const char *json, size_t len, const char *quant_json, size_t quant_len,
                     eng_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    cfg->bos_id = -1;
    cJSON *root = NULL, *qroot = NULL;
    int rc = parse_object(err, CFG, json, len, &root);
    if (rc) return rc;
    if ((rc = parse_arch(err, root, cfg)) || (rc = check_unsupported(err, root)) || (rc = parse_dims(err, root, cfg)))
        goto done;

    int bos[ENG_MAX_EOS], nb = 0;
    if ((rc = get_ids(err, "bos_token_id", root, cfg->vocab, bos, ENG_MAX_EOS, &nb)) ||
        (rc = get_ids(err, "eos_token_id", root, cfg->vocab, cfg->eos_ids, ENG_MAX_EOS, &cfg->n_eos)))
        goto done;
    if (nb) cfg->bos_id = bos[0];

    const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
    if (!is_absent(q)) {
        if (!cJSON_IsObject(q)) {
            rc = awq_seterr(err, AWQ_EFORMAT, CFG ": quantization_config is not an object");
            goto done;
        }
        rc = parse_quant(err, CFG, q, true, cfg);
    } else if (quant_json) {
        if (!(rc = parse_object(err, "quant_config.json", quant_json, quant_len, &qroot)))
            rc = parse_quant(err, "quant_config.json", qroot, false, cfg);
    } else {
        rc = awq_seterr(err, AWQ_EUNSUPPORTED,
                        CFG ": unsupported quantization: none (no quantization_config and no quant_config.json)");
    }
    if (!rc) rc = check_linears(err, cfg);
done:
    cJSON_Delete(root);
    cJSON_Delete(qroot);
    return rc;
}

/* ------------------------------------------------------------------ generation_config.json ---- */

int eng_gen_parse(char *err, const char *json, size_t len, eng_gen_defaults *g) {
    static const char *const F = "generation_config.json";
    memset(g, 0, sizeof *g);
    cJSON *root = NULL;
    int rc = parse_object(err, F, json, len, &root);
    if (rc) return rc;
    const cJSON *v;
#define HAS(key) (v = cJSON_GetObjectItemCaseSensitive(root, key), !is_absent(v))
    if (HAS("temperature")) {
        g->has_temperature = true;
        if ((rc = get_float(err, F, root, "temperature", 0, -1e-30, 1e6, &g->temperature))) goto done;
    }
    if (HAS("top_p")) {
        g->has_top_p = true;
        if ((rc = get_float(err, F, root, "top_p", 0, -1e-30, 1.0, &g->top_p))) goto done;
    }
    if (HAS("repetition_penalty")) {
        g->has_repetition_penalty = true;
        if ((rc = get_float(err, F, root, "repetition_penalty", 0, 0.0, 1e6, &g->repetition_penalty))) goto done;
    }
    if (HAS("top_k")) {
        g->has_top_k = true;
        if ((rc = get_int(err, F, root, "top_k", false, 0, 0, ENG_MAX_VOCAB, &g->top_k))) goto done;
    }
    if (HAS("do_sample")) {
        g->has_do_sample = true;
        if ((rc = get_bool(err, F, root, "do_sample", false, &g->do_sample))) goto done;
    }
    rc = get_int(err, F, root, "max_new_tokens", false, 0, 0, ENG_MAX_CONTEXT, &g->max_new_tokens);
#undef HAS
done:
    cJSON_Delete(root);
    return rc;
}
