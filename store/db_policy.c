/*
 * What the delete policies and the RFC 2449 signals keep in the database
 * (migration 0007): first-seen times per UIDL, Dates from the index, and
 * the EXPIRE and LOGIN-DELAY of the latest login.
 */
#include "store/db.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "ingestd/base/xmalloc.h"
#include "store/db_private.h"
#include "store/facts.h"
#include "store/index.h"

/* Binary rows of (text or bytea, bigint) into f; -1 if one is malformed. */
static int
db_facts_rows(PGresult *res, struct facts *f, bool dates)
{
	int r;

	for (r = 0; r < PQntuples(res); r++) {
		if (PQgetisnull(res, r, 0) || PQgetisnull(res, r, 1) ||
		    PQgetlength(res, r, 1) != 8 ||
		    (dates && PQgetlength(res, r, 0) != 32))
			return -1;
		if (dates)
			facts_add_date(f,
			    (const unsigned char *)PQgetvalue(res, r, 0),
			    (int64_t)db_be64(PQgetvalue(res, r, 1)));
		else
			facts_add_seen(f, PQgetvalue(res, r, 0),
			    (int64_t)db_be64(PQgetvalue(res, r, 1)));
	}
	return 0;
}

int
db_facts_load(struct db *db, int64_t account_id, struct facts *f)
{
	static const enum index_id ids[] = {
		INDEX_SEEN_SELECT,
		INDEX_DATES_SELECT,
	};
	struct db_params p;
	PGresult *res;
	size_t i;
	int rc;

	if (db_ready(db) == -1)
		return -1;
	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		db_par_init(&p);
		db_par_int(&p, account_id);
		if ((res = db_exec(db, ids[i], &p, true)) == NULL)
			return -1;
		rc = db_facts_rows(res, f, ids[i] == INDEX_DATES_SELECT);
		PQclear(res);
		if (rc == -1) {
			db_seterr(db, "%s: malformed row",
			    index_stmts[ids[i]].label);
			return -1;
		}
	}
	return 0;
}

/* A text[] of n strings in binary form, or NULL with the error set. */
static unsigned char *
db_text_array(struct db *db, const char *const *v, size_t n, size_t *len_r)
{
	unsigned char *arr;
	size_t i, *lens;

	lens = xcalloc(n ? n : 1, sizeof(*lens));
	for (i = 0; i < n; i++) {
		if (v[i] != NULL && !db_text_ok(v[i])) {
			db_seterr(db, "UPDATE uidl_seen: UIDL is not "
			    "printable UTF-8");
			free(lens);
			return NULL;
		}
		lens[i] = v[i] != NULL ? strlen(v[i]) : 0;
	}
	arr = db_array(db, DB_TEXTOID, (const void *const *)v, lens, n, len_r);
	free(lens);
	return arr;
}

int
db_seen_update(struct db *db, int64_t account_id, const char *const *present,
    size_t n, const struct db_deleted *d, size_t nd)
{
	unsigned char *parr = NULL, *darr = NULL;
	const char **gone;
	struct db_params p;
	PGresult *res;
	size_t plen, dlen, i, ng = 0;
	int rc = -1;

	if (db_ready(db) == -1)
		return -1;
	gone = xcalloc(nd ? nd : 1, sizeof(*gone));
	for (i = 0; i < nd; i++)
		if (d[i].uidl != NULL)
			gone[ng++] = d[i].uidl;
	if ((parr = db_text_array(db, present, n, &plen)) == NULL ||
	    (darr = db_text_array(db, gone, ng, &dlen)) == NULL)
		goto out;
	db_par_init(&p);
	db_par_int(&p, account_id);
	db_par_bytes(&p, parr, plen);
	db_par_bytes(&p, darr, dlen);
	if ((res = db_exec(db, INDEX_SEEN_UPDATE, &p, false)) != NULL) {
		PQclear(res);
		rc = 0;
	}
out:
	free(parr);
	free(darr);
	free(gone);
	return rc;
}

int
db_capa_record(struct db *db, int64_t account_id, const char *expire,
    int64_t login_delay, time_t at)
{
	struct db_params p;
	PGresult *res;

	if (db_ready(db) == -1)
		return -1;
	db_par_init(&p);
	db_par_int(&p, account_id);
	db_par_text(&p, expire);
	if (login_delay >= 0)
		db_par_int(&p, login_delay);
	else
		db_par_text(&p, NULL);
	db_par_int(&p, (int64_t)at);
	if ((res = db_exec(db, INDEX_CAPA_UPSERT, &p, false)) == NULL)
		return -1;
	PQclear(res);
	return 0;
}

int
db_last_poll(struct db *db, int64_t account_id, char *outcome,
    size_t outcomelen, char *error, size_t errorlen)
{
	struct db_params p;
	PGresult *res;

	*outcome = *error = '\0';
	if (db_ready(db) == -1)
		return -1;
	db_par_init(&p);
	db_par_int(&p, account_id);
	if ((res = db_exec(db, INDEX_LAST_POLL_SELECT, &p, false)) == NULL)
		return -1;
	if (PQntuples(res) == 1) {
		snprintf(outcome, outcomelen, "%s", PQgetvalue(res, 0, 0));
		snprintf(error, errorlen, "%s", PQgetvalue(res, 0, 1));
	}
	PQclear(res);
	return 0;
}

int
db_capa_load(struct db *db, int64_t account_id, int64_t *login_delay_r,
    time_t *at_r)
{
	struct db_params p;
	PGresult *res;

	*login_delay_r = -1;
	*at_r = 0;
	if (db_ready(db) == -1)
		return -1;
	db_par_init(&p);
	db_par_int(&p, account_id);
	if ((res = db_exec(db, INDEX_CAPA_SELECT, &p, true)) == NULL)
		return -1;
	if (PQntuples(res) == 1 && PQgetlength(res, 0, 0) == 8 &&
	    PQgetlength(res, 0, 1) == 8) {
		*login_delay_r = (int64_t)db_be64(PQgetvalue(res, 0, 0));
		*at_r = (time_t)(int64_t)db_be64(PQgetvalue(res, 0, 1));
	}
	PQclear(res);
	return 0;
}
