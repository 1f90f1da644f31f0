/* attn_fa.cu - prefill attention as one flash-attention kernel (FlashAttention-2 style, mma.sync
 * m16n8k16 fp16 -> fp32) for a run of consecutive query positions of one sequence (a "segment"
 * of the chunk), straight from the paged KV cache: the scores never leave the SM.
 *
 * Block = (query head h, 64 MR queries), 4 warps of MR m16 row tiles (16 MR query rows) each:
 *   Q tile (64 MR, hd) fp32 -> fp16 * log2(e)/sqrt(hd) into shared memory; with MR = 1 each
 *     warp keeps its 16 rows as mma A fragments in registers (hd/16 k16 steps), with MR = 2
 *     it reloads them per k16 step and every K / V fragment feeds two mma (fa_mr: long runs);
 *   loop over key tiles of FA_BK = 64 positions, aligned to multiples of 64 (so a tile is 4
 *     whole cache pages), from the first key any query of the block sees (lo of the first
 *     query) to the last query: K and V rows go cp.async 16 B at a time from their pages
 *     (page = bt[slot * maxb + position / 16]) into XOR-swizzled shared tiles, double buffered
 *     (tile i+1 loads while tile i computes; the block-table entries of tile i+2 load then too);
 *     S (16 x 64 per warp) = Q K^T (K rows are the col-major B operand: plain ldmatrix);
 *     mask (key j visible to query i iff lo(i) <= j <= i, lo(i) = i - W + 1 with a window W,
 *     else 0: as the CPU backend), online softmax in exp2 (row max across the quad by
 *     shuffles), P to fp16 A fragments in registers (the C layout of m16n8k16 is the A layout
 *     of the next k16 step), O (16 x hd fp32 in registers) += P V (V via ldmatrix.trans);
 *   O / l -> fp16 out.
 * GQA: the block reads K/V of head h / (heads / kv_heads); blocks of one group run next to each
 * other (blockIdx.x = head), so the group's K/V tiles come from L2 after the first.
 * The query blocks are launched last-first (blockIdx.y reversed): under the causal mask the last
 * queries see the most keys, so the longest blocks start first and the short ones fill the tail.
 *
 * Only hd 64 and 128 are built (register budget: O alone is hd/2 floats per thread); other head
 * sizes (16, 32, 96, 256) take the cuBLAS path of attn_tc.cu: cua_fa_head_dim_ok says which.
 *
 * Per block and key tile: 2 * 64 * 64 * hd * 2 FLOP of mma for 2 * 64 * hd * 2 bytes of K/V from
 * L2/HBM (each tile is read by every query block and query head of the group that needs it).
 */
#include <math.h>
#include <stdlib.h>

#include <algorithm>
#include <vector>

#include "helpers.cuh"
#include "ops.cuh"

extern "C" {
#include "awq_util.h"
#include "cu.h"
}

#define CU_FA_MR2_MIN 1024        /* queries from which a warp takes two m16 row tiles (fa_mr) */
#define FA_BK 64                  /* keys per tile: 4 cache pages; S tile = 32 floats per thread */
#define FA_WARPS 4
#define FA_THREADS (FA_WARPS * 32)

/* 16-byte chunk c of row r of a tile of rows of cpr chunks: the chunk index is XORed with the
 * row's low 3 bits so the 8 row addresses of an ldmatrix (same column, 8 consecutive rows)
 * fall in 8 different bank groups (unswizzled rows of 128/256 bytes would all hit one). */
__device__ __forceinline__ int fa_swz(int r, int c, int cpr) { return r * cpr + (c ^ (r & 7)); }

__device__ __forceinline__ uint32_t fa_pack(float a, float b) { return cu_h2u(__floats2half2_rn(a, b)); }

/* One block per (head, BQ = 64 MR queries); see the file comment. MR: m16 row tiles per warp
 * (1: 16 query rows, Q kept as A fragments in registers; 2: 32 rows, Q re-read from shared
 * memory per k16 step, and every K / V fragment loaded by ldmatrix feeds MR mma: about 40 %
 * fewer shared-memory bytes per FLOP, FlashAttention-2's shape for hd 128). q (n, heads*HD)
 * fp32, out (n, heads*HD) fp16; qscale = log2(e)/sqrt(HD). Dynamic shared memory: Q (BQ, HD)
 * + K, V 2 x (64, HD) fp16. */
