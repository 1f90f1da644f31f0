/* service_win.c - service.h for Windows: the service control manager (install, remove, run as
 * a service with start-pending progress), console Ctrl-C / Ctrl-Break and service stop /
 * shutdown controls turned into the drain "signal", and the OS details serve.c asks for.
 *
 * How the Linux calls map (serve.c and sched.c call the same functions on both systems):
 *   awqd_svc_notify("READY=1")    -> SERVICE_RUNNING (accepts stop and shutdown)
 *   awqd_svc_notify("STOPPING=1") -> SERVICE_STOP_PENDING, wait hint = the drain timeout
 *   awqd_svc_status("loading ...") -> the next start-pending checkpoint, and the text in the
 *                                     log (SERVICE_STATUS has no text field)
 *   SIGTERM / SIGINT              -> SERVICE_CONTROL_STOP / SHUTDOWN, Ctrl-C, Ctrl-Break, close
 *   the lock file                 -> none: the pipe transport's named mutex Local\awqd-NAME
 *   socket activation             -> none
 * Outside the service manager every SCM report is skipped (awqd --foreground in a console). */
#include "service.h"

#include <windows.h>

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "awqd.h"
#include "log.h"
#include "plat.h"
#include "serve.h"

#define START_WAIT_HINT_MS 30000 /* between two checkpoints while the model loads */
#define CHECKPOINT_EVERY_MS 1000 /* awqd_svc_wait runs every 50 ms during a load: no need to report each */
#define STOP_WAIT_S 30           /* awqd_svc_uninstall waits this long for a running service to drain */

/* ------------------------------------------------------------------ shared state ---- */

/* The drain "signal": bits plus an auto-reset event that wakes awqd_svc_wait. Raised from the
 * console control thread or the service control handler, read by the main (serving) thread. */
static atomic_uint sig_pending;
static atomic_uint sig_drains;
static HANDLE sig_event;

/* The service's status, changed under status_lock by the serving thread and the handler. */
static SRWLOCK status_lock = SRWLOCK_INIT;
static SERVICE_STATUS_HANDLE status_handle; /* NULL: not a service */
static SERVICE_STATUS status;
static ULONGLONG last_checkpoint_ms;

/* What awqd_svc_run_service hands to ServiceMain (it gets only the SCM's arguments). */
static const char *svc_config;
static const awqd_overrides *svc_ov;
static int svc_exit = 1;

static void raise_bits(unsigned bit) {
    atomic_fetch_or(&sig_pending, bit);
    if (sig_event) SetEvent(sig_event);
}

/* The first stop is a drain, a second one cancels what still runs (as a second SIGTERM). */
static void raise_drain(void) {
    raise_bits(atomic_fetch_add(&sig_drains, 1) == 0 ? AWQD_SVC_SIG_DRAIN : AWQD_SVC_SIG_FORCE);
}

/* Report state to the SCM (caller holds status_lock). */
static void report_locked(DWORD state, DWORD wait_hint_ms) {
    if (!status_handle) return;
    if (state != status.dwCurrentState) status.dwCheckPoint = 0;
    status.dwCurrentState = state;
    status.dwControlsAccepted = state == SERVICE_START_PENDING ? 0 : SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN;
    if (state == SERVICE_RUNNING || state == SERVICE_STOPPED) {
        status.dwCheckPoint = 0;
        status.dwWaitHint = 0;
    } else {
        status.dwCheckPoint++;
        status.dwWaitHint = wait_hint_ms;
    }
    last_checkpoint_ms = GetTickCount64();
    SetServiceStatus(status_handle, &status);
}

static void report(DWORD state, DWORD wait_hint_ms) {
    AcquireSRWLockExclusive(&status_lock);
    report_locked(state, wait_hint_ms);
    ReleaseSRWLockExclusive(&status_lock);
}

/* A pending state's next checkpoint, at most once a second. */
static void checkpoint(bool force) {
    AcquireSRWLockExclusive(&status_lock);
    DWORD s = status.dwCurrentState;
    if (status_handle && (s == SERVICE_START_PENDING || s == SERVICE_STOP_PENDING) &&
        (force || GetTickCount64() - last_checkpoint_ms >= CHECKPOINT_EVERY_MS))
        report_locked(s, status.dwWaitHint);
    ReleaseSRWLockExclusive(&status_lock);
}

