/* cpu_matmul_avx512.c - AVX-512 kernels (built with -mavx512f/bw/vl/dq, chosen at run time).
 *
 * AWQ tile: 16 packed columns = one 64-byte piece of a weight row = 128 outputs. A row's int32
 * vector w gives nibble i of all 16 columns with one shift and one vpermps against the table
 * {0..15} (vpermps reads only the low 4 bits of each index lane), so 8 vectors of 16 floats
 * hold the 128 weights in "nibble layout": vector i, lane c = output 8c + ORDER[i]. The
 * products accumulate in that layout; zeros are packed the same way (same extraction), scales
 * are gathered into it once per group, and outputs are put back in natural order at the end.
 * Per 64 bytes of weights: 7 shifts, 8 permutes, 8 FMAs, spread over the two vector ports:
 * about 12 cycles, i.e. 10+ GB/s per core, so decode is bound by how the rows are streamed
 * (see eng_cpu_qmv_avx512), not by this arithmetic.
 */
#include <immintrin.h>
#include <string.h>

#include "cpu_kern.h"

static const int ORDER[8] = {0, 2, 4, 6, 1, 3, 5, 7};

/* Software prefetch distance of the streaming GEMV, in bytes of the item's rows (so in rows:
 * PF_BYTES / row run): the hardware streamer restarts at every row run (a new page), and
 * prefetching tens of KB ahead keeps enough misses in flight (measured on 1 KB runs: 12 rows
 * ahead reached ~70 % of the probe, 48 rows ahead 80-100 % on one thread). Into L2 (T1): the
 * distance exceeds L1. Both overridable (-D) for experiments. */
#ifndef PF_BYTES
#define PF_BYTES (48 * 1024)
#endif
#ifndef PF_HINT
#define PF_HINT _MM_HINT_T1
#endif

#define NIB(w, i, lut) _mm512_permutexvar_ps(_mm512_srli_epi32((w), 4 * (i)), (lut))

/* y_nib (128 floats) += s * (acc - z * xs), per nibble vector; identical in both paths */
static inline void group_finish(float *yb, const __m512 *acc, const __m512 *sv, const __m512 *zv, float xs) {
    __m512 xsv = _mm512_set1_ps(xs);
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) {
        __m512 d = _mm512_fnmadd_ps(zv[i], xsv, acc[i]);
        _mm512_store_ps(yb + 16 * i, _mm512_fmadd_ps(sv[i], d, _mm512_load_ps(yb + 16 * i)));
    }
}

/* Word indices that move a tile's 128 fp16 scales (natural order, 4 vectors H0..H3 of 32) into
 * nibble layout with two rounds of vpermt2w instead of eight gathers (which cost ~10 % of a
 * GEMV at one group per 128 rows). Round 1, for q = 0, 1: A_q = (H0:H1)[ia[q]] holds, at word
 * 8r + c, s[8c + ORDER[4q + r]] for columns c < 8; B_q = (H2:H3)[ia[q]] the same for c + 8.
 * Round 2, for p = 0, 1: (A_q:B_q)[ib[p]] holds out vectors i = 4q + 2p and i + 1 (16 words
 * each: columns 0..7 from A, 8..15 from B). */
typedef struct scale_perm {
    __m512i ia[2], ib[2];
} scale_perm;

static inline void scale_perm_init(scale_perm *sp) {
    for (int q = 0; q < 2; q++) {
        short v[32];
        for (int r = 0; r < 4; r++)
            for (int c = 0; c < 8; c++) v[8 * r + c] = (short)(8 * c + ORDER[4 * q + r]);
        sp->ia[q] = _mm512_loadu_si512(v);
    }
    for (int p = 0; p < 2; p++) {
        short v[32];
        for (int j = 0; j < 32; j++) {
            int r = 2 * p + (j >= 16), jj = j % 16;
            v[j] = (short)(jj < 8 ? 8 * r + jj : 32 + 8 * r + jj - 8);
        }
        sp->ib[p] = _mm512_loadu_si512(v);
    }
}

/* Scales of group g for the w valid packed columns at t, in nibble layout, and the zeros
 * extracted the same way as the weights. */
