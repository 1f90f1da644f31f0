/* msg.h - the messages of the awqd wire protocol as plain C structs, with a strict decoder and
 * an encoder for every message type. docs/protocol.md is the specification; this file follows it.
 *
 * Decoding: ipc_msg_decode validates the payload (ipc_mp_validate: depth, counts, UTF-8, trailing
 * bytes), then reads "t" and "id" and the fields of that type. Unknown fields are ignored; a
 * known field of the wrong type or out of its range is an error naming the field. All decoded
 * strings and arrays live in one arena owned by the message: ipc_msg_free releases everything.
 * Decoded strings are NUL-terminated (len excludes the NUL) but may contain NUL bytes.
 *
 * Encoding: fill an ipc_msg (pointers borrowed, nothing freed) and call ipc_msg_encode.
 *
 * Thread safety: pure; a message belongs to one thread at a time.
 */
#ifndef IPC_MSG_H
#define IPC_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "awq_err.h"
#include "awq_util.h"

#define IPC_PROTO_MAJOR 1
#define IPC_PROTO_MINOR 0

/* ---- limits (docs/protocol.md "Limits") ---- */
#define IPC_MAX_MESSAGES 1024      /* chat messages per request */
#define IPC_MAX_STOP 16            /* stop strings */
#define IPC_MAX_STOP_LEN 256       /* bytes per stop string */
#define IPC_MAX_STOP_IDS 64
#define IPC_MAX_BIAS 1024          /* logit_bias entries */
#define IPC_MAX_LOGPROBS 20        /* top-n logprobs */
#define IPC_MAX_TOKENS (1u << 20)  /* max_tokens */
#define IPC_MAX_FEATURES 64
#define IPC_MAX_NAME 256           /* bytes of a name, role, key, stage, finish reason */

typedef enum ipc_type {
    IPC_T_UNKNOWN = 0,
    IPC_T_HELLO,
    IPC_T_PING,
    IPC_T_PONG,
    IPC_T_GENERATE,
    IPC_T_TOKEN,
    IPC_T_DONE,
    IPC_T_ERROR,
    IPC_T_CANCEL,
    IPC_T_OK,
    IPC_T_TOKENIZE,
    IPC_T_TOKENIZE_R,
    IPC_T_DETOKENIZE,
    IPC_T_DETOKENIZE_R,
    IPC_T_TEMPLATE,
    IPC_T_TEMPLATE_R,
    IPC_T_LOAD,
    IPC_T_PROGRESS,
    IPC_T_UNLOAD,
    IPC_T_LIST,
    IPC_T_LIST_R,
    IPC_T_STATUS,
    IPC_T_STATUS_R,
    IPC_T_SETTINGS_GET,
    IPC_T_SETTINGS_R,
    IPC_T_SETTINGS_SET,
    IPC_T_METRICS,
    IPC_T_METRICS_R,
    IPC_T_SHUTDOWN,
    IPC_T_COUNT
} ipc_type;

/* The wire name of a type ("generate"), or NULL; and back (IPC_T_UNKNOWN when unknown). */
const char *ipc_type_name(ipc_type t);
ipc_type ipc_type_from_name(const char *s, size_t len);
/* True for messages a client sends (requests), false for server messages. */
bool ipc_type_is_request(ipc_type t);
/* True when a server message ends its request (everything but token and progress events). */
bool ipc_type_is_terminal(ipc_type t);

typedef struct ipc_str {
    const char *s; /* NULL when absent */
    uint32_t len;
} ipc_str;

typedef struct ipc_chat {
    ipc_str role, content;
} ipc_chat;

typedef enum ipc_kv_kind { IPC_KV_STR, IPC_KV_INT, IPC_KV_FLOAT, IPC_KV_BOOL } ipc_kv_kind;
/* One entry of a string-keyed map of scalars (status, limits, settings). */
typedef struct ipc_kv {
    ipc_str key;
    ipc_kv_kind kind;
    ipc_str s;
    int64_t i;
    double f;
    bool b;
} ipc_kv;

typedef struct ipc_hello {
    uint32_t proto_major, proto_minor;
    ipc_str client;   /* client -> server: client name */
    ipc_str server;   /* server -> client: server version */
    ipc_str model;    /* server -> client: loaded model name ("" when none) */
    ipc_str *features;
    uint32_t n_features;
    ipc_kv *limits;   /* server -> client: name -> integer */
    uint32_t n_limits;
} ipc_hello;

typedef struct ipc_bias {
    uint32_t id;
    float bias;
} ipc_bias;

typedef struct ipc_gen {
    ipc_chat *messages; /* either messages ... */
    uint32_t n_messages;
    ipc_str prompt;     /* ... or a raw prompt */
    bool raw;           /* prompt is used as is, no chat template */
    int add_bos;        /* -1 = server decides (default), 0 no, 1 yes */
    uint32_t max_tokens; /* 0 = server default */
    float temperature, top_p, min_p, typical_p;
    uint32_t top_k;
    float repetition_penalty, presence_penalty, frequency_penalty;
    uint32_t penalty_window;
    bool has_seed;
    uint64_t seed;
    ipc_str *stop;
    uint32_t n_stop;
    uint32_t *stop_ids;
    uint32_t n_stop_ids;
    ipc_bias *logit_bias;
    uint32_t n_logit_bias;
    bool ignore_eos;
    uint32_t logprobs; /* top-n alternatives per token, 0 = none */
    bool stream;       /* token events (true, default) or one token event before done */
} ipc_gen;

