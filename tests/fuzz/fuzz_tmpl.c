/* fuzz_tmpl.c - libFuzzer target for the chat-template interpreter (threat model row 12: a
 * hostile tokenizer_config.json brings its own chat_template). Input: template source, a NUL
 * byte, then a messages JSON array (no NUL: a default conversation). The template is compiled;
 * when it compiles and the messages parse, it is rendered with and without the generation
 * prompt. Every step must succeed or fail with an error message, never crash, hang past the
 * step/iteration/output/memory limits, or leak; a success must give a NUL-terminated output of
 * the reported length within ENG_TMPL_OUT_MAX. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tmpl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_out(const char *out, size_t len) {
    if (!out || len > ENG_TMPL_OUT_MAX || out[len] != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char def[] = "[{\"role\":\"system\",\"content\":\"sys\"},{\"role\":\"user\",\"content\":\" hi \"},"
                              "{\"role\":\"assistant\",\"content\":\"yo\"},{\"role\":\"user\",\"content\":\"日本\"}]";
    const char *src = (const char *)data;
    const uint8_t *nul = memchr(data, 0, size);
    size_t src_len = nul ? (size_t)(nul - data) : size;
    const char *js = nul ? (const char *)nul + 1 : def;
    size_t js_len = nul ? size - src_len - 1 : sizeof def - 1;

    char err[AWQ_ERR_LEN];
    eng_tmpl *t = NULL;
    eng_msg *msgs = NULL;
    size_t n = 0;
    err[0] = 0;
    if (eng_msgs_from_json(err, js, js_len, &msgs, &n) == 0) {
        for (size_t i = 0; i < n; i++)
            if (!msgs[i].role || !msgs[i].content) abort();
    } else if (msgs) {
        abort(); /* a failure leaves nothing behind */
    }
    err[0] = 0;
    if (eng_tmpl_compile(err, src, src_len, &t) != 0) {
        if (t || !err[0]) abort();
        free(msgs);
        return 0;
    }
    for (int agp = 0; agp < 2 && msgs; agp++) {
        char *out = NULL;
        size_t len = 0;
        err[0] = 0;
        int rc = eng_tmpl_render(err, t, msgs, n, "<s>", "</s>", agp, &out, &len);
        if (rc == 0) check_out(out, len);
        else if (out || !err[0]) abort();
        free(out);
    }
    eng_tmpl_free(t);
    free(msgs);
    return 0;
}
