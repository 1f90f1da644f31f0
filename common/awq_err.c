/* awq_err.c - error names and messages; see awq_err.h. */
#include "awq_err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const struct {
    int code;
    const char *name;
    const char *text;
} errs[] = {
    {AWQ_OK, "ok", "success"},
    {AWQ_EINVAL, "invalid_argument", "invalid argument"},
    {AWQ_ENOMEM, "out_of_memory", "out of memory"},
    {AWQ_EIO, "io_error", "input/output error"},
    {AWQ_EFORMAT, "bad_format", "malformed file or data"},
    {AWQ_EUNSUPPORTED, "unsupported", "not supported"},
    {AWQ_ERANGE, "out_of_range", "value out of range"},
    {AWQ_ENOTFOUND, "not_found", "not found"},
    {AWQ_EPROTO, "protocol_error", "protocol error"},
    {AWQ_ETOOBIG, "too_big", "too big"},
    {AWQ_EBUSY, "busy", "server busy, try again later"},
    {AWQ_ECANCELED, "canceled", "canceled"},
    {AWQ_ETIMEDOUT, "timed_out", "timed out"},
    {AWQ_EPERM, "permission_denied", "permission denied"},
    {AWQ_ECRYPTO, "crypto_error", "authentication or decryption failed"},
    {AWQ_ECLOSED, "closed", "connection closed"},
    {AWQ_ENOMODEL, "no_model", "no model loaded"},
    {AWQ_ECONTEXT, "context_exceeded", "context length exceeded"},
    {AWQ_EUTF8, "invalid_utf8", "invalid UTF-8"},
    {AWQ_EDEVICE, "device_error", "GPU device error"},
    {AWQ_EEXIST, "exists", "already exists"},
    {AWQ_EAGAIN, "again", "resource temporarily unavailable"},
    {AWQ_EINTERNAL, "internal", "internal error"},
    {AWQ_ESTATE, "bad_state", "not possible in the current state"},
    {AWQ_ETEMPLATE, "template_error", "chat template error"},
    {AWQ_ESHUTDOWN, "shutting_down", "server shutting down"},
};

#define NERRS (sizeof errs / sizeof errs[0])

const char *awq_strerror(int code) {
    for (size_t i = 0; i < NERRS; i++)
        if (errs[i].code == code) return errs[i].text;
    return "unknown error";
}

const char *awq_errname(int code) {
    for (size_t i = 0; i < NERRS; i++)
        if (errs[i].code == code) return errs[i].name;
    return "internal";
}

int awq_errcode(const char *name) {
    for (size_t i = 0; i < NERRS; i++)
        if (strcmp(errs[i].name, name) == 0) return errs[i].code;
    return AWQ_EINTERNAL;
}

int awq_seterr(char *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, AWQ_ERR_LEN, fmt, ap);
        va_end(ap);
    }
    return code;
}
