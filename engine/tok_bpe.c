/* tok_bpe.c - the BPE model of Hugging Face `tokenizers` (models/bpe/model.rs, word.rs) for one
 * normalized piece of text.
 *
 * 1. Split the piece into characters (Unicode scalar values). A character in the vocabulary is
 *    one symbol; else, with byte_fallback, its UTF-8 bytes as "<0xNN>" symbols (when all of them
 *    exist); else the unk token, consecutive unks fused into one when fuse_unk.
 * 2. Merge: repeatedly merge the adjacent pair with the lowest merge rank (ties: leftmost).
 *    Symbols form a doubly linked list over an array; candidate pairs sit in a 4-ary min-heap
 *    keyed (rank, position). A merge pushes at most two new candidates; an entry whose pair no
 *    longer exists (its left symbol was merged away, or its right neighbour changed) is skipped
 *    when popped ("lazy invalidation"), exactly as word.rs does. Each of the n-1 possible merges
 *    costs O(log n), so a piece of n characters takes O(n log n) whatever its content: a 1 MB run
 *    of one repeated character is no worse than prose.
 */
#include <stdlib.h>
#include <string.h>

#include "tok_impl.h"

/* ------------------------------------------------------------------ growable ids ---- */

int eng_tok_ids_push(tok_ids *a, int32_t id) {
    if (a->n == a->cap) {
        size_t ncap = a->cap ? a->cap * 2 : 64;
        if (ncap > SIZE_MAX / sizeof(int32_t)) return AWQ_ENOMEM;
        int32_t *nv = realloc(a->v, ncap * sizeof(int32_t));
        if (!nv) return AWQ_ENOMEM;
        a->v = nv;
        a->cap = ncap;
    }
    a->v[a->n++] = id;
    return 0;
}

/* ------------------------------------------------------------------ symbols and heap ---- */

typedef struct sym {
    int32_t id;
    int32_t prev, next; /* indices into the symbol array, -1 at the ends */
    uint32_t len;       /* bytes of the piece covered; 0 = merged into its left neighbour */
} sym;

/* A candidate merge: (rank << 32) | position of its left symbol, so that one integer compare
 * gives word.rs's order (lower rank first, then leftmost). The merged id is not stored: ranks
 * are unique per pair, so a popped candidate is still valid exactly when the pair now at its
 * position has a merge of the same rank (word.rs compares the merged id instead; the two tests
 * agree because symbols only grow, so a changed pair always spells a different string). */
typedef uint64_t cand;

typedef struct heap {
    cand *v;
    size_t n, cap;
} heap;

static inline bool cand_less(const cand *a, const cand *b) { return *a < *b; }

static inline cand mk_cand(uint32_t rank, int32_t pos) { return ((uint64_t)rank << 32) | (uint32_t)pos; }

/* A 4-ary heap: half the depth of a binary one, and the four children of a node share a cache
 * line or two, which matters when a 1 MB piece puts a million candidates in it. */
#define HEAP_D 4

