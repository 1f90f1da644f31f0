/* cpu_matmul_avx512.c - AVX-512 kernels (built with -mavx512f/bw/vl/dq, chosen at run time).
 *
 * AWQ tile: 16 packed columns = one 64-byte piece of a weight row = 128 outputs. A row's int32
 * vector w gives nibble i of all 16 columns with one shift and one vpermps against the table
 * {0..15} (vpermps reads only the low 4 bits of each index lane), so 8 vectors of 16 floats
 * hold the 128 weights in "nibble layout": vector i, lane c = output 8c + ORDER[i]. The
 * products accumulate in that layout; zeros are packed the same way (same extraction), scales
 * are gathered into it once per group, and outputs are put back in natural order at the end.
 * Per 64 bytes of weights: 7 shifts, 8 permutes, 8 FMAs, spread over the two vector ports.
 */
#include <immintrin.h>
#include <string.h>

#include "cpu_kern.h"

static const int ORDER[8] = {0, 2, 4, 6, 1, 3, 5, 7};

/* rows ahead to prefetch in the streaming GEMV (0: none, leave it to the hardware) */
#ifndef PF_ROWS
#define PF_ROWS 12
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

/* Scales of group g for the 16 columns at t (w valid), gathered into nibble layout, and the
 * zeros extracted the same way as the weights. */
static inline void group_params(const eng_qlinear *l, int g, int t, int w, const __m512i *gidx, __m512 lut,
                                __m512 *sv, __m512 *zv) {
    float sbuf[128] __attribute__((aligned(64)));
    const uint16_t *sr = l->scales + (size_t)g * l->out + (size_t)t * 8;
    for (int j = 0; j < 4; j++) {
        int valid = 8 * w - 32 * j;
        __mmask32 mh = valid >= 32 ? 0xffffffffu : valid <= 0 ? 0u : (__mmask32)((1u << valid) - 1u);
        __m512i h = _mm512_maskz_loadu_epi16(mh, sr + 32 * j);
        _mm512_store_ps(sbuf + 32 * j, _mm512_cvtph_ps(_mm512_castsi512_si256(h)));
        _mm512_store_ps(sbuf + 32 * j + 16, _mm512_cvtph_ps(_mm512_extracti64x4_epi64(h, 1)));
    }
    __m512i qz = _mm512_maskz_loadu_epi32((__mmask16)((1u << w) - 1u), l->qzeros + (size_t)g * (l->out / 8) + t);
    for (int i = 0; i < 8; i++) {
        sv[i] = _mm512_i32gather_ps(gidx[i], sbuf, 4);
        zv[i] = NIB(qz, i, lut);
    }
}

/* acc (8 nibble vectors) += x * row, one FMA per nibble vector */
#define ROW_FMA(acc, wv, xv)                                                                                   \
    do {                                                                                                       \
        _Pragma("GCC unroll 8") for (int i_ = 0; i_ < 8; i_++) (acc)[i_] =                                     \
            _mm512_fmadd_ps((xv), NIB((wv), i_, lut), (acc)[i_]);                                              \
    } while (0)

/* The streaming GEMV. Rows are read whole (the thread's columns of each row, contiguous), four
 * rows at a time so the hardware prefetchers follow four sequential streams; the running sums of
 * every tile live in gacc (L1/L2) and are loaded and stored once per four rows. Per output the
 * operations and their order are those of the GEMM: acc = 0, one FMA per k ascending, then
 * group_finish, so the two paths stay bitwise identical. */
