/*
 * Ledger entries and proof files: pure, so that a verifier needs nothing
 * but these bytes and a public key.
 *
 * An entry (version 1) is ASCII text, LF-terminated lines:
 *
 *   ingestd-ledger v1
 *   kind <kind>
 *   <key> <value>
 *   ...
 *
 * <kind> and each <key> are [a-z0-9_-], 1 to 64 bytes; the keys come in the
 * order the event kind fixes (for "ingest": account, uidl, sha256, size,
 * archived_at).  A value is its UTF-8 bytes with each byte outside
 * 0x21..0x7E, and '%', written %XX (uppercase hex), so it holds no space
 * or newline and reads back to exactly one byte string; it may be empty.
 * The entry's leaf hash is SHA-256(0x00 || entry bytes) (RFC 9162).
 */
#ifndef STORE_LEDGER_H
#define STORE_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/merkle.h"
#include "store/note.h"

#define LEDGER_MAGIC	"ingestd-ledger v1"
#define LEDGER_FIELDS_MAX 64

struct ledger_field {
	const char *key;
	const char *value;
};

/*
 * The entry of (kind, fields); the caller frees it, *len_r its length.
 * NULL if kind or a key is not a valid name, or n > LEDGER_FIELDS_MAX.
 */
char *ledger_entry_encode(const char *kind, const struct ledger_field *f,
    size_t n, size_t *len_r);

/* An entry read back: every string allocated, freed by _release. */
struct ledger_entry {
	char *kind;
	struct ledger_field f[LEDGER_FIELDS_MAX];
	size_t n;
};

/* Parses p[0, n) into e; 0, or -1 with err filled (e then empty). */
int ledger_entry_parse(const void *p, size_t n, struct ledger_entry *e,
    char *err, size_t errlen);
void ledger_entry_release(struct ledger_entry *e);
/* The value of key, or NULL. */
const char *ledger_entry_get(const struct ledger_entry *e, const char *key);

/* One leaf of a proof file. */
struct ledger_proof_leaf {
	uint64_t index;
	unsigned char *entry;
	size_t entry_len;
	unsigned char path[MERKLE_MAX_PATH][MERKLE_HASH_LEN];
	size_t path_len;
};

/* A proof file, as ingestd prove writes it (README: "Proof files"). */
struct ledger_proof {
	char sha256[65];
	uint64_t tree_size;
	char *checkpoint;	/* the signed note */
	size_t checkpoint_len;
	struct ledger_proof_leaf *leaves;
	size_t nleaves;
};

/* Parses proof-file JSON; 0, or -1 with err filled. */
int ledger_proof_parse(const char *json, size_t n, struct ledger_proof *p,
    char *err, size_t errlen);
void ledger_proof_release(struct ledger_proof *p);

/*
 * Checks a proof against a message (its SHA-256 and size) and a verifier
 * key: the checkpoint's signature, its tree size, and for every leaf that
 * the entry is an ingest of this message and its path leads to the
 * checkpoint's root.  0, or -1 with err saying what failed.
 */
int ledger_proof_verify(const struct ledger_proof *p,
    const struct note_verifier *v, const unsigned char msg_sha256[32],
    uint64_t msg_size, char *err, size_t errlen);

#endif
