/* model.c - eng_model_load: config, index, every shard mapped and validated, weights wired into
 * eng_model without copying (see model.h). Also the dtype table, the AWQ nibble order and the
 * plain-loop dequantization every fast path is tested against.
 *
 * Order of checks: config (bounds before any size is computed from it), index (shard names may
 * not leave the directory), each shard's header (st.c), the index against the shards, then every
 * tensor the config implies with its exact dtype and shape. Only then is the model handed out. */
#define _POSIX_C_SOURCE 200809L /* strdup */
#include "model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "awq_util.h"
#include "config.h"
#include "st.h"

#define INDEX_FILE "model.safetensors.index.json"
#define SINGLE_FILE "model.safetensors"
#define SHARD_NAME_MAX 255

const int ENG_AWQ_ORDER[8] = {0, 2, 4, 6, 1, 3, 5, 7};
const int ENG_AWQ_REV[8] = {0, 4, 1, 5, 2, 6, 3, 7};

/* ------------------------------------------------------------------ dtypes ---- */

size_t eng_dtype_size(eng_dtype t) {
    switch (t) {
    case ENG_DT_F16:
    case ENG_DT_BF16:
    case ENG_DT_I16: return 2;
    case ENG_DT_F32:
    case ENG_DT_I32: return 4;
    case ENG_DT_I64:
    case ENG_DT_F64: return 8;
    case ENG_DT_I8:
    case ENG_DT_U8:
    case ENG_DT_BOOL: return 1;
    default: return 0;
    }
}

const char *eng_dtype_name(eng_dtype t) {
    static const char *const n[ENG_DT_COUNT] = {"F16", "BF16", "F32", "I32", "I64", "I8", "U8", "BOOL", "F64", "I16"};
    return (int)t >= 0 && t < ENG_DT_COUNT ? n[t] : "?";
}

/* ------------------------------------------------------------------ dequant reference ---- */

void eng_qlinear_dequant_row(const eng_qlinear *l, int k, float *out) {
    size_t cols = (size_t)l->out / 8, g = (size_t)(k / l->group);
    const int32_t *qw = l->qweight + (size_t)k * cols; /* (out/8) */
    const int32_t *qz = l->qzeros + g * cols;          /* (out/8) */
    const uint16_t *sc = l->scales + g * (size_t)l->out; /* (out) */
    for (size_t c = 0; c < cols; c++) {
        uint32_t w = (uint32_t)qw[c], z = (uint32_t)qz[c];
        for (int j = 0; j < 8; j++) {
            int sh = 4 * ENG_AWQ_REV[j];
            int q = (int)((w >> sh) & 15u), zz = (int)((z >> sh) & 15u);
            out[8 * c + (size_t)j] = (float)(q - zz) * awq_f16_to_f32(sc[8 * c + (size_t)j]);
        }
    }
}

/* ------------------------------------------------------------------ model lifetime ---- */

typedef struct model_priv {
    eng_st_file **st; /* (n_shards) parsed headers; own the tensor names */
} model_priv;

void eng_model_release_pages(const eng_model *m) {
    for (int i = 0; m && i < m->n_shards; i++) plat_map_release(&m->shards[i]);
}

void eng_model_free(eng_model *m) {
    if (!m) return;
    model_priv *p = m->priv;
    for (int i = 0; i < m->n_shards; i++) {
        if (m->shards) plat_unmap(&m->shards[i]);
        if (m->shard_names) free(m->shard_names[i]);
        if (p && p->st) eng_st_free(p->st[i]);
    }
    if (p) free(p->st);
    free(p);
    free(m->shards);
    free(m->shard_names);
    free(m->tensors);
    free(m->layers);
    free(m);
}

const eng_tensor *eng_model_tensor(const eng_model *m, const char *name) {
    size_t lo = 0, hi = (size_t)m->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, m->tensors[mid].name);
        if (c == 0) return &m->tensors[mid];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

/* ------------------------------------------------------------------ small files ---- */

