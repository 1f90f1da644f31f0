/* gen.c - `awq run` and `awq generate`: one generation streamed from the daemon, the receive
 * loop shared with the chat (cli_stream), and the sampling flags.
 *
 * prompt_ids in `generate --json`: the protocol's done message carries no prompt ids, so they
 * are computed the way the daemon (and awq-run generate) builds the prompt: the chat messages
 * rendered by the model's template with the generation prompt (awq_template) and tokenized
 * without adding BOS (the template writes it), or, with --raw, the text tokenized with BOS.
 * Both tokenize with special-token parsing on, as Hugging Face's tokenizer(text) does.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "plat.h"

/* ------------------------------------------------------------ results ---- */

void cli_result_free(cli_result *r) {
    awq_buf_free(&r->text);
    awq_buf_free(&r->logprobs);
    free(r->ids);
    memset(r, 0, sizeof *r);
}

static int add_ids(cli_result *r, const uint32_t *ids, size_t n) {
    if (r->n_ids + n > r->cap_ids) {
        size_t cap = r->cap_ids ? r->cap_ids * 2 : 256;
        while (cap < r->n_ids + n) cap *= 2;
        uint32_t *p = realloc(r->ids, cap * sizeof *p);
        if (!p) return AWQ_ENOMEM;
        r->ids = p;
        r->cap_ids = cap;
    }
    memcpy(r->ids + r->n_ids, ids, n * sizeof *ids);
    r->n_ids += n;
    return 0;
}

/* Append the logprobs of one token event as JSON objects. */
static int add_logprobs(cli_result *r, const awq_event *ev) {
    int e = 0;
    for (size_t i = 0; i < ev->n_logprobs && !e; i++) {
        const awq_logprob *lp = &ev->logprobs[i];
        e = awq_buf_printf(&r->logprobs, "%s{\"id\":%u,\"lp\":%.6g,\"top\":[", r->logprobs.len ? "," : "", lp->id,
                           (double)lp->lp);
        for (uint32_t k = 0; k < lp->n_top && !e; k++)
            e = awq_buf_printf(&r->logprobs, "%s{\"id\":%u,\"lp\":%.6g}", k ? "," : "", lp->top[k].id,
                               (double)lp->top[k].lp);
        if (!e) e = awq_buf_puts(&r->logprobs, "]}");
    }
    return e;
}

/* ------------------------------------------------------------ the receive loop ---- */

/* How often the loop wakes to look at the Ctrl-C flag. */
#define POLL_MS 100

int cli_stream(awq_conn *c, const awq_gen_req *req, bool echo, int gap_ms, cli_result *res) {
    char err[AWQ_ERR_LEN] = "";
    uint32_t id;
    int rc = awq_generate(err, c, req, NULL, NULL, &id);
    if (rc) return cli_fail(rc, err);
    bool cancel_sent = false;
    uint64_t last = plat_now_ns();
    for (;;) {
        if (cli_interrupted && !cancel_sent) {
            cli_interrupted = 0;
            cancel_sent = true;
            rc = awq_cancel(err, c, id);
            /* not found: it ended on its own meanwhile; its done event is still on the way */
            if (rc && rc != AWQ_ENOTFOUND) return cli_fail(rc, err);
        }
        awq_event ev;
        rc = awq_next_event(err, c, POLL_MS, &ev);
        if (rc == AWQ_ETIMEDOUT) {
            if (gap_ms > 0 && plat_now_ns() - last > (uint64_t)gap_ms * 1000000u)
                return cli_fail(AWQ_ETIMEDOUT, "no answer from the server within --timeout");
            continue;
        }
        if (rc) return cli_fail(rc, err);
        last = plat_now_ns();
        if (ev.id != id) { /* an event of another request: none are running on this connection */
            awq_event_free(&ev);
            continue;
        }
        int e = 0, out = -1;
        switch (ev.type) {
        case AWQ_EV_TOKEN:
            e = awq_buf_append(&res->text, ev.text, ev.text_len);
            if (!e) e = add_ids(res, ev.ids, ev.n_ids);
            if (!e && ev.n_logprobs) e = add_logprobs(res, &ev);
            if (echo && ev.text_len) {
                fwrite(ev.text, 1, ev.text_len, stdout);
                fflush(stdout);
            }
            break;
        case AWQ_EV_DONE:
            snprintf(res->finish, sizeof res->finish, "%s", ev.finish_reason ? ev.finish_reason : "");
            res->stats = ev.stats;
            res->cancelled = cancel_sent || !strcmp(res->finish, "cancel");
            out = res->cancelled ? CLI_EXIT_CANCEL : CLI_EXIT_OK;
            break;
        case AWQ_EV_ERROR:
            if (echo && res->text.len) fputc('\n', stdout);
            snprintf(err, sizeof err, "%s", ev.message ? ev.message : "");
            fprintf(stderr, "awq: %s: %s\n", ev.err_name ? ev.err_name : awq_errname(ev.code),
                    err[0] ? err : awq_strerror(ev.code));
            out = cancel_sent && ev.code == AWQ_ECANCELED ? CLI_EXIT_CANCEL : CLI_EXIT_FAILED;
            break;
        default: /* progress or another message type: not part of a generation */
            break;
        }
        awq_event_free(&ev);
        if (e) return cli_fail(AWQ_ENOMEM, "out of memory");
        if (out >= 0) return out;
    }
}

