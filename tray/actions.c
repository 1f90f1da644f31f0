/* actions.c - awq-tray's menu actions, worker-event handling and test hook, shared by the two
 * front ends; the front end's part goes through tray_ui_ops. See actions.h. */
#include "actions.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void tray_actions_init(tray_actions *a, const tray_ui_ops *ops) {
    memset(a, 0, sizeof *a);
    a->ui = *ops;
    tray_view_stopped(&a->view);
}

void tray_actions_close(tray_actions *a) {
    tray_worker_free(a->w);
    a->w = NULL;
    tray_event_free(a->settings);
    a->settings = NULL;
}

/* ------------------------------------------------------------ start-up ---- */

/* sys.h's: the same words on both OSes ("systemd" is the Linux name of "service") */
int tray_start_mode_parse(char *err, const char *s, tray_start_mode *out) {
    if (!strcmp(s, "auto")) *out = TRAY_START_AUTO;
    else if (!strcmp(s, "service") || !strcmp(s, "systemd")) *out = TRAY_START_SERVICE;
    else if (!strcmp(s, "spawn")) *out = TRAY_START_SPAWN;
    else return awq_seterr(err, AWQ_EINVAL, "start mode '%s': expected auto, service (systemd) or spawn", s);
    return 0;
}

void tray_options_init(tray_options *o, const char *default_exe) {
    memset(o, 0, sizeof *o);
    o->exes[0] = default_exe;
    o->n_exes = 1;
    const char *t = getenv("AWQ_TRAY_TEST");
    o->test_hook = t && !strcmp(t, "1");
}

int tray_option(tray_options *o, const char *a, const char *v) {
    if (!strcmp(a, "--test-hook")) {
        o->test_hook = true;
        return 1;
    }
    const char **dst = !strcmp(a, "--socket") ? &o->socket : !strcmp(a, "--config") ? &o->config
                     : !strcmp(a, "--start-mode") ? &o->start_mode : !strcmp(a, "--unit") ? &o->unit
                     : !strcmp(a, "--awqd") ? &o->awqd : NULL;
    bool is_exe = !strcmp(a, "--allow-exe"), is_poll = !strcmp(a, "--poll-ms");
    if (!dst && !is_exe && !is_poll) return 0;
    if (!v) return AWQ_EINVAL;
    if (dst) *dst = v;
    else if (is_poll) o->poll_ms = atoi(v);
    else if (o->n_exes < TRAY_EXES_MAX) o->exes[o->n_exes++] = v; /* more are ignored, as ever */
    return 2;
}

cfg *tray_actions_configure(char *err, tray_actions *a, const tray_options *o, bool warn_cfg, int *exit_code) {
    *exit_code = 2;
    a->test_hook = o->test_hook;
    if (o->start_mode && tray_start_mode_parse(err, o->start_mode, &a->svc.mode) != 0) return NULL;
    snprintf(a->svc.unit, sizeof a->svc.unit, "%s", o->unit ? o->unit : "");
    snprintf(a->svc.awqd, sizeof a->svc.awqd, "%s", o->awqd ? o->awqd : "");
    snprintf(a->svc.config, sizeof a->svc.config, "%s", o->config ? o->config : "");

    /* the socket and keys as the awq CLI finds them: option, $AWQ_SOCKET, settings file, default */
    *exit_code = 1;
    cfg *c = malloc(sizeof *c);
    if (!c) {
        awq_seterr(err, AWQ_ENOMEM, "out of memory");
        return NULL;
    }
    if (cfg_load(err, o->config, c, NULL) != 0) {
        if (warn_cfg) fprintf(stderr, "awq-tray: %s (using built-in defaults)\n", err);
        cfg_defaults(c);
    }
    const char *env = getenv("AWQ_SOCKET"), *sock = o->socket ? o->socket : env && *env ? env : NULL;
    if (sock) {
        snprintf(a->socket, sizeof a->socket, "%s", sock);
        snprintf(a->svc.socket, sizeof a->svc.socket, "%s", sock);
    } else if (tray_sys_default_socket(err, c, a->socket) != 0) {
        free(c);
        return NULL;
    }
    return c;
}

