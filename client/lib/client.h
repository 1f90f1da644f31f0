/* client.h - libawq internals shared by conn.c (transport, routing) and calls.c (requests).
 * Not installed. */
#ifndef AWQ_CLIENT_H
#define AWQ_CLIENT_H

#include "awq.h"
#include "channel.h"
#include "frame.h"
#include "msg.h"
#include "plat.h"
#include "transport.h"

/* A request this connection is waiting for. */
typedef struct pend {
    struct pend *next;
    uint32_t id;
    awq_event_cb cb;        /* events go here ... */
    void *user;
    bool sync;              /* ... or a synchronous caller waits for the terminal message */
    awq_progress_cb progress;
    void *puser;
    ipc_msg *resp;          /* sync: the terminal message, once it came */
} pend;

/* A message for awq_next_event. */
typedef struct qmsg {
    struct qmsg *next;
    ipc_msg *m;
} qmsg;

struct awq_conn {
    ipc_sock *sock;
    ipc_chan *chan;
    ipc_keypair *kp;
    int io_timeout_ms;
    plat_mutex wmu;         /* sending: encode order, seal, write; guards ebuf, wbuf */
    awq_buf ebuf, wbuf;     /* reused encode and frame buffers: no allocation per send */
    plat_mutex mu;          /* everything below */
    plat_cond cv;
    bool reading;           /* a thread is reading the socket */
    int broken;             /* 0, or why the connection is unusable */
    char broken_msg[AWQ_ERR_LEN];
    uint32_t next_id;
    pend *pend;
    qmsg *qhead, *qtail;
    /* reader-owned */
    ipc_frame_dec *dec;
    uint8_t *rbuf;          /* (RBUF) bytes read, rbuf[roff..rlen) not fed yet */
    size_t roff, rlen;
    uint8_t *cbuf;          /* (max_frame) decrypted payload */
    uint32_t max_frame;
    /* hello */
    awq_server_info info;
    ipc_msg *hello;
    char path[IPC_PATH_MAX];
};

/* Encode and send m (thread-safe). */
int cl_send(char *err, awq_conn *c, const ipc_msg *m);
/* A fresh request id (never 0). Call with c->mu held. */
uint32_t cl_next_id(awq_conn *c);
/* Register a pending request (mu held). */
pend *cl_pend_add(awq_conn *c, uint32_t id);
void cl_pend_remove(awq_conn *c, pend *p);
/* Send m as a request and wait for its terminal message (*resp, free with cl_msg_free), calling
 * progress for progress events. An error message from the server becomes its code + text. */
int cl_call(char *err, awq_conn *c, ipc_msg *m, ipc_msg **resp, awq_progress_cb progress, void *puser);
void cl_msg_free(ipc_msg *m);
/* Fill ev from m (pointers into m); ev->priv_ is set by the caller when it owns m. */
void cl_event_from(awq_event *ev, const ipc_msg *m);
/* Read and route messages until *done becomes true (mu held) or the deadline passes.
 * Returns 0, AWQ_ETIMEDOUT or the connection's broken code. deadline_ns 0 = for ever. */
int cl_pump(char *err, awq_conn *c, bool (*done)(awq_conn *, void *), void *arg, uint64_t deadline_ns);
uint64_t cl_deadline(int timeout_ms);

#endif
