/*
 * A growable byte string with a ceiling: the parser's header blocks and
 * the text it keeps are bounded, and appends past the ceiling are refused
 * (and remembered), never reallocated past it.  Always NUL-terminated once
 * anything was added.
 */
#ifndef STORE_MIME_STRBUF_H
#define STORE_MIME_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct mime_strbuf {
	char *p;
	size_t len;
	size_t cap;
	size_t max; /* len never passes this */
	bool full;  /* an append was cut or refused */
};

void mime_strbuf_init(struct mime_strbuf *sb, size_t max);
void mime_strbuf_release(struct mime_strbuf *sb);
/* Empties sb, keeping its storage. */
void mime_strbuf_reset(struct mime_strbuf *sb);
/*
 * Appends as much of p[0, n) as fits below the ceiling; returns whether
 * all of it did.
 */
bool mime_strbuf_add(struct mime_strbuf *sb, const void *p, size_t n);
/* The same, but never cuts inside a UTF-8 sequence. */
bool mime_strbuf_add_utf8(struct mime_strbuf *sb, const void *p, size_t n);
bool mime_strbuf_addc(struct mime_strbuf *sb, char c);
bool mime_strbuf_adds(struct mime_strbuf *sb, const char *s);
/* The bytes as a new string (never NULL), and sb emptied. */
char *mime_strbuf_take(struct mime_strbuf *sb);

#endif
