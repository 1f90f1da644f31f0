/* test_tray.c - awq-tray's shared core (tray/core.c, worker.c, sys_linux.c) without a display:
 * the state machine from status maps, labels, the menu model, the test-hook parser, the model
 * roots check, and the asynchronous worker against real servers: tools/ipc-testserver (connect,
 * load with progress, unload, settings, the daemon going away and coming back, starting and
 * stopping it in spawn mode), a server that is not ours (refused: wrong binary, wrong socket
 * owner, not a socket), and the real awqd with a tiny awq-mkmodel checkpoint when it is built. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core.h"
#include "harness.h"
#include "sys.h"
#include "worker.h"

static char dir[64], sock_path[128];
static const char *bin;

/* ------------------------------------------------------------ status maps ---- */

static awq_kv ks(const char *k, const char *v) { return (awq_kv){.key = k, .kind = AWQ_KV_STR, .s = v}; }
static awq_kv ki(const char *k, int64_t v) { return (awq_kv){.key = k, .kind = AWQ_KV_INT, .i = v}; }
static awq_kv kb(const char *k, bool v) { return (awq_kv){.key = k, .kind = AWQ_KV_BOOL, .b = v}; }

static void test_state_machine(void) {
    tray_view v;
    char l[TRAY_LABEL_MAX];

    CASE("tray-1.1", "stopped view and its labels");
    tray_view_stopped(&v);
    CHECK_EQ(v.state, TRAY_ST_STOPPED);
    tray_status_label(&v, l);
    CHECK_STR(l, "awqd: stopped");
    tray_view_line(&v, l);
    CHECK_STR(l, "state: stopped");

    CASE("tray-1.2", "awqd's status with a loaded model is READY with model, device, memory");
    awq_kv r[] = {ks("version", "0.1.0"), kb("loaded", true), kb("loading", false), ks("model", "shisa-7b"),
                  ks("device", "cuda"), ki("memory_weights_bytes", 4LL << 30), ki("memory_kv_bytes", 512LL << 20)};
    awq_map m = {r, sizeof r / sizeof r[0], NULL};
    tray_view_from_status(&v, &m, -1, NULL);
    CHECK_EQ(v.state, TRAY_ST_READY);
    CHECK(v.connected);
    CHECK_STR(v.model, "shisa-7b");
    CHECK_STR(v.device, "cuda");
    CHECK_EQ(v.memory_bytes, (4ULL << 30) + (512ULL << 20));
    tray_status_label(&v, l);
    CHECK_STR(l, "awqd: ready: shisa-7b on cuda, 4.5 GiB");
    tray_view_line(&v, l);
    CHECK_STR(l, "state: ready model=shisa-7b device=cuda memory=4831838208");

    CASE("tray-1.3", "loading: pct from the stage, or from our own progress");
    awq_kv ld[] = {kb("loaded", false), kb("loading", true), ks("load_stage", "validated"), ks("model", "")};
    m = (awq_map){ld, 4, NULL};
    tray_view_from_status(&v, &m, -1, NULL);
    CHECK_EQ(v.state, TRAY_ST_LOADING);
    CHECK_NEAR(v.pct, 50, 0.01);
    tray_status_label(&v, l);
    CHECK_STR(l, "awqd: loading 50 % (validated)");
    tray_view_from_status(&v, &m, 12.5f, NULL);
    CHECK_NEAR(v.pct, 12.5, 0.01);
    tray_view_line(&v, l);
    CHECK_STR(l, "state: loading pct=12 stage=validated");

    CASE("tray-1.4", "a server that reports only \"model\" (the test server) is READY when it names one");
    awq_kv ts[] = {ks("model", "fake-7b"), ki("conns", 1), kb("test_server", true)};
    m = (awq_map){ts, 3, NULL};
    tray_view_from_status(&v, &m, -1, NULL);
    CHECK_EQ(v.state, TRAY_ST_READY);
    tray_status_label(&v, l);
    CHECK_STR(l, "awqd: ready: fake-7b");

    CASE("tray-1.5", "no model: IDLE, or ERROR while the last load's failure stands");
    awq_kv id[] = {kb("loaded", false), kb("loading", false), ks("model", "")};
    m = (awq_map){id, 3, NULL};
    tray_view_from_status(&v, &m, -1, NULL);
    CHECK_EQ(v.state, TRAY_ST_IDLE);
    tray_status_label(&v, l);
    CHECK_STR(l, "awqd: running, no model");
    tray_view_from_status(&v, &m, -1, "model.safetensors: truncated");
    CHECK_EQ(v.state, TRAY_ST_ERROR);
    CHECK_STR(v.message, "load failed: model.safetensors: truncated");
    tray_status_label(&v, l);
    CHECK_STR(l, "awqd: error: load failed: model.safetensors: truncated");

    CASE("tray-1.6", "fields of the wrong type count as absent");
    awq_kv bad[] = {ks("loaded", "true"), ki("model", 7), ks("loading", "yes"), ks("memory_kv_bytes", "9")};
    m = (awq_map){bad, 4, NULL};
    tray_view_from_status(&v, &m, -1, NULL);
    CHECK_EQ(v.state, TRAY_ST_IDLE);
    m = (awq_map){NULL, 0, NULL};
    tray_view_from_status(&v, &m, -1, NULL);
    CHECK_EQ(v.state, TRAY_ST_IDLE);

    CASE("tray-1.7", "draining shows as stopping");
    awq_kv dr[] = {kb("loaded", true), ks("model", "m"), ks("device", "cpu"), kb("draining", true)};
    m = (awq_map){dr, 4, NULL};
    tray_view_from_status(&v, &m, -1, NULL);
    tray_status_label(&v, l);
    CHECK_STR(l, "awqd: ready: m on cpu (stopping)");

    CASE("tray-1.8", "a long UTF-8 model name is cut at a character boundary");
    char longname[1200] = "";
    for (int i = 0; i < 500; i++) strcat(longname, "\xC3\xA9"); /* é */
    awq_kv ln[] = {kb("loaded", true), ks("model", longname)};
    m = (awq_map){ln, 2, NULL};
    tray_view_from_status(&v, &m, -1, NULL);
    CHECK(strlen(v.model) < TRAY_TEXT_MAX);
    CHECK(awq_utf8_valid(v.model, strlen(v.model)));
    tray_status_label(&v, l);
    CHECK(strlen(l) < TRAY_LABEL_MAX);
    CHECK(awq_utf8_valid(l, strlen(l)));
    tray_view_error(&v, longname);
    CHECK(awq_utf8_valid(v.message, strlen(v.message)));
    tray_view_error(&v, "");
    CHECK_STR(v.message, "unknown error");

    CASE("tray-1.9", "byte sizes");
    char b[32];
    tray_fmt_bytes(100, b);
    CHECK_STR(b, "100 B");
    tray_fmt_bytes(1536, b);
    CHECK_STR(b, "1.5 KiB");
    tray_fmt_bytes(5ULL << 30, b);
    CHECK_STR(b, "5.0 GiB");
    tray_fmt_bytes(20ULL << 30, b);
    CHECK_STR(b, "20 GiB");

    CASE("tray-1.10", "views compare in whole percents; state names");
    tray_view a, c;
    tray_view_stopped(&a);
    a.state = TRAY_ST_LOADING;
    c = a;
    a.pct = 10.2f;
    c.pct = 10.9f;
    CHECK(tray_view_equal(&a, &c));
    c.pct = 11.0f;
    CHECK(!tray_view_equal(&a, &c));
    CHECK_STR(tray_state_name(TRAY_ST_READY), "ready");
    CHECK_STR(tray_state_name((tray_state)99), "?");
}

