/* sys_linux.c - awq-tray's OS side on Linux: the server identity check (socket owner,
 * SO_PEERCRED, /proc/PID/exe), systemd --user service control, detached program starts,
 * terminals and logs. See sys.h. */
#define _GNU_SOURCE /* struct ucred, pipe2 */
#include "sys.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "awq.h"

int tray_sys_default_socket(char *err, const cfg *c, char *out) {
    if (cfg_socket_path(err, c, out) == 0) return 0;
    return awq_default_socket_path(err, out, PLAT_PATH_MAX);
}

/* ------------------------------------------------------------ server identity ---- */

/* The peer's binary, from /proc/PID/exe, into out (cap bytes). A binary replaced while it runs
 * (a rebuild, a package upgrade) reads "PATH (deleted)": the name still says what it was. */
static int peer_exe(pid_t pid, char *out, size_t cap) {
    char link[64];
    snprintf(link, sizeof link, "/proc/%d/exe", (int)pid);
    ssize_t n = readlink(link, out, cap - 1);
    if (n < 0) return -1;
    out[n] = 0;
    const char *del = " (deleted)";
    size_t dl = strlen(del);
    if ((size_t)n > dl && strcmp(out + n - dl, del) == 0) out[n - dl] = 0;
    return 0;
}

int tray_sys_check_server(char *err, const char *socket_path, const char *const *exes, size_t n_exes, bool check_exe,
                          int64_t *pid_out) {
    *pid_out = 0;
    struct stat st;
    if (lstat(socket_path, &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) return awq_seterr(err, AWQ_ENOTFOUND, "no socket at %s", socket_path);
        return awq_seterr(err, AWQ_EIO, "%s: %s", socket_path, strerror(errno));
    }
    uid_t me = getuid();
    if (!S_ISSOCK(st.st_mode))
        return awq_seterr(err, AWQ_EPERM, "%s is not a socket: refusing to talk to a server that is not ours",
                          socket_path);
    /* ours, or root's (a system-wide daemon on /run/awqd; root can read our memory anyway, so
     * trusting it adds no exposure) */
    if (st.st_uid != me && st.st_uid != 0)
        return awq_seterr(err, AWQ_EPERM,
                          "socket %s is owned by uid %u, not by you (uid %u) or root: refusing to talk to a server "
                          "that is not ours",
                          socket_path, (unsigned)st.st_uid, (unsigned)me);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(socket_path) >= sizeof a.sun_path)
        return awq_seterr(err, AWQ_ETOOBIG, "socket path too long: %s", socket_path);
    memcpy(a.sun_path, socket_path, strlen(socket_path) + 1);
    /* non-blocking: a server whose backlog is full must not stall the worker */
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return awq_seterr(err, AWQ_EIO, "socket: %s", strerror(errno));
    int rc = 0;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        if (e == ECONNREFUSED) rc = awq_seterr(err, AWQ_ECLOSED, "nothing answers on %s", socket_path);
        else if (e == ENOENT) rc = awq_seterr(err, AWQ_ENOTFOUND, "no socket at %s", socket_path);
        else if (e == EAGAIN) rc = awq_seterr(err, AWQ_EBUSY, "the server on %s does not accept connections now", socket_path);
        else rc = awq_seterr(err, AWQ_EIO, "connect %s: %s", socket_path, strerror(e));
        close(fd);
        return rc;
    }
    struct ucred cr;
    socklen_t cl = sizeof cr;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) != 0) {
        rc = awq_seterr(err, AWQ_EIO, "SO_PEERCRED on %s: %s", socket_path, strerror(errno));
    } else if (cr.uid != me && cr.uid != 0) {
        rc = awq_seterr(err, AWQ_EPERM,
                        "the server on %s runs as uid %u (pid %d), not as you (uid %u) or root: refusing to talk to a "
                        "server that is not ours",
                        socket_path, (unsigned)cr.uid, (int)cr.pid, (unsigned)me);
    } else if (check_exe) {
        char exe[PLAT_PATH_MAX];
        if (cr.pid <= 0 || peer_exe(cr.pid, exe, sizeof exe) != 0) {
            rc = awq_seterr(err, AWQ_EPERM,
                            "cannot tell which program serves %s (pid %d): refusing to talk to a server that is not "
                            "ours",
                            socket_path, (int)cr.pid);
        } else {
            const char *base = strrchr(exe, '/');
            base = base ? base + 1 : exe;
            bool ok = false;
            for (size_t i = 0; i < n_exes && !ok; i++) ok = strcmp(base, exes[i]) == 0;
            if (!ok)
                rc = awq_seterr(err, AWQ_EPERM,
                                "the server on %s is %s (pid %d), not %s: refusing to talk to a server that is not "
                                "ours",
                                socket_path, exe, (int)cr.pid, n_exes ? exes[0] : "awqd");
        }
    }
    if (!rc) *pid_out = cr.pid;
    close(fd);
    return rc;
}

