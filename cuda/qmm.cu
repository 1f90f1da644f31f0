/* qmm.cu - AWQ 4-bit matrix multiply on tensor cores: the load-time repack, the gemv
 * (decode, m <= 8) and skinny (m <= 64) kernels, the tiled (prefill) kernel, and cu_qlin_* for
 * tests.
 *
 * All kernels read the same repacked layout (internal.cuh, cu_qw): dequantization happens in
 * registers directly in m16n8k16 fragment order, so weights go from HBM to the tensor cores
 * through a per-warp cp.async ring (gemv, skinny) or a plain 16-byte pipeline copy (tiled).
 *
 * Bytes per call (what bench/ divides by): out*kp/2 (nibbles) + out/8*gp*48 (scales/zeros)
 * + m*in*2 (x) + m*out*4 (y).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dq.cuh"
#include "helpers.cuh"
#include "internal.cuh"

extern "C" {
#include "awq_util.h"
#include "cu.h"
}

/* ------------------------------------------------------------------ shape checks ---- */
int cuq_check(char *err, const char *what, const eng_qlinear *l) {
    if (!l->qweight || !l->qzeros || !l->scales)
        return awq_seterr(err, AWQ_EINVAL, "%s: missing qweight/qzeros/scales", what);
    if (l->in <= 0 || l->out <= 0 || l->group <= 0)
        return awq_seterr(err, AWQ_EINVAL, "%s: in %d, out %d, group %d must be positive", what,
                          l->in, l->out, l->group);
    if (l->out % 8)
        return awq_seterr(err, AWQ_EINVAL, "%s: out %d is not a multiple of 8 (AWQ packing)", what,
                          l->out);
    if (!(l->group == 32 || l->group == 64 || l->group % 128 == 0))
        return awq_seterr(err, AWQ_EINVAL, "%s: group %d unsupported (32, 64 or a multiple of 128)",
                          what, l->group);
    if (l->in % l->group)
        return awq_seterr(err, AWQ_EINVAL, "%s: in %d is not a multiple of group %d", what, l->in,
                          l->group);
    if (l->in > (1 << 24) || l->out > (1 << 24))
        return awq_seterr(err, AWQ_EINVAL, "%s: in %d / out %d too large", what, l->in, l->out);
    return 0;
}

int cuq_alloc(char *err, const char *what, const eng_qlinear *const *ls, int n, cu_qw *dst) {
    memset(dst, 0, sizeof *dst);
    int out = 0;
    for (int i = 0; i < n; i++) {
        int rc = cuq_check(err, what, ls[i]);
        if (rc) return rc;
        if (ls[i]->in != ls[0]->in || ls[i]->group != ls[0]->group)
            return awq_seterr(err, AWQ_EINVAL, "%s: fused linears differ in in/group (%d/%d vs %d/%d)",
                              what, ls[i]->in, ls[i]->group, ls[0]->in, ls[0]->group);
        out += ls[i]->out;
    }
    dst->in = ls[0]->in;
    dst->out = out;
    dst->group = ls[0]->group;
    dst->kp = (dst->in + 127) / 128 * 128;
    dst->gp = (dst->kp + dst->group - 1) / dst->group;
    size_t wb = (size_t)out / 8 * (dst->kp / 128) * 32 * sizeof(uint4);
    size_t sb = (size_t)out / 8 * dst->gp * CU_SZ_WORDS * sizeof(uint32_t);
    CU_RET(err, cudaMalloc(&dst->w, wb));
    cudaError_t e = cudaMalloc(&dst->sz, sb);
    if (e != cudaSuccess) {
        cudaFree(dst->w);
        dst->w = NULL;
        return awq_seterr(err, AWQ_ENOMEM, "%s: cudaMalloc of %zu bytes failed: %s", what, sb,
                          cudaGetErrorName(e));
    }
    dst->bytes = wb + sb;
    return 0;
}

void cuq_release(cu_qw *q) {
    if (!q) return;
    cudaFree(q->w);
    cudaFree(q->sz);
    cudaFree(q->f16);
    memset(q, 0, sizeof *q);
}

/* ------------------------------------------------------------------ repack ---- */
/* One thread per output uint4: gathers its 32 nibbles from 32 (k, n) positions of the AutoAWQ
 * tensor. Load-time only; reads are strided, which costs a few ms per model, not per token. */
__constant__ int c_awq_rev[8] = {0, 4, 1, 5, 2, 6, 3, 7};

static __global__ void kernel_awq_repack_w(const uint32_t *__restrict__ qw, int K, int N, int kp,
                                           int tile_off, uint4 *__restrict__ w) {
    const int nkb = kp >> 7;
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t total = (size_t)(N >> 3) * nkb * 32;
    if (idx >= total) return;
    int lane = (int)(idx & 31);
    size_t r = idx >> 5;
    int kb = (int)(r % nkb), t = (int)(r / nkb);
    int n = t * 8 + (lane >> 2), q = lane & 3;
    int sh = 4 * c_awq_rev[n & 7];
    uint32_t o[4];
#pragma unroll
    for (int e = 0; e < 4; e++) {
        uint32_t word = 0;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int k = kb * 128 + e * 32 + (j & 1) * 16 + (j >> 1) * 8 + 2 * q;
            uint32_t lo = k < K ? (qw[(size_t)k * (N >> 3) + t] >> sh) & 15u : 0u;
            uint32_t hi = k + 1 < K ? (qw[(size_t)(k + 1) * (N >> 3) + t] >> sh) & 15u : 0u;
            word |= lo << (4 * j) | hi << (4 * j + 16);
        }
        o[e] = word;
    }
    w[((size_t)(tile_off + (int)t) * nkb + kb) * 32 + lane] = make_uint4(o[0], o[1], o[2], o[3]);
}

