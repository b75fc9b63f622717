/*
 * pop3/dot: every input is replayed whole, split at every point and fed one
 * byte at a time, and each replay must give the same bytes, the same
 * consumed count and the same end.
 */
#include <stdbool.h>
#include <stdint.h>

#include "pop3/dot.h"
#include "tests/unit/test.h"

#define TESTS(X)                                                         \
	X(test_crlf_body)                                                \
	X(test_bare_lf_body)                                             \
	X(test_mixed_line_endings)                                       \
	X(test_dot_stuffed_lines)                                        \
	X(test_double_dot_line)                                          \
	X(test_dot_mid_line)                                             \
	X(test_dot_cr_not_terminator)                                    \
	X(test_cr_alone_is_no_line_end)                                  \
	X(test_empty_body)                                               \
	X(test_bare_lf_terminator)                                       \
	X(test_last_line_without_newline)                                \
	X(test_stops_after_terminator)                                   \
	X(test_no_terminator_yet)                                        \
	X(test_binary_bytes)                                             \
	X(test_feed_after_end)                                           \
	X(test_matches_reference)

TESTS(TEST_DECLARE)

struct result {
	char *out;
	size_t outlen;
	size_t used;
	bool end;
};

/*
 * Feeds in[0, n) in pieces: cut == SIZE_MAX means one byte at a time,
 * otherwise [0, cut) then [cut, n).  Each call gets an output buffer of
 * exactly its input size + 1, so ASan catches any overrun of the contract.
 */
static void
replay(const char *in, size_t n, size_t cut, struct result *r)
{
	struct pop3_dot d;
	size_t pos = 0, piece, used, outlen;
	char *out;
	bool end = false;

	r->out = malloc(n + 2);
	r->outlen = 0;
	pop3_dot_init(&d);
	while (pos < n && !end) {
		if (cut == SIZE_MAX)
			piece = 1;
		else
			piece = pos < cut ? cut - pos : n - pos;
		out = malloc(piece + 1);
		used = pop3_dot_feed(&d, in + pos, piece, out, &outlen, &end);
		ASSERT_TRUE(outlen <= piece + 1);
		ASSERT_TRUE(used <= piece);
		/* Short of the end, a call consumes all it is given. */
		if (!end)
			ASSERT_EQ(used, piece);
		memcpy(r->out + r->outlen, out, outlen);
		r->outlen += outlen;
		free(out);
		pos += used;
	}
	r->used = pos;
	r->end = end;
}

static void
check(const char *in, size_t n, const char *want, size_t wantlen,
    size_t want_used, bool want_end)
{
	struct result r;
	size_t cut;

	/* cut == n is the whole input at once. */
	for (cut = 0; cut <= n + 1; cut++) {
		replay(in, n, cut == n + 1 ? SIZE_MAX : cut, &r);
		ASSERT_EQ(r.end, want_end);
		ASSERT_EQ(r.used, want_used);
		ASSERT_EQ(r.outlen, wantlen);
		ASSERT_MEMEQ(r.out, want, wantlen);
		free(r.out);
	}
}

#define CHECK(in, want, used, end)                                       \
	check(in, sizeof(in) - 1, want, sizeof(want) - 1, used, end)
/* The whole input is one body, terminator last. */
#define CHECK_ALL(in, want) CHECK(in, want, sizeof(in) - 1, true)

static void
test_crlf_body(void)
{
	CHECK_ALL("Subject: x\r\n\r\nLine 1\r\nLine 2\r\n.\r\n",
	    "Subject: x\r\n\r\nLine 1\r\nLine 2\r\n");
}

static void
test_bare_lf_body(void)
{
	CHECK_ALL("Subject: x\n\nbody\n.\n", "Subject: x\n\nbody\n");
}

static void
test_mixed_line_endings(void)
{
	CHECK_ALL("a\r\nb\nc\r\n.\n", "a\r\nb\nc\r\n");
	CHECK_ALL("a\nb\r\n.\r\n", "a\nb\r\n");
}

static void
test_dot_stuffed_lines(void)
{
	CHECK_ALL("..leading\r\n...\r\n. \r\n.x\r\n.\r\n",
	    ".leading\r\n..\r\n \r\nx\r\n");
	CHECK_ALL("..a\n..\n.\n", ".a\n.\n");
}

static void
test_double_dot_line(void)
{
	/* ".." is a stuffed "." line, not the end. */
	CHECK_ALL("..\r\n.\r\n", ".\r\n");
	CHECK_ALL("a\r\n..\r\nb\r\n.\r\n", "a\r\n.\r\nb\r\n");
}

static void
test_dot_mid_line(void)
{
	CHECK_ALL("a.b\r\nx .\r\nend.\r\n.\r\n", "a.b\r\nx .\r\nend.\r\n");
	CHECK("abc.\r\n", "abc.\r\n", 6, false);
}

