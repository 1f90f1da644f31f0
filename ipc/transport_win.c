/* transport_win.c - transport.h on Windows named pipes (\\.\pipe\NAME, default \\.\pipe\awqd).
 *
 * Pipe safety (docs/windows.md; threat model rows 3-4):
 *  - an explicit, protected DACL: full access for our user and SYSTEM, read/write (but not
 *    FILE_CREATE_PIPE_INSTANCE) for an optional group, and a deny for network logons; the
 *    default DACL would let Everyone read and anonymous users in;
 *  - PIPE_REJECT_REMOTE_CLIENTS: no SMB clients;
 *  - FILE_FLAG_FIRST_PIPE_INSTANCE on the first instance, so a squatter that created the name
 *    first makes us fail instead of sharing its pipe, plus a named mutex Local\awqd-NAME
 *    (ERROR_ALREADY_EXISTS = a second server) because some implementations (wine) ignore the flag;
 *  - clients open with SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION: a server may learn who
 *    the client is but cannot act as the client (impersonation).
 * The peer's identity is its process id (GetNamedPipeClientProcessId); Windows users are SIDs,
 * not uids, so ipc_peer.uid/gid are 0 and the DACL is the access check (see server.c).
 *
 * I/O is overlapped; win_io.h explains how completions become the readiness loop.h promises.
 */
#include "win_io.h"

#include "transport.h"

#include <sddl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loop.h"
#include "plat.h"

#define PIPE_PREFIX "\\\\.\\pipe\\"
#define PIPE_PREFIX_LEN 9
#define PIPE_BUF_BYTES (64u << 10) /* the pipe's buffers, and each end's read/write buffer */
#define LISTEN_POOL 4              /* instances waiting for clients: a burst finds one free */
#define CONNECT_WAIT_MS 5000       /* a client waits this long for a free instance */
/* the optional group's rights: read/write data, attributes and EAs, READ_CONTROL, SYNCHRONIZE;
 * not FILE_CREATE_PIPE_INSTANCE (= FILE_APPEND_DATA, part of GENERIC_WRITE), so a member cannot
 * add instances of its own and catch other clients */
#define GROUP_RIGHTS "0x0012019b"

struct ipc_sock {
    ipc_wio io; /* first: the loop hands it back as the object */
    HANDLE h;
    bool server_end;
    OVERLAPPED rov; /* one read in flight into rbuf; rbuf[roff..rlen) not consumed yet */
    bool rpending;
    DWORD rerr; /* the read failed: the peer is gone (or worse) */
    uint8_t *rbuf;
    size_t roff, rlen;
    OVERLAPPED wov; /* at most one write in flight from wbuf */
    bool wpending;
    DWORD werr;
    uint8_t *wbuf;
};

typedef struct inst {
    HANDLE h; /* NULL: empty, refilled by listener_ready */
    OVERLAPPED ov;
    bool pending, connected;
} inst;

struct ipc_listener {
    ipc_wio io;
    wchar_t *wname;
    HANDLE mutex;
    PSECURITY_DESCRIPTOR sd; /* LocalAlloc'ed by the SDDL converter */
    inst pool[LISTEN_POOL];
    char path[IPC_PATH_MAX];
};

/* ------------------------------------------------------------ helpers ---- */

static const char *win_msg(DWORD e, char *buf, size_t n) {
    DWORD k = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, e,
                             MAKELANGID(LANG_ENGLISH, SUBLANG_DEFAULT), buf, (DWORD)n, NULL);
    if (k == 0) snprintf(buf, n, "Windows error %lu", (unsigned long)e);
    while (k > 0 && (buf[k - 1] == '\n' || buf[k - 1] == '\r' || buf[k - 1] == ' ' || buf[k - 1] == '.')) buf[--k] = 0;
    return buf;
}

static bool is_closed(DWORD e) {
    return e == ERROR_BROKEN_PIPE || e == ERROR_PIPE_NOT_CONNECTED || e == ERROR_NO_DATA ||
           e == ERROR_NETNAME_DELETED || e == ERROR_OPERATION_ABORTED;
}

