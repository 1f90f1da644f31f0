/* tmpl_ops.c - attribute and item access, slicing and the operators of the chat-template
 * interpreter, with Python's semantics (what Jinja compiles to): Jinja's sandbox getattr
 * (a method of the object first, then the item) and getitem (the item first, then the
 * attribute), Python's slice.indices, int/float arithmetic with floor division and modulo
 * following the divisor's sign, + on strings and lists, * as repetition, chained comparisons,
 * `in`. Integers are 64-bit: overflow is an error where Python would grow a big integer.
 */
#include "tmpl_int.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "awq_err.h"

/* ================================================================= access ==== */

static tval bound_method(tmpl_ctx *c, tval self, const char *name, size_t len) {
    tmpl_func *f = tmpl_alloc(tmpl_ctx_arena(c), sizeof *f);
    if (!f) return tv_undef();
    memset(f, 0, sizeof *f);
    f->id = TF_METHOD;
    f->self = self;
    f->mname = name;
    f->mlen = len;
    tval v = {0};
    v.t = TV_FUNC;
    v.u.fn = f;
    return v;
}

static bool name_is(const char *name, size_t len, const char *lit) {
    return strlen(lit) == len && memcmp(name, lit, len) == 0;
}

/* object_type_repr(obj) of Jinja: "None", or "<type> object" */
static const char *type_repr(const tval *v, char *buf, size_t cap) {
    if (v->t == TV_NONE) return "None";
    snprintf(buf, cap, "%s object", tv_typename(v));
    return buf;
}

static int loop_attr(tmpl_ctx *c, const tmpl_loop *l, const char *name, size_t len, tval *out) {
    int64_t n = (int64_t)l->items->n, i = l->index0;
    if (name_is(name, len, "index0")) *out = tv_int(i);
    else if (name_is(name, len, "index")) *out = tv_int(i + 1);
    else if (name_is(name, len, "revindex")) *out = tv_int(n - i);
    else if (name_is(name, len, "revindex0")) *out = tv_int(n - i - 1);
    else if (name_is(name, len, "first")) *out = tv_bool(i == 0);
    else if (name_is(name, len, "last")) *out = tv_bool(i == n - 1);
    else if (name_is(name, len, "length")) *out = tv_int(n);
    else if (name_is(name, len, "depth")) *out = tv_int(l->depth0 + 1);
    else if (name_is(name, len, "depth0")) *out = tv_int(l->depth0);
    else if (name_is(name, len, "previtem"))
        *out = i > 0 ? l->items->v[i - 1] : tmpl_undef_hint(c, "there is no previous item");
    else if (name_is(name, len, "nextitem"))
        *out = i + 1 < n ? l->items->v[i + 1] : tmpl_undef_hint(c, "there is no next item");
    else if (name_is(name, len, "cycle")) {
        tmpl_func *f = tmpl_alloc(tmpl_ctx_arena(c), sizeof *f);
        if (!f) return tmpl_oom(c);
        memset(f, 0, sizeof *f);
        f->id = TF_LOOP_CYCLE;
        f->self.t = TV_LOOP;
        f->self.u.loop = (tmpl_loop *)l;
        out->t = TV_FUNC;
        out->is_tuple = 0;
        out->u.fn = f;
    } else
        *out = tmpl_undef_hint(c, "'LoopContext object' has no attribute '%.*s'", (int)len, name);
    return 0;
}

/* Jinja's sandbox getattr: a Python attribute (method) first, then the item */
int tmpl_ctx_getattr(tmpl_ctx *c, const tmpl_node *n, tval obj, const char *name, size_t len, tval *out) {
    char tb[48];
    switch (obj.t) {
    case TV_UNDEF: return tmpl_undef_error(c, n, &obj);
    case TV_LOOP: return loop_attr(c, obj.u.loop, name, len, out);
    case TV_DICT:
        if (tmpl_has_method(&obj, name, len)) {
            *out = bound_method(c, obj, name, len);
            return out->t == TV_FUNC ? 0 : tmpl_oom(c);
        }
        /* fall through */
    case TV_NS: {
        const tval *v = tmpl_dict_get_str(obj.u.d, name, len);
        if (v) *out = *v;
        else *out = tmpl_undef_hint(c, "'%s' has no attribute '%.*s'", type_repr(&obj, tb, sizeof tb), (int)len, name);
        return 0;
    }
    default:
        if (tmpl_has_method(&obj, name, len)) {
            *out = bound_method(c, obj, name, len);
            return out->t == TV_FUNC ? 0 : tmpl_oom(c);
        }
        *out = tmpl_undef_hint(c, "'%s' has no attribute '%.*s'", type_repr(&obj, tb, sizeof tb), (int)len, name);
        return 0;
    }
}

