/* test_gen.c - the generation API over the CPU backend: rewinding to a prefix gives the same
 * logits as a fresh run, batch invariance (3 sequences batched vs alone: same ids, bitwise
 * equal logits, one of them prefilling over several steps while the others decode), finish
 * reasons (length, stop id, EOS / ignore_eos, context, cancel), context and slot errors, and
 * with the real tokenizer: streamed text equals the decode of the ids, stop strings matched
 * across token boundaries are never emitted. Last, when tests/reference/logits_ref.json exists,
 * our forward against the transformers reference on awq-mkmodel checkpoints.
 */
#define _GNU_SOURCE /* mkdtemp */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "gen.h"
#include "harness.h"
#include "sample.h"
#include "tmodel.h"
#include "tok.h"

#include <cjson/cJSON.h>
#include <unistd.h>

#define MAXSTEP 64

typedef struct run {
    int32_t ids[MAXSTEP];
    float *logits[MAXSTEP]; /* (vocab) copies */
    int n;
    eng_gen_finish fin;
} run;

static void run_free(run *r) {
    for (int i = 0; i < r->n; i++) free(r->logits[i]);
}

static eng_samp_params greedy(int max_tokens) {
    eng_samp_params p;
    eng_samp_params_default(&p, NULL);
    p.temperature = 0;
    p.max_tokens = max_tokens;
    p.ignore_eos = true;
    return p;
}

/* steps seqs together until all finish, recording each one's tokens and logits */
static int drive(eng_gen *g, eng_gen_seq **seqs, int n, run *out, int vocab) {
    char err[AWQ_ERR_LEN];
    for (int it = 0; it < 1000; it++) {
        int live = 0;
        for (int i = 0; i < n; i++) live += eng_gen_seq_finish(seqs[i]) == ENG_GEN_RUNNING;
        if (!live) return 0;
        int rc = eng_gen_step(err, g, seqs, n);
        if (rc) {
            fprintf(stderr, "step: %s\n", err);
            return rc;
        }
        for (int i = 0; i < n; i++) {
            const eng_gen_event *ev = eng_gen_seq_event(seqs[i]);
            if (!ev->has_token || out[i].n >= MAXSTEP) continue;
            out[i].ids[out[i].n] = ev->tok.id;
            const float *lg = eng_gen_seq_logits(seqs[i]); /* NULL unless eng_gen_keep_logits */
            out[i].logits[out[i].n] = lg ? malloc(sizeof(float) * (size_t)vocab) : NULL;
            if (lg) memcpy(out[i].logits[out[i].n], lg, sizeof(float) * (size_t)vocab);
            out[i].n++;
            if (ev->finish) out[i].fin = ev->finish;
        }
    }
    return -1;
}

