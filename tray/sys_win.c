/* sys_win.c - awq-tray's OS side on Windows: the pipe server's identity
 * (GetNamedPipeServerProcessId + its image name), the service control manager, detached
 * processes (CreateProcessW), cmd.exe for chat, Notepad for logs. See sys.h.
 *
 * Strings cross the API as UTF-8 (the rest of awqd) and become UTF-16 here. */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "awq.h"
#include "awq_util.h"
#include "sys.h"

/* The pipe has a name that always works, so a tray started with no settings still finds a
 * daemon started the same way. */
int tray_sys_default_socket(char *err, const cfg *c, char *out) {
    if (c->server.pipe[0]) snprintf(out, PLAT_PATH_MAX, "%s", c->server.pipe);
    else if (awq_default_socket_path(err, out, PLAT_PATH_MAX) != 0) snprintf(out, PLAT_PATH_MAX, "awqd");
    return 0;
}

/* ------------------------------------------------------------ helpers ---- */

/* UTF-8 -> UTF-16 into a malloc'ed string (NULL on failure). */
static wchar_t *wide(const char *s) {
    int n = MultiByteToWideChar(CP_UTF8, 0, s, -1, NULL, 0);
    wchar_t *w = n > 0 ? malloc((size_t)n * sizeof *w) : NULL;
    if (w && MultiByteToWideChar(CP_UTF8, 0, s, -1, w, n) <= 0) {
        free(w);
        w = NULL;
    }
    return w;
}

static void narrow(const wchar_t *w, char *out, size_t cap) {
    if (WideCharToMultiByte(CP_UTF8, 0, w, -1, out, (int)cap, NULL, NULL) <= 0) out[0] = 0;
}

/* The system's text for GetLastError() code e. */
static void last_error(DWORD e, char *out, size_t cap) {
    wchar_t w[256];
    DWORD n = FormatMessageW(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, e, 0, w, 256, NULL);
    while (n && (w[n - 1] == L'\r' || w[n - 1] == L'\n' || w[n - 1] == L'.')) w[--n] = 0;
    if (!n) snprintf(out, cap, "error %lu", (unsigned long)e);
    else narrow(w, out, cap);
}

/* ------------------------------------------------------------ server identity ---- */

int tray_sys_check_server(char *err, const char *socket_path, const char *const *exes, size_t n_exes, bool check_exe,
                          int64_t *pid_out) {
    *pid_out = 0;
    char name[PLAT_PATH_MAX];
    /* a bare name means \\.\pipe\NAME, as server.pipe does */
    if (strncmp(socket_path, "\\\\.\\pipe\\", 9) == 0) snprintf(name, sizeof name, "%s", socket_path);
    else snprintf(name, sizeof name, "\\\\.\\pipe\\%s", socket_path);
    wchar_t *w = wide(name);
    if (!w) return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    /* identification level only: a pipe server may not impersonate us (threat model row 4) */
    HANDLE h = CreateFileW(w, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                           SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, NULL);
    free(w);
    if (h == INVALID_HANDLE_VALUE) {
        DWORD e = GetLastError();
        char t[160];
        last_error(e, t, sizeof t);
        if (e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND)
            return awq_seterr(err, AWQ_ENOTFOUND, "no pipe %s", name);
        if (e == ERROR_PIPE_BUSY) return awq_seterr(err, AWQ_EBUSY, "the server on %s is busy", name);
        if (e == ERROR_ACCESS_DENIED)
            return awq_seterr(err, AWQ_EPERM, "the pipe %s does not let you in: %s", name, t);
        return awq_seterr(err, AWQ_EIO, "%s: %s", name, t);
    }
    ULONG pid = 0;
    int rc = 0;
    if (!GetNamedPipeServerProcessId(h, &pid)) {
        rc = awq_seterr(err, AWQ_EIO, "cannot read the server process of %s", name);
    } else if (check_exe) {
        HANDLE p = OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, FALSE, pid);
        wchar_t img[MAX_PATH];
        DWORD n = MAX_PATH;
        char exe[PLAT_PATH_MAX] = "";
        if (p && QueryFullProcessImageNameW(p, 0, img, &n)) narrow(img, exe, sizeof exe);
        if (p) CloseHandle(p);
        const char *base = strrchr(exe, '\\');
        base = base ? base + 1 : exe;
        bool ok = false;
        for (size_t i = 0; i < n_exes && !ok && *base; i++) ok = _stricmp(base, exes[i]) == 0;
        if (!*exe)
            rc = awq_seterr(err, AWQ_EPERM,
                            "cannot tell which program serves %s (pid %lu): refusing to talk to a server that is not "
                            "ours",
                            name, (unsigned long)pid);
        else if (!ok)
            rc = awq_seterr(err, AWQ_EPERM,
                            "the server on %s is %s (pid %lu), not %s: refusing to talk to a server that is not ours",
                            name, exe, (unsigned long)pid, n_exes ? exes[0] : "awqd.exe");
    }
    if (!rc) *pid_out = (int64_t)pid;
    CloseHandle(h);
    return rc;
}

