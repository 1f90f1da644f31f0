/* tok_json.c - loading tokenizer.json and tokenizer_config.json into an eng_tok.
 *
 * Every field is type-checked and every id bounds-checked before it is used; anything we do not
 * implement is refused with AWQ_EUNSUPPORTED naming the kind ("pre_tokenizer ByteLevel is not
 * supported yet"), anything malformed with AWQ_EFORMAT naming the file and the field. The files
 * may come from anywhere (threat model row 12), so nothing here trusts them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "tok_impl.h"

/* ------------------------------------------------------------------ small helpers ---- */

static char *dup_n(const char *s, size_t n) {
    char *p = malloc(n + 1);
    if (!p) return NULL;
    if (n) memcpy(p, s, n);
    p[n] = 0;
    return p;
}

/* Parse one JSON document of len bytes (not necessarily NUL-terminated): valid UTF-8, valid
 * JSON, nothing but whitespace after it. *root_p is the caller's to cJSON_Delete. */
static int parse_doc(char *err, const char *name, const char *json, size_t len, cJSON **root_p) {
    *root_p = NULL;
    if (len > ENG_TOK_JSON_MAX)
        return awq_seterr(err, AWQ_ETOOBIG, "%s: %zu bytes is over the %u-byte limit", name, len, ENG_TOK_JSON_MAX);
    size_t ok = awq_utf8_complete_prefix(json, len, NULL);
    if (ok != len) return awq_seterr(err, AWQ_EFORMAT, "%s: not valid UTF-8 at byte %zu", name, ok);
    char *buf = dup_n(json, len);
    if (!buf) return awq_seterr(err, AWQ_ENOMEM, "%s: out of memory", name);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(buf, &end, false);
    size_t at = end ? (size_t)(end - buf) : 0;
    if (!root) {
        free(buf);
        return awq_seterr(err, AWQ_EFORMAT, "%s: invalid JSON at byte %zu", name, at);
    }
    /* cJSON stops at a NUL byte, so an embedded NUL also shows up here as trailing data */
    while (at < len && (buf[at] == ' ' || buf[at] == '\t' || buf[at] == '\n' || buf[at] == '\r')) at++;
    free(buf);
    if (at != len) {
        cJSON_Delete(root);
        return awq_seterr(err, AWQ_EFORMAT, "%s: unexpected data after the JSON value at byte %zu", name, at);
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return awq_seterr(err, AWQ_EFORMAT, "%s: the top level is not a JSON object", name);
    }
    *root_p = root;
    return 0;
}

/* An integer id field: a JSON number, integral, 0 <= v < ENG_TOK_VOCAB_MAX. */
static int get_id(char *err, const char *name, const cJSON *v, const char *what, int32_t *out) {
    if (!cJSON_IsNumber(v)) return awq_seterr(err, AWQ_EFORMAT, "%s: %s is not a number", name, what);
    double d = v->valuedouble;
    if (!(d >= 0) || d != floor(d) || d >= ENG_TOK_VOCAB_MAX)
        return awq_seterr(err, AWQ_ERANGE, "%s: %s = %g is not a token id in [0, %d)", name, what, d, ENG_TOK_VOCAB_MAX);
    *out = (int32_t)d;
    return 0;
}

/* An optional boolean member (absent or null = def). */
static int get_bool(char *err, const char *name, const cJSON *obj, const char *key, const char *where, bool def,
                    bool *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(v)) return awq_seterr(err, AWQ_EFORMAT, "%s: %s.%s is not true/false", name, where, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

/* The "type" of a pipeline object, or "" when missing. */
static const char *type_of(const cJSON *o) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(ty) ? ty->valuestring : "";
}

/* A Replace pattern: {"String": "x"} (a {"Regex": ...} is refused). */
static int get_pattern(char *err, const char *name, const cJSON *o, const char *where, const char **out) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "pattern");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(p, "String");
    if (cJSON_GetObjectItemCaseSensitive(p, "Regex"))
        return awq_seterr(err, AWQ_EUNSUPPORTED, "%s: %s Replace with a Regex pattern is not supported yet", name, where);
    if (!cJSON_IsString(s) || !s->valuestring[0])
        return awq_seterr(err, AWQ_EFORMAT, "%s: %s Replace has no non-empty pattern.String", name, where);
    *out = s->valuestring;
    return 0;
}

/* ------------------------------------------------------------------ normalizer ---- */

static int add_norm(char *err, const char *name, eng_tok *t, int kind, const char *from, const char *to) {
    tok_norm *nv = realloc(t->norm, (t->n_norm + 1) * sizeof *nv);
    if (!nv) return awq_seterr(err, AWQ_ENOMEM, "%s: out of memory", name);
    t->norm = nv;
    tok_norm *n = &t->norm[t->n_norm];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    n->to = dup_n(to, strlen(to));
    n->to_len = strlen(to);
    if (from) {
        n->from = dup_n(from, strlen(from));
        n->from_len = strlen(from);
    }
    t->n_norm++; /* counted now so that eng_tok_free_parts frees what was allocated */
    if (!n->to || (from && !n->from)) return awq_seterr(err, AWQ_ENOMEM, "%s: out of memory", name);
    return 0;
}

