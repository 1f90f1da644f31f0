/* models.c - model roots, listing and staged opening; see models.h. */
#define _POSIX_C_SOURCE 200809L
#include "models.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backend.h"

/* ------------------------------------------------------------ roots ---- */

bool awqd_path_under(const char *path, const char *root) {
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == PLAT_PATH_SEP) n--; /* "/models/" and "/models" alike */
    if (strncmp(path, root, n) != 0) return false;
    /* the boundary: "/models" must not admit "/models-evil" */
    return path[n] == 0 || path[n] == PLAT_PATH_SEP || (n == 1 && root[0] == PLAT_PATH_SEP);
}

/* An absolute path for this OS: "/x" on POSIX; a drive ("C:\\x", "C:/x") or UNC path on Windows,
 * where a request like "Z:\\models\\m" must not be joined to the roots as a relative name. */
static bool is_abs(const char *p) {
#ifdef _WIN32
    if (((p[0] >= 'A' && p[0] <= 'Z') || (p[0] >= 'a' && p[0] <= 'z')) && p[1] == ':' && (p[2] == '\\' || p[2] == '/'))
        return true;
    return p[0] == '\\' && p[1] == '\\';
#else
    return p[0] == PLAT_PATH_SEP;
#endif
}

static bool has_config(const char *dir) {
    char p[PLAT_PATH_MAX];
    return plat_path_join(p, dir, "config.json") == 0 && plat_is_file(p);
}

int awqd_model_resolve(char *err, const cfg_paths *roots, const char *model_path, const char *req, char *out) {
    char canon[PLAT_PATH_MAX], root[PLAT_PATH_MAX], tmp[PLAT_PATH_MAX];
    if (!req[0]) return awq_seterr(err, AWQ_EINVAL, "load: empty model path");
    bool found = false, any_root_ok = false;
    if (is_abs(req)) {
        found = plat_realpath(NULL, req, canon) == 0;
    } else {
        for (size_t i = 0; i < roots->n && !found; i++) {
            if (plat_path_join(tmp, roots->item[i], req)) continue;
            found = plat_realpath(NULL, tmp, canon) == 0;
        }
    }
    if (found) {
        for (size_t i = 0; i < roots->n; i++) {
            if (plat_realpath(NULL, roots->item[i], root)) continue;
            if (awqd_path_under(canon, root)) any_root_ok = true;
        }
        if (!roots->n && model_path[0] && plat_realpath(NULL, model_path, root) == 0 && strcmp(canon, root) == 0)
            any_root_ok = true;
    }
    if (!found || !any_root_ok) {
        /* a missing path that would be under a root: say so; anything else is refused the
         * same way whether it exists or not */
        if (!found && is_abs(req)) {
            for (size_t i = 0; i < roots->n; i++)
                if (awqd_path_under(req, roots->item[i]))
                    return awq_seterr(err, AWQ_ENOTFOUND, "load: %s: no such model directory", req);
        } else if (!found && roots->n && !strstr(req, "..")) {
            return awq_seterr(err, AWQ_ENOTFOUND, "load: %s: no such model directory under the model roots", req);
        }
        if (!roots->n)
            return awq_seterr(err, AWQ_EPERM,
                              "load: %s is not allowed: no [model] roots are configured, so only [model] path may "
                              "be loaded",
                              req);
        return awq_seterr(err, AWQ_EPERM, "load: %s is outside the model roots ([model] roots)", req);
    }
    if (!plat_is_dir(canon)) return awq_seterr(err, AWQ_EINVAL, "load: %s is not a directory", req);
    if (!has_config(canon)) return awq_seterr(err, AWQ_EFORMAT, "load: %s has no config.json", canon);
    memcpy(out, canon, strlen(canon) + 1);
    return 0;
}

/* ------------------------------------------------------------ listing ---- */

static uint64_t dir_size(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    uint64_t total = 0;
    struct dirent *e;
    char p[PLAT_PATH_MAX];
    struct stat st;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.' && plat_path_join(p, dir, e->d_name) == 0 && stat(p, &st) == 0 && S_ISREG(st.st_mode))
            total += (uint64_t)st.st_size;
    closedir(d);
    return total;
}

static int add_entry(awqd_model_list *l, const char *canon) {
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->e[i].path, canon)) return 0;
    awqd_model_entry *ne = realloc(l->e, (l->n + 1) * sizeof *ne);
    if (!ne) return AWQ_ENOMEM;
    l->e = ne;
    const char *base = strrchr(canon, PLAT_PATH_SEP);
    base = base && base[1] ? base + 1 : canon;
    awqd_model_entry *x = &l->e[l->n];
    x->path = strdup(canon);
    x->name = strdup(base);
    x->size = dir_size(canon);
    if (!x->path || !x->name) {
        free(x->path);
        free(x->name);
        return AWQ_ENOMEM;
    }
    l->n++;
    return 0;
}

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const awqd_model_entry *)a)->path, ((const awqd_model_entry *)b)->path);
}