/* Read dir/name into *text; a missing file is AWQ_ENOTFOUND unless optional (then *text NULL). */
static int read_side(char *err, const char *dir, const char *name, bool optional, char **text, size_t *len) {
    char path[PLAT_PATH_MAX];
    *text = NULL;
    *len = 0;
    if (plat_path_join(path, dir, name)) return awq_seterr(err, AWQ_ETOOBIG, "%s: path too long", name);
    if (!plat_is_file(path)) {
        if (optional) return 0;
        return awq_seterr(err, AWQ_ENOTFOUND, "%s: not found in %s", name, dir);
    }
    char e2[AWQ_ERR_LEN];
    int rc = plat_read_file(e2, path, ENG_MAX_JSON_BYTES, text, len);
    if (rc) return awq_seterr(err, rc, "%s: %s", name, e2);
    return 0;
}

/* ------------------------------------------------------------------ the index ---- */

typedef struct wm_entry {
    const char *tensor; /* borrowed from the cJSON tree */
    const char *shard;
    int shard_idx;
} wm_entry;

/* A shard name from the index must stay inside the model directory (threat model row 10). */
static int check_shard_name(char *err, const char *tensor, const char *s) {
    size_t n = strlen(s);
    if (n == 0 || n > SHARD_NAME_MAX)
        return awq_seterr(err, AWQ_EFORMAT, INDEX_FILE ": weight_map: %s: shard name empty or longer than %d", tensor,
                          SHARD_NAME_MAX);
    if (strchr(s, '/') || strchr(s, '\\') || strchr(s, ':') || strstr(s, ".."))
        return awq_seterr(err, AWQ_EPERM, INDEX_FILE ": weight_map: %s: shard name '%.80s' leaves the model directory",
                          tensor, s);
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Parse the index: fill m->shard_names (sorted, unique) and the weight map entries. */
static int parse_index(char *err, eng_model *m, cJSON *root, wm_entry **wm_p, int *n_wm) {
    *wm_p = NULL;
    *n_wm = 0;
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(root, "metadata");
    if (meta && !cJSON_IsNull(meta)) {
        if (!cJSON_IsObject(meta)) return awq_seterr(err, AWQ_EFORMAT, INDEX_FILE ": metadata is not an object");
        const cJSON *ts = cJSON_GetObjectItemCaseSensitive(meta, "total_size");
        if (ts && (!cJSON_IsNumber(ts) || ts->valuedouble < 0))
            return awq_seterr(err, AWQ_EFORMAT, INDEX_FILE ": metadata.total_size is not a non-negative number");
    }
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(map) || !map->child)
        return awq_seterr(err, AWQ_EFORMAT, INDEX_FILE ": weight_map missing, empty or not an object");
    int n = cJSON_GetArraySize(map);
    wm_entry *wm = calloc((size_t)n, sizeof *wm);
    char **names = calloc((size_t)n, sizeof *names);
    int rc = 0, ns = 0;
    if (!wm || !names) {
        rc = awq_seterr(err, AWQ_ENOMEM, INDEX_FILE ": out of memory");
        goto done;
    }
    int i = 0;
    for (const cJSON *e = map->child; e; e = e->next, i++) {
        if (!cJSON_IsString(e)) {
            rc = awq_seterr(err, AWQ_EFORMAT, INDEX_FILE ": weight_map: %.120s: shard is not a string", e->string);
            goto done;
        }
        if ((rc = check_shard_name(err, e->string, e->valuestring))) goto done;
        wm[i].tensor = e->string;
        wm[i].shard = e->valuestring;
        names[i] = e->valuestring;
    }
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (i = 0; i < n; i++)
        if (i == 0 || strcmp(names[i], names[ns - 1])) names[ns++] = names[i];
    if (ns > ENG_MAX_SHARDS) {
        rc = awq_seterr(err, AWQ_ERANGE, INDEX_FILE ": %d shards, more than %d", ns, ENG_MAX_SHARDS);
        goto done;
    }
    m->shard_names = calloc((size_t)ns, sizeof *m->shard_names);
    if (!m->shard_names) {
        rc = awq_seterr(err, AWQ_ENOMEM, INDEX_FILE ": out of memory");
        goto done;
    }
    for (i = 0; i < ns; i++) {
        m->shard_names[i] = strdup(names[i]);
        if (!m->shard_names[i]) {
            rc = awq_seterr(err, AWQ_ENOMEM, INDEX_FILE ": out of memory");
            goto done;
        }
        m->n_shards = i + 1; /* so eng_model_free releases what exists */
    }
    for (i = 0; i < n; i++) {
        char **hit = bsearch(&wm[i].shard, names, (size_t)ns, sizeof *names, cmp_str);
        wm[i].shard_idx = (int)(hit - names);
    }
done:
    free(names);
    if (rc) {
        free(wm);
        return rc;
    }
    *wm_p = wm;
    *n_wm = n;
    return 0;
}

