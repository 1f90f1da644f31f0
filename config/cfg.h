/* cfg.h - awqd settings: one INI file (read through inih), built-in defaults, validation with
 * file:line errors, lookup of the file, in-place atomic saving and reload rules.
 *
 * Every key lives in one static table in cfg.c ({section, key, type, default, bounds, live,
 * doc}); defaults, parsing, printing, the docs (docs/configuration.md) and the example file
 * (config/awqd.ini.example) all follow it, and a unit test checks that the two documents name
 * every key with its default, so they cannot drift.
 *
 * File syntax (what inih accepts, narrowed so that saving can round-trip):
 *   [section]            one of server, model, generation, security, log
 *   key = value          or key: value; no quoting; leading/trailing blanks are dropped
 *   ; comment / # comment    whole-line comments; " ;" starts an inline comment
 * Indented lines are ordinary lines (inih's multi-line continuation is switched off by the
 * reader, so an indented "key = v" never silently joins the previous value). Each key may
 * appear once. Lines may be up to CFG_LINE_MAX bytes, values up to CFG_VALUE_MAX - 1.
 *
 * Thread safety: a cfg is plain data with no pointers; copy it to share it between threads.
 * Every function is reentrant (no global state; inih is only called through its stream API).
 */
#ifndef CFG_H
#define CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "awq_err.h"
#include "awq_util.h"

#define CFG_LINE_MAX 2048      /* longest line accepted in a settings file, in bytes */
#define CFG_VALUE_MAX 1024     /* room for one value, NUL included */
#define CFG_LIST_MAX 16        /* entries of a path list (model.roots) */
#define CFG_IDS_MAX 32         /* entries of an id list (server.allow_uids / allow_gids) */
#define CFG_FILE_MAX (1u << 20) /* largest settings file read (1 MiB) */
#define CFG_KEY_MAX 64         /* room for "section.key", NUL included */

size_t cfg_line_max(void);
size_t cfg_value_max(void);

enum cfg_device { CFG_DEVICE_AUTO = 0, CFG_DEVICE_CUDA = 1, CFG_DEVICE_CPU = 2 };
enum cfg_encryption { CFG_ENC_OFF = 0, CFG_ENC_ON = 1, CFG_ENC_REQUIRED = 2 };
enum cfg_log_level { CFG_LOG_ERROR = 0, CFG_LOG_WARN = 1, CFG_LOG_INFO = 2, CFG_LOG_DEBUG = 3 };

/* A list of numeric user or group ids. */
typedef struct cfg_ids {
    size_t n;
    uint32_t id[CFG_IDS_MAX];
} cfg_ids;

/* A list of absolute paths. */
typedef struct cfg_paths {
    size_t n;
    char item[CFG_LIST_MAX][CFG_VALUE_MAX];
} cfg_paths;

/* The effective settings. Empty strings mean "not set" (each key's doc says what that means).
 * Durations and timeouts are seconds (0 = off), sizes bytes. */
typedef struct cfg {
    struct cfg_server {
        char socket[CFG_VALUE_MAX];        /* "" = cfg_socket_path's platform default */
        char pipe[CFG_VALUE_MAX];          /* Windows named pipe \\.\pipe\<pipe> */
        cfg_ids allow_uids;                /* empty = only the daemon's own uid */
        cfg_ids allow_gids;
        char socket_group[CFG_VALUE_MAX];  /* group name or number; "" = none (mode 0600) */
        int64_t max_connections;
        int64_t max_frame_bytes;
        int64_t queue_depth;
        int64_t max_inflight_per_conn;
        int64_t idle_timeout_s;
    } server;
    struct cfg_model {
        char path[CFG_VALUE_MAX];          /* model dir to preload, "" = none */
        cfg_paths roots;                   /* dirs that `load` may use */
        int64_t context;
        int64_t threads;                   /* 0 = all cores */
        int device;                        /* enum cfg_device */
        int64_t keep_alive;                /* seconds; 0 = never unload */
        int64_t max_sequences;
        int64_t kv_cache_mb;               /* 0 = auto */
        bool cpu_fallback;
        bool prefill_fp16_weights;         /* CUDA: fp16 weight copies for prompts */
    } model;
    struct cfg_generation {
        int64_t max_tokens;
        double temperature;
        int64_t top_k;
        double top_p;
        double min_p;
        double repetition_penalty;
        int64_t seed;                      /* 0 = random */
    } generation;
    struct cfg_security {
        int encryption;                    /* enum cfg_encryption */
        char server_key[CFG_VALUE_MAX];
        char server_pub[CFG_VALUE_MAX];
        char authorized_keys[CFG_VALUE_MAX];
        char client_key[CFG_VALUE_MAX];
        char known_servers[CFG_VALUE_MAX];
    } security;
    struct cfg_log {
        int level;                         /* enum cfg_log_level */
        char file[CFG_VALUE_MAX];          /* "" = stderr */
        bool log_prompts;
    } log;
} cfg;

