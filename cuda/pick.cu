/* pick.cu - sampling reduced on the GPU (engine/backend.h, "picking"): the logit edits of bias
 * and penalties, then per row the top candidates (radix select), the inverse-CDF draw, or the
 * top-p / min-p nucleus and its draw, so that a sampled row crosses to the host as a token or a
 * few KB of candidates instead of the whole row (480 KB at a 120k vocabulary, ~40 us of PCIe
 * per row and the host's pass over it).
 *
 * The reference is eng_samp_pick (engine/sample.c): the same l = w / T (IEEE division), the
 * same cut (l >= lmax - ENG_PICK_CUT), the same order (l desc, then id). Sums of exp differ
 * from the host's only in their order (and CUDA's expf, within 2 ulp), which moves a draw only
 * when u falls within ~1e-7 of a boundary.
 *
 * One 1024-thread block per reduced row. The first pass reads the row (from L2: the lm_head
 * just wrote it) and keeps l as 32-bit order keys in a scratch row; the passes after read the
 * keys: z and the cut with the first radix digit, two more digits, the gather and sort, and for
 * a nucleus wider than the candidates the mass selects (docs/cuda.md).
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

/* A running count over histogram bins (nb of them, a multiple of 32): warp 0 finds the first
 * bin, walking from the highest (down) or the lowest, at which the running count reaches need;
 * *before = the count of the bins walked before it. The caller guarantees the total reaches
 * need. */
template <typename C> __device__ void pk_find(const C *hist, int nb, C need, bool down, int *bin, C *before) {
    if (threadIdx.x >= 32) return;
    const int lane = threadIdx.x, per = nb / 32;
    /* lane's bins, in walking order: b(j) for j = 0 .. per-1 */
    const int first = down ? nb - 1 - lane * per : lane * per, step = down ? -1 : 1;
    C sum = 0;
    for (int j = 0; j < per; j++) sum += hist[first + step * j];
    C incl = sum;
    for (int o = 1; o < 32; o <<= 1) {
        const C x = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl += x;
    }
    const C excl = incl - sum;
    const unsigned hit = __ballot_sync(0xffffffffu, incl >= need && excl < need);
    if (lane == __ffs(hit) - 1) {
        C acc = excl;
        int j = 0;
        while (acc + hist[first + step * j] < need) acc += hist[first + step * j++];
        *bin = first + step * j;
        *before = acc;
    }
}

/* The sampling set of a NUCLEUS row as the host's choose() builds it: inside the cut, inside
 * the top-p nucleus (keys above tn, and the ties at tn up to id idn), then as likely as min-p
 * asks ((float)(e / zn) >= thm; e times the reciprocal of zn, which rounds to the host's float
 * but for one token in ~2^29). */
typedef struct pk_set {
    uint32_t klb; /* the cut's key */
    float lmax;
    bool nuc, mp;
    uint32_t tn;
    int idn;
    double inv_zn;
    float thm;
} pk_set;

__device__ __forceinline__ bool pk_in(const pk_set &S, float l, uint32_t k, int v) {
    if (k < S.klb) return false;
    if (S.nuc && !(k > S.tn || (k == S.tn && v <= S.idn))) return false;
    if (S.mp && !((float)((double)expf(__fsub_rn(l, S.lmax)) * S.inv_zn) >= S.thm)) return false;
    return true;
}

/* A token's probability over the normaliser 1 / invZ as the host computes it (a float; a
 * double product for the host's quotient, see pk_set), in units of 2^-62: exact for
 * p >= 2^-39, so integer sums in any order are the host's sorted-order double sums (to ~1e-16),
 * and the same on every run. */
__device__ __forceinline__ unsigned long long pk_q(float l, float lmax, double invZ) {
    const float p = (float)((double)expf(__fsub_rn(l, lmax)) * invZ);
    return __double2ull_rn((double)p * 0x1p62);
}

/* The first token of the set S, in the sorted order (l desc, then id), at which the running sum
 * of pk_q over S (normaliser Z) reaches target: its key and id; false when all of S falls short.
 * A radix select over the key's digits (11, 11, 10 bits) on the bins' mass, then over the ids of
 * the ties at the key found (11 and 11 bits; vocabularies below 2^22) on their count. Every
 * thread of the block calls it; hm / hc are the block's 2048-bin histograms. */
