/* internal.cuh - what the .cu files of cuda/ share: the repacked weight layout and the
 * launchers of each kernel family. Nothing here crosses into C.
 */
#ifndef CU_INTERNAL_CUH
#define CU_INTERNAL_CUH

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

extern "C" {
#include "model.h"
}

/* ------------------------------------------------------------------ AWQ weights ---- */
/* A linear repacked for the tensor-core kernels (one or several AWQ linears with the same in
 * and group, concatenated along out: fused QKV and gate|up).
 *
 * w: (out/8 tiles, kp/128 blocks, 32 lanes) uint4. One 512-byte chunk is exactly the B
 *    fragments one warp needs for an n8 x k128 slab of m16n8k16 mma: lane l (n = 8 t + l/4,
 *    q = l%4) holds in word e (k32 sub-block) the pairs k = 2q, 8+2q, 16+2q, 24+2q (+1) in
 *    nibbles (j, j+4), so one 16-byte coalesced load feeds eight mma steps and a shift plus a
 *    lop3 per pair gives fp16 (see cu_dq4 in qmm.cu).
 *    Pair j of a word is k16 step j & 1, fragment half j >> 1, so one mask extracts the two
 *    pairs of a step without a shift (cu_dq4).
 * sz: (out/8 tiles, gp groups, CU_SZ_WORDS) words: 8 half2 {1024 + zero, -(64 + zero)} (the
 *    exact fp16 offsets cu_dq4 subtracts) then 8 fp16 scales. Padding (k >= in) has scale 0,
 *    so padded weights are exactly 0. */
#define CU_SZ_WORDS 12
typedef struct cu_qw {
    int in, out, group;
    int kp;        /* in rounded up to 128 */
    int gp;        /* groups covering kp */
    uint4 *w;      /* device, see above */
    void *sz;      /* device, CU_SZ_WORDS uint32 per (tile, group) */
    size_t bytes;  /* device bytes of w + sz */
    half *f16;     /* device (out, kp) fp16 copy, (q - z) * s (cuq_dequant), for the dense path
                    * (eng_backend_opts.fp16_weights), or NULL: cuq_dense dequantizes per call */
} cu_qw;

/* Shape check shared by every upload path: AWQ_EINVAL with the field named. */
int cuq_check(char *err, const char *what, const eng_qlinear *l);

/* Allocate dst for n linears (all with the same in and group) concatenated along out. */
int cuq_alloc(char *err, const char *what, const eng_qlinear *const *ls, int n, cu_qw *dst);
void cuq_release(cu_qw *q);

/* Repack linear l into rows [tile_off*8, tile_off*8 + l->out) of dst. The raw tensors are
 * copied through stage (device scratch of stage_len bytes, at least cuq_stage_bytes(l)) on
 * stream st; the call returns once the copies are issued and the repack launched. */
size_t cuq_stage_bytes(const eng_qlinear *l);
int cuq_upload(char *err, const eng_qlinear *l, cu_qw *dst, int tile_off, void *stage,
               size_t stage_len, cudaStream_t st);

/* y (m, out) fp32 (row stride ldy) = or += x (m, in) fp16 (row stride ldx, a multiple of 8)
 * . W. accumulate: add into y (residual). kernel: CU_QMM_*. */
int cuq_matmul(char *err, const cu_qw *w, const half *x, int ldx, int m, float *y, int ldy,
               bool accumulate, int kernel, cudaStream_t st);

/* Where a matmul's input comes from (the skinny kernel fuses the step before it):
 *  F16: x (m, ldx) fp16 as stored;
 *  RMSNORM: rmsnorm(xf row) * norm, xf (m, ldxf) fp32 (the residual stream);
 *  SWIGLU: silu(xf[:, k]) * xf[:, up_off + k] (the gate|up output). */
enum { CUQ_IN_F16 = 0, CUQ_IN_RMSNORM = 1, CUQ_IN_SWIGLU = 2 };
typedef struct cuq_in {
    int mode;
    const half *x;
    int ldx;
    const float *xf;
    int ldxf, up_off;
    const half *norm;
    float eps;
} cuq_in;
/* Output: STORE overwrites y; ADD adds into it; STORE_ZEROED overwrites a y the caller
 * guarantees is all zeros (split-K then skips its memset). */
enum { CUQ_OUT_STORE = 0, CUQ_OUT_ADD = 1, CUQ_OUT_STORE_ZEROED = 2 };
int cuq_matmul_ex(char *err, const cu_qw *w, const cuq_in *in, int m, float *y, int ldy, int out_mode,
                  int kernel, cudaStream_t st);

/* The decode GEMV of gemv.cu (weights loaded straight into registers), m rows in passes of 8.
 * wn: tile pairs (16 columns each) per block of 8 warps, 2, 4 or 8: the rest of the warps split
 * the block's k range (fewer columns = fewer k splits and atomics, more x per weight byte).
 * cuq_gemv_wn(): CUQ_GEMV_WN_DEFAULT, or AWQ_CUDA_GEMV_WN from the environment (tuning).
 * On sm_90 the kernel is launched as a programmatic dependent launch (AWQ_CUDA_NO_PDL=1: off);
 * AWQ_CUDA_GEMV_OCC=3 picks the 3-blocks-per-SM register budget (groups >= 128; tuning). */
