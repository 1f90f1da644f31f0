/* hmap.c - open-addressing hash tables (see hmap.h). */
#include "hmap.h"

#include <stdlib.h>
#include <string.h>

/* FNV-1a, folded to 32 bits: fast and good enough for vocabulary strings. A hostile
 * tokenizer.json can make it collide, which costs time, never correctness. */
static uint32_t hash_bytes(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return (uint32_t)(h ^ (h >> 32));
}

/* splitmix64's finaliser: every key bit affects every slot bit. */
static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

/* ------------------------------------------------------------------ string -> int32 ---- */

static int str_grow(eng_hmap_str *m) {
    size_t ncap = m->cap ? m->cap * 2 : 64;
    if (ncap > SIZE_MAX / sizeof(eng_hmap_str_slot)) return AWQ_ENOMEM;
    eng_hmap_str_slot *ns = calloc(ncap, sizeof *ns);
    if (!ns) return AWQ_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        eng_hmap_str_slot *s = &m->slots[i];
        if (!s->key) continue;
        size_t j = s->hash & (ncap - 1);
        while (ns[j].key) j = (j + 1) & (ncap - 1);
        ns[j] = *s;
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return 0;
}

int eng_hmap_str_put(eng_hmap_str *m, const char *key, size_t len, int32_t val, int32_t *old) {
    if (len > UINT32_MAX) return AWQ_ETOOBIG;
    if ((m->n + 1) * 2 > m->cap) {
        int rc = str_grow(m);
        if (rc) return rc;
    }
    uint32_t h = hash_bytes(key, len);
    size_t j = h & (m->cap - 1);
    while (m->slots[j].key) {
        eng_hmap_str_slot *s = &m->slots[j];
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) {
            if (old) *old = s->val;
            return AWQ_EEXIST;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->slots[j] = (eng_hmap_str_slot){key, (uint32_t)len, h, val};
    m->n++;
    return 0;
}

int32_t eng_hmap_str_get(const eng_hmap_str *m, const char *key, size_t len) {
    if (!m->cap || len > UINT32_MAX) return -1;
    uint32_t h = hash_bytes(key, len);
    size_t j = h & (m->cap - 1);
    while (m->slots[j].key) {
        const eng_hmap_str_slot *s = &m->slots[j];
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) return s->val;
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

void eng_hmap_str_free(eng_hmap_str *m) {
    if (!m) return;
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* ------------------------------------------------------------------ uint64 -> uint64 ---- */

static int u64_grow(eng_hmap_u64 *m) {
    size_t ncap = m->cap ? m->cap * 2 : 64;
    if (ncap > SIZE_MAX / sizeof(eng_hmap_u64_slot)) return AWQ_ENOMEM;
    eng_hmap_u64_slot *ns = malloc(ncap * sizeof *ns);
    if (!ns) return AWQ_ENOMEM;
    for (size_t i = 0; i < ncap; i++) ns[i].key = ENG_HMAP_U64_EMPTY;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].key == ENG_HMAP_U64_EMPTY) continue;
        size_t j = hash_u64(m->slots[i].key) & (ncap - 1);
        while (ns[j].key != ENG_HMAP_U64_EMPTY) j = (j + 1) & (ncap - 1);
        ns[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return 0;
}

int eng_hmap_u64_put(eng_hmap_u64 *m, uint64_t key, uint64_t val) {
    if (key == ENG_HMAP_U64_EMPTY) return AWQ_EINVAL;
    if ((m->n + 1) * 2 > m->cap) {
        int rc = u64_grow(m);
        if (rc) return rc;
    }
    size_t j = hash_u64(key) & (m->cap - 1);
    while (m->slots[j].key != ENG_HMAP_U64_EMPTY) {
        if (m->slots[j].key == key) {
            m->slots[j].val = val;
            return 0;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->slots[j].key = key;
    m->slots[j].val = val;
    m->n++;
    return 0;
}

int eng_hmap_u64_get(const eng_hmap_u64 *m, uint64_t key, uint64_t *val) {
    if (!m->cap || key == ENG_HMAP_U64_EMPTY) return 0;
    size_t j = hash_u64(key) & (m->cap - 1);
    while (m->slots[j].key != ENG_HMAP_U64_EMPTY) {
        if (m->slots[j].key == key) {
            *val = m->slots[j].val;
            return 1;
        }
        j = (j + 1) & (m->cap - 1);
    }
    return 0;
}

void eng_hmap_u64_free(eng_hmap_u64 *m) {
    if (!m) return;
    free(m->slots);
    memset(m, 0, sizeof *m);
}
