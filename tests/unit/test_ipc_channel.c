/* test_ipc_channel.c - ipc/ keys and secure channel: key generation and the owner-only mode
 * check, authorized keys and known-servers pinning (TOFU, changed key), the handshake (success,
 * unknown client key, a server that does not hold the key it presents, tampered confirmation),
 * and the secretstream channel (round trip across rekeys, bit flip, replay, reorder), and the
 * fused small-frame path against libsodium's own push/pull. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "channel.h"
#include "harness.h"
#include "keys.h"

static char dir[256];

#ifdef _WIN32
#include <process.h>

#include "plat.h"
/* mingw has no mkdtemp: a directory named after the pid and the clock, in the working
 * directory (wine reuses pids, so the pid alone can name a folder an earlier run left) */
static char *mkdtemp(char *tmpl) {
    snprintf(tmpl, sizeof dir, "awq-ipc-chan-%d-%llu", _getpid(), (unsigned long long)plat_now_ns());
    return plat_mkdirs(NULL, tmpl, 0700) == 0 ? tmpl : NULL;
}
#endif

static const char *path_of(const char *name) {
    static char p[8][512];
    static int k;
    k = (k + 1) % 8;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

/* Run a whole handshake; returns the first failing step's code. */
static int handshake(const ipc_keypair *ck, const ipc_keypair *sk, const ipc_authkeys *auth, ipc_chan **cc,
                     ipc_chan **sc, char *err, uint8_t server_pk[32]) {
    ipc_hs *c = ipc_hs_client_create(ck), *s = ipc_hs_server_create(sk, auth);
    uint8_t m1[IPC_HS1_LEN], m2[IPC_HS2_LEN], m3[IPC_HS3_LEN];
    int rc = ipc_hs_client_msg1(err, c, m1);
    if (!rc) rc = ipc_hs_server_msg1(err, s, m1, sizeof m1, m2);
    if (!rc) rc = ipc_hs_client_msg2(err, c, m2, sizeof m2, server_pk, m3);
    if (!rc) rc = ipc_hs_server_msg3(err, s, m3, sizeof m3);
    if (!rc) {
        *cc = ipc_hs_take_channel(c);
        *sc = ipc_hs_take_channel(s);
    }
    ipc_hs_free(c);
    ipc_hs_free(s);
    return rc;
}

int main(void) {
    char err[AWQ_ERR_LEN] = "";
    snprintf(dir, sizeof dir, "/tmp/awq-ipc-chan-XXXXXX");
    if (!mkdtemp(dir)) SKIP("cannot create a temp dir");
    CHECK_EQ(ipc_crypto_init(err), 0);

    CASE("chan-1.1", "keygen writes 0600/0644 files that load back; no overwrite");
    CHECK_EQ(ipc_keygen(err, path_of("server.key"), path_of("server.pub")), 0);
    CHECK_EQ(ipc_keygen(err, path_of("client.key"), path_of("client.pub")), 0);
    CHECK_EQ(ipc_keygen(err, path_of("other.key"), path_of("other.pub")), 0);
#ifndef _WIN32 /* Windows has DACLs, not modes: test_pipe (pipe-3.3) checks those */
    struct stat st;
    CHECK(stat(path_of("server.key"), &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK(stat(path_of("server.pub"), &st) == 0 && (st.st_mode & 0777) == 0644);
#endif
    CHECK_EQ(ipc_keygen(err, path_of("server.key"), path_of("x.pub")), AWQ_EEXIST);
    CHECK_CONTAINS(err, "not overwriting a key");
    ipc_keypair *skp = NULL, *ckp = NULL, *okp = NULL;
    CHECK_EQ(ipc_keypair_load(err, path_of("server.key"), &skp), 0);
    CHECK_EQ(ipc_keypair_load(err, path_of("client.key"), &ckp), 0);
    CHECK_EQ(ipc_keypair_load(err, path_of("other.key"), &okp), 0);
    uint8_t pk[32];
    CHECK_EQ(ipc_pubkey_load(err, path_of("server.pub"), pk), 0);
    CHECK(memcmp(pk, skp->pk, 32) == 0);

    ipc_keypair *bad = NULL;
#ifndef _WIN32 /* modes and symlinks: on Windows the DACL check is test_pipe's pipe-3.3 */
    CASE("chan-1.2", "a key file readable by others is refused like ssh does");
    chmod(path_of("other.key"), 0644);
    CHECK_EQ(ipc_keypair_load(err, path_of("other.key"), &bad), AWQ_EPERM);
    CHECK_CONTAINS(err, "is readable by others (mode 0644); chmod 600 it");
    CHECK(bad == NULL);
    chmod(path_of("other.key"), 0640);
    CHECK_EQ(ipc_keypair_load(err, path_of("other.key"), &bad), AWQ_EPERM);
    CHECK_CONTAINS(err, "(mode 0640)");
    symlink(path_of("client.key"), path_of("link.key"));
    CHECK_EQ(ipc_keypair_load(err, path_of("link.key"), &bad), AWQ_EPERM);
    CHECK_CONTAINS(err, "is a symlink");
    write_text(path_of("short.key"), "abcd\n");
    chmod(path_of("short.key"), 0600);
    CHECK_EQ(ipc_keypair_load(err, path_of("short.key"), &bad), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "expected 64 hex digits");
#endif
    CHECK_EQ(ipc_keypair_load(err, path_of("missing.key"), &bad), AWQ_ENOTFOUND);

    CASE("chan-1.3", "fingerprints are stable, 35 characters, and differ per key");
    char f1[IPC_FP_LEN], f2[IPC_FP_LEN];
    ipc_fingerprint(skp->pk, f1);
    ipc_fingerprint(ckp->pk, f2);
    CHECK_EQ(strlen(f1), 35);
    CHECK(f1[8] == '-' && f1[17] == '-' && f1[26] == '-');
    CHECK(strcmp(f1, f2) != 0);
    uint8_t zero[32] = {0};
    ipc_fingerprint(zero, f2);
    CHECK_STR(f2, "aiil5jvb-hf4x25fk-k5spwitd-tdyh6qwe"); /* BLAKE2b-160 of 32 zero bytes, base32 (checked with Python hashlib) */

    CASE("chan-1.4", "authorized keys: comments, blank lines, and errors with a line number");
    {
        char hex[65], text[512];
        for (int i = 0; i < 32; i++) sprintf(hex + 2 * i, "%02x", ckp->pk[i]);
        snprintf(text, sizeof text, "# clients\n\n%s laptop\n", hex);
        write_text(path_of("authorized_keys"), text);
        ipc_authkeys *a = NULL;
        CHECK_EQ(ipc_authkeys_load(err, path_of("authorized_keys"), &a), 0);
        CHECK_EQ(ipc_authkeys_count(a), 1);
        CHECK(ipc_authkeys_has(a, ckp->pk));
        CHECK(!ipc_authkeys_has(a, okp->pk));
        ipc_authkeys_free(a);
        write_text(path_of("bad_keys"), "# x\nnot-a-key\n");
        CHECK_EQ(ipc_authkeys_load(err, path_of("bad_keys"), &a), AWQ_EFORMAT);
        CHECK_CONTAINS(err, "bad_keys:2: expected a 64-hex-digit public key");
    }

    ipc_authkeys *auth = NULL;
    CHECK_EQ(ipc_authkeys_load(err, path_of("authorized_keys"), &auth), 0);

    CASE("chan-2.1", "handshake succeeds and both channels carry data across rekeys");
    ipc_chan *cc = NULL, *sc = NULL;
    uint8_t spk[32];
    CHECK_EQ(handshake(ckp, skp, auth, &cc, &sc, err, spk), 0);
    CHECK(memcmp(spk, skp->pk, 32) == 0);
    int bad_rt = 0;
    for (int i = 0; i < 2 * IPC_REKEY_FRAMES + 5; i++) {
        uint8_t pt[64], ct[64 + IPC_CHAN_ABYTES], back[64];
        size_t n;
        memset(pt, i & 0xff, sizeof pt);
        if (ipc_chan_seal(err, i & 1 ? cc : sc, pt, sizeof pt, ct) ||
            ipc_chan_open(err, i & 1 ? sc : cc, ct, sizeof ct, back, &n) || n != 64 || memcmp(pt, back, 64))
            bad_rt++;
    }
    CHECK_EQ(bad_rt, 0);

    CASE("chan-2.2", "a bit-flipped ciphertext is rejected and the channel stays failed");
    {
        uint8_t pt[16] = "attack at dawn!", ct[16 + IPC_CHAN_ABYTES], back[16];
        size_t n;
        CHECK_EQ(ipc_chan_seal(err, cc, pt, sizeof pt, ct), 0);
        ct[5] ^= 0x04;
        CHECK_EQ(ipc_chan_open(err, sc, ct, sizeof ct, back, &n), AWQ_ECRYPTO);
        CHECK_CONTAINS(err, "forged, corrupted, replayed or out of order");
        ct[5] ^= 0x04; /* even the genuine frame is refused now */
        CHECK_EQ(ipc_chan_open(err, sc, ct, sizeof ct, back, &n), AWQ_ECRYPTO);
        CHECK_CONTAINS(err, "already failed");
    }
    ipc_chan_free(cc);
    ipc_chan_free(sc);

    CASE("chan-2.3", "a replayed frame is rejected");
    CHECK_EQ(handshake(ckp, skp, auth, &cc, &sc, err, spk), 0);
    {
        uint8_t pt[8] = "ping!!!", ct[8 + IPC_CHAN_ABYTES], back[8];
        size_t n;
        CHECK_EQ(ipc_chan_seal(err, cc, pt, sizeof pt, ct), 0);
        CHECK_EQ(ipc_chan_open(err, sc, ct, sizeof ct, back, &n), 0);
        CHECK_EQ(ipc_chan_open(err, sc, ct, sizeof ct, back, &n), AWQ_ECRYPTO);
    }
    ipc_chan_free(cc);
    ipc_chan_free(sc);

    CASE("chan-2.4", "reordered frames are rejected");
    CHECK_EQ(handshake(ckp, skp, auth, &cc, &sc, err, spk), 0);
    {
        uint8_t a[8] = "first!!", b[8] = "second!", ca[8 + IPC_CHAN_ABYTES], cb[8 + IPC_CHAN_ABYTES], back[8];
        size_t n;
        CHECK_EQ(ipc_chan_seal(err, cc, a, 8, ca), 0);
        CHECK_EQ(ipc_chan_seal(err, cc, b, 8, cb), 0);
        CHECK_EQ(ipc_chan_open(err, sc, cb, sizeof cb, back, &n), AWQ_ECRYPTO);
    }
    ipc_chan_free(cc);
    ipc_chan_free(sc);

    CASE("chan-2.8", "the fused small-frame path is on and interoperates with libsodium's push/pull");
    CHECK_EQ(ipc_chan_fast_path(), 1); /* the self-check passed against this libsodium */
    CHECK_EQ(handshake(ckp, skp, auth, &cc, &sc, err, spk), 0);
    ipc_chan_set_fast(sc, false); /* the server side: libsodium only; the client: fused */
    {
        /* every size from 0 to past the fused limit (384) and past the 4-block step (128),
         * both directions, over two rekeys: each frame is opened by the other implementation,
         * whose MAC check fails on any byte that differs */
        static uint8_t pt[600], ct[600 + IPC_CHAN_ABYTES], back[600];
        int mismatched = 0, frames = 0;
        for (int round = 0; frames < 2 * IPC_REKEY_FRAMES + 50; round++)
            for (size_t len = 0; len <= 400; len += (len < 140 || len > 370) ? 1 : 13, frames++) {
                size_t n = 0;
                for (size_t i = 0; i < len; i++) pt[i] = (uint8_t)(i * 13 + len + (size_t)round);
                ipc_chan *tx = frames & 1 ? cc : sc, *rx = frames & 1 ? sc : cc;
                if (ipc_chan_seal(err, tx, pt, len, ct) || ipc_chan_open(err, rx, ct, len + IPC_CHAN_ABYTES, back, &n) ||
                    n != len || (len && memcmp(pt, back, len)))
                    mismatched++;
            }
        CHECK_EQ(mismatched, 0);
        /* a big frame (libsodium on both sides) in between keeps both streams in step */
        size_t n;
        memset(pt, 7, sizeof pt);
        CHECK_EQ(ipc_chan_seal(err, cc, pt, sizeof pt, ct), 0);
        CHECK_EQ(ipc_chan_open(err, sc, ct, sizeof ct, back, &n), 0);
        CHECK_EQ(n, sizeof pt);
        CHECK_EQ(ipc_chan_seal(err, cc, pt, 20, ct), 0);
        CHECK_EQ(ipc_chan_open(err, sc, ct, 20 + IPC_CHAN_ABYTES, back, &n), 0);
    }
    ipc_chan_free(cc);
    ipc_chan_free(sc);

    CASE("chan-2.9", "fused path: a flip in the tag byte, ciphertext or MAC, or a short frame, is refused");
    {
        const size_t where[] = {0, 1, 9, 20, 20 + IPC_CHAN_ABYTES - 1};
        int refused = 0;
        for (size_t w = 0; w < sizeof where / sizeof *where; w++) {
            CHECK_EQ(handshake(ckp, skp, auth, &cc, &sc, err, spk), 0);
            uint8_t pt[20] = "nineteen bytes long", ct[20 + IPC_CHAN_ABYTES], back[20];
            size_t n;
            CHECK_EQ(ipc_chan_seal(err, sc, pt, sizeof pt, ct), 0);
            ct[where[w]] ^= 0x80;
            if (ipc_chan_open(err, cc, ct, sizeof ct, back, &n) == AWQ_ECRYPTO &&
                strstr(err, "forged, corrupted, replayed or out of order"))
                refused++;
            ipc_chan_free(cc);
            ipc_chan_free(sc);
        }
        CHECK_EQ(refused, 5);
        CHECK_EQ(handshake(ckp, skp, auth, &cc, &sc, err, spk), 0);
        uint8_t ct[IPC_CHAN_ABYTES], back[1];
        size_t n;
        CHECK_EQ(ipc_chan_seal(err, sc, (const uint8_t *)"", 0, ct), 0); /* an empty frame is 17 bytes */
        CHECK_EQ(ipc_chan_open(err, cc, ct, IPC_CHAN_ABYTES - 1, back, &n), AWQ_ECRYPTO);
        CHECK_CONTAINS(err, "encrypted frame of 16 bytes is shorter than its tag");
        CHECK_EQ(ipc_chan_open(err, cc, ct, IPC_CHAN_ABYTES, back, &n), AWQ_ECRYPTO);
        CHECK_CONTAINS(err, "already failed");
        ipc_chan_free(cc);
        ipc_chan_free(sc);
    }

    CASE("chan-2.10", "sealing in place (output over the input) still round-trips");
    CHECK_EQ(handshake(ckp, skp, auth, &cc, &sc, err, spk), 0);
    {
        uint8_t buf[64 + IPC_CHAN_ABYTES], back[64];
        size_t n;
        for (int i = 0; i < 64; i++) buf[i] = (uint8_t)i;
        CHECK_EQ(ipc_chan_seal(err, cc, buf, 64, buf), 0); /* overlapping: the libsodium path */
        CHECK_EQ(ipc_chan_open(err, sc, buf, sizeof buf, back, &n), 0);
        CHECK_EQ(n, 64);
        CHECK_EQ(back[63], 63);
    }
    ipc_chan_free(cc);
    ipc_chan_free(sc);

    CASE("chan-2.11", "prepared keystreams: used once, dropped for big frames, interoperate with libsodium");
    CHECK_EQ(handshake(ckp, skp, auth, &cc, &sc, err, spk), 0);
    ipc_chan_set_fast(sc, false);
    ipc_chan_prepare(sc, IPC_CHAN_TX | IPC_CHAN_RX); /* no-op on a libsodium-only channel */
    {
        /* sizes on both sides of the 4-block keystream (128) and of the fused limit (384): a
         * prepared keystream that outlived its nonce, or served a frame it was too short for,
         * would make the libsodium peer's MAC check fail */
        static const size_t sizes[] = {16, 128, 129, 384, 385, 1000, 0, 35};
        static uint8_t pt[1000], ct[1000 + IPC_CHAN_ABYTES], back[1000];
        int mismatched = 0;
        for (int i = 0; i < 2 * IPC_REKEY_FRAMES + 20; i++) {
            size_t len = sizes[i % 8], n = 0;
            for (size_t j = 0; j < len; j++) pt[j] = (uint8_t)(j + (size_t)i);
            if (i % 3) ipc_chan_prepare(cc, i % 3 == 1 ? IPC_CHAN_TX | IPC_CHAN_RX : IPC_CHAN_RX);
            if (i % 5 == 0) ipc_chan_prepare(cc, IPC_CHAN_TX); /* twice: the second does nothing */
            ipc_chan *tx = i & 1 ? cc : sc, *rx = i & 1 ? sc : cc;
            if (ipc_chan_seal(err, tx, pt, len, ct) || ipc_chan_open(err, rx, ct, len + IPC_CHAN_ABYTES, back, &n) ||
                n != len || (len && memcmp(pt, back, len)))
                mismatched++;
        }
        CHECK_EQ(mismatched, 0);
        /* two equal plaintexts in a row never get the same ciphertext (no keystream reuse) */
        uint8_t c1[16 + IPC_CHAN_ABYTES], c2[16 + IPC_CHAN_ABYTES];
        memset(pt, 'x', 16);
        ipc_chan_prepare(cc, IPC_CHAN_TX);
        CHECK_EQ(ipc_chan_seal(err, cc, pt, 16, c1), 0);
        ipc_chan_prepare(cc, IPC_CHAN_TX);
        CHECK_EQ(ipc_chan_seal(err, cc, pt, 16, c2), 0);
        CHECK(memcmp(c1 + 1, c2 + 1, 16) != 0);
        size_t n;
        CHECK_EQ(ipc_chan_open(err, sc, c1, sizeof c1, back, &n), 0);
        CHECK_EQ(ipc_chan_open(err, sc, c2, sizeof c2, back, &n), 0);
        /* a failed channel prepares nothing and stays failed */
        CHECK_EQ(ipc_chan_seal(err, cc, pt, 16, c1), 0);
        c1[4] ^= 1;
        CHECK_EQ(ipc_chan_open(err, sc, c1, sizeof c1, back, &n), AWQ_ECRYPTO);
        ipc_chan_prepare(cc, IPC_CHAN_TX | IPC_CHAN_RX);
        ipc_chan_set_fast(sc, true);
        ipc_chan_prepare(sc, IPC_CHAN_TX | IPC_CHAN_RX);
        CHECK_EQ(ipc_chan_open(err, sc, c1, sizeof c1, back, &n), AWQ_ECRYPTO);
        CHECK_CONTAINS(err, "already failed");
    }
    ipc_chan_free(cc);
    ipc_chan_free(sc);

    CASE("chan-2.5", "a client key not in authorized keys is refused by the server");
    CHECK_EQ(handshake(okp, skp, auth, &cc, &sc, err, spk), AWQ_EPERM);
    CHECK_CONTAINS(err, "is not in the server's authorized keys");

    CASE("chan-2.6", "a server presenting a key it does not hold is refused by the client");
    {
        ipc_hs *c = ipc_hs_client_create(ckp), *s = ipc_hs_server_create(skp, auth);
        uint8_t m1[IPC_HS1_LEN], m2[IPC_HS2_LEN], m3[IPC_HS3_LEN];
        CHECK_EQ(ipc_hs_client_msg1(err, c, m1), 0);
        CHECK_EQ(ipc_hs_server_msg1(err, s, m1, sizeof m1, m2), 0);
        memcpy(m2 + 4 + 32, okp->pk, 32); /* claims to be "other" */
        CHECK_EQ(ipc_hs_client_msg2(err, c, m2, sizeof m2, spk, m3), AWQ_ECRYPTO);
        CHECK_CONTAINS(err, "server failed to prove it holds its key");
        CHECK(ipc_hs_take_channel(c) == NULL);
        ipc_hs_free(c);
        ipc_hs_free(s);
    }

    CASE("chan-2.7", "a tampered client confirmation and malformed messages are refused");
    {
        ipc_hs *c = ipc_hs_client_create(ckp), *s = ipc_hs_server_create(skp, auth);
        uint8_t m1[IPC_HS1_LEN], m2[IPC_HS2_LEN], m3[IPC_HS3_LEN];
        CHECK_EQ(ipc_hs_client_msg1(err, c, m1), 0);
        CHECK_EQ(ipc_hs_server_msg1(err, s, m1, sizeof m1, m2), 0);
        CHECK_EQ(ipc_hs_client_msg2(err, c, m2, sizeof m2, spk, m3), 0);
        m3[10] ^= 1;
        CHECK_EQ(ipc_hs_server_msg3(err, s, m3, sizeof m3), AWQ_ECRYPTO);
        CHECK_CONTAINS(err, "client failed to prove it holds its key");
        ipc_hs_free(c);
        ipc_hs_free(s);
        s = ipc_hs_server_create(skp, auth);
        CHECK_EQ(ipc_hs_server_msg1(err, s, m1, 10, m2), AWQ_EPROTO);
        CHECK_CONTAINS(err, "malformed first message");
        CHECK_EQ(ipc_hs_server_msg3(err, s, m3, sizeof m3), AWQ_ESTATE);
        ipc_hs_free(s);
        /* a low-order (all-zero) ephemeral key is refused */
        s = ipc_hs_server_create(skp, auth);
        memset(m1 + 4, 0, 32);
        CHECK_EQ(ipc_hs_server_msg1(err, s, m1, sizeof m1, m2), AWQ_ECRYPTO);
        CHECK_CONTAINS(err, "low-order point");
        ipc_hs_free(s);
    }

    CASE("chan-3.1", "known servers: first use pins, same key passes, a changed key is refused loudly");
    {
        bool added = false;
        const char *ks = path_of("known_servers");
        CHECK_EQ(ipc_known_check(err, ks, "/run/awqd/awqd.sock", skp->pk, &added), 0);
        CHECK(added);
#ifndef _WIN32
        struct stat ks_st;
        CHECK(stat(ks, &ks_st) == 0 && (ks_st.st_mode & 0777) == 0600);
#endif
        CHECK_EQ(ipc_known_check(err, ks, "/run/awqd/awqd.sock", skp->pk, &added), 0);
        CHECK(!added);
        CHECK_EQ(ipc_known_check(err, ks, "/other.sock", okp->pk, &added), 0); /* another server */
        CHECK(added);
        CHECK_EQ(ipc_known_check(err, ks, "/run/awqd/awqd.sock", okp->pk, &added), AWQ_ECRYPTO);
        CHECK_CONTAINS(err, "WARNING: SERVER KEY CHANGED for /run/awqd/awqd.sock");
        CHECK_CONTAINS(err, "remove line 1 of");
        write_text(ks, "/run/awqd/awqd.sock zz\n");
        CHECK_EQ(ipc_known_check(err, ks, "/run/awqd/awqd.sock", skp->pk, &added), AWQ_EFORMAT);
        CHECK_CONTAINS(err, "known_servers:1: expected");
    }

    ipc_authkeys_free(auth);
    ipc_keypair_free(skp);
    ipc_keypair_free(ckp);
    ipc_keypair_free(okp);
#ifndef _WIN32 /* no rm there; the build tree's leftovers are harmless */
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) { /* leftover temp files are harmless */ }
#endif
    return h_finish();
}
