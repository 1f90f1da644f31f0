/* files.c - the JSON side files of a checkpoint, written the way Hugging Face / AutoAWQ export
 * them for a Mistral or Llama model: config.json (with quantization_config),
 * generation_config.json, tokenizer_config.json (with the chat template),
 * special_tokens_map.json, and a copy of tokenizer.json. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "mk.h"
#include "plat.h"

int mk_write(char *err, const char *dir, const char *name, const void *data, size_t len) {
    char path[PLAT_PATH_MAX];
    if (plat_path_join(path, dir, name)) return awq_seterr(err, AWQ_ETOOBIG, "%s: path too long", dir);
    FILE *f = fopen(path, "wb");
    if (!f) return awq_seterr(err, AWQ_EIO, "%s: cannot create", path);
    bool ok = fwrite(data, 1, len, f) == len;
    if (fclose(f) != 0) ok = false;
    if (!ok) return awq_seterr(err, AWQ_EIO, "%s: write failed", path);
    return 0;
}

/* A float as JSON, the way Python prints it: 10000.0, 1e-05. */
static int put_float(awq_buf *b, double v) {
    if (v == floor(v) && fabs(v) < 1e15) return awq_buf_printf(b, "%.1f", v);
    return awq_buf_printf(b, "%.7g", v); /* the value is a float: 7 digits round-trip it */
}

int mk_config_json(const mk_opts *o, awq_buf *b) {
    const eng_config *c = &o->cfg;
    bool mistral = !strcmp(c->arch, "MistralForCausalLM");
    int rc = awq_buf_printf(b,
                            "{\n  \"_name_or_path\": \"awq-mkmodel\",\n  \"architectures\": [\n    \"%s\"\n  ],\n"
                            "  \"attention_dropout\": 0.0,\n  \"bos_token_id\": 1,\n  \"eos_token_id\": 2,\n"
                            "  \"hidden_act\": \"silu\",\n  \"hidden_size\": %d,\n  \"initializer_range\": 0.02,\n"
                            "  \"intermediate_size\": %d,\n  \"max_position_embeddings\": %d,\n"
                            "  \"model_type\": \"%s\",\n  \"num_attention_heads\": %d,\n  \"num_hidden_layers\": %d,\n"
                            "  \"num_key_value_heads\": %d,\n",
                            c->arch, c->hidden, c->intermediate, c->max_pos, c->model_type, c->heads, c->layers,
                            c->kv_heads);
    if (!rc && o->head_dim_given) rc = awq_buf_printf(b, "  \"head_dim\": %d,\n", c->head_dim);
    if (!rc && !mistral)
        rc = awq_buf_puts(b, "  \"attention_bias\": false,\n  \"pretraining_tp\": 1,\n  \"rope_scaling\": null,\n");
    if (!rc) rc = awq_buf_puts(b, "  \"rms_norm_eps\": ");
    if (!rc) rc = put_float(b, c->rms_eps);
    if (!rc) rc = awq_buf_puts(b, ",\n  \"rope_theta\": ");
    if (!rc) rc = put_float(b, c->rope_theta);
    if (!rc && mistral) {
        if (c->sliding_window) rc = awq_buf_printf(b, ",\n  \"sliding_window\": %d", c->sliding_window);
        else rc = awq_buf_puts(b, ",\n  \"sliding_window\": null");
    }
    if (!rc)
        rc = awq_buf_printf(b,
                            ",\n  \"tie_word_embeddings\": %s,\n  \"torch_dtype\": \"float16\",\n"
                            "  \"transformers_version\": \"4.35.2\",\n  \"use_cache\": true,\n  \"vocab_size\": %d,\n"
                            "  \"quantization_config\": {\n    \"quant_method\": \"awq\",\n    \"bits\": 4,\n"
                            "    \"group_size\": %d,\n    \"zero_point\": true,\n    \"version\": \"gemm\"\n  }\n}\n",
                            c->tie_embeddings ? "true" : "false", c->vocab, c->group_size);
    return rc;
}

