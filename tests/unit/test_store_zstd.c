/*
 * store/zstd: the compressing stage and the streaming decompressor, each
 * fed at every split point and one byte at a time; dictionaries; training;
 * truncated, corrupt and refused streams.
 */
#include "tests/unit/test.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "ingestd/base/xmalloc.h"
#include "store/pipe.h"
#include "store/zstd.h"

#define TESTS(X)                                                         \
	X(test_roundtrip_sizes)                                          \
	X(test_stage_every_split)                                        \
	X(test_stage_one_byte_at_a_time)                                 \
	X(test_dec_every_split)                                          \
	X(test_dec_one_byte_at_a_time)                                   \
	X(test_empty_message_has_a_frame)                                \
	X(test_size_hint_may_lie)                                        \
	X(test_large_output_is_bounded)                                  \
	X(test_dictionary)                                               \
	X(test_dictionary_shared_by_stages)                              \
	X(test_truncated_frame)                                          \
	X(test_corrupt_frame)                                            \
	X(test_no_input)                                                 \
	X(test_out_refuses)                                              \
	X(test_zdec_reuse)                                               \
	X(test_next_stage_fails)                                         \
	X(test_abort_midway)                                             \
	X(test_pool_limits)                                              \
	X(test_threads_share_dict_and_pool)                              \
	X(test_train)                                                    \
	X(test_train_too_little)
TESTS(TEST_DECLARE)

/* A growing byte string. */
struct bytes {
	char *p;
	size_t len;
	size_t cap;
	size_t max_piece;	/* largest single append */
	size_t pieces;
};

static void
bytes_add(struct bytes *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		b->p = xreallocarray(b->p, b->cap, 1);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	if (n > b->max_piece)
		b->max_piece = n;
	b->pieces++;
}

static void
bytes_free(struct bytes *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

/* The end of a test chain: collects what the zstd stage produced. */
struct cap {
	struct pipe_stage st;
	struct bytes out;
	int fail_after;		/* fail the Nth write (1-based); 0 never */
	int writes;
	bool finished;
	bool aborted;
};

static ssize_t
cap_write(struct pipe_stage *st, const void *p, size_t n)
{
	struct cap *c = (struct cap *)st;

	if (c->fail_after != 0 && ++c->writes >= c->fail_after) {
		snprintf(st->error, sizeof(st->error), "cap: disk on fire");
		return -1;
	}
	bytes_add(&c->out, p, n);
	return (ssize_t)n;
}

static int
cap_finish(struct pipe_stage *st)
{
	((struct cap *)st)->finished = true;
	return 0;
}

static void
cap_abort(struct pipe_stage *st)
{
	((struct cap *)st)->aborted = true;
}

static void
cap_free(struct pipe_stage *st)
{
}

static const struct pipe_ops cap_ops = {
	cap_write, cap_finish, cap_abort, cap_free,
};

static void
cap_init(struct cap *c)
{
	memset(c, 0, sizeof(*c));
	c->st.ops = &cap_ops;
}

static int
collect(void *arg, const void *p, size_t n)
{
	bytes_add(arg, p, n);
	return 0;
}

/* Deterministic mail-like text: words, CRLF lines, a header block. */
static uint64_t rng = 88172645463325252ULL;

static uint32_t
rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

static char *
mailtext(size_t n)
{
	static const char *words[] = {
		"the", "archive", "message", "received", "from", "mailbox",
		"quarterly", "report", "attached", "please", "find", "regards",
		"invoice", "meeting", "Tuesday", "compliance", "retention",
		"=?utf-8?q?caf=C3=A9?=", "Subject:", "with", "and", "of",
	};
	char *p = xmalloc(n + 1);
	size_t i = 0, col = 0, w;
	const char *s;

	while (i < n) {
		s = words[rnd() % (sizeof(words) / sizeof(words[0]))];
		for (w = 0; s[w] != '\0' && i < n; w++)
			p[i++] = s[w];
		col += w;
		if (i < n && col > 60 + rnd() % 15) {
			p[i++] = '\r';
			if (i < n)
				p[i++] = '\n';
			col = 0;
		} else if (i < n) {
			p[i++] = ' ';
			col++;
		}
	}
	p[n] = '\0';
	return p;
}

static char *
noise(size_t n)
{
	char *p = xmalloc(n);
	size_t i;

	for (i = 0; i < n; i++)
		p[i] = (char)rnd();
	return p;
}

/* Compresses in[0, n) in pieces of step bytes (0: whole) into *z. */
static void
compress(const char *in, size_t n, size_t step, int level, uint64_t hint,
    const struct zdict *dict, struct bytes *z)
{
	struct pipe_stage *st;
	struct cap c;
	size_t off, k;

	cap_init(&c);
	st = zstd_stage_new(level, hint, dict, &c.st);
	for (off = 0; off < n; off += k) {
		k = step == 0 || n - off < step ? n - off : step;
		ASSERT_EQ(st->ops->write(st, in + off, k), k);
	}
	ASSERT_EQ(st->ops->finish(st), 0);
	ASSERT_TRUE(c.finished);
	st->ops->free(st);
	*z = c.out;
}

/* Decompresses z[0, n) in pieces of step bytes (0: whole). */
static int
decompress(const char *z, size_t n, size_t step, const void *dict,
    size_t dictlen, struct bytes *out, char *err, size_t errlen)
{
	struct zdec *d = zdec_new(dict, dictlen);
	size_t off, k;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	for (off = 0; off < n && rc == 0; off += k) {
		k = step == 0 || n - off < step ? n - off : step;
		rc = zdec_write(d, z + off, k, collect, out);
	}
	if (rc == 0)
		rc = zdec_finish(d);
	snprintf(err, errlen, "%s", zdec_error(d));
	zdec_free(&d);
	ASSERT_TRUE(d == NULL);
	return rc;
}

static void
roundtrip(const char *in, size_t n, size_t cstep, size_t dstep)
{
	struct bytes z, out;
	char err[256];

	compress(in, n, cstep, 3, n, NULL, &z);
	ASSERT_EQ(decompress(z.p, z.len, dstep, NULL, 0, &out, err,
	    sizeof(err)), 0);
	ASSERT_STREQ(err, "");
	ASSERT_EQ(out.len, n);
	ASSERT_TRUE(n == 0 || memcmp(out.p, in, n) == 0);
	bytes_free(&z);
	bytes_free(&out);
}

static void
test_roundtrip_sizes(void)
{
	static const size_t sizes[] = { 0, 1, 2, 100, 4096, 65536, 131072,
	    131073, 1000000 };
	size_t i;
	char *t;

	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		t = mailtext(sizes[i]);
		roundtrip(t, sizes[i], 0, 0);
		roundtrip(t, sizes[i], 65536, 65536);
		free(t);
		t = noise(sizes[i]);
		roundtrip(t, sizes[i], 4093, 0);
		free(t);
	}
}

