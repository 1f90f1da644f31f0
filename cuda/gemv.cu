/* gemv.cu - the decode GEMV (m <= 8 rows per pass): each warp loads all of its weights
 * with 16-byte loads straight into registers before the first use, so up to eight 512-byte
 * chunks per warp (4 KB) are in flight at once and no pipeline bookkeeping runs per step.
 *
 * Why not the cp.async ring (kernel_qmm_gemv in qmm.cu, CU_QMM_GEMV_RING): its persistent
 * blocks walked short split-K items, so every item paid the ring's ramp, the x-slice barrier
 * and a zeros/scales fetch only one k step ahead (a DRAM round trip exposed per step); ncu put
 * it at 34 % of DRAM throughput with long-scoreboard the top stall.
 *
 * Shape of the work: a warp owns one tile pair (16 columns) over U = GE k128 steps (512 k
 * for groups >= 128), the block's 8 warps are WN pairs x WK k ranges, one block per (column
 * block, k split), the grid is not persistent (hundreds to thousands of blocks: the hardware
 * refills finished block slots while the others stream). Warps of one column block reduce
 * through shared memory, so a block adds each output once (atomics only between k splits).
 * The math is the ring kernel's: weights as the mma A operand (two n8 tiles = one A
 * fragment), x^T the B operand from shared memory via ldmatrix, exact fp16 q - z, fp32
 * accumulation, per-group scale folded in fp32.
 */
#include <stdlib.h>

#include "dq.cuh"
#include "helpers.cuh"
#include "internal.cuh"

#define GL_WARPS 8
#define GL_THREADS (GL_WARPS * 32)
#define GL_RED_BYTES (GL_WARPS * 32 * 16) /* cross-warp partial sums, one float4 per lane */

/* MINB: blocks per SM the registers are capped for (2: 104 registers, no spills; 3: 80, a few
 * bytes of spill; a tuning variant) */
