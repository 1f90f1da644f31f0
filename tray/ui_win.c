/* ui_win.c - awq-tray's Windows front end: a Shell_NotifyIconW icon owned by a hidden window
 * (class "awq-tray", so tests can post WM_COMMAND to it), a popup menu built from the shared
 * menu model, SHBrowseForFolderW for Load (checked against the roots), a small Settings window,
 * balloon notifications (NIF_INFO), and the test hook (--test-hook / AWQ_TRAY_TEST=1: a reader
 * thread posts stdin lines to the window; results go to stdout).
 *
 * Threads: the window procedure runs on the UI thread; the worker posts its events with
 * PostMessageW (lParam = the tray_event, taken by the UI thread). */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <shellapi.h>
#include <shlobj.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "core.h"
#include "sys.h"
#include "worker.h"

#define WM_APP_TRAY (WM_APP + 1)  /* the icon's callback */
#define WM_APP_EVENT (WM_APP + 2) /* lParam: tray_event* from the worker */
#define WM_APP_HOOK (WM_APP + 3)  /* lParam: a malloc'ed stdin line, NULL at EOF */
#define ID_ITEM0 100              /* WM_COMMAND id of menu item i: ID_ITEM0 + i */
#define ID_SAVE 200
#define ID_CANCEL 201
#define ID_FIELD0 300
#define EXES_MAX 8
#define FIELDS_MAX 16

static struct {
    HWND hwnd, settings_wnd;
    HWND fields[FIELDS_MAX];
    NOTIFYICONDATAW nid;
    HICON icons[TRAY_ST_COUNT];
    tray_worker *w;
    tray_view view;
    tray_event *settings;
    bool test_hook, settings_wanted, dump_settings_wanted;
    char socket[PLAT_PATH_MAX];
    tray_service svc;
} ui;

/* ------------------------------------------------------------ text ---- */

static void to_wide(const char *s, wchar_t *out, int cap) {
    if (MultiByteToWideChar(CP_UTF8, 0, s, -1, out, cap) <= 0) out[0] = 0;
    out[cap - 1] = 0;
}

static void to_utf8(const wchar_t *w, char *out, int cap) {
    if (WideCharToMultiByte(CP_UTF8, 0, w, -1, out, cap, NULL, NULL) <= 0) out[0] = 0;
}