static void test_numeric(void) {
    char err[AWQ_ERR_LEN];
    const int VOC = 64;
    eng_model *m = tm_create(64, 128, 2, 4, 2, 16, VOC, 32, 0, 0, 77);
    eng_backend_opts o = {.threads = 2, .max_ctx = 200, .max_seqs = 3};
    eng_gen *g = eng_gen_create(err, m, NULL, &eng_cpu_backend, &o);
    CHECK(g != NULL);
    eng_gen_keep_logits(g, true); /* these cases compare logits */
    int32_t pr[3][170];
    tm_rng r = {5};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 170; j++) pr[i][j] = (int32_t)(tm_next(&r) % VOC);
    const size_t plen[3] = {7, 150, 3}; /* 150 > ENG_GEN_CHUNK: prefill spans two steps */

    CASE("gen-1.1", "batch invariance: 3 sequences batched vs each alone, same ids, bitwise logits");
    {
        run together[3] = {0}, alone[3] = {0};
        eng_gen_seq *s[3];
        eng_samp_params p = greedy(6);
        for (int i = 0; i < 3; i++) {
            CHECK_EQ(eng_gen_seq_create(err, g, &p, &s[i]), 0);
            CHECK_EQ(eng_gen_seq_prompt(err, s[i], pr[i], plen[i], NULL), 0);
        }
        CHECK_EQ(eng_gen_seq_pending(s[1]), 150);
        CHECK_EQ(drive(g, s, 3, together, VOC), 0);
        for (int i = 0; i < 3; i++) eng_gen_seq_free(s[i]);
        for (int i = 0; i < 3; i++) {
            eng_gen_seq *one;
            CHECK_EQ(eng_gen_seq_create(err, g, &p, &one), 0);
            CHECK_EQ(eng_gen_seq_prompt(err, one, pr[i], plen[i], NULL), 0);
            CHECK_EQ(drive(g, &one, 1, &alone[i], VOC), 0);
            eng_gen_seq_free(one);
        }
        for (int i = 0; i < 3; i++) {
            CHECK_EQ(together[i].n, 6);
            CHECK_EQ(alone[i].n, 6);
            CHECK_EQ(together[i].fin, ENG_GEN_LENGTH);
            CHECK(memcmp(together[i].ids, alone[i].ids, sizeof(int32_t) * 6) == 0);
            int same = 1;
            for (int k = 0; k < 6 && k < together[i].n && k < alone[i].n; k++)
                same &= memcmp(together[i].logits[k], alone[i].logits[k], sizeof(float) * VOC) == 0;
            CHECK(same);
            run_free(&together[i]);
            run_free(&alone[i]);
        }
    }

    CASE("gen-1.2", "rewind to a prefix (prompt-cache reuse) gives the fresh run's logits");
    {
        eng_gen_seq *s, *f;
        eng_samp_params p = greedy(4);
        CHECK_EQ(eng_gen_seq_create(err, g, &p, &s), 0);
        CHECK_EQ(eng_gen_seq_prompt(err, s, pr[0], 40, NULL), 0);
        run a = {0}, b = {0};
        CHECK_EQ(drive(g, &s, 1, &a, VOC), 0);
        const int32_t *h;
        CHECK_EQ(eng_gen_seq_history(s, &h), 44);
        CHECK(memcmp(h, pr[0], 40 * sizeof(int32_t)) == 0);
        /* new prompt: the first 25 tokens shared, then different ones */
        int32_t np[50];
        memcpy(np, pr[0], 25 * sizeof(int32_t));
        memcpy(np + 25, pr[2], 25 * sizeof(int32_t));
        size_t reused = 0;
        CHECK_EQ(eng_gen_seq_prompt(err, s, np, 50, &reused), 0);
        CHECK_EQ(reused, 25);
        CHECK_EQ(eng_gen_seq_pending(s), 25);
        run_free(&a);
        a = (run){0};
        CHECK_EQ(drive(g, &s, 1, &a, VOC), 0);
        CHECK_EQ(eng_gen_seq_create(err, g, &p, &f), 0);
        CHECK_EQ(eng_gen_seq_prompt(err, f, np, 50, &reused), 0);
        CHECK_EQ(reused, 0);
        CHECK_EQ(drive(g, &f, 1, &b, VOC), 0);
        CHECK_EQ(a.n, 4);
        CHECK(a.n == b.n && memcmp(a.ids, b.ids, sizeof(int32_t) * 4) == 0);
        CHECK(memcmp(a.logits[0], b.logits[0], sizeof(float) * VOC) == 0);
        CHECK(memcmp(a.logits[3], b.logits[3], sizeof(float) * VOC) == 0);
        /* the same prompt again: all but its last token reused */
        CHECK_EQ(eng_gen_seq_prompt(err, f, np, 50, &reused), 0);
        CHECK_EQ(reused, 49);
        run c = {0};
        CHECK_EQ(drive(g, &f, 1, &c, VOC), 0);
        CHECK(memcmp(c.logits[0], b.logits[0], sizeof(float) * VOC) == 0);
        /* explicit rewind, then prompting again */
        eng_gen_seq_rewind(f, 10);
        CHECK_EQ(eng_gen_seq_history(f, NULL), 10);
        CHECK_EQ(eng_gen_seq_prompt(err, f, np, 50, &reused), 0);
        CHECK_EQ(reused, 10);
        run_free(&a), run_free(&b), run_free(&c);
        eng_gen_seq_free(s);
        eng_gen_seq_free(f);
    }

    CASE("gen-1.3", "finish reasons: stop id, EOS unless ignore_eos, cancel; slots run out and come back");
    {
        eng_gen_seq *s;
        eng_samp_params p = greedy(50);
        eng_samp_bias b = {2, 1000.0f}; /* force the model's EOS (id 2) */
        p.logit_bias = &b;
        p.n_logit_bias = 1;
        p.ignore_eos = false;
        CHECK_EQ(eng_gen_seq_create(err, g, &p, &s), 0);
        CHECK_EQ(eng_gen_seq_prompt(err, s, pr[0], 5, NULL), 0);
        run a = {0};
        CHECK_EQ(drive(g, &s, 1, &a, VOC), 0);
        CHECK_EQ(a.n, 1);
        CHECK_EQ(a.fin, ENG_GEN_STOP);
        CHECK_STR(eng_gen_finish_name(a.fin), "stop");
        run_free(&a);
        p.ignore_eos = true;
        p.max_tokens = 3;
        CHECK_EQ(eng_gen_seq_set_params(err, s, &p), 0);
        CHECK_EQ(eng_gen_seq_prompt(err, s, pr[0], 5, NULL), 0);
        a = (run){0};
        CHECK_EQ(drive(g, &s, 1, &a, VOC), 0);
        CHECK_EQ(a.n, 3);
        CHECK_EQ(a.fin, ENG_GEN_LENGTH);
        run_free(&a);
        int32_t sid = 2;
        p.stop_ids = &sid;
        p.n_stop_ids = 1;
        CHECK_EQ(eng_gen_seq_set_params(err, s, &p), 0);
        CHECK_EQ(eng_gen_seq_prompt(err, s, pr[0], 5, NULL), 0);
        a = (run){0};
        CHECK_EQ(drive(g, &s, 1, &a, VOC), 0);
        CHECK_EQ(a.fin, ENG_GEN_STOP);
        run_free(&a);
        p = greedy(50);
        CHECK_EQ(eng_gen_seq_set_params(err, s, &p), 0);
        CHECK_EQ(eng_gen_seq_prompt(err, s, pr[0], 5, NULL), 0);
        CHECK_EQ(eng_gen_step(err, g, &s, 1), 0);
        eng_gen_seq_cancel(s);
        CHECK_EQ(eng_gen_seq_finish(s), ENG_GEN_CANCEL);
        CHECK_STR(eng_gen_finish_name(ENG_GEN_CANCEL), "cancel");
        CHECK_EQ(eng_gen_step(err, g, &s, 1), 0); /* skipped */
        CHECK(!eng_gen_seq_event(s)->has_token);
        eng_gen_seq *x[3];
        CHECK_EQ(eng_gen_seq_create(err, g, &p, &x[0]), 0);
        CHECK_EQ(eng_gen_seq_create(err, g, &p, &x[1]), 0);
        CHECK_EQ(eng_gen_seq_create(err, g, &p, &x[2]), AWQ_EBUSY);
        CHECK_CONTAINS(err, "all 3 sequences are in use");
        size_t wb, kv;
        eng_gen_memory(g, &wb, &kv);
        CHECK(kv > 0);
        eng_gen_seq_free(x[0]);
        eng_gen_seq_free(x[1]);
        eng_gen_seq_free(s);
        eng_gen_memory(g, &wb, &kv);
        CHECK_EQ(kv, 0);
        p.temperature = -1;
        CHECK_EQ(eng_gen_seq_create(err, g, &p, &s), AWQ_EINVAL);
        CHECK_CONTAINS(err, "temperature -1");
    }

    CASE("gen-1.4", "context: prompt too long is an error with numbers; filling it finishes 'context'");
    {
        eng_gen_seq *s;
        eng_samp_params p = greedy(1000);
        CHECK_EQ(eng_gen_seq_create(err, g, &p, &s), 0);
        int32_t big[201] = {0};
        CHECK_EQ(eng_gen_seq_prompt(err, s, big, 201, NULL), AWQ_ECONTEXT);
        CHECK_CONTAINS(err, "prompt has 201 tokens; the context holds 200");
        CHECK_EQ(eng_gen_seq_prompt(err, s, big, 0, NULL), AWQ_EINVAL);
        CHECK_CONTAINS(err, "empty prompt");
        big[3] = VOC;
        CHECK_EQ(eng_gen_seq_prompt(err, s, big, 5, NULL), AWQ_ERANGE);
        CHECK_CONTAINS(err, "prompt token 3: id 64 outside the vocabulary of 64");
        big[3] = 0;
        CHECK_EQ(eng_gen_seq_prompt(err, s, pr[1], 150, NULL), 0);
        run a = {0};
        CHECK_EQ(drive(g, &s, 1, &a, VOC), 0);
        CHECK_EQ(a.fin, ENG_GEN_CONTEXT);
        CHECK_STR(eng_gen_finish_name(a.fin), "context");
        CHECK_EQ(eng_gen_seq_history(s, NULL), 201); /* 200 positions fed + the last sampled token */
        CHECK_EQ(eng_gen_seq_n_generated(s), 51);
        for (int i = 0; i < a.n; i++) free(a.logits[i]);
        eng_gen_seq_free(s);
    }
    eng_gen_free(g);
    tm_free(m);
}

