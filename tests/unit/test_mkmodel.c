/* test_mkmodel.c - awq-mkmodel: determinism (same seed, same bytes; other seed, other bytes; the
 * shard count never changes a weight), the output loads with the real loader, the chat
 * templates equal tests/data/templates/NAME.jinja, the weight statistics that keep logits spread,
 * usage and input errors, and the size of the 7B preset by arithmetic. Runs the built binary
 * ($AWQ_BIN/awq-mkmodel) with the fetched tokenizer ($AWQ_TOKENIZER); skips without them. */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "awq_util.h"
#include "config.h"
#include "harness.h"
#include "model.h"
#include "plat.h"

static char err[AWQ_ERR_LEN], root[256], mk[1024], out_text[4096];
static const char *tok;

/* Run awq-mkmodel with args (stderr captured into out_text); returns its exit code. */
static int run(const char *args) {
    char cmd[4096], log[300];
    snprintf(log, sizeof log, "%s/log.txt", root);
    snprintf(cmd, sizeof cmd, "'%s' %s 2>'%s' >/dev/null", mk, args, log);
    int st = system(cmd);
    char *t = NULL;
    size_t n;
    out_text[0] = 0;
    if (plat_read_file(NULL, log, sizeof out_text - 1, &t, &n) == 0) {
        memcpy(out_text, t, n + 1);
        free(t);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int make(const char *sub, const char *extra) {
    char args[2048];
    snprintf(args, sizeof args, "-o '%s/%s' --tokenizer '%s' %s", root, sub, tok, extra);
    return run(args);
}

/* Byte-compare dir a/name with dir b/name: 1 equal, 0 different, -1 unreadable. */
static int same_file(const char *a, const char *b, const char *name) {
    char pa[512], pb[512];
    snprintf(pa, sizeof pa, "%s/%s/%s", root, a, name);
    snprintf(pb, sizeof pb, "%s/%s/%s", root, b, name);
    plat_map ma, mb;
    if (plat_map_file(NULL, pa, &ma)) return -1;
    if (plat_map_file(NULL, pb, &mb)) {
        plat_unmap(&ma);
        return -1;
    }
    int r = ma.len == mb.len && memcmp(ma.data, mb.data, ma.len) == 0;
    plat_unmap(&ma);
    plat_unmap(&mb);
    return r;
}

static eng_model *load(const char *sub) {
    char d[512];
    snprintf(d, sizeof d, "%s/%s", root, sub);
    eng_model *m = NULL;
    if (eng_model_load(err, d, &m)) fprintf(stderr, "load %s: %s\n", sub, err);
    return m;
}

/* The chat_template string of dir/tokenizer_config.json, malloc'ed. */
static char *chat_template(const char *sub) {
    char p[512], *text = NULL;
    size_t n;
    snprintf(p, sizeof p, "%s/%s/tokenizer_config.json", root, sub);
    if (plat_read_file(NULL, p, 1 << 20, &text, &n)) return NULL;
    /* minimal extraction through the engine's JSON dependency would pull cJSON into the test;
     * the file is ours, so find the key and unescape the JSON string by hand */
    char *k = strstr(text, "\"chat_template\": \"");
    char *out = NULL;
    if (k) {
        k += strlen("\"chat_template\": \"");
        out = malloc(strlen(k) + 1);
        size_t o = 0;
        for (; *k && *k != '"'; k++) {
            if (*k == '\\') {
                k++;
                out[o++] = *k == 'n' ? '\n' : *k == 't' ? '\t' : *k;
            } else {
                out[o++] = *k;
            }
        }
        out[o] = 0;
    }
    free(text);
    return out;
}

static void test_determinism(void) {
    CASE("mk-1.1", "same seed gives identical bytes in every file; another seed other weights");
    CHECK_EQ(make("a", "--seed 7 --shards 2"), 0);
    CHECK_EQ(make("b", "--seed 7 --shards 2"), 0);
    CHECK_EQ(make("c", "--seed 8 --shards 2"), 0);
    const char *files[] = {"config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                           "special_tokens_map.json", "model.safetensors.index.json",
                           "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    for (int i = 0; i < 8; i++) CHECK_EQ(same_file("a", "b", files[i]), 1);
    CHECK_EQ(same_file("a", "c", "config.json"), 1);
    CHECK_EQ(same_file("a", "c", "model-00001-of-00002.safetensors"), 0);
    CHECK_EQ(same_file("a", "c", "model-00002-of-00002.safetensors"), 0);

    CASE("mk-1.2", "the shard count changes no weight: one file and two shards hold equal tensors");
    CHECK_EQ(make("one", "--seed 7"), 0);
    eng_model *a = load("a"), *one = load("one");
    CHECK(a && one);
    if (a && one) {
        CHECK_EQ(a->n_shards, 2);
        CHECK_EQ(one->n_shards, 1);
        CHECK_EQ(a->n_tensors, one->n_tensors);
        int diff = 0;
        for (int i = 0; i < a->n_tensors && i < one->n_tensors; i++) {
            const eng_tensor *x = &a->tensors[i], *y = &one->tensors[i];
            if (strcmp(x->name, y->name) || x->nbytes != y->nbytes || memcmp(x->data, y->data, x->nbytes)) diff++;
        }
        CHECK_EQ(diff, 0);
        /* layers split across the shards, embedding first, lm_head last */
        CHECK_EQ(eng_model_tensor(a, "model.embed_tokens.weight")->shard, 0);
        CHECK_EQ(eng_model_tensor(a, "model.layers.0.mlp.up_proj.qweight")->shard, 0);
        CHECK_EQ(eng_model_tensor(a, "model.layers.1.mlp.up_proj.qweight")->shard, 1);
        CHECK_EQ(eng_model_tensor(a, "lm_head.weight")->shard, 1);
    }
    eng_model_free(a);
    eng_model_free(one);
}

static void test_output(void) {
    CASE("mk-2.1", "presets and options reach config.json and load back");
    CHECK_EQ(make("d", "--preset demo --arch llama --tie --head-dim 64 --heads 4 --kv-heads 2 --rope-theta 500000 "
                       "--max-pos 8192 --rms-eps 1e-6 --seed 3"),
             0);
    eng_model *m = load("d");
    CHECK(m != NULL);
    if (m) {
        const eng_config *c = &m->cfg;
        CHECK_STR(c->arch, "LlamaForCausalLM");
        CHECK_STR(c->model_type, "llama");
        CHECK(c->hidden == 256 && c->intermediate == 512 && c->layers == 4 && c->heads == 4 && c->kv_heads == 2);
        CHECK(c->head_dim == 64 && c->vocab == 32000 && c->group_size == 64 && c->max_pos == 8192);
        CHECK(c->tie_embeddings && m->lm_head == m->embed && c->sliding_window == 0);
        CHECK_NEAR(c->rope_theta, 500000, 0.5);
        CHECK_NEAR(c->rms_eps, 1e-6, 1e-12);
        CHECK(c->bos_id == 1 && c->n_eos == 1 && c->eos_ids[0] == 2);
        CHECK(m->gen.has_temperature && m->gen.has_top_p && m->gen.do_sample);
        CHECK_EQ(m->n_shards, 1);
        CHECK_STR(m->shard_names[0], "model.safetensors");
    }
    eng_model_free(m);
    CHECK_EQ(make("s", "--sliding-window 512 --layers 3 --shards 3 --group 16"), 0);
    m = load("s");
    if (m) CHECK(m->cfg.sliding_window == 512 && m->n_shards == 3 && m->cfg.group_size == 16 && m->cfg.layers == 3);
    CHECK(m != NULL);
    eng_model_free(m);

    CASE("mk-2.2", "chat templates equal tests/data/templates/NAME.jinja; --template FILE is copied");
    const char *src = h_env("AWQ_SRC");
    const char *names[] = {"llama2", "mistral", "chatml", "zephyr"};
    for (int i = 0; i < 4 && src; i++) {
        char sub[32], args[700], jp[600], *want = NULL;
        size_t n;
        snprintf(sub, sizeof sub, "t-%s", names[i]);
        snprintf(args, sizeof args, "--template %s", names[i]);
        CHECK_EQ(make(sub, args), 0);
        snprintf(jp, sizeof jp, "%s/tests/data/templates/%s.jinja", src, names[i]);
        CHECK_EQ(plat_read_file(NULL, jp, 1 << 20, &want, &n), 0);
        char *got = chat_template(sub);
        CHECK_STR(got, want);
        if (i == 0) { /* --template FILE: the file's text as it is */
            CHECK_EQ(make("t-file", jp), 2); /* a bare path is not an option */
            snprintf(args, sizeof args, "--template '%s'", jp);
            CHECK_EQ(make("t-file", args), 0);
            char *gf = chat_template("t-file");
            CHECK_STR(gf, want);
            free(gf);
        }
        free(got);
        free(want);
    }
    CHECK(src != NULL);
}

/* Mean and std of every dequantized weight of l, scaled by sqrt(in). */
static void qstats(const eng_qlinear *l, double *mean, double *sd_scaled) {
    float *row = malloc((size_t)l->out * sizeof *row);
    double s = 0, s2 = 0, n = 0;
    for (int k = 0; k < l->in; k++) {
        eng_qlinear_dequant_row(l, k, row);
        for (int j = 0; j < l->out; j++) {
            s += row[j];
            s2 += (double)row[j] * row[j];
        }
        n += l->out;
    }
    free(row);
    *mean = s / n;
    *sd_scaled = sqrt(s2 / n - *mean * *mean) * sqrt((double)l->in);
}

static void test_stats(void) {
    CASE("mk-3.1", "weights: dequantized std ~1/sqrt(in), zeros in [6,9], every 4-bit value used, norms ~1");
    eng_model *m = load("a");
    CHECK(m != NULL);
    if (!m) return;
    const eng_layer *L = &m->layers[0];
    const eng_qlinear *ls[3] = {&L->q, &L->down, &m->layers[1].o};
    for (int i = 0; i < 3; i++) {
        double mean, sd;
        qstats(ls[i], &mean, &sd);
        fprintf(stderr, "   linear %d: mean %.4g, std*sqrt(in) %.3f\n", i, mean, sd);
        CHECK(sd > 0.8 && sd < 1.25);
        CHECK(fabs(mean) * sqrt((double)ls[i]->in) < 0.1);
    }
    int seen[16] = {0}, zbad = 0;
    for (int i = 0; i < L->up.in * L->up.out / 8; i++)
        for (int j = 0; j < 8; j++) seen[((uint32_t)L->up.qweight[i] >> (4 * j)) & 15]++;
    for (int i = 0; i < L->up.in / L->up.group * L->up.out / 8; i++)
        for (int j = 0; j < 8; j++) {
            int z = (int)(((uint32_t)L->up.qzeros[i] >> (4 * j)) & 15);
            zbad += z < 6 || z > 9;
        }
    for (int v = 0; v < 16; v++) CHECK(seen[v] > 0);
    CHECK_EQ(zbad, 0);
    double ns = 0;
    for (int i = 0; i < m->cfg.hidden; i++) ns += awq_f16_to_f32(L->attn_norm[i]);
    CHECK_NEAR(ns / m->cfg.hidden, 1.0, 0.05);

    CASE("mk-3.2", "logits of a unit-RMS hidden state have std in [1.5, 4] and varying argmax");
    uint64_t x = 12345;
    int argmax[6], distinct = 0;
    for (int t = 0; t < 6; t++) {
        int H = m->cfg.hidden, V = m->cfg.vocab;
        float *h = malloc((size_t)H * sizeof *h);
        for (int i = 0; i < H; i++) { /* +-1: unit RMS */
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            h[i] = (x >> 63) ? 1.0f : -1.0f;
        }
        double s = 0, s2 = 0, best = -1e30, second = -1e30;
        argmax[t] = 0;
        for (int v = 0; v < V; v++) {
            double z = 0;
            for (int i = 0; i < H; i++) z += awq_f16_to_f32(m->lm_head[(size_t)v * H + (size_t)i]) * h[i];
            s += z;
            s2 += z * z;
            if (z > best) {
                second = best;
                best = z;
                argmax[t] = v;
            } else if (z > second) {
                second = z;
            }
        }
        double sd = sqrt(s2 / V - (s / V) * (s / V));
        if (t == 0) fprintf(stderr, "   logits std %.3f, top1-top2 margin %.3f\n", sd, best - second);
        CHECK(sd > 1.5 && sd < 4.0);
        int dup = 0;
        for (int u = 0; u < t; u++) dup |= argmax[u] == argmax[t];
        distinct += !dup;
        free(h);
    }
    CHECK(distinct >= 5);
    eng_model_free(m);
}

static void test_errors(void) {
    CASE("mk-4.1", "usage errors exit 2, bad values exit 1 with the reason");
    CHECK_EQ(run("--tokenizer x"), 2);
    CHECK_CONTAINS(out_text, "awq-mkmodel: -o DIR is required");
    CHECK_EQ(make("e", "--frobnicate 1"), 2);
    CHECK_CONTAINS(out_text, "unknown option: --frobnicate");
    CHECK_EQ(make("e", "--layers 0"), 2);
    CHECK_CONTAINS(out_text, "--layers: '0' is not an integer in [1, 512]");
    CHECK_EQ(make("e", "--arch gpt2"), 2);
    CHECK_EQ(make("e", "--preset huge"), 2);
    CHECK_EQ(make("e", "--shards 3"), 2);
    CHECK_CONTAINS(out_text, "--shards may not exceed --layers");
    CHECK_EQ(make("e", "--arch llama --sliding-window 64"), 2);
    CHECK_EQ(make("e", "--group 48"), 1);
    CHECK_CONTAINS(out_text, "awq-mkmodel: config.json: group size 48 does not divide self_attn.q_proj in-features 64");
    CHECK_EQ(make("e", "--heads 3"), 1);
    CHECK_CONTAINS(out_text, "num_attention_heads 3 does not divide hidden_size 64");
    CHECK_EQ(make("e", "--vocab 100"), 1);
    CHECK_CONTAINS(out_text, "awq-mkmodel: vocab 100 is smaller than the tokenizer's 32000 tokens");
    CHECK_EQ(make("e", "--template /nonexistent.jinja"), 1);
    CHECK_CONTAINS(out_text, "--template: not llama2, mistral, chatml or zephyr");
    char args[600];
    snprintf(args, sizeof args, "-o '%s/e' --tokenizer '%s/nope.json'", root, root);
    CHECK_EQ(run(args), 1);
    CHECK_CONTAINS(out_text, "nope.json");
}

static void test_7b_size(void) {
    CASE("mk-5.1", "the shisa7b preset's size by arithmetic: 5.59 GB, 3.49 GB of 4-bit weights");
    const char *j = "{\"architectures\":[\"MistralForCausalLM\"],\"hidden_size\":4096,\"intermediate_size\":14336,"
                    "\"num_hidden_layers\":32,\"num_attention_heads\":32,\"num_key_value_heads\":8,"
                    "\"vocab_size\":120128,\"quantization_config\":{\"quant_method\":\"awq\",\"bits\":4,"
                    "\"group_size\":128,\"version\":\"gemm\"}}";
    eng_config c;
    CHECK_EQ(eng_config_parse(err, j, strlen(j), NULL, 0, &c), 0);
    double q4 = 0, meta = 0, dense = 2.0 * 2 * c.vocab * c.hidden + 2.0 * (2 * c.layers + 1) * c.hidden;
    for (int k = 0; k < ENG_LIN_COUNT; k++) {
        int in, out;
        eng_linear_dims(&c, k, &in, &out);
        q4 += (double)in * out / 2 * c.layers;
        meta += ((double)in / c.group_size * out / 2 + (double)in / c.group_size * out * 2) * c.layers;
    }
    double total = q4 + meta + dense;
    fprintf(stderr, "   7B: %.3f GB (4-bit %.3f, scales+zeros %.3f, fp16 %.3f)\n", total / 1e9, q4 / 1e9, meta / 1e9,
            dense / 1e9);
    CHECK_NEAR(total / 1e9, 5.59, 0.03);
    CHECK_NEAR(q4 / 1e9, 3.49, 0.01);
}

int main(void) {
    const char *bin = h_env("AWQ_BIN");
    tok = h_env("AWQ_TOKENIZER");
    if (!bin) SKIP("AWQ_BIN not set");
    if (!tok || !plat_is_file(tok)) SKIP("no tokenizer.json (run scripts/fetch-tokenizer.sh)");
    snprintf(mk, sizeof mk, "%s/awq-mkmodel", bin);
    if (!plat_is_file(mk)) SKIP("awq-mkmodel not built");
    snprintf(root, sizeof root, "/tmp/awq-test-mk-XXXXXX");
    if (!mkdtemp(root)) return 1;
    test_determinism();
    test_output();
    test_stats();
    test_errors();
    test_7b_size();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd)) fprintf(stderr, "could not remove %s\n", root);
    return h_finish();
}