static int parse_normalizer(char *err, const char *name, eng_tok *t, const cJSON *o, int depth) {
    if (!o || cJSON_IsNull(o)) return 0;
    if (!cJSON_IsObject(o)) return awq_seterr(err, AWQ_EFORMAT, "%s: normalizer is not an object", name);
    const char *ty = type_of(o);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "normalizers");
        if (!cJSON_IsArray(list)) return awq_seterr(err, AWQ_EFORMAT, "%s: normalizer Sequence has no normalizers list", name);
        if (depth > 4) return awq_seterr(err, AWQ_EUNSUPPORTED, "%s: normalizer Sequences nested too deeply", name);
        const cJSON *it;
        cJSON_ArrayForEach(it, list) {
            int rc = parse_normalizer(err, name, t, it, depth + 1);
            if (rc) return rc;
        }
        return 0;
    }
    if (!strcmp(ty, "Prepend")) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "prepend");
        if (!cJSON_IsString(p)) return awq_seterr(err, AWQ_EFORMAT, "%s: normalizer Prepend has no prepend string", name);
        return add_norm(err, name, t, TOK_NORM_PREPEND, NULL, p->valuestring);
    }
    if (!strcmp(ty, "Replace")) {
        const char *from;
        int rc = get_pattern(err, name, o, "normalizer", &from);
        if (rc) return rc;
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "content");
        if (!cJSON_IsString(c)) return awq_seterr(err, AWQ_EFORMAT, "%s: normalizer Replace has no content string", name);
        return add_norm(err, name, t, TOK_NORM_REPLACE, from, c->valuestring);
    }
    return awq_seterr(err, AWQ_EUNSUPPORTED, "%s: normalizer %s is not supported yet", name, ty[0] ? ty : "(no type)");
}

/* ------------------------------------------------------------------ pre-tokenizer ---- */

/* The replacement character and prepend scheme of a Metaspace pre-tokenizer or decoder:
 * "prepend_scheme" ("always" | "first" | "never"), or the older "add_prefix_space" (true =
 * always, false = never); tokenizers' default is always. */
static int parse_metaspace(char *err, const char *name, const cJSON *o, const char *where, char repl[8], size_t *repl_len,
                           int *scheme) {
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(o, "replacement");
    uint32_t cp;
    size_t rl = cJSON_IsString(r) ? strlen(r->valuestring) : 0;
    if (!rl || rl > 4 || awq_utf8_decode(r->valuestring, rl, &cp) != rl)
        return awq_seterr(err, AWQ_EFORMAT, "%s: %s Metaspace replacement must be one character", name, where);
    memcpy(repl, r->valuestring, rl + 1);
    *repl_len = rl;
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(o, "prepend_scheme");
    const cJSON *aps = cJSON_GetObjectItemCaseSensitive(o, "add_prefix_space");
    *scheme = TOK_PREPEND_ALWAYS;
    if (cJSON_IsString(ps)) {
        if (!strcmp(ps->valuestring, "always")) *scheme = TOK_PREPEND_ALWAYS;
        else if (!strcmp(ps->valuestring, "first")) *scheme = TOK_PREPEND_FIRST;
        else if (!strcmp(ps->valuestring, "never")) *scheme = TOK_PREPEND_NEVER;
        else return awq_seterr(err, AWQ_EFORMAT, "%s: %s Metaspace prepend_scheme \"%.20s\" is not always/first/never", name, where, ps->valuestring);
    } else if (ps && !cJSON_IsNull(ps)) {
        return awq_seterr(err, AWQ_EFORMAT, "%s: %s Metaspace prepend_scheme is not a string", name, where);
    } else if (cJSON_IsBool(aps)) {
        *scheme = cJSON_IsTrue(aps) ? TOK_PREPEND_ALWAYS : TOK_PREPEND_NEVER;
    }
    return 0;
}

/* None, or Metaspace (alone or as the only step of a Sequence): the non-legacy Llama form.
 * Byte-level BPE and the rest are refused by name. */
static int parse_pre_tokenizer(char *err, const char *name, eng_tok *t, const cJSON *o) {
    if (!o || cJSON_IsNull(o)) return 0;
    if (!cJSON_IsObject(o)) return awq_seterr(err, AWQ_EFORMAT, "%s: pre_tokenizer is not an object", name);
    const char *ty = type_of(o);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "pretokenizers");
        if (!cJSON_IsArray(list)) return awq_seterr(err, AWQ_EFORMAT, "%s: pre_tokenizer Sequence has no pretokenizers list", name);
        int n = cJSON_GetArraySize(list);
        if (n == 0) return 0;
        o = cJSON_GetArrayItem(list, 0);
        ty = cJSON_IsObject(o) ? type_of(o) : "";
        if (n > 1 && !strcmp(ty, "Metaspace"))
            return awq_seterr(err, AWQ_EUNSUPPORTED, "%s: pre_tokenizer Sequence of %d steps is not supported yet", name, n);
    }
    if (strcmp(ty, "Metaspace"))
        return awq_seterr(err, AWQ_EUNSUPPORTED, "%s: pre_tokenizer %s is not supported yet", name, ty[0] ? ty : "(no type)");
    int rc = parse_metaspace(err, name, o, "pre_tokenizer", t->ms_repl, &t->ms_repl_len, &t->ms_scheme);
    if (rc) return rc;
    return get_bool(err, name, o, "split", "pre_tokenizer", true, &t->ms_split);
}

