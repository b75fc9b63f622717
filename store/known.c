#include "store/known.h"

#include <stdlib.h>
#include <string.h>

#include "ingestd/base/log.h"
#include "ingestd/base/xmalloc.h"

/* Buckets at first; a mailbox with a few messages stays small. */
#define KNOWN_MIN_BUCKETS	64

/*
 * Separate chaining.  Entries for the same UIDL always share a bucket, and
 * every chain is kept in insertion order (append at the tail, rehash in
 * chain order), so known_next() finds the later entries for a UIDL by
 * walking on from the earlier one, with no pointer back to the table.
 */
struct known {
	struct known_entry **bucket;
	size_t nbucket;		/* a power of two */
	size_t count;
};

/* FNV-1a, 64-bit: UIDLs are short printable strings (RFC 1939: <= 70). */
static uint64_t
known_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	while (*s != '\0') {
		h ^= (unsigned char)*s++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

struct known *
known_new(void)
{
	struct known *k;

	k = xcalloc(1, sizeof(*k));
	k->nbucket = KNOWN_MIN_BUCKETS;
	k->bucket = xcalloc(k->nbucket, sizeof(*k->bucket));
	return k;
}

void
known_free(struct known **kp)
{
	struct known *k = *kp;
	struct known_entry *e, *next;
	size_t i;

	if (k == NULL)
		return;
	for (i = 0; i < k->nbucket; i++) {
		for (e = k->bucket[i]; e != NULL; e = next) {
			next = e->next;
			free(e->uidl); e->uidl = NULL;
			free(e);
		}
	}
	free(k->bucket); k->bucket = NULL;
	free(k);
	*kp = NULL;
}

/* Doubles the table, keeping each chain's relative order. */
static void
known_grow(struct known *k)
{
	struct known_entry **nb, **tail, *e, *next;
	size_t i, j, n = k->nbucket * 2;

	nb = xcalloc(n, sizeof(*nb));
	tail = xcalloc(n, sizeof(*tail));
	for (i = 0; i < k->nbucket; i++) {
		for (e = k->bucket[i]; e != NULL; e = next) {
			next = e->next;
			e->next = NULL;
			j = known_hash(e->uidl) & (n - 1);
			if (tail[j] == NULL)
				nb[j] = e;
			else
				tail[j]->next = e;
			tail[j] = e;
		}
	}
	free(tail);
	free(k->bucket);
	k->bucket = nb;
	k->nbucket = n;
}

void
known_add(struct known *k, const struct known_entry *e)
{
	struct known_entry *n, **pp;

	ASSERT(e->uidl != NULL);
	/* Load factor at most 3/4 keeps chains a step or two long. */
	if (k->count + 1 > k->nbucket / 4 * 3)
		known_grow(k);
	n = xmalloc(sizeof(*n));
	*n = *e;
	n->uidl = xstrdup(e->uidl);
	n->next = NULL;
	pp = &k->bucket[known_hash(n->uidl) & (k->nbucket - 1)];
	while (*pp != NULL)
		pp = &(*pp)->next;
	*pp = n;
	k->count++;
}

const struct known_entry *
known_find(const struct known *k, const char *uidl)
{
	const struct known_entry *e;

	e = k->bucket[known_hash(uidl) & (k->nbucket - 1)];
	for (; e != NULL; e = e->next) {
		if (strcmp(e->uidl, uidl) == 0)
			return e;
	}
	return NULL;
}

const struct known_entry *
known_next(const struct known_entry *e)
{
	const struct known_entry *n;

	for (n = e->next; n != NULL; n = n->next) {
		if (strcmp(n->uidl, e->uidl) == 0)
			return n;
	}
	return NULL;
}

size_t
known_count(const struct known *k)
{
	return k->count;
}
