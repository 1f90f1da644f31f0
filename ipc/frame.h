/* frame.h - length-prefixed frames: a 4-byte little-endian length, then that many payload bytes.
 *
 * The decoder is fed arbitrary chunks (one byte at a time works) and yields whole frames. The
 * claimed length is checked against the configured maximum as soon as the 4 header bytes are
 * in, before any allocation, so a lying 4 GiB header costs nothing.
 *
 * Thread safety: a decoder belongs to one thread.
 */
#ifndef IPC_FRAME_H
#define IPC_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include "awq_err.h"
#include "awq_util.h"

#define IPC_FRAME_HDR 4
/* Default and hard ceiling of the payload size (server setting max_frame_bytes). */
#define IPC_FRAME_MAX_DEFAULT (4u << 20)
#define IPC_FRAME_MAX (64u << 20)
uint32_t ipc_frame_max(void);

typedef struct ipc_frame_dec ipc_frame_dec;

/* A decoder accepting payloads of 1..max_frame bytes; NULL when out of memory or max_frame is
 * 0 or above IPC_FRAME_MAX. Free with ipc_frame_dec_free. */
ipc_frame_dec *ipc_frame_dec_create(uint32_t max_frame);
void ipc_frame_dec_free(ipc_frame_dec *d);

/* Feed bytes p[0..n). Consumes bytes until one frame is complete or the input ends; *used tells
 * how many were consumed (the caller feeds the rest after taking the frame).
 * Returns 1 when a frame is ready (get it with ipc_frame_dec_take), 0 when more bytes are
 * needed, AWQ_ETOOBIG for a length over the maximum, AWQ_EPROTO for a zero length, AWQ_ENOMEM.
 * After an error the decoder stays failed (the stream cannot be resynchronised). */
AWQ_NODISCARD int ipc_frame_dec_feed(char *err, ipc_frame_dec *d, const uint8_t *p, size_t n,
                                     size_t *used);

/* The ready frame: *payload is borrowed, valid until the next feed. Resets for the next frame. */
void ipc_frame_dec_take(ipc_frame_dec *d, const uint8_t **payload, uint32_t *len);

/* Bytes held for a partial frame (for accounting). */
size_t ipc_frame_dec_buffered(const ipc_frame_dec *d);

/* Append one frame (header + payload) to out. AWQ_ETOOBIG when len > IPC_FRAME_MAX. */
AWQ_NODISCARD int ipc_frame_put(awq_buf *out, const void *payload, size_t len);

#endif
