/* awq-mkmodel - writes a complete random-weight checkpoint in exactly the AutoAWQ GEMM layout
 * (config.json, shards, index, tokenizer files), deterministic from --seed. Every test of the
 * engine runs on these, since real checkpoints cannot be downloaded here.
 *
 * The config is validated with the loader's own eng_config_parse before anything is written,
 * and the result is loaded back with eng_model_load afterwards, so the tool never leaves a
 * checkpoint the engine would refuse. */
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "mk.h"
#include "plat.h"
#include "templates.h"

#define TOKENIZER_MAX (64u << 20)

static void usage(FILE *f) {
    fprintf(f,
            "usage: awq-mkmodel -o DIR --tokenizer PATH [options]\n"
            "  --preset tiny|demo|shisa7b   starting dimensions (default tiny)\n"
            "  --arch mistral|llama         architecture (default mistral)\n"
            "  --hidden N --intermediate N --layers N --heads N --kv-heads N --head-dim N --vocab N\n"
            "  --sliding-window N --rope-theta F --max-pos N --rms-eps F --group N\n"
            "  --tie                        tie lm_head to the embedding (no lm_head.weight)\n"
            "  --shards N                   split by layer into N shards (1: model.safetensors)\n"
            "  --seed S                     generator seed (default 1); same seed, same bytes\n"
            "  --template NAME|FILE         llama2 (default), mistral, chatml, zephyr, or a Jinja file\n"
            "presets: tiny    hidden 64, intermediate 128, 2 layers, 4 heads, 2 kv, vocab 32000, group 32\n"
            "         demo    hidden 256, intermediate 512, 4 layers, 8 heads, 4 kv, vocab 32000, group 64\n"
            "         shisa7b shisa-7B-v1's shape, 3 shards, about 5.6 GB\n");
}

static int fail(const char *msg) {
    fprintf(stderr, "awq-mkmodel: %s\n", msg);
    return 1;
}

static int bad_usage(const char *what, const char *arg) {
    fprintf(stderr, "awq-mkmodel: %s%s%s (see --help)\n", what, arg ? ": " : "", arg ? arg : "");
    return 2;
}

static bool parse_long(const char *s, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static void preset(mk_opts *o, const char *name) {
    eng_config *c = &o->cfg;
    c->rope_theta = 10000.0f;
    c->rms_eps = 1e-5f;
    c->sliding_window = 0;
    o->shards = 1;
    if (!strcmp(name, "demo")) {
        c->hidden = 256, c->intermediate = 512, c->layers = 4, c->heads = 8, c->kv_heads = 4;
        c->vocab = 32000, c->group_size = 64, c->max_pos = 4096;
    } else if (!strcmp(name, "shisa7b")) {
        c->hidden = 4096, c->intermediate = 14336, c->layers = 32, c->heads = 32, c->kv_heads = 8;
        c->vocab = 120128, c->group_size = 128, c->max_pos = 32768, c->sliding_window = 4096;
        o->shards = 3;
    } else { /* tiny */
        c->hidden = 64, c->intermediate = 128, c->layers = 2, c->heads = 4, c->kv_heads = 2;
        c->vocab = 32000, c->group_size = 32, c->max_pos = 2048;
    }
}

/* Parse argv into o; returns 0, or the exit code (2) after printing the usage error. */
static int parse_args(int argc, char **argv, mk_opts *o, const char **tmpl) {
    const char *pre = "tiny", *arch = "mistral";
    for (int i = 1; i < argc; i++) /* the preset first, so options override it wherever they are */
        if (!strcmp(argv[i], "--preset") && i + 1 < argc) pre = argv[i + 1];
    if (strcmp(pre, "tiny") && strcmp(pre, "demo") && strcmp(pre, "shisa7b")) return bad_usage("unknown preset", pre);
    preset(o, pre);
    o->seed = 1;
    *tmpl = "llama2";
    eng_config *c = &o->cfg;
    static const struct {
        const char *opt;
        long lo, hi;
        size_t off;
    } ints[] = {
        {"--hidden", 8, ENG_MAX_HIDDEN, offsetof(eng_config, hidden)},
        {"--intermediate", 8, ENG_MAX_INTERMEDIATE, offsetof(eng_config, intermediate)},
        {"--layers", 1, ENG_MAX_LAYERS, offsetof(eng_config, layers)},
        {"--heads", 1, ENG_MAX_HEADS, offsetof(eng_config, heads)},
        {"--kv-heads", 1, ENG_MAX_HEADS, offsetof(eng_config, kv_heads)},
        {"--head-dim", 2, ENG_MAX_HIDDEN, offsetof(eng_config, head_dim)},
        {"--vocab", 3, ENG_MAX_VOCAB, offsetof(eng_config, vocab)},
        {"--sliding-window", 0, ENG_MAX_CONTEXT, offsetof(eng_config, sliding_window)},
        {"--max-pos", 1, ENG_MAX_CONTEXT, offsetof(eng_config, max_pos)},
        {"--group", 1, ENG_MAX_GROUP, offsetof(eng_config, group_size)},
    };
    bool sw_given = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(a, "--tie")) {
            c->tie_embeddings = true;
            continue;
        }
        if (i + 1 >= argc) return bad_usage("missing value for", a);
        const char *v = argv[++i];
        long n;
        bool done = false;
        for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
            if (strcmp(a, ints[k].opt)) continue;
            if (!parse_long(v, ints[k].lo, ints[k].hi, &n)) {
                fprintf(stderr, "awq-mkmodel: %s: '%s' is not an integer in [%ld, %ld]\n", a, v, ints[k].lo, ints[k].hi);
                return 2;
            }
            *(int *)((char *)c + ints[k].off) = (int)n;
            if (!strcmp(a, "--head-dim")) o->head_dim_given = true;
            if (!strcmp(a, "--sliding-window")) sw_given = true;
            done = true;
        }
        if (done) continue;
        if (!strcmp(a, "-o")) o->out_dir = v;
        else if (!strcmp(a, "--tokenizer")) o->tokenizer = v;
        else if (!strcmp(a, "--template")) *tmpl = v;
        else if (!strcmp(a, "--preset")) continue;
        else if (!strcmp(a, "--arch")) arch = v;
        else if (!strcmp(a, "--shards")) {
            if (!parse_long(v, 1, ENG_MAX_SHARDS, &n)) return bad_usage("--shards: not an integer in [1, 1024]", v);
            o->shards = (int)n;
        } else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(v, &end, 0);
            if (errno || end == v || *end || v[0] == '-') return bad_usage("--seed: not an unsigned integer", v);
            o->seed = s;
        } else if (!strcmp(a, "--rope-theta") || !strcmp(a, "--rms-eps")) {
            char *end;
            double d = strtod(v, &end);
            if (end == v || *end || !isfinite(d) || d <= 0) return bad_usage("not a positive number", v);
            if (a[2] == 'r' && a[3] == 'o') c->rope_theta = (float)d;
            else c->rms_eps = (float)d;
        } else
            return bad_usage("unknown option", a);
    }
    if (!o->out_dir) return bad_usage("-o DIR is required", NULL);
    if (!o->tokenizer) return bad_usage("--tokenizer PATH is required", NULL);
    if (!strcmp(arch, "mistral")) {
        snprintf(c->arch, sizeof c->arch, "MistralForCausalLM");
        snprintf(c->model_type, sizeof c->model_type, "mistral");
    } else if (!strcmp(arch, "llama")) {
        snprintf(c->arch, sizeof c->arch, "LlamaForCausalLM");
        snprintf(c->model_type, sizeof c->model_type, "llama");
        if (sw_given && c->sliding_window) return bad_usage("--sliding-window needs --arch mistral", NULL);
        c->sliding_window = 0;
    } else
        return bad_usage("unknown --arch (mistral or llama)", arch);
    if (!o->head_dim_given) c->head_dim = 0; /* derived by the parser: hidden / heads */
    if (o->shards > c->layers) return bad_usage("--shards may not exceed --layers", NULL);
    return 0;
}