/* ------------------------------------------------------------------ shards ---- */

static int map_shards(char *err, eng_model *m, model_priv *p, const char *named_by) {
    m->shards = calloc((size_t)m->n_shards, sizeof *m->shards);
    p->st = calloc((size_t)m->n_shards, sizeof *p->st);
    if (!m->shards || !p->st) return awq_seterr(err, AWQ_ENOMEM, "out of memory for %d shards", m->n_shards);
    for (int i = 0; i < m->n_shards; i++) {
        char path[PLAT_PATH_MAX], e2[AWQ_ERR_LEN];
        const char *sn = m->shard_names[i];
        if (plat_path_join(path, m->dir, sn)) return awq_seterr(err, AWQ_ETOOBIG, "%s: path too long", sn);
        int rc = plat_map_file(e2, path, &m->shards[i]);
        if (rc == AWQ_ENOTFOUND) return awq_seterr(err, rc, "%s: shard not found (named by %s)", sn, named_by);
        if (rc) return awq_seterr(err, rc, "%s: %s", sn, e2);
        rc = eng_st_parse(err, sn, m->shards[i].data, m->shards[i].len, &p->st[i]);
        if (rc) return rc;
    }
    return 0;
}

static int cmp_tensor(const void *a, const void *b) {
    return strcmp(((const eng_tensor *)a)->name, ((const eng_tensor *)b)->name);
}

/* Gather every shard's tensors into m->tensors, sorted; a name in two shards is ambiguous. */
static int gather_tensors(char *err, eng_model *m, model_priv *p) {
    size_t n = 0;
    for (int i = 0; i < m->n_shards; i++) n += (size_t)p->st[i]->n;
    if (n > (size_t)INT32_MAX) return awq_seterr(err, AWQ_ERANGE, "too many tensors (%zu)", n);
    m->tensors = calloc(n ? n : 1, sizeof *m->tensors);
    if (!m->tensors) return awq_seterr(err, AWQ_ENOMEM, "out of memory for %zu tensors", n);
    for (int i = 0; i < m->n_shards; i++) {
        const eng_st_file *f = p->st[i];
        for (int j = 0; j < f->n; j++) {
            const eng_st_tensor *s = &f->t[j];
            /* Downstream reads fp16 / int32 / fp32 through typed pointers: a misaligned one is
             * valid safetensors but undefined behaviour for us. Real exports are aligned. */
            if (!s->aligned && (s->dtype == ENG_DT_F16 || s->dtype == ENG_DT_I32 || s->dtype == ENG_DT_F32))
                return awq_seterr(err, AWQ_EUNSUPPORTED, "%s: %s: data at file offset %zu is not %zu-byte aligned",
                                  m->shard_names[i], s->name, f->data_off + s->begin, eng_dtype_size(s->dtype));
            eng_tensor *t = &m->tensors[m->n_tensors++];
            t->name = s->name;
            t->dtype = s->dtype;
            t->ndim = s->ndim;
            memcpy(t->shape, s->shape, sizeof t->shape);
            t->data = m->shards[i].data + f->data_off + s->begin;
            t->nbytes = s->end - s->begin;
            t->shard = i;
            m->weight_bytes += t->nbytes;
        }
    }
    qsort(m->tensors, n, sizeof *m->tensors, cmp_tensor);
    for (size_t i = 1; i < n; i++) {
        const eng_tensor *a = &m->tensors[i - 1], *b = &m->tensors[i];
        if (!strcmp(a->name, b->name))
            return awq_seterr(err, AWQ_EFORMAT, "%s: %s: tensor also in %s", m->shard_names[b->shard], b->name,
                              m->shard_names[a->shard]);
    }
    return 0;
}

