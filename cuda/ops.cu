/* ops.cu - the row/elementwise kernels of the forward pass: embedding gather, RMSNorm (fp32 in,
 * fp16 out: the next matmul's input), SwiGLU and argmax. All are memory-bound and tiny next to
 * the matmuls; each reads its input once and writes its output once. */
#include <float.h>
#include <stdlib.h>

#include "helpers.cuh"
#include "internal.cuh"
#include "ops.cuh"
extern "C" {
#include "cu.h"
}

#define OPS_THREADS 256 /* rows of 4096-14336 elements: 16-56 elements per thread */
static bool aligned(const void *p, size_t a) { return ((uintptr_t)p & (a - 1)) == 0; }

/* PDL where the GEMVs use it, unless the environment variable var is 0 (A/B runs). */
bool cu_pdl_unless(const char *var) {
    const char *e = getenv(var);
    return cuq_gemv_pdl() && !(e && *e == '0');
}

/* The row kernels of a decode step (vector RMSNorm, RoPE + KV write, flash-decoding attention
 * and its combine) as programmatic dependent launches: each waits for its predecessor at its
 * start, so what PDL saves is the launch latency between graph nodes (4 plain launches per
 * layer at 17-64 tokens). */
bool cu_row_pdl(void) { return cu_pdl_unless("AWQ_CUDA_ROW_PDL"); }

static __global__ void kernel_embed(const half *__restrict__ e, const int *__restrict__ tok, int H,
                                    float *__restrict__ x) {
    const half *src = e + (size_t)tok[blockIdx.x] * H;
    float *dst = x + (size_t)blockIdx.x * H;
    for (int i = threadIdx.x; i < H; i += blockDim.x) dst[i] = __half2float(src[i]);
}
/* H a multiple of 8, rows 16-byte aligned: every 16-byte load of the row issued at once (the
 * scalar loop was a ~9 us chain of 2-byte loads at batch-1 decode) */
static __global__ void kernel_embed_v(const half *__restrict__ e, const int *__restrict__ tok, int H,
                                      float *__restrict__ x) {
    const uint4 *src = reinterpret_cast<const uint4 *>(e + (size_t)tok[blockIdx.x] * H);
    float4 *dst = reinterpret_cast<float4 *>(x + (size_t)blockIdx.x * H);
    for (int i = threadIdx.x; i < H / 8; i += blockDim.x) {
        const uint4 v = src[i];
        const float2 a = __half22float2(*reinterpret_cast<const half2 *>(&v.x));
        const float2 b = __half22float2(*reinterpret_cast<const half2 *>(&v.y));
        const float2 c = __half22float2(*reinterpret_cast<const half2 *>(&v.z));
        const float2 d = __half22float2(*reinterpret_cast<const half2 *>(&v.w));
        dst[2 * i] = make_float4(a.x, a.y, b.x, b.y);
        dst[2 * i + 1] = make_float4(c.x, c.y, d.x, d.y);
    }
}

int cuo_embed(char *err, const half *embed, const int *tokens, int T, int H, float *x, cudaStream_t st) {
    if (T <= 0) return 0;
    if (H % 8 == 0 && aligned(embed, 16) && aligned(x, 16))
        kernel_embed_v<<<T, OPS_THREADS, 0, st>>>(embed, tokens, H, x);
    else
        kernel_embed<<<T, OPS_THREADS, 0, st>>>(embed, tokens, H, x);
    CU_LAUNCHED(err);
    return 0;
}

/* y = x * rsqrt(mean(x^2) + eps) * w, as engine/cpu_attn.c eng_cpu_rmsnorm.
 * Vector path: one block per row, each thread keeps its NV float4 of the row in registers
 * (loaded together with its weights, all before the reduction), so the row is read from DRAM
 * once and each thread has NV x 24 bytes in flight (shisa-7B, H = 4096: NV = 4, 96 bytes;
 * 2048 rows x 16 KB in, 8 KB out); out as 8-byte fp16 stores. It triggers the next kernel's
 * programmatic launch at its start: at decode that is the qkv or gate|up GEMV (AWQ_CUDA_RMS_PRE),
 * which streams its weights meanwhile and waits for this grid before reading out; elsewhere
 * the next kernel is a plain launch and the trigger does nothing. The scalar kernel (second
 * pass from L1/L2) stays for H not a multiple of 4, H > NORM_THREADS * 4 * NORM_NV_MAX (8192),
 * or unaligned pointers. */
