/*
 * The database side of retention, holds and purge (ingestd/cmd_retention.c):
 * one call that runs a statement of migration 0009's functions and views
 * in a transaction of its own.
 */
#ifndef STORE_DB_RETENTION_H
#define STORE_DB_RETENTION_H

#include <stdbool.h>

struct db;

/*
 * Runs sql with its nparams text parameters (NULL for SQL NULL) in one
 * transaction, SERIALIZABLE when serializable, in which the setting
 * ingestd.os_user is os_user (the actor columns and events record it with
 * the PostgreSQL role).  Each row goes to cb as it arrives (libpq's
 * single-row mode), its values NULL for SQL NULL; cb returns 0 to go on,
 * -1 to stop (the transaction then rolls back).  Returns 0, or -1 with
 * db_error() and db_sqlstate() set; cb is not called after an error.
 */
int db_retention_run(struct db *db, const char *os_user, bool serializable,
    const char *sql, int nparams, const char *const *params,
    int (*cb)(void *arg, int ncols, const char *const *values), void *arg);

#endif