static __global__ void kernel_awq_repack_sz(const uint32_t *__restrict__ qz,
                                            const half *__restrict__ sc, int K, int N, int G,
                                            int gp, int tile_off, uint32_t *__restrict__ sz) {
    size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (size_t)N * gp) return;
    int c = (int)(idx & 7);
    size_t r = idx >> 3;
    int g = (int)(r % gp), t = (int)(r / gp);
    int n = t * 8 + c;
    half s = __float2half(0.0f);
    float z = 0.0f;
    if ((size_t)g * G < (size_t)K) {
        s = sc[(size_t)g * N + n];
        z = (float)((qz[(size_t)g * (N >> 3) + t] >> (4 * c_awq_rev[c])) & 15u);
    }
    uint32_t *o = sz + ((size_t)(tile_off + t) * gp + g) * CU_SZ_WORDS;
    o[c] = cu_h2u(__halves2half2(__float2half(1024.0f + z), __float2half(-(64.0f + z))));
    reinterpret_cast<half *>(o + 8)[c] = s;
}

size_t cuq_stage_bytes(const eng_qlinear *l) {
    size_t ng = (size_t)l->in / l->group;
    return (size_t)l->in * (l->out / 8) * 4 + ng * (l->out / 8) * 4 + ng * l->out * 2 + 3 * 256;
}

int cuq_upload(char *err, const eng_qlinear *l, cu_qw *dst, int tile_off, void *stage,
               size_t stage_len, cudaStream_t st) {
    if (stage_len < cuq_stage_bytes(l))
        return awq_seterr(err, AWQ_EINTERNAL, "cuq_upload: stage of %zu bytes < %zu", stage_len,
                          cuq_stage_bytes(l));
    size_t ng = (size_t)l->in / l->group;
    size_t qwb = (size_t)l->in * (l->out / 8) * 4, qzb = ng * (l->out / 8) * 4, scb = ng * l->out * 2;
    uint8_t *p = (uint8_t *)stage;
    uint32_t *dqw = (uint32_t *)p;
    uint32_t *dqz = (uint32_t *)(p + (qwb + 255) / 256 * 256);
    half *dsc = (half *)((uint8_t *)dqz + (qzb + 255) / 256 * 256);
    CU_RET(err, cudaMemcpyAsync(dqw, l->qweight, qwb, cudaMemcpyHostToDevice, st));
    CU_RET(err, cudaMemcpyAsync(dqz, l->qzeros, qzb, cudaMemcpyHostToDevice, st));
    CU_RET(err, cudaMemcpyAsync(dsc, l->scales, scb, cudaMemcpyHostToDevice, st));
    size_t nw = (size_t)(l->out / 8) * (dst->kp / 128) * 32;
    kernel_awq_repack_w<<<(unsigned)((nw + 255) / 256), 256, 0, st>>>(dqw, l->in, l->out, dst->kp,
                                                                       tile_off, dst->w);
    CU_LAUNCHED(err);
    size_t ns = (size_t)l->out * dst->gp;
    kernel_awq_repack_sz<<<(unsigned)((ns + 255) / 256), 256, 0, st>>>(
        dqz, dsc, l->in, l->out, l->group, dst->gp, tile_off, (uint32_t *)dst->sz);
    CU_LAUNCHED(err);
    return 0;
}

/* ------------------------------------------------------------------ skinny kernel ---- */
/* Decode and small batches: m <= 16 * MT rows, so the weights are the only real traffic.
 * Persistent blocks walk work items (a block of columns, a k split); each warp owns SK_NT n8
 * tiles over the item's k range and streams their 512-byte chunks through its own
 * SK_STAGES-deep cp.async ring in shared memory (each lane copies and later reads its own 16
 * bytes, so no barrier is needed): three k128 steps (6 KB per warp) stay in flight while the
 * tensor cores work on the current one. x's k range sits in shared memory (only the m real
 * rows: ldmatrix lanes of rows past m point at a 16-byte zero chunk). Splits add into y with
 * atomics. GE: k32 sub-steps per quantization group (1, 2 or 4 = group >= 128). */
#define SK_WARPS 4   /* 128 threads share one x slice */
#define SK_NT 4      /* n8 tiles per warp: four independent mma chains */
#define SK_STAGES 4  /* ring depth per warp: 3 steps of 4 x 512 B in flight */
#define SK_XS_BYTES (64 << 10) /* x slice budget: sets the k range per split for large m */
#define SK_W_BYTES (SK_WARPS * SK_STAGES * SK_NT * 512)

/* One k128 block of the cp.async weight rings (the skinny and ring GEMV kernels): lane's slot
 * base wb ((SK_STAGES, NT, 32) uint4 per warp), tiles' sources src. Issues the copies of block
 * kb + SK_STAGES - 1 (when it is < kb1), commits, runs next (the following block's
 * zeros/scales, when kb + 1 < kb1) while they fly, waits for block kb and returns its NT
 * words of this lane in w. */
template <int NT, typename F>
__device__ __forceinline__ void sk_ring_step(uint4 *wb, const uint4 *const *src, int kb, int kb0, int kb1, F next,
                                             uint4 (&w)[NT]) {
    const int it = kb - kb0;
    if (kb + SK_STAGES - 1 < kb1) {
        const int slot = (it + SK_STAGES - 1) % SK_STAGES;
#pragma unroll
        for (int i = 0; i < NT; i++)
            cu_cp_async16(wb + (slot * NT + i) * 32, src[i] + (size_t)(kb + SK_STAGES - 1) * 32, 16);
    }
    cu_cp_commit();
    if (kb + 1 < kb1) next();
    cu_cp_wait<SK_STAGES - 1>();
#pragma unroll
    for (int i = 0; i < NT; i++) w[i] = wb[((it % SK_STAGES) * NT + i) * 32];
}

/* The ring's start: this lane's source of each of the warp's NT tiles (t0.., the last tile
 * repeated past ntiles) and of their zeros/scales, then (live warps) the copies of the first
 * SK_STAGES - 1 blocks of [kb0, kb1), one commit group each. */
template <int NT>
__device__ __forceinline__ void sk_ring_start(const uint4 *wq, const uint32_t *sz, int nkb, int gp, int t0, int ntiles,
                                              int lane, int kb0, int kb1, uint4 *wb, bool live, const uint4 *(&src)[NT],
                                              const uint32_t *(&sp)[NT]) {
#pragma unroll
    for (int i = 0; i < NT; i++) {
        const int t = min(t0 + i, ntiles - 1);
        src[i] = wq + (size_t)t * nkb * 32 + lane;
        sp[i] = sz + (size_t)t * gp * CU_SZ_WORDS;
    }
    if (!live) return;
#pragma unroll
    for (int st = 0; st < SK_STAGES - 1; st++) {
        if (kb0 + st < kb1)
#pragma unroll
            for (int i = 0; i < NT; i++) cu_cp_async16(wb + (st * NT + i) * 32, src[i] + (size_t)(kb0 + st) * 32, 16);
        cu_cp_commit();
    }
}