/* "\\.\pipe\NAME" or a bare NAME -> the full pipe name in out (IPC_PATH_MAX). */
static int pipe_name(char *err, const char *path, char *out) {
    const char *name = path;
    if (strncmp(path, PIPE_PREFIX, PIPE_PREFIX_LEN) == 0) name = path + PIPE_PREFIX_LEN;
    else if (strpbrk(path, "\\/:"))
        return awq_seterr(err, AWQ_EINVAL, "pipe name %s: give \\\\.\\pipe\\NAME or a bare NAME", path);
    if (!*name) return awq_seterr(err, AWQ_EINVAL, "pipe name is empty");
    if (PIPE_PREFIX_LEN + strlen(name) >= IPC_PATH_MAX)
        return awq_seterr(err, AWQ_EINVAL, "pipe name %s is longer than %d bytes", path, IPC_PATH_MAX - 1);
    snprintf(out, IPC_PATH_MAX, "%s%s", PIPE_PREFIX, name);
    return 0;
}

int ipc_default_socket_path(char *err, char *out, size_t n) {
    if (n < sizeof PIPE_PREFIX "awqd") return awq_seterr(err, AWQ_ETOOBIG, "buffer too small for the pipe name");
    snprintf(out, n, "%sawqd", PIPE_PREFIX);
    return 0;
}

/* The pipe's security descriptor as SDDL: protected DACL (no inherited ACEs); deny network
 * logons; SYSTEM and our user: full; the group (a SID "S-1-..." or an account name): data only. */
static int make_sd(char *err, const char *group, PSECURITY_DESCRIPTOR *out) {
    *out = NULL;
    HANDLE tok;
    union {
        TOKEN_USER tu;
        uint8_t b[256];
    } u;
    DWORD n = 0;
    if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &tok))
        return awq_seterr(err, AWQ_EIO, "cannot read this process's user (error %lu)", (unsigned long)GetLastError());
    BOOL ok = GetTokenInformation(tok, TokenUser, &u, sizeof u, &n);
    CloseHandle(tok);
    char *user = NULL, *grp = NULL;
    if (!ok || !ConvertSidToStringSidA(u.tu.User.Sid, &user))
        return awq_seterr(err, AWQ_EIO, "cannot read this process's user SID (error %lu)", (unsigned long)GetLastError());
    int rc = 0;
    if (group && *group) {
        PSID sid = NULL;
        uint8_t sidbuf[SECURITY_MAX_SID_SIZE];
        char dom[256];
        DWORD sl = sizeof sidbuf, dl = sizeof dom;
        SID_NAME_USE use;
        if (strncmp(group, "S-", 2) == 0) {
            if (ConvertStringSidToSidA(group, &sid)) {
                if (!ConvertSidToStringSidA(sid, &grp)) grp = NULL;
                LocalFree(sid);
            }
        } else if (LookupAccountNameA(NULL, group, sidbuf, &sl, dom, &dl, &use)) {
            if (!ConvertSidToStringSidA(sidbuf, &grp)) grp = NULL;
        }
        if (!grp) {
            rc = awq_seterr(err, AWQ_EINVAL, "pipe group %s: no such group or SID", group);
            goto out;
        }
    }
    char sddl[512];
    int k = snprintf(sddl, sizeof sddl, "D:P(D;;GA;;;NU)(A;;GA;;;SY)(A;;GA;;;%s)", user);
    if (grp) k += snprintf(sddl + k, sizeof sddl - (size_t)k, "(A;;" GROUP_RIGHTS ";;;%s)", grp);
    if (k >= (int)sizeof sddl || !ConvertStringSecurityDescriptorToSecurityDescriptorA(sddl, SDDL_REVISION_1, out, NULL))
        rc = awq_seterr(err, AWQ_EIO, "cannot build the pipe's security descriptor (error %lu)",
                        (unsigned long)GetLastError());
out:
    LocalFree(user);
    if (grp) LocalFree(grp);
    return rc;
}

/* ------------------------------------------------------------ streams ---- */

static void start_read(ipc_sock *s) {
    if (s->rpending || s->rerr || s->roff < s->rlen) return;
    s->roff = s->rlen = 0;
    /* success or IO_PENDING: either way the result comes through rov (and a port packet) */
    if (ReadFile(s->h, s->rbuf, PIPE_BUF_BYTES, NULL, &s->rov) || GetLastError() == ERROR_IO_PENDING)
        s->rpending = true;
    else
        s->rerr = GetLastError();
}

