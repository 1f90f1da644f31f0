/* daemon_bench.c - what the daemon costs: time to first token and decode tok/s through awqd
 * (libawq over the socket) against the engine driven directly in this process the way
 * `awq-run generate` drives it (eng_llm_open, one sequence, eng_gen_step), on the same
 * checkpoint and thread count; then aggregate tok/s with 1, 8 and 64 concurrent streams, and
 * the memory each stream costs (KV slot bytes and daemon RSS growth).
 *
 *   daemon_bench --tokenizer PATH [--bin DIR] [--preset demo|tiny|shisa7b] [--gen N] [--threads N]
 *                [--reps N] [--temperature T] [--device cpu|cuda]
 * --bin defaults to the directory of this program (build/bin). Greedy (or, with --temperature
 * T > 0, sampling with the daemon's default top-k 40, top-p 0.95, min-p 0.05), ignore_eos, a
 * fixed prompt; each single-stream figure is the median of --reps runs (default 5).
 */
#define _GNU_SOURCE /* mkdtemp, kill */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "awq.h"
#include "llm.h"
#include "plat.h"

static char dir[128], bin[1024], sock[300];
static int n_gen = 64, threads = 1, reps = 5;
static float temperature = 0.0f;
static const char *device = "cpu"; /* --device: the engine backend, in-process and in awqd */
static const char *prompt = "Write a short poem about the sea and the wind.";

static double now_s(void) { return (double)plat_now_ns() / 1e9; }

static void die(const char *what) {
    fprintf(stderr, "daemon_bench: %s\n", what);
    exit(1);
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return v[n / 2];
}

/* ------------------------------------------------------------ direct ---- */

/* One greedy generation in-process: ttft (s) and decode tok/s, as awq-run generate measures. */
static void direct(const char *mdir, double *ttft, double *tps) {
    char err[AWQ_ERR_LEN];
    eng_llm *l = NULL;
    eng_llm_opts lo = {.device = device, .threads = threads, .max_seqs = 1};
    const double t_open = now_s();
    if (eng_llm_open(err, mdir, &lo, &l)) die(err);
    printf("engine open (load, upload, warm-up): %.3f s\n", now_s() - t_open);
    eng_msg m = {"user", prompt};
    int32_t *ids = NULL;
    size_t n = 0;
    if (eng_llm_chat_ids(err, l, &m, 1, &ids, &n)) die(err);
    double *t1 = malloc(sizeof *t1 * (size_t)reps), *t2 = malloc(sizeof *t2 * (size_t)reps);
    for (int r = 0; r < reps; r++) {
        eng_samp_params p;
        eng_samp_params_default(&p, &l->model->gen); /* as the daemon: generation_config.json applies */
        p.temperature = temperature;
        if (temperature > 0) p.top_k = 40, p.top_p = 0.95f, p.min_p = 0.05f; /* the daemon's defaults */
        p.ignore_eos = true;
        p.max_tokens = n_gen;
        eng_gen_seq *s = NULL;
        double t0 = now_s(), tf = 0;
        if (eng_gen_seq_create(err, l->gen, &p, &s) || eng_gen_seq_prompt(err, s, ids, n, NULL)) die(err);
        while (eng_gen_seq_finish(s) == ENG_GEN_RUNNING) {
            if (eng_gen_step(err, l->gen, &s, 1)) die(err);
            if (eng_gen_seq_event(s)->has_token && !tf) tf = now_s();
        }
        double te = now_s();
        t1[r] = tf - t0;
        t2[r] = (double)(eng_gen_seq_n_generated(s) - 1) / (te - tf);
        eng_gen_seq_free(s);
    }
    *ttft = median(t1, reps);
    *tps = median(t2, reps);
    free(t1);
    free(t2);
    free(ids);
    eng_llm_free(l);
}

/* ------------------------------------------------------------ through the daemon ---- */

typedef struct stream {
    double ttft, tps, t_end;
    size_t tokens;
    int rc;
} stream;