/* ------------------------------------------------------------ sampling flags ---- */

void cli_sampling_apply(const cli_sampling *s, awq_gen_req *req) {
    req->max_tokens = s->max_tokens;
    if (s->has_temperature) req->temperature = s->temperature;
    if (s->has_top_k) req->top_k = s->top_k;
    if (s->has_top_p) req->top_p = s->top_p;
    if (s->has_min_p) req->min_p = s->min_p;
    if (s->has_typical_p) req->typical_p = s->typical_p;
    if (s->has_repeat) req->repetition_penalty = s->repeat_penalty;
    if (s->has_presence) req->presence_penalty = s->presence_penalty;
    if (s->has_frequency) req->frequency_penalty = s->frequency_penalty;
    req->has_seed = s->has_seed;
    req->seed = s->seed;
    req->stop = s->stop.n ? s->stop.v : NULL;
    req->n_stop = s->stop.n;
    req->logprobs = s->logprobs;
    req->ignore_eos = s->ignore_eos;
}

typedef struct gen_args {
    cli_sampling s;
    const char *system;
    bool raw, verbose;
} gen_args;

#define N_GEN_FLAGS 18
static void gen_flags(gen_args *a, cli_flag f[N_GEN_FLAGS]) {
    cli_sampling *s = &a->s;
    const cli_flag t[N_GEN_FLAGS] = {
        {"--max-tokens", "-n", CLI_F_U32, &s->max_tokens, NULL, 0, 1 << 20},
        {"--temperature", NULL, CLI_F_FLOAT, &s->temperature, &s->has_temperature, 0, 100},
        {"--top-k", NULL, CLI_F_U32, &s->top_k, &s->has_top_k, 0, 1e9},
        {"--top-p", NULL, CLI_F_FLOAT, &s->top_p, &s->has_top_p, 0, 1},
        {"--min-p", NULL, CLI_F_FLOAT, &s->min_p, &s->has_min_p, 0, 1},
        {"--typical-p", NULL, CLI_F_FLOAT, &s->typical_p, &s->has_typical_p, 0, 1},
        {"--repeat-penalty", NULL, CLI_F_FLOAT, &s->repeat_penalty, &s->has_repeat, 0, 100},
        {"--presence-penalty", NULL, CLI_F_FLOAT, &s->presence_penalty, &s->has_presence, -100, 100},
        {"--frequency-penalty", NULL, CLI_F_FLOAT, &s->frequency_penalty, &s->has_frequency, -100, 100},
        {"--seed", NULL, CLI_F_U64, &s->seed, &s->has_seed, 0, 0},
        {"--stop", NULL, CLI_F_LIST, &s->stop, NULL, 0, 0},
        {"--logprobs", NULL, CLI_F_U32, &s->logprobs, NULL, 0, 20},
        {"--ignore-eos", NULL, CLI_F_BOOL, &s->ignore_eos, NULL, 0, 0},
        {"--system", NULL, CLI_F_STR, &a->system, NULL, 0, 0},
        {"--raw", NULL, CLI_F_BOOL, &a->raw, NULL, 0, 0},
        {"--verbose", "-v", CLI_F_BOOL, &a->verbose, NULL, 0, 0},
        /* spelled as Hugging Face and the protocol spell them */
        {"--repetition-penalty", NULL, CLI_F_FLOAT, &s->repeat_penalty, &s->has_repeat, 0, 100},
        {"--max-new-tokens", NULL, CLI_F_U32, &s->max_tokens, NULL, 0, 1 << 20},
    };
    memcpy(f, t, sizeof t);
}

