/*
 * The scheduler runs its own loop on the main thread: a signalfd for
 * TERM/INT/HUP, finished polls posted back by the workers, and a timer for
 * the next due poll.  Polls go to the workers the same way: a job posted
 * to the worker's loop.
 */
#include "ingestd/sched.h"

#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ingestd/conf.h"
#include "ingestd/conn.h"
#include "ingestd/delete_policy.h"
#include "ingestd/base/log.h"
#include "ingestd/loop.h"
#include "ingestd/oauth.h"
#include "ingestd/session.h"
#include "ingestd/worker.h"
#include "ingestd/base/xmalloc.h"
#include "store/db.h"
#include "store/dicts.h"
#include "store/facts.h"
#include "store/known.h"

/* Retry after a temporary failure: 30 s doubling up to poll_interval. */
#define RETRY_FIRST_S 30
/* After a failure that needs the operator (password, certificate). */
#define RETRY_PERMANENT_S 3600
/* How often an account in needs_reauth looks whether its files changed. */
#define REAUTH_CHECK_S 5

/* What identifies a file's content cheaply: it changed if any differs. */
struct file_id {
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	bool exists;
};

/* A server host, for max_connections_per_host. */
struct host {
	const char *name;		/* the accounts' conf string */
	unsigned running;
};

struct account {
	const struct conf_account *conf;
	struct host *host;
	int64_t id;			/* 0 until known in the database */
	struct conn_tls *tls;		/* shared per CA file */
	uint64_t due_ms;		/* next poll, loop clock */
	unsigned failures;		/* consecutive */
	bool running;
	bool done_once;
	time_t started;
	/* RFC 2449 LOGIN-DELAY: no login sooner than login_delay seconds
	 * after login_at (from the database at first, then each poll). */
	bool capa_loaded;
	int64_t login_delay;		/* -1: none */
	time_t login_at;
	bool expire_warned;		/* EXPIRE vs policy, said once */
	/* The error of the permanent failure the operator was told of
	 * ("" if none): repeats of it are not logged again.  Read from the
	 * latest poll at first, so a cron job of once says it once too. */
	bool perm_loaded;
	char perm_error[512];
	size_t worker;			/* which one runs the poll */
	struct session_job job;
	/* OAuth: the token for the poll, asked of the token thread before
	 * it starts.  In needs_reauth the account is not polled until one
	 * of its credential files changes (or a restart). */
	struct oauth_req req;
	bool needs_reauth;
	enum { REAUTH_DB_UNKNOWN, REAUTH_DB_SET, REAUTH_DB_CLEAR } reauth_db;
					/* what the database was last told */
	struct file_id reauth_files[2];	/* refresh token, client secret */
};

/* A poll record the database could not take when the poll ended. */
struct unrecorded {
	struct account *a;
	struct db_poll poll;
	char error[512];
};

/* Poll records kept in memory while the database is away. */
#define UNRECORDED_MAX 10000

struct tls_entry {
	char *ca_file;			/* NULL: system trust store */
	struct conn_tls *tls;
};

struct sched {
	struct sched_params p;
	struct loop *loop;
	int sigfd;
	struct loop_timer timer;
	struct loop_timer tick_timer;	/* sched_params.tick */

	struct account *accounts;
	size_t naccounts;
	struct host *hosts;
	size_t nhosts;
	struct unrecorded *unrecorded;
	size_t nunrecorded;
	struct tls_entry *tls;
	size_t ntls;

	unsigned *load;			/* polls running on each worker */
	struct oauth *oauth;		/* the token thread, if any account
					 * logs in with a token */

	bool once;
	bool stopping;
	bool done;			/* loop_stop() called */
	unsigned running;
	unsigned failed;
};

static void sched_dispatch(struct sched *s);

static struct host *
host_for(struct sched *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->nhosts; i++)
		if (strcmp(s->hosts[i].name, name) == 0)
			return &s->hosts[i];
	s->hosts[s->nhosts].name = name;
	return &s->hosts[s->nhosts++];
}

