/* ini_min.c - the INI line parser cfg.c uses where inih is not available; see ini_min.h.
 *
 * It follows inih 55's ini_parse_stream step by step (same stripping, same comment rules, same
 * truncation of long names, same error line), because settings files must read the same on
 * Linux (inih) and Windows (this file): a value that gains or loses a trailing "; note" between
 * the two would be a silent difference. Built on every platform so that test_inimin can compare
 * it with inih on Linux. */
#include "ini_min.h"

#include <ctype.h>
#include <string.h>

/* ---------------------------------------------------------------- string helpers ---- */

/* Strip trailing whitespace in place; returns s. */
static char *rstrip(char *s) {
    char *p = s + strlen(s);
    while (p > s && isspace((unsigned char)p[-1])) *--p = 0;
    return s;
}

/* The first non-whitespace byte of s. */
static char *lskip(char *s) {
    while (*s && isspace((unsigned char)*s)) s++;
    return s;
}

/* The first byte of s that is in chars (NULL: none is wanted), or an inline comment start
 * (';' right after a whitespace byte), or the terminating NUL. A ';' with no blank before it
 * is data: "url = http://x;y" keeps its ';'. */
static char *find_chars_or_comment(char *s, const char *chars) {
    int was_space = 0;
    while (*s && (!chars || !strchr(chars, *s)) && !(was_space && *s == ';')) {
        was_space = isspace((unsigned char)*s);
        s++;
    }
    return s;
}

/* strncpy that always terminates: names longer than the buffer are cut, as inih cuts them. */
static void copy_cut(char *dst, const char *src, size_t size) {
    size_t n = strlen(src);
    if (n > size - 1) n = size - 1;
    memcpy(dst, src, n);
    dst[n] = 0;
}

/* ---------------------------------------------------------------- the parser ---- */

int cfg_ini_parse_stream(cfg_ini_reader reader, void *stream, cfg_ini_handler handler, void *user) {
    char line[CFG_INI_MAX_LINE];
    char section[CFG_INI_MAX_NAME] = "";
    char prev_name[CFG_INI_MAX_NAME] = "";
    int lineno = 0, error = 0;

    while (reader(line, (int)sizeof line, stream) != NULL) {
        /* a reader that filled the buffer without terminating it must not make us overrun */
        line[sizeof line - 1] = 0;
        char *start = line;
        if (lineno == 0 && (unsigned char)start[0] == 0xEF && (unsigned char)start[1] == 0xBB &&
            (unsigned char)start[2] == 0xBF)
            start += 3; /* UTF-8 byte order mark */
        start = lskip(rstrip(start));
        lineno++;

        if (*start == 0 || *start == ';' || *start == '#') {
            /* a blank line or a start-of-line comment */
        } else if (*prev_name && start > line) {
            /* an indented non-blank line after a key continues its value (Python configparser
             * style); the handler sees it as another value for the same name. inih 55 does not
             * look for an inline comment here ("  more ; c" is the value), nor do we. */
            if (!handler(user, section, prev_name, start) && !error) error = lineno;
        } else if (*start == '[') {
            char *end = find_chars_or_comment(start + 1, "]");
            if (*end == ']') {
                *end = 0;
                copy_cut(section, start + 1, sizeof section);
                prev_name[0] = 0;
            } else if (!error) {
                error = lineno; /* no ']' before the end or an inline comment */
            }
        } else {
            char *end = find_chars_or_comment(start, "=:");
            if (*end == '=' || *end == ':') {
                *end = 0;
                char *name = rstrip(start);
                char *value = end + 1;
                end = find_chars_or_comment(value, NULL);
                *end = 0;
                value = lskip(value);
                rstrip(value);
                copy_cut(prev_name, name, sizeof prev_name);
                if (!handler(user, section, name, value) && !error) error = lineno;
            } else if (!error) {
                error = lineno; /* neither '=' nor ':' (value-less keys are not allowed) */
            }
        }
    }
    return error;
}
