/* gb_model.c - whole-model benchmarks on the CUDA backend: load (page cache -> GPU), batch-1
 * decode at two context lengths, prefill, and aggregate decode over many streams. Tokens are
 * random ids; decode feeds back the GPU's own argmax (only ids cross to the host). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "gb_model.h"
#include "gen.h"
#include "model.h"
#include "plat.h"

#ifdef AWQ_HAVE_CUDA
#include "cu.h"

typedef struct gbm {
    const eng_backend_ops *ops;
    void *st;
    int V;
} gbm;

static void die(const char *what, const char *err) {
    fprintf(stderr, "gpu_bench: %s: %s\n", what, err);
    exit(1);
}

static double secs(uint64_t t0) { return (double)(plat_now_ns() - t0) * 1e-9; }

static uint32_t g_rng = 99;
static double g_first_step; /* seconds of decode()'s warm-up step: a new batch size's graph capture */
static int32_t rnd_tok(int V) {
    g_rng = g_rng * 1664525u + 1013904223u;
    return (int32_t)((g_rng >> 8) % (uint32_t)V);
}

/* Prefill n sequences with plen random tokens each (one batch); returns seconds. */
static double prefill(gbm *g, const int *slots, int n, int plen, int32_t *am) {
    char err[AWQ_ERR_LEN];
    int32_t *toks = malloc((size_t)n * plen * sizeof(int32_t));
    int *pos = calloc((size_t)n, sizeof(int)), *nt = malloc((size_t)n * sizeof(int));
    for (int i = 0; i < n * plen; i++) toks[i] = rnd_tok(g->V);
    for (int i = 0; i < n; i++) nt[i] = plen;
    eng_batch b = {n, slots, pos, nt, toks, NULL, am, NULL, NULL};
    uint64_t t0 = plat_now_ns();
    if (g->ops->forward(err, g->st, &b)) die("prefill", err);
    double s = secs(t0);
    free(toks);
    free(pos);
    free(nt);
    return s;
}

/* steps greedy decode steps of n sequences at positions start..; returns seconds per step
 * (median-free: total over steps after one warm-up step, which captures the graph). */
static double decode(gbm *g, const int *slots, int n, int start, int steps, int32_t *am) {
    char err[AWQ_ERR_LEN];
    int *pos = malloc((size_t)n * sizeof(int)), *nt = malloc((size_t)n * sizeof(int));
    int32_t *toks = malloc((size_t)n * sizeof(int32_t));
    for (int i = 0; i < n; i++) nt[i] = 1;
    uint64_t t0 = 0, tw = plat_now_ns();
    for (int s = 0; s <= steps; s++) {
        if (s == 1) t0 = plat_now_ns(), g_first_step = secs(tw);
        for (int i = 0; i < n; i++) {
            pos[i] = start + s;
            toks[i] = am[i];
        }
        eng_batch b = {n, slots, pos, nt, toks, NULL, am, NULL, NULL};
        if (g->ops->forward(err, g->st, &b)) die("decode", err);
    }
    double per = secs(t0) / steps;
    free(pos);
    free(nt);
    free(toks);
    return per;
}

