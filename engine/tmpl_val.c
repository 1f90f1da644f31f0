/* tmpl_val.c - the value type of the chat-template interpreter with Python's semantics, since
 * Jinja runs on Python and templates print Python's str() of what they compute: str()/repr(),
 * json.dumps (as HF's tojson calls it), ==, ordering, truthiness, float repr, and the Unicode
 * helpers the string methods need (whitespace as str.isspace, simple case mapping).
 *
 * Known limits (documented in docs/chat-templates.md): case mapping covers ASCII, Latin-1,
 * Latin Extended-A, Greek, Cyrillic and fullwidth Latin (the scripts chat content mostly uses
 * besides CJK, which has no case); of the one-to-many mappings only upper(ß) = SS is done; repr()
 * escapes the non-printable code points of the common blocks, not all of Unicode's.
 */
#include "tmpl_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "awq_err.h"

/* ================================================================= Unicode ==== */

size_t tmpl_find(const char *hay, size_t hn, const char *needle, size_t nn, size_t from) {
    if (nn == 0) return from <= hn ? from : SIZE_MAX;
    size_t i = from;
    while (i + nn <= hn) {
        const char *p = memchr(hay + i, needle[0], hn - nn + 1 - i);
        if (!p) {
            tmpl_work_units += (hn - i) / 16;
            return SIZE_MAX;
        }
        size_t j = (size_t)(p - hay);
        tmpl_work_units += (j - i) / 16 + (nn < 64 ? nn : 64) / 8 + 1;
        if (memcmp(p, needle, nn) == 0) return j;
        i = j + 1;
    }
    return SIZE_MAX;
}

bool tmpl_py_isspace(uint32_t cp) {
    if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1F)) return true;
    if (cp < 0x80) return false;
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

size_t tmpl_cp_at(const char *s, size_t n, uint32_t *cp) {
    if (n == 0) {
        *cp = 0;
        return 0;
    }
    size_t k = awq_utf8_decode(s, n, cp);
    if (k == 0) {
        *cp = 0xFFFD;
        return 1;
    }
    return k;
}

_Thread_local size_t tmpl_work_units;

size_t tmpl_cp_count(const char *s, size_t n) {
    size_t c = 0;
    tmpl_work_units += n / 16;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        i += tmpl_cp_at(s + i, n - i, &cp);
        c++;
    }
    return c;
}

/* simple one-to-one case pairs; returns the other case or cp */
uint32_t tmpl_lower_cp(uint32_t cp) {
    if (cp >= 'A' && cp <= 'Z') return cp + 32;
    if (cp < 0xC0) return cp;
    if ((cp >= 0xC0 && cp <= 0xDE && cp != 0xD7)) return cp + 32;
    if (cp == 0x178) return 0xFF;
    if (cp >= 0x100 && cp <= 0x17F) {
        if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E)) return (cp & 1) ? cp + 1 : cp;
        if (cp == 0x130 || cp == 0x131 || cp == 0x138 || cp == 0x149 || cp == 0x17F) return cp;
        return (cp & 1) ? cp : cp + 1;
    }
    if (cp >= 0x391 && cp <= 0x3A9 && cp != 0x3A2) return cp + 32;
    if (cp >= 0x410 && cp <= 0x42F) return cp + 32;
    if (cp >= 0x400 && cp <= 0x40F) return cp + 80;
    if (cp >= 0xFF21 && cp <= 0xFF3A) return cp + 32;
    return cp;
}

