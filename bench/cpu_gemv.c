/* cpu_gemv - the CPU AWQ GEMV (decode, batch 1) on the 7B (Mistral) shapes, in GB/s of weights
 * read, against the read-bandwidth probe measured in the same run; with --gemm M, also the
 * blocked GEMM (prefill) on M tokens, in GFLOP/s against the peak FMA rate measured in the same
 * run, and one layer's linears as tokens/s for both, so the prefill/decode ratio comes from
 * figures of one run.
 *
 * Weights are synthetic (random nibbles, zeros and fp16 scales) held in memory. Each shape is
 * replicated until its copies exceed the last-level cache (256 MB of weights at least), and one
 * pass runs the GEMV over every copy, so each pass streams from DRAM like a real decode step
 * (4.6 GB of weights per token) instead of re-reading a cached 2 MB matrix. Best of --reps
 * passes. The machine may be shared: only the ratio to the probe of the same run means much.
 *
 * --hot runs one copy, which stays in cache: the kernel's arithmetic ceiling, not a decode figure.
 *
 * --gemm M (repeatable): the GEMM of M tokens over one copy per shape (it is compute-bound: 2 flops
 * per weight per token, each weight read once per 64 tokens), best of --reps. The peak is a loop
 * of independent AVX-512 FMAs on every pool thread (AVX2 FMAs without AVX-512), best of 5.
 * --gemm-only skips the GEMV table. --cputime (with --threads 1, where the pool runs every task
 * on the calling thread) times by that thread's CPU clock instead of the wall clock: on a shared
 * machine the kernel's own time, without the time other processes held the core.
 *
 *   cpu_gemv [--threads N] [--reps N] [--impl scalar|avx2|avx512] [--shape NAME] [--probe-mb N] [--hot]
 *            [--gemm M]... [--gemm-only] [--cputime]
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, CLOCK_THREAD_CPUTIME_ID */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if (defined(__x86_64__) || defined(__i386__)) && !defined(_MSC_VER)
#include <immintrin.h>
#define BENCH_X86 1
#else
#define BENCH_X86 0
#endif

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

static int use_cputime;