bool awqd_svc_is_service(void) { return status_handle != NULL; }

/* A Win32 error's text, without the trailing newline. */
static const char *win_msg(DWORD e, char *buf, size_t cap) {
    DWORD n = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, e, 0, buf, (DWORD)cap, NULL);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == '.')) buf[--n] = 0;
    if (n == 0) snprintf(buf, cap, "error %lu", (unsigned long)e);
    return buf;
}

/* ------------------------------------------------------------------ notify ---- */

int awqd_svc_notify(char *err, const char *state) {
    (void)err;
    if (!status_handle) return 0; /* a console run: nobody to tell */
    for (const char *p = state; *p;) {
        size_t len = strcspn(p, "\n");
        if (len == 7 && !strncmp(p, "READY=1", 7)) report(SERVICE_RUNNING, 0);
        else if (len == 10 && !strncmp(p, "STOPPING=1", 10)) report(SERVICE_STOP_PENDING, (AWQD_DRAIN_TIMEOUT_S + 10) * 1000);
        else if (len > 7 && !strncmp(p, "STATUS=", 7)) {
            awqd_debug("service status: %.*s", (int)(len - 7), p + 7);
            checkpoint(false);
        }
        /* RELOADING=1: the SCM has no reloading state; the service stays running */
        p += len;
        if (*p) p++;
    }
    return 1;
}

/* ------------------------------------------------------------------ no activation, no lock ---- */

/* Windows has no socket activation: the daemon always creates its pipe. */
int awqd_svc_listen_fd(char *err, int *fd_p) {
    (void)err;
    *fd_p = -1;
    return 0;
}

/* A pipe name has no directory for a lock file; ipc/transport_win.c takes the named mutex
 * Local\awqd-NAME when it creates the pipe, and a second server fails there with "another
 * server is already listening". */
int awqd_svc_lock(char *err, const char *socket_path, int *fd_p) {
    (void)err;
    (void)socket_path;
    *fd_p = -1;
    return 0;
}

void awqd_svc_unlock(int fd) { (void)fd; }

/* ------------------------------------------------------------------ controls ---- */

/* Runs on a thread the console starts. CTRL_CLOSE/LOGOFF/SHUTDOWN end the process once this
 * returns, so those get a drain request too but cannot wait for it. */
static BOOL WINAPI on_console(DWORD type) {
    switch (type) {
    case CTRL_C_EVENT:
    case CTRL_BREAK_EVENT:
    case CTRL_CLOSE_EVENT:
    case CTRL_SHUTDOWN_EVENT:
        raise_drain();
        return TRUE;
    default: return FALSE; /* CTRL_LOGOFF: a service must ignore it; a console run too */
    }
}

int awqd_svc_signals_init(char *err) {
    if (!sig_event && !(sig_event = CreateEventW(NULL, FALSE, FALSE, NULL)))
        return awq_seterr(err, AWQ_EIO, "CreateEvent: error %lu", (unsigned long)GetLastError());
    if (!SetConsoleCtrlHandler(on_console, TRUE))
        return awq_seterr(err, AWQ_EIO, "SetConsoleCtrlHandler: error %lu", (unsigned long)GetLastError());
    return 0;
}

/* No descriptor to poll on Windows: awqd_svc_wait waits on an event instead. */
int awqd_svc_signal_fd(void) { return -1; }

unsigned awqd_svc_take_signals(void) { return atomic_exchange(&sig_pending, 0); }

unsigned awqd_svc_wait(int ms) {
    checkpoint(false);
    if (sig_event) WaitForSingleObject(sig_event, ms < 0 ? 0 : (DWORD)ms);
    else plat_sleep_ms((unsigned)(ms < 0 ? 0 : ms));
    return awqd_svc_take_signals();
}

/* The event stays: a service control may still arrive while the process ends, and it must
 * find a valid handle. */
void awqd_svc_signals_free(void) {
    SetConsoleCtrlHandler(on_console, FALSE);
    atomic_store(&sig_pending, 0);
    atomic_store(&sig_drains, 0);
}