static struct conn_tls *
tls_for(struct sched *s, const char *ca_file, char *err, size_t errlen)
{
	struct conn_tls *t;
	size_t i;

	for (i = 0; i < s->ntls; i++)
		if ((ca_file == NULL && s->tls[i].ca_file == NULL) ||
		    (ca_file != NULL && s->tls[i].ca_file != NULL &&
		    strcmp(ca_file, s->tls[i].ca_file) == 0))
			return s->tls[i].tls;
	if ((t = conn_tls_new(ca_file, err, errlen)) == NULL)
		return NULL;
	s->tls = xreallocarray(s->tls, s->ntls + 1, sizeof(*s->tls));
	s->tls[s->ntls].ca_file = ca_file ? xstrdup(ca_file) : NULL;
	s->tls[s->ntls++].tls = t;
	return t;
}

static void finish(struct sched *s, struct account *a);
static void oauth_outcome(struct sched *s, struct account *a);
static size_t least_loaded(const struct sched *s);

/* Posted by on_finished(): a poll is over, on the main thread. */
static void
on_finished_main(void *arg)
{
	struct session_job *job = arg;
	struct sched *s = job->arg;

	finish(s, job->owner);
	sched_dispatch(s);
}

/* On a worker thread: hand the finished poll to the main thread. */
static void
on_finished(struct session_job *job)
{
	struct sched *s = job->arg;

	loop_post(s->loop, on_finished_main, job);
}

static const char *
outcome_name(enum session_outcome o)
{
	switch (o) {
	case SESSION_OK:
		return "ok";
	case SESSION_TEMPORARY:
		return "temporary";
	case SESSION_PERMANENT:
		return "permanent";
	}
	return "?";
}

static int
write_poll(struct sched *s, struct unrecorded *u)
{
	struct account *a = u->a;

	if (a->id == 0 && db_account_id(s->p.db, a->conf->name, &a->id) == -1)
		return -1;
	u->poll.account_id = a->id;
	u->poll.error = u->error[0] != '\0' ? u->error : NULL;
	return db_poll_record(s->p.db, &u->poll);
}

/* Writes the poll records kept while the database was away, oldest
 * first; stops at the first that fails. */
static void
flush_unrecorded(struct sched *s)
{
	size_t done = 0;

	while (done < s->nunrecorded &&
	    write_poll(s, &s->unrecorded[done]) == 0)
		done++;
	if (done == 0)
		return;
	memmove(s->unrecorded, s->unrecorded + done,
	    (s->nunrecorded - done) * sizeof(*s->unrecorded));
	s->nunrecorded -= done;
	log_info("recorded %zu polls kept while the database was away",
	    done);
}

/*
 * Database bookkeeping for a finished poll: deletions the server confirmed,
 * archived messages no longer listed (deleted by someone else, or by a QUIT
 * whose answer a crash kept us from recording), and the poll itself.  It
 * never affects the mailbox.  Marks that fail are healed by the next
 * complete listing; a poll record that fails is kept in memory (bounded)
 * and written once the database is back, so an outage shows in the polls
 * view.
 */
static void
record(struct sched *s, struct account *a)
{
	struct session_result *r = &a->job.result;
	struct unrecorded u = {
		.a = a,
		.poll = {
			.started = a->started,
			.finished = time(NULL),
			.outcome = outcome_name(r->outcome),
			.listed = r->listed,
			.fetched = r->fetched,
			.archived = r->archived,
			.deduplicated = r->deduplicated,
			.deleted = r->deleted,
			.bytes = r->bytes,
		},
	};