/* ------------------------------------------------------------------ decoder ---- */

static int add_dec_step(char *err, const char *name, eng_tok *t, int kind, const char *from, const char *to, int scheme) {
    tok_dec_step *nv = realloc(t->dec_step, (t->n_dec_step + 1) * sizeof *nv);
    if (!nv) return awq_seterr(err, AWQ_ENOMEM, "%s: out of memory", name);
    t->dec_step = nv;
    tok_dec_step *r = &nv[t->n_dec_step++];
    r->kind = kind;
    r->scheme = scheme;
    r->from_len = strlen(from);
    r->to_len = strlen(to);
    r->from = dup_n(from, r->from_len);
    r->to = dup_n(to, r->to_len);
    if (!r->from || !r->to) return awq_seterr(err, AWQ_ENOMEM, "%s: out of memory", name);
    return 0;
}

static int parse_decoder_step(char *err, const char *name, eng_tok *t, const cJSON *o, int *phase) {
    if (!cJSON_IsObject(o)) return awq_seterr(err, AWQ_EFORMAT, "%s: decoder step is not an object", name);
    const char *ty = type_of(o);
    /* phase: 0 per-token Replace/Metaspace steps, 1 after ByteFallback, 2 after Fuse, 3 after
     * Strip. The stream decoder relies on this order (per-token text, then bytes, then one
     * leading strip). */
    if (!strcmp(ty, "Replace")) {
        if (*phase > 0)
            return awq_seterr(err, AWQ_EUNSUPPORTED, "%s: decoder Replace after ByteFallback/Fuse/Strip is not supported", name);
        const char *from;
        int rc = get_pattern(err, name, o, "decoder", &from);
        if (rc) return rc;
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "content");
        if (!cJSON_IsString(c)) return awq_seterr(err, AWQ_EFORMAT, "%s: decoder Replace has no content string", name);
        return add_dec_step(err, name, t, TOK_DEC_REPLACE, from, c->valuestring, TOK_PREPEND_NEVER);
    }
    if (!strcmp(ty, "Metaspace")) {
        if (*phase > 0)
            return awq_seterr(err, AWQ_EUNSUPPORTED, "%s: decoder Metaspace after ByteFallback/Fuse/Strip is not supported", name);
        char repl[8];
        size_t rl;
        int scheme;
        int rc = parse_metaspace(err, name, o, "decoder", repl, &rl, &scheme);
        if (rc) return rc;
        if (scheme != TOK_PREPEND_NEVER) t->dec_first_differs = true;
        return add_dec_step(err, name, t, TOK_DEC_METASPACE, repl, "", scheme);
    }
    if (!strcmp(ty, "ByteFallback")) {
        if (*phase > 0) return awq_seterr(err, AWQ_EUNSUPPORTED, "%s: decoder ByteFallback after Fuse/Strip is not supported", name);
        t->dec_byte_fallback = true;
        *phase = 1;
        return 0;
    }
    if (!strcmp(ty, "Fuse")) {
        if (*phase > 1) return awq_seterr(err, AWQ_EUNSUPPORTED, "%s: decoder Fuse after Strip is not supported", name);
        *phase = 2;
        return 0;
    }
    if (!strcmp(ty, "Strip")) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "content");
        const cJSON *start = cJSON_GetObjectItemCaseSensitive(o, "start");
        const cJSON *stop = cJSON_GetObjectItemCaseSensitive(o, "stop");
        uint32_t cp = 0;
        if (!cJSON_IsString(c) || !cJSON_IsNumber(start) || !cJSON_IsNumber(stop))
            return awq_seterr(err, AWQ_EFORMAT, "%s: decoder Strip needs content, start and stop", name);
        size_t cl = strlen(c->valuestring);
        if (!cl || awq_utf8_decode(c->valuestring, cl, &cp) != cl)
            return awq_seterr(err, AWQ_EFORMAT, "%s: decoder Strip content must be one character", name);
        if (t->dec_first_differs)
            return awq_seterr(err, AWQ_EUNSUPPORTED, "%s: decoder Strip together with Metaspace is not supported", name);
        if (*phase != 2 || stop->valuedouble != 0 || start->valuedouble < 0 || start->valuedouble > 1)
            return awq_seterr(err, AWQ_EUNSUPPORTED,
                              "%s: decoder Strip is supported only after Fuse with start 0 or 1 and stop 0", name);
        t->dec_strip = start->valuedouble == 1;
        t->dec_strip_cp = cp;
        *phase = 3;
        return 0;
    }
    return awq_seterr(err, AWQ_EUNSUPPORTED, "%s: decoder %s is not supported yet", name, ty[0] ? ty : "(no type)");
}