static void append(char **acc, size_t *len, const char *t, size_t n) {
    *acc = realloc(*acc, *len + n + 1);
    memcpy(*acc + *len, t, n);
    *len += n;
    (*acc)[*len] = 0;
}

/* generates with p; returns the streamed text (malloc'ed), the ids in ids/n_ids */
static char *gen_text(eng_gen *g, const eng_samp_params *p, const int32_t *prompt, size_t np, int32_t *ids,
                      int *n_ids, eng_gen_finish *fin, int *bad_utf8) {
    char err[AWQ_ERR_LEN];
    eng_gen_seq *s;
    char *acc = calloc(1, 1);
    size_t len = 0;
    *n_ids = 0;
    if (eng_gen_seq_create(err, g, p, &s) || eng_gen_seq_prompt(err, s, prompt, np, NULL)) {
        fprintf(stderr, "gen_text: %s\n", err);
        return acc;
    }
    while (eng_gen_seq_finish(s) == ENG_GEN_RUNNING) {
        if (eng_gen_step(err, g, &s, 1)) break;
        const eng_gen_event *ev = eng_gen_seq_event(s);
        if (ev->has_token) ids[(*n_ids)++] = ev->tok.id;
        if (!awq_utf8_valid(ev->text, ev->text_len)) (*bad_utf8)++;
        append(&acc, &len, ev->text, ev->text_len);
    }
    *fin = eng_gen_seq_finish(s);
    eng_gen_seq_free(s);
    return acc;
}