int tray_actions_start(char *err, tray_actions *a, const cfg *c, const tray_options *o, tray_post_fn post) {
    /* encryption needs both key files: without them libawq could not prove the server, and the
     * binary check (which encryption turns off) would be lost for nothing */
    bool enc = c->security.encryption != CFG_ENC_OFF && c->security.client_key[0] && c->security.known_servers[0];
    tray_worker_opts wo = {.socket_path = a->socket,
                           .server_exes = o->exes,
                           .n_server_exes = o->n_exes,
                           .encrypt = enc,
                           .key_path = c->security.client_key,
                           .known_servers = c->security.known_servers,
                           .poll_ms = o->poll_ms,
                           .service = a->svc,
                           .post = post};
    a->w = tray_worker_create(err, &wo);
    return a->w ? 0 : AWQ_EINVAL;
}

/* ------------------------------------------------------------ output ---- */

void tray_actions_out(const tray_actions *a, const char *fmt, ...) {
    if (!a->test_hook) return;
    /* formatted whole, so a front end's out hook gets one line; a long one (a settings value,
     * a daemon message) goes on the heap rather than being cut */
    char small[1024], *line = small;
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    if (n >= (int)sizeof small) {
        char *big = malloc((size_t)n + 1);
        if (big) {
            vsnprintf(big, (size_t)n + 1, fmt, ap2);
            line = big;
        }
    }
    va_end(ap2);
    va_end(ap);
    if (n < 0) small[0] = 0;
    if (a->ui.out) {
        a->ui.out(a->ui.user, line);
    } else { /* stdout, flushed: the test reads each line as it comes */
        fputs(line, stdout);
        putchar('\n');
        fflush(stdout);
    }
    if (line != small) free(line);
}

void tray_actions_notify(const tray_actions *a, const char *title, const char *body) {
    tray_actions_out(a, "notify: %s: %s", title, body);
    if (a->test_hook) return; /* no popups while a test drives the tray */
    a->ui.notify(a->ui.user, title, body);
}

void tray_actions_error(const tray_actions *a, const char *what, const char *msg) {
    tray_actions_out(a, "error: %s: %s", what, msg);
    if (a->test_hook) return;
    a->ui.show_error(a->ui.user, what, msg);
}

const char *tray_actions_setting(const tray_actions *a, const char *key) {
    const char *v = a->settings ? tray_event_setting(a->settings, key) : NULL;
    return v ? v : "";
}

/* ------------------------------------------------------------ actions ---- */

void tray_actions_submit(tray_actions *a, tray_req_kind k, const char *arg, const char *value) {
    tray_req *r = calloc(1, sizeof *r); /* ~5 KiB: a path and a value */
    char err[AWQ_ERR_LEN];
    if (!r) {
        tray_actions_error(a, "awq-tray", "out of memory");
        return;
    }
    r->kind = k;
    snprintf(r->arg, sizeof r->arg, "%s", arg ? arg : "");
    snprintf(r->value, sizeof r->value, "%s", value ? value : "");
    if (tray_worker_submit(err, a->w, r) != 0) tray_actions_error(a, tray_req_name(k), err);
    free(r);
}

void tray_actions_setting_edited(tray_actions *a, const char *key, const char *value) {
    /* only what changed: each key is one atomic settings_set, validated by the daemon */
    if (value && strcmp(value, tray_actions_setting(a, key)) != 0) tray_actions_submit(a, TRAY_REQ_SET, key, value);
}

void tray_actions_load(tray_actions *a, const char *path) {
    char err[AWQ_ERR_LEN], *real = malloc(PLAT_PATH_MAX);
    if (!real) return;
    /* checked here as the daemon will check it, so a folder outside the roots is refused with
     * the roots named before anything is sent */
    if (tray_path_allowed(err, path, tray_actions_setting(a, "model.roots"), tray_actions_setting(a, "model.path"),
                          real) != 0) {
        tray_actions_out(a, "refused: %s", err);
        tray_actions_error(a, "This folder cannot be loaded", err);
    } else {
        tray_actions_submit(a, TRAY_REQ_LOAD, real, NULL);
    }
    free(real);
}

