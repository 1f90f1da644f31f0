/* cmd_tok.c - `awq tokenize`, `awq detokenize`, `awq template` (the daemon's tokenizer and
 * chat template, as awq-run tokenize/detokenize/template print them) and `awq keygen`. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "plat.h"

/* Text output: exact bytes, as awq-run prints them; a newline only for a person at a terminal. */
static int emit_text(const cli_opts *g, const char *text, size_t len) {
    awq_buf b = {0};
    int e;
    if (g->json) {
        e = awq_buf_puts(&b, "{\"text\":");
        if (!e) e = awq_buf_json_str(&b, text, len);
        if (!e) e = awq_buf_puts(&b, "}\n");
    } else {
        e = awq_buf_append(&b, text, len);
        if (!e && cli_isatty(stdout)) e = awq_buf_puts(&b, "\n");
    }
    return cli_emit(&b, e);
}

/* ------------------------------------------------------------ tokenize ---- */

static const cli_cmd_info tokenize_info = {
    "tokenize",
    "usage: awq [GLOBAL OPTIONS] tokenize [--no-bos] [--no-special] [--] [TEXT | -]\n"
    "  Tokenize TEXT (or stdin, without TEXT or with -) with the loaded model's tokenizer and\n"
    "  print {\"ids\":[...]}, as `awq-run tokenize` does.\n"
    "  --no-bos       do not add the BOS token\n"
    "  --no-special   do not accept special-token text such as \"</s>\" in TEXT (the daemon\n"
    "                 refuses such text then)\n",
};

int cli_cmd_tokenize(cli_opts *g, int argc, char **argv) {
    bool no_bos = false, no_special = false;
    const cli_flag flags[] = {{"--no-bos", NULL, CLI_F_BOOL, &no_bos, NULL, 0, 0},
                              {"--no-special", NULL, CLI_F_BOOL, &no_special, NULL, 0, 0}};
    int n_pos, rc = cli_parse(&tokenize_info, g, argc, argv, flags, 2, &n_pos);
    if (rc) return rc < 0 ? CLI_EXIT_OK : rc;
    if (n_pos > 1) return cli_usage_err(&tokenize_info, "expected one TEXT, got %d arguments (quote it)", n_pos);
    char err[AWQ_ERR_LEN] = "", *input = NULL;
    const char *text;
    size_t len;
    if (n_pos == 1 && strcmp(argv[1], "-") != 0) {
        text = argv[1];
        len = strlen(text);
    } else {
        if ((rc = cli_read_all(err, stdin, "stdin", &input, &len))) return cli_fail(rc, err);
        text = input;
    }
    awq_conn *c;
    if ((rc = cli_connect(g, 0, &c))) {
        free(input);
        return rc;
    }
    uint32_t *ids = NULL;
    size_t n = 0;
    rc = awq_tokenize(err, c, text, len, !no_bos, !no_special, &ids, &n);
    if (rc) rc = cli_fail(rc, err);
    else {
        awq_buf b = {0};
        int e = awq_buf_puts(&b, "{\"ids\":");
        if (!e) e = cli_json_ids(&b, ids, n);
        if (!e) e = awq_buf_puts(&b, "}\n");
        rc = cli_emit(&b, e);
    }
    awq_free(ids);
    free(input);
    awq_close(c);
    return rc;
}

/* ------------------------------------------------------------ detokenize ---- */

static const cli_cmd_info detokenize_info = {
    "detokenize",
    "usage: awq [GLOBAL OPTIONS] detokenize [--skip-special] ID...\n"
    "  Decode token ids with the loaded model's tokenizer and print the text exactly (a newline\n"
    "  is added only on a terminal; --json prints {\"text\":\"...\"}).\n"
    "  --skip-special   drop special tokens such as <s>\n",
};

