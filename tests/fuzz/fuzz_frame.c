/* fuzz_frame.c - bytes fed into the frame decoder in chunk sizes chosen by the input itself;
 * each whole frame goes on to the message decoder, as on the server. */
#include <stddef.h>
#include <stdint.h>

#include "frame.h"
#include "msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    uint8_t seed = data[0];
    data++, size--;
    ipc_frame_dec *d = ipc_frame_dec_create(1u << 16);
    if (!d) return 0;
    size_t off = 0;
    unsigned step = 0;
    while (off < size) {
        size_t chunk = 1 + (size_t)((seed * 31u + step++ * 7u) % 17u); /* 1..17 bytes */
        if (chunk > size - off) chunk = size - off;
        size_t pos = 0;
        while (pos < chunk) {
            size_t used;
            int rc = ipc_frame_dec_feed(NULL, d, data + off + pos, chunk - pos, &used);
            pos += used;
            if (rc < 0) goto out;
            if (rc == 1) {
                const uint8_t *p;
                uint32_t n;
                ipc_frame_dec_take(d, &p, &n);
                ipc_msg m;
                if (ipc_msg_decode(NULL, p, n, &m) == 0) {
                    awq_buf b = {0};
                    if (ipc_msg_encode(NULL, &m, &b)) { /* decoded messages must re-encode */
                        __builtin_trap();
                    }
                    awq_buf_free(&b);
                }
                ipc_msg_free(&m);
            }
        }
        off += chunk;
    }
out:
    ipc_frame_dec_free(d);
    return 0;
}
