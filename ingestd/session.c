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
 */
#include "session.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "log.h"
#include "loop.h"
#include "worker.h"
#include "xmalloc.h"
#include "pop3/client.h"
#include "store/commit.h"
#include "store/hash.h"
#include "store/known.h"
#include "store/pipe.h"
#include "store/spool.h"

/* RETR/TOP commands handed to the POP3 engine and not yet answered; the
 * engine pipelines them on the wire when the server allows. */
#define SESSION_WINDOW 8
/* Messages fetched and not yet durable: bounds spool memory and disk. */
#define SESSION_MAX_UNCOMMITTED 16

enum msg_action {
	MSG_SKIP,	/* archived; leave it (policy or no proof needed) */
	MSG_FETCH,	/* RETR, archive, then DELE per policy */
	MSG_VERIFY,	/* archived earlier: TOP proves identity, then DELE */
};

struct msg {
	uint32_t num;
	uint64_t list_size;
	const char *uidl;	/* the POP3 engine's, or one of owned[] */
	enum msg_action action;
	const struct known_entry *known; /* for MSG_VERIFY */
};

/* A fetched message on its way through the committer. */
struct pending {
	struct commit_item it;
	struct session *s;
	uint32_t num;
};

struct session {
	struct worker *w;
	struct session_job *job;
	const struct conf_account *acct;
	struct conn *conn;
	struct pop3_client *pop3;

	struct msg *msgs;
	size_t nmsgs;
	char **owned;		/* UIDLs rewritten by uidl_clean() */
	size_t nowned;
	size_t next;		/* next entry of msgs to act on */
	unsigned inflight;	/* RETR/TOP queued and unanswered */
	unsigned uncommitted;	/* submitted, not yet answered */
	unsigned deles;		/* DELE queued and unanswered */

	struct pipe *pipe;	/* the RETR body being received */
	uint32_t pipe_num;
	bool pipe_failed;
	struct hash_sha256 top;	/* the TOP header being received */
	bool top_active;

	/* DELEs sent, with what each message was proven to be; they take
	 * effect only when the server answers QUIT with +OK. */
	struct mark {
		uint32_t num;
		struct db_deleted d;
	} *marked;
	size_t nmarked;

	uint32_t top_num;
	bool connected;		/* the transport came up once */
	bool tls_pending;	/* STLS accepted, handshake running */
	bool draining;
	bool quit_sent;
	bool ended;		/* the POP3 conversation is over */
	bool finished;		/* job->finished() has been called */
	char action[64];	/* what we are doing, for log lines */
};

static void session_pump(struct session *s);
static void session_flush(struct session *s);
static void session_end(struct session *s);

static struct session_result *
result(struct session *s)
{
	return &s->job->result;
}

/*
 * Records the session's first error; later ones are counted, not kept,
 * since they are usually its consequences.
 */