__device__ bool pk_select_mass(const uint32_t *__restrict__ kr, int V, const pk_set &S, double Z,
                               unsigned long long target, unsigned long long *hm, int *hc, int *hid, int *s_bin,
                               unsigned long long *s_before, int *s_cbefore, uint32_t *key_out, int *id_out) {
    const int tid = threadIdx.x;
    const double invZ = 1.0 / Z;
    const int shifts[3] = {21, 10, 0}, bitsn[3] = {11, 11, 10};
    uint32_t prefix = 0, pmask = 0;
    unsigned long long above = 0;
    int ties = 0;
    for (int d = 0; d < 3; d++) {
        const int nb = 1 << bitsn[d];
        __syncthreads();
        for (int j = tid; j < nb; j += PK_THREADS) hm[j] = 0, hc[j] = 0, hid[j & 1023] = -1;
        if (tid == 0) *s_bin = -1;
        __syncthreads();
        /* a thread's run of tokens in one bin is added once: a 64-bit shared atomic is a CAS
         * loop, and most of a row's tail shares the first digit's few bins */
        int cb = -1, cc = 0, cv = -1; /* cv: the run's last (largest) id, for the last digit's ties */
        unsigned long long cq = 0;
        for (int v = tid; v < V; v += PK_THREADS) {
            const uint32_t k = kr[v];
            if ((k & pmask) != prefix || k < S.klb) continue;
            const float l = pk_unkey(k);
            if (!pk_in(S, l, k, v)) continue;
            const int b = (int)((k >> shifts[d]) & (uint32_t)(nb - 1));
            if (b != cb) {
                if (cb >= 0) {
                    atomicAdd(&hm[cb], cq), atomicAdd(&hc[cb], cc);
                    if (d == 2) atomicMax(&hid[cb], cv);
                }
                cb = b, cq = 0, cc = 0;
            }
            cq += pk_q(l, S.lmax, invZ);
            cc++;
            cv = v;
        }
        if (cb >= 0) {
            atomicAdd(&hm[cb], cq), atomicAdd(&hc[cb], cc);
            if (d == 2) atomicMax(&hid[cb], cv);
        }
        __syncthreads();
        pk_find<unsigned long long>(hm, nb, target - above, true, s_bin, s_before);
        __syncthreads();
        const int b = *s_bin;
        if (b < 0) return false; /* d = 0 only: the set's whole mass is short of the target */
        above += *s_before;
        ties = hc[b];
        if (d == 2) *id_out = hid[b]; /* the largest id of the ties */
        prefix |= (uint32_t)b << shifts[d];
        pmask |= (uint32_t)(nb - 1) << shifts[d];
    }
    /* the ties at the key share one probability q: the j-th of them in id order crosses */
    const unsigned long long q = pk_q(pk_unkey(prefix), S.lmax, invZ), need = target - above;
    int j = q ? (int)((need + q - 1) / q) : 1;
    j = j < 1 ? 1 : (j > ties ? ties : j);
    *key_out = prefix;
    if (j == ties) return true; /* the last of the ties (a lone token, mostly): its id is known */
    int idb = 0;
    for (int d = 0; d < 2; d++) { /* the j-th smallest id among them: digits id >> 11, id & 2047 */
        __syncthreads();
        for (int i = tid; i < 2048; i += PK_THREADS) hc[i] = 0;
        if (tid == 0) *s_bin = -1;
        __syncthreads();
        for (int v = tid; v < V; v += PK_THREADS) {
            const uint32_t k = kr[v];
            if (k != prefix || (d == 1 && (v >> 11) != idb) || !pk_in(S, pk_unkey(k), k, v)) continue;
            atomicAdd(&hc[d == 0 ? (v >> 11) & 2047 : v & 2047], 1);
        }
        __syncthreads();
        pk_find<int>(hc, 2048, j, false, s_bin, s_cbefore);
        __syncthreads();
        if (*s_bin < 0) return false; /* cannot happen: the ties were counted above */
        j -= *s_cbefore;
        idb = d == 0 ? *s_bin : (idb << 11) | *s_bin;
    }
    *id_out = idb;
    return true;
}

/* shared memory a NUCLEUS row's selects work in (kernel_pick's) */
typedef struct pk_smem {
    unsigned long long *buf; /* (PK_BUF) TOP's candidates, then the mass histogram */
    int *hist, *hid;         /* (2048), (1024) */
    double *smd;             /* (PK_WARPS) */
    unsigned long long *smu; /* (PK_WARPS) */
    int *s_bin, *s_cbefore, *s_first;
    unsigned long long *s_before;
} pk_smem;

/* NUCLEUS over the whole row (the nucleus wider than the candidates): top-p, the sorted prefix
 * whose mass reaches top_p; then min-p over its softmax; then the draw at u in the same order,
 * each a radix select on mass (choose() in sample.c). The token, in every thread. */
