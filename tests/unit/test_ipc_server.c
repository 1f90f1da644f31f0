/* test_ipc_server.c - ipc/ server + libawq over real Unix sockets (integration): the test
 * server process (tools/ipc-testserver) in a temp dir, driven by libawq clients and raw
 * protocol clients. Covers hello/ping, many concurrent requests on one connection, streaming,
 * cancel, reused ids, malformed and oversized frames, the peer allow list (also from another
 * uid when run as root), max_conns, a slow reader's bounded memory, socket path safety (stale
 * socket, symlink, regular file, open directory) and encryption (required, mixed, pinning). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "awq.h"
#include "frame.h"
#include "harness.h"
#include "keys.h"
#include "msg.h"

static char dir[40], sock_path[80], out_text[4096];
static const char *bin;

/* ------------------------------------------------------------ helpers ---- */

/* Start ipc-testserver with args (NULL-terminated); wait for "listening on". Returns its pid, or
 * -1 when it exited (its output is in out_text). */
static pid_t start(const char *const *args) {
    int p[2];
    if (pipe(p) != 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        dup2(p[1], 2);
        close(p[0]);
        char exe[512];
        snprintf(exe, sizeof exe, "%s/ipc-testserver", bin);
        const char *argv[32] = {exe};
        int n = 1;
        for (int i = 0; args[i] && n < 31; i++) argv[n++] = args[i];
        argv[n] = NULL;
        execv(exe, (char **)argv);
        _exit(127);
    }
    close(p[1]);
    size_t len = 0;
    out_text[0] = 0;
    for (;;) {
        struct pollfd pf = {p[0], POLLIN, 0};
        if (poll(&pf, 1, 20000) <= 0) break;
        ssize_t k = read(p[0], out_text + len, sizeof out_text - 1 - len);
        if (k <= 0) break;
        len += (size_t)k;
        out_text[len] = 0;
        if (strstr(out_text, "ready: listening on")) {
            close(p[0]);
            return pid;
        }
    }
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
    return -1;
}

/* Stop the server; returns its exit status (0 = clean, no leaks under ASan). */
static int stop(pid_t pid) {
    int st = -1;
    if (pid <= 0) return -1;
    kill(pid, SIGTERM);
    waitpid(pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static awq_conn *client(char *err, int *rc_out) {
    awq_connect_opts o = {.socket_path = sock_path, .client_name = "test", .io_timeout_ms = 20000};
    awq_conn *c = NULL;
    *rc_out = awq_connect(err, &o, &c);
    return c;
}

static int raw_connect(void) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    snprintf(a.sun_path, sizeof a.sun_path, "%s", sock_path);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void raw_bytes(int fd, const void *p, size_t n) {
    if (write(fd, p, n) != (ssize_t)n) fprintf(stderr, "short write\n");
}

static void raw_send(int fd, const ipc_msg *m) {
    awq_buf pl = {0}, fr = {0};
    if (ipc_msg_encode(NULL, m, &pl) == 0 && ipc_frame_put(&fr, pl.data, pl.len) == 0) raw_bytes(fd, fr.data, fr.len);
    awq_buf_free(&pl);
    awq_buf_free(&fr);
}

/* Read one message (5 s); returns 0, or -1 on EOF/timeout/garbage. */
static int raw_recv(int fd, ipc_msg *m) {
    ipc_frame_dec *d = ipc_frame_dec_create(1 << 20);
    int rc = -1;
    for (;;) {
        uint8_t b;
        struct pollfd pf = {fd, POLLIN, 0};
        if (poll(&pf, 1, 5000) <= 0 || read(fd, &b, 1) != 1) break;
        size_t used;
        int k = ipc_frame_dec_feed(NULL, d, &b, 1, &used);
        if (k < 0) break;
        if (k == 1) {
            const uint8_t *p;
            uint32_t n;
            ipc_frame_dec_take(d, &p, &n);
            rc = ipc_msg_decode(NULL, p, n, m) == 0 ? 0 : -1;
            if (rc) ipc_msg_free(m);
            break;
        }
    }
    ipc_frame_dec_free(d);
    return rc;
}

static int raw_hello(int fd) {
    ipc_msg m;
    ipc_msg_init(&m, IPC_T_HELLO, 0);
    raw_send(fd, &m);
    int rc = raw_recv(fd, &m);
    if (!rc) {
        rc = m.type == IPC_T_HELLO ? 0 : -1;
        ipc_msg_free(&m);
    }
    return rc;
}

static long rss_kb(pid_t pid) {
    char p[64], line[256];
    snprintf(p, sizeof p, "/proc/%d/status", (int)pid);
    FILE *f = fopen(p, "r");
    long kb = -1;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &kb) == 1) break;
    if (f) fclose(f);
    return kb;
}