template <int MT, int GE>
static __global__ void __launch_bounds__(SK_WARPS * 32)
kernel_qmm_skinny(cuq_in in, int M, int K, const uint4 *__restrict__ wq, const uint32_t *__restrict__ sz, int N,
                  int kp, int G, int gp, float *__restrict__ y, int ldy, int kb_per_split, int mode, int bx,
                  int n_items) {
    extern __shared__ __align__(16) uint8_t sk_smem[];
    __shared__ float rinv[CU_QMM_SKINNY_MAX]; /* CUQ_IN_RMSNORM: 1 / rms of each row */
    uint4 *wbuf = reinterpret_cast<uint4 *>(sk_smem);               /* (warps, S, NT, 32) */
    uint4 *zero = reinterpret_cast<uint4 *>(sk_smem + SK_W_BYTES);  /* 16 bytes of zeros */
    half *xs = reinterpret_cast<half *>(sk_smem + SK_W_BYTES + 16); /* (M, lds) */
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (in.mode == CUQ_IN_RMSNORM) {
        /* the same sum as cuo_rmsnorm, once per block: rows are re-read from L2, not HBM */
        for (int r = warp; r < M; r += SK_WARPS) {
            const float *xr = in.xf + (size_t)r * in.ldxf;
            float ss = 0.0f;
            for (int i = lane; i < K; i += 32) ss += xr[i] * xr[i];
            ss = cu_warp_sum(ss);
            if (lane == 0) rinv[r] = rsqrtf(ss / (float)K + in.eps);
        }
    }
    if (threadIdx.x == 0) *zero = make_uint4(0, 0, 0, 0);
    const int nkb = kp >> 7, ntiles = N >> 3;
    const int lds = kb_per_split * 128 + 8; /* +8 halves: ldmatrix rows land in distinct banks */
    uint4 *wb = wbuf + (size_t)warp * SK_STAGES * SK_NT * 32 + lane;

    /* persistent: each block walks items so no partial wave idles half the GPU at the end */
    for (int item = blockIdx.x; item < n_items; item += gridDim.x) {
        const int bxi = item % bx, split = item / bx;
        const int kb0 = split * kb_per_split, kb1 = min(kb0 + kb_per_split, nkb);
        const int kspan = (kb1 - kb0) * 128, k0 = kb0 * 128;
        const int cpr = kspan >> 3; /* 16-byte chunks per row */
        __syncthreads(); /* rinv ready; the previous item's readers are done with xs */
        for (int c = threadIdx.x; c < M * cpr; c += blockDim.x) {
            int r = c / cpr, kc = (c - r * cpr) << 3;
            uint4 v = make_uint4(0, 0, 0, 0);
            if (k0 + kc < K) v = cuq_load8(in, r, k0 + kc, in.mode == CUQ_IN_RMSNORM ? rinv[r] : 0.0f);
            *reinterpret_cast<uint4 *>(xs + r * lds + kc) = v;
        }
        const int t0 = (bxi * SK_WARPS + warp) * SK_NT;
        const bool live = t0 < ntiles; /* idle warps still reach the barrier below */
        const uint4 *src[SK_NT];
        const uint32_t *sp[SK_NT];
        sk_ring_start<SK_NT>(wq, sz, nkb, gp, t0, ntiles, lane, kb0, kb1, wb, live, src, sp);
        __syncthreads(); /* x slice and zero chunk ready */
        if (!live) continue;

        const half *arow[MT];
#pragma unroll
        for (int mi = 0; mi < MT; mi++) {
            int r = mi * 16 + (lane & 15);
            arow[mi] = r < M ? xs + r * lds + (lane >> 4) * 8 : reinterpret_cast<const half *>(zero);
        }
        constexpr int NG = 4 / GE; /* groups per k128 step */
        uint32_t zc[SK_NT][NG], sc[SK_NT][NG], zn[SK_NT][NG], sn[SK_NT][NG];
        auto load_zs = [&](int kb, uint32_t (*zo)[NG], uint32_t (*so)[NG]) {
#pragma unroll
            for (int i = 0; i < SK_NT; i++)
#pragma unroll
                for (int gi = 0; gi < NG; gi++) cu_ld_zs(sp[i], (kb * 128 + gi * GE * 32) / G, lane, zo[i][gi], so[i][gi]);
        };
        load_zs(kb0, zc, sc);
        float acc[MT][SK_NT][4], p[MT][SK_NT][4];
#pragma unroll
        for (int mi = 0; mi < MT; mi++)
#pragma unroll
            for (int i = 0; i < SK_NT; i++)
#pragma unroll
                for (int c = 0; c < 4; c++) acc[mi][i][c] = p[mi][i][c] = 0.0f;

        for (int kb = kb0; kb < kb1; kb++) {
            const int it = kb - kb0;
            uint4 w[SK_NT];
            sk_ring_step<SK_NT>(wb, src, kb, kb0, kb1, [&] { load_zs(kb + 1, zn, sn); }, w);
            const int kc = it * 128;
#pragma unroll
            for (int e = 0; e < 4; e++) {
                /* A for both k16 steps first, then one tile at a time: 4 B registers live */
                uint32_t a[2][MT][4];
#pragma unroll
                for (int st = 0; st < 2; st++)
#pragma unroll
                    for (int mi = 0; mi < MT; mi++)
                        cu_ldmatrix_x4(a[st][mi], arow[mi] == reinterpret_cast<const half *>(zero)
                                                      ? arow[mi]
                                                      : arow[mi] + kc + e * 32 + st * 16);
#pragma unroll
                for (int i = 0; i < SK_NT; i++) {
                    uint32_t b[4];
                    cu_dq4(u4c(w[i], e), zc[i][e / GE], b);
#pragma unroll
                    for (int st = 0; st < 2; st++)
#pragma unroll
                        for (int mi = 0; mi < MT; mi++) cu_mma16816(p[mi][i], a[st][mi], b[2 * st], b[2 * st + 1]);
                }
                if ((e + 1) % GE == 0) {
#pragma unroll
                    for (int i = 0; i < SK_NT; i++)
#pragma unroll
                        for (int mi = 0; mi < MT; mi++) cu_fold(acc[mi][i], p[mi][i], sc[i][e / GE]);
                }
            }
            if (kb + 1 < kb1) {
#pragma unroll
                for (int i = 0; i < SK_NT; i++)
#pragma unroll
                    for (int gi = 0; gi < NG; gi++) {
                        zc[i][gi] = zn[i][gi];
                        sc[i][gi] = sn[i][gi];
                    }
            }
        }
        cu_cp_wait<0>();
        const int g = lane >> 2, tq = lane & 3;
#pragma unroll
        for (int i = 0; i < SK_NT; i++) {
            if (t0 + i >= ntiles) break;
            int n = (t0 + i) * 8 + tq * 2;
#pragma unroll
            for (int mi = 0; mi < MT; mi++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    int row = mi * 16 + g + 8 * h;
                    if (row >= M) continue;
                    float *o = y + (size_t)row * ldy + n;
                    float v0 = acc[mi][i][2 * h], v1 = acc[mi][i][2 * h + 1];
                    if (mode == 2) {
                        atomicAdd(o, v0);
                        atomicAdd(o + 1, v1);
                    } else if (mode == 1) {
                        o[0] += v0;
                        o[1] += v1;
                    } else {
                        o[0] = v0;
                        o[1] = v1;
                    }
                }
        }
    } /* items */
}