template <int HD, int MR>
static __global__ void __launch_bounds__(FA_THREADS)
kernel_attn_fa(const float *__restrict__ q, int n, int heads, int slot, int pos0, cu_kv kv, int window, float qscale,
               half *__restrict__ out) {
    constexpr int BQ = FA_WARPS * 16 * MR;   /* queries per block */
    constexpr int CPR = HD / 8;              /* 16-byte chunks per row */
    constexpr int NKS = HD / 16;             /* k16 steps of Q K^T */
    constexpr int NDT = HD / 8;              /* n8 tiles of O */
    constexpr int NST = FA_BK / 8;           /* n8 tiles of S */
    constexpr int NPG = FA_BK / CU_KV_BS;    /* cache pages per key tile */
    constexpr int RPP = FA_THREADS / CPR;    /* tile rows one pass of the block loads */
    constexpr int TILE = FA_BK * CPR;        /* chunks per K (or V) tile */
    constexpr int NQF = MR == 1 ? NKS : 1;   /* Q fragments kept in registers (MR 1) */
    static_assert(FA_BK % CU_KV_BS == 0, "key tiles are whole cache pages");
    static_assert(CU_KV_BS % RPP == 0, "a thread's rows of one load pass lie in one page");
    static_assert(TILE % FA_THREADS == 0 && (BQ * CPR) % FA_THREADS == 0, "whole load passes");
    static_assert(CPR >= 8, "the swizzle needs rows of at least 8 chunks");
    static_assert(MR == 1 || MR == 2, "one or two m16 tiles per warp");

    extern __shared__ uint4 fa_smem[];
    uint4 *qs = fa_smem;                     /* (BQ, CPR) */
    uint4 *ks = qs + BQ * CPR;               /* (2, FA_BK, CPR) */
    uint4 *vs = ks + 2 * TILE;               /* (2, FA_BK, CPR) */

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, tq = lane & 3;  /* mma fragment row group and column pair */
    const int h = blockIdx.x, kh = h / (heads / kv.kv_heads);
    const int qblk = gridDim.y - 1 - blockIdx.y; /* last (longest) query blocks first */
    const int qd = heads * HD;
    const int i0 = qblk * BQ, nq = min(BQ, n - i0);
    const int qp0 = pos0 + i0, qp1 = qp0 + nq - 1;                 /* positions of the block's queries */
    const int klo = window > 0 ? max(qp0 - window + 1, 0) : 0;     /* first key any of them sees */
    const int t0 = klo / FA_BK, ntiles = qp1 / FA_BK - t0 + 1;
    const int *bt = kv.bt + (size_t)slot * kv.maxb;
    const size_t lay = (size_t)kv.layer * kv.nblocks;

    /* Block-table entries of key tile t: -1 for pages holding no key in [klo, qp1] (never read:
     * pages past the sequence's end may not be allocated). */
    auto pages = [&](int t, int *blk) {
#pragma unroll
        for (int p = 0; p < NPG; p++) {
            const int first = t * FA_BK + p * CU_KV_BS;
            blk[p] = (first <= qp1 && first + CU_KV_BS - 1 >= klo) ? bt[first / CU_KV_BS] : -1;
        }
    };
    /* K and V rows of key tile t into stage st; rows outside [klo, qp1] are zero-filled (keys
     * past the last query hold stale data, and 0 * NaN in P V would poison O). */
    auto issue = [&](int t, int st, const int *blk) {
        uint4 *kd = ks + st * TILE, *vd = vs + st * TILE;
#pragma unroll
        for (int i = 0; i < TILE / FA_THREADS; i++) {
            const int idx = tid + i * FA_THREADS, r = idx / CPR, c = idx % CPR;
            const int p = t * FA_BK + r, b = blk[(i * RPP) / CU_KV_BS]; /* == r / CU_KV_BS */
            const bool ok = b >= 0 && p >= klo && p <= qp1;
            const size_t off = ok ? (((lay + b) * kv.kv_heads + kh) * CU_KV_BS + p % CU_KV_BS) * HD + c * 8 : 0;
            cu_cp_async16(kd + fa_swz(r, c, CPR), kv.k + off, ok ? 16 : 0);
            cu_cp_async16(vd + fa_swz(r, c, CPR), kv.v + off, ok ? 16 : 0);
        }
    };

    int bnext[NPG];
    pages(t0, bnext);
    issue(t0, 0, bnext);
    cu_cp_commit();
    if (ntiles > 1) pages(t0 + 1, bnext);

    /* Q tile -> fp16 * qscale, rows past n zero (their outputs are not stored) */
#pragma unroll
    for (int i = 0; i < BQ * CPR / FA_THREADS; i++) {
        const int idx = tid + i * FA_THREADS, r = idx / CPR, c = idx % CPR;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (r < nq) {
            const float4 *src = reinterpret_cast<const float4 *>(q + (size_t)(i0 + r) * qd + (size_t)h * HD + c * 8);
            const float4 a = src[0], b = src[1];
            v.x = fa_pack(a.x * qscale, a.y * qscale);
            v.y = fa_pack(a.z * qscale, a.w * qscale);
            v.z = fa_pack(b.x * qscale, b.y * qscale);
            v.w = fa_pack(b.z * qscale, b.w * qscale);
        }
        qs[fa_swz(r, c, CPR)] = v;
    }
    __syncthreads();
    /* A fragments of m16 tile mi of the warp at k16 step kk: matrices (rows 0-7 | 8-15) x
     * (cols 0-7 | 8-15) */
    auto ldq = [&](uint32_t *f, int mi, int kk) {
        cu_ldmatrix_x4(f, qs + fa_swz((warp * MR + mi) * 16 + (lane & 15), kk * 2 + (lane >> 4), CPR));
    };
    uint32_t qf[NQF][4]; /* MR 1: all of the warp's Q fragments, loaded once */
    if constexpr (MR == 1) {
#pragma unroll
        for (int kk = 0; kk < NKS; kk++) ldq(qf[kk], 0, kk);
    }

    /* the warp's query positions; rows past n (qw0 + r > qp1) compute but are not stored */
    const int qw0 = qp0 + warp * 16 * MR, qw1 = min(qw0 + 16 * MR - 1, qp1);
    const bool wlive = qw0 <= qp1;
    float o[MR][NDT][4];
#pragma unroll
    for (int mi = 0; mi < MR; mi++)
#pragma unroll
        for (int d = 0; d < NDT; d++) o[mi][d][0] = o[mi][d][1] = o[mi][d][2] = o[mi][d][3] = 0.0f;
    /* rows g and g + 8 of each m16 tile; l: this lane's part */
    float m[MR][2], l[MR][2];
#pragma unroll
    for (int mi = 0; mi < MR; mi++) m[mi][0] = m[mi][1] = -INFINITY, l[mi][0] = l[mi][1] = 0.0f;

    for (int it = 0; it < ntiles; it++) {
        if (it + 1 < ntiles) {
            issue(t0 + it + 1, (it + 1) & 1, bnext);
            cu_cp_commit();
            if (it + 2 < ntiles) pages(t0 + it + 2, bnext); /* loads land while this tile computes */
            cu_cp_wait<1>();
        } else {
            cu_cp_wait<0>();
        }
        __syncthreads(); /* tile it is in shared memory for every thread */
        const int kp0 = (t0 + it) * FA_BK;
        /* warp-uniform: does any row of this warp see a key of the tile, and are all visible? */
        const bool run = wlive && kp0 <= qw1 && !(window > 0 && kp0 + FA_BK - 1 < qw0 - window + 1);
        if (run) {
            const bool need_mask = kp0 + FA_BK - 1 > qw0 || (window > 0 && kp0 < qw1 - window + 1);
            const uint4 *kb = ks + (it & 1) * TILE, *vb = vs + (it & 1) * TILE;
            float s[MR][NST][4];
#pragma unroll
            for (int mi = 0; mi < MR; mi++)
#pragma unroll
                for (int nt = 0; nt < NST; nt++) s[mi][nt][0] = s[mi][nt][1] = s[mi][nt][2] = s[mi][nt][3] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < NKS; kk++) {
                uint32_t qa[MR][4];
#pragma unroll
                for (int mi = 0; mi < MR; mi++) {
                    if constexpr (MR == 1) {
#pragma unroll
                        for (int c = 0; c < 4; c++) qa[mi][c] = qf[kk < NQF ? kk : 0][c];
                    } else {
                        ldq(qa[mi], mi, kk);
                    }
                }
#pragma unroll
                for (int np = 0; np < NST / 2; np++) {
                    /* matrices: keys (0-7 | 8-15 of the pair) x dims (0-7 | 8-15 of the k16) ->
                     * b0, b1 of n8 tile 2np, then of 2np + 1 */
                    uint32_t b[4];
                    cu_ldmatrix_x4(b, kb + fa_swz(np * 16 + (lane & 7) + ((lane >> 4) << 3), kk * 2 + ((lane >> 3) & 1),
                                                  CPR));
#pragma unroll
                    for (int mi = 0; mi < MR; mi++) {
                        cu_mma16816(s[mi][2 * np], qa[mi], b[0], b[1]);
                        cu_mma16816(s[mi][2 * np + 1], qa[mi], b[2], b[3]);
                    }
                }
            }
            if (need_mask) {
#pragma unroll
                for (int mi = 0; mi < MR; mi++)
#pragma unroll
                    for (int nt = 0; nt < NST; nt++)
#pragma unroll
                        for (int e = 0; e < 4; e++) {
                            const int p = qw0 + mi * 16 + g + (e >> 1) * 8, j = kp0 + nt * 8 + 2 * tq + (e & 1);
                            if (j > p || (window > 0 && j < p - window + 1)) s[mi][nt][e] = -INFINITY;
                        }
            }
            /* online softmax per m16 tile and row half r (row g: elements 0, 1; row g + 8: 2, 3) */
#pragma unroll
            for (int mi = 0; mi < MR; mi++)
#pragma unroll
                for (int r = 0; r < 2; r++) {
                    float mx = -INFINITY;
#pragma unroll
                    for (int nt = 0; nt < NST; nt++) mx = fmaxf(mx, fmaxf(s[mi][nt][2 * r], s[mi][nt][2 * r + 1]));
                    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                    mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                    const float mnew = fmaxf(m[mi][r], mx);
                    /* a row with every key so far masked keeps -inf: subtract 0 so exp2 gives 0, not NaN */
                    const float muse = mnew == -INFINITY ? 0.0f : mnew;
                    const float alpha = exp2f(m[mi][r] - muse);
                    m[mi][r] = mnew;
                    l[mi][r] *= alpha;
#pragma unroll
                    for (int d = 0; d < NDT; d++) {
                        o[mi][d][2 * r] *= alpha;
                        o[mi][d][2 * r + 1] *= alpha;
                    }
#pragma unroll
                    for (int nt = 0; nt < NST; nt++) {
                        s[mi][nt][2 * r] = exp2f(s[mi][nt][2 * r] - muse);
                        s[mi][nt][2 * r + 1] = exp2f(s[mi][nt][2 * r + 1] - muse);
                        l[mi][r] += s[mi][nt][2 * r] + s[mi][nt][2 * r + 1];
                    }
                }
            /* P as fp16 A fragments, all packed before P V (half the registers of S while O
             * accumulates): P's k16 step kt is S tiles 2kt (a0, a1) and 2kt + 1 (a2, a3) */
            uint32_t pa[MR][FA_BK / 16][4];
#pragma unroll
            for (int mi = 0; mi < MR; mi++)
#pragma unroll
                for (int kt = 0; kt < FA_BK / 16; kt++) {
                    pa[mi][kt][0] = fa_pack(s[mi][2 * kt][0], s[mi][2 * kt][1]);
                    pa[mi][kt][1] = fa_pack(s[mi][2 * kt][2], s[mi][2 * kt][3]);
                    pa[mi][kt][2] = fa_pack(s[mi][2 * kt + 1][0], s[mi][2 * kt + 1][1]);
                    pa[mi][kt][3] = fa_pack(s[mi][2 * kt + 1][2], s[mi][2 * kt + 1][3]);
                }
            /* O += P V */
#pragma unroll
            for (int kt = 0; kt < FA_BK / 16; kt++) {
#pragma unroll
                for (int dp = 0; dp < NDT / 2; dp++) {
                    /* matrices: keys (0-7 | 8-15 of the k16) x dims (0-7 | 8-15 of the pair),
                     * transposed -> b0, b1 of n8 tile 2dp, then of 2dp + 1 */
                    uint32_t b[4];
                    cu_ldmatrix_x4_t(b, vb + fa_swz(kt * 16 + (lane & 15), dp * 2 + (lane >> 4), CPR));
#pragma unroll
                    for (int mi = 0; mi < MR; mi++) {
                        cu_mma16816(o[mi][2 * dp], pa[mi][kt], b[0], b[1]);
                        cu_mma16816(o[mi][2 * dp + 1], pa[mi][kt], b[2], b[3]);
                    }
                }
            }
        }
        __syncthreads(); /* every warp is done with stage it & 1 before tile it + 2 loads into it */
    }

    /* O / l -> fp16; l summed over the quad (every lane's part carries the same rescales) */