static void harvest_read(ipc_sock *s) {
    if (!s->rpending || !HasOverlappedIoCompleted(&s->rov)) return;
    DWORD n = 0;
    s->rpending = false;
    if (GetOverlappedResult(s->h, &s->rov, &n, FALSE)) {
        s->roff = 0;
        s->rlen = n;
    } else {
        s->rerr = GetLastError();
        if (!s->rerr) s->rerr = ERROR_BROKEN_PIPE;
    }
}

static void harvest_write(ipc_sock *s) {
    if (!s->wpending || !HasOverlappedIoCompleted(&s->wov)) return;
    DWORD n = 0;
    s->wpending = false;
    if (!GetOverlappedResult(s->h, &s->wov, &n, FALSE)) {
        s->werr = GetLastError();
        if (!s->werr) s->werr = ERROR_BROKEN_PIPE;
    }
}

static unsigned sock_ready(ipc_wio *o) {
    ipc_sock *s = (ipc_sock *)o;
    harvest_read(s);
    harvest_write(s);
    if (!s->rpending && s->roff == s->rlen && !s->rerr) {
        start_read(s);
        harvest_read(s); /* it may have completed at once */
    }
    unsigned r = 0;
    if (s->roff < s->rlen || s->rerr) r |= IPC_LOOP_READ;
    if (s->rerr) r |= IPC_LOOP_HUP;
    if (!s->wpending) r |= IPC_LOOP_WRITE;
    return r;
}

static int sock_attach(ipc_wio *o, HANDLE port) {
    ipc_sock *s = (ipc_sock *)o;
    if (o->port == port) return 0;
    if (o->port) return AWQ_EINVAL; /* a handle belongs to one port for good */
    if (!CreateIoCompletionPort(s->h, port, IPC_WIO_KEY_IO, 0)) return AWQ_EIO;
    o->port = port;
    return 0;
}

/* Wrap h (takes it, also on failure) and start reading. */
static ipc_sock *sock_new(HANDLE h, bool server_end, HANDLE port) {
    ipc_sock *s = calloc(1, sizeof *s);
    if (s) {
        s->rbuf = malloc(PIPE_BUF_BYTES);
        s->wbuf = malloc(PIPE_BUF_BYTES);
        s->rov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
        s->wov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL);
    }
    if (!s || !s->rbuf || !s->wbuf || !s->rov.hEvent || !s->wov.hEvent) {
        if (s) {
            if (s->rov.hEvent) CloseHandle(s->rov.hEvent);
            if (s->wov.hEvent) CloseHandle(s->wov.hEvent);
            free(s->rbuf);
            free(s->wbuf);
            free(s);
        }
        CloseHandle(h);
        return NULL;
    }
    s->h = h;
    s->server_end = server_end;
    s->io.ready = sock_ready;
    s->io.attach = sock_attach;
    s->io.ops[0] = &s->rov;
    s->io.ops[1] = &s->wov;
    s->io.n_ops = 2;
    s->io.port = port;
    s->io.slot = -1;
    start_read(s);
    return s;
}

int ipc_sock_peer(const ipc_sock *s, ipc_peer *p) {
    ULONG pid = 0;
    BOOL ok = s->server_end ? GetNamedPipeClientProcessId(s->h, &pid) : GetNamedPipeServerProcessId(s->h, &pid);
    if (!ok) return AWQ_EIO;
    p->uid = p->gid = 0; /* no uids on Windows: the pipe's DACL decided who may connect */
    p->pid = (int64_t)pid;
    return 0;
}

intptr_t ipc_sock_handle(const ipc_sock *s) { return (intptr_t)&s->io; }

int ipc_sock_read(ipc_sock *s, void *buf, size_t n, size_t *got) {
    *got = 0;
    for (int tries = 0; tries < 2; tries++) {
        harvest_read(s);
        if (s->roff < s->rlen) {
            size_t k = s->rlen - s->roff < n ? s->rlen - s->roff : n;
            memcpy(buf, s->rbuf + s->roff, k);
            s->roff += k;
            *got = k;
            if (s->roff == s->rlen) start_read(s); /* keep one read in flight */
            return 0;
        }
        if (s->rerr) return is_closed(s->rerr) ? AWQ_ECLOSED : AWQ_EIO;
        if (s->rpending) return AWQ_EAGAIN;
        start_read(s); /* an empty completion: read again, and look once more */
    }
    return AWQ_EAGAIN;
}

