/* actions.h - what awq-tray does when a menu item is chosen, a worker event arrives or a
 * test-hook line is read, written once for both front ends (ui_linux.c, ui_win.c). The
 * decisions live here: which request to submit, which program to start with which arguments,
 * which setting to read, which message to show on which failure, what the test hook prints.
 * What only a front end can do (draw, pop up a dialog or a notification, open the folder
 * chooser or the Settings dialog, leave its main loop) it hands in as a tray_ui_ops table.
 *
 * A front end keeps one tray_actions (tray_actions_init), starts the worker with
 * tray_actions_start, calls tray_actions_item for a chosen menu item, tray_actions_event for each
 * worker event it moved onto its UI thread, tray_actions_hook_line / _hook_eof for the test
 * hook's stdin, and tray_actions_close before it exits.
 *
 * Thread safety: a tray_actions belongs to the UI thread; every function here must be called
 * on it (the worker's events reach it through the front end's post function).
 */
#ifndef TRAY_ACTIONS_H
#define TRAY_ACTIONS_H

#include <stdbool.h>
#include <stddef.h>

#include "cfg.h"
#include "core.h"
#include "sys.h"
#include "worker.h"

#define TRAY_EXES_MAX 8 /* accepted server binary names: the default plus --allow-exe ones */

/* What only the front end can do. user is passed back to each; every function but out must be
 * set. notify and show_error are not called in test-hook mode (the line is printed instead). */
typedef struct tray_ui_ops {
    void (*redraw)(void *user); /* the view changed: icon, tooltip, menu labels and enablement */
    void (*notify)(void *user, const char *title, const char *body);   /* a passing notice */
    void (*show_error)(void *user, const char *what, const char *msg); /* an error the user must see */
    /* Open the folder chooser for Load, offering roots[0..n_roots) (roots may be NULL when
     * n_roots is 0); the choice goes to tray_actions_load. It prints "dialog: load" itself, at
     * the moment the chooser is up. */
    void (*choose_folder)(void *user, const char (*roots)[PLAT_PATH_MAX], size_t n_roots);
    /* Open the Settings dialog, or raise it when it is open; the settings are there
     * (tray_actions_setting). It prints "dialog: settings" once the dialog is up. */
    void (*settings_dialog)(void *user);
    void (*quit)(void *user); /* leave the main loop: the program then exits 0 */
    /* One test-hook line, without its newline. NULL: stdout, flushed per line (the tests read
     * the lines as they come); unit tests capture them here instead. */
    void (*out)(void *user, const char *line);
    void *user;
} tray_ui_ops;

/* The front end's state that both OSes share. Plain data owned by the UI thread; the front end
 * reads view (to draw), fills socket before tray_actions_start (the lookup differs by OS), and
 * may turn test_hook off when it cannot read stdin. */
typedef struct tray_actions {
    tray_ui_ops ui;
    tray_worker *w;               /* owned; NULL before tray_actions_start */
    tray_view view;               /* what the worker last posted */
    tray_event *settings;         /* the latest SETTINGS event (owned), NULL before the first */
    bool test_hook;               /* print what happens (tray_actions_out), show no popups */
    bool settings_wanted;         /* open the Settings dialog when the settings arrive */
    bool dump_settings_wanted;    /* print them (test hook) when they arrive */
    char socket[PLAT_PATH_MAX];   /* the daemon's socket / pipe, as the worker and `awq` use it */
    tray_service svc;             /* how Start/Stop reach the daemon (and where its log is) */
} tray_actions;

/* A stopped view, no worker, no settings; copies ops. */
void tray_actions_init(tray_actions *a, const tray_ui_ops *ops) AWQ_NONNULL(1, 2);

/* Free the worker (waiting up to 3 s for a call in flight, see tray_worker_free) and the
 * settings. a can be initialised again. */
void tray_actions_close(tray_actions *a) AWQ_NONNULL(1);

/* ------------------------------------------------------------ start-up ---- */

/* The command line both front ends take (but --help and --version, which only the Linux one
 * answers). Strings are borrowed from argv. */
typedef struct tray_options {
    const char *socket, *config, *start_mode, *unit, *awqd; /* NULL when not given */
    const char *exes[TRAY_EXES_MAX]; /* accepted server binaries; exes[0] is the OS's default */
    size_t n_exes;
    int poll_ms;                     /* 0 = the worker's default */
    bool test_hook;                  /* --test-hook */
} tray_options;

/* Options before the command line: the server binary the OS's daemon has (default_exe,
 * "awqd" or "awqd.exe"; borrowed) and the test hook when AWQ_TRAY_TEST=1. */
