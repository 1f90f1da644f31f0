/* core.c - awq-tray's shared core: state machine, labels, menu model, model roots, settings
 * keys and the test-hook parser. See core.h. */
#include "core.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------ states ---- */

static const char *const state_names[TRAY_ST_COUNT] = {"stopped", "idle", "loading", "ready", "error"};

const char *tray_state_name(tray_state s) {
    return (unsigned)s < TRAY_ST_COUNT ? state_names[s] : "?";
}

/* Copy src into a TRAY_TEXT_MAX field, cutting at a character boundary so a long UTF-8 name
 * never ends in half a character (GTK refuses such labels). */
static void put_text(char dst[TRAY_TEXT_MAX], const char *src) {
    size_t n = src ? strlen(src) : 0;
    if (n >= TRAY_TEXT_MAX) {
        n = TRAY_TEXT_MAX - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80) n--;
    }
    if (n) memcpy(dst, src, n);
    dst[n] = 0;
}

void tray_view_stopped(tray_view *v) {
    memset(v, 0, sizeof *v);
    v->state = TRAY_ST_STOPPED;
}

void tray_view_error(tray_view *v, const char *message) {
    memset(v, 0, sizeof *v);
    v->state = TRAY_ST_ERROR;
    put_text(v->message, message && *message ? message : "unknown error");
}

/* Typed lookups: a field of another type counts as absent. */
static const char *map_str(const awq_map *m, const char *key) {
    const awq_kv *kv = awq_map_get(m, key);
    return kv && kv->kind == AWQ_KV_STR && kv->s ? kv->s : NULL;
}

static int map_bool(const awq_map *m, const char *key) { /* -1 absent, else 0/1 */
    const awq_kv *kv = awq_map_get(m, key);
    return kv && kv->kind == AWQ_KV_BOOL ? kv->b : -1;
}

static uint64_t map_uint(const awq_map *m, const char *key) {
    const awq_kv *kv = awq_map_get(m, key);
    return kv && kv->kind == AWQ_KV_INT && kv->i > 0 ? (uint64_t)kv->i : 0;
}

/* The load stages in the order the daemon reports them (docs/protocol.md "load"). */
static float stage_pct(const char *stage) {
    static const char *const st[] = {"mapped", "validated", "uploaded", "ready"};
    for (int i = 0; stage && i < 4; i++)
        if (strcmp(stage, st[i]) == 0) return 25.0f * (float)(i + 1);
    return 0.0f;
}

void tray_view_from_status(tray_view *v, const awq_map *m, float progress_pct, const char *load_error) {
    memset(v, 0, sizeof *v);
    v->connected = true;
    v->draining = map_bool(m, "draining") == 1;
    const char *model = map_str(m, "model");
    int loaded = map_bool(m, "loaded");
    if (map_bool(m, "loading") == 1) {
        v->state = TRAY_ST_LOADING;
        put_text(v->stage, map_str(m, "load_stage"));
        v->pct = progress_pct >= 0 ? progress_pct : stage_pct(v->stage);
        if (v->pct > 100.0f) v->pct = 100.0f;
        return;
    }
    if (loaded == 1 || (loaded < 0 && model && *model)) {
        v->state = TRAY_ST_READY;
        put_text(v->model, model);
        put_text(v->device, map_str(m, "device"));
        v->memory_bytes = map_uint(m, "memory_weights_bytes") + map_uint(m, "memory_kv_bytes");
        return;
    }
    if (load_error && *load_error) {
        char t[TRAY_TEXT_MAX];
        snprintf(t, sizeof t, "load failed: %s", load_error);
        put_text(v->message, t);
        v->state = TRAY_ST_ERROR;
        return;
    }
    v->state = TRAY_ST_IDLE;
}

bool tray_view_equal(const tray_view *a, const tray_view *b) {
    /* pct is compared in whole percents: finer steps would redraw for nothing */
    return a->state == b->state && a->connected == b->connected && a->busy == b->busy &&
           a->draining == b->draining && (int)a->pct == (int)b->pct && !strcmp(a->stage, b->stage) &&
           !strcmp(a->model, b->model) && !strcmp(a->device, b->device) && a->memory_bytes == b->memory_bytes &&
           !strcmp(a->message, b->message);
}

void tray_fmt_bytes(uint64_t n, char out[32]) {
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double x = (double)n;
    int u = 0;
    while (x >= 1024.0 && u < 4) {
        x /= 1024.0;
        u++;
    }
    if (u == 0) snprintf(out, 32, "%llu B", (unsigned long long)n);
    else if (x < 10.0) snprintf(out, 32, "%.1f %s", x, unit[u]);
    else snprintf(out, 32, "%.0f %s", x, unit[u]);
}