static void run_stream(awq_conn *c, stream *s) {
    char err[AWQ_ERR_LEN];
    awq_gen_req r;
    awq_gen_req_init(&r);
    r.prompt = prompt;
    r.temperature = temperature; /* > 0: the daemon's top-k / top-p / min-p defaults apply */
    r.ignore_eos = true;
    r.max_tokens = (uint32_t)n_gen;
    uint32_t id;
    double t0 = now_s(), tf = 0, tl = 0;
    s->tokens = 0;
    if ((s->rc = awq_generate(err, c, &r, NULL, NULL, &id))) return;
    for (;;) {
        awq_event ev;
        if ((s->rc = awq_next_event(err, c, 600000, &ev))) return;
        bool end = ev.type == AWQ_EV_DONE || ev.type == AWQ_EV_ERROR;
        if (ev.type == AWQ_EV_TOKEN) {
            tl = now_s();
            if (!tf) tf = tl;
            s->tokens += ev.n_ids;
        }
        if (ev.type == AWQ_EV_ERROR) s->rc = ev.code;
        awq_event_free(&ev);
        if (end) break;
    }
    s->ttft = tf - t0;
    s->tps = s->tokens > 1 ? (double)(s->tokens - 1) / (tl - tf) : 0;
    s->t_end = tl;
}

static awq_conn *conn(void) {
    char err[AWQ_ERR_LEN];
    awq_connect_opts o = {.socket_path = sock, .io_timeout_ms = 600000, .client_name = "daemon_bench"};
    awq_conn *c = NULL;
    if (awq_connect(err, &o, &c)) die(err);
    return c;
}

typedef struct targ {
    stream s;
    pthread_barrier_t *bar;
} targ;

static void *stream_main(void *p) {
    targ *a = p;
    awq_conn *c = conn();
    pthread_barrier_wait(a->bar);
    run_stream(c, &a->s);
    awq_close(c);
    return NULL;
}

/* n concurrent streams; aggregate tok/s = all tokens / (last token - start). */
static double concurrent(int n, double *per_stream) {
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)n + 1);
    targ *a = calloc((size_t)n, sizeof *a);
    pthread_t *t = calloc((size_t)n, sizeof *t);
    for (int i = 0; i < n; i++) {
        a[i].bar = &bar;
        if (pthread_create(&t[i], NULL, stream_main, &a[i])) die("pthread_create");
    }
    pthread_barrier_wait(&bar);
    double t0 = now_s(), t_end = 0, sum = 0;
    size_t tokens = 0;
    for (int i = 0; i < n; i++) {
        pthread_join(t[i], NULL);
        if (a[i].s.rc) die("a stream failed");
        tokens += a[i].s.tokens;
        if (a[i].s.t_end > t_end) t_end = a[i].s.t_end;
        sum += a[i].s.tps;
    }
    *per_stream = sum / n;
    free(a);
    free(t);
    pthread_barrier_destroy(&bar);
    return (double)tokens / (t_end - t0);
}

