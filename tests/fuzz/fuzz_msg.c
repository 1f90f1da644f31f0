/* fuzz_msg.c - one frame payload into the message decoder; a message that decodes must encode,
 * and decode again to the same bytes (the round trip is exact). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ipc_msg m, m2;
    char err[AWQ_ERR_LEN];
    if (ipc_msg_decode(err, data, size, &m) == 0) {
        awq_buf a = {0}, b = {0};
        if (ipc_msg_encode(err, &m, &a) != 0) __builtin_trap();
        if (ipc_msg_decode(err, (const uint8_t *)a.data, a.len, &m2) != 0) __builtin_trap();
        if (ipc_msg_encode(err, &m2, &b) != 0 || a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
            __builtin_trap();
        ipc_msg_free(&m2);
        awq_buf_free(&a);
        awq_buf_free(&b);
    }
    ipc_msg_free(&m);
    return 0;
}
