/* plat_win.c - plat.h for Windows (Win32 API; built with mingw-w64 or MSVC).
 *
 * Paths cross this interface as UTF-8 and are converted to UTF-16 for the W functions, so a
 * model directory named in any script opens; the A functions would go through the ANSI code
 * page and lose characters. Errors name the path and carry the system's message.
 */
#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0A00 /* Windows 10: GetSystemTimePreciseAsFileTime, GetFinalPathNameByHandleW */
#endif
#define WIN32_LEAN_AND_MEAN
#include "plat.h"

#include <windows.h>
#include <malloc.h>
#include <process.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(sizeof(CRITICAL_SECTION) <= sizeof(((plat_mutex *)0)->p), "plat_mutex too small");
_Static_assert(sizeof(CONDITION_VARIABLE) <= sizeof(((plat_cond *)0)->p), "plat_cond too small");

/* ---------------------------------------------------------------- helpers ---- */

/* The system's text for error e, without the trailing newline. */
static const char *win_msg(DWORD e, char *buf, size_t n) {
    DWORD k = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, e,
                             MAKELANGID(LANG_ENGLISH, SUBLANG_DEFAULT), buf, (DWORD)n, NULL);
    if (k == 0) {
        snprintf(buf, n, "Windows error %lu", (unsigned long)e);
        return buf;
    }
    while (k > 0 && (buf[k - 1] == '\n' || buf[k - 1] == '\r' || buf[k - 1] == ' ' || buf[k - 1] == '.')) buf[--k] = 0;
    return buf;
}

static int code_of(DWORD e) {
    switch (e) {
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND:
    case ERROR_INVALID_NAME:
        return AWQ_ENOTFOUND;
    case ERROR_ACCESS_DENIED:
    case ERROR_SHARING_VIOLATION:
        return AWQ_EPERM;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_OUTOFMEMORY:
        return AWQ_ENOMEM;
    default:
        return AWQ_EIO;
    }
}

/* Fail with the last Windows error: "<path>: <what><system message>". */
static int fail_last(char *err, const char *path, const char *what) {
    DWORD e = GetLastError();
    char m[160];
    return awq_seterr(err, code_of(e), "%s: %s%s", path, what, win_msg(e, m, sizeof m));
}

wchar_t *plat_utf8_to_w(const char *s) {
    int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
    if (n <= 0) return NULL;
    wchar_t *w = malloc((size_t)n * sizeof *w);
    if (w && MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n) != n) {
        free(w);
        return NULL;
    }
    return w;
}

/* UTF-16 -> UTF-8 into out (n bytes); false when it does not fit. */
static bool from_w(const wchar_t *w, char *out, size_t n) {
    int k = WideCharToMultiByte(CP_UTF8, 0, w, -1, out, (int)(n > INT_MAX ? INT_MAX : n), NULL, NULL);
    return k > 0;
}

static int bad_path(char *err, const char *path) {
    return awq_seterr(err, AWQ_EINVAL, "%s: not valid UTF-8 (or out of memory)", path);
}

/* ---------------------------------------------------------------- files ---- */

int plat_map_file(char *err, const char *path, plat_map *m) {
    m->data = NULL;
    m->len = 0;
    m->os = NULL;
    wchar_t *w = plat_utf8_to_w(path);
    if (!w) return bad_path(err, path);
    /* FILE_SHARE_DELETE: a model file may be replaced on disk while mapped, as on POSIX */
    HANDLE f = CreateFileW(w, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_DELETE, NULL, OPEN_EXISTING,
                           FILE_ATTRIBUTE_NORMAL, NULL);
    DWORD attr = GetFileAttributesW(w);
    free(w);
    if (f == INVALID_HANDLE_VALUE) {
        if (attr != INVALID_FILE_ATTRIBUTES && (attr & FILE_ATTRIBUTE_DIRECTORY))
            return awq_seterr(err, AWQ_EIO, "%s: not a regular file", path);
        return fail_last(err, path, "");
    }
    LARGE_INTEGER sz;
    if (GetFileType(f) != FILE_TYPE_DISK) {
        CloseHandle(f);
        return awq_seterr(err, AWQ_EIO, "%s: not a regular file", path);
    }
    if (!GetFileSizeEx(f, &sz)) {
        int rc = fail_last(err, path, "size: ");
        CloseHandle(f);
        return rc;
    }
    if (sz.QuadPart > 0) {
        HANDLE mh = CreateFileMappingW(f, NULL, PAGE_READONLY, 0, 0, NULL);
        if (!mh) {
            int rc = fail_last(err, path, "CreateFileMapping: ");
            CloseHandle(f);
            return rc;
        }
        void *p = MapViewOfFile(mh, FILE_MAP_READ, 0, 0, 0);
        if (!p) {
            int rc = fail_last(err, path, "MapViewOfFile: ");
            CloseHandle(mh);
            CloseHandle(f);
            return rc;
        }
        CloseHandle(mh); /* the view keeps the mapping and the file alive */
        m->data = p;
        m->len = (size_t)sz.QuadPart;
    }
    CloseHandle(f);
    return 0;
}

