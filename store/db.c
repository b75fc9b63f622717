/*
 * The core of the db module: the connection and its recovery, error text,
 * and running statements, one at a time or in pipeline mode.  The other
 * store/db_*.c files each hold one subject's statements and build on these
 * helpers (declared in db_private.h); they and this file are the only
 * includers of libpq-fe.h.
 *
 * Calls block on the caller's thread (the scheduler or the committer, never
 * a worker).  Statements come from index.c and are prepared lazily, once per
 * connection.  Text parameters go in text format; bytea (hashes, chunks) in
 * binary, so a 1 MiB chunk is never expanded to 2 MiB of hex.
 */
#include "store/db.h"

#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "ingestd/base/log.h"
#include "ingestd/base/xmalloc.h"
#include "store/db_private.h"
#include "store/index.h"

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

void
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

void
db_connerr(struct db *db, const char *label)
{
	char msg[512];

	db_oneline(msg, sizeof(msg), db->conn != NULL ?
	    PQerrorMessage(db->conn) : "not connected");
	if (msg[0] == '\0')
		snprintf(msg, sizeof(msg), "connection lost");
	db_seterr(db, "%s: %s", label, msg);
}

void
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
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	if (state == NULL)
		state = "";
	/*
	 * A timeout is named with its length, for whoever reads the log to
	 * look for the lock; the server's own words follow.  57014 is also an
	 * operator's pg_cancel_backend(), which the server's words then tell.
	 */
	if (strcmp(state, "57014") == 0 && db->statement_timeout > 0)
		db_seterr(db, "%s: statement timed out after %u s (lock held "
		    "elsewhere?), or was cancelled: %s", label,
		    db->statement_timeout, msg);
	else if (strcmp(state, "55P03") == 0 && db->lock_timeout > 0)
		db_seterr(db, "%s: timed out after %u s waiting for a lock "
		    "(lock held elsewhere?): %s", label, db->lock_timeout, msg);
	else
		db_seterr(db, "%s: %s", label, msg);
	snprintf(db->sqlstate, sizeof(db->sqlstate), "%s", state);
}

/* Server notices (e.g. "relation already exists, skipping"). */
static void
db_notice(void *arg, const char *message)
{
	char msg[512];

	db_oneline(msg, sizeof(msg), message);
	log_debug("database: %s", msg);
}

void
db_par_init(struct db_params *p)
{
	p->n = 0;
}

void
db_par_int(struct db_params *p, int64_t x)
{
	ASSERT(p->n < DB_MAXPARAMS);
	snprintf(p->num[p->n], sizeof(p->num[p->n]), "%" PRId64, x);
	p->v[p->n] = p->num[p->n];
	p->len[p->n] = 0;
	p->fmt[p->n] = 0;
	p->n++;
}

void
db_par_uint(struct db_params *p, uint64_t x)
{
	ASSERT(p->n < DB_MAXPARAMS);
	snprintf(p->num[p->n], sizeof(p->num[p->n]), "%" PRIu64, x);
	p->v[p->n] = p->num[p->n];
	p->len[p->n] = 0;
	p->fmt[p->n] = 0;
	p->n++;
}

void
db_par_text(struct db_params *p, const char *s)
{
	ASSERT(p->n < DB_MAXPARAMS);
	p->v[p->n] = s;
	p->len[p->n] = 0;
	p->fmt[p->n] = 0;
	p->n++;
}

void
db_par_bytes(struct db_params *p, const void *b, size_t n)
{
	ASSERT(p->n < DB_MAXPARAMS);
	ASSERT(n <= INT32_MAX);
	p->v[p->n] = b;
	p->len[p->n] = (int)n;
	p->fmt[p->n] = 1;
	p->n++;
}

uint64_t
db_be64(const char *p)
{
	const unsigned char *u = (const unsigned char *)p;
	uint64_t x = 0;
	int i;

	for (i = 0; i < 8; i++)
		x = (x << 8) | u[i];
	return x;
}

/*
 * Whether a COMMIT under synchronous_commit = v returns only once its WAL
 * is flushed locally.  Only off returns before; a value this code does not
 * know (a newer server's) is not trusted either.
 */
static bool
db_sync_commit_durable(const char *v)
{
	return strcmp(v, "on") == 0 || strcmp(v, "remote_apply") == 0 ||
	    strcmp(v, "remote_write") == 0 || strcmp(v, "local") == 0;
}

/* Reads back synchronous_commit on conn: 0, or -1 with msg filled. */
static int
db_sync_commit_read(PGconn *conn, char *msg, size_t msglen)
{
	PGresult *res;
	const char *v;
	char m[400];
	int rc = -1;

	res = PQexec(conn, index_sync_commit_show);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
		db_oneline(m, sizeof(m), PQresultErrorMessage(res));
		snprintf(msg, msglen, "reading synchronous_commit: %s", m);
	} else if (!db_sync_commit_durable(v = PQgetvalue(res, 0, 0)))
		snprintf(msg, msglen, "synchronous_commit is %.32s for this "
		    "session although ingestd set it on (a connection pooler "
		    "that loses SET?): COMMIT could return before the WAL is "
		    "flushed, so nothing may be archived through it", v);
	else {
		/* Anything but the on we set is worth a line: who set it? */
		if (strcmp(v, "on") == 0)
			log_debug("database: synchronous_commit is on");
		else
			log_info("database: synchronous_commit is %s", v);
		rc = 0;
	}
	PQclear(res);
	return rc;
}

