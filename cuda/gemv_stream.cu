/* gemv_stream.cu - the decode GEMV on sm_90: weights streamed into shared memory by the bulk
 * copy engine (cp.async.bulk completing on an mbarrier), a ring of stages per warp, a
 * persistent grid.
 *
 * Why (bench/RESULTS.md, "Decode GEMV rework" and "zero-point fold"): the registers GEMV of
 * gemv.cu reaches 0.47-0.57 of the copy probe. Each of its blocks loads 32 KB, then computes
 * 1/rms over the whole residual, stages x behind two barriers, computes and exits; with two
 * blocks per SM the bytes in flight per SM drop to zero between a block's loads and the next
 * block's, and the per-block fixed work (1/rms from 16 KB of residual per block, 1792 blocks on
 * gate_up) is paid again and again. Cutting dequant instructions did not help (the fold
 * variant was slower), so the limit is bytes in flight over time, not arithmetic.
 *
 * Here a block lives for the whole matrix: it computes 1/rms and stages x once, and each warp
 * keeps R units of weights in flight through the copy engine while it computes an earlier
 * one. One thread per warp issues a unit's copies (four bulk copies: two tiles' weight slabs,
 * two tiles' zero/scale words), so address arithmetic and load instructions no longer scale
 * with the bytes moved.
 *
 * Work: a unit is (tile pair p, k slab s) = two n8 tiles x S k128 blocks, i.e. the same 512-byte
 * chunks (and their zero/scale words) the other kernels read, S of them per tile, contiguous in
 * the repacked layout (internal.cuh). Units are ordered slab-major (u = s * npairs + p) and a
 * block takes a contiguous run of them, so it touches one or two k slabs: its x slice stays
 * small (m rows x its slabs' k). Warp w of a block takes the block's units w, w + W, ...
 * The math per unit is gemv.cu's (weights as the mma A operand, x^T from shared memory through
 * ldmatrix, exact fp16 q - z, fp32 accumulation, per-group scale in fp32); a unit's partial
 * sums go out with one atomic per output (16 columns x m rows), or a plain store / add when
 * the matrix has a single k slab.
 */
#include <stdlib.h>

#include "dq.cuh"
#include "helpers.cuh"
#include "internal.cuh"

#define GS_WARPS 8
#define GS_THREADS (GS_WARPS * 32)
#define GS_RMAX 4 /* stages per warp at most */
#define GS_SMAX 8 /* k128 blocks per unit at most */
/* static shared memory of the kernel (barriers, 1/rms, the zero x rows) with slack */
#define GS_STATIC (8 * GS_WARPS * GS_RMAX + 4 * (GS_WARPS * 8 + 8) + GS_SMAX * 256 + 1024)

/* ------------------------------------------------------------------ mbarrier / bulk copy ---- */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
__device__ __forceinline__ void gs_bar_init(uint64_t *bar, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"((uint32_t)__cvta_generic_to_shared(bar)), "r"(count));
}
/* The copy engine (async proxy) must see the initialised barriers. */
__device__ __forceinline__ void gs_bar_fence_init(void) { asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory"); }
__device__ __forceinline__ void gs_bar_expect(uint64_t *bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(
                     (uint32_t)__cvta_generic_to_shared(bar)),
                 "r"(bytes)
                 : "memory");
}
__device__ __forceinline__ void gs_bulk(void *dst, const void *src, uint32_t bytes, uint64_t *bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n" ::"r"(
                     (uint32_t)__cvta_generic_to_shared(dst)),
                 "l"(src), "r"(bytes), "r"((uint32_t)__cvta_generic_to_shared(bar))
                 : "memory");
}
__device__ __forceinline__ void gs_bar_wait(uint64_t *bar, uint32_t phase) {
    const uint32_t a = (uint32_t)__cvta_generic_to_shared(bar);
    uint32_t done = 0;
    do {
        asm volatile("{\n .reg .pred p;\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n selp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done)
                     : "r"(a), "r"(phase)
                     : "memory");
    } while (!done);
}
#endif

/* ------------------------------------------------------------------ wgmma (sm_90a) ---- */
/* The batched build's tensor-core step as a warpgroup MMA: the four warps of a warpgroup take
 * four tile pairs of one k slab, and each k16 step is ONE wgmma m64nNk16 whose A is the four
 * warps' dequantized fragments (registers, the mma.m16n8k16 A layout per warp) and whose B is
 * x^T straight from shared memory (N = 8 MT batch rows). The mma.sync build reloads x through
 * ldmatrix for every pair (4 KB of shared reads per 16 mma: shared bandwidth and the tensor
 * pipe were the two limits, ~165 TFLOP/s at 64 rows); here the tensor cores read x once per
 * warpgroup. Only in code built for sm_90a (arch-specific features); gs_wg_ok() asks the
 * device code which build it runs. */
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define GS_WGMMA 1
__device__ __forceinline__ void gs_wg_fence(void) { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void gs_wg_commit(void) { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
/* at most N committed groups of this warpgroup still running */
template <int N> __device__ __forceinline__ void gs_wg_wait(void) {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
/* A registers a running wgmma reads: the compiler sees their last use here, after the wait
 * that covers that wgmma, so it cannot hand them to other values earlier */
__device__ __forceinline__ void gs_wg_keep(const uint32_t *a) {
    asm volatile("" ::"r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]) : "memory");
}
/* Shared-memory matrix descriptor of a K-major, unswizzled operand laid out as cuq_stage_x's
 * CN > 0 layout: core matrices (8 rows x 16 bytes) 128 bytes apart along N (stride byte
 * offset) and N * 16 bytes apart along K (leading byte offset). */
__device__ __forceinline__ uint64_t gs_wg_desc(const half *p, int n) {
    const uint64_t a = (uint32_t)__cvta_generic_to_shared(p);
    return ((a & 0x3FFFFu) >> 4) | ((uint64_t)((n * 16) >> 4) << 16) | ((uint64_t)(128 >> 4) << 32);
}
/* d (n8 chunk j of the 8 MT columns at d[4j..4j+3], the mma.m16n8 C layout) += A * B */
template <int MT> __device__ __forceinline__ void gs_wgmma(float *d, const uint32_t *a, uint64_t desc);
template <> __device__ __forceinline__ void gs_wgmma<2>(float *d, const uint32_t *a, uint64_t desc) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n16k16.f32.f16.f16 {%0,%1,%2,%3,%4,%5,%6,%7}, {%8,%9,%10,%11}, %12, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc));
}
template <> __device__ __forceinline__ void gs_wgmma<4>(float *d, const uint32_t *a, uint64_t desc) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n32k16.f32.f16.f16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15},"
                 " {%16,%17,%18,%19}, %20, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                   "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc));
}
template <> __device__ __forceinline__ void gs_wgmma<8>(float *d, const uint32_t *a, uint64_t desc) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
                 "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31}, {%32,%33,%34,%35}, %36, p, 1, 1, 0;\n}\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
                   "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
                   "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
                   "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc));
}
/* after the wait: the compiler must not have read d before it (a register move of an
 * accumulator between the issue and the wait would copy a stale value) */
