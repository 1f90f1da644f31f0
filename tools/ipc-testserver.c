/* ipc-testserver.c - TEST TOOL, not the daemon: an ipc/ server with a fake handler, used by the
 * IPC tests and bench/ipc_bench. generate streams fake tokens (the words of the prompt, or of
 * the last chat message, over and over) from a producer thread through ipc_server_send, honours
 * cancel and pause; tokenize/detokenize map bytes to ids; the other requests get plausible
 * answers. Nothing here touches a model.
 *
 * Usage: ipc-testserver --socket PATH [--enc off|on|required --key FILE --authorized FILE]
 *        [--max-conns N] [--max-inflight N] [--out-cap BYTES] [--allow-uid UID]...
 *        [--token-delay-us N] [--chunk BYTES]
 * Prints "listening on PATH" when ready; SIGTERM/SIGINT or a "shutdown" request stop it.
 * Special prompts: "FAIL" -> error AWQ_EINVAL; "SLOW" -> 20 ms between tokens.
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plat.h"
#include "server.h"

typedef struct stream {
    struct stream *next;
    uint64_t conn;
    uint32_t id, sent, max;
    bool cancel, slow;
    char *text;   /* the source words */
    size_t pos;
} stream;

static struct {
    ipc_server *srv;
    plat_mutex mu;
    plat_cond cv;
    stream *streams;
    uint64_t paused[1024];
    size_t n_paused;
    bool quit;
    unsigned delay_us;
    size_t chunk;
    char setting_value[256];
} g;

static void on_stop(int sig) {
    (void)sig;
    if (g.srv) ipc_server_stop(g.srv);
}

static bool is_paused(uint64_t conn) {
    for (size_t i = 0; i < g.n_paused; i++)
        if (g.paused[i] == conn) return true;
    return false;
}

static void send_done(uint64_t conn, uint32_t id, ipc_finish f, uint32_t n) {
    ipc_msg m;
    ipc_msg_init(&m, IPC_T_DONE, id);
    m.u.done.finish = f;
    m.u.done.stats.prompt_tokens = 3;
    m.u.done.stats.gen_tokens = n;
    m.u.done.stats.total_ms = 1.5f;
    if (ipc_server_send(g.srv, conn, &m)) { /* the connection is gone: nothing to tell */ }
}

/* The producer: one token per stream per round, skipping paused connections. */
static void *producer(void *arg) {
    (void)arg;
    plat_mutex_lock(&g.mu);
    while (!g.quit) {
        bool any = false, slow = false, stalled = false;
        for (stream **pp = &g.streams; *pp;) {
            stream *s = *pp;
            if (s->cancel || s->sent >= s->max) {
                send_done(s->conn, s->id, s->cancel ? IPC_FINISH_CANCEL : IPC_FINISH_LENGTH, s->sent);
                *pp = s->next;
                free(s->text);
                free(s);
                continue;
            }
            pp = &s->next;
            if (is_paused(s->conn)) continue;
            any = true;
            slow |= s->slow;
            /* the next word (with its leading space), or a chunk of the text in --chunk mode */
            size_t len = strlen(s->text), a = s->pos % (len ? len : 1), b = a;
            char piece[65536];
            if (g.chunk) {
                size_t k = g.chunk < sizeof piece - 1 ? g.chunk : sizeof piece - 1;
                for (size_t i = 0; i < k; i++) piece[i] = len ? s->text[(a + i) % len] : 'x';
                piece[k] = 0;
                s->pos += k;
            } else {
                while (b < len && s->text[b] == ' ') b++;
                while (b < len && s->text[b] != ' ') b++;
                if (b == a) b = len;
                snprintf(piece, sizeof piece, "%.*s", (int)(b - a), s->text + a);
                s->pos = b >= len ? 0 : b;
            }
            uint32_t tid = 100 + s->sent;
            ipc_msg m;
            ipc_msg_init(&m, IPC_T_TOKEN, s->id);
            m.u.token.text = ipc_cstr(piece);
            m.u.token.ids = &tid;
            m.u.token.n_ids = 1;
            int rc = ipc_server_send(g.srv, s->conn, &m);
            if (rc == AWQ_EAGAIN) { /* backlog full: hold this stream, try again next round */
                s->pos = a;
                stalled = true;
                continue;
            }
            if (rc) s->cancel = true;
            s->sent++;
        }
        if (!g.streams) {
            plat_cond_wait(&g.cv, &g.mu);
        } else if (!any || slow || stalled || g.delay_us) {
            unsigned ms = slow ? 20 : !any ? 5 : stalled ? 1 : (g.delay_us + 999) / 1000;
            plat_cond_timedwait(&g.cv, &g.mu, ms);
        }
    }
    plat_mutex_unlock(&g.mu);
    return NULL;
}

