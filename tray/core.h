/* core.h - awq-tray's shared core, used by the Linux (GTK + AppIndicator) and Windows
 * (Shell_NotifyIcon) front ends alike: the state machine that turns the daemon's status map into
 * what the tray shows, the menu model (labels, which items are enabled), the check that a model
 * folder lies under the configured roots, the settings the Settings dialog edits, and the parser
 * of the test-hook commands read from stdin.
 *
 * Everything here is pure data in, data out: no I/O, no threads, no GUI. The worker (worker.h)
 * talks to the daemon; the front ends draw what this file computes, so both OSes show the same
 * labels and the unit tests check them without a display.
 *
 * Thread safety: every function is reentrant; a tray_view is plain data, copied between threads.
 */
#ifndef TRAY_CORE_H
#define TRAY_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "awq.h"
#include "awq_util.h"
#include "plat.h"

#define TRAY_TEXT_MAX 256  /* model name, device, stage, message (NUL included) */
#define TRAY_LABEL_MAX 320 /* one menu label (NUL included) */
#define TRAY_ROOTS_MAX 16  /* model roots considered (= CFG_LIST_MAX) */

/* What the tray is showing. ERROR is a foreign server refused, a failed start, or the last
 * load failing (sticky until the next load or unload); the icon has one image per state. */
typedef enum tray_state {
    TRAY_ST_STOPPED = 0, /* no daemon answers on the socket */
    TRAY_ST_IDLE,        /* the daemon runs, no model loaded */
    TRAY_ST_LOADING,     /* a model is being loaded (pct, stage) */
    TRAY_ST_READY,       /* a model is loaded */
    TRAY_ST_ERROR,       /* see message */
} tray_state;
#define TRAY_ST_COUNT 5

/* The name of a state as printed by the test hook and used in icon names
 * ("stopped", "idle", "loading", "ready", "error"). */
const char *tray_state_name(tray_state s);

/* Everything the front ends draw. Built by tray_view_from_status (connected) or
 * tray_view_stopped / tray_view_refused (not connected). */
typedef struct tray_view {
    tray_state state;
    bool connected;                 /* a libawq connection to our daemon is up */
    bool busy;                      /* a start/stop/load/unload is in flight (its items are disabled) */
    bool draining;                  /* the daemon is shutting down */
    float pct;                      /* LOADING: 0..100 */
    char stage[TRAY_TEXT_MAX];      /* LOADING: "mapped", "validated", "uploaded", "ready" */
    char model[TRAY_TEXT_MAX];      /* READY (or LOADING when known) */
    char device[TRAY_TEXT_MAX];     /* READY: "cuda", "cpu", ... ("" when the server does not say) */
    uint64_t memory_bytes;          /* READY: weights + KV cache */
    char message[TRAY_TEXT_MAX];    /* ERROR: why */
} tray_view;

/* A view of "nothing answers". */
void tray_view_stopped(tray_view *v);
/* A view of an error (a refused foreign server, a failed start): state ERROR, message set. */
void tray_view_error(tray_view *v, const char *message);

/* The state machine: the view for a connected daemon whose status map is m. Borrowed: m.
 *  - "loading" true                         -> LOADING (pct from progress_pct when >= 0, else
 *                                              from "load_stage": mapped 25, validated 50,
 *                                              uploaded 75, ready 100)
 *  - "loaded" true, or no "loaded" key and a non-empty "model" (older servers and the test
 *    server report only "model")            -> READY (model, device, memory_weights_bytes +
 *                                              memory_kv_bytes)
 *  - otherwise, with load_error non-empty   -> ERROR ("load failed: " + load_error)
 *  - otherwise                              -> IDLE
 * A status field of the wrong type is ignored as if absent (the server is ours, but the tray
 * must not crash on a newer or buggy one). */
void tray_view_from_status(tray_view *v, const awq_map *m, float progress_pct, const char *load_error)
    AWQ_NONNULL(1, 2);

/* Whether two views would draw the same (the worker posts only changes). */
bool tray_view_equal(const tray_view *a, const tray_view *b) AWQ_NONNULL(1, 2);

/* The status line, e.g. "awqd: ready: shisa-7b on cuda, 4.2 GiB", "awqd: loading 50 %
 * (validated)", "awqd: stopped", "awqd: error: ..." into out (TRAY_LABEL_MAX bytes). */
void tray_status_label(const tray_view *v, char out[TRAY_LABEL_MAX]) AWQ_NONNULL(1, 2);

/* One line describing the view for the test hook: "state: ready model=NAME device=DEV
 * memory=BYTES", "state: loading pct=50 stage=validated", "state: error message=...". */
void tray_view_line(const tray_view *v, char out[TRAY_LABEL_MAX]) AWQ_NONNULL(1, 2);

/* "4.2 GiB", "512 MiB", "12 KiB", "100 B" into out (32 bytes). */
void tray_fmt_bytes(uint64_t n, char out[32]) AWQ_NONNULL(2);

