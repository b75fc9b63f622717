/*
 * Incremental dot-unstuffer and end-of-body detector for POP3 multi-line
 * responses (RFC 1939 section 3), resumable at any byte.
 *
 * A line ends at LF, whether or not CR precedes it, so servers that send bare
 * LF are handled without configuration and their bytes are kept as sent.  A
 * line that begins with "." has that dot removed; the line "." followed by
 * CRLF or LF ends the body and is not part of it.
 */
#ifndef POP3_DOT_H
#define POP3_DOT_H

#include <stdbool.h>
#include <stddef.h>

struct pop3_dot {
	int state;
};

/* Resets to the start of a body (at the start of a line). */
void pop3_dot_init(struct pop3_dot *d);

/*
 * Unstuffs in[0, n) into out, whose capacity must be at least n + 1 (one
 * byte may be held back from the previous call).  Consumes input up to and
 * including the terminating line and no further.
 * Returns the number of input bytes consumed; *outlen_r receives the number
 * of output bytes and *end_r whether the terminator was consumed.
 */
size_t pop3_dot_feed(struct pop3_dot *d, const char *in, size_t n, char *out,
    size_t *outlen_r, bool *end_r);

#endif
