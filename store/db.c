/*
 * PostgreSQL access through libpq, the only includer of libpq-fe.h.
 *
 * Calls block on the caller's thread (the scheduler or the committer, never
 * a worker).  Statements come from index.c and are prepared lazily, once per
 * connection.  Text parameters go in text format; bytea (hashes, chunks) in
 * binary, so a 1 MiB chunk is never expanded to 2 MiB of hex.
 *
 * A batch of messages is written with libpq pipeline mode: one round trip
 * sends BEGIN and every blob INSERT; a second sends the chunks of the blobs
 * that turned out new, every delivery and COMMIT.  Two round trips per
 * batch whatever its size, so a remote database costs little more than a
 * local one.
 */
#include "db.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "ingestd/log.h"
#include "ingestd/xmalloc.h"
#include "index.h"
#include "known.h"
#include "migrations.h"
#include "spool.h"

/* Compressed bytes per blob_chunk row; see the migration. */
#define DB_CHUNK	(1024 * 1024)
/* Rows per page when iterating over the archive. */
#define DB_PAGE		500
#define DB_MAXPARAMS	12
/* The OID of type text, for binary arrays of it. */
#define DB_TEXTOID	25
#define DB_BYTEAOID	17

/* A command sent in pipeline mode, awaiting its result. */
struct db_pending {
	const char *label;
	bool *rows_r;		/* set to whether it returned a row */
	bool commit;		/* COMMIT: its tag must say so */
};

struct db {
	PGconn *conn;
	char *conninfo;
	bool prepared[INDEX_COUNT];
	unsigned char *chunk;	/* DB_CHUNK bytes, allocated on first use */
	struct db_pending *q;
	size_t nq, qcap;
	char sqlstate[6];
	char error[1024];
};

struct db_params {
	int n;
	const char *v[DB_MAXPARAMS];
	int len[DB_MAXPARAMS];
	int fmt[DB_MAXPARAMS];
	char num[DB_MAXPARAMS][24];
};

static void db_seterr(struct db *db, const char *fmt, ...) LOG_PRINTF(2, 3);

/* Copies s into out as one line: libpq messages end in (and may hold)
 * newlines, which would break the one-line log format. */
static void
db_oneline(char *out, size_t outlen, const char *s)
{
	size_t i, j;

	if (outlen == 0)
		return;
	for (i = j = 0; s[i] != '\0' && j + 1 < outlen; i++) {
		if (s[i] == '\n' || s[i] == '\r' || s[i] == '\t') {
			if (j > 0 && out[j - 1] != ' ')
				out[j++] = ' ';
		} else
			out[j++] = s[i];
	}
	while (j > 0 && out[j - 1] == ' ')
		j--;
	out[j] = '\0';
}

static void
db_seterr(struct db *db, const char *fmt, ...)
{
	char msg[sizeof(db->error) - 16];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(db->error, sizeof(db->error), "database: %s", msg);
	db->sqlstate[0] = '\0';
}

/* The error of the connection itself (lost, refused). */
static void
db_connerr(struct db *db, const char *label)
{
	char msg[512];

	db_oneline(msg, sizeof(msg), db->conn != NULL ?
	    PQerrorMessage(db->conn) : "not connected");
	if (msg[0] == '\0')
		snprintf(msg, sizeof(msg), "connection lost");
	db_seterr(db, "%s: %s", label, msg);
}

/* The error carried by a failed result: the server's primary message. */
static void
db_reserr(struct db *db, const char *label, const PGresult *res)
{
	const char *m, *state;
	char msg[512];

	m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	if (m == NULL || *m == '\0')
		m = PQresultErrorMessage(res);
	if (m == NULL || *m == '\0')
		m = PQerrorMessage(db->conn);
	db_oneline(msg, sizeof(msg), m);
	if (msg[0] == '\0')
		snprintf(msg, sizeof(msg), "%s",
		    PQresStatus(PQresultStatus(res)));
	db_seterr(db, "%s: %s", label, msg);
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	snprintf(db->sqlstate, sizeof(db->sqlstate), "%s",
	    state != NULL ? state : "");
}

