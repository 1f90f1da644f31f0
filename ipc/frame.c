/* frame.c - incremental frame decoder; see frame.h. */
#include "frame.h"

#include <stdlib.h>
#include <string.h>

/* Payload buffers up to this size are kept between frames; larger ones are freed after use so
 * that thousands of idle connections do not each pin a big buffer. */
#define KEEP_BUF (16u << 10)

struct ipc_frame_dec {
    uint32_t max;
    uint8_t hdr[IPC_FRAME_HDR];
    unsigned nhdr;   /* header bytes received */
    uint32_t len;    /* payload length once the header is in */
    uint32_t got;    /* payload bytes received */
    uint8_t *buf;    /* (cap) payload bytes */
    uint32_t cap;
    int failed;      /* sticky error code */
    int ready;
};

uint32_t ipc_frame_max(void) { return IPC_FRAME_MAX; }

ipc_frame_dec *ipc_frame_dec_create(uint32_t max_frame) {
    if (max_frame == 0 || max_frame > IPC_FRAME_MAX) return NULL;
    ipc_frame_dec *d = calloc(1, sizeof *d);
    if (d) d->max = max_frame;
    return d;
}

void ipc_frame_dec_free(ipc_frame_dec *d) {
    if (!d) return;
    free(d->buf);
    free(d);
}

int ipc_frame_dec_feed(char *err, ipc_frame_dec *d, const uint8_t *p, size_t n, size_t *used) {
    size_t i = 0;
    *used = 0;
    if (d->failed) return awq_seterr(err, d->failed, "frame stream already failed");
    if (d->ready) return 1;
    if (d->nhdr == 0 && d->cap > KEEP_BUF) { /* the last frame was big: give it back */
        free(d->buf);
        d->buf = NULL;
        d->cap = 0;
    }
    while (d->nhdr < IPC_FRAME_HDR && i < n) d->hdr[d->nhdr++] = p[i++];
    if (d->nhdr < IPC_FRAME_HDR) {
        *used = i;
        return 0;
    }
    if (d->got == 0 && d->len == 0) {
        uint32_t len = (uint32_t)d->hdr[0] | (uint32_t)d->hdr[1] << 8 | (uint32_t)d->hdr[2] << 16 |
                       (uint32_t)d->hdr[3] << 24;
        *used = i;
        if (len == 0) {
            d->failed = AWQ_EPROTO;
            return awq_seterr(err, AWQ_EPROTO, "frame: zero-length frame");
        }
        /* the limit is checked here, before the allocation below */
        if (len > d->max) {
            d->failed = AWQ_ETOOBIG;
            return awq_seterr(err, AWQ_ETOOBIG, "frame: length %u exceeds the maximum of %u bytes", len,
                              d->max);
        }
        if (len > d->cap) {
            uint8_t *nb = realloc(d->buf, len);
            if (!nb) {
                d->failed = AWQ_ENOMEM;
                return awq_seterr(err, AWQ_ENOMEM, "frame: out of memory for %u bytes", len);
            }
            d->buf = nb;
            d->cap = len;
        }
        d->len = len;
    }
    size_t want = d->len - d->got, have = n - i;
    size_t k = want < have ? want : have;
    if (k) memcpy(d->buf + d->got, p + i, k);
    d->got += (uint32_t)k;
    i += k;
    *used = i;
    if (d->got == d->len) {
        d->ready = 1;
        return 1;
    }
    return 0;
}

void ipc_frame_dec_take(ipc_frame_dec *d, const uint8_t **payload, uint32_t *len) {
    *payload = d->ready ? d->buf : NULL;
    *len = d->ready ? d->len : 0;
    d->ready = 0;
    d->nhdr = 0;
    d->len = 0;
    d->got = 0;
}

size_t ipc_frame_dec_buffered(const ipc_frame_dec *d) { return d->nhdr + d->got; }

int ipc_frame_put(awq_buf *out, const void *payload, size_t len) {
    if (len == 0 || len > IPC_FRAME_MAX) return AWQ_ETOOBIG;
    uint8_t h[4] = {(uint8_t)len, (uint8_t)(len >> 8), (uint8_t)(len >> 16), (uint8_t)(len >> 24)};
    int rc = awq_buf_reserve(out, len + 4);
    if (rc) return rc;
    if ((rc = awq_buf_append(out, h, 4))) return rc;
    return awq_buf_append(out, payload, len);
}
