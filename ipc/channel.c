/* channel.c - handshake and secretstream channel; see channel.h and docs/protocol.md. */
#include "channel.h"

#include <sodium.h>
#include <stdatomic.h>
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

typedef crypto_secretstream_xchacha20poly1305_state ss_state;

#define SS_BLOCK 64

/* One direction of a channel: the stream state and, when ipc_chan_prepare made it, the keystream
 * of the next frame (blocks 0..ks_len/64 for st's current key and nonce; secret like the key). */
typedef struct ss_half {
    ss_state st;
    size_t ks_len; /* 0: none prepared */
    uint8_t ks[8 * SS_BLOCK];
} ss_half;

struct ipc_chan {
    ss_half tx, rx;
    uint64_t sent;
    int failed;
    bool no_fast; /* ipc_chan_set_fast(c, false): libsodium's push/pull for every frame */
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
    crypto_secretstream_xchacha20poly1305_init_push(&hs->chan->tx.st, out + 4 + 3 * KEYB, hs->k_tx);
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
    if (crypto_secretstream_xchacha20poly1305_init_pull(&hs->chan->rx.st, in + 4 + 3 * KEYB, hs->k_rx) != 0)
        return fail(err, hs, AWQ_ECRYPTO, "bad stream header");
    memcpy(server_pk, hs->peer_s, KEYB);
    out[0] = 0x03;
    memcpy(out + 1, magic, 3);
    tag_c(hs, out + 4);
    crypto_secretstream_xchacha20poly1305_init_push(&hs->chan->tx.st, out + 4 + KEYB, hs->k_tx);
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
    if (crypto_secretstream_xchacha20poly1305_init_pull(&hs->chan->rx.st, in + 4 + KEYB, hs->k_rx) != 0)
        return fail(err, hs, AWQ_ECRYPTO, "bad stream header");
    hs->state = HS_DONE;
    return 0;
}

/* ------------------------------------------------------------ fused secretstream for small frames ---- */

/* Why: a ping or a token event is 15-40 bytes, and libsodium's push/pull spend most of their
 * time around the cipher, not in it: three separate ChaCha20 calls (the Poly1305 key block, the
 * tag block, the message), each one block on the scalar path, and a multi-call Poly1305. Here one
 * ChaCha20 call makes blocks 0..3 (or 0..7) at once, which takes libsodium's 4-/8-way SIMD path,
 * and one Poly1305 call authenticates the whole input: 0.17 us less per operation on the dev box,
 * four operations per round trip.
 *
 * The construction is libsodium's secretstream exactly (its documented "algorithm details"),
 * byte for byte, so the wire format does not change:
 *   block1 = ChaCha20(k, nonce = counter || inonce, ic 1) XOR (tag, 0 x 63); c[0] = block1[0]
 *   c[1..] = m XOR ChaCha20(ic 2);  Poly1305 key = ChaCha20(ic 0)[0..32)
 *   mac = Poly1305(block1 || c[1..] || 0 x (mlen % 16) || le64(0) || le64(64 + mlen))
 *   (the pad length mlen % 16 is libsodium's, not the usual 16 - mlen % 16: it is the format)
 *   then inonce ^= mac[0..8), counter++, and a rekey on the REKEY tag or a counter wrap.
 * The rekey and stream init stay libsodium's own calls. It relies on the state layout
 * (nonce = 4-byte counter, then 8-byte inonce), which the public struct does not promise: so
 * fast_check() compares both implementations once per process before the first frame, and any
 * mismatch (a libsodium that changed) sends every frame through libsodium. Larger frames go
 * through libsodium anyway: there the call overhead is amortised. */

#define TAG_MSG crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
#define TAG_REKEY crypto_secretstream_xchacha20poly1305_TAG_REKEY
/* Largest plaintext the fused path takes: blocks 0..7 of keystream (512 bytes) minus the two
 * blocks before the message. 4 blocks (256 bytes) cover plaintexts up to 128 bytes. */
#define FAST_MAX (8 * SS_BLOCK - 2 * SS_BLOCK)
#define FAST_MAX_4 (4 * SS_BLOCK - 2 * SS_BLOCK)

