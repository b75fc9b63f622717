#include "store/mime/html.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum {
	H_TEXT,
	H_LT,	     /* after '<' */
	H_NAME,	     /* a tag's name */
	H_ATTR,	     /* inside a tag, after its name */
	H_QUOTE,     /* a quoted attribute value */
	H_BANG,	     /* after "<!" */
	H_BANG_DASH, /* after "<!-" */
	H_COMMENT,   /* inside <!-- --> */
	H_DECL,	     /* <!DOCTYPE ...>, <?xml ...?> */
	H_ENT,	     /* after '&' */
};

struct out {
	char buf[1024];
	size_t n;
	mime_sink_fn *sink;
	void *ctx;
	bool mute;
	bool *nl; /* the last byte put was a line break */
};

static void
put(struct out *o, const char *p, size_t n)
{
	if (o->mute || n == 0)
		return;
	*o->nl = p[n - 1] == '\n';
	while (n > 0) {
		size_t k = sizeof(o->buf) - o->n;

		if (k > n)
			k = n;
		memcpy(o->buf + o->n, p, k);
		o->n += k;
		p += k;
		n -= k;
		if (o->n == sizeof(o->buf)) {
			o->sink(o->ctx, o->buf, o->n);
			o->n = 0;
		}
	}
}

static bool
is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

static void
put_cp(struct out *o, unsigned long cp)
{
	char u[4];

	if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
		put(o, UTF8_REPLACEMENT, 3);
		return;
	}
	if (cp < 0x80) {
		u[0] = (char)cp;
		put(o, u, 1);
	} else if (cp < 0x800) {
		u[0] = (char)(0xC0 | cp >> 6);
		u[1] = (char)(0x80 | (cp & 0x3F));
		put(o, u, 2);
	} else if (cp < 0x10000) {
		u[0] = (char)(0xE0 | cp >> 12);
		u[1] = (char)(0x80 | (cp >> 6 & 0x3F));
		u[2] = (char)(0x80 | (cp & 0x3F));
		put(o, u, 3);
	} else {
		u[0] = (char)(0xF0 | cp >> 18);
		u[1] = (char)(0x80 | (cp >> 12 & 0x3F));
		u[2] = (char)(0x80 | (cp >> 6 & 0x3F));
		u[3] = (char)(0x80 | (cp & 0x3F));
		put(o, u, 4);
	}
}

static const struct {
	const char *name;
	unsigned long cp;
} entities[] = {
	{ "amp", '&' },
	{ "lt", '<' },
	{ "gt", '>' },
	{ "quot", '"' },
	{ "apos", '\'' },
	{ "nbsp", ' ' },
	{ "copy", 0xA9 },
	{ "reg", 0xAE },
	{ "euro", 0x20AC },
	{ "hellip", 0x2026 },
	{ "mdash", 0x2014 },
	{ "ndash", 0x2013 },
	{ "lsquo", 0x2018 },
	{ "rsquo", 0x2019 },
	{ "ldquo", 0x201C },
	{ "rdquo", 0x201D },
	{ "laquo", 0xAB },
	{ "raquo", 0xBB },
	{ "shy", 0xAD },
	{ "auml", 0xE4 },
	{ "ouml", 0xF6 },
	{ "uuml", 0xFC },
	{ "Auml", 0xC4 },
	{ "Ouml", 0xD6 },
	{ "Uuml", 0xDC },
	{ "szlig", 0xDF },
	{ "eacute", 0xE9 },
	{ "egrave", 0xE8 },
	{ "agrave", 0xE0 },
	{ "ccedil", 0xE7 },
};

/* The entity in h->ent, ended by ';' (semi) or not. */
static void
entity(struct mime_html *h, struct out *o, bool semi)
{
	unsigned long cp;
	char *end;
	size_t i;

	h->ent[h->nent] = '\0';
	if (semi && h->nent > 1 && h->ent[0] == '#') {
		bool hex = h->ent[1] == 'x' || h->ent[1] == 'X';
		const char *digits = h->ent + (hex ? 2 : 1);

		cp = strtoul(digits, &end, hex ? 16 : 10);
		if (end != digits && *end == '\0') {
			put_cp(o, cp);
			return;
		}
	}
	if (semi)
		for (i = 0; i < sizeof(entities) / sizeof(entities[0]); i++)
			if (strcmp(h->ent, entities[i].name) == 0) {
				put_cp(o, entities[i].cp);
				return;
			}
	put(o, "&", 1);
	put(o, h->ent, h->nent);
	if (semi)
		put(o, ";", 1);
}

static const char *const blocks[] = {
	"p",
	"br",
	"div",
	"tr",
	"li",
	"ul",
	"ol",
	"table",
	"h1",
	"h2",
	"h3",
	"h4",
	"h5",
	"h6",
	"hr",
	"blockquote",
	"pre",
	"title",
	"dd",
	"dt",
	"dl",
	"section",
	"article",
	"header",
	"footer",
	"address",
	"center",
	"form",
	"body",
	"head",
	"html",
	"nav",
	"aside",
	"main",
};

