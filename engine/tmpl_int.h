/* tmpl_int.h - private to the chat-template interpreter (engine/tmpl*.c); nothing outside
 * engine/tmpl*.c includes it. The public surface is engine/tmpl.h.
 *
 * Pipeline: tmpl_lex.c turns source into tokens (applying Jinja's whitespace rules the way
 * Hugging Face configures them: trim_blocks and lstrip_blocks on), tmpl_parse.c builds an AST in
 * the template's arena, tmpl_eval.c walks it with values from a per-render arena (scopes,
 * statements, calls), tmpl_ops.c does attribute/item access, slices and operators,
 * tmpl_val.c holds the value type (Python semantics: str(), repr(), json.dumps, comparisons)
 * and tmpl_lib.c the filters, tests and methods. tmpl.c is the public API (engine/tmpl.h).
 *
 * Thread safety: a compiled template (AST + arena) is never written after compile; every
 * render has its own arena and context.
 */
#ifndef ENG_TMPL_INT_H
#define ENG_TMPL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "awq_util.h"
#include "tmpl.h"

/* ---- limits that keep a hostile template from hanging or exhausting the process ---- */
#define TMPL_DEPTH_MAX 100          /* nesting of blocks and expressions (parse) and calls (render) */
#define TMPL_ITER_MAX 1000000u      /* loop iterations in one render, all loops together */
#define TMPL_STEPS_MAX 20000000u    /* evaluations (+ scanning work, tmpl_work_units) in one render */
#define TMPL_MEM_MAX (256u << 20)   /* bytes one render may allocate for values */
#define TMPL_RANGE_MAX 100000       /* largest range(), as Jinja's sandbox (MAX_RANGE) */

/* ================================================================= arena ==== */
/* Bump allocator with a byte cap; everything it hands out dies with tmpl_arena_free. */
typedef struct tmpl_chunk tmpl_chunk;
typedef struct tmpl_arena {
    tmpl_chunk *head;
    size_t total; /* bytes obtained from malloc so far */
    size_t limit; /* 0 = unlimited */
} tmpl_arena;

/* n bytes, 16-aligned, or NULL when out of memory or over the limit. */
void *tmpl_alloc(tmpl_arena *a, size_t n);
void *tmpl_memdup(tmpl_arena *a, const void *p, size_t n); /* NUL-terminated copy */
void tmpl_arena_free(tmpl_arena *a);

/* ================================================================= tokens ==== */
enum tmpl_tok_kind {
    TK_EOF,
    TK_TEXT,        /* literal text between tags (already whitespace-controlled) */
    TK_VAR_BEGIN,   /* {{ */
    TK_VAR_END,     /* }} */
    TK_BLOCK_BEGIN, /* {% */
    TK_BLOCK_END,   /* %} */
    TK_NAME,
    TK_STRING,      /* decoded value in s/n */
    TK_INT,
    TK_FLOAT,
    TK_OP,          /* operator; op holds one of the TOP_* codes */
};

/* operators (also used as AST binary/compare op codes) */
enum tmpl_op {
    TOP_ADD = 1, TOP_SUB, TOP_MUL, TOP_DIV, TOP_FLOORDIV, TOP_MOD, TOP_POW, TOP_TILDE,
    TOP_LBRACKET, TOP_RBRACKET, TOP_LPAREN, TOP_RPAREN, TOP_LBRACE, TOP_RBRACE,
    TOP_EQ, TOP_NE, TOP_LT, TOP_LE, TOP_GT, TOP_GE, TOP_ASSIGN, TOP_DOT, TOP_COLON,
    TOP_PIPE, TOP_COMMA, TOP_SEMICOLON,
    TOP_IN, TOP_NOTIN, /* compare ops only (from names) */
};

typedef struct tmpl_tok {
    int kind;
    int op;
    int line, col;
    const char *s; /* TEXT/NAME/STRING: bytes (TEXT points into the normalised source) */
    size_t n;
    int64_t i;
    double f;
} tmpl_tok;