uint32_t tmpl_upper_cp(uint32_t cp) {
    if (cp >= 'a' && cp <= 'z') return cp - 32;
    if (cp < 0xB5) return cp;
    if (cp == 0xB5) return 0x39C;
    if (cp >= 0xE0 && cp <= 0xFE && cp != 0xF7) return cp - 32;
    if (cp == 0xFF) return 0x178;
    if (cp >= 0x100 && cp <= 0x17F) {
        if ((cp >= 0x139 && cp <= 0x148) || (cp >= 0x179 && cp <= 0x17E)) return (cp & 1) ? cp : cp - 1;
        if (cp == 0x130 || cp == 0x131 || cp == 0x138 || cp == 0x149) return cp == 0x131 ? 'I' : cp;
        if (cp == 0x17F) return 'S';
        return (cp & 1) ? cp - 1 : cp;
    }
    if (cp == 0x3C2) return 0x3A3;
    if (cp >= 0x3B1 && cp <= 0x3C9) return cp - 32;
    if (cp >= 0x430 && cp <= 0x44F) return cp - 32;
    if (cp >= 0x450 && cp <= 0x45F) return cp - 80;
    if (cp >= 0xFF41 && cp <= 0xFF5A) return cp - 32;
    return cp;
}

bool tmpl_is_cased_upper(uint32_t cp) { return tmpl_lower_cp(cp) != cp; }
bool tmpl_is_cased_lower(uint32_t cp) { return tmpl_upper_cp(cp) != cp || cp == 0xDF; }

/* str.isprintable() for the blocks we know; anything else counts as printable */
static bool py_printable(uint32_t cp) {
    if (cp < 0x20 || cp == 0x7F) return false;
    if (cp >= 0x80 && cp <= 0xA0) return false;
    if (cp == 0xAD || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200F)) return false;
    if (cp >= 0x2028 && cp <= 0x202F) return false;
    if (cp >= 0x205F && cp <= 0x206F) return false;
    if (cp == 0x3000 || cp == 0xFEFF || (cp >= 0xE000 && cp <= 0xF8FF)) return false;
    if (cp >= 0xFFF0 && cp <= 0xFFFB) return false;
    return true;
}

/* ================================================================= basics ==== */

bool tv_truthy(const tval *v) {
    switch (v->t) {
    case TV_UNDEF:
    case TV_NONE: return false;
    case TV_BOOL: return v->u.b;
    case TV_INT: return v->u.i != 0;
    case TV_FLOAT: return v->u.f != 0.0;
    case TV_STR: return v->u.s.n != 0;
    case TV_LIST: return v->u.l->n != 0;
    case TV_DICT: return v->u.d->n != 0;
    default: return true;
    }
}

const char *tv_typename(const tval *v) {
    switch (v->t) {
    case TV_UNDEF: return "Undefined";
    case TV_NONE: return "NoneType";
    case TV_BOOL: return "bool";
    case TV_INT: return "int";
    case TV_FLOAT: return "float";
    case TV_STR: return "str";
    case TV_LIST:
        return v->is_tuple == TVL_TUPLE ? "tuple" : v->is_tuple == TVL_KEYS ? "dict_keys"
             : v->is_tuple == TVL_VALUES ? "dict_values" : v->is_tuple == TVL_ITEMS ? "dict_items" : "list";
    case TV_DICT: return "dict";
    case TV_NS: return "Namespace";
    case TV_LOOP: return "LoopContext";
    default: return "function";
    }
}

void tv_float_repr(double f, char out[32]) {
    if (isnan(f)) {
        strcpy(out, "nan");
        return;
    }
    if (isinf(f)) {
        strcpy(out, f < 0 ? "-inf" : "inf");
        return;
    }
    char tmp[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f) break;
    }
    /* tmp = [-]d[.ddd]e[+-]xx */
    const char *p = tmp;
    bool neg = *p == '-';
    if (neg) p++;
    char digits[24];
    int nd = 0;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9' && nd < 20) digits[nd++] = *p;
    int exp10 = *p == 'e' ? atoi(p + 1) : 0;
    while (nd > 1 && digits[nd - 1] == '0') nd--;
    digits[nd] = 0;
    int decpt = exp10 + 1;
    char *o = out;
    if (neg) *o++ = '-';
    if (decpt <= -4 || decpt > 16) {
        *o++ = digits[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, digits + 1, (size_t)nd - 1);
            o += nd - 1;
        }
        char ex[16];
        snprintf(ex, sizeof ex, "e%c%02d", exp10 < 0 ? '-' : '+', exp10 < 0 ? -exp10 : exp10);
        strcpy(o, ex); /* at most 1 + 17 + 1 + 5 bytes in all */
        return;
    }
    if (decpt <= 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -decpt; i++) *o++ = '0';
        memcpy(o, digits, (size_t)nd);
        o += nd;
    } else if (decpt >= nd) {
        memcpy(o, digits, (size_t)nd);
        o += nd;
        for (int i = 0; i < decpt - nd; i++) *o++ = '0';
        *o++ = '.';
        *o++ = '0';
    } else {
        memcpy(o, digits, (size_t)decpt);
        o += decpt;
        *o++ = '.';
        memcpy(o, digits + decpt, (size_t)(nd - decpt));
        o += nd - decpt;
    }
    *o = 0;
}