static inline void group_params(const eng_qlinear *l, int g, int t, int w, const scale_perm *sp, __m512 lut,
                                __m512 *sv, __m512 *zv) {
    const uint16_t *sr = l->scales + (size_t)g * l->out + (size_t)t * 8;
    __m512i h[4];
    for (int j = 0; j < 4; j++) {
        int valid = 8 * w - 32 * j;
        __mmask32 mh = valid >= 32 ? 0xffffffffu : valid <= 0 ? 0u : (__mmask32)((1u << valid) - 1u);
        h[j] = _mm512_maskz_loadu_epi16(mh, sr + 32 * j);
    }
    for (int q = 0; q < 2; q++) {
        __m512i A = _mm512_permutex2var_epi16(h[0], sp->ia[q], h[1]);
        __m512i B = _mm512_permutex2var_epi16(h[2], sp->ia[q], h[3]);
        for (int p = 0; p < 2; p++) {
            __m512i R = _mm512_permutex2var_epi16(A, sp->ib[p], B);
            sv[4 * q + 2 * p] = _mm512_cvtph_ps(_mm512_castsi512_si256(R));
            sv[4 * q + 2 * p + 1] = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(R, 1));
        }
    }
    __m512i qz = _mm512_maskz_loadu_epi32((__mmask16)((1u << w) - 1u), l->qzeros + (size_t)g * (l->out / 8) + t);
    for (int i = 0; i < 8; i++) zv[i] = NIB(qz, i, lut);
}

/* acc (8 nibble vectors) += x * row, one FMA per nibble vector */
#define ROW_FMA(acc, wv, xv)                                                                                   \
    do {                                                                                                       \
        const __m512 xv_ = (xv);                                                                               \
        _Pragma("GCC unroll 8") for (int i_ = 0; i_ < 8; i_++) (acc)[i_] =                                     \
            _mm512_fmadd_ps(xv_, NIB((wv), i_, lut), (acc)[i_]);                                               \
    } while (0)

/* =============================================================== streaming GEMV ==== */

/* ab (one tile's 8 nibble vectors of running sums) += x[j] * row j for the four rows r[j]; the
 * first block of a group starts from zero. Inlined into two loops so `first` is a constant and
 * the sums stay in registers (a generic loop kept them in a stack array). */
static inline __attribute__((always_inline)) void block4(float *ab, const int32_t *r0, const int32_t *r1,
                                                         const int32_t *r2, const int32_t *r3, __mmask16 mk,
                                                         const float *xk, bool first, __m512 lut) {
    __m512 a[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) a[i] = first ? _mm512_setzero_ps() : _mm512_load_ps(ab + 16 * i);
    const __m512i w0 = _mm512_maskz_loadu_epi32(mk, r0), w1 = _mm512_maskz_loadu_epi32(mk, r1);
    const __m512i w2 = _mm512_maskz_loadu_epi32(mk, r2), w3 = _mm512_maskz_loadu_epi32(mk, r3);
    ROW_FMA(a, w0, _mm512_set1_ps(xk[0]));
    ROW_FMA(a, w1, _mm512_set1_ps(xk[1]));
    ROW_FMA(a, w2, _mm512_set1_ps(xk[2]));
    ROW_FMA(a, w3, _mm512_set1_ps(xk[3]));
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) _mm512_store_ps(ab + 16 * i, a[i]);
}

/* block4 for eight rows (r, r + C, ..., r + 7C): half the loads and stores of the sums; the
 * main loop (block4 and single rows finish groups that are not a multiple of 8 rows) */
static inline __attribute__((always_inline)) void block8(float *ab, const int32_t *r, size_t C, __mmask16 mk,
                                                         const float *xk, bool first, __m512 lut) {
    __m512 a[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) a[i] = first ? _mm512_setzero_ps() : _mm512_load_ps(ab + 16 * i);
#pragma GCC unroll 8
    for (int j = 0; j < 8; j++) {
        const __m512i wv = _mm512_maskz_loadu_epi32(mk, r + (size_t)j * C);
        ROW_FMA(a, wv, _mm512_set1_ps(xk[j]));
    }
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) _mm512_store_ps(ab + 16 * i, a[i]);
}

