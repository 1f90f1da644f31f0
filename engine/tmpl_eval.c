/* tmpl_eval.c - the tree-walking evaluator of the chat-template interpreter.
 *
 * Semantics follow what Jinja 3.1 compiles templates to (Python underneath), with HF's
 * environment: default Undefined (prints empty, is falsy, iterates empty, has length 0; any
 * attribute, item, arithmetic or ordering on it raises "'x' is undefined"), immutable lists and
 * dicts (only namespace() attributes can be assigned), loop controls break/continue.
 *
 * Scopes: the template has a root scope; each for-loop iteration gets a fresh scope whose
 * parent is the enclosing one, so a `set` inside a loop is gone at the next iteration and
 * after the loop (Jinja's rule; namespace() exists to carry values out). `if` opens no scope.
 * Macros run in a scope under the root scope.
 *
 * Limits: steps (TMPL_STEPS_MAX), loop iterations (TMPL_ITER_MAX), call depth
 * (TMPL_DEPTH_MAX), memory (TMPL_MEM_MAX, the arena cap) and output (ENG_TMPL_OUT_MAX).
 */
#define _POSIX_C_SOURCE 200809L /* localtime_r */
#include "tmpl_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "awq_err.h"
#include "tmpl.h"

/* control-flow results of exec (errors are negative) */
#define FLOW_BREAK 1
#define FLOW_CONTINUE 2

typedef struct scope scope;
struct scope {
    scope *parent;
    size_t n, cap;
    const char **names;
    size_t *lens;
    tval *vals;
};

struct tmpl_ctx {
    char *err;
    tmpl_arena *a;
    awq_buf *out;
    scope *sc;   /* innermost */
    scope *root;
    const char *const *gnames;
    const tval *gvals;
    size_t ng;
    uint64_t steps, iters;
    int depth;
};

/* ================================================================= errors ==== */

int tmpl_fail(tmpl_ctx *c, const tmpl_node *n, const char *fmt, ...) {
    char msg[AWQ_ERR_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n) return awq_seterr(c->err, AWQ_ETEMPLATE, "line %d, column %d: %s", n->line, n->col, msg);
    return awq_seterr(c->err, AWQ_ETEMPLATE, "%s", msg);
}

int tmpl_oom(tmpl_ctx *c) {
    if (c->a->limit && c->a->total + (1u << 20) >= c->a->limit)
        return awq_seterr(c->err, AWQ_ETEMPLATE, "template rendering used more than %u MiB of memory",
                          (unsigned)(TMPL_MEM_MAX >> 20));
    return awq_seterr(c->err, AWQ_ENOMEM, "out of memory while rendering the template");
}

/* the error Jinja raises when an Undefined is used for more than printing/testing */
int tmpl_undef_error(tmpl_ctx *c, const tmpl_node *n, const tval *u) {
    if (u->u.s.n) return tmpl_fail(c, n, "%.*s", (int)u->u.s.n, u->u.s.p);
    return tmpl_fail(c, n, "value is undefined");
}

tval tmpl_undef_hint(tmpl_ctx *c, const char *fmt, ...) {
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tval u = tv_undef();
    size_t n = k < 0 ? 0 : (size_t)k >= sizeof msg ? sizeof msg - 1 : (size_t)k;
    char *p = tmpl_memdup(c->a, msg, n);
    if (p) {
        u.u.s.p = p;
        u.u.s.n = n;
    }
    return u;
}

static int step(tmpl_ctx *c, const tmpl_node *n) {
    c->steps += 1 + tmpl_work_units;
    tmpl_work_units = 0;
    if (c->steps > TMPL_STEPS_MAX)
        return tmpl_fail(c, n, "template exceeded its limit of %u evaluation steps", (unsigned)TMPL_STEPS_MAX);
    return 0;
}

/* ================================================================= services ==== */

tmpl_arena *tmpl_ctx_arena(tmpl_ctx *c) { return c->a; }

tmpl_list *tmpl_ctx_newlist(tmpl_ctx *c, size_t n) {
    size_t bytes;
    if (!awq_mul_ok(n, sizeof(tval), &bytes)) return NULL;
    tmpl_list *l = tmpl_alloc(c->a, sizeof *l);
    tval *v = tmpl_alloc(c->a, bytes ? bytes : 1);
    if (!l || !v) return NULL;
    l->n = n;
    l->v = v;
    return l;
}