/* ------------------------------------------------------------ menu model ---- */

static bool en(const tray_menu *m, tray_item it) { return m->e[it].enabled; }

static void test_menu(void) {
    tray_view v;
    tray_menu m;

    CASE("tray-2.1", "stopped: only start, logs and quit");
    tray_view_stopped(&v);
    tray_menu_build(&v, &m);
    CHECK(!en(&m, TRAY_ITEM_STATUS));
    CHECK(en(&m, TRAY_ITEM_START));
    CHECK(!en(&m, TRAY_ITEM_STOP));
    CHECK(!en(&m, TRAY_ITEM_LOAD));
    CHECK(!en(&m, TRAY_ITEM_UNLOAD));
    CHECK(!en(&m, TRAY_ITEM_SETTINGS));
    CHECK(!en(&m, TRAY_ITEM_CHAT));
    CHECK(en(&m, TRAY_ITEM_LOGS));
    CHECK(en(&m, TRAY_ITEM_QUIT));
    CHECK_STR(m.e[TRAY_ITEM_STATUS].label, "awqd: stopped");

    CASE("tray-2.2", "ready: stop, load, unload, settings, chat");
    awq_kv r[] = {kb("loaded", true), ks("model", "tiny"), ks("device", "cpu")};
    awq_map mp = {r, 3, NULL};
    tray_view_from_status(&v, &mp, -1, NULL);
    tray_menu_build(&v, &m);
    CHECK(!en(&m, TRAY_ITEM_START));
    CHECK(en(&m, TRAY_ITEM_STOP));
    CHECK(en(&m, TRAY_ITEM_LOAD));
    CHECK(en(&m, TRAY_ITEM_UNLOAD));
    CHECK(en(&m, TRAY_ITEM_SETTINGS));
    CHECK(en(&m, TRAY_ITEM_CHAT));
    CHECK_STR(m.e[TRAY_ITEM_STATUS].label, "awqd: ready: tiny on cpu");

    CASE("tray-2.3", "loading and busy disable the actions; idle has no unload or chat");
    v.state = TRAY_ST_LOADING;
    tray_menu_build(&v, &m);
    CHECK(!en(&m, TRAY_ITEM_LOAD));
    CHECK(!en(&m, TRAY_ITEM_UNLOAD));
    CHECK(!en(&m, TRAY_ITEM_CHAT));
    v.state = TRAY_ST_READY;
    v.busy = true;
    tray_menu_build(&v, &m);
    CHECK(!en(&m, TRAY_ITEM_STOP));
    CHECK(!en(&m, TRAY_ITEM_LOAD));
    CHECK(!en(&m, TRAY_ITEM_UNLOAD));
    CHECK(en(&m, TRAY_ITEM_SETTINGS));
    v.busy = false;
    v.state = TRAY_ST_IDLE;
    tray_menu_build(&v, &m);
    CHECK(en(&m, TRAY_ITEM_LOAD));
    CHECK(!en(&m, TRAY_ITEM_UNLOAD));
    CHECK(!en(&m, TRAY_ITEM_CHAT));
    tray_view_error(&v, "refused");
    tray_menu_build(&v, &m);
    CHECK(en(&m, TRAY_ITEM_START)); /* not connected: the user may start our daemon */

    CASE("tray-2.4", "the dump the test hook prints");
    tray_view_stopped(&v);
    tray_menu_build(&v, &m);
    awq_buf b = {0};
    CHECK_EQ(tray_menu_dump(&m, &b), 0);
    CHECK_CONTAINS(b.data, "menu: status \"awqd: stopped\" disabled\n");
    CHECK_CONTAINS(b.data, "menu: start \"Start service\" enabled\n");
    CHECK_CONTAINS(b.data, "menu: load \"Load model\xE2\x80\xA6\" disabled\n");
    CHECK_CONTAINS(b.data, "menu: quit \"Quit\" enabled\n");
    awq_buf_free(&b);
    CHECK(m.e[TRAY_ITEM_STOP].separator_after);

    CASE("tray-2.5", "items by name");
    CHECK_EQ(tray_item_by_name("unload"), TRAY_ITEM_UNLOAD);
    CHECK_EQ(tray_item_by_name("Unload"), -1);
    CHECK_STR(tray_item_name(TRAY_ITEM_CHAT), "chat");
    size_t ns;
    const tray_setting *st = tray_settings(&ns);
    CHECK(ns >= 6);
    bool has_enc = false;
    for (size_t i = 0; i < ns; i++) has_enc |= !strcmp(st[i].key, "security.encryption") && st[i].choices;
    CHECK(has_enc);
}

