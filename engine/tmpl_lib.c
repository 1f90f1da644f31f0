/* tmpl_lib.c - filters, tests and methods of the chat-template interpreter.
 *
 * Filters are Jinja 3.1's builtins (jinja2/filters.py) except tojson, which is Hugging Face's
 * override: json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False),
 * with no HTML escaping. Methods are Python's str and dict methods that chat templates call
 * (strip, startswith, split, get, items, ...). Lists and dicts are immutable (HF uses the
 * immutable sandbox), so append/update/pop do not exist here.
 */
#include "tmpl_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "awq_err.h"

/* ================================================================= helpers ==== */

static bool eq_name(const char *a, size_t n, const char *lit) { return strlen(lit) == n && memcmp(a, lit, n) == 0; }

/* argument i (positional) or keyword `kw`, or NULL */
static const tval *arg(const tval *args, size_t nargs, size_t i, const char *const *kwn, const tval *kwv,
                       size_t nkw, const char *kw) {
    if (i < nargs) return &args[i];
    for (size_t k = 0; k < nkw; k++)
        if (kw && strcmp(kwn[k], kw) == 0) return &kwv[k];
    return NULL;
}

static int check_args(tmpl_ctx *c, const tmpl_node *n, const char *what, size_t nargs, size_t maxpos,
                      const char *const *kwn, size_t nkw, const char *const *allowed) {
    if (nargs > maxpos) return tmpl_fail(c, n, "%s takes at most %zu argument(s), %zu given", what, maxpos, nargs);
    for (size_t k = 0; k < nkw; k++) {
        bool ok = false;
        for (size_t j = 0; allowed && allowed[j]; j++) ok = ok || strcmp(kwn[k], allowed[j]) == 0;
        if (!ok) return tmpl_fail(c, n, "%s got an unexpected keyword argument '%s'", what, kwn[k]);
    }
    return 0;
}

static int nomem(tmpl_ctx *c) { return tmpl_oom(c); }

static int need_str(tmpl_ctx *c, const tmpl_node *n, const tval *v, const char *what) {
    if (v->t == TV_UNDEF) return tmpl_fail(c, n, "%.*s", (int)(v->u.s.n ? v->u.s.n : 18), v->u.s.n ? v->u.s.p : "value is undefined");
    if (v->t != TV_STR) return tmpl_fail(c, n, "%s must be str, not %s", what, tv_typename(v));
    return 0;
}

static tval mk_list(tmpl_list *l, bool tuple) {
    tval v = {0};
    v.t = TV_LIST;
    v.is_tuple = tuple;
    v.u.l = l;
    return v;
}

/* set of code points in chars (for strip(chars)) */
static bool in_chars(uint32_t cp, const tval *chars) {
    if (!chars) return tmpl_py_isspace(cp);
    for (size_t i = 0; i < chars->u.s.n;) {
        uint32_t d;
        i += tmpl_cp_at(chars->u.s.p + i, chars->u.s.n - i, &d);
        if (d == cp) return true;
    }
    return false;
}

static tval strip(tval s, const tval *chars, bool left, bool right) {
    size_t b = 0, e = s.u.s.n;
    tmpl_work_units += (chars ? chars->u.s.n / 4 + 1 : 1) * (s.u.s.n / 16);
    if (left)
        while (b < e) {
            uint32_t cp;
            size_t k = tmpl_cp_at(s.u.s.p + b, e - b, &cp);
            if (!in_chars(cp, chars)) break;
            b += k;
        }
    if (right)
        while (e > b) {
            size_t st = e - 1;
            while (st > b && ((unsigned char)s.u.s.p[st] & 0xC0) == 0x80 && e - st < 4) st--;
            uint32_t cp;
            size_t k = tmpl_cp_at(s.u.s.p + st, e - st, &cp);
            if (st + k != e) {
                st = e - 1;
                tmpl_cp_at(s.u.s.p + st, 1, &cp);
            }
            if (!in_chars(cp, chars)) break;
            e = st;
        }
    return tv_str(s.u.s.p + b, e - b);
}

enum { CASE_LOWER, CASE_UPPER, CASE_CAPITALIZE, CASE_PYTITLE, CASE_JTITLE };