void tray_options_init(tray_options *o, const char *default_exe) AWQ_NONNULL(1, 2);

/* Take option a, with v the next argument (NULL when a is the last). Returns how many arguments
 * it used (1: a flag, 2: a with its value v), 0 for an unknown option, AWQ_EINVAL when a needs
 * a value and v is NULL; the caller words the message. */
AWQ_NODISCARD int tray_option(tray_options *o, const char *a, const char *v) AWQ_NONNULL(1, 2);

/* Start-up between the command line and the UI, the same on both OSes: the options into a (test
 * hook; a->svc: start mode, unit, daemon binary, config file), the settings file (--config, else
 * cfg_load's lookup; the built-in defaults when it cannot be read, said on stderr as "awq-tray:
 * ERR (using built-in defaults)" when warn_cfg), the socket into a->socket (--socket, then
 * $AWQ_SOCKET, both also passed to a spawned daemon; else tray_sys_default_socket). Returns the
 * settings (the caller frees them once tray_actions_start has read them), or NULL with err set
 * and *exit_code: 2 for a bad --start-mode, 1 for no memory or no socket. */
cfg *tray_actions_configure(char *err, tray_actions *a, const tray_options *o, bool warn_cfg, int *exit_code)
    AWQ_NONNULL(1, 2, 3, 5);

/* Start the worker on a->socket with the keys of c (encryption when c turns it on and names
 * both key files), a->svc and o's server names and poll period; its events go to post. Borrows
 * c and o (copied). 0, or AWQ_EINVAL with err saying why the worker did not start. */
AWQ_NODISCARD int tray_actions_start(char *err, tray_actions *a, const cfg *c, const tray_options *o,
                                     tray_post_fn post) AWQ_NONNULL(2, 3, 4, 5);

/* ------------------------------------------------------------ actions ---- */

/* A test-hook line (printf format, no newline); nothing unless a->test_hook. */
void tray_actions_out(const tray_actions *a, const char *fmt, ...) AWQ_PRINTF(2, 3) AWQ_NONNULL(1, 2);

/* Tell the user something / show an error: printed as "notify: TITLE: BODY" / "error: WHAT:
 * MSG" for the test hook, else handed to the front end. */
void tray_actions_notify(const tray_actions *a, const char *title, const char *body) AWQ_NONNULL(1, 2, 3);
void tray_actions_error(const tray_actions *a, const char *what, const char *msg) AWQ_NONNULL(1, 2, 3);

/* The value of a setting as the daemon last reported it, "" when unknown. Borrowed from
 * a->settings (valid until the next SETTINGS event). */
const char *tray_actions_setting(const tray_actions *a, const char *key) AWQ_NONNULL(1, 2);

/* Queue a request for the worker (arg, value may be NULL); a full queue shows an error. */
void tray_actions_submit(tray_actions *a, tray_req_kind k, const char *arg, const char *value) AWQ_NONNULL(1);

/* The Settings dialog saved key = value: submit it when it differs from the daemon's value (each
 * key is one atomic settings_set, validated by the daemon). value may be NULL (nothing chosen). */
void tray_actions_setting_edited(tray_actions *a, const char *key, const char *value) AWQ_NONNULL(1, 2);

/* Load the folder path: check it against the roots as the daemon will, then submit it; a folder
 * outside is refused with a message naming the roots. */
void tray_actions_load(tray_actions *a, const char *path) AWQ_NONNULL(1, 2);

/* Whether item it is enabled in the menu for the current view. */
bool tray_actions_enabled(const tray_actions *a, tray_item it) AWQ_NONNULL(1);

/* One menu item chosen, by a click or the test hook (arg: load's folder, else NULL: the
 * chooser opens). The caller has checked that it is enabled. */
void tray_actions_item(tray_actions *a, tray_item it, const char *arg) AWQ_NONNULL(1);

/* A worker event, on the UI thread: a new view (printed, redrawn, "Model loaded" when a load
 * ends), a request's end (printed; an error shown, a start/stop/set notified), the settings
 * (kept; printed or the Settings dialog opened when asked for). Takes ev. */
void tray_actions_event(tray_actions *a, tray_event *ev) AWQ_NONNULL(1, 2);

/* One line of the test hook's stdin (tray_hook_parse's commands), and its end (prints "bye"
 * and quits). Borrows line. */
void tray_actions_hook_line(tray_actions *a, const char *line) AWQ_NONNULL(1, 2);
void tray_actions_hook_eof(tray_actions *a) AWQ_NONNULL(1);

#endif
