/* fuzz_ini.c - libFuzzer target: arbitrary bytes as a settings file through cfg_load_string
 * (inih plus our reader, handler and value parsers). Whatever loads must also print, read back
 * to the same settings, and save + reload identically; any crash, leak, UB or mismatch is a
 * finding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static cfg c, back;
    char err[AWQ_ERR_LEN];
    cfg_defaults(&c);
    if (cfg_load_string(err, "fuzz.ini", (const char *)data, size, &c) != 0) {
        if (!memchr(err, 0, sizeof err)) abort(); /* the message must be terminated */
        return 0;
    }
    /* a loaded file prints as INI that loads back to equal settings */
    awq_buf out = {0};
    if (cfg_format(&c, false, &out) != 0) abort();
    cfg_defaults(&back);
    if (cfg_load_string(err, "formatted", out.data, out.len, &back) != 0) abort();
    size_t n;
    const cfg_keyinfo *k = cfg_keys(&n);
    for (size_t i = 0; i < n; i++) {
        char key[CFG_KEY_MAX], a[CFG_VALUE_MAX], b[CFG_VALUE_MAX];
        strcpy(key, k[i].section);
        strcat(key, ".");
        strcat(key, k[i].name);
        if (cfg_get(err, &c, key, a, sizeof a) || cfg_get(err, &back, key, b, sizeof b)) abort();
        if (strcmp(a, b) != 0) abort();
        /* and every value cfg_get prints is accepted by cfg_set */
        if (cfg_set(err, &back, key, a) != 0) abort();
    }
    awq_buf_free(&out);
    return 0;
}