void plat_map_release(const plat_map *m) {
    /* VirtualUnlock on pages that are not locked takes them out of the working set (it then
     * reports ERROR_NOT_LOCKED, expected); the view stays mapped */
    if (m && m->data) (void)VirtualUnlock((LPVOID)m->data, m->len);
}

void plat_unmap(plat_map *m) {
    if (m && m->data) UnmapViewOfFile(m->data);
    if (m) {
        m->data = NULL;
        m->len = 0;
    }
}

int plat_read_file(char *err, const char *path, size_t max_len, char **data_p, size_t *len_p) {
    *data_p = NULL;
    *len_p = 0;
    wchar_t *w = plat_utf8_to_w(path);
    if (!w) return bad_path(err, path);
    HANDLE f = CreateFileW(w, GENERIC_READ, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL,
                           OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
    free(w);
    if (f == INVALID_HANDLE_VALUE) return fail_last(err, path, "");
    LARGE_INTEGER sz;
    if (!GetFileSizeEx(f, &sz)) {
        int rc = fail_last(err, path, "size: ");
        CloseHandle(f);
        return rc;
    }
    if ((uint64_t)sz.QuadPart > max_len) {
        CloseHandle(f);
        return awq_seterr(err, AWQ_ETOOBIG, "%s: larger than %zu bytes", path, max_len);
    }
    /* read one byte past the size: a file that grew since GetFileSizeEx is caught too */
    size_t cap = (size_t)sz.QuadPart + 2, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        CloseHandle(f);
        return awq_seterr(err, AWQ_ENOMEM, "%s: out of memory", path);
    }
    for (;;) {
        DWORD want = (DWORD)((cap - 1 - len) > (1u << 30) ? (1u << 30) : (cap - 1 - len)), got = 0;
        if (want == 0) break;
        if (!ReadFile(f, buf + len, want, &got, NULL)) {
            int rc = fail_last(err, path, "read: ");
            free(buf);
            CloseHandle(f);
            return rc;
        }
        if (got == 0) break;
        len += got;
    }
    CloseHandle(f);
    if (len > max_len) {
        free(buf);
        return awq_seterr(err, AWQ_ETOOBIG, "%s: larger than %zu bytes", path, max_len);
    }
    buf[len] = 0;
    *data_p = buf;
    *len_p = len;
    return 0;
}

/* mode is ignored: the new file inherits its directory's ACL, which is how Windows keeps a
 * user's profile private (the key files that need more set their own DACL in ipc/). */