static void gemv512(const eng_qlinear *l, const float *x, const float *xs, int m, int c0, int c1, float *yacc,
                    float *gacc, const __m512i *gidx) {
    const int in = l->in, G = l->group, C = l->out / 8, ng = in / G, nt = (c1 - c0 + 15) / 16;
    const __m512 lut = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const int rem = (c1 - c0) % 16;
    const __mmask16 mlast = rem ? (__mmask16)((1u << rem) - 1u) : (__mmask16)0xffff;
    for (int g = 0; g < ng; g++) {
        const int32_t *qw = l->qweight + (size_t)g * G * C + c0;
        int k = 0;
        for (; k + 4 <= G; k += 4) {
            const int32_t *r0 = qw + (size_t)k * C, *r1 = r0 + C, *r2 = r1 + C, *r3 = r2 + C;
            for (int t = 0; t < nt; t++) {
                const __mmask16 mk = t == nt - 1 ? mlast : (__mmask16)0xffff;
#if PF_ROWS > 0
                _mm_prefetch((const char *)(r0 + (size_t)PF_ROWS * C + 16 * t), _MM_HINT_T0);
                _mm_prefetch((const char *)(r1 + (size_t)PF_ROWS * C + 16 * t), _MM_HINT_T0);
                _mm_prefetch((const char *)(r2 + (size_t)PF_ROWS * C + 16 * t), _MM_HINT_T0);
                _mm_prefetch((const char *)(r3 + (size_t)PF_ROWS * C + 16 * t), _MM_HINT_T0);
#endif
                const __m512i w0 = _mm512_maskz_loadu_epi32(mk, r0 + 16 * t), w1 = _mm512_maskz_loadu_epi32(mk, r1 + 16 * t);
                const __m512i w2 = _mm512_maskz_loadu_epi32(mk, r2 + 16 * t), w3 = _mm512_maskz_loadu_epi32(mk, r3 + 16 * t);
                for (int mi = 0; mi < m; mi++) {
                    const float *xk = x + (size_t)mi * in + (size_t)g * G + k;
                    float *ab = gacc + ((size_t)t * m + mi) * 128;
                    __m512 a[8];
                    for (int i = 0; i < 8; i++) a[i] = k ? _mm512_load_ps(ab + 16 * i) : _mm512_setzero_ps();
                    ROW_FMA(a, w0, _mm512_set1_ps(xk[0]));
                    ROW_FMA(a, w1, _mm512_set1_ps(xk[1]));
                    ROW_FMA(a, w2, _mm512_set1_ps(xk[2]));
                    ROW_FMA(a, w3, _mm512_set1_ps(xk[3]));
                    for (int i = 0; i < 8; i++) _mm512_store_ps(ab + 16 * i, a[i]);
                }
            }
        }
        for (; k < G; k++) { /* groups that are not a multiple of 4 rows */
            const int32_t *r0 = qw + (size_t)k * C;
            for (int t = 0; t < nt; t++) {
                const __m512i w0 = _mm512_maskz_loadu_epi32(t == nt - 1 ? mlast : (__mmask16)0xffff, r0 + 16 * t);
                for (int mi = 0; mi < m; mi++) {
                    float *ab = gacc + ((size_t)t * m + mi) * 128;
                    __m512 a[8];
                    for (int i = 0; i < 8; i++) a[i] = k ? _mm512_load_ps(ab + 16 * i) : _mm512_setzero_ps();
                    ROW_FMA(a, w0, _mm512_set1_ps(x[(size_t)mi * in + (size_t)g * G + k]));
                    for (int i = 0; i < 8; i++) _mm512_store_ps(ab + 16 * i, a[i]);
                }
            }
        }
        for (int t = 0; t < nt; t++) {
            __m512 sv[8], zv[8], a[8];
            group_params(l, g, c0 + 16 * t, t == nt - 1 && rem ? rem : 16, gidx, lut, sv, zv);
            for (int mi = 0; mi < m; mi++) {
                const float *ab = gacc + ((size_t)t * m + mi) * 128;
                for (int i = 0; i < 8; i++) a[i] = _mm512_load_ps(ab + 16 * i);
                group_finish(yacc + ((size_t)t * m + mi) * 128, a, sv, zv, xs[(size_t)mi * ng + g]);
            }
        }
    }
}

/* GEMM: per group and tile, convert the block once into tile ((G, 8, 16) floats) and reuse it for
 * every token, two tokens at a time in registers. */
static void gemm512(const eng_qlinear *l, const float *x, const float *xs, int m, int c0, int c1, float *yacc,
                    float *tile, const __m512i *gidx) {
    const int in = l->in, G = l->group, C = l->out / 8, ng = in / G;
    const __m512 lut = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    for (int g = 0; g < ng; g++) {
        for (int t = c0; t < c1; t += 16) {
            const int w = c1 - t < 16 ? c1 - t : 16;
            const __mmask16 mk = (__mmask16)((1u << w) - 1u);
            float(*yb)[128] = (float(*)[128])(yacc + (size_t)(t - c0) / 16 * (size_t)m * 128);
            __m512 sv[8], zv[8];
            group_params(l, g, t, w, gidx, lut, sv, zv);
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
    }
}

void eng_cpu_qmm_avx512(const eng_qlinear *l, const float *x, const float *xs, int m, int c0, int c1, float *y,
                        bool gemm, float *tile, float *accbuf) {
    const int out = l->out, nt = (c1 - c0 + 15) / 16;
    __m512i gidx[8];
    for (int i = 0; i < 8; i++) {
        int v[16];
        for (int c = 0; c < 16; c++) v[c] = 8 * c + ORDER[i];
        gidx[i] = _mm512_loadu_si512(v);
    }
    memset(accbuf, 0, sizeof(float) * (size_t)m * (size_t)nt * 128);
    if (gemm)
        gemm512(l, x, xs, m, c0, c1, accbuf, tile, gidx);
    else
        gemv512(l, x, xs, m, c0, c1, accbuf, accbuf + (size_t)m * nt * 128, gidx);
    for (int t = c0; t < c1; t += 16) {
        const int w = c1 - t < 16 ? c1 - t : 16;
        float(*yb)[128] = (float(*)[128])(accbuf + (size_t)(t - c0) / 16 * (size_t)m * 128);
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