/* byte offset of code point index k in s (k <= count) */
static size_t cp_offset(const char *s, size_t n, size_t k) {
    size_t i = 0;
    tmpl_work_units += k / 16;
    while (k-- > 0 && i < n) {
        uint32_t cp;
        i += tmpl_cp_at(s + i, n - i, &cp);
    }
    return i;
}

bool tmpl_as_index(const tval *v, int64_t *i) {
    if (v->t == TV_INT) *i = v->u.i;
    else if (v->t == TV_BOOL) *i = v->u.b;
    else return false;
    return true;
}

int tmpl_getitem(tmpl_ctx *c, const tmpl_node *n, tval obj, tval key, tval *out) {
    char tb[48];
    int64_t i;
    if (obj.t == TV_UNDEF) return tmpl_undef_error(c, n, &obj);
    if (key.t == TV_UNDEF && obj.t != TV_DICT) return tmpl_undef_error(c, n, &key);
    if ((obj.t == TV_LIST || obj.t == TV_STR) && tmpl_as_index(&key, &i)) {
        int64_t len = obj.t == TV_LIST ? (int64_t)obj.u.l->n : (int64_t)tmpl_cp_count(obj.u.s.p, obj.u.s.n);
        int64_t j = i < 0 ? i + len : i;
        if (j >= 0 && j < len) {
            if (obj.t == TV_LIST) {
                *out = obj.u.l->v[j];
            } else {
                size_t off = cp_offset(obj.u.s.p, obj.u.s.n, (size_t)j);
                uint32_t cp;
                size_t w = tmpl_cp_at(obj.u.s.p + off, obj.u.s.n - off, &cp);
                *out = tv_str(obj.u.s.p + off, w);
            }
            return 0;
        }
        *out = tmpl_undef_hint(c, "%s has no element %lld", type_repr(&obj, tb, sizeof tb), (long long)i);
        return 0;
    }
    if (obj.t == TV_DICT) {
        const tval *v = tmpl_dict_get(obj.u.d, &key);
        if (v) {
            *out = *v;
            return 0;
        }
    }
    if (key.t == TV_STR) return tmpl_ctx_getattr(c, n, obj, key.u.s.p, key.u.s.n, out);
    awq_buf b = {0};
    if (tv_repr_append(&b, &key)) {
        awq_buf_free(&b);
        return tmpl_oom(c);
    }
    *out = tmpl_undef_hint(c, "%s has no element %.*s", type_repr(&obj, tb, sizeof tb), (int)(b.len > 60 ? 60 : b.len),
                      b.data ? b.data : "");
    awq_buf_free(&b);
    return 0;
}

static int slice_bound(tmpl_ctx *c, const tmpl_node *n, const tval *v, bool *given, int64_t *x) {
    *given = false;
    if (!v || v->t == TV_NONE) return 0;
    if (v->t == TV_UNDEF) return tmpl_undef_error(c, n, v);
    if (!tmpl_as_index(v, x)) return tmpl_fail(c, n, "slice indices must be integers or None");
    *given = true;
    return 0;
}

