#include "pop3/sasl.h"

#include <string.h>

#include "pop3/parse.h"

/* Stops the compiler from dropping a wipe of a buffer about to die. */
static void
wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;

	while (n-- > 0)
		*v++ = 0;
}

size_t
pop3_base64(const void *in, size_t n, char *out)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = in;
	unsigned long v;
	size_t i, o = 0;

	for (i = 0; i + 2 < n; i += 3) {
		v = (unsigned long)p[i] << 16 | (unsigned long)p[i + 1] << 8 |
		    p[i + 2];
		out[o++] = alphabet[(v >> 18) & 0x3f];
		out[o++] = alphabet[(v >> 12) & 0x3f];
		out[o++] = alphabet[(v >> 6) & 0x3f];
		out[o++] = alphabet[v & 0x3f];
	}
	if (i < n) {
		v = (unsigned long)p[i] << 16;
		if (i + 1 < n)
			v |= (unsigned long)p[i + 1] << 8;
		out[o++] = alphabet[(v >> 18) & 0x3f];
		out[o++] = alphabet[(v >> 12) & 0x3f];
		out[o++] = i + 1 < n ? alphabet[(v >> 6) & 0x3f] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
	return o;
}

size_t
pop3_sasl_plain(const char *user, const char *password, char *out)
{
	unsigned char msg[2 + 2 * POP3_CRED_MAX];
	size_t ulen = strlen(user), plen = strlen(password), n;

	if (ulen > POP3_CRED_MAX || plen > POP3_CRED_MAX)
		return 0;
	msg[0] = '\0';
	memcpy(msg + 1, user, ulen);
	msg[1 + ulen] = '\0';
	memcpy(msg + 2 + ulen, password, plen);
	n = pop3_base64(msg, 2 + ulen + plen, out);
	wipe(msg, sizeof(msg));
	return n;
}

int
pop3_apop_digest(pop3_md5_fn *md5, const char *ts, size_t tslen,
    const char *password, char out[33])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char msg[POP3_LINE_MAX + POP3_CRED_MAX], digest[16];
	size_t plen = strlen(password), i;

	if (tslen > POP3_LINE_MAX - 1 || plen > POP3_CRED_MAX)
		return -1;
	memcpy(msg, ts, tslen);
	memcpy(msg + tslen, password, plen);
	md5(msg, tslen + plen, digest);
	for (i = 0; i < 16; i++) {
		out[2 * i] = hex[digest[i] >> 4];
		out[2 * i + 1] = hex[digest[i] & 0x0f];
	}
	out[32] = '\0';
	wipe(msg, sizeof(msg));
	wipe(digest, sizeof(digest));
	return 0;
}
