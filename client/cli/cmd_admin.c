/* cmd_admin.c - the daemon's housekeeping from the command line: load (with progress),
 * unload, list, status, settings get/set, metrics, stop, ping. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "plat.h"

/* The common shape of a command without flags of its own: parse, check the positional count,
 * connect. Returns 0 with *c connected, -1 after --help, or an exit code. */
static int start(const cli_cmd_info *info, cli_opts *g, int argc, char **argv, int min_pos, int max_pos,
                 int io_timeout_ms, int *n_pos, awq_conn **c) {
    int rc = cli_parse(info, g, argc, argv, NULL, 0, n_pos);
    if (rc) return rc;
    if (*n_pos < min_pos) return cli_usage_err(info, "missing argument (see the usage)");
    if (*n_pos > max_pos) return cli_usage_err(info, "unexpected argument '%s'", argv[1 + max_pos]);
    return cli_connect(g, io_timeout_ms, c);
}

#define START(info, min, max, tmo)                                                                                 \
    int n_pos;                                                                                                     \
    awq_conn *c = NULL;                                                                                            \
    int rc = start(&(info), g, argc, argv, (min), (max), (tmo), &n_pos, &c);                                       \
    if (rc) return rc < 0 ? CLI_EXIT_OK : rc;                                                                      \
    char err[AWQ_ERR_LEN] = ""

/* A request that answers only "ok": print what happened. */
static int done_ok(cli_opts *g, awq_conn *c, int rc, const char *err, const char *what) {
    awq_close(c);
    if (rc) return cli_fail(rc, err);
    awq_buf b = {0};
    int e = g->json ? awq_buf_puts(&b, "{\"ok\":true}\n") : awq_buf_printf(&b, "%s\n", what);
    return cli_emit(&b, e);
}

/* ------------------------------------------------------------ load / unload ---- */

static const cli_cmd_info load_info = {
    "load",
    "usage: awq [GLOBAL OPTIONS] load DIR\n"
    "  Load the model in DIR (a Hugging Face AWQ directory under the daemon's model roots),\n"
    "  replacing the loaded one. Progress shows as a bar on a terminal, as lines\n"
    "  \"STAGE PCT%\" otherwise, as {\"stage\":...,\"pct\":...} lines with --json. Without\n"
    "  --timeout it waits as long as the load takes.\n",
};

typedef struct progress {
    const cli_opts *g;
    bool tty;
} progress;

static void on_progress(void *user, const char *stage, float pct) {
    const progress *p = user;
    if (!stage) stage = "";
    if (!isfinite(pct) || pct < 0) pct = 0;
    if (pct > 100) pct = 100;
    if (p->g->json) {
        printf("{\"stage\":\"%s\",\"pct\":%.1f}\n", stage, (double)pct);
    } else if (p->tty) {
        enum { WIDTH = 30 };
        int fill = (int)(pct * WIDTH / 100.0f + 0.5f);
        char bar[WIDTH + 1];
        for (int i = 0; i < WIDTH; i++) bar[i] = i < fill ? '#' : '.';
        bar[WIDTH] = 0;
        printf("\r[%s] %3.0f%% %-10s", bar, (double)pct, stage);
    } else {
        printf("%s %.0f%%\n", stage, (double)pct);
    }
    fflush(stdout);
}

int cli_cmd_load(cli_opts *g, int argc, char **argv) {
    START(load_info, 1, 1, -1);
    /* The daemon resolves paths itself, from its own working directory: send an absolute one. */
    char path[PLAT_PATH_MAX];
    if (plat_realpath(NULL, argv[1], path)) snprintf(path, sizeof path, "%s", argv[1]);
    progress p = {g, !g->json && cli_isatty(stdout)};
    rc = awq_load(err, c, path, on_progress, &p);
    if (p.tty) printf("\r\033[K"); /* clear the bar */
    if (rc) {
        awq_close(c);
        return cli_fail(rc, err);
    }
    awq_buf b = {0};
    int e;
    if (g->json) {
        e = awq_buf_puts(&b, "{\"loaded\":");
        if (!e) e = awq_buf_json_str(&b, path, strlen(path));
        if (!e) e = awq_buf_puts(&b, "}\n");
    } else {
        e = awq_buf_printf(&b, "loaded %s\n", path);
    }
    awq_close(c);
    return cli_emit(&b, e);
}

static const cli_cmd_info unload_info = {
    "unload",
    "usage: awq [GLOBAL OPTIONS] unload\n"
    "  Unload the model and free its memory; running generations end first.\n",
};

int cli_cmd_unload(cli_opts *g, int argc, char **argv) {
    START(unload_info, 0, 0, 0);
    rc = awq_unload(err, c);
    return done_ok(g, c, rc, err, "unloaded");
}

/* ------------------------------------------------------------ list ---- */

static const cli_cmd_info list_info = {
    "list",
    "usage: awq [GLOBAL OPTIONS] list\n"
    "  The model directories the daemon knows (its model roots), the loaded one marked.\n",
};