/* ------------------------------------------------------------ programs ---- */

int tray_sys_find_program(const char *name, char *out) {
    char nm[PLAT_PATH_MAX];
    size_t len = strlen(name);
    bool has_ext = len > 4 && _stricmp(name + len - 4, ".exe") == 0;
    snprintf(nm, sizeof nm, "%s%s", name, has_ext ? "" : ".exe");
    if (strchr(name, '\\') || strchr(name, '/')) {
        if (GetFileAttributesA(nm) == INVALID_FILE_ATTRIBUTES) return AWQ_ENOTFOUND;
        snprintf(out, PLAT_PATH_MAX, "%s", nm);
        return 0;
    }
    wchar_t self[MAX_PATH];
    DWORD n = GetModuleFileNameW(NULL, self, MAX_PATH);
    if (n > 0 && n < MAX_PATH) {
        char dir[PLAT_PATH_MAX];
        narrow(self, dir, sizeof dir);
        char *slash = strrchr(dir, '\\');
        if (slash) {
            *slash = 0;
            if (plat_path_join(out, dir, nm) == 0 && plat_is_file(out)) return 0;
        }
    }
    wchar_t *w = wide(nm), found[MAX_PATH];
    DWORD k = w ? SearchPathW(NULL, w, NULL, MAX_PATH, found, NULL) : 0;
    free(w);
    if (k == 0 || k >= MAX_PATH) return AWQ_ENOTFOUND;
    narrow(found, out, PLAT_PATH_MAX);
    return 0;
}

/* name.exe: what tray_sys_find_program looked for, so the user searches for the same file */
void tray_sys_not_found_msg(const char *name, char *out) {
    snprintf(out, AWQ_ERR_LEN, "%s.exe was not found beside awq-tray or on PATH", name);
}

/* argv as one command line, quoted the way CommandLineToArgvW splits it again. */
static int cmdline(const char *exe, const char *const *argv, awq_buf *b) {
    int rc = 0;
    for (size_t i = 0; argv[i] && !rc; i++) {
        const char *a = i == 0 ? exe : argv[i];
        if (i) rc = awq_buf_puts(b, " ");
        rc = rc ? rc : awq_buf_puts(b, "\"");
        for (const char *p = a; *p && !rc; p++) {
            size_t bs = 0;
            while (p[bs] == '\\') bs++;
            if (p[bs] == '"' || p[bs] == 0) { /* backslashes before a quote or the end double */
                for (size_t k = 0; k < bs * 2 && !rc; k++) rc = awq_buf_puts(b, "\\");
                p += bs;
                if (!*p) break;
                rc = rc ? rc : awq_buf_puts(b, "\\\"");
            } else {
                for (size_t k = 0; k <= bs && !rc; k++) rc = awq_buf_append(b, p + k, 1);
                p += bs;
            }
        }
        rc = rc ? rc : awq_buf_puts(b, "\"");
    }
    return rc;
}

