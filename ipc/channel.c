/* channel.c - handshake and secretstream channel; see channel.h and docs/protocol.md. */
#include "channel.h"

#include <sodium.h>
#include <string.h>

#define KEYB crypto_scalarmult_BYTES
#define HDRB crypto_secretstream_xchacha20poly1305_HEADERBYTES
#define LABEL "awqd-ipc-hs-v1"
#define KDF_CTX "awqdipc1"

_Static_assert(KEYB == IPC_KEY_BYTES, "X25519 key size");
_Static_assert(HDRB == 24, "secretstream header size");
_Static_assert(crypto_secretstream_xchacha20poly1305_ABYTES == IPC_CHAN_ABYTES, "ABYTES");
_Static_assert(IPC_HS1_LEN == 4 + 2 * KEYB && IPC_HS2_LEN == 4 + 3 * KEYB + HDRB && IPC_HS3_LEN == 4 + KEYB + HDRB,
               "handshake sizes");

struct ipc_chan {
    crypto_secretstream_xchacha20poly1305_state tx, rx;
    uint64_t sent;
    int failed;
};

enum { HS_START, HS_SENT1, HS_SENT2, HS_DONE, HS_FAILED };

struct ipc_hs {
    int server, state;
    const ipc_keypair *kp;
    const ipc_authkeys *auth;
    uint8_t e_pk[KEYB], e_sk[KEYB];
    uint8_t peer_e[KEYB], peer_s[KEYB];
    uint8_t h[32];            /* transcript hash */
    uint8_t k_tx[32], k_rx[32], k_sconf[32], k_cconf[32];
    uint8_t tag_s[32];
    uint8_t msg1[IPC_HS1_LEN];
    ipc_chan *chan;
};

static const uint8_t magic[3] = {'A', 'W', 'H'};

bool ipc_hs_is_msg1(const uint8_t *p, size_t n) {
    return n >= 4 && p[0] == 0x01 && memcmp(p + 1, magic, 3) == 0;
}

static ipc_hs *hs_new(const ipc_keypair *kp, int server) {
    if (sodium_init() < 0 || !kp) return NULL;
    ipc_hs *hs = sodium_malloc(sizeof *hs);
    if (!hs) return NULL;
    memset(hs, 0, sizeof *hs);
    hs->server = server;
    hs->kp = kp;
    hs->chan = sodium_malloc(sizeof *hs->chan);
    if (!hs->chan) {
        sodium_free(hs);
        return NULL;
    }
    memset(hs->chan, 0, sizeof *hs->chan);
    crypto_box_keypair(hs->e_pk, hs->e_sk); /* fresh ephemeral: forward secrecy */
    return hs;
}

ipc_hs *ipc_hs_client_create(const ipc_keypair *kp) { return hs_new(kp, 0); }

ipc_hs *ipc_hs_server_create(const ipc_keypair *kp, const ipc_authkeys *auth) {
    ipc_hs *hs = hs_new(kp, 1);
    if (hs) hs->auth = auth;
    return hs;
}

void ipc_hs_free(ipc_hs *hs) {
    if (!hs) return;
    if (hs->chan) sodium_free(hs->chan);
    sodium_free(hs); /* wipes e_sk, keys, transcript */
}

void ipc_hs_peer_key(const ipc_hs *hs, uint8_t pk[IPC_KEY_BYTES]) { memcpy(pk, hs->peer_s, KEYB); }

ipc_chan *ipc_hs_take_channel(ipc_hs *hs) {
    if (hs->state != HS_DONE) return NULL;
    ipc_chan *c = hs->chan;
    hs->chan = NULL;
    return c;
}

static int fail(char *err, ipc_hs *hs, int code, const char *what) {
    hs->state = HS_FAILED;
    return awq_seterr(err, code, "handshake: %s", what);
}

/* Derive the transcript hash and the four keys from the DH results.
 *   h      = BLAKE2b-256(LABEL || msg1 || msg2[0..68))
 *   master = BLAKE2b-256(key = h, dh(e_c,E_s) || dh(e_c,S_s) || dh(s_c,E_s) || dh(s_c,S_s))
 *   k_c2s = KDF(master, 1), k_s2c = KDF(master, 2), k_sconf = KDF(master, 3), k_cconf = KDF(master, 4)
 *   tag_s = BLAKE2b-256(key = k_sconf, h), tag_c = BLAKE2b-256(key = k_cconf, h || tag_s) */
