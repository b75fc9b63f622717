/*
 * A recursive-descent JSON reader with a depth bound: every value is
 * checked, only the members of struct oauth_json at the top level are
 * decoded and kept.
 */
#include "ingestd/oauth_json.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingestd/base/xmalloc.h"

struct rd {
	const char *p;
	size_t n, i;
	char *err;
	size_t errlen;
	bool failed;
};

static int
bad(struct rd *d, const char *what)
{
	if (!d->failed)
		snprintf(d->err, d->errlen, "%s at byte %zu", what, d->i);
	d->failed = true;
	return -1;
}

static void
ws(struct rd *d)
{
	while (d->i < d->n && (d->p[d->i] == ' ' || d->p[d->i] == '\t' ||
	    d->p[d->i] == '\n' || d->p[d->i] == '\r'))
		d->i++;
}

static int
hex4(struct rd *d, unsigned *v)
{
	unsigned k, c;

	if (d->n - d->i < 4)
		return bad(d, "short \\u escape");
	*v = 0;
	for (k = 0; k < 4; k++) {
		c = (unsigned char)d->p[d->i++];
		if (c >= '0' && c <= '9')
			c -= '0';
		else if (c >= 'a' && c <= 'f')
			c -= 'a' - 10;
		else if (c >= 'A' && c <= 'F')
			c -= 'A' - 10;
		else
			return bad(d, "bad \\u escape");
		*v = *v << 4 | c;
	}
	return 0;
}

static size_t
utf8(unsigned cp, char *o)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * A string at d->i (its opening quote).  With out, its decoded bytes go
 * to a new NUL-terminated string (a NUL escape is refused: the values are
 * C strings).  Decoding never grows: the output fits the input's length.
 */
static int
string(struct rd *d, char **out)
{
	size_t start, o = 0;
	unsigned cp, lo;
	char *s = NULL;
	unsigned char c;

	if (d->i >= d->n || d->p[d->i] != '"')
		return bad(d, "expected a string");
	start = ++d->i;
	if (out != NULL)
		s = xmalloc(d->n - start + 1);
	while (d->i < d->n) {
		c = (unsigned char)d->p[d->i++];
		if (c == '"') {
			if (out != NULL) {
				s[o] = '\0';
				*out = s;
			}
			return 0;
		}
		if (c < 0x20) {
			d->i--;
			break;
		}
		if (c != '\\') {
			if (s != NULL)
				s[o++] = (char)c;
			continue;
		}
		if (d->i >= d->n)
			break;
		c = (unsigned char)d->p[d->i++];
		switch (c) {
		case '"': case '\\': case '/':
			break;
		case 'b': c = '\b'; break;
		case 'f': c = '\f'; break;
		case 'n': c = '\n'; break;
		case 'r': c = '\r'; break;
		case 't': c = '\t'; break;
		case 'u':
			if (hex4(d, &cp) == -1)
				goto fail;
			if (cp >= 0xd800 && cp < 0xdc00) {
				if (d->n - d->i < 2 || d->p[d->i] != '\\' ||
				    d->p[d->i + 1] != 'u') {
					bad(d, "lone surrogate");
					goto fail;
				}
				d->i += 2;
				if (hex4(d, &lo) == -1)
					goto fail;
				if (lo < 0xdc00 || lo >= 0xe000) {
					bad(d, "bad surrogate pair");
					goto fail;
				}
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				    (lo - 0xdc00);
			} else if (cp >= 0xdc00 && cp < 0xe000) {
				bad(d, "lone surrogate");
				goto fail;
			}
			if (cp == 0) {
				bad(d, "NUL in a string");
				goto fail;
			}
			/* 6 or 12 input bytes, at most 4 out. */
			if (s != NULL)
				o += utf8(cp, s + o);
			continue;
		default:
			d->i--;
			bad(d, "bad escape");
			goto fail;
		}
		if (s != NULL)
			s[o++] = (char)c;
	}
	bad(d, d->i >= d->n ? "unterminated string" :
	    "control character in a string");
fail:
	if (s != NULL) {
		explicit_bzero(s, d->n - start + 1);
		free(s);
	}
	return -1;
}

/* A number; its integer value in *v when it is one that fits, else -1. */
static int
number(struct rd *d, long long *v)
{
	size_t start = d->i;
	bool integer = true;
	long long x = 0;

	if (d->i < d->n && d->p[d->i] == '-')
		d->i++;
	if (d->i >= d->n || d->p[d->i] < '0' || d->p[d->i] > '9')
		return bad(d, "bad number");
	if (d->p[d->i] == '0')
		d->i++;
	else
		while (d->i < d->n && d->p[d->i] >= '0' && d->p[d->i] <= '9') {
			if (x > (1LL << 53))
				integer = false;
			else
				x = x * 10 + (d->p[d->i] - '0');
			d->i++;
		}
	if (d->i < d->n && d->p[d->i] == '.') {
		integer = false;
		d->i++;
		if (d->i >= d->n || d->p[d->i] < '0' || d->p[d->i] > '9')
			return bad(d, "bad number");
		while (d->i < d->n && d->p[d->i] >= '0' && d->p[d->i] <= '9')
			d->i++;
	}
	if (d->i < d->n && (d->p[d->i] == 'e' || d->p[d->i] == 'E')) {
		integer = false;
		d->i++;
		if (d->i < d->n && (d->p[d->i] == '+' || d->p[d->i] == '-'))
			d->i++;
		if (d->i >= d->n || d->p[d->i] < '0' || d->p[d->i] > '9')
			return bad(d, "bad number");
		while (d->i < d->n && d->p[d->i] >= '0' && d->p[d->i] <= '9')
			d->i++;
	}
	if (v != NULL)
		*v = integer && d->p[start] != '-' ? x : -1;
	return 0;
}

