/*
 * The message indexer's push parser.  Bytes are cut into lines (a line of
 * up to LINE_CAP bytes is held whole so it can be compared with the
 * boundaries in force; a longer one cannot be a boundary and streams
 * through).  Each line goes, in order, to the hashes of the enclosing
 * message/rfc822 parts and to the current entity: its header block (held,
 * up to MIME_HEADER_MAX), its body (decoded, hashed, and for text parts
 * converted to UTF-8 and kept as text), or nowhere (preamble, epilogue).
 *
 * The line break before a boundary belongs to the boundary (RFC 2046
 * section 5.1.1), so each line's break is held back until the next line
 * shows it is no boundary.
 *
 * Numbering follows IMAP sections: the parts of a multipart are "1",
 * "2", ... (nested: "2.1"); the top-level multipart itself is ""; a
 * message that is no multipart has the one part "1".  A message/rfc822
 * part "N" is kept with the size and SHA-256 of the message it carries,
 * whose parts are "N.1", "N.2", ... (its own multipart container, like
 * IMAP's "N.TEXT", has no row of its own).
 *
 * A header block ended by a line that is no header field, rather than by
 * an empty line, is MIME_F_NO_HEADER: the fields read so far count, and
 * that line starts the body.  A header ended by a boundary or by the end
 * of the message is a part or message without a body, which RFC 2046 and
 * RFC 5322 allow.  An mbox "From " line opening the message is
 * skipped.  A header block past MIME_HEADER_MAX keeps its whole lines
 * (MIME_F_HEADER_TRUNCATED) and parsing goes on.
 *
 * Only the top header gives the message's fields and addresses; of a
 * carried message only the Subject (and its text parts) join the full
 * text.  A multipart without a usable boundary (MIME_F_MISSING_BOUNDARY),
 * and a multipart or message/rfc822 past MIME_DEPTH_MAX frames
 * (MIME_F_TOO_DEEP), is kept as one opaque leaf: hashed, not looked into.
 * Parts past MIME_PART_MAX have no row (MIME_F_TOO_MANY_PARTS) but still
 * give their text and file names.  Text parts are text/plain and
 * text/html, attachments or not; other parts give only their names.
 */
#include "store/mime/parser.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ingestd/base/xmalloc.h"
#include "store/hash.h"
#include "store/mime/address.h"
#include "store/mime/charset.h"
#include "store/mime/date.h"
#include "store/mime/decode.h"
#include "store/mime/header.h"
#include "store/mime/html.h"
#include "store/mime/strbuf.h"
#include "store/mime/text.h"
#include "store/mime/utf8.h"

#define LINE_CAP 1024 /* longer lines are no boundary */
#define BOUNDARY_MAX 512
#define LINEHEAD 72 /* what is kept to judge a header line */
/*
 * Decoded bytes of text parts converted for the full text, per message:
 * enough for any MIME_TEXT_MAX of text, and a bound on the work a huge
 * text attachment costs.  Counted in decoded bytes, so the cut is the same
 * however the message was split.
 */
#define TEXT_INPUT_MAX (8 * MIME_TEXT_MAX)

enum frame_kind {
	FR_MULTIPART,
	FR_MESSAGE
};

struct frame {
	enum frame_kind kind;
	/* FR_MULTIPART */
	char *boundary;
	size_t blen;
	char *prefix; /* of the children's paths */
	unsigned long nchild;
	bool digest;
	/* FR_MESSAGE */
	long part; /* -1 if not kept */
	struct hash_sha256 h;
	uint64_t size;
};

enum ent_kind {
	ENT_TOP,
	ENT_CHILD,
	ENT_ROOT
};
enum ent_state {
	E_HEADER,
	E_BODY,
	E_SKIP
};

struct mime_parser {
	struct mime_meta *m;
	size_t parts_cap, addrs_cap;
	bool finished;

	/* Lines. */
	char line[LINE_CAP];
	size_t nline;
	bool longline;
	bool held_cr;
	size_t linelen; /* content bytes of the current line */
	char term[2];	/* the last line's break, held back */
	size_t nterm;
	bool term_to_entity;
	size_t term_frames; /* the frames the break belongs to */

	struct frame frames[MIME_DEPTH_MAX];
	size_t nframes;