	if (r->outcome != SESSION_OK)
		snprintf(u.error, sizeof(u.error), "%s", r->error);
	if (!db_connected(s->p.db))
		(void)db_reconnect(s->p.db);
	if (a->id != 0 && ((r->ndeleted > 0 && db_mark_deleted(s->p.db, a->id,
	    r->deleted_v, r->ndeleted) == -1) || (r->present != NULL &&
	    db_mark_absent(s->p.db, a->id, (const char *const *)r->present,
	    r->npresent) == -1)))
		log_warnx("mbox=%s recording deletions: %s (the next poll "
		    "reconciles)", a->conf->name, db_error(s->p.db));
	if (a->id != 0 && (r->nrefusals > 0 || r->present != NULL) &&
	    db_refusals_record(s->p.db, a->id, r->refusals, r->nrefusals,
	    (const char *const *)r->present, r->npresent) == -1)
		log_warnx("mbox=%s recording %zu refused messages: %s (they "
		    "are tried again at the next poll)", a->conf->name,
		    r->nrefusals, db_error(s->p.db));
	/* First-seen times: for every policy, so that one set later has
	 * the history; a failure only delays a clock by a poll. */
	if (a->id != 0 && r->present != NULL && db_seen_update(s->p.db, a->id,
	    (const char *const *)r->present, r->npresent, r->deleted_v,
	    r->ndeleted) == -1)
		log_warnx("mbox=%s recording first-seen times: %s",
		    a->conf->name, db_error(s->p.db));
	if (a->id != 0 && r->login_at != 0 && db_capa_record(s->p.db, a->id,
	    r->expire[0] != '\0' ? r->expire : NULL, r->login_delay,
	    r->login_at) == -1)
		log_warnx("mbox=%s recording EXPIRE and LOGIN-DELAY: %s",
		    a->conf->name, db_error(s->p.db));
	/* needs_reauth, in account_status: set when found, cleared by a
	 * login that works.  A failure is retried with the next poll. */
	if (a->id != 0 && ((a->needs_reauth &&
	    a->reauth_db != REAUTH_DB_SET) || (r->outcome == SESSION_OK &&
	    (a->conf->token_command != NULL || a->conf->has_oauth) &&
	    a->reauth_db != REAUTH_DB_CLEAR))) {
		if (db_account_reauth(s->p.db, a->id, a->needs_reauth) == 0)
			a->reauth_db = a->needs_reauth ? REAUTH_DB_SET :
			    REAUTH_DB_CLEAR;
		else
			log_warnx("mbox=%s recording needs_reauth: %s",
			    a->conf->name, db_error(s->p.db));
	}
	flush_unrecorded(s);
	if (s->nunrecorded == 0 && write_poll(s, &u) == 0)
		return;
	if (s->nunrecorded == UNRECORDED_MAX) {
		log_warnx("mbox=%s dropping the oldest unrecorded poll: the "
		    "database has been away for %zu polls", a->conf->name,
		    s->nunrecorded);
		memmove(s->unrecorded, s->unrecorded + 1,
		    (s->nunrecorded - 1) * sizeof(*s->unrecorded));
		s->nunrecorded--;
	}
	log_warnx("mbox=%s recording the poll: %s (kept until the database "
	    "is back)", a->conf->name, db_error(s->p.db));
	s->unrecorded = xreallocarray(s->unrecorded, s->nunrecorded + 1,
	    sizeof(*s->unrecorded));
	s->unrecorded[s->nunrecorded++] = u;
}

static void
summary(struct sched *s, struct account *a)
{
	struct session_result *r = &a->job.result;

	if (s->p.summary == NULL)
		return;
	if (r->dry_run_text != NULL)
		fputs(r->dry_run_text, s->p.summary);
	fprintf(s->p.summary, "account=%s listed=%" PRIu64 " fetched=%" PRIu64
	    " archived=%" PRIu64 " deduplicated=%" PRIu64 " deleted=%" PRIu64
	    " bytes=%" PRIu64 " errors=%" PRIu64 " outcome=%s",
	    a->conf->name, r->listed, r->fetched, r->archived,
	    r->deduplicated, r->deleted, r->bytes,
	    r->errors + (r->outcome != SESSION_OK && r->errors == 0),
	    outcome_name(r->outcome));
	if (r->outcome != SESSION_OK)
		fprintf(s->p.summary, " error=\"%s\"", r->error);
	fputc('\n', s->p.summary);
	fflush(s->p.summary);
}

