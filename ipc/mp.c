/* mp.c - strict msgpack reader and msgpack-c based writer; see mp.h. */
#include "mp.h"

#include <msgpack.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ byte helpers ---- */

static uint64_t be(const uint8_t *p, unsigned w) {
    uint64_t v = 0;
    for (unsigned i = 0; i < w; i++) v = (v << 8) | p[i];
    return v;
}

/* The header of the value at p[off..n): its kind, header size, and (for str/bin/ext) the
 * payload byte count or (for array/map) the element count. Returns false when the header
 * itself does not fit or the byte is 0xc1. */
typedef struct hdr {
    ipc_mp_kind kind;
    unsigned hlen;   /* bytes of the header (type byte + length/value bytes) */
    uint64_t len;    /* str/bin/ext payload bytes, array/map element count */
} hdr;

static bool read_hdr(const uint8_t *p, size_t n, size_t off, hdr *h) {
    if (off >= n) return false;
    uint8_t b = p[off];
    size_t left = n - off;
    h->len = 0;
    h->hlen = 1;
    if (b <= 0x7f) { h->kind = IPC_MP_UINT; return true; }
    if (b >= 0xe0) { h->kind = IPC_MP_INT; return true; }
    if (b >= 0x80 && b <= 0x8f) { h->kind = IPC_MP_MAP; h->len = b & 0x0f; return true; }
    if (b >= 0x90 && b <= 0x9f) { h->kind = IPC_MP_ARRAY; h->len = b & 0x0f; return true; }
    if (b >= 0xa0 && b <= 0xbf) { h->kind = IPC_MP_STR; h->len = b & 0x1f; return true; }
    unsigned w = 0; /* width of the length/value field that follows */
    switch (b) {
    case 0xc0: h->kind = IPC_MP_NIL; return true;
    case 0xc2: case 0xc3: h->kind = IPC_MP_BOOL; return true;
    case 0xc4: h->kind = IPC_MP_BIN; w = 1; break;
    case 0xc5: h->kind = IPC_MP_BIN; w = 2; break;
    case 0xc6: h->kind = IPC_MP_BIN; w = 4; break;
    case 0xc7: h->kind = IPC_MP_EXT; w = 1; break;
    case 0xc8: h->kind = IPC_MP_EXT; w = 2; break;
    case 0xc9: h->kind = IPC_MP_EXT; w = 4; break;
    case 0xca: h->kind = IPC_MP_FLOAT; h->hlen = 5; return left >= 5;
    case 0xcb: h->kind = IPC_MP_FLOAT; h->hlen = 9; return left >= 9;
    case 0xcc: h->kind = IPC_MP_UINT; h->hlen = 2; return left >= 2;
    case 0xcd: h->kind = IPC_MP_UINT; h->hlen = 3; return left >= 3;
    case 0xce: h->kind = IPC_MP_UINT; h->hlen = 5; return left >= 5;
    case 0xcf: h->kind = IPC_MP_UINT; h->hlen = 9; return left >= 9;
    case 0xd0: h->kind = IPC_MP_INT; h->hlen = 2; return left >= 2;
    case 0xd1: h->kind = IPC_MP_INT; h->hlen = 3; return left >= 3;
    case 0xd2: h->kind = IPC_MP_INT; h->hlen = 5; return left >= 5;
    case 0xd3: h->kind = IPC_MP_INT; h->hlen = 9; return left >= 9;
    case 0xd4: case 0xd5: case 0xd6: case 0xd7: case 0xd8:
        /* fixext 1/2/4/8/16: type byte + data */
        h->kind = IPC_MP_EXT; h->hlen = 1; h->len = 1u + (1u << (b - 0xd4)); return left >= 1;
    case 0xd9: h->kind = IPC_MP_STR; w = 1; break;
    case 0xda: h->kind = IPC_MP_STR; w = 2; break;
    case 0xdb: h->kind = IPC_MP_STR; w = 4; break;
    case 0xdc: h->kind = IPC_MP_ARRAY; w = 2; break;
    case 0xdd: h->kind = IPC_MP_ARRAY; w = 4; break;
    case 0xde: h->kind = IPC_MP_MAP; w = 2; break;
    case 0xdf: h->kind = IPC_MP_MAP; w = 4; break;
    default: h->kind = IPC_MP_BAD; return false; /* 0xc1 */
    }
    if (left < 1u + w) return false;
    h->hlen = 1 + w;
    h->len = be(p + off + 1, w);
    if (h->kind == IPC_MP_EXT) h->len += 1; /* the ext type byte */
    /* (signed ints of sign-extended values and ext payload are checked by the callers) */
    return true;
}