/* Server notices (e.g. "relation already exists, skipping"). */
static void
db_notice(void *arg, const char *message)
{
	char msg[512];

	db_oneline(msg, sizeof(msg), message);
	log_debug("database: %s", msg);
}

static void
db_par_init(struct db_params *p)
{
	p->n = 0;
}

static void
db_par_int(struct db_params *p, int64_t x)
{
	ASSERT(p->n < DB_MAXPARAMS);
	snprintf(p->num[p->n], sizeof(p->num[p->n]), "%" PRId64, x);
	p->v[p->n] = p->num[p->n];
	p->len[p->n] = 0;
	p->fmt[p->n] = 0;
	p->n++;
}

/* A bigint column; a value beyond its range fails at the server. */
static void
db_par_uint(struct db_params *p, uint64_t x)
{
	ASSERT(p->n < DB_MAXPARAMS);
	snprintf(p->num[p->n], sizeof(p->num[p->n]), "%" PRIu64, x);
	p->v[p->n] = p->num[p->n];
	p->len[p->n] = 0;
	p->fmt[p->n] = 0;
	p->n++;
}

/* s NULL for SQL NULL; s is borrowed until the statement is sent. */
static void
db_par_text(struct db_params *p, const char *s)
{
	ASSERT(p->n < DB_MAXPARAMS);
	p->v[p->n] = s;
	p->len[p->n] = 0;
	p->fmt[p->n] = 0;
	p->n++;
}

static void
db_par_bytes(struct db_params *p, const void *b, size_t n)
{
	ASSERT(p->n < DB_MAXPARAMS);
	ASSERT(n <= INT32_MAX);
	p->v[p->n] = b;
	p->len[p->n] = (int)n;
	p->fmt[p->n] = 1;
	p->n++;
}

/*
 * Whether s can be stored as text in a UTF8 database: valid UTF-8 without
 * control characters.  A server that sends anything else as a UIDL must not
 * make the whole batch fail at the database, again and again.
 */
static bool
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

static uint64_t
db_be64(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;
	uint64_t x = 0;
	int i;

	for (i = 0; i < 8; i++)
		x = (x << 8) | u[i];
	return x;
}

static void
db_put32(unsigned char *p, uint32_t x)
{
	p[0] = x >> 24;
	p[1] = x >> 16;
	p[2] = x >> 8;
	p[3] = x;
}

/* Opens a connection and prepares the session; NULL with err filled. */
static PGconn *
db_open(const char *conninfo, char *err, size_t errlen)
{
	/*
	 * Defaults first: keywords in conninfo (expanded from "dbname")
	 * override them.  The keepalives only matter over TCP: they bound how
	 * long the committer can hang on a database that vanished.
	 */
	static const char *const keys[] = {
		"fallback_application_name", "connect_timeout", "keepalives",
		"keepalives_idle", "keepalives_interval", "keepalives_count",
		"dbname", NULL
	};
	const char *vals[] = {
		"ingestd", "30", "1", "30", "10", "3", conninfo, NULL
	};
	char msg[512];
	PGresult *res;
	PGconn *conn;

	if ((conn = PQconnectdbParams(keys, vals, 1)) == NULL) {
		snprintf(err, errlen, "database: connect: out of memory");
		return NULL;
	}
	if (PQstatus(conn) != CONNECTION_OK) {
		db_oneline(msg, sizeof(msg), PQerrorMessage(conn));
		snprintf(err, errlen, "database: connect: %s", msg);
		PQfinish(conn);
		return NULL;
	}
	PQsetNoticeProcessor(conn, db_notice, NULL);
	res = PQexec(conn, index_session_setup);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		db_oneline(msg, sizeof(msg), PQresultErrorMessage(res));
		snprintf(err, errlen, "database: session setup: %s", msg);
		PQclear(res);
		PQfinish(conn);
		return NULL;
	}
	PQclear(res);
	return conn;
}

