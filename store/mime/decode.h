/*
 * Content-Transfer-Encoding decoders as streams split anywhere: base64
 * (white space ignored, other garbage skipped and flagged), quoted-
 * printable (soft line breaks, transport padding dropped, bad escapes kept
 * as written and flagged), and the identity encodings.  They never fail;
 * `bad` says the input was broken (MIME_F_BAD_ENCODING).
 */
#ifndef STORE_MIME_DECODE_H
#define STORE_MIME_DECODE_H

#include <stdbool.h>
#include <stddef.h>

#include "store/mime/utf8.h"

enum mime_cte {
	MIME_CTE_IDENTITY, /* 7bit, 8bit, binary, unknown */
	MIME_CTE_BASE64,
	MIME_CTE_QP,
};

/* Transport padding held back before it is known to end a line. */
#define QP_WS_MAX 256

struct mime_decoder {
	enum mime_cte cte;
	bool bad;
	/* base64 */
	unsigned int quantum;
	int nq;
	bool padded;
	/* quoted-printable */
	int qstate;
	char hex1;
	size_t nws; /* pending white space */
	char ws[QP_WS_MAX];
};

enum mime_cte mime_cte_parse(const char *value);
void mime_decoder_init(struct mime_decoder *d, enum mime_cte cte);
void mime_decoder_feed(struct mime_decoder *d, const void *p, size_t n,
    mime_sink_fn *sink, void *ctx);
void mime_decoder_finish(struct mime_decoder *d, mime_sink_fn *sink, void *ctx);

/*
 * One-shot decoders for RFC 2047 encoded words: append the decoded bytes
 * of p[0, n) to out and return whether the input was broken.  Q turns '_'
 * into a space.
 */
bool mime_decode_b(const char *p, size_t n, struct mime_strbuf *out);
bool mime_decode_q(const char *p, size_t n, struct mime_strbuf *out);

/* The value of a hex digit, or -1. */
int mime_hexval(int c);

#endif