static bool jtitle_sep(uint32_t cp) { return tmpl_py_isspace(cp) || cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<'; }

static int recase(tmpl_ctx *c, tval s, int mode, tval *out) {
    awq_buf b = {0};
    bool prev_cased = false, first = true;
    int rc = 0;
    for (size_t i = 0; i < s.u.s.n && !rc;) {
        uint32_t cp, o;
        size_t k = tmpl_cp_at(s.u.s.p + i, s.u.s.n - i, &cp);
        bool cased = tmpl_lower_cp(cp) != cp || tmpl_upper_cp(cp) != cp;
        switch (mode) {
        case CASE_LOWER: o = tmpl_lower_cp(cp); break;
        case CASE_UPPER: o = tmpl_upper_cp(cp); break;
        case CASE_CAPITALIZE: o = first ? tmpl_upper_cp(cp) : tmpl_lower_cp(cp); break;
        case CASE_PYTITLE: o = cased ? (prev_cased ? tmpl_lower_cp(cp) : tmpl_upper_cp(cp)) : cp; break;
        default: /* Jinja's title filter: words start after runs of [-\s({[<] */
            o = jtitle_sep(cp) ? cp : (first ? tmpl_upper_cp(cp) : tmpl_lower_cp(cp));
            break;
        }
        if (mode == CASE_JTITLE) first = jtitle_sep(cp);
        else first = false;
        prev_cased = cased;
        if (cp == 0xDF && mode == CASE_UPPER) {
            rc = awq_buf_append(&b, "SS", 2); /* Python's one special case we keep: ß -> SS */
        } else if (o == cp) {
            rc = awq_buf_append(&b, s.u.s.p + i, k);
        } else {
            char enc[4];
            size_t w = awq_utf8_encode(o, enc);
            rc = awq_buf_append(&b, enc, w);
        }
        i += k;
    }
    if (rc) {
        awq_buf_free(&b);
        return nomem(c);
    }
    return tmpl_ctx_buf_to_str(c, &b, out);
}

static int replace(tmpl_ctx *c, tval s, tval old, tval neu, int64_t count, tval *out) {
    awq_buf b = {0};
    int rc = 0;
    int64_t done = 0;
    if (old.u.s.n == 0) { /* Python inserts between every code point */
        for (size_t i = 0; i <= s.u.s.n && !rc;) {
            if (count < 0 || done < count) {
                rc = awq_buf_append(&b, neu.u.s.p, neu.u.s.n);
                done++;
            }
            if (i == s.u.s.n) break;
            uint32_t cp;
            size_t k = tmpl_cp_at(s.u.s.p + i, s.u.s.n - i, &cp);
            if (!rc) rc = awq_buf_append(&b, s.u.s.p + i, k);
            i += k;
            if (b.len > ENG_TMPL_OUT_MAX) break;
        }
    } else {
        size_t i = 0;
        while (!rc) {
            size_t j = (count < 0 || done < count) ? tmpl_find(s.u.s.p, s.u.s.n, old.u.s.p, old.u.s.n, i) : SIZE_MAX;
            if (j == SIZE_MAX) {
                rc = awq_buf_append(&b, s.u.s.p + i, s.u.s.n - i);
                break;
            }
            rc = awq_buf_append(&b, s.u.s.p + i, j - i);
            if (!rc) rc = awq_buf_append(&b, neu.u.s.p, neu.u.s.n);
            i = j + old.u.s.n;
            done++;
            if (b.len > ENG_TMPL_OUT_MAX) break;
        }
    }
    if (!rc && b.len > ENG_TMPL_OUT_MAX) {
        awq_buf_free(&b);
        return tmpl_fail(c, NULL, "replace() result longer than %u bytes", (unsigned)ENG_TMPL_OUT_MAX);
    }
    if (rc) {
        awq_buf_free(&b);
        return nomem(c);
    }
    return tmpl_ctx_buf_to_str(c, &b, out);
}

/* Python str.split(sep=None, maxsplit=-1) */
static int split(tmpl_ctx *c, const tmpl_node *n, tval s, const tval *sep, int64_t maxsplit, tval *out) {
    size_t cap = 8, cnt = 0;
    tval *parts = malloc(cap * sizeof *parts);
    if (!parts) return nomem(c);
    const char *p = s.u.s.p;
    size_t len = s.u.s.n, i = 0;
    int rc = 0;
    tmpl_work_units += len / 16;
#define ADD_PART(ptr, l)                                                      \
    do {                                                                      \
        if (cnt == cap) {                                                     \
            tval *np = realloc(parts, cap * 2 * sizeof *parts);               \
            if (!np) { rc = AWQ_ENOMEM; goto done; }                          \
            parts = np;                                                       \
            cap *= 2;                                                         \
        }                                                                     \
        parts[cnt++] = tv_str((ptr), (l));                                    \
    } while (0)
    if (!sep || sep->t == TV_NONE) {
        for (;;) {
            while (i < len) { /* skip whitespace */
                uint32_t cp;
                size_t k = tmpl_cp_at(p + i, len - i, &cp);
                if (!tmpl_py_isspace(cp)) break;
                i += k;
            }
            if (i >= len) break;
            if (maxsplit >= 0 && (int64_t)cnt == maxsplit) {
                ADD_PART(p + i, len - i); /* the rest, trailing whitespace kept */
                break;
            }
            size_t st = i;
            while (i < len) {
                uint32_t cp;
                size_t k = tmpl_cp_at(p + i, len - i, &cp);
                if (tmpl_py_isspace(cp)) break;
                i += k;
            }
            ADD_PART(p + st, i - st);
        }
    } else {
        if (sep->t != TV_STR) {
            free(parts);
            return tmpl_fail(c, n, "must be str or None, not %s", tv_typename(sep));
        }
        if (sep->u.s.n == 0) {
            free(parts);
            return tmpl_fail(c, n, "empty separator");
        }
        size_t st = 0;
        while (maxsplit < 0 || (int64_t)cnt < maxsplit) {
            size_t j = tmpl_find(p, len, sep->u.s.p, sep->u.s.n, st);
            if (j == SIZE_MAX) break;
            ADD_PART(p + st, j - st);
            st = j + sep->u.s.n;
        }
        ADD_PART(p + st, len - st);
    }
#undef ADD_PART
done:
    if (!rc) {
        tmpl_list *l = tmpl_ctx_newlist(c, cnt);
        if (!l) rc = AWQ_ENOMEM;
        else {
            if (cnt) memcpy(l->v, parts, cnt * sizeof *parts);
            *out = mk_list(l, false);
        }
    }
    free(parts);
    return rc ? nomem(c) : 0;
}

static bool affix(tval s, tval x, bool start) {
    tmpl_work_units += x.u.s.n / 16;
    if (x.u.s.n > s.u.s.n) return false;
    return memcmp(s.u.s.p + (start ? 0 : s.u.s.n - x.u.s.n), x.u.s.p, x.u.s.n) == 0;
}

/* Python int(str) / float(str), used by the int and float filters */
static bool parse_py_int(tval s, int base, int64_t *out) {
    tval t = strip(s, NULL, true, true);
    const char *p = t.u.s.p;
    size_t n = t.u.s.n, i = 0;
    bool neg = false;
    if (i < n && (p[i] == '+' || p[i] == '-')) neg = p[i++] == '-';
    if (base == 16 && i + 1 < n && p[i] == '0' && (p[i + 1] | 0x20) == 'x') i += 2;
    if (i >= n) return false;
    uint64_t v = 0;
    bool prev_us = true;
    for (; i < n; i++) {
        int d;
        char ch = p[i];
        if (ch == '_') {
            if (prev_us) return false;
            prev_us = true;
            continue;
        }
        if (ch >= '0' && ch <= '9') d = ch - '0';
        else if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') d = (ch | 0x20) - 'a' + 10;
        else return false;
        if (d >= base) return false;
        if (v > (uint64_t)INT64_MAX / (uint64_t)base) return false;
        v = v * (uint64_t)base + (uint64_t)d;
        if (v > (uint64_t)INT64_MAX) return false;
        prev_us = false;
    }
    if (prev_us) return false;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return true;
}

static bool parse_py_float(tval s, double *out) {
    tval t = strip(s, NULL, true, true);
    char buf[128];
    size_t o = 0;
    for (size_t i = 0; i < t.u.s.n; i++) {
        if (t.u.s.p[i] == '_') continue;
        if (o + 1 >= sizeof buf) return false;
        buf[o++] = t.u.s.p[i];
    }
    buf[o] = 0;
    if (o == 0) return false;
    for (size_t i = 0; i < o; i++) /* strtod accepts hex floats and "infinity..." prefixes; Python too, mostly */
        if (buf[i] == 'x' || buf[i] == 'X') return false;
    char *end;
    *out = strtod(buf, &end);
    return *end == 0;
}

static int do_len(tmpl_ctx *c, const tmpl_node *n, const tval *v, int64_t *out) {
    switch (v->t) {
    case TV_UNDEF: *out = 0; return 0;
    case TV_STR: *out = (int64_t)tmpl_cp_count(v->u.s.p, v->u.s.n); return 0;
    case TV_LIST: *out = (int64_t)v->u.l->n; return 0;
    case TV_DICT: *out = (int64_t)v->u.d->n; return 0;
    case TV_LOOP: *out = (int64_t)v->u.loop->items->n; return 0;
    default: return tmpl_fail(c, n, "object of type '%s' has no len()", tv_typename(v));
    }
}

static const char *const known_filters[] = {
    "default", "d", "safe", "length", "count", "string", "trim", "lower", "upper", "capitalize", "title",
    "replace", "tojson", "first", "last", "list", "reverse", "items", "join", "int", "float", "abs", "round",
    "escape", "e", "map", "select", "reject", "selectattr", "rejectattr", "sum", NULL};

static const char *const known_tests[] = {
    "defined", "undefined", "none", "string", "number", "integer", "float", "boolean", "true", "false",
    "mapping", "iterable", "sequence", "callable", "sameas", "equalto", "eq", "==", "ne", "!=", "lt", "<",
    "le", "<=", "gt", ">", "ge", ">=", "in", "odd", "even", "divisibleby", "lower", "upper", "escaped", NULL};

static bool known(const char *const *tab, const char *name, size_t len) {
    for (size_t i = 0; tab[i]; i++)
        if (eq_name(name, len, tab[i])) return true;
    return false;
}

bool tmpl_filter_known(const char *name, size_t len) { return known(known_filters, name, len); }
bool tmpl_test_known(const char *name, size_t len) { return known(known_tests, name, len); }

/* ================================================================= tests ==== */

int tmpl_test(tmpl_ctx *c, const tmpl_node *n, tval v, const tval *args, size_t nargs, bool *out) {
    const char *nm = n->name;
    size_t nl = n->name_len;
#define IS(lit) eq_name(nm, nl, lit)
    const tval *a0 = nargs > 0 ? &args[0] : NULL;
    if (IS("defined")) *out = v.t != TV_UNDEF;
    else if (IS("undefined")) *out = v.t == TV_UNDEF;
    else if (IS("none")) *out = v.t == TV_NONE;
    else if (IS("string")) *out = v.t == TV_STR;
    else if (IS("number")) *out = v.t == TV_INT || v.t == TV_FLOAT || v.t == TV_BOOL;
    else if (IS("integer")) *out = v.t == TV_INT;
    else if (IS("float")) *out = v.t == TV_FLOAT;
    else if (IS("boolean")) *out = v.t == TV_BOOL;
    else if (IS("true")) *out = v.t == TV_BOOL && v.u.b;
    else if (IS("false")) *out = v.t == TV_BOOL && !v.u.b;
    else if (IS("mapping")) *out = v.t == TV_DICT;
    else if (IS("iterable")) *out = v.t == TV_UNDEF || v.t == TV_STR || v.t == TV_LIST || v.t == TV_DICT;
    else if (IS("sequence")) *out = v.t == TV_UNDEF || v.t == TV_STR || v.t == TV_LIST || v.t == TV_DICT;
    else if (IS("callable")) *out = v.t == TV_FUNC;
    else if (IS("escaped")) *out = false;
    else if (IS("lower") || IS("upper")) {
        /* str.islower/isupper: at least one cased character and none of the other case */
        if (v.t != TV_STR) {
            *out = false;
            return 0;
        }
        bool any = false, bad = false;
        for (size_t i = 0; i < v.u.s.n;) {
            uint32_t cp;
            i += tmpl_cp_at(v.u.s.p + i, v.u.s.n - i, &cp);
            bool up = tmpl_is_cased_upper(cp), lo = tmpl_is_cased_lower(cp);
            if (up || lo) any = true;
            if (IS("lower") ? up : lo) bad = true;
        }
        *out = any && !bad;
    } else if (IS("odd") || IS("even") || IS("divisibleby")) {
        if (v.t == TV_UNDEF) return tmpl_fail(c, n, "%.*s", (int)v.u.s.n, v.u.s.p);
        if (v.t != TV_INT && v.t != TV_BOOL) return tmpl_fail(c, n, "test '%.*s' needs an integer, not %s", (int)nl, nm, tv_typename(&v));
        int64_t x = v.t == TV_BOOL ? v.u.b : v.u.i;
        if (IS("divisibleby")) {
            if (!a0 || (a0->t != TV_INT && a0->t != TV_BOOL)) return tmpl_fail(c, n, "divisibleby needs an integer argument");
            int64_t d = a0->t == TV_BOOL ? a0->u.b : a0->u.i;
            if (d == 0) return tmpl_fail(c, n, "integer division or modulo by zero");
            *out = d == -1 || x % d == 0;
        } else {
            *out = ((x % 2) != 0) == IS("odd");
        }
    } else if (IS("sameas")) {
        if (!a0) return tmpl_fail(c, n, "test 'sameas' needs an argument");
        /* identity: exact for None/True/False, and value identity for the rest as far as we can tell */
        *out = v.t == a0->t && tv_equal(&v, a0) && (v.t != TV_LIST || v.u.l == a0->u.l) &&
               (v.t != TV_DICT || v.u.d == a0->u.d);
    } else if (IS("in")) {
        if (!a0) return tmpl_fail(c, n, "test 'in' needs an argument");
        if (a0->t == TV_STR) {
            if (v.t != TV_STR) return tmpl_fail(c, n, "'in <string>' requires string as left operand, not %s", tv_typename(&v));
            *out = tmpl_find(a0->u.s.p, a0->u.s.n, v.u.s.p, v.u.s.n, 0) != SIZE_MAX;
        } else if (a0->t == TV_LIST) {
            *out = false;
            for (size_t i = 0; i < a0->u.l->n; i++)
                if (tv_equal(&a0->u.l->v[i], &v)) { *out = true; break; }
        } else if (a0->t == TV_DICT) {
            *out = tmpl_dict_get(a0->u.d, &v) != NULL;
        } else if (a0->t == TV_UNDEF) {
            *out = false;
        } else {
            return tmpl_fail(c, n, "argument of type '%s' is not iterable", tv_typename(a0));
        }
    } else {
        int op = IS("equalto") || IS("eq") || IS("==") ? TOP_EQ : IS("ne") || IS("!=") ? TOP_NE
               : IS("lt") || IS("<") ? TOP_LT : IS("le") || IS("<=") ? TOP_LE
               : IS("gt") || IS(">") ? TOP_GT : IS("ge") || IS(">=") ? TOP_GE : 0;
        if (!op) return tmpl_fail(c, n, "no test named '%.*s'", (int)nl, nm);
        if (!a0) return tmpl_fail(c, n, "test '%.*s' needs an argument", (int)nl, nm);
        if (op == TOP_EQ) *out = tv_equal(&v, a0);
        else if (op == TOP_NE) *out = !tv_equal(&v, a0);
        else {
            if (v.t == TV_UNDEF || a0->t == TV_UNDEF) {
                const tval *u = v.t == TV_UNDEF ? &v : a0;
                return tmpl_fail(c, n, "%.*s", (int)u->u.s.n, u->u.s.p);
            }
            bool ok;
            int k = tv_compare(&v, a0, &ok);
            if (!ok) return tmpl_fail(c, n, "'%.*s' not supported between instances of '%s' and '%s'", (int)nl, nm, tv_typename(&v), tv_typename(a0));
            *out = k == 2 ? false : op == TOP_LT ? k < 0 : op == TOP_LE ? k <= 0 : op == TOP_GT ? k > 0 : k >= 0;
        }
    }
#undef IS
    return 0;
}

/* ================================================================= filters ==== */

/* select/reject/selectattr/rejectattr/map helpers: run test `name` on item */
static int run_test_named(tmpl_ctx *c, const tmpl_node *n, tval item, const tval *tname, const tval *targs,
                          size_t ntargs, bool *out) {
    tmpl_node fake = *n;
    if (!tname) { /* no test: truthiness */
        *out = tv_truthy(&item);
        return 0;
    }
    if (tname->t != TV_STR) return tmpl_fail(c, n, "test name must be a string");
    fake.name = tname->u.s.p;
    fake.name_len = tname->u.s.n;
    return tmpl_test(c, &fake, item, targs, ntargs, out);
}

static int attr_path(tmpl_ctx *c, const tmpl_node *n, tval item, const tval *attr, tval *out) {
    if (!attr || attr->t != TV_STR) return tmpl_fail(c, n, "attribute name must be a string");
    /* Jinja's make_attrgetter: dotted path, integer parts index */
    const char *p = attr->u.s.p;
    size_t len = attr->u.s.n, st = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && p[i] != '.') continue;
        int rc = tmpl_ctx_getattr(c, n, item, p + st, i - st, &item);
        if (rc) return rc;
        st = i + 1;
    }
    *out = item;
    return 0;
}