_Static_assert(sizeof(((ss_state *)0)->nonce) == 12, "secretstream nonce: 4-byte counter + 8-byte inonce");

/* 1: the fused path matched libsodium; -1: it did not (use libsodium); 0: not checked yet. */
static atomic_int fast_state;

static void le64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* Keystream bytes for a plaintext of mlen bytes: 4 blocks up to 128 bytes, else 8. */
static size_t ks_need(size_t mlen) { return mlen <= FAST_MAX_4 ? 4 * SS_BLOCK : 8 * SS_BLOCK; }

/* The keystream of h's next frame, kl bytes: the prepared one when it is long enough, else
 * made now into spare (8 * SS_BLOCK bytes). */
static const uint8_t *ks_get(ss_half *h, size_t kl, uint8_t *spare) {
    if (h->ks_len >= kl) return h->ks;
    crypto_stream_chacha20_ietf(spare, kl, h->st.nonce, h->st.k);
    return spare;
}

/* The Poly1305 input after block1 (64 bytes, already in a[0..64)): c, pad, lengths. Returns
 * its total length. a holds (64 + FAST_MAX + 16 + 16) bytes. */
static size_t mac_input(uint8_t *a, const uint8_t *c, size_t mlen) {
    memcpy(a + SS_BLOCK, c, mlen);
    size_t len = SS_BLOCK + mlen, pad = mlen & 0xf;
    memset(a + len, 0, pad);
    len += pad;
    le64(a + len, 0); /* no additional data */
    le64(a + len + 8, SS_BLOCK + mlen);
    return len + 16;
}

/* After a frame: fold the MAC into the nonce, step the counter, rekey when due. The prepared
 * keystream was for the old nonce: it is wiped here, so it can never serve two frames. */
static void ss_advance(ss_half *h, const uint8_t mac[16], uint8_t tag) {
    if (h->ks_len) sodium_memzero(h->ks, h->ks_len);
    h->ks_len = 0;
    ss_state *st = &h->st;
    for (int i = 0; i < 8; i++) st->nonce[4 + i] ^= mac[i];
    sodium_increment(st->nonce, 4);
    if ((tag & TAG_REKEY) || sodium_is_zero(st->nonce, 4)) crypto_secretstream_xchacha20poly1305_rekey(st);
}

/* Seal m[0..mlen) (mlen <= FAST_MAX) into out (mlen + 17 bytes). out must not overlap m. */
static void fast_push(ss_half *h, uint8_t *out, const uint8_t *m, size_t mlen, uint8_t tag) {
    uint8_t spare[8 * SS_BLOCK], a[SS_BLOCK + FAST_MAX + 32];
    size_t kl = ks_need(mlen);
    const uint8_t *ks = ks_get(h, kl, spare);
    memcpy(a, ks + SS_BLOCK, SS_BLOCK);
    a[0] ^= tag;
    out[0] = a[0];
    uint8_t *c = out + 1;
    for (size_t i = 0; i < mlen; i++) c[i] = m[i] ^ ks[2 * SS_BLOCK + i];
    crypto_onetimeauth_poly1305(c + mlen, a, mac_input(a, c, mlen), ks);
    if (ks == spare) sodium_memzero(spare, kl); /* the Poly1305 key and unused keystream */
    ss_advance(h, c + mlen, tag);
    sodium_memzero(a, SS_BLOCK); /* block1[1..64) is keystream too */
}

/* Open in[0..n) (17 <= n <= FAST_MAX + 17) into out (n - 17 bytes, may be in itself + 1 or
 * separate). The MAC is checked (constant time) before anything is decrypted or the state
 * moves: -1 on a bad MAC with the state untouched, like libsodium. */
