#define _POSIX_C_SOURCE 200809L
/* fuzz_handshake.c - the server side of the handshake fed arbitrary bytes: the input is split
 * into a msg1 candidate, a msg3 candidate and frames for the channel. A fixed client key is
 * authorized, so inputs that start from a valid-looking msg1 reach the later states. */
#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "channel.h"
#include "keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static ipc_keypair *server_kp;
static ipc_authkeys *auth;

static void setup(void) {
    if (server_kp) return;
    if (sodium_init() < 0) abort();
    server_kp = sodium_malloc(sizeof *server_kp);
    memset(server_kp->sk, 0x42, 32);
    crypto_scalarmult_base(server_kp->pk, server_kp->sk);
    /* authorize the key whose secret is 32 x 0x43 (the fuzzer may find its public key) */
    char path[] = "/tmp/fuzz-hs-auth-XXXXXX";
    int fd = mkstemp(path);
    uint8_t sk[32], pk[32];
    char hex[66];
    memset(sk, 0x43, 32);
    crypto_scalarmult_base(pk, sk);
    sodium_bin2hex(hex, 65, pk, 32);
    hex[64] = '\n';
    if (fd < 0 || write(fd, hex, 65) != 65) abort();
    close(fd);
    if (ipc_authkeys_load(NULL, path, &auth)) abort();
    unlink(path);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    setup();
    ipc_hs *hs = ipc_hs_server_create(server_kp, auth);
    if (!hs) return 0;
    uint8_t m2[IPC_HS2_LEN];
    size_t n1 = size < IPC_HS1_LEN ? size : IPC_HS1_LEN;
    if (ipc_hs_is_msg1(data, n1) && ipc_hs_server_msg1(NULL, hs, data, n1, m2) == 0) {
        data += n1, size -= n1;
        size_t n3 = size < IPC_HS3_LEN ? size : IPC_HS3_LEN;
        if (ipc_hs_server_msg3(NULL, hs, data, n3) == 0) {
            data += n3, size -= n3;
            ipc_chan *c = ipc_hs_take_channel(hs);
            uint8_t out[512];
            while (size > 1) { /* frames of (first byte) bytes */
                size_t n = data[0] < size - 1 ? data[0] : size - 1;
                size_t ol;
                if (n > sizeof out || ipc_chan_open(NULL, c, data + 1, n, out, &ol)) break;
                data += 1 + n, size -= 1 + n;
            }
            ipc_chan_free(c);
        }
    } else {
        (void)ipc_hs_server_msg3(NULL, hs, data, size); /* out of order: must fail cleanly */
    }
    ipc_hs_free(hs);
    return 0;
}
