/* cfg_save.c - cfg_save (cfg.h): write settings back into their file atomically, keeping what
 * the operator wrote (comments, blank lines, order, spelling of untouched values). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cfg.h"
#include "cfg_parse.h"
#include "plat.h"

/* ------------------------------------------------------------------ lines ---- */

/* One line of the old file: [start, start+len) without its end of line, eol_len bytes of
 * "\n" or "\r\n" after it (0 on a last line without one). */
struct line {
    const char *start;
    size_t len, eol_len;
};

static int split_lines(const char *text, size_t len, struct line **out, size_t *n_out) {
    size_t n = 0, cap = 0;
    struct line *v = NULL;
    for (const char *p = text, *end = text + len; p < end;) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            struct line *nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                free(v);
                return AWQ_ENOMEM;
            }
            v = nv;
        }
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
        size_t e = nl ? 1 : 0;
        if (l > 0 && p[l - 1] == '\r') {
            l--;
            e++;
        }
        v[n++] = (struct line){p, l, e};
        p += l + e;
    }
    *out = v;
    *n_out = n;
    return 0;
}

/* The section a header line opens (-1 when the line is not a header), matching what the reader
 * in cfg.c accepted: blanks, '[', name, ']'. */
static int header_section(const struct line *ln, const char *const *secs, size_t nsecs) {
    const char *s = ln->start, *e = ln->start + ln->len;
    if (s + 3 <= e && memcmp(s, "\xEF\xBB\xBF", 3) == 0) s += 3;
    while (s < e && (*s == ' ' || *s == '\t' || *s == '\f' || *s == '\v')) s++;
    if (s >= e || *s != '[') return -1;
    const char *close = memchr(s, ']', (size_t)(e - s));
    if (!close) return -1;
    size_t l = (size_t)(close - s - 1);
    for (size_t i = 0; i < nsecs; i++)
        if (strlen(secs[i]) == l && memcmp(secs[i], s + 1, l) == 0) return (int)i;
    return -1;
}

/* Rewrite a key line with a new value: the text up to and including the '=' or ':' and the
 * blanks after it stay, then the value, then the old inline comment (dropped when the new
 * value is empty, since inih would then read "; comment" as the value). */
static int rewrite_line(awq_buf *out, const struct line *ln, const char *value) {
    const char *s = ln->start, *e = ln->start + ln->len;
    const char *sep = s;
    while (sep < e && *sep != '=' && *sep != ':') sep++;
    if (sep >= e) return AWQ_EINTERNAL; /* the parser accepted it, so it has one */
    const char *v = sep + 1;
    while (v < e && (*v == ' ' || *v == '\t')) v++;
    const char *comment = e;
    for (const char *p = v + 1; p < e; p++)
        if (*p == ';' && (p[-1] == ' ' || p[-1] == '\t')) {
            comment = p;
            while (comment > v && (comment[-1] == ' ' || comment[-1] == '\t')) comment--;
            break;
        }
    int rc = awq_buf_append(out, s, (size_t)(v - s));
    if (!rc && *value) rc = awq_buf_puts(out, value);
    if (!rc && *value && comment < e) rc = awq_buf_append(out, comment, (size_t)(e - comment));
    return rc;
}

/* ------------------------------------------------------------------ saving ---- */

/* Permission bits for the new file: those of the file it replaces, else 0644 (settings name
 * key files but hold no secrets). Windows has no such bits; plat ignores the mode there. */
static int file_mode(const char *path) {
#ifdef _WIN32
    (void)path;
    return 0644;
#else
    struct stat st;
    if (stat(path, &st) == 0) return (int)(st.st_mode & 07777);
    return 0644;
#endif
}

