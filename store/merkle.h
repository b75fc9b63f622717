/*
 * The Merkle tree of RFC 6962 / RFC 9162 (section 2.1): leaf hash
 * SHA-256(0x00 || entry), interior node SHA-256(0x01 || left || right),
 * the root of the empty tree SHA-256(""), the tree of n leaves split at
 * the largest power of two below n.  Pure: no I/O; nodes come from the
 * caller through a callback, so the same code proves from memory (tests)
 * and from the database (store/db_ledger.c).
 *
 * A "complete subtree" (level, index) is the perfect tree over leaves
 * [index << level, (index + 1) << level); level 0 is a leaf hash.  Every
 * hash a proof needs is one of these or is made of them, so a store that
 * keeps the leaf hashes and each complete subtree (about one per leaf)
 * answers any proof with O(log n) reads.
 */
#ifndef STORE_MERKLE_H
#define STORE_MERKLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MERKLE_HASH_LEN 32
/* Hashes in any proof of a tree of at most 2^63 leaves. */
#define MERKLE_MAX_PATH 64

/*
 * Writes the hash of complete subtree (level, index) into out: 0, or -1
 * (the store failed; the caller's own error says why).
 */
typedef int merkle_get_fn(void *arg, unsigned level, uint64_t index,
    unsigned char out[MERKLE_HASH_LEN]);

void merkle_leaf_hash(const void *entry, size_t n,
    unsigned char out[MERKLE_HASH_LEN]);
void merkle_node_hash(const unsigned char left[MERKLE_HASH_LEN],
    const unsigned char right[MERKLE_HASH_LEN],
    unsigned char out[MERKLE_HASH_LEN]);

/* The root of the first n leaves (n 0: SHA-256 of nothing); 0 or -1. */
int merkle_root(merkle_get_fn *get, void *arg, uint64_t n,
    unsigned char out[MERKLE_HASH_LEN]);

/*
 * The audit path of leaf index in the tree of n leaves, leaf side first
 * (RFC 9162 2.1.3.1), into path; *len_r hashes.  -1 if index >= n or the
 * store failed.
 */
int merkle_inclusion_proof(merkle_get_fn *get, void *arg, uint64_t index,
    uint64_t n, unsigned char path[][MERKLE_HASH_LEN], size_t *len_r);

/*
 * The consistency proof from the tree of m leaves to the tree of n
 * (RFC 9162 2.1.4.1), 0 < m <= n; -1 otherwise or if the store failed.
 */
int merkle_consistency_proof(merkle_get_fn *get, void *arg, uint64_t m,
    uint64_t n, unsigned char path[][MERKLE_HASH_LEN], size_t *len_r);

/* RFC 9162 2.1.3.2: whether path proves leaf_hash at index under root. */
bool merkle_verify_inclusion(const unsigned char leaf_hash[MERKLE_HASH_LEN],
    uint64_t index, uint64_t n, const unsigned char path[][MERKLE_HASH_LEN],
    size_t len, const unsigned char root[MERKLE_HASH_LEN]);

/*
 * RFC 9162 2.1.4.2: whether path proves the tree (n, root_n) extends
 * (m, root_m).  m == n needs an empty path and equal roots; m == 0 is
 * consistent with anything (the empty tree) when path is empty.
 */
bool merkle_verify_consistency(uint64_t m, uint64_t n,
    const unsigned char root_m[MERKLE_HASH_LEN],
    const unsigned char root_n[MERKLE_HASH_LEN],
    const unsigned char path[][MERKLE_HASH_LEN], size_t len);

/*
 * The right edge of a growing tree: one complete subtree per bit set in
 * size, enough to append leaves and to give the root without reading
 * anything back.  Embeddable.
 */
struct merkle_frontier {
	uint64_t size;
	unsigned char h[64][MERKLE_HASH_LEN];	/* h[l]: bit l of size set */
};

/* The frontier of the tree of n leaves, read through get; 0 or -1. */
int merkle_frontier_load(struct merkle_frontier *f, merkle_get_fn *get,
    void *arg, uint64_t n);
/*
 * Appends a leaf by its hash.  emit, unless NULL, is called for each
 * complete subtree of level >= 1 the leaf completes (lowest first), so the
 * caller can store it.
 */
void merkle_frontier_append(struct merkle_frontier *f,
    const unsigned char leaf_hash[MERKLE_HASH_LEN],
    void (*emit)(void *arg, unsigned level, uint64_t index,
	const unsigned char h[MERKLE_HASH_LEN]),
    void *arg);
void merkle_frontier_root(const struct merkle_frontier *f,
    unsigned char out[MERKLE_HASH_LEN]);

#endif
