/* keys.c - key files, authorized keys, known servers, fingerprints; see keys.h. */
#include "keys.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "awq_util.h"
#include "keyfile.h"
#include "plat.h"

#define KEYFILE_MAX (1u << 20) /* authorized_keys / known_servers files larger than this are refused */

int ipc_crypto_init(char *err) {
    if (sodium_init() < 0) return awq_seterr(err, AWQ_ECRYPTO, "libsodium failed to initialise");
    return 0;
}

int ipc_key_parse(const char *s, size_t len, uint8_t pk[IPC_KEY_BYTES]) {
    if (len < 64) return AWQ_EFORMAT;
    if (len > 64 && s[64] != ' ' && s[64] != '\t' && s[64] != '\n' && s[64] != '\r') return AWQ_EFORMAT;
    size_t bin_len = 0;
    if (sodium_hex2bin(pk, IPC_KEY_BYTES, s, 64, NULL, &bin_len, NULL) != 0 || bin_len != IPC_KEY_BYTES)
        return AWQ_EFORMAT;
    return 0;
}

void ipc_fingerprint(const uint8_t pk[IPC_KEY_BYTES], char out[IPC_FP_LEN]) {
    static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
    uint8_t h[20];
    crypto_generichash(h, sizeof h, pk, IPC_KEY_BYTES, NULL, 0);
    size_t o = 0;
    /* 160 bits = 32 base32 digits, grouped by 8 for reading aloud */
    for (int i = 0; i < 32; i++) {
        int bit = i * 5, byte = bit / 8, sh = bit % 8;
        unsigned v = (unsigned)h[byte] << 8 | (byte + 1 < 20 ? h[byte + 1] : 0);
        v = (v >> (11 - sh)) & 31;
        if (i && i % 8 == 0) out[o++] = '-';
        out[o++] = b32[v];
    }
    out[o] = 0;
}

/* ------------------------------------------------------------ secret key files ---- */

int ipc_keypair_load(char *err, const char *sk_path, ipc_keypair **out) {
    *out = NULL;
    int rc = ipc_crypto_init(err);
    if (rc) return rc;
    char text[160]; /* holds the hex form of the secret: wiped below */
    size_t n = 0;
    if ((rc = ipc_keyfile_read_private(err, sk_path, text, sizeof text, &n))) {
        sodium_memzero(text, sizeof text);
        return rc;
    }
    ipc_keypair *kp = sodium_malloc(sizeof *kp);
    if (!kp) {
        sodium_memzero(text, sizeof text);
        return awq_seterr(err, AWQ_ENOMEM, "key file %s: out of secure memory", sk_path);
    }
    rc = ipc_key_parse(text, n, kp->sk);
    sodium_memzero(text, sizeof text);
    if (rc) {
        ipc_keypair_free(kp);
        return awq_seterr(err, AWQ_EFORMAT, "key file %s: expected 64 hex digits", sk_path);
    }
    crypto_scalarmult_base(kp->pk, kp->sk);
    *out = kp;
    return 0;
}

void ipc_keypair_free(ipc_keypair *kp) {
    if (kp) sodium_free(kp); /* sodium_free wipes the memory */
}

int ipc_keygen(char *err, const char *sk_path, const char *pk_path) {
    int rc = ipc_crypto_init(err);
    if (rc) return rc;
    ipc_keypair *kp = sodium_malloc(sizeof *kp);
    char *hex = sodium_malloc(80);
    if (!kp || !hex) {
        if (kp) sodium_free(kp);
        if (hex) sodium_free(hex);
        return awq_seterr(err, AWQ_ENOMEM, "keygen: out of secure memory");
    }
    crypto_box_keypair(kp->pk, kp->sk);
    sodium_bin2hex(hex, 65, kp->sk, IPC_KEY_BYTES);
    hex[64] = '\n';
    rc = ipc_keyfile_create(err, sk_path, hex, 65, true);
    if (!rc) {
        char fp[IPC_FP_LEN], pub[160];
        sodium_bin2hex(pub, 65, kp->pk, IPC_KEY_BYTES);
        ipc_fingerprint(kp->pk, fp);
        int n = snprintf(pub + 64, sizeof pub - 64, " awq:%s\n", fp);
        rc = ipc_keyfile_create(err, pk_path, pub, 64 + (size_t)n, false);
        if (rc) remove(sk_path);
    }
    sodium_free(hex);
    sodium_free(kp);
    return rc;
}

int ipc_pubkey_load(char *err, const char *path, uint8_t pk[IPC_KEY_BYTES]) {
    char *data;
    size_t len;
    int rc = plat_read_file(err, path, 4096, &data, &len);
    if (rc) return rc;
    rc = ipc_key_parse(data, len, pk);
    free(data);
    if (rc) return awq_seterr(err, AWQ_EFORMAT, "public key file %s: expected 64 hex digits", path);
    return 0;
}

