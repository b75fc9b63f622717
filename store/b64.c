#include "store/b64.h"

#include <stdint.h>

static const char b64_alpha[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void
b64_encode(const void *p, size_t n, char *out)
{
	const unsigned char *s = p;
	uint32_t v;
	size_t i;

	for (i = 0; i + 3 <= n; i += 3) {
		v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8 | s[i + 2];
		*out++ = b64_alpha[v >> 18];
		*out++ = b64_alpha[(v >> 12) & 63];
		*out++ = b64_alpha[(v >> 6) & 63];
		*out++ = b64_alpha[v & 63];
	}
	if (n - i == 1) {
		v = (uint32_t)s[i] << 16;
		*out++ = b64_alpha[v >> 18];
		*out++ = b64_alpha[(v >> 12) & 63];
		*out++ = '=';
		*out++ = '=';
	} else if (n - i == 2) {
		v = (uint32_t)s[i] << 16 | (uint32_t)s[i + 1] << 8;
		*out++ = b64_alpha[v >> 18];
		*out++ = b64_alpha[(v >> 12) & 63];
		*out++ = b64_alpha[(v >> 6) & 63];
		*out++ = '=';
	}
	*out = '\0';
}

static int
b64_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
b64_decode(const char *s, size_t len, unsigned char *out, size_t cap,
    size_t *n_r)
{
	size_t i, n = 0, pad = 0;
	int v[4], j;
	uint32_t w;

	*n_r = 0;
	if (len % 4 != 0)
		return -1;
	for (i = 0; i < len; i += 4) {
		for (j = 0; j < 4; j++) {
			if (s[i + j] == '=' && i + 4 == len && j >= 2) {
				v[j] = 0;
				pad++;
				continue;
			}
			if (pad > 0 || (v[j] = b64_val(s[i + j])) == -1)
				return -1;
		}
		w = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
		    (uint32_t)v[2] << 6 | (uint32_t)v[3];
		/* Canonical: the bits the padding hides are zero. */
		if ((pad == 1 && (w & 0xff) != 0) ||
		    (pad == 2 && (w & 0xffff) != 0))
			return -1;
		if (n + 3 - pad > cap)
			return -1;
		out[n++] = w >> 16;
		if (pad < 2)
			out[n++] = (w >> 8) & 0xff;
		if (pad < 1)
			out[n++] = w & 0xff;
	}
	*n_r = n;
	return 0;
}