/* snprintf into a label, cut at a character boundary when it is too long (a label may hold a
 * long model name or message; GTK refuses half a UTF-8 character). */
static void AWQ_PRINTF(2, 3) label(char out[TRAY_LABEL_MAX], const char *fmt, ...) {
    char big[TRAY_LABEL_MAX * 4];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(big, sizeof big, fmt, ap);
    va_end(ap);
    size_t len = n < 0 ? 0 : (size_t)n < sizeof big ? (size_t)n : sizeof big - 1;
    if (len >= TRAY_LABEL_MAX) {
        len = TRAY_LABEL_MAX - 1;
        while (len > 0 && ((unsigned char)big[len] & 0xC0) == 0x80) len--;
    }
    memcpy(out, big, len);
    out[len] = 0;
}

void tray_status_label(const tray_view *v, char out[TRAY_LABEL_MAX]) {
    const char *tail = v->draining ? " (stopping)" : "";
    switch (v->state) {
    case TRAY_ST_STOPPED:
        label(out, "awqd: stopped");
        return;
    case TRAY_ST_IDLE:
        label(out, "awqd: running, no model%s", tail);
        return;
    case TRAY_ST_LOADING:
        label(out, "awqd: loading %d %%%s%s%s%s", (int)v->pct, v->stage[0] ? " (" : "", v->stage,
                 v->stage[0] ? ")" : "", tail);
        return;
    case TRAY_ST_READY: {
        char mem[32] = "";
        if (v->memory_bytes) tray_fmt_bytes(v->memory_bytes, mem);
        label(out, "awqd: ready: %s%s%s%s%s%s", v->model, v->device[0] ? " on " : "", v->device,
                 mem[0] ? ", " : "", mem, tail);
        return;
    }
    case TRAY_ST_ERROR:
        label(out, "awqd: error: %s", v->message);
        return;
    }
    label(out, "awqd: ?");
}

void tray_view_line(const tray_view *v, char out[TRAY_LABEL_MAX]) {
    const char *b = v->busy ? " busy" : "";
    switch (v->state) {
    case TRAY_ST_LOADING:
        label(out, "state: loading pct=%d stage=%s%s", (int)v->pct, v->stage[0] ? v->stage : "-", b);
        return;
    case TRAY_ST_READY:
        label(out, "state: ready model=%s device=%s memory=%llu%s", v->model,
                 v->device[0] ? v->device : "-", (unsigned long long)v->memory_bytes, b);
        return;
    case TRAY_ST_ERROR:
        label(out, "state: error%s message=%s", b, v->message);
        return;
    default:
        label(out, "state: %s%s", tray_state_name(v->state), b);
    }
}

/* ------------------------------------------------------------ menu model ---- */

static const struct {
    const char *name, *label;
    bool sep;
} items[TRAY_ITEM_COUNT] = {
    [TRAY_ITEM_STATUS] = {"status", NULL, true},
    [TRAY_ITEM_START] = {"start", "Start service", false},
    [TRAY_ITEM_STOP] = {"stop", "Stop service", true},
    [TRAY_ITEM_LOAD] = {"load", "Load model\xE2\x80\xA6", false}, /* U+2026: a dialog follows */
    [TRAY_ITEM_UNLOAD] = {"unload", "Unload model", true},
    [TRAY_ITEM_SETTINGS] = {"settings", "Settings\xE2\x80\xA6", false},
    [TRAY_ITEM_CHAT] = {"chat", "Open a chat", false},
    [TRAY_ITEM_LOGS] = {"logs", "View logs", true},
    [TRAY_ITEM_QUIT] = {"quit", "Quit", false},
};

const char *tray_item_name(tray_item it) {
    return (unsigned)it < TRAY_ITEM_COUNT ? items[it].name : "?";
}

int tray_item_by_name(const char *name) {
    for (int i = 0; i < TRAY_ITEM_COUNT; i++)
        if (strcmp(items[i].name, name) == 0) return i;
    return -1;
}

