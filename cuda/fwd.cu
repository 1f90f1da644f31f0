/* fwd.cu - the forward pass of the CUDA backend.
 *
 * A batch runs in chunks of at most CU_MAX_TOK tokens in sequence order (like the CPU
 * backend), each chunk through every layer:
 *   x = embed[tok]; per layer: xn = rmsnorm(x); qkv = xn.Wqkv; rope(q, k) + KV write;
 *   att = attention(q, cache); x += att.Wo; xn = rmsnorm(x); gu = xn.Wgate|up;
 *   h = silu(g) * u; x += h.Wdown
 * then the last token of each sequence is normed into lastn and, when asked, the fp16 lm_head
 * (cuBLAS) gives logits and kernel_argmax the greedy id, so only n_seq ints cross to the host
 * unless the caller wants the full logits.
 *
 * Chunks of at least s->dense_min tokens (CU_DENSE_MIN_DEFAULT: prefill, large batches)
 * dequantize each AWQ linear into fp16 scratch and run cuBLAS (dense.cu), with separate norm
 * and SwiGLU kernels and the residual add as beta = 1; smaller chunks (decode, small batches)
 * use the gemv/skinny kernels with the RMSNorms and the SwiGLU fused into their input loads
 * (no memsets: see cua_rope_kv; from AWQ_CUDA_RMS_PRE / AWQ_CUDA_SWIGLU_PRE tokens the row
 * kernels run first into xn / hmid instead: norm_in). The tiled mma.sync kernel remains for chunks
 * above CU_QMM_SKINNY_MAX when the dense path is switched off (AWQ_CUDA_DENSE_MIN).
 * Attention: runs of at least s->att_min consecutive positions of one sequence (prompts) go
 * through the flash-attention kernel (attn_fa.cu; the cuBLAS path of attn_tc.cu for other head
 * sizes or with AWQ_CUDA_ATTN_FA=0), everything else through the flash-decoding kernel. A chunk
 * where every token is the only one of its sequence (decode steps, graphs or not) instead runs
 * RoPE, the KV write, attention and the split merge as one kernel per layer (attn_dec.cu;
 * AWQ_CUDA_ATTN_FUSED=0: the separate kernels).
 *
 * Decode steps (every sequence feeds one token) replay a CUDA graph captured once per (batch
 * size, attention splits): tokens, slots and positions live in device memory (d_meta, d_bt)
 * that the graph reads, so one capture serves every step of that shape.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.cuh"
#include "state.cuh"

extern "C" {
#include "plat.h"
}

#define META_TOK 0
#define META_SLOT 1
#define META_POS 2
#define META_LAST 3

static int meta_off(int which) { return which * CU_MAX_TOK; }

/* ------------------------------------------------------------------ one chunk ---- */
static int pick_splits(const cu_state *s, int T, int maxlen);
static int pick_splits_dec(const cu_state *s, int T);

/* One AWQ linear of a large step: dequant + cuBLAS (dense) or the tiled mma.sync kernel. */
static int lin(char *err, cu_state *s, bool dense, const cu_qw *w, const half *x, int ldx, int T, float *y, int ldy,
               bool acc) {
    if (dense) return cuq_dense(err, s->cb, w, x, ldx, T, y, ldy, acc, s->dense, s->dense_len, s->st);
    return cuq_matmul(err, w, x, ldx, T, y, ldy, acc, CU_QMM_TILED, s->st);
}

/* gate|up of a large step into hmid = silu(g) * u: the dense path writes g|u as fp16 (half
 * the bytes of the fp32 rows, written by cuBLAS and read back by SwiGLU: ~2 ms of a
 * 2048-token prefill on the H100; the values are rounded to fp16 once more before SwiGLU,
 * as fp16 inference does), the tiled kernel fp32. s->gu holds either ((MT, 2 I) floats). */
static int gate_up(char *err, cu_state *s, bool dense, const cu_layer *d, int T) {
    int rc;
    if (dense) {
        half *guh = reinterpret_cast<half *>(s->gu);
        if ((rc = cuq_dense_ex(err, s->cb, &d->gu, s->xn, s->H, T, guh, true, 2 * s->I, false, s->dense,
                               s->dense_len, s->st)))
            return rc;
        return cuo_swiglu_h(err, guh, T, s->I, s->hmid, s->st);
    }
    if ((rc = lin(err, s, dense, &d->gu, s->xn, s->H, T, s->gu, 2 * s->I, false))) return rc;
    return cuo_swiglu(err, s->gu, T, s->I, s->hmid, s->st);
}

