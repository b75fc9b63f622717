#include "store/mime/decode.h"

#include <stdint.h>
#include <string.h>
#include <strings.h>

#define OUT_MAX 4096

/* Decoded bytes, gathered before they go to the sink. */
struct out {
	char buf[OUT_MAX];
	size_t n;
	mime_sink_fn *sink;
	void *ctx;
};

static void
out_byte(struct out *o, char c)
{
	if (o->n == OUT_MAX) {
		o->sink(o->ctx, o->buf, o->n);
		o->n = 0;
	}
	o->buf[o->n++] = c;
}

static void
out_bytes(struct out *o, const char *p, size_t n)
{
	while (n-- > 0)
		out_byte(o, *p++);
}

static void
out_flush(struct out *o)
{
	if (o->n > 0)
		o->sink(o->ctx, o->buf, o->n);
	o->n = 0;
}

int
mime_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Base64 digit values plus one; 0 for anything else. */
static const unsigned char b64tab[256] = {
	['A'] = 1,
	['B'] = 2,
	['C'] = 3,
	['D'] = 4,
	['E'] = 5,
	['F'] = 6,
	['G'] = 7,
	['H'] = 8,
	['I'] = 9,
	['J'] = 10,
	['K'] = 11,
	['L'] = 12,
	['M'] = 13,
	['N'] = 14,
	['O'] = 15,
	['P'] = 16,
	['Q'] = 17,
	['R'] = 18,
	['S'] = 19,
	['T'] = 20,
	['U'] = 21,
	['V'] = 22,
	['W'] = 23,
	['X'] = 24,
	['Y'] = 25,
	['Z'] = 26,
	['a'] = 27,
	['b'] = 28,
	['c'] = 29,
	['d'] = 30,
	['e'] = 31,
	['f'] = 32,
	['g'] = 33,
	['h'] = 34,
	['i'] = 35,
	['j'] = 36,
	['k'] = 37,
	['l'] = 38,
	['m'] = 39,
	['n'] = 40,
	['o'] = 41,
	['p'] = 42,
	['q'] = 43,
	['r'] = 44,
	['s'] = 45,
	['t'] = 46,
	['u'] = 47,
	['v'] = 48,
	['w'] = 49,
	['x'] = 50,
	['y'] = 51,
	['z'] = 52,
	['0'] = 53,
	['1'] = 54,
	['2'] = 55,
	['3'] = 56,
	['4'] = 57,
	['5'] = 58,
	['6'] = 59,
	['7'] = 60,
	['8'] = 61,
	['9'] = 62,
	['+'] = 63,
	['/'] = 64,
};

static int
b64val(unsigned char c)
{
	return (int)b64tab[c] - 1;
}

enum mime_cte
mime_cte_parse(const char *v)
{
	if (v == NULL)
		return MIME_CTE_IDENTITY;
	while (*v == ' ' || *v == '\t')
		v++;
	if (strncasecmp(v, "base64", 6) == 0)
		return MIME_CTE_BASE64;
	if (strncasecmp(v, "quoted-printable", 16) == 0)
		return MIME_CTE_QP;
	return MIME_CTE_IDENTITY;
}

void
mime_decoder_init(struct mime_decoder *d, enum mime_cte cte)
{
	memset(d, 0, sizeof(*d));
	d->cte = cte;
}

/* A base64 quantum of nq (2 to 4) characters, as bytes. */
static void
b64_flush(struct mime_decoder *d, struct out *o)
{
	unsigned int q = d->quantum << (6 * (4 - d->nq));

	if (d->nq == 1)
		d->bad = true;
	if (d->nq >= 2)
		out_byte(o, (char)(q >> 16));
	if (d->nq >= 3)
		out_byte(o, (char)(q >> 8));
	if (d->nq == 4)
		out_byte(o, (char)q);
	d->quantum = 0;
	d->nq = 0;
}

/*
 * The digit values shifted to their place in a quantum's 24 bits, one
 * table per place; anything that is no digit sets bit 31.
 */
#define B64V(c)                                                                \
	((c) >= 'A' && (c) <= 'Z'	 ? (c) - 'A' :                         \
		(c) >= 'a' && (c) <= 'z' ? (c) - 'a' + 26 :                    \
		(c) >= '0' && (c) <= '9' ? (c) - '0' + 52 :                    \
		(c) == '+'		 ? 62 :                                \
		(c) == '/'		 ? 63 :                                \
					   -1)
