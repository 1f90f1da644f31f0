/* cpu_membw.c - the read-bandwidth probe that decode speed is measured against: the same
 * threads as the forward, each streaming its own contiguous part of a buffer far larger than
 * the caches, best of several passes (the first pass also faults the pages in). Eight
 * independent accumulators keep two loads in flight per cycle so the probe measures memory,
 * not the adder chain.
 */
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "plat.h"

typedef struct bw_job {
    const uint64_t *buf;
    size_t words;
    uint64_t sink[1024];
} bw_job;

static void bw_task(void *ctx, int tid, int n) {
    bw_job *j = ctx;
    size_t a = j->words * (size_t)tid / (size_t)n, b = j->words * (size_t)(tid + 1) / (size_t)n;
    a &= ~(size_t)7;
    b &= ~(size_t)7;
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
    for (size_t i = a; i < b; i += 8) {
        s0 += j->buf[i];
        s1 += j->buf[i + 1];
        s2 += j->buf[i + 2];
        s3 += j->buf[i + 3];
        s4 += j->buf[i + 4];
        s5 += j->buf[i + 5];
        s6 += j->buf[i + 6];
        s7 += j->buf[i + 7];
    }
    j->sink[tid & 1023] = s0 ^ s1 ^ s2 ^ s3 ^ s4 ^ s5 ^ s6 ^ s7; /* keeps the loads alive */
}

int eng_cpu_membw(char *err, eng_cpu_pool *pool, size_t bytes, int reps, double *gbs) {
    *gbs = 0;
    if (bytes < 4096 || reps < 1) return awq_seterr(err, AWQ_EINVAL, "membw: %zu bytes x %d passes", bytes, reps);
    uint64_t *buf = malloc(bytes);
    if (!buf) return awq_seterr(err, AWQ_ENOMEM, "membw: cannot allocate %zu bytes", bytes);
    memset(buf, 0x5a, bytes); /* real pages, not the shared zero page */
    bw_job *j = calloc(1, sizeof *j);
    if (!j) {
        free(buf);
        return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    }
    j->buf = buf;
    j->words = bytes / 8;
    double best = 0;
    for (int r = 0; r < reps; r++) {
        uint64_t t0 = plat_now_ns();
        eng_cpu_pool_run(pool, bw_task, j);
        double dt = (double)(plat_now_ns() - t0) * 1e-9;
        double rate = (double)(j->words & ~(size_t)7) * 8.0 / dt / 1e9;
        if (rate > best) best = rate;
    }
    free(j);
    free(buf);
    *gbs = best;
    return 0;
}
