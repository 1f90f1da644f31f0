/* test_daemon_util.h - helpers for the tests that run the real awqd binary: a private temp
 * directory, tiny checkpoints made by awq-mkmodel, a settings file, start/stop of the daemon
 * on a temp socket with its log in a file, and small libawq wrappers.
 *
 * Every function exits the test with a message when its setup fails (a broken fixture is not
 * a test result); checks of the daemon's behaviour are CHECKs in the tests themselves. */
#ifndef TEST_DAEMON_UTIL_H
#define TEST_DAEMON_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkdtemp, kill, fork */
#endif
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "awq.h"
#include "harness.h"

static char td_dir[200];    /* private temp dir (0700) */
static char td_bin[1024];   /* $AWQ_BIN */
static char td_tok[1024];   /* $AWQ_TOKENIZER */
static bool td_sanitized;   /* $AWQ_SANITIZED: cut iteration counts */

static void td_die(const char *what) {
    fprintf(stderr, "test setup failed: %s (%s)\n", what, strerror(errno));
    exit(1);
}

static double td_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void td_sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Run argv, stdout into out_path (or /dev/null); returns the exit status. */
static int td_run(char *const argv[], const char *out_path) {
    pid_t p = fork();
    if (p < 0) td_die("fork");
    if (p == 0) {
        FILE *f = freopen(out_path ? out_path : "/dev/null", "w", stdout);
        (void)f;
        execv(argv[0], argv);
        _exit(127);
    }
    int st;
    while (waitpid(p, &st, 0) < 0 && errno == EINTR) {}
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Set up: env, temp dir, and the models tiny and tiny2 under <dir>/models. SKIPs without the
 * tokenizer or the binaries. */
static void td_setup(void) {
    const char *bin = h_env("AWQ_BIN"), *tok = h_env("AWQ_TOKENIZER");
    if (!tok || !tok[0] || access(tok, R_OK) != 0) SKIP("AWQ_TOKENIZER not set or missing (scripts/fetch-tokenizer.sh)");
    if (!bin) SKIP("AWQ_BIN not set");
    snprintf(td_bin, sizeof td_bin, "%s", bin);
    snprintf(td_tok, sizeof td_tok, "%s", tok);
    char p[1200];
    snprintf(p, sizeof p, "%s/awqd", td_bin);
    if (access(p, X_OK) != 0) SKIP("awqd not built");
    td_sanitized = getenv("AWQ_SANITIZED") && strcmp(getenv("AWQ_SANITIZED"), "0") != 0;
    snprintf(td_dir, sizeof td_dir, "/tmp/awqd-test.XXXXXX");
    if (!mkdtemp(td_dir)) td_die("mkdtemp");
    snprintf(p, sizeof p, "%s/models", td_dir);
    if (mkdir(p, 0700) != 0) td_die("mkdir models");
    const char *names[] = {"tiny", "tiny2"};
    for (int i = 0; i < 2; i++) {
        char mk[1200], out[300], seed[16];
        snprintf(mk, sizeof mk, "%s/awq-mkmodel", td_bin);
        snprintf(out, sizeof out, "%s/models/%s", td_dir, names[i]);
        snprintf(seed, sizeof seed, "%d", 7 + i);
        char *argv[] = {mk, "-o", out, "--preset", "tiny", "--tokenizer", td_tok, "--seed", seed, NULL};
        if (td_run(argv, NULL) != 0) td_die("awq-mkmodel");
    }
}

static void td_cleanup(void) {
    char cmd[300];
    if (!td_dir[0] || getenv("AWQ_KEEP")) return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", td_dir);
    if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", td_dir);
}

/* A running daemon. */
typedef struct td_daemon {
    pid_t pid;
    char name[32];
    char sock[260], ini[300], log[300];
} td_daemon;

/* Write the settings file of daemon name: socket, model path (tiny) and roots, the log file,
 * plus extra lines per section (may be NULL). */
static void td_write_ini(td_daemon *d, const char *server, const char *model, const char *gen, const char *security) {
    FILE *f = fopen(d->ini, "w");
    if (!f) td_die("write ini");
    fprintf(f, "; written by the test\n[server]\nsocket = %s\n%s\n", d->sock, server ? server : "");
    fprintf(f, "[model]\npath = %s/models/tiny\nroots = %s/models\nthreads = 1\n%s\n", td_dir, td_dir, model ? model : "");
    fprintf(f, "[generation]\n%s\n", gen ? gen : "");
    fprintf(f, "[security]\n%s\n", security ? security : "");
    fprintf(f, "[log]\nlevel = debug\n");
    fclose(f);
}

static int td_connect_opts(const td_daemon *d, awq_conn **c, char *err, bool quiet) {
    awq_connect_opts o = {.socket_path = d->sock, .io_timeout_ms = 30000, .client_name = "test"};
    int rc = awq_connect(err, &o, c);
    if (rc && !quiet) fprintf(stderr, "connect %s: %s\n", d->sock, err);
    return rc;
}

static awq_conn *td_connect(const td_daemon *d) {
    char err[AWQ_ERR_LEN];
    awq_conn *c = NULL;
    return td_connect_opts(d, &c, err, false) ? NULL : c;
}

/* Start awqd with d's settings file (written before) and wait until it answers (and, with
 * want_model, has its model loaded). Extra argv entries may follow in args (NULL-terminated). */
static void td_start(td_daemon *d, bool want_model, const char *const *args) {
    char exe[1200];
    snprintf(exe, sizeof exe, "%s/awqd", td_bin);
    char *argv[16] = {exe, "--config", d->ini};
    int n = 3;
    for (; args && *args && n < 15; args++) argv[n++] = (char *)*args;
    argv[n] = NULL;
    d->pid = fork();
    if (d->pid < 0) td_die("fork");
    if (d->pid == 0) {
        FILE *f = freopen(d->log, "a", stderr);
        (void)f;
        execv(exe, argv);
        _exit(127);
    }
    double t0 = td_now();
    while (td_now() - t0 < 60) {
        int st;
        if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
            fprintf(stderr, "awqd %s exited early (status %d); log %s\n", d->name, st, d->log);
            exit(1);
        }
        char err[AWQ_ERR_LEN];
        awq_conn *c = NULL;
        if (td_connect_opts(d, &c, err, true) == 0) {
            awq_map m;
            bool ok = awq_status(err, c, &m) == 0;
            const awq_kv *l = ok ? awq_map_get(&m, "loaded") : NULL;
            bool ready = ok && (!want_model || (l && l->b));
            if (ok) awq_map_free(&m);
            awq_close(c);
            if (ready) return;
        }
        td_sleep_ms(20);
    }
    fprintf(stderr, "awqd %s did not become ready; log %s\n", d->name, d->log);
    exit(1);
}