static void reply(uint64_t conn, ipc_msg *m) {
    if (ipc_server_send(g.srv, conn, m)) { /* gone */ }
}

static void reply_error(uint64_t conn, uint32_t id, int code, const char *text) {
    ipc_msg m;
    ipc_msg_init(&m, IPC_T_ERROR, id);
    m.u.error.code = code;
    m.u.error.message = ipc_cstr(text);
    reply(conn, &m);
}

static void on_request(void *user, uint64_t conn, const ipc_msg *r) {
    (void)user;
    ipc_msg m;
    switch (r->type) {
    case IPC_T_GENERATE: {
        const ipc_gen *gr = &r->u.gen;
        const char *src = gr->prompt.s ? gr->prompt.s
                          : gr->n_messages ? gr->messages[gr->n_messages - 1].content.s : "";
        if (strcmp(src, "FAIL") == 0) {
            reply_error(conn, r->id, AWQ_EINVAL, "generate: the test server was asked to fail");
            return;
        }
        stream *s = calloc(1, sizeof *s);
        if (!s || !(s->text = malloc(strlen(src) + 1))) {
            free(s);
            reply_error(conn, r->id, AWQ_ENOMEM, "out of memory");
            return;
        }
        strcpy(s->text, src);
        s->conn = conn;
        s->id = r->id;
        s->max = gr->max_tokens ? gr->max_tokens : 16;
        s->slow = strcmp(src, "SLOW") == 0;
        plat_mutex_lock(&g.mu);
        s->next = g.streams;
        g.streams = s;
        plat_cond_signal(&g.cv);
        plat_mutex_unlock(&g.mu);
        return;
    }
    case IPC_T_CANCEL:
        plat_mutex_lock(&g.mu);
        for (stream *s = g.streams; s; s = s->next)
            if (s->conn == conn && s->id == r->u.target) s->cancel = true;
        plat_cond_signal(&g.cv);
        plat_mutex_unlock(&g.mu);
        return;
    case IPC_T_TOKENIZE: {
        uint32_t *ids = malloc(((size_t)r->u.tokenize.text.len + 1) * sizeof *ids);
        if (!ids) {
            reply_error(conn, r->id, AWQ_ENOMEM, "out of memory");
            return;
        }
        uint32_t n = 0;
        if (r->u.tokenize.add_bos) ids[n++] = 1;
        for (uint32_t i = 0; i < r->u.tokenize.text.len; i++) ids[n++] = 3 + (uint8_t)r->u.tokenize.text.s[i];
        ipc_msg_init(&m, IPC_T_TOKENIZE_R, r->id);
        m.u.ids.ids = ids;
        m.u.ids.n_ids = n;
        reply(conn, &m);
        free(ids);
        return;
    }
    case IPC_T_DETOKENIZE: {
        char *t = malloc((size_t)r->u.ids.n_ids + 1);
        uint32_t n = 0;
        if (!t) {
            reply_error(conn, r->id, AWQ_ENOMEM, "out of memory");
            return;
        }
        for (uint32_t i = 0; i < r->u.ids.n_ids; i++)
            if (r->u.ids.ids[i] >= 3 && r->u.ids.ids[i] < 259) t[n++] = (char)(r->u.ids.ids[i] - 3);
        t[n] = 0;
        ipc_msg_init(&m, IPC_T_DETOKENIZE_R, r->id);
        m.u.text.s = t;
        m.u.text.len = n;
        reply(conn, &m);
        free(t);
        return;
    }
    case IPC_T_TEMPLATE: {
        awq_buf b = {0};
        int rc = 0;
        for (uint32_t i = 0; i < r->u.tmpl.n_messages && !rc; i++)
            rc = awq_buf_printf(&b, "<%s>%s\n", r->u.tmpl.messages[i].role.s, r->u.tmpl.messages[i].content.s);
        if (!rc && r->u.tmpl.add_generation_prompt) rc = awq_buf_puts(&b, "<assistant>");
        ipc_msg_init(&m, IPC_T_TEMPLATE_R, r->id);
        m.u.text.s = b.data ? b.data : "";
        m.u.text.len = (uint32_t)b.len;
        if (rc) reply_error(conn, r->id, rc, "out of memory");
        else reply(conn, &m);
        awq_buf_free(&b);
        return;
    }
    case IPC_T_LOAD:
        if (strstr(r->u.text.s, "..")) {
            reply_error(conn, r->id, AWQ_EPERM, "load: path outside the model roots");
            return;
        }
        for (int st = IPC_STAGE_MAPPED; st <= IPC_STAGE_READY; st++) {
            ipc_msg_init(&m, IPC_T_PROGRESS, r->id);
            m.u.progress.stage = (ipc_stage)st;
            m.u.progress.pct = 25.0f * (float)(st + 1);
            reply(conn, &m);
        }
        ipc_msg_init(&m, IPC_T_OK, r->id);
        reply(conn, &m);
        return;
    case IPC_T_LIST: {
        ipc_model_info mi = {ipc_cstr("fake-7b"), ipc_cstr("/models/fake-7b"), 123456789, true};
        ipc_msg_init(&m, IPC_T_LIST_R, r->id);
        m.u.models.models = &mi;
        m.u.models.n_models = 1;
        reply(conn, &m);
        return;
    }
    case IPC_T_STATUS: {
        ipc_kv kv[3] = {{.key = ipc_cstr("model"), .kind = IPC_KV_STR, .s = ipc_cstr("fake-7b")},
                        {.key = ipc_cstr("conns"), .kind = IPC_KV_INT, .i = ipc_server_conn_count(g.srv)},
                        {.key = ipc_cstr("test_server"), .kind = IPC_KV_BOOL, .b = true}};
        ipc_msg_init(&m, IPC_T_STATUS_R, r->id);
        m.u.kvs.kv = kv;
        m.u.kvs.n_kv = 3;
        reply(conn, &m);
        return;
    }
    case IPC_T_SETTINGS_GET: {
        if (r->u.setting.key.s && strcmp(r->u.setting.key.s, "temperature") != 0) {
            reply_error(conn, r->id, AWQ_ENOTFOUND, "settings_get: unknown key");
            return;
        }
        ipc_kv kv = {.key = ipc_cstr("temperature"), .kind = IPC_KV_STR, .s = ipc_cstr(g.setting_value)};
        ipc_msg_init(&m, IPC_T_SETTINGS_R, r->id);
        m.u.kvs.kv = &kv;
        m.u.kvs.n_kv = 1;
        reply(conn, &m);
        return;
    }
    case IPC_T_SETTINGS_SET:
        if (strcmp(r->u.setting.key.s, "temperature") != 0) {
            reply_error(conn, r->id, AWQ_ENOTFOUND, "settings_set: unknown key");
            return;
        }
        snprintf(g.setting_value, sizeof g.setting_value, "%s", r->u.setting.value.s);
        ipc_msg_init(&m, IPC_T_OK, r->id);
        reply(conn, &m);
        return;
    case IPC_T_METRICS: {
        char t[256];
        snprintf(t, sizeof t, "# TYPE awqd_connections gauge\nawqd_connections %u\n", ipc_server_conn_count(g.srv));
        ipc_msg_init(&m, IPC_T_METRICS_R, r->id);
        m.u.text = ipc_cstr(t);
        reply(conn, &m);
        return;
    }
    case IPC_T_UNLOAD:
    case IPC_T_SHUTDOWN:
        ipc_msg_init(&m, IPC_T_OK, r->id);
        reply(conn, &m);
        if (r->type == IPC_T_SHUTDOWN) ipc_server_stop(g.srv);
        return;
    default:
        reply_error(conn, r->id, AWQ_EUNSUPPORTED, "not supported by the test server");
    }
}