struct db *
db_connect(const char *conninfo, char *err, size_t errlen)
{
	struct db *db;
	PGconn *conn;

	if ((conn = db_open(conninfo, err, errlen)) == NULL)
		return NULL;
	db = xcalloc(1, sizeof(*db));
	db->conn = conn;
	db->conninfo = xstrdup(conninfo);
	return db;
}

void
db_close(struct db **dbp)
{
	struct db *db = *dbp;

	if (db == NULL)
		return;
	if (db->conn != NULL)
		PQfinish(db->conn);
	/* The conninfo may hold a password: do not leave it in freed memory. */
	explicit_bzero(db->conninfo, strlen(db->conninfo));
	free(db->conninfo); db->conninfo = NULL;
	free(db->chunk); db->chunk = NULL;
	free(db->q); db->q = NULL;
	free(db); *dbp = NULL;
}

const char *
db_error(const struct db *db)
{
	return db->error[0] != '\0' ? db->error : "database: no error";
}

bool
db_connected(const struct db *db)
{
	return db->conn != NULL && PQstatus(db->conn) == CONNECTION_OK;
}

int
db_reconnect(struct db *db)
{
	char err[sizeof(db->error)];

	if (db->conn != NULL) {
		PQfinish(db->conn);
		db->conn = NULL;
	}
	memset(db->prepared, 0, sizeof(db->prepared));
	db->nq = 0;
	if ((db->conn = db_open(db->conninfo, err, sizeof(err))) == NULL) {
		snprintf(db->error, sizeof(db->error), "%s", err);
		return -1;
	}
	return 0;
}

/*
 * At the start of every call: a connection lost since the last one (a
 * database restart) is re-established once, and a transaction left open by
 * a failure is ended.
 */
static int
db_ready(struct db *db)
{
	PGresult *res;

	db->error[0] = '\0';
	if (!db_connected(db))
		return db_reconnect(db);
	if (PQtransactionStatus(db->conn) != PQTRANS_IDLE) {
		res = PQexec(db->conn, "ROLLBACK");
		PQclear(res);
		if (PQtransactionStatus(db->conn) != PQTRANS_IDLE)
			return db_reconnect(db);
	}
	return 0;
}

static int
db_prepare(struct db *db, enum index_id id)
{
	const struct index_stmt *st = &index_stmts[id];
	PGresult *res;

	if (db->prepared[id])
		return 0;
	res = PQprepare(db->conn, st->name, st->sql, st->nparams, NULL);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		db_reserr(db, st->label, res);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	db->prepared[id] = true;
	return 0;
}

/*
 * Runs a prepared statement.  Returns its result, the caller's to PQclear,
 * or NULL with the error set.  binary asks for binary result columns.
 *
 * A connection lost since the last call (a database restart) shows only
 * when it is used.  Outside a transaction the statement simply goes again,
 * once, on a new connection: every statement run that way is idempotent or
 * harmless to repeat.
 */
static PGresult *
db_exec(struct db *db, enum index_id id, const struct db_params *p,
    bool binary)
{
	const struct index_stmt *st = &index_stmts[id];
	ExecStatusType status;
	PGresult *res;
	bool again;

	ASSERT(p == NULL || p->n == st->nparams);
	again = PQtransactionStatus(db->conn) == PQTRANS_IDLE;
	for (;;) {
		if (db_prepare(db, id) == 0) {
			res = PQexecPrepared(db->conn, st->name,
			    p ? p->n : 0, p ? p->v : NULL, p ? p->len : NULL,
			    p ? p->fmt : NULL, binary);
			status = PQresultStatus(res);
			if (status == PGRES_COMMAND_OK ||
			    status == PGRES_TUPLES_OK)
				return res;
			db_reserr(db, st->label, res);
			PQclear(res);
		}
		if (!again || PQstatus(db->conn) != CONNECTION_BAD)
			return NULL;
		again = false;
		log_info("%s; reconnecting", db->error);
		if (db_reconnect(db) == -1)
			return NULL;
	}
}

/* Runs fixed SQL (no parameters) whose result is not needed. */
static int
db_simple(struct db *db, const char *label, const char *sql)
{
	ExecStatusType status;
	PGresult *res;

	res = PQexec(db->conn, sql);
	status = PQresultStatus(res);
	if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
		db_reserr(db, label, res);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	return 0;
}