#define NORM_THREADS 256
#define NORM_NV_MAX 8
template <int NV>
static __global__ void __launch_bounds__(NORM_THREADS)
kernel_rmsnorm_v(const float *__restrict__ x, const int *__restrict__ rows, int H, const half *__restrict__ w,
                 float eps, half *__restrict__ out) {
    __shared__ float sh[32];
    cu_pdl_trigger();
    cu_pdl_wait(); /* x is the previous kernel's output (cu_row_pdl) */
    const int r = rows ? rows[blockIdx.x] : blockIdx.x, n4 = H >> 2;
    const float4 *xr = reinterpret_cast<const float4 *>(x + (size_t)r * H);
    const uint2 *w4 = reinterpret_cast<const uint2 *>(w);
    float4 v[NV];
    uint2 wv[NV];
#pragma unroll
    for (int k = 0; k < NV; k++) {
        const int i = (int)threadIdx.x + k * NORM_THREADS;
        v[k] = i < n4 ? xr[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        wv[k] = i < n4 ? w4[i] : make_uint2(0, 0);
    }
    float ss = 0.0f;
#pragma unroll
    for (int k = 0; k < NV; k++) ss += v[k].x * v[k].x + v[k].y * v[k].y + v[k].z * v[k].z + v[k].w * v[k].w;
    ss = cu_block_sum(ss, sh);
    const float inv = rsqrtf(ss / (float)H + eps);
    uint2 *o = reinterpret_cast<uint2 *>(out + (size_t)blockIdx.x * H);
#pragma unroll
    for (int k = 0; k < NV; k++) {
        const int i = (int)threadIdx.x + k * NORM_THREADS;
        if (i < n4) {
            const float2 w01 = __half22float2(*reinterpret_cast<const half2 *>(&wv[k].x));
            const float2 w23 = __half22float2(*reinterpret_cast<const half2 *>(&wv[k].y));
            o[i] = make_uint2(cu_h2u(__floats2half2_rn(v[k].x * inv * w01.x, v[k].y * inv * w01.y)),
                              cu_h2u(__floats2half2_rn(v[k].z * inv * w23.x, v[k].w * inv * w23.y)));
        }
    }
}

static __global__ void kernel_rmsnorm(const float *__restrict__ x, const int *__restrict__ rows, int H,
                                      const half *__restrict__ w, float eps, half *__restrict__ out) {
    __shared__ float sh[32];
    cu_pdl_trigger(); /* as kernel_rmsnorm_v */
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
    const int nv = (H / 4 + NORM_THREADS - 1) / NORM_THREADS;
    if (H % 4 || nv > NORM_NV_MAX || !aligned(x, 16) || !aligned(w, 8) || !aligned(out, 8)) {
        kernel_rmsnorm<<<n, OPS_THREADS, 0, st>>>(x, rows, H, w, eps, out);
        CU_LAUNCHED(err);
        return 0;
    }
    void (*k)(const float *, const int *, int, const half *, float, half *) =
        nv <= 1 ? kernel_rmsnorm_v<1> : nv <= 2 ? kernel_rmsnorm_v<2> : nv <= 4 ? kernel_rmsnorm_v<4> : kernel_rmsnorm_v<8>;
    CU_RET(err, cu_launch_k(cu_row_pdl(), k, dim3((unsigned)n), dim3(NORM_THREADS), 0, st, x, rows, H, w, eps, out));
    return 0;
}

/* h = silu(g) * u. Vector path: grid (column blocks, T), each thread SWIGLU_V4 float4 of g and
 * of u (all four loads issued first: 64 bytes in flight per thread; the fp32 gate|up rows are
 * read once, so streaming loads keep them from evicting h, which the down projection reads
 * next) and one 8-byte fp16 store per float4. shisa-7B: I = 14336 is 7 blocks per row, 2048
 * rows = 235 MB in, 59 MB out. The scalar kernel stays for I not a multiple of 4 or unaligned
 * pointers. */
#define SWIGLU_THREADS 256
#define SWIGLU_V4 2
static __global__ void __launch_bounds__(SWIGLU_THREADS)
kernel_swiglu_v(const float *__restrict__ gu, int I, half *__restrict__ h) {
    cu_pdl_trigger(); /* at decode (AWQ_CUDA_SWIGLU_PRE) the down GEMV streams its weights meanwhile */
    const float4 *g = reinterpret_cast<const float4 *>(gu + (size_t)blockIdx.y * 2 * I);
    const float4 *u = reinterpret_cast<const float4 *>(gu + (size_t)blockIdx.y * 2 * I + I);
    uint2 *o = reinterpret_cast<uint2 *>(h + (size_t)blockIdx.y * I);
    const int n4 = I >> 2, i0 = (int)blockIdx.x * (SWIGLU_THREADS * SWIGLU_V4) + (int)threadIdx.x;
    float4 gv[SWIGLU_V4], uv[SWIGLU_V4];
#pragma unroll
    for (int k = 0; k < SWIGLU_V4; k++) {
        const int i = i0 + k * SWIGLU_THREADS;
        gv[k] = i < n4 ? __ldcs(g + i) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        uv[k] = i < n4 ? __ldcs(u + i) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    }
#pragma unroll
    for (int k = 0; k < SWIGLU_V4; k++) {
        const int i = i0 + k * SWIGLU_THREADS;
        if (i < n4) {
            const float4 a = gv[k], b = uv[k];
            o[i] = make_uint2(cu_h2u(__floats2half2_rn(a.x / (1.0f + __expf(-a.x)) * b.x,
                                                       a.y / (1.0f + __expf(-a.y)) * b.y)),
                              cu_h2u(__floats2half2_rn(a.z / (1.0f + __expf(-a.z)) * b.z,
                                                       a.w / (1.0f + __expf(-a.w)) * b.w)));
        }
    }
}

static __global__ void kernel_swiglu(const float *__restrict__ gu, int I, half *__restrict__ h) {
    cu_pdl_trigger(); /* as kernel_swiglu_v */
    const float *g = gu + (size_t)blockIdx.x * 2 * I, *u = g + I;
    half *o = h + (size_t)blockIdx.x * I;
    for (int i = threadIdx.x; i < I; i += blockDim.x) {
        float v = g[i];
        o[i] = __float2half(v / (1.0f + __expf(-v)) * u[i]);
    }
}

int cuo_swiglu(char *err, const float *gu, int T, int I, half *h, cudaStream_t st) {
    if (T <= 0) return 0;
    if (I % 4 || !aligned(gu, 16) || !aligned(h, 8) || T > 65535) {
        kernel_swiglu<<<T, OPS_THREADS * 2, 0, st>>>(gu, I, h);
    } else {
        const int per = SWIGLU_THREADS * SWIGLU_V4;
        kernel_swiglu_v<<<dim3((unsigned)((I / 4 + per - 1) / per), (unsigned)T), SWIGLU_THREADS, 0, st>>>(gu, I, h);
    }
    CU_LAUNCHED(err);
    return 0;
}

/* h = silu(g) * u from fp16 gate|up rows (the prefill's dense gate|up GEMM writes fp16: half
 * the bytes of the fp32 rows, for this kernel's read and the GEMM's write): grid (column
 * blocks, T), 8 values of g and of u per thread (two 16-byte loads, both issued first), one
 * 16-byte store; the same fp32 arithmetic as kernel_swiglu. I a multiple of 8 and 16-byte
 * aligned rows, else the scalar loop. */
static __global__ void __launch_bounds__(SWIGLU_THREADS)
kernel_swiglu_h8(const half *__restrict__ gu, int I, half *__restrict__ h) {
    const int i = (int)blockIdx.x * SWIGLU_THREADS + (int)threadIdx.x; /* 8-value unit */
    if (i >= I / 8) return;
    const uint4 *g = reinterpret_cast<const uint4 *>(gu + (size_t)blockIdx.y * 2 * I);
    const uint4 *u = reinterpret_cast<const uint4 *>(gu + (size_t)blockIdx.y * 2 * I + I);
    const uint4 gv = __ldcs(g + i), uv = __ldcs(u + i);
    const half2 *g2 = reinterpret_cast<const half2 *>(&gv), *u2 = reinterpret_cast<const half2 *>(&uv);
    uint4 o;
    uint32_t *o2 = reinterpret_cast<uint32_t *>(&o);
#pragma unroll
    for (int k = 0; k < 4; k++) {
        const float2 a = __half22float2(g2[k]), b = __half22float2(u2[k]);
        o2[k] = cu_h2u(__floats2half2_rn(a.x / (1.0f + __expf(-a.x)) * b.x, a.y / (1.0f + __expf(-a.y)) * b.y));
    }
    reinterpret_cast<uint4 *>(h + (size_t)blockIdx.y * I)[i] = o;
}

static __global__ void kernel_swiglu_h(const half *__restrict__ gu, int I, half *__restrict__ h) {
    const half *g = gu + (size_t)blockIdx.x * 2 * I, *u = g + I;
    half *o = h + (size_t)blockIdx.x * I;
    for (int i = threadIdx.x; i < I; i += blockDim.x) {
        const float v = __half2float(g[i]);
        o[i] = __float2half(v / (1.0f + __expf(-v)) * __half2float(u[i]));
    }
}

int cuo_swiglu_h(char *err, const half *gu, int T, int I, half *h, cudaStream_t st) {
    if (T <= 0) return 0;
    if (I % 8 || !aligned(gu, 16) || !aligned(h, 16) || T > 65535) {
        kernel_swiglu_h<<<T, OPS_THREADS * 2, 0, st>>>(gu, I, h);
    } else {
        kernel_swiglu_h8<<<dim3((unsigned)((I / 8 + SWIGLU_THREADS - 1) / SWIGLU_THREADS), (unsigned)T), SWIGLU_THREADS,
                           0, st>>>(gu, I, h);
    }
    CU_LAUNCHED(err);
    return 0;
}

/* Argmax of each logits row, the lowest index winning ties (as the CPU sampler), in two
 * kernels: ARGMAX_NB blocks per row scan chunks of the row and write (value, index) partials,
 * then one warp per row reduces them. Why: one 1024-thread block per row was ~15 us at batch 1
 * with shisa's 120k vocabulary (one SM pulling 480 KB); spread over 32 SMs the scan is a few
 * microseconds. Rows of NaN only give index 0. */
#define ARGMAX_THREADS 256
#define ARGMAX_MIN 256 /* logits per block at least */

/* (v, i) := the better of (v, i) and (ov, oi): larger value, then lower index */
__device__ __forceinline__ void am_take(float &v, int &i, float ov, int oi) {
    if (ov > v || (ov == v && oi < i)) {
        v = ov;
        i = oi;
    }
}
__device__ __forceinline__ void am_warp(float &v, int &i) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) am_take(v, i, __shfl_xor_sync(0xffffffffu, v, o), __shfl_xor_sync(0xffffffffu, i, o));
}

