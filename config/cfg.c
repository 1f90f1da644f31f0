/* cfg.c - awqd settings: the key table, value parsing and printing, the INI reader on top of
 * inih, and keys by name. Saving is in cfg_save.c, the file lookup in cfg_find.c; the parts
 * they share with this file are declared in cfg_parse.h. */
#include "cfg.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#ifdef AWQ_HAVE_INIH
#include <ini.h>
#endif
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg_parse.h"
#include "ini_min.h" /* without inih (the Windows cross build): the same parser, ours */
#include "plat.h"

size_t cfg_line_max(void) { return CFG_LINE_MAX; }
size_t cfg_value_max(void) { return CFG_VALUE_MAX; }

/* ------------------------------------------------------------------ the key table ---- */

#define OFF(f) offsetof(cfg, f)
#define KIB 1024LL
#define MIB (1024LL * 1024)
#define GIB (1024LL * 1024 * 1024)
#define DAY 86400LL

/* clang-format off */
#define NAME(s, k, f, d, lo, hi, live, doc)  {s, k, CFG_T_NAME, d, lo, hi, 0, 0, NULL, live, OFF(f), doc}
#define PATH(s, k, f, d, live, doc)          {s, k, CFG_T_PATH, d, 0, CFG_VALUE_MAX - 1, 0, 0, NULL, live, OFF(f), doc}
#define PATHS(s, k, f, d, live, doc)         {s, k, CFG_T_PATHS, d, 0, CFG_LIST_MAX, 0, 0, NULL, live, OFF(f), doc}
#define IDS(s, k, f, d, live, doc)           {s, k, CFG_T_IDS, d, 0, CFG_IDS_MAX, 0, 0, NULL, live, OFF(f), doc}
#define INT(s, k, f, d, lo, hi, live, doc)   {s, k, CFG_T_INT, d, lo, hi, 0, 0, NULL, live, OFF(f), doc}
#define BYTES(s, k, f, d, lo, hi, live, doc) {s, k, CFG_T_BYTES, d, lo, hi, 0, 0, NULL, live, OFF(f), doc}
#define DUR(s, k, f, d, lo, hi, live, doc)   {s, k, CFG_T_DURATION, d, lo, hi, 0, 0, NULL, live, OFF(f), doc}
#define FLT(s, k, f, d, lo, hi, live, doc)   {s, k, CFG_T_FLOAT, d, 0, 0, lo, hi, NULL, live, OFF(f), doc}
#define BOOL(s, k, f, d, live, doc)          {s, k, CFG_T_BOOL, d, 0, 1, 0, 0, NULL, live, OFF(f), doc}
#define ENUM(s, k, f, d, ch, live, doc)      {s, k, CFG_T_ENUM, d, 0, 0, 0, 0, ch, live, OFF(f), doc}

/* The one list of keys. Live keys are those the daemon reads at the point of use (each new
 * connection, request or log line), so a reload that copies them in (cfg_merge_live) is all it
 * takes; everything that sizes memory, opens files or sockets, or changes identity needs a
 * restart. */
