/* test_cuda.c - the CUDA backend against the CPU reference.
 *
 * Covers: device discovery (skips cleanly without CUDA or without a device), shape checks of
 * the AWQ upload (messages included), every AWQ matmul kernel (gemv and its variants, the
 * ring gemv, skinny, tiled) on random
 * shapes including padded k and ragged n/m, compared with eng_qlinear_dequant_row in fp32, and
 * the whole GPU forward against eng_cpu_backend on synthetic in-memory models and on small
 * checkpoints written by awq-mkmodel and loaded from disk (logits within tolerance, greedy ids
 * equal), the large-step paths (dense linears through cuBLAS, prefill attention on tensor
 * cores) forced on by their knobs and at default thresholds, the flash-attention prefill kernel
 * and its cuBLAS fallback alone (cu_attn_probe: shuffled pages, NaN in unowned rows) against a
 * double-precision loop and inside the forward, the fused decode attention (every decode step;
 * tile and split edges, windows, head sizes 16-256, GQA 1-8, with and without graphs, and the
 * old kernels through AWQ_CUDA_ATTN_FUSED=0), plus slot, KV-pool, batch and option error
 * paths.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#ifndef AWQ_HAVE_CUDA
int main(void) {
    CASE("cuda-0.1", "a build without CUDA skips every GPU case");
    SKIP("built without CUDA");
}
#else

#include "awq_util.h"
#include "backend.h"
#include "cu.h"
#include "model.h"
#include "gen.h"
#include "sample.h"

/* ------------------------------------------------------------------ helpers ---- */
static uint32_t rng_state = 12345u;
static uint32_t rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state;
}
static float rndf(float lo, float hi) { return lo + (hi - lo) * (float)(rnd() & 0xffffff) / 16777216.0f; }

typedef struct rand_lin {
    eng_qlinear l;
    int32_t *qw, *qz;
    uint16_t *sc;
} rand_lin;

static void rand_lin_make(rand_lin *r, int in, int out, int group) {
    memset(r, 0, sizeof *r);
    int ng = in / group > 0 ? in / group : 1;
    size_t nqw = (size_t)in * (out / 8 > 0 ? out / 8 : 1), nqz = (size_t)ng * (out / 8 > 0 ? out / 8 : 1);
    r->qw = malloc(nqw * 4);
    r->qz = malloc(nqz * 4);
    r->sc = malloc((size_t)ng * (out > 0 ? out : 1) * 2);
    for (size_t i = 0; i < nqw; i++) r->qw[i] = (int32_t)rnd();
    for (size_t i = 0; i < nqz; i++) r->qz[i] = (int32_t)rnd();
    for (size_t i = 0; i < (size_t)ng * (out > 0 ? out : 1); i++) r->sc[i] = awq_f32_to_f16(rndf(0.001f, 0.03f));
    r->l.in = in;
    r->l.out = out;
    r->l.group = group;
    r->l.qweight = r->qw;
    r->l.qzeros = r->qz;
    r->l.scales = r->sc;
}
static void rand_lin_free(rand_lin *r) {
    free(r->qw);
    free(r->qz);
    free(r->sc);
}

/* ||y - ref|| / ||ref|| with the reference from eng_qlinear_dequant_row on fp16-rounded x;
 * returns a huge number if any output is not finite. */
