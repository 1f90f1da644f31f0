/* awq.h - libawq, the client library of awqd: connect to the local daemon, stream generations,
 * and call every request of the wire protocol (docs/protocol.md).
 *
 * Thread safety: an awq_conn may be shared by several threads. Sends are serialised by one
 * mutex; one thread at a time reads the socket and routes what arrives to the waiting calls,
 * the request callbacks, or the queue read by awq_next_event. Callbacks run on whichever thread
 * is reading at that moment, one at a time; a callback must not call a blocking function of
 * the same connection (awq_cancel_async is fine). Different connections are independent.
 *
 * Errors: every function returns 0 or a negative AWQ_E* code (awq_strerror(code) names it);
 * the detail, including the server's own message, goes into err (AWQ_ERR_LEN bytes, may be NULL).
 * The codes are those of awq_err.h, the same numbers the server sends.
 *
 * WARNING: a client that sends requests without reading their events eventually blocks: the
 * server stops reading a connection whose output it cannot deliver. Read (awq_next_event,
 * awq_wait or a synchronous call) while streams are running.
 */
#ifndef AWQ_H
#define AWQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "awq_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AWQ_VERSION "0.1.0"
#define AWQ_PROTO_MAJOR 1
#define AWQ_FP_LEN 36 /* key fingerprint text, with the NUL */

typedef struct awq_conn awq_conn;

/* ------------------------------------------------------------ connecting ---- */

typedef struct awq_connect_opts {
    const char *socket_path;   /* NULL: $XDG_RUNTIME_DIR/awqd/awqd.sock, or /run/awqd/awqd.sock as root */
    int connect_timeout_ms;    /* handshake + hello; 0 = 5000 */
    int io_timeout_ms;         /* synchronous calls; 0 = 30000; < 0 = wait for ever */
    bool encrypt;              /* use the secure channel (needs key_path and known_servers) */
    const char *key_path;      /* the client's secret key file (mode 0600) */
    const char *known_servers; /* pinned server keys; a new server is pinned (trust on first use) */
    const char *client_name;   /* sent in hello; NULL = "libawq" */
    uint32_t max_frame;        /* largest frame accepted from the server; 0 = 64 MiB */
    /* Called when a server's key is pinned for the first time, with its fingerprint; NULL
     * prints a notice to stderr. */
    void (*on_new_server)(void *user, const char *server, const char *fingerprint);
    void *user;
} awq_connect_opts;

typedef struct awq_server_info {
    const char *server;  /* server version */
    const char *model;   /* loaded model ("" when none) */
    uint32_t proto_major, proto_minor;
    bool encrypted;
    char fingerprint[AWQ_FP_LEN]; /* server key fingerprint when encrypted, else "" */
    uint32_t max_frame_bytes, max_inflight;
} awq_server_info;

/* Connect, run the encryption handshake when asked, and say hello. *out is freed by awq_close. */
AWQ_NODISCARD int awq_connect(char *err, const awq_connect_opts *o, awq_conn **out) AWQ_NONNULL(2, 3);
/* Close the connection; requests in flight are abandoned (the server cancels them). NULL is fine. */
void awq_close(awq_conn *c);
/* What the server said in its hello (valid until awq_close). */
const awq_server_info *awq_info(const awq_conn *c) AWQ_NONNULL(1);

/* ------------------------------------------------------------ events ---- */

typedef enum awq_event_type {
    AWQ_EV_TOKEN = 1, /* text / ids of new tokens */
    AWQ_EV_DONE,      /* the generation ended: finish_reason, stats */
    AWQ_EV_ERROR,     /* the request failed: code, err_name, message */
    AWQ_EV_PROGRESS,  /* load progress: stage, pct */
    AWQ_EV_OTHER,     /* another response (e.g. "ok") for a request that has no synchronous caller */
} awq_event_type;

typedef struct awq_top {
    uint32_t id;
    float lp;
} awq_top;

typedef struct awq_logprob {
    uint32_t id;       /* the sampled token */
    float lp;          /* its log-probability */
    const awq_top *top; /* the n most likely alternatives */
    uint32_t n_top;
} awq_logprob;

