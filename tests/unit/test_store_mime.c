/*
 * store/mime: the indexer's parser against messages shaped like real mail.
 * Each message is parsed whole, then at every split into two pieces (every
 * split for small messages, a spread of splits for large ones) and one
 * byte at a time, and every result must equal the whole one field by
 * field.  Decoded part digests are checked against SHA-256 of the decoded
 * bytes the test knows.
 */
#include <malloc.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingestd/base/xmalloc.h"
#include "store/hash.h"
#include "store/mime/date.h"
#include "store/mime/meta.h"
#include "store/mime/parser.h"
#include "store/mime/text.h"
#include "store/mime/utf8.h"
#include "tests/unit/test.h"

/* --- helpers ------------------------------------------------------------ */

/* The message with each "\n" as "\r\n" (the caller frees). */
static char *
crlf(const char *s, size_t *len_r)
{
	size_t n = strlen(s), i, o = 0;
	char *out = xmalloc(2 * n + 1);

	for (i = 0; i < n; i++) {
		if (s[i] == '\n')
			out[o++] = '\r';
		out[o++] = s[i];
	}
	out[o] = '\0';
	*len_r = o;
	return out;
}

static struct mime_meta *
parse_pieces(const char *msg, size_t len, size_t split, bool bytewise)
{
	struct mime_parser *mp = mime_parser_new();
	struct mime_meta *m;
	size_t i;

	if (bytewise) {
		for (i = 0; i < len; i++)
			mime_parser_feed(mp, msg + i, 1);
	} else {
		mime_parser_feed(mp, msg, split);
		mime_parser_feed(mp, msg + split, len - split);
	}
	m = mime_parser_finish(mp);
	mime_parser_free(&mp);
	ASSERT_TRUE(m != NULL);
	return m;
}

static struct mime_meta *
parse(const char *msg, size_t len)
{
	return parse_pieces(msg, len, len, false);
}

static bool
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* Which field of two mime_meta differs, or NULL if none. */
static const char *
meta_diff(const struct mime_meta *a, const struct mime_meta *b)
{
	size_t i;

	if (a->parser_version != b->parser_version)
		return "parser_version";
	if (a->flags != b->flags)
		return "flags";
	if (!str_eq(a->date_raw, b->date_raw) || a->has_date != b->has_date ||
	    a->date != b->date)
		return "date";
	if (!str_eq(a->message_id, b->message_id))
		return "message_id";
	if (!str_eq(a->in_reply_to, b->in_reply_to))
		return "in_reply_to";
	if (!str_eq(a->references, b->references))
		return "references";
	if (!str_eq(a->subject, b->subject) ||
	    !str_eq(a->subject_raw, b->subject_raw))
		return "subject";
	if (!str_eq(a->list_id, b->list_id))
		return "list_id";
	if (!str_eq(a->auto_submitted, b->auto_submitted))
		return "auto_submitted";
	if (a->n_addresses != b->n_addresses)
		return "n_addresses";
	for (i = 0; i < a->n_addresses; i++) {
		if (a->addresses[i].role != b->addresses[i].role ||
		    !str_eq(a->addresses[i].address, b->addresses[i].address) ||
		    !str_eq(a->addresses[i].domain, b->addresses[i].domain) ||
		    !str_eq(a->addresses[i].name, b->addresses[i].name))
			return "address";
	}
	if (a->n_parts != b->n_parts)
		return "n_parts";
	for (i = 0; i < a->n_parts; i++) {
		const struct mime_part *p = &a->parts[i], *q = &b->parts[i];

		if (!str_eq(p->path, q->path) ||
		    !str_eq(p->content_type, q->content_type) ||
		    !str_eq(p->disposition, q->disposition) ||
		    !str_eq(p->filename, q->filename) || p->size != q->size ||
		    p->has_sha256 != q->has_sha256 ||
		    p->attachment != q->attachment ||
		    memcmp(p->sha256, q->sha256, 32) != 0)
			return "part";
	}
	if (a->text_len != b->text_len || strlen(a->text) != a->text_len ||
	    memcmp(a->text, b->text, a->text_len) != 0)
		return "text";
	return NULL;
}

/* Every string valid UTF-8 without NUL, as the contract says. */
static void
check_strings(const struct mime_meta *m)
{
	const char *s[] = { m->date_raw, m->message_id, m->in_reply_to,
		m->references, m->subject, m->subject_raw, m->list_id,
		m->auto_submitted, m->text };
	struct mime_strbuf sb;
	size_t i;

	for (i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
		if (s[i] == NULL)
			continue;
		mime_strbuf_init(&sb, 4 * strlen(s[i]) + 8);
		ASSERT_TRUE(!mime_utf8_sanitize(s[i], strlen(s[i]), &sb));
		mime_strbuf_release(&sb);
	}
	for (i = 0; i < m->n_addresses; i++)
		ASSERT_TRUE(m->addresses[i].address[0] != '\0');
}

/*
 * The parse of msg whole, checked to equal its parse at every split (or
 * at every stride-th split, for large messages) and one byte at a time.
 */
static struct mime_meta *
parse_all_ways(const char *msg, size_t len)
{
	struct mime_meta *whole = parse(msg, len), *m;
	size_t split, stride = len <= 16384 ? 1 : len / 509 + 1;
	const char *diff;

	check_strings(whole);
	for (split = 0; split <= len; split += stride) {
		m = parse_pieces(msg, len, split, false);
		if ((diff = meta_diff(whole, m)) != NULL)
			TEST_FAIL_("split at %zu of %zu: %s differs", split,
			    len, diff);
		mime_meta_free(&m);
	}
	m = parse_pieces(msg, len, 0, true);
	if ((diff = meta_diff(whole, m)) != NULL)
		TEST_FAIL_("one byte at a time: %s differs", diff);
	mime_meta_free(&m);
	return whole;
}

static const struct mime_address *
addr(const struct mime_meta *m, size_t i)
{
	ASSERT_TRUE(i < m->n_addresses);
	return &m->addresses[i];
}

static void
check_addr(const struct mime_meta *m, size_t i, enum mime_role role,
    const char *address, const char *domain, const char *name)
{
	const struct mime_address *a = addr(m, i);

	ASSERT_EQ(a->role, role);
	ASSERT_STREQ(a->address, address);
	ASSERT_STREQ(a->domain, domain);
	if (name == NULL)
		ASSERT_TRUE(a->name == NULL);
	else
		ASSERT_STREQ(a->name, name);
}

static void
check_part(const struct mime_meta *m, size_t i, const char *path,
    const char *ctype, const char *disp, const char *filename, bool attachment)
{
	const struct mime_part *p;

	ASSERT_TRUE(i < m->n_parts);
	p = &m->parts[i];
	ASSERT_STREQ(p->path, path);
	ASSERT_STREQ(p->content_type, ctype);
	if (disp == NULL)
		ASSERT_TRUE(p->disposition == NULL);
	else
		ASSERT_STREQ(p->disposition, disp);
	if (filename == NULL)
		ASSERT_TRUE(p->filename == NULL);
	else
		ASSERT_STREQ(p->filename, filename);
	ASSERT_EQ(p->attachment, attachment);
}

/* Part i is a container: no content of its own. */
static void
check_container(const struct mime_meta *m, size_t i)
{
	ASSERT_TRUE(i < m->n_parts);
	ASSERT_TRUE(!m->parts[i].has_sha256);
	ASSERT_EQ(m->parts[i].size, 0);
}

/* Part i decoded to exactly data[0, n). */
static void
check_content(const struct mime_meta *m, size_t i, const void *data, size_t n)
{
	unsigned char want[32];

	ASSERT_TRUE(i < m->n_parts);
	ASSERT_TRUE(m->parts[i].has_sha256);
	ASSERT_EQ(m->parts[i].size, n);
	hash_sha256(data, n, want);
	ASSERT_MEMEQ(m->parts[i].sha256, want, 32);
}

static bool
has_text(const struct mime_meta *m, const char *s)
{
	return strstr(m->text, s) != NULL;
}