static void
tag_end(struct mime_html *h, struct out *o)
{
	size_t i;

	h->name[h->nname] = '\0';
	for (i = 0; i < h->nname; i++)
		if (h->name[i] >= 'A' && h->name[i] <= 'Z')
			h->name[i] = (char)(h->name[i] - 'A' + 'a');
	if (h->skip != 0) {
		if (h->closing &&
		    strcmp(h->name, h->skip == 1 ? "script" : "style") == 0) {
			h->skip = 0;
			o->mute = false;
		}
		return;
	}
	if (!h->closing && strcmp(h->name, "script") == 0)
		h->skip = 1;
	else if (!h->closing && strcmp(h->name, "style") == 0)
		h->skip = 2;
	if (h->skip != 0) {
		o->mute = true;
		return;
	}
	if (strcmp(h->name, "td") == 0 || strcmp(h->name, "th") == 0) {
		put(o, " ", 1);
		return;
	}
	for (i = 0; i < sizeof(blocks) / sizeof(blocks[0]); i++)
		if (strcmp(h->name, blocks[i]) == 0) {
			/* One break, however many blocks end here. */
			if (!h->nl)
				put(o, "\n", 1);
			return;
		}
}

void
mime_html_init(struct mime_html *h)
{
	memset(h, 0, sizeof(*h));
	h->nl = true;
}

void
mime_html_feed(struct mime_html *h, const char *p, size_t n, mime_sink_fn *sink,
    void *ctx)
{
	struct out o;
	size_t i;
	char c;

	o.n = 0;
	o.sink = sink;
	o.ctx = ctx;
	o.mute = h->skip != 0;
	o.nl = &h->nl;
	for (i = 0; i < n; i++) {
		c = p[i];
again:
		switch (h->state) {
		case H_TEXT:
			if (c == '<') {
				h->state = H_LT;
				h->nname = 0;
				h->closing = false;
			} else if (c == '&' && h->skip == 0) {
				h->state = H_ENT;
				h->nent = 0;
			} else
				put(&o, &c, 1);
			break;
		case H_LT:
			if (c == '/' && !h->closing && h->nname == 0) {
				h->closing = true;
			} else if (c == '!') {
				h->state = H_BANG;
			} else if (c == '?') {
				h->state = H_DECL;
			} else if ((c >= 'a' && c <= 'z') ||
			    (c >= 'A' && c <= 'Z')) {
				h->state = H_NAME;
				goto again;
			} else {
				/* "a < b": no tag. */
				h->state = H_TEXT;
				put(&o, h->closing ? "</" : "<",
				    h->closing ? 2 : 1);
				goto again;
			}
			break;
		case H_NAME:
			if (is_alnum(c)) {
				if (h->nname < HTML_NAME_MAX - 1)
					h->name[h->nname++] = c;
				break;
			}
			h->state = H_ATTR;
			goto again;
		case H_ATTR:
			if (c == '>') {
				h->state = H_TEXT;
				tag_end(h, &o);
			} else if ((c == '"' || c == '\'') && h->skip == 0) {
				h->quote = c;
				h->state = H_QUOTE;
			}
			break;
		case H_QUOTE:
			if (c == h->quote)
				h->state = H_ATTR;
			break;
		case H_BANG:
			h->state = c == '-' ? H_BANG_DASH : H_DECL;
			if (c == '>')
				h->state = H_TEXT;
			break;
		case H_BANG_DASH:
			h->state = c == '-' ? H_COMMENT : H_DECL;
			h->dashes = 0;
			if (c == '>')
				h->state = H_TEXT;
			break;
		case H_COMMENT:
			if (c == '>' && h->dashes >= 2)
				h->state = H_TEXT;
			h->dashes = c == '-' ? h->dashes + 1 : 0;
			break;
		case H_DECL:
			if (c == '>')
				h->state = H_TEXT;
			break;
		case H_ENT:
			if ((is_alnum(c) || (c == '#' && h->nent == 0)) &&
			    h->nent < HTML_NAME_MAX - 2) {
				h->ent[h->nent++] = c;
				break;
			}
			h->state = H_TEXT;
			if (c == ';') {
				entity(h, &o, true);
				break;
			}
			entity(h, &o, false);
			goto again;
		}
	}
	if (o.n > 0)
		sink(ctx, o.buf, o.n);
}

void
mime_html_finish(struct mime_html *h, mime_sink_fn *sink, void *ctx)
{
	struct out o;

	o.n = 0;
	o.sink = sink;
	o.ctx = ctx;
	o.mute = h->skip != 0;
	o.nl = &h->nl;
	if (h->state == H_ENT)
		entity(h, &o, false);
	h->state = H_TEXT;
	if (o.n > 0)
		sink(ctx, o.buf, o.n);
}