template <int GE, int WN, int MINB>
static __global__ void __launch_bounds__(GL_THREADS, MINB)
kernel_qmm_gemv_ldg(cuq_in in, int M, int K, const uint4 *__restrict__ wq, const uint32_t *__restrict__ sz,
                    int N, int kp, int G, int gp, float *__restrict__ y, int ldy, int mode) {
    constexpr int WK = GL_WARPS / WN; /* warps along k */
    constexpr int U = GE;             /* k128 steps per warp: 16 zero/scale registers at any group */
    constexpr int NG = 4 / GE;        /* groups per k128 step */
    constexpr int SPAN = WK * U;      /* k128 steps per block */
    extern __shared__ __align__(16) uint8_t gl_smem[];
    float4 *red = reinterpret_cast<float4 *>(gl_smem);
    uint4 *zero = reinterpret_cast<uint4 *>(gl_smem + GL_RED_BYTES);
    half *xs = reinterpret_cast<half *>(gl_smem + GL_RED_BYTES + 16); /* (M, SPAN * 128 + 8) */
    __shared__ float rss[GL_WARPS][8];
    __shared__ float rinv[8];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int wn = warp % WN, wk = warp / WN;
    const int nkb = kp >> 7, ntiles = N >> 3;
    const int kb0 = blockIdx.y * SPAN, kbw = kb0 + wk * U;
    const int t0 = (blockIdx.x * WN + wn) * 2;
    const bool live = t0 < ntiles;
    const int ta = min(t0, ntiles - 1), tb = min(t0 + 1, ntiles - 1);

    /* 1. every weight chunk and zero/scale word of this warp, before anything waits */
    uint4 wv[U][2];
    uint32_t zq[U][NG][2], sq[U][NG][2];
#pragma unroll
    for (int u = 0; u < U; u++) {
        const int kb = kbw + u;
        const bool ok = live && kb < nkb;
        const int kbc = ok ? kb : 0;
        wv[u][0] = make_uint4(0, 0, 0, 0);
        wv[u][1] = make_uint4(0, 0, 0, 0);
        if (ok) {
            wv[u][0] = cu_ld_stream(wq + ((size_t)ta * nkb + kbc) * 32 + lane);
            wv[u][1] = cu_ld_stream(wq + ((size_t)tb * nkb + kbc) * 32 + lane);
        }
#pragma unroll
        for (int gi = 0; gi < NG; gi++) {
            const int g = (kbc * 128 + gi * GE * 32) / G;
            const uint32_t *pa = sz + ((size_t)ta * gp + g) * CU_SZ_WORDS;
            const uint32_t *pb = sz + ((size_t)tb * gp + g) * CU_SZ_WORDS;
            zq[u][gi][0] = __ldg(pa + (lane >> 2));
            zq[u][gi][1] = __ldg(pb + (lane >> 2));
            sq[u][gi][0] = __ldg(reinterpret_cast<const uint16_t *>(pa + 8) + (lane >> 2));
            sq[u][gi][1] = __ldg(reinterpret_cast<const uint16_t *>(pb + 8) + (lane >> 2));
        }
    }

    /* the next kernel may start its own weight loads now; x and y wait for our predecessor */
    cu_pdl_trigger();
    cu_pdl_wait();

    /* 2. the block's x slice (fused RMSNorm / SwiGLU) into shared memory, fp16 */
    if (threadIdx.x == 0) *zero = make_uint4(0, 0, 0, 0);
    const int lds = SPAN * 128 + 8; /* +8 halves: the eight ldmatrix rows land in distinct banks */
    cuq_stage_x<GL_WARPS>(in, M, K, xs, lds, kb0 * 128, min(SPAN, nkb - kb0) * 128 + kb0 * 128, rss, rinv);

    /* 3. the mma chain: two partial sums (k16 steps 0 and 1) so two mma are independent */
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (live) {
        const int r8 = lane & 7;
        const bool zrow = r8 >= M;
        const half *xrow = zrow ? reinterpret_cast<const half *>(zero) : xs + r8 * lds + (lane >> 3) * 8 + wk * U * 128;
        float p0[4] = {0.0f, 0.0f, 0.0f, 0.0f}, p1[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
        for (int u = 0; u < U; u++) {
            if (kbw + u < nkb) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    uint32_t xb[4];
                    cu_ldmatrix_x4(xb, zrow ? xrow : xrow + u * 128 + e * 32);
                    uint32_t b0[4], b1[4];
                    cu_dq4(u4c(wv[u][0], e), zq[u][e / GE][0], b0);
                    cu_dq4(u4c(wv[u][1], e), zq[u][e / GE][1], b1);
                    const uint32_t a0[4] = {b0[0], b1[0], b0[1], b1[1]};
                    const uint32_t a1[4] = {b0[2], b1[2], b0[3], b1[3]};
                    cu_mma16816(p0, a0, xb[0], xb[1]);
                    cu_mma16816(p1, a1, xb[2], xb[3]);
                    if ((e + 1) % GE == 0) {
                        const float f0 = __half2float(__ushort_as_half((uint16_t)sq[u][e / GE][0]));
                        const float f1 = __half2float(__ushort_as_half((uint16_t)sq[u][e / GE][1]));
                        acc[0] += f0 * (p0[0] + p1[0]);
                        acc[1] += f0 * (p0[1] + p1[1]);
                        acc[2] += f1 * (p0[2] + p1[2]);
                        acc[3] += f1 * (p0[3] + p1[3]);
#pragma unroll
                        for (int c = 0; c < 4; c++) p0[c] = p1[c] = 0.0f;
                    }
                }
            }
        }
    }

    /* 4. the WK warps of a column pair add up in shared memory; warp wk = 0 writes */
    if (WK > 1) {
        if (wk > 0) red[((wk - 1) * WN + wn) * 32 + lane] = make_float4(acc[0], acc[1], acc[2], acc[3]);
        __syncthreads();
        if (wk == 0) {
#pragma unroll
            for (int j = 1; j < WK; j++) {
                const float4 v = red[((j - 1) * WN + wn) * 32 + lane];
                acc[0] += v.x;
                acc[1] += v.y;
                acc[2] += v.z;
                acc[3] += v.w;
            }
        }
    }
    if (wk != 0 || !live) return;
    cuq_store_pair(y, ldy, t0, ntiles, M, lane, acc, mode);
}

int cuq_gemv_pass(char *err, const cu_qw *w, const cuq_in *in, int r0, int mm, float *y, int ldy, int out_mode,
                  bool split, cudaStream_t st, cuq_in *xx, float **yy, int *mode) {
    *yy = y + (size_t)r0 * ldy;
    *mode = out_mode == CUQ_OUT_ADD ? 1 : 0;
    if (split) {
        if (out_mode == CUQ_OUT_STORE)
            CU_RET(err, cudaMemset2DAsync(*yy, (size_t)ldy * 4, 0, (size_t)w->out * 4, mm, st));
        *mode = 2;
    }
    *xx = *in;
    if (in->mode == CUQ_IN_F16) xx->x = in->x + (size_t)r0 * in->ldx;
    else xx->xf = in->xf + (size_t)r0 * in->ldxf;
    return 0;
}

