/* service_linux.c - service.h for Linux: sd_notify and sd_listen_fds spoken directly (both are
 * tiny, documented protocols; see sd_notify(3) and sd_listen_fds(3)), the flock lock file, and
 * signals through a self-pipe. */
#define _GNU_SOURCE
#include "service.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "plat.h"

/* ------------------------------------------------------------------ sd_notify ---- */

int awqd_svc_notify(char *err, const char *state) {
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path) return 0;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t plen = strlen(path);
    /* "@name" is the abstract namespace: a leading NUL instead of '@', and the address length
     * counts exactly the name (no terminating NUL) */
    if (path[0] != '/' && path[0] != '@')
        return awq_seterr(err, AWQ_EINVAL, "$NOTIFY_SOCKET '%s' is neither an absolute path nor @abstract", path);
    if (plen >= sizeof sa.sun_path)
        return awq_seterr(err, AWQ_ETOOBIG, "$NOTIFY_SOCKET is %zu bytes long (at most %zu)", plen,
                          sizeof sa.sun_path - 1);
    memcpy(sa.sun_path, path, plen);
    if (path[0] == '@') sa.sun_path[0] = 0;
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + (path[0] == '@' ? 0 : 1));

    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return awq_seterr(err, AWQ_EIO, "notify: socket: %s", strerror(errno));
    size_t len = strlen(state);
    ssize_t n;
    do {
        n = sendto(fd, state, len, MSG_NOSIGNAL, (const struct sockaddr *)&sa, salen);
    } while (n < 0 && errno == EINTR);
    int e = errno;
    close(fd);
    if (n < 0) return awq_seterr(err, AWQ_EIO, "notify %s: %s", path, strerror(e));
    if ((size_t)n != len) return awq_seterr(err, AWQ_EIO, "notify %s: short send", path);
    return 1;
}

/* ------------------------------------------------------------------ sd_listen_fds ---- */

/* A strict decimal parse: the whole string, no sign, fits in long. */
static int parse_pos(const char *s, long *out) {
    if (!s || !*s) return -1;
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || v > (0x7fffffffL - 9) / 10) return -1;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return 0;
}

int awqd_svc_listen_fd(char *err, int *fd_p) {
    *fd_p = -1;
    const char *spid = getenv("LISTEN_PID"), *sfds = getenv("LISTEN_FDS");
    long pid = 0, nfds = 0;
    int rc = 0;
    if (!spid && !sfds) goto out; /* not socket-activated */
    if (parse_pos(spid, &pid) || parse_pos(sfds, &nfds)) {
        rc = awq_seterr(err, AWQ_EINVAL, "socket activation: bad $LISTEN_PID '%s' or $LISTEN_FDS '%s'",
                        spid ? spid : "", sfds ? sfds : "");
        goto out;
    }
    if ((pid_t)pid != getpid() || nfds == 0) goto out; /* meant for another process */
    /* whatever we do with them, passed fds must not leak into children */
    for (long i = 0; i < nfds && i < 4096; i++) {
        int fd = AWQD_SVC_LISTEN_FDS_START + (int)i;
        int fl = fcntl(fd, F_GETFD);
        if (fl >= 0) (void)fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
    }
    if (nfds != 1) {
        rc = awq_seterr(err, AWQ_EINVAL, "socket activation: %ld sockets passed, awqd takes exactly 1 (check awqd.socket)",
                        nfds);
        goto out;
    }
    int fd = AWQD_SVC_LISTEN_FDS_START, type = 0, listening = 0;
    socklen_t l1 = sizeof type, l2 = sizeof listening;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &l1) != 0 ||
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &l2) != 0) {
        rc = awq_seterr(err, AWQ_EINVAL, "socket activation: fd %d is not a socket: %s", fd, strerror(errno));
        goto out;
    }
    if (type != SOCK_STREAM || !listening) {
        rc = awq_seterr(err, AWQ_EINVAL, "socket activation: fd %d is not a listening stream socket (ListenStream=)", fd);
        goto out;
    }
    *fd_p = fd;
    rc = 1;
