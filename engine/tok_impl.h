/* tok_impl.h - the tokenizer's private state, shared by tok.c (encode, decode, stream),
 * tok_json.c (loading tokenizer.json and tokenizer_config.json) and tok_bpe.c (the merge loop).
 * Nothing outside engine/tok*.c includes it.
 *
 * The pipeline is kept as small enumerated steps parsed from JSON (normalizer steps, decoder
 * steps) so that another kind (a ByteLevel pre-tokenizer and decoder for Llama-3/Qwen) can be
 * added as one more enum value and one more case, without touching the rest.
 *
 * Thread safety: an eng_tok is immutable once eng_tok_load* returns.
 */
#ifndef ENG_TOK_IMPL_H
#define ENG_TOK_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hmap.h"
#include "tok.h"

/* Upper bound on token ids: far above any real vocabulary (Llama-3: 128k, Gemma: 256k), low
 * enough that a hostile file cannot make us allocate gigabytes of per-id tables. */
#define ENG_TOK_VOCAB_MAX (1 << 21)

/* ---- normalizer: applied, in order, to each piece of text between added tokens ---- */
enum tok_norm_kind {
    TOK_NORM_PREPEND = 1, /* prepend `to` when the piece is not empty */
    TOK_NORM_REPLACE,     /* replace every non-overlapping `from` by `to`, left to right */
};
typedef struct tok_norm {
    int kind;
    char *from; /* owned; REPLACE only */
    size_t from_len;
    char *to; /* owned */
    size_t to_len;
} tok_norm;

/* ---- added tokens (tokenizer.json "added_tokens") ---- */
typedef struct tok_added {
    char *content; /* owned, as written in the file */
    size_t len;
    char *pattern; /* owned: what is searched for; the normalized content when `normalized` */
    size_t pattern_len;
    int32_t id;
    bool special, lstrip, rstrip, single_word, normalized;
} tok_added;

/* Added tokens grouped by the first byte of their pattern, longest first, so finding the
 * leftmost-longest match at a position looks at only the few candidates that can start there. */
typedef struct tok_matcher {
    uint32_t start[257]; /* idx[start[b] .. start[b+1]) are the tokens whose pattern starts with b */
    uint32_t *idx;       /* (n) indices into eng_tok.added; owned */
    size_t n;
} tok_matcher;

/* ---- pre-tokenizer: Metaspace (the non-legacy Llama form), or none ---- */
enum tok_prepend { TOK_PREPEND_ALWAYS = 0, TOK_PREPEND_FIRST, TOK_PREPEND_NEVER };

/* ---- decoder: per-token steps, then the Llama/Mistral ByteFallback, Fuse, Strip ---- */
enum tok_dec_kind {
    TOK_DEC_REPLACE = 1, /* every non-overlapping `from` -> `to` */
    TOK_DEC_METASPACE,   /* the replacement char -> ' ', dropped in the first token (scheme != never) */
};
typedef struct tok_dec_step {
    int kind;
    char *from; /* owned; for METASPACE the replacement character */
    size_t from_len;
    char *to; /* owned; REPLACE only */
    size_t to_len;
    int scheme; /* METASPACE: enum tok_prepend */
} tok_dec_step;

/* Per-id flags. */
enum {
    TOK_F_ADDED = 1,   /* an added token: matched in text, never produced by BPE */
    TOK_F_SPECIAL = 2, /* an added token with special=true: dropped by skip_special */
};

struct eng_tok {
    /* vocabulary: ids 0 .. n_vocab-1; an id with neither a model nor an added token is a gap */
    int32_t n_vocab;
    char **piece;       /* (n_vocab) owned NUL-terminated strings; NULL for gaps */
    uint32_t *piece_len; /* (n_vocab) */
    uint8_t *flags;      /* (n_vocab) TOK_F_* */
    /* what the decoder makes of each id, precomputed: the text after the per-token steps (as
     * for any token but the first), or a byte value (0..255) for a ByteFallback token
     * "<0xNN>", else -1 */
    char **dec_text;     /* (n_vocab) owned; NULL for gaps */
    uint32_t *dec_len;   /* (n_vocab) */
    int16_t *dec_byte;   /* (n_vocab) */