/* nanoseconds of the wall clock, or with --cputime of this thread's CPU clock */
static uint64_t now_ns(void) {
#ifdef CLOCK_THREAD_CPUTIME_ID
    struct timespec ts;
    if (use_cputime && clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
    return plat_now_ns();
}

static void usage(void) {
    fprintf(stderr, "usage: cpu_gemv [--threads N] [--reps N] [--impl scalar|avx2|avx512] [--shape NAME] "
                    "[--probe-mb N] [--hot] [--gemm M]... [--gemm-only] [--cputime]\n");
    exit(2);
}

/* ---- peak FMA rate: 12 independent accumulator chains per thread (FMA latency 4 cycles x 2
 * ports needs 8 in flight), all in registers, no memory traffic ---- */

#define PEAK_ITERS 20000000L
#define PEAK_CHAINS 12

typedef struct peak_job {
    int avx512;
    float sink[256];
} peak_job;

#if BENCH_X86
__attribute__((target("avx512f"))) static float peak_avx512(long iters) {
    __m512 a[PEAK_CHAINS], m = _mm512_set1_ps(0.999999f), c = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < PEAK_CHAINS; i++) a[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iters; it++)
#pragma GCC unroll 12
        for (int i = 0; i < PEAK_CHAINS; i++) a[i] = _mm512_fmadd_ps(a[i], m, c);
    __m512 s = a[0];
    for (int i = 1; i < PEAK_CHAINS; i++) s = _mm512_add_ps(s, a[i]);
    return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static float peak_avx2(long iters) {
    __m256 a[PEAK_CHAINS], m = _mm256_set1_ps(0.999999f), c = _mm256_set1_ps(1e-7f);
    for (int i = 0; i < PEAK_CHAINS; i++) a[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < iters; it++)
#pragma GCC unroll 12
        for (int i = 0; i < PEAK_CHAINS; i++) a[i] = _mm256_fmadd_ps(a[i], m, c);
    float v[8], s = 0;
    for (int i = 1; i < PEAK_CHAINS; i++) a[0] = _mm256_add_ps(a[0], a[i]);
    _mm256_storeu_ps(v, a[0]);
    for (int i = 0; i < 8; i++) s += v[i];
    return s;
}
#endif

static void peak_task(void *ctx, int tid, int n) {
    (void)n;
    peak_job *j = ctx;
#if BENCH_X86
    j->sink[tid & 255] = j->avx512 ? peak_avx512(PEAK_ITERS) : peak_avx2(PEAK_ITERS);
#else
    (void)tid;
    (void)j;
#endif
}

/* fp32 GFLOP/s of all pool threads doing FMAs (an FMA = 2 flops), best of 5; 0 off x86 */
static double peak_gflops(eng_cpu_pool *pool, eng_cpu_impl impl) {
    if (!BENCH_X86 || impl == ENG_CPU_SCALAR) return 0;
    peak_job j = {.avx512 = impl == ENG_CPU_AVX512};
    double best = 0;
    for (int r = 0; r < 5; r++) {
        uint64_t t0 = now_ns();
        eng_cpu_pool_run(pool, peak_task, &j);
        double dt = (double)(now_ns() - t0) * 1e-9;
        double f = (double)eng_cpu_pool_size(pool) * PEAK_ITERS * PEAK_CHAINS * (j.avx512 ? 16 : 8) * 2 / dt / 1e9;
        if (f > best) best = f;
    }
    return best;
}

/* the linears of a decoder layer: q, k, v, o, gate, up, down once each */
static int layer_mult(size_t si) {
    return si == 3 ? 1 : 2;
}

/* The GEMM table for M tokens; returns one layer's linears in tokens/s (0 with --shape). */
static double run_gemm(eng_cpu_pool *pool, eng_cpu_impl impl, const char *only, int M, int reps, double peak) {
    char err[AWQ_ERR_LEN];
    printf("GEMM, %d tokens:\n%-14s %6s %6s %9s %9s %8s\n", M, "shape", "in", "out", "ms/gemm", "GFLOP/s",
           "of peak");
    double tot_s = 0, tot_f = 0;
    for (size_t si = 0; si < sizeof SHAPES / sizeof SHAPES[0]; si++) {
        const shape *s = &SHAPES[si];
        if (only && !strstr(s->name, only)) continue;
        eng_qlinear l;
        make_linear(&l, s->in, s->out);
        float *x = xmalloc(sizeof(float) * (size_t)s->in * M), *y = xmalloc(sizeof(float) * (size_t)s->out * M);
        for (size_t i = 0; i < (size_t)s->in * M; i++) x[i] = (float)(rnd() % 2001) / 1000.0f - 1.0f;
        double best = 1e30;
        for (int r = 0; r < reps + 1; r++) { /* the first pass warms up */
            uint64_t t0 = now_ns();
            if (eng_cpu_gemm(err, impl, pool, &l, x, M, y)) {
                fprintf(stderr, "cpu_gemv: %s\n", err);
                exit(1);
            }
            double dt = (double)(now_ns() - t0) * 1e-9;
            if (r > 0 && dt < best) best = dt;
        }
        double fl = 2.0 * s->in * s->out * M, gf = fl / best / 1e9;
        printf("%-14s %6d %6d %9.2f %9.1f %7.0f %%\n", s->name, s->in, s->out, best * 1e3, gf,
               peak > 0 ? 100.0 * gf / peak : 0.0);
        tot_s += best * layer_mult(si);
        tot_f += fl * layer_mult(si);
        free_linear(&l);
        free(x);
        free(y);
    }
    if (only) return 0;
    double tps = M / tot_s;
    printf("one layer's linears, %d tokens: %.1f GFLOP/s = %.0f %% of peak; %.1f tokens/s per layer "
           "(%.2f tok/s for 32 layers)\n",
           M, tot_f / tot_s / 1e9, peak > 0 ? 100.0 * tot_f / tot_s / 1e9 / peak : 0.0, tps, tps / 32);
    return tps;
}

/* The decode table (batch 1, weights streamed from DRAM unless hot); returns one layer's linears
 * in tokens/s (0 with --shape). */
static double run_gemv(eng_cpu_pool *pool, eng_cpu_impl impl, const char *only, int reps, int hot, int probe_mb,
                       double probe) {
    char err[AWQ_ERR_LEN];
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
            uint64_t t0 = now_ns();
            for (int c = 0; c < copies * inner; c++)
                if (eng_cpu_gemv(err, impl, pool, &ls[c % copies], x, 1, y)) {
                    fprintf(stderr, "cpu_gemv: %s\n", err);
                    exit(1);
                }
            double dt = (double)(now_ns() - t0) * 1e-9 / (copies * inner);
            if (r > 0 && dt < best) best = dt;
        }
        double gbs = (double)bytes / best / 1e9;
        printf("%-14s %6d %6d %8.1f %7d %9.0f %8.2f  (%.0f %% of probe)\n", s->name, s->in, s->out,
               (double)bytes / 1e6, copies, best * 1e6, gbs, 100.0 * gbs / probe);
        int mult = layer_mult(si);
        tot_bytes += (double)bytes * mult;
        tot_s += best * mult;
        for (int c = 0; c < copies; c++) free_linear(&ls[c]);
        free(ls);
        free(x);
        free(y);
    }
    if (only) return 0;
    printf("one layer's linears (q,k,v,o,gate,up,down): %.2f GB/s = %.0f %% of the probe; %.1f tokens/s per "
           "layer (%.2f tok/s for 32 layers)\n",
           tot_bytes / tot_s / 1e9, 100.0 * tot_bytes / tot_s / 1e9 / probe, 1 / tot_s, 1 / tot_s / 32);
    return 1 / tot_s;
}