/* ------------------------------------------------------------ programs ---- */

int tray_sys_find_program(const char *name, char *out) {
    char self[PLAT_PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (strchr(name, '/')) { /* a path: take it as it is */
        if (access(name, X_OK) != 0) return AWQ_ENOTFOUND;
        snprintf(out, PLAT_PATH_MAX, "%s", name);
        return 0;
    }
    if (n > 0) {
        self[n] = 0;
        char *slash = strrchr(self, '/');
        if (slash) {
            *slash = 0;
            if (plat_path_join(out, self, name) == 0 && access(out, X_OK) == 0) return 0;
        }
    }
    const char *path = getenv("PATH");
    if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *e = strchr(path, ':');
        size_t len = e ? (size_t)(e - path) : strlen(path);
        if (len && len < PLAT_PATH_MAX - 1) {
            char dir[PLAT_PATH_MAX];
            memcpy(dir, path, len);
            dir[len] = 0;
            if (plat_path_join(out, dir, name) == 0 && access(out, X_OK) == 0) return 0;
        }
        if (!e) break;
        path = e + 1;
    }
    return AWQ_ENOTFOUND;
}

void tray_sys_not_found_msg(const char *name, char *out) {
    snprintf(out, AWQ_ERR_LEN, "the %s command was not found beside awq-tray or on PATH", name);
}

/* Start argv detached (a grandchild in its own session, so it is not our child to reap and
 * outlives the tray); a close-on-exec pipe reports a failed exec back. Only async-signal-safe
 * calls run between fork and exec: the tray is multi-threaded. */
int tray_sys_spawn(char *err, const char *const *argv, const char *log_path) {
    char exe[PLAT_PATH_MAX];
    if (tray_sys_find_program(argv[0], exe) != 0)
        return awq_seterr(err, AWQ_ENOTFOUND, "%s: program not found (beside awq-tray or on PATH)", argv[0]);
    int out = log_path ? open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)
                       : open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (out < 0) return awq_seterr(err, AWQ_EIO, "%s: %s", log_path ? log_path : "/dev/null", strerror(errno));
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC), p[2];
    if (in < 0 || pipe2(p, O_CLOEXEC) != 0) {
        int e = errno;
        close(out);
        if (in >= 0) close(in);
        return awq_seterr(err, AWQ_EIO, "pipe: %s", strerror(e));
    }
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        if (fork() != 0) _exit(0);
        dup2(in, 0);
        dup2(out, 1);
        dup2(out, 2);
        execv(exe, (char *const *)argv);
        int e = errno;
        ssize_t w = write(p[1], &e, sizeof e);
        (void)w;
        _exit(127);
    }
    close(p[1]);
    close(in);
    close(out);
    int rc = 0;
    if (pid < 0) {
        rc = awq_seterr(err, AWQ_EIO, "fork: %s", strerror(errno));
    } else {
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
        int e = 0;
        ssize_t k;
        while ((k = read(p[0], &e, sizeof e)) < 0 && errno == EINTR) {}
        if (k == (ssize_t)sizeof e) rc = awq_seterr(err, AWQ_ENOTFOUND, "cannot run %s: %s", exe, strerror(e));
    }
    close(p[0]);
    return rc;
}

/* Run argv (found on PATH) and wait; its stderr (first line) goes into err when it fails.
 * Returns the exit status, or a negative AWQ_E* when it could not run. */
static int run_wait(char *err, const char *const *argv) {
    char exe[PLAT_PATH_MAX];
    if (tray_sys_find_program(argv[0], exe) != 0)
        return awq_seterr(err, AWQ_ENOTFOUND, "%s: program not found on PATH", argv[0]);
    int p[2], in = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (in < 0 || pipe2(p, O_CLOEXEC) != 0) {
        if (in >= 0) close(in);
        return awq_seterr(err, AWQ_EIO, "pipe: %s", strerror(errno));
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(in, 0);
        dup2(in, 1);
        dup2(p[1], 2);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    close(p[1]);
    close(in);
    char msg[AWQ_ERR_LEN];
    size_t len = 0;
    ssize_t k;
    while ((k = read(p[0], msg + len, sizeof msg - 1 - len)) != 0) {
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) break;
        len += (size_t)k;
        if (len == sizeof msg - 1) { /* keep draining so the child never blocks on a full pipe */
            char sink[256];
            while ((k = read(p[0], sink, sizeof sink)) > 0 || (k < 0 && errno == EINTR)) {}
            break;
        }
    }
    close(p[0]);
    msg[len] = 0;
    char *nl = strchr(msg, '\n');
    if (nl) *nl = 0;
    if (pid < 0) return awq_seterr(err, AWQ_EIO, "fork: %s", strerror(errno));
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (code) awq_seterr(err, AWQ_EIO, "%s failed (exit %d)%s%s", argv[0], code, msg[0] ? ": " : "", msg);
    return code;
}