typedef struct ipc_top {
    uint32_t id;
    float lp;
} ipc_top;

typedef struct ipc_lp {
    uint32_t id;
    float lp;
    ipc_top *top;
    uint32_t n_top;
} ipc_lp;

typedef struct ipc_token {
    ipc_str text;
    uint32_t *ids;
    uint32_t n_ids;
    ipc_lp *lps; /* NULL unless logprobs were asked for; one per id */
    uint32_t n_lps;
} ipc_token;

typedef enum ipc_finish {
    IPC_FINISH_STOP, IPC_FINISH_LENGTH, IPC_FINISH_CONTEXT, IPC_FINISH_CANCEL, IPC_FINISH_ERROR
} ipc_finish;
const char *ipc_finish_name(ipc_finish f);

typedef struct ipc_stats {
    uint32_t prompt_tokens, gen_tokens;
    float ttft_ms, prefill_tok_s, decode_tok_s, total_ms;
} ipc_stats;

typedef struct ipc_done {
    ipc_finish finish;
    ipc_stats stats;
} ipc_done;

typedef struct ipc_error {
    int code;        /* AWQ_E* */
    ipc_str name;    /* awq_errname(code) on encode when NULL */
    ipc_str message;
} ipc_error;

typedef struct ipc_tokenize {
    ipc_str text;
    bool add_bos;  /* default true */
    bool special;  /* parse special-token text like "</s>" (default false) */
} ipc_tokenize;

typedef struct ipc_ids {
    uint32_t *ids;
    uint32_t n_ids;
    bool skip_special; /* detokenize: drop special tokens (default false) */
} ipc_ids;

typedef struct ipc_template {
    ipc_chat *messages;
    uint32_t n_messages;
    bool add_generation_prompt; /* default true */
} ipc_template;

typedef enum ipc_stage { IPC_STAGE_MAPPED, IPC_STAGE_VALIDATED, IPC_STAGE_UPLOADED, IPC_STAGE_READY } ipc_stage;
const char *ipc_stage_name(ipc_stage s);

typedef struct ipc_progress {
    ipc_stage stage;
    float pct; /* 0..100 */
} ipc_progress;

typedef struct ipc_model_info {
    ipc_str name, path;
    uint64_t size;
    bool loaded;
} ipc_model_info;

typedef struct ipc_models {
    ipc_model_info *models;
    uint32_t n_models;
} ipc_models;

typedef struct ipc_kvs {
    ipc_kv *kv;
    uint32_t n_kv;
} ipc_kvs;

typedef struct ipc_setting {
    ipc_str key;   /* settings_get: NULL = all */
    ipc_str value;
} ipc_setting;

typedef struct ipc_msg {
    ipc_type type;
    uint32_t id; /* request id (1..2^32-1); 0 = none (connection-level error) */
    union {
        ipc_hello hello;       /* HELLO */
        ipc_gen gen;           /* GENERATE */
        ipc_token token;       /* TOKEN */
        ipc_done done;         /* DONE */
        ipc_error error;       /* ERROR */
        uint32_t target;       /* CANCEL */
        ipc_tokenize tokenize; /* TOKENIZE */
        ipc_ids ids;           /* TOKENIZE_R, DETOKENIZE */
        ipc_str text;          /* DETOKENIZE_R, TEMPLATE_R, METRICS_R, LOAD (path) */
        ipc_template tmpl;     /* TEMPLATE */
        ipc_progress progress; /* PROGRESS */
        ipc_models models;     /* LIST_R */
        ipc_kvs kvs;           /* STATUS_R, SETTINGS_R (string values) */
        ipc_setting setting;   /* SETTINGS_GET, SETTINGS_SET */
    } u;
    void *arena_; /* decoded storage, private */
} ipc_msg;

/* Zero m and set its type and id, with the protocol's defaults for generate/tokenize/template. */
void ipc_msg_init(ipc_msg *m, ipc_type type, uint32_t id);

/* Decode one frame payload into *m (initialised here; call ipc_msg_free afterwards, also on
 * failure). Returns 0 or: AWQ_EPROTO/AWQ_EUTF8 (malformed), AWQ_EUNSUPPORTED (unknown "t"),
 * AWQ_EINVAL/AWQ_ERANGE (a field of the wrong type / out of range), AWQ_ENOMEM. On failure
 * m->type and m->id are still set when they could be read, so the error can be answered. */
AWQ_NODISCARD int ipc_msg_decode(char *err, const uint8_t *p, size_t n, ipc_msg *m) AWQ_NONNULL(2, 4);

/* Release what decoding allocated; m may be NULL. */
void ipc_msg_free(ipc_msg *m);

/* Append the msgpack payload of m (no frame header) to out. Returns 0, AWQ_EINVAL (unknown type,
 * a field over its limit), AWQ_ENOMEM. */
AWQ_NODISCARD int ipc_msg_encode(char *err, const ipc_msg *m, awq_buf *out) AWQ_NONNULL(2, 3);

/* Convenience: an ipc_str of a C string (NULL stays absent). */
ipc_str ipc_cstr(const char *s);

#endif
