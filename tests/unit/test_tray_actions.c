/* test_tray_actions.c - awq-tray's shared menu actions (tray/actions.c) through a fake front end:
 * what the test hook prints for worker events (views, a load ending, requests done or failed,
 * settings), which front-end hook each one calls and with what (notifications, error dialogs,
 * the folder chooser with the model roots, the Settings dialog, quit), the test-hook commands
 * that need no daemon (dumps, disabled items, bad lines, a refused folder, end of input), and
 * the start-up options (parsing, start mode, socket precedence). Requests that reach the worker
 * are covered by test_tray.c (the worker) and the integration tests (both front ends). */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actions.h"
#include "harness.h"

/* ------------------------------------------------------------ fake front end ---- */

static struct {
    char out[8192];         /* test-hook lines, each ending in '\n' */
    char calls[2048];       /* hook calls: "redraw;notify(T|B);error(W|M);chooser(N:R0,R1);settings;quit;" */
} fake;

/* Append to fake.calls. */
static void AWQ_PRINTF(1, 2) call(const char *fmt, ...) {
    size_t n = strlen(fake.calls);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(fake.calls + n, sizeof fake.calls - n, fmt, ap);
    va_end(ap);
}

static void f_out(void *u, const char *line) {
    (void)u;
    size_t n = strlen(fake.out);
    snprintf(fake.out + n, sizeof fake.out - n, "%s\n", line);
}
static void f_redraw(void *u) {
    (void)u;
    call("redraw;");
}
static void f_notify(void *u, const char *t, const char *b) {
    (void)u;
    call("notify(%s|%s);", t, b);
}
static void f_error(void *u, const char *w, const char *m) {
    (void)u;
    call("error(%s|%s);", w, m);
}
static void f_chooser(void *u, const char (*roots)[PLAT_PATH_MAX], size_t n) {
    (void)u;
    call("chooser(%zu%s", n, n ? ":" : "");
    for (size_t i = 0; i < n; i++) call("%s%s", roots[i], i + 1 < n ? "," : "");
    call(");");
}
static void f_settings(void *u) {
    (void)u;
    call("settings;");
}
static void f_quit(void *u) {
    (void)u;
    call("quit;");
}

static const tray_ui_ops ops = {.redraw = f_redraw, .notify = f_notify, .show_error = f_error,
                                .choose_folder = f_chooser, .settings_dialog = f_settings, .quit = f_quit,
                                .out = f_out};

static void reset(void) { memset(&fake, 0, sizeof fake); }

/* A stopped tray with the test hook on, nothing recorded yet. */
static void fresh(tray_actions *a) {
    tray_actions_init(a, &ops);
    a->test_hook = true;
    reset();
}

/* ------------------------------------------------------------ events ---- */

static tray_event *ev_new(tray_ev_kind k) {
    tray_event *ev = calloc(1, sizeof *ev);
    if (ev) ev->kind = k;
    return ev;
}

static tray_event *ev_view(tray_state st) {
    tray_event *ev = ev_new(TRAY_EV_VIEW);
    if (!ev) return NULL;
    ev->view.state = st;
    ev->view.connected = st != TRAY_ST_STOPPED;
    if (st == TRAY_ST_LOADING) ev->view.pct = 50, snprintf(ev->view.stage, sizeof ev->view.stage, "validated");
    if (st == TRAY_ST_READY) {
        snprintf(ev->view.model, sizeof ev->view.model, "m");
        snprintf(ev->view.device, sizeof ev->view.device, "cpu");
        ev->view.memory_bytes = 3 << 20;
    }
    return ev;
}

static tray_event *ev_done(tray_req_kind req, int rc, const char *msg) {
    tray_event *ev = ev_new(TRAY_EV_DONE);
    if (!ev) return NULL;
    ev->req = req;
    ev->rc = rc;
    snprintf(ev->message, sizeof ev->message, "%s", msg);
    return ev;
}

/* A SETTINGS event with n key, value pairs from kv[0..2n). */
static tray_event *ev_settings(const char *const *kv, size_t n) {
    tray_event *ev = ev_new(TRAY_EV_SETTINGS);
    if (!ev || !(ev->settings = calloc(n, sizeof *ev->settings))) return ev;
    for (size_t i = 0; i < n; i++) {
        ev->settings[i].key = strdup(kv[2 * i]);
        ev->settings[i].value = strdup(kv[2 * i + 1]);
        ev->n_settings++;
    }
    return ev;
}

