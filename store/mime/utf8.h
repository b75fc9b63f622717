/*
 * UTF-8 validation for the indexer: every string it keeps is valid UTF-8
 * without NUL, each invalid byte replaced by U+FFFD.
 */
#ifndef STORE_MIME_UTF8_H
#define STORE_MIME_UTF8_H

#include <stdbool.h>
#include <stddef.h>

#include "store/mime/strbuf.h"

/* Where decoded or converted bytes go, piece by piece. */
typedef void mime_sink_fn(void *ctx, const char *p, size_t n);

#define UTF8_REPLACEMENT "\xEF\xBF\xBD"

/*
 * The length (1 to 4) of the valid sequence at p[0, n), 0 if p[0] starts
 * none, -1 if p[0, n) is a valid but unfinished start of one.
 */
int mime_utf8_seq(const unsigned char *p, size_t n);

/*
 * Appends p[0, n) to out with invalid bytes and NUL as U+FFFD; returns
 * whether anything was replaced.
 */
bool mime_utf8_sanitize(const void *p, size_t n, struct mime_strbuf *out);

/* Drops an unfinished UTF-8 sequence at the end of sb (a cut). */
void mime_utf8_trim(struct mime_strbuf *sb);

/* Whether p[0, n) has a byte above 0x7f. */
bool mime_utf8_has_8bit(const void *p, size_t n);

/* A stream of bytes taken as UTF-8, split anywhere. */
struct mime_utf8_stream {
	unsigned char carry[4];
	size_t ncarry;
	bool bad; /* something was replaced */
};

void mime_utf8_stream_init(struct mime_utf8_stream *st);
/*
 * Passes the valid UTF-8 of p[0, n) to sink, invalid bytes as U+FFFD and
 * NUL as a space, holding back an unfinished sequence at the end.
 */
void mime_utf8_stream_feed(struct mime_utf8_stream *st, const void *p, size_t n,
    mime_sink_fn *sink, void *ctx);
/* An unfinished sequence at the end is invalid. */
void mime_utf8_stream_finish(struct mime_utf8_stream *st, mime_sink_fn *sink,
    void *ctx);

#endif
