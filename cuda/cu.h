/* cu.h - the C surface of the CUDA backend (prefix cu_). Everything else in cuda/ is C++/CUDA
 * and stays behind these functions and behind eng_cuda_backend (engine/backend.h).
 *
 * The engine picks the backend with cu_device_count(); tests and bench/gpu_bench drive single
 * kernels through cu_qlin_* and the cu_bench_* probes. Every function reports CUDA failures as
 * AWQ_EDEVICE (AWQ_ENOMEM for allocations) with the CUDA error name in err; none aborts.
 *
 * Thread safety: a cu_qlin is used by one thread at a time; cu_device_count may be called from
 * any thread.
 */
#ifndef CU_H
#define CU_H

#include <stddef.h>
#include <stdint.h>

#include "awq_err.h"
#include "backend.h"
#include "model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Number of usable CUDA devices; 0 when there is no driver, no device or any error. */
int cu_device_count(void);

/* Which decode GEMV build the current device runs: 0 the registers GEMV (before sm_90), 1 the
 * streamed one (sm_90), 2 the streamed one with the wgmma step of its batched passes (sm_90a
 * code in this build). For test logs and benchmark tables. */
int cu_gemv_build(void);

/* Name and memory (free/total bytes) of device dev. name: name_len bytes; any out may be NULL. */
AWQ_NODISCARD int cu_device_info(char *err, int dev, char *name, size_t name_len, size_t *free_b,
                                 size_t *total_b);

/* Which AWQ matmul kernel runs: AUTO picks GEMV (weights as the mma A operand; batch 1-8: on
 * sm_90 streamed into shared memory by the bulk copy engine, gemv_stream.cu, else loaded
 * straight into registers, gemv.cu) up to 8 rows, SKINNY (tensor cores, split-K, weights streamed;
 * small batches) up to CU_QMM_SKINNY_MAX rows and TILED (shared memory pipeline; prefill)
 * above. GEMV and SKINNY also take more rows, in chunks of 8 / CU_QMM_SKINNY_MAX. */
enum {
    CU_QMM_AUTO = 0,
    CU_QMM_SKINNY = 1,
    CU_QMM_TILED = 2,
    CU_QMM_GEMV = 3,
    CU_QMM_GEMV_NARROW = 4,
    CU_QMM_GEMV_RING = 5,
    CU_QMM_DENSE = 6,
    CU_QMM_GEMV_LDG = 7,
    CU_QMM_LAST = CU_QMM_GEMV_LDG
};
/* DENSE: dequantize W into an fp16 scratch matrix, then cuBLAS (tensor-op GEMM, fp32
 * accumulate): the forward pass uses it for steps of many tokens (docs/cuda.md). AUTO never
 * picks it in cu_qlin_matmul, which runs it only when asked (it allocates the scratch).
 * GEMV_NARROW: GEMV with 32 columns per block instead of 64 (fewer k splits; tuning).
 * GEMV_RING: the earlier GEMV that streams weights through a per-warp cp.async ring (kept as
 * the measured baseline). GEMV_LDG: the registers GEMV (gemv.cu) on any GPU, the sm_90
 * default before the streamed one (A/B baseline). */
#define CU_QMM_SKINNY_MAX 64

/* One AWQ linear uploaded and repacked on a device (for tests and benches). */
typedef struct cu_qlin cu_qlin;

/* Upload l (borrowed; only read during the call) to device dev and repack it into the kernels'
 * layout. Shapes the kernels cannot take are refused with AWQ_EINVAL naming the field: in must
 * be a positive multiple of group, group 32, 64 or a multiple of 128, out a positive multiple of
 * 8. On success the caller frees *out with cu_qlin_free. */
AWQ_NODISCARD int cu_qlin_create(char *err, int dev, const eng_qlinear *l, cu_qlin **out)
    AWQ_NONNULL(3, 4);
void cu_qlin_free(cu_qlin *q);
/* Device bytes held by the repacked weights. */
size_t cu_qlin_bytes(const cu_qlin *q);

/* y (m, out) = x (m, in) . W on the device: x is rounded to fp16 (as the forward pass feeds
 * its activations), accumulation is fp32. kernel: CU_QMM_*. Both arrays borrowed. */
AWQ_NODISCARD int cu_qlin_matmul(char *err, cu_qlin *q, const float *x, int m, float *y, int kernel)
    AWQ_NONNULL(2, 3, 5);

/* Device bytes of the eng_cuda_backend state behind `state` (borrowed) that are scratch for
 * the dense path and prefill attention (also inside memory()'s weights figure): bench/ takes
 * them out of the bytes a decode step streams. */