	/* The current entity. */
	enum ent_kind kind;
	enum ent_state st;
	char *path; /* ENT_CHILD: its path; ENT_ROOT: prefix */
	bool digest_child;
	struct mime_strbuf hdr;
	bool hdr_cut;
	size_t hdr_line; /* where the current line starts in hdr */
	char head[LINEHEAD];
	size_t nhead;
	bool first_line;
	bool top_seen; /* the top header was processed */

	/* The current leaf body. */
	long part; /* -1 if not kept */
	bool hashing;
	struct hash_sha256 h;
	uint64_t size;
	struct mime_decoder dec;
	bool is_text, is_html;
	struct mime_charset *cs;
	struct mime_html html;

	struct mime_text text;
	size_t text_in; /* bytes given to text conversion */
};

static void
set_str(char **dst, char *s)
{
	if (*dst == NULL)
		*dst = s;
	else
		free(s);
}

/* --- parts and addresses -------------------------------------------- */

static long
add_part(struct mime_parser *mp, const char *path, const char *ctype,
    const struct mime_params *disp, const struct mime_params *ct)
{
	struct mime_meta *m = mp->m;
	struct mime_part *pt;
	const char *fn;

	fn = disp->filename != NULL ? disp->filename : ct->name;
	if (fn != NULL)
		mime_text_name(&mp->text, fn);
	if (m->n_parts >= MIME_PART_MAX) {
		m->flags |= MIME_F_TOO_MANY_PARTS;
		return -1;
	}
	if (m->n_parts == mp->parts_cap) {
		mp->parts_cap = mp->parts_cap == 0 ? 4 : mp->parts_cap * 2;
		m->parts = xreallocarray(m->parts, mp->parts_cap,
		    sizeof(*m->parts));
	}
	pt = &m->parts[m->n_parts];
	memset(pt, 0, sizeof(*pt));
	pt->path = xstrdup(path);
	pt->content_type = xstrdup(ctype);
	pt->disposition = disp->value != NULL ? xstrdup(disp->value) : NULL;
	pt->filename = fn != NULL ? xstrdup(fn) : NULL;
	pt->attachment = fn != NULL ||
	    (disp->value != NULL && strcmp(disp->value, "attachment") == 0);
	return (long)m->n_parts++;
}

struct addr_ctx {
	struct mime_parser *mp;
	enum mime_role role;
};

static void
add_address(void *vctx, const char *addr, const char *name)
{
	struct addr_ctx *ctx = vctx;
	struct mime_parser *mp = ctx->mp;
	struct mime_meta *m = mp->m;
	struct mime_address *a;
	const char *at;

	if (m->n_addresses >= MIME_ADDRESS_MAX) {
		m->flags |= MIME_F_TOO_MANY_ADDRESSES;
		return;
	}
	if (m->n_addresses == mp->addrs_cap) {
		mp->addrs_cap = mp->addrs_cap == 0 ? 4 : mp->addrs_cap * 2;
		m->addresses = xreallocarray(m->addresses, mp->addrs_cap,
		    sizeof(*m->addresses));
	}
	a = &m->addresses[m->n_addresses++];
	a->role = ctx->role;
	a->address = xstrdup(addr);
	at = strrchr(addr, '@');
	a->domain = xstrdup(at != NULL ? at + 1 : "");
	a->name = name != NULL ? xstrdup(name) : NULL;
	if (name != NULL)
		mime_text_head(&mp->text, name);
	mime_text_head(&mp->text, addr);
}

/* --- header fields ---------------------------------------------------- */

/* Unfolded and valid UTF-8, or NULL if empty. */
static char *
raw_string(const char *p, size_t n)
{
	struct mime_strbuf u, s;

	mime_strbuf_init(&u, n + 1);
	mime_unfold(p, n, &u);
	if (u.len == 0) {
		mime_strbuf_release(&u);
		return NULL;
	}
	mime_strbuf_init(&s, 3 * u.len + 1);
	mime_utf8_sanitize(u.p, u.len, &s);
	mime_strbuf_release(&u);
	return mime_strbuf_take(&s);
}

static const struct {
	const char *name;
	enum mime_role role;
} address_fields[] = {
	{ "from", MIME_ROLE_FROM },
	{ "sender", MIME_ROLE_SENDER },
	{ "reply-to", MIME_ROLE_REPLY_TO },
	{ "to", MIME_ROLE_TO },
	{ "cc", MIME_ROLE_CC },
	{ "bcc", MIME_ROLE_BCC },
	{ "delivered-to", MIME_ROLE_DELIVERED_TO },
	{ "x-original-to", MIME_ROLE_X_ORIGINAL_TO },
	{ "return-path", MIME_ROLE_RETURN_PATH },
};