/* ------------------------------------------------------------ authorized keys ---- */

struct ipc_authkeys {
    size_t n;
    uint8_t (*keys)[IPC_KEY_BYTES];
};

int ipc_authkeys_load(char *err, const char *path, ipc_authkeys **out) {
    *out = NULL;
    char *data;
    size_t len;
    int rc = plat_read_file(err, path, KEYFILE_MAX, &data, &len);
    if (rc) return rc;
    ipc_authkeys *a = calloc(1, sizeof *a);
    /* at most one key per 65 bytes */
    if (a) a->keys = malloc((len / 65 + 1) * IPC_KEY_BYTES);
    if (!a || !a->keys) {
        free(data);
        ipc_authkeys_free(a);
        return awq_seterr(err, AWQ_ENOMEM, "%s: out of memory", path);
    }
    size_t line = 0;
    for (char *p = data; p < data + len;) {
        char *nl = memchr(p, '\n', (size_t)(data + len - p));
        size_t ll = nl ? (size_t)(nl - p) : (size_t)(data + len - p);
        line++;
        while (ll && (*p == ' ' || *p == '\t')) p++, ll--;
        if (ll && *p != '#' && !(ll == 1 && *p == '\r')) {
            if (ipc_key_parse(p, ll, a->keys[a->n])) {
                free(data);
                ipc_authkeys_free(a);
                return awq_seterr(err, AWQ_EFORMAT, "%s:%zu: expected a 64-hex-digit public key", path, line);
            }
            a->n++;
        }
        p += ll + 1;
    }
    free(data);
    *out = a;
    return 0;
}

bool ipc_authkeys_has(const ipc_authkeys *a, const uint8_t pk[IPC_KEY_BYTES]) {
    if (!a) return false;
    bool found = false;
    for (size_t i = 0; i < a->n; i++) /* constant time per key; no early exit */
        found |= sodium_memcmp(a->keys[i], pk, IPC_KEY_BYTES) == 0;
    return found;
}

size_t ipc_authkeys_count(const ipc_authkeys *a) { return a ? a->n : 0; }

void ipc_authkeys_free(ipc_authkeys *a) {
    if (!a) return;
    free(a->keys);
    free(a);
}

/* ------------------------------------------------------------ known servers ---- */

int ipc_known_check(char *err, const char *path, const char *server, const uint8_t pk[IPC_KEY_BYTES],
                    bool *added) {
    *added = false;
    char *data = NULL;
    size_t len = 0;
    int rc = plat_read_file(err, path, KEYFILE_MAX, &data, &len);
    if (rc == AWQ_ENOTFOUND) {
        data = NULL;
        len = 0;
    } else if (rc) {
        return rc;
    }
    size_t slen = strlen(server);
    size_t line = 0;
    for (char *p = data; p && p < data + len;) {
        char *nl = memchr(p, '\n', (size_t)(data + len - p));
        size_t ll = nl ? (size_t)(nl - p) : (size_t)(data + len - p);
        line++;
        if (ll > slen + 1 && memcmp(p, server, slen) == 0 && p[slen] == ' ') {
            uint8_t pinned[IPC_KEY_BYTES];
            if (ipc_key_parse(p + slen + 1, ll - slen - 1, pinned)) {
                free(data);
                return awq_seterr(err, AWQ_EFORMAT, "%s:%zu: expected \"<server> <64 hex digits>\"", path, line);
            }
            free(data);
            if (sodium_memcmp(pinned, pk, IPC_KEY_BYTES) == 0) return 0;
            char fa[IPC_FP_LEN], fb[IPC_FP_LEN];
            ipc_fingerprint(pinned, fa);
            ipc_fingerprint(pk, fb);
            return awq_seterr(err, AWQ_ECRYPTO,
                              "WARNING: SERVER KEY CHANGED for %s! pinned %s, server presented %s. Someone may "
                              "be impersonating the server; refusing. If the change is expected, remove line "
                              "%zu of %s",
                              server, fa, fb, line, path);
        }
        p += ll + 1;
    }
    /* trust on first use: pin it */
    awq_buf b = {0};
    char hex[65];
    sodium_bin2hex(hex, sizeof hex, pk, IPC_KEY_BYTES);
    rc = awq_buf_append(&b, data ? data : "", len);
    if (!rc && len && data[len - 1] != '\n') rc = awq_buf_puts(&b, "\n");
    if (!rc) rc = awq_buf_printf(&b, "%s %s\n", server, hex);
    free(data);
    if (rc) {
        awq_buf_free(&b);
        return awq_seterr(err, rc, "%s: out of memory", path);
    }
    rc = plat_write_file_atomic(err, path, b.data, b.len, 0600);
    awq_buf_free(&b);
    if (rc) return rc;
    *added = true;
    return 0;
}