/* Steps where >= 4 sequences sample spread the sampling over a pool (gen.c): each sequence's
 * ids must be those it draws alone (one sampler, one RNG per sequence), and a failure in one
 * of them comes back with its message. */
static void test_parallel_sampling(void) {
    char err[AWQ_ERR_LEN];
    const int VOC = 64, N = 6;
    eng_model *m = tm_create(64, 128, 2, 4, 2, 16, VOC, 32, 0, 0, 78);
    eng_backend_opts o = {.threads = 3, .max_ctx = 100, .max_seqs = N};
    eng_gen *g = eng_gen_create(err, m, NULL, &eng_cpu_backend, &o);
    CHECK(g != NULL);
    if (!g) {
        tm_free(m);
        return;
    }
    int32_t pr[6][12];
    tm_rng r = {9};
    for (int i = 0; i < N; i++)
        for (int j = 0; j < 12; j++) pr[i][j] = (int32_t)(tm_next(&r) % VOC);
    eng_samp_params p;
    eng_samp_params_default(&p, NULL);
    p.temperature = 1.3f, p.top_k = 20, p.top_p = 0.9f, p.max_tokens = 10, p.ignore_eos = true, p.has_seed = true;

    CASE("gen-1.5", "6 sequences sampling together (the parallel path) draw the ids each draws alone");
    eng_gen_keep_logits(g, true); /* whole rows: the host samples them, in parallel */
    {
        run together[6] = {0}, alone[6] = {0};
        eng_gen_seq *s[6];
        for (int i = 0; i < N; i++) {
            p.seed = 100 + (uint64_t)i;
            CHECK_EQ(eng_gen_seq_create(err, g, &p, &s[i]), 0);
            CHECK_EQ(eng_gen_seq_prompt(err, s[i], pr[i], 5 + (size_t)i, NULL), 0);
        }
        CHECK_EQ(drive(g, s, N, together, VOC), 0);
        for (int i = 0; i < N; i++) eng_gen_seq_free(s[i]);
        for (int i = 0; i < N; i++) {
            eng_gen_seq *one;
            p.seed = 100 + (uint64_t)i;
            CHECK_EQ(eng_gen_seq_create(err, g, &p, &one), 0);
            CHECK_EQ(eng_gen_seq_prompt(err, one, pr[i], 5 + (size_t)i, NULL), 0);
            CHECK_EQ(drive(g, &one, 1, &alone[i], VOC), 0);
            eng_gen_seq_free(one);
        }
        int distinct = 0;
        for (int i = 0; i < N; i++) {
            CHECK_EQ(together[i].n, 10);
            CHECK(memcmp(together[i].ids, alone[i].ids, sizeof(int32_t) * 10) == 0);
            distinct += i > 0 && memcmp(together[i].ids, together[0].ids, sizeof(int32_t) * 10) != 0;
            run_free(&together[i]);
            run_free(&alone[i]);
        }
        CHECK(distinct > 0); /* sampled, not all the same stream */
    }

    CASE("gen-1.6", "a sequence whose every token is banned fails the parallel step with the sampler's message");
    {
        eng_samp_bias ban[64];
        for (int v = 0; v < VOC; v++) ban[v] = (eng_samp_bias){v, -INFINITY};
        eng_gen_seq *s[6];
        for (int i = 0; i < N; i++) {
            eng_samp_params q = p;
            if (i == 4) q.logit_bias = ban, q.n_logit_bias = VOC;
            CHECK_EQ(eng_gen_seq_create(err, g, &q, &s[i]), 0);
            CHECK_EQ(eng_gen_seq_prompt(err, s[i], pr[i], 4, NULL), 0);
        }
        err[0] = 0;
        CHECK_EQ(eng_gen_step(err, g, s, N), AWQ_EINVAL);
        CHECK_CONTAINS(err, "every token is banned");
        for (int i = 0; i < N; i++) eng_gen_seq_free(s[i]);
    }

    CASE("gen-1.7", "picking on the backend (the default) draws the ids the whole-row path draws, for every kind of "
                    "sampler: greedy, pure temperature, top-k, top-p, min-p, typical-p, bias, penalties, logprobs");
    {
        eng_samp_bias bias[3] = {{3, 2.5f}, {7, -INFINITY}, {3, 0.25f}}; /* a repeated id: deltas summed */
        for (int cfg = 0; cfg < 10; cfg++) {
            eng_samp_params q;
            eng_samp_params_default(&q, NULL);
            q.max_tokens = 12, q.ignore_eos = true, q.has_seed = true;
            switch (cfg) {
            case 0: q.temperature = 0; break;
            case 1: q.temperature = 0, q.logit_bias = bias, q.n_logit_bias = 3, q.repetition_penalty = 1.3f; break;
            case 2: q.temperature = 0.8f; break;
            case 3: q.temperature = 1.1f, q.top_k = 5, q.frequency_penalty = 0.4f, q.presence_penalty = 0.2f; break;
            case 4: q.temperature = 1.0f, q.top_p = 0.6f; break;
            case 5: q.temperature = 1.5f, q.min_p = 0.05f, q.logit_bias = bias, q.n_logit_bias = 3; break;
            case 6: q.temperature = 0.9f, q.top_k = 12, q.top_p = 0.8f, q.min_p = 0.02f, q.typical_p = 0.9f; break;
            case 7: q.temperature = 1.0f, q.typical_p = 0.7f; break; /* whole row */
            case 8: q.temperature = 0.7f, q.top_k = 8, q.logprobs = 3; break; /* whole row */
            default: q.temperature = 2.0f, q.repetition_penalty = 0.7f, q.penalty_last_n = -1; break;
            }
            run res[2][6];
            memset(res, 0, sizeof res);
            for (int way = 0; way < 2; way++) {
                eng_gen_keep_logits(g, way == 0);
                eng_gen_seq *s[6];
                for (int i = 0; i < N; i++) {
                    q.seed = 500 + (uint64_t)(cfg * N + i);
                    CHECK_EQ(eng_gen_seq_create(err, g, &q, &s[i]), 0);
                    CHECK_EQ(eng_gen_seq_prompt(err, s[i], pr[i], 3 + (size_t)i, NULL), 0);
                }
                CHECK_EQ(drive(g, s, N, res[way], VOC), 0);
                for (int i = 0; i < N; i++) eng_gen_seq_free(s[i]);
            }
            int same = 1;
            for (int i = 0; i < N; i++) {
                same &= res[0][i].n == 12 && res[1][i].n == 12 &&
                        memcmp(res[0][i].ids, res[1][i].ids, sizeof(int32_t) * 12) == 0;
                for (int k = 0; k < res[1][i].n && cfg != 7 && cfg != 8; k++) same &= res[1][i].logits[k] == NULL; /* reduced */
                run_free(&res[0][i]);
                run_free(&res[1][i]);
            }
            if (!same) fprintf(stderr, "   sampler configuration %d differs\n", cfg);
            CHECK(same);
        }
    }
    eng_gen_free(g);
    tm_free(m);
}

