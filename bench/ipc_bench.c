/* ipc_bench.c - IPC latency and throughput: ping round trips through ipc-testserver and libawq
 * (plain and encrypted) and one-way small-frame throughput (token events), each next to a raw
 * AF_UNIX baseline measured in the same run (socketpair between two processes, 64-byte frames).
 * The raw, plain and encrypted round trips run in interleaved blocks (see ping_phase).
 *
 *   ipc_bench [ROUND_TRIPS (default 100000)] [STREAM_FRAMES (default 200000)]
 *
 * ipc-testserver is looked up next to this binary. Prints a markdown table. */
#define _GNU_SOURCE
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "awq.h"
#include "plat.h"

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void pct(uint64_t *t, int n, double *p50, double *p99) {
    qsort(t, (size_t)n, sizeof *t, cmp_u64);
    *p50 = (double)t[n / 2] / 1000.0;
    *p99 = (double)t[(int)((double)n * 0.99)] / 1000.0;
}

static int full_io(int fd, void *p, size_t n, bool wr) {
    uint8_t *b = p;
    while (n) {
        ssize_t k = wr ? write(fd, b, n) : read(fd, b, n);
        if (k <= 0) return -1;
        b += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Raw baseline: 64-byte frames (4-byte length + 60 bytes) echoed by a child process. The
 * child lives for the whole ping phase so raw, plain and encrypted blocks can be interleaved. */
typedef struct raw_echo {
    int fd;
    pid_t pid;
} raw_echo;

static raw_echo raw_start(void) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        uint8_t f[64];
        while (full_io(sv[1], f, 4, false) == 0 && full_io(sv[1], f + 4, 60, false) == 0)
            if (full_io(sv[1], f, 64, true)) break;
        _exit(0);
    }
    close(sv[1]);
    return (raw_echo){sv[0], pid};
}

static void raw_stop(raw_echo r) {
    close(r.fd);
    waitpid(r.pid, NULL, 0);
}

static void raw_pings(raw_echo r, int n, uint64_t *t) {
    uint8_t f[64] = {60, 0, 0, 0};
    for (int i = 0; i < n; i++) {
        uint64_t t0 = plat_now_ns();
        if (full_io(r.fd, f, 64, true) || full_io(r.fd, f, 4, false) || full_io(r.fd, f + 4, 60, false)) exit(1);
        t[i] = plat_now_ns() - t0;
    }
}

/* Raw one-way: a child writes n 64-byte frames; the parent reads and splits them. frames/s. */
static double raw_oneway(int n) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv)) exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        close(sv[0]);
        uint8_t f[64] = {60, 0, 0, 0};
        for (int i = 0; i < n; i++)
            if (full_io(sv[1], f, 64, true)) break;
        _exit(0);
    }
    close(sv[1]);
    uint64_t t0 = plat_now_ns();
    static uint8_t buf[1 << 16];
    size_t have = 0;
    int frames = 0;
    while (frames < n) {
        ssize_t k = read(sv[0], buf + have, sizeof buf - have);
        if (k <= 0) break;
        have += (size_t)k;
        size_t off = 0;
        while (have - off >= 4) { /* split like a frame reader would */
            uint32_t len = (uint32_t)buf[off] | (uint32_t)buf[off + 1] << 8;
            if (have - off < 4 + len) break;
            off += 4 + len;
            frames++;
        }
        memmove(buf, buf + off, have - off);
        have -= off;
    }
    double s = (double)(plat_now_ns() - t0) / 1e9;
    close(sv[0]);
    waitpid(pid, NULL, 0);
    return frames / s;
}

static pid_t spawn_server(const char *exe, const char *const *args) {
    int p[2];
    if (pipe(p)) exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        const char *argv[16] = {exe};
        int k = 1;
        for (int i = 0; args[i]; i++) argv[k++] = args[i];
        argv[k] = NULL;
        execv(exe, (char **)argv);
        _exit(127);
    }
    close(p[1]);
    char line[512] = "";
    ssize_t k = read(p[0], line, sizeof line - 1);
    close(p[0]);
    if (k <= 0 || !strstr(line, "ready")) {
        fprintf(stderr, "ipc_bench: ipc-testserver did not start\n");
        exit(1);
    }
    return pid;
}

static void awq_pings(awq_conn *c, int n, uint64_t *t) {
    char err[AWQ_ERR_LEN];
    for (int i = 0; i < n; i++) {
        uint64_t t0 = plat_now_ns();
        if (awq_ping(err, c)) {
            fprintf(stderr, "ping: %s\n", err);
            exit(1);
        }
        t[i] = plat_now_ns() - t0;
    }
}

/* The three ping kinds in alternating blocks of PING_BLOCK round trips: the machine is shared and
 * its load drifts over seconds, so running them one after the other would hand one kind a
 * quieter stretch than the next; interleaved, each sees the same mix. */
#define PING_BLOCK 500

