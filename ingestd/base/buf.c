#include "ingestd/base/buf.h"

#include <stdlib.h>
#include <string.h>

#include "ingestd/base/log.h"
#include "ingestd/base/xmalloc.h"

void
buf_init(struct buf *b, size_t cap)
{
	b->data = NULL;
	b->cap = cap;
	b->off = b->len = 0;
}

void
buf_release(struct buf *b)
{
	free(b->data); b->data = NULL;
	b->off = b->len = 0;
}

void
buf_shrink(struct buf *b)
{
	if (buf_used(b) == 0)
		buf_release(b);
}

char *
buf_space(struct buf *b, size_t *n_r)
{
	if (b->data == NULL)
		b->data = xmalloc(b->cap);
	if (b->off == b->len) {
		b->off = b->len = 0;
	} else if (b->off > 0 && b->len == b->cap) {
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	*n_r = b->cap - b->len;
	return b->data + b->len;
}

void
buf_commit(struct buf *b, size_t n)
{
	ASSERT(n <= b->cap - b->len);
	b->len += n;
}

void
buf_consume(struct buf *b, size_t n)
{
	ASSERT(n <= buf_used(b));
	b->off += n;
	if (b->off == b->len)
		b->off = b->len = 0;
}

int
buf_append(struct buf *b, const void *p, size_t n)
{
	size_t room;
	char *w;

	w = buf_space(b, &room);
	if (room < n && b->off > 0) {
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
		w = b->data + b->len;
		room = b->cap - b->len;
	}
	if (room < n)
		return -1;
	memcpy(w, p, n);
	b->len += n;
	return 0;
}
