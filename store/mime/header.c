#include "store/mime/header.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ingestd/base/xmalloc.h"
#include "store/mime/charset.h"
#include "store/mime/decode.h"
#include "store/mime/meta.h"
#include "store/mime/utf8.h"

#define CHARSET_MAX 64
#define SECTIONS_MAX 64
#define PARAM_MAX (16 * 1024) /* bytes of one parameter kept */

static bool
is_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

void
mime_unfold(const char *p, size_t n, struct mime_strbuf *out)
{
	size_t i;

	while (n > 0 && is_wsp(*p)) {
		p++;
		n--;
	}
	while (n > 0 && is_wsp(p[n - 1]))
		n--;
	for (i = 0; i < n; i++)
		if (p[i] != '\r' && p[i] != '\n')
			mime_strbuf_addc(out, p[i]);
}

/*
 * An encoded word "=?charset?e?text?=" at p[0, n): its parts and length,
 * or 0 if there is none.
 */
static size_t
encoded_word(const char *p, size_t n, char *cs, char *enc, const char **text_r,
    size_t *textlen_r)
{
	size_t i = 2, c0, t0, cl;

	if (n < 8 || p[0] != '=' || p[1] != '?')
		return 0;
	c0 = i;
	while (i < n && p[i] != '?' && !is_wsp(p[i]) && i - c0 < CHARSET_MAX)
		i++;
	if (i >= n || p[i] != '?' || i == c0)
		return 0;
	cl = i - c0;
	i++;
	if (i + 1 >= n || p[i] == '\0' || strchr("BbQq", p[i]) == NULL ||
	    p[i + 1] != '?')
		return 0;
	*enc = (char)(p[i] | 0x20);
	i += 2;
	t0 = i;
	while (i < n && p[i] != '?' && !is_wsp(p[i]))
		i++;
	if (i + 1 >= n || p[i] != '?' || p[i + 1] != '=')
		return 0;
	memcpy(cs, p + c0, cl);
	cs[cl] = '\0';
	/* RFC 2231 section 5: charset*language. */
	if (strchr(cs, '*') != NULL)
		*strchr(cs, '*') = '\0';
	*text_r = p + t0;
	*textlen_r = i - t0;
	return i + 2;
}

static bool
all_wsp(const char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!is_wsp(p[i]))
			return false;
	return true;
}

static uint32_t
flush_raw(struct mime_strbuf *raw, const char *cs, struct mime_strbuf *out)
{
	uint32_t flags = 0;
	struct mime_strbuf conv;

	if (raw->len == 0)
		return 0;
	mime_strbuf_init(&conv, out->max);
	flags = mime_charset_convert(cs, raw->p, raw->len, &conv);
	if (mime_utf8_sanitize(conv.p, conv.len, out))
		flags |= MIME_F_BAD_CHARSET;
	mime_strbuf_release(&conv);
	mime_strbuf_reset(raw);
	return flags;
}

uint32_t
mime_2047_decode(const char *p, size_t n, struct mime_strbuf *out)
{
	struct mime_strbuf raw;
	char cs[CHARSET_MAX + 1], pcs[CHARSET_MAX + 1] = "", enc;
	const char *text;
	size_t i = 0, lit = 0, len, tl;
	bool after_word = false;
	uint32_t flags = 0;

	mime_strbuf_init(&raw, out->max);
	while (i < n) {
		if (p[i] != '=' || i + 1 >= n || p[i + 1] != '?' ||
		    (len = encoded_word(p + i, n - i, cs, &enc, &text, &tl)) ==
			0) {
			i++;
			continue;
		}
		if (!after_word || !all_wsp(p + lit, i - lit)) {
			flags |= flush_raw(&raw, pcs, out);
			mime_utf8_sanitize(p + lit, i - lit, out);
		}
		if (raw.len > 0 && strcasecmp(cs, pcs) != 0)
			flags |= flush_raw(&raw, pcs, out);
		memcpy(pcs, cs, sizeof(cs));
		if (enc == 'b' ? mime_decode_b(text, tl, &raw) :
				 mime_decode_q(text, tl, &raw))
			flags |= MIME_F_BAD_ENCODING;
		i += len;
		lit = i;
		after_word = true;
	}
	flags |= flush_raw(&raw, pcs, out);
	mime_utf8_sanitize(p + lit, n - lit, out);
	mime_strbuf_release(&raw);
	return flags;
}