void tray_menu_build(const tray_view *v, tray_menu *m) {
    bool conn = v->connected, idle = !v->busy;
    bool en[TRAY_ITEM_COUNT] = {
        [TRAY_ITEM_STATUS] = false,
        [TRAY_ITEM_START] = !conn && idle && (v->state == TRAY_ST_STOPPED || v->state == TRAY_ST_ERROR),
        [TRAY_ITEM_STOP] = conn && idle && !v->draining,
        [TRAY_ITEM_LOAD] = conn && idle && !v->draining && v->state != TRAY_ST_LOADING,
        [TRAY_ITEM_UNLOAD] = conn && idle && v->state == TRAY_ST_READY,
        [TRAY_ITEM_SETTINGS] = conn,
        [TRAY_ITEM_CHAT] = conn && v->state == TRAY_ST_READY,
        [TRAY_ITEM_LOGS] = true,
        [TRAY_ITEM_QUIT] = true,
    };
    for (int i = 0; i < TRAY_ITEM_COUNT; i++) {
        tray_menu_entry *e = &m->e[i];
        e->item = (tray_item)i;
        e->name = items[i].name;
        e->enabled = en[i];
        e->separator_after = items[i].sep;
        if (i == TRAY_ITEM_STATUS) tray_status_label(v, e->label);
        else snprintf(e->label, sizeof e->label, "%s", items[i].label);
    }
}

int tray_menu_dump(const tray_menu *m, awq_buf *out) {
    int rc = 0;
    for (int i = 0; i < TRAY_ITEM_COUNT && !rc; i++)
        rc = awq_buf_printf(out, "menu: %s \"%s\" %s\n", m->e[i].name, m->e[i].label,
                            m->e[i].enabled ? "enabled" : "disabled");
    return rc;
}

/* ------------------------------------------------------------ model roots ---- */

int tray_roots_parse(char *err, const char *csv, char (*roots)[PLAT_PATH_MAX], size_t *n) {
    *n = 0;
    const char *p = csv;
    while (*p) {
        while (*p == ' ' || *p == '\t') p++;
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
        if (len) {
            if (*n >= TRAY_ROOTS_MAX)
                return awq_seterr(err, AWQ_ERANGE, "model.roots: more than %d entries", TRAY_ROOTS_MAX);
            if (len >= PLAT_PATH_MAX)
                return awq_seterr(err, AWQ_ETOOBIG, "model.roots: entry %zu is longer than %d bytes", *n + 1,
                                  PLAT_PATH_MAX - 1);
            memcpy(roots[*n], p, len);
            roots[*n][len] = 0;
            (*n)++;
        }
        if (!e) break;
        p = e + 1;
    }
    return 0;
}

/* Whether path equals root or lies below it. Windows paths compare without case and with
 * either separator (the file system does); POSIX paths compare exactly. */
static bool path_under(const char *root, const char *path) {
    size_t n = strlen(root);
    while (n > 1 && (root[n - 1] == '/' || root[n - 1] == PLAT_PATH_SEP)) n--; /* "/models/" */
#ifdef _WIN32
    for (size_t i = 0; i < n; i++) {
        char a = (char)tolower((unsigned char)root[i]), b = (char)tolower((unsigned char)path[i]);
        if (a == '/') a = '\\';
        if (b == '/') b = '\\';
        if (a != b) return false;
    }
    return path[n] == 0 || path[n] == '\\' || path[n] == '/';
#else
    if (strncmp(root, path, n) != 0) return false;
    return path[n] == 0 || path[n] == '/' || (n == 1 && root[0] == '/');
#endif
}

int tray_path_allowed(char *err, const char *path, const char *roots_csv, const char *model_path, char *real_out) {
    char real[PLAT_PATH_MAX], root_real[PLAT_PATH_MAX], e2[AWQ_ERR_LEN];
    char (*r)[PLAT_PATH_MAX] = NULL; /* heap: 64 KiB of roots is too much for a GUI thread's stack */
    size_t n = 0;
    if (!*path) return awq_seterr(err, AWQ_EINVAL, "no folder given");
    if (plat_realpath(e2, path, real) != 0) return awq_seterr(err, AWQ_ENOTFOUND, "%s: no such folder", path);
    if (!plat_is_dir(real)) return awq_seterr(err, AWQ_EINVAL, "%s is not a folder", path);
    r = malloc(sizeof(char[TRAY_ROOTS_MAX][PLAT_PATH_MAX]));
    if (!r) return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    int rc = tray_roots_parse(err, roots_csv, r, &n);
    bool ok = false;
    for (size_t i = 0; !rc && i < n && !ok; i++) {
        /* a root that does not exist (yet) cannot contain anything */
        if (plat_realpath(e2, r[i], root_real) == 0) ok = path_under(root_real, real);
    }
    if (!rc && !ok && n == 0 && model_path && *model_path && plat_realpath(e2, model_path, root_real) == 0)
        ok = strcmp(root_real, real) == 0;
    if (!rc && !ok) {
        if (n == 0)
            rc = awq_seterr(err, AWQ_EPERM,
                            "%s is not under the model roots (none are configured: set model.roots in Settings)",
                            path);
        else
            rc = awq_seterr(err, AWQ_EPERM, "%s is not under the model roots (%s)", path, roots_csv);
    }
    if (!rc) memcpy(real_out, real, strlen(real) + 1);
    free(r);
    return rc;
}

