/* cpu.h - the CPU backend's extra surface: instruction-set selection, the worker pool, and the
 * kernels' entry points with an explicit implementation argument so tests can compare the
 * scalar reference against the AVX2 and AVX-512 paths. The backend table itself
 * (eng_cpu_backend) is declared in backend.h.
 *
 * Numerics (all paths): fp32 activations, fp32 accumulation. An AWQ linear computes, per output
 * column n and group g, acc = sum_{k in g} x[k] * q[k][n] (k ascending, one fused multiply-add
 * per k in the SIMD paths) and xs = sum_{k in g} x[k]; then y[n] += s[g][n] * (acc - z[g][n] * xs).
 * (AVX-512 sums y per k-chunk of 512 rows and adds the chunks in order; see cpu_kern.h.)
 * Within one implementation the GEMV (decode) and the blocked GEMM (prefill) perform exactly the
 * same operations per token, so a token's output never depends on how many tokens share the
 * call (batch invariance) nor on the thread count.
 *
 * Thread safety: kernels are reentrant; a pool is driven by one thread at a time.
 */
#ifndef ENG_CPU_H
#define ENG_CPU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "awq_err.h"
#include "backend.h"
#include "model.h"

typedef enum eng_cpu_impl {
    ENG_CPU_AUTO = 0, /* the best one this CPU supports */
    ENG_CPU_SCALAR,   /* portable C: the reference */
    ENG_CPU_AVX2,     /* AVX2 + FMA + F16C */
    ENG_CPU_AVX512,   /* AVX-512 F/BW/VL/DQ */
} eng_cpu_impl;

const char *eng_cpu_impl_name(eng_cpu_impl impl);
/* True when impl is compiled in and this CPU runs it (AUTO and SCALAR always are). */
bool eng_cpu_impl_ok(eng_cpu_impl impl);
/* AUTO resolved: AVX-512, else AVX2, else scalar. The environment variable AWQ_CPU_IMPL
 * (scalar|avx2|avx512) caps the choice, for benchmarks and bug hunts. */
eng_cpu_impl eng_cpu_impl_best(void);

/* ---- worker pool: persistent threads, one barrier per parallel-for ---- */
typedef struct eng_cpu_pool eng_cpu_pool;
/* A task body: called once per thread with its index tid in [0, n). */
typedef void (*eng_cpu_task)(void *ctx, int tid, int n);

/* threads <= 0 means plat_ncpu(). The calling thread is worker 0, so threads-1 are started.
 * Returns NULL (err filled) when a thread cannot be started. */
eng_cpu_pool *eng_cpu_pool_create(char *err, int threads);
void eng_cpu_pool_free(eng_cpu_pool *p);
int eng_cpu_pool_size(const eng_cpu_pool *p);
/* Run fn on every worker and return when all have finished. p may be NULL: runs fn(ctx, 0, 1). */
void eng_cpu_pool_run(eng_cpu_pool *p, eng_cpu_task fn, void *ctx);

/* ---- kernels ---- */
/* Largest token count for which eng_cpu_qlinear streams the weights (GEMV); above it the
 * blocked GEMM converts each weight block once and reuses it across the tokens. */
#define ENG_CPU_GEMV_MAX 4

/* y (m, l->out) = x (m, l->in) . W for an AWQ linear; GEMV for m <= ENG_CPU_GEMV_MAX, else
 * GEMM. Borrows everything; pool may be NULL. AWQ_EINVAL for a bad shape, AWQ_EUNSUPPORTED
 * for an impl this CPU lacks. */
AWQ_NODISCARD int eng_cpu_qlinear(char *err, eng_cpu_impl impl, eng_cpu_pool *pool, const eng_qlinear *l,
                                  const float *x, int m, float *y) AWQ_NONNULL(4, 5, 7);
/* The two paths forced, for tests: both must give bitwise identical results per impl. */
AWQ_NODISCARD int eng_cpu_gemv(char *err, eng_cpu_impl impl, eng_cpu_pool *pool, const eng_qlinear *l,
                               const float *x, int m, float *y) AWQ_NONNULL(4, 5, 7);
AWQ_NODISCARD int eng_cpu_gemm(char *err, eng_cpu_impl impl, eng_cpu_pool *pool, const eng_qlinear *l,
                               const float *x, int m, float *y) AWQ_NONNULL(4, 5, 7);
/* Dense fp16 weights, one row per output (the lm_head): y (m, n) = x (m, k) . W^T, W (n, k). */
AWQ_NODISCARD int eng_cpu_f16_matmul(char *err, eng_cpu_impl impl, eng_cpu_pool *pool, const uint16_t *w,
                                     int n, int k, const float *x, int m, float *y) AWQ_NONNULL(4, 7, 9);
/* Check a linear's fields (shape, group, pointers) before use; err names the problem. */
AWQ_NODISCARD int eng_cpu_qlinear_check(char *err, const eng_qlinear *l) AWQ_NONNULL(2);

/* RMSNorm as Hugging Face: out = (x * 1/sqrt(mean(x^2) + eps)) * w, fp32 math, w fp16 (n).
 * out may alias x. */
void eng_cpu_rmsnorm(float *out, const float *x, const uint16_t *w, int n, float eps);
/* RoPE, rotate_half convention, in place on n_heads heads of head_dim floats of one token at
 * position pos: pairs (i, i + hd/2), angle pos * theta^(-2i/hd), cos/sin computed in fp32 the
 * way Hugging Face does (inv_freq in fp32, then pos * inv_freq in fp32). */
void eng_cpu_rope(float *v, int n_heads, int head_dim, int pos, float theta);
/* Attention of one query head against keys/values at positions [lo, hi] of a cache laid out
 * (ctx, kv_dim) with this head's kv slice at kv_off: out (head_dim) = softmax(q.k/sqrt(hd)) v.
 * scratch holds hi - lo + 1 floats. */
void eng_cpu_attn_head(const float *q, const float *kcache, const float *vcache, int kv_dim, int kv_off,
                       int head_dim, int lo, int hi, float *scratch, float *out);
/* The first key position a query at pos may see: pos - window + 1 with a sliding window (HF
 * Mistral: keys j with pos - window < j <= pos), else 0. */
int eng_cpu_attn_lo(int pos, int sliding_window);

/* ---- memory read bandwidth probe (bench/membw, awq-run bench) ---- */
/* Reads a bytes-long buffer (filled once) with all of pool's threads, each a contiguous part,
 * reps times; returns the best rate in GB/s (1e9 bytes/s) via *gbs. AWQ_ENOMEM if the buffer
 * cannot be had. */
AWQ_NODISCARD int eng_cpu_membw(char *err, eng_cpu_pool *pool, size_t bytes, int reps, double *gbs) AWQ_NONNULL(5);

#endif