/* ------------------------------------------------------------ validation ---- */

static int val(char *err, const uint8_t *p, size_t n, size_t *off, unsigned depth, unsigned max) {
    hdr h;
    size_t at = *off;
    if (!read_hdr(p, n, at, &h)) {
        if (at < n && p[at] == 0xc1)
            return awq_seterr(err, AWQ_EPROTO, "msgpack: invalid type byte 0xc1 at offset %zu", at);
        return awq_seterr(err, AWQ_EPROTO, "msgpack: value truncated at offset %zu", at);
    }
    size_t left = n - at - h.hlen;
    switch (h.kind) {
    case IPC_MP_EXT:
        return awq_seterr(err, AWQ_EPROTO, "msgpack: ext type at offset %zu is not used by this protocol", at);
    case IPC_MP_STR:
    case IPC_MP_BIN:
        if (h.len > left)
            return awq_seterr(err, AWQ_EPROTO, "msgpack: %s at offset %zu claims %llu bytes, only %zu left",
                              ipc_mp_kind_name(h.kind), at, (unsigned long long)h.len, left);
        if (h.kind == IPC_MP_STR && !awq_utf8_valid((const char *)p + at + h.hlen, (size_t)h.len))
            return awq_seterr(err, AWQ_EUTF8, "msgpack: string at offset %zu is not valid UTF-8", at);
        *off = at + h.hlen + (size_t)h.len;
        return 0;
    case IPC_MP_ARRAY:
    case IPC_MP_MAP: {
        if (depth >= max)
            return awq_seterr(err, AWQ_EPROTO, "msgpack: nesting deeper than %u at offset %zu", max, at);
        uint64_t elems = h.kind == IPC_MP_MAP ? h.len * 2 : h.len;
        /* every element takes at least one byte: a larger count is a lie, refused before
         * anything is allocated for it */
        if (elems > left)
            return awq_seterr(err, AWQ_EPROTO, "msgpack: %s at offset %zu claims %llu elements, only %zu bytes left",
                              ipc_mp_kind_name(h.kind), at, (unsigned long long)h.len, left);
        *off = at + h.hlen;
        for (uint64_t i = 0; i < elems; i++) {
            int rc = val(err, p, n, off, depth + 1, max);
            if (rc) return rc;
        }
        return 0;
    }
    default:
        *off = at + h.hlen;
        return 0;
    }
}

int ipc_mp_validate(char *err, const uint8_t *p, size_t n, unsigned max_depth) {
    hdr h;
    if (n == 0) return awq_seterr(err, AWQ_EPROTO, "msgpack: empty payload");
    if (!read_hdr(p, n, 0, &h) || h.kind != IPC_MP_MAP)
        return awq_seterr(err, AWQ_EPROTO, "msgpack: payload is not a map (first byte 0x%02x)", p[0]);
    size_t off = 0;
    int rc = val(err, p, n, &off, 0, max_depth);
    if (rc) return rc;
    if (off != n)
        return awq_seterr(err, AWQ_EPROTO, "msgpack: %zu trailing bytes after the map at offset %zu", n - off, off);
    return 0;
}

/* ------------------------------------------------------------ typed reader ---- */

const char *ipc_mp_kind_name(ipc_mp_kind k) {
    switch (k) {
    case IPC_MP_NIL: return "nil";
    case IPC_MP_BOOL: return "boolean";
    case IPC_MP_UINT: return "unsigned integer";
    case IPC_MP_INT: return "negative integer";
    case IPC_MP_FLOAT: return "float";
    case IPC_MP_STR: return "string";
    case IPC_MP_BIN: return "binary";
    case IPC_MP_ARRAY: return "array";
    case IPC_MP_MAP: return "map";
    case IPC_MP_EXT: return "ext";
    default: return "invalid";
    }
}