/* Each weight_map entry must be where the index says. */
static int check_index(char *err, const eng_model *m, const model_priv *p, const wm_entry *wm, int n) {
    for (int i = 0; i < n; i++) {
        if (!eng_st_find(p->st[wm[i].shard_idx], wm[i].tensor))
            return awq_seterr(err, AWQ_EFORMAT, "%s: %.120s: not in this shard, though " INDEX_FILE " says so",
                              m->shard_names[wm[i].shard_idx], wm[i].tensor);
    }
    return 0;
}

/* ------------------------------------------------------------------ expected tensors ---- */

static void fmt_shape(char *out, size_t cap, int nd, const int64_t *s) {
    size_t o = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < nd && o < cap; i++) o += (size_t)snprintf(out + o, cap - o, "%s%lld", i ? ", " : "", (long long)s[i]);
    if (o < cap) snprintf(out + o, cap - o, "]");
}

/* The tensor name with exactly dtype and shape (d0) or (d0, d1); its data into *data. */
static int want(char *err, const eng_model *m, const char *where, const char *name, eng_dtype dt, int nd, int64_t d0,
                int64_t d1, const void **data) {
    const eng_tensor *t = eng_model_tensor(m, name);
    if (!t) return awq_seterr(err, AWQ_ENOTFOUND, "%s: tensor %s missing", where, name);
    const char *sn = m->shard_names[t->shard];
    if (t->dtype != dt)
        return awq_seterr(err, AWQ_EFORMAT, "%s: %s: dtype %s, expected %s", sn, name, eng_dtype_name(t->dtype),
                          eng_dtype_name(dt));
    int64_t want_shape[ENG_MAX_DIMS] = {d0, d1, 0, 0};
    if (t->ndim != nd || t->shape[0] != d0 || (nd > 1 && t->shape[1] != d1)) {
        char got[96], exp[96];
        fmt_shape(got, sizeof got, t->ndim, t->shape);
        fmt_shape(exp, sizeof exp, nd, want_shape);
        return awq_seterr(err, AWQ_EFORMAT, "%s: %s: shape %s disagrees with config.json (expected %s)", sn, name, got,
                          exp);
    }
    *data = t->data;
    return 0;
}

