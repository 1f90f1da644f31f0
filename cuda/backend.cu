/* backend.cu - eng_cuda_backend: weights uploaded and repacked once at create, a paged KV
 * cache pool, slots, memory accounting. The forward pass is in fwd.cu.
 *
 * KV pool: fixed blocks of CU_KV_BS positions for every layer at once, sized from
 * opts->kv_budget (or, when 0, from the free device memory left after weights and
 * activations, capped at max_seqs * max_ctx positions). A slot takes blocks as its positions
 * grow and slot_free returns them all at once.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.cuh"
#include "state.cuh"

extern "C" {
#include "awq_util.h"
#include "cu.h"
}

/* Device memory kept free beyond what we allocate: cuBLAS workspace, CUDA context growth. */
#define CU_RESERVE ((size_t)512 << 20)
#define CU_CUBLAS_WS ((size_t)32 << 20)

static void cu_destroy(void *state);

/* ------------------------------------------------------------------ helpers ---- */
static int cb_status(char *err, const char *what, cublasStatus_t cs) {
    if (cs == CUBLAS_STATUS_SUCCESS) return 0;
    return awq_seterr(err, cs == CUBLAS_STATUS_ALLOC_FAILED ? AWQ_ENOMEM : AWQ_EDEVICE, "cuda: %s: %s", what,
                      cublasGetStatusName(cs));
}

static int dmalloc(char *err, void **p, size_t n, const char *what) {
    cudaError_t e = cudaMalloc(p, n ? n : 1);
    if (e != cudaSuccess) {
        *p = NULL;
        cudaGetLastError();
        return awq_seterr(err, AWQ_ENOMEM, "cuda: %zu MiB for %s: %s", (n + (1 << 20) - 1) >> 20, what,
                          cudaGetErrorName(e));
    }
    return 0;
}

static int upload_f16(char *err, half **dst, const uint16_t *src, size_t n, const char *what, cudaStream_t st) {
    int rc = dmalloc(err, (void **)dst, n * 2, what);
    if (rc) return rc;
    CU_RET(err, cudaMemcpyAsync(*dst, src, n * 2, cudaMemcpyHostToDevice, st));
    return 0;
}