int cli_cmd_list(cli_opts *g, int argc, char **argv) {
    START(list_info, 0, 0, 0);
    awq_models m;
    rc = awq_list(err, c, &m);
    awq_close(c);
    if (rc) return cli_fail(rc, err);
    awq_buf b = {0};
    int e = 0;
    if (g->json) {
        e = awq_buf_puts(&b, "{\"models\":[");
        for (size_t i = 0; i < m.n && !e; i++) {
            e = awq_buf_puts(&b, i ? ",{\"name\":" : "{\"name\":");
            if (!e) e = awq_buf_json_str(&b, m.models[i].name, strlen(m.models[i].name));
            if (!e) e = awq_buf_puts(&b, ",\"path\":");
            if (!e) e = awq_buf_json_str(&b, m.models[i].path, strlen(m.models[i].path));
            if (!e)
                e = awq_buf_printf(&b, ",\"size\":%llu,\"loaded\":%s}", (unsigned long long)m.models[i].size,
                                   m.models[i].loaded ? "true" : "false");
        }
        if (!e) e = awq_buf_puts(&b, "]}\n");
    } else {
        size_t w = 4;
        for (size_t i = 0; i < m.n; i++)
            if (strlen(m.models[i].name) > w) w = strlen(m.models[i].name);
        if (w > 60) w = 60;
        e = awq_buf_printf(&b, "%-*s  %9s  %-6s  %s\n", (int)w, "NAME", "SIZE", "LOADED", "PATH");
        for (size_t i = 0; i < m.n && !e; i++)
            e = awq_buf_printf(&b, "%-*s  %7.2f GB  %-6s  %s\n", (int)w, m.models[i].name,
                               (double)m.models[i].size / 1e9, m.models[i].loaded ? "yes" : "", m.models[i].path);
    }
    awq_models_free(&m);
    return cli_emit(&b, e);
}

/* ------------------------------------------------------------ status / settings ---- */

/* A map as "key<sep>value" lines, or as one JSON object. */
static int emit_map(const cli_opts *g, const awq_map *m, const char *sep) {
    awq_buf b = {0};
    int e = 0;
    if (g->json) {
        e = cli_json_map(&b, m);
        if (!e) e = awq_buf_puts(&b, "\n");
    } else {
        for (size_t i = 0; i < m->n && !e; i++) {
            e = awq_buf_printf(&b, "%s%s", m->kv[i].key ? m->kv[i].key : "", sep);
            if (!e) e = cli_kv_text(&b, &m->kv[i]);
            if (!e) e = awq_buf_puts(&b, "\n");
        }
    }
    return cli_emit(&b, e);
}

static const cli_cmd_info status_info = {
    "status",
    "usage: awq [GLOBAL OPTIONS] status\n"
    "  The daemon's state: version, loaded model, memory, requests, limits.\n",
};

int cli_cmd_status(cli_opts *g, int argc, char **argv) {
    START(status_info, 0, 0, 0);
    awq_map m;
    rc = awq_status(err, c, &m);
    awq_close(c);
    if (rc) return cli_fail(rc, err);
    rc = emit_map(g, &m, ": ");
    awq_map_free(&m);
    return rc;
}

static const cli_cmd_info settings_info = {
    "settings",
    "usage: awq [GLOBAL OPTIONS] settings get [KEY]\n"
    "       awq [GLOBAL OPTIONS] settings set KEY VALUE\n"
    "  Read the daemon's settings (all as \"key = value\" lines, or one KEY's value alone), or\n"
    "  change one (live keys take effect at once; the daemon saves it to its settings file).\n"
    "  Keys are \"section.key\", as in docs/configuration.md.\n",
};

int cli_cmd_settings(cli_opts *g, int argc, char **argv) {
    int n_pos;
    int rc = cli_parse(&settings_info, g, argc, argv, NULL, 0, &n_pos);
    if (rc) return rc < 0 ? CLI_EXIT_OK : rc;
    const char *verb = n_pos ? argv[1] : "";
    bool get = !strcmp(verb, "get"), set = !strcmp(verb, "set");
    if (!get && !set)
        return n_pos ? cli_usage_err(&settings_info, "unknown action '%s': use get or set", verb)
                     : cli_usage_err(&settings_info, "missing action: use get or set");
    if (get && n_pos > 2) return cli_usage_err(&settings_info, "settings get takes at most one KEY");
    if (set && n_pos != 3) return cli_usage_err(&settings_info, "settings set needs KEY and VALUE");
    awq_conn *c;
    if ((rc = cli_connect(g, 0, &c))) return rc;
    char err[AWQ_ERR_LEN] = "";
    if (set) {
        rc = awq_settings_set(err, c, argv[2], argv[3]);
        awq_close(c);
        if (rc) return cli_fail(rc, err);
        awq_buf b = {0};
        int e;
        if (g->json) {
            e = awq_buf_puts(&b, "{\"key\":");
            if (!e) e = awq_buf_json_str(&b, argv[2], strlen(argv[2]));
            if (!e) e = awq_buf_puts(&b, ",\"value\":");
            if (!e) e = awq_buf_json_str(&b, argv[3], strlen(argv[3]));
            if (!e) e = awq_buf_puts(&b, "}\n");
        } else {
            e = awq_buf_printf(&b, "%s = %s\n", argv[2], argv[3]);
        }
        return cli_emit(&b, e);
    }
    const char *key = n_pos == 2 ? argv[2] : NULL;
    awq_map m;
    rc = awq_settings_get(err, c, key, &m);
    awq_close(c);
    if (rc) return cli_fail(rc, err);
    if (key && !g->json) { /* one value alone: easy to use in scripts */
        const awq_kv *kv = awq_map_get(&m, key);
        if (!kv && m.n == 1) kv = &m.kv[0];
        awq_buf b = {0};
        int e = kv ? cli_kv_text(&b, kv) : 0;
        if (!e && kv) e = awq_buf_puts(&b, "\n");
        awq_map_free(&m);
        if (!kv) {
            awq_buf_free(&b);
            return cli_fail(AWQ_EPROTO, "the daemon's answer does not hold the key asked for");
        }
        return cli_emit(&b, e);
    }
    rc = emit_map(g, &m, " = ");
    awq_map_free(&m);
    return rc;
}

