/* test_cfg.c - config/: defaults and the key table, parsing through inih with file:line errors
 * for every kind of bad input, keys by name, reload merging, the lookup order, atomic
 * comment-preserving saves (an interrupted save included), and that docs/configuration.md and
 * config/awqd.ini.example name every key with its default. */
#define _GNU_SOURCE /* mkdtemp, setenv, fork */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>
#ifndef _WIN32
#include <sys/wait.h>
#endif

#include "cfg.h"
#include "harness.h"
#include "plat.h"

/* Absolute paths in settings: "/x" on POSIX; Windows wants a drive ("C:/x"), so there the same
 * literal gets "C:" in front (string-literal concatenation keeps every case one line). */
#ifdef _WIN32
#define AP(lit) "C:" lit
#include <windows.h>
static void setenv_(const char *name, const char *value) { _putenv_s(name, value); }
static void unsetenv_(const char *name) { _putenv_s(name, ""); }
#define setenv(n, v, o) setenv_((n), (v))
#define unsetenv(n) unsetenv_(n)
/* mingw has no mkdtemp: a directory named after the pid under %TEMP% (absolute, as the lookup
 * tests need) */
static char *mkdtemp(char *tmpl) {
    char t[MAX_PATH];
    DWORD n = GetTempPathA(sizeof t, t);
    if (n == 0 || n >= sizeof t) return NULL;
    snprintf(tmpl, 256, "%sawq-test-cfg-%lu", t, (unsigned long)GetCurrentProcessId());
    return plat_mkdirs(NULL, tmpl, 0700) == 0 ? tmpl : NULL;
}
#else
#define AP(lit) lit
#endif

static char tmpdir[256];

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
}

/* The file's contents (static buffer, for comparing). */
static const char *slurp(const char *path) {
    static char *last;
    free(last);
    last = NULL;
    size_t len;
    char err[AWQ_ERR_LEN];
    if (plat_read_file(err, path, 1 << 20, &last, &len)) return "(unreadable)";
    return last;
}

static int load(char *err, const char *text, cfg *c) {
    cfg_defaults(c);
    return cfg_load_string(err, "awqd.ini", text, strlen(text), c);
}

static const char *get(const cfg *c, const char *key) {
    static char v[4][CFG_VALUE_MAX];
    static int i;
    i = (i + 1) % 4;
    char err[AWQ_ERR_LEN];
    if (cfg_get(err, c, key, v[i], sizeof v[i])) return "(error)";
    return v[i];
}

/* err for text, "" when it loads. */
static const char *load_err(const char *text, int *rc_p) {
    static char err[AWQ_ERR_LEN];
    static cfg c;
    err[0] = 0;
    int rc = load(err, text, &c);
    if (rc_p) *rc_p = rc;
    return rc ? err : "";
}

static void test_defaults(void) {
    CASE("cfg-1.1", "built-in defaults");
    cfg c;
    cfg_defaults(&c);
    CHECK_EQ(c.model.context, 4096);
    CHECK_EQ(c.server.max_connections, 1024);
    CHECK_EQ(c.server.max_frame_bytes, 16 * 1024 * 1024);
    CHECK_EQ(c.server.queue_depth, 256);
    CHECK_EQ(c.server.max_inflight_per_conn, 64);
    CHECK_STR(c.server.pipe, "awqd");
    CHECK_EQ(c.model.device, CFG_DEVICE_AUTO);
    CHECK_EQ(c.model.keep_alive, 0);
    CHECK_EQ(c.model.max_sequences, 64);
    CHECK(c.model.cpu_fallback);
    CHECK_EQ(c.generation.max_tokens, 512);
    CHECK_NEAR(c.generation.temperature, 0.7, 1e-12);
    CHECK_EQ(c.generation.top_k, 40);
    CHECK_NEAR(c.generation.top_p, 0.95, 1e-12);
    CHECK_NEAR(c.generation.min_p, 0.05, 1e-12);
    CHECK_NEAR(c.generation.repetition_penalty, 1.0, 0);
    CHECK_EQ(c.security.encryption, CFG_ENC_OFF);
    CHECK_EQ(c.log.level, CFG_LOG_INFO);
    CHECK(!c.log.log_prompts);
    CHECK_EQ(c.model.roots.n, 0);

    CASE("cfg-1.2", "the key table: unique keys, known sections, defaults print as written");
    size_t n;
    const cfg_keyinfo *k = cfg_keys(&n);
    CHECK(n >= 35);
    int dups = 0, bad_default = 0, no_doc = 0;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++)
            if (!strcmp(k[i].section, k[j].section) && !strcmp(k[i].name, k[j].name)) dups++;
        char key[CFG_KEY_MAX];
        snprintf(key, sizeof key, "%s.%s", k[i].section, k[i].name);
        if (strcmp(get(&c, key), k[i].def) != 0) {
            bad_default++;
            fprintf(stderr, "  default of %s prints as '%s', table says '%s'\n", key, get(&c, key), k[i].def);
        }
        if (!k[i].doc || strlen(k[i].doc) < 10) no_doc++;
        CHECK(cfg_key_find(key) == &k[i]);
    }
    CHECK_EQ(dups, 0);
    CHECK_EQ(bad_default, 0);
    CHECK_EQ(no_doc, 0);
    char range[96];
    cfg_key_range(cfg_key_find("model.context"), range, sizeof range);
    CHECK_STR(range, "128..1048576");
    cfg_key_range(cfg_key_find("server.max_frame_bytes"), range, sizeof range);
    CHECK_STR(range, "4K..1G");
    cfg_key_range(cfg_key_find("model.keep_alive"), range, sizeof range);
    CHECK_STR(range, "off..30d");
    CHECK_STR(cfg_type_name(cfg_key_find("model.keep_alive")->type), "duration");
    CHECK(cfg_key_find("model") == NULL);
    CHECK(cfg_key_find("model.nope") == NULL);
}

