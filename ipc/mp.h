/* mp.h - a strict msgpack reader over raw bytes, and a writer on msgpack-c's packer.
 *
 * Why our own reader: msgpack-c's unpacker reserves `count * sizeof(msgpack_object)` from its
 * zone as soon as it reads an array or map header, so a 5-byte frame claiming 2^32-1 elements
 * makes it try to allocate 64 GiB. Here ipc_mp_validate() walks the whole payload first and checks
 * every claimed count against the bytes that remain (each element takes at least one byte),
 * caps the nesting depth, checks every str as UTF-8, refuses ext types and trailing bytes;
 * only then does the typed reader (ipc_mp_rd) run over it, still bounds-checking each read.
 * Nothing past ipc/ sees msgpack.
 *
 * Thread safety: pure functions; a reader or writer belongs to one thread.
 */
#ifndef IPC_MP_H
#define IPC_MP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "awq_err.h"
#include "awq_util.h"

/* Deepest nesting a payload may have (the top-level map is depth 1). */
#define IPC_MP_MAX_DEPTH 8

typedef enum ipc_mp_kind {
    IPC_MP_NIL,
    IPC_MP_BOOL,
    IPC_MP_UINT, /* positive integer (any width) */
    IPC_MP_INT,  /* negative integer */
    IPC_MP_FLOAT,
    IPC_MP_STR,
    IPC_MP_BIN,
    IPC_MP_ARRAY,
    IPC_MP_MAP,
    IPC_MP_EXT,
    IPC_MP_BAD, /* 0xc1 (never used) or out of bytes */
} ipc_mp_kind;

/* Check that p[0..n) is exactly one msgpack map (no trailing bytes), nested at most max_depth
 * deep, with every array/map count <= the bytes left, every str valid UTF-8 and no ext values.
 * Returns 0, AWQ_EPROTO (structure; err names the byte offset) or AWQ_EUTF8. */
AWQ_NODISCARD int ipc_mp_validate(char *err, const uint8_t *p, size_t n, unsigned max_depth);

/* ---- typed reader: each read returns 0, or AWQ_EPROTO when the next value has another type
 * (the position is unchanged then) ---- */
typedef struct ipc_mp_rd {
    const uint8_t *p;
    size_t n, off;
} ipc_mp_rd;

ipc_mp_kind ipc_mp_peek(const ipc_mp_rd *r);
/* A human name of a kind for error messages ("string", "unsigned integer", ...). */
const char *ipc_mp_kind_name(ipc_mp_kind k);
AWQ_NODISCARD int ipc_mp_read_map(ipc_mp_rd *r, uint32_t *count);
AWQ_NODISCARD int ipc_mp_read_array(ipc_mp_rd *r, uint32_t *count);
/* A str; *s points into the buffer (not NUL-terminated). */
AWQ_NODISCARD int ipc_mp_read_str(ipc_mp_rd *r, const char **s, uint32_t *len);
/* A non-negative integer; AWQ_ERANGE when it is negative. */
AWQ_NODISCARD int ipc_mp_read_uint(ipc_mp_rd *r, uint64_t *v);
/* Any integer; AWQ_ERANGE when it does not fit int64. */
AWQ_NODISCARD int ipc_mp_read_int(ipc_mp_rd *r, int64_t *v);
/* A float32/float64, or an integer converted to double. */
AWQ_NODISCARD int ipc_mp_read_float(ipc_mp_rd *r, double *v);
AWQ_NODISCARD int ipc_mp_read_bool(ipc_mp_rd *r, bool *v);
/* Skip one whole value (of any kind). */
AWQ_NODISCARD int ipc_mp_skip(ipc_mp_rd *r);

/* ---- writer: appends to an awq_buf; errors (out of memory) are sticky in w->rc ---- */
typedef struct ipc_mp_wr {
    awq_buf *b;
    int rc;
    void *pk; /* msgpack_packer, private */
} ipc_mp_wr;

/* Start writing into b (appending to what is there). Returns 0 or AWQ_ENOMEM. */
AWQ_NODISCARD int ipc_mp_wr_init(ipc_mp_wr *w, awq_buf *b);
void ipc_mp_wr_done(ipc_mp_wr *w);
void ipc_mp_map(ipc_mp_wr *w, uint32_t n);
void ipc_mp_array(ipc_mp_wr *w, uint32_t n);
void ipc_mp_str(ipc_mp_wr *w, const char *s, size_t len);
void ipc_mp_cstr(ipc_mp_wr *w, const char *s); /* NULL writes "" */
void ipc_mp_uint(ipc_mp_wr *w, uint64_t v);
void ipc_mp_int(ipc_mp_wr *w, int64_t v);
void ipc_mp_float(ipc_mp_wr *w, double v);
void ipc_mp_bool(ipc_mp_wr *w, bool v);
void ipc_mp_nil(ipc_mp_wr *w);

#endif