/* ------------------------------------------------------------ hook parser ---- */

static void test_hook(void) {
    char err[AWQ_ERR_LEN];
    tray_hook_cmd c;

    CASE("tray-3.1", "click commands");
    CHECK_EQ(tray_hook_parse(err, "click load /models/my model dir  \n", &c), 0);
    CHECK_EQ(c.op, TRAY_HOOK_CLICK);
    CHECK_EQ(c.item, TRAY_ITEM_LOAD);
    CHECK_STR(c.arg, "/models/my model dir");
    CHECK_EQ(tray_hook_parse(err, "click unload", &c), 0);
    CHECK_EQ(c.item, TRAY_ITEM_UNLOAD);
    CHECK_EQ(tray_hook_parse(err, "  click   quit\r\n", &c), 0);
    CHECK_EQ(c.item, TRAY_ITEM_QUIT);

    CASE("tray-3.2", "set and dumps");
    CHECK_EQ(tray_hook_parse(err, "set model.keep_alive 30m", &c), 0);
    CHECK_EQ(c.op, TRAY_HOOK_SET);
    CHECK_STR(c.arg, "model.keep_alive");
    CHECK_STR(c.value, "30m");
    CHECK_EQ(tray_hook_parse(err, "set model.path", &c), 0);
    CHECK_STR(c.value, "");
    CHECK_EQ(tray_hook_parse(err, "dump-menu", &c), 0);
    CHECK_EQ(c.op, TRAY_HOOK_DUMP_MENU);
    CHECK_EQ(tray_hook_parse(err, "dump-state", &c), 0);
    CHECK_EQ(c.op, TRAY_HOOK_DUMP_STATE);
    CHECK_EQ(tray_hook_parse(err, "dump-settings", &c), 0);
    CHECK_EQ(c.op, TRAY_HOOK_SETTINGS);
    CHECK_EQ(tray_hook_parse(err, "", &c), 1);
    CHECK_EQ(tray_hook_parse(err, "   # a comment", &c), 1);

    CASE("tray-3.3", "bad lines are refused with what was wrong");
    CHECK_EQ(tray_hook_parse(err, "click load", &c), AWQ_EINVAL);
    CHECK_CONTAINS(err, "click load: needs the model folder");
    CHECK_EQ(tray_hook_parse(err, "click fly", &c), AWQ_EINVAL);
    CHECK_CONTAINS(err, "click: unknown item 'fly'");
    CHECK_EQ(tray_hook_parse(err, "click status", &c), AWQ_EINVAL);
    CHECK_EQ(tray_hook_parse(err, "click", &c), AWQ_EINVAL);
    CHECK_CONTAINS(err, "click: which item?");
    CHECK_EQ(tray_hook_parse(err, "click unload now", &c), AWQ_EINVAL);
    CHECK_CONTAINS(err, "click unload: takes no argument (got 'now')");
    CHECK_EQ(tray_hook_parse(err, "set", &c), AWQ_EINVAL);
    CHECK_CONTAINS(err, "set: needs KEY VALUE");
    CHECK_EQ(tray_hook_parse(err, "dump-menu please", &c), AWQ_EINVAL);
    CHECK_CONTAINS(err, "dump-menu takes no argument");
    CHECK_EQ(tray_hook_parse(err, "frobnicate", &c), AWQ_EINVAL);
    CHECK_STR(err, "unknown command 'frobnicate' (expected click, set, dump-menu, dump-state, dump-settings)");
    char huge[PLAT_PATH_MAX + 2000];
    memset(huge, 'a', sizeof huge - 1);
    huge[sizeof huge - 1] = 0;
    CHECK_EQ(tray_hook_parse(err, huge, &c), AWQ_ETOOBIG);
    CHECK_CONTAINS(err, "command longer than");
}

/* ------------------------------------------------------------ model roots ---- */

static void mk(const char *rel, bool is_dir) {
    char p[300];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    if (is_dir) {
        if (mkdir(p, 0700) != 0) fprintf(stderr, "mkdir %s: %s\n", p, strerror(errno));
    } else {
        FILE *f = fopen(p, "w");
        if (f) fclose(f);
    }
}