int tmpl_slice(tmpl_ctx *c, const tmpl_node *n, tval obj, const tval *s0, const tval *s1, const tval *s2,
                    tval *out) {
    if (obj.t == TV_UNDEF) return tmpl_undef_error(c, n, &obj);
    if (obj.t != TV_LIST && obj.t != TV_STR) return tmpl_fail(c, n, "'%s' object is not subscriptable", tv_typename(&obj));
    bool g0, g1, g2;
    int64_t start = 0, stop = 0, stp = 1;
    int rc;
    if ((rc = slice_bound(c, n, s0, &g0, &start)) || (rc = slice_bound(c, n, s1, &g1, &stop)) ||
        (rc = slice_bound(c, n, s2, &g2, &stp)))
        return rc;
    if (!g2) stp = 1;
    if (stp == 0) return tmpl_fail(c, n, "slice step cannot be zero");
    int64_t len = obj.t == TV_LIST ? (int64_t)obj.u.l->n : (int64_t)tmpl_cp_count(obj.u.s.p, obj.u.s.n);
    /* Python's slice.indices */
    if (!g0) start = stp < 0 ? len - 1 : 0;
    else if (start < 0) {
        start += len;
        if (start < 0) start = stp < 0 ? -1 : 0;
    } else if (start >= len) start = stp < 0 ? len - 1 : len;
    if (!g1) stop = stp < 0 ? -1 : len;
    else if (stop < 0) {
        stop += len;
        if (stop < 0) stop = stp < 0 ? -1 : 0;
    } else if (stop >= len) stop = stp < 0 ? len - 1 : len;
    size_t cnt = 0;
    if (stp > 0 && start < stop) cnt = (size_t)((stop - start + stp - 1) / stp);
    if (stp < 0 && start > stop) cnt = (size_t)((start - stop + (-stp) - 1) / (-stp));
    if (obj.t == TV_LIST) {
        tmpl_list *l = tmpl_ctx_newlist(c, cnt);
        if (!l) return tmpl_oom(c);
        for (size_t k = 0; k < cnt; k++) l->v[k] = obj.u.l->v[start + (int64_t)k * stp];
        out->t = TV_LIST;
        out->is_tuple = obj.is_tuple;
        out->u.l = l;
        return 0;
    }
    /* strings: index code points once */
    size_t *offs = malloc(((size_t)len + 1) * sizeof *offs);
    if (!offs) return tmpl_oom(c);
    size_t i = 0;
    for (int64_t k = 0; k < len; k++) {
        offs[k] = i;
        uint32_t cp;
        i += tmpl_cp_at(obj.u.s.p + i, obj.u.s.n - i, &cp);
    }
    offs[len] = i;
    awq_buf b = {0};
    int r = 0;
    for (size_t k = 0; k < cnt && !r; k++) {
        int64_t j = start + (int64_t)k * stp;
        r = awq_buf_append(&b, obj.u.s.p + offs[j], offs[j + 1] - offs[j]);
    }
    free(offs);
    if (r) {
        awq_buf_free(&b);
        return tmpl_oom(c);
    }
    return tmpl_ctx_buf_to_str(c, &b, out);
}

/* ================================================================= operators ==== */

static bool numeric(const tval *v) { return v->t == TV_INT || v->t == TV_FLOAT || v->t == TV_BOOL; }
static double as_f(const tval *v) { return v->t == TV_FLOAT ? v->u.f : v->t == TV_BOOL ? v->u.b : (double)v->u.i; }
static int64_t as_i(const tval *v) { return v->t == TV_BOOL ? v->u.b : v->u.i; }

static int type_error(tmpl_ctx *c, const tmpl_node *n, const char *op, const tval *a, const tval *b) {
    return tmpl_fail(c, n, "unsupported operand type(s) for %s: '%s' and '%s'", op, tv_typename(a), tv_typename(b));
}

static int overflow(tmpl_ctx *c, const tmpl_node *n) {
    return tmpl_fail(c, n, "integer overflow (integers are limited to 64 bits)");
}

static int repeat(tmpl_ctx *c, const tmpl_node *n, tval seq, int64_t times, tval *out) {
    if (times < 0) times = 0;
    size_t unit = seq.t == TV_STR ? seq.u.s.n : seq.u.l->n, total;
    if (!awq_mul_ok(unit, (size_t)times, &total) || total > ENG_TMPL_OUT_MAX)
        return tmpl_fail(c, n, "repetition result too large");
    if (seq.t == TV_STR) {
        char *p = tmpl_alloc(tmpl_ctx_arena(c), total + 1);
        if (!p) return tmpl_oom(c);
        for (int64_t k = 0; k < times; k++) memcpy(p + (size_t)k * unit, seq.u.s.p, unit);
        p[total] = 0;
        *out = tv_str(p, total);
        return 0;
    }
    tmpl_list *l = tmpl_ctx_newlist(c, total);
    if (!l) return tmpl_oom(c);
    for (int64_t k = 0; k < times; k++) memcpy(l->v + (size_t)k * unit, seq.u.l->v, unit * sizeof(tval));
    out->t = TV_LIST;
    out->is_tuple = seq.is_tuple;
    out->u.l = l;
    return 0;
}

