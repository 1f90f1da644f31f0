/* sample.c - the token sampler (see sample.h for the order of operations and conventions). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "awq_util.h"
#include "plat.h"
#include "sample.h"

int eng_samp_max_logprobs(void) { return ENG_SAMP_MAX_LOGPROBS; }
int eng_samp_max_stop(void) { return ENG_SAMP_MAX_STOP; }

/* A candidate's log-space value below the best by more than this has probability < e^-40
 * (4e-18) relative to it; dropping those before sorting changes no float-visible mass and
 * keeps the sort short. */
#define CUT_LOGIT ENG_PICK_CUT /* 40: the backends' reductions cut at the same place */
/* first prefix sorted in search of the top-p nucleus (grows 4x until the mass is reached) */
#define NUCLEUS_FIRST 256

typedef struct cand {
    int32_t id;
    float l; /* logit after temperature */
    float p; /* probability among survivors */
    float key; /* typical-p rank: |-log p - H| */
} cand;

struct eng_samp {
    eng_samp_params p;
    eng_samp_bias *bias; /* (n_bias) own copy, one entry per token */
    int n_bias;
    int vocab;
    uint64_t rng[4];     /* xoshiro256** */
};

struct eng_samp_scratch {
    int vocab;
    float *work;         /* (vocab) */
    int *count;          /* (vocab) occurrences in the penalty window, zero between calls */
    int *where;          /* (vocab) 1 + a token's index among a plan's edits, zero between calls */
    cand *c;             /* (vocab) */
};

eng_samp_scratch *eng_samp_scratch_create(char *err, int vocab) {
    if (vocab <= 0) {
        awq_seterr(err, AWQ_EINVAL, "vocabulary size %d must be positive", vocab);
        return NULL;
    }
    eng_samp_scratch *sc = calloc(1, sizeof *sc);
    if (sc) {
        sc->vocab = vocab;
        sc->work = malloc(sizeof *sc->work * (size_t)vocab);
        sc->count = calloc((size_t)vocab, sizeof *sc->count);
        sc->where = calloc((size_t)vocab, sizeof *sc->where);
        sc->c = malloc(sizeof *sc->c * (size_t)vocab);
    }
    if (!sc || !sc->work || !sc->count || !sc->where || !sc->c) {
        eng_samp_scratch_free(sc);
        awq_seterr(err, AWQ_ENOMEM, "out of memory for sampling over %d tokens", vocab);
        return NULL;
    }
    return sc;
}

void eng_samp_scratch_free(eng_samp_scratch *sc) {
    if (!sc) return;
    free(sc->work);
    free(sc->count);
    free(sc->where);
    free(sc->c);
    free(sc);
}

/* ---------------------------------------------------------------- parameters ---- */

void eng_samp_params_default(eng_samp_params *p, const eng_gen_defaults *gd) {
    memset(p, 0, sizeof *p);
    p->temperature = 1.0f;
    p->top_p = 1.0f;
    p->typical_p = 1.0f;
    p->repetition_penalty = 1.0f;
    p->penalty_last_n = 64;
    p->max_tokens = 256;
    if (!gd) return;
    if (gd->has_temperature) p->temperature = gd->temperature;
    if (gd->has_top_p) p->top_p = gd->top_p;
    if (gd->has_top_k) p->top_k = gd->top_k;
    if (gd->has_repetition_penalty) p->repetition_penalty = gd->repetition_penalty;
    if (gd->has_do_sample && !gd->do_sample) p->temperature = 0.0f;
    if (gd->max_new_tokens > 0) p->max_tokens = gd->max_new_tokens;
}