typedef struct collect {
    char text[4096];
    size_t len;
    int tokens, done;
    char finish[16];
} collect;

static void on_ev(void *user, const awq_event *ev) {
    collect *c = user;
    if (ev->type == AWQ_EV_TOKEN) {
        c->tokens++;
        if (c->len + ev->text_len < sizeof c->text) {
            memcpy(c->text + c->len, ev->text, ev->text_len);
            c->len += ev->text_len;
        }
    } else if (ev->type == AWQ_EV_DONE) {
        c->done++;
        snprintf(c->finish, sizeof c->finish, "%s", ev->finish_reason);
    }
}

/* ------------------------------------------------------------ cases ---- */

static void basics(void) {
    char err[AWQ_ERR_LEN] = "";
    const char *args[] = {"--socket", sock_path, NULL};
    pid_t pid = start(args);
    CHECK(pid > 0);
    if (pid <= 0) return;

    CASE("srv-1.1", "hello and ping through libawq");
    int rc;
    awq_conn *c = client(err, &rc);
    CHECK_EQ(rc, 0);
    if (!c) {
        stop(pid);
        return;
    }
    CHECK_STR(awq_info(c)->model, "fake-7b");
    CHECK_STR(awq_info(c)->server, "ipc-testserver 0.1");
    CHECK_EQ(awq_info(c)->proto_major, 1);
    CHECK_EQ(awq_info(c)->max_frame_bytes, 4194304);
    CHECK(!awq_info(c)->encrypted);
    CHECK_EQ(awq_ping(err, c), 0);
    struct stat st;
    CHECK(stat(sock_path, &st) == 0 && (st.st_mode & 0777) == 0600);

    CASE("srv-1.2", "streaming events through a callback");
    awq_gen_req req;
    awq_gen_req_init(&req);
    req.prompt = "one two three";
    req.max_tokens = 5;
    collect col = {0};
    uint32_t id;
    CHECK_EQ(awq_generate(err, c, &req, on_ev, &col, &id), 0);
    CHECK_EQ(awq_wait(err, c, id, 10000), 0);
    CHECK_EQ(col.tokens, 5);
    CHECK_EQ(col.done, 1);
    CHECK_STR(col.finish, "length");
    col.text[col.len] = 0;
    CHECK_STR(col.text, "one two threeone two");

    CASE("srv-1.3", "many concurrent requests on one connection (pull API)");
    {
        enum { N = 40 };
        uint32_t ids[N];
        int toks[N] = {0}, dones[N] = {0}, others = 0;
        req.prompt = "a b c";
        req.max_tokens = 7;
        for (int i = 0; i < N; i++) CHECK_EQ(awq_generate(err, c, &req, NULL, NULL, &ids[i]), 0);
        int ended = 0;
        while (ended < N) {
            awq_event ev;
            if (awq_next_event(err, c, 10000, &ev)) {
                fprintf(stderr, "next_event: %s\n", err);
                break;
            }
            int k = -1;
            for (int i = 0; i < N; i++)
                if (ids[i] == ev.id) k = i;
            if (k < 0) others++;
            else if (ev.type == AWQ_EV_TOKEN) toks[k]++;
            else if (ev.type == AWQ_EV_DONE) dones[k]++, ended++;
            else others++;
            awq_event_free(&ev);
        }
        int bad = others;
        for (int i = 0; i < N; i++) bad += toks[i] != 7 || dones[i] != 1;
        CHECK_EQ(bad, 0);
        CHECK_EQ(ended, N);
    }

    CASE("srv-1.4", "cancel a running request, and an unknown id");
    req.prompt = "SLOW";
    req.max_tokens = 1000;
    memset(&col, 0, sizeof col);
    CHECK_EQ(awq_generate(err, c, &req, on_ev, &col, &id), 0);
    CHECK_EQ(awq_cancel(err, c, id), 0);
    CHECK_EQ(awq_wait(err, c, id, 10000), 0);
    CHECK_STR(col.finish, "cancel");
    CHECK(col.tokens < 1000);
    CHECK_EQ(awq_cancel(err, c, 424242), AWQ_ENOTFOUND);
    CHECK_STR(err, "cancel: request 424242 is not in flight on this connection");

    CASE("srv-1.5", "synchronous calls: tokenize, detokenize, template, load, list, status, settings, metrics");
    {
        uint32_t *ids;
        size_t n;
        CHECK_EQ(awq_tokenize(err, c, "hi", 2, true, false, &ids, &n), 0);
        CHECK(n == 3 && ids[0] == 1 && ids[1] == 3 + 'h');
        char *text;
        size_t tl;
        CHECK_EQ(awq_detokenize(err, c, ids, n, false, &text, &tl), 0);
        CHECK_STR(text, "hi");
        awq_free(ids);
        awq_free(text);
        awq_message msgs[] = {{"user", "yo"}};
        CHECK_EQ(awq_template(err, c, msgs, 1, true, &text), 0);
        CHECK_STR(text, "<user>yo\n<assistant>");
        awq_free(text);
        int progress_calls = 0;
        CHECK_EQ(awq_load(err, c, "/models/fake", NULL, NULL), 0);
        (void)progress_calls;
        CHECK_EQ(awq_load(err, c, "../../etc", NULL, NULL), AWQ_EPERM);
        CHECK_STR(err, "load: path outside the model roots");
        awq_models ms;
        CHECK_EQ(awq_list(err, c, &ms), 0);
        CHECK(ms.n == 1 && strcmp(ms.models[0].name, "fake-7b") == 0 && ms.models[0].loaded);
        awq_models_free(&ms);
        awq_map st_map;
        CHECK_EQ(awq_status(err, c, &st_map), 0);
        const awq_kv *kv = awq_map_get(&st_map, "conns");
        CHECK(kv && kv->kind == AWQ_KV_INT && kv->i >= 1);
        awq_map_free(&st_map);
        CHECK_EQ(awq_settings_set(err, c, "temperature", "0.3"), 0);
        CHECK_EQ(awq_settings_get(err, c, "temperature", &st_map), 0);
        kv = awq_map_get(&st_map, "temperature");
        CHECK(kv && kv->kind == AWQ_KV_STR && strcmp(kv->s, "0.3") == 0);
        awq_map_free(&st_map);
        CHECK_EQ(awq_settings_set(err, c, "nope", "1"), AWQ_ENOTFOUND);
        CHECK_EQ(awq_metrics(err, c, &text), 0);
        CHECK_CONTAINS(text, "awqd_connections");
        awq_free(text);
        CHECK_EQ(awq_unload(err, c), 0);
        req.prompt = "FAIL";
        collect col2 = {0};
        CHECK_EQ(awq_generate(err, c, &req, NULL, NULL, &id), 0);
        awq_event ev;
        CHECK_EQ(awq_next_event(err, c, 5000, &ev), 0);
        CHECK(ev.type == AWQ_EV_ERROR && ev.code == AWQ_EINVAL && ev.id == id);
        CHECK_STR(ev.err_name, "invalid_argument");
        awq_event_free(&ev);
        (void)col2;
    }

    CASE("srv-1.6", "raw protocol: reused id, malformed message, unknown type, server-only type");
    {
        int fd = raw_connect();
        CHECK_EQ(raw_hello(fd), 0);
        ipc_msg m, r;
        ipc_msg_init(&m, IPC_T_GENERATE, 7);
        m.u.gen.prompt = ipc_cstr("SLOW");
        m.u.gen.max_tokens = 100000;
        raw_send(fd, &m);
        raw_send(fd, &m); /* same id while the first runs */
        int got_exists = 0;
        for (int i = 0; i < 50 && !got_exists; i++) {
            if (raw_recv(fd, &r)) break;
            if (r.type == IPC_T_ERROR && r.id == 7) {
                CHECK_EQ(r.u.error.code, AWQ_EEXIST);
                CHECK_STR(r.u.error.message.s, "generate: request id 7 is already in flight on this connection");
                got_exists = 1;
            }
            ipc_msg_free(&r);
        }
        CHECK(got_exists);
        /* a malformed frame: answered, and the connection keeps working */
        raw_bytes(fd, "\x05\0\0\0\x91\x01\x02\x03\x04", 9);
        const char unk[] = "\x0d\0\0\0\x82\xa1t\xa5" "dance\xa2id\x09";
        raw_bytes(fd, unk, sizeof unk - 1);
        ipc_msg_init(&m, IPC_T_DONE, 8);
        raw_send(fd, &m);
        ipc_msg_init(&m, IPC_T_PING, 99);
        raw_send(fd, &m);
        int seen = 0;
        for (int i = 0; i < 200 && seen != 15; i++) {
            if (raw_recv(fd, &r)) break;
            if (r.type == IPC_T_ERROR && r.id == 0 && r.u.error.code == AWQ_EPROTO) {
                CHECK_CONTAINS(r.u.error.message.s, "payload is not a map");
                seen |= 1;
            } else if (r.type == IPC_T_ERROR && r.id == 9) {
                CHECK_EQ(r.u.error.code, AWQ_EUNSUPPORTED);
                CHECK_STR(r.u.error.name.s, "unsupported");
                seen |= 2;
            } else if (r.type == IPC_T_ERROR && r.id == 8) {
                CHECK_CONTAINS(r.u.error.message.s, "\"done\" is a server message");
                seen |= 4;
            } else if (r.type == IPC_T_PONG && r.id == 99) {
                seen |= 8;
            }
            ipc_msg_free(&r);
        }
        CHECK_EQ(seen, 15);
        close(fd);
    }

    CASE("srv-1.7", "a 4 GiB length header: error frame, closed, server alive");
    {
        int fd = raw_connect();
        CHECK_EQ(raw_hello(fd), 0);
        raw_bytes(fd, "\xff\xff\xff\xff", 4);
        ipc_msg r;
        CHECK_EQ(raw_recv(fd, &r), 0);
        CHECK(r.type == IPC_T_ERROR && r.u.error.code == AWQ_ETOOBIG);
        CHECK_CONTAINS(r.u.error.message.s, "exceeds the maximum");
        ipc_msg_free(&r);
        CHECK_EQ(raw_recv(fd, &r), -1); /* closed */
        close(fd);
        CHECK_EQ(awq_ping(err, c), 0);
    }

    CASE("srv-1.8", "first message not hello; wrong protocol major version");
    {
        int fd = raw_connect();
        ipc_msg m, r;
        ipc_msg_init(&m, IPC_T_PING, 1);
        raw_send(fd, &m);
        CHECK_EQ(raw_recv(fd, &r), 0);
        CHECK(r.type == IPC_T_ERROR && r.u.error.code == AWQ_EPROTO);
        CHECK_STR(r.u.error.message.s, "the first message must be \"hello\"");
        ipc_msg_free(&r);
        close(fd);
        fd = raw_connect();
        ipc_msg_init(&m, IPC_T_HELLO, 0);
        m.u.hello.proto_major = 2;
        raw_send(fd, &m);
        CHECK_EQ(raw_recv(fd, &r), 0);
        CHECK(r.type == IPC_T_ERROR && r.u.error.code == AWQ_EUNSUPPORTED);
        CHECK_STR(r.u.error.message.s, "protocol version 2.0 is not supported (this server speaks 1.0)");
        ipc_msg_free(&r);
        close(fd);
    }

    CASE("srv-4.1", "a second server on a live socket is refused");
    {
        const char *a2[] = {"--socket", sock_path, NULL};
        CHECK(start(a2) < 0);
        CHECK_CONTAINS(out_text, "another server is already listening");
    }

    /* as root: a client of another uid, on a socket opened up for this test only */
    if (geteuid() == 0) {
        CASE("srv-2.2", "a client running as uid 65534 is refused (SO_PEERCRED)");
        chmod(dir, 0711);
        chmod(sock_path, 0666);
        int pp[2];
        CHECK_EQ(pipe(pp), 0);
        pid_t kid = fork();
        if (kid == 0) {
            close(pp[0]);
            if (setgid(65534) || setuid(65534)) _exit(3);
            char e2[AWQ_ERR_LEN] = "";
            int r2;
            awq_conn *c2 = client(e2, &r2);
            awq_close(c2);
            if (write(pp[1], e2, strlen(e2) + 1) < 0) _exit(4);
            _exit(r2 == AWQ_EPERM ? 0 : 1);
        }
        close(pp[1]);
        char e2[AWQ_ERR_LEN] = "";
        if (read(pp[0], e2, sizeof e2 - 1) < 0) e2[0] = 0;
        close(pp[0]);
        int st2;
        waitpid(kid, &st2, 0);
        CHECK(WIFEXITED(st2) && WEXITSTATUS(st2) == 0);
        CHECK_CONTAINS(e2, "permission denied: uid 65534 is not allowed to use this server");
        chmod(dir, 0700);
        CHECK_EQ(awq_ping(err, c), 0);
    }
    awq_close(c);
    CHECK_EQ(stop(pid), 0);
    struct stat st3;
    CHECK(lstat(sock_path, &st3) != 0); /* removed on exit */
}

