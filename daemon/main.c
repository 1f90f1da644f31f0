/* main.c - the awqd entry point: command line, settings, then the mode asked for.
 *
 * Today it offers --help, --version and --check-config (load the settings the daemon would
 * use, print them, exit 0, or print the file:line error and exit 1). Serving (the event loop,
 * scheduler and models) is added here by the daemon module; it will use the same settings path
 * and daemon/service.h for systemd readiness, socket activation, the lock and signals.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "plat.h"
#include "service.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: awqd [--config FILE] [--check-config [FILE]]\n"
            "       awqd --help | --version\n"
            "\n"
            "  --config FILE          read settings from FILE\n"
            "  --check-config [FILE]  load the settings (FILE, or those --config or the lookup\n"
            "                         order finds), print the effective values and exit:\n"
            "                         0 when valid, 1 with file:line and the reason when not\n"
            "  --version              print the version\n"
            "\n"
            "Settings lookup (the first file that exists wins; none: built-in defaults):\n"
            "  --config FILE, $AWQD_CONFIG, $XDG_CONFIG_HOME/awqd/awqd.ini (or\n"
            "  ~/.config/awqd/awqd.ini), /etc/awqd/awqd.ini. See docs/configuration.md.\n");
}

/* Load and print the settings; returns the process exit status. */
static int check_config(const char *path) {
    char err[AWQ_ERR_LEN], used[PLAT_PATH_MAX], sock[PLAT_PATH_MAX];
    cfg *c = malloc(sizeof *c); /* about 40 KB: keep it off the stack */
    if (!c) {
        fprintf(stderr, "awqd: out of memory\n");
        return 1;
    }
    int rc = cfg_load(err, path, c, used);
    if (rc) {
        fprintf(stderr, "awqd: %s\n", err);
        free(c);
        return 1;
    }
    awq_buf out = {0};
    rc = cfg_format(c, false, &out);
    if (!rc) rc = cfg_socket_path(err, c, sock);
    if (rc) {
        fprintf(stderr, "awqd: %s\n", rc == AWQ_ENOMEM ? "out of memory" : err);
        awq_buf_free(&out);
        free(c);
        return 1;
    }
    printf("# settings: %s\n", used[0] ? used : "built-in defaults (no settings file found)");
    printf("# socket: %s\n", sock);
    printf("%s", out.data ? out.data : "");
    awq_buf_free(&out);
    free(c);
    return 0;
}

int main(int argc, char **argv) {
    const char *config = NULL, *check = NULL;
    bool want_check = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("awqd %s\n", AWQD_VERSION);
            return 0;
        } else if (strcmp(a, "--config") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "awqd: --config needs a FILE\n");
                return 2;
            }
            config = argv[++i];
        } else if (strcmp(a, "--check-config") == 0) {
            want_check = true;
            if (i + 1 < argc && argv[i + 1][0] != '-') check = argv[++i];
        } else {
            fprintf(stderr, "awqd: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (want_check) return check_config(check ? check : config);
    fprintf(stderr, "awqd: this build has no serving mode yet; use --check-config (see --help)\n");
    return 2;
}