static void
top_field(struct mime_parser *mp, const char *name, const char *v, size_t n)
{
	struct mime_meta *m = mp->m;
	struct addr_ctx ac;
	int64_t t;
	size_t i;
	char *s;

	for (i = 0; i < sizeof(address_fields) / sizeof(address_fields[0]);
	     i++) {
		if (strcasecmp(name, address_fields[i].name) != 0)
			continue;
		ac.mp = mp;
		ac.role = address_fields[i].role;
		m->flags |= mime_address_list(v, n, add_address, &ac);
		return;
	}
	if (strcasecmp(name, "date") == 0) {
		if (m->date_raw != NULL)
			return;
		m->date_raw = raw_string(v, n);
		if (mime_date_parse(v, n, &t)) {
			m->has_date = true;
			m->date = t;
		} else
			m->flags |= MIME_F_BAD_DATE;
	} else if (strcasecmp(name, "subject") == 0) {
		if (m->subject_raw != NULL)
			return;
		m->subject_raw = raw_string(v, n);
		m->subject = mime_decoded_string(v, n, &m->flags);
		if (m->subject != NULL)
			mime_text_head(&mp->text, m->subject);
	} else if (strcasecmp(name, "message-id") == 0)
		set_str(&m->message_id, mime_angle_id(v, n, false));
	else if (strcasecmp(name, "in-reply-to") == 0)
		set_str(&m->in_reply_to, raw_string(v, n));
	else if (strcasecmp(name, "references") == 0)
		set_str(&m->references, raw_string(v, n));
	else if (strcasecmp(name, "list-id") == 0)
		set_str(&m->list_id, mime_angle_id(v, n, true));
	else if (strcasecmp(name, "auto-submitted") == 0) {
		s = raw_string(v, n);
		if (s != NULL) {
			/* The keyword, without parameters or comments. */
			s[strcspn(s, "; \t(")] = '\0';
			for (i = 0; s[i] != '\0'; i++)
				if (s[i] >= 'A' && s[i] <= 'Z')
					s[i] = (char)(s[i] - 'A' + 'a');
			if (s[0] == '\0') {
				free(s);
				s = NULL;
			}
		}
		set_str(&m->auto_submitted, s);
	}
}

/* --- leaf bodies ------------------------------------------------------ */

static void
text_sink(void *vmp, const char *p, size_t n)
{
	struct mime_parser *mp = vmp;

	if (mp->is_html)
		mime_html_feed(&mp->html, p, n, mime_text_body, &mp->text);
	else
		mime_text_body(&mp->text, p, n);
}

static void
decoded_sink(void *vmp, const char *p, size_t n)
{
	struct mime_parser *mp = vmp;

	size_t take = n;

	mp->size += n;
	hash_sha256_update(&mp->h, p, n);
	if (!mp->is_text)
		return;
	if (take > TEXT_INPUT_MAX - mp->text_in) {
		take = TEXT_INPUT_MAX - mp->text_in;
		mp->m->flags |= MIME_F_TEXT_TRUNCATED;
	}
	mp->text_in += take;
	if (take > 0)
		mime_charset_feed(mp->cs, p, take, text_sink, mp);
}

static void
leaf_begin(struct mime_parser *mp, long part, enum mime_cte cte, bool text,
    bool html, const char *charset)
{
	mp->st = E_BODY;
	mp->part = part;
	mp->hashing = true;
	hash_sha256_reset(&mp->h);
	mp->size = 0;
	mime_decoder_init(&mp->dec, cte);
	mp->is_text = text;
	mp->is_html = html;
	if (text)
		mp->cs = mime_charset_new(charset);
	mime_html_init(&mp->html);
}

static void
leaf_end(struct mime_parser *mp)
{
	struct mime_part *pt;

	if (mp->st != E_BODY)
		return;
	mime_decoder_finish(&mp->dec, decoded_sink, mp);
	if (mp->dec.bad)
		mp->m->flags |= MIME_F_BAD_ENCODING;
	if (mp->is_text) {
		mime_charset_finish(mp->cs, text_sink, mp);
		if (mp->is_html)
			mime_html_finish(&mp->html, mime_text_body, &mp->text);
		mp->m->flags |= mime_charset_flags(mp->cs);
		mime_charset_free(&mp->cs);
		mime_text_body_end(&mp->text);
	}
	if (mp->part >= 0) {
		pt = &mp->m->parts[mp->part];
		pt->size = mp->size;
		pt->has_sha256 = true;
		hash_sha256_final(&mp->h, pt->sha256);
	}
	mp->st = E_SKIP;
}