static int wire_layers(char *err, eng_model *m, const char *where) {
    const eng_config *c = &m->cfg;
    const void *p;
    int rc;
    if ((rc = want(err, m, where, "model.embed_tokens.weight", ENG_DT_F16, 2, c->vocab, c->hidden, &p))) return rc;
    m->embed = p;
    if ((rc = want(err, m, where, "model.norm.weight", ENG_DT_F16, 1, c->hidden, 0, &p))) return rc;
    m->norm = p;
    if (c->tie_embeddings) {
        m->lm_head = m->embed; /* an lm_head.weight present anyway is an ignored extra */
    } else {
        if ((rc = want(err, m, where, "lm_head.weight", ENG_DT_F16, 2, c->vocab, c->hidden, &p))) return rc;
        m->lm_head = p;
    }
    m->layers = calloc((size_t)c->layers, sizeof *m->layers);
    if (!m->layers) return awq_seterr(err, AWQ_ENOMEM, "out of memory for %d layers", c->layers);
    char name[160];
    for (int L = 0; L < c->layers; L++) {
        eng_layer *ly = &m->layers[L];
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", L);
        if ((rc = want(err, m, where, name, ENG_DT_F16, 1, c->hidden, 0, &p))) return rc;
        ly->attn_norm = p;
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", L);
        if ((rc = want(err, m, where, name, ENG_DT_F16, 1, c->hidden, 0, &p))) return rc;
        ly->ffn_norm = p;
        eng_qlinear *lin[ENG_LIN_COUNT] = {&ly->q, &ly->k, &ly->v, &ly->o, &ly->gate, &ly->up, &ly->down};
        for (int k = 0; k < ENG_LIN_COUNT; k++) {
            eng_qlinear *q = lin[k];
            eng_linear_dims(c, k, &q->in, &q->out);
            q->group = c->group_size;
            int64_t groups = q->in / q->group, packed = q->out / 8;
            const char *ln = eng_linear_name(k);
            snprintf(name, sizeof name, "model.layers.%d.%s.qweight", L, ln);
            if ((rc = want(err, m, where, name, ENG_DT_I32, 2, q->in, packed, &p))) return rc;
            q->qweight = p;
            snprintf(name, sizeof name, "model.layers.%d.%s.qzeros", L, ln);
            if ((rc = want(err, m, where, name, ENG_DT_I32, 2, groups, packed, &p))) return rc;
            q->qzeros = p;
            snprintf(name, sizeof name, "model.layers.%d.%s.scales", L, ln);
            if ((rc = want(err, m, where, name, ENG_DT_F16, 2, groups, q->out, &p))) return rc;
            q->scales = p;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ load ---- */

/* config.json (+ quant_config.json fallback) and the optional generation_config.json. */
static int load_config(char *err, eng_model *m) {
    char *cj = NULL, *qj = NULL, *gj = NULL;
    size_t cl, ql, gl;
    int rc;
    if ((rc = read_side(err, m->dir, "config.json", false, &cj, &cl)) ||
        (rc = read_side(err, m->dir, "quant_config.json", true, &qj, &ql)) ||
        (rc = read_side(err, m->dir, "generation_config.json", true, &gj, &gl)))
        goto done;
    if ((rc = eng_config_parse(err, cj, cl, qj, ql, &m->cfg))) goto done;
    if (gj) rc = eng_gen_parse(err, gj, gl, &m->gen);
done:
    free(cj);
    free(qj);
    free(gj);
    return rc;
}

int eng_model_load(char *err, const char *dir, eng_model **out) {
    *out = NULL;
    eng_model *m = calloc(1, sizeof *m);
    model_priv *p = calloc(1, sizeof *p);
    char *ij = NULL;
    cJSON *index = NULL;
    wm_entry *wm = NULL;
    int n_wm = 0, rc;
    if (!m || !p) {
        free(m);
        free(p);
        return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    }
    m->priv = p;
    char e2[AWQ_ERR_LEN];
    if ((rc = plat_realpath(e2, dir, m->dir))) {
        rc = awq_seterr(err, rc, "model directory %s", e2);
        goto fail;
    }
    if (!plat_is_dir(m->dir)) {
        rc = awq_seterr(err, AWQ_ENOTFOUND, "%s: not a directory", dir);
        goto fail;
    }
    if ((rc = load_config(err, m))) goto fail;

    size_t il;
    if ((rc = read_side(err, m->dir, INDEX_FILE, true, &ij, &il))) goto fail;
    const char *named_by = INDEX_FILE;
    if (ij) {
        const char *end = NULL;
        index = cJSON_ParseWithLengthOpts(ij, il, &end, 0);
        if (!cJSON_IsObject(index)) {
            rc = awq_seterr(err, AWQ_EFORMAT, INDEX_FILE ": invalid JSON%s",
                            index ? " (not an object)" : "");
            goto fail;
        }
        if ((rc = parse_index(err, m, index, &wm, &n_wm))) goto fail;
    } else {
        char path[PLAT_PATH_MAX];
        if (plat_path_join(path, m->dir, SINGLE_FILE) || !plat_is_file(path)) {
            rc = awq_seterr(err, AWQ_ENOTFOUND, "%s: neither " INDEX_FILE " nor " SINGLE_FILE " found", m->dir);
            goto fail;
        }
        m->shard_names = calloc(1, sizeof *m->shard_names);
        if (!m->shard_names || !(m->shard_names[0] = strdup(SINGLE_FILE))) {
            rc = awq_seterr(err, AWQ_ENOMEM, "out of memory");
            goto fail;
        }
        m->n_shards = 1;
        named_by = "the model directory";
    }
    if ((rc = map_shards(err, m, p, named_by)) || (rc = check_index(err, m, p, wm, n_wm)) ||
        (rc = gather_tensors(err, m, p)) || (rc = wire_layers(err, m, ij ? INDEX_FILE : SINGLE_FILE)))
        goto fail;
    free(wm);
    cJSON_Delete(index);
    free(ij);
    *out = m;
    return 0;
fail:
    free(wm);
    cJSON_Delete(index);
    free(ij);
    eng_model_free(m);
    return rc;
}
