/*
 * One poll of one mailbox, on one worker's loop: the glue between the
 * transport (conn), the POP3 engine (pop3/client), the message pipeline
 * (store/pipe) and the committer.  It decides what to fetch, verify and
 * delete; it sends DELE for a message only after the committer reported the
 * transaction holding it committed.
 */
#ifndef INGESTD_SESSION_H
#define INGESTD_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

#include "ingestd/conf.h"
#include "ingestd/conn.h"
#include "store/db.h"

struct conn_tls;
struct known;
struct committer;
struct loop;
struct session;
struct zdict;

enum session_outcome {
	SESSION_OK,
	SESSION_TEMPORARY,	/* retry later: network, server busy, ... */
	SESSION_PERMANENT,	/* fix the config: credentials, certificate */
};

struct session_result {
	enum session_outcome outcome;
	char error[512];	/* the first error, with context */
	uint64_t listed, fetched, archived, deduplicated, deleted, bytes;
	uint64_t errors;	/* messages that failed (RETR/DELE -ERR,...) */
	bool auth_refused;	/* the server refused the login */
	bool needs_reauth;	/* the OAuth grant needs the operator (set by
				 * the scheduler: token endpoint or a refused
				 * fresh token) */
	/* What the server confirmed deleted (+OK to QUIT). */
	struct db_deleted *deleted_v;
	size_t ndeleted;
	/* The UIDLs listed, sorted, for reconciliation; NULL unless the
	 * listing was complete and every message had a UIDL.  They point
	 * into present_mem: the plan's own block, moved here, not copied. */
	const char **present;
	size_t npresent;
	char *present_mem;
	/* Messages this poll refused (uidl and error owned here). */
	struct db_refusal *refusals;
	size_t nrefusals;
	uint64_t skipped;	/* refused earlier, left alone (PLAN_SKIP) */
	/* What CAPA said after login (pop3/parse.h); login_at is 0 if the
	 * session never logged in. */
	time_t login_at;
	char expire[16];	/* "NEVER", days, or "" if not advertised */
	int64_t login_delay;	/* seconds; -1 if not advertised */
	/* The delete policy's verdicts under --dry-run, a line each; NULL
	 * if none. */
	char *dry_run_text;
};

/* A poll to run, prepared by the scheduler on the main thread (address
 * resolved, archive state loaded) and posted to a worker's loop. */
struct session_job {
	struct loop *loop;		/* the worker's, where it runs */
	const struct conf *conf;
	const struct conf_account *acct;
	int64_t account_id;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	/* The host's further addresses, tried in order if addr fails. */
	struct conn_addr more_addrs[CONN_MORE_ADDRS_MAX];
	size_t nmore;
	struct conn_tls *tls;		/* NULL for tls = "none" */
	struct known *known;		/* owned by the job */
	struct known *refused;		/* its refusals; owned by the job */
	/* First-seen times and Dates for the delete policy; owned by the
	 * job, NULL when the account has no delete = { ... }. */
	struct facts *facts;
	bool dry_run;			/* decide, print, send no DELE */
	/* The account already needs the operator, and the scheduler has
	 * said so: a permanent failure is logged at debug level only. */
	bool quiet_permanent;
	int64_t now;			/* the policy's clock: Unix time */
	struct committer *committer;
	const char *spool_dir;
	/* The zstd dictionary to compress with, NULL for none; it stays
	 * alive until the workers have stopped. */
	const struct zdict *dict;
	/* The OAuth access token to log in with, or NULL for the password;
	 * the scheduler's, alive until finished() has run. */
	const char *token;
	struct session_result result;
	/* Called on the worker thread when the session has ended and every
	 * commit it submitted has been answered. */
	void (*finished)(struct session_job *job);
	void *arg;			/* the scheduler */
	void *owner;			/* its record of the account */
	/* The running session, on the worker's thread only; NULL before
	 * it starts and once it has finished. */
	struct session *session;
};

/*
 * Both are loop_func's for loop_post(job->loop, ..., job), so they run on
 * the worker's thread.
 *
 * session_start() starts the poll; it always ends in job->finished().
 * session_drain() makes the poll stop fetching new messages, finish what
 * is in flight, then QUIT; harmless once the poll is over.
 */
void session_start(void *job);
void session_drain(void *job);

void session_result_release(struct session_result *r);

#endif