/* Ends a failed transaction; the error already set is kept. */
static void
db_rollback(struct db *db)
{
	PGresult *res;

	if (db->conn == NULL ||
	    PQtransactionStatus(db->conn) == PQTRANS_IDLE ||
	    PQtransactionStatus(db->conn) == PQTRANS_UNKNOWN)
		return;
	res = PQexec(db->conn, "ROLLBACK");
	PQclear(res);
}

/*
 * Pipeline mode.  db_pl_send*() queue commands, db_pl_sync() ends a segment and
 * reads every result up to it.  After an error the server skips the rest
 * of the segment; the first error is the one reported.
 */
static void
db_pl_push(struct db *db, const char *label, bool *rows_r, bool commit)
{
	if (db->nq == db->qcap) {
		db->qcap = db->qcap ? db->qcap * 2 : 64;
		db->q = xreallocarray(db->q, db->qcap, sizeof(*db->q));
	}
	db->q[db->nq].label = label;
	db->q[db->nq].rows_r = rows_r;
	db->q[db->nq].commit = commit;
	db->nq++;
}

static int
db_pl_send(struct db *db, enum index_id id, const struct db_params *p,
    bool *rows_r)
{
	const struct index_stmt *st = &index_stmts[id];

	ASSERT(db->prepared[id]);
	ASSERT(p->n == st->nparams);
	if (PQsendQueryPrepared(db->conn, st->name, p->n, p->v, p->len,
	    p->fmt, 0) == 0) {
		db_connerr(db, st->label);
		return -1;
	}
	db_pl_push(db, st->label, rows_r, false);
	return 0;
}

/* BEGIN or COMMIT: no parameters, the extended protocol of a pipeline. */
static int
db_pl_send_sql(struct db *db, const char *sql, bool commit)
{
	if (PQsendQueryParams(db->conn, sql, 0, NULL, NULL, NULL, NULL,
	    0) == 0) {
		db_connerr(db, sql);
		return -1;
	}
	db_pl_push(db, sql, NULL, commit);
	return 0;
}

static int
db_pl_sync(struct db *db)
{
	ExecStatusType status;
	PGresult *res;
	size_t i = 0;
	int rc = 0, nulls = 0;

	if (PQpipelineSync(db->conn) == 0) {
		db_connerr(db, "pipeline sync");
		db->nq = 0;
		return -1;
	}
	for (;;) {
		if ((res = PQgetResult(db->conn)) == NULL) {
			/* One NULL ends each command's results; two in a
			 * row mean nothing more is coming. */
			if (PQstatus(db->conn) == CONNECTION_BAD ||
			    ++nulls > 1) {
				if (rc == 0)
					db_connerr(db, i < db->nq ?
					    db->q[i].label : "pipeline");
				rc = -1;
				break;
			}
			continue;
		}
		nulls = 0;
		status = PQresultStatus(res);
		if (status == PGRES_PIPELINE_SYNC) {
			PQclear(res);
			break;
		}
		if (i >= db->nq) {
			if (rc == 0)
				db_seterr(db, "pipeline: unexpected result");
			rc = -1;
			PQclear(res);
			continue;
		}
		switch (status) {
		case PGRES_COMMAND_OK:
		case PGRES_TUPLES_OK:
			if (db->q[i].rows_r != NULL)
				*db->q[i].rows_r = PQntuples(res) > 0;
			/* COMMIT of a failed transaction reports ROLLBACK. */
			if (db->q[i].commit &&
			    strcmp(PQcmdStatus(res), "COMMIT") != 0 &&
			    rc == 0) {
				db_seterr(db, "COMMIT: transaction rolled "
				    "back");
				rc = -1;
			}
			break;
		case PGRES_PIPELINE_ABORTED:
			if (rc == 0)
				db_seterr(db, "%s: pipeline aborted",
				    db->q[i].label);
			rc = -1;
			break;
		default:
			if (rc == 0)
				db_reserr(db, db->q[i].label, res);
			rc = -1;
			break;
		}
		i++;
		PQclear(res);
	}
	db->nq = 0;
	return rc;
}