/* Jitter spreads retries of many mailboxes of one provider over time. */
static uint64_t
retry_delay_ms(const struct sched *s, const struct account *a)
{
	uint64_t d;

	if (a->job.result.outcome == SESSION_OK)
		return (uint64_t)s->p.conf->poll_interval * 1000;
	if (a->job.result.outcome == SESSION_PERMANENT)
		d = RETRY_PERMANENT_S;
	else {
		unsigned shift = a->failures > 10 ? 10 : a->failures - 1;

		d = (uint64_t)RETRY_FIRST_S << shift;
		if (d > (uint64_t)s->p.conf->poll_interval)
			d = s->p.conf->poll_interval;
	}
	d *= 1000;
	return d - d / 4 + (uint64_t)(random() % (long)(d / 2 + 1));
}

/*
 * Seconds until the server's LOGIN-DELAY allows the next login to a's
 * mailbox, 0 if it does now (or none is known).  The first call for an
 * account reads what the database recorded, so a restart obeys it too.
 */
static int64_t
login_wait(struct sched *s, struct account *a)
{
	time_t now = time(NULL);

	if (!a->capa_loaded) {
		a->login_delay = -1;
		if (a->id == 0 &&
		    db_account_id(s->p.db, a->conf->name, &a->id) == -1)
			return 0;	/* start_poll() reports it */
		if (db_capa_load(s->p.db, a->id, &a->login_delay,
		    &a->login_at) == -1)
			log_warnx("mbox=%s reading LOGIN-DELAY: %s",
			    a->conf->name, db_error(s->p.db));
		a->capa_loaded = true;
	}
	/* login_at is whole seconds, rounded down: one more to be sure. */
	if (a->login_delay <= 0 || a->login_at == 0 ||
	    a->login_at + a->login_delay + 1 <= now)
		return 0;
	return a->login_at + a->login_delay + 1 - now;
}

/*
 * EXPIRE n (n > 0 days) says the server deletes retrieved mail after n
 * days whatever the client does: a policy that keeps it longer (or for
 * good) is not what decides.  Said once per account and run.
 */
static void
check_expire(struct account *a, const struct session_result *r)
{
	struct delete_policy p;
	unsigned long days;
	int64_t keeps;

	if (a->expire_warned || r->login_at == 0 || r->expire[0] == '\0' ||
	    strcmp(r->expire, "NEVER") == 0)
		return;
	days = strtoul(r->expire, NULL, 10);
	if (days == 0)		/* at QUIT: plan.h's business */
		return;
	delete_policy_from_conf(a->conf, &p);
	keeps = delete_policy_keeps_days(&p);
	if (keeps != -1 && keeps <= (int64_t)days)
		return;
	a->expire_warned = true;
	log_warnx("mbox=%s server says EXPIRE %lu: it deletes retrieved "
	    "messages %lu days after retrieval, while the delete policy "
	    "(%s) would keep them %s; the server decides, not the policy",
	    a->conf->name, days, days, a->conf->where, keeps == -1 ?
	    "for good" : "longer");
}

/*
 * [AUTH], [SYS/PERM], a certificate that does not verify: the operator
 * must act.  Said once, at warning level, with what to look at; the
 * same failure again is logged at debug level only, until the account
 * recovers or fails differently.
 */
static void
note_permanent(struct account *a, const struct session_result *r)
{
	if (r->outcome != SESSION_PERMANENT) {
		a->perm_error[0] = '\0';
		return;
	}
	if (strcmp(a->perm_error, r->error) == 0)
		return;
	snprintf(a->perm_error, sizeof(a->perm_error), "%s", r->error);
	log_warnx("mbox=%s needs the operator: %s; retried every %d minutes "
	    "(account_status.last_outcome is 'permanent')", a->conf->name,
	    r->error, RETRY_PERMANENT_S / 60);
}