/* grid (nb, n): block c of row r scans [c0, c1), chunks a multiple of 4 long (float4 loads stay
 * aligned when V is a multiple of 4), and writes part[r * nb + c] = (value bits, index) */
static __global__ void __launch_bounds__(ARGMAX_THREADS)
kernel_argmax_part(const float *__restrict__ logits, int V, int chunk, int2 *__restrict__ part) {
    __shared__ float sv[ARGMAX_THREADS / 32];
    __shared__ int si[ARGMAX_THREADS / 32];
    const float *l = logits + (size_t)blockIdx.y * V;
    const int c0 = blockIdx.x * chunk, c1 = min(V, c0 + chunk);
    float bv = -FLT_MAX;
    int bi = 0x7fffffff;
    if ((V & 3) == 0) { /* elements of a float4 in index order: the lowest index wins ties */
        const float4 *l4 = reinterpret_cast<const float4 *>(l);
#pragma unroll 4
        for (int i = (c0 >> 2) + threadIdx.x; i < (c1 >> 2); i += ARGMAX_THREADS) {
            const float4 v = l4[i];
            am_take(bv, bi, v.x, 4 * i);
            am_take(bv, bi, v.y, 4 * i + 1);
            am_take(bv, bi, v.z, 4 * i + 2);
            am_take(bv, bi, v.w, 4 * i + 3);
        }
    } else {
        for (int i = c0 + threadIdx.x; i < c1; i += ARGMAX_THREADS) am_take(bv, bi, l[i], i);
    }
    am_warp(bv, bi);
    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    if (lane == 0) {
        sv[w] = bv;
        si[w] = bi;
    }
    __syncthreads();
    if (w == 0) {
        bv = lane < ARGMAX_THREADS / 32 ? sv[lane] : -FLT_MAX;
        bi = lane < ARGMAX_THREADS / 32 ? si[lane] : 0x7fffffff;
        am_warp(bv, bi);
        if (lane == 0) part[(size_t)blockIdx.y * gridDim.x + blockIdx.x] = make_int2(__float_as_int(bv), bi);
    }
}

