/*
 * Running a compiled search (store/query.h): the statement comes from
 * query_compile(), whose SQL text is fixed fragments and whose values are
 * all parameters.  Rows are streamed in libpq's single-row mode, so a
 * search of the whole archive holds one row at a time.
 */
#include "store/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "ingestd/base/xmalloc.h"
#include "store/db_private.h"
#include "store/query.h"

/* Drains what is left of a result stream after an error or a stop. */
static void
db_search_drain(struct db *db)
{
	PGresult *res;

	while ((res = PQgetResult(db->conn)) != NULL)
		PQclear(res);
}

int
db_search(struct db *db, const struct query_sql *q, bool explain,
    int (*cb)(void *arg, int ncols, const char *const *values), void *arg)
{
	const char *values[64];
	char *sql = NULL;
	PGresult *res;
	int i, ncols, rc = -1;
	bool stopped = false;

	if (db_ready(db) == -1)
		return -1;
	sql = explain ? xasprintf("EXPLAIN %s", q->sql) : xstrdup(q->sql);
	if (!PQsendQueryParams(db->conn, sql, (int)q->nparams, NULL,
		(const char *const *)q->params, NULL, NULL, 0)) {
		db_connerr(db, "search");
		goto out;
	}
	if (!PQsetSingleRowMode(db->conn)) {
		db_connerr(db, "search (single-row mode)");
		db_search_drain(db);
		goto out;
	}
	rc = 0;
	while ((res = PQgetResult(db->conn)) != NULL) {
		switch (PQresultStatus(res)) {
		case PGRES_SINGLE_TUPLE:
			if (stopped)
				break;
			ncols = PQnfields(res);
			if (ncols > (int)(sizeof(values) / sizeof(values[0])))
				ncols = sizeof(values) / sizeof(values[0]);
			for (i = 0; i < ncols; i++)
				values[i] = PQgetisnull(res, 0, i) ?
				    NULL :
				    PQgetvalue(res, 0, i);
			if (cb(arg, ncols, values) != 0) {
				stopped = true;
				rc = -1;
				db_seterr(db, "search: stopped");
			}
			break;
		case PGRES_TUPLES_OK:
		case PGRES_COMMAND_OK:
			break;
		default:
			if (rc == 0)
				db_reserr(db, "search", res);
			rc = -1;
			break;
		}
		PQclear(res);
	}
out:
	free(sql);
	sql = NULL;
	return rc;
}
