#include "store/json.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingestd/base/xmalloc.h"

struct json_in {
	const char *p;
	size_t n, pos;
	char *err;
	size_t errlen;
	bool failed;
};

static void
json_fail(struct json_in *in, const char *what)
{
	if (!in->failed)
		snprintf(in->err, in->errlen, "JSON: %s at byte %zu", what,
		    in->pos);
	in->failed = true;
}

static void
json_ws(struct json_in *in)
{
	while (in->pos < in->n && (in->p[in->pos] == ' ' ||
	    in->p[in->pos] == '\t' || in->p[in->pos] == '\n' ||
	    in->p[in->pos] == '\r'))
		in->pos++;
}

void
json_free(struct json **jp)
{
	struct json *j = *jp;
	size_t i;

	if (j == NULL)
		return;
	for (i = 0; i < j->n; i++) {
		json_free(&j->items[i]);
		if (j->keys != NULL) {
			free(j->keys[i]); j->keys[i] = NULL;
		}
	}
	free(j->items); j->items = NULL;
	free(j->keys); j->keys = NULL;
	free(j->s); j->s = NULL;
	free(j); *jp = NULL;
}

static int
json_hex4(struct json_in *in, unsigned *v)
{
	unsigned i, d;
	char c;

	if (in->n - in->pos < 4)
		return -1;
	*v = 0;
	for (i = 0; i < 4; i++) {
		c = in->p[in->pos++];
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return -1;
		*v = *v << 4 | d;
	}
	return 0;
}

/* A string at in->pos (on the quote); NULL on error. */
static char *
json_string(struct json_in *in, size_t *len_r)
{
	char *out;
	size_t o = 0;
	unsigned c, lo;
	unsigned char ch;

	in->pos++;
	out = xmalloc(in->n - in->pos + 1);
	for (;;) {
		if (in->pos >= in->n) {
			json_fail(in, "unterminated string");
			goto fail;
		}
		ch = in->p[in->pos++];
		if (ch == '"')
			break;
		if (ch < 0x20) {
			json_fail(in, "control character in a string");
			goto fail;
		}
		if (ch != '\\') {
			out[o++] = ch;
			continue;
		}
		if (in->pos >= in->n) {
			json_fail(in, "unterminated string");
			goto fail;
		}
		switch (in->p[in->pos++]) {
		case '"':
			out[o++] = '"';
			break;
		case '\\':
			out[o++] = '\\';
			break;
		case '/':
			out[o++] = '/';
			break;
		case 'b':
			out[o++] = '\b';
			break;
		case 'f':
			out[o++] = '\f';
			break;
		case 'n':
			out[o++] = '\n';
			break;
		case 'r':
			out[o++] = '\r';
			break;
		case 't':
			out[o++] = '\t';
			break;
		case 'u':
			if (json_hex4(in, &c) == -1) {
				json_fail(in, "bad \\u escape");
				goto fail;
			}
			if (c >= 0xd800 && c <= 0xdbff) {
				if (in->n - in->pos < 6 ||
				    in->p[in->pos] != '\\' ||
				    in->p[in->pos + 1] != 'u') {
					json_fail(in, "lone surrogate");
					goto fail;
				}
				in->pos += 2;
				if (json_hex4(in, &lo) == -1 || lo < 0xdc00 ||
				    lo > 0xdfff) {
					json_fail(in, "lone surrogate");
					goto fail;
				}
				c = 0x10000 + ((c - 0xd800) << 10) +
				    (lo - 0xdc00);
			} else if (c >= 0xdc00 && c <= 0xdfff) {
				json_fail(in, "lone surrogate");
				goto fail;
			}
			/* At most 4 bytes for the 6 or 12 read. */
			if (c < 0x80)
				out[o++] = c;
			else if (c < 0x800) {
				out[o++] = 0xc0 | c >> 6;
				out[o++] = 0x80 | (c & 0x3f);
			} else if (c < 0x10000) {
				out[o++] = 0xe0 | c >> 12;
				out[o++] = 0x80 | ((c >> 6) & 0x3f);
				out[o++] = 0x80 | (c & 0x3f);
			} else {
				out[o++] = 0xf0 | c >> 18;
				out[o++] = 0x80 | ((c >> 12) & 0x3f);
				out[o++] = 0x80 | ((c >> 6) & 0x3f);
				out[o++] = 0x80 | (c & 0x3f);
			}
			break;
		default:
			json_fail(in, "bad escape");
			goto fail;
		}
	}
	out[o] = '\0';
	*len_r = o;
	return out;
fail:
	free(out); out = NULL;
	return NULL;
}

static struct json *json_value(struct json_in *in, unsigned depth);

static void
json_push(struct json *j, struct json *v, char *key, size_t *cap)
{
	if (j->n == *cap) {
		*cap = *cap * 2 + 4;
		j->items = xreallocarray(j->items, *cap, sizeof(*j->items));
		if (j->type == JSON_OBJECT)
			j->keys = xreallocarray(j->keys, *cap,
			    sizeof(*j->keys));
	}
	j->items[j->n] = v;
	if (j->type == JSON_OBJECT)
		j->keys[j->n] = key;
	j->n++;
}

