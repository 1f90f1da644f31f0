/* tok.c - the tokenizer's public API (tok.h): load, encode, decode, stream decode.
 *
 * Encode follows Hugging Face `tokenizers` step by step (tokenizer/mod.rs, added_vocabulary.rs):
 *   1. split the raw text on the added tokens that are not normalized (leftmost-longest match,
 *      lstrip/rstrip/single_word as added_vocabulary.rs does);
 *   2. normalize each piece in between separately - so the Prepend("▁") normalizer puts "▁" in
 *      front of EVERY such piece, "a<s>b" -> "▁a" <s> "▁b" (checked against tokenizers 0.23.2
 *      in tests/reference/tok_ref.json);
 *   3. split each normalized piece on the normalized added tokens;
 *   4. the Metaspace pre-tokenizer, when there is one (the non-legacy Llama form);
 *   5. BPE each remaining piece (tok_bpe.c);
 *   6. put the post-processor's tokens (BOS) around the result when asked.
 * Decode is tokenizers' Tokenizer::decode: tokens (special ones dropped on request) -> per-token
 * Replace/Metaspace -> ByteFallback runs -> Fuse -> Strip one leading space of the whole text.
 */
#include <stdlib.h>
#include <string.h>

#include "plat.h"
#include "tok_impl.h"

static const char REPLACEMENT_CHAR[] = "\xEF\xBF\xBD"; /* U+FFFD */

/* ------------------------------------------------------------------ load / free ---- */

/* Parse into a fresh object; on failure free it and return NULL in *out. */
static int load_common(char *err, const char *json, size_t len, const char *name, const char *cfg, size_t cfg_len,
                       const char *cfg_name, eng_tok **out) {
    *out = NULL;
    eng_tok *t = calloc(1, sizeof *t);
    if (!t) return awq_seterr(err, AWQ_ENOMEM, "tokenizer: out of memory");
    int rc = eng_tok_parse(err, t, json, len, name, cfg, cfg_len, cfg_name);
    if (rc) {
        eng_tok_free(t);
        return rc;
    }
    *out = t;
    return 0;
}

/* Reads both files (tokenizer_config may be NULL); *out is the caller's to eng_tok_free. */
int eng_tok_load(char *err, const char *tokenizer_json, const char *tokenizer_config, eng_tok **out) {
    *out = NULL;
    char *json = NULL, *cfg = NULL;
    size_t len = 0, cfg_len = 0;
    int rc = plat_read_file(err, tokenizer_json, ENG_TOK_JSON_MAX, &json, &len);
    if (rc) return rc;
    if (tokenizer_config && (rc = plat_read_file(err, tokenizer_config, ENG_TOK_JSON_MAX, &cfg, &cfg_len))) {
        free(json);
        return rc;
    }
    rc = load_common(err, json, len, tokenizer_json, cfg, cfg_len, tokenizer_config ? tokenizer_config : "", out);
    free(json);
    free(cfg);
    return rc;
}

/* Borrows json and config_json; *out is the caller's to eng_tok_free. */
int eng_tok_load_mem(char *err, const char *json, size_t len, const char *config_json, size_t config_len, eng_tok **out) {
    return load_common(err, json, len, "tokenizer.json", config_json, config_len, "tokenizer_config.json", out);
}

void eng_tok_free(eng_tok *t) {
    if (!t) return;
    eng_tok_free_parts(t);
    free(t);
}

/* ------------------------------------------------------------------ accessors ---- */

int eng_tok_vocab_size(const eng_tok *t) { return t->n_vocab; }
int eng_tok_bos_id(const eng_tok *t) { return t->bos_id; }
int eng_tok_eos_id(const eng_tok *t) { return t->eos_id; }
/* True when encode with add_bos puts something in front (BOS for Llama/Mistral). */
bool eng_tok_add_bos(const eng_tok *t) { return t->n_prefix > 0; }
const char *eng_tok_bos_text(const eng_tok *t) { return t->bos_id >= 0 ? t->piece[t->bos_id] : ""; }
const char *eng_tok_eos_text(const eng_tok *t) { return t->eos_id >= 0 ? t->piece[t->eos_id] : ""; }
const char *eng_tok_chat_template(const eng_tok *t) { return t->chat_template; }

bool eng_tok_is_special(const eng_tok *t, int32_t id) {
    return id >= 0 && id < t->n_vocab && (t->flags[id] & TOK_F_SPECIAL);
}

const char *eng_tok_piece(const eng_tok *t, int32_t id) { return id >= 0 && id < t->n_vocab ? t->piece[id] : NULL; }

