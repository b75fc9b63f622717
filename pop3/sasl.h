/*
 * Credential encodings for POP3 authentication: base64 for SASL PLAIN
 * (RFC 4616 over RFC 5034), XOAUTH2 (Google's and Microsoft's bearer-token
 * mechanism) and OAUTHBEARER (RFC 7628), and the APOP digest (RFC 1939
 * section 7).  The MD5 itself is the owner's callback, so pop3/ needs no
 * crypto library.
 *
 * The outputs hold secrets: callers wipe them when done.
 */
#ifndef POP3_SASL_H
#define POP3_SASL_H

#include <stdbool.h>
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

/*
 * Longest OAuth 2.0 access token in octets.  Providers' tokens run to a
 * few KiB (Exchange Online's are past 1 KiB, and grow with group claims).
 */
#define POP3_TOKEN_MAX 32768

/*
 * Whether token can be sent: 1 to POP3_TOKEN_MAX octets, none of them a
 * control character (CR or LF would inject commands, 0x01 would end the
 * SASL field) or a blank.
 */
bool pop3_sasl_token_ok(const char *token);

/*
 * The XOAUTH2 initial response, base64("user=" user "\1auth=Bearer "
 * token "\1\1"), in a new NUL-terminated string (xmalloc'd; the caller
 * wipes and frees it), its length in *len_r.  NULL if user is longer than
 * POP3_CRED_MAX or holds a control character, or token fails
 * pop3_sasl_token_ok().
 */
char *pop3_sasl_xoauth2(const char *user, const char *token, size_t *len_r);

/*
 * The OAUTHBEARER initial response of RFC 7628 section 3.1: the GS2 header
 * "n,a=" user "," (with "," and "=" in user written =2C and =3D), then
 * "\1host=" host "\1port=" port when host is not NULL, then
 * "\1auth=Bearer " token "\1\1", base64-encoded, as for
 * pop3_sasl_xoauth2().
 */
char *pop3_sasl_oauthbearer(const char *user, const char *host, unsigned port,
    const char *token, size_t *len_r);

/*
 * Decodes base64 text in[0, n) into out, which must hold n / 4 * 3 + 3
 * bytes.  Returns the decoded length, or -1 if the text is not base64
 * (padding only at the end; no blanks).
 */
long pop3_base64_decode(const char *in, size_t n, unsigned char *out);

/*
 * What a server's OAuth error challenge says (RFC 7628 section 3.2.2: a
 * JSON object with "status", "schemes", "scope"; Microsoft and Google send
 * the same shape for XOAUTH2): "status=401 schemes=bearer scope=..." from
 * whichever of status, error, schemes and scope it holds as strings or
 * numbers, printable ASCII only, into out (at most outlen bytes, always
 * NUL-terminated).  A challenge that is not such an object gives "".
 */
void pop3_sasl_oauth_error(const unsigned char *json, size_t n, char *out,
    size_t outlen);

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