int ipc_sock_write(ipc_sock *s, const void *buf, size_t n, size_t *put) {
    *put = 0;
    harvest_write(s);
    if (s->werr) return is_closed(s->werr) ? AWQ_ECLOSED : AWQ_EIO;
    if (s->wpending || n == 0) return AWQ_EAGAIN;
    size_t k = n < PIPE_BUF_BYTES ? n : PIPE_BUF_BYTES;
    memcpy(s->wbuf, buf, k);
    if (WriteFile(s->h, s->wbuf, (DWORD)k, NULL, &s->wov) || GetLastError() == ERROR_IO_PENDING) {
        /* ours to deliver from now on; a later failure shows on the next call, as with send() */
        s->wpending = true;
        *put = k;
        return 0;
    }
    s->werr = GetLastError();
    return is_closed(s->werr) ? AWQ_ECLOSED : AWQ_EIO;
}

int ipc_sock_wait(ipc_sock *s, bool write, int timeout_ms) {
    DWORD t = timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms;
    HANDLE ev;
    if (write) {
        harvest_write(s);
        if (!s->wpending) return 0;
        ev = s->wov.hEvent;
    } else {
        harvest_read(s);
        if (s->roff < s->rlen || s->rerr) return 0;
        if (!s->rpending) start_read(s);
        if (!s->rpending) return 0; /* failed at once: the read reports it */
        ev = s->rov.hEvent;
    }
    DWORD r = WaitForSingleObject(ev, t);
    return r == WAIT_OBJECT_0 ? 0 : r == WAIT_TIMEOUT ? AWQ_ETIMEDOUT : AWQ_EIO;
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
    /* a client's last request should reach the server: give a pending write a moment (a server
     * never waits on a client) */
    if (s->wpending && !s->server_end) WaitForSingleObject(s->wov.hEvent, 1000);
    harvest_read(s);
    harvest_write(s);
    if (s->rpending || s->wpending) {
        CancelIoEx(s->h, NULL);
        DWORD n;
        /* the kernel writes into rov/wov and the buffers until the cancel completes */
        if (s->rpending) GetOverlappedResult(s->h, &s->rov, &n, TRUE);
        if (s->wpending) GetOverlappedResult(s->h, &s->wov, &n, TRUE);
    }
    /* CloseHandle, not DisconnectNamedPipe: what we wrote stays readable by the peer */
    CloseHandle(s->h);
    CloseHandle(s->rov.hEvent);
    CloseHandle(s->wov.hEvent);
    free(s->rbuf);
    free(s->wbuf);
    free(s);
}

int ipc_connect(char *err, const char *path, ipc_sock **out) {
    *out = NULL;
    char full[IPC_PATH_MAX];
    int rc = pipe_name(err, path, full);
    if (rc) return rc;
    wchar_t *w = plat_utf8_to_w(full);
    if (!w) return awq_seterr(err, AWQ_EINVAL, "pipe name %s: not valid UTF-8", full);
    uint64_t end = plat_now_ns() + (uint64_t)CONNECT_WAIT_MS * 1000000u;
    HANDLE h;
    for (;;) {
        /* SQOS identification: the server may identify us but never impersonate us */
        h = CreateFileW(w, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                        FILE_FLAG_OVERLAPPED | SECURITY_SQOS_PRESENT | SECURITY_IDENTIFICATION, NULL);
        if (h != INVALID_HANDLE_VALUE) break;
        DWORD e = GetLastError();
        uint64_t now = plat_now_ns();
        if (e == ERROR_PIPE_BUSY && now < end) { /* every instance taken: wait for a free one */
            WaitNamedPipeW(w, (DWORD)((end - now) / 1000000u) + 1);
            continue;
        }
        free(w);
        char m[160];
        if (e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND)
            return awq_seterr(err, AWQ_ENOTFOUND, "connect %s: no such pipe (is awqd running?)", full);
        if (e == ERROR_ACCESS_DENIED)
            return awq_seterr(err, AWQ_EPERM, "connect %s: access denied (the pipe admits only its owner, SYSTEM "
                              "and a configured group)", full);
        if (e == ERROR_PIPE_BUSY)
            return awq_seterr(err, AWQ_EBUSY, "connect %s: every pipe instance stayed busy for %d ms", full,
                              CONNECT_WAIT_MS);
        return awq_seterr(err, AWQ_EIO, "connect %s: %s", full, win_msg(e, m, sizeof m));
    }
    free(w);
    ipc_sock *s = sock_new(h, false, NULL);
    if (!s) return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    *out = s;
    return 0;
}