/* One work item (see cpu_kern.h). Rows are read eight at a time across the block's columns, so
 * the hardware follows eight sequential 2 KB runs and software prefetch runs PF_BYTES ahead; the
 * running sums of the block (gacc, m x 4096 floats) stay in L1, loaded and stored once per eight
 * rows. Per output the operations and their order are the GEMM's: acc = 0, one FMA per k
 * ascending, group_finish per group, chunk total from 0. Tokens are the outer loop (the eight
 * row runs are re-read from L1 for each) so nothing per-row is kept across tokens. */
void eng_cpu_qmv_avx512(const eng_qlinear *l, const float *x, const float *xs, int m, int g0, int g1, int c0,
                        int c1, float *part, size_t pstride, float *scratch) {
    const int in = l->in, G = l->group, C = l->out / 8, ng = in / G, nt = (c1 - c0 + 15) / 16;
    const __m512 lut = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const int rem = (c1 - c0) % 16;
    const __mmask16 mlast = rem ? (__mmask16)((1u << rem) - 1u) : (__mmask16)0xffff;
    /* prefetch distance in rows, a multiple of 4 (the next eight-row block's rows stay in step) */
    int pf = PF_BYTES / (64 * nt);
    pf = pf < 4 ? 4 : pf > 256 ? 256 : pf & ~3;
    const size_t pfo = (size_t)pf * C;
    scale_perm sp;
    scale_perm_init(&sp);
    float *yacc = scratch, *gacc = scratch + (size_t)m * nt * 128; /* (m, nt, 128) each */
    memset(yacc, 0, sizeof(float) * (size_t)m * nt * 128);
    for (int g = g0; g < g1; g++) {
        const int32_t *qw = l->qweight + (size_t)g * G * C + c0;
        int k = 0;
        for (; k + 8 <= G; k += 8) {
            const int32_t *r0 = qw + (size_t)k * C;
            for (int mi = 0; mi < m; mi++) {
                const float *xk = x + (size_t)mi * in + (size_t)g * G + k;
                float *ab = gacc + (size_t)mi * nt * 128;
                for (int t = 0; t < nt; t++) {
                    const __mmask16 mk = t == nt - 1 ? mlast : (__mmask16)0xffff;
                    if (mi == 0)
                        for (int j = 0; j < 8; j++)
                            _mm_prefetch((const char *)(r0 + (size_t)j * C + pfo + 16 * t), PF_HINT);
                    if (k == 0)
                        block8(ab + t * 128, r0 + 16 * t, (size_t)C, mk, xk, true, lut);
                    else
                        block8(ab + t * 128, r0 + 16 * t, (size_t)C, mk, xk, false, lut);
                }
            }
        }
        for (; k + 4 <= G; k += 4) {
            const int32_t *r0 = qw + (size_t)k * C, *r1 = r0 + C, *r2 = r1 + C, *r3 = r2 + C;
            for (int mi = 0; mi < m; mi++) {
                const float *xk = x + (size_t)mi * in + (size_t)g * G + k;
                float *ab = gacc + (size_t)mi * nt * 128;
                for (int t = 0; t < nt; t++) {
                    const __mmask16 mk = t == nt - 1 ? mlast : (__mmask16)0xffff;
                    if (mi == 0) {
                        _mm_prefetch((const char *)(r0 + pfo + 16 * t), PF_HINT);
                        _mm_prefetch((const char *)(r1 + pfo + 16 * t), PF_HINT);
                        _mm_prefetch((const char *)(r2 + pfo + 16 * t), PF_HINT);
                        _mm_prefetch((const char *)(r3 + pfo + 16 * t), PF_HINT);
                    }
                    if (k == 0)
                        block4(ab + t * 128, r0 + 16 * t, r1 + 16 * t, r2 + 16 * t, r3 + 16 * t, mk, xk, true, lut);
                    else
                        block4(ab + t * 128, r0 + 16 * t, r1 + 16 * t, r2 + 16 * t, r3 + 16 * t, mk, xk, false, lut);
                }
            }
        }
        for (; k < G; k++) { /* groups that are not a multiple of 4 rows */
            const int32_t *r0 = qw + (size_t)k * C;
            for (int mi = 0; mi < m; mi++) {
                float *ab = gacc + (size_t)mi * nt * 128;
                const __m512 xv = _mm512_set1_ps(x[(size_t)mi * in + (size_t)g * G + k]);
                for (int t = 0; t < nt; t++) {
                    const __m512i w0 = _mm512_maskz_loadu_epi32(t == nt - 1 ? mlast : (__mmask16)0xffff, r0 + 16 * t);
                    __m512 a[8];
#pragma GCC unroll 8
                    for (int i = 0; i < 8; i++) a[i] = k ? _mm512_load_ps(ab + t * 128 + 16 * i) : _mm512_setzero_ps();
                    ROW_FMA(a, w0, xv);
#pragma GCC unroll 8
                    for (int i = 0; i < 8; i++) _mm512_store_ps(ab + t * 128 + 16 * i, a[i]);
                }
            }
        }
        for (int t = 0; t < nt; t++) {
            __m512 sv[8], zv[8], a[8];
            group_params(l, g, c0 + 16 * t, t == nt - 1 && rem ? rem : 16, &sp, lut, sv, zv);
            for (int mi = 0; mi < m; mi++) {
                const float *ab = gacc + ((size_t)mi * nt + t) * 128;
#pragma GCC unroll 8
                for (int i = 0; i < 8; i++) a[i] = _mm512_load_ps(ab + 16 * i);
                group_finish(yacc + ((size_t)mi * nt + t) * 128, a, sv, zv, xs[(size_t)mi * ng + g]);
            }
        }
    }
    for (int mi = 0; mi < m; mi++)
        for (int t = 0; t < nt; t++) {
            const int w = t == nt - 1 && rem ? rem : 16;
            const float *yb = yacc + ((size_t)mi * nt + t) * 128;
            float *pm = part + (size_t)mi * pstride + (size_t)t * 128;
            for (int c = 0; c < w; c++)
                for (int i = 0; i < 8; i++) pm[c * 8 + ORDER[i]] = yb[16 * i + c];
        }
}

