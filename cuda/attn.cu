/* attn.cu - RoPE with the KV-cache write, and attention over the paged cache.
 *
 * One attention kernel serves decode and prefill: a block takes one query token and one KV head
 * with all the query heads that share it (GQA: K and V are read once for the group); each of
 * four warps takes 32 keys at a time, a lane per key for the scores (K rows load in parallel)
 * and the warp together for the V rows (lane i holds head_dim/32 dimensions), with an online
 * softmax; the warps merge through shared memory. Long contexts are cut into `splits` pieces per token (flash-decoding) so a batch-1
 * decode at 2k tokens still fills the GPU; kernel_attn_combine merges the pieces.
 *
 * Known limit: prefill would be faster with a tensor-core flash-attention tile kernel (many
 * queries per block); this one re-reads K/V per query token (from L2). See docs/cuda.md.
 */
#include <math.h>

#include <algorithm>
#include <vector>

#include "helpers.cuh"
#include "ops.cuh"

extern "C" {
#include "awq_util.h"
#include "cu.h"
}

#define ATTN_WARPS 4  /* keys in flight per block; 4 keeps the merge cheap */
#define ATTN_GMAX 8   /* query heads per KV head handled in registers */

/* ------------------------------------------------------------------ rope + kv write ---- */
/* Vector path (hd a multiple of 8, every head size the backend builds): a flat grid of
 * (units, tokens) where a unit is 8 floats of a qkv row and one thread owns one unit:
 *   q / k unit: 4 consecutive rotation pairs of one head, (d .. d+3) and (d+hh .. d+hh+3):
 *               two float4 loads of the halves, two of the {cos, sin} table, then
 *               a' = a cos - b sin, b' = b cos + a sin (as eng_cpu_rope); q out as two float4
 *               stores, k into the cache as two 8-byte fp16 stores;
 *   v unit:     8 consecutive values, two float4 loads, one 16-byte fp16 store into the cache.
 * Every load of a thread is issued before its first store (the 64 bytes in flight per thread
 * are what reaches the copy bandwidth at 2048 tokens), the read units are zeroed (the contract
 * below), and the only division is unit -> head (qph = hd/8 units per head for both kinds).
 * Row layout: nq = qd/8 q units, nk = kvd/8 k units, nk v units. The old kernel (a loop of
 * scalar pairs per token over 8 blocks, 0.5 TB/s at 2048 tokens) remains as the path for hd
 * not a multiple of 8, which cua_head_dim_ok never admits; cu_rope_probe tests both.
 * Blocks with blockIdx.x >= rope_blocks zero rows of `clear` instead (the gate|up rows the
 * decode GEMV adds into): folded into this launch, one kernel less per layer at decode.
 * Only rows below CU_QMM_SKINNY_MAX are zeroed: no decode GEMV pass adds into more rows (steps
 * beyond that take the dense path, which overwrites), and in a 2048-token prefill the zero
 * stores of the other rows were a third of this kernel's bytes. */
#define ROPE_THREADS 128 /* one unit per thread: shisa-7B's 768 units per token make 6 blocks,
                          * so even one token spreads over 6 SMs */
#define ROPE_CLEAR_V4 4  /* float4 zero stores per thread of a clear block (64 bytes) */

/* Element offset of row (blk, head h, row off) of layer kv.layer in a K or V pool. */
__device__ __forceinline__ size_t rope_kv_row(const cu_kv &kv, int blk, int h, int off) {
    return ((((size_t)kv.layer * kv.nblocks + blk) * kv.kv_heads + h) * CU_KV_BS + off) * (size_t)kv.head_dim;
}

