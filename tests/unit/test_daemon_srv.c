/* test_daemon_srv.c - the real awqd binary on a temp socket with tiny awq-mkmodel checkpoints,
 * driven through libawq: status/list/load/unload (progress stages, roots check), tokenize /
 * detokenize / template, greedy output equal to `awq-run generate --temperature 0 --json`,
 * batch invariance with many concurrent clients, prompt-cache reuse, cancel mid-stream,
 * metrics, settings_set (atomic file write), SIGHUP reload, SIGTERM drain during streams,
 * the lock against a second daemon, an allow list without our uid, and encryption = required.
 * Under AWQ_SANITIZED the concurrency count drops from 32 to 16. */
#define _GNU_SOURCE /* before any system header */
#include <pthread.h>

#include "test_daemon_util.h"

static td_daemon D; /* the main daemon */

/* ------------------------------------------------------------ basics ---- */

static void progress_cb(void *user, const char *stage, float pct) {
    char *seen = user;
    (void)pct;
    size_t n = strlen(seen);
    snprintf(seen + n, 128 - n, "%s%s", n ? "," : "", stage);
}

static void test_basics(void) {
    char err[AWQ_ERR_LEN];
    awq_conn *c = td_connect(&D);
    CHECK(c != NULL);
    if (!c) return;
    CASE("daemon-1.1", "hello names the loaded model; status reports model, device, slots, limits");
    CHECK_STR(awq_info(c)->model, "tiny");
    awq_map m;
    CHECK_EQ(awq_status(err, c, &m), 0);
    const awq_kv *kv = awq_map_get(&m, "model");
    CHECK(kv && kv->s && !strcmp(kv->s, "tiny"));
    kv = awq_map_get(&m, "device");
    CHECK(kv && kv->s && !strcmp(kv->s, "cpu"));
    kv = awq_map_get(&m, "kv_slots_total");
    CHECK(kv && kv->i == 64);
    kv = awq_map_get(&m, "version");
    CHECK(kv && kv->s && !strcmp(kv->s, "0.1.0"));
    CHECK(awq_map_get(&m, "uptime_s") && awq_map_get(&m, "memory_weights_bytes")->i > 0);
    CHECK(awq_map_get(&m, "limit_queue_depth") && awq_map_get(&m, "limit_queue_depth")->i == 256);
    CHECK(awq_map_get(&m, "connections") && awq_map_get(&m, "connections")->i >= 1);
    awq_map_free(&m);

    CASE("daemon-1.2", "list shows both model dirs under the roots, the loaded one marked");
    awq_models ms;
    CHECK_EQ(awq_list(err, c, &ms), 0);
    CHECK_EQ(ms.n, 2);
    for (size_t i = 0; i < ms.n; i++) {
        CHECK(ms.models[i].size > 1000000);
        CHECK_EQ(ms.models[i].loaded, !strcmp(ms.models[i].name, "tiny"));
    }
    awq_models_free(&ms);

    CASE("daemon-1.3", "unload, then generate is refused with no_model; tokenize too");
    CHECK_EQ(awq_unload(err, c), 0);
    CHECK_EQ(td_status_int(c, "loaded"), 0);
    td_gen g;
    CHECK_EQ(td_generate(c, "hi", 4, false, &g), AWQ_ENOMODEL);
    CHECK_CONTAINS(g.msg, "no model is loaded");
    uint32_t *ids = NULL;
    size_t n = 0;
    CHECK_EQ(awq_tokenize(err, c, "hi", 2, true, false, &ids, &n), AWQ_ENOMODEL);

    CASE("daemon-1.4", "load by a name relative to the roots reports every stage");
    char seen[128] = "";
    CHECK_EQ(awq_load(err, c, "tiny2", progress_cb, seen), 0);
    CHECK_STR(seen, "mapped,validated,uploaded,ready");
    CHECK_EQ(td_status_int(c, "loaded"), 1);
    CHECK_EQ(awq_list(err, c, &ms), 0);
    for (size_t i = 0; i < ms.n; i++) CHECK_EQ(ms.models[i].loaded, !strcmp(ms.models[i].name, "tiny2"));
    awq_models_free(&ms);

    CASE("daemon-1.5", "load outside the roots is refused with permission_denied");
    CHECK_EQ(awq_load(err, c, "../../etc", NULL, NULL), AWQ_EPERM);
    CHECK_CONTAINS(err, "outside the model roots");
    CHECK_EQ(awq_load(err, c, "/etc", NULL, NULL), AWQ_EPERM);
    char evil[400];
    snprintf(evil, sizeof evil, "%s/models-evil", td_dir); /* shares the prefix, not the directory */
    mkdir(evil, 0700);
    CHECK_EQ(awq_load(err, c, evil, NULL, NULL), AWQ_EPERM);
    CHECK_EQ(awq_load(err, c, "nosuch", NULL, NULL), AWQ_ENOTFOUND);
    CHECK_CONTAINS(err, "no such model directory");
    CHECK_EQ(td_status_int(c, "loaded"), 1); /* refusals leave the model alone */

    CASE("daemon-1.6", "tokenize / detokenize round trip, special-token text needs special = true");
    CHECK_EQ(awq_load(err, c, "tiny", NULL, NULL), 0);
    CHECK_EQ(awq_tokenize(err, c, "Hello world", 11, true, false, &ids, &n), 0);
    CHECK(n >= 3 && ids[0] == 1);
    char *text = NULL;
    size_t tl = 0;
    CHECK_EQ(awq_detokenize(err, c, ids + 1, n - 1, false, &text, &tl), 0);
    CHECK_STR(text, "Hello world");
    awq_free(text);
    awq_free(ids);
    CHECK_EQ(awq_tokenize(err, c, "a</s>", 5, false, false, &ids, &n), AWQ_EUNSUPPORTED);
    CHECK_CONTAINS(err, "special = true");
    CHECK_EQ(awq_tokenize(err, c, "a</s>", 5, false, true, &ids, &n), 0);
    CHECK(n >= 2 && ids[n - 1] == 2);
    awq_free(ids);
    uint32_t bad = 99999999;
    CHECK_EQ(awq_detokenize(err, c, &bad, 1, false, &text, &tl), AWQ_ERANGE);
    CHECK_CONTAINS(err, "not a token id");

    CASE("daemon-1.7", "template renders the chat template");
    awq_message msg = {"user", "Hi there"};
    CHECK_EQ(awq_template(err, c, &msg, 1, true, &text), 0);
    CHECK(text && strstr(text, "Hi there"));
    awq_free(text);
    awq_close(c);
}