static void
body_data(struct mime_parser *mp, const char *p, size_t n)
{
	mime_decoder_feed(&mp->dec, p, n, decoded_sink, mp);
}

/* --- entities --------------------------------------------------------- */

static void
entity_begin(struct mime_parser *mp, enum ent_kind kind, char *path,
    bool digest_child)
{
	free(mp->path);
	mp->path = path;
	mp->kind = kind;
	mp->digest_child = digest_child;
	mp->st = E_HEADER;
	mime_strbuf_reset(&mp->hdr);
	mp->hdr_cut = false;
	mp->hdr_line = 0;
	mp->first_line = true;
}

static char *
join_path(const char *prefix, unsigned long n)
{
	if (*prefix == '\0')
		return xasprintf("%lu", n);
	return xasprintf("%s.%lu", prefix, n);
}

/* The path of this entity as a leaf (or a message/rfc822 part). */
static char *
leaf_path(struct mime_parser *mp)
{
	switch (mp->kind) {
	case ENT_TOP:
		return xstrdup("1");
	case ENT_CHILD:
		return xstrdup(mp->path);
	default:
		return join_path(mp->path, 1);
	}
}

struct fields {
	struct mime_params ct, disp;
	enum mime_cte cte;
};

/* Calls each field of hdr[0, end) with its name and raw value. */
static void
header_fields(struct mime_parser *mp, size_t end, struct fields *f)
{
	const char *p = mp->hdr.p != NULL ? mp->hdr.p : "", *e, *colon;
	const char *v;
	char name[64];
	size_t i = 0, s, nl, vlen;
	bool have_ct = false, have_disp = false, have_cte = false;
	uint32_t fl;

	memset(f, 0, sizeof(*f));
	f->cte = MIME_CTE_IDENTITY;
	if (mime_utf8_has_8bit(p, end))
		mp->m->flags |= MIME_F_8BIT_HEADER;
	while (i < end) {
		s = i;
		/* The field: this line and its continuation lines. */
		for (;;) {
			e = memchr(p + i, '\n', end - i);
			i = e != NULL ? (size_t)(e - p) + 1 : end;
			if (i >= end || (p[i] != ' ' && p[i] != '\t'))
				break;
		}
		colon = memchr(p + s, ':', i - s);
		if (colon == NULL || p[s] == ' ' || p[s] == '\t')
			continue;
		nl = (size_t)(colon - (p + s));
		while (
		    nl > 0 && (p[s + nl - 1] == ' ' || p[s + nl - 1] == '\t'))
			nl--;
		if (nl == 0 || nl >= sizeof(name))
			continue;
		memcpy(name, p + s, nl);
		name[nl] = '\0';
		v = colon + 1;
		vlen = (size_t)(p + i - v);
		if (strcasecmp(name, "content-type") == 0 && !have_ct) {
			have_ct = true;
			mp->m->flags |= mime_params_parse(v, vlen, true,
			    &f->ct);
		} else if (strcasecmp(name, "content-disposition") == 0 &&
		    !have_disp) {
			have_disp = true;
			mp->m->flags |= mime_params_parse(v, vlen, false,
			    &f->disp);
		} else if (strcasecmp(name, "content-transfer-encoding") == 0 &&
		    !have_cte) {
			char tmp[32];

			have_cte = true;
			while (vlen > 0 &&
			    (*v == ' ' || *v == '\t' || *v == '\n')) {
				v++;
				vlen--;
			}
			snprintf(tmp, sizeof(tmp), "%.*s",
			    (int)(vlen < 31 ? vlen : 31), v);
			f->cte = mime_cte_parse(tmp);
		} else if (mp->kind == ENT_TOP)
			top_field(mp, name, v, vlen);
		else if (mp->kind == ENT_ROOT &&
		    strcasecmp(name, "subject") == 0) {
			/* A forwarded message's subject is text too. */
			char *subj;

			fl = 0;
			subj = mime_decoded_string(v, vlen, &fl);
			mp->m->flags |= fl;
			if (subj != NULL)
				mime_text_body(&mp->text, subj, strlen(subj));
			mime_text_body_end(&mp->text);
			free(subj);
		}
	}
}