static void
finish(struct sched *s, struct account *a)
{
	struct session_result *r = &a->job.result;

	if (a->job.loop != NULL)	/* it reached a worker */
		s->load[a->worker]--;
	oauth_outcome(s, a);
	a->running = false;
	a->done_once = true;
	a->host->running--;
	s->running--;
	record(s, a);
	summary(s, a);
	if (r->outcome == SESSION_OK) {
		a->failures = 0;
		log_info("mbox=%s polled: %" PRIu64 " listed, %" PRIu64
		    " archived, %" PRIu64 " deleted", a->conf->name, r->listed,
		    r->archived, r->deleted);
	} else {
		a->failures++;
		s->failed++;
	}
	a->due_ms = loop_now_ms(s->loop) + retry_delay_ms(s, a);
	if (r->login_at != 0) {
		a->capa_loaded = true;
		a->login_delay = r->login_delay;
		a->login_at = r->login_at;
	}
	check_expire(a, r);
	note_permanent(a, r);
	if (a->needs_reauth)
		a->due_ms = loop_now_ms(s->loop) + REAUTH_CHECK_S * 1000;
	known_free(&a->job.known);
	known_free(&a->job.refused);
	facts_free(&a->job.facts);
	/* May train a dictionary: blocking, so here on the main thread,
	 * never on a worker; polls that start later use it.  Not while
	 * draining: a stop should not wait for it. */
	if (!s->stopping)
		(void)dicts_archived(s->p.dicts, r->archived);
	session_result_release(r);
}

static void
file_id_of(const char *path, struct file_id *f)
{
	struct stat st;

	memset(f, 0, sizeof(*f));
	if (path == NULL || stat(path, &st) == -1)
		return;
	f->exists = true;
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->size = st.st_size;
	f->mtime = st.st_mtim;
}

static bool
file_id_same(const struct file_id *x, const struct file_id *y)
{
	return x->exists == y->exists && x->dev == y->dev &&
	    x->ino == y->ino && x->size == y->size &&
	    x->mtime.tv_sec == y->mtime.tv_sec &&
	    x->mtime.tv_nsec == y->mtime.tv_nsec;
}

static void
reauth_files(const struct account *a, struct file_id f[2])
{
	file_id_of(a->conf->oauth_refresh_token_file, &f[0]);
	file_id_of(a->conf->oauth_client_secret_file, &f[1]);
}

/*
 * What a poll of an account with a token means for its grant, before the
 * poll is recorded.  A token the server refused: if it came from the
 * cache it may have been revoked early, so it is forgotten and the next
 * poll asks for a new one; if it was new, the grant itself is bad.
 * needs_reauth is logged once, and the account is left alone until its
 * refresh_token_file or client_secret_file changes, or ingestd restarts
 * (a token_command's account: until a restart).
 */
static void
oauth_outcome(struct sched *s, struct account *a)
{
	struct session_result *r = &a->job.result;
	const struct conf_account *ca = a->conf;

	if (ca->token_command == NULL && !ca->has_oauth)
		return;
	if (r->auth_refused && !a->req.fresh) {
		oauth_forget(s->oauth, ca);
		r->outcome = SESSION_TEMPORARY;
	} else if (r->auth_refused)
		r->needs_reauth = true;
	oauth_req_release(&a->req);
	if (r->outcome == SESSION_OK) {
		if (a->needs_reauth)
			log_info("mbox=%s logged in: needs_reauth cleared",
			    ca->name);
		a->needs_reauth = false;
		return;
	}
	if (!r->needs_reauth || a->needs_reauth)
		return;
	a->needs_reauth = true;
	reauth_files(a, a->reauth_files);
	log_warnx("mbox=%s needs_reauth: %s; the grant must be renewed: not "
	    "polled again until %s changes or ingestd restarts", ca->name,
	    r->error, ca->token_command != NULL ? "the configuration" :
	    ca->oauth_grant == CONF_GRANT_REFRESH_TOKEN ?
	    "refresh_token_file or client_secret_file" :
	    "client_secret_file");
}

/* Posted back by the token thread: the poll goes on, or ends here. */
static void
on_token(void *arg)
{
	struct account *a = arg;
	struct sched *s = a->job.arg;
	struct session_job *job = &a->job;

	if (a->req.status == OAUTH_OK && !s->stopping) {
		job->token = a->req.token;
		a->worker = least_loaded(s);
		s->load[a->worker]++;
		job->loop = worker_loop(s->p.workers[a->worker]);
		loop_post(job->loop, session_start, job);
		return;
	}
	if (a->req.status == OAUTH_OK)
		snprintf(job->result.error, sizeof(job->result.error),
		    "stopped before the poll started");
	else
		snprintf(job->result.error, sizeof(job->result.error), "%s",
		    a->req.error);
	job->result.outcome = a->req.status == OAUTH_PERMANENT ||
	    a->req.status == OAUTH_REAUTH ? SESSION_PERMANENT :
	    SESSION_TEMPORARY;
	job->result.needs_reauth = a->req.status == OAUTH_REAUTH;
	if (a->req.status != OAUTH_OK)
		log_warnx("mbox=%s %s", a->conf->name, job->result.error);
	finish(s, a);
	sched_dispatch(s);
}

