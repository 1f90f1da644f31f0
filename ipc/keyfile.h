/* keyfile.h - the OS part of key files (private to ipc/keys.c): reading a secret that only its
 * owner can read, and creating a new key file without ever replacing one. keyfile_posix.c
 * checks the owner and the mode bits, as ssh does; keyfile_win.c the owner and the DACL.
 *
 * Thread safety: no shared state.
 */
#ifndef IPC_KEYFILE_H
#define IPC_KEYFILE_H

#include <stdbool.h>
#include <stddef.h>

#include "awq_err.h"

/* Read at most cap - 1 bytes of the secret key file path into buf (caller wipes it) once the
 * file is checked: a regular file, not a symlink, owned by us, readable by nobody else
 * (AWQ_EPERM with the fix in the message otherwise; AWQ_ENOTFOUND when missing). */
AWQ_NODISCARD int ipc_keyfile_read_private(char *err, const char *path, char *buf, size_t cap, size_t *len_p)
    AWQ_NONNULL(2, 3, 5);

/* Create path holding text: AWQ_EEXIST (message "... (not overwriting a key)") when something is
 * there. secret: only we may read it (0600 / an owner-only DACL); else anyone may (0644 / the
 * directory's inherited ACL). A failed write removes the file. */
AWQ_NODISCARD int ipc_keyfile_create(char *err, const char *path, const void *text, size_t len, bool secret)
    AWQ_NONNULL(2, 3);

#endif