static void
frame_push_message(struct mime_parser *mp, long part)
{
	struct frame *f = &mp->frames[mp->nframes++];

	memset(f, 0, sizeof(*f));
	f->kind = FR_MESSAGE;
	f->part = part;
	hash_sha256_init(&f->h);
}

/* The header block hdr[0, end) is complete: read it, start the body. */
static void
header_done(struct mime_parser *mp, size_t end)
{
	struct fields f;
	const char *ctype;
	char *path;
	struct frame *fr;
	bool multipart, message;
	long part;

	header_fields(mp, end, &f);
	if (mp->kind == ENT_TOP)
		mp->top_seen = true;
	ctype = f.ct.value;
	if (ctype == NULL)
		ctype = mp->digest_child ? "message/rfc822" : "text/plain";
	multipart = strncmp(ctype, "multipart/", 10) == 0;
	message = (strcmp(ctype, "message/rfc822") == 0 ||
		      strcmp(ctype, "message/global") == 0) &&
	    f.cte == MIME_CTE_IDENTITY;
	if (multipart &&
	    (f.ct.boundary == NULL || strlen(f.ct.boundary) > BOUNDARY_MAX)) {
		mp->m->flags |= MIME_F_MISSING_BOUNDARY;
		multipart = false;
	}
	if ((multipart || message) && mp->nframes >= MIME_DEPTH_MAX) {
		mp->m->flags |= MIME_F_TOO_DEEP;
		multipart = message = false;
	}
	if (multipart) {
		fr = &mp->frames[mp->nframes];
		memset(fr, 0, sizeof(*fr));
		fr->kind = FR_MULTIPART;
		fr->boundary = f.ct.boundary;
		f.ct.boundary = NULL;
		fr->blen = strlen(fr->boundary);
		fr->digest = strcmp(ctype, "multipart/digest") == 0;
		fr->part = -1;
		switch (mp->kind) {
		case ENT_TOP:
			fr->prefix = xstrdup("");
			add_part(mp, "", ctype, &f.disp, &f.ct);
			break;
		case ENT_CHILD:
			fr->prefix = xstrdup(mp->path);
			add_part(mp, mp->path, ctype, &f.disp, &f.ct);
			break;
		default:
			fr->prefix = xstrdup(mp->path);
			break;
		}
		mp->nframes++;
		mp->st = E_SKIP; /* the preamble */
	} else if (message) {
		path = leaf_path(mp);
		part = add_part(mp, path, ctype, &f.disp, &f.ct);
		frame_push_message(mp, part);
		entity_begin(mp, ENT_ROOT, path, false);
	} else {
		path = leaf_path(mp);
		part = add_part(mp, path, ctype, &f.disp, &f.ct);
		free(path);
		leaf_begin(mp, part, f.cte,
		    strcmp(ctype, "text/plain") == 0 ||
			strcmp(ctype, "text/html") == 0,
		    strcmp(ctype, "text/html") == 0, f.ct.charset);
	}
	mime_params_release(&f.ct);
	mime_params_release(&f.disp);
}

/* Whether the header line in head[0, nhead) can start a field. */
static bool
is_field_line(const char *h, size_t n, size_t linelen)
{
	size_t i = 0;

	if (n > 0 && (h[0] == ' ' || h[0] == '\t'))
		return true; /* a continuation */
	while (i < n && (unsigned char)h[i] > 32 && h[i] != ':' &&
	    (unsigned char)h[i] < 127)
		i++;
	if (i == 0)
		return false;
	while (i < n && (h[i] == ' ' || h[i] == '\t'))
		i++;
	if (i < n)
		return h[i] == ':';
	/* A name longer than what was kept: give it the benefit. */
	return linelen > n;
}

/* --- lines ------------------------------------------------------------ */

/* Feeds bytes to the hashes of the message frames below index limit. */
static void
to_frames(struct mime_parser *mp, const char *p, size_t n, size_t limit)
{
	size_t i;

	for (i = 0; i < limit && i < mp->nframes; i++)
		if (mp->frames[i].kind == FR_MESSAGE) {
			hash_sha256_update(&mp->frames[i].h, p, n);
			mp->frames[i].size += n;
		}
}