/* ------------------------------------------------------------------ OS details ---- */

/* Peers report uid 0 on Windows (users are SIDs); the pipe's DACL decides who may connect. */
uint32_t awqd_svc_uid(void) { return 0; }

/* Pipe instances are handles, which have no per-process limit like RLIMIT_NOFILE. */
void awqd_svc_raise_nofile(int64_t want) { (void)want; }

/* The group is given to the pipe's DACL by name or SID (ipc_server_opts.pipe_group), which
 * checks it when the pipe is created; there is no gid. */
int awqd_svc_group_id(char *err, const char *group, int64_t *gid_p) {
    (void)err;
    (void)group;
    *gid_p = -1;
    return 0;
}

int awqd_svc_state_file(char *err, const char *name, char *out) {
    const char *var = status_handle ? "PROGRAMDATA" : "LOCALAPPDATA";
    const char *base = getenv(var);
    if (!base || !*base)
        return awq_seterr(err, AWQ_ENOTFOUND, "[security] server_key is empty and %%%s%% is not set", var);
    if (snprintf(out, PLAT_PATH_MAX, "%s\\awqd\\%s", base, name) >= PLAT_PATH_MAX)
        return awq_seterr(err, AWQ_ETOOBIG, "state directory path too long");
    return 0;
}

bool awqd_svc_default_log(char *out) {
    if (!status_handle) return false; /* a console run logs to the console */
    const char *base = getenv("PROGRAMDATA");
    if (!base || !*base) return false;
    char dir[PLAT_PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s\\awqd\\logs", base) >= (int)sizeof dir) return false;
    if (plat_mkdirs(NULL, dir, 0700)) return false;
    return snprintf(out, PLAT_PATH_MAX, "%s\\awqd.log", dir) < PLAT_PATH_MAX;
}

/* ------------------------------------------------------------------ install / remove ---- */

/* Open the SCM, mapping "access denied" to the advice to run elevated. */
static int open_scm(char *err, DWORD access, SC_HANDLE *scm) {
    char m[256];
    *scm = OpenSCManagerW(NULL, NULL, access);
    if (*scm) return 0;
    DWORD e = GetLastError();
    if (e == ERROR_ACCESS_DENIED)
        return awq_seterr(err, AWQ_EPERM, "the service manager refused access: run this from an administrator prompt");
    return awq_seterr(err, AWQ_EIO, "OpenSCManager: %s", win_msg(e, m, sizeof m));
}

int awqd_svc_install(char *err, const char *name, const char *config) {
    char m[256];
    wchar_t exe[MAX_PATH + 1], *wname = NULL, *wcfg = NULL, *cmd = NULL, display[128];
    SC_HANDLE scm = NULL, svc = NULL;
    int rc = 0;
    if (!name) name = AWQD_SVC_NAME;
    DWORD n = GetModuleFileNameW(NULL, exe, MAX_PATH + 1);
    if (n == 0 || n > MAX_PATH) return awq_seterr(err, AWQ_EIO, "cannot find this program's path");
    char cfgabs[PLAT_PATH_MAX];
    if (config) {
        /* the service starts in System32: a relative --config would point there */
        if ((rc = plat_realpath(err, config, cfgabs))) return rc;
        if (strchr(cfgabs, '"')) return awq_seterr(err, AWQ_EINVAL, "--config %s: a path with '\"' cannot be quoted", cfgabs);
        if (!(wcfg = plat_utf8_to_w(cfgabs))) return awq_seterr(err, AWQ_EINVAL, "--config: the path is not valid UTF-8");
    }
    if (!(wname = plat_utf8_to_w(name))) {
        rc = awq_seterr(err, AWQ_EINVAL, "service name is not valid UTF-8");
        goto out;
    }
    /* "C:\Program Files\awqd\awqd.exe" --service [--config "..."]: quoted, the path has blanks */
    size_t cap = wcslen(exe) + (wcfg ? wcslen(wcfg) : 0) + 64;
    if (!(cmd = malloc(cap * sizeof *cmd))) {
        rc = awq_seterr(err, AWQ_ENOMEM, "out of memory");
        goto out;
    }
    if (wcfg) swprintf(cmd, cap, L"\"%ls\" --service --config \"%ls\"", exe, wcfg);
    else swprintf(cmd, cap, L"\"%ls\" --service", exe);
    /* display names must be unique too: another instance (a test's) says which it is */
    if (!strcmp(name, AWQD_SVC_NAME)) swprintf(display, 128, L"awqd local inference service");
    else swprintf(display, 128, L"awqd local inference service (%.60ls)", wname);
    if ((rc = open_scm(err, SC_MANAGER_CONNECT | SC_MANAGER_CREATE_SERVICE, &scm))) goto out;
    svc = CreateServiceW(scm, wname, display, SERVICE_ALL_ACCESS, SERVICE_WIN32_OWN_PROCESS,
                         SERVICE_DEMAND_START, SERVICE_ERROR_NORMAL, cmd, NULL, NULL, NULL, NULL, NULL);
    if (!svc) {
        DWORD e = GetLastError();
        if (e == ERROR_SERVICE_EXISTS)
            rc = awq_seterr(err, AWQ_EEXIST, "service '%s' is already installed (awqd --uninstall-service removes it)", name);
        else if (e == ERROR_DUPLICATE_SERVICE_NAME)
            rc = awq_seterr(err, AWQ_EEXIST, "another service already uses the display name '%ls'", display);
        else if (e == ERROR_ACCESS_DENIED)
            rc = awq_seterr(err, AWQ_EPERM, "creating service '%s' was refused: run this from an administrator prompt", name);
        else rc = awq_seterr(err, AWQ_EIO, "CreateService '%s': %s", name, win_msg(e, m, sizeof m));
        goto out;
    }
    SERVICE_DESCRIPTIONW desc = {
        .lpDescription = L"Serves 4-bit AWQ chat models to local programs over the named pipe \\\\.\\pipe\\awqd "
                         L"(settings: %PROGRAMDATA%\\awqd\\awqd.ini; log: %PROGRAMDATA%\\awqd\\logs\\awqd.log)."};
    /* the description is a nicety: a failure to set it leaves a working service */
    if (!ChangeServiceConfig2W(svc, SERVICE_CONFIG_DESCRIPTION, &desc))
        fprintf(stderr, "awqd: warning: cannot set the service description: error %lu\n", (unsigned long)GetLastError());
out:
    if (svc) CloseServiceHandle(svc);
    if (scm) CloseServiceHandle(scm);
    free(cmd);
    free(wcfg);
    free(wname);
    return rc;
}

int awqd_svc_uninstall(char *err, const char *name) {
    char m[256];
    SC_HANDLE scm = NULL, svc = NULL;
    wchar_t *wname = NULL;
    int rc = 0;
    if (!name) name = AWQD_SVC_NAME;
    if (!(wname = plat_utf8_to_w(name))) return awq_seterr(err, AWQ_EINVAL, "service name is not valid UTF-8");
    if ((rc = open_scm(err, SC_MANAGER_CONNECT, &scm))) goto out;
    svc = OpenServiceW(scm, wname, SERVICE_STOP | SERVICE_QUERY_STATUS | DELETE);
    if (!svc) {
        DWORD e = GetLastError();
        if (e == ERROR_SERVICE_DOES_NOT_EXIST) rc = awq_seterr(err, AWQ_ENOTFOUND, "service '%s' is not installed", name);
        else if (e == ERROR_ACCESS_DENIED)
            rc = awq_seterr(err, AWQ_EPERM, "removing service '%s' was refused: run this from an administrator prompt", name);
        else rc = awq_seterr(err, AWQ_EIO, "OpenService '%s': %s", name, win_msg(e, m, sizeof m));
        goto out;
    }
    /* stop first (a drain: running generations finish), so the binary can be deleted next */
    SERVICE_STATUS st;
    if (ControlService(svc, SERVICE_CONTROL_STOP, &st)) {
        ULONGLONG until = GetTickCount64() + STOP_WAIT_S * 1000ull;
        while (QueryServiceStatus(svc, &st) && st.dwCurrentState != SERVICE_STOPPED && GetTickCount64() < until) Sleep(200);
        if (st.dwCurrentState != SERVICE_STOPPED)
            fprintf(stderr, "awqd: warning: service '%s' did not stop within %d s; it is removed once it stops\n", name,
                    STOP_WAIT_S);
    } else if (GetLastError() != ERROR_SERVICE_NOT_ACTIVE) {
        DWORD e = GetLastError();
        fprintf(stderr, "awqd: warning: stopping service '%s': %s\n", name, win_msg(e, m, sizeof m));
    }
    if (!DeleteService(svc) && GetLastError() != ERROR_SERVICE_MARKED_FOR_DELETE) {
        DWORD e = GetLastError();
        rc = awq_seterr(err, e == ERROR_ACCESS_DENIED ? AWQ_EPERM : AWQ_EIO, "DeleteService '%s': %s", name,
                        win_msg(e, m, sizeof m));
    }
out:
    if (svc) CloseServiceHandle(svc);
    if (scm) CloseServiceHandle(scm);
    free(wname);
    return rc;
}

/* ------------------------------------------------------------------ running as the service ---- */

static DWORD WINAPI on_control(DWORD control, DWORD type, void *data, void *ctx) {
    (void)type;
    (void)data;
    (void)ctx;
    switch (control) {
    case SERVICE_CONTROL_STOP:
    case SERVICE_CONTROL_SHUTDOWN:
        /* as SIGTERM: stop accepting, let generations finish; serve.c reports STOP_PENDING
         * again with its own wait hint once the drain starts */
        report(SERVICE_STOP_PENDING, (AWQD_DRAIN_TIMEOUT_S + 10) * 1000);
        raise_drain();
        return NO_ERROR;
    case SERVICE_CONTROL_INTERROGATE:
        AcquireSRWLockExclusive(&status_lock);
        SetServiceStatus(status_handle, &status);
        ReleaseSRWLockExclusive(&status_lock);
        return NO_ERROR;
    default: return ERROR_CALL_NOT_IMPLEMENTED;
    }
}

static void WINAPI service_main(DWORD argc, wchar_t **argv) {
    (void)argc;
    (void)argv;
    if (!sig_event) sig_event = CreateEventW(NULL, FALSE, FALSE, NULL); /* before the first control */
    SERVICE_STATUS_HANDLE h = RegisterServiceCtrlHandlerExW(L"" AWQD_SVC_NAME, on_control, NULL);
    if (!h) {
        svc_exit = 1;
        return;
    }
    AcquireSRWLockExclusive(&status_lock);
    status_handle = h;
    memset(&status, 0, sizeof status);
    status.dwServiceType = SERVICE_WIN32_OWN_PROCESS;
    report_locked(SERVICE_START_PENDING, START_WAIT_HINT_MS);
    ReleaseSRWLockExclusive(&status_lock);
    /* no console: what awqd_serve prints on stderr before its log opens (a bad settings file)
     * goes to the log file too */
    char logpath[PLAT_PATH_MAX];
    if (awqd_svc_default_log(logpath) && !freopen(logpath, "a", stderr)) { /* stays unseen, as before */ }
    svc_exit = awqd_serve(svc_config, svc_ov);
    AcquireSRWLockExclusive(&status_lock);
    status.dwWin32ExitCode = svc_exit ? ERROR_SERVICE_SPECIFIC_ERROR : NO_ERROR;
    status.dwServiceSpecificExitCode = (DWORD)svc_exit;
    report_locked(SERVICE_STOPPED, 0);
    ReleaseSRWLockExclusive(&status_lock);
}

int awqd_svc_run_service(const char *config, const awqd_overrides *ov) {
    svc_config = config;
    svc_ov = ov;
    SERVICE_TABLE_ENTRYW table[] = {{(wchar_t *)L"" AWQD_SVC_NAME, service_main}, {NULL, NULL}};
    if (!StartServiceCtrlDispatcherW(table)) {
        DWORD e = GetLastError();
        if (e == ERROR_FAILED_SERVICE_CONTROLLER_CONNECT)
            fprintf(stderr, "awqd: --service is for the service manager (net start awqd); in a console run awqd --foreground\n");
        else fprintf(stderr, "awqd: StartServiceCtrlDispatcher: error %lu\n", (unsigned long)e);
        return 1;
    }
    return svc_exit;
}
