/*
 * Credential encodings for POP3 authentication: base64 for SASL PLAIN
 * (RFC 4616 over RFC 5034) and the APOP digest (RFC 1939 section 7).  The
 * MD5 itself is the owner's callback, so pop3/ needs no crypto library.
 *
 * The outputs hold secrets: callers wipe them when done.
 */
#ifndef POP3_SASL_H
#define POP3_SASL_H

#include <stddef.h>

/* Longest user name and password in octets (RFC 4616 asks for 255). */
#define POP3_CRED_MAX 255

/* Length of the base64 text for n octets, padding included, no NUL. */
#define POP3_BASE64_LEN(n) ((((n) + 2) / 3) * 4)

/* Longest AUTH PLAIN response: base64 of NUL user NUL password. */
#define POP3_SASL_PLAIN_MAX POP3_BASE64_LEN(2 + 2 * POP3_CRED_MAX)

/*
 * Writes the base64 (RFC 4648, padded) of in[0, n) to out, which must hold
 * POP3_BASE64_LEN(n) + 1 bytes, NUL-terminates it and returns its length.
 */
size_t pop3_base64(const void *in, size_t n, char *out);

/*
 * Writes the SASL PLAIN response for an empty authorization identity,
 * base64("\0" user "\0" password), to out (POP3_SASL_PLAIN_MAX + 1 bytes).
 * Returns its length, or 0 if user or password exceeds POP3_CRED_MAX.
 */
size_t pop3_sasl_plain(const char *user, const char *password, char *out);

typedef void pop3_md5_fn(const void *p, size_t n, unsigned char out[16]);

/*
 * Writes the APOP digest, the lower-case hex MD5 of the greeting timestamp
 * (angle brackets included) followed by the password, to out as 32 hex
 * digits and a NUL.  Returns 0, or -1 if tslen exceeds 511 octets (no
 * status line holds more) or password exceeds POP3_CRED_MAX.
 */
int pop3_apop_digest(pop3_md5_fn *md5, const char *ts, size_t tslen,
    const char *password, char out[33]);

#endif
