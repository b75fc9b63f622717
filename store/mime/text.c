#include "store/mime/text.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ingestd/base/xmalloc.h"
#include "store/mime/meta.h"
#include "store/mime/utf8.h"

/*
 * Distinct words remembered for the budget (a power of two, sized to the
 * text); past half of it each further word counts in full.
 */
#define SEEN_MAX 65536

void
mime_text_init(struct mime_text *t)
{
	mime_strbuf_init(&t->head, MIME_TEXT_MAX);
	mime_strbuf_init(&t->names, MIME_TEXT_MAX / 4);
	mime_strbuf_init(&t->body, MIME_TEXT_MAX);
	t->cut = false;
}

void
mime_text_release(struct mime_text *t)
{
	mime_strbuf_release(&t->head);
	mime_strbuf_release(&t->names);
	mime_strbuf_release(&t->body);
}

static void
add_line(struct mime_text *t, struct mime_strbuf *sb, const char *s)
{
	size_t n = strlen(s);

	if (n == 0)
		return;
	if (n + 1 > sb->max - sb->len) {
		t->cut = true;
		return;
	}
	mime_strbuf_add(sb, s, n);
	mime_strbuf_addc(sb, '\n');
}

void
mime_text_head(struct mime_text *t, const char *s)
{
	add_line(t, &t->head, s);
}

void
mime_text_name(struct mime_text *t, const char *s)
{
	add_line(t, &t->names, s);
}

void
mime_text_body(void *vt, const char *p, size_t n)
{
	struct mime_text *t = vt;
	size_t i, s = 0;

	if (n == 0)
		return;
	if (t->body.full) {
		t->cut = true;
		return;
	}
	/* NUL becomes a space (PostgreSQL text has none); CR goes. */
	for (i = 0; i < n; i++) {
		/* Eight bytes at a time while there is neither. */
		while (n - i >= 8) {
			uint64_t x, y;

			memcpy(&x, p + i, 8);
			y = x ^ 0x0d0d0d0d0d0d0d0dULL;
			if ((((x - 0x0101010101010101ULL) & ~x) |
				((y - 0x0101010101010101ULL) & ~y)) &
			    0x8080808080808080ULL)
				break;
			i += 8;
		}
		if (i >= n)
			break;
		if (p[i] != '\0' && p[i] != '\r')
			continue;
		if (!mime_strbuf_add_utf8(&t->body, p + s, i - s) ||
		    (p[i] == '\0' && !mime_strbuf_addc(&t->body, ' '))) {
			t->cut = true;
			return;
		}
		s = i + 1;
	}
	if (!mime_strbuf_add_utf8(&t->body, p + s, n - s))
		t->cut = true;
}

void
mime_text_body_end(struct mime_text *t)
{
	if (t->body.len > 0 && t->body.p[t->body.len - 1] != '\n' &&
	    !mime_strbuf_addc(&t->body, '\n'))
		t->cut = true;
}

/*
 * Whether a code point is a letter in every locale PostgreSQL's parser may
 * use (a few common alphabets and syllabaries, all assigned).  Any other
 * non-ASCII character may split a word into lexemes.
 */
static bool
surely_letter(uint32_t cp)
{
	return (cp >= 0xC0 && cp <= 0x24F && cp != 0xD7 && cp != 0xF7) ||
	    (cp >= 0x391 && cp <= 0x3A1) || (cp >= 0x3A3 && cp <= 0x3CE) ||
	    (cp >= 0x400 && cp <= 0x45F) || (cp >= 0x5D0 && cp <= 0x5EA) ||
	    (cp >= 0x621 && cp <= 0x63A) || (cp >= 0x641 && cp <= 0x64A) ||
	    (cp >= 0xE01 && cp <= 0xE30) || (cp >= 0x3041 && cp <= 0x3096) ||
	    (cp >= 0x30A1 && cp <= 0x30FA) || (cp >= 0x4E00 && cp <= 0x9FEA) ||
	    (cp >= 0xAC00 && cp <= 0xD7A3);
}