static double qmm_rel_err(const eng_qlinear *l, const float *x, int m, const float *y) {
    float *row = malloc((size_t)l->out * sizeof(float));
    double *ref = calloc((size_t)m * l->out, sizeof(double));
    for (int k = 0; k < l->in; k++) {
        eng_qlinear_dequant_row(l, k, row);
        for (int r = 0; r < m; r++) {
            double xv = awq_f16_to_f32(awq_f32_to_f16(x[(size_t)r * l->in + k]));
            for (int n = 0; n < l->out; n++) ref[(size_t)r * l->out + n] += xv * row[n];
        }
    }
    double num = 0, den = 0;
    for (size_t i = 0; i < (size_t)m * l->out; i++) {
        if (!isfinite(y[i])) {
            num = 1e30;
            break;
        }
        num += (y[i] - ref[i]) * (y[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    free(row);
    free(ref);
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* ------------------------------------------------------------------ cases ---- */
static void test_shapes(void) {
    char err[AWQ_ERR_LEN];
    rand_lin r;
    cu_qlin *q = NULL;

    CASE("cuda-2.1", "out not a multiple of 8 is refused");
    rand_lin_make(&r, 128, 12, 128);
    CHECK_EQ(cu_qlin_create(err, 0, &r.l, &q), AWQ_EINVAL);
    CHECK_CONTAINS(err, "out 12 is not a multiple of 8");
    CHECK(q == NULL);
    rand_lin_free(&r);

    CASE("cuda-2.2", "in not a multiple of group is refused");
    rand_lin_make(&r, 200, 16, 128);
    CHECK_EQ(cu_qlin_create(err, 0, &r.l, &q), AWQ_EINVAL);
    CHECK_CONTAINS(err, "in 200 is not a multiple of group 128");
    rand_lin_free(&r);

    CASE("cuda-2.3", "an unsupported group is refused");
    rand_lin_make(&r, 96, 16, 48);
    CHECK_EQ(cu_qlin_create(err, 0, &r.l, &q), AWQ_EINVAL);
    CHECK_CONTAINS(err, "group 48 unsupported");
    rand_lin_free(&r);

    CASE("cuda-2.4", "zero and negative sizes, missing tensors");
    rand_lin_make(&r, 128, 8, 128);
    r.l.out = 0;
    CHECK_EQ(cu_qlin_create(err, 0, &r.l, &q), AWQ_EINVAL);
    CHECK_CONTAINS(err, "must be positive");
    r.l.out = 8;
    r.l.scales = NULL;
    CHECK_EQ(cu_qlin_create(err, 0, &r.l, &q), AWQ_EINVAL);
    CHECK_CONTAINS(err, "missing qweight/qzeros/scales");
    rand_lin_free(&r);

    CASE("cuda-2.5", "matmul argument errors");
    rand_lin_make(&r, 128, 8, 128);
    CHECK_EQ(cu_qlin_create(err, 0, &r.l, &q), 0);
    float x[128] = {0}, y[8];
    CHECK_EQ(cu_qlin_matmul(err, q, x, 0, y, CU_QMM_AUTO), AWQ_EINVAL);
    CHECK_CONTAINS(err, "m 0 must be positive");
    CHECK_EQ(cu_qlin_matmul(err, q, x, 1, y, CU_QMM_LAST + 1), AWQ_EINVAL);
    CHECK_CONTAINS(err, "unknown kernel");
    CHECK_EQ(cu_qlin_matmul(err, q, x, 1, y, -1), AWQ_EINVAL);
    CHECK_CONTAINS(err, "unknown kernel -1");
    CHECK_EQ(cu_qlin_bytes(q), 512 + 48); /* one n8 x k128 chunk + one group of zeros/scales */
    cu_qlin_free(q);
    cu_qlin_free(NULL);
    rand_lin_free(&r);
}

static void test_qmm(void) {
    static const struct { int in, out, group; } shapes[] = {
        {128, 8, 128},    {384, 24, 128},  {96, 16, 32},     {320, 40, 64},  {1024, 512, 128},
        {1024, 136, 128}, {2048, 520, 128}, {4096, 64, 128}, {256, 1032, 256}, {160, 8, 32},
        {512, 256, 256},
    };
    static const int ms[] = {1, 2, 5, 8, 16, 17, 33, 70, 130};
    char err[AWQ_ERR_LEN];
    char id[32];
    /* AWQ_TEST_QUICK (set under compute-sanitizer): the small shapes only */
    size_t nshapes = h_env("AWQ_TEST_QUICK") ? 5 : sizeof shapes / sizeof shapes[0];
    for (size_t s = 0; s < nshapes; s++) {
        rand_lin r;
        rand_lin_make(&r, shapes[s].in, shapes[s].out, shapes[s].group);
        cu_qlin *q = NULL;
        snprintf(id, sizeof id, "cuda-3.%zu", s + 1);
        CASE(id, "AWQ matmul kernels match the dequantized fp32 reference");
        int rc = cu_qlin_create(err, 0, &r.l, &q);
        CHECK_EQ(rc, 0);
        if (rc) {
            fprintf(stderr, "  %s\n", err);
            rand_lin_free(&r);
            continue;
        }
        for (size_t mi = 0; mi < sizeof ms / sizeof ms[0]; mi++) {
            int m = ms[mi];
            float *x = malloc((size_t)m * r.l.in * sizeof(float));
            float *y = malloc((size_t)m * r.l.out * sizeof(float));
            for (size_t i = 0; i < (size_t)m * r.l.in; i++) x[i] = rndf(-2.0f, 2.0f);
            /* every kernel, then the GEMV tuning variants (read from the environment on each
             * call): for the registers GEMV 4 tile pairs per block, the 80-register build, no
             * PDL; for the streamed GEMV (sm_90; elsewhere CU_QMM_GEMV is the registers one
             * again) 2 and 8 k128 blocks per unit, one stage per warp, no PDL, pair-major order, the zero fold, 3 blocks per SM,
             * the batched passes without the wgmma step, with its slab-pair order wherever it fits and with one block per SM, the
             * batched split-K sums as scalar atomics instead of 16-byte ones (sm_90a; out a multiple of 64, group >= 128: 1024 x 512,
             * 4096 x 64, 512 x 256 at m 16 / 17 / 33 and the 64-row passes of 70 / 130) */
            static const struct { const char *var, *val; int kernel; } tune[] = {
                {"AWQ_CUDA_GEMV_WN", "4", CU_QMM_GEMV_LDG}, {"AWQ_CUDA_GEMV_OCC", "3", CU_QMM_GEMV_LDG},
                {"AWQ_CUDA_NO_PDL", "1", CU_QMM_GEMV_LDG},  {"AWQ_CUDA_GEMV_S", "2", CU_QMM_GEMV},
                {"AWQ_CUDA_GEMV_S", "8", CU_QMM_GEMV},      {"AWQ_CUDA_GEMV_R", "1", CU_QMM_GEMV},
                {"AWQ_CUDA_NO_PDL", "1", CU_QMM_GEMV},      {"AWQ_CUDA_GEMV_ORDER", "1", CU_QMM_GEMV},
                {"AWQ_CUDA_GEMV_ZFOLD", "1", CU_QMM_GEMV},  {"AWQ_CUDA_GEMV_BPS", "3", CU_QMM_GEMV},
                {"AWQ_CUDA_GEMV_WGMMA", "0", CU_QMM_GEMV},  {"AWQ_CUDA_GEMV_ORDER", "2", CU_QMM_GEMV},
                {"AWQ_CUDA_GEMV_WGBPS", "1", CU_QMM_GEMV},  {"AWQ_CUDA_GEMV_V4", "0", CU_QMM_GEMV}};
            const int ntune = (int)(sizeof tune / sizeof tune[0]);
            for (int kv = CU_QMM_AUTO; kv <= CU_QMM_LAST + ntune; kv++) {
                const bool tv = kv > CU_QMM_LAST;
                int kern = tv ? tune[kv - CU_QMM_LAST - 1].kernel : kv;
                if (tv) setenv(tune[kv - CU_QMM_LAST - 1].var, tune[kv - CU_QMM_LAST - 1].val, 1);
                memset(y, 0, (size_t)m * r.l.out * sizeof(float));
                rc = cu_qlin_matmul(err, q, x, m, y, kern);
                if (tv) unsetenv(tune[kv - CU_QMM_LAST - 1].var);
                CHECK_EQ(rc, 0);
                if (rc) {
                    fprintf(stderr, "  %s\n", err);
                    continue;
                }
                double e = qmm_rel_err(&r.l, x, m, y);
                if (e > 3e-3)
                    fprintf(stderr, "  in %d out %d group %d m %d kernel %d%s%s=%s: rel err %g\n", r.l.in, r.l.out,
                            r.l.group, m, kern, tv ? " with " : "", tv ? tune[kv - CU_QMM_LAST - 1].var : "",
                            tv ? tune[kv - CU_QMM_LAST - 1].val : "", e);
                CHECK(e <= 3e-3);
            }
            free(x);
            free(y);
        }
        cu_qlin_free(q);
        rand_lin_free(&r);
    }
}


/* ------------------------------------------------------------------ synthetic models ---- */
/* A whole model in memory (the eng_model structs are public): random AWQ linears, norms near 1,
 * small embeddings, so both backends run the same weights without touching the disk. */
typedef struct synth {
    eng_model m;
    eng_layer *layers;
    rand_lin *lins; /* (layers, 7) */
    uint16_t *embed, *lm_head, *norms;
} synth;

static uint16_t *rand_f16(size_t n, float lo, float hi) {
    uint16_t *p = malloc(n * 2);
    for (size_t i = 0; i < n; i++) p[i] = awq_f32_to_f16(rndf(lo, hi));
    return p;
}

static void synth_make(synth *s, int hidden, int inter, int layers, int heads, int kv_heads, int vocab, int group,
                       int window, bool tie) {
    memset(s, 0, sizeof *s);
    eng_config *c = &s->m.cfg;
    strcpy(c->arch, "MistralForCausalLM");
    strcpy(c->model_type, "mistral");
    c->hidden = hidden;
    c->intermediate = inter;
    c->layers = layers;
    c->heads = heads;
    c->kv_heads = kv_heads;
    c->head_dim = hidden / heads;
    c->vocab = vocab;
    c->max_pos = 4096;
    c->sliding_window = window;
    c->rope_theta = 10000.0f;
    c->rms_eps = 1e-5f;
    c->tie_embeddings = tie;
    c->bits = 4;
    c->group_size = group;
    c->zero_point = true;
    s->embed = rand_f16((size_t)vocab * hidden, -1.0f, 1.0f);
    s->lm_head = tie ? s->embed : rand_f16((size_t)vocab * hidden, -0.1f, 0.1f);
    s->norms = rand_f16((size_t)(2 * layers + 1) * hidden, 0.8f, 1.2f);
    s->layers = calloc((size_t)layers, sizeof *s->layers);
    s->lins = calloc((size_t)layers * 7, sizeof *s->lins);
    const int qd = heads * c->head_dim, kvd = kv_heads * c->head_dim;
    for (int i = 0; i < layers; i++) {
        eng_layer *L = &s->layers[i];
        rand_lin *r = &s->lins[i * 7];
        rand_lin_make(&r[0], hidden, qd, group);
        rand_lin_make(&r[1], hidden, kvd, group);
        rand_lin_make(&r[2], hidden, kvd, group);
        rand_lin_make(&r[3], qd, hidden, group);
        rand_lin_make(&r[4], hidden, inter, group);
        rand_lin_make(&r[5], hidden, inter, group);
        rand_lin_make(&r[6], inter, hidden, group);
        L->q = r[0].l;
        L->k = r[1].l;
        L->v = r[2].l;
        L->o = r[3].l;
        L->gate = r[4].l;
        L->up = r[5].l;
        L->down = r[6].l;
        L->attn_norm = s->norms + (size_t)(2 * i) * hidden;
        L->ffn_norm = s->norms + (size_t)(2 * i + 1) * hidden;
    }
    s->m.embed = s->embed;
    s->m.lm_head = s->lm_head;
    s->m.norm = s->norms + (size_t)2 * layers * hidden;
    s->m.layers = s->layers;
}

static void synth_free(synth *s) {
    for (int i = 0; i < s->m.cfg.layers * 7; i++) rand_lin_free(&s->lins[i]);
    free(s->lins);
    free(s->layers);
    if (s->lm_head != s->embed) free(s->lm_head);
    free(s->embed);
    free(s->norms);
}

/* ------------------------------------------------------------------ forward vs CPU ---- */
typedef struct be {
    const eng_backend_ops *ops;
    void *st;
} be;

/* eng_backend_opts.fp16_weights of the next be_open calls (the CPU backend ignores it) */
static bool g_fp16w;

static int be_open(be *b, const eng_backend_ops *ops, const eng_model *m, int max_ctx, int max_seqs, size_t kv) {
    char err[AWQ_ERR_LEN];
    eng_backend_opts o = {
        .threads = 2, .max_ctx = max_ctx, .max_seqs = max_seqs, .kv_budget = kv, .device = 0, .fp16_weights = g_fp16w};
    b->ops = ops;
    b->st = NULL;
    int rc = ops->create(err, m, &o, &b->st);
    if (rc) fprintf(stderr, "  %s create: %s\n", ops->name, err);
    return rc;
}

/* ||a - b|| / ||b|| over n floats; huge when a has a non-finite value. */
static double rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return 1e30;
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* The gap between the best and second-best logit over the row's RMS: greedy ids may differ
 * only when it is tiny. */
static float top2_gap(const float *l, int V) {
    float a = -INFINITY, b2 = -INFINITY;
    double ss = 0;
    for (int i = 0; i < V; i++) ss += (double)l[i] * l[i];
    float rms = (float)sqrt(ss / V) + 1e-30f;
    for (int i = 0; i < V; i++) {
        if (l[i] > a) {
            b2 = a;
            a = l[i];
        } else if (l[i] > b2)
            b2 = l[i];
    }
    return (a - b2) / rms;
}

#define FWD_TOL 2e-2   /* fp16 activations and KV against the CPU's fp32: measured ~3e-3 */
#define GAP_TOL 2e-2f  /* top-2 logit margin (in row RMS) below which greedy ids may differ */
#define FWD_MAXSEQ 64  /* sequences of one fwd_compare: decode steps up to the GEMV path's 64 rows */

/* Run the same batches through both backends: nseq sequences with prompt lengths plen[],
 * then `steps` greedy decode steps of all of them together. Checks logits and ids. */
static void fwd_compare(const char *id, const char *what, const eng_model *m, int nseq, const int *plen, int steps,
                        bool chunked_prompt) {
    CASE(id, what);
    char err[AWQ_ERR_LEN];
    const int V = m->cfg.vocab;
    be cpu, gpu;
    int max_ctx = 0;
    if (nseq > FWD_MAXSEQ) {
        fprintf(stderr, "  fwd_compare: %d sequences, at most %d\n", nseq, FWD_MAXSEQ);
        CHECK(0);
        return;
    }
    for (int i = 0; i < nseq; i++)
        if (plen[i] + steps + 1 > max_ctx) max_ctx = plen[i] + steps + 1;
    if (be_open(&cpu, &eng_cpu_backend, m, max_ctx, nseq, 0) || be_open(&gpu, &eng_cuda_backend, m, max_ctx, nseq, 0)) {
        CHECK(0);
        return;
    }
    int slc[FWD_MAXSEQ], slg[FWD_MAXSEQ], pos[FWD_MAXSEQ], nt[FWD_MAXSEQ];
    int32_t amc[FWD_MAXSEQ], amg[FWD_MAXSEQ];
    for (int i = 0; i < nseq; i++) {
        CHECK_EQ(cpu.ops->slot_alloc(err, cpu.st, &slc[i]), 0);
        CHECK_EQ(gpu.ops->slot_alloc(err, gpu.st, &slg[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < nseq; i++) total += plen[i];
    int32_t *toks = malloc((size_t)total * sizeof(int32_t));
    for (int i = 0; i < total; i++) toks[i] = (int32_t)(rnd() % (uint32_t)V);
    float *lc = malloc((size_t)nseq * V * sizeof(float)), *lg = malloc((size_t)nseq * V * sizeof(float));
    double worst = 0;
    int id_mismatch = 0;
    if (chunked_prompt) {
        /* the prompt in two pieces: the second sees the first's KV from an earlier call */
        int off = 0;
        for (int i = 0; i < nseq; i++) {
            int a = plen[i] / 2, bq = plen[i] - a;
            int p0 = 0;
            eng_batch b1 = {1, &slc[i], &p0, &a, toks + off, NULL, NULL, NULL, NULL};
            CHECK_EQ(cpu.ops->forward(err, cpu.st, &b1), 0);
            b1.slot = &slg[i];
            CHECK_EQ(gpu.ops->forward(err, gpu.st, &b1), 0);
            eng_batch b2 = {1, &slc[i], &a, &bq, toks + off + a, lc + (size_t)i * V, NULL, NULL, NULL};
            CHECK_EQ(cpu.ops->forward(err, cpu.st, &b2), 0);
            b2.slot = &slg[i];
            b2.logits = lg + (size_t)i * V;
            CHECK_EQ(gpu.ops->forward(err, gpu.st, &b2), 0);
            off += plen[i];
        }
    } else {
        for (int i = 0; i < nseq; i++) {
            pos[i] = 0;
            nt[i] = plen[i];
        }
        eng_batch bc = {nseq, slc, pos, nt, toks, lc, amc, NULL, NULL};
        eng_batch bg = {nseq, slg, pos, nt, toks, lg, amg, NULL, NULL};
        CHECK_EQ(cpu.ops->forward(err, cpu.st, &bc), 0);
        int rc = gpu.ops->forward(err, gpu.st, &bg);
        CHECK_EQ(rc, 0);
        if (rc) fprintf(stderr, "  gpu forward: %s\n", err);
    }
    double e = rel_err(lg, lc, (size_t)nseq * V);
    if (e > worst) worst = e;
    for (int i = 0; i < nseq; i++) {
        int a = 0, g = 0;
        for (int v = 1; v < V; v++) {
            if (lc[(size_t)i * V + v] > lc[(size_t)i * V + a]) a = v;
            if (lg[(size_t)i * V + v] > lg[(size_t)i * V + g]) g = v;
        }
        amc[i] = a;
        amg[i] = g;
        if (a != g && top2_gap(lc + (size_t)i * V, V) > GAP_TOL) id_mismatch++;
    }
    /* greedy decode: the CPU follows its own ids, the GPU is fed the same ids so the two stay
     * comparable; the GPU returns only argmax (no logits) on every other step */
    for (int s = 0; s < steps; s++) {
        int32_t next[FWD_MAXSEQ];
        for (int i = 0; i < nseq; i++) {
            pos[i] = plen[i] + s;
            nt[i] = 1;
            next[i] = amc[i];
        }
        eng_batch bc = {nseq, slc, pos, nt, next, lc, amc, NULL, NULL};
        eng_batch bg = {nseq, slg, pos, nt, next, (s & 1) ? NULL : lg, amg, NULL, NULL};
        CHECK_EQ(cpu.ops->forward(err, cpu.st, &bc), 0);
        int rc = gpu.ops->forward(err, gpu.st, &bg);
        CHECK_EQ(rc, 0);
        if (rc) {
            fprintf(stderr, "  gpu decode: %s\n", err);
            break;
        }
        if (!(s & 1)) {
            e = rel_err(lg, lc, (size_t)nseq * V);
            if (e > worst) worst = e;
        }
        for (int i = 0; i < nseq; i++)
            if (amc[i] != amg[i] && top2_gap(lc + (size_t)i * V, V) > GAP_TOL) id_mismatch++;
    }
    fprintf(stderr, "  worst logits rel err %.2e, id mismatches beyond a %.0e margin: %d\n", worst, GAP_TOL,
            id_mismatch);
    CHECK(worst <= FWD_TOL);
    CHECK_EQ(id_mismatch, 0);
    size_t wb = 0, kb = 0;
    gpu.ops->memory(gpu.st, &wb, &kb);
    CHECK(wb > 0 && kb > 0);
    free(toks);
    free(lc);
    free(lg);
    cpu.ops->destroy(cpu.st);
    gpu.ops->destroy(gpu.st);
}

static void test_forward(void) {
    synth a, b, c;
    synth_make(&a, 256, 512, 2, 4, 2, 1000, 128, 0, false);  /* hd 64, GQA 2 */
    int p1[1] = {37};
    fwd_compare("cuda-4.1", "one sequence: prefill logits and greedy decode match the CPU", &a.m, 1, p1, 12, false);
    int p3[3] = {5, 70, 19};
    fwd_compare("cuda-4.2", "three sequences of different lengths batched together", &a.m, 3, p3, 6, false);
    fwd_compare("cuda-4.3", "a prompt fed in two calls reuses the cached KV", &a.m, 2, p3, 3, true);
    synth_make(&b, 512, 1024, 2, 4, 1, 515 * 8, 64, 8, true); /* hd 128, GQA 4, window 8, tied */
    int p2[2] = {30, 3};
    fwd_compare("cuda-4.4", "sliding window, tied embeddings, group 64, hd 128", &b.m, 2, p2, 20, false);
    synth_make(&c, 64, 128, 2, 4, 2, 300, 32, 0, false); /* hd 16 (awq-mkmodel's tiny preset) */
    int p4[2] = {300 / 7, 9};
    fwd_compare("cuda-4.5", "head_dim 16, group 32", &c.m, 2, p4, 5, false);
    synth_free(&a);
    synth_free(&b);
    synth_free(&c);
}

/* The large-step paths (dense: dequant + cuBLAS; prefill attention: the flash kernel for hd 64
 * and 128, the cuBLAS path for other head sizes) forced on small models through the backend's
 * knobs, read at create: every step of >= dense_min tokens (decode graphs too at 1), query runs
 * of >= att_min, att_qb queries per block on the cuBLAS path so long prompts take several
 * blocks (window and GQA masks across block edges; the flash kernel's blocks are 64). */
static void fwd_compare_env(const char *id, const char *what, const eng_model *m, int nseq, const int *plen,
                            int steps, bool chunked, const char *dense_min, const char *att_min, const char *att_qb) {
    if (dense_min) setenv("AWQ_CUDA_DENSE_MIN", dense_min, 1);
    if (att_min) setenv("AWQ_CUDA_ATT_MIN", att_min, 1);
    if (att_qb) setenv("AWQ_CUDA_ATT_QB", att_qb, 1);
    fwd_compare(id, what, m, nseq, plen, steps, chunked);
    unsetenv("AWQ_CUDA_DENSE_MIN");
    unsetenv("AWQ_CUDA_ATT_MIN");
    unsetenv("AWQ_CUDA_ATT_QB");
}

static void test_dense_paths(void) {
    synth a, b, c;
    synth_make(&a, 256, 512, 2, 4, 2, 1000, 128, 0, false);  /* hd 64, GQA 2 */
    synth_make(&b, 512, 1024, 2, 4, 1, 515 * 8, 64, 8, true); /* hd 128, GQA 4, window 8, tied */
    synth_make(&c, 64, 128, 2, 4, 2, 300, 32, 0, false);     /* hd 16, group 32 */
    int p1[1] = {37}, p3[3] = {5, 70, 19}, p2[2] = {30, 3}, p4[2] = {43, 9};
    fwd_compare_env("cuda-7.1", "dense linears everywhere (decode graphs too), flash prefill attention from 8 queries",
                    &a.m, 1, p1, 8, false, "1", "8", "16");
    fwd_compare_env("cuda-7.2", "three sequences: long runs on the prefill kernel, a short one on flash-decoding", &a.m,
                    3, p3, 4, false, "1", "16", "16");
    fwd_compare_env("cuda-7.3", "a prompt in two calls: the second call's queries see the cached prefix", &a.m, 2, p3,
                    3, true, "1", "8", "16");
    fwd_compare_env("cuda-7.4", "sliding window 8 and GQA 4 on the flash prefill kernel, hd 128, group 64", &b.m, 2, p2,
                    6, false, "1", "8", "16");
    fwd_compare_env("cuda-7.5", "head_dim 16, group 32 (padded k) on the dense path, cuBLAS attention in blocks of 16",
                    &c.m, 2, p4, 4, false, "1", "8", "16");
    /* default thresholds: a long prompt runs dense + flash prefill attention in one pass, one
     * over CU_MAX_TOK (2048) splits into two chunks, the second reading the first's keys */
    int pl[1] = {300}, pll[1] = {2100};
    fwd_compare_env("cuda-7.6", "default thresholds: a 300-token prompt", &a.m, 1, pl, 3, false, NULL, NULL, NULL);
    if (!h_env("AWQ_TEST_QUICK")) { /* too slow under compute-sanitizer */
        fwd_compare_env("cuda-7.7", "a 2100-token prompt over two chunks, window 8", &b.m, 1, pll, 2, false, NULL,
                        "32", NULL);
        fwd_compare_env("cuda-7.8", "a 2100-token prompt over two chunks, full causal", &a.m, 1, pll, 2, false, NULL,
                        "32", NULL);
    }

    /* prefill_fp16_weights: the dense path reads the load-time fp16 copies (no dequant per
     * step), decode still the 4-bit kernels; memory() counts the copies */
    g_fp16w = true;
    fwd_compare_env("cuda-7.11", "fp16 weight copies: dense linears everywhere, hd 64", &a.m, 1, p1, 8, false, "1",
                    "8", "16");
    fwd_compare_env("cuda-7.12", "fp16 weight copies: head_dim 16, group 32 (padded k)", &c.m, 2, p4, 4, false, "1",
                    "8", "16");
    fwd_compare_env("cuda-7.13", "fp16 weight copies, default thresholds: a 300-token prompt then decode", &a.m, 1, pl,
                    3, false, NULL, NULL, NULL);
    CASE("cuda-7.14", "fp16 weight copies are counted in memory(): every linear's (out, kp) halves");
    {
        be g0, g1;
        g_fp16w = false;
        int r0 = be_open(&g0, &eng_cuda_backend, &a.m, 256, 2, (size_t)1 << 24);
        g_fp16w = true;
        int r1 = be_open(&g1, &eng_cuda_backend, &a.m, 256, 2, (size_t)1 << 24);
        CHECK_EQ(r0, 0);
        CHECK_EQ(r1, 0);
        if (!r0 && !r1) {
            size_t w0 = 0, w1 = 0, k0 = 0, k1 = 0;
            g0.ops->memory(g0.st, &w0, &k0);
            g1.ops->memory(g1.st, &w1, &k1);
            /* per layer: qkv (hidden + 2 kv) x 256, o 256 x 256, gate|up 1024 x 256, down 256 x 512 */
            const eng_config *cf = &a.m.cfg;
            const size_t kvd = (size_t)cf->kv_heads * cf->head_dim;
            const size_t want = (size_t)cf->layers * 2 *
                                (((size_t)cf->hidden + 2 * kvd) * cf->hidden + (size_t)cf->hidden * cf->hidden +
                                 2 * (size_t)cf->intermediate * cf->hidden + (size_t)cf->hidden * cf->intermediate);
            if (w1 - w0 != want) fprintf(stderr, "  weights %zu -> %zu: +%zu, want +%zu\n", w0, w1, w1 - w0, want);
            CHECK_EQ(w1 - w0, want);
        }
        if (!r0) g0.ops->destroy(g0.st);
        if (!r1) g1.ops->destroy(g1.st);
    }
    g_fp16w = false;

    CASE("cuda-7.9", "the scratch is counted in memory() and reported by cu_scratch_bytes");
    be g;
    CHECK_EQ(be_open(&g, &eng_cuda_backend, &a.m, 256, 2, 0), 0);
    if (g.st) {
        size_t wb = 0, kb = 0, sb = cu_scratch_bytes(g.st);
        g.ops->memory(g.st, &wb, &kb);
        /* at least the largest linear (gate|up: 1024 x 256) as fp16 */
        CHECK(sb >= (size_t)1024 * 256 * 2);
        CHECK(wb > sb);
        g.ops->destroy(g.st);
    }
    CHECK_EQ(cu_scratch_bytes(NULL), 0);

    CASE("cuda-7.10", "cu_qlin_matmul runs the dense kernel when asked (scratch made on first use)");
    {
        char err[AWQ_ERR_LEN];
        rand_lin r;
        cu_qlin *q = NULL;
        rand_lin_make(&r, 128, 8, 128);
        CHECK_EQ(cu_qlin_create(err, 0, &r.l, &q), 0);
        float x[2 * 128], y[2 * 8];
        for (int i = 0; i < 2 * 128; i++) x[i] = rndf(-1.0f, 1.0f);
        CHECK_EQ(cu_qlin_matmul(err, q, x, 2, y, CU_QMM_DENSE), 0);
        CHECK(qmm_rel_err(&r.l, x, 2, y) <= 3e-3);
        cu_qlin_free(q);
        rand_lin_free(&r);
    }
    synth_free(&a);
    synth_free(&b);
    synth_free(&c);
}

/* ------------------------------------------------------------------ prefill attention ---- */
/* The flash-attention prefill kernel (attn_fa.cu) and the cuBLAS path it replaces, alone
 * through cu_attn_probe (a paged cache of shuffled blocks, NaN in every row no position owns)
 * against a plain double-precision loop, then inside the whole forward against the CPU. */
typedef struct attn_shape {
    int hd, heads, kv_heads, n, pos0, window;
} attn_shape;

/* Largest |gpu - ref| over out (n, heads*hd) with ref the causal (window) softmax attention of
 * q over k, v (pos0 + n, kv_heads, hd) fp16 bits; where it is names query, head, dim and both
 * values. A non-finite output counts as 1e30. */
static double attn_ref_err(const attn_shape *sh, const float *q, const uint16_t *k, const uint16_t *v,
                           const float *out, char *where, size_t where_len) {
    const int hd = sh->hd, qd = sh->heads * hd, G = sh->heads / sh->kv_heads;
    const int npos = sh->pos0 + sh->n;
    double *w = malloc((size_t)npos * sizeof(double)), worst = -1;
    for (int i = 0; i < sh->n; i++) {
        const int p = sh->pos0 + i, lo = sh->window > 0 && p - sh->window + 1 > 0 ? p - sh->window + 1 : 0;
        for (int h = 0; h < sh->heads; h++) {
            const float *qv = q + (size_t)i * qd + (size_t)h * hd;
            const int kh = h / G;
            double mx = -INFINITY, sum = 0;
            for (int j = lo; j <= p; j++) {
                double s = 0;
                const uint16_t *kr = k + ((size_t)j * sh->kv_heads + kh) * hd;
                for (int d = 0; d < hd; d++) s += qv[d] * (double)awq_f16_to_f32(kr[d]);
                w[j] = s / sqrt((double)hd);
                if (w[j] > mx) mx = w[j];
            }
            for (int j = lo; j <= p; j++) sum += (w[j] = exp(w[j] - mx));
            for (int d = 0; d < hd; d++) {
                double ref = 0;
                for (int j = lo; j <= p; j++) ref += w[j] * awq_f16_to_f32(v[((size_t)j * sh->kv_heads + kh) * hd + d]);
                ref /= sum;
                const float got = out[(size_t)i * qd + (size_t)h * hd + d];
                const double e = isfinite(got) ? fabs(got - ref) : 1e30;
                if (e > worst) {
                    worst = e;
                    snprintf(where, where_len, "query %d (position %d) head %d dim %d: got %g, want %g", i, p, h, d,
                             (double)got, ref);
                }
            }
        }
    }
    free(w);
    return worst;
}

#define ATTN_TOL 4e-3 /* fp16 Q, P and output against double: measured (emulated) <= 7e-4 */

static void attn_probe_case(const char *id, const attn_shape *sh, int kernel) {
    char what[160], err[AWQ_ERR_LEN], where[160] = "";
    snprintf(what, sizeof what, "%s prefill attention: hd %d, %d heads over %d KV heads, %d queries at %d, window %d",
             kernel == 0 ? "flash" : "cuBLAS", sh->hd, sh->heads, sh->kv_heads, sh->n, sh->pos0, sh->window);
    CASE(id, what);
    const int qd = sh->heads * sh->hd, npos = sh->pos0 + sh->n;
    const size_t kvn = (size_t)npos * sh->kv_heads * sh->hd;
    float *q = malloc((size_t)sh->n * qd * sizeof(float)), *out = malloc((size_t)sh->n * qd * sizeof(float));
    uint16_t *k = malloc(kvn * 2), *v = malloc(kvn * 2);
    /* |q| up to 4: scores spread over a few units, so one key too many or too few moves the output */
    for (size_t i = 0; i < (size_t)sh->n * qd; i++) q[i] = rndf(-4.0f, 4.0f);
    for (size_t i = 0; i < kvn; i++) {
        k[i] = awq_f32_to_f16(rndf(-1.0f, 1.0f));
        v[i] = awq_f32_to_f16(rndf(-1.0f, 1.0f));
    }
    int rc = cu_attn_probe(err, 0, kernel, sh->heads, sh->kv_heads, sh->hd, sh->n, sh->pos0, sh->window, q, k, v, out,
                           0, NULL);
    CHECK_EQ(rc, 0);
    if (rc) {
        fprintf(stderr, "  %s\n", err);
    } else {
        double e = attn_ref_err(sh, q, k, v, out, where, sizeof where);
        if (e > ATTN_TOL) fprintf(stderr, "  max abs err %.3g at %s\n", e, where);
        CHECK(e <= ATTN_TOL);
    }
    free(q);
    free(out);
    free(k);
    free(v);
}

/* The forward against the CPU with the prefill attention from 8 queries on; fa false:
 * AWQ_CUDA_ATTN_FA=0 (the cuBLAS path, blocks of 16 queries). */
static void fwd_compare_fa(const char *id, const char *what, const eng_model *m, int nseq, const int *plen, int steps,
                           bool chunked, bool fa) {
    if (!fa) setenv("AWQ_CUDA_ATTN_FA", "0", 1);
    fwd_compare_env(id, what, m, nseq, plen, steps, chunked, NULL, "8", fa ? NULL : "16");
    unsetenv("AWQ_CUDA_ATTN_FA");
}

static void test_attn_prefill(void) {
    const bool quick = h_env("AWQ_TEST_QUICK") != NULL;
    /* query counts off multiples of 64 (partial last block, one block of 1 query), a cached
     * prefix (pos0 > 0, not page-aligned), windows inside one key tile and wider than one,
     * GQA 1/2/3/4, hd 64 and 128 */
    static const attn_shape shapes[] = {
        {64, 4, 2, 130, 0, 0},   {128, 4, 1, 70, 77, 0},  {64, 3, 3, 129, 5, 8},   {64, 6, 2, 100, 0, 100},
        {128, 2, 2, 1, 300, 0},  {128, 2, 1, 150, 40, 70}, {128, 8, 2, 65, 0, 0},  {64, 4, 4, 64, 64, 0},
        {128, 4, 2, 300, 200, 200},
    };
    const size_t nshapes = quick ? 3 : sizeof shapes / sizeof shapes[0];
    char id[32];
    for (size_t i = 0; i < nshapes; i++) {
        snprintf(id, sizeof id, "cuda-9.%zu", i + 1);
        attn_probe_case(id, &shapes[i], 0);
    }
    /* the flash kernel's build with two m16 row tiles per warp (128-query blocks; by default only
     * from CU_FA_MR2_MIN queries) forced on the same shapes (AWQ_CUDA_FA_MR, read per launch) */
    setenv("AWQ_CUDA_FA_MR", "2", 1);
    for (size_t i = 0; i < nshapes; i++) {
        snprintf(id, sizeof id, "cuda-9.%zu", 100 + i + 1);
        attn_probe_case(id, &shapes[i], 0);
    }
    unsetenv("AWQ_CUDA_FA_MR");
    /* the cuBLAS path on the same shapes: the fallback (other head sizes, AWQ_CUDA_ATTN_FA=0) */
    for (size_t i = 0; i < nshapes; i++) {
        snprintf(id, sizeof id, "cuda-9.%zu", 20 + i + 1);
        attn_probe_case(id, &shapes[i], 1);
    }
    {
        static const attn_shape hd32 = {32, 4, 2, 40, 3, 0};
        attn_probe_case("cuda-9.40", &hd32, 1);
    }

    CASE("cuda-9.41", "the flash kernel refuses other head sizes and bad shapes, naming them");
    {
        char err[AWQ_ERR_LEN];
        float q[96 * 2] = {0}, out[96 * 2];
        uint16_t kv[96 * 2] = {0};
        CHECK_EQ(cu_attn_probe(err, 0, 0, 2, 1, 96, 1, 0, 0, q, kv, kv, out, 0, NULL), AWQ_EUNSUPPORTED);
        CHECK_CONTAINS(err, "head_dim 96");
        CHECK_EQ(cu_attn_probe(err, 0, 0, 3, 2, 64, 1, 0, 0, q, kv, kv, out, 0, NULL), AWQ_EINVAL);
        CHECK_CONTAINS(err, "3 heads over 2 KV heads");
        CHECK_EQ(cu_attn_probe(err, 0, 2, 2, 1, 64, 1, 0, 0, q, kv, kv, out, 0, NULL), AWQ_EINVAL);
        CHECK_CONTAINS(err, "kernel 2");
    }

    synth a, d, b, e, f;
    memset(&d, 0, sizeof d);
    memset(&e, 0, sizeof e);
    memset(&f, 0, sizeof f);
    synth_make(&a, 256, 512, 2, 4, 2, 1000, 128, 0, false);   /* hd 64, GQA 2 */
    synth_make(&b, 512, 1024, 2, 4, 1, 515 * 8, 64, 8, true); /* hd 128, GQA 4, window 8, tied */
    if (!quick) {
        synth_make(&d, 256, 512, 2, 4, 4, 1000, 128, 0, false);    /* hd 64, GQA 1 */
        synth_make(&e, 512, 1024, 2, 4, 2, 1000, 128, 100, false); /* hd 128, GQA 2, window 100 */
        synth_make(&f, 128, 256, 2, 4, 2, 500, 128, 0, false);     /* hd 32: not built, cuBLAS path */
    }
    int p3[3] = {37, 130, 70}, p2[2] = {150, 77}, p1[1] = {200}, pw[2] = {130, 20}, pl[1] = {300}, pf[1] = {100};
    for (int fa = 1; fa >= 0; fa--) {
        const int base = fa ? 50 : 70;
        const char *tag = fa ? "flash" : "AWQ_CUDA_ATTN_FA=0";
        char what[160];
#define FA_CASE(n, ...)                                        \
    do {                                                       \
        snprintf(id, sizeof id, "cuda-9.%d", base + (n));     \
        snprintf(what, sizeof what, __VA_ARGS__);              \
    } while (0)
        FA_CASE(1, "%s: three prompts of 37, 130 and 70 tokens batched, hd 64, GQA 2", tag);
        fwd_compare_fa(id, what, &a.m, 3, p3, 3, false, fa);
        FA_CASE(2, "%s: sliding window 8, GQA 4, hd 128, prompts of 130 and 20", tag);
        fwd_compare_fa(id, what, &b.m, 2, pw, 3, false, fa);
        if (quick) continue;
        FA_CASE(3, "%s: prompts of 150 and 77 in two calls each (cached prefix, pos0 > 0)", tag);
        fwd_compare_fa(id, what, &a.m, 2, p2, 3, true, fa);
        FA_CASE(4, "%s: GQA 1 (MHA), hd 64, a 200-token prompt", tag);
        fwd_compare_fa(id, what, &d.m, 1, p1, 3, false, fa);
        FA_CASE(5, "%s: window 100 (wider than a key tile), hd 128, GQA 2, 300 tokens in two calls", tag);
        fwd_compare_fa(id, what, &e.m, 1, pl, 3, true, fa);
        FA_CASE(6, "%s: window 8, hd 128, a prompt in two calls", tag);
        fwd_compare_fa(id, what, &b.m, 2, pw, 3, true, fa);
        FA_CASE(7, "%s: head_dim 32 (no flash build: the cuBLAS path either way)", tag);
        fwd_compare_fa(id, what, &f.m, 1, pf, 3, false, fa);
#undef FA_CASE
    }
    synth_free(&a);
    synth_free(&b);
    if (!quick) {
        synth_free(&d);
        synth_free(&e);
        synth_free(&f);
    }
}

/* ------------------------------------------------------------------ decode attention ---- */
/* The fused decode attention (attn_dec.cu: RoPE, KV write, attention and the split merge in one
 * kernel per layer) inside the whole forward against the CPU (cuda-7.8's decode steps at 2100
 * keys also reach its most splits, 64). Every decode step of fwd_compare
 * runs it (graphs, or AWQ_CUDA_NO_GRAPHS=1: the chunked path with one token per sequence);
 * prompts of more than one token keep the separate kernels. Contexts straddle the key tiles
 * (128 keys for hd 16/32/64, 64 for hd 96/128, 32 for hd 256) and the splits; a wrong zeroing of
 * the qkv / gate|up rows or a counter left non-zero shows up as wrong logits on the next step.
 * Knobs (read at create): fused 0 = AWQ_CUDA_ATTN_FUSED=0 (the old kernels, kept tested);
 * splits > 0 = AWQ_CUDA_ATTN_SPLITS (cap per token: 1 makes one block stream every tile);
 * nographs = AWQ_CUDA_NO_GRAPHS=1; dense_min as AWQ_CUDA_DENSE_MIN (NULL: default). */
static void fwd_compare_dec(const char *id, const char *what, const eng_model *m, int nseq, const int *plen, int steps,
                            int fused, int splits, bool nographs, const char *dense_min) {
    char sp[16];
    if (!fused) setenv("AWQ_CUDA_ATTN_FUSED", "0", 1);
    if (splits > 0) {
        snprintf(sp, sizeof sp, "%d", splits);
        setenv("AWQ_CUDA_ATTN_SPLITS", sp, 1);
    }
    if (nographs) setenv("AWQ_CUDA_NO_GRAPHS", "1", 1);
    fwd_compare_env(id, what, m, nseq, plen, steps, false, dense_min, NULL, NULL);
    unsetenv("AWQ_CUDA_ATTN_FUSED");
    unsetenv("AWQ_CUDA_ATTN_SPLITS");
    unsetenv("AWQ_CUDA_NO_GRAPHS");
}

static void test_attn_decode(void) {
    const bool quick = h_env("AWQ_TEST_QUICK") != NULL;
    synth a, d, b, w, c, e, f, h;
    synth_make(&a, 256, 512, 2, 4, 2, 1000, 128, 0, false);  /* hd 64, GQA 2: tile 128 */
    synth_make(&d, 512, 1024, 2, 4, 2, 1000, 128, 0, false); /* hd 128, GQA 2: tile 64 */
    /* batched prompts whose decode contexts cross tile edges (16, 64, 128) and leave short
     * sequences with empty splits next to long ones */
    int pa[8] = {1, 15, 16, 63, 126, 127, 128, 200}, pd[8] = {1, 15, 16, 17, 62, 63, 64, 65};
    int pm[2] = {300, 40};
    fwd_compare_dec("cuda-8.1", "fused decode attention: 8 sequences of 1..200 tokens, hd 64 (tile edges 127-130)",
                    &a.m, 8, pa, 3, 1, 0, false, NULL);
    fwd_compare_dec("cuda-8.2", "the same with AWQ_CUDA_ATTN_FUSED=0 (rope_kv + flash-decoding + combine)", &a.m, 8, pa,
                    3, 0, 0, false, NULL);
    fwd_compare_dec("cuda-8.3", "at most 2 splits: 300 and 40 keys stream through several hd-128 tiles each, merged",
                    &d.m, 2, pm, 3, 1, 2, false, NULL);
    if (quick) { /* compute-sanitizer: the three above */
        synth_free(&a);
        synth_free(&d);
        return;
    }
    synth_make(&b, 512, 1024, 2, 4, 1, 515 * 8, 64, 8, true);  /* hd 128, GQA 4, window 8 (inside a tile) */
    synth_make(&w, 256, 512, 2, 4, 1, 1000, 128, 150, false);  /* hd 64, GQA 4, window 150 (over a tile) */
    synth_make(&c, 64, 128, 2, 4, 2, 300, 32, 0, false);       /* hd 16, group 32 */
    synth_make(&e, 256, 512, 2, 8, 1, 1000, 128, 0, false);    /* hd 32, GQA 8 (the most per KV head) */
    synth_make(&f, 384, 768, 2, 4, 4, 1000, 128, 0, false);    /* hd 96, GQA 1 */
    synth_make(&h, 512, 1024, 2, 2, 1, 1000, 128, 0, false);   /* hd 256, GQA 2: tile 32 */
    int p1[3] = {1, 1, 1}, pl[3] = {1000, 17, 64}, pw[3] = {300, 100, 5}, pb[3] = {30, 3, 64};
    int pc[3] = {1, 16, 33}, pe[2] = {40, 1}, pf[3] = {130, 63, 2}, ph[3] = {100, 31, 1};
    int pn[3] = {17, 64, 1};
    fwd_compare_dec("cuda-8.4", "hd 128, 8 sequences of 1..65 tokens (tile edges 63-67)", &d.m, 8, pd, 3, 1, 0, false,
                    NULL);
    fwd_compare_dec("cuda-8.5", "one block per (token, KV head) streams up to 4 hd-128 tiles (AWQ_CUDA_ATTN_SPLITS=1)",
                    &d.m, 8, pa, 3, 1, 1, false, NULL);
    fwd_compare_dec("cuda-8.6", "three one-token prompts: the prompt step itself is fused (position 0)", &d.m, 3, p1, 3,
                    1, 0, false, NULL);
    fwd_compare_dec("cuda-8.7", "1000 keys over the default splits (31 of 32 keys) next to 1- and 2-split sequences",
                    &d.m, 3, pl, 3, 1, 0, false, NULL);
    fwd_compare_dec("cuda-8.8", "1000 keys in 3 splits of 5-6 tiles each", &d.m, 3, pl, 2, 1, 3, false, NULL);
    fwd_compare_dec("cuda-8.9", "sliding window 150 (wider than a 128-key tile), GQA 4", &w.m, 3, pw, 3, 1, 0, false,
                    NULL);
    fwd_compare_dec("cuda-8.10", "sliding window 150 in one block (two tiles)", &w.m, 3, pw, 3, 1, 1, false, NULL);
    fwd_compare_dec("cuda-8.11", "sliding window 8 (inside a tile), GQA 4, hd 128, 20 steps", &b.m, 3, pb, 20, 1, 0,
                    false, NULL);
    fwd_compare_dec("cuda-8.12", "hd 16 (tile 128, 2 lanes per key)", &c.m, 3, pc, 4, 1, 0, false, NULL);
    fwd_compare_dec("cuda-8.13", "hd 16 in one block", &c.m, 3, pc, 4, 1, 1, false, NULL);
    fwd_compare_dec("cuda-8.14", "hd 32, 8 query heads per KV head", &e.m, 2, pe, 4, 1, 0, false, NULL);
    fwd_compare_dec("cuda-8.15", "hd 96 (3 chunks per lane, idle P.V threads), GQA 1", &f.m, 3, pf, 3, 1, 0, false,
                    NULL);
    fwd_compare_dec("cuda-8.16", "hd 256 (tile 32, 4 tiles in one block)", &h.m, 3, ph, 3, 1, 1, false, NULL);
    fwd_compare_dec("cuda-8.17", "hd 256 over the default splits", &h.m, 3, ph, 3, 1, 0, false, NULL);
    fwd_compare_dec("cuda-8.18", "decode without graphs: chunks of one token per sequence take the fused kernel", &a.m,
                    3, pn, 4, 1, 0, true, NULL);
    fwd_compare_dec("cuda-8.19", "dense linears (AWQ_CUDA_DENSE_MIN=1): fused attention without the gate|up clear",
                    &a.m, 3, pn, 4, 1, 0, false, "1");
    fwd_compare_dec("cuda-8.20", "AWQ_CUDA_ATTN_FUSED=0: hd 128, 1000 keys", &d.m, 3, pl, 2, 0, 0, false, NULL);
    fwd_compare_dec("cuda-8.21", "AWQ_CUDA_ATTN_FUSED=0: sliding window 150", &w.m, 3, pw, 3, 0, 0, false, NULL);
    fwd_compare_dec("cuda-8.22", "AWQ_CUDA_ATTN_FUSED=0 without graphs", &a.m, 3, pn, 4, 0, 0, true, NULL);
    setenv("AWQ_CUDA_ATTN_KEYS_MIN", "8", 1); /* splits of 8 keys: many partials merged per token */
    fwd_compare_dec("cuda-8.24", "AWQ_CUDA_ATTN_KEYS_MIN=8: 1000 / 17 / 64 keys in splits of >= 8 keys", &d.m, 3, pl, 2,
                    1, 0, false, NULL);
    fwd_compare_dec("cuda-8.25", "AWQ_CUDA_ATTN_KEYS_MIN=8, hd 64: short splits in 128-key tiles", &a.m, 8, pa, 3, 1, 0,
                    false, NULL);
    unsetenv("AWQ_CUDA_ATTN_KEYS_MIN");
    setenv("AWQ_CUDA_ATTN_PDL", "0", 1); /* the fused kernel launched without PDL (its A/B baseline) */
    fwd_compare_dec("cuda-8.23", "AWQ_CUDA_ATTN_PDL=0: the fused kernel as a plain launch, 1000 keys", &d.m, 3, pl, 2, 1,
                    0, false, NULL);
    unsetenv("AWQ_CUDA_ATTN_PDL");
    synth_free(&a);
    synth_free(&d);
    synth_free(&b);
    synth_free(&w);
    synth_free(&c);
    synth_free(&e);
    synth_free(&f);
    synth_free(&h);
}

/* ------------------------------------------------------------------ RoPE + KV write ---- */
/* cua_rope_kv alone through cu_rope_probe: q roped (fp32), k roped and v (fp16) in each
 * token's rows of a shuffled paged cache that starts all NaN, nothing written to any other
 * row, the qkv rows below CU_QMM_SKINNY_MAX left all zeros (the vector kernel leaves the others
 * as they were) and rows [0, T) of the clear buffer zeroed with the row
 * past them untouched; against a plain loop over the backend's RoPE table. The vector kernel
 * on every head size the backend builds (hd/8 units per head: 2 .. 32, 12 for hd 96), tokens
 * in runs of consecutive positions across 16-position pages and decode-like single tokens,
 * clear rows of partial and several clear blocks; the scalar kernel on hd 20. */
typedef struct rope_shape {
    int heads, kv_heads, hd, nseq, T, pos0, clear_len, reps;
} rope_shape;

static void rope_table_row(int hd, int p, float *cs, float *sn) {
    for (int i = 0; i < hd / 2; i++) { /* backend.cu's table: the same host float ops */
        float inv = 1.0f / powf(10000.0f, (float)(2 * i) / (float)hd);
        float a = (float)p * inv;
        cs[i] = cosf(a);
        sn[i] = sinf(a);
    }
}

static void rope_case(const char *id, const rope_shape *sh) {
    char what[200], err[AWQ_ERR_LEN];
    snprintf(what, sizeof what, "RoPE + KV write: hd %d, %d heads over %d KV heads, %d tokens of %d sequences from "
             "position %d, clear rows of %d%s", sh->hd, sh->heads, sh->kv_heads, sh->T, sh->nseq, sh->pos0,
             sh->clear_len, sh->hd % 8 ? " (scalar kernel)" : "");
    CASE(id, what);
    const int hd = sh->hd, hh = hd / 2, T = sh->T, qd = sh->heads * hd, kvd = sh->kv_heads * hd, W = qd + 2 * kvd;
    int *slot = malloc((size_t)T * sizeof(int)), *pos = malloc((size_t)T * sizeof(int));
    /* sequence s takes tokens [s T / nseq, (s + 1) T / nseq) at consecutive positions from
     * pos0 + 7 s (so runs start at different page offsets) */
    for (int s = 0, t = 0; s < sh->nseq; s++)
        for (int p = sh->pos0 + 7 * s; t < (s + 1) * T / sh->nseq; t++, p++) {
            slot[t] = s;
            pos[t] = p;
        }
    float *qkv = malloc((size_t)T * W * sizeof(float)), *q = malloc((size_t)T * qd * sizeof(float));
    float *after = malloc((size_t)T * W * sizeof(float));
    float *clr = sh->clear_len ? malloc((size_t)(T + 1) * sh->clear_len * sizeof(float)) : NULL;
    uint16_t *k = malloc((size_t)T * kvd * 2), *v = malloc((size_t)T * kvd * 2);
    float *cs = malloc((size_t)hh * sizeof(float)), *sn = malloc((size_t)hh * sizeof(float));
    for (size_t i = 0; i < (size_t)T * W; i++) qkv[i] = rndf(-4.0f, 4.0f);
    long long stray = -1;
    double us = 0;
    int rc = cu_rope_probe(err, 0, sh->heads, sh->kv_heads, hd, 10000.0f, T, slot, pos, qkv, sh->clear_len, q, k, v,
                           after, clr, &stray, sh->reps, &us);
    CHECK_EQ(rc, 0);
    if (rc) {
        fprintf(stderr, "  %s\n", err);
        goto out;
    }
    int bad = 0;
    char where[200] = "";
    for (int t = 0; t < T; t++) {
        rope_table_row(hd, pos[t], cs, sn);
        const float *row = qkv + (size_t)t * W;
        for (int part = 0; part < 2; part++) { /* 0: q heads, 1: k heads */
            const int nh = part ? sh->kv_heads : sh->heads, off = part ? qd : 0;
            for (int h = 0; h < nh; h++)
                for (int i = 0; i < hh; i++) {
                    const float a = row[off + h * hd + i], b = row[off + h * hd + i + hh];
                    const float want[2] = {a * cs[i] - b * sn[i], b * cs[i] + a * sn[i]};
                    for (int e = 0; e < 2; e++) {
                        const int d = i + e * hh;
                        const float got = part ? awq_f16_to_f32(k[(size_t)t * kvd + h * hd + d])
                                               : q[(size_t)t * qd + h * hd + d];
                        /* fp32 q: FMA contraction only; fp16 k: one rounding (2^-11 relative) */
                        const float tol = part ? 1e-3f * fabsf(want[e]) + 1e-4f : 1e-4f * (fabsf(a) + fabsf(b)) + 1e-6f;
                        if (!(fabsf(got - want[e]) <= tol) && bad++ == 0)
                            snprintf(where, sizeof where, "token %d (slot %d, position %d) %s head %d dim %d: got %g, "
                                     "want %g", t, slot[t], pos[t], part ? "k" : "q", h, d, (double)got,
                                     (double)want[e]);
                    }
                }
        }
        for (int i = 0; i < kvd; i++) {
            const float want = awq_f16_to_f32(awq_f32_to_f16(row[qd + kvd + i]));
            const float got = awq_f16_to_f32(v[(size_t)t * kvd + i]);
            if (!(fabsf(got - want) <= 1e-3f * fabsf(want) + 1e-7f) && bad++ == 0) /* + one fp16 subnormal step */
                snprintf(where, sizeof where, "token %d (slot %d, position %d) v head %d dim %d: got %g, want %g", t,
                         slot[t], pos[t], i / hd, i % hd, (double)got, (double)want);
        }
    }
    if (bad) fprintf(stderr, "  %d wrong q/k/v values; first: %s\n", bad, where);
    CHECK_EQ(bad, 0);
    /* rows the decode GEMVs add into (below CU_QMM_SKINNY_MAX) zero, the rest as they were (the
     * vector kernel; the scalar one zeroes every row) */
    int nz = 0;
    for (size_t i = 0; i < (size_t)T * W; i++) {
        const bool keep = hd % 8 == 0 && i / W >= CU_QMM_SKINNY_MAX;
        if ((keep ? after[i] != qkv[i] : after[i] != 0.0f) && nz++ == 0)
            fprintf(stderr, "  qkv row %zu column %zu is %g after the call (want %g)\n", i / W, i % W, (double)after[i],
                    keep ? (double)qkv[i] : 0.0);
    }
    CHECK_EQ(nz, 0);
    if (stray) fprintf(stderr, "  %lld cache halves written outside the tokens' rows\n", stray);
    CHECK_EQ(stray, 0);
    if (clr) {
        int cb = 0;
        for (size_t i = 0; i < (size_t)(T + 1) * sh->clear_len; i++) {
            const size_t r = i / sh->clear_len;
            const bool ok = r < (size_t)T ? clr[i] == 0.0f : isnan(clr[i]);
            if (!ok && cb++ == 0)
                fprintf(stderr, "  clear row %zu (of %d cleared) column %zu is %g (want %s)\n", r, T,
                        i % sh->clear_len, (double)clr[i], r < (size_t)T ? "0" : "NaN, untouched");
        }
        CHECK_EQ(cb, 0);
    }
    if (sh->reps > 0) {
        /* bytes: qkv read (and zeroed below CU_QMM_SKINNY_MAX rows), q written fp32, k and v written
         * fp16, clear rows zeroed */
        const double bytes = (double)T * ((double)W * 4 + qd * 4 + kvd * 4 + (double)sh->clear_len * 4) +
                             (double)(T < CU_QMM_SKINNY_MAX ? T : CU_QMM_SKINNY_MAX) * W * 4;
        fprintf(stderr, "  %.2f us per call, %.1f MB moved: %.0f GB/s\n", us, bytes / 1e6, bytes / (us * 1e3));
    }
out:
    free(slot);
    free(pos);
    free(qkv);
    free(q);
    free(after);
    free(clr);
    free(k);
    free(v);
    free(cs);
    free(sn);
}

static void test_rope_kv(void) {
    const bool quick = h_env("AWQ_TEST_QUICK") != NULL;
    static const rope_shape shapes[] = {
        {32, 8, 128, 1, 1, 37, 0, 0},       /* shisa-7B, one decode token */
        {4, 2, 128, 3, 70, 5, 1000, 0},     /* three prompts across pages; clear: one partial block */
        {4, 2, 64, 64, 64, 100, 4100, 0},   /* 64 decode tokens; clear: 3 blocks, the last partial */
        {4, 2, 16, 2, 33, 0, 8, 0},         /* hd 16: two units per head */
        {8, 1, 32, 3, 20, 14, 0, 0},        /* hd 32, GQA 8 */
        {4, 4, 96, 5, 41, 250, 36, 0},      /* hd 96: 12 units per head (not a power of 2) */
        {2, 1, 256, 2, 19, 3, 0, 0},        /* hd 256 */
        {3, 1, 20, 2, 9, 11, 12, 0},        /* hd 20: the scalar kernel (and kernel_clear_rows) */
    };
    const size_t n = quick ? 4 : sizeof shapes / sizeof shapes[0];
    char id[32];
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof id, "cuda-10.%zu", i + 1);
        rope_case(id, &shapes[i]);
    }
    if (!quick) {
        /* the ncu shapes of shisa-7B, timed (printed, not checked): a 2048-token prefill and a
         * decode step of 64 streams with its gate|up clear (2 x 14336 floats a row) */
        static const rope_shape prefill = {32, 8, 128, 1, 2048, 0, 0, 50}, dec64 = {32, 8, 128, 64, 64, 128, 28672, 50};
        rope_case("cuda-10.20", &prefill);
        rope_case("cuda-10.21", &dec64);
    }

    CASE("cuda-10.30", "cu_rope_probe refuses bad shapes and a repeated (slot, position), naming them");
    {
        char err[AWQ_ERR_LEN];
        int sl[2] = {0, 0}, ps[2] = {4, 4};
        float qkv[2 * 48] = {0}, q[2 * 16], after[2 * 48]; /* 2 tokens of (1 + 2) x 16 */
        uint16_t k[2 * 16], v[2 * 16];
        long long stray = 0;
        CHECK_EQ(cu_rope_probe(err, 0, 1, 1, 7, 10000.0f, 1, sl, ps, qkv, 0, q, k, v, after, NULL, &stray, 0, NULL),
                 AWQ_EINVAL);
        CHECK_CONTAINS(err, "head_dim 7");
        CHECK_EQ(cu_rope_probe(err, 0, 1, 1, 16, 10000.0f, 1, sl, ps, qkv, 6, q, k, v, after, NULL, &stray, 0, NULL),
                 AWQ_EINVAL);
        CHECK_CONTAINS(err, "clear_len 6");
        CHECK_EQ(cu_rope_probe(err, 0, 1, 1, 16, 10000.0f, 2, sl, ps, qkv, 0, q, k, v, after, NULL, &stray, 0, NULL),
                 AWQ_EINVAL);
        CHECK_CONTAINS(err, "token 1 repeats slot 0 position 4");
    }
}

/* ------------------------------------------------------------------ batched decode ---- */
/* Decode steps of 9-64 streams against the CPU: the streamed GEMV's batched passes (sm_90;
 * the skinny kernel elsewhere), attention through kernel_rope_kv (with the gate|up clear
 * folded into its grid) and flash-decoding above CU_ATTN_FUSED_MAX (16) streams, the fused
 * decode attention below; with the RMSNorm pre-pass (AWQ_CUDA_RMS_PRE, read at create:
 * default 8 = steps of >= 8 tokens norm into fp16 before the qkv and gate|up GEMVs; 0 = fused
 * into the GEMVs' x load; 1 = every step) both ways. The prompts (one chunk of many short
 * sequences) run the dense path. */
static void fwd_compare_rms(const char *id, const char *what, const eng_model *m, int nseq, const int *plen, int steps,
                            const char *rms_pre, bool nographs) {
    if (rms_pre) setenv("AWQ_CUDA_RMS_PRE", rms_pre, 1);
    if (nographs) setenv("AWQ_CUDA_NO_GRAPHS", "1", 1);
    fwd_compare(id, what, m, nseq, plen, steps, false);
    unsetenv("AWQ_CUDA_RMS_PRE");
    unsetenv("AWQ_CUDA_NO_GRAPHS");
}
/* The same with the SwiGLU pre-pass of the down projection (AWQ_CUDA_SWIGLU_PRE, default 0 = off). */
static void fwd_compare_swiglu(const char *id, const char *what, const eng_model *m, int nseq, const int *plen,
                               int steps, const char *rms_pre, const char *swiglu_pre) {
    setenv("AWQ_CUDA_SWIGLU_PRE", swiglu_pre, 1);
    fwd_compare_rms(id, what, m, nseq, plen, steps, rms_pre, false);
    unsetenv("AWQ_CUDA_SWIGLU_PRE");
}

static void test_batched_decode(void) {
    const bool quick = h_env("AWQ_TEST_QUICK") != NULL;
    synth a, d;
    synth_make(&a, 256, 512, 2, 4, 2, 1000, 128, 0, false);  /* hd 64, GQA 2 */
    synth_make(&d, 512, 1024, 2, 4, 2, 1000, 128, 0, false); /* hd 128, GQA 2 */
    int pl[FWD_MAXSEQ];
    for (int i = 0; i < FWD_MAXSEQ; i++) pl[i] = 1 + (i * 37) % 61; /* 1..61 tokens */
    fwd_compare_rms("cuda-11.1", "40 streams: RMSNorm pre-pass (default threshold 8)", &a.m, 40, pl, 3, NULL, false);
    setenv("AWQ_CUDA_ROW_PDL", "0", 1); /* the row kernels as plain launches (their A/B baseline) */
    fwd_compare_rms("cuda-11.12", "40 streams: RMSNorm, RoPE and attention as plain launches (AWQ_CUDA_ROW_PDL=0)",
                    &a.m, 40, pl, 3, NULL, false);
    unsetenv("AWQ_CUDA_ROW_PDL");
    fwd_compare_rms("cuda-11.2", "40 streams: RMSNorm fused into the GEMVs (AWQ_CUDA_RMS_PRE=0)", &a.m, 40, pl, 3, "0",
                    false);
    if (!quick) {
        fwd_compare_rms("cuda-11.3", "64 streams, hd 128: pre-pass", &d.m, 64, pl, 3, NULL, false);
        fwd_compare_rms("cuda-11.4", "64 streams, hd 128: fused (AWQ_CUDA_RMS_PRE=0)", &d.m, 64, pl, 3, "0", false);
        fwd_compare_rms("cuda-11.5", "16 streams (fused decode attention) with the pre-pass", &a.m, 16, pl, 3, NULL,
                        false);
        fwd_compare_rms("cuda-11.6", "17 streams (rope_kv + flash-decoding) with the pre-pass", &a.m, 17, pl, 3, NULL,
                        false);
        fwd_compare_rms("cuda-11.7", "one stream, the pre-pass at every step (AWQ_CUDA_RMS_PRE=1)", &a.m, 1, pl + 5, 6,
                        "1", false);
        fwd_compare_rms("cuda-11.8", "7 streams, just below the default threshold (fused)", &a.m, 7, pl, 3, NULL,
                        false);
        fwd_compare_rms("cuda-11.9", "40 streams without graphs (the chunked path), pre-pass", &a.m, 40, pl, 3, NULL,
                        true);
        fwd_compare_swiglu("cuda-11.10", "40 streams, hd 128: the SwiGLU pre-pass too (AWQ_CUDA_SWIGLU_PRE=16)", &d.m,
                           40, pl, 3, NULL, "16");
        fwd_compare_swiglu("cuda-11.11", "one stream, both pre-passes at every step (fp16 input to every GEMV)", &a.m, 1,
                           pl + 5, 6, "1", "1");
    }
    synth_free(&a);
    synth_free(&d);
}

/* A checkpoint written by awq-mkmodel and loaded by eng_model_load (the real file path: shards,
 * index, config), GPU against CPU. Needs the built tool and the fetched tokenizer. */
static void test_mkmodel(void) {
    static const struct { const char *id, *preset; } ms[] = {{"cuda-6.1", "demo"}, {"cuda-6.2", "tiny"}};
    const char *bin = h_env("AWQ_BIN"), *tok = h_env("AWQ_TOKENIZER");
    char dir[] = "/tmp/awq-test-cuda-XXXXXX", cmd[3 * 4096], path[4200], err[AWQ_ERR_LEN];
    FILE *f = tok ? fopen(tok, "rb") : NULL;
    if (f) fclose(f);
    if (!bin || !f || !mkdtemp(dir)) {
        CASE("cuda-6.0", "awq-mkmodel checkpoints (skipped: no AWQ_BIN, tokenizer or temp dir)");
        return;
    }
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, ms[i].preset);
        snprintf(cmd, sizeof cmd, "'%s/awq-mkmodel' -o '%s' --tokenizer '%s' --preset %s --seed 7 >/dev/null 2>&1", bin,
                 path, tok, ms[i].preset);
        eng_model *m = NULL;
        if (system(cmd) != 0 || eng_model_load(err, path, &m) != 0) {
            CASE(ms[i].id, "awq-mkmodel checkpoint");
            fprintf(stderr, "  %s: %s\n", cmd, m ? "" : err);
            CHECK(0);
            continue;
        }
        int pl[2] = {29, 4};
        char what[96];
        snprintf(what, sizeof what, "awq-mkmodel --preset %s, loaded from disk: GPU matches CPU", ms[i].preset);
        fwd_compare(ms[i].id, what, m, 2, pl, 6, false);
        eng_model_free(m);
    }
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "  could not remove %s\n", dir);
}

static void test_backend_errors(void) {
    char err[AWQ_ERR_LEN];
    synth a;
    synth_make(&a, 256, 512, 1, 4, 2, 512, 128, 0, false);
    be g;
    CASE("cuda-5.1", "slots run out and come back");
    /* KV budget of 3 blocks (16 positions each, 1 layer) */
    size_t blk = (size_t)1 * 2 * 128 * 2 * 16;
    CHECK_EQ(be_open(&g, &eng_cuda_backend, &a.m, 64, 2, 3 * blk), 0);
    int s0, s1, s2;
    CHECK_EQ(g.ops->slot_alloc(err, g.st, &s0), 0);
    CHECK_EQ(g.ops->slot_alloc(err, g.st, &s1), 0);
    CHECK_EQ(g.ops->slot_alloc(err, g.st, &s2), AWQ_EBUSY);
    CHECK_CONTAINS(err, "all 2 sequence slots are in use");
    size_t wb, kb;
    g.ops->memory(g.st, &wb, &kb);
    CHECK_EQ(kb, 3 * blk);

    CASE("cuda-5.2", "KV blocks run out, slot_free returns them at once");
    int32_t toks[40];
    for (int i = 0; i < 40; i++) toks[i] = i;
    int p = 0, n = 40; /* 3 blocks */
    int32_t am;
    eng_batch b = {1, &s0, &p, &n, toks, NULL, &am, NULL, NULL};
    CHECK_EQ(g.ops->forward(err, g.st, &b), 0);
    n = 1;
    b.slot = &s1;
    CHECK_EQ(g.ops->forward(err, g.st, &b), AWQ_EBUSY);
    CHECK_CONTAINS(err, "KV cache full");
    g.ops->slot_free(g.st, s0);
    CHECK_EQ(g.ops->forward(err, g.st, &b), 0);
    g.ops->slot_free(g.st, 99); /* ignored */

    CASE("cuda-5.3", "bad batches are refused with the entry named");
    int sl2[2] = {s1, s1}, pp[2] = {0, 0}, nn[2] = {1, 1};
    eng_batch bb = {2, sl2, pp, nn, toks, NULL, NULL, NULL, NULL};
    CHECK_EQ(g.ops->forward(err, g.st, &bb), AWQ_EINVAL);
    CHECK_CONTAINS(err, "share slot");
    int bad = 7;
    eng_batch b3 = {1, &bad, &p, &n, toks, NULL, NULL, NULL, NULL};
    CHECK_EQ(g.ops->forward(err, g.st, &b3), AWQ_EINVAL);
    CHECK_CONTAINS(err, "slot 7 is not allocated");
    p = 64;
    b.slot = &s1;
    CHECK_EQ(g.ops->forward(err, g.st, &b), AWQ_ECONTEXT);
    CHECK_CONTAINS(err, "exceed the context of 64");
    p = 0;
    int32_t big = 512;
    b.tokens = &big;
    CHECK_EQ(g.ops->forward(err, g.st, &b), AWQ_ERANGE);
    CHECK_CONTAINS(err, "outside the vocabulary of 512");
    g.ops->destroy(g.st);

    CASE("cuda-5.4", "bad options and unsupported shapes");
    eng_backend_opts o = {.max_ctx = 0, .max_seqs = 1};
    void *st = NULL;
    CHECK_EQ(eng_cuda_backend.create(err, &a.m, &o, &st), AWQ_EINVAL);
    CHECK_CONTAINS(err, "max_ctx 0");
    o.max_ctx = 16;
    o.device = 1000;
    CHECK_EQ(eng_cuda_backend.create(err, &a.m, &o, &st), AWQ_EINVAL);
    CHECK_CONTAINS(err, "device 1000 does not exist");
    o.device = 0;
    a.m.cfg.head_dim = 48;
    CHECK_EQ(eng_cuda_backend.create(err, &a.m, &o, &st), AWQ_EUNSUPPORTED);
    CHECK_CONTAINS(err, "head_dim 48");
    a.m.cfg.head_dim = 64;
    a.layers[0].down.out = 260;
    CHECK_EQ(eng_cuda_backend.create(err, &a.m, &o, &st), AWQ_EINVAL);
    CHECK_CONTAINS(err, "layer 0 down_proj");
    a.layers[0].down.out = 256;

    CASE("cuda-5.5", "a model larger than free GPU memory is refused with the numbers");
    synth h;
    synth_make(&h, 256, 512, 1, 4, 2, 8, 128, 0, false);
    /* claim a 1M x 64k embedding and 64k-wide layers: the size check runs before any byte
     * of the (small) arrays behind these pointers is read */
    h.m.cfg.vocab = 1 << 20;
    h.m.cfg.hidden = 65536;
    h.m.cfg.head_dim = 128;
    h.m.cfg.heads = h.m.cfg.kv_heads = 65536 / 128;
    {
        eng_layer *L = &h.layers[0];
        int H = 65536;
        L->q.in = L->k.in = L->v.in = L->gate.in = L->up.in = H;
        L->q.out = L->k.out = L->v.out = L->o.in = L->o.out = L->down.out = H;
        L->gate.out = L->up.out = L->down.in = 512;
        h.m.cfg.intermediate = 512;
    }
    CHECK_EQ(eng_cuda_backend.create(err, &h.m, &o, &st), AWQ_ENOMEM);
    CHECK_CONTAINS(err, "MiB free");
    synth_free(&h);
    synth_free(&a);
}

/* The decode argmax (two kernels: per-block partials, then one warp per row) against a CPU
 * scan: maxima on chunk edges, ties inside a block and across blocks (the lowest index wins, as
 * the CPU sampler), NaN and -inf rows, vocabularies not a multiple of 4 (the scalar path) and
 * smaller than one block's share. */
static int argmax_ref(const float *l, int V) {
    int bi = -1;
    for (int i = 0; i < V; i++)
        if (l[i] > -FLT_MAX && (bi < 0 || l[i] > l[bi])) bi = i;
    for (int i = 0; i < V; i++) /* -FLT_MAX itself counts when nothing is above it */
        if (bi < 0 && l[i] == -FLT_MAX) bi = i;
    return bi < 0 ? 0 : bi;
}

static void test_argmax(void) {
    char err[AWQ_ERR_LEN];
    static const int vs[] = {120128, 32000, 1001, 1000, 257, 4, 1};
    for (size_t vi = 0; vi < sizeof vs / sizeof vs[0]; vi++) {
        const int V = vs[vi], n = 8;
        float *l = malloc((size_t)n * V * sizeof(float));
        int out[8], want[8];
        for (size_t i = 0; i < (size_t)n * V; i++) l[i] = rndf(-10.0f, 10.0f);
        float *r;
        /* row 1: a tie of the maximum in the first and the last element */
        r = l + (size_t)1 * V;
        r[0] = r[V - 1] = 50.0f;
        /* row 2: the maximum on the first element of every 3756-wide chunk (120128 / 32,
         * rounded up to 4) and the elements after it: the first chunk edge wins */
        r = l + (size_t)2 * V;
        for (int i = 3756; i < V; i += 3756) r[i] = r[i + 1 < V ? i + 1 : i] = 60.0f;
        /* row 3: NaN everywhere but one element */
        r = l + (size_t)3 * V;
        for (int i = 0; i < V; i++) r[i] = NAN;
        r[V / 2] = -3.0f;
        /* row 4: NaN and -inf only (index 0) */
        r = l + (size_t)4 * V;
        for (int i = 0; i < V; i++) r[i] = (i & 1) ? NAN : -INFINITY;
        /* row 5: the maximum in the last element alone */
        r = l + (size_t)5 * V;
        r[V - 1] = 70.0f;
        /* row 6: equal values everywhere (index 0) */
        r = l + (size_t)6 * V;
        for (int i = 0; i < V; i++) r[i] = 1.5f;
        for (int i = 0; i < n; i++) want[i] = argmax_ref(l + (size_t)i * V, V);
        char what[128];
        snprintf(what, sizeof what, "argmax of 8 rows of %d logits (ties, chunk edges, NaN, -inf) equals the CPU scan",
                 V);
        CASE("cuda-12.1", what);
        CHECK_EQ(cu_argmax_probe(err, 0, l, n, V, out), 0);
        for (int i = 0; i < n; i++) CHECK_EQ(out[i], want[i]);
        free(l);
    }
    CASE("cuda-12.2", "cu_argmax_probe refuses an empty vocabulary, naming it");
    float one = 0.0f;
    int o = 0;
    CHECK_EQ(cu_argmax_probe(err, 0, &one, 1, 0, &o), AWQ_EINVAL);
    CHECK_CONTAINS(err, "0 logits");
}

/* The sampling reduction (pick.cu) against the sampler's reference (eng_samp_pick): the edits
 * bitwise, argmax / top-k ids and logits exactly, the cut and lmax exactly, z to rounding,
 * draws the same id. */
static void test_pick(void) {
    char err[AWQ_ERR_LEN];
    static const int Vs[] = {120128, 32000, 1000, 37};
    enum { NR = 14, ND = 64 };
    eng_samp_scratch *sc = eng_samp_scratch_create(err, 120128);
    static int32_t gid[NR + ND][ENG_PICK_MAX], rid[NR + ND][ENG_PICK_MAX];
    static float gl[NR + ND][ENG_PICK_MAX], rl[NR + ND][ENG_PICK_MAX];
    for (size_t vi = 0; vi < sizeof Vs / sizeof Vs[0]; vi++) {
        const int V = Vs[vi], n = NR + ND;
        float *l = malloc(sizeof *l * (size_t)n * V), *ref = malloc(sizeof *ref * (size_t)n * V);
        eng_pick pk[NR + ND];
        eng_pick_out go[NR + ND], ro[NR + ND];
        eng_pick_edit ed[NR][4];
        memset(pk, 0, sizeof pk);
        for (size_t i = 0; i < (size_t)n * V; i++) l[i] = rndf(-6.0f, 6.0f);
        for (int i = 0; i < n; i++) {
            float *r = l + (size_t)i * V;
            eng_pick *p = &pk[i];
            p->mode = ENG_PICK_TOP, p->temperature = 1.0f, p->top = 40, p->rep = 1.0f;
            if (i < NR) { /* some edits on every kind of row: bias, a ban, penalties */
                ed[i][0] = (eng_pick_edit){(int32_t)(7 % V), 2.5f, 0};
                ed[i][1] = (eng_pick_edit){(int32_t)(V / 2), -INFINITY, 0};
                ed[i][2] = (eng_pick_edit){(int32_t)(V - 1), 0.0f, 3};
                ed[i][3] = (eng_pick_edit){(int32_t)(V / 3 + 1), -0.5f, 1};
                p->rep = 1.3f, p->freq = 0.25f, p->pres = 0.5f;
                p->edit = ed[i], p->n_edit = i % 3 == 0 ? 0 : (V > 4 ? 4 : 1);
            }
            switch (i) {
            case 0: p->mode = ENG_PICK_ARGMAX, p->n_edit = 0; break;
            case 1: p->mode = ENG_PICK_ARGMAX, p->n_edit = 4; break;
            case 2: p->top = 1, p->temperature = 0.7f; break;
            case 3: break;
            case 4: p->top = ENG_PICK_MAX, p->temperature = 1.3f; break;
            case 5: /* a 0.25 grid: ties decide by id */
                for (int v = 0; v < V; v++) r[v] = (float)((int)(rnd() % 64) - 32) * 0.25f;
                p->top = 50, p->temperature = 0.5f;
                break;
            case 6: /* all equal: ties beyond the GPU's buffer when the vocabulary is large */
                for (int v = 0; v < V; v++) r[v] = 1.0f;
                p->n_edit = 0;
                break;
            case 7: /* mostly -inf / NaN, 100 numbers */
                for (int v = 0; v < V; v++) r[v] = (v % 5 == 1) ? NAN : -INFINITY;
                for (int k = 0; k < 100 && k < V; k++) r[(k * 7919) % V] = rndf(-3, 3);
                p->top = 300, p->n_edit = 0;
                break;
            case 8: /* nothing left */
                for (int v = 0; v < V; v++) r[v] = -INFINITY;
                p->top = 5, p->n_edit = 0;
                break;
            case 9: p->mode = ENG_PICK_DRAW, p->u = 0.37; break;
            case 10: p->mode = ENG_PICK_DRAW, p->temperature = 0.8f, p->u = 0.9999999; break;
            case 11: p->mode = ENG_PICK_DRAW, p->temperature = 2.0f, p->u = 0.0; break;
            case 12: p->mode = ENG_PICK_FULL, p->n_edit = 0; break;
            case 13: /* a peaked row: one token dominates */
                r[V / 5] = 30.0f;
                p->mode = ENG_PICK_DRAW, p->u = 0.5;
                break;
            default: { /* draws at many u: plain, and top-p / min-p nuclei over a random, a tie-grid and a flat row */
                const int k = i - NR;
                const float *src = l + (size_t)(k % 4 == 2 ? 5 : k % 4 == 3 ? 6 : k % 8 == 1 ? NR + 1 : NR) * V;
                if (i > NR && k != 1) memcpy(r, src, sizeof *r * (size_t)V);
                if (k == 1) /* a peaked row: ~V / 997 tokens far above a random tail (the nucleus within the
                             * GPU's candidates, as with real models) */
                    for (int v = 0; v < V; v++) r[v] = rndf(-6.0f, 6.0f) + (v % 997 == 3 ? 14.0f : 0.0f);
                p->mode = ENG_PICK_DRAW, p->temperature = 1.0f, p->u = (double)k / ND + 0.003;
                if (k % 4 == 1) p->mode = ENG_PICK_NUCLEUS, p->top_p = 0.9f, p->min_p = 0;
                if (k % 16 == 9) p->min_p = 0.02f; /* peaked rows: min-p inside the nucleus */
                if (k % 16 == 13) p->top_p = 1.0f, p->min_p = 0.001f; /* min-p alone */
                if (k % 4 == 2) p->mode = ENG_PICK_NUCLEUS, p->top_p = 0.5f, p->min_p = 0.05f, p->temperature = 0.5f;
                if (k % 8 == 3) p->mode = ENG_PICK_NUCLEUS, p->top_p = 1.0f, p->min_p = 0.2f;
                if (k % 8 == 7) p->mode = ENG_PICK_NUCLEUS, p->top_p = 0.37f, p->min_p = 0;
                if (k == 5) p->top_p = 0.999f, p->min_p = 0.5f; /* a random row: few survive min-p */
                break;
            }
            }
            go[i] = (eng_pick_out){.ids = gid[i], .l = gl[i]};
            ro[i] = (eng_pick_out){.ids = rid[i], .l = rl[i]};
        }
        memcpy(ref, l, sizeof *l * (size_t)n * V);
        int rc = cu_pick_probe(err, 0, l, n, V, pk, go);
        char what[160];
        snprintf(what, sizeof what, "pick over %d tokens: edits bitwise, argmax / top-k / draws / top-p and min-p "
                                    "nuclei as eng_samp_pick (ties, NaN, -inf, a banned row, flat rows)", V);
        CASE("cuda-13.1", what);
        CHECK_EQ(rc, 0);
        if (rc) fprintf(stderr, "   %s\n", err);
        int edits_ok = 1, bad = 0;
        for (int i = 0; i < n; i++) {
            float *r = ref + (size_t)i * V;
            if (pk[i].mode != ENG_PICK_FULL) eng_samp_pick_edits(r, &pk[i]);
            edits_ok &= memcmp(r, l + (size_t)i * V, sizeof *r * (size_t)V) == 0;
            if (pk[i].mode == ENG_PICK_FULL) continue;
            CHECK_EQ(eng_samp_pick(err, sc, r, V, &pk[i], &ro[i]), 0);
            const eng_pick_out *g = &go[i], *o = &ro[i];
            int ok = 1;
            if (pk[i].mode == ENG_PICK_ARGMAX) {
                ok = g->id == o->id;
            } else if (pk[i].mode == ENG_PICK_NUCLEUS) { /* answers the id alone */
                ok = g->id == o->id;
            } else if (pk[i].mode == ENG_PICK_DRAW) {
                ok = g->id == o->id && g->n_cut == o->n_cut && g->lmax == o->lmax;
            } else if (g->n < 0) {
                ok = i == 6 && V > 2048; /* the flat row's ties: the host reads the row */
            } else {
                ok = g->n == o->n && g->n_cut == o->n_cut && g->lmax == o->lmax &&
                     fabs(g->z - o->z) <= 1e-6 * o->z;
                for (int k = 0; ok && k < g->n; k++) ok = g->ids[k] == o->ids[k] && g->l[k] == o->l[k];
            }
            if (!ok) {
                fprintf(stderr, "   V %d row %d mode %d: gpu id %d n %d cut %d lmax %g z %g; ref id %d n %d cut %d lmax %g "
                                "z %g\n", V, i, pk[i].mode, g->id, g->n, g->n_cut, (double)g->lmax, g->z, o->id, o->n,
                        o->n_cut, (double)o->lmax, o->z);
                bad++;
            }
        }
        CHECK(edits_ok);
        CHECK_EQ(bad, 0);
        free(l);
        free(ref);
    }
    eng_samp_scratch_free(sc);
}

/* The generator on the GPU backend: with picking (the default) every kind of sampler draws the
 * ids it draws from whole rows read back (eng_gen_keep_logits), over the same GPU logits. */
static void test_gen_pick(void) {
    char err[AWQ_ERR_LEN];
    synth a;
    synth_make(&a, 256, 512, 2, 4, 2, 1000, 128, 0, false);
    const int N = 6, VOC = a.m.cfg.vocab;
    eng_backend_opts o = {.threads = 2, .max_ctx = 64, .max_seqs = N};
    eng_gen *g = eng_gen_create(err, &a.m, NULL, &eng_cuda_backend, &o);
    CASE("cuda-13.2", "the generator on the GPU: picking draws the whole-row path's ids for greedy, bias, penalties, "
                      "temperature, top-k, top-p, min-p, typical-p and logprobs settings");
    CHECK(g != NULL);
    if (!g) {
        fprintf(stderr, "   %s\n", err);
        synth_free(&a);
        return;
    }
    int32_t pr[6][8];
    for (int i = 0; i < N; i++)
        for (int j = 0; j < 8; j++) pr[i][j] = (int32_t)(rnd() % (uint32_t)VOC);
    eng_samp_bias bias[2] = {{3, 2.5f}, {7, -INFINITY}};
    int bad = 0;
    for (int cfg = 0; cfg < 9; cfg++) {
        eng_samp_params q;
        eng_samp_params_default(&q, NULL);
        q.max_tokens = 10, q.ignore_eos = true, q.has_seed = true;
        switch (cfg) {
        case 0: q.temperature = 0; break;
        case 1: q.temperature = 0, q.logit_bias = bias, q.n_logit_bias = 2, q.repetition_penalty = 1.3f; break;
        case 2: q.temperature = 0.8f; break;
        case 3: q.temperature = 1.1f, q.top_k = 5, q.frequency_penalty = 0.4f, q.presence_penalty = 0.2f; break;
        case 4: q.temperature = 1.0f, q.top_p = 0.6f; break;
        case 5: q.temperature = 1.5f, q.min_p = 0.05f, q.logit_bias = bias, q.n_logit_bias = 2; break;
        case 6: q.temperature = 0.9f, q.top_k = 12, q.top_p = 0.8f, q.typical_p = 0.9f; break;
        case 7: q.temperature = 1.0f, q.typical_p = 0.7f; break;
        default: q.temperature = 0.7f, q.top_k = 8, q.logprobs = 3; break;
        }
        int32_t ids[2][6][10];
        memset(ids, 0xff, sizeof ids);
        for (int way = 0; way < 2; way++) {
            eng_gen_keep_logits(g, way == 0);
            eng_gen_seq *sq[6];
            for (int i = 0; i < N; i++) {
                q.seed = 900 + (uint64_t)(cfg * N + i);
                CHECK_EQ(eng_gen_seq_create(err, g, &q, &sq[i]), 0);
                CHECK_EQ(eng_gen_seq_prompt(err, sq[i], pr[i], 3 + (size_t)i, NULL), 0);
            }
            for (int t = 0; t < 40; t++) {
                int live = 0;
                for (int i = 0; i < N; i++) live += eng_gen_seq_finish(sq[i]) == ENG_GEN_RUNNING;
                if (!live) break;
                if (eng_gen_step(err, g, sq, N)) {
                    fprintf(stderr, "   step: %s\n", err);
                    bad++;
                    break;
                }
                for (int i = 0; i < N; i++) {
                    const eng_gen_event *ev = eng_gen_seq_event(sq[i]);
                    size_t k = eng_gen_seq_n_generated(sq[i]);
                    if (ev->has_token && k >= 1 && k <= 10) ids[way][i][k - 1] = ev->tok.id;
                }
            }
            for (int i = 0; i < N; i++) eng_gen_seq_free(sq[i]);
        }
        if (memcmp(ids[0], ids[1], sizeof ids[0]) != 0) {
            fprintf(stderr, "   sampler configuration %d: the ids differ\n", cfg);
            bad++;
        }
    }
    CHECK_EQ(bad, 0);
    eng_gen_free(g);
    synth_free(&a);
}

int main(void) {
    CASE("cuda-1.1", "device discovery");
    int n = cu_device_count();
    CHECK(n >= 0);
    if (n == 0) SKIP("no CUDA device");
    char err[AWQ_ERR_LEN], name[128];
    size_t fr = 0, tot = 0;
    CHECK_EQ(cu_device_info(err, 0, name, sizeof name, &fr, &tot), 0);
    CHECK(tot > 0 && fr <= tot);
    fprintf(stderr, "  device 0: %s, %zu MiB free of %zu; decode GEMV build %d (2: with the wgmma step)\n", name,
            fr >> 20, tot >> 20, cu_gemv_build());
    CHECK_EQ(cu_device_info(err, n + 3, name, sizeof name, &fr, &tot), AWQ_EDEVICE);
    CHECK_CONTAINS(err, "cudaErrorInvalidDevice");

    /* AWQ_TEST_QUICK (compute-sanitizer, time-capped): the newest paths first */
    const bool quick = h_env("AWQ_TEST_QUICK") != NULL;
    if (quick) test_pick();
    if (quick) test_rope_kv();
    if (quick) test_batched_decode();
    if (quick) test_attn_decode();
    if (quick) test_attn_prefill();
    if (quick) test_dense_paths();
    test_shapes();
    test_qmm();
    test_forward();
    if (!quick) test_dense_paths();
    if (!quick) test_attn_prefill();
    if (!quick) test_attn_decode();
    if (!quick) test_rope_kv();
    if (!quick) test_batched_decode();
    test_argmax();
    if (!quick) test_pick();
    test_gen_pick();
    test_mkmodel();
    test_backend_errors();
    return h_finish();
}
#endif