typedef struct tmpl_toks {
    tmpl_tok *v;
    size_t n, cap;
} tmpl_toks;

/* Lex src (already newline-normalised, see tmpl_normalize) into toks; strings are decoded into
 * arena a. Returns 0 or AWQ_ETEMPLATE / AWQ_ENOMEM with "line L, column C: ..." in err. */
int tmpl_lex(char *err, tmpl_arena *a, const char *src, size_t len, tmpl_toks *toks);
void tmpl_toks_free(tmpl_toks *toks);
/* Jinja's newline handling: \r\n and \r become \n, one trailing \n is dropped
 * (keep_trailing_newline=False). Returns an arena copy, length in *out_len. */
char *tmpl_normalize(tmpl_arena *a, const char *src, size_t len, size_t *out_len);

/* ================================================================= values ==== */
enum tmpl_vtype {
    TV_UNDEF, /* Jinja Undefined: prints empty, falsy, iterates as empty; hint says why */
    TV_NONE,
    TV_BOOL,
    TV_INT,
    TV_FLOAT,
    TV_STR,
    TV_LIST,  /* also tuples (is_tuple set): immutable, as in the immutable sandbox */
    TV_DICT,  /* insertion-ordered */
    TV_NS,    /* namespace(): the one mutable object (set ns.x = ...) */
    TV_LOOP,  /* the `loop` variable of a for */
    TV_FUNC,  /* a builtin global, a bound method, or a macro */
};

typedef struct tmpl_list tmpl_list;
typedef struct tmpl_dict tmpl_dict;
typedef struct tmpl_loop tmpl_loop;
typedef struct tmpl_func tmpl_func;

typedef struct tval {
    uint8_t t;
    uint8_t is_tuple; /* TV_LIST flavour: 0 list, 1 tuple, or a dict view (TVL_*): prints differently */
    union {
        bool b;
        int64_t i;
        double f;
        struct {
            const char *p; /* UTF-8, not NUL-terminated in general */
            size_t n;
        } s; /* TV_STR; for TV_UNDEF the hint ("'x' is undefined"), may be empty */
        tmpl_list *l;
        tmpl_dict *d; /* TV_DICT and TV_NS */
        tmpl_loop *loop;
        tmpl_func *fn;
    } u;
} tval;

struct tmpl_list {
    size_t n;
    tval *v;
};
struct tmpl_dict {
    size_t n, cap;
    tval *k, *v;
};
struct tmpl_loop {
    tmpl_list *items; /* (length) the iterated items, for previtem/nextitem */
    int64_t index0;
    int depth0;
};
struct tmpl_node;
struct tmpl_func {
    int id;                       /* TF_* builtin id */
    tval self;                    /* bound object for methods */
    const char *mname;            /* method name (TF_METHOD) */
    size_t mlen;
    const struct tmpl_node *macro; /* when id == TF_MACRO */
};

/* builtin callables */
enum tmpl_fn_id {
    TF_RAISE = 1, TF_NAMESPACE, TF_RANGE, TF_DICT, TF_MACRO, TF_LOOP_CYCLE, TF_STRFTIME,
    TF_METHOD, /* a string/dict method; name in the call node */
};

enum { TVL_TUPLE = 1, TVL_KEYS, TVL_VALUES, TVL_ITEMS };

static inline tval tv_undef(void) { tval v = {0}; v.t = TV_UNDEF; return v; }
static inline tval tv_none(void) { tval v = {0}; v.t = TV_NONE; return v; }
static inline tval tv_bool(bool b) { tval v = {0}; v.t = TV_BOOL; v.u.b = b; return v; }
static inline tval tv_int(int64_t i) { tval v = {0}; v.t = TV_INT; v.u.i = i; return v; }
static inline tval tv_float(double f) { tval v = {0}; v.t = TV_FLOAT; v.u.f = f; return v; }
static inline tval tv_str(const char *p, size_t n) {
    tval v = {0}; v.t = TV_STR; v.u.s.p = p; v.u.s.n = n; return v;
}

