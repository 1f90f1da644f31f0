/* test_sample.c - the sampler: greedy, top-k never leaves the top k, top-p keeps the smallest
 * set reaching the mass, min-p, typical-p, seeds reproduce and differ, penalties change exactly
 * the right logits, logit bias, raw-logit logprobs, generation_config defaults, every
 * validation message, and on a 6000-token vocabulary the selection paths (top-k heap, growing
 * top-p prefix) against a full sort.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "sample.h"

#define V 10

/* the working memory every sampler of these tests shares, as a generator's do */
static eng_samp_scratch *g_sc;

static eng_samp_params base(void) {
    eng_samp_params p;
    eng_samp_params_default(&p, NULL);
    p.has_seed = true;
    p.seed = 42;
    return p;
}

/* draw n tokens with p from logits; counts per id */
static void draw(eng_samp_params p, const float *lg, int n, int *cnt) {
    char err[AWQ_ERR_LEN];
    eng_samp *s = eng_samp_create(err, &p, V);
    memset(cnt, 0, sizeof(int) * V);
    eng_samp_result r;
    for (int i = 0; i < n; i++) {
        if (eng_samp_sample(err, s, g_sc, lg, NULL, 0, &r)) break;
        cnt[r.id]++;
    }
    eng_samp_free(s);
}

/* Large vocabularies (the selection paths: a heap for top-k, a growing sorted prefix for the
 * top-p nucleus): the chosen token's rank in the full (logit desc, id asc) order must lie inside
 * what a full sort keeps. */
#define VB 6000

/* rank of id in the order the sampler sorts by: higher logit first, then lower id */
static int rank_of(const float *lg, int n, int id) {
    int r = 0;
    for (int v = 0; v < n; v++)
        if (lg[v] > lg[id] || (lg[v] == lg[id] && v < id)) r++;
    return r;
}

/* tokens the top-p nucleus holds over the full softmax of lg at temperature t: the sorted
 * prefix whose mass first reaches top_p (double precision: the sampler may keep one more) */
static int nucleus_size(const float *lg, int n, float t, float top_p) {
    float *srt = malloc(sizeof *srt * (size_t)n);
    memcpy(srt, lg, sizeof *srt * (size_t)n);
    for (int i = 1; i < n; i++) { /* insertion sort, descending: test sizes only */
        float x = srt[i];
        int j = i;
        while (j > 0 && srt[j - 1] < x) srt[j] = srt[j - 1], j--;
        srt[j] = x;
    }
    double z = 0, cum = 0;
    for (int i = 0; i < n; i++) z += exp((srt[i] - srt[0]) / t);
    int k = 0;
    while (k < n) {
        cum += exp((srt[k++] - srt[0]) / t) / z;
        if (cum >= top_p) break;
    }
    free(srt);
    return k;
}

/* the worst rank_of over draws with seeds 0..299 of p over lg (VB tokens); *hit: some draw had
 * rank `mark` */
static int worst_rank(eng_samp_params p, const float *lg, eng_samp_scratch *sc, int mark, int *hit) {
    char err[AWQ_ERR_LEN];
    eng_samp_result r;
    int worst = 0;
    *hit = 0;
    for (int seed = 0; seed < 300; seed++) {
        p.seed = (uint64_t)seed;
        eng_samp *s = eng_samp_create(err, &p, VB);
        CHECK_EQ(eng_samp_sample(err, s, sc, lg, NULL, 0, &r), 0);
        const int rk = rank_of(lg, VB, r.id);
        worst = rk > worst ? rk : worst;
        *hit |= rk == mark;
        eng_samp_free(s);
    }
    return worst;
}

