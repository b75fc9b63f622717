/*
 * The scheduler, on the main thread: decides when each mailbox is polled,
 * caps concurrent connections per server host, prepares each poll (address,
 * archive state) and hands it to the least loaded worker, then records the
 * outcome.  Its blocking work (DNS, database) happens here, never on a
 * worker.
 */
#ifndef INGESTD_SCHED_H
#define INGESTD_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

struct conf;
struct db;
struct dicts;
struct committer;
struct worker;
struct sched;

struct sched_params {
	const struct conf *conf;
	struct db *db;			/* the main thread's connection */
	struct committer *committer;
	struct worker **workers;
	size_t nworkers;
	const char *spool_dir;
	FILE *summary;		/* one line per finished poll, or NULL */
	/* zstd dictionaries, NULL for none.  Each poll compresses with the
	 * current one; a finished poll may train one on this thread. */
	struct dicts *dicts;
	/* run only: tick(tick_arg) every tick_s seconds on this thread
	 * (the ledger's checkpoints); NULL for none. */
	void (*tick)(void *arg);
	void *tick_arg;
	unsigned tick_s;
	/* once --dry-run: polls archive as usual but send no DELE; what
	 * the delete policy would delete goes to summary. */
	bool dry_run;
};

/* NULL with err filled (e.g. an unreadable CA file). */
struct sched *sched_new(const struct sched_params *p, char *err,
    size_t errlen);
void sched_free(struct sched **s);

/* Polls every enabled account once, concurrently.  Returns true if every
 * poll succeeded. */
bool sched_once(struct sched *s);

/* Polls each account every poll_interval until SIGTERM or SIGINT, then
 * drains: polls in flight finish (commits complete, sessions QUIT). */
void sched_run(struct sched *s);

#endif