/* grid (rope_blocks + clear_blocks, T), ROPE_THREADS threads. */
static __global__ void __launch_bounds__(ROPE_THREADS)
kernel_rope_kv_v(float *__restrict__ qkv, int heads, const float2 *__restrict__ rope, const int *__restrict__ tslot,
                 const int *__restrict__ tpos, cu_kv kv, float *__restrict__ q, int rope_blocks,
                 float *__restrict__ clear, int clear_len) {
    cu_pdl_trigger(); /* the attention kernel may launch (it waits for this grid) */
    cu_pdl_wait();    /* qkv is the GEMV's output; every block waits, the clear blocks too */
    const int t = blockIdx.y;
    const float4 z4 = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    if ((int)blockIdx.x >= rope_blocks) {
        float4 *row = reinterpret_cast<float4 *>(clear + (size_t)t * clear_len);
        const int n4 = clear_len >> 2;
        const int i0 = ((int)blockIdx.x - rope_blocks) * (ROPE_THREADS * ROPE_CLEAR_V4) + (int)threadIdx.x;
#pragma unroll
        for (int k = 0; k < ROPE_CLEAR_V4; k++)
            if (i0 + k * ROPE_THREADS < n4) row[i0 + k * ROPE_THREADS] = z4;
        return;
    }
    const int hd = kv.head_dim, hh = hd >> 1, qph = hd >> 3;
    const int qd = heads * hd, kvd = kv.kv_heads * hd, nq = qd >> 3, nk = kvd >> 3;
    const int u = (int)blockIdx.x * ROPE_THREADS + (int)threadIdx.x;
    if (u >= nq + 2 * nk) return;
    const int pos = tpos[t], slot = tslot[t]; /* one address per block: broadcast loads */
    float *src = qkv + (size_t)t * (qd + 2 * kvd);
    if (u >= nq + nk) { /* v: 8 values -> fp16 cache row */
        const int j = u - nq - nk, h = j / qph, d = (j - h * qph) << 3;
        float4 *p = reinterpret_cast<float4 *>(src + qd + kvd + ((size_t)j << 3));
        const float4 a = p[0], b = p[1];
        const int blk = kv.bt[(size_t)slot * kv.maxb + pos / CU_KV_BS];
        if (t < CU_QMM_SKINNY_MAX) { /* consumed: leave zeros for split-K */
            p[0] = z4;
            p[1] = z4;
        }
        uint4 o;
        o.x = cu_h2u(__floats2half2_rn(a.x, a.y));
        o.y = cu_h2u(__floats2half2_rn(a.z, a.w));
        o.z = cu_h2u(__floats2half2_rn(b.x, b.y));
        o.w = cu_h2u(__floats2half2_rn(b.z, b.w));
        *reinterpret_cast<uint4 *>(kv.v + rope_kv_row(kv, blk, h, pos % CU_KV_BS) + d) = o;
        return;
    }
    const bool isq = u < nq;
    const int j = isq ? u : u - nq, h = j / qph, d = (j - h * qph) << 2;
    float *base = src + (isq ? 0 : qd) + h * hd + d;
    float4 *pa = reinterpret_cast<float4 *>(base), *pb = reinterpret_cast<float4 *>(base + hh);
    /* {cos, sin} of pairs d .. d+3: 32 bytes, 32-byte aligned (hh and d multiples of 4) */
    const float4 *c4 = reinterpret_cast<const float4 *>(rope + (size_t)pos * hh + d);
    const float4 a = *pa, b = *pb, c01 = c4[0], c23 = c4[1];
    const int blk = isq ? 0 : kv.bt[(size_t)slot * kv.maxb + pos / CU_KV_BS];
    if (t < CU_QMM_SKINNY_MAX) { /* consumed: leave zeros for split-K */
        *pa = z4;
        *pb = z4;
    }
    float4 ra, rb;
    ra.x = a.x * c01.x - b.x * c01.y;
    rb.x = b.x * c01.x + a.x * c01.y;
    ra.y = a.y * c01.z - b.y * c01.w;
    rb.y = b.y * c01.z + a.y * c01.w;
    ra.z = a.z * c23.x - b.z * c23.y;
    rb.z = b.z * c23.x + a.z * c23.y;
    ra.w = a.w * c23.z - b.w * c23.w;
    rb.w = b.w * c23.z + a.w * c23.w;
    if (isq) {
        float *qo = q + (size_t)t * qd + h * hd + d;
        *reinterpret_cast<float4 *>(qo) = ra;
        *reinterpret_cast<float4 *>(qo + hh) = rb;
    } else {
        half *kr = kv.k + rope_kv_row(kv, blk, h, pos % CU_KV_BS);
        *reinterpret_cast<uint2 *>(kr + d) =
            make_uint2(cu_h2u(__floats2half2_rn(ra.x, ra.y)), cu_h2u(__floats2half2_rn(ra.z, ra.w)));
        *reinterpret_cast<uint2 *>(kr + d + hh) =
            make_uint2(cu_h2u(__floats2half2_rn(rb.x, rb.y)), cu_h2u(__floats2half2_rn(rb.z, rb.w)));
    }
}

