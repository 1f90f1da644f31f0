/* helpers.cuh - device helpers shared by every kernel file: the checked-call macros, the AWQ
 * nibble dequantizer, mma/ldmatrix/cp.async wrappers and warp reductions.
 *
 * Internal to cuda/: nothing here crosses into C.
 */
#ifndef CU_HELPERS_CUH
#define CU_HELPERS_CUH

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "awq_err.h"
}

/* ------------------------------------------------------------------ checked calls ---- */
/* Every runtime call goes through one of these: the message names the call, the CUDA error
 * name and where it happened, and the code is AWQ_EDEVICE (AWQ_ENOMEM for allocations), so a
 * CUDA failure reaches the caller as an engine error, never an abort. */
#define CU_RET(err, call)                                                                   \
    do {                                                                                    \
        cudaError_t e_ = (call);                                                            \
        if (e_ != cudaSuccess)                                                              \
            return cudaGetLastError(), /* clear a non-sticky error for the next check */   \
                   awq_seterr((err), e_ == cudaErrorMemoryAllocation ? AWQ_ENOMEM : AWQ_EDEVICE, \
                              "cuda: %s failed: %s (%s:%d)", #call, cudaGetErrorName(e_),   \
                              __FILE__, __LINE__);                                          \
    } while (0)

#define CU_GOTO(err, rc, label, call)                                                       \
    do {                                                                                    \
        cudaError_t e_ = (call);                                                            \
        if (e_ != cudaSuccess) {                                                            \
            cudaGetLastError();                                                             \
            (rc) = awq_seterr((err), e_ == cudaErrorMemoryAllocation ? AWQ_ENOMEM : AWQ_EDEVICE, \
                              "cuda: %s failed: %s (%s:%d)", #call, cudaGetErrorName(e_),   \
                              __FILE__, __LINE__);                                          \
            goto label;                                                                     \
        }                                                                                   \
    } while (0)

/* After a launch: the launch error (bad configuration, no kernel image for this GPU). */
#define CU_LAUNCHED(err) CU_RET(err, cudaGetLastError())

/* ------------------------------------------------------------------ bit casts ---- */
__device__ __forceinline__ uint32_t cu_h2u(half2 h) { return *reinterpret_cast<uint32_t *>(&h); }

/* ------------------------------------------------------------------ tensor cores ---- */
/* D = A (16x16, row) * B (16x8, col) + D; fp16 inputs, fp32 accumulators (sm_80+). */
__device__ __forceinline__ void cu_mma16816(float *d, const uint32_t *a, uint32_t b0, uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

/* Four 8x8 fp16 matrices from shared memory: lane l gives the row address of matrix l / 8. */
__device__ __forceinline__ void cu_ldmatrix_x4(uint32_t *r, const void *smem) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

/* Same, transposed (for a row-major B read as col-major fragments). */
__device__ __forceinline__ void cu_ldmatrix_x4_t(uint32_t *r, const void *smem) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(smem);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(a));
}

/* 16-byte async copy global -> shared; bytes < 16 zero-fills the rest (0 = all zeros). */
__device__ __forceinline__ void cu_cp_async16(void *smem, const void *gmem, int bytes) {
    uint32_t a = (uint32_t)__cvta_generic_to_shared(smem);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(a), "l"(gmem), "r"(bytes));
}
__device__ __forceinline__ void cu_cp_commit(void) { asm volatile("cp.async.commit_group;\n"); }
template <int N> __device__ __forceinline__ void cu_cp_wait(void) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

/* A 16-byte streaming load: weights are read once per step, so keep them out of L1. */
__device__ __forceinline__ uint4 cu_ld_stream(const uint4 *p) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
}

/* ------------------------------------------------------------------ PDL ---- */
/* Programmatic dependent launch (sm_90): the kernel is launched before its predecessor ends;
 * the GEMV (gemv.cu) issues its weight loads (constant during the forward pass) at once and
 * waits for the predecessor's results only before its first read of x or write of y. Every
 * block of a PDL-launched kernel must wait unconditionally, so completion stays transitive
 * along the stream. trigger: lets the next PDL-launched kernel start (its wait still covers
 * all of this kernel). Before sm_90: no-ops. */
__device__ __forceinline__ void cu_pdl_wait(void) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void cu_pdl_trigger(void) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}

/* A cudaLaunchKernelEx configuration, as a programmatic dependent launch when pdl. The
 * config points at attr: build it in place (cu_launch_cfg c; cu_launch_init(&c, ...)) and do
 * not copy it. */
struct cu_launch_cfg {
    cudaLaunchConfig_t cfg;
    cudaLaunchAttribute attr[1];
};
static inline void cu_launch_init(cu_launch_cfg *c, dim3 grid, dim3 block, size_t smem, cudaStream_t st, bool pdl) {
    *c = cu_launch_cfg{};
    c->attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    c->attr[0].val.programmaticStreamSerializationAllowed = 1;
    c->cfg.gridDim = grid;
    c->cfg.blockDim = block;
    c->cfg.dynamicSmemBytes = smem;
    c->cfg.stream = st;
    c->cfg.attrs = c->attr;
    c->cfg.numAttrs = pdl ? 1 : 0;
}

/* Launch kernel k (a plain launch, or a programmatic dependent one when pdl) with args. */
template <typename... KArgs, typename... Args>
static inline cudaError_t cu_launch_k(bool pdl, void (*k)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t st,
                                      Args &&...args) {
    cu_launch_cfg c;
    cu_launch_init(&c, grid, block, smem, st, pdl);
    return cudaLaunchKernelEx(&c.cfg, k, static_cast<Args &&>(args)...);
}

/* ------------------------------------------------------------------ reductions ---- */
__device__ __forceinline__ float cu_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float cu_warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum over a block of up to 1024 threads; every thread gets the result. sh: 32 floats. */
__device__ __forceinline__ float cu_block_sum(float v, float *sh) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = cu_warp_sum(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : 0.0f;
    return cu_warp_sum(v);
}

#endif
