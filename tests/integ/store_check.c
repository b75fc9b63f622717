/*
 * store_check CONNINFO [RESTART_COMMAND]: the store against a real
 * PostgreSQL.
 *
 * Creates a fresh database next to the one CONNINFO names (a keyword
 * conninfo, e.g. from tests/integ/pg.sh) and checks, through the public
 * store API (and plain SQL only to damage a blob): migrations (twice, and
 * two migrators at once), account ids, commits of real pipe results
 * (deduplication across accounts, idempotent re-commits, two messages
 * under one UIDL, a blob of several chunks, a dictionary), items that can
 * never be committed, the known set,
 * trained dictionaries (store/dicts: when they are trained, that a new
 * process adopts the newest, that an older one stays usable),
 * deletion marks, poll records, export byte for byte, verify (and that it
 * catches a blob damaged in SQL, as the store refuses to write one), and
 * the committer thread under many concurrent submitters.  With
 * RESTART_COMMAND (a shell command that stops the server, waits a little
 * and starts it again), also that the committer retries across a database
 * restart and that connections come back.
 *
 * Prints one line per failed check and "N passed, N failed"; exits 1 if
 * anything failed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "ingestd/base/log.h"
#include "ingestd/base/xmalloc.h"
#include "store/commit.h"
#include "store/db.h"
#include "store/dicts.h"
#include "store/known.h"
#include "store/migrations.h"
#include "store/pipe.h"
#include "store/reader.h"
#include "store/spool.h"
#include "store/zstd.h"
#include "tests/integ/check.h"

static char spool_dir[] = "/tmp/store_check.XXXXXX";

/* What was archived, to compare exports with. */
struct sent {
	char account[32];
	char hex[65];
	unsigned char *data;
	size_t len;
};

static struct sent *sent;
static size_t nsent;
static pthread_mutex_t sent_mu = PTHREAD_MUTEX_INITIALIZER;

static void
remember(const char *account, const char *hex, const void *data, size_t len)
{
	size_t i;

	pthread_mutex_lock(&sent_mu);
	for (i = 0; i < nsent; i++)
		if (strcmp(sent[i].account, account) == 0 &&
		    strcmp(sent[i].hex, hex) == 0)
			break;
	if (i == nsent) {
		sent = xreallocarray(sent, nsent + 1, sizeof(*sent));
		snprintf(sent[i].account, sizeof(sent[i].account), "%s",
		    account);
		snprintf(sent[i].hex, sizeof(sent[i].hex), "%s", hex);
		sent[i].data = xmalloc(len);
		memcpy(sent[i].data, data, len);
		sent[i].len = len;
		nsent++;
	}
	pthread_mutex_unlock(&sent_mu);
}

/* A message of about len bytes, different for each seed. */
static unsigned char *
message(unsigned seed, size_t len, size_t *len_r)
{
	unsigned char *p;
	size_t n;
	int h;

	p = xmalloc(len + 128);
	h = snprintf((char *)p, 128, "Subject: message %u\r\nX-Seed: %u\r\n"
	    "\r\n", seed, seed);
	for (n = h; n < len; n++)
		p[n] = "abcdefghij klmnopqrstuvwxyz\r\n"[(n * 7 + seed) % 29];
	*len_r = n > (size_t)h ? n : (size_t)h;
	return p;
}

