/* tok.h - the tokenizer: Hugging Face tokenizer.json of the Llama/Mistral (SentencePiece BPE
 * with byte fallback) kind, giving exactly the ids of Hugging Face `tokenizers`, plus a
 * streaming decoder. Shaped so that byte-level BPE (Llama-3, Qwen) can be added as another
 * pre-tokenizer/decoder kind without a rewrite.
 *
 * Thread safety: a loaded tokenizer is immutable; encode/decode may run on many threads at once.
 * A stream decoder belongs to one thread.
 */
#ifndef ENG_TOK_H
#define ENG_TOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "awq_err.h"
#include "awq_util.h"

#define ENG_TOK_JSON_MAX (64u * 1024u * 1024u) /* largest tokenizer.json accepted */
#define ENG_TOK_TEXT_MAX (64u * 1024u * 1024u) /* largest text encode accepts */

typedef struct eng_tok eng_tok;

/* Load tokenizer.json (path) and, when not NULL, tokenizer_config.json (bos/eos tokens,
 * add_bos_token, add_eos_token, chat_template). Unsupported kinds get AWQ_EUNSUPPORTED with
 * the reason. */
AWQ_NODISCARD int eng_tok_load(char *err, const char *tokenizer_json, const char *tokenizer_config,
                               eng_tok **out) AWQ_NONNULL(2, 4);
/* The same from memory (config_json may be NULL); used by the fuzzer. */
AWQ_NODISCARD int eng_tok_load_mem(char *err, const char *json, size_t len, const char *config_json,
                                   size_t config_len, eng_tok **out) AWQ_NONNULL(2, 6);
void eng_tok_free(eng_tok *t);

int eng_tok_vocab_size(const eng_tok *t); /* highest id + 1, added tokens included */
int eng_tok_bos_id(const eng_tok *t);     /* -1 when none */
int eng_tok_eos_id(const eng_tok *t);     /* -1 when none */
bool eng_tok_add_bos(const eng_tok *t);   /* tokenizer_config add_bos_token (default true) */
const char *eng_tok_bos_text(const eng_tok *t); /* "<s>", or "" */
const char *eng_tok_eos_text(const eng_tok *t); /* "</s>", or "" */
/* chat_template of tokenizer_config.json, or NULL when absent. */
const char *eng_tok_chat_template(const eng_tok *t);
bool eng_tok_is_special(const eng_tok *t, int32_t id);
/* The vocabulary string of id (e.g. "▁Hello", "<0x0A>"), or NULL when out of range. */
const char *eng_tok_piece(const eng_tok *t, int32_t id);
/* The id of an exact vocabulary string, or -1. */
int32_t eng_tok_find(const eng_tok *t, const char *piece, size_t len);

/* Encode UTF-8 text as Hugging Face `tokenizer(text)` does (BOS prepended when add_bos; added
 * and special tokens matched inside the text). Invalid UTF-8 is AWQ_EUTF8. *ids_p is malloc'ed;
 * caller frees. Runs in O(n log n). */
AWQ_NODISCARD int eng_tok_encode(char *err, const eng_tok *t, const char *text, size_t len, bool add_bos,
                                 int32_t **ids_p, size_t *n_p) AWQ_NONNULL(2, 6, 7);

/* Decode ids as Hugging Face `tokenizer.decode(ids, skip_special_tokens=skip_special)`. *text_p
 * is malloc'ed and NUL-terminated; caller frees. Ids out of range are AWQ_ERANGE. */
AWQ_NODISCARD int eng_tok_decode(char *err, const eng_tok *t, const int32_t *ids, size_t n,
                                 bool skip_special, char **text_p, size_t *len_p) AWQ_NONNULL(2, 6, 7);

/* Streaming decoder: push ids one at a time; text is appended to out as soon as it is complete
 * UTF-8 (partial byte-fallback sequences are held back). The concatenation of everything
 * emitted plus the final flush equals eng_tok_decode of all pushed ids. */
typedef struct eng_tok_stream {
    const eng_tok *tok;
    bool skip_special;
    bool first;          /* nothing emitted yet: the decoder's leading-space Strip applies */
    char pending[16];    /* incomplete UTF-8 bytes held back */
    size_t n_pending;
} eng_tok_stream;

void eng_tok_stream_init(eng_tok_stream *s, const eng_tok *t, bool skip_special);
AWQ_NODISCARD int eng_tok_stream_push(eng_tok_stream *s, int32_t id, awq_buf *out);
/* Emit whatever is held back (invalid bytes become U+FFFD as Hugging Face does). */
AWQ_NODISCARD int eng_tok_stream_flush(eng_tok_stream *s, awq_buf *out);

#endif
