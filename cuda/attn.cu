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

#include "helpers.cuh"
#include "ops.cuh"

#define ATTN_WARPS 4  /* keys in flight per block; 4 keeps the merge cheap */
#define ATTN_GMAX 8   /* query heads per KV head handled in registers */

/* ------------------------------------------------------------------ rope + kv write ---- */
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
        half *kr = kv.k + ((((size_t)kv.layer * kv.nblocks + blk) * kv.kv_heads + h) * CU_KV_BS + off) * hd;
        kr[d] = __float2half(a * c.x - b * c.y);
        kr[d + half_hd] = __float2half(b * c.x + a * c.y);
    }
    for (int i = i0 + threadIdx.x; i < kvd; i += di) {
        int h = i / hd, d = i - h * hd;
        half *vr = kv.v + ((((size_t)kv.layer * kv.nblocks + blk) * kv.kv_heads + h) * CU_KV_BS + off) * hd;
        vr[d] = __float2half(src[qd + kvd + i]);
        src[qd + kvd + i] = 0.0f;
    }
}

/* rows [0, T) of clear (clear_len floats each, a multiple of 4) = 0, float4 stores. */
static __global__ void kernel_clear_rows(float *__restrict__ clear, int clear_len) {
    float4 *row = reinterpret_cast<float4 *>(clear + (size_t)blockIdx.x * clear_len);
    for (int i = blockIdx.y * blockDim.x + threadIdx.x; i < clear_len / 4; i += gridDim.y * blockDim.x)
        row[i] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
}

int cua_rope_kv(char *err, float *qkv, int T, int heads, const float2 *rope, const int *tslot,
                const int *tpos, const cu_kv *kv, float *q, float *clear, int clear_len, cudaStream_t st) {
    if (T <= 0) return 0;
    /* 8 blocks per token: at batch 1 one block was a serial chain of loads (~10 us per layer) */
    kernel_rope_kv<<<dim3((unsigned)T, 8), 256, 0, st>>>(qkv, heads, rope, tslot, tpos, *kv, q);
    CU_LAUNCHED(err);
    if (clear) {
        if (clear_len % 4) return awq_seterr(err, AWQ_EINTERNAL, "cua_rope_kv: clear_len %d", clear_len);
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
    switch (kv->head_dim) {
    case 16: kernel_attn<16><<<grid, th, 0, st>>>(q, heads, tslot, tpos, *kv, window, splits, part, out); break;
    case 32: kernel_attn<32><<<grid, th, 0, st>>>(q, heads, tslot, tpos, *kv, window, splits, part, out); break;
    case 64: kernel_attn<64><<<grid, th, 0, st>>>(q, heads, tslot, tpos, *kv, window, splits, part, out); break;
    case 96: kernel_attn<96><<<grid, th, 0, st>>>(q, heads, tslot, tpos, *kv, window, splits, part, out); break;
    case 128: kernel_attn<128><<<grid, th, 0, st>>>(q, heads, tslot, tpos, *kv, window, splits, part, out); break;
    case 256: kernel_attn<256><<<grid, th, 0, st>>>(q, heads, tslot, tpos, *kv, window, splits, part, out); break;
    default: return awq_seterr(err, AWQ_EUNSUPPORTED, "attention: head_dim %d not built", kv->head_dim);
    }
    CU_LAUNCHED(err);
    if (splits > 1) {
        kernel_attn_combine<<<(unsigned)(T * heads), (unsigned)kv->head_dim, 0, st>>>(part, heads, kv->head_dim,
                                                                                       splits, out);
        CU_LAUNCHED(err);
    }
    return 0;
}