ipc_mp_kind ipc_mp_peek(const ipc_mp_rd *r) {
    hdr h;
    if (!read_hdr(r->p, r->n, r->off, &h)) return IPC_MP_BAD;
    return h.kind;
}

static int take(ipc_mp_rd *r, ipc_mp_kind want, hdr *h) {
    if (!read_hdr(r->p, r->n, r->off, h) || h->kind != want) return AWQ_EPROTO;
    return 0;
}

int ipc_mp_read_map(ipc_mp_rd *r, uint32_t *count) {
    hdr h;
    if (take(r, IPC_MP_MAP, &h)) return AWQ_EPROTO;
    if (h.len * 2 > r->n - r->off - h.hlen) return AWQ_EPROTO;
    r->off += h.hlen;
    *count = (uint32_t)h.len;
    return 0;
}

int ipc_mp_read_array(ipc_mp_rd *r, uint32_t *count) {
    hdr h;
    if (take(r, IPC_MP_ARRAY, &h)) return AWQ_EPROTO;
    if (h.len > r->n - r->off - h.hlen) return AWQ_EPROTO;
    r->off += h.hlen;
    *count = (uint32_t)h.len;
    return 0;
}

int ipc_mp_read_str(ipc_mp_rd *r, const char **s, uint32_t *len) {
    hdr h;
    if (take(r, IPC_MP_STR, &h)) return AWQ_EPROTO;
    if (h.len > r->n - r->off - h.hlen) return AWQ_EPROTO;
    *s = (const char *)r->p + r->off + h.hlen;
    *len = (uint32_t)h.len;
    r->off += h.hlen + (size_t)h.len;
    return 0;
}

/* Reads any integer into a sign flag + magnitude. */
static int read_integer(ipc_mp_rd *r, bool *neg, uint64_t *mag, int64_t *sv) {
    hdr h;
    if (!read_hdr(r->p, r->n, r->off, &h) || (h.kind != IPC_MP_UINT && h.kind != IPC_MP_INT))
        return AWQ_EPROTO;
    const uint8_t *q = r->p + r->off;
    uint8_t b = q[0];
    *neg = false;
    if (b <= 0x7f) *mag = b;
    else if (b >= 0xe0) { *neg = true; *sv = (int8_t)b; }
    else if (b >= 0xcc && b <= 0xcf) *mag = be(q + 1, h.hlen - 1);
    else {
        uint64_t u = be(q + 1, h.hlen - 1);
        unsigned bits = (h.hlen - 1) * 8;
        int64_t v = bits == 64 ? (int64_t)u : (int64_t)(u << (64 - bits)) >> (64 - bits);
        if (v < 0) { *neg = true; *sv = v; }
        else *mag = (uint64_t)v;
    }
    r->off += h.hlen;
    return 0;
}

int ipc_mp_read_uint(ipc_mp_rd *r, uint64_t *v) {
    bool neg;
    int64_t sv = 0;
    size_t save = r->off;
    if (read_integer(r, &neg, v, &sv)) return AWQ_EPROTO;
    if (neg) { r->off = save; return AWQ_ERANGE; }
    return 0;
}

int ipc_mp_read_int(ipc_mp_rd *r, int64_t *v) {
    bool neg;
    uint64_t mag = 0;
    size_t save = r->off;
    if (read_integer(r, &neg, &mag, v)) return AWQ_EPROTO;
    if (!neg) {
        if (mag > (uint64_t)INT64_MAX) { r->off = save; return AWQ_ERANGE; }
        *v = (int64_t)mag;
    }
    return 0;
}

int ipc_mp_read_float(ipc_mp_rd *r, double *v) {
    hdr h;
    if (!read_hdr(r->p, r->n, r->off, &h)) return AWQ_EPROTO;
    if (h.kind == IPC_MP_UINT || h.kind == IPC_MP_INT) {
        int64_t i;
        int rc = ipc_mp_read_int(r, &i);
        if (rc == AWQ_ERANGE) {
            uint64_t u;
            if (ipc_mp_read_uint(r, &u)) return AWQ_EPROTO;
            *v = (double)u;
            return 0;
        }
        if (rc) return rc;
        *v = (double)i;
        return 0;
    }
    if (h.kind != IPC_MP_FLOAT) return AWQ_EPROTO;
    const uint8_t *q = r->p + r->off + 1;
    if (h.hlen == 5) {
        uint32_t u = (uint32_t)be(q, 4);
        float f;
        memcpy(&f, &u, 4);
        *v = f;
    } else {
        uint64_t u = be(q, 8);
        memcpy(v, &u, 8);
    }
    r->off += h.hlen;
    return 0;
}