/* ================================================================= str / repr ==== */

static int repr_str(awq_buf *b, const char *s, size_t n) {
    bool has_sq = memchr(s, '\'', n) != NULL, has_dq = memchr(s, '"', n) != NULL;
    char q = (has_sq && !has_dq) ? '"' : '\'';
    int rc = awq_buf_append(b, &q, 1);
    for (size_t i = 0; i < n && !rc;) {
        uint32_t cp;
        size_t k = tmpl_cp_at(s + i, n - i, &cp);
        if (cp == '\\') rc = awq_buf_puts(b, "\\\\");
        else if (cp == (uint32_t)q) rc = awq_buf_printf(b, "\\%c", q);
        else if (cp == '\n') rc = awq_buf_puts(b, "\\n");
        else if (cp == '\r') rc = awq_buf_puts(b, "\\r");
        else if (cp == '\t') rc = awq_buf_puts(b, "\\t");
        else if (py_printable(cp)) rc = awq_buf_append(b, s + i, k);
        else if (cp < 0x100) rc = awq_buf_printf(b, "\\x%02x", (unsigned)cp);
        else if (cp < 0x10000) rc = awq_buf_printf(b, "\\u%04x", (unsigned)cp);
        else rc = awq_buf_printf(b, "\\U%08x", (unsigned)cp);
        i += k;
    }
    return rc ? rc : awq_buf_append(b, &q, 1);
}

static int repr_any(awq_buf *b, const tval *v, bool as_repr, int depth);

static int repr_dict_body(awq_buf *b, const tmpl_dict *d, int depth) {
    int rc = awq_buf_puts(b, "{");
    for (size_t i = 0; i < d->n && !rc; i++) {
        if (i) rc = awq_buf_puts(b, ", ");
        if (!rc) rc = repr_any(b, &d->k[i], true, depth + 1);
        if (!rc) rc = awq_buf_puts(b, ": ");
        if (!rc) rc = repr_any(b, &d->v[i], true, depth + 1);
    }
    return rc ? rc : awq_buf_puts(b, "}");
}

static int repr_any(awq_buf *b, const tval *v, bool as_repr, int depth) {
    char num[40];
    if (depth > TMPL_DEPTH_MAX) return awq_buf_puts(b, "...");
    switch (v->t) {
    case TV_UNDEF: return as_repr ? awq_buf_puts(b, "Undefined") : 0;
    case TV_NONE: return awq_buf_puts(b, "None");
    case TV_BOOL: return awq_buf_puts(b, v->u.b ? "True" : "False");
    case TV_INT: return awq_buf_printf(b, "%lld", (long long)v->u.i);
    case TV_FLOAT: tv_float_repr(v->u.f, num); return awq_buf_puts(b, num);
    case TV_STR: return as_repr ? repr_str(b, v->u.s.p, v->u.s.n) : awq_buf_append(b, v->u.s.p, v->u.s.n);
    case TV_LIST: {
        bool tup = v->is_tuple == TVL_TUPLE, view = v->is_tuple > TVL_TUPLE;
        int rc = 0;
        if (view) rc = awq_buf_printf(b, "%s(", tv_typename(v)); /* dict_keys([...]) */
        if (!rc) rc = awq_buf_puts(b, tup ? "(" : "[");
        for (size_t i = 0; i < v->u.l->n && !rc; i++) {
            if (i) rc = awq_buf_puts(b, ", ");
            if (!rc) rc = repr_any(b, &v->u.l->v[i], true, depth + 1);
        }
        if (!rc && tup && v->u.l->n == 1) rc = awq_buf_puts(b, ",");
        if (!rc) rc = awq_buf_puts(b, tup ? ")" : "]");
        return rc ? rc : view ? awq_buf_puts(b, ")") : 0;
    }
    case TV_DICT: return repr_dict_body(b, v->u.d, depth);
    case TV_NS: {
        int rc = awq_buf_puts(b, "<Namespace ");
        if (!rc) rc = repr_dict_body(b, v->u.d, depth);
        return rc ? rc : awq_buf_puts(b, ">");
    }
    case TV_LOOP:
        return awq_buf_printf(b, "<LoopContext %lld/%zu>", (long long)v->u.loop->index0 + 1,
                              v->u.loop->items->n);
    default: return awq_buf_puts(b, "<built-in function>");
    }
}

