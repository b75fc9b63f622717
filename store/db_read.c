/*
 * Reading the archive back, for export and verify: its messages and blobs
 * a page at a time, a blob's chunks one query each, so that memory stays
 * bounded whatever the archive holds.
 */
#include "store/db.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "store/db_private.h"
#include "store/index.h"

/* Rows per page when iterating over the archive. */
#define DB_PAGE		500

/* Whether s is a SHA-256 as the archive spells it: 64 lowercase hex digits. */
static bool
db_hex_ok(const char *s)
{
	size_t i;

	for (i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[64] == '\0';
}

/*
 * Calls cb for each row of a page query, the key of the last row into
 * last_sha; returns the rows seen or -1.
 */
static int
db_page(struct db *db, enum index_id id, const struct db_params *p,
    const char *account, char last_sha[65],
    int (*cb)(void *arg, const struct db_message *m), void *arg)
{
	struct db_message m;
	PGresult *res;
	int r, rows;

	if ((res = db_exec(db, id, p, false)) == NULL)
		return -1;
	rows = PQntuples(res);
	for (r = 0; r < rows; r++) {
		m.account = account;
		m.sha256_hex = PQgetvalue(res, r, 0);
		m.size = strtoull(PQgetvalue(res, r, 1), NULL, 10);
		m.dict_id = strtoll(PQgetvalue(res, r, 2), NULL, 10);
		snprintf(last_sha, 65, "%s", m.sha256_hex);
		if (cb(arg, &m) != 0) {
			PQclear(res);
			return -1;
		}
	}
	PQclear(res);
	return rows;
}

/*
 * Pages start after the last key of the page before, so each is an index
 * range scan, and the callback may use db between rows.
 */
int
db_each_message(struct db *db, const char *account,
    int (*cb)(void *arg, const struct db_message *m), void *arg)
{
	struct db_params p;
	PGresult *accts;
	char last_sha[65];
	int a, rows;

	if (db_ready(db) == -1)
		return -1;
	db_par_init(&p);
	db_par_text(&p, account);
	if ((accts = db_exec(db, INDEX_ACCOUNT_LIST, &p, false)) == NULL)
		return -1;
	if (account != NULL && PQntuples(accts) == 0) {
		db_seterr(db, "no account named \"%s\"", account);
		PQclear(accts);
		return -1;
	}
	for (a = 0; a < PQntuples(accts); a++) {
		last_sha[0] = '\0';
		do {
			db_par_init(&p);
			db_par_text(&p, PQgetvalue(accts, a, 0));
			db_par_text(&p, last_sha);
			db_par_int(&p, DB_PAGE);
			rows = db_page(db, INDEX_EACH_MESSAGE, &p,
			    PQgetvalue(accts, a, 1), last_sha, cb, arg);
		} while (rows == DB_PAGE);
		if (rows == -1) {
			PQclear(accts);
			return -1;
		}
	}
	PQclear(accts);
	return 0;
}

int
db_each_blob(struct db *db,
    int (*cb)(void *arg, const struct db_message *m), void *arg)
{
	struct db_params p;
	char last_sha[65] = "";
	int rows;

	if (db_ready(db) == -1)
		return -1;
	do {
		db_par_init(&p);
		db_par_text(&p, last_sha);
		db_par_int(&p, DB_PAGE);
		rows = db_page(db, INDEX_EACH_BLOB, &p, NULL, last_sha, cb,
		    arg);
	} while (rows == DB_PAGE);
	return rows == -1 ? -1 : 0;
}

int
db_blob_read(struct db *db, const char *sha256_hex,
    int (*cb)(void *arg, const void *p, size_t n), void *arg)
{
	struct db_params p;
	PGresult *res;
	uint64_t stored, total = 0;
	long chunks, seq;
	int len;

	if (db_ready(db) == -1)
		return -1;
	if (!db_hex_ok(sha256_hex)) {
		db_seterr(db, "SELECT blob: malformed hash \"%.70s\"",
		    sha256_hex);
		return -1;
	}
	db_par_init(&p);
	db_par_text(&p, sha256_hex);
	if ((res = db_exec(db, INDEX_BLOB_SELECT, &p, false)) == NULL)
		return -1;
	if (PQntuples(res) != 1) {
		db_seterr(db, "blob %s: not in the archive", sha256_hex);
		PQclear(res);
		return -1;
	}
	chunks = strtol(PQgetvalue(res, 0, 0), NULL, 10);
	stored = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	for (seq = 0; seq < chunks; seq++) {
		db_par_init(&p);
		db_par_text(&p, sha256_hex);
		db_par_int(&p, seq);
		if ((res = db_exec(db, INDEX_CHUNK_SELECT, &p, true)) == NULL)
			return -1;
		if (PQntuples(res) != 1) {
			db_seterr(db, "blob %s: chunk %ld of %ld missing",
			    sha256_hex, seq, chunks);
			PQclear(res);
			return -1;
		}
		len = PQgetlength(res, 0, 0);
		total += len;
		if (total > stored) {
			PQclear(res);
			break;
		}
		if (cb(arg, PQgetvalue(res, 0, 0), len) != 0) {
			PQclear(res);
			db_seterr(db, "blob %s: reading stopped", sha256_hex);
			return -1;
		}
		PQclear(res);
	}
	if (total != stored) {
		db_seterr(db, "blob %s: %s bytes in chunks, %" PRIu64
		    " recorded", sha256_hex, total > stored ? "more" : "fewer",
		    stored);
		return -1;
	}
	return 0;
}