/* The chooser, offered the model roots: the likely places first. Roots that do not parse are
 * left out (the chooser still opens; the check after the choice says what is wrong). */
static void choose_folder(tray_actions *a) {
    char(*roots)[PLAT_PATH_MAX] = malloc(sizeof(char[TRAY_ROOTS_MAX][PLAT_PATH_MAX]));
    size_t n = 0;
    char err[AWQ_ERR_LEN];
    if (!roots || tray_roots_parse(err, tray_actions_setting(a, "model.roots"), roots, &n) != 0) n = 0;
    a->ui.choose_folder(a->ui.user, (const char(*)[PLAT_PATH_MAX])roots, n);
    free(roots);
}

static void open_settings(tray_actions *a) {
    if (!a->settings) { /* not fetched yet: ask, and open when they come */
        a->settings_wanted = true;
        tray_actions_submit(a, TRAY_REQ_SETTINGS, NULL, NULL);
        return;
    }
    a->ui.settings_dialog(a->ui.user);
}

static void open_chat(tray_actions *a) {
    char awq[PLAT_PATH_MAX], err[AWQ_ERR_LEN];
    if (tray_sys_find_program("awq", awq) != 0) {
        tray_sys_not_found_msg("awq", err);
        tray_actions_error(a, "Open a chat", err);
        return;
    }
    const char *argv[] = {awq, "--socket", a->socket, "run", NULL};
    if (tray_sys_terminal(err, argv) != 0) tray_actions_error(a, "Open a chat", err);
    else tray_actions_out(a, "opened: chat");
}

static void open_logs(tray_actions *a) {
    char err[AWQ_ERR_LEN], log[PLAT_PATH_MAX];
    const char *lf = tray_actions_setting(a, "log.file");
    if (*lf) snprintf(log, sizeof log, "%s", lf);
    else tray_sys_spawn_log(&a->svc, log);
    if (tray_sys_show_logs(err, &a->svc, log) != 0) tray_actions_error(a, "View logs", err);
    else tray_actions_out(a, "opened: logs");
}

bool tray_actions_enabled(const tray_actions *a, tray_item it) {
    tray_menu m;
    tray_menu_build(&a->view, &m);
    return (unsigned)it < TRAY_ITEM_COUNT && m.e[it].enabled;
}

void tray_actions_item(tray_actions *a, tray_item it, const char *arg) {
    switch (it) {
    case TRAY_ITEM_START: tray_actions_submit(a, TRAY_REQ_START, NULL, NULL); break;
    case TRAY_ITEM_STOP: tray_actions_submit(a, TRAY_REQ_STOP, NULL, NULL); break;
    case TRAY_ITEM_LOAD:
        if (arg) tray_actions_load(a, arg);
        else choose_folder(a);
        break;
    case TRAY_ITEM_UNLOAD: tray_actions_submit(a, TRAY_REQ_UNLOAD, NULL, NULL); break;
    case TRAY_ITEM_SETTINGS: open_settings(a); break;
    case TRAY_ITEM_CHAT: open_chat(a); break;
    case TRAY_ITEM_LOGS: open_logs(a); break;
    case TRAY_ITEM_QUIT: a->ui.quit(a->ui.user); break;
    case TRAY_ITEM_STATUS: break;
    }
}

/* ------------------------------------------------------------ worker events ---- */

static void dump_settings(const tray_actions *a) {
    for (size_t i = 0; a->settings && i < a->settings->n_settings; i++)
        tray_actions_out(a, "setting: %s = %s", a->settings->settings[i].key, a->settings->settings[i].value);
    tray_actions_out(a, "settings: end");
}

