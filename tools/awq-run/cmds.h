/* cmds.h - the subcommands of awq-run, the daemonless runner for tests and benchmarks. Each
 * lives in its own cmd_*.c, takes (argc, argv) after the subcommand name, prints its result on
 * stdout and a one-line error on stderr, and returns the process exit code (0 ok, 1 error,
 * 2 usage). */
#ifndef AWQ_RUN_CMDS_H
#define AWQ_RUN_CMDS_H

int cmd_inspect(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_detokenize(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_bench(int argc, char **argv);

#endif
