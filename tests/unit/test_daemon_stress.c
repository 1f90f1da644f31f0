/* test_daemon_stress.c - the real awqd under abuse: clients killed with SIGKILL mid-stream many
 * times (KV slots all free afterwards, daemon RSS flat), 1000 connections then one more refused
 * with a clear error while the daemon keeps serving, hostile raw frames answered with errors
 * while another client generates, a full queue answered with busy at once, and keep_alive
 * unloading an idle model.
 *
 * Iterations: 1000 kills normally, 200 under AWQ_SANITIZED (ASan is ~10x slower and its
 * quarantine makes RSS meaningless; there LeakSanitizer at the daemon's exit, which turns a
 * leak into a non-zero exit status, is the leak check instead of the RSS bound). */
#define _GNU_SOURCE /* before any system header */
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "frame.h"
#include "msg.h"
#include "test_daemon_util.h"

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

/* Wait (up to 10 s) until the daemon has no generation running and no slot in use. */
/* True once the daemon is idle: no slot in use, nothing running or queued, seen on five
 * consecutive polls (the fields are read one request at a time, so a single quiet poll can
 * straddle a closing connection whose slot the engine thread has not freed yet). A slot that
 * leaks never lets this return true. */
static bool wait_quiet(awq_conn *c) {
    int quiet = 0;
    for (int i = 0; i < 1000 && quiet < 5; i++) {
        if (td_status_int(c, "kv_slots_used") == 0 && td_status_int(c, "running") == 0 &&
            td_status_int(c, "queue_depth") == 0)
            quiet++;
        else
            quiet = 0;
        td_sleep_ms(20);
    }
    return quiet >= 5;
}

/* ------------------------------------------------------------ kill -9 ---- */

/* Child: start a stream, say so on fd, then wait to be killed. */
static void child_stream(const td_daemon *d, int fd) {
    awq_conn *c = td_connect(d);
    if (!c) _exit(3);
    char err[AWQ_ERR_LEN];
    awq_gen_req r;
    awq_gen_req_init(&r);
    r.prompt = "never stop";
    r.max_tokens = 100000;
    r.ignore_eos = true;
    uint32_t id;
    if (awq_generate(err, c, &r, NULL, NULL, &id)) _exit(4);
    awq_event ev;
    if (awq_next_event(err, c, 30000, &ev) || ev.type != AWQ_EV_TOKEN) _exit(5);
    if (write(fd, "t", 1) != 1) _exit(6);
    for (;;) pause();
}

static void test_kill9(const td_daemon *d) {
    int iters = td_sanitized ? 200 : 1000, batch = 8, ok = 0;
    CASE("daemon-8.1", "clients SIGKILLed mid-stream: every slot freed, RSS flat");
    awq_conn *c = td_connect(d);
    CHECK(c != NULL);
    if (!c) return;
    long rss_mid = -1;
    double t0 = td_now();
    for (int done = 0; done < iters; done += batch) {
        pid_t kids[8];
        int fds[8];
        for (int k = 0; k < batch; k++) {
            int p[2];
            if (pipe(p)) td_die("pipe");
            kids[k] = fork();
            if (kids[k] < 0) td_die("fork");
            if (kids[k] == 0) {
                close(p[0]);
                child_stream(d, p[1]);
            }
            close(p[1]);
            fds[k] = p[0];
        }
        for (int k = 0; k < batch; k++) {
            struct pollfd pf = {.fd = fds[k], .events = POLLIN};
            char b;
            if (poll(&pf, 1, 30000) == 1 && read(fds[k], &b, 1) == 1) ok++;
            kill(kids[k], SIGKILL);
            waitpid(kids[k], NULL, 0);
            close(fds[k]);
        }
        if (done == 96) rss_mid = rss_kb(d->pid); /* after warm-up: allocator pools are filled */
    }
    fprintf(stderr, "%d killed clients in %.1f s\n", iters, td_now() - t0);
    CHECK_EQ(ok, iters);
    CHECK(wait_quiet(c));
    CHECK_EQ(td_status_int(c, "kv_slots_used"), 0);
    CHECK_EQ(td_status_int(c, "connections"), 1);
    long rss_end = rss_kb(d->pid);
    fprintf(stderr, "daemon RSS: %ld kB after warm-up, %ld kB at the end\n", rss_mid, rss_end);
    if (!td_sanitized) CHECK(rss_mid > 0 && rss_end - rss_mid < 8 * 1024);
    td_gen g; /* and it still serves */
    CHECK_EQ(td_generate(c, "still there?", 4, false, &g), 0);
    awq_close(c);
}

/* ------------------------------------------------------------ 1000 connections ---- */