/* ------------------------------------------------------------ greedy vs awq-run ---- */

/* The "ids" array of awq-run's --json output. */
static size_t parse_ids(const char *path, uint32_t *ids, size_t cap, char *finish) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *p = strstr(buf, "\"ids\":[");
    const char *fr = strstr(buf, "\"finish_reason\":\"");
    if (fr) sscanf(fr + 17, "%15[a-z]", finish);
    if (!p) return 0;
    p += 7;
    size_t k = 0;
    while (*p && *p != ']' && k < cap) {
        ids[k++] = (uint32_t)strtoul(p, (char **)&p, 10);
        if (*p == ',') p++;
    }
    return k;
}

static const char *const prompts[] = {"Hello there", "Tell me a story about a fox", "What is 2+2?", "Bonjour",
                                      "List three colours", "Why is the sky blue?", "Count: one two", "x"};
#define NPROMPTS 8
static td_gen alone[NPROMPTS];

static void test_greedy(void) {
    CASE("daemon-2.1", "greedy output through the daemon equals awq-run generate --temperature 0 --json");
    awq_conn *c = td_connect(&D);
    CHECK(c != NULL);
    if (!c) return;
    for (int i = 0; i < 3; i++) {
        char exe[1200], mdir[300], out[300], finish[16] = "";
        snprintf(exe, sizeof exe, "%s/awq-run", td_bin);
        snprintf(mdir, sizeof mdir, "%s/models/tiny", td_dir);
        snprintf(out, sizeof out, "%s/run%d.json", td_dir, i);
        char *argv[] = {exe, "generate", "-m", mdir, "--temperature", "0", "--json", "-n", "40", "--threads", "1",
                        "--", (char *)prompts[i], NULL};
        CHECK_EQ(td_run(argv, out), 0);
        uint32_t ref[64];
        size_t nref = parse_ids(out, ref, 64, finish);
        CHECK(nref > 0);
        td_gen g;
        CHECK_EQ(td_generate(c, prompts[i], 40, false, &g), 0);
        CHECK_EQ(g.n, nref);
        CHECK(g.n == nref && memcmp(g.ids, ref, nref * sizeof *ref) == 0);
        if (g.n != nref || memcmp(g.ids, ref, nref * sizeof *ref)) {
            fprintf(stderr, "daemon:");
            for (size_t k = 0; k < g.n; k++) fprintf(stderr, " %u", g.ids[k]);
            fprintf(stderr, "\nawq-run:");
            for (size_t k = 0; k < nref; k++) fprintf(stderr, " %u", ref[k]);
            fprintf(stderr, "\n");
        }
        CHECK_STR(g.finish, finish);
    }

    CASE("daemon-2.2", "each prompt alone (the reference for batch invariance); a repeat reuses the prompt cache");
    for (int i = 0; i < NPROMPTS; i++) CHECK_EQ(td_generate(c, prompts[i], 24, true, &alone[i]), 0);
    char *mt = NULL, err[AWQ_ERR_LEN];
    CHECK_EQ(awq_metrics(err, c, &mt), 0);
    const char *r = mt ? strstr(mt, "\nawqd_prompt_cache_reused_tokens_total ") : NULL;
    long long reused0 = r ? atoll(r + 39) : -1;
    awq_free(mt);
    td_gen again;
    CHECK_EQ(td_generate(c, prompts[NPROMPTS - 1], 24, true, &again), 0);
    CHECK(again.n == alone[NPROMPTS - 1].n && !memcmp(again.ids, alone[NPROMPTS - 1].ids, again.n * sizeof *again.ids));
    CHECK_EQ(awq_metrics(err, c, &mt), 0);
    r = mt ? strstr(mt, "\nawqd_prompt_cache_reused_tokens_total ") : NULL;
    CHECK(r && atoll(r + 39) > reused0);
    awq_free(mt);
    awq_close(c);
}

