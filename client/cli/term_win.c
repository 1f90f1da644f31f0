/* term_win.c - the terminal on Windows: Ctrl-C through a console control handler (it runs on
 * its own thread, so it only sets the flag the receive loops poll) and "is this a console". */
#include <io.h>
#include <windows.h>

#include "cli.h"

static BOOL WINAPI on_ctrl(DWORD type) {
    if (type != CTRL_C_EVENT) return FALSE; /* Ctrl-Break, close: the default (end the process) */
    cli_interrupted = 1;
    return TRUE;
}

void cli_sigint_install(void) { SetConsoleCtrlHandler(on_ctrl, TRUE); }

bool cli_isatty(FILE *f) { return _isatty(_fileno(f)) != 0; }