/* ------------------------------------------------------------------ create ---- */
static int check_model(char *err, const eng_model *m, const eng_backend_opts *o) {
    const eng_config *c = &m->cfg;
    if (c->hidden <= 0 || c->layers <= 0 || c->heads <= 0 || c->kv_heads <= 0 || c->vocab <= 0 ||
        c->intermediate <= 0 || c->head_dim <= 0)
        return awq_seterr(err, AWQ_EINVAL, "model config has a non-positive dimension");
    if (!cua_head_dim_ok(c->head_dim))
        return awq_seterr(err, AWQ_EUNSUPPORTED, "head_dim %d: the CUDA backend has kernels for 16, 32, 64, 96, 128, 256",
                          c->head_dim);
    if (c->heads % c->kv_heads || c->heads / c->kv_heads > 8)
        return awq_seterr(err, AWQ_EUNSUPPORTED, "%d heads over %d KV heads: the CUDA backend takes 1..8 per KV head",
                          c->heads, c->kv_heads);
    if (c->hidden % 8)
        return awq_seterr(err, AWQ_EUNSUPPORTED, "hidden %d is not a multiple of 8", c->hidden);
    if (!m->embed || !m->norm || !m->lm_head || !m->layers)
        return awq_seterr(err, AWQ_EINVAL, "model has no embedding, norm, lm_head or layers");
    if (o->max_ctx <= 0 || o->max_seqs <= 0)
        return awq_seterr(err, AWQ_EINVAL, "max_ctx %d and max_seqs %d must be positive", o->max_ctx, o->max_seqs);
    if (c->max_pos > 0 && o->max_ctx > c->max_pos)
        return awq_seterr(err, AWQ_ECONTEXT, "context %d exceeds the model's max_position_embeddings %d", o->max_ctx,
                          c->max_pos);
    if (o->max_seqs > 4096 || o->max_ctx > ENG_MAX_CONTEXT)
        return awq_seterr(err, AWQ_ERANGE, "max_seqs %d (<= 4096) or max_ctx %d out of range", o->max_seqs, o->max_ctx);
    const int qd = c->heads * c->head_dim, kvd = c->kv_heads * c->head_dim;
    char e2[AWQ_ERR_LEN];
    for (int i = 0; i < c->layers; i++) {
        const eng_layer *L = &m->layers[i];
        struct { const eng_qlinear *l; const char *n; int in, out; } ls[] = {
            {&L->q, "q_proj", c->hidden, qd},       {&L->k, "k_proj", c->hidden, kvd},
            {&L->v, "v_proj", c->hidden, kvd},      {&L->o, "o_proj", qd, c->hidden},
            {&L->gate, "gate_proj", c->hidden, c->intermediate}, {&L->up, "up_proj", c->hidden, c->intermediate},
            {&L->down, "down_proj", c->intermediate, c->hidden},
        };
        if (!L->attn_norm || !L->ffn_norm) return awq_seterr(err, AWQ_EINVAL, "layer %d: missing norm weights", i);
        for (size_t j = 0; j < sizeof ls / sizeof ls[0]; j++) {
            if (cuq_check(e2, ls[j].n, ls[j].l)) return awq_seterr(err, AWQ_EINVAL, "layer %d %s", i, e2);
            if (ls[j].l->in != ls[j].in || ls[j].l->out != ls[j].out)
                return awq_seterr(err, AWQ_EINVAL, "layer %d %s: shape (%d, %d), expected (%d, %d)", i, ls[j].n,
                                  ls[j].l->in, ls[j].l->out, ls[j].in, ls[j].out);
        }
        if (L->q.group != L->k.group || L->q.group != L->v.group || L->gate.group != L->up.group)
            return awq_seterr(err, AWQ_EUNSUPPORTED, "layer %d: q/k/v or gate/up differ in group size", i);
    }
    return 0;
}

/* Bytes of the repacked weights, to refuse a model that cannot fit before uploading any. */
static size_t qw_bytes(int in, int out, int group) {
    size_t kp = (size_t)(in + 127) / 128 * 128, gp = (kp + group - 1) / group;
    return (size_t)out / 8 * (kp / 128) * 512 + (size_t)out / 8 * gp * 32;
}

static size_t act_bytes(const cu_state *s) {
    size_t MT = CU_MAX_TOK;
    return MT * ((size_t)s->H * 4 + s->H * 2 + (size_t)(s->qd + 2 * s->kvd) * 4 + s->qd * 4 + s->qd * 2 +
                 (size_t)s->I * 8 + s->I * 2) +
           (size_t)s->part_rows * s->heads * (s->hd + 2) * 4 + (size_t)s->max_seqs * ((size_t)s->H * 2 + s->V * 8 + 4) + /* logits, pick keys */
           (size_t)4 * MT * 4 + MT * s->kv_heads * 4;
}

/* The dense path's weight scratch (the largest linear as fp16 (out, kp)), at least big enough
 * for 16 query rows of prefill attention scores over lcap keys; and the attention's K/V/Q
 * scratch. Keys a segment can see: the whole context, or the window plus one chunk. */
static int tc_lcap(const cu_state *s) {
    if (s->window > 0 && (long long)s->window + CU_MAX_TOK < s->max_ctx) return s->window + CU_MAX_TOK;
    return s->max_ctx;
}
static size_t dense_scratch_bytes(const cu_state *s, size_t wmax) {
    size_t sp = cua_tc_score_bytes(s->heads, 16, tc_lcap(s));
    return wmax > sp ? wmax : sp;
}
static size_t tc_kvq_bytes(const cu_state *s) {
    return (size_t)2 * s->kv_heads * tc_lcap(s) * s->hd * 2 + (size_t)s->heads * CU_MAX_TOK * s->hd * 2;
}
static size_t dense_fp16_bytes(int in, int out) { return (size_t)out * ((size_t)(in + 127) / 128 * 128) * 2; }

