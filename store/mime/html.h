/*
 * HTML reduced to text, as a stream split anywhere: tags dropped, the
 * contents of script and style dropped, comments dropped, block tags as
 * line breaks, the common character references decoded (&amp; &lt; &gt;
 * &quot; &apos; &nbsp; &#NN; &#xNN; and a few more).  Input and output
 * are UTF-8.
 */
#ifndef STORE_MIME_HTML_H
#define STORE_MIME_HTML_H

#include <stdbool.h>
#include <stddef.h>

#include "store/mime/utf8.h"

#define HTML_NAME_MAX 16

struct mime_html {
	int state;
	char name[HTML_NAME_MAX];
	size_t nname;
	bool closing;
	char quote;
	int dashes;
	int skip; /* inside script (1) or style (2) */
	char ent[HTML_NAME_MAX];
	size_t nent;
	bool nl; /* the output ends a line */
};

void mime_html_init(struct mime_html *h);
void mime_html_feed(struct mime_html *h, const char *p, size_t n,
    mime_sink_fn *sink, void *ctx);
void mime_html_finish(struct mime_html *h, mime_sink_fn *sink, void *ctx);

#endif