int tmpl_filter(tmpl_ctx *c, const tmpl_node *n, tval in, const tval *args, size_t nargs, const char *const *kwn,
                const tval *kwv, size_t nkw, tval *out) {
    const char *nm = n->name;
    size_t nl = n->name_len;
    int rc;
    tval s;
#define IS(lit) eq_name(nm, nl, lit)
#define ARG(i, kw) arg(args, nargs, (i), kwn, kwv, nkw, (kw))
    if (IS("default") || IS("d")) {
        static const char *const kw[] = {"default_value", "boolean", NULL};
        if ((rc = check_args(c, n, "default()", nargs, 2, kwn, nkw, kw))) return rc;
        const tval *dv = ARG(0, "default_value"), *bo = ARG(1, "boolean");
        bool use = in.t == TV_UNDEF || (bo && tv_truthy(bo) && !tv_truthy(&in));
        *out = use ? (dv ? *dv : tv_str("", 0)) : in;
        return 0;
    }
    if (IS("safe")) {
        *out = in;
        return 0;
    }
    if (IS("length") || IS("count")) {
        int64_t k = 0;
        if ((rc = do_len(c, n, &in, &k))) return rc;
        *out = tv_int(k);
        return 0;
    }
    if (IS("string")) return tmpl_ctx_str(c, &in, out);
    if (IS("trim")) {
        static const char *const kw[] = {"chars", NULL};
        if ((rc = check_args(c, n, "trim()", nargs, 1, kwn, nkw, kw))) return rc;
        const tval *ch = ARG(0, "chars");
        if (ch && ch->t == TV_NONE) ch = NULL;
        if (ch && (rc = need_str(c, n, ch, "trim() chars"))) return rc;
        if ((rc = tmpl_ctx_str(c, &in, &s))) return rc;
        *out = strip(s, ch, true, true);
        return 0;
    }
    if (IS("lower") || IS("upper") || IS("capitalize") || IS("title")) {
        if ((rc = tmpl_ctx_str(c, &in, &s))) return rc;
        return recase(c, s, IS("lower") ? CASE_LOWER : IS("upper") ? CASE_UPPER : IS("capitalize") ? CASE_CAPITALIZE : CASE_JTITLE, out);
    }
    if (IS("replace")) {
        static const char *const kw[] = {"old", "new", "count", NULL};
        if ((rc = check_args(c, n, "replace()", nargs, 3, kwn, nkw, kw))) return rc;
        const tval *o = ARG(0, "old"), *nw = ARG(1, "new"), *cnt = ARG(2, "count");
        if (!o || !nw) return tmpl_fail(c, n, "replace() needs the old and new strings");
        tval os, ns;
        if ((rc = tmpl_ctx_str(c, &in, &s)) || (rc = tmpl_ctx_str(c, o, &os)) || (rc = tmpl_ctx_str(c, nw, &ns))) return rc;
        int64_t k = -1;
        if (cnt && cnt->t != TV_NONE) {
            if (cnt->t != TV_INT) return tmpl_fail(c, n, "replace() count must be an integer");
            k = cnt->u.i;
        }
        return replace(c, s, os, ns, k, out);
    }
    if (IS("tojson")) {
        static const char *const kw[] = {"ensure_ascii", "indent", "separators", "sort_keys", NULL};
        if ((rc = check_args(c, n, "tojson()", nargs, 4, kwn, nkw, kw))) return rc;
        const tval *ea = ARG(0, "ensure_ascii"), *ind = ARG(1, "indent"), *sep = ARG(2, "separators"),
                   *sk = ARG(3, "sort_keys");
        int indent = -1;
        if (ind && ind->t != TV_NONE) {
            if (ind->t != TV_INT || ind->u.i < 0 || ind->u.i > 64) return tmpl_fail(c, n, "tojson() indent must be an integer 0..64");
            indent = (int)ind->u.i;
        }
        char isep[16], ksep[16];
        const char *ip = NULL, *kp = NULL;
        if (sep && sep->t != TV_NONE) {
            if (sep->t != TV_LIST || sep->u.l->n != 2 || sep->u.l->v[0].t != TV_STR || sep->u.l->v[1].t != TV_STR ||
                sep->u.l->v[0].u.s.n >= sizeof isep || sep->u.l->v[1].u.s.n >= sizeof ksep)
                return tmpl_fail(c, n, "tojson() separators must be a pair of short strings");
            memcpy(isep, sep->u.l->v[0].u.s.p, sep->u.l->v[0].u.s.n);
            isep[sep->u.l->v[0].u.s.n] = 0;
            memcpy(ksep, sep->u.l->v[1].u.s.p, sep->u.l->v[1].u.s.n);
            ksep[sep->u.l->v[1].u.s.n] = 0;
            ip = isep;
            kp = ksep;
        }
        awq_buf b = {0};
        char jerr[AWQ_ERR_LEN] = "";
        rc = tv_json_append(jerr, &b, &in, ea && tv_truthy(ea), indent, ip, kp, sk && tv_truthy(sk), 0);
        if (rc) {
            awq_buf_free(&b);
            return rc == AWQ_ENOMEM ? nomem(c) : tmpl_fail(c, n, "%s", jerr);
        }
        return tmpl_ctx_buf_to_str(c, &b, out);
    }
    if (IS("first") || IS("last")) {
        tmpl_list *l;
        if ((rc = tmpl_ctx_iter(c, n, in, &l))) return rc;
        if (l->n == 0) {
            *out = tv_undef();
            return 0;
        }
        *out = IS("first") ? l->v[0] : l->v[l->n - 1];
        return 0;
    }
    if (IS("list")) {
        tmpl_list *l;
        if ((rc = tmpl_ctx_iter(c, n, in, &l))) return rc;
        *out = mk_list(l, false);
        return 0;
    }
    if (IS("reverse")) {
        if (in.t == TV_STR) {
            awq_buf b = {0};
            size_t e = in.u.s.n;
            while (e > 0) {
                size_t st = e - 1;
                while (st > 0 && ((unsigned char)in.u.s.p[st] & 0xC0) == 0x80 && e - st < 4) st--;
                if (awq_buf_append(&b, in.u.s.p + st, e - st)) {
                    awq_buf_free(&b);
                    return nomem(c);
                }
                e = st;
            }
            return tmpl_ctx_buf_to_str(c, &b, out);
        }
        tmpl_list *l, *r;
        if ((rc = tmpl_ctx_iter(c, n, in, &l))) return rc;
        if (!(r = tmpl_ctx_newlist(c, l->n))) return nomem(c);
        for (size_t i = 0; i < l->n; i++) r->v[i] = l->v[l->n - 1 - i];
        *out = mk_list(r, false);
        return 0;
    }
    if (IS("items")) {
        if (in.t == TV_UNDEF) {
            tmpl_list *l = tmpl_ctx_newlist(c, 0);
            if (!l) return nomem(c);
            *out = mk_list(l, false);
            return 0;
        }
        if (in.t != TV_DICT) return tmpl_fail(c, n, "can only get item pairs from a mapping");
        return tmpl_method(c, n, in, "items", 5, NULL, 0, NULL, NULL, 0, out);
    }
    if (IS("join")) {
        static const char *const kw[] = {"d", "attribute", NULL};
        if ((rc = check_args(c, n, "join()", nargs, 2, kwn, nkw, kw))) return rc;
        const tval *d = ARG(0, "d"), *at = ARG(1, "attribute");
        tval ds = tv_str("", 0);
        if (d && (rc = tmpl_ctx_str(c, d, &ds))) return rc;
        tmpl_list *l;
        if ((rc = tmpl_ctx_iter(c, n, in, &l))) return rc;
        awq_buf b = {0};
        for (size_t i = 0; i < l->n; i++) {
            tval item = l->v[i];
            if (at && (rc = attr_path(c, n, item, at, &item))) {
                awq_buf_free(&b);
                return rc;
            }
            if ((i && awq_buf_append(&b, ds.u.s.p, ds.u.s.n)) || tv_str_append(&b, &item)) {
                awq_buf_free(&b);
                return nomem(c);
            }
            if (b.len > ENG_TMPL_OUT_MAX) {
                awq_buf_free(&b);
                return tmpl_fail(c, n, "join() result longer than %u bytes", (unsigned)ENG_TMPL_OUT_MAX);
            }
        }
        return tmpl_ctx_buf_to_str(c, &b, out);
    }
    if (IS("int")) {
        static const char *const kw[] = {"default", "base", NULL};
        if ((rc = check_args(c, n, "int()", nargs, 2, kwn, nkw, kw))) return rc;
        const tval *dv = ARG(0, "default"), *bs = ARG(1, "base");
        int base = bs && bs->t == TV_INT ? (int)bs->u.i : 10;
        if (base < 2 || base > 36) return tmpl_fail(c, n, "int() base must be 2..36");
        int64_t iv;
        double fv;
        if (in.t == TV_INT || in.t == TV_BOOL) *out = tv_int(in.t == TV_BOOL ? in.u.b : in.u.i);
        else if (in.t == TV_FLOAT && isfinite(in.u.f) && fabs(in.u.f) < 9.2e18) *out = tv_int((int64_t)in.u.f);
        else if (in.t == TV_STR && parse_py_int(in, base, &iv)) *out = tv_int(iv);
        else if (in.t == TV_STR && parse_py_float(in, &fv) && isfinite(fv) && fabs(fv) < 9.2e18) *out = tv_int((int64_t)fv);
        else *out = dv ? *dv : tv_int(0);
        return 0;
    }
    if (IS("float")) {
        static const char *const kw[] = {"default", NULL};
        if ((rc = check_args(c, n, "float()", nargs, 1, kwn, nkw, kw))) return rc;
        const tval *dv = ARG(0, "default");
        double fv;
        if (in.t == TV_INT || in.t == TV_BOOL) *out = tv_float((double)(in.t == TV_BOOL ? in.u.b : in.u.i));
        else if (in.t == TV_FLOAT) *out = in;
        else if (in.t == TV_STR && parse_py_float(in, &fv)) *out = tv_float(fv);
        else *out = dv ? *dv : tv_float(0.0);
        return 0;
    }
    if (IS("abs")) {
        if (in.t == TV_INT && in.u.i != INT64_MIN) *out = tv_int(in.u.i < 0 ? -in.u.i : in.u.i);
        else if (in.t == TV_BOOL) *out = tv_int(in.u.b);
        else if (in.t == TV_FLOAT) *out = tv_float(fabs(in.u.f));
        else return tmpl_fail(c, n, "bad operand type for abs(): '%s'", tv_typename(&in));
        return 0;
    }
    if (IS("round")) {
        static const char *const kw[] = {"precision", "method", NULL};
        if ((rc = check_args(c, n, "round()", nargs, 2, kwn, nkw, kw))) return rc;
        const tval *pr = ARG(0, "precision"), *me = ARG(1, "method");
        int64_t prec = pr && pr->t == TV_INT ? pr->u.i : 0;
        if (prec < -20 || prec > 20) return tmpl_fail(c, n, "round() precision out of range");
        if (in.t != TV_INT && in.t != TV_FLOAT && in.t != TV_BOOL) return tmpl_fail(c, n, "round() needs a number, not %s", tv_typename(&in));
        double x = in.t == TV_FLOAT ? in.u.f : (double)(in.t == TV_BOOL ? in.u.b : in.u.i), m = pow(10.0, (double)prec);
        if (me && me->t == TV_STR && eq_name(me->u.s.p, me->u.s.n, "floor")) *out = tv_float(floor(x * m) / m);
        else if (me && me->t == TV_STR && eq_name(me->u.s.p, me->u.s.n, "ceil")) *out = tv_float(ceil(x * m) / m);
        else if (!me || (me->t == TV_STR && eq_name(me->u.s.p, me->u.s.n, "common"))) {
            if (in.t != TV_FLOAT) *out = in.t == TV_BOOL ? tv_int(in.u.b) : in; /* round(int, n) stays int */
            else *out = tv_float(nearbyint(x * m) / m); /* half to even, as Python */
        } else
            return tmpl_fail(c, n, "method must be common, ceil or floor");
        return 0;
    }
    if (IS("escape") || IS("e")) {
        if ((rc = tmpl_ctx_str(c, &in, &s))) return rc;
        awq_buf b = {0};
        int r = 0;
        for (size_t i = 0; i < s.u.s.n && !r; i++) {
            switch (s.u.s.p[i]) {
            case '&': r = awq_buf_puts(&b, "&amp;"); break;
            case '<': r = awq_buf_puts(&b, "&lt;"); break;
            case '>': r = awq_buf_puts(&b, "&gt;"); break;
            case '"': r = awq_buf_puts(&b, "&#34;"); break;
            case '\'': r = awq_buf_puts(&b, "&#39;"); break;
            default: r = awq_buf_append(&b, s.u.s.p + i, 1);
            }
        }
        if (r) {
            awq_buf_free(&b);
            return nomem(c);
        }
        return tmpl_ctx_buf_to_str(c, &b, out);
    }
    if (IS("map") || IS("select") || IS("reject") || IS("selectattr") || IS("rejectattr")) {
        tmpl_list *l, *r;
        if ((rc = tmpl_ctx_iter(c, n, in, &l))) return rc;
        if (!(r = tmpl_ctx_newlist(c, l->n))) return nomem(c);
        r->n = 0;
        bool is_map = IS("map"), attr_mode = IS("selectattr") || IS("rejectattr"), keep_true = IS("select") || IS("selectattr");
        const tval *attr = NULL, *def = NULL;
        if (is_map) {
            attr = ARG(99, "attribute");
            def = ARG(99, "default");
            if (!attr && nargs == 0) return tmpl_fail(c, n, "map() needs a filter name or attribute=");
        } else if (attr_mode) {
            if (nargs < 1) return tmpl_fail(c, n, "%.*s() needs an attribute name", (int)nl, nm);
            attr = &args[0];
        }
        for (size_t i = 0; i < l->n; i++) {
            tval item = l->v[i];
            if (is_map) {
                if (attr) {
                    if ((rc = attr_path(c, n, item, attr, &item))) return rc;
                    if (item.t == TV_UNDEF && def) item = *def;
                } else { /* map('filter', args...) */
                    if (args[0].t != TV_STR) return tmpl_fail(c, n, "map() filter name must be a string");
                    tmpl_node fake = *n;
                    fake.name = args[0].u.s.p;
                    fake.name_len = args[0].u.s.n;
                    if (eq_name(fake.name, fake.name_len, "map")) return tmpl_fail(c, n, "map() cannot map itself");
                    if ((rc = tmpl_filter(c, &fake, item, args + 1, nargs - 1, kwn, kwv, nkw, &item))) return rc;
                }
                r->v[r->n++] = item;
                continue;
            }
            tval subject = item;
            if (attr_mode && (rc = attr_path(c, n, item, attr, &subject))) return rc;
            size_t t0 = attr_mode ? 1 : 0;
            bool ok;
            if ((rc = run_test_named(c, n, subject, nargs > t0 ? &args[t0] : NULL, nargs > t0 + 1 ? args + t0 + 1 : NULL,
                                     nargs > t0 + 1 ? nargs - t0 - 1 : 0, &ok)))
                return rc;
            if (ok == keep_true) r->v[r->n++] = item;
        }
        *out = mk_list(r, false);
        return 0;
    }
    if (IS("sum")) {
        tmpl_list *l;
        if ((rc = tmpl_ctx_iter(c, n, in, &l))) return rc;
        const tval *at = ARG(99, "attribute"), *st = ARG(1, "start");
        tval acc = st ? *st : tv_int(0);
        for (size_t i = 0; i < l->n; i++) {
            tval item = l->v[i];
            if (at && (rc = attr_path(c, n, item, at, &item))) return rc;
            if ((acc.t != TV_INT && acc.t != TV_FLOAT && acc.t != TV_BOOL) ||
                (item.t != TV_INT && item.t != TV_FLOAT && item.t != TV_BOOL))
                return tmpl_fail(c, n, "sum() needs numbers");
            if (acc.t == TV_FLOAT || item.t == TV_FLOAT)
                acc = tv_float((acc.t == TV_FLOAT ? acc.u.f : (double)(acc.t == TV_BOOL ? acc.u.b : acc.u.i)) +
                               (item.t == TV_FLOAT ? item.u.f : (double)(item.t == TV_BOOL ? item.u.b : item.u.i)));
            else {
                int64_t x = acc.t == TV_BOOL ? acc.u.b : acc.u.i, y = item.t == TV_BOOL ? item.u.b : item.u.i, z;
                if (__builtin_add_overflow(x, y, &z)) return tmpl_fail(c, n, "integer overflow");
                acc = tv_int(z);
            }
        }
        *out = acc;
        return 0;
    }
#undef ARG
#undef IS
    return tmpl_fail(c, n, "no filter named '%.*s'", (int)nl, nm);
}