/* ------------------------------------------------------------------ ring gemv kernel ---- */
/* CU_QMM_GEMV_RING, the earlier decode GEMV, kept as the measured baseline of gemv.cu's
 * kernel. Decode at m <= 8: the skinny kernel with the operands swapped, y^T = W^T x^T, so the
 * dequantized weights are the A operand (16 columns x 16 k: the B fragments of two n8 tiles
 * of the repacked layout are exactly one A fragment) and x^T the B operand (8 batch rows).
 * One mma then covers 256 weights instead of 128 with 15 zero rows, which halves the tensor
 * work per byte: at m = 1 the mma.sync rate, not HBM, was the limit of the skinny kernel.
 * Each warp owns GV_PAIRS tile pairs; the rest (persistent items, cp.async ring, split-K
 * atomics, fused input) is as in the skinny kernel. */
/* PAIRS tile pairs per warp: 2 (4 n8 tiles, 2 KB per k128 step, 4 blocks per SM); 1 (64
 * registers, 8 blocks per SM) measured no faster and is no longer instantiated */
#define GV_W_BYTES(PAIRS) (SK_WARPS * SK_STAGES * (PAIRS) * 2 * 512)

template <int GE, int GV_PAIRS>
static __global__ void __launch_bounds__(SK_WARPS * 32, GV_PAIRS == 1 ? 8 : 4)
kernel_qmm_gemv(cuq_in in, int M, int K, const uint4 *__restrict__ wq, const uint32_t *__restrict__ sz, int N,
                int kp, int G, int gp, float *__restrict__ y, int ldy, int kb_per_split, int mode, int bx,
                int n_items) {
    constexpr int NT = GV_PAIRS * 2;
    extern __shared__ __align__(16) uint8_t gv_smem[];
    __shared__ float rinv[8];
    uint4 *wbuf = reinterpret_cast<uint4 *>(gv_smem);
    uint4 *zero = reinterpret_cast<uint4 *>(gv_smem + GV_W_BYTES(GV_PAIRS));
    half *xs = reinterpret_cast<half *>(gv_smem + GV_W_BYTES(GV_PAIRS) + 16);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    if (in.mode == CUQ_IN_RMSNORM) {
        for (int r = warp; r < M; r += SK_WARPS) {
            const float *xr = in.xf + (size_t)r * in.ldxf;
            float ss = 0.0f;
            for (int i = lane; i < K; i += 32) ss += xr[i] * xr[i];
            ss = cu_warp_sum(ss);
            if (lane == 0) rinv[r] = rsqrtf(ss / (float)K + in.eps);
        }
    }
    if (threadIdx.x == 0) *zero = make_uint4(0, 0, 0, 0);
    const int nkb = kp >> 7, ntiles = N >> 3;
    const int lds = kb_per_split * 128 + 8;
    uint4 *wb = wbuf + (size_t)warp * SK_STAGES * NT * 32 + lane;

    for (int item = blockIdx.x; item < n_items; item += gridDim.x) {
        const int bxi = item % bx, split = item / bx;
        const int kb0 = split * kb_per_split, kb1 = min(kb0 + kb_per_split, nkb);
        const int kspan = (kb1 - kb0) * 128, k0 = kb0 * 128;
        const int cpr = kspan >> 3;
        __syncthreads();
        for (int c = threadIdx.x; c < M * cpr; c += blockDim.x) {
            int r = c / cpr, kc = (c - r * cpr) << 3;
            uint4 v = make_uint4(0, 0, 0, 0);
            if (k0 + kc < K) v = cuq_load8(in, r, k0 + kc, in.mode == CUQ_IN_RMSNORM ? rinv[r] : 0.0f);
            *reinterpret_cast<uint4 *>(xs + r * lds + kc) = v;
        }
        const int t0 = (bxi * SK_WARPS + warp) * NT;
        const bool live = t0 < ntiles;
        const uint4 *src[NT];
        const uint32_t *sp[NT];
        sk_ring_start<NT>(wq, sz, nkb, gp, t0, ntiles, lane, kb0, kb1, wb, live, src, sp);
        __syncthreads();
        if (!live) continue;

        /* ldmatrix.x4 of x rows 0..7: lane group j = lane / 8 reads k + 8 j, so r0..r3 are the
         * B fragments (b0b1, b2b3) of both k16 steps of a k32 sub-block */
        const int r = lane & 7;
        const half *xrow = r < M ? xs + r * lds + (lane >> 3) * 8 : reinterpret_cast<const half *>(zero);
        constexpr int NG = 4 / GE;
        uint32_t zc[NT][NG], sc[NT][NG], zn[NT][NG], sn[NT][NG];
        auto load_zs = [&](int kb, uint32_t (*zo)[NG], uint32_t (*so)[NG]) {
#pragma unroll
            for (int i = 0; i < NT; i++)
#pragma unroll
                for (int gi = 0; gi < NG; gi++) {
                    const uint32_t *pz = sp[i] + (size_t)((kb * 128 + gi * GE * 32) / G) * CU_SZ_WORDS;
                    zo[i][gi] = pz[lane >> 2];
                    so[i][gi] = reinterpret_cast<const uint16_t *>(pz + 8)[lane >> 2]; /* scale of column lane/4 */
                }
        };
        load_zs(kb0, zc, sc);
        float acc[GV_PAIRS][4], pp[GV_PAIRS][4];
#pragma unroll
        for (int i = 0; i < GV_PAIRS; i++)
#pragma unroll
            for (int c = 0; c < 4; c++) acc[i][c] = pp[i][c] = 0.0f;

        for (int kb = kb0; kb < kb1; kb++) {
            const int it = kb - kb0;
            uint4 w[NT];
            sk_ring_step<NT>(wb, src, kb, kb0, kb1, [&] { load_zs(kb + 1, zn, sn); }, w);
            const int kc = it * 128;
#pragma unroll
            for (int e = 0; e < 4; e++) {
                uint32_t xb[4];
                cu_ldmatrix_x4(xb, xrow == reinterpret_cast<const half *>(zero) ? xrow : xrow + kc + e * 32);
#pragma unroll
                for (int pi = 0; pi < GV_PAIRS; pi++) {
                    uint32_t b0[4], b1[4];
                    cu_dq4(u4c(w[2 * pi], e), zc[2 * pi][e / GE], b0);
                    cu_dq4(u4c(w[2 * pi + 1], e), zc[2 * pi + 1][e / GE], b1);
#pragma unroll
                    for (int st = 0; st < 2; st++) {
                        const uint32_t a[4] = {b0[2 * st], b1[2 * st], b0[2 * st + 1], b1[2 * st + 1]};
                        cu_mma16816(pp[pi], a, xb[2 * st], xb[2 * st + 1]);
                    }
                }
                if ((e + 1) % GE == 0) {
#pragma unroll
                    for (int pi = 0; pi < GV_PAIRS; pi++) {
                        uint16_t s0 = (uint16_t)sc[2 * pi][e / GE], s1 = (uint16_t)sc[2 * pi + 1][e / GE];
                        float f0 = __half2float(__ushort_as_half(s0)), f1 = __half2float(__ushort_as_half(s1));
                        acc[pi][0] += f0 * pp[pi][0];
                        acc[pi][1] += f0 * pp[pi][1];
                        acc[pi][2] += f1 * pp[pi][2];
                        acc[pi][3] += f1 * pp[pi][3];
                        pp[pi][0] = pp[pi][1] = pp[pi][2] = pp[pi][3] = 0.0f;
                    }
                }
            }
            if (kb + 1 < kb1) {
#pragma unroll
                for (int i = 0; i < NT; i++)
#pragma unroll
                    for (int gi = 0; gi < NG; gi++) {
                        zc[i][gi] = zn[i][gi];
                        sc[i][gi] = sn[i][gi];
                    }
            }
        }
        cu_cp_wait<0>();
        /* C: rows = columns n (lane/4 of tile 2pi, then of tile 2pi+1), cols = batch 2q, 2q+1 */
        const int g = lane >> 2, b0r = (lane & 3) * 2;
#pragma unroll
        for (int pi = 0; pi < GV_PAIRS; pi++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                int t = t0 + 2 * pi + h;
                if (t >= ntiles) continue;
                int n = t * 8 + g;
#pragma unroll
                for (int c = 0; c < 2; c++) {
                    int row = b0r + c;
                    if (row >= M) continue;
                    float *o = y + (size_t)row * ldy + n;
                    float v = acc[pi][2 * h + c];
                    if (mode == 2) atomicAdd(o, v);
                    else if (mode == 1) *o += v;
                    else *o = v;
                }
            }
    } /* items */
}