static int
db_pl_enter(struct db *db)
{
	if (PQenterPipelineMode(db->conn) == 0) {
		db_connerr(db, "pipeline mode");
		return -1;
	}
	db->nq = 0;
	return 0;
}

/*
 * Leaves pipeline mode, rolling back whatever is still open.  A connection
 * left mid-pipeline by an error is dropped: the next call reconnects.
 */
static void
db_pl_leave(struct db *db)
{
	if (PQpipelineStatus(db->conn) != PQ_PIPELINE_OFF &&
	    PQexitPipelineMode(db->conn) == 0) {
		PQfinish(db->conn);
		db->conn = NULL;
		return;
	}
	db_rollback(db);
}

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

int
db_migrate(struct db *db, int *applied_r)
{
	struct db_params p;
	PGresult *res;
	char **names = NULL, label[128];
	size_t i, j, n = 0;
	bool known;

	*applied_r = 0;
	if (db_ready(db) == -1)
		return -1;
	if (db_simple(db, "BEGIN", "BEGIN") == -1 ||
	    db_simple(db, "create schema_migrations",
	    index_migration_bootstrap) == -1 ||
	    (names = db_applied(db, &n)) == NULL ||
	    db_simple(db, "COMMIT", "COMMIT") == -1)
		goto fail;
	for (i = 0; i < n; i++) {
		for (j = 0, known = false; j < migrations_count; j++)
			known |= strcmp(migrations[j].name, names[i]) == 0;
		if (!known)
			log_warnx("database: migration %s is newer than this "
			    "ingestd", names[i]);
	}
	for (i = 0; i < migrations_count; i++) {
		if (db_name_in(names, n, migrations[i].name))
			continue;
		/*
		 * Look again under the lock: another process may have applied
		 * it since.
		 */
		db_names_free(&names, n);
		if (db_simple(db, "BEGIN", "BEGIN") == -1 ||
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
	return 0;
fail:
	db_names_free(&names, n);
	db_rollback(db);
	return -1;
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

/* Queues INSERT blob_chunk for the whole spool of it. */
static int
db_send_chunks(struct db *db, struct db_commit_row *row)
{
	struct db_params p;
	uint64_t off = 0, left = row->stored_size;
	ssize_t r;
	size_t want, got;
	int seq = 0;

	if (db->chunk == NULL)
		db->chunk = xmalloc(DB_CHUNK);
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
				db_seterr(db, "message: %s", row->error);
				return -1;
			}
		}
		db_par_init(&p);
		db_par_bytes(&p, row->sha256, 32);
		db_par_int(&p, seq);
		db_par_bytes(&p, db->chunk, want);
		if (db_pl_send(db, INDEX_CHUNK_INSERT, &p, NULL) == -1)
			return -1;
		off += want;
		left -= want;
		seq++;
	}
	return 0;
}

int
db_commit_messages(struct db *db, struct db_commit_row *rows, size_t n)
{
	struct db_commit_row *row;
	struct db_params p;
	bool *fresh = NULL, *added = NULL;
	size_t i;
	int rc = -1;

	if (n == 0)
		return 0;
	if (db_ready(db) == -1 || db_rows_check(db, rows, n) == -1 ||
	    db_prepare(db, INDEX_BLOB_INSERT) == -1 ||
	    db_prepare(db, INDEX_CHUNK_INSERT) == -1 ||
	    db_prepare(db, INDEX_DELIVERY_INSERT) == -1)
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
		db_par_init(&p);
		db_par_int(&p, row->account_id);
		db_par_text(&p, row->uidl);
		db_par_bytes(&p, row->sha256, 32);
		db_par_uint(&p, row->list_size);
		db_par_bytes(&p, row->head_sha256, 32);
		if (db_pl_send(db, INDEX_DELIVERY_INSERT, &p, &added[i]) == -1)
			goto fail;
	}
	if (db_pl_send_sql(db, "COMMIT", true) == -1 || db_pl_sync(db) == -1)
		goto fail;
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
 * A one-dimensional array in PostgreSQL's binary form: header (ndim,
 * has-nulls, element type), the dimension (size, lower bound), then each
 * element as length and bytes, -1 for NULL.  No quoting to get wrong.
 * NULL elems[i] is SQL NULL.  Returns the caller's buffer, or NULL with
 * the error set if it would not fit a parameter.
 */
