/* chat.c - the interactive chat of `awq run` on a terminal.
 *
 * Input is read with fgets (no readline dependency): a line ending in '\' continues on the
 * next line, and a message that starts with """ runs until a line that ends with """. The
 * whole conversation is kept in memory and resent as messages every turn (the daemon keeps no
 * conversation state), so the model sees it; /clear forgets it. Ctrl-C while an answer streams
 * cancels that answer (awq_cancel) and keeps the chat; at the prompt it just redraws it.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define PROMPT ">>> "
#define MORE "... "

typedef struct turn {
    const char *role; /* a string literal */
    char *content;    /* owned */
} turn;

typedef struct chat {
    awq_conn *c;
    int gap_ms;
    cli_sampling s;
    char *system;     /* owned, NULL = none */
    turn *hist;
    size_t n, cap;
} chat;

static const char help_text[] =
    "Commands:\n"
    "  /set                 show the sampling settings\n"
    "  /set KEY VALUE       KEY: temperature, top_k, top_p, min_p, typical_p, repeat_penalty,\n"
    "                       seed (or 'none'), max_tokens (0: the daemon's default)\n"
    "  /system TEXT         set the system message (/system alone removes it)\n"
    "  /clear               forget the conversation\n"
    "  /bye                 leave (Ctrl-D too)\n"
    "  /help                this text\n"
    "Input: end a line with \\ to continue on the next one, or wrap a message in \"\"\" ... \"\"\".\n"
    "Ctrl-C stops the current answer.\n";

/* ------------------------------------------------------------ reading input ---- */

enum { LINE_OK = 0, LINE_EOF = 1, LINE_INTR = 2, LINE_NOMEM = 3 };

/* Read one line (without its line end) into b, NUL-terminated. */
static int read_line(awq_buf *b) {
    b->len = 0;
    char chunk[4096];
    for (;;) {
        if (cli_interrupted) { /* Ctrl-C came just before the read: the same as during it */
            cli_interrupted = 0;
            return LINE_INTR;
        }
        if (!fgets(chunk, sizeof chunk, stdin)) {
            if (ferror(stdin) && (errno == EINTR || cli_interrupted)) {
                clearerr(stdin);
                cli_interrupted = 0;
                return LINE_INTR;
            }
            if (!b->len) return LINE_EOF;
            break; /* a last line without a newline still counts */
        }
        size_t k = strlen(chunk);
        bool end = k && chunk[k - 1] == '\n';
        if (end) chunk[--k] = 0;
        if (end && k && chunk[k - 1] == '\r') chunk[--k] = 0;
        if (awq_buf_append(b, chunk, k)) return LINE_NOMEM;
        if (end) break;
    }
    if (awq_buf_append(b, "", 1)) return LINE_NOMEM;
    b->len--;
    return LINE_OK;
}

static bool ends_with(const awq_buf *b, const char *s) {
    size_t k = strlen(s);
    return b->len >= k && memcmp(b->data + b->len - k, s, k) == 0;
}

/* Read one message (one or several lines) into msg. *block is set when it came in """. */
static int read_message(awq_buf *msg, bool *block) {
    awq_buf line = {0};
    msg->len = 0;
    *block = false;
    fputs(PROMPT, stdout);
    fflush(stdout);
    int rc = read_line(&line);
    if (rc == LINE_OK && line.len >= 3 && memcmp(line.data, "\"\"\"", 3) == 0) {
        *block = true;
        /* the text after the opening quotes, up to closing ones on the same line */
        if (line.len >= 6 && ends_with(&line, "\"\"\"")) {
            rc = awq_buf_append(msg, line.data + 3, line.len - 6) ? LINE_NOMEM : LINE_OK;
        } else {
            rc = awq_buf_append(msg, line.data + 3, line.len - 3) ? LINE_NOMEM : LINE_OK;
            while (rc == LINE_OK) {
                fputs(MORE, stdout);
                fflush(stdout);
                if ((rc = read_line(&line)) != LINE_OK) break;
                bool last = ends_with(&line, "\"\"\"");
                /* """ alone on the first line opens the block without an empty first line */
                if ((msg->len && awq_buf_puts(msg, "\n")) ||
                    awq_buf_append(msg, line.data, line.len - (last ? 3 : 0)))
                    rc = LINE_NOMEM;
                if (last) break;
            }
            if (rc == LINE_EOF && msg->len) rc = LINE_OK; /* an unclosed block at the end: send it */
        }
    } else if (rc == LINE_OK) {
        if (awq_buf_append(msg, line.data, line.len)) rc = LINE_NOMEM;
        /* a trailing backslash continues the message on the next line */
        while (rc == LINE_OK && ends_with(msg, "\\")) {
            msg->data[--msg->len] = '\n';
            msg->len++;
            fputs(MORE, stdout);
            fflush(stdout);
            if ((rc = read_line(&line)) != LINE_OK) break;
            if (awq_buf_append(msg, line.data, line.len)) rc = LINE_NOMEM;
        }
        if (rc == LINE_EOF) rc = LINE_OK;
    }
    awq_buf_free(&line);
    if (rc == LINE_OK && awq_buf_append(msg, "", 1) == 0) msg->len--; /* NUL-terminate */
    else if (rc == LINE_OK) rc = LINE_NOMEM;
    return rc;
}