static struct json *
json_container(struct json_in *in, unsigned depth, bool object)
{
	struct json *j = xcalloc(1, sizeof(*j)), *v;
	char close = object ? '}' : ']', *key = NULL;
	size_t cap = 0, klen;

	j->type = object ? JSON_OBJECT : JSON_ARRAY;
	in->pos++;
	json_ws(in);
	if (in->pos < in->n && in->p[in->pos] == close) {
		in->pos++;
		return j;
	}
	for (;;) {
		json_ws(in);
		if (object) {
			if (in->pos >= in->n || in->p[in->pos] != '"') {
				json_fail(in, "expected a member name");
				goto fail;
			}
			if ((key = json_string(in, &klen)) == NULL)
				goto fail;
			json_ws(in);
			if (in->pos >= in->n || in->p[in->pos] != ':') {
				json_fail(in, "expected ':'");
				goto fail;
			}
			in->pos++;
		}
		if ((v = json_value(in, depth + 1)) == NULL)
			goto fail;
		json_push(j, v, key, &cap);
		key = NULL;
		json_ws(in);
		if (in->pos < in->n && in->p[in->pos] == ',') {
			in->pos++;
			continue;
		}
		if (in->pos < in->n && in->p[in->pos] == close) {
			in->pos++;
			return j;
		}
		json_fail(in, object ? "expected ',' or '}'" :
		    "expected ',' or ']'");
		goto fail;
	}
fail:
	free(key); key = NULL;
	json_free(&j);
	return NULL;
}

static struct json *
json_value(struct json_in *in, unsigned depth)
{
	struct json *j;
	bool neg = false;
	uint64_t v = 0;
	char c;

	if (depth > JSON_MAX_DEPTH) {
		json_fail(in, "nested too deep");
		return NULL;
	}
	json_ws(in);
	if (in->pos >= in->n) {
		json_fail(in, "expected a value");
		return NULL;
	}
	c = in->p[in->pos];
	if (c == '{' || c == '[')
		return json_container(in, depth, c == '{');
	j = xcalloc(1, sizeof(*j));
	if (c == '"') {
		j->type = JSON_STRING;
		if ((j->s = json_string(in, &j->slen)) == NULL)
			goto fail;
		return j;
	}
	if (in->n - in->pos >= 4 && memcmp(in->p + in->pos, "null", 4) == 0) {
		j->type = JSON_NULL;
		in->pos += 4;
		return j;
	}
	if (in->n - in->pos >= 4 && memcmp(in->p + in->pos, "true", 4) == 0) {
		j->type = JSON_BOOL;
		j->i = 1;
		in->pos += 4;
		return j;
	}
	if (in->n - in->pos >= 5 && memcmp(in->p + in->pos, "false", 5) == 0) {
		j->type = JSON_BOOL;
		in->pos += 5;
		return j;
	}
	if (c == '-') {
		neg = true;
		in->pos++;
	}
	if (in->pos >= in->n || in->p[in->pos] < '0' || in->p[in->pos] > '9') {
		json_fail(in, "expected a value");
		goto fail;
	}
	if (in->p[in->pos] == '0' && in->pos + 1 < in->n &&
	    in->p[in->pos + 1] >= '0' && in->p[in->pos + 1] <= '9') {
		json_fail(in, "leading zero");
		goto fail;
	}
	while (in->pos < in->n && in->p[in->pos] >= '0' &&
	    in->p[in->pos] <= '9') {
		if (v > ((uint64_t)INT64_MAX - 9) / 10) {
			json_fail(in, "integer out of range");
			goto fail;
		}
		v = v * 10 + (uint64_t)(in->p[in->pos++] - '0');
	}
	if (in->pos < in->n && (in->p[in->pos] == '.' ||
	    in->p[in->pos] == 'e' || in->p[in->pos] == 'E')) {
		json_fail(in, "only integers are accepted");
		goto fail;
	}
	j->type = JSON_INT;
	j->i = neg ? -(int64_t)v : (int64_t)v;
	return j;
fail:
	json_free(&j);
	return NULL;
}

struct json *
json_parse(const char *p, size_t n, char *err, size_t errlen)
{
	struct json_in in = { .p = p, .n = n, .err = err, .errlen = errlen };
	struct json *j;

	if (n > JSON_MAX_SIZE) {
		snprintf(err, errlen, "JSON: larger than %d bytes",
		    JSON_MAX_SIZE);
		return NULL;
	}
	if ((j = json_value(&in, 0)) == NULL)
		return NULL;
	json_ws(&in);
	if (in.pos != n) {
		json_fail(&in, "trailing data");
		json_free(&j);
	}
	return j;
}

const struct json *
json_get(const struct json *j, const char *key)
{
	size_t i;

	if (j == NULL || j->type != JSON_OBJECT)
		return NULL;
	for (i = 0; i < j->n; i++)
		if (strcmp(j->keys[i], key) == 0)
			return j->items[i];
	return NULL;
}
