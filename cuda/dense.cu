/* dense.cu - the large-batch AWQ linear: dequantize the repacked weights into an fp16 scratch
 * matrix, then one cuBLAS tensor-op GEMM (what vLLM does for AWQ at >= 256 tokens).
 *
 * Why: the mma.sync tiled kernel (qmm.cu) reaches 0.14-0.28 of cuBLAS fp16 on Hopper, where
 * cuBLAS uses wgmma. For m rows the dequant pass costs a fixed ~2.5 B per weight of memory
 * traffic (0.5 B nibbles + scales read, 2 B fp16 written; the GEMM reads the 2 B back), about
 * 0.15 ms per 7B layer on an H200, which the GEMM's speed repays from a few dozen rows up
 * (the threshold, CU_DENSE_MIN_DEFAULT, is measured: bench/RESULTS.md).
 *
 * Bytes of the dequant pass: out*kp/2 + out/8*gp*48 read, out*kp*2 written.
 */
#include <stdlib.h>

#include "helpers.cuh"
#include "internal.cuh"
extern "C" {
#include "cu.h"
}

/* ------------------------------------------------------------------ dequant ---- */
#define DQ_WARPS 8         /* one (n8 tile, k128 block) chunk per warp */
#define DQ_LD (128 + 8)    /* smem row in halves: +8 keeps the 16-byte rows on distinct banks */

/* dst (out, kp) fp16 row-major, dst[n][k] = (q - z) * s of column n. A warp takes one 512-byte
 * chunk (8 columns x 128 k, see cu_qw), undoes the fragment order through shared memory and
 * writes 8 rows of 256 contiguous bytes. Padding k (>= in) has q = 0 and scale 0: exact 0. */
static __global__ void __launch_bounds__(DQ_WARPS * 32)
kernel_awq_dequant(const uint4 *__restrict__ wq, const uint32_t *__restrict__ sz, int ntiles, int nkb, int kp,
                   int G, int gp, half *__restrict__ dst) {
    __shared__ __align__(16) half sm[DQ_WARPS][8][DQ_LD];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const size_t chunk = (size_t)blockIdx.x * DQ_WARPS + warp;
    if (chunk >= (size_t)ntiles * nkb) return; /* whole warps only: no block barrier below */
    const int t = (int)(chunk / nkb), kb = (int)(chunk % nkb);
    const int c = lane >> 2, q = lane & 3;
    const uint4 w = wq[chunk * 32 + lane];
    const uint32_t *tsz = sz + (size_t)t * gp * CU_SZ_WORDS;
#pragma unroll
    for (int e = 0; e < 4; e++) {
        const uint32_t word = e == 0 ? w.x : e == 1 ? w.y : e == 2 ? w.z : w.w;
        const uint32_t *p = tsz + (size_t)((kb * 128 + e * 32) / G) * CU_SZ_WORDS;
        const uint32_t zz = p[c];
        const float z = __low2float(*reinterpret_cast<const half2 *>(&zz)) - 1024.0f;
        const float s = __half2float(reinterpret_cast<const half *>(p + 8)[c]);
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int k = e * 32 + (j & 1) * 16 + (j >> 1) * 8 + 2 * q;
            const float lo = (float)((word >> (4 * j)) & 15u), hi = (float)((word >> (4 * j + 16)) & 15u);
            *reinterpret_cast<half2 *>(&sm[warp][c][k]) = __floats2half2_rn((lo - z) * s, (hi - z) * s);
        }
    }
    __syncwarp();
#pragma unroll
    for (int it = 0; it < 4; it++) {
        const int idx = it * 32 + lane, col = idx >> 4, v = idx & 15;
        uint4 *o = reinterpret_cast<uint4 *>(dst + (size_t)(t * 8 + col) * kp + (size_t)kb * 128) + v;
        *o = *reinterpret_cast<const uint4 *>(&sm[warp][col][v * 8]);
    }
}

