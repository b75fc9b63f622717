/*
 * What the delete policies need to know of an account's messages beyond
 * the listing, loaded before a poll (store/db_policy.c): when ingestd first
 * saw each UIDL, and the Date header of each archived message the index
 * has one for.  Built once, then only read, by one thread at a time.
 */
#ifndef STORE_FACTS_H
#define STORE_FACTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct facts;

struct facts *facts_new(void);
void facts_free(struct facts **f);

/* Adds a first-seen time (Unix) for uidl, copied; the earliest wins. */
void facts_add_seen(struct facts *f, const char *uidl, int64_t t);
/* Adds the Date (Unix) of the message whose SHA-256 is sha256. */
void facts_add_date(struct facts *f, const unsigned char sha256[32], int64_t t);

/* Whether uidl has a first-seen time, and it in *t_r. */
bool facts_seen(struct facts *f, const char *uidl, int64_t *t_r);
/* Whether the message sha256 has a known Date, and it in *t_r. */
bool facts_date(struct facts *f, const unsigned char sha256[32], int64_t *t_r);
size_t facts_nseen(const struct facts *f);
size_t facts_ndates(const struct facts *f);

#endif
