/* cpu_matmul.c - AWQ and fp16 matrix products on the CPU: argument checks, the portable scalar
 * reference kernels, instruction-set detection, and the parallel dispatch.
 *
 * Work split, GEMM and the scalar/AVX2 GEMV: each thread owns a contiguous range of packed
 * columns (multiples of a 16-column, 64-byte tile) and writes outputs no other thread touches.
 * That walk reads a 64-byte piece of every weight row, which the hardware prefetchers cannot
 * follow: it reached ~25 % of the read bandwidth at decode. The GEMM is compute-bound (each
 * weight serves up to 64 tokens) and the AVX-512 one prefetches the next block's rows itself.
 *
 * Work split, AVX-512 GEMV (decode): (column block x k-chunk) items, each summing its chunk's
 * groups over 2 KB runs of whole rows, then per column block the chunk partials added in chunk
 * order (see cpu_kern.h). The chunk size depends on the group size only, so the result is the
 * same for any thread count, and the AVX-512 GEMM sums the same chunks in the same order, so
 * GEMV == GEMM bitwise (batch invariance).
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "awq_util.h"
#include "cpu.h"
#include "cpu_kern.h"

#if ENG_CPU_X86
#include <cpuid.h>
#endif
#include "plat.h"

/* =============================================================== scalar reference ==== */

static const int AWQ_ORDER[8] = {0, 2, 4, 6, 1, 3, 5, 7};

/* The reference: per token, per 16-column tile, per group: acc over k ascending, then
 * y += s * (acc - z * xs). Same formula as the SIMD paths, plain multiplies and adds. */
void eng_cpu_qmm_scalar(const eng_qlinear *l, const float *x, const float *xs, int m, int c0, int c1, float *y,
                        bool gemm, float *tile, float *accbuf) {
    (void)gemm;
    (void)tile;
    (void)accbuf;
    const int in = l->in, out = l->out, G = l->group, C = out / 8, ng = in / G;
    float acc[8 * ENG_CPU_KERN_TILE], yv[8 * ENG_CPU_KERN_TILE];
    for (int t = c0; t < c1; t += ENG_CPU_KERN_TILE) {
        int w = c1 - t < ENG_CPU_KERN_TILE ? c1 - t : ENG_CPU_KERN_TILE;
        for (int mi = 0; mi < m; mi++) {
            const float *xm = x + (size_t)mi * in;
            memset(yv, 0, sizeof yv);
            for (int g = 0; g < ng; g++) {
                memset(acc, 0, sizeof acc);
                for (int k = g * G; k < (g + 1) * G; k++) {
                    const int32_t *row = l->qweight + (size_t)k * C + t;
                    float xk = xm[k];
                    for (int c = 0; c < w; c++) {
                        uint32_t q = (uint32_t)row[c];
                        for (int i = 0; i < 8; i++) acc[c * 8 + i] += xk * (float)((q >> (4 * i)) & 15u);
                    }
                }
                float xsum = xs[(size_t)mi * ng + g];
                const int32_t *zr = l->qzeros + (size_t)g * C + t;
                const uint16_t *sr = l->scales + (size_t)g * out + (size_t)t * 8;
                for (int c = 0; c < w; c++) {
                    uint32_t z = (uint32_t)zr[c];
                    for (int i = 0; i < 8; i++) {
                        float zf = (float)((z >> (4 * i)) & 15u);
                        float s = awq_f16_to_f32(sr[c * 8 + AWQ_ORDER[i]]);
                        float d = acc[c * 8 + i] - zf * xsum;
                        yv[c * 8 + i] += s * d;
                    }
                }
            }
            float *ym = y + (size_t)mi * out + (size_t)t * 8;
            for (int c = 0; c < w; c++)
                for (int i = 0; i < 8; i++) ym[c * 8 + AWQ_ORDER[i]] = yv[c * 8 + i];
        }
    }
}

void eng_cpu_f16mm_scalar(const uint16_t *w, int n, int k, const float *x, int m, int r0, int r1, float *y) {
    for (int r = r0; r < r1; r++) {
        const uint16_t *wr = w + (size_t)r * k;
        for (int mi = 0; mi < m; mi++) {
            const float *xm = x + (size_t)mi * k;
            float s = 0.0f;
            for (int j = 0; j < k; j++) s += xm[j] * awq_f16_to_f32(wr[j]);
            y[(size_t)mi * n + r] = s;
        }
    }
}

/* =============================================================== implementation choice ==== */

