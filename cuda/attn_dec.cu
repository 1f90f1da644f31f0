/* attn_dec.cu - the fused decode attention: one kernel per layer does RoPE, the KV-cache write,
 * attention over the paged cache (flash-decoding splits merged inside the kernel) and the
 * split-K zeroing that kernel_rope_kv + kernel_clear_rows do on the other paths.
 *
 * Why: at batch-1 decode the attention part of a layer was four dependent graph nodes
 * (rope_kv, clear_rows, attn, combine), each a chain of serial DRAM round trips over tiny data
 * (context 130: 0.5 MB of KV per layer), ~37 us per layer on the H200. Here one launch per
 * layer issues every K/V load of a tile at once (cp.async, 16 B per thread) as soon as the block
 * table is read, and the splits of a token are merged by the last block to finish.
 *
 * Only for chunks where every token is the only token of its sequence (decode steps: fwd.cu):
 * keys < pos come from the cache, the token's own key/value straight from the qkv row, so no
 * block depends on another block's cache write. Prefill and multi-token chunks keep
 * kernel_rope_kv + kernel_attn (+ combine) / attn_tc.cu.
 *
 * Block (t, kv head kh, split sp), DEC_THREADS threads:
 *  1. issue the cp.async copies of the split's first two K/V tiles (TK keys each, K+V ~32 KB,
 *     double-buffered so long splits stream), zero a share of the gate|up rows, RoPE the G query
 *     heads of the group from the fp32 qkv row into shared memory (pre-scaled by
 *     log2(e)/sqrt(hd): softmax in exp2 as kernel_attn), and the own k/v (fp16, as cached).
 *  2. per tile: scores with LPK lanes per key (hd/LPK dims each, 16-byte shared loads, a
 *     shuffle reduction), an online-softmax step per head (a warp per head), P.V with threads
 *     over (key group, dim pair) holding all G heads.
 *  3. one split: write att (fp16); else write the partial (o, m, l), __threadfence + one
 *     atomic per (token, kv head); the last block to arrive merges every split, writes att and
 *     resets the counter (graphs replay it). That block (or the only one) zeroes the group's
 *     q, k and v parts of the qkv row once every split has read them.
 * The grid's split count depends on the batch size only (fwd.cu: pick_splits_dec); each token
 * uses as many of them as its context fills with >= DEC_KEYS_MIN keys, so a decode graph serves
 * every context length and short sequences batched with long ones merge few partials.
 */
#include <math.h>
#include <stdlib.h>

#include "helpers.cuh"
#include "ops.cuh"

#define DEC_THREADS 128 /* 4 warps: the softmax step takes a warp per head (G <= 8: 2 each) */
#define DEC_GMAX 8      /* query heads per KV head (ATTN_GMAX of attn.cu) */
#define DEC_SMAX CUA_DEC_SMAX
/* keys per split at least (default; AWQ_CUDA_ATTN_KEYS_MIN): a token uses min(gridDim.z, len / 16)
 * splits. 16 rather than 32: batch 1 at context 128 runs 8 blocks per KV head instead of 4
 * (H100: 401 -> 406 tok/s; the kernel is latency-bound there, bench/RESULTS.md) */
#define DEC_KEYS_MIN 16

static_assert(DEC_GMAX <= 2 * (DEC_THREADS / 32), "the softmax step gives each warp at most 2 heads");
static_assert(DEC_SMAX <= 64, "the merge gives each lane at most 2 splits");

