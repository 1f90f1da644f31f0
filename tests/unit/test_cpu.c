/* test_cpu.c - the CPU backend: AWQ GEMV/GEMM of every implementation (scalar, AVX2, AVX-512)
 * against a dequantized fp64 reference on odd shapes, GEMV == GEMM bitwise, thread-count and
 * batch invariance, the fp16 lm_head product, RMSNorm and RoPE against direct formulas, the
 * sliding-window bound, the worker pool, the blocked GEMM's register-block remainders, column
 * blocks and thread-count invariance, the whole forward pass against a plain fp64 forward
 * (GQA, MHA, sliding window shorter than the sequence, tied embeddings), and the error paths.
 */
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "cpu.h"
#include "harness.h"
#include "tmodel.h"

static const eng_cpu_impl IMPLS[] = {ENG_CPU_SCALAR, ENG_CPU_AVX2, ENG_CPU_AVX512};

static double max_abs(const double *a, int n) {
    double m = 0;
    for (int i = 0; i < n; i++) m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}

static void check_linear(eng_cpu_pool *pool, int in, int out, int group, int m, uint64_t seed) {
    eng_model *mm = tm_create(8, 8, 0, 1, 1, 8, 8, 8, 0, 1, seed); /* an allocation arena only */
    tm_rng r = {seed * 7 + 1};
    eng_qlinear l;
    tm_qlinear(mm, &r, &l, in, out, group);
    float *x = malloc(sizeof(float) * (size_t)m * in);
    double *xd = malloc(sizeof(double) * (size_t)m * in), *ref = malloc(sizeof(double) * (size_t)m * out);
    for (int i = 0; i < m * in; i++) xd[i] = x[i] = 2.0f * tm_unif(&r) - 1.0f;
    tm_lin(&l, xd, m, ref);
    double scale = max_abs(ref, m * out);
    float *y = malloc(sizeof(float) * (size_t)m * out), *y2 = malloc(sizeof(float) * (size_t)m * out);
    float *y1 = malloc(sizeof(float) * (size_t)out);
    char err[AWQ_ERR_LEN];
    for (size_t ii = 0; ii < sizeof IMPLS / sizeof IMPLS[0]; ii++) {
        eng_cpu_impl im = IMPLS[ii];
        if (!eng_cpu_impl_ok(im)) {
            fprintf(stderr, "   (%s not supported here: skipped)\n", eng_cpu_impl_name(im));
            continue;
        }
        CHECK_EQ(eng_cpu_gemv(err, im, pool, &l, x, m, y), 0);
        double worst = 0;
        for (int i = 0; i < m * out; i++) worst = fmax(worst, fabs(y[i] - ref[i]));
        if (worst > 2e-5 * scale + 1e-6)
            fprintf(stderr, "   %s %dx%d g%d m%d: worst %g scale %g\n", eng_cpu_impl_name(im), in, out, group, m, worst,
                    scale);
        CHECK(worst <= 2e-5 * scale + 1e-6);
        CHECK_EQ(eng_cpu_gemm(err, im, pool, &l, x, m, y2), 0);
        CHECK(memcmp(y, y2, sizeof(float) * (size_t)m * out) == 0); /* GEMV == GEMM bitwise */
        CHECK_EQ(eng_cpu_gemv(err, im, NULL, &l, x + (size_t)(m - 1) * in, 1, y1), 0); /* alone, 1 thread */
        CHECK(memcmp(y1, y + (size_t)(m - 1) * out, sizeof(float) * (size_t)out) == 0);
    }
    free(x), free(xd), free(ref), free(y), free(y2), free(y1);
    tm_free(mm);
}

static void count_task(void *ctx, int tid, int n) {
    atomic_int *c = ctx;
    atomic_fetch_add(&c[tid], 1);
    atomic_fetch_add(&c[64], n);
}

