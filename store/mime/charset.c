#include "store/mime/charset.h"

#include <errno.h>
#include <iconv.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ingestd/base/xmalloc.h"
#include "store/mime/meta.h"

#define CARRY_MAX 16

struct mime_charset {
	bool utf8; /* taken as UTF-8, no iconv */
	iconv_t cd;
	uint32_t flags;
	struct mime_utf8_stream u;
	char carry[CARRY_MAX]; /* an unfinished sequence for iconv */
	size_t ncarry;
};

/*
 * Names as mail writes them, and what iconv should use: the supersets
 * mail clients really mean (browsers read latin1 as windows-1252 and
 * gb2312 as GBK, for the same reason).
 */
static const struct {
	const char *name;
	const char *iconv; /* NULL: UTF-8 */
} aliases[] = {
	{ "us-ascii", NULL },
	{ "ascii", NULL },
	{ "ansi_x3.4-1968", NULL },
	{ "iso646-us", NULL },
	{ "utf-8", NULL },
	{ "utf8", NULL },
	{ "unicode-1-1-utf-8", NULL },
	{ "latin1", "WINDOWS-1252" },
	{ "latin-1", "WINDOWS-1252" },
	{ "l1", "WINDOWS-1252" },
	{ "iso-8859-1", "WINDOWS-1252" },
	{ "iso8859-1", "WINDOWS-1252" },
	{ "iso_8859-1", "WINDOWS-1252" },
	{ "cp819", "WINDOWS-1252" },
	{ "iso-8859-15", "ISO-8859-15" },
	{ "latin9", "ISO-8859-15" },
	{ "gb2312", "GB18030" },
	{ "gbk", "GB18030" },
	{ "x-gbk", "GB18030" },
	{ "euc-cn", "GB18030" },
	{ "cp936", "GB18030" },
	{ "ks_c_5601-1987", "CP949" },
	{ "ks_c_5601", "CP949" },
	{ "euc-kr", "CP949" },
	{ "shift_jis", "CP932" },
	{ "shift-jis", "CP932" },
	{ "x-sjis", "CP932" },
	{ "sjis", "CP932" },
	{ "ms_kanji", "CP932" },
	{ "windows-31j", "CP932" },
	{ "iso-2022-jp", "ISO-2022-JP-2" },
	{ "unicode-1-1-utf-7", "UTF-7" },
	{ "utf-7", "UTF-7" },
	{ "x-mac-roman", "MACINTOSH" },
	{ "macintosh", "MACINTOSH" },
};

/* Lower-cases a charset name into out; false if it is no sane name. */
static bool
normalize(const char *name, char *out, size_t outlen)
{
	size_t i, n = 0;
	char c;

	for (i = 0; name[i] != '\0'; i++) {
		c = name[i];
		if (c == '"' || c == ' ' || c == '\t')
			continue;
		if (c >= 'A' && c <= 'Z')
			c = (char)(c - 'A' + 'a');
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
			strchr("-_.:+()", c) != NULL))
			return false;
		if (n + 1 >= outlen)
			return false;
		out[n++] = c;
	}
	out[n] = '\0';
	return n > 0;
}

struct mime_charset *
mime_charset_new(const char *name)
{
	struct mime_charset *cs = xcalloc(1, sizeof(*cs));
	const char *to = NULL;
	char norm[48];
	size_t i;

	mime_utf8_stream_init(&cs->u);
	cs->utf8 = true;
	cs->cd = (iconv_t)-1;
	if (name == NULL || *name == '\0')
		return cs;
	if (!normalize(name, norm, sizeof(norm))) {
		cs->flags |= MIME_F_UNKNOWN_CHARSET;
		return cs;
	}
	for (i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++) {
		if (strcmp(norm, aliases[i].name) == 0) {
			if (aliases[i].iconv == NULL)
				return cs;
			to = aliases[i].iconv;
			break;
		}
	}
	cs->cd = iconv_open("UTF-8", to != NULL ? to : norm);
	if (cs->cd == (iconv_t)-1)
		cs->flags |= MIME_F_UNKNOWN_CHARSET;
	else
		cs->utf8 = false;
	return cs;
}

/*
 * Converts in[0, n), passing output on; returns how many bytes of in were
 * taken (the rest is an unfinished sequence, unless last).
 */
