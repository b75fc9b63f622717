/*
 * commit_check CONNINFO: how the committer fails, against a real
 * PostgreSQL.
 *
 * Creates fresh databases next to the one CONNINFO names and checks, with
 * a second connection of its own (libpq, to hold locks and change the
 * schema under the store as an operator or another program would):
 *
 *   data     a value the server refuses (SQLSTATE 22003, out of range;
 *            23503, a foreign key) fails only its own message, at once,
 *            with the SQLSTATE, in a batch with healthy ones, which are
 *            durable without waiting for the retry period
 *   limit    a row the server cannot hold (SQLSTATE 54000, an index row
 *            too big) fails only its own message, like a refused value
 *   sync     synchronous_commit: set on whatever the role and database
 *            defaults say; db_check_sync_commit() refuses a session where
 *            it is off; a commit in such a session still runs with it on
 *   timeouts a lock held elsewhere: the committer's statements time out,
 *            the batch is retried with backoff, and commits once the lock
 *            is gone or fails with an error naming the timeout
 *   readback a message whose compressed bytes do not decompress to what
 *            was received (a wrong digest, a spool that reads back a
 *            flipped byte, a dictionary not in the archive) fails alone
 *            and is not stored; the others, with and without a dictionary,
 *            commit
 *
 * To batch messages together, a "plug" message is committed first while
 * the second connection holds a lock that its INSERT waits for; whatever
 * is submitted meanwhile queues up and goes into one batch once the lock
 * is let go.
 *
 * Prints one line per failed check and "N passed, N failed"; exits 1 if
 * anything failed.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "ingestd/base/log.h"
#include "ingestd/base/xmalloc.h"
#include "store/commit.h"
#include "store/db.h"
#include "store/known.h"
#include "store/pipe.h"
#include "store/spool.h"
#include "store/zstd.h"
#include "tests/integ/check.h"

static char spool_dir[] = "/tmp/commit_check.XXXXXX";

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the second connection ---- */

static PGconn *
side_open(const char *conninfo)
{
	PGconn *c = PQconnectdb(conninfo);

	if (PQstatus(c) != CONNECTION_OK) {
		fprintf(stderr, "commit_check: %s", PQerrorMessage(c));
		exit(2);
	}
	return c;
}

/* Runs sql; whether it succeeded (a failure is printed). */
static bool
side_exec(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	bool ok;

	ok = PQresultStatus(res) == PGRES_COMMAND_OK ||
	    PQresultStatus(res) == PGRES_TUPLES_OK;
	if (!ok)
		fprintf(stderr, "commit_check: %s: %s", sql,
		    PQresultErrorMessage(res));
	PQclear(res);
	return ok;
}

/* The first column of the first row of sql, in buf ("" if none). */
static const char *
side_value(PGconn *c, const char *sql, char *buf, size_t len)
{
	PGresult *res = PQexec(c, sql);

	buf[0] = '\0';
	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0)
		snprintf(buf, len, "%s", PQgetvalue(res, 0, 0));
	else if (PQresultStatus(res) != PGRES_TUPLES_OK)
		fprintf(stderr, "commit_check: %s: %s", sql,
		    PQresultErrorMessage(res));
	PQclear(res);
	return buf;
}

/* Waits until some session of this database waits for a lock. */
static bool
side_wait_blocked(PGconn *c)
{
	char v[32];
	double end = now() + 30;

	while (now() < end) {
		side_value(c, "SELECT count(*) FROM pg_stat_activity "
		    "WHERE datname = current_database() AND "
		    "wait_event_type = 'Lock'", v, sizeof(v));
		if (atoi(v) > 0)
			return true;
		usleep(20 * 1000);
	}
	return false;
}

/* ---- messages and items ---- */

/* A message of about len bytes, different for each seed. */
static unsigned char *
message(unsigned seed, size_t len, size_t *len_r)
{
	unsigned char *p;
	size_t n;
	int h;

	p = xmalloc(len + 128);
	h = snprintf((char *)p, 128, "Subject: check %u\r\nX-Seed: %u\r\n"
	    "\r\n", seed, seed);
	for (n = h; n < len; n++)
		p[n] = "abcdefghij klmnopqrstuvwxyz\r\n"[(n * 7 + seed) % 29];
	*len_r = n > (size_t)h ? n : (size_t)h;
	return p;
}

