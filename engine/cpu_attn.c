/* cpu_attn.c - the small per-token operations of the CPU forward: RMSNorm, RoPE, and one
 * attention head over the KV cache (with the sliding-window bound). Plain loops: they cost a
 * few percent of a decode step next to the weight streaming, and being scalar they are their
 * own reference. Reductions use a fixed order so results never depend on batching.
 */
#include <math.h>

#include "awq_util.h"
#include "cpu.h"

/* x * (1 / sqrt(mean(x^2) + eps)) then * w, as HF LlamaRMSNorm/MistralRMSNorm in fp32. */
void eng_cpu_rmsnorm(float *out, const float *x, const uint16_t *w, int n, float eps) {
    float ss[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) ss[j] += x[i + j] * x[i + j];
    float s = ((ss[0] + ss[1]) + (ss[2] + ss[3])) + ((ss[4] + ss[5]) + (ss[6] + ss[7]));
    for (; i < n; i++) s += x[i] * x[i];
    float r = 1.0f / sqrtf(s / (float)n + eps);
    for (i = 0; i < n; i++) out[i] = (x[i] * r) * awq_f16_to_f32(w[i]);
}

/* rotate_half RoPE: for i < hd/2, (a, b) = (v[i], v[i + hd/2]) becomes
 * (a cos - b sin, b cos + a sin) with angle pos * theta^(-2i/hd). */
void eng_cpu_rope(float *v, int n_heads, int head_dim, int pos, float theta) {
    const int h = head_dim / 2;
    float cs[512], sn[512]; /* head_dim <= 1024 is checked at backend creation */
    for (int i = 0; i < h; i++) {
        float inv = 1.0f / powf(theta, (float)(2 * i) / (float)head_dim);
        float a = (float)pos * inv;
        cs[i] = cosf(a);
        sn[i] = sinf(a);
    }
    for (int hd = 0; hd < n_heads; hd++) {
        float *p = v + (size_t)hd * head_dim;
        for (int i = 0; i < h; i++) {
            float a = p[i], b = p[i + h];
            p[i] = a * cs[i] - b * sn[i];
            p[i + h] = b * cs[i] + a * sn[i];
        }
    }
}

int eng_cpu_attn_lo(int pos, int sliding_window) {
    if (sliding_window > 0 && pos - sliding_window + 1 > 0) return pos - sliding_window + 1;
    return 0;
}

static float dot(const float *a, const float *b, int n) {
    float s[8] = {0};
    int i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) s[j] += a[i + j] * b[i + j];
    float r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
    for (; i < n; i++) r += a[i] * b[i];
    return r;
}

/* softmax(q . k_j * hd^-0.5) over j in [lo, hi], then the weighted sum of v_j. */
void eng_cpu_attn_head(const float *q, const float *kcache, const float *vcache, int kv_dim, int kv_off,
                       int head_dim, int lo, int hi, float *scratch, float *out) {
    const float scale = 1.0f / sqrtf((float)head_dim);
    float mx = -INFINITY;
    for (int j = lo; j <= hi; j++) {
        float s = dot(q, kcache + (size_t)j * kv_dim + kv_off, head_dim) * scale;
        scratch[j - lo] = s;
        if (s > mx) mx = s;
    }
    float sum = 0.0f;
    for (int j = lo; j <= hi; j++) {
        float e = expf(scratch[j - lo] - mx);
        scratch[j - lo] = e;
        sum += e;
    }
    float inv = 1.0f / sum;
    for (int d = 0; d < head_dim; d++) out[d] = 0.0f;
    for (int j = lo; j <= hi; j++) {
        float p = scratch[j - lo] * inv;
        const float *vj = vcache + (size_t)j * kv_dim + kv_off;
        for (int d = 0; d < head_dim; d++) out[d] += p * vj[d];
    }
}