__device__ int pk_nucleus_rows(const uint32_t *__restrict__ kr, int V, uint32_t klb, float lmax, double z,
                               const cup_row &r, const pk_smem &m) {
    const int tid = threadIdx.x;
    pk_set S = {klb, lmax, false, false, 0u, 0, 0.0, 0.0f};
    uint32_t kt = 0;
    int it = 0;
    double zs = z;
    if (r.top_p < 1.0f && pk_select_mass(kr, V, S, z, __double2ull_rn((double)r.top_p * 0x1p62), m.buf, m.hist, m.hid,
                                         m.s_bin, m.s_before, m.s_cbefore, &kt, &it))
        S.nuc = true, S.tn = kt, S.idn = it;
    if (r.min_p > 0.0f) {
        if (S.nuc) { /* min-p is relative to the nucleus's softmax */
            double zn = 0;
            for (int v = tid; v < V; v += PK_THREADS) {
                const uint32_t k = kr[v];
                if (k < klb) continue;
                const float l = pk_unkey(k);
                if (pk_in(S, l, k, v)) zn += (double)expf(__fsub_rn(l, lmax));
            }
            zs = pk_block_reduce<double>(zn, m.smd, false, 0.0);
        }
        S.mp = true, S.inv_zn = 1.0 / zs, S.thm = __fmul_rn(r.min_p, (float)(1.0 / zs));
    }
    /* the final normaliser, and the set's last token in the order (the draw's fallback) */
    double zf = 0;
    unsigned long long lastk = 0;
    for (int v = tid; v < V; v += PK_THREADS) {
        const uint32_t k = kr[v];
        if (k < klb) continue;
        const float l = pk_unkey(k);
        if (!pk_in(S, l, k, v)) continue;
        zf += (double)expf(__fsub_rn(l, lmax));
        const unsigned long long c = ((unsigned long long)~k << 32) | (unsigned)v;
        lastk = c > lastk ? c : lastk;
    }
    zf = pk_block_reduce<double>(zf, m.smd, false, 0.0);
    lastk = pk_block_reduce<unsigned long long>(lastk, m.smu, true, 0ull);
    const bool hit = pk_select_mass(kr, V, S, zf, __double2ull_rd(r.u * 0x1p62) + 1, m.buf, m.hist, m.hid, m.s_bin,
                                    m.s_before, m.s_cbefore, &kt, &it);
    return hit ? it : (int)(uint32_t)lastk;
}

/* an inclusive prefix sum over the block (thread order), every thread its own */
__device__ double pk_block_scan(double x, double *sm) {
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    for (int o = 1; o < 32; o <<= 1) {
        const double y = __shfl_up_sync(0xffffffffu, x, o);
        if (lane >= o) x += y;
    }
    __syncthreads(); /* sm may still be read from a previous use */
    if (lane == 31) sm[wid] = x;
    __syncthreads();
    double before = 0;
    for (int w = 0; w < wid; w++) before += sm[w];
    return x + before;
}

/* The first of the sorted candidates c[0..n) (n of the row's nc in the cut) whose flag is set,
 * n when none: a block-wide minimum. */
__device__ int pk_first(bool flag, int n, int *s_first) {
    __syncthreads();
    if (threadIdx.x == 0) *s_first = n;
    __syncthreads();
    if (flag) atomicMin(s_first, (int)threadIdx.x);
    __syncthreads();
    return *s_first;
}

/* NUCLEUS over the sorted candidates buf[0..n) (one per thread; n of the nc tokens in the cut)
 * when they hold the nucleus and the min-p set: filter_draw() of sample.c step for step. false
 * (nothing decided) when the set may reach past them. */
