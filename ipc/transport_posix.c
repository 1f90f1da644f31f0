/* transport_posix.c - transport.h on Unix domain sockets. */
#define _GNU_SOURCE
#include "transport.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "plat.h"

struct ipc_listener {
    int fd;
    bool created;   /* we bound the path: unlink it on free */
    dev_t dev;      /* the inode we created, so free never unlinks someone else's socket */
    ino_t ino;
    char path[IPC_PATH_MAX];
};

struct ipc_sock {
    int fd;
};

/* ------------------------------------------------------------ paths ---- */

int ipc_default_socket_path(char *err, char *out, size_t n) {
    const char *base;
    if (geteuid() == 0) {
        base = "/run";
    } else {
        base = getenv("XDG_RUNTIME_DIR");
        if (!base || !*base)
            return awq_seterr(err, AWQ_ENOTFOUND,
                              "XDG_RUNTIME_DIR is not set; pass a socket path explicitly (no /tmp fallback)");
    }
    int k = snprintf(out, n, "%s/awqd/awqd.sock", base);
    if (k < 0 || (size_t)k >= n || (size_t)k >= IPC_PATH_MAX)
        return awq_seterr(err, AWQ_ETOOBIG, "socket path under %s is too long", base);
    return 0;
}

static int set_nonblock(int fd) {
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/* Make sure dir is a private directory of ours (creating it when missing). */
static int check_dir(char *err, const char *dir, int64_t group) {
    mode_t want = group >= 0 ? 0710 : 0700;
    if (mkdir(dir, want) == 0) {
        if (group >= 0 && (chown(dir, (uid_t)-1, (gid_t)group) != 0 || chmod(dir, want) != 0))
            return awq_seterr(err, AWQ_EPERM, "%s: cannot give it to group %lld: %s", dir, (long long)group,
                              strerror(errno));
        if (chmod(dir, want) != 0) return awq_seterr(err, AWQ_EIO, "%s: chmod: %s", dir, strerror(errno));
    } else if (errno != EEXIST) {
        return awq_seterr(err, errno == EACCES ? AWQ_EPERM : AWQ_EIO, "cannot create socket directory %s: %s", dir,
                          strerror(errno));
    }
    struct stat st;
    if (lstat(dir, &st) != 0) return awq_seterr(err, AWQ_EIO, "%s: %s", dir, strerror(errno));
    if (S_ISLNK(st.st_mode)) return awq_seterr(err, AWQ_EPERM, "socket directory %s is a symlink; refusing it", dir);
    if (!S_ISDIR(st.st_mode)) return awq_seterr(err, AWQ_EPERM, "socket directory %s is not a directory", dir);
    if (st.st_uid != geteuid())
        return awq_seterr(err, AWQ_EPERM, "socket directory %s is owned by uid %u, not by us (uid %u); refusing it",
                          dir, (unsigned)st.st_uid, (unsigned)geteuid());
    mode_t m = st.st_mode & 0777;
    bool group_ok = group >= 0 && st.st_gid == (gid_t)group && !(m & 0020);
    if ((m & 0007) || ((m & 0070) && !group_ok))
        return awq_seterr(err, AWQ_EPERM,
                          "socket directory %s is accessible by %s (mode %04o); chmod 700 it or remove it",
                          dir, (m & 0007) ? "everyone" : "its group", (unsigned)m);
    return 0;
}

/* Something exists at path: refuse unless it is a stale socket of ours, which is removed. */
static int clear_stale(char *err, const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) return 0;
        return awq_seterr(err, AWQ_EIO, "%s: %s", path, strerror(errno));
    }
    if (S_ISLNK(st.st_mode))
        return awq_seterr(err, AWQ_EEXIST, "%s is a symlink; refusing to replace it", path);
    if (!S_ISSOCK(st.st_mode))
        return awq_seterr(err, AWQ_EEXIST, "%s exists and is not a socket; refusing to replace it", path);
    if (st.st_uid != geteuid())
        return awq_seterr(err, AWQ_EPERM, "%s is a socket of uid %u, not ours; refusing to replace it", path,
                          (unsigned)st.st_uid);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return awq_seterr(err, AWQ_EIO, "socket: %s", strerror(errno));
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    memcpy(a.sun_path, path, strlen(path) + 1);
    int rc = connect(fd, (struct sockaddr *)&a, sizeof a);
    int e = errno;
    close(fd);
    if (rc == 0) return awq_seterr(err, AWQ_EEXIST, "another server is already listening on %s", path);
    if (e != ECONNREFUSED)
        return awq_seterr(err, AWQ_EEXIST, "%s: cannot tell whether it is stale (%s); refusing to replace it",
                          path, strerror(e));
    if (unlink(path) != 0 && errno != ENOENT)
        return awq_seterr(err, AWQ_EIO, "cannot remove stale socket %s: %s", path, strerror(errno));
    return 0;
}