/* ---- the key table, for tools, docs and reload logic ---- */
enum cfg_type {
    CFG_T_NAME,     /* a name: letters, digits, '.', '_', '-' (length min..max) */
    CFG_T_PATH,     /* an absolute path, or empty */
    CFG_T_PATHS,    /* comma-separated absolute paths (at most CFG_LIST_MAX) */
    CFG_T_IDS,      /* comma-separated numeric ids (at most CFG_IDS_MAX) */
    CFG_T_INT,      /* a decimal integer, min..max */
    CFG_T_BYTES,    /* a size in bytes, optional suffix K, M, G (KiB, MiB, GiB), min..max */
    CFG_T_DURATION, /* "off" (0) or seconds, optional suffix s, m, h, d, min..max */
    CFG_T_FLOAT,    /* a decimal number, fmin..fmax */
    CFG_T_BOOL,     /* true/false, yes/no, on/off, 1/0 */
    CFG_T_ENUM,     /* one of choices ("auto|cuda|cpu"), stored as its index */
};

typedef struct cfg_keyinfo {
    const char *section;  /* "model" */
    const char *name;     /* "context" */
    enum cfg_type type;
    const char *def;      /* default, as written in a file ("" when empty) */
    int64_t min, max;     /* integer bounds; for names and lists, length or count bounds */
    double fmin, fmax;    /* CFG_T_FLOAT bounds */
    const char *choices;  /* CFG_T_ENUM: "auto|cuda|cpu"; else NULL */
    bool live;            /* takes effect on reload (SIGHUP) without a restart */
    size_t offset;        /* of the field in struct cfg */
    const char *doc;      /* one sentence for docs and --check-config */
} cfg_keyinfo;

/* The table (static storage) and its length, in file order. */
const cfg_keyinfo *cfg_keys(size_t *n_p) AWQ_NONNULL(1);
/* The entry of "section.key", or NULL. */
const cfg_keyinfo *cfg_key_find(const char *key) AWQ_NONNULL(1);
/* "integer", "size", "duration", "path", ... as docs/configuration.md names types. */
const char *cfg_type_name(enum cfg_type t);
/* The accepted range as shown in messages and docs ("128..1048576", "auto|cuda|cpu", "4K..1G",
 * "off..30d", or "" when any value of the type goes), into out (cap bytes). */
void cfg_key_range(const cfg_keyinfo *k, char *out, size_t cap) AWQ_NONNULL(1, 2);

/* ---- loading ---- */
/* Fill c with the built-in defaults. */
void cfg_defaults(cfg *c) AWQ_NONNULL(1);

/* Apply the settings of the file at path on top of c (call cfg_defaults first). On any error c
 * is left unchanged and err reads "path:line: [section] key: reason". Missing file:
 * AWQ_ENOTFOUND; bad syntax, unknown key or section, duplicate key: AWQ_EFORMAT; bad value:
 * AWQ_EINVAL or AWQ_ERANGE. */
AWQ_NODISCARD int cfg_load_file(char *err, const char *path, cfg *c) AWQ_NONNULL(2, 3);