template <int MT> __device__ __forceinline__ void gs_wg_pin(float (*d)[4]) {
#pragma unroll
    for (int nt = 0; nt < MT; nt++)
#pragma unroll
        for (int c = 0; c < 4; c++) asm volatile("" : "+f"(d[nt][c])::"memory");
}
#endif
/* 1 where the device runs code built with the sm_90a features (the wgmma batched build) */
static __global__ void kernel_gs_wg_probe(int *o) {
#if defined(GS_WGMMA)
    *o = 1;
#else
    *o = 0;
#endif
}

/* The geometry of one launch, computed on the host (gs_plan) and passed by value. */
typedef struct gs_geo {
    int ntiles, nkb, gp, G;
    int npairs, nslab, units, upb; /* units per block */
    int S;                         /* k128 blocks per unit (the template's) */
    int szs;                       /* zero/scale groups per tile per stage */
    int stage_bytes;               /* 2 S 512 + 2 szs 48 */
    int R;                         /* stages per warp */
    int xk_max;                    /* k span of any block's x slice (halves, without the +8 pad) */
    int order;                     /* 0: slab-major, warps interleaved; 1: pair-major, warp-contiguous runs;
                                    * 2 (wgmma step): items of a pair's two slabs of one slab group,
                                    * group-major, warps interleaved by item (gs_plan) */
} gs_geo;

/* The next unit of a warp, step units on, without dividing (a division by a run-time value
 * is ~20 instructions; ncu counted ~1000 instructions per 4 KB unit before this): order 0
 * walks pairs within a slab, order 1 slabs within a pair, order 2 (step ignored) the two slabs
 * of an item, then the item GS_WARPS on (a block never leaves its slab group). */
__device__ __forceinline__ void gs_adv(const gs_geo &g, int &s, int &p, int step) {
    if (g.order == 2) { /* the item's second slab, else the warp's next item: GS_WARPS pairs on */
        if ((s & 1) == 0) {
            s++;
        } else {
            s--;
            p += GS_WARPS;
        }
    } else if (g.order == 0) {
        p += step;
        while (p >= g.npairs) {
            p -= g.npairs;
            s++;
        }
    } else {
        s += step;
        while (s >= g.nslab) {
            s -= g.nslab;
            p++;
        }
    }
}

/* Groups a unit's zero/scale copy covers: units start at multiples of S k128 blocks. Groups
 * 32 / 64 (GE 1 / 2) and 128 need no division. */
template <int GE>
__host__ __device__ __forceinline__ void gs_groups(const gs_geo &g, int kb0, int nk, int &g0, int &ng) {
    if (GE < 4) {
        g0 = kb0 * (4 / GE);
        ng = nk * (4 / GE);
    } else if (g.G == 128) {
        g0 = kb0;
        ng = nk;
    } else {
        g0 = kb0 * 128 / g.G;
        ng = ((kb0 + nk) * 128 - 1) / g.G - g0 + 1;
    }
}

/* Eight nibbles to fp16 1024 + q (k16 step 0: b[0], b[1]) and 1024 + 16 q (step 1: b[2],
 * b[3]) with one shift and four lop3: the zero fold (ZF) takes q - z out of the dequant and
 * subtracts (1024 + z) * sum(x) and (64 + z) * sum(x) per group from the fp32 sums instead
 * (exact fp16 values in the mma; the sums of x are made once per block). */
__device__ __forceinline__ void gs_dq4_raw(uint32_t q, uint32_t *b) {
    const uint32_t q8 = q >> 8;
    b[0] = cu_nib_f16<0x000F000Fu>(q);
    b[1] = cu_nib_f16<0x000F000Fu>(q8);
    b[2] = cu_nib_f16<0x00F000F0u>(q);
    b[3] = cu_nib_f16<0x00F000F0u>(q8);
}

/* GE: k32 steps per group (1, 2, 4: groups 32, 64, >= 128). S: k128 blocks per unit. ZF:
 * zero fold (AWQ_CUDA_GEMV_ZFOLD=1; MT 1 only). MT: n8 tiles of batch rows (up to 8 MT rows
 * per pass: the dequantized fragments of a unit feed MT mma each, so 9-64 rows, batched
 * decode, still read every weight once per pass). WG: the wgmma step (see gs_wgmma; MT > 1, the
 * host guarantees four warps of a warpgroup always hold four pairs of one slab). */