size_t
mime_encoded_word_len(const char *p, size_t n)
{
	char cs[CHARSET_MAX + 1], enc;
	const char *text;
	size_t tl;

	return encoded_word(p, n, cs, &enc, &text, &tl);
}

char *
mime_decoded_string(const char *p, size_t n, uint32_t *flags)
{
	struct mime_strbuf u, d;
	char *s;

	mime_strbuf_init(&u, n + 1);
	mime_unfold(p, n, &u);
	mime_strbuf_init(&d, 4 * n + 16);
	*flags |= mime_2047_decode(u.p != NULL ? u.p : "", u.len, &d);
	mime_strbuf_release(&u);
	mime_utf8_trim(&d);
	if (d.len == 0) {
		mime_strbuf_release(&d);
		return NULL;
	}
	s = mime_strbuf_take(&d);
	return s;
}

void
mime_skip_comment(const char *p, size_t n, size_t *ip)
{
	size_t i = *ip + 1;
	int depth = 1;

	while (i < n && depth > 0) {
		if (p[i] == '\\' && i + 1 < n)
			i++;
		else if (p[i] == '(')
			depth++;
		else if (p[i] == ')')
			depth--;
		i++;
	}
	*ip = i;
}

static void
skip_cfws(const char *p, size_t n, size_t *i)
{
	while (*i < n) {
		if (is_wsp(p[*i]))
			(*i)++;
		else if (p[*i] == '(')
			mime_skip_comment(p, n, i);
		else
			break;
	}
}

static bool
is_tchar(unsigned char c)
{
	return c > 32 && c != 127 && strchr("()<>@,;:\\\"/[]?=", c) == NULL;
}

/* A token at p[*i]: its length (0 if none), *i moved past it. */
static size_t
token(const char *p, size_t n, size_t *i)
{
	size_t s = *i;

	while (*i < n && is_tchar((unsigned char)p[*i]))
		(*i)++;
	return *i - s;
}