const char *eng_cpu_impl_name(eng_cpu_impl impl) {
    switch (impl) {
    case ENG_CPU_AUTO: return "auto";
    case ENG_CPU_SCALAR: return "scalar";
    case ENG_CPU_AVX2: return "avx2";
    case ENG_CPU_AVX512: return "avx512";
    }
    return "?";
}

#if ENG_CPU_X86
/* F16C from CPUID leaf 1, ECX bit 29: clang (14) does not accept __builtin_cpu_supports("f16c"). */
static bool has_f16c(void) {
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
}
#endif

bool eng_cpu_impl_ok(eng_cpu_impl impl) {
    switch (impl) {
    case ENG_CPU_AUTO:
    case ENG_CPU_SCALAR: return true;
#if ENG_CPU_X86
    case ENG_CPU_AVX2:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && has_f16c();
    case ENG_CPU_AVX512:
        return eng_cpu_impl_ok(ENG_CPU_AVX2) && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
               __builtin_cpu_supports("avx512dq");
#else
    case ENG_CPU_AVX2:
    case ENG_CPU_AVX512: return false;
#endif
    }
    return false;
}

eng_cpu_impl eng_cpu_impl_best(void) {
    eng_cpu_impl cap = ENG_CPU_AVX512;
    const char *e = getenv("AWQ_CPU_IMPL");
    if (e && !strcmp(e, "scalar")) cap = ENG_CPU_SCALAR;
    if (e && !strcmp(e, "avx2")) cap = ENG_CPU_AVX2;
    if (cap >= ENG_CPU_AVX512 && eng_cpu_impl_ok(ENG_CPU_AVX512)) return ENG_CPU_AVX512;
    if (cap >= ENG_CPU_AVX2 && eng_cpu_impl_ok(ENG_CPU_AVX2)) return ENG_CPU_AVX2;
    return ENG_CPU_SCALAR;
}

/* The kernels of impl (AUTO resolved); *v is the streaming GEMV's item kernel, NULL where the
 * GEMV runs through *q (the scalar reference and AVX2 split columns across threads). */
static int pick(char *err, eng_cpu_impl impl, eng_cpu_qmm_fn **q, eng_cpu_qmv_fn **v, eng_cpu_f16mm_fn **f) {
    if (impl == ENG_CPU_AUTO) impl = eng_cpu_impl_best();
    if (!eng_cpu_impl_ok(impl))
        return awq_seterr(err, AWQ_EUNSUPPORTED, "CPU kernels '%s' are not supported on this machine",
                          eng_cpu_impl_name(impl));
    *v = NULL;
    switch (impl) {
#if ENG_CPU_X86
    case ENG_CPU_AVX512: *q = eng_cpu_qmm_avx512; *v = eng_cpu_qmv_avx512; *f = eng_cpu_f16mm_avx512; return 0;
    case ENG_CPU_AVX2: *q = eng_cpu_qmm_avx2; *f = eng_cpu_f16mm_avx2; return 0;
#endif
    default: *q = eng_cpu_qmm_scalar; *f = eng_cpu_f16mm_scalar; return 0;
    }
}

/* =============================================================== checks ==== */

int eng_cpu_qlinear_check(char *err, const eng_qlinear *l) {
    if (l->in <= 0 || l->out <= 0 || l->group <= 0)
        return awq_seterr(err, AWQ_EINVAL, "linear shape in=%d out=%d group=%d: all must be positive", l->in,
                          l->out, l->group);
    if (l->out % 8)
        return awq_seterr(err, AWQ_EINVAL, "linear out=%d is not a multiple of 8 (8 nibbles per int32)", l->out);
    if (l->in % l->group)
        return awq_seterr(err, AWQ_EINVAL, "linear in=%d is not a multiple of group %d", l->in, l->group);
    if (!l->qweight || !l->qzeros || !l->scales)
        return awq_seterr(err, AWQ_EINVAL, "linear in=%d out=%d: missing qweight/qzeros/scales", l->in, l->out);
    return 0;
}

/* =============================================================== parallel dispatch ==== */

typedef struct qmm_job {
    eng_cpu_qmm_fn *fn;
    const eng_qlinear *l;
    const float *x;   /* (m, in) */
    const float *xs;  /* (m, in/group) */
    int m;
    float *y;         /* (m, out) */
    bool gemm;
    float *tiles;     /* (threads, group * ENG_CPU_TILE_ROW) when gemm */
    float *accs;      /* (threads, acc_per) */
    size_t acc_per;
} qmm_job;

