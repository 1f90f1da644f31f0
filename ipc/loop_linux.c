/* loop_linux.c - loop.h on epoll + eventfd. */
#define _GNU_SOURCE
#include "loop.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct ipc_loop {
    int ep, evfd;
    struct epoll_event evs[256];
};

ipc_loop *ipc_loop_create(char *err) {
    ipc_loop *l = calloc(1, sizeof *l);
    if (!l) {
        awq_seterr(err, AWQ_ENOMEM, "out of memory");
        return NULL;
    }
    l->ep = epoll_create1(EPOLL_CLOEXEC);
    l->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
    if (l->ep < 0 || l->evfd < 0 || epoll_ctl(l->ep, EPOLL_CTL_ADD, l->evfd, &e) != 0) {
        awq_seterr(err, AWQ_EIO, "epoll/eventfd: %s", strerror(errno));
        ipc_loop_free(l);
        return NULL;
    }
    return l;
}

void ipc_loop_free(ipc_loop *l) {
    if (!l) return;
    if (l->ep >= 0) close(l->ep);
    if (l->evfd >= 0) close(l->evfd);
    free(l);
}

static uint32_t to_ep(unsigned ev) {
    return (ev & IPC_LOOP_READ ? EPOLLIN | EPOLLRDHUP : 0) | (ev & IPC_LOOP_WRITE ? EPOLLOUT : 0);
}

int ipc_loop_add(ipc_loop *l, intptr_t h, unsigned events, void *ud) {
    struct epoll_event e = {.events = to_ep(events), .data.ptr = ud};
    return epoll_ctl(l->ep, EPOLL_CTL_ADD, (int)h, &e) == 0 ? 0 : AWQ_EIO;
}

int ipc_loop_mod(ipc_loop *l, intptr_t h, unsigned events, void *ud) {
    struct epoll_event e = {.events = to_ep(events), .data.ptr = ud};
    return epoll_ctl(l->ep, EPOLL_CTL_MOD, (int)h, &e) == 0 ? 0 : AWQ_EIO;
}

void ipc_loop_del(ipc_loop *l, intptr_t h) { epoll_ctl(l->ep, EPOLL_CTL_DEL, (int)h, NULL); }

int ipc_loop_wait(ipc_loop *l, ipc_loop_ev *evs, int max, int timeout_ms, bool *woken) {
    *woken = false;
    if (max > 256) max = 256;
    int n = epoll_wait(l->ep, l->evs, max, timeout_ms);
    if (n < 0) return errno == EINTR ? 0 : AWQ_EIO;
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (!l->evs[i].data.ptr) {
            uint64_t v;
            while (read(l->evfd, &v, sizeof v) > 0) {}
            *woken = true;
            continue;
        }
        uint32_t e = l->evs[i].events;
        evs[k].ud = l->evs[i].data.ptr;
        evs[k].events = (e & EPOLLIN ? IPC_LOOP_READ : 0) | (e & EPOLLOUT ? IPC_LOOP_WRITE : 0) |
                        (e & (EPOLLHUP | EPOLLERR | EPOLLRDHUP) ? IPC_LOOP_HUP : 0);
        k++;
    }
    return k;
}

void ipc_loop_wake(ipc_loop *l) {
    uint64_t one = 1;
    ssize_t r = write(l->evfd, &one, sizeof one); /* async-signal-safe */
    (void)r;
}
