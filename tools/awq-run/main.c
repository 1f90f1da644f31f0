/* awq-run - runs the engine directly, without the daemon: tokenize, detokenize, template,
 * inspect, generate, bench. See `awq-run --help`. */
#include <stdio.h>
#include <string.h>

#include "cmds.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} cmds[] = {
    {"inspect", cmd_inspect, "inspect -m DIR                       JSON summary of a checkpoint"},
    {"template", cmd_template, "template -m DIR [--no-generation-prompt] < MSGS.json  the chat prompt, exactly"},
    {"tokenize", cmd_tokenize, "tokenize -m DIR [--no-bos] -- TEXT   {\"ids\":[...]} of TEXT"},
    {"detokenize", cmd_detokenize, "detokenize -m DIR -- ID...          the text of the ids, exactly"},
    {"generate", cmd_generate, "generate -m DIR [options] -- TEXT    chat (or --raw) generation, streamed"},
    {"bench", cmd_bench, "bench -m DIR [--prompt N] [--gen N] prefill/decode tok/s and weight GB/s"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: awq-run COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) fprintf(f, "  %s\n", cmds[i].help);
    fprintf(f, "\n`awq-run COMMAND --help` for a command's options.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[1], cmds[i].name)) return cmds[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "awq-run: unknown command '%s' (see awq-run --help)\n", argv[1]);
    return 2;
}