static void
test_stage_every_split(void)
{
	const size_t n = 700;
	char *t = mailtext(n);
	struct pipe_stage *st;
	struct bytes out;
	struct cap c;
	char err[256];
	size_t k;

	for (k = 0; k <= n; k++) {
		cap_init(&c);
		st = zstd_stage_new(5, 0, NULL, &c.st);
		ASSERT_EQ(st->ops->write(st, t, k), k);
		ASSERT_EQ(st->ops->write(st, t + k, n - k), n - k);
		ASSERT_EQ(st->ops->finish(st), 0);
		st->ops->free(st);
		ASSERT_EQ(decompress(c.out.p, c.out.len, 0, NULL, 0, &out,
		    err, sizeof(err)), 0);
		ASSERT_EQ(out.len, n);
		ASSERT_MEMEQ(out.p, t, n);
		bytes_free(&out);
		bytes_free(&c.out);
	}
	free(t);
}

static void
test_stage_one_byte_at_a_time(void)
{
	char *t = mailtext(300000);

	roundtrip(t, 300000, 1, 0);
	free(t);
	t = noise(200000);
	roundtrip(t, 200000, 1, 7);
	free(t);
}

static void
test_dec_every_split(void)
{
	const size_t n = 3000;
	char *t = mailtext(n);
	struct bytes z, out;
	struct zdec *d;
	size_t k;

	compress(t, n, 0, 3, 0, NULL, &z);
	for (k = 0; k <= z.len; k++) {
		memset(&out, 0, sizeof(out));
		d = zdec_new(NULL, 0);
		ASSERT_EQ(zdec_write(d, z.p, k, collect, &out), 0);
		/* before the last byte, the frame is incomplete */
		if (k < z.len) {
			ASSERT_EQ(zdec_write(d, z.p + k, z.len - k, collect,
			    &out), 0);
		}
		ASSERT_EQ(zdec_finish(d), 0);
		zdec_free(&d);
		ASSERT_EQ(out.len, n);
		ASSERT_MEMEQ(out.p, t, n);
		bytes_free(&out);
	}
	bytes_free(&z);
	free(t);
}