static void test_conns(const td_daemon *d) {
    enum { N = 1000 };
    CASE("daemon-8.2", "1000 connections are served; the 1001st is refused with busy");
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < N + 64) SKIP("RLIMIT_NOFILE hard limit below 1064");
    rl.rlim_cur = N + 64;
    if (setrlimit(RLIMIT_NOFILE, &rl)) td_die("setrlimit");
    awq_conn **cs = calloc(N, sizeof *cs);
    char err[AWQ_ERR_LEN];
    int n = 0;
    for (; n < N; n++)
        if (td_connect_opts(d, &cs[n], err, false)) break;
    CHECK_EQ(n, N);
    awq_conn *extra = NULL;
    CHECK_EQ(td_connect_opts(d, &extra, err, true), AWQ_EBUSY);
    CHECK_CONTAINS(err, "too many connections");
    if (extra) awq_close(extra);
    CHECK_EQ(td_status_int(cs[0], "connections"), N);
    CHECK_EQ(awq_ping(err, cs[N - 1]), 0);
    awq_close(cs[5]);
    cs[5] = NULL;
    bool again = false;
    for (int i = 0; i < 100 && !again; i++) { /* the server notices the close on its next turn */
        again = td_connect_opts(d, &cs[5], err, true) == 0;
        if (!again) td_sleep_ms(10);
    }
    CHECK(again);
    td_gen g;
    CHECK_EQ(td_generate(cs[5], "one more", 4, false, &g), 0);
    for (int i = 0; i < n; i++) awq_close(cs[i]);
    free(cs);
}

/* ------------------------------------------------------------ hostile frames ---- */

static int raw_connect(const td_daemon *d) {
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%.107s", d->sock);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa)) td_die("raw connect");
    return fd;
}

static void raw_send(int fd, const void *p, size_t n) {
    if (write(fd, p, n) != (ssize_t)n) td_die("raw write");
}

static void raw_send_msg(int fd, const ipc_msg *m) {
    awq_buf pl = {0}, fr = {0};
    if (ipc_msg_encode(NULL, m, &pl) || ipc_frame_put(&fr, pl.data, pl.len)) td_die("encode");
    raw_send(fd, fr.data, fr.len);
    awq_buf_free(&pl);
    awq_buf_free(&fr);
}

/* Read one frame and decode it into m; false on EOF or timeout. */
static bool raw_read(int fd, ipc_msg *m) {
    uint8_t h[4];
    size_t got = 0;
    while (got < 4) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        if (poll(&pf, 1, 10000) != 1) return false;
        ssize_t r = read(fd, h + got, 4 - got);
        if (r <= 0) return false;
        got += (size_t)r;
    }
    uint32_t n = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
    uint8_t *p = malloc(n ? n : 1);
    for (got = 0; got < n;) {
        ssize_t r = read(fd, p + got, n - got);
        if (r <= 0) {
            free(p);
            return false;
        }
        got += (size_t)r;
    }
    int rc = ipc_msg_decode(NULL, p, n, m);
    free(p);
    return rc == 0;
}

static bool raw_eof(int fd) {
    char b[256];
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    for (;;) {
        if (poll(&pf, 1, 10000) != 1) return false;
        ssize_t r = read(fd, b, sizeof b);
        if (r <= 0) return true;
    }
}

static int raw_hello(const td_daemon *d) {
    int fd = raw_connect(d);
    ipc_msg h, r;
    ipc_msg_init(&h, IPC_T_HELLO, 1);
    h.u.hello.client = ipc_cstr("raw");
    raw_send_msg(fd, &h);
    bool ok = raw_read(fd, &r) && r.type == IPC_T_HELLO;
    ipc_msg_free(&r);
    if (!ok) td_die("raw hello");
    return fd;
}

static void test_hostile(const td_daemon *d) {
    ipc_msg m;
    CASE("daemon-8.3", "a 4 GiB length header gets an error frame and the connection is closed");
    int fd = raw_connect(d);
    raw_send(fd, "\xff\xff\xff\xff", 4);
    CHECK(raw_read(fd, &m) && m.type == IPC_T_ERROR && m.u.error.code == AWQ_ETOOBIG);
    ipc_msg_free(&m);
    CHECK(raw_eof(fd));
    close(fd);

    CASE("daemon-8.4", "garbage, deep nesting and a server-only message after hello: errors, connection kept");
    fd = raw_hello(d);
    awq_conn *good = td_connect(d);
    CHECK(good != NULL);
    char err[AWQ_ERR_LEN];
    awq_gen_req gr;
    awq_gen_req_init(&gr);
    gr.prompt = "keep going while others misbehave";
    gr.max_tokens = 64;
    gr.temperature = 0;
    gr.ignore_eos = true;
    uint32_t gid = 0;
    CHECK_EQ(awq_generate(err, good, &gr, NULL, NULL, &gid), 0);
    uint8_t junk[300];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (uint8_t)(i * 37 + 11);
    awq_buf fr = {0};
    CHECK_EQ(ipc_frame_put(&fr, junk, sizeof junk), 0);
    raw_send(fd, fr.data, fr.len);
    CHECK(raw_read(fd, &m) && m.type == IPC_T_ERROR && m.u.error.code != 0);
    ipc_msg_free(&m);
    fr.len = 0;
    static uint8_t deep[20000];
    memset(deep, 0x91, sizeof deep); /* fixarray of one element, nested 20000 deep */
    CHECK_EQ(ipc_frame_put(&fr, deep, sizeof deep), 0);
    raw_send(fd, fr.data, fr.len);
    CHECK(raw_read(fd, &m) && m.type == IPC_T_ERROR);
    ipc_msg_free(&m);
    awq_buf_free(&fr);
    ipc_msg t;
    ipc_msg_init(&t, IPC_T_DONE, 9);
    raw_send_msg(fd, &t);
    CHECK(raw_read(fd, &m) && m.type == IPC_T_ERROR && m.u.error.code == AWQ_EPROTO);
    ipc_msg_free(&m);
    ipc_msg_init(&t, IPC_T_PING, 10);
    raw_send_msg(fd, &t);
    CHECK(raw_read(fd, &m) && m.type == IPC_T_PONG && m.id == 10);
    ipc_msg_free(&m);
    /* a generate with out-of-range sampling values: an error naming the field */
    ipc_msg_init(&t, IPC_T_GENERATE, 11);
    t.u.gen.prompt = ipc_cstr("x");
    t.u.gen.top_p = 0.0f;
    raw_send_msg(fd, &t);
    CHECK(raw_read(fd, &m) && m.type == IPC_T_ERROR && m.id == 11);
    if (m.type == IPC_T_ERROR) CHECK_CONTAINS(m.u.error.message.s ? m.u.error.message.s : "", "top_p");
    ipc_msg_free(&m);
    close(fd);
    int tokens = 0;
    bool done = false;
    while (good && !done) {
        awq_event ev;
        if (awq_next_event(err, good, 30000, &ev)) break;
        if (ev.type == AWQ_EV_TOKEN) tokens++;
        done = ev.type == AWQ_EV_DONE || ev.type == AWQ_EV_ERROR;
        awq_event_free(&ev);
    }
    CHECK(done);
    CHECK_EQ(tokens, 64);
    if (good) awq_close(good);
}