static void ping_phase(awq_conn *plain, awq_conn *enc, int n, double p50[3], double p99[3]) {
    uint64_t *t[3];
    for (int k = 0; k < 3; k++)
        if (!(t[k] = malloc((size_t)n * sizeof *t[k]))) exit(1);
    raw_echo r = raw_start();
    uint64_t warm[PING_BLOCK];
    awq_pings(plain, PING_BLOCK, warm);
    awq_pings(enc, PING_BLOCK, warm);
    raw_pings(r, PING_BLOCK, warm);
    for (int done = 0; done < n;) {
        int b = n - done < PING_BLOCK ? n - done : PING_BLOCK;
        raw_pings(r, b, t[0] + done);
        awq_pings(plain, b, t[1] + done);
        awq_pings(enc, b, t[2] + done);
        done += b;
    }
    raw_stop(r);
    for (int k = 0; k < 3; k++) {
        pct(t[k], n, &p50[k], &p99[k]);
        free(t[k]);
    }
}

static double awq_stream(awq_conn *c, int n) {
    char err[AWQ_ERR_LEN];
    awq_gen_req r;
    awq_gen_req_init(&r);
    r.prompt = "tok"; /* every event: {"t":"token","id":1,"text":"tok","ids":[N]} ~ 35 bytes */
    r.max_tokens = (uint32_t)n;
    uint32_t id;
    uint64_t t0 = plat_now_ns();
    if (awq_generate(err, c, &r, NULL, NULL, &id)) exit(1);
    int tokens = 0;
    for (;;) {
        awq_event ev;
        if (awq_next_event(err, c, 60000, &ev)) {
            fprintf(stderr, "stream: %s\n", err);
            exit(1);
        }
        int done = ev.type != AWQ_EV_TOKEN;
        tokens += !done;
        awq_event_free(&ev);
        if (done) break;
    }
    return tokens / ((double)(plat_now_ns() - t0) / 1e9);
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 100000, ns = argc > 2 ? atoi(argv[2]) : 200000;
    signal(SIGPIPE, SIG_IGN);
    char self[PATH_MAX], exe[PATH_MAX + 32], dir[] = "/tmp/awq-bench-XXXXXX", sock[128], k[4][160];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0 || !mkdtemp(dir)) return 1;
    self[sl] = 0;
    snprintf(exe, sizeof exe, "%s/ipc-testserver", dirname(self));
    snprintf(sock, sizeof sock, "%s/s/awqd.sock", dir);
    const char *kn[4] = {"server.key", "server.pub", "client.key", "client.pub"};
    for (int i = 0; i < 4; i++) snprintf(k[i], sizeof k[i], "%s/%s", dir, kn[i]);
    char err[AWQ_ERR_LEN];
    if (awq_keygen(err, k[0], k[1]) || awq_keygen(err, k[2], k[3])) {
        fprintf(stderr, "keygen: %s\n", err);
        return 1;
    }
    const char *args[] = {"--socket", sock, "--enc", "on", "--key", k[0], "--authorized", k[3], NULL};
    pid_t srv = spawn_server(exe, args);

    awq_connect_opts o = {.socket_path = sock};
    awq_conn *plain, *enc;
    char known[200];
    snprintf(known, sizeof known, "%s/known", dir);
    awq_connect_opts eo = {.socket_path = sock, .encrypt = true, .key_path = k[2], .known_servers = known};
    if (awq_connect(err, &o, &plain) || awq_connect(err, &eo, &enc)) {
        fprintf(stderr, "connect: %s\n", err);
        return 1;
    }
    double p50[3], p99[3];
    ping_phase(plain, enc, n, p50, p99);
    double rp50 = p50[0], rp99 = p99[0], pp50 = p50[1], pp99 = p99[1], ep50 = p50[2], ep99 = p99[2];
    double raw_tp = raw_oneway(ns), plain_tp = awq_stream(plain, ns), enc_tp = awq_stream(enc, ns);
    awq_close(plain);
    awq_close(enc);
    kill(srv, SIGTERM);
    waitpid(srv, NULL, 0);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) { /* harmless */ }

    printf("| measurement | p50 | p99 | vs raw |\n| --- | --- | --- | --- |\n");
    printf("| raw AF_UNIX ping-pong, 64-byte frames, socketpair, %d round trips | %.1f us | %.1f us | 1.00x |\n", n,
           rp50, rp99);
    printf("| libawq ping -> ipc server -> pong, plain, %d round trips | %.1f us | %.1f us | %.2fx |\n", n, pp50, pp99,
           pp50 / rp50);
    printf("| libawq ping, encrypted (secretstream both ways), %d round trips | %.1f us | %.1f us | %.2fx (+%.1f us over plain) |\n",
           n, ep50, ep99, ep50 / rp50, ep50 - pp50);
    printf("\n| one-way small frames | frames/s | vs raw |\n| --- | --- | --- |\n");
    printf("| raw AF_UNIX, 64-byte frames, %d frames | %.0f | 1.00x |\n", ns, raw_tp);
    printf("| ipc server -> libawq token events (~35 B), plain, %d events | %.0f | %.2fx |\n", ns, plain_tp,
           plain_tp / raw_tp);
    printf("| same, encrypted | %.0f | %.2fx |\n", enc_tp, enc_tp / raw_tp);
    return 0;
}