static void
test_dec_one_byte_at_a_time(void)
{
	char *t = mailtext(400000);

	roundtrip(t, 400000, 0, 1);
	/* output ending exactly at a full zstd block, then the checksum */
	roundtrip(t, 131072, 0, 1);
	roundtrip(t, 262144, 0, 1);
	free(t);
}

static void
test_empty_message_has_a_frame(void)
{
	struct bytes z, out;
	char err[256];

	compress("", 0, 0, 3, 0, NULL, &z);
	ASSERT_TRUE(z.len > 0);
	ASSERT_EQ(decompress(z.p, z.len, 1, NULL, 0, &out, err,
	    sizeof(err)), 0);
	ASSERT_EQ(out.len, 0);
	bytes_free(&z);
	bytes_free(&out);
}

static void
test_size_hint_may_lie(void)
{
	static const uint64_t hints[] = { 1, 10, 1000, 1u << 20,
	    UINT64_MAX };
	char *t = mailtext(2000000);
	struct bytes z, out;
	char err[256];
	size_t i, n;

	for (i = 0; i < sizeof(hints) / sizeof(hints[0]); i++) {
		n = i % 2 == 0 ? 2000000 : 500;
		compress(t, n, 65536, 3, hints[i], NULL, &z);
		ASSERT_EQ(decompress(z.p, z.len, 65536, NULL, 0, &out, err,
		    sizeof(err)), 0);
		ASSERT_EQ(out.len, n);
		ASSERT_MEMEQ(out.p, t, n);
		bytes_free(&z);
		bytes_free(&out);
	}
	free(t);
}

/*
 * Bounded memory: a highly compressible 8 MiB message comes out of the
 * decompressor in pieces no larger than one zstd block, whatever the size
 * of the input given at once; and the stage hands on bounded pieces.
 */
static void
test_large_output_is_bounded(void)
{
	const size_t n = 8u << 20;
	char *t = xmalloc(n);
	struct bytes z, out;
	char err[256];

	memset(t, 'x', n);
	compress(t, n, n, 1, 0, NULL, &z);
	ASSERT_TRUE(z.len < 4096);
	ASSERT_EQ(decompress(z.p, z.len, 0, NULL, 0, &out, err,
	    sizeof(err)), 0);
	ASSERT_EQ(out.len, n);
	ASSERT_MEMEQ(out.p, t, n);
	ASSERT_TRUE(out.max_piece <= 128 * 1024);
	ASSERT_TRUE(out.pieces >= n / (128 * 1024));
	bytes_free(&z);
	bytes_free(&out);
	free(t);

	t = noise(n);
	compress(t, n, n, 1, 0, NULL, &z);
	ASSERT_TRUE(z.max_piece <= 256 * 1024);
	ASSERT_EQ(decompress(z.p, z.len, 0, NULL, 0, &out, err,
	    sizeof(err)), 0);
	ASSERT_EQ(out.len, n);
	ASSERT_MEMEQ(out.p, t, n);
	bytes_free(&z);
	bytes_free(&out);
	free(t);
}

static void
test_dictionary(void)
{
	char *dict = mailtext(16384), *msg, err[256];
	struct bytes zd, zp, out;
	struct zdict *zd1;
	size_t n = 2000;

	/* raw-content dictionary: the message shares much of its text */
	msg = xmalloc(n);
	memcpy(msg, dict + 5000, n);
	zd1 = zdict_new(42, dict, 16384, 3);
	ASSERT_TRUE(zd1 != NULL);
	ASSERT_EQ(zdict_id(zd1), 42);
	compress(msg, n, 0, 3, n, zd1, &zd);
	compress(msg, n, 0, 3, n, NULL, &zp);
	ASSERT_TRUE(zd.len < zp.len / 4);

	ASSERT_EQ(decompress(zd.p, zd.len, 0, dict, 16384, &out, err,
	    sizeof(err)), 0);
	ASSERT_EQ(out.len, n);
	ASSERT_MEMEQ(out.p, msg, n);
	bytes_free(&out);
	ASSERT_EQ(decompress(zd.p, zd.len, 1, dict, 16384, &out, err,
	    sizeof(err)), 0);
	ASSERT_EQ(out.len, n);
	ASSERT_MEMEQ(out.p, msg, n);
	bytes_free(&out);

	/* without it, the bytes cannot be had back */
	ASSERT_EQ(decompress(zd.p, zd.len, 0, NULL, 0, &out, err,
	    sizeof(err)), -1);
	ASSERT_TRUE(strstr(err, "zstd decompress") != NULL);
	bytes_free(&out);

	/* a frame made without a dictionary decodes with one loaded */
	ASSERT_EQ(decompress(zp.p, zp.len, 0, dict, 16384, &out, err,
	    sizeof(err)), 0);
	ASSERT_EQ(out.len, n);
	bytes_free(&out);

	bytes_free(&zd);
	bytes_free(&zp);
	zdict_free(&zd1);
	ASSERT_TRUE(zd1 == NULL);
	zdict_free(&zd1);
	free(msg);
	free(dict);
}