static size_t
convert(struct mime_charset *cs, const char *in, size_t n, bool last,
    mime_sink_fn *sink, void *ctx)
{
	char out[4096], *ip = (char *)in, *op;
	size_t il = n, ol, r;

	while (il > 0) {
		op = out;
		ol = sizeof(out);
		r = iconv(cs->cd, &ip, &il, &op, &ol);
		if (op > out)
			sink(ctx, out, (size_t)(op - out));
		if (r != (size_t)-1)
			break;
		if (errno == E2BIG)
			continue;
		if (errno == EINVAL && !last && il < CARRY_MAX)
			break;
		/* EILSEQ, or unfinished at the end: one byte is lost. */
		sink(ctx, UTF8_REPLACEMENT, 3);
		cs->flags |= MIME_F_BAD_CHARSET;
		ip++;
		il--;
	}
	return n - il;
}

void
mime_charset_feed(struct mime_charset *cs, const void *vp, size_t n,
    mime_sink_fn *sink, void *ctx)
{
	const char *p = vp;
	char tmp[CARRY_MAX * 2];
	size_t take, used, left;

	if (cs->utf8) {
		mime_utf8_stream_feed(&cs->u, p, n, sink, ctx);
		return;
	}
	while (cs->ncarry > 0 && n > 0) {
		take = n < CARRY_MAX ? n : CARRY_MAX;
		memcpy(tmp, cs->carry, cs->ncarry);
		memcpy(tmp + cs->ncarry, p, take);
		used = convert(cs, tmp, cs->ncarry + take, false, sink, ctx);
		if (used < cs->ncarry) {
			/* Still unfinished: keep what is left, if it fits. */
			left = cs->ncarry + take - used;
			if (left > CARRY_MAX) {
				/* Cannot happen with real charsets. */
				sink(ctx, UTF8_REPLACEMENT, 3);
				cs->flags |= MIME_F_BAD_CHARSET;
				used++;
				left--;
				if (left > CARRY_MAX) {
					left = CARRY_MAX;
					used = cs->ncarry + take - left;
				}
			}
			memmove(cs->carry, tmp + used, left);
			cs->ncarry = left;
			p += take;
			n -= take;
			continue;
		}
		p += used - cs->ncarry;
		n -= used - cs->ncarry;
		cs->ncarry = 0;
	}
	used = convert(cs, p, n, false, sink, ctx);
	memcpy(cs->carry + cs->ncarry, p + used, n - used);
	cs->ncarry += n - used;
}

void
mime_charset_finish(struct mime_charset *cs, mime_sink_fn *sink, void *ctx)
{
	char tmp[CARRY_MAX], out[64], *op = out;
	size_t ol = sizeof(out), n = cs->ncarry;

	if (cs->utf8) {
		mime_utf8_stream_finish(&cs->u, sink, ctx);
		if (cs->u.bad)
			cs->flags |= MIME_F_BAD_CHARSET;
		return;
	}
	memcpy(tmp, cs->carry, n);
	cs->ncarry = 0;
	convert(cs, tmp, n, true, sink, ctx);
	/* A stateful charset's return to its initial shift state. */
	if (iconv(cs->cd, NULL, NULL, &op, &ol) != (size_t)-1 && op > out)
		sink(ctx, out, (size_t)(op - out));
}

uint32_t
mime_charset_flags(const struct mime_charset *cs)
{
	return cs->flags | (cs->u.bad ? MIME_F_BAD_CHARSET : 0);
}

void
mime_charset_free(struct mime_charset **csp)
{
	struct mime_charset *cs = *csp;

	if (cs == NULL)
		return;
	if (cs->cd != (iconv_t)-1)
		iconv_close(cs->cd);
	free(cs);
	*csp = NULL;
}

static void
add_sink(void *ctx, const char *p, size_t n)
{
	mime_strbuf_add(ctx, p, n);
}

uint32_t
mime_charset_convert(const char *name, const void *p, size_t n,
    struct mime_strbuf *out)
{
	struct mime_charset *cs = mime_charset_new(name);
	uint32_t flags;

	mime_charset_feed(cs, p, n, add_sink, out);
	mime_charset_finish(cs, add_sink, out);
	flags = mime_charset_flags(cs);
	mime_charset_free(&cs);
	return flags;
}