int cli_cmd_detokenize(cli_opts *g, int argc, char **argv) {
    bool skip = false;
    const cli_flag flags[] = {{"--skip-special", NULL, CLI_F_BOOL, &skip, NULL, 0, 0}};
    int n_pos, rc = cli_parse(&detokenize_info, g, argc, argv, flags, 1, &n_pos);
    if (rc) return rc < 0 ? CLI_EXIT_OK : rc;
    if (n_pos == 0) return cli_usage_err(&detokenize_info, "no token ids given");
    uint32_t *ids = malloc((size_t)n_pos * sizeof *ids);
    if (!ids) return cli_fail(AWQ_ENOMEM, "out of memory");
    for (int i = 0; i < n_pos; i++) {
        const char *a = argv[1 + i];
        char *end;
        errno = 0;
        unsigned long long v = strtoull(a, &end, 10);
        if (errno || end == a || *end || a[0] == '-' || a[0] == '+' || v > UINT32_MAX) {
            free(ids);
            return cli_usage_err(&detokenize_info, "argument %d '%s' is not a token id (an integer in [0, %u])",
                                 i + 1, a, UINT32_MAX);
        }
        ids[i] = (uint32_t)v;
    }
    awq_conn *c;
    if ((rc = cli_connect(g, 0, &c))) {
        free(ids);
        return rc;
    }
    char err[AWQ_ERR_LEN] = "", *text = NULL;
    size_t len = 0;
    rc = awq_detokenize(err, c, ids, (size_t)n_pos, skip, &text, &len);
    rc = rc ? cli_fail(rc, err) : emit_text(g, text, len);
    awq_free(text);
    free(ids);
    awq_close(c);
    return rc;
}

/* ------------------------------------------------------------ template ---- */

static const cli_cmd_info template_info = {
    "template",
    "usage: awq [GLOBAL OPTIONS] template [--no-generation-prompt] [FILE | -] < messages.json\n"
    "  Render chat messages with the loaded model's chat template and print the text exactly.\n"
    "  The input (FILE, or stdin) is a JSON array of {\"role\":..., \"content\":...} objects, or\n"
    "  an object with such a \"messages\" array.\n"
    "  --no-generation-prompt   do not end with the assistant's turn opener\n",
};

/* The line and column of byte off in text, for messages about the input. */
static void line_col(const char *text, size_t off, int *line, int *col) {
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') ++*line, *col = 1;
        else ++*col;
    }
}

/* Parse the messages; on error print "awq template: NAME: ..." and return CLI_EXIT_USAGE.
 * The messages borrow strings from *root (free with cJSON_Delete). */
static int parse_messages(const char *name, const char *text, size_t len, cJSON **root, awq_message **msgs,
                          size_t *n) {
    const char *end = NULL;
    *msgs = NULL;
    *n = 0;
    *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!*root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= text && at <= text + len ? (size_t)(at - text) : 0;
        int line, col;
        line_col(text, off, &line, &col);
        return cli_usage_err(&template_info, "%s: invalid JSON at line %d, column %d", name, line, col);
    }
    for (const char *p = end; p && p < text + len; p++)
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') {
            int line, col;
            line_col(text, (size_t)(p - text), &line, &col);
            cJSON_Delete(*root);
            *root = NULL;
            return cli_usage_err(&template_info, "%s: unexpected text after the JSON at line %d, column %d", name,
                                 line, col);
        }
    const cJSON *arr = *root;
    if (cJSON_IsObject(arr)) arr = cJSON_GetObjectItemCaseSensitive(arr, "messages");
    const char *why = NULL;
    int idx = 0;
    if (!cJSON_IsArray(arr)) why = "expected an array of messages, or an object with a \"messages\" array";
    int count = why ? 0 : cJSON_GetArraySize(arr);
    if (!why && count == 0) why = "no messages";
    if (!why && !(*msgs = calloc((size_t)count, sizeof **msgs))) {
        cJSON_Delete(*root);
        *root = NULL;
        return cli_fail(AWQ_ENOMEM, "out of memory");
    }
    const cJSON *m;
    if (!why) {
        cJSON_ArrayForEach(m, arr) {
            const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
            const cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
            if (!cJSON_IsObject(m)) why = "is not an object";
            else if (!cJSON_IsString(role)) why = "needs a string \"role\"";
            else if (!cJSON_IsString(content)) why = "needs a string \"content\"";
            if (why) break;
            (*msgs)[idx++] = (awq_message){role->valuestring, content->valuestring};
        }
    }
    if (why) {
        int rc = idx < count && *msgs ? cli_usage_err(&template_info, "%s: message %d %s", name, idx + 1, why)
                                      : cli_usage_err(&template_info, "%s: %s", name, why);
        free(*msgs);
        *msgs = NULL;
        cJSON_Delete(*root);
        *root = NULL;
        return rc;
    }
    *n = (size_t)count;
    return 0;
}