#define CUQ_GEMV_WN_DEFAULT 8
int cuq_gemv(char *err, const cu_qw *w, const cuq_in *in, int m, float *y, int ldy, int out_mode, int wn,
             cudaStream_t st);
int cuq_gemv_wn(void);
/* One pass of 8 rows (from r0, mm of them) of a decode GEMV: its y and input views and the
 * output mode (split: k splits add atomically, so a STORE output is zeroed first). */
int cuq_gemv_pass(char *err, const cu_qw *w, const cuq_in *in, int r0, int mm, float *y, int ldy, int out_mode,
                  bool split, cudaStream_t st, cuq_in *xx, float **yy, int *mode);
/* PDL for the decode GEMVs: sm_90 and AWQ_CUDA_NO_PDL unset. */
bool cuq_gemv_pdl(void);

/* The streamed decode GEMV of gemv_stream.cu (sm_90: bulk copies into a per-warp ring of
 * shared-memory stages, persistent grid), m rows in passes of 8, same contract as cuq_gemv.
 * cuq_gemv_stream_ok(): the device is sm_90+, this build has its sm_90 code and
 * AWQ_CUDA_GEMV_STREAM is not 0 (then CU_QMM_GEMV runs it). Tuning (A/B runs):
 * AWQ_CUDA_GEMV_S=2|4|8 k128 blocks per unit (default CUQ_GEMV_STREAM_S), AWQ_CUDA_GEMV_R=N
 * caps the stages per warp, AWQ_CUDA_GEMV_ORDER=0|1 the unit order (slab-major interleaved /
 * pair-major runs per warp; default: chosen per matrix), AWQ_CUDA_GEMV_ZFOLD=0|1 the zero point folded out of the dequant,
 * AWQ_CUDA_GEMV_STREAM_MIN=BYTES: smaller matrices take the registers GEMV (cuq_gemv_stream_min),
 * AWQ_CUDA_GEMV_BPS=3: the 80-register build, three blocks of 8 warps per SM (S = 4). */
#define CUQ_GEMV_STREAM_S 4
#define CUQ_GEMV_STREAM_ORDER -1 /* auto: see gs_plan */
#define CUQ_GEMV_STREAM_ZFOLD 0
#define CUQ_GEMV_STREAM_BPS 2
bool cuq_gemv_stream_ok(void);
/* The batched passes (9-64 rows, groups >= 128) take the wgmma step: the device runs this
 * build's sm_90a code and AWQ_CUDA_GEMV_WGMMA is not 0. */
bool cuq_gemv_wgmma_ok(void);
size_t cuq_gemv_stream_min(void);
int cuq_gemv_stream(char *err, const cu_qw *w, const cuq_in *in, int m, float *y, int ldy, int out_mode, bool pdl,
                    cudaStream_t st);

/* ------------------------------------------------------------------ dense path (dense.cu) ---- */
/* Steps of at least cuq_dense_min() tokens run each AWQ linear as dequant-to-fp16 + cuBLAS
 * GEMM: CU_DENSE_MIN_DEFAULT (CU_QMM_SKINNY_MAX + 1 where the streamed GEMV runs: it takes up
 * to 64 rows), or AWQ_CUDA_DENSE_MIN from the environment (A/B runs). */
#define CU_DENSE_MIN_DEFAULT 48
int cuq_dense_min(void);
/* Bytes of the fp16 copy of w: (out, kp) halves. */
size_t cuq_dense_bytes(const cu_qw *w);
/* dst (out, kp) fp16 row-major = the dequantized weights ((q - z) * s, rounded once). */
int cuq_dequant(char *err, const cu_qw *w, half *dst, cudaStream_t st);
/* y (m, out) fp32 (row stride ldy) = or += x (m, in) fp16 (row stride ldx) . W through
 * scratch (scratch_len >= cuq_dense_bytes(w), overwritten) and cublasGemmEx; the dequant
 * launches on st, and cb must already be bound to st (cublasSetStream would drop the fixed
 * workspace graph capture relies on). Borrows everything. */
int cuq_dense(char *err, cublasHandle_t cb, const cu_qw *w, const half *x, int ldx, int m, float *y, int ldy,
              bool accumulate, half *scratch, size_t scratch_len, cudaStream_t st);
/* The same with y fp16 when y_half (then y is half *, rounded once from the fp32 sums): the
 * prefill gate|up output, which only SwiGLU reads (half the bytes written and read back). */
int cuq_dense_ex(char *err, cublasHandle_t cb, const cu_qw *w, const half *x, int ldx, int m, void *y, bool y_half,
                 int ldy, bool accumulate, half *scratch, size_t scratch_len, cudaStream_t st);
/* A cuBLAS status as 0 / AWQ_EDEVICE (AWQ_ENOMEM for allocation failures) naming what. */
int cuq_cublas_status(char *err, const char *what, cublasStatus_t cs);

/* SM count of the current device (cached by cuq_matmul's callers). */
int cuq_num_sms(void);

#endif
