/* tmpl_lex.c - the arena, newline normalisation and the lexer of the chat-template interpreter.
 *
 * The lexer mirrors jinja2/lexer.py (Jinja 3.1) as Hugging Face configures it
 * (trim_blocks=True, lstrip_blocks=True):
 *   - text runs up to the earliest "{{", "{%" or "{#"; the tag may carry a sign, "-" or "+".
 *   - "{%-" / "{{-" / "{#-" strip all whitespace (Python's str.rstrip: Unicode) before the tag.
 *   - lstrip_blocks: a "{%" or "{#" without sign that has only whitespace between the start of
 *     its line and itself drops that whitespace ("start of line" = after a "\n" in the text, or
 *     at the start of the text when the previous tag's match ended with "\n").
 *   - "-%}" / "-}}" / "-#}" swallow all following whitespace; "%}" and "#}" swallow one "\n"
 *     (trim_blocks); "+%}" keeps it; "}}" never trims.
 *   - inside a tag, an end delimiter is only recognised while no (, [ or { is open.
 * Strings decode Python's unicode-escape set (\n \t \\ \' \" \xNN \uNNNN \UNNNNNNNN \ooo ...;
 * unknown escapes keep the backslash), as Jinja does.
 */
#include "tmpl_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "awq_err.h"

/* ================================================================= arena ==== */

struct tmpl_chunk {
    tmpl_chunk *next;
    size_t cap, used;
    /* data follows, 16-aligned */
};

#define CHUNK_HDR ((sizeof(tmpl_chunk) + 15u) & ~(size_t)15u)
#define CHUNK_MIN (64u << 10)

void *tmpl_alloc(tmpl_arena *a, size_t n) {
    size_t need = (n + 15u) & ~(size_t)15u;
    if (need < n) return NULL;
    tmpl_chunk *c = a->head;
    if (!c || c->cap - c->used < need) {
        size_t cap = need > CHUNK_MIN ? need : CHUNK_MIN;
        size_t total;
        if (!awq_add_ok(cap, CHUNK_HDR, &total)) return NULL;
        if (a->limit && (total > a->limit || a->total > a->limit - total)) return NULL;
        c = malloc(total);
        if (!c) return NULL;
        a->total += total;
        c->cap = cap;
        c->used = 0;
        /* a big one-off block goes behind the current chunk so the rest of that stays usable */
        if (a->head && need > CHUNK_MIN) {
            c->next = a->head->next;
            a->head->next = c;
        } else {
            c->next = a->head;
            a->head = c;
        }
    }
    void *p = (char *)c + CHUNK_HDR + c->used;
    c->used += need;
    return p;
}

void *tmpl_memdup(tmpl_arena *a, const void *p, size_t n) {
    if (n == SIZE_MAX) return NULL;
    char *d = tmpl_alloc(a, n + 1);
    if (!d) return NULL;
    if (n) memcpy(d, p, n);
    d[n] = 0;
    return d;
}

void tmpl_arena_free(tmpl_arena *a) {
    tmpl_chunk *c = a->head;
    while (c) {
        tmpl_chunk *nx = c->next;
        free(c);
        c = nx;
    }
    a->head = NULL;
    a->total = 0;
}

/* ================================================================= newlines ==== */

char *tmpl_normalize(tmpl_arena *a, const char *src, size_t len, size_t *out_len) {
    char *d = tmpl_alloc(a, len + 1);
    if (!d) return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            d[o++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            d[o++] = src[i];
        }
    }
    /* keep_trailing_newline=False: exactly one final newline goes */
    if (o > 0 && d[o - 1] == '\n') o--;
    d[o] = 0;
    *out_len = o;
    return d;
}

/* ================================================================= lexer ==== */

typedef struct lexer {
    char *err;
    tmpl_arena *a;
    const char *s;
    size_t len;
    size_t pos;
    int line;          /* line of pos */
    size_t line_start; /* offset where that line starts */
    tmpl_toks *toks;
} lexer;