static void test_text(void) {
    char err[AWQ_ERR_LEN];
    const char *tp = h_env("AWQ_TOKENIZER");
    eng_tok *tok = NULL;
    if (!tp || eng_tok_load(err, tp, NULL, &tok)) {
        fprintf(stderr, "   (skipping the text cases: no tokenizer at AWQ_TOKENIZER)\n");
        return;
    }
    int V = eng_tok_vocab_size(tok);
    eng_model *m = tm_create(32, 64, 1, 2, 1, 16, V, 32, 0, 1, 4242);
    eng_backend_opts o = {.threads = 2, .max_ctx = 128, .max_seqs = 1};
    eng_gen *g = eng_gen_create(err, m, tok, &eng_cpu_backend, &o);
    int32_t *prompt = NULL;
    size_t np = 0;
    CHECK_EQ(eng_tok_encode(err, tok, "Hello there", 11, true, &prompt, &np), 0);

    CASE("gen-2.1", "streamed text equals the decode of the generated ids");
    eng_samp_params p;
    eng_samp_params_default(&p, NULL);
    p.has_seed = true;
    p.seed = 11;
    p.max_tokens = 30;
    p.ignore_eos = true;
    int32_t ids[64];
    int n = 0, bad = 0;
    eng_gen_finish fin;
    char *full = gen_text(g, &p, prompt, np, ids, &n, &fin, &bad);
    CHECK_EQ(n, 30);
    CHECK_EQ(fin, ENG_GEN_LENGTH);
    CHECK_EQ(bad, 0);
    char *dec = NULL;
    size_t dl = 0;
    CHECK_EQ(eng_tok_decode(err, tok, ids, (size_t)n, true, &dec, &dl), 0);
    CHECK_STR(full, dec);

    CASE("gen-2.2", "a stop string spanning a token boundary ends generation and is never emitted");
    {
        /* find a boundary after token k with text on both sides; stop = 2 bytes before + 2 after */
        char stop[16] = "";
        size_t at = 0;
        for (int k = 3; k < n - 2 && !stop[0]; k++) {
            char *pre = NULL;
            size_t pl = 0;
            if (eng_tok_decode(err, tok, ids, (size_t)k, true, &pre, &pl)) break;
            if (pl >= 2 && pl + 2 <= strlen(full) && !memcmp(pre, full, pl)) {
                size_t b = pl - 2, e = pl + 2;
                if (awq_utf8_valid(full + b, e - b) && (unsigned char)full[b] < 0x80) {
                    memcpy(stop, full + b, e - b);
                    stop[e - b] = 0;
                    at = strstr(full, stop) - full;
                }
            }
            free(pre);
        }
        CHECK(stop[0] != 0);
        fprintf(stderr, "   stop string \"%s\" first at byte %zu of \"%s\"\n", stop, at, full);
        const char *stops[] = {stop, "never-appears-xyz"};
        p.stop = stops;
        p.n_stop = 2;
        int n2 = 0;
        char *cut = gen_text(g, &p, prompt, np, ids, &n2, &fin, &bad);
        CHECK_EQ(fin, ENG_GEN_STOP);
        CHECK_EQ(strlen(cut), at);
        CHECK(!strncmp(cut, full, at));
        CHECK(strstr(cut, stop) == NULL);
        CHECK_EQ(bad, 0);
        free(cut);
    }
    free(full);
    free(dec);
    free(prompt);
    eng_gen_free(g);
    tm_free(m);
    eng_tok_free(tok);
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) n = 0;
    if (b) b[n] = 0;
    fclose(f);
    return b;
}

