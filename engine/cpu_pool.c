/* cpu_pool.c - the CPU backend's worker pool: persistent threads and one barrier per
 * parallel-for, so a decode step (hundreds of parallel-fors) never creates a thread.
 *
 * A run publishes (fn, ctx) and bumps a generation counter; workers spin briefly on the counter
 * (a forward issues parallel-fors back to back, microseconds apart) and then sleep on a
 * condition variable, so an idle pool costs no CPU on a machine shared with other work. The
 * caller is worker 0 and waits the same way for the others to finish.
 */
#include <stdatomic.h>
#include <stdlib.h>

#include "cpu.h"
#include "plat.h"

/* Spin iterations before sleeping: about 20-50 us of pause instructions. */
#define POOL_SPIN 4000

struct eng_cpu_pool {
    int n;                 /* workers including the caller */
    plat_thread *threads;  /* (n - 1) */
    plat_mutex mu;
    plat_cond start, done;
    atomic_uint gen;       /* bumped once per run */
    atomic_int pending;    /* workers (excluding the caller) still running this generation */
    atomic_bool stop;
    eng_cpu_task fn;       /* written before gen is bumped (release), read after (acquire) */
    void *ctx;
};

typedef struct worker_arg {
    eng_cpu_pool *p;
    int tid;
} worker_arg;

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *worker_main(void *arg) {
    worker_arg wa = *(worker_arg *)arg;
    free(arg);
    eng_cpu_pool *p = wa.p;
    unsigned seen = 0;
    for (;;) {
        unsigned g = atomic_load_explicit(&p->gen, memory_order_acquire);
        for (int i = 0; g == seen && i < POOL_SPIN; i++) {
            cpu_relax();
            g = atomic_load_explicit(&p->gen, memory_order_acquire);
        }
        if (g == seen) {
            plat_mutex_lock(&p->mu);
            while ((g = atomic_load(&p->gen)) == seen && !atomic_load(&p->stop)) plat_cond_wait(&p->start, &p->mu);
            plat_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) return NULL;
        seen = g;
        p->fn(p->ctx, wa.tid, p->n);
        if (atomic_fetch_sub_explicit(&p->pending, 1, memory_order_acq_rel) == 1) {
            plat_mutex_lock(&p->mu);
            plat_cond_broadcast(&p->done);
            plat_mutex_unlock(&p->mu);
        }
    }
}

/* Creates the pool; the caller owns it and frees it with eng_cpu_pool_free. */
eng_cpu_pool *eng_cpu_pool_create(char *err, int threads) {
    if (threads <= 0) threads = plat_ncpu();
    if (threads < 1) threads = 1;
    if (threads > 1024) {
        awq_seterr(err, AWQ_EINVAL, "threads %d: at most 1024", threads);
        return NULL;
    }
    eng_cpu_pool *p = calloc(1, sizeof *p);
    if (!p) goto oom;
    p->n = 1;
    plat_mutex_init(&p->mu);
    plat_cond_init(&p->start);
    plat_cond_init(&p->done);
    atomic_init(&p->gen, 0);
    atomic_init(&p->pending, 0);
    atomic_init(&p->stop, false);
    if (threads > 1) {
        p->threads = calloc((size_t)threads - 1, sizeof *p->threads);
        if (!p->threads) goto oom;
    }
    for (int i = 1; i < threads; i++) {
        worker_arg *wa = malloc(sizeof *wa);
        if (!wa) goto oom;
        wa->p = p;
        wa->tid = i;
        if (plat_thread_create(&p->threads[i - 1], worker_main, wa) != 0) {
            free(wa);
            awq_seterr(err, AWQ_ENOMEM, "cannot start CPU worker thread %d of %d", i, threads);
            eng_cpu_pool_free(p);
            return NULL;
        }
        p->n = i + 1;
    }
    return p;
oom:
    awq_seterr(err, AWQ_ENOMEM, "out of memory creating a pool of %d threads", threads);
    eng_cpu_pool_free(p);
    return NULL;
}

/* Stops and joins every worker, then frees p (NULL is fine). */
void eng_cpu_pool_free(eng_cpu_pool *p) {
    if (!p) return;
    plat_mutex_lock(&p->mu);
    atomic_store(&p->stop, true);
    plat_cond_broadcast(&p->start);
    plat_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++) plat_thread_join(&p->threads[i - 1]);
    plat_cond_destroy(&p->start);
    plat_cond_destroy(&p->done);
    plat_mutex_destroy(&p->mu);
    free(p->threads);
    free(p);
}

int eng_cpu_pool_size(const eng_cpu_pool *p) { return p ? p->n : 1; }

/* Runs fn on all workers (the caller as tid 0) and returns when every one has finished. */
void eng_cpu_pool_run(eng_cpu_pool *p, eng_cpu_task fn, void *ctx) {
    if (!p || p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store(&p->pending, p->n - 1);
    plat_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    plat_cond_broadcast(&p->start);
    plat_mutex_unlock(&p->mu);
    fn(ctx, 0, p->n);
    for (int i = 0; atomic_load_explicit(&p->pending, memory_order_acquire) > 0 && i < POOL_SPIN; i++) cpu_relax();
    if (atomic_load_explicit(&p->pending, memory_order_acquire) > 0) {
        plat_mutex_lock(&p->mu);
        while (atomic_load(&p->pending) > 0) plat_cond_wait(&p->done, &p->mu);
        plat_mutex_unlock(&p->mu);
    }
}