template <int GE, int S, bool ZF, int MINB, int MT, bool WG>
static __global__ void __launch_bounds__(GS_THREADS, MINB) /* MINB blocks per SM: <= 128 / 80 registers */
kernel_qmm_gemv_stream(cuq_in in, int M, int K, const uint4 *__restrict__ wq, const uint32_t *__restrict__ sz,
                       gs_geo geo, float *__restrict__ y, int ldy, int mode) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    /* fold units: GE k32 steps (one group, or one k128 block of a larger group) */
    constexpr int FU = 32 * GE;
    extern __shared__ __align__(128) uint8_t gs_smem[];
    __shared__ __align__(8) uint64_t bars[GS_WARPS][GS_RMAX];
    __shared__ float rss[GS_WARPS][8];
    __shared__ float rinv[8 * MT];
    static_assert(!ZF || MT == 1, "the zero fold keeps x sums for 8 rows");
    static_assert(!WG || MT > 1, "the wgmma step is the batched build's");
#if !defined(GS_WGMMA)
    if (WG) __trap(); /* not built for sm_90a: the host never launches this (gs_wg_ok) */
#endif
    /* what the ldmatrix lanes of batch rows >= M read: zeros as long as one unit's k */
    __shared__ __align__(16) half zero[S * 128];
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int u0 = blockIdx.x * geo.upb, u1 = min(u0 + geo.upb, geo.units);
    /* this warp's units, i < nmine: order 0: u0 + warp + i * GS_WARPS; order 1: a contiguous
     * run (consecutive k slabs of a pair: longer sequential reads, one flush per pair) */
    const int per = (geo.upb + GS_WARPS - 1) / GS_WARPS;
    /* order 2: items (two units: slabs 2 sg, 2 sg + 1 of pair p) v = u / 2, warp w takes items
     * v0 + w, v0 + w + GS_WARPS, ... */
    const int v0 = u0 >> 1, v1 = u1 >> 1;
    const int nmine = geo.order == 2   ? (v0 + warp < v1 ? 2 * ((v1 - v0 - warp + GS_WARPS - 1) / GS_WARPS) : 0)
                      : geo.order == 0 ? (u0 + warp < u1 ? (u1 - u0 - warp + GS_WARPS - 1) / GS_WARPS : 0)
                                       : max(0, min(per, u1 - (u0 + warp * per)));
    const int ustep = geo.order == 0 ? GS_WARPS : 1;
    /* (slab, pair) of the warp's first unit; cursors advance by gs_adv from there */
    int s_first_u, p_first_u;
    if (geo.order == 2) {
        const int v = v0 + warp, sg = v / geo.npairs;
        p_first_u = v - sg * geo.npairs;
        s_first_u = 2 * sg;
    } else {
        const int u = geo.order == 0 ? u0 + warp : u0 + warp * per;
        if (geo.order == 0) {
            s_first_u = u / geo.npairs;
            p_first_u = u - s_first_u * geo.npairs;
        } else {
            p_first_u = u / geo.nslab;
            s_first_u = u - p_first_u * geo.nslab;
        }
    }
    uint8_t *ring = gs_smem + warp * geo.R * geo.stage_bytes; /* shared offsets fit 32 bits */
    half *xs = reinterpret_cast<half *>(gs_smem + (size_t)GS_WARPS * geo.R * geo.stage_bytes);
    const int R = geo.R;

    /* one thread per warp issues the copies of a unit at (s, p) into stage st */
    auto issue = [&](int st, int s, int p) {
        const int ta = 2 * p, tb = min(2 * p + 1, geo.ntiles - 1); /* an odd last tile is read twice */
        const int kb0 = s * S, nk = min(S, geo.nkb - kb0);
        int g0, ng;
        gs_groups<GE>(geo, kb0, nk, g0, ng);
        uint8_t *dst = ring + st * geo.stage_bytes;
        uint64_t *bar = &bars[warp][st];
        gs_bar_expect(bar, (uint32_t)(2 * nk * 512 + 2 * ng * CU_SZ_WORDS * 4));
        gs_bulk(dst, wq + ((size_t)ta * geo.nkb + kb0) * 32, (uint32_t)nk * 512, bar);
        gs_bulk(dst + S * 512, wq + ((size_t)tb * geo.nkb + kb0) * 32, (uint32_t)nk * 512, bar);
        gs_bulk(dst + 2 * S * 512, sz + ((size_t)ta * geo.gp + g0) * CU_SZ_WORDS, (uint32_t)ng * CU_SZ_WORDS * 4, bar);
        gs_bulk(dst + 2 * S * 512 + geo.szs * CU_SZ_WORDS * 4, sz + ((size_t)tb * geo.gp + g0) * CU_SZ_WORDS,
                (uint32_t)ng * CU_SZ_WORDS * 4, bar);
    };

    /* 1. barriers, then the first R units of every warp: weights do not depend on the
     * previous kernel, so they stream while it finishes (programmatic dependent launch) */
    int s_iss = s_first_u, p_iss = p_first_u; /* the next unit to issue (lane 0's) */
    if (lane == 0) {
        for (int r = 0; r < R; r++) gs_bar_init(&bars[warp][r], 1);
        gs_bar_fence_init();
        for (int i = 0; i < min(R, nmine); i++) {
            issue(i, s_iss, p_iss);
            gs_adv(geo, s_iss, p_iss, ustep);
        }
    }
    cu_pdl_trigger();
    cu_pdl_wait();

    /* 2. x for the block's k range, once: 1/rms over all of K (fused RMSNorm), then the slice */
    int s_first = 0, s_last = geo.nslab - 1; /* order 1: a block may span pairs: all of k */
    if (geo.order == 0 && u0 < u1) {
        s_first = u0 / geo.npairs;
        s_last = (u1 - 1) / geo.npairs;
    } else if (geo.order == 2) { /* the block's slab group */
        s_first = 2 * (v0 / geo.npairs);
        s_last = s_first + 1;
    }
    const int xk0 = s_first * S * 128, xk1 = min((s_last + 1) * S * 128, geo.nkb * 128);
    const int lds = xk1 - xk0 + 8; /* +8 halves: the eight ldmatrix rows land in distinct banks */
    for (int i = threadIdx.x; i < S * 16; i += GS_THREADS) reinterpret_cast<uint4 *>(zero)[i] = make_uint4(0, 0, 0, 0);
    cuq_stage_x<GS_WARPS, WG ? 8 * MT : 0>(in, M, K, xs, lds, xk0, xk1, rss, rinv);
    /* ZF: per fold unit f and row r the sums of x over k16 steps 0 and 1 of its k32 blocks,
     * as {S0, S1} at xsum[(f * 8 + r) * 2]: rows 2q, 2q+1 are one 16-byte load */
    float *xsum = reinterpret_cast<float *>(xs + 8 * lds);
    if (ZF) {
        const int nfu = (xk1 - xk0) / FU;
        for (int c = threadIdx.x; c < nfu * 8 * 2; c += GS_THREADS) {
            const int f = c >> 4, r = (c >> 1) & 7, h = c & 1;
            float t = 0.0f;
            if (r < M)
                for (int e = 0; e < GE; e++) {
                    const half2 *xp = reinterpret_cast<const half2 *>(xs + r * lds + f * FU + e * 32 + h * 16);
#pragma unroll
                    for (int j = 0; j < 8; j++) {
                        const float2 v = __half22float2(xp[j]);
                        t += v.x + v.y;
                    }
                }
            xsum[c] = t;
        }
        __syncthreads();
    }

    /* 3. the units: wait for a stage, compute it, refill it with the unit R ahead */
    const int r8 = lane & 7;
    const half *xbase = xs + r8 * lds + (lane >> 3) * 8;
    constexpr int NG = 4 / GE; /* groups per k128 block (G <= 128) */
    /* MT 1: two partial sums per tile pair (k16 steps 0 and 1) so two mma are independent;
     * MT > 1: the MT n-tiles are the independent chains */
    constexpr bool SPLIT = MT == 1;
    float acc[MT][4];
