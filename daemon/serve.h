/* serve.h - awqd's serving mode, run by main on the main thread: settings, logger, lock,
 * socket (or the one systemd passed), the I/O and engine threads, readiness notification, then
 * signals until a drain (SIGTERM, SIGINT, a "shutdown" request) ends it.
 *
 * Exit status: 0 after a drain; 1 when starting failed (the reason on stderr and in the log:
 * bad settings, another daemon holding the lock, a socket that cannot be opened).
 *
 * Thread safety: call once, from the main thread.
 */
#ifndef AWQD_SERVE_H
#define AWQD_SERVE_H

#include "awqd.h"

/* config: --config FILE or NULL (the lookup order of cfg_find_path). */
int awqd_serve(const char *config, const awqd_overrides *ov);

#endif