/* The scalar path (any even hd): grid (T, 8), a block-stride loop over the pairs. */
static __global__ void kernel_rope_kv(float *__restrict__ qkv, int heads, const float2 *__restrict__ rope,
                                      const int *__restrict__ tslot, const int *__restrict__ tpos, cu_kv kv,
                                      float *__restrict__ q) {
    const int t = blockIdx.x, hd = kv.head_dim, half_hd = hd / 2;
    const int i0 = blockIdx.y * blockDim.x, di = gridDim.y * blockDim.x; /* RoPE_Y blocks per token */
    const int qd = heads * hd, kvd = kv.kv_heads * hd;
    const int pos = tpos[t], slot = tslot[t];
    float *src = qkv + (size_t)t * (qd + 2 * kvd);
    const float2 *cs = rope + (size_t)pos * half_hd;
    const int blk = kv.bt[(size_t)slot * kv.maxb + pos / CU_KV_BS], off = pos % CU_KV_BS;
    /* q: heads * hd/2 rotation pairs */
    for (int i = i0 + threadIdx.x; i < heads * half_hd; i += di) {
        int h = i / half_hd, d = i - h * half_hd;
        float a = src[h * hd + d], b = src[h * hd + d + half_hd];
        src[h * hd + d] = src[h * hd + d + half_hd] = 0.0f; /* consumed: leave zeros for split-K */
        float2 c = cs[d];
        q[(size_t)t * qd + h * hd + d] = a * c.x - b * c.y;
        q[(size_t)t * qd + h * hd + d + half_hd] = b * c.x + a * c.y;
    }
    for (int i = i0 + threadIdx.x; i < kv.kv_heads * half_hd; i += di) {
        int h = i / half_hd, d = i - h * half_hd;
        float a = src[qd + h * hd + d], b = src[qd + h * hd + d + half_hd];
        src[qd + h * hd + d] = src[qd + h * hd + d + half_hd] = 0.0f;
        float2 c = cs[d];
        half *kr = kv.k + rope_kv_row(kv, blk, h, off);
        kr[d] = __float2half(a * c.x - b * c.y);
        kr[d + half_hd] = __float2half(b * c.x + a * c.y);
    }
    for (int i = i0 + threadIdx.x; i < kvd; i += di) {
        int h = i / hd, d = i - h * hd;
        half *vr = kv.v + rope_kv_row(kv, blk, h, off);
        vr[d] = __float2half(src[qd + kvd + i]);
        src[qd + kvd + i] = 0.0f;
    }
}

/* rows [0, T) of clear (clear_len floats each, a multiple of 4) = 0, float4 stores (with the
 * scalar RoPE path; the vector path folds this into its own grid). */
static __global__ void kernel_clear_rows(float *__restrict__ clear, int clear_len) {
    float4 *row = reinterpret_cast<float4 *>(clear + (size_t)blockIdx.x * clear_len);
    for (int i = blockIdx.y * blockDim.x + threadIdx.x; i < clear_len / 4; i += gridDim.y * blockDim.x)
        row[i] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
}

int cua_rope_kv(char *err, float *qkv, int T, int heads, const float2 *rope, const int *tslot,
                const int *tpos, const cu_kv *kv, float *q, float *clear, int clear_len, cudaStream_t st) {
    if (T <= 0) return 0;
    if (clear && (clear_len <= 0 || clear_len % 4))
        return awq_seterr(err, AWQ_EINTERNAL, "cua_rope_kv: clear_len %d (a positive multiple of 4)", clear_len);
    if (T > 65535) return awq_seterr(err, AWQ_EINTERNAL, "cua_rope_kv: %d tokens in one launch (at most 65535)", T);
    const int hd = kv->head_dim;
    if (hd % 8 == 0) {
        /* units per row (qd + 2 kvd) / 8; clear blocks cover ROPE_THREADS * ROPE_CLEAR_V4 float4 each */
        const int units = (heads + 2 * kv->kv_heads) * (hd / 8);
        const int rb = (units + ROPE_THREADS - 1) / ROPE_THREADS;
        const int cb = clear ? (clear_len / 4 + ROPE_THREADS * ROPE_CLEAR_V4 - 1) / (ROPE_THREADS * ROPE_CLEAR_V4) : 0;
        CU_RET(err, cu_launch_k(cu_row_pdl(), kernel_rope_kv_v, dim3((unsigned)(rb + cb), (unsigned)T), dim3(ROPE_THREADS),
                                0, st, qkv, heads, rope, tslot, tpos, *kv, q, rb, clear, clear_len));
        return 0;
    }
    /* 8 blocks per token: at batch 1 one block was a serial chain of loads (~10 us per layer) */
    kernel_rope_kv<<<dim3((unsigned)T, 8), 256, 0, st>>>(qkv, heads, rope, tslot, tpos, *kv, q);
    CU_LAUNCHED(err);
    if (clear) {
        kernel_clear_rows<<<dim3((unsigned)T, 16), 256, 0, st>>>(clear, clear_len);
        CU_LAUNCHED(err);
    }
    return 0;
}

