/* cli.c - what every `awq` command shares: global options, the argument parser, connecting
 * (socket and key lookup), error reporting, JSON output helpers and the Ctrl-C flag. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "cli.h"
#include "plat.h"

/* ------------------------------------------------------------ global options ---- */

static int need_value(int argc, char **argv, int i) {
    if (i + 1 < argc) return 0;
    fprintf(stderr, "awq: %s needs a value (see awq --help)\n", argv[i]);
    return CLI_EXIT_USAGE;
}

int cli_global_opt(cli_opts *o, int argc, char **argv, int *i) {
    const char *a = argv[*i];
    if (!strcmp(a, "--json")) {
        o->json = true;
        return 1;
    }
    if (!strcmp(a, "--encrypt")) {
        o->encrypt = true;
        return 1;
    }
    bool sock = !strcmp(a, "--socket"), key = !strcmp(a, "--key"), known = !strcmp(a, "--known-servers"),
         tmo = !strcmp(a, "--timeout"), pipe = !strcmp(a, "--pipe");
    if (!sock && !key && !known && !tmo && !pipe) return 0;
    if (need_value(argc, argv, *i)) return CLI_EXIT_USAGE;
    const char *v = argv[++*i];
    if (tmo) {
        char *end;
        errno = 0;
        long ms = strtol(v, &end, 10);
        if (errno || end == v || *end || ms < 1 || ms > 86400000L) {
            fprintf(stderr, "awq: --timeout '%s': expected milliseconds in [1, 86400000]\n", v);
            return CLI_EXIT_USAGE;
        }
        o->timeout_ms = (int)ms;
        return 1;
    }
    if (!*v) {
        fprintf(stderr, "awq: %s: the path is empty\n", a);
        return CLI_EXIT_USAGE;
    }
    if (pipe) {
#ifdef _WIN32
        /* the pipe transport takes a bare NAME as \\.\pipe\NAME */
        if (strpbrk(v, "\\/")) {
            fprintf(stderr, "awq: --pipe '%s': expected a pipe name like awqd, not a path (or use --socket \\\\.\\pipe\\NAME)\n", v);
            return CLI_EXIT_USAGE;
        }
        o->socket = v;
#else
        fprintf(stderr, "awq: --pipe is for the Windows named pipe; on this system use --socket PATH\n");
        return CLI_EXIT_USAGE;
#endif
    } else if (sock) o->socket = v;
    else if (key) o->key = v, o->encrypt = true;
    else o->known = v, o->encrypt = true;
    return 1;
}

/* ------------------------------------------------------------ argument parser ---- */

int cli_usage_err(const cli_cmd_info *cmd, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "awq %s: %s (see 'awq %s --help')\n", cmd->name, msg, cmd->name);
    return CLI_EXIT_USAGE;
}

static int set_flag(const cli_cmd_info *cmd, const cli_flag *f, const char *a, const char *v) {
    char *end;
    errno = 0;
    switch (f->kind) {
    case CLI_F_BOOL:
        *(bool *)f->dst = true;
        break;
    case CLI_F_STR:
        *(const char **)f->dst = v;
        break;
    case CLI_F_U32: {
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end || (double)x < f->lo || (double)x > f->hi)
            return cli_usage_err(cmd, "%s '%s': expected an integer in [%.0f, %.0f]", a, v, f->lo, f->hi);
        *(uint32_t *)f->dst = (uint32_t)x;
        break;
    }
    case CLI_F_FLOAT: {
        double x = strtod(v, &end);
        if (errno || end == v || *end || !isfinite(x) || x < f->lo || x > f->hi)
            return cli_usage_err(cmd, "%s '%s': expected a number in [%g, %g]", a, v, f->lo, f->hi);
        *(float *)f->dst = (float)x;
        break;
    }
    case CLI_F_U64: {
        unsigned long long x = strtoull(v, &end, 10);
        if (errno || end == v || *end || v[0] == '-' || v[0] == '+')
            return cli_usage_err(cmd, "%s '%s': expected an unsigned integer", a, v);
        *(uint64_t *)f->dst = (uint64_t)x;
        break;
    }
    case CLI_F_LIST: {
        cli_list *l = f->dst;
        if (l->n == sizeof l->v / sizeof l->v[0])
            return cli_usage_err(cmd, "%s: at most %zu values", a, sizeof l->v / sizeof l->v[0]);
        l->v[l->n++] = v;
        break;
    }
    }
    if (f->given) *f->given = true;
    return 0;
}

