/*
 * One poll of one mailbox.  The order of events for a message:
 *
 *   RETR n -> body bytes -> pipe (SHA-256, zstd, spool) -> body end
 *     -> committer (group commit) -> COMMIT returned -> "durable"
 *     -> DELE n (policy "after-archive") -> ... -> QUIT +OK
 *
 * DELE for a message is sent only from session_commit_done() with
 * durable == true, or after TOP proved that the message on the server is
 * the one archived earlier (same UIDL, same LIST size, same header hash).
 * A failure anywhere before that leaves the message on the server.
 *
 * Under a delete = { ... } policy (and for any policy under --dry-run) no
 * DELE goes out as messages are proven: once every message has been
 * fetched or verified and every commit answered, delete_policy_decide()
 * chooses among the messages proven archived in this poll (committed, or
 * proven by TOP) and only those get DELE, before QUIT.  Under --dry-run
 * the choice is written to the result instead, and nothing is deleted.
 */
#include "ingestd/session.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ingestd/conn.h"
#include "ingestd/delete_policy.h"
#include "ingestd/base/log.h"
#include "ingestd/loop.h"
#include "ingestd/plan.h"
#include "ingestd/base/xmalloc.h"
#include "pop3/client.h"
#include "pop3/parse.h"
#include "store/commit.h"
#include "store/facts.h"
#include "store/hash.h"
#include "store/known.h"
#include "store/pipe.h"
#include "store/spool.h"

/* RETR/TOP commands handed to the POP3 engine and not yet answered; the
 * engine pipelines them on the wire when the server allows. */
#define SESSION_WINDOW 8
/* Messages fetched and not yet durable: bounds spool memory and disk. */
#define SESSION_MAX_UNCOMMITTED 16
/* While the spool's file system is under spool_min_free, how often a
 * paused session looks again. */
#define SESSION_SPACE_RECHECK_MS 1000

/*
 * The life of a session.  Every change goes through set_phase(), which
 * logs it; what is allowed in each phase is asserted where it matters.
 *
 *   CONNECTING -> LOGIN <-> STARTTLS
 *                   |
 *                   v
 *               TRANSFER -> QUIT -> ENDED -> FREEING
 *
 * Any phase before ENDED may go to ENDED (a failure, a lost connection).
 * ENDED lasts while commits the session submitted are unanswered.
 */
enum session_phase {
	SP_CONNECTING,	/* TCP connect, and POP3S's TLS handshake */
	SP_LOGIN,	/* greeting, CAPA, authentication, listing */
	SP_STARTTLS,	/* STLS accepted: the handshake runs */
	SP_TRANSFER,	/* listed: RETR, TOP and DELE as planned */
	SP_QUIT,	/* QUIT sent: its +OK applies the deletions */
	SP_ENDED,	/* the conversation is over; commits may be due */
	SP_FREEING,	/* the session is to be freed; nothing more */
};

static const char *const phase_names[] = {
	[SP_CONNECTING] = "connecting",
	[SP_LOGIN] = "login",
	[SP_STARTTLS] = "starttls",
	[SP_TRANSFER] = "transfer",
	[SP_QUIT] = "quit",
	[SP_ENDED] = "ended",
	[SP_FREEING] = "freeing",
};

/* The body being received, if any. */
enum body_kind {
	BODY_NONE,
	BODY_RETR,	/* through the pipe into the archive */
	BODY_DISCARD,	/* a RETR whose pipe failed: read and dropped */
	BODY_TOP,	/* a header block, hashed to prove identity */
};

/* A fetched message on its way through the committer. */
struct pending {
	struct commit_item it;
	struct session *s;
	uint32_t num;
	bool durable;		/* the committer's answer */
};

struct session {
	struct loop *loop;
	struct session_job *job;
	const struct conf_account *acct;
	enum session_phase phase;
	bool stop_fetching;	/* session_drain(): no new RETR or TOP */
	struct loop_timer t_space; /* paused under spool_min_free */
	struct conn *conn;
	struct pop3_client *pop3;
	struct plan *plan;	/* from the listing on */

	/* The delete policy, decided at the end of the transfer when
	 * policy_end is set (see the top of this file). */
	bool policy_end;
	bool policy_done;
	struct delete_policy policy;
	struct delete_msg *pol;	/* in listing order */
	unsigned char (*pol_sha)[32]; /* what each proven one is */
	size_t npol;

	unsigned inflight;	/* RETR/TOP queued and unanswered */
	unsigned uncommitted;	/* submitted, not yet answered */
	unsigned deles;		/* DELE queued and unanswered */
	/* RETRs whose body ended, and how many of them committed: with a
	 * server that deletes at QUIT what was retrieved, they decide
	 * whether QUIT is safe (plan_end()). */
	size_t retrieved, archived;

	struct {
		enum body_kind kind;
		uint32_t num;
		uint64_t received;	/* BODY_RETR: unstuffed bytes so far */
		uint64_t limit;		/* BODY_RETR: refused past this */
		struct pipe *pipe;	/* BODY_RETR */
		struct pipe_head top;	/* BODY_TOP: head_sha256 of TOP */
	} body;