tmpl_dict *tmpl_ctx_newdict(tmpl_ctx *c, size_t cap) {
    tmpl_dict *d = tmpl_alloc(c->a, sizeof *d);
    if (!d) return NULL;
    if (cap < 4) cap = 4;
    d->n = 0;
    d->cap = cap;
    d->k = tmpl_alloc(c->a, cap * sizeof(tval));
    d->v = tmpl_alloc(c->a, cap * sizeof(tval));
    return d->k && d->v ? d : NULL;
}

int tmpl_ctx_dict_set(tmpl_ctx *c, tmpl_dict *d, tval k, tval v) {
    for (size_t i = 0; i < d->n; i++)
        if (tv_equal(&d->k[i], &k)) {
            d->v[i] = v;
            return 0;
        }
    if (d->n == d->cap) {
        size_t nc = d->cap * 2;
        tval *nk = tmpl_alloc(c->a, nc * sizeof(tval)), *nv = tmpl_alloc(c->a, nc * sizeof(tval));
        if (!nk || !nv) return tmpl_oom(c);
        memcpy(nk, d->k, d->n * sizeof(tval));
        memcpy(nv, d->v, d->n * sizeof(tval));
        d->k = nk;
        d->v = nv;
        d->cap = nc;
    }
    d->k[d->n] = k;
    d->v[d->n] = v;
    d->n++;
    return 0;
}

int tmpl_ctx_buf_to_str(tmpl_ctx *c, awq_buf *b, tval *out) {
    char *p = tmpl_memdup(c->a, b->data ? b->data : "", b->len);
    size_t n = b->len;
    awq_buf_free(b);
    if (!p) return tmpl_oom(c);
    *out = tv_str(p, n);
    return 0;
}

int tmpl_ctx_str(tmpl_ctx *c, const tval *v, tval *out) {
    if (v->t == TV_STR) {
        *out = *v;
        return 0;
    }
    awq_buf b = {0};
    if (tv_str_append(&b, v)) {
        awq_buf_free(&b);
        return tmpl_oom(c);
    }
    return tmpl_ctx_buf_to_str(c, &b, out);
}

int tmpl_ctx_iter(tmpl_ctx *c, const tmpl_node *n, tval v, tmpl_list **out) {
    static tmpl_list empty = {0, NULL};
    switch (v.t) {
    case TV_UNDEF: *out = &empty; return 0;
    case TV_LIST: *out = v.u.l; return 0;
    case TV_DICT: {
        tmpl_list *l = tmpl_ctx_newlist(c, v.u.d->n);
        if (!l) return tmpl_oom(c);
        for (size_t i = 0; i < v.u.d->n; i++) l->v[i] = v.u.d->k[i];
        *out = l;
        return 0;
    }
    case TV_STR: {
        size_t cnt = tmpl_cp_count(v.u.s.p, v.u.s.n);
        tmpl_list *l = tmpl_ctx_newlist(c, cnt);
        if (!l) return tmpl_oom(c);
        size_t k = 0;
        for (size_t i = 0; i < v.u.s.n && k < cnt;) {
            uint32_t cp;
            size_t w = tmpl_cp_at(v.u.s.p + i, v.u.s.n - i, &cp);
            l->v[k++] = tv_str(v.u.s.p + i, w);
            i += w;
        }
        *out = l;
        return 0;
    }
    default: return tmpl_fail(c, n, "'%s' object is not iterable", tv_typename(&v));
    }
}

/* ================================================================= scopes ==== */

static scope *scope_new(tmpl_ctx *c, scope *parent) {
    scope *s = tmpl_alloc(c->a, sizeof *s);
    if (!s) return NULL;
    memset(s, 0, sizeof *s);
    s->parent = parent;
    return s;
}

static int scope_set(tmpl_ctx *c, scope *s, const char *name, size_t len, tval v) {
    for (size_t i = 0; i < s->n; i++)
        if (s->lens[i] == len && memcmp(s->names[i], name, len) == 0) {
            s->vals[i] = v;
            return 0;
        }
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 8;
        const char **nn = tmpl_alloc(c->a, nc * sizeof *nn);
        size_t *nl = tmpl_alloc(c->a, nc * sizeof *nl);
        tval *nv = tmpl_alloc(c->a, nc * sizeof *nv);
        if (!nn || !nl || !nv) return tmpl_oom(c);
        if (s->n) {
            memcpy(nn, s->names, s->n * sizeof *nn);
            memcpy(nl, s->lens, s->n * sizeof *nl);
            memcpy(nv, s->vals, s->n * sizeof *nv);
        }
        s->names = nn;
        s->lens = nl;
        s->vals = nv;
        s->cap = nc;
    }
    s->names[s->n] = name;
    s->lens[s->n] = len;
    s->vals[s->n] = v;
    s->n++;
    return 0;
}