static int
literal(struct rd *d, const char *w)
{
	size_t k = strlen(w);

	if (d->n - d->i < k || memcmp(d->p + d->i, w, k) != 0)
		return bad(d, "bad value");
	d->i += k;
	return 0;
}

static int value(struct rd *d, unsigned depth);

static int
container(struct rd *d, unsigned depth, bool object)
{
	char close = object ? '}' : ']';

	if (depth >= OAUTH_JSON_DEPTH)
		return bad(d, "nested too deeply");
	d->i++;
	ws(d);
	if (d->i < d->n && d->p[d->i] == close) {
		d->i++;
		return 0;
	}
	for (;;) {
		if (object) {
			ws(d);
			if (string(d, NULL) == -1)
				return -1;
			ws(d);
			if (d->i >= d->n || d->p[d->i] != ':')
				return bad(d, "expected ':'");
			d->i++;
		}
		if (value(d, depth + 1) == -1)
			return -1;
		ws(d);
		if (d->i < d->n && d->p[d->i] == ',') {
			d->i++;
			continue;
		}
		if (d->i < d->n && d->p[d->i] == close) {
			d->i++;
			return 0;
		}
		return bad(d, object ? "expected ',' or '}'" :
		    "expected ',' or ']'");
	}
}

static int
value(struct rd *d, unsigned depth)
{
	ws(d);
	if (d->i >= d->n)
		return bad(d, "expected a value");
	switch (d->p[d->i]) {
	case '{':
		return container(d, depth, true);
	case '[':
		return container(d, depth, false);
	case '"':
		return string(d, NULL);
	case 't':
		return literal(d, "true");
	case 'f':
		return literal(d, "false");
	case 'n':
		return literal(d, "null");
	default:
		return number(d, NULL);
	}
}

static const struct {
	const char *name;
	size_t off;
} kept[] = {
	{ "access_token", offsetof(struct oauth_json, access_token) },
	{ "refresh_token", offsetof(struct oauth_json, refresh_token) },
	{ "token_type", offsetof(struct oauth_json, token_type) },
	{ "error", offsetof(struct oauth_json, error) },
	{ "error_description",
	    offsetof(struct oauth_json, error_description) },
};

/* The member named key of the top-level object, at d->i (its value). */
static int
member(struct rd *d, const char *key, struct oauth_json *r, bool *seen_exp)
{
	char **slot, *s, *end;
	size_t k;
	long long v;

	if (strcmp(key, "expires_in") == 0) {
		if (*seen_exp)
			return bad(d, "expires_in twice");
		*seen_exp = true;
		if (d->i < d->n && d->p[d->i] == '"') {
			if (string(d, &s) == -1)
				return -1;
			v = strtoll(s, &end, 10);
			if (*s < '0' || *s > '9' || *end != '\0' || v < 0 ||
			    strlen(s) > 12)
				v = -2;
			free(s);
		} else if (number(d, &v) == -1)
			return -1;
		if (v < 0)
			return bad(d, "expires_in is not a number of "
			    "seconds");
		r->expires_in = v;
		return 0;
	}
	for (k = 0; k < sizeof(kept) / sizeof(kept[0]); k++)
		if (strcmp(key, kept[k].name) == 0)
			break;
	if (k == sizeof(kept) / sizeof(kept[0]))
		return value(d, 1);
	slot = (char **)((char *)r + kept[k].off);
	if (*slot != NULL)
		return bad(d, "a member twice");
	if (d->i >= d->n || d->p[d->i] != '"')
		return bad(d, "expected a string value");
	return string(d, slot);
}

int
oauth_json_parse(const char *p, size_t n, struct oauth_json *r, char *err,
    size_t errlen)
{
	struct rd d = { .p = p, .n = n, .err = err, .errlen = errlen };
	bool seen_exp = false;
	char *key;

	memset(r, 0, sizeof(*r));
	r->expires_in = -1;
	if (n > OAUTH_JSON_MAX) {
		snprintf(err, errlen, "longer than %d bytes", OAUTH_JSON_MAX);
		return -1;
	}
	ws(&d);
	if (d.i >= n || p[d.i] != '{') {
		bad(&d, "not a JSON object");
		goto fail;
	}
	d.i++;
	ws(&d);
	if (d.i < n && p[d.i] == '}')
		d.i++;
	else
		for (;;) {
			ws(&d);
			if (string(&d, &key) == -1)
				goto fail;
			ws(&d);
			if (d.i >= n || p[d.i] != ':') {
				free(key);
				bad(&d, "expected ':'");
				goto fail;
			}
			d.i++;
			ws(&d);
			if (member(&d, key, r, &seen_exp) == -1) {
				free(key);
				goto fail;
			}
			free(key);
			ws(&d);
			if (d.i < n && p[d.i] == ',') {
				d.i++;
				continue;
			}
			if (d.i < n && p[d.i] == '}') {
				d.i++;
				break;
			}
			bad(&d, "expected ',' or '}'");
			goto fail;
		}
	ws(&d);
	if (d.i != n) {
		bad(&d, "data after the object");
		goto fail;
	}
	return 0;
fail:
	oauth_json_release(r);
	return -1;
}

static void
wipe_free(char **p)
{
	if (*p != NULL)
		explicit_bzero(*p, strlen(*p));
	free(*p); *p = NULL;
}

void
oauth_json_release(struct oauth_json *r)
{
	wipe_free(&r->access_token);
	wipe_free(&r->refresh_token);
	wipe_free(&r->token_type);
	wipe_free(&r->error);
	wipe_free(&r->error_description);
	r->expires_in = -1;
}
