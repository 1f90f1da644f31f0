/* tmodel.h - test helper: an eng_model built in memory with random AWQ-packed weights (no
 * files, no loader), plus a plain double-precision reference forward over the dequantized
 * weights that the CPU backend is checked against. Static functions, included by test files.
 */
#ifndef AWQ_TEST_TMODEL_H
#define AWQ_TEST_TMODEL_H

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "awq_util.h"
#include "model.h"

typedef struct tm_rng {
    uint64_t s;
} tm_rng;

static inline uint64_t tm_next(tm_rng *r) { /* splitmix64 */
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static inline float tm_unif(tm_rng *r) { return (float)((tm_next(r) >> 40) * (1.0 / 16777216.0)); } /* [0,1) */

typedef struct tm_priv {
    void *ptr[4096];
    int n;
} tm_priv;

static inline void *tm_alloc(eng_model *m, size_t n) {
    tm_priv *p = m->priv;
    void *q = calloc(1, n ? n : 1);
    if (!q || p->n >= 4096) abort();
    p->ptr[p->n++] = q;
    return q;
}

static inline uint16_t *tm_f16(eng_model *m, tm_rng *r, size_t n, float lo, float hi) {
    uint16_t *a = tm_alloc(m, n * 2);
    for (size_t i = 0; i < n; i++) a[i] = awq_f32_to_f16(lo + (hi - lo) * tm_unif(r));
    return a;
}

static inline void tm_qlinear(eng_model *m, tm_rng *r, eng_qlinear *l, int in, int out, int group) {
    l->in = in;
    l->out = out;
    l->group = group;
    int32_t *qw = tm_alloc(m, (size_t)in * out / 8 * 4);
    int32_t *qz = tm_alloc(m, (size_t)in / group * out / 8 * 4);
    for (size_t i = 0; i < (size_t)in * out / 8; i++) qw[i] = (int32_t)(uint32_t)tm_next(r);
    for (size_t i = 0; i < (size_t)in / group * out / 8; i++) qz[i] = (int32_t)(uint32_t)tm_next(r);
    float sc = 0.35f / sqrtf((float)in);
    l->qweight = qw;
    l->qzeros = qz;
    l->scales = tm_f16(m, r, (size_t)in / group * out, 0.5f * sc, 1.5f * sc);
}

/* A random model of the given shape; free with tm_free. */
static inline eng_model *tm_create(int hidden, int inter, int layers, int heads, int kv_heads, int hd, int vocab, int group,
                            int window, int tie, uint64_t seed) {
    eng_model *m = calloc(1, sizeof *m);
    m->priv = calloc(1, sizeof(tm_priv));
    tm_rng r = {seed};
    eng_config *c = &m->cfg;
    strcpy(c->arch, "MistralForCausalLM");
    strcpy(c->model_type, "mistral");
    c->hidden = hidden;
    c->intermediate = inter;
    c->layers = layers;
    c->heads = heads;
    c->kv_heads = kv_heads;
    c->head_dim = hd;
    c->vocab = vocab;
    c->max_pos = 4096;
    c->sliding_window = window;
    c->rope_theta = 10000.0f;
    c->rms_eps = 1e-5f;
    c->tie_embeddings = tie;
    c->bos_id = 1;
    c->eos_ids[0] = 2;
    c->n_eos = 1;
    c->bits = 4;
    c->group_size = group;
    c->zero_point = true;
    strcpy(c->quant_version, "gemm");
    m->embed = tm_f16(m, &r, (size_t)vocab * hidden, -1.0f, 1.0f);
    m->norm = tm_f16(m, &r, (size_t)hidden, 0.8f, 1.2f);
    m->lm_head = tie ? m->embed : tm_f16(m, &r, (size_t)vocab * hidden, -1.0f, 1.0f);
    m->layers = tm_alloc(m, sizeof(eng_layer) * (size_t)layers);
    for (int i = 0; i < layers; i++) {
        eng_layer *L = &m->layers[i];
        L->attn_norm = tm_f16(m, &r, (size_t)hidden, 0.8f, 1.2f);
        L->ffn_norm = tm_f16(m, &r, (size_t)hidden, 0.8f, 1.2f);
        tm_qlinear(m, &r, &L->q, hidden, heads * hd, group);
        tm_qlinear(m, &r, &L->k, hidden, kv_heads * hd, group);
        tm_qlinear(m, &r, &L->v, hidden, kv_heads * hd, group);
        tm_qlinear(m, &r, &L->o, heads * hd, hidden, group);
        tm_qlinear(m, &r, &L->gate, hidden, inter, group);
        tm_qlinear(m, &r, &L->up, hidden, inter, group);
        tm_qlinear(m, &r, &L->down, inter, hidden, group);
    }
    return m;
}

static inline void tm_free(eng_model *m) {
    if (!m) return;
    tm_priv *p = m->priv;
    for (int i = 0; i < p->n; i++) free(p->ptr[i]);
    free(p);
    free(m);
}

/* W (in, out) dequantized from the packed layout, written straight from the format note. */
static inline double *tm_dequant(const eng_qlinear *l) {
    static const int REV[8] = {0, 4, 1, 5, 2, 6, 3, 7};
    double *w = malloc(sizeof(double) * (size_t)l->in * l->out);
    for (int k = 0; k < l->in; k++)
        for (int n = 0; n < l->out; n++) {
            int c = n / 8, nib = REV[n % 8], g = k / l->group;
            int q = (int)(((uint32_t)l->qweight[(size_t)k * (l->out / 8) + c] >> (4 * nib)) & 15u);
            int z = (int)(((uint32_t)l->qzeros[(size_t)g * (l->out / 8) + c] >> (4 * nib)) & 15u);
            w[(size_t)k * l->out + n] = (q - z) * (double)awq_f16_to_f32(l->scales[(size_t)g * l->out + n]);
        }
    return w;
}

static inline void tm_lin(const eng_qlinear *l, const double *x, int T, double *y) {
    double *w = tm_dequant(l);
    for (int t = 0; t < T; t++)
        for (int n = 0; n < l->out; n++) {
            double s = 0;
            for (int k = 0; k < l->in; k++) s += x[(size_t)t * l->in + k] * w[(size_t)k * l->out + n];
            y[(size_t)t * l->out + n] = s;
        }
    free(w);
}

static inline void tm_norm(const double *x, const uint16_t *w, int n, double eps, double *out) {
    double s = 0;
    for (int i = 0; i < n; i++) s += x[i] * x[i];
    double r = 1.0 / sqrt(s / n + eps);
    for (int i = 0; i < n; i++) out[i] = x[i] * r * awq_f16_to_f32(w[i]);
}

static inline void tm_rope(double *v, int heads, int hd, int pos, double theta) {
    for (int h = 0; h < heads; h++)
        for (int i = 0; i < hd / 2; i++) {
            double a = pos * pow(theta, -2.0 * i / hd), *p = v + (size_t)h * hd;
            double x0 = p[i], x1 = p[i + hd / 2];
            p[i] = x0 * cos(a) - x1 * sin(a);
            p[i + hd / 2] = x1 * cos(a) + x0 * sin(a);
        }
}

/* Full-sequence reference forward (causal mask, sliding window as HF: i - W < j <= i); returns
 * the logits of the last of T tokens in logits (vocab). */
static inline void tm_forward_ref(const eng_model *m, const int32_t *tok, int T, double *logits) {
    const eng_config *c = &m->cfg;
    const int H = c->hidden, hd = c->head_dim, qd = c->heads * hd, kvd = c->kv_heads * hd, I = c->intermediate;
    double *x = calloc((size_t)T * H, 8), *xn = calloc((size_t)T * H, 8), *q = calloc((size_t)T * qd, 8);
    double *k = calloc((size_t)T * kvd, 8), *v = calloc((size_t)T * kvd, 8), *att = calloc((size_t)T * qd, 8);
    double *o = calloc((size_t)T * H, 8), *g = calloc((size_t)T * I, 8), *u = calloc((size_t)T * I, 8);
    double *sc = calloc((size_t)T, 8);
    for (int t = 0; t < T; t++)
        for (int d = 0; d < H; d++) x[(size_t)t * H + d] = awq_f16_to_f32(m->embed[(size_t)tok[t] * H + d]);
    for (int li = 0; li < c->layers; li++) {
        const eng_layer *L = &m->layers[li];
        for (int t = 0; t < T; t++) tm_norm(x + (size_t)t * H, L->attn_norm, H, c->rms_eps, xn + (size_t)t * H);
        tm_lin(&L->q, xn, T, q);
        tm_lin(&L->k, xn, T, k);
        tm_lin(&L->v, xn, T, v);
        for (int t = 0; t < T; t++) {
            tm_rope(q + (size_t)t * qd, c->heads, hd, t, c->rope_theta);
            tm_rope(k + (size_t)t * kvd, c->kv_heads, hd, t, c->rope_theta);
        }
        for (int t = 0; t < T; t++)
            for (int h = 0; h < c->heads; h++) {
                int kh = h / (c->heads / c->kv_heads);
                double mx = -1e300, sum = 0;
                for (int j = 0; j <= t; j++) {
                    sc[j] = -INFINITY;
                    if (c->sliding_window > 0 && !(t - c->sliding_window < j)) continue;
                    double s = 0;
                    for (int d = 0; d < hd; d++) s += q[(size_t)t * qd + h * hd + d] * k[(size_t)j * kvd + kh * hd + d];
                    sc[j] = s / sqrt((double)hd);
                    if (sc[j] > mx) mx = sc[j];
                }
                for (int j = 0; j <= t; j++) sum += (sc[j] = exp(sc[j] - mx));
                for (int d = 0; d < hd; d++) {
                    double a = 0;
                    for (int j = 0; j <= t; j++) a += sc[j] / sum * v[(size_t)j * kvd + kh * hd + d];
                    att[(size_t)t * qd + h * hd + d] = a;
                }
            }
        tm_lin(&L->o, att, T, o);
        for (size_t i = 0; i < (size_t)T * H; i++) x[i] += o[i];
        for (int t = 0; t < T; t++) tm_norm(x + (size_t)t * H, L->ffn_norm, H, c->rms_eps, xn + (size_t)t * H);
        tm_lin(&L->gate, xn, T, g);
        tm_lin(&L->up, xn, T, u);
        for (size_t i = 0; i < (size_t)T * I; i++) g[i] = g[i] / (1 + exp(-g[i])) * u[i];
        tm_lin(&L->down, g, T, o);
        for (size_t i = 0; i < (size_t)T * H; i++) x[i] += o[i];
    }
    tm_norm(x + (size_t)(T - 1) * H, m->norm, H, c->rms_eps, xn);
    for (int vv = 0; vv < c->vocab; vv++) {
        double s = 0;
        for (int d = 0; d < H; d++) s += xn[d] * awq_f16_to_f32(m->lm_head[(size_t)vv * H + d]);
        logits[vv] = s;
    }
    free(x), free(xn), free(q), free(k), free(v), free(att), free(o), free(g), free(u), free(sc);
}

#endif
