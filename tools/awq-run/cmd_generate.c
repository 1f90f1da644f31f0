/* cmd_generate.c - `awq-run generate` and `awq-run bench`: the engine end to end without the
 * daemon.
 *
 *   awq-run generate -m DIR [--raw] [--system TEXT] [-n N] [--temperature T] [--top-k K]
 *                    [--top-p P] [--min-p P] [--seed S] [--stop STR]... [--json] [--threads N]
 *                    [--device cpu|cuda|auto] [--ctx N] [--fp16-weights] -- TEXT
 *     Without --raw, TEXT is one user message (after --system) rendered by the model's chat
 *     template with add_generation_prompt and tokenized without adding BOS (the template has
 *     it); with --raw, TEXT is tokenized as Hugging Face tokenizer(TEXT) (BOS added). Text is
 *     streamed to stdout as it is made; --json prints only one object at the end. Defaults come
 *     from generation_config.json, then -n 256 unless it sets max_new_tokens.
 *   awq-run bench -m DIR [--threads N] [--prompt N] [--gen N] [--device D] [--fp16-weights]
 *     prefill tok/s, decode tok/s, weight bytes streamed per decode token as GB/s, and the
 *     membw probe measured in the same run.
 *   --fp16-weights: CUDA keeps fp16 weight copies for prompts (the daemon's
 *     model.prefill_fp16_weights).
 * Exit codes: 0 ok, 1 bad input (one line "awq-run: ..." on stderr), 2 usage.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "awq_util.h"
#include "cmds.h"
#include "cpu.h"
#include "llm.h"
#include "plat.h"

typedef struct gen_opts {
    const char *dir, *system, *device, *text;
    bool raw, json, fp16w;
    int threads, ctx, n_prompt, n_gen;
    bool n_given;
    int n;
    float temperature, top_p, min_p;
    int top_k;
    bool has_temp, has_top_p, has_min_p, has_top_k;
    uint64_t seed;
    bool has_seed;
    const char *stop[ENG_SAMP_MAX_STOP];
    int n_stop;
} gen_opts;

static void usage_generate(FILE *f) {
    fprintf(f, "usage: awq-run generate -m DIR [--raw] [--system TEXT] [-n N] [--temperature T] [--top-k K]\n"
               "         [--top-p P] [--min-p P] [--seed S] [--stop STR]... [--json] [--threads N]\n"
               "         [--device cpu|cuda|auto] [--ctx N] [--fp16-weights] -- TEXT\n"
               "  TEXT is one user message rendered by the chat template (--raw: tokenized as is, BOS added).\n"
               "  -n defaults to generation_config.json's max_new_tokens, else 256; --temperature 0 is greedy.\n");
}

static void usage_bench(FILE *f) {
    fprintf(f, "usage: awq-run bench -m DIR [--threads N] [--prompt N] [--gen N] [--device cpu|cuda|auto] [--ctx N]\n"
               "         [--fp16-weights]\n"
               "  defaults: --prompt 128 --gen 32; prints prefill and decode tok/s, weight GB/s and the\n"
               "  read-bandwidth probe of the same run. --fp16-weights: CUDA keeps fp16 weight copies for\n"
               "  prompts (model.prefill_fp16_weights).\n");
}

static int bad(const char *opt, const char *v, const char *want) {
    fprintf(stderr, "awq-run: %s '%s': %s\n", opt, v, want);
    return 2;
}

static bool to_int(const char *s, long lo, long hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return false;
    *out = (int)v;
    return true;
}

static bool to_float(const char *s, float *out) {
    char *end;
    errno = 0;
    float v = strtof(s, &end);
    if (errno || end == s || *end || isnan(v)) return false;
    *out = v;
    return true;
}

/* Returns 0, 2 on a usage error, -1 after --help. */
static int parse(int argc, char **argv, bool bench, gen_opts *o) {
    memset(o, 0, sizeof *o);
    o->device = "auto";
    o->n_prompt = 128;
    o->n_gen = 32;
    void (*usage)(FILE *) = bench ? usage_bench : usage_generate;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return -1;
        }
        if (!strcmp(a, "--fp16-weights")) {
            o->fp16w = true;
            continue;
        }
        bool flag = !strcmp(a, "--raw") || !strcmp(a, "--json");
        if (flag && !bench) {
            if (a[2] == 'r') o->raw = true;
            else o->json = true;
            continue;
        }
        static const char *const valued[] = {"-m", "--threads", "--device", "--ctx", "--system", "-n", "--temperature",
                                             "--top-k", "--top-p", "--min-p", "--seed", "--stop", "--prompt", "--gen"};
        int known = -1;
        for (int k = 0; k < (int)(sizeof valued / sizeof valued[0]); k++)
            if (!strcmp(a, valued[k])) known = k;
        bool bench_only = known >= 12, gen_only = known >= 4 && known < 12;
        if (known < 0 || (bench && gen_only) || (!bench && bench_only)) {
            fprintf(stderr, "awq-run: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "awq-run: %s needs a value\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(a, "-m")) o->dir = v;
        else if (!strcmp(a, "--device")) o->device = v;
        else if (!strcmp(a, "--system")) o->system = v;
        else if (!strcmp(a, "--threads")) {
            if (!to_int(v, 0, 1024, &o->threads)) return bad(a, v, "expected an integer in [0, 1024]");
        } else if (!strcmp(a, "--ctx")) {
            if (!to_int(v, 1, ENG_MAX_CONTEXT, &o->ctx)) return bad(a, v, "expected a positive integer");
        } else if (!strcmp(a, "--prompt")) {
            if (!to_int(v, 1, ENG_MAX_CONTEXT, &o->n_prompt)) return bad(a, v, "expected a positive integer");
        } else if (!strcmp(a, "--gen")) {
            if (!to_int(v, 2, ENG_MAX_CONTEXT, &o->n_gen)) return bad(a, v, "expected an integer >= 2");
        } else if (!strcmp(a, "-n")) {
            if (!to_int(v, -1000000000L, 1000000000L, &o->n)) return bad(a, v, "expected an integer");
            o->n_given = true;
        } else if (!strcmp(a, "--top-k")) {
            if (!to_int(v, -1000000000L, 1000000000L, &o->top_k)) return bad(a, v, "expected an integer");
            o->has_top_k = true;
        } else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            o->seed = strtoull(v, &end, 10);
            if (errno || end == v || *end || v[0] == '-') return bad(a, v, "expected an unsigned integer");
            o->has_seed = true;
        } else if (!strcmp(a, "--stop")) {
            if (o->n_stop == ENG_SAMP_MAX_STOP) return bad(a, v, "too many stop strings");
            o->stop[o->n_stop++] = v;
        } else {
            float f;
            if (!to_float(v, &f)) return bad(a, v, "expected a number");
            if (!strcmp(a, "--temperature")) o->temperature = f, o->has_temp = true;
            else if (!strcmp(a, "--top-p")) o->top_p = f, o->has_top_p = true;
            else o->min_p = f, o->has_min_p = true;
        }
    }
    if (!o->dir) {
        fprintf(stderr, "awq-run: -m DIR is required\n");
        usage(stderr);
        return 2;
    }
    if (!bench) {
        if (i != argc - 1) {
            fprintf(stderr, "awq-run: expected exactly one TEXT after the options (use -- TEXT)\n");
            usage(stderr);
            return 2;
        }
        o->text = argv[i];
    } else if (i != argc) {
        fprintf(stderr, "awq-run: unexpected argument '%s'\n", argv[i]);
        return 2;
    }
    return 0;
}