/* Bytes zstd cannot shrink, so that the compressed blob spans chunks. */
static unsigned char *
noise(size_t len)
{
	unsigned char *p = xmalloc(len);
	uint64_t x = 0x9e3779b97f4a7c15ULL;
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

/* A commit item holding data as the pipe makes it. */
static struct commit_item *
item(const char *account, int64_t account_id, const char *uidl,
    const void *data, size_t len, const struct zdict *dict)
{
	struct pipe_params pp = {
		.spool_dir = spool_dir,
		.spool_mem = 64 * 1024,	/* bigger ones go to a file */
		.size_hint = len,
		.level = 3,
		.dict = dict,
	};
	struct commit_item *it;
	struct pipe *p;
	char hex[65];

	it = xcalloc(1, sizeof(*it));
	it->account_id = account_id;
	it->uidl = uidl ? xstrdup(uidl) : NULL;
	it->list_size = len;
	p = pipe_new(&pp);
	if (pipe_write(p, data, len) == -1 || pipe_finish(p, &it->res) == -1) {
		fprintf(stderr, "pipe: %s\n", pipe_error(p));
		abort();
	}
	pipe_free(&p);
	pipe_hex(it->res.sha256, hex);
	if (account != NULL)
		remember(account, hex, data, len);
	return it;
}

static void
item_free(struct commit_item *it)
{
	spool_free(&it->res.spool);
	free(it->uidl);
	free(it);
}

/*
 * Commits items straight through db, converting them to rows and back as
 * the committer does.
 */
static int
commit_items(struct db *db, struct commit_item *const *items, size_t n)
{
	struct db_commit_row *rows;
	struct commit_item *it;
	size_t i;
	int rc;

	rows = xcalloc(n, sizeof(*rows));
	for (i = 0; i < n; i++) {
		it = items[i];
		rows[i].account_id = it->account_id;
		rows[i].uidl = it->uidl;
		rows[i].list_size = it->list_size;
		memcpy(rows[i].sha256, it->res.sha256, 32);
		memcpy(rows[i].head_sha256, it->res.head_sha256, 32);
		rows[i].size = it->res.size;
		rows[i].stored_size = it->res.stored_size;
		rows[i].dict_id = it->res.dict_id;
		rows[i].spool = it->res.spool;
	}
	rc = db_commit_messages(db, rows, n);
	for (i = 0; i < n; i++) {
		it = items[i];
		it->blob_existed = rows[i].blob_existed;
		it->delivery_existed = rows[i].delivery_existed;
		snprintf(it->error, sizeof(it->error), "%s", rows[i].error);
	}
	free(rows);
	return rc;
}

static int
commit1(struct db *db, struct commit_item *it)
{
	return commit_items(db, &it, 1);
}

static const struct known_entry *
known_sha(const struct known *k, const char *uidl, const unsigned char *sha)
{
	const struct known_entry *e;

	for (e = known_find(k, uidl); e != NULL; e = known_next(e))
		if (memcmp(e->sha256, sha, 32) == 0)
			return e;
	return NULL;
}

struct migrator {
	const char *conninfo;
	int applied;
	int rc;
};

static void *
migrate_thread(void *arg)
{
	struct migrator *m = arg;
	char err[512];
	struct db *db;

	m->rc = -1;
	if ((db = db_connect(m->conninfo, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return NULL;
	}
	m->rc = db_migrate(db, &m->applied);
	if (m->rc == -1)
		fprintf(stderr, "migrate: %s\n", db_error(db));
	db_close(&db);
	return NULL;
}

static void
check_migrations(const char *admin, const char *base, unsigned tag)
{
	struct migrator m[4];
	pthread_t t[4];
	char name[64], err[512], *ci;
	int i, total = 0;

	snprintf(name, sizeof(name), "store_check_%u_race", tag);
	CHECK(db_create_database(admin, name, err, sizeof(err)) == 0);
	/* Creating it again is not an error. */
	CHECK(db_create_database(admin, name, err, sizeof(err)) == 0);
	ci = xasprintf("%s dbname=%s", base, name);
	for (i = 0; i < 4; i++) {
		m[i].conninfo = ci;
		pthread_create(&t[i], NULL, migrate_thread, &m[i]);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK(m[i].rc == 0);
		total += m[i].applied;
	}
	/* Four at once: each migration applied exactly once. */
	CHECK(total == (int)migrations_count);
	free(ci);
}

static void
check_basics(struct db *db, struct db *db2, int64_t *alice_r,
    int64_t *bob_r)
{
	int64_t a1, a2, b1;
	int applied = -1;

	CHECK_OK(db_migrate(db, &applied), db);
	CHECK(applied == (int)migrations_count);
	CHECK_OK(db_migrate(db, &applied), db);
	CHECK(applied == 0);
	CHECK_OK(db_migrate(db2, &applied), db2);
	CHECK(applied == 0);

	CHECK_OK(db_account_id(db, "alice", &a1), db);
	CHECK_OK(db_account_id(db2, "alice", &a2), db2);
	CHECK_OK(db_account_id(db, "bob@example.org", &b1), db);
	CHECK(a1 > 0 && a1 == a2 && b1 > 0 && b1 != a1);
	*alice_r = a1;
	*bob_r = b1;
}

static void
check_commits(struct db *db, int64_t alice, int64_t bob)
{
	struct commit_item *it[6], *again[3], *bad[3];
	unsigned char *m[4];
	size_t len[4];
	struct known *k;
	const struct known_entry *e;
	int i;

	for (i = 0; i < 4; i++)
		m[i] = message(i, 1000 + i * 5000, &len[i]);

	/* Three new messages for alice, one batch. */
	it[0] = item("alice", alice, "u0", m[0], len[0], NULL);
	it[1] = item("alice", alice, "u1", m[1], len[1], NULL);
	it[2] = item("alice", alice, "u2", m[2], len[2], NULL);
	CHECK_OK(commit_items(db, it, 3), db);
	for (i = 0; i < 3; i++)
		CHECK(!it[i]->blob_existed && !it[i]->delivery_existed);

	/* The same bytes in bob's mailbox: one blob, two deliveries. */
	it[3] = item("bob@example.org", bob, "b0", m[0], len[0], NULL);
	CHECK_OK(commit1(db, it[3]), db);
	CHECK(it[3]->blob_existed && !it[3]->delivery_existed);

	/* Re-committing is a no-op. */
	for (i = 0; i < 3; i++)
		again[i] = item(NULL, alice, i == 0 ? "u0" : i == 1 ? "u1" :
		    "u2", m[i], len[i], NULL);
	CHECK_OK(commit_items(db, again, 3), db);
	for (i = 0; i < 3; i++)
		CHECK(again[i]->blob_existed && again[i]->delivery_existed);

	/* Another message under an existing UIDL is kept too; the same
	 * blob twice in one batch is stored once. */
	it[4] = item("alice", alice, "u1", m[3], len[3], NULL);
	it[5] = item("alice", alice, NULL, m[3], len[3], NULL);
	CHECK_OK(commit_items(db, &it[4], 2), db);
	CHECK(!it[4]->blob_existed && !it[4]->delivery_existed);
	CHECK(it[5]->blob_existed && !it[5]->delivery_existed);
	/* A delivery without a UIDL is idempotent too. */
	CHECK_OK(commit1(db, it[5]), db);
	CHECK(it[5]->delivery_existed);

	/* Items that can never be committed are named, and sink nothing
	 * else: the batch is rolled back as a whole. */
	bad[0] = item(NULL, alice, "good", m[2], len[2], NULL);
	bad[1] = item(NULL, alice, "bad-size", m[1], len[1], NULL);
	bad[1]->res.stored_size++;
	bad[2] = item(NULL, alice, "bad-\xff-uidl", m[1], len[1], NULL);
	CHECK(commit_items(db, bad, 3) == -1);
	CHECK(bad[0]->error[0] == '\0');
	CHECK(bad[1]->error[0] != '\0');
	CHECK(bad[2]->error[0] != '\0');
	printf("  rejected as expected: %s\n", bad[1]->error);

	/* What alice's archive holds now. */
	k = known_new();
	CHECK_OK(db_known_load(db, alice, k), db);
	/* u0, u1 (twice), u2; the delivery without a UIDL is not keyed. */
	CHECK(known_count(k) == 4);
	CHECK(known_find(k, "good") == NULL);
	e = known_sha(k, "u1", it[1]->res.sha256);
	CHECK(e != NULL && e->list_size == len[1] && e->size == len[1] &&
	    !e->server_deleted &&
	    memcmp(e->head_sha256, it[1]->res.head_sha256, 32) == 0);
	CHECK(known_sha(k, "u1", it[4]->res.sha256) != NULL);
	known_free(&k);

	/* Marks: u0 deleted by us; u2 found gone; u1 still there. */
	{
		struct db_deleted d = { .uidl = "u0" };
		const char *present[] = { "u0", "u1", "unrelated" };

		memcpy(d.sha256, it[0]->res.sha256, 32);
		CHECK_OK(db_mark_deleted(db, alice, &d, 1), db);
		CHECK_OK(db_mark_deleted(db, alice, &d, 1), db);
		CHECK_OK(db_mark_absent(db, alice, present, 3), db);
	}
	/* Only what may still be on the server is loaded: a UIDL seen
	 * again after its message was deleted is a new message. */
	k = known_new();
	CHECK_OK(db_known_load(db, alice, k), db);
	CHECK(known_sha(k, "u0", it[0]->res.sha256) == NULL);
	CHECK(known_sha(k, "u2", it[2]->res.sha256) == NULL);
	CHECK(known_count(k) == 2);
	CHECK(!known_sha(k, "u1", it[1]->res.sha256)->server_deleted);
	CHECK(!known_sha(k, "u1", it[4]->res.sha256)->server_deleted);
	known_free(&k);
	/* Bob's copy of the same message is his own. */
	k = known_new();
	CHECK_OK(db_known_load(db, bob, k), db);
	CHECK(known_count(k) == 1 &&
	    !known_sha(k, "b0", it[3]->res.sha256)->server_deleted);
	known_free(&k);
	/* An empty server: everything of bob's is gone. */
	CHECK_OK(db_mark_absent(db, bob, NULL, 0), db);
	k = known_new();
	CHECK_OK(db_known_load(db, bob, k), db);
	CHECK(known_count(k) == 0);
	known_free(&k);

	for (i = 0; i < 6; i++)
		item_free(it[i]);
	for (i = 0; i < 3; i++) {
		item_free(again[i]);
		item_free(bad[i]);
	}
	for (i = 0; i < 4; i++)
		free(m[i]);
}

static void
check_polls(struct db *db, int64_t alice)
{
	struct db_poll p = {
		.account_id = alice,
		.started = time(NULL) - 5,
		.finished = time(NULL),
		.outcome = "ok",
		.listed = 4, .fetched = 3, .archived = 3, .deduplicated = 1,
		.deleted = 1, .bytes = 12345,
	};

	CHECK_OK(db_poll_record(db, &p), db);
	p.outcome = "temporary";
	p.error = "connection reset";
	p.finished = 0;
	CHECK_OK(db_poll_record(db, &p), db);
	p.outcome = "nonsense";
	CHECK(db_poll_record(db, &p) == -1);
	printf("  rejected as expected: %s\n", db_error(db));
}

static void
check_big_and_dict(struct db *db, int64_t bob)
{
	struct commit_item *it;
	struct zdict *zd;
	unsigned char *big, *m, *d;
	size_t len, dlen;
	int64_t dict_id;
	void *back;
	size_t backlen;

	/* 3.5 MiB that does not compress: four chunks. */
	big = noise(3 * 1024 * 1024 + 512 * 1024);
	it = item("bob@example.org", bob, "big", big,
	    3 * 1024 * 1024 + 512 * 1024, NULL);
	CHECK(it->res.stored_size > 3 * 1024 * 1024);
	CHECK_OK(commit1(db, it), db);
	item_free(it);
	free(big);

	/* A dictionary: stored, loaded back, used by a blob. */
	d = message(77, 4096, &dlen);
	CHECK_OK(db_dict_store(db, d, dlen, &dict_id), db);
	CHECK(db_dict_load(db, dict_id, &back, &backlen) == 0 &&
	    backlen == dlen && memcmp(back, d, dlen) == 0);
	free(back);
	CHECK(db_dict_load(db, dict_id + 1000, &back, &backlen) == -1);
	zd = zdict_new(dict_id, d, dlen, 3);
	CHECK(zd != NULL);
	m = message(78, 3000, &len);
	it = item("bob@example.org", bob, "dict", m, len, zd);
	CHECK(it->res.dict_id == dict_id);
	CHECK_OK(commit1(db, it), db);
	item_free(it);
	zdict_free(&zd);
	free(m);
	free(d);
}

static int
count_cb(void *arg, const struct db_message *m)
{
	(*(uint64_t *)arg)++;
	return 0;
}

static bool
file_equals(const char *path, const unsigned char *data, size_t len)
{
	unsigned char *buf;
	struct stat st;
	bool eq;
	int fd;

	if ((fd = open(path, O_RDONLY)) == -1)
		return false;
	if (fstat(fd, &st) == -1 || (size_t)st.st_size != len) {
		close(fd);
		return false;
	}
	buf = xmalloc(len + 1);
	eq = read(fd, buf, len + 1) == (ssize_t)len &&
	    memcmp(buf, data, len) == 0;
	free(buf);
	close(fd);
	return eq;
}

static size_t
files_in(const char *dir)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Entries of dir other than . and .., a temporary file left included. */
static size_t
entries_in(const char *dir)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	if ((d = opendir(dir)) == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		n += strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0;
	closedir(d);
	return n;
}

/* reader_outdir_open() and reader_export() as `ingestd export` runs them;
 * -2 if the directory was refused. */
static int
export_into(struct db *db, const char *out, const char *account,
    uint64_t *count_r, uint64_t *bad_r, char *err, size_t errlen)
{
	int fd, rc;

	*count_r = *bad_r = 0;
	if ((fd = reader_outdir_open(out, err, errlen)) == -1)
		return -2;
	rc = reader_export(db, fd, out, account, count_r, bad_r, err, errlen);
	close(fd);
	return rc;
}

static void
check_export(struct db *db, const char *out)
{
	char err[512], *path;
	uint64_t count, ok, bad, n;
	size_t i, files;

	n = 0;
	CHECK_OK(db_each_message(db, NULL, count_cb, &n), db);
	CHECK(n == nsent);
	n = 0;
	CHECK_OK(db_each_message(db, "alice", count_cb, &n), db);
	CHECK(n == 4);
	CHECK(db_each_message(db, "nobody", count_cb, &n) == -1);

	CHECK(export_into(db, out, NULL, &count, &bad, err,
	    sizeof(err)) == 0);
	CHECK(count == nsent && bad == 0);
	files = 0;
	for (i = 0; i < nsent; i++) {
		path = xasprintf("%s/%s/%s.eml", out, sent[i].account,
		    sent[i].hex);
		if (!file_equals(path, sent[i].data, sent[i].len)) {
			fprintf(stderr, "export: %s differs\n", path);
			CHECK(false);
		} else
			passed++;
		free(path);
	}
	path = xasprintf("%s/alice", out);
	files += files_in(path);
	CHECK(entries_in(path) == files_in(path));
	free(path);
	path = xasprintf("%s/bob@example.org", out);
	files += files_in(path);
	CHECK(entries_in(path) == files_in(path));
	free(path);
	CHECK(files == nsent);

	/* Again into the same directory: refused, nothing replaced. */
	CHECK(export_into(db, out, "alice", &count, &bad, err,
	    sizeof(err)) == -1);
	CHECK(count == 0 && strstr(err, "already exists") != NULL);
	printf("  export again refused as expected: %s\n", err);
	path = xasprintf("%s/%s/%s.eml", out, sent[0].account, sent[0].hex);
	CHECK(file_equals(path, sent[0].data, sent[0].len));
	free(path);

	path = xasprintf("%s/alice-only", out);
	CHECK(export_into(db, path, "alice", &count, &bad, err,
	    sizeof(err)) == 0);
	CHECK(count == 4 && bad == 0);
	CHECK(entries_in(path) == 1);
	free(path);

	CHECK(reader_verify(db, NULL, &ok, &bad, err, sizeof(err)) == 0);
	n = 0;
	db_each_blob(db, count_cb, &n);
	CHECK(ok == n && bad == 0);
	CHECK(reader_verify(db, "alice", &ok, &bad, err, sizeof(err)) == 0);
	CHECK(ok == 4 && bad == 0);
}

/* Runs sql on a connection of its own, as an operator would. */
static bool
sql_exec(const char *conninfo, const char *sql)
{
	PGconn *c = PQconnectdb(conninfo);
	PGresult *res;
	bool ok = false;

	if (PQstatus(c) != CONNECTION_OK)
		fprintf(stderr, "store_check: %s", PQerrorMessage(c));
	else {
		res = PQexec(c, sql);
		ok = PQresultStatus(res) == PGRES_COMMAND_OK;
		if (!ok)
			fprintf(stderr, "store_check: %s: %s", sql,
			    PQresultErrorMessage(res));
		PQclear(res);
	}
	PQfinish(c);
	return ok;
}

/*
 * A blob stored under the wrong hash: verify and export must notice.  The
 * store itself refuses to write one (its read-back decompresses what it
 * sends and checks the digest), so the damage is done in SQL, as a bad
 * restore or a faulty disk under PostgreSQL would.
 */
static void
check_damage(struct db *db, const char *conninfo, const char *out)
{
	struct commit_item *it;
	unsigned char *m;
	char err[512], good[65], bad_hex[65], *sql, *path;
	uint64_t ok, bad, count;
	int64_t id;
	size_t len;

	CHECK_OK(db_account_id(db, "mallory", &id), db);
	m = message(666, 2000, &len);
	it = item(NULL, id, "forged", m, len, NULL);
	pipe_hex(it->res.sha256, good);
	it->res.sha256[0] ^= 1;
	pipe_hex(it->res.sha256, bad_hex);
	CHECK(commit1(db, it) == -1);
	CHECK(strcmp(it->error, "read-back: SHA-256 of the decoded bytes "
	    "differs from the received message") == 0);
	printf("  rejected as expected: %s\n", it->error);

	it->res.sha256[0] ^= 1;
	CHECK_OK(commit1(db, it), db);
	sql = xasprintf("BEGIN;"
	    "INSERT INTO ingestd.blob (sha256, size, stored_size, dict_id,"
	    " chunks) SELECT '\\x%s', size, stored_size, dict_id, chunks"
	    " FROM ingestd.blob WHERE sha256 = '\\x%s';"
	    "INSERT INTO ingestd.blob_chunk (sha256, seq, data)"
	    " SELECT '\\x%s', seq, data FROM ingestd.blob_chunk"
	    " WHERE sha256 = '\\x%s';"
	    "UPDATE ingestd.delivery SET sha256 = '\\x%s'"
	    " WHERE account_id = %" PRId64 " AND uidl = 'forged';"
	    "COMMIT", bad_hex, good, bad_hex, good, bad_hex, id);
	CHECK(sql_exec(conninfo, sql));
	free(sql);
	CHECK(reader_verify(db, "mallory", &ok, &bad, err, sizeof(err)) == 0);
	CHECK(ok == 0 && bad == 1);
	CHECK(reader_verify(db, NULL, &ok, &bad, err, sizeof(err)) == 0);
	CHECK(bad == 1 && ok > 0);
	/* Reported and skipped: the export itself finishes. */
	CHECK(export_into(db, out, "mallory", &count, &bad, err,
	    sizeof(err)) == 0);
	CHECK(count == 0 && bad == 1);
	path = xasprintf("%s/mallory", out);
	CHECK(entries_in(path) == 0);
	free(path);
	item_free(it);
	free(m);
}

/* The committer under load. */
#define SUBMITTERS	8
#define PER_SUBMITTER	60

struct waiter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done, durable, failed, on_committer;
	pthread_t submitter_threads[SUBMITTERS];
};

static struct waiter w = {
	PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, { 0 }
};

static void
done_cb(struct commit_item *it, bool durable)
{
	int i;
	bool foreign = true;

	pthread_mutex_lock(&w.mu);
	for (i = 0; i < SUBMITTERS; i++)
		if (pthread_equal(pthread_self(), w.submitter_threads[i]))
			foreign = false;
	w.on_committer += foreign;
	w.done++;
	if (durable)
		w.durable++;
	else
		w.failed++;
	/* The spool is gone before done() fires. */
	if (it->res.spool != NULL)
		w.failed += 1000;
	pthread_cond_broadcast(&w.cv);
	pthread_mutex_unlock(&w.mu);
	free(it->uidl);
	free(it);
}

struct submitter {
	struct committer *cm;
	int64_t account_id;
	int index;
};

static void *
submit_thread(void *arg)
{
	struct submitter *s = arg;
	struct commit_item *it;
	unsigned char *m;
	char uidl[32];
	size_t len;
	int i;

	for (i = 0; i < PER_SUBMITTER; i++) {
		/* Every third message is the same in every mailbox. */
		if (i % 3 == 0)
			m = message(1000 + i, 800 + i * 10, &len);
		else
			m = message(2000 + s->index * 1000 + i, 500 + i * 37,
			    &len);
		snprintf(uidl, sizeof(uidl), "c%d", i);
		it = item(s->index % 2 ? "carol" : "dave", s->account_id,
		    uidl, m, len, NULL);
		it->done = done_cb;
		committer_submit(s->cm, it);
		free(m);
		if (i % 10 == 0)
			usleep(1000);
	}
	return NULL;
}

static void
check_committer(struct db *db, const char *conninfo)
{
	struct committer_params cp = {
		.conninfo = conninfo,
		.batch_max = 16,
		.retry_seconds = 5,
	};
	struct submitter s[SUBMITTERS];
	struct committer *cm;
	struct commit_item *bad;
	unsigned char *m;
	char err[512];
	int64_t carol, dave;
	size_t len;
	uint64_t n;
	int i, total = SUBMITTERS * PER_SUBMITTER;

	CHECK_OK(db_account_id(db, "carol", &carol), db);
	CHECK_OK(db_account_id(db, "dave", &dave), db);
	cp.conninfo = "host=/nonexistent-dir dbname=x";
	CHECK(committer_start(&cp, err, sizeof(err)) == NULL);
	printf("  refused as expected: %s\n", err);
	cp.conninfo = conninfo;
	cm = committer_start(&cp, err, sizeof(err));
	CHECK(cm != NULL);
	if (cm == NULL) {
		fprintf(stderr, "committer: %s\n", err);
		return;
	}
	/* Under the lock: done_cb reads the thread ids. */
	pthread_mutex_lock(&w.mu);
	for (i = 0; i < SUBMITTERS; i++) {
		s[i].cm = cm;
		s[i].account_id = i % 2 ? carol : dave;
		s[i].index = i;
		pthread_create(&w.submitter_threads[i], NULL, submit_thread,
		    &s[i]);
	}
	pthread_mutex_unlock(&w.mu);
	/* One that cannot be committed fails alone. */
	m = message(4242, 3000, &len);
	bad = item(NULL, carol, "broken", m, len, NULL);
	bad->res.stored_size += 7;
	bad->done = done_cb;
	committer_submit(cm, bad);
	free(m);
	for (i = 0; i < SUBMITTERS; i++)
		pthread_join(w.submitter_threads[i], NULL);
	pthread_mutex_lock(&w.mu);
	while (w.done < total + 1)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	committer_stop(&cm);
	CHECK(cm == NULL);
	CHECK(w.durable == total);
	CHECK(w.failed == 1);
	CHECK(w.on_committer == total + 1);

	/* Carol and dave each got PER_SUBMITTER distinct UIDLs from four
	 * submitters, the shared ones stored once. */
	n = 0;
	CHECK_OK(db_each_message(db, "carol", count_cb, &n), db);
	CHECK(n == (uint64_t)(PER_SUBMITTER / 3 + (PER_SUBMITTER -
	    PER_SUBMITTER / 3) * SUBMITTERS / 2));

	/* Stopping commits what is still queued. */
	cm = committer_start(&cp, err, sizeof(err));
	CHECK(cm != NULL);
	if (cm == NULL)
		return;
	w.done = w.durable = w.failed = 0;
	for (i = 0; i < 20; i++) {
		struct commit_item *it;

		m = message(5000 + i, 700, &len);
		it = item("dave", dave, "late", m, len, NULL);
		it->done = done_cb;
		committer_submit(cm, it);
		free(m);
	}
	committer_stop(&cm);
	CHECK(w.done == 20 && w.durable == 20);
}

/* The connection survives a restart of its server session: a call after
 * the backend went away reconnects by itself. */
static void
check_reconnect(struct db *db, int64_t alice)
{
	int64_t id;

	CHECK_OK(db_reconnect(db), db);
	CHECK(db_connected(db));
	CHECK_OK(db_account_id(db, "alice", &id), db);
	CHECK(id == alice);
}

static void *
restart_thread(void *arg)
{
	const char *cmd = arg;
	int rc;

	rc = system(cmd);
	if (rc != 0)
		fprintf(stderr, "restart command exited %d\n", rc);
	return NULL;
}

/*
 * The database goes away under a running committer (restart_cmd stops
 * the server, waits and starts it again): everything submitted meanwhile
 * is retried until it is durable, and the main connection reconnects on
 * its next call.
 */
static void
check_restart(struct db *db, const char *conninfo, const char *restart_cmd,
    int64_t alice)
{
	struct committer_params cp = {
		.conninfo = conninfo,
		.batch_max = 8,
		.retry_seconds = 60,
	};
	struct commit_item *it;
	struct committer *cm;
	struct known *k;
	unsigned char *m;
	pthread_t t;
	char err[512], uidl[32];
	int64_t id;
	size_t len;
	int i, n = 40;

	if ((cm = committer_start(&cp, err, sizeof(err))) == NULL) {
		fprintf(stderr, "committer: %s\n", err);
		CHECK(false);
		return;
	}
	w.done = w.durable = w.failed = 0;
	pthread_create(&t, NULL, restart_thread, (void *)restart_cmd);
	for (i = 0; i < n; i++) {
		m = message(9000 + i, 1500, &len);
		snprintf(uidl, sizeof(uidl), "r%d", i);
		it = item("alice", alice, uidl, m, len, NULL);
		it->done = done_cb;
		committer_submit(cm, it);
		free(m);
		usleep(100 * 1000);
	}
	pthread_join(t, NULL);
	pthread_mutex_lock(&w.mu);
	while (w.done < n)
		pthread_cond_wait(&w.cv, &w.mu);
	pthread_mutex_unlock(&w.mu);
	committer_stop(&cm);
	CHECK(w.durable == n && w.failed == 0);

	/* db's connection died with the server: the next call reconnects
	 * by itself, whichever call it is. */
	k = known_new();
	CHECK_OK(db_known_load(db, alice, k), db);
	CHECK(known_find(k, "r0") != NULL && known_find(k, "r39") != NULL);
	known_free(&k);
	CHECK_OK(db_account_id(db, "alice", &id), db);
}

/* Mail-like text: headers, then words from a small vocabulary. */
static unsigned char *
mailish(unsigned seed, size_t len, size_t *len_r)
{
	static const char *const words[] = {
		"the", "invoice", "meeting", "please", "attached", "regards",
		"quarterly", "report", "customer", "order", "delivery", "of",
		"and", "to", "review", "budget", "thanks", "schedule", "for",
		"contract", "renewal", "account", "support", "ticket",
	};
	unsigned char *p;
	uint32_t x = seed * 2654435761u + 1;
	size_t n;

	p = xmalloc(len + 256);
	n = snprintf((char *)p, 256, "Received: from mx%u.example.net\r\n"
	    "From: Alice <alice@example.com>\r\nTo: Bob <bob@example.org>"
	    "\r\nSubject: message %u\r\nMessage-ID: <%u@example.com>\r\n"
	    "MIME-Version: 1.0\r\nContent-Type: text/plain; "
	    "charset=us-ascii\r\n\r\n", seed % 7, seed, seed);
	while (n < len) {
		const char *word;

		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		word = words[x % (sizeof(words) / sizeof(words[0]))];
		n += snprintf((char *)p + n, len + 256 - n, "%s%s", word,
		    x % 11 == 0 ? "\r\n" : " ");
	}
	*len_r = n;
	return p;
}

/* Commits a mail-like message compressed with dict; its dict_id. */
static int64_t
commit_mailish(struct db *db, int64_t account, unsigned seed, size_t len,
    const struct zdict *dict)
{
	struct commit_item *it;
	unsigned char *m;
	char uidl[32];
	int64_t id;

	m = mailish(seed, len, &len);
	snprintf(uidl, sizeof(uidl), "m%u", seed);
	it = item(NULL, account, uidl, m, len, dict);
	id = it->res.dict_id;
	CHECK_OK(commit1(db, it), db);
	item_free(it);
	free(m);
	return id;
}

/*
 * store/dicts in a database of its own: nothing to train on at first,
 * training once enough small plain blobs exist, later blobs compressed
 * with the result, a second process adopting it, an older dictionary
 * still usable after a newer one, and everything reading back.
 */
static void
check_dicts(const char *admin, const char *base, unsigned tag)
{
	struct dicts *d = NULL, *d2 = NULL, *d3 = NULL;
	const struct zdict *first;
	struct db *db = NULL, *db2 = NULL;
	char name[64], err[512], *ci;
	int64_t acct, x, y, latest;
	uint64_t ok, bad, n;
	void *p;
	size_t len;
	unsigned i;
	int applied;

	snprintf(name, sizeof(name), "store_check_%u_dicts", tag);
	CHECK(db_create_database(admin, name, err, sizeof(err)) == 0);
	ci = xasprintf("%s dbname=%s", base, name);
	CHECK((db = db_connect(ci, err, sizeof(err))) != NULL);
	CHECK((db2 = db_connect(ci, err, sizeof(err))) != NULL);
	if (db == NULL || db2 == NULL)
		goto out;
	CHECK_OK(db_migrate(db, &applied), db);
	CHECK_OK(db_account_id(db, "carol", &acct), db);

	d = dicts_new(db, 3, 20);
	CHECK(dicts_load_latest(d) == 0 && dicts_current(d) == NULL);
	CHECK(dicts_train(d) == -1 && strstr(dicts_error(d), "0 messages"));
	CHECK(dicts_archived(d, 5) == 0 && dicts_current(d) == NULL);

	/* 19 small ones and a large one: one short of the 20 needed. */
	for (i = 0; i < 19; i++)
		commit_mailish(db, acct, 100 + i, 2000 + 300 * i, NULL);
	commit_mailish(db, acct, 99, 100 * 1024, NULL);
	CHECK_OK(db_sample_count(db, DICTS_SAMPLE_MAX, 1000, &n), db);
	CHECK(n == 19);
	CHECK(dicts_archived(d, 20) == 0 && dicts_current(d) == NULL);
	for (i = 19; i < 40; i++)
		commit_mailish(db, acct, 100 + i, 2000 + 300 * i, NULL);
	CHECK_OK(db_sample_count(db, DICTS_SAMPLE_MAX, 25, &n), db);
	CHECK(n == 25);		/* the count stops at its limit */
	CHECK(dicts_archived(d, 21) == 1 && (first = dicts_current(d)) !=
	    NULL);
	if (first == NULL)
		goto out;
	x = zdict_id(first);
	CHECK_OK(db_dict_latest(db, &latest, &p, &len), db);
	CHECK(latest == x && len > 0 && len <= DICTS_CAP);
	free(p);
	/* With a dictionary current, more plain mail trains nothing. */
	CHECK(dicts_archived(d, 1000) == 0 && dicts_current(d) == first);
	for (i = 0; i < 5; i++)
		CHECK(commit_mailish(db, acct, 200 + i, 3000, first) == x);

	/* Another process starts with the newest dictionary. */
	d2 = dicts_new(db2, 3, 20);
	CHECK(dicts_load_latest(d2) == 0 && dicts_current(d2) != NULL &&
	    zdict_id(dicts_current(d2)) == x);

	/* A newer one: the older stays usable for sessions in flight. */
	CHECK(dicts_train(d) == 0 && dicts_current(d) != first);
	y = zdict_id(dicts_current(d));
	CHECK(y > x);
	CHECK(commit_mailish(db, acct, 300, 3000, first) == x);
	CHECK(commit_mailish(db, acct, 301, 3000, dicts_current(d)) == y);

	/* One with none yet adopts what another stored, training none. */
	d3 = dicts_new(db2, 3, 20);
	CHECK(dicts_archived(d3, 1) == 1 && dicts_current(d3) != NULL &&
	    zdict_id(dicts_current(d3)) == y);
	CHECK_OK(db_dict_latest(db, &latest, &p, &len), db);
	CHECK(latest == y);
	free(p);

	/* Every blob reads back, whichever dictionary wrote it. */
	CHECK(reader_verify(db, NULL, &ok, &bad, err, sizeof(err)) == 0);
	CHECK(ok == 48 && bad == 0);
out:
	dicts_free(&d);
	dicts_free(&d2);
	dicts_free(&d3);
	CHECK(d == NULL);
	db_close(&db);
	db_close(&db2);
	free(ci);
}

int
main(int argc, char **argv)
{
	struct db *db = NULL, *db2 = NULL;
	char err[512], name[64], out[] = "/tmp/store_check_out.XXXXXX";
	char *admin, *ci;
	int64_t alice = 0, bob = 0;
	unsigned tag;

	if (argc != 2 && argc != 3) {
		fprintf(stderr, "usage: store_check CONNINFO "
		    "[RESTART_COMMAND]\n");
		return 2;
	}
	log_init(getenv("STORE_CHECK_DEBUG") ? 1 : 0);
	if (mkdtemp(spool_dir) == NULL || mkdtemp(out) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	tag = (unsigned)getpid() ^ (unsigned)time(NULL);
	admin = xasprintf("%s dbname=postgres", argv[1]);
	snprintf(name, sizeof(name), "store_check_%u", tag);
	if (db_create_database(admin, name, err, sizeof(err)) == -1) {
		fprintf(stderr, "store_check: %s\n", err);
		return 2;
	}
	ci = xasprintf("%s dbname=%s", argv[1], name);
	printf("store_check: database %s\n", name);

	CHECK((db = db_connect(ci, err, sizeof(err))) != NULL);
	CHECK((db2 = db_connect(ci, err, sizeof(err))) != NULL);
	if (db == NULL || db2 == NULL) {
		fprintf(stderr, "store_check: %s\n", err);
		return 1;
	}
	check_migrations(admin, argv[1], tag);
	check_dicts(admin, argv[1], tag);
	check_basics(db, db2, &alice, &bob);
	check_commits(db, alice, bob);
	check_polls(db, alice);
	check_big_and_dict(db, bob);
	check_export(db, out);
	check_committer(db, ci);
	check_reconnect(db, alice);
	if (argc == 3) {
		/* Leave db idle across the restart, as a scheduler's is. */
		check_restart(db, ci, argv[2], alice);
	}
	/* Last: it leaves a damaged blob behind on purpose. */
	check_damage(db, ci, out);

	db_close(&db);
	db_close(&db2);
	free(admin);
	free(ci);
	printf("%d passed, %d failed\n", passed, failed);
	return failed > 0 ? 1 : 0;
}