static const cfg_keyinfo keys[] = {
    PATH("server", "socket", server.socket, "", false,
         "Path of the listening Unix socket; empty: $XDG_RUNTIME_DIR/awqd/awqd.sock, else /run/awqd/awqd.sock (ignored under socket activation)."),
    NAME("server", "pipe", server.pipe, "awqd", 1, 200, false,
         "Windows named pipe name: the daemon listens on \\\\.\\pipe\\<pipe>."),
    IDS("server", "allow_uids", server.allow_uids, "", true,
        "User ids allowed to connect besides the daemon's own uid (comma-separated numbers; checked with SO_PEERCRED)."),
    IDS("server", "allow_gids", server.allow_gids, "", true,
        "Group ids whose members may connect (a peer's primary gid is checked)."),
    NAME("server", "socket_group", server.socket_group, "", 0, 200, false,
         "Group that owns the socket, which then gets mode 0660 instead of 0600; empty: none."),
    INT("server", "max_connections", server.max_connections, "1024", 1, 65536, true,
        "Most client connections at once; further connections are refused with busy."),
    BYTES("server", "max_frame_bytes", server.max_frame_bytes, "16M", 4 * KIB, GIB, false,
          "Largest frame a client may send, checked before any allocation."),
    INT("server", "queue_depth", server.queue_depth, "256", 1, 65536, false,
        "Requests waiting for the engine at most; more get busy at once."),
    INT("server", "max_inflight_per_conn", server.max_inflight_per_conn, "64", 1, 4096, false,
        "Unfinished requests one connection may have."),
    INT("server", "idle_timeout_s", server.idle_timeout_s, "0", 0, 7 * DAY, true,
        "Close a connection with no request in flight after this many seconds of silence; 0: never."),

    PATH("model", "path", model.path, "", false,
         "Model directory (Hugging Face layout, AutoAWQ GEMM) to load at start; empty: none."),
    PATHS("model", "roots", model.roots, "", true,
          "Comma-separated directories under which `load` may open models; empty: only model.path."),
    INT("model", "context", model.context, "4096", 128, 1048576, false,
        "Context length in tokens (prompt plus generation) per sequence."),
    INT("model", "threads", model.threads, "0", 0, 1024, false,
        "CPU threads for the CPU backend and loading; 0: all cores."),
    ENUM("model", "device", model.device, "auto", "auto|cuda|cpu", false,
         "Compute backend: auto picks CUDA when a usable GPU is present."),
    DUR("model", "keep_alive", model.keep_alive, "off", 0, 30 * DAY, true,
        "Unload the model after this long without requests (\"5m\", \"1h\", seconds); off: never."),
    INT("model", "max_sequences", model.max_sequences, "64", 1, 4096, false,
        "Sequences decoded together in one batch at most."),
    INT("model", "kv_cache_mb", model.kv_cache_mb, "0", 0, 16 * 1024 * 1024, false,
        "KV cache size in MiB; 0: sized from free device memory at load."),
    BOOL("model", "cpu_fallback", model.cpu_fallback, "true", false,
         "With device = auto, run on the CPU when no GPU can be used instead of failing."),
    BOOL("model", "prefill_fp16_weights", model.prefill_fp16_weights, "false", false,
         "CUDA: also keep an fp16 copy of the weights for prompts and large batches (13 GiB more for "
         "a 7B model, ~3.8x its 4-bit linears): no dequant pass per step."),

    INT("generation", "max_tokens", generation.max_tokens, "512", 1, 1048576, true,
        "Default limit of generated tokens when a request gives none."),
    FLT("generation", "temperature", generation.temperature, "0.7", 0.0, 5.0, true,
        "Default sampling temperature; 0: greedy."),
    INT("generation", "top_k", generation.top_k, "40", 0, 1000000, true,
        "Default top-k; 0: off."),
    FLT("generation", "top_p", generation.top_p, "0.95", 0.0, 1.0, true,
        "Default nucleus (top-p) threshold; 1: off."),
    FLT("generation", "min_p", generation.min_p, "0.05", 0.0, 1.0, true,
        "Default min-p threshold relative to the top token; 0: off."),
    FLT("generation", "repetition_penalty", generation.repetition_penalty, "1", 0.01, 10.0, true,
        "Default repetition penalty; 1: off."),
    INT("generation", "seed", generation.seed, "0", 0, INT64_MAX, true,
        "Default sampling seed; 0: a random seed per request."),

    ENUM("security", "encryption", security.encryption, "off", "off|on|required", false,
         "Encrypted channel: off, on (offered to clients that ask), required (plain clients refused)."),
    PATH("security", "server_key", security.server_key, "", false,
         "Server private key file (owner-only); empty: server.key in the state directory."),
    PATH("security", "server_pub", security.server_pub, "", false,
         "Server public key file; empty: server.pub beside server_key."),
    PATH("security", "authorized_keys", security.authorized_keys, "", false,
         "Client public keys allowed when encryption is on; empty: any client key."),
    PATH("security", "client_key", security.client_key, "", false,
         "Client side: the client's private key file; empty: client.key in the user config directory."),
    PATH("security", "known_servers", security.known_servers, "", false,
         "Client side: pinned server public keys; empty: known_servers in the user config directory."),

    ENUM("log", "level", log.level, "info", "error|warn|info|debug", true,
         "Least severe messages logged."),
    PATH("log", "file", log.file, "", false,
         "Log file; empty: standard error (the journal under systemd)."),
    BOOL("log", "log_prompts", log.log_prompts, "false", true,
         "Log prompts and generated text (off by default for privacy)."),
};
/* clang-format on */

#define NKEYS (sizeof keys / sizeof keys[0])

static const char *const sections[] = {"server", "model", "generation", "security", "log"};
#define NSECTIONS (sizeof sections / sizeof sections[0])

const cfg_keyinfo *cfg_keys(size_t *n_p) {
    *n_p = NKEYS;
    return keys;
}

size_t cfg_nkeys(void) { return NKEYS; }

const cfg_keyinfo *cfg_key_find(const char *key) {
    const char *dot = strchr(key, '.');
    if (!dot) return NULL;
    size_t sl = (size_t)(dot - key);
    for (size_t i = 0; i < NKEYS; i++)
        if (strlen(keys[i].section) == sl && memcmp(keys[i].section, key, sl) == 0 &&
            strcmp(keys[i].name, dot + 1) == 0)
            return &keys[i];
    return NULL;
}

int cfg_key_index(const char *section, const char *name) {
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(keys[i].section, section) == 0 && strcmp(keys[i].name, name) == 0) return (int)i;
    return -1;
}

bool cfg_section_known(const char *s, size_t len) {
    for (size_t i = 0; i < NSECTIONS; i++)
        if (strlen(sections[i]) == len && memcmp(sections[i], s, len) == 0) return true;
    return false;
}

const char *cfg_type_name(enum cfg_type t) {
    switch (t) {
    case CFG_T_NAME: return "name";
    case CFG_T_PATH: return "path";
    case CFG_T_PATHS: return "path list";
    case CFG_T_IDS: return "id list";
    case CFG_T_INT: return "integer";
    case CFG_T_BYTES: return "size";
    case CFG_T_DURATION: return "duration";
    case CFG_T_FLOAT: return "number";
    case CFG_T_BOOL: return "bool";
    case CFG_T_ENUM: return "enum";
    }
    return "?";
}

/* ------------------------------------------------------------------ value text ---- */

/* A value as it may be shown inside quotes in a message: at most 48 bytes, control bytes as
 * '?', so hostile input cannot forge log lines. */