/* =============================================================== blocked GEMM ==== */

/* Prefill is compute-bound (2 flops per weight per token): the GEMM must keep both FMA ports
 * busy. Each (group x 16-column tile) block is dequantized slice by slice: GEMM_NV of its 8
 * nibble vectors for all G rows (G x GEMM_NV x 16 floats, 32 KB for G = 128 and NV 4, so it
 * stays in L1), then a register-blocked microkernel runs GEMM_R tokens x GEMM_NV vectors of
 * fp32 accumulators (24 zmm) down the group's rows: per row GEMM_NV loads of the slice, GEMM_R
 * broadcasts of x and GEMM_R x GEMM_NV FMAs. The previous kernel (2 tokens x 8 vectors against
 * a 64 KB tile) needed 64 bytes from L2 per FMA cycle and reached ~35 % of the FMA peak.
 *
 * Measured on the 2-core dev VM, 1 thread, k_proj shape, 64 tokens, best of 10 (bench/cpu_gemv
 * --gemm 64, variants built with -D): R x NV = 6 x 4 and 5 x 4 80 %, 7 x 4 and 8 x 2 78 %,
 * 10 x 2 / 14 x 2 77 %, 16 x 1 70 % (17 loads per 16 FMAs), 12 x 2 63 %, 4 x 4 ~50 %, 3 x 8
 * ~33 % (a 64 KB slice does not fit L1). Of the 6 x 4 kernel's time the microkernel is ~88 %
 * (running at ~95 % of the FMA peak), the slice conversion ~10 %, the rest (x transposition,
 * scales, output order, the dispatcher's group sums) a few %. Column block 8 vs 16 tiles and
 * 128 tokens per kernel call instead of 64 made no difference that stood out of the noise.
 *
 * Per (token, output, group) the operations are the GEMV's, in the same order: acc = 0, one FMA
 * per row k ascending, then y_chunk = fma(s, fnma(z, xs, acc), y_chunk) (group_finish), chunk
 * partials from 0 added in chunk order. Which tokens share a register block never changes a
 * token's result (batch invariance). All four are -D overridable for such experiments. */
