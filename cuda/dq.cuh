/* dq.cuh - the AWQ dequantization and input helpers shared by the matmul kernels (qmm.cu,
 * gemv.cu): nibbles to exact fp16 in mma fragment order, the per-group scale fold, the fused
 * input loads (fp16, RMSNorm, SwiGLU) and the zeros/scales fetch.
 *
 * Internal to cuda/: nothing here crosses into C.
 */
#ifndef CU_DQ_CUH
#define CU_DQ_CUH

#include "helpers.cuh"
#include "internal.cuh"

/* ------------------------------------------------------------------ dequant ---- */
/* (q & mask) | 0x64006400 as ONE lop3: written in C, ptxas emitted two LOP3 per nibble pair
 * (SASS allows one immediate per LOP3; ncu: the ALU pipe was the busiest of the decode GEMV).
 * The magic number is loop-invariant in a register, the mask the immediate. */
template <uint32_t MASK> __device__ __forceinline__ uint32_t cu_nib_f16(uint32_t q) {
    uint32_t r;
    asm("lop3.b32 %0, %1, %2, %3, 0xea;\n" : "=r"(r) : "r"(q), "n"(MASK), "r"(0x64006400u));
    return r;
}

/* Four B fragments from one packed word: one shift and four lop3 make fp16 1024 + q (mask
 * 0x000F) or 1024 + 16 q (mask 0x00F0, the next nibble, no shift), then one exact fp16 op
 * gives q - z (hsub2 with 1024 + z, or hfma2 with 1/16 and -(64 + z)). The scale is applied
 * in fp32 to the mma partial sums once per group (cu_fold), so the fp16 values are exact.
 * Pair j of the word sits at k16 step j & 1, fragment half j >> 1 (see the repack).
 * b[0], b[1]: step 0 {b0b1, b2b3}; b[2], b[3]: step 1. */
/* With the group's offsets already broadcast: zf = {1024 + z} x 2, z16 = {-(64 + z)} x 2 (a
 * kernel that reuses one group's zeros for many words makes them once, cu_dq4_zero). */
__device__ __forceinline__ void cu_dq4z(uint32_t q, half2 zf, half2 z16, uint32_t *b) {
    const half2 k16 = __float2half2_rn(0.0625f);
    const uint32_t q8 = q >> 8;
    uint32_t h0 = cu_nib_f16<0x000F000Fu>(q), h1 = cu_nib_f16<0x00F000F0u>(q);
    uint32_t h2 = cu_nib_f16<0x000F000Fu>(q8), h3 = cu_nib_f16<0x00F000F0u>(q8);
    b[0] = cu_h2u(__hsub2(*reinterpret_cast<half2 *>(&h0), zf));
    b[1] = cu_h2u(__hsub2(*reinterpret_cast<half2 *>(&h2), zf));
    b[2] = cu_h2u(__hfma2(*reinterpret_cast<half2 *>(&h1), k16, z16));
    b[3] = cu_h2u(__hfma2(*reinterpret_cast<half2 *>(&h3), k16, z16));
}
__device__ __forceinline__ void cu_dq4_zero(uint32_t zz, half2 &zf, half2 &z16) {
    zf = __low2half2(*reinterpret_cast<half2 *>(&zz));
    z16 = __high2half2(*reinterpret_cast<half2 *>(&zz));
}
__device__ __forceinline__ void cu_dq4(uint32_t q, uint32_t zz, uint32_t *b) {
    half2 zf, z16;
    cu_dq4_zero(zz, zf, z16);
    cu_dq4z(q, zf, z16, b);
}

/* acc += scale (of columns 2q, 2q+1 in ss) * p; p = 0. */
__device__ __forceinline__ void cu_fold(float *acc, float *p, uint32_t ss) {
    float2 s = __half22float2(*reinterpret_cast<half2 *>(&ss));
    acc[0] += s.x * p[0];
    acc[1] += s.y * p[1];
    acc[2] += s.x * p[2];
    acc[3] += s.y * p[3];
    p[0] = p[1] = p[2] = p[3] = 0.0f;
}

__device__ __forceinline__ uint32_t u4c(const uint4 &v, int e) {
    return e == 0 ? v.x : e == 1 ? v.y : e == 2 ? v.z : v.w;
}