int tv_str_append(awq_buf *b, const tval *v) { return repr_any(b, v, false, 0); }
int tv_repr_append(awq_buf *b, const tval *v) { return repr_any(b, v, true, 0); }

/* ================================================================= json ==== */

static int json_str(awq_buf *b, const char *s, size_t n, bool ensure_ascii) {
    int rc = awq_buf_append(b, "\"", 1);
    for (size_t i = 0; i < n && !rc;) {
        uint32_t cp;
        size_t k = tmpl_cp_at(s + i, n - i, &cp);
        switch (cp) {
        case '"': rc = awq_buf_puts(b, "\\\""); break;
        case '\\': rc = awq_buf_puts(b, "\\\\"); break;
        case '\n': rc = awq_buf_puts(b, "\\n"); break;
        case '\r': rc = awq_buf_puts(b, "\\r"); break;
        case '\t': rc = awq_buf_puts(b, "\\t"); break;
        case '\b': rc = awq_buf_puts(b, "\\b"); break;
        case '\f': rc = awq_buf_puts(b, "\\f"); break;
        default:
            if (cp < 0x20) {
                rc = awq_buf_printf(b, "\\u%04x", (unsigned)cp);
            } else if (ensure_ascii && cp >= 0x7F) {
                if (cp == 0x7F) rc = awq_buf_append(b, s + i, k);
                else if (cp < 0x10000) rc = awq_buf_printf(b, "\\u%04x", (unsigned)cp);
                else {
                    uint32_t c2 = cp - 0x10000;
                    rc = awq_buf_printf(b, "\\u%04x\\u%04x", (unsigned)(0xD800 + (c2 >> 10)),
                                        (unsigned)(0xDC00 + (c2 & 0x3FF)));
                }
            } else {
                rc = awq_buf_append(b, s + i, k);
            }
        }
        i += k;
    }
    return rc ? rc : awq_buf_append(b, "\"", 1);
}

static int json_float(awq_buf *b, double f) {
    if (isnan(f)) return awq_buf_puts(b, "NaN");
    if (isinf(f)) return awq_buf_puts(b, f < 0 ? "-Infinity" : "Infinity");
    char num[40];
    tv_float_repr(f, num);
    return awq_buf_puts(b, num);
}

static int json_newline(awq_buf *b, int indent, int level) {
    int rc = awq_buf_append(b, "\n", 1);
    for (int i = 0; i < indent * level && !rc; i++) rc = awq_buf_append(b, " ", 1);
    return rc;
}

/* dict key as json.dumps converts it */
static int json_key(char *err, awq_buf *b, const tval *k, bool ensure_ascii) {
    char num[40];
    switch (k->t) {
    case TV_STR: return json_str(b, k->u.s.p, k->u.s.n, ensure_ascii);
    case TV_INT: return awq_buf_printf(b, "\"%lld\"", (long long)k->u.i);
    case TV_BOOL: return awq_buf_puts(b, k->u.b ? "\"true\"" : "\"false\"");
    case TV_NONE: return awq_buf_puts(b, "\"null\"");
    case TV_FLOAT:
        if (isnan(k->u.f)) return awq_buf_puts(b, "\"NaN\"");
        if (isinf(k->u.f)) return awq_buf_puts(b, k->u.f < 0 ? "\"-Infinity\"" : "\"Infinity\"");
        tv_float_repr(k->u.f, num);
        return awq_buf_printf(b, "\"%s\"", num);
    default:
        return awq_seterr(err, AWQ_ETEMPLATE, "keys must be str, int, float, bool or None, not %s",
                          tv_typename(k));
    }
}

