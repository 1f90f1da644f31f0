/* st.h - the safetensors header parser: turns the bytes of one shard (usually a read-only
 * mapping) into a validated list of tensors, without touching the tensor data.
 *
 * Layout of a shard: 8-byte little-endian header length N, N bytes of UTF-8 JSON
 * {"name": {"dtype": "F16", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {..}}
 * (trailing spaces allowed: writers pad the header to a multiple of 8), then the data region;
 * offsets are relative to the start of the data region.
 *
 * Everything is checked before a tensor is handed out (threat model row 11): N <= 100 MB and
 * inside the file, valid UTF-8 and JSON, known dtype, at most ENG_MAX_DIMS dims each >= 0,
 * product of dims times dtype size == end - begin without overflow, begin <= end <= data size,
 * no two spans overlapping, no duplicate names. Alignment is recorded, not judged: a misaligned
 * span is valid safetensors; the model loader decides whether it can use it.
 *
 * Thread safety: eng_st_parse is reentrant; a parsed file is immutable.
 */
#ifndef ENG_ST_H
#define ENG_ST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "awq_err.h"
#include "model.h"

/* One tensor entry of a shard header. */
typedef struct eng_st_tensor {
    const char *name; /* owned by the eng_st_file */
    eng_dtype dtype;
    int ndim;
    int64_t shape[ENG_MAX_DIMS];
    size_t begin, end; /* [begin, end) relative to the data region */
    bool aligned;      /* (data region offset + begin) is a multiple of the dtype size */
} eng_st_tensor;

typedef struct eng_st_file {
    size_t header_len;  /* N, the JSON length */
    size_t data_off;    /* 8 + N: where the data region starts in the file */
    size_t data_len;    /* bytes of the data region (file size - data_off) */
    int n;              /* number of tensors (__metadata__ excluded) */
    eng_st_tensor *t;   /* (n) sorted by name */
    char *names;        /* arena holding every name */
} eng_st_file;

/* Parse and validate the shard image data[0..len) (len is the whole file size). fname is used
 * only in messages ("model-00001-of-00002.safetensors: model.norm.weight: ..."). On success
 * *out is a new eng_st_file the caller frees with eng_st_free; data is borrowed and not kept
 * (offsets, not pointers, are recorded). Returns AWQ_EFORMAT for any malformed input,
 * AWQ_EUNSUPPORTED for a well-formed but unsupported dtype or rank, AWQ_ENOMEM. */
AWQ_NODISCARD int eng_st_parse(char *err, const char *fname, const uint8_t *data, size_t len,
                               eng_st_file **out) AWQ_NONNULL(2, 5);
void eng_st_free(eng_st_file *f);

/* The tensor named name, or NULL (binary search). */
const eng_st_tensor *eng_st_find(const eng_st_file *f, const char *name) AWQ_NONNULL(1, 2);

/* The dtype for a safetensors spelling ("F16", "I32", ...); returns -1 when unknown. */
int eng_dtype_parse(const char *s);

#endif
