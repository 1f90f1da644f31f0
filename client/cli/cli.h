/* cli.h - internals of `awq`, the command-line client of awqd (docs/cli.md). One header for
 * the whole program, like client/lib/client.h: cli.c holds what every command shares (global
 * options, argument parser, connecting, error reporting, JSON output, Ctrl-C), and each
 * cmd_*.c / gen.c / chat.c implements its commands on top of libawq.
 *
 * Exit codes (docs/cli.md): every command returns one of CLI_EXIT_*; a function that "returns
 * an exit code" returns one of these, never an AWQ_E* code.
 *
 * Thread safety: the program is single-threaded; cli_interrupted is set from a signal handler.
 */
#ifndef AWQ_CLI_H
#define AWQ_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "awq.h"
#include "awq_util.h"

enum cli_exit {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAILED = 1,   /* the request failed: the daemon's (or the library's) error */
    CLI_EXIT_USAGE = 2,    /* bad command line or input file */
    CLI_EXIT_CONNECT = 3,  /* cannot connect to awqd */
    CLI_EXIT_CANCEL = 4,   /* interrupted by Ctrl-C / cancelled */
};

#define CLI_PATH_MAX 4096
#define CLI_MAX_POS 4096      /* positional arguments per command (detokenize ids) */
#define CLI_INPUT_MAX (64u << 20) /* bytes read from stdin or a file: the default frame limit */

/* ------------------------------------------------------------ global options ---- */

typedef struct cli_opts {
    const char *socket;      /* --socket, $AWQ_SOCKET, settings server.socket, or libawq's default */
    bool json;               /* --json: machine output */
    int timeout_ms;          /* --timeout: 0 = libawq's defaults */
    bool encrypt;            /* --encrypt (implied by --key / --known-servers) */
    const char *key;         /* --key FILE */
    const char *known;       /* --known-servers FILE */
    char socket_buf[CLI_PATH_MAX], key_buf[CLI_PATH_MAX], known_buf[CLI_PATH_MAX];
} cli_opts;

/* If argv[*i] is a global option, consume it (and its value) and return 1; 0 when it is not
 * one; CLI_EXIT_USAGE (after printing why) when its value is missing or bad. */
int cli_global_opt(cli_opts *o, int argc, char **argv, int *i);

/* ------------------------------------------------------------ argument parser ---- */

typedef enum cli_fkind {
    CLI_F_BOOL,  /* bool *: set true */
    CLI_F_STR,   /* const char **: the value */
    CLI_F_U32,   /* uint32_t *: an integer in [lo, hi] */
    CLI_F_FLOAT, /* float *: a finite number in [lo, hi] */
    CLI_F_U64,   /* uint64_t *: any unsigned 64-bit integer */
    CLI_F_LIST,  /* cli_list *: the value appended (repeatable) */
} cli_fkind;

typedef struct cli_list {
    const char *v[16];
    size_t n;
} cli_list;

typedef struct cli_flag {
    const char *name;  /* "--top-k" */
    const char *alias; /* "-n", or NULL */
    cli_fkind kind;
    void *dst;
    bool *given;       /* set true when the flag appears (may be NULL) */
    double lo, hi;     /* CLI_F_U32 / CLI_F_FLOAT range */
} cli_flag;

typedef struct cli_cmd_info {
    const char *name;  /* "generate" */
    const char *usage; /* the full --help text (starts with "usage: awq ...") */
} cli_cmd_info;

/* Parse argv[1..argc) of a command: its flags, the global options (anywhere), "--" (what
 * follows is positional), --help. Positional arguments are moved to the front of argv[1..]:
 * they are argv[1 .. 1 + *n_pos). Returns 0, -1 after --help was printed (exit 0), or
 * CLI_EXIT_USAGE after printing the reason and the usage to stderr. */
int cli_parse(const cli_cmd_info *cmd, cli_opts *g, int argc, char **argv, const cli_flag *flags, size_t n_flags,
              int *n_pos);

/* Print "awq CMD: <message>" and a hint to run --help; returns CLI_EXIT_USAGE. */
int cli_usage_err(const cli_cmd_info *cmd, const char *fmt, ...) AWQ_PRINTF(2, 3);

/* ------------------------------------------------------------ connecting, errors ---- */

/* Connect with the global options. On failure prints "awq: cannot connect to awqd at PATH: ..."
 * and returns CLI_EXIT_CONNECT. io_timeout_ms overrides the synchronous-call timeout when
 * --timeout was not given (0: libawq's default, < 0: for ever). */
int cli_connect(cli_opts *o, int io_timeout_ms, awq_conn **out);

/* Print "awq: <name>: <message>" (the daemon's or the library's error) and return
 * CLI_EXIT_FAILED. */
int cli_fail(int code, const char *err);

/* The user's awqd config directory ($XDG_CONFIG_HOME/awqd or ~/.config/awqd) into out
 * (CLI_PATH_MAX bytes). AWQ_ENOTFOUND when neither variable is set. */
int cli_user_config_dir(char *err, char *out);