/* ------------------------------------------------------------------ tiled kernel ---- */
/* Prefill: a 64 x 128 output tile per block of 4 warps (2 x 2, 32 x 64 each), k in steps of 128
 * through a 3-stage cp.async pipeline (x rows and the weight chunks, copied as they are), B
 * dequantized from shared memory into registers in fragment order. x rows are 256 bytes with
 * the 16-byte chunks XOR-swizzled by row (chunk ^ row % 8) so ldmatrix reads hit 8 distinct
 * bank groups without padding (72 KB per block). Zeros/scales of
 * the next k step are fetched into registers while the current one computes. */
#define TL_M 64
#define TL_TILES 16 /* n8 tiles per block: 128 columns */
#define TL_STAGES 3
#define TL_SMEM (TL_STAGES * (TL_M * 128 * 2 + TL_TILES * 32 * 16))

template <int GE>
static __global__ void __launch_bounds__(128, 2)
kernel_qmm_tiled(const half *__restrict__ x, int ldx, int M, int K, const uint4 *__restrict__ wq,
                 const uint32_t *__restrict__ sz, int N, int kp, int G, int gp, float *__restrict__ y,
                 int ldy, int add) {
    extern __shared__ __align__(16) uint8_t tl_smem[];
    uint4 *As = reinterpret_cast<uint4 *>(tl_smem);                               /* (S, 64, 16) */
    uint4 *Bs = reinterpret_cast<uint4 *>(tl_smem + TL_STAGES * TL_M * 128 * 2);  /* (S, 16, 32) */
    const int nkb = kp >> 7, ntiles = N >> 3;
    const int m0 = blockIdx.y * TL_M, tile0 = blockIdx.x * TL_TILES;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int wm = warp >> 1, wn = warp & 1;

    auto load_stage = [&](int stage, int kb) {
        uint4 *as = As + stage * TL_M * 16;
#pragma unroll
        for (int c = tid; c < TL_M * 16; c += 128) {
            int r = c >> 4, ch = c & 15;
            int gr = m0 + r, gk = kb * 128 + ch * 8;
            bool ok = gr < M && gk < K;
            cu_cp_async16(as + r * 16 + (ch ^ (r & 7)), ok ? x + (size_t)gr * ldx + gk : x, ok ? 16 : 0);
        }
        uint4 *bs = Bs + stage * TL_TILES * 32;
#pragma unroll
        for (int c = tid; c < TL_TILES * 32; c += 128) {
            int t = tile0 + (c >> 5);
            bool ok = t < ntiles;
            cu_cp_async16(bs + c, ok ? wq + ((size_t)t * nkb + kb) * 32 + (c & 31) : wq, ok ? 16 : 0);
        }
    };

    float acc[2][8][4], p[2][8][4];
#pragma unroll
    for (int mi = 0; mi < 2; mi++)
#pragma unroll
        for (int ni = 0; ni < 8; ni++)
#pragma unroll
            for (int c = 0; c < 4; c++) acc[mi][ni][c] = p[mi][ni][c] = 0.0f;

#pragma unroll
    for (int s = 0; s < TL_STAGES - 1; s++) {
        if (s < nkb) load_stage(s, s);
        cu_cp_commit();
    }
    const uint32_t *szp[8];
#pragma unroll
    for (int ni = 0; ni < 8; ni++) {
        int t = min(tile0 + wn * 8 + ni, ntiles - 1);
        szp[ni] = sz + (size_t)t * gp * CU_SZ_WORDS;
    }
    constexpr int NG = 4 / GE;
    uint32_t zc[8][NG], sc[8][NG];
    auto load_zs = [&](int kb, uint32_t (*zo)[NG], uint32_t (*so)[NG]) {
#pragma unroll
        for (int ni = 0; ni < 8; ni++)
#pragma unroll
            for (int gi = 0; gi < NG; gi++) cu_ld_zs(szp[ni], (kb * 128 + gi * GE * 32) / G, lane, zo[ni][gi], so[ni][gi]);
    };
    load_zs(0, zc, sc);
    int arow[2];
#pragma unroll
    for (int mi = 0; mi < 2; mi++) arow[mi] = wm * 32 + mi * 16 + (lane & 15);

    for (int kb = 0; kb < nkb; kb++) {
        cu_cp_wait<TL_STAGES - 2>();
        __syncthreads();
        {
            int nk = kb + TL_STAGES - 1;
            if (nk < nkb) load_stage(nk % TL_STAGES, nk);
            cu_cp_commit();
        }
        uint32_t zn[8][NG], sn[8][NG];
        if (kb + 1 < nkb) load_zs(kb + 1, zn, sn);
        const int stg = kb % TL_STAGES;
        const uint4 *as = As + stg * TL_M * 16;
        const uint4 *bs = Bs + stg * TL_TILES * 32;
#pragma unroll
        for (int e = 0; e < 4; e++) {
            uint32_t a[2][2][4];
#pragma unroll
            for (int st = 0; st < 2; st++) {
                const int ch = e * 4 + st * 2 + (lane >> 4);
#pragma unroll
                for (int mi = 0; mi < 2; mi++) cu_ldmatrix_x4(a[st][mi], as + arow[mi] * 16 + (ch ^ (arow[mi] & 7)));
            }
#pragma unroll
            for (int ni = 0; ni < 8; ni++) {
                uint32_t b[4];
                cu_dq4(u4c(bs[(wn * 8 + ni) * 32 + lane], e), zc[ni][e / GE], b);
#pragma unroll
                for (int st = 0; st < 2; st++)
#pragma unroll
                    for (int mi = 0; mi < 2; mi++) cu_mma16816(p[mi][ni], a[st][mi], b[2 * st], b[2 * st + 1]);
            }
            if ((e + 1) % GE == 0) {
#pragma unroll
                for (int ni = 0; ni < 8; ni++)
#pragma unroll
                    for (int mi = 0; mi < 2; mi++) cu_fold(acc[mi][ni], p[mi][ni], sc[ni][e / GE]);
            }
        }
        if (kb + 1 < nkb) {
#pragma unroll
            for (int ni = 0; ni < 8; ni++)
#pragma unroll
                for (int gi = 0; gi < NG; gi++) {
                    zc[ni][gi] = zn[ni][gi];
                    sc[ni][gi] = sn[ni][gi];
                }
        }
    }
    cu_cp_wait<0>();
    const int g = lane >> 2, tq = lane & 3;
#pragma unroll
    for (int ni = 0; ni < 8; ni++) {
        int t = tile0 + wn * 8 + ni;
        if (t >= ntiles) break;
        int n = t * 8 + tq * 2;
#pragma unroll
        for (int mi = 0; mi < 2; mi++)
#pragma unroll
            for (int h = 0; h < 2; h++) {
                int row = m0 + wm * 32 + mi * 16 + g + 8 * h;
                if (row >= M) continue;
                float2 *o = reinterpret_cast<float2 *>(y + (size_t)row * ldy + n);
                float2 v = make_float2(acc[mi][ni][2 * h], acc[mi][ni][2 * h + 1]);
                if (add) {
                    float2 q = *o;
                    v.x += q.x;
                    v.y += q.y;
                }
                *o = v;
            }
    }
}

