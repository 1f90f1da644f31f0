/* test_daemon_unit.c - the daemon's pieces without a running daemon: the roots check
 * (separator boundary, "..", symlinks out of a root, missing dirs, no config.json, no roots),
 * the model listing, the staged open with its progress order and error messages, the
 * Prometheus rendering, the logger's levels and its prompt privacy, and command-line overrides
 * of the settings. */
#define _GNU_SOURCE /* mkdtemp, symlink */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "awqd.h"
#include "harness.h"
#include "log.h"
#include "metrics.h"
#include "models.h"

static char dir[128];

static void mk(const char *rel, bool with_config) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    if (mkdir(p, 0700) && errno != EEXIST) {
        perror(p);
        exit(1);
    }
    if (with_config) {
        char f[600];
        snprintf(f, sizeof f, "%s/config.json", p);
        FILE *fp = fopen(f, "w");
        if (!fp) exit(1);
        fputs("{}\n", fp);
        fclose(fp);
    }
}

static void test_roots(void) {
    char err[AWQ_ERR_LEN], out[PLAT_PATH_MAX], want[600];
    cfg_paths *roots = calloc(1, sizeof *roots);
    mk("models", false);
    mk("models/a", true);
    mk("models/noconf", false);
    mk("models-evil", true);
    mk("outside", true);
    char p1[300], p2[300];
    snprintf(p1, sizeof p1, "%s/models/link", dir);
    snprintf(p2, sizeof p2, "%s/outside", dir);
    if (symlink(p2, p1)) exit(1);
    roots->n = 1;
    snprintf(roots->item[0], sizeof roots->item[0], "%s/models", dir);

    CASE("dunit-1.1", "path_under needs a separator boundary");
    CHECK(awqd_path_under("/m/a", "/m"));
    CHECK(awqd_path_under("/m", "/m"));
    CHECK(awqd_path_under("/m/a", "/m/"));
    CHECK(!awqd_path_under("/m-evil/a", "/m"));
    CHECK(!awqd_path_under("/mx", "/m"));
    CHECK(awqd_path_under("/anything", "/"));

    CASE("dunit-1.2", "relative and absolute paths under a root resolve to the canonical dir");
    snprintf(want, sizeof want, "%s/models/a", dir);
    CHECK_EQ(awqd_model_resolve(err, roots, "", "a", out), 0);
    CHECK_STR(out, want);
    CHECK_EQ(awqd_model_resolve(err, roots, "", want, out), 0);
    CHECK_STR(out, want);
    CHECK_EQ(awqd_model_resolve(err, roots, "", "a/../a", out), 0);

    CASE("dunit-1.3", "escapes are refused with AWQ_EPERM: .., a prefix sibling, a symlink out, /etc");
    CHECK_EQ(awqd_model_resolve(err, roots, "", "../../etc", out), AWQ_EPERM);
    CHECK_CONTAINS(err, "outside the model roots");
    CHECK_EQ(awqd_model_resolve(err, roots, "", "../models-evil", out), AWQ_EPERM);
    snprintf(p2, sizeof p2, "%s/models-evil", dir);
    CHECK_EQ(awqd_model_resolve(err, roots, "", p2, out), AWQ_EPERM);
    CHECK_EQ(awqd_model_resolve(err, roots, "", "link", out), AWQ_EPERM);
    CHECK_EQ(awqd_model_resolve(err, roots, "", "/etc", out), AWQ_EPERM);
    CHECK_EQ(awqd_model_resolve(err, roots, "", "/nonexistent/x", out), AWQ_EPERM);

    CASE("dunit-1.4", "missing dir under a root, a dir without config.json, an empty path");
    CHECK_EQ(awqd_model_resolve(err, roots, "", "nosuch", out), AWQ_ENOTFOUND);
    CHECK_CONTAINS(err, "no such model directory");
    CHECK_EQ(awqd_model_resolve(err, roots, "", "noconf", out), AWQ_EFORMAT);
    CHECK_CONTAINS(err, "has no config.json");
    CHECK_EQ(awqd_model_resolve(err, roots, "", "", out), AWQ_EINVAL);

    CASE("dunit-1.5", "no roots: only [model] path itself may be loaded");
    cfg_paths *none = calloc(1, sizeof *none);
    snprintf(want, sizeof want, "%s/models/a", dir);
    CHECK_EQ(awqd_model_resolve(err, none, want, want, out), 0);
    CHECK_EQ(awqd_model_resolve(err, none, want, p2, out), AWQ_EPERM);
    CHECK_CONTAINS(err, "no [model] roots are configured");

    CASE("dunit-1.6", "list: dirs with config.json inside the roots, plus [model] path; no symlink escapes");
    awqd_model_list l;
    snprintf(p2, sizeof p2, "%s/outside", dir);
    CHECK_EQ(awqd_model_list_make(err, roots, "", &l), 0);
    CHECK_EQ(l.n, 1);
    CHECK(l.n == 1 && !strcmp(l.e[0].name, "a") && l.e[0].size == 3);
    awqd_model_list_free(&l);
    CHECK_EQ(awqd_model_list_make(err, roots, p2, &l), 0);
    CHECK_EQ(l.n, 2);
    awqd_model_list_free(&l);
    CHECK_EQ(awqd_model_list_make(err, none, "", &l), 0);
    CHECK_EQ(l.n, 0);
    awqd_model_list_free(&l);
    free(none);
    free(roots);
}