static void AWQ_PRINTF(1, 2) out(const char *fmt, ...) {
    if (!ui.test_hook) return;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

/* A balloon from the icon (test hook: printed instead). */
static void notify(const char *title, const char *body) {
    out("notify: %s: %s", title, body);
    if (ui.test_hook) return;
    ui.nid.uFlags = NIF_INFO;
    ui.nid.dwInfoFlags = NIIF_INFO;
    to_wide(title, ui.nid.szInfoTitle, 64);
    to_wide(body, ui.nid.szInfo, 256);
    Shell_NotifyIconW(NIM_MODIFY, &ui.nid);
}

static void show_error(const char *what, const char *msg) {
    out("error: %s: %s", what, msg);
    if (ui.test_hook) return;
    wchar_t t[128], m[AWQ_ERR_LEN];
    to_wide(what, t, 128);
    to_wide(msg, m, AWQ_ERR_LEN);
    /* modal, but it pumps messages: worker events keep arriving meanwhile */
    MessageBoxW(NULL, m, t, MB_OK | MB_ICONERROR);
}

static const char *setting(const char *key) {
    const char *v = ui.settings ? tray_event_setting(ui.settings, key) : NULL;
    return v ? v : "";
}

static void submit(tray_req_kind k, const char *arg, const char *value) {
    tray_req *r = calloc(1, sizeof *r);
    char err[AWQ_ERR_LEN];
    if (!r) return;
    r->kind = k;
    snprintf(r->arg, sizeof r->arg, "%s", arg ? arg : "");
    snprintf(r->value, sizeof r->value, "%s", value ? value : "");
    if (tray_worker_submit(err, ui.w, r) != 0) show_error(tray_req_name(k), err);
    free(r);
}

/* ------------------------------------------------------------ icons ---- */

/* A disc of one colour per state (the Linux SVGs' colours), drawn at the small-icon size, so
 * the program needs no resource file. */
static HICON make_icon(COLORREF fill, COLORREF ring) {
    int cx = GetSystemMetrics(SM_CXSMICON), cy = GetSystemMetrics(SM_CYSMICON);
    HDC screen = GetDC(NULL), dc = CreateCompatibleDC(screen);
    HBITMAP color = CreateCompatibleBitmap(screen, cx, cy), mask = CreateBitmap(cx, cy, 1, 1, NULL);
    HGDIOBJ old = SelectObject(dc, mask);
    PatBlt(dc, 0, 0, cx, cy, WHITENESS); /* mask: white = transparent */
    SelectObject(dc, GetStockObject(BLACK_BRUSH));
    SelectObject(dc, GetStockObject(BLACK_PEN));
    Ellipse(dc, 0, 0, cx, cy);
    SelectObject(dc, color);
    PatBlt(dc, 0, 0, cx, cy, BLACKNESS);
    HBRUSH b = CreateSolidBrush(fill);
    HPEN p = CreatePen(PS_SOLID, cx / 8 ? cx / 8 : 1, ring);
    SelectObject(dc, b);
    SelectObject(dc, p);
    Ellipse(dc, 1, 1, cx - 1, cy - 1);
    SelectObject(dc, old);
    ICONINFO ii = {.fIcon = TRUE, .hbmMask = mask, .hbmColor = color};
    HICON icon = CreateIconIndirect(&ii);
    DeleteObject(b);
    DeleteObject(p);
    DeleteObject(color);
    DeleteObject(mask);
    DeleteDC(dc);
    ReleaseDC(NULL, screen);
    return icon;
}

static void redraw(void) {
    tray_menu m;
    tray_menu_build(&ui.view, &m);
    ui.nid.uFlags = NIF_ICON | NIF_TIP;
    ui.nid.hIcon = ui.icons[ui.view.state];
    to_wide(m.e[TRAY_ITEM_STATUS].label, ui.nid.szTip, 128);
    Shell_NotifyIconW(NIM_MODIFY, &ui.nid);
}

static void popup_menu(void) {
    tray_menu m;
    tray_menu_build(&ui.view, &m);
    HMENU h = CreatePopupMenu();
    for (int i = 0; i < TRAY_ITEM_COUNT; i++) {
        wchar_t l[TRAY_LABEL_MAX];
        to_wide(m.e[i].label, l, TRAY_LABEL_MAX);
        AppendMenuW(h, MF_STRING | (m.e[i].enabled ? 0 : MF_GRAYED), ID_ITEM0 + (UINT_PTR)i, l);
        if (m.e[i].separator_after) AppendMenuW(h, MF_SEPARATOR, 0, NULL);
    }
    POINT pt;
    GetCursorPos(&pt);
    SetForegroundWindow(ui.hwnd); /* else the menu does not close when clicking elsewhere */
    TrackPopupMenu(h, TPM_RIGHTBUTTON | TPM_BOTTOMALIGN, pt.x, pt.y, 0, ui.hwnd, NULL);
    PostMessageW(ui.hwnd, WM_NULL, 0, 0);
    DestroyMenu(h);
}

/* ------------------------------------------------------------ settings window ---- */

static void settings_save(void) {
    size_t n;
    const tray_setting *st = tray_settings(&n);
    for (size_t i = 0; i < n && i < FIELDS_MAX; i++) {
        wchar_t w[1024];
        char v[1024 * 3];
        GetWindowTextW(ui.fields[i], w, 1024);
        to_utf8(w, v, sizeof v);
        if (strcmp(v, setting(st[i].key)) != 0) submit(TRAY_REQ_SET, st[i].key, v);
    }
}

static LRESULT CALLBACK settings_proc(HWND h, UINT msg, WPARAM wp, LPARAM lp) {
    if (msg == WM_COMMAND && (LOWORD(wp) == ID_SAVE || LOWORD(wp) == ID_CANCEL)) {
        if (LOWORD(wp) == ID_SAVE) settings_save();
        DestroyWindow(h);
        return 0;
    }
    if (msg == WM_DESTROY) ui.settings_wnd = NULL;
    return DefWindowProcW(h, msg, wp, lp);
}

static void open_settings(void) {
    if (ui.settings_wnd) {
        SetForegroundWindow(ui.settings_wnd);
        return;
    }
    if (!ui.settings) {
        ui.settings_wanted = true;
        submit(TRAY_REQ_SETTINGS, NULL, NULL);
        return;
    }
    size_t n;
    const tray_setting *st = tray_settings(&n);
    int row = 28, w = 640, hgt = (int)n * row + 110;
    HWND s = CreateWindowExW(0, L"awq-tray-settings", L"awqd settings", WS_OVERLAPPED | WS_CAPTION | WS_SYSMENU,
                             CW_USEDEFAULT, CW_USEDEFAULT, w, hgt, NULL, NULL, GetModuleHandleW(NULL), NULL);
    if (!s) return;
    HFONT font = (HFONT)GetStockObject(DEFAULT_GUI_FONT);
    for (size_t i = 0; i < n && i < FIELDS_MAX; i++) {
        wchar_t l[128], v[1024];
        int y = 10 + (int)i * row;
        to_wide(st[i].label, l, 128);
        to_wide(setting(st[i].key), v, 1024);
        HWND lab = CreateWindowExW(0, L"STATIC", l, WS_CHILD | WS_VISIBLE, 10, y + 3, 300, 20, s, NULL, NULL, NULL);
        /* a choice is an edit box too: the daemon checks it and says which values it takes */
        HWND f = CreateWindowExW(WS_EX_CLIENTEDGE, L"EDIT", v, WS_CHILD | WS_VISIBLE | WS_TABSTOP | ES_AUTOHSCROLL, 320,
                                 y, 290, 22, s, (HMENU)(INT_PTR)(ID_FIELD0 + (int)i), NULL, NULL);
        SendMessageW(lab, WM_SETFONT, (WPARAM)font, TRUE);
        SendMessageW(f, WM_SETFONT, (WPARAM)font, TRUE);
        ui.fields[i] = f;
    }
    int y = 10 + (int)n * row + 8;
    HWND save = CreateWindowExW(0, L"BUTTON", L"Save", WS_CHILD | WS_VISIBLE | BS_DEFPUSHBUTTON, w - 200, y, 80, 26,
                                s, (HMENU)(INT_PTR)ID_SAVE, NULL, NULL);
    HWND cancel = CreateWindowExW(0, L"BUTTON", L"Cancel", WS_CHILD | WS_VISIBLE, w - 110, y, 80, 26, s,
                                  (HMENU)(INT_PTR)ID_CANCEL, NULL, NULL);
    SendMessageW(save, WM_SETFONT, (WPARAM)font, TRUE);
    SendMessageW(cancel, WM_SETFONT, (WPARAM)font, TRUE);
    ui.settings_wnd = s;
    ShowWindow(s, SW_SHOW);
    out("dialog: settings");
}

/* ------------------------------------------------------------ actions ---- */

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

static int CALLBACK browse_cb(HWND h, UINT msg, LPARAM lp, LPARAM data) {
    (void)lp;
    if (msg == BFFM_INITIALIZED && data) SendMessageW(h, BFFM_SETSELECTIONW, TRUE, data);
    return 0;
}

static void open_chooser(void) {
    char (*roots)[PLAT_PATH_MAX] = malloc(sizeof(char[TRAY_ROOTS_MAX][PLAT_PATH_MAX]));
    size_t n = 0;
    char err[AWQ_ERR_LEN];
    static wchar_t first[MAX_PATH];
    first[0] = 0;
    if (roots && tray_roots_parse(err, setting("model.roots"), roots, &n) == 0 && n) to_wide(roots[0], first, MAX_PATH);
    free(roots);
    BROWSEINFOW bi = {.hwndOwner = ui.hwnd,
                      .lpszTitle = L"Load a model folder (it must be under the model roots)",
                      .ulFlags = BIF_RETURNONLYFSDIRS | BIF_NEWDIALOGSTYLE,
                      .lpfn = browse_cb,
                      .lParam = first[0] ? (LPARAM)first : 0};
    out("dialog: load");
    PIDLIST_ABSOLUTE id = SHBrowseForFolderW(&bi);
    if (!id) return;
    wchar_t w[MAX_PATH];
    if (SHGetPathFromIDListW(id, w)) {
        char p[MAX_PATH * 3];
        to_utf8(w, p, sizeof p);
        load_folder(p);
    }
    CoTaskMemFree(id);
}

static void open_chat(void) {
    char awq[PLAT_PATH_MAX], err[AWQ_ERR_LEN];
    if (tray_sys_find_program("awq", awq) != 0) {
        show_error("Open a chat", "awq.exe was not found beside awq-tray or on PATH");
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
    case TRAY_ITEM_QUIT: DestroyWindow(ui.hwnd); break;
    case TRAY_ITEM_STATUS: break;
    }
}

/* ------------------------------------------------------------ events ---- */

static void dump_settings(void) {
    for (size_t i = 0; ui.settings && i < ui.settings->n_settings; i++)
        out("setting: %s = %s", ui.settings->settings[i].key, ui.settings->settings[i].value);
    out("settings: end");
}

static void on_event(tray_event *ev) {
    char l[TRAY_LABEL_MAX];
    if (ev->kind == TRAY_EV_VIEW) {
        tray_state was = ui.view.state;
        ui.view = ev->view;
        tray_view_line(&ui.view, l);
        out("%s", l);
        redraw();
        if (was == TRAY_ST_LOADING && ui.view.state == TRAY_ST_READY) {
            tray_status_label(&ui.view, l);
            notify("Model loaded", l + 6);
        }
    } else if (ev->kind == TRAY_EV_DONE) {
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
    } else if (ev->kind == TRAY_EV_SETTINGS) {
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
    }
    tray_event_free(ev);
}

static void post(void *user, tray_event *ev) {
    (void)user;
    if (!PostMessageW(ui.hwnd, WM_APP_EVENT, 0, (LPARAM)ev)) tray_event_free(ev); /* window gone */
}

static void on_hook_line(char *line) {
    char err[AWQ_ERR_LEN], l[TRAY_LABEL_MAX];
    tray_hook_cmd *c = malloc(sizeof *c);
    int rc = c ? tray_hook_parse(err, line, c) : AWQ_ENOMEM;
    if (rc < 0) out("hook-error: %s", c ? err : "out of memory");
    if (rc == 0) {
        tray_menu m;
        awq_buf b = {0};
        switch (c->op) {
        case TRAY_HOOK_CLICK:
            tray_menu_build(&ui.view, &m);
            if (!m.e[c->item].enabled) out("hook-error: %s is disabled now", tray_item_name(c->item));
            else do_item(c->item, c->item == TRAY_ITEM_LOAD ? c->arg : NULL);
            break;
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
}

/* The stdin reader (test hook): one line per message; NULL at EOF. */
static void *stdin_reader(void *arg) {
    (void)arg;
    char buf[PLAT_PATH_MAX + 1200];
    while (fgets(buf, sizeof buf, stdin)) {
        char *copy = malloc(strlen(buf) + 1);
        if (!copy) continue;
        strcpy(copy, buf);
        if (!PostMessageW(ui.hwnd, WM_APP_HOOK, 0, (LPARAM)copy)) free(copy);
    }
    PostMessageW(ui.hwnd, WM_APP_HOOK, 0, 0);
    return NULL;
}

static LRESULT CALLBACK wnd_proc(HWND h, UINT msg, WPARAM wp, LPARAM lp) {
    switch (msg) {
    case WM_APP_TRAY:
        if (LOWORD(lp) == WM_RBUTTONUP || LOWORD(lp) == WM_LBUTTONUP || LOWORD(lp) == WM_CONTEXTMENU) popup_menu();
        return 0;
    case WM_APP_EVENT:
        on_event((tray_event *)lp);
        return 0;
    case WM_APP_HOOK:
        if (!lp) {
            out("bye");
            DestroyWindow(h);
        } else {
            on_hook_line((char *)lp);
            free((char *)lp);
        }
        return 0;
    case WM_COMMAND:
        if (LOWORD(wp) >= ID_ITEM0 && LOWORD(wp) < ID_ITEM0 + TRAY_ITEM_COUNT) {
            tray_menu m;
            tray_menu_build(&ui.view, &m);
            int it = LOWORD(wp) - ID_ITEM0;
            if (m.e[it].enabled) do_item((tray_item)it, NULL);
        }
        return 0;
    case WM_DESTROY:
        Shell_NotifyIconW(NIM_DELETE, &ui.nid);
        PostQuitMessage(0);
        return 0;
    }
    return DefWindowProcW(h, msg, wp, lp);
}

/* ------------------------------------------------------------ start-up ---- */

int WINAPI WinMain(HINSTANCE inst, HINSTANCE prev, LPSTR cmd, int show) {
    (void)prev;
    (void)cmd;
    (void)show;
    int argc = 0;
    wchar_t **wargv = CommandLineToArgvW(GetCommandLineW(), &argc);
    static char args[32][PLAT_PATH_MAX];
    const char *sock = NULL, *config = NULL, *mode = NULL, *unit = NULL, *awqd = NULL, *exes[EXES_MAX] = {"awqd.exe"};
    size_t n_exes = 1;
    int poll_ms = 0;
    const char *tv = getenv("AWQ_TRAY_TEST");
    ui.test_hook = tv && !strcmp(tv, "1");
    for (int i = 1; wargv && i < argc && i < 32; i++) to_utf8(wargv[i], args[i], PLAT_PATH_MAX);
    for (int i = 1; i < argc && i < 32; i++) {
        const char *a = args[i], *v = i + 1 < argc && i + 1 < 32 ? args[i + 1] : NULL;
        if (!strcmp(a, "--test-hook")) {
            ui.test_hook = true;
            continue;
        }
        const char **dst = !strcmp(a, "--socket") ? &sock : !strcmp(a, "--config") ? &config
                         : !strcmp(a, "--start-mode") ? &mode : !strcmp(a, "--unit") ? &unit
                         : !strcmp(a, "--awqd") ? &awqd : NULL;
        bool is_exe = !strcmp(a, "--allow-exe"), is_poll = !strcmp(a, "--poll-ms");
        if ((!dst && !is_exe && !is_poll) || !v) {
            fprintf(stderr, "awq-tray: bad option '%s'\n", a);
            return 2;
        }
        i++;
        if (dst) *dst = v;
        else if (is_poll) poll_ms = atoi(v);
        else if (n_exes < EXES_MAX) exes[n_exes++] = v;
    }
    LocalFree(wargv);
    char err[AWQ_ERR_LEN];
    if (mode && tray_start_mode_parse(err, mode, &ui.svc.mode) != 0) {
        fprintf(stderr, "awq-tray: %s\n", err);
        return 2;
    }
    snprintf(ui.svc.unit, sizeof ui.svc.unit, "%s", unit ? unit : "");
    snprintf(ui.svc.awqd, sizeof ui.svc.awqd, "%s", awqd ? awqd : "");
    snprintf(ui.svc.config, sizeof ui.svc.config, "%s", config ? config : "");
    cfg *c = malloc(sizeof *c);
    if (!c) return 1;
    if (cfg_load(err, config, c, NULL) != 0) cfg_defaults(c);
    const char *env_sock = getenv("AWQ_SOCKET");
    if (!sock && env_sock && *env_sock) sock = env_sock;
    if (sock) snprintf(ui.socket, sizeof ui.socket, "%s", sock);
    else if (c->server.pipe[0]) snprintf(ui.socket, sizeof ui.socket, "%s", c->server.pipe);
    else if (awq_default_socket_path(err, ui.socket, sizeof ui.socket) != 0) snprintf(ui.socket, sizeof ui.socket, "awqd");
    if (sock) snprintf(ui.svc.socket, sizeof ui.svc.socket, "%s", sock);

    WNDCLASSW wc = {.lpfnWndProc = wnd_proc, .hInstance = inst, .lpszClassName = L"awq-tray"};
    WNDCLASSW sc = {.lpfnWndProc = settings_proc, .hInstance = inst, .lpszClassName = L"awq-tray-settings",
                    .hbrBackground = (HBRUSH)(COLOR_BTNFACE + 1), .hCursor = LoadCursor(NULL, IDC_ARROW)};
    RegisterClassW(&wc);
    RegisterClassW(&sc);
    /* a hidden top-level window (not HWND_MESSAGE: the taskbar sends its messages to it) */
    ui.hwnd = CreateWindowExW(0, L"awq-tray", L"awq-tray", 0, 0, 0, 0, 0, NULL, NULL, inst, NULL);
    if (!ui.hwnd) {
        free(c);
        return 1;
    }
    static const COLORREF fill[TRAY_ST_COUNT] = {RGB(242, 242, 242), RGB(227, 239, 255), RGB(255, 244, 214),
                                                 RGB(31, 157, 85), RGB(208, 49, 45)};
    static const COLORREF ring[TRAY_ST_COUNT] = {RGB(122, 122, 122), RGB(47, 111, 214), RGB(217, 148, 0),
                                                 RGB(31, 157, 85), RGB(208, 49, 45)};
    for (int i = 0; i < TRAY_ST_COUNT; i++) ui.icons[i] = make_icon(fill[i], ring[i]);
    tray_view_stopped(&ui.view);
    ui.nid.cbSize = sizeof ui.nid;
    ui.nid.hWnd = ui.hwnd;
    ui.nid.uID = 1;
    ui.nid.uFlags = NIF_ICON | NIF_TIP | NIF_MESSAGE;
    ui.nid.uCallbackMessage = WM_APP_TRAY;
    ui.nid.hIcon = ui.icons[TRAY_ST_STOPPED];
    wcscpy(ui.nid.szTip, L"awqd: stopped");
    Shell_NotifyIconW(NIM_ADD, &ui.nid);

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
        Shell_NotifyIconW(NIM_DELETE, &ui.nid);
        return 1;
    }
    plat_thread reader;
    if (ui.test_hook) {
        out("awq-tray: test hook on %s", ui.socket);
        if (plat_thread_create(&reader, stdin_reader, NULL) != 0) ui.test_hook = false;
    }
    MSG m;
    while (GetMessageW(&m, NULL, 0, 0) > 0) {
        TranslateMessage(&m);
        DispatchMessageW(&m);
    }
    tray_worker_free(ui.w);
    tray_event_free(ui.settings);
    for (int i = 0; i < TRAY_ST_COUNT; i++) DestroyIcon(ui.icons[i]);
    /* the stdin reader may still block in fgets: the process exit ends it */
    return 0;
}