static void qmm_task(void *ctx, int tid, int n) {
    const qmm_job *j = ctx;
    const int C = j->l->out / 8, tiles = (C + ENG_CPU_KERN_TILE - 1) / ENG_CPU_KERN_TILE;
    int c0 = (int)((long long)tiles * tid / n) * ENG_CPU_KERN_TILE;
    int c1 = (int)((long long)tiles * (tid + 1) / n) * ENG_CPU_KERN_TILE;
    if (c1 > C) c1 = C;
    if (c0 >= c1) return;
    float *tile = j->gemm ? j->tiles + (size_t)tid * j->l->group * ENG_CPU_TILE_ROW : NULL;
    float *acc = j->accs + (size_t)tid * j->acc_per;
    for (int m0 = 0; m0 < j->m; m0 += ENG_CPU_KERN_M) {
        int mc = j->m - m0 < ENG_CPU_KERN_M ? j->m - m0 : ENG_CPU_KERN_M;
        int ng = j->l->in / j->l->group;
        j->fn(j->l, j->x + (size_t)m0 * j->l->in, j->xs + (size_t)m0 * ng, mc, c0, c1,
              j->y + (size_t)m0 * j->l->out, j->gemm, tile, acc);
    }
}

/* ---- streaming GEMV: (column block x k-chunk) items, then the chunk partials added in order */

typedef struct qmv_job {
    eng_cpu_qmv_fn *fn;
    const eng_qlinear *l;
    const float *x;   /* (m, in) */
    const float *xs;  /* (m, in/group) */
    int m;
    float *y;         /* (m, out) */
    float *part;      /* (chunks, m, out) */
    float *scratch;   /* (threads, qmv_scratch(m)) */
    size_t scratch_per;
    atomic_int *done; /* (blocks): items of each column block finished */
    int kc, chunks, blocks;
} qmv_job;

/* floats of kernel scratch per thread for m tokens (see eng_cpu_qmv_fn) */
static size_t qmv_scratch(int m) {
    return (size_t)2 * m * ENG_CPU_GEMV_CB * 8;
}

/* y = 0 + part[0] + part[1] + ..., chunk order, for column block b */
static void qmv_reduce(const qmv_job *j, int b) {
    const int C = j->l->out / 8;
    const size_t out = (size_t)j->l->out, len = (size_t)j->m * out;
    const size_t n0 = (size_t)b * ENG_CPU_GEMV_CB * 8;
    const size_t n1 = (size_t)(b + 1) * ENG_CPU_GEMV_CB < (size_t)C ? (size_t)(b + 1) * ENG_CPU_GEMV_CB * 8 : out;
    for (int mi = 0; mi < j->m; mi++)
        for (size_t n = (size_t)mi * out + n0; n < (size_t)mi * out + n1; n++) {
            float s = 0.0f;
            for (int c = 0; c < j->chunks; c++) s += j->part[(size_t)c * len + n];
            j->y[n] = s;
        }
}

/* Items are numbered column block major, chunk minor, so a thread's consecutive items continue
 * the same rows downwards. Which thread runs an item never changes its result. The thread that
 * finishes a column block's last item adds that block's partials (one parallel-for per GEMV,
 * not two: a barrier costs tens of microseconds on a busy machine, 224 GEMVs per token). */
static void qmv_task(void *ctx, int tid, int n) {
    const qmv_job *j = ctx;
    const int items = j->chunks * j->blocks, C = j->l->out / 8, ng = j->l->in / j->l->group;
    const size_t out = (size_t)j->l->out;
    for (int it = (int)((long long)items * tid / n); it < (int)((long long)items * (tid + 1) / n); it++) {
        int b = it / j->chunks, ch = it % j->chunks;
        int c0 = b * ENG_CPU_GEMV_CB, c1 = c0 + ENG_CPU_GEMV_CB < C ? c0 + ENG_CPU_GEMV_CB : C;
        int g0 = ch * j->kc, g1 = g0 + j->kc < ng ? g0 + j->kc : ng;
        j->fn(j->l, j->x, j->xs, j->m, g0, g1, c0, c1, j->part + (size_t)ch * j->m * out + (size_t)c0 * 8, out,
              j->scratch + (size_t)tid * j->scratch_per);
        /* acq_rel: the last one sees every other thread's partials of this block */
        if (atomic_fetch_add_explicit(&j->done[b], 1, memory_order_acq_rel) == j->chunks - 1) qmv_reduce(j, b);
    }
}