static int fast_pull(ss_half *h, uint8_t *out, uint8_t *tag_p, const uint8_t *in, size_t n) {
    uint8_t spare[8 * SS_BLOCK], a[SS_BLOCK + FAST_MAX + 32], mac[16];
    size_t mlen = n - IPC_CHAN_ABYTES, kl = ks_need(mlen);
    const uint8_t *c = in + 1, *ks = ks_get(h, kl, spare);
    memcpy(a, ks + SS_BLOCK, SS_BLOCK);
    uint8_t tag = (uint8_t)(in[0] ^ a[0]);
    a[0] = in[0];
    crypto_onetimeauth_poly1305(mac, a, mac_input(a, c, mlen), ks);
    int rc = 0;
    if (crypto_verify_16(mac, c + mlen) != 0) {
        rc = -1;
    } else {
        for (size_t i = 0; i < mlen; i++) out[i] = c[i] ^ ks[2 * SS_BLOCK + i];
        *tag_p = tag;
    }
    if (ks == spare) sodium_memzero(spare, kl);
    if (rc == 0) ss_advance(h, mac, tag);
    sodium_memzero(a, SS_BLOCK);
    return rc;
}

/* Make h's next keystream now (4 blocks: a frame of up to 128 bytes uses it). */
static void ks_prepare(ss_half *h) {
    if (h->ks_len) return;
    crypto_stream_chacha20_ietf(h->ks, 4 * SS_BLOCK, h->st.nonce, h->st.k);
    h->ks_len = 4 * SS_BLOCK;
}

/* Run both implementations side by side on a throwaway key (not a secret) over sizes around
 * every boundary and both tags, across a rekey and a counter wrap, with and without a prepared
 * keystream, and check a forged frame is refused. True when every byte and state agree. */
static bool fast_check(void) {
    static const size_t sizes[] = {0, 1, 15, 16, 17, 31, 64, 127, FAST_MAX_4, FAST_MAX_4 + 1, 200, FAST_MAX - 1, FAST_MAX};
    uint8_t k[32], hdr[HDRB], m[FAST_MAX], x[FAST_MAX + IPC_CHAN_ABYTES], y[FAST_MAX + IPC_CHAN_ABYTES];
    uint8_t back[FAST_MAX], tag_a, tag_b;
    unsigned long long ml;
    ss_state pa, ra;
    ss_half pb = {0}, rb = {0};
    for (size_t i = 0; i < sizeof k; i++) k[i] = (uint8_t)(i * 7 + 1);
    for (size_t i = 0; i < sizeof m; i++) m[i] = (uint8_t)(i * 31 + 5);
    crypto_secretstream_xchacha20poly1305_init_push(&pa, hdr, k);
    if (crypto_secretstream_xchacha20poly1305_init_pull(&ra, hdr, k) != 0) return false;
    pb.st = pa;
    rb.st = ra;
    bool ok = true;
    for (size_t r = 0; r < 2 && ok; r++)
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes && ok; i++) {
            size_t n = sizes[i];
            uint8_t tag = i == 5 ? TAG_REKEY : TAG_MSG;
            if ((i + r) & 1) {
                ks_prepare(&pb);
                ks_prepare(&rb);
            }
            crypto_secretstream_xchacha20poly1305_push(&pa, x, NULL, m, n, NULL, 0, tag);
            fast_push(&pb, y, m, n, tag);
            ok = memcmp(x, y, n + IPC_CHAN_ABYTES) == 0;
            y[1 + n] ^= 1; /* a flipped MAC bit must be refused without touching the state */
            ok = ok && fast_pull(&rb, back, &tag_b, y, n + IPC_CHAN_ABYTES) == -1;
            ok = ok && crypto_secretstream_xchacha20poly1305_pull(&ra, back, &ml, &tag_a, x, n + IPC_CHAN_ABYTES,
                                                                  NULL, 0) == 0;
            ok = ok && fast_pull(&rb, back, &tag_b, x, n + IPC_CHAN_ABYTES) == 0 && tag_a == tag_b && tag_b == tag &&
                 memcmp(back, m, n) == 0;
        }
    ok = ok && memcmp(&pa, &pb.st, sizeof pa) == 0 && memcmp(&ra, &rb.st, sizeof ra) == 0;
    /* the counter wraps at 2^32 frames: libsodium rekeys then, and so must we */
    memset(pa.nonce, 0xff, 4);
    pb.st = pa;
    crypto_secretstream_xchacha20poly1305_push(&pa, x, NULL, m, 16, NULL, 0, TAG_MSG);
    fast_push(&pb, y, m, 16, TAG_MSG);
    ok = ok && memcmp(&pa, &pb.st, sizeof pa) == 0;
    sodium_memzero(&pa, sizeof pa);
    sodium_memzero(&pb, sizeof pb);
    sodium_memzero(&ra, sizeof ra);
    sodium_memzero(&rb, sizeof rb);
    return ok;
}