/* ------------------------------------------------------------------ attention ---- */
/* HD must be a multiple of 8 (16-byte K-row loads). */
template <int D> __device__ __forceinline__ void ld_row(const half *p, float *o) {
    if constexpr (D % 2 == 0) {
#pragma unroll
        for (int i = 0; i < D / 2; i++) {
            float2 f = __half22float2(reinterpret_cast<const half2 *>(p)[i]);
            o[2 * i] = f.x;
            o[2 * i + 1] = f.y;
        }
    } else {
#pragma unroll
        for (int i = 0; i < D; i++) o[i] = __half2float(p[i]);
    }
}

/* grid (T, kv_heads, splits), ATTN_WARPS warps. Scores use exp2 with q pre-scaled by
 * log2(e)/sqrt(hd): softmax(q.k/sqrt(hd)) unchanged, one multiply saved per key. */
template <int HD>
static __global__ void __launch_bounds__(ATTN_WARPS * 32)
kernel_attn(const float *__restrict__ q, int heads, const int *__restrict__ tslot, const int *__restrict__ tpos,
            cu_kv kv, int window, int splits, float *__restrict__ part, half *__restrict__ out) {
    constexpr int D = HD >= 32 ? HD / 32 : 1; /* dims per lane; HD 16: lanes 16..31 idle */
    __shared__ float sm_m[ATTN_WARPS][ATTN_GMAX], sm_l[ATTN_WARPS][ATTN_GMAX];
    __shared__ float sm_o[ATTN_WARPS][ATTN_GMAX][HD];
    cu_pdl_trigger(); /* the o_proj GEMV may start loading its weights */
    cu_pdl_wait();    /* q and this step's cache rows come from the RoPE kernel */
    const int t = blockIdx.x, kh = blockIdx.y, sp = blockIdx.z;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int G = heads / kv.kv_heads;
    const int pos = tpos[t], slot = tslot[t];
    const int lo = (window > 0 && pos - window + 1 > 0) ? pos - window + 1 : 0;
    const int len = pos - lo + 1, chunk = (len + splits - 1) / splits;
    const int j0 = lo + sp * chunk, j1 = min(pos, j0 + chunk - 1);
    const float qs = rsqrtf((float)HD) * 1.4426950408889634f;
    const bool act = lane * D < HD;

    /* q of the group, pre-scaled, in shared memory: every lane reads it whole for its key */
    __shared__ __align__(16) float q_sm[ATTN_GMAX][HD];
    for (int i = threadIdx.x; i < G * HD; i += blockDim.x)
        q_sm[i / HD][i % HD] = q[(size_t)t * heads * HD + (kh * G) * HD + i] * qs;
    float m[ATTN_GMAX], l[ATTN_GMAX], acc[ATTN_GMAX][D];
#pragma unroll
    for (int g = 0; g < ATTN_GMAX; g++) {
        m[g] = -INFINITY;
        l[g] = 0.0f;
#pragma unroll
        for (int d = 0; d < D; d++) acc[g][d] = 0.0f;
    }
    __syncthreads();
    const int *bt = kv.bt + (size_t)slot * kv.maxb;
    const size_t head_base = ((size_t)kv.layer * kv.nblocks) * kv.kv_heads + kh;
    /* 32 keys per warp at a time, one per lane: the K rows load in parallel (the latency of
     * one dependent load per key was the limit of a warp-per-key loop), scores need no
     * shuffles; then the warp walks the 32 V rows, each a coalesced 2*hd-byte read. */
    for (int jb = j0 + warp * 32; jb <= j1; jb += ATTN_WARPS * 32) {
        const int j = jb + lane;
        const bool ok = j <= j1;
        const long long krow =
            ok ? (long long)(((head_base + (size_t)bt[j / CU_KV_BS] * kv.kv_heads) * CU_KV_BS + j % CU_KV_BS) * HD)
               : 0;
        float sc[ATTN_GMAX];
#pragma unroll
        for (int g = 0; g < ATTN_GMAX; g++) sc[g] = 0.0f;
        const half *kp = kv.k + krow;
#pragma unroll 4
        for (int d0 = 0; d0 < HD; d0 += 8) {
            uint4 raw = ok ? *reinterpret_cast<const uint4 *>(kp + d0) : make_uint4(0, 0, 0, 0);
            const half2 *h2 = reinterpret_cast<const half2 *>(&raw);
            float kf[8];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                float2 f = __half22float2(h2[i]);
                kf[2 * i] = f.x;
                kf[2 * i + 1] = f.y;
            }
#pragma unroll
            for (int g = 0; g < ATTN_GMAX; g++) {
                if (g >= G) break;
                const float4 qa = *reinterpret_cast<const float4 *>(&q_sm[g][d0]);
                const float4 qb = *reinterpret_cast<const float4 *>(&q_sm[g][d0 + 4]);
                sc[g] += qa.x * kf[0] + qa.y * kf[1] + qa.z * kf[2] + qa.w * kf[3] + qb.x * kf[4] + qb.y * kf[5] +
                         qb.z * kf[6] + qb.w * kf[7];
            }
        }
        float pk[ATTN_GMAX];
#pragma unroll
        for (int g = 0; g < ATTN_GMAX; g++) {
            if (g >= G) break;
            float sv = ok ? sc[g] : -INFINITY;
            float mn = fmaxf(m[g], cu_warp_max(sv)); /* finite: lane 0's key is in range */
            float p = exp2f(sv - mn), corr = exp2f(m[g] - mn);
            l[g] = l[g] * corr + cu_warp_sum(p);
#pragma unroll
            for (int d = 0; d < D; d++) acc[g][d] *= corr;
            m[g] = mn;
            pk[g] = p;
        }
        const int nk = min(32, j1 - jb + 1);
        /* rounds of 8 keys: the 8 V rows are loaded before any is used (8 loads in flight) */
        for (int k0 = 0; k0 < nk; k0 += 8) {
            float vf[8][D];
#pragma unroll
            for (int u = 0; u < 8; u++) {
                const long long vrow = __shfl_sync(0xffffffffu, krow, (k0 + u) & 31);
#pragma unroll
                for (int d = 0; d < D; d++) vf[u][d] = 0.0f;
                if (act && k0 + u < nk) ld_row<D>(kv.v + vrow + lane * D, vf[u]);
            }
#pragma unroll
            for (int u = 0; u < 8; u++) {
#pragma unroll
                for (int g = 0; g < ATTN_GMAX; g++) {
                    if (g >= G) break;
                    const float p = __shfl_sync(0xffffffffu, pk[g], (k0 + u) & 31); /* 0 past nk */
#pragma unroll
                    for (int d = 0; d < D; d++) acc[g][d] += p * vf[u][d];
                }
            }
        }
    }