#pragma unroll
    for (int mi = 0; mi < MR; mi++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            float sum = l[mi][r];
            sum += __shfl_xor_sync(0xffffffffu, sum, 1);
            sum += __shfl_xor_sync(0xffffffffu, sum, 2);
            const float inv = sum > 0.0f ? 1.0f / sum : 0.0f; /* l > 0 always (key i sees itself): guard */
            const int row = (warp * MR + mi) * 16 + g + r * 8;
            if (row < nq) {
                half *dst = out + (size_t)(i0 + row) * qd + (size_t)h * HD + 2 * tq;
#pragma unroll
                for (int d = 0; d < NDT; d++)
                    *reinterpret_cast<half2 *>(dst + d * 8) =
                        __floats2half2_rn(o[mi][d][2 * r] * inv, o[mi][d][2 * r + 1] * inv);
            }
        }
}

/* ------------------------------------------------------------------ launcher ---- */
bool cua_fa_head_dim_ok(int hd) { return hd == 64 || hd == 128; }

/* m16 row tiles per warp for n queries: two (128-query blocks: ~40 % fewer shared-memory bytes
 * per FLOP; H100, one layer at 2048 queries: 168 -> 150 us) where the grid still has enough
 * blocks (n >= CU_FA_MR2_MIN: at 512 queries the 64-query blocks were faster), else one;
 * AWQ_CUDA_FA_MR=1 or 2 forces it (A/B runs, tests) */