	/* DELEs sent, with what each message was proven to be; they take
	 * effect only when the server answers QUIT with +OK. */
	struct mark {
		uint32_t num;
		struct db_deleted d;
	} *marked;
	size_t nmarked;
};

static void session_pump(struct session *s);
static bool session_implicit_delete(const struct session *s);
static void session_flush(struct session *s);
static void session_end(struct session *s);

static struct session_result *
result(struct session *s)
{
	return &s->job->result;
}

static bool
session_ended(const struct session *s)
{
	return s->phase >= SP_ENDED;
}

static void
set_phase(struct session *s, enum session_phase to)
{
	ASSERT(to != s->phase);
	log_trace("mbox=%s session: %s -> %s", s->acct->name,
	    phase_names[s->phase], phase_names[to]);
	s->phase = to;
}

/*
 * What the session is doing, for "... while <where>": the transport's
 * step until the POP3 conversation runs, then the message in hand, then
 * the POP3 engine's own state ("CAPA", "STLS", "DELE 4", ...).
 */
static const char *
session_where(const struct session *s, char *buf, size_t len)
{
	switch (s->phase) {
	case SP_CONNECTING:
		snprintf(buf, len, "connecting to %s:%d", s->acct->host,
		    s->acct->port);
		return buf;
	case SP_STARTTLS:
		return "negotiating TLS after STLS";
	default:
		break;
	}
	switch (s->body.kind) {
	case BODY_RETR:
	case BODY_DISCARD:
		snprintf(buf, len, "receiving message %" PRIu32, s->body.num);
		return buf;
	case BODY_TOP:
		snprintf(buf, len, "verifying message %" PRIu32, s->body.num);
		return buf;
	case BODY_NONE:
		break;
	}
	switch (pop3_client_state(s->pop3)) {
	case P3_GREETING:
		return "waiting for the greeting";
	case P3_READY:
		return s->uncommitted > 0 ?
		    "waiting for the archive to commit" : "idle";
	default:
		snprintf(buf, len, "in POP3 %s", pop3_client_what(s->pop3));
		return buf;
	}
}

/*
 * Records the session's first error; later ones are counted, not kept,
 * since they are usually its consequences.
 */
