/* tmpl_parse.c - recursive-descent parser of the chat-template interpreter: tokens -> AST.
 *
 * The grammar and precedence follow jinja2/parser.py (Jinja 3.1), lowest first:
 *   condexpr  `a if c else b` (else optional: undefined)
 *   or, and, not
 *   compare   == != < <= > >= in, not in (chained: a < b < c)
 *   + -       (math1)
 *   ~         (concat)
 *   * / // %  (math2)
 *   **        (left-associative, as in Jinja)
 *   unary -/+ then primary, postfix (.attr [idx] [a:b:c] (call)), then filters `|f(...)` and
 *             tests `is [not] t(...)` which bind tighter than every binary operator.
 * Node pointers filled by a parse_* call start NULL: gcc -O3 cannot see through the inlined
 * parsers that they are only read after a successful call (maybe-uninitialized under -Werror).
 * Statements: if/elif/else, for (targets, `if` filter, else), set (plain, tuple, ns.attr,
 * block), macro, break/continue, generation (HF's AssistantTracker: renders its body).
 * Everything is allocated in the template's arena; node fields per kind are listed in
 * tmpl_int.h.
 */
#include "tmpl_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "awq_err.h"

typedef struct parser {
    char *err;
    tmpl_arena *a;
    const tmpl_tok *t;
    size_t n, i;
    int depth;      /* expression / block nesting */
    int loop_depth; /* for break/continue */
} parser;

/* ================================================================= helpers ==== */

static const tmpl_tok *cur(parser *p) { return &p->t[p->i]; }
static const tmpl_tok *peek(parser *p, size_t k) { return &p->t[p->i + k < p->n ? p->i + k : p->n - 1]; }
static void next(parser *p) {
    if (p->i + 1 < p->n) p->i++;
}

static const char *op_text(int op) {
    static const char *const txt[] = {"?", "+", "-", "*", "/", "//", "%", "**", "~", "[", "]", "(", ")",
                                      "{", "}", "==", "!=", "<", "<=", ">", ">=", "=", ".", ":", "|",
                                      ",", ";", "in", "not in"};
    return op > 0 && op < (int)(sizeof txt / sizeof txt[0]) ? txt[op] : "?";
}

static void tok_desc(const tmpl_tok *k, char *out, size_t cap) {
    switch (k->kind) {
    case TK_EOF: snprintf(out, cap, "end of template"); break;
    case TK_TEXT: snprintf(out, cap, "template text"); break;
    case TK_VAR_BEGIN: snprintf(out, cap, "'{{'"); break;
    case TK_VAR_END: snprintf(out, cap, "'}}'"); break;
    case TK_BLOCK_BEGIN: snprintf(out, cap, "'{%%'"); break;
    case TK_BLOCK_END: snprintf(out, cap, "'%%}'"); break;
    case TK_NAME: snprintf(out, cap, "'%.*s'", (int)(k->n > 40 ? 40 : k->n), k->s); break;
    case TK_STRING: snprintf(out, cap, "string literal"); break;
    case TK_INT: snprintf(out, cap, "integer"); break;
    case TK_FLOAT: snprintf(out, cap, "float"); break;
    default: snprintf(out, cap, "'%s'", op_text(k->op)); break;
    }
}