static int env_int(const char *name, int dflt) {
    const char *v = getenv(name);
    return v && *v ? atoi(v) : dflt;
}

static int upload_layer(char *err, cu_state *s, int i, void *stage, size_t stage_len) {
    const eng_layer *L = &s->m->layers[i];
    cu_layer *d = &s->layers[i];
    int rc;
    const eng_qlinear *qkv[3] = {&L->q, &L->k, &L->v}, *gu[2] = {&L->gate, &L->up};
    const eng_qlinear *o = &L->o, *dn = &L->down;
    if ((rc = upload_f16(err, &d->attn_norm, L->attn_norm, s->H, "norms", s->st)) ||
        (rc = upload_f16(err, &d->ffn_norm, L->ffn_norm, s->H, "norms", s->st)))
        return rc;
    if ((rc = cuq_alloc(err, "qkv", qkv, 3, &d->qkv)) || (rc = cuq_alloc(err, "o_proj", &o, 1, &d->o)) ||
        (rc = cuq_alloc(err, "gate_up", gu, 2, &d->gu)) || (rc = cuq_alloc(err, "down_proj", &dn, 1, &d->down)))
        return rc;
    if ((rc = cuq_upload(err, &L->q, &d->qkv, 0, stage, stage_len, s->st)) ||
        (rc = cuq_upload(err, &L->k, &d->qkv, s->qd / 8, stage, stage_len, s->st)) ||
        (rc = cuq_upload(err, &L->v, &d->qkv, (s->qd + s->kvd) / 8, stage, stage_len, s->st)) ||
        (rc = cuq_upload(err, &L->o, &d->o, 0, stage, stage_len, s->st)) ||
        (rc = cuq_upload(err, &L->gate, &d->gu, 0, stage, stage_len, s->st)) ||
        (rc = cuq_upload(err, &L->up, &d->gu, s->I / 8, stage, stage_len, s->st)) ||
        (rc = cuq_upload(err, &L->down, &d->down, 0, stage, stage_len, s->st)))
        return rc;
    s->weight_bytes += d->qkv.bytes + d->o.bytes + d->gu.bytes + d->down.bytes + (size_t)s->H * 4;
    return 0;
}