static void test_parse(void) {
    CASE("cfg-2.1", "a full file: BOM, CRLF, comments, indentation, inline comments, ':' separator");
    const char *text =
        "\xEF\xBB\xBF# awqd settings\r\n"
        "; another comment\r\n"
        "[server]\r\n"
        "socket = " AP("/run/x/awqd.sock") " ; inline comment\r\n"
        "  max_connections = 10\r\n"
        "allow_uids = 1000, 1001 ,0\r\n"
        "max_frame_bytes = 1MiB\r\n"
        "\r\n"
        "[model]\n"
        "path: " AP("/models/shisa") "\n"
        "roots = " AP("/models") "," AP("/srv/m") "\n"
        "context = 8192\n"
        "device = cuda\n"
        "keep_alive = 5m\n"
        "cpu_fallback = no\n"
        "[generation]\n"
        "temperature = 0\n"
        "seed = 42\n"
        "[security]\n"
        "encryption = required\n"
        "[log]\n"
        "level = debug\n"
        "log_prompts = ON\n"
        "socket_x_not_here_is_a_comment = ignored? no\n";
    char err[AWQ_ERR_LEN];
    cfg c;
    int rc = load(err, text, &c);
    CHECK_EQ(rc, AWQ_EFORMAT); /* the last line is an unknown key */
    CHECK_CONTAINS(err, "awqd.ini:24: [log] unknown key 'socket_x_not_here_is_a_comment'");
    const char *good_end = strstr(text, "socket_x");
    rc = cfg_load_string(err, "awqd.ini", text, (size_t)(good_end - text), &c);
    CHECK_EQ(rc, 0);
    CHECK_STR(c.server.socket, AP("/run/x/awqd.sock"));
    CHECK_EQ(c.server.max_connections, 10);
    CHECK_EQ(c.server.allow_uids.n, 3);
    CHECK_EQ(c.server.allow_uids.id[1], 1001);
    CHECK_EQ(c.server.max_frame_bytes, 1024 * 1024);
    CHECK_STR(c.model.path, AP("/models/shisa"));
    CHECK_EQ(c.model.roots.n, 2);
    CHECK_STR(c.model.roots.item[1], AP("/srv/m"));
    CHECK_EQ(c.model.context, 8192);
    CHECK_EQ(c.model.device, CFG_DEVICE_CUDA);
    CHECK_EQ(c.model.keep_alive, 300);
    CHECK(!c.model.cpu_fallback);
    CHECK_NEAR(c.generation.temperature, 0, 0);
    CHECK_EQ(c.generation.seed, 42);
    CHECK_EQ(c.security.encryption, CFG_ENC_REQUIRED);
    CHECK_EQ(c.log.level, CFG_LOG_DEBUG);
    CHECK(c.log.log_prompts);
    CHECK_STR(get(&c, "server.allow_uids"), "1000,1001,0");
    CHECK_STR(get(&c, "server.max_frame_bytes"), "1M");
    CHECK_STR(get(&c, "model.keep_alive"), "5m");

    CASE("cfg-2.2", "bad values: file:line, section, key, value and the expected range");
    rc = 0;
    CHECK_STR(load_err("[server]\nqueue_depth = 5\n[model]\ncontext = abc\n", &rc),
              "awqd.ini:4: [model] context: 'abc' is not an integer (expected 128..1048576)");
    CHECK_EQ(rc, AWQ_EINVAL);
    CHECK_STR(load_err("[model]\ncontext = 64\n", &rc), "awqd.ini:2: [model] context: 64 is out of range (expected 128..1048576)");
    CHECK_EQ(rc, AWQ_ERANGE);
    CHECK_STR(load_err("[model]\ncontext = 99999999999999999999\n", &rc),
              "awqd.ini:2: [model] context: '99999999999999999999' is not an integer (expected 128..1048576)");
    CHECK_STR(load_err("[model]\ndevice = gpu\n", &rc), "awqd.ini:2: [model] device: 'gpu' is not one of auto|cuda|cpu");
    CHECK_STR(load_err("[model]\ncpu_fallback = maybe\n", &rc),
              "awqd.ini:2: [model] cpu_fallback: 'maybe' is not a boolean (true or false)");
    CHECK_CONTAINS(load_err("[model]\nkeep_alive = 5 minutes\n", &rc), "awqd.ini:2: [model] keep_alive: '5 minutes' is not a duration");
    CHECK_STR(load_err("[model]\nkeep_alive = 31d\n", &rc), "awqd.ini:2: [model] keep_alive: 31d is out of range (expected off..30d)");
    CHECK_CONTAINS(load_err("[server]\nmax_frame_bytes = 16X\n", &rc), "awqd.ini:2: [server] max_frame_bytes: '16X' is not a size");
    CHECK_STR(load_err("[server]\nmax_frame_bytes = 2G\n", &rc),
              "awqd.ini:2: [server] max_frame_bytes: 2G is out of range (expected 4K..1G)");
    CHECK_STR(load_err("[generation]\ntemperature = nan\n", &rc),
              "awqd.ini:2: [generation] temperature: 'nan' is not a number (expected 0..5)");
    CHECK_STR(load_err("[generation]\ntop_p = 1.5\n", &rc), "awqd.ini:2: [generation] top_p: 1.5 is out of range (expected 0..1)");
    CHECK_STR(load_err("[model]\npath = models/x\n", &rc), "awqd.ini:2: [model] path: 'models/x' is not an absolute path");
    CHECK_STR(load_err("[model]\nroots = " AP("/a") ",," AP("/b") "\n", &rc),
              "awqd.ini:2: [model] roots: '" AP("/a") ",," AP("/b") "' has an empty entry or more than 16 entries");
    CHECK_STR(load_err("[model]\nroots = " AP("/a") ", b\n", &rc), "awqd.ini:2: [model] roots: 'b' is not an absolute path");
    CHECK_STR(load_err("[server]\nallow_gids = 10,wheel\n", &rc),
              "awqd.ini:2: [server] allow_gids: 'wheel' is not a numeric id (0..4294967294)");
    CHECK_STR(load_err("[server]\nallow_uids = -1\n", &rc),
              "awqd.ini:2: [server] allow_uids: '-1' is not a numeric id (0..4294967294)");
    CHECK_CONTAINS(load_err("[server]\npipe = a b\n", &rc), "awqd.ini:2: [server] pipe: 'a b' is not a valid name");
    CHECK_STR(load_err("[log]\nfile = /var/log/\xff\n", &rc), "awqd.ini:2: [log] file: value is not valid UTF-8");
    CHECK_EQ(rc, AWQ_EUTF8);
    CHECK_STR(load_err("[log]\nfile = /a\x01x\n", &rc), "awqd.ini:2: [log] file: value contains a control character");

    CASE("cfg-2.3", "structure errors: unknown section or key, outside a section, twice, syntax, NUL, long lines");
    CHECK_STR(load_err("[server]\n[modle]\n", &rc),
              "awqd.ini:2: unknown section [modle] (expected [server], [model], [generation], [security] or [log])");
    CHECK_EQ(rc, AWQ_EFORMAT);
    CHECK_STR(load_err("[model]\ncontxt = 1\n", &rc), "awqd.ini:2: [model] unknown key 'contxt'");
    CHECK_EQ(rc, AWQ_EFORMAT);
    CHECK_STR(load_err("context = 1\n", &rc),
              "awqd.ini:1: 'context' is outside any section (put it under [server], [model], [generation], [security] or [log])");
    CHECK_STR(load_err("[model]\ncontext = 1024\n\n[model]\ncontext = 2048\n", &rc),
              "awqd.ini:5: [model] context is set twice (first on line 2)");
    CHECK_STR(load_err("[model]\ncontext = 1024\njust words\n", &rc),
              "awqd.ini:3: 'just words' is neither a [section] nor a key = value line");
    CHECK_EQ(rc, AWQ_EFORMAT);
    CHECK_STR(load_err("[model\n", &rc), "awqd.ini:1: section header has no closing ']'");
    {
        static const char nul[] = "[model]\ncon\0text = 5\n";
        char err2[AWQ_ERR_LEN];
        cfg c2;
        cfg_defaults(&c2);
        CHECK_EQ(cfg_load_string(err2, "awqd.ini", nul, sizeof nul - 1, &c2), AWQ_EFORMAT);
        CHECK_STR(err2, "awqd.ini:2: line contains a NUL byte");
    }
    {
        char big[CFG_LINE_MAX + 64];
        snprintf(big, sizeof big, "[model]\npath = /");
        size_t l = strlen(big);
        memset(big + l, 'a', CFG_LINE_MAX);
        big[l + CFG_LINE_MAX] = 0;
        CHECK_STR(load_err(big, &rc), "awqd.ini:2: line is 2056 bytes long (at most 2048)");
        CHECK_EQ(rc, AWQ_ETOOBIG);
    }
    /* an error leaves the settings untouched, even keys set before the bad line */
    cfg_defaults(&c);
    const char *bad = "[model]\ncontext = 8192\ncontext = x\n";
    CHECK(cfg_load_string(err, "awqd.ini", bad, strlen(bad), &c) != 0);
    CHECK_EQ(c.model.context, 4096);
    /* the first error wins, later lines are not reported */
    CHECK_CONTAINS(load_err("[model]\ncontext = x\n[nope]\n", &rc), "awqd.ini:2:");

    CASE("cfg-2.4", "an indented line is a line of its own, never a continuation");
    CHECK_EQ(load(err, "[server]\nsocket = " AP("/a") "\n    pipe = other\n", &c), 0);
    CHECK_STR(c.server.socket, AP("/a"));
    CHECK_STR(c.server.pipe, "other");
    CHECK_STR(load_err("[server]\nsocket = " AP("/a") "\n    /b\n", &rc), "awqd.ini:3: '/b' is neither a [section] nor a key = value line");

    CASE("cfg-2.5", "lines longer than inih's buffer are read the same way (long root lists)");
    {
        char text2[1500], want[1200];
        int n = snprintf(text2, sizeof text2, "[model]\nroots = ");
        int w = 0;
        for (int i = 0; i < 8; i++) {
            n += snprintf(text2 + n, sizeof text2 - (size_t)n, "%s" AP("/srv/models/collection-number-%02d-of-the-team"), i ? ", " : "", i);
            w += snprintf(want + w, sizeof want - (size_t)w, "%s" AP("/srv/models/collection-number-%02d-of-the-team"), i ? "," : "", i);
        }
        snprintf(text2 + n, sizeof text2 - (size_t)n, "   ; eight roots\ncontext = 2048\n");
        CHECK(strlen(text2) > 300);
        CHECK_EQ(load(err, text2, &c), 0);
        CHECK_EQ(c.model.roots.n, 8);
        CHECK_STR(get(&c, "model.roots"), want);
        CHECK_EQ(c.model.context, 2048);
        /* a long line with no separator is still a syntax error, at its own line */
        char text3[600] = "[model]\n";
        memset(text3 + 8, 'x', 400);
        memcpy(text3 + 408, "\n", 2);
        CHECK_STR(load_err(text3, &rc), "awqd.ini:2: a 400-byte line that is neither a [section] nor a key = value line");
    }

    CASE("cfg-2.6", "files: missing, too big, loaded by path");
    char path[300];
    snprintf(path, sizeof path, "%s/none.ini", tmpdir);
    cfg_defaults(&c);
    CHECK_EQ(cfg_load_file(err, path, &c), AWQ_ENOTFOUND);
    CHECK_CONTAINS(err, "none.ini");
    snprintf(path, sizeof path, "%s/a.ini", tmpdir);
    write_text(path, "[model]\ncontext = 1x\n");
    CHECK_EQ(cfg_load_file(err, path, &c), AWQ_EINVAL);
    char want[400];
    snprintf(want, sizeof want, "%s:2: [model] context: '1x' is not an integer", path);
    CHECK_CONTAINS(err, want);
    snprintf(path, sizeof path, "%s/big.ini", tmpdir);
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < 70000; i++) fputs("; padding padding\n", f);
    fclose(f);
    CHECK_EQ(cfg_load_file(err, path, &c), AWQ_ETOOBIG);
}