static void
entity_data(struct mime_parser *mp, const char *p, size_t n)
{
	size_t k;

	switch (mp->st) {
	case E_HEADER:
		if (mp->nhead < LINEHEAD) {
			k = LINEHEAD - mp->nhead < n ? LINEHEAD - mp->nhead : n;
			memcpy(mp->head + mp->nhead, p, k);
			mp->nhead += k;
		}
		if (!mp->hdr_cut && !mime_strbuf_add(&mp->hdr, p, n)) {
			mp->hdr_cut = true;
			mp->m->flags |= MIME_F_HEADER_TRUNCATED;
		}
		break;
	case E_BODY:
		body_data(mp, p, n);
		break;
	case E_SKIP:
		break;
	}
}

/* The current line's content ended (its break is held in term). */
static void
entity_eol(struct mime_parser *mp)
{
	size_t start = mp->hdr_line;

	if (mp->st != E_HEADER)
		return;
	if (mp->linelen == 0) {
		/* The empty line: its break is the header's. */
		mp->term_to_entity = false;
		if (mp->hdr_cut) {
			/* Fields cut short: keep only whole lines. */
			start = mp->hdr_line;
		} else
			start = mp->hdr.len;
		header_done(mp, start);
		return;
	}
	if (mp->first_line && mp->kind == ENT_TOP && mp->nhead >= 5 &&
	    memcmp(mp->head, "From ", 5) == 0) {
		/* An mbox separator line. */
		mp->hdr.len = mp->hdr_line;
		if (mp->hdr.p != NULL)
			mp->hdr.p[mp->hdr.len] = '\0';
		mp->first_line = false;
		return;
	}
	mp->first_line = false;
	if (!mp->hdr_cut && !is_field_line(mp->head, mp->nhead, mp->linelen)) {
		/* No separator: this line starts the body. */
		size_t len = mp->hdr.len - start;
		char *line = xmalloc(len + 1);

		if (len > 0)
			memcpy(line, mp->hdr.p + start, len);
		mp->m->flags |= MIME_F_NO_HEADER;
		header_done(mp, start);
		entity_data(mp, line, len);
		free(line);
		return;
	}
	if (!mp->hdr_cut && !mime_strbuf_addc(&mp->hdr, '\n')) {
		mp->hdr_cut = true;
		mp->m->flags |= MIME_F_HEADER_TRUNCATED;
	}
	if (!mp->hdr_cut)
		mp->hdr_line = mp->hdr.len;
}

/* A new line that is no boundary starts: its predecessor's break is
 * content. */
static void
line_begin(struct mime_parser *mp)
{
	if (mp->nterm > 0) {
		to_frames(mp, mp->term, mp->nterm, mp->term_frames);
		if (mp->term_to_entity && mp->st == E_BODY)
			body_data(mp, mp->term, mp->nterm);
		mp->nterm = 0;
	}
	mp->nhead = 0;
	mp->linelen = 0;
	if (mp->st == E_HEADER && !mp->hdr_cut)
		mp->hdr_line = mp->hdr.len;
}

static void
line_data(struct mime_parser *mp, const char *p, size_t n)
{
	if (n == 0)
		return;
	to_frames(mp, p, n, mp->nframes);
	mp->linelen += n;
	entity_data(mp, p, n);
}

static void
line_end(struct mime_parser *mp, const char *term, size_t nterm)
{
	memcpy(mp->term, term, nterm);
	mp->nterm = nterm;
	mp->term_to_entity = true;
	/* Not the frames its line may open (a message/rfc822 part's). */
	mp->term_frames = mp->nframes;
	entity_eol(mp);
}

/* Ends the current entity and the frames above index k. */
static void
end_above(struct mime_parser *mp, size_t k)
{
	struct frame *f;

	if (mp->st == E_HEADER) {
		/*
		 * Ended by a boundary or the end: a header without a body,
		 * which RFC 5322 and RFC 2046 allow.
		 */
		header_done(mp, mp->hdr_cut ? mp->hdr_line : mp->hdr.len);
	}
	leaf_end(mp);
	while (mp->nframes > k) {
		f = &mp->frames[--mp->nframes];
		if (f->kind == FR_MULTIPART) {
			mp->m->flags |= MIME_F_MISSING_BOUNDARY;
			free(f->boundary);
			free(f->prefix);
		} else {
			if (f->part >= 0) {
				struct mime_part *pt = &mp->m->parts[f->part];

				pt->size = f->size;
				pt->has_sha256 = true;
				hash_sha256_final(&f->h, pt->sha256);
			}
			hash_sha256_release(&f->h);
		}
	}
	mp->st = E_SKIP;
}