int cli_cmd_template(cli_opts *g, int argc, char **argv) {
    bool no_gen = false;
    const cli_flag flags[] = {{"--no-generation-prompt", NULL, CLI_F_BOOL, &no_gen, NULL, 0, 0}};
    int n_pos, rc = cli_parse(&template_info, g, argc, argv, flags, 1, &n_pos);
    if (rc) return rc < 0 ? CLI_EXIT_OK : rc;
    if (n_pos > 1) return cli_usage_err(&template_info, "expected at most one FILE");
    char err[AWQ_ERR_LEN] = "", *input = NULL;
    size_t len = 0;
    const char *name = "stdin";
    if (n_pos == 1 && strcmp(argv[1], "-") != 0) {
        name = argv[1];
        FILE *f = fopen(name, "rb");
        if (!f) return cli_usage_err(&template_info, "%s: %s", name, strerror(errno));
        rc = cli_read_all(err, f, name, &input, &len);
        fclose(f);
    } else {
        rc = cli_read_all(err, stdin, name, &input, &len);
    }
    if (rc) return cli_fail(rc, err);
    cJSON *root;
    awq_message *msgs;
    size_t n;
    if ((rc = parse_messages(name, input, len, &root, &msgs, &n))) {
        free(input);
        return rc;
    }
    awq_conn *c = NULL;
    char *text = NULL;
    if (!(rc = cli_connect(g, 0, &c))) {
        rc = awq_template(err, c, msgs, n, !no_gen, &text);
        rc = rc ? cli_fail(rc, err) : emit_text(g, text, strlen(text));
    }
    awq_free(text);
    awq_close(c);
    free(msgs);
    cJSON_Delete(root);
    free(input);
    return rc;
}

/* ------------------------------------------------------------ keygen ---- */

static const cli_cmd_info keygen_info = {
    "keygen",
    "usage: awq [GLOBAL OPTIONS] keygen [--out DIR]\n"
    "  Make the client's X25519 key pair for encrypted connections: DIR/client.key (mode 0600)\n"
    "  and DIR/client.pub, and print the public key's fingerprint (add client.pub to the\n"
    "  daemon's authorized_keys). Existing files are never overwritten.\n"
    "  --out DIR   where to write them (default: $XDG_CONFIG_HOME/awqd or ~/.config/awqd)\n",
};

int cli_cmd_keygen(cli_opts *g, int argc, char **argv) {
    const char *out = NULL;
    const cli_flag flags[] = {{"--out", "-o", CLI_F_STR, &out, NULL, 0, 0}};
    int n_pos, rc = cli_parse(&keygen_info, g, argc, argv, flags, 1, &n_pos);
    if (rc) return rc < 0 ? CLI_EXIT_OK : rc;
    if (n_pos) return cli_usage_err(&keygen_info, "unexpected argument '%s'", argv[1]);
    char err[AWQ_ERR_LEN] = "", dir[CLI_PATH_MAX], key[PLAT_PATH_MAX], pub[PLAT_PATH_MAX], fp[AWQ_FP_LEN];
    if (out) snprintf(dir, sizeof dir, "%s", out);
    else if ((rc = cli_user_config_dir(err, dir))) return cli_fail(rc, err);
    if ((rc = plat_mkdirs(err, dir, 0700))) return cli_fail(rc, err);
    if (plat_path_join(key, dir, "client.key") || plat_path_join(pub, dir, "client.pub"))
        return cli_fail(AWQ_ETOOBIG, "the key directory path is too long");
    if ((rc = awq_keygen(err, key, pub)) || (rc = awq_key_fingerprint(err, pub, fp))) return cli_fail(rc, err);
    awq_buf b = {0};
    int e;
    if (g->json) {
        e = awq_buf_puts(&b, "{\"key\":");
        if (!e) e = awq_buf_json_str(&b, key, strlen(key));
        if (!e) e = awq_buf_puts(&b, ",\"pub\":");
        if (!e) e = awq_buf_json_str(&b, pub, strlen(pub));
        if (!e) e = awq_buf_printf(&b, ",\"fingerprint\":\"%s\"}\n", fp);
    } else {
        e = awq_buf_printf(&b, "secret key: %s\npublic key: %s\nfingerprint: %s\n", key, pub, fp);
    }
    return cli_emit(&b, e);
}