static void test_keys(void) {
    CASE("cfg-3.1", "cfg_get / cfg_set by name, with the file's messages");
    cfg c;
    cfg_defaults(&c);
    char err[AWQ_ERR_LEN], v[CFG_VALUE_MAX];
    CHECK_EQ(cfg_set(err, &c, "generation.temperature", "0.1"), 0);
    CHECK_STR(get(&c, "generation.temperature"), "0.1");
    CHECK_EQ(cfg_set(err, &c, "model.keep_alive", "90"), 0);
    CHECK_STR(get(&c, "model.keep_alive"), "90s");
    CHECK_EQ(cfg_set(err, &c, "model.keep_alive", "1h"), 0);
    CHECK_EQ(c.model.keep_alive, 3600);
    CHECK_EQ(cfg_set(err, &c, "model.keep_alive", "OFF"), 0);
    CHECK_STR(get(&c, "model.keep_alive"), "off");
    CHECK_EQ(cfg_set(err, &c, "server.max_frame_bytes", "65537"), 0);
    CHECK_STR(get(&c, "server.max_frame_bytes"), "65537");
    CHECK_EQ(cfg_set(err, &c, "model.context", "12"), AWQ_ERANGE);
    CHECK_STR(err, "[model] context: 12 is out of range (expected 128..1048576)");
    CHECK_EQ(c.model.context, 4096);
    CHECK_EQ(cfg_set(err, &c, "model.nope", "1"), AWQ_ENOTFOUND);
    CHECK_STR(err, "unknown setting 'model.nope'");
    CHECK_EQ(cfg_get(err, &c, "nope", v, sizeof v), AWQ_ENOTFOUND);
    CHECK_EQ(cfg_get(err, &c, "model.context", v, 3), AWQ_ETOOBIG);
    /* values that could not be written to a file and read back are refused */
    CHECK_EQ(cfg_set(err, &c, "log.file", "/a ;b"), AWQ_EINVAL);
    CHECK_STR(err, "[log] file: value contains ' ;', which would start a comment");
    CHECK_EQ(cfg_set(err, &c, "log.file", " /a"), AWQ_EINVAL);
    CHECK_STR(err, "[log] file: value has leading or trailing blanks");
    CHECK_EQ(cfg_set(err, &c, "log.file", "/a\nb"), AWQ_EINVAL);
    char huge[CFG_VALUE_MAX + 10];
    memset(huge, 'a', sizeof huge - 1);
    huge[0] = '/';
    huge[sizeof huge - 1] = 0;
    CHECK_EQ(cfg_set(err, &c, "log.file", huge), AWQ_ETOOBIG);
    CHECK_STR(err, "[log] file: value is 1033 bytes long (at most 1023)");
    CHECK_STR(c.log.file, "");

    CASE("cfg-3.2", "which keys are live");
    CHECK(cfg_is_live("generation.temperature"));
    CHECK(cfg_is_live("log.level"));
    CHECK(cfg_is_live("log.log_prompts"));
    CHECK(cfg_is_live("model.keep_alive"));
    CHECK(cfg_is_live("server.max_connections"));
    CHECK(!cfg_is_live("model.context"));
    CHECK(!cfg_is_live("security.encryption"));
    CHECK(!cfg_is_live("server.socket"));
    CHECK(!cfg_is_live("no.such"));

    CASE("cfg-3.3", "reload: live keys are copied, the others listed for a restart");
    cfg cur, next;
    cfg_defaults(&cur);
    cfg_defaults(&next);
    CHECK_EQ(cfg_set(err, &next, "generation.temperature", "1.2"), 0);
    CHECK_EQ(cfg_set(err, &next, "log.level", "warn"), 0);
    CHECK_EQ(cfg_set(err, &next, "model.roots", AP("/m1") "," AP("/m2")), 0);
    CHECK_EQ(cfg_set(err, &next, "model.context", "8192"), 0);
    CHECK_EQ(cfg_set(err, &next, "server.socket", AP("/tmp/s")), 0);
    awq_buf restart = {0};
    CHECK_EQ(cfg_merge_live(&cur, &next, &restart), 3);
    CHECK_NEAR(cur.generation.temperature, 1.2, 0);
    CHECK_EQ(cur.log.level, CFG_LOG_WARN);
    CHECK_EQ(cur.model.roots.n, 2);
    CHECK_STR(cur.model.roots.item[1], AP("/m2"));
    CHECK_EQ(cur.model.context, 4096);
    CHECK_STR(cur.server.socket, "");
    CHECK_STR(restart.data, "server.socket, model.context");
    awq_buf_free(&restart);
    CHECK_EQ(cfg_merge_live(&cur, &next, NULL), 0);

    CASE("cfg-3.4", "cfg_format prints INI text that reads back to the same settings");
    awq_buf out = {0};
    CHECK_EQ(cfg_format(&next, false, &out), 0);
    CHECK_CONTAINS(out.data, "[model]\npath = \nroots = " AP("/m1") "," AP("/m2") "\ncontext = 8192\n");
    CHECK_CONTAINS(out.data, "max_connections = 1024 ; default\n");
    cfg back;
    cfg_defaults(&back);
    CHECK_EQ(cfg_load_string(err, "formatted", out.data, out.len, &back), 0);
    size_t n;
    const cfg_keyinfo *k = cfg_keys(&n);
    int diff = 0;
    for (size_t i = 0; i < n; i++) {
        char key[CFG_KEY_MAX];
        snprintf(key, sizeof key, "%s.%s", k[i].section, k[i].name);
        if (strcmp(get(&back, key), get(&next, key))) diff++;
    }
    CHECK_EQ(diff, 0);
    out.len = 0;
    CHECK_EQ(cfg_format(&next, true, &out), 0);
    CHECK_STR(out.data, "[server]\nsocket = " AP("/tmp/s") "\n\n[model]\nroots = " AP("/m1") "," AP("/m2") "\ncontext = 8192\n\n"
                        "[generation]\ntemperature = 1.2\n\n[log]\nlevel = warn\n");
    awq_buf_free(&out);
}