static void on_pause(void *user, uint64_t conn, bool paused) {
    (void)user;
    plat_mutex_lock(&g.mu);
    if (paused && g.n_paused < 1024) g.paused[g.n_paused++] = conn;
    for (size_t i = 0; !paused && i < g.n_paused; i++)
        if (g.paused[i] == conn) g.paused[i] = g.paused[--g.n_paused];
    plat_cond_signal(&g.cv);
    plat_mutex_unlock(&g.mu);
}

static void on_close(void *user, uint64_t conn) {
    on_pause(user, conn, false);
    plat_mutex_lock(&g.mu);
    for (stream *s = g.streams; s; s = s->next)
        if (s->conn == conn) s->cancel = true;
    plat_mutex_unlock(&g.mu);
}

static int on_hello(void *user, const ipc_conn_info *ci, const ipc_msg *hello, ipc_msg *rep) {
    (void)user;
    (void)ci;
    (void)hello;
    rep->u.hello.model = ipc_cstr("fake-7b");
    rep->u.hello.server = ipc_cstr("ipc-testserver 0.1");
    return 0;
}

int main(int argc, char **argv) {
    ipc_server_opts o = {.listen_fd = -1, .group = -1};
    uint32_t uids[16];
    size_t nu = 0;
    snprintf(g.setting_value, sizeof g.setting_value, "0.7");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "ipc-testserver: %s needs a value\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--socket")) o.path = v;
        else if (!strcmp(a, "--enc")) o.enc = !strcmp(v, "on") ? IPC_ENC_ON : !strcmp(v, "required") ? IPC_ENC_REQUIRED : IPC_ENC_OFF;
        else if (!strcmp(a, "--key")) o.key_path = v;
        else if (!strcmp(a, "--authorized")) o.authorized_keys = v;
        else if (!strcmp(a, "--max-conns")) o.max_conns = (uint32_t)atol(v);
        else if (!strcmp(a, "--max-inflight")) o.max_inflight = (uint32_t)atol(v);
        else if (!strcmp(a, "--out-cap")) o.out_cap = (size_t)atol(v);
        else if (!strcmp(a, "--allow-uid") && nu < 16) uids[nu++] = (uint32_t)atol(v);
        else if (!strcmp(a, "--token-delay-us")) g.delay_us = (unsigned)atol(v);
        else if (!strcmp(a, "--chunk")) g.chunk = (size_t)atol(v);
        else {
            fprintf(stderr, "ipc-testserver: unknown option %s\n", a);
            return 2;
        }
    }
    o.allow_uids = uids;
    o.n_allow_uids = nu;
    o.version = "ipc-testserver 0.1";
    o.cb.on_request = on_request;
    o.cb.on_pause = on_pause;
    o.cb.on_close = on_close;
    o.cb.on_hello = on_hello;
    plat_mutex_init(&g.mu);
    plat_cond_init(&g.cv);
    char err[AWQ_ERR_LEN] = "";
    g.srv = ipc_server_create(err, &o);
    if (!g.srv) {
        fprintf(stderr, "ipc-testserver: %s\n", err);
        return 1;
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    plat_thread th;
    if (plat_thread_create(&th, producer, NULL)) {
        fprintf(stderr, "ipc-testserver: cannot start the producer thread\n");
        return 1;
    }
    printf("ready: listening on %s\n", ipc_server_path(g.srv));
    fflush(stdout);
    int rc = ipc_server_run(err, g.srv);
    plat_mutex_lock(&g.mu);
    g.quit = true;
    plat_cond_signal(&g.cv);
    plat_mutex_unlock(&g.mu);
    plat_thread_join(&th);
    while (g.streams) {
        stream *s = g.streams;
        g.streams = s->next;
        free(s->text);
        free(s);
    }
    ipc_server_free(g.srv);
    if (rc) fprintf(stderr, "ipc-testserver: %s\n", err);
    return rc ? 1 : 0;
}
