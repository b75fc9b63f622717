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

struct strbuf {
	char *p;
	size_t len;
	size_t cap;
	size_t max; /* len never passes this */
	bool full;  /* an append was cut or refused */
};

void strbuf_init(struct strbuf *sb, size_t max);
void strbuf_release(struct strbuf *sb);
/* Empties sb, keeping its storage. */
void strbuf_reset(struct strbuf *sb);
/*
 * Appends as much of p[0, n) as fits below the ceiling; returns whether
 * all of it did.
 */
bool strbuf_add(struct strbuf *sb, const void *p, size_t n);
/* The same, but never cuts inside a UTF-8 sequence. */
bool strbuf_add_utf8(struct strbuf *sb, const void *p, size_t n);
bool strbuf_addc(struct strbuf *sb, char c);
bool strbuf_adds(struct strbuf *sb, const char *s);
/* The bytes as a new string (never NULL), and sb emptied. */
char *strbuf_take(struct strbuf *sb);
/* Bytes currently allocated. */
size_t strbuf_alloc(const struct strbuf *sb);

#endif