/* ------------------------------------------------------------ batch invariance ---- */

typedef struct client_arg {
    int k;
    td_gen g;
    int rc;
} client_arg;

static void *client_main(void *p) {
    client_arg *a = p;
    awq_conn *c = td_connect(&D);
    if (!c) {
        a->rc = -1;
        return NULL;
    }
    a->rc = td_generate(c, prompts[a->k % NPROMPTS], 24, true, &a->g);
    awq_close(c);
    return NULL;
}

static void test_concurrent(void) {
    int n = td_sanitized ? 16 : 32;
    CASE("daemon-3.1", "many concurrent clients each get the greedy tokens they get alone");
    client_arg *a = calloc((size_t)n, sizeof *a);
    pthread_t *t = calloc((size_t)n, sizeof *t);
    for (int i = 0; i < n; i++) {
        a[i].k = i;
        if (pthread_create(&t[i], NULL, client_main, &a[i])) td_die("pthread_create");
    }
    int same = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        const td_gen *ref = &alone[i % NPROMPTS];
        if (a[i].rc == 0 && a[i].g.n == ref->n && !memcmp(a[i].g.ids, ref->ids, ref->n * sizeof *ref->ids)) same++;
        else fprintf(stderr, "client %d: rc %d, %zu ids (alone %zu): %s\n", i, a[i].rc, a[i].g.n, ref->n, a[i].g.msg);
    }
    CHECK_EQ(same, n);
    free(a);
    free(t);
}

/* ------------------------------------------------------------ cancel, metrics ---- */

