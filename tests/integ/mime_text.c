/*
 * mime_text KIND RAW TEXT: writes to RAW a text part of about 3 MiB made
 * of words of one adversarial kind for PostgreSQL's text search parser
 * (compounds, URLs, e-mail addresses, non-ASCII that lengthens when
 * lower-cased, non-ASCII punctuation, CJK, plain words, repeats), and to
 * TEXT the full text store/mime keeps of a message carrying it.  The
 * caller checks that to_tsvector('simple', TEXT) is accepted where RAW is
 * refused.  Prints "flags N text_len N".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/mime/parser.h"

#define RAW_SIZE (3u << 20)

static int
word(int kind, size_t i, char *out, size_t len)
{
	switch (kind) {
	case 0:
		return snprintf(out, len, "a%zu-b%zu-c%zu-d%zu-e%zu ", i, i, i,
		    i, i);
	case 1:
		return snprintf(out, len,
		    "http://h%zu.example.com/p%zu/q%zu"
		    "?x=%zu ",
		    i, i, i, i);
	case 2:
		return snprintf(out, len, "\xC8\xBA%zu\xC8\xBA\xC8\xBA ", i);
	case 3:
		return snprintf(out, len, "u%zu@h%zu.example.org ", i, i);
	case 4:
		return snprintf(out, len, "w%zu ", i);
	case 5:
		return snprintf(out, len,
		    "a%zu"
		    "\xE2\x80\x94"
		    "b%zu"
		    "\xC2\xB7"
		    "c%zu ",
		    i, i, i);
	case 6:
		return snprintf(out, len,
		    "caf"
		    "\xC3\xA9"
		    "%zu "
		    "\xC3\x9C"
		    "%zub ",
		    i, i);
	case 7:
		return snprintf(out, len,
		    "\xE6\x97\xA5"
		    "%zu"
		    "\xE6\x9C\xAC ",
		    i);
	default:
		return snprintf(out, len, "%s ", i % 3 ? "the" : "and");
	}
}

int
main(int argc, char **argv)
{
	const char *head = "Content-Type: text/plain; charset=utf-8\r\n\r\n";
	struct mime_parser *mp;
	struct mime_meta *m;
	char *raw, w[128];
	size_t n = 0, i;
	FILE *f;
	int kind, k;

	if (argc != 4) {
		fprintf(stderr, "usage: mime_text KIND RAW TEXT\n");
		return 2;
	}
	kind = atoi(argv[1]);
	if ((raw = malloc(RAW_SIZE + sizeof(w))) == NULL)
		return 1;
	for (i = 0; n < RAW_SIZE; i++) {
		k = word(kind, i, w, sizeof(w));
		memcpy(raw + n, w, (size_t)k);
		n += (size_t)k;
	}
	mp = mime_parser_new();
	mime_parser_feed(mp, head, strlen(head));
	mime_parser_feed(mp, raw, n);
	m = mime_parser_finish(mp);
	mime_parser_free(&mp);
	if ((f = fopen(argv[2], "wb")) == NULL || fwrite(raw, 1, n, f) != n ||
	    fclose(f) != 0) {
		perror(argv[2]);
		return 1;
	}
	if ((f = fopen(argv[3], "wb")) == NULL ||
	    fwrite(m->text, 1, m->text_len, f) != m->text_len ||
	    fclose(f) != 0) {
		perror(argv[3]);
		return 1;
	}
	printf("flags %u text_len %zu\n", (unsigned)m->flags, m->text_len);
	mime_meta_free(&m);
	free(raw);
	return 0;
}
