/* attn_tc.cu - prefill attention on tensor cores through cuBLAS, for a run of consecutive
 * query positions of one sequence (a "segment" of the chunk: a prompt or a prompt piece).
 *
 * Per layer and segment:
 *   1. gather the sequence's K and V rows [kbase, last position] from the paged cache into
 *      contiguous (kv_heads, lcap, hd) scratch (one pass; prefix positions written by earlier
 *      calls come along, so a prompt fed in pieces works);
 *   2. per block of qb queries (qb bounds the score scratch):
 *      Q block -> fp16 (heads, qb, hd), pre-scaled by 1/sqrt(hd);
 *      S (heads, qb, Lb) fp32 = Q K^T: one strided-batched GEMM over KV heads, the G query
 *        heads of a group stacked as G*qb rows (GQA without copying K);
 *      P = softmax(S) fp16 with the mask (key at position j visible to the query at i iff
 *        lo(i) <= j <= i, lo(i) = i - W + 1 with a sliding window W, else 0: as attn.cu and
 *        the CPU backend);
 *      out rows (qb, heads*hd) fp16 = P V: G strided-batched GEMMs (one per query head of the
 *        group), written straight into the attention output with ldc = heads*hd.
 *   Only the keys a block can see are computed (Lb = last query position - lo(first) + 1), so
 *   causal prefill does about half the rectangle.
 *
 * Known limit: S and P go through HBM (6 bytes per score): a flash-attention kernel that keeps
 * them on chip would move ~10x fewer bytes. The score scratch is the dense path's weight
 * scratch (free between the qkv and o projections).
 */
#include <math.h>

#include "helpers.cuh"
#include "internal.cuh"
#include "ops.cuh"

extern "C" {
#include "awq_util.h"
}

#define TC_THREADS 256

/* dst (kv_heads, lcap, hd) = K (or V) rows of positions kbase .. kbase + nk - 1 of the slot. */
static __global__ void kernel_kv_gather(const half *__restrict__ src, cu_kv kv, int slot, int kbase, int nk, int lcap,
                                        half *__restrict__ dst) {
    const int hd = kv.head_dim, cpr = hd / 8; /* 16-byte chunks per row */
    const size_t total = (size_t)kv.kv_heads * nk * cpr;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
        const int c = (int)(idx % cpr);
        const size_t r = idx / cpr;
        const int j = (int)(r % nk), kh = (int)(r / nk);
        const int p = kbase + j;
        const int blk = kv.bt[(size_t)slot * kv.maxb + p / CU_KV_BS];
        const uint4 *s =
            reinterpret_cast<const uint4 *>(src + ((((size_t)kv.layer * kv.nblocks + blk) * kv.kv_heads + kh) * CU_KV_BS +
                                                   p % CU_KV_BS) * hd) + c;
        reinterpret_cast<uint4 *>(dst + ((size_t)kh * lcap + j) * hd)[c] = *s;
    }
}

/* qs (heads, nb, hd) fp16 = q rows [0, nb) (row stride heads*hd, fp32) * scale. */
static __global__ void kernel_q_pack(const float *__restrict__ q, int heads, int hd, int nb, float scale,
                                     half *__restrict__ qs) {
    const size_t total = (size_t)heads * nb * hd / 2;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
        const size_t e = idx * 2;
        const int d = (int)(e % hd);
        const size_t r = e / hd;
        const int i = (int)(r % nb), h = (int)(r / nb);
        const float2 v = *reinterpret_cast<const float2 *>(q + (size_t)i * heads * hd + (size_t)h * hd + d);
        reinterpret_cast<half2 *>(qs)[idx] = __floats2half2_rn(v.x * scale, v.y * scale);
    }
}

/* One block per row (h, i) of S (heads*nb rows, ld lds): P row = softmax over the keys visible
 * to query position p = p0 + i, zeros elsewhere. Key column j is position klo + j. */
static __global__ void __launch_bounds__(TC_THREADS)
kernel_tc_softmax(const float *__restrict__ S, int nb, int lb, int lds, int p0, int klo, int window,
                  half *__restrict__ P) {
    __shared__ float red[32];
    const size_t row = blockIdx.x;
    const int i = (int)(row % nb), p = p0 + i;
    const int lo = (window > 0 && p - window + 1 > 0) ? p - window + 1 : 0;
    const int jlo = max(lo - klo, 0), jhi = min(p - klo, lb - 1); /* visible: [jlo, jhi] */
    const float *s = S + row * lds;
    half *o = P + row * lds;
    constexpr float L2E = 1.4426950408889634f;
    float mx = -INFINITY;
    for (int j = jlo + threadIdx.x; j <= jhi; j += blockDim.x) mx = fmaxf(mx, s[j]);
    { /* block max: warps through shared memory (cu_block_sum's pattern) */
        float v = cu_warp_max(mx);
        __syncthreads();
        if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
        __syncthreads();
        v = (int)(threadIdx.x & 31) < (int)(blockDim.x >> 5) ? red[threadIdx.x & 31] : -INFINITY;
        mx = cu_warp_max(v);
    }
    float sum = 0.0f;
    for (int j = jlo + threadIdx.x; j <= jhi; j += blockDim.x) sum += exp2f((s[j] - mx) * L2E);
    sum = cu_block_sum(sum, red);
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int j = threadIdx.x; j < lb; j += blockDim.x)
        o[j] = __float2half(j >= jlo && j <= jhi ? exp2f((s[j] - mx) * L2E) * inv : 0.0f);
}

