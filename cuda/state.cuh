/* state.cuh - the CUDA backend's state, shared by backend.cu (create, slots, upload) and
 * fwd.cu (the forward pass). */
#ifndef CU_STATE_CUH
#define CU_STATE_CUH

#include <cublas_v2.h>

#include "internal.cuh"
#include "ops.cuh"
#include "pick.cuh"

extern "C" {
#include "backend.h"
#include "cu.h"
}

/* Tokens per forward chunk: bounds the activation buffers (about 210 KB per token for 7B);
 * 2048 lets a 2k-token prefill run as one pass. */
#define CU_MAX_TOK 2048
/* Prefill attention on tensor cores (attn_tc.cu) for runs of at least this many queries of one
 * sequence (AWQ_CUDA_ATT_MIN overrides): below, the flash-decoding kernel's few launches win. */
#define CU_ATT_MIN_DEFAULT 256
/* The same on the flash-attention kernel (attn_fa.cu), where it runs. */
#define CU_ATT_MIN_FA_DEFAULT 64
/* Decode steps of at most this many tokens take the fused decode attention (attn_dec.cu):
 * on the H200 it won at 1-16 streams and lost 4-5 % at 32 and 64 (bench/RESULTS.md). */
#define CU_ATTN_FUSED_MAX 16
/* Decode steps (the GEMV path) of at least this many tokens run the RMSNorms as a separate
 * kernel into fp16 before the qkv and gate|up GEMVs instead of fused into every GEMV block's
 * x load (AWQ_CUDA_RMS_PRE overrides; 0 = always fused): see norm_in in fwd.cu. */
#define CU_RMS_PRE_DEFAULT 8
/* The same for the down projection's SwiGLU (AWQ_CUDA_SWIGLU_PRE=N: steps of >= N tokens run
 * cuo_swiglu into hmid first; default 0 = always fused). Fused, each GEMV block computes
 * silu(g) * u of its k slab for all T rows from the fp32 gate|up rows: T x 4 KB of L2 reads
 * per block and slab (S = 4), ~5 blocks per slab on shisa-7B's down (132 blocks, 28 slabs):
 * ~256 KB per block, ~35 MB per launch at T = 64, some 4-5 us of one SM's L2 bandwidth. The
 * pre-pass costs a launch (its weight stream overlapped by PDL) plus T x 2I x 4 bytes in and
 * T x I x 2 out (9 MB at T = 64, ~3 us): break-even near 64 rows by this estimate, a loss
 * below, so off until an A/B run (bench/gpu.sh ab) says otherwise. */
#define CU_SWIGLU_PRE_DEFAULT 0
/* Decode graphs kept (one per batch size and attention split count). */
#define CU_GRAPHS 16

typedef struct cu_layer {
    half *attn_norm, *ffn_norm; /* (hidden) */
    cu_qw qkv;                  /* q|k|v fused: (hidden) -> (qd + 2 kvd) */
    cu_qw o;                    /* (qd) -> (hidden) */
    cu_qw gu;                   /* gate|up fused: (hidden) -> (2 intermediate) */
    cu_qw down;                 /* (intermediate) -> (hidden) */
} cu_layer;

typedef struct cu_slot {
    bool used;
    int nblk;    /* blocks held */
    int *blocks; /* (maxb) host mirror of this slot's row of the block table */
} cu_slot;

/* A run of consecutive positions of one sequence inside a chunk (tokens t0 .. t0 + n - 1):
 * long ones take the tensor-core prefill attention. */
typedef struct cu_seg {
    int t0, n, slot, pos0;
} cu_seg;

typedef struct cu_graph {
    int T, splits; /* key; T == 0: empty */
    cudaGraphExec_t exec;
    unsigned long long used; /* LRU stamp */
} cu_graph;

