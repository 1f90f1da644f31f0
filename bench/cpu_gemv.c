/* cpu_gemv - the CPU AWQ GEMV (decode, batch 1) on the 7B (Mistral) shapes, in GB/s of weights
 * read, against the read-bandwidth probe measured in the same run.
 *
 * Weights are synthetic (random nibbles, zeros and fp16 scales) held in memory. Each shape is
 * replicated until its copies exceed the last-level cache (256 MB of weights at least), and one
 * pass runs the GEMV over every copy, so each pass streams from DRAM like a real decode step
 * (4.6 GB of weights per token) instead of re-reading a cached 2 MB matrix. Best of --reps
 * passes. The machine may be shared: only the ratio to the probe of the same run means much.
 *
 * --hot runs one copy, which stays in cache: the kernel's arithmetic ceiling, not a decode figure.
 *
 *   cpu_gemv [--threads N] [--reps N] [--impl scalar|avx2|avx512] [--shape NAME] [--probe-mb N] [--hot]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "awq_util.h"
#include "cpu.h"
#include "plat.h"

typedef struct shape {
    const char *name;
    int in, out;
} shape;

/* shisa-7B-v1 / Mistral-7B: hidden 4096, 32 heads, 8 KV heads of 128, intermediate 14336 */
static const shape SHAPES[] = {
    {"q_proj/o_proj", 4096, 4096},
    {"k_proj/v_proj", 4096, 1024},
    {"gate/up_proj", 4096, 14336},
    {"down_proj", 14336, 4096},
};

#define GROUP 128

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 11);
}

static void *xmalloc(size_t n) {
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "cpu_gemv: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

/* bytes a GEMV reads from the weights: qweight + qzeros + scales */
static size_t linear_bytes(int in, int out) {
    return (size_t)in * out / 2 + (size_t)in / GROUP * out / 2 + (size_t)in / GROUP * out * 2;
}

static void make_linear(eng_qlinear *l, int in, int out) {
    l->in = in;
    l->out = out;
    l->group = GROUP;
    size_t nq = (size_t)in * out / 8, nz = (size_t)in / GROUP * out / 8, ns = (size_t)in / GROUP * out;
    int32_t *qw = xmalloc(nq * 4), *qz = xmalloc(nz * 4);
    uint16_t *sc = xmalloc(ns * 2);
    for (size_t i = 0; i < nq; i++) qw[i] = (int32_t)rnd();
    for (size_t i = 0; i < nz; i++) qz[i] = (int32_t)rnd();
    for (size_t i = 0; i < ns; i++) sc[i] = awq_f32_to_f16((0.5f + (float)(rnd() % 1000) / 1000.0f) * 0.005f);
    l->qweight = qw;
    l->qzeros = qz;
    l->scales = sc;
}

static void free_linear(eng_qlinear *l) {
    free((void *)l->qweight);
    free((void *)l->qzeros);
    free((void *)l->scales);
}

static void usage(void) {
    fprintf(stderr, "usage: cpu_gemv [--threads N] [--reps N] [--impl scalar|avx2|avx512] [--shape NAME] "
                    "[--probe-mb N] [--hot]\n");
    exit(2);
}

int main(int argc, char **argv) {
    int threads = 0, reps = 5, probe_mb = 1024, hot = 0;
    const char *only = NULL;
    eng_cpu_impl impl = ENG_CPU_AUTO;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--hot")) {
            hot = 1;
            continue;
        }
        if (i + 1 >= argc) usage();
        if (!strcmp(argv[i], "--threads")) {
            threads = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--reps")) {
            reps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--probe-mb")) {
            probe_mb = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--shape")) {
            only = argv[++i];
        } else if (!strcmp(argv[i], "--impl")) {
            const char *s = argv[++i];
            impl = !strcmp(s, "scalar") ? ENG_CPU_SCALAR
                   : !strcmp(s, "avx2") ? ENG_CPU_AVX2
                   : !strcmp(s, "avx512") ? ENG_CPU_AVX512
                                          : (usage(), ENG_CPU_AUTO);
        } else {
            usage();
        }
    }
    if (reps < 1 || probe_mb < 1) usage();
    if (impl == ENG_CPU_AUTO) impl = eng_cpu_impl_best();
    char err[AWQ_ERR_LEN];
    eng_cpu_pool *pool = eng_cpu_pool_create(err, threads);
    if (!pool) {
        fprintf(stderr, "cpu_gemv: %s\n", err);
        return 1;
    }
    double probe;
    if (eng_cpu_membw(err, pool, (size_t)probe_mb << 20, 5, &probe)) {
        fprintf(stderr, "cpu_gemv: %s\n", err);
        return 1;
    }
    printf("cpu_gemv: impl %s, %d threads, membw probe %.2f GB/s (%d MB, best of 5)\n", eng_cpu_impl_name(impl),
           eng_cpu_pool_size(pool), probe, probe_mb);
    printf("%-14s %6s %6s %8s %7s %9s %8s\n", "shape", "in", "out", "MB", "copies", "us/gemv", "GB/s");
    double tot_bytes = 0, tot_s = 0;
    for (size_t si = 0; si < sizeof SHAPES / sizeof SHAPES[0]; si++) {
        const shape *s = &SHAPES[si];
        if (only && !strstr(s->name, only)) continue;
        size_t bytes = linear_bytes(s->in, s->out);
        int copies = hot ? 1 : (int)(((size_t)256 << 20) / bytes) + 1;
        eng_qlinear *ls = xmalloc(sizeof *ls * (size_t)copies);
        for (int c = 0; c < copies; c++) make_linear(&ls[c], s->in, s->out);
        float *x = xmalloc(sizeof(float) * (size_t)s->in), *y = xmalloc(sizeof(float) * (size_t)s->out);
        for (int i = 0; i < s->in; i++) x[i] = (float)(rnd() % 2001) / 1000.0f - 1.0f;
        double best = 1e30;
        const int inner = hot ? 20 : 1;
        for (int r = 0; r < reps + 1; r++) { /* the first pass warms up (faults, frequency) */
            uint64_t t0 = plat_now_ns();
            for (int c = 0; c < copies * inner; c++)
                if (eng_cpu_gemv(err, impl, pool, &ls[c % copies], x, 1, y)) {
                    fprintf(stderr, "cpu_gemv: %s\n", err);
                    return 1;
                }
            double dt = (double)(plat_now_ns() - t0) * 1e-9 / (copies * inner);
            if (r > 0 && dt < best) best = dt;
        }
        double gbs = (double)bytes / best / 1e9;
        printf("%-14s %6d %6d %8.1f %7d %9.0f %8.2f  (%.0f %% of probe)\n", s->name, s->in, s->out,
               (double)bytes / 1e6, copies, best * 1e6, gbs, 100.0 * gbs / probe);
        /* a decode step: q, k, v, o, gate, up, down once each per layer */
        int mult = si == 1 ? 2 : si == 2 ? 2 : si == 0 ? 2 : 1;
        tot_bytes += (double)bytes * mult;
        tot_s += best * mult;
        for (int c = 0; c < copies; c++) free_linear(&ls[c]);
        free(ls);
        free(x);
        free(y);
    }
    if (!only)
        printf("one layer's linears (q,k,v,o,gate,up,down): %.2f GB/s = %.0f %% of the probe\n",
               tot_bytes / tot_s / 1e9, 100.0 * tot_bytes / tot_s / 1e9 / probe);
    eng_cpu_pool_free(pool);
    return 0;
}
