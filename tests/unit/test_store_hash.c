/* store/hash: SHA-256 and MD5 against published vectors, fed every way. */
#include "tests/unit/test.h"

#include "store/hash.h"
#include "store/pipe.h"

#define TESTS(X)                                                         \
	X(test_sha256_vectors)                                           \
	X(test_sha256_every_split)                                       \
	X(test_sha256_one_byte_at_a_time)                                \
	X(test_sha256_million_a)                                         \
	X(test_sha256_snapshot)                                          \
	X(test_sha256_reset_reuses)                                      \
	X(test_md5_vectors)
TESTS(TEST_DECLARE)

/* FIPS 180-2 appendix B and the NIST example values. */
static const struct {
	const char *in;
	const char *hex;
} sha_vec[] = {
	{ "", "e3b0c44298fc1c149afbf4c8996fb924"
	      "27ae41e4649b934ca495991b7852b855" },
	{ "abc", "ba7816bf8f01cfea414140de5dae2223"
		 "b00361a396177a9cb410ff61f20015ad" },
	{ "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
	  "248d6a61d20638b8e5c026930c3e6039"
	  "a33ce45964ff2167f6ecedd419db06c1" },
	{ "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
	  "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
	  "cf5b16a778af8380036ce59e7b049237"
	  "0b249b11e8f07a51afac45037afee9d1" },
};

static void
hex(const unsigned char *d, char out[65])
{
	pipe_hex(d, out);
}

static void
test_sha256_vectors(void)
{
	unsigned char d[32];
	char h[65];
	size_t i;

	for (i = 0; i < sizeof(sha_vec) / sizeof(sha_vec[0]); i++) {
		hash_sha256(sha_vec[i].in, strlen(sha_vec[i].in), d);
		hex(d, h);
		ASSERT_STREQ(h, sha_vec[i].hex);
	}
}

static void
test_sha256_every_split(void)
{
	struct hash_sha256 s;
	unsigned char d[32];
	char h[65];
	size_t i, k, n;

	hash_sha256_init(&s);
	for (i = 0; i < sizeof(sha_vec) / sizeof(sha_vec[0]); i++) {
		n = strlen(sha_vec[i].in);
		for (k = 0; k <= n; k++) {
			hash_sha256_reset(&s);
			hash_sha256_update(&s, sha_vec[i].in, k);
			hash_sha256_update(&s, sha_vec[i].in + k, n - k);
			hash_sha256_final(&s, d);
			hex(d, h);
			ASSERT_STREQ(h, sha_vec[i].hex);
		}
	}
	hash_sha256_release(&s);
}

static void
test_sha256_one_byte_at_a_time(void)
{
	struct hash_sha256 s;
	unsigned char d[32];
	char h[65];
	size_t i, k, n;

	for (i = 0; i < sizeof(sha_vec) / sizeof(sha_vec[0]); i++) {
		hash_sha256_init(&s);
		n = strlen(sha_vec[i].in);
		for (k = 0; k < n; k++)
			hash_sha256_update(&s, sha_vec[i].in + k, 1);
		hash_sha256_final(&s, d);
		hash_sha256_release(&s);
		hex(d, h);
		ASSERT_STREQ(h, sha_vec[i].hex);
	}
}

static void
test_sha256_million_a(void)
{
	struct hash_sha256 s;
	unsigned char d[32];
	char block[1000], h[65];
	int i;

	memset(block, 'a', sizeof(block));
	hash_sha256_init(&s);
	for (i = 0; i < 1000; i++)
		hash_sha256_update(&s, block, sizeof(block));
	hash_sha256_final(&s, d);
	hash_sha256_release(&s);
	hex(d, h);
	ASSERT_STREQ(h, "cdc76e5c9914fb9281a1c7e284d73e67"
			"f1809a48a497200e046d39ccc7112cd0");
	/* release is idempotent */
	hash_sha256_release(&s);
}

static void
test_sha256_snapshot(void)
{
	const char *msg = sha_vec[2].in;
	struct hash_sha256 s;
	unsigned char d[32], want[32];
	char h[65];
	size_t k, n = strlen(msg);

	for (k = 0; k <= n; k++) {
		hash_sha256_init(&s);
		hash_sha256_update(&s, msg, k);
		hash_sha256_snapshot(&s, d);
		hash_sha256(msg, k, want);
		ASSERT_MEMEQ(d, want, 32);
		/* the running digest is undisturbed */
		hash_sha256_update(&s, msg + k, n - k);
		hash_sha256_final(&s, d);
		hash_sha256_release(&s);
		hex(d, h);
		ASSERT_STREQ(h, sha_vec[2].hex);
	}
}

static void
test_sha256_reset_reuses(void)
{
	struct hash_sha256 s;
	unsigned char d[32];
	char h[65];

	hash_sha256_init(&s);
	hash_sha256_update(&s, "garbage", 7);
	hash_sha256_reset(&s);
	hash_sha256_update(&s, "abc", 3);
	hash_sha256_final(&s, d);
	hex(d, h);
	ASSERT_STREQ(h, sha_vec[1].hex);
	hash_sha256_reset(&s);
	hash_sha256_final(&s, d);
	hex(d, h);
	ASSERT_STREQ(h, sha_vec[0].hex);
	hash_sha256_release(&s);
}

static void
test_md5_vectors(void)
{
	/* RFC 1321 appendix A.5, and the APOP example of RFC 1939. */
	static const struct {
		const char *in;
		const char *hex;
	} v[] = {
		{ "", "d41d8cd98f00b204e9800998ecf8427e" },
		{ "abc", "900150983cd24fb0d6963f7d28e17f72" },
		{ "message digest", "f96b697d7cb7938d525a2f31aaf161d0" },
		{ "<1896.697170952@dbc.mtview.ca.us>tanstaaf",
		  "c4c9334bac560ecc979e58001b3e22fb" },
	};
	static const char hexd[] = "0123456789abcdef";
	unsigned char d[16];
	char h[33];
	size_t i, j;
	void (*cb)(const void *, size_t, unsigned char[16]) = hash_md5;

	ASSERT_TRUE(hash_md5_available());
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		/* through the pop3_client_params.md5 callback type */
		cb(v[i].in, strlen(v[i].in), d);
		for (j = 0; j < 16; j++) {
			h[2 * j] = hexd[d[j] >> 4];
			h[2 * j + 1] = hexd[d[j] & 15];
		}
		h[32] = '\0';
		ASSERT_STREQ(h, v[i].hex);
	}
}

TEST_MAIN(TESTS)