/* Shapes derived from the head size. */
template <int HD> struct dec_cfg {
    /* keys per tile: K + V of a tile ~32 KB (two stages 64 KB), 32..128 keys */
    static constexpr int TK = 8192 / HD >= 128 ? 128 : 8192 / HD >= 64 ? 64 : 32;
    /* scores: LPK lanes per key (a power of 2 dividing hd/8), CPL 16-byte chunks each; chunk i
     * of lane p is i*LPK + p, so 8 consecutive lanes read 128 contiguous bytes of K and q */
    static constexpr int LPK = (HD / 8) % 8 == 0 ? 8 : (HD / 8) % 4 == 0 ? 4 : 2;
    static constexpr int CPL = HD / 8 / LPK;
    static constexpr int KPR = DEC_THREADS / LPK; /* keys per round */
    static constexpr int ROUNDS = TK / KPR;
    /* P.V: thread (key group kg, dim pair dp); key group kg takes keys kg, kg + NKG, ... */
    static constexpr int NP = HD / 2;
    static constexpr int NKG = DEC_THREADS / NP;
    static constexpr int TILE = TK * HD;                    /* halves of one K (or V) tile */
    static constexpr int CPT = TILE / 8 / DEC_THREADS;      /* 16-byte copies per thread per K tile */
    static constexpr size_t SMEM = (size_t)2 * 2 * TILE * 2; /* 2 stages x (K, V), fp16 */
    static_assert(TK % 32 == 0 && TK % KPR == 0 && TK % NKG == 0 && (TILE / 8) % DEC_THREADS == 0, "tile shape");
    static_assert(NKG >= 1 && (32 % LPK) == 0, "thread mapping");
    /* the epilogue reuses the tile stages: key-group sums, then the merge's (m, l, w) tables */
    static_assert((size_t)NKG * DEC_GMAX * HD * 4 <= SMEM, "key-group sums fit the stages");
    static_assert((size_t)3 * DEC_GMAX * DEC_SMAX * 4 <= SMEM, "merge tables fit the stages");
};

/* Where dim d of a head sits in q_sm: per 8-dim chunk c, dims 8c..8c+3 at [4c] and 8c+4..8c+7
 * at [hd/2 + 4c], so a lane's two float4 reads of chunk c are 16 B apart from its neighbours'
 * (conflict-free), matching the halves 0-3 / 4-7 of its 16-byte K load. */
template <int HD> __device__ __forceinline__ int dec_qi(int d) { return ((d & 4) ? HD / 2 : 0) + (d >> 3) * 4 + (d & 3); }

/* Issue the cp.async copies of keys jt .. jt + nk - 1 (K into ks, V into ks + TILE; row kk at
 * kk * hd). The block-table reads go first (all in flight together), then the copies. The own
 * position is skipped: it is not in the cache yet and is read from kn_sm / vn_sm. */
template <int HD>
__device__ __forceinline__ void dec_issue(half *ks, const cu_kv &kv, const int *bt, size_t head_base, int jt, int nk,
                                          int pos) {
    using C = dec_cfg<HD>;
    constexpr int CPR = HD / 8; /* 16-byte chunks per row */
    long long off[C::CPT];
#pragma unroll
    for (int r = 0; r < C::CPT; r++) {
        const int c = threadIdx.x + r * DEC_THREADS, kk = c / CPR, j = jt + kk;
        off[r] = -1;
        if (kk < nk && j != pos)
            off[r] = (long long)(((head_base + (size_t)__ldg(bt + j / CU_KV_BS) * kv.kv_heads) * CU_KV_BS +
                                  j % CU_KV_BS) *
                                 HD) +
                     (c % CPR) * 8;
    }
    half *vs = ks + C::TILE;
#pragma unroll
    for (int r = 0; r < C::CPT; r++) {
        if (off[r] < 0) continue;
        const int c = threadIdx.x + r * DEC_THREADS; /* row kk, chunk c % CPR: offset kk*HD + (c%CPR)*8 = 8c */
        cu_cp_async16(ks + c * 8, kv.k + off[r], 16);
        cu_cp_async16(vs + c * 8, kv.v + off[r], 16);
    }
}

/* 4 floats -> 4 halves at p (8-byte aligned). */
__device__ __forceinline__ void dec_st_h4(half *p, float4 o) {
    half2 a = __floats2half2_rn(o.x, o.y), b = __floats2half2_rn(o.z, o.w);
    uint2 u;
    u.x = cu_h2u(a);
    u.y = cu_h2u(b);
    *reinterpret_cast<uint2 *>(p) = u;
}

/* Zero the group's q heads and its k and v head in the qkv row: the next qkv GEMV adds into them. */
__device__ __forceinline__ void dec_zero_group(float *row, int qd, int kvd, int kh, int G, int hd) {
    const float4 z = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    float4 *q4 = reinterpret_cast<float4 *>(row + kh * G * hd);
    float4 *k4 = reinterpret_cast<float4 *>(row + qd + kh * hd), *v4 = reinterpret_cast<float4 *>(row + qd + kvd + kh * hd);
    for (int i = threadIdx.x; i < G * hd / 4; i += DEC_THREADS) q4[i] = z;
    for (int i = threadIdx.x; i < hd / 4; i += DEC_THREADS) {
        k4[i] = z;
        v4[i] = z;
    }
}

