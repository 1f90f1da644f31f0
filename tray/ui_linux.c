/* ui_linux.c - awq-tray's Linux front end: an AppIndicator (StatusNotifierItem; libayatana
 * falls back to an XEmbed tray icon when no SNI host runs) with a GTK 3 menu, the folder chooser
 * limited to the model roots, the Settings dialog, terminals for chat and logs, and the test
 * hook (--test-hook or AWQ_TRAY_TEST=1: commands on stdin, state transitions on stdout).
 *
 * Threads: everything here runs on the GTK main thread. The worker (worker.h) owns the daemon
 * connection; its events arrive through g_idle_add, so no call here ever waits on the daemon.
 */
#define _GNU_SOURCE
#include <gtk/gtk.h>
#include <libayatana-appindicator/app-indicator.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cfg.h"
#include "core.h"
#include "sys.h"
#include "worker.h"

#define EXES_MAX 8

static struct {
    AppIndicator *ind;
    GtkWidget *items[TRAY_ITEM_COUNT];
    tray_worker *w;
    tray_view view;
    tray_event *settings;          /* the latest SETTINGS event (owned), NULL before the first */
    bool test_hook;
    bool settings_wanted;          /* open the Settings dialog when the settings arrive */
    bool dump_settings_wanted;     /* print them (test hook) when they arrive */
    GtkWidget *settings_dlg;
    GtkWidget *settings_fields[16];
    char socket[PLAT_PATH_MAX];
    tray_service svc;
} ui;

/* ------------------------------------------------------------ output ---- */