static int parse_decoder(char *err, const char *name, eng_tok *t, const cJSON *o) {
    if (!o || cJSON_IsNull(o)) {
        t->dec_join_space = true; /* tokenizers' Tokenizer::decode with no decoder */
        return 0;
    }
    int phase = 0;
    if (cJSON_IsObject(o) && !strcmp(type_of(o), "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(o, "decoders");
        if (!cJSON_IsArray(list)) return awq_seterr(err, AWQ_EFORMAT, "%s: decoder Sequence has no decoders list", name);
        const cJSON *it;
        cJSON_ArrayForEach(it, list) {
            int rc = parse_decoder_step(err, name, t, it, &phase);
            if (rc) return rc;
        }
        return 0;
    }
    return parse_decoder_step(err, name, t, o, &phase);
}

/* ------------------------------------------------------------------ model ---- */

static int parse_vocab(char *err, const char *name, eng_tok *t, const cJSON *vocab) {
    size_t n = (size_t)cJSON_GetArraySize(vocab);
    t->model_key = calloc(n ? n : 1, sizeof(char *));
    if (!t->model_key) return awq_seterr(err, AWQ_ENOMEM, "%s: out of memory", name);
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        int32_t id;
        char what[64];
        snprintf(what, sizeof what, "model.vocab entry %zu", t->n_model);
        int rc = get_id(err, name, it, what, &id);
        if (rc) return rc;
        size_t kl = strlen(it->string);
        if (!kl) return awq_seterr(err, AWQ_EFORMAT, "%s: model.vocab has an empty token (id %d)", name, (int)id);
        char *k = dup_n(it->string, kl);
        if (!k) return awq_seterr(err, AWQ_ENOMEM, "%s: out of memory", name);
        t->model_key[t->n_model++] = k;
        if (id >= t->n_vocab) return awq_seterr(err, AWQ_EINTERNAL, "%s: vocab id %d past the counted size", name, (int)id);
        if (t->piece[id])
            return awq_seterr(err, AWQ_EFORMAT, "%s: model.vocab: id %d is used by both \"%.40s\" and \"%.40s\"", name,
                              (int)id, t->piece[id], k);
        rc = eng_hmap_str_put(&t->vocab, k, kl, id, NULL);
        if (rc == AWQ_EEXIST) return awq_seterr(err, AWQ_EFORMAT, "%s: model.vocab: token \"%.60s\" appears twice", name, k);
        if (rc) return awq_seterr(err, rc, "%s: out of memory", name);
        if (!(t->piece[id] = dup_n(k, kl))) return awq_seterr(err, AWQ_ENOMEM, "%s: out of memory", name);
        t->piece_len[id] = (uint32_t)kl;
    }
    return 0;
}

static int parse_merges(char *err, const char *name, eng_tok *t, const cJSON *merges) {
    if (!merges || cJSON_IsNull(merges)) return 0;
    if (!cJSON_IsArray(merges)) return awq_seterr(err, AWQ_EFORMAT, "%s: model.merges is not a list", name);
    uint32_t rank = 0;
    const cJSON *it;
    char both[512];
    cJSON_ArrayForEach(it, merges) {
        const char *a, *b;
        size_t al, bl;
        if (cJSON_IsString(it)) { /* "a b": exactly one space, as tokenizers' convert_merges */
            const char *s = it->valuestring, *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' ') || sp == s || !sp[1])
                return awq_seterr(err, AWQ_EFORMAT, "%s: model.merges[%u] \"%.60s\" is not two tokens separated by one space",
                                  name, rank, s);
            a = s;
            al = (size_t)(sp - s);
            b = sp + 1;
            bl = strlen(b);
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 1))) { /* ["a", "b"] */
            a = cJSON_GetArrayItem(it, 0)->valuestring;
            b = cJSON_GetArrayItem(it, 1)->valuestring;
            al = strlen(a);
            bl = strlen(b);
        } else {
            return awq_seterr(err, AWQ_EFORMAT, "%s: model.merges[%u] is neither \"a b\" nor [\"a\", \"b\"]", name, rank);
        }
        int32_t ia = eng_hmap_str_get(&t->vocab, a, al), ib = eng_hmap_str_get(&t->vocab, b, bl);
        if (ia < 0 || ib < 0) {
            const char *bad = ia < 0 ? a : b;
            int bad_len = (int)(ia < 0 ? al : bl);
            return awq_seterr(err, AWQ_EFORMAT, "%s: model.merges[%u]: token \"%.*s\" is not in the vocabulary", name, rank,
                              bad_len > 60 ? 60 : bad_len, bad);
        }
        if (al + bl > sizeof both)
            return awq_seterr(err, AWQ_EFORMAT, "%s: model.merges[%u]: merged token is longer than %zu bytes", name, rank,
                              sizeof both);
        memcpy(both, a, al);
        memcpy(both + al, b, bl);
        int32_t im = eng_hmap_str_get(&t->vocab, both, al + bl);
        if (im < 0)
            return awq_seterr(err, AWQ_EFORMAT, "%s: model.merges[%u]: merged token \"%.*s\" is not in the vocabulary", name,
                              rank, (int)(al + bl > 60 ? 60 : al + bl), both);
        /* a repeated pair keeps the later rank, as tokenizers' HashMap collect does */
        int rc = eng_hmap_u64_put(&t->merges, ((uint64_t)(uint32_t)ia << 32) | (uint32_t)ib,
                                  ((uint64_t)rank << 32) | (uint32_t)im);
        if (rc) return awq_seterr(err, AWQ_ENOMEM, "%s: out of memory", name);
        rank++;
    }
    return 0;
}