/* ------------------------------------------------------------ service ---- */

static const char *unit_of(const tray_service *s) { return s->unit[0] ? s->unit : "awqd"; }

bool tray_sys_service_managed(const tray_service *s) {
    if (s->mode == TRAY_START_SPAWN) return false;
    if (s->mode == TRAY_START_SERVICE) return true;
    /* AUTO: is a user unit installed? (no systemd, no user bus: spawn) */
    const char *argv[] = {"systemctl", "--user", "cat", unit_of(s), NULL};
    char e[AWQ_ERR_LEN];
    return run_wait(e, argv) == 0;
}

void tray_sys_spawn_log(const tray_service *s, char *out) {
    if (s->log[0]) {
        snprintf(out, PLAT_PATH_MAX, "%s", s->log);
        return;
    }
    const char *st = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    char dir[PLAT_PATH_MAX];
    if (st && st[0] == '/') snprintf(dir, sizeof dir, "%s/awqd", st);
    else snprintf(dir, sizeof dir, "%s/.local/state/awqd", home && *home ? home : "/tmp");
    char e[AWQ_ERR_LEN];
    if (plat_mkdirs(e, dir, 0700) != 0 || plat_path_join(out, dir, "awqd.log") != 0) out[0] = 0;
}

int tray_sys_service_start(char *err, const tray_service *s, bool *spawned) {
    *spawned = false;
    if (tray_sys_service_managed(s)) {
        const char *argv[] = {"systemctl", "--user", "start", unit_of(s), NULL};
        int code = run_wait(err, argv);
        return code == 0 ? 0 : code < 0 ? code : AWQ_EIO;
    }
    char exe[PLAT_PATH_MAX], log[PLAT_PATH_MAX];
    if (tray_sys_find_program(s->awqd[0] ? s->awqd : "awqd", exe) != 0)
        return awq_seterr(err, AWQ_ENOTFOUND, "cannot start the daemon: %s not found (beside awq-tray or on PATH)",
                          s->awqd[0] ? s->awqd : "awqd");
    const char *argv[8] = {exe};
    int n = 1;
    if (s->config[0]) argv[n++] = "--config", argv[n++] = s->config;
    if (s->socket[0]) argv[n++] = "--socket", argv[n++] = s->socket;
    argv[n] = NULL;
    tray_sys_spawn_log(s, log);
    int rc = tray_sys_spawn(err, argv, log[0] ? log : NULL);
    if (!rc) *spawned = true;
    return rc;
}

int tray_sys_service_stop(char *err, const tray_service *s) {
    if (!tray_sys_service_managed(s))
        return awq_seterr(err, AWQ_EUNSUPPORTED, "awqd is not run by systemd: stop it with the protocol");
    const char *argv[] = {"systemctl", "--user", "stop", unit_of(s), NULL};
    int code = run_wait(err, argv);
    return code == 0 ? 0 : code < 0 ? code : AWQ_EIO;
}

/* ------------------------------------------------------------ terminal, logs ---- */

int tray_sys_terminal(char *err, const char *const *argv) {
    const char *cands[] = {getenv("TERMINAL"), "x-terminal-emulator", "xterm"};
    char exe[PLAT_PATH_MAX];
    for (size_t i = 0; i < sizeof cands / sizeof cands[0]; i++) {
        if (!cands[i] || !*cands[i] || tray_sys_find_program(cands[i], exe) != 0) continue;
        const char *av[32] = {exe, "-e"};
        size_t n = 2;
        for (size_t k = 0; argv[k] && n < 31; k++) av[n++] = argv[k];
        av[n] = NULL;
        return tray_sys_spawn(err, av, NULL);
    }
    return awq_seterr(err, AWQ_ENOTFOUND,
                      "no terminal program found ($TERMINAL, x-terminal-emulator, xterm): run '%s' in a terminal",
                      argv[0]);
}

int tray_sys_show_logs(char *err, const tray_service *s, const char *log_file) {
    if (tray_sys_service_managed(s)) {
        const char *argv[] = {"journalctl", "--user", "-u", unit_of(s), "-n", "200", "-f", NULL};
        return tray_sys_terminal(err, argv);
    }
    if (!*log_file || access(log_file, R_OK) != 0)
        return awq_seterr(err, AWQ_ENOTFOUND,
                          "no log to show: awqd is not run by systemd and %s does not exist (set log.file in "
                          "Settings, or start awqd from the tray)",
                          *log_file ? log_file : "no log file");
    const char *argv[] = {"tail", "-n", "200", "-F", log_file, NULL};
    return tray_sys_terminal(err, argv);
}