static void
session_error(struct session *s, enum session_outcome o, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * What the session is doing, for "... while <where>": the transport's
 * step until the POP3 conversation runs, then the message in hand, then
 * the POP3 engine's own state ("CAPA", "STLS", "DELE 4", ...).
 */
static const char *
session_where(const struct session *s, char *buf, size_t len)
{
	const char *st;

	if (!s->connected || s->tls_pending)
		return s->action;
	if (s->pipe != NULL) {
		snprintf(buf, len, "receiving message %" PRIu32, s->pipe_num);
		return buf;
	}
	if (s->top_active) {
		snprintf(buf, len, "verifying message %" PRIu32, s->top_num);
		return buf;
	}
	st = pop3_client_state(s->pop3);
	if (strcmp(st, "greeting") == 0)
		return "waiting for the greeting";
	if (strcmp(st, "ready") == 0)
		return s->uncommitted > 0 ?
		    "waiting for the archive to commit" : "idle";
	snprintf(buf, len, "in POP3 %s", st);
	return buf;
}

static void
session_error(struct session *s, enum session_outcome o, const char *fmt, ...)
{
	struct session_result *r = result(s);
	char text[400], where[64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
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

static void
set_action(struct session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
set_action(struct session *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->action, sizeof(s->action), fmt, ap);
	va_end(ap);
}

/* The listing is in ascending message-number order (checked by pop3/). */
static struct msg *
msg_by_num(struct session *s, uint32_t num)
{
	size_t lo = 0, hi = s->nmsgs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->msgs[mid].num == num)
			return &s->msgs[mid];
		if (s->msgs[mid].num < num)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static bool
delete_after_archive(const struct session *s)
{
	return s->acct->delete == CONF_DELETE_AFTER_ARCHIVE;
}

/* Queue DELE for a message proven archived. */
static void
session_dele(struct session *s, const struct msg *m,
    const unsigned char sha256[32])
{
	struct mark *mk;

	if (!delete_after_archive(s) || s->ended)
		return;
	s->marked = xreallocarray(s->marked, s->nmarked + 1,
	    sizeof(*s->marked));
	mk = &s->marked[s->nmarked++];
	mk->num = m->num;
	mk->d.uidl = m->uidl;
	memcpy(mk->d.sha256, sha256, 32);
	s->deles++;
	pop3_client_dele(s->pop3, m->num);
}

/* ---- POP3 engine events ---- */

static void
on_start_tls(void *arg)
{
	struct session *s = arg;

	set_action(s, "negotiating TLS after STLS");
	s->tls_pending = true;
	conn_starttls(s->conn, s->job->tls);
}

/*
 * Chooses what to do with each listed message.  A UIDL is never proof on
 * its own (servers reset and renumber them): a message listed under the
 * UIDL and LIST size of one archived earlier, and not since confirmed
 * deleted, is taken for that message only once TOP shows the very header
 * block archived (its trace and Message-ID with it).  Then it is left
 * alone, or deleted under "after-archive"; otherwise it is fetched and
 * proven by its full SHA-256.  Only a server without TOP leaves size and
 * UIDL as the sole evidence, and then only for not downloading again.
 */
static enum msg_action
plan(struct session *s, struct msg *m, bool uidl_unique, bool has_top)
{
	const struct known_entry *e;

	if (m->uidl == NULL || !uidl_unique)
		return MSG_FETCH;
	for (e = known_find(s->job->known, m->uidl); e != NULL;
	    e = known_next(e)) {
		/* A message the server confirmed deleted cannot be listed
		 * again: its UIDL has been reused for another message. */
		if (e->list_size != m->list_size || e->server_deleted)
			continue;
		m->known = e;
		if (has_top)
			return MSG_VERIFY;
		/* Without TOP the only proof is the whole message again. */
		return delete_after_archive(s) ? MSG_FETCH : MSG_SKIP;
	}
	return MSG_FETCH;
}

/*
 * RFC 1939 limits a UIDL to 0x21..0x7E.  A server that sends other bytes
 * still gets its mail archived: such a UIDL is stored with those bytes as
 * %XX, which is stable from poll to poll.  (A collision with a real UIDL
 * spelt that way costs nothing: a UIDL is never proof on its own.)
 * Returns uidl itself when it is clean, else a string the caller frees.
 */
static char *
uidl_clean(char *uidl)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;
	char *out, *o;

	for (p = (const unsigned char *)uidl; *p != '\0'; p++)
		if (*p < 0x21 || *p > 0x7e)
			break;
	if (*p == '\0')
		return uidl;
	o = out = xmalloc(strlen(uidl) * 3 + 1);
	for (p = (const unsigned char *)uidl; *p != '\0'; p++)
		if (*p < 0x21 || *p > 0x7e) {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 0xf];
		} else
			*o++ = (char)*p;
	*o = '\0';
	return out;
}

static int
cmp_str(const void *a, const void *b)
{
	const char *const *x = a, *const *y = b;

	return strcmp(*x, *y);
}

static void
on_ready(void *arg, const struct pop3_msg *list, size_t n)
{
	struct session *s = arg;
	struct session_result *r = result(s);
	bool all_uidl = true, has_top = pop3_client_has_top(s->pop3);
	char **sorted;
	size_t i;

	r->listed = n;
	s->msgs = xcalloc(n ? n : 1, sizeof(*s->msgs));
	s->nmsgs = n;
	sorted = xcalloc(n ? n : 1, sizeof(*sorted));
	for (i = 0; i < n; i++) {
		char *u = list[i].uidl ? uidl_clean(list[i].uidl) : NULL;

		if (u != list[i].uidl) {
			s->owned = xreallocarray(s->owned, s->nowned + 1,
			    sizeof(*s->owned));
			s->owned[s->nowned++] = u;
		}
		s->msgs[i].num = list[i].num;
		s->msgs[i].list_size = list[i].size;
		s->msgs[i].uidl = u;
		if (u == NULL)
			all_uidl = false;
		else
			sorted[i] = u;
	}
	/* RFC 1939 allows one UIDL for two messages; such UIDLs prove
	 * nothing, so those messages are fetched and checked by content. */
	if (all_uidl) {
		qsort(sorted, n, sizeof(*sorted), cmp_str);
		r->present = xcalloc(n ? n : 1, sizeof(*r->present));
		for (i = 0; i < n; i++)
			r->present[i] = xstrdup(sorted[i]);
		r->npresent = n;
	} else
		log_info("mbox=%s server gives no UIDL: every message is "
		    "fetched and matched by content", s->acct->name);
	for (i = 0; i < n; i++) {
		struct msg *m = &s->msgs[i];
		bool unique = true;

		if (m->uidl != NULL && all_uidl) {
			char **hit = bsearch(&m->uidl, sorted, n,
			    sizeof(*sorted), cmp_str);
			unique = !((hit > sorted && strcmp(hit[-1],
			    m->uidl) == 0) || (hit + 1 < sorted + n &&
			    strcmp(hit[1], m->uidl) == 0));
		}
		m->action = plan(s, m, unique, has_top);
	}
	free(sorted); sorted = NULL;
	log_debug("mbox=%s %zu messages listed", s->acct->name, n);
	session_pump(s);
}

static int
on_body(void *arg, enum pop3_cmd cmd, uint32_t num, const char *p, size_t n)
{
	struct session *s = arg;

	if (cmd == POP3_CMD_TOP) {
		/* Pipelined TOP bodies follow each other: a new hash starts
		 * with the first bytes of each. */
		if (!s->top_active) {
			hash_sha256_reset(&s->top);
			s->top_active = true;
			s->top_num = num;
		}
		hash_sha256_update(&s->top, p, n);
		return 0;
	}
	if (s->pipe == NULL) {
		struct msg *m = msg_by_num(s, num);
		struct pipe_params pp = {
			.spool_dir = s->job->spool_dir,
			.spool_mem = s->job->conf->spool_mem,
			.size_hint = m ? m->list_size : 0,
			.level = s->job->conf->zstd_level,
			.dict = s->job->dict,
		};

		s->pipe = pipe_new(&pp);
		s->pipe_num = num;
		s->pipe_failed = false;
	}
	if (s->pipe_failed)
		return 0;
	if (pipe_write(s->pipe, p, n) == -1) {
		/* A local failure (spool disk full) costs this message
		 * only: it stays on the server and the body is drained. */
		session_error(s, SESSION_TEMPORARY, "message %" PRIu32 ": %s",
		    num, pipe_error(s->pipe));
		result(s)->errors++;
		s->pipe_failed = true;
	}
	return 0;
}

static void
finish_top(struct session *s, struct msg *m)
{
	unsigned char head[32];

	if (!s->top_active)	/* an empty TOP body */
		hash_sha256_reset(&s->top);
	hash_sha256_final(&s->top, head);
	s->top_active = false;
	if (m != NULL && m->known != NULL &&
	    memcmp(head, m->known->head_sha256, 32) == 0) {
		session_dele(s, m, m->known->sha256);	/* per policy */
		return;
	}
	/* Not provably the message archived under that UIDL: fetch it. */
	if (m != NULL) {
		log_debug("mbox=%s uidl=%s header differs from the archived "
		    "one; fetching", s->acct->name, m->uidl);
		m->action = MSG_FETCH;
		s->inflight++;
		pop3_client_retr(s->pop3, m->num);
	}
}

/*
 * On the committer's thread: hand the answer to the session's own worker.
 * The session outlives its commits, and s->w never changes.
 */
static void
commit_answered(struct commit_item *it, bool durable)
{
	struct pending *pc = it->arg;

	worker_post_commit(pc->s->w, it, durable);
}

static void
finish_retr(struct session *s, uint32_t num)
{
	struct msg *m = msg_by_num(s, num);
	struct pending *pc;
	struct pipe_result res;

	if (s->pipe == NULL) {
		/* An empty body never reached on_body(). */
		on_body(s, POP3_CMD_RETR, num, "", 0);
	}
	if (s->pipe_failed || pipe_finish(s->pipe, &res) == -1) {
		if (!s->pipe_failed) {
			session_error(s, SESSION_TEMPORARY, "message %" PRIu32
			    ": %s", num, pipe_error(s->pipe));
			result(s)->errors++;
		}
		pipe_free(&s->pipe);
		return;
	}
	pipe_free(&s->pipe);
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
		finish_top(s, msg_by_num(s, num));
	else
		finish_retr(s, num);
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
		if (cmd == POP3_CMD_TOP)
			s->top_active = false;
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
	s->ended = true;
	session_end(s);
}

static void
on_failed(void *arg, enum pop3_fail why, const char *text)
{
	struct session *s = arg;
	enum session_outcome o = SESSION_TEMPORARY;

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
	s->ended = true;
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

/* Hands the engine more work, or QUIT once everything is answered. */
static void
session_pump(struct session *s)
{
	if (s->ended || s->msgs == NULL)
		goto out;
	while (!s->draining && s->next < s->nmsgs &&
	    s->inflight < SESSION_WINDOW &&
	    s->uncommitted < SESSION_MAX_UNCOMMITTED) {
		struct msg *m = &s->msgs[s->next++];

		switch (m->action) {
		case MSG_SKIP:
			continue;
		case MSG_FETCH:
			pop3_client_retr(s->pop3, m->num);
			break;
		case MSG_VERIFY:
			pop3_client_top(s->pop3, m->num, 0);
			break;
		}
		s->inflight++;
	}
	/* With PIPELINING, QUIT follows the last DELEs without waiting for
	 * their answers: they arrive first, in order, and a refused DELE is
	 * simply not applied. */
	if ((s->draining || s->next == s->nmsgs) && s->inflight == 0 &&
	    s->uncommitted == 0 && !s->quit_sent &&
	    (s->deles == 0 || pop3_client_pipelining(s->pop3))) {
		s->quit_sent = true;
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

	if (s->conn == NULL || s->ended || s->tls_pending)
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
	const char *p;
	size_t n;

	switch (ev) {
	case CONN_EV_UP:
		if (s->tls_pending) {
			s->tls_pending = false;
			log_debug("mbox=%s STLS: %s", s->acct->name,
			    conn_describe(c));
			pop3_client_tls_ready(s->pop3);
		} else {
			log_debug("mbox=%s connected: %s", s->acct->name,
			    conn_describe(c));
			s->connected = true;
		}
		session_flush(s);
		break;
	case CONN_EV_DATA:
		p = conn_rdata(c, &n);
		if (pop3_client_feed(s->pop3, p, n) == -1 || s->ended)
			return;	/* on_failed() or on_done() ended it */
		if (s->tls_pending)
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
		if (!s->ended) {
			session_error(s, conn_cert_failed(c) ?
			    SESSION_PERMANENT : SESSION_TEMPORARY, "%s",
			    ev == CONN_EV_CLOSED && conn_error(c)[0] == '\0' ?
			    "server closed the connection" : conn_error(c));
			s->ended = true;
			session_end(s);
		}
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
	pipe_free(&s->pipe);
	hash_sha256_release(&s->top);
	free(s->msgs); s->msgs = NULL;
	free(s->marked); s->marked = NULL;
	while (s->nowned > 0)
		free(s->owned[--s->nowned]);
	free(s->owned); s->owned = NULL;
	worker_session_remove(s->w, s);
	free(s); s = NULL;
	job->finished(job);
}

/*
 * The conversation is over (QUIT answered, failure, or connection lost).
 * The session is freed once every commit it submitted has been answered,
 * so the committer never calls back into freed memory.
 */
static void
session_end(struct session *s)
{
	if (s->conn != NULL && conn_state(s->conn) != CONN_CLOSING)
		conn_close(s->conn);
	pipe_free(&s->pipe);
	if (s->uncommitted > 0 || s->finished)
		return;
	s->finished = true;
	log_debug("mbox=%s session ended", s->acct->name);
	loop_defer(worker_loop(s->w), session_free, s);
}

void
session_commit_done(struct commit_item *it, bool durable)
{
	struct pending *pc = it->arg;
	struct session *s = pc->s;
	struct msg *m;

	ASSERT(s->uncommitted > 0);
	s->uncommitted--;
	if (durable) {
		result(s)->archived++;
		if (it->blob_existed)
			result(s)->deduplicated++;
		if (!s->ended && (m = msg_by_num(s, pc->num)) != NULL)
			session_dele(s, m, it->res.sha256);
	} else {
		result(s)->errors++;
		session_error(s, SESSION_TEMPORARY, "message %" PRIu32
		    " not archived: %s", pc->num, it->error);
	}
	free(it->uidl); it->uidl = NULL;
	free(pc); pc = NULL;
	if (s->ended)
		session_end(s);
	else
		session_pump(s);
}

void
session_drain(struct session *s)
{
	s->draining = true;
	session_pump(s);
}

void
session_start(struct worker *w, struct session_job *job)
{
	const struct conf_account *a = job->acct;
	const struct conf *cf = job->conf;
	struct session *s = xcalloc(1, sizeof(*s));
	struct pop3_client_params pp = {
		.user = a->user,
		.password = a->password,
		.auth = (enum pop3_auth)a->auth,
		.starttls = a->tls == CONF_TLS_STARTTLS,
		.md5 = hash_md5,
	};
	struct conn_params cp = {
		.addr = job->addr,
		.addrlen = job->addrlen,
		.host = a->host,
		.tls = a->tls == CONF_TLS_IMPLICIT ? job->tls : NULL,
		.connect_timeout_ms = cf->connect_timeout * 1000,
		.idle_timeout_ms = cf->command_timeout * 1000,
		.session_timeout_ms = cf->session_timeout * 1000,
	};

	s->w = w;
	s->job = job;
	s->acct = a;
	hash_sha256_init(&s->top);
	set_action(s, "connecting to %s:%d", a->host, a->port);
	s->pop3 = pop3_client_new(&pp, &pop3_cb, s);
	s->conn = conn_new(worker_loop(w), &cp, on_conn, s);
	worker_session_add(w, s);
}

void
session_result_release(struct session_result *r)
{
	size_t i;

	for (i = 0; i < r->ndeleted; i++)
		free((char *)r->deleted_v[i].uidl);
	free(r->deleted_v); r->deleted_v = NULL;
	for (i = 0; i < r->npresent; i++)
		free(r->present[i]);
	free(r->present); r->present = NULL;
	r->ndeleted = r->npresent = 0;
}