static void test_large_vocab(void) {
    char err[AWQ_ERR_LEN];
    eng_samp_scratch *sc = eng_samp_scratch_create(err, VB);
    float *lg = malloc(sizeof *lg * VB);
    eng_samp_result r;
    uint32_t x = 99;
    /* logits on a 0.25 grid: many ties, so the id order decides inside the top k */
    for (int v = 0; v < VB; v++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        lg[v] = (float)((int)(x % 64) - 32) * 0.25f;
    }
    CASE("samp-8.1", "6000 tokens with ties: top-k 1 / 7 / 40 never leaves the first k of the full sort");
    {
        static const int ks[] = {1, 7, 40};
        for (int i = 0; i < 3; i++) {
            eng_samp_params p = base();
            p.temperature = 1.5f, p.top_k = ks[i], p.top_p = 1.0f, p.min_p = 0.0f;
            int seen_last = 0;
            CHECK(worst_rank(p, lg, sc, ks[i] - 1, &seen_last) < ks[i]);
            CHECK(seen_last); /* the k-th token is reachable: the set is not cut short */
        }
    }
    CASE("samp-8.2", "a flat 6000-token distribution, top-p 0.5: the nucleus (3000 tokens in id order) grows past "
                     "the first sorted prefixes");
    {
        float *flat = malloc(sizeof *flat * VB);
        for (int v = 0; v < VB; v++) flat[v] = 1.0f;
        eng_samp_params p = base();
        p.temperature = 1.0f, p.top_k = 0, p.top_p = 0.5f, p.min_p = 0.0f;
        int mx = 0;
        double mean = 0;
        for (int seed = 0; seed < 400; seed++) {
            p.seed = (uint64_t)seed;
            eng_samp *s = eng_samp_create(err, &p, VB);
            CHECK_EQ(eng_samp_sample(err, s, sc, flat, NULL, 0, &r), 0);
            mx = r.id > mx ? r.id : mx;
            mean += r.id / 400.0;
            eng_samp_free(s);
        }
        CHECK(mx <= 3000);  /* ties in id order: ids 0..2999 (one more at the float boundary) */
        CHECK(mx >= 2800);  /* and the whole nucleus is used, not a prefix of it */
        CHECK(mean > 1300 && mean < 1700);
        free(flat);
    }
    CASE("samp-8.3", "top-p 0.9 over 6000 tokens whose nucleus needs ~900 of them: inside the full sort's nucleus");
    {
        eng_samp_params p = base();
        p.temperature = 0.8f, p.top_k = 0, p.top_p = 0.9f, p.min_p = 0.0f;
        for (int v = 0; v < VB; v++) lg[v] = (v * 7919) % 6 == 0 ? 4.0f + (float)(v % 5) * 0.01f : 0.0f;
        const int k = nucleus_size(lg, VB, p.temperature, p.top_p);
        CHECK(k > 256 && k < 1000);
        int hit = 0;
        const int worst = worst_rank(p, lg, sc, k - 1, &hit);
        CHECK(worst <= k); /* rank k: the one token a float boundary may add */
        CHECK(worst >= k / 2);
    }
    CASE("samp-8.5", "min-p 0.2 alone over 6000 tokens (filtered without a full sort): only tokens within ln 5 of the "
                     "best, the lowest kept level reached");
    {
        for (int v = 0; v < VB; v++) { /* the 0.25 grid again: best 7.75, kept >= 7.75 - ln 5 = 6.14 */
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            lg[v] = (float)((int)(x % 64) - 32) * 0.25f;
        }
        float best = -INFINITY;
        for (int v = 0; v < VB; v++) best = lg[v] > best ? lg[v] : best;
        eng_samp_params p = base();
        p.temperature = 1.0f, p.top_k = 0, p.top_p = 1.0f, p.min_p = 0.2f;
        float lowest = INFINITY;
        for (int seed = 0; seed < 400; seed++) {
            p.seed = (uint64_t)seed;
            eng_samp *s = eng_samp_create(err, &p, VB);
            CHECK_EQ(eng_samp_sample(err, s, sc, lg, NULL, 0, &r), 0);
            lowest = lg[r.id] < lowest ? lg[r.id] : lowest;
            eng_samp_free(s);
        }
        CHECK(best == 7.75f);
        CHECK(lowest == 6.25f); /* 6.25 kept and reached, 6.0 (below 6.14) never drawn */
    }
    CASE("samp-8.4", "without logprobs the raw log-softmax pass is skipped: logprob 0, no alternatives");
    {
        eng_samp_params p = base();
        p.logprobs = 0;
        eng_samp *s = eng_samp_create(err, &p, VB);
        CHECK_EQ(eng_samp_sample(err, s, sc, lg, NULL, 0, &r), 0);
        CHECK(r.logprob == 0.0f);
        CHECK_EQ(r.n_top, 0);
        eng_samp_free(s);
    }
    free(lg);
    eng_samp_scratch_free(sc);
}

/* One token through the picking path (sample.h): plan, the reference reduction on an edited
 * copy of the row, finish, and the edited row when the answer is not enough. shrink > 0 cuts a
 * TOP request to that many candidates (as a backend with a smaller answer would), to reach
 * the need-row path. */
static int pick_one(char *err, eng_samp *s, eng_samp_scratch *sc, const float *lg, int n, const int32_t *hist,
                    size_t n_hist, int shrink, eng_samp_result *r, int *rows, eng_pick *req_out) {
    static eng_pick_edit ed[ENG_SAMP_MAX_BIAS + 256];
    static int32_t ids[ENG_PICK_MAX];
    static float ls[ENG_PICK_MAX];
    eng_pick req;
    eng_samp_plan(s, sc, hist, n_hist, &req, ed, eng_samp_edit_cap(s, 256));
    if (req_out) *req_out = req;
    if (req.mode == ENG_PICK_FULL) return eng_samp_sample(err, s, sc, lg, hist, n_hist, r);
    float *row = malloc(sizeof *row * (size_t)n);
    memcpy(row, lg, sizeof *row * (size_t)n);
    eng_samp_pick_edits(row, &req);
    if (shrink > 0 && req.mode == ENG_PICK_TOP && req.top > shrink) req.top = shrink;
    eng_pick_out po = {.ids = ids, .l = ls};
    int rc = eng_samp_pick(err, sc, row, n, &req, &po);
    bool need = false;
    if (!rc) rc = eng_samp_finish(err, s, sc, &req, &po, r, &need);
    if (!rc && need) {
        (*rows)++;
        rc = eng_samp_sample_edited(err, s, sc, row, r);
    }
    free(row);
    return rc;
}

