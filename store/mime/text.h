/*
 * The full text of a message, gathered as it streams past: header text
 * (subject, display names, addresses), attachment file names and the
 * text of its text parts, each kept within MIME_TEXT_MAX, and put together
 * at the end within the bounds PostgreSQL's to_tsvector() must respect.
 */
#ifndef STORE_MIME_TEXT_H
#define STORE_MIME_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "store/mime/strbuf.h"

/*
 * A conservative bound on what to_tsvector('simple', text) checks against
 * MAXSTRPOS (1 MiB - 1): the bytes of its distinct lexemes plus, for each,
 * its alignment and positions (PostgreSQL's make_tsvector()).  It refuses
 * a text past that, and drops words of 2 KiB (MAXSTRLEN 2047) or more.
 */
#define TEXT_TSV_BUDGET 1000000
#define TEXT_WORD_MAX 2047

struct mime_text {
	struct mime_strbuf head;
	struct mime_strbuf names;
	struct mime_strbuf body;
	bool cut;
};

void mime_text_init(struct mime_text *t);
void mime_text_release(struct mime_text *t);
/* A line of header text, or an attachment's name (UTF-8). */
void mime_text_head(struct mime_text *t, const char *s);
void mime_text_name(struct mime_text *t, const char *s);
/* A piece of a text part (UTF-8, possibly with NUL); a mime_sink_fn. */
void mime_text_body(void *t, const char *p, size_t n);
/* Ends a text part. */
void mime_text_body_end(struct mime_text *t);
/*
 * The text (the caller's to free) and its length; *cut_r is set if it was
 * cut short.
 */
char *mime_text_finish(struct mime_text *t, size_t *len_r, bool *cut_r);

/*
 * What a word (delimited by white space) may add to the size PostgreSQL
 * checks against MAXSTRPOS: the bytes of its lexemes and their position
 * entries, the first time it occurs (first) or again.  Conservative: a
 * word may also yield its parts, and lower-casing may lengthen non-ASCII
 * by half.
 */
size_t mime_text_word_cost(const char *w, size_t n, bool first);

#endif