#define TEXT_HAS(m, s)                                                         \
	do {                                                                   \
		if (!has_text((m), (s)))                                       \
			TEST_FAIL_("text lacks \"%s\": \"%s\"", (s),           \
			    (m)->text);                                        \
	} while (0)
#define TEXT_LACKS(m, s)                                                       \
	do {                                                                   \
		if (has_text((m), (s)))                                        \
			TEST_FAIL_("text has \"%s\": \"%s\"", (s), (m)->text); \
	} while (0)

/* --- messages ------------------------------------------------------------ */

static void
test_plain(void)
{
	const char *src = "Return-Path: <bounce+x@Lists.Example.com>\n"
			  "Delivered-To: archive@example.org\n"
			  "X-Original-To: legal@example.org\n"
			  "From: \"Alice Example\" <Alice@Example.COM>\n"
			  "To: bob@example.org, \"Carol\" <carol@example.net>\n"
			  "Cc: Dave <dave@sub.example.org>\n"
			  "Subject: Quarterly report\n"
			  "Date: Mon, 4 Mar 2024 10:15:30 +0100\n"
			  "Message-ID: <abc123@example.com>\n"
			  "In-Reply-To: <prev@example.com>\n"
			  "References: <first@example.com>\n"
			  " <prev@example.com>\n"
			  "List-Id: Finance team <finance.example.com>\n"
			  "Auto-Submitted: Auto-Generated (nightly)\n"
			  "Content-Type: text/plain; charset=us-ascii\n"
			  "\n"
			  "Hello Bob,\n"
			  "the numbers are in.\n";
	const char *body = "Hello Bob,\r\nthe numbers are in.\r\n";
	struct mime_meta *m;
	size_t len;
	char *msg = crlf(src, &len);

	m = parse_all_ways(msg, len);
	ASSERT_EQ(m->parser_version, MIME_PARSER_VERSION);
	ASSERT_EQ(m->flags, 0);
	ASSERT_STREQ(m->date_raw, "Mon, 4 Mar 2024 10:15:30 +0100");
	ASSERT_TRUE(m->has_date);
	ASSERT_EQ(m->date, 1709543730);
	ASSERT_STREQ(m->message_id, "abc123@example.com");
	ASSERT_STREQ(m->in_reply_to, "<prev@example.com>");
	ASSERT_STREQ(m->references, "<first@example.com> <prev@example.com>");
	ASSERT_STREQ(m->subject, "Quarterly report");
	ASSERT_STREQ(m->subject_raw, "Quarterly report");
	ASSERT_STREQ(m->list_id, "finance.example.com");
	ASSERT_STREQ(m->auto_submitted, "auto-generated");
	ASSERT_EQ(m->n_addresses, 7);
	check_addr(m, 0, MIME_ROLE_RETURN_PATH, "bounce+x@lists.example.com",
	    "lists.example.com", NULL);
	check_addr(m, 1, MIME_ROLE_DELIVERED_TO, "archive@example.org",
	    "example.org", NULL);
	check_addr(m, 2, MIME_ROLE_X_ORIGINAL_TO, "legal@example.org",
	    "example.org", NULL);
	check_addr(m, 3, MIME_ROLE_FROM, "alice@example.com", "example.com",
	    "Alice Example");
	check_addr(m, 4, MIME_ROLE_TO, "bob@example.org", "example.org", NULL);
	check_addr(m, 5, MIME_ROLE_TO, "carol@example.net", "example.net",
	    "Carol");
	check_addr(m, 6, MIME_ROLE_CC, "dave@sub.example.org",
	    "sub.example.org", "Dave");
	ASSERT_EQ(m->n_parts, 1);
	check_part(m, 0, "1", "text/plain", NULL, NULL, false);
	check_content(m, 0, body, strlen(body));
	/* Header text in the header's order, then the body's. */
	ASSERT_STREQ(m->text,
	    "bounce+x@lists.example.com\narchive@example.org\n"
	    "legal@example.org\nAlice Example\nalice@example.com\n"
	    "bob@example.org\nCarol\ncarol@example.net\nDave\n"
	    "dave@sub.example.org\nQuarterly report\nHello Bob,\n"
	    "the numbers are in.");
	ASSERT_EQ(m->text_len, strlen(m->text));
	mime_meta_free(&m);
	ASSERT_TRUE(m == NULL);
	free(msg);
}

static void
test_alternative_html(void)
{
	const char
	    *src = "From: news@example.com\n"
		   "Subject: =?ISO-8859-1?Q?Caf=E9?= news\n"
		   "MIME-Version: 1.0\n"
		   "Content-Type: multipart/alternative;\n"
		   "\tboundary=\"alt-1\"\n"
		   "\n"
		   "This is a multi-part message in MIME format.\n"
		   "--alt-1\n"
		   "Content-Type: text/plain; charset=utf-8\n"
		   "\n"
		   "Plain version\n"
		   "--alt-1 \t\n"
		   "Content-Type: text/html; charset=\"utf-8\"\n"
		   "Content-Transfer-Encoding: 7bit\n"
		   "\n"
		   "<html><head><style>p { color: red }</style>\n"
		   "<script type=\"text/javascript\">var x = \"<b>hidden</b>\";"
		   "</script></head>\n"
		   "<body><p>Fish&amp;chips &lt;3 &quot;now&quot;&nbsp;only"
		   "&#33;&#x21;</p><div>second<br>line</div>"
		   "<!-- a comment -->tail</body></html>\n"
		   "--alt-1--\n"
		   "epilogue text is ignored\n";
	struct mime_meta *m;
	size_t len;
	char *msg = crlf(src, &len);

	m = parse_all_ways(msg, len);
	ASSERT_EQ(m->flags, 0);
	ASSERT_STREQ(m->subject, "Caf\xC3\xA9 news");
	ASSERT_STREQ(m->subject_raw, "=?ISO-8859-1?Q?Caf=E9?= news");
	ASSERT_EQ(m->n_parts, 3);
	check_part(m, 0, "", "multipart/alternative", NULL, NULL, false);
	check_part(m, 1, "1", "text/plain", NULL, NULL, false);
	check_content(m, 1, "Plain version", 13);
	check_part(m, 2, "2", "text/html", NULL, NULL, false);
	TEXT_HAS(m, "Plain version");
	TEXT_HAS(m, "Fish&chips <3 \"now\" only!!\nsecond\nline\ntail");
	TEXT_LACKS(m, "hidden");
	TEXT_LACKS(m, "color");
	TEXT_LACKS(m, "comment");
	TEXT_LACKS(m, "multi-part message");
	TEXT_LACKS(m, "epilogue");
	mime_meta_free(&m);
	free(msg);
}

