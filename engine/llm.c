/* llm.c - model directory -> checkpoint + tokenizer + template + backend + generator. */
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "llm.h"
#include "plat.h"

int eng_llm_check_vocab(char *err, int config_vocab, int tokenizer_vocab) {
    if (config_vocab < tokenizer_vocab)
        return awq_seterr(err, AWQ_EFORMAT,
                          "config.json vocab_size %d is smaller than the tokenizer's %d tokens (tokenizer.json)",
                          config_vocab, tokenizer_vocab);
    return 0;
}

#ifdef AWQ_HAVE_CUDA
/* Two short generations at load (prompts of 24 and 320 tokens, three sampled tokens with a
 * penalty): the GPU's kernels and cuBLAS's load lazily on first use, tens of milliseconds that
 * would otherwise fall on the first request (bench/RESULTS.md). Best effort: a failure here
 * will show on the first request with its own message. */
static void warm_up(eng_llm *l) {
    char e2[AWQ_ERR_LEN];
    static const size_t lens[2] = {24, 320};
    int32_t ids[320];
    for (size_t i = 0; i < 320; i++) ids[i] = (int32_t)((i * 7 + 3) % (size_t)l->model->cfg.vocab);
    for (int k = 0; k < 2; k++) {
        if (lens[k] + 4 > (size_t)l->max_ctx) break;
        eng_samp_params p;
        eng_samp_params_default(&p, NULL);
        p.temperature = 1.0f, p.top_k = 4, p.repetition_penalty = 1.1f, p.max_tokens = 3, p.ignore_eos = true;
        p.has_seed = true;
        eng_gen_seq *s = NULL;
        if (eng_gen_seq_create(e2, l->gen, &p, &s)) return;
        if (!eng_gen_seq_prompt(e2, s, ids, lens[k], NULL))
            for (int step = 0; step < 16 && eng_gen_seq_finish(s) == ENG_GEN_RUNNING; step++)
                if (eng_gen_step(e2, l->gen, &s, 1)) break;
        eng_gen_seq_free(s);
    }
}
#endif

int eng_llm_open_backend(char *err, eng_llm *l, const eng_llm_opts *o) {
    const char *dev = o->device ? o->device : "auto";
    eng_backend_opts bo = {
        .threads = o->threads,
        .max_ctx = l->max_ctx,
        .max_seqs = o->max_seqs > 0 ? o->max_seqs : 1,
        .kv_budget = o->kv_budget,
        .device = o->gpu,
        .fp16_weights = o->fp16_weights,
    };
    bool want_cuda = !strcmp(dev, "cuda"), autod = !strcmp(dev, "auto");
    if (!want_cuda && !autod && strcmp(dev, "cpu"))
        return awq_seterr(err, AWQ_EINVAL, "device '%s': expected cpu, cuda or auto", dev);
#ifdef AWQ_HAVE_CUDA
    if (want_cuda || autod) {
        char e2[AWQ_ERR_LEN] = "";
        l->gen = eng_gen_create(e2, l->model, l->tok, &eng_cuda_backend, &bo);
        if (l->gen) {
            /* the weights live on the GPU now: the upload's pages of the mapping (5.6 GB of
             * resident memory for shisa-7B) go back to the file cache */
            eng_model_release_pages(l->model);
            warm_up(l);
            return 0;
        }
        if (want_cuda || o->no_cpu_fallback) return awq_seterr(err, AWQ_EDEVICE, "%s", e2);
    }
#else
    if (want_cuda) return awq_seterr(err, AWQ_EUNSUPPORTED, "device 'cuda': this build has no CUDA backend");
    if (autod && o->no_cpu_fallback)
        return awq_seterr(err, AWQ_EUNSUPPORTED,
                          "device 'auto' with cpu_fallback = false: this build has no CUDA backend");
#endif
    l->gen = eng_gen_create(err, l->model, l->tok, &eng_cpu_backend, &bo);
    return l->gen ? 0 : AWQ_ENOMEM;
}

int eng_llm_open(char *err, const char *dir, const eng_llm_opts *o, eng_llm **out) {
    char tj[PLAT_PATH_MAX], tc[PLAT_PATH_MAX];
    int rc;
    *out = NULL;
    eng_llm *l = calloc(1, sizeof *l);
    if (!l) return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    if ((rc = eng_model_load(err, dir, &l->model))) goto fail;
    if (plat_path_join(tj, l->model->dir, "tokenizer.json") || plat_path_join(tc, l->model->dir, "tokenizer_config.json")) {
        rc = awq_seterr(err, AWQ_ETOOBIG, "%s: path too long", dir);
        goto fail;
    }
    if (!plat_is_file(tj)) {
        rc = awq_seterr(err, AWQ_ENOTFOUND, "%s: no tokenizer.json", l->model->dir);
        goto fail;
    }
    if ((rc = eng_tok_load(err, tj, plat_is_file(tc) ? tc : NULL, &l->tok))) goto fail;
    if ((rc = eng_llm_check_vocab(err, l->model->cfg.vocab, eng_tok_vocab_size(l->tok)))) goto fail;
    const char *src = eng_tok_chat_template(l->tok);
    if (src) {
        char e2[AWQ_ERR_LEN];
        if ((rc = eng_tmpl_compile(e2, src, strlen(src), &l->tmpl))) {
            awq_seterr(err, rc, "tokenizer_config.json chat_template: %s", e2);
            goto fail;
        }
    }
    int mp = l->model->cfg.max_pos > 0 ? l->model->cfg.max_pos : ENG_LLM_DEFAULT_CTX;
    l->max_ctx = o->max_ctx > 0 ? o->max_ctx : (mp < ENG_LLM_DEFAULT_CTX ? mp : ENG_LLM_DEFAULT_CTX);
    if (l->max_ctx > mp) {
        rc = awq_seterr(err, AWQ_ECONTEXT, "context %d exceeds the model's max_position_embeddings %d", l->max_ctx, mp);
        goto fail;
    }
    if ((rc = eng_llm_open_backend(err, l, o))) goto fail;
    *out = l;
    return 0;
fail:
    eng_llm_free(l);
    return rc;
}

void eng_llm_free(eng_llm *l) {
    if (!l) return;
    eng_gen_free(l->gen);
    eng_tmpl_free(l->tmpl);
    eng_tok_free(l->tok);
    eng_model_free(l->model);
    free(l);
}

int eng_llm_chat_ids(char *err, const eng_llm *l, const eng_msg *msgs, size_t n_msgs, int32_t **ids_p, size_t *n_p) {
    if (!l->tmpl)
        return awq_seterr(err, AWQ_ENOTFOUND, "%s: tokenizer_config.json has no chat_template (use raw text)",
                          l->model->dir);
    char *text = NULL;
    size_t len = 0;
    int rc = eng_tmpl_render(err, l->tmpl, msgs, n_msgs, eng_tok_bos_text(l->tok), eng_tok_eos_text(l->tok), true,
                             &text, &len);
    if (rc) return rc;
    rc = eng_tok_encode(err, l->tok, text, len, false, ids_p, n_p);
    free(text);
    return rc;
}
