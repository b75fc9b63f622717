/*
 * What ingestd writes to the archive: accounts, messages (blob, chunks and
 * delivery), deletion marks and poll records; and the known set, read back
 * before a poll to decide what not to fetch again.
 *
 * A batch of messages is written with libpq pipeline mode: one round trip
 * sends BEGIN and every blob INSERT; a second sends the chunks of the blobs
 * that turned out new, every delivery and COMMIT.  Two round trips per
 * batch whatever its size, so a remote database costs little more than a
 * local one.
 *
 * Before DELE may follow, each new blob is read back: its compressed bytes
 * are decompressed as they are sent and must hash to the SHA-256 computed
 * as the message arrived.  The spool is read once either way, so this
 * costs CPU on the committer thread (decompressing and hashing), not I/O.
 */
#include "store/db.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "ingestd/base/log.h"
#include "ingestd/base/xmalloc.h"
#include "store/db_private.h"
#include "store/hash.h"
#include "store/index.h"
#include "store/known.h"
#include "store/spool.h"
#include "store/zstd.h"

/*
 * Whether s can be stored as text in a UTF8 database: valid UTF-8 without
 * control characters.  A server that sends anything else as a UIDL must not
 * make the whole batch fail at the database, again and again.
 */
bool
db_text_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	int i, more;
	uint32_t c, min;

	while (*p != '\0') {
		c = *p++;
		if (c < 0x20 || c == 0x7f)
			return false;
		if (c < 0x80)
			continue;
		if ((c & 0xe0) == 0xc0) {
			more = 1; min = 0x80; c &= 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			more = 2; min = 0x800; c &= 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			more = 3; min = 0x10000; c &= 0x07;
		} else
			return false;
		for (i = 0; i < more; i++, p++) {
			if ((*p & 0xc0) != 0x80)
				return false;
			c = (c << 6) | (*p & 0x3f);
		}
		if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return false;
	}
	return true;
}

static void
db_put32(unsigned char *p, uint32_t x)
{
	p[0] = x >> 24;
	p[1] = x >> 16;
	p[2] = x >> 8;
	p[3] = x;
}