typedef struct cu_state {
    const eng_model *m;
    int dev, sms;
    cudaStream_t st;
    cublasHandle_t cb;
    int H, I, V, L, heads, kv_heads, hd, qd, kvd, window;
    float eps;
    int max_ctx, max_seqs;
    /* weights */
    cu_layer *layers;      /* (L) */
    half *embed, *norm;    /* (V, H), (H) */
    half *lm_head;         /* (V, H); == embed when tied to the same tensor */
    float2 *rope;          /* (max_ctx, hd/2) {cos, sin} */
    size_t weight_bytes;
    /* KV pool */
    half *kpool, *vpool;   /* (L, nblocks, kv_heads, CU_KV_BS, hd) */
    int nblocks, maxb;
    int *free_blk, nfree;  /* host free list */
    int *d_bt;             /* (max_seqs, maxb) device block table */
    cu_slot *slots;        /* (max_seqs) */
    size_t kv_bytes;
    /* activations for CU_MAX_TOK tokens */
    float *x;              /* (MT, H) residual stream */
    half *xn;              /* (MT, H) normed: matmul input */
    float *qkv;            /* (MT, qd + 2 kvd) */
    float *q;              /* (MT, qd) roped */
    half *att;             /* (MT, qd) */
    float *gu;             /* (MT, 2 I) */
    half *hmid;            /* (MT, I) */
    float *part;           /* attention split partials */
    int part_rows;         /* (tokens x splits) the partials hold */
    int *attn_cnt;         /* (MT, kv_heads) arrivals per (token, KV head) of cua_attn_decode; 0 between launches */
    bool attn_fused;       /* one-token-per-sequence chunks take cua_attn_decode (AWQ_CUDA_ATTN_FUSED=0: off) */
    int attn_splits;       /* AWQ_CUDA_ATTN_SPLITS: cap on its splits per token (tests, A/B); 0 = none */
    int attn_fused_max;    /* steps of up to this many tokens take it (AWQ_CUDA_ATTN_FUSED_MAX, CU_ATTN_FUSED_MAX) */
    int attn_waves;        /* the other decode attention splits tokens until its grid fills the SMs this many
                            * times (AWQ_CUDA_ATTN_WAVES, default 2) */
    int rms_pre;           /* decode steps of >= rms_pre tokens norm into xn before the GEMVs; 0 = never */
    int swiglu_pre;        /* ... and of >= swiglu_pre tokens run cuo_swiglu into hmid before down; 0 = never */
    half *lastn;           /* (max_seqs, H) */
    float *logits;         /* (max_seqs, V) */
    int *d_am;             /* (max_seqs) */
    void *d_am_part;       /* cuo_argmax's partials (cuo_argmax_part_bytes(max_seqs)) */
    int *d_meta, *h_meta;  /* tokens | tslot | tpos | lastrows, (4, MT) ints; h_meta pinned */
    int *h_am;             /* (max_seqs) pinned */
    cu_graph graphs[CU_GRAPHS];
    unsigned long long graph_clock;
    bool use_graphs;
    void *cb_ws;           /* cuBLAS workspace: fixed so graph capture never allocates */
    /* steps of >= dense_min tokens: dequant each linear into `dense`, then cuBLAS */
    half *dense;           /* (max over linears of out * kp) fp16; also tc.sp */
    size_t dense_len;      /* bytes */
    cua_tc tc;             /* prefill attention scratch (k, v, q; sp = dense) */
    size_t scratch_bytes;  /* dense + tc.k/v/q: counted in memory()'s weights */
    int dense_min;         /* cuq_dense_min() at create */
    int att_min;           /* segments of >= att_min queries use cua_attention_fa (or _tc) */
    int att_qb;            /* AWQ_CUDA_ATT_QB: cap on queries per block (tests); 0 = none */
    bool att_fa;           /* flash-attention kernel for those segments (AWQ_CUDA_ATTN_FA=0: cuBLAS) */
    cu_seg *segs;          /* (CU_MAX_TOK) the running chunk's segments; nseg 0: none long */
    int nseg;
    cu_pick pk;            /* sampling reduced on the GPU (pick.cu) */
} cu_state;

/* The forward pass (fwd.cu). */
int cu_fwd(char *err, cu_state *s, const eng_batch *b);
/* Drop every captured graph (slot layout or sizes changed). */
void cu_graphs_clear(cu_state *s);

#endif
