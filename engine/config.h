/* config.h - the checkpoint's JSON side files beyond what model.h declares: generation defaults,
 * and the shapes of the seven quantized linears of a layer, derived from an eng_config so that
 * the loader, awq-mkmodel and awq-run inspect agree on names and dimensions.
 *
 * eng_config_parse itself is declared in model.h (it is part of the agreed model interface).
 *
 * Thread safety: everything here is reentrant.
 */
#ifndef ENG_CONFIG_H
#define ENG_CONFIG_H

#include <stddef.h>

#include "awq_err.h"
#include "model.h"

/* Bounds not in model.h: intermediate may exceed hidden several times (Mistral: 3.5x). */
#define ENG_MAX_INTERMEDIATE (8 * ENG_MAX_HIDDEN)
#define ENG_MAX_GROUP 65536
#define ENG_MAX_JSON_BYTES (16u * 1024u * 1024u) /* config / index / generation config files */

/* The seven quantized linears of a layer, in checkpoint order. */
enum eng_linear_kind {
    ENG_LIN_Q = 0,
    ENG_LIN_K,
    ENG_LIN_V,
    ENG_LIN_O,
    ENG_LIN_GATE,
    ENG_LIN_UP,
    ENG_LIN_DOWN,
    ENG_LIN_COUNT
};

/* "self_attn.q_proj", ..., "mlp.down_proj": the name between "model.layers.N." and ".qweight". */
const char *eng_linear_name(int kind);
/* In- and out-features of linear kind for a validated config. */
void eng_linear_dims(const eng_config *c, int kind, int *in, int *out) AWQ_NONNULL(1, 3, 4);

/* Parse generation_config.json text into gen (zeroed first; has_* mark present fields). Wrong
 * types or out-of-range values (temperature < 0, top_p outside [0,1], top_k < 0,
 * repetition_penalty <= 0, max_new_tokens < 0) are AWQ_EFORMAT naming the field. */
AWQ_NODISCARD int eng_gen_parse(char *err, const char *json, size_t len, eng_gen_defaults *gen)
    AWQ_NONNULL(2, 4);

#endif
