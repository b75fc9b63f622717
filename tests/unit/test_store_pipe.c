/*
 * store/pipe: the whole chain, hash -> zstd -> spool, read back through the
 * decompressor.  Digests at every split point and one byte at a time; the
 * header boundary in each of its forms; multi-megabyte messages that cross
 * the spool's memory bound, with and without a dictionary; failures.
 */
#include "tests/unit/test.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ingestd/base/xmalloc.h"
#include "store/hash.h"
#include "store/pipe.h"
#include "store/spool.h"
#include "store/zstd.h"

#define TESTS(X)                                                         \
	X(test_hex)                                                      \
	X(test_abc)                                                      \
	X(test_empty_message)                                            \
	X(test_headscan_cases)                                           \
	X(test_head_every_split)                                         \
	X(test_head_one_byte_at_a_time)                                  \
	X(test_head_blank_line_split_across_writes)                      \
	X(test_pipe_head_every_split)                                    \
	X(test_pipe_head_one_byte_at_a_time)                             \
	X(test_pipe_head_ignores_what_follows)                           \
	X(test_pipe_head_matches_the_pipe)                               \
	X(test_every_split_roundtrip)                                    \
	X(test_large_crosses_spool_bound)                                \
	X(test_large_with_dictionary)                                    \
	X(test_size_hint_lies)                                           \
	X(test_spool_write_fails)                                        \
	X(test_spool_fails_at_finish)                                    \
	X(test_spool_open_fails)                                         \
	X(test_abort_unfinished)                                         \
	X(test_many_pipes_interleaved)                                   \
	X(test_dir_left_empty)
TESTS(TEST_DECLARE)

static char tmpdir[64];

static void
dir_make(void)
{
	if (tmpdir[0] != '\0')
		return;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_pipe.XXXXXX");
	ASSERT_TRUE(mkdtemp(tmpdir) != NULL);
}

static struct pipe_params
params(size_t mem, uint64_t hint, const struct zdict *dict)
{
	struct pipe_params pp;

	dir_make();
	memset(&pp, 0, sizeof(pp));
	pp.spool_dir = tmpdir;
	pp.spool_mem = mem;
	pp.size_hint = hint;
	pp.level = 3;
	pp.dict = dict;
	return pp;
}

struct bytes {
	char *p;
	size_t len;
	size_t cap;
};