int ipc_listen(char *err, const ipc_listen_opts *o, ipc_listener **out) {
    *out = NULL;
    ipc_listener *l = calloc(1, sizeof *l);
    if (!l) return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    l->fd = -1;
    int rc;
    if (o->listen_fd >= 0) { /* socket activation: the service manager did the binding */
        int type = 0;
        socklen_t tl = sizeof type;
        if (getsockopt(o->listen_fd, SOL_SOCKET, SO_TYPE, &type, &tl) != 0 || type != SOCK_STREAM) {
            free(l);
            return awq_seterr(err, AWQ_EINVAL, "listen fd %d is not a stream socket", o->listen_fd);
        }
        l->fd = o->listen_fd;
        if (set_nonblock(l->fd) != 0) {
            free(l);
            return awq_seterr(err, AWQ_EIO, "listen fd %d: %s", o->listen_fd, strerror(errno));
        }
        struct sockaddr_un a;
        socklen_t al = sizeof a;
        if (getsockname(l->fd, (struct sockaddr *)&a, &al) == 0 && a.sun_family == AF_UNIX)
            snprintf(l->path, sizeof l->path, "%s", a.sun_path);
        *out = l;
        return 0;
    }
    if (!o->path || !*o->path || strlen(o->path) >= IPC_PATH_MAX) {
        free(l);
        return awq_seterr(err, AWQ_EINVAL, "socket path is empty or longer than %d bytes", IPC_PATH_MAX - 1);
    }
    snprintf(l->path, sizeof l->path, "%s", o->path);
    char dir[IPC_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", o->path);
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir) {
        free(l);
        return awq_seterr(err, AWQ_EINVAL, "socket path %s must be inside a private directory", o->path);
    }
    *slash = 0;
    if ((rc = check_dir(err, dir, o->group)) || (rc = clear_stale(err, o->path))) {
        free(l);
        return rc;
    }
    l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (l->fd < 0) {
        free(l);
        return awq_seterr(err, AWQ_EIO, "socket: %s", strerror(errno));
    }
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    memcpy(a.sun_path, o->path, strlen(o->path) + 1);
    /* bind creates the file with the umask applied: no window where it is group/world-open */
    mode_t old = umask(0177);
    int b = bind(l->fd, (struct sockaddr *)&a, sizeof a);
    int e = errno;
    umask(old);
    if (b != 0) {
        close(l->fd);
        free(l);
        return awq_seterr(err, e == EADDRINUSE ? AWQ_EEXIST : AWQ_EIO, "bind %s: %s", o->path, strerror(e));
    }
    l->created = true;
    struct stat st;
    if (lstat(o->path, &st) == 0) {
        l->dev = st.st_dev;
        l->ino = st.st_ino;
    }
    if (o->group >= 0 && (chown(o->path, (uid_t)-1, (gid_t)o->group) != 0 || chmod(o->path, 0660) != 0)) {
        rc = awq_seterr(err, AWQ_EPERM, "%s: cannot give it to group %lld: %s", o->path, (long long)o->group,
                        strerror(errno));
        ipc_listener_free(l);
        return rc;
    }
    if (listen(l->fd, SOMAXCONN) != 0) {
        rc = awq_seterr(err, AWQ_EIO, "listen %s: %s", o->path, strerror(errno));
        ipc_listener_free(l);
        return rc;
    }
    *out = l;
    return 0;
}

void ipc_listener_free(ipc_listener *l) {
    if (!l) return;
    if (l->created) {
        struct stat st;
        if (lstat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino) unlink(l->path);
    }
    if (l->fd >= 0) close(l->fd);
    free(l);
}

intptr_t ipc_listener_handle(const ipc_listener *l) { return l->fd; }
const char *ipc_listener_path(const ipc_listener *l) { return l->path; }

int ipc_accept(char *err, ipc_listener *l, ipc_sock **out) {
    *out = NULL;
    int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED) return AWQ_EAGAIN;
        /* EMFILE/ENFILE: out of descriptors; the caller backs off */
        return awq_seterr(err, errno == EMFILE || errno == ENFILE ? AWQ_EBUSY : AWQ_EIO, "accept: %s",
                          strerror(errno));
    }
    ipc_sock *s = malloc(sizeof *s);
    if (!s) {
        close(fd);
        return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    }
    s->fd = fd;
    *out = s;
    return 0;
}