int ipc_mp_read_bool(ipc_mp_rd *r, bool *v) {
    hdr h;
    if (take(r, IPC_MP_BOOL, &h)) return AWQ_EPROTO;
    *v = r->p[r->off] == 0xc3;
    r->off += 1;
    return 0;
}

int ipc_mp_skip(ipc_mp_rd *r) {
    hdr h;
    if (!read_hdr(r->p, r->n, r->off, &h)) return AWQ_EPROTO;
    size_t left = r->n - r->off - h.hlen;
    if (h.kind == IPC_MP_STR || h.kind == IPC_MP_BIN || h.kind == IPC_MP_EXT) {
        if (h.len > left) return AWQ_EPROTO;
        r->off += h.hlen + (size_t)h.len;
        return 0;
    }
    if (h.kind == IPC_MP_ARRAY || h.kind == IPC_MP_MAP) {
        uint64_t elems = h.kind == IPC_MP_MAP ? h.len * 2 : h.len;
        if (elems > left) return AWQ_EPROTO;
        r->off += h.hlen;
        /* depth was capped by ipc_mp_validate, so this recursion is bounded */
        for (uint64_t i = 0; i < elems; i++)
            if (ipc_mp_skip(r)) return AWQ_EPROTO;
        return 0;
    }
    r->off += h.hlen;
    return 0;
}

/* ------------------------------------------------------------ writer ---- */

static int wr_cb(void *data, const char *buf, size_t len) {
    ipc_mp_wr *w = data;
    if (w->rc) return -1;
    if (awq_buf_append(w->b, buf, len)) {
        w->rc = AWQ_ENOMEM;
        return -1;
    }
    return 0;
}

int ipc_mp_wr_init(ipc_mp_wr *w, awq_buf *b) {
    w->b = b;
    w->rc = 0;
    w->pk = malloc(sizeof(msgpack_packer));
    if (!w->pk) return w->rc = AWQ_ENOMEM;
    msgpack_packer_init((msgpack_packer *)w->pk, w, wr_cb);
    return 0;
}

void ipc_mp_wr_done(ipc_mp_wr *w) {
    free(w->pk);
    w->pk = NULL;
}

#define PK ((msgpack_packer *)w->pk)
void ipc_mp_map(ipc_mp_wr *w, uint32_t n) { if (!w->rc) msgpack_pack_map(PK, n); }
void ipc_mp_array(ipc_mp_wr *w, uint32_t n) { if (!w->rc) msgpack_pack_array(PK, n); }
void ipc_mp_str(ipc_mp_wr *w, const char *s, size_t len) {
    if (w->rc) return;
    if (len > UINT32_MAX) { w->rc = AWQ_ETOOBIG; return; }
    msgpack_pack_str(PK, len);
    if (len) msgpack_pack_str_body(PK, s, len);
}
void ipc_mp_cstr(ipc_mp_wr *w, const char *s) { ipc_mp_str(w, s ? s : "", s ? strlen(s) : 0); }
void ipc_mp_uint(ipc_mp_wr *w, uint64_t v) { if (!w->rc) msgpack_pack_uint64(PK, v); }
void ipc_mp_int(ipc_mp_wr *w, int64_t v) { if (!w->rc) msgpack_pack_int64(PK, v); }
void ipc_mp_float(ipc_mp_wr *w, double v) { if (!w->rc) msgpack_pack_double(PK, v); }
void ipc_mp_bool(ipc_mp_wr *w, bool v) {
    if (w->rc) return;
    if (v) msgpack_pack_true(PK);
    else msgpack_pack_false(PK);
}
void ipc_mp_nil(ipc_mp_wr *w) { if (!w->rc) msgpack_pack_nil(PK); }
#undef PK