void cfg_quote(const char *v, char out[CFG_QUOTE_LEN]) {
    size_t n = 0, len = strlen(v);
    for (; n < len && n < CFG_QUOTE_LEN - 4; n++) {
        unsigned char ch = (unsigned char)v[n];
        out[n] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    if (n < len) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = 0;
}

static void fmt_bytes(int64_t v, char *out, size_t cap) {
    if (v != 0 && v % GIB == 0) snprintf(out, cap, "%lldG", (long long)(v / GIB));
    else if (v != 0 && v % MIB == 0) snprintf(out, cap, "%lldM", (long long)(v / MIB));
    else if (v != 0 && v % KIB == 0) snprintf(out, cap, "%lldK", (long long)(v / KIB));
    else snprintf(out, cap, "%lld", (long long)v);
}

static void fmt_duration(int64_t v, char *out, size_t cap) {
    if (v == 0) snprintf(out, cap, "off");
    else if (v % DAY == 0) snprintf(out, cap, "%lldd", (long long)(v / DAY));
    else if (v % 3600 == 0) snprintf(out, cap, "%lldh", (long long)(v / 3600));
    else if (v % 60 == 0) snprintf(out, cap, "%lldm", (long long)(v / 60));
    else snprintf(out, cap, "%llds", (long long)v);
}

/* The shortest %g text that reads back as exactly v, so saved files stay tidy ("0.7", not
 * "0.69999999999999996"). */
static void fmt_double(double v, char *out, size_t cap) {
    /* plain digits when some precision gives them ("10", not "1e+01"), else the exponent form */
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, v);
        if (strtod(out, NULL) == v && !strchr(out, 'e')) return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, v);
        if (strtod(out, NULL) == v) return;
    }
}

void cfg_key_range(const cfg_keyinfo *k, char *out, size_t cap) {
    char a[32], b[32];
    out[0] = 0;
    switch (k->type) {
    case CFG_T_INT: snprintf(out, cap, "%lld..%lld", (long long)k->min, (long long)k->max); break;
    case CFG_T_BYTES:
        fmt_bytes(k->min, a, sizeof a);
        fmt_bytes(k->max, b, sizeof b);
        snprintf(out, cap, "%s..%s", a, b);
        break;
    case CFG_T_DURATION:
        fmt_duration(k->min, a, sizeof a);
        fmt_duration(k->max, b, sizeof b);
        snprintf(out, cap, "%s..%s", a, b);
        break;
    case CFG_T_FLOAT:
        fmt_double(k->fmin, a, sizeof a);
        fmt_double(k->fmax, b, sizeof b);
        snprintf(out, cap, "%s..%s", a, b);
        break;
    case CFG_T_ENUM: snprintf(out, cap, "%s", k->choices); break;
    case CFG_T_BOOL: snprintf(out, cap, "true|false"); break;
    case CFG_T_NAME:
        snprintf(out, cap, "%lld..%lld bytes of A-Z a-z 0-9 . _ -", (long long)k->min, (long long)k->max);
        break;
    case CFG_T_PATHS: snprintf(out, cap, "at most %d absolute paths", CFG_LIST_MAX); break;
    case CFG_T_IDS: snprintf(out, cap, "at most %d ids of 0..4294967294", CFG_IDS_MAX); break;
    case CFG_T_PATH: snprintf(out, cap, "absolute path or empty"); break;
    }
}

/* Whether v could be written as "key = v" and read back unchanged: inih drops leading and
 * trailing blanks and cuts at an inline " ;" comment; we refuse control bytes and bad UTF-8. */
int cfg_check_text(char *err, const char *v) {
    size_t len = strlen(v);
    if (len >= CFG_VALUE_MAX)
        return awq_seterr(err, AWQ_ETOOBIG, "value is %zu bytes long (at most %d)", len, CFG_VALUE_MAX - 1);
    if (!awq_utf8_valid(v, len)) return awq_seterr(err, AWQ_EUTF8, "value is not valid UTF-8");
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)v[i];
        if (ch < 0x20 || ch == 0x7f) return awq_seterr(err, AWQ_EINVAL, "value contains a control character");
        if (ch == ';' && i > 0 && isspace((unsigned char)v[i - 1]))
            return awq_seterr(err, AWQ_EINVAL, "value contains ' ;', which would start a comment");
    }
    if (len && (isspace((unsigned char)v[0]) || isspace((unsigned char)v[len - 1])))
        return awq_seterr(err, AWQ_EINVAL, "value has leading or trailing blanks");
    return 0;
}

/* Is p an absolute path for this OS? The Windows branch accepts drive paths (C:\x, C:/x) and UNC
 * paths; POSIX needs a leading '/'. Relative paths are refused because the daemon's working
 * directory (/ under systemd) is not where the operator wrote the file. */
static bool is_absolute(const char *p) {
#ifdef _WIN32
    if (isalpha((unsigned char)p[0]) && p[1] == ':' && (p[2] == '\\' || p[2] == '/')) return true;
    return p[0] == '\\' && p[1] == '\\';
#else
    return p[0] == '/';
#endif
}

/* Split a comma list in place into trimmed items; returns the count or -1 for an empty item
 * or too many items. */