static void test_events(void) {
    tray_actions a;
    fresh(&a);
    CASE("tray-9.1", "views are printed and redrawn; a load ending says Model loaded (printed, no popup)");
    tray_actions_event(&a, ev_view(TRAY_ST_LOADING));
    tray_actions_event(&a, ev_view(TRAY_ST_READY));
    CHECK_STR(fake.out, "state: loading pct=50 stage=validated\n"
                        "state: ready model=m device=cpu memory=3145728\n"
                        "notify: Model loaded: ready: m on cpu, 3.0 MiB\n");
    CHECK_STR(fake.calls, "redraw;redraw;");
    CHECK_EQ(a.view.state, TRAY_ST_READY);

    CASE("tray-9.2", "requests done: errors named with their code, start/stop/set notified, others not");
    reset();
    tray_actions_event(&a, ev_done(TRAY_REQ_LOAD, AWQ_EFORMAT, "bad checkpoint"));
    tray_actions_event(&a, ev_done(TRAY_REQ_SET, 0, "saved model.keep_alive = 30m"));
    tray_actions_event(&a, ev_done(TRAY_REQ_UNLOAD, 0, "unloaded"));
    char want[512];
    snprintf(want, sizeof want,
             "done: load error %d\nerror: load failed (%s): bad checkpoint\n"
             "done: set ok: saved model.keep_alive = 30m\nnotify: awqd: saved model.keep_alive = 30m\n"
             "done: unload ok: unloaded\n",
             AWQ_EFORMAT, awq_errname(AWQ_EFORMAT));
    CHECK_STR(fake.out, want);
    CHECK_STR(fake.calls, "");

    CASE("tray-9.3", "without the test hook: nothing printed, the front end shows the notices");
    a.test_hook = false;
    reset();
    tray_actions_event(&a, ev_done(TRAY_REQ_START, AWQ_ENOTFOUND, "awqd not found"));
    tray_actions_event(&a, ev_done(TRAY_REQ_STOP, 0, "stopped"));
    tray_actions_event(&a, ev_view(TRAY_ST_LOADING));
    tray_actions_event(&a, ev_view(TRAY_ST_READY));
    CHECK_STR(fake.out, "");
    snprintf(want, sizeof want, "error(start failed (%s)|awqd not found);notify(awqd|stopped);redraw;redraw;"
             "notify(Model loaded|ready: m on cpu, 3.0 MiB);", awq_errname(AWQ_ENOTFOUND));
    CHECK_STR(fake.calls, want);
    a.test_hook = true;

    CASE("tray-9.4", "settings: kept, read back, dumped or the dialog opened when asked for");
    static const char *const kv[] = {"model.roots", "/r1, /r2", "log.file", ""};
    reset();
    a.dump_settings_wanted = a.settings_wanted = true;
    tray_actions_event(&a, ev_settings(kv, 2));
    CHECK_STR(fake.out, "setting: model.roots = /r1, /r2\nsetting: log.file = \nsettings: end\n");
    CHECK_STR(fake.calls, "settings;");
    CHECK(!a.dump_settings_wanted && !a.settings_wanted);
    CHECK_STR(tray_actions_setting(&a, "model.roots"), "/r1, /r2");
    CHECK_STR(tray_actions_setting(&a, "model.path"), "");
    reset();
    tray_actions_item(&a, TRAY_ITEM_SETTINGS, NULL); /* settings known: the dialog at once */
    CHECK_STR(fake.calls, "settings;");

    CASE("tray-9.5", "load without a folder: the chooser, offered the roots");
    reset();
    tray_actions_item(&a, TRAY_ITEM_LOAD, NULL);
    CHECK_STR(fake.calls, "chooser(2:/r1,/r2);");
    tray_actions_close(&a);
}

/* ------------------------------------------------------------ test hook ---- */