/* one warp per row: the nb partials (nb <= 32) */
static __global__ void kernel_argmax_fin(const int2 *__restrict__ part, int nb, int *__restrict__ out) {
    const int lane = threadIdx.x;
    float bv = -FLT_MAX;
    int bi = 0x7fffffff;
    if (lane < nb) {
        const int2 p = part[(size_t)blockIdx.x * nb + lane];
        bv = __int_as_float(p.x);
        bi = p.y;
    }
    am_warp(bv, bi);
    if (lane == 0) out[blockIdx.x] = bi == 0x7fffffff ? 0 : bi;
}

size_t cuo_argmax_part_bytes(int n) { return (size_t)n * CUO_ARGMAX_NB * sizeof(int2); }

int cuo_argmax(char *err, const float *logits, int n, int V, int *out, void *part, cudaStream_t st) {
    if (n <= 0) return 0;
    if (n > 65535 || V <= 0)
        return awq_seterr(err, AWQ_EINVAL, "cuo_argmax: %d rows of %d logits", n, V);
    int nb = (V + ARGMAX_MIN - 1) / ARGMAX_MIN;
    if (nb > CUO_ARGMAX_NB) nb = CUO_ARGMAX_NB;
    const int chunk = ((V + nb - 1) / nb + 3) & ~3;
    nb = (V + chunk - 1) / chunk;
    kernel_argmax_part<<<dim3((unsigned)nb, (unsigned)n), ARGMAX_THREADS, 0, st>>>(logits, V, chunk, (int2 *)part);
    CU_LAUNCHED(err);
    kernel_argmax_fin<<<n, 32, 0, st>>>((const int2 *)part, nb, out);
    CU_LAUNCHED(err);
    return 0;
}