/* ------------------------------------------------------------------ launchers ---- */
int cuq_num_sms(void) {
    static int sms = 0; /* one device per process in practice; a race only recomputes */
    if (!sms) {
        int dev = 0, v = 0;
        if (cudaGetDevice(&dev) == cudaSuccess &&
            cudaDeviceGetAttribute(&v, cudaDevAttrMultiProcessorCount, dev) == cudaSuccess && v > 0)
            sms = v;
        else
            return 80;
    }
    return sms;
}

#define SK_ALL(F) F(1, 1) F(1, 2) F(1, 4) F(2, 1) F(2, 2) F(2, 4) F(4, 1) F(4, 2) F(4, 4)
static int skinny_attr_set(char *err) {
    static int done = 0;
    if (!done) {
        const int mx = SK_W_BYTES + 16 + SK_XS_BYTES + 2048;
#define SK_ATTR(MT, GE) \
    CU_RET(err, cudaFuncSetAttribute(kernel_qmm_skinny<MT, GE>, cudaFuncAttributeMaxDynamicSharedMemorySize, mx));
        SK_ALL(SK_ATTR)
#undef SK_ATTR
#define GV_ATTR(GE, P) \
    CU_RET(err, cudaFuncSetAttribute(kernel_qmm_gemv<GE, P>, cudaFuncAttributeMaxDynamicSharedMemorySize, mx));
        GV_ATTR(1, 2) GV_ATTR(2, 2) GV_ATTR(4, 2)
#undef GV_ATTR
        done = 1;
    }
    return 0;
}