static int cmp_str_keys(const tval *a, const tval *b) {
    size_t n = a->u.s.n < b->u.s.n ? a->u.s.n : b->u.s.n;
    tmpl_work_units += n / 16;
    int c = memcmp(a->u.s.p, b->u.s.p, n);
    if (c) return c;
    return a->u.s.n < b->u.s.n ? -1 : a->u.s.n > b->u.s.n;
}

int tv_json_append(char *err, awq_buf *b, const tval *v, bool ensure_ascii, int indent,
                   const char *item_sep, const char *key_sep, bool sort_keys, int depth) {
    if (depth > TMPL_DEPTH_MAX) return awq_seterr(err, AWQ_ETEMPLATE, "tojson: value nested too deeply");
    if (!item_sep) item_sep = indent >= 0 ? "," : ", ";
    if (!key_sep) key_sep = ": ";
    int rc = 0;
    switch (v->t) {
    case TV_NONE: return awq_buf_puts(b, "null");
    case TV_BOOL: return awq_buf_puts(b, v->u.b ? "true" : "false");
    case TV_INT: return awq_buf_printf(b, "%lld", (long long)v->u.i);
    case TV_FLOAT: return json_float(b, v->u.f);
    case TV_STR: return json_str(b, v->u.s.p, v->u.s.n, ensure_ascii);
    case TV_LIST: {
        const tmpl_list *l = v->u.l;
        if (l->n == 0) return awq_buf_puts(b, "[]");
        rc = awq_buf_puts(b, "[");
        for (size_t i = 0; i < l->n && !rc; i++) {
            if (i) rc = awq_buf_puts(b, item_sep);
            if (!rc && indent >= 0) rc = json_newline(b, indent, depth + 1);
            if (!rc) rc = tv_json_append(err, b, &l->v[i], ensure_ascii, indent, item_sep, key_sep, sort_keys, depth + 1);
        }
        if (!rc && indent >= 0) rc = json_newline(b, indent, depth);
        return rc ? rc : awq_buf_puts(b, "]");
    }
    case TV_DICT: {
        const tmpl_dict *d = v->u.d;
        if (d->n == 0) return awq_buf_puts(b, "{}");
        size_t *order = malloc(d->n * sizeof *order);
        if (!order) return AWQ_ENOMEM;
        for (size_t i = 0; i < d->n; i++) order[i] = i;
        if (sort_keys) { /* insertion sort: dicts in templates are small */
            for (size_t i = 0; i < d->n; i++)
                if (d->k[i].t != TV_STR) {
                    free(order);
                    return awq_seterr(err, AWQ_ETEMPLATE, "tojson: sort_keys needs string keys");
                }
            for (size_t i = 1; i < d->n; i++) {
                size_t x = order[i], j = i;
                while (j > 0 && cmp_str_keys(&d->k[order[j - 1]], &d->k[x]) > 0) {
                    order[j] = order[j - 1];
                    j--;
                }
                order[j] = x;
            }
        }
        rc = awq_buf_puts(b, "{");
        for (size_t i = 0; i < d->n && !rc; i++) {
            size_t x = order[i];
            if (i) rc = awq_buf_puts(b, item_sep);
            if (!rc && indent >= 0) rc = json_newline(b, indent, depth + 1);
            if (!rc) rc = json_key(err, b, &d->k[x], ensure_ascii);
            if (!rc) rc = awq_buf_puts(b, key_sep);
            if (!rc) rc = tv_json_append(err, b, &d->v[x], ensure_ascii, indent, item_sep, key_sep, sort_keys, depth + 1);
        }
        free(order);
        if (!rc && indent >= 0) rc = json_newline(b, indent, depth);
        return rc ? rc : awq_buf_puts(b, "}");
    }
    default:
        return awq_seterr(err, AWQ_ETEMPLATE, "Object of type %s is not JSON serializable", tv_typename(v));
    }
}