int eng_samp_params_check(char *err, const eng_samp_params *p, int vocab) {
    if (!(p->temperature >= 0.0f) || isinf(p->temperature))
        return awq_seterr(err, AWQ_EINVAL, "temperature %g must be a finite number >= 0", (double)p->temperature);
    if (p->top_k < 0) return awq_seterr(err, AWQ_EINVAL, "top_k %d must be >= 0 (0 = off)", p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return awq_seterr(err, AWQ_EINVAL, "top_p %g must be in (0, 1]", (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return awq_seterr(err, AWQ_EINVAL, "min_p %g must be in [0, 1]", (double)p->min_p);
    if (!(p->typical_p > 0.0f && p->typical_p <= 1.0f))
        return awq_seterr(err, AWQ_EINVAL, "typical_p %g must be in (0, 1]", (double)p->typical_p);
    if (!(p->repetition_penalty > 0.0f) || isinf(p->repetition_penalty))
        return awq_seterr(err, AWQ_EINVAL, "repetition_penalty %g must be > 0 (1 = off)",
                          (double)p->repetition_penalty);
    if (!isfinite(p->presence_penalty) || !isfinite(p->frequency_penalty))
        return awq_seterr(err, AWQ_EINVAL, "presence/frequency penalties must be finite");
    if (p->penalty_last_n < -1)
        return awq_seterr(err, AWQ_EINVAL, "penalty_last_n %d must be >= -1 (-1 = whole history)", p->penalty_last_n);
    if (p->max_tokens <= 0) return awq_seterr(err, AWQ_EINVAL, "max_tokens %d must be > 0", p->max_tokens);
    if (p->logprobs < 0 || p->logprobs > ENG_SAMP_MAX_LOGPROBS)
        return awq_seterr(err, AWQ_EINVAL, "logprobs %d must be in [0, %d]", p->logprobs, ENG_SAMP_MAX_LOGPROBS);
    if (p->n_logit_bias < 0 || p->n_logit_bias > ENG_SAMP_MAX_BIAS || (p->n_logit_bias && !p->logit_bias))
        return awq_seterr(err, AWQ_EINVAL, "logit_bias has %d entries; at most %d", p->n_logit_bias, ENG_SAMP_MAX_BIAS);
    for (int i = 0; i < p->n_logit_bias; i++) {
        if (p->logit_bias[i].id < 0 || p->logit_bias[i].id >= vocab)
            return awq_seterr(err, AWQ_EINVAL, "logit_bias token id %d outside the vocabulary of %d",
                              (int)p->logit_bias[i].id, vocab);
        if (isnan(p->logit_bias[i].delta) || p->logit_bias[i].delta == INFINITY)
            return awq_seterr(err, AWQ_EINVAL, "logit_bias for token %d must be a number (or -inf)",
                              (int)p->logit_bias[i].id);
    }
    if (p->n_stop_ids < 0 || p->n_stop_ids > ENG_SAMP_MAX_STOP_IDS || (p->n_stop_ids && !p->stop_ids))
        return awq_seterr(err, AWQ_EINVAL, "%d stop token ids; at most %d", p->n_stop_ids, ENG_SAMP_MAX_STOP_IDS);
    for (int i = 0; i < p->n_stop_ids; i++)
        if (p->stop_ids[i] < 0 || p->stop_ids[i] >= vocab)
            return awq_seterr(err, AWQ_EINVAL, "stop token id %d outside the vocabulary of %d", (int)p->stop_ids[i],
                              vocab);
    if (p->n_stop < 0 || p->n_stop > ENG_SAMP_MAX_STOP || (p->n_stop && !p->stop))
        return awq_seterr(err, AWQ_EINVAL, "%d stop strings; at most %d", p->n_stop, ENG_SAMP_MAX_STOP);
    for (int i = 0; i < p->n_stop; i++) {
        size_t n = p->stop[i] ? strlen(p->stop[i]) : 0;
        if (n == 0 || n > ENG_SAMP_STOP_LEN)
            return awq_seterr(err, AWQ_EINVAL, "stop string %d has %zu bytes; 1..%d allowed", i, n, ENG_SAMP_STOP_LEN);
        if (!awq_utf8_valid(p->stop[i], n)) return awq_seterr(err, AWQ_EUTF8, "stop string %d is not valid UTF-8", i);
    }
    return 0;
}

/* ---------------------------------------------------------------- PRNG ---- */

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro(uint64_t *s) {
    uint64_t r = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return r;
}

/* uniform in [0, 1) with 53 bits */
static double unif(eng_samp *s) { return (double)(xoshiro(s->rng) >> 11) * (1.0 / 9007199254740992.0); }

/* ---------------------------------------------------------------- lifecycle ---- */

eng_samp *eng_samp_create(char *err, const eng_samp_params *p, int vocab) {
    if (vocab <= 0) {
        awq_seterr(err, AWQ_EINVAL, "vocabulary size %d must be positive", vocab);
        return NULL;
    }
    if (eng_samp_params_check(err, p, vocab)) return NULL;
    eng_samp *s = calloc(1, sizeof *s);
    if (!s) goto oom;
    s->p = *p;
    s->vocab = vocab;
    /* the borrowed generation-level arrays are not kept: gen.c copies what it needs */
    s->p.stop = NULL, s->p.n_stop = 0, s->p.stop_ids = NULL, s->p.n_stop_ids = 0;
    s->p.logit_bias = NULL;
    if (p->n_logit_bias) {
        s->bias = malloc(sizeof *s->bias * (size_t)p->n_logit_bias);
        if (!s->bias) goto oom;
        /* one entry per token, the deltas of a repeated id summed in the order given: an edit
         * list needs distinct ids, and the full-row path adds the same merged delta */
        for (int i = 0; i < p->n_logit_bias; i++) {
            int j = 0;
            while (j < s->n_bias && s->bias[j].id != p->logit_bias[i].id) j++;
            if (j == s->n_bias) s->bias[s->n_bias++] = p->logit_bias[i];
            else s->bias[j].delta += p->logit_bias[i].delta;
        }
    }
    uint64_t seed = p->has_seed ? p->seed : plat_now_ns() ^ (uint64_t)(uintptr_t)s ^ 0x5eedull;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&seed);
    return s;
oom:
    awq_seterr(err, AWQ_ENOMEM, "out of memory for a sampler over %d tokens", vocab);
    eng_samp_free(s);
    return NULL;
}

void eng_samp_free(eng_samp *s) {
    if (!s) return;
    free(s->bias);
    free(s);
}

/* ---------------------------------------------------------------- sampling ---- */

static int cmp_logit_desc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->l != y->l) return x->l > y->l ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static int cmp_key_asc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

/* Heap over c[0..m) with the worst candidate (last in cmp_logit_desc order) at the root. */
static void heap_down(cand *c, int m, int i) {
    for (;;) {
        int w = i, a = 2 * i + 1, b = a + 1;
        if (a < m && cmp_logit_desc(&c[a], &c[w]) > 0) w = a;
        if (b < m && cmp_logit_desc(&c[b], &c[w]) > 0) w = b;
        if (w == i) return;
        cand t = c[i];
        c[i] = c[w];
        c[w] = t;
        i = w;
    }
}

/* c[0..m) := the m first of the n candidates c[0..n) in cmp_logit_desc order (a strict total
 * order: logit, then id), sorted; c[m..n) keeps the others in some order, so a later call with
 * a larger m sees them all. O(n log m) instead of the O(n log n) full sort: with a 120k
 * vocabulary nearly every token lies within CUT_LOGIT of the best, and the full sort was
 * ~45 ms per sampled token on the 2-core box (bench/RESULTS.md). */
static void top_m(cand *c, int n, int m) {
    if (m < n) {
        for (int i = m / 2 - 1; i >= 0; i--) heap_down(c, m, i);
        for (int i = m; i < n; i++)
            if (cmp_logit_desc(&c[i], &c[0]) < 0) {
                cand t = c[0];
                c[0] = c[i];
                c[i] = t;
                heap_down(c, m, 0);
            }
    } else {
        m = n;
    }
    qsort(c, (size_t)m, sizeof *c, cmp_logit_desc);
}

/* The softmax denominator of c[0..n) as softmax() computes it (exp relative to the largest
 * logit, *mx), summed in the array's order. */
static double cand_z(const cand *c, int n, float *mx) {
    float m = -INFINITY;
    for (int i = 0; i < n; i++) m = c[i].l > m ? c[i].l : m;
    double z = 0;
    for (int i = 0; i < n; i++) z += expf(c[i].l - m);
    *mx = m;
    return z;
}

/* probabilities of c[0..n) from their logits (softmax), in place */
static void softmax(cand *c, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = c[i].l > mx ? c[i].l : mx;
    double sum = 0;
    for (int i = 0; i < n; i++) sum += (c[i].p = expf(c[i].l - mx));
    for (int i = 0; i < n; i++) c[i].p = (float)(c[i].p / sum);
}

/* raw log-softmax: chosen logprob and the top-n */
static void fill_logprobs(const float *lg, int V, int n_top, eng_samp_result *out) {
    float mx = -INFINITY;
    for (int v = 0; v < V; v++) mx = lg[v] > mx ? lg[v] : mx;
    double sum = 0;
    for (int v = 0; v < V; v++) sum += exp((double)lg[v] - mx);
    double lse = mx + log(sum);
    out->logprob = (float)(lg[out->id] - lse);
    out->n_top = 0;
    for (int v = 0; v < V && n_top > 0; v++) {
        /* insertion into a short sorted list: n_top <= 20 */
        int n = out->n_top;
        if (n == n_top && !(lg[v] > lg[out->top[n - 1].id])) continue;
        int i = n < n_top ? n++ : n - 1;
        while (i > 0 && lg[out->top[i - 1].id] < lg[v]) {
            out->top[i] = out->top[i - 1];
            i--;
        }
        out->top[i].id = v;
        out->n_top = n;
    }
    for (int i = 0; i < out->n_top; i++) out->top[i].logprob = (float)(lg[out->top[i].id] - lse);
}

/* The penalty of a token seen count times (> 0) in the window, each step rounded to float:
 * the backends' edit kernels compute exactly this (backend.h, eng_pick_edit). */
static inline float pen_one(float l, int count, float rep, float freq, float pres) {
    if (rep != 1.0f) l = l > 0 ? l / rep : l * rep;
    const float f = freq * (float)count;
    return l - (f + pres);
}

/* the start of the penalty window in hist (n_hist when penalties are off) */
static size_t pen_from(const eng_samp_params *p, const int32_t *hist, size_t n_hist) {
    const bool pen = (p->repetition_penalty != 1.0f || p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f) &&
                     p->penalty_last_n != 0 && hist && n_hist;
    if (!pen) return n_hist;
    return (p->penalty_last_n < 0 || (size_t)p->penalty_last_n >= n_hist) ? 0 : n_hist - (size_t)p->penalty_last_n;
}

/* Penalties over the window of hist, each distinct token once, into the working logits w. */
static void penalize(const eng_samp_params *p, eng_samp_scratch *sc, float *w, int V, const int32_t *hist,
                     size_t n_hist) {
    const size_t from = pen_from(p, hist, n_hist);
    for (size_t i = from; i < n_hist; i++)
        if (hist[i] >= 0 && hist[i] < V) sc->count[hist[i]]++;
    for (size_t i = from; i < n_hist; i++) {
        int t = hist[i];
        if (t < 0 || t >= V || sc->count[t] == 0) continue;
        w[t] = pen_one(w[t], sc->count[t], p->repetition_penalty, p->frequency_penalty, p->presence_penalty);
        sc->count[t] = 0; /* done with t; also leaves the array zeroed */
    }
}

/* inverse CDF over c[0..n) (probabilities p) at u: the first whose running sum passes u (the
 * last when rounding leaves the sum short of u) */
static int32_t draw(const cand *c, int n, double u) {
    double cum = 0;
    for (int i = 0; i < n; i++) {
        cum += c[i].p;
        if (u < cum) return c[i].id;
    }
    return c[n - 1].id;
}

/* the shortest prefix of c[0..n) whose probabilities sum to at least th (all n when they fall
 * short) */
static int mass_prefix(const cand *c, int n, double th) {
    double cum = 0;
    int k = 0;
    while (k < n) {
        cum += c[k++].p;
        if (cum >= th) break;
    }
    return k;
}

/* The filters after the candidates are chosen (c[0..n) sorted by cmp_logit_desc unless
 * neither top-p nor min-p is on; n >= 1), then the draw at u. nucleus / minp: that filter was
 * already applied while choosing them. */
static int32_t filter_draw(const eng_samp_params *p, cand *c, int n, bool nucleus, bool minp, double u) {
    softmax(c, n);
    if (p->top_p < 1.0f && !nucleus) {
        n = mass_prefix(c, n, p->top_p);
        softmax(c, n);
    }
    if (p->min_p > 0.0f && !minp) {
        float th = p->min_p * c[0].p; /* c[0] is the most likely */
        int k = 1;
        while (k < n && c[k].p >= th) k++;
        n = k;
        softmax(c, n);
    }
    if (p->typical_p < 1.0f && n > 1) {
        double H = 0;
        for (int i = 0; i < n; i++)
            if (c[i].p > 0) H -= c[i].p * log(c[i].p);
        /* rank by |-log p - H| (most typical first), keep until the mass reaches typical_p */
        for (int i = 0; i < n; i++) c[i].key = (float)fabs(-log(c[i].p) - H);
        qsort(c, (size_t)n, sizeof *c, cmp_key_asc);
        n = mass_prefix(c, n, p->typical_p);
        softmax(c, n);
    }
    return draw(c, n, u);
}

/* The nucleus of top-p without top-k over sorted candidates c[0..lim) of the n_all within the
 * cut, whose softmax denominator is z relative to mx: its size, or 0 when c[0..lim) holds less
 * mass than top_p and lim < n_all (more candidates needed). */
static int nucleus_len(const eng_samp_params *p, const cand *c, int lim, int n_all, float mx, double z) {
    double cum = 0;
    int k = 0;
    while (k < lim) {
        cum += (float)(expf(c[k++].l - mx) / z);
        if (cum >= p->top_p) return k;
    }
    return lim == n_all ? k : 0;
}

/* Sampling over edited logits w (vocab V) with temperature > 0: the candidates within the cut
 * of the best w[best], the filters of p, the draw at u. */
static int32_t choose(const eng_samp_params *p, int V, eng_samp_scratch *sc, const float *w, int best, double u) {
    const float T = p->temperature, lb = w[best] / T - CUT_LOGIT;
    cand *c = sc->c;
    int n = 0;
    bool nucleus = false, minp = false; /* top-p / min-p already applied */
    if (p->top_k > 0) {
        /* the k first in the sort order, kept in a heap during the one pass over the
         * vocabulary (the same k as sorting every candidate and keeping the first k; the
         * candidate array of the whole vocabulary is never written) */
        const int k = p->top_k;
        /* once the heap is full, a raw logit <= the root's cannot enter: division by T > 0
         * is monotone, and on an equal quotient the root's lower id wins; one compare per
         * token then (NaN fails it as it fails l >= lb) */
        float wroot = -INFINITY; /* -inf and NaN never enter */
        for (int v = 0; v < V; v++) {
            if (!(w[v] > wroot)) continue;
            const float l = w[v] / T;
            if (!(l >= lb)) continue;
            const cand x = {v, l, 0, 0};
            if (n < k) {
                c[n++] = x;
                if (n == k) {
                    for (int i = k / 2 - 1; i >= 0; i--) heap_down(c, k, i);
                    wroot = w[c[0].id];
                }
            } else if (cmp_logit_desc(&x, &c[0]) < 0) {
                c[0] = x;
                heap_down(c, k, 0);
                wroot = w[c[0].id];
            }
        }
        qsort(c, (size_t)n, sizeof *c, cmp_logit_desc);
    } else {
        for (int v = 0; v < V; v++) {
            const float l = w[v] / T;
            if (l >= lb) c[n++] = (cand){v, l, 0, 0};
        }
    }
    if (p->top_k == 0 && p->top_p < 1.0f) {
        /* the nucleus is a prefix of the sorted candidates: sort a growing prefix until its
         * mass, over the softmax of all n (summed in vocabulary order), reaches top_p */
        float mx;
        const double z = cand_z(c, n, &mx);
        for (int m = NUCLEUS_FIRST;; m *= 4) {
            top_m(c, n, m);
            const int k = nucleus_len(p, c, m < n ? m : n, n, mx, z);
            if (k) {
                n = k;
                break;
            }
        }
        nucleus = true;
    } else if (p->top_k == 0 && p->min_p > 0.0f) {
        /* min-p over the softmax of all n keeps the candidates at least min_p times as likely
         * as the best (a prefix of the sorted order): filter them with those same
         * probabilities, then sort the survivors only */
        float mx;
        const double z = cand_z(c, n, &mx);
        const float th = p->min_p * (float)(1.0 / z); /* the best's probability: expf(0) / z */
        int k = 0;
        for (int i = 0; i < n; i++)
            if ((float)(expf(c[i].l - mx) / z) >= th) c[k++] = c[i];
        qsort(c, (size_t)k, sizeof *c, cmp_logit_desc);
        n = k;
        minp = true;
    }
    /* neither: pure temperature (or typical-p, which ranks by its own key) draws over the
     * candidates in vocabulary order; no sort of the whole vocabulary (a backend draws the
     * same way, ENG_PICK_DRAW) */
    return filter_draw(p, c, n, nucleus, minp, u);
}

/* the largest edited logit (lowest id on ties), -1 when all are -inf or NaN */
static int best_of(const float *w, int V) {
    int best = -1;
    for (int v = 0; v < V; v++)
        if (w[v] > -INFINITY && (best < 0 || w[v] > w[best])) best = v;
    return best;
}

static int banned(char *err) {
    return awq_seterr(err, AWQ_EINVAL, "every token is banned (all logits are -inf after logit_bias)");
}

int eng_samp_sample(char *err, eng_samp *s, eng_samp_scratch *sc, const float *logits, const int32_t *hist,
                    size_t n_hist, eng_samp_result *out) {
    const eng_samp_params *p = &s->p;
    const int V = s->vocab;
    if (sc->vocab < V)
        return awq_seterr(err, AWQ_EINVAL, "sampling scratch for %d tokens, the sampler has %d", sc->vocab, V);
    /* the logits are copied only when bias or penalties change some of them */
    const bool pen = pen_from(p, hist, n_hist) < n_hist;
    const float *w = logits;
    if (s->n_bias || pen) {
        float *wm = sc->work;
        memcpy(wm, logits, sizeof *wm * (size_t)V);
        for (int i = 0; i < s->n_bias; i++) wm[s->bias[i].id] += s->bias[i].delta;
        if (pen) penalize(p, sc, wm, V, hist, n_hist);
        w = wm;
    }
    const int best = best_of(w, V);
    if (best < 0) return banned(err);
    out->id = p->temperature == 0.0f ? best : choose(p, V, sc, w, best, unif(s));
    /* a full pass of exp over the vocabulary: only when logprobs are asked for */
    if (p->logprobs > 0) fill_logprobs(logits, V, p->logprobs, out);
    else out->logprob = 0.0f, out->n_top = 0;
    return 0;
}

int eng_samp_sample_edited(char *err, eng_samp *s, eng_samp_scratch *sc, const float *w, eng_samp_result *out) {
    if (sc->vocab < s->vocab)
        return awq_seterr(err, AWQ_EINVAL, "sampling scratch for %d tokens, the sampler has %d", sc->vocab, s->vocab);
    const int best = best_of(w, s->vocab);
    if (best < 0) return banned(err);
    out->id = s->p.temperature == 0.0f ? best : choose(&s->p, s->vocab, sc, w, best, unif(s));
    out->logprob = 0.0f, out->n_top = 0;
    return 0;
}

/* ---------------------------------------------------------------- picking ---- */

int eng_samp_edit_cap(const eng_samp *s, size_t max_hist) {
    const eng_samp_params *p = &s->p;
    size_t win = 0;
    if (p->repetition_penalty != 1.0f || p->presence_penalty != 0.0f || p->frequency_penalty != 0.0f)
        win = p->penalty_last_n < 0 || (size_t)p->penalty_last_n > max_hist ? max_hist : (size_t)p->penalty_last_n;
    if (win > (size_t)s->vocab) win = (size_t)s->vocab; /* distinct tokens */
    return s->n_bias + (int)win;
}

void eng_samp_plan(eng_samp *s, eng_samp_scratch *sc, const int32_t *hist, size_t n_hist, eng_pick *req,
                   eng_pick_edit *edits, int cap) {
    const eng_samp_params *p = &s->p;
    const int V = s->vocab;
    memset(req, 0, sizeof *req);
    req->temperature = p->temperature;
    req->rep = p->repetition_penalty, req->freq = p->frequency_penalty, req->pres = p->presence_penalty;
    if (p->logprobs > 0 || sc->vocab < V || p->top_k > ENG_PICK_MAX || (p->typical_p < 1.0f && p->top_k == 0))
        return; /* FULL */
    /* the edits: the merged bias, then each distinct token of the penalty window with its count */
    int n = 0;
    bool over = s->n_bias > cap || (s->n_bias && !edits);
    for (int i = 0; i < s->n_bias && !over; i++) {
        edits[n] = (eng_pick_edit){s->bias[i].id, s->bias[i].delta, 0};
        sc->where[s->bias[i].id] = ++n;
    }
    const size_t from = pen_from(p, hist, n_hist);
    for (size_t i = from; i < n_hist; i++)
        if (hist[i] >= 0 && hist[i] < V) sc->count[hist[i]]++;
    for (size_t i = from; i < n_hist; i++) {
        const int t = hist[i];
        if (t < 0 || t >= V || sc->count[t] == 0) continue;
        if (!over && sc->where[t]) edits[sc->where[t] - 1].count = sc->count[t];
        else if (!over && n < cap && edits) edits[n++] = (eng_pick_edit){t, 0.0f, sc->count[t]};
        else over = true;
        sc->count[t] = 0;
    }
    for (int i = 0; i < n; i++) sc->where[edits[i].id] = 0;
    if (over) return; /* FULL: the host applies them */
    req->edit = edits;
    req->n_edit = n;
    if (p->temperature == 0.0f) {
        req->mode = ENG_PICK_ARGMAX;
    } else if (p->top_k > 0) {
        req->mode = ENG_PICK_TOP;
        req->top = p->top_k;
    } else if (p->top_p < 1.0f || p->min_p > 0.0f) { /* typical-p is off here (else FULL) */
        req->mode = ENG_PICK_NUCLEUS;
        req->top_p = p->top_p, req->min_p = p->min_p;
        req->u = unif(s);
    } else {
        req->mode = ENG_PICK_DRAW;
        req->u = unif(s);
    }
}

void eng_samp_pick_edits(float *row, const eng_pick *req) {
    for (int i = 0; i < req->n_edit; i++) {
        const eng_pick_edit *e = &req->edit[i];
        float w = row[e->id] + e->delta;
        if (e->count > 0) w = pen_one(w, e->count, req->rep, req->freq, req->pres);
        row[e->id] = w;
    }
}

int eng_samp_pick(char *err, eng_samp_scratch *sc, const float *row, int V, const eng_pick *req, eng_pick_out *out) {
    if (sc->vocab < V) return awq_seterr(err, AWQ_EINVAL, "pick scratch for %d tokens, the row has %d", sc->vocab, V);
    out->id = -1, out->n = 0, out->n_cut = 0, out->lmax = -INFINITY, out->z = 0;
    const int best = best_of(row, V);
    if (req->mode == ENG_PICK_ARGMAX) {
        out->id = best;
        return 0;
    }
    if (req->mode != ENG_PICK_TOP && req->mode != ENG_PICK_DRAW && req->mode != ENG_PICK_NUCLEUS)
        return awq_seterr(err, AWQ_EINVAL, "pick mode %d is not a reduction", req->mode);
    const float T = req->temperature;
    if (!(T > 0) || isinf(T) || (req->mode == ENG_PICK_TOP && (req->top < 1 || req->top > ENG_PICK_MAX)))
        return awq_seterr(err, AWQ_EINVAL, "pick: temperature %g, top %d", (double)T, req->top);
    if (best < 0) return 0;
    if (req->mode == ENG_PICK_NUCLEUS) { /* the sampler's own top-p / min-p path at u */
        if (!(req->top_p > 0 && req->top_p <= 1) || !(req->min_p >= 0 && req->min_p <= 1))
            return awq_seterr(err, AWQ_EINVAL, "pick: top_p %g, min_p %g", (double)req->top_p, (double)req->min_p);
        eng_samp_params p;
        eng_samp_params_default(&p, NULL);
        p.temperature = T, p.top_p = req->top_p, p.min_p = req->min_p;
        out->id = choose(&p, V, sc, row, best, req->u);
        return 0;
    }
    const float lb = row[best] / T - CUT_LOGIT;
    cand *c = sc->c;
    int n = 0;
    for (int v = 0; v < V; v++) {
        const float l = row[v] / T;
        if (l >= lb) c[n++] = (cand){v, l, 0, 0};
    }
    out->n_cut = n;
    out->z = cand_z(c, n, &out->lmax);
    if (req->mode == ENG_PICK_DRAW) {
        softmax(c, n);
        out->id = draw(c, n, req->u);
        return 0;
    }
    const int k = req->top < n ? req->top : n;
    top_m(c, n, k);
    for (int i = 0; i < k; i++) out->ids[i] = c[i].id, out->l[i] = c[i].l;
    out->n = k;
    return 0;
}

int eng_samp_finish(char *err, eng_samp *s, eng_samp_scratch *sc, const eng_pick *req, const eng_pick_out *po,
                    eng_samp_result *out, bool *need_row) {
    const eng_samp_params *p = &s->p;
    *need_row = false;
    out->logprob = 0.0f, out->n_top = 0;
    if (req->mode == ENG_PICK_ARGMAX || req->mode == ENG_PICK_DRAW || req->mode == ENG_PICK_NUCLEUS) {
        if (req->mode == ENG_PICK_ARGMAX && po->n < 0) { /* not reduced: more ties at the max than it gathers */
            *need_row = true;
            return 0;
        }
        if (po->id < 0 || po->id >= s->vocab) return banned(err);
        out->id = po->id;
        return 0;
    }
    if (req->mode != ENG_PICK_TOP) return awq_seterr(err, AWQ_EINVAL, "pick mode %d has no answer to finish", req->mode);
    if (po->n < 0 || po->n > req->top || po->n > sc->vocab) { /* the backend could not reduce it */
        *need_row = true;
        return 0;
    }
    if (po->n_cut == 0 || po->n == 0) return banned(err);
    if (p->top_k > 0 && po->n < (p->top_k < po->n_cut ? p->top_k : po->n_cut)) { /* a short answer */
        *need_row = true;
        return 0;
    }
    if (p->top_k == 0) return awq_seterr(err, AWQ_EINVAL, "a TOP answer for a sampler without top-k");
    /* the top-k candidates, sorted: the rest is the host sampler's own path */
    cand *c = sc->c;
    const int n = po->n;
    for (int i = 0; i < n; i++) c[i] = (cand){po->ids[i], po->l[i], 0, 0};
    out->id = filter_draw(p, c, n, false, false, unif(s));
    return 0;
}