static bool fast_usable(void) {
    int s = atomic_load_explicit(&fast_state, memory_order_relaxed);
    if (s == 0) { /* two threads may both check: same answer, no harm */
        s = fast_check() ? 1 : -1;
        atomic_store_explicit(&fast_state, s, memory_order_relaxed);
    }
    return s > 0;
}

/* True when [a, a + an) and [b, b + bn) share a byte (compared as integers: relational
 * operators on pointers into different objects are undefined). */
static bool overlaps(const void *a, size_t an, const void *b, size_t bn) {
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return x < y + bn && y < x + an;
}

int ipc_chan_fast_path(void) { return fast_usable() ? 1 : 0; }

void ipc_chan_set_fast(ipc_chan *c, bool on) { c->no_fast = !on; }

/* ------------------------------------------------------------ channel ---- */

void ipc_chan_prepare(ipc_chan *c, unsigned dirs) {
    if (c->failed || c->no_fast || !fast_usable()) return;
    if (dirs & IPC_CHAN_TX) ks_prepare(&c->tx);
    if (dirs & IPC_CHAN_RX) ks_prepare(&c->rx);
}

int ipc_chan_seal(char *err, ipc_chan *c, const uint8_t *pt, size_t n, uint8_t *out) {
    if (c->failed) return awq_seterr(err, AWQ_ECRYPTO, "channel already failed");
    c->sent++;
    uint8_t tag = c->sent % IPC_REKEY_FRAMES == 0 ? TAG_REKEY : TAG_MSG;
    if (n <= FAST_MAX && !c->no_fast && !overlaps(pt, n, out, n + IPC_CHAN_ABYTES) && fast_usable()) {
        fast_push(&c->tx, out, pt, n, tag);
        return 0;
    }
    /* a keystream prepared for this nonce must not outlive the frame that used the nonce */
    if (c->tx.ks_len) sodium_memzero(c->tx.ks, c->tx.ks_len);
    c->tx.ks_len = 0;
    if (crypto_secretstream_xchacha20poly1305_push(&c->tx.st, out, NULL, pt, n, NULL, 0, tag) != 0) {
        c->failed = 1;
        return awq_seterr(err, AWQ_ECRYPTO, "seal failed");
    }
    return 0;
}

int ipc_chan_open(char *err, ipc_chan *c, const uint8_t *ct, size_t n, uint8_t *out, size_t *out_len) {
    unsigned char tag = 0;
    unsigned long long ml = 0;
    if (c->failed) return awq_seterr(err, AWQ_ECRYPTO, "channel already failed");
    if (n < IPC_CHAN_ABYTES) {
        c->failed = 1;
        return awq_seterr(err, AWQ_ECRYPTO, "encrypted frame of %zu bytes is shorter than its tag", n);
    }
    int rc;
    if (n - IPC_CHAN_ABYTES <= FAST_MAX && !c->no_fast && fast_usable()) {
        rc = fast_pull(&c->rx, out, &tag, ct, n);
        ml = n - IPC_CHAN_ABYTES;
    } else {
        if (c->rx.ks_len) sodium_memzero(c->rx.ks, c->rx.ks_len);
        c->rx.ks_len = 0;
        rc = crypto_secretstream_xchacha20poly1305_pull(&c->rx.st, out, &ml, &tag, ct, n, NULL, 0);
    }
    if (rc != 0) {
        c->failed = 1;
        return awq_seterr(err, AWQ_ECRYPTO,
                          "decryption failed: frame forged, corrupted, replayed or out of order");
    }
    if (tag != TAG_MSG && tag != TAG_REKEY) {
        c->failed = 1;
        return awq_seterr(err, AWQ_ECRYPTO, "unexpected stream tag %u", tag);
    }
    *out_len = (size_t)ml;
    return 0;
}

void ipc_chan_free(ipc_chan *c) {
    if (c) sodium_free(c);
}
