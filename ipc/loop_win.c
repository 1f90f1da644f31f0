/* loop_win.c - loop.h on an I/O completion port, for the named-pipe transport (win_io.h).
 *
 * Completions become readiness: a packet names an OVERLAPPED, which maps to the registration
 * that owns it; that object goes on the check list. Each wait asks every object on the list
 * for its state (ready(), non-blocking) and reports those that are ready for what they watch.
 * A reported object stays on the list and is asked again next time, which is what makes the
 * loop level-triggered: anything the handler left unread is reported again, and a state change
 * the handler caused (a read that failed at once, say, which posts no packet) is seen.
 * Objects that are not ready leave the list until their next completion or ipc_loop_mod.
 *
 * Registrations live in a slot array; the OVERLAPPED -> slot map is an open-addressing hash.
 * A packet for a deleted object finds no entry (or a newer object at a reused address) and
 * costs at most one spurious look: nothing is dereferenced through a packet.
 */
#include "win_io.h"

#include "loop.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#define ENTRIES 128

typedef struct reg {
    ipc_wio *o;
    void *ud;
    unsigned events;
    bool live;
    bool queued; /* its slot is on the check list */
} reg;

typedef struct ment {
    const OVERLAPPED *ov; /* NULL: empty */
    int slot;
} ment;

struct ipc_loop {
    HANDLE port;
    reg *regs; /* (cap) */
    int n_regs, cap;
    int *free_slots; /* (cap) */
    int n_free;
    int *check; /* (cap) slots to ask again; each at most once */
    int n_check;
    ment *map; /* (map_cap), power of two, at most half full */
    size_t map_cap, map_n;
    atomic_int wake_pending;
    OVERLAPPED_ENTRY ents[ENTRIES];
};

/* ------------------------------------------------------------ OVERLAPPED -> slot map ---- */

static size_t map_home(const ipc_loop *l, const OVERLAPPED *ov) {
    return (size_t)(((uintptr_t)ov >> 3) * 0x9E3779B97F4A7C15ull >> 20) & (l->map_cap - 1);
}

static void map_insert(ipc_loop *l, const OVERLAPPED *ov, int slot) {
    size_t i = map_home(l, ov);
    while (l->map[i].ov && l->map[i].ov != ov) i = (i + 1) & (l->map_cap - 1);
    if (!l->map[i].ov) l->map_n++;
    l->map[i].ov = ov;
    l->map[i].slot = slot;
}

static int map_grow(ipc_loop *l) {
    size_t ncap = l->map_cap ? l->map_cap * 2 : 64;
    ment *old = l->map, *nm = calloc(ncap, sizeof *nm);
    if (!nm) return AWQ_ENOMEM;
    size_t ocap = l->map_cap;
    l->map = nm;
    l->map_cap = ncap;
    l->map_n = 0;
    for (size_t i = 0; i < ocap; i++)
        if (old[i].ov) map_insert(l, old[i].ov, old[i].slot);
    free(old);
    return 0;
}

static int map_get(const ipc_loop *l, const OVERLAPPED *ov) {
    if (!l->map_cap || !ov) return -1;
    for (size_t i = map_home(l, ov);; i = (i + 1) & (l->map_cap - 1)) {
        if (!l->map[i].ov) return -1;
        if (l->map[i].ov == ov) return l->map[i].slot;
    }
}

/* Linear-probing delete with backward shift (no tombstones). */
static void map_del(ipc_loop *l, const OVERLAPPED *ov) {
    if (!l->map_cap) return;
    size_t m = l->map_cap - 1, i = map_home(l, ov);
    while (l->map[i].ov != ov) {
        if (!l->map[i].ov) return;
        i = (i + 1) & m;
    }
    l->map[i].ov = NULL;
    l->map_n--;
    for (size_t j = (i + 1) & m; l->map[j].ov; j = (j + 1) & m) {
        size_t h = map_home(l, l->map[j].ov);
        if ((j > i && (h <= i || h > j)) || (j < i && (h <= i && h > j))) {
            l->map[i] = l->map[j];
            l->map[j].ov = NULL;
            i = j;
        }
    }
}

/* ------------------------------------------------------------ registrations ---- */

static void push_check(ipc_loop *l, int slot) {
    if (l->regs[slot].queued) return;
    l->regs[slot].queued = true;
    l->check[l->n_check++] = slot;
}

static int grow_regs(ipc_loop *l) {
    int ncap = l->cap ? l->cap * 2 : 64;
    reg *r = realloc(l->regs, (size_t)ncap * sizeof *r);
    if (!r) return AWQ_ENOMEM;
    l->regs = r;
    int *f = realloc(l->free_slots, (size_t)ncap * sizeof *f);
    if (!f) return AWQ_ENOMEM;
    l->free_slots = f;
    int *c = realloc(l->check, (size_t)ncap * sizeof *c);
    if (!c) return AWQ_ENOMEM;
    l->check = c;
    l->cap = ncap;
    return 0;
}