static unsigned grid_for(size_t n) {
    size_t b = (n + TC_THREADS - 1) / TC_THREADS;
    return (unsigned)(b > 65535 ? 65535 : b < 1 ? 1 : b);
}

size_t cua_tc_score_bytes(int heads, int rows, int keys) {
    return (size_t)heads * rows * (size_t)((keys + 7) / 8 * 8) * (sizeof(float) + sizeof(half));
}

int cua_attention_tc(char *err, cublasHandle_t cb, const float *q, int n, int heads, int slot, int pos0,
                     const cu_kv *kv, int window, const cua_tc *sc, int qb_cap, half *out, cudaStream_t st) {
    if (n <= 0) return 0;
    const int hd = kv->head_dim, G = heads / kv->kv_heads, qd = heads * hd;
    if (heads % kv->kv_heads || hd % 8)
        return awq_seterr(err, AWQ_EUNSUPPORTED, "attention: %d heads over %d KV heads, head_dim %d", heads,
                          kv->kv_heads, hd);
    const int last = pos0 + n - 1;
    const int kbase = (window > 0 && pos0 - window + 1 > 0) ? pos0 - window + 1 : 0;
    const int nk = last - kbase + 1;
    if (nk > sc->lcap || n > sc->qcap)
        return awq_seterr(err, AWQ_EINTERNAL, "attention: segment of %d queries over %d keys exceeds scratch (%d, %d)",
                          n, nk, sc->qcap, sc->lcap);
    /* queries per block: the score scratch holds (heads, qb, nk rounded to 8) fp32 + fp16 */
    size_t per_row = cua_tc_score_bytes(heads, 1, nk);
    int qb = (int)(sc->sp_bytes / per_row);
    if (qb > n) qb = n;
    if (qb_cap > 0 && qb > qb_cap) qb = qb_cap;
    if (qb >= 16) qb &= ~15;
    if (qb < 1)
        return awq_seterr(err, AWQ_EINTERNAL, "attention: score scratch of %zu bytes < %zu for one query row",
                          sc->sp_bytes, per_row);
    kernel_kv_gather<<<grid_for((size_t)kv->kv_heads * nk * hd / 8), TC_THREADS, 0, st>>>(kv->k, *kv, slot, kbase, nk,
                                                                                          sc->lcap, sc->k);
    CU_LAUNCHED(err);
    kernel_kv_gather<<<grid_for((size_t)kv->kv_heads * nk * hd / 8), TC_THREADS, 0, st>>>(kv->v, *kv, slot, kbase, nk,
                                                                                          sc->lcap, sc->v);
    CU_LAUNCHED(err);
    int rc = 0; /* cb is bound to st by the backend (no cublasSetStream: it drops the workspace) */
    const float one = 1.0f, zero = 0.0f;
    const float scale = 1.0f / sqrtf((float)hd);
    for (int i0 = 0; i0 < n; i0 += qb) {
        const int nb = n - i0 < qb ? n - i0 : qb;
        const int p0 = pos0 + i0, p1 = p0 + nb - 1;
        const int klo = (window > 0 && p0 - window + 1 > 0) ? p0 - window + 1 : 0;
        const int lb = p1 - klo + 1, lds = (lb + 7) / 8 * 8, koff = klo - kbase;
        float *S = (float *)sc->sp;
        half *P = (half *)(S + (size_t)heads * nb * lds);
        kernel_q_pack<<<grid_for((size_t)heads * nb * hd / 2), TC_THREADS, 0, st>>>(q + (size_t)i0 * qd, heads, hd, nb,
                                                                                   scale, sc->q);
        CU_LAUNCHED(err);
        /* S^T (lb, G*nb) per KV head, column-major = K (lb, hd) row-major op T . Q^T */
        rc = cuq_cublas_status(
            err, "attention QK^T cublasGemmStridedBatchedEx",
            cublasGemmStridedBatchedEx(cb, CUBLAS_OP_T, CUBLAS_OP_N, lb, G * nb, hd, &one, sc->k + (size_t)koff * hd,
                                       CUDA_R_16F, hd, (long long)sc->lcap * hd, sc->q, CUDA_R_16F, hd,
                                       (long long)G * nb * hd, &zero, S, CUDA_R_32F, lds, (long long)G * nb * lds,
                                       kv->kv_heads, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
        if (rc) return rc;
        kernel_tc_softmax<<<(unsigned)(heads * nb), TC_THREADS, 0, st>>>(S, nb, lb, lds, p0, klo, window, P);
        CU_LAUNCHED(err);
        for (int g = 0; g < G; g++) {
            /* out^T (hd, nb) of head kh*G + g, column-major with ld qd = V^T (hd, lb) . P^T (lb, nb) */
            rc = cuq_cublas_status(
                err, "attention PV cublasGemmStridedBatchedEx",
                cublasGemmStridedBatchedEx(cb, CUBLAS_OP_N, CUBLAS_OP_N, hd, nb, lb, &one, sc->v + (size_t)koff * hd,
                                           CUDA_R_16F, hd, (long long)sc->lcap * hd, P + (size_t)g * nb * lds,
                                           CUDA_R_16F, lds, (long long)G * nb * lds, &zero,
                                           out + (size_t)i0 * qd + (size_t)g * hd, CUDA_R_16F, qd, (long long)G * hd,
                                           kv->kv_heads, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
            if (rc) return rc;
        }
    }
    return 0;
}