/* ------------------------------------------------------------ queue, keep_alive ---- */

static void test_queue(void) {
    td_daemon q;
    td_init(&q, "queue");
    td_write_ini(&q, "queue_depth = 2", "max_sequences = 1\nkeep_alive = 2s", NULL, NULL);
    td_start(&q, true, NULL);
    awq_conn *c = td_connect(&q);
    CHECK(c != NULL);
    if (!c) return;
    char err[AWQ_ERR_LEN];
    CASE("daemon-9.1", "one slot, queue_depth 2: two requests wait, the next gets busy at once");
    awq_gen_req r;
    awq_gen_req_init(&r);
    r.prompt = "long";
    r.max_tokens = 100000;
    r.ignore_eos = true;
    uint32_t ids[4];
    CHECK_EQ(awq_generate(err, c, &r, NULL, NULL, &ids[0]), 0);
    awq_event ev;
    CHECK_EQ(awq_next_event(err, c, 30000, &ev), 0); /* the first one runs */
    awq_event_free(&ev);
    for (int i = 1; i < 4; i++) CHECK_EQ(awq_generate(err, c, &r, NULL, NULL, &ids[i]), 0);
    bool busy = false;
    for (int i = 0; i < 10000 && !busy; i++) {
        if (awq_next_event(err, c, 30000, &ev)) break;
        if (ev.type == AWQ_EV_ERROR && ev.id == ids[3]) {
            busy = ev.code == AWQ_EBUSY && strstr(ev.message, "queue_depth");
        }
        awq_event_free(&ev);
    }
    CHECK(busy);
    CHECK_EQ(td_status_int(c, "queue_depth"), 2);
    CASE("daemon-9.2", "cancel of waiting and running requests ends each with done/cancel");
    for (int i = 0; i < 3; i++) CHECK_EQ(awq_cancel(err, c, ids[i]), 0);
    int cancelled = 0;
    while (cancelled < 3) {
        if (awq_next_event(err, c, 30000, &ev)) break;
        if (ev.type == AWQ_EV_DONE && !strcmp(ev.finish_reason, "cancel")) cancelled++;
        awq_event_free(&ev);
    }
    CHECK_EQ(cancelled, 3);
    CHECK(wait_quiet(c));
    CASE("daemon-9.3", "keep_alive unloads the idle model");
    bool unloaded = false;
    for (int i = 0; i < 300 && !unloaded; i++) {
        unloaded = td_status_int(c, "loaded") == 0;
        if (!unloaded) td_sleep_ms(20);
    }
    CHECK(unloaded);
    CHECK(td_file_has(q.log, "idle for keep_alive"));
    awq_close(c);
    CHECK_EQ(td_stop(&q, SIGTERM), 0);
}

int main(void) {
    td_setup();
    td_daemon d;
    td_init(&d, "stress");
    td_write_ini(&d, "max_connections = 1000", "max_sequences = 16", NULL, NULL);
    td_start(&d, true, NULL);
    test_kill9(&d);
    test_hostile(&d);
    test_conns(&d);
    CASE("daemon-8.5", "after all that, SIGTERM still drains and exits 0 (LeakSanitizer clean under ASan)");
    CHECK_EQ(td_stop(&d, SIGTERM), 0);
    test_queue();
    if (h_fail) fprintf(stderr, "daemon logs kept in %s\n", td_dir);
    else td_cleanup();
    return h_finish();
}