size_t cu_scratch_bytes(const void *state);

/* ---- probes for bench/gpu_bench (median of reps, device events) ---- */
/* Device-to-device copy of bytes; *gbps counts bytes read plus bytes written. */
AWQ_NODISCARD int cu_bench_copy(char *err, int dev, size_t bytes, int reps, double *gbps);
/* One AWQ matmul of shape (m, in) x (in, out), random weights, rotating over enough copies that
 * nothing stays in L2; the rotation replays as one CUDA graph (device time, not host launch
 * cost). *us: median time per call; *bytes: weight+scale bytes one call streams. */
AWQ_NODISCARD int cu_bench_qmm(char *err, int dev, int in, int out, int m, int kernel, int reps,
                               double *us, double *bytes);
/* cuBLAS fp16 GEMM (cublasGemmEx, fp32 accumulate) of (m, k) x (k, n), rotating copies of the
 * weight matrix: the dense reference the AWQ kernels are compared to. */
AWQ_NODISCARD int cu_bench_cublas(char *err, int dev, int m, int n, int k, int reps, double *us);
/* Prefill attention (causal, window > 0: sliding) of n queries at positions pos0 .. pos0 + n - 1
 * of one sequence over its pos0 + n keys, for tests and bench: kernel 0 the flash-attention
 * kernel (head_dim 64/128), 1 the cuBLAS path. q (n, heads*hd) fp32 (unscaled, roped), k and v
 * (pos0 + n, kv_heads, hd) fp16 bits, out (n, heads*hd) fp32 from the kernels' fp16; all
 * borrowed. K/V go into a paged cache of shuffled blocks whose unowned rows are NaN (attn_fa.cu).
 * reps > 0: *us = median device time of one call over reps after a warm-up; 0: one call. */
AWQ_NODISCARD int cu_attn_probe(char *err, int dev, int kernel, int heads, int kv_heads, int hd, int n, int pos0,
                                int window, const float *q, const uint16_t *k, const uint16_t *v, float *out,
                                int reps, double *us) AWQ_NONNULL(10, 11, 12, 13);
/* RoPE + the KV-cache write of T tokens (cua_rope_kv, attn.cu) alone, for tests and bench.
 * Token t is (slot[t], pos[t]): distinct pairs, slots 0..63, positions 0..2^20-1, in a paged
 * cache of shuffled blocks (layer 1 of 2) whose rows all start as fp16 NaN. qkv (T, (heads +
 * 2 kv_heads) * hd) fp32 in; the RoPE table is built from theta as the backend builds it.
 * Out: q (T, heads*hd) fp32 roped; k, v (T, kv_heads*hd) fp16 bits read back from each
 * token's cache rows; qkv_after (T, (heads + 2 kv_heads) * hd) the qkv rows after the call
 * (the contract: all zeros); *stray the cache halves that changed outside the tokens' rows.
 * clear_len > 0 (a multiple of 4): a (T + 1, clear_len) fp32 buffer of NaN whose rows [0, T)
 * the call zeroes, read back into clear_after (row T must stay NaN; NULL when clear_len is 0).
 * reps > 0: *us (may be NULL) = median device time of one more call over reps (the rows are
 * zeros by then: the same traffic). All arrays borrowed. */
AWQ_NODISCARD int cu_rope_probe(char *err, int dev, int heads, int kv_heads, int hd, float theta, int T,
                                const int *slot, const int *pos, const float *qkv, int clear_len, float *q,
                                uint16_t *k, uint16_t *v, float *qkv_after, float *clear_after, long long *stray,
                                int reps, double *us) AWQ_NONNULL(8, 9, 10, 12, 13, 14, 15, 17);
/* The decode argmax (cuo_argmax, ops.cu) alone, for tests: out[i] = the index of the largest of
 * logits row i (n rows of V floats, borrowed), the lowest index among equal maxima, 0 for a
 * row with no number above -FLT_MAX (NaN / -inf only). */
AWQ_NODISCARD int cu_argmax_probe(char *err, int dev, const float *logits, int n, int V, int *out)
    AWQ_NONNULL(3, 6);

/* The sampling reduction (pick.cu) alone, for tests: rows i of logits (n x V, host) edited and
 * reduced as pick[i] says (backend.h) into out[i] (its ids / l arrays the caller's); logits then
 * holds the rows as the GPU left them (edited). */
AWQ_NODISCARD int cu_pick_probe(char *err, int dev, float *logits, int n, int V, const eng_pick *pick,
                                eng_pick_out *out) AWQ_NONNULL(3, 6, 7);

#ifdef __cplusplus
}
#endif

#endif