static int fail_at(parser *p, const tmpl_tok *k, const char *fmt, ...) AWQ_PRINTF(3, 4);
static int fail_at(parser *p, const tmpl_tok *k, const char *fmt, ...) {
    char msg[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return awq_seterr(p->err, AWQ_ETEMPLATE, "line %d, column %d: %s", k->line, k->col, msg);
}

/* "unexpected X" or "unexpected X, expected Y" at the current token */
static int unexpected(parser *p, const char *expected) {
    char d[64];
    tok_desc(cur(p), d, sizeof d);
    if (expected) return fail_at(p, cur(p), "unexpected %s, expected %s", d, expected);
    return fail_at(p, cur(p), "unexpected %s%s", d, "");
}

static int oom(parser *p) { return awq_seterr(p->err, AWQ_ENOMEM, "out of memory"); }

static bool is_op(parser *p, int op) { return cur(p)->kind == TK_OP && cur(p)->op == op; }
static bool tok_is_name(const tmpl_tok *k, const char *name) {
    return k->kind == TK_NAME && k->n == strlen(name) && memcmp(k->s, name, k->n) == 0;
}
static bool is_name(parser *p, const char *name) { return tok_is_name(cur(p), name); }

static int expect_op(parser *p, int op) {
    if (!is_op(p, op)) {
        char e[16];
        snprintf(e, sizeof e, "'%s'", op_text(op));
        return unexpected(p, e);
    }
    next(p);
    return 0;
}

static tmpl_node *mk(parser *p, int kind, const tmpl_tok *at) {
    tmpl_node *n = tmpl_alloc(p->a, sizeof *n);
    if (!n) return NULL;
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->line = at->line;
    n->col = at->col;
    return n;
}

/* append to a node list that lives in the arena (grows by doubling; old copies are dropped) */
static int push(parser *p, tmpl_nodes *l, size_t *cap, tmpl_node *x) {
    if (l->n == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        tmpl_node **v = tmpl_alloc(p->a, nc * sizeof *v);
        if (!v) return oom(p);
        if (l->n) memcpy(v, l->v, l->n * sizeof *v);
        l->v = v;
        *cap = nc;
    }
    l->v[l->n++] = x;
    return 0;
}

static int enter(parser *p) {
    if (++p->depth > TMPL_DEPTH_MAX)
        return fail_at(p, cur(p), "template nested too deeply (limit %s)%s", "100", "");
    return 0;
}

/* ================================================================= expressions ==== */

static int parse_expression(parser *p, bool with_condexpr, tmpl_node **out);
static int parse_or(parser *p, tmpl_node **out);
static int parse_unary(parser *p, bool with_filter, tmpl_node **out);

/* (args, kw=value) after the callee; kwargs become TN_KWARG nodes in the same list */
static int parse_call_args(parser *p, tmpl_nodes *args) {
    size_t cap = 0;
    bool kw_seen = false;
    int rc = expect_op(p, TOP_LPAREN);
    if (rc) return rc;
    bool need_comma = false;
    while (!is_op(p, TOP_RPAREN)) {
        if (need_comma) {
            if ((rc = expect_op(p, TOP_COMMA))) return rc;
            if (is_op(p, TOP_RPAREN)) break;
        }
        if (is_op(p, TOP_MUL) || is_op(p, TOP_POW)) return unexpected(p, NULL);
        tmpl_node *x = NULL;
        if (cur(p)->kind == TK_NAME && peek(p, 1)->kind == TK_OP && peek(p, 1)->op == TOP_ASSIGN) {
            x = mk(p, TN_KWARG, cur(p));
            if (!x) return oom(p);
            x->name = cur(p)->s;
            x->name_len = cur(p)->n;
            next(p);
            next(p);
            if ((rc = parse_expression(p, true, &x->a))) return rc;
            kw_seen = true;
        } else {
            if (kw_seen)
                return fail_at(p, cur(p), "positional argument follows keyword argument%s%s", "", "");
            if ((rc = parse_expression(p, true, &x))) return rc;
        }
        if ((rc = push(p, args, &cap, x))) return rc;
        need_comma = true;
    }
    next(p);
    return 0;
}

/* a name, possibly dotted (filter and test names) */
static int parse_dotted_name(parser *p, const char **name, size_t *len) {
    if (cur(p)->kind != TK_NAME) return unexpected(p, "a name");
    *name = cur(p)->s;
    *len = cur(p)->n;
    next(p);
    if (is_op(p, TOP_DOT)) return unexpected(p, NULL); /* no dotted filters/tests here */
    return 0;
}

static int parse_subscribed(parser *p, tmpl_node *obj, const tmpl_tok *at, tmpl_node **out) {
    tmpl_node *parts[3] = {NULL, NULL, NULL};
    int rc;
    if (is_op(p, TOP_COLON)) {
        next(p);
    } else {
        tmpl_node *e = NULL;
        if ((rc = parse_expression(p, true, &e))) return rc;
        if (!is_op(p, TOP_COLON)) {
            tmpl_node *g = mk(p, TN_GETITEM, at);
            if (!g) return oom(p);
            g->a = obj;
            g->b = e;
            *out = g;
            return 0;
        }
        next(p);
        parts[0] = e;
    }
    if (!is_op(p, TOP_COLON) && !is_op(p, TOP_RBRACKET) && !is_op(p, TOP_COMMA)) {
        if ((rc = parse_expression(p, true, &parts[1]))) return rc;
    }
    if (is_op(p, TOP_COLON)) {
        next(p);
        if (!is_op(p, TOP_RBRACKET) && !is_op(p, TOP_COMMA)) {
            if ((rc = parse_expression(p, true, &parts[2]))) return rc;
        }
    }
    tmpl_node *s = mk(p, TN_SLICE, at);
    if (!s) return oom(p);
    s->a = obj;
    s->b = parts[0];
    s->c = parts[1];
    s->d = parts[2];
    *out = s;
    return 0;
}

static int parse_postfix(parser *p, tmpl_node *node, tmpl_node **out) {
    int rc;
    for (;;) {
        const tmpl_tok *at = cur(p);
        if (is_op(p, TOP_DOT)) {
            next(p);
            if (cur(p)->kind == TK_NAME) {
                tmpl_node *g = mk(p, TN_GETATTR, at);
                if (!g) return oom(p);
                g->a = node;
                g->name = cur(p)->s;
                g->name_len = cur(p)->n;
                next(p);
                node = g;
            } else if (cur(p)->kind == TK_INT) {
                tmpl_node *g = mk(p, TN_GETITEM, at), *k = mk(p, TN_CONST, cur(p));
                if (!g || !k) return oom(p);
                k->cval = tv_int(cur(p)->i);
                g->a = node;
                g->b = k;
                next(p);
                node = g;
            } else {
                return unexpected(p, "a name or number after '.'");
            }
        } else if (is_op(p, TOP_LBRACKET)) {
            next(p);
            if ((rc = enter(p))) return rc;
            if ((rc = parse_subscribed(p, node, at, &node))) return rc;
            p->depth--;
            if (is_op(p, TOP_COMMA)) return fail_at(p, cur(p), "tuple subscripts are not supported%s%s", "", "");
            if ((rc = expect_op(p, TOP_RBRACKET))) return rc;
        } else if (is_op(p, TOP_LPAREN)) {
            tmpl_node *c = mk(p, TN_CALL, at);
            if (!c) return oom(p);
            c->a = node;
            if ((rc = enter(p))) return rc;
            if ((rc = parse_call_args(p, &c->l1))) return rc;
            p->depth--;
            node = c;
        } else {
            break;
        }
    }
    *out = node;
    return 0;
}

static int parse_list_or_dict(parser *p, bool dict, tmpl_node **out) {
    const tmpl_tok *at = cur(p);
    tmpl_node *n = mk(p, dict ? TN_DICT : TN_LIST, at);
    if (!n) return oom(p);
    size_t cap1 = 0, cap2 = 0;
    int close = dict ? TOP_RBRACE : TOP_RBRACKET;
    int rc;
    next(p);
    while (!is_op(p, close)) {
        if (n->l1.n) {
            if ((rc = expect_op(p, TOP_COMMA))) return rc;
            if (is_op(p, close)) break;
        }
        tmpl_node *x = NULL;
        if ((rc = parse_expression(p, true, &x))) return rc;
        if ((rc = push(p, &n->l1, &cap1, x))) return rc;
        if (dict) {
            if ((rc = expect_op(p, TOP_COLON))) return rc;
            if ((rc = parse_expression(p, true, &x))) return rc;
            if ((rc = push(p, &n->l2, &cap2, x))) return rc;
        }
    }
    next(p);
    *out = n;
    return 0;
}

static int parse_tuple(parser *p, bool simplified, bool with_condexpr, const char *end_name,
                       bool explicit_parens, tmpl_node **out);

static int parse_primary(parser *p, tmpl_node **out) {
    const tmpl_tok *k = cur(p);
    int rc;
    if ((rc = enter(p))) return rc;
    tmpl_node *n = NULL;
    switch (k->kind) {
    case TK_NAME:
        n = mk(p, TN_CONST, k);
        if (!n) return oom(p);
        if (tok_is_name(k, "true") || tok_is_name(k, "True")) n->cval = tv_bool(true);
        else if (tok_is_name(k, "false") || tok_is_name(k, "False")) n->cval = tv_bool(false);
        else if (tok_is_name(k, "none") || tok_is_name(k, "None")) n->cval = tv_none();
        else {
            n->kind = TN_NAME;
            n->name = k->s;
            n->name_len = k->n;
        }
        next(p);
        break;
    case TK_STRING: {
        /* adjacent literals concatenate: 'a' 'b' */
        size_t total = 0, j = p->i;
        for (; j < p->n && p->t[j].kind == TK_STRING; j++) total += p->t[j].n;
        char *s = tmpl_alloc(p->a, total + 1);
        n = mk(p, TN_CONST, k);
        if (!s || !n) return oom(p);
        size_t o = 0;
        for (; cur(p)->kind == TK_STRING; next(p)) {
            memcpy(s + o, cur(p)->s, cur(p)->n);
            o += cur(p)->n;
        }
        s[o] = 0;
        n->cval = tv_str(s, o);
        break;
    }
    case TK_INT:
    case TK_FLOAT:
        n = mk(p, TN_CONST, k);
        if (!n) return oom(p);
        n->cval = k->kind == TK_INT ? tv_int(k->i) : tv_float(k->f);
        next(p);
        break;
    case TK_OP:
        if (k->op == TOP_LPAREN) {
            next(p);
            if ((rc = parse_tuple(p, false, true, NULL, true, &n))) return rc;
            if ((rc = expect_op(p, TOP_RPAREN))) return rc;
            break;
        }
        if (k->op == TOP_LBRACKET || k->op == TOP_LBRACE) {
            if ((rc = parse_list_or_dict(p, k->op == TOP_LBRACE, &n))) return rc;
            break;
        }
        return unexpected(p, NULL);
    default: return unexpected(p, "an expression");
    }
    p->depth--;
    *out = n;
    return 0;
}

static int parse_filter_expr(parser *p, tmpl_node *node, tmpl_node **out) {
    int rc;
    for (;;) {
        const tmpl_tok *at = cur(p);
        if (is_op(p, TOP_PIPE)) {
            next(p);
            tmpl_node *f = mk(p, TN_FILTER, cur(p));
            if (!f) return oom(p);
            const tmpl_tok *fk = cur(p);
            if ((rc = parse_dotted_name(p, &f->name, &f->name_len))) return rc;
            if (!tmpl_filter_known(f->name, f->name_len)) {
                char d[64];
                tok_desc(fk, d, sizeof d);
                return fail_at(p, fk, "no filter named %s%s", d, "");
            }
            f->a = node;
            if (is_op(p, TOP_LPAREN) && (rc = parse_call_args(p, &f->l1))) return rc;
            node = f;
        } else if (is_name(p, "is")) {
            next(p);
            bool negated = false;
            if (is_name(p, "not")) {
                negated = true;
                next(p);
            }
            tmpl_node *t = mk(p, TN_TEST, cur(p));
            if (!t) return oom(p);
            const tmpl_tok *tk = cur(p);
            if ((rc = parse_dotted_name(p, &t->name, &t->name_len))) return rc;
            if (!tmpl_test_known(t->name, t->name_len)) {
                char d[64];
                tok_desc(tk, d, sizeof d);
                return fail_at(p, tk, "no test named %s%s", d, "");
            }
            t->a = node;
            const tmpl_tok *k = cur(p);
            if (is_op(p, TOP_LPAREN)) {
                if ((rc = parse_call_args(p, &t->l1))) return rc;
            } else if ((k->kind == TK_NAME || k->kind == TK_STRING || k->kind == TK_INT || k->kind == TK_FLOAT ||
                        (k->kind == TK_OP && (k->op == TOP_LBRACKET || k->op == TOP_LBRACE))) &&
                       !is_name(p, "else") && !is_name(p, "or") && !is_name(p, "and")) {
                if (is_name(p, "is")) return fail_at(p, k, "you cannot chain multiple tests with 'is'%s%s", "", "");
                tmpl_node *arg = NULL;
                size_t cap = 0;
                if ((rc = parse_primary(p, &arg))) return rc;
                if ((rc = parse_postfix(p, arg, &arg))) return rc;
                if ((rc = push(p, &t->l1, &cap, arg))) return rc;
            }
            node = t;
            if (negated) {
                tmpl_node *nn = mk(p, TN_NOT, at);
                if (!nn) return oom(p);
                nn->a = t;
                node = nn;
            }
        } else if (is_op(p, TOP_LPAREN)) {
            tmpl_node *c = mk(p, TN_CALL, at);
            if (!c) return oom(p);
            c->a = node;
            if ((rc = parse_call_args(p, &c->l1))) return rc;
            node = c;
        } else {
            break;
        }
    }
    *out = node;
    return 0;
}

static int parse_unary(parser *p, bool with_filter, tmpl_node **out) {
    const tmpl_tok *at = cur(p);
    tmpl_node *node = NULL;
    int rc;
    if ((rc = enter(p))) return rc;
    if (is_op(p, TOP_SUB) || is_op(p, TOP_ADD)) {
        int kind = is_op(p, TOP_SUB) ? TN_NEG : TN_POS;
        next(p);
        tmpl_node *x = NULL;
        if ((rc = parse_unary(p, false, &x))) return rc;
        node = mk(p, kind, at);
        if (!node) return oom(p);
        node->a = x;
    } else if ((rc = parse_primary(p, &node))) {
        return rc;
    }
    if ((rc = parse_postfix(p, node, &node))) return rc;
    if (with_filter && (rc = parse_filter_expr(p, node, &node))) return rc;
    p->depth--;
    *out = node;
    return 0;
}

/* binary levels: pow < math2 < concat < math1 */
static int parse_pow(parser *p, tmpl_node **out) {
    tmpl_node *l = NULL;
    int rc = parse_unary(p, true, &l);
    while (!rc && is_op(p, TOP_POW)) {
        const tmpl_tok *at = cur(p);
        next(p);
        tmpl_node *r = NULL, *b = NULL;
        if ((rc = parse_unary(p, true, &r))) return rc;
        if (!(b = mk(p, TN_BINOP, at))) return oom(p);
        b->op = TOP_POW;
        b->a = l;
        b->b = r;
        l = b;
    }
    *out = l;
    return rc;
}

/* A left-associative level: operand (op operand)*, where op is any of ops[0..nops). */
static int parse_left_assoc(parser *p, int (*operand)(parser *, tmpl_node **), const int *ops, int nops,
                            tmpl_node **out) {
    tmpl_node *l = NULL;
    int rc = operand(p, &l);
    for (;;) {
        int k = 0;
        while (!rc && k < nops && !is_op(p, ops[k])) k++;
        if (rc || k == nops) break;
        const tmpl_tok *at = cur(p);
        next(p);
        tmpl_node *r = NULL, *b = NULL;
        if ((rc = operand(p, &r))) return rc;
        if (!(b = mk(p, TN_BINOP, at))) return oom(p);
        b->op = ops[k];
        b->a = l;
        b->b = r;
        l = b;
    }
    *out = l;
    return rc;
}

static int parse_math2(parser *p, tmpl_node **out) {
    static const int ops[] = {TOP_MUL, TOP_DIV, TOP_FLOORDIV, TOP_MOD};
    return parse_left_assoc(p, parse_pow, ops, 4, out);
}

static int parse_concat(parser *p, tmpl_node **out) {
    tmpl_node *first = NULL;
    int rc = parse_math2(p, &first);
    if (rc || !is_op(p, TOP_TILDE)) {
        *out = first;
        return rc;
    }
    tmpl_node *c = mk(p, TN_CONCAT, cur(p));
    size_t cap = 0;
    if (!c) return oom(p);
    if ((rc = push(p, &c->l1, &cap, first))) return rc;
    while (is_op(p, TOP_TILDE)) {
        next(p);
        tmpl_node *x = NULL;
        if ((rc = parse_math2(p, &x))) return rc;
        if ((rc = push(p, &c->l1, &cap, x))) return rc;
    }
    *out = c;
    return 0;
}

static int parse_math1(parser *p, tmpl_node **out) {
    static const int ops[] = {TOP_ADD, TOP_SUB};
    return parse_left_assoc(p, parse_concat, ops, 2, out);
}

static int parse_compare(parser *p, tmpl_node **out) {
    tmpl_node *first = NULL;
    int rc = parse_math1(p, &first);
    if (rc) return rc;
    tmpl_node *c = NULL;
    size_t cap = 0, nops = 0, opcap = 0;
    int *opv = NULL;
    for (;;) {
        int op = 0;
        const tmpl_tok *k = cur(p);
        if (k->kind == TK_OP && (k->op == TOP_EQ || k->op == TOP_NE || k->op == TOP_LT || k->op == TOP_LE ||
                                 k->op == TOP_GT || k->op == TOP_GE)) {
            op = k->op;
            next(p);
        } else if (is_name(p, "in")) {
            op = TOP_IN;
            next(p);
        } else if (is_name(p, "not") && tok_is_name(peek(p, 1), "in")) {
            op = TOP_NOTIN;
            next(p);
            next(p);
        } else {
            break;
        }
        if (!c) {
            if (!(c = mk(p, TN_COMPARE, k))) return oom(p);
            c->a = first;
        }
        tmpl_node *x = NULL;
        if ((rc = parse_math1(p, &x))) return rc;
        if ((rc = push(p, &c->l1, &cap, x))) return rc;
        if (nops == opcap) {
            size_t nc = opcap ? opcap * 2 : 4;
            int *v = tmpl_alloc(p->a, nc * sizeof *v);
            if (!v) return oom(p);
            if (nops) memcpy(v, opv, nops * sizeof *v);
            opv = v;
            opcap = nc;
        }
        opv[nops++] = op;
    }
    if (c) c->ops = opv;
    *out = c ? c : first;
    return 0;
}

static int parse_not(parser *p, tmpl_node **out) {
    if (is_name(p, "not")) {
        const tmpl_tok *at = cur(p);
        next(p);
        int rc = enter(p);
        if (rc) return rc;
        tmpl_node *x = NULL, *n = NULL;
        if ((rc = parse_not(p, &x))) return rc;
        p->depth--;
        if (!(n = mk(p, TN_NOT, at))) return oom(p);
        n->a = x;
        *out = n;
        return 0;
    }
    return parse_compare(p, out);
}

static int parse_bool_level(parser *p, bool is_or, tmpl_node **out) {
    tmpl_node *l = NULL;
    int rc = is_or ? parse_bool_level(p, false, &l) : parse_not(p, &l);
    while (!rc && is_name(p, is_or ? "or" : "and")) {
        const tmpl_tok *at = cur(p);
        next(p);
        tmpl_node *r = NULL, *b = NULL;
        if ((rc = is_or ? parse_bool_level(p, false, &r) : parse_not(p, &r))) return rc;
        if (!(b = mk(p, is_or ? TN_OR : TN_AND, at))) return oom(p);
        b->a = l;
        b->b = r;
        l = b;
    }
    *out = l;
    return rc;
}

static int parse_or(parser *p, tmpl_node **out) { return parse_bool_level(p, true, out); }

static int parse_condexpr(parser *p, tmpl_node **out) {
    tmpl_node *e1;
    int rc = parse_or(p, &e1);
    while (!rc && is_name(p, "if")) {
        const tmpl_tok *at = cur(p);
        next(p);
        tmpl_node *e2, *e3 = NULL, *c;
        if ((rc = parse_or(p, &e2))) return rc;
        if (is_name(p, "else")) {
            next(p);
            if ((rc = enter(p))) return rc;
            if ((rc = parse_condexpr(p, &e3))) return rc;
            p->depth--;
        }
        if (!(c = mk(p, TN_CONDEXPR, at))) return oom(p);
        c->a = e2;
        c->b = e1;
        c->c = e3;
        e1 = c;
    }
    *out = e1;
    return rc;
}

static int parse_expression(parser *p, bool with_condexpr, tmpl_node **out) {
    int rc = enter(p);
    if (rc) return rc;
    rc = with_condexpr ? parse_condexpr(p, out) : parse_or(p, out);
    p->depth--;
    return rc;
}

static bool tuple_end(parser *p, const char *end_name) {
    const tmpl_tok *k = cur(p);
    if (k->kind == TK_VAR_END || k->kind == TK_BLOCK_END || k->kind == TK_EOF) return true;
    if (k->kind == TK_OP && k->op == TOP_RPAREN) return true;
    return end_name && tok_is_name(k, end_name);
}

/* expression or bare tuple `a, b`; simplified: primaries only (assignment targets) */
static int parse_tuple(parser *p, bool simplified, bool with_condexpr, const char *end_name,
                       bool explicit_parens, tmpl_node **out) {
    const tmpl_tok *at = cur(p);
    tmpl_nodes items = {0};
    size_t cap = 0;
    bool is_tuple = false;
    int rc;
    for (;;) {
        if (items.n && (rc = expect_op(p, TOP_COMMA))) return rc;
        if (tuple_end(p, end_name)) break;
        tmpl_node *x = NULL;
        rc = simplified ? parse_primary(p, &x) : parse_expression(p, with_condexpr, &x);
        if (rc) return rc;
        if ((rc = push(p, &items, &cap, x))) return rc;
        if (is_op(p, TOP_COMMA)) is_tuple = true;
        else break;
    }
    if (!is_tuple) {
        if (items.n) {
            *out = items.v[0];
            return 0;
        }
        if (!explicit_parens) return unexpected(p, "an expression");
    }
    tmpl_node *t = mk(p, TN_TUPLE, at);
    if (!t) return oom(p);
    t->l1 = items;
    *out = t;
    return 0;
}

/* ================================================================= statements ==== */

static int subparse(parser *p, const char *const *end_names, tmpl_nodes *body);

static int expect_block_end(parser *p) {
    if (cur(p)->kind != TK_BLOCK_END) return unexpected(p, "'%}'");
    next(p);
    return 0;
}

/* assignment target: name, tuple of names, or (with_ns) name.attr */
static int parse_assign_target(parser *p, bool with_ns, const char *end_name, tmpl_node **out) {
    int rc;
    if (with_ns && cur(p)->kind == TK_NAME && peek(p, 1)->kind == TK_OP && peek(p, 1)->op == TOP_DOT) {
        const tmpl_tok *k = cur(p);
        tmpl_node *obj = mk(p, TN_NAME, k), *g = mk(p, TN_GETATTR, k);
        if (!obj || !g) return oom(p);
        obj->name = k->s;
        obj->name_len = k->n;
        next(p);
        next(p);
        if (cur(p)->kind != TK_NAME) return unexpected(p, "an attribute name");
        g->a = obj;
        g->name = cur(p)->s;
        g->name_len = cur(p)->n;
        next(p);
        *out = g;
        return 0;
    }
    const tmpl_tok *at = cur(p);
    tmpl_node *t = NULL;
    if ((rc = parse_tuple(p, true, false, end_name, false, &t))) return rc;
    bool ok = t->kind == TN_NAME;
    if (t->kind == TN_TUPLE) {
        ok = t->l1.n > 0;
        for (size_t i = 0; i < t->l1.n; i++) ok = ok && t->l1.v[i]->kind == TN_NAME;
    }
    if (!ok) return fail_at(p, at, "cannot assign to this expression%s%s", "", "");
    *out = t;
    return 0;
}

static int parse_for(parser *p, tmpl_node *n) {
    int rc;
    static const char *const ends1[] = {"endfor", "else", NULL}, *const ends2[] = {"endfor", NULL};
    if ((rc = parse_assign_target(p, false, "in", &n->a))) return rc;
    if (!is_name(p, "in")) return unexpected(p, "'in'");
    next(p);
    if ((rc = parse_tuple(p, false, false, "recursive", false, &n->b))) return rc;
    if (is_name(p, "if")) {
        next(p);
        if ((rc = parse_expression(p, true, &n->c))) return rc;
    }
    if (is_name(p, "recursive"))
        return fail_at(p, cur(p), "recursive loops are not supported%s%s", "", "");
    if ((rc = expect_block_end(p))) return rc;
    p->loop_depth++;
    rc = subparse(p, ends1, &n->l1);
    p->loop_depth--;
    if (rc) return rc;
    if (is_name(p, "else")) {
        next(p);
        if ((rc = expect_block_end(p))) return rc;
        if ((rc = subparse(p, ends2, &n->l2))) return rc;
    }
    next(p); /* endfor */
    return 0;
}

static int parse_if(parser *p, tmpl_node *n) {
    static const char *const ends1[] = {"elif", "else", "endif", NULL}, *const ends2[] = {"endif", NULL};
    int rc;
    if ((rc = parse_tuple(p, false, false, NULL, false, &n->a))) return rc;
    if ((rc = expect_block_end(p))) return rc;
    if ((rc = subparse(p, ends1, &n->l1))) return rc;
    if (is_name(p, "elif")) {
        const tmpl_tok *at = cur(p);
        next(p);
        tmpl_node *e = mk(p, TN_IF, at);
        size_t cap = 0;
        if (!e) return oom(p);
        if ((rc = enter(p))) return rc;
        if ((rc = parse_if(p, e))) return rc; /* consumes through endif */
        p->depth--;
        return push(p, &n->l2, &cap, e);
    }
    if (is_name(p, "else")) {
        next(p);
        if ((rc = expect_block_end(p))) return rc;
        if ((rc = subparse(p, ends2, &n->l2))) return rc;
    }
    next(p); /* endif */
    return 0;
}

static int parse_macro(parser *p, tmpl_node *n) {
    static const char *const ends[] = {"endmacro", NULL};
    int rc;
    if (cur(p)->kind != TK_NAME) return unexpected(p, "a macro name");
    n->name = cur(p)->s;
    n->name_len = cur(p)->n;
    next(p);
    if ((rc = expect_op(p, TOP_LPAREN))) return rc;
    size_t cap = 0;
    bool defaults = false;
    while (!is_op(p, TOP_RPAREN)) {
        if (n->l2.n && (rc = expect_op(p, TOP_COMMA))) return rc;
        if (cur(p)->kind != TK_NAME) return unexpected(p, "a parameter name");
        tmpl_node *a = mk(p, TN_KWARG, cur(p));
        if (!a) return oom(p);
        a->name = cur(p)->s;
        a->name_len = cur(p)->n;
        next(p);
        if (is_op(p, TOP_ASSIGN)) {
            next(p);
            if ((rc = parse_expression(p, true, &a->a))) return rc;
            defaults = true;
        } else if (defaults) {
            return fail_at(p, cur(p), "non-default parameter follows default parameter%s%s", "", "");
        }
        if ((rc = push(p, &n->l2, &cap, a))) return rc;
    }
    next(p);
    if ((rc = expect_block_end(p))) return rc;
    int saved = p->loop_depth;
    p->loop_depth = 0;
    rc = subparse(p, ends, &n->l1);
    p->loop_depth = saved;
    if (rc) return rc;
    next(p); /* endmacro */
    return 0;
}

static int parse_statement(parser *p, tmpl_node **out) {
    const tmpl_tok *k = cur(p);
    int rc;
    if (k->kind != TK_NAME) return unexpected(p, "a tag name");
    if ((rc = enter(p))) return rc;
    tmpl_node *n = NULL;
    if (tok_is_name(k, "for")) {
        if (!(n = mk(p, TN_FOR, k))) return oom(p);
        next(p);
        rc = parse_for(p, n);
    } else if (tok_is_name(k, "if")) {
        if (!(n = mk(p, TN_IF, k))) return oom(p);
        next(p);
        rc = parse_if(p, n);
    } else if (tok_is_name(k, "set")) {
        if (!(n = mk(p, TN_SET, k))) return oom(p);
        next(p);
        if ((rc = parse_assign_target(p, true, NULL, &n->a))) return rc;
        if (is_op(p, TOP_ASSIGN)) {
            next(p);
            rc = parse_tuple(p, false, true, NULL, false, &n->b);
        } else {
            static const char *const ends[] = {"endset", NULL};
            n->kind = TN_SETBLOCK;
            if (is_op(p, TOP_PIPE)) return fail_at(p, cur(p), "filters on a block set are not supported%s%s", "", "");
            if ((rc = expect_block_end(p))) return rc;
            if ((rc = subparse(p, ends, &n->l1))) return rc;
            next(p); /* endset */
        }
    } else if (tok_is_name(k, "macro")) {
        if (!(n = mk(p, TN_MACRO, k))) return oom(p);
        next(p);
        rc = parse_macro(p, n);
    } else if (tok_is_name(k, "break") || tok_is_name(k, "continue")) {
        bool brk = tok_is_name(k, "break");
        if (!p->loop_depth)
            return fail_at(p, k, "'%s' outside of a loop%s", brk ? "break" : "continue", "");
        if (!(n = mk(p, brk ? TN_BREAK : TN_CONTINUE, k))) return oom(p);
        next(p);
    } else if (tok_is_name(k, "generation")) {
        static const char *const ends[] = {"endgeneration", NULL};
        if (!(n = mk(p, TN_BODY, k))) return oom(p);
        next(p);
        if ((rc = expect_block_end(p))) return rc;
        if ((rc = subparse(p, ends, &n->l1))) return rc;
        next(p);
    } else {
        char d[64];
        tok_desc(k, d, sizeof d);
        return fail_at(p, k, "unknown or unsupported tag %s%s", d, "");
    }
    if (rc) return rc;
    p->depth--;
    *out = n;
    return 0;
}

static bool is_end_name(const tmpl_tok *k, const char *const *end_names) {
    for (size_t i = 0; end_names && end_names[i]; i++)
        if (tok_is_name(k, end_names[i])) return true;
    return false;
}

/* Parse statements until EOF (end_names NULL) or a block starting with one of end_names;
 * stops with that name as the current token. */
static int subparse(parser *p, const char *const *end_names, tmpl_nodes *body) {
    size_t cap = 0;
    int rc;
    for (;;) {
        const tmpl_tok *k = cur(p);
        tmpl_node *n = NULL;
        if (k->kind == TK_EOF) {
            if (!end_names) return 0;
            char exp[96] = "";
            for (size_t i = 0; end_names[i]; i++) {
                size_t o = strlen(exp);
                snprintf(exp + o, sizeof exp - o, "%s'%s'", i ? " or " : "", end_names[i]);
            }
            return fail_at(p, k, "unexpected end of template, expected %s%s", exp, "");
        }
        if (k->kind == TK_TEXT) {
            if (!(n = mk(p, TN_TEXT, k))) return oom(p);
            n->name = k->s;
            n->name_len = k->n;
            next(p);
        } else if (k->kind == TK_VAR_BEGIN) {
            next(p);
            if (!(n = mk(p, TN_OUTPUT, cur(p)))) return oom(p);
            if ((rc = parse_tuple(p, false, true, NULL, false, &n->a))) return rc;
            if (cur(p)->kind != TK_VAR_END) return unexpected(p, "'}}'");
            next(p);
        } else if (k->kind == TK_BLOCK_BEGIN) {
            next(p);
            if (is_end_name(cur(p), end_names)) return 0;
            const tmpl_tok *name = cur(p);
            if (name->kind == TK_NAME && name->n > 3 && memcmp(name->s, "end", 3) == 0) {
                char d[64];
                tok_desc(name, d, sizeof d);
                if (end_names) {
                    char exp[96] = "";
                    for (size_t i = 0; end_names[i]; i++) {
                        size_t o = strlen(exp);
                        snprintf(exp + o, sizeof exp - o, "%s'%s'", i ? " or " : "", end_names[i]);
                    }
                    return fail_at(p, name, "unexpected %s, expected %s", d, exp);
                }
                return fail_at(p, name, "unexpected %s: no block is open%s", d, "");
            }
            if (name->kind == TK_NAME && (tok_is_name(name, "else") || tok_is_name(name, "elif"))) {
                char d[64];
                tok_desc(name, d, sizeof d);
                return fail_at(p, name, "unexpected %s%s", d, "");
            }
            if ((rc = parse_statement(p, &n))) return rc;
            if ((rc = expect_block_end(p))) return rc;
        } else {
            return unexpected(p, NULL);
        }
        if ((rc = push(p, body, &cap, n))) return rc;
    }
}

int tmpl_parse(char *err, tmpl_arena *a, const tmpl_toks *toks, tmpl_node **root) {
    parser p = {.err = err, .a = a, .t = toks->v, .n = toks->n};
    tmpl_node *r = mk(&p, TN_BODY, &toks->v[0]);
    if (!r) return oom(&p);
    int rc = subparse(&p, NULL, &r->l1);
    if (rc) return rc;
    *root = r;
    return 0;
}