static char stages[128];
static void on_stage(void *user, ipc_stage s, float pct) {
    (void)user;
    size_t n = strlen(stages);
    snprintf(stages + n, sizeof stages - n, "%s%s:%.0f", n ? "," : "", ipc_stage_name(s), pct);
}

static void test_open(void) {
    char err[AWQ_ERR_LEN], p[300];
    awqd_open_opts o = {.device = "cpu", .cpu_fallback = true, .threads = 1, .max_ctx = 4096, .max_seqs = 2};
    eng_llm *l = NULL;
    CASE("dunit-2.1", "open of a dir without a checkpoint fails naming it, with no stage reported");
    snprintf(p, sizeof p, "%s/models/noconf", dir);
    stages[0] = 0;
    CHECK(awqd_model_open(err, p, &o, on_stage, NULL, &l) < 0);
    CHECK(l == NULL);
    CHECK_STR(stages, "");
    CHECK_CONTAINS(err, "noconf");
    const char *tok = h_env("AWQ_TOKENIZER"), *bin = h_env("AWQ_BIN");
    if (!tok || !tok[0] || !bin || access(tok, R_OK)) {
        fprintf(stderr, "no tokenizer: the staged open of a real checkpoint is covered by test_daemon_srv\n");
        return;
    }
    CASE("dunit-2.2", "open of a tiny checkpoint: stages in order, context capped at max_position_embeddings");
    char cmd[1500];
    snprintf(cmd, sizeof cmd, "'%s/awq-mkmodel' -o '%s/models/t' --preset tiny --tokenizer '%s' > /dev/null", bin, dir,
             tok);
    CHECK_EQ(system(cmd), 0);
    snprintf(p, sizeof p, "%s/models/t", dir);
    stages[0] = 0;
    CHECK_EQ(awqd_model_open(err, p, &o, on_stage, NULL, &l), 0);
    CHECK_STR(stages, "mapped:40,validated:50,uploaded:95");
    if (l) {
        CHECK_EQ(l->max_ctx, 2048);
        CHECK_STR(eng_gen_backend_name(l->gen), "cpu");
    }
    eng_llm_free(l);
    CASE("dunit-2.3", "an unknown device is refused by name");
    o.device = "tpu";
    CHECK_EQ(awqd_model_open(err, p, &o, NULL, NULL, &l), AWQ_EINVAL);
    CHECK_CONTAINS(err, "device 'tpu'");
}