/* The multipart frame whose boundary line p[0, n) is, or -1. */
static long
boundary_of(struct mime_parser *mp, const char *p, size_t n, bool *close_r)
{
	struct frame *f;
	size_t i, k;

	if (n < 2 || p[0] != '-' || p[1] != '-')
		return -1;
	for (k = mp->nframes; k-- > 0;) {
		f = &mp->frames[k];
		if (f->kind != FR_MULTIPART || n < 2 + f->blen ||
		    memcmp(p + 2, f->boundary, f->blen) != 0)
			continue;
		i = 2 + f->blen;
		*close_r = i + 1 < n && p[i] == '-' && p[i + 1] == '-';
		if (*close_r)
			i += 2;
		while (i < n && (p[i] == ' ' || p[i] == '\t'))
			i++;
		if (i == n)
			return (long)k;
	}
	return -1;
}

/* A line of up to LINE_CAP bytes, whole, with its break. */
static void
whole_line(struct mime_parser *mp, const char *p, size_t n, const char *term,
    size_t nterm)
{
	struct frame *f;
	bool close = false;
	long k;

	k = boundary_of(mp, p, n, &close);
	if (k < 0) {
		line_begin(mp);
		line_data(mp, p, n);
		line_end(mp, term, nterm);
		return;
	}
	/* The break before the boundary is the boundary's. */
	to_frames(mp, mp->term, mp->nterm,
	    mp->term_frames < (size_t)k ? mp->term_frames : (size_t)k);
	mp->nterm = 0;
	end_above(mp, (size_t)k + 1);
	to_frames(mp, p, n, (size_t)k);
	memcpy(mp->term, term, nterm);
	mp->nterm = nterm;
	mp->term_to_entity = false;
	mp->term_frames = (size_t)k;
	f = &mp->frames[k];
	if (close) {
		free(f->boundary);
		free(f->prefix);
		mp->nframes = (size_t)k;
		mp->st = E_SKIP; /* the epilogue */
		return;
	}
	f->nchild++;
	entity_begin(mp, ENT_CHILD, join_path(f->prefix, f->nchild), f->digest);
}

/* Content of a line too long to be a boundary. */
static void
long_data(struct mime_parser *mp, const char *p, size_t n)
{
	line_data(mp, p, n);
}

/*
 * Where the first line of p[0, n) that may be a boundary starts: one
 * starting with "--", or that may yet (a lone '-' at the end); n if none.
 * p starts a line.
 */
static size_t
boundary_candidate(const char *p, size_t n)
{
	const char *d, *e = p + n, *q = p;

	if (n > 0 && p[0] == '-' && (n == 1 || p[1] == '-'))
		return 0;
	while (q < e && (d = memchr(q, '-', (size_t)(e - q))) != NULL) {
		if (d > p && d[-1] == '\n' && (d + 1 == e || d[1] == '-'))
			return (size_t)(d - p);
		q = d + 1;
	}
	return n;
}

/*
 * The whole lines at the start of p[0, n) that cannot be boundaries, in a
 * body, preamble or epilogue, at once: what whole_line() would do to each
 * of them, with their contents (and the breaks between them) passed on in
 * one piece.  Returns the bytes taken.
 */
static size_t
body_run(struct mime_parser *mp, const char *p, size_t n)
{
	const char *lf;
	size_t end, last, data;

	end = boundary_candidate(p, n);
	if (end == 0)
		return 0;
	/* Whole lines only. */
	lf = memrchr(p, '\n', end);
	if (lf == NULL)
		return 0;
	end = (size_t)(lf - p) + 1;
	/* The start of the last line, whose break is held back. */
	last = end - 1;
	data = last > 0 && p[last - 1] == '\r' ? last - 1 : last;
	line_begin(mp);
	line_data(mp, p, data);
	lf = data > 0 ? memrchr(p, '\n', data) : NULL;
	mp->linelen = lf != NULL ? data - (size_t)(lf - p) - 1 : data;
	if (data < last)
		line_end(mp, "\r\n", 2);
	else
		line_end(mp, "\n", 1);
	return end;
}

struct mime_parser *
mime_parser_new(void)
{
	struct mime_parser *mp = xcalloc(1, sizeof(*mp));

	mp->m = xcalloc(1, sizeof(*mp->m));
	mp->m->parser_version = MIME_PARSER_VERSION;
	mime_strbuf_init(&mp->hdr, MIME_HEADER_MAX);
	mime_text_init(&mp->text);
	hash_sha256_init(&mp->h);
	mp->part = -1;
	entity_begin(mp, ENT_TOP, NULL, false);
	return mp;
}