static int parse_model_options(char *err, const char *name, eng_tok *t, const cJSON *model) {
    const char *ty = type_of(model);
    if (!ty[0] && !cJSON_GetObjectItemCaseSensitive(model, "merges"))
        return awq_seterr(err, AWQ_EUNSUPPORTED, "%s: model has no type and no merges: only BPE is supported", name);
    if (ty[0] && strcmp(ty, "BPE"))
        return awq_seterr(err, AWQ_EUNSUPPORTED, "%s: model type %s is not supported (only BPE)", name, ty);
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (d && !cJSON_IsNull(d) && !(cJSON_IsNumber(d) && d->valuedouble == 0))
        return awq_seterr(err, AWQ_EUNSUPPORTED, "%s: model.dropout (random merges) is not supported", name);
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (size_t i = 0; i < 2; i++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(model, affixes[i]);
        if (a && !cJSON_IsNull(a) && !(cJSON_IsString(a) && !a->valuestring[0]))
            return awq_seterr(err, AWQ_EUNSUPPORTED, "%s: model.%s is not supported yet", name, affixes[i]);
    }
    int rc;
    if ((rc = get_bool(err, name, model, "byte_fallback", "model", false, &t->byte_fallback))) return rc;
    if ((rc = get_bool(err, name, model, "fuse_unk", "model", false, &t->fuse_unk))) return rc;
    if ((rc = get_bool(err, name, model, "ignore_merges", "model", false, &t->ignore_merges))) return rc;
    return 0;
}

/* ------------------------------------------------------------------ added tokens ---- */

static int parse_added(char *err, const char *name, eng_tok *t, const cJSON *list) {
    size_t n = (size_t)cJSON_GetArraySize(list);
    t->added = calloc(n ? n : 1, sizeof *t->added);
    if (!t->added) return awq_seterr(err, AWQ_ENOMEM, "%s: out of memory", name);
    const cJSON *it;
    cJSON_ArrayForEach(it, list) {
        size_t i = t->n_added;
        char where[48];
        snprintf(where, sizeof where, "added_tokens[%zu]", i);
        if (!cJSON_IsObject(it)) return awq_seterr(err, AWQ_EFORMAT, "%s: %s is not an object", name, where);
        tok_added *a = &t->added[i];
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!cJSON_IsString(c) || !c->valuestring[0])
            return awq_seterr(err, AWQ_EFORMAT, "%s: %s has no non-empty content", name, where);
        char what[64];
        snprintf(what, sizeof what, "%s.id", where);
        int rc = get_id(err, name, cJSON_GetObjectItemCaseSensitive(it, "id"), what, &a->id);
        if (rc) return rc;
        if ((rc = get_bool(err, name, it, "special", where, false, &a->special))) return rc;
        if ((rc = get_bool(err, name, it, "lstrip", where, false, &a->lstrip))) return rc;
        if ((rc = get_bool(err, name, it, "rstrip", where, false, &a->rstrip))) return rc;
        if ((rc = get_bool(err, name, it, "single_word", where, false, &a->single_word))) return rc;
        /* tokenizers' AddedToken default: normalized unless special */
        if ((rc = get_bool(err, name, it, "normalized", where, !a->special, &a->normalized))) return rc;
        a->len = strlen(c->valuestring);
        if (!(a->content = dup_n(c->valuestring, a->len))) return awq_seterr(err, AWQ_ENOMEM, "%s: out of memory", name);
        t->n_added++;
        int32_t old;
        rc = eng_hmap_str_put(&t->added_map, a->content, a->len, a->id, &old);
        if (rc == AWQ_EEXIST)
            return awq_seterr(err, AWQ_EFORMAT, "%s: %s: content \"%.60s\" is already added token %d", name, where,
                              a->content, (int)old);
        if (rc) return awq_seterr(err, rc, "%s: out of memory", name);
        for (size_t k = 0; k < i; k++)
            if (t->added[k].id == a->id)
                return awq_seterr(err, AWQ_EFORMAT, "%s: %s: id %d is already added token \"%.60s\"", name, where,
                                  (int)a->id, t->added[k].content);
    }
    return 0;
}

typedef struct match_key {
    unsigned char first;
    size_t len;
    uint32_t idx;
} match_key;

static int cmp_match_key(const void *pa, const void *pb) {
    const match_key *a = pa, *b = pb;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1; /* longest first */
    return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* Group the added tokens with normalized == want by the first byte of their pattern. */
static int build_matcher(eng_tok *t, bool want, tok_matcher *m) {
    match_key *keys = malloc((t->n_added ? t->n_added : 1) * sizeof *keys);
    if (!keys) return AWQ_ENOMEM;
    size_t n = 0;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].normalized == want)
            keys[n++] = (match_key){(unsigned char)t->added[i].pattern[0], t->added[i].pattern_len, (uint32_t)i};
    qsort(keys, n, sizeof *keys, cmp_match_key);
    m->idx = malloc((n ? n : 1) * sizeof *m->idx);
    if (!m->idx) {
        free(keys);
        return AWQ_ENOMEM;
    }
    m->n = n;
    memset(m->start, 0, sizeof m->start);
    for (size_t i = 0; i < n; i++) {
        m->idx[i] = keys[i].idx;
        m->start[keys[i].first + 1]++;
    }
    for (int b = 0; b < 256; b++) m->start[b + 1] += m->start[b];
    free(keys);
    return 0;
}

/* ------------------------------------------------------------------ post-processor ---- */