static int split_list(char *s, char **items, int max) {
    int n = 0;
    if (!*s) return 0;
    for (char *p = s;;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = 0;
        while (isspace((unsigned char)*p)) p++;
        char *e = p + strlen(p);
        while (e > p && isspace((unsigned char)e[-1])) *--e = 0;
        if (!*p || n == max) return -1;
        items[n++] = p;
        if (!comma) break;
        p = comma + 1;
    }
    return n;
}

static int parse_i64(const char *v, int64_t *out) {
    if (!*v) return -1;
    errno = 0;
    char *end;
    long long x = strtoll(v, &end, 10);
    if (*end || errno == ERANGE) return -1;
    *out = x;
    return 0;
}

static int strcasecmp_ascii(const char *a, const char *b) {
    for (;; a++, b++) {
        int ca = tolower((unsigned char)*a), cb = tolower((unsigned char)*b);
        if (ca != cb) return ca - cb;
        if (!ca) return 0;
    }
}

/* The number with an optional unit suffix; mult gives each suffix's factor. */
static int parse_scaled(const char *v, const char *const *suffixes, const int64_t *mult, int64_t *out) {
    if (!*v || !(isdigit((unsigned char)v[0]))) return -1;
    errno = 0;
    char *end;
    long long x = strtoll(v, &end, 10);
    if (errno == ERANGE) return -1;
    int64_t m = 1;
    if (*end) {
        int found = 0;
        for (int i = 0; suffixes[i]; i++) {
            if (strcasecmp_ascii(end, suffixes[i]) == 0) {
                m = mult[i];
                found = 1;
                break;
            }
        }
        if (!found) return -1;
    }
    if (x > INT64_MAX / m) return -1;
    *out = x * m;
    return 0;
}

/* Parse v for key k into the field at dst (the real field, written only on success). The
 * message names the key but not the file position, which the caller adds. */