/* Eight fp16 inputs of row r from k (a multiple of 8), made as the input mode says: fp16 as
 * stored, rmsnorm(x) * w from the fp32 residual (same arithmetic as cuo_rmsnorm), or
 * silu(g) * u from the fp32 gate|up rows (same as cuo_swiglu). */
__device__ __forceinline__ uint4 cuq_load8(const cuq_in &in, int r, int k, float rinv) {
    if (in.mode == CUQ_IN_F16) return *reinterpret_cast<const uint4 *>(in.x + (size_t)r * in.ldx + k);
    const float4 *p = reinterpret_cast<const float4 *>(in.xf + (size_t)r * in.ldxf + k);
    float4 a = p[0], b = p[1];
    float v[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
    if (in.mode == CUQ_IN_RMSNORM) {
        const uint4 wv = *reinterpret_cast<const uint4 *>(in.norm + k);
        const half *w = reinterpret_cast<const half *>(&wv);
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = v[i] * rinv * __half2float(w[i]);
    } else {
        const float4 *pu = reinterpret_cast<const float4 *>(in.xf + (size_t)r * in.ldxf + in.up_off + k);
        float4 c = pu[0], d = pu[1];
        float u[8] = {c.x, c.y, c.z, c.w, d.x, d.y, d.z, d.w};
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = v[i] / (1.0f + __expf(-v[i])) * u[i];
    }
    uint4 o;
    half2 *h = reinterpret_cast<half2 *>(&o);
#pragma unroll
    for (int i = 0; i < 4; i++) h[i] = __floats2half2_rn(v[2 * i], v[2 * i + 1]);
    return o;
}

/* The x slice of a decode GEMV block: rows [0, M) (M <= 64), k in [k0, k1) (multiples of 8),
 * into shared memory xs (row stride lds halves) as fp16 made by the input mode; zeros at k >=
 * K. RMSNORM first takes 1/rms of each row over all of K (float4 loads by every thread, eight
 * rows per round trip; rss: NW x 8 floats and rinv: M floats of shared memory). NT = NW * 32
 * threads, all of which call this; ends with a barrier, so xs (and anything written before) is
 * visible to the block. CN > 0: the wgmma operand layout instead (K-major, no swizzle: for each
 * k8 chunk c, CN rows of 16 bytes, i.e. half (n, k) at ((k / 8) * CN + n) * 8 + k % 8; lds
 * unused), rows M..CN-1 zero. */
template <int NW, int CN = 0>
__device__ __forceinline__ void cuq_stage_x(const cuq_in &in, int M, int K, half *xs, int lds, int k0, int k1,
                                            float (*rss)[8], float *rinv) {
    constexpr int NT = NW * 32;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (in.mode == CUQ_IN_RMSNORM)
        for (int r0 = 0; r0 < M; r0 += 8) {
            float ss[8];
#pragma unroll
            for (int r = 0; r < 8; r++) ss[r] = 0.0f;
            for (int i = threadIdx.x; i < (K >> 2); i += NT)
#pragma unroll
                for (int r = 0; r < 8; r++)
                    if (r0 + r < M) {
                        float4 v = reinterpret_cast<const float4 *>(in.xf + (size_t)(r0 + r) * in.ldxf)[i];
                        ss[r] += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
                    }
            if (r0 > 0) __syncthreads(); /* the previous round's rss reads */
#pragma unroll
            for (int r = 0; r < 8; r++) {
                float v = cu_warp_sum(ss[r]);
                if (lane == 0) rss[warp][r] = v;
            }
            __syncthreads();
            if (threadIdx.x < 8 && r0 + threadIdx.x < M) {
                float t = 0.0f;
#pragma unroll
                for (int w = 0; w < NW; w++) t += rss[w][threadIdx.x];
                rinv[r0 + threadIdx.x] = rsqrtf(t / (float)K + in.eps);
            }
        }
    __syncthreads(); /* rinv */
    const int cpr = (k1 - k0) >> 3; /* 16-byte chunks per row */
    /* chunk c = r * cpr + j, stepped without dividing */
    int r = threadIdx.x / cpr, j = threadIdx.x - r * cpr;
    while (r < (CN > 0 ? CN : M)) {
        const int kc = j << 3;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (r < M && k0 + kc < K) v = cuq_load8(in, r, k0 + kc, in.mode == CUQ_IN_RMSNORM ? rinv[r] : 0.0f);
        *reinterpret_cast<uint4 *>(xs + (CN > 0 ? (j * CN + r) * 8 : r * lds + kc)) = v;
        j += NT;
        while (j >= cpr) {
            j -= cpr;
            r++;
        }
    }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    /* the wgmma reads these through the async proxy: order the generic stores before it */
    if (CN > 0) asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#endif
    __syncthreads();
}

/* The decode GEMVs' output: a lane's mma sums of the tile pair (t0, t0 + 1) (C rows = columns
 * lane/4 of each tile, C cols = batch rows 2q, 2q+1) into y: mode 0 stores, 1 adds, 2 adds
 * atomically (k splits); tiles >= ntiles and rows >= M are skipped. */
__device__ __forceinline__ void cuq_store_pair(float *y, int ldy, int t0, int ntiles, int M, int lane, const float *acc,
                                               int mode) {
    const int g = lane >> 2, b0r = (lane & 3) * 2;
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int t = t0 + h;
        if (t >= ntiles) continue;
        const int n = t * 8 + g;
#pragma unroll
        for (int c = 0; c < 2; c++) {
            const int row = b0r + c;
            if (row >= M) continue;
            float *o = y + (size_t)row * ldy + n;
            const float v = acc[2 * h + c];
            if (mode == 2) atomicAdd(o, v);
            else if (mode == 1) *o += v;
            else *o = v;
        }
    }
}

