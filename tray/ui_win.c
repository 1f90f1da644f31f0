/* ui_win.c - awq-tray's Windows front end: a Shell_NotifyIconW icon owned by a hidden window
 * (class "awq-tray", so tests can post WM_COMMAND to it), a popup menu built from the shared
 * menu model, SHBrowseForFolderW for Load (checked against the roots), a small Settings window,
 * balloon notifications (NIF_INFO), and the test hook (--test-hook / AWQ_TRAY_TEST=1: a reader
 * thread posts stdin lines to the window; results go to stdout). What each item, event and hook
 * line does is decided in actions.c, shared with ui_linux.c; this file is the Win32 side of it
 * (the tray_ui_ops hooks) and the start-up.
 *
 * Threads: the window procedure runs on the UI thread; the worker posts its events with
 * PostMessageW (lParam = the tray_event, taken by the UI thread). */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#include <shellapi.h>
#include <shlobj.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actions.h"
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
#define FIELDS_MAX 16

static struct {
    tray_actions a; /* the shared part: view, settings, worker, socket, service (actions.h) */
    HWND hwnd, settings_wnd;
    HWND fields[FIELDS_MAX];
    NOTIFYICONDATAW nid;
    HICON icons[TRAY_ST_COUNT];
} ui;

/* ------------------------------------------------------------ text ---- */

static void to_wide(const char *s, wchar_t *out, int cap) {
    if (MultiByteToWideChar(CP_UTF8, 0, s, -1, out, cap) <= 0) out[0] = 0;
    out[cap - 1] = 0;
}

static void to_utf8(const wchar_t *w, char *out, int cap) {
    if (WideCharToMultiByte(CP_UTF8, 0, w, -1, out, cap, NULL, NULL) <= 0) out[0] = 0;
}

/* ------------------------------------------------------------ notices ---- */

/* A balloon from the icon. */
static void notify(void *user, const char *title, const char *body) {
    (void)user;
    ui.nid.uFlags = NIF_INFO;
    ui.nid.dwInfoFlags = NIIF_INFO;
    to_wide(title, ui.nid.szInfoTitle, 64);
    to_wide(body, ui.nid.szInfo, 256);
    Shell_NotifyIconW(NIM_MODIFY, &ui.nid);
}

static void show_error(void *user, const char *what, const char *msg) {
    (void)user;
    wchar_t t[128], m[AWQ_ERR_LEN];
    to_wide(what, t, 128);
    to_wide(msg, m, AWQ_ERR_LEN);
    /* modal, but it pumps messages: worker events keep arriving meanwhile */
    MessageBoxW(NULL, m, t, MB_OK | MB_ICONERROR);
}

