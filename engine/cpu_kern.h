/* cpu_kern.h - private to the CPU backend: the per-instruction-set kernel bodies that
 * cpu_matmul.c dispatches to. Each works on a range of packed columns (one int32 column = 8
 * outputs) for at most ENG_CPU_KERN_M tokens, so the caller splits work across threads by
 * columns and across calls by tokens. Not a public interface.
 */
#ifndef ENG_CPU_KERN_H
#define ENG_CPU_KERN_H

#include <stdbool.h>
#include <stdint.h>

#include "model.h"

#if (defined(__x86_64__) || defined(__i386__)) && !defined(_MSC_VER)
#define ENG_CPU_X86 1
#else
#define ENG_CPU_X86 0
#endif

/* Tokens per kernel call: bounds the kernels' stack buffers (64 x 128 floats). */
#define ENG_CPU_KERN_M 64
/* Packed columns per tile of the AVX-512 kernel (16 x 8 = 128 outputs); thread splits are
 * multiples of it so every kernel's tiles line up with cache lines. */
#define ENG_CPU_KERN_TILE 16

/* A linear's work for tokens x (m, in) over packed columns [c0, c1): y (m, out) gets those
 * outputs. xs (m, in/group) holds the per-group sums of x. gemm: convert each weight block
 * once into tile (group * 128 floats) and reuse it across the m tokens; otherwise stream it per
 * token. Both give bitwise identical results. acc (m, c1 - c0, 8) floats, 64-byte aligned: the
 * running sums of every tile, so the kernels can walk group by group over all their tiles
 * (the rows of one group stay in the TLB and the prefetchers stream along them; walking one
 * tile down all rows touches a new page per row and ran 10x slower). */
typedef void eng_cpu_qmm_fn(const eng_qlinear *l, const float *x, const float *xs, int m, int c0, int c1,
                            float *y, bool gemm, float *tile, float *acc);
/* fp16 rows: y (m, n) columns [r0, r1) = x (m, k) . W^T, W (n, k). */
typedef void eng_cpu_f16mm_fn(const uint16_t *w, int n, int k, const float *x, int m, int r0, int r1, float *y);

eng_cpu_qmm_fn eng_cpu_qmm_scalar;
eng_cpu_f16mm_fn eng_cpu_f16mm_scalar;
#if ENG_CPU_X86
eng_cpu_qmm_fn eng_cpu_qmm_avx2;
eng_cpu_f16mm_fn eng_cpu_f16mm_avx2;
eng_cpu_qmm_fn eng_cpu_qmm_avx512;
eng_cpu_f16mm_fn eng_cpu_f16mm_avx512;
#endif

#endif
