/*
 * Backfill of the message index: every blob without index rows of this
 * parser version (archived before indexing, or by an older parser) is read
 * back, checked, parsed and indexed, in batches of one transaction each.
 * A kill loses at most the batch in progress; the next run goes on where
 * this one stopped, since it asks the database what is left.  Safe while
 * `run` archives: rows a concurrent commit wrote are kept.
 *
 * Blocking; run on the main thread with its own struct db.
 */
#ifndef STORE_REINDEX_H
#define STORE_REINDEX_H

#include <stdint.h>
#include <stddef.h>

struct db;

struct reindex_stats {
	uint64_t indexed; /* messages given index rows */
	uint64_t refused; /* of which the server refused the rows: a
				 * minimal row flagged index_refused */
	uint64_t damaged; /* blobs that did not read back; left
				 * unindexed, reported (verify names them) */
	uint64_t bytes;	  /* message bytes read */
};

/*
 * progress, unless NULL, is called after each batch with the totals so
 * far.  Returns 0 when every blob was tried, -1 with err filled when the
 * database went away.
 */
int reindex_run(struct db *db, struct reindex_stats *st,
    void (*progress)(void *arg, const struct reindex_stats *st), void *arg,
    char *err, size_t errlen);

#endif
