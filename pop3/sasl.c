#include "pop3/sasl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingestd/base/xmalloc.h"
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

bool
pop3_sasl_token_ok(const char *token)
{
	size_t i;

	for (i = 0; token[i] != '\0'; i++)
		if ((unsigned char)token[i] <= 0x20 || token[i] == 0x7f ||
		    i >= POP3_TOKEN_MAX)
			return false;
	return i > 0;
}

static bool
user_ok(const char *user)
{
	size_t i;

	for (i = 0; user[i] != '\0'; i++)
		if ((unsigned char)user[i] < 0x20 || user[i] == 0x7f ||
		    i >= POP3_CRED_MAX)
			return false;
	return true;
}

/* base64 of msg[0, n) in a new string; wipes msg. */
static char *
encode_wipe(char *msg, size_t n, size_t *len_r)
{
	char *out = xmalloc(POP3_BASE64_LEN(n) + 1);

	*len_r = pop3_base64(msg, n, out);
	wipe(msg, n);
	free(msg);
	return out;
}

char *
pop3_sasl_xoauth2(const char *user, const char *token, size_t *len_r)
{
	size_t ulen, tlen, n;
	char *msg;

	if (!user_ok(user) || !pop3_sasl_token_ok(token))
		return NULL;
	ulen = strlen(user);
	tlen = strlen(token);
	msg = xmalloc(ulen + tlen + 32);
	n = (size_t)snprintf(msg, ulen + tlen + 32,
	    "user=%s\001auth=Bearer %s\001\001", user, token);
	return encode_wipe(msg, n, len_r);
}

char *
pop3_sasl_oauthbearer(const char *user, const char *host, unsigned port,
    const char *token, size_t *len_r)
{
	size_t ulen, tlen, hlen, cap, n = 0, i;
	char *msg;

	if (!user_ok(user) || !pop3_sasl_token_ok(token) ||
	    (host != NULL && !user_ok(host)))
		return NULL;
	ulen = strlen(user);
	tlen = strlen(token);
	hlen = host != NULL ? strlen(host) : 0;
	cap = 3 * ulen + tlen + hlen + 64;
	msg = xmalloc(cap);
	memcpy(msg, "n,a=", 4);
	n = 4;
	/* RFC 5801 saslname: "," and "=" are escaped. */
	for (i = 0; i < ulen; i++) {
		if (user[i] == ',' || user[i] == '=') {
			memcpy(msg + n, user[i] == ',' ? "=2C" : "=3D", 3);
			n += 3;
		} else
			msg[n++] = user[i];
	}
	msg[n++] = ',';
	if (host != NULL)
		n += (size_t)snprintf(msg + n, cap - n,
		    "\001host=%s\001port=%u", host, port);
	n += (size_t)snprintf(msg + n, cap - n, "\001auth=Bearer %s\001\001",
	    token);
	return encode_wipe(msg, n, len_r);
}

static int
b64val(unsigned char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

long
pop3_base64_decode(const char *in, size_t n, unsigned char *out)
{
	unsigned long v = 0;
	size_t i, bits = 0, o = 0, pad = 0;
	int d;

	for (i = 0; i < n; i++) {
		if (in[i] == '=') {
			pad++;
			continue;
		}
		if (pad > 0 || (d = b64val((unsigned char)in[i])) == -1)
			return -1;
		v = (v << 6) | (unsigned long)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (unsigned char)(v >> bits);
			v &= (1UL << bits) - 1;
		}
	}
	if (pad > 2 || (pad > 0 && (n % 4) != 0))
		return -1;
	return (long)o;
}

/*
 * At p[*i], a JSON string (its contents, undecoded, in *v, *vlen) or a
 * bare number; advances *i past it.  false for anything else.
 */
static bool
json_scalar(const unsigned char *p, size_t n, size_t *i,
    const unsigned char **v, size_t *vlen)
{
	size_t j = *i;

	if (j < n && p[j] == '"') {
		*v = p + ++j;
		while (j < n && p[j] != '"') {
			if (p[j] == '\\' && j + 1 < n)
				j++;
			j++;
		}
		if (j >= n)
			return false;
		*vlen = (size_t)(p + j - *v);
		*i = j + 1;
		return true;
	}
	*v = p + j;
	while (j < n && ((p[j] >= '0' && p[j] <= '9') || p[j] == '-'))
		j++;
	*vlen = (size_t)(p + j - *v);
	*i = j;
	return *vlen > 0;
}

void
pop3_sasl_oauth_error(const unsigned char *json, size_t n, char *out,
    size_t outlen)
{
	static const char *const keys[] = { "status", "error", "schemes",
		"scope" };
	const unsigned char *k, *v;
	size_t i = 0, o = 0, klen, vlen, j, w;

	if (outlen == 0)
		return;
	out[0] = '\0';
	while (i < n &&
	    (json[i] == ' ' || json[i] == '\t' || json[i] == '\r' ||
		json[i] == '\n'))
		i++;
	if (i >= n || json[i] != '{')
		return;
	i++;
	/* Flat objects only: "key": scalar, ... */
	for (;;) {
		while (i < n && strchr(" \t\r\n,", json[i]) != NULL &&
		    json[i] != '\0')
			i++;
		if (i >= n || json[i] == '}' ||
		    !json_scalar(json, n, &i, &k, &klen) || k[-1] != '"')
			break;
		while (i < n && (json[i] == ' ' || json[i] == '\t'))
			i++;
		if (i >= n || json[i++] != ':')
			break;
		while (i < n && (json[i] == ' ' || json[i] == '\t'))
			i++;
		if (!json_scalar(json, n, &i, &v, &vlen))
			break;
		for (j = 0; j < sizeof(keys) / sizeof(keys[0]); j++)
			if (strlen(keys[j]) == klen &&
			    memcmp(keys[j], k, klen) == 0)
				break;
		if (j == sizeof(keys) / sizeof(keys[0]))
			continue;
		w = (size_t)snprintf(out + o, outlen - o,
		    "%s%s=", o > 0 ? " " : "", keys[j]);
		if (w >= outlen - o)
			break;
		o += w;
		for (w = 0; w < vlen && o + 1 < outlen; w++)
			if (v[w] > 0x20 && v[w] < 0x7f && v[w] != '\\')
				out[o++] = (char)v[w];
		out[o] = '\0';
	}
}