static void test_find(void) {
    CASE("cfg-4.1", "lookup order: --config, $AWQD_CONFIG, the user file, the system file");
    char err[AWQ_ERR_LEN], out[PLAT_PATH_MAX], p1[300], p2[300], xdg[300], userf[400];
    snprintf(p1, sizeof p1, "%s/explicit.ini", tmpdir);
    snprintf(p2, sizeof p2, "%s/env.ini", tmpdir);
    snprintf(xdg, sizeof xdg, "%s/xdg", tmpdir);
    snprintf(userf, sizeof userf, "%s/xdg/awqd/awqd.ini", tmpdir);
    write_text(p1, "[model]\ncontext = 1024\n");
    write_text(p2, "[model]\ncontext = 2048\n");
    char userdir[400];
#ifdef _WIN32
    /* the user file is %APPDATA%\awqd\awqd.ini there (joined with '\\') */
    snprintf(xdg, sizeof xdg, "%s\\appdata", tmpdir);
    snprintf(userdir, sizeof userdir, "%s\\awqd", xdg);
    snprintf(userf, sizeof userf, "%s\\awqd.ini", userdir);
    setenv("APPDATA", xdg, 1);
#else
    snprintf(userdir, sizeof userdir, "%s/xdg/awqd", tmpdir);
    setenv("XDG_CONFIG_HOME", xdg, 1);
#endif
    CHECK_EQ(plat_mkdirs(err, userdir, 0700), 0);
    write_text(userf, "[model]\ncontext = 3072\n");
    setenv("AWQD_CONFIG", p2, 1);
    CHECK_EQ(cfg_find_path(err, p1, out), 0);
    CHECK_STR(out, p1);
    CHECK_EQ(cfg_find_path(err, NULL, out), 0);
    CHECK_STR(out, p2);
    unsetenv("AWQD_CONFIG");
    CHECK_EQ(cfg_find_path(err, NULL, out), 0);
    CHECK_STR(out, userf);
    cfg c;
    char used[PLAT_PATH_MAX];
    CHECK_EQ(cfg_load(err, NULL, &c, used), 0);
    CHECK_STR(used, userf);
    CHECK_EQ(c.model.context, 3072);
#ifdef _WIN32
    /* then %PROGRAMDATA%\awqd\awqd.ini, the system-wide file */
    char progdata[400], sysf[500];
    snprintf(progdata, sizeof progdata, "%s\\programdata", tmpdir);
    snprintf(userdir, sizeof userdir, "%s\\awqd", progdata);
    snprintf(sysf, sizeof sysf, "%s\\awqd.ini", userdir);
    CHECK_EQ(plat_mkdirs(err, userdir, 0700), 0);
    write_text(sysf, "[model]\ncontext = 4000\n");
    setenv("PROGRAMDATA", progdata, 1);
    CHECK_EQ(cfg_find_path(err, NULL, out), 0);
    CHECK_STR(out, userf); /* the user's file still wins */
    unlink(userf);
    CHECK_EQ(cfg_find_path(err, NULL, out), 0);
    CHECK_STR(out, sysf);
    unlink(sysf);
    CHECK_EQ(cfg_find_path(err, NULL, out), 0);
    CHECK_STR(out, "");
#else
    /* HOME/.config when XDG_CONFIG_HOME is unset or relative */
    setenv("XDG_CONFIG_HOME", "relative/dir", 1);
    setenv("HOME", tmpdir, 1);
    char dotcfg[400];
    snprintf(dotcfg, sizeof dotcfg, "%s/.config/awqd", tmpdir);
    CHECK_EQ(plat_mkdirs(err, dotcfg, 0700), 0);
    snprintf(dotcfg, sizeof dotcfg, "%s/.config/awqd/awqd.ini", tmpdir);
    write_text(dotcfg, "[model]\ncontext = 4000\n");
    CHECK_EQ(cfg_find_path(err, NULL, out), 0);
    CHECK_STR(out, dotcfg);
    unlink(dotcfg);
    CHECK_EQ(cfg_find_path(err, NULL, out), 0);
    CHECK_STR(out, plat_is_file("/etc/awqd/awqd.ini") ? "/etc/awqd/awqd.ini" : "");
#endif
    /* a named file that is missing is an error, not a silent fallback */
    CHECK_EQ(cfg_find_path(err, "/nonexistent/awqd.ini", out), AWQ_ENOTFOUND);
    CHECK_STR(err, "--config /nonexistent/awqd.ini: no such file");
    setenv("AWQD_CONFIG", "/nonexistent/env.ini", 1);
    CHECK_EQ(cfg_find_path(err, NULL, out), AWQ_ENOTFOUND);
    CHECK_STR(err, "$AWQD_CONFIG /nonexistent/env.ini: no such file");
    CHECK_EQ(cfg_load(err, NULL, &c, NULL), AWQ_ENOTFOUND);
    CHECK_EQ(cfg_find_path(err, tmpdir, out), AWQ_EINVAL);
    CHECK_CONTAINS(err, "is a directory");
    unsetenv("AWQD_CONFIG");

    CASE("cfg-4.2", "the socket path default");
    cfg_defaults(&c);
#ifdef _WIN32
    /* a named pipe there: [server] pipe, never a socket file */
    CHECK_EQ(cfg_socket_path(err, &c, out), 0);
    CHECK_STR(out, "\\\\.\\pipe\\awqd");
    CHECK_EQ(cfg_set(err, &c, "server.pipe", "mine"), 0);
    CHECK_EQ(cfg_socket_path(err, &c, out), 0);
    CHECK_STR(out, "\\\\.\\pipe\\mine");
    return;
#endif
    setenv("XDG_RUNTIME_DIR", "/run/user/1234", 1);
    CHECK_EQ(cfg_socket_path(err, &c, out), 0);
    CHECK_STR(out, "/run/user/1234/awqd/awqd.sock");
    unsetenv("XDG_RUNTIME_DIR");
    CHECK_EQ(cfg_socket_path(err, &c, out), 0);
    CHECK_STR(out, "/run/awqd/awqd.sock");
    CHECK_EQ(cfg_set(err, &c, "server.socket", "/tmp/my.sock"), 0);
    CHECK_EQ(cfg_socket_path(err, &c, out), 0);
    CHECK_STR(out, "/tmp/my.sock");
}

