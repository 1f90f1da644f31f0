/* cfg_find.c - where the settings file and the daemon's socket are: the lookup order of
 * cfg_find_path and the default endpoint of cfg_socket_path (cfg.h). The OS differences live
 * inside one function each. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "plat.h"

/* Join up to three parts with the separator into out; AWQ_ETOOBIG when it does not fit. */
static int join3(char *out, const char *a, const char *b, const char *c) {
    char tmp[PLAT_PATH_MAX];
    if (plat_path_join(tmp, a, b)) return AWQ_ETOOBIG;
    return c ? plat_path_join(out, tmp, c) : (snprintf(out, PLAT_PATH_MAX, "%s", tmp), 0);
}

/* The per-user and system-wide candidates, most specific first; returns how many. A variable
 * that is unset or (XDG rule) not absolute is skipped. */
static int candidates(char out[2][PLAT_PATH_MAX]) {
    int n = 0;
#ifdef _WIN32
    const char *appdata = getenv("APPDATA"), *progdata = getenv("PROGRAMDATA");
    if (appdata && *appdata && join3(out[n], appdata, "awqd", "awqd.ini") == 0) n++;
    if (progdata && *progdata && join3(out[n], progdata, "awqd", "awqd.ini") == 0) n++;
#else
    const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
    if (xdg && xdg[0] == '/') {
        if (join3(out[n], xdg, "awqd", "awqd.ini") == 0) n++;
    } else if (home && home[0] == '/') {
        char dot[PLAT_PATH_MAX];
        if (plat_path_join(dot, home, ".config") == 0 && join3(out[n], dot, "awqd", "awqd.ini") == 0) n++;
    }
    snprintf(out[n++], PLAT_PATH_MAX, "/etc/awqd/awqd.ini");
#endif
    return n;
}

int cfg_find_path(char *err, const char *explicit_path, char *out) {
    out[0] = 0;
    const char *named = NULL, *what = NULL;
    if (explicit_path && *explicit_path) {
        named = explicit_path;
        what = "--config";
    } else {
        const char *env = getenv("AWQD_CONFIG");
        if (env && *env) {
            named = env;
            what = "$AWQD_CONFIG";
        }
    }
    if (named) {
        if (!plat_is_file(named)) {
            if (plat_is_dir(named))
                return awq_seterr(err, AWQ_EINVAL, "%s %s: is a directory, not a settings file", what, named);
            return awq_seterr(err, AWQ_ENOTFOUND, "%s %s: no such file", what, named);
        }
        if (strlen(named) >= PLAT_PATH_MAX) return awq_seterr(err, AWQ_ETOOBIG, "%s: path too long", what);
        snprintf(out, PLAT_PATH_MAX, "%s", named);
        return 0;
    }
    char cand[2][PLAT_PATH_MAX];
    int n = candidates(cand);
    for (int i = 0; i < n; i++) {
        if (plat_is_file(cand[i])) {
            memcpy(out, cand[i], strlen(cand[i]) + 1); /* both PLAT_PATH_MAX */
            return 0;
        }
    }
    return 0; /* none: built-in defaults */
}

int cfg_socket_path(char *err, const cfg *c, char *out) {
#ifdef _WIN32
    /* Windows listens on a named pipe, not a socket file */
    if (snprintf(out, PLAT_PATH_MAX, "\\\\.\\pipe\\%s", c->server.pipe) >= PLAT_PATH_MAX)
        return awq_seterr(err, AWQ_ETOOBIG, "[server] pipe: name too long");
    return 0;
#else
    if (c->server.socket[0]) {
        snprintf(out, PLAT_PATH_MAX, "%s", c->server.socket);
        return 0;
    }
    const char *rt = getenv("XDG_RUNTIME_DIR");
    if (rt && rt[0] == '/') {
        if (join3(out, rt, "awqd", "awqd.sock"))
            return awq_seterr(err, AWQ_ETOOBIG, "$XDG_RUNTIME_DIR is too long for a socket path");
        return 0;
    }
    snprintf(out, PLAT_PATH_MAX, "/run/awqd/awqd.sock");
    return 0;
#endif
}