/* CreateProcessW of argv with flags; output appended to log_path when given. */
static int start_process(char *err, const char *const *argv, const char *log_path, DWORD flags) {
    char exe[PLAT_PATH_MAX];
    if (tray_sys_find_program(argv[0], exe) != 0)
        return awq_seterr(err, AWQ_ENOTFOUND, "%s: program not found (beside awq-tray or on PATH)", argv[0]);
    awq_buf b = {0};
    if (cmdline(exe, argv, &b)) {
        awq_buf_free(&b);
        return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    }
    wchar_t *wexe = wide(exe), *wcmd = wide(b.data);
    awq_buf_free(&b);
    HANDLE log = INVALID_HANDLE_VALUE;
    STARTUPINFOW si = {.cb = sizeof si};
    BOOL inherit = FALSE;
    if (log_path) {
        SECURITY_ATTRIBUTES sa = {.nLength = sizeof sa, .bInheritHandle = TRUE};
        wchar_t *wl = wide(log_path);
        log = wl ? CreateFileW(wl, FILE_APPEND_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE, &sa, OPEN_ALWAYS,
                               FILE_ATTRIBUTE_NORMAL, NULL)
                 : INVALID_HANDLE_VALUE;
        free(wl);
        if (log != INVALID_HANDLE_VALUE) {
            si.dwFlags = STARTF_USESTDHANDLES;
            si.hStdInput = NULL;
            si.hStdOutput = si.hStdError = log;
            inherit = TRUE;
        }
    }
    PROCESS_INFORMATION pi;
    int rc = 0;
    if (!wexe || !wcmd) {
        rc = awq_seterr(err, AWQ_ENOMEM, "out of memory");
    } else if (!CreateProcessW(wexe, wcmd, NULL, NULL, inherit, flags, NULL, NULL, &si, &pi)) {
        char t[160];
        last_error(GetLastError(), t, sizeof t);
        rc = awq_seterr(err, AWQ_ENOTFOUND, "cannot run %s: %s", exe, t);
    } else {
        CloseHandle(pi.hThread);
        CloseHandle(pi.hProcess);
    }
    if (log != INVALID_HANDLE_VALUE) CloseHandle(log);
    free(wexe);
    free(wcmd);
    return rc;
}

int tray_sys_spawn(char *err, const char *const *argv, const char *log_path) {
    return start_process(err, argv, log_path, CREATE_NO_WINDOW | CREATE_NEW_PROCESS_GROUP);
}

int tray_sys_terminal(char *err, const char *const *argv) {
    char exe[PLAT_PATH_MAX];
    if (tray_sys_find_program(argv[0], exe) != 0)
        return awq_seterr(err, AWQ_ENOTFOUND, "%s: program not found (beside awq-tray or on PATH)", argv[0]);
    const char *av[32] = {"cmd.exe", "/k", exe};
    size_t n = 3;
    for (size_t k = 1; argv[k] && n < 31; k++) av[n++] = argv[k];
    av[n] = NULL;
    return start_process(err, av, NULL, CREATE_NEW_CONSOLE);
}

/* ------------------------------------------------------------ service ---- */

static const char *unit_of(const tray_service *s) { return s->unit[0] ? s->unit : "awqd"; }

/* Open the service with access; NULL with err set when it is not installed or not reachable. */
static SC_HANDLE open_service(char *err, const tray_service *s, DWORD access, SC_HANDLE *scm) {
    *scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT);
    if (!*scm) {
        char t[160];
        last_error(GetLastError(), t, sizeof t);
        awq_seterr(err, AWQ_EPERM, "cannot reach the service control manager: %s", t);
        return NULL;
    }
    wchar_t *w = wide(unit_of(s));
    SC_HANDLE h = w ? OpenServiceW(*scm, w, access) : NULL;
    free(w);
    if (!h) {
        char t[160];
        DWORD e = GetLastError();
        last_error(e, t, sizeof t);
        awq_seterr(err, e == ERROR_SERVICE_DOES_NOT_EXIST ? AWQ_ENOTFOUND : AWQ_EPERM, "service %s: %s", unit_of(s), t);
        CloseServiceHandle(*scm);
        *scm = NULL;
    }
    return h;
}

