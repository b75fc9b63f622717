/* fuzz-sources: pop3/parse.c */
/*
 * pop3/parse: the line reader is fed the input whole, one byte at a time
 * and in pseudo-random pieces, and must yield the same lines and verdict
 * every way; every line then goes through every line parser, whose
 * results must stay inside the line and mean what they claim.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pop3/parse.h"

#define CHECK(e) ((e) ? (void)0 : abort())

/* FNV-1a, to compare what the replays saw without storing it. */
static void
hash(uint64_t *h, const void *p, size_t n)
{
	const unsigned char *b = p;

	while (n-- > 0)
		*h = (*h ^ *b++) * 0x100000001b3ULL;
}

static bool
inside(const char *line, size_t len, const char *p, size_t n)
{
	return p >= line && n <= len && (size_t)(p - line) <= len - n;
}

static void
parse_line(const char *line, size_t len, uint64_t *h)
{
	struct pop3_status st;
	const char *uid, *ts;
	size_t uidlen, tslen, i;
	uint32_t num;
	uint64_t size;
	unsigned caps = 0;
	int r;

	CHECK(len < POP3_LINE_MAX);
	CHECK(line[len] == '\0');
	r = pop3_parse_status(line, len, &st);
	hash(h, &r, sizeof(r));
	if (r == POP3_PARSE_OK) {
		CHECK(memcmp(line, st.ok ? "+OK" : "-ERR", st.ok ? 3 : 4) == 0);
		CHECK(inside(line, len, st.text, st.textlen));
		CHECK(memchr(line, '\0', len) == NULL);
		CHECK(st.code == POP3_CODE_NONE || st.text[0] == '[');
		hash(h, &st.code, sizeof(st.code));
	}
	r = pop3_parse_continuation(line, len);
	hash(h, &r, sizeof(r));
	r = pop3_parse_capa(line, len, &caps);
	hash(h, &caps, sizeof(caps));
	{
		struct pop3_expire ex = { POP3_EXPIRE_NONE, 0, false };

		if (pop3_parse_capa_expire(line, len, &ex)) {
			CHECK(ex.kind != POP3_EXPIRE_NONE);
			CHECK(ex.kind == POP3_EXPIRE_DAYS || ex.days == 0);
			CHECK(memchr(line, '\0', len) == NULL);
		} else
			CHECK(ex.kind == POP3_EXPIRE_NONE && !ex.per_user);
		hash(h, &ex.kind, sizeof(ex.kind));
		hash(h, &ex.days, sizeof(ex.days));
	}
	{
		struct pop3_login_delay ld = { false, 7, false };

		if (pop3_parse_capa_login_delay(line, len, &ld))
			CHECK(memchr(line, '\0', len) == NULL &&
			    (ld.present || ld.seconds == 0));
		else
			CHECK(!ld.present && ld.seconds == 7 && !ld.per_user);
		hash(h, &ld.seconds, sizeof(ld.seconds));
	}
	r = pop3_parse_stat(line, len, &num, &size);
	if (r == POP3_PARSE_OK) {
		CHECK(line[0] >= '0' && line[0] <= '9');
		CHECK(size <= INT64_MAX);
		hash(h, &size, sizeof(size));
	}
	r = pop3_parse_list_item(line, len, &num, &size);
	if (r == POP3_PARSE_OK) {
		CHECK(num > 0);
		CHECK(line[0] >= '0' && line[0] <= '9');
		hash(h, &num, sizeof(num));
		hash(h, &size, sizeof(size));
	}
	r = pop3_parse_uidl_item(line, len, &num, &uid, &uidlen);
	if (r == POP3_PARSE_OK) {
		CHECK(num > 0);
		CHECK(uidlen > 0 && inside(line, len, uid, uidlen));
		for (i = 0; i < uidlen; i++)
			CHECK((unsigned char)uid[i] > 0x20 &&
			    (unsigned char)uid[i] != 0x7f);
		hash(h, uid, uidlen);
	}
	if (pop3_parse_timestamp(line, len, &ts, &tslen)) {
		CHECK(tslen >= 3 && inside(line, len, ts, tslen));
		CHECK(ts[0] == '<' && ts[tslen - 1] == '>');
		CHECK(memchr(ts, '@', tslen) != NULL);
		hash(h, ts, tslen);
	}
}

/* step 0: whole; 1: bytes; otherwise pieces from a generator seeded so. */
static uint64_t
replay(const uint8_t *data, size_t size, uint32_t step)
{
	struct pop3_line l;
	enum pop3_parse r;
	size_t pos = 0, piece, used;
	uint64_t h = 0xcbf29ce484222325ULL;

	pop3_line_init(&l);
	while (pos < size) {
		if (step == 0)
			piece = size - pos;
		else if (step == 1)
			piece = 1;
		else {
			step = step * 1103515245u + 12345u;
			piece = 1 + (step >> 16) % 700;
			if (piece > size - pos)
				piece = size - pos;
		}
		r = pop3_line_feed(&l, (const char *)data + pos, piece, &used);
		CHECK(used <= piece);
		if (r == POP3_PARSE_INVALID) {
			/* The line's start is kept for error messages. */
			CHECK(l.len == POP3_LINE_MAX - 1);
			hash(&h, "INVALID", 7);
			hash(&h, l.buf, l.len);
			return h;
		}
		if (r == POP3_PARSE_NEED_MORE)
			CHECK(used == piece);
		else {
			hash(&h, l.buf, l.len);
			hash(&h, "\n", 1);
			parse_line(l.buf, l.len, &h);
		}
		pos += used;
	}
	hash(&h, l.complete ? "" : l.buf, l.complete ? 0 : l.len);
	return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t whole;

	whole = replay(data, size, 0);
	CHECK(replay(data, size, 1) == whole);
	CHECK(replay(data, size, 2 + (uint32_t)size) == whole);
	return 0;
}
