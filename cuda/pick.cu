/* pick.cu - sampling reduced on the GPU (engine/backend.h, "picking"): the logit edits of bias
 * and penalties, then per row the top candidates (radix select) or the inverse-CDF draw, so
 * that a sampled row crosses to the host as a token or a few KB of candidates instead of the
 * whole row (480 KB at a 120k vocabulary, ~40 us of PCIe per row and the host's pass over it).
 *
 * The reference is eng_samp_pick (engine/sample.c): the same l = w / T (IEEE division), the
 * same cut (l >= lmax - ENG_PICK_CUT), the same order (l desc, then id). Sums of exp differ
 * from the host's only in their order (and CUDA's expf, within 2 ulp), which moves a draw only
 * when u falls within ~1e-7 of a boundary.
 *
 * One 1024-thread block per reduced row; the row is read from L2 (the lm_head just wrote it)
 * a few times: max, then z / the cut / the first radix digit, two more digits, the gather.
 */
#include <float.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.cuh"
#include "pick.cuh"
#include "state.cuh"

#define PK_THREADS 1024
#define PK_WARPS (PK_THREADS / 32)
#define PK_BUF 2048 /* gathered candidates: the top plus the ties at the threshold */

/* ------------------------------------------------------------------ device ---- */

/* a float's order as an unsigned key (larger l, larger key); -0 counts as +0, as the host's
 * comparisons do */
