/*
 * Conversion of a declared charset to UTF-8, as a stream that may be
 * split anywhere (a multibyte sequence across two feeds converts as if it
 * had come whole).  The only user of iconv.
 *
 * A charset iconv lacks is MIME_F_UNKNOWN_CHARSET and its bytes are taken
 * as UTF-8; bytes invalid in their charset are MIME_F_BAD_CHARSET and
 * become U+FFFD.  us-ascii and an absent charset are taken as UTF-8, the
 * usual meaning of 8-bit bytes mislabelled as ASCII.  Output may hold NUL
 * (converted from NUL): the caller's sink decides what to make of it.
 */
#ifndef STORE_MIME_CHARSET_H
#define STORE_MIME_CHARSET_H

#include <stddef.h>
#include <stdint.h>

#include "store/mime/strbuf.h"
#include "store/mime/utf8.h"

struct mime_charset;

/* name may be NULL (no charset declared). Never fails. */
struct mime_charset *mime_charset_new(const char *name);
void mime_charset_feed(struct mime_charset *cs, const void *p, size_t n,
    mime_sink_fn *sink, void *ctx);
/* Ends the stream: an unfinished sequence is invalid. */
void
mime_charset_finish(struct mime_charset *cs, mime_sink_fn *sink, void *ctx);
/* The MIME_F_* flags the stream earned so far. */
uint32_t mime_charset_flags(const struct mime_charset *cs);
void mime_charset_free(struct mime_charset **cs);

/*
 * One-shot: appends p[0, n) in charset name, as UTF-8, to out; returns
 * the flags earned.
 */
uint32_t mime_charset_convert(const char *name, const void *p, size_t n,
    struct mime_strbuf *out);

#endif