static void
lower(char *s)
{
	for (; *s != '\0'; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* A parameter value at p[*i]: quoted string or (leniently) up to ';'. */
static void
param_value(const char *p, size_t n, size_t *i, struct mime_strbuf *out)
{
	size_t s, e, k;

	if (*i < n && p[*i] == '"') {
		(*i)++;
		while (*i < n && p[*i] != '"') {
			if (p[*i] == '\\' && *i + 1 < n)
				(*i)++;
			if (p[*i] != '\r' && p[*i] != '\n')
				mime_strbuf_addc(out, p[*i]);
			(*i)++;
		}
		if (*i < n)
			(*i)++;
		return;
	}
	/* Unquoted: a token, or what misbehaving clients write up to ';'. */
	s = *i;
	while (*i < n && p[*i] != ';')
		(*i)++;
	e = *i;
	/* A comment after the value: "us-ascii (Plain text)". */
	for (k = s + 1; k < e; k++)
		if (p[k] == '(' && is_wsp(p[k - 1])) {
			e = k;
			break;
		}
	while (e > s && is_wsp(p[e - 1]))
		e--;
	for (; s < e; s++)
		if (p[s] != '\r' && p[s] != '\n')
			mime_strbuf_addc(out, p[s]);
}

enum {
	P_BOUNDARY,
	P_CHARSET,
	P_NAME,
	P_FILENAME,
	P_COUNT
};
static const char *const param_names[P_COUNT] = {
	"boundary",
	"charset",
	"name",
	"filename",
};

struct param {
	char *plain;		  /* name="..." */
	char *sect[SECTIONS_MAX]; /* RFC 2231 name*N[*] */
	bool enc[SECTIONS_MAX];
	size_t nsect; /* one past the highest section set */
	bool any;
};

static int
pct(const char *s, size_t n, struct mime_strbuf *out)
{
	size_t i;
	int hi, lo, bad = 0;

	for (i = 0; i < n; i++) {
		if (s[i] == '%' && i + 2 < n &&
		    (hi = mime_hexval((unsigned char)s[i + 1])) >= 0 &&
		    (lo = mime_hexval((unsigned char)s[i + 2])) >= 0) {
			mime_strbuf_addc(out, (char)(hi << 4 | lo));
			i += 2;
		} else {
			if (s[i] == '%')
				bad = 1;
			mime_strbuf_addc(out, s[i]);
		}
	}
	return bad;
}

/* The decoded value of an RFC 2231 parameter, or NULL. */
static char *
assemble(struct param *pa, uint32_t *flags)
{
	struct mime_strbuf raw, conv;
	char cs[CHARSET_MAX + 1] = "";
	const char *v, *q1, *q2;
	size_t k;
	char *s;

	mime_strbuf_init(&raw, PARAM_MAX);
	for (k = 0; k < SECTIONS_MAX && pa->sect[k] != NULL; k++) {
		v = pa->sect[k];
		if (k == 0 && pa->enc[0] && (q1 = strchr(v, '\'')) != NULL &&
		    (q2 = strchr(q1 + 1, '\'')) != NULL) {
			if ((size_t)(q1 - v) <= CHARSET_MAX) {
				memcpy(cs, v, (size_t)(q1 - v));
				cs[q1 - v] = '\0';
			}
			v = q2 + 1;
		}
		if (pa->enc[k]) {
			if (pct(v, strlen(v), &raw))
				*flags |= MIME_F_BAD_ENCODING;
		} else
			mime_strbuf_adds(&raw, v);
	}
	mime_strbuf_init(&conv, PARAM_MAX * 4);
	if (cs[0] != '\0')
		*flags |= mime_charset_convert(cs, raw.p ? raw.p : "", raw.len,
		    &conv);
	else
		mime_strbuf_add(&conv, raw.p ? raw.p : "", raw.len);
	mime_strbuf_release(&raw);
	s = mime_decoded_string(conv.p ? conv.p : "", conv.len, flags);
	mime_strbuf_release(&conv);
	return s;
}

uint32_t
mime_params_parse(const char *p, size_t n, bool ctype, struct mime_params *out)
{
	struct param pa[P_COUNT];
	struct mime_strbuf val;
	uint32_t flags = 0;
	size_t i = 0, t0, tl, k, s0, sl;
	char attr[80], *star, *end;
	long sect;
	bool enc;
	int which;

	memset(out, 0, sizeof(*out));
	memset(pa, 0, sizeof(pa));
	skip_cfws(p, n, &i);
	t0 = i;
	if ((tl = token(p, n, &i)) > 0) {
		if (ctype) {
			skip_cfws(p, n, &i);
			if (i < n && p[i] == '/') {
				i++;
				skip_cfws(p, n, &i);
				s0 = i;
				if ((sl = token(p, n, &i)) > 0 && tl + sl < 120)
					out->value = xasprintf("%.*s/%.*s",
					    (int)tl, p + t0, (int)sl, p + s0);
			}
		} else if (tl < 120)
			out->value = xstrndup(p + t0, tl);
		if (out->value != NULL)
			lower(out->value);
	}
	/* The parameters: from each ';' on. */
	while (i < n) {
		if (p[i] != ';') {
			i++;
			continue;
		}
		i++;
		skip_cfws(p, n, &i);
		t0 = i;
		tl = 0;
		while (i < n && p[i] != '=' && p[i] != ';' && !is_wsp(p[i]))
			i++, tl++;
		skip_cfws(p, n, &i);
		if (i >= n || p[i] != '=' || tl == 0 || tl >= sizeof(attr))
			continue;
		i++;
		skip_cfws(p, n, &i);
		memcpy(attr, p + t0, tl);
		attr[tl] = '\0';
		lower(attr);
		sect = -1;
		enc = false;
		if ((star = strchr(attr, '*')) != NULL) {
			*star++ = '\0';
			if (*star == '\0') {
				sect = 0;
				enc = true;
			} else {
				sect = strtol(star, &end, 10);
				if (end == star || sect < 0 ||
				    sect >= SECTIONS_MAX)
					continue;
				enc = *end == '*';
			}
		}
		for (which = 0; which < P_COUNT; which++)
			if (strcmp(attr, param_names[which]) == 0)
				break;
		mime_strbuf_init(&val, PARAM_MAX);
		param_value(p, n, &i, &val);
		if (which == P_COUNT) {
			mime_strbuf_release(&val);
			continue;
		}
		if (sect < 0) {
			if (pa[which].plain == NULL)
				pa[which].plain = mime_strbuf_take(&val);
		} else if (pa[which].sect[sect] == NULL) {
			pa[which].sect[sect] = mime_strbuf_take(&val);
			pa[which].enc[sect] = enc;
			pa[which].any = true;
			if ((size_t)sect + 1 > pa[which].nsect)
				pa[which].nsect = (size_t)sect + 1;
		}
		mime_strbuf_release(&val);
	}
	for (which = 0; which < P_COUNT; which++) {
		char *v = NULL;

		if (which == P_BOUNDARY || which == P_CHARSET) {
			/* Taken as written. */
			v = pa[which].plain;
			pa[which].plain = NULL;
			if (v == NULL && pa[which].sect[0] != NULL) {
				v = pa[which].sect[0];
				pa[which].sect[0] = NULL;
			}
			if (v != NULL && *v == '\0') {
				free(v);
				v = NULL;
			}
		} else if (pa[which].any && pa[which].sect[0] != NULL)
			v = assemble(&pa[which], &flags);
		else if (pa[which].plain != NULL)
			v = mime_decoded_string(pa[which].plain,
			    strlen(pa[which].plain), &flags);
		switch (which) {
		case P_BOUNDARY:
			out->boundary = v;
			break;
		case P_CHARSET:
			out->charset = v;
			break;
		case P_NAME:
			out->name = v;
			break;
		default:
			out->filename = v;
			break;
		}
		free(pa[which].plain);
		for (k = 0; k < pa[which].nsect; k++)
			free(pa[which].sect[k]);
	}
	return flags;
}

void
mime_params_release(struct mime_params *mp)
{
	free(mp->value);
	free(mp->boundary);
	free(mp->charset);
	free(mp->name);
	free(mp->filename);
	memset(mp, 0, sizeof(*mp));
}

char *
mime_angle_id(const char *p, size_t n, bool last)
{
	struct mime_strbuf sb;
	size_t i = 0, lt = n, gt, k;
	bool found = false;

	for (i = 0; i < n; i++) {
		if (p[i] == '"') {
			for (i++; i < n && p[i] != '"'; i++)
				if (p[i] == '\\')
					i++;
		} else if (p[i] == '(') {
			mime_skip_comment(p, n, &i);
			i--;
		} else if (p[i] == '<') {
			lt = i;
			found = true;
			if (!last)
				break;
		}
	}
	mime_strbuf_init(&sb, n + 16);
	if (found) {
		for (gt = lt + 1; gt < n && p[gt] != '>'; gt++)
			;
		for (k = lt + 1; k < gt; k++)
			if (!is_wsp(p[k]))
				mime_strbuf_addc(&sb, p[k]);
	} else {
		/* No brackets: the first word, comments aside. */
		i = 0;
		skip_cfws(p, n, &i);
		while (i < n && !is_wsp(p[i]) && p[i] != '(')
			mime_strbuf_addc(&sb, p[i++]);
	}
	if (sb.len == 0) {
		mime_strbuf_release(&sb);
		return NULL;
	}
	{
		struct mime_strbuf clean;

		mime_strbuf_init(&clean, 3 * sb.len + 1);
		mime_utf8_sanitize(sb.p, sb.len, &clean);
		mime_strbuf_release(&sb);
		return mime_strbuf_take(&clean);
	}
}
