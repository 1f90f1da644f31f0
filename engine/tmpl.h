/* tmpl.h - a small Jinja interpreter for the chat_template of tokenizer_config.json, exact to
 * Hugging Face apply_chat_template for the templates real chat models ship (Llama-2, Mistral-
 * Instruct, ChatML, Zephyr, ...). Supported: {{ }}, {% for/if/elif/else/set/endfor/endif %},
 * {# #}, whitespace control {%- -%} {{- -}}, loop.index0/index/first/last/length, namespace(),
 * filters trim/length/lower/upper/tojson/string/first/last/default..., + and ~, comparisons,
 * and/or/not, in/not in, is defined/none/string..., subscripts, slices, attribute access,
 * string methods (strip, startswith, ...), raise_exception(msg). Anything else is a parse
 * error naming line and column.
 *
 * Thread safety: a compiled template is immutable; render may run on many threads at once.
 */
#ifndef ENG_TMPL_H
#define ENG_TMPL_H

#include <stdbool.h>
#include <stddef.h>

#include "awq_err.h"

#define ENG_TMPL_SRC_MAX (1u << 20)     /* largest template source */
#define ENG_TMPL_OUT_MAX (64u << 20)    /* largest rendered output */

typedef struct eng_tmpl eng_tmpl;

typedef struct eng_msg {
    const char *role;    /* "system", "user", "assistant", ... */
    const char *content; /* UTF-8 */
} eng_msg;

/* Compile template source; syntax errors give AWQ_ETEMPLATE with "line L, column C: ...". */
AWQ_NODISCARD int eng_tmpl_compile(char *err, const char *src, size_t len, eng_tmpl **out) AWQ_NONNULL(2, 4);
void eng_tmpl_free(eng_tmpl *t);

/* Render with messages, bos_token, eos_token and add_generation_prompt. *out_p is malloc'ed and
 * NUL-terminated; caller frees. raise_exception(...) gives AWQ_ETEMPLATE with its message. */
AWQ_NODISCARD int eng_tmpl_render(char *err, const eng_tmpl *t, const eng_msg *msgs, size_t n_msgs,
                                  const char *bos_token, const char *eos_token, bool add_generation_prompt,
                                  char **out_p, size_t *len_p) AWQ_NONNULL(2, 8, 9);

/* Parse a JSON array of {"role","content"} objects (awq-run template's stdin) into msgs.
 * *msgs_p and the strings it points to live in one malloc'ed block: free(*msgs_p). */
AWQ_NODISCARD int eng_msgs_from_json(char *err, const char *json, size_t len, eng_msg **msgs_p,
                                     size_t *n_p) AWQ_NONNULL(2, 4, 5);

#endif