/* ------------------------------------------------------------ metrics ---- */

static const cli_cmd_info metrics_info = {
    "metrics",
    "usage: awq [GLOBAL OPTIONS] metrics\n"
    "  The daemon's metrics in the Prometheus text format; --json gives {\"series\": value, ...}.\n",
};

/* Prometheus text to {"name{labels}": value}; comment lines are dropped, values that are not
 * finite numbers (NaN, +Inf) become null. */
static int metrics_json(awq_buf *b, const char *text) {
    int e = awq_buf_puts(b, "{");
    bool first = true;
    for (const char *p = text; *p && !e;) {
        const char *nl = strchr(p, '\n'), *end = nl ? nl : p + strlen(p);
        if (*p != '#' && end > p) {
            /* the value is the first field after the series (which may hold spaces in labels) */
            const char *brace = memchr(p, '}', (size_t)(end - p)), *sp = memchr(brace ? brace : p, ' ',
                                                                             (size_t)(end - (brace ? brace : p)));
            if (sp) {
                char val[64];
                size_t k = strcspn(sp + 1, " \n");
                if (k >= sizeof val) k = sizeof val - 1;
                memcpy(val, sp + 1, k);
                val[k] = 0;
                char *ve;
                double v = strtod(val, &ve);
                e = awq_buf_puts(b, first ? "" : ",");
                if (!e) e = awq_buf_json_str(b, p, (size_t)(sp - p));
                if (!e) e = ve != val && !*ve && isfinite(v) ? awq_buf_printf(b, ":%.17g", v) : awq_buf_puts(b, ":null");
                first = false;
            }
        }
        p = nl ? nl + 1 : end;
    }
    return e ? e : awq_buf_puts(b, "}\n");
}

int cli_cmd_metrics(cli_opts *g, int argc, char **argv) {
    START(metrics_info, 0, 0, 0);
    char *text = NULL;
    rc = awq_metrics(err, c, &text);
    awq_close(c);
    if (rc) return cli_fail(rc, err);
    awq_buf b = {0};
    int e = g->json ? metrics_json(&b, text) : awq_buf_puts(&b, text);
    awq_free(text);
    return cli_emit(&b, e);
}

/* ------------------------------------------------------------ stop / ping ---- */

static const cli_cmd_info stop_info = {
    "stop",
    "usage: awq [GLOBAL OPTIONS] stop\n"
    "  Ask the daemon to shut down (running generations end first). Under systemd, prefer\n"
    "  `systemctl stop awqd`: a socket-activated daemon starts again at the next request.\n",
};

int cli_cmd_stop(cli_opts *g, int argc, char **argv) {
    START(stop_info, 0, 0, 0);
    rc = awq_shutdown(err, c);
    return done_ok(g, c, rc, err, "awqd is shutting down");
}

static const cli_cmd_info ping_info = {
    "ping",
    "usage: awq [GLOBAL OPTIONS] ping\n"
    "  Check that the daemon answers, and how fast (one round trip).\n",
};

int cli_cmd_ping(cli_opts *g, int argc, char **argv) {
    START(ping_info, 0, 0, 0);
    uint64_t t0 = plat_now_ns();
    rc = awq_ping(err, c);
    double ms = (double)(plat_now_ns() - t0) / 1e6;
    const awq_server_info *info = awq_info(c);
    awq_buf b = {0};
    int e = 0;
    if (!rc) {
        if (g->json) {
            e = awq_buf_puts(&b, "{\"server\":");
            if (!e) e = awq_buf_json_str(&b, info->server ? info->server : "", info->server ? strlen(info->server) : 0);
            if (!e) e = awq_buf_printf(&b, ",\"ms\":%.3f,\"encrypted\":%s}\n", ms, info->encrypted ? "true" : "false");
        } else {
            e = awq_buf_printf(&b, "pong from %s in %.3f ms%s\n", info->server ? info->server : "awqd", ms,
                               info->encrypted ? " (encrypted)" : "");
        }
    }
    awq_close(c);
    if (rc) return cli_fail(rc, err);
    return cli_emit(&b, e);
}