static int parse_post(char *err, const char *name, eng_tok *t, const cJSON *o) {
    if (!o || cJSON_IsNull(o)) return 0;
    if (!cJSON_IsObject(o)) return awq_seterr(err, AWQ_EFORMAT, "%s: post_processor is not an object", name);
    const char *ty = type_of(o);
    if (strcmp(ty, "TemplateProcessing"))
        return awq_seterr(err, AWQ_EUNSUPPORTED, "%s: post_processor %s is not supported yet", name, ty[0] ? ty : "(no type)");
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(o, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(o, "special_tokens");
    if (!cJSON_IsArray(single))
        return awq_seterr(err, AWQ_EUNSUPPORTED, "%s: post_processor.single must be a list of pieces", name);
    bool seen_seq = false;
    const cJSON *it;
    cJSON_ArrayForEach(it, single) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
        if (cJSON_GetObjectItemCaseSensitive(it, "Sequence")) {
            if (seen_seq) return awq_seterr(err, AWQ_EFORMAT, "%s: post_processor.single has two Sequence pieces", name);
            seen_seq = true;
            continue;
        }
        const cJSON *sid = cJSON_GetObjectItemCaseSensitive(sp, "id");
        if (!cJSON_IsString(sid))
            return awq_seterr(err, AWQ_EFORMAT, "%s: post_processor.single has a piece that is neither SpecialToken nor Sequence",
                              name);
        const cJSON *ids = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(specials, sid->valuestring), "ids");
        if (!cJSON_IsArray(ids))
            return awq_seterr(err, AWQ_EFORMAT, "%s: post_processor.special_tokens has no ids for \"%.60s\"", name,
                              sid->valuestring);
        const cJSON *x;
        cJSON_ArrayForEach(x, ids) {
            int32_t id;
            int rc = get_id(err, name, x, "post_processor special token id", &id);
            if (rc) return rc;
            if (id >= t->n_vocab || !t->piece[id])
                return awq_seterr(err, AWQ_ERANGE, "%s: post_processor special token id %d is not in the vocabulary", name,
                                  (int)id);
            int32_t **arr = seen_seq ? &t->suffix : &t->prefix;
            size_t *cnt = seen_seq ? &t->n_suffix : &t->n_prefix;
            int32_t *nv = realloc(*arr, (*cnt + 1) * sizeof(int32_t));
            if (!nv) return awq_seterr(err, AWQ_ENOMEM, "%s: out of memory", name);
            nv[(*cnt)++] = id;
            *arr = nv;
        }
    }
    if (!seen_seq) return awq_seterr(err, AWQ_EFORMAT, "%s: post_processor.single has no Sequence piece", name);
    return 0;
}

/* ------------------------------------------------------------------ tokenizer_config.json ---- */

/* bos_token / eos_token: a string, {"content": ...}, null or absent. *id -1 when absent. */
static int config_token(char *err, const char *name, const eng_tok *t, const cJSON *cfg, const char *key, bool *present,
                        int32_t *id) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    *present = false;
    *id = -1;
    if (!v || cJSON_IsNull(v)) return 0;
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (!cJSON_IsString(v)) return awq_seterr(err, AWQ_EFORMAT, "%s: %s is neither a string nor {\"content\": ...}", name, key);
    *present = true;
    *id = eng_tok_find(t, v->valuestring, strlen(v->valuestring));
    if (*id < 0) return awq_seterr(err, AWQ_EFORMAT, "%s: %s \"%.60s\" is not in the vocabulary", name, key, v->valuestring);
    return 0;
}

static int parse_config(char *err, const char *name, eng_tok *t, const cJSON *cfg) {
    bool add_bos, add_eos, has_bos, has_eos;
    int rc;
    if ((rc = get_bool(err, name, cfg, "add_bos_token", "config", true, &add_bos))) return rc;
    if ((rc = get_bool(err, name, cfg, "add_eos_token", "config", false, &add_eos))) return rc;
    if ((rc = config_token(err, name, t, cfg, "bos_token", &has_bos, &t->bos_id))) return rc;
    if ((rc = config_token(err, name, t, cfg, "eos_token", &has_eos, &t->eos_id))) return rc;
    if (!has_bos && t->n_prefix == 1) t->bos_id = t->prefix[0];
    /* transformers' LlamaTokenizerFast.update_post_processor: BOS and EOS as the config says */
    t->n_prefix = t->n_suffix = 0;
    if (add_bos && t->bos_id >= 0) t->prefix[t->n_prefix++] = t->bos_id;
    if (add_eos && t->eos_id >= 0) t->suffix[t->n_suffix++] = t->eos_id;

    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    const char *tmpl = NULL;
    if (cJSON_IsString(ct)) {
        tmpl = ct->valuestring;
    } else if (cJSON_IsArray(ct)) { /* [{"name": ..., "template": ...}]: the "default" one */
        const cJSON *it;
        cJSON_ArrayForEach(it, ct) {
            const cJSON *nm = cJSON_GetObjectItemCaseSensitive(it, "name");
            const cJSON *tp = cJSON_GetObjectItemCaseSensitive(it, "template");
            if (!cJSON_IsString(nm) || !cJSON_IsString(tp))
                return awq_seterr(err, AWQ_EFORMAT, "%s: chat_template list entries need name and template strings", name);
            if (!strcmp(nm->valuestring, "default")) tmpl = tp->valuestring;
        }
    } else if (ct && !cJSON_IsNull(ct)) {
        return awq_seterr(err, AWQ_EFORMAT, "%s: chat_template is neither a string nor a list", name);
    }
    if (tmpl && !(t->chat_template = dup_n(tmpl, strlen(tmpl)))) return awq_seterr(err, AWQ_ENOMEM, "%s: out of memory", name);
    return 0;
}