#ifndef GEMM_NV
#define GEMM_NV 4
#endif
#ifndef GEMM_R
#define GEMM_R 6
#endif
/* the next block's rows go to L1 (T1, into L2, measured the same) */
#ifndef GEMM_PF_HINT
#define GEMM_PF_HINT _MM_HINT_T0
#endif
/* Tiles per column block: the block's chunk partials and totals (2 x 32 KB per tile at 64
 * tokens, 1 MB for the block) stay in L2 while the block walks down all groups, instead of
 * every group walking all of a thread's tiles (56 for gate/up on 2 threads: 3.7 MB of sums).
 * x is transposed once per (block, group): ~1 % of the block's work. */
#ifndef GEMM_CB
#define GEMM_CB 16
#endif
_Static_assert(8 % GEMM_NV == 0, "GEMM_NV must divide the 8 nibble vectors");

/* What a microkernel call needs besides its tokens: the block's scales and zeros in nibble
 * layout ((8, 16) floats each; in memory, not registers: the microkernel needs its 24
 * accumulators and operands), which nibble vectors, where this group sits in its k-chunk, and
 * the rows of the next block to prefetch. */
typedef struct mk_blk {
    const float *sv, *zv;
    int i0;             /* first nibble vector of the slice */
    bool first, last;   /* the group opens / closes its k-chunk */
    bool tfirst;        /* ... and that chunk is the first */
    const int32_t *pf;  /* NULL, or row 0 of the next block: prefetched one row per k */
    size_t pfs;         /* its row stride (int32) */
} mk_blk;

/* R tokens (xt: their group's x transposed, (G, GEMM_R) floats; xs: their group sums, stride ng)
 * x GEMM_NV nibble vectors of slice (G, GEMM_NV, 16): accumulate the group, then finish (token
 * r's 128 floats at + r * 128 of each):
 *   chunk = fma(s, fnma(z, xs, acc), first ? 0 : ych);   last ? ytot = (tfirst ? 0 : ytot) + chunk
 *                                                              : ych = chunk
 * which is group_finish into a chunk partial from 0 and the partials added in chunk order, as
 * the GEMV does, without a pass over the partials per chunk (that pass cost ~4 %). R is a
 * constant at every call (see mk_rows) so the accumulators live in registers. */
static inline __attribute__((always_inline)) void mk(const float *sl, const float *xt, int G, int R,
                                                     const float *xs, size_t ng, const mk_blk *b, float *ych,
                                                     float *ytot) {
    __m512 a[16][GEMM_NV]; /* R <= 16; only R rows are used and kept in registers */
#pragma GCC unroll 16
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int v = 0; v < GEMM_NV; v++) a[r][v] = _mm512_setzero_ps();
    const int32_t *pf = b->pf;
    for (int k = 0; k < G; k++) {
        if (pf) _mm_prefetch((const char *)(pf + (size_t)k * b->pfs), GEMM_PF_HINT);
        __m512 w[GEMM_NV];
#pragma GCC unroll 8
        for (int v = 0; v < GEMM_NV; v++) w[v] = _mm512_load_ps(sl + ((size_t)k * GEMM_NV + v) * 16);
#pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
            const __m512 bx = _mm512_set1_ps(xt[(size_t)k * GEMM_R + r]);
#pragma GCC unroll 8
            for (int v = 0; v < GEMM_NV; v++) a[r][v] = _mm512_fmadd_ps(bx, w[v], a[r][v]);
        }
    }
    const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) {
        const __m512 xsv = _mm512_set1_ps(xs[(size_t)r * ng]);
#pragma GCC unroll 8
        for (int v = 0; v < GEMM_NV; v++) {
            const size_t o = (size_t)r * 128 + 16 * (size_t)(b->i0 + v);
            const __m512 d = _mm512_fnmadd_ps(_mm512_load_ps(b->zv + 16 * (b->i0 + v)), xsv, a[r][v]);
            const __m512 c = _mm512_fmadd_ps(_mm512_load_ps(b->sv + 16 * (b->i0 + v)), d,
                                             b->first ? zero : _mm512_load_ps(ych + o));
            if (b->last)
                _mm512_store_ps(ytot + o, _mm512_add_ps(b->tfirst ? zero : _mm512_load_ps(ytot + o), c));
            else
                _mm512_store_ps(ych + o, c);
        }
    }
}

