/* fuzz-sources: store/note.c store/b64.c store/sign.c store/hash.c */
/* fuzz-sources: ingestd/base/xmalloc.c ingestd/base/log.c */
/* fuzz-sources: ingestd/base/fdio.c */
/* fuzz-pkgs: libcrypto */
/*
 * store/note: the input is a signed note checked against a fixed key
 * (Go's test key) and against a key parsed from its own first line; a
 * note that opens must have text that ends in a newline inside the
 * input.  Its text goes through the checkpoint parser, whose result must
 * serialize back to the first three lines.  b64 must round-trip.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/b64.h"
#include "store/note.h"

#define CHECK(e) ((e) ? (void)0 : abort())

#define GO_VKEY                                                          \
	"PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"

static void
check_checkpoint(const char *text, size_t n)
{
	struct note_checkpoint c;
	char err[256], *back;

	if (note_checkpoint_parse(text, n, &c, err, sizeof(err)) == -1)
		return;
	back = note_checkpoint_text(&c);
	CHECK(strlen(back) <= n);
	CHECK(memcmp(back, text, strlen(back)) == 0);
	free(back);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct note_verifier go;
	static int ready;
	struct note_verifier v;
	char err[512], *s, *nl, *enc;
	unsigned char buf[256];
	size_t textlen, n;

	if (!ready) {
		CHECK(note_verifier_parse(GO_VKEY, &go, err, sizeof(err)) == 0);
		ready = 1;
	}
	if (note_open((const char *)data, size, &go, &textlen, err,
	    sizeof(err)) == 0) {
		CHECK(textlen > 0 && textlen < size);
		CHECK(data[textlen - 1] == '\n');
	}
	check_checkpoint((const char *)data, size);

	/* The first line as a verifier key, the rest as a note. */
	s = malloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';
	if ((nl = strchr(s, '\n')) != NULL) {
		*nl = '\0';
		if (note_verifier_parse(s, &v, err, sizeof(err)) == 0) {
			enc = note_verifier_key(v.name, v.pub);
			CHECK(strcmp(enc, s) == 0);
			free(enc);
			(void)note_open(nl + 1, size - (size_t)(nl + 1 - s), &v,
			    &textlen, err, sizeof(err));
		}
	}
	/* base64: what decodes encodes back the same. */
	if (b64_decode(s, strlen(s), buf, sizeof(buf), &n) == 0) {
		enc = malloc(B64_LEN(n) + 1);
		b64_encode(buf, n, enc);
		CHECK(strcmp(enc, s) == 0);
		free(enc);
	}
	free(s);
	return 0;
}