#pragma unroll
    for (int nt = 0; nt < MT; nt++) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
    int s = s_first_u, p = p_first_u; /* this unit */
    int st = 0;                       /* its stage: i % R, and the stage's phase (i / R) & 1 */
    uint32_t phase = 0;
    for (int i = 0; i < nmine; i++) {
        const int kb0 = s * S, nk = min(S, geo.nkb - kb0);
        int g0 = 0, ng;
        if (GE == 4 && geo.G != 128) gs_groups<GE>(geo, kb0, nk, g0, ng);
        gs_bar_wait(&bars[warp][st], phase);
        const uint8_t *stg = ring + st * geo.stage_bytes;
        /* this lane's x rows at the unit's first k (or the zeros): per (kk, e) a constant offset */
        const half *xu[MT];
#pragma unroll
        for (int nt = 0; nt < MT; nt++) xu[nt] = nt * 8 + r8 >= M ? zero : xbase + nt * 8 * lds + (kb0 * 128 - xk0);
        const uint4 *sw = reinterpret_cast<const uint4 *>(stg);
        const uint32_t *sza = reinterpret_cast<const uint32_t *>(stg + 2 * S * 512);
        const uint32_t *szb = sza + geo.szs * CU_SZ_WORDS;
        if constexpr (WG) {
#if defined(GS_WGMMA)
            /* The scale goes into the fp16 weights ((q - z) * s rounded once, as the dense
             * path's dequant): the whole unit accumulates in acc on the tensor cores, no fp32
             * fold per group (its 64 FFMA + 32 zeroing per k128 were a third of the
             * instructions). k32 steps run two deep: step j's A registers stay live until
             * wait_group(1) after step j + 1 was issued. */
            uint32_t ap[4] = {0, 0, 0, 0}, bp[4] = {0, 0, 0, 0}; /* the previous step's A */
            const uint64_t d0 = gs_wg_desc(xs, 8 * MT);
#pragma unroll
            for (int kk = 0; kk < S; kk++) { /* whole units (gs_plan): a condition here made ptxas serialize the wgmma */
                {
                    const uint4 wa = sw[kk * 32 + lane], wb = sw[(S + kk) * 32 + lane];
                    const int kx = (kb0 + kk) * 128 - xk0;
                    const int gl = geo.G == 128 ? kk : ((kb0 + kk) * 128) / geo.G - g0;
                    half2 zfa, z16a, zfb, z16b;
                    cu_dq4_zero(sza[gl * CU_SZ_WORDS + (lane >> 2)], zfa, z16a);
                    cu_dq4_zero(szb[gl * CU_SZ_WORDS + (lane >> 2)], zfb, z16b);
                    const half2 sa = __half2half2(reinterpret_cast<const half *>(sza + gl * CU_SZ_WORDS + 8)[lane >> 2]);
                    const half2 sb = __half2half2(reinterpret_cast<const half *>(szb + gl * CU_SZ_WORDS + 8)[lane >> 2]);
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        uint32_t b0[4], b1[4];
                        cu_dq4z(u4c(wa, e), zfa, z16a, b0);
                        cu_dq4z(u4c(wb, e), zfb, z16b, b1);
#pragma unroll
                        for (int c = 0; c < 4; c++) {
                            b0[c] = cu_h2u(__hmul2(*reinterpret_cast<half2 *>(&b0[c]), sa));
                            b1[c] = cu_h2u(__hmul2(*reinterpret_cast<half2 *>(&b1[c]), sb));
                        }
                        const uint32_t a0[4] = {b0[0], b1[0], b0[1], b1[1]};
                        const uint32_t a1[4] = {b0[2], b1[2], b0[3], b1[3]};
                        /* k16 steps at kx + 32 e and + 16: k8 chunks (kx + 32 e) / 8 and + 2,
                         * each 8 MT rows x 16 bytes (the address field counts 16 bytes) */
                        const uint64_t dk = d0 + (uint64_t)(((kx + e * 32) >> 3) * MT * 8);
                        __syncwarp();
                        gs_wg_fence();
                        gs_wgmma<MT>(&acc[0][0], a0, dk);
                        gs_wgmma<MT>(&acc[0][0], a1, dk + 2 * MT * 8);
                        gs_wg_commit();
                        gs_wg_wait<1>();
                        gs_wg_keep(ap); /* the previous step's A lived until its wgmma finished */
                        gs_wg_keep(bp);
#pragma unroll
                        for (int c = 0; c < 4; c++) {
                            ap[c] = a0[c];
                            bp[c] = a1[c];
                        }
                    }
                }
            }
            gs_wg_wait<0>();
            gs_wg_keep(ap);
            gs_wg_keep(bp);
            gs_wg_pin<MT>(acc);
#endif
        } else
