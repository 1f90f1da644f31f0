/* tmpl.c - public entry points of the chat-template interpreter (engine/tmpl.h): compile,
 * render with the context Hugging Face's apply_chat_template passes, and the JSON messages
 * reader. The interpreter itself lives in tmpl_lex.c, tmpl_parse.c, tmpl_eval.c, tmpl_val.c
 * and tmpl_lib.c (see tmpl_int.h).
 */
#include "tmpl.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "awq_util.h"
#include "tmpl_int.h"

struct eng_tmpl {
    tmpl_arena arena; /* owns the normalised source, decoded literals and the AST */
    tmpl_node *root;
};

/* ================================================================= compile ==== */

int eng_tmpl_compile(char *err, const char *src, size_t len, eng_tmpl **out) {
    *out = NULL;
    if (len > ENG_TMPL_SRC_MAX)
        return awq_seterr(err, AWQ_ETOOBIG, "chat template is %zu bytes, the limit is %u", len, (unsigned)ENG_TMPL_SRC_MAX);
    if (!awq_utf8_valid(src, len)) {
        size_t ok = 0;
        for (size_t k = len; k > 0 && !ok; k--) /* longest valid prefix, for the message */
            if (awq_utf8_valid(src, k)) ok = k;
        return awq_seterr(err, AWQ_EUTF8, "chat template is not valid UTF-8 (at byte %zu)", ok);
    }
    eng_tmpl *t = calloc(1, sizeof *t);
    if (!t) return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    tmpl_toks toks = {0};
    size_t n;
    int rc;
    char *norm = tmpl_normalize(&t->arena, src, len, &n);
    if (!norm) {
        rc = awq_seterr(err, AWQ_ENOMEM, "out of memory");
        goto fail;
    }
    if ((rc = tmpl_lex(err, &t->arena, norm, n, &toks))) goto fail;
    if ((rc = tmpl_parse(err, &t->arena, &toks, &t->root))) goto fail;
    tmpl_toks_free(&toks);
    *out = t;
    return 0;
fail:
    tmpl_toks_free(&toks);
    eng_tmpl_free(t);
    return rc;
}

void eng_tmpl_free(eng_tmpl *t) {
    if (!t) return;
    tmpl_arena_free(&t->arena);
    free(t);
}

/* ================================================================= render ==== */

int eng_tmpl_render(char *err, const eng_tmpl *t, const eng_msg *msgs, size_t n_msgs, const char *bos_token,
                    const char *eos_token, bool add_generation_prompt, char **out_p, size_t *len_p) {
    *out_p = NULL;
    *len_p = 0;
    if (n_msgs && !msgs) return awq_seterr(err, AWQ_EINVAL, "render: NULL messages");
    for (size_t i = 0; i < n_msgs; i++) {
        if (!msgs[i].role || !msgs[i].content)
            return awq_seterr(err, AWQ_EINVAL, "message %zu: role and content must not be NULL", i);
        if (!awq_utf8_valid(msgs[i].role, strlen(msgs[i].role)) ||
            !awq_utf8_valid(msgs[i].content, strlen(msgs[i].content)))
            return awq_seterr(err, AWQ_EUTF8, "message %zu: role or content is not valid UTF-8", i);
    }
    if ((bos_token && !awq_utf8_valid(bos_token, strlen(bos_token))) ||
        (eos_token && !awq_utf8_valid(eos_token, strlen(eos_token))))
        return awq_seterr(err, AWQ_EUTF8, "bos_token or eos_token is not valid UTF-8");

    tmpl_arena a = {.limit = TMPL_MEM_MAX};
    awq_buf out = {0};
    int rc = AWQ_ENOMEM;
    /* messages: a list of {"role", "content"} dicts, the strings borrowed for the render */
    tmpl_list *list = tmpl_alloc(&a, sizeof *list);
    tval *items = tmpl_alloc(&a, (n_msgs ? n_msgs : 1) * sizeof *items);
    if (!list || !items) {
        rc = awq_seterr(err, AWQ_ENOMEM, "out of memory while rendering the template");
        goto done;
    }
    list->n = n_msgs;
    list->v = items;
    for (size_t i = 0; i < n_msgs; i++) {
        tmpl_dict *d = tmpl_alloc(&a, sizeof *d);
        tval *k = tmpl_alloc(&a, 2 * sizeof *k), *v = tmpl_alloc(&a, 2 * sizeof *v);
        if (!d || !k || !v) {
            rc = awq_seterr(err, AWQ_ENOMEM, "out of memory while rendering the template");
            goto done;
        }
        k[0] = tv_str("role", 4);
        v[0] = tv_str(msgs[i].role, strlen(msgs[i].role));
        k[1] = tv_str("content", 7);
        v[1] = tv_str(msgs[i].content, strlen(msgs[i].content));
        d->n = d->cap = 2;
        d->k = k;
        d->v = v;
        memset(&items[i], 0, sizeof items[i]);
        items[i].t = TV_DICT;
        items[i].u.d = d;
    }
    /* the variables apply_chat_template passes: messages, tools and documents (None when not
     * given), add_generation_prompt and the special tokens the tokenizer has */
    const char *names[6];
    tval vals[6];
    size_t ng = 0;
    names[ng] = "messages";
    memset(&vals[ng], 0, sizeof vals[ng]);
    vals[ng].t = TV_LIST;
    vals[ng++].u.l = list;
    names[ng] = "tools";
    vals[ng++] = tv_none();
    names[ng] = "documents";
    vals[ng++] = tv_none();
    names[ng] = "add_generation_prompt";
    vals[ng++] = tv_bool(add_generation_prompt);
    if (bos_token) {
        names[ng] = "bos_token";
        vals[ng++] = tv_str(bos_token, strlen(bos_token));
    }
    if (eos_token) {
        names[ng] = "eos_token";
        vals[ng++] = tv_str(eos_token, strlen(eos_token));
    }
    rc = tmpl_run(err, t->root, names, vals, ng, &a, &out);
done:
    tmpl_arena_free(&a);
    if (rc) {
        awq_buf_free(&out);
        return rc;
    }
    if (!out.data && awq_buf_append(&out, "", 0)) { /* an empty render is still a C string */
        awq_buf_free(&out);
        return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    }
    *len_p = out.len;
    *out_p = awq_buf_take(&out);
    return 0;
}

