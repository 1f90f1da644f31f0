/* keyfile_posix.c - keyfile.h on POSIX: owner and mode bits, no symlinks. */
#define _GNU_SOURCE
#include "keyfile.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int ipc_keyfile_read_private(char *err, const char *path, char *buf, size_t cap, size_t *len_p) {
    *len_p = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return awq_seterr(err, errno == ENOENT ? AWQ_ENOTFOUND : errno == ELOOP ? AWQ_EPERM : AWQ_EIO,
                          "key file %s: %s", path, errno == ELOOP ? "is a symlink; refusing it" : strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return awq_seterr(err, AWQ_EPERM, "key file %s is not a regular file", path);
    }
    if (st.st_uid != geteuid()) {
        close(fd);
        return awq_seterr(err, AWQ_EPERM, "key file %s is owned by uid %u, not by you (uid %u)", path,
                          (unsigned)st.st_uid, (unsigned)geteuid());
    }
    if (st.st_mode & 077) {
        close(fd);
        return awq_seterr(err, AWQ_EPERM, "key file %s is readable by others (mode %04o); chmod 600 it", path,
                          (unsigned)(st.st_mode & 07777));
    }
    ssize_t n = cap ? read(fd, buf, cap - 1) : 0;
    int e = errno;
    close(fd);
    if (n < 0) return awq_seterr(err, AWQ_EIO, "key file %s: %s", path, strerror(e));
    *len_p = (size_t)n;
    return 0;
}

int ipc_keyfile_create(char *err, const char *path, const void *text, size_t len, bool secret) {
    mode_t mode = secret ? 0600 : 0644;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return awq_seterr(err, errno == EEXIST ? AWQ_EEXIST : AWQ_EIO, "%s: %s%s", path, strerror(errno),
                          errno == EEXIST ? " (not overwriting a key)" : "");
    /* the umask may have narrowed the mode; the secret must still be exactly 0600 */
    int ok = fchmod(fd, mode) == 0 && write(fd, text, len) == (ssize_t)len && fsync(fd) == 0;
    int e = errno;
    close(fd);
    if (!ok) {
        unlink(path);
        return awq_seterr(err, AWQ_EIO, "%s: %s", path, strerror(e));
    }
    return 0;
}
