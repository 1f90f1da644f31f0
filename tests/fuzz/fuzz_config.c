/* fuzz_config.c - libFuzzer target for config.json parsing (threat model row 12). Input: the
 * text of a config.json. It is parsed as config.json, as quant_config.json behind a valid
 * config without quantization_config, and as generation_config.json: each must succeed or fail
 * with an error, never crash or leak; an accepted config must satisfy the bounds the loader
 * sizes allocations from. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const eng_config *c) {
    if (c->hidden < 1 || c->hidden > ENG_MAX_HIDDEN || c->layers < 1 || c->layers > ENG_MAX_LAYERS) abort();
    if (c->heads < 1 || c->kv_heads < 1 || c->heads % c->kv_heads || c->head_dim < 2 || c->head_dim % 2) abort();
    if (c->vocab < 1 || c->vocab > ENG_MAX_VOCAB || c->bits != 4 || c->group_size < 1) abort();
    if (c->bos_id >= c->vocab || c->n_eos < 0 || c->n_eos > ENG_MAX_EOS) abort();
    for (int k = 0; k < ENG_LIN_COUNT; k++) {
        int in, out;
        eng_linear_dims(c, k, &in, &out);
        if (in < 1 || out < 8 || out % 8 || in % c->group_size) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char base[] = "{\"architectures\":[\"MistralForCausalLM\"],\"hidden_size\":64,"
                               "\"intermediate_size\":128,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
                               "\"vocab_size\":100}";
    char err[AWQ_ERR_LEN];
    eng_config c;
    const char *text = (const char *)data;
    if (eng_config_parse(err, text, size, NULL, 0, &c) == 0) check(&c);
    if (eng_config_parse(err, base, sizeof base - 1, text, size, &c) == 0) check(&c);
    eng_gen_defaults g;
    (void)!eng_gen_parse(err, text, size, &g);
    return 0;
}