#pragma unroll
    for (int g = 0; g < ATTN_GMAX; g++) {
        if (g >= G) break;
        if (lane == 0) {
            sm_m[warp][g] = m[g];
            sm_l[warp][g] = l[g];
        }
        if (act)
#pragma unroll
            for (int d = 0; d < D; d++) sm_o[warp][g][lane * D + d] = acc[g][d];
    }
    __syncthreads();
    /* merge: thread i takes (g, d) pairs */
    for (int i = threadIdx.x; i < G * HD; i += blockDim.x) {
        int g = i / HD, d = i - g * HD;
        float M = -INFINITY;
        for (int w = 0; w < ATTN_WARPS; w++) M = fmaxf(M, sm_m[w][g]);
        float L = 0.0f, O = 0.0f;
        if (M != -INFINITY)
            for (int w = 0; w < ATTN_WARPS; w++) {
                if (sm_m[w][g] == -INFINITY) continue;
                float f = exp2f(sm_m[w][g] - M);
                L += sm_l[w][g] * f;
                O += sm_o[w][g][d] * f;
            }
        int h = kh * G + g;
        if (splits == 1) {
            out[(size_t)t * heads * HD + h * HD + d] = __float2half(L > 0.0f ? O / L : 0.0f);
        } else {
            float *pp = part + (((size_t)t * heads + h) * splits + sp) * (HD + 2);
            pp[d] = O;
            if (d == 0) {
                pp[HD] = M;
                pp[HD + 1] = L;
            }
        }
    }
}