typedef struct awq_stats {
    uint32_t prompt_tokens, gen_tokens;
    float ttft_ms, prefill_tok_s, decode_tok_s, total_ms;
} awq_stats;

/* Pointers inside an event are valid until awq_event_free (pull API) or until the callback
 * returns. Strings are NUL-terminated. */
typedef struct awq_event {
    awq_event_type type;
    uint32_t id;                 /* the request */
    const char *text;            /* TOKEN */
    size_t text_len;
    const uint32_t *ids;
    size_t n_ids;
    const awq_logprob *logprobs; /* one per id when asked for, else NULL */
    size_t n_logprobs;
    const char *finish_reason;   /* DONE: "stop", "length", "context", "cancel", "error" */
    awq_stats stats;
    int code;                    /* ERROR: AWQ_E* */
    const char *err_name;
    const char *message;
    const char *stage;           /* PROGRESS: "mapped", "validated", "uploaded", "ready" */
    float pct;
    const char *kind;            /* OTHER: the message type */
    void *priv_;
} awq_event;

typedef void (*awq_event_cb)(void *user, const awq_event *ev);

void awq_event_free(awq_event *ev);

/* Take the next event of a request that has no callback. AWQ_ETIMEDOUT after timeout_ms
 * (< 0: wait for ever), AWQ_ECLOSED when the connection ended. Free with awq_event_free. */
AWQ_NODISCARD int awq_next_event(char *err, awq_conn *c, int timeout_ms, awq_event *ev) AWQ_NONNULL(2, 4);
/* Read and dispatch events until request id has ended (its callback saw DONE or ERROR). */
AWQ_NODISCARD int awq_wait(char *err, awq_conn *c, uint32_t id, int timeout_ms) AWQ_NONNULL(2);

/* ------------------------------------------------------------ generation ---- */

typedef struct awq_message {
    const char *role;    /* "system", "user", "assistant" */
    const char *content;
} awq_message;

typedef struct awq_bias {
    uint32_t id;
    float bias;
} awq_bias;

/* Fill with awq_gen_req_init, then set what you need. Pointers are borrowed for the call. */
typedef struct awq_gen_req {
    const awq_message *messages; /* either chat messages (the server applies the template) ... */
    size_t n_messages;
    const char *prompt;          /* ... or a prompt string */
    bool raw;                    /* prompt used as is */
    int add_bos;                 /* -1 server decides, 0 no, 1 yes */
    uint32_t max_tokens;         /* 0 = server default */
    float temperature, top_p, min_p, typical_p;
    uint32_t top_k;
    float repetition_penalty, presence_penalty, frequency_penalty;
    uint32_t penalty_window;
    bool has_seed;
    uint64_t seed;
    const char *const *stop;
    size_t n_stop;
    const uint32_t *stop_ids;
    size_t n_stop_ids;
    const awq_bias *logit_bias;
    size_t n_logit_bias;
    bool ignore_eos;
    uint32_t logprobs;           /* top-n, 0..20 */
    bool stream;                 /* token events as they come (default) */
} awq_gen_req;

/* The protocol defaults (temperature 1, top_p 1, typical_p 1, repetition_penalty 1,
 * penalty_window 64, stream true, add_bos -1, everything else 0/NULL). */
void awq_gen_req_init(awq_gen_req *r) AWQ_NONNULL(1);

/* Start a generation; its id comes back in *id. With cb, events go to cb (driven by awq_wait,
 * awq_next_event or any synchronous call on the connection); with cb NULL, they are queued for
 * awq_next_event. */
AWQ_NODISCARD int awq_generate(char *err, awq_conn *c, const awq_gen_req *req, awq_event_cb cb, void *user,
                               uint32_t *id) AWQ_NONNULL(2, 3);
/* Cancel request id and wait for the server's answer; the request then ends with DONE
 * (finish_reason "cancel"). AWQ_ENOTFOUND when it is not running. */
AWQ_NODISCARD int awq_cancel(char *err, awq_conn *c, uint32_t id) AWQ_NONNULL(2);

