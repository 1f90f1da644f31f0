/* cmd_tok.c - `awq-run tokenize` and `awq-run detokenize`: the tokenizer from the command line,
 * byte for byte what scripts and integration tests compare against Hugging Face.
 *
 *   awq-run tokenize   (-m DIR | -t TOKENIZER_JSON) [--no-bos] (-- TEXT | -f FILE)
 *       prints {"ids":[1,22557,...]} and a newline
 *   awq-run detokenize (-m DIR | -t TOKENIZER_JSON) [--skip-special] -- ID...
 *       prints the text exactly, with no newline added
 * Exit codes: 0 ok, 1 bad input (one line "awq-run: ..." on stderr), 2 usage.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _WIN32
#include <fcntl.h>
#include <io.h>
#endif

#include "cmds.h"
#include "plat.h"
#include "tok.h"

typedef struct tok_opts {
    const char *dir;      /* -m: a model directory */
    const char *json;     /* -t: a tokenizer.json */
    const char *file;     /* -f: text from a file, "-" = stdin (tokenize) */
    bool no_bos;          /* --no-bos (tokenize) */
    bool skip_special;    /* --skip-special (detokenize) */
    int first_arg;        /* index of the first positional argument */
} tok_opts;

static void usage_tokenize(FILE *f) {
    fprintf(f, "usage: awq-run tokenize (-m DIR | -t TOKENIZER_JSON) [--no-bos] (-- TEXT | -f FILE)\n"
               "  prints {\"ids\":[...]}; BOS is added as tokenizer_config.json's add_bos_token says\n"
               "  unless --no-bos. -f - reads the text from stdin.\n");
}

static void usage_detokenize(FILE *f) {
    fprintf(f, "usage: awq-run detokenize (-m DIR | -t TOKENIZER_JSON) [--skip-special] -- ID...\n"
               "  prints the decoded text exactly, without a trailing newline.\n");
}

/* Returns 0, 2 after a usage error, or -1 after --help (exit 0). */
static int parse_opts(int argc, char **argv, bool is_tokenize, tok_opts *o) {
    memset(o, 0, sizeof *o);
    void (*usage)(FILE *) = is_tokenize ? usage_tokenize : usage_detokenize;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) {
            i++;
            break;
        }
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return -1;
        }
        if ((!strcmp(a, "-m") || !strcmp(a, "-t") || (is_tokenize && !strcmp(a, "-f")))) {
            if (i + 1 >= argc) {
                fprintf(stderr, "awq-run: %s needs a value\n", a);
                usage(stderr);
                return 2;
            }
            const char **dst = a[1] == 'm' ? &o->dir : a[1] == 't' ? &o->json : &o->file;
            *dst = argv[++i];
        } else if (is_tokenize && !strcmp(a, "--no-bos")) {
            o->no_bos = true;
        } else if (!is_tokenize && !strcmp(a, "--skip-special")) {
            o->skip_special = true;
        } else if (a[0] == '-' && a[1] && !(a[1] >= '0' && a[1] <= '9')) {
            fprintf(stderr, "awq-run: unknown option '%s'\n", a);
            usage(stderr);
            return 2;
        } else {
            break; /* positional arguments start here */
        }
    }
    o->first_arg = i;
    if (!o->dir == !o->json) {
        fprintf(stderr, "awq-run: give exactly one of -m DIR and -t TOKENIZER_JSON\n");
        usage(stderr);
        return 2;
    }
    return 0;
}

/* Load the tokenizer named by -m or -t; tokenizer_config.json beside it is used when present. */
static int load(const tok_opts *o, eng_tok **t) {
    char err[AWQ_ERR_LEN] = "";
    char json[PLAT_PATH_MAX], cfg[PLAT_PATH_MAX], dir[PLAT_PATH_MAX];
    if (o->dir) {
        snprintf(dir, sizeof dir, "%s", o->dir);
        if (plat_path_join(json, dir, "tokenizer.json")) {
            fprintf(stderr, "awq-run: path too long: %s\n", o->dir);
            return 1;
        }
    } else {
        snprintf(json, sizeof json, "%s", o->json);
        snprintf(dir, sizeof dir, "%s", o->json);
        char *slash = strrchr(dir, '/');
#ifdef _WIN32
        char *bs = strrchr(dir, '\\');
        if (bs && (!slash || bs > slash)) slash = bs;
#endif
        if (slash) {
            slash[1] = 0;
        } else {
            snprintf(dir, sizeof dir, ".");
        }
    }
    bool have_cfg = !plat_path_join(cfg, dir, "tokenizer_config.json") && plat_is_file(cfg);
    int rc = eng_tok_load(err, json, have_cfg ? cfg : NULL, t);
    if (rc) {
        fprintf(stderr, "awq-run: %s\n", err[0] ? err : awq_strerror(rc));
        return 1;
    }
    return 0;
}