static void
session_error(struct session *s, enum session_outcome o, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
session_error(struct session *s, enum session_outcome o, const char *fmt, ...)
{
	struct session_result *r = result(s);
	char text[400], where[64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (o == SESSION_PERMANENT && s->job->quiet_permanent)
		log_debug("mbox=%s %s while %s", s->acct->name, text,
		    session_where(s, where, sizeof(where)));
	else
		log_warnx("mbox=%s %s while %s", s->acct->name, text,
		    session_where(s, where, sizeof(where)));
	if (r->outcome == SESSION_OK || (o == SESSION_PERMANENT &&
	    r->outcome == SESSION_TEMPORARY)) {
		if (r->outcome == SESSION_OK)
			snprintf(r->error, sizeof(r->error), "%s while %s",
			    text, session_where(s, where, sizeof(where)));
		r->outcome = o;
	}
}

/* Queues DELE for a message the plan says to delete, proven archived as
 * sha256. */
static void
session_dele(struct session *s, const struct plan_msg *m,
    const unsigned char sha256[32])
{
	struct mark *mk;

	ASSERT(s->phase == SP_TRANSFER);
	s->marked = xreallocarray(s->marked, s->nmarked + 1,
	    sizeof(*s->marked));
	mk = &s->marked[s->nmarked++];
	mk->num = m->num;
	mk->d.uidl = m->uidl;
	memcpy(mk->d.sha256, sha256, 32);
	s->deles++;
	pop3_client_dele(s->pop3, m->num);
}

static void
session_command(struct session *s, const struct plan_msg *m)
{
	if (m->action == PLAN_VERIFY)
		pop3_client_top(s->pop3, m->num, 0);
	else
		pop3_client_retr(s->pop3, m->num);
	s->inflight++;
}

/* ---- the delete policy ---- */

/* Where message num is in the listing, or -1 (the listing ascends). */
static ssize_t
policy_index(const struct session *s, uint32_t num)
{
	size_t lo = 0, hi = s->npol;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->pol[mid].num == num)
			return (ssize_t)mid;
		if (s->pol[mid].num < num)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

/* What the policy sees of the listing, before anything is proven. */
static void
policy_start(struct session *s, const struct pop3_msg *list, size_t n)
{
	struct facts *f = s->job->facts;
	const struct plan_msg *m;
	int64_t t;
	size_t i;

	s->pol = xcalloc(n ? n : 1, sizeof(*s->pol));
	s->pol_sha = xcalloc(n ? n : 1, sizeof(*s->pol_sha));
	s->npol = n;
	for (i = 0; i < n; i++) {
		s->pol[i].num = list[i].num;
		s->pol[i].size = list[i].size;
		m = plan_msg(s->plan, list[i].num);
		if (f != NULL && m != NULL && m->uidl != NULL &&
		    facts_seen(f, m->uidl, &t)) {
			s->pol[i].has_first_seen = true;
			s->pol[i].first_seen = t;
		}
	}
}

/*
 * Message num is proven archived in this poll, as the message whose
 * SHA-256 is sha256: committed, or its header matched by TOP.  Only these
 * are ever candidates for the policy's DELE.
 */
static void
policy_proven(struct session *s, uint32_t num, const unsigned char sha256[32])
{
	ssize_t i;
	int64_t t;

	if (!s->policy_end || (i = policy_index(s, num)) == -1)
		return;
	s->pol[i].archived = true;
	memcpy(s->pol_sha[i], sha256, 32);
	if (s->job->facts != NULL && facts_date(s->job->facts, sha256, &t)) {
		s->pol[i].has_date = true;
		s->pol[i].date = t;
	}
}

static void
dry_addf(struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Appends a line to the result's dry-run text. */
static void
dry_addf(struct session *s, const char *fmt, ...)
{
	struct session_result *r = result(s);
	size_t old = r->dry_run_text ? strlen(r->dry_run_text) : 0;
	char line[768];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(line))
		n = sizeof(line) - 1;
	r->dry_run_text = xreallocarray(r->dry_run_text, old + (size_t)n + 2,
	    1);
	memcpy(r->dry_run_text + old, line, (size_t)n);
	r->dry_run_text[old + (size_t)n] = '\n';
	r->dry_run_text[old + (size_t)n + 1] = '\0';
}

/*
 * Every message fetched or verified and every commit answered: the policy
 * chooses among what this poll proved archived, and DELE goes out for its
 * choice (under --dry-run, the choice is written down instead).
 */
static void
policy_decide(struct session *s)
{
	struct delete_totals t;
	const struct plan_msg *m;
	uint64_t mailbox = 0;
	char why[256];
	size_t i;

	/* What the server counts the mailbox as: STAT, asked for under
	 * keep_under; else what LIST said of each message. */
	if (!pop3_client_stat(s->pop3, &mailbox))
		for (i = 0; i < s->npol; i++)
			mailbox += s->pol[i].size;
	delete_policy_decide(&s->policy, s->pol, s->npol, mailbox,
	    s->job->now, &t);
	for (i = 0; i < s->npol; i++) {
		log_debug("mbox=%s message %" PRIu32 ": %s", s->acct->name,
		    s->pol[i].num, delete_policy_explain(&s->policy,
		    &s->pol[i], s->job->now, why, sizeof(why)));
		if (s->pol[i].reason == DELETE_KEEP)
			continue;
		m = plan_msg(s->plan, s->pol[i].num);
		if (s->job->dry_run) {
			dry_addf(s, "dry-run account=%s uidl=%s size=%" PRIu64
			    " %s reason=\"%s\"", s->acct->name,
			    m != NULL && m->uidl != NULL ? m->uidl : "-",
			    s->pol[i].size, s->pol[i].capped ?
			    "kept" : "delete",
			    delete_policy_explain(&s->policy, &s->pol[i],
			    s->job->now, why, sizeof(why)));
			continue;
		}
		if (!delete_policy_deletes(&s->pol[i]) || m == NULL)
			continue;
		/* The decision's own invariant, checked where DELE goes. */
		ASSERT(s->pol[i].archived);
		log_debug("mbox=%s uidl=%s DELE: %s", s->acct->name,
		    m->uidl != NULL ? m->uidl : "-",
		    delete_policy_explain(&s->policy, &s->pol[i], s->job->now,
		    why, sizeof(why)));
		session_dele(s, m, s->pol_sha[i]);
	}
	if (s->job->dry_run)
		dry_addf(s, "dry-run account=%s would delete %zu messages "
		    "(%" PRIu64 " bytes), %zu more kept by caps; mailbox %"
		    PRIu64 " -> %" PRIu64 " bytes", s->acct->name, t.deleted,
		    t.deleted_bytes, t.capped, mailbox, t.remaining);
	else if (t.deleted > 0 || t.capped > 0)
		log_info("mbox=%s delete policy: %zu messages (%" PRIu64
		    " bytes) to delete, %zu kept by caps", s->acct->name,
		    t.deleted, t.deleted_bytes, t.capped);
}

/* ---- POP3 engine events ---- */

static void
on_start_tls(void *arg)
{
	struct session *s = arg;

	set_phase(s, SP_STARTTLS);
	conn_starttls(s->conn, s->job->tls);
}

/* The size bounds of plan_body_limit(), from the configuration. */
static void
session_size_params(const struct session *s, struct plan_params *pp)
{
	const struct conf *cf = s->job->conf;

	pp->max_size = cf->max_message_size;
	pp->size_factor = cf->list_size_factor;
	pp->size_slack = cf->list_size_slack;
}

static void
on_ready(void *arg, const struct pop3_msg *list, size_t n)
{
	struct session *s = arg;
	struct session_result *r = result(s);
	const struct pop3_expire *ex = pop3_client_expire(s->pop3);
	const struct pop3_login_delay *ld = pop3_client_login_delay(s->pop3);
	struct plan_params pp = {
		.known = s->job->known,
		.refused = s->job->refused,
		.delete_archived = s->acct->delete ==
		    CONF_DELETE_AFTER_ARCHIVE && !s->job->dry_run,
		.has_top = pop3_client_has_top(s->pop3),
		.implicit_delete = session_implicit_delete(s),
		.now = (int64_t)time(NULL),
	};

	/* What this login's CAPA said, for the scheduler and dashboards;
	 * an EXPIRE we cannot read is taken as 0, as plan.h does. */
	r->login_at = time(NULL);
	if (ex->kind == POP3_EXPIRE_NEVER)
		snprintf(r->expire, sizeof(r->expire), "NEVER");
	else if (ex->kind != POP3_EXPIRE_NONE)
		snprintf(r->expire, sizeof(r->expire), "%" PRIu32,
		    ex->kind == POP3_EXPIRE_DAYS ? ex->days : 0);
	r->login_delay = ld->present ? (int64_t)ld->seconds : -1;

	session_size_params(s, &pp);
	r->listed = n;
	s->plan = plan_new(&pp, list, n);
	r->skipped = plan_skipped(s->plan);
	if (r->skipped > 0)
		log_info("mbox=%s %" PRIu64 " messages refused earlier are "
		    "left on the server (see the view ingestd.refusals)",
		    s->acct->name, r->skipped);
	s->policy_end = s->job->dry_run ||
	    s->acct->delete == CONF_DELETE_POLICY;
	if (s->policy_end) {
		delete_policy_from_conf(s->acct, &s->policy);
		policy_start(s, list, n);
	}
	/* The plan keeps pointing into what it hands over here: the result
	 * outlives the plan (session_free() frees the plan first). */
	r->present = plan_take_present(s->plan, &r->npresent,
	    &r->present_mem);
	if (r->present == NULL)
		log_info("mbox=%s server gives no UIDL: every message is "
		    "fetched and matched by content", s->acct->name);
	if (plan_reproven(s->plan) > 0)
		log_info("mbox=%s server offers no TOP: %zu messages archived "
		    "earlier are fetched again to prove them", s->acct->name,
		    plan_reproven(s->plan));
	log_debug("mbox=%s %zu messages listed", s->acct->name, n);
	set_phase(s, SP_TRANSFER);
	session_pump(s);
}

/* The most body bytes message m may have (plan_body_limit()). */
static uint64_t
body_limit(const struct session *s, const struct plan_msg *m)
{
	struct plan_params pp = { 0 };

	session_size_params(s, &pp);
	if (m == NULL)
		return pp.max_size;
	return plan_body_limit(&pp, m->list_size);
}

/*
 * Records that this poll refused message num, so that the plan of later
 * polls can skip it (plan_refused()).  A message without a UIDL has no
 * identity from poll to poll, and is not recorded.
 */
static void
session_refusal(struct session *s, uint32_t num, enum known_refused why,
    uint64_t limit, const char *error)
{
	struct session_result *r = result(s);
	const struct plan_msg *m = plan_msg(s->plan, num);
	struct db_refusal *f;

	if (m == NULL || m->uidl == NULL)
		return;
	r->refusals = xreallocarray(r->refusals, r->nrefusals + 1,
	    sizeof(*r->refusals));
	f = &r->refusals[r->nrefusals++];
	f->uidl = xstrdup(m->uidl);
	f->list_size = m->list_size;
	f->reason = why;
	f->size_limit = limit;
	f->error = xstrdup(error);
}

static void
body_start(struct session *s, enum body_kind kind, uint32_t num)
{
	struct plan_msg *m;
	struct pipe_params pp = {
		.spool_dir = s->job->spool_dir,
		.spool_mem = s->job->conf->spool_mem,
		.level = s->job->conf->zstd_level,
		.dict = s->job->dict,
		/* Indexed in the transaction that stores it (DESIGN.md). */
		.index = true,
	};

	s->body.kind = kind;
	s->body.num = num;
	if (kind == BODY_TOP) {
		pipe_head_reset(&s->body.top);
		return;
	}
	m = plan_msg(s->plan, num);
	pp.size_hint = m ? m->list_size : 0;
	s->body.received = 0;
	s->body.limit = body_limit(s, m);
	s->body.pipe = pipe_new(&pp);
}

/* "512 MiB", "1536 KiB", "1000 bytes". */
static const char *
fmt_size(uint64_t v, char *buf, size_t len)
{
	static const char *const units[] = { "bytes", "KiB", "MiB", "GiB" };
	unsigned u = 0;

	while (u < 3 && v != 0 && v % 1024 == 0) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, "%" PRIu64 " %s", v, units[u]);
	return buf;
}

/*
 * A body past its bound is refused the moment it crosses it: nothing more
 * is spooled, and the connection is closed without QUIT so that nothing
 * is deleted and the server keeps the message.  A server that streams
 * without end thus costs at most the bound in spool space, not the hours
 * of session_timeout.
 */
static int
body_refuse(struct session *s, uint32_t num, uint64_t received)
{
	const struct conf *cf = s->job->conf;
	struct plan_msg *m = plan_msg(s->plan, num);
	char a[32], text[160];

	pipe_free(&s->body.pipe);
	s->body.kind = BODY_DISCARD;
	result(s)->errors++;
	if (received > cf->max_message_size)
		snprintf(text, sizeof(text), "message %" PRIu32 " exceeds "
		    "max_message_size (%s)", num,
		    fmt_size(cf->max_message_size, a, sizeof(a)));
	else
		snprintf(text, sizeof(text), "message %" PRIu32 ": %" PRIu64
		    " bytes received, LIST said %" PRIu64, num, received,
		    m ? m->list_size : 0);
	session_error(s, SESSION_TEMPORARY, "%s", text);
	session_refusal(s, num, KNOWN_TOO_LARGE, s->body.limit, text);
	return -1;
}

static int
on_body(void *arg, enum pop3_cmd cmd, uint32_t num, const char *p, size_t n)
{
	struct session *s = arg;

	/* Pipelined bodies follow each other: each starts with its first
	 * bytes, and ends at body_end. */
	if (s->body.kind == BODY_NONE)
		body_start(s, cmd == POP3_CMD_TOP ? BODY_TOP : BODY_RETR, num);
	switch (s->body.kind) {
	case BODY_TOP:
		pipe_head_update(&s->body.top, p, n);
		break;
	case BODY_RETR:
		if (n > s->body.limit - s->body.received)
			return body_refuse(s, num, s->body.received + n);
		s->body.received += n;
		if (pipe_write(s->body.pipe, p, n) == 0)
			break;
		/* A local failure (spool disk full) costs this message
		 * only: it stays on the server and the body is drained. */
		session_error(s, SESSION_TEMPORARY, "message %" PRIu32 ": %s",
		    num, pipe_error(s->body.pipe));
		session_refusal(s, num, KNOWN_FAILED, s->body.limit,
		    pipe_error(s->body.pipe));
		result(s)->errors++;
		pipe_free(&s->body.pipe);
		s->body.kind = BODY_DISCARD;
		break;
	case BODY_DISCARD:
	case BODY_NONE:
		break;
	}
	return 0;
}

static void
finish_top(struct session *s, uint32_t num)
{
	struct plan_msg *m = plan_msg(s->plan, num);
	unsigned char head[32];

	if (s->body.kind == BODY_NONE)	/* an empty TOP body */
		pipe_head_reset(&s->body.top);
	/*
	 * The header block as the archive's hash stage delimits it, by the
	 * same code: lines a server adds after the empty line of TOP n 0
	 * (a blank line, a body line) do not count.
	 */
	pipe_head_final(&s->body.top, head, NULL);
	s->body.kind = BODY_NONE;
	if (m == NULL)
		return;
	switch (plan_verified(s->plan, m, head)) {
	case PLAN_KEEP:
		policy_proven(s, m->num, m->known->sha256);
		break;
	case PLAN_DELETE:
		session_dele(s, m, m->known->sha256);
		break;
	case PLAN_REFETCH:
		log_debug("mbox=%s uidl=%s header differs from the archived "
		    "one; fetching", s->acct->name, m->uidl);
		session_command(s, m);
		break;
	}
}

/*
 * On the committer's thread: hand the answer to the session's own loop.
 * The session outlives its commits, and s->loop never changes.
 */
static void on_commit_answered(void *arg);

static void
commit_answered(struct commit_item *it, bool durable)
{
	struct pending *pc = it->arg;

	pc->durable = durable;
	loop_post(pc->s->loop, on_commit_answered, pc);
}

static void
finish_retr(struct session *s, uint32_t num)
{
	struct plan_msg *m = plan_msg(s->plan, num);
	struct pending *pc;
	struct pipe_result res;

	if (s->body.kind == BODY_NONE)	/* an empty body: no on_body() */
		body_start(s, BODY_RETR, num);
	if (s->body.kind == BODY_DISCARD) {
		s->body.kind = BODY_NONE;
		return;
	}
	s->body.kind = BODY_NONE;
	if (pipe_finish(s->body.pipe, &res) == -1) {
		session_error(s, SESSION_TEMPORARY, "message %" PRIu32 ": %s",
		    num, pipe_error(s->body.pipe));
		session_refusal(s, num, KNOWN_FAILED, s->body.limit,
		    pipe_error(s->body.pipe));
		result(s)->errors++;
		pipe_free(&s->body.pipe);
		return;
	}
	pipe_free(&s->body.pipe);
	result(s)->fetched++;
	result(s)->bytes += res.size;

	pc = xcalloc(1, sizeof(*pc));
	pc->s = s;
	pc->num = num;
	pc->it.account_id = s->job->account_id;
	pc->it.uidl = (m && m->uidl) ? xstrdup(m->uidl) : NULL;
	pc->it.list_size = m ? m->list_size : 0;
	pc->it.res = res;
	pc->it.done = commit_answered;
	pc->it.arg = pc;
	s->uncommitted++;
	committer_submit(s->job->committer, &pc->it);
}

static void
on_body_end(void *arg, enum pop3_cmd cmd, uint32_t num)
{
	struct session *s = arg;

	ASSERT(s->inflight > 0);
	s->inflight--;
	if (cmd == POP3_CMD_TOP)
		finish_top(s, num);
	else {
		s->retrieved++;
		finish_retr(s, num);
	}
	session_pump(s);
}

static void
on_deleted(void *arg, uint32_t num)
{
	struct session *s = arg;

	ASSERT(s->deles > 0);
	s->deles--;
	session_pump(s);
}

static void
on_cmd_failed(void *arg, enum pop3_cmd cmd, uint32_t num, const char *text)
{
	struct session *s = arg;
	size_t i;

	result(s)->errors++;
	if (cmd == POP3_CMD_DELE) {
		ASSERT(s->deles > 0);
		s->deles--;
		/* Not marked: it must not be recorded as deleted. */
		for (i = 0; i < s->nmarked; i++)
			if (s->marked[i].num == num) {
				s->marked[i] = s->marked[--s->nmarked];
				break;
			}
		session_error(s, SESSION_TEMPORARY, "DELE %" PRIu32
		    " refused: %s", num, text);
	} else {
		ASSERT(s->inflight > 0);
		s->inflight--;
		session_error(s, SESSION_TEMPORARY, "%s %" PRIu32
		    " refused: %s", cmd == POP3_CMD_TOP ? "TOP" : "RETR",
		    num, text);
	}
	session_pump(s);
}

static void
on_done(void *arg)
{
	struct session *s = arg;
	struct session_result *r = result(s);
	size_t i;

	/* QUIT +OK: the server has applied the deletions. */
	r->deleted_v = xcalloc(s->nmarked ? s->nmarked : 1,
	    sizeof(*r->deleted_v));
	for (i = 0; i < s->nmarked; i++) {
		r->deleted_v[i] = s->marked[i].d;
		if (s->marked[i].d.uidl != NULL)
			r->deleted_v[i].uidl = xstrdup(s->marked[i].d.uidl);
	}
	r->ndeleted = r->deleted = s->nmarked;
	session_end(s);
}

static void
on_failed(void *arg, enum pop3_fail why, const char *text)
{
	struct session *s = arg;
	enum session_outcome o = SESSION_TEMPORARY;

	if (why == POP3_FAIL_AUTH)
		result(s)->auth_refused = true;
	switch (why) {
	case POP3_FAIL_AUTH:
	case POP3_FAIL_PERM:
	case POP3_FAIL_NO_STLS:
	case POP3_FAIL_NO_AUTH:
		o = SESSION_PERMANENT;
		break;
	case POP3_FAIL_TEMP:
	case POP3_FAIL_PROTOCOL:
	case POP3_FAIL_LOCAL:
		break;
	}
	session_error(s, o, "%s", text);
	session_end(s);
}

static const struct pop3_client_cb pop3_cb = {
	.start_tls = on_start_tls,
	.ready = on_ready,
	.body = on_body,
	.body_end = on_body_end,
	.deleted = on_deleted,
	.cmd_failed = on_cmd_failed,
	.done = on_done,
	.failed = on_failed,
};

/* ---- flow ---- */

/*
 * Whether the server deletes at QUIT every message retrieved, DELE or not:
 * EXPIRE 0 in CAPA (this user's, after login), or the account says so
 * (Gmail's "when messages are accessed with POP" does it, unannounced).
 */
static bool
session_implicit_delete(const struct session *s)
{
	return s->acct->implicit_delete ||
	    pop3_client_expires_at_quit(s->pop3);
}

/* Retrieved and answered, but not archived: dropped, or not committed. */
static size_t
session_lost(const struct session *s)
{
	return s->retrieved - s->archived - s->uncommitted;
}

/*
 * Ends a poll without QUIT (plan_end()): the server enters no UPDATE
 * state and deletes nothing, not even what this poll marked with DELE;
 * the next poll proves those again and deletes them.
 */
static void
session_abandon(struct session *s)
{
	log_warnx("mbox=%s server deletes retrieved messages at QUIT (%s); "
	    "%zu messages not archived: closing without QUIT", s->acct->name,
	    s->acct->implicit_delete ? "implicit_delete" : "EXPIRE 0",
	    session_lost(s));
	if (result(s)->outcome == SESSION_OK)
		session_error(s, SESSION_TEMPORARY, "%zu messages not "
		    "archived: closed without QUIT", session_lost(s));
	session_end(s);
}

/*
 * Whether the process has found the spool's file system under
 * spool_min_free, and said so: the episode is logged once for every
 * session of every worker, when it starts and when it ends.
 */
static atomic_bool space_low_logged;

static void
on_space_timer(struct loop *l, void *arg)
{
	struct session *s = arg;

	session_pump(s);
}

/*
 * Whether the spool's file system has spool_min_free bytes available, so
 * that another message may be received.  If not, the session pauses: it
 * sends no RETR or TOP, fails nothing and spools nothing more, and looks
 * again every SESSION_SPACE_RECHECK_MS.  Messages already in flight
 * finish (each is bounded by max_message_size).  A statvfs that fails is
 * no reason to stop archiving.
 */
static bool
session_space_ok(struct session *s)
{
	uint64_t min = s->job->conf->spool_min_free, avail;
	char a[32], b[32];

	if (min == 0)
		return true;
	if (spool_dir_avail(s->job->spool_dir, NULL, &avail) == -1) {
		log_debug("mbox=%s statvfs %s: %s", s->acct->name,
		    s->job->spool_dir, strerror(errno));
		return true;
	}
	if (avail >= min) {
		if (atomic_exchange(&space_low_logged, false))
			log_info("spool: %s available on %s again: receiving "
			    "resumes", fmt_size(avail, a, sizeof(a)),
			    s->job->spool_dir);
		return true;
	}
	if (!atomic_exchange(&space_low_logged, true))
		log_warnx("spool: %s available on %s, under spool_min_free "
		    "(%s): sessions pause receiving until space returns",
		    fmt_size(avail, a, sizeof(a)), s->job->spool_dir,
		    fmt_size(min, b, sizeof(b)));
	return false;
}

/* Hands the engine more work, or QUIT once everything is answered. */
static void
session_pump(struct session *s)
{
	struct plan_msg *m;
	bool implicit, paused = false;

	if (s->phase != SP_TRANSFER)
		goto out;
	implicit = session_implicit_delete(s);
	/* Under implicit delete, a loss ends the poll without QUIT: what
	 * it would retrieve next would only be retrieved again. */
	if (!s->stop_fetching && !plan_keep_fetching(implicit,
	    session_lost(s))) {
		log_debug("mbox=%s a retrieved message was not archived: no "
		    "more RETR in this poll", s->acct->name);
		s->stop_fetching = true;
	}
	if (!s->stop_fetching && !plan_exhausted(s->plan) &&
	    s->inflight < SESSION_WINDOW &&
	    s->uncommitted < SESSION_MAX_UNCOMMITTED &&
	    !session_space_ok(s)) {
		paused = true;
		if (s->t_space.slot == 0)
			loop_timer_add(s->loop, &s->t_space,
			    SESSION_SPACE_RECHECK_MS, on_space_timer, s);
	}
	while (!paused && !s->stop_fetching && s->inflight < SESSION_WINDOW &&
	    s->uncommitted < SESSION_MAX_UNCOMMITTED &&
	    (m = plan_next(s->plan)) != NULL)
		session_command(s, m);
	/* With PIPELINING, QUIT follows the last DELEs without waiting for
	 * their answers: they arrive first, in order, and a refused DELE is
	 * simply not applied. */
	if ((s->stop_fetching || plan_exhausted(s->plan)) &&
	    s->inflight == 0 && s->uncommitted == 0 && s->policy_end &&
	    !s->policy_done) {
		s->policy_done = true;
		/* A poll that stopped early has not proven all it could. */
		if (!s->stop_fetching)
			policy_decide(s);
	}
	if ((s->stop_fetching || plan_exhausted(s->plan)) &&
	    s->inflight == 0 && s->uncommitted == 0 &&
	    (s->deles == 0 || pop3_client_pipelining(s->pop3))) {
		if (plan_end(implicit, s->retrieved, s->archived) ==
		    PLAN_END_ABANDON) {
			session_abandon(s);
			return;
		}
		/* A dry run deletes nothing, and QUIT would have such a
		 * server delete what was retrieved: no QUIT, no UPDATE. */
		if (implicit && s->job->dry_run && s->retrieved > 0) {
			log_info("mbox=%s dry run: the server deletes "
			    "retrieved messages at QUIT (%s); closing without "
			    "QUIT",
			    s->acct->name, s->acct->implicit_delete ?
			    "implicit_delete" : "EXPIRE 0");
			session_end(s);
			return;
		}
		set_phase(s, SP_QUIT);
		pop3_client_quit(s->pop3);
	}
out:
	session_flush(s);
}

static void
session_flush(struct session *s)
{
	const char *p;
	size_t n, w;

	/* Nothing goes out before the transport is up, during the STLS
	 * handshake, or once the conversation is over. */
	if (s->phase == SP_CONNECTING || s->phase == SP_STARTTLS ||
	    session_ended(s))
		return;
	for (;;) {
		pop3_client_pending(s->pop3, &p, &n);
		if (n == 0)
			break;
		w = conn_write(s->conn, p, n);
		pop3_client_sent(s->pop3, w);
		if (w < n)
			break;
	}
	conn_set_waiting(s->conn, !pop3_client_idle(s->pop3));
}

static void
on_conn(struct conn *c, enum conn_ev ev, void *arg)
{
	struct session *s = arg;
	bool after_stls;
	const char *p;
	size_t n;

	switch (ev) {
	case CONN_EV_UP:
		after_stls = s->phase == SP_STARTTLS;
		log_debug("mbox=%s %s: %s", s->acct->name,
		    after_stls ? "STLS" : "connected", conn_describe(c));
		set_phase(s, SP_LOGIN);
		if (after_stls)
			pop3_client_tls_ready(s->pop3);
		session_flush(s);
		break;
	case CONN_EV_DATA:
		p = conn_rdata(c, &n);
		if (pop3_client_feed(s->pop3, p, n) == -1 || session_ended(s))
			return;	/* on_failed() or on_done() ended it */
		if (s->phase == SP_STARTTLS)
			return;	/* conn discarded the plaintext rest */
		conn_consume(c, n);
		session_flush(s);
		break;
	case CONN_EV_LOWAT:
		session_flush(s);
		break;
	case CONN_EV_CLOSED:
	case CONN_EV_ERROR:
	case CONN_EV_TIMEOUT:
		if (session_ended(s))
			break;
		session_error(s, conn_cert_failed(c) ? SESSION_PERMANENT :
		    SESSION_TEMPORARY, "%s", ev == CONN_EV_CLOSED &&
		    conn_error(c)[0] == '\0' ?
		    "server closed the connection" : conn_error(c));
		session_end(s);
		break;
	}
}

/* ---- lifecycle ---- */

static void
session_free(void *arg)
{
	struct session *s = arg;
	struct session_job *job = s->job;

	conn_free(&s->conn);
	pop3_client_free(&s->pop3);
	pipe_free(&s->body.pipe);
	pipe_head_release(&s->body.top);
	plan_free(&s->plan);
	free(s->marked); s->marked = NULL;
	free(s->pol); s->pol = NULL;
	free(s->pol_sha); s->pol_sha = NULL;
	free(s); s = NULL;
	job->session = NULL;
	job->finished(job);
}

/*
 * The conversation is over (QUIT answered, failure, or connection lost),
 * or, once over, a commit was answered.  The session is freed once every
 * commit it submitted has been answered, so the committer never calls
 * back into freed memory.
 */
static void
session_end(struct session *s)
{
	loop_timer_cancel(s->loop, &s->t_space);
	if (!session_ended(s)) {
		set_phase(s, SP_ENDED);
		if (conn_state(s->conn) != CONN_CLOSING)
			conn_close(s->conn);
		pipe_free(&s->body.pipe);
		s->body.kind = BODY_NONE;
	}
	if (s->uncommitted > 0 || s->phase == SP_FREEING)
		return;
	set_phase(s, SP_FREEING);
	log_debug("mbox=%s session ended", s->acct->name);
	loop_defer(s->loop, session_free, s);
}

/* A commit answered, on the session's own loop. */
static void
on_commit_answered(void *arg)
{
	struct pending *pc = arg;
	struct commit_item *it = &pc->it;
	struct session *s = pc->s;
	struct plan_msg *m;

	ASSERT(s->uncommitted > 0);
	s->uncommitted--;
	if (pc->durable) {
		s->archived++;
		result(s)->archived++;
		if (it->blob_existed)
			result(s)->deduplicated++;
		policy_proven(s, pc->num, it->res.sha256);
		if (s->phase == SP_TRANSFER &&
		    plan_delete_archived(s->plan) &&
		    (m = plan_msg(s->plan, pc->num)) != NULL)
			session_dele(s, m, it->res.sha256);
	} else {
		result(s)->errors++;
		session_error(s, SESSION_TEMPORARY, "message %" PRIu32
		    " not archived: %s", pc->num, it->error);
		session_refusal(s, pc->num, KNOWN_FAILED,
		    body_limit(s, plan_msg(s->plan, pc->num)), it->error);
	}
	free(it->uidl); it->uidl = NULL;
	free(pc); pc = NULL;
	if (session_ended(s))
		session_end(s);
	else
		session_pump(s);
}

void
session_drain(void *arg)
{
	struct session_job *job = arg;
	struct session *s = job->session;

	if (s == NULL)		/* already over */
		return;
	s->stop_fetching = true;
	session_pump(s);
}

/* conf.h's login methods are passed to pop3/ as they are. */
_Static_assert((int)CONF_AUTH_PLAIN == (int)POP3_AUTH_PLAIN &&
    (int)CONF_AUTH_XOAUTH2 == (int)POP3_AUTH_XOAUTH2 &&
    (int)CONF_AUTH_OAUTHBEARER == (int)POP3_AUTH_OAUTHBEARER,
    "enum conf_auth and enum pop3_auth differ");

void
session_start(void *arg)
{
	struct session_job *job = arg;
	const struct conf_account *a = job->acct;
	const struct conf *cf = job->conf;
	struct session *s = xcalloc(1, sizeof(*s));
	struct pop3_client_params pp = {
		.user = a->user,
		.password = a->password,
		.token = job->token,
		.host = a->host,
		.port = (unsigned)a->port,
		.auth = (enum pop3_auth)a->auth,
		.starttls = a->tls == CONF_TLS_STARTTLS,
		.md5 = hash_md5,
		.stat = a->delete == CONF_DELETE_POLICY &&
		    (a->policy.rules & DELETE_R_KEEP_UNDER) != 0,
	};
	struct conn_params cp = {
		.addr = job->addr,
		.addrlen = job->addrlen,
		.more_addrs = job->more_addrs,
		.nmore = job->nmore,
		.host = a->host,
		.tls = a->tls == CONF_TLS_IMPLICIT ? job->tls : NULL,
		.connect_timeout_ms = cf->connect_timeout * 1000,
		.idle_timeout_ms = cf->command_timeout * 1000,
		.session_timeout_ms = cf->session_timeout * 1000,
	};

	s->loop = job->loop;
	s->job = job;
	s->acct = a;
	s->phase = SP_CONNECTING;
	job->session = s;
	pipe_head_init(&s->body.top);
	s->pop3 = pop3_client_new(&pp, &pop3_cb, s);
	s->conn = conn_new(s->loop, &cp, on_conn, s);
}

void
session_result_release(struct session_result *r)
{
	size_t i;

	for (i = 0; i < r->ndeleted; i++)
		free((char *)r->deleted_v[i].uidl);
	free(r->deleted_v); r->deleted_v = NULL;
	free(r->present); r->present = NULL;
	free(r->present_mem); r->present_mem = NULL;
	free(r->dry_run_text); r->dry_run_text = NULL;
	for (i = 0; i < r->nrefusals; i++) {
		free((char *)r->refusals[i].uidl);
		free((char *)r->refusals[i].error);
	}
	free(r->refusals); r->refusals = NULL;
	r->ndeleted = r->npresent = r->nrefusals = 0;
}