/* mk for n < GEMM_R tokens: one specialisation per count (a loop over a variable count would
 * spill the accumulators to the stack) */
static void mk_rows(int n, const float *sl, const float *xt, int G, const float *xs, size_t ng, const mk_blk *b,
                    float *ych, float *ytot) {
    switch (n) {
#define MK_CASE(R)                                                                                             \
    case R: mk(sl, xt, G, R, xs, ng, b, ych, ytot); break;
        MK_CASE(1) MK_CASE(2) MK_CASE(3) MK_CASE(4) MK_CASE(5) MK_CASE(6) MK_CASE(7) MK_CASE(8)
        MK_CASE(9) MK_CASE(10) MK_CASE(11) MK_CASE(12) MK_CASE(13) MK_CASE(14) MK_CASE(15) MK_CASE(16)
#undef MK_CASE
    default: break;
    }
}
_Static_assert(GEMM_R <= 16, "mk_rows specialises up to 16 tokens");

/* token blocks of one kernel call; the tile buffer (G * ENG_CPU_TILE_ROW floats) must hold a
 * slice and the transposed x of all of them */
#define GEMM_BLOCKS ((ENG_CPU_KERN_M + GEMM_R - 1) / GEMM_R)
_Static_assert(GEMM_NV * 16 + GEMM_BLOCKS * GEMM_R <= ENG_CPU_TILE_ROW, "GEMM scratch exceeds the tile buffer");

/* The blocked GEMM over packed columns [c0, c1) for m tokens (see cpu_kern.h). tile holds one
 * slice (G, GEMM_NV, 16) and then x of the current group transposed per token block, (blocks,
 * G, GEMM_R): the broadcasts then read consecutive floats (rows of x lie `in` floats apart, a
 * multiple of 4 KB for every real model, so GEMM_R of them would share one L1 set); accbuf the
 * chunk partials ych and totals ytot, (nt, m, 128) each, every element written before it is
 * read (no clearing pass). */