/* grid (T, kv_heads, splits), DEC_THREADS threads, dec_cfg<HD>::SMEM bytes of dynamic shared
 * memory. splits is the most per token: token t uses ns = min(splits, max(1, len / keys_min)) of
 * them (the rest of its blocks only zero their share of clear), so the grid, and the decode
 * graph that holds it, depends on the batch size alone, not on the context. qkv (T, qd + 2
 * kvd) fp32: read, then the group's parts zeroed; part (ns > 1): (T, kv_heads, splits, G*hd) o
 * then (T, kv_heads, splits, G, 2) (m, l); cnt (T, kv_heads) zeros on entry and exit; out (T,
 * qd) fp16; clear: rows [0, T) of clear_len floats zeroed (NULL: none). */
/* GM: query heads per KV head the registers and loops are built for (4 or 8, >= G): the loops
 * over heads are unrolled, so a build for 8 carries twice the code of one for 4, and ncu put
 * the kernel's stalls on instruction fetch (a cold kernel run once per layer). */
template <int HD, int GM>
static __global__ void __launch_bounds__(DEC_THREADS)
kernel_attn_decode(float *__restrict__ qkv, int heads, const float2 *__restrict__ rope, const int *__restrict__ tslot,
                   const int *__restrict__ tpos, cu_kv kv, int window, int splits, int keys_min, float *__restrict__ part,
                   int *__restrict__ cnt, half *__restrict__ out, float *__restrict__ clear, int clear_len) {
    using C = dec_cfg<HD>;
    static_assert(GM <= DEC_GMAX, "heads per KV head");
    constexpr int GW = GM > 4 ? 2 : 1; /* softmax steps per warp: heads warp, warp + 4 */
    extern __shared__ __align__(16) unsigned char dec_smem[]; /* [2 stages][K, V][TK][HD] fp16 */
    __shared__ __align__(16) float q_sm[DEC_GMAX * HD];      /* roped, scaled q (layout: dec_qi) */
    __shared__ float sc_sm[DEC_GMAX * C::TK];                /* the tile's scores, then probabilities */
    __shared__ __align__(16) half kn_sm[HD];                 /* own k (roped) and v, fp16 as cached */
    __shared__ __align__(16) half vn_sm[HD];
    __shared__ float corr_sm[DEC_GMAX], m_sm[DEC_GMAX], l_sm[DEC_GMAX];
    __shared__ int last_sm;
    half *tiles = reinterpret_cast<half *>(dec_smem);

    cu_pdl_trigger(); /* the o_proj GEMV may start loading its weights */
    const int t = blockIdx.x, kh = blockIdx.y, sp = blockIdx.z, tid = threadIdx.x;
    const int warp = tid >> 5, lane = tid & 31;
    const int kvh = kv.kv_heads, G = heads / kvh, qd = heads * HD, kvd = kvh * HD;
    const int pos = tpos[t], slot = tslot[t];
    /* keys [lo, pos] (window: positions > pos - window, as kernel_attn and the CPU), cut into
     * ns balanced ranges of at least keys_min keys (ns <= len: none empty); blocks with
     * sp >= ns are idle */
    const int lo = (window > 0 && pos - window + 1 > 0) ? pos - window + 1 : 0;
    const int len = pos - lo + 1;
    const int ns = min(splits, max(1, len / keys_min));
    const int j0 = lo + (int)((long long)sp * len / ns), j1 = lo + (int)((long long)(sp + 1) * len / ns) - 1;
    const int ntiles = sp < ns && j1 >= j0 ? (j1 - j0) / C::TK + 1 : 0;
    const bool has_new = ntiles > 0 && j1 == pos; /* this block holds the own key */
    const int *bt = kv.bt + (size_t)slot * kv.maxb;
    const size_t head_base = (size_t)kv.layer * kv.nblocks * kvh + kh;

    /* ---- 1. loads in flight first, then the work that overlaps them ---- */
    if (ntiles > 0) dec_issue<HD>(tiles, kv, bt, head_base, j0, min(C::TK, j1 - j0 + 1), pos);
    cu_cp_commit();
    if (ntiles > 1) dec_issue<HD>(tiles + 2 * C::TILE, kv, bt, head_base, j0 + C::TK, min(C::TK, j1 - j0 + 1 - C::TK), pos);
    cu_cp_commit();
    /* Launched as a programmatic dependent launch (sm_90): everything above reads only what the
     * host wrote before the step (positions, slots, block tables) and cache rows of earlier
     * steps, so the block table reads and the first tiles' copies overlap the qkv GEMV's tail.
     * From here on: the qkv row (the GEMV's output) and the gate|up rows (read by the previous
     * layer's down GEMV). Every block waits, the idle ones too. */
    cu_pdl_wait();

    if (clear) { /* gate|up rows: nothing reads them during attention; every block a share */
        const float4 z = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        float4 *c4 = reinterpret_cast<float4 *>(clear);
        const size_t n4 = (size_t)gridDim.x * (clear_len / 4);
        const size_t b = blockIdx.x + (size_t)gridDim.x * (blockIdx.y + (size_t)gridDim.y * blockIdx.z);
        const size_t stride = (size_t)gridDim.x * gridDim.y * gridDim.z * DEC_THREADS;
        for (size_t i = b * DEC_THREADS + tid; i < n4; i += stride) c4[i] = z;
    }
    if (sp >= ns) return; /* idle: this token needs fewer splits (no copies were issued) */

    float *row = qkv + (size_t)t * (qd + 2 * kvd);
    const float2 *cs = rope + (size_t)pos * (HD / 2);
    const float qs = rsqrtf((float)HD) * 1.4426950408889634f;
    for (int i = tid; i < G * (HD / 2); i += DEC_THREADS) {
        const int g = i / (HD / 2), d = i - g * (HD / 2);
        const float *src = row + (kh * G + g) * HD;
        const float a = src[d], b = src[d + HD / 2];
        const float2 c = cs[d];
        q_sm[g * HD + dec_qi<HD>(d)] = (a * c.x - b * c.y) * qs;
        q_sm[g * HD + dec_qi<HD>(d + HD / 2)] = (b * c.x + a * c.y) * qs;
    }
    if (has_new) {
        const float *ksrc = row + qd + kh * HD, *vsrc = row + qd + kvd + kh * HD;
        for (int d = tid; d < HD / 2; d += DEC_THREADS) {
            const float a = ksrc[d], b = ksrc[d + HD / 2];
            const float2 c = cs[d];
            kn_sm[d] = __float2half(a * c.x - b * c.y);
            kn_sm[d + HD / 2] = __float2half(b * c.x + a * c.y);
        }
        for (int d = tid; d < HD; d += DEC_THREADS) vn_sm[d] = __float2half(vsrc[d]);
    }

    /* ---- 2. the tiles ---- */
    float m_r[2] = {-INFINITY, -INFINITY}, l_r[2] = {0.0f, 0.0f}; /* heads warp and warp + 4 */
    float acc[GM][2];
#pragma unroll
    for (int g = 0; g < GM; g++) acc[g][0] = acc[g][1] = 0.0f;
    const int kp = tid % C::LPK, ks = tid / C::LPK; /* scores: lane in key, key in round */
    const int kg = tid / C::NP, dp = tid % C::NP;   /* P.V: key group, dim pair */
    for (int it = 0; it < ntiles; it++) {
        const int jt = j0 + it * C::TK, nk = min(C::TK, j1 - jt + 1);
        const half *Ks = tiles + (it & 1) * 2 * C::TILE, *Vs = Ks + C::TILE;
        cu_cp_wait<1>(); /* groups committed: it + 2; tile it is group it */
        __syncthreads(); /* A: every thread's copies of tile it landed; prologue's q / k / v visible */
#pragma unroll 1 /* rounds rolled up: less code for a cold kernel (see GM) */
        for (int r = 0; r < C::ROUNDS; r++) {
            const int kk = r * C::KPR + ks;
            float s[GM];
#pragma unroll
            for (int g = 0; g < GM; g++) s[g] = 0.0f;
            if (kk < nk) {
                const half *kr = jt + kk == pos ? kn_sm : Ks + kk * HD;
#pragma unroll
                for (int i = 0; i < C::CPL; i++) {
                    const int ci = i * C::LPK + kp;
                    const uint4 raw = *reinterpret_cast<const uint4 *>(kr + ci * 8);
                    const half2 *h2 = reinterpret_cast<const half2 *>(&raw);
                    const float2 f0 = __half22float2(h2[0]), f1 = __half22float2(h2[1]);
                    const float2 f2 = __half22float2(h2[2]), f3 = __half22float2(h2[3]);
#pragma unroll
                    for (int g = 0; g < GM; g++) {
                        if (g >= G) break;
                        const float4 qa = *reinterpret_cast<const float4 *>(q_sm + g * HD + ci * 4);
                        const float4 qb = *reinterpret_cast<const float4 *>(q_sm + g * HD + HD / 2 + ci * 4);
                        s[g] += qa.x * f0.x + qa.y * f0.y + qa.z * f1.x + qa.w * f1.y + qb.x * f2.x + qb.y * f2.y +
                                qb.z * f3.x + qb.w * f3.y;
                    }
                }
            }
#pragma unroll
            for (int g = 0; g < GM; g++) {
                if (g >= G) break; /* G is block-uniform: every lane takes the shuffles */
                float v = s[g];
#pragma unroll
                for (int o = C::LPK / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
                if (kp == 0) sc_sm[g * C::TK + kk] = kk < nk ? v : -INFINITY;
            }
        }
        __syncthreads(); /* B: the tile's scores */
#pragma unroll
        for (int gi = 0; gi < GW; gi++) {
            const int g = warp + 4 * gi;
            if (g >= G) break;
            float v[C::TK / 32], mt = -INFINITY;
#pragma unroll
            for (int e = 0; e < C::TK / 32; e++) {
                v[e] = sc_sm[g * C::TK + lane + 32 * e];
                mt = fmaxf(mt, v[e]);
            }
            mt = cu_warp_max(mt); /* finite: a tile has at least one key */
            const float mn = fmaxf(m_r[gi], mt);
            float sum = 0.0f;
#pragma unroll
            for (int e = 0; e < C::TK / 32; e++) {
                const float pe = exp2f(v[e] - mn); /* 0 past nk */
                sc_sm[g * C::TK + lane + 32 * e] = pe;
                sum += pe;
            }
            sum = cu_warp_sum(sum);
            const float corr = exp2f(m_r[gi] - mn); /* 0 on the first tile */
            l_r[gi] = l_r[gi] * corr + sum;
            m_r[gi] = mn;
            if (lane == 0) corr_sm[g] = corr;
        }
        __syncthreads(); /* C: probabilities and corrections */
        if (kg < C::NKG) {
#pragma unroll
            for (int g = 0; g < GM; g++) {
                if (g >= G) break;
                const float c = corr_sm[g];
                acc[g][0] *= c;
                acc[g][1] *= c;
            }
            /* keys kg, kg + NKG, ...: a short last tile (a split of 33 keys in a 64-key tile)
             * still spreads over every key group */
#pragma unroll 4
            for (int k = kg; k < nk; k += C::NKG) {
                const half *vr = jt + k == pos ? vn_sm : Vs + k * HD;
                const float2 v = __half22float2(reinterpret_cast<const half2 *>(vr)[dp]);
#pragma unroll
                for (int g = 0; g < GM; g++) {
                    if (g >= G) break;
                    const float pk = sc_sm[g * C::TK + k];
                    acc[g][0] += pk * v.x;
                    acc[g][1] += pk * v.y;
                }
            }
        }
        __syncthreads(); /* D: this stage is read; it may be refilled */
        if (it + 2 < ntiles)
            dec_issue<HD>(tiles + (it & 1) * 2 * C::TILE, kv, bt, head_base, jt + 2 * C::TK,
                          min(C::TK, j1 - (jt + 2 * C::TK) + 1), pos);
        cu_cp_commit();
    }

    /* ---- 3. this block's result ---- */
    /* the stages are free (barrier D, or no tile at all): the key groups' sums go there */
    float *red = reinterpret_cast<float *>(dec_smem); /* (NKG, DEC_GMAX, HD) */
    if (kg < C::NKG) {
#pragma unroll
        for (int g = 0; g < GM; g++) {
            if (g >= G) break;
            *reinterpret_cast<float2 *>(red + (kg * DEC_GMAX + g) * HD + 2 * dp) = make_float2(acc[g][0], acc[g][1]);
        }
    }
    if (lane == 0)
#pragma unroll
        for (int gi = 0; gi < GW; gi++) {
            const int g = warp + 4 * gi;
            if (g < G) {
                m_sm[g] = m_r[gi];
                l_sm[g] = l_r[gi];
            }
        }
    if (has_new) { /* the own k / v into the cache (kn_sm / vn_sm are visible since barrier A) */
        const size_t at =
            ((head_base + (size_t)__ldg(bt + pos / CU_KV_BS) * kvh) * CU_KV_BS + pos % CU_KV_BS) * HD;
        for (int c = tid; c < HD / 8; c += DEC_THREADS) {
            reinterpret_cast<uint4 *>(kv.k + at)[c] = reinterpret_cast<const uint4 *>(kn_sm)[c];
            reinterpret_cast<uint4 *>(kv.v + at)[c] = reinterpret_cast<const uint4 *>(vn_sm)[c];
        }
    }
    __syncthreads();
    const int tk = t * kvh + kh; /* partials: row stride `splits` (the grid's), ns used */
    float *pml = part + (size_t)gridDim.x * kvh * splits * G * HD; /* (m, l) after all o */
    for (int i = tid; i < G * HD / 4; i += DEC_THREADS) {
        const int g = i / (HD / 4), d = (i - g * (HD / 4)) * 4;
        float4 o = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
        for (int w = 0; w < C::NKG; w++) {
            const float4 r = *reinterpret_cast<const float4 *>(red + (w * DEC_GMAX + g) * HD + d);
            o.x += r.x;
            o.y += r.y;
            o.z += r.z;
            o.w += r.w;
        }
        if (ns == 1) {
            const float L = l_sm[g]; /* > 0: the own key is in range */
            if (L > 0.0f) {
                o.x /= L;
                o.y /= L;
                o.z /= L;
                o.w /= L;
            }
            dec_st_h4(out + (size_t)t * qd + (kh * G + g) * HD + d, o);
        } else {
            *reinterpret_cast<float4 *>(part + ((size_t)tk * splits + sp) * G * HD + g * HD + d) = o;
        }
    }
    if (ns == 1) {
        dec_zero_group(row, qd, kvd, kh, G, HD); /* q, k, v were read before barrier A / above */
        return;
    }
    if (tid < G) {
        pml[(((size_t)tk * splits + sp) * G + tid) * 2] = m_sm[tid];
        pml[(((size_t)tk * splits + sp) * G + tid) * 2 + 1] = l_sm[tid];
    }

    /* ---- 4. the last block of (t, kh) merges the splits ---- */
    __threadfence(); /* this thread's partial is visible device-wide before the count says so */
    __syncthreads();
    if (tid == 0) last_sm = atomicAdd(cnt + tk, 1) == ns - 1;
    __syncthreads();
    if (!last_sm) return;
    __threadfence(); /* the other blocks' partials, fenced before their increments */
    float *mm = reinterpret_cast<float *>(dec_smem); /* (DEC_GMAX, DEC_SMAX) each; red is consumed */
    float *ll = mm + DEC_GMAX * DEC_SMAX, *wn = ll + DEC_GMAX * DEC_SMAX;
    const float2 *ml2 = reinterpret_cast<const float2 *>(pml + (size_t)tk * splits * G * 2);
    for (int i = tid; i < ns * G; i += DEC_THREADS) {
        const int s = i / G, g = i - s * G;
        const float2 v = __ldcg(ml2 + i); /* L2: other SMs wrote it */
        mm[g * DEC_SMAX + s] = v.x;
        ll[g * DEC_SMAX + s] = v.y;
    }
    __syncthreads();
#pragma unroll
    for (int gi = 0; gi < GW; gi++) {
        const int g = warp + 4 * gi;
        if (g >= G) break;
        const float a0 = lane < ns ? mm[g * DEC_SMAX + lane] : -INFINITY;
        const float a1 = lane + 32 < ns ? mm[g * DEC_SMAX + lane + 32] : -INFINITY;
        const float M = cu_warp_max(fmaxf(a0, a1)); /* finite: every used split has keys */
        const float w0 = a0 == -INFINITY ? 0.0f : exp2f(a0 - M), w1 = a1 == -INFINITY ? 0.0f : exp2f(a1 - M);
        const float L = cu_warp_sum((lane < ns ? w0 * ll[g * DEC_SMAX + lane] : 0.0f) +
                                    (lane + 32 < ns ? w1 * ll[g * DEC_SMAX + lane + 32] : 0.0f));
        const float inv = L > 0.0f ? 1.0f / L : 0.0f;
        if (lane < ns) wn[g * DEC_SMAX + lane] = w0 * inv;
        if (lane + 32 < ns) wn[g * DEC_SMAX + lane + 32] = w1 * inv;
    }
    __syncthreads();
    const float4 *po = reinterpret_cast<const float4 *>(part + (size_t)tk * splits * G * HD);
    for (int i = tid; i < G * HD / 4; i += DEC_THREADS) {
        const int g = i / (HD / 4), d4 = i - g * (HD / 4);
        float4 o = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 8
        for (int s = 0; s < ns; s++) {
            const float w = wn[g * DEC_SMAX + s];
            const float4 v = __ldcg(po + ((size_t)s * G + g) * (HD / 4) + d4);
            o.x += w * v.x;
            o.y += w * v.y;
            o.z += w * v.z;
            o.w += w * v.w;
        }
        dec_st_h4(out + (size_t)t * qd + (kh * G + g) * HD + d4 * 4, o);
    }
    dec_zero_group(row, qd, kvd, kh, G, HD); /* every split has read q, k, v: all arrived */
    if (tid == 0) cnt[tk] = 0;               /* for the next launch (graphs replay it) */
}

template <int HD, int GM>
static int dec_launch(char *err, dim3 grid, float *qkv, int heads, const float2 *rope, const int *tslot,
                      const int *tpos, const cu_kv *kv, int window, int splits, float *part, int *cnt, half *out,
                      float *clear, int clear_len, cudaStream_t st) {
    const size_t smem = dec_cfg<HD>::SMEM; /* up to 64 KB: above the 48 KB default */
    CU_RET(err, cudaFuncSetAttribute(kernel_attn_decode<HD, GM>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    cu_launch_cfg c;
    cu_launch_init(&c, grid, dim3(DEC_THREADS), smem, st, cu_pdl_unless("AWQ_CUDA_ATTN_PDL"));
    const cu_kv kvv = *kv;
    /* AWQ_CUDA_ATTN_KEYS_MIN: keys per split at least (A/B runs; default DEC_KEYS_MIN) */
    const char *e = getenv("AWQ_CUDA_ATTN_KEYS_MIN");
    const int keys_min = e && atoi(e) > 0 ? atoi(e) : DEC_KEYS_MIN;
    CU_RET(err, cudaLaunchKernelEx(&c.cfg, kernel_attn_decode<HD, GM>, qkv, heads, rope, tslot, tpos, kvv, window, splits,
                                   keys_min, part, cnt, out, clear, clear_len));
    return 0;
}

int cua_attn_decode(char *err, float *qkv, int T, int heads, const float2 *rope, const int *tslot, const int *tpos,
                    const cu_kv *kv, int window, int splits, float *part, int part_rows, int *cnt, half *out,
                    float *clear, int clear_len, cudaStream_t st) {
    if (T <= 0) return 0;
    if (heads % kv->kv_heads || heads / kv->kv_heads > DEC_GMAX)
        return awq_seterr(err, AWQ_EUNSUPPORTED, "decode attention: %d heads over %d KV heads (at most %d per KV head)",
                          heads, kv->kv_heads, DEC_GMAX);
    if (splits < 1 || splits > DEC_SMAX || (splits > 1 && (long long)T * splits > part_rows))
        return awq_seterr(err, AWQ_EINTERNAL, "decode attention: %d splits for %d tokens (at most %d, %d partial rows)",
                          splits, T, DEC_SMAX, part_rows);
    if (clear && clear_len % 4)
        return awq_seterr(err, AWQ_EINTERNAL, "decode attention: clear_len %d is not a multiple of 4", clear_len);
    dim3 grid((unsigned)T, (unsigned)kv->kv_heads, (unsigned)splits);
#define DEC_CASE(hd)                                                                                                 \
    case hd:                                                                                                         \
        return heads / kv->kv_heads <= 4                                                                            \
                   ? dec_launch<hd, 4>(err, grid, qkv, heads, rope, tslot, tpos, kv, window, splits, part, cnt, out,   \
                                       clear, clear_len, st)                                                          \
                   : dec_launch<hd, 8>(err, grid, qkv, heads, rope, tslot, tpos, kv, window, splits, part, cnt, out,   \
                                       clear, clear_len, st)
    switch (kv->head_dim) {
        DEC_CASE(16);
        DEC_CASE(32);
        DEC_CASE(64);
        DEC_CASE(96);
        DEC_CASE(128);
        DEC_CASE(256);
    default: return awq_seterr(err, AWQ_EUNSUPPORTED, "decode attention: head_dim %d not built", kv->head_dim);
    }
#undef DEC_CASE
}