/* stdout carries exact bytes: no CRLF translation on Windows. */
static void binary_stdout(void) {
#ifdef _WIN32
    _setmode(_fileno(stdout), _O_BINARY);
#else
    /* POSIX streams never translate line ends: nothing to do */
#endif
}

/* Read all of stdin into a malloc'ed buffer (up to ENG_TOK_TEXT_MAX + 1 bytes). */
static int read_stdin(char **data, size_t *len) {
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) return AWQ_ENOMEM;
    for (;;) {
        if (n == cap) {
            if (cap > ENG_TOK_TEXT_MAX) break;
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                return AWQ_ENOMEM;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, stdin);
        n += got;
        if (!got) break;
    }
    if (ferror(stdin)) {
        free(buf);
        return AWQ_EIO;
    }
    *data = buf;
    *len = n;
    return 0;
}

int cmd_tokenize(int argc, char **argv) {
    tok_opts o;
    int rc = parse_opts(argc, argv, true, &o);
    if (rc) return rc < 0 ? 0 : rc;
    int npos = argc - o.first_arg;
    if ((o.file && npos != 0) || (!o.file && npos != 1)) {
        fprintf(stderr, "awq-run: tokenize takes one TEXT after --, or -f FILE\n");
        usage_tokenize(stderr);
        return 2;
    }
    char *owned = NULL;
    const char *text = NULL;
    size_t len = 0;
    if (o.file) {
        char err[AWQ_ERR_LEN] = "";
        int r = !strcmp(o.file, "-") ? read_stdin(&owned, &len)
                                     : plat_read_file(err, o.file, ENG_TOK_TEXT_MAX, &owned, &len);
        if (r) {
            fprintf(stderr, "awq-run: %s\n", err[0] ? err : awq_strerror(r));
            return 1;
        }
        text = owned;
    } else {
        text = argv[o.first_arg];
        len = strlen(text);
    }
    eng_tok *t = NULL;
    if (load(&o, &t)) {
        free(owned);
        return 1;
    }
    char err[AWQ_ERR_LEN] = "";
    int32_t *ids = NULL;
    size_t n = 0;
    int status = 0;
    rc = eng_tok_encode(err, t, text, len, eng_tok_add_bos(t) && !o.no_bos, &ids, &n);
    if (rc) {
        fprintf(stderr, "awq-run: %s\n", err[0] ? err : awq_strerror(rc));
        status = 1;
    } else {
        awq_buf b = {0};
        int w = awq_buf_puts(&b, "{\"ids\":[");
        for (size_t i = 0; i < n && !w; i++) w = awq_buf_printf(&b, i ? ",%d" : "%d", (int)ids[i]);
        if (!w) w = awq_buf_puts(&b, "]}\n");
        if (w || fwrite(b.data, 1, b.len, stdout) != b.len || fflush(stdout)) {
            fprintf(stderr, "awq-run: cannot write the ids: %s\n", w ? awq_strerror(w) : strerror(errno));
            status = 1;
        }
        awq_buf_free(&b);
    }
    free(ids);
    eng_tok_free(t);
    free(owned);
    return status;
}

int cmd_detokenize(int argc, char **argv) {
    tok_opts o;
    int rc = parse_opts(argc, argv, false, &o);
    if (rc) return rc < 0 ? 0 : rc;
    size_t n = (size_t)(argc - o.first_arg);
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) {
        fprintf(stderr, "awq-run: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        const char *a = argv[o.first_arg + (int)i];
        char *end;
        errno = 0;
        long v = strtol(a, &end, 10);
        if (!*a || *end || errno || v < INT32_MIN || v > INT32_MAX) {
            fprintf(stderr, "awq-run: '%s' (argument %zu) is not a token id\n", a, i + 1);
            free(ids);
            return 1;
        }
        ids[i] = (int32_t)v;
    }
    eng_tok *t = NULL;
    if (load(&o, &t)) {
        free(ids);
        return 1;
    }
    char err[AWQ_ERR_LEN] = "";
    char *text = NULL;
    size_t len = 0;
    int status = 0;
    rc = eng_tok_decode(err, t, ids, n, o.skip_special, &text, &len);
    if (rc) {
        fprintf(stderr, "awq-run: %s\n", err[0] ? err : awq_strerror(rc));
        status = 1;
    } else {
        binary_stdout();
        if (fwrite(text, 1, len, stdout) != len || fflush(stdout)) {
            fprintf(stderr, "awq-run: cannot write the text: %s\n", strerror(errno));
            status = 1;
        }
    }
    free(text);
    free(ids);
    eng_tok_free(t);
    return status;
}