static void test_save(void) {
    char err[AWQ_ERR_LEN], path[300];
    cfg c, back;

    CASE("cfg-5.1", "a first save creates the file (and its directory) with only changed keys");
    snprintf(path, sizeof path, "%s/new/sub/awqd.ini", tmpdir);
    cfg_defaults(&c);
    CHECK_EQ(cfg_set(err, &c, "model.context", "8192"), 0);
    CHECK_EQ(cfg_set(err, &c, "log.level", "debug"), 0);
    CHECK_EQ(cfg_save(err, &c, path), 0);
    CHECK_STR(slurp(path), "# awqd settings (see docs/configuration.md)\n\n[model]\ncontext = 8192\n\n[log]\nlevel = debug\n");
    cfg_defaults(&back);
    CHECK_EQ(cfg_load_file(err, path, &back), 0);
    CHECK_EQ(back.model.context, 8192);

    CASE("cfg-5.2", "saving keeps comments, order and untouched spelling; changes lines in place");
    snprintf(path, sizeof path, "%s/keep.ini", tmpdir);
    write_text(path,
               "# my settings\n"
               "[model]\n"
               "; the context I like\n"
               "context=4096 ; small box\n"
               "keep_alive = 300\n"
               "\n"
               "# trailing comment of model\n"
               "[generation]\n"
               "top_k = 40\n"
               "\n"
               "[server]\n"
               "max_frame_bytes = 16MiB\n");
    cfg_defaults(&c);
    CHECK_EQ(cfg_load_file(err, path, &c), 0);
    CHECK_EQ(cfg_set(err, &c, "model.context", "8192"), 0);       /* in place, comment kept */
    CHECK_EQ(cfg_set(err, &c, "generation.temperature", "0.2"), 0); /* appended to [generation] */
    CHECK_EQ(cfg_set(err, &c, "model.device", "cpu"), 0);          /* appended after keep_alive */
    CHECK_EQ(cfg_set(err, &c, "log.log_prompts", "true"), 0);      /* new section at the end */
    CHECK_EQ(cfg_save(err, &c, path), 0);
    CHECK_STR(slurp(path),
              "# my settings\n"
              "[model]\n"
              "; the context I like\n"
              "context=8192 ; small box\n"
              "keep_alive = 300\n"
              "device = cpu\n"
              "\n"
              "# trailing comment of model\n"
              "[generation]\n"
              "top_k = 40\n"
              "temperature = 0.2\n"
              "\n"
              "[server]\n"
              "max_frame_bytes = 16MiB\n"
              "\n"
              "[log]\n"
              "log_prompts = true\n");
    /* saving the same settings again changes nothing, byte for byte */
    char before[2048];
    snprintf(before, sizeof before, "%s", slurp(path));
    CHECK_EQ(cfg_save(err, &c, path), 0);
    CHECK_STR(slurp(path), before);
    /* back to the default value: the line stays, with the default written out */
    CHECK_EQ(cfg_set(err, &c, "model.keep_alive", "off"), 0);
    CHECK_EQ(cfg_save(err, &c, path), 0);
    CHECK_CONTAINS(slurp(path), "\nkeep_alive = off\n");

    CASE("cfg-5.3", "CRLF files stay CRLF; a section written twice gets new keys in its last part");
    snprintf(path, sizeof path, "%s/crlf.ini", tmpdir);
    write_text(path, "[log]\r\nlevel = warn\r\n[model]\r\ncontext = 1024\r\n[log]\r\nfile = " AP("/var/log/a") "\r\n");
    cfg_defaults(&c);
    CHECK_EQ(cfg_load_file(err, path, &c), 0);
    CHECK_EQ(cfg_set(err, &c, "log.log_prompts", "yes"), 0);
    CHECK_EQ(cfg_set(err, &c, "log.level", "error"), 0);
    CHECK_EQ(cfg_save(err, &c, path), 0);
    CHECK_STR(slurp(path), "[log]\r\nlevel = error\r\n[model]\r\ncontext = 1024\r\n[log]\r\nfile = " AP("/var/log/a") "\r\nlog_prompts = true\r\n");

    CASE("cfg-5.4", "emptying a value drops its inline comment (it would become the value)");
    snprintf(path, sizeof path, "%s/empty.ini", tmpdir);
    write_text(path, "[log]\nfile = " AP("/var/log/awqd.log") " ; rotated daily\n");
    cfg_defaults(&c);
    CHECK_EQ(cfg_load_file(err, path, &c), 0);
    CHECK_EQ(cfg_set(err, &c, "log.file", ""), 0);
    CHECK_EQ(cfg_save(err, &c, path), 0);
    CHECK_STR(slurp(path), "[log]\nfile = \n");
    cfg_defaults(&back);
    CHECK_EQ(cfg_load_file(err, path, &back), 0);
    CHECK_STR(back.log.file, "");

    CASE("cfg-5.5", "a file that does not parse is never overwritten");
    snprintf(path, sizeof path, "%s/broken.ini", tmpdir);
    write_text(path, "[model]\ncontext = lots\n# my notes\n");
    cfg_defaults(&c);
    CHECK_EQ(cfg_save(err, &c, path), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "not saved, the existing file has an error: ");
    CHECK_CONTAINS(err, "broken.ini:2: [model] context: 'lots' is not an integer");
    CHECK_STR(slurp(path), "[model]\ncontext = lots\n# my notes\n");

    CASE("cfg-5.6", "the file's permission bits are kept");
#ifdef _WIN32
    fprintf(stderr, "  skipped: Windows files have ACLs, not mode bits\n");
#else
    snprintf(path, sizeof path, "%s/mode.ini", tmpdir);
    write_text(path, "[model]\ncontext = 1024\n");
    chmod(path, 0600);
    cfg_defaults(&c);
    CHECK_EQ(cfg_set(err, &c, "model.context", "2048"), 0);
    CHECK_EQ(cfg_save(err, &c, path), 0);
    struct stat st;
    CHECK_EQ(stat(path, &st), 0);
    CHECK_EQ(st.st_mode & 07777, 0600);
#endif

    CASE("cfg-5.7", "a save that crashes before its rename leaves the old file whole");
    snprintf(path, sizeof path, "%s/crash.ini", tmpdir);
    const char *orig = "# precious\n[model]\ncontext = 2048\n";
    write_text(path, orig);
#ifdef _WIN32
    /* no fork there: leave what a crashed save leaves (half of the new text in
     * "<path>.tmp.<pid>", no rename) from this process */
    long pid = (long)GetCurrentProcessId();
    {
        char tmp[400];
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, pid);
        write_text(tmp, "# precious\n[model]\ncontext = 81");
    }