static void test_hook_lines(void) {
    tray_actions a;
    fresh(&a);
    CASE("tray-9.6", "dumps, a disabled item, a bad line");
    tray_actions_hook_line(&a, "dump-state\n");
    tray_actions_hook_line(&a, "click unload\n");
    tray_actions_hook_line(&a, "# nothing\n");
    tray_actions_hook_line(&a, "frobnicate\n");
    CHECK_STR(fake.out, "state: stopped\nhook-error: unload is disabled now\n"
                        "hook-error: unknown command 'frobnicate' (expected click, set, dump-menu, dump-state, "
                        "dump-settings)\n");
    reset();
    tray_actions_hook_line(&a, "dump-menu");
    tray_menu m;
    awq_buf b = {0};
    tray_menu_build(&a.view, &m);
    CHECK_EQ(tray_menu_dump(&m, &b), 0);
    CHECK(b.data && strlen(fake.out) == strlen(b.data) + strlen("menu: end\n"));
    CHECK(b.data && !strncmp(fake.out, b.data, strlen(b.data)));
    CHECK_CONTAINS(fake.out, "menu: unload \"Unload model\" disabled\nmenu: settings");
    CHECK_CONTAINS(fake.out, "\nmenu: end\n");
    awq_buf_free(&b);
    CHECK(tray_actions_enabled(&a, TRAY_ITEM_START));
    CHECK(!tray_actions_enabled(&a, TRAY_ITEM_LOAD));

    CASE("tray-9.7", "a folder outside the roots is refused before anything is sent");
    static const char *const kv[] = {"model.roots", "/nonexistent-awq-root", "model.path", ""};
    tray_actions_event(&a, ev_settings(kv, 2));
    tray_actions_event(&a, ev_view(TRAY_ST_IDLE));
    reset();
    tray_actions_hook_line(&a, "click load /");
    CHECK_STR(fake.out, "refused: / is not under the model roots (/nonexistent-awq-root)\n"
                        "error: This folder cannot be loaded: / is not under the model roots (/nonexistent-awq-root)\n");
    a.test_hook = false;
    reset();
    tray_actions_load(&a, "/");
    CHECK_STR(fake.calls, "error(This folder cannot be loaded|/ is not under the model roots (/nonexistent-awq-root));");
    a.test_hook = true;

    CASE("tray-9.8", "quit, and the end of input: bye");
    reset();
    tray_actions_hook_line(&a, "click quit");
    tray_actions_hook_eof(&a);
    CHECK_STR(fake.out, "bye\n");
    CHECK_STR(fake.calls, "quit;quit;");

    CASE("tray-9.9", "a long line is printed whole");
    char big[3000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    reset();
    tray_actions_out(&a, "%s", big);
    CHECK_EQ(strlen(fake.out), sizeof big);
    a.test_hook = false;
    reset();
    tray_actions_out(&a, "not printed");
    CHECK_STR(fake.out, "");
    tray_actions_close(&a);
}

/* ------------------------------------------------------------ start-up ---- */

static void test_options(void) {
    tray_options o;
    tray_actions a;
    char err[AWQ_ERR_LEN];
    int code = 0;

    CASE("tray-9.10", "options: values, flags, unknown, missing value, extra server names");
    unsetenv("AWQ_TRAY_TEST");
    tray_options_init(&o, "awqd");
    CHECK(!o.test_hook);
    CHECK_EQ(o.n_exes, 1);
    CHECK_STR(o.exes[0], "awqd");
    CHECK_EQ(tray_option(&o, "--socket", "/s"), 2);
    CHECK_STR(o.socket, "/s");
    CHECK_EQ(tray_option(&o, "--test-hook", "--poll-ms"), 1);
    CHECK(o.test_hook);
    CHECK_EQ(tray_option(&o, "--poll-ms", "200"), 2);
    CHECK_EQ(o.poll_ms, 200);
    CHECK_EQ(tray_option(&o, "--fly", "x"), 0);
    CHECK_EQ(tray_option(&o, "--unit", NULL), AWQ_EINVAL);
    for (int i = 0; i < TRAY_EXES_MAX + 3; i++) CHECK_EQ(tray_option(&o, "--allow-exe", "x"), 2);
    CHECK_EQ(o.n_exes, TRAY_EXES_MAX);
    setenv("AWQ_TRAY_TEST", "1", 1);
    tray_options_init(&o, "awqd");
    CHECK(o.test_hook);
    unsetenv("AWQ_TRAY_TEST");

    CASE("tray-9.11", "configure: a bad start mode exits 2 with the reason");
    tray_actions_init(&a, &ops);
    tray_options_init(&o, "awqd");
    CHECK_EQ(tray_option(&o, "--start-mode", "fly"), 2);
    CHECK(tray_actions_configure(err, &a, &o, false, &code) == NULL);
    CHECK_EQ(code, 2);
    CHECK_CONTAINS(err, "start mode 'fly'");

    CASE("tray-9.12", "configure: the service, and the socket from --socket, else $AWQ_SOCKET");
    static const char *const argv[] = {"--start-mode", "spawn", "--unit", "u", "--awqd", "/bin/awqd", "--config",
                                       "/nonexistent-awq.ini", "--socket", "/tmp/s.sock"};
    tray_options_init(&o, "awqd");
    for (size_t i = 0; i < sizeof argv / sizeof *argv; i += 2) CHECK_EQ(tray_option(&o, argv[i], argv[i + 1]), 2);
    setenv("AWQ_SOCKET", "/tmp/env.sock", 1);
    cfg *c = tray_actions_configure(err, &a, &o, false, &code);
    CHECK(c != NULL);
    CHECK_EQ(a.svc.mode, TRAY_START_SPAWN);
    CHECK_STR(a.svc.unit, "u");
    CHECK_STR(a.svc.awqd, "/bin/awqd");
    CHECK_STR(a.svc.config, "/nonexistent-awq.ini");
    CHECK_STR(a.socket, "/tmp/s.sock");
    CHECK_STR(a.svc.socket, "/tmp/s.sock");
    free(c);
    o.socket = NULL;
    c = tray_actions_configure(err, &a, &o, false, &code);
    CHECK(c != NULL);
    CHECK_STR(a.socket, "/tmp/env.sock");
    CHECK_STR(a.svc.socket, "/tmp/env.sock");
    free(c);
    unsetenv("AWQ_SOCKET");
    tray_actions_close(&a);

    CASE("tray-9.13", "the message for a program that is not there");
    tray_sys_not_found_msg("awq", err);
    CHECK_STR(err, "the awq command was not found beside awq-tray or on PATH");
}

int main(void) {
    test_events();
    test_hook_lines();
    test_options();
    return h_finish();
}