int cli_parse(const cli_cmd_info *cmd, cli_opts *g, int argc, char **argv, const cli_flag *flags, size_t n_flags,
              int *n_pos) {
    int np = 0;
    bool rest = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        /* "-" alone (stdin) and negative numbers are positional */
        bool opt = !rest && a[0] == '-' && a[1] && !(a[1] >= '0' && a[1] <= '9');
        if (!opt) {
            if (np >= CLI_MAX_POS) return cli_usage_err(cmd, "more than %d arguments", CLI_MAX_POS);
            argv[1 + np++] = argv[i]; /* 1 + np <= i: never overwrites what is still to be read */
            continue;
        }
        if (!strcmp(a, "--")) {
            rest = true;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(cmd->usage, stdout);
            return -1;
        }
        const cli_flag *f = NULL;
        for (size_t k = 0; k < n_flags && !f; k++)
            if (!strcmp(a, flags[k].name) || (flags[k].alias && !strcmp(a, flags[k].alias))) f = &flags[k];
        if (f) {
            const char *v = NULL;
            if (f->kind != CLI_F_BOOL) {
                if (i + 1 >= argc) return cli_usage_err(cmd, "%s needs a value", a);
                v = argv[++i];
            }
            int rc = set_flag(cmd, f, a, v);
            if (rc) return rc;
            continue;
        }
        int rc = cli_global_opt(g, argc, argv, &i);
        if (rc == 1) continue;
        if (rc) return rc;
        return cli_usage_err(cmd, "unknown option '%s'", a);
    }
    *n_pos = np;
    return 0;
}

/* ------------------------------------------------------------ connecting ---- */

int cli_user_config_dir(char *err, char *out) {
    const char *x = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    int n;
#ifdef _WIN32
    /* %APPDATA%\awqd, where the settings lookup (cfg_find) looks for the user's awqd.ini */
    const char *appdata = getenv("APPDATA");
    if (!appdata || !appdata[0]) return awq_seterr(err, AWQ_ENOTFOUND, "%%APPDATA%% is not set");
    n = snprintf(out, CLI_PATH_MAX, "%s\\awqd", appdata);
    (void)x;
    (void)home;
#else
    if (x && x[0] == '/') n = snprintf(out, CLI_PATH_MAX, "%s/awqd", x);
    else if (home && home[0]) n = snprintf(out, CLI_PATH_MAX, "%s/.config/awqd", home);
    else return awq_seterr(err, AWQ_ENOTFOUND, "neither $XDG_CONFIG_HOME nor $HOME is set");
#endif
    if (n < 0 || n >= CLI_PATH_MAX) return awq_seterr(err, AWQ_ETOOBIG, "the config directory path is too long");
    return 0;
}

/* Fill what the command line and the environment left open from the settings file the daemon
 * would read ([server] socket, [security] client_key / known_servers), then from the built-in
 * defaults. A broken settings file is only a warning: the client can still work. */
static void resolve(cli_opts *o) {
    if (!o->socket) o->socket = getenv("AWQ_SOCKET") && getenv("AWQ_SOCKET")[0] ? getenv("AWQ_SOCKET") : NULL;
    bool need_keys = o->encrypt && (!o->key || !o->known);
    if (o->socket && !need_keys) return;
    char err[AWQ_ERR_LEN] = "", used[PLAT_PATH_MAX];
    cfg *c = malloc(sizeof *c); /* about 40 KB: keep it off the stack */
    if (c && cfg_load(err, NULL, c, used) != 0) {
        fprintf(stderr, "awq: warning: ignoring the settings file: %s\n", err);
        free(c);
        c = NULL;
    }
#ifdef _WIN32
    /* [server] pipe names the endpoint there; [server] socket is for Unix sockets */
    if (!o->socket && c && cfg_socket_path(NULL, c, o->socket_buf) == 0) o->socket = o->socket_buf;
#else
    if (!o->socket && c && c->server.socket[0]) {
        snprintf(o->socket_buf, sizeof o->socket_buf, "%s", c->server.socket);
        o->socket = o->socket_buf;
    }
#endif
    if (!o->socket && awq_default_socket_path(err, o->socket_buf, sizeof o->socket_buf) == 0)
        o->socket = o->socket_buf;
    char dir[CLI_PATH_MAX];
    bool have_dir = cli_user_config_dir(NULL, dir) == 0;
    if (need_keys && !o->key) {
        if (c && c->security.client_key[0]) snprintf(o->key_buf, sizeof o->key_buf, "%s", c->security.client_key);
        else if (have_dir) snprintf(o->key_buf, sizeof o->key_buf, "%.4000s/client.key", dir);
        if (o->key_buf[0]) o->key = o->key_buf;
    }
    if (need_keys && !o->known) {
        if (c && c->security.known_servers[0])
            snprintf(o->known_buf, sizeof o->known_buf, "%s", c->security.known_servers);
        else if (have_dir) snprintf(o->known_buf, sizeof o->known_buf, "%.4000s/known_servers", dir);
        if (o->known_buf[0]) o->known = o->known_buf;
    }
    free(c);
}

static void on_new_server(void *user, const char *server, const char *fp) {
    (void)user;
    fprintf(stderr, "awq: pinned the key of the new server %s: %s (in the known_servers file)\n", server, fp);
}

