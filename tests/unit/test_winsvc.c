/* test_winsvc.c - daemon/service_win.c: installing and removing the Windows service through the
 * service control manager (binary path, start type, description, status, the errors for a
 * second install and a missing service), and the Linux service calls as they behave outside
 * the service manager on Windows (no notify target, no socket activation, no lock file, the
 * state and log paths, the drain event). Starting the service for real is in
 * tests/integration/win/service.sh (net start / sc query / net stop under wine).
 *
 * Windows only: on Linux it skips (test_service covers service_linux.c). Under wine the service
 * manager is wine's; what it does not emulate is skipped by name below. */
#include <stdio.h>
#include <string.h>

#include "harness.h"

#ifndef _WIN32
int main(void) { SKIP("the Windows service test runs in the Windows build (scripts/windows-test.sh)"); }
#else

#include <windows.h>

#include <stdlib.h>

#include "plat.h"
#include "service.h"

static bool under_wine(void) {
    HMODULE nt = GetModuleHandleA("ntdll.dll");
    return nt && GetProcAddress(nt, "wine_get_version") != NULL;
}

/* The installed service's configuration (caller frees) or NULL. */
static QUERY_SERVICE_CONFIGW *query_config(SC_HANDLE svc) {
    DWORD need = 0;
    QueryServiceConfigW(svc, NULL, 0, &need);
    QUERY_SERVICE_CONFIGW *q = need ? malloc(need) : NULL;
    if (q && !QueryServiceConfigW(svc, q, need, &need)) {
        free(q);
        q = NULL;
    }
    return q;
}

/* Wait up to ms for svc to reach want; the last state seen. */
static DWORD wait_state(SC_HANDLE svc, DWORD want, int ms) {
    SERVICE_STATUS st = {0};
    for (int t = 0; t <= ms; t += 50) {
        if (!QueryServiceStatus(svc, &st) || st.dwCurrentState == want) break;
        Sleep(50);
    }
    return st.dwCurrentState;
}

/* Install AWQ_BIN's awqd.exe (the real daemon, no model) as a service of its own name, start it,
 * interrogate it, stop it and delete it. */
static void run_service(const char *name, const wchar_t *wname) {
    const char *bin = h_env("AWQ_BIN");
    char exe[MAX_PATH], ini[MAX_PATH], abs_ini[PLAT_PATH_MAX], err[AWQ_ERR_LEN];
    snprintf(exe, sizeof exe, "%s/awqd.exe", bin ? bin : ".");
    if (!bin || !plat_is_file(exe)) {
        fprintf(stderr, "  skipped: no awqd.exe in AWQ_BIN\n");
        return;
    }
    snprintf(ini, sizeof ini, "winsvc-run-%lu.ini", (unsigned long)GetCurrentProcessId());
    FILE *f = fopen(ini, "wb");
    if (!f) {
        CHECK(f != NULL);
        return;
    }
    fprintf(f, "[server]\npipe = %s\n", name);
    fclose(f);
    CHECK_EQ(plat_realpath(err, ini, abs_ini), 0);
    char cmd[3 * MAX_PATH];
    snprintf(cmd, sizeof cmd, "\"%s\" --service --config \"%s\"", exe, abs_ini);
    wchar_t wcmd[3 * MAX_PATH];
    MultiByteToWideChar(CP_UTF8, 0, cmd, -1, wcmd, 3 * MAX_PATH);
    SC_HANDLE scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT | SC_MANAGER_CREATE_SERVICE);
    SC_HANDLE svc = scm ? CreateServiceW(scm, wname, wname, SERVICE_ALL_ACCESS, SERVICE_WIN32_OWN_PROCESS, SERVICE_DEMAND_START,
                                         SERVICE_ERROR_NORMAL, wcmd, NULL, NULL, NULL, NULL, NULL)
                        : NULL;
    CHECK(svc != NULL);
    if (svc) {
        CHECK(StartServiceW(svc, 0, NULL));
        CHECK_EQ(wait_state(svc, SERVICE_RUNNING, 10000), SERVICE_RUNNING);
        SERVICE_STATUS st = {0};
        CHECK(ControlService(svc, SERVICE_CONTROL_INTERROGATE, &st));
        CHECK_EQ(st.dwCurrentState, SERVICE_RUNNING);
        CHECK_EQ(st.dwControlsAccepted & (SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN), SERVICE_ACCEPT_STOP | SERVICE_ACCEPT_SHUTDOWN);
        /* the pipe answers: a client connects to \\.\pipe\NAME */
        char pipe[128];
        snprintf(pipe, sizeof pipe, "\\\\.\\pipe\\%s", name);
        CHECK(WaitNamedPipeA(pipe, 2000));
        CHECK(ControlService(svc, SERVICE_CONTROL_STOP, &st));
        CHECK(st.dwCurrentState == SERVICE_STOP_PENDING || st.dwCurrentState == SERVICE_STOPPED);
        CHECK_EQ(wait_state(svc, SERVICE_STOPPED, 10000), SERVICE_STOPPED);
        CHECK(QueryServiceStatus(svc, &st));
        CHECK_EQ(st.dwWin32ExitCode, NO_ERROR); /* a drain, not a failure */
        CHECK(DeleteService(svc));
        CloseServiceHandle(svc);
    }
    if (scm) CloseServiceHandle(scm);
    remove(ini);
}