static size_t
least_loaded(const struct sched *s)
{
	size_t i, best = 0;

	for (i = 1; i < s->p.nworkers; i++)
		if (s->load[i] < s->load[best])
			best = i;
	return best;
}

/*
 * Prepares and hands out one poll.  Returns -1 if it failed before reaching
 * a worker; the failure is then recorded like any other.
 */
static int
start_poll(struct sched *s, struct account *a)
{
	const struct conf_account *ca = a->conf;
	struct session_job *job = &a->job;
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai = NULL;
	struct addrinfo *next;
	char port[16];
	int r;

	memset(job, 0, sizeof(*job));
	job->conf = s->p.conf;
	job->acct = ca;
	job->tls = a->tls;
	job->committer = s->p.committer;
	job->spool_dir = s->p.spool_dir;
	job->dict = dicts_current(s->p.dicts);
	job->finished = on_finished;
	job->arg = s;
	job->owner = a;
	job->dry_run = s->p.dry_run;
	job->now = (int64_t)time(NULL);
	job->quiet_permanent = a->perm_error[0] != '\0';
	a->started = time(NULL);
	a->running = true;
	a->host->running++;
	s->running++;

	if (a->id == 0 && db_account_id(s->p.db, ca->name, &a->id) == -1) {
		snprintf(job->result.error, sizeof(job->result.error),
		    "database: %s", db_error(s->p.db));
		goto fail;
	}
	if (!a->perm_loaded) {
		char outcome[16];

		if (db_last_poll(s->p.db, a->id, outcome, sizeof(outcome),
		    a->perm_error, sizeof(a->perm_error)) == -1 ||
		    strcmp(outcome, "permanent") != 0)
			a->perm_error[0] = '\0';
		a->perm_loaded = true;
		job->quiet_permanent = a->perm_error[0] != '\0';
	}
	job->account_id = a->id;
	job->known = known_new();
	job->refused = known_new();
	if (db_known_load(s->p.db, a->id, job->known) == -1 ||
	    db_refusals_load(s->p.db, a->id, job->refused) == -1) {
		snprintf(job->result.error, sizeof(job->result.error),
		    "loading the archive state: %s", db_error(s->p.db));
		goto fail;
	}
	if (ca->delete == CONF_DELETE_POLICY || s->p.dry_run) {
		job->facts = facts_new();
		if (db_facts_load(s->p.db, a->id, job->facts) == -1) {
			snprintf(job->result.error, sizeof(job->result.error),
			    "loading first-seen times and dates: %s",
			    db_error(s->p.db));
			goto fail;
		}
	}
	snprintf(port, sizeof(port), "%d", ca->port);
	if ((r = getaddrinfo(ca->host, port, &hints, &ai)) != 0) {
		snprintf(job->result.error, sizeof(job->result.error),
		    "cannot resolve %s: %s", ca->host, gai_strerror(r));
		goto fail;
	}
	memcpy(&job->addr, ai->ai_addr, ai->ai_addrlen);
	job->addrlen = ai->ai_addrlen;
	/* Every address, in the resolver's order (IPv6 first, as a rule):
	 * conn tries the next when one does not connect. */
	for (next = ai->ai_next; next != NULL &&
	    job->nmore < CONN_MORE_ADDRS_MAX; next = next->ai_next) {
		if (next->ai_addrlen > sizeof(job->more_addrs[0].addr))
			continue;
		memcpy(&job->more_addrs[job->nmore].addr, next->ai_addr,
		    next->ai_addrlen);
		job->more_addrs[job->nmore++].addrlen = next->ai_addrlen;
	}
	freeaddrinfo(ai);
	if (ca->token_command != NULL || ca->has_oauth) {
		/* The token first, on its own thread; on_token() goes on. */
		a->req.acct = ca;
		a->req.reply = s->loop;
		a->req.done = on_token;
		a->req.arg = a;
		oauth_request(s->oauth, &a->req);
		return 0;
	}
	a->worker = least_loaded(s);
	s->load[a->worker]++;
	job->loop = worker_loop(s->p.workers[a->worker]);
	loop_post(job->loop, session_start, job);
	return 0;
fail:
	job->result.outcome = SESSION_TEMPORARY;
	log_warnx("mbox=%s %s", ca->name, job->result.error);
	finish(s, a);
	return -1;
}