/* Make sure the directory holding path exists (a first save into ~/.config/awqd/). */
static int ensure_parent(char *err, const char *path) {
    char dir[PLAT_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
#ifdef _WIN32
    char *bs = strrchr(dir, '\\');
    if (bs && (!slash || bs > slash)) slash = bs;
#endif
    if (!slash || slash == dir) return 0;
    *slash = 0;
    if (plat_is_dir(dir)) return 0;
    return plat_mkdirs(err, dir, 0700);
}

static const char *const secs[] = {"server", "model", "generation", "security", "log"};
#define NSECS (sizeof secs / sizeof secs[0])

static int sec_index(const char *s) {
    for (size_t i = 0; i < NSECS; i++)
        if (strcmp(secs[i], s) == 0) return (int)i;
    return -1;
}

static int emit_key(awq_buf *out, const cfg_keyinfo *k, const cfg *c, const char *eol) {
    char v[CFG_VALUE_MAX];
    if (cfg_format_value(k, c, v, sizeof v)) return AWQ_EINTERNAL;
    return awq_buf_printf(out, "%s =%s%s%s", k->name, v[0] ? " " : "", v, eol);
}

int cfg_save(char *err, const cfg *c, const char *path) {
    size_t nkeys, nlines = 0;
    const cfg_keyinfo *keys = cfg_keys(&nkeys);
    char *old = NULL;
    size_t old_len = 0;
    struct line *lines = NULL;
    awq_buf out = {0};
    cfg *prev = malloc(sizeof *prev), *check = malloc(sizeof *check);
    int *key_line = calloc(nkeys, sizeof *key_line);
    bool *pending = calloc(nkeys, sizeof *pending);
    char msg[AWQ_ERR_LEN];
    int rc = 0;
    if (!prev || !check || !key_line || !pending) {
        rc = awq_seterr(err, AWQ_ENOMEM, "%s: out of memory", path);
        goto out;
    }
    cfg_defaults(prev);
    rc = plat_read_file(msg, path, CFG_FILE_MAX, &old, &old_len);
    if (rc == AWQ_ENOTFOUND) {
        rc = 0;
    } else if (rc) {
        rc = awq_seterr(err, rc, "not saved: %s", msg);
        goto out;
    } else if ((rc = cfg_parse(msg, path, old, old_len, prev, key_line)) != 0) {
        /* never replace a file we cannot read: the operator's text would be lost */
        rc = awq_seterr(err, AWQ_EFORMAT, "not saved, the existing file has an error: %s", msg);
        goto out;
    }
    if (old && (rc = split_lines(old, old_len, &lines, &nlines)) != 0) {
        rc = awq_seterr(err, rc, "%s: out of memory", path);
        goto out;
    }
    const char *eol = (nlines > 0 && lines[0].eol_len == 2) ? "\r\n" : "\n";

    /* where each section's last occurrence ends: keys new to the file go after that line */
    size_t last_of[NSECS] = {0}; /* 1-based line, 0 = section absent */
    for (size_t i = 0; i < nlines; i++) {
        int h = header_section(&lines[i], secs, NSECS);
        if (h >= 0) last_of[h] = i + 1;
    }
    for (size_t k = 0; k < nkeys; k++) {
        pending[k] = !cfg_key_equal(&keys[k], c, prev) && key_line[k] == 0;
        int s = sec_index(keys[k].section);
        /* a key line after the section's last header belongs to that last occurrence; keys
         * of an earlier occurrence lie before it and do not move the anchor */
        if (key_line[k] && s >= 0 && (size_t)key_line[k] > last_of[s]) last_of[s] = (size_t)key_line[k];
    }

    if (!old) rc = awq_buf_printf(&out, "# awqd settings (see docs/configuration.md)%s", eol);
    for (size_t i = 0; !rc && i < nlines; i++) {
        int k = -1;
        for (size_t j = 0; j < nkeys; j++)
            if ((size_t)key_line[j] == i + 1) k = (int)j;
        if (k >= 0 && !cfg_key_equal(&keys[k], c, prev)) {
            char v[CFG_VALUE_MAX];
            rc = cfg_format_value(&keys[k], c, v, sizeof v);
            if (!rc) rc = rewrite_line(&out, &lines[i], v);
        } else {
            rc = awq_buf_append(&out, lines[i].start, lines[i].len);
        }
        /* then the keys new to a section whose last line this is, each on its own line */
        bool appended = false;
        for (size_t s = 0; !rc && s < NSECS; s++) {
            if (last_of[s] != i + 1) continue;
            for (size_t j = 0; !rc && j < nkeys; j++) {
                if (!pending[j] || strcmp(keys[j].section, secs[s]) != 0) continue;
                if (!appended) rc = awq_buf_puts(&out, eol);
                appended = true;
                if (!rc) rc = emit_key(&out, &keys[j], c, eol);
                pending[j] = false;
            }
        }
        if (!rc && !appended && lines[i].eol_len)
            rc = awq_buf_append(&out, lines[i].start + lines[i].len, lines[i].eol_len);
    }
    /* sections the file lacks go at the end, in table order */
    for (size_t s = 0; !rc && s < NSECS; s++) {
        bool opened = false;
        for (size_t j = 0; !rc && j < nkeys; j++) {
            if (!pending[j] || strcmp(keys[j].section, secs[s]) != 0) continue;
            if (!opened) {
                if (out.len && out.data[out.len - 1] != '\n') rc = awq_buf_puts(&out, eol);
                if (!rc) rc = awq_buf_printf(&out, "%s[%s]%s", out.len ? eol : "", secs[s], eol);
                opened = true;
            }
            if (!rc) rc = emit_key(&out, &keys[j], c, eol);
            pending[j] = false;
        }
    }
    if (rc) {
        rc = awq_seterr(err, rc, "%s: not saved: %s", path, rc == AWQ_ENOMEM ? "out of memory" : "internal error");
        goto out;
    }

    /* read the new text back: it must give exactly c, or nothing is written */
    cfg_defaults(check);
    rc = cfg_parse(msg, path, out.data ? out.data : "", out.len, check, NULL);
    for (size_t k = 0; !rc && k < nkeys; k++)
        if (!cfg_key_equal(&keys[k], c, check))
            rc = awq_seterr(msg, AWQ_EINTERNAL, "[%s] %s would read back differently", keys[k].section, keys[k].name);
    if (rc) {
        rc = awq_seterr(err, AWQ_EINTERNAL, "%s: not saved (a bug, please report): %s", path, msg);
        goto out;
    }
    if ((rc = ensure_parent(err, path)) != 0) goto out;
    rc = plat_write_file_atomic(err, path, out.data ? out.data : "", out.len, file_mode(path));
out:
    awq_buf_free(&out);
    free(lines);
    free(old);
    free(prev);
    free(check);
    free(key_line);
    free(pending);
    return rc;
}
