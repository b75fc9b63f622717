/*
 * What the archive already holds for one account, keyed by UIDL: loaded
 * before a poll so that archived messages are not downloaded again.  A UIDL
 * is never proof on its own: an entry also carries the LIST size and the
 * header hash recorded at archive time, which must match before a message
 * is deleted on the strength of an earlier archive.
 */
#ifndef STORE_KNOWN_H
#define STORE_KNOWN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Why a message was refused, in a table of refusals (db_refusals_load());
 * KNOWN_ARCHIVED in the table of what is archived.
 */
enum known_refused {
	KNOWN_ARCHIVED,
	KNOWN_TOO_LARGE,	/* its bytes passed size_limit */
	KNOWN_FAILED,		/* retrieved, not archived */
};

struct known_entry {
	char *uidl;
	unsigned char sha256[32];
	unsigned char head_sha256[32];
	uint64_t list_size;	/* LIST size when archived */
	uint64_t size;		/* archived bytes */
	bool server_deleted;	/* the server confirmed its deletion */
	/* A refusal: why, the size bound then in force, how many polls in
	 * a row refused it, and when the last did (Unix time). */
	enum known_refused refused;
	uint64_t size_limit;
	unsigned failures;
	int64_t last_refused;
	struct known_entry *next; /* same bucket */
};

struct known;

struct known *known_new(void);
void known_free(struct known **k);
/* Copies e (and its uidl). */
void known_add(struct known *k, const struct known_entry *e);
/*
 * The entries for uidl: returns the first, or NULL; further entries for the
 * same UIDL (different content under one UIDL) follow via known_next().
 */
const struct known_entry *known_find(const struct known *k, const char *uidl);
const struct known_entry *known_next(const struct known_entry *e);
size_t known_count(const struct known *k);

#endif
