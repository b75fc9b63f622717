/*
 * Setting up the archive's database: creating it (for the embedded
 * cluster), then applying the migrations compiled into the binary (see
 * migrations.h), each once, whatever other ingestd processes do at the
 * same time.
 */
#include "store/db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "ingestd/base/log.h"
#include "ingestd/base/xmalloc.h"
#include "store/db_private.h"
#include "store/index.h"
#include "store/migrations.h"

int
db_create_database(const char *conninfo_admin, const char *dbname,
    char *err, size_t errlen)
{
	struct db_params p;
	struct db *db;
	PGresult *res;
	char *ident = NULL, *sql = NULL;
	bool exists;
	int rc = -1;

	if ((db = db_connect(conninfo_admin, err, errlen)) == NULL)
		return -1;
	db_par_init(&p);
	db_par_text(&p, dbname);
	if ((res = db_exec(db, INDEX_DATABASE_SELECT, &p, false)) == NULL)
		goto fail;
	exists = PQntuples(res) > 0;
	PQclear(res);
	if (exists) {
		rc = 0;
		goto out;
	}
	/* An identifier cannot be a parameter: quote it the libpq way. */
	if ((ident = PQescapeIdentifier(db->conn, dbname,
	    strlen(dbname))) == NULL) {
		db_connerr(db, "CREATE DATABASE");
		goto fail;
	}
	sql = xasprintf("CREATE DATABASE %s", ident);
	/* 42P04: someone else created it meanwhile, just as good. */
	if (db_simple(db, "CREATE DATABASE", sql) == -1 &&
	    strcmp(db->sqlstate, "42P04") != 0)
		goto fail;
	rc = 0;
	goto out;
fail:
	snprintf(err, errlen, "%s", db_error(db));
out:
	free(sql); sql = NULL;
	if (ident != NULL)
		PQfreemem(ident);
	db_close(&db);
	return rc;
}

/*
 * Whether name is among names[0, n), in any order.  A linear scan: there
 * are only as many names as migrations.
 */
static bool
db_name_in(char *const *names, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

/* The names in schema_migrations, in a new array; NULL with the error. */
static char **
db_applied(struct db *db, size_t *n_r)
{
	PGresult *res;
	char **names;
	size_t i, n;

	if ((res = db_exec(db, INDEX_MIGRATION_SELECT, NULL, false)) == NULL)
		return NULL;
	n = PQntuples(res);
	names = xcalloc(n + 1, sizeof(*names));
	for (i = 0; i < n; i++)
		names[i] = xstrdup(PQgetvalue(res, i, 0));
	PQclear(res);
	*n_r = n;
	return names;
}

static void
db_names_free(char ***names, size_t n)
{
	size_t i;

	if (*names == NULL)
		return;
	for (i = 0; i < n; i++)
		free((*names)[i]);
	free(*names); *names = NULL;
}

/*
 * The first migration compiled in that names[0, n) lacks; NULL when none
 * is pending.
 */
static const char *
db_first_pending(char *const *names, size_t n)
{
	size_t i;

	for (i = 0; i < migrations_count; i++)
		if (!db_name_in(names, n, migrations[i].name))
			return migrations[i].name;
	return NULL;
}

int
db_migrate(struct db *db, int *applied_r)
{
	struct db_params p;
	PGresult *res;
	char **names = NULL, label[128], *role = NULL;
	const char *pending;
	size_t i, j, n = 0;
	bool known, exists, may;

	*applied_r = 0;
	if (db_ready(db) == -1)
		return -1;
	/*
	 * First without DDL, which a role that only uses the archive may not
	 * run (CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even
	 * when the schema exists): nothing pending, nothing to do.
	 */
	if ((res = db_exec(db, INDEX_MIGRATION_STATE, NULL, false)) == NULL)
		return -1;
	exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	may = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
	role = xstrdup(PQgetvalue(res, 0, 2));
	PQclear(res);
	if (exists && (names = db_applied(db, &n)) == NULL)
		goto fail;
	for (i = 0; i < n; i++) {
		for (j = 0, known = false; j < migrations_count; j++)
			known |= strcmp(migrations[j].name, names[i]) == 0;
		if (!known)
			log_warnx("database: migration %s is newer than this "
			    "ingestd", names[i]);
	}
	if ((pending = db_first_pending(names, n)) == NULL) {
		db_names_free(&names, n);
		free(role); role = NULL;
		return 0;
	}
	if (!may) {
		db_seterr(db, "migrations %.4s.. are pending, and role %s may "
		    "not apply them: run `ingestd migrate` as the schema "
		    "owner (README, Database roles)", pending, role);
		goto fail;
	}
	db_names_free(&names, n);
	if (db_simple(db, "BEGIN", "BEGIN") == -1 ||
	    db_simple(db, "migration timeouts",
	    index_migration_no_timeouts) == -1 ||
	    db_simple(db, "create schema_migrations",
	    index_migration_bootstrap) == -1 ||
	    (names = db_applied(db, &n)) == NULL ||
	    db_simple(db, "COMMIT", "COMMIT") == -1)
		goto fail;
	for (i = 0; i < migrations_count; i++) {
		if (db_name_in(names, n, migrations[i].name))
			continue;
		/*
		 * Look again under the lock: another process may have applied
		 * it since.
		 */
		db_names_free(&names, n);
		if (db_simple(db, "BEGIN", "BEGIN") == -1 ||
		    db_simple(db, "migration timeouts",
		    index_migration_no_timeouts) == -1 ||
		    (res = db_exec(db, INDEX_MIGRATION_LOCK, NULL,
		    false)) == NULL)
			goto fail;
		PQclear(res);
		if ((names = db_applied(db, &n)) == NULL)
			goto fail;
		if (db_name_in(names, n, migrations[i].name)) {
			if (db_simple(db, "COMMIT", "COMMIT") == -1)
				goto fail;
			continue;
		}
		snprintf(label, sizeof(label), "migration %s",
		    migrations[i].name);
		db_par_init(&p);
		db_par_text(&p, migrations[i].name);
		if (db_simple(db, label, migrations[i].sql) == -1 ||
		    (res = db_exec(db, INDEX_MIGRATION_INSERT, &p,
		    false)) == NULL)
			goto fail;
		PQclear(res);
		if (db_simple(db, "COMMIT", "COMMIT") == -1)
			goto fail;
		log_info("database: applied migration %s",
		    migrations[i].name);
		(*applied_r)++;
	}
	db_names_free(&names, n);
	free(role); role = NULL;
	return 0;
fail:
	db_names_free(&names, n);
	free(role); role = NULL;
	db_rollback(db);
	return -1;
}
