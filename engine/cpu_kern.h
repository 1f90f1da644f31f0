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

/* Tokens per kernel call: bounds the per-thread sums (acc) and the AVX-512 GEMM's transposed x. */
#define ENG_CPU_KERN_M 64
/* Packed columns per tile of the AVX-512 kernel (16 x 8 = 128 outputs); thread splits are
 * multiples of it so every kernel's tiles line up with cache lines. */
#define ENG_CPU_KERN_TILE 16
/* Floats of GEMM scratch (the tile argument) per thread for each row of a group: the AVX2
 * kernel's converted block (8 x ENG_CPU_KERN_TILE per row), or the AVX-512 kernel's slice plus
 * x of one group transposed for up to ENG_CPU_KERN_M tokens (see eng_cpu_qmm_avx512). */
#define ENG_CPU_TILE_ROW 256

/* A linear's work for tokens x (m, in) over packed columns [c0, c1): y (m, out) gets those
 * outputs. xs (m, in/group) holds the per-group sums of x. gemm: convert each weight block
 * once into tile (group * ENG_CPU_TILE_ROW floats, 64-byte aligned) and reuse it across the m
 * tokens; otherwise stream it per token. Both give bitwise identical results. acc 2 x (m, c1 - c0, 8) floats, 64-byte aligned:
 * the running sums of every tile (and, where the kernel sums by k-chunk, the chunks' total), so
 * the kernels can walk group by group over all their tiles (walking one tile down all rows
 * touches a new page per row and ran 10x slower). */
typedef void eng_cpu_qmm_fn(const eng_qlinear *l, const float *x, const float *xs, int m, int c0, int c1,
                            float *y, bool gemm, float *tile, float *acc);
/* fp16 rows: y (m, n) columns [r0, r1) = x (m, k) . W^T, W (n, k). */
typedef void eng_cpu_f16mm_fn(const uint16_t *w, int n, int k, const float *x, int m, int r0, int r1, float *y);

/* The streaming GEMV is split into work items of (rows of one k-chunk) x (a block of packed
 * columns), each a partial sum over its chunk's groups; a second pass adds the chunks' partials
 * in chunk order. The chunk size depends only on the group size, never on the thread count, so
 * results stay bitwise independent of the threads, and the GEMM sums each chunk apart and adds
 * the chunks in the same order (batch invariance). Why: a thread then streams long runs of whole
 * rows instead of a 64-byte piece of every row (the hardware prefetchers lose that walk), and a
 * short, wide or narrow matrix still gives every thread work. */
#define ENG_CPU_KCHUNK_ROWS 512
/* groups per k-chunk for a group size (at least one group) */
static inline int eng_cpu_kchunk(int group) {
    return group >= ENG_CPU_KCHUNK_ROWS ? 1 : ENG_CPU_KCHUNK_ROWS / group;
}
/* Packed columns per GEMV column block: 2 KB row runs, and for one token the block's running
 * sums and outputs (2 x 4096 floats) stay in L1. Does not change any result (only the k-chunk
 * does). Measured 256/512/1024/2048 (1-8 threads, 7B shapes): 512 and up were best within the
 * noise, 256 a few points lower on the 7 KB rows of gate/up. A multiple of ENG_CPU_KERN_TILE. */
#ifndef ENG_CPU_GEMV_CB
#define ENG_CPU_GEMV_CB 512
#endif
/* Tokens per GEMV work pass (bounds the partials: (chunks, m, out) floats). */
#define ENG_CPU_GEMV_M 4

/* One GEMV work item: tokens x (m, in), groups [g0, g1) (within one k-chunk), packed columns
 * [c0, c1) (at most ENG_CPU_GEMV_CB): part (m rows of pstride floats) gets, at output n - 8*c0,
 * sum over g in [g0, g1) ascending, starting from 0, of s*(acc - z*xs). scratch: 64-byte aligned,
 * 2 * m * ENG_CPU_GEMV_CB * 8 floats. */
typedef void eng_cpu_qmv_fn(const eng_qlinear *l, const float *x, const float *xs, int m, int g0, int g1, int c0,
                            int c1, float *part, size_t pstride, float *scratch);

eng_cpu_qmm_fn eng_cpu_qmm_scalar;
eng_cpu_f16mm_fn eng_cpu_f16mm_scalar;
#if ENG_CPU_X86
eng_cpu_qmm_fn eng_cpu_qmm_avx2;
eng_cpu_f16mm_fn eng_cpu_f16mm_avx2;
eng_cpu_qmm_fn eng_cpu_qmm_avx512;
eng_cpu_qmv_fn eng_cpu_qmv_avx512;
eng_cpu_f16mm_fn eng_cpu_f16mm_avx512;
#endif

#endif