static bool lookup(tmpl_ctx *c, const char *name, size_t len, tval *out) {
    for (scope *s = c->sc; s; s = s->parent)
        for (size_t i = s->n; i-- > 0;)
            if (s->lens[i] == len && memcmp(s->names[i], name, len) == 0) {
                *out = s->vals[i];
                return true;
            }
    for (size_t i = 0; i < c->ng; i++)
        if (strlen(c->gnames[i]) == len && memcmp(c->gnames[i], name, len) == 0) {
            *out = c->gvals[i];
            return true;
        }
    static const struct {
        const char *name;
        int id;
    } builtins[] = {{"raise_exception", TF_RAISE}, {"namespace", TF_NAMESPACE}, {"range", TF_RANGE},
                    {"dict", TF_DICT}, {"strftime_now", TF_STRFTIME}};
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        if (strlen(builtins[i].name) == len && memcmp(builtins[i].name, name, len) == 0) {
            tmpl_func *f = tmpl_alloc(c->a, sizeof *f);
            if (!f) return false;
            memset(f, 0, sizeof *f);
            f->id = builtins[i].id;
            out->t = TV_FUNC;
            out->is_tuple = 0;
            out->u.fn = f;
            return true;
        }
    return false;
}

static bool name_is(const char *name, size_t len, const char *lit) {
    return strlen(lit) == len && memcmp(name, lit, len) == 0;
}

/* ================================================================= calls ==== */

static int eval(tmpl_ctx *c, const tmpl_node *n, tval *out);
static int exec_body(tmpl_ctx *c, const tmpl_nodes *body);

typedef struct callargs {
    tval *pos;
    size_t npos;
    const char **kwn; /* NUL-terminated copies */
    tval *kwv;
    size_t nkw;
} callargs;

static int eval_args(tmpl_ctx *c, const tmpl_nodes *l, callargs *ca) {
    memset(ca, 0, sizeof *ca);
    size_t cnt = l->n ? l->n : 1;
    ca->pos = tmpl_alloc(c->a, cnt * sizeof(tval));
    ca->kwv = tmpl_alloc(c->a, cnt * sizeof(tval));
    ca->kwn = tmpl_alloc(c->a, cnt * sizeof(char *));
    if (!ca->pos || !ca->kwv || !ca->kwn) return tmpl_oom(c);
    for (size_t i = 0; i < l->n; i++) {
        const tmpl_node *x = l->v[i];
        int rc;
        if (x->kind == TN_KWARG) {
            for (size_t j = 0; j < ca->nkw; j++)
                if (strlen(ca->kwn[j]) == x->name_len && memcmp(ca->kwn[j], x->name, x->name_len) == 0)
                    return tmpl_fail(c, x, "keyword argument '%.*s' repeated", (int)x->name_len, x->name);
            const char *nm = tmpl_memdup(c->a, x->name, x->name_len);
            if (!nm) return tmpl_oom(c);
            ca->kwn[ca->nkw] = nm;
            if ((rc = eval(c, x->a, &ca->kwv[ca->nkw]))) return rc;
            ca->nkw++;
        } else {
            if ((rc = eval(c, x, &ca->pos[ca->npos]))) return rc;
            ca->npos++;
        }
    }
    return 0;
}

