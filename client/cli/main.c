/* main.c - `awq`, the command-line client of awqd: global options, then one command.
 * docs/cli.md describes every command, flag and exit code. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct command {
    const char *name;
    int (*fn)(cli_opts *g, int argc, char **argv);
    const char *what;
} command;

static const command commands[] = {
    {"run", cli_cmd_run, "ask one question (or chat, on a terminal without PROMPT)"},
    {"generate", cli_cmd_generate, "generate with awq-run's flags; --json for ids and timings"},
    {"tokenize", cli_cmd_tokenize, "text to token ids"},
    {"detokenize", cli_cmd_detokenize, "token ids to text"},
    {"template", cli_cmd_template, "render chat messages (JSON on stdin) with the chat template"},
    {"load", cli_cmd_load, "load a model directory"},
    {"unload", cli_cmd_unload, "unload the model"},
    {"list", cli_cmd_list, "list the models under the daemon's model roots"},
    {"status", cli_cmd_status, "the daemon's state"},
    {"settings", cli_cmd_settings, "settings get [KEY] | settings set KEY VALUE"},
    {"metrics", cli_cmd_metrics, "Prometheus metrics"},
    {"keygen", cli_cmd_keygen, "make the client key pair for encrypted connections"},
    {"ping", cli_cmd_ping, "check that the daemon answers"},
    {"stop", cli_cmd_stop, "shut the daemon down"},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f) {
    fprintf(f, "usage: awq [GLOBAL OPTIONS] COMMAND [ARGS...]\n\ncommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++) fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].what);
    fprintf(f,
            "\nglobal options (before or after the command):\n"
            "  --socket PATH          the daemon's socket (default: $AWQ_SOCKET, the settings file's\n"
            "                         server.socket, else $XDG_RUNTIME_DIR/awqd/awqd.sock)\n"
            "  --pipe NAME            Windows: the daemon's named pipe \\\\.\\pipe\\NAME (default: the\n"
            "                         settings file's server.pipe, else awqd)\n"
            "  --json                 machine-readable output\n"
            "  --timeout MS           connect and request timeout in milliseconds\n"
            "  --encrypt              use the encrypted channel (keys from the settings file or\n"
            "                         ~/.config/awqd/client.key and known_servers)\n"
            "  --key FILE             the client's secret key (implies --encrypt)\n"
            "  --known-servers FILE   pinned server keys (implies --encrypt)\n"
            "  --help, --version\n"
            "\n`awq COMMAND --help` describes a command.\n"
            "exit codes: 0 ok, 1 the request failed (the daemon's error is printed), 2 usage,\n"
            "            3 cannot connect to awqd, 4 interrupted (Ctrl-C) or cancelled\n");
}

int main(int argc, char **argv) {
    cli_opts g;
    memset(&g, 0, sizeof g);
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return CLI_EXIT_OK;
        }
        if (!strcmp(a, "--version") || !strcmp(a, "-V")) {
            if (g.json) printf("{\"version\":\"%s\",\"protocol\":%d}\n", AWQ_VERSION, AWQ_PROTO_MAJOR);
            else printf("awq %s (libawq, protocol %d)\n", AWQ_VERSION, AWQ_PROTO_MAJOR);
            return CLI_EXIT_OK;
        }
        int rc = cli_global_opt(&g, argc, argv, &i);
        if (rc == 0) {
            fprintf(stderr, "awq: unknown option '%s' (see awq --help)\n", a);
            return CLI_EXIT_USAGE;
        }
        if (rc != 1) return rc;
    }
    if (i >= argc) {
        usage(stderr);
        return CLI_EXIT_USAGE;
    }
    const char *name = argv[i];
    if (!strcmp(name, "help")) { /* awq help [COMMAND] */
        if (i + 1 >= argc) {
            usage(stdout);
            return CLI_EXIT_OK;
        }
        name = argv[i + 1];
        for (size_t k = 0; k < N_COMMANDS; k++)
            if (!strcmp(name, commands[k].name)) {
                char *args[] = {argv[i + 1], "--help", NULL};
                return commands[k].fn(&g, 2, args);
            }
    } else {
        for (size_t k = 0; k < N_COMMANDS; k++)
            if (!strcmp(name, commands[k].name)) return commands[k].fn(&g, argc - i, argv + i);
    }
    fprintf(stderr, "awq: unknown command '%s' (see awq --help)\n", name);
    return CLI_EXIT_USAGE;
}
