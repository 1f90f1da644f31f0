/* log.h - the daemon's tiny logger: one line per event, "2026-11-27T10:00:00.123Z awqd[pid] LEVEL
 * message", to standard error (the journal under systemd) or to the [log] file.
 *
 * Privacy (threat model row 19): prompts and generated text go through awqd_log_text only,
 * which writes nothing unless log_prompts is on.
 *
 * Thread safety: every function may be called from any thread; lines never interleave (one
 * mutex around each write). awqd_log_open/close are called by the main thread around the
 * daemon's life.
 */
#ifndef AWQD_LOG_H
#define AWQD_LOG_H

#include <stdbool.h>
#include <stddef.h>

#include "awq_err.h"

enum awqd_log_level { AWQD_LOG_ERROR = 0, AWQD_LOG_WARN = 1, AWQD_LOG_INFO = 2, AWQD_LOG_DEBUG = 3 };

/* Send lines to path (appended, created 0600) or, with path NULL or "", to stderr. Level and
 * log_prompts may change later (live settings). AWQ_EIO naming the file when it cannot open. */
AWQ_NODISCARD int awqd_log_open(char *err, const char *path, int level, bool log_prompts);
/* Back to stderr; closes the file. */
void awqd_log_close(void);
void awqd_log_set_level(int level);
void awqd_log_set_prompts(bool on);
int awqd_log_level(void);
bool awqd_log_prompts(void);
/* "error", "warn", "info", "debug" (the [log] level spelling). */
const char *awqd_log_level_name(int level);

/* Write one line when level <= the current level. */
void awqd_log(int level, const char *fmt, ...) AWQ_PRINTF(2, 3);
/* Write "what: <text>" (text may hold any bytes; control characters are escaped) only when
 * log_prompts is on. */
void awqd_log_text(const char *what, const char *text, size_t len);

#define awqd_err(...) awqd_log(AWQD_LOG_ERROR, __VA_ARGS__)
#define awqd_warn(...) awqd_log(AWQD_LOG_WARN, __VA_ARGS__)
#define awqd_info(...) awqd_log(AWQD_LOG_INFO, __VA_ARGS__)
#define awqd_debug(...) awqd_log(AWQD_LOG_DEBUG, __VA_ARGS__)

#endif