/* ================================================================= messages JSON ==== */

/* cJSON cuts strings at an escaped NUL ("\u0000"); eng_msg holds C strings, so refuse them
 * instead of silently truncating. Returns the byte offset of the escape or SIZE_MAX. */
static size_t find_escaped_nul(const char *s, size_t n) {
    for (size_t i = 0; i + 6 <= n; i++) {
        if (s[i] != '\\') continue;
        if (s[i + 1] == 'u' && s[i + 2] == '0' && s[i + 3] == '0' && s[i + 4] == '0' && s[i + 5] == '0') return i;
        i++; /* skip the escaped character (handles "\\\\u0000") */
    }
    return SIZE_MAX;
}

int eng_msgs_from_json(char *err, const char *json, size_t len, eng_msg **msgs_p, size_t *n_p) {
    *msgs_p = NULL;
    *n_p = 0;
    if (!awq_utf8_valid(json, len)) return awq_seterr(err, AWQ_EUTF8, "messages: input is not valid UTF-8");
    size_t nul = find_escaped_nul(json, len);
    if (nul != SIZE_MAX)
        return awq_seterr(err, AWQ_EFORMAT, "messages: \\u0000 (NUL) at byte %zu is not supported in strings", nul);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = (at && at >= json && at <= json + len) ? (size_t)(at - json) : 0;
        return awq_seterr(err, AWQ_EFORMAT, "messages: invalid JSON near byte %zu", off);
    }
    int rc = 0;
    eng_msg *msgs = NULL;
    if (!cJSON_IsArray(root)) {
        rc = awq_seterr(err, AWQ_EFORMAT, "messages: expected a JSON array of {\"role\", \"content\"} objects");
        goto done;
    }
    size_t n = (size_t)cJSON_GetArraySize(root), bytes = 0, i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        if (!cJSON_IsObject(it)) {
            rc = awq_seterr(err, AWQ_EFORMAT, "messages[%zu]: expected an object", i);
            goto done;
        }
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(it, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!role) {
            rc = awq_seterr(err, AWQ_EFORMAT, "messages[%zu]: missing \"role\"", i);
            goto done;
        }
        if (!cJSON_IsString(role)) {
            rc = awq_seterr(err, AWQ_EFORMAT, "messages[%zu]: \"role\" must be a string", i);
            goto done;
        }
        if (!content) {
            rc = awq_seterr(err, AWQ_EFORMAT, "messages[%zu]: missing \"content\"", i);
            goto done;
        }
        if (!cJSON_IsString(content)) {
            /* null content (OpenAI tool-call turns) is refused too: no template here reads it */
            rc = awq_seterr(err, AWQ_EFORMAT, "messages[%zu]: \"content\" must be a string%s", i,
                            cJSON_IsNull(content) ? ", not null" : "");
            goto done;
        }
        size_t add = strlen(role->valuestring) + strlen(content->valuestring) + 2;
        if (!awq_add_ok(bytes, add, &bytes)) {
            rc = awq_seterr(err, AWQ_ETOOBIG, "messages: too large");
            goto done;
        }
        i++;
    }
    size_t head, total;
    if (!awq_mul_ok(n ? n : 1, sizeof *msgs, &head) || !awq_add_ok(head, bytes, &total)) {
        rc = awq_seterr(err, AWQ_ETOOBIG, "messages: too large");
        goto done;
    }
    msgs = malloc(total);
    if (!msgs) {
        rc = awq_seterr(err, AWQ_ENOMEM, "out of memory");
        goto done;
    }
    char *strs = (char *)msgs + head;
    i = 0;
    cJSON_ArrayForEach(it, root) {
        const char *r = cJSON_GetObjectItemCaseSensitive(it, "role")->valuestring;
        const char *c = cJSON_GetObjectItemCaseSensitive(it, "content")->valuestring;
        size_t rl = strlen(r) + 1, cl = strlen(c) + 1;
        memcpy(strs, r, rl);
        msgs[i].role = strs;
        strs += rl;
        memcpy(strs, c, cl);
        msgs[i].content = strs;
        strs += cl;
        i++;
    }
    *msgs_p = msgs;
    *n_p = n;
    msgs = NULL;
done:
    free(msgs);
    cJSON_Delete(root);
    return rc;
}
