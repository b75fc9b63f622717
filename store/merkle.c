#include "store/merkle.h"

#include <string.h>

#include "store/hash.h"

void
merkle_leaf_hash(const void *entry, size_t n,
    unsigned char out[MERKLE_HASH_LEN])
{
	struct hash_sha256 h;
	const unsigned char zero = 0x00;

	hash_sha256_init(&h);
	hash_sha256_update(&h, &zero, 1);
	hash_sha256_update(&h, entry, n);
	hash_sha256_final(&h, out);
	hash_sha256_release(&h);
}

void
merkle_node_hash(const unsigned char left[MERKLE_HASH_LEN],
    const unsigned char right[MERKLE_HASH_LEN],
    unsigned char out[MERKLE_HASH_LEN])
{
	unsigned char buf[1 + 2 * MERKLE_HASH_LEN];

	buf[0] = 0x01;
	memcpy(buf + 1, left, MERKLE_HASH_LEN);
	memcpy(buf + 1 + MERKLE_HASH_LEN, right, MERKLE_HASH_LEN);
	hash_sha256(buf, sizeof(buf), out);
}

/* The largest power of two strictly below n (n >= 2). */
static uint64_t
split_point(uint64_t n)
{
	uint64_t k = 1;

	while (k << 1 < n)
		k <<= 1;
	return k;
}

/* MTH(D[start:end]), end > start. */
static int
range_hash(merkle_get_fn *get, void *arg, uint64_t start, uint64_t end,
    unsigned char out[MERKLE_HASH_LEN])
{
	unsigned char l[MERKLE_HASH_LEN], r[MERKLE_HASH_LEN];
	uint64_t n = end - start, k;
	unsigned level = 0;

	if ((n & (n - 1)) == 0 && start % n == 0) {
		while ((UINT64_C(1) << level) < n)
			level++;
		return get(arg, level, start >> level, out);
	}
	k = split_point(n);
	if (range_hash(get, arg, start, start + k, l) == -1 ||
	    range_hash(get, arg, start + k, end, r) == -1)
		return -1;
	merkle_node_hash(l, r, out);
	return 0;
}

int
merkle_root(merkle_get_fn *get, void *arg, uint64_t n,
    unsigned char out[MERKLE_HASH_LEN])
{
	if (n == 0) {
		hash_sha256("", 0, out);
		return 0;
	}
	return range_hash(get, arg, 0, n, out);
}

/* PATH(m, D[start:end]), appended deepest first. */
static int
path_rec(merkle_get_fn *get, void *arg, uint64_t m, uint64_t start,
    uint64_t end, unsigned char path[][MERKLE_HASH_LEN], size_t *len)
{
	uint64_t n = end - start, k;

	if (n <= 1)
		return 0;
	k = split_point(n);
	if (m < k) {
		if (path_rec(get, arg, m, start, start + k, path, len) == -1)
			return -1;
		return range_hash(get, arg, start + k, end, path[(*len)++]);
	}
	if (path_rec(get, arg, m - k, start + k, end, path, len) == -1)
		return -1;
	return range_hash(get, arg, start, start + k, path[(*len)++]);
}

int
merkle_inclusion_proof(merkle_get_fn *get, void *arg, uint64_t index,
    uint64_t n, unsigned char path[][MERKLE_HASH_LEN], size_t *len_r)
{
	*len_r = 0;
	if (index >= n)
		return -1;
	return path_rec(get, arg, index, 0, n, path, len_r);
}

/* SUBPROOF(m, D[start:end], b). */
static int
subproof(merkle_get_fn *get, void *arg, uint64_t m, uint64_t start,
    uint64_t end, bool b, unsigned char path[][MERKLE_HASH_LEN],
    size_t *len)
{
	uint64_t n = end - start, k;

	if (m == n) {
		if (b)
			return 0;
		return range_hash(get, arg, start, end, path[(*len)++]);
	}
	k = split_point(n);
	if (m <= k) {
		if (subproof(get, arg, m, start, start + k, b, path,
		    len) == -1)
			return -1;
		return range_hash(get, arg, start + k, end, path[(*len)++]);
	}
	if (subproof(get, arg, m - k, start + k, end, false, path,
	    len) == -1)
		return -1;
	return range_hash(get, arg, start, start + k, path[(*len)++]);
}

int
merkle_consistency_proof(merkle_get_fn *get, void *arg, uint64_t m,
    uint64_t n, unsigned char path[][MERKLE_HASH_LEN], size_t *len_r)
{
	*len_r = 0;
	if (m == 0 || m > n)
		return -1;
	return subproof(get, arg, m, 0, n, true, path, len_r);
}