#define GEN_FLAGS_HELP                                                                                        \
    "  --system TEXT            a system message before the user's (chat only)\n"                              \
    "  --raw                    send the text as is: no chat template, BOS added\n"                            \
    "  -n, --max-tokens N       tokens to generate at most (0: the daemon's default)\n"                         \
    "  --temperature T          0 is greedy (default: the model's generation_config.json, else\n"            \
    "                           the daemon's [generation] settings; so do the others)\n"                      \
    "  --top-k K  --top-p P  --min-p P  --typical-p P\n"                                                       \
    "  --repeat-penalty R  --presence-penalty P  --frequency-penalty P\n"                                      \
    "  --seed S                 fixed sampling seed (reproducible output)\n"                                   \
    "  --stop STR               stop when STR is generated (repeatable, up to 16)\n"                           \
    "  --logprobs N             the N most likely tokens per step (0..20; in --json output)\n"                 \
    "  --ignore-eos             keep going after the end-of-sequence token\n"                                  \
    "  -v, --verbose            print token counts and speed to stderr at the end\n"                           \
    "  --json                   print one JSON object at the end instead of streaming\n"

static const cli_cmd_info run_info = {
    "run",
    "usage: awq [GLOBAL OPTIONS] run [OPTIONS] [PROMPT...]\n"
    "  Ask the loaded model one question and stream the answer to stdout. The words of PROMPT\n"
    "  are joined with spaces; without PROMPT the question is read from stdin, or, when stdin\n"
    "  is a terminal, an interactive chat starts (/help inside lists its commands).\n"
    "  Ctrl-C stops the answer (exit 4; in the chat, only the current answer).\n"
    "options:\n" GEN_FLAGS_HELP,
};

static const cli_cmd_info generate_info = {
    "generate",
    "usage: awq [GLOBAL OPTIONS] generate [OPTIONS] [--] [TEXT]\n"
    "  The flags of `awq-run generate`, through the daemon. TEXT is one user message rendered by\n"
    "  the model's chat template (--raw: tokenized as is, BOS added); without TEXT it is read\n"
    "  from stdin. With --json one object is printed at the end:\n"
    "  {\"prompt_ids\":[...],\"ids\":[...],\"text\":\"...\",\"finish_reason\":\"...\",\n"
    "   \"timings\":{...},\"usage\":{...}[,\"logprobs\":[...]]}\n"
    "  (prompt_ids come from the daemon's template + tokenize, as it builds the prompt).\n"
    "options:\n" GEN_FLAGS_HELP,
};

/* ------------------------------------------------------------ run / generate ---- */

/* The prompt ids the daemon builds for this request (see the top of this file). */
static int prompt_ids(char *err, awq_conn *c, const awq_gen_req *req, uint32_t **ids, size_t *n) {
    if (req->raw) return awq_tokenize(err, c, req->prompt, strlen(req->prompt), true, true, ids, n);
    char *text = NULL;
    int rc = awq_template(err, c, req->messages, req->n_messages, true, &text);
    if (!rc) rc = awq_tokenize(err, c, text, strlen(text), false, true, ids, n);
    awq_free(text);
    return rc;
}

static int print_json(const cli_result *r, const uint32_t *pids, size_t n_pids, bool logprobs) {
    awq_buf b = {0};
    const awq_stats *st = &r->stats;
    double decode_ms = st->total_ms > st->ttft_ms ? (double)(st->total_ms - st->ttft_ms) : 0.0;
    int e = awq_buf_puts(&b, "{\"prompt_ids\":");
    if (!e) e = cli_json_ids(&b, pids, n_pids);
    if (!e) e = awq_buf_puts(&b, ",\"ids\":");
    if (!e) e = cli_json_ids(&b, r->ids, r->n_ids);
    if (!e) e = awq_buf_puts(&b, ",\"text\":");
    if (!e) e = awq_buf_json_str(&b, r->text.data ? r->text.data : "", r->text.len);
    if (!e)
        e = awq_buf_printf(&b,
                           ",\"finish_reason\":\"%s\",\"timings\":{\"prompt_ms\":%.3f,\"prefill_tok_s\":%.2f,"
                           "\"decode_ms\":%.3f,\"decode_tok_s\":%.2f,\"ttft_ms\":%.3f,\"total_ms\":%.3f},"
                           "\"usage\":{\"prompt_tokens\":%u,\"gen_tokens\":%u}",
                           r->finish, (double)st->ttft_ms, (double)st->prefill_tok_s, decode_ms,
                           (double)st->decode_tok_s, (double)st->ttft_ms, (double)st->total_ms, st->prompt_tokens,
                           st->gen_tokens);
    if (!e && logprobs) {
        e = awq_buf_puts(&b, ",\"logprobs\":[");
        if (!e && r->logprobs.len) e = awq_buf_append(&b, r->logprobs.data, r->logprobs.len);
        if (!e) e = awq_buf_puts(&b, "]");
    }
    if (!e) e = awq_buf_puts(&b, "}\n");
    return cli_emit(&b, e);
}

/* Drop trailing line ends: `echo question | awq run` should not ask "question\n". */
static void chomp(char *s, size_t *len) {
    while (*len && (s[*len - 1] == '\n' || s[*len - 1] == '\r')) s[--*len] = 0;
}