/* Attention of the chunk: segments of at least att_min queries through the flash-attention
 * kernel (head_dim 64/128; other head sizes, or AWQ_CUDA_ATTN_FA=0: tensor cores through cuBLAS),
 * the rest (and every token when s->nseg == 0) through the flash-decoding kernel. */
static int run_attention(char *err, cu_state *s, int T, int splits, const cu_kv *kv) {
    const int *tslot = s->d_meta + meta_off(META_SLOT), *tpos = s->d_meta + meta_off(META_POS);
    if (s->nseg == 0)
        return cua_attention(err, s->q, T, s->heads, tslot, tpos, kv, s->window, splits, s->part, s->att, s->st);
    for (int i = 0; i < s->nseg; i++) {
        const cu_seg *g = &s->segs[i];
        const size_t off = (size_t)g->t0 * s->qd;
        int rc;
        if (g->n >= s->att_min && s->att_fa && cua_fa_head_dim_ok(s->hd)) {
            rc = cua_attention_fa(err, s->q + off, g->n, s->heads, g->slot, g->pos0, kv, s->window, s->att + off,
                                  s->st);
        } else if (g->n >= s->att_min) {
            rc = cua_attention_tc(err, s->cb, s->q + off, g->n, s->heads, g->slot, g->pos0, kv, s->window, &s->tc,
                                  s->att_qb, s->att + off, s->st);
        } else {
            const int last = g->pos0 + g->n - 1;
            const int lo = (s->window > 0 && last - s->window + 1 > 0) ? last - s->window + 1 : 0;
            rc = cua_attention(err, s->q + off, g->n, s->heads, tslot + g->t0, tpos + g->t0, kv, s->window,
                               pick_splits(s, g->n, last - lo + 1), s->part, s->att + off, s->st);
        }
        if (rc) return rc;
    }
    return 0;
}

/* RoPE + KV write + attention of the chunk, leaving the qkv rows zero (and with clear_gu the
 * gate|up rows: the decode matmuls add into both). fused: every token is the only token of its
 * sequence in the chunk (no token reads a key another token of the chunk writes), so one
 * cua_attn_decode launch does it all; else cua_rope_kv then run_attention. */
static int attn_step(char *err, cu_state *s, int T, int splits, bool fused, const cu_kv *kv, bool clear_gu) {
    const int *tslot = s->d_meta + meta_off(META_SLOT), *tpos = s->d_meta + meta_off(META_POS);
    float *clear = clear_gu ? s->gu : NULL;
    if (fused)
        return cua_attn_decode(err, s->qkv, T, s->heads, s->rope, tslot, tpos, kv, s->window, splits, s->part,
                               s->part_rows, s->attn_cnt, s->att, clear, 2 * s->I, s->st);
    int rc = cua_rope_kv(err, s->qkv, T, s->heads, s->rope, tslot, tpos, kv, s->q, clear, clear_gu ? 2 * s->I : 0,
                         s->st);
    return rc ? rc : run_attention(err, s, T, splits, kv);
}

/* The fused decode attention for a decode step of T tokens: on, and T small enough
 * (CU_ATTN_FUSED_MAX: measured faster to 16 streams, slower at 32 and 64). */
static bool use_fused(const cu_state *s, int T) { return s->attn_fused && T <= s->attn_fused_max; }

/* The input of a decode GEMV that reads the residual through an RMSNorm (qkv: attn_norm,
 * gate|up: ffn_norm). T >= s->rms_pre (AWQ_CUDA_RMS_PRE, default CU_RMS_PRE_DEFAULT; 0 =
 * never): one cuo_rmsnorm of the T rows into s->xn (fp16, unused on this path otherwise), then
 * fp16 input; every block of the persistent streamed GEMV would otherwise recompute 1/rms of
 * all T rows over all of K (cuq_stage_x: at T = 64 about 1 MB of L2 reads per block, ~130 MB
 * per launch, twice per layer). The norm kernel triggers the GEMV's programmatic launch at
 * its start, so the weight stream still overlaps it. Below the threshold the RMSNorm stays
 * fused into the GEMV's x load. Fills *in. */