int32_t eng_tok_find(const eng_tok *t, const char *piece, size_t len) {
    int32_t id = eng_hmap_str_get(&t->added_map, piece, len);
    return id >= 0 ? id : eng_hmap_str_get(&t->vocab, piece, len);
}

/* ------------------------------------------------------------------ normalizer ---- */

int eng_tok_normalize(const eng_tok *t, const char *s, size_t len, awq_buf *out) {
    awq_buf tmp = {0};
    out->len = 0;
    if (awq_buf_append(out, s, len)) return AWQ_ENOMEM;
    for (size_t k = 0; k < t->n_norm; k++) {
        const tok_norm *n = &t->norm[k];
        tmp.len = 0;
        if (n->kind == TOK_NORM_PREPEND) {
            if (!out->len) continue; /* tokenizers' Prepend leaves an empty string alone */
            if (awq_buf_append(&tmp, n->to, n->to_len) || awq_buf_append(&tmp, out->data, out->len)) goto oom;
        } else {
            size_t i = 0, from = 0; /* copy runs between matches in one go */
            while (i < out->len) {
                if (out->len - i >= n->from_len && !memcmp(out->data + i, n->from, n->from_len)) {
                    if (awq_buf_append(&tmp, out->data + from, i - from) || awq_buf_append(&tmp, n->to, n->to_len)) goto oom;
                    i += n->from_len;
                    from = i;
                } else {
                    i++;
                }
            }
            if (awq_buf_append(&tmp, out->data + from, out->len - from)) goto oom;
        }
        awq_buf swap = *out;
        *out = tmp;
        tmp = swap;
    }
    awq_buf_free(&tmp);
    return 0;
oom:
    awq_buf_free(&tmp);
    return AWQ_ENOMEM;
}

/* ------------------------------------------------------------------ added-token split ---- */