/* The same for text[0..len) (need not be NUL-terminated; a NUL byte inside is an error); name
 * is what error messages call it. Borrows everything. */
AWQ_NODISCARD int cfg_load_string(char *err, const char *name, const char *text, size_t len, cfg *c)
    AWQ_NONNULL(2, 5);

/* Find the settings file: explicit_path (--config; may be NULL), else $AWQD_CONFIG, else the
 * user's ($XDG_CONFIG_HOME/awqd/awqd.ini or ~/.config/awqd/awqd.ini; on Windows
 * %APPDATA%\awqd\awqd.ini), else the system's (/etc/awqd/awqd.ini; %PROGRAMDATA%\awqd\awqd.ini).
 * The first that exists wins and is written to out (PLAT_PATH_MAX bytes); when none exists out
 * is "" and 0 is returned (built-in defaults apply). An explicit path or $AWQD_CONFIG naming a
 * missing file is AWQ_ENOTFOUND: the operator asked for that file. */
AWQ_NODISCARD int cfg_find_path(char *err, const char *explicit_path, char *out) AWQ_NONNULL(3);

/* cfg_defaults + cfg_find_path + cfg_load_file. path_out (PLAT_PATH_MAX, may be NULL) gets
 * the file used, "" for built-in defaults. */
AWQ_NODISCARD int cfg_load(char *err, const char *explicit_path, cfg *c, char *path_out) AWQ_NONNULL(3);

/* ---- keys by name ---- */
/* Write key's ("section.key") value, as it would be written in a file, to out (cap bytes).
 * AWQ_ENOTFOUND for an unknown key, AWQ_ETOOBIG when it does not fit. */
AWQ_NODISCARD int cfg_get(char *err, const cfg *c, const char *key, char *out, size_t cap)
    AWQ_NONNULL(2, 3, 4);

/* Validate value and store it into key; on error c is unchanged and err says why (the same
 * messages as a file gives, without the file:line). */
AWQ_NODISCARD int cfg_set(char *err, cfg *c, const char *key, const char *value) AWQ_NONNULL(2, 3, 4);

/* Whether key can change on reload without a restart (false for unknown keys). */
bool cfg_is_live(const char *key) AWQ_NONNULL(1);

/* ---- reload ---- */
/* Copy every live key from next into cur. The names of non-live keys whose values differ are
 * appended to restart (comma-separated) when it is not NULL, so the daemon can log "changed,
 * takes effect after a restart: ...". Returns the number of live keys that changed, or a
 * negative AWQ_E* when restart cannot grow. */
AWQ_NODISCARD int cfg_merge_live(cfg *cur, const cfg *next, awq_buf *restart) AWQ_NONNULL(1, 2);

/* ---- output ---- */
/* Append the settings as INI text to out: every key, or only those that differ from the
 * defaults. Each line carries "; default" for unchanged keys when all are printed. */
AWQ_NODISCARD int cfg_format(const cfg *c, bool only_changed, awq_buf *out) AWQ_NONNULL(1, 3);

/* Save c to path atomically (temp file, fsync, rename), keeping the existing file's comments,
 * blank lines, order and untouched values: each changed key's line is rewritten in place
 * (its inline comment kept), keys not yet in the file are appended to the end of their
 * section (a missing section is added at the end). Keys left at their default and absent from
 * the file stay absent. An existing file that does not parse is not overwritten (AWQ_EFORMAT,
 * with its file:line error). The new text is parsed back and compared before it is written. */
AWQ_NODISCARD int cfg_save(char *err, const cfg *c, const char *path) AWQ_NONNULL(2, 3);

/* The socket path to use: server.socket when set, else $XDG_RUNTIME_DIR/awqd/awqd.sock when
 * that variable is set, else /run/awqd/awqd.sock. out: PLAT_PATH_MAX bytes. */
AWQ_NODISCARD int cfg_socket_path(char *err, const cfg *c, char *out) AWQ_NONNULL(2, 3);

#endif