static void
on_timer(struct loop *l, void *arg)
{
	sched_dispatch(arg);
}

/* Starts every due poll the per-host cap allows; arms the timer for the
 * next one; stops the loop when a once-run or a drain is complete. */
static void
sched_dispatch(struct sched *s)
{
	uint64_t now = loop_now_ms(s->loop), next = UINT64_MAX;
	int64_t wait;
	size_t i;

	for (i = 0; i < s->naccounts && !s->stopping; i++) {
		struct account *a = &s->accounts[i];

		if (a->running || (s->once && a->done_once))
			continue;
		/* Looked at on every pass, and at least every
		 * REAUTH_CHECK_S: a renewed grant is used at once. */
		if (a->needs_reauth) {
			struct file_id f[2];

			reauth_files(a, f);
			if (!file_id_same(&f[0], &a->reauth_files[0]) ||
			    !file_id_same(&f[1], &a->reauth_files[1])) {
				log_info("mbox=%s credentials changed: polling "
				    "again", a->conf->name);
				a->needs_reauth = false;
				a->failures = 0;
				a->due_ms = now;
			} else if (a->due_ms <= now)
				a->due_ms = now + REAUTH_CHECK_S * 1000;
		}
		if (a->due_ms > now) {
			if (a->due_ms < next)
				next = a->due_ms;
			continue;
		}
		if ((wait = login_wait(s, a)) > 0) {
			log_info("mbox=%s not polled for %" PRId64 " s: the "
			    "server asks for LOGIN-DELAY %" PRId64 " s between "
			    "logins", a->conf->name, wait, a->login_delay);
			if (s->once) {
				a->done_once = true;
				if (s->p.summary != NULL)
					fprintf(s->p.summary, "account=%s "
					    "skipped=login-delay wait=%" PRId64
					    "\n", a->conf->name, wait);
				continue;
			}
			a->due_ms = now + (uint64_t)wait * 1000;
			if (a->due_ms < next)
				next = a->due_ms;
			continue;
		}
		if (a->host->running >=
		    (unsigned)s->p.conf->max_connections_per_host)
			continue;	/* a finished poll re-dispatches */
		start_poll(s, a);
	}
	if (s->running == 0 && (s->stopping || (s->once &&
	    next == UINT64_MAX))) {
		bool all = true;

		for (i = 0; i < s->naccounts && s->once; i++)
			if (!s->accounts[i].done_once)
				all = false;
		if (all || s->stopping) {
			s->done = true;
			loop_stop(s->loop);
			return;
		}
	}
	if (next != UINT64_MAX && !s->stopping)
		loop_timer_add(s->loop, &s->timer, next - now, on_timer, s);
}

static void
on_tick(struct loop *l, void *arg)
{
	struct sched *s = arg;

	if (s->stopping)
		return;
	s->p.tick(s->p.tick_arg);
	loop_timer_add(s->loop, &s->tick_timer, (uint64_t)s->p.tick_s * 1000,
	    on_tick, s);
}

