#include "store/mime/strbuf.h"

#include <stdlib.h>
#include <string.h>

#include "ingestd/base/xmalloc.h"

void
mime_strbuf_init(struct mime_strbuf *sb, size_t max)
{
	memset(sb, 0, sizeof(*sb));
	sb->max = max;
}

void
mime_strbuf_release(struct mime_strbuf *sb)
{
	free(sb->p);
	sb->p = NULL;
	sb->len = sb->cap = 0;
	sb->full = false;
}

void
mime_strbuf_reset(struct mime_strbuf *sb)
{
	sb->len = 0;
	sb->full = false;
	if (sb->p != NULL)
		sb->p[0] = '\0';
}

static void
grow(struct mime_strbuf *sb, size_t need)
{
	size_t cap;

	if (need + 1 <= sb->cap)
		return;
	cap = sb->cap < 64 ? 64 : sb->cap;
	while (cap < need + 1)
		cap *= 2;
	if (cap > sb->max + 1)
		cap = sb->max + 1;
	sb->p = xreallocarray(sb->p, 1, cap);
	sb->cap = cap;
}

bool
mime_strbuf_add(struct mime_strbuf *sb, const void *p, size_t n)
{
	bool all = true;

	if (n > sb->max - sb->len) {
		n = sb->max - sb->len;
		all = false;
		sb->full = true;
	}
	grow(sb, sb->len + n);
	if (n > 0)
		memcpy(sb->p + sb->len, p, n);
	sb->len += n;
	sb->p[sb->len] = '\0';
	return all;
}

bool
mime_strbuf_add_utf8(struct mime_strbuf *sb, const void *p, size_t n)
{
	const unsigned char *u = p;
	size_t room = sb->max - sb->len;

	if (n <= room)
		return mime_strbuf_add(sb, p, n);
	/* Back off to the start of the sequence the cut would split. */
	while (room > 0 && (u[room] & 0xC0) == 0x80)
		room--;
	mime_strbuf_add(sb, p, room);
	sb->full = true;
	return false;
}

bool
mime_strbuf_addc(struct mime_strbuf *sb, char c)
{
	/* The common case, a byte that fits, without a call to memcpy. */
	if (sb->len + 1 < sb->cap && sb->len < sb->max) {
		sb->p[sb->len++] = c;
		sb->p[sb->len] = '\0';
		return true;
	}
	return mime_strbuf_add(sb, &c, 1);
}

bool
mime_strbuf_adds(struct mime_strbuf *sb, const char *s)
{
	return mime_strbuf_add(sb, s, strlen(s));
}

char *
mime_strbuf_take(struct mime_strbuf *sb)
{
	char *s;

	if (sb->p == NULL)
		return xstrdup("");
	s = sb->p;
	sb->p = NULL;
	sb->len = sb->cap = 0;
	sb->full = false;
	return s;
}