int main(int argc, char **argv) {
    mk_opts o;
    memset(&o, 0, sizeof o);
    const char *tmpl = "llama2";
    int rc = parse_args(argc, argv, &o, &tmpl);
    if (rc) return rc;
    char err[AWQ_ERR_LEN], msg[AWQ_ERR_LEN + 64];

    /* The config goes through the loader's parser first: bad dimensions are refused with the
     * loader's own message before a byte is written. */
    awq_buf cj = {0};
    if (mk_config_json(&o, &cj)) return fail("out of memory");
    rc = eng_config_parse(err, cj.data, cj.len, NULL, 0, &o.cfg);
    awq_buf_free(&cj);
    if (rc) return fail(err);

    char *tfile = NULL, *tok = NULL;
    size_t tlen, toklen;
    o.template_text = mk_template(tmpl);
    if (!o.template_text) {
        if (plat_read_file(err, tmpl, 1u << 20, &tfile, &tlen)) {
            snprintf(msg, sizeof msg, "--template: not llama2, mistral, chatml or zephyr, and %s", err);
            return fail(msg);
        }
        o.template_text = tfile;
    }
    if (plat_read_file(err, o.tokenizer, TOKENIZER_MAX, &tok, &toklen)) {
        free(tfile);
        return fail(err);
    }
    int ntok;
    if (mk_tokenizer_vocab(err, tok, toklen, &ntok)) {
        rc = fail(err);
        goto done;
    }
    if (o.cfg.vocab < ntok) {
        snprintf(msg, sizeof msg, "vocab %d is smaller than the tokenizer's %d tokens", o.cfg.vocab, ntok);
        rc = fail(msg);
        goto done;
    }
    if (plat_mkdirs(err, o.out_dir, 0755)) {
        rc = fail(err);
        goto done;
    }
    uint64_t total = 0, t0 = plat_now_ns();
    if (mk_write_files(err, &o, tok, toklen) || mk_write_weights(err, &o, &total)) {
        rc = fail(err);
        goto done;
    }
    eng_model *m = NULL;
    if (eng_model_load(err, o.out_dir, &m)) {
        snprintf(msg, sizeof msg, "wrote a checkpoint the loader refuses (a bug): %s", err);
        rc = fail(msg);
        goto done;
    }
    eng_model_free(m);
    fprintf(stderr, "awq-mkmodel: wrote %s: %llu weight bytes in %d shard(s), %.1f s\n", o.out_dir,
            (unsigned long long)total, o.shards, (double)(plat_now_ns() - t0) / 1e9);
done:
    free(tfile);
    free(tok);
    return rc;
}