void gb_model(const char *dir, double copy_gbps, int decode_only, int fp16_weights) {
    char err[AWQ_ERR_LEN];
    eng_model *m = NULL;
    uint64_t t0 = plat_now_ns();
    if (eng_model_load(err, dir, &m)) die("load", err);
    double t_map = secs(t0);
    eng_backend_opts o = {
        .threads = 0, .max_ctx = 4096, .max_seqs = 64, .kv_budget = 0, .device = 0, .fp16_weights = fp16_weights != 0};
    gbm g = {&eng_cuda_backend, NULL, m->cfg.vocab};
    t0 = plat_now_ns();
    if (g.ops->create(err, m, &o, &g.st)) die("create", err);
    double t_up = secs(t0);
    size_t wb = 0, kb = 0;
    g.ops->memory(g.st, &wb, &kb);
    /* bytes one decode step must stream: every repacked weight and the fp16 lm_head, not the
     * embedding table (one row per token) unless it is the lm_head */
    const size_t sb = cu_scratch_bytes(g.st); /* inside wb, but no decode step streams it */
    /* nor the fp16 weight copies (prefill only) */
    size_t f16b = 0;
    for (int i = 0; fp16_weights && i < m->cfg.layers; i++) {
        const eng_layer *L = &m->layers[i];
        const eng_qlinear *ls[7] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
        for (int j = 0; j < 7; j++) f16b += (size_t)ls[j]->out * ((size_t)(ls[j]->in + 127) / 128 * 128) * 2;
    }
    double step_bytes = (double)(wb - sb - f16b) -
                        (m->lm_head == m->embed ? 0.0 : (double)m->cfg.vocab * m->cfg.hidden * 2);
    int slots[64];
    int32_t am[64];
    for (int i = 0; i < 64; i++)
        if (g.ops->slot_alloc(err, g.st, &slots[i])) die("slot", err);

    printf("### Whole model (%s): %d layers, hidden %d, vocab %d%s\n\n", dir, m->cfg.layers, m->cfg.hidden,
           m->cfg.vocab, fp16_weights ? "; fp16 weight copies for the dense path (prefill_fp16_weights)" : "");
    printf("| what | value | note |\n| --- | --- | --- |\n");
    printf("| load: map + validate | %.3f s | eng_model_load |\n", t_map);
    printf("| load: upload + repack (page cache -> GPU) | %.3f s | %.1f GB/s of %.2f GB checkpoint; target <= 1 s |\n",
           t_up, (double)m->weight_bytes / t_up / 1e9, (double)m->weight_bytes / 1e9);
    printf("| device memory: weights (with scratch) / KV pool | %.2f GB / %.2f GB | backend memory(); scratch %.0f MB "
           "(dense weights + prefill attention) |\n",
           wb / 1e9, kb / 1e9, sb / 1e6);
    fflush(stdout);

    /* batch-1 decode at context 128, then 2048 (the 2048 prefill doubles as the prefill figure) */
    prefill(&g, slots, 1, 128, am);
    double d128 = decode(&g, slots, 1, 128, 64, am);
    printf("| decode batch 1, context 128 | %.1f tok/s | %.3f ms/token, %.0f GB/s weights (%.2f of copy); target >= 570 |\n",
           1.0 / d128, d128 * 1e3, step_bytes / d128 / 1e9, step_bytes / d128 / 1e9 / copy_gbps);
    fflush(stdout);
    g.ops->slot_free(g.st, slots[0]);
    g.ops->slot_alloc(err, g.st, &slots[0]);
    if (decode_only) { /* straight to the long context: the prefill figures are not wanted */
        prefill(&g, slots, 1, 2048, am);
        double d = decode(&g, slots, 1, 2048, 64, am);
        printf("| decode batch 1, context 2048 | %.1f tok/s | %.3f ms/token |\n", 1.0 / d, d * 1e3);
        g.ops->slot_free(g.st, slots[0]);
        g.ops->slot_alloc(err, g.st, &slots[0]);
    } else {
        prefill(&g, slots, 1, 512, am); /* warm-up of the prefill shapes (cuBLAS heuristics too) */
        g.ops->slot_free(g.st, slots[0]);
        g.ops->slot_alloc(err, g.st, &slots[0]);
        prefill(&g, slots, 1, 2048, am);
        g.ops->slot_free(g.st, slots[0]);
        g.ops->slot_alloc(err, g.st, &slots[0]);
        double p128 = prefill(&g, slots, 1, 128, am);
        g.ops->slot_free(g.st, slots[0]);
        g.ops->slot_alloc(err, g.st, &slots[0]);
        double p512 = prefill(&g, slots, 1, 512, am);
        g.ops->slot_free(g.st, slots[0]);
        g.ops->slot_alloc(err, g.st, &slots[0]);
        double p2048 = prefill(&g, slots, 1, 2048, am);
        double d2048 = decode(&g, slots, 1, 2048, 64, am);
        printf("| decode batch 1, context 2048 | %.1f tok/s | %.3f ms/token |\n", 1.0 / d2048, d2048 * 1e3);
        printf("| prefill 128 tokens | %.0f tok/s | %.1f ms |\n", 128 / p128, p128 * 1e3);
        printf("| prefill 512 tokens | %.0f tok/s | %.1f ms |\n", 512 / p512, p512 * 1e3);
        printf("| prefill 2048 tokens | %.0f tok/s | %.1f ms; target >= 40k tok/s |\n", 2048 / p2048, p2048 * 1e3);
        fflush(stdout);
        g.ops->slot_free(g.st, slots[0]);
        g.ops->slot_alloc(err, g.st, &slots[0]);
    }

    static const int streams[] = {8, 16, 32, 64};
    for (size_t k = 0; k < (decode_only ? 1 : sizeof streams / sizeof streams[0]); k++) {
        int n = streams[k];
        prefill(&g, slots, n, 128, am);
        double per = decode(&g, slots, n, 128, 32, am);
        printf("| aggregate decode, %d streams (context 128) | %.0f tok/s | %.2f ms/step (the first, capturing its graph: "
               "%.1f ms)%s |\n",
               n, n / per, per * 1e3, g_first_step * 1e3, n == 64 ? "; target >= 20k tok/s" : "");
        fflush(stdout);
        for (int i = 0; i < n; i++) {
            g.ops->slot_free(g.st, slots[i]);
            g.ops->slot_alloc(err, g.st, &slots[i]);
        }
    }
    printf("\n");
    g.ops->destroy(g.st);
    eng_model_free(m);
}
/* Decode through the generator (engine/gen.c, as the daemon runs it: sampling included) with
 * n streams after a 128-token prompt: seconds per step over `steps` steps. keep: whole logits
 * rows to the host (the path before the GPU's sampling reduction). */