static void td_init(td_daemon *d, const char *name) {
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name);
    snprintf(d->sock, sizeof d->sock, "%s/run-%s/awqd.sock", td_dir, name);
    snprintf(d->ini, sizeof d->ini, "%s/%s.ini", td_dir, name);
    snprintf(d->log, sizeof d->log, "%s/%s.log", td_dir, name);
}

/* Signal the daemon and wait for it (up to 60 s); returns its exit status, or -1 on a kill. */
static int td_stop(td_daemon *d, int sig) {
    if (d->pid <= 0) return -1;
    kill(d->pid, sig);
    double t0 = td_now();
    int st = 0;
    while (waitpid(d->pid, &st, WNOHANG) != d->pid) {
        if (td_now() - t0 > 60) {
            kill(d->pid, SIGKILL);
            waitpid(d->pid, &st, 0);
            d->pid = 0;
            return -1;
        }
        td_sleep_ms(10);
    }
    d->pid = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The integer status field key, or -1. */
static long long td_status_int(awq_conn *c, const char *key) {
    char err[AWQ_ERR_LEN];
    awq_map m;
    if (awq_status(err, c, &m)) return -1;
    const awq_kv *kv = awq_map_get(&m, key);
    long long v = kv ? (kv->kind == AWQ_KV_BOOL ? kv->b : kv->i) : -1;
    awq_map_free(&m);
    return v;
}

/* Whether file path contains needle. */
static bool td_file_has(const char *path, const char *needle) {
    FILE *f = fopen(path, "r");
    if (!f) return false;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    return strstr(buf, needle) != NULL;
}

/* A greedy generation's result. */
typedef struct td_gen {
    uint32_t ids[4096];
    size_t n;
    char text[16384];
    char finish[16];
    int err;            /* an ERROR event's code, else 0 */
    char msg[AWQ_ERR_LEN];
} td_gen;

/* Generate greedily (temperature 0) and collect everything until DONE or ERROR. */
static int td_generate(awq_conn *c, const char *prompt, uint32_t max_tokens, bool ignore_eos, td_gen *out) {
    char err[AWQ_ERR_LEN];
    memset(out, 0, sizeof *out);
    awq_gen_req r;
    awq_gen_req_init(&r);
    r.prompt = prompt;
    r.temperature = 0;
    r.max_tokens = max_tokens;
    r.ignore_eos = ignore_eos;
    uint32_t id;
    int rc = awq_generate(err, c, &r, NULL, NULL, &id);
    if (rc) {
        out->err = rc;
        snprintf(out->msg, sizeof out->msg, "%s", err);
        return rc;
    }
    for (;;) {
        awq_event ev;
        if ((rc = awq_next_event(err, c, 60000, &ev))) {
            out->err = rc;
            snprintf(out->msg, sizeof out->msg, "%s", err);
            return rc;
        }
        if (ev.id != id) {
            awq_event_free(&ev);
            continue;
        }
        bool end = false;
        if (ev.type == AWQ_EV_TOKEN) {
            for (size_t i = 0; i < ev.n_ids && out->n < 4096; i++) out->ids[out->n++] = ev.ids[i];
            size_t tl = strlen(out->text);
            snprintf(out->text + tl, sizeof out->text - tl, "%.*s", (int)ev.text_len, ev.text);
        } else if (ev.type == AWQ_EV_DONE) {
            snprintf(out->finish, sizeof out->finish, "%s", ev.finish_reason ? ev.finish_reason : "?");
            end = true;
        } else if (ev.type == AWQ_EV_ERROR) {
            out->err = ev.code;
            snprintf(out->msg, sizeof out->msg, "%s", ev.message ? ev.message : "");
            end = true;
        }
        awq_event_free(&ev);
        if (end) return out->err;
    }
}

#endif