static int fa_mr(int n) {
    const char *e = getenv("AWQ_CUDA_FA_MR");
    if (e && (*e == '1' || *e == '2')) return *e - '0';
    return n >= CU_FA_MR2_MIN ? 2 : 1;
}

template <int HD, int MR>
static int launch_fa(char *err, const float *q, int n, int heads, int slot, int pos0, const cu_kv *kv, int window,
                     half *out, cudaStream_t st) {
    constexpr int BQ = FA_WARPS * 16 * MR;
    const size_t smem = (size_t)(BQ + 4 * FA_BK) * HD * sizeof(half); /* hd 128: 80 / 96 KB: opt in */
    CU_RET(err, cudaFuncSetAttribute(kernel_attn_fa<HD, MR>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    const float qscale = 1.4426950408889634f / sqrtf((float)HD);
    const dim3 grid((unsigned)heads, (unsigned)((n + BQ - 1) / BQ));
    kernel_attn_fa<HD, MR><<<grid, FA_THREADS, smem, st>>>(q, n, heads, slot, pos0, *kv, window, qscale, out);
    CU_LAUNCHED(err);
    return 0;
}

int cua_attention_fa(char *err, const float *q, int n, int heads, int slot, int pos0, const cu_kv *kv, int window,
                     half *out, cudaStream_t st) {
    if (n <= 0) return 0;
    const int hd = kv->head_dim;
    if (heads % kv->kv_heads)
        return awq_seterr(err, AWQ_EUNSUPPORTED, "flash attention: %d heads over %d KV heads", heads, kv->kv_heads);
    if (pos0 < 0 || (n + 63) / 64 > 65535 || heads > 65535)
        return awq_seterr(err, AWQ_EINVAL, "flash attention: %d queries at position %d over %d heads", n, pos0, heads);
    /* other head sizes: the caller takes cua_attention_tc (cua_fa_head_dim_ok) */
    const bool mr2 = fa_mr(n) == 2;
    if (hd == 64)
        return mr2 ? launch_fa<64, 2>(err, q, n, heads, slot, pos0, kv, window, out, st)
                   : launch_fa<64, 1>(err, q, n, heads, slot, pos0, kv, window, out, st);
    if (hd == 128)
        return mr2 ? launch_fa<128, 2>(err, q, n, heads, slot, pos0, kv, window, out, st)
                   : launch_fa<128, 1>(err, q, n, heads, slot, pos0, kv, window, out, st);
    return awq_seterr(err, AWQ_EUNSUPPORTED, "flash attention: head_dim %d (built for 64 and 128; the cuBLAS path "
                      "takes the others)", hd);
}

/* ------------------------------------------------------------------ probe (tests, bench) ---- */
/* A sequence's keys and values laid into a paged cache the way the backend keeps them, but
 * harder: layer 1 of 2, slot 1 of 2, its pages a shuffled set of blocks, every row no position
 * owns NaN (a kernel that lets one into P V returns NaN) and block-table entries past the
 * sequence's pages far out of range (a kernel that reads and uses one faults). Then one kernel
 * (0: flash, 1: cuBLAS path), reps timed calls when reps > 0. Frees everything on every path. */
extern "C" int cu_attn_probe(char *err, int dev, int kernel, int heads, int kv_heads, int hd, int n, int pos0,
                             int window, const float *q, const uint16_t *k, const uint16_t *v, float *out, int reps,
                             double *us) {
    if (heads <= 0 || kv_heads <= 0 || heads % kv_heads || hd <= 0 || hd % 8 || n <= 0 || pos0 < 0 ||
        (kernel != 0 && kernel != 1))
        return awq_seterr(err, AWQ_EINVAL, "cu_attn_probe: kernel %d, %d heads over %d KV heads, head_dim %d, %d "
                          "queries at position %d", kernel, heads, kv_heads, hd, n, pos0);
    CU_RET(err, cudaSetDevice(dev));
    const int npos = pos0 + n, qd = heads * hd, L = 2, layer = 1, nseq = 2, slot = 1;
    const int used = (npos + CU_KV_BS - 1) / CU_KV_BS, maxb = used + 2, nblocks = used + 5;
    const size_t pool = (size_t)L * nblocks * kv_heads * CU_KV_BS * hd; /* halves */
    std::vector<int> perm(nblocks), bt((size_t)nseq * maxb, -(1 << 28));
    for (int i = 0; i < nblocks; i++) perm[i] = i;
    uint32_t r = 2463534242u;
    for (int i = nblocks - 1; i > 0; i--) { /* Fisher-Yates with xorshift */
        r ^= r << 13, r ^= r >> 17, r ^= r << 5;
        std::swap(perm[i], perm[r % (uint32_t)(i + 1)]);
    }
    for (int i = 0; i < used; i++) bt[(size_t)slot * maxb + i] = perm[i];
    std::vector<uint16_t> hk(pool, 0x7e00), hv(pool, 0x7e00), ho((size_t)n * qd); /* 0x7e00: fp16 NaN */
    for (int p = 0; p < npos; p++)
        for (int h = 0; h < kv_heads; h++) {
            const size_t dst = ((((size_t)layer * nblocks + perm[p / CU_KV_BS]) * kv_heads + h) * CU_KV_BS +
                                p % CU_KV_BS) * hd;
            const size_t src = ((size_t)p * kv_heads + h) * hd;
            std::copy(k + src, k + src + hd, hk.begin() + dst);
            std::copy(v + src, v + src + hd, hv.begin() + dst);
        }
    half *dk = NULL, *dv = NULL, *dout = NULL;
    float *dq = NULL;
    int *dbt = NULL;
    cua_tc tc = {};
    cudaStream_t st = NULL;
    cublasHandle_t cb = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    int rc = 0;
    CU_GOTO(err, rc, done, cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    CU_GOTO(err, rc, done, cudaMalloc(&dk, pool * 2));
    CU_GOTO(err, rc, done, cudaMalloc(&dv, pool * 2));
    CU_GOTO(err, rc, done, cudaMalloc(&dout, (size_t)n * qd * 2));
    CU_GOTO(err, rc, done, cudaMalloc(&dq, (size_t)n * qd * 4));
    CU_GOTO(err, rc, done, cudaMalloc(&dbt, bt.size() * sizeof(int)));
    CU_GOTO(err, rc, done, cudaMemcpy(dk, hk.data(), pool * 2, cudaMemcpyHostToDevice));
    CU_GOTO(err, rc, done, cudaMemcpy(dv, hv.data(), pool * 2, cudaMemcpyHostToDevice));
    CU_GOTO(err, rc, done, cudaMemcpy(dq, q, (size_t)n * qd * 4, cudaMemcpyHostToDevice));
    CU_GOTO(err, rc, done, cudaMemcpy(dbt, bt.data(), bt.size() * sizeof(int), cudaMemcpyHostToDevice));
    CU_GOTO(err, rc, done, cudaMemset(dout, 0xff, (size_t)n * qd * 2)); /* NaN: rows never written show */
    if (kernel == 1) {
        /* the backend's scratch shapes: keys of the whole sequence, scores for up to 512 query
         * rows (the shisa-7B dense scratch holds ~590 at 2048 keys) */
        tc.lcap = npos;
        tc.qcap = n;
        tc.sp_bytes = cua_tc_score_bytes(heads, n < 512 ? n : 512, npos);
        CU_GOTO(err, rc, done, cudaMalloc(&tc.k, (size_t)kv_heads * npos * hd * 2));
        CU_GOTO(err, rc, done, cudaMalloc(&tc.v, (size_t)kv_heads * npos * hd * 2));
        CU_GOTO(err, rc, done, cudaMalloc(&tc.q, (size_t)heads * n * hd * 2));
        CU_GOTO(err, rc, done, cudaMalloc(&tc.sp, tc.sp_bytes));
        cublasStatus_t cs = cublasCreate(&cb);
        if (cs == CUBLAS_STATUS_SUCCESS) cs = cublasSetStream(cb, st);
        if (cs != CUBLAS_STATUS_SUCCESS) {
            rc = awq_seterr(err, AWQ_EDEVICE, "cu_attn_probe: cuBLAS setup: %s", cublasGetStatusName(cs));
            goto done;
        }
    }
    {
        const cu_kv kv = {dk, dv, dbt, maxb, nblocks, kv_heads, hd, layer};
        std::vector<double> ms;
        CU_GOTO(err, rc, done, cudaEventCreate(&e0));
        CU_GOTO(err, rc, done, cudaEventCreate(&e1));
        for (int i = reps > 0 ? -1 : 0; i < (reps > 0 ? reps : 1); i++) { /* i = -1: warm-up */
            float t = 0;
            CU_GOTO(err, rc, done, cudaEventRecord(e0, st));
            rc = kernel == 0 ? cua_attention_fa(err, dq, n, heads, slot, pos0, &kv, window, dout, st)
                             : cua_attention_tc(err, cb, dq, n, heads, slot, pos0, &kv, window, &tc, 0, dout, st);
            if (rc) goto done;
            CU_GOTO(err, rc, done, cudaEventRecord(e1, st));
            CU_GOTO(err, rc, done, cudaEventSynchronize(e1));
            CU_GOTO(err, rc, done, cudaEventElapsedTime(&t, e0, e1));
            if (i >= 0) ms.push_back((double)t * 1e3);
        }
        if (us) {
            std::sort(ms.begin(), ms.end());
            *us = ms[ms.size() / 2];
        }
    }
    CU_GOTO(err, rc, done, cudaMemcpy(ho.data(), dout, ho.size() * 2, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < ho.size(); i++) out[i] = awq_f16_to_f32(ho[i]);
done:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    if (cb) cublasDestroy(cb);
    if (st) cudaStreamSynchronize(st), cudaStreamDestroy(st);
    cudaFree(tc.k);
    cudaFree(tc.v);
    cudaFree(tc.q);
    cudaFree(tc.sp);
    cudaFree(dk);
    cudaFree(dv);
    cudaFree(dout);
    cudaFree(dq);
    cudaFree(dbt);
    return rc;
}
