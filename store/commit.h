/*
 * The committer: one thread with its own database connection that batches
 * finished messages from every session into one transaction (group commit),
 * so one fsync serves many messages.  A session learns that its message is
 * durable only when COMMIT has returned; only then may it send DELE.
 *
 * One message's fault never fails another: a message that cannot be
 * stored (its spool unreadable, its bytes not reading back as received, a
 * value PostgreSQL refuses) fails alone and at once, and the messages
 * batched with it are committed without it.  Its index never costs a
 * message its archiving: index rows the server refuses are replaced by a
 * row that says so (flag index_refused), and the message is stored.
 */
#ifndef STORE_COMMIT_H
#define STORE_COMMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "store/pipe.h"

struct commit_item {
	int64_t account_id;
	char *uidl;		/* NULL if the server has no UIDL */
	uint64_t list_size;
	struct pipe_result res;	/* res.spool is released by the committer */
	/*
	 * Called once, on the committer thread, after COMMIT returned
	 * (durable) or the batch failed for good (!durable, error set).  The
	 * item belongs to the submitter again from then on.
	 */
	void (*done)(struct commit_item *it, bool durable);
	void *arg;
	char error[256];
	/* Set by the committer when durable: the blob was already stored
	 * (deduplicated by content) / the delivery row already existed.
	 * After a COMMIT whose outcome was lost and that is retried, either
	 * may say true for rows this item itself stored. */
	bool blob_existed;
	bool delivery_existed;
	/* Set by the committer: the server refused res.meta's index rows,
	 * and the message was stored with a row saying so instead. */
	bool index_refused;
	struct commit_item *next;	/* the committer's queue */
	struct timespec queued_at;	/* the committer's: when submitted */
};

struct committer_params {
	const char *conninfo;
	unsigned batch_max;	/* messages per transaction (0: 64) */
	/*
	 * How long a failing item is retried, counted from its submission:
	 * every item is answered within about this long (plus one attempt,
	 * which a statement timeout bounds), even through a long database
	 * outage (0: one attempt).
	 */
	unsigned retry_seconds;
	/*
	 * The session's statement_timeout and lock_timeout in seconds (0:
	 * DB_STATEMENT_TIMEOUT, DB_LOCK_TIMEOUT of db.h).  Only tests, which
	 * must see a timeout within seconds, set them.
	 */
	unsigned statement_timeout;
	unsigned lock_timeout;
};

struct committer;

/* Connects and starts the thread; NULL with err filled on failure. */
struct committer *committer_start(const struct committer_params *params,
    char *err, size_t errlen);
/* Thread-safe.  done() fires later, on the committer thread. */
void committer_submit(struct committer *cm, struct commit_item *it);
/* Commits what is queued, then stops the thread and frees. */
void committer_stop(struct committer **cm);

#endif