/* ------------------------------------------------------------ listener ---- */

/* Open pool slot i: a new pipe instance waiting for a client. */
static int inst_open(char *err, ipc_listener *l, int i, bool first) {
    inst *in = &l->pool[i];
    SECURITY_ATTRIBUTES sa = {sizeof sa, l->sd, FALSE};
    for (int tries = 0; tries < 3; tries++) {
        HANDLE h = CreateNamedPipeW(l->wname, PIPE_ACCESS_DUPLEX | FILE_FLAG_OVERLAPPED |
                                                  (first ? FILE_FLAG_FIRST_PIPE_INSTANCE : 0),
                                    PIPE_TYPE_BYTE | PIPE_READMODE_BYTE | PIPE_WAIT | PIPE_REJECT_REMOTE_CLIENTS,
                                    PIPE_UNLIMITED_INSTANCES, PIPE_BUF_BYTES, PIPE_BUF_BYTES, 0, &sa);
        if (h == INVALID_HANDLE_VALUE) {
            DWORD e = GetLastError();
            char m[160];
            if (first && (e == ERROR_ACCESS_DENIED || e == ERROR_PIPE_BUSY))
                return awq_seterr(err, AWQ_EEXIST, "%s already exists (another server, or another program holding "
                                  "the name); refusing to share it", l->path);
            return awq_seterr(err, AWQ_EIO, "CreateNamedPipe %s: %s", l->path, win_msg(e, m, sizeof m));
        }
        if (l->io.port && !CreateIoCompletionPort(h, l->io.port, IPC_WIO_KEY_IO, 0)) {
            CloseHandle(h);
            return awq_seterr(err, AWQ_EIO, "%s: cannot attach to the I/O port", l->path);
        }
        in->h = h;
        in->pending = in->connected = false;
        ResetEvent(in->ov.hEvent);
        if (ConnectNamedPipe(h, &in->ov)) {
            in->connected = true;
            return 0;
        }
        DWORD e = GetLastError();
        if (e == ERROR_IO_PENDING) {
            in->pending = true;
            return 0;
        }
        if (e == ERROR_PIPE_CONNECTED) { /* a client came between create and connect: no packet */
            in->connected = true;
            return 0;
        }
        CloseHandle(h); /* ERROR_NO_DATA: that client already left; take a fresh instance */
        in->h = NULL;
        first = false;
    }
    return awq_seterr(err, AWQ_EIO, "%s: clients keep leaving before they are accepted", l->path);
}

static unsigned listener_ready(ipc_wio *o) {
    ipc_listener *l = (ipc_listener *)o;
    unsigned r = 0;
    for (int i = 0; i < LISTEN_POOL; i++) {
        inst *in = &l->pool[i];
        if (in->h && in->pending && HasOverlappedIoCompleted(&in->ov)) {
            DWORD n;
            in->pending = false;
            if (GetOverlappedResult(in->h, &in->ov, &n, FALSE)) {
                in->connected = true;
            } else { /* the client left before the connect finished */
                CloseHandle(in->h);
                in->h = NULL;
            }
        }
        if (!in->h && inst_open(NULL, l, i, false) != 0) continue; /* out of resources: next time */
        if (in->connected) r |= IPC_LOOP_READ;
    }
    return r;
}

static int listener_attach(ipc_wio *o, HANDLE port) {
    ipc_listener *l = (ipc_listener *)o;
    if (o->port == port) return 0;
    if (o->port) return AWQ_EINVAL;
    for (int i = 0; i < LISTEN_POOL; i++)
        if (l->pool[i].h && !CreateIoCompletionPort(l->pool[i].h, port, IPC_WIO_KEY_IO, 0)) return AWQ_EIO;
    o->port = port;
    /* a connect that completed before the association posted no packet: the loop's first look
     * (ipc_loop_add queues every new object) sees it */
    return 0;
}

