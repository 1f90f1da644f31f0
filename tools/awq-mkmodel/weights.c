/* weights.c - random AWQ GEMM weights, written as safetensors shards.
 *
 * Scales are chosen so that activations stay O(1) through the layers and logits are spread
 * (std about 2.5), which keeps greedy decoding from collapsing to one token:
 *  - linears: q uniform in [0,15], zeros uniform in [6,9], so (q - z) has mean 0 and variance
 *    21.25 + 1.25 = 22.5; scale = 1 / (sqrt(in) * sqrt(22.5)) * U(0.75, 1.25) gives weights of
 *    std ~1/sqrt(in): y = x.W keeps the variance of x.
 *  - embeddings and lm_head: N(0, 1) * 2.5 / sqrt(hidden): a unit-RMS hidden state gives logits
 *    of std ~2.5.
 *  - norm weights: 1 + N(0, 1) * 0.05.
 * Speed (the 5.6 GB 7B preset): qweight is raw generator output (8 nibbles per 32 bits) and
 * normals come from a 65536-entry fp16 table indexed by 16 random bits, so generation costs far
 * less than writing; data goes out in 4 MB fwrite calls. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "mk.h"
#include "plat.h"

#define CHUNK (4u << 20) /* bytes per fwrite; a multiple of 16 so no draw straddles chunks */

/* ------------------------------------------------------------------ generator ---- */

typedef struct rng {
    uint64_t s[4];
} rng;