#pragma unroll
        for (int kk = 0; kk < S; kk++) {
            if (kk < nk) {
                const uint4 wa = sw[kk * 32 + lane], wb = sw[(S + kk) * 32 + lane];
                const int kx = (kb0 + kk) * 128 - xk0;
                /* first group of this k128 block within the stage */
                const int gk = GE < 4 ? kk * NG : geo.G == 128 ? kk : ((kb0 + kk) * 128) / geo.G - g0;
                float p0[MT][4], p1[1][4]; /* p1: k16 step 1 of MT 1 */
#pragma unroll
                for (int nt = 0; nt < MT; nt++) p0[nt][0] = p0[nt][1] = p0[nt][2] = p0[nt][3] = 0.0f;
                p1[0][0] = p1[0][1] = p1[0][2] = p1[0][3] = 0.0f;
                uint32_t za = 0, zb = 0;
                half2 zfa, z16a, zfb, z16b;
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int gl = gk + e / GE;
                    if (e % GE == 0) { /* a group's zeros, once */
                        za = sza[gl * CU_SZ_WORDS + (lane >> 2)];
                        zb = szb[gl * CU_SZ_WORDS + (lane >> 2)];
                        cu_dq4_zero(za, zfa, z16a);
                        cu_dq4_zero(zb, zfb, z16b);
                    }
                    uint32_t b0[4], b1[4];
                    if (ZF) {
                        gs_dq4_raw(u4c(wa, e), b0);
                        gs_dq4_raw(u4c(wb, e), b1);
                    } else {
                        cu_dq4z(u4c(wa, e), zfa, z16a, b0);
                        cu_dq4z(u4c(wb, e), zfb, z16b, b1);
                    }
                    const uint32_t a0[4] = {b0[0], b1[0], b0[1], b1[1]};
                    const uint32_t a1[4] = {b0[2], b1[2], b0[3], b1[3]};
#pragma unroll
                    for (int nt = 0; nt < MT; nt++) {
                        uint32_t xb[4];
                        cu_ldmatrix_x4(xb, xu[nt] + kk * 128 + e * 32);
                        cu_mma16816(p0[nt], a0, xb[0], xb[1]);
                        cu_mma16816(SPLIT ? p1[0] : p0[nt], a1, xb[2], xb[3]);
                    }
                    if ((e + 1) % GE == 0) {
                        const float fa = __half2float(reinterpret_cast<const half *>(sza + gl * CU_SZ_WORDS + 8)[lane >> 2]);
                        const float fb = __half2float(reinterpret_cast<const half *>(szb + gl * CU_SZ_WORDS + 8)[lane >> 2]);
                        if constexpr (ZF) {
                            /* za/zb: {1024 + z, -(64 + z)}; fold unit of this k32 for rows 2q, 2q+1 */
                            const float2 ca = __half22float2(*reinterpret_cast<const half2 *>(&za));
                            const float2 cb = __half22float2(*reinterpret_cast<const half2 *>(&zb));
                            const int f = (kx + e * 32) / FU;
                            const float4 sx = *reinterpret_cast<const float4 *>(xsum + (f * 8 + (lane & 3) * 2) * 2);
                            p0[0][0] += p1[0][0] * 0.0625f - ca.x * sx.x + ca.y * sx.y;
                            p0[0][1] += p1[0][1] * 0.0625f - ca.x * sx.z + ca.y * sx.w;
                            p0[0][2] += p1[0][2] * 0.0625f - cb.x * sx.x + cb.y * sx.y;
                            p0[0][3] += p1[0][3] * 0.0625f - cb.x * sx.z + cb.y * sx.w;
#pragma unroll
                            for (int c = 0; c < 4; c++) p1[0][c] = 0.0f;
                        }
#pragma unroll
                        for (int nt = 0; nt < MT; nt++) {
                            const float *q1 = SPLIT ? p1[0] : NULL;
                            acc[nt][0] += fa * (p0[nt][0] + (SPLIT ? q1[0] : 0.0f));
                            acc[nt][1] += fa * (p0[nt][1] + (SPLIT ? q1[1] : 0.0f));
                            acc[nt][2] += fb * (p0[nt][2] + (SPLIT ? q1[2] : 0.0f));
                            acc[nt][3] += fb * (p0[nt][3] + (SPLIT ? q1[3] : 0.0f));
#pragma unroll
                            for (int c = 0; c < 4; c++) p0[nt][c] = 0.0f;
                        }
#pragma unroll
                        for (int c = 0; c < 4; c++) p1[0][c] = 0.0f;
                    }
                }
            }
        }
        /* every lane's shared reads of this stage are done (their values were used above)
         * before one lane hands the stage to the copy engine again */
        __syncwarp();
        if (lane == 0 && i + R < nmine) { /* unit i + R goes where unit i was */
            issue(st, s_iss, p_iss);
            gs_adv(geo, s_iss, p_iss, ustep);
        }
        if (++st == R) {
            st = 0;
            phase ^= 1u;
        }
        /* the sums go out when the next unit is another pair (always, in order 0) */
        const int pthis = p;
        gs_adv(geo, s, p, ustep);
        if (i + 1 < nmine && p == pthis) continue;
