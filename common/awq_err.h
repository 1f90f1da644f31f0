/* awq_err.h - the one error enum of the whole project.
 *
 * Every function that can fail returns 0 or a negative AWQ_E* code; human-readable detail goes
 * into a caller-owned buffer of AWQ_ERR_LEN bytes (which may be NULL). The numbers are stable:
 * the wire protocol sends them as they are, so a client can show the daemon's exact reason.
 * Never renumber; only append.
 *
 * Thread safety: everything here is pure and may be called from any thread.
 */
#ifndef AWQ_ERR_H
#define AWQ_ERR_H

#include <stddef.h>

#if defined(__GNUC__) || defined(__clang__)
#define AWQ_NODISCARD __attribute__((warn_unused_result))
#define AWQ_NONNULL(...) __attribute__((nonnull(__VA_ARGS__)))
#if defined(__MINGW32__)
/* mingw's "printf" format means the MS runtime's (no %zu); the build uses mingw's C99 stdio
 * (__USE_MINGW_ANSI_STDIO=1), whose formats are GNU's */
#define AWQ_PRINTF(f, a) __attribute__((format(gnu_printf, f, a)))
#else
#define AWQ_PRINTF(f, a) __attribute__((format(printf, f, a)))
#endif
#else
#define AWQ_NODISCARD
#define AWQ_NONNULL(...)
#define AWQ_PRINTF(f, a)
#endif

/* Size of the caller's error-detail buffer. */
#define AWQ_ERR_LEN 256

enum awq_err {
    AWQ_OK = 0,
    AWQ_EINVAL = -1,       /* invalid argument or option value */
    AWQ_ENOMEM = -2,       /* out of memory (host or device) */
    AWQ_EIO = -3,          /* I/O error on a file or socket */
    AWQ_EFORMAT = -4,      /* malformed file: safetensors, JSON, config, tokenizer */
    AWQ_EUNSUPPORTED = -5, /* valid but not supported (architecture, quantization, syntax) */
    AWQ_ERANGE = -6,       /* a value outside its limit */
    AWQ_ENOTFOUND = -7,    /* file, tensor, key, request id or model not found */
    AWQ_EPROTO = -8,       /* wire-protocol violation */
    AWQ_ETOOBIG = -9,      /* frame or input larger than the configured maximum */
    AWQ_EBUSY = -10,       /* queue full: try again later */
    AWQ_ECANCELED = -11,   /* request cancelled */
    AWQ_ETIMEDOUT = -12,   /* timed out */
    AWQ_EPERM = -13,       /* permission denied (peer not allowed, key file mode, path outside roots) */
    AWQ_ECRYPTO = -14,     /* authentication or decryption failure */
    AWQ_ECLOSED = -15,     /* connection closed */
    AWQ_ENOMODEL = -16,    /* no model loaded */
    AWQ_ECONTEXT = -17,    /* prompt or generation exceeds the context length */
    AWQ_EUTF8 = -18,       /* invalid UTF-8 */
    AWQ_EDEVICE = -19,     /* GPU / CUDA error */
    AWQ_EEXIST = -20,      /* already exists (duplicate request id, second daemon, file) */
    AWQ_EAGAIN = -21,      /* would block: call again */
    AWQ_EINTERNAL = -22,   /* a bug: please report */
    AWQ_ESTATE = -23,      /* not possible in the current state (e.g. model still loading) */
    AWQ_ETEMPLATE = -24,   /* chat template error (syntax or raise_exception) */
    AWQ_ESHUTDOWN = -25,   /* server shutting down */
};

#define AWQ_ERR_MIN (-25)

/* A short English sentence for code (never NULL; unknown codes get a generic text). */
const char *awq_strerror(int code);
/* A stable snake_case name for code, as sent on the wire ("invalid_argument", ...). */
const char *awq_errname(int code);
/* The code for a wire name, or AWQ_EINTERNAL if unknown. */
int awq_errcode(const char *name);

/* Format detail into err (AWQ_ERR_LEN bytes) when err is not NULL; returns code, so callers can
 * write `return awq_seterr(err, AWQ_EFORMAT, "%s: bad dtype", name);`. */
int awq_seterr(char *err, int code, const char *fmt, ...) AWQ_PRINTF(3, 4);

#endif
