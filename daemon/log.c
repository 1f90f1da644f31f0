/* log.c - the daemon's logger; see log.h. */
#define _POSIX_C_SOURCE 200809L
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "plat.h"

/* The mutex is set up by the first awqd_log_open, which main calls before starting threads;
 * until then there is one thread and lines are written unlocked. */
static plat_mutex mu;
static bool mu_ready;
static FILE *out_file;           /* NULL: stderr */
static atomic_int cur_level = AWQD_LOG_INFO;
static atomic_bool cur_prompts;

int awqd_log_open(char *err, const char *path, int level, bool log_prompts) {
    awqd_log_set_level(level);
    awqd_log_set_prompts(log_prompts);
    if (!mu_ready) {
        plat_mutex_init(&mu);
        mu_ready = true;
    }
    FILE *f = NULL;
    if (path && path[0]) {
        /* 0600: the log may hold prompts when log_prompts is on */
#ifdef _WIN32
        /* no O_CLOEXEC there: O_NOINHERIT keeps the handle out of child processes; the file's
         * ACL comes from its directory (%PROGRAMDATA%\awqd\logs for the service) */
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOINHERIT, 0600);
#else
        int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
#endif
        if (fd < 0 || !(f = fdopen(fd, "a"))) {
            int e = errno;
            if (fd >= 0) close(fd);
            return awq_seterr(err, AWQ_EIO, "[log] file %s: %s", path, strerror(e));
        }
        setvbuf(f, NULL, _IOLBF, 0);
    }
    plat_mutex_lock(&mu);
    if (out_file) fclose(out_file);
    out_file = f;
    plat_mutex_unlock(&mu);
    return 0;
}

void awqd_log_close(void) {
    if (!mu_ready) return;
    plat_mutex_lock(&mu);
    if (out_file) fclose(out_file);
    out_file = NULL;
    plat_mutex_unlock(&mu);
}

void awqd_log_set_level(int level) {
    if (level < AWQD_LOG_ERROR) level = AWQD_LOG_ERROR;
    if (level > AWQD_LOG_DEBUG) level = AWQD_LOG_DEBUG;
    atomic_store(&cur_level, level);
}
void awqd_log_set_prompts(bool on) { atomic_store(&cur_prompts, on); }
int awqd_log_level(void) { return atomic_load(&cur_level); }
bool awqd_log_prompts(void) { return atomic_load(&cur_prompts); }

const char *awqd_log_level_name(int level) {
    static const char *const names[] = {"error", "warn", "info", "debug"};
    return level >= 0 && level <= AWQD_LOG_DEBUG ? names[level] : "?";
}

/* Write one finished line (text without the newline). */
static void emit(int level, const char *text) {
    char ts[40];
    uint64_t ms = plat_wall_ms();
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t n = strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + n, sizeof ts - n, ".%03uZ", (unsigned)(ms % 1000));
    static const char *const tag[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    if (mu_ready) plat_mutex_lock(&mu);
    FILE *f = out_file ? out_file : stderr;
    fprintf(f, "%s awqd[%ld] %s %s\n", ts, (long)getpid(), tag[level], text);
    fflush(f);
    if (mu_ready) plat_mutex_unlock(&mu);
}

void awqd_log(int level, const char *fmt, ...) {
    if (level > atomic_load(&cur_level) || level < 0) return;
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    emit(level, text);
}

void awqd_log_text(const char *what, const char *text, size_t len) {
    if (!atomic_load(&cur_prompts)) return;
    /* escape control bytes so a prompt cannot forge log lines */
    char line[2048];
    size_t o = (size_t)snprintf(line, sizeof line, "%s: ", what);
    if (o >= sizeof line) o = sizeof line - 1;
    for (size_t i = 0; i < len && o + 8 < sizeof line; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\n') line[o++] = '\\', line[o++] = 'n';
        else if (c < 0x20 || c == 0x7f) o += (size_t)snprintf(line + o, sizeof line - o, "\\x%02x", c);
        else line[o++] = (char)c;
    }
    if (o + 8 >= sizeof line) memcpy(line + sizeof line - 4, "...", 4), o = sizeof line - 1;
    line[o] = 0;
    emit(AWQD_LOG_INFO, line);
}