#pragma unroll
        for (int nt = 0; nt < MT; nt++) {
            /* mode 3: split-K atomics, 16 bytes each (the host checked alignment) */
            if (nt * 8 < M) {
                if (MT > 1 && mode == 3)
                    cuq_red_pair_v4(y + (size_t)nt * 8 * ldy, ldy, 2 * pthis, geo.ntiles, M - nt * 8, lane, acc[nt]);
                else
                    cuq_store_pair(y + (size_t)nt * 8 * ldy, ldy, 2 * pthis, geo.ntiles, M - nt * 8, lane, acc[nt],
                                   mode == 3 ? 2 : mode);
            }
            acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
        }
    }
#else
    /* built for an older GPU: the host never launches this (gs_ok checks the binary) */
    __trap();
#endif
}

/* ------------------------------------------------------------------ host side ---- */
static int gs_env(const char *name, int dflt) {
    const char *e = getenv(name);
    return e && *e ? atoi(e) : dflt;
}

template <int GE, int S, bool ZF, int MINB, int MT = 1, bool WG = false> static const void *gs_fn(void) {
    return (const void *)kernel_qmm_gemv_stream<GE, S, ZF, MINB, MT, WG>;
}

/* mt > 1: the batched build (S = 4, no zero fold, registers uncapped: one block per SM), with
 * the wgmma step (wg) for groups >= 128; bps3: the 80-register build for three blocks per SM
 * (S = 4, no zero fold) */
static const void *gs_pick(int ge, int S, bool zf, bool bps3, int mt, bool wg) {
    if (mt > 1 && wg && ge == 4)
        return mt == 2 ? gs_fn<4, 4, false, 1, 2, true>() : mt == 4 ? gs_fn<4, 4, false, 1, 4, true>()
                                                                   : gs_fn<4, 4, false, 1, 8, true>();
#define GS_M(GE_) \
    if (ge == GE_) return mt == 2 ? gs_fn<GE_, 4, false, 1, 2>() : mt == 4 ? gs_fn<GE_, 4, false, 1, 4>() : gs_fn<GE_, 4, false, 1, 8>();
    if (mt > 1) {
        GS_M(4) GS_M(2) GS_M(1)
        return NULL;
    }
#undef GS_M
    if (bps3) return ge == 4 ? gs_fn<4, 4, false, 3>() : ge == 2 ? gs_fn<2, 4, false, 3>() : gs_fn<1, 4, false, 3>();
#define GS_P(GE_, S_) \
    if (ge == GE_ && S == S_) return zf ? gs_fn<GE_, S_, true, 2>() : gs_fn<GE_, S_, false, 2>();
    GS_P(4, 2) GS_P(4, 4) GS_P(4, 8) GS_P(2, 2) GS_P(2, 4) GS_P(2, 8) GS_P(1, 2) GS_P(1, 4) GS_P(1, 8)
#undef GS_P
    return NULL;
}

/* The device runs this build's sm_90a code (the wgmma step): asked once, by a one-thread
 * kernel, the first time cuq_gemv_stream_ok() runs (backend creation, before any graph
 * capture); 0 on any error. */
static int g_wg_built = -1;
static void gs_wg_probe(void) {
    int *d = NULL, h = 0;
    if (cudaMalloc(&d, sizeof(int)) == cudaSuccess) {
        kernel_gs_wg_probe<<<1, 1>>>(d);
        if (cudaGetLastError() == cudaSuccess && cudaMemcpy(&h, d, sizeof(int), cudaMemcpyDeviceToHost) == cudaSuccess)
            g_wg_built = h == 1;
        cudaFree(d);
    }
    if (g_wg_built < 0) g_wg_built = 0;
    cudaGetLastError();
}
/* the wgmma step for batched passes: built, and AWQ_CUDA_GEMV_WGMMA is not 0 (A/B runs) */
bool cuq_gemv_wgmma_ok(void) { return cuq_gemv_stream_ok() && g_wg_built == 1 && gs_env("AWQ_CUDA_GEMV_WGMMA", 1) != 0; }

/* The kernel exists for this device: sm_90 or newer and an sm_90 binary in this build
 * (a build for older GPUs only would run the PTX of an older target, without the copy
 * engine). Cached per process: one device per process in practice. */
bool cuq_gemv_stream_ok(void) {
    static int ok = -1;
    if (ok < 0) {
        int dev = 0, major = 0;
        cudaFuncAttributes fa;
        ok = cudaGetDevice(&dev) == cudaSuccess &&
             cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess && major >= 9 &&
             cudaFuncGetAttributes(&fa, gs_fn<4, 4, false, 2>()) == cudaSuccess && fa.binaryVersion >= 90;
        cudaGetLastError();
        if (ok) gs_wg_probe();
    }
    return ok == 1 && gs_env("AWQ_CUDA_GEMV_STREAM", 1) != 0;
}

/* Matrices of fewer weight bytes take the registers GEMV (AWQ_CUDA_GEMV_STREAM_MIN, bytes;
 * default 0: every matrix streams). */
size_t cuq_gemv_stream_min(void) {
    const char *e = getenv("AWQ_CUDA_GEMV_STREAM_MIN");
    return e && *e ? (size_t)strtoull(e, NULL, 10) : 0;
}

/* The wgmma step's block runs that never leave a k slab (or slab group): the smallest
 * multiple of 4 pairs (a warpgroup's) dividing npairs for which the groups x (npairs / run)
 * blocks fit in max_blocks, i.e. the most blocks that do; 0 when none. */
static int gs_even_run(int npairs, int groups, int max_blocks) {
    for (int ipb = 4; ipb <= npairs; ipb += 4)
        if (npairs % ipb == 0 && groups * (npairs / ipb) <= max_blocks) return ipb;
    return 0;
}