static void test_metrics(void) {
    CASE("dunit-3.1", "histograms are cumulative, +Inf holds everything, sums in seconds");
    awqd_metrics m;
    awqd_metrics_init(&m);
    awqd_hist_observe(&m.ttft, 3000000);       /* 3 ms: first bucket (5 ms) */
    awqd_hist_observe(&m.ttft, 700000000);     /* 0.7 s: the 1 s bucket */
    awqd_hist_observe(&m.ttft, 500000000000ull); /* 500 s: only +Inf */
    awqd_metrics_count_request(&m, IPC_T_GENERATE);
    awqd_metrics_count_request(&m, IPC_T_GENERATE);
    awqd_metrics_count_request(&m, IPC_T_COUNT); /* out of range: ignored */
    awqd_metric_add(&m.tokens_generated, 42);
    awqd_gauges g = {.queue_depth = 3, .running = 2, .kv_used = 2, .kv_cached = 1, .kv_total = 64, .connections = 5};
    awq_buf b = {0};
    CHECK_EQ(awqd_metrics_render(&m, &g, &b), 0);
    const char *t = b.data ? b.data : "";
    CHECK_CONTAINS(t, "awqd_ttft_seconds_bucket{le=\"0.005\"} 1\n");
    CHECK_CONTAINS(t, "awqd_ttft_seconds_bucket{le=\"0.5\"} 1\n");
    CHECK_CONTAINS(t, "awqd_ttft_seconds_bucket{le=\"1\"} 2\n");
    CHECK_CONTAINS(t, "awqd_ttft_seconds_bucket{le=\"120\"} 2\n");
    CHECK_CONTAINS(t, "awqd_ttft_seconds_bucket{le=\"+Inf\"} 3\n");
    CHECK_CONTAINS(t, "awqd_ttft_seconds_count 3\n");
    CHECK_CONTAINS(t, "awqd_ttft_seconds_sum 500.703");
    CHECK_CONTAINS(t, "awqd_requests_total{type=\"generate\"} 2\n");
    CHECK_CONTAINS(t, "awqd_requests_total{type=\"status\"} 0\n");
    CHECK(!strstr(t, "type=\"hello\"") && !strstr(t, "type=\"token\""));
    CHECK_CONTAINS(t, "awqd_tokens_generated_total 42\n");
    CHECK_CONTAINS(t, "awqd_queue_depth 3\n");
    CHECK_CONTAINS(t, "awqd_kv_slots_total 64\n");
    CHECK_CONTAINS(t, "awqd_connections 5\n");
    CHECK_CONTAINS(t, "# TYPE awqd_token_seconds histogram\n");
    awq_buf_free(&b);
}

static void test_log(void) {
    char err[AWQ_ERR_LEN], p[300];
    snprintf(p, sizeof p, "%s/awqd.log", dir);
    CASE("dunit-4.1", "levels filter; prompts are not logged unless log_prompts; control bytes escaped");
    CHECK_EQ(awqd_log_open(err, p, AWQD_LOG_INFO, false), 0);
    awqd_info("hello %d", 1);
    awqd_debug("hidden debug");
    awqd_log_text("prompt", "my secret", 9);
    awqd_log_set_prompts(true);
    awqd_log_text("prompt", "line1\nINFO forged\x01", 18);
    awqd_log_set_level(AWQD_LOG_ERROR);
    awqd_warn("hidden warning");
    awqd_log_close();
    FILE *f = fopen(p, "r");
    char buf[4096] = "";
    size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
    if (f) fclose(f);
    buf[n] = 0;
    CHECK_CONTAINS(buf, " INFO hello 1\n");
    CHECK(!strstr(buf, "hidden"));
    CHECK(!strstr(buf, "my secret"));
    CHECK_CONTAINS(buf, "prompt: line1\\nINFO forged\\x01\n");
    struct stat st;
    CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0600);
    CASE("dunit-4.2", "an unwritable log file is an error naming it");
    CHECK_EQ(awqd_log_open(err, "/nonexistent-dir/x.log", AWQD_LOG_INFO, false), AWQ_EIO);
    CHECK_CONTAINS(err, "/nonexistent-dir/x.log");
}

static void test_overrides(void) {
    char err[AWQ_ERR_LEN];
    cfg *c = malloc(sizeof *c);
    cfg_defaults(c);
    CASE("dunit-5.1", "command-line overrides land in the effective settings; bad ones are refused");
    awqd_overrides ov = {.socket = "/tmp/x/awqd.sock", .model = "/m/a", .device = "cpu", .threads = 3, .ctx = 512,
                         .log_level = AWQD_LOG_DEBUG};
    CHECK_EQ(awqd_apply_overrides(err, c, &ov), 0);
    CHECK_STR(c->server.socket, "/tmp/x/awqd.sock");
    CHECK_STR(c->model.path, "/m/a");
    CHECK_EQ(c->model.device, CFG_DEVICE_CPU);
    CHECK_EQ(c->model.threads, 3);
    CHECK_EQ(c->model.context, 512);
    CHECK_EQ(c->log.level, CFG_LOG_DEBUG);
    awqd_overrides bad = {.ctx = 5, .log_level = -1};
    CHECK(awqd_apply_overrides(err, c, &bad) < 0);
    CHECK_CONTAINS(err, "context");
    awqd_overrides rel = {.model = "relative/dir", .log_level = -1};
    CHECK(awqd_apply_overrides(err, c, &rel) < 0);
    free(c);
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/awqd-unit.XXXXXX");
    if (!mkdtemp(dir)) return 1;
    test_roots();
    test_open();
    test_metrics();
    test_log();
    test_overrides();
    if (!h_fail) {
        char cmd[200];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd)) fprintf(stderr, "cannot remove %s\n", dir);
    }
    return h_finish();
}