/* grid (T * heads), hd threads: merge the splits of one (token, head). */
static __global__ void kernel_attn_combine(const float *__restrict__ part, int heads, int hd, int splits,
                                           half *__restrict__ out) {
    cu_pdl_trigger(); /* the o_proj GEMV may start loading its weights */
    cu_pdl_wait();    /* the partials of kernel_attn */
    const int th = blockIdx.x, d = threadIdx.x;
    const float *pp = part + (size_t)th * splits * (hd + 2);
    float M = -INFINITY;
    for (int s = 0; s < splits; s++) M = fmaxf(M, pp[s * (hd + 2) + hd]);
    float L = 0.0f, O = 0.0f;
    if (M != -INFINITY)
        for (int s = 0; s < splits; s++) {
            float ms = pp[s * (hd + 2) + hd];
            if (ms == -INFINITY) continue;
            float f = exp2f(ms - M);
            L += pp[s * (hd + 2) + hd + 1] * f;
            O += pp[s * (hd + 2) + d] * f;
        }
    out[(size_t)th * hd + d] = __float2half(L > 0.0f ? O / L : 0.0f);
}

bool cua_head_dim_ok(int hd) { return hd == 16 || hd == 32 || hd == 64 || hd == 96 || hd == 128 || hd == 256; }

int cua_attention(char *err, const float *q, int T, int heads, const int *tslot, const int *tpos,
                  const cu_kv *kv, int window, int splits, float *part, half *out, cudaStream_t st) {
    if (T <= 0) return 0;
    if (heads % kv->kv_heads || heads / kv->kv_heads > ATTN_GMAX)
        return awq_seterr(err, AWQ_EUNSUPPORTED, "attention: %d heads over %d KV heads (at most %d per KV head)",
                          heads, kv->kv_heads, ATTN_GMAX);
    if (splits < 1) splits = 1;
    dim3 grid((unsigned)T, (unsigned)kv->kv_heads, (unsigned)splits);
    const int th = ATTN_WARPS * 32;
    void (*k)(const float *, int, const int *, const int *, cu_kv, int, int, float *, half *);
    switch (kv->head_dim) {
    case 16: k = kernel_attn<16>; break;
    case 32: k = kernel_attn<32>; break;
    case 64: k = kernel_attn<64>; break;
    case 96: k = kernel_attn<96>; break;
    case 128: k = kernel_attn<128>; break;
    case 256: k = kernel_attn<256>; break;
    default: return awq_seterr(err, AWQ_EUNSUPPORTED, "attention: head_dim %d not built", kv->head_dim);
    }
    const bool pdl = cu_row_pdl();
    CU_RET(err, cu_launch_k(pdl, k, grid, dim3(th), 0, st, q, heads, tslot, tpos, *kv, window, splits, part, out));
    if (splits > 1)
        CU_RET(err, cu_launch_k(pdl, kernel_attn_combine, dim3((unsigned)(T * heads)), dim3((unsigned)kv->head_dim), 0,
                                st, (const float *)part, heads, kv->head_dim, splits, out));
    return 0;
}

/* ------------------------------------------------------------------ probe ---- */
/* cu_rope_probe (cu.h): cua_rope_kv alone on a paged cache of shuffled blocks (layer 1 of 2)
 * whose every row starts as fp16 NaN, so a write to the wrong row shows twice: a token's own
 * row keeps NaN, and another row changes (*stray). */