/* move pos to p, keeping line/line_start in step */
static void lx_advance(lexer *lx, size_t p) {
    for (size_t i = lx->pos; i < p; i++) {
        if (lx->s[i] == '\n') {
            lx->line++;
            lx->line_start = i + 1;
        }
    }
    lx->pos = p;
}

static int lx_col(const lexer *lx, size_t p) {
    return (int)tmpl_cp_count(lx->s + lx->line_start, p - lx->line_start) + 1;
}

static int lx_fail(lexer *lx, size_t p, const char *what) {
    lx_advance(lx, p);
    return awq_seterr(lx->err, AWQ_ETEMPLATE, "line %d, column %d: %s", lx->line, lx_col(lx, p), what);
}

static tmpl_tok *lx_push(lexer *lx, int kind, size_t at) {
    tmpl_toks *t = lx->toks;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        tmpl_tok *v = realloc(t->v, cap * sizeof *v);
        if (!v) return NULL;
        t->v = v;
        t->cap = cap;
    }
    tmpl_tok *k = &t->v[t->n++];
    memset(k, 0, sizeof *k);
    k->kind = kind;
    lx_advance(lx, at);
    k->line = lx->line;
    k->col = lx_col(lx, at);
    return k;
}

/* length of the Unicode whitespace run at s[p..e) */
static size_t ws_run(const char *s, size_t p, size_t e) {
    size_t q = p;
    while (q < e) {
        uint32_t cp;
        size_t k = tmpl_cp_at(s + q, e - q, &cp);
        if (!tmpl_py_isspace(cp)) break;
        q += k;
    }
    return q - p;
}

/* str.rstrip(): new length of s[0..n) without trailing Unicode whitespace */
static size_t rstrip_len(const char *s, size_t n) {
    size_t e = n;
    while (e > 0) {
        size_t b = e - 1;
        while (b > 0 && ((unsigned char)s[b] & 0xC0) == 0x80 && e - b < 4) b--;
        uint32_t cp;
        size_t k = tmpl_cp_at(s + b, e - b, &cp);
        if (b + k != e) { /* not a clean code point: treat last byte alone */
            b = e - 1;
            tmpl_cp_at(s + b, 1, &cp);
        }
        if (!tmpl_py_isspace(cp)) break;
        e = b;
    }
    return e;
}

static bool starts(const lexer *lx, size_t p, const char *lit) {
    size_t n = strlen(lit);
    return p + n <= lx->len && memcmp(lx->s + p, lit, n) == 0;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Decode a string literal body s[0..n) (quotes excluded) like Python's unicode-escape. */
static int lx_string(lexer *lx, size_t at, const char *s, size_t n, tmpl_tok *tok) {
    char *d = tmpl_alloc(lx->a, n + 1); /* decoding never grows the text */
    if (!d) return awq_seterr(lx->err, AWQ_ENOMEM, "out of memory");
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] != '\\' || i + 1 >= n) {
            d[o++] = s[i++];
            continue;
        }
        char c = s[i + 1];
        int simple = -1;
        switch (c) {
        case '\n': i += 2; continue; /* line continuation */
        case '\\': simple = '\\'; break;
        case '\'': simple = '\''; break;
        case '"': simple = '"'; break;
        case 'a': simple = 7; break;
        case 'b': simple = 8; break;
        case 'f': simple = 12; break;
        case 'n': simple = '\n'; break;
        case 'r': simple = '\r'; break;
        case 't': simple = '\t'; break;
        case 'v': simple = 11; break;
        default: break;
        }
        if (simple >= 0) {
            d[o++] = (char)simple;
            i += 2;
            continue;
        }
        if (c >= '0' && c <= '7') { /* up to three octal digits */
            uint32_t v = 0;
            size_t j = i + 1;
            while (j < n && j < i + 4 && s[j] >= '0' && s[j] <= '7') v = v * 8 + (uint32_t)(s[j++] - '0');
            o += awq_utf8_encode(v, d + o);
            i = j;
            continue;
        }
        if (c == 'x' || c == 'u' || c == 'U') {
            size_t digits = c == 'x' ? 2 : c == 'u' ? 4 : 8;
            uint32_t v = 0;
            size_t j;
            for (j = 0; j < digits; j++) {
                int h = i + 2 + j < n ? hexval((unsigned char)s[i + 2 + j]) : -1;
                if (h < 0) break;
                v = v * 16 + (uint32_t)h;
            }
            if (j < digits)
                return lx_fail(lx, at, "truncated \\x, \\u or \\U escape in string literal");
            if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
                return lx_fail(lx, at, "escape in string literal is not a valid code point");
            /* a code point this large needs up to 4 bytes but its escape used >= 4 */
            o += awq_utf8_encode(v, d + o);
            i += 2 + digits;
            continue;
        }
        if (c == 'N')
            return lx_fail(lx, at, "\\N{...} escapes in string literals are not supported");
        /* unknown escape: Python keeps the backslash */
        d[o++] = s[i++];
    }
    d[o] = 0;
    if (!awq_utf8_valid(d, o)) return lx_fail(lx, at, "string literal is not valid UTF-8");
    tok->s = d;
    tok->n = o;
    return 0;
}

