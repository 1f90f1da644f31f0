/* awq_util.h - small pure helpers shared by every module: fp16 conversion, UTF-8 checks,
 * overflow-checked size arithmetic and a growable byte buffer.
 *
 * Thread safety: all functions are reentrant; an awq_buf belongs to one thread at a time.
 */
#ifndef AWQ_UTIL_H
#define AWQ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "awq_err.h"

/* ---- fp16 <-> fp32 (IEEE binary16, round to nearest even) ---- */
float awq_f16_to_f32(uint16_t h);
uint16_t awq_f32_to_f16(float f);
/* bf16 is the top half of an fp32. */
float awq_bf16_to_f32(uint16_t h);

/* ---- UTF-8 ---- */
/* True when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool awq_utf8_valid(const char *s, size_t len);
/* Length of the longest prefix of s[0..len) that ends on a complete code point boundary and is
 * valid; bytes after it are either an incomplete sequence (when *incomplete is set) or invalid. */
size_t awq_utf8_complete_prefix(const char *s, size_t len, bool *incomplete);
/* Decode one code point at s (len bytes available); returns bytes used (1-4) and sets *cp, or 0
 * on an invalid or truncated sequence. */
size_t awq_utf8_decode(const char *s, size_t len, uint32_t *cp);
/* Encode cp into out (4 bytes room); returns bytes written (0 for an invalid code point). */
size_t awq_utf8_encode(uint32_t cp, char *out);

/* ---- overflow-checked size arithmetic: return false on overflow ---- */
static inline bool awq_mul_ok(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return false;
    *out = a * b;
    return true;
}
static inline bool awq_add_ok(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return false;
    *out = a + b;
    return true;
}

/* ---- growable byte buffer ---- */
/* Owns data (malloc). Always NUL-terminated past len when cap > 0, so text can be used as a
 * C string. Zero-initialise ({0}) before use; awq_buf_free releases it. */
typedef struct awq_buf {
    char *data;
    size_t len;
    size_t cap;
} awq_buf;

AWQ_NODISCARD int awq_buf_reserve(awq_buf *b, size_t extra);
AWQ_NODISCARD int awq_buf_append(awq_buf *b, const void *p, size_t n);
AWQ_NODISCARD int awq_buf_puts(awq_buf *b, const char *s);
AWQ_NODISCARD int awq_buf_printf(awq_buf *b, const char *fmt, ...) AWQ_PRINTF(2, 3);
/* Append s as a JSON string literal (quotes and escapes; non-ASCII kept as UTF-8). */
AWQ_NODISCARD int awq_buf_json_str(awq_buf *b, const char *s, size_t n);
/* Take ownership of the data (caller frees); the buffer is left empty. */
char *awq_buf_take(awq_buf *b);
void awq_buf_free(awq_buf *b);

#endif
