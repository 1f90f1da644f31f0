/* ini_min.h - private to config/: a minimal INI line parser with the interface and behaviour of
 * inih's ini_parse_stream (release 55, the options Debian builds it with: multi-line values,
 * BOM, ';'/'#' start-of-line comments, ';' inline comments after a blank, 200-byte line buffer,
 * no value-less keys, keep going after an error and report the first bad line).
 *
 * Why it exists: the Windows cross build has no inih (Debian's libinih source tarball answers
 * 404 and there is no mingw package; see docs/windows.md), so CMake compiles cfg.c against this
 * parser there (no AWQ_HAVE_INIH). The Linux build keeps inih; test_inimin checks that the two
 * agree line for line on the inputs test_cfg pins and on generated ones.
 *
 * Thread safety: reentrant (all state lives on the caller's stack).
 */
#ifndef CFG_INI_MIN_H
#define CFG_INI_MIN_H

#include "awq_err.h"

/* The line buffer handed to the reader, as inih's INI_MAX_LINE (cfg.c's long-line handling
 * depends on the reader seeing the same size with either parser). */
#define CFG_INI_MAX_LINE 200
/* inih's MAX_SECTION / MAX_NAME: longer section names and keys are cut to 49 bytes. */
#define CFG_INI_MAX_NAME 50

/* Called for every "name = value" (or "name: value") line, and for every continuation line
 * (an indented non-blank line after a key) with the previous name. Return nonzero to go on;
 * 0 marks the line as an error. The strings are borrowed for the call only. */
typedef int (*cfg_ini_handler)(void *user, const char *section, const char *name, const char *value);
/* fgets-like: fill str (num bytes) with the next line and return str, or NULL at the end. */
typedef char *(*cfg_ini_reader)(char *str, int num, void *stream);

/* Read lines from reader(stream) until it returns NULL, calling handler(user, ...) for each
 * value. Returns 0, or the number (1-based) of the first line that was neither a comment, a
 * "[section]" nor a "name = value" line, or whose handler returned 0. Parsing goes on after an
 * error, as inih's does with INI_STOP_ON_FIRST_ERROR 0. */
AWQ_NODISCARD int cfg_ini_parse_stream(cfg_ini_reader reader, void *stream, cfg_ini_handler handler, void *user)
    AWQ_NONNULL(1, 3);

#ifndef AWQ_HAVE_INIH
/* cfg.c is written against inih's names: without inih they mean ours. */
#define ini_parse_stream cfg_ini_parse_stream
#endif

#endif