/* ------------------------------------------------------------ settings ---- */

static const tray_setting settings_list[] = {
    {"model.path", "Model folder loaded at start", NULL},
    {"model.roots", "Model roots (comma-separated folders)", NULL},
    {"model.device", "Device", "auto|cuda|cpu"},
    {"model.context", "Context length (tokens)", NULL},
    {"model.threads", "CPU threads (0 = all cores)", NULL},
    {"security.encryption", "Encryption", "off|on|required"},
    {"model.keep_alive", "Keep the model loaded for (off, 30m, 2h, ...)", NULL},
};

const tray_setting *tray_settings(size_t *n_p) {
    *n_p = sizeof settings_list / sizeof settings_list[0];
    return settings_list;
}

/* ------------------------------------------------------------ test hook ---- */

/* The next blank-separated word of *p into out (cap bytes); false when none is left. */
static bool word(const char **p, char *out, size_t cap) {
    const char *s = *p;
    while (*s == ' ' || *s == '\t') s++;
    size_t n = 0;
    while (s[n] && s[n] != ' ' && s[n] != '\t') n++;
    *p = s + n;
    if (!n) return false;
    if (n >= cap) n = cap - 1;
    memcpy(out, s, n);
    out[n] = 0;
    return true;
}

/* The rest of the line without the blanks around it. */
static void rest(const char *p, char *out, size_t cap) {
    while (*p == ' ' || *p == '\t') p++;
    size_t n = strlen(p);
    while (n && (p[n - 1] == ' ' || p[n - 1] == '\t')) n--;
    if (n >= cap) n = cap - 1;
    memcpy(out, p, n);
    out[n] = 0;
}

int tray_hook_parse(char *err, const char *line, tray_hook_cmd *cmd) {
    char buf[PLAT_PATH_MAX + 1100], verb[32];
    memset(cmd, 0, sizeof *cmd);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t')) n--;
    if (n >= sizeof buf) return awq_seterr(err, AWQ_ETOOBIG, "command longer than %zu bytes", sizeof buf - 1);
    memcpy(buf, line, n);
    buf[n] = 0;
    const char *p = buf;
    if (!word(&p, verb, sizeof verb) || verb[0] == '#') return 1;
    if (!strcmp(verb, "dump-menu") || !strcmp(verb, "dump-state") || !strcmp(verb, "dump-settings")) {
        cmd->op = verb[5] == 'm' ? TRAY_HOOK_DUMP_MENU : verb[5] == 's' && verb[6] == 't' ? TRAY_HOOK_DUMP_STATE
                                                                                            : TRAY_HOOK_SETTINGS;
        char extra[8];
        if (word(&p, extra, sizeof extra)) return awq_seterr(err, AWQ_EINVAL, "%s takes no argument", verb);
        return 0;
    }
    if (!strcmp(verb, "click")) {
        char name[32];
        if (!word(&p, name, sizeof name))
            return awq_seterr(err, AWQ_EINVAL, "click: which item? (start, stop, load PATH, unload, settings, chat, "
                                               "logs, quit)");
        int it = tray_item_by_name(name);
        if (it < 0 || it == TRAY_ITEM_STATUS)
            return awq_seterr(err, AWQ_EINVAL, "click: unknown item '%s' (start, stop, load PATH, unload, settings, "
                                               "chat, logs, quit)", name);
        cmd->op = TRAY_HOOK_CLICK;
        cmd->item = (tray_item)it;
        rest(p, cmd->arg, sizeof cmd->arg); /* load's folder may contain blanks */
        if (it == TRAY_ITEM_LOAD && !cmd->arg[0])
            return awq_seterr(err, AWQ_EINVAL, "click load: needs the model folder (click load PATH)");
        if (it != TRAY_ITEM_LOAD && cmd->arg[0])
            return awq_seterr(err, AWQ_EINVAL, "click %s: takes no argument (got '%s')", name, cmd->arg);
        return 0;
    }
    if (!strcmp(verb, "set")) {
        if (!word(&p, cmd->arg, 257)) /* the protocol's key limit is 256 bytes */
            return awq_seterr(err, AWQ_EINVAL, "set: needs KEY VALUE (e.g. set model.context 4096)");
        cmd->op = TRAY_HOOK_SET;
        rest(p, cmd->value, sizeof cmd->value);
        return 0;
    }
    return awq_seterr(err, AWQ_EINVAL,
                      "unknown command '%s' (expected click, set, dump-menu, dump-state, dump-settings)", verb);
}