static void
test_dot_cr_not_terminator(void)
{
	/* The CR held after a leading dot turns out to be content. */
	CHECK_ALL(".\rX\r\n.\r\n", "\rX\r\n");
	CHECK_ALL(".\r\r\n.\r\n", "\r\r\n");
	CHECK_ALL(".\r.\r\n.\r\n", "\r.\r\n");
}

static void
test_cr_alone_is_no_line_end(void)
{
	/* Only LF ends a line, so this dot is mid-line. */
	CHECK_ALL("a\r.\r\n.\r\n", "a\r.\r\n");
	CHECK("a\r.\r", "a\r.\r", 4, false);
}

static void
test_empty_body(void)
{
	CHECK_ALL(".\r\n", "");
	CHECK_ALL(".\n", "");
}

static void
test_bare_lf_terminator(void)
{
	CHECK_ALL("x\r\n.\n", "x\r\n");
}

static void
test_last_line_without_newline(void)
{
	/* The line ending before the terminator belongs to the body... */
	CHECK_ALL("abc\r\n.\r\n", "abc\r\n");
	/* ...and "abc.\r\n" is a line, not "abc" and a terminator. */
	CHECK_ALL("abc.\r\n.\r\n", "abc.\r\n");
	CHECK_ALL("abc\n.\n", "abc\n");
}

static void
test_stops_after_terminator(void)
{
	CHECK("abc\r\n.\r\n+OK next\r\n", "abc\r\n", 8, true);
	CHECK(".\r\n.\r\n", "", 3, true);
	CHECK(".\nX", "", 2, true);
}

static void
test_no_terminator_yet(void)
{
	CHECK("abc\r\n", "abc\r\n", 5, false);
	CHECK("abc\r\n.", "abc\r\n", 6, false);
	CHECK("abc\r\n.\r", "abc\r\n", 7, false);
	CHECK("", "", 0, false);
}

static void
test_binary_bytes(void)
{
	static const char in[] = "\0\xff\x01\r\n.\0\r\n\x80.\r\n.\r\n";
	static const char want[] = "\0\xff\x01\r\n\0\r\n\x80.\r\n";

	check(in, sizeof(in) - 1, want, sizeof(want) - 1, sizeof(in) - 1,
	    true);
}

static void
test_feed_after_end(void)
{
	struct pop3_dot d;
	char out[16];
	size_t outlen;
	bool end;

	pop3_dot_init(&d);
	ASSERT_EQ(pop3_dot_feed(&d, ".\r\nabc", 6, out, &outlen, &end), 3);
	ASSERT_TRUE(end);
	ASSERT_EQ(pop3_dot_feed(&d, "abc", 3, out, &outlen, &end), 0);
	ASSERT_TRUE(end);
	ASSERT_EQ(outlen, 0);
	pop3_dot_init(&d);
	ASSERT_EQ(pop3_dot_feed(&d, "abc\n.\n", 6, out, &outlen, &end), 6);
	ASSERT_TRUE(end);
	ASSERT_EQ(outlen, 4);
}

/*
 * The obvious line-at-a-time unstuffer: what pop3_dot must agree with on
 * any input.  Returns the bytes consumed; *end_r whether it ended.
 */
static size_t
reference(const char *in, size_t n, char *out, size_t *outlen_r, bool *end_r)
{
	size_t pos = 0, o = 0, len;
	const char *lf;

	*end_r = false;
	while (pos < n) {
		lf = memchr(in + pos, '\n', n - pos);
		len = lf != NULL ? (size_t)(lf - (in + pos)) + 1 : n - pos;
		if (lf != NULL && in[pos] == '.' &&
		    (len == 2 || (len == 3 && in[pos + 1] == '\r'))) {
			*end_r = true;
			pos += len;
			break;
		}
		if (lf == NULL && in[pos] == '.' &&
		    (len == 1 || (len == 2 && in[pos + 1] == '\r'))) {
			/* Maybe a terminator: nothing is out yet. */
			pos += len;
			break;
		}
		if (in[pos] == '.') {
			memcpy(out + o, in + pos + 1, len - 1);
			o += len - 1;
		} else {
			memcpy(out + o, in + pos, len);
			o += len;
		}
		pos += len;
	}
	*outlen_r = o;
	return pos;
}

static void
test_matches_reference(void)
{
	static const char alphabet[] = { '.', '.', '\r', '\n', '\n', 'a',
		'\0', '\x80' };
	char in[64], want[64];
	size_t round, n, i, wantlen, used;
	uint32_t seed = 12345;
	bool end;

	for (round = 0; round < 3000; round++) {
		n = round % (sizeof(in) - 4);
		for (i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			in[i] = alphabet[(seed >> 16) % sizeof(alphabet)];
		}
		/* Half the inputs get a terminator at the end. */
		if (round % 2 == 0) {
			memcpy(in + n, "\n.\r\n", 4);
			n += 4;
		}
		used = reference(in, n, want, &wantlen, &end);
		/* An unfinished ".\r" or "." has not been output yet. */
		check(in, n, want, wantlen, end ? used : n, end);
	}
}

TEST_MAIN(TESTS)