int cfg_parse_value(char *err, const cfg_keyinfo *k, const char *v, void *dst) {
    char q[CFG_QUOTE_LEN], range[96];
    char why[AWQ_ERR_LEN];
    int rc = cfg_check_text(why, v);
    if (rc) return awq_seterr(err, rc, "[%s] %s: %s", k->section, k->name, why);
    cfg_quote(v, q);
    cfg_key_range(k, range, sizeof range);
    switch (k->type) {
    case CFG_T_NAME: {
        size_t len = strlen(v);
        bool ok = (int64_t)len >= k->min && (int64_t)len <= k->max;
        for (size_t i = 0; ok && i < len; i++)
            ok = isalnum((unsigned char)v[i]) || v[i] == '.' || v[i] == '_' || v[i] == '-';
        if (!ok)
            return awq_seterr(err, AWQ_EINVAL, "[%s] %s: '%s' is not a valid name (expected %s)", k->section,
                              k->name, q, range);
        memcpy(dst, v, len + 1);
        return 0;
    }
    case CFG_T_PATH:
        if (*v && !is_absolute(v))
            return awq_seterr(err, AWQ_EINVAL, "[%s] %s: '%s' is not an absolute path", k->section, k->name, q);
        memcpy(dst, v, strlen(v) + 1);
        return 0;
    case CFG_T_PATHS: {
        char tmp[CFG_VALUE_MAX], *items[CFG_LIST_MAX];
        snprintf(tmp, sizeof tmp, "%s", v);
        int n = split_list(tmp, items, CFG_LIST_MAX);
        if (n < 0)
            return awq_seterr(err, AWQ_EINVAL, "[%s] %s: '%s' has an empty entry or more than %d entries",
                              k->section, k->name, q, CFG_LIST_MAX);
        cfg_paths out = {0};
        for (int i = 0; i < n; i++) {
            if (!is_absolute(items[i])) {
                cfg_quote(items[i], q);
                return awq_seterr(err, AWQ_EINVAL, "[%s] %s: '%s' is not an absolute path", k->section, k->name, q);
            }
            snprintf(out.item[i], CFG_VALUE_MAX, "%s", items[i]);
        }
        out.n = (size_t)n;
        memcpy(dst, &out, sizeof out);
        return 0;
    }
    case CFG_T_IDS: {
        char tmp[CFG_VALUE_MAX], *items[CFG_IDS_MAX];
        snprintf(tmp, sizeof tmp, "%s", v);
        int n = split_list(tmp, items, CFG_IDS_MAX);
        if (n < 0)
            return awq_seterr(err, AWQ_EINVAL, "[%s] %s: '%s' has an empty entry or more than %d entries",
                              k->section, k->name, q, CFG_IDS_MAX);
        cfg_ids out = {0};
        for (int i = 0; i < n; i++) {
            int64_t x;
            if (!isdigit((unsigned char)items[i][0]) || parse_i64(items[i], &x) || x > 4294967294LL) {
                cfg_quote(items[i], q);
                return awq_seterr(err, AWQ_EINVAL, "[%s] %s: '%s' is not a numeric id (0..4294967294)",
                                  k->section, k->name, q);
            }
            out.id[i] = (uint32_t)x;
        }
        out.n = (size_t)n;
        memcpy(dst, &out, sizeof out);
        return 0;
    }
    case CFG_T_INT: {
        int64_t x;
        if (parse_i64(v, &x))
            return awq_seterr(err, AWQ_EINVAL, "[%s] %s: '%s' is not an integer (expected %s)", k->section, k->name,
                              q, range);
        if (x < k->min || x > k->max)
            return awq_seterr(err, AWQ_ERANGE, "[%s] %s: %s is out of range (expected %s)", k->section, k->name, q,
                              range);
        memcpy(dst, &x, sizeof x);
        return 0;
    }
    case CFG_T_BYTES: {
        static const char *const suf[] = {"b", "k", "kib", "kb", "m", "mib", "mb", "g", "gib", "gb", NULL};
        static const int64_t mul[] = {1, KIB, KIB, KIB, MIB, MIB, MIB, GIB, GIB, GIB};
        int64_t x;
        if (parse_scaled(v, suf, mul, &x))
            return awq_seterr(err, AWQ_EINVAL, "[%s] %s: '%s' is not a size (bytes, or a number with K, M or G; expected %s)",
                              k->section, k->name, q, range);
        if (x < k->min || x > k->max)
            return awq_seterr(err, AWQ_ERANGE, "[%s] %s: %s is out of range (expected %s)", k->section, k->name, q,
                              range);
        memcpy(dst, &x, sizeof x);
        return 0;
    }
    case CFG_T_DURATION: {
        static const char *const suf[] = {"s", "m", "h", "d", NULL};
        static const int64_t mul[] = {1, 60, 3600, DAY};
        int64_t x;
        if (strcasecmp_ascii(v, "off") == 0) x = 0;
        else if (parse_scaled(v, suf, mul, &x))
            return awq_seterr(err, AWQ_EINVAL, "[%s] %s: '%s' is not a duration (off, seconds, or a number with s, m, h or d; expected %s)",
                              k->section, k->name, q, range);
        if (x < k->min || x > k->max)
            return awq_seterr(err, AWQ_ERANGE, "[%s] %s: %s is out of range (expected %s)", k->section, k->name, q,
                              range);
        memcpy(dst, &x, sizeof x);
        return 0;
    }
    case CFG_T_FLOAT: {
        /* strtod follows LC_NUMERIC; awqd never calls setlocale, so '.' is the separator */
        errno = 0;
        char *end;
        double x = strtod(v, &end);
        if (!*v || *end || !isfinite(x))
            return awq_seterr(err, AWQ_EINVAL, "[%s] %s: '%s' is not a number (expected %s)", k->section, k->name, q,
                              range);
        if (x < k->fmin || x > k->fmax)
            return awq_seterr(err, AWQ_ERANGE, "[%s] %s: %s is out of range (expected %s)", k->section, k->name, q,
                              range);
        memcpy(dst, &x, sizeof x);
        return 0;
    }
    case CFG_T_BOOL: {
        static const char *const words[] = {"true", "yes", "on", "1", "false", "no", "off", "0"};
        for (int i = 0; i < 8; i++) {
            if (strcasecmp_ascii(v, words[i]) == 0) {
                bool b = i < 4;
                memcpy(dst, &b, sizeof b);
                return 0;
            }
        }
        return awq_seterr(err, AWQ_EINVAL, "[%s] %s: '%s' is not a boolean (true or false)", k->section, k->name, q);
    }
    case CFG_T_ENUM: {
        size_t vl = strlen(v);
        int idx = 0;
        for (const char *p = k->choices;; idx++) {
            const char *bar = strchr(p, '|');
            size_t l = bar ? (size_t)(bar - p) : strlen(p);
            if (l == vl && memcmp(p, v, l) == 0) {
                memcpy(dst, &idx, sizeof idx);
                return 0;
            }
            if (!bar) break;
            p = bar + 1;
        }
        return awq_seterr(err, AWQ_EINVAL, "[%s] %s: '%s' is not one of %s", k->section, k->name, q, k->choices);
    }
    }
    return awq_seterr(err, AWQ_EINTERNAL, "[%s] %s: unknown type", k->section, k->name);
}

/* Write the value of k in c as file text into out (cap bytes); AWQ_ETOOBIG if it does not fit. */
int cfg_format_value(const cfg_keyinfo *k, const cfg *c, char *out, size_t cap) {
    const char *f = (const char *)c + k->offset;
    char tmp[CFG_VALUE_MAX * 2];
    tmp[0] = 0;
    switch (k->type) {
    case CFG_T_NAME:
    case CFG_T_PATH: snprintf(tmp, sizeof tmp, "%s", f); break;
    case CFG_T_PATHS: {
        const cfg_paths *p = (const cfg_paths *)(const void *)f;
        size_t used = 0;
        for (size_t i = 0; i < p->n && used < sizeof tmp; i++)
            used += (size_t)snprintf(tmp + used, sizeof tmp - used, "%s%s", i ? "," : "", p->item[i]);
        break;
    }
    case CFG_T_IDS: {
        const cfg_ids *p = (const cfg_ids *)(const void *)f;
        size_t used = 0;
        for (size_t i = 0; i < p->n && used < sizeof tmp; i++)
            used += (size_t)snprintf(tmp + used, sizeof tmp - used, "%s%u", i ? "," : "", (unsigned)p->id[i]);
        break;
    }
    case CFG_T_INT: {
        int64_t x;
        memcpy(&x, f, sizeof x);
        snprintf(tmp, sizeof tmp, "%lld", (long long)x);
        break;
    }
    case CFG_T_BYTES: {
        int64_t x;
        memcpy(&x, f, sizeof x);
        fmt_bytes(x, tmp, sizeof tmp);
        break;
    }
    case CFG_T_DURATION: {
        int64_t x;
        memcpy(&x, f, sizeof x);
        fmt_duration(x, tmp, sizeof tmp);
        break;
    }
    case CFG_T_FLOAT: {
        double x;
        memcpy(&x, f, sizeof x);
        fmt_double(x, tmp, sizeof tmp);
        break;
    }
    case CFG_T_BOOL: {
        bool b;
        memcpy(&b, f, sizeof b);
        snprintf(tmp, sizeof tmp, "%s", b ? "true" : "false");
        break;
    }
    case CFG_T_ENUM: {
        int idx;
        memcpy(&idx, f, sizeof idx);
        const char *p = k->choices;
        for (int i = 0; i < idx && p; i++) {
            p = strchr(p, '|');
            if (p) p++;
        }
        if (!p) return AWQ_EINTERNAL;
        const char *bar = strchr(p, '|');
        snprintf(tmp, sizeof tmp, "%.*s", bar ? (int)(bar - p) : (int)strlen(p), p);
        break;
    }
    }
    size_t len = strlen(tmp);
    if (len >= cap || len >= sizeof tmp - 1) return AWQ_ETOOBIG;
    memcpy(out, tmp, len + 1);
    return 0;
}