/* Work done inside helpers that scan data (string compares and searches, code point counts),
 * in units of about 16 bytes, per thread; the evaluator drains it into its step budget so that
 * a loop over large strings is bounded like any other work. */
extern _Thread_local size_t tmpl_work_units;

bool tv_truthy(const tval *v);
const char *tv_typename(const tval *v); /* Python's type name: "str", "dict", ... */
/* Python str(v) / repr(v) appended to b. Returns 0 or AWQ_ENOMEM. */
int tv_str_append(awq_buf *b, const tval *v);
int tv_repr_append(awq_buf *b, const tval *v);
/* json.dumps(v, ensure_ascii, indent (<0: none), separators (NULL: default), sort_keys).
 * Returns 0, AWQ_ENOMEM, or AWQ_ETEMPLATE with a message in err (not serialisable). */
int tv_json_append(char *err, awq_buf *b, const tval *v, bool ensure_ascii, int indent,
                   const char *item_sep, const char *key_sep, bool sort_keys, int depth);
/* Python ==, and ordering (<0, 0, >0) for numbers/strings/lists; *ok false when unordered. */
bool tv_equal(const tval *a, const tval *b);
int tv_compare(const tval *a, const tval *b, bool *ok);
/* Python float repr ("1.0", "1e+16", "0.1", "inf", "nan") into out (32 bytes). */
void tv_float_repr(double f, char out[32]);

/* ---- Python-compatible string helpers (code points, Unicode whitespace) ---- */
bool tmpl_py_isspace(uint32_t cp);
/* Decode the code point at s (n bytes left), tolerating bad bytes (1 byte, cp=0xFFFD). */
size_t tmpl_cp_at(const char *s, size_t n, uint32_t *cp);
size_t tmpl_cp_count(const char *s, size_t n);
/* First offset >= from of needle in hay, or SIZE_MAX; counts its work in tmpl_work_units. */
size_t tmpl_find(const char *hay, size_t hn, const char *needle, size_t nn, size_t from);
uint32_t tmpl_lower_cp(uint32_t cp);
uint32_t tmpl_upper_cp(uint32_t cp);
bool tmpl_is_cased_upper(uint32_t cp);
bool tmpl_is_cased_lower(uint32_t cp);

/* ================================================================= AST ==== */
enum tmpl_node_kind {
    /* statements */
    TN_TEXT, TN_OUTPUT, TN_IF, TN_FOR, TN_SET, TN_SETBLOCK, TN_BREAK, TN_CONTINUE, TN_MACRO,
    TN_BODY, /* generation block and friends: just render the body */
    /* expressions */
    TN_CONST, TN_NAME, TN_GETATTR, TN_GETITEM, TN_SLICE, TN_CALL, TN_FILTER, TN_TEST,
    TN_BINOP, TN_NEG, TN_POS, TN_NOT, TN_AND, TN_OR, TN_COMPARE, TN_CONCAT, TN_CONDEXPR,
    TN_LIST, TN_TUPLE, TN_DICT, TN_KWARG,
};

typedef struct tmpl_nodes {
    struct tmpl_node **v;
    size_t n;
} tmpl_nodes;

typedef struct tmpl_node {
    int kind;
    int line, col;
    int op;          /* TN_BINOP op; TN_TEST negated flag; TN_FOR: has `recursive` (unused) */
    const char *name; /* NAME / GETATTR attribute / FILTER / TEST / KWARG / MACRO name */
    size_t name_len;
    struct tmpl_node *a, *b, *c, *d; /* children, meaning per kind (see tmpl_parse.c) */
    tmpl_nodes l1, l2;               /* bodies, args, items */
    int *ops;                        /* TN_COMPARE: one op per operand after the first */
    tval cval;                       /* TN_CONST */
} tmpl_node;

