/* ops.cu - the row/elementwise kernels of the forward pass: embedding gather, RMSNorm (fp32 in,
 * fp16 out: the next matmul's input), SwiGLU and argmax. All are memory-bound and tiny next to
 * the matmuls; each reads its input once and writes its output once. */
#include <float.h>

#include "helpers.cuh"
#include "ops.cuh"

#define OPS_THREADS 256 /* rows of 4096-14336 elements: 16-56 elements per thread */

static __global__ void kernel_embed(const half *__restrict__ e, const int *__restrict__ tok, int H,
                                    float *__restrict__ x) {
    const half *src = e + (size_t)tok[blockIdx.x] * H;
    float *dst = x + (size_t)blockIdx.x * H;
    for (int i = threadIdx.x; i < H; i += blockDim.x) dst[i] = __half2float(src[i]);
}

int cuo_embed(char *err, const half *embed, const int *tokens, int T, int H, float *x, cudaStream_t st) {
    if (T <= 0) return 0;
    kernel_embed<<<T, OPS_THREADS, 0, st>>>(embed, tokens, H, x);
    CU_LAUNCHED(err);
    return 0;
}

/* y = x * rsqrt(mean(x^2) + eps) * w, as engine/cpu_attn.c eng_cpu_rmsnorm. */
static __global__ void kernel_rmsnorm(const float *__restrict__ x, const int *__restrict__ rows, int H,
                                      const half *__restrict__ w, float eps, half *__restrict__ out) {
    __shared__ float sh[32];
    int r = rows ? rows[blockIdx.x] : blockIdx.x;
    const float *xr = x + (size_t)r * H;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < H; i += blockDim.x) ss += xr[i] * xr[i];
    ss = cu_block_sum(ss, sh);
    float inv = rsqrtf(ss / (float)H + eps);
    half *o = out + (size_t)blockIdx.x * H;
    for (int i = threadIdx.x; i < H; i += blockDim.x) o[i] = __float2half(xr[i] * inv * __half2float(w[i]));
}

int cuo_rmsnorm(char *err, const float *x, const int *rows, int n, int H, const half *w, float eps,
                half *out, cudaStream_t st) {
    if (n <= 0) return 0;
    kernel_rmsnorm<<<n, OPS_THREADS, 0, st>>>(x, rows, H, w, eps, out);
    CU_LAUNCHED(err);
    return 0;
}

static __global__ void kernel_swiglu(const float *__restrict__ gu, int I, half *__restrict__ h) {
    const float *g = gu + (size_t)blockIdx.x * 2 * I, *u = g + I;
    half *o = h + (size_t)blockIdx.x * I;
    for (int i = threadIdx.x; i < I; i += blockDim.x) {
        float v = g[i];
        o[i] = __float2half(v / (1.0f + __expf(-v)) * u[i]);
    }
}

int cuo_swiglu(char *err, const float *gu, int T, int I, half *h, cudaStream_t st) {
    if (T <= 0) return 0;
    kernel_swiglu<<<T, OPS_THREADS * 2, 0, st>>>(gu, I, h);
    CU_LAUNCHED(err);
    return 0;
}

#define ARGMAX_THREADS 1024 /* one block per row of 32k-120k logits */
static __global__ void kernel_argmax(const float *__restrict__ logits, int V, int *__restrict__ out) {
    __shared__ float sv[32];
    __shared__ int si[32];
    const float *l = logits + (size_t)blockIdx.x * V;
    float bv = -FLT_MAX;
    int bi = 0x7fffffff;
    if ((V & 3) == 0) {
        /* 16-byte loads, several in flight: a scalar strided scan of a 120k vocabulary was a
         * ~30 us chain of dependent loads per decode step; elements of a float4 are taken in
         * index order, so the first (lowest) index still wins ties within a thread */
        const float4 *l4 = reinterpret_cast<const float4 *>(l);
#pragma unroll 4
        for (int i = threadIdx.x; i < (V >> 2); i += blockDim.x) {
            const float4 v = l4[i];
            if (v.x > bv) { bv = v.x; bi = 4 * i; }
            if (v.y > bv) { bv = v.y; bi = 4 * i + 1; }
            if (v.z > bv) { bv = v.z; bi = 4 * i + 2; }
            if (v.w > bv) { bv = v.w; bi = 4 * i + 3; }
        }
    } else {
        for (int i = threadIdx.x; i < V; i += blockDim.x) {
            float v = l[i];
            if (v > bv) { /* strided scan: the first (lowest) index wins ties within a thread */
                bv = v;
                bi = i;
            }
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ov > bv || (ov == bv && oi < bi)) {
            bv = ov;
            bi = oi;
        }
    }
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    if (lane == 0) {
        sv[w] = bv;
        si[w] = bi;
    }
    __syncthreads();
    if (w == 0) {
        int nw = blockDim.x >> 5;
        bv = lane < nw ? sv[lane] : -FLT_MAX;
        bi = lane < nw ? si[lane] : 0x7fffffff;
        for (int o = 16; o > 0; o >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (ov > bv || (ov == bv && oi < bi)) {
                bv = ov;
                bi = oi;
            }
        }
        if (lane == 0) out[blockIdx.x] = bi == 0x7fffffff ? 0 : bi;
    }
}

int cuo_argmax(char *err, const float *logits, int n, int V, int *out, cudaStream_t st) {
    if (n <= 0) return 0;
    kernel_argmax<<<n, ARGMAX_THREADS, 0, st>>>(logits, V, out);
    CU_LAUNCHED(err);
    return 0;
}