static int call_macro(tmpl_ctx *c, const tmpl_node *at, const tmpl_node *m, callargs *ca, tval *out) {
    const tmpl_nodes *params = &m->l2;
    if (ca->npos > params->n)
        return tmpl_fail(c, at, "macro '%.*s' takes not more than %zu argument(s)", (int)m->name_len, m->name, params->n);
    if (c->depth >= TMPL_DEPTH_MAX) return tmpl_fail(c, at, "macro calls nested too deeply (limit %d)", TMPL_DEPTH_MAX);
    scope *s = scope_new(c, c->root);
    if (!s) return tmpl_oom(c);
    scope *saved = c->sc;
    int rc = 0;
    for (size_t i = 0; i < ca->nkw; i++) {
        bool found = false;
        for (size_t j = 0; j < params->n; j++)
            if (name_is(params->v[j]->name, params->v[j]->name_len, ca->kwn[i])) found = true;
        if (!found) return tmpl_fail(c, at, "macro '%.*s' has no argument '%s'", (int)m->name_len, m->name, ca->kwn[i]);
    }
    for (size_t j = 0; j < params->n && !rc; j++) {
        const tmpl_node *pn = params->v[j];
        tval v = tv_undef();
        bool have = false;
        if (j < ca->npos) {
            v = ca->pos[j];
            have = true;
        }
        for (size_t i = 0; i < ca->nkw; i++)
            if (name_is(pn->name, pn->name_len, ca->kwn[i])) {
                if (have) return tmpl_fail(c, at, "macro '%.*s' got multiple values for argument '%s'", (int)m->name_len, m->name, ca->kwn[i]);
                v = ca->kwv[i];
                have = true;
            }
        if (!have && pn->a) {
            c->sc = s; /* defaults see earlier parameters */
            rc = eval(c, pn->a, &v);
            c->sc = saved;
        } else if (!have) {
            v = tmpl_undef_hint(c, "parameter '%.*s' was not provided", (int)pn->name_len, pn->name);
        }
        if (!rc) rc = scope_set(c, s, pn->name, pn->name_len, v);
    }
    if (rc) return rc;
    awq_buf buf = {0}, *saved_out = c->out;
    c->out = &buf;
    c->sc = s;
    c->depth++;
    rc = exec_body(c, &m->l1);
    c->depth--;
    c->sc = saved;
    c->out = saved_out;
    if (rc < 0) {
        awq_buf_free(&buf);
        return rc;
    }
    return tmpl_ctx_buf_to_str(c, &buf, out);
}

