/* hmap.h - two small open-addressing hash tables used by the tokenizer: byte strings -> int32
 * (the vocabulary) and uint64 -> uint64 (merge pairs -> rank and result). Linear probing, power
 * of two capacity, load factor at most 1/2, so a lookup touches a couple of slots on average.
 *
 * The string table borrows its keys: the caller keeps every key alive and unchanged for the
 * table's lifetime (the tokenizer stores them in its piece array).
 *
 * Thread safety: a table is built by one thread; once built, lookups may run on many threads.
 */
#ifndef ENG_HMAP_H
#define ENG_HMAP_H

#include <stddef.h>
#include <stdint.h>

#include "awq_err.h"

/* ---- string -> int32 ---- */
typedef struct eng_hmap_str_slot {
    const char *key; /* borrowed; NULL = empty slot */
    uint32_t len;
    uint32_t hash;
    int32_t val;
} eng_hmap_str_slot;

typedef struct eng_hmap_str {
    eng_hmap_str_slot *slots; /* (cap) */
    size_t cap;               /* power of two, or 0 before the first put */
    size_t n;
} eng_hmap_str;

/* Insert key -> val. Returns 0, AWQ_EEXIST when the key is already there (its value is left
 * unchanged and put in *old when old is not NULL), or AWQ_ENOMEM / AWQ_ETOOBIG. */
AWQ_NODISCARD int eng_hmap_str_put(eng_hmap_str *m, const char *key, size_t len, int32_t val, int32_t *old)
    AWQ_NONNULL(1, 2);
/* The value of key, or -1 when absent. */
int32_t eng_hmap_str_get(const eng_hmap_str *m, const char *key, size_t len);
void eng_hmap_str_free(eng_hmap_str *m);

/* ---- uint64 -> uint64 ---- */
#define ENG_HMAP_U64_EMPTY UINT64_MAX /* reserved: this key value cannot be stored */

typedef struct eng_hmap_u64_slot {
    uint64_t key;
    uint64_t val;
} eng_hmap_u64_slot;

typedef struct eng_hmap_u64 {
    eng_hmap_u64_slot *slots; /* (cap) */
    size_t cap;
    size_t n;
} eng_hmap_u64;

/* Insert or overwrite key -> val. Returns 0, AWQ_EINVAL for the reserved key, AWQ_ENOMEM. */
AWQ_NODISCARD int eng_hmap_u64_put(eng_hmap_u64 *m, uint64_t key, uint64_t val) AWQ_NONNULL(1);
/* Sets *val and returns 1 when key is present, else returns 0. */
int eng_hmap_u64_get(const eng_hmap_u64 *m, uint64_t key, uint64_t *val);
void eng_hmap_u64_free(eng_hmap_u64 *m);

#endif