int
db_account_id(struct db *db, const char *name, int64_t *id_r)
{
	struct db_params p;
	PGresult *res;

	if (db_ready(db) == -1)
		return -1;
	db_par_init(&p);
	db_par_text(&p, name);
	/* Two statements: the SELECT must see a row another process
	 * inserted after the INSERT's snapshot. */
	if ((res = db_exec(db, INDEX_ACCOUNT_INSERT, &p, false)) == NULL)
		return -1;
	PQclear(res);
	if ((res = db_exec(db, INDEX_ACCOUNT_SELECT, &p, false)) == NULL)
		return -1;
	if (PQntuples(res) != 1) {
		db_seterr(db, "SELECT account: no account \"%s\"", name);
		PQclear(res);
		return -1;
	}
	*id_r = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

int
db_account_reauth(struct db *db, int64_t account_id, bool needs)
{
	struct db_params p;
	PGresult *res;

	if (db_ready(db) == -1)
		return -1;
	db_par_init(&p);
	db_par_int(&p, account_id);
	db_par_text(&p, needs ? "true" : "false");
	if ((res = db_exec(db, INDEX_ACCOUNT_REAUTH, &p, false)) == NULL)
		return -1;
	PQclear(res);
	return 0;
}

/* Adds binary rows of INDEX_KNOWN_SELECT to k; -1 if one is malformed. */
static int
db_known_rows(const PGresult *res, struct known *k)
{
	struct known_entry e;
	int r;

	for (r = 0; r < PQntuples(res); r++) {
		if (PQgetisnull(res, r, 0) || PQgetlength(res, r, 1) != 32 ||
		    PQgetlength(res, r, 2) != 32 ||
		    PQgetlength(res, r, 3) != 8 ||
		    PQgetlength(res, r, 4) != 8 ||
		    PQgetlength(res, r, 5) != 1)
			return -1;
		memset(&e, 0, sizeof(e));
		e.uidl = PQgetvalue(res, r, 0);
		memcpy(e.sha256, PQgetvalue(res, r, 1), 32);
		memcpy(e.head_sha256, PQgetvalue(res, r, 2), 32);
		e.list_size = db_be64(PQgetvalue(res, r, 3));
		e.size = db_be64(PQgetvalue(res, r, 4));
		e.server_deleted = PQgetvalue(res, r, 5)[0] != 0;
		known_add(k, &e);
	}
	return 0;
}

/*
 * Runs INDEX_KNOWN_SELECT row by row into k, so that the set is held once,
 * in k, not twice.  *added_r counts the rows added.
 */
static int
db_known_query(struct db *db, int64_t account_id, struct known *k,
    size_t *added_r)
{
	const struct index_stmt *st = &index_stmts[INDEX_KNOWN_SELECT];
	struct db_params p;
	PGresult *res;
	int rc = 0;

	*added_r = 0;
	if (db_prepare(db, INDEX_KNOWN_SELECT) == -1)
		return -1;
	db_par_init(&p);
	db_par_int(&p, account_id);
	if (PQsendQueryPrepared(db->conn, st->name, p.n, p.v, p.len, p.fmt,
	    1) == 0) {
		db_connerr(db, st->label);
		return -1;
	}
	if (PQsetSingleRowMode(db->conn) == 0)
		log_debug("database: single-row mode refused");
	/* Every result is read, even after an error, to leave the
	 * connection idle. */
	while ((res = PQgetResult(db->conn)) != NULL) {
		switch (PQresultStatus(res)) {
		case PGRES_SINGLE_TUPLE:
		case PGRES_TUPLES_OK:	/* the end, or all rows at once */
			if (rc == 0 && db_known_rows(res, k) == -1) {
				db_seterr(db, "%s: malformed row", st->label);
				rc = -1;
			}
			*added_r += PQntuples(res);
			break;
		default:
			if (rc == 0)
				db_reserr(db, st->label, res);
			rc = -1;
			break;
		}
		PQclear(res);
	}
	return rc;
}

int
db_known_load(struct db *db, int64_t account_id, struct known *k)
{
	size_t added;

	if (db_ready(db) == -1)
		return -1;
	if (db_known_query(db, account_id, k, &added) == 0)
		return 0;
	/* As in db_exec(), but only if k is still untouched. */
	if (added > 0 || PQstatus(db->conn) != CONNECTION_BAD)
		return -1;
	log_info("%s; reconnecting", db->error);
	if (db_reconnect(db) == -1)
		return -1;
	return db_known_query(db, account_id, k, &added);
}

/*
 * Checks what can be checked before the transaction, so that one bad row
 * is reported as its own and cannot sink every batch it is retried in.
 */
static int
db_rows_check(struct db *db, struct db_commit_row *rows, size_t n)
{
	struct db_commit_row *row;
	size_t i, bad = 0;

	for (i = 0; i < n; i++) {
		row = &rows[i];
		row->error[0] = '\0';
		if (row->uidl != NULL && !db_text_ok(row->uidl))
			snprintf(row->error, sizeof(row->error), "UIDL is not "
			    "printable UTF-8; cannot be stored");
		else if (row->spool == NULL)
			snprintf(row->error, sizeof(row->error), "no spool");
		else if (spool_size(row->spool) != row->stored_size)
			snprintf(row->error, sizeof(row->error), "spool holds "
			    "%" PRIu64 " bytes, %" PRIu64 " expected",
			    spool_size(row->spool), row->stored_size);
		else if (row->stored_size / DB_CHUNK >= INT32_MAX)
			snprintf(row->error, sizeof(row->error), "message too "
			    "large");
		if (row->error[0] != '\0' && bad++ == 0)
			db_seterr(db, "message: %s", row->error);
	}
	return bad > 0 ? -1 : 0;
}

/* The read-back decompressor for dictionary dict_id, NULL if none. */
static struct db_dec *
db_rb_find(struct db *db, int64_t dict_id)
{
	size_t i;

	for (i = 0; i < db->ndecs; i++)
		if (db->decs[i].dict_id == dict_id)
			return &db->decs[i];
	return NULL;
}

/* Drops a decompressor: after a failure, or one too many. */
static void
db_rb_drop(struct db *db, struct db_dec *d)
{
	zdec_free(&d->dec);
	*d = db->decs[--db->ndecs];
}

void
db_rb_release(struct db *db)
{
	while (db->ndecs > 0)
		db_rb_drop(db, &db->decs[db->ndecs - 1]);
	free(db->decs); db->decs = NULL;
	hash_sha256_release(&db->rb_hash);
}

/*
 * Before a batch's transaction, which cannot stop half-way to load one: a
 * decompressor for the dictionary of every row, each dictionary loaded
 * once per connection (they never change).  Beyond those the batch needs,
 * at most DB_DECS are kept, the least recently used dropped.  A row whose
 * dictionary is not in the archive gets the error: its bytes can never be
 * read back.  0, or -1 with the error set.
 */
static int
db_rb_begin(struct db *db, struct db_commit_row *rows, size_t n)
{
	struct db_dec *d, *old;
	struct db_params p;
	struct zdec *dec;
	PGresult *res;
	size_t i, bad = 0;

	db->rb_tick++;
	for (i = 0; i < n; i++) {
		if ((d = db_rb_find(db, rows[i].dict_id)) != NULL) {
			d->used = db->rb_tick;
			continue;
		}
		if (rows[i].dict_id == 0)
			dec = zdec_new(NULL, 0);
		else {
			db_par_init(&p);
			db_par_int(&p, rows[i].dict_id);
			if ((res = db_exec(db, INDEX_DICT_SELECT, &p,
			    true)) == NULL)
				return -1;
			if (PQntuples(res) != 1) {
				PQclear(res);
				snprintf(rows[i].error, sizeof(rows[i].error),
				    "read-back: dictionary %" PRId64 " is not "
				    "in the archive", rows[i].dict_id);
				if (bad++ == 0)
					db_seterr(db, "message: %s",
					    rows[i].error);
				continue;
			}
			dec = zdec_new(PQgetvalue(res, 0, 0),
			    (size_t)PQgetlength(res, 0, 0));
			PQclear(res);
			log_debug("database: read-back with dictionary %"
			    PRId64, rows[i].dict_id);
		}
		db->decs = xreallocarray(db->decs, db->ndecs + 1,
		    sizeof(*db->decs));
		d = &db->decs[db->ndecs++];
		d->dict_id = rows[i].dict_id;
		d->dec = dec;
		d->used = db->rb_tick;
	}
	while (db->ndecs > DB_DECS) {
		old = NULL;
		for (i = 0; i < db->ndecs; i++)
			if (db->decs[i].used != db->rb_tick && (old == NULL ||
			    db->decs[i].used < old->used))
				old = &db->decs[i];
		if (old == NULL)
			break;
		db_rb_drop(db, old);
	}
	return bad > 0 ? -1 : 0;
}

/* Decompressed bytes of the blob being read back. */
static int
db_rb_out(void *arg, const void *p, size_t n)
{
	struct db *db = arg;

	/* More than was received: no need to decode the rest. */
	if (n > db->rb_want - db->rb_size) {
		db->rb_size = db->rb_want + 1;
		return -1;
	}
	hash_sha256_update(&db->rb_hash, p, n);
	db->rb_size += n;
	return 0;
}

/*
 * Queues INSERT blob_chunk for the whole spool of row, reading it back on
 * the way: the chunks are decompressed as they are sent, and the result
 * must be the message that was received.  A row whose bytes are not gets
 * the error; the transaction must then not commit.
 */
static int
db_send_chunks(struct db *db, struct db_commit_row *row)
{
	struct db_params p;
	struct db_dec *d;
	unsigned char digest[HASH_SHA256_LEN];
	uint64_t off = 0, left = row->stored_size;
	ssize_t r;
	size_t want, got;
	int seq = 0;

	/* db_rb_begin() made it, and nothing dropped it since. */
	d = db_rb_find(db, row->dict_id);
	ASSERT(d != NULL);
	if (db->chunk == NULL)
		db->chunk = xmalloc(DB_CHUNK);
	if (db->rb_hash.ctx == NULL)
		hash_sha256_init(&db->rb_hash);
	else
		hash_sha256_reset(&db->rb_hash);
	db->rb_size = 0;
	db->rb_want = row->size;
	while (left > 0) {
		want = left < DB_CHUNK ? (size_t)left : DB_CHUNK;
		/* A read may stop short, e.g. where memory ends and the
		 * file begins. */
		for (got = 0; got < want; got += r) {
			r = spool_read(row->spool, off + got,
			    db->chunk + got, want - got);
			if (r <= 0) {
				snprintf(row->error, sizeof(row->error),
				    "spool read: %s", r == -1 ?
				    spool_error(row->spool) :
				    "ends early");
				goto fail;
			}
		}
		if (zdec_write(d->dec, db->chunk, want, db_rb_out, db) == -1) {
			if (db->rb_size > db->rb_want)
				snprintf(row->error, sizeof(row->error),
				    "read-back: SHA-256 of the decoded bytes "
				    "differs from the received message (more "
				    "than its %" PRIu64 " bytes)", row->size);
			else
				snprintf(row->error, sizeof(row->error),
				    "read-back: the stored bytes do not "
				    "decode: %s", zdec_error(d->dec));
			goto fail;
		}
		db_par_init(&p);
		db_par_bytes(&p, row->sha256, 32);
		db_par_int(&p, seq);
		db_par_bytes(&p, db->chunk, want);
		if (db_pl_send(db, INDEX_CHUNK_INSERT, &p, NULL) == -1) {
			/* Not the row's fault; the frame is left half-read. */
			db_rb_drop(db, d);
			return -1;
		}
		off += want;
		left -= want;
		seq++;
	}
	if (zdec_finish(d->dec) == -1) {
		snprintf(row->error, sizeof(row->error), "read-back: the "
		    "stored bytes do not decode: %s", zdec_error(d->dec));
		goto fail;
	}
	hash_sha256_final(&db->rb_hash, digest);
	if (db->rb_size != row->size) {
		snprintf(row->error, sizeof(row->error), "read-back: SHA-256 "
		    "of the decoded bytes differs from the received message "
		    "(%" PRIu64 " bytes decoded, %" PRIu64 " received)",
		    db->rb_size, row->size);
		db_seterr(db, "message: %s", row->error);
		return -1;
	}
	if (memcmp(digest, row->sha256, sizeof(digest)) != 0) {
		snprintf(row->error, sizeof(row->error), "read-back: SHA-256 "
		    "of the decoded bytes differs from the received message");
		db_seterr(db, "message: %s", row->error);
		return -1;
	}
	return 0;
fail:
	/* After an error a zdec can only be freed; mid-frame, it is no
	 * use for the next blob either. */
	db_rb_drop(db, d);
	db_seterr(db, "message: %s", row->error);
	return -1;
}

int
db_commit_messages(struct db *db, struct db_commit_row *rows, size_t n)
{
	struct db_commit_row *row;
	struct db_params p;
	bool *fresh = NULL, *added = NULL, forced = false;
	size_t i;
	int rc = -1;

	if (n == 0)
		return 0;
	if (db_ready(db) == -1 || db_rows_check(db, rows, n) == -1 ||
	    db_rb_begin(db, rows, n) == -1 ||
	    db_prepare(db, INDEX_BLOB_INSERT) == -1 ||
	    db_prepare(db, INDEX_CHUNK_INSERT) == -1 ||
	    db_prepare(db, INDEX_DELIVERY_INSERT) == -1 ||
	    db_prepare(db, INDEX_MESSAGE_INSERT) == -1 ||
	    db_prepare(db, INDEX_SYNC_COMMIT_LOCAL) == -1)
		return -1;
	fresh = xcalloc(n, sizeof(*fresh));
	added = xcalloc(n, sizeof(*added));
	if (db_pl_enter(db) == -1)
		goto out;

	/* Round trip 1: which blobs are new. */
	if (db_pl_send_sql(db, "BEGIN", false) == -1)
		goto fail;
	for (i = 0; i < n; i++) {
		row = &rows[i];
		db_par_init(&p);
		db_par_bytes(&p, row->sha256, 32);
		db_par_uint(&p, row->size);
		db_par_uint(&p, row->stored_size);
		db_par_int(&p, row->dict_id);
		db_par_int(&p, (int64_t)((row->stored_size + DB_CHUNK - 1) /
		    DB_CHUNK));
		if (db_pl_send(db, INDEX_BLOB_INSERT, &p, &fresh[i]) == -1)
			goto fail;
	}
	if (db_pl_sync(db) == -1)
		goto fail;

	/*
	 * Round trip 2: the chunks of the new blobs, the deliveries, COMMIT.
	 * The same blob twice in one batch is new only for the first row.
	 */
	for (i = 0; i < n; i++) {
		row = &rows[i];
		if (fresh[i] && db_send_chunks(db, row) == -1) {
			/* Send nothing more, COMMIT least of all. */
			(void)db_pl_sync(db);
			goto fail;
		}
		/* A new blob's index rows, with it: never one without the
		 * other.  An older blob's are reindex's to write. */
		if (fresh[i] && (row->meta != NULL || row->index_refused) &&
		    db_index_send(db, row->sha256, row->meta,
		    row->index_refused) == -1)
			goto fail;
		db_par_init(&p);
		db_par_int(&p, row->account_id);
		db_par_text(&p, row->uidl);
		db_par_bytes(&p, row->sha256, 32);
		db_par_uint(&p, row->list_size);
		db_par_bytes(&p, row->head_sha256, 32);
		if (db_pl_send(db, INDEX_DELIVERY_INSERT, &p, &added[i]) == -1)
			goto fail;
	}
	/*
	 * Last before COMMIT, so that nothing in the transaction can turn
	 * synchronous_commit off after it; in the same round trip.
	 */
	db_par_init(&p);
	if (db_pl_send(db, INDEX_SYNC_COMMIT_LOCAL, &p, &forced) == -1 ||
	    db_pl_send_sql(db, "COMMIT", true) == -1 || db_pl_sync(db) == -1)
		goto fail;
	if (forced)
		log_warnx("database: synchronous_commit was off in the session "
		    "that committed (a connection pooler that loses SET?); "
		    "it was set on for the transaction");
	for (i = 0; i < n; i++) {
		rows[i].blob_existed = !fresh[i];
		rows[i].delivery_existed = !added[i];
	}
	rc = 0;
fail:
	db_pl_leave(db);
out:
	free(fresh); fresh = NULL;
	free(added); added = NULL;
	return rc;
}

/*
 * The binary form: header (ndim, has-nulls, element type), the dimension
 * (size, lower bound), then each element as length and bytes, -1 for
 * NULL.  No quoting to get wrong.
 */
unsigned char *
db_array(struct db *db, uint32_t elemtype, const void *const *elems,
    const size_t *lens, size_t n, size_t *total_r)
{
	unsigned char *arr, *w;
	size_t i, total = n > 0 ? 20 : 12;
	bool nulls = false;

	for (i = 0; i < n; i++) {
		total += 4 + (elems[i] != NULL ? lens[i] : 0);
		nulls |= elems[i] == NULL;
	}
	if (total > INT32_MAX || n > INT32_MAX) {
		db_seterr(db, "array parameter of %zu elements is too large",
		    n);
		return NULL;
	}
	arr = w = xmalloc(total);
	db_put32(w, n > 0 ? 1 : 0);
	db_put32(w + 4, nulls ? 1 : 0);
	db_put32(w + 8, elemtype);
	w += 12;
	if (n > 0) {
		db_put32(w, (uint32_t)n);
		db_put32(w + 4, 1);
		w += 8;
	}
	for (i = 0; i < n; i++) {
		if (elems[i] == NULL) {
			db_put32(w, UINT32_MAX);	/* -1: NULL */
			w += 4;
			continue;
		}
		db_put32(w, (uint32_t)lens[i]);
		memcpy(w + 4, elems[i], lens[i]);
		w += 4 + lens[i];
	}
	*total_r = total;
	return arr;
}

int
db_mark_deleted(struct db *db, int64_t account_id,
    const struct db_deleted *d, size_t n)
{
	struct db_params p;
	PGresult *res;
	const void **uidls, **shas;
	size_t *uidl_lens, *sha_lens, i, ulen, slen;
	unsigned char *uarr = NULL, *sarr = NULL;
	int rc = -1;

	if (n == 0)
		return 0;
	if (db_ready(db) == -1)
		return -1;
	uidls = xcalloc(n, sizeof(*uidls));
	shas = xcalloc(n, sizeof(*shas));
	uidl_lens = xcalloc(n, sizeof(*uidl_lens));
	sha_lens = xcalloc(n, sizeof(*sha_lens));
	for (i = 0; i < n; i++) {
		if (d[i].uidl != NULL && !db_text_ok(d[i].uidl)) {
			db_seterr(db, "UPDATE delivery (deleted): UIDL is not "
			    "printable UTF-8");
			goto out;
		}
		uidls[i] = d[i].uidl;
		uidl_lens[i] = d[i].uidl ? strlen(d[i].uidl) : 0;
		shas[i] = d[i].sha256;
		sha_lens[i] = 32;
	}
	if ((uarr = db_array(db, DB_TEXTOID, uidls, uidl_lens, n, &ulen)) ==
	    NULL || (sarr = db_array(db, DB_BYTEAOID, shas, sha_lens, n,
	    &slen)) == NULL)
		goto out;
	db_par_init(&p);
	db_par_int(&p, account_id);
	db_par_bytes(&p, uarr, ulen);
	db_par_bytes(&p, sarr, slen);
	if ((res = db_exec(db, INDEX_MARK_DELETED, &p, false)) != NULL) {
		PQclear(res);
		rc = 0;
	}
out:
	free(uarr); uarr = NULL;
	free(sarr); sarr = NULL;
	free(uidls); uidls = NULL;
	free(shas); shas = NULL;
	free(uidl_lens); uidl_lens = NULL;
	free(sha_lens); sha_lens = NULL;
	return rc;
}

int
db_mark_absent(struct db *db, int64_t account_id,
    const char *const *present, size_t n)
{
	struct db_params p;
	PGresult *res;
	unsigned char *arr;
	size_t i, total, *lens;
	int rc = -1;

	if (db_ready(db) == -1)
		return -1;
	lens = xcalloc(n ? n : 1, sizeof(*lens));
	for (i = 0; i < n; i++) {
		if (!db_text_ok(present[i])) {
			db_seterr(db, "UPDATE delivery (absent): UIDL is not "
			    "printable UTF-8");
			free(lens); lens = NULL;
			return -1;
		}
		lens[i] = strlen(present[i]);
	}
	arr = db_array(db, DB_TEXTOID, (const void *const *)present, lens, n,
	    &total);
	free(lens); lens = NULL;
	if (arr == NULL)
		return -1;
	db_par_init(&p);
	db_par_int(&p, account_id);
	db_par_bytes(&p, arr, total);
	if ((res = db_exec(db, INDEX_MARK_ABSENT, &p, false)) != NULL) {
		if (strcmp(PQcmdTuples(res), "0") != 0)
			log_debug("database: account %" PRId64 ": %s messages "
			    "found gone from the server", account_id,
			    PQcmdTuples(res));
		PQclear(res);
		rc = 0;
	}
	free(arr); arr = NULL;
	return rc;
}

int
db_poll_record(struct db *db, const struct db_poll *poll)
{
	struct db_params p;
	PGresult *res;

	if (db_ready(db) == -1)
		return -1;
	db_par_init(&p);
	db_par_int(&p, poll->account_id);
	db_par_int(&p, (int64_t)poll->started);
	if (poll->finished != 0)
		db_par_int(&p, (int64_t)poll->finished);
	else
		db_par_text(&p, NULL);
	db_par_text(&p, poll->outcome);
	db_par_text(&p, poll->error);
	db_par_uint(&p, poll->listed);
	db_par_uint(&p, poll->fetched);
	db_par_uint(&p, poll->archived);
	db_par_uint(&p, poll->deduplicated);
	db_par_uint(&p, poll->deleted);
	db_par_uint(&p, poll->bytes);
	if ((res = db_exec(db, INDEX_POLL_INSERT, &p, false)) == NULL)
		return -1;
	PQclear(res);
	return 0;
}

int
db_refusals_load(struct db *db, int64_t account_id, struct known *k)
{
	struct known_entry e;
	struct db_params p;
	PGresult *res;
	int r;

	if (db_ready(db) == -1)
		return -1;
	db_par_init(&p);
	db_par_int(&p, account_id);
	if ((res = db_exec(db, INDEX_REFUSAL_SELECT, &p, false)) == NULL)
		return -1;
	for (r = 0; r < PQntuples(res); r++) {
		memset(&e, 0, sizeof(e));
		e.uidl = PQgetvalue(res, r, 0);
		e.list_size = strtoull(PQgetvalue(res, r, 1), NULL, 10);
		e.refused = PQgetvalue(res, r, 2)[0] == 't' ? KNOWN_TOO_LARGE :
		    KNOWN_FAILED;
		e.size_limit = strtoull(PQgetvalue(res, r, 3), NULL, 10);
		e.failures = (unsigned)strtoul(PQgetvalue(res, r, 4), NULL,
		    10);
		e.last_refused = strtoll(PQgetvalue(res, r, 5), NULL, 10);
		known_add(k, &e);
	}
	PQclear(res);
	return 0;
}

int
db_refusals_record(struct db *db, int64_t account_id,
    const struct db_refusal *r, size_t n, const char *const *present,
    size_t npresent)
{
	struct db_params p;
	PGresult *res;
	unsigned char *arr = NULL;
	size_t i, total = 0, *lens;

	if (db_ready(db) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if (!db_text_ok(r[i].uidl)) {
			db_seterr(db, "INSERT refusal: UIDL is not printable "
			    "UTF-8");
			return -1;
		}
		db_par_init(&p);
		db_par_int(&p, account_id);
		db_par_text(&p, r[i].uidl);
		db_par_uint(&p, r[i].list_size);
		db_par_text(&p, r[i].reason == KNOWN_TOO_LARGE ? "too_large" :
		    "failed");
		db_par_uint(&p, r[i].size_limit);
		/* Error text is ours, but quotes a server: keep it storable. */
		db_par_text(&p, r[i].error != NULL &&
		    db_text_ok(r[i].error) ? r[i].error : NULL);
		if ((res = db_exec(db, INDEX_REFUSAL_RECORD, &p, false)) ==
		    NULL)
			return -1;
		PQclear(res);
	}
	if (present != NULL) {
		lens = xcalloc(npresent ? npresent : 1, sizeof(*lens));
		for (i = 0; i < npresent; i++)
			lens[i] = strlen(present[i]);
		arr = db_array(db, DB_TEXTOID, (const void *const *)present,
		    lens, npresent, &total);
		free(lens); lens = NULL;
		if (arr == NULL)
			return -1;
	}
	db_par_init(&p);
	db_par_int(&p, account_id);
	if (arr != NULL)
		db_par_bytes(&p, arr, total);
	else
		db_par_text(&p, NULL);
	res = db_exec(db, INDEX_REFUSAL_PRUNE, &p, false);
	free(arr); arr = NULL;
	if (res == NULL)
		return -1;
	PQclear(res);
	return 0;
}
