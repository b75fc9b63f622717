/*
 * `ingestd reindex` (see reindex.h): the indexer run over blobs read back
 * from the archive, rather than over RETR's bytes.
 */
#include "store/reindex.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingestd/base/log.h"
#include "ingestd/base/xmalloc.h"
#include "store/db.h"
#include "store/mime/parser.h"
#include "store/pipe.h"
#include "store/reader.h"

/*
 * A batch ends at this many messages or this many bytes of kept text,
 * whichever comes first: one fsync serves many messages, and memory stays
 * bounded whatever their size.
 */
#define REINDEX_BATCH 100
#define REINDEX_BATCH_TEXT (16 * 1024 * 1024)

struct reindex {
	struct db *db;
	struct reader *reader;
	struct reindex_stats *st;
	void (*progress)(void *arg, const struct reindex_stats *st);
	void *progress_arg;
	struct db_index_row rows[REINDEX_BATCH];
	struct mime_meta *metas[REINDEX_BATCH];
	size_t n;
	size_t text;
	bool db_gone;
};

static int
reindex_feed(void *arg, const void *p, size_t n)
{
	mime_parser_feed(arg, p, n);
	return 0;
}

static int
reindex_unhex(const char *hex, unsigned char out[32])
{
	unsigned int b;
	size_t i;

	if (strlen(hex) != 64)
		return -1;
	for (i = 0; i < 32; i++) {
		if (sscanf(hex + 2 * i, "%2x", &b) != 1)
			return -1;
		out[i] = (unsigned char)b;
	}
	return 0;
}

static void
reindex_clear(struct reindex *ri)
{
	size_t i;

	for (i = 0; i < ri->n; i++)
		mime_meta_free(&ri->metas[i]);
	ri->n = 0;
	ri->text = 0;
}

/*
 * Stores the batch.  When the server refuses a value and cannot say
 * whose, each message goes alone, and one the server still refuses is
 * stored with a minimal row flagged index_refused: it is indexed as far
 * as it can be, and not tried again at every reindex.
 */
static int
reindex_flush(struct reindex *ri)
{
	struct db_index_row *row;
	char hex[65];
	size_t i;

	if (ri->n == 0)
		return 0;
	if (db_index_store(ri->db, ri->rows, ri->n) == 0)
		goto done;
	if (!db_error_data(ri->db))
		return -1;
	for (i = 0; i < ri->n; i++) {
		row = &ri->rows[i];
		if (db_index_store(ri->db, row, 1) == 0)
			continue;
		if (!db_error_data(ri->db))
			return -1;
		pipe_hex(row->sha256, hex);
		log_warnx("reindex: message %s: %s (SQLSTATE %s); indexing "
			  "it without its rows",
		    hex, db_error(ri->db), db_sqlstate(ri->db));
		row->refused = true;
		if (db_index_store(ri->db, row, 1) == -1)
			return -1;
		ri->st->refused++;
	}
done:
	ri->st->indexed += ri->n;
	reindex_clear(ri);
	if (ri->progress != NULL)
		ri->progress(ri->progress_arg, ri->st);
	return 0;
}

static int
reindex_one(void *arg, const struct db_message *m)
{
	struct reindex *ri = arg;
	struct mime_parser *mp = mime_parser_new();
	struct db_index_row *row;
	char why[512];
	int rc;

	rc = reader_stream(ri->reader, m, reindex_feed, mp, why, sizeof(why));
	if (rc != 0) {
		mime_parser_free(&mp);
		if (rc == -2) {
			ri->db_gone = true;
			return -1;
		}
		log_warnx("reindex: message %s is damaged, not indexed: %s",
		    m->sha256_hex, why);
		ri->st->damaged++;
		return 0;
	}
	ri->st->bytes += m->size;
	row = &ri->rows[ri->n];
	memset(row, 0, sizeof(*row));
	/* The database gave it as hex of 32 bytes. */
	ASSERT(reindex_unhex(m->sha256_hex, row->sha256) == 0);
	ri->metas[ri->n] = mime_parser_finish(mp);
	mime_parser_free(&mp);
	row->meta = ri->metas[ri->n];
	ri->text += row->meta->text_len;
	ri->n++;
	if (ri->n == REINDEX_BATCH || ri->text >= REINDEX_BATCH_TEXT)
		return reindex_flush(ri);
	return 0;
}

int
reindex_run(struct db *db, struct reindex_stats *st,
    void (*progress)(void *arg, const struct reindex_stats *st), void *arg,
    char *err, size_t errlen)
{
	struct reindex ri;
	int rc = 0;

	memset(st, 0, sizeof(*st));
	memset(&ri, 0, sizeof(ri));
	ri.db = db;
	ri.reader = reader_new(db);
	ri.st = st;
	ri.progress = progress;
	ri.progress_arg = arg;
	if (db_each_unindexed(db, reindex_one, &ri) == -1 ||
	    reindex_flush(&ri) == -1) {
		snprintf(err, errlen, "%s", db_error(db));
		rc = -1;
	}
	reindex_clear(&ri);
	reader_free(&ri.reader);
	return rc;
}
