/* models.h - where models may come from and how one is opened: the [model] roots check that
 * `load` goes through (threat model row 10: realpath, then a prefix check that ends on a path
 * separator, so /models-evil is not under /models), the listing of model directories under
 * the roots, and opening a model in stages so that the daemon can report progress.
 *
 * Thread safety: resolve and list are reentrant; open runs on the engine thread.
 */
#ifndef AWQD_MODELS_H
#define AWQD_MODELS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "awq_err.h"
#include "cfg.h"
#include "llm.h"
#include "msg.h"
#include "plat.h"

/* True when path (canonical) is root (canonical) or lies under it. */
bool awqd_path_under(const char *path, const char *root);

/* Resolve a requested model directory: an absolute path as it is, a relative one against each
 * root in turn (the first that exists). The canonical result must be under one of roots, or,
 * with no roots, equal model_path (the [model] path setting; may be ""). Errors: AWQ_EPERM
 * "outside the model roots" (also for paths that exist nowhere under a root: whether a path
 * exists outside the roots is not revealed), AWQ_ENOTFOUND for a missing dir under a root,
 * AWQ_EFORMAT when the directory has no config.json. out: PLAT_PATH_MAX bytes. */
AWQ_NODISCARD int awqd_model_resolve(char *err, const cfg_paths *roots, const char *model_path, const char *req,
                                     char *out) AWQ_NONNULL(2, 3, 4, 5);

/* One listed model; strings owned by the list. */
typedef struct awqd_model_entry {
    char *name, *path;
    uint64_t size;   /* bytes of the directory's files (not recursive) */
} awqd_model_entry;

typedef struct awqd_model_list {
    awqd_model_entry *e;
    size_t n;
} awqd_model_list;

/* Every directory with a config.json that is a root, directly inside a root, or model_path.
 * Sorted by path, without duplicates. Unreadable roots are skipped. Free with
 * awqd_model_list_free. */
AWQ_NODISCARD int awqd_model_list_make(char *err, const cfg_paths *roots, const char *model_path, awqd_model_list *out)
    AWQ_NONNULL(2, 3, 4);
void awqd_model_list_free(awqd_model_list *l);

/* Stage reached while opening (IPC_STAGE_MAPPED, _VALIDATED, _UPLOADED); pct 0..100. */
typedef void (*awqd_progress_fn)(void *user, ipc_stage stage, float pct);

typedef struct awqd_open_opts {
    const char *device; /* "auto", "cpu", "cuda" */
    bool cpu_fallback;  /* auto: use the CPU when the GPU cannot start */
    int threads, max_ctx, max_seqs;
    size_t kv_budget;
    bool fp16_weights;  /* model.prefill_fp16_weights */
} awqd_open_opts;

/* Open dir in stages: checkpoint mapped and validated (eng_model_load), tokenizer and
 * template validated, backend created (weights repacked/uploaded, KV cache sized). The context
 * is min(max_ctx, max_position_embeddings). On success *out is an eng_llm the caller frees
 * with eng_llm_free. progress may be NULL. */
AWQ_NODISCARD int awqd_model_open(char *err, const char *dir, const awqd_open_opts *o, awqd_progress_fn progress,
                                  void *user, eng_llm **out) AWQ_NONNULL(2, 3, 6);

#endif
