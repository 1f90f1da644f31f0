/* test_inimin.c - config/ini_min.c, the INI parser the Windows build uses instead of inih:
 * pinned results for the rules settings files rely on (comments, inline comments, blanks,
 * ':' separator, continuation lines, BOM, error lines, long names), and, where inih is built
 * in (Linux), a line-for-line comparison of the two parsers on those inputs and on generated
 * ones. cfg.c's own behaviour on top of either parser is test_cfg's job. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "awq_util.h"
#include "harness.h"
#include "ini_min.h"
#ifdef AWQ_HAVE_INIH
#include <ini.h>
#endif

/* ---------------------------------------------------------------- reader and handler ---- */

/* fgets over a string: lines up to num-1 bytes, '\n' kept. */
typedef struct {
    const char *p, *end;
} src;

static char *sreader(char *buf, int num, void *stream) {
    src *s = stream;
    if (s->p >= s->end) return NULL;
    int n = 0;
    while (s->p < s->end && n < num - 1) {
        char ch = *s->p++;
        buf[n++] = ch;
        if (ch == '\n') break;
    }
    buf[n] = 0;
    return buf;
}

/* Records "[section] name=<value>\n" per call; a name "bad" is refused by the handler. */
static int record(void *user, const char *section, const char *name, const char *value) {
    awq_buf *b = user;
    if (awq_buf_printf(b, "[%s] %s=<%s>\n", section, name, value)) return 0;
    return strcmp(name, "bad") != 0;
}

typedef int (*parse_fn)(char *(*)(char *, int, void *), void *, int (*)(void *, const char *, const char *, const char *),
                        void *);

/* Run one parser over text; *rc_p = its return; the record (caller frees). */
static char *run(parse_fn f, const char *text, int *rc_p) {
    src s = {text, text + strlen(text)};
    awq_buf b = {0};
    *rc_p = f(sreader, &s, record, &b);
    if (awq_buf_printf(&b, "%s", "")) return NULL; /* make sure data is a string even when empty */
    return b.data;
}

static int ours(char *(*r)(char *, int, void *), void *s, int (*h)(void *, const char *, const char *, const char *),
                void *u) {
    return cfg_ini_parse_stream(r, s, h, u);
}

#ifdef AWQ_HAVE_INIH
static int theirs(char *(*r)(char *, int, void *), void *s, int (*h)(void *, const char *, const char *, const char *),
                  void *u) {
    return ini_parse_stream(r, s, h, u);
}
#endif

/* ---------------------------------------------------------------- pinned cases ---- */

typedef struct {
    const char *text, *want;
    int rc;
} pin;

static const pin pins[] = {
    /* blanks, comments, ':' separator, CRLF */
    {"[server]\nsocket = /x\n", "[server] socket=</x>\n", 0},
    {"\n  \n; c\n# c\n[a]\r\nk : v w \r\n", "[a] k=<v w>\n", 0},
    {"[a]\nk=v;w\n", "[a] k=<v;w>\n", 0},           /* ';' without a blank before it is data */
    {"[a]\nk = v ; note\n", "[a] k=<v>\n", 0},      /* inline comment after a blank */
    {"[a]\nk = v\t; note\n", "[a] k=<v>\n", 0},     /* a tab counts as a blank */
    {"[a]\nk = v # not a comment\n", "[a] k=<v # not a comment>\n", 0}, /* '#' only starts a line */
    {"[a]\nk = ;x\n", "[a] k=<>\n", 0},             /* the blank after '=' starts the comment */
    {"[a]\nk =;x\n", "[a] k=<;x>\n", 0},
    {"[a]\nk =\n", "[a] k=<>\n", 0},                /* empty value */
    {"[a]\nk = a=b:c\n", "[a] k=<a=b:c>\n", 0},     /* the first '=' or ':' splits */
    {"[a]\nk:a=b\n", "[a] k=<a=b>\n", 0},
    {"k = v\n", "[] k=<v>\n", 0},                   /* before any section */
    {"\xEF\xBB\xBF[a]\nk = v\n", "[a] k=<v>\n", 0}, /* BOM on the first line only */
    {"[a]\n\xEF\xBB\xBFk = v\n", "[a] \xEF\xBB\xBFk=<v>\n", 0},
    /* continuation: an indented line after a key */
    {"[a]\nk = v\n  more ; c\n", "[a] k=<v>\n[a] k=<more ; c>\n", 0}, /* no inline comment there */
    {"[a]\n  k = v\n", "[a] k=<v>\n", 0},          /* indented, but no key before it: a key */
    {"[a]\nk = v\n[b]\n  x = y\n", "[a] k=<v>\n[b] x=<y>\n", 0}, /* a section ends continuation */
    /* sections */
    {"[a b] \n k=v\n", "[a b] k=<v>\n", 0},
    {"[a ; c]\nk = v\n", "[] k=<v>\n", 1},          /* the ']' hides behind a comment */
    {"[a]x\nk = v\n", "[a] k=<v>\n", 0},            /* text after ']' is ignored */
    {"[a\nk = v\n", "[] k=<v>\n", 1},
    {"[]\nk = v\n", "[] k=<v>\n", 0},
    /* errors: the first bad line is returned and parsing goes on */
    {"[a]\njunk\nk = v\nmore junk\n", "[a] k=<v>\n", 2},
    {"[a]\nk ; = v\n", "", 2},                      /* a comment before the separator */
    {"[a]\nbad = 1\nk = 2\n", "[a] bad=<1>\n[a] k=<2>\n", 2},
    {"[a]\nk = 1\nbad = 2\n", "[a] k=<1>\n[a] bad=<2>\n", 3},
    /* names longer than 49 bytes are cut, as inih cuts them */
    {"[0123456789012345678901234567890123456789012345678901234]\nk=v\n",
     "[0123456789012345678901234567890123456789012345678] k=<v>\n", 0},
};

