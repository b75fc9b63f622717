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
	strbuf_init(&t->head, MIME_TEXT_MAX);
	strbuf_init(&t->names, MIME_TEXT_MAX / 4);
	strbuf_init(&t->body, MIME_TEXT_MAX);
	t->cut = false;
}

void
mime_text_release(struct mime_text *t)
{
	strbuf_release(&t->head);
	strbuf_release(&t->names);
	strbuf_release(&t->body);
}

static void
add_line(struct mime_text *t, struct strbuf *sb, const char *s)
{
	size_t n = strlen(s);

	if (n == 0)
		return;
	if (n + 1 > sb->max - sb->len) {
		t->cut = true;
		return;
	}
	strbuf_add(sb, s, n);
	strbuf_addc(sb, '\n');
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
		if (p[i] != '\0' && p[i] != '\r')
			continue;
		if (!strbuf_add_utf8(&t->body, p + s, i - s) ||
		    (p[i] == '\0' && !strbuf_addc(&t->body, ' '))) {
			t->cut = true;
			return;
		}
		s = i + 1;
	}
	if (!strbuf_add_utf8(&t->body, p + s, n - s))
		t->cut = true;
}

void
mime_text_body_end(struct mime_text *t)
{
	if (t->body.len > 0 && t->body.p[t->body.len - 1] != '\n' &&
	    !strbuf_addc(&t->body, '\n'))
		t->cut = true;
}

bool
mime_text_body_room(const struct mime_text *t)
{
	return !t->body.full;
}

size_t
mime_text_alloc(const struct mime_text *t)
{
	return strbuf_alloc(&t->head) + strbuf_alloc(&t->names) +
	    strbuf_alloc(&t->body);
}

size_t
mime_text_word_cost(const char *w, size_t n)
{
	size_t i, cost = n;
	bool parts = false, wide = false;

	for (i = 0; i < n; i++) {
		if ((unsigned char)w[i] >= 0x80)
			wide = true;
		else if (strchr("-./@:_+~%=?&#!$*,;'\"\\|^`{}[]()<>", w[i]) !=
			NULL &&
		    w[i] != '\0')
			parts = true;
	}
	/* A compound yields itself and its parts; a URL its host, path. */
	if (parts)
		cost *= 3;
	if (wide)
		cost += (cost + 1) / 2;
	return cost;
}

struct budget {
	uint64_t *seen;
	size_t slots;
	size_t nseen;
	size_t used;
	bool cut;
};

static uint64_t
word_key(const char *w, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	size_t i;
	unsigned char c;

	for (i = 0; i < n; i++) {
		c = (unsigned char)w[i];
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		h = (h ^ c) * 1099511628211ULL;
	}
	return h == 0 ? 1 : h;
}

/* Whether the word was seen before; remembers it if there is room. */
static bool
seen(struct budget *b, const char *w, size_t n)
{
	uint64_t k = word_key(w, n);
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

/*
 * Copies p[0, n) to out word by word while the budget and MIME_TEXT_MAX
 * allow; words PostgreSQL would drop are left out.
 */
static void
copy(struct budget *b, const char *p, size_t n, struct strbuf *out)
{
	size_t i = 0, s, cost;

	while (i < n && !b->cut) {
		if (is_space(p[i])) {
			if (!strbuf_addc(out, p[i]))
				b->cut = true;
			i++;
			continue;
		}
		s = i;
		while (i < n && !is_space(p[i]))
			i++;
		if (i - s > TEXT_WORD_MAX)
			continue;
		cost = seen(b, p + s, i - s) ?
		    0 :
		    mime_text_word_cost(p + s, i - s);
		if (b->used + cost > TEXT_TSV_BUDGET ||
		    i - s > out->max - out->len) {
			b->cut = true;
			break;
		}
		b->used += cost;
		strbuf_add(out, p + s, i - s);
	}
}

char *
mime_text_finish(struct mime_text *t, size_t *len_r, bool *cut_r)
{
	struct strbuf out;
	struct budget b;
	size_t words;
	char *s;

	memset(&b, 0, sizeof(b));
	/* At most one word in two bytes. */
	words = (t->head.len + t->names.len + t->body.len) / 2 + 1;
	for (b.slots = 64; b.slots < 2 * words && b.slots < SEEN_MAX;)
		b.slots *= 2;
	b.seen = xcalloc(b.slots, sizeof(*b.seen));
	utf8_trim(&t->body);
	strbuf_init(&out, MIME_TEXT_MAX);
	copy(&b, t->head.p != NULL ? t->head.p : "", t->head.len, &out);
	copy(&b, t->names.p != NULL ? t->names.p : "", t->names.len, &out);
	copy(&b, t->body.p != NULL ? t->body.p : "", t->body.len, &out);
	free(b.seen);
	/* No trailing line break. */
	while (out.len > 0 && is_space(out.p[out.len - 1]))
		out.p[--out.len] = '\0';
	*cut_r = t->cut || b.cut;
	*len_r = out.len;
	s = strbuf_take(&out);
	return s;
}
