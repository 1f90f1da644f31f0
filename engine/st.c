/* st.c - the safetensors header parser (see st.h for the format and every check made).
 *
 * The header is hostile input: every number is range-checked as an exact integer before it is
 * used, all size arithmetic is overflow-checked, and nothing points into the data region, so a
 * parse never reads past the header even when the spans lie. */
#include "st.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "awq_util.h"

/* cJSON keeps numbers as doubles: integers above 2^53 cannot be represented exactly, and no
 * real file has offsets that large (8 PB). */
#define ST_INT_MAX 9007199254740992.0

/* ------------------------------------------------------------------ dtypes ---- */

static const char *const dtype_names[ENG_DT_COUNT] = {
    [ENG_DT_F16] = "F16", [ENG_DT_BF16] = "BF16", [ENG_DT_F32] = "F32", [ENG_DT_I32] = "I32",
    [ENG_DT_I64] = "I64", [ENG_DT_I8] = "I8",     [ENG_DT_U8] = "U8",   [ENG_DT_BOOL] = "BOOL",
    [ENG_DT_F64] = "F64", [ENG_DT_I16] = "I16",
};

/* Real safetensors dtypes we have no use for: named separately so the error says "not
 * supported" instead of "unknown". */
static const char *const dtype_other[] = {"U16", "U32", "U64", "F8_E4M3", "F8_E5M2", "F8_E8M0",
                                          "F4", "F6_E2M3", "F6_E3M2", "C64"};

int eng_dtype_parse(const char *s) {
    for (int i = 0; i < ENG_DT_COUNT; i++)
        if (!strcmp(s, dtype_names[i])) return i;
    return -1;
}

/* ------------------------------------------------------------------ helpers ---- */

/* An exact non-negative integer (no fraction, no sign, <= 2^53) from a JSON number. */
static bool json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0.0) || d > ST_INT_MAX || floor(d) != d) return false;
    *out = (uint64_t)d;
    return true;
}

static int cmp_begin(const void *a, const void *b) {
    const eng_st_tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int cmp_name(const void *a, const void *b) {
    const eng_st_tensor *x = a, *y = b;
    return strcmp(x->name, y->name);
}

void eng_st_free(eng_st_file *f) {
    if (!f) return;
    free(f->t);
    free(f->names);
    free(f);
}

const eng_st_tensor *eng_st_find(const eng_st_file *f, const char *name) {
    size_t lo = 0, hi = (size_t)f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, f->t[mid].name);
        if (c == 0) return &f->t[mid];
        if (c < 0) hi = mid;
        else lo = mid + 1;
    }
    return NULL;
}

/* ------------------------------------------------------------------ one entry ---- */

/* Validate one header entry {"dtype","shape","data_offsets"} named name into t (name not set
 * here). data_len is the size of the data region, data_off its offset in the file. */
static int parse_entry(char *err, const char *fname, const char *name, const cJSON *e,
                       size_t data_off, size_t data_len, eng_st_tensor *t) {
    if (!cJSON_IsObject(e)) return awq_seterr(err, AWQ_EFORMAT, "%s: %s: header entry is not an object", fname, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt)) return awq_seterr(err, AWQ_EFORMAT, "%s: %s: dtype missing or not a string", fname, name);
    int d = eng_dtype_parse(dt->valuestring);
    if (d < 0) {
        for (size_t i = 0; i < sizeof dtype_other / sizeof dtype_other[0]; i++)
            if (!strcmp(dt->valuestring, dtype_other[i]))
                return awq_seterr(err, AWQ_EUNSUPPORTED, "%s: %s: dtype %s not supported", fname, name,
                                  dtype_other[i]);
        return awq_seterr(err, AWQ_EFORMAT, "%s: %s: unknown dtype '%.32s'", fname, name, dt->valuestring);
    }
    t->dtype = (eng_dtype)d;

    if (!cJSON_IsArray(sh)) return awq_seterr(err, AWQ_EFORMAT, "%s: %s: shape missing or not an array", fname, name);
    int nd = cJSON_GetArraySize(sh);
    if (nd > ENG_MAX_DIMS)
        return awq_seterr(err, AWQ_EUNSUPPORTED, "%s: %s: rank %d above the supported %d", fname, name, nd,
                          ENG_MAX_DIMS);
    t->ndim = nd;
    size_t count = 1;
    int i = 0;
    for (const cJSON *x = sh->child; x; x = x->next, i++) {
        uint64_t v;
        if (!json_uint(x, &v))
            return awq_seterr(err, AWQ_EFORMAT, "%s: %s: shape[%d] is not a non-negative integer", fname, name, i);
        t->shape[i] = (int64_t)v;
        if (!awq_mul_ok(count, (size_t)v, &count))
            return awq_seterr(err, AWQ_EFORMAT, "%s: %s: shape product overflows", fname, name);
    }
    for (; i < ENG_MAX_DIMS; i++) t->shape[i] = 0;
    size_t nbytes;
    if (!awq_mul_ok(count, eng_dtype_size(t->dtype), &nbytes))
        return awq_seterr(err, AWQ_EFORMAT, "%s: %s: shape product overflows", fname, name);

    uint64_t b, en;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 || !json_uint(off->child, &b) ||
        !json_uint(off->child->next, &en))
        return awq_seterr(err, AWQ_EFORMAT, "%s: %s: data_offsets must be [begin, end] non-negative integers", fname,
                          name);
    if (b > en)
        return awq_seterr(err, AWQ_EFORMAT, "%s: %s: data_offsets [%llu,%llu) end before begin", fname, name,
                          (unsigned long long)b, (unsigned long long)en);
    if (en > data_len)
        return awq_seterr(err, AWQ_EFORMAT, "%s: %s: data span [%llu,%llu) past end of file (size %zu)", fname,
                          name, (unsigned long long)(b + data_off), (unsigned long long)(en + data_off),
                          data_off + data_len);
    t->begin = (size_t)b;
    t->end = (size_t)en;
    if (t->end - t->begin != nbytes)
        return awq_seterr(err, AWQ_EFORMAT, "%s: %s: %zu bytes of data but dtype %s x shape needs %zu", fname, name,
                          t->end - t->begin, eng_dtype_name(t->dtype), nbytes);
    t->aligned = (data_off + t->begin) % eng_dtype_size(t->dtype) == 0;
    return 0;
}

