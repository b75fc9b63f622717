/*
 * store/merkle: RFC 9162 trees against the Certificate Transparency test
 * suite's 8-leaf tree (roots of every prefix, audit paths, consistency
 * proofs), then properties: every leaf of every tree of 1..64 leaves
 * proves, every (m, n) is consistent, and any flipped bit fails.
 */
#include "tests/unit/test.h"

#include "store/merkle.h"
#include "store/pipe.h"

#define TESTS(X)                                                         \
	X(test_ct_roots)                                                 \
	X(test_ct_inclusion)                                             \
	X(test_ct_consistency)                                           \
	X(test_empty_root)                                               \
	X(test_every_inclusion)                                          \
	X(test_every_consistency)                                        \
	X(test_flipped_bits_fail)                                        \
	X(test_frontier)
TESTS(TEST_DECLARE)

/* The CT test suite's leaves (certificate-transparency, merkle_tree_test). */
static const struct {
	const char *p;
	size_t n;
} ct_leaves[8] = {
	{ "", 0 },
	{ "\x00", 1 },
	{ "\x10", 1 },
	{ "\x20\x21", 2 },
	{ "\x30\x31", 2 },
	{ "\x40\x41\x42\x43", 4 },
	{ "\x50\x51\x52\x53\x54\x55\x56\x57", 8 },
	{ "\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
	  16 },
};