/* ------------------------------------------------------------ synchronous calls ---- */

AWQ_NODISCARD int awq_ping(char *err, awq_conn *c) AWQ_NONNULL(2);

typedef enum awq_kv_kind { AWQ_KV_STR, AWQ_KV_INT, AWQ_KV_FLOAT, AWQ_KV_BOOL } awq_kv_kind;
typedef struct awq_kv {
    const char *key;
    awq_kv_kind kind;
    const char *s;
    int64_t i;
    double f;
    bool b;
} awq_kv;
typedef struct awq_map {
    awq_kv *kv;
    size_t n;
    void *priv_;
} awq_map;
void awq_map_free(awq_map *m);
/* The value of key in m, or NULL. */
const awq_kv *awq_map_get(const awq_map *m, const char *key);

AWQ_NODISCARD int awq_status(char *err, awq_conn *c, awq_map *out) AWQ_NONNULL(2, 3);
/* key NULL: every setting. Values are strings. */
AWQ_NODISCARD int awq_settings_get(char *err, awq_conn *c, const char *key, awq_map *out) AWQ_NONNULL(2, 4);
AWQ_NODISCARD int awq_settings_set(char *err, awq_conn *c, const char *key, const char *value) AWQ_NONNULL(2, 3, 4);

/* *ids is malloc'ed: free with awq_free. */
AWQ_NODISCARD int awq_tokenize(char *err, awq_conn *c, const char *text, size_t len, bool add_bos, bool special,
                               uint32_t **ids, size_t *n_ids) AWQ_NONNULL(2, 3, 7, 8);
/* *text is malloc'ed and NUL-terminated: free with awq_free. */
AWQ_NODISCARD int awq_detokenize(char *err, awq_conn *c, const uint32_t *ids, size_t n_ids, bool skip_special,
                                 char **text, size_t *len) AWQ_NONNULL(2, 6);
AWQ_NODISCARD int awq_template(char *err, awq_conn *c, const awq_message *msgs, size_t n, bool add_generation_prompt,
                               char **text) AWQ_NONNULL(2, 6);

typedef void (*awq_progress_cb)(void *user, const char *stage, float pct);
/* Load a model directory (under the server's model roots); progress may be NULL. */
AWQ_NODISCARD int awq_load(char *err, awq_conn *c, const char *path, awq_progress_cb progress, void *user)
    AWQ_NONNULL(2, 3);
AWQ_NODISCARD int awq_unload(char *err, awq_conn *c) AWQ_NONNULL(2);

typedef struct awq_model {
    const char *name, *path;
    uint64_t size;
    bool loaded;
} awq_model;
typedef struct awq_models {
    awq_model *models;
    size_t n;
    void *priv_;
} awq_models;
void awq_models_free(awq_models *m);
AWQ_NODISCARD int awq_list(char *err, awq_conn *c, awq_models *out) AWQ_NONNULL(2, 3);

/* Prometheus text exposition; free with awq_free. */
AWQ_NODISCARD int awq_metrics(char *err, awq_conn *c, char **text) AWQ_NONNULL(2, 3);
AWQ_NODISCARD int awq_shutdown(char *err, awq_conn *c) AWQ_NONNULL(2);

/* ------------------------------------------------------------ keys and misc ---- */

/* Generate an X25519 key pair: key_path (0600) and pub_path (0644); existing files are kept
 * (AWQ_EEXIST). */
AWQ_NODISCARD int awq_keygen(char *err, const char *key_path, const char *pub_path) AWQ_NONNULL(2, 3);
/* The fingerprint of the public key in pub_path. */
AWQ_NODISCARD int awq_key_fingerprint(char *err, const char *pub_path, char fp[AWQ_FP_LEN]) AWQ_NONNULL(2, 3);
/* The default socket path into out (n bytes). */
AWQ_NODISCARD int awq_default_socket_path(char *err, char *out, size_t n) AWQ_NONNULL(2);
void awq_free(void *p);

#ifdef __cplusplus
}
#endif
#endif