int tmpl_binop(tmpl_ctx *c, const tmpl_node *n, int op, tval a, tval b, tval *out) {
    static const char *const names[] = {[TOP_ADD] = "+", [TOP_SUB] = "-", [TOP_MUL] = "*", [TOP_DIV] = "/",
                                        [TOP_FLOORDIV] = "//", [TOP_MOD] = "%", [TOP_POW] = "** or pow()"};
    if (a.t == TV_UNDEF) return tmpl_undef_error(c, n, &a);
    if (b.t == TV_UNDEF) return tmpl_undef_error(c, n, &b);
    bool ints = (a.t == TV_INT || a.t == TV_BOOL) && (b.t == TV_INT || b.t == TV_BOOL);
    if (numeric(&a) && numeric(&b)) {
        int64_t x = ints ? as_i(&a) : 0, y = ints ? as_i(&b) : 0, r;
        double fx = as_f(&a), fy = as_f(&b);
        switch (op) {
        case TOP_ADD:
            if (!ints) { *out = tv_float(fx + fy); return 0; }
            if (__builtin_add_overflow(x, y, &r)) return overflow(c, n);
            *out = tv_int(r);
            return 0;
        case TOP_SUB:
            if (!ints) { *out = tv_float(fx - fy); return 0; }
            if (__builtin_sub_overflow(x, y, &r)) return overflow(c, n);
            *out = tv_int(r);
            return 0;
        case TOP_MUL:
            if (!ints) { *out = tv_float(fx * fy); return 0; }
            if (__builtin_mul_overflow(x, y, &r)) return overflow(c, n);
            *out = tv_int(r);
            return 0;
        case TOP_DIV:
            if (fy == 0.0) return tmpl_fail(c, n, "division by zero");
            *out = tv_float(fx / fy);
            return 0;
        case TOP_FLOORDIV:
        case TOP_MOD:
            if (ints) {
                if (y == 0) return tmpl_fail(c, n, op == TOP_MOD ? "integer modulo by zero" : "integer division or modulo by zero");
                if (x == INT64_MIN && y == -1) {
                    if (op == TOP_MOD) { *out = tv_int(0); return 0; }
                    return overflow(c, n);
                }
                int64_t q = x / y, m = x % y;
                if (m != 0 && ((m < 0) != (y < 0))) {
                    q--;
                    m += y;
                }
                *out = tv_int(op == TOP_MOD ? m : q);
                return 0;
            }
            if (fy == 0.0) return tmpl_fail(c, n, op == TOP_MOD ? "float modulo" : "float floor division by zero");
            if (op == TOP_MOD) {
                double m = fmod(fx, fy);
                if (m != 0 && ((m < 0) != (fy < 0))) m += fy;
                *out = tv_float(m);
            } else {
                *out = tv_float(floor(fx / fy));
            }
            return 0;
        case TOP_POW:
            if (ints && y >= 0) {
                int64_t acc = 1, base = x;
                for (int64_t e = y; e > 0; e >>= 1) {
                    if ((e & 1) && __builtin_mul_overflow(acc, base, &acc)) return overflow(c, n);
                    if (e > 1 && __builtin_mul_overflow(base, base, &base)) return overflow(c, n);
                }
                *out = tv_int(acc);
                return 0;
            }
            if (fx == 0.0 && fy < 0) return tmpl_fail(c, n, "0.0 cannot be raised to a negative power");
            *out = tv_float(pow(fx, fy));
            return 0;
        default: break;
        }
    }
    if (op == TOP_ADD && a.t == TV_STR && b.t == TV_STR) {
        size_t total;
        if (!awq_add_ok(a.u.s.n, b.u.s.n, &total)) return tmpl_oom(c);
        char *p = tmpl_alloc(tmpl_ctx_arena(c), total + 1);
        if (!p) return tmpl_oom(c);
        memcpy(p, a.u.s.p, a.u.s.n);
        memcpy(p + a.u.s.n, b.u.s.p, b.u.s.n);
        p[total] = 0;
        *out = tv_str(p, total);
        return 0;
    }
    if (op == TOP_ADD && a.t == TV_LIST && b.t == TV_LIST && a.is_tuple == b.is_tuple) {
        tmpl_list *l = tmpl_ctx_newlist(c, a.u.l->n + b.u.l->n);
        if (!l) return tmpl_oom(c);
        if (a.u.l->n) memcpy(l->v, a.u.l->v, a.u.l->n * sizeof(tval));
        if (b.u.l->n) memcpy(l->v + a.u.l->n, b.u.l->v, b.u.l->n * sizeof(tval));
        out->t = TV_LIST;
        out->is_tuple = a.is_tuple;
        out->u.l = l;
        return 0;
    }
    if (op == TOP_MUL && (a.t == TV_STR || a.t == TV_LIST) && (b.t == TV_INT || b.t == TV_BOOL))
        return repeat(c, n, a, as_i(&b), out);
    if (op == TOP_MUL && (b.t == TV_STR || b.t == TV_LIST) && (a.t == TV_INT || a.t == TV_BOOL))
        return repeat(c, n, b, as_i(&a), out);
    if (op == TOP_MOD && a.t == TV_STR)
        return tmpl_fail(c, n, "printf-style string formatting ('...' %% x) is not supported");
    if (op == TOP_ADD && a.t == TV_STR)
        return tmpl_fail(c, n, "can only concatenate str (not \"%s\") to str", tv_typename(&b));
    return type_error(c, n, names[op], &a, &b);
}