static double ms_since(uint64_t t0) { return (double)(plat_now_ns() - t0) / 1e6; }

static int fail(const char *err) {
    fprintf(stderr, "awq-run: %s\n", err);
    return 1;
}

static void print_ids(awq_buf *b, const int32_t *ids, size_t n, int *rc) {
    *rc |= awq_buf_puts(b, "[");
    for (size_t i = 0; i < n; i++) *rc |= awq_buf_printf(b, "%s%d", i ? "," : "", (int)ids[i]);
    *rc |= awq_buf_puts(b, "]");
}

int cmd_generate(int argc, char **argv) {
    gen_opts o;
    int rc = parse(argc, argv, false, &o);
    if (rc) return rc < 0 ? 0 : rc;
    char err[AWQ_ERR_LEN];
    eng_llm *l = NULL;
    eng_gen_seq *s = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    awq_buf text = {0}, js = {0};
    int ret = 1;
    eng_llm_opts lo = {
        .device = o.device, .threads = o.threads, .max_ctx = o.ctx, .max_seqs = 1, .fp16_weights = o.fp16w};
    if (eng_llm_open(err, o.dir, &lo, &l)) goto out_err;
    /* the prompt */
    if (o.raw) {
        if (eng_tok_encode(err, l->tok, o.text, strlen(o.text), eng_tok_add_bos(l->tok), &ids, &n_ids)) goto out_err;
    } else {
        eng_msg msgs[2];
        size_t nm = 0;
        if (o.system) msgs[nm++] = (eng_msg){"system", o.system};
        msgs[nm++] = (eng_msg){"user", o.text};
        if (eng_llm_chat_ids(err, l, msgs, nm, &ids, &n_ids)) goto out_err;
    }
    eng_samp_params p;
    eng_samp_params_default(&p, &l->model->gen);
    if (o.n_given) p.max_tokens = o.n;
    if (o.has_temp) p.temperature = o.temperature;
    if (o.has_top_k) p.top_k = o.top_k;
    if (o.has_top_p) p.top_p = o.top_p;
    if (o.has_min_p) p.min_p = o.min_p;
    p.seed = o.seed;
    p.has_seed = o.has_seed;
    p.stop = o.stop;
    p.n_stop = o.n_stop;
    if (eng_gen_seq_create(err, l->gen, &p, &s)) goto out_err;
    if (eng_gen_seq_prompt(err, s, ids, n_ids, NULL)) goto out_err;
    uint64_t t0 = plat_now_ns(), t_first = 0;
    double prompt_ms = 0;
    while (eng_gen_seq_finish(s) == ENG_GEN_RUNNING) {
        if (eng_gen_step(err, l->gen, &s, 1)) goto out_err;
        const eng_gen_event *ev = eng_gen_seq_event(s);
        if (ev->has_token && !t_first) {
            t_first = plat_now_ns();
            prompt_ms = ms_since(t0);
        }
        if (ev->text_len) {
            if (awq_buf_append(&text, ev->text, ev->text_len)) goto oom;
            if (!o.json) {
                fwrite(ev->text, 1, ev->text_len, stdout);
                fflush(stdout);
            }
        }
    }
    double decode_ms = t_first ? ms_since(t_first) : 0;
    size_t n_gen = eng_gen_seq_n_generated(s);
    if (!o.json) {
        fputc('\n', stdout);
    } else {
        const int32_t *h;
        eng_gen_seq_history(s, &h);
        int e = 0;
        e |= awq_buf_puts(&js, "{\"prompt_ids\":");
        print_ids(&js, ids, n_ids, &e);
        e |= awq_buf_puts(&js, ",\"ids\":");
        print_ids(&js, h + n_ids, n_gen, &e);
        e |= awq_buf_puts(&js, ",\"text\":");
        e |= awq_buf_json_str(&js, text.data ? text.data : "", text.len);
        e |= awq_buf_printf(&js,
                            ",\"finish_reason\":\"%s\",\"timings\":{\"prompt_ms\":%.3f,\"prefill_tok_s\":%.2f,"
                            "\"decode_ms\":%.3f,\"decode_tok_s\":%.2f,\"ttft_ms\":%.3f}}\n",
                            eng_gen_finish_name(eng_gen_seq_finish(s)), prompt_ms,
                            prompt_ms > 0 ? (double)n_ids / (prompt_ms / 1e3) : 0.0, decode_ms,
                            decode_ms > 0 && n_gen > 1 ? (double)(n_gen - 1) / (decode_ms / 1e3) : 0.0, prompt_ms);
        if (e) goto oom;
        fwrite(js.data, 1, js.len, stdout);
    }
    ret = 0;
    goto out;
oom:
    awq_seterr(err, AWQ_ENOMEM, "out of memory");
out_err:
    fail(err);
out:
    awq_buf_free(&text);
    awq_buf_free(&js);
    free(ids);
    eng_gen_seq_free(s);
    eng_llm_free(l);
    return ret;
}