static int call_value(tmpl_ctx *c, const tmpl_node *n, tval fnv, callargs *ca, tval *out) {
    if (fnv.t == TV_UNDEF) return tmpl_undef_error(c, n, &fnv);
    if (fnv.t != TV_FUNC) return tmpl_fail(c, n, "'%s' object is not callable", tv_typename(&fnv));
    tmpl_func *f = fnv.u.fn;
    switch (f->id) {
    case TF_RAISE: {
        tval m = ca->npos ? ca->pos[0] : tv_str("", 0);
        tval s;
        int rc = tmpl_ctx_str(c, &m, &s);
        if (rc) return rc;
        /* the template's own message, as HF raises it (TemplateError(message)) */
        return awq_seterr(c->err, AWQ_ETEMPLATE, "%.*s", (int)s.u.s.n, s.u.s.p);
    }
    case TF_NAMESPACE:
    case TF_DICT: {
        tmpl_dict *d = tmpl_ctx_newdict(c, ca->nkw + 4);
        if (!d) return tmpl_oom(c);
        if (ca->npos > 1) return tmpl_fail(c, n, "%s() takes at most 1 positional argument", f->id == TF_DICT ? "dict" : "namespace");
        if (ca->npos == 1) {
            if (ca->pos[0].t != TV_DICT && ca->pos[0].t != TV_NS)
                return tmpl_fail(c, n, "%s() argument must be a mapping", f->id == TF_DICT ? "dict" : "namespace");
            for (size_t i = 0; i < ca->pos[0].u.d->n; i++) {
                int rc = tmpl_ctx_dict_set(c, d, ca->pos[0].u.d->k[i], ca->pos[0].u.d->v[i]);
                if (rc) return rc;
            }
        }
        for (size_t i = 0; i < ca->nkw; i++) {
            int rc = tmpl_ctx_dict_set(c, d, tv_str(ca->kwn[i], strlen(ca->kwn[i])), ca->kwv[i]);
            if (rc) return rc;
        }
        out->t = f->id == TF_DICT ? TV_DICT : TV_NS;
        out->is_tuple = 0;
        out->u.d = d;
        return 0;
    }
    case TF_RANGE: {
        int64_t a[3] = {0, 0, 1};
        if (ca->npos < 1 || ca->npos > 3 || ca->nkw) return tmpl_fail(c, n, "range() takes 1 to 3 integer arguments");
        for (size_t i = 0; i < ca->npos; i++) {
            if (ca->pos[i].t == TV_UNDEF) return tmpl_undef_error(c, n, &ca->pos[i]);
            if (!tmpl_as_index(&ca->pos[i], &a[ca->npos == 1 ? 1 : i]))
                return tmpl_fail(c, n, "'%s' object cannot be interpreted as an integer", tv_typename(&ca->pos[i]));
        }
        if (ca->npos == 1) a[0] = 0;
        if (a[2] == 0) return tmpl_fail(c, n, "range() arg 3 must not be zero");
        double cntf = a[2] > 0 ? ceil(((double)a[1] - (double)a[0]) / (double)a[2])
                               : ceil(((double)a[0] - (double)a[1]) / (double)-a[2]);
        if (cntf < 0) cntf = 0;
        if (cntf > TMPL_RANGE_MAX)
            return tmpl_fail(c, n, "range too big, maximum size for range is %d", TMPL_RANGE_MAX);
        size_t cnt = (size_t)cntf;
        tmpl_list *l = tmpl_ctx_newlist(c, cnt);
        if (!l) return tmpl_oom(c);
        for (size_t i = 0; i < cnt; i++) l->v[i] = tv_int(a[0] + (int64_t)i * a[2]);
        out->t = TV_LIST;
        out->is_tuple = 0;
        out->u.l = l;
        return 0;
    }
    case TF_STRFTIME: {
        if (ca->npos != 1 || ca->pos[0].t != TV_STR) return tmpl_fail(c, n, "strftime_now() takes one format string");
        char fmt[128], buf[256];
        if (ca->pos[0].u.s.n >= sizeof fmt) return tmpl_fail(c, n, "strftime_now() format too long");
        memcpy(fmt, ca->pos[0].u.s.p, ca->pos[0].u.s.n);
        fmt[ca->pos[0].u.s.n] = 0;
        time_t now = time(NULL);
        struct tm tmv;
#ifdef _WIN32
        struct tm *lt = localtime(&now); /* the Windows CRT keeps this buffer per thread */
        if (!lt) return tmpl_fail(c, n, "strftime_now(): no local time");
        tmv = *lt;
#else
        if (!localtime_r(&now, &tmv)) return tmpl_fail(c, n, "strftime_now(): no local time");
#endif
        /* only the portable conversions: an unknown one aborts the process in the Windows CRT */
        for (const char *q = fmt; *q; q++)
            if (*q == '%' && (!q[1] || !strchr("aAbBcdeHIjmMpSUwWxXyYZ%", *++q)))
                return tmpl_fail(c, n, "strftime_now(): unsupported conversion in format '%s'", fmt);
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral" /* the format is the template's, by design */
#endif
        size_t k = strftime(buf, sizeof buf, fmt, &tmv);
#if defined(__GNUC__) || defined(__clang__)
#pragma GCC diagnostic pop
#endif
        char *p = tmpl_memdup(c->a, buf, k);
        if (!p) return tmpl_oom(c);
        *out = tv_str(p, k);
        return 0;
    }
    case TF_LOOP_CYCLE: {
        if (ca->npos == 0) return tmpl_fail(c, n, "no items for cycling given");
        *out = ca->pos[(size_t)f->self.u.loop->index0 % ca->npos];
        return 0;
    }
    case TF_METHOD:
        return tmpl_method(c, n, f->self, f->mname, f->mlen, ca->pos, ca->npos, ca->kwn, ca->kwv, ca->nkw, out);
    case TF_MACRO: return call_macro(c, n, f->macro, ca, out);
    default: return tmpl_fail(c, n, "object is not callable");
    }
}

/* ================================================================= expressions ==== */

