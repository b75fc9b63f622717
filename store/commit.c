/*
 * The committer thread (see commit.h).
 *
 * Group commit: the thread takes whatever is queued, up to batch_max, into
 * one transaction.  While that COMMIT waits for its fsync, new items queue
 * up and go into the next one, so under load batches grow by themselves and
 * one fsync serves many messages; when idle, a lone message is committed
 * at once.
 *
 * A failed batch is retried with backoff, on a fresh connection, until
 * retry_seconds have passed since its oldest item was submitted: a
 * database restart, or a statement timed out on a lock held elsewhere,
 * costs the sessions some waiting, not their messages, and a long outage
 * answers every item within that time.
 *
 * Waiting only helps with what time can mend.  An item that can never be
 * committed is failed alone at once and the rest go again: db names such
 * items when it can (a spool unreadable, bytes that do not read back).
 * When the server refuses a value (SQLSTATE class 22 or 23), or a row
 * past one of its limits (class 54: an index row too big), and cannot
 * say whose, the batch is committed in halves, and halves of the half
 * that fails, until the item at fault is alone: a few more transactions
 * instead of a whole batch retried for retry_seconds and then lost.
 */
#include "store/commit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingestd/base/log.h"
#include "ingestd/base/xmalloc.h"
#include "store/db.h"
#include "store/mime/meta.h"
#include "store/spool.h"

#define COMMIT_BATCH_DEFAULT	64
#define COMMIT_BACKOFF_MIN_MS	250
#define COMMIT_BACKOFF_MAX_MS	10000

struct committer {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;	/* on CLOCK_MONOTONIC */
	struct commit_item *head, **tailp;
	bool stopping;
	struct timespec stop_at;
	struct db *db;		/* the thread's alone once it runs */
	unsigned batch_max;
	unsigned retry_seconds;
};

static void
committer_now(struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
}