static double gen_decode(eng_gen *g, int n, const eng_samp_params *p, bool keep, int steps) {
    char err[AWQ_ERR_LEN];
    eng_gen_seq *sq[64];
    int32_t prompt[128];
    eng_gen_keep_logits(g, keep);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < 128; j++) prompt[j] = rnd_tok(4000);
        if (eng_gen_seq_create(err, g, p, &sq[i]) || eng_gen_seq_prompt(err, sq[i], prompt, 128, NULL))
            die("sequence", err);
    }
    while (eng_gen_seq_n_generated(sq[n - 1]) == 0) /* the prompts, then the first token */
        if (eng_gen_step(err, g, sq, n)) die("step", err);
    uint64_t t0 = plat_now_ns();
    for (int s = 0; s < steps; s++)
        if (eng_gen_step(err, g, sq, n)) die("step", err);
    double per = secs(t0) / steps;
    for (int i = 0; i < n; i++) eng_gen_seq_free(sq[i]);
    return per;
}

void gb_sampled(const char *dir) {
    char err[AWQ_ERR_LEN];
    eng_model *m = NULL;
    if (eng_model_load(err, dir, &m)) die("load", err);
    eng_backend_opts o = {.threads = 0, .max_ctx = 1024, .max_seqs = 64, .kv_budget = 0, .device = 0};
    eng_gen *g = eng_gen_create(err, m, NULL, &eng_cuda_backend, &o);
    if (!g) die("create", err);
    static const struct {
        const char *name;
        float t, top_p, rep;
        int top_k;
    } cfg[] = {{"greedy", 0, 1, 1, 0},
               {"temperature 0.8", 0.8f, 1, 1, 0},
               {"temperature 0.7, top-p 0.9", 0.7f, 0.9f, 1, 0},
               {"temperature 0.8, top-k 40, repetition 1.1", 0.8f, 1, 1.1f, 40},
               /* the random model's logits are nearly flat: a low temperature makes them as peaked
                * as a real model's, whose top-p nucleus the GPU settles from 1024 candidates */
               {"temperature 0.05, top-p 0.9 (peaked)", 0.05f, 0.9f, 1, 0}};
    static const int streams[] = {1, 64};
    printf("### Decode through the generator, sampling included (%s, context ~128)\n\n", dir);
    printf("| sampler | streams | sampled on the GPU | whole rows to the host | gain |\n| --- | --- | --- | --- | --- |\n");
    const char *only = getenv("AWQ_GB_SAMPLED_ONLY"); /* one sampler's row (index), for ncu */
    for (size_t c = 0; c < sizeof cfg / sizeof cfg[0]; c++)
        for (size_t k = 0; k < 2; k++) {
            if (only && (atoi(only) != (int)c || k)) continue;
            eng_samp_params p;
            eng_samp_params_default(&p, NULL);
            p.temperature = cfg[c].t, p.top_p = cfg[c].top_p, p.top_k = cfg[c].top_k;
            p.repetition_penalty = cfg[c].rep, p.max_tokens = 1000, p.ignore_eos = true, p.has_seed = true;
            p.seed = 7;
            const int n = streams[k];
            const double a = gen_decode(g, n, &p, false, 48), b = gen_decode(g, n, &p, true, 48);
            printf("| %s | %d | %.0f tok/s | %.0f tok/s | %.2fx |\n", cfg[c].name, n, n / a, n / b, b / a);
            fflush(stdout);
        }
    printf("\n");
    eng_gen_free(g);
    eng_model_free(m);
}

void gb_profile(const char *dir, int nseq, int plen, int steps, int fp16_weights) {
    char err[AWQ_ERR_LEN];
    eng_model *m = NULL;
    if (nseq < 1 || nseq > 64 || plen < 1 || plen > 4096 || steps < 0) die("profile", "bad shape");
    if (eng_model_load(err, dir, &m)) die("load", err);
    eng_backend_opts o = {.threads = 0,
                          .max_ctx = 4096,
                          .max_seqs = nseq,
                          .kv_budget = (size_t)4 << 30,
                          .device = 0,
                          .fp16_weights = fp16_weights != 0};
    gbm g = {&eng_cuda_backend, NULL, m->cfg.vocab};
    if (g.ops->create(err, m, &o, &g.st)) die("create", err);
    int slots[64];
    int32_t am[64];
    for (int i = 0; i < nseq; i++)
        if (g.ops->slot_alloc(err, g.st, &slots[i])) die("slot", err);
    prefill(&g, slots, nseq, plen, am);
    if (steps)
        decode(&g, slots, nseq, plen, steps, am);
    else { /* the prompt again on fresh slots: the profile's window is between the last two argmaxes */
        for (int i = 0; i < nseq; i++) {
            g.ops->slot_free(g.st, slots[i]);
            if (g.ops->slot_alloc(err, g.st, &slots[i])) die("slot", err);
        }
        prefill(&g, slots, nseq, plen, am);
    }
    g.ops->destroy(g.st);
    eng_model_free(m);
}
#else
void gb_sampled(const char *dir) { (void)dir; }
void gb_profile(const char *dir, int nseq, int plen, int steps, int fp16_weights) {
    (void)dir;
    (void)fp16_weights;
    (void)nseq;
    (void)plen;
    (void)steps;
}
void gb_model(const char *dir, double copy_gbps, int decode_only, int fp16_weights) {
    (void)dir;
    (void)copy_gbps;
    (void)decode_only;
    (void)fp16_weights;
}
#endif