size_t
mime_text_word_cost(const char *w, size_t n, bool first)
{
	const unsigned char *u = (const unsigned char *)w;
	size_t i, bytes = n, seps = 0, lexemes;
	bool wide = false;
	uint32_t cp;
	int len;

	for (i = 0; i < n; i += (size_t)len) {
		len = 1;
		if (u[i] < 0x80) {
			if (!((u[i] >= 'a' && u[i] <= 'z') ||
				(u[i] >= 'A' && u[i] <= 'Z') ||
				(u[i] >= '0' && u[i] <= '9')))
				seps++;
			continue;
		}
		wide = true;
		len = mime_utf8_seq(u + i, n - i);
		if (len <= 1) {
			len = 1;
			seps++;
			continue;
		}
		cp = len == 2 ? (u[i] & 0x1Fu) :
		    len == 3  ? (u[i] & 0x0Fu) :
				(u[i] & 0x07u);
		for (int k = 1; k < len; k++)
			cp = cp << 6 | (u[i + k] & 0x3Fu);
		if (!surely_letter(cp))
			seps++;
	}
	/*
	 * A word with separators yields its parts (at most seps + 1), itself
	 * and, as a URL or e-mail address, a host and a path: at most
	 * 2 * seps + 4 lexemes of at most three times its bytes; lower-casing
	 * may lengthen non-ASCII by half.
	 */
	lexemes = seps > 0 ? 2 * seps + 4 : 1;
	if (seps > 0)
		bytes *= 3;
	if (wide)
		bytes += (bytes + 1) / 2;
	/*
	 * Each distinct lexeme also costs its alignment, position count and
	 * first position (5 bytes), each further occurrence a position (2).
	 */
	return first ? bytes + 5 * lexemes : 2 * lexemes;
}

struct budget {
	uint64_t *seen;
	size_t slots;
	size_t nseen;
	size_t used;
	bool cut;
};

/*
 * The word's key: a hash of its bytes with ASCII letters folded to lower
 * case, eight bytes at a time.  w[0, room) may be read (room >= n).
 */
static uint64_t
word_key(const char *w, size_t n, size_t room)
{
	const uint64_t lo7 = 0x7f7f7f7f7f7f7f7fULL, hi = 0x8080808080808080ULL;
	uint64_t h = 0x9e3779b97f4a7c15ULL ^ n, x, y, upper;
	size_t i, k;

	for (i = 0; i < n; i += 8) {
		k = n - i < 8 ? n - i : 8;
		x = 0;
		if (room - i >= 8) {
			/* Eight bytes at once, those past the word masked. */
			memcpy(&x, w + i, 8);
			if (k < 8)
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
				x &= ~(~0ULL >> (8 * k));
#else
				x &= ~(~0ULL << (8 * k));
#endif
		} else
			memcpy(&x, w + i, k);
		/* 'A' to 'Z' (and no byte past 0x7F) to lower case. */
		y = x & lo7;
		upper = (y + 0x3f3f3f3f3f3f3f3fULL) &
		    ~(y + 0x2525252525252525ULL) & ~x & hi;
		x |= upper >> 2;
		h = (h ^ x) * 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
	}
	h ^= h >> 29;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 32;
	return h == 0 ? 1 : h;
}

/*
 * Whether the word w[0, n) was seen before; remembers it if there is
 * room.  w[0, room) may be read.
 */
static bool
seen(struct budget *b, const char *w, size_t n, size_t room)
{
	uint64_t k = word_key(w, n, room);
	size_t i = (size_t)(k & (b->slots - 1));

	while (b->seen[i] != 0) {
		if (b->seen[i] == k)
			return true;
		i = (i + 1) & (b->slots - 1);
	}
	if (b->nseen < b->slots / 2) {
		b->seen[i] = k;
		b->nseen++;
	}
	return false;
}

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' ||
	    c == '\v';
}

/* Byte classes for copy(). */
enum {
	C_ALNUM, /* an ASCII letter or digit */
	C_SEP,	 /* other ASCII that is no space: a separator */
	C_SPACE,
	C_WIDE /* past 0x7F */
};