static void test_pick(void) {
    char err[AWQ_ERR_LEN];
    eng_samp_scratch *sc = eng_samp_scratch_create(err, VB);
    float *lg = malloc(sizeof *lg * VB);
    eng_samp_result r;
    CASE("samp-9.1", "plans: greedy is an argmax, pure temperature a draw, filters a TOP, logprobs / typical-p alone / "
                     "top-k > 1024 / too many edits the whole row; edits merge the bias and count the window");
    {
        eng_samp_bias b[3] = {{5, 1.0f}, {9, -INFINITY}, {5, 0.5f}};
        const int32_t hist[6] = {5, 2, 2, 7, 2, 4000};
        eng_pick_edit ed[16];
        eng_pick req;
        eng_samp_params p = base();
        p.temperature = 0, p.logit_bias = b, p.n_logit_bias = 3, p.frequency_penalty = 0.5f, p.penalty_last_n = 5;
        eng_samp *s = eng_samp_create(err, &p, VB);
        CHECK_EQ(eng_samp_edit_cap(s, 100), 2 + 5);
        eng_samp_plan(s, sc, hist, 6, &req, ed, 16);
        CHECK_EQ(req.mode, ENG_PICK_ARGMAX);
        CHECK_EQ(req.n_edit, 5); /* 5 (bias and window), 9 (bias), 2 (x3), 7, 4000; hist[0] is outside the window */
        int ok = req.n_edit == 5 && ed[0].id == 5 && ed[0].delta == 1.5f && ed[0].count == 0 && ed[1].id == 9 &&
                 ed[2].id == 2 && ed[2].count == 3 && ed[2].delta == 0 && ed[3].id == 7 && ed[4].id == 4000 &&
                 ed[4].count == 1;
        CHECK(ok);
        eng_samp_plan(s, sc, hist, 6, &req, ed, 4); /* one edit too many */
        CHECK_EQ(req.mode, ENG_PICK_FULL);
        eng_samp_plan(s, sc, hist, 6, &req, ed, 5); /* the scratch was left clean: the same edits again */
        CHECK_EQ(req.n_edit, 5);
        eng_samp_free(s);
        static const struct {
            float t, tp, mp, typ;
            int k, lp, mode, top;
        } cs[] = {{0.7f, 1, 0, 1, 0, 0, ENG_PICK_DRAW, 0},   {0.7f, 0.9f, 0, 1, 0, 0, ENG_PICK_NUCLEUS, 0},
                  {0.7f, 1, 0.1f, 1, 0, 0, ENG_PICK_NUCLEUS, 0}, {0.7f, 1, 0, 1, 40, 0, ENG_PICK_TOP, 40},
                  {0.7f, 1, 0, 0.8f, 0, 0, ENG_PICK_FULL, 0}, {0.7f, 1, 0, 0.8f, 40, 0, ENG_PICK_TOP, 40},
                  {0.7f, 1, 0, 1, 1025, 0, ENG_PICK_FULL, 0}, {0, 1, 0, 1, 0, 2, ENG_PICK_FULL, 0}};
        for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
            eng_samp_params q = base();
            q.temperature = cs[i].t, q.top_p = cs[i].tp, q.min_p = cs[i].mp, q.typical_p = cs[i].typ;
            q.top_k = cs[i].k, q.logprobs = cs[i].lp;
            s = eng_samp_create(err, &q, VB);
            eng_samp_plan(s, sc, NULL, 0, &req, NULL, 0);
            if (req.mode != cs[i].mode || req.top != cs[i].top) fprintf(stderr, "   plan case %zu\n", i);
            CHECK_EQ(req.mode, cs[i].mode);
            CHECK_EQ(req.top, cs[i].top);
            if (req.mode == ENG_PICK_DRAW || req.mode == ENG_PICK_NUCLEUS) CHECK(req.u >= 0 && req.u < 1);
            if (req.mode == ENG_PICK_NUCLEUS) CHECK(req.top_p == cs[i].tp && req.min_p == cs[i].mp);
            eng_samp_free(s);
        }
    }
    CASE("samp-9.2", "6000 tokens, 16 sampler settings x 12 seeds x 20 tokens with the history growing: plan + "
                     "reduction + finish choose the ids of the whole-row sampler (top-p / min-p nuclei of thousands of tokens "
                     "too), through the need-row path as well");
    {
        eng_samp_bias b[4] = {{11, 3.0f}, {12, -INFINITY}, {13, -2.0f}, {11, 0.5f}};
        int diff = 0, rows = 0, total = 0;
        for (int cfg = 0; cfg < 16; cfg++) {
            eng_samp_params p = base();
            p.temperature = 0.6f + 0.1f * (float)(cfg % 5);
            switch (cfg % 8) {
            case 0: p.temperature = 0; break;
            case 1: break; /* pure temperature */
            case 2: p.top_k = 50; break;
            case 3: p.top_p = cfg < 8 ? 0.9f : 0.3f; break;
            case 4: p.min_p = cfg < 8 ? 0.05f : 0.3f; break;
            case 5: p.top_k = 300, p.top_p = 0.8f, p.min_p = 0.01f, p.typical_p = 0.9f; break;
            case 6: p.top_p = 0.95f, p.min_p = 0.02f; break;
            default: p.typical_p = 0.8f; break;
            }
            if (cfg >= 8) { /* the same with bias and penalties */
                p.logit_bias = b, p.n_logit_bias = 4;
                p.repetition_penalty = 1.2f, p.frequency_penalty = 0.1f, p.presence_penalty = 0.3f, p.penalty_last_n = 16;
            }
            for (int seed = 0; seed < 12; seed++) {
                p.seed = (uint64_t)(1000 + cfg * 100 + seed);
                eng_samp *s1 = eng_samp_create(err, &p, VB), *s2 = eng_samp_create(err, &p, VB);
                int32_t hist[64];
                size_t nh = 0;
                uint32_t x = (uint32_t)(7 + seed * 31 + cfg);
                for (int i = 0; i < 8; i++) hist[nh++] = (int32_t)((i * 37 + seed) % 40);
                for (int t = 0; t < 20; t++) {
                    for (int v = 0; v < VB; v++) { /* peaked: a few strong tokens over a long flat tail */
                        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
                        lg[v] = (float)(x % 1000) * 0.004f + (v % 97 == 0 ? 4.0f : 0.0f) + (v < 40 ? 2.0f : 0.0f);
                    }
                    eng_samp_result r2;
                    int rc1 = eng_samp_sample(err, s1, sc, lg, hist, nh, &r);
                    int rc2 = pick_one(err, s2, sc, lg, VB, hist, nh, cfg % 2 ? 64 : 0, &r2, &rows, NULL);
                    CHECK_EQ(rc1, 0);
                    CHECK_EQ(rc2, 0);
                    diff += r.id != r2.id;
                    if (r.id != r2.id && getenv("DBG")) fprintf(stderr, "cfg %d seed %d t %d: %d vs %d\n", cfg, seed, t, r.id, r2.id);
                    total++;
                    hist[nh++] = r.id;
                }
                eng_samp_free(s1);
                eng_samp_free(s2);
            }
        }
        if (diff) fprintf(stderr, "   %d of %d ids differ\n", diff, total);
        CHECK_EQ(diff, 0);
        CHECK(rows > 0); /* the short answers (64 of a top-k of 300) went back for the row */
    }
    CASE("samp-9.4", "1500 random settings on vocabularies of 1-300 tokens (bans, NaN, ties, top-k past the "
                     "vocabulary, whole-history penalties): the picking path chooses what the whole-row sampler "
                     "chooses, errors included");
    {
        uint32_t x = 2024;
#define RND() (x ^= x << 13, x ^= x >> 17, x ^= x << 5, x)
        int diff = 0, errs = 0, total = 0;
        for (int it = 0; it < 1500; it++) {
            const int n = 1 + (int)(RND() % 300);
            eng_samp_params p = base();
            p.seed = RND();
            const uint32_t rb = RND();
            p.temperature = (rb & 3) == 0 ? 0.0f : 0.2f + (float)(RND() % 100) * 0.03f;
            p.top_k = (rb & 4) ? (int)(RND() % (unsigned)(n + 20)) : 0;
            p.top_p = (rb & 8) ? 0.05f + (float)(RND() % 95) * 0.01f : 1.0f;
            p.min_p = (rb & 16) ? (float)(RND() % 60) * 0.01f : 0.0f;
            p.typical_p = (rb & 32) && (rb & 64) ? 0.3f + (float)(RND() % 70) * 0.01f : 1.0f;
            p.repetition_penalty = (rb & 128) ? 0.5f + (float)(RND() % 20) * 0.1f : 1.0f;
            p.frequency_penalty = (rb & 256) ? (float)(RND() % 10) * 0.1f : 0.0f;
            p.presence_penalty = (rb & 512) ? (float)(RND() % 10) * 0.1f : 0.0f;
            p.penalty_last_n = (rb & 1024) ? -1 : (int)(RND() % 20);
            p.logprobs = (rb & 2048) && (rb & 4096) ? 2 : 0;
            eng_samp_bias b[8];
            p.n_logit_bias = (rb & 8192) ? (int)(RND() % 8) : 0;
            for (int i = 0; i < p.n_logit_bias; i++)
                b[i] = (eng_samp_bias){(int32_t)(RND() % (unsigned)n), (RND() & 3) ? (float)(RND() % 40) * 0.25f - 5.0f
                                                                                   : -INFINITY};
            p.logit_bias = b;
            eng_samp *s1 = eng_samp_create(err, &p, n), *s2 = eng_samp_create(err, &p, n);
            CHECK(s1 && s2);
            if (!s1 || !s2) break;
            int32_t hist[40];
            size_t nh = 0;
            for (int i = 0; i < 12; i++) hist[nh++] = (int32_t)(RND() % (unsigned)n);
            for (int t = 0; t < 5; t++) {
                for (int v = 0; v < n; v++) {
                    const uint32_t y = RND();
                    lg[v] = (y & 63) == 0 ? NAN : (y & 63) == 1 ? -INFINITY : (float)((int)(y % 41) - 20) * 0.25f;
                }
                eng_samp_result r1, r2;
                int rows = 0;
                const int rc1 = eng_samp_sample(err, s1, sc, lg, hist, nh, &r1);
                const int rc2 = pick_one(err, s2, sc, lg, n, hist, nh, 0, &r2, &rows, NULL);
                total++;
                if (rc1 != rc2) errs++;
                else if (!rc1 && r1.id != r2.id) diff++;
                if (rc1) break;
                hist[nh++] = r1.id;
            }
            eng_samp_free(s1);
            eng_samp_free(s2);
        }
#undef RND
        if (diff || errs) fprintf(stderr, "   %d ids and %d results differ of %d\n", diff, errs, total);
        CHECK_EQ(diff, 0);
        CHECK_EQ(errs, 0);
    }
    CASE("samp-9.3", "the reduction: TOP on a tie-heavy grid is the full sort's first k with lmax, z and the cut; a "
                     "banned row answers nothing and finishes with the banned error");
    {
        uint32_t x = 5;
        for (int v = 0; v < VB; v++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            lg[v] = (float)((int)(x % 64) - 32) * 0.25f;
        }
        static int32_t ids[ENG_PICK_MAX];
        static float ls[ENG_PICK_MAX];
        eng_pick req = {.mode = ENG_PICK_TOP, .temperature = 0.5f, .top = 300};
        eng_pick_out po = {.ids = ids, .l = ls};
        CHECK_EQ(eng_samp_pick(err, sc, lg, VB, &req, &po), 0);
        CHECK_EQ(po.n, 300);
        int sorted = 1, cut = 0;
        double z = 0;
        for (int v = 0; v < VB; v++) cut += lg[v] / 0.5f >= 15.5f - 40.0f, z += exp(lg[v] / 0.5 - 15.5);
        for (int i = 0; i < po.n; i++) sorted &= rank_of(lg, VB, ids[i]) == i && ls[i] == lg[ids[i]] / 0.5f;
        CHECK(sorted);
        CHECK(po.lmax == 15.5f);
        CHECK_EQ(po.n_cut, cut);
        CHECK(fabs(po.z - z) < 1e-6 * z);
        for (int v = 0; v < VB; v++) lg[v] = -INFINITY;
        lg[17] = NAN;
        CHECK_EQ(eng_samp_pick(err, sc, lg, VB, &req, &po), 0);
        CHECK_EQ(po.n_cut, 0);
        eng_samp_params p = base();
        p.top_p = 0.5f;
        eng_samp *s = eng_samp_create(err, &p, VB);
        int rows = 0;
        CHECK_EQ(pick_one(err, s, sc, lg, VB, NULL, 0, 0, &r, &rows, NULL), AWQ_EINVAL);
        CHECK_CONTAINS(err, "every token is banned");
        eng_samp_free(s);
        req.mode = 7;
        CHECK_EQ(eng_samp_pick(err, sc, lg, VB, &req, &po), AWQ_EINVAL);
        /* an edited argmax the backend could not reduce (ties past what it gathers): the row */
        for (int v = 0; v < VB; v++) lg[v] = 1.0f;
        lg[4321] = 2.0f;
        p = base();
        p.temperature = 0;
        s = eng_samp_create(err, &p, VB);
        eng_pick am = {.mode = ENG_PICK_ARGMAX};
        eng_pick_out amo = {.id = -1, .n = -1};
        bool need = false;
        CHECK_EQ(eng_samp_finish(err, s, sc, &am, &amo, &r, &need), 0);
        CHECK(need);
        CHECK_EQ(eng_samp_sample_edited(err, s, sc, lg, &r), 0);
        CHECK_EQ(r.id, 4321);
        amo.n = 0; /* reduced, nothing in the cut: banned */
        CHECK_EQ(eng_samp_finish(err, s, sc, &am, &amo, &r, &need), AWQ_EINVAL);
        CHECK(!need);
        eng_samp_free(s);
    }
    free(lg);
    eng_samp_scratch_free(sc);
}