/* ------------------------------------------------------------------ per-id tables ---- */

/* What the decoder makes of one token string: the per-token steps (Replace; Metaspace, which
 * drops the replacement character in the first token and makes it a space elsewhere), then
 * whether the result is a ByteFallback token (decoders/byte_fallback.rs: 6 bytes, "<0x", ">",
 * and u8::from_str_radix of the 2 bytes between, which also takes "+F"). */
int eng_tok_dec_token(const eng_tok *t, const char *s, size_t len, bool first, awq_buf *out, int *byte) {
    out->len = 0;
    if (awq_buf_append(out, s, len)) return AWQ_ENOMEM;
    awq_buf tmp = {0};
    for (size_t r = 0; r < t->n_dec_step; r++) {
        const tok_dec_step *rp = &t->dec_step[r];
        bool drop = rp->kind == TOK_DEC_METASPACE && first && rp->scheme != TOK_PREPEND_NEVER;
        const char *to = rp->kind == TOK_DEC_METASPACE ? " " : rp->to;
        size_t to_len = drop ? 0 : rp->kind == TOK_DEC_METASPACE ? 1 : rp->to_len;
        tmp.len = 0;
        for (size_t i = 0; i < out->len;) {
            if (out->len - i >= rp->from_len && !memcmp(out->data + i, rp->from, rp->from_len)) {
                if (awq_buf_append(&tmp, to, to_len)) goto oom;
                i += rp->from_len;
            } else {
                if (awq_buf_append(&tmp, out->data + i, 1)) goto oom;
                i++;
            }
        }
        out->len = 0;
        if (awq_buf_append(out, tmp.data ? tmp.data : "", tmp.len)) goto oom;
    }
    awq_buf_free(&tmp);
    *byte = -1;
    if (t->dec_byte_fallback && out->len == 6 && !memcmp(out->data, "<0x", 3) && out->data[5] == '>') {
        int v = 0, digits = 0;
        for (int k = 3; k < 5; k++) {
            char c = out->data[k];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (k == 3 && c == '+') continue;
            if (d < 0) return 0;
            v = v * 16 + d;
            digits++;
        }
        if (digits) *byte = v;
    }
    return 0;
oom:
    awq_buf_free(&tmp);
    return AWQ_ENOMEM;
}

static int build_tables(char *err, const char *name, eng_tok *t) {
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        t->byte_id[b] = eng_hmap_str_get(&t->vocab, s, 6);
    }
    awq_buf tmp = {0};
    int rc = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        t->dec_byte[id] = -1;
        if (!t->piece[id]) continue;
        int byte;
        if ((rc = eng_tok_dec_token(t, t->piece[id], t->piece_len[id], false, &tmp, &byte))) break;
        if (!(t->dec_text[id] = dup_n(tmp.data ? tmp.data : "", tmp.len))) {
            rc = AWQ_ENOMEM;
            break;
        }
        t->dec_len[id] = (uint32_t)tmp.len;
        t->dec_byte[id] = (int16_t)byte;
    }
    awq_buf_free(&tmp);
    if (rc) return awq_seterr(err, rc, "%s: out of memory", name);
    return 0;
}

/* ------------------------------------------------------------------ the whole file ---- */