static void
on_signal(struct loop *l, int fd, int events, void *arg)
{
	struct sched *s = arg;
	struct signalfd_siginfo si;
	size_t i;

	if (read(fd, &si, sizeof(si)) != sizeof(si))
		return;
	if (si.ssi_signo == SIGHUP) {
		log_info("SIGHUP: configuration reload is not supported; "
		    "restart ingestd to apply changes");
		return;
	}
	if (s->stopping) {
		log_info("signal %u again: still draining %u polls",
		    si.ssi_signo, s->running);
		return;
	}
	log_info("signal %u: finishing %u polls in flight, then exiting",
	    si.ssi_signo, s->running);
	s->stopping = true;
	loop_timer_cancel(s->loop, &s->timer);
	if (s->p.tick != NULL && !s->once)
		loop_timer_cancel(s->loop, &s->tick_timer);
	/* No poll starts from now on, so each running one is told once. */
	for (i = 0; i < s->naccounts; i++)
		if (s->accounts[i].running && s->accounts[i].job.loop != NULL)
			loop_post(s->accounts[i].job.loop, session_drain,
			    &s->accounts[i].job);
	sched_dispatch(s);
}

struct sched *
sched_new(const struct sched_params *p, char *err, size_t errlen)
{
	struct sched *s = xcalloc(1, sizeof(*s));
	sigset_t mask;
	size_t i;

	s->p = *p;
	s->sigfd = -1;
	s->load = xcalloc(p->nworkers ? p->nworkers : 1, sizeof(*s->load));
	if ((s->loop = loop_new(err, errlen)) == NULL)
		goto fail;

	/* main.c blocked these in every thread before starting any. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if ((s->sigfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) ==
	    -1) {
		snprintf(err, errlen, "signalfd: %s", strerror(errno));
		goto fail;
	}
	if (loop_fd_add(s->loop, s->sigfd, LOOP_READ, on_signal, s) == -1) {
		snprintf(err, errlen, "epoll: %s", strerror(errno));
		goto fail;
	}

	s->accounts = xcalloc(p->conf->naccounts ? p->conf->naccounts : 1,
	    sizeof(*s->accounts));
	s->hosts = xcalloc(p->conf->naccounts ? p->conf->naccounts : 1,
	    sizeof(*s->hosts));
	for (i = 0; i < p->conf->naccounts; i++) {
		const struct conf_account *ca = &p->conf->accounts[i];
		struct account *a;
		char e[512];

		if (!ca->enabled)
			continue;
		a = &s->accounts[s->naccounts++];
		a->conf = ca;
		if ((ca->token_command != NULL || ca->has_oauth) &&
		    s->oauth == NULL &&
		    (s->oauth = oauth_new(err, errlen)) == NULL)
			goto fail;
		a->host = host_for(s, ca->host);
		if (ca->tls != CONF_TLS_NONE &&
		    (a->tls = tls_for(s, ca->ca_file, e, sizeof(e))) == NULL) {
			snprintf(err, errlen, "%s: account \"%s\": %s",
			    ca->where, ca->name, e);
			goto fail;
		}
	}
	return s;
fail:
	sched_free(&s);
	return NULL;
}

void
sched_free(struct sched **sp)
{
	struct sched *s = *sp;
	size_t i;

	if (s == NULL)
		return;
	oauth_free(&s->oauth);
	for (i = 0; i < s->ntls; i++) {
		free(s->tls[i].ca_file);
		conn_tls_free(&s->tls[i].tls);
	}
	free(s->tls); s->tls = NULL;
	free(s->accounts); s->accounts = NULL;
	free(s->hosts); s->hosts = NULL;
	if (s->nunrecorded > 0)
		flush_unrecorded(s);
	if (s->nunrecorded > 0)
		log_warnx("%zu poll records could not be written to the "
		    "database", s->nunrecorded);
	free(s->unrecorded); s->unrecorded = NULL;
	free(s->load); s->load = NULL;
	if (s->sigfd != -1) {
		if (s->loop != NULL)
			loop_fd_del(s->loop, s->sigfd);
		close(s->sigfd);
	}
	loop_free(&s->loop);
	free(s); *sp = NULL;
}

bool
sched_once(struct sched *s)
{
	s->once = true;
	sched_dispatch(s);
	if (!s->done)
		loop_run(s->loop);
	return s->failed == 0 && !s->stopping;
}

void
sched_run(struct sched *s)
{
	s->once = false;
	if (s->p.tick != NULL && s->p.tick_s > 0)
		loop_timer_add(s->loop, &s->tick_timer,
		    (uint64_t)s->p.tick_s * 1000, on_tick, s);
	sched_dispatch(s);
	if (!s->done)
		loop_run(s->loop);
}