void
mime_parser_feed(struct mime_parser *mp, const void *vp, size_t n)
{
	const char *p = vp, *lf;
	size_t k, take;

	if (mp->finished || n == 0)
		return;
	while (n > 0) {
		if (!mp->longline && mp->nline == 0 && mp->st != E_HEADER) {
			k = body_run(mp, p, n);
			p += k;
			n -= k;
			if (n == 0)
				break;
		}
		lf = memchr(p, '\n', n);
		k = lf != NULL ? (size_t)(lf - p) : n;
		if (mp->longline) {
			if (mp->held_cr) {
				mp->held_cr = false;
				if (k == 0 && lf != NULL) {
					mp->longline = false;
					line_end(mp, "\r\n", 2);
					p++;
					n--;
					continue;
				}
				long_data(mp, "\r", 1);
			}
			if (lf != NULL) {
				if (k > 0 && p[k - 1] == '\r') {
					long_data(mp, p, k - 1);
					line_end(mp, "\r\n", 2);
				} else {
					long_data(mp, p, k);
					line_end(mp, "\n", 1);
				}
				mp->longline = false;
				p += k + 1;
				n -= k + 1;
			} else {
				if (k > 0 && p[k - 1] == '\r') {
					long_data(mp, p, k - 1);
					mp->held_cr = true;
				} else
					long_data(mp, p, k);
				p += k;
				n -= k;
			}
			continue;
		}
		if (mp->nline + k <= LINE_CAP) {
			memcpy(mp->line + mp->nline, p, k);
			mp->nline += k;
			if (lf == NULL) {
				p += k;
				n -= k;
				continue;
			}
			p += k + 1;
			n -= k + 1;
			k = mp->nline;
			mp->nline = 0;
			if (k > 0 && mp->line[k - 1] == '\r')
				whole_line(mp, mp->line, k - 1, "\r\n", 2);
			else
				whole_line(mp, mp->line, k, "\n", 1);
			continue;
		}
		/* Too long for a boundary: it streams through. */
		take = LINE_CAP - mp->nline;
		memcpy(mp->line + mp->nline, p, take);
		p += take;
		n -= take;
		mp->longline = true;
		line_begin(mp);
		if (mp->line[LINE_CAP - 1] == '\r') {
			long_data(mp, mp->line, LINE_CAP - 1);
			mp->held_cr = true;
		} else
			long_data(mp, mp->line, LINE_CAP);
		mp->nline = 0;
	}
}

struct mime_meta *
mime_parser_finish(struct mime_parser *mp)
{
	struct mime_meta *m = mp->m;
	bool cut;

	if (mp->finished)
		return NULL;
	mp->finished = true;
	/* A last line without a break. */
	if (mp->longline) {
		if (mp->held_cr)
			long_data(mp, "\r", 1);
		mp->held_cr = false;
		line_end(mp, "", 0);
	} else if (mp->nline > 0) {
		whole_line(mp, mp->line, mp->nline, "", 0);
		mp->nline = 0;
	}
	/* The last break belongs to the content. */
	to_frames(mp, mp->term, mp->nterm, mp->term_frames);
	if (mp->term_to_entity && mp->st == E_BODY)
		body_data(mp, mp->term, mp->nterm);
	mp->nterm = 0;
	end_above(mp, 0);
	m->text = mime_text_finish(&mp->text, &m->text_len, &cut);
	if (cut)
		m->flags |= MIME_F_TEXT_TRUNCATED;
	mp->m = NULL;
	return m;
}

void
mime_parser_free(struct mime_parser **mpp)
{
	struct mime_parser *mp = *mpp;
	size_t i;

	if (mp == NULL)
		return;
	for (i = 0; i < mp->nframes; i++) {
		if (mp->frames[i].kind == FR_MULTIPART) {
			free(mp->frames[i].boundary);
			free(mp->frames[i].prefix);
		} else
			hash_sha256_release(&mp->frames[i].h);
	}
	mime_charset_free(&mp->cs);
	hash_sha256_release(&mp->h);
	mime_strbuf_release(&mp->hdr);
	mime_text_release(&mp->text);
	free(mp->path);
	mime_meta_free(&mp->m);
	free(mp);
	*mpp = NULL;
}
