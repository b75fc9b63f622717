/*
 * Dictionaries (see dicts.h).
 *
 * A dictionary once current is never freed before dicts_free(): a session
 * that started with it still compresses with it after a newer one is made
 * current, and a pooled zstd context drops its reference only when the
 * message ends.  They are few (one per training) and small, so keeping
 * them all costs little and needs no reference counting across threads.
 */
#include "store/dicts.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingestd/base/log.h"
#include "ingestd/base/xmalloc.h"
#include "store/db.h"
#include "store/zstd.h"

/* Fewer samples than this teach nothing worth storing. */
#define DICTS_MIN_SAMPLES	10

struct dicts {
	struct db *db;
	int level;
	uint64_t after;
	struct zdict **all;	/* every dictionary made current */
	size_t nall;
	struct zdict *current;
	uint64_t since;		/* messages archived since a failed try */
	bool waiting;		/* a training failed: wait for `after` more */
	char error[512];
};

/* The samples being gathered, laid end to end as zdict_train() wants. */
struct dicts_sampler {
	struct dicts *d;
	struct zdec *dec;
	unsigned char *buf;	/* DICTS_SAMPLE_BYTES */
	size_t len;
	size_t *sizes;		/* DICTS_SAMPLES */
	unsigned n;
	size_t start;		/* where the sample in progress begins */
	uint64_t want;		/* its recorded size */
	unsigned skipped;
	bool lost;		/* the database went away */
};

struct dicts *
dicts_new(struct db *db, int level, uint64_t after)
{
	struct dicts *d = xcalloc(1, sizeof(*d));

	d->db = db;
	d->level = level;
	d->after = after;
	return d;
}

void
dicts_free(struct dicts **dp)
{
	struct dicts *d = *dp;
	size_t i;

	if (d == NULL)
		return;
	for (i = 0; i < d->nall; i++)
		zdict_free(&d->all[i]);
	free(d->all); d->all = NULL;
	free(d); *dp = NULL;
}

const char *
dicts_error(const struct dicts *d)
{
	return d->error;
}

const struct zdict *
dicts_current(const struct dicts *d)
{
	return d != NULL ? d->current : NULL;
}

/* Prepares p[0, n) as dictionary id and makes it current. */
static int
dicts_adopt(struct dicts *d, int64_t id, const void *p, size_t n)
{
	struct zdict *z;

	if ((z = zdict_new(id, p, n, d->level)) == NULL) {
		snprintf(d->error, sizeof(d->error), "dictionary %" PRId64
		    ": zstd refuses its %zu bytes", id, n);
		return -1;
	}
	d->all = xreallocarray(d->all, d->nall + 1, sizeof(*d->all));
	d->all[d->nall++] = z;
	d->current = z;
	return 0;
}

int
dicts_load_latest(struct dicts *d)
{
	void *p;
	size_t n;
	int64_t id;
	int rc;

	d->error[0] = '\0';
	if (db_dict_latest(d->db, &id, &p, &n) == -1) {
		snprintf(d->error, sizeof(d->error), "%s", db_error(d->db));
		return -1;
	}
	if (id == 0 || (d->current != NULL && zdict_id(d->current) == id)) {
		free(p); p = NULL;
		return 0;
	}
	rc = dicts_adopt(d, id, p, n);
	free(p); p = NULL;
	return rc;
}

/* Decompressed bytes of the sample in progress, bounded by its record. */
static int
dicts_sample_out(void *arg, const void *p, size_t n)
{
	struct dicts_sampler *s = arg;

	if (s->len - s->start + n > s->want)
		return -1;
	memcpy(s->buf + s->len, p, n);
	s->len += n;
	return 0;
}

static int
dicts_sample_in(void *arg, const void *p, size_t n)
{
	struct dicts_sampler *s = arg;

	return zdec_write(s->dec, p, n, dicts_sample_out, s);
}

/*
 * Reads one blob back into the buffer.  One that cannot be read whole is
 * left out rather than failing the training: verify is the judge of a
 * damaged blob, not this.
 */
