/* test_st.c - the safetensors header parser (engine/st.c): valid headers (padding, sorting,
 * zero-size tensors, alignment recorded) and every rejection of a hostile header, message text
 * included (threat model row 11). Shard images are built in memory. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "st.h"

static char err[AWQ_ERR_LEN];

/* A shard image: 8-byte LE length of hdr, hdr, then data_len bytes of 0xAB. */
static uint8_t *image(const char *hdr, size_t data_len, size_t *len) {
    size_t hl = strlen(hdr);
    *len = 8 + hl + data_len;
    uint8_t *b = malloc(*len);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(b + 8, hdr, hl);
    memset(b + 8 + hl, 0xAB, data_len);
    return b;
}

/* Parse hdr with data_len data bytes; returns the code, leaves the message in err. */
static int try_hdr(const char *hdr, size_t data_len) {
    size_t len;
    uint8_t *b = image(hdr, data_len, &len);
    eng_st_file *f = NULL;
    err[0] = 0;
    int rc = eng_st_parse(err, "s.safetensors", b, len, &f);
    if (rc == 0 && !f) rc = 999;
    if (rc != 0 && f) rc = 998; /* never a half-built result */
    eng_st_free(f);
    free(b);
    return rc;
}

int main(void) {
    size_t len;
    eng_st_file *f = NULL;

    CASE("st-1.1", "a valid header with two tensors parses, sorted by name");
    {
        /* 16 bytes of F16 [2,4] at 0, 8 bytes of I32 [2] at 16; header padded to 8. */
        const char *h = "{\"__metadata__\":{\"format\":\"pt\"},\"z\":{\"dtype\":\"F16\",\"shape\":[2,4],"
                        "\"data_offsets\":[0,16]},\"a\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[16,24]}}";
        char hdr[512];
        snprintf(hdr, sizeof hdr, "%s", h);
        while (strlen(hdr) % 8) strcat(hdr, " ");
        uint8_t *b = image(hdr, 24, &len);
        int rc = eng_st_parse(err, "s.safetensors", b, len, &f);
        CHECK_EQ(rc, 0);
        CHECK(f != NULL);
        if (f) {
            CHECK_EQ(f->n, 2);
            CHECK_STR(f->t[0].name, "a");
            CHECK_STR(f->t[1].name, "z");
            CHECK_EQ(f->t[0].dtype, ENG_DT_I32);
            CHECK_EQ(f->t[1].ndim, 2);
            CHECK_EQ(f->t[1].shape[0], 2);
            CHECK_EQ(f->t[1].shape[1], 4);
            CHECK_EQ(f->t[0].begin, 16);
            CHECK_EQ(f->t[0].end, 24);
            CHECK_EQ(f->data_off, 8 + strlen(hdr));
            CHECK_EQ(f->data_len, 24);
            CHECK(f->t[0].aligned && f->t[1].aligned);
            CHECK(eng_st_find(f, "z") == &f->t[1]);
            CHECK(eng_st_find(f, "q") == NULL);
        }
        eng_st_free(f);
        free(b);
    }

    CASE("st-1.2", "misalignment is recorded, not rejected; zero-size and scalar tensors are valid");
    {
        /* header of 61 bytes -> data at 69: an F16 at data offset 0 is misaligned */
        const char *h = "{\"w\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[0,2]}}";
        uint8_t *b = image(h, 2, &len);
        CHECK_EQ(eng_st_parse(err, "s", b, len, &f), 0);
        if (f) CHECK_EQ(f->t[0].aligned, (8 + strlen(h)) % 2 == 0);
        eng_st_free(f);
        free(b);
        CHECK_EQ(try_hdr("{\"e\":{\"dtype\":\"F32\",\"shape\":[0,5],\"data_offsets\":[4,4]},"
                         "\"s\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1]}}", 4),
                 0);
        CHECK_EQ(try_hdr("{}", 0), 0);
        CHECK_EQ(try_hdr("{\"x\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[0,2]}}  \n", 2), 0);
    }

    CASE("st-2.1", "a file shorter than the 8-byte length is refused");
    {
        uint8_t b[5] = {0};
        CHECK_EQ(eng_st_parse(err, "s.safetensors", b, 5, &f), AWQ_EFORMAT);
        CHECK_CONTAINS(err, "s.safetensors: file too short (5 bytes)");
        CHECK_EQ(eng_st_parse(err, "s.safetensors", NULL, 0, &f), AWQ_EFORMAT);
    }

    CASE("st-2.2", "header length past the end of the file / above 100 MB");
    {
        uint8_t b[16] = {0};
        b[0] = 100; /* 100 bytes of header in a 16-byte file */
        CHECK_EQ(eng_st_parse(err, "s.safetensors", b, 16, &f), AWQ_EFORMAT);
        CHECK_CONTAINS(err, "s.safetensors: header length 100 past end of file (size 16)");
        uint64_t big = 100u * 1024u * 1024u + 1;
        for (int i = 0; i < 8; i++) b[i] = (uint8_t)(big >> (8 * i));
        CHECK_EQ(eng_st_parse(err, "s.safetensors", b, 16, &f), AWQ_EFORMAT);
        CHECK_CONTAINS(err, "header length 104857601 exceeds the 100 MB cap");
        memset(b, 0xff, 8); /* 2^64-1: must not wrap around */
        CHECK_EQ(eng_st_parse(err, "s.safetensors", b, 16, &f), AWQ_EFORMAT);
        CHECK_CONTAINS(err, "exceeds the 100 MB cap");
    }

    CASE("st-2.3", "invalid JSON, not an object, trailing garbage, NUL, bad UTF-8");
    CHECK_EQ(try_hdr("{\"a\":", 0), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "s.safetensors: header is not valid JSON (near byte");
    CHECK_EQ(try_hdr("[1,2]", 0), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "header is not a JSON object");
    CHECK_EQ(try_hdr("{} x", 0), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "trailing bytes after the JSON (byte 3)");
    CHECK_EQ(try_hdr("{\"\xff\":1}", 0), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "not valid UTF-8");
    {
        uint8_t *b = image("{}      ", 0, &len);
        b[10] = 0;
        CHECK_EQ(eng_st_parse(err, "s", b, len, &f), AWQ_EFORMAT);
        CHECK_CONTAINS(err, "NUL byte");
        free(b);
    }
    CHECK_EQ(try_hdr("{\"__metadata__\":[1]}", 0), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "__metadata__ is not an object");
    CHECK_EQ(try_hdr("{\"\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "empty name");

    CASE("st-2.4", "entry fields: not an object, dtype unknown / unsupported / missing, rank");
    CHECK_EQ(try_hdr("{\"w\":5}", 0), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "s.safetensors: w: header entry is not an object");
    CHECK_EQ(try_hdr("{\"w\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "w: unknown dtype 'Q4'");
    CHECK_EQ(try_hdr("{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1), AWQ_EUNSUPPORTED);
    CHECK_CONTAINS(err, "w: dtype F8_E4M3 not supported");
    CHECK_EQ(try_hdr("{\"w\":{\"shape\":[1],\"data_offsets\":[0,1]}}", 1), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "w: dtype missing");
    CHECK_EQ(try_hdr("{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,1]}}", 1), AWQ_EUNSUPPORTED);
    CHECK_CONTAINS(err, "w: rank 5 above the supported 4");
    CHECK_EQ(try_hdr("{\"w\":{\"dtype\":\"U8\",\"shape\":3,\"data_offsets\":[0,1]}}", 1), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "w: shape missing or not an array");

    CASE("st-2.5", "shape dims: negative, fractional, non-numeric, overflowing product");
    CHECK_EQ(try_hdr("{\"w\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,1]}}", 1), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "w: shape[0] is not a non-negative integer");
    CHECK_EQ(try_hdr("{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1.5],\"data_offsets\":[0,1]}}", 1), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "w: shape[1] is not a non-negative integer");
    CHECK_EQ(try_hdr("{\"w\":{\"dtype\":\"U8\",\"shape\":[\"1\"],\"data_offsets\":[0,1]}}", 1), AWQ_EFORMAT);
    CHECK_EQ(try_hdr("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,0]}}", 0),
             AWQ_EFORMAT);
    CHECK_CONTAINS(err, "w: shape product overflows");
    /* product fits in 64 bits but times the dtype size does not */
    CHECK_EQ(try_hdr("{\"w\":{\"dtype\":\"F64\",\"shape\":[4294967296,536870912],\"data_offsets\":[0,0]}}", 0),
             AWQ_EFORMAT);
    CHECK_CONTAINS(err, "w: shape product overflows");
    CHECK_EQ(try_hdr("{\"w\":{\"dtype\":\"U8\",\"shape\":[1e300],\"data_offsets\":[0,1]}}", 1), AWQ_EFORMAT);

    CASE("st-2.6", "data_offsets: malformed, reversed, past the end, size mismatch");
    CHECK_EQ(try_hdr("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0]}}", 1), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "w: data_offsets must be [begin, end]");
    CHECK_EQ(try_hdr("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,-1]}}", 1), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "data_offsets must be");
    CHECK_EQ(try_hdr("{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[2,1]}}", 4), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "w: data_offsets [2,1) end before begin");
    {
        const char *h = "{\"w\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[4,12]}}";
        char want[160];
        size_t off = 8 + strlen(h);
        snprintf(want, sizeof want, "s.safetensors: w: data span [%zu,%zu) past end of file (size %zu)", off + 4,
                 off + 12, off + 10);
        CHECK_EQ(try_hdr(h, 10), AWQ_EFORMAT);
        CHECK_CONTAINS(err, want);
    }
    CHECK_EQ(try_hdr("{\"w\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,4]}}", 4), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "w: 4 bytes of data but dtype F16 x shape needs 6");

    CASE("st-2.7", "overlapping spans and duplicate names");
    CHECK_EQ(try_hdr("{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
                     "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[6,10]}}", 16),
             AWQ_EFORMAT);
    CHECK_CONTAINS(err, "s.safetensors: b: data span [6,10) overlaps a [0,8)");
    /* touching spans are fine; a zero-size span inside another is fine */
    CHECK_EQ(try_hdr("{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
                     "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[8,12]},"
                     "\"c\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,4]}}", 16),
             0);
    CHECK_EQ(try_hdr("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                     "\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}", 8),
             AWQ_EFORMAT);
    CHECK_CONTAINS(err, "s.safetensors: a: tensor named twice in the header");

    CASE("st-3.1", "dtype table");
    CHECK_EQ(eng_dtype_size(ENG_DT_F16), 2);
    CHECK_EQ(eng_dtype_size(ENG_DT_I32), 4);
    CHECK_EQ(eng_dtype_size(ENG_DT_F64), 8);
    CHECK_EQ(eng_dtype_size(ENG_DT_BOOL), 1);
    CHECK_STR(eng_dtype_name(ENG_DT_BF16), "BF16");
    for (int i = 0; i < ENG_DT_COUNT; i++) CHECK_EQ(eng_dtype_parse(eng_dtype_name((eng_dtype)i)), i);
    CHECK_EQ(eng_dtype_parse("f16"), -1);

    return h_finish();
}