static int norm_in(char *err, cu_state *s, int T, const half *norm, cuq_in *in) {
    memset(in, 0, sizeof *in);
    if (s->rms_pre > 0 && T >= s->rms_pre) {
        in->mode = CUQ_IN_F16;
        in->x = s->xn;
        in->ldx = s->H;
        return cuo_rmsnorm(err, s->x, NULL, T, s->H, norm, s->eps, s->xn, s->st);
    }
    in->mode = CUQ_IN_RMSNORM;
    in->xf = s->x;
    in->ldxf = s->H;
    in->norm = norm;
    in->eps = s->eps;
    return 0;
}

/* One chunk of T tokens through every layer. fused: attn_step's (splits from pick_splits_dec). */
static int run_chunk(char *err, cu_state *s, int T, int nlast, int seq_first, int splits, bool fused) {
    const int *tok = s->d_meta + meta_off(META_TOK), *lastrows = s->d_meta + meta_off(META_LAST);
    const int qkvd = s->qd + 2 * s->kvd;
    /* many tokens: weights dequantized to fp16 per linear and cuBLAS (docs/cuda.md) */
    const bool dense = T >= s->dense_min;
    int rc;
    if ((rc = cuo_embed(err, s->embed, tok, T, s->H, s->x, s->st))) return rc;
    for (int li = 0; li < s->L; li++) {
        const cu_layer *d = &s->layers[li];
        cu_kv kv = {s->kpool, s->vpool, s->d_bt, s->maxb, s->nblocks, s->kv_heads, s->hd, li};
        if (T <= CU_QMM_SKINNY_MAX && !dense) {
            /* decode: the norms and SwiGLU are fused into the matmuls' input loads (from
             * rms_pre / swiglu_pre tokens a row kernel first: norm_in), and the split-K
             * outputs start from the zeros attn_step leaves (no memsets) */
            /* the streamed GEMV (sm_90) takes up to 64 rows per pass (its batched build); else
             * the registers GEMV to 8 rows and the skinny kernel above */
            const int dk = T <= 8 || cuq_gemv_stream_ok() ? CU_QMM_GEMV : CU_QMM_SKINNY;
            cuq_in in;
            if ((rc = norm_in(err, s, T, d->attn_norm, &in)) ||
                (rc = cuq_matmul_ex(err, &d->qkv, &in, T, s->qkv, qkvd, CUQ_OUT_STORE_ZEROED, dk,
                                    s->st)) ||
                (rc = attn_step(err, s, T, splits, fused, &kv, true)) ||
                (rc = cuq_matmul(err, &d->o, s->att, s->qd, T, s->x, s->H, true, dk, s->st)) ||
                (rc = norm_in(err, s, T, d->ffn_norm, &in)) ||
                (rc = cuq_matmul_ex(err, &d->gu, &in, T, s->gu, 2 * s->I, CUQ_OUT_STORE_ZEROED, dk,
                                    s->st)))
                return rc;
            memset(&in, 0, sizeof in);
            if (s->swiglu_pre > 0 && T >= s->swiglu_pre) {
                /* silu(g) * u once into hmid (fp16) rather than in every GEMV block of a k
                 * slab (CU_SWIGLU_PRE_DEFAULT); kernel_swiglu_v triggers the PDL launch */
                if ((rc = cuo_swiglu(err, s->gu, T, s->I, s->hmid, s->st))) return rc;
                in.mode = CUQ_IN_F16;
                in.x = s->hmid;
                in.ldx = s->I;
            } else {
                in.mode = CUQ_IN_SWIGLU;
                in.xf = s->gu;
                in.ldxf = 2 * s->I;
                in.up_off = s->I;
            }
            if ((rc = cuq_matmul_ex(err, &d->down, &in, T, s->x, s->H, CUQ_OUT_ADD, dk, s->st)))
                return rc;
            continue;
        }
        /* the qkv and gate|up outputs are overwritten (beta 0 / store), and attn_step leaves
         * the qkv rows a decode step can use (below CU_QMM_SKINNY_MAX) zero again, as the
         * decode path expects of them */
        if ((rc = cuo_rmsnorm(err, s->x, NULL, T, s->H, d->attn_norm, s->eps, s->xn, s->st)) ||
            (rc = lin(err, s, dense, &d->qkv, s->xn, s->H, T, s->qkv, qkvd, false)) ||
            (rc = attn_step(err, s, T, splits, fused, &kv, false)) ||
            (rc = lin(err, s, dense, &d->o, s->att, s->qd, T, s->x, s->H, true)) ||
            (rc = cuo_rmsnorm(err, s->x, NULL, T, s->H, d->ffn_norm, s->eps, s->xn, s->st)) ||
            (rc = gate_up(err, s, dense, d, T)) ||
            (rc = lin(err, s, dense, &d->down, s->hmid, s->I, T, s->x, s->H, true)))
            return rc;
    }
    if (nlast > 0)
        return cuo_rmsnorm(err, s->x, lastrows, nlast, s->H, s->norm, s->eps, s->lastn + (size_t)seq_first * s->H,
                           s->st);
    return 0;
}