/* ------------------------------------------------------------------ the header ---- */

int eng_st_parse(char *err, const char *fname, const uint8_t *data, size_t len, eng_st_file **out) {
    *out = NULL;
    if (len < 8 || !data)
        return awq_seterr(err, AWQ_EFORMAT, "%s: file too short (%zu bytes) for the 8-byte header length", fname,
                          len);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = (hl << 8) | data[i];
    if (hl > ENG_ST_HEADER_MAX)
        return awq_seterr(err, AWQ_EFORMAT, "%s: header length %llu exceeds the 100 MB cap", fname,
                          (unsigned long long)hl);
    if (hl > len - 8)
        return awq_seterr(err, AWQ_EFORMAT, "%s: header length %llu past end of file (size %zu)", fname,
                          (unsigned long long)hl, len);
    const char *hdr = (const char *)data + 8;
    size_t hlen = (size_t)hl;
    if (memchr(hdr, 0, hlen)) return awq_seterr(err, AWQ_EFORMAT, "%s: header contains a NUL byte", fname);
    if (!awq_utf8_valid(hdr, hlen)) return awq_seterr(err, AWQ_EFORMAT, "%s: header is not valid UTF-8", fname);

    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, hlen, &end, 0);
    if (!root) {
        size_t pos = end && end >= hdr && end <= hdr + hlen ? (size_t)(end - hdr) : 0;
        return awq_seterr(err, AWQ_EFORMAT, "%s: header is not valid JSON (near byte %zu of %zu)", fname, pos, hlen);
    }
    int rc = 0;
    eng_st_file *f = NULL;
    /* Writers pad with spaces to align the data; anything else after the JSON is garbage. */
    for (const char *p = end; p && p < hdr + hlen; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            rc = awq_seterr(err, AWQ_EFORMAT, "%s: header has trailing bytes after the JSON (byte %zu)", fname,
                            (size_t)(p - hdr));
            goto done;
        }
    }
    if (!cJSON_IsObject(root)) {
        rc = awq_seterr(err, AWQ_EFORMAT, "%s: header is not a JSON object", fname);
        goto done;
    }
    f = calloc(1, sizeof *f);
    if (!f) {
        rc = awq_seterr(err, AWQ_ENOMEM, "%s: out of memory", fname);
        goto done;
    }
    f->header_len = hlen;
    f->data_off = 8 + hlen;
    f->data_len = len - f->data_off;

    size_t n = 0, name_bytes = 0;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if (!cJSON_IsObject(e)) {
                rc = awq_seterr(err, AWQ_EFORMAT, "%s: __metadata__ is not an object", fname);
                goto done;
            }
            continue;
        }
        n++;
        name_bytes += strlen(e->string) + 1; /* bounded by the header size: no overflow */
    }
    f->t = calloc(n ? n : 1, sizeof *f->t);
    f->names = malloc(name_bytes ? name_bytes : 1);
    if (!f->t || !f->names) {
        rc = awq_seterr(err, AWQ_ENOMEM, "%s: out of memory for %zu tensors", fname, n);
        goto done;
    }
    char *np = f->names;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) continue;
        if (!e->string[0]) {
            rc = awq_seterr(err, AWQ_EFORMAT, "%s: tensor with an empty name", fname);
            goto done;
        }
        eng_st_tensor *t = &f->t[f->n];
        rc = parse_entry(err, fname, e->string, e, f->data_off, f->data_len, t);
        if (rc) goto done;
        size_t nl = strlen(e->string) + 1;
        memcpy(np, e->string, nl);
        t->name = np;
        np += nl;
        f->n++;
    }

    /* Overlaps: after sorting by begin, each span must end before the next begins. Empty spans
     * (zero-size tensors) overlap nothing. */
    qsort(f->t, (size_t)f->n, sizeof *f->t, cmp_begin);
    const eng_st_tensor *prev = NULL;
    for (int i = 0; i < f->n; i++) {
        const eng_st_tensor *t = &f->t[i];
        if (t->begin == t->end) continue;
        if (prev && t->begin < prev->end) {
            rc = awq_seterr(err, AWQ_EFORMAT, "%s: %s: data span [%zu,%zu) overlaps %s [%zu,%zu)", fname, t->name,
                            t->begin, t->end, prev->name, prev->begin, prev->end);
            goto done;
        }
        prev = t;
    }
    qsort(f->t, (size_t)f->n, sizeof *f->t, cmp_name);
    for (int i = 1; i < f->n; i++) {
        if (!strcmp(f->t[i].name, f->t[i - 1].name)) {
            rc = awq_seterr(err, AWQ_EFORMAT, "%s: %s: tensor named twice in the header", fname, f->t[i].name);
            goto done;
        }
    }
done:
    cJSON_Delete(root);
    if (rc) {
        eng_st_free(f);
        return rc;
    }
    *out = f;
    return 0;
}