int ipc_listen(char *err, const ipc_listen_opts *o, ipc_listener **out) {
    *out = NULL;
    if (o->listen_fd >= 0)
        return awq_seterr(err, AWQ_EUNSUPPORTED, "an inherited listening socket (socket activation) does not exist "
                          "on Windows");
    if (!o->path || !*o->path) return awq_seterr(err, AWQ_EINVAL, "pipe name is empty");
    ipc_listener *l = calloc(1, sizeof *l);
    if (!l) return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    l->io.ready = listener_ready;
    l->io.attach = listener_attach;
    l->io.slot = -1;
    l->io.n_ops = LISTEN_POOL;
    int rc;
    for (int i = 0; i < LISTEN_POOL; i++) {
        l->io.ops[i] = &l->pool[i].ov;
        if (!(l->pool[i].ov.hEvent = CreateEventW(NULL, TRUE, FALSE, NULL))) {
            rc = awq_seterr(err, AWQ_ENOMEM, "out of event handles");
            goto fail;
        }
    }
    if ((rc = pipe_name(err, o->path, l->path))) goto fail;
    if (!(l->wname = plat_utf8_to_w(l->path))) {
        rc = awq_seterr(err, AWQ_EINVAL, "pipe name %s: not valid UTF-8", l->path);
        goto fail;
    }
    if ((rc = make_sd(err, o->pipe_group, &l->sd))) goto fail;
    /* the single-instance lock: Local\awqd-NAME ('\' is the namespace separator in object names) */
    char mname[IPC_PATH_MAX + 16];
    snprintf(mname, sizeof mname, "Local\\awqd-%s", l->path + PIPE_PREFIX_LEN);
    for (char *p = mname + 6; *p; p++)
        if (*p == '\\') *p = '_';
    wchar_t *wm = plat_utf8_to_w(mname);
    if (!wm) {
        rc = awq_seterr(err, AWQ_ENOMEM, "out of memory");
        goto fail;
    }
    SECURITY_ATTRIBUTES sa = {sizeof sa, l->sd, FALSE};
    l->mutex = CreateMutexW(&sa, FALSE, wm);
    DWORD e = GetLastError();
    free(wm);
    if (!l->mutex) {
        char m[160];
        rc = awq_seterr(err, e == ERROR_ACCESS_DENIED ? AWQ_EEXIST : AWQ_EIO,
                        "cannot take the lock %s for %s: %s%s", mname, l->path, win_msg(e, m, sizeof m),
                        e == ERROR_ACCESS_DENIED ? " (another user's server holds it)" : "");
        goto fail;
    }
    if (e == ERROR_ALREADY_EXISTS) {
        rc = awq_seterr(err, AWQ_EEXIST, "another server is already listening on %s (it holds %s)", l->path, mname);
        goto fail;
    }
    for (int i = 0; i < LISTEN_POOL; i++)
        if ((rc = inst_open(err, l, i, i == 0))) goto fail;
    *out = l;
    return 0;
fail:
    ipc_listener_free(l);
    return rc;
}

void ipc_listener_free(ipc_listener *l) {
    if (!l) return;
    for (int i = 0; i < LISTEN_POOL; i++) {
        inst *in = &l->pool[i];
        if (in->h) {
            if (in->pending && !HasOverlappedIoCompleted(&in->ov)) {
                DWORD n;
                CancelIoEx(in->h, &in->ov);
                GetOverlappedResult(in->h, &in->ov, &n, TRUE);
            }
            CloseHandle(in->h);
        }
        if (in->ov.hEvent) CloseHandle(in->ov.hEvent);
    }
    if (l->mutex) CloseHandle(l->mutex);
    if (l->sd) LocalFree(l->sd);
    free(l->wname);
    free(l);
}

intptr_t ipc_listener_handle(const ipc_listener *l) { return (intptr_t)&l->io; }
const char *ipc_listener_path(const ipc_listener *l) { return l->path; }

int ipc_accept(char *err, ipc_listener *l, ipc_sock **out) {
    *out = NULL;
    (void)listener_ready(&l->io);
    for (int i = 0; i < LISTEN_POOL; i++) {
        inst *in = &l->pool[i];
        if (!in->connected) continue;
        ipc_sock *s = sock_new(in->h, true, l->io.port);
        in->h = NULL;
        in->connected = false;
        /* refill at once so the name keeps free instances; on failure listener_ready retries */
        (void)inst_open(NULL, l, i, false);
        if (!s) return awq_seterr(err, AWQ_ENOMEM, "out of memory");
        *out = s;
        return 0;
    }
    return AWQ_EAGAIN;
}