/* Many stages, one dictionary, interleaved: it is only read. */
static void
test_dictionary_shared_by_stages(void)
{
	enum { N = 6 };
	char *dict = mailtext(8192), *t = mailtext(50000), err[256];
	struct pipe_stage *st[N];
	struct cap c[N];
	struct bytes out;
	struct zdict *zd;
	size_t off;
	int i;

	zd = zdict_new(7, dict, 8192, 9);
	for (i = 0; i < N; i++) {
		cap_init(&c[i]);
		st[i] = zstd_stage_new(9, 50000, i % 2 ? zd : NULL, &c[i].st);
	}
	for (off = 0; off < 50000; off += 1000)
		for (i = 0; i < N; i++)
			ASSERT_EQ(st[i]->ops->write(st[i], t + off, 1000),
			    1000);
	for (i = 0; i < N; i++) {
		ASSERT_EQ(st[i]->ops->finish(st[i]), 0);
		st[i]->ops->free(st[i]);
		ASSERT_EQ(decompress(c[i].out.p, c[i].out.len, 0,
		    i % 2 ? dict : NULL, i % 2 ? 8192 : 0, &out, err,
		    sizeof(err)), 0);
		ASSERT_EQ(out.len, 50000);
		ASSERT_MEMEQ(out.p, t, 50000);
		bytes_free(&out);
		bytes_free(&c[i].out);
	}
	zdict_free(&zd);
	free(dict);
	free(t);
}

static void
test_truncated_frame(void)
{
	char *t = mailtext(100000), err[256];
	struct bytes z, out;
	size_t cut;

	compress(t, 100000, 0, 3, 0, NULL, &z);
	for (cut = 0; cut < z.len; cut += cut < 64 ? 1 : 997) {
		if (cut == 0)
			continue;
		ASSERT_EQ(decompress(z.p, cut, 0, NULL, 0, &out, err,
		    sizeof(err)), -1);
		ASSERT_TRUE(strstr(err, "truncated") != NULL ||
		    strstr(err, "zstd decompress") != NULL);
		bytes_free(&out);
	}
	/* one byte short: the checksum is missing */
	ASSERT_EQ(decompress(z.p, z.len - 1, 0, NULL, 0, &out, err,
	    sizeof(err)), -1);
	ASSERT_STREQ(err, "zstd decompress: truncated frame");
	bytes_free(&out);
	bytes_free(&z);
	free(t);
}

static void
test_corrupt_frame(void)
{
	char *t = mailtext(50000), err[256];
	struct bytes z, out;

	compress(t, 50000, 0, 3, 0, NULL, &z);
	/* the content checksum catches a flipped bit in the payload */
	z.p[z.len / 2] ^= 0x10;
	ASSERT_EQ(decompress(z.p, z.len, 0, NULL, 0, &out, err,
	    sizeof(err)), -1);
	ASSERT_TRUE(strncmp(err, "zstd decompress: ", 17) == 0);
	bytes_free(&out);
	/* not zstd at all */
	ASSERT_EQ(decompress(t, 1000, 0, NULL, 0, &out, err, sizeof(err)),
	    -1);
	ASSERT_TRUE(strncmp(err, "zstd decompress: ", 17) == 0);
	bytes_free(&out);
	bytes_free(&z);
	free(t);
}

static void
test_no_input(void)
{
	struct zdec *d = zdec_new(NULL, 0);

	ASSERT_EQ(zdec_write(d, "", 0, collect, NULL), 0);
	ASSERT_EQ(zdec_finish(d), -1);
	ASSERT_STREQ(zdec_error(d), "zstd decompress: no frame");
	zdec_free(&d);
	zdec_free(&d);
}

