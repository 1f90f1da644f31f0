/* cmd_template.c - `awq-run template -m DIR [--no-generation-prompt] < messages.json`:
 * renders the model's chat template the way Hugging Face's
 * apply_chat_template(messages, tokenize=False, add_generation_prompt=True) does and prints
 * the prompt exactly (no newline added).
 *
 * The template, bos_token and eos_token come from DIR/tokenizer_config.json: chat_template is
 * a string or a list of {"name", "template"} (the one named "default" is used); a token is a
 * string or an AddedToken object {"content": ...}. stdin is a JSON array of
 * {"role", "content"} objects.
 * Exit codes: 0 ok, 1 bad input or template error (one line "awq-run: ..." on stderr), 2 usage.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "awq_util.h"
#include "cmds.h"
#include "plat.h"
#include "tmpl.h"

#define CONFIG_MAX (16u << 20) /* tokenizer_config.json of real models is well under 1 MB */
#define STDIN_MAX (64u << 20)  /* messages */

static void usage(FILE *f) {
    fprintf(f, "usage: awq-run template -m DIR [--no-generation-prompt] < messages.json\n"
               "  renders DIR/tokenizer_config.json's chat_template with the JSON messages array\n"
               "  on stdin ([{\"role\": ..., \"content\": ...}, ...]) and prints the prompt.\n");
}

/* A special token: "text" or {"content": "text", ...}; NULL when absent or null. */
static const char *token_text(const cJSON *cfg, const char *key, int *bad) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v || cJSON_IsNull(v)) return NULL;
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (cJSON_IsString(c)) return c->valuestring;
    }
    *bad = 1;
    return NULL;
}

/* chat_template: a string, or a list of {"name","template"} of which "default" is taken */
static const char *find_template(const cJSON *cfg, char *why, size_t why_len) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template");
    if (!t || cJSON_IsNull(t)) {
        snprintf(why, why_len, "has no chat_template");
        return NULL;
    }
    if (cJSON_IsString(t)) return t->valuestring;
    if (cJSON_IsArray(t)) {
        const cJSON *it;
        cJSON_ArrayForEach(it, t) {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
            const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(it, "template");
            if (!cJSON_IsString(name) || !cJSON_IsString(tpl)) {
                snprintf(why, why_len, "chat_template list entries must be {\"name\": str, \"template\": str}");
                return NULL;
            }
            if (!strcmp(name->valuestring, "default")) return tpl->valuestring;
        }
        snprintf(why, why_len, "chat_template list has no entry named \"default\"");
        return NULL;
    }
    snprintf(why, why_len, "chat_template must be a string or a list of named templates");
    return NULL;
}

static int read_stdin(char **data_p, size_t *len_p) {
    awq_buf b = {0};
    char chunk[65536];
    size_t k;
    while ((k = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
        if (b.len + k > STDIN_MAX || awq_buf_append(&b, chunk, k)) {
            awq_buf_free(&b);
            return -1;
        }
    }
    if (ferror(stdin)) {
        awq_buf_free(&b);
        return -1;
    }
    *len_p = b.len;
    *data_p = b.data ? awq_buf_take(&b) : calloc(1, 1);
    return *data_p ? 0 : -1;
}

int cmd_template(int argc, char **argv) {
    const char *dir = NULL;
    bool agp = true;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-m") && i + 1 < argc) {
            dir = argv[++i];
        } else if (!strcmp(argv[i], "--no-generation-prompt")) {
            agp = false;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "awq-run: template: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!dir) {
        usage(stderr);
        return 2;
    }

    char err[AWQ_ERR_LEN] = "", path[4096], why[160];
    char *cfg_text = NULL, *in = NULL, *out = NULL;
    size_t cfg_len = 0, in_len = 0, out_len = 0, n_msgs = 0;
    cJSON *cfg = NULL;
    eng_tmpl *t = NULL;
    eng_msg *msgs = NULL;
    int ret = 1;

    if ((size_t)snprintf(path, sizeof path, "%s/tokenizer_config.json", dir) >= sizeof path) {
        fprintf(stderr, "awq-run: model directory path too long\n");
        return 2;
    }
    if (plat_read_file(err, path, CONFIG_MAX, &cfg_text, &cfg_len)) {
        fprintf(stderr, "awq-run: %s\n", err);
        goto done;
    }
    cfg = cJSON_ParseWithLength(cfg_text, cfg_len);
    if (!cfg || !cJSON_IsObject(cfg)) {
        fprintf(stderr, "awq-run: %s: not a JSON object\n", path);
        goto done;
    }
    const char *src = find_template(cfg, why, sizeof why);
    if (!src) {
        fprintf(stderr, "awq-run: %s: %s\n", path, why);
        goto done;
    }
    int bad = 0;
    const char *bos = token_text(cfg, "bos_token", &bad), *eos = token_text(cfg, "eos_token", &bad);
    if (bad) {
        fprintf(stderr, "awq-run: %s: bos_token/eos_token must be a string or {\"content\": string}\n", path);
        goto done;
    }
    if (eng_tmpl_compile(err, src, strlen(src), &t)) {
        fprintf(stderr, "awq-run: %s: chat_template: %s\n", path, err);
        goto done;
    }
    if (read_stdin(&in, &in_len)) {
        fprintf(stderr, "awq-run: cannot read stdin (or more than %u bytes)\n", (unsigned)STDIN_MAX);
        goto done;
    }
    if (eng_msgs_from_json(err, in, in_len, &msgs, &n_msgs)) {
        fprintf(stderr, "awq-run: stdin: %s\n", err);
        goto done;
    }
    if (eng_tmpl_render(err, t, msgs, n_msgs, bos, eos, agp, &out, &out_len)) {
        fprintf(stderr, "awq-run: template: %s\n", err);
        goto done;
    }
    if (fwrite(out, 1, out_len, stdout) != out_len || fflush(stdout)) {
        fprintf(stderr, "awq-run: cannot write the prompt to stdout\n");
        goto done;
    }
    ret = 0;
done:
    free(out);
    free(msgs);
    free(in);
    eng_tmpl_free(t);
    cJSON_Delete(cfg);
    free(cfg_text);
    return ret;
}