static void test_roots(void) {
    char err[AWQ_ERR_LEN], real[PLAT_PATH_MAX], roots[256], p[300], realdir[PLAT_PATH_MAX];
    mk("models", true);
    mk("models/a", true);
    mk("models-evil", true);
    mk("models-evil/b", true);
    mk("models/f", false);
    snprintf(p, sizeof p, "%s/models/link", dir);
    char target[300];
    snprintf(target, sizeof target, "%s/models-evil/b", dir);
    if (symlink(target, p) != 0) fprintf(stderr, "symlink: %s\n", strerror(errno));
    if (plat_realpath(err, dir, realdir) != 0) snprintf(realdir, sizeof realdir, "%s", dir);
    snprintf(roots, sizeof roots, " %s/models , /nonexistent/root ", dir);

    CASE("tray-4.1", "a folder under a root is allowed, as is the root itself");
    snprintf(p, sizeof p, "%s/models/a", dir);
    CHECK_EQ(tray_path_allowed(err, p, roots, NULL, real), 0);
    char want[PLAT_PATH_MAX + 16];
    snprintf(want, sizeof want, "%s/models/a", realdir);
    CHECK_STR(real, want);
    snprintf(p, sizeof p, "%s/models/", dir);
    CHECK_EQ(tray_path_allowed(err, p, roots, NULL, real), 0);
    snprintf(p, sizeof p, "%s/models/a/../a", dir);
    CHECK_EQ(tray_path_allowed(err, p, roots, NULL, real), 0);

    CASE("tray-4.2", "outside the roots is refused: a sibling with the root as prefix, a symlink out");
    snprintf(p, sizeof p, "%s/models-evil/b", dir);
    CHECK_EQ(tray_path_allowed(err, p, roots, NULL, real), AWQ_EPERM);
    CHECK_CONTAINS(err, "models-evil/b is not under the model roots (");
    CHECK_CONTAINS(err, "/models , /nonexistent/root");
    snprintf(p, sizeof p, "%s/models/link", dir);
    CHECK_EQ(tray_path_allowed(err, p, roots, NULL, real), AWQ_EPERM);
    snprintf(p, sizeof p, "%s/models/../models-evil/b", dir);
    CHECK_EQ(tray_path_allowed(err, p, roots, NULL, real), AWQ_EPERM);
    CHECK_EQ(tray_path_allowed(err, "/", roots, NULL, real), AWQ_EPERM);

    CASE("tray-4.3", "missing folders, files and empty input");
    snprintf(p, sizeof p, "%s/models/nope", dir);
    CHECK_EQ(tray_path_allowed(err, p, roots, NULL, real), AWQ_ENOTFOUND);
    CHECK_CONTAINS(err, "models/nope: no such folder");
    snprintf(p, sizeof p, "%s/models/f", dir);
    CHECK_EQ(tray_path_allowed(err, p, roots, NULL, real), AWQ_EINVAL);
    CHECK_CONTAINS(err, "models/f is not a folder");
    CHECK_EQ(tray_path_allowed(err, "", roots, NULL, real), AWQ_EINVAL);

    CASE("tray-4.4", "no roots: only model.path itself, as the daemon does");
    snprintf(p, sizeof p, "%s/models/a", dir);
    CHECK_EQ(tray_path_allowed(err, p, "", p, real), 0);
    snprintf(target, sizeof target, "%s/models", dir);
    CHECK_EQ(tray_path_allowed(err, p, "", target, real), AWQ_EPERM);
    CHECK_CONTAINS(err, "none are configured: set model.roots in Settings");

    CASE("tray-4.5", "parsing model.roots");
    char (*rs)[PLAT_PATH_MAX] = malloc(sizeof(char[TRAY_ROOTS_MAX][PLAT_PATH_MAX]));
    size_t n = 0;
    CHECK_EQ(tray_roots_parse(err, " /a ,, /b/c,", rs, &n), 0);
    CHECK_EQ(n, 2);
    CHECK_STR(rs[0], "/a");
    CHECK_STR(rs[1], "/b/c");
    char many[400] = "";
    for (int i = 0; i < 17; i++) strcat(many, "/r,");
    CHECK_EQ(tray_roots_parse(err, many, rs, &n), AWQ_ERANGE);
    CHECK_CONTAINS(err, "model.roots: more than 16 entries");
    free(rs);
}

/* ------------------------------------------------------------ servers ---- */

