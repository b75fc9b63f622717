/* fuzz-sources: pop3/dot.c */
/*
 * pop3/dot: fed whole, one byte at a time and in pseudo-random pieces, the
 * unstuffer must agree with an obvious line-at-a-time reference on the
 * bytes out, the bytes consumed and whether the body ended, and never
 * write more than its input size + 1 per call.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pop3/dot.h"

#define CHECK(e) ((e) ? (void)0 : abort())

static size_t
reference(const uint8_t *in, size_t n, uint8_t *out, size_t *outlen_r,
    bool *end_r)
{
	size_t pos = 0, o = 0, len;
	const uint8_t *lf;

	*end_r = false;
	while (pos < n) {
		lf = memchr(in + pos, '\n', n - pos);
		len = lf != NULL ? (size_t)(lf - (in + pos)) + 1 : n - pos;
		if (in[pos] == '.' && (len == 1 + (lf != NULL) ||
		    (len == 2 + (lf != NULL) && in[pos + 1] == '\r'))) {
			/* The terminator, or what may yet become it. */
			*end_r = lf != NULL;
			pos += len;
			break;
		}
		if (in[pos] == '.') {
			memcpy(out + o, in + pos + 1, len - 1);
			o += len - 1;
		} else {
			memcpy(out + o, in + pos, len);
			o += len;
		}
		pos += len;
	}
	*outlen_r = o;
	return pos;
}

static void
replay(const uint8_t *data, size_t size, uint32_t step, uint8_t *got,
    size_t *gotlen_r, size_t *used_r, bool *end_r)
{
	struct pop3_dot d;
	size_t pos = 0, piece, used, outlen, o = 0;
	char *out;
	bool end = false;

	pop3_dot_init(&d);
	while (pos < size && !end) {
		if (step == 0)
			piece = size - pos;
		else if (step == 1)
			piece = 1;
		else {
			step = step * 1103515245u + 12345u;
			piece = 1 + (step >> 16) % 300;
			if (piece > size - pos)
				piece = size - pos;
		}
		/* Exactly the promised capacity, for ASan to police. */
		out = malloc(piece + 1);
		CHECK(out != NULL);
		used = pop3_dot_feed(&d, (const char *)data + pos, piece, out,
		    &outlen, &end);
		CHECK(used <= piece && outlen <= piece + 1);
		CHECK(end || used == piece);
		memcpy(got + o, out, outlen);
		o += outlen;
		free(out);
		pos += used;
	}
	*gotlen_r = o;
	*used_r = pos;
	*end_r = end;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *want, *got;
	size_t wantlen, wantused, gotlen, gotused, i;
	uint32_t steps[3] = { 0, 1, 2 + (uint32_t)size };
	bool wantend, gotend;

	want = malloc(size + 1);
	got = malloc(size + 1);
	CHECK(want != NULL && got != NULL);
	wantused = reference(data, size, want, &wantlen, &wantend);
	/* An unfinished "." or ".\r" at the end is consumed, not output. */
	if (!wantend)
		wantused = size;
	for (i = 0; i < 3; i++) {
		replay(data, size, steps[i], got, &gotlen, &gotused, &gotend);
		CHECK(gotend == wantend);
		CHECK(gotused == wantused);
		CHECK(gotlen == wantlen);
		CHECK(memcmp(got, want, wantlen) == 0);
	}
	free(want);
	free(got);
	return 0;
}