/* One reference case: regenerate the checkpoint, run our greedy forward, compare. */
static void ref_case(const char *bin, const char *tokp, const char *tmp, const cJSON *c, const cJSON *ref, int steps) {
    char err[AWQ_ERR_LEN], cmd[4096], dir[1024];
    const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
    snprintf(dir, sizeof dir, "%s/%s", tmp, name);
    int k = snprintf(cmd, sizeof cmd, "'%s/awq-mkmodel' -o '%s' --tokenizer '%s'", bin, dir, tokp);
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItem(c, "args")) k += snprintf(cmd + k, sizeof cmd - (size_t)k, " %s", a->valuestring);
    snprintf(cmd + k, sizeof cmd - (size_t)k, " >/dev/null 2>&1");
    CHECK_EQ(system(cmd), 0);
    eng_model *m = NULL;
    if (eng_model_load(err, dir, &m)) {
        fprintf(stderr, "   %s: %s\n", name, err);
        CHECK(0);
        return;
    }
    const cJSON *pj = cJSON_GetObjectItem(c, "prompt");
    int np = cJSON_GetArraySize(pj);
    int32_t prompt[256];
    for (int i = 0; i < np && i < 256; i++) prompt[i] = cJSON_GetArrayItem(pj, i)->valueint;
    eng_backend_opts o = {.threads = 2, .max_ctx = np + steps + 1, .max_seqs = 1};
    eng_gen *g = eng_gen_create(err, m, NULL, &eng_cpu_backend, &o);
    if (g) eng_gen_keep_logits(g, true); /* compares the logits */
    eng_gen_seq *s = NULL;
    eng_samp_params p = greedy(steps);
    CHECK(g && !eng_gen_seq_create(err, g, &p, &s) && !eng_gen_seq_prompt(err, s, prompt, (size_t)np, NULL));
    run r = {0};
    if (s) CHECK_EQ(drive(g, &s, 1, &r, m->cfg.vocab), 0);
    /* first step: the reference top-10 logits */
    const cJSON *top = cJSON_GetObjectItem(ref, "top10");
    double scale = 1, worst = 0;
    cJSON_ArrayForEach(a, top) scale = fmax(scale, fabs(cJSON_GetArrayItem(a, 1)->valuedouble));
    cJSON_ArrayForEach(a, top) {
        int id = cJSON_GetArrayItem(a, 0)->valueint;
        if (r.n > 0) worst = fmax(worst, fabs(r.logits[0][id] - cJSON_GetArrayItem(a, 1)->valuedouble));
    }
    CHECK(r.n > 0 && worst <= 2e-3 * scale);
    /* greedy ids up to the first step whose reference margin is too small to call */
    const cJSON *ids = cJSON_GetObjectItem(ref, "ids"), *mg = cJSON_GetObjectItem(ref, "margins");
    int same = 0, upto = 0;
    for (; upto < steps && upto < r.n; upto++) {
        if (cJSON_GetArrayItem(mg, upto)->valuedouble < 2e-4 * scale) break; /* ours is within ~1e-5 of it */
        if (cJSON_GetArrayItem(ids, upto)->valueint != r.ids[upto]) break;
        same++;
    }
    fprintf(stderr, "   %s: top-10 worst |ours - transformers| %.3g (scale %.3g); greedy ids agree for %d of %d steps%s\n",
            name, worst, scale, same, steps, upto < steps && same == upto ? " (then a near tie)" : "");
    CHECK_EQ(same, upto);
    CHECK(same >= 1);
    run_free(&r);
    eng_gen_seq_free(s);
    eng_gen_free(g);
    eng_model_free(m);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_EQ(system(cmd), 0);
}