/* ================================================================= methods ==== */

static const char *const str_methods[] = {"strip", "lstrip", "rstrip", "startswith", "endswith", "split",
                                          "upper", "lower", "title", "capitalize", "replace", "find", "count",
                                          "join", "isdigit", "isspace", "isalpha", "isupper", "islower", NULL};
static const char *const dict_methods[] = {"get", "items", "keys", "values", NULL};

bool tmpl_has_method(const tval *self, const char *name, size_t len) {
    const char *const *tab = self->t == TV_STR ? str_methods : self->t == TV_DICT ? dict_methods : NULL;
    for (size_t i = 0; tab && tab[i]; i++)
        if (eq_name(name, len, tab[i])) return true;
    return false;
}

int tmpl_method(tmpl_ctx *c, const tmpl_node *n, tval self, const char *nm, size_t nl, const tval *args, size_t nargs,
                const char *const *kwn, const tval *kwv, size_t nkw, tval *out) {
    int rc;
#define IS(lit) eq_name(nm, nl, lit)
#define ARG(i, kw) arg(args, nargs, (i), kwn, kwv, nkw, (kw))
    if (self.t == TV_DICT) {
        if (IS("get")) {
            if (nargs < 1 || nargs > 2 || nkw) return tmpl_fail(c, n, "get() takes 1 or 2 arguments");
            const tval *v = tmpl_dict_get(self.u.d, &args[0]);
            *out = v ? *v : nargs == 2 ? args[1] : tv_none();
            return 0;
        }
        if (nargs || nkw) return tmpl_fail(c, n, "%.*s() takes no arguments", (int)nl, nm);
        tmpl_list *l = tmpl_ctx_newlist(c, self.u.d->n);
        if (!l) return nomem(c);
        for (size_t i = 0; i < self.u.d->n; i++) {
            if (IS("keys")) l->v[i] = self.u.d->k[i];
            else if (IS("values")) l->v[i] = self.u.d->v[i];
            else {
                tmpl_list *pair = tmpl_ctx_newlist(c, 2);
                if (!pair) return nomem(c);
                pair->v[0] = self.u.d->k[i];
                pair->v[1] = self.u.d->v[i];
                l->v[i] = mk_list(pair, true);
            }
        }
        *out = mk_list(l, false);
        out->is_tuple = IS("keys") ? TVL_KEYS : IS("values") ? TVL_VALUES : TVL_ITEMS;
        return 0;
    }
    if (self.t != TV_STR) return tmpl_fail(c, n, "'%s' object has no attribute '%.*s'", tv_typename(&self), (int)nl, nm);
    if (IS("strip") || IS("lstrip") || IS("rstrip")) {
        static const char *const kw[] = {"chars", NULL};
        if ((rc = check_args(c, n, "strip()", nargs, 1, kwn, nkw, kw))) return rc;
        const tval *ch = ARG(0, "chars");
        if (ch && ch->t == TV_NONE) ch = NULL;
        if (ch && (rc = need_str(c, n, ch, "strip arg"))) return rc;
        *out = strip(self, ch, !IS("rstrip"), !IS("lstrip"));
        return 0;
    }
    if (IS("startswith") || IS("endswith")) {
        if (nargs != 1 || nkw) return tmpl_fail(c, n, "%.*s() takes exactly one argument", (int)nl, nm);
        bool st = IS("startswith");
        if (args[0].t == TV_STR) {
            *out = tv_bool(affix(self, args[0], st));
            return 0;
        }
        if (args[0].t == TV_LIST && args[0].is_tuple) {
            bool any = false;
            for (size_t i = 0; i < args[0].u.l->n; i++) {
                if (args[0].u.l->v[i].t != TV_STR) return tmpl_fail(c, n, "tuple for %.*s must only contain str", (int)nl, nm);
                any = any || affix(self, args[0].u.l->v[i], st);
            }
            *out = tv_bool(any);
            return 0;
        }
        return tmpl_fail(c, n, "%.*s first arg must be str or a tuple of str, not %s", (int)nl, nm, tv_typename(&args[0]));
    }
    if (IS("split")) {
        static const char *const kw[] = {"sep", "maxsplit", NULL};
        if ((rc = check_args(c, n, "split()", nargs, 2, kwn, nkw, kw))) return rc;
        const tval *sep = ARG(0, "sep"), *ms = ARG(1, "maxsplit");
        int64_t m = -1;
        if (ms) {
            if (ms->t != TV_INT) return tmpl_fail(c, n, "split() maxsplit must be an integer");
            m = ms->u.i;
        }
        return split(c, n, self, sep, m, out);
    }
    if (IS("upper") || IS("lower") || IS("title") || IS("capitalize")) {
        if (nargs || nkw) return tmpl_fail(c, n, "%.*s() takes no arguments", (int)nl, nm);
        return recase(c, self, IS("upper") ? CASE_UPPER : IS("lower") ? CASE_LOWER : IS("title") ? CASE_PYTITLE : CASE_CAPITALIZE, out);
    }
    if (IS("replace")) {
        if (nargs < 2 || nargs > 3 || nkw) return tmpl_fail(c, n, "replace() takes 2 or 3 arguments");
        if ((rc = need_str(c, n, &args[0], "replace() argument 1")) || (rc = need_str(c, n, &args[1], "replace() argument 2"))) return rc;
        int64_t k = -1;
        if (nargs == 3) {
            if (args[2].t != TV_INT) return tmpl_fail(c, n, "replace() count must be an integer");
            k = args[2].u.i;
        }
        return replace(c, self, args[0], args[1], k, out);
    }
    if (IS("find") || IS("count")) {
        if (nargs != 1 || nkw) return tmpl_fail(c, n, "%.*s() takes exactly one argument", (int)nl, nm);
        if ((rc = need_str(c, n, &args[0], "argument"))) return rc;
        tval sub = args[0];
        int64_t found = -1, cnt = 0;
        if (!sub.u.s.n) { /* Python: found at 0, and between every code point */
            found = 0;
            cnt = (int64_t)tmpl_cp_count(self.u.s.p, self.u.s.n) + 1;
        } else {
            for (size_t i = 0; (i = tmpl_find(self.u.s.p, self.u.s.n, sub.u.s.p, sub.u.s.n, i)) != SIZE_MAX; i += sub.u.s.n) {
                if (found < 0) found = (int64_t)tmpl_cp_count(self.u.s.p, i);
                cnt++;
            }
        }
        *out = tv_int(IS("find") ? found : cnt);
        return 0;
    }
    if (IS("join")) {
        if (nargs != 1 || nkw) return tmpl_fail(c, n, "join() takes exactly one argument");
        tmpl_list *l;
        if ((rc = tmpl_ctx_iter(c, n, args[0], &l))) return rc;
        awq_buf b = {0};
        for (size_t i = 0; i < l->n; i++) {
            if (l->v[i].t != TV_STR) {
                awq_buf_free(&b);
                return tmpl_fail(c, n, "sequence item %zu: expected str instance, %s found", i, tv_typename(&l->v[i]));
            }
            if ((i && awq_buf_append(&b, self.u.s.p, self.u.s.n)) || awq_buf_append(&b, l->v[i].u.s.p, l->v[i].u.s.n)) {
                awq_buf_free(&b);
                return nomem(c);
            }
            if (b.len > ENG_TMPL_OUT_MAX) {
                awq_buf_free(&b);
                return tmpl_fail(c, n, "join() result longer than %u bytes", (unsigned)ENG_TMPL_OUT_MAX);
            }
        }
        return tmpl_ctx_buf_to_str(c, &b, out);
    }
    /* predicates */
    bool any = false, all = true, upper_seen = false, lower_seen = false;
    for (size_t i = 0; i < self.u.s.n;) {
        uint32_t cp;
        i += tmpl_cp_at(self.u.s.p + i, self.u.s.n - i, &cp);
        any = true;
        if (IS("isdigit")) all = all && cp >= '0' && cp <= '9';
        else if (IS("isspace")) all = all && tmpl_py_isspace(cp);
        else if (IS("isalpha")) all = all && (tmpl_lower_cp(cp) != cp || tmpl_upper_cp(cp) != cp || cp > 0x2E80);
        upper_seen = upper_seen || tmpl_is_cased_upper(cp);
        lower_seen = lower_seen || tmpl_is_cased_lower(cp);
    }
    if (IS("isupper")) *out = tv_bool(upper_seen && !lower_seen);
    else if (IS("islower")) *out = tv_bool(lower_seen && !upper_seen);
    else *out = tv_bool(any && all);
#undef ARG
#undef IS
    return 0;
}
