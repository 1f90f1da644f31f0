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
 * Thread safety: a handshake belongs to one thread at a time; so does each half of a channel:
 * seal and ipc_chan_prepare(IPC_CHAN_TX) on one thread, open and IPC_CHAN_RX on one (libawq
 * seals under its write lock while its reader thread opens).
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

/* Frames of up to 384 plaintext bytes (pings, tokens, most control messages) are sealed and
 * opened by a fused copy of the same secretstream construction, byte-identical on the wire and
 * about 0.17 us faster per operation than libsodium's push/pull (channel.c says why). It is
 * checked against libsodium once per process before first use; on any mismatch every frame
 * goes through libsodium. Returns 1 when the fused path is in use, 0 when not (runs the check
 * when it has not run yet). Safe from any thread. */
int ipc_chan_fast_path(void);
/* Directions for ipc_chan_prepare. */
#define IPC_CHAN_TX 1u
#define IPC_CHAN_RX 2u
/* Make the keystream of the next frame sent (IPC_CHAN_TX) and/or received (IPC_CHAN_RX) now,
 * while the caller would otherwise wait, so that sealing or opening a frame of up to 128 bytes
 * later costs only the XOR and the MAC: call it after writing a frame and before blocking for
 * the next. The keystream is kept in the channel's locked memory, wiped when used, never used
 * twice. Does nothing on a failed channel or without the fused path. Threads: TX belongs to
 * whoever seals, RX to whoever opens (they may be different threads, as in libawq). */
void ipc_chan_prepare(ipc_chan *c, unsigned dirs);
/* on = false: this channel uses libsodium's push/pull for every frame (tests check the two
 * interoperate; benchmarks compare them). Channels start with on = true. */
void ipc_chan_set_fast(ipc_chan *c, bool on);

#endif