static int qmv(char *err, eng_cpu_qmv_fn *v, eng_cpu_pool *pool, const eng_qlinear *l, const float *x,
               const float *xs, int m, float *y) {
    const int ng = l->in / l->group, kc = eng_cpu_kchunk(l->group), C = l->out / 8;
    const int mcap = m < ENG_CPU_GEMV_M ? m : ENG_CPU_GEMV_M;
    qmv_job j = {.fn = v, .l = l, .kc = kc, .chunks = (ng + kc - 1) / kc,
                 .blocks = (C + ENG_CPU_GEMV_CB - 1) / ENG_CPU_GEMV_CB, .scratch_per = qmv_scratch(mcap)};
    j.part = malloc((size_t)j.chunks * mcap * l->out * sizeof(float));
    /* a multiple of 64 bytes: scratch_per is a multiple of 2048 floats */
    j.scratch = plat_aligned_alloc(64, (size_t)eng_cpu_pool_size(pool) * j.scratch_per * sizeof(float));
    j.done = malloc((size_t)j.blocks * sizeof *j.done);
    if (!j.part || !j.scratch || !j.done) {
        free(j.part);
        plat_aligned_free(j.scratch);
        free(j.done);
        return awq_seterr(err, AWQ_ENOMEM, "out of memory for a %d x %d linear", l->in, l->out);
    }
    for (int m0 = 0; m0 < m; m0 += ENG_CPU_GEMV_M) {
        j.m = m - m0 < ENG_CPU_GEMV_M ? m - m0 : ENG_CPU_GEMV_M;
        j.x = x + (size_t)m0 * l->in;
        j.xs = xs + (size_t)m0 * ng;
        j.y = y + (size_t)m0 * l->out;
        for (int b = 0; b < j.blocks; b++) atomic_init(&j.done[b], 0);
        eng_cpu_pool_run(pool, qmv_task, &j);
    }
    free(j.part);
    plat_aligned_free(j.scratch);
    free(j.done);
    return 0;
}

static int qmm(char *err, eng_cpu_impl impl, eng_cpu_pool *pool, const eng_qlinear *l, const float *x, int m,
               float *y, bool gemm) {
    /* NULL: -O3 cannot see that pick() sets them whenever it returns 0 (maybe-uninitialized) */
    eng_cpu_qmm_fn *q = NULL;
    eng_cpu_qmv_fn *v = NULL;
    eng_cpu_f16mm_fn *f = NULL;
    int rc = eng_cpu_qlinear_check(err, l);
    if (rc) return rc;
    if (m <= 0) return awq_seterr(err, AWQ_EINVAL, "token count %d must be positive", m);
    if ((rc = pick(err, impl, &q, &v, &f))) return rc;
    const int G = l->group, ng = l->in / G;
    float *xs = malloc((size_t)m * ng * sizeof *xs);
    if (!xs) return awq_seterr(err, AWQ_ENOMEM, "out of memory for a %d x %d linear", l->in, l->out);
    /* group sums of x, k ascending: shared by every column and every path. Eight groups' sums
     * advance together (each still adds its k in ascending order from 0): one chain at a time
     * waits on the adder's latency, ~7 % of a 1-thread prefill GEMM before this. */
    for (int mi = 0; mi < m; mi++) {
        const float *xm = x + (size_t)mi * l->in;
        int g0 = 0;
        for (; g0 + 8 <= ng; g0 += 8) {
            const float *p = xm + (size_t)g0 * G;
            float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f, s4 = 0.0f, s5 = 0.0f, s6 = 0.0f, s7 = 0.0f;
            for (int k = 0; k < G; k++) {
                s0 += p[k], s1 += p[G + k], s2 += p[2 * G + k], s3 += p[3 * G + k];
                s4 += p[4 * G + k], s5 += p[5 * G + k], s6 += p[6 * G + k], s7 += p[7 * G + k];
            }
            float *o = xs + (size_t)mi * ng + g0;
            o[0] = s0, o[1] = s1, o[2] = s2, o[3] = s3, o[4] = s4, o[5] = s5, o[6] = s6, o[7] = s7;
        }
        for (; g0 < ng; g0++) {
            float s = 0.0f;
            for (int k = 0; k < G; k++) s += xm[(size_t)g0 * G + k];
            xs[(size_t)mi * ng + g0] = s;
        }
    }
    if (!gemm && v) {
        rc = qmv(err, v, pool, l, x, xs, m, y);
        free(xs);
        return rc;
    }
    float *tiles = NULL;
    /* 64-byte aligned: the kernels store whole vectors into it (size is a multiple of 1 KB) */
    if (gemm) tiles = plat_aligned_alloc(64, (size_t)eng_cpu_pool_size(pool) * G * ENG_CPU_TILE_ROW * sizeof *tiles);
    /* per-thread running sums: (tokens per kernel call, columns per thread, 8) floats */
    const int nt = eng_cpu_pool_size(pool), C = l->out / 8;
    const size_t span = (size_t)((C + ENG_CPU_KERN_TILE - 1) / ENG_CPU_KERN_TILE + nt - 1) / (size_t)nt * ENG_CPU_KERN_TILE;
    /* two halves: the running sums, and (AVX-512 GEMM) the k-chunks' total */
    const size_t acc_per = 2 * (size_t)(m < ENG_CPU_KERN_M ? m : ENG_CPU_KERN_M) * span * 8;
    float *accs = plat_aligned_alloc(64, (size_t)nt * acc_per * sizeof(float)); /* acc_per is a multiple of 128 */
    if ((gemm && !tiles) || !accs) {
        free(xs);
        plat_aligned_free(tiles);
        plat_aligned_free(accs);
        return awq_seterr(err, AWQ_ENOMEM, "out of memory for a %d x %d linear", l->in, l->out);
    }
    qmm_job j = {q, l, x, xs, m, y, gemm, tiles, accs, acc_per};
    eng_cpu_pool_run(pool, qmm_task, &j);
    free(xs);
    plat_aligned_free(tiles);
    plat_aligned_free(accs);
    return 0;
}