/* Parse tokens into a template body (TN_BODY node, statements in l1). */
int tmpl_parse(char *err, tmpl_arena *a, const tmpl_toks *toks, tmpl_node **root);

/* ================================================================= render ==== */
typedef struct tmpl_ctx tmpl_ctx;
/* Evaluate root with the given globals (names[i] = vals[i]); output in out. */
int tmpl_run(char *err, const tmpl_node *root, const char *const *names, const tval *vals,
             size_t n_globals, tmpl_arena *a, awq_buf *out);

/* library entry points used by the evaluator (tmpl_lib.c) */
int tmpl_filter(tmpl_ctx *c, const tmpl_node *n, tval in, const tval *args, size_t nargs,
                const char *const *kwn, const tval *kwv, size_t nkw, tval *out);
int tmpl_test(tmpl_ctx *c, const tmpl_node *n, tval in, const tval *args, size_t nargs, bool *out);
int tmpl_method(tmpl_ctx *c, const tmpl_node *n, tval self, const char *name, size_t name_len,
                const tval *args, size_t nargs, const char *const *kwn, const tval *kwv,
                size_t nkw, tval *out);
bool tmpl_has_method(const tval *self, const char *name, size_t name_len);
/* Jinja rejects unknown filter and test names when it compiles; so does tmpl_parse.c */
bool tmpl_filter_known(const char *name, size_t len);
bool tmpl_test_known(const char *name, size_t len);

/* services of the evaluator for the library */
int tmpl_fail(tmpl_ctx *c, const tmpl_node *n, const char *fmt, ...) AWQ_PRINTF(3, 4);
int tmpl_oom(tmpl_ctx *c); /* AWQ_ENOMEM, or AWQ_ETEMPLATE when the render's memory cap was hit */
/* an Undefined carrying the message Jinja would raise when it is used; and raising it */
tval tmpl_undef_hint(tmpl_ctx *c, const char *fmt, ...) AWQ_PRINTF(2, 3);
int tmpl_undef_error(tmpl_ctx *c, const tmpl_node *n, const tval *u);

/* tmpl_ops.c: access and operators */
bool tmpl_as_index(const tval *v, int64_t *i); /* int or bool */
int tmpl_getitem(tmpl_ctx *c, const tmpl_node *n, tval obj, tval key, tval *out);
int tmpl_slice(tmpl_ctx *c, const tmpl_node *n, tval obj, const tval *s0, const tval *s1, const tval *s2, tval *out);
int tmpl_binop(tmpl_ctx *c, const tmpl_node *n, int op, tval a, tval b, tval *out);
int tmpl_compare(tmpl_ctx *c, const tmpl_node *n, int op, tval a, tval b, bool *res);
tmpl_arena *tmpl_ctx_arena(tmpl_ctx *c);
int tmpl_ctx_str(tmpl_ctx *c, const tval *v, tval *out);      /* str(v) as a TV_STR */
int tmpl_ctx_getattr(tmpl_ctx *c, const tmpl_node *n, tval obj, const char *name, size_t len,
                     tval *out);
int tmpl_ctx_buf_to_str(tmpl_ctx *c, awq_buf *b, tval *out); /* copy b into the arena, free b */
/* iterate: list of the items of v (list, tuple, dict keys, string chars, undefined = empty) */
int tmpl_ctx_iter(tmpl_ctx *c, const tmpl_node *n, tval v, tmpl_list **out);
tmpl_list *tmpl_ctx_newlist(tmpl_ctx *c, size_t n);
tmpl_dict *tmpl_ctx_newdict(tmpl_ctx *c, size_t cap);
int tmpl_ctx_dict_set(tmpl_ctx *c, tmpl_dict *d, tval k, tval v);
const tval *tmpl_dict_get(const tmpl_dict *d, const tval *k);
const tval *tmpl_dict_get_str(const tmpl_dict *d, const char *k, size_t n);

#endif
