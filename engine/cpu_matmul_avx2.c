/* cpu_matmul_avx2.c - AVX2 + FMA + F16C kernels (chosen at run time when AVX-512 is absent).
 *
 * Same scheme as the AVX-512 file with 8-lane vectors: a tile is 8 packed columns (32 bytes of a
 * row, 64 outputs); nibble i of every lane is (w >> 4i) & 15 converted to float, vector i lane
 * c holding output 8c + ORDER[i]; scales are gathered into that layout once per group.
 */
#include <immintrin.h>
#include <string.h>

#include "cpu_kern.h"

static const int ORDER[8] = {0, 2, 4, 6, 1, 3, 5, 7};

#define PF_ROWS 12

static inline __m256 nib(__m256i w, int i) {
    return _mm256_cvtepi32_ps(_mm256_and_si256(_mm256_srli_epi32(w, 4 * i), _mm256_set1_epi32(15)));
}

static inline void group_finish(float *yb, const __m256 *acc, const __m256 *sv, const __m256 *zv, float xs) {
    __m256 xsv = _mm256_set1_ps(xs);
    for (int i = 0; i < 8; i++) {
        __m256 d = _mm256_fnmadd_ps(zv[i], xsv, acc[i]);
        _mm256_store_ps(yb + 8 * i, _mm256_fmadd_ps(sv[i], d, _mm256_load_ps(yb + 8 * i)));
    }
}

void eng_cpu_qmm_avx2(const eng_qlinear *l, const float *x, const float *xs, int m, int c0, int c1, float *y,
                      bool gemm, float *tile, float *accbuf) {
    const int in = l->in, out = l->out, G = l->group, C = out / 8, ng = in / G;
    __m256i gidx[8];
    for (int i = 0; i < 8; i++) {
        int v[8];
        for (int c = 0; c < 8; c++) v[c] = 8 * c + ORDER[i];
        gidx[i] = _mm256_loadu_si256((const void *)v);
    }
    float sbuf[64] __attribute__((aligned(32)));
    memset(accbuf, 0, sizeof(float) * (size_t)m * (size_t)((c1 - c0 + 7) / 8) * 64);
    for (int g = 0; g < ng; g++) {
    for (int t = c0; t < c1; t += 8) {
        const int w = c1 - t < 8 ? c1 - t : 8;
        int lanes[8];
        for (int c = 0; c < 8; c++) lanes[c] = c < w ? -1 : 0;
        const __m256i mk = _mm256_loadu_si256((const void *)lanes);
        float(*yb)[64] = (float(*)[64])(accbuf + (size_t)(t - c0) / 8 * (size_t)m * 64);
        {
            const uint16_t *sr = l->scales + (size_t)g * out + (size_t)t * 8;
            for (int c = 0; c < 8; c++)
                _mm256_store_ps(sbuf + 8 * c, c < w ? _mm256_cvtph_ps(_mm_loadu_si128((const void *)(sr + 8 * c)))
                                                    : _mm256_setzero_ps());
            __m256 sv[8], zv[8];
            __m256i qz = _mm256_maskload_epi32(l->qzeros + (size_t)g * C + t, mk);
            for (int i = 0; i < 8; i++) {
                sv[i] = _mm256_i32gather_ps(sbuf, gidx[i], 4);
                zv[i] = nib(qz, i);
            }
            const int32_t *qw = l->qweight + (size_t)g * G * C + t;
            if (gemm)
                for (int k = 0; k < G; k++) {
                    __m256i wv = _mm256_maskload_epi32(qw + (size_t)k * C, mk);
                    for (int i = 0; i < 8; i++) _mm256_store_ps(tile + ((size_t)k * 8 + i) * 8, nib(wv, i));
                }
            for (int mi = 0; mi < m; mi++) {
                const float *xm = x + (size_t)mi * in + (size_t)g * G;
                __m256 acc[8];
                for (int i = 0; i < 8; i++) acc[i] = _mm256_setzero_ps();
                if (gemm) {
                    for (int k = 0; k < G; k++) {
                        const float *tk = tile + (size_t)k * 64;
                        __m256 xk = _mm256_set1_ps(xm[k]);
                        for (int i = 0; i < 8; i++) acc[i] = _mm256_fmadd_ps(xk, _mm256_load_ps(tk + 8 * i), acc[i]);
                    }
                } else {
                    for (int k = 0; k < G; k++) {
                        _mm_prefetch((const char *)(qw + (size_t)(k + PF_ROWS) * C), _MM_HINT_T0);
                        __m256i wv = _mm256_maskload_epi32(qw + (size_t)k * C, mk);
                        __m256 xk = _mm256_set1_ps(xm[k]);
                        for (int i = 0; i < 8; i++) acc[i] = _mm256_fmadd_ps(xk, nib(wv, i), acc[i]);
                    }
                }
                group_finish(yb[mi], acc, sv, zv, xs[(size_t)mi * ng + g]);
            }
        }
    }
    }
    for (int t = c0; t < c1; t += 8) {
        const int w = c1 - t < 8 ? c1 - t : 8;
        float(*yb)[64] = (float(*)[64])(accbuf + (size_t)(t - c0) / 8 * (size_t)m * 64);
        for (int mi = 0; mi < m; mi++) {
            float *ym = y + (size_t)mi * out + (size_t)t * 8;
            for (int c = 0; c < w; c++)
                for (int i = 0; i < 8; i++) ym[c * 8 + ORDER[i]] = yb[mi][8 * i + c];
        }
    }
}

static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

void eng_cpu_f16mm_avx2(const uint16_t *w, int n, int k, const float *x, int m, int r0, int r1, float *y) {
    for (int r = r0; r < r1; r++) {
        const uint16_t *wr = w + (size_t)r * k;
        for (int mi = 0; mi < m; mi++) {
            const float *xm = x + (size_t)mi * k;
            __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
            int j = 0;
            for (; j + 32 <= k; j += 32) {
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(xm + j), _mm256_cvtph_ps(_mm_loadu_si128((const void *)(wr + j))), a0);
                a1 = _mm256_fmadd_ps(_mm256_loadu_ps(xm + j + 8),
                                     _mm256_cvtph_ps(_mm_loadu_si128((const void *)(wr + j + 8))), a1);
                a2 = _mm256_fmadd_ps(_mm256_loadu_ps(xm + j + 16),
                                     _mm256_cvtph_ps(_mm_loadu_si128((const void *)(wr + j + 16))), a2);
                a3 = _mm256_fmadd_ps(_mm256_loadu_ps(xm + j + 24),
                                     _mm256_cvtph_ps(_mm_loadu_si128((const void *)(wr + j + 24))), a3);
            }
            for (; j < k; j += 8) {
                uint16_t hw[8] = {0};
                float xv[8] = {0};
                int r8 = k - j < 8 ? k - j : 8;
                memcpy(hw, wr + j, (size_t)r8 * 2);
                memcpy(xv, xm + j, (size_t)r8 * 4);
                a0 = _mm256_fmadd_ps(_mm256_loadu_ps(xv), _mm256_cvtph_ps(_mm_loadu_si128((const void *)hw)), a0);
            }
            y[(size_t)mi * n + r] = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
        }
    }
}
