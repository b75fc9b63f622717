/*
 * Header field values: unfolding, RFC 2047 encoded words, and the
 * parameters of Content-Type and Content-Disposition (quoted strings and
 * RFC 2231 continuations and charsets).  Values are the raw bytes of a
 * field after its colon; results are valid UTF-8 without NUL.  Each
 * function returns the MIME_F_* flags it earned.
 */
#ifndef STORE_MIME_HEADER_H
#define STORE_MIME_HEADER_H

#include <stddef.h>
#include <stdint.h>

#include "store/mime/strbuf.h"

/* Appends p[0, n) without its line breaks, trimmed at both ends. */
void mime_unfold(const char *p, size_t n, struct mime_strbuf *out);

/*
 * Appends p[0, n) with RFC 2047 encoded words decoded wherever they stand
 * (also inside words and quotes, as misbehaving clients write them), the
 * white space between two adjacent encoded words dropped, and adjacent
 * words of one charset joined before conversion (so a character split
 * between two words survives).  Other 8-bit bytes are taken as UTF-8.
 */
uint32_t mime_2047_decode(const char *p, size_t n, struct mime_strbuf *out);

/* A decoded, sanitized copy of p[0, n) (2047), or NULL if empty. */
char *mime_decoded_string(const char *p, size_t n, uint32_t *flags);

/* What Content-Type or Content-Disposition says. */
struct mime_params {
	char *value;	/* "text/plain", "attachment": lower-cased, or NULL
			 * when missing or malformed */
	char *boundary; /* as written */
	char *charset;	/* as written */
	char *name;	/* decoded */
	char *filename; /* decoded */
};

/*
 * Parses a Content-Type (ctype true: the value is type/subtype) or
 * Content-Disposition value.  Release with mime_params_release().
 */
uint32_t
mime_params_parse(const char *p, size_t n, bool ctype, struct mime_params *out);
void mime_params_release(struct mime_params *mp);

/*
 * Message-ID (and List-Id, whose id stands in <> after a phrase): the
 * text inside the angle brackets, or the trimmed value without them;
 * NULL if empty.
 */
char *mime_angle_id(const char *p, size_t n, bool last);

/* The length of the encoded word at p[0, n), or 0 if none starts there. */
size_t mime_encoded_word_len(const char *p, size_t n);

/* Skips a comment starting at p[*i] == '('; nested, with quoted pairs. */
void mime_skip_comment(const char *p, size_t n, size_t *i);

#endif