/* ------------------------------------------------------------------ the INI reader ---- */

/* Parse state handed to inih as both the stream and the handler's user pointer. We feed inih
 * one line per reader call, so our line count is the line inih is working on when it calls
 * the handler (inih 55 as Debian builds it has no INI_HANDLER_LINENO). */
struct pctx {
    const char *name;           /* file name for messages */
    const char *p, *end;        /* input not yet handed out */
    int line;                   /* number of the line last handed to inih */
    cfg *c;                     /* working copy; committed by the caller on success */
    int key_line[sizeof keys / sizeof keys[0]]; /* line each key was set on, 0 if not */
    int err_line;               /* first error found by us, 0 if none */
    int err_code;
    char err[AWQ_ERR_LEN];
    bool stash_on;              /* this line was too long for inih's buffer: value is in stash */
    char stash[CFG_LINE_MAX + 1];
};

static void pfail(struct pctx *x, int code, const char *fmt, ...) AWQ_PRINTF(3, 4);
static void pfail(struct pctx *x, int code, const char *fmt, ...) {
    if (x->err_line) return;
    x->err_line = x->line;
    x->err_code = code;
    /* "file:line: " first; a very long file name cuts the reason short, never the position */
    int n = snprintf(x->err, sizeof x->err, "%s:%d: ", x->name, x->line);
    if (n < 0 || (size_t)n >= sizeof x->err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->err + n, sizeof x->err - (size_t)n, fmt, ap);
    va_end(ap);
}

/* A section header line (leading blanks gone): check its name now, so that an unknown empty
 * section is reported too, at its own line. */
static void check_header(struct pctx *x, const char *s, size_t len) {
    const char *close = memchr(s, ']', len);
    char q[CFG_QUOTE_LEN], tmp[CFG_QUOTE_LEN];
    if (!close) {
        pfail(x, AWQ_EFORMAT, "section header has no closing ']'");
        return;
    }
    size_t nl = (size_t)(close - s - 1);
    if (!cfg_section_known(s + 1, nl)) {
        snprintf(tmp, sizeof tmp, "%.*s", (int)(nl < sizeof tmp - 1 ? nl : sizeof tmp - 1), s + 1);
        cfg_quote(tmp, q);
        pfail(x, AWQ_EFORMAT, "unknown section [%s] (expected [server], [model], [generation], [security] or [log])", q);
    }
}

/* Split a line too long for inih ourselves, exactly as inih would: the name ends at the first
 * '=' or ':', the value loses leading blanks, an inline comment (';' after a blank) and
 * trailing blanks. inih then gets "name=" and the handler takes the value from the stash. */
static size_t split_long(struct pctx *x, const char *s, size_t len, char *buf, size_t room) {
    size_t i = 0;
    for (; i < len; i++) {
        if (s[i] == '=' || s[i] == ':') break;
        if (s[i] == ';' && i > 0 && isspace((unsigned char)s[i - 1])) i = len;
    }
    if (i >= len) {
        pfail(x, AWQ_EFORMAT, "a %zu-byte line that is neither a [section] nor a key = value line", len);
        return 0;
    }
    size_t nl = i;
    while (nl > 0 && isspace((unsigned char)s[nl - 1])) nl--;
    if (nl + 2 > room) {
        pfail(x, AWQ_EFORMAT, "unknown key (a %zu-byte name)", nl);
        return 0;
    }
    const char *v = s + i + 1, *ve = s + len;
    while (v < ve && isspace((unsigned char)*v)) v++;
    for (const char *p = v + 1; p < ve; p++)
        if (*p == ';' && isspace((unsigned char)p[-1])) {
            ve = p;
            break;
        }
    while (ve > v && isspace((unsigned char)ve[-1])) ve--;
    memcpy(x->stash, v, (size_t)(ve - v));
    x->stash[ve - v] = 0;
    x->stash_on = true;
    memcpy(buf, s, nl);
    buf[nl] = '=';
    buf[nl + 1] = '\n';
    buf[nl + 2] = 0;
    return nl + 2;
}

