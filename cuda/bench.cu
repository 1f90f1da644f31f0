/* bench.cu - timing probes for bench/gpu_bench: device copy bandwidth, cuBLAS fp16 GEMM and
 * the AWQ matmul kernels on random data. All times come from device events around batches of
 * calls (median over batches); inputs rotate over enough copies that L2 (50-60 MB on Hopper)
 * cannot serve a repeat, so GB/s means HBM.
 */
#include <algorithm>
#include <vector>

#include <cublas_v2.h>

#include "helpers.cuh"
#include "internal.cuh"

extern "C" {
#include "cu.h"
}

#define BENCH_ROT_BYTES ((size_t)256 << 20) /* > 4x L2: every rotation misses */

/* Random but valid fill: a hash of the index (never zeros, which can time faster). */
static __global__ void kernel_fill_u32(uint32_t *p, size_t n, uint32_t seed) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    uint32_t h = (uint32_t)i * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    p[i] = h;
}
static __global__ void kernel_fill_h(half *p, size_t n, uint32_t seed, float scale, float bias) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    uint32_t h = (uint32_t)i * 2654435761u ^ seed;
    h ^= h >> 15;
    h *= 2246822519u;
    h ^= h >> 13;
    p[i] = __float2half(bias + scale * ((float)(h & 0xffff) / 65535.0f - 0.5f));
}
/* zeros/scales in the cu_qw layout: 8 words {1024 + z, -(64 + z)}, then 4 words of scale pairs */
static __global__ void kernel_fill_sz(uint32_t *p, size_t n, uint32_t seed) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    uint32_t h = (uint32_t)i * 2654435761u ^ seed;
    h ^= h >> 15;
    float z = (float)((h >> 8) & 15);
    half2 v = (i % CU_SZ_WORDS) < 8 ? __halves2half2(__float2half(1024.0f + z), __float2half(-(64.0f + z)))
                                    : __halves2half2(__float2half(0.002f + 0.01f * (float)(h & 255) / 255.0f),
                                                     __float2half(0.002f + 0.01f * (float)((h >> 16) & 255) / 255.0f));
    p[i] = *reinterpret_cast<uint32_t *>(&v);
}

static unsigned nblk(size_t n) { return (unsigned)((n + 255) / 256); }

static double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
}

int cu_bench_copy(char *err, int dev, size_t bytes, int reps, double *gbps) {
    CU_RET(err, cudaSetDevice(dev));
    void *a = NULL, *b = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    int rc = 0;
    std::vector<double> ms;
    CU_GOTO(err, rc, done, cudaMalloc(&a, bytes));
    CU_GOTO(err, rc, done, cudaMalloc(&b, bytes));
    kernel_fill_u32<<<nblk(bytes / 4), 256>>>((uint32_t *)a, bytes / 4, 1);
    CU_GOTO(err, rc, done, cudaEventCreate(&e0));
    CU_GOTO(err, rc, done, cudaEventCreate(&e1));
    CU_GOTO(err, rc, done, cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice)); /* warm-up */
    for (int r = 0; r < reps; r++) {
        float t = 0;
        CU_GOTO(err, rc, done, cudaEventRecord(e0));
        CU_GOTO(err, rc, done, cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice));
        CU_GOTO(err, rc, done, cudaEventRecord(e1));
        CU_GOTO(err, rc, done, cudaEventSynchronize(e1));
        CU_GOTO(err, rc, done, cudaEventElapsedTime(&t, e0, e1));
        ms.push_back(t);
    }
    *gbps = 2.0 * (double)bytes / (median(ms) * 1e-3) / 1e9;
done:
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaFree(a);
    cudaFree(b);
    return rc;
}