void tray_actions_event(tray_actions *a, tray_event *ev) {
    char l[TRAY_LABEL_MAX];
    switch (ev->kind) {
    case TRAY_EV_VIEW: {
        tray_state was = a->view.state;
        a->view = ev->view;
        tray_view_line(&a->view, l);
        tray_actions_out(a, "%s", l);
        a->ui.redraw(a->ui.user);
        if (was == TRAY_ST_LOADING && a->view.state == TRAY_ST_READY) {
            tray_status_label(&a->view, l);
            tray_actions_notify(a, "Model loaded", l + 6); /* without "awqd: " */
        }
        break;
    }
    case TRAY_EV_DONE:
        if (ev->rc) {
            char what[64];
            snprintf(what, sizeof what, "%s failed (%s)", tray_req_name(ev->req), awq_errname(ev->rc));
            tray_actions_out(a, "done: %s error %d", tray_req_name(ev->req), ev->rc);
            tray_actions_error(a, what, ev->message);
        } else {
            tray_actions_out(a, "done: %s ok: %s", tray_req_name(ev->req), ev->message);
            /* the user asked for these and waits for word; load has its own "Model loaded" */
            if (ev->req == TRAY_REQ_SET || ev->req == TRAY_REQ_START || ev->req == TRAY_REQ_STOP)
                tray_actions_notify(a, "awqd", ev->message);
        }
        break;
    case TRAY_EV_SETTINGS:
        tray_event_free(a->settings);
        a->settings = ev;
        ev = NULL;
        if (a->dump_settings_wanted) {
            a->dump_settings_wanted = false;
            dump_settings(a);
        }
        if (a->settings_wanted) {
            a->settings_wanted = false;
            open_settings(a);
        }
        break;
    }
    tray_event_free(ev);
}

/* ------------------------------------------------------------ test hook ---- */

/* The menu as the test hook prints it: tray_menu_dump's lines, then "menu: end". */
static void dump_menu(const tray_actions *a) {
    tray_menu m;
    awq_buf b = {0};
    tray_menu_build(&a->view, &m);
    if (tray_menu_dump(&m, &b) == 0) {
        for (char *p = b.data, *nl; p && *p; p = nl + 1) {
            nl = strchr(p, '\n');
            if (!nl) break;
            *nl = 0;
            tray_actions_out(a, "%s", p);
        }
        tray_actions_out(a, "menu: end");
    }
    awq_buf_free(&b);
}

void tray_actions_hook_line(tray_actions *a, const char *line) {
    char err[AWQ_ERR_LEN], l[TRAY_LABEL_MAX];
    tray_hook_cmd *c = malloc(sizeof *c); /* ~5 KiB: a path and a value */
    int rc = c ? tray_hook_parse(err, line, c) : AWQ_ENOMEM;
    if (rc < 0) tray_actions_out(a, "hook-error: %s", c ? err : "out of memory");
    if (rc == 0) {
        switch (c->op) {
        case TRAY_HOOK_CLICK:
            if (!tray_actions_enabled(a, c->item))
                tray_actions_out(a, "hook-error: %s is disabled now", tray_item_name(c->item));
            else tray_actions_item(a, c->item, c->item == TRAY_ITEM_LOAD ? c->arg : NULL);
            break;
        case TRAY_HOOK_SET: tray_actions_submit(a, TRAY_REQ_SET, c->arg, c->value); break;
        case TRAY_HOOK_DUMP_MENU: dump_menu(a); break;
        case TRAY_HOOK_DUMP_STATE:
            tray_view_line(&a->view, l);
            tray_actions_out(a, "%s", l);
            break;
        case TRAY_HOOK_SETTINGS:
            a->dump_settings_wanted = true;
            tray_actions_submit(a, TRAY_REQ_SETTINGS, NULL, NULL);
            break;
        }
    }
    free(c);
}

void tray_actions_hook_eof(tray_actions *a) {
    tray_actions_out(a, "bye"); /* stdin closed: the test is over */
    a->ui.quit(a->ui.user);
}
