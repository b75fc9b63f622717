/*
 * The JSON body of an OAuth 2.0 token response (RFC 6749 sections 5.1 and
 * 5.2): a small, bounded parser that validates the whole document and
 * keeps the few top-level members a client needs.  Sans-I/O, no
 * allocation beyond the kept strings, fuzzed (tests/fuzz/fuzz_oauth_json.c).
 */
#ifndef INGESTD_OAUTH_JSON_H
#define INGESTD_OAUTH_JSON_H

#include <stddef.h>

/* Longest body parsed, in bytes; a longer one is refused unread. */
#define OAUTH_JSON_MAX 65536
/* Deepest nesting of objects and arrays accepted. */
#define OAUTH_JSON_DEPTH 16

struct oauth_json {
	char *access_token;	/* NULL when absent; secrets are wiped */
	char *refresh_token;	/* by oauth_json_release() */
	char *token_type;
	char *error;		/* RFC 6749 5.2, e.g. "invalid_grant" */
	char *error_description;
	long long expires_in;	/* seconds; -1 when absent */
};

/*
 * Parses p[0, n), which must be one JSON object (RFC 8259; UTF-8 not
 * checked beyond escapes), into *r.  The kept members must be strings,
 * except expires_in, a non-negative integer or a string of digits; each
 * may appear once.  Returns 0, or -1 with the reason and its byte offset
 * in err, and *r released.  Never reads past n.
 */
int oauth_json_parse(const char *p, size_t n, struct oauth_json *r,
    char *err, size_t errlen);

/* Wipes and frees the strings of r; r may then be parsed into again. */
void oauth_json_release(struct oauth_json *r);

#endif