static const char *const ct_roots[8] = {
	"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
	"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
	"aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
	"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
	"4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
	"76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
	"ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
	"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

#define MAXLEAVES 64

/* An in-memory tree: leaf hashes; complete subtrees computed on demand. */
struct mem {
	unsigned char leaf[MAXLEAVES][32];
	uint64_t n;
	unsigned gets;
};

static int
mem_get(void *arg, unsigned level, uint64_t index, unsigned char out[32])
{
	struct mem *m = arg;
	unsigned char l[32], r[32];

	m->gets++;
	ASSERT_TRUE(((index + 1) << level) <= m->n);
	if (level == 0) {
		memcpy(out, m->leaf[index], 32);
		return 0;
	}
	mem_get(arg, level - 1, 2 * index, l);
	mem_get(arg, level - 1, 2 * index + 1, r);
	merkle_node_hash(l, r, out);
	return 0;
}

static void
mem_ct(struct mem *m, uint64_t n)
{
	uint64_t i;

	memset(m, 0, sizeof(*m));
	for (i = 0; i < n; i++)
		merkle_leaf_hash(ct_leaves[i].p, ct_leaves[i].n, m->leaf[i]);
	m->n = n;
}

static void
mem_synthetic(struct mem *m, uint64_t n)
{
	unsigned char b[8];
	uint64_t i;

	memset(m, 0, sizeof(*m));
	for (i = 0; i < n; i++) {
		memcpy(b, &i, sizeof(b));
		merkle_leaf_hash(b, sizeof(b), m->leaf[i]);
	}
	m->n = n;
}

static void
assert_hex(const unsigned char h[32], const char *want)
{
	char hex[65];

	pipe_hex(h, hex);
	ASSERT_STREQ(hex, want);
}

static void
test_ct_roots(void)
{
	struct mem m;
	unsigned char root[32];
	uint64_t n;

	for (n = 1; n <= 8; n++) {
		mem_ct(&m, n);
		ASSERT_EQ(merkle_root(mem_get, &m, n, root), 0);
		assert_hex(root, ct_roots[n - 1]);
	}
}

static void
test_ct_inclusion(void)
{
	unsigned char path[MERKLE_MAX_PATH][32], root[32];
	struct mem m;
	size_t len;

	mem_ct(&m, 8);
	ASSERT_EQ(merkle_root(mem_get, &m, 8, root), 0);
	ASSERT_EQ(merkle_inclusion_proof(mem_get, &m, 0, 8, path, &len), 0);
	ASSERT_EQ(len, 3);
	assert_hex(path[0], "96a296d224f285c67bee93c30f8a309157f0daa35dc5b8"
	    "7e410b78630a09cfc7");
	assert_hex(path[1], "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f"
	    "54c8a360f50de3031e");
	assert_hex(path[2], "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232"
	    "dd6aab035ca39bf6e4");
	ASSERT_TRUE(merkle_verify_inclusion(m.leaf[0], 0, 8, path, len, root));
	ASSERT_EQ(merkle_inclusion_proof(mem_get, &m, 5, 8, path, &len), 0);
	ASSERT_EQ(len, 3);
	assert_hex(path[0], "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b"
	    "5c283e1f4d88599e6b");
	assert_hex(path[1], "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b55"
	    "96ece6b9d5975a0ae0");
	assert_hex(path[2], "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fd"
	    "fe8b30cd95209614b7");
	ASSERT_TRUE(merkle_verify_inclusion(m.leaf[5], 5, 8, path, len, root));
	/* Out of range. */
	ASSERT_EQ(merkle_inclusion_proof(mem_get, &m, 8, 8, path, &len), -1);
	ASSERT_TRUE(!merkle_verify_inclusion(m.leaf[5], 8, 8, path, len, root));
}

static void
test_ct_consistency(void)
{
	unsigned char path[MERKLE_MAX_PATH][32], r6[32], r8[32], r3[32],
	    r7[32];
	struct mem m;
	size_t len;

	mem_ct(&m, 8);
	merkle_root(mem_get, &m, 8, r8);
	merkle_root(mem_get, &m, 6, r6);
	ASSERT_EQ(merkle_consistency_proof(mem_get, &m, 6, 8, path, &len), 0);
	ASSERT_EQ(len, 3);
	assert_hex(path[0], "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a94"
	    "9f8dededebc558ef6a");
	assert_hex(path[1], "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b55"
	    "96ece6b9d5975a0ae0");
	assert_hex(path[2], "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fd"
	    "fe8b30cd95209614b7");
	ASSERT_TRUE(merkle_verify_consistency(6, 8, r6, r8, path, len));
	mem_ct(&m, 7);
	merkle_root(mem_get, &m, 7, r7);
	merkle_root(mem_get, &m, 3, r3);
	ASSERT_EQ(merkle_consistency_proof(mem_get, &m, 3, 7, path, &len), 0);
	ASSERT_EQ(len, 4);
	assert_hex(path[0], "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9ba"
	    "db27b791b4127a7fe7");
	assert_hex(path[3], "837dbb152e9b079010717e84e865da4ebc0fa198a806d5"
	    "9d31bf15accef22d0e");
	ASSERT_TRUE(merkle_verify_consistency(3, 7, r3, r7, path, len));
	/* The wrong roots, or the wrong way round, fail. */
	ASSERT_TRUE(!merkle_verify_consistency(3, 7, r7, r3, path, len));
	ASSERT_TRUE(!merkle_verify_consistency(3, 7, r3, r3, path, len));
}

static void
test_empty_root(void)
{
	unsigned char root[32];
	struct merkle_frontier f;

	ASSERT_EQ(merkle_root(mem_get, NULL, 0, root), 0);
	assert_hex(root, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca4"
	    "95991b7852b855");
	memset(&f, 0, sizeof(f));
	merkle_frontier_root(&f, root);
	assert_hex(root, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca4"
	    "95991b7852b855");
}

static void
test_every_inclusion(void)
{
	unsigned char path[MERKLE_MAX_PATH][32], root[32];
	struct mem m;
	uint64_t n, i;
	size_t len;

	for (n = 1; n <= MAXLEAVES; n++) {
		mem_synthetic(&m, n);
		ASSERT_EQ(merkle_root(mem_get, &m, n, root), 0);
		for (i = 0; i < n; i++) {
			ASSERT_EQ(merkle_inclusion_proof(mem_get, &m, i, n,
			    path, &len), 0);
			ASSERT_TRUE(merkle_verify_inclusion(m.leaf[i], i, n,
			    path, len, root));
			/* Not at another index, nor for another leaf. */
			if (n > 1) {
				ASSERT_TRUE(!merkle_verify_inclusion(m.leaf[i],
				    (i + 1) % n, n, path, len, root));
				ASSERT_TRUE(!merkle_verify_inclusion(
				    m.leaf[(i + 1) % n], i, n, path, len,
				    root));
			}
			/* A path one hash short or long fails. */
			if (len > 0)
				ASSERT_TRUE(!merkle_verify_inclusion(m.leaf[i],
				    i, n, path, len - 1, root));
			ASSERT_TRUE(!merkle_verify_inclusion(m.leaf[i], i, n,
			    path, len + 1, root));
		}
	}
}

static void
test_every_consistency(void)
{
	unsigned char path[MERKLE_MAX_PATH][32], rm[32], rn[32];
	struct mem m;
	uint64_t n, k;
	size_t len;

	mem_synthetic(&m, MAXLEAVES);
	for (n = 1; n <= MAXLEAVES; n++) {
		merkle_root(mem_get, &m, n, rn);
		for (k = 1; k <= n; k++) {
			merkle_root(mem_get, &m, k, rm);
			ASSERT_EQ(merkle_consistency_proof(mem_get, &m, k, n,
			    path, &len), 0);
			ASSERT_TRUE(merkle_verify_consistency(k, n, rm, rn,
			    path, len));
			if (k < n) {
				ASSERT_TRUE(!merkle_verify_consistency(k, n,
				    rn, rm, path, len));
				ASSERT_TRUE(!merkle_verify_consistency(k, n,
				    rm, rn, path, len - 1));
			}
		}
	}
}

static void
test_flipped_bits_fail(void)
{
	unsigned char path[MERKLE_MAX_PATH][32], root[32], rm[32], leaf[32];
	struct mem m;
	uint64_t n, i, k;
	size_t len, j, bit;

	for (n = 2; n <= 33; n += 5) {
		mem_synthetic(&m, n);
		merkle_root(mem_get, &m, n, root);
		i = n / 3;
		merkle_inclusion_proof(mem_get, &m, i, n, path, &len);
		for (j = 0; j < len; j++)
			for (bit = 0; bit < 256; bit += 7) {
				path[j][bit / 8] ^= 1 << (bit % 8);
				ASSERT_TRUE(!merkle_verify_inclusion(m.leaf[i],
				    i, n, path, len, root));
				path[j][bit / 8] ^= 1 << (bit % 8);
			}
		for (bit = 0; bit < 256; bit++) {
			memcpy(leaf, m.leaf[i], 32);
			leaf[bit / 8] ^= 1 << (bit % 8);
			ASSERT_TRUE(!merkle_verify_inclusion(leaf, i, n, path,
			    len, root));
			root[bit / 8] ^= 1 << (bit % 8);
			ASSERT_TRUE(!merkle_verify_inclusion(m.leaf[i], i, n,
			    path, len, root));
			root[bit / 8] ^= 1 << (bit % 8);
		}
		k = n / 2;
		merkle_root(mem_get, &m, k, rm);
		merkle_consistency_proof(mem_get, &m, k, n, path, &len);
		for (j = 0; j < len; j++)
			for (bit = 0; bit < 256; bit += 5) {
				path[j][bit / 8] ^= 1 << (bit % 8);
				ASSERT_TRUE(!merkle_verify_consistency(k, n, rm,
				    root, path, len));
				path[j][bit / 8] ^= 1 << (bit % 8);
			}
		ASSERT_TRUE(merkle_verify_consistency(k, n, rm, root, path,
		    len));
	}
}

struct emitted {
	struct mem *m;
	unsigned count;
};

static void
check_emit(void *arg, unsigned level, uint64_t index, const unsigned char h[32])
{
	struct emitted *e = arg;
	unsigned char want[32];

	mem_get(e->m, level, index, want);
	ASSERT_MEMEQ(h, want, 32);
	e->count++;
}

static void
test_frontier(void)
{
	unsigned char want[32], got[32];
	struct merkle_frontier f, g;
	struct emitted e;
	struct mem m;
	uint64_t n;

	mem_synthetic(&m, MAXLEAVES);
	memset(&f, 0, sizeof(f));
	e.m = &m;
	e.count = 0;
	for (n = 0; n < MAXLEAVES; n++) {
		merkle_frontier_append(&f, m.leaf[n], check_emit, &e);
		merkle_frontier_root(&f, got);
		merkle_root(mem_get, &m, n + 1, want);
		ASSERT_MEMEQ(got, want, 32);
		/* Loading the frontier of n + 1 leaves gives the same. */
		ASSERT_EQ(merkle_frontier_load(&g, mem_get, &m, n + 1), 0);
		merkle_frontier_root(&g, got);
		ASSERT_MEMEQ(got, want, 32);
	}
	/* A perfect tree of 64 has 63 interior nodes. */
	ASSERT_EQ(e.count, MAXLEAVES - 1);
}

TEST_MAIN(TESTS)