/* Launch geometry: S from AWQ_CUDA_GEMV_S (2, 4, 8; default CUQ_GEMV_STREAM_S), R the most
 * stages per warp the shared memory allows (capped by AWQ_CUDA_GEMV_R), a persistent grid of
 * as many blocks as fit on the device at once. */
static int gs_plan(char *err, const cu_qw *w, int mm, gs_geo *g, int *grid, size_t *smem, const void **fn) {
    memset(g, 0, sizeof *g);
    const int ge = w->group >= 128 ? 4 : w->group / 32;
    const int mt = mm <= 8 ? 1 : mm <= 16 ? 2 : mm <= 32 ? 4 : 8;
    int S = gs_env("AWQ_CUDA_GEMV_S", CUQ_GEMV_STREAM_S);
    if (S != 2 && S != 4 && S != 8) S = CUQ_GEMV_STREAM_S;
    const bool zf = mt == 1 && gs_env("AWQ_CUDA_GEMV_ZFOLD", CUQ_GEMV_STREAM_ZFOLD) == 1;
    const bool bps3 = mt == 1 && gs_env("AWQ_CUDA_GEMV_BPS", CUQ_GEMV_STREAM_BPS) == 3 && !zf;
    if (bps3 || mt > 1) S = 4;
    /* the wgmma step: four warps of a warpgroup take four pairs of one slab (order 0, pairs a
     * multiple of 4, runs of units a multiple of 4 per block), every unit whole (k a multiple
     * of S k128 blocks) */
    const bool wg = mt >= 4 && ge == 4 && (w->out / 8 + 1) / 2 % 4 == 0 && w->kp / 128 % 4 == 0 && cuq_gemv_wgmma_ok();
    *fn = gs_pick(ge, S, zf, bps3, mt, wg);
    if (!*fn) return awq_seterr(err, AWQ_EINVAL, "cuq_gemv_stream: group %d not built", w->group);
    g->ntiles = w->out / 8;
    g->nkb = w->kp / 128;
    g->gp = w->gp;
    g->G = w->group;
    g->S = S;
    g->npairs = (g->ntiles + 1) / 2;
    g->nslab = (g->nkb + S - 1) / S;
    g->units = g->npairs * g->nslab;
    /* auto (CUQ_GEMV_STREAM_ORDER -1): pair-major runs for one row when each warp gets a few
     * slabs of a pair (one flush per pair, x of all k is small at m = 1): measured faster on
     * gate_up at m = 1 (20.9 vs 22.8 us), slower at m = 8 and on qkv / o / down */
    int ord = gs_env("AWQ_CUDA_GEMV_ORDER", CUQ_GEMV_STREAM_ORDER);
    if (wg) ord = 0;
    if (ord != 0 && ord != 1) {
        const int nb0 = 2 * cuq_num_sms() < g->units ? 2 * cuq_num_sms() : g->units;
        ord = mm == 1 && (g->units + nb0 - 1) / nb0 >= 2 * g->nslab ? 1 : 0;
    }
    g->order = ord;
    g->szs = w->group <= 128 ? S * (128 / w->group) : S; /* G > 128: at most S groups per unit */
    g->stage_bytes = 2 * S * 512 + 2 * g->szs * CU_SZ_WORDS * 4;
    int dev = 0, optin = 0;
    CU_RET(err, cudaGetDevice(&dev));
    CU_RET(err, cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    const int sms = cuq_num_sms();
    const int rcap = gs_env("AWQ_CUDA_GEMV_R", GS_RMAX);
    /* wgmma step, order 2: each warp adds a pair's two slabs up in registers before its atomics
     * (half the atomics of order 0: they were ~25 % of a 64-row launch; H100, 64 rows: gate_up
     * 72.5 -> 65.8 us). A block stays in one slab group (x of two slabs, as order 0's), so its
     * items must divide the pairs: taken when that still fills >= 90 % of the SMs
     * (AWQ_CUDA_GEMV_ORDER=2: whenever it fits, tests; =0: never) */
    /* wgmma step, two blocks per SM (default; AWQ_CUDA_GEMV_WGBPS=1: one, then order 2 where
     * it fits): blocks of one k slab (x half the size) so that two fit, 16 warps per SM to
     * hide the dequant -> wgmma latency, one (64 rows) or two (32) stages per warp. H100:
     * gate_up 48.9 -> 42.6 us at 32 rows and 65.4 (order 2) -> 62.9 at 64, down 30.2 -> 25.5 /
     * 43.0 -> 38.1; 32 / 64 streams 6.4k -> 6.85k / 9.6k -> 9.9k tok/s */
    const int ord_env = gs_env("AWQ_CUDA_GEMV_ORDER", CUQ_GEMV_STREAM_ORDER);
    if (wg && gs_env("AWQ_CUDA_GEMV_WGBPS", 2) == 2 && ord_env != 2) {
        const int best = gs_even_run(g->npairs, g->nslab, 2 * sms);
        const long xbytes = (long)8 * mt * S * 128 * 2;
        const long budget = (long)(optin / 2) - (long)GS_STATIC - 1024;
        int R = (int)((budget - xbytes) / ((long)GS_WARPS * g->stage_bytes));
        if (R > rcap) R = rcap;
        if (R > GS_RMAX) R = GS_RMAX;
        if (best && R >= 1) {
            g->order = 0;
            g->upb = best;
            g->R = R;
            g->xk_max = S * 128;
            *grid = g->nslab * (g->npairs / best);
            *smem = (size_t)GS_WARPS * R * g->stage_bytes + (size_t)xbytes;
            return 0;
        }
    }
    if (wg && g->nslab % 2 == 0 && ord_env != 0) {
        const int groups = g->nslab / 2;
        const int best = gs_even_run(g->npairs, groups, sms);
        /* and each warp gets >= 2 items, the same number: with fewer, order 0's blocks (one
         * slab: x half the size, twice the stages) measured faster (qkv, o at 32 / 64 rows) */
        if (best && (ord_env == 2 || (10 * groups * (g->npairs / best) >= 9 * sms && best % GS_WARPS == 0 &&
                                      best >= 2 * GS_WARPS))) {
            const long xbytes = (long)8 * mt * 2 * S * 128 * 2;
            const long budget = (long)optin - (long)GS_STATIC;
            int R = (int)((budget - xbytes) / ((long)GS_WARPS * g->stage_bytes));
            if (R > rcap) R = rcap;
            if (R > GS_RMAX) R = GS_RMAX;
            if (R >= 1) {
                g->order = 2;
                g->upb = 2 * best;
                g->R = R;
                g->xk_max = 2 * S * 128;
                *grid = groups * (g->npairs / best);
                *smem = (size_t)GS_WARPS * R * g->stage_bytes + (size_t)xbytes;
                return 0;
            }
        }
    }
    /* the shared memory of an SM goes to two blocks (16 warps) when that leaves >= 2 stages per
     * warp, else to one; then the grid is what fits, at least one block per k slab so no block
     * spans more than two slabs of x */
    const size_t static_b = GS_STATIC;
    /* order 1 holds x for all of k: when that does not fit (8 rows of a long k), order 0 */
    for (; g->order >= 0; g->order--)
    for (int bps = bps3 ? 3 : 2; bps >= 1; bps--) {
        const long budget = (long)(optin / bps) - (long)static_b - (bps > 1 ? 1024 : 0);
        int nb = sms * bps;
        if (nb > g->units) nb = g->units;
        if (nb < g->nslab && g->nslab <= g->units) nb = g->nslab;
        int upb = (g->units + nb - 1) / nb;
        if (wg) upb = (upb + 3) & ~3;
        nb = (g->units + upb - 1) / upb;
        const int span = (upb + g->npairs - 2) / g->npairs + 1; /* slabs one block can touch */
        const int slabs = g->order == 1 ? g->nslab : span < g->nslab ? span : g->nslab;
        int xk = slabs * S * 128;
        if (xk > w->kp) xk = w->kp;
        /* x rows (8 when folding: the sums sit after 8 rows) + the fold's x sums */
        const long xbytes = wg ? (long)8 * mt * xk * 2 /* all 8 mt rows, no pad */
                               : (long)(zf ? 8 : mm) * (xk + 8) * 2 + (zf ? (long)(xk / (32 * ge)) * 8 * 2 * 4 : 0);
        int R = (int)((budget - xbytes) / ((long)GS_WARPS * g->stage_bytes));
        if (R > rcap) R = rcap;
        if (R > GS_RMAX) R = GS_RMAX;
        if (R < (bps > 1 ? 2 : 1)) continue;
        if (bps > 1 && mt > 1) continue; /* the batched build's registers are uncapped: one block per SM */
        g->upb = upb;
        g->R = R;
        g->xk_max = xk;
        *grid = nb;
        *smem = (size_t)GS_WARPS * R * g->stage_bytes + (size_t)xbytes;
        return 0;
    }
    g->order = 0;
    return awq_seterr(err, AWQ_EINVAL, "cuq_gemv_stream: in %d (group %d) needs more shared memory than the device has",
                      w->in, w->group);
}

int cuq_gemv_stream(char *err, const cu_qw *w, const cuq_in *in, int m, float *y, int ldy, int out_mode, bool pdl,
                    cudaStream_t st) {
    /* passes of up to 64 rows (the batched build), or 8 with AWQ_CUDA_GEMV_MT=0 (A/B runs) */
    const int pass = gs_env("AWQ_CUDA_GEMV_MT", 1) ? 64 : 8;
    for (int r0 = 0; r0 < m; r0 += pass) {
        const int mm = m - r0 < pass ? m - r0 : pass;
        gs_geo g;
        int grid = 0;
        size_t smem = 0;
        const void *fn = NULL;
        int rc = gs_plan(err, w, mm, &g, &grid, &smem, &fn);
        if (rc) return rc;
        /* one slab: every output belongs to one unit (store / add); else atomics into zeros
         * or into the residual */
        float *yy;
        int mode;
        cuq_in xx;
        if ((rc = cuq_gemv_pass(err, w, in, r0, mm, y, ldy, out_mode, g.nslab > 1, st, &xx, &yy, &mode))) return rc;
        /* batched passes: split-K sums as 16-byte atomics where y allows (cuq_red_pair_v4: a
         * quarter of the L2 operations; H100, 64 rows: gate_up 62.8 -> 57.1 us, 64 streams
         * 9.9k -> 10.5k tok/s); AWQ_CUDA_GEMV_V4=0: scalar atomics (A/B runs) */
        if (mode == 2 && mm > 8 && ((uintptr_t)yy & 15) == 0 && ldy % 4 == 0 && gs_env("AWQ_CUDA_GEMV_V4", 1) != 0)
            mode = 3;
        /* the dynamic shared memory limit, raised once per variant to what any plan can ask */
        static const void *raised[16];
        bool done = false;
        for (int i = 0; i < 16 && raised[i]; i++) done = done || raised[i] == fn;
        if (!done) {
            int dev = 0, optin = 0;
            CU_RET(err, cudaGetDevice(&dev));
            CU_RET(err, cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
            CU_RET(err, cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, optin - (int)GS_STATIC));
            for (int i = 0; i < 16; i++)
                if (!raised[i]) {
                    raised[i] = fn;
                    break;
                }
        }
        cu_launch_cfg c;
        cu_launch_init(&c, dim3((unsigned)grid), dim3(GS_THREADS), smem, st, pdl);
        int K = w->in;
        const uint4 *wq = (const uint4 *)w->w;
        const uint32_t *szw = (const uint32_t *)w->sz;
        void *args[] = {&xx, (void *)&mm, &K, &wq, &szw, &g, &yy, &ldy, &mode};
        CU_RET(err, cudaLaunchKernelExC(&c.cfg, fn, args));
    }
    return 0;
}