static void test_cancel(void) {
    char err[AWQ_ERR_LEN];
    awq_conn *c = td_connect(&D);
    CHECK(c != NULL);
    if (!c) return;
    CASE("daemon-4.1", "cancel mid-stream ends the stream with done/cancel and frees the slot");
    awq_gen_req r;
    awq_gen_req_init(&r);
    r.prompt = "Go on for ever";
    r.max_tokens = 100000;
    r.ignore_eos = true;
    r.temperature = 0;
    uint32_t id;
    CHECK_EQ(awq_generate(err, c, &r, NULL, NULL, &id), 0);
    int tokens = 0;
    char finish[16] = "";
    bool cancelled = false;
    for (;;) {
        awq_event ev;
        if (awq_next_event(err, c, 30000, &ev)) break;
        bool end = ev.type == AWQ_EV_DONE || ev.type == AWQ_EV_ERROR;
        if (ev.type == AWQ_EV_TOKEN && ++tokens == 3 && !cancelled) {
            CHECK_EQ(awq_cancel(err, c, id), 0);
            cancelled = true;
        }
        if (ev.type == AWQ_EV_DONE) snprintf(finish, sizeof finish, "%s", ev.finish_reason);
        awq_event_free(&ev);
        if (end) break;
    }
    CHECK_STR(finish, "cancel");
    CHECK(tokens >= 3 && tokens < 2000);
    CHECK_EQ(td_status_int(c, "kv_slots_used"), 0);
    CHECK_EQ(awq_cancel(err, c, id), AWQ_ENOTFOUND);

    CASE("daemon-4.2", "metrics: Prometheus text with every documented family");
    char *mt = NULL;
    CHECK_EQ(awq_metrics(err, c, &mt), 0);
    const char *fams[] = {"awqd_requests_total{type=\"generate\"}", "awqd_tokens_generated_total ",
                          "awqd_prompt_tokens_total ", "awqd_ttft_seconds_bucket{le=\"0.005\"}",
                          "awqd_ttft_seconds_count ", "awqd_token_seconds_bucket{le=\"+Inf\"}", "awqd_queue_depth 0",
                          "awqd_running_sequences 0", "awqd_kv_slots_used 0", "awqd_kv_slots_total 64",
                          "awqd_connections ", "awqd_prompt_cache_reused_tokens_total ", "# TYPE awqd_ttft_seconds histogram"};
    for (size_t i = 0; i < sizeof fams / sizeof *fams; i++) CHECK_CONTAINS(mt ? mt : "", fams[i]);
    awq_free(mt);
    awq_close(c);
}

/* ------------------------------------------------------------ settings ---- */

static void test_settings(void) {
    char err[AWQ_ERR_LEN];
    awq_conn *c = td_connect(&D);
    CHECK(c != NULL);
    if (!c) return;
    CASE("daemon-5.1", "settings_set validates, writes the file atomically and applies live keys");
    CHECK_EQ(awq_settings_set(err, c, "generation.top_k", "7"), 0);
    CHECK(td_file_has(D.ini, "top_k = 7"));
    CHECK(td_file_has(D.ini, "; written by the test")); /* comments kept: edited in place */
    awq_map m;
    CHECK_EQ(awq_settings_get(err, c, "generation.top_k", &m), 0);
    CHECK(m.n == 1 && !strcmp(m.kv[0].s, "7"));
    awq_map_free(&m);
    CHECK_EQ(awq_settings_set(err, c, "generation.top_k", "-3"), AWQ_ERANGE);
    CHECK_CONTAINS(err, "top_k");
    CHECK_EQ(awq_settings_set(err, c, "nosuch.key", "1"), AWQ_ENOTFOUND);
    CHECK(td_file_has(D.ini, "top_k = 7"));
    char cmd[400];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | grep -c -v -E '^(models|models-evil|run-.*|.*\\.ini|.*\\.log|.*\\.json)$') = 0",
             td_dir);
    CHECK_EQ(system(cmd), 0); /* no temp file left beside the settings file */
    CHECK_EQ(awq_settings_get(err, c, NULL, &m), 0);
    CHECK(m.n > 20 && awq_map_get(&m, "model.context") && awq_map_get(&m, "log.level"));
    awq_map_free(&m);

    CASE("daemon-5.2", "SIGHUP reloads the file: a changed temperature shows at once");
    snprintf(cmd, sizeof cmd, "sed -i 's/^\\[generation\\]$/[generation]\\ntemperature = 0.25/' '%s'", D.ini);
    CHECK_EQ(system(cmd), 0);
    kill(D.pid, SIGHUP);
    bool seen = false;
    for (int i = 0; i < 200 && !seen; i++) {
        td_sleep_ms(20);
        if (awq_settings_get(err, c, "generation.temperature", &m) == 0) {
            seen = m.n == 1 && !strcmp(m.kv[0].s, "0.25");
            awq_map_free(&m);
        }
    }
    CHECK(seen);
    CHECK(td_file_has(D.log, "reload"));
    awq_close(c);
}