/* A line for the test hook (stdout, flushed: the test reads it as it comes). */
static void AWQ_PRINTF(1, 2) out(const char *fmt, ...) {
    if (!ui.test_hook) return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* Tell the user something: the indicator's title, a desktop notification when notify-send is
 * installed (libnotify stays an optional dependency of the desktop, not of the build). */
static void notify(const char *title, const char *body) {
    out("notify: %s: %s", title, body);
    if (ui.test_hook) return; /* no popups while a test drives the tray */
    const char *argv[] = {"notify-send", "--app-name=awq-tray", "--icon=awq-tray-ready", title, body, NULL};
    char err[AWQ_ERR_LEN], path[PLAT_PATH_MAX];
    if (tray_sys_find_program("notify-send", path) == 0 && tray_sys_spawn(err, argv, NULL) != 0)
        fprintf(stderr, "awq-tray: %s\n", err);
}

/* An error the user must see: a non-modal dialog (never gtk_dialog_run: the tray keeps going). */
static void show_error(const char *what, const char *msg) {
    out("error: %s: %s", what, msg);
    if (ui.test_hook) return;
    GtkWidget *d = gtk_message_dialog_new(NULL, 0, GTK_MESSAGE_ERROR, GTK_BUTTONS_CLOSE, "%s", what);
    gtk_message_dialog_format_secondary_text(GTK_MESSAGE_DIALOG(d), "%s", msg);
    gtk_window_set_title(GTK_WINDOW(d), "awq-tray");
    g_signal_connect(d, "response", G_CALLBACK(gtk_widget_destroy), NULL);
    gtk_widget_show(d);
}

static const char *setting(const char *key) {
    const char *v = ui.settings ? tray_event_setting(ui.settings, key) : NULL;
    return v ? v : "";
}

static void submit(tray_req_kind k, const char *arg, const char *value) {
    tray_req *r = calloc(1, sizeof *r);
    char err[AWQ_ERR_LEN];
    if (!r) {
        show_error("awq-tray", "out of memory");
        return;
    }
    r->kind = k;
    snprintf(r->arg, sizeof r->arg, "%s", arg ? arg : "");
    snprintf(r->value, sizeof r->value, "%s", value ? value : "");
    if (tray_worker_submit(err, ui.w, r) != 0) show_error(tray_req_name(k), err);
    free(r);
}

/* ------------------------------------------------------------ drawing ---- */

static void redraw(void) {
    tray_menu m;
    tray_menu_build(&ui.view, &m);
    for (int i = 0; i < TRAY_ITEM_COUNT; i++) {
        gtk_menu_item_set_label(GTK_MENU_ITEM(ui.items[i]), m.e[i].label);
        gtk_widget_set_sensitive(ui.items[i], m.e[i].enabled);
    }
    char icon[64];
    snprintf(icon, sizeof icon, "awq-tray-%s", tray_state_name(ui.view.state));
    app_indicator_set_icon_full(ui.ind, icon, m.e[TRAY_ITEM_STATUS].label);
    app_indicator_set_title(ui.ind, m.e[TRAY_ITEM_STATUS].label);
}

/* ------------------------------------------------------------ settings dialog ---- */

static void settings_response(GtkDialog *d, gint resp, gpointer user) {
    (void)user;
    size_t n;
    const tray_setting *st = tray_settings(&n);
    if (resp == GTK_RESPONSE_ACCEPT) {
        for (size_t i = 0; i < n && i < 16; i++) {
            GtkWidget *f = ui.settings_fields[i];
            char *v = GTK_IS_COMBO_BOX_TEXT(f) ? gtk_combo_box_text_get_active_text(GTK_COMBO_BOX_TEXT(f))
                                                : g_strdup(gtk_entry_get_text(GTK_ENTRY(f)));
            /* only what changed: each key is one atomic settings_set, validated by the daemon */
            if (v && strcmp(v, setting(st[i].key)) != 0) submit(TRAY_REQ_SET, st[i].key, v);
            g_free(v);
        }
    }
    gtk_widget_destroy(GTK_WIDGET(d));
    ui.settings_dlg = NULL;
}

static void open_settings(void) {
    if (ui.settings_dlg) {
        gtk_window_present(GTK_WINDOW(ui.settings_dlg));
        return;
    }
    if (!ui.settings) { /* not fetched yet: ask, and open when they come */
        ui.settings_wanted = true;
        submit(TRAY_REQ_SETTINGS, NULL, NULL);
        return;
    }
    GtkWidget *d = gtk_dialog_new_with_buttons("awqd settings", NULL, 0, "_Cancel", GTK_RESPONSE_CANCEL, "_Save",
                                               GTK_RESPONSE_ACCEPT, NULL);
    GtkWidget *grid = gtk_grid_new();
    gtk_grid_set_row_spacing(GTK_GRID(grid), 6);
    gtk_grid_set_column_spacing(GTK_GRID(grid), 12);
    gtk_container_set_border_width(GTK_CONTAINER(grid), 12);
    size_t n;
    const tray_setting *st = tray_settings(&n);
    for (size_t i = 0; i < n && i < 16; i++) {
        GtkWidget *l = gtk_label_new(st[i].label), *f;
        gtk_label_set_xalign(GTK_LABEL(l), 0);
        const char *cur = setting(st[i].key);
        if (st[i].choices) {
            f = gtk_combo_box_text_new();
            char ch[128];
            snprintf(ch, sizeof ch, "%s", st[i].choices);
            int k = 0;
            for (char *tok = strtok(ch, "|"); tok; tok = strtok(NULL, "|"), k++) {
                gtk_combo_box_text_append_text(GTK_COMBO_BOX_TEXT(f), tok);
                if (!strcmp(tok, cur)) gtk_combo_box_set_active(GTK_COMBO_BOX(f), k);
            }
        } else {
            f = gtk_entry_new();
            gtk_entry_set_text(GTK_ENTRY(f), cur);
            gtk_entry_set_width_chars(GTK_ENTRY(f), 40);
        }
        ui.settings_fields[i] = f;
        gtk_grid_attach(GTK_GRID(grid), l, 0, (gint)i, 1, 1);
        gtk_grid_attach(GTK_GRID(grid), f, 1, (gint)i, 1, 1);
    }
    GtkWidget *note = gtk_label_new("Saved by awqd into its settings file; some keys take effect after a restart.");
    gtk_grid_attach(GTK_GRID(grid), note, 0, (gint)n, 2, 1);
    gtk_container_add(GTK_CONTAINER(gtk_dialog_get_content_area(GTK_DIALOG(d))), grid);
    g_signal_connect(d, "response", G_CALLBACK(settings_response), NULL);
    ui.settings_dlg = d;
    gtk_widget_show_all(d);
    out("dialog: settings");
}

/* ------------------------------------------------------------ load ---- */

/* Check path against the roots (as the daemon will) and submit the load. */
static void load_folder(const char *path) {
    char err[AWQ_ERR_LEN], *real = malloc(PLAT_PATH_MAX);
    if (!real) return;
    if (tray_path_allowed(err, path, setting("model.roots"), setting("model.path"), real) != 0) {
        out("refused: %s", err);
        show_error("This folder cannot be loaded", err);
    } else {
        submit(TRAY_REQ_LOAD, real, NULL);
    }
    free(real);
}

static void chooser_response(GtkDialog *d, gint resp, gpointer user) {
    (void)user;
    if (resp == GTK_RESPONSE_ACCEPT) {
        char *f = gtk_file_chooser_get_filename(GTK_FILE_CHOOSER(d));
        if (f) load_folder(f);
        g_free(f);
    }
    gtk_widget_destroy(GTK_WIDGET(d));
}

static void open_chooser(void) {
    GtkWidget *d = gtk_file_chooser_dialog_new("Load model", NULL, GTK_FILE_CHOOSER_ACTION_SELECT_FOLDER, "_Cancel",
                                               GTK_RESPONSE_CANCEL, "_Load", GTK_RESPONSE_ACCEPT, NULL);
    char (*roots)[PLAT_PATH_MAX] = malloc(sizeof(char[TRAY_ROOTS_MAX][PLAT_PATH_MAX]));
    size_t n = 0;
    char err[AWQ_ERR_LEN];
    /* the roots as shortcuts, the first as the starting folder: the likely places first */
    if (roots && tray_roots_parse(err, setting("model.roots"), roots, &n) == 0) {
        for (size_t i = 0; i < n; i++)
            if (plat_is_dir(roots[i])) gtk_file_chooser_add_shortcut_folder(GTK_FILE_CHOOSER(d), roots[i], NULL);
        if (n && plat_is_dir(roots[0])) gtk_file_chooser_set_current_folder(GTK_FILE_CHOOSER(d), roots[0]);
    }
    free(roots);
    g_signal_connect(d, "response", G_CALLBACK(chooser_response), NULL);
    gtk_widget_show(d);
    out("dialog: load");
}

/* ------------------------------------------------------------ menu actions ---- */

static void open_chat(void) {
    char awq[PLAT_PATH_MAX], err[AWQ_ERR_LEN];
    if (tray_sys_find_program("awq", awq) != 0) {
        show_error("Open a chat", "the awq command was not found beside awq-tray or on PATH");
        return;
    }
    const char *argv[] = {awq, "--socket", ui.socket, "run", NULL};
    if (tray_sys_terminal(err, argv) != 0) show_error("Open a chat", err);
    else out("opened: chat");
}

static void open_logs(void) {
    char err[AWQ_ERR_LEN], log[PLAT_PATH_MAX];
    const char *lf = setting("log.file");
    if (*lf) snprintf(log, sizeof log, "%s", lf);
    else tray_sys_spawn_log(&ui.svc, log);
    if (tray_sys_show_logs(err, &ui.svc, log) != 0) show_error("View logs", err);
    else out("opened: logs");
}

/* One menu item chosen, by a click or by the test hook (arg: load's folder, else NULL). */
static void do_item(tray_item it, const char *arg) {
    switch (it) {
    case TRAY_ITEM_START: submit(TRAY_REQ_START, NULL, NULL); break;
    case TRAY_ITEM_STOP: submit(TRAY_REQ_STOP, NULL, NULL); break;
    case TRAY_ITEM_LOAD:
        if (arg) load_folder(arg);
        else open_chooser();
        break;
    case TRAY_ITEM_UNLOAD: submit(TRAY_REQ_UNLOAD, NULL, NULL); break;
    case TRAY_ITEM_SETTINGS: open_settings(); break;
    case TRAY_ITEM_CHAT: open_chat(); break;
    case TRAY_ITEM_LOGS: open_logs(); break;
    case TRAY_ITEM_QUIT: gtk_main_quit(); break;
    case TRAY_ITEM_STATUS: break;
    }
}

static void on_activate(GtkMenuItem *mi, gpointer data) {
    (void)mi;
    do_item((tray_item)GPOINTER_TO_INT(data), NULL);
}

/* ------------------------------------------------------------ worker events ---- */

static void dump_settings(void) {
    for (size_t i = 0; ui.settings && i < ui.settings->n_settings; i++)
        out("setting: %s = %s", ui.settings->settings[i].key, ui.settings->settings[i].value);
    out("settings: end");
}

/* Runs on the main thread (g_idle_add); takes ev. */
static gboolean on_event(gpointer data) {
    tray_event *ev = data;
    char l[TRAY_LABEL_MAX];
    switch (ev->kind) {
    case TRAY_EV_VIEW: {
        tray_state was = ui.view.state;
        ui.view = ev->view;
        tray_view_line(&ui.view, l);
        out("%s", l);
        redraw();
        if (was == TRAY_ST_LOADING && ui.view.state == TRAY_ST_READY) {
            tray_status_label(&ui.view, l);
            notify("Model loaded", l + 6); /* without "awqd: " */
        }
        break;
    }
    case TRAY_EV_DONE:
        if (ev->rc) {
            char what[64];
            snprintf(what, sizeof what, "%s failed (%s)", tray_req_name(ev->req), awq_errname(ev->rc));
            out("done: %s error %d", tray_req_name(ev->req), ev->rc);
            show_error(what, ev->message);
        } else {
            out("done: %s ok: %s", tray_req_name(ev->req), ev->message);
            if (ev->req == TRAY_REQ_SET || ev->req == TRAY_REQ_START || ev->req == TRAY_REQ_STOP)
                notify("awqd", ev->message);
        }
        break;
    case TRAY_EV_SETTINGS:
        tray_event_free(ui.settings);
        ui.settings = ev;
        ev = NULL;
        if (ui.dump_settings_wanted) {
            ui.dump_settings_wanted = false;
            dump_settings();
        }
        if (ui.settings_wanted) {
            ui.settings_wanted = false;
            open_settings();
        }
        break;
    }
    tray_event_free(ev);
    return G_SOURCE_REMOVE;
}

/* The worker's post function (worker thread): hand over to the main loop. */
static void post(void *user, tray_event *ev) {
    (void)user;
    g_idle_add(on_event, ev);
}

/* ------------------------------------------------------------ test hook ---- */

static gboolean on_stdin(GIOChannel *ch, GIOCondition cond, gpointer user) {
    (void)user;
    gchar *line = NULL;
    gsize len = 0;
    GIOStatus st = (cond & (G_IO_IN | G_IO_PRI)) ? g_io_channel_read_line(ch, &line, &len, NULL, NULL) : G_IO_STATUS_EOF;
    if (st == G_IO_STATUS_AGAIN) return G_SOURCE_CONTINUE;
    if (st != G_IO_STATUS_NORMAL) { /* stdin closed: the test is over */
        g_free(line);
        out("bye");
        gtk_main_quit();
        return G_SOURCE_REMOVE;
    }
    char err[AWQ_ERR_LEN];
    tray_hook_cmd *c = malloc(sizeof *c);
    int rc = c ? tray_hook_parse(err, line, c) : AWQ_ENOMEM;
    g_free(line);
    if (rc < 0) {
        out("hook-error: %s", c ? err : "out of memory");
    } else if (rc == 0) {
        awq_buf b = {0};
        tray_menu m;
        char l[TRAY_LABEL_MAX];
        switch (c->op) {
        case TRAY_HOOK_CLICK: {
            tray_menu_build(&ui.view, &m);
            if (!m.e[c->item].enabled) out("hook-error: %s is disabled now", tray_item_name(c->item));
            else do_item(c->item, c->item == TRAY_ITEM_LOAD ? c->arg : NULL);
            break;
        }
        case TRAY_HOOK_SET: submit(TRAY_REQ_SET, c->arg, c->value); break;
        case TRAY_HOOK_DUMP_MENU:
            tray_menu_build(&ui.view, &m);
            if (tray_menu_dump(&m, &b) == 0) {
                fputs(b.data, stdout);
                out("menu: end");
            }
            awq_buf_free(&b);
            break;
        case TRAY_HOOK_DUMP_STATE:
            tray_view_line(&ui.view, l);
            out("%s", l);
            break;
        case TRAY_HOOK_SETTINGS:
            ui.dump_settings_wanted = true;
            submit(TRAY_REQ_SETTINGS, NULL, NULL);
            break;
        }
    }
    free(c);
    return G_SOURCE_CONTINUE;
}

/* ------------------------------------------------------------ start-up ---- */

static void usage(FILE *f) {
    fprintf(f, "usage: awq-tray [OPTIONS]\n\n"
               "  --socket PATH         the daemon's socket (default: settings file, $AWQ_SOCKET, libawq's)\n"
               "  --config FILE         settings file (read for socket and keys; passed to a spawned awqd)\n"
               "  --start-mode MODE     auto (systemd --user unit if installed, else spawn), service, spawn\n"
               "  --unit NAME           systemd unit (default awqd)\n"
               "  --awqd PATH           the daemon binary for spawn mode (default: beside awq-tray, PATH)\n"
               "  --allow-exe NAME      also accept a server binary with this name (default only awqd)\n"
               "  --poll-ms N           status poll period (default 1000)\n"
               "  --test-hook           read commands on stdin, print states on stdout (also AWQ_TRAY_TEST=1)\n"
               "  --help, --version\n");
}

static const char *icon_dir(void) {
    const char *e = getenv("AWQ_TRAY_ICONS");
    if (e && *e) return e;
    char p[PLAT_PATH_MAX];
    snprintf(p, sizeof p, "%s/awq-tray-ready.svg", AWQ_TRAY_ICON_INSTALL_DIR);
    if (access(p, R_OK) == 0) return AWQ_TRAY_ICON_INSTALL_DIR;
    return AWQ_TRAY_ICON_DIR; /* an uninstalled build: the source tree's icons */
}

int main(int argc, char **argv) {
    const char *sock = NULL, *config = NULL, *mode = NULL, *unit = NULL, *awqd = NULL, *exes[EXES_MAX] = {"awqd"};
    size_t n_exes = 1;
    int poll_ms = 0;
    ui.test_hook = getenv("AWQ_TRAY_TEST") && !strcmp(getenv("AWQ_TRAY_TEST"), "1");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--version")) {
            printf("awq-tray %s\n", AWQ_VERSION);
            return 0;
        }
        if (!strcmp(a, "--test-hook")) {
            ui.test_hook = true;
            continue;
        }
        const char **dst = !strcmp(a, "--socket") ? &sock : !strcmp(a, "--config") ? &config
                         : !strcmp(a, "--start-mode") ? &mode : !strcmp(a, "--unit") ? &unit
                         : !strcmp(a, "--awqd") ? &awqd : NULL;
        bool is_exe = !strcmp(a, "--allow-exe"), is_poll = !strcmp(a, "--poll-ms");
        if (!dst && !is_exe && !is_poll) {
            fprintf(stderr, "awq-tray: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (!v) {
            fprintf(stderr, "awq-tray: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (dst) *dst = v;
        else if (is_poll) poll_ms = atoi(v);
        else if (n_exes < EXES_MAX) exes[n_exes++] = v;
    }
    char err[AWQ_ERR_LEN];
    if (mode && tray_start_mode_parse(err, mode, &ui.svc.mode) != 0) {
        fprintf(stderr, "awq-tray: %s\n", err);
        return 2;
    }
    snprintf(ui.svc.unit, sizeof ui.svc.unit, "%s", unit ? unit : "");
    snprintf(ui.svc.awqd, sizeof ui.svc.awqd, "%s", awqd ? awqd : "");
    snprintf(ui.svc.config, sizeof ui.svc.config, "%s", config ? config : "");

    /* the socket and keys as the awq CLI finds them: option, $AWQ_SOCKET, settings file, default */
    cfg *c = malloc(sizeof *c);
    if (!c) return 1;
    char *cfg_path = malloc(PLAT_PATH_MAX);
    if (!cfg_path || cfg_load(err, config, c, cfg_path) != 0) {
        fprintf(stderr, "awq-tray: %s (using built-in defaults)\n", cfg_path ? err : "out of memory");
        cfg_defaults(c);
    }
    free(cfg_path);
    if (!sock && getenv("AWQ_SOCKET") && *getenv("AWQ_SOCKET")) sock = getenv("AWQ_SOCKET");
    if (sock) snprintf(ui.socket, sizeof ui.socket, "%s", sock);
    else if (cfg_socket_path(err, c, ui.socket) != 0 && awq_default_socket_path(err, ui.socket, sizeof ui.socket) != 0) {
        fprintf(stderr, "awq-tray: %s\n", err);
        free(c);
        return 1;
    }
    if (sock) snprintf(ui.svc.socket, sizeof ui.svc.socket, "%s", sock);

    gtk_init(&argc, &argv);
    ui.ind = app_indicator_new("awq-tray", "awq-tray-stopped", APP_INDICATOR_CATEGORY_APPLICATION_STATUS);
    app_indicator_set_icon_theme_path(ui.ind, icon_dir());
    GtkWidget *menu = gtk_menu_new();
    tray_view_stopped(&ui.view);
    tray_menu m;
    tray_menu_build(&ui.view, &m);
    for (int i = 0; i < TRAY_ITEM_COUNT; i++) {
        ui.items[i] = gtk_menu_item_new_with_label(m.e[i].label);
        g_signal_connect(ui.items[i], "activate", G_CALLBACK(on_activate), GINT_TO_POINTER(i));
        gtk_menu_shell_append(GTK_MENU_SHELL(menu), ui.items[i]);
        if (m.e[i].separator_after) gtk_menu_shell_append(GTK_MENU_SHELL(menu), gtk_separator_menu_item_new());
    }
    gtk_widget_show_all(menu);
    app_indicator_set_menu(ui.ind, GTK_MENU(menu));
    app_indicator_set_status(ui.ind, APP_INDICATOR_STATUS_ACTIVE);
    redraw();

    bool enc = c->security.encryption != CFG_ENC_OFF && c->security.client_key[0] && c->security.known_servers[0];
    tray_worker_opts o = {.socket_path = ui.socket,
                          .server_exes = exes,
                          .n_server_exes = n_exes,
                          .encrypt = enc,
                          .key_path = c->security.client_key,
                          .known_servers = c->security.known_servers,
                          .poll_ms = poll_ms,
                          .service = ui.svc,
                          .post = post};
    ui.w = tray_worker_create(err, &o);
    free(c);
    if (!ui.w) {
        fprintf(stderr, "awq-tray: %s\n", err);
        return 1;
    }
    GIOChannel *in = NULL;
    if (ui.test_hook) {
        in = g_io_channel_unix_new(0);
        g_io_add_watch(in, G_IO_IN | G_IO_PRI | G_IO_HUP | G_IO_ERR, on_stdin, NULL);
        out("awq-tray: test hook on %s", ui.socket);
    }
    gtk_main();
    tray_worker_free(ui.w);
    if (in) g_io_channel_unref(in);
    tray_event_free(ui.settings);
    g_object_unref(ui.ind);
    return 0;
}