static int
dicts_sample_one(void *arg, const struct db_message *m)
{
	struct dicts_sampler *s = arg;

	if (s->n == DICTS_SAMPLES)
		return 0;
	if (m->size > DICTS_SAMPLE_BYTES - s->len)
		return 0;	/* a smaller one may still fit */
	s->start = s->len;
	s->want = m->size;
	if (s->dec == NULL)
		s->dec = zdec_new(NULL, 0);
	if (db_blob_read(s->d->db, m->sha256_hex, dicts_sample_in, s) == 0 &&
	    zdec_finish(s->dec) == 0 && s->len - s->start == s->want) {
		s->sizes[s->n++] = (size_t)s->want;
		return 0;
	}
	s->len = s->start;
	zdec_free(&s->dec);
	s->skipped++;
	if (!db_connected(s->d->db)) {
		s->lost = true;
		return -1;
	}
	return 0;
}

int
dicts_train(struct dicts *d)
{
	struct dicts_sampler s = { .d = d };
	struct timespec t0, t1;
	unsigned char *dict = NULL;
	size_t cap, len;
	int64_t id;
	int rc = -1;

	d->error[0] = '\0';
	clock_gettime(CLOCK_MONOTONIC, &t0);
	s.buf = xmalloc(DICTS_SAMPLE_BYTES);
	s.sizes = xcalloc(DICTS_SAMPLES, sizeof(*s.sizes));
	if (db_sample_blobs(d->db, DICTS_SAMPLE_MAX, DICTS_SAMPLES,
	    dicts_sample_one, &s) == -1) {
		snprintf(d->error, sizeof(d->error), "reading samples: %s",
		    db_error(d->db));
		goto out;
	}
	if (s.n < DICTS_MIN_SAMPLES) {
		snprintf(d->error, sizeof(d->error), "%u messages of at most "
		    "%d bytes stored without a dictionary; at least %d are "
		    "needed", s.n, DICTS_SAMPLE_MAX, DICTS_MIN_SAMPLES);
		goto out;
	}
	/* A dictionary much larger than a tenth of its samples would only
	 * copy them. */
	cap = s.len / 8 < DICTS_CAP ? s.len / 8 : DICTS_CAP;
	if (cap < 1024)
		cap = 1024;
	dict = xmalloc(cap);
	if (zdict_train(s.buf, s.sizes, s.n, dict, cap, &len) == -1) {
		snprintf(d->error, sizeof(d->error), "zstd could not train "
		    "on %u messages (%zu bytes)", s.n, s.len);
		goto out;
	}
	if (db_dict_store(d->db, dict, len, &id) == -1) {
		snprintf(d->error, sizeof(d->error), "%s", db_error(d->db));
		goto out;
	}
	if (dicts_adopt(d, id, dict, len) == -1)
		goto out;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	log_info("trained compression dictionary %" PRId64 ": %zu bytes from "
	    "%u messages (%zu bytes%s) in %.1f s", id, len, s.n, s.len,
	    s.skipped > 0 ? ", some unreadable ones left out" : "",
	    (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	rc = 0;
out:
	zdec_free(&s.dec);
	free(s.buf); s.buf = NULL;
	free(s.sizes); s.sizes = NULL;
	free(dict); dict = NULL;
	return rc;
}

int
dicts_archived(struct dicts *d, uint64_t n)
{
	uint64_t have;

	if (d == NULL || d->after == 0 || n == 0 || d->current != NULL)
		return 0;
	d->since += n;
	if (d->waiting && d->since < d->after)
		return 0;
	if (db_sample_count(d->db, DICTS_SAMPLE_MAX, d->after, &have) == -1) {
		snprintf(d->error, sizeof(d->error), "%s", db_error(d->db));
		goto fail;
	}
	if (have < d->after)
		return 0;
	/* Several ingestd nodes may share the archive: one dictionary for
	 * all of them is enough. */
	if (dicts_load_latest(d) == -1)
		goto fail;
	if (d->current != NULL) {
		log_info("compressing with dictionary %" PRId64 ", stored by "
		    "another process", zdict_id(d->current));
		return 1;
	}
	if (dicts_train(d) == -1)
		goto fail;
	d->waiting = false;
	return 1;
fail:
	log_warnx("compression dictionary: %s; compressing without one, "
	    "trying again after %" PRIu64 " more messages", d->error,
	    d->after);
	d->waiting = true;
	d->since = 0;
	return 0;
}