#else
    pid_t pid = fork();
    if (pid == 0) {
        /* the child does what plat_write_file_atomic does up to the rename, then dies: half
         * of the new text in "<path>.tmp.<pid>", no fsync, no rename */
        char tmp[400];
        snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        const char *half = "# precious\n[model]\ncontext = 81";
        if (fd >= 0 && write(fd, half, strlen(half)) > 0) _exit(3);
        _exit(4);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 3);
#endif
    char tmpname[400];
    snprintf(tmpname, sizeof tmpname, "%s.tmp.%ld", path, (long)pid);
    CHECK(plat_is_file(tmpname));
    CHECK_STR(slurp(path), orig);
    cfg_defaults(&back);
    CHECK_EQ(cfg_load_file(err, path, &back), 0);
    CHECK_EQ(back.model.context, 2048);
    /* and the next save works and replaces the file as a whole */
    cfg_defaults(&c);
    CHECK_EQ(cfg_load_file(err, path, &c), 0);
    CHECK_EQ(cfg_set(err, &c, "model.context", "8192"), 0);
    CHECK_EQ(cfg_save(err, &c, path), 0);
    CHECK_STR(slurp(path), "# precious\n[model]\ncontext = 8192\n");
    unlink(tmpname);

    CASE("cfg-5.8", "a save into a missing, unwritable place fails with the path");
    cfg_defaults(&c);
    CHECK_EQ(cfg_set(err, &c, "model.context", "8192"), 0);
