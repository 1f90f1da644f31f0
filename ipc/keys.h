/* keys.h - X25519 key files, the server's authorized client keys, the client's pinned server
 * keys (known_servers, trust on first use) and key fingerprints.
 *
 * File formats (docs/protocol.md "Key files"):
 *   secret key:      64 hex digits (the X25519 secret), newline; mode 0600, owned by the user
 *   public key:      64 hex digits, optional " comment", newline
 *   authorized_keys: one public key per line (64 hex, optional comment); '#' starts a comment line
 *   known_servers:   "<server> <64 hex>" per line, <server> being the socket path
 * A secret key file that group or others may read is refused, like ssh does. Secrets live in
 * sodium_malloc memory (guard pages, mlock where allowed) and are wiped on free.
 *
 * Thread safety: loaded objects are read-only and may be shared between threads.
 */
#ifndef IPC_KEYS_H
#define IPC_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "awq_err.h"

#define IPC_KEY_BYTES 32
/* Fingerprint text: base32 (RFC 4648, lowercase, no padding) of BLAKE2b-160 of the public key,
 * in 4 groups of 8 joined by '-': 35 characters and the NUL. */
#define IPC_FP_LEN 36

typedef struct ipc_keypair {
    uint8_t pk[IPC_KEY_BYTES];
    uint8_t sk[IPC_KEY_BYTES];
} ipc_keypair;

/* Initialise libsodium (idempotent, thread-safe). AWQ_ECRYPTO when it cannot start. */
AWQ_NODISCARD int ipc_crypto_init(char *err);

/* Load a secret key file (and derive its public key). Refuses a file that is not a regular
 * file, is owned by another user or has any group/other permission bit (AWQ_EPERM, with the
 * chmod advice). *out is sodium_malloc'd; free with ipc_keypair_free. */
AWQ_NODISCARD int ipc_keypair_load(char *err, const char *sk_path, ipc_keypair **out) AWQ_NONNULL(2, 3);
void ipc_keypair_free(ipc_keypair *kp);

/* Generate a key pair and write sk_path (0600) and pk_path (0644). Existing files are not
 * overwritten (AWQ_EEXIST). */
AWQ_NODISCARD int ipc_keygen(char *err, const char *sk_path, const char *pk_path) AWQ_NONNULL(2, 3);

/* Read a public key file. */
AWQ_NODISCARD int ipc_pubkey_load(char *err, const char *path, uint8_t pk[IPC_KEY_BYTES]) AWQ_NONNULL(2, 3);

/* Parse 64 hex digits at s (followed by end, space or newline). */
AWQ_NODISCARD int ipc_key_parse(const char *s, size_t len, uint8_t pk[IPC_KEY_BYTES]);

void ipc_fingerprint(const uint8_t pk[IPC_KEY_BYTES], char out[IPC_FP_LEN]);

/* The server's allowed client keys. */
typedef struct ipc_authkeys ipc_authkeys;
AWQ_NODISCARD int ipc_authkeys_load(char *err, const char *path, ipc_authkeys **out) AWQ_NONNULL(2, 3);
bool ipc_authkeys_has(const ipc_authkeys *a, const uint8_t pk[IPC_KEY_BYTES]);
size_t ipc_authkeys_count(const ipc_authkeys *a);
void ipc_authkeys_free(ipc_authkeys *a);

/* Check server's key against the known_servers file at path.
 * - a matching entry: 0, *added = false
 * - no entry for server: the key is pinned (file created/rewritten atomically, 0600), 0 and
 *   *added = true; the caller shows the fingerprint (trust on first use)
 * - an entry with another key: AWQ_ECRYPTO with a loud message naming both fingerprints. */
AWQ_NODISCARD int ipc_known_check(char *err, const char *path, const char *server,
                                  const uint8_t pk[IPC_KEY_BYTES], bool *added) AWQ_NONNULL(2, 3, 4, 5);

#endif