/* ------------------------------------------------------------ menu model ---- */

/* The menu, top to bottom. TRAY_ITEM_STATUS is the (never clickable) status line. */
typedef enum tray_item {
    TRAY_ITEM_STATUS = 0,
    TRAY_ITEM_START,
    TRAY_ITEM_STOP,
    TRAY_ITEM_LOAD,
    TRAY_ITEM_UNLOAD,
    TRAY_ITEM_SETTINGS,
    TRAY_ITEM_CHAT,
    TRAY_ITEM_LOGS,
    TRAY_ITEM_QUIT,
} tray_item;
#define TRAY_ITEM_COUNT 9

typedef struct tray_menu_entry {
    tray_item item;
    const char *name;              /* the test hook's name: "status", "start", "stop", "load", ... */
    char label[TRAY_LABEL_MAX];    /* what the menu shows */
    bool enabled;
    bool separator_after;          /* draw a separator below this entry */
} tray_menu_entry;

typedef struct tray_menu {
    tray_menu_entry e[TRAY_ITEM_COUNT];
} tray_menu;

/* Build the menu for v. Enabled: start when STOPPED (or an ERROR while not connected) and not
 * busy; stop, settings when connected; load when connected, not loading, not busy; unload when
 * READY and not busy; chat when READY; logs and quit always. */
void tray_menu_build(const tray_view *v, tray_menu *m) AWQ_NONNULL(1, 2);

/* The item named name ("load"), or -1. */
int tray_item_by_name(const char *name) AWQ_NONNULL(1);
const char *tray_item_name(tray_item it);

/* Append the menu as the test hook prints it, one line per entry:
 * "menu: load \"Load model…\" enabled". */
AWQ_NODISCARD int tray_menu_dump(const tray_menu *m, awq_buf *out) AWQ_NONNULL(1, 2);

/* ------------------------------------------------------------ model roots ---- */

/* The roots of a "model.roots" value (comma-separated absolute paths, blanks around entries
 * dropped) into roots[0..*n). Entries past TRAY_ROOTS_MAX or longer than PLAT_PATH_MAX - 1 are
 * refused with AWQ_ERANGE / AWQ_ETOOBIG. Borrows csv. */
AWQ_NODISCARD int tray_roots_parse(char *err, const char *csv, char (*roots)[PLAT_PATH_MAX], size_t *n) AWQ_NONNULL(2, 3, 4);

/* Whether the folder path may be loaded: its real path (symlinks resolved) must be one of the
 * roots or lie under one (the prefix ends on a separator, so /models-evil is not under /models);
 * with no roots only model_path itself (what the daemon allows). 0 when allowed; AWQ_EPERM with
 * "PATH is not under the model roots (ROOTS)" when not; AWQ_ENOTFOUND when path does not exist;
 * AWQ_EINVAL when it is not a directory. The canonical path is written to real_out
 * (PLAT_PATH_MAX bytes) when allowed. model_path may be NULL or "". */
AWQ_NODISCARD int tray_path_allowed(char *err, const char *path, const char *roots_csv, const char *model_path,
                                    char *real_out) AWQ_NONNULL(2, 3, 5);

/* ------------------------------------------------------------ settings ---- */

/* The keys the Settings dialog edits, in dialog order. */
typedef struct tray_setting {
    const char *key;     /* "model.context" */
    const char *label;   /* "Context length (tokens)" */
    const char *choices; /* "auto|cuda|cpu" for a choice list, NULL for free text */
} tray_setting;

const tray_setting *tray_settings(size_t *n_p) AWQ_NONNULL(1);

/* ------------------------------------------------------------ test hook ---- */

typedef enum tray_hook_op {
    TRAY_HOOK_CLICK = 1, /* click ITEM [ARG]: as if the user chose ITEM (ARG: load's folder) */
    TRAY_HOOK_SET,       /* set KEY VALUE: the Settings dialog saving one key */
    TRAY_HOOK_DUMP_MENU, /* dump-menu: print the menu model */
    TRAY_HOOK_DUMP_STATE,/* dump-state: print the view line */
    TRAY_HOOK_SETTINGS,  /* dump-settings: print the settings the dialog would show */
} tray_hook_op;

typedef struct tray_hook_cmd {
    tray_hook_op op;
    tray_item item;               /* CLICK */
    char arg[PLAT_PATH_MAX];              /* CLICK load: the folder; SET: the key */
    char value[1024];             /* SET: the value (the rest of the line, may hold blanks) */
} tray_hook_cmd;

/* Parse one line of the test-hook input (trailing newline and blanks ignored). An empty line or
 * one starting with '#' is 1 (nothing to do); a command is 0; a bad line is AWQ_EINVAL with a
 * message naming what was wrong, e.g. "unknown command 'foo' (expected click, set, dump-menu,
 * dump-state, dump-settings)". Borrows line. */
AWQ_NODISCARD int tray_hook_parse(char *err, const char *line, tray_hook_cmd *cmd) AWQ_NONNULL(2, 3);

#endif
