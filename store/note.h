/*
 * C2SP signed notes (https://c2sp.org/signed-note) and the checkpoints of
 * transparency logs written as one (https://c2sp.org/tlog-checkpoint), the
 * format Go's golang.org/x/mod/sumdb/note reads and writes:
 *
 *   <text, ending in a newline>
 *   <empty line>
 *   — <key name> <base64(4-byte key id || 64-byte Ed25519 signature)>
 *
 * A key id is the first 4 bytes of SHA-256(key name || 0x0A || 0x01 ||
 * public key); a verifier key is written "<name>+<8 hex key id>+<base64(
 * 0x01 || public key)>".  A checkpoint's text is "<origin>\n<tree size>\n
 * <base64 root hash>\n", optionally followed by extension lines.
 *
 * Parsing is strict and bounded, and never trusts its input; nothing here
 * allocates except where said.
 */
#ifndef STORE_NOTE_H
#define STORE_NOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/sign.h"

#define NOTE_NAME_MAX	256	/* bytes of a key name or origin */
#define NOTE_SIGS_MAX	100	/* signature lines in a note */
#define NOTE_MAX	(1 << 20)	/* bytes of a whole note */

/* A verifier: who may sign, and with which key. */
struct note_verifier {
	char name[NOTE_NAME_MAX + 1];
	unsigned char id[4];
	unsigned char pub[SIGN_PUBLIC_LEN];
};

/* Whether name can be a key name: non-empty, UTF-8 without spaces, '+',
 * or control characters, at most NOTE_NAME_MAX bytes. */
bool note_name_ok(const char *name);

void note_key_id(const char *name, const unsigned char pub[SIGN_PUBLIC_LEN],
    unsigned char id[4]);

/* The verifier key string of (name, pub); the caller frees it. */
char *note_verifier_key(const char *name,
    const unsigned char pub[SIGN_PUBLIC_LEN]);

/* Parses a verifier key string into v; 0, or -1 with err filled. */
int note_verifier_parse(const char *s, struct note_verifier *v, char *err,
    size_t errlen);

/*
 * Signs text (it must end in a newline and hold no other control
 * characters) as name: returns text, the blank line and the signature
 * line, NUL-terminated, the caller's to free; NULL if text is not
 * signable or signing fails.
 */
char *note_sign(const char *text, const char *name,
    const struct sign_key *key);

/*
 * Opens note msg[0, n): checks its form and that one of its signatures is
 * v's and verifies.  On 0, *textlen_r is the length of the signed text,
 * which starts msg.  -1 with err saying what is wrong (malformed, no
 * signature by v, a signature by v that does not verify).
 */
int note_open(const char *msg, size_t n, const struct note_verifier *v,
    size_t *textlen_r, char *err, size_t errlen);

/* A checkpoint's tree head. */
struct note_checkpoint {
	char origin[NOTE_NAME_MAX + 1];
	uint64_t size;
	unsigned char root[32];
};

/* The checkpoint text of c; the caller frees it. */
char *note_checkpoint_text(const struct note_checkpoint *c);
/* Parses checkpoint text[0, n) (extension lines allowed); 0 or -1. */
int note_checkpoint_parse(const char *text, size_t n,
    struct note_checkpoint *c, char *err, size_t errlen);

#endif