static int tiled_attr_set(char *err) {
    static int done = 0;
    if (!done) {
        CU_RET(err, cudaFuncSetAttribute(kernel_qmm_tiled<1>, cudaFuncAttributeMaxDynamicSharedMemorySize, TL_SMEM));
        CU_RET(err, cudaFuncSetAttribute(kernel_qmm_tiled<2>, cudaFuncAttributeMaxDynamicSharedMemorySize, TL_SMEM));
        CU_RET(err, cudaFuncSetAttribute(kernel_qmm_tiled<4>, cudaFuncAttributeMaxDynamicSharedMemorySize, TL_SMEM));
        done = 1;
    }
    return 0;
}

/* k32 sub-steps per group: 1 (group 32), 2 (64), 4 (128 and its multiples) */
static int group_ge(int G) { return G >= 128 ? 4 : G / 32; }

int cuq_matmul(char *err, const cu_qw *w, const half *x, int ldx, int m, float *y, int ldy,
               bool accumulate, int kernel, cudaStream_t st) {
    cuq_in in;
    memset(&in, 0, sizeof in);
    in.mode = CUQ_IN_F16;
    in.x = x;
    in.ldx = ldx;
    return cuq_matmul_ex(err, w, &in, m, y, ldy, accumulate ? CUQ_OUT_ADD : CUQ_OUT_STORE, kernel, st);
}

int cuq_matmul_ex(char *err, const cu_qw *w, const cuq_in *in, int m, float *y, int ldy, int out_mode,
                  int kernel, cudaStream_t st) {
    if (m <= 0) return 0;
    const int ldx = in->mode == CUQ_IN_F16 ? in->ldx : in->ldxf;
    if (ldx % 8 || ldx < w->in || ldy < w->out)
        return awq_seterr(err, AWQ_EINVAL, "cuq_matmul: ldx %d (multiple of 8, >= %d), ldy %d",
                          ldx, w->in, ldy);
    if (kernel == CU_QMM_AUTO) kernel = m <= 8 ? CU_QMM_GEMV : m <= CU_QMM_SKINNY_MAX ? CU_QMM_SKINNY : CU_QMM_TILED;
    const bool accumulate = out_mode == CUQ_OUT_ADD;
    const half *x = in->x;
    if (kernel == CU_QMM_TILED) {
        if (in->mode != CUQ_IN_F16)
            return awq_seterr(err, AWQ_EINVAL, "cuq_matmul: the tiled kernel takes fp16 input only");
        int rc = tiled_attr_set(err);
        if (rc) return rc;
        dim3 grid((unsigned)((w->out / 8 + TL_TILES - 1) / TL_TILES), (unsigned)((m + TL_M - 1) / TL_M));
        const uint32_t *szw = (const uint32_t *)w->sz;
        const int ge = group_ge(w->group);
#define TL_LAUNCH(GE)                                                                                  \
    kernel_qmm_tiled<GE><<<grid, 128, TL_SMEM, st>>>(x, ldx, m, w->in, w->w, szw, w->out, w->kp, w->group, w->gp, y, \
                                                     ldy, accumulate ? 1 : 0)
        if (ge == 4) TL_LAUNCH(4);
        else if (ge == 2) TL_LAUNCH(2);
        else TL_LAUNCH(1);
#undef TL_LAUNCH
        CU_LAUNCHED(err);
        return 0;
    }
    if (kernel == CU_QMM_GEMV && cuq_gemv_stream_ok() && w->bytes >= cuq_gemv_stream_min())
        return cuq_gemv_stream(err, w, in, m, y, ldy, out_mode, cuq_gemv_pdl(), st);
    if (kernel == CU_QMM_GEMV || kernel == CU_QMM_GEMV_NARROW || kernel == CU_QMM_GEMV_LDG)
        return cuq_gemv(err, w, in, m, y, ldy, out_mode, kernel == CU_QMM_GEMV_NARROW ? 2 : cuq_gemv_wn(), st);
    if (kernel == CU_QMM_DENSE)
        return awq_seterr(err, AWQ_EINVAL, "cuq_matmul: the dense kernel runs through cuq_dense (it needs scratch)");
    if (kernel != CU_QMM_SKINNY && kernel != CU_QMM_GEMV_RING)
        return awq_seterr(err, AWQ_EINVAL, "cuq_matmul: unknown kernel %d", kernel);
    /* Rows per launch: up to 64 (four m16 tiles); the k range per split is bounded by the x
     * slice budget; then split k until the grid covers every SM twice. */
    const int nkb = w->kp / 128;
    const bool gemv = kernel == CU_QMM_GEMV_RING;
    const int pairs = 2;
    const int per_block = SK_WARPS * (gemv ? pairs * 2 : SK_NT); /* n8 tiles */
    const int bx = (w->out / 8 + per_block - 1) / per_block;
    const int rows = gemv ? 8 : CU_QMM_SKINNY_MAX;
    int rc = skinny_attr_set(err);
    if (rc) return rc;
    for (int r0 = 0; r0 < m; r0 += rows) {
        int mm = m - r0 < rows ? m - r0 : rows;
        int kmax = (SK_XS_BYTES / (mm * 2) - 8) / 128;
        if (kmax < 1) kmax = 1;
        /* enough items that the persistent grid's last round is a small fraction */
        int splits = (6 * cuq_num_sms() + bx - 1) / bx;
        if (splits < (nkb + kmax - 1) / kmax) splits = (nkb + kmax - 1) / kmax;
        if (splits > nkb) splits = nkb;
        int kps = (nkb + splits - 1) / splits;
        splits = (nkb + kps - 1) / kps;
        size_t smem = (gemv ? GV_W_BYTES(pairs) : SK_W_BYTES) + 16 + (size_t)mm * (kps * 128 + 8) * sizeof(half);
        float *yy = y + (size_t)r0 * ldy;
        int mode = accumulate ? 1 : 0;
        if (splits > 1) {
            if (out_mode == CUQ_OUT_STORE)
                CU_RET(err, cudaMemset2DAsync(yy, (size_t)ldy * 4, 0, (size_t)w->out * 4, mm, st));
            mode = 2;
        }
        const int n_items = bx * splits;
        cuq_in xx = *in;
        if (in->mode == CUQ_IN_F16) xx.x = in->x + (size_t)r0 * in->ldx;
        else xx.xf = in->xf + (size_t)r0 * in->ldxf;
        const uint32_t *szw = (const uint32_t *)w->sz;
        const int ge = group_ge(w->group), mt = mm <= 16 ? 1 : mm <= 32 ? 2 : 4;
        const void *fn = NULL;
#define GV_PICK(GE) \
    if (gemv && ge == GE) fn = (const void *)kernel_qmm_gemv<GE, 2>;
#define SK_PICK(MT, GE) \
    if (!gemv && mt == MT && ge == GE) fn = (const void *)kernel_qmm_skinny<MT, GE>;
        GV_PICK(1) GV_PICK(2) GV_PICK(4) SK_ALL(SK_PICK)
#undef GV_PICK
#undef SK_PICK
        /* the persistent grid: exactly the blocks that fit at once */
        int per = 0;
        CU_RET(err, cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per, fn, SK_WARPS * 32, smem));
        int grid = (per > 0 ? per : 1) * cuq_num_sms();
        if (grid > n_items) grid = n_items;
        void *args[] = {&xx, &mm, (void *)&w->in, (void *)&w->w, &szw, (void *)&w->out, (void *)&w->kp,
                        (void *)&w->group, (void *)&w->gp, &yy, &ldy, &kps, &mode, (void *)&bx, (void *)&n_items};
        CU_RET(err, cudaLaunchKernel(fn, dim3((unsigned)grid), dim3(SK_WARPS * 32), args, smem, st));
    }
    return 0;
}