/* ------------------------------------------------------------------ probe (tests) ---- */
extern "C" int cu_argmax_probe(char *err, int dev, const float *logits, int n, int V, int *out) {
    if (n <= 0 || n > 65535 || V <= 0)
        return awq_seterr(err, AWQ_EINVAL, "cu_argmax_probe: %d rows of %d logits", n, V);
    CU_RET(err, cudaSetDevice(dev));
    float *dl = NULL;
    int *dout = NULL;
    void *part = NULL;
    int rc = 0;
    CU_GOTO(err, rc, done, cudaMalloc(&dl, (size_t)n * V * sizeof(float)));
    CU_GOTO(err, rc, done, cudaMalloc(&dout, (size_t)n * sizeof(int)));
    CU_GOTO(err, rc, done, cudaMalloc(&part, cuo_argmax_part_bytes(n)));
    CU_GOTO(err, rc, done, cudaMemcpy(dl, logits, (size_t)n * V * sizeof(float), cudaMemcpyHostToDevice));
    if ((rc = cuo_argmax(err, dl, n, V, dout, part, 0))) goto done;
    CU_GOTO(err, rc, done, cudaMemcpy(out, dout, (size_t)n * sizeof(int), cudaMemcpyDeviceToHost));
done:
    cudaFree(dl);
    cudaFree(dout);
    cudaFree(part);
    return rc;
}