__device__ bool pk_nucleus_cands(int n, int nc, float lmax, double z, const cup_row &r, const pk_smem &m, int *id) {
    const int i = threadIdx.x;
    const bool valid = i < n;
    const unsigned long long c = valid ? m.buf[i] : 0ull;
    const int cid = valid ? (int)(0xffffffffu - (uint32_t)c) : -1;
    const float e = valid ? expf(__fsub_rn(pk_unkey((uint32_t)(c >> 32)), lmax)) : 0.0f;
    int kf = n;     /* the survivors: a prefix */
    double zs = z;  /* their softmax's denominator, as the host sums it */
    if (r.top_p < 1.0f) {
        const double cum = pk_block_scan(valid ? (double)(float)((double)e / z) : 0.0, m.smd);
        const int f = pk_first(valid && cum >= r.top_p, n, m.s_first);
        if (f == n && n < nc) return false;
        kf = f == n ? n : f + 1;
        zs = pk_block_reduce<double>(i < kf ? (double)e : 0.0, m.smd, false, 0.0);
    }
    if (r.min_p > 0.0f) {
        const float th = __fmul_rn(r.min_p, (float)(1.0 / zs));
        const int f = pk_first(i < kf && !((float)((double)e / zs) >= th), kf, m.s_first);
        if (f == kf && kf == n && n < nc) return false; /* every candidate passes: more may */
        kf = f;
        zs = pk_block_reduce<double>(i < kf ? (double)e : 0.0, m.smd, false, 0.0);
    }
    /* the draw: the first whose running sum of (float)(e / zs) passes u, else the last */
    const double cum = pk_block_scan(i < kf ? (double)(float)((double)e / zs) : 0.0, m.smd);
    const int f = pk_first(i < kf && r.u < cum, kf, m.s_first);
    __syncthreads();
    if (i == (f < kf ? f : kf - 1)) *m.s_first = cid;
    __syncthreads();
    *id = *m.s_first;
    return true;
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
                                                          int *__restrict__ cid, float *__restrict__ cl,
                                                          uint32_t *__restrict__ keys) {
    __shared__ double smd[PK_WARPS];
    __shared__ int smi[PK_WARPS];
    __shared__ unsigned long long smu[PK_WARPS];
    __shared__ int hist[2048];
    __shared__ int hid[1024];
    __shared__ unsigned long long buf[PK_BUF]; /* TOP's candidates, NUCLEUS's mass histogram */
    __shared__ int s_bin, s_above, s_cnt, s_id, s_cbefore, s_first;
    __shared__ unsigned long long s_before;
    const pk_smem m = {buf, hist, hid, smd, smu, &s_bin, &s_cbefore, &s_first, &s_before};
    const cup_row r = rows[blockIdx.x];
    const float *w = logits + (size_t)r.row * V;
    const float T = r.t;
    const int tid = threadIdx.x;
    cup_out o = {-1, 0, 0, -INFINITY, 0.0};

    /* pass 1: l = w / T once, kept as its order key (NaN as 0, below -inf's) for the passes
     * after; lmax */
    uint32_t *kr = keys + (size_t)blockIdx.x * V;
    uint32_t km = 0;
    for (int v = tid; v < V; v += PK_THREADS) {
        const float l = pk_l(w, v, T);
        const uint32_t k = l == l ? pk_key(l) : 0u;
        kr[v] = k;
        km = k > km ? k : km;
    }
    km = pk_block_reduce<uint32_t>(km, (uint32_t *)smi, true, 0u);
    if (km <= pk_key(-INFINITY)) { /* every logit -inf or NaN */
        if (tid == 0) out[blockIdx.x] = o;
        return;
    }
    __syncthreads(); /* the keys are read by other threads from here */
    const float lmax = pk_unkey(km);
    const float lb = __fsub_rn(lmax, ENG_PICK_CUT);
    const uint32_t klb = pk_key(lb);

    /* pass 2: z, the cut, the last id inside it (DRAW), the first radix digit (TOP) */
    const bool top = r.mode == ENG_PICK_TOP || r.mode == ENG_PICK_NUCLEUS;
    if (top) {
        for (int j = tid; j < 2048; j += PK_THREADS) hist[j] = 0;
        __syncthreads();
    }
    double z = 0;
    int nc = 0, last = -1, cb = -1, cc = 0; /* cb, cc: a run of one bin, added once (as in pk_select_mass) */
    for (int v = tid; v < V; v += PK_THREADS) {
        const uint32_t k = kr[v];
        if (k < klb) continue;
        const float l = pk_unkey(k);
        z += (double)expf(__fsub_rn(l, lmax));
        nc++;
        last = v;
        if (!top) continue;
        const int b = (int)(k >> 21);
        if (b != cb) {
            if (cb >= 0) atomicAdd(&hist[cb], cc);
            cb = b, cc = 0;
        }
        cc++;
    }
    if (cb >= 0) atomicAdd(&hist[cb], cc);
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
            const uint32_t k = kr[v];
            if (k >= klb) ws += (double)(float)((double)expf(__fsub_rn(pk_unkey(k), lmax)) / z);
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
                    const uint32_t k = kr[v];
                    ok = k >= klb;
                    if (ok) p = (double)(float)((double)expf(__fsub_rn(pk_unkey(k), lmax)) / z);
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
     * key above it and the ties at it, sorted (key desc, id asc), the first need kept. NUCLEUS
     * takes the first PK_THREADS the same way and decides from them when the nucleus and the
     * min-p set lie inside (real models' nuclei, mostly), else from the whole row. */
    const bool nucleus = r.mode == ENG_PICK_NUCLEUS;
    const int want = nucleus ? PK_THREADS : r.top;
    const int need = min(want, nc);
    uint32_t prefix = 0, pmask = 0;
    int rem = need, ties = nc;
    bool all = nc <= want;
    if (!all) {
        const int shifts[3] = {21, 10, 0}, bitsn[3] = {11, 11, 10};
        for (int d = 0; d < 3; d++) {
            const int nb = 1 << bitsn[d];
            if (d > 0) { /* digit 0's histogram came with pass 2 */
                __syncthreads();
                for (int j = tid; j < nb; j += PK_THREADS) hist[j] = 0;
                __syncthreads();
                int rb = -1, rc = 0;
                for (int v = tid; v < V; v += PK_THREADS) {
                    const uint32_t k = kr[v];
                    if (k < klb || (k & pmask) != prefix) continue;
                    const int b = (int)((k >> shifts[d]) & (uint32_t)(nb - 1));
                    if (b != rb) {
                        if (rb >= 0) atomicAdd(&hist[rb], rc);
                        rb = b, rc = 0;
                    }
                    rc++;
                }
                if (rb >= 0) atomicAdd(&hist[rb], rc);
            }
            __syncthreads();
            pk_find<int>(hist, nb, rem, true, &s_bin, &s_above);
            __syncthreads();
            rem -= s_above;
            ties = hist[s_bin];
            prefix |= (uint32_t)s_bin << shifts[d];
            pmask |= (uint32_t)(nb - 1) << shifts[d];
        }
    }
    /* gather: keys above the threshold (prefix) and its ties; all of the cut when it fits */
    const int total = all ? nc : need - rem + ties;
    if (total > PK_BUF) { /* ties beyond the buffer: the host reads the row (NUCLEUS: the whole-row selects) */
        if (nucleus) o.id = pk_nucleus_rows(kr, V, klb, lmax, z, r, m);
        if (tid == 0) {
            if (!nucleus) o.n = -1;
            out[blockIdx.x] = o;
        }
        return;
    }
    if (tid == 0) s_cnt = 0;
    __syncthreads();
    const uint32_t kmin = all ? klb : prefix;
    for (int v = tid; v < V; v += PK_THREADS) {
        const uint32_t k = kr[v];
        if (k >= klb && k >= kmin) buf[atomicAdd(&s_cnt, 1)] = ((unsigned long long)k << 32) | (0xffffffffu - (uint32_t)v);
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
    if (nucleus) {
        int id = -1;
        if (!pk_nucleus_cands(need, nc, lmax, z, r, m, &id)) id = pk_nucleus_rows(kr, V, klb, lmax, z, r, m);
        if (tid == 0) o.id = id, out[blockIdx.x] = o;
        return;
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
    CU_RET(err, cudaMalloc(&s->pk.d_key, R * s->V * sizeof(uint32_t)));
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
    cudaFree(s->pk.d_key);
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
    if (s->V > (1 << 22)) /* the NUCLEUS id select's two 11-bit digits */
        for (int i = 0; i < b->n_seq; i++)
            if (b->pick[i].mode == ENG_PICK_NUCLEUS)
                return awq_seterr(err, AWQ_EINVAL, "cuda: top-p / min-p sampling over %d tokens (at most %d)", s->V,
                                  1 << 22);
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
        r.mode = p->mode == ENG_PICK_ARGMAX ? ENG_PICK_TOP : p->mode;
        r.top = p->mode == ENG_PICK_ARGMAX ? 1 : p->mode == ENG_PICK_TOP ? p->top : 0;
        r.off = off;
        r.t = p->mode == ENG_PICK_ARGMAX ? 1.0f : p->temperature;
        r.u = p->u;
        r.top_p = p->top_p, r.min_p = p->min_p;
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
        kernel_pick<<<pk->nrow, PK_THREADS, 0, s->st>>>(s->logits, s->V, pk->d_row, pk->d_out, pk->d_cid, pk->d_cl,
                                                        pk->d_key);
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
        /* id: the draw, or a top's first (an edited argmax is a top 1); n -1: not reduced */
        const cup_out *o = &pk->h_out[k];
        po->id = o->id, po->n = o->n, po->n_cut = o->n_cut, po->lmax = o->lmax, po->z = o->z;
        if (p->mode == ENG_PICK_TOP && o->n > 0) {
            memcpy(po->ids, pk->h_cid + pk->h_row[k].off, (size_t)o->n * sizeof(int32_t));
            memcpy(po->l, pk->h_cl + pk->h_row[k].off, (size_t)o->n * sizeof(float));
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
