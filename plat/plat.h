/* plat.h - the OS shim: file mapping, whole-file reads, atomic writes, paths, clocks, threads.
 *
 * One implementation per OS (plat_posix.c, plat_win.c); the build picks one. Nothing else in
 * the tree includes <windows.h> or <pthread.h> directly for these purposes.
 *
 * Thread safety: every function is thread-safe; a mutex/cond/thread object is used as its
 * documented primitive.
 */
#ifndef PLAT_H
#define PLAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "awq_err.h"

#ifdef _WIN32
#define PLAT_PATH_SEP '\\'
typedef struct plat_thread { void *h; } plat_thread;
typedef struct plat_mutex { void *p[5]; } plat_mutex;   /* CRITICAL_SECTION storage (40 bytes) */
typedef struct plat_cond { void *p; } plat_cond;        /* CONDITION_VARIABLE */
#else
#include <pthread.h>
#define PLAT_PATH_SEP '/'
typedef struct plat_thread { pthread_t t; } plat_thread;
typedef struct plat_mutex { pthread_mutex_t m; } plat_mutex;
typedef struct plat_cond { pthread_cond_t c; } plat_cond;
#endif

#define PLAT_PATH_MAX 4096

#ifdef _WIN32
/* UTF-8 -> a malloc'ed UTF-16 string for the wide Win32 calls; NULL for invalid UTF-8 (strict:
 * MB_ERR_INVALID_CHARS) or no memory. The caller frees it. */
wchar_t *plat_utf8_to_w(const char *s);
#endif

/* ---- files ---- */
/* A read-only mapping of a whole file. len 0 files map to data == NULL. */
typedef struct plat_map {
    const uint8_t *data;
    size_t len;
    void *os; /* OS handle(s), private */
} plat_map;

/* Map path read-only. On failure err names the path and the reason. */
AWQ_NODISCARD int plat_map_file(char *err, const char *path, plat_map *m) AWQ_NONNULL(2, 3);
void plat_unmap(plat_map *m);
/* Drop the mapping's resident pages from this process (they stay in the OS file cache and are
 * read again if touched): for data copied elsewhere, such as weights uploaded to a GPU, which
 * would otherwise count in the process's resident memory for as long as it runs. The mapping
 * stays valid. */
void plat_map_release(const plat_map *m);

/* Read a whole file into a malloc'ed, NUL-terminated buffer; files over max_len are refused
 * with AWQ_ETOOBIG. Caller frees *data_p. */
AWQ_NODISCARD int plat_read_file(char *err, const char *path, size_t max_len, char **data_p,
                                 size_t *len_p) AWQ_NONNULL(2, 4, 5);

/* Write data to path atomically: a temp file beside it, fsync, rename, fsync of the directory.
 * mode is the POSIX permission of the new file (ignored on Windows). */
AWQ_NODISCARD int plat_write_file_atomic(char *err, const char *path, const void *data, size_t len,
                                         int mode) AWQ_NONNULL(2);

/* Canonical absolute path of an existing file or directory into out (PLAT_PATH_MAX bytes). */
AWQ_NODISCARD int plat_realpath(char *err, const char *path, char *out) AWQ_NONNULL(2, 3);
bool plat_is_dir(const char *path);
bool plat_is_file(const char *path);
/* Join dir and name with the separator into out (PLAT_PATH_MAX); AWQ_ETOOBIG if it does not fit. */
AWQ_NODISCARD int plat_path_join(char *out, const char *dir, const char *name);
/* Create a directory (and parents) with mode; an existing directory is fine. */
AWQ_NODISCARD int plat_mkdirs(char *err, const char *path, int mode);

/* ---- memory ---- */
/* align-byte aligned memory (align a power of two, size a multiple of it), released with
 * plat_aligned_free and nothing else: Windows has no aligned_alloc, and its _aligned_malloc
 * memory must not reach free(). */
void *plat_aligned_alloc(size_t align, size_t size);
void plat_aligned_free(void *p);
/* Hand the allocator's free memory back to the OS (best effort, no error): a long-running
 * process calls it when a burst of work ends, so it does not keep its peak RSS. glibc:
 * malloc_trim; Windows: _heapmin; elsewhere nothing. */
void plat_heap_trim(void);

/* ---- time ---- */
uint64_t plat_now_ns(void);  /* monotonic */
uint64_t plat_wall_ms(void); /* wall clock, ms since the epoch */
void plat_sleep_ms(unsigned ms);

/* ---- threads ---- */
int plat_ncpu(void);
AWQ_NODISCARD int plat_thread_create(plat_thread *t, void *(*fn)(void *), void *arg);
void plat_thread_join(plat_thread *t);
void plat_mutex_init(plat_mutex *m);
void plat_mutex_destroy(plat_mutex *m);
void plat_mutex_lock(plat_mutex *m);
void plat_mutex_unlock(plat_mutex *m);
void plat_cond_init(plat_cond *c);
void plat_cond_destroy(plat_cond *c);
void plat_cond_wait(plat_cond *c, plat_mutex *m);
/* Returns false on timeout. */
bool plat_cond_timedwait(plat_cond *c, plat_mutex *m, unsigned ms);
void plat_cond_signal(plat_cond *c);
void plat_cond_broadcast(plat_cond *c);

#endif
