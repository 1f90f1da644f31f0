/* ops.cuh - launchers of the small elementwise/row kernels (ops.cu) and of attention (attn.cu)
 * used by the forward pass. Each returns 0 or AWQ_EDEVICE with the launch error. */
#ifndef CU_OPS_CUH
#define CU_OPS_CUH

#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

/* x (T, H) fp32 = embed[tokens[t]] (fp16 (V, H)). */
int cuo_embed(char *err, const half *embed, const int *tokens, int T, int H, float *x, cudaStream_t st);
/* out (rows, H) fp16 = rmsnorm(x[rows[i]] (or row i when rows is NULL)) * w. */
int cuo_rmsnorm(char *err, const float *x, const int *rows, int n, int H, const half *w, float eps,
                half *out, cudaStream_t st);
/* h (T, I) fp16 = silu(gu[:, :I]) * gu[:, I:], gu (T, 2I) fp32. */
int cuo_swiglu(char *err, const float *gu, int T, int I, half *h, cudaStream_t st);
/* The same from fp16 gate|up rows (T, 2 I) halves: the dense path's gate|up output. */
int cuo_swiglu_h(char *err, const half *gu, int T, int I, half *h, cudaStream_t st);
/* Programmatic dependent launch where the GEMVs use it and env var is not 0 (ops.cu) */
bool cu_pdl_unless(const char *var);
/* The decode step's row kernels as programmatic dependent launches (AWQ_CUDA_ROW_PDL) */
bool cu_row_pdl(void);
/* out[i] = argmax of logits row i (V floats); ties go to the lowest id (as the CPU). part:
 * device scratch of cuo_argmax_part_bytes(n) (the per-block partials, overwritten). */
#define CUO_ARGMAX_NB 32 /* blocks per row at most */
size_t cuo_argmax_part_bytes(int n);
int cuo_argmax(char *err, const float *logits, int n, int V, int *out, void *part, cudaStream_t st);

/* The paged KV cache one layer sees. K and V: (layers, nblocks, kv_heads, CU_KV_BS, head_dim)
 * fp16; a sequence's position p lives in block bt[slot * maxb + p / CU_KV_BS], row p % BS. */
#define CU_KV_BS 16
typedef struct cu_kv {
    half *k, *v;
    const int *bt; /* (max_seqs, maxb) device */
    int maxb, nblocks, kv_heads, head_dim, layer;
} cu_kv;

/* Rotate q and k of each token (rotate_half, table rope (max_ctx, hd/2) {cos, sin}), write q
 * (T, heads*hd) fp32 and k, v (fp16) into the cache at (tslot[t], tpos[t]). qkv: (T, qd + 2 kvd),
 * left all zeros once read, and rows [0, T) of clear (row length clear_len, a positive multiple
 * of 4; NULL: none) are zeroed too (by the same launch where hd is a multiple of 8): the
 * split-K matmuls that write them next add into zeros without a memset. */
int cua_rope_kv(char *err, float *qkv, int T, int heads, const float2 *rope, const int *tslot,
                const int *tpos, const cu_kv *kv, float *q, float *clear, int clear_len, cudaStream_t st);
/* Causal attention of each token over its sequence's cache, positions [lo, tpos[t]] with lo from
 * the sliding window (0 = none); splits > 1 cuts each range into that many pieces (flash-
 * decoding) combined through part (T, heads, splits, hd + 2) floats. out (T, heads*hd) fp16. */
int cua_attention(char *err, const float *q, int T, int heads, const int *tslot, const int *tpos,
                  const cu_kv *kv, int window, int splits, float *part, half *out, cudaStream_t st);
/* Most splits per token of cua_attn_decode (its merge holds (m, l) of every split per lane pair). */
#define CUA_DEC_SMAX 64
/* The fused decode attention (attn_dec.cu), for chunks where every token is the only token of
 * its sequence: cua_rope_kv + cua_attention in one kernel. Per token t: q of every head and k
 * roped from qkv (T, qd + 2 kvd) fp32, k and v written (fp16) into the cache at (tslot[t],
 * tpos[t]), attention over positions [lo, tpos[t]] (lo from the sliding window, 0 = none) with
 * the own key taken from qkv, the rest from the cache; out (T, heads*hd) fp16. splits (1..
 * CUA_DEC_SMAX) cuts each range into pieces merged in-kernel through part (needs T * splits <=
 * part_rows rows of heads * (hd + 2) floats) and cnt ((T, kv_heads) ints, zero on entry, left
 * zero). Leaves the qkv rows all zeros, and rows [0, T) of clear (clear_len floats each, a
 * multiple of 4; NULL: none) too: the split-K matmuls that write them next add into zeros. */
int cua_attn_decode(char *err, float *qkv, int T, int heads, const float2 *rope, const int *tslot, const int *tpos,
                    const cu_kv *kv, int window, int splits, float *part, int part_rows, int *cnt, half *out,
                    float *clear, int clear_len, cudaStream_t st);
/* Scratch of the tensor-core prefill attention (attn_tc.cu); the backend allocates it once.
 * k, v: (kv_heads, lcap, hd) fp16, a segment's keys gathered from the paged cache; q:
 * (heads, qcap, hd) fp16; sp: sp_bytes for the scores (heads, qb, keys) fp32 then the
 * probabilities fp16 (shared with the dense path's weight scratch). */
typedef struct cua_tc {
    half *k, *v, *q;
    void *sp;
    size_t sp_bytes;
    int lcap, qcap;
} cua_tc;
/* Score scratch bytes for `rows` query rows of `heads` heads over `keys` keys. */
size_t cua_tc_score_bytes(int heads, int rows, int keys);
/* Causal (and sliding-window) attention of n consecutive queries of one sequence, positions
 * pos0 .. pos0 + n - 1 in slot (host int), over that slot's cache (which already holds their
 * K/V: cua_rope_kv ran). q (n, heads*hd) fp32 roped, out (n, heads*hd) fp16. qb_cap > 0 caps
 * the queries per block (tests); the scratch bounds it anyway. Launches on st; cb must be
 * bound to st already. */
int cua_attention_tc(char *err, cublasHandle_t cb, const float *q, int n, int heads, int slot, int pos0,
                     const cu_kv *kv, int window, const cua_tc *sc, int qb_cap, half *out, cudaStream_t st);
/* The same contract as cua_attention_tc as one flash-attention kernel (attn_fa.cu): S and P
 * stay on chip, K/V are read straight from the paged cache, no scratch, no cuBLAS. Built for
 * head_dim 64 and 128 only (cua_fa_head_dim_ok); any other is AWQ_EUNSUPPORTED and the caller
 * takes cua_attention_tc. Launches on st. */
int cua_attention_fa(char *err, const float *q, int n, int heads, int slot, int pos0, const cu_kv *kv, int window,
                     half *out, cudaStream_t st);
bool cua_fa_head_dim_ok(int hd);
/* Head sizes the attention kernels are built for. */
bool cua_head_dim_ok(int hd);

#endif