/* ------------------------------------------------------------ SIGTERM drain ---- */

static void test_drain(void) {
    char err[AWQ_ERR_LEN];
    CASE("daemon-6.1", "a second daemon on the same socket exits non-zero naming the holder");
    td_daemon two = D;
    snprintf(two.log, sizeof two.log, "%s/second.log", td_dir);
    char exe[1200];
    snprintf(exe, sizeof exe, "%s/awqd", td_bin);
    char out[300];
    snprintf(out, sizeof out, "%s/second.out", td_dir);
    char *argv[] = {exe, "--config", D.ini, NULL};
    pid_t p = fork();
    if (p == 0) {
        FILE *f = freopen(two.log, "w", stderr);
        (void)f;
        execv(exe, argv);
        _exit(127);
    }
    int st;
    waitpid(p, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1);
    CHECK(td_file_has(two.log, "another awqd is already serving"));

    CASE("daemon-6.2", "SIGTERM during streams: streams end with done, new generate gets shutting_down, exit 0");
    enum { NS = 4 };
    awq_conn *c[NS];
    uint32_t ids[NS];
    for (int i = 0; i < NS; i++) {
        c[i] = td_connect(&D);
        CHECK(c[i] != NULL);
        if (!c[i]) return;
        awq_gen_req r;
        awq_gen_req_init(&r);
        r.prompt = prompts[i];
        r.max_tokens = 100000; /* runs into the context: a few seconds */
        r.ignore_eos = true;
        r.temperature = 0;
        CHECK_EQ(awq_generate(err, c[i], &r, NULL, NULL, &ids[i]), 0);
    }
    /* the late request goes on its own connection, opened before the signal: on c[0] the
     * helper would skip (and so lose) stream events of ids[0] while it waits for its answer */
    awq_conn *late = td_connect(&D);
    CHECK(late != NULL);
    if (!late) return;
    awq_event ev;
    CHECK_EQ(awq_next_event(err, c[0], 30000, &ev), 0); /* streaming has begun */
    bool c0_done = ev.type == AWQ_EV_DONE && ev.id == ids[0];
    awq_event_free(&ev);
    kill(D.pid, SIGTERM);
    td_sleep_ms(400);
    td_gen g;
    CHECK_EQ(td_generate(late, "late", 4, false, &g), AWQ_ESHUTDOWN);
    CHECK_CONTAINS(g.msg, "shutting down");
    awq_close(late);
    int done = c0_done ? 1 : 0;
    if (c0_done) awq_close(c[0]);
    for (int i = c0_done ? 1 : 0; i < NS; i++) {
        for (;;) {
            if (awq_next_event(err, c[i], 60000, &ev)) break;
            bool end = ev.type == AWQ_EV_DONE || ev.type == AWQ_EV_ERROR;
            if (ev.type == AWQ_EV_DONE && ev.id == ids[i]) done++;
            awq_event_free(&ev);
            if (end) break;
        }
        awq_close(c[i]);
    }
    CHECK_EQ(done, NS);
    CHECK_EQ(td_stop(&D, 0), 0);
    CHECK(td_file_has(D.log, "draining"));
}

/* ------------------------------------------------------------ security ---- */