/* Read the whole stream (at most CLI_INPUT_MAX bytes) into a malloc'ed NUL-terminated buffer.
 * Returns 0 or an AWQ_E* code with err set (what names the input in messages). */
int cli_read_all(char *err, FILE *f, const char *what, char **data, size_t *len);

/* ------------------------------------------------------------ output ---- */

/* Write b to stdout (NUL-free text or JSON); returns CLI_EXIT_OK, or CLI_EXIT_FAILED when
 * building b ran out of memory (e != 0) or stdout failed. */
int cli_emit(awq_buf *b, int e);
/* Append a JSON array of ids. Returns 0 or AWQ_ENOMEM. */
int cli_json_ids(awq_buf *b, const uint32_t *ids, size_t n);
/* Append a map's entries as a JSON object. */
int cli_json_map(awq_buf *b, const awq_map *m);
/* Append one map value as text (strings as they are). */
int cli_kv_text(awq_buf *b, const awq_kv *kv);

/* ------------------------------------------------------------ Ctrl-C ---- */

/* Set by SIGINT once cli_sigint_install ran; the receive loops poll it and cancel. */
extern volatile sig_atomic_t cli_interrupted;
/* Install the Ctrl-C handler (POSIX: SIGINT without SA_RESTART, so a blocking fgets returns). */
void cli_sigint_install(void); /* term_posix.c / term_win.c */
/* Whether f is a terminal. */
bool cli_isatty(FILE *f);      /* term_posix.c / term_win.c */

/* ------------------------------------------------------------ commands ---- */

/* Each takes the command's own argc/argv (argv[0] = the command name) and returns an exit code. */
int cli_cmd_run(cli_opts *g, int argc, char **argv);        /* gen.c */
int cli_cmd_generate(cli_opts *g, int argc, char **argv);   /* gen.c */
int cli_cmd_tokenize(cli_opts *g, int argc, char **argv);   /* cmd_tok.c */
int cli_cmd_detokenize(cli_opts *g, int argc, char **argv); /* cmd_tok.c */
int cli_cmd_template(cli_opts *g, int argc, char **argv);   /* cmd_tok.c */
int cli_cmd_keygen(cli_opts *g, int argc, char **argv);     /* cmd_tok.c */
int cli_cmd_load(cli_opts *g, int argc, char **argv);       /* cmd_admin.c */
int cli_cmd_unload(cli_opts *g, int argc, char **argv);     /* cmd_admin.c */
int cli_cmd_list(cli_opts *g, int argc, char **argv);       /* cmd_admin.c */
int cli_cmd_status(cli_opts *g, int argc, char **argv);     /* cmd_admin.c */
int cli_cmd_settings(cli_opts *g, int argc, char **argv);   /* cmd_admin.c */
int cli_cmd_metrics(cli_opts *g, int argc, char **argv);    /* cmd_admin.c */
int cli_cmd_stop(cli_opts *g, int argc, char **argv);       /* cmd_admin.c */
int cli_cmd_ping(cli_opts *g, int argc, char **argv);       /* cmd_admin.c */

/* ------------------------------------------------------------ generation (gen.c) ---- */

/* What one generation produced. */
typedef struct cli_result {
    awq_buf text;
    uint32_t *ids;
    size_t n_ids, cap_ids;
    awq_buf logprobs;       /* JSON array body (without brackets) when logprobs were asked for */
    char finish[16];        /* "stop", "length", ... ("" when it ended with an error) */
    awq_stats stats;
    bool cancelled;         /* Ctrl-C was pressed and the request cancelled */
} cli_result;

void cli_result_free(cli_result *r);

/* Start req and receive its events until it ends: token text goes to stdout as it comes when
 * echo is set; Ctrl-C (cli_interrupted) cancels the request. A gap of more than gap_ms (> 0)
 * between events fails with AWQ_ETIMEDOUT. Returns CLI_EXIT_OK, CLI_EXIT_CANCEL after a
 * cancel, or the exit code of the error (printed). */
int cli_stream(awq_conn *c, const awq_gen_req *req, bool echo, int gap_ms, cli_result *res);

/* Sampling flags shared by run, generate and the chat's /set. */
typedef struct cli_sampling {
    uint32_t max_tokens, top_k, logprobs;
    float temperature, top_p, min_p, typical_p, repeat_penalty, presence_penalty, frequency_penalty;
    bool has_temperature, has_top_p, has_min_p, has_typical_p, has_top_k, has_repeat, has_presence,
        has_frequency;
    bool has_seed;
    uint64_t seed;
    bool ignore_eos;
    cli_list stop;
} cli_sampling;

/* Copy the sampling fields that were given into req (the rest keep awq_gen_req_init's values). */
void cli_sampling_apply(const cli_sampling *s, awq_gen_req *req);

/* ------------------------------------------------------------ chat (chat.c) ---- */

/* The interactive chat on a terminal; sampling and system are the command line's. Returns an
 * exit code (0 after /bye or end of input). */
int cli_chat(cli_opts *g, awq_conn *c, const cli_sampling *sampling, const char *system);

#endif