static int eval(tmpl_ctx *c, const tmpl_node *n, tval *out) {
    int rc = step(c, n);
    if (rc) return rc;
    tval a, b;
    switch (n->kind) {
    case TN_CONST: *out = n->cval; return 0;
    case TN_NAME:
        if (!lookup(c, n->name, n->name_len, out)) *out = tmpl_undef_hint(c, "'%.*s' is undefined", (int)n->name_len, n->name);
        return 0;
    case TN_GETATTR:
        if ((rc = eval(c, n->a, &a))) return rc;
        return tmpl_ctx_getattr(c, n, a, n->name, n->name_len, out);
    case TN_GETITEM:
        if ((rc = eval(c, n->a, &a)) || (rc = eval(c, n->b, &b))) return rc;
        return tmpl_getitem(c, n, a, b, out);
    case TN_SLICE: {
        tval s[3];
        const tmpl_node *parts[3] = {n->b, n->c, n->d};
        if ((rc = eval(c, n->a, &a))) return rc;
        for (int i = 0; i < 3; i++) {
            s[i] = tv_none();
            if (parts[i] && (rc = eval(c, parts[i], &s[i]))) return rc;
        }
        return tmpl_slice(c, n, a, &s[0], &s[1], &s[2], out);
    }
    case TN_CALL: {
        callargs ca;
        if ((rc = eval(c, n->a, &a))) return rc;
        if ((rc = eval_args(c, &n->l1, &ca))) return rc;
        return call_value(c, n, a, &ca, out);
    }
    case TN_FILTER: {
        callargs ca;
        if ((rc = eval(c, n->a, &a))) return rc;
        if ((rc = eval_args(c, &n->l1, &ca))) return rc;
        return tmpl_filter(c, n, a, ca.pos, ca.npos, ca.kwn, ca.kwv, ca.nkw, out);
    }
    case TN_TEST: {
        callargs ca;
        bool r;
        if ((rc = eval(c, n->a, &a))) return rc;
        if ((rc = eval_args(c, &n->l1, &ca))) return rc;
        if (ca.nkw) return tmpl_fail(c, n, "tests take no keyword arguments");
        if ((rc = tmpl_test(c, n, a, ca.pos, ca.npos, &r))) return rc;
        *out = tv_bool(r);
        return 0;
    }
    case TN_BINOP:
        if ((rc = eval(c, n->a, &a)) || (rc = eval(c, n->b, &b))) return rc;
        return tmpl_binop(c, n, n->op, a, b, out);
    case TN_NEG:
    case TN_POS:
        if ((rc = eval(c, n->a, &a))) return rc;
        if (a.t == TV_UNDEF) return tmpl_undef_error(c, n, &a);
        if (a.t == TV_FLOAT) *out = tv_float(n->kind == TN_NEG ? -a.u.f : a.u.f);
        else if (a.t == TV_INT || a.t == TV_BOOL) {
            int64_t x = a.t == TV_BOOL ? a.u.b : a.u.i;
            if (n->kind == TN_NEG && x == INT64_MIN) return tmpl_fail(c, n, "integer overflow (integers are limited to 64 bits)");
            *out = tv_int(n->kind == TN_NEG ? -x : x);
        } else
            return tmpl_fail(c, n, "bad operand type for unary %c: '%s'", n->kind == TN_NEG ? '-' : '+', tv_typename(&a));
        return 0;
    case TN_NOT:
        if ((rc = eval(c, n->a, &a))) return rc;
        *out = tv_bool(!tv_truthy(&a));
        return 0;
    case TN_AND:
    case TN_OR:
        if ((rc = eval(c, n->a, &a))) return rc;
        if (tv_truthy(&a) == (n->kind == TN_OR)) {
            *out = a;
            return 0;
        }
        return eval(c, n->b, out);
    case TN_COMPARE: {
        if ((rc = eval(c, n->a, &a))) return rc;
        for (size_t i = 0; i < n->l1.n; i++) {
            bool r = false;
            if ((rc = eval(c, n->l1.v[i], &b))) return rc;
            if ((rc = tmpl_compare(c, n, n->ops[i], a, b, &r))) return rc;
            if (!r) {
                *out = tv_bool(false);
                return 0;
            }
            a = b;
        }
        *out = tv_bool(true);
        return 0;
    }
    case TN_CONCAT: {
        awq_buf buf = {0};
        for (size_t i = 0; i < n->l1.n; i++) {
            if ((rc = eval(c, n->l1.v[i], &a)) || (rc = tv_str_append(&buf, &a) ? tmpl_oom(c) : 0)) {
                awq_buf_free(&buf);
                return rc;
            }
            if (buf.len > ENG_TMPL_OUT_MAX) {
                awq_buf_free(&buf);
                return tmpl_fail(c, n, "string longer than %u bytes", (unsigned)ENG_TMPL_OUT_MAX);
            }
        }
        return tmpl_ctx_buf_to_str(c, &buf, out);
    }
    case TN_CONDEXPR:
        if ((rc = eval(c, n->a, &a))) return rc;
        if (tv_truthy(&a)) return eval(c, n->b, out);
        if (n->c) return eval(c, n->c, out);
        *out = tmpl_undef_hint(c, "the inline if-expression evaluated to false and no else section was defined");
        return 0;
    case TN_LIST:
    case TN_TUPLE: {
        tmpl_list *l = tmpl_ctx_newlist(c, n->l1.n);
        if (!l) return tmpl_oom(c);
        for (size_t i = 0; i < n->l1.n; i++)
            if ((rc = eval(c, n->l1.v[i], &l->v[i]))) return rc;
        out->t = TV_LIST;
        out->is_tuple = n->kind == TN_TUPLE;
        out->u.l = l;
        return 0;
    }
    case TN_DICT: {
        tmpl_dict *d = tmpl_ctx_newdict(c, n->l1.n);
        if (!d) return tmpl_oom(c);
        for (size_t i = 0; i < n->l1.n; i++) {
            if ((rc = eval(c, n->l1.v[i], &a)) || (rc = eval(c, n->l2.v[i], &b))) return rc;
            if (a.t == TV_LIST && !a.is_tuple) return tmpl_fail(c, n, "unhashable type: 'list'");
            if (a.t == TV_DICT || a.t == TV_NS) return tmpl_fail(c, n, "unhashable type: '%s'", tv_typename(&a));
            if ((rc = tmpl_ctx_dict_set(c, d, a, b))) return rc;
        }
        out->t = TV_DICT;
        out->is_tuple = 0;
        out->u.d = d;
        return 0;
    }
    default: return tmpl_fail(c, n, "internal error: node %d is not an expression", n->kind);
    }
}