/* logits of the last token of toks from the backend, fed in chunks of `chunk` tokens */
static int run_backend(const eng_model *m, const int32_t *toks, int T, int chunk, float *logits) {
    char err[AWQ_ERR_LEN];
    eng_backend_opts o = {.threads = 2, .max_ctx = 64, .max_seqs = 2};
    void *st;
    int rc = eng_cpu_backend.create(err, m, &o, &st);
    if (rc) {
        fprintf(stderr, "create: %s\n", err);
        return rc;
    }
    int slot;
    if ((rc = eng_cpu_backend.slot_alloc(err, st, &slot))) goto out;
    for (int p = 0; p < T; p += chunk) {
        int n = T - p < chunk ? T - p : chunk;
        eng_batch b = {.n_seq = 1, .slot = &slot, .pos = &p, .n_tokens = &n, .tokens = toks + p, .logits = logits};
        if ((rc = eng_cpu_backend.forward(err, st, &b))) {
            fprintf(stderr, "forward: %s\n", err);
            goto out;
        }
    }
out:
    eng_cpu_backend.destroy(st);
    return rc;
}

static void check_forward(const char *what, int heads, int kv, int window, int tie, int T) {
    eng_model *m = tm_create(64, 96, 2, heads, kv, 64 / heads, 50, 32, window, tie, 1234 + heads * 7 + kv + window);
    int32_t toks[40];
    tm_rng r = {99};
    for (int i = 0; i < T; i++) toks[i] = (int32_t)(tm_next(&r) % 50);
    double ref[50];
    tm_forward_ref(m, toks, T, ref);
    float lg[50], lg2[50];
    CHECK_EQ(run_backend(m, toks, T, T, lg), 0);     /* one prefill chunk */
    CHECK_EQ(run_backend(m, toks, T, 1, lg2), 0);    /* token by token */
    double scale = max_abs(ref, 50), worst = 0, worst2 = 0;
    for (int i = 0; i < 50; i++) {
        worst = fmax(worst, fabs(lg[i] - ref[i]));
        worst2 = fmax(worst2, fabs(lg2[i] - lg[i]));
    }
    fprintf(stderr, "   %s: worst |cpu - fp64| %.3g (scale %.3g), chunked vs stepped %.3g\n", what, worst, scale, worst2);
    CHECK(worst < 1e-4 * scale);
    CHECK(worst2 < 1e-5 * scale);
    tm_free(m);
}