bool tray_sys_service_managed(const tray_service *s) {
    if (s->mode == TRAY_START_SPAWN) return false;
    if (s->mode == TRAY_START_SERVICE) return true;
    SC_HANDLE scm, h = open_service(NULL, s, SERVICE_QUERY_STATUS, &scm);
    if (!h) return false;
    CloseServiceHandle(h);
    CloseServiceHandle(scm);
    return true;
}

void tray_sys_spawn_log(const tray_service *s, char *out) {
    if (s->log[0]) {
        snprintf(out, PLAT_PATH_MAX, "%s", s->log);
        return;
    }
    const char *base = getenv("LOCALAPPDATA");
    char dir[PLAT_PATH_MAX], e[AWQ_ERR_LEN];
    snprintf(dir, sizeof dir, "%s\\awqd", base && *base ? base : ".");
    if (plat_mkdirs(e, dir, 0700) != 0 || plat_path_join(out, dir, "awqd.log") != 0) out[0] = 0;
}

int tray_sys_service_start(char *err, const tray_service *s, bool *spawned) {
    *spawned = false;
    if (tray_sys_service_managed(s)) {
        SC_HANDLE scm, h = open_service(err, s, SERVICE_START, &scm);
        if (!h) return AWQ_EPERM;
        int rc = 0;
        if (!StartServiceW(h, 0, NULL) && GetLastError() != ERROR_SERVICE_ALREADY_RUNNING) {
            char t[160];
            last_error(GetLastError(), t, sizeof t);
            rc = awq_seterr(err, AWQ_EIO, "starting service %s: %s", unit_of(s), t);
        }
        CloseServiceHandle(h);
        CloseServiceHandle(scm);
        return rc;
    }
    const char *argv[8] = {s->awqd[0] ? s->awqd : "awqd"};
    int n = 1;
    argv[n++] = "--foreground"; /* not under the SCM: no dispatcher (docs/windows.md) */
    if (s->config[0]) argv[n++] = "--config", argv[n++] = s->config;
    if (s->socket[0]) argv[n++] = "--socket", argv[n++] = s->socket;
    argv[n] = NULL;
    char log[PLAT_PATH_MAX];
    tray_sys_spawn_log(s, log);
    int rc = tray_sys_spawn(err, argv, log[0] ? log : NULL);
    if (!rc) *spawned = true;
    return rc;
}

int tray_sys_service_stop(char *err, const tray_service *s) {
    if (!tray_sys_service_managed(s))
        return awq_seterr(err, AWQ_EUNSUPPORTED, "awqd is not run as a service: stop it with the protocol");
    SC_HANDLE scm, h = open_service(err, s, SERVICE_STOP, &scm);
    if (!h) return AWQ_EPERM;
    SERVICE_STATUS st;
    int rc = 0;
    if (!ControlService(h, SERVICE_CONTROL_STOP, &st) && GetLastError() != ERROR_SERVICE_NOT_ACTIVE) {
        char t[160];
        last_error(GetLastError(), t, sizeof t);
        rc = awq_seterr(err, AWQ_EIO, "stopping service %s: %s", unit_of(s), t);
    }
    CloseServiceHandle(h);
    CloseServiceHandle(scm);
    return rc;
}

int tray_sys_show_logs(char *err, const tray_service *s, const char *log_file) {
    (void)s; /* the service logs to log.file too: there is no journal on Windows */
    if (!*log_file || !plat_is_file(log_file))
        return awq_seterr(err, AWQ_ENOTFOUND, "no log to show: %s does not exist (set log.file in Settings)",
                          *log_file ? log_file : "no log file");
    const char *argv[] = {"notepad.exe", log_file, NULL};
    return start_process(err, argv, NULL, 0);
}
