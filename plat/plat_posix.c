/* plat_posix.c - plat.h for Linux and other POSIX systems. */
#define _GNU_SOURCE
#include "plat.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h> /* malloc_trim */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- files ---- */

int plat_map_file(char *err, const char *path, plat_map *m) {
    m->data = NULL;
    m->len = 0;
    m->os = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return awq_seterr(err, errno == ENOENT ? AWQ_ENOTFOUND : AWQ_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return awq_seterr(err, AWQ_EIO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return awq_seterr(err, AWQ_EIO, "%s: not a regular file", path);
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            int e = errno;
            close(fd);
            return awq_seterr(err, AWQ_EIO, "%s: mmap: %s", path, strerror(e));
        }
        m->data = p;
        m->len = (size_t)st.st_size;
    }
    close(fd); /* the mapping keeps the file alive */
    return 0;
}

void plat_map_release(const plat_map *m) {
    /* a private read-only file mapping: MADV_DONTNEED drops the pages, a later read faults
     * them back in from the file */
    if (m && m->data) (void)madvise((void *)m->data, m->len, MADV_DONTNEED);
}

void plat_unmap(plat_map *m) {
    if (m && m->data) munmap((void *)m->data, m->len);
    if (m) {
        m->data = NULL;
        m->len = 0;
    }
}

int plat_read_file(char *err, const char *path, size_t max_len, char **data_p, size_t *len_p) {
    *data_p = NULL;
    *len_p = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return awq_seterr(err, errno == ENOENT ? AWQ_ENOTFOUND : AWQ_EIO, "%s: %s", path, strerror(errno));
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return awq_seterr(err, AWQ_ENOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > max_len + 2) break;
            size_t ncap = cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                fclose(f);
                return awq_seterr(err, AWQ_ENOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap = ncap;
        }
        size_t n = fread(buf + len, 1, cap - 1 - len, f);
        len += n;
        if (n == 0) break;
        if (len > max_len) break;
    }
    int rerr = ferror(f);
    fclose(f);
    if (rerr) {
        free(buf);
        return awq_seterr(err, AWQ_EIO, "%s: read error", path);
    }
    if (len > max_len) {
        free(buf);
        return awq_seterr(err, AWQ_ETOOBIG, "%s: larger than %zu bytes", path, max_len);
    }
    buf[len] = 0;
    *data_p = buf;
    *len_p = len;
    return 0;
}

int plat_write_file_atomic(char *err, const char *path, const void *data, size_t len, int mode) {
    char tmp[PLAT_PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return awq_seterr(err, AWQ_ETOOBIG, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) return awq_seterr(err, AWQ_EIO, "%s: %s", tmp, strerror(errno));
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return awq_seterr(err, AWQ_EIO, "%s: write: %s", tmp, strerror(e));
        }
        p += n;
        left -= (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        int e = errno;
        unlink(tmp);
        return awq_seterr(err, AWQ_EIO, "%s: fsync: %s", tmp, strerror(e));
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return awq_seterr(err, AWQ_EIO, "%s: rename: %s", path, strerror(e));
    }
    /* make the rename itself durable */
    char dir[PLAT_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    return 0;
}

int plat_realpath(char *err, const char *path, char *out) {
    char buf[PATH_MAX];
    if (!realpath(path, buf))
        return awq_seterr(err, errno == ENOENT ? AWQ_ENOTFOUND : AWQ_EIO, "%s: %s", path, strerror(errno));
    if (strlen(buf) >= PLAT_PATH_MAX) return awq_seterr(err, AWQ_ETOOBIG, "%s: path too long", path);
    strcpy(out, buf);
    return 0;
}

bool plat_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool plat_is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int plat_path_join(char *out, const char *dir, const char *name) {
    size_t dl = strlen(dir);
    int n = (dl > 0 && dir[dl - 1] == '/') ? snprintf(out, PLAT_PATH_MAX, "%s%s", dir, name)
                                           : snprintf(out, PLAT_PATH_MAX, "%s/%s", dir, name);
    return (n < 0 || n >= PLAT_PATH_MAX) ? AWQ_ETOOBIG : 0;
}

int plat_mkdirs(char *err, const char *path, int mode) {
    char buf[PLAT_PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return awq_seterr(err, AWQ_ETOOBIG, "%s: path too long", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, (mode_t)mode) != 0 && errno != EEXIST)
            return awq_seterr(err, AWQ_EIO, "%s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, (mode_t)mode) != 0 && errno != EEXIST)
        return awq_seterr(err, AWQ_EIO, "%s: %s", buf, strerror(errno));
    if (!plat_is_dir(buf)) return awq_seterr(err, AWQ_EIO, "%s: not a directory", buf);
    return 0;
}

/* ---------------------------------------------------------------- memory ---- */

void *plat_aligned_alloc(size_t align, size_t size) { return aligned_alloc(align, size); }
void plat_aligned_free(void *p) { free(p); }

void plat_heap_trim(void) {
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

/* ---------------------------------------------------------------- time ---- */

uint64_t plat_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t plat_wall_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

void plat_sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ---------------------------------------------------------------- threads ---- */

int plat_ncpu(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0) return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

int plat_thread_create(plat_thread *t, void *(*fn)(void *), void *arg) {
    return pthread_create(&t->t, NULL, fn, arg) == 0 ? 0 : AWQ_ENOMEM;
}
void plat_thread_join(plat_thread *t) { pthread_join(t->t, NULL); }
void plat_mutex_init(plat_mutex *m) { pthread_mutex_init(&m->m, NULL); }
void plat_mutex_destroy(plat_mutex *m) { pthread_mutex_destroy(&m->m); }
void plat_mutex_lock(plat_mutex *m) { pthread_mutex_lock(&m->m); }
void plat_mutex_unlock(plat_mutex *m) { pthread_mutex_unlock(&m->m); }

void plat_cond_init(plat_cond *c) {
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&c->c, &a);
    pthread_condattr_destroy(&a);
}
void plat_cond_destroy(plat_cond *c) { pthread_cond_destroy(&c->c); }
void plat_cond_wait(plat_cond *c, plat_mutex *m) { pthread_cond_wait(&c->c, &m->m); }
bool plat_cond_timedwait(plat_cond *c, plat_mutex *m, unsigned ms) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return pthread_cond_timedwait(&c->c, &m->m, &ts) == 0;
}
void plat_cond_signal(plat_cond *c) { pthread_cond_signal(&c->c); }
void plat_cond_broadcast(plat_cond *c) { pthread_cond_broadcast(&c->c); }