/* ------------------------------------------------------------------ cu_qlin (tests) ---- */
struct cu_qlin {
    int dev;
    cu_qw w;
    cublasHandle_t cb; /* CU_QMM_DENSE only: made on first use */
    half *dense;       /* (out, kp) fp16 scratch of the dense kernel */
};

int cu_qlin_create(char *err, int dev, const eng_qlinear *l, cu_qlin **out) {
    *out = NULL;
    int rc = cuq_check(err, "cu_qlin", l);
    if (rc) return rc;
    CU_RET(err, cudaSetDevice(dev));
    cu_qlin *q = (cu_qlin *)calloc(1, sizeof *q);
    if (!q) return awq_seterr(err, AWQ_ENOMEM, "cu_qlin: out of memory");
    q->dev = dev;
    void *stage = NULL;
    size_t sl = cuq_stage_bytes(l);
    rc = cuq_alloc(err, "cu_qlin", &l, 1, &q->w);
    if (rc) goto fail;
    CU_GOTO(err, rc, fail, cudaMalloc(&stage, sl));
    rc = cuq_upload(err, l, &q->w, 0, stage, sl, 0);
    if (rc) goto fail;
    CU_GOTO(err, rc, fail, cudaStreamSynchronize(0));
    cudaFree(stage);
    *out = q;
    return 0;
fail:
    cudaFree(stage);
    cuq_release(&q->w);
    free(q);
    return rc;
}

void cu_qlin_free(cu_qlin *q) {
    if (!q) return;
    cudaSetDevice(q->dev);
    if (q->cb) cublasDestroy(q->cb);
    cudaFree(q->dense);
    cuq_release(&q->w);
    free(q);
}

size_t cu_qlin_bytes(const cu_qlin *q) { return q ? q->w.bytes : 0; }

int cu_qlin_matmul(char *err, cu_qlin *q, const float *x, int m, float *y, int kernel) {
    if (m <= 0) return awq_seterr(err, AWQ_EINVAL, "cu_qlin_matmul: m %d must be positive", m);
    if (kernel < CU_QMM_AUTO || kernel > CU_QMM_LAST)
        return awq_seterr(err, AWQ_EINVAL, "cu_qlin_matmul: unknown kernel %d", kernel);
    CU_RET(err, cudaSetDevice(q->dev));
    int rc = 0, ldx = (q->w.in + 7) / 8 * 8;
    size_t nx = (size_t)m * ldx, ny = (size_t)m * q->w.out;
    uint16_t *hx = (uint16_t *)calloc(nx, 2);
    half *dx = NULL;
    float *dy = NULL;
    if (!hx) return awq_seterr(err, AWQ_ENOMEM, "cu_qlin_matmul: out of memory");
    for (int r = 0; r < m; r++)
        for (int k = 0; k < q->w.in; k++) hx[(size_t)r * ldx + k] = awq_f32_to_f16(x[(size_t)r * q->w.in + k]);
    CU_GOTO(err, rc, done, cudaMalloc(&dx, nx * 2));
    CU_GOTO(err, rc, done, cudaMalloc(&dy, ny * 4));
    CU_GOTO(err, rc, done, cudaMemcpy(dx, hx, nx * 2, cudaMemcpyHostToDevice));
    /* poison y so an unwritten element cannot pass as a result */
    CU_GOTO(err, rc, done, cudaMemset(dy, 0xff, ny * 4));
    if (kernel == CU_QMM_DENSE) {
        if (!q->cb && (rc = cuq_cublas_status(err, "cublasCreate", cublasCreate(&q->cb)))) {
            q->cb = NULL;
            goto done;
        }
        if (!q->dense) CU_GOTO(err, rc, done, cudaMalloc(&q->dense, cuq_dense_bytes(&q->w)));
        rc = cuq_dense(err, q->cb, &q->w, dx, ldx, m, dy, q->w.out, false, q->dense, cuq_dense_bytes(&q->w), 0);
    } else {
        rc = cuq_matmul(err, &q->w, dx, ldx, m, dy, q->w.out, false, kernel, 0);
    }
    if (rc) goto done;
    CU_GOTO(err, rc, done, cudaMemcpy(y, dy, ny * 4, cudaMemcpyDeviceToHost));
done:
    cudaFree(dx);
    cudaFree(dy);
    free(hx);
    return rc;
}