__device__ __forceinline__ uint32_t pk_key(float l) {
    uint32_t u = __float_as_uint(l == 0.0f ? 0.0f : l);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float pk_unkey(uint32_t k) {
    return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

__device__ __forceinline__ float pk_l(const float *w, int v, float T) { return __fdiv_rn(w[v], T); }

/* a block-wide sum or max (ident: the neutral value); every thread gets the result */
template <typename F> __device__ __forceinline__ F pk_block_reduce(F v, F *sm, bool is_max, F ident) {
    for (int o = 16; o > 0; o >>= 1) {
        F x = __shfl_xor_sync(0xffffffffu, v, o);
        v = is_max ? (x > v ? x : v) : v + x;
    }
    const int w = threadIdx.x >> 5, lane = threadIdx.x & 31;
    __syncthreads(); /* sm may still be read from a previous reduction */
    if (lane == 0) sm[w] = v;
    __syncthreads();
    v = lane < PK_WARPS ? sm[lane] : ident;
    for (int o = 16; o > 0; o >>= 1) {
        F x = __shfl_xor_sync(0xffffffffu, v, o);
        v = is_max ? (x > v ? x : v) : v + x;
    }
    return v;
}

/* the bins above a threshold: warp 0 finds the highest bin b of hist (nb bins) at which the
 * count from the top reaches need; *above = the count in the bins above b */
__device__ void pk_find_bin(const int *hist, int nb, int need, int *bin, int *above) {
    if (threadIdx.x >= 32) return;
    const int lane = threadIdx.x, per = nb / 32;
    const int hi = nb - 1 - lane * per; /* lane 0 holds the highest bins */
    int sum = 0;
    for (int j = 0; j < per; j++) sum += hist[hi - j];
    int incl = sum; /* inclusive prefix from lane 0 */
    for (int o = 1; o < 32; o <<= 1) {
        int x = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += x;
    }
    const int excl = incl - sum;
    const unsigned hit = __ballot_sync(0xffffffffu, incl >= need && excl < need);
    if (lane == __ffs(hit) - 1) {
        int acc = excl, j = 0;
        while (acc + hist[hi - j] < need) acc += hist[hi - j++];
        *bin = hi - j;
        *above = acc;
    }
}

__global__ void __launch_bounds__(256) kernel_pick_edit(float *__restrict__ logits, int V, const cup_edit *__restrict__ e,
                                                        int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const cup_edit d = e[i];
    float *p = logits + (size_t)d.row * V + d.id;
    float w = __fadd_rn(*p, d.delta);
    if (d.count > 0) { /* pen_one in engine/sample.c, each step rounded, nothing fused */
        if (d.rep != 1.0f) w = w > 0 ? __fdiv_rn(w, d.rep) : __fmul_rn(w, d.rep);
        w = __fsub_rn(w, __fadd_rn(__fmul_rn(d.freq, (float)d.count), d.pres));
    }
    *p = w;
}

__global__ void __launch_bounds__(PK_THREADS) kernel_pick(const float *__restrict__ logits, int V,
                                                          const cup_row *__restrict__ rows, cup_out *__restrict__ out,
                                                          int *__restrict__ cid, float *__restrict__ cl) {
    __shared__ float smf[PK_WARPS];
    __shared__ double smd[PK_WARPS];
    __shared__ int smi[PK_WARPS];
    __shared__ int hist[2048];
    __shared__ unsigned long long buf[PK_BUF];
    __shared__ int s_bin, s_above, s_cnt, s_id;
    const cup_row r = rows[blockIdx.x];
    const float *w = logits + (size_t)r.row * V;
    const float T = r.t;
    const int tid = threadIdx.x;
    cup_out o = {-1, 0, 0, -INFINITY, 0.0};

    /* pass 1: lmax */
    float m = -INFINITY;
    for (int v = tid; v < V; v += PK_THREADS) {
        const float l = pk_l(w, v, T);
        m = l > m ? l : m;
    }
    const float lmax = pk_block_reduce<float>(m, smf, true, -INFINITY);
    if (!(lmax > -INFINITY)) { /* every logit -inf or NaN */
        if (tid == 0) out[blockIdx.x] = o;
        return;
    }
    const float lb = __fsub_rn(lmax, ENG_PICK_CUT);
    const uint32_t klb = pk_key(lb);

    /* pass 2: z, the cut, the last id inside it (DRAW), the first radix digit (TOP) */
    const bool top = r.mode == ENG_PICK_TOP;
    if (top) {
        for (int j = tid; j < 2048; j += PK_THREADS) hist[j] = 0;
        __syncthreads();
    }
    double z = 0;
    int nc = 0, last = -1;
    for (int v = tid; v < V; v += PK_THREADS) {
        const float l = pk_l(w, v, T);
        if (!(l >= lb)) continue;
        z += (double)expf(__fsub_rn(l, lmax));
        nc++;
        last = v;
        if (top) atomicAdd(&hist[pk_key(l) >> 21], 1);
    }
    z = pk_block_reduce<double>(z, smd, false, 0.0);
    nc = pk_block_reduce<int>(nc, smi, false, 0);
    last = pk_block_reduce<int>(last, smi, true, -1);
    o.n_cut = nc, o.lmax = lmax, o.z = z;

    if (r.mode == ENG_PICK_DRAW) {
        /* pass 3: each warp sums p = (float)(e / z) over its contiguous chunk, in order */
        const int wid = tid >> 5, lane = tid & 31;
        const int ch = ((V + PK_WARPS - 1) / PK_WARPS + 31) & ~31;
        const int v0 = wid * ch, v1 = min(V, v0 + ch);
        double ws = 0;
        for (int v = v0 + lane; v < v1; v += 32) {
            const float l = pk_l(w, v, T);
            if (l >= lb) ws += (double)(float)((double)expf(__fsub_rn(l, lmax)) / z);
        }
        for (int s = 16; s > 0; s >>= 1) ws += __shfl_xor_sync(0xffffffffu, ws, s);
        if (lane == 0) smd[wid] = ws;
        if (tid == 0) s_id = -1;
        __syncthreads();
        if (wid == 0) {
            /* the warp whose span holds u: prefix over the 32 warp sums */
            const double mine = smd[lane];
            double incl = mine;
            for (int s = 1; s < 32; s <<= 1) {
                const double x = __shfl_up_sync(0xffffffffu, incl, s);
                if (lane >= s) incl += x;
            }
            const unsigned hit = __ballot_sync(0xffffffffu, r.u < incl);
            const int hw = hit ? __ffs(hit) - 1 : -1;
            const double base = __shfl_sync(0xffffffffu, incl - mine, hw < 0 ? 0 : hw);
            if (lane == 0) smi[0] = hw, smd[0] = base; /* every lane has read its sum */
        }
        __syncthreads();
        const int hw = smi[0];
        if (hw >= 0 && wid == hw) {
            /* walk the chunk 32 tokens at a time: the first whose running sum passes u */
            double base = smd[0];
            int found = -1, lastc = -1;
            for (int t0 = v0; t0 < v1 && found < 0; t0 += 32) {
                const int v = t0 + lane;
                double p = 0;
                bool ok = false;
                if (v < v1) {
                    const float l = pk_l(w, v, T);
                    ok = l >= lb;
                    if (ok) p = (double)(float)((double)expf(__fsub_rn(l, lmax)) / z);
                }
                double incl = p;
                for (int s = 1; s < 32; s <<= 1) {
                    const double x = __shfl_up_sync(0xffffffffu, incl, s);
                    if (lane >= s) incl += x;
                }
                const unsigned hit = __ballot_sync(0xffffffffu, ok && r.u < base + incl);
                const unsigned okm = __ballot_sync(0xffffffffu, ok);
                if (okm) lastc = t0 + 31 - __clz(okm);
                if (hit) found = t0 + __ffs(hit) - 1;
                base += __shfl_sync(0xffffffffu, incl, 31);
            }
            if (lane == 0) s_id = found >= 0 ? found : lastc; /* rounding left the sum short */
        }
        __syncthreads();
        if (tid == 0) {
            o.id = s_id >= 0 ? s_id : last; /* no warp reached u: the last candidate, as the host */
            out[blockIdx.x] = o;
        }
        return;
    }

    /* TOP: the need-th largest key by radix select (digits of 11, 11 and 10 bits), then every
     * key above it and the ties at it, sorted (key desc, id asc), the first need kept */
    const int need = min(r.top, nc);
    uint32_t prefix = 0, pmask = 0;
    int rem = need, ties = nc;
    bool all = nc <= r.top;
    if (!all) {
        const int shifts[3] = {21, 10, 0}, bitsn[3] = {11, 11, 10};
        for (int d = 0; d < 3; d++) {
            const int nb = 1 << bitsn[d];
            if (d > 0) { /* digit 0's histogram came with pass 2 */
                __syncthreads();
                for (int j = tid; j < nb; j += PK_THREADS) hist[j] = 0;
                __syncthreads();
                for (int v = tid; v < V; v += PK_THREADS) {
                    const float l = pk_l(w, v, T);
                    if (!(l >= lb)) continue;
                    const uint32_t k = pk_key(l);
                    if ((k & pmask) == prefix) atomicAdd(&hist[(k >> shifts[d]) & (nb - 1)], 1);
                }
            }
            __syncthreads();
            pk_find_bin(hist, nb, rem, &s_bin, &s_above);
            __syncthreads();
            rem -= s_above;
            ties = hist[s_bin];
            prefix |= (uint32_t)s_bin << shifts[d];
            pmask |= (uint32_t)(nb - 1) << shifts[d];
        }
    }
    /* gather: keys above the threshold (prefix) and its ties; all of the cut when it fits */
    const int total = all ? nc : need - rem + ties;
    if (total > PK_BUF) { /* ties beyond the buffer: the host reads the row */
        if (tid == 0) o.n = -1, out[blockIdx.x] = o;
        return;
    }
    if (tid == 0) s_cnt = 0;
    __syncthreads();
    const uint32_t kmin = all ? klb : prefix;
    for (int v = tid; v < V; v += PK_THREADS) {
        const float l = pk_l(w, v, T);
        if (!(l >= lb)) continue;
        const uint32_t k = pk_key(l);
        if (k >= kmin) buf[atomicAdd(&s_cnt, 1)] = ((unsigned long long)k << 32) | (0xffffffffu - (uint32_t)v);
    }
    __syncthreads();
    int P = 2;
    while (P < total) P <<= 1;
    for (int j = total + tid; j < P; j += PK_THREADS) buf[j] = 0; /* below every real entry */
    __syncthreads();
    /* bitonic sort, descending */
    for (int k = 2; k <= P; k <<= 1)
        for (int j = k >> 1; j > 0; j >>= 1) {
            for (int i = tid; i < P; i += PK_THREADS) {
                const int x = i ^ j;
                if (x > i) {
                    const unsigned long long a = buf[i], b = buf[x];
                    const bool desc = (i & k) == 0;
                    if (desc ? a < b : a > b) buf[i] = b, buf[x] = a;
                }
            }
            __syncthreads();
        }
    for (int i = tid; i < need; i += PK_THREADS) {
        const unsigned long long e = buf[i];
        cid[r.off + i] = (int)(0xffffffffu - (uint32_t)e);
        cl[r.off + i] = pk_unkey((uint32_t)(e >> 32));
    }
    if (tid == 0) {
        o.n = need;
        o.id = need > 0 ? (int)(0xffffffffu - (uint32_t)buf[0]) : -1;
        out[blockIdx.x] = o;
    }
}

/* ------------------------------------------------------------------ host ---- */

int cup_alloc(char *err, cu_state *s) {
    const size_t R = (size_t)s->max_seqs;
    CU_RET(err, cudaMalloc(&s->pk.d_row, R * sizeof(cup_row)));
    CU_RET(err, cudaMalloc(&s->pk.d_out, R * sizeof(cup_out)));
    CU_RET(err, cudaMalloc(&s->pk.d_cid, R * ENG_PICK_MAX * sizeof(int)));
    CU_RET(err, cudaMalloc(&s->pk.d_cl, R * ENG_PICK_MAX * sizeof(float)));
    CU_RET(err, cudaMallocHost(&s->pk.h_row, R * sizeof(cup_row)));
    CU_RET(err, cudaMallocHost(&s->pk.h_out, R * sizeof(cup_out)));
    CU_RET(err, cudaMallocHost(&s->pk.h_cid, R * ENG_PICK_MAX * sizeof(int)));
    CU_RET(err, cudaMallocHost(&s->pk.h_cl, R * ENG_PICK_MAX * sizeof(float)));
    s->pk.slot_of = (int *)calloc(R, sizeof(int));
    if (!s->pk.slot_of) return awq_seterr(err, AWQ_ENOMEM, "out of memory for the pick rows");
    return 0;
}

void cup_free(cu_state *s) {
    cudaFree(s->pk.d_row);
    cudaFree(s->pk.d_out);
    cudaFree(s->pk.d_cid);
    cudaFree(s->pk.d_cl);
    cudaFree(s->pk.d_edit);
    cudaFreeHost(s->pk.h_row);
    cudaFreeHost(s->pk.h_out);
    cudaFreeHost(s->pk.h_cid);
    cudaFreeHost(s->pk.h_cl);
    cudaFreeHost(s->pk.h_edit);
    free(s->pk.slot_of);
}

/* room for n edits (the previous step's copies are complete: every forward ends synchronized) */
static int edit_room(char *err, cu_state *s, int n) {
    if (n <= s->pk.edit_cap) return 0;
    int cap = s->pk.edit_cap ? s->pk.edit_cap : 1024;
    while (cap < n) cap *= 2;
    cudaFree(s->pk.d_edit);
    cudaFreeHost(s->pk.h_edit);
    s->pk.d_edit = NULL, s->pk.h_edit = NULL, s->pk.edit_cap = 0;
    CU_RET(err, cudaMalloc(&s->pk.d_edit, (size_t)cap * sizeof(cup_edit)));
    CU_RET(err, cudaMallocHost(&s->pk.h_edit, (size_t)cap * sizeof(cup_edit)));
    s->pk.edit_cap = cap;
    return 0;
}

int cup_launch(char *err, cu_state *s, const eng_batch *b) {
    cu_pick *pk = &s->pk;
    int ne = 0, rc;
    for (int i = 0; i < b->n_seq; i++) ne += b->pick[i].mode == ENG_PICK_FULL ? 0 : b->pick[i].n_edit;
    if ((rc = edit_room(err, s, ne))) return rc;
    ne = 0;
    pk->nrow = 0;
    int off = 0;
    for (int i = 0; i < b->n_seq; i++) {
        const eng_pick *p = &b->pick[i];
        pk->slot_of[i] = -1;
        if (p->mode == ENG_PICK_FULL) continue;
        for (int e = 0; e < p->n_edit; e++)
            pk->h_edit[ne++] = {i, p->edit[e].id, p->edit[e].delta, p->edit[e].count, p->rep, p->freq, p->pres};
        /* an argmax of unedited logits is the head's (d_am); edited, it is a top-1 at T = 1 */
        if (p->mode == ENG_PICK_ARGMAX && p->n_edit == 0) continue;
        cup_row r;
        r.row = i;
        r.mode = p->mode == ENG_PICK_DRAW ? ENG_PICK_DRAW : ENG_PICK_TOP;
        r.top = p->mode == ENG_PICK_ARGMAX ? 1 : p->mode == ENG_PICK_TOP ? p->top : 0;
        r.off = off;
        r.t = p->mode == ENG_PICK_ARGMAX ? 1.0f : p->temperature;
        r.u = p->u;
        off += r.top;
        pk->slot_of[i] = pk->nrow;
        pk->h_row[pk->nrow++] = r;
    }
    pk->ncand = off;
    if (ne > 0) {
        CU_RET(err, cudaMemcpyAsync(pk->d_edit, pk->h_edit, (size_t)ne * sizeof(cup_edit), cudaMemcpyHostToDevice, s->st));
        kernel_pick_edit<<<(ne + 255) / 256, 256, 0, s->st>>>(s->logits, s->V, pk->d_edit, ne);
        CU_LAUNCHED(err);
    }
    if (pk->nrow > 0) {
        CU_RET(err, cudaMemcpyAsync(pk->d_row, pk->h_row, (size_t)pk->nrow * sizeof(cup_row), cudaMemcpyHostToDevice,
                                    s->st));
        kernel_pick<<<pk->nrow, PK_THREADS, 0, s->st>>>(s->logits, s->V, pk->d_row, pk->d_out, pk->d_cid, pk->d_cl);
        CU_LAUNCHED(err);
        CU_RET(err, cudaMemcpyAsync(pk->h_out, pk->d_out, (size_t)pk->nrow * sizeof(cup_out), cudaMemcpyDeviceToHost,
                                    s->st));
        if (off > 0) {
            CU_RET(err, cudaMemcpyAsync(pk->h_cid, pk->d_cid, (size_t)off * sizeof(int), cudaMemcpyDeviceToHost, s->st));
            CU_RET(err, cudaMemcpyAsync(pk->h_cl, pk->d_cl, (size_t)off * sizeof(float), cudaMemcpyDeviceToHost, s->st));
        }
    }
    CU_RET(err, cudaMemcpyAsync(s->h_am, s->d_am, (size_t)b->n_seq * sizeof(int), cudaMemcpyDeviceToHost, s->st));
    /* whole rows: runs of consecutive FULL rows in one copy each */
    for (int i = 0; i < b->n_seq;) {
        if (b->pick[i].mode != ENG_PICK_FULL) {
            i++;
            continue;
        }
        int j = i;
        while (j < b->n_seq && b->pick[j].mode == ENG_PICK_FULL) j++;
        CU_RET(err, cudaMemcpyAsync(b->logits + (size_t)i * s->V, s->logits + (size_t)i * s->V,
                                    (size_t)(j - i) * s->V * sizeof(float), cudaMemcpyDeviceToHost, s->st));
        i = j;
    }
    return 0;
}

void cup_collect(cu_state *s, const eng_batch *b) {
    const cu_pick *pk = &s->pk;
    for (int i = 0; i < b->n_seq; i++) {
        const eng_pick *p = &b->pick[i];
        eng_pick_out *po = &b->pick_out[i];
        if (p->mode == ENG_PICK_FULL) continue;
        const int k = pk->slot_of[i];
        if (k < 0) { /* an unedited argmax */
            po->id = s->h_am[i];
            continue;
        }
        const cup_out *o = &pk->h_out[k];
        po->n_cut = o->n_cut, po->lmax = o->lmax, po->z = o->z;
        if (p->mode == ENG_PICK_DRAW) {
            po->id = o->id;
        } else if (p->mode == ENG_PICK_ARGMAX) {
            po->id = o->n > 0 ? pk->h_cid[pk->h_row[k].off] : -1;
        } else {
            po->id = o->id;
            po->n = o->n;
            if (o->n > 0) {
                memcpy(po->ids, pk->h_cid + pk->h_row[k].off, (size_t)o->n * sizeof(int32_t));
                memcpy(po->l, pk->h_cl + pk->h_row[k].off, (size_t)o->n * sizeof(float));
            }
        }
    }
}

int cup_row_copy(char *err, cu_state *s, int i, float *out) {
    if (i < 0 || i >= s->pk.rows_left)
        return awq_seterr(err, AWQ_EINVAL, "logits row %d: the last picking step left %d", i, s->pk.rows_left);
    CU_RET(err, cudaMemcpy(out, s->logits + (size_t)i * s->V, (size_t)s->V * sizeof(float), cudaMemcpyDeviceToHost));
    return 0;
}

/* ------------------------------------------------------------------ probe (tests) ---- */
extern "C" int cu_pick_probe(char *err, int dev, float *logits, int n, int V, const eng_pick *pick, eng_pick_out *out) {
    if (n <= 0 || n > 4096 || V <= 0)
        return awq_seterr(err, AWQ_EINVAL, "cu_pick_probe: %d rows of %d logits", n, V);
    CU_RET(err, cudaSetDevice(dev));
    /* a state with just what the pick path touches */
    cu_state *s = (cu_state *)calloc(1, sizeof *s);
    if (!s) return awq_seterr(err, AWQ_ENOMEM, "out of memory");
    s->V = V, s->max_seqs = n, s->dev = dev;
    int rc = 0;
    eng_batch b = {};
    b.n_seq = n, b.pick = pick, b.pick_out = out, b.logits = logits;
    float *full = (float *)malloc((size_t)n * V * sizeof(float)); /* FULL rows land here, then in logits */
    if (!full) {
        rc = awq_seterr(err, AWQ_ENOMEM, "out of memory");
        goto done;
    }
    b.logits = full;
    CU_GOTO(err, rc, done, cudaMalloc(&s->logits, (size_t)n * V * sizeof(float)));
    CU_GOTO(err, rc, done, cudaMalloc(&s->d_am, (size_t)n * sizeof(int)));
    CU_GOTO(err, rc, done, cudaMalloc(&s->d_am_part, cuo_argmax_part_bytes(n)));
    CU_GOTO(err, rc, done, cudaMallocHost(&s->h_am, (size_t)n * sizeof(int)));
    if ((rc = cup_alloc(err, s))) goto done;
    CU_GOTO(err, rc, done, cudaMemcpy(s->logits, logits, (size_t)n * V * sizeof(float), cudaMemcpyHostToDevice));
    if ((rc = cuo_argmax(err, s->logits, n, V, s->d_am, s->d_am_part, 0))) goto done;
    if ((rc = cup_launch(err, s, &b))) goto done;
    CU_GOTO(err, rc, done, cudaStreamSynchronize(0));
    cup_collect(s, &b);
    /* the rows as the GPU left them (edited), FULL rows as copied */
    CU_GOTO(err, rc, done, cudaMemcpy(logits, s->logits, (size_t)n * V * sizeof(float), cudaMemcpyDeviceToHost));
    for (int i = 0; i < n; i++)
        if (pick[i].mode == ENG_PICK_FULL) memcpy(logits + (size_t)i * V, full + (size_t)i * V, (size_t)V * sizeof(float));
done:
    cup_free(s);
    cudaFree(s->logits);
    cudaFree(s->d_am);
    cudaFree(s->d_am_part);
    cudaFreeHost(s->h_am);
    free(full);
    free(s);
    return rc;
}