/* ================================================================= statements ==== */

static int emit(tmpl_ctx *c, const tmpl_node *n, const char *p, size_t len) {
    if (len > ENG_TMPL_OUT_MAX || c->out->len > ENG_TMPL_OUT_MAX - len)
        return tmpl_fail(c, n, "rendered output exceeds %u bytes", (unsigned)ENG_TMPL_OUT_MAX);
    return awq_buf_append(c->out, p, len) ? tmpl_oom(c) : 0;
}

static int assign(tmpl_ctx *c, const tmpl_node *target, tval v) {
    if (target->kind == TN_NAME) return scope_set(c, c->sc, target->name, target->name_len, v);
    if (target->kind == TN_TUPLE) {
        tmpl_list *items;
        int rc = tmpl_ctx_iter(c, target, v, &items);
        if (rc) return rc;
        if (items->n != target->l1.n)
            return tmpl_fail(c, target, "%s values to unpack (expected %zu, got %zu)",
                             items->n > target->l1.n ? "too many" : "not enough", target->l1.n, items->n);
        for (size_t i = 0; i < items->n; i++)
            if ((rc = assign(c, target->l1.v[i], items->v[i]))) return rc;
        return 0;
    }
    if (target->kind == TN_GETATTR) { /* set ns.attr = v */
        tval ns;
        if (!lookup(c, target->a->name, target->a->name_len, &ns) || ns.t != TV_NS)
            return tmpl_fail(c, target, "cannot assign attribute on non-namespace object");
        return tmpl_ctx_dict_set(c, ns.u.d, tv_str(target->name, target->name_len), v);
    }
    return tmpl_fail(c, target, "cannot assign to this expression");
}

static int exec_for(tmpl_ctx *c, const tmpl_node *n) {
    tval seqv;
    tmpl_list *items;
    int rc;
    if ((rc = eval(c, n->b, &seqv))) return rc;
    if ((rc = tmpl_ctx_iter(c, n->b, seqv, &items))) return rc;
    scope *saved = c->sc;
    scope *s = scope_new(c, saved);
    if (!s) return tmpl_oom(c);
    if (n->c) { /* `for x in xs if cond`: filter first, so loop.length counts what runs */
        tmpl_list *kept = tmpl_ctx_newlist(c, items->n);
        if (!kept) return tmpl_oom(c);
        kept->n = 0;
        c->sc = s;
        for (size_t i = 0; i < items->n; i++) {
            tval t;
            s->n = 0;
            if ((rc = assign(c, n->a, items->v[i])) || (rc = eval(c, n->c, &t))) {
                c->sc = saved;
                return rc;
            }
            if (tv_truthy(&t)) kept->v[kept->n++] = items->v[i];
        }
        c->sc = saved;
        items = kept;
    }
    if (items->n == 0) return exec_body(c, &n->l2);
    tmpl_loop *lp = tmpl_alloc(c->a, sizeof *lp);
    if (!lp) return tmpl_oom(c);
    lp->items = items;
    lp->depth0 = 0; /* depth only grows in recursive loops, which are not supported */
    tval loopv = {0};
    loopv.t = TV_LOOP;
    loopv.u.loop = lp;
    c->sc = s;
    rc = 0;
    for (size_t i = 0; i < items->n; i++) {
        if (++c->iters > TMPL_ITER_MAX) {
            rc = tmpl_fail(c, n, "template exceeded its limit of %u loop iterations", (unsigned)TMPL_ITER_MAX);
            break;
        }
        lp->index0 = (int64_t)i;
        s->n = 0; /* each iteration starts from the enclosing scope's values */
        if ((rc = scope_set(c, s, "loop", 4, loopv)) || (rc = assign(c, n->a, items->v[i]))) break;
        rc = exec_body(c, &n->l1);
        if (rc == FLOW_CONTINUE) rc = 0;
        if (rc == FLOW_BREAK) {
            rc = 0;
            break;
        }
        if (rc) break;
    }
    c->sc = saved;
    return rc;
}