static void sift_up(heap *h, size_t i, cand c) {
    while (i > 0) {
        size_t p = (i - 1) / HEAP_D;
        if (!cand_less(&c, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = c;
}

static void sift_down(heap *h, size_t i, cand c) {
    for (;;) {
        size_t first = HEAP_D * i + 1, m = i;
        if (first >= h->n) break;
        const cand *best = &c;
        size_t last = first + HEAP_D < h->n ? first + HEAP_D : h->n;
        for (size_t k = first; k < last; k++)
            if (cand_less(&h->v[k], best)) {
                m = k;
                best = &h->v[k];
            }
        if (m == i) break;
        h->v[i] = h->v[m];
        i = m;
    }
    h->v[i] = c;
}

static int heap_reserve(heap *h, size_t need) {
    if (need <= h->cap) return 0;
    size_t ncap = h->cap ? h->cap : 64;
    while (ncap < need) ncap *= 2;
    if (ncap > SIZE_MAX / sizeof(cand)) return AWQ_ENOMEM;
    cand *nv = realloc(h->v, ncap * sizeof(cand));
    if (!nv) return AWQ_ENOMEM;
    h->v = nv;
    h->cap = ncap;
    return 0;
}

static int heap_push(heap *h, cand c) {
    if (heap_reserve(h, h->n + 1)) return AWQ_ENOMEM;
    sift_up(h, h->n++, c);
    return 0;
}

/* Floyd's bottom-up construction of the first candidates: O(n) instead of O(n log n). */
static void heapify(heap *h) {
    for (size_t i = h->n / HEAP_D + 1; i-- > 0;)
        if (i < h->n) sift_down(h, i, h->v[i]);
}

static cand heap_pop(heap *h) {
    cand top = h->v[0];
    cand last = h->v[--h->n];
    if (h->n) sift_down(h, 0, last);
    return top;
}

static bool merge_of(const eng_tok *t, int32_t a, int32_t b, uint32_t *rank, int32_t *new_id) {
    uint64_t v;
    if (!eng_hmap_u64_get(&t->merges, ((uint64_t)(uint32_t)a << 32) | (uint32_t)b, &v)) return false;
    *rank = (uint32_t)(v >> 32);
    *new_id = (int32_t)(uint32_t)v;
    return true;
}

/* Push the candidate pair starting at symbol pos (when it has a merge). */
static int push_pair(const eng_tok *t, const sym *s, int32_t pos, heap *h) {
    int32_t nx = s[pos].next;
    if (nx < 0) return 0;
    uint32_t rank;
    int32_t nid;
    if (!merge_of(t, s[pos].id, s[nx].id, &rank, &nid)) return 0;
    return heap_push(h, mk_cand(rank, pos));
}

/* ------------------------------------------------------------------ the model ---- */

/* Step 1: characters to initial symbols (merge_word in model.rs). */
static int initial_symbols(char *err, const eng_tok *t, const char *s, size_t len, sym *out, int32_t *n_p) {
    int32_t n = 0;
    int32_t unk_len = 0; /* pending (fused) unk, 0 = none */
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t cl = awq_utf8_decode(s + i, len - i, &cp);
        if (!cl) return awq_seterr(err, AWQ_EINTERNAL, "tokenizer: invalid UTF-8 reached BPE at byte %zu", i);
        int32_t id = eng_hmap_str_get(&t->vocab, s + i, cl);
        if (id >= 0) {
            if (unk_len) {
                out[n++] = (sym){t->unk_id, -1, -1, (uint32_t)unk_len};
                unk_len = 0;
            }
            out[n++] = (sym){id, -1, -1, (uint32_t)cl};
            i += cl;
            continue;
        }
        if (t->byte_fallback) {
            bool all = true;
            for (size_t k = 0; k < cl; k++)
                if (t->byte_id[(unsigned char)s[i + k]] < 0) all = false;
            if (all) {
                /* as model.rs: a pending unk is not flushed here, so it lands after the bytes */
                for (size_t k = 0; k < cl; k++) out[n++] = (sym){t->byte_id[(unsigned char)s[i + k]], -1, -1, 1};
                i += cl;
                continue;
            }
        }
        if (t->unk_id < 0)
            return awq_seterr(err, AWQ_EINVAL,
                              "tokenizer: character U+%04X at byte %zu is not in the vocabulary and the "
                              "model has no unk_token",
                              (unsigned)cp, i);
        if (unk_len && !t->fuse_unk) {
            out[n++] = (sym){t->unk_id, -1, -1, (uint32_t)unk_len};
            unk_len = 0;
        }
        unk_len += (int32_t)cl;
        i += cl;
    }
    if (unk_len) out[n++] = (sym){t->unk_id, -1, -1, (uint32_t)unk_len};
    for (int32_t k = 0; k < n; k++) {
        out[k].prev = k - 1;
        out[k].next = k + 1 < n ? k + 1 : -1;
    }
    *n_p = n;
    return 0;
}

int eng_tok_bpe(char *err, const eng_tok *t, const char *s, size_t len, tok_ids *out) {
    if (len == 0) return 0;
    /* Every symbol covers at least one byte, and ranks/positions are int32: a piece is at most
     * ENG_TOK_TEXT_MAX after normalization growth, well inside that. */
    if (len > (size_t)INT32_MAX / 2) return awq_seterr(err, AWQ_ETOOBIG, "tokenizer: piece of %zu bytes is too long", len);
    if (t->ignore_merges) {
        int32_t id = eng_hmap_str_get(&t->vocab, s, len);
        if (id >= 0) return eng_tok_ids_push(out, id) ? awq_seterr(err, AWQ_ENOMEM, "tokenizer: out of memory") : 0;
    }
    int rc = 0;
    heap h = {0};
    sym *sy = malloc(len * sizeof *sy); /* at most one symbol per byte */
    if (!sy) return awq_seterr(err, AWQ_ENOMEM, "tokenizer: out of memory for %zu symbols", len);
    int32_t n = 0;
    rc = initial_symbols(err, t, s, len, sy, &n);
    if (rc) goto done;

    /* the first candidates go in unordered, then one heapify */
    if (n > 1 && heap_reserve(&h, (size_t)n)) goto oom;
    for (int32_t i = 0; i + 1 < n; i++) {
        uint32_t rank;
        int32_t nid;
        if (merge_of(t, sy[i].id, sy[i + 1].id, &rank, &nid)) h.v[h.n++] = mk_cand(rank, i);
    }
    heapify(&h);

    while (h.n) {
        cand c = heap_pop(&h);
        int32_t pos = (int32_t)(uint32_t)c;
        sym *l = &sy[pos];
        if (l->len == 0 || l->next < 0) continue; /* merged away, or now the last symbol */
        sym *r = &sy[l->next];
        uint32_t rank;
        int32_t nid;
        /* stale entry: the pair at pos is no longer the one this candidate was made for */
        if (!merge_of(t, l->id, r->id, &rank, &nid) || rank != (uint32_t)(c >> 32)) continue;
        l->id = nid;
        l->len += r->len;
        r->len = 0;
        l->next = r->next;
        if (r->next >= 0) sy[r->next].prev = pos;
        if (l->prev >= 0 && (rc = push_pair(t, sy, l->prev, &h))) goto oom;
        if ((rc = push_pair(t, sy, pos, &h))) goto oom;
    }
    for (int32_t i = n ? 0 : -1; i >= 0; i = sy[i].next)
        if ((rc = eng_tok_ids_push(out, sy[i].id))) goto oom;
    goto done;
oom:
    rc = awq_seterr(err, AWQ_ENOMEM, "tokenizer: out of memory");
done:
    free(h.v);
    free(sy);
    return rc;
}
