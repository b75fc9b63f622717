/*
 * A fixed-capacity byte buffer: a window [off, len) of readable bytes inside
 * data[0, cap).  The storage is allocated on first use and given back by
 * buf_shrink() so that idle sessions cost only the struct.
 */
#ifndef INGESTD_BUF_H
#define INGESTD_BUF_H

#include <stdbool.h>
#include <stddef.h>

struct buf {
	char *data;
	size_t cap;
	size_t off;	/* first unread byte */
	size_t len;	/* one past the last written byte */
};

/* Sets the capacity; no memory is allocated until bytes are written. */
void buf_init(struct buf *b, size_t cap);
/* Frees the storage; the buffer may be used again after buf_init(). */
void buf_release(struct buf *b);
/* Frees the storage if the buffer is empty (an idle session's buffers). */
void buf_shrink(struct buf *b);

/* Readable bytes. */
static inline size_t
buf_used(const struct buf *b)
{
	return b->len - b->off;
}

static inline const char *
buf_peek(const struct buf *b)
{
	return b->data + b->off;
}

/*
 * Returns a pointer to the writable tail and its size in *n_r (0 when full),
 * compacting first.  Call buf_commit() with the number of bytes written.
 */
char *buf_space(struct buf *b, size_t *n_r);
void buf_commit(struct buf *b, size_t n);
void buf_consume(struct buf *b, size_t n);
/* Appends all of p or nothing: returns 0, or -1 if it does not fit. */
int buf_append(struct buf *b, const void *p, size_t n);

#endif