static void allow_list(void) {
    CASE("srv-2.1", "a peer uid outside the allow list is refused with a clear error");
    char uid[32], err[AWQ_ERR_LEN] = "";
    snprintf(uid, sizeof uid, "%u", (unsigned)geteuid() + 4242);
    const char *args[] = {"--socket", sock_path, "--allow-uid", uid, NULL};
    pid_t pid = start(args);
    CHECK(pid > 0);
    int rc;
    awq_conn *c = client(err, &rc);
    CHECK(c == NULL);
    CHECK_EQ(rc, AWQ_EPERM);
    char want[128];
    snprintf(want, sizeof want, "permission denied: uid %u is not allowed to use this server", (unsigned)geteuid());
    CHECK_CONTAINS(err, want);
    CHECK_EQ(stop(pid), 0);
}

static void max_conns(void) {
    CASE("srv-3.1", "max_conns connections held; one more is refused; the server keeps serving");
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    int n = rl.rlim_cur >= 1100 ? 1000 : 100;
    char nbuf[16], err[AWQ_ERR_LEN] = "";
    snprintf(nbuf, sizeof nbuf, "%d", n);
    const char *args[] = {"--socket", sock_path, "--max-conns", nbuf, NULL};
    pid_t pid = start(args);
    CHECK(pid > 0);
    int *fds = calloc((size_t)n, sizeof *fds), ok = 0;
    for (int i = 0; i < n; i++) {
        fds[i] = raw_connect();
        if (fds[i] >= 0) ok++;
    }
    CHECK_EQ(ok, n);
    /* make sure the server has accepted them all: the last one says hello */
    CHECK_EQ(raw_hello(fds[n - 1]), 0);
    int rc;
    awq_conn *c = client(err, &rc);
    CHECK(c == NULL);
    CHECK_EQ(rc, AWQ_EBUSY);
    char want[64];
    snprintf(want, sizeof want, "busy: too many connections (max %d)", n);
    CHECK_CONTAINS(err, want);
    CHECK_EQ(raw_hello(fds[0]), 0); /* an existing connection still works */
    close(fds[1]);
    awq_conn *c2 = NULL;
    for (int tries = 0; tries < 50 && !c2; tries++) { /* the close reaches the server shortly */
        c2 = client(err, &rc);
        if (!c2) usleep(20000);
    }
    CHECK(c2 != NULL);
    if (c2) CHECK_EQ(awq_ping(err, c2), 0);
    awq_close(c2);
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0 && i != 1) close(fds[i]);
    free(fds);
    CHECK_EQ(stop(pid), 0);
}