int main(void) {
    char err[AWQ_ERR_LEN];
    eng_cpu_pool *pool = eng_cpu_pool_create(err, 2);
    CHECK(pool != NULL);

    CASE("cpu-1.1", "worker pool: every worker runs once per parallel-for, many times over");
    atomic_int cnt[65];
    for (int i = 0; i < 65; i++) atomic_init(&cnt[i], 0);
    for (int k = 0; k < 1000; k++) eng_cpu_pool_run(pool, count_task, cnt);
    CHECK_EQ(atomic_load(&cnt[0]), 1000);
    CHECK_EQ(atomic_load(&cnt[1]), 1000);
    CHECK_EQ(atomic_load(&cnt[64]), 4000);
    eng_cpu_pool *p1 = eng_cpu_pool_create(err, 0);
    CHECK(p1 && eng_cpu_pool_size(p1) >= 1);
    eng_cpu_pool_free(p1);
    CHECK(eng_cpu_pool_create(err, 5000) == NULL);
    CHECK_CONTAINS(err, "threads 5000");

    CASE("cpu-2.1", "AWQ GEMV/GEMM of every impl vs the fp64 dequantized reference, odd shapes");
    check_linear(pool, 32, 8, 32, 1, 1);       /* one packed column */
    check_linear(pool, 128, 200, 64, 3, 2);    /* 25 columns: a partial tile */
    check_linear(pool, 256, 1032, 128, 5, 3);  /* 129 columns, GEMM path in qlinear */
    check_linear(pool, 96, 136, 32, 70, 4);    /* more tokens than one kernel call (64) */
    check_linear(pool, 512, 256, 128, 2, 5);
    /* the GEMV's work items: several k-chunks (512 rows) and column blocks (256 packed columns,
     * the last one partial), more tokens than one GEMV pass (4), groups of rows not a multiple
     * of 8 or 4 and a chunk holding a single group */
    check_linear(pool, 1536, 4224, 128, 3, 6);
    check_linear(pool, 1024, 264, 32, 6, 7);
    check_linear(pool, 1026, 24, 6, 2, 8);     /* 4 + 2 rows per group */
    check_linear(pool, 1020, 40, 12, 1, 9);    /* 8 + 4 rows per group */
    check_linear(pool, 96, 16, 3, 2, 10);      /* 3 rows per group */

    CASE("cpu-2.2", "the GEMV does not depend on the thread count (bitwise)");
    {
        eng_model *mm = tm_create(8, 8, 0, 1, 1, 8, 8, 8, 0, 1, 9);
        tm_rng r = {5};
        eng_qlinear l;
        tm_qlinear(mm, &r, &l, 256, 1024, 128);
        float x[256], a[1024], b[1024];
        for (int i = 0; i < 256; i++) x[i] = tm_unif(&r) - 0.5f;
        eng_cpu_pool *p3 = eng_cpu_pool_create(err, 3);
        CHECK_EQ(eng_cpu_qlinear(err, ENG_CPU_AUTO, NULL, &l, x, 1, a), 0);
        CHECK_EQ(eng_cpu_qlinear(err, ENG_CPU_AUTO, p3, &l, x, 1, b), 0);
        CHECK(memcmp(a, b, sizeof a) == 0);
        eng_cpu_pool_free(p3);
        tm_free(mm);
    }

    CASE("cpu-2.3", "linear argument errors name the problem");
    {
        eng_qlinear l = {.in = 100, .out = 64, .group = 32};
        float x[1] = {0}, y[1];
        CHECK_EQ(eng_cpu_qlinear(err, ENG_CPU_AUTO, NULL, &l, x, 1, y), AWQ_EINVAL);
        CHECK_CONTAINS(err, "in=100 is not a multiple of group 32");
        l = (eng_qlinear){.in = 64, .out = 12, .group = 32};
        CHECK_EQ(eng_cpu_qlinear(err, ENG_CPU_AUTO, NULL, &l, x, 1, y), AWQ_EINVAL);
        CHECK_CONTAINS(err, "out=12 is not a multiple of 8");
        l = (eng_qlinear){.in = 64, .out = 16, .group = 32};
        CHECK_EQ(eng_cpu_qlinear(err, ENG_CPU_AUTO, NULL, &l, x, 1, y), AWQ_EINVAL);
        CHECK_CONTAINS(err, "missing qweight");
        int32_t qw[64 * 2], qz[4];
        uint16_t sc[32];
        l.qweight = qw, l.qzeros = qz, l.scales = sc;
        CHECK_EQ(eng_cpu_qlinear(err, ENG_CPU_AUTO, NULL, &l, x, 0, y), AWQ_EINVAL);
        CHECK_CONTAINS(err, "token count 0");
        CHECK_EQ(eng_cpu_f16_matmul(err, ENG_CPU_AUTO, NULL, sc, 0, 4, x, 1, y), AWQ_EINVAL);
        CHECK_CONTAINS(err, "n=0");
        if (!eng_cpu_impl_ok(ENG_CPU_AVX512)) {
            CHECK_EQ(eng_cpu_gemv(err, ENG_CPU_AVX512, NULL, &l, x, 1, y), AWQ_EUNSUPPORTED);
            CHECK_CONTAINS(err, "'avx512' are not supported");
        }
    }

    CASE("cpu-2.4", "blocked GEMM: every register-block remainder, column blocks, k-chunks, split calls");
    /* The AVX-512 GEMM runs tokens in register blocks (6 at a time) and columns in blocks of
     * 256 packed columns; every token count up to two blocks and beyond one kernel call (64)
     * must still equal the GEMV bitwise and the fp64 reference within the usual tolerance.
     * 2208 outputs = 276 packed columns: two column blocks, the last tile 4 columns wide;
     * 1024 rows at group 128: two k-chunks. */
    for (int m = 1; m <= 13; m++) check_linear(pool, 256, 136, 64, m, 40 + (uint64_t)m);
    check_linear(pool, 1024, 2208, 128, 17, 60);
    check_linear(pool, 1024, 2208, 128, 67, 61);
    check_linear(pool, 1536, 72, 128, 131, 62); /* three kernel calls of at most 64 tokens */
    check_linear(pool, 640, 136, 128, 9, 63);   /* a last k-chunk of one group */
    check_linear(pool, 1024, 40, 512, 7, 64);   /* one group per k-chunk */

    CASE("cpu-2.5", "the GEMM does not depend on the thread count (bitwise)");
    {
        eng_model *mm = tm_create(8, 8, 0, 1, 1, 8, 8, 8, 0, 1, 19);
        tm_rng r = {25};
        eng_qlinear l;
        tm_qlinear(mm, &r, &l, 512, 2184, 128);
        const int m = 23;
        float *x = malloc(sizeof(float) * m * 512), *a = malloc(sizeof(float) * m * 2184),
              *b = malloc(sizeof(float) * m * 2184);
        for (int i = 0; i < m * 512; i++) x[i] = tm_unif(&r) - 0.5f;
        CHECK_EQ(eng_cpu_gemm(err, ENG_CPU_AUTO, NULL, &l, x, m, a), 0);
        for (int nt = 2; nt <= 5; nt++) {
            eng_cpu_pool *pn = eng_cpu_pool_create(err, nt);
            CHECK(pn != NULL);
            memset(b, 0, sizeof(float) * m * 2184);
            CHECK_EQ(eng_cpu_gemm(err, ENG_CPU_AUTO, pn, &l, x, m, b), 0);
            CHECK(memcmp(a, b, sizeof(float) * m * 2184) == 0);
            eng_cpu_pool_free(pn);
        }
        free(x), free(a), free(b);
        tm_free(mm);
    }

    CASE("cpu-3.1", "fp16 lm_head product of every impl vs fp64, odd k, several tokens");
    {
        const int n = 37, k = 77, m = 3;
        eng_model *mm = tm_create(8, 8, 0, 1, 1, 8, 8, 8, 0, 1, 11);
        tm_rng r = {12};
        uint16_t *w = tm_f16(mm, &r, (size_t)n * k, -1, 1);
        float x[3 * 77], y[3 * 37];
        for (int i = 0; i < m * k; i++) x[i] = tm_unif(&r) - 0.5f;
        for (size_t ii = 0; ii < 3; ii++) {
            if (!eng_cpu_impl_ok(IMPLS[ii])) continue;
            CHECK_EQ(eng_cpu_f16_matmul(err, IMPLS[ii], pool, w, n, k, x, m, y), 0);
            double worst = 0;
            for (int mi = 0; mi < m; mi++)
                for (int v = 0; v < n; v++) {
                    double s = 0;
                    for (int j = 0; j < k; j++) s += (double)x[mi * k + j] * awq_f16_to_f32(w[v * k + j]);
                    worst = fmax(worst, fabs(s - y[mi * n + v]));
                }
            CHECK(worst < 1e-5);
        }
        tm_free(mm);
    }

    CASE("cpu-4.1", "RMSNorm against the direct formula");
    {
        float x[67], out[67];
        uint16_t w[67];
        tm_rng r = {3};
        double ss = 0;
        for (int i = 0; i < 67; i++) {
            x[i] = 3 * tm_unif(&r) - 1.5f;
            w[i] = awq_f32_to_f16(0.5f + tm_unif(&r));
            ss += (double)x[i] * x[i];
        }
        eng_cpu_rmsnorm(out, x, w, 67, 1e-6f);
        double worst = 0;
        for (int i = 0; i < 67; i++)
            worst = fmax(worst, fabs(out[i] - x[i] / sqrt(ss / 67 + 1e-6) * awq_f16_to_f32(w[i])));
        CHECK(worst < 1e-5);
        eng_cpu_rmsnorm(x, x, w, 67, 1e-6f); /* in place */
        CHECK(memcmp(x, out, sizeof x) == 0);
    }

    CASE("cpu-4.2", "RoPE: rotate_half pairs (i, i+hd/2), identity at position 0, direct formula elsewhere");
    {
        float v[2 * 16], v0[2 * 16];
        for (int i = 0; i < 32; i++) v0[i] = v[i] = (float)(i % 7) - 3.0f;
        eng_cpu_rope(v, 2, 16, 0, 10000.0f);
        CHECK(memcmp(v, v0, sizeof v) == 0);
        eng_cpu_rope(v, 2, 16, 37, 10000.0f);
        double worst = 0;
        for (int h = 0; h < 2; h++)
            for (int i = 0; i < 8; i++) {
                double a = 37 * pow(10000.0, -2.0 * i / 16), x0 = v0[h * 16 + i], x1 = v0[h * 16 + i + 8];
                worst = fmax(worst, fabs(v[h * 16 + i] - (x0 * cos(a) - x1 * sin(a))));
                worst = fmax(worst, fabs(v[h * 16 + i + 8] - (x1 * cos(a) + x0 * sin(a))));
            }
        CHECK(worst < 1e-4);
    }

    CASE("cpu-4.3", "sliding window: query at i sees keys j with i - W < j <= i");
    CHECK_EQ(eng_cpu_attn_lo(0, 8), 0);
    CHECK_EQ(eng_cpu_attn_lo(7, 8), 0);
    CHECK_EQ(eng_cpu_attn_lo(8, 8), 1);
    CHECK_EQ(eng_cpu_attn_lo(40, 8), 33); /* 8 keys: 33..40 */
    CHECK_EQ(eng_cpu_attn_lo(40, 0), 0);

    CASE("cpu-4.4", "one attention head against a direct softmax");
    {
        float q[8], kc[5 * 16], vc[5 * 16], out[8], scr[5];
        tm_rng r = {77};
        for (int i = 0; i < 8; i++) q[i] = tm_unif(&r) * 2 - 1;
        for (int i = 0; i < 80; i++) kc[i] = tm_unif(&r) * 2 - 1, vc[i] = tm_unif(&r) * 2 - 1;
        eng_cpu_attn_head(q, kc, vc, 16, 8, 8, 1, 4, scr, out); /* kv slice at 8, keys 1..4 */
        double p[5], sum = 0, worst = 0;
        for (int j = 1; j <= 4; j++) {
            double s = 0;
            for (int d = 0; d < 8; d++) s += q[d] * kc[j * 16 + 8 + d];
            sum += (p[j] = exp(s / sqrt(8.0)));
        }
        for (int d = 0; d < 8; d++) {
            double a = 0;
            for (int j = 1; j <= 4; j++) a += p[j] / sum * vc[j * 16 + 8 + d];
            worst = fmax(worst, fabs(a - out[d]));
        }
        CHECK(worst < 1e-5);
    }

    CASE("cpu-5.1", "forward vs fp64 reference: GQA (8 heads, 2 kv heads)");
    check_forward("gqa", 8, 2, 0, 0, 20);
    CASE("cpu-5.2", "forward vs fp64 reference: MHA, tied embeddings");
    check_forward("mha tied", 4, 4, 0, 1, 17);
    CASE("cpu-5.3", "forward vs fp64 reference: sliding window 5 on 30 tokens");
    check_forward("window", 4, 2, 5, 0, 30);

    CASE("cpu-6.1", "backend errors: slots run out, context overflow, bad token, bad config");
    {
        eng_model *m = tm_create(32, 64, 1, 2, 1, 16, 20, 32, 0, 0, 5);
        eng_backend_opts o = {.threads = 1, .max_ctx = 8, .max_seqs = 1};
        void *st;
        CHECK_EQ(eng_cpu_backend.create(err, m, &o, &st), 0);
        int slot, slot2;
        CHECK_EQ(eng_cpu_backend.slot_alloc(err, st, &slot), 0);
        CHECK_EQ(eng_cpu_backend.slot_alloc(err, st, &slot2), AWQ_EBUSY);
        CHECK_CONTAINS(err, "all 1 sequence slots are in use");
        size_t wb, kvb;
        eng_cpu_backend.memory(st, &wb, &kvb);
        CHECK_EQ(wb, 0);
        CHECK_EQ(kvb, 1 * 8 * 16 * 2 * 4);
        int32_t toks[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
        int pos = 0, n = 9;
        float lg[20];
        eng_batch b = {.n_seq = 1, .slot = &slot, .pos = &pos, .n_tokens = &n, .tokens = toks, .logits = lg};
        CHECK_EQ(eng_cpu_backend.forward(err, st, &b), AWQ_ECONTEXT);
        CHECK_CONTAINS(err, "positions 0..8 exceed the context of 8 tokens");
        n = 2;
        toks[1] = 20;
        CHECK_EQ(eng_cpu_backend.forward(err, st, &b), AWQ_ERANGE);
        CHECK_CONTAINS(err, "id 20 outside the vocabulary of 20");
        toks[1] = 2;
        int32_t am;
        b.argmax = &am;
        CHECK_EQ(eng_cpu_backend.forward(err, st, &b), 0);
        int best = 0;
        for (int i = 1; i < 20; i++) best = lg[i] > lg[best] ? i : best;
        CHECK_EQ(am, best);
        /* picking (backend.h): bad requests are refused with the field named, nothing runs */
        {
            eng_pick pk = {.mode = ENG_PICK_TOP, .temperature = 1.0f, .top = 3};
            eng_pick_edit ed = {25, 1.0f, 0};
            int32_t ids[3];
            float ls[3];
            eng_pick_out po = {.ids = ids, .l = ls};
            eng_batch bp = b;
            bp.argmax = NULL, bp.pick = &pk, bp.pick_out = &po;
            static const struct {
                int mode, top, n_edit;
                float t;
                double u;
                const char *msg;
            } bad[] = {{9, 3, 0, 1.0f, 0, "pick mode 9"},
                       {ENG_PICK_TOP, 0, 0, 1.0f, 0, "pick top 0"},
                       {ENG_PICK_TOP, ENG_PICK_MAX + 1, 0, 1.0f, 0, "pick top 1025"},
                       {ENG_PICK_DRAW, 0, 0, 0.0f, 0.5, "pick temperature 0"},
                       {ENG_PICK_DRAW, 0, 0, 1.0f, 1.0, "pick draw at 1"},
                       {ENG_PICK_TOP, 3, 1, 1.0f, 0, "edit of token 25 outside the vocabulary of 20"},
                       {ENG_PICK_FULL, 0, 1, 1.0f, 0, "a FULL pick needs logits and carries no edits"}};
            for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                pk = (eng_pick){.mode = bad[i].mode, .temperature = bad[i].t, .top = bad[i].top, .u = bad[i].u,
                                .edit = &ed, .n_edit = bad[i].n_edit};
                err[0] = 0;
                const int rc = eng_cpu_backend.forward(err, st, &bp);
                CHECK(rc == AWQ_EINVAL || rc == AWQ_ERANGE);
                CHECK_CONTAINS(err, bad[i].msg);
            }
            /* a good one: the top 3 of the row, sorted, best first */
            pk = (eng_pick){.mode = ENG_PICK_TOP, .temperature = 1.0f, .top = 3};
            CHECK_EQ(eng_cpu_backend.forward(err, st, &bp), 0);
            CHECK_EQ(po.n, 3);
            CHECK_EQ(po.ids[0], best);
            CHECK(po.l[0] >= po.l[1] && po.l[1] >= po.l[2]);
            float row[20];
            CHECK_EQ(eng_cpu_backend.row(err, st, 0, row), 0);
            CHECK(memcmp(row, lg, sizeof row) == 0); /* no edits: the row as computed */
            CHECK_EQ(eng_cpu_backend.row(err, st, 1, row), AWQ_EINVAL);
            CHECK_CONTAINS(err, "logits row 1");
        }
        eng_cpu_backend.slot_free(st, slot);
        CHECK_EQ(eng_cpu_backend.forward(err, st, &b), AWQ_EINVAL);
        CHECK_CONTAINS(err, "slot 0 is not allocated");
        eng_cpu_backend.memory(st, &wb, &kvb);
        CHECK_EQ(kvb, 0);
        CHECK_EQ(eng_cpu_backend.slot_alloc(err, st, &slot), 0);
        eng_cpu_backend.destroy(st);
        m->cfg.kv_heads = 3; /* 2 heads, 3 kv heads */
        CHECK_EQ(eng_cpu_backend.create(err, m, &o, &st), AWQ_EINVAL);
        CHECK_CONTAINS(err, "not a multiple of num_key_value_heads 3");
        m->cfg.kv_heads = 1;
        m->layers[0].down.in = 32;
        CHECK_EQ(eng_cpu_backend.create(err, m, &o, &st), AWQ_EINVAL);
        CHECK_CONTAINS(err, "layer 0 down_proj: shape (32, 32), expected (64, 32)");
        m->layers[0].down.in = 64;
        o.max_ctx = 5000;
        CHECK_EQ(eng_cpu_backend.create(err, m, &o, &st), AWQ_ECONTEXT);
        CHECK_CONTAINS(err, "exceeds the model's max_position_embeddings 4096");
        tm_free(m);
    }

    eng_cpu_pool_free(pool);
    return h_finish();
}