static int cu_create(char *err, const eng_model *m, const eng_backend_opts *o, void **out) {
    *out = NULL;
    int rc = check_model(err, m, o);
    if (rc) return rc;
    int ndev = cu_device_count();
    if (ndev <= 0) return awq_seterr(err, AWQ_EDEVICE, "cuda: no CUDA device");
    if (o->device < 0 || o->device >= ndev)
        return awq_seterr(err, AWQ_EINVAL, "cuda: device %d does not exist (%d present)", o->device, ndev);
    CU_RET(err, cudaSetDevice(o->device));
    const eng_config *c = &m->cfg;
    cu_state *s = (cu_state *)calloc(1, sizeof *s);
    if (!s) return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    void *stage = NULL;
    size_t stage_len = 0, f16_need = 0; /* f16_need: bytes of the fp16 weight copies, 0 = none */
    s->m = m;
    s->dev = o->device;
    s->H = c->hidden;
    s->I = c->intermediate;
    s->V = c->vocab;
    s->L = c->layers;
    s->heads = c->heads;
    s->kv_heads = c->kv_heads;
    s->hd = c->head_dim;
    s->qd = c->heads * c->head_dim;
    s->kvd = c->kv_heads * c->head_dim;
    s->window = c->sliding_window;
    s->eps = c->rms_eps;
    s->max_ctx = o->max_ctx;
    s->max_seqs = o->max_seqs;
    s->use_graphs = getenv("AWQ_CUDA_NO_GRAPHS") == NULL;
    CU_GOTO(err, rc, fail, cudaDeviceGetAttribute(&s->sms, cudaDevAttrMultiProcessorCount, s->dev));
    s->part_rows = 4 * s->sms / s->kv_heads + 2 * s->max_seqs + 2;
    CU_GOTO(err, rc, fail, cudaStreamCreateWithFlags(&s->st, cudaStreamNonBlocking));
    {
        cublasStatus_t cs = cublasCreate(&s->cb);
        if ((rc = cb_status(err, "cublasCreate", cs))) goto fail;
        if ((rc = cb_status(err, "cublasSetStream", cublasSetStream(s->cb, s->st)))) goto fail;
        if ((rc = dmalloc(err, &s->cb_ws, CU_CUBLAS_WS, "cuBLAS workspace"))) goto fail;
        if ((rc = cb_status(err, "cublasSetWorkspace", cublasSetWorkspace(s->cb, s->cb_ws, CU_CUBLAS_WS)))) goto fail;
    }

    /* ---- refuse a model that cannot fit, with the numbers ---- */
    {
        size_t need = (size_t)c->vocab * c->hidden * 2 * (m->lm_head == m->embed ? 1 : 2) + (size_t)c->hidden * 2;
        for (int i = 0; i < c->layers; i++) {
            const eng_layer *L = &m->layers[i];
            need += qw_bytes(L->q.in, s->qd + 2 * s->kvd, L->q.group) + qw_bytes(L->o.in, L->o.out, L->o.group) +
                    qw_bytes(L->gate.in, 2 * s->I, L->gate.group) + qw_bytes(L->down.in, L->down.out, L->down.group) +
                    (size_t)s->H * 4;
        }
        size_t wmax = 0;
        for (int i = 0; i < c->layers; i++) {
            const eng_layer *L = &m->layers[i];
            size_t b[4] = {dense_fp16_bytes(L->q.in, s->qd + 2 * s->kvd), dense_fp16_bytes(L->o.in, L->o.out),
                           dense_fp16_bytes(L->gate.in, 2 * s->I), dense_fp16_bytes(L->down.in, L->down.out)};
            for (int j = 0; j < 4; j++)
                if (b[j] > wmax) wmax = b[j];
        }
        s->dense_len = dense_scratch_bytes(s, wmax);
        s->scratch_bytes = s->dense_len + tc_kvq_bytes(s);
        need += act_bytes(s) + s->scratch_bytes + (size_t)o->max_ctx * (s->hd / 2) * 8;
        if (o->fp16_weights) /* the fp16 copies of every linear (prefill_fp16_weights) */
            for (int i = 0; i < c->layers; i++) {
                const eng_layer *L = &m->layers[i];
                f16_need += dense_fp16_bytes(L->q.in, s->qd + 2 * s->kvd) + dense_fp16_bytes(L->o.in, L->o.out) +
                            dense_fp16_bytes(L->gate.in, 2 * s->I) + dense_fp16_bytes(L->down.in, L->down.out);
            }
        need += f16_need;
        size_t fr = 0, tot = 0;
        CU_GOTO(err, rc, fail, cudaMemGetInfo(&fr, &tot));
        size_t min_kv = (size_t)c->layers * 2 * s->kvd * 2 * CU_KV_BS; /* one block */
        if (need + min_kv + CU_RESERVE > fr) {
            rc = awq_seterr(err, AWQ_ENOMEM,
                            "cuda: model needs %zu MiB of GPU memory (weights and activations%s) plus %zu MiB "
                            "reserve; device %d has %zu MiB free of %zu MiB",
                            need >> 20, f16_need ? ", with the fp16 weight copies of prefill_fp16_weights" : "",
                            (size_t)(CU_RESERVE >> 20), s->dev, fr >> 20, tot >> 20);
            goto fail;
        }
    }

    /* ---- weights ---- */
    for (int i = 0; i < c->layers; i++) {
        const eng_layer *L = &m->layers[i];
        const eng_qlinear *ls[7] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
        for (int j = 0; j < 7; j++)
            if (cuq_stage_bytes(ls[j]) > stage_len) stage_len = cuq_stage_bytes(ls[j]);
    }
    if ((rc = dmalloc(err, &stage, stage_len, "upload staging"))) goto fail;
    s->layers = (cu_layer *)calloc((size_t)c->layers, sizeof *s->layers);
    if (!s->layers) {
        rc = awq_seterr(err, AWQ_ENOMEM, "out of memory");
        goto fail;
    }
    for (int i = 0; i < c->layers; i++)
        if ((rc = upload_layer(err, s, i, stage, stage_len))) goto fail;
    /* prefill_fp16_weights: each linear dequantized once, here, instead of on every dense step
     * (the dequant pass was 6.2 ms of a 56 ms 2048-token prefill on the H100) */
    if (f16_need)
        for (int i = 0; i < c->layers; i++) {
            cu_qw *q[4] = {&s->layers[i].qkv, &s->layers[i].o, &s->layers[i].gu, &s->layers[i].down};
            for (int j = 0; j < 4; j++) {
                if ((rc = dmalloc(err, (void **)&q[j]->f16, cuq_dense_bytes(q[j]), "fp16 weight copies")) ||
                    (rc = cuq_dequant(err, q[j], q[j]->f16, s->st)))
                    goto fail;
                s->weight_bytes += cuq_dense_bytes(q[j]);
            }
        }
    if ((rc = upload_f16(err, &s->embed, m->embed, (size_t)s->V * s->H, "embeddings", s->st)) ||
        (rc = upload_f16(err, &s->norm, m->norm, s->H, "norm", s->st)))
        goto fail;
    s->weight_bytes += (size_t)s->V * s->H * 2 + (size_t)s->H * 2;
    if (m->lm_head == m->embed) {
        s->lm_head = s->embed;
    } else {
        if ((rc = upload_f16(err, &s->lm_head, m->lm_head, (size_t)s->V * s->H, "lm_head", s->st))) goto fail;
        s->weight_bytes += (size_t)s->V * s->H * 2;
    }
    /* RoPE table on the host exactly as the CPU reference computes it (float powf/cosf/sinf):
     * the GPU's fast-math sin/cos lose accuracy at positions in the thousands. */
    {
        const int hh = s->hd / 2;
        size_t n = (size_t)s->max_ctx * hh;
        float2 *t = (float2 *)malloc(n * sizeof(float2));
        if (!t) {
            rc = awq_seterr(err, AWQ_ENOMEM, "out of memory for the RoPE table");
            goto fail;
        }
        for (int i = 0; i < hh; i++) {
            float inv = 1.0f / powf(c->rope_theta, (float)(2 * i) / (float)s->hd);
            for (int p = 0; p < s->max_ctx; p++) {
                float a = (float)p * inv;
                t[(size_t)p * hh + i] = make_float2(cosf(a), sinf(a));
            }
        }
        rc = dmalloc(err, (void **)&s->rope, n * sizeof(float2), "RoPE table");
        if (!rc) {
            cudaError_t e = cudaMemcpy(s->rope, t, n * sizeof(float2), cudaMemcpyHostToDevice);
            if (e != cudaSuccess) rc = awq_seterr(err, AWQ_EDEVICE, "cuda: RoPE upload: %s", cudaGetErrorName(e));
        }
        free(t);
        if (rc) goto fail;
    }
    CU_GOTO(err, rc, fail, cudaStreamSynchronize(s->st));
    cudaFree(stage);
    stage = NULL;

    /* ---- activations ---- */
    {
        const size_t MT = CU_MAX_TOK;
        if ((rc = dmalloc(err, (void **)&s->x, MT * s->H * 4, "activations")) ||
            (rc = dmalloc(err, (void **)&s->xn, MT * s->H * 2, "activations")) ||
            (rc = dmalloc(err, (void **)&s->qkv, MT * (s->qd + 2 * s->kvd) * 4, "activations")) ||
            (rc = dmalloc(err, (void **)&s->q, MT * s->qd * 4, "activations")) ||
            (rc = dmalloc(err, (void **)&s->att, MT * s->qd * 2, "activations")) ||
            (rc = dmalloc(err, (void **)&s->gu, MT * s->I * 8, "activations")) ||
            (rc = dmalloc(err, (void **)&s->hmid, MT * s->I * 2, "activations")) ||
            (rc = dmalloc(err, (void **)&s->part, (size_t)s->part_rows * s->heads * (s->hd + 2) * 4, "attention")) ||
            (rc = dmalloc(err, (void **)&s->attn_cnt, MT * s->kv_heads * 4, "attention")) ||
            (rc = dmalloc(err, (void **)&s->lastn, (size_t)s->max_seqs * s->H * 2, "activations")) ||
            (rc = dmalloc(err, (void **)&s->logits, (size_t)s->max_seqs * s->V * 4, "logits")) ||
            (rc = dmalloc(err, (void **)&s->d_am, (size_t)s->max_seqs * 4, "argmax")) ||
            (rc = dmalloc(err, &s->d_am_part, cuo_argmax_part_bytes(s->max_seqs), "argmax partials")) ||
            (rc = dmalloc(err, (void **)&s->d_meta, 4 * MT * 4, "batch metadata")))
            goto fail;
        /* the decode path's split-K matmuls add into these: they start (and are left) zero */
        CU_GOTO(err, rc, fail, cudaMemset(s->qkv, 0, MT * (s->qd + 2 * s->kvd) * 4));
        CU_GOTO(err, rc, fail, cudaMemset(s->gu, 0, MT * s->I * 8));
        /* cua_attn_decode's arrival counters start at 0 and each launch leaves them there */
        CU_GOTO(err, rc, fail, cudaMemset(s->attn_cnt, 0, MT * s->kv_heads * 4));
        CU_GOTO(err, rc, fail, cudaMallocHost(&s->h_meta, 4 * MT * 4));
        CU_GOTO(err, rc, fail, cudaMallocHost(&s->h_am, (size_t)s->max_seqs * 4));
        if ((rc = cup_alloc(err, s))) goto fail;
    }

    /* ---- dense path and prefill attention scratch (sized in the fit check above) ---- */
    {
        s->tc.lcap = tc_lcap(s);
        s->tc.qcap = CU_MAX_TOK;
        size_t kvb = (size_t)s->kv_heads * s->tc.lcap * s->hd * 2;
        if ((rc = dmalloc(err, (void **)&s->dense, s->dense_len, "dense-path weight scratch")) ||
            (rc = dmalloc(err, (void **)&s->tc.k, kvb, "attention scratch")) ||
            (rc = dmalloc(err, (void **)&s->tc.v, kvb, "attention scratch")) ||
            (rc = dmalloc(err, (void **)&s->tc.q, (size_t)s->heads * CU_MAX_TOK * s->hd * 2, "attention scratch")))
            goto fail;
        s->tc.sp = s->dense;
        s->tc.sp_bytes = s->dense_len;
        s->segs = (cu_seg *)calloc(CU_MAX_TOK, sizeof *s->segs);
        if (!s->segs) {
            rc = awq_seterr(err, AWQ_ENOMEM, "out of memory");
            goto fail;
        }
        s->dense_min = cuq_dense_min();
        /* runs of 64+ queries beat the flash-decoding kernel on the flash-attention kernel
         * (prefill 128: +8 % on the H200); the cuBLAS path only from 256 */
        s->att_fa = env_int("AWQ_CUDA_ATTN_FA", 1) != 0;
        s->att_min = env_int("AWQ_CUDA_ATT_MIN", s->att_fa && cua_fa_head_dim_ok(s->hd) ? CU_ATT_MIN_FA_DEFAULT
                                                                                      : CU_ATT_MIN_DEFAULT);
        if (s->att_min < 1) s->att_min = 1;
        s->att_qb = env_int("AWQ_CUDA_ATT_QB", 0);
        s->attn_fused = env_int("AWQ_CUDA_ATTN_FUSED", 1) != 0;
        s->attn_splits = env_int("AWQ_CUDA_ATTN_SPLITS", 0);
        s->attn_fused_max = env_int("AWQ_CUDA_ATTN_FUSED_MAX", CU_ATTN_FUSED_MAX);
        s->attn_waves = env_int("AWQ_CUDA_ATTN_WAVES", 2);
        if (s->attn_waves < 1) s->attn_waves = 1;
        s->rms_pre = env_int("AWQ_CUDA_RMS_PRE", CU_RMS_PRE_DEFAULT);
        s->swiglu_pre = env_int("AWQ_CUDA_SWIGLU_PRE", CU_SWIGLU_PRE_DEFAULT);
    }

    /* ---- KV pool ---- */
    {
        s->maxb = (s->max_ctx + CU_KV_BS - 1) / CU_KV_BS;
        size_t blk_bytes = (size_t)s->L * 2 * s->kvd * 2 * CU_KV_BS;
        size_t want = (size_t)s->max_seqs * s->maxb;
        size_t fr = 0, tot = 0;
        CU_GOTO(err, rc, fail, cudaMemGetInfo(&fr, &tot));
        size_t budget = o->kv_budget;
        if (!budget) budget = fr > CU_RESERVE ? (fr - CU_RESERVE) / 10 * 9 : 0;
        size_t nb = budget / blk_bytes;
        if (nb > want) nb = want;
        if (nb > (size_t)1 << 30) nb = (size_t)1 << 30;
        if (nb < 1 || nb * blk_bytes + CU_RESERVE / 2 > fr) {
            rc = awq_seterr(err, AWQ_ENOMEM,
                            "cuda: KV cache: a block of %d positions needs %zu KiB; budget %zu MiB, %zu MiB free",
                            CU_KV_BS, blk_bytes >> 10, budget >> 20, fr >> 20);
            goto fail;
        }
        s->nblocks = (int)nb;
        s->kv_bytes = nb * blk_bytes;
        if ((rc = dmalloc(err, (void **)&s->kpool, s->kv_bytes / 2, "KV cache")) ||
            (rc = dmalloc(err, (void **)&s->vpool, s->kv_bytes / 2, "KV cache")) ||
            (rc = dmalloc(err, (void **)&s->d_bt, (size_t)s->max_seqs * s->maxb * 4, "block table")))
            goto fail;
        CU_GOTO(err, rc, fail, cudaMemset(s->d_bt, 0, (size_t)s->max_seqs * s->maxb * 4));
        s->free_blk = (int *)malloc(nb * sizeof(int));
        s->slots = (cu_slot *)calloc((size_t)s->max_seqs, sizeof *s->slots);
        if (!s->free_blk || !s->slots) {
            rc = awq_seterr(err, AWQ_ENOMEM, "out of memory");
            goto fail;
        }
        for (size_t i = 0; i < nb; i++) s->free_blk[i] = (int)(nb - 1 - i);
        s->nfree = (int)nb;
        for (int i = 0; i < s->max_seqs; i++) {
            s->slots[i].blocks = (int *)malloc((size_t)s->maxb * sizeof(int));
            if (!s->slots[i].blocks) {
                rc = awq_seterr(err, AWQ_ENOMEM, "out of memory for block tables");
                goto fail;
            }
        }
    }
    *out = s;
    return 0;
fail:
    cudaFree(stage);
    cu_destroy(s);
    return rc;
}