/* ================================================================= compare ==== */

static bool is_num(const tval *v) { return v->t == TV_BOOL || v->t == TV_INT || v->t == TV_FLOAT; }

static int cmp_num(const tval *a, const tval *b) {
    if (a->t != TV_FLOAT && b->t != TV_FLOAT) {
        int64_t x = a->t == TV_BOOL ? a->u.b : a->u.i, y = b->t == TV_BOOL ? b->u.b : b->u.i;
        return x < y ? -1 : x > y;
    }
    double x = a->t == TV_FLOAT ? a->u.f : (double)(a->t == TV_BOOL ? a->u.b : a->u.i);
    double y = b->t == TV_FLOAT ? b->u.f : (double)(b->t == TV_BOOL ? b->u.b : b->u.i);
    if (x < y) return -1;
    if (x > y) return 1;
    return x == y ? 0 : 2; /* 2: unordered (NaN) */
}

bool tv_equal(const tval *a, const tval *b) {
    tmpl_work_units++;
    if (is_num(a) && is_num(b)) return cmp_num(a, b) == 0;
    if (a->t != b->t) return false;
    switch (a->t) {
    case TV_UNDEF:
    case TV_NONE: return true;
    case TV_STR:
        tmpl_work_units += a->u.s.n / 16;
        return a->u.s.n == b->u.s.n && memcmp(a->u.s.p, b->u.s.p, a->u.s.n) == 0;
    case TV_LIST:
        if (a->is_tuple != b->is_tuple || a->u.l->n != b->u.l->n) return false;
        for (size_t i = 0; i < a->u.l->n; i++)
            if (!tv_equal(&a->u.l->v[i], &b->u.l->v[i])) return false;
        return true;
    case TV_DICT:
        if (a->u.d->n != b->u.d->n) return false;
        for (size_t i = 0; i < a->u.d->n; i++) {
            const tval *o = tmpl_dict_get(b->u.d, &a->u.d->k[i]);
            if (!o || !tv_equal(&a->u.d->v[i], o)) return false;
        }
        return true;
    case TV_NS: return a->u.d == b->u.d;
    case TV_LOOP: return a->u.loop == b->u.loop;
    case TV_FUNC: return a->u.fn == b->u.fn;
    default: return false;
    }
}

int tv_compare(const tval *a, const tval *b, bool *ok) {
    *ok = true;
    if (is_num(a) && is_num(b)) {
        int c = cmp_num(a, b);
        if (c == 2) { /* NaN: every ordering is false; report "greater" for <, <= */
            *ok = true;
            return 2;
        }
        return c;
    }
    if (a->t == TV_STR && b->t == TV_STR) return cmp_str_keys(a, b) < 0 ? -1 : cmp_str_keys(a, b) > 0;
    if (a->t == TV_LIST && b->t == TV_LIST && a->is_tuple == b->is_tuple) {
        size_t n = a->u.l->n < b->u.l->n ? a->u.l->n : b->u.l->n;
        for (size_t i = 0; i < n; i++) {
            if (tv_equal(&a->u.l->v[i], &b->u.l->v[i])) continue;
            return tv_compare(&a->u.l->v[i], &b->u.l->v[i], ok);
        }
        return a->u.l->n < b->u.l->n ? -1 : a->u.l->n > b->u.l->n;
    }
    *ok = false;
    return 0;
}

/* ================================================================= dicts ==== */

const tval *tmpl_dict_get(const tmpl_dict *d, const tval *k) {
    for (size_t i = 0; i < d->n; i++)
        if (tv_equal(&d->k[i], k)) return &d->v[i];
    return NULL;
}

const tval *tmpl_dict_get_str(const tmpl_dict *d, const char *k, size_t n) {
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].t == TV_STR && d->k[i].u.s.n == n && memcmp(d->k[i].u.s.p, k, n) == 0) return &d->v[i];
    return NULL;
}
