/* win-idle - sleeps for ever; Windows only (scripts/windows-test.sh).
 *
 * Each wine process start costs about a second when no other wine process is running (the wine
 * server and its services start and stop with the first and last process), and about 0.08 s
 * when one is. The test script keeps this one running for the whole ctest session, then kills
 * it. On real Windows it is merely harmless.
 */
#define WIN32_LEAN_AND_MEAN
#include <windows.h>

int main(void) {
    for (;;) Sleep(INFINITE);
}
