/*
 * JSON output (see json.h); the reader is json.c.
 */
#include "store/json.h"

#include <stdbool.h>
#include <string.h>

/* The length of the valid UTF-8 sequence at s, or 0. */
static size_t
utf8_len(const unsigned char *s)
{
	size_t need, k;
	unsigned c = s[0], min;

	if (c < 0x80)
		return 1;
	if ((c & 0xe0) == 0xc0)
		need = 1, c &= 0x1f, min = 0x80;
	else if ((c & 0xf0) == 0xe0)
		need = 2, c &= 0x0f, min = 0x800;
	else if ((c & 0xf8) == 0xf0)
		need = 3, c &= 0x07, min = 0x10000;
	else
		return 0;
	for (k = 1; k <= need; k++) {
		if ((s[k] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[k] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	return need + 1;
}

void
json_str(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n;

	if (s == NULL) {
		fputs("null", f);
		return;
	}
	putc('"', f);
	while (*p != '\0') {
		switch (*p) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				fprintf(f, "\\u%04x", *p);
				break;
			}
			if ((n = utf8_len(p)) == 0) {
				fputs("\\ufffd", f);
				break;
			}
			fwrite(p, 1, n, f);
			p += n;
			continue;
		}
		p++;
	}
	putc('"', f);
}

void
json_field(FILE *f, const char *key, const char *s, int first)
{
	if (!first)
		putc(',', f);
	json_str(f, key);
	putc(':', f);
	json_str(f, s);
}

void
json_num(FILE *f, const char *key, const char *s)
{
	const char *p = s;
	bool ok = s != NULL && *s != '\0';

	if (ok && *p == '-')
		p++;
	if (ok && *p == '\0')
		ok = false;
	for (; ok && *p != '\0'; p++)
		if (*p < '0' || *p > '9')
			ok = false;
	putc(',', f);
	json_str(f, key);
	putc(':', f);
	fputs(ok ? s : "null", f);
}