/* ---------------------------------------------------------------- generated inputs ---- */
#ifdef AWQ_HAVE_INIH

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static unsigned next(unsigned n) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

/* A small document made of the bytes and pieces the rules care about. */
static void gen(char *out, size_t cap) {
    static const char *const pieces[] = {" ", "\t", ";", "#", "=", ":", "[", "]", "a", "bc", "\r\n", "\n",
                                         "\n", "bad", "\xEF\xBB\xBF", "k = v", "[s]\n", "  x", "\n  y"};
    size_t n = 0, want = 1 + next(60);
    out[0] = 0;
    for (size_t i = 0; i < want; i++) {
        const char *p = pieces[next(sizeof pieces / sizeof pieces[0])];
        size_t l = strlen(p);
        if (n + l + 1 >= cap) break;
        memcpy(out + n, p, l + 1);
        n += l;
    }
}
#endif

int main(void) {
    CASE("inimin-1.1", "pinned results: comments, separators, continuation, sections, errors, long names");
    for (size_t i = 0; i < sizeof pins / sizeof pins[0]; i++) {
        int rc;
        char *got = run(ours, pins[i].text, &rc);
        CHECK_STR(got, pins[i].want);
        CHECK_EQ(rc, pins[i].rc);
        if (!got || strcmp(got, pins[i].want) || rc != pins[i].rc) fprintf(stderr, "   in pin %zu\n", i);
        free(got);
    }

    CASE("inimin-1.2", "a line longer than the buffer reaches the parser in 199-byte pieces, as with inih");
    {
        char text[600];
        memset(text, 'x', sizeof text);
        memcpy(text, "[a]\nk = ", 8);
        text[sizeof text - 2] = '\n';
        text[sizeof text - 1] = 0;
        int rc;
        char *got = run(ours, text, &rc);
        CHECK_EQ(rc, 3); /* the second piece "xxx..." has no '=' */
        CHECK(got && strncmp(got, "[a] k=<xxx", 10) == 0);
        free(got);
    }

    CASE("inimin-2.1", "same records and same error line as inih (pinned and generated inputs)");
#ifdef AWQ_HAVE_INIH
    {
        int mismatches = 0;
        char doc[512];
        size_t total = sizeof pins / sizeof pins[0] + 3000;
        for (size_t i = 0; i < total; i++) {
            const char *text = doc;
            if (i < sizeof pins / sizeof pins[0]) text = pins[i].text;
            else gen(doc, sizeof doc);
            int r1, r2;
            char *a = run(ours, text, &r1), *b = run(theirs, text, &r2);
            if (!a || !b || strcmp(a, b) || r1 != r2) {
                if (mismatches++ < 5)
                    fprintf(stderr, "   differs on input %zu: ours rc %d \"%s\", inih rc %d \"%s\"\n", i, r1,
                            a ? a : "(oom)", r2, b ? b : "(oom)");
            }
            free(a);
            free(b);
        }
        CHECK_EQ(mismatches, 0);
    }
#else
    fprintf(stderr, "   (no inih in this build: the comparison runs on the Linux build)\n");
#endif
    return h_finish();
}