/* run (is_run) or generate: parse, build the request, stream, report. */
static int gen_main(cli_opts *g, int argc, char **argv, bool is_run) {
    const cli_cmd_info *info = is_run ? &run_info : &generate_info;
    gen_args a;
    memset(&a, 0, sizeof a);
    cli_flag flags[N_GEN_FLAGS];
    gen_flags(&a, flags);
    int n_pos, rc = cli_parse(info, g, argc, argv, flags, N_GEN_FLAGS, &n_pos);
    if (rc) return rc < 0 ? CLI_EXIT_OK : rc;
    if (!is_run && n_pos > 1)
        return cli_usage_err(info, "expected one TEXT, got %d arguments (quote the text, or use --)", n_pos);
    if (a.raw && a.system) return cli_usage_err(info, "--system needs the chat template: it cannot go with --raw");

    awq_buf prompt = {0};
    char *input = NULL;
    bool chat = false;
    if (n_pos > 0) {
        int e = 0;
        for (int i = 0; i < n_pos && !e; i++) {
            if (i) e = awq_buf_puts(&prompt, " ");
            if (!e) e = awq_buf_puts(&prompt, argv[1 + i]);
        }
        if (e) return cli_fail(AWQ_ENOMEM, "out of memory");
    } else if (is_run && cli_isatty(stdin)) {
        chat = true;
        if (g->json) return cli_usage_err(info, "--json needs a PROMPT (the interactive chat has no JSON output)");
        if (a.raw) return cli_usage_err(info, "--raw needs a PROMPT (the interactive chat uses the chat template)");
    } else {
        char err[AWQ_ERR_LEN];
        size_t len;
        if ((rc = cli_read_all(err, stdin, "stdin", &input, &len))) return cli_fail(rc, err);
        chomp(input, &len);
        if (awq_buf_append(&prompt, input, len)) {
            free(input);
            return cli_fail(AWQ_ENOMEM, "out of memory");
        }
        free(input);
    }
    if (!chat && (!prompt.data || !prompt.len)) {
        awq_buf_free(&prompt);
        return cli_usage_err(info, "the prompt is empty");
    }

    awq_conn *c = NULL;
    if ((rc = cli_connect(g, 0, &c))) {
        awq_buf_free(&prompt);
        return rc;
    }
    cli_sigint_install();
    if (chat) {
        rc = cli_chat(g, c, &a.s, a.system);
        awq_close(c);
        return rc;
    }

    awq_gen_req req;
    awq_gen_req_init(&req);
    cli_sampling_apply(&a.s, &req);
    awq_message msgs[2];
    size_t nm = 0;
    if (a.raw) {
        req.prompt = prompt.data;
        req.raw = true;
        req.add_bos = 1; /* as awq-run generate --raw: Hugging Face tokenizer(TEXT) */
    } else {
        if (a.system) msgs[nm++] = (awq_message){"system", a.system};
        msgs[nm++] = (awq_message){"user", prompt.data};
        req.messages = msgs;
        req.n_messages = nm;
    }
    uint32_t *pids = NULL;
    size_t n_pids = 0;
    if (g->json) {
        char err[AWQ_ERR_LEN] = "";
        if ((rc = prompt_ids(err, c, &req, &pids, &n_pids))) {
            rc = cli_fail(rc, err);
            goto out;
        }
    }
    cli_result res;
    memset(&res, 0, sizeof res);
    rc = cli_stream(c, &req, !g->json, g->timeout_ms, &res);
    if (!g->json && (rc == CLI_EXIT_OK || rc == CLI_EXIT_CANCEL)) fputc('\n', stdout);
    if (rc == CLI_EXIT_CANCEL) fprintf(stderr, "awq: cancelled\n");
    if (rc == CLI_EXIT_OK && g->json) rc = print_json(&res, pids, n_pids, a.s.logprobs > 0);
    if ((rc == CLI_EXIT_OK || rc == CLI_EXIT_CANCEL) && a.verbose)
        fprintf(stderr, "[%s: %u prompt + %u generated tokens; first token after %.1f ms; %.1f tok/s prefill, %.1f tok/s decode]\n",
                res.finish, res.stats.prompt_tokens, res.stats.gen_tokens, (double)res.stats.ttft_ms,
                (double)res.stats.prefill_tok_s, (double)res.stats.decode_tok_s);
    cli_result_free(&res);
out:
    awq_free(pids);
    awq_buf_free(&prompt);
    awq_close(c);
    return rc;
}

int cli_cmd_run(cli_opts *g, int argc, char **argv) { return gen_main(g, argc, argv, true); }

int cli_cmd_generate(cli_opts *g, int argc, char **argv) { return gen_main(g, argc, argv, false); }
