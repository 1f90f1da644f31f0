/* term_posix.c - the terminal on POSIX systems: Ctrl-C and "is this a terminal". */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static void on_sigint(int sig) {
    (void)sig;
    cli_interrupted = 1;
}

void cli_sigint_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a blocking fgets at the chat prompt returns at Ctrl-C */
    sigaction(SIGINT, &sa, NULL);
}

bool cli_isatty(FILE *f) { return isatty(fileno(f)) == 1; }
