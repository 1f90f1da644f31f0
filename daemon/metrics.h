/* metrics.h - the daemon's counters, gauges and histograms, rendered as Prometheus text
 * exposition (version 0.0.4) for the "metrics" request.
 *
 * Counters and histograms are written by the engine thread and the I/O thread and read by the
 * I/O thread: every field is a relaxed atomic, so no lock is ever taken to count. A scrape may
 * see a histogram mid-update (count one ahead of a bucket); Prometheus tolerates that.
 *
 * Thread safety: all functions may be called from any thread.
 */
#ifndef AWQD_METRICS_H
#define AWQD_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "awq_util.h"
#include "msg.h"

#define AWQD_HIST_BUCKETS 14

typedef struct awqd_hist {
    const double *bounds;                       /* (AWQD_HIST_BUCKETS) upper bounds, seconds */
    _Atomic uint64_t bucket[AWQD_HIST_BUCKETS]; /* non-cumulative counts; rendered cumulative */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_ns;
} awqd_hist;

/* Gauges the engine and the I/O thread publish for a scrape. */
typedef struct awqd_gauges {
    uint64_t queue_depth, running, kv_used, kv_cached, kv_total, connections;
} awqd_gauges;

typedef struct awqd_metrics {
    _Atomic uint64_t requests[IPC_T_COUNT]; /* by request type */
    _Atomic uint64_t errors;                /* requests answered with an error */
    _Atomic uint64_t tokens_generated, prompt_tokens, prompt_cache_reused, cancelled, busy_rejected;
    awqd_hist ttft, token;                  /* time to first token; time between tokens */
} awqd_metrics;

void awqd_metrics_init(awqd_metrics *m);
/* Record one observation of ns nanoseconds. */
void awqd_hist_observe(awqd_hist *h, uint64_t ns);
void awqd_metrics_count_request(awqd_metrics *m, ipc_type t);
static inline void awqd_metric_add(_Atomic uint64_t *c, uint64_t n) { atomic_fetch_add_explicit(c, n, memory_order_relaxed); }

/* Append the exposition text to out. AWQ_ENOMEM. */
AWQ_NODISCARD int awqd_metrics_render(const awqd_metrics *m, const awqd_gauges *g, awq_buf *out);

#endif
