/* main.c - the awqd entry point: command line, settings, then the mode asked for.
 *
 * --help, --version and --check-config (load the settings the daemon would use, print them,
 * exit 0, or print the file:line error and exit 1); otherwise serve (daemon/serve.c) with the
 * command-line overrides applied on top of the settings file.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"
#include "log.h"
#include "plat.h"
#include "serve.h"
#include "service.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: awqd [--config FILE] [--socket PATH] [--model DIR] [--device auto|cpu|cuda]\n"
            "            [--threads N] [--ctx N] [--log-level error|warn|info|debug] [--foreground]\n"
            "       awqd [--config FILE] --check-config [FILE]\n"
            "       awqd --help | --version\n"
            "Windows: awqd [--config FILE] --install-service | --uninstall-service | --service\n"
            "\n"
            "Serves the local socket in the foreground (logs on stderr, or [log] file) until SIGTERM,\n"
            "SIGINT or a shutdown request drains it; SIGHUP reloads the settings.\n"
            "\n"
            "  --config FILE          read settings from FILE\n"
            "  --socket PATH          listen on PATH ([server] socket)\n"
            "  --model DIR            load DIR at start ([model] path)\n"
            "  --device D             auto, cpu or cuda ([model] device)\n"
            "  --threads N            CPU threads, 0 = all cores ([model] threads)\n"
            "  --ctx N                context length per sequence ([model] context)\n"
            "  --log-level L          error, warn, info or debug ([log] level)\n"
            "  --foreground           accepted for init scripts; awqd never forks\n"
            "  --check-config [FILE]  load the settings (FILE, or those --config or the lookup\n"
            "                         order finds), print the effective values and exit:\n"
            "                         0 when valid, 1 with file:line and the reason when not\n"
            "  --version              print the version\n"
            "  --install-service      Windows: register the demand-start service \"awqd\" that runs\n"
            "                         this program with --service (and --config FILE if given)\n"
            "  --uninstall-service    Windows: stop (drain) and remove that service\n"
            "  --service              Windows: run under the service manager (what the service\n"
            "                         starts; in a console, awqd serves in the foreground)\n"
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

/* Parse a non-negative int option value; false when it is not one. */
static bool int_arg(const char *v, int *out) {
    char *end;
    long n = strtol(v, &end, 10);
    if (end == v || *end || n < 0 || n > 1048576) return false;
    *out = (int)n;
    return true;
}

int main(int argc, char **argv) {
    const char *config = NULL, *check = NULL;
    bool want_check = false;
    enum { RUN_SERVE, RUN_SERVICE, RUN_INSTALL, RUN_UNINSTALL } mode = RUN_SERVE;
    awqd_overrides ov = {.log_level = -1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--version") == 0) {
            printf("awqd %s\n", AWQD_VERSION);
            return 0;
        } else if (strcmp(a, "--check-config") == 0) {
            want_check = true;
            if (i + 1 < argc && argv[i + 1][0] != '-') check = argv[++i];
        } else if (strcmp(a, "--foreground") == 0) {
            continue;
        } else if (strcmp(a, "--service") == 0) {
            mode = RUN_SERVICE;
        } else if (strcmp(a, "--install-service") == 0) {
            mode = RUN_INSTALL;
        } else if (strcmp(a, "--uninstall-service") == 0) {
            mode = RUN_UNINSTALL;
        } else if (!strcmp(a, "--config") || !strcmp(a, "--socket") || !strcmp(a, "--model") ||
                   !strcmp(a, "--device") || !strcmp(a, "--threads") || !strcmp(a, "--ctx") ||
                   !strcmp(a, "--log-level")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "awqd: %s needs a value\n", a);
                return 2;
            }
            const char *v = argv[++i];
            if (!strcmp(a, "--config")) config = v;
            else if (!strcmp(a, "--socket")) ov.socket = v;
            else if (!strcmp(a, "--model")) ov.model = v;
            else if (!strcmp(a, "--device")) {
                if (strcmp(v, "auto") && strcmp(v, "cpu") && strcmp(v, "cuda")) {
                    fprintf(stderr, "awqd: --device '%s': expected auto, cpu or cuda\n", v);
                    return 2;
                }
                ov.device = v;
            } else if (!strcmp(a, "--threads")) {
                if (!int_arg(v, &ov.threads)) {
                    fprintf(stderr, "awqd: --threads '%s': expected an integer >= 0\n", v);
                    return 2;
                }
            } else if (!strcmp(a, "--ctx")) {
                if (!int_arg(v, &ov.ctx) || ov.ctx < 1) {
                    fprintf(stderr, "awqd: --ctx '%s': expected a positive integer\n", v);
                    return 2;
                }
            } else {
                ov.log_level = -1;
                for (int l = AWQD_LOG_ERROR; l <= AWQD_LOG_DEBUG; l++)
                    if (!strcmp(v, awqd_log_level_name(l))) ov.log_level = l;
                if (ov.log_level < 0) {
                    fprintf(stderr, "awqd: --log-level '%s': expected error, warn, info or debug\n", v);
                    return 2;
                }
            }
        } else {
            fprintf(stderr, "awqd: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (want_check) return check_config(check ? check : config);
    if (mode == RUN_INSTALL || mode == RUN_UNINSTALL) {
        char err[AWQ_ERR_LEN];
        int rc = mode == RUN_INSTALL ? awqd_svc_install(err, NULL, config) : awqd_svc_uninstall(err, NULL);
        if (rc) {
            fprintf(stderr, "awqd: %s\n", err);
            return rc == AWQ_EUNSUPPORTED ? 2 : 1;
        }
        printf("awqd: service \"%s\" %s\n", AWQD_SVC_NAME, mode == RUN_INSTALL ? "installed (start: net start awqd)" : "removed");
        return 0;
    }
    if (mode == RUN_SERVICE) return awqd_svc_run_service(config, &ov);
    return awqd_serve(config, &ov);
}