static bool is_name_start(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_digit(int c) { return c >= '0' && c <= '9'; }

/* digits with single '_' separators: (\d+_)*\d+ ; returns end or p when none */
static size_t scan_digits(const char *s, size_t p, size_t e) {
    size_t q = p;
    if (q >= e || !is_digit((unsigned char)s[q])) return p;
    while (q < e) {
        if (is_digit((unsigned char)s[q])) {
            q++;
        } else if (s[q] == '_' && q + 1 < e && is_digit((unsigned char)s[q + 1])) {
            q++;
        } else {
            break;
        }
    }
    return q;
}

/* Number at p: float_re first, then integer_re. */
static int lx_number(lexer *lx, size_t p, size_t *endp) {
    const char *s = lx->s;
    size_t e = lx->len;
    size_t q = scan_digits(s, p, e);
    size_t fend = 0;
    if (p == 0 || s[p - 1] != '.') {
        size_t r = q;
        if (r < e && s[r] == '.') {
            size_t r2 = scan_digits(s, r + 1, e);
            if (r2 > r + 1) r = r2;
        }
        if (r < e && (s[r] == 'e' || s[r] == 'E')) {
            size_t t = r + 1;
            if (t < e && (s[t] == '+' || s[t] == '-')) t++;
            size_t t2 = scan_digits(s, t, e);
            if (t2 > t) fend = t2;
        }
        if (!fend && r > q) fend = r; /* required fraction without exponent */
    }
    char buf[128];
    if (fend) {
        size_t o = 0;
        for (size_t i = p; i < fend && o + 1 < sizeof buf; i++)
            if (s[i] != '_') buf[o++] = s[i];
        buf[o] = 0;
        tmpl_tok *t = lx_push(lx, TK_FLOAT, p);
        if (!t) return awq_seterr(lx->err, AWQ_ENOMEM, "out of memory");
        t->f = strtod(buf, NULL);
        *endp = fend;
        return 0;
    }
    int base = 10;
    size_t d0 = p, dend;
    if (s[p] == '0' && p + 1 < e && strchr("bBoOxX", s[p + 1]) && s[p + 1]) {
        char k = (char)(s[p + 1] | 0x20);
        base = k == 'b' ? 2 : k == 'o' ? 8 : 16;
        d0 = p + 2;
        dend = d0;
        while (dend < e) {
            size_t t = dend;
            if (s[t] == '_') t++;
            int h = t < e ? hexval((unsigned char)s[t]) : -1;
            if (h < 0 || h >= base) break;
            dend = t + 1;
        }
        if (dend == d0) return lx_fail(lx, p, "invalid integer literal");
    } else if (s[p] == '0') {
        dend = p + 1;
        while (dend + 1 < e && s[dend] == '_' && s[dend + 1] == '0') dend += 2;
        while (dend < e && s[dend] == '0') dend++;
    } else {
        dend = q;
    }
    uint64_t v = 0;
    for (size_t i = d0; i < dend; i++) {
        if (s[i] == '_') continue;
        uint64_t h = (uint64_t)hexval((unsigned char)s[i]);
        if (v > (UINT64_MAX - h) / (uint64_t)base || v * (uint64_t)base + h > (uint64_t)INT64_MAX)
            return lx_fail(lx, p, "integer literal too large (limit 2**63-1)");
        v = v * (uint64_t)base + h;
    }
    tmpl_tok *t = lx_push(lx, TK_INT, p);
    if (!t) return awq_seterr(lx->err, AWQ_ENOMEM, "out of memory");
    t->i = (int64_t)v;
    *endp = dend;
    return 0;
}

static const struct {
    const char *s;
    int op;
} ops[] = {
    {"//", TOP_FLOORDIV}, {"**", TOP_POW}, {"==", TOP_EQ}, {"!=", TOP_NE}, {">=", TOP_GE},
    {"<=", TOP_LE},       {"+", TOP_ADD},  {"-", TOP_SUB}, {"/", TOP_DIV}, {"*", TOP_MUL},
    {"%", TOP_MOD},       {"~", TOP_TILDE}, {"[", TOP_LBRACKET}, {"]", TOP_RBRACKET},
    {"(", TOP_LPAREN},    {")", TOP_RPAREN}, {"{", TOP_LBRACE}, {"}", TOP_RBRACE},
    {">", TOP_GT},        {"<", TOP_LT},   {"=", TOP_ASSIGN}, {".", TOP_DOT}, {":", TOP_COLON},
    {"|", TOP_PIPE},      {",", TOP_COMMA}, {";", TOP_SEMICOLON},
};

/* Lex the inside of a {{ }} or {% %} tag starting at p. On success *endp is past the end
 * delimiter (and what trimming swallowed). */
static int lx_tag(lexer *lx, size_t p, bool block, size_t *endp) {
    const char *s = lx->s;
    size_t e = lx->len;
    char stack[TMPL_DEPTH_MAX];
    int depth = 0;
    for (;;) {
        if (depth == 0) {
            size_t end = 0;
            if (block) {
                if (starts(lx, p, "+%}")) end = p + 3;
                else if (starts(lx, p, "-%}")) end = p + 3 + ws_run(s, p + 3, e);
                else if (starts(lx, p, "%}")) end = p + 2 + (p + 2 < e && s[p + 2] == '\n');
            } else {
                if (starts(lx, p, "-}}")) end = p + 3 + ws_run(s, p + 3, e);
                else if (starts(lx, p, "}}")) end = p + 2;
            }
            if (end) {
                if (!lx_push(lx, block ? TK_BLOCK_END : TK_VAR_END, p))
                    return awq_seterr(lx->err, AWQ_ENOMEM, "out of memory");
                *endp = end;
                return 0;
            }
        }
        size_t ws = ws_run(s, p, e);
        if (ws) { /* whitespace is a token of its own: look for the end again after it */
            p += ws;
            continue;
        }
        if (p >= e)
            return lx_fail(lx, p, block ? "unexpected end of template, expected '%}'"
                                        : "unexpected end of template, expected '}}'");
        int c = (unsigned char)s[p];
        if (is_digit(c)) {
            int rc = lx_number(lx, p, &p);
            if (rc) return rc;
            continue;
        }
        if (is_name_start(c)) {
            size_t q = p + 1;
            while (q < e && (is_name_start((unsigned char)s[q]) || is_digit((unsigned char)s[q]))) q++;
            tmpl_tok *t = lx_push(lx, TK_NAME, p);
            if (!t) return awq_seterr(lx->err, AWQ_ENOMEM, "out of memory");
            t->s = s + p;
            t->n = q - p;
            p = q;
            continue;
        }
        if (c == '\'' || c == '"') {
            size_t q = p + 1;
            while (q < e && s[q] != c) q += (s[q] == '\\' && q + 1 < e) ? 2 : 1;
            if (q >= e) return lx_fail(lx, p, "unterminated string literal");
            tmpl_tok *t = lx_push(lx, TK_STRING, p);
            if (!t) return awq_seterr(lx->err, AWQ_ENOMEM, "out of memory");
            int rc = lx_string(lx, p, s + p + 1, q - p - 1, t);
            if (rc) return rc;
            p = q + 1;
            continue;
        }
        int op = 0;
        size_t oplen = 0;
        for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
            if (starts(lx, p, ops[i].s)) {
                op = ops[i].op;
                oplen = strlen(ops[i].s);
                break;
            }
        }
        if (!op) {
            char what[64];
            uint32_t cp;
            tmpl_cp_at(s + p, e - p, &cp);
            if (cp >= 0x20 && cp < 0x7f)
                snprintf(what, sizeof what, "unexpected character '%c'", (char)cp);
            else
                snprintf(what, sizeof what, "unexpected character U+%04X", (unsigned)cp);
            return lx_fail(lx, p, what);
        }
        if (op == TOP_LPAREN || op == TOP_LBRACKET || op == TOP_LBRACE) {
            if (depth >= TMPL_DEPTH_MAX) return lx_fail(lx, p, "brackets nested too deeply");
            stack[depth++] = op == TOP_LPAREN ? ')' : op == TOP_LBRACKET ? ']' : '}';
        } else if (op == TOP_RPAREN || op == TOP_RBRACKET || op == TOP_RBRACE) {
            char want = op == TOP_RPAREN ? ')' : op == TOP_RBRACKET ? ']' : '}';
            char what[64];
            if (depth == 0) {
                snprintf(what, sizeof what, "unexpected '%c'", want);
                return lx_fail(lx, p, what);
            }
            if (stack[depth - 1] != want) {
                snprintf(what, sizeof what, "unexpected '%c', expected '%c'", want, stack[depth - 1]);
                return lx_fail(lx, p, what);
            }
            depth--;
        }
        tmpl_tok *t = lx_push(lx, TK_OP, p);
        if (!t) return awq_seterr(lx->err, AWQ_ENOMEM, "out of memory");
        t->op = op;
        p += oplen;
    }
}

