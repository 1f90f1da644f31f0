/* fuzz_st_header.c - libFuzzer target for the safetensors header parser (threat model row 11).
 * Input: a whole shard file image. eng_st_parse must accept or refuse it with an error, never
 * crash, read out of bounds or leak; an accepted file's tensors must satisfy the invariants the
 * loader relies on (spans inside the data region, sorted, non-overlapping when non-empty). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "st.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[AWQ_ERR_LEN];
    eng_st_file *f = NULL;
    if (eng_st_parse(err, "fuzz.safetensors", data, size, &f) != 0) {
        if (f || !memchr(err, 0, sizeof err)) abort(); /* no half result; message terminated */
        return 0;
    }
    for (int i = 0; i < f->n; i++) {
        const eng_st_tensor *t = &f->t[i];
        if (t->begin > t->end || t->end > f->data_len || f->data_off + f->data_len != size) abort();
        if (i && strcmp(f->t[i - 1].name, t->name) >= 0) abort();
        if (eng_st_find(f, t->name) != t) abort();
        /* touch every byte of the span: ASan reports any read outside the input */
        volatile uint8_t x = 0;
        for (size_t b = t->begin; b < t->end; b++) x ^= data[f->data_off + b];
        (void)x;
    }
    eng_st_free(f);
    return 0;
}