static void test_reference(void) {
    CASE("gen-3.1", "our forward vs transformers (fp32, eager) on the awq-mkmodel reference cases");
    const char *src = h_env("AWQ_SRC"), *bin = h_env("AWQ_BIN"), *tokp = h_env("AWQ_TOKENIZER");
    char path[2048];
    if (!src || !bin || !tokp) {
        fprintf(stderr, "   SKIP part: AWQ_SRC / AWQ_BIN / AWQ_TOKENIZER not set\n");
        return;
    }
    snprintf(path, sizeof path, "%s/tests/reference/logits_ref.json", src);
    char *rj = slurp(path);
    snprintf(path, sizeof path, "%s/tests/reference/cases.json", src);
    char *cj = slurp(path);
    snprintf(path, sizeof path, "%s/awq-mkmodel", bin);
    if (!rj || !cj || access(path, X_OK) != 0 || access(tokp, R_OK) != 0) {
        fprintf(stderr, "   SKIP part: needs tests/reference/logits_ref.json (made on the GPU machine by "
                        "mkcases.sh + logits_ref.py), awq-mkmodel and the tokenizer\n");
        free(rj);
        free(cj);
        return;
    }
    cJSON *R = cJSON_Parse(rj), *C = cJSON_Parse(cj);
    CHECK(R && C);
    char tmp[] = "/tmp/awq-ref-XXXXXX";
    CHECK(mkdtemp(tmp) != NULL);
    int steps = cJSON_GetObjectItem(C, "steps")->valueint;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(C, "cases")) {
        const cJSON *ref = cJSON_GetObjectItem(cJSON_GetObjectItem(R, "cases"), cJSON_GetObjectItem(c, "name")->valuestring);
        if (!ref) {
            fprintf(stderr, "   %s: not in logits_ref.json\n", cJSON_GetObjectItem(c, "name")->valuestring);
            CHECK(0);
            continue;
        }
        ref_case(bin, tokp, tmp, c, ref, steps);
    }
    rmdir(tmp);
    cJSON_Delete(R);
    cJSON_Delete(C);
    free(rj);
    free(cj);
}

int main(void) {
    test_numeric();
    test_parallel_sampling();
    test_text();
    test_reference();
    return h_finish();
}