/* Unicode White_Space, as Rust's char::is_whitespace (used by lstrip/rstrip). */
static bool is_ws(uint32_t c) {
    return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

/* A "word" character for single_word (tokenizers uses regex \w). Approximation: ASCII letters,
 * digits and '_', plus any non-ASCII code point outside whitespace and the general/CJK
 * punctuation blocks. Exact for the single_word=false tokens every Llama/Mistral file has. */
static bool is_word(uint32_t c) {
    if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    return !is_ws(c) && !(c >= 0x2000 && c <= 0x206f) && !(c >= 0x3000 && c <= 0x303f);
}

/* The code point that ends s[0..end) (end > 0; s valid UTF-8) and where it starts. */
static uint32_t last_cp(const char *s, size_t end, size_t *at) {
    size_t k = end - 1;
    while (k > 0 && ((unsigned char)s[k] & 0xc0) == 0x80) k--;
    uint32_t cp = 0;
    awq_utf8_decode(s + k, end - k, &cp);
    *at = k;
    return cp;
}

typedef int (*piece_fn)(void *ctx, const char *s, size_t len, int32_t id);

/* The leftmost-longest match of any pattern of m in s at or after pos: its index in t->added
 * and its start, or -1. */
static long find_match(const eng_tok *t, const tok_matcher *m, const char *s, size_t len, size_t pos, size_t *at) {
    for (size_t i = pos; i < len; i++) {
        unsigned char b = (unsigned char)s[i];
        for (uint32_t k = m->start[b]; k < m->start[b + 1]; k++) {
            const tok_added *a = &t->added[m->idx[k]];
            if (a->pattern_len <= len - i && !memcmp(s + i, a->pattern, a->pattern_len)) {
                *at = i;
                return (long)m->idx[k];
            }
        }
    }
    return -1;
}

/* added_vocabulary.rs find_matches: cut s into text pieces (id -1) and added tokens, calling fn
 * for each non-empty piece in order. */
static int split_added(const eng_tok *t, const tok_matcher *m, const char *s, size_t len, piece_fn fn, void *ctx) {
    size_t start_offset = 0, pos = 0;
    int rc;
    while (m->n && pos < len) {
        size_t at;
        long k = find_match(t, m, s, len, pos, &at);
        if (k < 0) break;
        const tok_added *a = &t->added[k];
        size_t start = at, stop = at + a->pattern_len;
        pos = stop; /* the search goes on after the match, even when it is skipped below */
        if (a->single_word) {
            size_t dummy;
            bool start_space = start == 0 || !is_word(last_cp(s, start, &dummy));
            uint32_t next = 0;
            bool stop_space = stop == len || (awq_utf8_decode(s + stop, len - stop, &next), !is_word(next));
            if (!start_space || !stop_space) continue;
        }
        if (a->lstrip) {
            size_t ns = start, at2;
            while (ns > 0 && is_ws(last_cp(s, ns, &at2))) ns = at2;
            start = ns > start_offset ? ns : start_offset;
        }
        if (a->rstrip) {
            uint32_t cp;
            size_t cl;
            while (stop < len && (cl = awq_utf8_decode(s + stop, len - stop, &cp)) && is_ws(cp)) stop += cl;
        }
        if (start < start_offset) start = start_offset; /* only when a pattern begins with spaces */
        if (start_offset < start && (rc = fn(ctx, s + start_offset, start - start_offset, -1))) return rc;
        if ((rc = fn(ctx, s + start, stop - start, a->id))) return rc;
        start_offset = stop;
        if (pos < stop) pos = stop;
    }
    if (start_offset < len && (rc = fn(ctx, s + start_offset, len - start_offset, -1))) return rc;
    return 0;
}

/* ------------------------------------------------------------------ encode ---- */

typedef struct enc_ctx {
    char *err;
    const eng_tok *t;
    tok_ids *ids;
    const char *text; /* the whole raw text, to know where a piece starts in it */
    bool raw_at0;     /* the current raw piece starts at byte 0 of the text */
    awq_buf norm;     /* the normalized text of the current raw piece */
    awq_buf pre;      /* the Metaspace pre-tokenizer's rewrite of a normalized piece */
} enc_ctx;

static int enc_oom(enc_ctx *c) { return awq_seterr(c->err, AWQ_ENOMEM, "tokenizer: out of memory"); }

/* pre_tokenizers/metaspace.rs: ' ' -> replacement; prepend the replacement unless the piece
 * already starts with it (always, or first when the piece starts the text); then either one
 * word, or (split) a word before each replacement character (MergedWithNext). */
static int metaspace_bpe(enc_ctx *c, const char *s, size_t len, bool at0) {
    const eng_tok *t = c->t;
    awq_buf *p = &c->pre;
    p->len = 0;
    bool starts = len >= t->ms_repl_len && !memcmp(s, t->ms_repl, t->ms_repl_len);
    /* a piece starting with ' ' starts with the replacement once ' ' is replaced */
    if (len && s[0] == ' ') starts = true;
    if (!starts && (t->ms_scheme == TOK_PREPEND_ALWAYS || (t->ms_scheme == TOK_PREPEND_FIRST && at0)))
        if (awq_buf_append(p, t->ms_repl, t->ms_repl_len)) return enc_oom(c);
    for (size_t i = 0, from = 0; i <= len; i++) {
        if (i == len || s[i] == ' ') {
            if (awq_buf_append(p, s + from, i - from) || (i < len && awq_buf_append(p, t->ms_repl, t->ms_repl_len)))
                return enc_oom(c);
            from = i + 1;
        }
    }
    if (!t->ms_split) return eng_tok_bpe(c->err, t, p->data, p->len, c->ids);
    size_t start = 0;
    for (size_t i = 1; i <= p->len; i++) {
        if (i == p->len || (p->len - i >= t->ms_repl_len && !memcmp(p->data + i, t->ms_repl, t->ms_repl_len))) {
            int rc = eng_tok_bpe(c->err, t, p->data + start, i - start, c->ids);
            if (rc) return rc;
            start = i;
        }
    }
    return 0;
}

/* A piece of normalized text: a normalized added token, or (pre-tokenized and) BPE. */
static int on_norm_piece(void *p, const char *s, size_t len, int32_t id) {
    enc_ctx *c = p;
    if (id >= 0) return eng_tok_ids_push(c->ids, id) ? enc_oom(c) : 0;
    if (c->t->ms_repl_len) return metaspace_bpe(c, s, len, c->raw_at0 && s == c->norm.data);
    return eng_tok_bpe(c->err, c->t, s, len, c->ids);
}

/* A piece of the raw text: a non-normalized added token, or text to normalize and split. */
static int on_raw_piece(void *p, const char *s, size_t len, int32_t id) {
    enc_ctx *c = p;
    if (id >= 0) return eng_tok_ids_push(c->ids, id) ? enc_oom(c) : 0;
    if (eng_tok_normalize(c->t, s, len, &c->norm)) return enc_oom(c);
    if (!c->norm.len) return 0;
    c->raw_at0 = s == c->text;
    /* split_added calls back with pieces of c->norm, which stays untouched until it returns */
    return split_added(c->t, &c->t->norm_match, c->norm.data, c->norm.len, on_norm_piece, c);
}

int eng_tok_encode(char *err, const eng_tok *t, const char *text, size_t len, bool add_bos, int32_t **ids_p, size_t *n_p) {
    *ids_p = NULL;
    *n_p = 0;
    if (len > ENG_TOK_TEXT_MAX)
        return awq_seterr(err, AWQ_ETOOBIG, "text of %zu bytes is over the %u-byte limit", len, ENG_TOK_TEXT_MAX);
    if (!text && len) return awq_seterr(err, AWQ_EINVAL, "text is NULL");
    size_t ok = len ? awq_utf8_complete_prefix(text, len, NULL) : 0;
    if (ok != len) return awq_seterr(err, AWQ_EUTF8, "text: invalid UTF-8 at byte %zu", ok);

    tok_ids ids = {0};
    enc_ctx c = {err, t, &ids, text, false, {0}, {0}};
    int rc = 0;
    for (size_t i = 0; add_bos && i < t->n_prefix && !rc; i++) rc = eng_tok_ids_push(&ids, t->prefix[i]);
    if (rc) rc = awq_seterr(err, AWQ_ENOMEM, "tokenizer: out of memory");
    if (!rc && len) rc = split_added(t, &t->raw_match, text, len, on_raw_piece, &c);
    for (size_t i = 0; !rc && add_bos && i < t->n_suffix; i++)
        if (eng_tok_ids_push(&ids, t->suffix[i])) rc = awq_seterr(err, AWQ_ENOMEM, "tokenizer: out of memory");
    /* an empty result still hands back a valid (freeable) pointer */
    if (!rc && !ids.v && !(ids.v = malloc(sizeof(int32_t)))) rc = awq_seterr(err, AWQ_ENOMEM, "tokenizer: out of memory");
    awq_buf_free(&c.norm);
    awq_buf_free(&c.pre);
    if (rc) {
        free(ids.v);
        return rc;
    }
    *ids_p = ids.v;
    *n_p = ids.n;
    return 0;
}

/* ------------------------------------------------------------------ decode ---- */

static int check_id(char *err, const eng_tok *t, int32_t id, size_t pos) {
    if (id < 0 || id >= t->n_vocab)
        return awq_seterr(err, AWQ_ERANGE, "token id %d at position %zu is out of range [0, %d)", (int)id, pos, (int)t->n_vocab);
    if (!t->piece[id]) return awq_seterr(err, AWQ_ERANGE, "token id %d at position %zu has no token in the vocabulary", (int)id, pos);
    return 0;
}

/* ByteFallback's end of a run: the bytes as text when they are valid UTF-8, else one U+FFFD per
 * byte (decoders/byte_fallback.rs). */
static int flush_run(awq_buf *out, awq_buf *run) {
    int rc = 0;
    if (!run->len) return 0;
    if (awq_utf8_valid(run->data, run->len)) {
        rc = awq_buf_append(out, run->data, run->len);
    } else {
        for (size_t i = 0; i < run->len && !rc; i++) rc = awq_buf_append(out, REPLACEMENT_CHAR, 3);
    }
    run->len = 0;
    return rc;
}

/* Bytes of the Strip character at the start of s, or 0. */
static size_t strip_len(const eng_tok *t, const char *s, size_t len) {
    uint32_t cp;
    size_t cl = len ? awq_utf8_decode(s, len, &cp) : 0;
    return cl && cp == t->dec_strip_cp ? cl : 0;
}

int eng_tok_decode(char *err, const eng_tok *t, const int32_t *ids, size_t n, bool skip_special, char **text_p,
                   size_t *len_p) {
    *text_p = NULL;
    *len_p = 0;
    if (n && !ids) return awq_seterr(err, AWQ_EINVAL, "ids is NULL");
    awq_buf out = {0}, run = {0}, tmp = {0};
    bool first = true;
    int rc = awq_buf_append(&out, "", 0); /* so that even "" comes back as a malloc'ed string */
    for (size_t i = 0; i < n && !rc; i++) {
        int32_t id = ids[i];
        if ((rc = check_id(err, t, id, i))) break;
        if (skip_special && (t->flags[id] & TOK_F_SPECIAL)) continue;
        if (t->dec_join_space) { /* no decoder: tokens joined by spaces */
            if ((!first && awq_buf_append(&out, " ", 1)) || awq_buf_append(&out, t->piece[id], t->piece_len[id])) rc = AWQ_ENOMEM;
            first = false;
            continue;
        }
        bool was_first = first;
        first = false;
        if (t->dec_byte[id] >= 0) {
            char b = (char)t->dec_byte[id];
            rc = awq_buf_append(&run, &b, 1);
            continue;
        }
        if (flush_run(&out, &run)) {
            rc = AWQ_ENOMEM;
        } else if (was_first && t->dec_first_differs) { /* Metaspace: the first token apart */
            int byte;
            if (eng_tok_dec_token(t, t->piece[id], t->piece_len[id], true, &tmp, &byte) ||
                awq_buf_append(&out, tmp.data ? tmp.data : "", tmp.len))
                rc = AWQ_ENOMEM;
        } else if (awq_buf_append(&out, t->dec_text[id], t->dec_len[id])) {
            rc = AWQ_ENOMEM;
        }
    }
    awq_buf_free(&tmp);
    if (!rc && flush_run(&out, &run)) rc = AWQ_ENOMEM;
    awq_buf_free(&run);
    if (rc) {
        awq_buf_free(&out);
        return rc == AWQ_ENOMEM ? awq_seterr(err, rc, "tokenizer: out of memory") : rc;
    }
    if (t->dec_strip) {
        size_t k = strip_len(t, out.data, out.len);
        memmove(out.data, out.data + k, out.len - k + 1);
        out.len -= k;
    }
    *len_p = out.len;
    *text_p = awq_buf_take(&out);
    return 0;
}

/* ------------------------------------------------------------------ stream decode ---- */

void eng_tok_stream_init(eng_tok_stream *s, const eng_tok *t, bool skip_special) {
    memset(s, 0, sizeof *s);
    s->tok = t;
    s->skip_special = skip_special;
    s->first = true;
}

/* Append text, dropping the decoder's leading Strip character from the very first text. */
static int stream_emit(eng_tok_stream *s, awq_buf *out, const char *text, size_t len) {
    if (!len) return 0;
    if (s->first && s->tok->dec_strip) {
        size_t k = strip_len(s->tok, text, len);
        text += k;
        len -= k;
    }
    s->first = false;
    return awq_buf_append(out, text, len) ? AWQ_ENOMEM : 0;
}

/* Emit every complete character held back; a byte that can start no valid sequence becomes
 * U+FFFD. Only an incomplete (possibly valid) tail stays pending. */
static int stream_drain(eng_tok_stream *s, awq_buf *out) {
    while (s->n_pending) {
        bool incomplete;
        size_t p = awq_utf8_complete_prefix(s->pending, s->n_pending, &incomplete);
        if (p && stream_emit(s, out, s->pending, p)) return AWQ_ENOMEM;
        memmove(s->pending, s->pending + p, s->n_pending - p);
        s->n_pending -= p;
        if (!s->n_pending || incomplete) return 0;
        if (stream_emit(s, out, REPLACEMENT_CHAR, 3)) return AWQ_ENOMEM;
        memmove(s->pending, s->pending + 1, --s->n_pending);
    }
    return 0;
}

/* out is the caller's buffer, appended to. */
int eng_tok_stream_push(eng_tok_stream *s, int32_t id, awq_buf *out) {
    const eng_tok *t = s->tok;
    int rc = check_id(NULL, t, id, 0);
    if (rc) return rc;
    if (s->skip_special && (t->flags[id] & TOK_F_SPECIAL)) return 0; /* as if never pushed */
    if (t->dec_join_space) {
        if (!s->first && awq_buf_append(out, " ", 1)) return AWQ_ENOMEM;
        s->first = false;
        return awq_buf_append(out, t->piece[id], t->piece_len[id]) ? AWQ_ENOMEM : 0;
    }
    /* with a Metaspace decoder `first` means "no token yet" (Strip is refused with it) */
    bool was_first = s->first;
    if (t->dec_first_differs) s->first = false;
    if (t->dec_byte[id] >= 0) {
        if (s->n_pending >= sizeof s->pending) return AWQ_EINTERNAL; /* drain keeps at most 3 */
        s->pending[s->n_pending++] = (char)t->dec_byte[id];
        return stream_drain(s, out);
    }
    if ((rc = eng_tok_stream_flush(s, out))) return rc;
    if (was_first && t->dec_first_differs) {
        awq_buf tmp = {0};
        int byte;
        rc = eng_tok_dec_token(t, t->piece[id], t->piece_len[id], true, &tmp, &byte);
        if (!rc) rc = stream_emit(s, out, tmp.data ? tmp.data : "", tmp.len);
        awq_buf_free(&tmp);
        return rc;
    }
    return stream_emit(s, out, t->dec_text[id], t->dec_len[id]);
}

int eng_tok_stream_flush(eng_tok_stream *s, awq_buf *out) {
    for (size_t i = 0; i < s->n_pending; i++)
        if (stream_emit(s, out, REPLACEMENT_CHAR, 3)) return AWQ_ENOMEM;
    s->n_pending = 0;
    return 0;
}