#ifdef _WIN32
    /* a directory that cannot be made: its parent is a file */
    snprintf(path, sizeof path, "%s/a.ini/awqd-cannot/awqd.ini", tmpdir);
    CHECK(cfg_save(err, &c, path) < 0);
    CHECK_CONTAINS(err, "awqd-cannot");
#else
    CHECK(cfg_save(err, &c, "/proc/awqd-cannot/awqd.ini") < 0);
    CHECK_CONTAINS(err, "/proc/awqd-cannot");
#endif
}

/* Every key in the example file (commented out as "#key = default") and in the docs table. */
static void test_docs(void) {
    CASE("cfg-6.1", "config/awqd.ini.example names every key once, with its default");
    const char *src = h_env("AWQ_SRC");
    if (!src) {
        fprintf(stderr, "  AWQ_SRC not set: docs checks not run\n");
        h_fail++;
        return;
    }
    char path[600], err[AWQ_ERR_LEN];
    char *text;
    size_t len;
    snprintf(path, sizeof path, "%s/config/awqd.ini.example", src);
    CHECK_EQ(plat_read_file(err, path, 1 << 20, &text, &len), 0);
    if (!text) return;
    cfg as_is, uncommented, def;
    cfg_defaults(&def);
    cfg_defaults(&as_is);
    CHECK_EQ(cfg_load_string(err, path, text, len, &as_is), 0); /* everything commented: defaults */
    /* uncomment the "#key" lines: the file must then set every key exactly once, to its default */
    int settings = 0;
    for (size_t i = 0; i < len; i++) {
        if ((i == 0 || text[i - 1] == '\n') && text[i] == '#' && i + 1 < len && text[i + 1] >= 'a' && text[i + 1] <= 'z') {
            text[i] = ' ';
            settings++;
        }
    }
    size_t n;
    const cfg_keyinfo *k = cfg_keys(&n);
    cfg_defaults(&uncommented);
    int rc = cfg_load_string(err, path, text, len, &uncommented);
    CHECK_EQ(rc, 0);
    if (rc) fprintf(stderr, "  %s\n", err);
    CHECK_EQ(settings, (int)n); /* n distinct keys: duplicates would have failed to load */
    for (size_t i = 0; i < n; i++) {
        char key[CFG_KEY_MAX];
        snprintf(key, sizeof key, "%s.%s", k[i].section, k[i].name);
        CHECK_STR(get(&uncommented, key), k[i].def);
        CHECK_STR(get(&as_is, key), k[i].def);
    }
    free(text);

    CASE("cfg-6.2", "docs/configuration.md has a row per key with its default and reload rule");
    snprintf(path, sizeof path, "%s/docs/configuration.md", src);
    CHECK_EQ(plat_read_file(err, path, 1 << 20, &text, &len), 0);
    if (!text) return;
    for (size_t i = 0; i < n; i++) {
        char needle[CFG_KEY_MAX + 8], defcell[CFG_VALUE_MAX + 8];
        snprintf(needle, sizeof needle, "| `%s.%s` |", k[i].section, k[i].name);
        const char *row = strstr(text, needle);
        CHECK_CONTAINS(text, needle);
        if (!row) continue;
        const char *eol = strchr(row, '\n');
        char line[1024];
        snprintf(line, sizeof line, "%.*s", (int)(eol ? eol - row : (long)strlen(row)), row);
        if (k[i].def[0]) snprintf(defcell, sizeof defcell, "| `%s` |", k[i].def);
        else snprintf(defcell, sizeof defcell, "| (empty) |");
        CHECK_CONTAINS(line, defcell);
        CHECK_CONTAINS(line, k[i].live ? "| live |" : "| restart |");
        CHECK_CONTAINS(line, cfg_type_name(k[i].type));
    }
    free(text);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/awq-test-cfg-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_defaults();
    test_parse();
    test_keys();
    test_find();
    test_save();
    test_docs();
#ifndef _WIN32 /* no rm there; %TEMP% leftovers are harmless */
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
#endif
    return h_finish();
}