bool
merkle_verify_inclusion(const unsigned char leaf_hash[MERKLE_HASH_LEN],
    uint64_t index, uint64_t n, const unsigned char path[][MERKLE_HASH_LEN],
    size_t len, const unsigned char root[MERKLE_HASH_LEN])
{
	unsigned char r[MERKLE_HASH_LEN];
	uint64_t fn, sn;
	size_t i;

	if (index >= n)
		return false;
	fn = index;
	sn = n - 1;
	memcpy(r, leaf_hash, MERKLE_HASH_LEN);
	for (i = 0; i < len; i++) {
		if (sn == 0)
			return false;
		if ((fn & 1) || fn == sn) {
			merkle_node_hash(path[i], r, r);
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else
			merkle_node_hash(r, path[i], r);
		fn >>= 1;
		sn >>= 1;
	}
	return sn == 0 && memcmp(r, root, MERKLE_HASH_LEN) == 0;
}

bool
merkle_verify_consistency(uint64_t m, uint64_t n,
    const unsigned char root_m[MERKLE_HASH_LEN],
    const unsigned char root_n[MERKLE_HASH_LEN],
    const unsigned char path[][MERKLE_HASH_LEN], size_t len)
{
	unsigned char fr[MERKLE_HASH_LEN], sr[MERKLE_HASH_LEN];
	uint64_t fn, sn;
	size_t i = 0;

	if (m > n)
		return false;
	if (m == 0)
		return len == 0;
	if (m == n)
		return len == 0 && memcmp(root_m, root_n, MERKLE_HASH_LEN) == 0;
	if (len == 0)
		return false;
	fn = m - 1;
	sn = n - 1;
	/* m a power of two: the old root is the proof's implied first. */
	if ((m & (m - 1)) == 0) {
		memcpy(fr, root_m, MERKLE_HASH_LEN);
		memcpy(sr, root_m, MERKLE_HASH_LEN);
	} else {
		memcpy(fr, path[0], MERKLE_HASH_LEN);
		memcpy(sr, path[0], MERKLE_HASH_LEN);
		i = 1;
	}
	while (fn & 1) {
		fn >>= 1;
		sn >>= 1;
	}
	for (; i < len; i++) {
		if (sn == 0)
			return false;
		if ((fn & 1) || fn == sn) {
			merkle_node_hash(path[i], fr, fr);
			merkle_node_hash(path[i], sr, sr);
			while (!(fn & 1) && fn != 0) {
				fn >>= 1;
				sn >>= 1;
			}
		} else
			merkle_node_hash(sr, path[i], sr);
		fn >>= 1;
		sn >>= 1;
	}
	return sn == 0 && memcmp(fr, root_m, MERKLE_HASH_LEN) == 0 &&
	    memcmp(sr, root_n, MERKLE_HASH_LEN) == 0;
}

int
merkle_frontier_load(struct merkle_frontier *f, merkle_get_fn *get,
    void *arg, uint64_t n)
{
	unsigned l;

	memset(f, 0, sizeof(*f));
	f->size = n;
	for (l = 0; l < 64; l++)
		if ((n >> l) & 1)
			if (get(arg, l, (n >> l) - 1, f->h[l]) == -1)
				return -1;
	return 0;
}

void
merkle_frontier_append(struct merkle_frontier *f,
    const unsigned char leaf_hash[MERKLE_HASH_LEN],
    void (*emit)(void *arg, unsigned level, uint64_t index,
	const unsigned char h[MERKLE_HASH_LEN]),
    void *arg)
{
	unsigned char cur[MERKLE_HASH_LEN];
	uint64_t n = f->size;
	unsigned l = 0;

	memcpy(cur, leaf_hash, MERKLE_HASH_LEN);
	while ((n >> l) & 1) {
		merkle_node_hash(f->h[l], cur, cur);
		l++;
		if (emit != NULL)
			emit(arg, l, ((n + 1) >> l) - 1, cur);
	}
	memcpy(f->h[l], cur, MERKLE_HASH_LEN);
	f->size = n + 1;
}

void
merkle_frontier_root(const struct merkle_frontier *f,
    unsigned char out[MERKLE_HASH_LEN])
{
	unsigned char r[MERKLE_HASH_LEN];
	bool any = false;
	unsigned l;

	for (l = 0; l < 64; l++) {
		if (!((f->size >> l) & 1))
			continue;
		if (!any)
			memcpy(r, f->h[l], MERKLE_HASH_LEN);
		else
			merkle_node_hash(f->h[l], r, r);
		any = true;
	}
	if (!any)
		hash_sha256("", 0, r);
	memcpy(out, r, MERKLE_HASH_LEN);
}