int main(void) {
    char err[AWQ_ERR_LEN], name[64], out[PLAT_PATH_MAX];
    snprintf(name, sizeof name, "awqd-test-%lu", (unsigned long)GetCurrentProcessId());
    wchar_t wname[64];
    MultiByteToWideChar(CP_UTF8, 0, name, -1, wname, 64);
    if (under_wine()) fprintf(stderr, "  (running under wine)\n");

    CASE("winsvc-1.1", "install: a demand-start own-process service running this binary with --service");
    int rc = awqd_svc_install(err, name, NULL);
    if (rc == AWQ_EPERM) SKIP("not an administrator: the service manager refuses to create services");
    CHECK_EQ(rc, 0);
    if (rc) fprintf(stderr, "  %s\n", err);
    SC_HANDLE scm = OpenSCManagerW(NULL, NULL, SC_MANAGER_CONNECT);
    CHECK(scm != NULL);
    SC_HANDLE svc = scm ? OpenServiceW(scm, wname, SERVICE_QUERY_CONFIG | SERVICE_QUERY_STATUS) : NULL;
    CHECK(svc != NULL);
    if (svc) {
        QUERY_SERVICE_CONFIGW *q = query_config(svc);
        CHECK(q != NULL);
        if (q) {
            wchar_t exe[MAX_PATH + 1];
            GetModuleFileNameW(NULL, exe, MAX_PATH + 1);
            wchar_t want[MAX_PATH + 32];
            swprintf(want, MAX_PATH + 32, L"\"%ls\" --service", exe);
            CHECK(wcscmp(q->lpBinaryPathName, want) == 0);
            if (wcscmp(q->lpBinaryPathName, want)) fprintf(stderr, "  binary path: %ls\n", q->lpBinaryPathName);
            CHECK_EQ(q->dwStartType, SERVICE_DEMAND_START);
            CHECK_EQ(q->dwServiceType & SERVICE_WIN32_OWN_PROCESS, SERVICE_WIN32_OWN_PROCESS);
            wchar_t disp[128];
            swprintf(disp, 128, L"awqd local inference service (%ls)", wname); /* unique per instance */
            CHECK(wcscmp(q->lpDisplayName, disp) == 0);
            free(q);
        }
        BYTE buf[2048];
        DWORD need = 0;
        if (QueryServiceConfig2W(svc, SERVICE_CONFIG_DESCRIPTION, buf, sizeof buf, &need)) {
            SERVICE_DESCRIPTIONW *d = (SERVICE_DESCRIPTIONW *)buf;
            CHECK(d->lpDescription && wcsstr(d->lpDescription, L"\\\\.\\pipe\\awqd") != NULL);
        } else {
            fprintf(stderr, "  skipped: QueryServiceConfig2(DESCRIPTION) failed (error %lu)%s\n",
                    (unsigned long)GetLastError(), under_wine() ? ", which wine may not emulate" : "");
            CHECK(under_wine());
        }
        SERVICE_STATUS st;
        CHECK(QueryServiceStatus(svc, &st));
        CHECK_EQ(st.dwCurrentState, SERVICE_STOPPED); /* demand start: installed, not started */
        CloseServiceHandle(svc);
    }

    CASE("winsvc-1.2", "a second install is AWQ_EEXIST with the way out in the message");
    CHECK_EQ(awqd_svc_install(err, name, NULL), AWQ_EEXIST);
    CHECK_CONTAINS(err, "is already installed (awqd --uninstall-service removes it)");
    CHECK_CONTAINS(err, name);

    CASE("winsvc-1.3", "uninstall removes it; a second uninstall is AWQ_ENOTFOUND");
    CHECK_EQ(awqd_svc_uninstall(err, name), 0);
    svc = scm ? OpenServiceW(scm, wname, SERVICE_QUERY_STATUS) : NULL;
    CHECK(svc == NULL && GetLastError() == ERROR_SERVICE_DOES_NOT_EXIST);
    if (svc) CloseServiceHandle(svc);
    CHECK_EQ(awqd_svc_uninstall(err, name), AWQ_ENOTFOUND);
    char want_msg[128];
    snprintf(want_msg, sizeof want_msg, "service '%s' is not installed", name);
    CHECK_STR(err, want_msg);

    CASE("winsvc-1.4", "--config is stored as an absolute, quoted path; a missing one is refused");
    char cfgpath[MAX_PATH];
    snprintf(cfgpath, sizeof cfgpath, "winsvc-%lu.ini", (unsigned long)GetCurrentProcessId());
    FILE *f = fopen(cfgpath, "wb");
    CHECK(f != NULL);
    if (f) {
        fputs("[server]\npipe = x\n", f);
        fclose(f);
    }
    CHECK_EQ(awqd_svc_install(err, name, cfgpath), 0);
    svc = scm ? OpenServiceW(scm, wname, SERVICE_QUERY_CONFIG) : NULL;
    if (svc) {
        QUERY_SERVICE_CONFIGW *q = query_config(svc);
        CHECK(q && wcsstr(q->lpBinaryPathName, L" --service --config \"") != NULL);
        wchar_t wcfg[MAX_PATH];
        MultiByteToWideChar(CP_UTF8, 0, cfgpath, -1, wcfg, MAX_PATH);
        const wchar_t *at = q ? wcsstr(q->lpBinaryPathName, wcfg) : NULL;
        /* absolute: a drive and a separator before the file name */
        CHECK(at && at[-1] == L'\\' && q->lpBinaryPathName[wcslen(q->lpBinaryPathName) - 1] == L'"');
        const wchar_t *open_q = q ? wcsstr(q->lpBinaryPathName, L"--config \"") : NULL;
        CHECK(open_q && open_q[11] == L':');
        free(q);
        CloseServiceHandle(svc);
    }
    CHECK_EQ(awqd_svc_uninstall(err, name), 0);
    remove(cfgpath);
    CHECK_EQ(awqd_svc_install(err, name, "no-such-dir\\awqd.ini"), AWQ_ENOTFOUND);
    CHECK_CONTAINS(err, "no-such-dir");
    CHECK_EQ(awqd_svc_uninstall(err, name), AWQ_ENOTFOUND); /* nothing was created */
    if (scm) CloseServiceHandle(scm);

    CASE("winsvc-2.1", "outside the service manager: no notify target, no activation, no lock file");
    CHECK(!awqd_svc_is_service());
    CHECK_EQ(awqd_svc_notify(err, "READY=1"), 0);
    CHECK_EQ(awqd_svc_status(err, "loading %s", "x"), 0);
    int fd = 7;
    CHECK_EQ(awqd_svc_listen_fd(err, &fd), 0);
    CHECK_EQ(fd, -1);
    fd = 7;
    CHECK_EQ(awqd_svc_lock(err, "\\\\.\\pipe\\awqd", &fd), 0); /* the pipe's named mutex does this job */
    CHECK_EQ(fd, -1);
    awqd_svc_unlock(fd);
    CHECK_EQ(awqd_svc_uid(), 0);
    int64_t gid = 5;
    CHECK_EQ(awqd_svc_group_id(err, "S-1-5-32-545", &gid), 0);
    CHECK_EQ(gid, -1); /* the group goes to the pipe's DACL instead */
    CHECK(!awqd_svc_default_log(out)); /* a console run logs to the console */

    CASE("winsvc-2.2", "the state file is under %LOCALAPPDATA%\\awqd for a console run; unset is an error");
    _putenv_s("LOCALAPPDATA", "C:\\Users\\t\\AppData\\Local");
    CHECK_EQ(awqd_svc_state_file(err, "server.key", out), 0);
    CHECK_STR(out, "C:\\Users\\t\\AppData\\Local\\awqd\\server.key");
    _putenv_s("LOCALAPPDATA", "");
    CHECK_EQ(awqd_svc_state_file(err, "server.key", out), AWQ_ENOTFOUND);
    CHECK_STR(err, "[security] server_key is empty and %LOCALAPPDATA% is not set");

    CASE("winsvc-2.3", "waiting: a timeout returns no bits; Ctrl-C (when deliverable) is a drain, the next a force");
    CHECK_EQ(awqd_svc_signals_init(err), 0);
    CHECK_EQ(awqd_svc_signal_fd(), -1);
    ULONGLONG t0 = GetTickCount64();
    CHECK_EQ(awqd_svc_wait(60), 0);
    CHECK(GetTickCount64() - t0 >= 40);
    /* a console control needs a console of our own; ctest under wine usually gives none */
    if (GetConsoleWindow() != NULL || AttachConsole(ATTACH_PARENT_PROCESS) || GetLastError() == ERROR_ACCESS_DENIED) {
        if (GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, 0)) {
            unsigned bits = awqd_svc_wait(2000);
            if (bits) {
                CHECK_EQ(bits, AWQD_SVC_SIG_DRAIN);
                CHECK(GenerateConsoleCtrlEvent(CTRL_BREAK_EVENT, 0));
                CHECK_EQ(awqd_svc_wait(2000), AWQD_SVC_SIG_FORCE);
            } else {
                fprintf(stderr, "  skipped: the console control was not delivered%s\n",
                        under_wine() ? " (wine does not route it to this process here)" : "");
                CHECK(under_wine());
            }
        } else {
            fprintf(stderr, "  skipped: GenerateConsoleCtrlEvent failed (error %lu)\n", (unsigned long)GetLastError());
        }
    } else {
        fprintf(stderr, "  skipped: no console to send Ctrl-Break in\n");
    }
    awqd_svc_signals_free();
    CHECK_EQ(awqd_svc_take_signals(), 0);

    CASE("winsvc-3.1", "awqd.exe --service under the service manager: running, interrogate, stop drains to STOPPED 0");
    run_service(name, wname);
    /* --service outside the service manager is not tried: StartServiceCtrlDispatcherW takes
     * ~10 s to fail under wine (docs/windows.md) */
    return h_finish();
}
#endif