int main(int argc, char **argv) {
    int threads = 0, reps = 5, probe_mb = 1024, hot = 0, gemm_only = 0, ngemm = 0, gemm_m[8];
    const char *only = NULL;
    eng_cpu_impl impl = ENG_CPU_AUTO;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--hot")) {
            hot = 1;
            continue;
        }
        if (!strcmp(argv[i], "--gemm-only")) {
            gemm_only = 1;
            continue;
        }
        if (!strcmp(argv[i], "--cputime")) {
            use_cputime = 1;
            continue;
        }
        if (i + 1 >= argc) usage();
        if (!strcmp(argv[i], "--threads")) {
            threads = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--reps")) {
            reps = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--gemm")) {
            if (ngemm == 8) usage();
            gemm_m[ngemm++] = atoi(argv[++i]);
            if (gemm_m[ngemm - 1] < 1) usage();
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
    if (use_cputime && threads != 1) {
        fprintf(stderr, "cpu_gemv: --cputime needs --threads 1 (it reads the calling thread's CPU clock)\n");
        return 2;
    }
    if (impl == ENG_CPU_AUTO) impl = eng_cpu_impl_best();
    char err[AWQ_ERR_LEN];
    eng_cpu_pool *pool = eng_cpu_pool_create(err, threads);
    if (!pool) {
        fprintf(stderr, "cpu_gemv: %s\n", err);
        return 1;
    }
    double probe = 0, dec_tps = 0;
    if (!gemm_only) {
        if (eng_cpu_membw(err, pool, (size_t)probe_mb << 20, 5, &probe)) {
            fprintf(stderr, "cpu_gemv: %s\n", err);
            return 1;
        }
        dec_tps = run_gemv(pool, impl, only, reps, hot, probe_mb, probe);
    }
    if (ngemm) {
        double peak = peak_gflops(pool, impl);
        printf("peak FMA rate (%s, %d threads, best of 5): %.1f GFLOP/s\n",
               impl == ENG_CPU_AVX512 ? "AVX-512" : "AVX2", eng_cpu_pool_size(pool), peak);
        for (int g = 0; g < ngemm; g++) {
            double tps = run_gemm(pool, impl, only, gemm_m[g], reps, peak);
            if (tps > 0 && dec_tps > 0)
                printf("prefill/decode (one layer's linears, same run): %.1fx\n", tps / dec_tps);
        }
    }
    eng_cpu_pool_free(pool);
    return 0;
}