int plat_write_file_atomic(char *err, const char *path, const void *data, size_t len, int mode) {
    (void)mode;
    char tmp[PLAT_PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%lu", path, (unsigned long)GetCurrentProcessId()) >= (int)sizeof tmp)
        return awq_seterr(err, AWQ_ETOOBIG, "%s: path too long", path);
    wchar_t *wt = plat_utf8_to_w(tmp), *wp = plat_utf8_to_w(path);
    if (!wt || !wp) {
        free(wt);
        free(wp);
        return bad_path(err, path);
    }
    int rc = 0;
    HANDLE f = CreateFileW(wt, GENERIC_WRITE, 0, NULL, CREATE_ALWAYS, FILE_ATTRIBUTE_NORMAL, NULL);
    if (f == INVALID_HANDLE_VALUE) {
        rc = fail_last(err, tmp, "");
        goto out;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        DWORD put = 0, n = (DWORD)(left > (1u << 30) ? (1u << 30) : left);
        if (!WriteFile(f, p, n, &put, NULL) || put == 0) {
            rc = fail_last(err, tmp, "write: ");
            CloseHandle(f);
            DeleteFileW(wt);
            goto out;
        }
        p += put;
        left -= put;
    }
    /* FlushFileBuffers is fsync: the data is on disk before the rename makes it visible */
    if (!FlushFileBuffers(f)) {
        rc = fail_last(err, tmp, "flush: ");
        CloseHandle(f);
        DeleteFileW(wt);
        goto out;
    }
    CloseHandle(f);
    /* WRITE_THROUGH: MoveFileEx returns only once the rename itself is on disk, which is what
     * the directory fsync does on POSIX */
    if (!MoveFileExW(wt, wp, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH)) {
        rc = fail_last(err, path, "rename: ");
        DeleteFileW(wt);
    }
out:
    free(wt);
    free(wp);
    return rc;
}

/* Strip the \\?\ (or \\?\UNC\) prefix GetFinalPathNameByHandleW puts in front. */
static const wchar_t *strip_verbatim(wchar_t *w) {
    if (wcsncmp(w, L"\\\\?\\UNC\\", 8) == 0) {
        w[6] = L'\\'; /* \\?\UNC\server -> \\server */
        return w + 6;
    }
    if (wcsncmp(w, L"\\\\?\\", 4) == 0) return w + 4;
    return w;
}

int plat_realpath(char *err, const char *path, char *out) {
    wchar_t *w = plat_utf8_to_w(path);
    if (!w) return bad_path(err, path);
    /* open it (directories need BACKUP_SEMANTICS) so links and junctions resolve like realpath */
    HANDLE h = CreateFileW(w, 0, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL, OPEN_EXISTING,
                           FILE_FLAG_BACKUP_SEMANTICS, NULL);
    if (h == INVALID_HANDLE_VALUE) {
        free(w);
        return fail_last(err, path, "");
    }
    wchar_t buf[PLAT_PATH_MAX];
    DWORD n = GetFinalPathNameByHandleW(h, buf, PLAT_PATH_MAX, FILE_NAME_NORMALIZED | VOLUME_NAME_DOS);
    CloseHandle(h);
    const wchar_t *res = buf;
    if (n == 0 || n >= PLAT_PATH_MAX) {
        /* some file systems (and older wine) cannot name the handle: fall back to the lexical form */
        n = GetFullPathNameW(w, PLAT_PATH_MAX, buf, NULL);
        if (n == 0 || n >= PLAT_PATH_MAX) {
            free(w);
            return n == 0 ? fail_last(err, path, "") : awq_seterr(err, AWQ_ETOOBIG, "%s: path too long", path);
        }
    } else {
        res = strip_verbatim(buf);
    }
    free(w);
    if (!from_w(res, out, PLAT_PATH_MAX)) return awq_seterr(err, AWQ_ETOOBIG, "%s: path too long", path);
    return 0;
}

static DWORD attrs(const char *path) {
    wchar_t *w = plat_utf8_to_w(path);
    if (!w) return INVALID_FILE_ATTRIBUTES;
    DWORD a = GetFileAttributesW(w);
    free(w);
    return a;
}

bool plat_is_dir(const char *path) {
    DWORD a = attrs(path);
    return a != INVALID_FILE_ATTRIBUTES && (a & FILE_ATTRIBUTE_DIRECTORY);
}

bool plat_is_file(const char *path) {
    DWORD a = attrs(path);
    return a != INVALID_FILE_ATTRIBUTES && !(a & (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_DEVICE));
}

int plat_path_join(char *out, const char *dir, const char *name) {
    size_t dl = strlen(dir);
    bool sep = dl > 0 && (dir[dl - 1] == '/' || dir[dl - 1] == '\\');
    int n = sep ? snprintf(out, PLAT_PATH_MAX, "%s%s", dir, name) : snprintf(out, PLAT_PATH_MAX, "%s\\%s", dir, name);
    return (n < 0 || n >= PLAT_PATH_MAX) ? AWQ_ETOOBIG : 0;
}

static int mkdir_one(char *err, const char *p) {
    wchar_t *w = plat_utf8_to_w(p);
    if (!w) return bad_path(err, p);
    BOOL ok = CreateDirectoryW(w, NULL);
    DWORD e = GetLastError();
    free(w);
    if (!ok && e != ERROR_ALREADY_EXISTS) {
        char m[160];
        return awq_seterr(err, code_of(e), "%s: %s", p, win_msg(e, m, sizeof m));
    }
    return 0;
}

/* mode is ignored: new directories inherit their parent's ACL (see plat_write_file_atomic). */
int plat_mkdirs(char *err, const char *path, int mode) {
    (void)mode;
    char buf[PLAT_PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return awq_seterr(err, AWQ_ETOOBIG, "%s: path too long", path);
    /* skip what cannot be created: a drive ("C:\"), or the \\server\share of a UNC path */
    char *p = buf;
    if (((p[0] | 0x20) >= 'a' && (p[0] | 0x20) <= 'z') && p[1] == ':') p += 2;
    if ((p[0] == '\\' || p[0] == '/') && (p[1] == '\\' || p[1] == '/')) {
        p += 2;
        for (int parts = 0; *p && parts < 2; p++)
            if (*p == '\\' || *p == '/') parts++;
    }
    while (*p == '\\' || *p == '/') p++;
    for (; *p; p++) {
        if (*p != '/' && *p != '\\') continue;
        char c = *p;
        *p = 0;
        int rc = mkdir_one(err, buf);
        *p = c;
        if (rc) return rc;
    }
    int rc = mkdir_one(err, buf);
    if (rc) return rc;
    if (!plat_is_dir(buf)) return awq_seterr(err, AWQ_EIO, "%s: not a directory", buf);
    return 0;
}

/* ---------------------------------------------------------------- memory ---- */

void *plat_aligned_alloc(size_t align, size_t size) { return _aligned_malloc(size, align); }
void plat_aligned_free(void *p) { _aligned_free(p); }

void plat_heap_trim(void) { _heapmin(); }

/* ---------------------------------------------------------------- time ---- */

uint64_t plat_now_ns(void) {
    static LARGE_INTEGER freq; /* constant after boot; a racing first call writes the same value */
    if (freq.QuadPart == 0) QueryPerformanceFrequency(&freq);
    LARGE_INTEGER c;
    QueryPerformanceCounter(&c);
    uint64_t f = (uint64_t)freq.QuadPart, v = (uint64_t)c.QuadPart;
    /* split so v * 1e9 cannot overflow */
    return v / f * 1000000000ull + v % f * 1000000000ull / f;
}

uint64_t plat_wall_ms(void) {
    FILETIME ft;
    GetSystemTimePreciseAsFileTime(&ft);
    uint64_t t = (uint64_t)ft.dwHighDateTime << 32 | ft.dwLowDateTime; /* 100 ns since 1601 */
    return (t - 116444736000000000ull) / 10000u;
}

void plat_sleep_ms(unsigned ms) { Sleep(ms); }

/* ---------------------------------------------------------------- threads ---- */

int plat_ncpu(void) {
    DWORD n = GetActiveProcessorCount(ALL_PROCESSOR_GROUPS);
    return n > 0 ? (int)n : 1;
}

typedef struct tstart {
    void *(*fn)(void *);
    void *arg;
} tstart;

static unsigned __stdcall thread_main(void *p) {
    tstart t = *(tstart *)p;
    free(p);
    (void)t.fn(t.arg);
    return 0;
}

/* _beginthreadex rather than CreateThread: the C runtime sets up its per-thread state. */
int plat_thread_create(plat_thread *t, void *(*fn)(void *), void *arg) {
    tstart *s = malloc(sizeof *s);
    if (!s) return AWQ_ENOMEM;
    s->fn = fn;
    s->arg = arg;
    uintptr_t h = _beginthreadex(NULL, 0, thread_main, s, 0, NULL);
    if (!h) {
        free(s);
        return AWQ_ENOMEM;
    }
    t->h = (void *)h;
    return 0;
}

void plat_thread_join(plat_thread *t) {
    WaitForSingleObject(t->h, INFINITE);
    CloseHandle(t->h);
    t->h = NULL;
}

#define CS(m) ((CRITICAL_SECTION *)(void *)(m)->p)
#define CV(c) ((CONDITION_VARIABLE *)(void *)&(c)->p)

void plat_mutex_init(plat_mutex *m) { InitializeCriticalSection(CS(m)); }
void plat_mutex_destroy(plat_mutex *m) { DeleteCriticalSection(CS(m)); }
void plat_mutex_lock(plat_mutex *m) { EnterCriticalSection(CS(m)); }
void plat_mutex_unlock(plat_mutex *m) { LeaveCriticalSection(CS(m)); }

void plat_cond_init(plat_cond *c) { InitializeConditionVariable(CV(c)); }
void plat_cond_destroy(plat_cond *c) { (void)c; /* a CONDITION_VARIABLE holds no resources */ }
void plat_cond_wait(plat_cond *c, plat_mutex *m) { SleepConditionVariableCS(CV(c), CS(m), INFINITE); }
bool plat_cond_timedwait(plat_cond *c, plat_mutex *m, unsigned ms) {
    return SleepConditionVariableCS(CV(c), CS(m), ms) != 0;
}
void plat_cond_signal(plat_cond *c) { WakeConditionVariable(CV(c)); }
void plat_cond_broadcast(plat_cond *c) { WakeAllConditionVariable(CV(c)); }