int cu_bench_qmm(char *err, int dev, int in, int out, int m, int kernel, int reps, double *us,
                 double *bytes) {
    CU_RET(err, cudaSetDevice(dev));
    if (in <= 0 || out <= 0 || in % 128 || out % 8 || m <= 0)
        return awq_seterr(err, AWQ_EINVAL, "cu_bench_qmm: shape %d x %d (in %% 128, out %% 8), m %d",
                          in, out, m);
    cu_qw q0;
    memset(&q0, 0, sizeof q0);
    q0.in = in;
    q0.out = out;
    q0.group = 128;
    q0.kp = in;
    q0.gp = in / 128;
    size_t wb = (size_t)out / 8 * (in / 128) * 32 * sizeof(uint4);
    size_t sb = (size_t)out / 8 * q0.gp * CU_SZ_WORDS * sizeof(uint32_t);
    int nrot = (int)std::max<size_t>(2, BENCH_ROT_BYTES / (wb + sb) + 1);
    std::vector<cu_qw> qs(nrot, q0);
    half *x = NULL;
    float *y = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    cudaStream_t st = NULL;
    cudaGraph_t graph = NULL;
    cudaGraphExec_t exec = NULL;
    std::vector<double> ms;
    int rc = 0;
    /* CU_QMM_DENSE: dequant + cuBLAS per call, through one scratch matrix as in the forward */
    cublasHandle_t cb = NULL;
    half *dense = NULL;
    void *ws = NULL;
    auto call = [&](int i) -> int {
        if (kernel == CU_QMM_DENSE)
            return cuq_dense(err, cb, &qs[i], x, in, m, y, out, true, dense, cuq_dense_bytes(&qs[i]), st);
        return cuq_matmul(err, &qs[i], x, in, m, y, out, true, kernel, st);
    };
    CU_GOTO(err, rc, done, cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    if (kernel == CU_QMM_DENSE) {
        if ((rc = cuq_cublas_status(err, "cublasCreate", cublasCreate(&cb)))) {
            cb = NULL;
            goto done;
        }
        if ((rc = cuq_cublas_status(err, "cublasSetStream", cublasSetStream(cb, st)))) goto done;
        /* a fixed workspace, set after the stream (which resets it): graph capture must not allocate */
        CU_GOTO(err, rc, done, cudaMalloc(&ws, (size_t)32 << 20));
        if ((rc = cuq_cublas_status(err, "cublasSetWorkspace", cublasSetWorkspace(cb, ws, (size_t)32 << 20))))
            goto done;
        CU_GOTO(err, rc, done, cudaMalloc(&dense, cuq_dense_bytes(&q0)));
    }
    for (int i = 0; i < nrot; i++) {
        CU_GOTO(err, rc, done, cudaMalloc(&qs[i].w, wb));
        CU_GOTO(err, rc, done, cudaMalloc(&qs[i].sz, sb));
        kernel_fill_u32<<<nblk(wb / 4), 256>>>((uint32_t *)qs[i].w, wb / 4, 17u * i + 3);
        kernel_fill_sz<<<nblk(sb / 4), 256>>>((uint32_t *)qs[i].sz, sb / 4, 31u * i + 5);
    }
    CU_GOTO(err, rc, done, cudaMalloc(&x, (size_t)m * in * 2));
    CU_GOTO(err, rc, done, cudaMalloc(&y, (size_t)m * out * 4));
    kernel_fill_h<<<nblk((size_t)m * in), 256>>>(x, (size_t)m * in, 7, 2.0f, 0.0f);
    CU_GOTO(err, rc, done, cudaMemset(y, 0, (size_t)m * out * 4));
    CU_GOTO(err, rc, done, cudaEventCreate(&e0));
    CU_GOTO(err, rc, done, cudaEventCreate(&e1));
    CU_GOTO(err, rc, done, cudaDeviceSynchronize());
    for (int i = 0; i < nrot; i++) { /* warm-up: module load, smem attribute */
        rc = call(i);
        if (rc) goto done;
    }
    CU_GOTO(err, rc, done, cudaStreamSynchronize(st));
    /* the rotation as one CUDA graph, as the decode step runs: the host's launch cost (a few
     * us per call) would otherwise be what a 3-8 us kernel measures */
    CU_GOTO(err, rc, done, cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    for (int i = 0; i < nrot; i++) {
        rc = call(i);
        if (rc) {
            cudaStreamEndCapture(st, &graph);
            goto done;
        }
    }
    CU_GOTO(err, rc, done, cudaStreamEndCapture(st, &graph));
    CU_GOTO(err, rc, done, cudaGraphInstantiate(&exec, graph, 0));
    CU_GOTO(err, rc, done, cudaGraphLaunch(exec, st)); /* warm-up of the graph itself */
    CU_GOTO(err, rc, done, cudaStreamSynchronize(st));
    for (int r = 0; r < reps; r++) {
        float t = 0;
        CU_GOTO(err, rc, done, cudaEventRecord(e0, st));
        CU_GOTO(err, rc, done, cudaGraphLaunch(exec, st));
        CU_GOTO(err, rc, done, cudaEventRecord(e1, st));
        CU_GOTO(err, rc, done, cudaEventSynchronize(e1));
        CU_GOTO(err, rc, done, cudaEventElapsedTime(&t, e0, e1));
        ms.push_back((double)t / nrot);
    }
    *us = median(ms) * 1e3;
    *bytes = (double)(wb + sb) + (double)m * in * 2 + (double)m * out * 8;
done:
    if (exec) cudaGraphExecDestroy(exec);
    if (graph) cudaGraphDestroy(graph);
    if (st) cudaStreamDestroy(st);
    for (int i = 0; i < nrot; i++) cuq_release(&qs[i]);
    if (cb) cublasDestroy(cb);
    cudaFree(ws);
    cudaFree(dense);
    cudaFree(x);
    cudaFree(y);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return rc;
}

int cu_bench_cublas(char *err, int dev, int m, int n, int k, int reps, double *us) {
    CU_RET(err, cudaSetDevice(dev));
    if (m <= 0 || n <= 0 || k <= 0) return awq_seterr(err, AWQ_EINVAL, "cu_bench_cublas: bad shape");
    size_t wb = (size_t)n * k * 2;
    int nrot = (int)std::max<size_t>(2, BENCH_ROT_BYTES / wb + 1);
    std::vector<half *> ws(nrot, (half *)NULL);
    half *x = NULL, *y = NULL;
    cublasHandle_t h = NULL;
    cudaEvent_t e0 = NULL, e1 = NULL;
    std::vector<double> ms;
    int rc = 0;
    const float alpha = 1.0f, beta = 0.0f;
    cublasStatus_t cs;
    for (int i = 0; i < nrot; i++) {
        CU_GOTO(err, rc, done, cudaMalloc(&ws[i], wb));
        kernel_fill_h<<<nblk((size_t)n * k), 256>>>(ws[i], (size_t)n * k, 11u * i + 1, 0.1f, 0.0f);
    }
    CU_GOTO(err, rc, done, cudaMalloc(&x, (size_t)m * k * 2));
    CU_GOTO(err, rc, done, cudaMalloc(&y, (size_t)m * n * 2));
    kernel_fill_h<<<nblk((size_t)m * k), 256>>>(x, (size_t)m * k, 9, 2.0f, 0.0f);
    if ((cs = cublasCreate(&h)) != CUBLAS_STATUS_SUCCESS) {
        rc = awq_seterr(err, AWQ_EDEVICE, "cublasCreate: %s", cublasGetStatusName(cs));
        goto done;
    }
    CU_GOTO(err, rc, done, cudaEventCreate(&e0));
    CU_GOTO(err, rc, done, cudaEventCreate(&e1));
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up (heuristics, workspace) */
        float t = 0;
        CU_GOTO(err, rc, done, cudaEventRecord(e0));
        for (int i = 0; i < nrot; i++) {
            /* column-major: Y^T (n, m) = W^T (n, k) . X^T (k, m), W stored (n, k) row-major */
            cs = cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, n, m, k, &alpha, ws[i], CUDA_R_16F, k, x,
                              CUDA_R_16F, k, &beta, y, CUDA_R_16F, n, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT);
            if (cs != CUBLAS_STATUS_SUCCESS) {
                rc = awq_seterr(err, AWQ_EDEVICE, "cublasGemmEx: %s", cublasGetStatusName(cs));
                goto done;
            }
        }
        CU_GOTO(err, rc, done, cudaEventRecord(e1));
        CU_GOTO(err, rc, done, cudaEventSynchronize(e1));
        CU_GOTO(err, rc, done, cudaEventElapsedTime(&t, e0, e1));
        if (r >= 0) ms.push_back((double)t / nrot);
    }
    *us = median(ms) * 1e3;
done:
    if (h) cublasDestroy(h);
    for (int i = 0; i < nrot; i++) cudaFree(ws[i]);
    cudaFree(x);
    cudaFree(y);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    return rc;
}
