/* fuzz_tok_encode - the tokenizer's encode, decode and stream decoder on arbitrary text.
 *
 * Two small tokenizers are loaded once: Mistral-shaped (Prepend+Replace normalizer, BPE with
 * byte fallback and merges, added tokens with every flag, the Mistral decoder) and the same
 * vocabulary with a Metaspace pre-tokenizer and decoder. For each input and each of them:
 *  - invalid UTF-8 must be refused with AWQ_EUTF8, valid UTF-8 must encode;
 *  - the stream decoder's output must equal decode for the ids encode produced;
 *  - decode(encode(text)) == text (Mistral pipeline) whenever the text holds no "▁" and no
 *    added token (the only things that pipeline does not give back unchanged);
 *  - the input read as 16-bit ids is decoded and streamed too (errors allowed, no crash).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok.h"

#define V "\xe2\x96\x81"
static const char TOKENIZER[] =
    "{\"added_tokens\":["
    "{\"id\":0,\"content\":\"<unk>\",\"special\":true,\"normalized\":false},"
    "{\"id\":1,\"content\":\"<s>\",\"special\":true,\"normalized\":false},"
    "{\"id\":2,\"content\":\"</s>\",\"special\":true,\"normalized\":false},"
    "{\"id\":300,\"content\":\"<t>\",\"lstrip\":true,\"rstrip\":true,\"normalized\":false},"
    "{\"id\":301,\"content\":\"ab\",\"normalized\":true},"
    "{\"id\":302,\"content\":\"dd\",\"single_word\":true,\"normalized\":false}],"
    "\"normalizer\":%s,\"pre_tokenizer\":%s,\"decoder\":%s,"
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":{\"id\":\"<s>\",\"type_id\":0}},"
    "{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_tokens\":{\"<s>\":{\"id\":\"<s>\",\"ids\":[1]}}},"
    "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"fuse_unk\":true,\"byte_fallback\":true,\"vocab\":{"
    "\"<unk>\":0,\"<s>\":1,\"</s>\":2,\"" V "\":259,\"a\":260,\"b\":261,\"c\":262,\"" V "a\":263,\"ab\":264,"
    "\"" V "ab\":265,\"bc\":266,\"abc\":267,\"" V "b\":268,\"aa\":269,\"aaaa\":270,\"d\":271,\"e\":272,"
    "\"" V V "\":273,\"\xc3\xa9\":274,\"\xe6\x97\xa5\":275,\"" V "\xe6\x97\xa5\":276%s},"
    "\"merges\":[\"" V " a\",\"a b\",\"a a\",\"aa aa\",\"b c\",\"ab c\",\"" V " ab\",\"" V " b\",\"" V " " V "\","
    "\"" V " \xe6\x97\xa5\"]}}";

/* The Mistral pipeline, and the non-legacy Llama one (Metaspace pre-tokenizer and decoder). */
static const char *const PIPES[2][3] = {
    {"{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"" V "\"},"
     "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"" V "\"}]}",
     "null",
     "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"" V "\"},"
     "\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \","
     "\"start\":1,\"stop\":0}]}"},
    {"null", "{\"type\":\"Metaspace\",\"replacement\":\"" V "\",\"prepend_scheme\":\"first\",\"split\":true}",
     "{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Metaspace\",\"replacement\":\"" V "\","
     "\"prepend_scheme\":\"first\"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"}]}"},
};

static eng_tok *toks[2];

static eng_tok *build(int k) {
    char bytes[256 * 16];
    size_t o = 0;
    for (int i = 0; i < 256; i++) o += (size_t)snprintf(bytes + o, sizeof bytes - o, ",\"<0x%02X>\":%d", i, 3 + i);
    size_t cap = sizeof TOKENIZER + o + 1024;
    char *json = malloc(cap);
    if (!json) abort();
    int n = snprintf(json, cap, TOKENIZER, PIPES[k][0], PIPES[k][1], PIPES[k][2], bytes);
    char err[AWQ_ERR_LEN];
    eng_tok *t = NULL;
    if (n < 0 || (size_t)n >= cap || eng_tok_load_mem(err, json, (size_t)n, NULL, 0, &t)) {
        fprintf(stderr, "fuzz_tok_encode: embedded tokenizer %d does not load: %s\n", k, err);
        abort();
    }
    free(json);
    return t;
}

/* Stream-decode ids; returns the malloc'ed text, or NULL on an error. */
static char *stream(const eng_tok *tok, const int32_t *ids, size_t n, bool skip, size_t *len) {
    eng_tok_stream st;
    eng_tok_stream_init(&st, tok, skip);
    awq_buf out = {0};
    int rc = awq_buf_append(&out, "", 0);
    for (size_t i = 0; i < n && !rc; i++) rc = eng_tok_stream_push(&st, ids[i], &out);
    if (!rc) rc = eng_tok_stream_flush(&st, &out);
    if (rc) {
        awq_buf_free(&out);
        return NULL;
    }
    *len = out.len;
    return awq_buf_take(&out);
}

static bool holds(const uint8_t *d, size_t n, const char *s) {
    size_t k = strlen(s);
    for (size_t i = 0; i + k <= n; i++)
        if (!memcmp(d + i, s, k)) return true;
    return false;
}

static void one(const eng_tok *tok, bool round_trip, const uint8_t *data, size_t size) {
    char err[AWQ_ERR_LEN];
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = eng_tok_encode(err, tok, (const char *)data, size, size & 1, &ids, &n);
    bool valid = awq_utf8_valid((const char *)data, size);
    if (!valid) {
        if (rc != AWQ_EUTF8) abort();
        return;
    }
    if (rc) abort(); /* valid UTF-8 always encodes: every byte has a fallback token */
    for (int skip = 0; skip < 2; skip++) {
        char *text = NULL, *st;
        size_t len = 0, slen = 0;
        if (eng_tok_decode(err, tok, ids, n, skip, &text, &len)) abort();
        st = stream(tok, ids, n, skip, &slen);
        if (!st || slen != len || memcmp(st, text, len)) abort(); /* stream == decode */
        if (round_trip && skip && !holds(data, size, V) && !holds(data, size, "<unk>") && !holds(data, size, "<s>") &&
            !holds(data, size, "</s>") && !holds(data, size, "<t>") && !holds(data, size, "ab") && !holds(data, size, "dd"))
            if (len != size || memcmp(text, data, size)) abort(); /* round trip */
        free(st);
        free(text);
    }
    free(ids);

    /* the input as ids: any value, in or out of range */
    size_t m = size / 2;
    int32_t *raw = malloc((m ? m : 1) * sizeof *raw);
    if (!raw) return;
    for (size_t i = 0; i < m; i++) raw[i] = (int32_t)(data[2 * i] | (data[2 * i + 1] << 8)) % 320 - 4;
    char *text = NULL, *st;
    size_t len = 0, slen = 0;
    rc = eng_tok_decode(err, tok, raw, m, size & 2, &text, &len);
    st = stream(tok, raw, m, size & 2, &slen);
    if (!rc != (st != NULL)) abort(); /* both refuse the same ids */
    if (text && !awq_utf8_valid(text, len)) abort(); /* decode always gives valid UTF-8 */
    if (st && !awq_utf8_valid(st, slen)) abort();
    free(text);
    free(st);
    free(raw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!toks[0]) {
        toks[0] = build(0);
        toks[1] = build(1);
    }
    /* the round trip holds for the Mistral pipeline only: Metaspace's "first" scheme and its
     * decoder drop a leading space */
    one(toks[0], true, data, size);
    one(toks[1], false, data, size);
    return 0;
}