/* ------------------------------------------------------------------ destroy ---- */
static void cu_destroy(void *state) {
    cu_state *s = (cu_state *)state;
    if (!s) return;
    cudaSetDevice(s->dev);
    if (s->st) cudaStreamSynchronize(s->st);
    cu_graphs_clear(s);
    if (s->layers)
        for (int i = 0; i < s->L; i++) {
            cu_layer *d = &s->layers[i];
            cudaFree(d->attn_norm);
            cudaFree(d->ffn_norm);
            cuq_release(&d->qkv);
            cuq_release(&d->o);
            cuq_release(&d->gu);
            cuq_release(&d->down);
        }
    free(s->layers);
    if (s->lm_head != s->embed) cudaFree(s->lm_head);
    cudaFree(s->embed);
    cudaFree(s->norm);
    cudaFree(s->rope);
    cudaFree(s->kpool);
    cudaFree(s->vpool);
    cudaFree(s->d_bt);
    if (s->slots)
        for (int i = 0; i < s->max_seqs; i++) free(s->slots[i].blocks);
    free(s->slots);
    free(s->free_blk);
    cudaFree(s->x);
    cudaFree(s->xn);
    cudaFree(s->qkv);
    cudaFree(s->q);
    cudaFree(s->att);
    cudaFree(s->gu);
    cudaFree(s->hmid);
    cudaFree(s->part);
    cudaFree(s->attn_cnt);
    cudaFree(s->lastn);
    cudaFree(s->logits);
    cudaFree(s->d_am);
    cudaFree(s->d_am_part);
    cudaFree(s->d_meta);
    cudaFree(s->dense);
    cudaFree(s->tc.k);
    cudaFree(s->tc.v);
    cudaFree(s->tc.q);
    free(s->segs);
    cudaFreeHost(s->h_meta);
    cudaFreeHost(s->h_am);
    cup_free(s);
    if (s->cb) cublasDestroy(s->cb);
    cudaFree(s->cb_ws);
    if (s->st) cudaStreamDestroy(s->st);
    free(s);
}

