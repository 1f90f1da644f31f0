/* channel.h - the optional secure channel: a mutually authenticated X25519 handshake with
 * forward secrecy (Noise-KK-like; docs/protocol.md "Encryption" has the exact construction and a
 * diagram), then crypto_secretstream_xchacha20poly1305 in each direction.
 *
 *   client                                         server
 *   msg1  01 'A' 'W' 'H' | E_c | S_c          -->  S_c must be in authorized_keys
 *                                             <--  msg2  02 'A' 'W' 'H' | E_s | S_s | tag_s | hdr_s2c
 *   S_s checked against known_servers (pin)
 *   msg3  03 'A' 'W' 'H' | tag_c | hdr_c2s    -->  tag_c checked
 *   ... every later frame payload: secretstream(msgpack) ...
 *
 * Any failed tag, replayed, reordered or truncated frame makes ipc_chan_open fail; the caller
 * closes the connection (the stream state cannot recover, by design).
 * Every secret (static, ephemeral, DH results, session keys, stream states) is in sodium_malloc
 * memory and wiped when freed.
 *
 * Thread safety: a handshake or channel belongs to one thread at a time.
 */
#ifndef IPC_CHANNEL_H
#define IPC_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "awq_err.h"
#include "keys.h"

#define IPC_HS1_LEN 68
#define IPC_HS2_LEN 124
#define IPC_HS3_LEN 60
/* Bytes a sealed frame adds to its plaintext (secretstream tag + MAC). */
#define IPC_CHAN_ABYTES 17
/* The sender marks every IPC_REKEY_FRAMES-th frame with the REKEY tag: both sides then derive
 * a new key, so a key never protects more than this many frames. */
#define IPC_REKEY_FRAMES 1024

typedef struct ipc_hs ipc_hs;
typedef struct ipc_chan ipc_chan;

/* True when a first frame payload is a handshake msg1 (its first byte 0x01 can never start a
 * msgpack map, so plaintext and encrypted clients are told apart by one byte). */
bool ipc_hs_is_msg1(const uint8_t *p, size_t n);

/* Handshakes borrow kp (and auth): they must outlive the handshake. NULL when out of memory. */
ipc_hs *ipc_hs_client_create(const ipc_keypair *kp);
ipc_hs *ipc_hs_server_create(const ipc_keypair *kp, const ipc_authkeys *auth);
void ipc_hs_free(ipc_hs *hs);

/* Client: write msg1. */
AWQ_NODISCARD int ipc_hs_client_msg1(char *err, ipc_hs *hs, uint8_t out[IPC_HS1_LEN]);
/* Server: read msg1 (client key must be authorized: AWQ_EPERM otherwise), write msg2. */
AWQ_NODISCARD int ipc_hs_server_msg1(char *err, ipc_hs *hs, const uint8_t *in, size_t n,
                                     uint8_t out[IPC_HS2_LEN]);
/* Client: read msg2, verify that the server holds the static key it presents (tag_s), return
 * that key in server_pk and write msg3. The caller MUST compare server_pk with its pin before
 * sending msg3. */
AWQ_NODISCARD int ipc_hs_client_msg2(char *err, ipc_hs *hs, const uint8_t *in, size_t n,
                                     uint8_t server_pk[IPC_KEY_BYTES], uint8_t out[IPC_HS3_LEN]);
/* Server: read msg3 and verify tag_c. */
AWQ_NODISCARD int ipc_hs_server_msg3(char *err, ipc_hs *hs, const uint8_t *in, size_t n);
/* The peer's static public key (valid after msg1 on the server, msg2 on the client). */
void ipc_hs_peer_key(const ipc_hs *hs, uint8_t pk[IPC_KEY_BYTES]);
/* After a completed handshake: take the channel (the handshake keeps nothing). NULL before. */
ipc_chan *ipc_hs_take_channel(ipc_hs *hs);

/* Seal pt[0..n) into out (n + IPC_CHAN_ABYTES bytes). */
AWQ_NODISCARD int ipc_chan_seal(char *err, ipc_chan *c, const uint8_t *pt, size_t n, uint8_t *out);
/* Open ct[0..n) into out (n - IPC_CHAN_ABYTES bytes, *out_len). AWQ_ECRYPTO on a bad tag,
 * replay, reorder or a frame marked final; the channel is unusable afterwards. */
AWQ_NODISCARD int ipc_chan_open(char *err, ipc_chan *c, const uint8_t *ct, size_t n, uint8_t *out,
                                size_t *out_len);
void ipc_chan_free(ipc_chan *c);

#endif