static long rss_kb(pid_t pid) {
    char p[64], line[256];
    snprintf(p, sizeof p, "/proc/%d/status", (int)pid);
    FILE *f = fopen(p, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = atol(line + 6);
    if (f) fclose(f);
    return kb;
}

static long long status_int(awq_conn *c, const char *key) {
    char err[AWQ_ERR_LEN];
    awq_map m;
    if (awq_status(err, c, &m)) die(err);
    const awq_kv *kv = awq_map_get(&m, key);
    long long v = kv ? (kv->kind == AWQ_KV_BOOL ? kv->b : kv->i) : -1;
    awq_map_free(&m);
    return v;
}

/* ------------------------------------------------------------ main ---- */

int main(int argc, char **argv) {
    const char *tok = NULL, *preset = "demo";
    snprintf(bin, sizeof bin, "%s", argv[0]);
    char *slash = strrchr(bin, '/');
    if (slash) *slash = 0;
    else snprintf(bin, sizeof bin, ".");
    for (int i = 1; i < argc; i += 2) { /* every option takes a value */
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) die("every option needs a value (see the comment at the top of bench/daemon_bench.c)");
        if (!strcmp(a, "--tokenizer")) tok = v;
        else if (!strcmp(a, "--bin")) snprintf(bin, sizeof bin, "%s", v);
        else if (!strcmp(a, "--preset")) preset = v;
        else if (!strcmp(a, "--gen")) n_gen = atoi(v);
        else if (!strcmp(a, "--threads")) threads = atoi(v);
        else if (!strcmp(a, "--reps")) reps = atoi(v);
        else if (!strcmp(a, "--temperature")) temperature = (float)atof(v);
        else if (!strcmp(a, "--device")) device = v; /* the engine's device setting, in-process and in awqd */
        else die("unknown option");
    }
    if (!tok) die("--tokenizer PATH is required");
    if (n_gen < 2 || threads < 0 || reps < 1 || !(temperature >= 0)) die("bad --gen, --threads, --reps or --temperature");
    snprintf(dir, sizeof dir, "/tmp/awqd-bench.XXXXXX");
    if (!mkdtemp(dir)) die("mkdtemp");
    char mdir[300], cmd[2048], ini[300], logp[300];
    snprintf(mdir, sizeof mdir, "%s/model", dir);
    snprintf(cmd, sizeof cmd, "'%s/awq-mkmodel' -o '%s' --preset %s --tokenizer '%s' > /dev/null", bin, mdir, preset, tok);
    if (system(cmd)) die("awq-mkmodel failed");

    double d_ttft, d_tps;
    direct(mdir, &d_ttft, &d_tps);

    snprintf(sock, sizeof sock, "%s/run/awqd.sock", dir);
    snprintf(ini, sizeof ini, "%s/awqd.ini", dir);
    snprintf(logp, sizeof logp, "%s/awqd.log", dir);
    FILE *f = fopen(ini, "w");
    if (!f) die("cannot write the settings file");
    fprintf(f, "[server]\nsocket = %s\n[model]\npath = %s\nthreads = %d\nmax_sequences = 64\ndevice = %s\n[log]\nlevel = warn\n",
            sock, mdir, threads, device);
    fclose(f);
    char exe[1100];
    snprintf(exe, sizeof exe, "%s/awqd", bin);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen(logp, "w", stderr)) _exit(127);
        execl(exe, exe, "--config", ini, (char *)NULL);
        _exit(127);
    }
    awq_conn *c = NULL;
    for (int i = 0; i < 3000 && !c; i++) {
        char err[AWQ_ERR_LEN];
        awq_connect_opts o = {.socket_path = sock, .client_name = "daemon_bench"};
        if (awq_connect(err, &o, &c)) plat_sleep_ms(10);
    }
    if (!c) die("awqd did not start");
    while (status_int(c, "loaded") != 1) plat_sleep_ms(10);
    long rss_idle = rss_kb(pid);

    double *t1 = malloc(sizeof *t1 * (size_t)reps), *t2 = malloc(sizeof *t2 * (size_t)reps);
    stream s;
    run_stream(c, &s); /* the first request: nothing cached yet */
    double cold_ttft = s.ttft;
    for (int r = 0; r < reps; r++) {
        run_stream(c, &s);
        if (s.rc) die("generate through the daemon failed");
        t1[r] = s.ttft;
        t2[r] = s.tps;
    }
    double a_ttft = median(t1, reps), a_tps = median(t2, reps);
    long long kv_bytes = status_int(c, "memory_kv_bytes"), slots = status_int(c, "kv_slots_total");

    printf("daemon_bench: preset %s, device %s, %d generated tokens, %d thread(s), median of %d\n", preset, device, n_gen,
           threads, reps);
    printf("| path | time to first token | decode tok/s |\n| --- | --- | --- |\n");
    printf("| engine in-process (awq-run's loop) | %.2f ms | %.1f |\n", d_ttft * 1e3, d_tps);
    printf("| through awqd, first request (cold) | %.2f ms | - |\n", cold_ttft * 1e3);
    printf("| through awqd, repeated prompt (prompt cache) | %.2f ms | %.1f |\n", a_ttft * 1e3, a_tps);
    printf("decode overhead of the daemon: %+.2f %% (target < 2 %%)\n", 100.0 * (d_tps - a_tps) / d_tps);
    printf("| concurrent streams | aggregate tok/s | mean tok/s per stream |\n| --- | --- | --- |\n");
    int ns[3] = {1, 8, 64};
    long rss_64 = 0;
    for (int k = 0; k < 3; k++) {
        double per;
        double agg = concurrent(ns[k], &per);
        printf("| %d | %.1f | %.1f |\n", ns[k], agg, per);
        if (ns[k] == 64) rss_64 = rss_kb(pid);
    }
    printf("memory per stream: KV slot %.2f MB (%lld bytes over %lld slots); daemon RSS idle %ld kB, after 64 "
           "streams %ld kB = %.1f kB per stream\n",
           slots > 0 ? (double)kv_bytes / (double)slots / 1e6 : 0.0, kv_bytes, slots, rss_idle, rss_64,
           (double)(rss_64 - rss_idle) / 64.0);
    awq_close(c);
    kill(pid, SIGTERM);
    int st;
    waitpid(pid, &st, 0);
    free(t1);
    free(t2);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) fprintf(stderr, "cannot remove %s\n", dir);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