#define B64S(c, s) (B64V(c) < 0 ? 0x80000000u : (uint32_t)B64V(c) << (s))
#define R4(f, i) f(i) f((i) + 1) f((i) + 2) f((i) + 3)
#define R16(f, i) R4(f, i) R4(f, (i) + 4) R4(f, (i) + 8) R4(f, (i) + 12)
#define R64(f, i) R16(f, i) R16(f, (i) + 16) R16(f, (i) + 32) R16(f, (i) + 48)
#define R256(f) R64(f, 0) R64(f, 64) R64(f, 128) R64(f, 192)
#define B64S18(c) B64S(c, 18),
#define B64S12(c) B64S(c, 12),
#define B64S6(c) B64S(c, 6),
#define B64S0(c) B64S(c, 0),
static const uint32_t b64d0[256] = { R256(B64S18) };
static const uint32_t b64d1[256] = { R256(B64S12) };
static const uint32_t b64d2[256] = { R256(B64S6) };
static const uint32_t b64d3[256] = { R256(B64S0) };

/*
 * Decodes the whole quanta at the start of p[0, n) that fit in o, up to
 * the first byte that is no base64 digit; returns the bytes taken.
 */
static size_t
b64_quanta(const unsigned char *p, size_t n, struct out *o)
{
	unsigned char *w = (unsigned char *)o->buf + o->n;
	size_t q = n / 4, room = (OUT_MAX - o->n) / 3, i = 0;
	uint32_t x;

	if (q > room)
		q = room;
	for (; q > 0; q--, i += 4) {
		x = b64d0[p[i]] | b64d1[p[i + 1]] | b64d2[p[i + 2]] |
		    b64d3[p[i + 3]];
		if (x & 0x80000000u)
			break;
		w[0] = (unsigned char)(x >> 16);
		w[1] = (unsigned char)(x >> 8);
		w[2] = (unsigned char)x;
		w += 3;
	}
	o->n = (size_t)(w - (unsigned char *)o->buf);
	return i;
}

static void
b64_feed(struct mime_decoder *d, const unsigned char *p, size_t n,
    struct out *o)
{
	size_t i;
	int v;

	for (i = 0; i < n; i++) {
		/* Whole quanta of four digits, the usual case, at once. */
		if (d->nq == 0 && !d->padded)
			i += b64_quanta(p + i, n - i, o);
		if (i >= n)
			break;
		v = b64val(p[i]);
		if (v >= 0) {
			if (d->padded) {
				/* Data after the padding: a second blob. */
				d->padded = false;
				d->bad = true;
			}
			d->quantum = d->quantum << 6 | (unsigned int)v;
			if (++d->nq == 4)
				b64_flush(d, o);
		} else if (p[i] == '=') {
			if (d->nq > 0)
				b64_flush(d, o);
			d->padded = true;
		} else if (p[i] != '\r' && p[i] != '\n' && p[i] != ' ' &&
		    p[i] != '\t')
			d->bad = true;
	}
}

/* Quoted-printable states. */
enum {
	QP_TEXT,
	QP_EQ,	   /* after '=' */
	QP_EQ1,	   /* after '=' and one hex digit */
	QP_SOFT,   /* after '=' and white space: a soft break? */
	QP_SOFTCR, /* ... and a CR */
	QP_CR,	   /* a CR that may start a line break */
};

static void
qp_ws_flush(struct mime_decoder *d, struct out *o)
{
	out_bytes(o, d->ws, d->nws);
	d->nws = 0;
}

