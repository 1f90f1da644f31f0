/* membw - the read-bandwidth probe: a 1 GiB buffer read by all threads (or --threads N), best
 * of 5 passes, printed as GB/s (1e9 bytes/s). CPU decode speed is reported as a fraction of
 * this figure (awq-run bench measures it again in the same run). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"

int main(int argc, char **argv) {
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            threads = atoi(argv[++i]);
        } else {
            fprintf(stderr, "usage: membw [--threads N]\n");
            return 2;
        }
    }
    char err[AWQ_ERR_LEN];
    eng_cpu_pool *pool = eng_cpu_pool_create(err, threads);
    if (!pool) {
        fprintf(stderr, "membw: %s\n", err);
        return 1;
    }
    double gbs;
    int rc = eng_cpu_membw(err, pool, (size_t)1 << 30, 5, &gbs);
    if (rc) {
        fprintf(stderr, "membw: %s\n", err);
        eng_cpu_pool_free(pool);
        return 1;
    }
    printf("membw: %.1f GB/s read (1 GiB, %d threads, best of 5)\n", gbs, eng_cpu_pool_size(pool));
    eng_cpu_pool_free(pool);
    return 0;
}