/* A PDF-ish binary attachment and its base64 text, 76 columns. */
static void
make_pdf(unsigned char *pdf, size_t n, char *b64)
{
	static const char al[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, o = 0, col = 0;
	unsigned int v;

	memcpy(pdf, "%PDF-1.4\n%\xE2\xE3\xCF\xD3\n", 15);
	for (i = 15; i < n; i++)
		pdf[i] = (unsigned char)(i * 7 + (i >> 3));
	for (i = 0; i < n; i += 3) {
		v = (unsigned int)pdf[i] << 16;
		if (i + 1 < n)
			v |= (unsigned int)pdf[i + 1] << 8;
		if (i + 2 < n)
			v |= pdf[i + 2];
		b64[o++] = al[v >> 18 & 63];
		b64[o++] = al[v >> 12 & 63];
		b64[o++] = i + 1 < n ? al[v >> 6 & 63] : '=';
		b64[o++] = i + 2 < n ? al[v & 63] : '=';
		if ((col += 4) == 76) {
			b64[o++] = '\n';
			col = 0;
		}
	}
	b64[o++] = '\n';
	b64[o] = '\0';
}

static void
test_mixed_pdf(void)
{
	unsigned char pdf[1000];
	char b64[1500], *src, *msg;
	struct mime_meta *m;
	size_t len;
	const char *qp = "Gr\xC3\xBC\xC3\x9F"
			 "e, see the contract. Soft "
			 "break joined.";

	make_pdf(pdf, sizeof(pdf), b64);
	src = xasprintf(
	    "From: Legal <legal@example.com>\n"
	    "To: supplier@example.net\n"
	    "Subject: contract\n"
	    "Content-Type: multipart/mixed; boundary=\"=_mixed 001\"\n"
	    "\n"
	    "--=_mixed 001\n"
	    "Content-Type: text/plain; charset=utf-8\n"
	    "Content-Transfer-Encoding: quoted-printable\n"
	    "\n"
	    "Gr=C3=BC=C3=9Fe, see the contract.=\n"
	    " Soft break joined.\n"
	    "--=_mixed 001\n"
	    "Content-Type: application/pdf; name=\"contract.pdf\"\n"
	    "Content-Disposition: attachment; filename=\"contract.pdf\"\n"
	    "Content-Transfer-Encoding: base64\n"
	    "\n"
	    "%s"
	    "--=_mixed 001--\n",
	    b64);
	msg = crlf(src, &len);
	m = parse_all_ways(msg, len);
	ASSERT_EQ(m->flags, 0);
	ASSERT_EQ(m->n_parts, 3);
	check_part(m, 0, "", "multipart/mixed", NULL, NULL, false);
	check_part(m, 1, "1", "text/plain", NULL, NULL, false);
	check_content(m, 1, qp, strlen(qp));
	check_part(m, 2, "2", "application/pdf", "attachment", "contract.pdf",
	    true);
	check_content(m, 2, pdf, sizeof(pdf));
	TEXT_HAS(m,
	    "Gr\xC3\xBC\xC3\x9F"
	    "e, see the contract. Soft break");
	TEXT_HAS(m, "contract.pdf");
	TEXT_LACKS(m, "PDF");
	mime_meta_free(&m);
	free(msg);
	free(src);
}

static void
test_nested_related(void)
{
	const char *src = "From: a@example.com\n"
			  "Content-Type: multipart/mixed; boundary=outer\n"
			  "\n"
			  "--outer\n"
			  "Content-Type: multipart/related; boundary=\"rel\"; "
			  "type=\"multipart/alternative\"\n"
			  "\n"
			  "--rel\n"
			  "Content-Type: multipart/alternative; boundary=alt\n"
			  "\n"
			  "--alt\n"
			  "Content-Type: text/plain\n"
			  "\n"
			  "see picture\n"
			  "--alt\n"
			  "Content-Type: text/html\n"
			  "\n"
			  "<p>see <img src=\"cid:logo\"></p>\n"
			  "--alt--\n"
			  "\n"
			  "--rel\n"
			  "Content-Type: image/png\n"
			  "Content-ID: <logo>\n"
			  "Content-Disposition: inline\n"
			  "Content-Transfer-Encoding: base64\n"
			  "\n"
			  "iVBORw0KGgo=\n"
			  "--rel--\n"
			  "--outer\n"
			  "Content-Type: application/zip\n"
			  "Content-Disposition: ATTACHMENT; filename=data.zip\n"
			  "Content-Transfer-Encoding: base64\n"
			  "\n"
			  "UEsDBA==\n"
			  "--outer--\n";
	struct mime_meta *m;
	size_t len;
	char *msg = crlf(src, &len);

	m = parse_all_ways(msg, len);
	ASSERT_EQ(m->flags, 0);
	ASSERT_EQ(m->n_parts, 7);
	check_part(m, 0, "", "multipart/mixed", NULL, NULL, false);
	check_part(m, 1, "1", "multipart/related", NULL, NULL, false);
	check_part(m, 2, "1.1", "multipart/alternative", NULL, NULL, false);
	check_container(m, 0);
	check_container(m, 1);
	check_container(m, 2);
	check_part(m, 3, "1.1.1", "text/plain", NULL, NULL, false);
	check_content(m, 3, "see picture", 11);
	check_part(m, 4, "1.1.2", "text/html", NULL, NULL, false);
	check_part(m, 5, "1.2", "image/png", "inline", NULL, false);
	check_content(m, 5, "\x89PNG\r\n\x1a\n", 8);
	check_part(m, 6, "2", "application/zip", "attachment", "data.zip",
	    true);
	check_content(m, 6, "PK\x03\x04", 4);
	TEXT_HAS(m, "see picture");
	TEXT_HAS(m, "data.zip");
	mime_meta_free(&m);
	free(msg);
}

static void
test_forward_rfc822(void)
{
	const char *inner_src =
	    "From: Original Sender <orig@example.org>\n"
	    "To: alice@example.com\n"
	    "Subject: the original\n"
	    "Content-Type: multipart/mixed; boundary=inner\n"
	    "\n"
	    "--inner\n"
	    "Content-Type: text/plain\n"
	    "\n"
	    "inner body words\n"
	    "--inner\n"
	    "Content-Type: application/octet-stream; name=inner.bin\n"
	    "\n"
	    "xyz\n"
	    "--inner--\n";
	const char *plain_src = "From: third@example.org\n"
				"Subject: plain one\n"
				"\n"
				"plain inner\n";
	char *inner, *plain, *src, *msg;
	size_t ilen, plen, len;
	struct mime_meta *m;

	inner = crlf(inner_src, &ilen);
	plain = crlf(plain_src, &plen);
	src = xasprintf("From: Alice <alice@example.com>\n"
			"To: bob@example.org\n"
			"Subject: Fwd: the original\n"
			"Content-Type: multipart/mixed; boundary=fwd\n"
			"\n"
			"--fwd\n"
			"Content-Type: text/plain\n"
			"\n"
			"see below\n"
			"--fwd\n"
			"Content-Type: message/rfc822\n"
			"Content-Disposition: inline\n"
			"\n");
	{
		char *head, *mid, *tail;
		size_t hl, ml, tl;

		head = crlf(src, &hl);
		mid = crlf("\n--fwd\nContent-Type: message/rfc822\n\n", &ml);
		tail = crlf("\n--fwd--\n", &tl);
		len = hl + ilen + ml + plen + tl;
		msg = xmalloc(len + 1);
		memcpy(msg, head, hl);
		memcpy(msg + hl, inner, ilen);
		memcpy(msg + hl + ilen, mid, ml);
		memcpy(msg + hl + ilen + ml, plain, plen);
		memcpy(msg + hl + ilen + ml + plen, tail, tl);
		free(head);
		free(mid);
		free(tail);
	}
	m = parse_all_ways(msg, len);
	ASSERT_EQ(m->flags, 0);
	ASSERT_STREQ(m->subject, "Fwd: the original");
	/* The top message's fields only from the top header. */
	ASSERT_EQ(m->n_addresses, 2);
	check_addr(m, 0, MIME_ROLE_FROM, "alice@example.com", "example.com",
	    "Alice");
	ASSERT_EQ(m->n_parts, 7);
	check_part(m, 0, "", "multipart/mixed", NULL, NULL, false);
	check_part(m, 1, "1", "text/plain", NULL, NULL, false);
	check_part(m, 2, "2", "message/rfc822", "inline", NULL, false);
	/* The forwarded message's bytes, without the break before --fwd. */
	check_content(m, 2, inner, ilen);
	check_part(m, 3, "2.1", "text/plain", NULL, NULL, false);
	check_content(m, 3, "inner body words", 16);
	check_part(m, 4, "2.2", "application/octet-stream", NULL, "inner.bin",
	    true);
	check_content(m, 4, "xyz", 3);
	check_part(m, 5, "3", "message/rfc822", NULL, NULL, false);
	check_content(m, 5, plain, plen);
	check_part(m, 6, "3.1", "text/plain", NULL, NULL, false);
	check_content(m, 6, "plain inner\r\n", 13);
	TEXT_HAS(m, "inner body words");
	TEXT_HAS(m, "the original");
	TEXT_HAS(m, "plain inner");
	TEXT_LACKS(m, "orig@example.org");
	mime_meta_free(&m);
	free(msg);
	free(src);
	free(inner);
	free(plain);
}

/*
 * A digest's parts are messages unless they say otherwise; a message
 * encoded in base64 is not looked into.
 */
static void
test_digest_and_encoded_message(void)
{
	const char *src = "Subject: digest\n"
			  "Content-Type: multipart/digest; boundary=d\n"
			  "\n"
			  "--d\n"
			  "\n"
			  "Subject: first\n"
			  "\n"
			  "one\n"
			  "--d\n"
			  "Content-Type: message/rfc822\n"
			  "Content-Transfer-Encoding: base64\n"
			  "\n"
			  "U3ViamVjdDogaGlkZGVuDQoNCnR3bw==\n"
			  "--d\n"
			  "Content-Type: text/plain\n"
			  "\n"
			  "three\n"
			  "--d--\n";
	const char *hidden = "Subject: hidden\r\n\r\ntwo";
	struct mime_meta *m;
	size_t len;
	char *msg = crlf(src, &len);

	m = parse_all_ways(msg, len);
	ASSERT_EQ(m->flags, 0);
	ASSERT_EQ(m->n_parts, 5);
	check_part(m, 0, "", "multipart/digest", NULL, NULL, false);
	check_part(m, 1, "1", "message/rfc822", NULL, NULL, false);
	check_content(m, 1, "Subject: first\r\n\r\none", 21);
	check_part(m, 2, "1.1", "text/plain", NULL, NULL, false);
	check_content(m, 2, "one", 3);
	check_part(m, 3, "2", "message/rfc822", NULL, NULL, false);
	check_content(m, 3, hidden, strlen(hidden));
	check_part(m, 4, "3", "text/plain", NULL, NULL, false);
	TEXT_HAS(m, "first");
	TEXT_LACKS(m, "hidden");
	mime_meta_free(&m);
	free(msg);
}

static void
test_filenames(void)
{
	const char
	    *src = "From: x@example.com\n"
		   "Content-Type: multipart/mixed; boundary=b\n"
		   "\n"
		   "--b\n"
		   "Content-Type: application/pdf\n"
		   "Content-Disposition: attachment;\n"
		   " filename*0*=utf-8''%E2%82%AC%20rates;\n"
		   " filename*1*=%20%C3%A9t%C3%A9.pdf\n"
		   "\n"
		   "a\n"
		   "--b\n"
		   "Content-Type: text/plain; name*=iso-8859-1'fr'caf%E9.txt\n"
		   "\n"
		   "b\n"
		   "--b\n"
		   "Content-Type: application/octet-stream;\n"
		   " name=\"=?UTF-8?Q?r=C3=A9sum=C3=A9?= =?UTF-8?Q?.docx?=\"\n"
		   "\n"
		   "c\n"
		   "--b\n"
		   "Content-Type: application/pdf\n"
		   "Content-Disposition: attachment; "
		   "filename=\"=?utf-8?B?5aWR57SE5pu4LnBkZg==?=\"\n"
		   "\n"
		   "d\n"
		   "--b\n"
		   "Content-Type: application/octet-stream\n"
		   "Content-Disposition: attachment; filename*0=\"long \";\n"
		   "  filename*2=\"end.txt\"; filename*1=\"middle \"\n"
		   "\n"
		   "e\n"
		   "--b\n"
		   "Content-Type: image/jpeg; name=\"=?utf-8?B?5pel5pys?="
		   "=?utf-8?B?6Kqe?=.jpg\"\n"
		   "Content-Disposition: inline\n"
		   "\n"
		   "f\n"
		   "--b--\n";
	struct mime_meta *m;
	size_t len;
	char *msg = crlf(src, &len);

	m = parse_all_ways(msg, len);
	ASSERT_EQ(m->flags, 0);
	ASSERT_EQ(m->n_parts, 7);
	check_part(m, 1, "1", "application/pdf", "attachment",
	    "\xE2\x82\xAC rates \xC3\xA9t\xC3\xA9.pdf", true);
	check_part(m, 2, "2", "text/plain", NULL, "caf\xC3\xA9.txt", true);
	check_part(m, 3, "3", "application/octet-stream", NULL,
	    "r\xC3\xA9sum\xC3\xA9.docx", true);
	check_part(m, 4, "4", "application/pdf", "attachment",
	    "\xE5\xA5\x91\xE7\xB4\x84\xE6\x9B\xB8.pdf", true);
	check_part(m, 5, "5", "application/octet-stream", "attachment",
	    "long middle end.txt", true);
	check_part(m, 6, "6", "image/jpeg", "inline",
	    "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E.jpg", true);
	TEXT_HAS(m, "caf\xC3\xA9.txt");
	TEXT_HAS(m, "\xE5\xA5\x91\xE7\xB4\x84\xE6\x9B\xB8.pdf");
	mime_meta_free(&m);
	free(msg);
}

static void
test_missing_boundaries(void)
{
	const char *unclosed = "Content-Type: multipart/mixed; boundary=\"b\"\n"
			       "\n"
			       "--b\n"
			       "\n"
			       "one\n"
			       "--b\n"
			       "Content-Type: text/plain\n"
			       "\n"
			       "two\n"
			       "last line\n";
	const char *noparam = "Content-Type: multipart/mixed\n"
			      "\n"
			      "--b\n"
			      "\n"
			      "x\n";
	const char *prefix = "Content-Type: multipart/mixed; boundary=\"b\"\n"
			     "\n"
			     "--b\n"
			     "\n"
			     "--bb is not it\n"
			     "-- b neither\n"
			     "--b-- x neither\n"
			     "--b--\n";
	struct mime_meta *m;
	size_t len;
	char *msg = crlf(unclosed, &len);

	m = parse_all_ways(msg, len);
	ASSERT_EQ(m->flags, MIME_F_MISSING_BOUNDARY);
	ASSERT_EQ(m->n_parts, 3);
	check_part(m, 1, "1", "text/plain", NULL, NULL, false);
	check_content(m, 1, "one", 3);
	check_content(m, 2, "two\r\nlast line\r\n", 16);
	mime_meta_free(&m);
	free(msg);

	msg = crlf(noparam, &len);
	m = parse_all_ways(msg, len);
	ASSERT_EQ(m->flags, MIME_F_MISSING_BOUNDARY);
	ASSERT_EQ(m->n_parts, 1);
	check_part(m, 0, "1", "multipart/mixed", NULL, NULL, false);
	ASSERT_TRUE(m->parts[0].has_sha256);
	ASSERT_EQ(m->parts[0].size, 10);
	mime_meta_free(&m);
	free(msg);

	/* A part's header ended by a boundary: a part without a body. */
	msg = crlf("Content-Type: multipart/mixed; boundary=b\n\n--b\n"
		   "Content-Type: text/html\n--b--\n",
	    &len);
	m = parse_all_ways(msg, len);
	ASSERT_EQ(m->flags, 0);
	ASSERT_EQ(m->n_parts, 2);
	check_part(m, 1, "1", "text/html", NULL, NULL, false);
	check_content(m, 1, "", 0);
	mime_meta_free(&m);
	free(msg);

	msg = crlf(prefix, &len);
	m = parse_all_ways(msg, len);
	ASSERT_EQ(m->flags, 0);
	ASSERT_EQ(m->n_parts, 2);
	check_content(m, 1, "--bb is not it\r\n-- b neither\r\n--b-- x neither",
	    45);
	mime_meta_free(&m);
	free(msg);
}

static void
test_boundary_in_base64(void)
{
	/* The decoded bytes hold the boundary line; the encoded ones not. */
	const char *decoded = "line\r\n--sep\r\nmore\r\n--sep--\r\n";
	const char *src = "Content-Type: multipart/mixed; boundary=sep\n"
			  "\n"
			  "--sep\n"
			  "Content-Type: text/plain\n"
			  "Content-Transfer-Encoding: base64\n"
			  "\n"
			  "bGluZQ0KLS1zZXANCm1vcmUN\n"
			  "Ci0tc2VwLS0NCg==\n"
			  "--sep\n"
			  "Content-Type: text/plain\n"
			  "\n"
			  "after\n"
			  "--sep--\n";
	struct mime_meta *m;
	size_t len;
	char *msg = crlf(src, &len);

	m = parse_all_ways(msg, len);
	ASSERT_EQ(m->flags, 0);
	ASSERT_EQ(m->n_parts, 3);
	check_content(m, 1, decoded, strlen(decoded));
	check_content(m, 2, "after", 5);
	mime_meta_free(&m);
	free(msg);
}

static void
test_8bit_headers(void)
{
	const char *
	    msg = "From: J\xC3\xB6rg M\xC3\xBCller <J\xC3\xB6rg@Example.DE>\r\n"
		  "To: \"=?utf-8?B?RnJhbsOnb2lz?=\" <f@example.fr>,\r\n"
		  "  =?iso-8859-1?q?Ren=E9?= =?iso-8859-1?q?_Dupont?= "
		  "<rd@example.fr>\r\n"
		  "Subject: Gr\xC3\xBC\xC3\x9F"
		  "e aus K\xC3\xB6ln \xFF!\r\n"
		  "\r\n"
		  "body\r\n";
	struct mime_meta *m;

	m = parse_all_ways(msg, strlen(msg));
	ASSERT_EQ(m->flags, MIME_F_8BIT_HEADER);
	ASSERT_STREQ(m->subject,
	    "Gr\xC3\xBC\xC3\x9F"
	    "e aus K\xC3\xB6ln "
	    "\xEF\xBF\xBD!");
	check_addr(m, 0, MIME_ROLE_FROM, "j\xC3\xB6rg@example.de", "example.de",
	    "J\xC3\xB6rg M\xC3\xBCller");
	check_addr(m, 1, MIME_ROLE_TO, "f@example.fr", "example.fr",
	    "Fran\xC3\xA7ois");
	check_addr(m, 2, MIME_ROLE_TO, "rd@example.fr", "example.fr",
	    "Ren\xC3\xA9 Dupont");
	mime_meta_free(&m);

	/* Raw UTF-8 in a part's file name (RFC 6532), and in a latin1 one. */
	msg = "Content-Type: multipart/mixed; boundary=b\r\n"
	      "\r\n"
	      "--b\r\n"
	      "Content-Disposition: attachment; "
	      "filename=\"r\xC3\xA9sum\xC3\xA9.pdf\"\r\n"
	      "\r\n"
	      "x\r\n"
	      "--b\r\n"
	      "Content-Type: text/plain; name=caf\xE9.txt\r\n"
	      "\r\n"
	      "y\r\n"
	      "--b--\r\n";
	m = parse_all_ways(msg, strlen(msg));
	ASSERT_EQ(m->flags, MIME_F_8BIT_HEADER);
	check_part(m, 1, "1", "text/plain", "attachment",
	    "r\xC3\xA9sum\xC3\xA9.pdf", true);
	check_part(m, 2, "2", "text/plain", NULL, "caf\xEF\xBF\xBD.txt", true);
	mime_meta_free(&m);
}

static void
test_charsets(void)
{
	const char
	    *src = "Subject: =?koi8-r?B?8NLJ18XU?= =?shift_jis?B?k/qWe4zq?=\n"
		   "Content-Type: multipart/mixed; boundary=c\n"
		   "\n"
		   "--c\n"
		   "Content-Type: text/plain; charset=ISO-8859-1\n"
		   "\n"
		   "Gr\xFC\xDF"
		   "e\n"
		   "--c\n"
		   "Content-Type: text/plain; charset=windows-1252 (Western)\n"
		   "Content-Transfer-Encoding: quoted-printable\n"
		   "\n"
		   "=80 5 =93quoted=94\n"
		   "--c\n"
		   "Content-Type: text/plain; charset=\"iso-2022-jp\"\n"
		   "\n"
		   "\x1b$B$3$s$K$A$O\x1b(B\n"
		   "--c\n"
		   "Content-Type: text/plain; charset=utf-7\n"
		   "\n"
		   "Hi Mom -+Jjo--! +ZeVnLIqe-\n"
		   "--c\n"
		   "Content-Type: text/plain; charset=gb2312\n"
		   "\n"
		   "\xC4\xE3\xBA\xC3\n"
		   "--c--\n";
	struct mime_meta *m;
	size_t len;
	char *msg = crlf(src, &len);

	m = parse_all_ways(msg, len);
	ASSERT_EQ(m->flags, 0);
	ASSERT_STREQ(m->subject,
	    "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5"
	    "\xD1\x82\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E");
	/* Sizes and digests are of the bytes before conversion. */
	check_content(m, 1,
	    "Gr\xFC\xDF"
	    "e",
	    5);
	TEXT_HAS(m,
	    "Gr\xC3\xBC\xC3\x9F"
	    "e");
	TEXT_HAS(m, "\xE2\x82\xAC 5 \xE2\x80\x9Cquoted\xE2\x80\x9D");
	TEXT_HAS(m,
	    "\xE3\x81\x93\xE3\x82\x93\xE3\x81\xAB\xE3\x81\xA1"
	    "\xE3\x81\xAF");
	TEXT_HAS(m, "\xE4\xBD\xA0\xE5\xA5\xBD");
	TEXT_HAS(m,
	    "Hi Mom -\xE2\x98\xBA-! \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E");
	mime_meta_free(&m);
	free(msg);
}

static void
test_bad_charsets(void)
{
	const char *unknown = "Content-Type: text/plain; charset=x-klingon\n"
			      "\n"
			      "plain ascii \xC3\xA9 \xFF\n";
	const char *bad = "Content-Type: text/plain; charset=utf-8\n"
			  "\n"
			  "caf\xC3 ok \xE2\x82\n";
	const char *badsjis = "Content-Type: text/plain; charset=shift_jis\n"
			      "\n"
			      "ok \x81\n";
	struct mime_meta *m;
	size_t len;
	char *msg = crlf(unknown, &len);

	m = parse_all_ways(msg, len);
	ASSERT_EQ(m->flags, MIME_F_UNKNOWN_CHARSET | MIME_F_BAD_CHARSET);
	ASSERT_STREQ(m->text, "plain ascii \xC3\xA9 \xEF\xBF\xBD");
	mime_meta_free(&m);
	free(msg);

	msg = crlf(bad, &len);
	m = parse_all_ways(msg, len);
	ASSERT_EQ(m->flags, MIME_F_BAD_CHARSET);
	/* Each invalid byte is one U+FFFD. */
	ASSERT_STREQ(m->text, "caf\xEF\xBF\xBD ok \xEF\xBF\xBD\xEF\xBF\xBD");
	mime_meta_free(&m);
	free(msg);

	msg = crlf(badsjis, &len);
	m = parse_all_ways(msg, len);
	ASSERT_EQ(m->flags, MIME_F_BAD_CHARSET);
	TEXT_HAS(m, "ok ");
	TEXT_HAS(m, "\xEF\xBF\xBD");
	mime_meta_free(&m);
	free(msg);
}

static void
test_broken_encodings(void)
{
	const char *b64 = "Content-Type: text/plain\n"
			  "Content-Transfer-Encoding: BASE64\n"
			  "\n"
			  "SGVsbG8*gV29y\n"
			  "  bGQ=\n";
	const char *qp = "Content-Type: text/plain\n"
			 "Content-Transfer-Encoding: quoted-printable\n"
			 "\n"
			 "a=3Db=\n"
			 "c =ZZ end  \n"
			 "soft with padding=  \n"
			 "done=4";
	const char *ew = "Subject: =?utf-8?B?SGVsbG8*?= =?utf-8?Q?a=ZZb?=\n"
			 "\n";
	const char *qpout = "a=bc =ZZ end\r\nsoft with paddingdone=4";
	struct mime_meta *m;
	size_t len;
	char *msg = crlf(b64, &len);

	m = parse_all_ways(msg, len);
	ASSERT_EQ(m->flags, MIME_F_BAD_ENCODING);
	check_content(m, 0, "Hello World", 11);
	mime_meta_free(&m);
	free(msg);

	msg = crlf(qp, &len);
	m = parse_all_ways(msg, len);
	ASSERT_EQ(m->flags, MIME_F_BAD_ENCODING);
	check_content(m, 0, qpout, strlen(qpout));
	mime_meta_free(&m);
	free(msg);

	msg = crlf(ew, &len);
	m = parse_all_ways(msg, len);
	ASSERT_EQ(m->flags, MIME_F_BAD_ENCODING);
	ASSERT_STREQ(m->subject, "Helloa=ZZb");
	mime_meta_free(&m);
	free(msg);

	/* A word that decodes to nothing (a lone shift back to ASCII). */
	msg = crlf("Subject: =?ISO-2022-JP?B?GyhC?=\n\n", &len);
	m = parse_all_ways(msg, len);
	ASSERT_EQ(m->flags, 0);
	ASSERT_TRUE(m->subject == NULL);
	ASSERT_STREQ(m->subject_raw, "=?ISO-2022-JP?B?GyhC?=");
	mime_meta_free(&m);
	free(msg);
}

static void
test_groups_and_obsolete_addresses(void)
{
	const char
	    *src = "From: \"Doe, John\" <john.doe@example.com>\n"
		   "To: undisclosed-recipients:;\n"
		   "Cc: Team: a@x.org, \"B\" <B@Y.org>;, c@z.org\n"
		   "Bcc: <@relay1.example,@relay2.example:dan@example.com>\n"
		   "To: root, mary . smith @ example . net\n"
		   "Reply-To: eve@example.com (Eve E.)\n"
		   "Sender: (comment) <sender@example.com> (trailing)\n"
		   "Return-Path: <>\n"
		   "\n";
	struct mime_meta *m;
	size_t len;
	char *msg = crlf(src, &len);

	m = parse_all_ways(msg, len);
	ASSERT_EQ(m->flags, 0);
	ASSERT_EQ(m->n_addresses, 9);
	check_addr(m, 0, MIME_ROLE_FROM, "john.doe@example.com", "example.com",
	    "Doe, John");
	check_addr(m, 1, MIME_ROLE_CC, "a@x.org", "x.org", NULL);
	check_addr(m, 2, MIME_ROLE_CC, "b@y.org", "y.org", "B");
	check_addr(m, 3, MIME_ROLE_CC, "c@z.org", "z.org", NULL);
	check_addr(m, 4, MIME_ROLE_BCC, "dan@example.com", "example.com", NULL);
	check_addr(m, 5, MIME_ROLE_TO, "root", "", NULL);
	check_addr(m, 6, MIME_ROLE_TO, "mary.smith@example.net", "example.net",
	    NULL);
	check_addr(m, 7, MIME_ROLE_REPLY_TO, "eve@example.com", "example.com",
	    "Eve E.");
	check_addr(m, 8, MIME_ROLE_SENDER, "sender@example.com", "example.com",
	    NULL);
	mime_meta_free(&m);
	free(msg);

	/* An unencoded ',' inside an encoded word does not split. */
	msg = crlf("From: =?utf-8?Q?Doe,_J=C3=B6rg?= <jd@example.com>\n\n",
	    &len);
	m = parse_all_ways(msg, len);
	ASSERT_EQ(m->flags, 0);
	ASSERT_EQ(m->n_addresses, 1);
	check_addr(m, 0, MIME_ROLE_FROM, "jd@example.com", "example.com",
	    "Doe, J\xC3\xB6rg");
	mime_meta_free(&m);
	free(msg);

	/* What can be read is kept; the rest is flagged. */
	msg = crlf("To: John Smith, ok@example.com, <unclosed@example.com\n"
		   "\n",
	    &len);
	m = parse_all_ways(msg, len);
	ASSERT_EQ(m->flags, MIME_F_BAD_ADDRESS);
	ASSERT_EQ(m->n_addresses, 2);
	check_addr(m, 0, MIME_ROLE_TO, "ok@example.com", "example.com", NULL);
	check_addr(m, 1, MIME_ROLE_TO, "unclosed@example.com", "example.com",
	    NULL);
	mime_meta_free(&m);
	free(msg);
}

static void
test_dates(void)
{
	static const struct {
		const char *s;
		int64_t t;
	} ok[] = {
		{ "Mon, 4 Mar 2024 10:15:30 +0100", 1709543730 },
		{ "4 Mar 2024 10:15:30 +0100", 1709543730 },
		{ "Mon,4 MAR 2024 09:15:30 GMT", 1709543730 },
		{ "Mon, 04 mar 24 04:15:30 EST", 1709543730 },
		{ "Monday, 4 March 2024 02:15:30 PDT (Pacific)", 1709543730 },
		{ "Mon, 4 Mar 2024 09:15:30 UT", 1709543730 },
		{ "Mon, 4 Mar 2024 09:15:30 Z", 1709543730 },
		{ "Mon, 4 Mar 2024 09:15:30 A", 1709543730 },
		{ "Mon, 4 Mar 2024 09:15:30 -0000", 1709543730 },
		{ "Mon (day), 4 (x) Mar 2024 09:15:30 +0000 (UTC)",
		    1709543730 },
		{ "Fri, 31 Dec 99 23:59 EST", 946702740 },
		{ "2 Jan 104 03:04 +0000", 1073012640 },
		{ "Mon Mar  4 09:15:30 2024", 1709543730 },
		{ "Thu, 29 Feb 2024 00:00:00 +0000", 1709164800 },
		{ "1 Jan 1970 00:00:00 +0000", 0 },
		/* Every day name. */
		{ "Fri, 1 Mar 2024 00:00:00 +0000", 1709251200 },
		{ "Sat, 2 Mar 2024 00:00:00 +0000", 1709337600 },
		{ "Sun, 3 Mar 2024 00:00:00 +0000", 1709424000 },
		{ "Tue, 5 Mar 2024 14:30:00 +0100", 1709645400 },
		{ "Wed, 6 Mar 2024 00:00:00 +0000", 1709683200 },
		{ "tuesday, 5 Mar 2024 14:30:00 +0100", 1709645400 },
	};
	static const char *bad[] = {
		"",
		"yesterday",
		"Mon, 32 Mar 2024 10:15:30 +0100",
		"Thu, 30 Feb 2024 00:00:00 +0000",
		"4 Foo 2024 10:15 +0000",
		"4 Mar 2024 25:15:30 +0000",
		"4 Mar 2024",
		"4 Mar 2024 10 +0000",
	};
	int64_t t;
	size_t i;
	struct mime_meta *m;
	char *msg;
	size_t len;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		if (!mime_date_parse(ok[i].s, strlen(ok[i].s), &t))
			TEST_FAIL_("not parsed: %s", ok[i].s);
		if (t != ok[i].t)
			TEST_FAIL_("%s: %jd != %jd", ok[i].s, (intmax_t)t,
			    (intmax_t)ok[i].t);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (mime_date_parse(bad[i], strlen(bad[i]), &t))
			TEST_FAIL_("parsed: %s", bad[i]);
	msg = crlf("Date: Fri, 31 Dec 99\n 23:59 EST\n\nx\n", &len);
	m = parse_all_ways(msg, len);
	ASSERT_EQ(m->flags, 0);
	ASSERT_STREQ(m->date_raw, "Fri, 31 Dec 99 23:59 EST");
	ASSERT_TRUE(m->has_date);
	ASSERT_EQ(m->date, 946702740);
	mime_meta_free(&m);
	free(msg);
	msg = crlf("Date: the day after tomorrow\n\nx\n", &len);
	m = parse_all_ways(msg, len);
	ASSERT_EQ(m->flags, MIME_F_BAD_DATE);
	ASSERT_STREQ(m->date_raw, "the day after tomorrow");
	ASSERT_TRUE(!m->has_date);
	mime_meta_free(&m);
	free(msg);
}

static void
test_bare_lf(void)
{
	const char *msg = "From: lf@example.com\n"
			  "Subject: bare\n"
			  "Content-Type: multipart/mixed; boundary=lf\n"
			  "\n"
			  "--lf\n"
			  "\n"
			  "first\n"
			  "second\n"
			  "--lf\n"
			  "Content-Type: application/octet-stream\n"
			  "Content-Transfer-Encoding: quoted-printable\n"
			  "\n"
			  "x=\n"
			  "y\r\n"
			  "--lf--";
	struct mime_meta *m;

	m = parse_all_ways(msg, strlen(msg));
	ASSERT_EQ(m->flags, 0);
	ASSERT_STREQ(m->subject, "bare");
	ASSERT_EQ(m->n_parts, 3);
	check_content(m, 1, "first\nsecond", 12);
	check_content(m, 2, "xy", 2);
	mime_meta_free(&m);
}

static void
test_no_separator(void)
{
	const char *body_follows = "From: a@example.com\n"
				   "Subject: no gap\n"
				   "This is body text\n"
				   "more body\n";
	const char
	    *only_header = "From a@example.com Mon Mar  4 09:15:30 2024\n"
			   "From: a@example.com\n"
			   "Subject: just a header";
	struct mime_meta *m;
	size_t len;
	char *msg = crlf(body_follows, &len);

	m = parse_all_ways(msg, len);
	ASSERT_EQ(m->flags, MIME_F_NO_HEADER);
	ASSERT_STREQ(m->subject, "no gap");
	ASSERT_EQ(m->n_parts, 1);
	check_content(m, 0, "This is body text\r\nmore body\r\n", 30);
	TEXT_HAS(m, "This is body text\nmore body");
	mime_meta_free(&m);
	free(msg);

	/* A header without a body is no fault (RFC 5322 section 3.5). */
	msg = crlf(only_header, &len);
	m = parse_all_ways(msg, len);
	ASSERT_EQ(m->flags, 0);
	ASSERT_STREQ(m->subject, "just a header");
	check_addr(m, 0, MIME_ROLE_FROM, "a@example.com", "example.com", NULL);
	ASSERT_EQ(m->n_parts, 1);
	check_content(m, 0, "", 0);
	mime_meta_free(&m);
	free(msg);

	/* The empty message. */
	m = parse_all_ways("", 0);
	ASSERT_EQ(m->flags, 0);
	ASSERT_EQ(m->n_parts, 1);
	ASSERT_STREQ(m->text, "");
	mime_meta_free(&m);
}

static void
test_huge_header(void)
{
	struct mime_strbuf sb;
	struct mime_meta *m;
	size_t i;

	mime_strbuf_init(&sb, 1 << 20);
	mime_strbuf_adds(&sb, "Subject: kept\r\nFrom: a@example.com\r\n");
	for (i = 0; i < 3500; i++) {
		char line[128];

		snprintf(line, sizeof(line),
		    "Received: from relay%04zu."
		    "example.net by mx.example.org; Mon, 4 Mar 2024 "
		    "10:15:30 +0100\r\n",
		    i);
		mime_strbuf_adds(&sb, line);
	}
	mime_strbuf_adds(&sb, "To: late@example.com\r\n\r\nbody after it\r\n");
	ASSERT_TRUE(sb.len > MIME_HEADER_MAX);
	m = parse_all_ways(sb.p, sb.len);
	ASSERT_EQ(m->flags, MIME_F_HEADER_TRUNCATED);
	ASSERT_STREQ(m->subject, "kept");
	ASSERT_EQ(m->n_addresses, 1);
	check_content(m, 0, "body after it\r\n", 15);
	TEXT_HAS(m, "body after it");
	mime_meta_free(&m);
	mime_strbuf_release(&sb);
}

static void
test_many_parts(void)
{
	struct mime_strbuf sb;
	struct mime_meta *m;
	size_t i;

	mime_strbuf_init(&sb, 1 << 20);
	mime_strbuf_adds(&sb,
	    "Content-Type: multipart/mixed; boundary=p\r\n\r\n");
	for (i = 0; i < 1500; i++) {
		char part[128];

		snprintf(part, sizeof(part),
		    "--p\r\nContent-Type: "
		    "text/plain; name=f%zu.txt\r\n\r\nword%zu\r\n",
		    i, i);
		mime_strbuf_adds(&sb, part);
	}
	mime_strbuf_adds(&sb, "--p--\r\n");
	m = parse_all_ways(sb.p, sb.len);
	ASSERT_EQ(m->flags, MIME_F_TOO_MANY_PARTS);
	ASSERT_EQ(m->n_parts, MIME_PART_MAX);
	ASSERT_STREQ(m->parts[MIME_PART_MAX - 1].path, "999");
	check_content(m, 999, "word998", 7);
	/* Parts past the bound still give their text and names. */
	TEXT_HAS(m, "word1499");
	TEXT_HAS(m, "f1499.txt");
	mime_meta_free(&m);
	mime_strbuf_release(&sb);
}

static void
test_deep(void)
{
	struct mime_strbuf sb;
	struct mime_meta *m;
	size_t i;
	char line[96];

	mime_strbuf_init(&sb, 1 << 20);
	for (i = 0; i < 40; i++) {
		snprintf(line, sizeof(line),
		    "Content-Type: multipart/mixed;"
		    " boundary=d%zu\r\n\r\n--d%zu\r\n",
		    i, i);
		mime_strbuf_adds(&sb, line);
	}
	mime_strbuf_adds(&sb,
	    "Content-Type: text/plain\r\n\r\ndeepest words\r\n");
	for (i = 40; i-- > 0;) {
		snprintf(line, sizeof(line), "--d%zu--\r\n", i);
		mime_strbuf_adds(&sb, line);
	}
	m = parse_all_ways(sb.p, sb.len);
	ASSERT_EQ(m->flags, MIME_F_TOO_DEEP);
	/* MIME_DEPTH_MAX containers, then one opaque leaf. */
	ASSERT_EQ(m->n_parts, MIME_DEPTH_MAX + 1);
	ASSERT_STREQ(m->parts[0].path, "");
	ASSERT_STREQ(m->parts[2].path, "1.1");
	ASSERT_STREQ(m->parts[MIME_DEPTH_MAX].content_type, "multipart/mixed");
	ASSERT_TRUE(m->parts[MIME_DEPTH_MAX].has_sha256);
	TEXT_LACKS(m, "deepest");
	mime_meta_free(&m);
	mime_strbuf_release(&sb);
}

static void
test_many_addresses(void)
{
	struct mime_strbuf sb;
	struct mime_meta *m;
	size_t i;
	char a[64];

	mime_strbuf_init(&sb, 1 << 20);
	mime_strbuf_adds(&sb, "From: first@example.com\r\nTo: ");
	for (i = 0; i < 1200; i++) {
		snprintf(a, sizeof(a), "%s\"User %zu\" <u%zu@example.com>",
		    i > 0 ? ",\r\n " : "", i, i);
		mime_strbuf_adds(&sb, a);
	}
	mime_strbuf_adds(&sb, "\r\n\r\nbody\r\n");
	m = parse_all_ways(sb.p, sb.len);
	ASSERT_EQ(m->flags, MIME_F_TOO_MANY_ADDRESSES);
	ASSERT_EQ(m->n_addresses, MIME_ADDRESS_MAX);
	check_addr(m, 999, MIME_ROLE_TO, "u998@example.com", "example.com",
	    "User 998");
	mime_meta_free(&m);
	mime_strbuf_release(&sb);
}

/* --- text bounds --------------------------------------------------------- */

static void
test_text_bounds(void)
{
	struct mime_strbuf sb;
	struct mime_meta *m;
	size_t i, cost = 0, s;
	char w[64];

	mime_strbuf_init(&sb, 4 << 20);
	mime_strbuf_adds(&sb,
	    "Subject: big\r\nContent-Type: text/plain; "
	    "charset=utf-8\r\n\r\n");
	/* A word PostgreSQL would refuse to index, then distinct words. */
	for (i = 0; i < 3000; i++)
		mime_strbuf_addc(&sb, 'x');
	mime_strbuf_adds(&sb, " ");
	for (i = 0; sb.len < 2500000; i++) {
		snprintf(w, sizeof(w), "w\xC3\xA9rd-%zu.part ", i);
		mime_strbuf_adds(&sb, w);
	}
	m = parse(sb.p, sb.len);
	ASSERT_EQ(m->flags, MIME_F_TEXT_TRUNCATED);
	ASSERT_TRUE(m->text_len <= MIME_TEXT_MAX);
	ASSERT_EQ(strlen(m->text), m->text_len);
	check_strings(m);
	TEXT_LACKS(m, "xxxxxxxxxx");
	/* The budget holds: every word within it, counted once. */
	for (i = 0; i < m->text_len;) {
		while (i < m->text_len &&
		    (m->text[i] == ' ' || m->text[i] == '\n'))
			i++;
		s = i;
		while (
		    i < m->text_len && m->text[i] != ' ' && m->text[i] != '\n')
			i++;
		ASSERT_TRUE(i - s <= TEXT_WORD_MAX);
		cost += mime_text_word_cost(m->text + s, i - s, true);
	}
	ASSERT_TRUE(cost <= TEXT_TSV_BUDGET);
	ASSERT_TRUE(cost > TEXT_TSV_BUDGET - 1000);
	ASSERT_TRUE(TEXT_TSV_BUDGET < (1 << 20) - 1);
	mime_meta_free(&m);
	mime_strbuf_release(&sb);
}

/*
 * A huge text part: its size and digest are exact, its text is cut at the
 * bound, between characters (TEXT_TRUNCATED).
 */
static void
test_huge_text_part(void)
{
	struct mime_parser *mp = mime_parser_new();
	struct mime_meta *m;
	struct hash_sha256 h;
	unsigned char want[32];
	char line[80];
	size_t i, total = 0;
	const char
	    *head = "Content-Type: text/plain; charset=iso-8859-1\r\n\r\n";

	hash_sha256_init(&h);
	mime_parser_feed(mp, head, strlen(head));
	for (i = 0; i < 200000; i++) {
		int n = snprintf(line, sizeof(line), "line %zu caf\xE9\r\n", i);

		mime_parser_feed(mp, line, (size_t)n);
		hash_sha256_update(&h, line, (size_t)n);
		total += (size_t)n;
	}
	m = mime_parser_finish(mp);
	mime_parser_free(&mp);
	hash_sha256_final(&h, want);
	hash_sha256_release(&h);
	ASSERT_EQ(m->flags, MIME_F_TEXT_TRUNCATED);
	ASSERT_EQ(m->parts[0].size, total);
	ASSERT_MEMEQ(m->parts[0].sha256, want, 32);
	ASSERT_TRUE(m->text_len <= MIME_TEXT_MAX);
	ASSERT_TRUE(m->text_len > MIME_TEXT_MAX / 2);
	TEXT_HAS(m, "line 0 caf\xC3\xA9\nline 1 caf\xC3\xA9\n");
	TEXT_LACKS(m, "line 199999");
	check_strings(m);
	mime_meta_free(&m);
}

/* --- memory -------------------------------------------------------------- */

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_MALLINFO 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_MALLINFO 0
#endif
#endif
#ifndef HAVE_MALLINFO
#define HAVE_MALLINFO 1
#endif

static size_t
heap_in_use(void)
{
#if HAVE_MALLINFO
	struct mallinfo2 mi = mallinfo2();

	return mi.uordblks + mi.hblkhd;
#else
	return 0;
#endif
}

/*
 * A 50 MiB attachment, generated piece by piece: the parser's heap must
 * not grow with it (bounded in bytes, not time).
 */
static void
test_memory_50mib(void)
{
	static const char al[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const size_t total = 50u << 20;
	struct mime_parser *mp;
	struct mime_meta *m;
	struct hash_sha256 h;
	unsigned char raw[57 * 64], want[32];
	char enc[78 * 64];
	size_t done = 0, i, j, o, base, peak = 0, now;
	unsigned int v;
	const char *head =
	    "From: big@example.com\r\nSubject: big\r\n"
	    "Content-Type: multipart/mixed; boundary=big\r\n\r\n--big\r\n"
	    "Content-Type: text/plain\r\n\r\nsee attached\r\n--big\r\n"
	    "Content-Type: application/octet-stream; name=big.bin\r\n"
	    "Content-Transfer-Encoding: base64\r\n\r\n";

#if HAVE_MALLINFO
	{
		/* The measure sees a heap that grows. */
		size_t before = heap_in_use();
		char *probe = xmalloc(256 * 1024);

		memset(probe, 1, 256 * 1024);
		ASSERT_TRUE(heap_in_use() >= before + 256 * 1024);
		free(probe);
	}
#endif
	hash_sha256_init(&h);
	mp = mime_parser_new();
	mime_parser_feed(mp, head, strlen(head));
	base = heap_in_use();
	while (done < total) {
		for (i = 0; i < sizeof(raw); i++)
			raw[i] = (unsigned char)((done + i) * 2654435761u >>
			    13);
		hash_sha256_update(&h, raw, sizeof(raw));
		o = 0;
		for (i = 0; i < sizeof(raw); i += 57) {
			for (j = i; j < i + 57; j += 3) {
				v = (unsigned int)raw[j] << 16 |
				    (unsigned int)raw[j + 1] << 8 | raw[j + 2];
				enc[o++] = al[v >> 18 & 63];
				enc[o++] = al[v >> 12 & 63];
				enc[o++] = al[v >> 6 & 63];
				enc[o++] = al[v & 63];
			}
			enc[o++] = '\r';
			enc[o++] = '\n';
		}
		mime_parser_feed(mp, enc, o);
		done += sizeof(raw);
		now = heap_in_use();
		if (now > base && now - base > peak)
			peak = now - base;
	}
	mime_parser_feed(mp, "--big--\r\n", 9);
	m = mime_parser_finish(mp);
	mime_parser_free(&mp);
	hash_sha256_final(&h, want);
	hash_sha256_release(&h);
	ASSERT_EQ(m->flags, 0);
	ASSERT_EQ(m->n_parts, 3);
	ASSERT_EQ(m->parts[2].size, done);
	ASSERT_TRUE(done >= total);
	ASSERT_MEMEQ(m->parts[2].sha256, want, 32);
	ASSERT_STREQ(m->parts[2].filename, "big.bin");
	/* Growth while 50 MiB streamed through: nothing proportional. */
	if (peak > 64 * 1024)
		TEST_FAIL_("heap grew by %zu bytes", peak);
	mime_meta_free(&m);
}

static void
test_names(void)
{
	ASSERT_STREQ(mime_role_name(MIME_ROLE_FROM), "from");
	ASSERT_STREQ(mime_role_name(MIME_ROLE_REPLY_TO), "reply-to");
	ASSERT_STREQ(mime_role_name(MIME_ROLE_DELIVERED_TO), "delivered-to");
	ASSERT_STREQ(mime_role_name(MIME_ROLE_X_ORIGINAL_TO), "x-original-to");
	ASSERT_STREQ(mime_role_name(MIME_ROLE_RETURN_PATH), "return-path");
	ASSERT_STREQ(mime_flag_name(MIME_F_HEADER_TRUNCATED),
	    "header_truncated");
	ASSERT_STREQ(mime_flag_name(MIME_F_8BIT_HEADER), "8bit_header");
	ASSERT_STREQ(mime_flag_name(MIME_F_NO_HEADER), "no_header");
	ASSERT_STREQ(mime_flag_name(MIME_F_TOO_MANY_ADDRESSES),
	    "too_many_addresses");
	ASSERT_TRUE(mime_flag_name((enum mime_flag)(1u << 13)) == NULL);
}

#define TESTS(X)                                                               \
	X(test_plain)                                                          \
	X(test_alternative_html)                                               \
	X(test_mixed_pdf)                                                      \
	X(test_nested_related)                                                 \
	X(test_forward_rfc822)                                                 \
	X(test_digest_and_encoded_message)                                     \
	X(test_filenames)                                                      \
	X(test_missing_boundaries)                                             \
	X(test_boundary_in_base64)                                             \
	X(test_8bit_headers)                                                   \
	X(test_charsets)                                                       \
	X(test_bad_charsets)                                                   \
	X(test_broken_encodings)                                               \
	X(test_groups_and_obsolete_addresses)                                  \
	X(test_dates)                                                          \
	X(test_bare_lf)                                                        \
	X(test_no_separator)                                                   \
	X(test_huge_header)                                                    \
	X(test_many_parts)                                                     \
	X(test_deep)                                                           \
	X(test_many_addresses)                                                 \
	X(test_text_bounds)                                                    \
	X(test_huge_text_part)                                                 \
	X(test_memory_50mib)                                                   \
	X(test_names)
TESTS(TEST_DECLARE)
TEST_MAIN(TESTS)