/* bytes read from weights per decoded token: every quantized linear, the lm_head, the norms */
static double weight_bytes(const eng_model *m) {
    const eng_config *c = &m->cfg;
    double b = (double)c->vocab * c->hidden * 2 + (double)c->hidden * 2 * (2 * c->layers + 1);
    for (int i = 0; i < c->layers; i++) {
        const eng_qlinear *ls[7] = {&m->layers[i].q, &m->layers[i].k, &m->layers[i].v, &m->layers[i].o,
                                    &m->layers[i].gate, &m->layers[i].up, &m->layers[i].down};
        for (int j = 0; j < 7; j++)
            b += (double)ls[j]->in * ls[j]->out / 2 + (double)ls[j]->in / ls[j]->group * ls[j]->out * 2.5;
    }
    return b;
}

int cmd_bench(int argc, char **argv) {
    gen_opts o;
    int rc = parse(argc, argv, true, &o);
    if (rc) return rc < 0 ? 0 : rc;
    char err[AWQ_ERR_LEN];
    eng_llm *l = NULL;
    eng_gen_seq *s = NULL;
    int32_t *ids = NULL;
    int ret = 1;
    int ctx = o.ctx ? o.ctx : o.n_prompt + o.n_gen;
    eng_llm_opts lo = {
        .device = o.device, .threads = o.threads, .max_ctx = ctx, .max_seqs = 1, .fp16_weights = o.fp16w};
    if (eng_llm_open(err, o.dir, &lo, &l)) goto out_err;
    if (o.n_prompt + o.n_gen > l->max_ctx) {
        awq_seterr(err, AWQ_ECONTEXT, "--prompt %d + --gen %d exceed the context of %d tokens", o.n_prompt, o.n_gen,
                   l->max_ctx);
        goto out_err;
    }
    ids = malloc(sizeof *ids * (size_t)o.n_prompt);
    if (!ids) goto out_err;
    uint64_t x = 12345;
    for (int i = 0; i < o.n_prompt; i++) { /* fixed pseudo-random prompt, no special ids */
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)(3 + (x >> 33) % (uint64_t)(l->model->cfg.vocab - 3));
    }
    eng_samp_params p;
    eng_samp_params_default(&p, NULL);
    p.temperature = 0;
    p.ignore_eos = true;
    p.max_tokens = o.n_gen;
    if (eng_gen_seq_create(err, l->gen, &p, &s) || eng_gen_seq_prompt(err, s, ids, (size_t)o.n_prompt, NULL))
        goto out_err;
    uint64_t t0 = plat_now_ns(), t1 = 0;
    double prefill_ms = 0;
    while (eng_gen_seq_finish(s) == ENG_GEN_RUNNING) {
        if (eng_gen_step(err, l->gen, &s, 1)) goto out_err;
        if (eng_gen_seq_event(s)->has_token && !t1) {
            t1 = plat_now_ns();
            prefill_ms = (double)(t1 - t0) / 1e6;
        }
    }
    double decode_ms = ms_since(t1);
    size_t n_gen = eng_gen_seq_n_generated(s);
    double dec = (double)(n_gen - 1) / (decode_ms / 1e3), pre = o.n_prompt / (prefill_ms / 1e3);
    double wb = weight_bytes(l->model), gbs = wb * dec / 1e9;
    size_t wheld = 0, kv = 0;
    eng_gen_memory(l->gen, &wheld, &kv);
    eng_gen_seq_free(s);
    s = NULL;
    printf("model: %s (%s backend, %s kernels)\n", l->model->dir, eng_gen_backend_name(l->gen),
           eng_cpu_impl_name(eng_cpu_impl_best()));
    printf("prefill: %d tokens in %.1f ms = %.2f tok/s\n", o.n_prompt, prefill_ms, pre);
    printf("decode: %zu tokens in %.1f ms = %.2f tok/s (%.2f ms/token)\n", n_gen - 1, decode_ms, dec,
           decode_ms / (double)(n_gen - 1));
    printf("weights: %.3f GB read per token = %.2f GB/s\n", wb / 1e9, gbs);
    printf("kv cache: %.1f MB allocated for %d tokens\n", (double)kv / 1e6, l->max_ctx);
    printf("prefill/decode: %.1fx\n", pre / dec);
    if (!strcmp(eng_gen_backend_name(l->gen), "cpu")) {
        eng_cpu_pool *pool = eng_cpu_pool_create(err, o.threads);
        double bw = 0;
        if (!pool || eng_cpu_membw(err, pool, (size_t)1 << 30, 5, &bw)) {
            eng_cpu_pool_free(pool);
            goto out_err;
        }
        printf("membw probe: %.2f GB/s (1 GiB, %d threads, best of 5); decode streams %.0f%% of it\n", bw,
               eng_cpu_pool_size(pool), 100.0 * gbs / bw);
        eng_cpu_pool_free(pool);
    }
    ret = 0;
    goto out;
out_err:
    fail(err);
out:
    free(ids);
    eng_gen_seq_free(s);
    eng_llm_free(l);
    return ret;
}
