/* test_common.c - common/: error names, fp16 conversion, UTF-8 checks, the byte buffer. */
#include <math.h>

#include "awq_err.h"
#include "awq_util.h"
#include "harness.h"

int main(void) {
    CASE("common-1.1", "error names round-trip and are stable");
    for (int c = 0; c >= AWQ_ERR_MIN; c--) CHECK_EQ(awq_errcode(awq_errname(c)), c);
    CHECK_STR(awq_errname(AWQ_EBUSY), "busy");
    CHECK_STR(awq_strerror(12345), "unknown error");
    char err[AWQ_ERR_LEN];
    CHECK_EQ(awq_seterr(err, AWQ_EFORMAT, "%s: %d", "x", 7), AWQ_EFORMAT);
    CHECK_STR(err, "x: 7");

    CASE("common-2.1", "fp16 conversion: exact values, rounding, specials");
    CHECK_EQ(awq_f32_to_f16(1.0f), 0x3c00);
    CHECK_EQ(awq_f32_to_f16(-2.0f), 0xc000);
    CHECK_EQ(awq_f32_to_f16(65504.0f), 0x7bff);
    CHECK_EQ(awq_f32_to_f16(1e6f), 0x7c00);
    CHECK_EQ(awq_f32_to_f16(5.9604645e-8f), 0x0001); /* smallest subnormal */
    CHECK_EQ(awq_f32_to_f16(1.0f + 1.0f / 2048), 0x3c00); /* tie to even */
    CHECK_EQ(awq_f32_to_f16(1.0f + 3.0f / 2048), 0x3c02);
    CHECK(isnan(awq_f16_to_f32(0x7e00)));
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* NaN payloads */
        if (awq_f32_to_f16(awq_f16_to_f32((uint16_t)h)) != h) bad++;
    }
    CHECK_EQ(bad, 0);

    CASE("common-3.1", "UTF-8 validation");
    CHECK(awq_utf8_valid("h\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80", 12));
    CHECK(!awq_utf8_valid("\xc0\xaf", 2));         /* overlong */
    CHECK(!awq_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
    CHECK(!awq_utf8_valid("\xf4\x90\x80\x80", 4)); /* > U+10FFFF */
    CHECK(!awq_utf8_valid("\xe6\x97", 2));         /* truncated */
    bool inc;
    CHECK_EQ(awq_utf8_complete_prefix("ab\xe6\x97", 4, &inc), 2);
    CHECK(inc);
    CHECK_EQ(awq_utf8_complete_prefix("ab\xff", 3, &inc), 2);
    CHECK(!inc);

    CASE("common-4.1", "buffer append, printf and JSON strings");
    awq_buf b = {0};
    CHECK_EQ(awq_buf_printf(&b, "%d-%s", 42, "x"), 0);
    CHECK_EQ(awq_buf_json_str(&b, "a\"\n\x01", 4), 0);
    CHECK_STR(b.data, "42-x\"a\\\"\\n\\u0001\"");
    char *s = awq_buf_take(&b);
    CHECK(b.data == NULL && b.len == 0);
    free(s);
    awq_buf_free(&b);
    return h_finish();
}
