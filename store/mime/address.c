#include "store/mime/address.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "store/mime/header.h"
#include "store/mime/meta.h"
#include "store/mime/strbuf.h"
#include "store/mime/utf8.h"

#define ADDR_MAX 1024 /* longer is no address */

static bool
is_wsp(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Skips a quoted string at p[*i] == '"', appending its content. */
static bool
quoted(const char *p, size_t n, size_t *i, struct mime_strbuf *content)
{
	(*i)++;
	while (*i < n && p[*i] != '"') {
		if (p[*i] == '\\' && *i + 1 < n)
			(*i)++;
		if (content != NULL && p[*i] != '\r' && p[*i] != '\n')
			mime_strbuf_addc(content, p[*i]);
		(*i)++;
	}
	if (*i >= n)
		return false;
	(*i)++;
	return true;
}

/*
 * A display name from the phrase p[0, n): quotes removed, comments
 * dropped, white space collapsed, encoded words decoded; NULL if empty.
 */
static char *
phrase(const char *p, size_t n, bool comment, uint32_t *flags)
{
	struct mime_strbuf w;
	size_t i = 0;
	bool space = false;
	char *s;

	mime_strbuf_init(&w, n + 1);
	while (i < n) {
		if (is_wsp(p[i])) {
			space = w.len > 0;
			i++;
			continue;
		}
		if (space)
			mime_strbuf_addc(&w, ' ');
		space = false;
		if (p[i] == '"')
			quoted(p, n, &i, &w);
		else if (p[i] == '(' && !comment) {
			mime_skip_comment(p, n, &i);
			space = w.len > 0;
		} else {
			if (p[i] == '\\' && comment && i + 1 < n)
				i++;
			mime_strbuf_addc(&w, p[i++]);
		}
	}
	s = w.len > 0 ? mime_decoded_string(w.p, w.len, flags) : NULL;
	mime_strbuf_release(&w);
	return s;
}

struct item {
	size_t start; /* of the item in the value */
	size_t lt;    /* where '<' stands, if angle */
	int angle;    /* 0 none, 1 open, 2 closed */
	struct mime_strbuf addr;
	bool spaced;   /* words with only space between them */
	bool word_end; /* the last thing in addr was a word */
	bool gap;      /* white space since the last word */
	bool content;  /* anything but space and comments */
	size_t c0, c1; /* the last comment, outside <> */
};

static void
item_start(struct item *it, size_t start)
{
	mime_strbuf_reset(&it->addr);
	it->start = start;
	it->lt = 0;
	it->angle = 0;
	it->spaced = it->word_end = it->gap = it->content = false;
	it->c0 = it->c1 = 0;
}

static uint32_t
item_end(struct item *it, const char *p, mime_address_fn *fn, void *ctx)
{
	uint32_t flags = 0;
	struct mime_strbuf clean;
	char *name = NULL;
	size_t k;

	if (it->angle == 1)
		flags |= MIME_F_BAD_ADDRESS;
	if (it->angle == 0 && it->spaced) {
		/* "John Smith" alone, or worse: no address. */
		return flags | MIME_F_BAD_ADDRESS;
	}
	if (it->addr.len == 0) {
		/* An empty item, or "<>": nothing to index. */
		if (it->content && it->angle == 0)
			flags |= MIME_F_BAD_ADDRESS;
		return flags;
	}
	if (it->addr.len > ADDR_MAX)
		return flags | MIME_F_BAD_ADDRESS;
	if (it->angle > 0)
		name = phrase(p + it->start, it->lt - it->start, false, &flags);
	else if (it->c1 > it->c0)
		name = phrase(p + it->c0, it->c1 - it->c0, true, &flags);
	for (k = 0; k < it->addr.len; k++)
		if (it->addr.p[k] >= 'A' && it->addr.p[k] <= 'Z')
			it->addr.p[k] = (char)(it->addr.p[k] - 'A' + 'a');
	mime_strbuf_init(&clean, 3 * it->addr.len + 1);
	mime_utf8_sanitize(it->addr.p, it->addr.len, &clean);
	fn(ctx, clean.p, name);
	mime_strbuf_release(&clean);
	free(name);
	return flags;
}

/* Appends a word or special to the address being read. */
static void
addr_add(struct item *it, const char *p, size_t n, bool word)
{
	if (word && it->word_end && it->gap)
		it->spaced = true;
	mime_strbuf_add(&it->addr, p, n);
	it->word_end = word;
	it->gap = false;
}

uint32_t
mime_address_list(const char *p, size_t n, mime_address_fn *fn, void *ctx)
{
	struct item it;
	uint32_t flags = 0;
	size_t i = 0, s;
	bool group = false;

	memset(&it, 0, sizeof(it));
	mime_strbuf_init(&it.addr, ADDR_MAX + 1);
	item_start(&it, 0);
	while (i < n) {
		char c = p[i];

		if (is_wsp(c)) {
			it.gap = true;
			i++;
		} else if (c == '(') {
			s = i;
			mime_skip_comment(p, n, &i);
			if (it.angle != 1) {
				it.c0 = s + 1;
				it.c1 = p[i - 1] == ')' && i - 1 > s ? i - 1 :
								       i;
			}
			it.gap = true;
		} else if (c == '"') {
			s = i;
			it.content = true;
			if (!quoted(p, n, &i, NULL))
				flags |= MIME_F_BAD_ADDRESS;
			addr_add(&it, p + s, i - s, true);
		} else if (c == '<') {
			it.content = true;
			if (it.angle == 0) {
				it.angle = 1;
				it.lt = i;
				mime_strbuf_reset(&it.addr);
				it.word_end = it.gap = it.spaced = false;
			} else
				flags |= MIME_F_BAD_ADDRESS;
			i++;
		} else if (c == '>') {
			if (it.angle == 1)
				it.angle = 2;
			else
				flags |= MIME_F_BAD_ADDRESS;
			i++;
		} else if (c == ',' && it.angle != 1) {
			flags |= item_end(&it, p, fn, ctx);
			item_start(&it, ++i);
		} else if (c == ';' && it.angle != 1) {
			flags |= item_end(&it, p, fn, ctx);
			if (!group)
				flags |= MIME_F_BAD_ADDRESS;
			group = false;
			item_start(&it, ++i);
		} else if (c == ':' && it.angle == 1) {
			/* The end of an obsolete route: drop it. */
			mime_strbuf_reset(&it.addr);
			it.word_end = it.gap = it.spaced = false;
			i++;
		} else if (c == ':' && it.angle == 0 && !group &&
		    memchr(it.addr.p != NULL ? it.addr.p : "", '@',
			it.addr.len) == NULL) {
			/* A group's name. */
			group = true;
			item_start(&it, ++i);
		} else if (c == '[') {
			/* A domain literal, as written. */
			s = i;
			while (i < n && p[i] != ']')
				i++;
			if (i < n)
				i++;
			else
				flags |= MIME_F_BAD_ADDRESS;
			it.content = true;
			addr_add(&it, p + s, i - s, true);
		} else if (c == '@' || c == '.' || c == ',' || c == ':' ||
		    c == ';' || c == '\\' || c == ']' || c == ')') {
			it.content = true;
			addr_add(&it, p + i, 1, false);
			i++;
		} else if (c == '=' && it.angle != 1 &&
		    (s = mime_encoded_word_len(p + i, n - i)) > 0) {
			/*
			 * An encoded word is one word, whatever it holds
			 * (a ',' from a client that did not encode it).
			 */
			it.content = true;
			addr_add(&it, p + i, s, true);
			i += s;
		} else {
			s = i;
			while (i < n && !is_wsp(p[i]) &&
			    (p[i] == '\0' ||
				strchr("()<>[]:;@\\,.\"", p[i]) == NULL))
				i++;
			if (i == s)
				i++; /* cannot happen; never loop */
			it.content = true;
			addr_add(&it, p + s, i - s, true);
		}
	}
	flags |= item_end(&it, p, fn, ctx);
	mime_strbuf_release(&it.addr);
	return flags;
}
