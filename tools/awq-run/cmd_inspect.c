/* cmd_inspect.c - `awq-run inspect -m DIR`: loads and fully validates a checkpoint (every check
 * of eng_model_load, see docs/model-format.md) and prints one JSON object describing it:
 * the config fields, the quantization, generation defaults, each shard (file, bytes, tensors),
 * tensor count, weight bytes, quantized parameter count and whether embeddings are tied.
 * Exit codes: 0 ok, 1 bad checkpoint (one line "awq-run: <message>" on stderr), 2 usage. */
#include <stdio.h>
#include <string.h>

#include "awq_util.h"
#include "cmds.h"
#include "config.h"
#include "model.h"

static void usage(FILE *f) {
    fprintf(f, "usage: awq-run inspect -m DIR\n"
               "  validates the checkpoint in DIR and prints a JSON summary of it.\n");
}

/* The summary of m as one JSON object (plus a newline) into b. */
static int describe(const eng_model *m, awq_buf *b) {
    const eng_config *c = &m->cfg;
    const eng_gen_defaults *g = &m->gen;
    int rc = awq_buf_puts(b, "{\"architecture\":");
    if (!rc) rc = awq_buf_json_str(b, c->arch, strlen(c->arch));
    if (!rc) rc = awq_buf_puts(b, ",\"model_type\":");
    if (!rc) rc = awq_buf_json_str(b, c->model_type, strlen(c->model_type));
    if (!rc)
        rc = awq_buf_printf(b,
                            ",\"hidden_size\":%d,\"intermediate_size\":%d,\"num_hidden_layers\":%d,"
                            "\"num_attention_heads\":%d,\"num_key_value_heads\":%d,\"head_dim\":%d,\"vocab_size\":%d,"
                            "\"max_position_embeddings\":%d,\"rope_theta\":%.9g,\"rms_norm_eps\":%.7g,"
                            "\"tie_word_embeddings\":%s",
                            c->hidden, c->intermediate, c->layers, c->heads, c->kv_heads, c->head_dim, c->vocab,
                            c->max_pos, c->rope_theta, c->rms_eps, c->tie_embeddings ? "true" : "false");
    if (!rc) rc = c->sliding_window ? awq_buf_printf(b, ",\"sliding_window\":%d", c->sliding_window)
                                    : awq_buf_puts(b, ",\"sliding_window\":null");
    if (!rc) rc = c->bos_id >= 0 ? awq_buf_printf(b, ",\"bos_token_id\":%d", c->bos_id)
                                 : awq_buf_puts(b, ",\"bos_token_id\":null");
    if (!rc) rc = awq_buf_puts(b, ",\"eos_token_id\":[");
    for (int i = 0; i < c->n_eos && !rc; i++) rc = awq_buf_printf(b, "%s%d", i ? "," : "", c->eos_ids[i]);
    if (!rc)
        rc = awq_buf_printf(b,
                            "],\"quantization\":{\"method\":\"awq\",\"bits\":%d,\"group_size\":%d,"
                            "\"zero_point\":%s,\"version\":\"%s\"},\"generation\":{",
                            c->bits, c->group_size, c->zero_point ? "true" : "false", c->quant_version);
    /* only what generation_config.json set: absent means "use your own default" */
    const char *sep = "";
    if (!rc && g->has_temperature) rc = awq_buf_printf(b, "%s\"temperature\":%.7g", sep, g->temperature), sep = ",";
    if (!rc && g->has_top_p) rc = awq_buf_printf(b, "%s\"top_p\":%.7g", sep, g->top_p), sep = ",";
    if (!rc && g->has_top_k) rc = awq_buf_printf(b, "%s\"top_k\":%d", sep, g->top_k), sep = ",";
    if (!rc && g->has_repetition_penalty)
        rc = awq_buf_printf(b, "%s\"repetition_penalty\":%.7g", sep, g->repetition_penalty), sep = ",";
    if (!rc && g->has_do_sample)
        rc = awq_buf_printf(b, "%s\"do_sample\":%s", sep, g->do_sample ? "true" : "false"), sep = ",";
    if (!rc && g->max_new_tokens) rc = awq_buf_printf(b, "%s\"max_new_tokens\":%d", sep, g->max_new_tokens);
    if (!rc) rc = awq_buf_puts(b, "},\"dir\":");
    if (!rc) rc = awq_buf_json_str(b, m->dir, strlen(m->dir));
    if (!rc) rc = awq_buf_puts(b, ",\"shards\":[");
    for (int s = 0; s < m->n_shards && !rc; s++) {
        int nt = 0;
        for (int i = 0; i < m->n_tensors; i++) nt += m->tensors[i].shard == s;
        rc = awq_buf_puts(b, s ? ",{\"file\":" : "{\"file\":");
        if (!rc) rc = awq_buf_json_str(b, m->shard_names[s], strlen(m->shard_names[s]));
        if (!rc) rc = awq_buf_printf(b, ",\"bytes\":%zu,\"tensors\":%d}", m->shards[s].len, nt);
    }
    unsigned long long qparams = 0;
    for (int L = 0; L < c->layers; L++)
        for (int k = 0; k < ENG_LIN_COUNT; k++) {
            int in, out;
            eng_linear_dims(c, k, &in, &out);
            qparams += (unsigned long long)in * (unsigned long long)out;
        }
    if (!rc)
        rc = awq_buf_printf(b, "],\"tensors\":%d,\"weight_bytes\":%zu,\"quantized_params\":%llu,\"tied\":%s}\n",
                            m->n_tensors, m->weight_bytes, qparams, m->lm_head == m->embed ? "true" : "false");
    return rc;
}

int cmd_inspect(int argc, char **argv) {
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc && !dir) {
            dir = argv[++i];
            continue;
        }
        fprintf(stderr, "awq-run: inspect: unexpected argument '%s'\n", argv[i]);
        usage(stderr);
        return 2;
    }
    if (!dir) {
        fprintf(stderr, "awq-run: inspect: -m DIR is required\n");
        usage(stderr);
        return 2;
    }
    char err[AWQ_ERR_LEN];
    eng_model *m = NULL;
    if (eng_model_load(err, dir, &m)) {
        fprintf(stderr, "awq-run: %s\n", err);
        return 1;
    }
    awq_buf b = {0};
    int rc = describe(m, &b);
    eng_model_free(m);
    if (rc) {
        awq_buf_free(&b);
        fprintf(stderr, "awq-run: out of memory\n");
        return 1;
    }
    bool ok = fwrite(b.data, 1, b.len, stdout) == b.len && fflush(stdout) == 0;
    awq_buf_free(&b);
    if (!ok) {
        fprintf(stderr, "awq-run: inspect: cannot write the output\n");
        return 1;
    }
    return 0;
}
