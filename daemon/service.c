/* service.c - the part of the service-manager interface (service.h) that is the same on every
 * platform: the status line. The notification itself (sd_notify datagram on Linux, SCM status
 * on Windows) lives in service_linux.c / service_win.c. */
#include "service.h"

#include <stdarg.h>
#include <stdio.h>

int awqd_svc_status(char *err, const char *fmt, ...) {
    char msg[512];
    int head = snprintf(msg, sizeof msg, "STATUS=");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + head, sizeof msg - (size_t)head, fmt, ap);
    va_end(ap);
    /* one status line: a newline would start another assignment in the protocol */
    for (char *p = msg; *p; p++)
        if (*p == '\n') *p = ' ';
    return awqd_svc_notify(err, msg);
}