out:
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return rc;
}

/* ------------------------------------------------------------------ lock file ---- */

int awqd_svc_lock(char *err, const char *socket_path, int *fd_p) {
    char path[4096];
    *fd_p = -1;
    if (snprintf(path, sizeof path, "%s.lock", socket_path) >= (int)sizeof path)
        return awq_seterr(err, AWQ_ETOOBIG, "%s: path too long", socket_path);
    /* O_NOFOLLOW: a symlink planted at the lock path must not make us write elsewhere */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return awq_seterr(err, AWQ_EIO, "%s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        if (e == EWOULDBLOCK) {
            char buf[32] = {0};
            ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
            long pid = 0;
            if (n > 0) {
                buf[n] = 0;
                buf[strcspn(buf, "\n")] = 0;
                if (parse_pos(buf, &pid)) pid = 0;
            }
            close(fd);
            if (pid > 0)
                return awq_seterr(err, AWQ_EEXIST, "%s: another awqd (pid %ld) already serves this socket", path, pid);
            return awq_seterr(err, AWQ_EEXIST, "%s: another awqd already serves this socket", path);
        }
        close(fd);
        return awq_seterr(err, AWQ_EIO, "%s: flock: %s", path, strerror(e));
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, buf, (size_t)n, 0) != n) {
        int e = errno;
        close(fd);
        return awq_seterr(err, AWQ_EIO, "%s: write pid: %s", path, strerror(e));
    }
    *fd_p = fd;
    return 0;
}

void awqd_svc_unlock(int fd) {
    if (fd >= 0) close(fd); /* closing the last descriptor releases the flock */
}

/* ------------------------------------------------------------------ signals ---- */

/* Only lock-free atomics and write(2) are used in the handler: both are async-signal-safe. */
static atomic_uint sig_pending;
static atomic_uint sig_drains;
static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig) {
    int saved = errno;
    unsigned bit = AWQD_SVC_SIG_RELOAD;
    if (sig == SIGTERM || sig == SIGINT)
        bit = atomic_fetch_add(&sig_drains, 1) == 0 ? AWQD_SVC_SIG_DRAIN : AWQD_SVC_SIG_FORCE;
    atomic_fetch_or(&sig_pending, bit);
    if (sig_pipe[1] >= 0) {
        char b = 1;
        ssize_t r = write(sig_pipe[1], &b, 1); /* a full pipe already wakes the loop */
        (void)r;
    }
    errno = saved;
}

int awqd_svc_signals_init(char *err) {
    if (sig_pipe[0] < 0 && pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
        return awq_seterr(err, AWQ_EIO, "signal pipe: %s", strerror(errno));
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGPIPE, &sa, NULL) != 0) return awq_seterr(err, AWQ_EIO, "sigaction(SIGPIPE): %s", strerror(errno));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART; /* slow calls resume; the loop learns of the signal from the pipe */
    /* block the other two while one runs, so the drain count stays consistent */
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGHUP);
    const int sigs[] = {SIGTERM, SIGINT, SIGHUP};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (sigaction(sigs[i], &sa, NULL) != 0)
            return awq_seterr(err, AWQ_EIO, "sigaction(%s): %s", strsignal(sigs[i]), strerror(errno));
    return 0;
}

int awqd_svc_signal_fd(void) { return sig_pipe[0]; }

unsigned awqd_svc_take_signals(void) {
    char buf[64];
    if (sig_pipe[0] >= 0)
        while (read(sig_pipe[0], buf, sizeof buf) > 0) {
        }
    /* read the flags after draining: a signal that lands in between leaves a byte in the pipe
     * and its bit set, so the loop wakes again and nothing is lost */
    return atomic_exchange(&sig_pending, 0);
}