static int derive(ipc_hs *hs, const uint8_t msg2_head[4 + 2 * KEYB]) {
    uint8_t *dh = sodium_malloc(4 * KEYB + 32);
    if (!dh) return AWQ_ENOMEM;
    uint8_t *master = dh + 4 * KEYB;
    int bad = 0;
    if (hs->server) {
        bad |= crypto_scalarmult(dh + 0 * KEYB, hs->e_sk, hs->peer_e);      /* e_c . e_s */
        bad |= crypto_scalarmult(dh + 1 * KEYB, hs->kp->sk, hs->peer_e);    /* e_c . S_s */
        bad |= crypto_scalarmult(dh + 2 * KEYB, hs->e_sk, hs->peer_s);      /* S_c . e_s */
        bad |= crypto_scalarmult(dh + 3 * KEYB, hs->kp->sk, hs->peer_s);    /* S_c . S_s */
    } else {
        bad |= crypto_scalarmult(dh + 0 * KEYB, hs->e_sk, hs->peer_e);
        bad |= crypto_scalarmult(dh + 1 * KEYB, hs->e_sk, hs->peer_s);
        bad |= crypto_scalarmult(dh + 2 * KEYB, hs->kp->sk, hs->peer_e);
        bad |= crypto_scalarmult(dh + 3 * KEYB, hs->kp->sk, hs->peer_s);
    }
    if (bad) { /* a low-order point: the result would be predictable */
        sodium_free(dh);
        return AWQ_ECRYPTO;
    }
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    crypto_generichash_update(&st, (const uint8_t *)LABEL, sizeof LABEL - 1);
    crypto_generichash_update(&st, hs->msg1, IPC_HS1_LEN);
    crypto_generichash_update(&st, msg2_head, 4 + 2 * KEYB);
    crypto_generichash_final(&st, hs->h, 32);
    crypto_generichash(master, 32, dh, 4 * KEYB, hs->h, 32);
    uint8_t *c2s = hs->server ? hs->k_rx : hs->k_tx, *s2c = hs->server ? hs->k_tx : hs->k_rx;
    crypto_kdf_derive_from_key(c2s, 32, 1, KDF_CTX, master);
    crypto_kdf_derive_from_key(s2c, 32, 2, KDF_CTX, master);
    crypto_kdf_derive_from_key(hs->k_sconf, 32, 3, KDF_CTX, master);
    crypto_kdf_derive_from_key(hs->k_cconf, 32, 4, KDF_CTX, master);
    crypto_generichash(hs->tag_s, 32, hs->h, 32, hs->k_sconf, 32);
    sodium_free(dh);
    return 0;
}

static void tag_c(const ipc_hs *hs, uint8_t out[32]) {
    crypto_generichash_state st;
    crypto_generichash_init(&st, hs->k_cconf, 32, 32);
    crypto_generichash_update(&st, hs->h, 32);
    crypto_generichash_update(&st, hs->tag_s, 32);
    crypto_generichash_final(&st, out, 32);
}

int ipc_hs_client_msg1(char *err, ipc_hs *hs, uint8_t out[IPC_HS1_LEN]) {
    if (hs->server || hs->state != HS_START) return fail(err, hs, AWQ_ESTATE, "msg1 out of order");
    out[0] = 0x01;
    memcpy(out + 1, magic, 3);
    memcpy(out + 4, hs->e_pk, KEYB);
    memcpy(out + 4 + KEYB, hs->kp->pk, KEYB);
    memcpy(hs->msg1, out, IPC_HS1_LEN);
    hs->state = HS_SENT1;
    return 0;
}

int ipc_hs_server_msg1(char *err, ipc_hs *hs, const uint8_t *in, size_t n, uint8_t out[IPC_HS2_LEN]) {
    if (!hs->server || hs->state != HS_START) return fail(err, hs, AWQ_ESTATE, "msg1 out of order");
    if (n != IPC_HS1_LEN || !ipc_hs_is_msg1(in, n))
        return fail(err, hs, AWQ_EPROTO, "malformed first message (expected 68 bytes starting 01 'AWH')");
    memcpy(hs->msg1, in, IPC_HS1_LEN);
    memcpy(hs->peer_e, in + 4, KEYB);
    memcpy(hs->peer_s, in + 4 + KEYB, KEYB);
    if (!ipc_authkeys_has(hs->auth, hs->peer_s)) {
        char fp[IPC_FP_LEN];
        ipc_fingerprint(hs->peer_s, fp);
        hs->state = HS_FAILED;
        return awq_seterr(err, AWQ_EPERM, "handshake: client key %s is not in the server's authorized keys", fp);
    }
    out[0] = 0x02;
    memcpy(out + 1, magic, 3);
    memcpy(out + 4, hs->e_pk, KEYB);
    memcpy(out + 4 + KEYB, hs->kp->pk, KEYB);
    int rc = derive(hs, out);
    if (rc) return fail(err, hs, rc, rc == AWQ_ECRYPTO ? "invalid client key (low-order point)" : "out of memory");
    memcpy(out + 4 + 2 * KEYB, hs->tag_s, 32);
    crypto_secretstream_xchacha20poly1305_init_push(&hs->chan->tx, out + 4 + 3 * KEYB, hs->k_tx);
    hs->state = HS_SENT2;
    return 0;
}