static int
refuse(void *arg, const void *p, size_t n)
{
	int *calls = arg;

	return ++*calls >= 2 ? -1 : 0;
}

static void
test_out_refuses(void)
{
	char *t = mailtext(1000000);
	struct bytes z;
	struct zdec *d;
	int calls = 0;

	compress(t, 1000000, 0, 3, 0, NULL, &z);
	d = zdec_new(NULL, 0);
	ASSERT_EQ(zdec_write(d, z.p, z.len, refuse, &calls), -1);
	ASSERT_EQ(calls, 2);
	ASSERT_STREQ(zdec_error(d), "zstd decompress: output refused");
	/* and it stays failed */
	ASSERT_EQ(zdec_write(d, z.p, z.len, refuse, &calls), -1);
	ASSERT_EQ(calls, 2);
	ASSERT_EQ(zdec_finish(d), -1);
	zdec_free(&d);
	bytes_free(&z);
	free(t);
}

/* A verifier keeps one zdec across blobs, and two frames in one input. */
static void
test_zdec_reuse(void)
{
	char *a = mailtext(5000), *b = noise(3000);
	struct bytes za, zb, out;
	struct zdec *d = zdec_new(NULL, 0);

	compress(a, 5000, 0, 3, 0, NULL, &za);
	compress(b, 3000, 0, 3, 0, NULL, &zb);
	memset(&out, 0, sizeof(out));
	ASSERT_EQ(zdec_write(d, za.p, za.len, collect, &out), 0);
	ASSERT_EQ(zdec_finish(d), 0);
	ASSERT_EQ(zdec_write(d, zb.p, zb.len, collect, &out), 0);
	ASSERT_EQ(zdec_finish(d), 0);
	ASSERT_EQ(out.len, 8000);
	ASSERT_MEMEQ(out.p, a, 5000);
	ASSERT_MEMEQ(out.p + 5000, b, 3000);
	bytes_free(&out);
	/* concatenated frames are one valid input */
	ASSERT_EQ(zdec_write(d, za.p, za.len, collect, &out), 0);
	ASSERT_EQ(zdec_write(d, zb.p, 10, collect, &out), 0);
	ASSERT_EQ(zdec_finish(d), -1);
	zdec_free(&d);
	bytes_free(&out);
	bytes_free(&za);
	bytes_free(&zb);
	free(a);
	free(b);
}

static void
test_next_stage_fails(void)
{
	char *t = noise(1000000);
	struct pipe_stage *st;
	struct cap c;
	size_t off;
	ssize_t w = 0;

	/* during the stream */
	cap_init(&c);
	c.fail_after = 2;
	st = zstd_stage_new(1, 0, NULL, &c.st);
	for (off = 0; off < 1000000; off += 10000) {
		w = st->ops->write(st, t + off, 10000);
		if (w == -1)
			break;
	}
	ASSERT_EQ(w, -1);
	ASSERT_STREQ(st->error, "cap: disk on fire");
	/* sticky */
	ASSERT_EQ(st->ops->write(st, t, 1), -1);
	ASSERT_EQ(st->ops->finish(st), -1);
	st->ops->abort(st);
	ASSERT_TRUE(c.aborted);
	st->ops->free(st);
	bytes_free(&c.out);

	/* at the end of the frame */
	cap_init(&c);
	c.fail_after = 1;
	st = zstd_stage_new(1, 0, NULL, &c.st);
	ASSERT_EQ(st->ops->write(st, t, 100), 100);
	ASSERT_EQ(st->ops->finish(st), -1);
	ASSERT_STREQ(st->error, "cap: disk on fire");
	ASSERT_TRUE(!c.finished);
	st->ops->free(st);
	bytes_free(&c.out);
	free(t);
}

static void
test_abort_midway(void)
{
	char *t = mailtext(300000);
	struct pipe_stage *st;
	struct cap c;

	cap_init(&c);
	st = zstd_stage_new(3, 300000, NULL, &c.st);
	ASSERT_EQ(st->ops->write(st, t, 300000), 300000);
	st->ops->abort(st);
	ASSERT_TRUE(c.aborted);
	ASSERT_EQ(st->ops->write(st, t, 1), -1);
	st->ops->free(st);
	bytes_free(&c.out);
	/* free without abort or finish also gives everything back */
	cap_init(&c);
	st = zstd_stage_new(3, 0, NULL, &c.st);
	ASSERT_EQ(st->ops->write(st, t, 1000), 1000);
	st->ops->free(st);
	bytes_free(&c.out);
	free(t);
}