    /* the BPE model */
    eng_hmap_str vocab;  /* model vocab string -> id; keys borrowed from model_key */
    char **model_key;    /* (n_model) owned strings that vocab's keys point into */
    size_t n_model;
    eng_hmap_u64 merges; /* (left id << 32 | right id) -> (rank << 32 | merged id) */
    int32_t unk_id;      /* -1 when the model has no unk_token */
    bool byte_fallback, fuse_unk, ignore_merges;
    int32_t byte_id[256]; /* id of "<0xNN>" in the model vocab, -1 when absent */

    /* normalizer steps, in order */
    tok_norm *norm;
    size_t n_norm;

    /* added tokens */
    tok_added *added;
    size_t n_added;
    eng_hmap_str added_map; /* content -> id; keys borrowed from added[i].content */
    tok_matcher raw_match;  /* non-normalized tokens: matched in the original text */
    tok_matcher norm_match; /* normalized tokens: matched in each normalized piece */

    /* pre-tokenizer Metaspace (ms_repl_len 0 = no pre-tokenizer) */
    char ms_repl[8]; /* the replacement character, UTF-8, NUL-terminated */
    size_t ms_repl_len;
    int ms_scheme; /* enum tok_prepend */
    bool ms_split; /* split before each replacement character (MergedWithNext) */

    /* decoder */
    bool dec_join_space; /* no decoder at all: Hugging Face joins the tokens with " " */
    bool dec_byte_fallback;
    tok_dec_step *dec_step; /* per-token steps, in order */
    size_t n_dec_step;
    bool dec_first_differs; /* a Metaspace step treats the first token apart (the stream's
                               `first` then means "no token yet"; Strip is refused with it) */
    uint32_t dec_strip_cp; /* Strip after Fuse: drop one leading dec_strip_cp ... */
    bool dec_strip;        /* ... when set */

    /* post-processing: what encode puts around the ids when asked for special tokens */
    int32_t *prefix; /* (n_prefix) owned */
    size_t n_prefix;
    int32_t *suffix; /* (n_suffix) owned */
    size_t n_suffix;

    /* tokenizer_config.json */
    int32_t bos_id, eos_id;
    char *chat_template; /* owned or NULL */
};

/* A growable array of ids. */
typedef struct tok_ids {
    int32_t *v;
    size_t n, cap;
} tok_ids;

AWQ_NODISCARD int eng_tok_ids_push(tok_ids *a, int32_t id);

/* Parse tokenizer.json (json, len; name used in messages) and optionally tokenizer_config.json
 * into t, which the caller zeroed; on failure t may hold partial state that eng_tok_free_parts
 * releases. Defined in tok_json.c. */
AWQ_NODISCARD int eng_tok_parse(char *err, eng_tok *t, const char *json, size_t len, const char *name,
                                const char *cfg, size_t cfg_len, const char *cfg_name);
/* Release everything t owns (not t itself). */
void eng_tok_free_parts(eng_tok *t);

/* Apply the normalizer steps to s[0..len) into out (cleared first). */
AWQ_NODISCARD int eng_tok_normalize(const eng_tok *t, const char *s, size_t len, awq_buf *out);

/* What the decoder's per-token steps make of s[0..len) into out (cleared first); first: the
 * token is the first one decoded. *byte is the ByteFallback byte or -1. */
AWQ_NODISCARD int eng_tok_dec_token(const eng_tok *t, const char *s, size_t len, bool first, awq_buf *out, int *byte);

/* BPE over one normalized piece s[0..len) (valid UTF-8, not empty): appends its ids to out.
 * O(n log n) in the piece length. Defined in tok_bpe.c. */
AWQ_NODISCARD int eng_tok_bpe(char *err, const eng_tok *t, const char *s, size_t len, tok_ids *out);

#endif