/* Bytes zstd cannot shrink: they outgrow a small spool's memory. */
static unsigned char *
noise(unsigned seed, size_t len)
{
	unsigned char *p = xmalloc(len);
	uint64_t x = 0x9e3779b97f4a7c15ULL ^ seed;
	size_t i;

	memcpy(p, "Subject: noise\r\n\r\n", 18);
	for (i = 18; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (unsigned char)x;
	}
	return p;
}

/* A spool file that reads back with one byte flipped: a disk, or the
 * memory on the way, gone bad after the bytes were written. */
static ssize_t
flip_pread(int fd, void *p, size_t n, off_t off)
{
	ssize_t r = pread(fd, p, n, off);

	if (r > 100)
		((unsigned char *)p)[100] ^= 0x20;
	return r;
}

static const struct spool_sys flip_sys = { .pread = flip_pread };

/* What became of an item; it->arg. */
struct outcome {
	bool answered;
	bool durable;
	char error[256];
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int answered;

static void
done_cb(struct commit_item *it, bool durable)
{
	struct outcome *o = it->arg;

	pthread_mutex_lock(&mu);
	o->answered = true;
	o->durable = durable;
	snprintf(o->error, sizeof(o->error), "%s", it->error);
	answered++;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

/* Waits up to secs for n answers since the count was last reset. */
static bool
wait_answers(int n, int secs)
{
	struct timespec ts;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += secs;
	pthread_mutex_lock(&mu);
	while (answered < n &&
	    pthread_cond_timedwait(&cv, &mu, &ts) != ETIMEDOUT)
		;
	ok = answered >= n;
	pthread_mutex_unlock(&mu);
	return ok;
}

static void
reset_answers(void)
{
	pthread_mutex_lock(&mu);
	answered = 0;
	pthread_mutex_unlock(&mu);
}

struct citem {
	struct commit_item it;
	struct outcome o;
};

/* A commit item holding data as the pipe makes it. */
static struct citem *
item_sys(int64_t account_id, const char *uidl, const void *data, size_t len,
    const struct zdict *dict, const struct spool_sys *sys)
{
	struct pipe_params pp = {
		.spool_dir = spool_dir,
		.spool_mem = 4096,	/* more goes to a file */
		.size_hint = len,
		.level = 3,
		.dict = dict,
		.spool_sys = sys,
	};
	struct citem *c;
	struct pipe *p;

	c = xcalloc(1, sizeof(*c));
	c->it.account_id = account_id;
	c->it.uidl = uidl ? xstrdup(uidl) : NULL;
	c->it.list_size = len;
	c->it.done = done_cb;
	c->it.arg = &c->o;
	p = pipe_new(&pp);
	if (pipe_write(p, data, len) == -1 || pipe_finish(p, &c->it.res) ==
	    -1) {
		fprintf(stderr, "pipe: %s\n", pipe_error(p));
		abort();
	}
	pipe_free(&p);
	return c;
}

/* A healthy message of its own for uidl. */
static struct citem *
item(int64_t account_id, const char *uidl, unsigned seed)
{
	struct citem *c;
	unsigned char *m;
	size_t len;

	m = message(seed, 600 + seed % 5000, &len);
	c = item_sys(account_id, uidl, m, len, NULL, NULL);
	free(m);
	return c;
}

static void
item_free(struct citem **cp)
{
	struct citem *c = *cp;

	if (c == NULL)
		return;
	spool_free(&c->it.res.spool);
	free(c->it.uidl);
	free(c); *cp = NULL;
}

/* Whether account has a delivery under uidl. */
static bool
archived(struct db *db, int64_t account, const char *uidl)
{
	struct known *k = known_new();
	bool found;

	if (db_known_load(db, account, k) == -1) {
		fprintf(stderr, "known: %s\n", db_error(db));
		known_free(&k);
		return false;
	}
	found = known_find(k, uidl) != NULL;
	known_free(&k);
	return found;
}

/* Whether a blob with this digest is stored. */
static bool
blob_stored(PGconn *side, const unsigned char sha[32])
{
	char hex[65], sql[256], v[8];

	pipe_hex(sha, hex);
	snprintf(sql, sizeof(sql), "SELECT 1 FROM ingestd.blob WHERE sha256 "
	    "= '\\x%s'::bytea", hex);
	return strcmp(side_value(side, sql, v, sizeof(v)), "1") == 0;
}

/*
 * Starts a committer and holds it on a plug message whose INSERT waits
 * for a lock taken by side, so that what is submitted next queues into
 * one batch.  Let go with unplug().
 */
static struct committer *
plugged(struct committer_params *cp, PGconn *side, int64_t account,
    struct citem **plug_r)
{
	struct committer *cm;
	char err[512];

	if ((cm = committer_start(cp, err, sizeof(err))) == NULL) {
		fprintf(stderr, "committer: %s\n", err);
		exit(1);
	}
	CHECK(side_exec(side, "BEGIN"));
	CHECK(side_exec(side, "LOCK TABLE ingestd.blob IN SHARE ROW EXCLUSIVE "
	    "MODE"));
	*plug_r = item(account, "plug", (unsigned)time(NULL));
	committer_submit(cm, &(*plug_r)->it);
	CHECK(side_wait_blocked(side));
	return cm;
}

static void
unplug(PGconn *side)
{
	CHECK(side_exec(side, "ROLLBACK"));
}

/* A fresh database with the schema; its conninfo, the caller's. */
static char *
fresh_database(const char *admin, const char *base, const char *name)
{
	char err[512];
	struct db *db;
	char *ci;
	int applied;

	if (db_create_database(admin, name, err, sizeof(err)) == -1) {
		fprintf(stderr, "commit_check: %s\n", err);
		exit(2);
	}
	ci = xasprintf("%s dbname=%s", base, name);
	if ((db = db_connect(ci, err, sizeof(err))) == NULL ||
	    db_migrate(db, &applied) == -1) {
		fprintf(stderr, "commit_check: %s\n", db ? db_error(db) : err);
		exit(2);
	}
	db_close(&db);
	return ci;
}

/* ---- values the server refuses ---- */

static void
check_data(struct db *db, const char *ci)
{
	struct committer_params cp = {
		.conninfo = ci,
		.batch_max = 64,
		.retry_seconds = 60,
	};
	struct db_commit_row rows[2];
	struct citem *c[12], *plug;
	struct committer *cm;
	PGconn *side;
	char uidl[32];
	int64_t acct;
	double t0, took;
	int i;

	CHECK_OK(db_account_id(db, "data", &acct), db);
	side = side_open(ci);

	/*
	 * In db alone: a LIST size past INT64_MAX (which the POP3 parser
	 * refuses, so only a bug could bring one here) reaches the server
	 * and is refused as a data exception that names no row.
	 */
	c[0] = item(acct, "d-ok", 1);
	c[1] = item(acct, "d-big", 2);
	c[1]->it.list_size = UINT64_MAX;
	memset(rows, 0, sizeof(rows));
	for (i = 0; i < 2; i++) {
		rows[i].account_id = acct;
		rows[i].uidl = c[i]->it.uidl;
		rows[i].list_size = c[i]->it.list_size;
		memcpy(rows[i].sha256, c[i]->it.res.sha256, 32);
		memcpy(rows[i].head_sha256, c[i]->it.res.head_sha256, 32);
		rows[i].size = c[i]->it.res.size;
		rows[i].stored_size = c[i]->it.res.stored_size;
		rows[i].spool = c[i]->it.res.spool;
	}
	CHECK(db_commit_messages(db, rows, 2) == -1);
	CHECK(rows[0].error[0] == '\0' && rows[1].error[0] == '\0');
	CHECK(db_error_data(db));
	CHECK(strcmp(db_sqlstate(db), "22003") == 0);
	printf("  refused as expected: %s (SQLSTATE %s)\n", db_error(db),
	    db_sqlstate(db));
	CHECK(!archived(db, acct, "d-ok"));
	item_free(&c[0]);
	item_free(&c[1]);

	/*
	 * Through the committer, in one batch with ten healthy messages:
	 * that LIST size, and a delivery for an account that is not there
	 * (an operator deleted it under a running poll).
	 */
	reset_answers();
	cm = plugged(&cp, side, acct, &plug);
	for (i = 0; i < 12; i++) {
		snprintf(uidl, sizeof(uidl), "d%d", i);
		c[i] = item(acct, uidl, 100 + i);
	}
	c[3]->it.list_size = (uint64_t)INT64_MAX + 1;
	c[8]->it.account_id = acct + 1000000;
	for (i = 0; i < 12; i++)
		committer_submit(cm, &c[i]->it);
	t0 = now();
	unplug(side);
	CHECK(wait_answers(13, 120));
	took = now() - t0;
	printf("  data: 12 messages, 2 refused, answered in %.2f s\n", took);
	/* Nowhere near the 60 s a batch would be retried for. */
	CHECK(took < 15);
	CHECK(plug->o.durable);
	for (i = 0; i < 12; i++) {
		snprintf(uidl, sizeof(uidl), "d%d", i);
		if (i == 3 || i == 8) {
			CHECK(c[i]->o.answered && !c[i]->o.durable);
			CHECK(!archived(db, acct, uidl));
		} else {
			CHECK(c[i]->o.durable);
			CHECK(archived(db, acct, uidl));
		}
	}
	CHECK(strstr(c[3]->o.error, "SQLSTATE 22003") != NULL);
	CHECK(strstr(c[8]->o.error, "SQLSTATE 23503") != NULL);
	printf("  refused alone: %s\n  refused alone: %s\n", c[3]->o.error,
	    c[8]->o.error);
	committer_stop(&cm);
	for (i = 0; i < 12; i++)
		item_free(&c[i]);
	item_free(&plug);
	PQfinish(side);
}

/*
 * SQLSTATE class 54, program limit exceeded: a value the server takes but
 * cannot index (here a partial index an operator added, whose key for one
 * UIDL is 3,200 bytes of hex that does not compress, past btree's 2,704).
 * It fails the same way at every attempt, so it must fail its message
 * alone, like classes 22 and 23, not the batch after retry_seconds.
 */
static void
check_limit(struct db *db, const char *ci)
{
	struct committer_params cp = {
		.conninfo = ci,
		.batch_max = 64,
		.retry_seconds = 60,
	};
	struct citem *c[6], *plug;
	struct committer *cm;
	PGconn *side;
	char uidl[32];
	int64_t acct;
	int i;

	CHECK_OK(db_account_id(db, "limit", &acct), db);
	side = side_open(ci);
	CHECK(side_exec(side, "CREATE FUNCTION ingestd.test_wide(t text) "
	    "RETURNS text IMMUTABLE LANGUAGE sql AS $$ SELECT string_agg("
	    "md5(t || i::text), '') FROM generate_series(1, 100) AS i $$"));
	CHECK(side_exec(side, "CREATE INDEX test_wide ON ingestd.delivery "
	    "(ingestd.test_wide(uidl)) WHERE uidl = 'l-wide'"));
	reset_answers();
	cm = plugged(&cp, side, acct, &plug);
	for (i = 0; i < 6; i++) {
		snprintf(uidl, sizeof(uidl), i == 2 ? "l-wide" : "l%d", i);
		c[i] = item(acct, uidl, 300 + i);
		committer_submit(cm, &c[i]->it);
	}
	unplug(side);
	CHECK(wait_answers(7, 120));
	CHECK(plug->o.durable);
	for (i = 0; i < 6; i++) {
		snprintf(uidl, sizeof(uidl), i == 2 ? "l-wide" : "l%d", i);
		if (i == 2) {
			CHECK(c[i]->o.answered && !c[i]->o.durable);
			CHECK(!archived(db, acct, uidl));
		} else {
			CHECK(c[i]->o.durable);
			CHECK(archived(db, acct, uidl));
		}
	}
	CHECK(strstr(c[2]->o.error, "SQLSTATE 54000") != NULL);
	printf("  limit: refused alone: %s\n", c[2]->o.error);
	committer_stop(&cm);
	CHECK(side_exec(side, "DROP INDEX ingestd.test_wide"));
	CHECK(side_exec(side, "DROP FUNCTION ingestd.test_wide(text)"));
	for (i = 0; i < 6; i++)
		item_free(&c[i]);
	item_free(&plug);
	PQfinish(side);
}

/* ---- synchronous_commit ---- */

static void
check_sync(const char *admin, const char *base, unsigned tag)
{
	char name[64], v[64], *ci, *ci_off, err[512];
	struct db_commit_row row;
	struct citem *c;
	struct db *db;
	PGconn *side, *adm;
	int64_t acct;

	snprintf(name, sizeof(name), "commit_check_%u_sync", tag);
	ci = fresh_database(admin, base, name);
	adm = side_open(admin);
	/* Every default says off: the database's, and the connection's
	 * own options. */
	snprintf(err, sizeof(err), "ALTER DATABASE %s SET synchronous_commit "
	    "= off", name);
	CHECK(side_exec(adm, err));
	PQfinish(adm);
	side = side_open(ci);
	CHECK(strcmp(side_value(side, "SHOW synchronous_commit", v,
	    sizeof(v)), "off") == 0);
	ci_off = xasprintf("%s options='-c synchronous_commit=off'", ci);
	db = db_connect(ci_off, err, sizeof(err));
	CHECK(db != NULL);
	if (db == NULL) {
		fprintf(stderr, "%s\n", err);
		goto out;
	}
	CHECK_OK(db_check_sync_commit(db), db);

	/*
	 * Something in the session turns it off after we set it, as a
	 * pooler that hands us another server session would: here, a
	 * trigger of the operator's.  A deferred trigger records what
	 * COMMIT runs with.
	 */
	CHECK(side_exec(side,
	    "CREATE FUNCTION public.sc_off() RETURNS trigger LANGUAGE plpgsql "
	    "AS $$BEGIN PERFORM set_config('synchronous_commit', 'off', "
	    "false); RETURN NULL; END$$;"
	    "CREATE TRIGGER sc_off AFTER INSERT ON ingestd.account "
	    "FOR EACH ROW EXECUTE FUNCTION public.sc_off();"
	    "CREATE TRIGGER sc_off AFTER INSERT ON ingestd.blob "
	    "FOR EACH ROW EXECUTE FUNCTION public.sc_off();"
	    "CREATE TABLE public.sc_log (setting text NOT NULL);"
	    "CREATE FUNCTION public.sc_log() RETURNS trigger LANGUAGE plpgsql "
	    "AS $$BEGIN INSERT INTO public.sc_log VALUES "
	    "(current_setting('synchronous_commit')); RETURN NULL; END$$;"
	    "CREATE CONSTRAINT TRIGGER sc_log AFTER INSERT ON "
	    "ingestd.delivery DEFERRABLE INITIALLY DEFERRED "
	    "FOR EACH ROW EXECUTE FUNCTION public.sc_log();"));
	CHECK_OK(db_account_id(db, "sync", &acct), db);
	CHECK(db_check_sync_commit(db) == -1);
	CHECK(strstr(db_error(db), "synchronous_commit is off") != NULL);
	printf("  refused as expected: %s\n", db_error(db));

	/* A commit in that session still commits with it on, even though
	 * its own blob INSERT turns it off again. */
	c = item(acct, "s0", 7);
	memset(&row, 0, sizeof(row));
	row.account_id = acct;
	row.uidl = c->it.uidl;
	row.list_size = c->it.list_size;
	memcpy(row.sha256, c->it.res.sha256, 32);
	memcpy(row.head_sha256, c->it.res.head_sha256, 32);
	row.size = c->it.res.size;
	row.stored_size = c->it.res.stored_size;
	row.spool = c->it.res.spool;
	CHECK_OK(db_commit_messages(db, &row, 1), db);
	CHECK(strcmp(side_value(side, "SELECT string_agg(setting, ',') FROM "
	    "public.sc_log", v, sizeof(v)), "on") == 0);
	printf("  committed with synchronous_commit = %s\n", v);
	item_free(&c);

	/* A new connection sets it again. */
	CHECK_OK(db_reconnect(db), db);
	CHECK_OK(db_check_sync_commit(db), db);
out:
	db_close(&db);
	PQfinish(side);
	free(ci_off);
	free(ci);
}

/* ---- timeouts ---- */

/* One message through a committer while side holds an ACCESS EXCLUSIVE
 * lock on the blob table; its outcome, and how long it took. */
static double
commit_locked_out(const char *ci, PGconn *side, int64_t acct,
    unsigned statement_s, unsigned lock_s, unsigned retry_s,
    double hold_s, struct outcome *o)
{
	struct committer_params cp = {
		.conninfo = ci,
		.retry_seconds = retry_s,
		.statement_timeout = statement_s,
		.lock_timeout = lock_s,
	};
	static unsigned seed = 500;
	struct committer *cm;
	struct citem *c;
	char err[512], uidl[32];
	double t0, took;

	if ((cm = committer_start(&cp, err, sizeof(err))) == NULL) {
		fprintf(stderr, "committer: %s\n", err);
		CHECK(false);
		return 0;
	}
	reset_answers();
	CHECK(side_exec(side, "BEGIN"));
	CHECK(side_exec(side, "LOCK TABLE ingestd.blob IN ACCESS EXCLUSIVE "
	    "MODE"));
	snprintf(uidl, sizeof(uidl), "t%u", seed);
	c = item(acct, uidl, seed++);
	t0 = now();
	committer_submit(cm, &c->it);
	/* Without a timeout the committer would wait for as long as this. */
	while (!wait_answers(1, 0) && now() - t0 < hold_s)
		usleep(50 * 1000);
	CHECK(side_exec(side, "ROLLBACK"));
	CHECK(wait_answers(1, 120));
	took = now() - t0;
	*o = c->o;
	committer_stop(&cm);
	item_free(&c);
	return took;
}

/* Lets go of side's lock after 30 s, unless told the test is over. */
struct watchdog {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool over;
	PGconn *side;
};

static void *
watchdog(void *arg)
{
	struct watchdog *wd = arg;
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 30;
	pthread_mutex_lock(&wd->mu);
	while (!wd->over &&
	    pthread_cond_timedwait(&wd->cv, &wd->mu, &ts) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&wd->mu);
	/* The main thread is done with side, or blocked on its lock. */
	CHECK(side_exec(wd->side, "ROLLBACK"));
	return NULL;
}

static void
check_timeouts(struct db *db, const char *ci)
{
	struct watchdog wd = {
		PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, false, NULL
	};
	struct outcome o;
	PGconn *side;
	pthread_t t;
	int64_t acct;
	double took, t0;

	CHECK_OK(db_account_id(db, "timeouts", &acct), db);
	side = side_open(ci);

	/* A lock held for longer than the retry period: each attempt
	 * gives up after 1 s, and the message fails after about 3. */
	took = commit_locked_out(ci, side, acct, 30, 1, 3, 30, &o);
	printf("  lock timeout: %s after %.2f s: %s\n", o.durable ?
	    "durable" : "failed", took, o.error);
	CHECK(!o.durable && took < 20);
	CHECK(strstr(o.error, "timed out after 1 s waiting for a lock (lock "
	    "held elsewhere?)") != NULL);

	/* The statement's own timeout, shorter than the lock's. */
	took = commit_locked_out(ci, side, acct, 1, 30, 3, 30, &o);
	printf("  statement timeout: %s after %.2f s: %s\n", o.durable ?
	    "durable" : "failed", took, o.error);
	CHECK(!o.durable && took < 20);
	CHECK(strstr(o.error, "statement timed out after 1 s (lock held "
	    "elsewhere?)") != NULL);

	/* A lock held for less: retried with backoff, then durable. */
	took = commit_locked_out(ci, side, acct, 30, 1, 60, 3, &o);
	printf("  lock held 3 s: %s after %.2f s\n", o.durable ? "durable" :
	    "failed", took);
	CHECK(o.durable && took >= 2.5 && took < 30);

	/*
	 * The main thread's connection times out the same way.  Without a
	 * timeout it would wait for side, which the watchdog lets go.
	 */
	CHECK_OK(db_set_timeouts(db, 30, 1), db);
	CHECK(side_exec(side, "BEGIN"));
	CHECK(side_exec(side, "LOCK TABLE ingestd.account IN ACCESS "
	    "EXCLUSIVE MODE"));
	wd.side = side;
	wd.over = false;
	pthread_create(&t, NULL, watchdog, &wd);
	t0 = now();
	CHECK(db_account_id(db, "timeouts", &acct) == -1);
	CHECK(now() - t0 < 15);
	CHECK(strstr(db_error(db), "waiting for a lock") != NULL);
	CHECK(!db_error_data(db) && strcmp(db_sqlstate(db), "55P03") == 0);
	printf("  main thread: %s\n", db_error(db));
	pthread_mutex_lock(&wd.mu);
	wd.over = true;
	pthread_cond_signal(&wd.cv);
	pthread_mutex_unlock(&wd.mu);
	pthread_join(t, NULL);
	CHECK_OK(db_account_id(db, "timeouts", &acct), db);
	CHECK_OK(db_set_timeouts(db, DB_STATEMENT_TIMEOUT, DB_LOCK_TIMEOUT),
	    db);
	PQfinish(side);
}

/* ---- read-back ---- */

static void
check_readback(struct db *db, const char *ci)
{
	struct committer_params cp = {
		.conninfo = ci,
		.batch_max = 64,
		.retry_seconds = 60,
	};
	struct citem *c[9], *plug;
	struct committer *cm;
	struct zdict *zd;
	unsigned char *m, *d;
	PGconn *side;
	char uidl[32];
	int64_t acct, dict_id;
	size_t len, dlen;
	int i;

	CHECK_OK(db_account_id(db, "readback", &acct), db);
	side = side_open(ci);
	d = message(77, 4096, &dlen);
	CHECK_OK(db_dict_store(db, d, dlen, &dict_id), db);
	zd = zdict_new(dict_id, d, dlen, 3);
	CHECK(zd != NULL);

	reset_answers();
	cm = plugged(&cp, side, acct, &plug);
	for (i = 0; i < 9; i++) {
		snprintf(uidl, sizeof(uidl), "r%d", i);
		switch (i) {
		case 1:		/* a digest that is not of these bytes */
			c[i] = item(acct, uidl, 300 + i);
			c[i]->it.res.sha256[5] ^= 0x01;
			break;
		case 4:		/* a spool that reads back wrong */
			m = noise(i, 200 * 1024);
			c[i] = item_sys(acct, uidl, m, 200 * 1024, NULL,
			    &flip_sys);
			CHECK(spool_on_disk(c[i]->it.res.spool));
			free(m);
			break;
		case 5:		/* with a dictionary, several chunks */
			m = noise(i, 2500 * 1024);
			memcpy(m + 1000, d, dlen);
			c[i] = item_sys(acct, uidl, m, 2500 * 1024, zd, NULL);
			CHECK(c[i]->it.res.stored_size > 2 * 1024 * 1024);
			free(m);
			break;
		case 6:		/* with a dictionary */
			m = message(300 + i, 3000, &len);
			c[i] = item_sys(acct, uidl, m, len, zd, NULL);
			free(m);
			break;
		case 7:		/* a dictionary the archive does not have */
			c[i] = item(acct, uidl, 300 + i);
			c[i]->it.res.dict_id = dict_id + 1000;
			break;
		default:
			c[i] = item(acct, uidl, 300 + i);
			break;
		}
		committer_submit(cm, &c[i]->it);
	}
	unplug(side);
	CHECK(wait_answers(10, 120));
	CHECK(plug->o.durable);
	for (i = 0; i < 9; i++) {
		snprintf(uidl, sizeof(uidl), "r%d", i);
		if (i == 1 || i == 4 || i == 7) {
			CHECK(!c[i]->o.durable);
			CHECK(strncmp(c[i]->o.error, "read-back: ", 11) == 0);
			printf("  refused as expected: %s\n", c[i]->o.error);
			CHECK(!archived(db, acct, uidl));
		} else {
			CHECK(c[i]->o.durable);
			CHECK(archived(db, acct, uidl));
		}
	}
	CHECK(strcmp(c[1]->o.error, "read-back: SHA-256 of the decoded bytes "
	    "differs from the received message") == 0);
	/* Nothing of theirs was stored. */
	CHECK(!blob_stored(side, c[1]->it.res.sha256));
	CHECK(!blob_stored(side, c[4]->it.res.sha256));
	CHECK(blob_stored(side, c[5]->it.res.sha256));
	committer_stop(&cm);
	for (i = 0; i < 9; i++)
		item_free(&c[i]);
	item_free(&plug);
	zdict_free(&zd);
	free(d);
	PQfinish(side);
}

int
main(int argc, char **argv)
{
	struct db *db;
	char err[512], name[64], *admin, *ci;
	unsigned tag;

	if (argc != 2) {
		fprintf(stderr, "usage: commit_check CONNINFO\n");
		return 2;
	}
	log_init(getenv("COMMIT_CHECK_DEBUG") ? 1 : 0);
	if (mkdtemp(spool_dir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	tag = (unsigned)getpid() ^ (unsigned)time(NULL);
	admin = xasprintf("%s dbname=postgres", argv[1]);
	snprintf(name, sizeof(name), "commit_check_%u", tag);
	ci = fresh_database(admin, argv[1], name);
	printf("commit_check: database %s\n", name);
	if ((db = db_connect(ci, err, sizeof(err))) == NULL) {
		fprintf(stderr, "commit_check: %s\n", err);
		return 1;
	}
	check_data(db, ci);
	check_limit(db, ci);
	check_sync(admin, argv[1], tag);
	check_timeouts(db, ci);
	check_readback(db, ci);
	db_close(&db);
	zstd_pool_clear();
	rmdir(spool_dir);
	free(admin);
	free(ci);
	printf("%d passed, %d failed\n", passed, failed);
	return failed > 0 ? 1 : 0;
}