/* inih's reader: hand out the next line. Leading blanks are removed so inih never takes an
 * indented line as a continuation of the previous value. After our first error we stop. */
static char *reader(char *buf, int num, void *stream) {
    struct pctx *x = stream;
    if (x->err_line || x->p >= x->end) return NULL;
    const char *nl = memchr(x->p, '\n', (size_t)(x->end - x->p));
    const char *s = x->p;
    size_t len = nl ? (size_t)(nl - s) : (size_t)(x->end - s);
    x->p = nl ? nl + 1 : x->end;
    x->line++;
    x->stash_on = false;
    if (num < 8) { /* no inih build has a buffer this small; refuse rather than overflow */
        pfail(x, AWQ_EINTERNAL, "inih line buffer of %d bytes is too small", num);
        return NULL;
    }
    strcpy(buf, "\n");
    if (x->line == 1 && len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) { /* UTF-8 BOM */
        s += 3;
        len -= 3;
    }
    if (memchr(s, 0, len)) {
        pfail(x, AWQ_EFORMAT, "line contains a NUL byte");
        return buf;
    }
    if (len > CFG_LINE_MAX) {
        pfail(x, AWQ_ETOOBIG, "line is %zu bytes long (at most %d)", len, CFG_LINE_MAX);
        return buf;
    }
    while (len > 0 && isspace((unsigned char)*s)) {
        s++;
        len--;
    }
    if (len > 0 && *s == '[') check_header(x, s, len);
    if (x->err_line) return buf;
    size_t room = (size_t)num - 3; /* inih wants room for '\r', '\n' and NUL */
    if (len <= room) {
        memcpy(buf, s, len);
        buf[len] = '\n';
        buf[len + 1] = 0;
        return buf;
    }
    if (*s == ';' || *s == '#') return buf; /* a long comment: a blank line to inih */
    split_long(x, s, len, buf, room);
    return buf;
}

static int handler(void *user, const char *section, const char *name, const char *value) {
    struct pctx *x = user;
    if (x->err_line) return 0;
    if (x->stash_on) value = x->stash;
    if (!value) value = ""; /* only with INI_ALLOW_NO_VALUE builds */
    char qs[CFG_QUOTE_LEN], qn[CFG_QUOTE_LEN];
    cfg_quote(section, qs);
    cfg_quote(name, qn);
    if (!*section) {
        pfail(x, AWQ_EFORMAT, "'%s' is outside any section (put it under [server], [model], [generation], [security] or [log])", qn);
        return 0;
    }
    if (!cfg_section_known(section, strlen(section))) {
        pfail(x, AWQ_EFORMAT, "unknown section [%s]", qs);
        return 0;
    }
    int k = cfg_key_index(section, name);
    if (k < 0) {
        pfail(x, AWQ_EFORMAT, "[%s] unknown key '%s'", qs, qn);
        return 0;
    }
    if (x->key_line[k]) {
        pfail(x, AWQ_EFORMAT, "[%s] %s is set twice (first on line %d)", qs, qn, x->key_line[k]);
        return 0;
    }
    char msg[AWQ_ERR_LEN];
    int rc = cfg_parse_value(msg, &keys[k], value, (char *)x->c + keys[k].offset);
    if (rc) {
        pfail(x, rc, "%s", msg);
        return 0;
    }
    x->key_line[k] = x->line;
    return 1;
}

/* The text of line n of text (1-based), quoted for a message. */
static void line_text(const char *text, size_t len, int n, char q[CFG_QUOTE_LEN]) {
    const char *p = text, *end = text + len;
    for (int i = 1; i < n && p < end; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
    char tmp[CFG_QUOTE_LEN];
    size_t l = 0;
    while (p < end && *p != '\n' && *p != '\r' && l < sizeof tmp - 1) tmp[l++] = *p++;
    tmp[l] = 0;
    char *t = tmp;
    while (isspace((unsigned char)*t)) t++;
    cfg_quote(t, q);
}

int cfg_parse(char *err, const char *name, const char *text, size_t len, cfg *c, int *key_line) {
    struct pctx *x = calloc(1, sizeof *x);
    cfg *work = malloc(sizeof *work);
    int rc = 0;
    if (!x || !work) {
        rc = awq_seterr(err, AWQ_ENOMEM, "%s: out of memory", name);
        goto out;
    }
    *work = *c;
    x->name = name;
    x->p = text;
    x->end = text + len;
    x->c = work;
    int r = ini_parse_stream(reader, x, handler, x);
    if (r == -2) {
        rc = awq_seterr(err, AWQ_ENOMEM, "%s: out of memory", name);
    } else if (r > 0 && (!x->err_line || r < x->err_line)) {
        /* inih's own complaint: a line that is neither "[section]" nor "key = value" */
        char q[CFG_QUOTE_LEN];
        line_text(text, len, r, q);
        rc = awq_seterr(err, AWQ_EFORMAT, "%s:%d: '%s' is neither a [section] nor a key = value line", name, r, q);
    } else if (x->err_line) {
        rc = awq_seterr(err, x->err_code, "%s", x->err);
    } else if (r != 0) {
        rc = awq_seterr(err, AWQ_EIO, "%s: inih error %d", name, r);
    } else {
        *c = *work;
        if (key_line) memcpy(key_line, x->key_line, sizeof x->key_line);
    }
out:
    free(work);
    free(x);
    return rc;
}

/* ------------------------------------------------------------------ public API ---- */

void cfg_defaults(cfg *c) {
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < NKEYS; i++) {
        int rc = cfg_parse_value(NULL, &keys[i], keys[i].def, (char *)c + keys[i].offset);
        assert(rc == 0 && "a default in the key table does not parse");
        (void)rc;
    }
}