/*
 * Sets up a session: synchronous_commit on, the timeouts, and the OS user
 * that the rows this session writes record as their actor, with the
 * PostgreSQL role (migrations 0009, 0011).  0, or -1 with msg filled.
 */
static int
db_setup(PGconn *conn, unsigned statement_s, unsigned lock_s, char *msg,
    size_t msglen)
{
	char st[16], lk[16], m[512], who[128], pwbuf[1024];
	const char *vals[3] = { st, lk, who };
	struct passwd pwd, *pw = NULL;
	PGresult *res;

	snprintf(st, sizeof(st), "%us", statement_s);
	snprintf(lk, sizeof(lk), "%us", lock_s);
	/* getpwuid_r: sessions open in several threads at once. */
	if (getpwuid_r(geteuid(), &pwd, pwbuf, sizeof(pwbuf), &pw) == 0 &&
	    pw != NULL)
		snprintf(who, sizeof(who), "%s", pw->pw_name);
	else
		snprintf(who, sizeof(who), "uid %u", (unsigned)geteuid());
	res = PQexecParams(conn, index_session_setup, 3, NULL, vals, NULL,
	    NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_oneline(m, sizeof(m), PQresultErrorMessage(res));
		snprintf(msg, msglen, "%s", m);
		PQclear(res);
		return -1;
	}
	PQclear(res);
	return db_sync_commit_read(conn, msg, msglen);
}

/* Opens a connection and prepares the session; NULL with err filled. */
static PGconn *
db_open(const char *conninfo, unsigned statement_s, unsigned lock_s,
    char *err, size_t errlen)
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
	if (db_setup(conn, statement_s, lock_s, msg, sizeof(msg)) == -1) {
		snprintf(err, errlen, "database: session setup: %s", msg);
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

struct db *
db_connect(const char *conninfo, char *err, size_t errlen)
{
	struct db *db;
	PGconn *conn;

	if ((conn = db_open(conninfo, DB_STATEMENT_TIMEOUT, DB_LOCK_TIMEOUT,
	    err, errlen)) == NULL)
		return NULL;
	db = xcalloc(1, sizeof(*db));
	db->conn = conn;
	db->conninfo = xstrdup(conninfo);
	db->statement_timeout = DB_STATEMENT_TIMEOUT;
	db->lock_timeout = DB_LOCK_TIMEOUT;
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
	db_rb_release(db);
	free(db); *dbp = NULL;
}

const char *
db_error(const struct db *db)
{
	return db->error[0] != '\0' ? db->error : "database: no error";
}

const char *
db_sqlstate(const struct db *db)
{
	return db->sqlstate;
}

bool
db_error_data(const struct db *db)
{
	return (db->sqlstate[0] == '2' &&
	    (db->sqlstate[1] == '2' || db->sqlstate[1] == '3')) ||
	    (db->sqlstate[0] == '5' && db->sqlstate[1] == '4');
}

int
db_set_timeouts(struct db *db, unsigned statement_s, unsigned lock_s)
{
	char msg[512];

	db->statement_timeout = statement_s;
	db->lock_timeout = lock_s;
	if (db_ready(db) == -1)
		return -1;
	if (db_setup(db->conn, statement_s, lock_s, msg, sizeof(msg)) == -1) {
		db_seterr(db, "session setup: %s", msg);
		return -1;
	}
	return 0;
}

int
db_check_sync_commit(struct db *db)
{
	char msg[512];

	if (db_ready(db) == -1)
		return -1;
	if (db_sync_commit_read(db->conn, msg, sizeof(msg)) == -1) {
		db_seterr(db, "%s", msg);
		return -1;
	}
	return 0;
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
	if ((db->conn = db_open(db->conninfo, db->statement_timeout,
	    db->lock_timeout, err, sizeof(err))) == NULL) {
		snprintf(db->error, sizeof(db->error), "%s", err);
		db->sqlstate[0] = '\0';
		return -1;
	}
	return 0;
}

int
db_ready(struct db *db)
{
	PGresult *res;

	db->error[0] = '\0';
	db->sqlstate[0] = '\0';
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

int
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

PGresult *
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

int
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

void
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

/* Records a command sent, whose result db_pl_sync() will read. */
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

int
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

int
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

int
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

int
db_pl_enter(struct db *db)
{
	if (PQenterPipelineMode(db->conn) == 0) {
		db_connerr(db, "pipeline mode");
		return -1;
	}
	db->nq = 0;
	return 0;
}

void
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
