/* ui_linux.c - awq-tray's Linux front end: an AppIndicator (StatusNotifierItem; libayatana
 * falls back to an XEmbed tray icon when no SNI host runs) with a GTK 3 menu, the folder chooser
 * limited to the model roots, the Settings dialog, terminals for chat and logs, and the test
 * hook (--test-hook or AWQ_TRAY_TEST=1: commands on stdin, state transitions on stdout). What
 * each item, event and hook line does is decided in actions.c, shared with ui_win.c; this file
 * is the GTK side of it (the tray_ui_ops hooks) and the start-up.
 *
 * Threads: everything here runs on the GTK main thread. The worker (worker.h) owns the daemon
 * connection; its events arrive through g_idle_add, so no call here ever waits on the daemon.
 */
#define _GNU_SOURCE
#include <gtk/gtk.h>
#include <libayatana-appindicator/app-indicator.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "actions.h"
#include "cfg.h"
#include "core.h"
#include "sys.h"
#include "worker.h"

static struct {
    tray_actions a; /* the shared part: view, settings, worker, socket, service (actions.h) */
    AppIndicator *ind;
    GtkWidget *items[TRAY_ITEM_COUNT];
    GtkWidget *settings_dlg;
    GtkWidget *settings_fields[16];
} ui;

/* ------------------------------------------------------------ notices ---- */

/* Tell the user something: the indicator's title, a desktop notification when notify-send is
 * installed (libnotify stays an optional dependency of the desktop, not of the build). */
static void notify(void *user, const char *title, const char *body) {
    (void)user;
    const char *argv[] = {"notify-send", "--app-name=awq-tray", "--icon=awq-tray-ready", title, body, NULL};
    char err[AWQ_ERR_LEN], path[PLAT_PATH_MAX];
    if (tray_sys_find_program("notify-send", path) == 0 && tray_sys_spawn(err, argv, NULL) != 0)
        fprintf(stderr, "awq-tray: %s\n", err);
}

/* An error the user must see: a non-modal dialog (never gtk_dialog_run: the tray keeps going). */
static void show_error(void *user, const char *what, const char *msg) {
    (void)user;
    GtkWidget *d = gtk_message_dialog_new(NULL, 0, GTK_MESSAGE_ERROR, GTK_BUTTONS_CLOSE, "%s", what);
    gtk_message_dialog_format_secondary_text(GTK_MESSAGE_DIALOG(d), "%s", msg);
    gtk_window_set_title(GTK_WINDOW(d), "awq-tray");
    g_signal_connect(d, "response", G_CALLBACK(gtk_widget_destroy), NULL);
    gtk_widget_show(d);
}

static void quit(void *user) {
    (void)user;
    gtk_main_quit();
}

/* ------------------------------------------------------------ drawing ---- */

static void redraw(void *user) {
    (void)user;
    tray_menu m;
    tray_menu_build(&ui.a.view, &m);
    for (int i = 0; i < TRAY_ITEM_COUNT; i++) {
        gtk_menu_item_set_label(GTK_MENU_ITEM(ui.items[i]), m.e[i].label);
        gtk_widget_set_sensitive(ui.items[i], m.e[i].enabled);
    }
    char icon[64];
    snprintf(icon, sizeof icon, "awq-tray-%s", tray_state_name(ui.a.view.state));
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
            tray_actions_setting_edited(&ui.a, st[i].key, v);
            g_free(v);
        }
    }
    gtk_widget_destroy(GTK_WIDGET(d));
    ui.settings_dlg = NULL;
}

