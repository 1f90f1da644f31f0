/* fuzz_tok_json - loading tokenizer.json and tokenizer_config.json from arbitrary bytes.
 *
 * The input is tried twice: as a tokenizer.json (and when it loads, a fixed text with added
 * tokens, spaces and characters needing byte fallback is encoded, decoded and stream-decoded),
 * and as the tokenizer_config.json of a small valid tokenizer.json. Nothing may crash or leak;
 * a failed load must leave *out NULL and say why.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok.h"

static const char TEXT[] = "Hello <s>world</s>  \xe6\x97\xa5\xe6\x9c\xac <unk>\n\xf0\x9f\x98\x80 a b ab";

static const char SMALL[] =
    "{\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true,\"normalized\":false},"
    "{\"id\":1,\"content\":\"<s>\",\"special\":true,\"normalized\":false},"
    "{\"id\":2,\"content\":\"</s>\",\"special\":true,\"normalized\":false}],"
    "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\xe2\x96\x81\"},"
    "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\xe2\x96\x81\"}]},"
    "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"vocab\":{\"<unk>\":0,\"<s>\":1,\"</s>\":2,"
    "\"\xe2\x96\x81\":3,\"a\":4,\"\xe2\x96\x81" "a\":5},\"merges\":[\"\xe2\x96\x81 a\"]}}";

static void exercise(const eng_tok *t) {
    char err[AWQ_ERR_LEN];
    int32_t *ids = NULL;
    size_t n = 0;
    if (eng_tok_encode(err, t, TEXT, sizeof TEXT - 1, true, &ids, &n)) return; /* e.g. no unk_token */
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= eng_tok_vocab_size(t) || !eng_tok_piece(t, ids[i])) abort();
    char *text = NULL;
    size_t len = 0;
    if (eng_tok_decode(err, t, ids, n, false, &text, &len)) abort(); /* its own ids always decode */
    eng_tok_stream st;
    eng_tok_stream_init(&st, t, true);
    awq_buf out = {0};
    for (size_t i = 0; i < n; i++)
        if (eng_tok_stream_push(&st, ids[i], &out)) abort();
    if (eng_tok_stream_flush(&st, &out)) abort();
    (void)eng_tok_bos_text(t);
    (void)eng_tok_eos_text(t);
    (void)eng_tok_chat_template(t);
    awq_buf_free(&out);
    free(text);
    free(ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[AWQ_ERR_LEN];
    eng_tok *t = (eng_tok *)1;
    err[0] = 0;
    int rc = eng_tok_load_mem(err, (const char *)data, size, NULL, 0, &t);
    if (rc && (t != NULL || !err[0])) abort();
    if (!rc) {
        exercise(t);
        eng_tok_free(t);
    }
    t = (eng_tok *)1;
    err[0] = 0;
    rc = eng_tok_load_mem(err, SMALL, sizeof SMALL - 1, (const char *)data, size, &t);
    if (rc && (t != NULL || !err[0])) abort();
    if (!rc) {
        exercise(t);
        eng_tok_free(t);
    }
    return 0;
}