static int contains(tmpl_ctx *c, const tmpl_node *n, tval item, tval cont, bool *out) {
    switch (cont.t) {
    case TV_UNDEF: *out = false; return 0;
    case TV_STR:
        if (item.t == TV_UNDEF) return tmpl_undef_error(c, n, &item);
        if (item.t != TV_STR)
            return tmpl_fail(c, n, "'in <string>' requires string as left operand, not %s", tv_typename(&item));
        if (item.u.s.n == 0) { *out = true; return 0; }
        *out = tmpl_find(cont.u.s.p, cont.u.s.n, item.u.s.p, item.u.s.n, 0) != SIZE_MAX;
        return 0;
    case TV_LIST:
        *out = false;
        for (size_t i = 0; i < cont.u.l->n; i++)
            if (tv_equal(&cont.u.l->v[i], &item)) { *out = true; break; }
        return 0;
    case TV_DICT:
    case TV_NS:
        *out = tmpl_dict_get(cont.u.d, &item) != NULL;
        return 0;
    default:
        return tmpl_fail(c, n, "argument of type '%s' is not iterable", tv_typename(&cont));
    }
}

int tmpl_compare(tmpl_ctx *c, const tmpl_node *n, int op, tval a, tval b, bool *res) {
    if (op == TOP_EQ) { *res = tv_equal(&a, &b); return 0; }
    if (op == TOP_NE) { *res = !tv_equal(&a, &b); return 0; }
    if (op == TOP_IN || op == TOP_NOTIN) {
        int rc = contains(c, n, a, b, res);
        if (!rc && op == TOP_NOTIN) *res = !*res;
        return rc;
    }
    if (a.t == TV_UNDEF) return tmpl_undef_error(c, n, &a);
    if (b.t == TV_UNDEF) return tmpl_undef_error(c, n, &b);
    bool ok;
    int k = tv_compare(&a, &b, &ok);
    static const char *const names[] = {[TOP_LT] = "<", [TOP_LE] = "<=", [TOP_GT] = ">", [TOP_GE] = ">="};
    if (!ok)
        return tmpl_fail(c, n, "'%s' not supported between instances of '%s' and '%s'", names[op], tv_typename(&a),
                         tv_typename(&b));
    if (k == 2) { *res = false; return 0; } /* NaN */
    *res = op == TOP_LT ? k < 0 : op == TOP_LE ? k <= 0 : op == TOP_GT ? k > 0 : k >= 0;
    return 0;
}