int ipc_connect(char *err, const char *path, ipc_sock **out) {
    *out = NULL;
    if (strlen(path) >= IPC_PATH_MAX) return awq_seterr(err, AWQ_EINVAL, "socket path %s is too long", path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return awq_seterr(err, AWQ_EIO, "socket: %s", strerror(errno));
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    memcpy(a.sun_path, path, strlen(path) + 1);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        int e = errno;
        close(fd);
        int code = e == ENOENT || e == ECONNREFUSED ? AWQ_ENOTFOUND : e == EACCES || e == EPERM ? AWQ_EPERM : AWQ_EIO;
        return awq_seterr(err, code, "connect %s: %s%s", path, strerror(e),
                          code == AWQ_ENOTFOUND ? " (is awqd running?)" : "");
    }
    if (set_nonblock(fd) != 0) {
        close(fd);
        return awq_seterr(err, AWQ_EIO, "fcntl: %s", strerror(errno));
    }
    ipc_sock *s = malloc(sizeof *s);
    if (!s) {
        close(fd);
        return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    }
    s->fd = fd;
    *out = s;
    return 0;
}

/* SO_PEERCRED is Linux's; other POSIX systems would use getpeereid (no pid). */
int ipc_sock_peer(const ipc_sock *s, ipc_peer *p) {
#ifdef SO_PEERCRED
    struct ucred uc;
    socklen_t len = sizeof uc;
    if (getsockopt(s->fd, SOL_SOCKET, SO_PEERCRED, &uc, &len) != 0) return AWQ_EIO;
    p->uid = uc.uid;
    p->gid = uc.gid;
    p->pid = uc.pid;
    return 0;
#else
    (void)s;
    (void)p;
    return AWQ_EUNSUPPORTED;
#endif
}

intptr_t ipc_sock_handle(const ipc_sock *s) { return s->fd; }

int ipc_sock_read(ipc_sock *s, void *buf, size_t n, size_t *got) {
    *got = 0;
    for (;;) {
        ssize_t k = read(s->fd, buf, n);
        if (k > 0) {
            *got = (size_t)k;
            return 0;
        }
        if (k == 0) return AWQ_ECLOSED;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return AWQ_EAGAIN;
        return errno == ECONNRESET ? AWQ_ECLOSED : AWQ_EIO;
    }
}

int ipc_sock_write(ipc_sock *s, const void *buf, size_t n, size_t *put) {
    *put = 0;
    for (;;) {
        ssize_t k = send(s->fd, buf, n, MSG_NOSIGNAL);
        if (k >= 0) {
            *put = (size_t)k;
            return k > 0 ? 0 : AWQ_EAGAIN;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return AWQ_EAGAIN;
        return errno == EPIPE || errno == ECONNRESET ? AWQ_ECLOSED : AWQ_EIO;
    }
}

int ipc_sock_wait(ipc_sock *s, bool write, int timeout_ms) {
    struct pollfd p = {.fd = s->fd, .events = write ? POLLOUT : POLLIN};
    uint64_t end = timeout_ms >= 0 ? plat_now_ns() + (uint64_t)timeout_ms * 1000000u : 0;
    for (;;) {
        int t = -1;
        if (timeout_ms >= 0) {
            uint64_t now = plat_now_ns();
            t = now >= end ? 0 : (int)((end - now + 999999) / 1000000);
        }
        int k = poll(&p, 1, t);
        if (k > 0) return 0; /* readable, writable, or hung up: the next read/write tells */
        if (k == 0) return AWQ_ETIMEDOUT;
        if (errno != EINTR) return AWQ_EIO;
    }
}

int ipc_sock_write_all(ipc_sock *s, const void *buf, size_t n, int timeout_ms) {
    const uint8_t *p = buf;
    uint64_t end = timeout_ms >= 0 ? plat_now_ns() + (uint64_t)timeout_ms * 1000000u : 0;
    while (n) {
        size_t put;
        int rc = ipc_sock_write(s, p, n, &put);
        if (rc == 0) {
            p += put;
            n -= put;
            continue;
        }
        if (rc != AWQ_EAGAIN) return rc;
        int left = -1;
        if (timeout_ms >= 0) {
            uint64_t now = plat_now_ns();
            if (now >= end) return AWQ_ETIMEDOUT;
            left = (int)((end - now) / 1000000u) + 1;
        }
        if ((rc = ipc_sock_wait(s, true, left))) return rc;
    }
    return 0;
}

void ipc_sock_free(ipc_sock *s) {
    if (!s) return;
    close(s->fd);
    free(s);
}
