#include "pop3/dot.h"

#include <string.h>

/*
 * Where we are in the current line.  A dot at the start of a line is never
 * output: it is either stuffing or the first byte of the terminator.  A CR
 * after that dot is held back (DOT_DOTCR) until the next byte tells whether
 * it ends the body; that held CR is the one extra output byte a call may
 * produce beyond its input.
 */
enum {
	DOT_BOL,	/* at the start of a line */
	DOT_MID,	/* inside a line */
	DOT_DOT,	/* the line so far is "." */
	DOT_DOTCR,	/* the line so far is ".\r" */
	DOT_END,	/* the terminator was consumed */
};

void
pop3_dot_init(struct pop3_dot *d)
{
	d->state = DOT_BOL;
}

size_t
pop3_dot_feed(struct pop3_dot *d, const char *in, size_t n, char *out,
    size_t *outlen_r, bool *end_r)
{
	const char *lf;
	size_t i = 0, o = 0, len;

	while (i < n && d->state != DOT_END) {
		switch (d->state) {
		case DOT_BOL:
			if (in[i] == '.') {
				d->state = DOT_DOT;
				i++;
				break;
			}
			d->state = DOT_MID;
			break;
		case DOT_MID:
			/* Copy through the end of the line in one go. */
			lf = memchr(in + i, '\n', n - i);
			len = lf != NULL ? (size_t)(lf - (in + i)) + 1 : n - i;
			memcpy(out + o, in + i, len);
			o += len;
			i += len;
			if (lf != NULL)
				d->state = DOT_BOL;
			break;
		case DOT_DOT:
			if (in[i] == '\n') {
				d->state = DOT_END;
				i++;
			} else if (in[i] == '\r') {
				d->state = DOT_DOTCR;
				i++;
			} else {
				/* The dot was stuffing: drop it. */
				d->state = DOT_MID;
			}
			break;
		case DOT_DOTCR:
			if (in[i] == '\n') {
				d->state = DOT_END;
				i++;
			} else {
				/* ".\r" then more: the CR was content. */
				out[o++] = '\r';
				d->state = DOT_MID;
			}
			break;
		}
	}
	*outlen_r = o;
	*end_r = d->state == DOT_END;
	return i;
}
