/* cfg_parse.h - private to config/: the pieces of cfg.c that cfg_save.c and cfg_find.c share
 * (parsing with line records, value text, the key table by index). Not part of the public API.
 *
 * Thread safety: as cfg.h (reentrant, no global state).
 */
#ifndef CFG_PARSE_H
#define CFG_PARSE_H

#include "cfg.h"

#define CFG_QUOTE_LEN 52 /* a value quoted in a message: 48 bytes, "...", NUL */

/* Parse text[0..len) named name on top of c (changed only on success). When key_line is not
 * NULL (cfg_nkeys() ints) it receives the line each key was set on, 0 for keys not in text. */
AWQ_NODISCARD int cfg_parse(char *err, const char *name, const char *text, size_t len, cfg *c, int *key_line)
    AWQ_NONNULL(2, 3, 5);
size_t cfg_nkeys(void);
/* Index of section/name in the key table, or -1. */
int cfg_key_index(const char *section, const char *name) AWQ_NONNULL(1, 2);
bool cfg_section_known(const char *s, size_t len) AWQ_NONNULL(1);
/* The value of k in c as file text (canonical: equal settings give equal text). */
AWQ_NODISCARD int cfg_format_value(const cfg_keyinfo *k, const cfg *c, char *out, size_t cap) AWQ_NONNULL(1, 2, 3);
bool cfg_key_equal(const cfg_keyinfo *k, const cfg *a, const cfg *b) AWQ_NONNULL(1, 2, 3);
/* 0 when v can be written as a value and read back unchanged; else why, in err. */
AWQ_NODISCARD int cfg_check_text(char *err, const char *v) AWQ_NONNULL(2);
/* Validate v for k and store it at dst (only on success). */
AWQ_NODISCARD int cfg_parse_value(char *err, const cfg_keyinfo *k, const char *v, void *dst) AWQ_NONNULL(2, 3, 4);
/* v shortened to 48 bytes with control bytes as '?', for messages. */
void cfg_quote(const char *v, char out[CFG_QUOTE_LEN]) AWQ_NONNULL(1, 2);

#endif