int cli_connect(cli_opts *o, int io_timeout_ms, awq_conn **out) {
    resolve(o);
    awq_connect_opts co = {0};
    co.socket_path = o->socket;
    co.connect_timeout_ms = o->timeout_ms;
    co.io_timeout_ms = o->timeout_ms ? o->timeout_ms : io_timeout_ms;
    co.encrypt = o->encrypt;
    co.key_path = o->key;
    co.known_servers = o->known;
    co.client_name = "awq " AWQ_VERSION;
    co.on_new_server = on_new_server;
    char err[AWQ_ERR_LEN] = "";
    int rc = awq_connect(err, &co, out);
    if (!rc) return CLI_EXIT_OK;
    /* Only a daemon that is not there (or not answering) gets the start-it hint; a refused key
     * or permission says exactly what to fix instead. */
    bool absent = rc == AWQ_ENOTFOUND || rc == AWQ_ETIMEDOUT || rc == AWQ_ECLOSED || rc == AWQ_EIO;
    /* libawq's own short hint would say the same twice */
    static const char dup[] = " (is awqd running?)";
    size_t el = strlen(err), dl = sizeof dup - 1;
    if (absent && el >= dl && !strcmp(err + el - dl, dup)) err[el - dl] = 0;
    fprintf(stderr, "awq: cannot connect to awqd at %s: %s%s\n", o->socket ? o->socket : "(default socket)",
            err[0] ? err : awq_strerror(rc),
            absent ? " \xe2\x80\x94 is the daemon running? start it with `awqd`" : "");
    return CLI_EXIT_CONNECT;
}

int cli_fail(int code, const char *err) {
    fprintf(stderr, "awq: %s: %s\n", awq_errname(code), err && err[0] ? err : awq_strerror(code));
    return CLI_EXIT_FAILED;
}

int cli_read_all(char *err, FILE *f, const char *what, char **data, size_t *len) {
    awq_buf b = {0};
    char chunk[65536];
    size_t got;
    *data = NULL;
    *len = 0;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + got > CLI_INPUT_MAX) {
            awq_buf_free(&b);
            return awq_seterr(err, AWQ_ETOOBIG, "%s: longer than %u bytes", what, CLI_INPUT_MAX);
        }
        if (awq_buf_append(&b, chunk, got)) {
            awq_buf_free(&b);
            return awq_seterr(err, AWQ_ENOMEM, "out of memory");
        }
    }
    if (ferror(f)) {
        awq_buf_free(&b);
        return awq_seterr(err, AWQ_EIO, "%s: read error: %s", what, strerror(errno));
    }
    if (awq_buf_append(&b, "", 1)) { /* the NUL, not counted */
        awq_buf_free(&b);
        return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    }
    *len = b.len - 1;
    *data = awq_buf_take(&b);
    return 0;
}

/* ------------------------------------------------------------ output ---- */

int cli_emit(awq_buf *b, int e) {
    int rc = CLI_EXIT_OK;
    if (e) rc = cli_fail(AWQ_ENOMEM, "out of memory");
    else if (b->len && (fwrite(b->data, 1, b->len, stdout) != b->len || fflush(stdout)))
        rc = cli_fail(AWQ_EIO, "cannot write to stdout");
    awq_buf_free(b);
    return rc;
}

int cli_json_ids(awq_buf *b, const uint32_t *ids, size_t n) {
    int e = awq_buf_puts(b, "[");
    for (size_t i = 0; i < n && !e; i++) e = awq_buf_printf(b, "%s%u", i ? "," : "", ids[i]);
    return e ? e : awq_buf_puts(b, "]");
}

static int json_kv_value(awq_buf *b, const awq_kv *kv) {
    switch (kv->kind) {
    case AWQ_KV_STR:
        return awq_buf_json_str(b, kv->s ? kv->s : "", kv->s ? strlen(kv->s) : 0);
    case AWQ_KV_INT:
        return awq_buf_printf(b, "%lld", (long long)kv->i);
    case AWQ_KV_FLOAT:
        return isfinite(kv->f) ? awq_buf_printf(b, "%.17g", kv->f) : awq_buf_puts(b, "null");
    case AWQ_KV_BOOL:
        return awq_buf_puts(b, kv->b ? "true" : "false");
    }
    return awq_buf_puts(b, "null");
}

int cli_json_map(awq_buf *b, const awq_map *m) {
    int e = awq_buf_puts(b, "{");
    for (size_t i = 0; i < m->n && !e; i++) {
        const char *k = m->kv[i].key ? m->kv[i].key : "";
        e = awq_buf_puts(b, i ? "," : "");
        if (!e) e = awq_buf_json_str(b, k, strlen(k));
        if (!e) e = awq_buf_puts(b, ":");
        if (!e) e = json_kv_value(b, &m->kv[i]);
    }
    return e ? e : awq_buf_puts(b, "}");
}

int cli_kv_text(awq_buf *b, const awq_kv *kv) {
    if (kv->kind == AWQ_KV_STR) return awq_buf_puts(b, kv->s ? kv->s : "");
    if (kv->kind == AWQ_KV_FLOAT) return awq_buf_printf(b, "%g", kv->f);
    return json_kv_value(b, kv);
}

/* ------------------------------------------------------------ Ctrl-C ---- */

/* Set by the handler of term_posix.c / term_win.c. */
volatile sig_atomic_t cli_interrupted = 0;
