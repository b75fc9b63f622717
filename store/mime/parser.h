/*
 * The message indexer: a push parser that learns a message's header
 * fields, addresses, MIME structure and full text from its bytes as RETR
 * delivers them, in pieces of any size, holding at most one header block
 * (MIME_HEADER_MAX) and the text it keeps (MIME_TEXT_MAX) at a time; a
 * 500 MiB attachment costs only its decoder's state.  Sans-I/O: no fds,
 * no database, no clock.
 *
 * It never fails: what it cannot understand it flags (enum mime_flag) and
 * goes on, and mime_parser_finish() always returns a mime_meta.
 */
#ifndef STORE_MIME_PARSER_H
#define STORE_MIME_PARSER_H

#include <stddef.h>

#include "store/mime/meta.h"

struct mime_parser;

struct mime_parser *mime_parser_new(void);
/* Takes all of p[0, n); any split of a message gives the same result. */
void mime_parser_feed(struct mime_parser *mp, const void *p, size_t n);
/*
 * Ends the message: returns what was learned (the caller's, to free with
 * mime_meta_free()).  Only mime_parser_free() may follow.
 */
struct mime_meta *mime_parser_finish(struct mime_parser *mp);
void mime_parser_free(struct mime_parser **mp);

#endif