static void
committer_add_ms(struct timespec *ts, long ms)
{
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static int
committer_cmp(const struct timespec *a, const struct timespec *b)
{
	if (a->tv_sec != b->tv_sec)
		return a->tv_sec < b->tv_sec ? -1 : 1;
	if (a->tv_nsec != b->tv_nsec)
		return a->tv_nsec < b->tv_nsec ? -1 : 1;
	return 0;
}

/*
 * When retrying must end: retry_seconds after the oldest item was
 * submitted, so that during a long outage the items queued behind a failing
 * batch do not each wait a whole retry period more; and once stopping, no
 * later than retry_seconds after the stop began.  Called with cm->mu held.
 */
static void
committer_deadline(struct committer *cm, const struct timespec *first,
    struct timespec *deadline)
{
	struct timespec stop;

	*deadline = *first;
	deadline->tv_sec += cm->retry_seconds;
	if (cm->stopping) {
		stop = cm->stop_at;
		stop.tv_sec += cm->retry_seconds;
		if (committer_cmp(&stop, deadline) < 0)
			*deadline = stop;
	}
}

/* Hands an item back: its spool is freed first, as commit.h promises. */
static void
committer_release(struct commit_item *it, bool durable)
{
	spool_free(&it->res.spool);
	mime_meta_free(&it->res.meta);
	it->done(it, durable);
}

/*
 * Sleeps until wake or the deadline, whichever is first.  Returns whether
 * the deadline has passed.
 */
static bool
committer_sleep(struct committer *cm, const struct timespec *first,
    struct timespec wake)
{
	struct timespec now, deadline;
	bool expired;

	pthread_mutex_lock(&cm->mu);
	for (;;) {
		/* A stop while asleep may bring the deadline forward. */
		committer_deadline(cm, first, &deadline);
		committer_now(&now);
		expired = committer_cmp(&now, &deadline) >= 0;
		if (expired || committer_cmp(&now, &wake) >= 0)
			break;
		(void)pthread_cond_timedwait(&cm->cv, &cm->mu,
		    committer_cmp(&deadline, &wake) < 0 ? &deadline : &wake);
	}
	pthread_mutex_unlock(&cm->mu);
	return expired;
}

/*
 * The row db writes for an item, the uidl and spool borrowed.  db takes
 * rows, not items, so that it does not depend on the committer.
 */
static void
committer_row(const struct commit_item *it, struct db_commit_row *row)
{
	memset(row, 0, sizeof(*row));
	row->account_id = it->account_id;
	row->uidl = it->uidl;
	row->list_size = it->list_size;
	memcpy(row->sha256, it->res.sha256, sizeof(row->sha256));
	memcpy(row->head_sha256, it->res.head_sha256,
	    sizeof(row->head_sha256));
	row->size = it->res.size;
	row->stored_size = it->res.stored_size;
	row->dict_id = it->res.dict_id;
	row->spool = it->res.spool;
	row->meta = it->index_refused ? NULL : it->res.meta;
	row->index_refused = it->index_refused;
}

static void committer_batch(struct committer *cm,
    struct commit_item **batch, struct db_commit_row *rows, size_t n);

/*
 * The server refused a value of the batch and db could not say whose:
 * the same transaction would fail the same way however long it is
 * retried.  An item alone is the one at fault and fails now, with the
 * server's reason; a larger batch is committed as two halves, each
 * retried, or split again, on its own.  The depth is log2(batch_max).
 */
static void
committer_split(struct committer *cm, struct commit_item **batch,
    struct db_commit_row *rows, size_t n)
{
	char hex[65];
	size_t half;

	if (n == 1 && batch[0]->res.meta != NULL && !batch[0]->index_refused) {
		/*
		 * The index rows may be what the server refused (a limit of
		 * text search, a parser's mistake): the message goes again
		 * with a row that says so, which a later reindex may redo.
		 * Its blob and delivery are what must not be lost.
		 */
		pipe_hex(batch[0]->res.sha256, hex);
		log_warnx("committer: message %s: %s (SQLSTATE %s); storing it "
		    "without its index rows", hex,
		    db_error(cm->db), db_sqlstate(cm->db));
		batch[0]->index_refused = true;
		committer_batch(cm, batch, rows, 1);
		return;
	}
	if (n == 1) {
		snprintf(batch[0]->error, sizeof(batch[0]->error), "%s "
		    "(SQLSTATE %s)", db_error(cm->db), db_sqlstate(cm->db));
		log_warnx("committer: message not archived: %s",
		    batch[0]->error);
		committer_release(batch[0], false);
		return;
	}
	log_info("committer: %zu messages: %s (SQLSTATE %s); committing them "
	    "in halves to find the message at fault", n, db_error(cm->db),
	    db_sqlstate(cm->db));
	half = n / 2;
	committer_batch(cm, batch, rows, half);
	committer_batch(cm, batch + half, rows + half, n - half);
}

/*
 * rows has room for n: the batch as db rows, built again for each attempt
 * because items at fault drop out between attempts.
 */
static void
committer_batch(struct committer *cm, struct commit_item **batch,
    struct db_commit_row *rows, size_t n)
{
	struct timespec first, wake;
	long backoff = COMMIT_BACKOFF_MIN_MS;
	size_t i, kept;

	/* The queue is FIFO: the first item is the oldest. */
	first = batch[0]->queued_at;
	for (;;) {
		for (i = 0; i < n; i++) {
			batch[i]->error[0] = '\0';
			committer_row(batch[i], &rows[i]);
		}
		if (db_commit_messages(cm->db, rows, n) == 0) {
			log_debug("committer: %zu message%s durable", n,
			    n == 1 ? "" : "s");
			for (i = 0; i < n; i++) {
				batch[i]->blob_existed = rows[i].blob_existed;
				batch[i]->delivery_existed =
				    rows[i].delivery_existed;
				committer_release(batch[i], true);
			}
			return;
		}
		/* Items at fault fail alone; the rest go again at once. */
		for (i = kept = 0; i < n; i++) {
			if (rows[i].error[0] == '\0') {
				batch[kept++] = batch[i];
				continue;
			}
			snprintf(batch[i]->error, sizeof(batch[i]->error), "%s",
			    rows[i].error);
			log_warnx("committer: message not archived: %s",
			    batch[i]->error);
			committer_release(batch[i], false);
		}
		if (kept == 0)
			return;
		if (kept < n) {
			n = kept;
			first = batch[0]->queued_at;
			continue;
		}
		if (db_error_data(cm->db)) {
			committer_split(cm, batch, rows, n);
			return;
		}
		committer_now(&wake);
		committer_add_ms(&wake, backoff);
		if (committer_sleep(cm, &first, wake))
			break;
		log_warnx("committer: %zu message%s: %s; retrying", n,
		    n == 1 ? "" : "s", db_error(cm->db));
		backoff = backoff * 2 < COMMIT_BACKOFF_MAX_MS ? backoff * 2 :
		    COMMIT_BACKOFF_MAX_MS;
		/*
		 * A fresh connection: whatever broke (a restarted server, a
		 * stale session) is left behind.  If this fails, the next
		 * attempt tries again and reports why.
		 */
		(void)db_reconnect(cm->db);
	}
	log_warnx("committer: %zu message%s not archived, retried for %u s: "
	    "%s", n, n == 1 ? "" : "s", cm->retry_seconds, db_error(cm->db));
	for (i = 0; i < n; i++) {
		snprintf(batch[i]->error, sizeof(batch[i]->error), "%s",
		    db_error(cm->db));
		committer_release(batch[i], false);
	}
}

static void *
committer_main(void *arg)
{
	struct committer *cm = arg;
	struct commit_item **batch;
	struct db_commit_row *rows;
	size_t n;

	batch = xcalloc(cm->batch_max, sizeof(*batch));
	rows = xcalloc(cm->batch_max, sizeof(*rows));
	for (;;) {
		pthread_mutex_lock(&cm->mu);
		while (cm->head == NULL && !cm->stopping)
			pthread_cond_wait(&cm->cv, &cm->mu);
		if (cm->head == NULL) {
			/* Stopping, and everything queued is answered. */
			pthread_mutex_unlock(&cm->mu);
			break;
		}
		for (n = 0; n < cm->batch_max && cm->head != NULL; n++) {
			batch[n] = cm->head;
			cm->head = batch[n]->next;
			batch[n]->next = NULL;
		}
		if (cm->head == NULL)
			cm->tailp = &cm->head;
		pthread_mutex_unlock(&cm->mu);
		committer_batch(cm, batch, rows, n);
	}
	free(batch); batch = NULL;
	free(rows); rows = NULL;
	return NULL;
}

struct committer *
committer_start(const struct committer_params *params, char *err,
    size_t errlen)
{
	struct committer *cm;
	pthread_condattr_t ca;
	int e;

	cm = xcalloc(1, sizeof(*cm));
	cm->tailp = &cm->head;
	cm->batch_max = params->batch_max > 0 ? params->batch_max :
	    COMMIT_BATCH_DEFAULT;
	cm->retry_seconds = params->retry_seconds;
	if ((cm->db = db_connect(params->conninfo, err, errlen)) == NULL) {
		free(cm);
		return NULL;
	}
	if ((params->statement_timeout > 0 || params->lock_timeout > 0) &&
	    db_set_timeouts(cm->db, params->statement_timeout > 0 ?
	    params->statement_timeout : DB_STATEMENT_TIMEOUT,
	    params->lock_timeout > 0 ? params->lock_timeout :
	    DB_LOCK_TIMEOUT) == -1) {
		snprintf(err, errlen, "%s", db_error(cm->db));
		db_close(&cm->db);
		free(cm);
		return NULL;
	}
	pthread_mutex_init(&cm->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&cm->cv, &ca);
	pthread_condattr_destroy(&ca);
	if ((e = pthread_create(&cm->thread, NULL, committer_main, cm)) != 0) {
		snprintf(err, errlen, "committer thread: %s", strerror(e));
		pthread_cond_destroy(&cm->cv);
		pthread_mutex_destroy(&cm->mu);
		db_close(&cm->db);
		free(cm);
		return NULL;
	}
	return cm;
}

void
committer_submit(struct committer *cm, struct commit_item *it)
{
	it->next = NULL;
	it->index_refused = false;
	committer_now(&it->queued_at);
	pthread_mutex_lock(&cm->mu);
	ASSERT(!cm->stopping);
	*cm->tailp = it;
	cm->tailp = &it->next;
	pthread_cond_broadcast(&cm->cv);
	pthread_mutex_unlock(&cm->mu);
}

void
committer_stop(struct committer **cmp)
{
	struct committer *cm = *cmp;

	if (cm == NULL)
		return;
	pthread_mutex_lock(&cm->mu);
	cm->stopping = true;
	committer_now(&cm->stop_at);
	pthread_cond_broadcast(&cm->cv);
	pthread_mutex_unlock(&cm->mu);
	pthread_join(cm->thread, NULL);
	pthread_cond_destroy(&cm->cv);
	pthread_mutex_destroy(&cm->mu);
	db_close(&cm->db);
	free(cm); *cmp = NULL;
}
