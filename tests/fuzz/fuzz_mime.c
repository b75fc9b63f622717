/* fuzz-sources: store/mime/address.c store/mime/charset.c */
/* fuzz-sources: store/mime/date.c store/mime/decode.c store/mime/header.c */
/* fuzz-sources: store/mime/html.c store/mime/meta.c store/mime/parser.c */
/* fuzz-sources: store/mime/strbuf.c store/mime/text.c store/mime/utf8.c */
/* fuzz-sources: store/hash.c ingestd/base/log.c ingestd/base/xmalloc.c */
/* fuzz-pkgs: libcrypto */
/* fuzz-args: -max_len=65536 */
/*
 * store/mime: a message fed whole and fed in two pieces, split at a point
 * the first byte chooses (and, for small inputs, one byte at a time),
 * must give the same mime_meta, field by field; and every result keeps
 * the contract: valid UTF-8 without NUL, bounds respected, part paths
 * unique.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/mime/meta.h"
#include "store/mime/parser.h"
#include "store/mime/utf8.h"

#define CHECK(e) ((e) ? (void)0 : abort())

static bool
str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static void
same(const struct mime_meta *a, const struct mime_meta *b)
{
	size_t i;

	CHECK(a->flags == b->flags);
	CHECK(str_eq(a->date_raw, b->date_raw));
	CHECK(a->has_date == b->has_date && a->date == b->date);
	CHECK(str_eq(a->message_id, b->message_id));
	CHECK(str_eq(a->in_reply_to, b->in_reply_to));
	CHECK(str_eq(a->references, b->references));
	CHECK(str_eq(a->subject, b->subject));
	CHECK(str_eq(a->subject_raw, b->subject_raw));
	CHECK(str_eq(a->list_id, b->list_id));
	CHECK(str_eq(a->auto_submitted, b->auto_submitted));
	CHECK(a->n_addresses == b->n_addresses);
	for (i = 0; i < a->n_addresses; i++) {
		CHECK(a->addresses[i].role == b->addresses[i].role);
		CHECK(str_eq(a->addresses[i].address, b->addresses[i].address));
		CHECK(str_eq(a->addresses[i].domain, b->addresses[i].domain));
		CHECK(str_eq(a->addresses[i].name, b->addresses[i].name));
	}
	CHECK(a->n_parts == b->n_parts);
	for (i = 0; i < a->n_parts; i++) {
		const struct mime_part *p = &a->parts[i], *q = &b->parts[i];

		CHECK(str_eq(p->path, q->path));
		CHECK(str_eq(p->content_type, q->content_type));
		CHECK(str_eq(p->disposition, q->disposition));
		CHECK(str_eq(p->filename, q->filename));
		CHECK(p->size == q->size && p->has_sha256 == q->has_sha256);
		CHECK(p->attachment == q->attachment);
		CHECK(memcmp(p->sha256, q->sha256, 32) == 0);
	}
	CHECK(a->text_len == b->text_len);
	CHECK(memcmp(a->text, b->text, a->text_len) == 0);
}

static void
valid(const char *s)
{
	struct mime_strbuf sb;

	if (s == NULL)
		return;
	mime_strbuf_init(&sb, 4 * strlen(s) + 8);
	CHECK(!mime_utf8_sanitize(s, strlen(s), &sb));
	mime_strbuf_release(&sb);
}

static void
contract(const struct mime_meta *m)
{
	size_t i, j;

	CHECK(m->parser_version == MIME_PARSER_VERSION);
	valid(m->date_raw);
	valid(m->message_id);
	valid(m->in_reply_to);
	valid(m->references);
	valid(m->subject);
	valid(m->subject_raw);
	valid(m->list_id);
	valid(m->auto_submitted);
	CHECK(m->text != NULL && strlen(m->text) == m->text_len);
	CHECK(m->text_len <= MIME_TEXT_MAX);
	valid(m->text);
	CHECK(m->n_addresses <= MIME_ADDRESS_MAX);
	for (i = 0; i < m->n_addresses; i++) {
		CHECK(m->addresses[i].address[0] != '\0');
		CHECK(m->addresses[i].domain != NULL);
		CHECK(mime_role_name(m->addresses[i].role)[0] != 'u');
		valid(m->addresses[i].address);
		valid(m->addresses[i].name);
	}
	CHECK(m->n_parts <= MIME_PART_MAX);
	for (i = 0; i < m->n_parts; i++) {
		CHECK(m->parts[i].content_type[0] != '\0');
		valid(m->parts[i].path);
		valid(m->parts[i].filename);
		for (j = 0; j < i; j++)
			CHECK(strcmp(m->parts[i].path, m->parts[j].path) != 0);
	}
}

static struct mime_meta *
run(const uint8_t *p, size_t n, size_t split, bool bytewise)
{
	struct mime_parser *mp = mime_parser_new();
	struct mime_meta *m;
	size_t i;

	if (bytewise)
		for (i = 0; i < n; i++)
			mime_parser_feed(mp, p + i, 1);
	else {
		mime_parser_feed(mp, p, split);
		mime_parser_feed(mp, p + split, n - split);
	}
	m = mime_parser_finish(mp);
	mime_parser_free(&mp);
	CHECK(m != NULL);
	return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mime_meta *whole, *m;
	size_t split;

	whole = run(data, size, size, false);
	contract(whole);
	split = size > 0 ? (size_t)data[0] * size / 255 : 0;
	m = run(data, size, split, false);
	same(whole, m);
	mime_meta_free(&m);
	if (size <= 4096) {
		m = run(data, size, 0, true);
		same(whole, m);
		mime_meta_free(&m);
	}
	mime_meta_free(&whole);
	return 0;
}