/* ------------------------------------------------------------ commands ---- */

static void show_settings(const chat *ch) {
    const cli_sampling *s = &ch->s;
    printf("temperature %s", s->has_temperature ? "" : "(daemon default)");
    if (s->has_temperature) printf("%g", (double)s->temperature);
    printf("\ntop_k %u\ntop_p %g\nmin_p %g\ntypical_p %g\nrepeat_penalty %g\n", s->has_top_k ? s->top_k : 0,
           s->has_top_p ? (double)s->top_p : 1.0, s->has_min_p ? (double)s->min_p : 0.0,
           s->has_typical_p ? (double)s->typical_p : 1.0, s->has_repeat ? (double)s->repeat_penalty : 1.0);
    if (s->has_seed) printf("seed %llu\n", (unsigned long long)s->seed);
    else printf("seed none\n");
    printf("max_tokens %u%s\n", s->max_tokens, s->max_tokens ? "" : " (daemon default)");
    printf("system %s\n", ch->system ? ch->system : "(none)");
}

static bool num(const char *v, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(x) || x < lo || x > hi) return false;
    *out = x;
    return true;
}

/* /set KEY VALUE. */
static void cmd_set(chat *ch, char *args) {
    char *key = strtok(args, " \t"), *val = strtok(NULL, " \t"), *extra = strtok(NULL, " \t");
    if (!key) {
        show_settings(ch);
        return;
    }
    if (!val || extra) {
        fprintf(stderr, "awq: usage: /set KEY VALUE (/help lists the keys)\n");
        return;
    }
    cli_sampling *s = &ch->s;
    double x;
    struct {
        const char *name;
        float *f;
        bool *has;
        double lo, hi;
    } fl[] = {{"temperature", &s->temperature, &s->has_temperature, 0, 100},
              {"top_p", &s->top_p, &s->has_top_p, 0, 1},
              {"min_p", &s->min_p, &s->has_min_p, 0, 1},
              {"typical_p", &s->typical_p, &s->has_typical_p, 0, 1},
              {"repeat_penalty", &s->repeat_penalty, &s->has_repeat, 0, 100}};
    for (size_t i = 0; i < sizeof fl / sizeof fl[0]; i++) {
        if (strcmp(key, fl[i].name)) continue;
        if (!num(val, fl[i].lo, fl[i].hi, &x)) {
            fprintf(stderr, "awq: /set %s '%s': expected a number in [%g, %g]\n", key, val, fl[i].lo, fl[i].hi);
            return;
        }
        *fl[i].f = (float)x;
        *fl[i].has = true;
        printf("Set %s to %g.\n", key, x);
        return;
    }
    if (!strcmp(key, "top_k") || !strcmp(key, "max_tokens")) {
        bool k = key[0] == 't';
        if (!num(val, 0, k ? 1e9 : (double)(1 << 20), &x) || x != floor(x)) {
            fprintf(stderr, "awq: /set %s '%s': expected an integer in [0, %d]\n", key, val, k ? 1000000000 : 1 << 20);
            return;
        }
        if (k) s->top_k = (uint32_t)x, s->has_top_k = true;
        else s->max_tokens = (uint32_t)x;
        printf("Set %s to %u.\n", key, (uint32_t)x);
        return;
    }
    if (!strcmp(key, "seed")) {
        if (!strcmp(val, "none")) {
            s->has_seed = false;
            printf("Seed removed: sampling is random again.\n");
            return;
        }
        char *end;
        errno = 0;
        unsigned long long v = strtoull(val, &end, 10);
        if (errno || end == val || *end || val[0] == '-') {
            fprintf(stderr, "awq: /set seed '%s': expected an unsigned integer or 'none'\n", val);
            return;
        }
        s->seed = v;
        s->has_seed = true;
        printf("Set seed to %llu.\n", v);
        return;
    }
    fprintf(stderr, "awq: /set: unknown key '%s' (/help lists the keys)\n", key);
}

static void clear_history(chat *ch) {
    for (size_t i = 0; i < ch->n; i++) free(ch->hist[i].content);
    ch->n = 0;
}