void awqd_svc_signals_free(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    for (int i = 0; i < 2; i++) {
        if (sig_pipe[i] >= 0) close(sig_pipe[i]);
        sig_pipe[i] = -1;
    }
    atomic_store(&sig_pending, 0);
    atomic_store(&sig_drains, 0);
}

/* Wait for the self-pipe; the bits raised meanwhile. */
unsigned awqd_svc_wait(int ms) {
    struct pollfd p = {.fd = awqd_svc_signal_fd(), .events = POLLIN};
    if (p.fd >= 0 && poll(&p, 1, ms) < 0 && errno != EINTR) plat_sleep_ms((unsigned)ms);
    return awqd_svc_take_signals();
}

/* ------------------------------------------------------------------ OS details ---- */

uint32_t awqd_svc_uid(void) { return (uint32_t)geteuid(); }

/* Every connection is a descriptor: lift the soft limit to the hard one so that
 * server.max_connections, not a default of 1024 descriptors, is what limits clients. */
void awqd_svc_raise_nofile(int64_t want) {
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    rlim_t need = (rlim_t)want + 64; /* listener, lock, pipes, model shards, log */
    if (rl.rlim_cur >= need) return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > need ? need : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) awqd_warn("cannot raise the descriptor limit: %s", strerror(errno));
    if (rl.rlim_cur < need)
        awqd_warn("descriptor limit %llu is below server.max_connections + 64 = %llu; raise LimitNOFILE",
                  (unsigned long long)rl.rlim_cur, (unsigned long long)need);
}

int awqd_svc_group_id(char *err, const char *g, int64_t *out) {
    *out = -1;
    if (!g[0]) return 0;
    char *end;
    errno = 0;
    long long v = strtoll(g, &end, 10);
    if (!errno && *end == 0 && v >= 0) {
        *out = v;
        return 0;
    }
    struct group gr, *res = NULL;
    char buf[4096];
    if (getgrnam_r(g, &gr, buf, sizeof buf, &res) != 0 || !res)
        return awq_seterr(err, AWQ_ENOTFOUND, "[server] socket_group: no group named '%s'", g);
    *out = res->gr_gid;
    return 0;
}

int awqd_svc_state_file(char *err, const char *name, char *out) {
    const char *x = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    int n;
    if (geteuid() == 0) n = snprintf(out, PLAT_PATH_MAX, "/var/lib/awqd/%s", name);
    else if (x && x[0] == '/') n = snprintf(out, PLAT_PATH_MAX, "%s/awqd/%s", x, name);
    else if (home && home[0] == '/') n = snprintf(out, PLAT_PATH_MAX, "%s/.local/state/awqd/%s", home, name);
    else return awq_seterr(err, AWQ_ENOTFOUND, "[security] server_key is empty and neither $XDG_STATE_HOME nor $HOME is set");
    if (n < 0 || n >= PLAT_PATH_MAX) return awq_seterr(err, AWQ_ETOOBIG, "state directory path too long");
    return 0;
}

/* Under systemd the journal takes standard error. */
bool awqd_svc_default_log(char *out) {
    (void)out;
    return false;
}

/* ------------------------------------------------------------------ Windows service ---- */
/* systemd units (config/awqd.service) do this job on Linux. */

int awqd_svc_install(char *err, const char *name, const char *config) {
    (void)name;
    (void)config;
    return awq_seterr(err, AWQ_EUNSUPPORTED, "--install-service is for Windows; on Linux install config/awqd.service (docs/daemon.md)");
}

int awqd_svc_uninstall(char *err, const char *name) {
    (void)name;
    return awq_seterr(err, AWQ_EUNSUPPORTED, "--uninstall-service is for Windows; on Linux use systemctl disable awqd");
}

int awqd_svc_run_service(const char *config, const struct awqd_overrides *ov) {
    (void)config;
    (void)ov;
    fprintf(stderr, "awqd: --service is for Windows; systemd runs awqd in the foreground (Type=notify)\n");
    return 2;
}

bool awqd_svc_is_service(void) { return false; }