static int
collect(void *arg, const void *p, size_t n)
{
	struct bytes *b = arg;

	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		b->p = xreallocarray(b->p, b->cap, 1);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

/*
 * Reads the spool back through the decompressor, as export does, 64 KiB
 * at a time, and checks it against want[0, n).
 */
static void
check_spool(struct spool *s, const void *dict, size_t dictlen,
    const char *want, size_t n)
{
	struct zdec *d = zdec_new(dict, dictlen);
	struct bytes out = { NULL, 0, 0 };
	char buf[65536];
	uint64_t off = 0;
	ssize_t r;

	while ((r = spool_read(s, off, buf, sizeof(buf))) > 0) {
		ASSERT_EQ(zdec_write(d, buf, (size_t)r, collect, &out), 0);
		off += (uint64_t)r;
	}
	ASSERT_EQ(r, 0);
	ASSERT_EQ(off, spool_size(s));
	ASSERT_EQ(zdec_finish(d), 0);
	zdec_free(&d);
	ASSERT_EQ(out.len, n);
	ASSERT_TRUE(n == 0 || memcmp(out.p, want, n) == 0);
	free(out.p);
}

/* Runs msg through a pipe in pieces of step bytes (0: at once). */
static void
run(const struct pipe_params *pp, const char *msg, size_t n, size_t step,
    struct pipe_result *r)
{
	struct pipe *p = pipe_new(pp);
	size_t off, k;

	for (off = 0; off < n; off += k) {
		k = step == 0 || n - off < step ? n - off : step;
		ASSERT_EQ(pipe_write(p, msg + off, k), 0);
	}
	ASSERT_EQ(pipe_finish(p, r), 0);
	ASSERT_STREQ(pipe_error(p), "");
	pipe_free(&p);
	ASSERT_TRUE(p == NULL);
	ASSERT_TRUE(r->spool != NULL);
	ASSERT_EQ(r->size, n);
	ASSERT_EQ(r->stored_size, spool_size(r->spool));
}

/* The digests a message must get: computed one-shot, independently. */
static void
expect(const char *msg, size_t n, size_t headlen, unsigned char sha[32],
    unsigned char head[32])
{
	hash_sha256(msg, n, sha);
	hash_sha256(msg, headlen, head);
}

static char *
mailtext(size_t n, uint64_t seed)
{
	static const char *words[] = {
		"the", "archive", "message", "received", "from", "mailbox",
		"quarterly", "report", "attached", "please", "find", "regards",
		"invoice", "meeting", "Tuesday", "compliance", "retention",
		".", "..", "with", "and", "of", "\tcontinued",
	};
	char *p = xmalloc(n + 1);
	size_t i = 0, col = 0, w;
	const char *s;

	while (i < n) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		s = words[(seed >> 20) % (sizeof(words) / sizeof(words[0]))];
		for (w = 0; s[w] != '\0' && i < n; w++)
			p[i++] = s[w];
		col += w;
		if (i < n && col > 60 + (seed >> 40) % 15) {
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

static void
test_hex(void)
{
	unsigned char d[32];
	char h[65];
	int i;

	for (i = 0; i < 32; i++)
		d[i] = (unsigned char)(i * 8 + 7 * (i & 1));
	pipe_hex(d, h);
	ASSERT_STREQ(h, "000f101f202f303f404f505f606f707f"
			"808f909fa0afb0bfc0cfd0dfe0eff0ff");
	ASSERT_EQ(strlen(h), 64);
}

static void
test_abc(void)
{
	struct pipe_params pp = params(1024, 3, NULL);
	struct pipe_result r;
	char h[65];

	run(&pp, "abc", 3, 1, &r);
	pipe_hex(r.sha256, h);
	ASSERT_STREQ(h, "ba7816bf8f01cfea414140de5dae2223"
			"b00361a396177a9cb410ff61f20015ad");
	/* no empty line: the whole message is the header block */
	ASSERT_MEMEQ(r.head_sha256, r.sha256, 32);
	ASSERT_EQ(r.dict_id, 0);
	check_spool(r.spool, NULL, 0, "abc", 3);
	spool_free(&r.spool);
}

static void
test_empty_message(void)
{
	struct pipe_params pp = params(1024, 0, NULL);
	struct pipe_result r;
	char h[65];

	run(&pp, "", 0, 0, &r);
	pipe_hex(r.sha256, h);
	ASSERT_STREQ(h, "e3b0c44298fc1c149afbf4c8996fb924"
			"27ae41e4649b934ca495991b7852b855");
	ASSERT_MEMEQ(r.head_sha256, r.sha256, 32);
	ASSERT_EQ(r.size, 0);
	ASSERT_TRUE(r.stored_size > 0);
	check_spool(r.spool, NULL, 0, "", 0);
	spool_free(&r.spool);
}

/*
 * Messages, how many of their bytes make the header block, and whether an
 * empty line ends it (if not, the block is the whole message).
 */
static const struct {
	const char *msg;
	size_t headlen;
	bool found;
} heads[] = {
	{ "Subject: a\r\nFrom: b\r\n\r\nbody\r\n", 23, true },
	{ "Subject: a\nFrom: b\n\nbody\n", 20, true },
	{ "Subject: a\r\nFrom: b\r\n", 21, false },
	{ "Subject: a\r\nFrom: b", 19, false },
	/* the first empty line, not a later one */
	{ "Subject: a\r\n\r\nbody\r\n\r\nmore\r\n", 14, true },
	/* mixed endings: LF then CR LF, CR LF then LF */
	{ "Subject: a\n\r\nbody", 13, true },
	{ "Subject: a\r\n\nbody", 13, true },
	/* an empty header block: the first line is the empty one */
	{ "\r\nbody\r\n", 2, true },
	{ "\nbody\n", 1, true },
	{ "\r\n", 2, true },
	{ "\n", 1, true },
	/* a lone CR ends no line */
	{ "\r", 1, false },
	{ "A: b\r\r\n", 7, false },
	/* "CR CR LF" and " CR LF" are not empty lines */
	{ "A: b\r\n\r\r\nX\r\n\r\nbody", 14, true },
	{ "A: b\r\n \r\nc\r\n\r\n", 14, true },
	{ "A: b\r\r\n\r\n", 9, true },
	{ "A\n\n\n\n", 3, true },
	{ "", 0, false },
};
#define NHEADS (sizeof(heads) / sizeof(heads[0]))

static void
test_headscan_cases(void)
{
	struct pipe_headscan s;
	size_t i, k, n, len, total;
	bool found;

	for (i = 0; i < NHEADS; i++) {
		n = strlen(heads[i].msg);
		/* at once */
		pipe_headscan_init(&s);
		found = pipe_headscan_feed(&s, heads[i].msg, n, &len);
		ASSERT_EQ(len, heads[i].headlen);
		ASSERT_EQ(found, heads[i].found);
		/* one byte at a time */
		pipe_headscan_init(&s);
		total = 0;
		found = false;
		for (k = 0; k < n; k++) {
			if (pipe_headscan_feed(&s, heads[i].msg + k, 1,
			    &len)) {
				total += len;
				found = true;
				/* later calls report nothing more */
				ASSERT_TRUE(pipe_headscan_feed(&s, "x\n", 2,
				    &len));
				ASSERT_EQ(len, 0);
				break;
			}
			ASSERT_EQ(len, 1);
			total++;
		}
		ASSERT_EQ(found, heads[i].found);
		ASSERT_EQ(total, heads[i].headlen);
	}
}

static void
check_head_split(size_t i, size_t k)
{
	const char *m = heads[i].msg;
	size_t n = strlen(m);
	struct pipe_params pp = params(8, 0, NULL);
	unsigned char sha[32], head[32];
	struct pipe_result r;
	struct pipe *p;

	expect(m, n, heads[i].headlen, sha, head);
	p = pipe_new(&pp);
	ASSERT_EQ(pipe_write(p, m, k), 0);
	ASSERT_EQ(pipe_write(p, m + k, n - k), 0);
	ASSERT_EQ(pipe_finish(p, &r), 0);
	pipe_free(&p);
	ASSERT_MEMEQ(r.sha256, sha, 32);
	if (memcmp(r.head_sha256, head, 32) != 0)
		TEST_FAIL_("head digest of case %zu split at %zu", i, k);
	ASSERT_EQ(r.size, n);
	spool_free(&r.spool);
}

static void
test_head_every_split(void)
{
	size_t i, k;

	for (i = 0; i < NHEADS; i++)
		for (k = 0; k <= strlen(heads[i].msg); k++)
			check_head_split(i, k);
}

static void
test_head_one_byte_at_a_time(void)
{
	struct pipe_params pp = params(16, 0, NULL);
	unsigned char sha[32], head[32];
	struct pipe_result r;
	size_t i, n;

	for (i = 0; i < NHEADS; i++) {
		n = strlen(heads[i].msg);
		expect(heads[i].msg, n, heads[i].headlen, sha, head);
		run(&pp, heads[i].msg, n, 1, &r);
		ASSERT_MEMEQ(r.sha256, sha, 32);
		ASSERT_MEMEQ(r.head_sha256, head, 32);
		check_spool(r.spool, NULL, 0, heads[i].msg, n);
		spool_free(&r.spool);
	}
}

/*
 * A realistic header block of a few KB whose blank line falls at every
 * position relative to a three-way split: LF | CR LF, CR | LF, and so on.
 */
static void
test_head_blank_line_split_across_writes(void)
{
	static const char *eols[] = { "\r\n", "\n" };
	struct pipe_params pp = params(4096, 0, NULL);
	unsigned char sha[32], head[32];
	struct pipe_result r;
	struct pipe *p;
	char *hdr, *msg;
	size_t e, n, hl, a, b;

	hdr = mailtext(3000, 1);
	n = strlen(hdr);
	while (n > 0 && strchr(" \r\n", hdr[n - 1]) != NULL)
		hdr[--n] = '\0';
	for (e = 0; e < 2; e++) {
		msg = xasprintf("%s%s%s%s", hdr, eols[e], eols[e],
		    "body line\r\n\r\n");
		n = strlen(msg);
		hl = strlen(hdr) + 2 * strlen(eols[e]);
		expect(msg, n, hl, sha, head);
		for (a = hl - 6; a <= hl + 1; a++) {
			for (b = a; b <= hl + 2; b++) {
				p = pipe_new(&pp);
				ASSERT_EQ(pipe_write(p, msg, a), 0);
				ASSERT_EQ(pipe_write(p, msg + a, b - a), 0);
				ASSERT_EQ(pipe_write(p, msg + b, n - b), 0);
				ASSERT_EQ(pipe_finish(p, &r), 0);
				pipe_free(&p);
				ASSERT_MEMEQ(r.sha256, sha, 32);
				ASSERT_MEMEQ(r.head_sha256, head, 32);
				spool_free(&r.spool);
			}
		}
		free(msg);
	}
	free(hdr);
}

/*
 * struct pipe_head alone, as the session runs it over TOP n 0: each case
 * of the table fed whole, split at every point (one head reused through
 * reset), and one byte at a time; the header digest and the digest of
 * all bytes against one-shot digests.
 */
static void
check_pipe_head(struct pipe_head *h, size_t i, size_t k, size_t step)
{
	const char *m = heads[i].msg;
	size_t n = strlen(m), off, take;
	unsigned char sha[32], head[32], got_head[32], got_all[32];

	expect(m, n, heads[i].headlen, sha, head);
	pipe_head_reset(h);
	if (step == 0) {
		pipe_head_update(h, m, k);
		pipe_head_update(h, m + k, n - k);
	} else {
		for (off = 0; off < n; off += take) {
			take = n - off < step ? n - off : step;
			pipe_head_update(h, m + off, take);
		}
	}
	pipe_head_final(h, got_head, got_all);
	if (memcmp(got_head, head, 32) != 0)
		TEST_FAIL_("head digest of case %zu split at %zu, step %zu",
		    i, k, step);
	ASSERT_MEMEQ(got_all, sha, 32);
	/* all is optional, and leaves the header digest alone */
	pipe_head_reset(h);
	pipe_head_update(h, m, n);
	pipe_head_final(h, got_head, NULL);
	ASSERT_MEMEQ(got_head, head, 32);
}

static void
test_pipe_head_every_split(void)
{
	struct pipe_head h;
	size_t i, k;

	pipe_head_init(&h);
	for (i = 0; i < NHEADS; i++)
		for (k = 0; k <= strlen(heads[i].msg); k++)
			check_pipe_head(&h, i, k, 0);
	pipe_head_release(&h);
	/* released twice, or never initialised but zeroed: harmless */
	pipe_head_release(&h);
}

static void
test_pipe_head_one_byte_at_a_time(void)
{
	struct pipe_head h;
	size_t i;

	pipe_head_init(&h);
	for (i = 0; i < NHEADS; i++) {
		check_pipe_head(&h, i, 0, 1);
		check_pipe_head(&h, i, 0, 2);
	}
	pipe_head_release(&h);
}

/*
 * What servers make of TOP n 0: the header block, its empty line, then
 * nothing, a blank line, or body lines.  Each must give the header digest
 * RETR's bytes gave, whatever follows the empty line and however the
 * bytes are split; so must the empty stream, which is its own header.
 */
static void
test_pipe_head_ignores_what_follows(void)
{
	static const char *tails[] = {
		"", "\r\n", "\n", "body line\r\n", "\r\n\r\nx\r\n",
		"A: header-looking body\n\n",
	};
	struct pipe_head h;
	unsigned char want[32], got[32];
	size_t i, t, k, n;
	char *top;

	pipe_head_init(&h);
	for (i = 0; i < NHEADS; i++) {
		if (!heads[i].found)
			continue;
		hash_sha256(heads[i].msg, heads[i].headlen, want);
		for (t = 0; t < sizeof(tails) / sizeof(tails[0]); t++) {
			top = xasprintf("%.*s%s", (int)heads[i].headlen,
			    heads[i].msg, tails[t]);
			n = strlen(top);
			for (k = 0; k <= n; k++) {
				pipe_head_reset(&h);
				pipe_head_update(&h, top, k);
				pipe_head_update(&h, top + k, n - k);
				pipe_head_final(&h, got, NULL);
				if (memcmp(got, want, 32) != 0)
					TEST_FAIL_("case %zu with tail %zu "
					    "split at %zu", i, t, k);
			}
			free(top);
		}
	}
	/* The empty stream: its digest, as for an empty message. */
	pipe_head_reset(&h);
	pipe_head_final(&h, got, NULL);
	hash_sha256("", 0, want);
	ASSERT_MEMEQ(got, want, 32);
	pipe_head_release(&h);
}

/* The pipe's head_sha256 is the one pipe_head computes over the same
 * bytes: the archive and the TOP proof cannot drift apart. */
static void
test_pipe_head_matches_the_pipe(void)
{
	struct pipe_params pp = params(64, 0, NULL);
	struct pipe_result r;
	struct pipe_head h;
	unsigned char head[32], all[32];
	size_t i, n;

	pipe_head_init(&h);
	for (i = 0; i < NHEADS; i++) {
		n = strlen(heads[i].msg);
		run(&pp, heads[i].msg, n, 3, &r);
		pipe_head_reset(&h);
		pipe_head_update(&h, heads[i].msg, n);
		pipe_head_final(&h, head, all);
		ASSERT_MEMEQ(r.head_sha256, head, 32);
		ASSERT_MEMEQ(r.sha256, all, 32);
		spool_free(&r.spool);
	}
	pipe_head_release(&h);
}

static void
test_every_split_roundtrip(void)
{
	const size_t n = 1500;
	char *body = mailtext(n, 2), *msg;
	struct pipe_params pp = params(512, n, NULL);
	unsigned char sha[32], head[32];
	struct pipe_result r;
	struct pipe *p;
	size_t k, hl;

	msg = xasprintf("From: x\r\nTo: y\r\n\r\n%s", body);
	hl = 18;
	expect(msg, strlen(msg), hl, sha, head);
	for (k = 0; k <= strlen(msg); k++) {
		p = pipe_new(&pp);
		ASSERT_EQ(pipe_write(p, msg, k), 0);
		ASSERT_EQ(pipe_write(p, msg + k, strlen(msg) - k), 0);
		ASSERT_EQ(pipe_finish(p, &r), 0);
		pipe_free(&p);
		ASSERT_MEMEQ(r.sha256, sha, 32);
		ASSERT_MEMEQ(r.head_sha256, head, 32);
		check_spool(r.spool, NULL, 0, msg, strlen(msg));
		spool_free(&r.spool);
	}
	free(msg);
	free(body);
}

static void
large(const struct zdict *dict, const void *dictbytes, size_t dictlen)
{
	const size_t n = 6u << 20;
	char *msg = mailtext(n, 3);
	struct pipe_params pp = params(256 * 1024, n, dict);
	unsigned char sha[32], head[32];
	struct pipe_result r;
	size_t hl;

	/* a header block, then the body */
	memcpy(msg, "Subject: big\r\n\r\n", 16);
	hl = 16;
	expect(msg, n, hl, sha, head);
	run(&pp, msg, n, 65536, &r);
	ASSERT_MEMEQ(r.sha256, sha, 32);
	ASSERT_MEMEQ(r.head_sha256, head, 32);
	ASSERT_TRUE(r.stored_size > pp.spool_mem);
	ASSERT_TRUE(r.stored_size < n / 2);
	ASSERT_TRUE(spool_on_disk(r.spool));
	ASSERT_EQ(r.dict_id, dict != NULL ? zdict_id(dict) : 0);
	check_spool(r.spool, dictbytes, dictlen, msg, n);
	spool_free(&r.spool);

	/* one byte at a time for the first 100 KB */
	pp.spool_mem = 1000;
	run(&pp, msg, 100000, 1, &r);
	hash_sha256(msg, 100000, sha);
	ASSERT_MEMEQ(r.sha256, sha, 32);
	ASSERT_MEMEQ(r.head_sha256, head, 32);
	ASSERT_TRUE(spool_on_disk(r.spool));
	check_spool(r.spool, dictbytes, dictlen, msg, 100000);
	spool_free(&r.spool);
	free(msg);
}

static void
test_large_crosses_spool_bound(void)
{
	large(NULL, NULL, 0);
}

static void
test_large_with_dictionary(void)
{
	char *dict = mailtext(32768, 9);
	struct zdict *zd = zdict_new(1234, dict, 32768, 3);
	struct zdec *d;
	struct pipe_params pp;
	struct pipe_result r;
	struct bytes out = { NULL, 0, 0 };
	char buf[4096];
	ssize_t k;

	ASSERT_TRUE(zd != NULL);
	large(zd, dict, 32768);
	/* without the dictionary the blob does not decode */
	pp = params(1 << 20, 0, zd);
	run(&pp, dict + 100, 3000, 0, &r);
	ASSERT_EQ(r.dict_id, 1234);
	d = zdec_new(NULL, 0);
	k = spool_read(r.spool, 0, buf, sizeof(buf));
	ASSERT_EQ(k, (ssize_t)r.stored_size);
	ASSERT_EQ(zdec_write(d, buf, (size_t)k, collect, &out), -1);
	zdec_free(&d);
	free(out.p);
	check_spool(r.spool, dict, 32768, dict + 100, 3000);
	spool_free(&r.spool);
	zdict_free(&zd);
	free(dict);
}

static void
test_size_hint_lies(void)
{
	const size_t n = 3u << 20;
	char *msg = mailtext(n, 4);
	struct pipe_params pp;
	struct pipe_result r;

	pp = params(65536, 100, NULL);		/* says small, is large */
	run(&pp, msg, n, 100000, &r);
	check_spool(r.spool, NULL, 0, msg, n);
	spool_free(&r.spool);
	pp = params(65536, 1ull << 40, NULL);	/* says huge, is small */
	run(&pp, msg, 200, 0, &r);
	check_spool(r.spool, NULL, 0, msg, 200);
	spool_free(&r.spool);
	free(msg);
}

/* Fault injection for the spool under the pipe. */
static int writes, fail_write_at, opens;

static ssize_t
f_write(int fd, const void *p, size_t n)
{
	if (++writes == fail_write_at) {
		errno = ENOSPC;
		return -1;
	}
	return write(fd, p, n);
}

static int
f_open_eacces(const char *dir)
{
	opens++;
	errno = EACCES;
	return -1;
}

static void
test_spool_write_fails(void)
{
	const size_t n = 4u << 20;
	char *msg = xmalloc(n), want[256];
	struct spool_sys sys = { .write = f_write };
	struct pipe_params pp = params(100000, 0, NULL);
	struct pipe_result r;
	struct pipe *p;
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	size_t i, off;
	int nth, rc;

	/* incompressible, so the spool sees about n bytes */
	for (i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		msg[i] = (char)(x >> 24);
	}
	snprintf(want, sizeof(want), "spool write to %s: %s", tmpdir,
	    strerror(ENOSPC));
	pp.spool_sys = &sys;
	for (nth = 1; nth <= 3; nth++) {
		writes = 0;
		fail_write_at = nth;
		p = pipe_new(&pp);
		rc = 0;
		for (off = 0; off < n && rc == 0; off += 65536)
			rc = pipe_write(p, msg + off, 65536);
		ASSERT_EQ(rc, -1);
		ASSERT_STREQ(pipe_error(p), want);
		/* stays failed, and finish hands nothing over */
		ASSERT_EQ(pipe_write(p, msg, 10), -1);
		memset(&r, 0, sizeof(r));
		ASSERT_EQ(pipe_finish(p, &r), -1);
		ASSERT_TRUE(r.spool == NULL);
		ASSERT_STREQ(pipe_error(p), want);
		pipe_free(&p);
	}
	free(msg);
}

static void
test_spool_fails_at_finish(void)
{
	struct spool_sys sys = { .write = f_write };
	struct pipe_params pp = params(10, 0, NULL);
	struct pipe_result r;
	struct pipe *p;
	char want[256];

	/* a small message: every compressed byte comes out at finish */
	pp.spool_sys = &sys;
	writes = 0;
	fail_write_at = 1;
	p = pipe_new(&pp);
	ASSERT_EQ(pipe_write(p, "Subject: hi\r\n\r\nhello\r\n", 22), 0);
	ASSERT_EQ(pipe_finish(p, &r), -1);
	snprintf(want, sizeof(want), "spool write to %s: %s", tmpdir,
	    strerror(ENOSPC));
	ASSERT_STREQ(pipe_error(p), want);
	pipe_free(&p);
}

static void
test_spool_open_fails(void)
{
	const size_t n = 1u << 20;
	char *msg = mailtext(n, 5), want[256];
	struct spool_sys sys = { .open_tmp = f_open_eacces };
	struct pipe_params pp = params(1000, 0, NULL);
	struct pipe_result r;
	struct pipe *p;
	size_t off;
	int rc = 0;

	pp.spool_sys = &sys;
	opens = 0;
	p = pipe_new(&pp);
	for (off = 0; off < n && rc == 0; off += 65536)
		rc = pipe_write(p, msg + off, 65536);
	/* compressible text may all wait in zstd until the frame ends */
	if (rc == 0)
		rc = pipe_finish(p, &r);
	ASSERT_EQ(rc, -1);
	ASSERT_EQ(opens, 1);
	snprintf(want, sizeof(want), "spool create in %s: %s", tmpdir,
	    strerror(EACCES));
	ASSERT_STREQ(pipe_error(p), want);
	pipe_free(&p);
	free(msg);
}

/* A dropped connection: the pipe is freed mid-message. */
static void
test_abort_unfinished(void)
{
	const size_t n = 2u << 20;
	char *msg = mailtext(n, 6);
	struct pipe_params pp = params(4096, n, NULL);
	struct pipe *p;

	p = pipe_new(&pp);
	ASSERT_EQ(pipe_write(p, msg, n), 0);
	pipe_free(&p);
	/* and before any byte */
	p = pipe_new(&pp);
	pipe_free(&p);
	pipe_free(&p);
	free(msg);
}

/* One session's pipes never disturb another's (pooled contexts). */
static void
test_many_pipes_interleaved(void)
{
	enum { N = 12 };
	const size_t n = 300000;
	struct pipe *p[N];
	struct pipe_params pp;
	struct pipe_result r;
	unsigned char sha[32];
	char *msg[N];
	size_t off;
	int i;

	for (i = 0; i < N; i++) {
		msg[i] = mailtext(n, 100 + (uint64_t)i);
		pp = params(i % 3 == 0 ? 0 : 50000, i % 2 ? n : 0, NULL);
		pp.level = 1 + i % 5;
		p[i] = pipe_new(&pp);
	}
	for (off = 0; off < n; off += 10000)
		for (i = 0; i < N; i++)
			ASSERT_EQ(pipe_write(p[i], msg[i] + off, 10000), 0);
	for (i = 0; i < N; i++) {
		ASSERT_EQ(pipe_finish(p[i], &r), 0);
		pipe_free(&p[i]);
		hash_sha256(msg[i], n, sha);
		ASSERT_MEMEQ(r.sha256, sha, 32);
		check_spool(r.spool, NULL, 0, msg[i], n);
		spool_free(&r.spool);
		free(msg[i]);
	}
}

static void
test_dir_left_empty(void)
{
	DIR *d;
	struct dirent *de;
	int n = 0;

	dir_make();
	d = opendir(tmpdir);
	ASSERT_TRUE(d != NULL);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	ASSERT_EQ(n, 0);
	ASSERT_EQ(rmdir(tmpdir), 0);
	zstd_pool_clear();
}

TEST_MAIN(TESTS)
