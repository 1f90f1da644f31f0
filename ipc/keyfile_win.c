/* keyfile_win.c - keyfile.h on Windows: the owner and the DACL take the place of uid and mode.
 *
 * A secret key file is accepted when it is owned by us (or SYSTEM / Administrators, who own
 * files made by elevated tools) and its DACL lets nobody else read it; SYSTEM and
 * Administrators may, as Windows OpenSSH allows for its private keys, since they can read
 * anything anyway. A file with no DACL at all is readable by everyone and refused.
 */
#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0A00
#endif
#define WIN32_LEAN_AND_MEAN
#include "keyfile.h"
#include "plat.h"

#include <windows.h>
#include <aclapi.h>
#include <sddl.h>
#include <stdio.h>
#include <stdlib.h>

static const char *win_msg(DWORD e, char *buf, size_t n) {
    DWORD k = FormatMessageA(FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, NULL, e,
                             MAKELANGID(LANG_ENGLISH, SUBLANG_DEFAULT), buf, (DWORD)n, NULL);
    if (k == 0) snprintf(buf, n, "Windows error %lu", (unsigned long)e);
    while (k > 0 && (buf[k - 1] == '\n' || buf[k - 1] == '\r' || buf[k - 1] == ' ' || buf[k - 1] == '.')) buf[--k] = 0;
    return buf;
}

/* This process's user SID into buf (SECURITY_MAX_SID_SIZE bytes). */
static bool my_sid(PSID buf) {
    HANDLE tok;
    union {
        TOKEN_USER tu;
        BYTE b[256];
    } u;
    DWORD n = 0;
    if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &tok)) return false;
    BOOL ok = GetTokenInformation(tok, TokenUser, &u, sizeof u, &n);
    CloseHandle(tok);
    return ok && CopySid(SECURITY_MAX_SID_SIZE, buf, u.tu.User.Sid);
}

/* "DOMAIN\name" of sid, or its S-1-... form. */
static void sid_name(PSID sid, char *out, size_t n) {
    char name[128], dom[128];
    DWORD nl = sizeof name, dl = sizeof dom;
    SID_NAME_USE use;
    char *s = NULL;
    if (LookupAccountSidA(NULL, sid, name, &nl, dom, &dl, &use)) snprintf(out, n, "%s%s%s", dom, *dom ? "\\" : "", name);
    else if (ConvertSidToStringSidA(sid, &s)) snprintf(out, n, "%s", s);
    else snprintf(out, n, "an unknown account");
    if (s) LocalFree(s);
}

static bool trusted(PSID sid, PSID me) {
    return EqualSid(sid, me) || IsWellKnownSid(sid, WinLocalSystemSid) || IsWellKnownSid(sid, WinBuiltinAdministratorsSid);
}

/* The owner and DACL check of an open key file. */
static int check_private(char *err, const char *path, HANDLE h) {
    BYTE me[SECURITY_MAX_SID_SIZE];
    if (!my_sid(me)) return awq_seterr(err, AWQ_EIO, "key file %s: cannot read this process's user", path);
    PSID owner = NULL;
    PACL dacl = NULL;
    PSECURITY_DESCRIPTOR sd = NULL;
    DWORD e = GetSecurityInfo(h, SE_FILE_OBJECT, OWNER_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION, &owner, NULL,
                              &dacl, NULL, &sd);
    char m[160];
    if (e != ERROR_SUCCESS) return awq_seterr(err, AWQ_EIO, "key file %s: cannot read its ACL: %s", path, win_msg(e, m, sizeof m));
    int rc = 0;
    char who[300];
    if (!owner || !trusted(owner, me)) {
        if (owner) sid_name(owner, who, sizeof who);
        rc = awq_seterr(err, AWQ_EPERM, "key file %s is owned by %s, not by you", path, owner ? who : "nobody");
        goto out;
    }
    if (!dacl) {
        rc = awq_seterr(err, AWQ_EPERM, "key file %s has no DACL, so everyone can read it; run: icacls \"%s\" "
                        "/inheritance:r /grant:r \"%%USERNAME%%:F\"", path, path);
        goto out;
    }
    for (DWORD i = 0; i < dacl->AceCount; i++) {
        ACE_HEADER *hdr;
        if (!GetAce(dacl, i, (void **)&hdr) || hdr->AceType != ACCESS_ALLOWED_ACE_TYPE) continue;
        ACCESS_ALLOWED_ACE *ace = (ACCESS_ALLOWED_ACE *)hdr;
        PSID sid = (PSID)&ace->SidStart;
        if (!(ace->Mask & (FILE_READ_DATA | GENERIC_READ | GENERIC_ALL | MAXIMUM_ALLOWED)) || trusted(sid, me)) continue;
        sid_name(sid, who, sizeof who);
        rc = awq_seterr(err, AWQ_EPERM, "key file %s is readable by %s (its DACL allows it); run: icacls \"%s\" "
                        "/inheritance:r /grant:r \"%%USERNAME%%:F\"", path, who, path);
        goto out;
    }
out:
    LocalFree(sd);
    return rc;
}

