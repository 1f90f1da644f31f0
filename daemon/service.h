/* service.h - the daemon's service plumbing, one file per OS:
 *  - Linux (service_linux.c): systemd readiness notification (sd_notify's datagram protocol,
 *    spoken directly, no libsystemd), socket activation (sd_listen_fds' $LISTEN_FDS/$LISTEN_PID
 *    protocol), a lock file so two daemons never share a socket, and signals turned into flags
 *    behind a file descriptor the event loop can watch;
 *  - Windows (service_win.c): the same calls mapped onto the service control manager
 *    (READY=1 -> SERVICE_RUNNING, STOPPING=1 -> SERVICE_STOP_PENDING, STATUS= -> a start-pending
 *    checkpoint and the log), console Ctrl-C / Ctrl-Break and SERVICE_CONTROL_STOP / SHUTDOWN as
 *    the drain "signal", no socket activation and no lock file (the pipe's named mutex keeps a
 *    second server out), plus installing, removing and running the service.
 *
 * Thread safety: notify and the lock functions are reentrant. The signal functions keep
 * process-wide state (signal dispositions are process-wide anyway): call
 * awqd_svc_signals_init once from the main thread before starting other threads;
 * awqd_svc_take_signals may then be called from the event-loop thread.
 */
#ifndef AWQD_SERVICE_H
#define AWQD_SERVICE_H

#include <stdbool.h>
#include <stdint.h>

#include "awq_err.h"

/* The daemon's version; a unit test keeps it equal to project(VERSION) in CMakeLists.txt. */
#define AWQD_VERSION "0.1.0"

/* ---- readiness notification ($NOTIFY_SOCKET) ---- */
/* Send state ("READY=1", "STATUS=loading model", "STOPPING=1", "RELOADING=1", several joined
 * by '\n') to the service manager. Returns 1 when sent, 0 when $NOTIFY_SOCKET is unset (not
 * started by systemd with Type=notify: nothing to do), or a negative AWQ_E* with the reason.
 * Abstract socket addresses ("@name") are supported. */
AWQ_NODISCARD int awqd_svc_notify(char *err, const char *state) AWQ_NONNULL(2);
/* "STATUS=<printf text>", the line `systemctl status` shows. Same returns. */
AWQ_NODISCARD int awqd_svc_status(char *err, const char *fmt, ...) AWQ_NONNULL(2) AWQ_PRINTF(2, 3);

/* ---- socket activation ($LISTEN_FDS / $LISTEN_PID) ---- */
#define AWQD_SVC_LISTEN_FDS_START 3
/* When systemd passed this process exactly one listening socket, set FD_CLOEXEC on it, store
 * it in *fd_p and return 1. Without socket activation (variables unset, or $LISTEN_PID is
 * another process's) *fd_p = -1 and 0 is returned. More than one fd, or an fd that is not a
 * listening stream socket, is AWQ_EINVAL. The variables are removed from the environment in
 * every case so that child processes do not see them. */
AWQ_NODISCARD int awqd_svc_listen_fd(char *err, int *fd_p) AWQ_NONNULL(2);

/* ---- the lock file ---- */
/* Take an exclusive lock (flock) on "<socket_path>.lock", created 0600 if needed, and write our
 * pid into it. On success *fd_p holds the lock until awqd_svc_unlock. If another process (or
 * another open in this one) holds it: AWQ_EEXIST, with the holder's pid and the path in err.
 * The lock file is never unlinked: removing it while another daemon waits would let two
 * daemons lock two different files of the same name. */
AWQ_NODISCARD int awqd_svc_lock(char *err, const char *socket_path, int *fd_p) AWQ_NONNULL(2, 3);
/* Release the lock (closes fd; -1 is ignored). */
void awqd_svc_unlock(int fd);