/* Of ASCII; C_ALNUM unless listed. */
static const unsigned char ctab[128] = {
	[0] = C_SEP,
	[1] = C_SEP,
	[2] = C_SEP,
	[3] = C_SEP,
	[4] = C_SEP,
	[5] = C_SEP,
	[6] = C_SEP,
	[7] = C_SEP,
	[8] = C_SEP,
	[9] = C_SPACE,
	[10] = C_SPACE,
	[11] = C_SPACE,
	[12] = C_SPACE,
	[13] = C_SPACE,
	[14] = C_SEP,
	[15] = C_SEP,
	[16] = C_SEP,
	[17] = C_SEP,
	[18] = C_SEP,
	[19] = C_SEP,
	[20] = C_SEP,
	[21] = C_SEP,
	[22] = C_SEP,
	[23] = C_SEP,
	[24] = C_SEP,
	[25] = C_SEP,
	[26] = C_SEP,
	[27] = C_SEP,
	[28] = C_SEP,
	[29] = C_SEP,
	[30] = C_SEP,
	[31] = C_SEP,
	[32] = C_SPACE,
	[33] = C_SEP,
	[34] = C_SEP,
	[35] = C_SEP,
	[36] = C_SEP,
	[37] = C_SEP,
	[38] = C_SEP,
	[39] = C_SEP,
	[40] = C_SEP,
	[41] = C_SEP,
	[42] = C_SEP,
	[43] = C_SEP,
	[44] = C_SEP,
	[45] = C_SEP,
	[46] = C_SEP,
	[47] = C_SEP,
	[58] = C_SEP,
	[59] = C_SEP,
	[60] = C_SEP,
	[61] = C_SEP,
	[62] = C_SEP,
	[63] = C_SEP,
	[64] = C_SEP,
	[91] = C_SEP,
	[92] = C_SEP,
	[93] = C_SEP,
	[94] = C_SEP,
	[95] = C_SEP,
	[96] = C_SEP,
	[123] = C_SEP,
	[124] = C_SEP,
	[125] = C_SEP,
	[126] = C_SEP,
	[127] = C_SEP,
};

static int
cclass(unsigned char c)
{
	return c < 0x80 ? ctab[c] : C_WIDE;
}

/*
 * Copies p[0, n) to out word by word while the budget and MIME_TEXT_MAX
 * allow; words PostgreSQL would drop are left out.  What is kept goes to
 * out in spans, between the words left out.
 */
static void
copy(struct budget *b, const char *p, size_t n, struct mime_strbuf *out)
{
	const unsigned char *u = (const unsigned char *)p;
	size_t i = 0, s, span = 0, left, len, cost, seps, lexemes;
	bool wide, first;
	unsigned char c;

	if (b->cut)
		return;
	/* The room in out past the span p[span, i). */
	left = out->max - out->len;
	while (i < n) {
		if (cclass(u[i]) == C_SPACE) {
			s = i;
			while (i < n && cclass(u[i]) == C_SPACE)
				i++;
			if (i - s > left) {
				/* As much as fits. */
				i = s + left;
				b->cut = true;
				break;
			}
			left -= i - s;
			continue;
		}
		s = i;
		seps = 0;
		wide = false;
		while (i < n && (c = (unsigned char)cclass(u[i])) != C_SPACE) {
			seps += c == C_SEP;
			wide |= c == C_WIDE;
			i++;
		}
		len = i - s;
		if (len > TEXT_WORD_MAX) {
			mime_strbuf_add(out, p + span, s - span);
			span = i;
			continue;
		}
		first = !seen(b, p + s, len, n - s);
		if (wide)
			cost = mime_text_word_cost(p + s, len, first);
		else {
			/* mime_text_word_cost() of an ASCII word. */
			lexemes = seps > 0 ? 2 * seps + 4 : 1;
			cost = seps > 0 ? 3 * len : len;
			cost = first ? cost + 5 * lexemes : 2 * lexemes;
		}
		if (b->used + cost > TEXT_TSV_BUDGET || len > left) {
			i = s;
			b->cut = true;
			break;
		}
		b->used += cost;
		left -= len;
	}
	mime_strbuf_add(out, p + span, i - span);
}

