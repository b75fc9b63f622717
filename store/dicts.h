/*
 * Trained zstd dictionaries.  Most mail is small, and a small message
 * compressed alone cannot reuse what every other message shares (header
 * names, MIME boilerplate, the vocabulary of one organisation); a
 * dictionary trained on recent mail and referenced by each blob
 * (blob.dict_id) gives that back.
 *
 * Blocking, on the thread that owns db (the scheduler's): training reads
 * a few MiB of archived mail back and takes about a second, so it is
 * never done on a worker.  The zdicts handed out are read-only and may be
 * used by stages on any thread.
 */
#ifndef STORE_DICTS_H
#define STORE_DICTS_H

#include <stddef.h>
#include <stdint.h>

struct db;
struct dicts;
struct zdict;

/*
 * Sampling bounds: messages larger than DICTS_SAMPLE_MAX gain little from
 * a dictionary and would crowd out the small ones that do.
 */
#define DICTS_SAMPLE_MAX	(64 * 1024)
#define DICTS_SAMPLES		2000
#define DICTS_SAMPLE_BYTES	(8 * 1024 * 1024)
/* zstd's own advice: about 100 KiB, some hundred times less than the
 * samples. */
#define DICTS_CAP		(112 * 1024)

/*
 * A set of dictionaries for db (borrowed; it must outlive the set),
 * prepared for zstd level.  after is how many small messages must be
 * archived without a dictionary before one is trained (dicts_archived());
 * 0 never trains.  Holds no dictionary until dicts_load_latest() or a
 * training makes one current.
 */
struct dicts *dicts_new(struct db *db, int level, uint64_t after);
/*
 * Frees every dictionary this set ever made current: only once no stage
 * can still be using one (the workers have stopped).  *d becomes NULL.
 */
void dicts_free(struct dicts **d);

/* The last error, "" if none. */
const char *dicts_error(const struct dicts *d);

/*
 * The dictionary new messages should be compressed with, or NULL for none
 * yet (or when d is NULL: dictionaries are off).  Stays valid until
 * dicts_free(), even after another one becomes current, so sessions that
 * started with it may finish with it.
 */
const struct zdict *dicts_current(const struct dicts *d);

/*
 * Makes the newest dictionary in the archive current, if it is not
 * already (another process may have trained it).  Returns 0, also when
 * the archive holds none, or -1 with dicts_error() set.
 */
int dicts_load_latest(struct dicts *d);

/*
 * Trains a dictionary now on the most recent small blobs stored without
 * one (at most DICTS_SAMPLES of them and DICTS_SAMPLE_BYTES in all, each
 * read back through the decompressor), stores it and makes it current.
 * Returns 0, or -1 with dicts_error() set (too few samples, the database);
 * the current dictionary is then unchanged.
 */
int dicts_train(struct dicts *d);

/*
 * Tells the set (NULL: dictionaries are off, nothing happens) that a poll
 * archived n messages.  While there is no current dictionary and at least
 * `after` small messages are stored without one, adopts one that another
 * process stored meanwhile or else trains one.  A failure is logged and
 * retried only after another `after` messages.  Returns 1 if a new
 * dictionary became current, else 0.
 */
int dicts_archived(struct dicts *d, uint64_t n);

#endif
