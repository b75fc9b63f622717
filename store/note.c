#include "store/note.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ingestd/base/xmalloc.h"
#include "store/b64.h"
#include "store/hash.h"

/* U+2014 EM DASH, then a space: how a signature line starts. */
#define NOTE_DASH "\xe2\x80\x94 "
#define NOTE_DASH_LEN 4
#define NOTE_ALG_ED25519 0x01

/* Whether p[0, n) is UTF-8 (no overlongs, surrogates or > U+10FFFF). */
static bool
note_utf8_ok(const unsigned char *p, size_t n)
{
	size_t i = 0, k, len;
	uint32_t c;

	while (i < n) {
		c = p[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		if ((c & 0xe0) == 0xc0) {
			len = 2;
			c &= 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3;
			c &= 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4;
			c &= 0x07;
		} else
			return false;
		if (i + len > n)
			return false;
		for (k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			c = c << 6 | (p[i + k] & 0x3f);
		}
		if ((len == 2 && c < 0x80) || (len == 3 && c < 0x800) ||
		    (len == 4 && c < 0x10000) || c > 0x10ffff ||
		    (c >= 0xd800 && c <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

static bool
note_name_okn(const char *name, size_t n)
{
	size_t i;

	if (n == 0 || n > NOTE_NAME_MAX)
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = name[i];

		if (c <= 0x20 || c == 0x7f || c == '+')
			return false;
	}
	return note_utf8_ok((const unsigned char *)name, n);
}

bool
note_name_ok(const char *name)
{
	return note_name_okn(name, strlen(name));
}

void
note_key_id(const char *name, const unsigned char pub[SIGN_PUBLIC_LEN],
    unsigned char id[4])
{
	struct hash_sha256 h;
	unsigned char d[32];
	const unsigned char sep[2] = { '\n', NOTE_ALG_ED25519 };

	hash_sha256_init(&h);
	hash_sha256_update(&h, name, strlen(name));
	hash_sha256_update(&h, sep, sizeof(sep));
	hash_sha256_update(&h, pub, SIGN_PUBLIC_LEN);
	hash_sha256_final(&h, d);
	hash_sha256_release(&h);
	memcpy(id, d, 4);
}

char *
note_verifier_key(const char *name, const unsigned char pub[SIGN_PUBLIC_LEN])
{
	unsigned char raw[1 + SIGN_PUBLIC_LEN], id[4];
	char b64[B64_LEN(sizeof(raw)) + 1];

	raw[0] = NOTE_ALG_ED25519;
	memcpy(raw + 1, pub, SIGN_PUBLIC_LEN);
	b64_encode(raw, sizeof(raw), b64);
	note_key_id(name, pub, id);
	return xasprintf("%s+%02x%02x%02x%02x+%s", name, id[0], id[1], id[2],
	    id[3], b64);
}

static int
note_hex8(const char *s, unsigned char id[4])
{
	unsigned i, v;
	char c;

	for (i = 0; i < 8; i++) {
		c = s[i];
		if (c >= '0' && c <= '9')
			v = c - '0';
		else if (c >= 'a' && c <= 'f')
			v = c - 'a' + 10;
		else
			return -1;
		if (i % 2 == 0)
			id[i / 2] = v << 4;
		else
			id[i / 2] |= v;
	}
	return 0;
}

int
note_verifier_parse(const char *s, struct note_verifier *v, char *err,
    size_t errlen)
{
	const char *p1, *p2;
	unsigned char raw[1 + SIGN_PUBLIC_LEN + 1], id[4];
	size_t n;

	memset(v, 0, sizeof(*v));
	if ((p1 = strchr(s, '+')) == NULL ||
	    (p2 = strchr(p1 + 1, '+')) == NULL || p2 - p1 != 9) {
		snprintf(err, errlen, "a verifier key is written "
		    "<name>+<8 hex digits>+<base64 key>");
		return -1;
	}
	if (!note_name_okn(s, (size_t)(p1 - s))) {
		snprintf(err, errlen, "the verifier key's name is not a key "
		    "name");
		return -1;
	}
	memcpy(v->name, s, (size_t)(p1 - s));
	if (note_hex8(p1 + 1, v->id) == -1) {
		snprintf(err, errlen, "the verifier key's id is not 8 "
		    "lowercase hex digits");
		return -1;
	}
	if (b64_decode(p2 + 1, strlen(p2 + 1), raw, sizeof(raw), &n) == -1 ||
	    n != 1 + SIGN_PUBLIC_LEN || raw[0] != NOTE_ALG_ED25519) {
		snprintf(err, errlen, "the verifier key is not an Ed25519 key "
		    "(base64 of 0x01 and 32 bytes)");
		return -1;
	}
	memcpy(v->pub, raw + 1, SIGN_PUBLIC_LEN);
	note_key_id(v->name, v->pub, id);
	if (memcmp(id, v->id, 4) != 0) {
		snprintf(err, errlen, "the verifier key's id does not match "
		    "its name and key");
		return -1;
	}
	return 0;
}

/* Whether text[0, n) may be signed: UTF-8, ends in \n, no controls. */
static bool
note_text_ok(const char *text, size_t n)
{
	size_t i;

	if (n == 0 || text[n - 1] != '\n')
		return false;
	for (i = 0; i < n; i++) {
		unsigned char c = text[i];

		if ((c < 0x20 && c != '\n') || c == 0x7f)
			return false;
	}
	return note_utf8_ok((const unsigned char *)text, n);
}

char *
note_sign(const char *text, const char *name, const struct sign_key *key)
{
	unsigned char blob[4 + SIGN_SIG_LEN], pub[SIGN_PUBLIC_LEN];
	char b64[B64_LEN(sizeof(blob)) + 1];
	size_t n = strlen(text);

	if (!note_text_ok(text, n) || !note_name_ok(name))
		return NULL;
	sign_key_public(key, pub);
	note_key_id(name, pub, blob);
	if (sign_ed25519(key, text, n, blob + 4) == -1)
		return NULL;
	b64_encode(blob, sizeof(blob), b64);
	return xasprintf("%s\n" NOTE_DASH "%s %s\n", text, name, b64);
}

int
note_open(const char *msg, size_t n, const struct note_verifier *v,
    size_t *textlen_r, char *err, size_t errlen)
{
	unsigned char blob[4 + SIGN_SIG_LEN + 1];
	const char *p, *end, *eol, *sp;
	size_t i, textlen, bloblen, nsigs = 0;
	bool found = false, ok = false;

	*textlen_r = 0;
	if (n > NOTE_MAX || memchr(msg, '\0', n) != NULL) {
		snprintf(err, errlen, "not a signed note: too long or binary");
		return -1;
	}
	/* The text ends at the last blank line. */
	for (i = n; i >= 2; i--)
		if (msg[i - 2] == '\n' && msg[i - 1] == '\n')
			break;
	if (i < 2) {
		snprintf(err, errlen, "not a signed note: no blank line "
		    "before the signatures");
		return -1;
	}
	textlen = i - 1;
	if (!note_text_ok(msg, textlen)) {
		snprintf(err, errlen, "not a signed note: the text holds "
		    "control characters or is not UTF-8");
		return -1;
	}
	p = msg + i;
	end = msg + n;
	if (p == end) {
		snprintf(err, errlen, "not a signed note: no signature");
		return -1;
	}
	while (p < end) {
		if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL) {
			snprintf(err, errlen, "not a signed note: a "
			    "signature line does not end in a newline");
			return -1;
		}
		if (++nsigs > NOTE_SIGS_MAX) {
			snprintf(err, errlen, "not a signed note: more than "
			    "%d signatures", NOTE_SIGS_MAX);
			return -1;
		}
		if ((size_t)(eol - p) < NOTE_DASH_LEN ||
		    memcmp(p, NOTE_DASH, NOTE_DASH_LEN) != 0 ||
		    (sp = memchr(p + NOTE_DASH_LEN, ' ',
		    (size_t)(eol - p - NOTE_DASH_LEN))) == NULL ||
		    !note_name_okn(p + NOTE_DASH_LEN,
		    (size_t)(sp - p - NOTE_DASH_LEN)) ||
		    b64_decode(sp + 1, (size_t)(eol - sp - 1), blob,
		    sizeof(blob), &bloblen) == -1 || bloblen < 5) {
			snprintf(err, errlen, "not a signed note: malformed "
			    "signature line %zu", nsigs);
			return -1;
		}
		if ((size_t)(sp - p - NOTE_DASH_LEN) == strlen(v->name) &&
		    memcmp(p + NOTE_DASH_LEN, v->name, strlen(v->name)) == 0 &&
		    memcmp(blob, v->id, 4) == 0) {
			found = true;
			if (bloblen == 4 + SIGN_SIG_LEN &&
			    sign_verify(v->pub, msg, textlen, blob + 4))
				ok = true;
		}
		p = eol + 1;
	}
	if (!found) {
		snprintf(err, errlen, "the note carries no signature by key "
		    "%s+%02x%02x%02x%02x", v->name, v->id[0], v->id[1],
		    v->id[2], v->id[3]);
		return -1;
	}
	if (!ok) {
		snprintf(err, errlen, "the signature by %s does not verify: "
		    "the note was altered or signed by another key", v->name);
		return -1;
	}
	*textlen_r = textlen;
	return 0;
}

char *
note_checkpoint_text(const struct note_checkpoint *c)
{
	char b64[B64_LEN(32) + 1];

	b64_encode(c->root, 32, b64);
	return xasprintf("%s\n%" PRIu64 "\n%s\n", c->origin, c->size, b64);
}

int
note_checkpoint_parse(const char *text, size_t n, struct note_checkpoint *c,
    char *err, size_t errlen)
{
	const char *l[3], *e[3], *p = text, *end = text + n;
	size_t i, rootlen;
	uint64_t size = 0;

	memset(c, 0, sizeof(*c));
	for (i = 0; i < 3; i++) {
		l[i] = p;
		if ((e[i] = memchr(p, '\n', (size_t)(end - p))) == NULL) {
			snprintf(err, errlen, "checkpoint: fewer than 3 lines");
			return -1;
		}
		p = e[i] + 1;
	}
	if (e[0] == l[0] || (size_t)(e[0] - l[0]) > NOTE_NAME_MAX ||
	    !note_text_ok(l[0], (size_t)(e[0] - l[0]) + 1)) {
		snprintf(err, errlen, "checkpoint: bad origin line");
		return -1;
	}
	memcpy(c->origin, l[0], (size_t)(e[0] - l[0]));
	if (e[1] == l[1] || (e[1] - l[1] > 1 && l[1][0] == '0') ||
	    e[1] - l[1] > 20) {
		snprintf(err, errlen, "checkpoint: bad tree size line");
		return -1;
	}
	for (p = l[1]; p < e[1]; p++) {
		if (*p < '0' || *p > '9' ||
		    size > (UINT64_MAX - (uint64_t)(*p - '0')) / 10) {
			snprintf(err, errlen, "checkpoint: bad tree size line");
			return -1;
		}
		size = size * 10 + (uint64_t)(*p - '0');
	}
	c->size = size;
	if (b64_decode(l[2], (size_t)(e[2] - l[2]), c->root, sizeof(c->root),
	    &rootlen) == -1 || rootlen != 32) {
		snprintf(err, errlen, "checkpoint: the root hash line is not "
		    "base64 of 32 bytes");
		return -1;
	}
	return 0;
}