/* Start ipc-testserver on sock_path; returns its pid or -1. */
static pid_t start_testserver(void) {
    int p[2];
    if (pipe(p) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        char exe[512];
        snprintf(exe, sizeof exe, "%s/ipc-testserver", bin);
        execl(exe, exe, "--socket", sock_path, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char out[512];
    size_t len = 0;
    for (;;) {
        struct pollfd pf = {p[0], POLLIN, 0};
        if (poll(&pf, 1, 20000) <= 0) break;
        ssize_t k = read(p[0], out + len, sizeof out - 1 - len);
        if (k <= 0) break;
        len += (size_t)k;
        out[len] = 0;
        if (strstr(out, "listening on")) {
            close(p[0]);
            return pid;
        }
    }
    close(p[0]);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static int stop_pid(pid_t pid) {
    int st = -1;
    if (pid <= 0) return -1;
    kill(pid, SIGTERM);
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* ------------------------------------------------------------ event collector ---- */

/* What the worker posts, in order: the test's stand-in for the UI thread. */
typedef struct evnode {
    struct evnode *next;
    tray_event *ev;
} evnode;

static struct {
    plat_mutex mu;
    plat_cond cv;
    evnode *head, *tail;
    bool gate_closed; /* post blocks while set: holds the worker so its queue fills */
} q;

static void post(void *user, tray_event *ev) {
    (void)user;
    plat_mutex_lock(&q.mu);
    while (q.gate_closed) plat_cond_wait(&q.cv, &q.mu);
    plat_mutex_unlock(&q.mu);
    evnode *n = malloc(sizeof *n);
    if (!n) {
        tray_event_free(ev);
        return;
    }
    n->ev = ev;
    n->next = NULL;
    plat_mutex_lock(&q.mu);
    if (q.tail) q.tail->next = n;
    else q.head = n;
    q.tail = n;
    plat_cond_broadcast(&q.cv);
    plat_mutex_unlock(&q.mu);
}

static tray_event *take(int timeout_ms) {
    uint64_t end = plat_now_ns() + (uint64_t)timeout_ms * 1000000u;
    plat_mutex_lock(&q.mu);
    while (!q.head && plat_now_ns() < end) plat_cond_timedwait(&q.cv, &q.mu, 50);
    evnode *n = q.head;
    if (n) {
        q.head = n->next;
        if (!q.head) q.tail = NULL;
    }
    plat_mutex_unlock(&q.mu);
    tray_event *ev = n ? n->ev : NULL;
    free(n);
    return ev;
}

static char trail[4096]; /* the view lines seen while waiting, for failure messages and checks */

/* Wait for a VIEW in state st (and, with model, naming it); other events are dropped, views
 * are recorded in trail. Returns the view's copy through out; false on timeout. */
static bool wait_view(tray_state st, int timeout_ms, tray_view *out) {
    uint64_t end = plat_now_ns() + (uint64_t)timeout_ms * 1000000u;
    trail[0] = 0;
    while (plat_now_ns() < end) {
        tray_event *ev = take(100);
        if (!ev) continue;
        if (ev->kind == TRAY_EV_VIEW) {
            char l[TRAY_LABEL_MAX];
            tray_view_line(&ev->view, l);
            if (strlen(trail) + strlen(l) + 2 < sizeof trail) strcat(strcat(trail, l), "\n");
            if (ev->view.state == st && !ev->view.busy) {
                if (out) *out = ev->view;
                tray_event_free(ev);
                return true;
            }
        }
        tray_event_free(ev);
    }
    fprintf(stderr, "no %s view within %d ms; views seen:\n%s", tray_state_name(st), timeout_ms, trail);
    return false;
}

/* Wait for the DONE of request kind k (views go to trail, settings to *settings when asked). */
static tray_event *wait_done(tray_req_kind k, int timeout_ms) {
    uint64_t end = plat_now_ns() + (uint64_t)timeout_ms * 1000000u;
    trail[0] = 0;
    while (plat_now_ns() < end) {
        tray_event *ev = take(100);
        if (!ev) continue;
        if (ev->kind == TRAY_EV_DONE && ev->req == k) return ev;
        if (ev->kind == TRAY_EV_VIEW) {
            char l[TRAY_LABEL_MAX];
            tray_view_line(&ev->view, l);
            if (strlen(trail) + strlen(l) + 2 < sizeof trail) strcat(strcat(trail, l), "\n");
        }
        tray_event_free(ev);
    }
    fprintf(stderr, "no DONE for %s within %d ms\n", tray_req_name(k), timeout_ms);
    return NULL;
}

static tray_event *wait_settings(int timeout_ms) {
    uint64_t end = plat_now_ns() + (uint64_t)timeout_ms * 1000000u;
    while (plat_now_ns() < end) {
        tray_event *ev = take(100);
        if (ev && ev->kind == TRAY_EV_SETTINGS) return ev;
        tray_event_free(ev);
    }
    return NULL;
}

static void drain(void) {
    tray_event *ev;
    while ((ev = take(0))) tray_event_free(ev);
}

static int submit(tray_worker *w, tray_req_kind k, const char *arg, const char *value) {
    tray_req r = {.kind = k};
    snprintf(r.arg, sizeof r.arg, "%s", arg ? arg : "");
    snprintf(r.value, sizeof r.value, "%s", value ? value : "");
    char err[AWQ_ERR_LEN];
    return tray_worker_submit(err, w, &r);
}

static tray_worker *worker(const char *const *exes, size_t n, const tray_service *svc) {
    static const char *const ts[] = {"ipc-testserver"};
    tray_worker_opts o = {.socket_path = sock_path,
                          .server_exes = exes ? exes : ts,
                          .n_server_exes = exes ? n : 1,
                          .poll_ms = 100,
                          .backoff_min_ms = 50,
                          .backoff_max_ms = 400,
                          .io_timeout_ms = 20000,
                          .post = post};
    if (svc) o.service = *svc;
    char err[AWQ_ERR_LEN];
    tray_worker *w = tray_worker_create(err, &o);
    if (!w) fprintf(stderr, "tray_worker_create: %s\n", err);
    return w;
}

/* ------------------------------------------------------------ worker vs test server ---- */

static void test_worker(void) {
    tray_view v;
    tray_event *ev;
    pid_t srv = start_testserver();
    if (srv < 0) {
        CASE("tray-5.0", "ipc-testserver starts");
        CHECK(!"ipc-testserver did not start");
        return;
    }
    tray_worker *w = worker(NULL, 0, NULL);
    if (!w) {
        stop_pid(srv);
        CHECK(!"worker");
        return;
    }

    CASE("tray-5.1", "the worker connects, posts READY and the daemon's settings");
    CHECK(wait_view(TRAY_ST_READY, 10000, &v));
    CHECK_STR(v.model, "fake-7b");
    CHECK(v.connected);
    submit(w, TRAY_REQ_SETTINGS, NULL, NULL);
    ev = wait_settings(10000);
    CHECK(ev != NULL);
    if (ev) CHECK_STR(tray_event_setting(ev, "temperature"), "0.7");
    tray_event_free(ev);

    CASE("tray-5.2", "load: LOADING views with progress, then DONE ok and READY");
    drain();
    CHECK_EQ(submit(w, TRAY_REQ_LOAD, "/models/x", NULL), 0);
    ev = wait_done(TRAY_REQ_LOAD, 10000);
    CHECK(ev && ev->rc == 0);
    if (ev) CHECK_STR(ev->message, "loaded /models/x");
    CHECK_CONTAINS(trail, "state: loading pct=0 stage=- busy\n");
    CHECK_CONTAINS(trail, "state: loading pct=50 stage=validated busy\n");
    CHECK_CONTAINS(trail, "state: loading pct=100 stage=ready busy\n");
    tray_event_free(ev);
    CHECK(wait_view(TRAY_ST_READY, 10000, &v));

    CASE("tray-5.3", "a refused load ends with the daemon's own message");
    CHECK_EQ(submit(w, TRAY_REQ_LOAD, "/models/../etc", NULL), 0);
    ev = wait_done(TRAY_REQ_LOAD, 10000);
    CHECK(ev && ev->rc == AWQ_EPERM);
    if (ev) CHECK_STR(ev->message, "load: path outside the model roots");
    if (ev) CHECK_STR(ev->arg, "/models/../etc");
    tray_event_free(ev);

    CASE("tray-5.4", "unload");
    CHECK_EQ(submit(w, TRAY_REQ_UNLOAD, NULL, NULL), 0);
    ev = wait_done(TRAY_REQ_UNLOAD, 10000);
    CHECK(ev && ev->rc == 0);
    if (ev) CHECK_STR(ev->message, "model unloaded");
    tray_event_free(ev);

    CASE("tray-5.5", "settings_set: saved, then the settings are fetched again");
    CHECK_EQ(submit(w, TRAY_REQ_SET, "temperature", "0.5"), 0);
    ev = wait_done(TRAY_REQ_SET, 10000);
    CHECK(ev && ev->rc == 0);
    if (ev) CHECK_STR(ev->message, "saved temperature = 0.5 (takes effect after awqd restarts)");
    tray_event_free(ev);
    ev = wait_settings(10000);
    CHECK(ev != NULL);
    if (ev) CHECK_STR(tray_event_setting(ev, "temperature"), "0.5");
    if (ev) CHECK(tray_event_setting(ev, "nope") == NULL);
    tray_event_free(ev);

    CASE("tray-5.6", "a rejected setting carries the daemon's message");
    CHECK_EQ(submit(w, TRAY_REQ_SET, "model.bogus", "1"), 0);
    ev = wait_done(TRAY_REQ_SET, 10000);
    CHECK(ev && ev->rc == AWQ_ENOTFOUND);
    if (ev) CHECK_STR(ev->message, "settings_set: unknown key");
    tray_event_free(ev);

    CASE("tray-5.7", "start while running is refused");
    CHECK_EQ(submit(w, TRAY_REQ_START, NULL, NULL), 0);
    ev = wait_done(TRAY_REQ_START, 10000);
    CHECK(ev && ev->rc == AWQ_EEXIST);
    if (ev) CHECK_STR(ev->message, "awqd is already running");
    tray_event_free(ev);

    CASE("tray-5.8", "the daemon goes away: STOPPED; requests answer 'not running'");
    CHECK_EQ(stop_pid(srv), 0);
    CHECK(wait_view(TRAY_ST_STOPPED, 10000, &v));
    CHECK(!v.connected);
    CHECK_EQ(submit(w, TRAY_REQ_UNLOAD, NULL, NULL), 0);
    ev = wait_done(TRAY_REQ_UNLOAD, 10000);
    CHECK(ev && ev->rc == AWQ_ECLOSED);
    if (ev) CHECK_STR(ev->message, "awqd is not running");
    tray_event_free(ev);

    CASE("tray-5.9", "it comes back: the worker reconnects by itself");
    plat_sleep_ms(600); /* let the backoff grow to its cap */
    uint64_t t0 = plat_now_ns();
    srv = start_testserver();
    CHECK(srv > 0);
    CHECK(wait_view(TRAY_ST_READY, 10000, &v));
    double secs = (double)(plat_now_ns() - t0) / 1e9;
    CHECK(secs < 3.0); /* backoff_max 400 ms */

    CASE("tray-5.10", "freeing the worker while connected is clean");
    tray_worker_free(w);
    drain();
    stop_pid(srv);
}

static void test_queue(void) {
    CASE("tray-5.11", "a full request queue answers busy instead of growing");
    plat_mutex_lock(&q.mu);
    q.gate_closed = true;
    plat_mutex_unlock(&q.mu);
    tray_worker *w = worker(NULL, 0, NULL); /* nothing listens: its first STOPPED view blocks in post */
    int ok = 0, rc = 0;
    char err[AWQ_ERR_LEN] = "";
    tray_req r = {.kind = TRAY_REQ_REFRESH};
    plat_sleep_ms(100);
    for (int i = 0; i < TRAY_QUEUE_MAX + 1 && rc == 0; i++) {
        rc = tray_worker_submit(err, w, &r);
        ok += rc == 0;
    }
    CHECK_EQ(rc, AWQ_EBUSY);
    CHECK_EQ(ok, TRAY_QUEUE_MAX);
    CHECK_STR(err, "too many requests waiting (64)");
    plat_mutex_lock(&q.mu);
    q.gate_closed = false;
    plat_cond_broadcast(&q.cv);
    plat_mutex_unlock(&q.mu);
    tray_worker_free(w);
    drain();
}

/* ------------------------------------------------------------ refusal ---- */

static void test_refusal(void) {
    char err[AWQ_ERR_LEN];
    int64_t pid;
    tray_view v;
    static const char *const awqd_only[] = {"awqd"};

    CASE("tray-6.1", "nothing at the socket: stopped, not an error");
    CHECK_EQ(tray_sys_check_server(err, sock_path, awqd_only, 1, true, &pid), AWQ_ENOTFOUND);
    CHECK_CONTAINS(err, "no socket at ");

    pid_t srv = start_testserver();
    CHECK(srv > 0);

    CASE("tray-6.2", "a server that is not awqd is refused before any hello");
    CHECK_EQ(tray_sys_check_server(err, sock_path, awqd_only, 1, true, &pid), AWQ_EPERM);
    CHECK_CONTAINS(err, "/ipc-testserver (pid ");
    CHECK_CONTAINS(err, "not awqd: refusing to talk to a server that is not ours");
    static const char *const ts[] = {"awqd", "ipc-testserver"};
    CHECK_EQ(tray_sys_check_server(err, sock_path, ts, 2, true, &pid), 0);
    CHECK_EQ(pid, srv);
    CHECK_EQ(tray_sys_check_server(err, sock_path, awqd_only, 1, false, &pid), 0); /* encrypted: key pinning */

    CASE("tray-6.3", "the worker shows the refusal as ERROR and never connects");
    tray_worker *w = worker(awqd_only, 1, NULL);
    CHECK(wait_view(TRAY_ST_ERROR, 10000, &v));
    CHECK_CONTAINS(v.message, "not awqd: refusing to talk to a server that is not ours");
    CHECK(!v.connected);
    CHECK_EQ(submit(w, TRAY_REQ_LOAD, "/models/x", NULL), 0);
    tray_event *ev = wait_done(TRAY_REQ_LOAD, 10000);
    CHECK(ev && ev->rc == AWQ_ECLOSED);
    tray_event_free(ev);
    tray_worker_free(w);
    drain();

    CASE("tray-6.4", "a socket owned by another uid is refused (as root)");
    if (getuid() == 0) {
        CHECK_EQ(chown(sock_path, 65534, 65534), 0);
        CHECK_EQ(tray_sys_check_server(err, sock_path, ts, 2, true, &pid), AWQ_EPERM);
        CHECK_CONTAINS(err, "is owned by uid 65534, not by you (uid 0) or root: refusing");
        CHECK_EQ(chown(sock_path, 0, 0), 0);
    } else {
        fprintf(stderr, "   (not root: cannot give the socket away; case skipped)\n");
    }
    CHECK_EQ(stop_pid(srv), 0);

    CASE("tray-6.5", "a regular file at the socket path is refused");
    char d2[160];
    snprintf(d2, sizeof d2, "%s/plain", dir);
    FILE *f = fopen(d2, "w");
    if (f) fclose(f);
    CHECK_EQ(tray_sys_check_server(err, d2, ts, 2, true, &pid), AWQ_EPERM);
    CHECK_CONTAINS(err, "plain is not a socket");

    CASE("tray-6.6", "start modes");
    tray_start_mode sm;
    CHECK_EQ(tray_start_mode_parse(err, "systemd", &sm), 0);
    CHECK_EQ(sm, TRAY_START_SERVICE);
    CHECK_EQ(tray_start_mode_parse(err, "spawn", &sm), 0);
    CHECK_EQ(sm, TRAY_START_SPAWN);
    CHECK_EQ(tray_start_mode_parse(err, "launchd", &sm), AWQ_EINVAL);
    CHECK_STR(err, "start mode 'launchd': expected auto, service (systemd) or spawn");
}

/* ------------------------------------------------------------ start / stop ---- */

static void test_start_stop(void) {
    tray_view v;
    tray_event *ev;
    tray_service svc = {.mode = TRAY_START_SPAWN};
    snprintf(svc.awqd, sizeof svc.awqd, "%s/ipc-testserver", bin);
    snprintf(svc.socket, sizeof svc.socket, "%s", sock_path);
    snprintf(svc.log, sizeof svc.log, "%s/spawn.log", dir);

    CASE("tray-7.1", "start (spawn mode) brings the daemon up; the worker connects");
    tray_worker *w = worker(NULL, 0, &svc);
    CHECK(wait_view(TRAY_ST_STOPPED, 10000, &v));
    CHECK_EQ(submit(w, TRAY_REQ_START, NULL, NULL), 0);
    ev = wait_done(TRAY_REQ_START, 10000);
    CHECK(ev && ev->rc == 0);
    if (ev) CHECK_STR(ev->message, "awqd started");
    tray_event_free(ev);
    CHECK(wait_view(TRAY_ST_READY, 10000, &v));
    char *log = NULL;
    size_t len = 0;
    char err[AWQ_ERR_LEN];
    CHECK_EQ(plat_read_file(err, svc.log, 1 << 20, &log, &len), 0);
    CHECK_CONTAINS(log, "listening on");
    free(log);

    CASE("tray-7.2", "stop sends shutdown: the daemon exits, the view is STOPPED");
    CHECK_EQ(submit(w, TRAY_REQ_STOP, NULL, NULL), 0);
    ev = wait_done(TRAY_REQ_STOP, 10000);
    CHECK(ev && ev->rc == 0);
    if (ev) CHECK_STR(ev->message, "awqd is stopping");
    tray_event_free(ev);
    CHECK(wait_view(TRAY_ST_STOPPED, 10000, &v));
    tray_worker_free(w);
    drain();

    CASE("tray-7.3", "a daemon binary that does not exist: a clear error");
    snprintf(svc.awqd, sizeof svc.awqd, "%s/no-such-awqd", dir);
    w = worker(NULL, 0, &svc);
    CHECK_EQ(submit(w, TRAY_REQ_START, NULL, NULL), 0);
    ev = wait_done(TRAY_REQ_START, 10000);
    CHECK(ev && ev->rc == AWQ_ENOTFOUND);
    if (ev) CHECK_CONTAINS(ev->message, "no-such-awqd not found");
    tray_event_free(ev);
    tray_worker_free(w);
    drain();

    CASE("tray-7.4", "detached programs: found beside us or on PATH, or a clear error");
    const char *argv_ok[] = {"true", NULL};
    CHECK_EQ(tray_sys_spawn(err, argv_ok, NULL), 0);
    const char *argv_bad[] = {"no-such-program-xyz", NULL};
    CHECK_EQ(tray_sys_spawn(err, argv_bad, NULL), AWQ_ENOTFOUND);
    CHECK_STR(err, "no-such-program-xyz: program not found (beside awq-tray or on PATH)");
    char found[PLAT_PATH_MAX];
    CHECK_EQ(tray_sys_find_program("sh", found), 0);
    CHECK_EQ(tray_sys_find_program("no-such-program-xyz", found), AWQ_ENOTFOUND);
}

/* ------------------------------------------------------------ the real awqd ---- */

static int run_argv(char *const argv[]) {
    pid_t p = fork();
    if (p == 0) {
        int nul = open("/dev/null", O_WRONLY);
        dup2(nul, 1);
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    waitpid(p, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_awqd(void) {
    char awqd[600], mkm[600], model[200], ini[200], log[200], err[AWQ_ERR_LEN];
    const char *tok = h_env("AWQ_TOKENIZER");
    snprintf(awqd, sizeof awqd, "%s/awqd", bin);
    snprintf(mkm, sizeof mkm, "%s/awq-mkmodel", bin);
    CASE("tray-8.0", "the real awqd with a tiny checkpoint");
    if (access(awqd, X_OK) != 0 || access(mkm, X_OK) != 0 || !tok || access(tok, R_OK) != 0) {
        fprintf(stderr, "   (awqd, awq-mkmodel or the tokenizer missing: cases 8.x skipped)\n");
        return;
    }
    snprintf(model, sizeof model, "%s/models/tiny", dir);
    char *mk_argv[] = {mkm, "-o", model, "--preset", "tiny", "--tokenizer", (char *)tok, "--seed", "7", NULL};
    if (run_argv(mk_argv) != 0) {
        CHECK(!"awq-mkmodel failed");
        return;
    }
    snprintf(ini, sizeof ini, "%s/awqd.ini", dir);
    snprintf(log, sizeof log, "%s/awqd.log", dir);
    FILE *f = fopen(ini, "w");
    if (!f) return;
    fprintf(f, "[server]\nsocket = %s\n[model]\nroots = %s/models\nthreads = 1\ndevice = cpu\n", sock_path, dir);
    fclose(f);

    /* started by the worker (spawn mode), so the whole Start path runs against the real binary */
    tray_service svc = {.mode = TRAY_START_SPAWN};
    snprintf(svc.awqd, sizeof svc.awqd, "%s", awqd);
    snprintf(svc.config, sizeof svc.config, "%s", ini);
    snprintf(svc.log, sizeof svc.log, "%s", log);
    tray_worker *w = worker((const char *const[]){"awqd"}, 1, &svc);
    tray_view v;
    tray_event *ev;

    CASE("tray-8.1", "start awqd: IDLE (running, no model)");
    CHECK_EQ(submit(w, TRAY_REQ_START, NULL, NULL), 0);
    ev = wait_done(TRAY_REQ_START, 10000);
    CHECK(ev && ev->rc == 0);
    tray_event_free(ev);
    bool up = wait_view(TRAY_ST_IDLE, 30000, &v);
    CHECK(up);
    if (!up) {
        char *t = NULL;
        size_t n;
        if (plat_read_file(err, log, 1 << 20, &t, &n) == 0) fprintf(stderr, "awqd log:\n%s\n", t);
        free(t);
        tray_worker_free(w);
        drain();
        return;
    }

    CASE("tray-8.2", "load the tiny model: progress, then READY on cpu with its memory");
    CHECK_EQ(submit(w, TRAY_REQ_LOAD, model, NULL), 0);
    ev = wait_done(TRAY_REQ_LOAD, 60000);
    CHECK(ev && ev->rc == 0);
    if (ev && ev->rc) fprintf(stderr, "load: %s\n", ev->message);
    tray_event_free(ev);
    CHECK_CONTAINS(trail, "stage=ready busy");
    CHECK(wait_view(TRAY_ST_READY, 10000, &v));
    CHECK_STR(v.device, "cpu");
    CHECK(v.memory_bytes > 0);
    CHECK(v.model[0] != 0);

    CASE("tray-8.3", "a bad setting shows awqd's message; a good one is saved");
    CHECK_EQ(submit(w, TRAY_REQ_SET, "model.context", "lots"), 0);
    ev = wait_done(TRAY_REQ_SET, 10000);
    CHECK(ev && ev->rc < 0);
    if (ev) CHECK_CONTAINS(ev->message, "context");
    tray_event_free(ev);
    CHECK_EQ(submit(w, TRAY_REQ_SET, "model.keep_alive", "30m"), 0);
    ev = wait_done(TRAY_REQ_SET, 10000);
    CHECK(ev && ev->rc == 0);
    if (ev && ev->rc) fprintf(stderr, "set: %s\n", ev->message);
    tray_event_free(ev);
    char *text = NULL;
    size_t n = 0;
    CHECK_EQ(plat_read_file(err, ini, 1 << 20, &text, &n), 0);
    CHECK_CONTAINS(text, "keep_alive = 30m");
    free(text);

    CASE("tray-8.4", "unload: IDLE; stop: STOPPED");
    CHECK_EQ(submit(w, TRAY_REQ_UNLOAD, NULL, NULL), 0);
    ev = wait_done(TRAY_REQ_UNLOAD, 10000);
    CHECK(ev && ev->rc == 0);
    tray_event_free(ev);
    CHECK(wait_view(TRAY_ST_IDLE, 10000, &v));
    CHECK_EQ(submit(w, TRAY_REQ_STOP, NULL, NULL), 0);
    ev = wait_done(TRAY_REQ_STOP, 10000);
    CHECK(ev && ev->rc == 0);
    tray_event_free(ev);
    CHECK(wait_view(TRAY_ST_STOPPED, 30000, &v));
    tray_worker_free(w);
    drain();
}

int main(void) {
    bin = h_env("AWQ_BIN");
    signal(SIGPIPE, SIG_IGN);
    plat_mutex_init(&q.mu);
    plat_cond_init(&q.cv);
    snprintf(dir, sizeof dir, "/tmp/awq-tray-test.XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(sock_path, sizeof sock_path, "%s/run/awqd.sock", dir);

    test_state_machine();
    test_menu();
    test_hook();
    test_roots();
    char ts[600];
    snprintf(ts, sizeof ts, "%s/ipc-testserver", bin ? bin : ".");
    if (bin && access(ts, X_OK) == 0) {
        test_worker();
        test_queue();
        test_refusal();
        test_start_stop();
        test_awqd();
    } else {
        fprintf(stderr, "AWQ_BIN/ipc-testserver not built: worker cases skipped\n");
    }

    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (!getenv("AWQ_KEEP") && system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", dir);
    plat_cond_destroy(&q.cv);
    plat_mutex_destroy(&q.mu);
    return h_finish();
}