static int exec_node(tmpl_ctx *c, const tmpl_node *n) {
    int rc = step(c, n);
    if (rc) return rc;
    tval v;
    switch (n->kind) {
    case TN_TEXT: return emit(c, n, n->name, n->name_len);
    case TN_OUTPUT: {
        if ((rc = eval(c, n->a, &v))) return rc;
        if (v.t == TV_STR) return emit(c, n, v.u.s.p, v.u.s.n);
        size_t before = c->out->len;
        if (tv_str_append(c->out, &v)) return tmpl_oom(c);
        if (c->out->len > ENG_TMPL_OUT_MAX) {
            c->out->len = before;
            return tmpl_fail(c, n, "rendered output exceeds %u bytes", (unsigned)ENG_TMPL_OUT_MAX);
        }
        return 0;
    }
    case TN_IF:
        if ((rc = eval(c, n->a, &v))) return rc;
        return exec_body(c, tv_truthy(&v) ? &n->l1 : &n->l2);
    case TN_FOR: return exec_for(c, n);
    case TN_SET:
        if ((rc = eval(c, n->b, &v))) return rc;
        return assign(c, n->a, v);
    case TN_SETBLOCK: {
        awq_buf buf = {0}, *saved = c->out;
        c->out = &buf;
        rc = exec_body(c, &n->l1);
        c->out = saved;
        if (rc < 0) {
            awq_buf_free(&buf);
            return rc;
        }
        int flow = rc; /* a break/continue inside the block still applies */
        if ((rc = tmpl_ctx_buf_to_str(c, &buf, &v)) || (rc = assign(c, n->a, v))) return rc;
        return flow;
    }
    case TN_MACRO: {
        tmpl_func *f = tmpl_alloc(c->a, sizeof *f);
        if (!f) return tmpl_oom(c);
        memset(f, 0, sizeof *f);
        f->id = TF_MACRO;
        f->macro = n;
        v.t = TV_FUNC;
        v.is_tuple = 0;
        v.u.fn = f;
        return scope_set(c, c->sc, n->name, n->name_len, v);
    }
    case TN_BREAK: return FLOW_BREAK;
    case TN_CONTINUE: return FLOW_CONTINUE;
    case TN_BODY: return exec_body(c, &n->l1);
    default: return tmpl_fail(c, n, "internal error: node %d is not a statement", n->kind);
    }
}

static int exec_body(tmpl_ctx *c, const tmpl_nodes *body) {
    for (size_t i = 0; i < body->n; i++) {
        int rc = exec_node(c, body->v[i]);
        if (rc) return rc;
    }
    return 0;
}

int tmpl_run(char *err, const tmpl_node *root, const char *const *names, const tval *vals, size_t n_globals,
             tmpl_arena *a, awq_buf *out) {
    tmpl_ctx c = {.err = err, .a = a, .out = out, .gnames = names, .gvals = vals, .ng = n_globals};
    tmpl_work_units = 0;
    c.root = scope_new(&c, NULL);
    if (!c.root) return tmpl_oom(&c);
    c.sc = c.root;
    int rc = exec_body(&c, &root->l1);
    return rc > 0 ? 0 : rc; /* break/continue cannot escape: the parser only allows them in loops */
}
