/* sys.h - the OS side of awq-tray's core: whether the server on the socket is ours, starting
 * and stopping the service, and starting other programs (a terminal with `awq run`, the log
 * viewer, a desktop notification). One implementation per OS: sys_linux.c (systemd --user,
 * /proc, fork/exec) and sys_win.c (the service control manager, CreateProcess).
 *
 * Every function may block for a while (a systemctl call, a process start): the worker thread
 * calls the service functions, the front ends only the spawning ones, which return at once.
 *
 * Thread safety: every function is reentrant.
 */
#ifndef TRAY_SYS_H
#define TRAY_SYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "awq_err.h"
#include "cfg.h"
#include "plat.h"

/* How Start/Stop service reach the daemon. */
typedef enum tray_start_mode {
    TRAY_START_AUTO = 0, /* the service manager when the unit / service is installed, else spawn */
    TRAY_START_SERVICE,  /* Linux: systemctl --user start|stop UNIT; Windows: the SCM service UNIT */
    TRAY_START_SPAWN,    /* start the awqd binary directly; stop with the protocol's shutdown */
} tray_start_mode;

typedef struct tray_service {
    tray_start_mode mode;
    char unit[64];               /* systemd unit / Windows service name, "" = "awqd" */
    char awqd[PLAT_PATH_MAX];    /* spawn: the daemon binary; "" = beside awq-tray, else on PATH */
    char config[PLAT_PATH_MAX];  /* spawn: --config FILE, "" = the daemon's own lookup */
    char socket[PLAT_PATH_MAX];  /* spawn: --socket PATH, "" = the daemon's default */
    char log[PLAT_PATH_MAX];     /* spawn: the daemon's stderr; "" = the state dir's awqd.log */
} tray_service;

/* "auto", "service", "spawn" -> mode; AWQ_EINVAL names the bad value. */
AWQ_NODISCARD int tray_start_mode_parse(char *err, const char *s, tray_start_mode *out) AWQ_NONNULL(2, 3);

/* The daemon's socket when neither --socket nor $AWQ_SOCKET names one, from the settings c:
 *  - Linux: server.socket, else the per-user runtime dir's (cfg_socket_path), else libawq's
 *    default; an error when none can be worked out.
 *  - Windows: server.pipe, else libawq's default, else "awqd" (never fails).
 * Into out (PLAT_PATH_MAX bytes). */
AWQ_NODISCARD int tray_sys_default_socket(char *err, const cfg *c, char *out) AWQ_NONNULL(2, 3);

/* Whether the server answering at socket_path is ours, before libawq says hello to it:
 *  - Linux: the socket file must be a socket owned by our uid (or root: a system-wide daemon);
 *    the peer's uid (SO_PEERCRED) must be ours (or root); with check_exe, the peer process's binary (/proc/PID/exe) must have one of
 *    the names exes[0..n) ("awqd"). With encryption on the caller passes check_exe = false:
 *    libawq's pinned server key is the proof then.
 *  - Windows: the pipe server's process (GetNamedPipeServerProcessId) must run one of exes.
 * 0 when ours (*pid_out = the server's pid); AWQ_ENOTFOUND or AWQ_ECLOSED when nothing answers
 * (the daemon is stopped); AWQ_EPERM with the reason ("... is /usr/bin/socat (pid 42), not
 * awqd: refusing to talk to a server that is not ours") when it is not ours; other codes for
 * other failures. */
AWQ_NODISCARD int tray_sys_check_server(char *err, const char *socket_path, const char *const *exes, size_t n_exes,
                                        bool check_exe, int64_t *pid_out) AWQ_NONNULL(2, 6);

/* Start the daemon as s says. AUTO picks the service manager when the unit is installed. Sets
 * *spawned when the daemon was started directly (so Stop must use the protocol). Blocks while
 * the service manager works (run it on the worker). */
AWQ_NODISCARD int tray_sys_service_start(char *err, const tray_service *s, bool *spawned) AWQ_NONNULL(2, 3);

/* Stop the daemon through the service manager. AWQ_EUNSUPPORTED when the daemon is not run by
 * one (spawn mode, or AUTO without an installed unit): the caller then sends `shutdown`. */
AWQ_NODISCARD int tray_sys_service_stop(char *err, const tray_service *s) AWQ_NONNULL(2);

/* Whether s reaches the daemon through the service manager (AUTO: the unit is installed). */
bool tray_sys_service_managed(const tray_service *s) AWQ_NONNULL(1);

/* Start argv[0] (searched beside awq-tray, then on PATH) detached from us: its own session,
 * stdin from the null device, stdout/stderr appended to log_path (NULL: the null device).
 * Returns when the program has started (AWQ_ENOTFOUND when it cannot be executed). */
AWQ_NODISCARD int tray_sys_spawn(char *err, const char *const *argv, const char *log_path) AWQ_NONNULL(2);

/* Run argv in a new terminal window (Linux: $TERMINAL, x-terminal-emulator, xterm with -e;
 * Windows: cmd.exe /k). AWQ_ENOTFOUND when no terminal program exists. */
AWQ_NODISCARD int tray_sys_terminal(char *err, const char *const *argv) AWQ_NONNULL(2);

/* Find a program: beside awq-tray first (an uninstalled build tree keeps awq, awqd and awq-tray
 * together), then on PATH. 0 with the path in out (PLAT_PATH_MAX), or AWQ_ENOTFOUND. */
AWQ_NODISCARD int tray_sys_find_program(const char *name, char *out) AWQ_NONNULL(1, 2);

/* What to tell the user when tray_sys_find_program does not find name, in the OS's words:
 * "the awq command was not found beside awq-tray or on PATH" (Linux), "awq.exe was not found
 * beside awq-tray or on PATH" (Windows). Into out (AWQ_ERR_LEN bytes). */
void tray_sys_not_found_msg(const char *name, char *out) AWQ_NONNULL(1, 2);

/* Show the daemon's log: the journal of the unit when the service manager runs it, else the
 * file log_file (the daemon's log.file, or the spawn log), in a terminal / viewer. */
AWQ_NODISCARD int tray_sys_show_logs(char *err, const tray_service *s, const char *log_file) AWQ_NONNULL(2, 3);

/* The spawn log path for s (s->log, or the per-user state dir's awqd.log) into out. */
void tray_sys_spawn_log(const tray_service *s, char *out) AWQ_NONNULL(1, 2);

#endif