/* k32 sub-steps per group: 1 (group 32), 2 (64), 4 (128 and its multiples) */
static int gl_ge(int G) { return G >= 128 ? 4 : G / 32; }

int cuq_gemv_wn(void) {
    const char *e = getenv("AWQ_CUDA_GEMV_WN");
    int v = e ? atoi(e) : 0;
    return v == 2 || v == 4 || v == 8 ? v : CUQ_GEMV_WN_DEFAULT;
}

/* PDL needs sm_90 (the attribute is refused below); AWQ_CUDA_NO_PDL=1 turns it off (A/B runs). */
bool cuq_gemv_pdl(void) {
    static int major = -1; /* one device per process in practice; a race only recomputes */
    if (major < 0) {
        int dev = 0, v = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&v, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess)
            v = 0;
        major = v;
    }
    const char *e = getenv("AWQ_CUDA_NO_PDL");
    return major >= 9 && !(e && *e && *e != '0');
}

template <int GE, int WN, int MINB>
static cudaError_t gl_launch(dim3 grid, size_t smem, cudaStream_t st, bool pdl, const cuq_in &xx, int mm,
                             const cu_qw *w, float *yy, int ldy, int mode) {
    cu_launch_cfg c;
    cu_launch_init(&c, grid, dim3(GL_THREADS), smem, st, pdl);
    return cudaLaunchKernelEx(&c.cfg, kernel_qmm_gemv_ldg<GE, WN, MINB>, xx, mm, w->in, (const uint4 *)w->w,
                              (const uint32_t *)w->sz, w->out, w->kp, w->group, w->gp, yy, ldy, mode);
}

int cuq_gemv(char *err, const cu_qw *w, const cuq_in *in, int m, float *y, int ldy, int out_mode, int wn,
             cudaStream_t st) {
    if (wn != 2 && wn != 4 && wn != 8)
        return awq_seterr(err, AWQ_EINVAL, "cuq_gemv: tile pairs per block %d (2, 4 or 8)", wn);
    const int ge = gl_ge(w->group), span = GL_WARPS / wn * ge, nkb = w->kp / 128;
    const int splits = (nkb + span - 1) / span;
    const int bx = (w->out / 8 + 2 * wn - 1) / (2 * wn);
    if (splits > 65535)
        return awq_seterr(err, AWQ_EINVAL, "cuq_gemv: in %d needs %d k splits (at most 65535)", w->in, splits);
    const char *oe = getenv("AWQ_CUDA_GEMV_OCC");
    const bool occ3 = oe && atoi(oe) == 3 && ge == 4; /* tuning: the 80-register build */
    const bool pdl = cuq_gemv_pdl();
    for (int r0 = 0; r0 < m; r0 += 8) {
        int mm = m - r0 < 8 ? m - r0 : 8;
        float *yy;
        int mode;
        cuq_in xx;
        int rc = cuq_gemv_pass(err, w, in, r0, mm, y, ldy, out_mode, splits > 1, st, &xx, &yy, &mode);
        if (rc) return rc;
        const size_t smem = GL_RED_BYTES + 16 + (size_t)mm * (span * 128 + 8) * sizeof(half); /* <= 37 KB */
        const dim3 grid((unsigned)bx, (unsigned)splits);
        cudaError_t e;
#define GL_L(GE, WN, MB) gl_launch<GE, WN, MB>(grid, smem, st, pdl, xx, mm, w, yy, ldy, mode)
        if (ge == 4 && occ3) e = wn == 2 ? GL_L(4, 2, 3) : wn == 4 ? GL_L(4, 4, 3) : GL_L(4, 8, 3);
        else if (ge == 4) e = wn == 2 ? GL_L(4, 2, 2) : wn == 4 ? GL_L(4, 4, 2) : GL_L(4, 8, 2);
        else if (ge == 2) e = wn == 2 ? GL_L(2, 2, 2) : wn == 4 ? GL_L(2, 4, 2) : GL_L(2, 8, 2);
        else e = wn == 2 ? GL_L(1, 2, 2) : wn == 4 ? GL_L(1, 4, 2) : GL_L(1, 8, 2);
#undef GL_L
        CU_RET(err, e);
    }
    return 0;
}