static void test_security(void) {
    char err[AWQ_ERR_LEN];
    CASE("daemon-7.1", "an allow list without our uid: the connection is refused with permission_denied");
    td_daemon u;
    td_init(&u, "uid");
    char line[64];
    snprintf(line, sizeof line, "allow_uids = %u", (unsigned)getuid() + 4242);
    td_write_ini(&u, line, NULL, NULL, NULL);
    char exe[1200];
    snprintf(exe, sizeof exe, "%s/awqd", td_bin);
    u.pid = fork();
    if (u.pid == 0) {
        FILE *f = freopen(u.log, "a", stderr);
        (void)f;
        execl(exe, exe, "--config", u.ini, (char *)NULL);
        _exit(127);
    }
    awq_conn *c = NULL;
    int rc = 0;
    for (int i = 0; i < 500; i++) { /* until the socket exists */
        rc = td_connect_opts(&u, &c, err, true);
        if (rc != AWQ_EIO && rc != AWQ_ENOTFOUND && rc != AWQ_ECLOSED) break;
        td_sleep_ms(20);
    }
    CHECK_EQ(rc, AWQ_EPERM);
    CHECK_CONTAINS(err, "not allowed");
    if (!rc) awq_close(c);
    CHECK_EQ(td_stop(&u, SIGTERM), 0);

    CASE("daemon-7.2", "encryption = required refuses a plain client and serves an encrypted one");
    char sk[300], spk[300], ck[300], cpk[300], known[300], sec[1200];
    snprintf(sk, sizeof sk, "%s/server.key", td_dir);
    snprintf(spk, sizeof spk, "%s/server.pub", td_dir);
    snprintf(ck, sizeof ck, "%s/client.key", td_dir);
    snprintf(cpk, sizeof cpk, "%s/client.pub", td_dir);
    snprintf(known, sizeof known, "%s/known_servers", td_dir);
    CHECK_EQ(awq_keygen(err, sk, spk), 0);
    CHECK_EQ(awq_keygen(err, ck, cpk), 0);
    snprintf(sec, sizeof sec, "encryption = required\nserver_key = %s\nauthorized_keys = %s", sk, cpk);
    td_daemon e;
    td_init(&e, "enc");
    td_write_ini(&e, NULL, NULL, NULL, sec);
    /* td_start's readiness probe is a plain client, which this daemon refuses: wait for the
     * refusal instead */
    e.pid = fork();
    if (e.pid == 0) {
        FILE *f = freopen(e.log, "a", stderr);
        (void)f;
        execl(exe, exe, "--config", e.ini, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        rc = td_connect_opts(&e, &c, err, true);
        if (rc != AWQ_EIO && rc != AWQ_ENOTFOUND && rc != AWQ_ECLOSED) break;
        td_sleep_ms(20);
    }
    CHECK_EQ(rc, AWQ_EPERM);
    CHECK_CONTAINS(err, "encryption required");
    if (!rc) awq_close(c);
    awq_connect_opts o = {.socket_path = e.sock, .encrypt = true, .key_path = ck, .known_servers = known,
                          .client_name = "enc-test"};
    c = NULL;
    CHECK_EQ(awq_connect(err, &o, &c), 0);
    if (c) {
        CHECK(awq_info(c)->encrypted);
        CHECK_EQ(awq_ping(err, c), 0);
        td_gen g;
        CHECK_EQ(td_generate(c, "secret", 8, false, &g), 0);
        awq_close(c);
    }
    CHECK_EQ(td_stop(&e, SIGTERM), 0);
}

int main(void) {
    td_setup();
    td_init(&D, "main");
    td_write_ini(&D, NULL, NULL, NULL, NULL);
    td_start(&D, true, NULL);
    test_basics();
    test_greedy();
    test_concurrent();
    test_cancel();
    test_settings();
    test_drain();
    test_security();
    if (D.pid) td_stop(&D, SIGKILL);
    if (h_fail) fprintf(stderr, "daemon logs kept in %s\n", td_dir);
    else td_cleanup();
    return h_finish();
}