static uint64_t splitmix(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix(&seed);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_next(rng *r) { /* xoshiro256** */
    uint64_t *s = r->s, out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

static inline double rng_unif(rng *r) { return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

static uint64_t fnv1a(const char *s) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    return h;
}

/* ------------------------------------------------------------------ the tensor plan ---- */

enum kind { K_NORMAL, K_NORM, K_QWEIGHT, K_QZEROS, K_SCALES };

typedef struct plan {
    char name[96];
    eng_dtype dt;
    int nd;
    int64_t shape[2];
    enum kind kind;
    int in;     /* K_SCALES: in-features of the linear */
    int shard;
    size_t nbytes;
} plan;

static void push(plan *p, int *n, const char *name, eng_dtype dt, int64_t d0, int64_t d1, enum kind k, int in,
                 int shard) {
    plan *t = &p[(*n)++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dt = dt;
    t->nd = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->kind = k;
    t->in = in;
    t->shard = shard;
    t->nbytes = (size_t)d0 * (size_t)(d1 ? d1 : 1) * eng_dtype_size(dt);
}

/* Every tensor in AutoAWQ GEMM layout; layer L in shard L * shards / layers, the embedding in
 * the first shard, the final norm and lm_head in the last (as HF splits by layer). */
static plan *make_plan(const mk_opts *o, int *n_out) {
    const eng_config *c = &o->cfg;
    size_t cap = 3 + (size_t)c->layers * (2 + 3 * ENG_LIN_COUNT);
    plan *p = calloc(cap, sizeof *p);
    if (!p) return NULL;
    int n = 0;
    char nm[96];
    push(p, &n, "model.embed_tokens.weight", ENG_DT_F16, c->vocab, c->hidden, K_NORMAL, 0, 0);
    for (int L = 0; L < c->layers; L++) {
        int s = (int)((int64_t)L * o->shards / c->layers);
        snprintf(nm, sizeof nm, "model.layers.%d.input_layernorm.weight", L);
        push(p, &n, nm, ENG_DT_F16, c->hidden, 0, K_NORM, 0, s);
        snprintf(nm, sizeof nm, "model.layers.%d.post_attention_layernorm.weight", L);
        push(p, &n, nm, ENG_DT_F16, c->hidden, 0, K_NORM, 0, s);
        for (int k = 0; k < ENG_LIN_COUNT; k++) {
            int in, out;
            eng_linear_dims(c, k, &in, &out);
            const char *ln = eng_linear_name(k);
            snprintf(nm, sizeof nm, "model.layers.%d.%s.qweight", L, ln);
            push(p, &n, nm, ENG_DT_I32, in, out / 8, K_QWEIGHT, in, s);
            snprintf(nm, sizeof nm, "model.layers.%d.%s.qzeros", L, ln);
            push(p, &n, nm, ENG_DT_I32, in / c->group_size, out / 8, K_QZEROS, in, s);
            snprintf(nm, sizeof nm, "model.layers.%d.%s.scales", L, ln);
            push(p, &n, nm, ENG_DT_F16, in / c->group_size, out, K_SCALES, in, s);
        }
    }
    push(p, &n, "model.norm.weight", ENG_DT_F16, c->hidden, 0, K_NORM, 0, o->shards - 1);
    if (!c->tie_embeddings)
        push(p, &n, "lm_head.weight", ENG_DT_F16, c->vocab, c->hidden, K_NORMAL, 0, o->shards - 1);
    *n_out = n;
    return p;
}

/* ------------------------------------------------------------------ data ---- */

typedef struct gen_tables {
    uint16_t normal[65536]; /* fp16 N(0,1) * 2.5/sqrt(hidden), by 16 random bits */
    float unit[65536];      /* N(0,1) */
} gen_tables;

static void make_tables(gen_tables *g, uint64_t seed, int hidden) {
    rng r;
    rng_seed(&r, seed ^ 0x6a09e667f3bcc908ull);
    for (int i = 0; i < 65536; i += 2) { /* Box-Muller, two normals per pair of uniforms */
        double u1 = 1.0 - rng_unif(&r), u2 = rng_unif(&r), rad = sqrt(-2.0 * log(u1));
        g->unit[i] = (float)(rad * cos(6.283185307179586 * u2));
        g->unit[i + 1] = (float)(rad * sin(6.283185307179586 * u2));
    }
    float sd = 2.5f / sqrtf((float)hidden);
    for (int i = 0; i < 65536; i++) g->normal[i] = awq_f32_to_f16(g->unit[i] * sd);
}

/* Fill buf (n bytes) with the next bytes of tensor t. n is CHUNK (a multiple of 16) or the
 * tensor's tail, so no 64-bit draw is split across two calls. */
static void fill(const plan *t, const gen_tables *g, rng *r, uint8_t *buf, size_t n) {
    switch (t->kind) {
    case K_NORMAL:
        for (size_t i = 0; i < n; i += 8) {
            uint64_t x = rng_next(r);
            uint16_t v[4] = {g->normal[x & 0xffff], g->normal[(x >> 16) & 0xffff], g->normal[(x >> 32) & 0xffff],
                             g->normal[x >> 48]};
            memcpy(buf + i, v, 8); /* little-endian hosts only, like the rest of the engine */
        }
        break;
    case K_QWEIGHT: /* every nibble uniform in [0, 15] */
        for (size_t i = 0; i < n; i += 8) {
            uint64_t x = rng_next(r);
            memcpy(buf + i, &x, 8);
        }
        break;
    case K_QZEROS: /* every nibble 6 + (2 random bits): [6, 9] */
        for (size_t i = 0; i < n; i += 16) {
            uint64_t x = rng_next(r);
            for (int w = 0; w < 4 && i + 4 * (size_t)w < n; w++) { /* (in/group)*(out/8) may be odd */
                uint32_t z = 0;
                for (int j = 0; j < 8; j++) z |= (uint32_t)(6 + ((x >> (16 * w + 2 * j)) & 3)) << (4 * j);
                memcpy(buf + i + 4 * (size_t)w, &z, 4);
            }
        }
        break;
    case K_SCALES: {
        double base = 1.0 / (sqrt((double)t->in) * sqrt(22.5));
        for (size_t i = 0; i < n; i += 2) {
            uint16_t h = awq_f32_to_f16((float)(base * (0.75 + 0.5 * rng_unif(r))));
            memcpy(buf + i, &h, 2);
        }
        break;
    }
    case K_NORM:
        for (size_t i = 0; i < n; i += 2) {
            uint16_t h = awq_f32_to_f16(1.0f + 0.05f * g->unit[rng_next(r) >> 48]);
            memcpy(buf + i, &h, 2);
        }
        break;
    }
}

/* ------------------------------------------------------------------ shards ---- */

static void shard_file(const mk_opts *o, int s, char *out, size_t cap) {
    if (o->shards == 1) snprintf(out, cap, "model.safetensors");
    else snprintf(out, cap, "model-%05d-of-%05d.safetensors", s + 1, o->shards);
}

/* The header of shard s, padded with spaces to a multiple of 8 so the data region is aligned, as
 * Hugging Face's writer does. Every tensor size is a multiple of 4 bytes (in- and out-features
 * are multiples of 8), so every tensor starts aligned for its I32 / F16 reads. */
static int shard_header(const plan *p, int n, int s, awq_buf *h) {
    size_t off = 0;
    int rc = awq_buf_puts(h, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n && !rc; i++) {
        if (p[i].shard != s) continue;
        rc = awq_buf_printf(h, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld", p[i].name, eng_dtype_name(p[i].dt),
                            (long long)p[i].shape[0]);
        if (!rc && p[i].nd == 2) rc = awq_buf_printf(h, ",%lld", (long long)p[i].shape[1]);
        if (!rc) rc = awq_buf_printf(h, "],\"data_offsets\":[%zu,%zu]}", off, off + p[i].nbytes);
        off += p[i].nbytes;
    }
    if (!rc) rc = awq_buf_puts(h, "}");
    while (!rc && (h->len + 8) % 8) rc = awq_buf_puts(h, " ");
    return rc;
}

static int write_shard(char *err, const mk_opts *o, const plan *p, int n, int s, const gen_tables *g, uint8_t *buf) {
    char name[64], path[PLAT_PATH_MAX];
    shard_file(o, s, name, sizeof name);
    awq_buf h = {0};
    if (shard_header(p, n, s, &h)) return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    if (plat_path_join(path, o->out_dir, name)) {
        awq_buf_free(&h);
        return awq_seterr(err, AWQ_ETOOBIG, "%s: path too long", o->out_dir);
    }
    FILE *f = fopen(path, "wb");
    if (!f) {
        awq_buf_free(&h);
        return awq_seterr(err, AWQ_EIO, "%s: cannot create", path);
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
    bool ok = fwrite(len8, 1, 8, f) == 8 && fwrite(h.data, 1, h.len, f) == h.len;
    awq_buf_free(&h);
    for (int i = 0; i < n && ok; i++) {
        if (p[i].shard != s) continue;
        rng r;
        rng_seed(&r, o->seed ^ fnv1a(p[i].name));
        for (size_t done = 0; done < p[i].nbytes && ok; done += CHUNK) {
            size_t k = p[i].nbytes - done < CHUNK ? p[i].nbytes - done : CHUNK;
            fill(&p[i], g, &r, buf, k);
            ok = fwrite(buf, 1, k, f) == k;
        }
    }
    if (fclose(f) != 0) ok = false;
    if (!ok) return awq_seterr(err, AWQ_EIO, "%s: write failed (disk full?)", path);
    return 0;
}

static int write_index(char *err, const mk_opts *o, const plan *p, int n, uint64_t total) {
    awq_buf b = {0};
    int rc = awq_buf_printf(&b, "{\n  \"metadata\": {\n    \"total_size\": %llu\n  },\n  \"weight_map\": {",
                            (unsigned long long)total);
    /* HF writes the weight map sorted by name; the plan is in layer order, so sort a view. */
    const plan **v = malloc((size_t)n * sizeof *v);
    if (!v) rc = AWQ_ENOMEM;
    for (int i = 0; v && i < n; i++) v[i] = &p[i];
    for (int i = 1; v && i < n; i++) /* insertion sort: a few hundred names */
        for (int j = i; j > 0 && strcmp(v[j - 1]->name, v[j]->name) > 0; j--) {
            const plan *t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    for (int i = 0; v && i < n && !rc; i++) {
        char sn[64];
        shard_file(o, v[i]->shard, sn, sizeof sn);
        rc = awq_buf_printf(&b, "%s\n    \"%s\": \"%s\"", i ? "," : "", v[i]->name, sn);
    }
    if (!rc) rc = awq_buf_puts(&b, "\n  }\n}\n");
    free(v);
    if (!rc) rc = mk_write(err, o->out_dir, "model.safetensors.index.json", b.data, b.len);
    else rc = awq_seterr(err, AWQ_ENOMEM, "out of memory");
    awq_buf_free(&b);
    return rc;
}

int mk_write_weights(char *err, const mk_opts *o, uint64_t *total) {
    int n = 0, rc = 0;
    plan *p = make_plan(o, &n);
    gen_tables *g = malloc(sizeof *g);
    uint8_t *buf = malloc(CHUNK);
    if (!p || !g || !buf) {
        rc = awq_seterr(err, AWQ_ENOMEM, "out of memory");
        goto done;
    }
    make_tables(g, o->seed, o->cfg.hidden);
    *total = 0;
    for (int i = 0; i < n; i++) *total += p[i].nbytes;
    for (int s = 0; s < o->shards && !rc; s++) rc = write_shard(err, o, p, n, s, g, buf);
    if (!rc && o->shards > 1) rc = write_index(err, o, p, n, *total);
done:
    free(p);
    free(g);
    free(buf);
    return rc;
}