/* Destroying the hidden window ends the message loop (WM_DESTROY posts the quit). */
static void quit(void *user) {
    (void)user;
    DestroyWindow(ui.hwnd);
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

static void redraw(void *user) {
    (void)user;
    tray_menu m;
    tray_menu_build(&ui.a.view, &m);
    ui.nid.uFlags = NIF_ICON | NIF_TIP;
    ui.nid.hIcon = ui.icons[ui.a.view.state];
    to_wide(m.e[TRAY_ITEM_STATUS].label, ui.nid.szTip, 128);
    Shell_NotifyIconW(NIM_MODIFY, &ui.nid);
}

static void popup_menu(void) {
    tray_menu m;
    tray_menu_build(&ui.a.view, &m);
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
        tray_actions_setting_edited(&ui.a, st[i].key, v);
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

static void settings_dialog(void *user) {
    (void)user;
    if (ui.settings_wnd) {
        SetForegroundWindow(ui.settings_wnd);
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
        to_wide(tray_actions_setting(&ui.a, st[i].key), v, 1024);
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
    tray_actions_out(&ui.a, "dialog: settings");
}

/* ------------------------------------------------------------ load ---- */

static int CALLBACK browse_cb(HWND h, UINT msg, LPARAM lp, LPARAM data) {
    (void)lp;
    if (msg == BFFM_INITIALIZED && data) SendMessageW(h, BFFM_SETSELECTIONW, TRUE, data);
    return 0;
}

/* SHBrowseForFolderW, starting in the first root. It is modal (it pumps messages meanwhile), so
 * "dialog: load" is printed before it opens, and the choice is loaded when it returns. */
static void choose_folder(void *user, const char (*roots)[PLAT_PATH_MAX], size_t n) {
    (void)user;
    static wchar_t first[MAX_PATH];
    first[0] = 0;
    if (n) to_wide(roots[0], first, MAX_PATH);
    BROWSEINFOW bi = {.hwndOwner = ui.hwnd,
                      .lpszTitle = L"Load a model folder (it must be under the model roots)",
                      .ulFlags = BIF_RETURNONLYFSDIRS | BIF_NEWDIALOGSTYLE,
                      .lpfn = browse_cb,
                      .lParam = first[0] ? (LPARAM)first : 0};
    tray_actions_out(&ui.a, "dialog: load");
    PIDLIST_ABSOLUTE id = SHBrowseForFolderW(&bi);
    if (!id) return;
    wchar_t w[MAX_PATH];
    if (SHGetPathFromIDListW(id, w)) {
        char p[MAX_PATH * 3];
        to_utf8(w, p, sizeof p);
        tray_actions_load(&ui.a, p);
    }
    CoTaskMemFree(id);
}

/* ------------------------------------------------------------ events ---- */

static void post(void *user, tray_event *ev) {
    (void)user;
    if (!PostMessageW(ui.hwnd, WM_APP_EVENT, 0, (LPARAM)ev)) tray_event_free(ev); /* window gone */
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
        tray_actions_event(&ui.a, (tray_event *)lp);
        return 0;
    case WM_APP_HOOK:
        if (!lp) {
            tray_actions_hook_eof(&ui.a);
        } else {
            tray_actions_hook_line(&ui.a, (char *)lp);
            free((char *)lp);
        }
        return 0;
    case WM_COMMAND:
        /* also posted by tests, so a grayed item is checked here, not only by the menu */
        if (LOWORD(wp) >= ID_ITEM0 && LOWORD(wp) < ID_ITEM0 + TRAY_ITEM_COUNT) {
            tray_item it = (tray_item)(LOWORD(wp) - ID_ITEM0);
            if (tray_actions_enabled(&ui.a, it)) tray_actions_item(&ui.a, it, NULL);
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
    static const tray_ui_ops ops = {.redraw = redraw, .notify = notify, .show_error = show_error,
                                    .choose_folder = choose_folder, .settings_dialog = settings_dialog, .quit = quit};
    tray_actions_init(&ui.a, &ops);
    int argc = 0;
    wchar_t **wargv = CommandLineToArgvW(GetCommandLineW(), &argc);
    static char args[32][PLAT_PATH_MAX];
    tray_options opt;
    tray_options_init(&opt, "awqd.exe");
    for (int i = 1; wargv && i < argc && i < 32; i++) to_utf8(wargv[i], args[i], PLAT_PATH_MAX);
    for (int i = 1; i < argc && i < 32; i++) {
        const char *a = args[i], *v = i + 1 < argc && i + 1 < 32 ? args[i + 1] : NULL;
        int used = tray_option(&opt, a, v);
        if (used <= 0) {
            fprintf(stderr, "awq-tray: bad option '%s'\n", a);
            return 2;
        }
        i += used - 1;
    }
    LocalFree(wargv);
    char err[AWQ_ERR_LEN];
    int code;
    /* an unreadable settings file is not reported (it never was here): a GUI-subsystem program
     * started from the shell has no console for stderr */
    cfg *c = tray_actions_configure(err, &ui.a, &opt, false, &code);
    if (!c) {
        fprintf(stderr, "awq-tray: %s\n", err);
        return code;
    }

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
    ui.nid.cbSize = sizeof ui.nid;
    ui.nid.hWnd = ui.hwnd;
    ui.nid.uID = 1;
    ui.nid.uFlags = NIF_ICON | NIF_TIP | NIF_MESSAGE;
    ui.nid.uCallbackMessage = WM_APP_TRAY;
    ui.nid.hIcon = ui.icons[TRAY_ST_STOPPED];
    wcscpy(ui.nid.szTip, L"awqd: stopped");
    Shell_NotifyIconW(NIM_ADD, &ui.nid);

    int rc = tray_actions_start(err, &ui.a, c, &opt, post);
    free(c);
    if (rc != 0) {
        fprintf(stderr, "awq-tray: %s\n", err);
        Shell_NotifyIconW(NIM_DELETE, &ui.nid);
        return 1;
    }
    plat_thread reader;
    if (ui.a.test_hook) {
        tray_actions_out(&ui.a, "awq-tray: test hook on %s", ui.a.socket);
        if (plat_thread_create(&reader, stdin_reader, NULL) != 0) ui.a.test_hook = false;
    }
    MSG m;
    while (GetMessageW(&m, NULL, 0, 0) > 0) {
        TranslateMessage(&m);
        DispatchMessageW(&m);
    }
    tray_actions_close(&ui.a);
    for (int i = 0; i < TRAY_ST_COUNT; i++) DestroyIcon(ui.icons[i]);
    /* the stdin reader may still block in fgets: the process exit ends it */
    return 0;
}