int main(void) {
    char err[AWQ_ERR_LEN];
    g_sc = eng_samp_scratch_create(err, V);
    if (!g_sc) {
        fprintf(stderr, "scratch: %s\n", err);
        return 1;
    }
    /* probabilities proportional to exp(logit): ids sorted 9 > 8 > ... */
    float lg[V];
    for (int i = 0; i < V; i++) lg[i] = 0.5f * i;
    int cnt[V];
    eng_samp_result r;

    CASE("samp-1.1", "greedy: argmax, lowest id on ties, logits untouched");
    {
        eng_samp_params p = base();
        p.temperature = 0;
        eng_samp *s = eng_samp_create(err, &p, V);
        CHECK(s != NULL);
        float t[V] = {1, 3, 3, 2, 0, 0, 0, 0, 0, 0};
        CHECK_EQ(eng_samp_sample(err, s, g_sc, t, NULL, 0, &r), 0);
        CHECK_EQ(r.id, 1);
        CHECK(t[1] == 3 && t[2] == 3);
        eng_samp_free(s);
    }

    CASE("samp-2.1", "top-k never leaves the top k over many seeded draws");
    {
        eng_samp_params p = base();
        p.top_k = 3;
        p.temperature = 5; /* flat: every token would show up without the filter */
        draw(p, lg, 3000, cnt);
        CHECK_EQ(cnt[0] + cnt[1] + cnt[2] + cnt[3] + cnt[4] + cnt[5] + cnt[6], 0);
        CHECK(cnt[7] > 0 && cnt[8] > 0 && cnt[9] > 0);
    }

    CASE("samp-2.2", "top-p keeps the smallest set whose mass reaches p");
    {
        float t[V] = {0};
        t[9] = logf(0.5f), t[8] = logf(0.3f), t[7] = logf(0.15f);
        for (int i = 0; i < 7; i++) t[i] = logf(0.05f / 7);
        eng_samp_params p = base();
        p.top_p = 0.75f; /* 0.5 + 0.3 = 0.8 >= 0.75: {9, 8} */
        draw(p, t, 4000, cnt);
        CHECK_EQ(cnt[9] + cnt[8], 4000);
        CHECK_NEAR(cnt[9] / 4000.0, 0.5 / 0.8, 0.03);
        p.top_p = 0.5f; /* the best alone */
        draw(p, t, 200, cnt);
        CHECK_EQ(cnt[9], 200);
    }

    CASE("samp-2.3", "min-p drops tokens below min_p * p(best)");
    {
        float t[V] = {0};
        t[9] = logf(0.5f), t[8] = logf(0.26f), t[7] = logf(0.24f);
        for (int i = 0; i < 7; i++) t[i] = -30;
        eng_samp_params p = base();
        p.min_p = 0.5f; /* threshold 0.25: 7 is out */
        draw(p, t, 3000, cnt);
        CHECK_EQ(cnt[7], 0);
        CHECK(cnt[8] > 0 && cnt[9] > 0);
    }

    CASE("samp-2.4", "typical-p keeps the tokens nearest the entropy first");
    {
        float t[V] = {0};
        t[9] = logf(0.7f), t[8] = logf(0.2f), t[7] = logf(0.1f);
        for (int i = 0; i < 7; i++) t[i] = -40;
        /* H = 0.80 nats; |-log p - H|: 9 -> 0.44, 8 -> 0.81, 7 -> 1.50: with mass 0.6 only 9 */
        eng_samp_params p = base();
        p.typical_p = 0.6f;
        draw(p, t, 300, cnt);
        CHECK_EQ(cnt[9], 300);
        p.typical_p = 0.8f; /* 9 then 8 */
        draw(p, t, 3000, cnt);
        CHECK_EQ(cnt[7], 0);
        CHECK(cnt[8] > 0);
    }

    CASE("samp-3.1", "same seed same draws, different seeds differ, distribution follows softmax");
    {
        eng_samp_params p = base();
        int a[64], b[64], c[64];
        for (int pass = 0; pass < 3; pass++) {
            p.seed = pass == 2 ? 43 : 42;
            eng_samp *s = eng_samp_create(err, &p, V);
            for (int i = 0; i < 64; i++) {
                CHECK_EQ(eng_samp_sample(err, s, g_sc, lg, NULL, 0, &r), 0);
                (pass == 0 ? a : pass == 1 ? b : c)[i] = r.id;
            }
            eng_samp_free(s);
        }
        CHECK(memcmp(a, b, sizeof a) == 0);
        CHECK(memcmp(a, c, sizeof a) != 0);
        p.seed = 7;
        draw(p, lg, 20000, cnt);
        double z = 0;
        for (int i = 0; i < V; i++) z += exp(0.5 * i);
        CHECK_NEAR(cnt[9] / 20000.0, exp(4.5) / z, 0.015);
        CHECK_NEAR(cnt[5] / 20000.0, exp(2.5) / z, 0.015);
    }

    CASE("samp-4.1", "repetition penalty: positive logits divided, negative multiplied, only window tokens");
    {
        float t[V] = {2, -2, 1, 1, 1, 1, 1, 1, 1, 3};
        int32_t hist[] = {9, 5, 0, 1}; /* window 3: 5, 0, 1 */
        eng_samp_params p = base();
        p.temperature = 0;
        p.repetition_penalty = 4.0f;
        p.penalty_last_n = 3;
        p.logprobs = 0;
        eng_samp *s = eng_samp_create(err, &p, V);
        CHECK_EQ(eng_samp_sample(err, s, g_sc, t, hist, 4, &r), 0);
        CHECK_EQ(r.id, 9); /* 9 is outside the window: still 3 */
        eng_samp_free(s);
        t[9] = 0.9f; /* now best untouched is 2..8 = 1 (id 2), and 0 is 2/4 = 0.5 */
        s = eng_samp_create(err, &p, V);
        CHECK_EQ(eng_samp_sample(err, s, g_sc, t, hist, 4, &r), 0);
        CHECK_EQ(r.id, 2);
        eng_samp_free(s);
        /* exact values through a forced choice: only id 0 and 1 allowed via bias */
        eng_samp_bias bias[8];
        for (int i = 0; i < 8; i++) bias[i] = (eng_samp_bias){(int32_t)(i + 2), -INFINITY};
        p.logit_bias = bias;
        p.n_logit_bias = 8;
        p.repetition_penalty = 1.5f;
        s = eng_samp_create(err, &p, V);
        CHECK_EQ(eng_samp_sample(err, s, g_sc, t, hist, 4, &r), 0);
        CHECK_EQ(r.id, 0); /* 2/1.5 = 1.33 > -2*1.5 = -3 */
        eng_samp_free(s);
    }

    CASE("samp-4.2", "presence and frequency penalties subtract per presence and per count");
    {
        float t[V] = {5, 4.5f, 0, 0, 0, 0, 0, 0, 0, 0};
        int32_t hist[] = {0, 0, 1};
        eng_samp_params p = base();
        p.temperature = 0;
        p.frequency_penalty = 0.3f; /* 0: 5 - 0.6 = 4.4 < 1: 4.5 - 0.3 = 4.2 ... */
        eng_samp *s = eng_samp_create(err, &p, V);
        CHECK_EQ(eng_samp_sample(err, s, g_sc, t, hist, 3, &r), 0);
        CHECK_EQ(r.id, 0); /* 4.4 vs 4.2 */
        eng_samp_free(s);
        p.frequency_penalty = 0.0f;
        p.presence_penalty = 0.6f; /* 4.4 vs 3.9 */
        s = eng_samp_create(err, &p, V);
        CHECK_EQ(eng_samp_sample(err, s, g_sc, t, hist, 3, &r), 0);
        CHECK_EQ(r.id, 0);
        eng_samp_free(s);
        p.frequency_penalty = 0.3f; /* 5-0.6-0.6 = 3.8 vs 4.5-0.3-0.6 = 3.6 */
        p.presence_penalty = 0.6f;
        t[2] = 3.7f; /* untouched: 3.7 beats 3.6 but not 3.8 */
        s = eng_samp_create(err, &p, V);
        CHECK_EQ(eng_samp_sample(err, s, g_sc, t, hist, 3, &r), 0);
        CHECK_EQ(r.id, 0);
        t[2] = 3.85f;
        CHECK_EQ(eng_samp_sample(err, s, g_sc, t, hist, 3, &r), 0);
        CHECK_EQ(r.id, 2);
        eng_samp_free(s);
    }

    CASE("samp-4.3", "logit bias moves the choice; all banned is an error");
    {
        eng_samp_params p = base();
        p.temperature = 0;
        eng_samp_bias b = {3, 10.0f};
        p.logit_bias = &b;
        p.n_logit_bias = 1;
        eng_samp *s = eng_samp_create(err, &p, V);
        CHECK_EQ(eng_samp_sample(err, s, g_sc, lg, NULL, 0, &r), 0);
        CHECK_EQ(r.id, 3);
        eng_samp_free(s);
        eng_samp_bias all[V];
        for (int i = 0; i < V; i++) all[i] = (eng_samp_bias){i, -INFINITY};
        p.logit_bias = all;
        p.n_logit_bias = V;
        s = eng_samp_create(err, &p, V);
        CHECK_EQ(eng_samp_sample(err, s, g_sc, lg, NULL, 0, &r), AWQ_EINVAL);
        CHECK_CONTAINS(err, "every token is banned");
        eng_samp_free(s);
    }

    CASE("samp-5.1", "logprobs: raw log-softmax, top-n sorted, unaffected by temperature and bias");
    {
        eng_samp_params p = base();
        p.logprobs = 3;
        p.temperature = 0.01f;
        eng_samp_bias b = {0, 100.0f};
        p.logit_bias = &b;
        p.n_logit_bias = 1;
        eng_samp *s = eng_samp_create(err, &p, V);
        CHECK_EQ(eng_samp_sample(err, s, g_sc, lg, NULL, 0, &r), 0);
        double z = 0;
        for (int i = 0; i < V; i++) z += exp(0.5 * i);
        CHECK_EQ(r.id, 0);
        CHECK_NEAR(r.logprob, 0 - log(z), 1e-5);
        CHECK_EQ(r.n_top, 3);
        CHECK_EQ(r.top[0].id, 9);
        CHECK_EQ(r.top[1].id, 8);
        CHECK_EQ(r.top[2].id, 7);
        CHECK_NEAR(r.top[0].logprob, 4.5 - log(z), 1e-5);
        eng_samp_free(s);
    }

    CASE("samp-6.1", "defaults: neutral, then generation_config (do_sample false = greedy)");
    {
        eng_samp_params p;
        eng_samp_params_default(&p, NULL);
        CHECK(p.temperature == 1.0f && p.top_p == 1.0f && p.top_k == 0 && p.max_tokens == 256);
        eng_gen_defaults gd = {0};
        gd.has_temperature = gd.has_top_p = gd.has_top_k = true;
        gd.temperature = 0.7f, gd.top_p = 0.9f, gd.top_k = 40, gd.max_new_tokens = 100;
        eng_samp_params_default(&p, &gd);
        CHECK(p.temperature == 0.7f && p.top_p == 0.9f && p.top_k == 40 && p.max_tokens == 100);
        gd.has_do_sample = true;
        gd.do_sample = false;
        eng_samp_params_default(&p, &gd);
        CHECK(p.temperature == 0.0f);
    }

    CASE("samp-7.1", "validation names the field and the range");
    {
        eng_samp_params p = base();
        p.temperature = -1;
        CHECK_EQ(eng_samp_params_check(err, &p, V), AWQ_EINVAL);
        CHECK_CONTAINS(err, "temperature -1 must be a finite number >= 0");
        p = base(), p.top_p = 0;
        CHECK_EQ(eng_samp_params_check(err, &p, V), AWQ_EINVAL);
        CHECK_CONTAINS(err, "top_p 0 must be in (0, 1]");
        p = base(), p.top_p = 1.5f;
        CHECK_EQ(eng_samp_params_check(err, &p, V), AWQ_EINVAL);
        CHECK_CONTAINS(err, "top_p 1.5 must be in (0, 1]");
        p = base(), p.top_k = -1;
        CHECK_EQ(eng_samp_params_check(err, &p, V), AWQ_EINVAL);
        CHECK_CONTAINS(err, "top_k -1 must be >= 0");
        p = base(), p.min_p = 1.5f;
        CHECK_EQ(eng_samp_params_check(err, &p, V), AWQ_EINVAL);
        CHECK_CONTAINS(err, "min_p 1.5 must be in [0, 1]");
        p = base(), p.max_tokens = 0;
        CHECK_EQ(eng_samp_params_check(err, &p, V), AWQ_EINVAL);
        CHECK_CONTAINS(err, "max_tokens 0 must be > 0");
        p = base(), p.typical_p = 0;
        CHECK_EQ(eng_samp_params_check(err, &p, V), AWQ_EINVAL);
        CHECK_CONTAINS(err, "typical_p 0");
        p = base(), p.repetition_penalty = 0;
        CHECK_EQ(eng_samp_params_check(err, &p, V), AWQ_EINVAL);
        CHECK_CONTAINS(err, "repetition_penalty 0 must be > 0");
        p = base(), p.logprobs = 21;
        CHECK_EQ(eng_samp_params_check(err, &p, V), AWQ_EINVAL);
        CHECK_CONTAINS(err, "logprobs 21 must be in [0, 20]");
        eng_samp_bias b = {V, 1};
        p = base(), p.logit_bias = &b, p.n_logit_bias = 1;
        CHECK_EQ(eng_samp_params_check(err, &p, V), AWQ_EINVAL);
        CHECK_CONTAINS(err, "logit_bias token id 10 outside the vocabulary of 10");
        const char *st[] = {""};
        p = base(), p.stop = st, p.n_stop = 1;
        CHECK_EQ(eng_samp_params_check(err, &p, V), AWQ_EINVAL);
        CHECK_CONTAINS(err, "stop string 0 has 0 bytes");
        const char *st2[] = {"\xff"};
        p.stop = st2;
        CHECK_EQ(eng_samp_params_check(err, &p, V), AWQ_EUTF8);
        int32_t sid = -1;
        p = base(), p.stop_ids = &sid, p.n_stop_ids = 1;
        CHECK_EQ(eng_samp_params_check(err, &p, V), AWQ_EINVAL);
        CHECK_CONTAINS(err, "stop token id -1 outside");
        p = base(), p.temperature = -1;
        CHECK(eng_samp_create(err, &p, V) == NULL);
        CHECK_CONTAINS(err, "temperature");
    }

    CASE("samp-7.1", "the shared scratch: one for many samplers, refused when smaller than the vocabulary");
    {
        eng_samp_params p = base();
        p.temperature = 0;
        eng_samp *a = eng_samp_create(err, &p, V), *b = eng_samp_create(err, &p, V);
        float t[V] = {0, 0, 0, 0, 0, 0, 0, 5, 0, 0};
        CHECK_EQ(eng_samp_sample(err, a, g_sc, t, NULL, 0, &r), 0);
        CHECK_EQ(r.id, 7);
        CHECK_EQ(eng_samp_sample(err, b, g_sc, lg, NULL, 0, &r), 0);
        CHECK_EQ(r.id, 9);
        eng_samp_scratch *small = eng_samp_scratch_create(err, V - 1);
        CHECK(small != NULL);
        if (small) {
            CHECK_EQ(eng_samp_sample(err, a, small, t, NULL, 0, &r), AWQ_EINVAL);
            CHECK_CONTAINS(err, "sampling scratch for 9 tokens, the sampler has 10");
        }
        eng_samp_scratch_free(small);
        CHECK(eng_samp_scratch_create(err, 0) == NULL);
        CHECK_CONTAINS(err, "vocabulary size 0 must be positive");
        eng_samp_free(a);
        eng_samp_free(b);
    }
    eng_samp_scratch_free(g_sc);
    test_large_vocab();
    test_pick();
    return h_finish();
}