static void slow_reader(void) {
    CASE("srv-3.2", "a client that stops reading a stream: server RSS stays bounded, others served");
    char err[AWQ_ERR_LEN] = "";
    const char *args[] = {"--socket", sock_path, "--out-cap", "65536", "--chunk", "4096", NULL};
    pid_t pid = start(args);
    CHECK(pid > 0);
    int fd = raw_connect();
    CHECK_EQ(raw_hello(fd), 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    ipc_msg m;
    ipc_msg_init(&m, IPC_T_GENERATE, 1);
    m.u.gen.prompt = ipc_cstr("lots of text to repeat");
    m.u.gen.max_tokens = 1000000; /* ~4 GB of output if nothing held it back */
    raw_send(fd, &m);
    usleep(500000);
    long r1 = rss_kb(pid);
    usleep(1500000);
    long r2 = rss_kb(pid);
    fprintf(stderr, "   server RSS %ld kB -> %ld kB while the client does not read\n", r1, r2);
    CHECK(r1 > 0 && r2 > 0);
    CHECK(r2 - r1 < 4096);
    int rc;
    awq_conn *c = client(err, &rc);
    CHECK_EQ(rc, 0);
    if (c) CHECK_EQ(awq_ping(err, c), 0);
    awq_close(c);
    close(fd);
    CHECK_EQ(stop(pid), 0);
}

static void path_safety(void) {
    CASE("srv-4.2", "a stale socket of ours is replaced");
    {
        int fd = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un a = {.sun_family = AF_UNIX};
        snprintf(a.sun_path, sizeof a.sun_path, "%s", sock_path);
        CHECK_EQ(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
        close(fd); /* the file stays, nobody listens */
        const char *args[] = {"--socket", sock_path, NULL};
        pid_t pid = start(args);
        CHECK(pid > 0);
        CHECK_EQ(stop(pid), 0);
    }
    CASE("srv-4.3", "a symlink or a regular file at the path is refused");
    {
        CHECK_EQ(symlink("/etc/passwd", sock_path), 0);
        const char *args[] = {"--socket", sock_path, NULL};
        CHECK(start(args) < 0);
        CHECK_CONTAINS(out_text, "is a symlink; refusing to replace it");
        unlink(sock_path);
        FILE *f = fopen(sock_path, "w");
        fclose(f);
        CHECK(start(args) < 0);
        CHECK_CONTAINS(out_text, "exists and is not a socket; refusing to replace it");
        unlink(sock_path);
    }
    CASE("srv-4.4", "a socket directory others can enter is refused");
    {
        char open_dir[256], p[300];
        snprintf(open_dir, sizeof open_dir, "%s/open", dir);
        mkdir(open_dir, 0755);
        chmod(open_dir, 0755);
        snprintf(p, sizeof p, "%s/awqd.sock", open_dir);
        const char *args[] = {"--socket", p, NULL};
        CHECK(start(args) < 0);
        CHECK_CONTAINS(out_text, "is accessible by everyone (mode 0755); chmod 700 it");
        rmdir(open_dir);
    }
}

static void encryption(void) {
    char err[AWQ_ERR_LEN] = "", k[6][300];
    const char *names[] = {"server.key", "server.pub", "client.key", "client.pub", "authorized_keys", "known_servers"};
    for (int i = 0; i < 6; i++) snprintf(k[i], sizeof k[i], "%s/%s", dir, names[i]);
    CHECK_EQ(awq_keygen(err, k[0], k[1]), 0);
    CHECK_EQ(awq_keygen(err, k[2], k[3]), 0);
    char cmd[700];
    snprintf(cmd, sizeof cmd, "cp %s %s", k[3], k[4]);
    CHECK_EQ(system(cmd), 0);

    CASE("srv-5.1", "encryption required: a plaintext client is refused");
    const char *req_args[] = {"--socket", sock_path, "--enc", "required", "--key", k[0], "--authorized", k[4], NULL};
    pid_t pid = start(req_args);
    CHECK(pid > 0);
    int rc;
    awq_conn *c = client(err, &rc);
    CHECK(c == NULL);
    CHECK_EQ(rc, AWQ_EPERM);
    CHECK_CONTAINS(err, "encryption required: this server refuses plaintext clients");
    CHECK_EQ(stop(pid), 0);

    CASE("srv-5.2", "plain and encrypted clients served at once; first use pins the key");
    const char *on_args[] = {"--socket", sock_path, "--enc", "on", "--key", k[0], "--authorized", k[4], NULL};
    pid = start(on_args);
    CHECK(pid > 0);
    awq_conn *plain = client(err, &rc);
    CHECK_EQ(rc, 0);
    awq_connect_opts eo = {.socket_path = sock_path, .encrypt = true, .key_path = k[2], .known_servers = k[5]};
    awq_conn *enc = NULL;
    CHECK_EQ(awq_connect(err, &eo, &enc), 0);
    char fp[AWQ_FP_LEN];
    CHECK_EQ(awq_key_fingerprint(err, k[1], fp), 0);
    if (enc) {
        CHECK(awq_info(enc)->encrypted);
        CHECK_STR(awq_info(enc)->fingerprint, fp);
        awq_gen_req req;
        awq_gen_req_init(&req);
        req.prompt = "secret words here";
        req.max_tokens = 3;
        collect ce = {0}, cp = {0};
        uint32_t ie, ip;
        CHECK_EQ(awq_generate(err, enc, &req, on_ev, &ce, &ie), 0);
        CHECK_EQ(awq_generate(err, plain, &req, on_ev, &cp, &ip), 0);
        CHECK_EQ(awq_wait(err, enc, ie, 10000), 0);
        CHECK_EQ(awq_wait(err, plain, ip, 10000), 0);
        ce.text[ce.len] = cp.text[cp.len] = 0;
        CHECK_STR(ce.text, "secret words here");
        CHECK_STR(cp.text, "secret words here");
        for (int i = 0; i < 3000; i++) /* across the rekey interval */
            if (awq_ping(err, enc)) {
                CHECK_EQ(i, -1);
                break;
            }
    }
    awq_close(enc);
    awq_close(plain);
    struct stat st;
    CHECK(stat(k[5], &st) == 0 && (st.st_mode & 0777) == 0600);

    CASE("srv-5.3", "a changed server key is refused with a loud error");
    {
        uint8_t other[32];
        memset(other, 7, 32);
        char hex[65], line[400];
        for (int i = 0; i < 32; i++) sprintf(hex + 2 * i, "%02x", other[i]);
        snprintf(line, sizeof line, "%s %s\n", sock_path, hex);
        FILE *f = fopen(k[5], "w");
        fputs(line, f);
        fclose(f);
        CHECK_EQ(awq_connect(err, &eo, &enc), AWQ_ECRYPTO);
        CHECK_CONTAINS(err, "WARNING: SERVER KEY CHANGED for");
        unlink(k[5]);
    }

    CASE("srv-5.4", "an unknown client key is refused by the server");
    {
        char ok2[300], op2[300];
        snprintf(ok2, sizeof ok2, "%s/stranger.key", dir);
        snprintf(op2, sizeof op2, "%s/stranger.pub", dir);
        CHECK_EQ(awq_keygen(err, ok2, op2), 0);
        awq_connect_opts so = eo;
        so.key_path = ok2;
        CHECK_EQ(awq_connect(err, &so, &enc), AWQ_EPERM);
        CHECK_CONTAINS(err, "is not in the server's authorized keys");
    }
    CHECK_EQ(stop(pid), 0);
}

int main(void) {
    bin = h_env("AWQ_BIN");
    if (!bin) SKIP("AWQ_BIN is not set (run through ctest)");
    char exe[512];
    snprintf(exe, sizeof exe, "%s/ipc-testserver", bin);
    if (access(exe, X_OK) != 0) SKIP("ipc-testserver is not built");
    signal(SIGPIPE, SIG_IGN);
    snprintf(dir, sizeof dir, "/tmp/awq-ipc-srv-XXXXXX");
    if (!mkdtemp(dir)) SKIP("cannot create a temp dir");
    snprintf(sock_path, sizeof sock_path, "%s/awqd.sock", dir);
    basics();
    allow_list();
    max_conns();
    slow_reader();
    path_safety();
    encryption();
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) { /* harmless */ }
    return h_finish();
}
