/*
 * Retention statements (see db_retention.h).  The SQL comes from
 * ingestd/cmd_retention.c as fixed text; every value is a parameter.
 */
#include "store/db_retention.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "store/db.h"
#include "store/db_private.h"

static int
run_simple(struct db *db, const char *label, const char *sql, int n,
    const char *const *params)
{
	PGresult *res;
	ExecStatusType st;

	res = PQexecParams(db->conn, sql, n, NULL, params, NULL, NULL, 0);
	st = PQresultStatus(res);
	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		db_reserr(db, label, res);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	return 0;
}

int
db_retention_run(struct db *db, const char *os_user, bool serializable,
    const char *sql, int nparams, const char *const *params,
    int (*cb)(void *arg, int ncols, const char *const *values), void *arg)
{
	const char *values[32];
	PGresult *res;
	int i, ncols, rc = 0;
	bool stopped = false;

	if (db_ready(db) == -1)
		return -1;
	if (run_simple(db, "begin",
		serializable ? "BEGIN ISOLATION LEVEL SERIALIZABLE" : "BEGIN",
		0, NULL) == -1 ||
	    run_simple(db, "actor",
		"SELECT set_config('ingestd.os_user', $1, true)", 1,
		&os_user) == -1)
		goto fail;
	if (!PQsendQueryParams(db->conn, sql, nparams, NULL, params, NULL, NULL,
		0)) {
		db_connerr(db, "retention");
		goto fail;
	}
	if (!PQsetSingleRowMode(db->conn)) {
		db_connerr(db, "retention (single-row mode)");
		while ((res = PQgetResult(db->conn)) != NULL)
			PQclear(res);
		goto fail;
	}
	while ((res = PQgetResult(db->conn)) != NULL) {
		switch (PQresultStatus(res)) {
		case PGRES_SINGLE_TUPLE:
			if (stopped || rc == -1)
				break;
			ncols = PQnfields(res);
			if (ncols > (int)(sizeof(values) / sizeof(values[0])))
				ncols = sizeof(values) / sizeof(values[0]);
			for (i = 0; i < ncols; i++)
				values[i] = PQgetisnull(res, 0, i) ?
				    NULL :
				    PQgetvalue(res, 0, i);
			if (cb != NULL && cb(arg, ncols, values) != 0) {
				stopped = true;
				db_seterr(db, "retention: stopped");
			}
			break;
		case PGRES_TUPLES_OK:
		case PGRES_COMMAND_OK:
			break;
		default:
			if (rc == 0)
				db_reserr(db, "retention", res);
			rc = -1;
			break;
		}
		PQclear(res);
	}
	if (rc == -1 || stopped)
		goto fail;
	if (run_simple(db, "commit", "COMMIT", 0, NULL) == -1)
		goto fail;
	return 0;
fail:
	db_rollback(db);
	return -1;
}