ipc_loop *ipc_loop_create(char *err) {
    ipc_loop *l = calloc(1, sizeof *l);
    if (!l) {
        awq_seterr(err, AWQ_ENOMEM, "out of memory");
        return NULL;
    }
    /* one concurrent thread: only the loop thread dequeues */
    l->port = CreateIoCompletionPort(INVALID_HANDLE_VALUE, NULL, 0, 1);
    if (!l->port || grow_regs(l) || map_grow(l)) {
        awq_seterr(err, l->port ? AWQ_ENOMEM : AWQ_EIO, "cannot create the I/O completion port (error %lu)",
                   (unsigned long)GetLastError());
        ipc_loop_free(l);
        return NULL;
    }
    return l;
}

void ipc_loop_free(ipc_loop *l) {
    if (!l) return;
    if (l->port) CloseHandle(l->port);
    free(l->regs);
    free(l->free_slots);
    free(l->check);
    free(l->map);
    free(l);
}

int ipc_loop_add(ipc_loop *l, intptr_t h, unsigned events, void *ud) {
    ipc_wio *o = (ipc_wio *)h;
    if (o->slot >= 0) return AWQ_EEXIST;
    int rc = o->attach(o, l->port);
    if (rc) return rc;
    if (l->n_free == 0 && l->n_regs == l->cap && (rc = grow_regs(l))) return rc;
    while ((l->map_n + (size_t)o->n_ops) * 2 > l->map_cap)
        if ((rc = map_grow(l))) return rc;
    int slot;
    if (l->n_free) {
        slot = l->free_slots[--l->n_free];
    } else {
        slot = l->n_regs++;
        l->regs[slot].queued = false;
    }
    reg *r = &l->regs[slot];
    r->o = o;
    r->ud = ud;
    r->events = events;
    r->live = true;
    o->slot = slot;
    for (int i = 0; i < o->n_ops; i++) map_insert(l, o->ops[i], slot);
    push_check(l, slot); /* it may be ready already, with no packet to come */
    return 0;
}

int ipc_loop_mod(ipc_loop *l, intptr_t h, unsigned events, void *ud) {
    ipc_wio *o = (ipc_wio *)h;
    if (o->slot < 0 || o->slot >= l->n_regs || l->regs[o->slot].o != o) return AWQ_ENOTFOUND;
    l->regs[o->slot].events = events;
    l->regs[o->slot].ud = ud;
    push_check(l, o->slot);
    return 0;
}

void ipc_loop_del(ipc_loop *l, intptr_t h) {
    ipc_wio *o = (ipc_wio *)h;
    if (o->slot < 0 || o->slot >= l->n_regs || l->regs[o->slot].o != o) return;
    for (int i = 0; i < o->n_ops; i++) map_del(l, o->ops[i]);
    reg *r = &l->regs[o->slot];
    r->live = false;
    r->o = NULL;
    l->free_slots[l->n_free++] = o->slot;
    o->slot = -1;
    /* the handle stays associated with the port (Windows cannot undo that); its late packets
     * find no map entry */
}

/* ------------------------------------------------------------ waiting ---- */

int ipc_loop_wait(ipc_loop *l, ipc_loop_ev *evs, int max, int timeout_ms, bool *woken) {
    *woken = false;
    /* objects still to ask: only collect what has already completed, do not sleep */
    DWORD t = l->n_check ? 0 : timeout_ms < 0 ? INFINITE : (DWORD)timeout_ms;
    ULONG n = 0;
    if (GetQueuedCompletionStatusEx(l->port, l->ents, ENTRIES, &n, t, FALSE)) {
        for (ULONG i = 0; i < n; i++) {
            if (l->ents[i].lpCompletionKey == IPC_WIO_KEY_WAKE) {
                atomic_store(&l->wake_pending, 0);
                *woken = true;
                continue;
            }
            int slot = map_get(l, l->ents[i].lpOverlapped);
            if (slot >= 0 && l->regs[slot].live) push_check(l, slot);
        }
    } else if (GetLastError() != WAIT_TIMEOUT) {
        return AWQ_EIO;
    }
    int k = 0, keep = 0;
    for (int i = 0; i < l->n_check; i++) {
        int slot = l->check[i];
        reg *r = &l->regs[slot];
        if (!r->live) {
            r->queued = false;
            continue;
        }
        if (k >= max) { /* no room this time: stays queued */
            l->check[keep++] = slot;
            continue;
        }
        unsigned ev = r->o->ready(r->o) & (r->events | IPC_LOOP_HUP);
        if (!ev) {
            r->queued = false;
            continue;
        }
        evs[k].ud = r->ud;
        evs[k].events = ev;
        k++;
        l->check[keep++] = slot;
    }
    l->n_check = keep;
    return k;
}

/* Thread-safe; one packet until the loop has seen it. (Windows has no signal handlers: the
 * console control handler runs on a thread of its own.) */
void ipc_loop_wake(ipc_loop *l) {
    if (atomic_exchange(&l->wake_pending, 1)) return;
    if (!PostQueuedCompletionStatus(l->port, 0, IPC_WIO_KEY_WAKE, NULL)) atomic_store(&l->wake_pending, 0);
}