int awqd_model_list_make(char *err, const cfg_paths *roots, const char *model_path, awqd_model_list *out) {
    memset(out, 0, sizeof *out);
    char root[PLAT_PATH_MAX], p[PLAT_PATH_MAX], canon[PLAT_PATH_MAX];
    int rc = 0;
    if (model_path[0] && plat_realpath(NULL, model_path, canon) == 0 && has_config(canon))
        rc = add_entry(out, canon);
    for (size_t i = 0; i < roots->n && !rc; i++) {
        if (plat_realpath(NULL, roots->item[i], root)) continue;
        if (has_config(root) && (rc = add_entry(out, root))) break;
        DIR *d = opendir(root);
        if (!d) continue;
        struct dirent *e;
        while (!rc && (e = readdir(d))) {
            if (e->d_name[0] == '.' || plat_path_join(p, root, e->d_name)) continue;
            /* a symlink leading out of the root is not listed (load would refuse it) */
            if (plat_realpath(NULL, p, canon) || !awqd_path_under(canon, root)) continue;
            if (plat_is_dir(canon) && has_config(canon)) rc = add_entry(out, canon);
        }
        closedir(d);
    }
    if (rc) {
        awqd_model_list_free(out);
        return awq_seterr(err, rc, "list: out of memory");
    }
    if (out->n) qsort(out->e, out->n, sizeof *out->e, cmp_entry);
    return 0;
}

void awqd_model_list_free(awqd_model_list *l) {
    if (!l) return;
    for (size_t i = 0; i < l->n; i++) {
        free(l->e[i].name);
        free(l->e[i].path);
    }
    free(l->e);
    memset(l, 0, sizeof *l);
}

/* ------------------------------------------------------------ staged open ---- */

/* The backend, exactly as eng_llm_open picks it, with the daemon's cpu_fallback setting. */
static int open_backend(char *err, eng_llm *l, const awqd_open_opts *o) {
    eng_llm_opts lo = {
        .device = o->device,
        .threads = o->threads,
        .max_seqs = o->max_seqs,
        .kv_budget = o->kv_budget,
        .no_cpu_fallback = !o->cpu_fallback,
        .fp16_weights = o->fp16_weights,
    };
    return eng_llm_open_backend(err, l, &lo);
}

int awqd_model_open(char *err, const char *dir, const awqd_open_opts *o, awqd_progress_fn progress, void *user,
                    eng_llm **out) {
    char tj[PLAT_PATH_MAX], tc[PLAT_PATH_MAX];
    int rc;
    *out = NULL;
    eng_llm *l = calloc(1, sizeof *l);
    if (!l) return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    /* eng_model_load maps every shard and validates every header against the config */
    if ((rc = eng_model_load(err, dir, &l->model))) goto fail;
    if (progress) progress(user, IPC_STAGE_MAPPED, 40);
    if (plat_path_join(tj, l->model->dir, "tokenizer.json") || plat_path_join(tc, l->model->dir, "tokenizer_config.json")) {
        rc = awq_seterr(err, AWQ_ETOOBIG, "%s: path too long", dir);
        goto fail;
    }
    if (!plat_is_file(tj)) {
        rc = awq_seterr(err, AWQ_ENOTFOUND, "%s: no tokenizer.json", l->model->dir);
        goto fail;
    }
    if ((rc = eng_tok_load(err, tj, plat_is_file(tc) ? tc : NULL, &l->tok))) goto fail;
    if ((rc = eng_llm_check_vocab(err, l->model->cfg.vocab, eng_tok_vocab_size(l->tok)))) goto fail;
    const char *src = eng_tok_chat_template(l->tok);
    if (src) {
        char e2[AWQ_ERR_LEN];
        if ((rc = eng_tmpl_compile(e2, src, strlen(src), &l->tmpl))) {
            awq_seterr(err, rc, "tokenizer_config.json chat_template: %s", e2);
            goto fail;
        }
    }
    if (progress) progress(user, IPC_STAGE_VALIDATED, 50);
    /* The configured context is a ceiling: a model trained for less gets its own maximum
     * rather than a refused load (the default 4096 would refuse every 2048-token model). */
    int mp = l->model->cfg.max_pos > 0 ? l->model->cfg.max_pos : ENG_LLM_DEFAULT_CTX;
    l->max_ctx = o->max_ctx > 0 && o->max_ctx < mp ? o->max_ctx : mp;
    if ((rc = open_backend(err, l, o))) goto fail;
    if (progress) progress(user, IPC_STAGE_UPLOADED, 95);
    *out = l;
    return 0;
fail:
    eng_llm_free(l);
    return rc;
}