/* One round of a 4x4 transpose across lanes: a pair of slots (lo, hi) per value sent; the lane
 * whose bit is set keeps hi and gets the partner's lo into lo, the other the reverse. */
__device__ __forceinline__ void cuq_xchg_round(float &lo0, float &hi0, float &lo1, float &hi1, bool bit, int lanemask) {
    const float r0 = __shfl_xor_sync(0xffffffffu, bit ? lo0 : hi0, lanemask);
    const float r1 = __shfl_xor_sync(0xffffffffu, bit ? lo1 : hi1, lanemask);
    if (bit) {
        lo0 = r0;
        lo1 = r1;
    } else {
        hi0 = r0;
        hi1 = r1;
    }
}

/* cuq_store_pair's atomic mode with a quarter of the L2 operations (sm_90: red.global.add.v4.f32):
 * the four lanes g = 4a..4a+3 (same q) hold columns 4a..4a+3 of both tiles for rows 2q, 2q+1;
 * a 4x4 transpose across them (two shuffle rounds, lanes ^8 then ^4) gives lane i = g & 3 the
 * four consecutive columns of combination i (tile i >> 1, row 2q + (i & 1)), one 16-byte
 * atomic. Why: the batched decode GEMV's split-K atomics were ~25 % of a 64-row launch
 * (bench/RESULTS.md). y must be 16-byte aligned and ldy a multiple of 4 (the host checks). */
__device__ __forceinline__ void cuq_red_pair_v4(float *y, int ldy, int t0, int ntiles, int M, int lane, const float *acc) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    const int i = (lane >> 2) & 3, a = lane >> 4, q = lane & 3;
    float v0 = acc[0], v1 = acc[1], v2 = acc[2], v3 = acc[3];
    const bool b1 = (i >> 1) != 0, b0 = (i & 1) != 0;
    cuq_xchg_round(v0, v2, v1, v3, b1, 8); /* round 1: slots whose bit 1 differs from the lane's, lane ^ 8 */
    cuq_xchg_round(v0, v1, v2, v3, b0, 4); /* round 2: bit 0, lane ^ 4 */
    const int t = t0 + (i >> 1), row = 2 * q + (i & 1);
    if (t < ntiles && row < M) {
        float *o = y + (size_t)row * ldy + t * 8 + 4 * a;
        asm volatile("red.global.add.v4.f32 [%0], {%1, %2, %3, %4};\n" ::"l"(o), "f"(v0), "f"(v1), "f"(v2), "f"(v3)
                     : "memory");
    }
#else
    cuq_store_pair(y, ldy, t0, ntiles, M, lane, acc, 2);
#endif
}

/* Zeros/scales of group g for a lane: zz for column lane/4 (the B fragment's n), ss for
 * columns 2 (lane%4) and +1 (the accumulator's n). */
__device__ __forceinline__ void cu_ld_zs(const uint32_t *tile_sz, int g, int lane, uint32_t &zz, uint32_t &ss) {
    const uint32_t *p = tile_sz + (size_t)g * CU_SZ_WORDS;
    zz = p[lane >> 2];
    ss = p[8 + (lane & 3)];
}

#endif