int cfg_load_string(char *err, const char *name, const char *text, size_t len, cfg *c) {
    return cfg_parse(err, name, text ? text : "", text ? len : 0, c, NULL);
}

int cfg_load_file(char *err, const char *path, cfg *c) {
    char *data;
    size_t len;
    int rc = plat_read_file(err, path, CFG_FILE_MAX, &data, &len);
    if (rc) return rc;
    rc = cfg_parse(err, path, data, len, c, NULL);
    free(data);
    return rc;
}

int cfg_load(char *err, const char *explicit_path, cfg *c, char *path_out) {
    char path[PLAT_PATH_MAX];
    cfg_defaults(c);
    if (path_out) path_out[0] = 0;
    int rc = cfg_find_path(err, explicit_path, path);
    if (rc) return rc;
    if (path_out) snprintf(path_out, PLAT_PATH_MAX, "%s", path);
    if (!path[0]) return 0;
    return cfg_load_file(err, path, c);
}

int cfg_get(char *err, const cfg *c, const char *key, char *out, size_t cap) {
    const cfg_keyinfo *k = cfg_key_find(key);
    char q[CFG_QUOTE_LEN];
    if (!k) {
        cfg_quote(key, q);
        return awq_seterr(err, AWQ_ENOTFOUND, "unknown setting '%s'", q);
    }
    if (cfg_format_value(k, c, out, cap))
        return awq_seterr(err, AWQ_ETOOBIG, "%s: the value does not fit %zu bytes", key, cap);
    return 0;
}

int cfg_set(char *err, cfg *c, const char *key, const char *value) {
    const cfg_keyinfo *k = cfg_key_find(key);
    char q[CFG_QUOTE_LEN];
    if (!k) {
        cfg_quote(key, q);
        return awq_seterr(err, AWQ_ENOTFOUND, "unknown setting '%s'", q);
    }
    return cfg_parse_value(err, k, value, (char *)c + k->offset);
}

bool cfg_is_live(const char *key) {
    const cfg_keyinfo *k = cfg_key_find(key);
    return k && k->live;
}

/* Bytes of the field behind a key of type t; every field is plain data, so copying these bytes
 * copies the setting. */
static size_t field_size(enum cfg_type t) {
    switch (t) {
    case CFG_T_NAME:
    case CFG_T_PATH: return CFG_VALUE_MAX;
    case CFG_T_PATHS: return sizeof(cfg_paths);
    case CFG_T_IDS: return sizeof(cfg_ids);
    case CFG_T_INT:
    case CFG_T_BYTES:
    case CFG_T_DURATION: return sizeof(int64_t);
    case CFG_T_FLOAT: return sizeof(double);
    case CFG_T_BOOL: return sizeof(bool);
    case CFG_T_ENUM: return sizeof(int);
    }
    return 0;
}

/* Values are compared as file text, which is canonical for every type. */
bool cfg_key_equal(const cfg_keyinfo *k, const cfg *a, const cfg *b) {
    char va[CFG_VALUE_MAX], vb[CFG_VALUE_MAX];
    if (cfg_format_value(k, a, va, sizeof va) || cfg_format_value(k, b, vb, sizeof vb)) return false;
    return strcmp(va, vb) == 0;
}

int cfg_merge_live(cfg *cur, const cfg *next, awq_buf *restart) {
    int changed = 0;
    for (size_t i = 0; i < NKEYS; i++) {
        const cfg_keyinfo *k = &keys[i];
        if (cfg_key_equal(k, cur, next)) continue;
        if (k->live) {
            memcpy((char *)cur + k->offset, (const char *)next + k->offset, field_size(k->type));
            changed++;
        } else if (restart) {
            int rc = awq_buf_printf(restart, "%s%s.%s", restart->len ? ", " : "", k->section, k->name);
            if (rc) return rc;
        }
    }
    return changed;
}

int cfg_format(const cfg *c, bool only_changed, awq_buf *out) {
    cfg def;
    cfg_defaults(&def);
    const char *cur = NULL;
    for (size_t i = 0; i < NKEYS; i++) {
        const cfg_keyinfo *k = &keys[i];
        bool same = cfg_key_equal(k, c, &def);
        if (only_changed && same) continue;
        char v[CFG_VALUE_MAX];
        if (cfg_format_value(k, c, v, sizeof v)) return AWQ_EINTERNAL;
        int rc = 0;
        if (!cur || strcmp(cur, k->section) != 0) {
            rc = awq_buf_printf(out, "%s[%s]\n", cur ? "\n" : "", k->section);
            cur = k->section;
        }
        /* an empty value gets no "; default" note: inih would read "; default" as the value */
        if (!rc) rc = awq_buf_printf(out, "%s = %s%s\n", k->name, v, !only_changed && same && v[0] ? " ; default" : "");
        if (rc) return rc;
    }
    return 0;
}