int eng_tok_parse(char *err, eng_tok *t, const char *json, size_t len, const char *name, const char *cfg, size_t cfg_len,
                  const char *cfg_name) {
    cJSON *root = NULL, *croot = NULL;
    int rc = parse_doc(err, name, json, len, &root);
    if (rc) return rc;
    if (cfg && (rc = parse_doc(err, cfg_name, cfg, cfg_len, &croot))) goto done;

    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model)) {
        rc = awq_seterr(err, AWQ_EFORMAT, "%s: no \"model\" object", name);
        goto done;
    }
    if ((rc = parse_model_options(err, name, t, model))) goto done;
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(vocab)) {
        rc = awq_seterr(err, AWQ_EFORMAT, "%s: model.vocab is not an object", name);
        goto done;
    }
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added)) {
        rc = awq_seterr(err, AWQ_EFORMAT, "%s: added_tokens is not a list", name);
        goto done;
    }
    if ((rc = parse_normalizer(err, name, t, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), 0))) goto done;
    if ((rc = parse_pre_tokenizer(err, name, t, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer")))) goto done;
    if ((rc = parse_decoder(err, name, t, cJSON_GetObjectItemCaseSensitive(root, "decoder")))) goto done;
    if ((rc = parse_added(err, name, t, added))) goto done;

    /* the id space: every model and added id, gaps allowed */
    int32_t max_id = -1;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        int32_t id;
        if ((rc = get_id(err, name, it, "a model.vocab id", &id))) goto done;
        if (id > max_id) max_id = id;
    }
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].id > max_id) max_id = t->added[i].id;
    if (max_id < 0) {
        rc = awq_seterr(err, AWQ_EFORMAT, "%s: the vocabulary is empty", name);
        goto done;
    }
    t->n_vocab = max_id + 1;
    size_t nv = (size_t)t->n_vocab;
    t->piece = calloc(nv, sizeof *t->piece);
    t->piece_len = calloc(nv, sizeof *t->piece_len);
    t->flags = calloc(nv, 1);
    t->dec_text = calloc(nv, sizeof *t->dec_text);
    t->dec_len = calloc(nv, sizeof *t->dec_len);
    t->dec_byte = calloc(nv, sizeof *t->dec_byte);
    if (!t->piece || !t->piece_len || !t->flags || !t->dec_text || !t->dec_len || !t->dec_byte) {
        rc = awq_seterr(err, AWQ_ENOMEM, "%s: out of memory for %d ids", name, (int)t->n_vocab);
        goto done;
    }
    if ((rc = parse_vocab(err, name, t, vocab))) goto done;
    if ((rc = parse_merges(err, name, t, cJSON_GetObjectItemCaseSensitive(model, "merges")))) goto done;

    const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
    t->unk_id = -1;
    if (cJSON_IsString(unk)) {
        t->unk_id = eng_hmap_str_get(&t->vocab, unk->valuestring, strlen(unk->valuestring));
        if (t->unk_id < 0) {
            rc = awq_seterr(err, AWQ_EFORMAT, "%s: model.unk_token \"%.60s\" is not in the vocabulary", name, unk->valuestring);
            goto done;
        }
    } else if (unk && !cJSON_IsNull(unk)) {
        rc = awq_seterr(err, AWQ_EFORMAT, "%s: model.unk_token is not a string", name);
        goto done;
    }

    /* added tokens own their ids for decoding (tokenizers looks them up before the model) */
    awq_buf nb = {0};
    for (size_t i = 0; i < t->n_added; i++) {
        tok_added *a = &t->added[i];
        free(t->piece[a->id]);
        t->piece[a->id] = dup_n(a->content, a->len);
        t->piece_len[a->id] = (uint32_t)a->len;
        t->flags[a->id] = TOK_F_ADDED | (a->special ? TOK_F_SPECIAL : 0);
        /* a normalized token is searched for as the normalizer would have rewritten it */
        if (a->normalized) {
            if ((rc = eng_tok_normalize(t, a->content, a->len, &nb))) break;
            a->pattern = dup_n(nb.data ? nb.data : "", nb.len);
            a->pattern_len = nb.len;
        } else {
            a->pattern = dup_n(a->content, a->len);
            a->pattern_len = a->len;
        }
        if (!t->piece[a->id] || !a->pattern) {
            rc = AWQ_ENOMEM;
            break;
        }
        if (!a->pattern_len) {
            awq_buf_free(&nb);
            rc = awq_seterr(err, AWQ_EFORMAT, "%s: added token \"%.60s\" normalizes to nothing", name, a->content);
            goto done;
        }
    }
    awq_buf_free(&nb);
    if (rc || (rc = build_matcher(t, false, &t->raw_match)) || (rc = build_matcher(t, true, &t->norm_match))) {
        rc = awq_seterr(err, AWQ_ENOMEM, "%s: out of memory", name);
        goto done;
    }
    if ((rc = build_tables(err, name, t))) goto done;

    /* room for one BOS and one EOS, which the config may ask for */
    if ((rc = parse_post(err, name, t, cJSON_GetObjectItemCaseSensitive(root, "post_processor")))) goto done;
    int32_t *p = realloc(t->prefix, (t->n_prefix + 1) * sizeof *p);
    if (p) t->prefix = p;
    int32_t *s = p ? realloc(t->suffix, (t->n_suffix + 1) * sizeof *s) : NULL;
    if (s) t->suffix = s;
    if (!p || !s) {
        rc = awq_seterr(err, AWQ_ENOMEM, "%s: out of memory", name);
        goto done;
    }
    t->bos_id = t->n_prefix == 1 ? t->prefix[0] : -1;
    t->eos_id = -1;
    if (croot) rc = parse_config(err, cfg_name, t, croot);
done:
    cJSON_Delete(root);
    cJSON_Delete(croot);
    return rc;
}

void eng_tok_free_parts(eng_tok *t) {
    if (!t) return;
    for (int32_t i = 0; i < t->n_vocab; i++) {
        if (t->piece) free(t->piece[i]);
        if (t->dec_text) free(t->dec_text[i]);
    }
    free(t->piece);
    free(t->piece_len);
    free(t->flags);
    free(t->dec_text);
    free(t->dec_len);
    free(t->dec_byte);
    for (size_t i = 0; i < t->n_model; i++) free(t->model_key[i]);
    free(t->model_key);
    eng_hmap_str_free(&t->vocab);
    eng_hmap_u64_free(&t->merges);
    for (size_t i = 0; i < t->n_norm; i++) {
        free(t->norm[i].from);
        free(t->norm[i].to);
    }
    free(t->norm);
    for (size_t i = 0; i < t->n_added; i++) {
        free(t->added[i].content);
        free(t->added[i].pattern);
    }
    free(t->added);
    eng_hmap_str_free(&t->added_map);
    free(t->raw_match.idx);
    free(t->norm_match.idx);
    for (size_t i = 0; i < t->n_dec_step; i++) {
        free(t->dec_step[i].from);
        free(t->dec_step[i].to);
    }
    free(t->dec_step);
    free(t->prefix);
    free(t->suffix);
    free(t->chat_template);
    memset(t, 0, sizeof *t);
}
