/* metrics.c - counters and histograms in Prometheus text format; see metrics.h. */
#include "metrics.h"

#include <string.h>

/* Time to first token spans a tiny CPU model (~1 ms) to a 7B prefill of a long prompt on CPU
 * (tens of seconds); token gaps span a GPU decode (~2 ms) to a CPU one (~1 s). */
static const double ttft_bounds[AWQD_HIST_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                      1,     2.5,  5,     10,   30,  60,  120};
static const double token_bounds[AWQD_HIST_BUCKETS] = {0.001, 0.002, 0.005, 0.01, 0.02, 0.035, 0.05,
                                                       0.075, 0.1,   0.2,   0.5,  1,    2,     5};

#define LD(x) atomic_load_explicit(&(x), memory_order_relaxed)

void awqd_metrics_init(awqd_metrics *m) {
    memset(m, 0, sizeof *m);
    m->ttft.bounds = ttft_bounds;
    m->token.bounds = token_bounds;
}

void awqd_hist_observe(awqd_hist *h, uint64_t ns) {
    double s = (double)ns / 1e9;
    for (int i = 0; i < AWQD_HIST_BUCKETS; i++)
        if (s <= h->bounds[i]) {
            awqd_metric_add(&h->bucket[i], 1);
            break;
        }
    /* above the last bound: only +Inf (count) holds it */
    awqd_metric_add(&h->sum_ns, ns);
    awqd_metric_add(&h->count, 1);
}

void awqd_metrics_count_request(awqd_metrics *m, ipc_type t) {
    if (t > IPC_T_UNKNOWN && t < IPC_T_COUNT) awqd_metric_add(&m->requests[t], 1);
}

static int hist(awq_buf *o, const char *name, const char *help, const awqd_hist *h) {
    int e = 0;
    e |= awq_buf_printf(o, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    uint64_t cum = 0;
    for (int i = 0; i < AWQD_HIST_BUCKETS; i++) {
        cum += LD(h->bucket[i]);
        e |= awq_buf_printf(o, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i], (unsigned long long)cum);
    }
    uint64_t n = LD(h->count);
    if (n < cum) n = cum; /* a racing observe: keep the exposition monotonic */
    e |= awq_buf_printf(o, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)n);
    e |= awq_buf_printf(o, "%s_sum %.9f\n%s_count %llu\n", name, (double)LD(h->sum_ns) / 1e9, name,
                        (unsigned long long)n);
    return e;
}

static int one(awq_buf *o, const char *name, const char *type, const char *help, uint64_t v) {
    return awq_buf_printf(o, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
                          (unsigned long long)v);
}

int awqd_metrics_render(const awqd_metrics *m, const awqd_gauges *g, awq_buf *o) {
    int e = 0;
    e |= awq_buf_puts(o, "# HELP awqd_requests_total Requests received, by type.\n"
                         "# TYPE awqd_requests_total counter\n");
    for (int t = IPC_T_UNKNOWN + 1; t < IPC_T_COUNT; t++) {
        if (!ipc_type_is_request((ipc_type)t) || t == IPC_T_HELLO) continue;
        e |= awq_buf_printf(o, "awqd_requests_total{type=\"%s\"} %llu\n", ipc_type_name((ipc_type)t),
                            (unsigned long long)LD(m->requests[t]));
    }
    e |= one(o, "awqd_request_errors_total", "counter", "Requests answered with an error.", LD(m->errors));
    e |= one(o, "awqd_busy_rejected_total", "counter", "Requests refused because the queue was full.",
             LD(m->busy_rejected));
    e |= one(o, "awqd_cancelled_total", "counter", "Generations cancelled (by the client or a disconnect).",
             LD(m->cancelled));
    e |= one(o, "awqd_tokens_generated_total", "counter", "Tokens generated.", LD(m->tokens_generated));
    e |= one(o, "awqd_prompt_tokens_total", "counter", "Prompt tokens of admitted generations.", LD(m->prompt_tokens));
    e |= one(o, "awqd_prompt_cache_reused_tokens_total", "counter",
             "Prompt tokens served from a cached sequence's KV instead of being prefilled.", LD(m->prompt_cache_reused));
    e |= hist(o, "awqd_ttft_seconds", "Time from a generate request's arrival to its first token.", &m->ttft);
    e |= hist(o, "awqd_token_seconds", "Time between consecutive tokens of one generation.", &m->token);
    e |= one(o, "awqd_queue_depth", "gauge", "Generations waiting for a sequence slot.", g->queue_depth);
    e |= one(o, "awqd_running_sequences", "gauge", "Generations being decoded.", g->running);
    e |= one(o, "awqd_kv_slots_used", "gauge", "KV-cache slots held by running generations.", g->kv_used);
    e |= one(o, "awqd_kv_slots_cached", "gauge", "KV-cache slots kept for prompt-cache reuse.", g->kv_cached);
    e |= one(o, "awqd_kv_slots_total", "gauge", "KV-cache slots of the loaded model.", g->kv_total);
    e |= one(o, "awqd_connections", "gauge", "Open client connections.", g->connections);
    return e ? AWQ_ENOMEM : 0;
}