size_t cuq_dense_bytes(const cu_qw *w) { return (size_t)w->out * w->kp * sizeof(half); }

int cuq_dequant(char *err, const cu_qw *w, half *dst, cudaStream_t st) {
    const int ntiles = w->out / 8, nkb = w->kp / 128;
    const size_t chunks = (size_t)ntiles * nkb;
    kernel_awq_dequant<<<(unsigned)((chunks + DQ_WARPS - 1) / DQ_WARPS), DQ_WARPS * 32, 0, st>>>(
        w->w, (const uint32_t *)w->sz, ntiles, nkb, w->kp, w->group, w->gp, dst);
    CU_LAUNCHED(err);
    return 0;
}

int cuq_cublas_status(char *err, const char *what, cublasStatus_t cs) {
    if (cs == CUBLAS_STATUS_SUCCESS) return 0;
    return awq_seterr(err, cs == CUBLAS_STATUS_ALLOC_FAILED ? AWQ_ENOMEM : AWQ_EDEVICE, "cuda: %s: %s", what,
                      cublasGetStatusName(cs));
}

int cuq_dense(char *err, cublasHandle_t cb, const cu_qw *w, const half *x, int ldx, int m, float *y, int ldy,
              bool accumulate, half *scratch, size_t scratch_len, cudaStream_t st) {
    return cuq_dense_ex(err, cb, w, x, ldx, m, y, false, ldy, accumulate, scratch, scratch_len, st);
}

int cuq_dense_ex(char *err, cublasHandle_t cb, const cu_qw *w, const half *x, int ldx, int m, void *y, bool y_half,
                 int ldy, bool accumulate, half *scratch, size_t scratch_len, cudaStream_t st) {
    if (m <= 0) return 0;
    if (ldx % 8 || ldx < w->in || ldy < w->out)
        return awq_seterr(err, AWQ_EINVAL, "cuq_dense: ldx %d (multiple of 8, >= %d), ldy %d (>= %d)", ldx, w->in,
                          ldy, w->out);
    if (w->f16) {
        scratch = w->f16; /* dequantized once at load */
    } else {
        if (scratch_len < cuq_dense_bytes(w))
            return awq_seterr(err, AWQ_EINTERNAL, "cuq_dense: scratch of %zu bytes < %zu for (%d, %d)", scratch_len,
                              cuq_dense_bytes(w), w->out, w->kp);
        int rc = cuq_dequant(err, w, scratch, st);
        if (rc) return rc;
    }
    const float one = 1.0f, zero = 0.0f;
    /* cb must already run on st: cublasSetStream here would drop a user workspace (graph
     * capture must not allocate) */
    /* column-major view: y^T (out, m) = Wd (out, kp) row-major = (kp, out) col-major, op T,
     * times x^T (in, m) col-major (x row-major, ld ldx); beta = 1 is the residual add */
    return cuq_cublas_status(err, "dense cublasGemmEx",
                             cublasGemmEx(cb, CUBLAS_OP_T, CUBLAS_OP_N, w->out, m, w->in, &one, scratch, CUDA_R_16F,
                                          w->kp, x, CUDA_R_16F, ldx, accumulate ? &one : &zero, y,
                                          y_half ? CUDA_R_16F : CUDA_R_32F, ldy,
                                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

int cuq_dense_min(void) {
    const char *v = getenv("AWQ_CUDA_DENSE_MIN");
    if (v && *v) {
        int n = atoi(v);
        if (n > 0) return n;
    }
    /* with the streamed GEMV's batched build (sm_90) every step of up to 64 tokens is faster
     * on it than dequant + cuBLAS (bench/RESULTS.md: gate_up at m = 64 91 vs 144 us) */
    return cuq_gemv_stream_ok() ? CU_QMM_SKINNY_MAX + 1 : CU_DENSE_MIN_DEFAULT;
}