static void
qp_feed(struct mime_decoder *d, const unsigned char *p, size_t n, struct out *o)
{
	size_t i;
	unsigned char c;

	for (i = 0; i < n; i++) {
		c = p[i];
again:
		switch (d->qstate) {
		case QP_TEXT:
			if (c == ' ' || c == '\t') {
				if (d->nws == QP_WS_MAX)
					qp_ws_flush(d, o);
				d->ws[d->nws++] = (char)c;
			} else if (c == '\n') {
				/* Padding before a line break is dropped. */
				d->nws = 0;
				out_byte(o, '\n');
			} else if (c == '\r') {
				d->qstate = QP_CR;
			} else if (c == '=') {
				qp_ws_flush(d, o);
				d->qstate = QP_EQ;
			} else {
				qp_ws_flush(d, o);
				out_byte(o, (char)c);
			}
			break;
		case QP_CR:
			d->qstate = QP_TEXT;
			if (c == '\n') {
				d->nws = 0;
				out_bytes(o, "\r\n", 2);
				break;
			}
			qp_ws_flush(d, o);
			out_byte(o, '\r');
			goto again;
		case QP_EQ:
			if (mime_hexval(c) >= 0) {
				d->hex1 = (char)c;
				d->qstate = QP_EQ1;
			} else if (c == '\n') {
				d->qstate = QP_TEXT;
			} else if (c == '\r') {
				d->qstate = QP_SOFTCR;
			} else if (c == ' ' || c == '\t') {
				d->qstate = QP_SOFT;
			} else {
				d->bad = true;
				out_byte(o, '=');
				d->qstate = QP_TEXT;
				goto again;
			}
			break;
		case QP_EQ1:
			d->qstate = QP_TEXT;
			if (mime_hexval(c) >= 0) {
				out_byte(o,
				    (char)(mime_hexval(d->hex1) << 4 |
					mime_hexval(c)));
				break;
			}
			d->bad = true;
			out_byte(o, '=');
			out_byte(o, d->hex1);
			goto again;
		case QP_SOFT:
			if (c == ' ' || c == '\t')
				break;
			if (c == '\n') {
				d->qstate = QP_TEXT;
				break;
			}
			if (c == '\r') {
				d->qstate = QP_SOFTCR;
				break;
			}
			/* "= x": not a soft break; the padding is lost. */
			d->bad = true;
			out_byte(o, '=');
			d->qstate = QP_TEXT;
			goto again;
		case QP_SOFTCR:
			d->qstate = QP_TEXT;
			if (c == '\n')
				break;
			d->bad = true;
			out_bytes(o, "=\r", 2);
			goto again;
		}
	}
}

static void
qp_finish(struct mime_decoder *d, struct out *o)
{
	switch (d->qstate) {
	case QP_CR:
		out_byte(o, '\r');
		break;
	case QP_EQ1:
		d->bad = true;
		out_byte(o, '=');
		out_byte(o, d->hex1);
		break;
	case QP_SOFTCR:
		d->bad = true;
		out_bytes(o, "=\r", 2);
		break;
	default:
		/* A final '=' (and padding) is a soft break at the end. */
		break;
	}
	/* Padding at the very end is dropped like before a line break. */
	d->nws = 0;
	d->qstate = QP_TEXT;
}

void
mime_decoder_feed(struct mime_decoder *d, const void *p, size_t n,
    mime_sink_fn *sink, void *ctx)
{
	struct out o;

	if (d->cte == MIME_CTE_IDENTITY) {
		if (n > 0)
			sink(ctx, p, n);
		return;
	}
	o.n = 0;
	o.sink = sink;
	o.ctx = ctx;
	if (d->cte == MIME_CTE_BASE64)
		b64_feed(d, p, n, &o);
	else
		qp_feed(d, p, n, &o);
	out_flush(&o);
}

void
mime_decoder_finish(struct mime_decoder *d, mime_sink_fn *sink, void *ctx)
{
	struct out o;

	o.n = 0;
	o.sink = sink;
	o.ctx = ctx;
	if (d->cte == MIME_CTE_BASE64) {
		if (d->nq > 0)
			b64_flush(d, &o);
	} else if (d->cte == MIME_CTE_QP)
		qp_finish(d, &o);
	out_flush(&o);
}

static void
strbuf_sink(void *ctx, const char *p, size_t n)
{
	mime_strbuf_add(ctx, p, n);
}

bool
mime_decode_b(const char *p, size_t n, struct mime_strbuf *out)
{
	struct mime_decoder d;

	mime_decoder_init(&d, MIME_CTE_BASE64);
	mime_decoder_feed(&d, p, n, strbuf_sink, out);
	mime_decoder_finish(&d, strbuf_sink, out);
	return d.bad;
}

bool
mime_decode_q(const char *p, size_t n, struct mime_strbuf *out)
{
	bool bad = false;
	size_t i;
	int hi, lo;

	for (i = 0; i < n; i++) {
		if (p[i] == '_')
			mime_strbuf_addc(out, ' ');
		else if (p[i] == '=' && i + 2 < n &&
		    (hi = mime_hexval((unsigned char)p[i + 1])) >= 0 &&
		    (lo = mime_hexval((unsigned char)p[i + 2])) >= 0) {
			mime_strbuf_addc(out, (char)(hi << 4 | lo));
			i += 2;
		} else {
			if (p[i] == '=')
				bad = true;
			mime_strbuf_addc(out, p[i]);
		}
	}
	return bad;
}