/* "{% raw %}": at body (after "{%" and its sign) is `\s*raw\s*` then "-%}\s*" or "%}" (Jinja
 * does not apply trim_blocks here). Sets *endp past it. */
static bool raw_begin(lexer *lx, size_t body, size_t *endp) {
    const char *s = lx->s;
    size_t e = lx->len, q = body + ws_run(s, body, e);
    if (!starts(lx, q, "raw")) return false;
    q += 3;
    if (q < e && (is_name_start((unsigned char)s[q]) || is_digit((unsigned char)s[q]))) return false;
    q += ws_run(s, q, e);
    if (starts(lx, q, "-%}")) *endp = q + 3 + ws_run(s, q + 3, e);
    else if (starts(lx, q, "%}")) *endp = q + 2;
    else return false;
    return true;
}

static bool line_starting_after(const char *s, size_t end) { return end > 0 && s[end - 1] == '\n'; }

/* The body of a raw block from p up to "{% endraw %}" becomes text, with the same whitespace
 * control as text before any block tag. */
static int lx_raw(lexer *lx, size_t p, bool line_starting, size_t *endp) {
    const char *s = lx->s;
    size_t e = lx->len;
    for (size_t q = p; q + 1 < e; q++) {
        if (s[q] != '{' || s[q + 1] != '%') continue;
        size_t r = q + 2;
        char sign = (r < e && (s[r] == '-' || s[r] == '+')) ? s[r] : 0;
        if (sign) r++;
        r += ws_run(s, r, e);
        if (!starts(lx, r, "endraw")) continue;
        r += 6;
        r += ws_run(s, r, e);
        size_t end = 0;
        if (starts(lx, r, "+%}")) end = r + 3;
        else if (starts(lx, r, "-%}")) end = r + 3 + ws_run(s, r + 3, e);
        else if (starts(lx, r, "%}")) end = r + 2 + (r + 2 < e && s[r + 2] == '\n');
        if (!end) continue;
        size_t n = q - p;
        if (sign == '-') {
            n = rstrip_len(s + p, n);
        } else if (sign != '+') {
            size_t l_pos = 0;
            for (size_t i = n; i > 0; i--)
                if (s[p + i - 1] == '\n') {
                    l_pos = i;
                    break;
                }
            if ((l_pos > 0 || line_starting) && n > l_pos && ws_run(s, p + l_pos, p + n) == n - l_pos) n = l_pos;
        }
        if (n) {
            tmpl_tok *k = lx_push(lx, TK_TEXT, p);
            if (!k) return awq_seterr(lx->err, AWQ_ENOMEM, "out of memory");
            k->s = s + p;
            k->n = n;
        }
        *endp = end;
        return 0;
    }
    return lx_fail(lx, p, "missing end of raw directive '{% endraw %}'");
}