extern "C" int cu_rope_probe(char *err, int dev, int heads, int kv_heads, int hd, float theta, int T, const int *slot,
                             const int *pos, const float *qkv, int clear_len, float *q, uint16_t *k, uint16_t *v,
                             float *qkv_after, float *clear_after, long long *stray, int reps, double *us) {
    if (heads <= 0 || kv_heads <= 0 || hd <= 0 || hd % 2 || hd > 1024 || T <= 0 || T > 65535 || clear_len < 0 ||
        clear_len % 4 || (clear_len > 0 && !clear_after))
        return awq_seterr(err, AWQ_EINVAL, "cu_rope_probe: %d heads, %d KV heads, head_dim %d, %d tokens, clear_len %d",
                          heads, kv_heads, hd, T, clear_len);
    int nseq = 0, maxpos = 0;
    for (int t = 0; t < T; t++) {
        if (slot[t] < 0 || slot[t] >= 64 || pos[t] < 0 || pos[t] >= (1 << 20))
            return awq_seterr(err, AWQ_EINVAL, "cu_rope_probe: token %d at slot %d position %d (slots 0..63, "
                              "positions 0..2^20-1)", t, slot[t], pos[t]);
        nseq = std::max(nseq, slot[t] + 1);
        maxpos = std::max(maxpos, pos[t]);
    }
    CU_RET(err, cudaSetDevice(dev));
    const int qd = heads * hd, kvd = kv_heads * hd, W = qd + 2 * kvd, hh = hd / 2, L = 2, layer = 1;
    const int maxb = maxpos / CU_KV_BS + 1, nblocks = nseq * maxb + 3;
    const size_t prow = (size_t)L * nblocks * kv_heads * CU_KV_BS, pool = prow * hd; /* rows, halves */
    std::vector<int> perm(nblocks), bt((size_t)nseq * maxb);
    for (int i = 0; i < nblocks; i++) perm[i] = i;
    uint32_t r = 2463534242u;
    for (int i = nblocks - 1; i > 0; i--) { /* Fisher-Yates with xorshift */
        r ^= r << 13, r ^= r >> 17, r ^= r << 5;
        std::swap(perm[i], perm[r % (uint32_t)(i + 1)]);
    }
    for (size_t i = 0; i < bt.size(); i++) bt[i] = perm[i];
    /* each token's cache rows (per KV head), and no (slot, position) twice */
    std::vector<char> own(prow, 0), seen((size_t)nseq * maxb * CU_KV_BS, 0);
    std::vector<size_t> trow((size_t)T * kv_heads);
    for (int t = 0; t < T; t++) {
        char &sn = seen[((size_t)slot[t] * maxb) * CU_KV_BS + pos[t]];
        if (sn) return awq_seterr(err, AWQ_EINVAL, "cu_rope_probe: token %d repeats slot %d position %d", t, slot[t], pos[t]);
        sn = 1;
        const int blk = bt[(size_t)slot[t] * maxb + pos[t] / CU_KV_BS];
        for (int h = 0; h < kv_heads; h++) {
            const size_t row = (((size_t)layer * nblocks + blk) * kv_heads + h) * CU_KV_BS + pos[t] % CU_KV_BS;
            trow[(size_t)t * kv_heads + h] = row;
            own[row] = 1;
        }
    }
    /* the backend's table (backend.cu): host powf/cosf/sinf */
    std::vector<float2> rt((size_t)(maxpos + 1) * hh);
    for (int i = 0; i < hh; i++) {
        float inv = 1.0f / powf(theta, (float)(2 * i) / (float)hd);
        for (int p = 0; p <= maxpos; p++) {
            float a = (float)p * inv;
            rt[(size_t)p * hh + i] = make_float2(cosf(a), sinf(a));
        }
    }
    std::vector<uint16_t> hk(pool, 0x7e00), hv(pool, 0x7e00); /* 0x7e00: fp16 NaN */
    half *dk = NULL, *dv = NULL;
    float *dqkv = NULL, *dq = NULL, *dclear = NULL;
    float2 *drope = NULL;
    int *dslot = NULL, *dpos = NULL, *dbt = NULL;
    cudaStream_t st = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    const size_t nclear = (size_t)(T + 1) * clear_len;
    int rc = 0;
    CU_GOTO(err, rc, done, cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    CU_GOTO(err, rc, done, cudaMalloc(&dk, pool * 2));
    CU_GOTO(err, rc, done, cudaMalloc(&dv, pool * 2));
    CU_GOTO(err, rc, done, cudaMalloc(&dqkv, (size_t)T * W * 4));
    CU_GOTO(err, rc, done, cudaMalloc(&dq, (size_t)T * qd * 4));
    CU_GOTO(err, rc, done, cudaMalloc(&drope, rt.size() * sizeof(float2)));
    CU_GOTO(err, rc, done, cudaMalloc(&dslot, (size_t)T * 4));
    CU_GOTO(err, rc, done, cudaMalloc(&dpos, (size_t)T * 4));
    CU_GOTO(err, rc, done, cudaMalloc(&dbt, bt.size() * 4));
    if (clear_len > 0) CU_GOTO(err, rc, done, cudaMalloc(&dclear, nclear * 4));
    CU_GOTO(err, rc, done, cudaMemcpy(dk, hk.data(), pool * 2, cudaMemcpyHostToDevice));
    CU_GOTO(err, rc, done, cudaMemcpy(dv, hv.data(), pool * 2, cudaMemcpyHostToDevice));
    CU_GOTO(err, rc, done, cudaMemcpy(dqkv, qkv, (size_t)T * W * 4, cudaMemcpyHostToDevice));
    CU_GOTO(err, rc, done, cudaMemset(dq, 0xff, (size_t)T * qd * 4)); /* NaN: q never written shows */
    CU_GOTO(err, rc, done, cudaMemcpy(drope, rt.data(), rt.size() * sizeof(float2), cudaMemcpyHostToDevice));
    CU_GOTO(err, rc, done, cudaMemcpy(dslot, slot, (size_t)T * 4, cudaMemcpyHostToDevice));
    CU_GOTO(err, rc, done, cudaMemcpy(dpos, pos, (size_t)T * 4, cudaMemcpyHostToDevice));
    CU_GOTO(err, rc, done, cudaMemcpy(dbt, bt.data(), bt.size() * 4, cudaMemcpyHostToDevice));
    if (clear_len > 0) CU_GOTO(err, rc, done, cudaMemset(dclear, 0xff, nclear * 4));
    {
        const cu_kv kv = {dk, dv, dbt, maxb, nblocks, kv_heads, hd, layer};
        if ((rc = cua_rope_kv(err, dqkv, T, heads, drope, dslot, dpos, &kv, dq, dclear, clear_len, st))) goto done;
        CU_GOTO(err, rc, done, cudaStreamSynchronize(st));
        CU_GOTO(err, rc, done, cudaMemcpy(q, dq, (size_t)T * qd * 4, cudaMemcpyDeviceToHost));
        CU_GOTO(err, rc, done, cudaMemcpy(qkv_after, dqkv, (size_t)T * W * 4, cudaMemcpyDeviceToHost));
        CU_GOTO(err, rc, done, cudaMemcpy(hk.data(), dk, pool * 2, cudaMemcpyDeviceToHost));
        CU_GOTO(err, rc, done, cudaMemcpy(hv.data(), dv, pool * 2, cudaMemcpyDeviceToHost));
        if (clear_len > 0) CU_GOTO(err, rc, done, cudaMemcpy(clear_after, dclear, nclear * 4, cudaMemcpyDeviceToHost));
        for (size_t i = 0; i < trow.size(); i++) {
            std::copy(hk.begin() + trow[i] * hd, hk.begin() + (trow[i] + 1) * hd, k + i * hd);
            std::copy(hv.begin() + trow[i] * hd, hv.begin() + (trow[i] + 1) * hd, v + i * hd);
        }
        long long n = 0;
        for (size_t row = 0; row < prow; row++)
            if (!own[row])
                for (int d = 0; d < hd; d++) n += (hk[row * hd + d] != 0x7e00) + (hv[row * hd + d] != 0x7e00);
        *stray = n;
        if (reps > 0) { /* the rows are zeros now: the same traffic, timed */
            std::vector<double> ms;
            CU_GOTO(err, rc, done, cudaEventCreate(&e0));
            CU_GOTO(err, rc, done, cudaEventCreate(&e1));
            for (int i = -1; i < reps; i++) { /* i = -1: warm-up */
                float ts = 0;
                CU_GOTO(err, rc, done, cudaEventRecord(e0, st));
                if ((rc = cua_rope_kv(err, dqkv, T, heads, drope, dslot, dpos, &kv, dq, dclear, clear_len, st)))
                    goto done;
                CU_GOTO(err, rc, done, cudaEventRecord(e1, st));
                CU_GOTO(err, rc, done, cudaEventSynchronize(e1));
                CU_GOTO(err, rc, done, cudaEventElapsedTime(&ts, e0, e1));
                if (i >= 0) ms.push_back((double)ts * 1e3);
            }
            std::sort(ms.begin(), ms.end());
            if (us) *us = ms[ms.size() / 2];
        }
    }
done:
    if (e0) cudaEventDestroy(e0);
    if (e1) cudaEventDestroy(e1);
    if (st) cudaStreamSynchronize(st), cudaStreamDestroy(st);
    cudaFree(dk);
    cudaFree(dv);
    cudaFree(dqkv);
    cudaFree(dq);
    cudaFree(dclear);
    cudaFree(drope);
    cudaFree(dslot);
    cudaFree(dpos);
    cudaFree(dbt);
    return rc;
}