/* Handle a /command. Returns 1 to leave the chat, 0 to go on, or AWQ_ENOMEM. */
static int command(chat *ch, char *line) {
    char *name = line + 1, *args = name + strcspn(name, " \t");
    if (*args) *args++ = 0;
    args += strspn(args, " \t");
    if (!strcmp(name, "bye") || !strcmp(name, "exit") || !strcmp(name, "quit")) return 1;
    if (!strcmp(name, "help") || !strcmp(name, "?")) {
        fputs(help_text, stdout);
    } else if (!strcmp(name, "clear")) {
        clear_history(ch);
        printf("Cleared the conversation.\n");
    } else if (!strcmp(name, "system")) {
        free(ch->system);
        ch->system = NULL;
        if (*args) {
            if (!(ch->system = malloc(strlen(args) + 1))) return AWQ_ENOMEM;
            strcpy(ch->system, args);
            printf("Set the system message.\n");
        } else {
            printf("Removed the system message.\n");
        }
    } else if (!strcmp(name, "set")) {
        cmd_set(ch, args);
    } else {
        fprintf(stderr, "awq: unknown command '/%s' (/help lists the commands)\n", name);
    }
    return 0;
}

/* ------------------------------------------------------------ one turn ---- */

static int push(chat *ch, const char *role, const char *text, size_t len) {
    if (ch->n == ch->cap) {
        size_t cap = ch->cap ? ch->cap * 2 : 16;
        turn *h = realloc(ch->hist, cap * sizeof *h);
        if (!h) return AWQ_ENOMEM;
        ch->hist = h;
        ch->cap = cap;
    }
    char *s = malloc(len + 1);
    if (!s) return AWQ_ENOMEM;
    memcpy(s, text, len);
    s[len] = 0;
    ch->hist[ch->n++] = (turn){role, s};
    return 0;
}

/* Send the conversation plus the user's new message; stream the answer. Returns an exit code
 * of the turn: OK or CANCEL keep both messages in the history, FAILED keeps neither. */
static int turn_once(chat *ch, const char *user, size_t len) {
    size_t n = ch->n + 1 + (ch->system != NULL);
    awq_message *msgs = malloc(n * sizeof *msgs);
    if (!msgs) return cli_fail(AWQ_ENOMEM, "out of memory");
    size_t k = 0;
    if (ch->system) msgs[k++] = (awq_message){"system", ch->system};
    for (size_t i = 0; i < ch->n; i++) msgs[k++] = (awq_message){ch->hist[i].role, ch->hist[i].content};
    msgs[k++] = (awq_message){"user", user};
    awq_gen_req req;
    awq_gen_req_init(&req);
    cli_sampling_apply(&ch->s, &req);
    req.messages = msgs;
    req.n_messages = k;
    cli_result res;
    memset(&res, 0, sizeof res);
    cli_interrupted = 0;
    int rc = cli_stream(ch->c, &req, true, ch->gap_ms, &res);
    free(msgs);
    if (rc == CLI_EXIT_OK || rc == CLI_EXIT_CANCEL) {
        fputs(rc == CLI_EXIT_CANCEL ? "\n(answer stopped)\n" : "\n", stdout);
        /* a stopped answer stays: the model should see what it already said */
        if (push(ch, "user", user, len) ||
            push(ch, "assistant", res.text.data ? res.text.data : "", res.text.len))
            rc = cli_fail(AWQ_ENOMEM, "out of memory");
    }
    cli_result_free(&res);
    return rc;
}

int cli_chat(cli_opts *g, awq_conn *c, const cli_sampling *sampling, const char *system) {
    chat ch;
    memset(&ch, 0, sizeof ch);
    ch.c = c;
    ch.gap_ms = g->timeout_ms;
    ch.s = *sampling;
    int rc = CLI_EXIT_OK;
    if (system && !(ch.system = malloc(strlen(system) + 1))) return cli_fail(AWQ_ENOMEM, "out of memory");
    if (system) strcpy(ch.system, system);
    const awq_server_info *info = awq_info(c);
    printf("awq chat with %s (model: %s). /help for commands, /bye to leave.\n", info->server,
           info->model && info->model[0] ? info->model : "none loaded");
    awq_buf msg = {0};
    for (;;) {
        bool block;
        int r = read_message(&msg, &block);
        if (r == LINE_EOF) {
            fputc('\n', stdout);
            break;
        }
        if (r == LINE_INTR) {
            fputs("\n(Ctrl-C stops an answer; /bye or Ctrl-D leaves)\n", stdout);
            continue;
        }
        if (r == LINE_NOMEM) {
            rc = cli_fail(AWQ_ENOMEM, "out of memory");
            break;
        }
        if (!msg.len) continue;
        if (!block && msg.data[0] == '/') {
            int cr = command(&ch, msg.data);
            if (cr == 1) break;
            if (cr) {
                rc = cli_fail(cr, "out of memory");
                break;
            }
            continue;
        }
        int t = turn_once(&ch, msg.data, msg.len);
        if (t == CLI_EXIT_FAILED) {
            /* the error was printed; the chat goes on unless the connection itself is gone */
            char err[AWQ_ERR_LEN] = "";
            int p = awq_ping(err, c);
            if (p) {
                rc = cli_fail(p, err);
                break;
            }
        }
    }
    awq_buf_free(&msg);
    clear_history(&ch);
    free(ch.hist);
    free(ch.system);
    return rc;
}
