#include "store/mime/utf8.h"

#include <stdint.h>
#include <string.h>

int
mime_utf8_seq(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t len, i;
	unsigned char lo = 0x80, hi = 0xBF;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		len = 2;
	else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		if (c == 0xE0)
			lo = 0xA0; /* overlong */
		else if (c == 0xED)
			hi = 0x9F; /* surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		if (c == 0xF0)
			lo = 0x90;
		else if (c == 0xF4)
			hi = 0x8F; /* past U+10FFFF */
	} else
		return 0;
	for (i = 1; i < len; i++) {
		if (i >= n)
			return -1;
		if (p[i] < (i == 1 ? lo : 0x80) || p[i] > (i == 1 ? hi : 0xBF))
			return 0;
	}
	return (int)len;
}

/*
 * How many bytes at p, in whole groups of eight, are ASCII other than NUL:
 * the common case of mail text, skipped without a look at each byte.
 */
static size_t
ascii_span(const unsigned char *p, size_t n)
{
	size_t i = 0;
	uint64_t x;

	while (n - i >= 8) {
		memcpy(&x, p + i, 8);
		/* A byte of 0 or of 0x80 and above sets its high bit here. */
		if (((x - 0x0101010101010101ULL) | x) & 0x8080808080808080ULL)
			break;
		i += 8;
	}
	return i;
}

/*
 * How many bytes at p[0, n) are valid UTF-8 other than NUL, in whole
 * sequences; *len_r is then what mime_utf8_seq() said of the byte that
 * stopped the scan (0: NUL or invalid, -1: a sequence cut by the end),
 * when there is one.
 */
static size_t
valid_span(const unsigned char *p, size_t n, int *len_r)
{
	size_t i = 0;
	int len;

	*len_r = 0;
	while (i < n) {
		/* ASCII without NUL, eight bytes at a time. */
		i += ascii_span(p + i, n - i);
		if (i >= n)
			break;
		if (p[i] != 0 && p[i] < 0x80) {
			i++;
			continue;
		}
		len = p[i] == 0 ? 0 : mime_utf8_seq(p + i, n - i);
		if (len <= 0) {
			*len_r = len;
			break;
		}
		i += (size_t)len;
	}
	return i;
}

bool
mime_utf8_sanitize(const void *vp, size_t n, struct mime_strbuf *out)
{
	const unsigned char *p = vp;
	size_t i = 0, k;
	bool bad = false;
	int len;

	if (n == 0)
		return false; /* p may be NULL */
	while (i < n) {
		k = valid_span(p + i, n - i, &len);
		mime_strbuf_add(out, p + i, k);
		i += k;
		if (i >= n)
			break;
		mime_strbuf_adds(out, UTF8_REPLACEMENT);
		bad = true;
		i++;
	}
	return bad;
}

bool
mime_utf8_has_8bit(const void *vp, size_t n)
{
	const unsigned char *p = vp;
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i] >= 0x80)
			return true;
	return false;
}

void
mime_utf8_stream_init(struct mime_utf8_stream *st)
{
	memset(st, 0, sizeof(*st));
}

/*
 * Passes the longest prefix of p[0, n) that holds whole sequences, and
 * returns its length; an unfinished sequence at the end stays unless last.
 */
static size_t
run_whole(struct mime_utf8_stream *st, const unsigned char *p, size_t n,
    bool last, mime_sink_fn *sink, void *ctx)
{
	size_t i = 0, k;
	int len;

	while (i < n) {
		k = valid_span(p + i, n - i, &len);
		if (k > 0)
			sink(ctx, (const char *)p + i, k);
		i += k;
		if (i >= n || (len == -1 && !last))
			break;
		if (p[i] == 0)
			sink(ctx, " ", 1);
		else {
			sink(ctx, UTF8_REPLACEMENT, 3);
			st->bad = true;
		}
		i++;
	}
	return i;
}

void
mime_utf8_stream_feed(struct mime_utf8_stream *st, const void *vp, size_t n,
    mime_sink_fn *sink, void *ctx)
{
	const unsigned char *p = vp;
	unsigned char tmp[8];
	size_t take, used;

	/*
	 * Finish the held sequence with just enough new bytes, as if the
	 * input had been contiguous.
	 */
	while (st->ncarry > 0 && n > 0) {
		take = n < 4 ? n : 4;
		memcpy(tmp, st->carry, st->ncarry);
		memcpy(tmp + st->ncarry, p, take);
		used = run_whole(st, tmp, st->ncarry + take, false, sink, ctx);
		if (used <= st->ncarry) {
			/* Still unfinished: hold everything. */
			memmove(tmp, tmp + used, st->ncarry + take - used);
			st->ncarry = st->ncarry + take - used;
			memcpy(st->carry, tmp, st->ncarry);
			p += take;
			n -= take;
			continue;
		}
		p += used - st->ncarry;
		n -= used - st->ncarry;
		st->ncarry = 0;
	}
	used = run_whole(st, p, n, false, sink, ctx);
	memcpy(st->carry + st->ncarry, p + used, n - used);
	st->ncarry += n - used;
}

void
mime_utf8_stream_finish(struct mime_utf8_stream *st, mime_sink_fn *sink,
    void *ctx)
{
	unsigned char tmp[4];
	size_t n = st->ncarry;

	memcpy(tmp, st->carry, n);
	st->ncarry = 0;
	run_whole(st, tmp, n, true, sink, ctx);
}

void
mime_utf8_trim(struct mime_strbuf *sb)
{
	size_t k = sb->len, back = 0;
	int len;

	if (sb->p == NULL)
		return;
	while (
	    k > 0 && back < 4 && ((unsigned char)sb->p[k - 1] & 0xC0) == 0x80) {
		k--;
		back++;
	}
	if (k == 0)
		return;
	if ((unsigned char)sb->p[k - 1] < 0x80)
		return;
	len = mime_utf8_seq((unsigned char *)sb->p + k - 1, sb->len - k + 1);
	if (len == (int)(sb->len - k + 1))
		return;
	sb->len = k - 1;
	sb->p[sb->len] = '\0';
}