void eng_cpu_qmm_avx512(const eng_qlinear *l, const float *x, const float *xs, int m, int c0, int c1, float *y,
                        bool gemm, float *tile, float *accbuf) {
    (void)gemm; /* the GEMV goes through eng_cpu_qmv_avx512 */
    const int in = l->in, out = l->out, G = l->group, C = out / 8, ng = in / G, kc = eng_cpu_kchunk(G);
    const int nt = (c1 - c0 + 15) / 16;
    const __m512 lut = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    scale_perm sp;
    scale_perm_init(&sp);
    float *ych = accbuf, *ytot = accbuf + (size_t)m * nt * 128; /* (nt, m, 128) each */
    float *xt = tile + (size_t)G * GEMM_NV * 16;                 /* (blocks, G, GEMM_R) */
    _Alignas(64) float sv[8 * 16], zv[8 * 16];
    mk_blk b = {.sv = sv, .zv = zv, .pfs = (size_t)C};
    for (int cb = c0; cb < c1; cb += 16 * GEMM_CB) {
        const int cb1 = c1 - cb < 16 * GEMM_CB ? c1 : cb + 16 * GEMM_CB;
        for (int g = 0; g < ng; g++) {
            b.first = g % kc == 0;
            b.last = (g + 1) % kc == 0 || g == ng - 1;
            b.tfirst = g < kc;
            for (int mi = 0; mi < m; mi++) /* unused lanes of a last partial block stay unread */
                for (int k = 0; k < G; k++)
                    xt[((size_t)(mi / GEMM_R) * G + k) * GEMM_R + mi % GEMM_R] =
                        x[(size_t)mi * in + (size_t)g * G + k];
            for (int t = cb; t < cb1; t += 16) {
                const int w = cb1 - t < 16 ? cb1 - t : 16;
                const __mmask16 mk16 = (__mmask16)((1u << w) - 1u);
                const size_t yo = (size_t)(t - c0) / 16 * (size_t)m * 128;
                __m512 svr[8], zvr[8];
                group_params(l, g, t, w, &sp, lut, svr, zvr);
                for (int i = 0; i < 8; i++) {
                    _mm512_store_ps(sv + 16 * i, svr[i]);
                    _mm512_store_ps(zv + 16 * i, zvr[i]);
                }
                const int32_t *qw = l->qweight + (size_t)g * G * C + t;
                /* the next block's rows: each is a new cache line (rows lie 4 C bytes apart), and
                 * converting a slice waited on them */
                const int32_t *next = t + 16 < cb1  ? qw + 16
                                      : g + 1 < ng  ? l->qweight + (size_t)(g + 1) * G * C + cb
                                      : cb1 < c1    ? l->qweight + cb1
                                                    : NULL;
                for (b.i0 = 0; b.i0 < 8; b.i0 += GEMM_NV) {
                    for (int k = 0; k < G; k++) {
                        const __m512i wv = _mm512_maskz_loadu_epi32(mk16, qw + (size_t)k * C);
#pragma GCC unroll 8
                        for (int v = 0; v < GEMM_NV; v++)
                            _mm512_store_ps(tile + ((size_t)k * GEMM_NV + v) * 16, NIB(wv, b.i0 + v, lut));
                    }
                    int mi = 0;
                    for (; mi + GEMM_R <= m; mi += GEMM_R) {
                        b.pf = b.i0 == 0 && mi == 0 ? next : NULL;
                        mk(tile, xt + (size_t)mi * G, G, GEMM_R, xs + (size_t)mi * ng + g, (size_t)ng, &b,
                           ych + yo + (size_t)mi * 128, ytot + yo + (size_t)mi * 128);
                    }
                    if (mi < m) {
                        b.pf = b.i0 == 0 && mi == 0 ? next : NULL;
                        mk_rows(m - mi, tile, xt + (size_t)mi * G, G, xs + (size_t)mi * ng + g, (size_t)ng, &b,
                                ych + yo + (size_t)mi * 128, ytot + yo + (size_t)mi * 128);
                    }
                }
            }
        }
    }
    for (int t = c0; t < c1; t += 16) {
        const int w = c1 - t < 16 ? c1 - t : 16;
        float(*yb)[128] = (float(*)[128])(ytot + (size_t)(t - c0) / 16 * (size_t)m * 128);
        for (int mi = 0; mi < m; mi++) {
            float *ym = y + (size_t)mi * out + (size_t)t * 8;
            for (int c = 0; c < w; c++)
                for (int i = 0; i < 8; i++) ym[c * 8 + ORDER[i]] = yb[mi][16 * i + c];
        }
    }
}

void eng_cpu_f16mm_avx512(const uint16_t *w, int n, int k, const float *x, int m, int r0, int r1, float *y) {
    for (int r = r0; r < r1; r++) {
        const uint16_t *wr = w + (size_t)r * k;
        for (int mi = 0; mi < m; mi++) {
            const float *xm = x + (size_t)mi * k;
            __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            int j = 0;
            for (; j + 64 <= k; j += 64) {
                a0 = _mm512_fmadd_ps(_mm512_loadu_ps(xm + j), _mm512_cvtph_ps(_mm256_loadu_si256((const void *)(wr + j))), a0);
                a1 = _mm512_fmadd_ps(_mm512_loadu_ps(xm + j + 16),
                                     _mm512_cvtph_ps(_mm256_loadu_si256((const void *)(wr + j + 16))), a1);
                a2 = _mm512_fmadd_ps(_mm512_loadu_ps(xm + j + 32),
                                     _mm512_cvtph_ps(_mm256_loadu_si256((const void *)(wr + j + 32))), a2);
                a3 = _mm512_fmadd_ps(_mm512_loadu_ps(xm + j + 48),
                                     _mm512_cvtph_ps(_mm256_loadu_si256((const void *)(wr + j + 48))), a3);
            }
            for (; j < k; j += 16) {
                __mmask16 mk = k - j >= 16 ? 0xffff : (__mmask16)((1u << (k - j)) - 1u);
                __m512 wv = _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(mk, wr + j));
                a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mk, xm + j), wv, a0);
            }
            y[(size_t)mi * n + r] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
        }
    }
}