static void
test_pool_limits(void)
{
	char *t = mailtext(20000);
	int i;

	zstd_pool_set_max(0);
	roundtrip(t, 20000, 0, 0);
	zstd_pool_set_max(1000);
	for (i = 0; i < 20; i++)
		roundtrip(t, 20000, 999, 0);
	/* a pooled context forgets the last message's level and dict */
	zstd_pool_set_max(2);
	zstd_pool_clear();
	roundtrip(t, 20000, 0, 0);
	zstd_pool_set_max(8);
	zstd_pool_clear();
	free(t);
}

/*
 * Worker threads compress at once with one shared dictionary and the one
 * context pool; each checks its own output.  Run under TSan as well.
 */
struct thr {
	const struct zdict *zd;
	const char *dict;
	size_t dictlen;
	const char *text;
	size_t len;
	int rounds;
	int ok;
};

static void *
thr_main(void *arg)
{
	struct thr *t = arg;
	struct bytes z, out;
	char err[256];
	int i;

	for (i = 0; i < t->rounds; i++) {
		compress(t->text, t->len, 4096, 3, t->len,
		    i % 2 ? t->zd : NULL, &z);
		if (decompress(z.p, z.len, 0, i % 2 ? t->dict : NULL,
		    i % 2 ? t->dictlen : 0, &out, err, sizeof(err)) == 0 &&
		    out.len == t->len && memcmp(out.p, t->text, t->len) == 0)
			t->ok++;
		bytes_free(&z);
		bytes_free(&out);
	}
	return NULL;
}

static void
test_threads_share_dict_and_pool(void)
{
	enum { NT = 4 };
	char *dict = mailtext(16384), *text[NT];
	struct zdict *zd = zdict_new(3, dict, 16384, 3);
	pthread_t tid[NT];
	struct thr t[NT];
	int i;

	zstd_pool_set_max(2);	/* fewer than threads: create and free too */
	for (i = 0; i < NT; i++) {
		text[i] = mailtext(20000 + 5000 * (size_t)i);
		t[i] = (struct thr){ zd, dict, 16384, text[i],
		    20000 + 5000 * (size_t)i, 40, 0 };
		ASSERT_EQ(pthread_create(&tid[i], NULL, thr_main, &t[i]), 0);
	}
	for (i = 0; i < NT; i++) {
		ASSERT_EQ(pthread_join(tid[i], NULL), 0);
		ASSERT_EQ(t[i].ok, 40);
		free(text[i]);
	}
	zstd_pool_set_max(8);
	zstd_pool_clear();
	zdict_free(&zd);
	free(dict);
}

static void
test_train(void)
{
	enum { NS = 2000 };
	size_t sizes[NS], total = 0, len = 0, i;
	char *samples, *one, dict[16384], err[256];
	struct bytes zd, zp, out;
	struct zdict *d;

	samples = xmalloc(NS * 1200);
	for (i = 0; i < NS; i++) {
		one = mailtext(400 + rnd() % 800);
		sizes[i] = strlen(one);
		memcpy(samples + total, one, sizes[i]);
		total += sizes[i];
		free(one);
	}
	ASSERT_EQ(zdict_train(samples, sizes, NS, dict, sizeof(dict), &len),
	    0);
	ASSERT_TRUE(len > 0 && len <= sizeof(dict));
	d = zdict_new(1, dict, len, 3);
	ASSERT_TRUE(d != NULL);
	one = mailtext(900);
	compress(one, 900, 0, 3, 900, d, &zd);
	compress(one, 900, 0, 3, 900, NULL, &zp);
	ASSERT_TRUE(zd.len < zp.len);
	ASSERT_EQ(decompress(zd.p, zd.len, 3, dict, len, &out, err,
	    sizeof(err)), 0);
	ASSERT_EQ(out.len, 900);
	ASSERT_MEMEQ(out.p, one, 900);
	bytes_free(&out);
	bytes_free(&zd);
	bytes_free(&zp);
	zdict_free(&d);
	free(one);
	free(samples);
}

static void
test_train_too_little(void)
{
	size_t sizes[2] = { 3, 4 }, len = 12345;
	char dict[4096];

	ASSERT_EQ(zdict_train("abcdefg", sizes, 2, dict, sizeof(dict), &len),
	    -1);
	ASSERT_EQ(len, 12345);
}

TEST_MAIN(TESTS)
