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

/* Per group and tile, convert the block once into tile ((G, 8, 16) floats) and reuse it for
 * every token, two tokens at a time in registers. Outputs are summed per k-chunk (ych, from 0)
 * and the chunks added in order into ytot, exactly as the GEMV's items and reduction do. */
void eng_cpu_qmm_avx512(const eng_qlinear *l, const float *x, const float *xs, int m, int c0, int c1, float *y,
                        bool gemm, float *tile, float *accbuf) {
    (void)gemm; /* the GEMV goes through eng_cpu_qmv_avx512 */
    const int in = l->in, out = l->out, G = l->group, C = out / 8, ng = in / G, kc = eng_cpu_kchunk(G);
    const int nt = (c1 - c0 + 15) / 16;
    const __m512 lut = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    scale_perm sp;
    scale_perm_init(&sp);
    float *ych = accbuf, *ytot = accbuf + (size_t)m * nt * 128; /* (nt, m, 128) each */
    memset(accbuf, 0, sizeof(float) * 2 * (size_t)m * nt * 128);
    for (int g = 0; g < ng; g++) {
        for (int t = c0; t < c1; t += 16) {
            const int w = c1 - t < 16 ? c1 - t : 16;
            const __mmask16 mk = (__mmask16)((1u << w) - 1u);
            float(*yb)[128] = (float(*)[128])(ych + (size_t)(t - c0) / 16 * (size_t)m * 128);
            __m512 sv[8], zv[8];
            group_params(l, g, t, w, &sp, lut, sv, zv);
            const int32_t *qw = l->qweight + (size_t)g * G * C + t;
            for (int k = 0; k < G; k++) {
                __m512i wv = _mm512_maskz_loadu_epi32(mk, qw + (size_t)k * C);
#pragma GCC unroll 8
                for (int i = 0; i < 8; i++) _mm512_store_ps(tile + ((size_t)k * 8 + i) * 16, NIB(wv, i, lut));
            }
            int mi = 0;
            for (; mi + 2 <= m; mi += 2) {
                const float *x0 = x + (size_t)mi * in + (size_t)g * G, *x1 = x0 + in;
                __m512 a0[8], a1[8];
                for (int i = 0; i < 8; i++) a0[i] = a1[i] = _mm512_setzero_ps();
                for (int k = 0; k < G; k++) {
                    const float *tk = tile + (size_t)k * 128;
                    __m512 b0 = _mm512_set1_ps(x0[k]), b1 = _mm512_set1_ps(x1[k]);
#pragma GCC unroll 8
                    for (int i = 0; i < 8; i++) {
                        __m512 wv = _mm512_load_ps(tk + 16 * i);
                        a0[i] = _mm512_fmadd_ps(b0, wv, a0[i]);
                        a1[i] = _mm512_fmadd_ps(b1, wv, a1[i]);
                    }
                }
                group_finish(yb[mi], a0, sv, zv, xs[(size_t)mi * ng + g]);
                group_finish(yb[mi + 1], a1, sv, zv, xs[(size_t)(mi + 1) * ng + g]);
            }
            for (; mi < m; mi++) {
                const float *x0 = x + (size_t)mi * in + (size_t)g * G;
                __m512 a0[8];
                for (int i = 0; i < 8; i++) a0[i] = _mm512_setzero_ps();
                for (int k = 0; k < G; k++) {
                    const float *tk = tile + (size_t)k * 128;
                    __m512 b0 = _mm512_set1_ps(x0[k]);
#pragma GCC unroll 8
                    for (int i = 0; i < 8; i++) a0[i] = _mm512_fmadd_ps(b0, _mm512_load_ps(tk + 16 * i), a0[i]);
                }
                group_finish(yb[mi], a0, sv, zv, xs[(size_t)mi * ng + g]);
            }
        }
        if ((g + 1) % kc == 0 || g == ng - 1) /* end of a k-chunk: total += chunk, chunk = 0 */
            for (size_t i = 0; i < (size_t)m * nt * 128; i += 16) {
                _mm512_store_ps(ytot + i, _mm512_add_ps(_mm512_load_ps(ytot + i), _mm512_load_ps(ych + i)));
                _mm512_store_ps(ych + i, _mm512_setzero_ps());
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