int tmpl_lex(char *err, tmpl_arena *a, const char *src, size_t len, tmpl_toks *toks) {
    lexer lx = {.err = err, .a = a, .s = src, .len = len, .line = 1, .toks = toks};
    size_t p = 0;
    bool line_starting = true; /* did the previous match end with "\n"? */
    while (p < len) {
        /* earliest tag start */
        size_t t = p;
        int kind = 0; /* '{', '%', '#' */
        for (; t + 1 < len; t++) {
            if (src[t] == '{' && (src[t + 1] == '{' || src[t + 1] == '%' || src[t + 1] == '#')) {
                kind = src[t + 1];
                break;
            }
        }
        if (!kind) {
            tmpl_tok *k = lx_push(&lx, TK_TEXT, p);
            if (!k) return awq_seterr(err, AWQ_ENOMEM, "out of memory");
            k->s = src + p;
            k->n = len - p;
            break;
        }
        char sign = (t + 2 < len && (src[t + 2] == '-' || src[t + 2] == '+')) ? src[t + 2] : 0;
        size_t text_n = t - p;
        if (sign == '-') {
            text_n = rstrip_len(src + p, text_n);
        } else if (sign != '+' && kind != '{') {
            /* lstrip_blocks: whitespace from the line start up to the tag goes */
            size_t l_pos = 0;
            for (size_t i = text_n; i > 0; i--) {
                if (src[p + i - 1] == '\n') {
                    l_pos = i;
                    break;
                }
            }
            if ((l_pos > 0 || line_starting) && text_n > l_pos &&
                ws_run(src, p + l_pos, p + text_n) == text_n - l_pos)
                text_n = l_pos;
        }
        if (text_n) {
            tmpl_tok *k = lx_push(&lx, TK_TEXT, p);
            if (!k) return awq_seterr(err, AWQ_ENOMEM, "out of memory");
            k->s = src + p;
            k->n = text_n;
        }
        size_t body = t + 2 + (sign ? 1 : 0);
        size_t end = 0;
        if (kind == '#') {
            size_t q = body;
            end = 0;
            for (; q + 1 < len; q++) {
                if (src[q] == '+' && q + 2 < len && src[q + 1] == '#' && src[q + 2] == '}') {
                    end = q + 3;
                } else if (src[q] == '-' && q + 2 < len && src[q + 1] == '#' && src[q + 2] == '}') {
                    end = q + 3 + ws_run(src, q + 3, len);
                } else if (src[q] == '#' && src[q + 1] == '}') {
                    end = q + 2 + (q + 2 < len && src[q + 2] == '\n');
                }
                if (end) break;
            }
            if (!end) return lx_fail(&lx, t, "missing end of comment tag '#}'");
        } else if (kind == '%' && raw_begin(&lx, body, &end)) {
            int rc = lx_raw(&lx, end, line_starting_after(src, end), &end);
            if (rc) return rc;
        } else {
            bool block = kind == '%';
            if (!lx_push(&lx, block ? TK_BLOCK_BEGIN : TK_VAR_BEGIN, t))
                return awq_seterr(err, AWQ_ENOMEM, "out of memory");
            int rc = lx_tag(&lx, body, block, &end);
            if (rc) return rc;
        }
        line_starting = src[end - 1] == '\n';
        p = end;
    }
    tmpl_tok *k = lx_push(&lx, TK_EOF, len);
    if (!k) return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    return 0;
}

void tmpl_toks_free(tmpl_toks *toks) {
    free(toks->v);
    toks->v = NULL;
    toks->n = toks->cap = 0;
}