/* The bytes of p[0, n) at or below ' ' (white space among them). */
static size_t
count_low(const char *p, size_t n)
{
	const uint64_t lo7 = 0x7f7f7f7f7f7f7f7fULL, hi = 0x8080808080808080ULL;
	uint64_t x, t;
	size_t i = 0, c = 0;

	for (; n - i >= 8; i += 8) {
		memcpy(&x, p + i, 8);
		/* High bit set in each byte past ' '. */
		t = ((x & lo7) + 0x5f5f5f5f5f5f5f5fULL) | x;
		c += (size_t)((((~t & hi) >> 7) * 0x0101010101010101ULL) >> 56);
	}
	for (; i < n; i++)
		c += (unsigned char)p[i] <= ' ';
	return c;
}

/*
 * Whether the text cannot pass TEXT_TSV_BUDGET whatever its words: a word
 * of k bytes costs at most 14.5k + 21 (mime_text_word_cost()), and each
 * word but the first of each piece follows a byte of white space, so with
 * T bytes of which c are at or below ' ' the cost is at most
 * 14.5(T - c) + 21(c + 3).  Such a text is also well within MIME_TEXT_MAX.
 */
static bool
text_sure(const struct mime_text *t)
{
	const struct mime_strbuf *sb[3] = { &t->head, &t->names, &t->body };
	uint64_t total = 0, low = 0;
	size_t i;

	for (i = 0; i < 3; i++) {
		total += sb[i]->len;
		if (sb[i]->len > 0)
			low += count_low(sb[i]->p, sb[i]->len);
	}
	return 29 * (total - low) + 42 * (low + 3) <=
	    2 * (uint64_t)TEXT_TSV_BUDGET;
}

/*
 * copy() of text_sure() text: only words too long are left out.
 * A word past TEXT_WORD_MAX fills the TEXT_WORD_MAX + 1 bytes from its
 * start, so from a word's start (i) the window is looked at backwards for
 * white space, which usually comes at once, and the scan goes on past it.
 */
static void
copy_all(const char *p, size_t n, struct mime_strbuf *out)
{
	size_t i = 0, j, span = 0;

	while (n - i > TEXT_WORD_MAX) {
		for (j = i + TEXT_WORD_MAX + 1; j > i && !is_space(p[j - 1]);)
			j--;
		if (j > i) {
			i = j;
			continue;
		}
		/* p[i, i + TEXT_WORD_MAX] is one word: leave it out. */
		mime_strbuf_add(out, p + span, i - span);
		for (i += TEXT_WORD_MAX + 1; i < n && !is_space(p[i]);)
			i++;
		span = i;
	}
	mime_strbuf_add(out, p + span, n - span);
}

char *
mime_text_finish(struct mime_text *t, size_t *len_r, bool *cut_r)
{
	struct mime_strbuf out;
	struct budget b;
	size_t words;
	char *s;

	memset(&b, 0, sizeof(b));
	/* At most one word in two bytes. */
	words = (t->head.len + t->names.len + t->body.len) / 2 + 1;
	mime_utf8_trim(&t->body);
	mime_strbuf_init(&out, MIME_TEXT_MAX);
	if (text_sure(t)) {
		copy_all(t->head.p != NULL ? t->head.p : "", t->head.len, &out);
		copy_all(t->names.p != NULL ? t->names.p : "", t->names.len,
		    &out);
		copy_all(t->body.p != NULL ? t->body.p : "", t->body.len, &out);
	} else {
		for (b.slots = 64; b.slots < 2 * words && b.slots < SEEN_MAX;)
			b.slots *= 2;
		b.seen = xcalloc(b.slots, sizeof(*b.seen));
		copy(&b, t->head.p != NULL ? t->head.p : "", t->head.len, &out);
		copy(&b, t->names.p != NULL ? t->names.p : "", t->names.len,
		    &out);
		copy(&b, t->body.p != NULL ? t->body.p : "", t->body.len, &out);
		free(b.seen);
	}
	/* No trailing line break. */
	while (out.len > 0 && is_space(out.p[out.len - 1]))
		out.p[--out.len] = '\0';
	*cut_r = t->cut || b.cut;
	*len_r = out.len;
	s = mime_strbuf_take(&out);
	return s;
}