static void settings_dialog(void *user) {
    (void)user;
    if (ui.settings_dlg) {
        gtk_window_present(GTK_WINDOW(ui.settings_dlg));
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
        const char *cur = tray_actions_setting(&ui.a, st[i].key);
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
    tray_actions_out(&ui.a, "dialog: settings");
}

/* ------------------------------------------------------------ load ---- */

static void chooser_response(GtkDialog *d, gint resp, gpointer user) {
    (void)user;
    if (resp == GTK_RESPONSE_ACCEPT) {
        char *f = gtk_file_chooser_get_filename(GTK_FILE_CHOOSER(d));
        if (f) tray_actions_load(&ui.a, f);
        g_free(f);
    }
    gtk_widget_destroy(GTK_WIDGET(d));
}

/* The GTK chooser in folder mode: the roots that exist as shortcuts, the first as the starting
 * folder. Non-modal: the choice arrives in chooser_response. */
static void choose_folder(void *user, const char (*roots)[PLAT_PATH_MAX], size_t n) {
    (void)user;
    GtkWidget *d = gtk_file_chooser_dialog_new("Load model", NULL, GTK_FILE_CHOOSER_ACTION_SELECT_FOLDER, "_Cancel",
                                               GTK_RESPONSE_CANCEL, "_Load", GTK_RESPONSE_ACCEPT, NULL);
    for (size_t i = 0; i < n; i++)
        if (plat_is_dir(roots[i])) gtk_file_chooser_add_shortcut_folder(GTK_FILE_CHOOSER(d), roots[i], NULL);
    if (n && plat_is_dir(roots[0])) gtk_file_chooser_set_current_folder(GTK_FILE_CHOOSER(d), roots[0]);
    g_signal_connect(d, "response", G_CALLBACK(chooser_response), NULL);
    gtk_widget_show(d);
    tray_actions_out(&ui.a, "dialog: load");
}

/* ------------------------------------------------------------ events ---- */

/* A menu item chosen; GTK delivers no activate for an insensitive one. */
static void on_activate(GtkMenuItem *mi, gpointer data) {
    (void)mi;
    tray_actions_item(&ui.a, (tray_item)GPOINTER_TO_INT(data), NULL);
}

/* Runs on the main thread (g_idle_add); takes ev. */
static gboolean on_event(gpointer data) {
    tray_actions_event(&ui.a, data);
    return G_SOURCE_REMOVE;
}

/* The worker's post function (worker thread): hand over to the main loop. */
static void post(void *user, tray_event *ev) {
    (void)user;
    g_idle_add(on_event, ev);
}

/* The test hook's stdin, one line at a time on the main loop. */
static gboolean on_stdin(GIOChannel *ch, GIOCondition cond, gpointer user) {
    (void)user;
    gchar *line = NULL;
    gsize len = 0;
    GIOStatus st = (cond & (G_IO_IN | G_IO_PRI)) ? g_io_channel_read_line(ch, &line, &len, NULL, NULL) : G_IO_STATUS_EOF;
    if (st == G_IO_STATUS_AGAIN) return G_SOURCE_CONTINUE;
    if (st != G_IO_STATUS_NORMAL) { /* stdin closed: the test is over */
        g_free(line);
        tray_actions_hook_eof(&ui.a);
        return G_SOURCE_REMOVE;
    }
    tray_actions_hook_line(&ui.a, line);
    g_free(line);
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
    static const tray_ui_ops ops = {.redraw = redraw, .notify = notify, .show_error = show_error,
                                    .choose_folder = choose_folder, .settings_dialog = settings_dialog, .quit = quit};
    tray_actions_init(&ui.a, &ops);
    tray_options opt;
    tray_options_init(&opt, "awqd");
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
        int used = tray_option(&opt, a, v);
        if (used == 0) {
            fprintf(stderr, "awq-tray: unknown option '%s' (see --help)\n", a);
            return 2;
        }
        if (used < 0) {
            fprintf(stderr, "awq-tray: %s needs a value\n", a);
            return 2;
        }
        i += used - 1;
    }
    char err[AWQ_ERR_LEN];
    int code;
    cfg *c = tray_actions_configure(err, &ui.a, &opt, true, &code);
    if (!c) {
        fprintf(stderr, "awq-tray: %s\n", err);
        return code;
    }

    gtk_init(&argc, &argv);
    ui.ind = app_indicator_new("awq-tray", "awq-tray-stopped", APP_INDICATOR_CATEGORY_APPLICATION_STATUS);
    app_indicator_set_icon_theme_path(ui.ind, icon_dir());
    GtkWidget *menu = gtk_menu_new();
    tray_menu m;
    tray_menu_build(&ui.a.view, &m);
    for (int i = 0; i < TRAY_ITEM_COUNT; i++) {
        ui.items[i] = gtk_menu_item_new_with_label(m.e[i].label);
        g_signal_connect(ui.items[i], "activate", G_CALLBACK(on_activate), GINT_TO_POINTER(i));
        gtk_menu_shell_append(GTK_MENU_SHELL(menu), ui.items[i]);
        if (m.e[i].separator_after) gtk_menu_shell_append(GTK_MENU_SHELL(menu), gtk_separator_menu_item_new());
    }
    gtk_widget_show_all(menu);
    app_indicator_set_menu(ui.ind, GTK_MENU(menu));
    app_indicator_set_status(ui.ind, APP_INDICATOR_STATUS_ACTIVE);
    redraw(NULL);

    int rc = tray_actions_start(err, &ui.a, c, &opt, post);
    free(c);
    if (rc != 0) {
        fprintf(stderr, "awq-tray: %s\n", err);
        return 1;
    }
    GIOChannel *in = NULL;
    if (ui.a.test_hook) {
        in = g_io_channel_unix_new(0);
        g_io_add_watch(in, G_IO_IN | G_IO_PRI | G_IO_HUP | G_IO_ERR, on_stdin, NULL);
        tray_actions_out(&ui.a, "awq-tray: test hook on %s", ui.a.socket);
    }
    gtk_main();
    tray_actions_close(&ui.a);
    if (in) g_io_channel_unref(in);
    g_object_unref(ui.ind);
    return 0;
}