static unsigned char *
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

int
db_dict_load(struct db *db, int64_t id, void **p_r, size_t *n_r)
{
	struct db_params p;
	PGresult *res;
	size_t n;

	if (db_ready(db) == -1)
		return -1;
	db_par_init(&p);
	db_par_int(&p, id);
	if ((res = db_exec(db, INDEX_DICT_SELECT, &p, true)) == NULL)
		return -1;
	if (PQntuples(res) != 1) {
		db_seterr(db, "dictionary %" PRId64 ": not in the archive",
		    id);
		PQclear(res);
		return -1;
	}
	n = PQgetlength(res, 0, 0);
	*p_r = xmalloc(n);
	memcpy(*p_r, PQgetvalue(res, 0, 0), n);
	*n_r = n;
	PQclear(res);
	return 0;
}

int
db_dict_store(struct db *db, const void *data, size_t n, int64_t *id_r)
{
	struct db_params p;
	PGresult *res;

	if (db_ready(db) == -1)
		return -1;
	db_par_init(&p);
	db_par_bytes(&p, data, n);
	if ((res = db_exec(db, INDEX_DICT_INSERT, &p, false)) == NULL)
		return -1;
	*id_r = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

int
db_dict_latest(struct db *db, int64_t *id_r, void **p_r, size_t *n_r)
{
	PGresult *res;
	size_t n;

	*id_r = 0;
	*p_r = NULL;
	*n_r = 0;
	if (db_ready(db) == -1)
		return -1;
	if ((res = db_exec(db, INDEX_DICT_LATEST, NULL, true)) == NULL)
		return -1;
	if (PQntuples(res) == 0) {
		PQclear(res);
		return 0;
	}
	if (PQgetlength(res, 0, 0) != 8) {
		db_seterr(db, "SELECT dict (latest): malformed row");
		PQclear(res);
		return -1;
	}
	*id_r = (int64_t)db_be64(PQgetvalue(res, 0, 0));
	n = PQgetlength(res, 0, 1);
	*p_r = xmalloc(n > 0 ? n : 1);
	memcpy(*p_r, PQgetvalue(res, 0, 1), n);
	*n_r = n;
	PQclear(res);
	return 0;
}

int
db_sample_count(struct db *db, uint64_t max_size, uint64_t limit,
    uint64_t *n_r)
{
	struct db_params p;
	PGresult *res;

	*n_r = 0;
	if (db_ready(db) == -1)
		return -1;
	db_par_init(&p);
	db_par_uint(&p, max_size);
	db_par_uint(&p, limit);
	if ((res = db_exec(db, INDEX_SAMPLE_COUNT, &p, false)) == NULL)
		return -1;
	*n_r = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return 0;
}

int
db_sample_blobs(struct db *db, uint64_t max_size, uint64_t limit,
    int (*cb)(void *arg, const struct db_message *m), void *arg)
{
	struct db_message m;
	struct db_params p;
	PGresult *res;
	int r, rows;

	if (db_ready(db) == -1)
		return -1;
	db_par_init(&p);
	db_par_uint(&p, max_size);
	db_par_uint(&p, limit);
	if ((res = db_exec(db, INDEX_SAMPLE_SELECT, &p, false)) == NULL)
		return -1;
	rows = PQntuples(res);
	for (r = 0; r < rows; r++) {
		m.account = NULL;
		m.sha256_hex = PQgetvalue(res, r, 0);
		m.size = strtoull(PQgetvalue(res, r, 1), NULL, 10);
		m.dict_id = 0;
		if (cb(arg, &m) != 0) {
			PQclear(res);
			return -1;
		}
	}
	PQclear(res);
	return 0;
}