int ipc_hs_client_msg2(char *err, ipc_hs *hs, const uint8_t *in, size_t n, uint8_t server_pk[IPC_KEY_BYTES],
                       uint8_t out[IPC_HS3_LEN]) {
    if (hs->server || hs->state != HS_SENT1) return fail(err, hs, AWQ_ESTATE, "msg2 out of order");
    if (n != IPC_HS2_LEN || in[0] != 0x02 || memcmp(in + 1, magic, 3) != 0)
        return fail(err, hs, AWQ_EPROTO, "malformed server reply (expected 124 bytes starting 02 'AWH')");
    memcpy(hs->peer_e, in + 4, KEYB);
    memcpy(hs->peer_s, in + 4 + KEYB, KEYB);
    int rc = derive(hs, in);
    if (rc) return fail(err, hs, rc, rc == AWQ_ECRYPTO ? "invalid server key (low-order point)" : "out of memory");
    if (sodium_memcmp(hs->tag_s, in + 4 + 2 * KEYB, 32) != 0)
        return fail(err, hs, AWQ_ECRYPTO, "server failed to prove it holds its key (bad confirmation tag)");
    if (crypto_secretstream_xchacha20poly1305_init_pull(&hs->chan->rx, in + 4 + 3 * KEYB, hs->k_rx) != 0)
        return fail(err, hs, AWQ_ECRYPTO, "bad stream header");
    memcpy(server_pk, hs->peer_s, KEYB);
    out[0] = 0x03;
    memcpy(out + 1, magic, 3);
    tag_c(hs, out + 4);
    crypto_secretstream_xchacha20poly1305_init_push(&hs->chan->tx, out + 4 + KEYB, hs->k_tx);
    hs->state = HS_DONE;
    return 0;
}

int ipc_hs_server_msg3(char *err, ipc_hs *hs, const uint8_t *in, size_t n) {
    if (!hs->server || hs->state != HS_SENT2) return fail(err, hs, AWQ_ESTATE, "msg3 out of order");
    if (n != IPC_HS3_LEN || in[0] != 0x03 || memcmp(in + 1, magic, 3) != 0)
        return fail(err, hs, AWQ_EPROTO, "malformed third message (expected 60 bytes starting 03 'AWH')");
    uint8_t t[32];
    tag_c(hs, t);
    if (sodium_memcmp(t, in + 4, 32) != 0)
        return fail(err, hs, AWQ_ECRYPTO, "client failed to prove it holds its key (bad confirmation tag)");
    if (crypto_secretstream_xchacha20poly1305_init_pull(&hs->chan->rx, in + 4 + KEYB, hs->k_rx) != 0)
        return fail(err, hs, AWQ_ECRYPTO, "bad stream header");
    hs->state = HS_DONE;
    return 0;
}

int ipc_chan_seal(char *err, ipc_chan *c, const uint8_t *pt, size_t n, uint8_t *out) {
    if (c->failed) return awq_seterr(err, AWQ_ECRYPTO, "channel already failed");
    c->sent++;
    unsigned char tag = c->sent % IPC_REKEY_FRAMES == 0 ? crypto_secretstream_xchacha20poly1305_TAG_REKEY
                                                        : crypto_secretstream_xchacha20poly1305_TAG_MESSAGE;
    if (crypto_secretstream_xchacha20poly1305_push(&c->tx, out, NULL, pt, n, NULL, 0, tag) != 0) {
        c->failed = 1;
        return awq_seterr(err, AWQ_ECRYPTO, "seal failed");
    }
    return 0;
}

int ipc_chan_open(char *err, ipc_chan *c, const uint8_t *ct, size_t n, uint8_t *out, size_t *out_len) {
    unsigned char tag;
    unsigned long long ml;
    if (c->failed) return awq_seterr(err, AWQ_ECRYPTO, "channel already failed");
    if (n < IPC_CHAN_ABYTES) {
        c->failed = 1;
        return awq_seterr(err, AWQ_ECRYPTO, "encrypted frame of %zu bytes is shorter than its tag", n);
    }
    if (crypto_secretstream_xchacha20poly1305_pull(&c->rx, out, &ml, &tag, ct, n, NULL, 0) != 0) {
        c->failed = 1;
        return awq_seterr(err, AWQ_ECRYPTO,
                          "decryption failed: frame forged, corrupted, replayed or out of order");
    }
    if (tag != crypto_secretstream_xchacha20poly1305_TAG_MESSAGE &&
        tag != crypto_secretstream_xchacha20poly1305_TAG_REKEY) {
        c->failed = 1;
        return awq_seterr(err, AWQ_ECRYPTO, "unexpected stream tag %u", tag);
    }
    *out_len = (size_t)ml;
    return 0;
}

void ipc_chan_free(ipc_chan *c) {
    if (c) sodium_free(c);
}