int mk_tokenizer_vocab(char *err, const char *text, size_t len, int *n) {
    cJSON *root = cJSON_ParseWithLength(text, len);
    *n = 0;
    if (!root) return awq_seterr(err, AWQ_EFORMAT, "tokenizer.json: invalid JSON");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    int rc = 0;
    if (!cJSON_IsObject(vocab)) {
        rc = awq_seterr(err, AWQ_EFORMAT, "tokenizer.json: model.vocab missing or not an object");
    } else {
        int count = cJSON_GetArraySize(vocab);
        for (const cJSON *v = vocab->child; v; v = v->next)
            if (cJSON_IsNumber(v) && v->valuedouble + 1 > count && v->valuedouble < 1e9) count = (int)v->valuedouble + 1;
        const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
        for (const cJSON *a = cJSON_IsArray(added) ? added->child : NULL; a; a = a->next) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
            if (cJSON_IsNumber(id) && id->valuedouble + 1 > count && id->valuedouble < 1e9) count = (int)id->valuedouble + 1;
        }
        *n = count;
    }
    cJSON_Delete(root);
    return rc;
}

/* tokenizer_config.json as Mistral's / Llama-2's, with the chosen chat template. */
static int tokenizer_config(const mk_opts *o, awq_buf *b) {
    static const char *const sp[3] = {"<unk>", "<s>", "</s>"};
    int rc = awq_buf_puts(b, "{\n  \"add_bos_token\": true,\n  \"add_eos_token\": false,\n  \"added_tokens_decoder\": {");
    for (int i = 0; i < 3 && !rc; i++)
        rc = awq_buf_printf(b,
                            "%s\n    \"%d\": {\n      \"content\": \"%s\",\n      \"lstrip\": false,\n"
                            "      \"normalized\": false,\n      \"rstrip\": false,\n      \"single_word\": false,\n"
                            "      \"special\": true\n    }",
                            i ? "," : "", i, sp[i]);
    if (!rc)
        rc = awq_buf_puts(b, "\n  },\n  \"additional_special_tokens\": [],\n  \"bos_token\": \"<s>\",\n"
                             "  \"chat_template\": ");
    if (!rc) rc = awq_buf_json_str(b, o->template_text, strlen(o->template_text));
    if (!rc)
        rc = awq_buf_printf(b,
                            ",\n  \"clean_up_tokenization_spaces\": false,\n  \"eos_token\": \"</s>\",\n"
                            "  \"legacy\": true,\n  \"model_max_length\": %d,\n  \"pad_token\": null,\n"
                            "  \"sp_model_kwargs\": {},\n  \"spaces_between_special_tokens\": false,\n"
                            "  \"tokenizer_class\": \"LlamaTokenizer\",\n  \"unk_token\": \"<unk>\",\n"
                            "  \"use_default_system_prompt\": false\n}\n",
                            o->cfg.max_pos);
    return rc;
}

int mk_write_files(char *err, const mk_opts *o, const char *tok, size_t tok_len) {
    awq_buf b = {0};
    int rc = mk_config_json(o, &b);
    if (!rc) rc = mk_write(err, o->out_dir, "config.json", b.data, b.len);
    else rc = awq_seterr(err, AWQ_ENOMEM, "out of memory");
    awq_buf_free(&b);
    if (rc) return rc;

    static const char gen[] = "{\n  \"_from_model_config\": true,\n  \"bos_token_id\": 1,\n  \"eos_token_id\": 2,\n"
                              "  \"do_sample\": true,\n  \"temperature\": 0.7,\n  \"top_p\": 0.95,\n"
                              "  \"repetition_penalty\": 1.05,\n  \"transformers_version\": \"4.35.2\"\n}\n";
    if ((rc = mk_write(err, o->out_dir, "generation_config.json", gen, sizeof gen - 1))) return rc;
    static const char stm[] = "{\n  \"bos_token\": \"<s>\",\n  \"eos_token\": \"</s>\",\n  \"unk_token\": \"<unk>\"\n}\n";
    if ((rc = mk_write(err, o->out_dir, "special_tokens_map.json", stm, sizeof stm - 1))) return rc;
    if ((rc = mk_write(err, o->out_dir, "tokenizer.json", tok, tok_len))) return rc;
    rc = tokenizer_config(o, &b);
    if (!rc) rc = mk_write(err, o->out_dir, "tokenizer_config.json", b.data, b.len);
    else rc = awq_seterr(err, AWQ_ENOMEM, "out of memory");
    awq_buf_free(&b);
    return rc;
}
