/* awq_example.c - the smallest useful libawq program: connect to awqd, stream one chat
 * generation to stdout, print its statistics.
 *
 *   awq_example [--socket PATH] [--key FILE --known FILE] "your question"
 *
 * Build against an installed libawq: cc awq_example.c $(pkg-config --cflags --libs libawq)
 */
#include <stdio.h>
#include <string.h>

#include "awq.h"

static void on_event(void *user, const awq_event *ev) {
    (void)user;
    if (ev->type == AWQ_EV_TOKEN) {
        fwrite(ev->text, 1, ev->text_len, stdout);
        fflush(stdout);
    } else if (ev->type == AWQ_EV_DONE) {
        printf("\n[%s: %u prompt + %u generated tokens, %.1f tok/s]\n", ev->finish_reason, ev->stats.prompt_tokens,
               ev->stats.gen_tokens, ev->stats.decode_tok_s);
    } else if (ev->type == AWQ_EV_ERROR) {
        fprintf(stderr, "\nerror %s: %s\n", ev->err_name, ev->message);
    }
}

int main(int argc, char **argv) {
    awq_connect_opts o = {0};
    const char *question = "Tell me about Tokyo in one sentence.";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--socket") && i + 1 < argc) o.socket_path = argv[++i];
        else if (!strcmp(argv[i], "--key") && i + 1 < argc) o.key_path = argv[++i], o.encrypt = true;
        else if (!strcmp(argv[i], "--known") && i + 1 < argc) o.known_servers = argv[++i];
        else question = argv[i];
    }
    o.client_name = "awq_example";
    char err[AWQ_ERR_LEN] = "";
    awq_conn *c;
    int rc = awq_connect(err, &o, &c);
    if (rc) {
        fprintf(stderr, "connect: %s (%s)\n", err, awq_errname(rc));
        return 1;
    }
    const awq_server_info *info = awq_info(c);
    fprintf(stderr, "connected to %s, model %s%s\n", info->server, info->model[0] ? info->model : "(none)",
            info->encrypted ? ", encrypted" : "");
    awq_message msgs[] = {{"user", question}};
    awq_gen_req req;
    awq_gen_req_init(&req);
    req.messages = msgs;
    req.n_messages = 1;
    req.max_tokens = 64;
    req.temperature = 0.7f;
    uint32_t id;
    if ((rc = awq_generate(err, c, &req, on_event, NULL, &id)) == 0) rc = awq_wait(err, c, id, -1);
    if (rc) fprintf(stderr, "generate: %s\n", err);
    awq_close(c);
    return rc ? 1 : 0;
}