/* logits (n, V) fp32 = lastn (n, H) fp16 . lm_head^T, then argmax. */
static int run_head(char *err, cu_state *s, int n) {
    const float one = 1.0f, zero = 0.0f;
    /* column-major view: logits^T (V, n) = lm_head^T... lm_head is (V, H) row-major = (H, V) col-major */
    cublasStatus_t cs = cublasGemmEx(s->cb, CUBLAS_OP_T, CUBLAS_OP_N, s->V, n, s->H, &one, s->lm_head, CUDA_R_16F,
                                     s->H, s->lastn, CUDA_R_16F, s->H, &zero, s->logits, CUDA_R_32F, s->V,
                                     CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (cs != CUBLAS_STATUS_SUCCESS)
        return awq_seterr(err, AWQ_EDEVICE, "cuda: lm_head cublasGemmEx: %s", cublasGetStatusName(cs));
    return cuo_argmax(err, s->logits, n, s->V, s->d_am, s->d_am_part, s->st);
}

/* Attention splits for a chunk: enough (token, KV head, split) blocks to cover every SM attn_waves times,
 * no split shorter than 128 positions, and within the partials buffer. */
static int pick_splits(const cu_state *s, int T, int maxlen) {
    const int want = s->attn_waves * s->sms;
    if (T * s->kv_heads >= want) return 1;
    int sp = (want + T * s->kv_heads - 1) / (T * s->kv_heads);
    int bylen = (maxlen + 127) / 128;
    if (sp > bylen) sp = bylen;
    if (sp < 1) sp = 1;
    while (sp > 1 && T * sp > s->part_rows) sp--;
    return sp;
}

/* Splits of cua_attn_decode's grid: every SM twice, at most CUA_DEC_SMAX and s->attn_splits
 * (AWQ_CUDA_ATTN_SPLITS), within the partials buffer. Not the context: each token uses only as
 * many as its keys fill with >= 32 each (the rest of its blocks exit at once), so one graph
 * per batch size serves every context length. */
static int pick_splits_dec(const cu_state *s, int T) {
    int sp = (2 * s->sms + T * s->kv_heads - 1) / (T * s->kv_heads);
    if (sp > CUA_DEC_SMAX) sp = CUA_DEC_SMAX;
    if (s->attn_splits > 0 && sp > s->attn_splits) sp = s->attn_splits;
    if (sp < 1) sp = 1;
    while (sp > 1 && T * sp > s->part_rows) sp--;
    return sp;
}

/* ------------------------------------------------------------------ graphs ---- */
void cu_graphs_clear(cu_state *s) {
    for (int i = 0; i < CU_GRAPHS; i++)
        if (s->graphs[i].T) {
            cudaGraphExecDestroy(s->graphs[i].exec);
            s->graphs[i].T = 0;
        }
}

/* The decode step for (T, splits) as a graph, captured on first use. */
static int decode_graph(char *err, cu_state *s, int T, int splits, cudaGraphExec_t *out) {
    cu_graph *slot = &s->graphs[0];
    for (int i = 0; i < CU_GRAPHS; i++) {
        cu_graph *g = &s->graphs[i];
        if (g->T == T && g->splits == splits) {
            g->used = ++s->graph_clock;
            *out = g->exec;
            return 0;
        }
        if (!g->T || (slot->T && g->used < slot->used)) slot = g;
    }
    if (slot->T) {
        cudaGraphExecDestroy(slot->exec);
        slot->T = 0;
    }
    cudaGraph_t graph = NULL;
    s->nseg = 0; /* one token per sequence: the flash-decoding kernel */
    const uint64_t t0 = plat_now_ns();
    CU_RET(err, cudaStreamBeginCapture(s->st, cudaStreamCaptureModeRelaxed));
    int rc = run_chunk(err, s, T, T, 0, splits, use_fused(s, T));
    if (!rc) rc = run_head(err, s, T);
    cudaError_t e = cudaStreamEndCapture(s->st, &graph);
    if (rc) {
        if (graph) cudaGraphDestroy(graph);
        return rc;
    }
    if (e != cudaSuccess) return awq_seterr(err, AWQ_EDEVICE, "cuda: graph capture: %s", cudaGetErrorName(e));
    const uint64_t t1 = plat_now_ns();
    e = cudaGraphInstantiate(&slot->exec, graph, 0);
    cudaGraphDestroy(graph);
    if (e != cudaSuccess) return awq_seterr(err, AWQ_EDEVICE, "cuda: graph instantiate: %s", cudaGetErrorName(e));
    if (getenv("AWQ_CUDA_GRAPH_TIMES")) /* what a new batch size costs (bench/RESULTS.md) */
        fprintf(stderr, "cuda graph T=%d splits=%d: capture %.2f ms, instantiate %.2f ms\n", T, splits,
                (double)(t1 - t0) * 1e-6, (double)(plat_now_ns() - t1) * 1e-6);
    slot->T = T;
    slot->splits = splits;
    slot->used = ++s->graph_clock;
    *out = slot->exec;
    return 0;
}

/* ------------------------------------------------------------------ forward ---- */
/* Cut the chunk's T tokens (h_meta) into runs of consecutive positions of one slot; nseg stays
 * 0 when none is long enough for the tensor-core attention (one launch for all tokens). */
static void find_segments(cu_state *s, int T) {
    const int *h_slot = s->h_meta + meta_off(META_SLOT), *h_pos = s->h_meta + meta_off(META_POS);
    int n = 0;
    bool any = false;
    for (int t = 0; t < T; t++) {
        if (t == 0 || h_slot[t] != h_slot[t - 1] || h_pos[t] != h_pos[t - 1] + 1) {
            s->segs[n].t0 = t;
            s->segs[n].n = 0;
            s->segs[n].slot = h_slot[t];
            s->segs[n].pos0 = h_pos[t];
            n++;
        }
        if (++s->segs[n - 1].n >= s->att_min) any = true;
    }
    s->nseg = any ? n : 0;
}


static bool slot_used(const void *st, int slot) { return ((const cu_state *)st)->slots[slot].used; }

static int validate(char *err, const cu_state *s, const eng_batch *b) {
    return eng_batch_check(err, b, s->max_seqs, s->max_ctx, s->V, slot_used, s);
}

/* Give every sequence the KV blocks its new positions need and upload the new table entries. */
static int grow_blocks(char *err, cu_state *s, const eng_batch *b) {
    for (int i = 0; i < b->n_seq; i++) {
        cu_slot *sl = &s->slots[b->slot[i]];
        int need = (b->pos[i] + b->n_tokens[i] + CU_KV_BS - 1) / CU_KV_BS, had = sl->nblk;
        if (need <= had) continue;
        if (need - had > s->nfree)
            return awq_seterr(err, AWQ_EBUSY, "cuda: KV cache full: entry %d needs %d more blocks of %d positions, "
                              "%d of %d free", i, need - had, CU_KV_BS, s->nfree, s->nblocks);
        while (sl->nblk < need) sl->blocks[sl->nblk++] = s->free_blk[--s->nfree];
        CU_RET(err, cudaMemcpyAsync(s->d_bt + (size_t)b->slot[i] * s->maxb + had, sl->blocks + had,
                                    (size_t)(need - had) * sizeof(int), cudaMemcpyHostToDevice, s->st));
    }
    return 0;
}

int cu_fwd(char *err, cu_state *s, const eng_batch *b) {
    int rc = validate(err, s, b);
    if (rc) return rc;
    if ((rc = grow_blocks(err, s, b))) return rc;
    const bool head = b->logits || b->argmax || b->pick;
    s->pk.rows_left = 0;
    bool decode = true;
    for (int i = 0; i < b->n_seq; i++)
        if (b->n_tokens[i] != 1) decode = false;
    int *h_tok = s->h_meta + meta_off(META_TOK), *h_slot = s->h_meta + meta_off(META_SLOT);
    int *h_pos = s->h_meta + meta_off(META_POS), *h_last = s->h_meta + meta_off(META_LAST);

    if (decode && head && s->use_graphs && b->n_seq <= CU_MAX_TOK) {
        const int T = b->n_seq;
        int maxlen = 1;
        for (int i = 0; i < T; i++) {
            h_tok[i] = b->tokens[i];
            h_slot[i] = b->slot[i];
            h_pos[i] = b->pos[i];
            h_last[i] = i;
            int lo = (s->window > 0 && b->pos[i] - s->window + 1 > 0) ? b->pos[i] - s->window + 1 : 0;
            if (b->pos[i] - lo + 1 > maxlen) maxlen = b->pos[i] - lo + 1;
        }
        cudaGraphExec_t g = NULL;
        const int splits = use_fused(s, T) ? pick_splits_dec(s, T) : pick_splits(s, T, maxlen);
        if ((rc = decode_graph(err, s, T, splits, &g))) return rc;
        CU_RET(err, cudaMemcpyAsync(s->d_meta, s->h_meta, 4 * CU_MAX_TOK * sizeof(int), cudaMemcpyHostToDevice, s->st));
        CU_RET(err, cudaGraphLaunch(g, s->st));
    } else {
        int seq = 0, off = 0, ti = 0;
        while (seq < b->n_seq) {
            if (ti > 0) CU_RET(err, cudaStreamSynchronize(s->st)); /* h_meta is reused */
            int T = 0, nlast = 0, seq_first = -1, maxlen = 1;
            bool one = true; /* every token of the chunk is the only one of its sequence */
            while (T < CU_MAX_TOK && seq < b->n_seq) {
                if (T > 0 && h_slot[T - 1] == b->slot[seq]) one = false;
                h_tok[T] = b->tokens[ti++];
                h_slot[T] = b->slot[seq];
                h_pos[T] = b->pos[seq] + off;
                int lo = (s->window > 0 && h_pos[T] - s->window + 1 > 0) ? h_pos[T] - s->window + 1 : 0;
                if (h_pos[T] - lo + 1 > maxlen) maxlen = h_pos[T] - lo + 1;
                T++;
                if (++off == b->n_tokens[seq]) {
                    if (seq_first < 0) seq_first = seq;
                    h_last[nlast++] = T - 1;
                    seq++;
                    off = 0;
                }
            }
            CU_RET(err, cudaMemcpyAsync(s->d_meta, s->h_meta, 4 * CU_MAX_TOK * sizeof(int), cudaMemcpyHostToDevice,
                                        s->st));
            find_segments(s, T);
            const bool fused = one && use_fused(s, T);
            const int splits = fused ? pick_splits_dec(s, T) : pick_splits(s, T, maxlen);
            if ((rc = run_chunk(err, s, T, nlast, seq_first < 0 ? 0 : seq_first, splits, fused))) return rc;
        }
        if (head && (rc = run_head(err, s, b->n_seq))) return rc;
    }
    if (b->pick) { /* sampling reduced here: a token or a few candidates per row cross (pick.cu) */
        if ((rc = cup_launch(err, s, b))) return rc;
    } else {
        if (b->argmax)
            CU_RET(err, cudaMemcpyAsync(s->h_am, s->d_am, (size_t)b->n_seq * sizeof(int), cudaMemcpyDeviceToHost, s->st));
        if (b->logits)
            CU_RET(err, cudaMemcpyAsync(b->logits, s->logits, (size_t)b->n_seq * s->V * sizeof(float),
                                        cudaMemcpyDeviceToHost, s->st));
    }
    CU_RET(err, cudaStreamSynchronize(s->st));
    CU_RET(err, cudaGetLastError());
    if (b->pick) {
        cup_collect(s, b);
        s->pk.rows_left = b->n_seq;
    } else if (b->argmax) {
        memcpy(b->argmax, s->h_am, (size_t)b->n_seq * sizeof(int));
    }
    return 0;
}