int eng_cpu_gemv(char *err, eng_cpu_impl impl, eng_cpu_pool *pool, const eng_qlinear *l, const float *x, int m,
                 float *y) {
    return qmm(err, impl, pool, l, x, m, y, false);
}

int eng_cpu_gemm(char *err, eng_cpu_impl impl, eng_cpu_pool *pool, const eng_qlinear *l, const float *x, int m,
                 float *y) {
    return qmm(err, impl, pool, l, x, m, y, true);
}

int eng_cpu_qlinear(char *err, eng_cpu_impl impl, eng_cpu_pool *pool, const eng_qlinear *l, const float *x, int m,
                    float *y) {
    return qmm(err, impl, pool, l, x, m, y, m > ENG_CPU_GEMV_MAX);
}

typedef struct f16_job {
    eng_cpu_f16mm_fn *fn;
    const uint16_t *w;
    int n, k, m;
    const float *x;
    float *y;
} f16_job;

static void f16_task(void *ctx, int tid, int nt) {
    const f16_job *j = ctx;
    /* rows split in multiples of 16 so no two threads share a cache line of y */
    int blocks = (j->n + 15) / 16;
    int r0 = (int)((long long)blocks * tid / nt) * 16, r1 = (int)((long long)blocks * (tid + 1) / nt) * 16;
    if (r1 > j->n) r1 = j->n;
    for (int m0 = 0; m0 < j->m && r0 < r1; m0 += ENG_CPU_KERN_M) {
        int mc = j->m - m0 < ENG_CPU_KERN_M ? j->m - m0 : ENG_CPU_KERN_M;
        j->fn(j->w, j->n, j->k, j->x + (size_t)m0 * j->k, mc, r0, r1, j->y + (size_t)m0 * j->n);
    }
}

int eng_cpu_f16_matmul(char *err, eng_cpu_impl impl, eng_cpu_pool *pool, const uint16_t *w, int n, int k,
                       const float *x, int m, float *y) {
    /* NULL: -O3 cannot see that pick() sets them whenever it returns 0 (maybe-uninitialized) */
    eng_cpu_qmm_fn *q = NULL;
    eng_cpu_qmv_fn *v = NULL;
    eng_cpu_f16mm_fn *f = NULL;
    if (n <= 0 || k <= 0 || m <= 0)
        return awq_seterr(err, AWQ_EINVAL, "fp16 matmul shape n=%d k=%d m=%d: all must be positive", n, k, m);
    int rc = pick(err, impl, &q, &v, &f);
    if (rc) return rc;
    f16_job j = {f, w, n, k, m, x, y};
    eng_cpu_pool_run(pool, f16_task, &j);
    return 0;
}