/* ---- signals ---- */
enum awqd_svc_sig {
    AWQD_SVC_SIG_DRAIN = 1,  /* SIGTERM or SIGINT: stop accepting, finish requests, exit 0 */
    AWQD_SVC_SIG_RELOAD = 2, /* SIGHUP: reread settings */
    AWQD_SVC_SIG_FORCE = 4,  /* a second SIGTERM/SIGINT: stop now */
};
/* Ignore SIGPIPE (a closed client must not kill the daemon: writes get EPIPE instead) and
 * route SIGTERM, SIGINT and SIGHUP into flags plus a byte on a non-blocking self-pipe. A
 * self-pipe rather than signalfd: signalfd needs the signals blocked in every thread, which
 * threads started by libraries (CUDA) do not do. Calling it again is harmless. */
AWQ_NODISCARD int awqd_svc_signals_init(char *err);
/* The fd to watch for readability (the pipe's read end), or -1 before init. */
int awqd_svc_signal_fd(void);
/* Drain the pipe and return the AWQD_SVC_SIG_* bits raised since the last call (0 if none). */
unsigned awqd_svc_take_signals(void);
/* Restore default dispositions and close the pipe (tests, and the end of main). */
void awqd_svc_signals_free(void);
/* Wait up to ms for a signal (Windows: a console or service control) and return the
 * AWQD_SVC_SIG_* bits raised since the last call (0 if none). While a Windows service is
 * starting, each call also advances the start-pending checkpoint, so the service manager
 * sees progress during a long model load. */
unsigned awqd_svc_wait(int ms);

/* ---- OS details serve.c needs ---- */
/* Our user id for the default peer check (Linux: geteuid(); Windows: 0, where the pipe's DACL
 * is the check and peers report uid 0). */
uint32_t awqd_svc_uid(void);
/* Let server.max_connections, not a default descriptor limit, bound clients (Linux: lift
 * RLIMIT_NOFILE, warning when the hard limit is too low; Windows: nothing, handles have no
 * such limit). */
void awqd_svc_raise_nofile(int64_t want);
/* [server] socket_group as a gid for the socket (a number or a group name; "" = -1). On Windows
 * the group goes to the pipe's DACL by name or SID instead: *gid_p = -1. AWQ_ENOTFOUND naming the
 * group when there is none of that name. */
AWQ_NODISCARD int awqd_svc_group_id(char *err, const char *group, int64_t *gid_p) AWQ_NONNULL(2, 3);
/* The path of a default state file (the server key): Linux $XDG_STATE_HOME/awqd/NAME,
 * ~/.local/state/awqd/NAME or /var/lib/awqd/NAME for root; Windows %PROGRAMDATA%\awqd\NAME for
 * the service, %LOCALAPPDATA%\awqd\NAME otherwise. out has PLAT_PATH_MAX bytes. */
AWQ_NODISCARD int awqd_svc_state_file(char *err, const char *name, char *out) AWQ_NONNULL(2, 3);

/* Where the log goes when [log] file is empty: true with the path in out (PLAT_PATH_MAX bytes,
 * its directory created) for the Windows service, %PROGRAMDATA%\awqd\logs\awqd.log, which has
 * no console; false (standard error) otherwise. */
bool awqd_svc_default_log(char *out);

/* ---- the Windows service (AWQ_EUNSUPPORTED elsewhere) ---- */
struct awqd_overrides;
#define AWQD_SVC_NAME "awqd"
/* Register this program as the demand-start service name (NULL: AWQD_SVC_NAME) with the
 * binary path + " --service" and a description; config, when not NULL, is passed on as
 * --config. AWQ_EEXIST when it exists, AWQ_EPERM without administrator rights. */
AWQ_NODISCARD int awqd_svc_install(char *err, const char *name, const char *config);
/* Stop the service if it runs (waiting up to 30 s for it to drain) and delete it.
 * AWQ_ENOTFOUND when it is not installed. */
AWQ_NODISCARD int awqd_svc_uninstall(char *err, const char *name);
/* Run as the service: hand the main thread to the service control manager, whose ServiceMain
 * runs awqd_serve(config, ov) while reporting start-pending, running and stopped. Returns the
 * process exit status; 1 with a message on stderr when not started by the service manager. */
int awqd_svc_run_service(const char *config, const struct awqd_overrides *ov);
/* Whether this process runs as the Windows service (false on Linux). */
bool awqd_svc_is_service(void);

#endif