/* ------------------------------------------------------------------ slots ---- */
static int cu_slot_alloc(char *err, void *state, int *slot) {
    cu_state *s = (cu_state *)state;
    for (int i = 0; i < s->max_seqs; i++)
        if (!s->slots[i].used) {
            s->slots[i].used = true;
            s->slots[i].nblk = 0;
            *slot = i;
            return 0;
        }
    return awq_seterr(err, AWQ_EBUSY, "all %d sequence slots are in use", s->max_seqs);
}

static void cu_slot_free(void *state, int slot) {
    cu_state *s = (cu_state *)state;
    if (slot < 0 || slot >= s->max_seqs || !s->slots[slot].used) return;
    cu_slot *sl = &s->slots[slot];
    for (int i = 0; i < sl->nblk; i++) s->free_blk[s->nfree++] = sl->blocks[i];
    sl->nblk = 0;
    sl->used = false;
}

static void cu_memory(void *state, size_t *weights, size_t *kv) {
    cu_state *s = (cu_state *)state;
    if (weights) *weights = s->weight_bytes + s->scratch_bytes;
    if (kv) *kv = s->kv_bytes;
}

size_t cu_scratch_bytes(const void *state) { return state ? ((const cu_state *)state)->scratch_bytes : 0; }

static int cu_forward(char *err, void *state, const eng_batch *b) {
    cu_state *s = (cu_state *)state;
    cudaError_t e = cudaSetDevice(s->dev);
    if (e != cudaSuccess) return awq_seterr(err, AWQ_EDEVICE, "cuda: cudaSetDevice: %s", cudaGetErrorName(e));
    return cu_fwd(err, s, b);
}

static int cu_row(char *err, void *state, int i, float *out) {
    cu_state *s = (cu_state *)state;
    cudaError_t e = cudaSetDevice(s->dev);
    if (e != cudaSuccess) return awq_seterr(err, AWQ_EDEVICE, "cuda: cudaSetDevice: %s", cudaGetErrorName(e));
    return cup_row_copy(err, s, i, out);
}

extern "C" const eng_backend_ops eng_cuda_backend = {
    "cuda", cu_create, cu_slot_alloc, cu_slot_free, cu_forward, cu_row, cu_memory, cu_destroy, true,
};