int ipc_keyfile_read_private(char *err, const char *path, char *buf, size_t cap, size_t *len_p) {
    *len_p = 0;
    wchar_t *w = plat_utf8_to_w(path);
    if (!w) return awq_seterr(err, AWQ_EINVAL, "key file %s: not valid UTF-8", path);
    char m[160];
    DWORD a = GetFileAttributesW(w);
    if (a == INVALID_FILE_ATTRIBUTES) {
        DWORD e = GetLastError();
        free(w);
        return awq_seterr(err, e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND ? AWQ_ENOTFOUND : AWQ_EIO,
                          "key file %s: %s", path, win_msg(e, m, sizeof m));
    }
    if (a & FILE_ATTRIBUTE_REPARSE_POINT) {
        free(w);
        return awq_seterr(err, AWQ_EPERM, "key file %s: is a symlink; refusing it", path);
    }
    if (a & FILE_ATTRIBUTE_DIRECTORY) {
        free(w);
        return awq_seterr(err, AWQ_EPERM, "key file %s is not a regular file", path);
    }
    /* OPEN_REPARSE_POINT: a link swapped in after the check is opened as itself, not followed */
    HANDLE h = CreateFileW(w, GENERIC_READ | READ_CONTROL, FILE_SHARE_READ, NULL, OPEN_EXISTING,
                           FILE_ATTRIBUTE_NORMAL | FILE_FLAG_OPEN_REPARSE_POINT, NULL);
    free(w);
    if (h == INVALID_HANDLE_VALUE)
        return awq_seterr(err, AWQ_EIO, "key file %s: %s", path, win_msg(GetLastError(), m, sizeof m));
    int rc = check_private(err, path, h);
    DWORD n = 0;
    if (!rc && cap && !ReadFile(h, buf, (DWORD)(cap - 1), &n, NULL))
        rc = awq_seterr(err, AWQ_EIO, "key file %s: %s", path, win_msg(GetLastError(), m, sizeof m));
    CloseHandle(h);
    if (!rc) *len_p = n;
    return rc;
}

int ipc_keyfile_create(char *err, const char *path, const void *text, size_t len, bool secret) {
    char m[160];
    PSECURITY_DESCRIPTOR sd = NULL;
    SECURITY_ATTRIBUTES sa = {sizeof sa, NULL, FALSE};
    if (secret) { /* protected DACL: SYSTEM, Administrators and us; nothing inherited */
        BYTE me[SECURITY_MAX_SID_SIZE];
        char *user = NULL, sddl[256];
        if (!my_sid(me) || !ConvertSidToStringSidA(me, &user))
            return awq_seterr(err, AWQ_EIO, "%s: cannot read this process's user", path);
        snprintf(sddl, sizeof sddl, "D:P(A;;FA;;;SY)(A;;FA;;;BA)(A;;FA;;;%s)", user);
        LocalFree(user);
        if (!ConvertStringSecurityDescriptorToSecurityDescriptorA(sddl, SDDL_REVISION_1, &sd, NULL))
            return awq_seterr(err, AWQ_EIO, "%s: cannot build an owner-only DACL", path);
        sa.lpSecurityDescriptor = sd;
    }
    wchar_t *w = plat_utf8_to_w(path);
    if (!w) {
        LocalFree(sd);
        return awq_seterr(err, AWQ_EINVAL, "%s: not valid UTF-8", path);
    }
    HANDLE h = CreateFileW(w, GENERIC_WRITE, 0, &sa, CREATE_NEW, FILE_ATTRIBUTE_NORMAL, NULL);
    DWORD e = GetLastError();
    LocalFree(sd);
    if (h == INVALID_HANDLE_VALUE) {
        free(w);
        bool exists = e == ERROR_FILE_EXISTS || e == ERROR_ALREADY_EXISTS;
        return awq_seterr(err, exists ? AWQ_EEXIST : AWQ_EIO, "%s: %s%s", path, win_msg(e, m, sizeof m),
                          exists ? " (not overwriting a key)" : "");
    }
    DWORD put = 0;
    BOOL ok = WriteFile(h, text, (DWORD)len, &put, NULL) && put == len && FlushFileBuffers(h);
    e = GetLastError();
    CloseHandle(h);
    if (!ok) DeleteFileW(w);
    free(w);
    if (!ok) return awq_seterr(err, AWQ_EIO, "%s: %s", path, win_msg(e, m, sizeof m));
    return 0;
}
