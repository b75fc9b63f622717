/*
 * The POP3 session state machine.  Server bytes go through a fixed-size
 * line reader (pop3/parse.h) or, inside a RETR/TOP body, through the
 * dot-unstuffer (pop3/dot.h); each complete line is handed to the st_*()
 * function of the current state.  Every transition goes through
 * set_state().
 *
 * After ready(), commands wait in a ring queue.  The first nflight entries
 * have been written to the output buffer and await their responses, in
 * order; the state names what the first of them expects.  With PIPELINING
 * up to `window` commands are in flight, without it one.
 */
#include "pop3/client.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingestd/base/buf.h"
#include "ingestd/base/log.h"
#include "ingestd/base/xmalloc.h"
#include "pop3/dot.h"
#include "pop3/parse.h"
#include "pop3/sasl.h"

#define OUT_CAP		4096	/* queued command bytes */
#define BODY_CHUNK	16384	/* input bytes unstuffed per body() call */
#define WINDOW_DEFAULT	16
#define WINDOW_MAX	128	/* WINDOW_MAX commands fit in OUT_CAP */
#define MAX_MSGS_DEFAULT 1000000
#define QUOTE_MAX	96	/* bytes of a server line quoted in errors */
/* Longest command line without CRLF: the AUTH PLAIN continuation answer. */
#define CMD_MAX		(POP3_SASL_PLAIN_MAX + 32)
/* RFC 5034 section 4: a longer AUTH line may not carry the response. */
#define AUTH_LINE_MAX	255

static const char *const state_names[] = {
	[P3_GREETING] = "greeting",
	[P3_CAPA] = "CAPA",
	[P3_STLS] = "STLS",
	[P3_TLS] = "TLS handshake",
	[P3_AUTH] = "AUTH PLAIN",
	[P3_OAUTH] = "AUTH OAuth",
	[P3_USER] = "USER",
	[P3_PASS] = "PASS",
	[P3_APOP] = "APOP",
	[P3_UIDL] = "UIDL",
	[P3_LIST] = "LIST",
	[P3_STAT] = "STAT",
	[P3_READY] = "ready",
	[P3_RETR] = "RETR",
	[P3_BODY] = "body",
	[P3_DELE] = "DELE",
	[P3_QUIT] = "QUIT",
	[P3_DONE] = "done",
	[P3_FAILED] = "failed",
};

enum qkind {
	Q_RETR,
	Q_TOP,
	Q_DELE,
	Q_QUIT,
};

struct qcmd {
	enum qkind kind;
	uint32_t num;
	unsigned lines;		/* TOP */
};

/* Listing entries while UIDL and LIST are read. */
struct list_ent {
	uint32_t num;
	uint64_t size;
};

struct uid_ent {
	uint32_t num;
	size_t off;		/* into the uid arena */
};

struct pop3_client {
	struct pop3_client_params params;
	struct pop3_client_cb cb;
	void *arg;
	enum pop3_state state;
	char what[48];		/* state and command, for pop3_client_what() */

	struct pop3_line line;
	bool multi;		/* inside a multi-line response, past its +OK */
	bool tls_cut;		/* STLS accepted: drop the rest of this feed */
	struct pop3_dot dot;
	char *scratch;		/* BODY_CHUNK + 1 unstuffed bytes */
	struct buf out;

	unsigned caps;
	bool capa_ok;		/* CAPA answered +OK */
	struct pop3_expire expire; /* as the latest CAPA says */
	struct pop3_login_delay login_delay; /* likewise */
	bool capa_user;		/* the CAPA in flight follows the login */
	bool tls_done;
	char *timestamp;	/* the greeting's, for APOP; freed after auth */
	bool plain_initial;	/* AUTH PLAIN carried the initial response */
	bool plain_answered;	/* the continuation was answered */
	const char *oauth_mech;	/* "XOAUTH2" or "OAUTHBEARER" in P3_OAUTH */
	char *oauth_resp;	/* its response, until sent; wiped */
	size_t oauth_resplen;
	bool oauth_challenged;	/* the error challenge was answered */
	char *wide_line;	/* POP3_SASL_LINE_MAX octets in P3_OAUTH */
	char oauth_detail[160];	/* what the error challenge said */
	bool list_sent;		/* LIST went out together with UIDL */
	bool stat_ok;		/* STAT answered "+OK count size" */
	uint64_t stat_size;
	bool uidl_ok;

	struct list_ent *list;
	size_t nlist, listcap;
	struct uid_ent *uids;
	size_t nuid, uidcap;
	char *arena;		/* the uids, NUL-terminated, back to back */
	size_t arenalen, arenacap;
	struct pop3_msg *msgs;
	size_t nmsgs;
	uint32_t max_msgs;
	size_t max_listing_bytes;

	struct qcmd *q;		/* ring; qcap is a power of two */
	size_t qcap, qhead, qlen, nflight;
	unsigned window;
	bool ready;
	bool quit_queued;

	char quoted[QUOTE_MAX * 4 + 4];
	char err[512];
};

static int fail(struct pop3_client *, enum pop3_fail, const char *, ...)
    LOG_PRINTF(3, 4);
static void start_listing(struct pop3_client *);
static void end_oauth(struct pop3_client *);
static void send_line(struct pop3_client *, const char *, const char *, ...)
    LOG_PRINTF(3, 4);

/* The compiler may not drop this wipe of memory that held a secret. */
static void
wipe(void *p, size_t n)
{
	volatile unsigned char *v = p;

	while (n-- > 0)
		*v++ = 0;
}

/*
 * A server line made fit for an error text or a log line: at most
 * QUOTE_MAX bytes, printable ASCII kept, the rest as \xNN.  The result
 * lives in c->quoted until the next call.
 */
static const char *
quote(struct pop3_client *c, const char *p, size_t n)
{
	char *d = c->quoted;
	size_t i, o = 0;
	unsigned char ch;

	for (i = 0; i < n && i < QUOTE_MAX; i++) {
		ch = (unsigned char)p[i];
		if (ch == '\\' || ch == '"') {
			d[o++] = '\\';
			d[o++] = (char)ch;
		} else if (ch >= 0x20 && ch < 0x7f)
			d[o++] = (char)ch;
		else
			o += (size_t)snprintf(d + o, 5, "\\x%02x", ch);
	}
	if (i < n) {
		memcpy(d + o, "...", 3);
		o += 3;
	}
	d[o] = '\0';
	return d;
}

static struct qcmd *
qat(struct pop3_client *c, size_t i)
{
	return &c->q[(c->qhead + i) & (c->qcap - 1)];
}

static enum pop3_cmd
qcmd_cmd(const struct qcmd *q)
{
	return q->kind == Q_TOP ? POP3_CMD_TOP :
	    q->kind == Q_DELE ? POP3_CMD_DELE : POP3_CMD_RETR;
}

static const char *
qcmd_name(const struct qcmd *q)
{
	static const char *const names[] = {
		[Q_RETR] = "RETR", [Q_TOP] = "TOP", [Q_DELE] = "DELE",
		[Q_QUIT] = "QUIT",
	};

	return names[q->kind];
}

/* Formats q as it goes on the wire, without CRLF; returns the length. */
static int
qcmd_format(const struct qcmd *q, char *line, size_t size)
{
	switch (q->kind) {
	case Q_TOP:
		return snprintf(line, size, "TOP %" PRIu32 " %u", q->num,
		    q->lines);
	case Q_QUIT:
		return snprintf(line, size, "QUIT");
	default:
		return snprintf(line, size, "%s %" PRIu32, qcmd_name(q),
		    q->num);
	}
}

static void
set_state(struct pop3_client *c, enum pop3_state st)
{
	char line[32];

	log_trace("pop3: %s -> %s", state_names[c->state], state_names[st]);
	c->state = st;
	/* After a failure, "what" keeps naming where it happened. */
	if (st == P3_FAILED)
		return;
	if ((st == P3_RETR || st == P3_BODY || st == P3_DELE) &&
	    c->nflight > 0) {
		qcmd_format(qat(c, 0), line, sizeof(line));
		snprintf(c->what, sizeof(c->what), "%s%s", line,
		    st == P3_BODY ? " body" : "");
	} else
		snprintf(c->what, sizeof(c->what), "%s", state_names[st]);
}

static int
fail(struct pop3_client *c, enum pop3_fail why, const char *fmt, ...)
{
	va_list ap;

	ASSERT(c->state != P3_FAILED && c->state != P3_DONE);
	va_start(ap, fmt);
	vsnprintf(c->err, sizeof(c->err), fmt, ap);
	va_end(ap);
	log_debug("pop3: failed while %s: %s", c->what, c->err);
	set_state(c, P3_FAILED);
	c->cb.failed(c->arg, why, c->err);
	/* Nothing more goes out: the connection is to be closed, not
	 * used for a queued DELE or QUIT. */
	wipe(c->out.data, c->out.data != NULL ? c->out.cap : 0);
	buf_release(&c->out);
	return -1;
}

/* Retry class of a -ERR: its response code decides, else deflt. */
static enum pop3_fail
err_class(const struct pop3_status *st, enum pop3_fail deflt)
{
	switch (st->code) {
	case POP3_CODE_IN_USE:
	case POP3_CODE_LOGIN_DELAY:
	case POP3_CODE_SYS_TEMP:
		return POP3_FAIL_TEMP;
	case POP3_CODE_SYS_PERM:
		return POP3_FAIL_PERM;
	case POP3_CODE_AUTH:
		return POP3_FAIL_AUTH;
	default:
		return deflt;
	}
}

/* Fails the session over a -ERR we cannot go on without. */
static int
fail_err(struct pop3_client *c, const struct pop3_status *st,
    enum pop3_fail deflt, const char *cmd)
{
	return fail(c, err_class(st, deflt), "%s refused: -ERR \"%s\"", cmd,
	    quote(c, st->text, st->textlen));
}

/* Parses a status line or fails the session for it. */
static int
status(struct pop3_client *c, const char *line, size_t len,
    struct pop3_status *st)
{
	if (pop3_parse_status(line, len, st) == POP3_PARSE_OK)
		return 0;
	return fail(c, POP3_FAIL_PROTOCOL,
	    "neither +OK nor -ERR while %s: \"%s\"", c->what,
	    quote(c, line, len));
}

/*
 * Appends a command line and CRLF to the output.  shown replaces the line
 * in the trace log when it carries a secret.  Only used before ready(),
 * when at most a few short commands are queued, so it always fits.
 */
static void
send_line(struct pop3_client *c, const char *shown, const char *fmt, ...)
{
	char line[CMD_MAX + 3];
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
	va_end(ap);
	ASSERT(n >= 0 && (size_t)n < sizeof(line) - 2);
	log_trace("pop3: C: %s", shown != NULL ? shown : line);
	line[n++] = '\r';
	line[n++] = '\n';
	r = buf_append(&c->out, line, (size_t)n);
	wipe(line, sizeof(line));
	ASSERT(r == 0);
}

static enum pop3_state
qcmd_state(const struct qcmd *q)
{
	switch (q->kind) {
	case Q_DELE:
		return P3_DELE;
	case Q_QUIT:
		return P3_QUIT;
	default:
		return P3_RETR;
	}
}

/* Writes waiting commands while the window and the output buffer allow. */
static void
flush(struct pop3_client *c)
{
	char line[48];
	size_t window;
	int n;

	if (c->state == P3_FAILED || c->state == P3_DONE)
		return;
	window = (c->caps & POP3_CAPA_PIPELINING) != 0 ? c->window : 1;
	while (c->nflight < c->qlen && c->nflight < window) {
		n = qcmd_format(qat(c, c->nflight), line, sizeof(line) - 2);
		/* An owner slow to send is told nothing: the rest waits. */
		if (OUT_CAP - buf_used(&c->out) < (size_t)n + 2)
			break;
		log_trace("pop3: C: %s", line);
		line[n++] = '\r';
		line[n++] = '\n';
		if (buf_append(&c->out, line, (size_t)n) == -1)
			break;
		c->nflight++;
	}
	if (c->state == P3_READY && c->nflight > 0)
		set_state(c, qcmd_state(qat(c, 0)));
}

/* The first command in flight got its whole response. */
static struct qcmd
qpop(struct pop3_client *c)
{
	struct qcmd q;

	ASSERT(c->nflight > 0);
	q = *qat(c, 0);
	c->qhead = (c->qhead + 1) & (c->qcap - 1);
	c->qlen--;
	c->nflight--;
	return q;
}

/* After a response: send what the window now allows, expect the next. */
static void
cmd_next(struct pop3_client *c)
{
	if (c->state == P3_FAILED || c->state == P3_DONE)
		return;
	flush(c);
	set_state(c, c->nflight > 0 ? qcmd_state(qat(c, 0)) : P3_READY);
}

static void
queue_cmd(struct pop3_client *c, enum qkind kind, uint32_t num,
    unsigned lines)
{
	struct qcmd *nq;
	size_t i, ncap;

	/* The owner may not have seen failed() yet when it queues. */
	if (c->state == P3_FAILED)
		return;
	ASSERT(c->ready);
	ASSERT(!c->quit_queued);
	ASSERT(kind == Q_QUIT || num > 0);
	if (c->qlen == c->qcap) {
		ncap = c->qcap != 0 ? c->qcap * 2 : 16;
		nq = xreallocarray(NULL, ncap, sizeof(*nq));
		for (i = 0; i < c->qlen; i++)
			nq[i] = *qat(c, i);
		free(c->q);
		c->q = nq;
		c->qcap = ncap;
		c->qhead = 0;
	}
	c->q[(c->qhead + c->qlen) & (c->qcap - 1)] =
	    (struct qcmd){ .kind = kind, .num = num, .lines = lines };
	c->qlen++;
	if (kind == Q_QUIT)
		c->quit_queued = true;
	flush(c);
}

/*
 * For a line of a multi-line response: true for the terminating ".",
 * otherwise removes a stuffing dot from *line.
 */
static bool
multi_end(const char **line, size_t *len)
{
	if (*len > 0 && (*line)[0] == '.') {
		if (*len == 1)
			return true;
		(*line)++;
		(*len)--;
	}
	return false;
}

static void
send_capa(struct pop3_client *c)
{
	c->caps = 0;
	c->capa_ok = false;
	c->expire = (struct pop3_expire){ .kind = POP3_EXPIRE_NONE };
	c->login_delay = (struct pop3_login_delay){ .present = false };
	c->multi = false;
	send_line(c, NULL, "CAPA");
	set_state(c, P3_CAPA);
}

/*
 * Logged in.  RFC 2449 section 6.7: "EXPIRE n USER" before login says the
 * value may differ per user, and only CAPA after login tells this user's.
 * Without USER the value is the server's, the same in both states (a
 * capability of the AUTHORIZATION state must be listed in both), so the
 * round trip is spent only when it can tell something.  Whether a server
 * deletes what was retrieved at QUIT is what decides whether QUIT is safe
 * (ingestd/plan.h), so it is worth one round trip on such servers.
 * "LOGIN-DELAY n USER" (section 6.8) likewise: the scheduler spaces
 * logins by this user's value.
 */
static void
after_login(struct pop3_client *c)
{
	end_oauth(c);
	if (!c->expire.per_user && !c->login_delay.per_user) {
		start_listing(c);
		return;
	}
	c->capa_user = true;
	c->multi = false;
	send_line(c, NULL, "CAPA");
	set_state(c, P3_CAPA);
}

static void
start_listing(struct pop3_client *c)
{
	free(c->timestamp); c->timestamp = NULL;
	c->multi = false;
	send_line(c, NULL, "UIDL");
	c->list_sent = (c->caps & POP3_CAPA_PIPELINING) != 0;
	if (c->list_sent)
		send_line(c, NULL, "LIST");
	set_state(c, P3_UIDL);
}

static int
send_plain(struct pop3_client *c)
{
	char resp[POP3_SASL_PLAIN_MAX + 1];
	size_t n;

	n = pop3_sasl_plain(c->params.user, c->params.password, resp);
	ASSERT(n > 0);		/* lengths were checked */
	c->plain_answered = false;
	c->plain_initial = sizeof("AUTH PLAIN \r\n") - 1 + n <= AUTH_LINE_MAX;
	if (c->plain_initial)
		send_line(c, "AUTH PLAIN ****", "AUTH PLAIN %s", resp);
	else
		send_line(c, NULL, "AUTH PLAIN");
	wipe(resp, sizeof(resp));
	set_state(c, P3_AUTH);
	return 0;
}

static int
send_apop(struct pop3_client *c)
{
	char digest[33], shown[POP3_CRED_MAX + 16];
	int r;

	/* The timestamp came from one line, the password was checked. */
	r = pop3_apop_digest(c->params.md5, c->timestamp, strlen(c->timestamp),
	    c->params.password, digest);
	ASSERT(r == 0);
	snprintf(shown, sizeof(shown), "APOP %s ****", c->params.user);
	send_line(c, shown, "APOP %s %s", c->params.user, digest);
	wipe(digest, sizeof(digest));
	set_state(c, P3_APOP);
	return 0;
}

/* Back to status lines of POP3_LINE_MAX, the output to its usual size. */
static void
end_oauth(struct pop3_client *c)
{
	if (c->wide_line == NULL)
		return;
	pop3_line_narrow(&c->line);
	free(c->wide_line);
	c->wide_line = NULL;
}

/*
 * Appends resp and CRLF to the output, which grows for it when a token is
 * longer than OUT_CAP: only while logging in, when nothing else waits.
 */
static void
send_long(struct pop3_client *c, const char *shown, const char *prefix,
    const char *resp, size_t n)
{
	size_t plen = strlen(prefix), need = plen + n + 2, used;
	struct buf nb;
	int r;

	used = buf_used(&c->out);
	if (c->out.cap - used < need) {
		/* Room for the commands that may follow before it is sent. */
		buf_init(&nb, used + need + OUT_CAP);
		r = buf_append(&nb, buf_peek(&c->out), used);
		ASSERT(r == 0);
		wipe(c->out.data, c->out.data != NULL ? c->out.cap : 0);
		buf_release(&c->out);
		c->out = nb;
	}
	log_trace("pop3: C: %s", shown);
	r = buf_append(&c->out, prefix, plen);
	ASSERT(r == 0);
	r = buf_append(&c->out, resp, n);
	ASSERT(r == 0);
	r = buf_append(&c->out, "\r\n", 2);
	ASSERT(r == 0);
}

/*
 * AUTH with a bearer token.  RFC 5034 section 4: the initial response
 * goes on the AUTH line only if the whole line, CRLF included, fits in
 * 255 octets; otherwise the server's "+ " asks for it (Exchange Online
 * refuses the long one-line form).
 */
static int
start_oauth(struct pop3_client *c)
{
	bool x = (c->caps & POP3_CAPA_SASL_XOAUTH2) != 0;
	bool ob = (c->caps & POP3_CAPA_SASL_OAUTHBEARER) != 0;
	char shown[64], prefix[32];
	size_t n;

	switch (c->params.auth) {
	case POP3_AUTH_AUTO:
		if (x || !c->capa_ok)
			c->oauth_mech = "XOAUTH2";
		else if (ob)
			c->oauth_mech = "OAUTHBEARER";
		else
			return fail(c, POP3_FAIL_NO_AUTH,
			    "server offers neither SASL XOAUTH2 nor "
			    "OAUTHBEARER, and a token never falls back to a "
			    "password");
		break;
	case POP3_AUTH_XOAUTH2:
	case POP3_AUTH_OAUTHBEARER:
		c->oauth_mech = c->params.auth == POP3_AUTH_XOAUTH2 ?
		    "XOAUTH2" :
		    "OAUTHBEARER";
		/* Without CAPA we cannot know: let the server say. */
		if (c->capa_ok &&
		    !(c->params.auth == POP3_AUTH_XOAUTH2 ? x : ob))
			return fail(c, POP3_FAIL_NO_AUTH,
			    "server does not offer SASL %s", c->oauth_mech);
		break;
	default:
		return fail(c, POP3_FAIL_NO_AUTH,
		    "an OAuth token is configured, which only SASL XOAUTH2 "
		    "and OAUTHBEARER can carry");
	}
	if (strcmp(c->oauth_mech, "OAUTHBEARER") == 0)
		c->oauth_resp = pop3_sasl_oauthbearer(c->params.user,
		    c->params.host, c->params.port, c->params.token, &n);
	else
		c->oauth_resp = pop3_sasl_xoauth2(c->params.user,
		    c->params.token, &n);
	if (c->oauth_resp == NULL)
		return fail(c, POP3_FAIL_AUTH,
		    "the user name or the token cannot be sent: a token is "
		    "1 to %d octets without blanks or control characters",
		    POP3_TOKEN_MAX);
	c->oauth_resplen = n;
	c->oauth_challenged = false;
	c->oauth_detail[0] = '\0';
	c->wide_line = xmalloc(POP3_SASL_LINE_MAX);
	pop3_line_widen(&c->line, c->wide_line, POP3_SASL_LINE_MAX);
	snprintf(shown, sizeof(shown), "AUTH %s", c->oauth_mech);
	if (strlen("AUTH  \r\n") + strlen(c->oauth_mech) + n <= AUTH_LINE_MAX) {
		snprintf(prefix, sizeof(prefix), "AUTH %s ", c->oauth_mech);
		snprintf(shown, sizeof(shown), "AUTH %s ****", c->oauth_mech);
		send_long(c, shown, prefix, c->oauth_resp, n);
		wipe(c->oauth_resp, n);
		free(c->oauth_resp);
		c->oauth_resp = NULL;
	} else
		send_line(c, NULL, "%s", shown);
	set_state(c, P3_OAUTH);
	return 0;
}

static int
start_auth(struct pop3_client *c)
{
	const char *user = c->params.user, *pw = c->params.password;
	bool plain, apop, userpass;

	if (c->params.token != NULL)
		return start_oauth(c);

	/* A CR or LF would let the credentials inject commands. */
	if (strlen(user) > POP3_CRED_MAX || strlen(pw) > POP3_CRED_MAX)
		return fail(c, POP3_FAIL_AUTH,
		    "user name or password longer than %d octets",
		    POP3_CRED_MAX);
	if (strpbrk(user, "\r\n") != NULL || strpbrk(pw, "\r\n") != NULL)
		return fail(c, POP3_FAIL_AUTH,
		    "user name or password contains CR or LF");
	plain = (c->caps & POP3_CAPA_SASL_PLAIN) != 0;
	apop = c->timestamp != NULL && c->params.md5 != NULL;
	userpass = !c->capa_ok || (c->caps & POP3_CAPA_USER) != 0;
	switch (c->params.auth) {
	case POP3_AUTH_AUTO:
		if (plain)
			return send_plain(c);
		if (apop)
			return send_apop(c);
		if (userpass)
			break;
		return fail(c, POP3_FAIL_NO_AUTH,
		    "server offers none of SASL PLAIN, APOP, USER");
	case POP3_AUTH_PLAIN:
		/* Without CAPA we cannot know: let the server say. */
		if (plain || !c->capa_ok)
			return send_plain(c);
		return fail(c, POP3_FAIL_NO_AUTH,
		    "server does not offer SASL PLAIN");
	case POP3_AUTH_APOP:
		if (apop)
			return send_apop(c);
		return fail(c, POP3_FAIL_NO_AUTH, c->timestamp == NULL ?
		    "greeting has no APOP timestamp" : "no MD5 for APOP");
	case POP3_AUTH_USER:
		if (userpass)
			break;
		return fail(c, POP3_FAIL_NO_AUTH, "server does not offer USER");
	case POP3_AUTH_XOAUTH2:
	case POP3_AUTH_OAUTHBEARER:
		return fail(c, POP3_FAIL_NO_AUTH,
		    "SASL XOAUTH2 and OAUTHBEARER need a token");
	}
	send_line(c, NULL, "USER %s", user);
	set_state(c, P3_USER);
	return 0;
}

static int
after_capa(struct pop3_client *c)
{
	if (c->capa_user) {
		/* This user's EXPIRE, if it said one, replaced the server's;
		 * if not, the server's stands, as RFC 2449 has it. */
		c->capa_user = false;
		start_listing(c);
		return 0;
	}
	if (c->params.starttls && !c->tls_done) {
		if ((c->caps & POP3_CAPA_STLS) == 0)
			return fail(c, POP3_FAIL_NO_STLS,
			    "server does not offer STLS");
		send_line(c, NULL, "STLS");
		set_state(c, P3_STLS);
		return 0;
	}
	return start_auth(c);
}

static int
st_greeting(struct pop3_client *c, const char *line, size_t len)
{
	struct pop3_status st;
	const char *ts;
	size_t tslen;

	if (pop3_parse_status(line, len, &st) != POP3_PARSE_OK)
		return fail(c, POP3_FAIL_PROTOCOL, "bad greeting: \"%s\"",
		    quote(c, line, len));
	if (!st.ok)
		return fail_err(c, &st, POP3_FAIL_PROTOCOL, "session");
	if (pop3_parse_timestamp(line, len, &ts, &tslen))
		c->timestamp = xstrndup(ts, tslen);
	send_capa(c);
	return 0;
}

static int
st_capa(struct pop3_client *c, const char *line, size_t len)
{
	struct pop3_status st;

	if (!c->multi) {
		if (status(c, line, len, &st) == -1)
			return -1;
		/* No CAPA: assume no capabilities (after login: keep the
		 * ones of before). */
		if (!st.ok)
			return after_capa(c);
		if (!c->capa_user)
			c->capa_ok = true;
		c->multi = true;
		return 0;
	}
	if (multi_end(&line, &len)) {
		c->multi = false;
		return after_capa(c);
	}
	/* After login only EXPIRE is read: the rest decided the login
	 * and stays as it was. */
	if (!c->capa_user)
		(void)pop3_parse_capa(line, len, &c->caps);
	(void)pop3_parse_capa_expire(line, len, &c->expire);
	(void)pop3_parse_capa_login_delay(line, len, &c->login_delay);
	return 0;
}

static int
st_stls(struct pop3_client *c, const char *line, size_t len)
{
	struct pop3_status st;

	if (status(c, line, len, &st) == -1)
		return -1;
	if (!st.ok)
		return fail_err(c, &st, POP3_FAIL_NO_STLS, "STLS");
	/* RFC 2595: whatever followed the reply in plaintext is dropped. */
	c->tls_cut = true;
	set_state(c, P3_TLS);
	c->cb.start_tls(c->arg);
	return 0;
}

static int
st_auth(struct pop3_client *c, const char *line, size_t len)
{
	char resp[POP3_SASL_PLAIN_MAX + 1];
	struct pop3_status st;

	if (pop3_parse_status(line, len, &st) == POP3_PARSE_OK) {
		if (!st.ok)
			return fail_err(c, &st, POP3_FAIL_AUTH, "AUTH PLAIN");
		after_login(c);
		return 0;
	}
	/* Without the initial response, the server asks with "+ ". */
	if (!pop3_parse_continuation(line, len) || c->plain_initial ||
	    c->plain_answered)
		return fail(c, POP3_FAIL_PROTOCOL,
		    "unexpected reply to AUTH PLAIN: \"%s\"",
		    quote(c, line, len));
	(void)pop3_sasl_plain(c->params.user, c->params.password, resp);
	send_line(c, "****", "%s", resp);
	wipe(resp, sizeof(resp));
	c->plain_answered = true;
	return 0;
}

static int
st_oauth(struct pop3_client *c, const char *line, size_t len)
{
	unsigned char *json;
	struct pop3_status st;
	long n;

	if (pop3_parse_status(line, len, &st) == POP3_PARSE_OK) {
		if (st.ok) {
			after_login(c);
			return 0;
		}
		/* The token is never logged; what the server said of it is. */
		return fail(c, err_class(&st, POP3_FAIL_AUTH),
		    "AUTH %s refused: -ERR \"%s\"%s%s%s", c->oauth_mech,
		    quote(c, st.text, st.textlen),
		    c->oauth_detail[0] != '\0' ? " (challenge: " : "",
		    c->oauth_detail, c->oauth_detail[0] != '\0' ? ")" : "");
	}
	if (!pop3_parse_continuation(line, len) || c->oauth_challenged)
		return fail(c, POP3_FAIL_PROTOCOL,
		    "unexpected reply to AUTH %s: \"%s\"", c->oauth_mech,
		    quote(c, line, len));
	if (c->oauth_resp != NULL) {
		/* The server asks for the response the AUTH line lacked. */
		send_long(c, "****", "", c->oauth_resp, c->oauth_resplen);
		wipe(c->oauth_resp, c->oauth_resplen);
		free(c->oauth_resp);
		c->oauth_resp = NULL;
		return 0;
	}
	/*
	 * The error challenge: base64 JSON.  XOAUTH2 wants an empty line
	 * back, OAUTHBEARER the dummy "\1" (RFC 7628 section 3.2.3); the
	 * server then sends its -ERR.
	 */
	c->oauth_challenged = true;
	line += len > 1 ? 2 : 1;
	len -= len > 1 ? 2 : 1;
	json = xmalloc(len / 4 * 3 + 3);
	if ((n = pop3_base64_decode(line, len, json)) == -1)
		snprintf(c->oauth_detail, sizeof(c->oauth_detail),
		    "not base64");
	else
		pop3_sasl_oauth_error(json, (size_t)n, c->oauth_detail,
		    sizeof(c->oauth_detail));
	free(json);
	log_debug("pop3: AUTH %s error challenge: %s", c->oauth_mech,
	    c->oauth_detail[0] != '\0' ? c->oauth_detail : "(empty)");
	if (strcmp(c->oauth_mech, "XOAUTH2") == 0)
		send_line(c, NULL, "%s", "");
	else
		send_line(c, NULL, "AQ==");
	return 0;
}

static int
st_user(struct pop3_client *c, const char *line, size_t len)
{
	struct pop3_status st;

	if (status(c, line, len, &st) == -1)
		return -1;
	if (!st.ok)
		return fail_err(c, &st, POP3_FAIL_AUTH, "USER");
	send_line(c, "PASS ****", "PASS %s", c->params.password);
	set_state(c, P3_PASS);
	return 0;
}

static int
st_pass(struct pop3_client *c, const char *line, size_t len)
{
	struct pop3_status st;

	if (status(c, line, len, &st) == -1)
		return -1;
	if (!st.ok)
		return fail_err(c, &st, POP3_FAIL_AUTH, "PASS");
	after_login(c);
	return 0;
}

static int
st_apop(struct pop3_client *c, const char *line, size_t len)
{
	struct pop3_status st;

	if (status(c, line, len, &st) == -1)
		return -1;
	if (!st.ok)
		return fail_err(c, &st, POP3_FAIL_AUTH, "APOP");
	after_login(c);
	return 0;
}

static int
after_uidl(struct pop3_client *c)
{
	c->multi = false;
	if (!c->list_sent)
		send_line(c, NULL, "LIST");
	set_state(c, P3_LIST);
	return 0;
}

static int
st_uidl(struct pop3_client *c, const char *line, size_t len)
{
	struct pop3_status st;
	const char *uid;
	size_t uidlen;
	uint32_t num;

	if (!c->multi) {
		if (status(c, line, len, &st) == -1)
			return -1;
		/* Without UIDL the owner gets NULL uidls and decides. */
		c->uidl_ok = st.ok;
		if (!st.ok)
			return after_uidl(c);
		c->multi = true;
		return 0;
	}
	if (multi_end(&line, &len))
		return after_uidl(c);
	if (pop3_parse_uidl_item(line, len, &num, &uid, &uidlen) !=
	    POP3_PARSE_OK)
		return fail(c, POP3_FAIL_PROTOCOL, "bad UIDL line: \"%s\"",
		    quote(c, line, len));
	if (c->nuid >= c->max_msgs)
		return fail(c, POP3_FAIL_PERM,
		    "UIDL lists more than %" PRIu32 " messages", c->max_msgs);
	if (uidlen + 1 > c->max_listing_bytes - c->arenalen)
		return fail(c, POP3_FAIL_PERM,
		    "UIDL listing exceeds the listing budget of %zu bytes "
		    "at message %" PRIu32, c->max_listing_bytes, num);
	if (c->nuid == c->uidcap) {
		c->uidcap = c->uidcap != 0 ? c->uidcap * 2 : 64;
		c->uids = xreallocarray(c->uids, c->uidcap, sizeof(*c->uids));
	}
	if (c->arenacap - c->arenalen < uidlen + 1) {
		/* Doubling, but never past the budget. */
		c->arenacap = c->arenacap != 0 ? c->arenacap * 2 : 1024;
		if (c->arenacap > c->max_listing_bytes)
			c->arenacap = c->max_listing_bytes;
		if (c->arenacap - c->arenalen < uidlen + 1)
			c->arenacap = c->arenalen + uidlen + 1;
		c->arena = xreallocarray(c->arena, c->arenacap, 1);
	}
	c->uids[c->nuid].num = num;
	c->uids[c->nuid].off = c->arenalen;
	c->nuid++;
	memcpy(c->arena + c->arenalen, uid, uidlen);
	c->arena[c->arenalen + uidlen] = '\0';
	c->arenalen += uidlen + 1;
	return 0;
}

static int
cmp_list(const void *a, const void *b)
{
	const struct list_ent *x = a, *y = b;

	return (x->num > y->num) - (x->num < y->num);
}

static int
cmp_uid(const void *a, const void *b)
{
	const struct uid_ent *x = a, *y = b;

	return (x->num > y->num) - (x->num < y->num);
}

/*
 * Joins LIST and UIDL by message number.  Each must list every number
 * once and both the same numbers: a server that disagrees with itself
 * cannot be trusted to RETR or DELE the message we think.
 */
static int
finish_listing(struct pop3_client *c)
{
	size_t i;

	if (c->nlist > 1)
		qsort(c->list, c->nlist, sizeof(*c->list), cmp_list);
	for (i = 1; i < c->nlist; i++)
		if (c->list[i].num == c->list[i - 1].num)
			return fail(c, POP3_FAIL_PROTOCOL,
			    "LIST lists message %" PRIu32 " twice",
			    c->list[i].num);
	if (c->uidl_ok) {
		if (c->nuid > 1)
			qsort(c->uids, c->nuid, sizeof(*c->uids), cmp_uid);
		for (i = 1; i < c->nuid; i++)
			if (c->uids[i].num == c->uids[i - 1].num)
				return fail(c, POP3_FAIL_PROTOCOL,
				    "UIDL lists message %" PRIu32 " twice",
				    c->uids[i].num);
		for (i = 0; i < c->nlist && i < c->nuid; i++)
			if (c->list[i].num != c->uids[i].num)
				break;
		if (i < c->nlist || i < c->nuid) {
			if (i < c->nuid && (i == c->nlist ||
			    c->uids[i].num < c->list[i].num))
				return fail(c, POP3_FAIL_PROTOCOL,
				    "message %" PRIu32
				    " in UIDL but not in LIST",
				    c->uids[i].num);
			return fail(c, POP3_FAIL_PROTOCOL,
			    "message %" PRIu32 " in LIST but not in UIDL",
			    c->list[i].num);
		}
	}
	c->msgs = xcalloc(c->nlist, sizeof(*c->msgs));
	c->nmsgs = c->nlist;
	for (i = 0; i < c->nlist; i++) {
		c->msgs[i].num = c->list[i].num;
		c->msgs[i].size = c->list[i].size;
		c->msgs[i].uidl = c->uidl_ok ? c->arena + c->uids[i].off :
		    NULL;
	}
	free(c->list); c->list = NULL;
	free(c->uids); c->uids = NULL;
	c->nlist = c->listcap = c->nuid = c->uidcap = 0;
	c->ready = true;
	set_state(c, P3_READY);
	/* May queue commands, which moves the state on. */
	c->cb.ready(c->arg, c->msgs, c->nmsgs);
	/* The owner has what it keeps of the listing: give it back. */
	free(c->msgs); c->msgs = NULL;
	free(c->arena); c->arena = NULL;
	c->nmsgs = c->arenalen = c->arenacap = 0;
	return 0;
}

static int
st_list(struct pop3_client *c, const char *line, size_t len)
{
	struct pop3_status st;
	uint64_t size;
	uint32_t num;

	if (!c->multi) {
		if (status(c, line, len, &st) == -1)
			return -1;
		if (!st.ok)
			return fail_err(c, &st, POP3_FAIL_PERM, "LIST");
		c->multi = true;
		return 0;
	}
	if (multi_end(&line, &len)) {
		c->multi = false;
		if (c->params.stat) {
			send_line(c, NULL, "STAT");
			set_state(c, P3_STAT);
			return 0;
		}
		return finish_listing(c);
	}
	if (pop3_parse_list_item(line, len, &num, &size) != POP3_PARSE_OK)
		return fail(c, POP3_FAIL_PROTOCOL, "bad LIST line: \"%s\"",
		    quote(c, line, len));
	if (c->nlist >= c->max_msgs)
		return fail(c, POP3_FAIL_PERM,
		    "LIST lists more than %" PRIu32 " messages", c->max_msgs);
	if (c->nlist == c->listcap) {
		c->listcap = c->listcap != 0 ? c->listcap * 2 : 64;
		c->list = xreallocarray(c->list, c->listcap, sizeof(*c->list));
	}
	c->list[c->nlist].num = num;
	c->list[c->nlist].size = size;
	c->nlist++;
	return 0;
}

/*
 * STAT after LIST: what the server counts the maildrop as.  A refusal or
 * an unreadable answer leaves it unknown; the poll goes on.
 */
static int
st_stat(struct pop3_client *c, const char *line, size_t len)
{
	struct pop3_status st;
	uint32_t count;

	if (status(c, line, len, &st) == -1)
		return -1;
	c->stat_ok = st.ok && pop3_parse_stat(st.text, st.textlen, &count,
	    &c->stat_size) == POP3_PARSE_OK;
	return finish_listing(c);
}

static int
st_ready(struct pop3_client *c, const char *line, size_t len)
{
	return fail(c, POP3_FAIL_PROTOCOL,
	    "response with no command in flight: \"%s\"", quote(c, line, len));
}

static int
st_retr(struct pop3_client *c, const char *line, size_t len)
{
	struct pop3_status st;
	struct qcmd q;

	if (status(c, line, len, &st) == -1)
		return -1;
	if (st.ok) {
		if (c->scratch == NULL)
			c->scratch = xmalloc(BODY_CHUNK + 1);
		pop3_dot_init(&c->dot);
		set_state(c, P3_BODY);
		return 0;
	}
	q = qpop(c);
	if (c->cb.cmd_failed != NULL)
		c->cb.cmd_failed(c->arg, qcmd_cmd(&q), q.num,
		    quote(c, st.text, st.textlen));
	cmd_next(c);
	return 0;
}

/*
 * Body bytes, unstuffed in chunks of at most BODY_CHUNK input bytes so the
 * scratch buffer stays bounded however much the owner feeds at once.
 */
static int
st_body(struct pop3_client *c, const char *p, size_t n, size_t *used_r)
{
	struct qcmd q = *qat(c, 0);
	size_t outlen;
	bool end;

	*used_r = pop3_dot_feed(&c->dot, p, n < BODY_CHUNK ? n : BODY_CHUNK,
	    c->scratch, &outlen, &end);
	if (outlen > 0 && c->cb.body != NULL &&
	    c->cb.body(c->arg, qcmd_cmd(&q), q.num, c->scratch, outlen) == -1)
		return fail(c, POP3_FAIL_LOCAL,
		    "body consumer refused %s %" PRIu32, qcmd_name(&q), q.num);
	if (!end)
		return 0;
	(void)qpop(c);
	if (c->cb.body_end != NULL)
		c->cb.body_end(c->arg, qcmd_cmd(&q), q.num);
	cmd_next(c);
	return 0;
}

static int
st_dele(struct pop3_client *c, const char *line, size_t len)
{
	struct pop3_status st;
	struct qcmd q;

	if (status(c, line, len, &st) == -1)
		return -1;
	q = qpop(c);
	if (st.ok) {
		if (c->cb.deleted != NULL)
			c->cb.deleted(c->arg, q.num);
	} else if (c->cb.cmd_failed != NULL)
		c->cb.cmd_failed(c->arg, POP3_CMD_DELE, q.num,
		    quote(c, st.text, st.textlen));
	cmd_next(c);
	return 0;
}

static int
st_quit(struct pop3_client *c, const char *line, size_t len)
{
	struct pop3_status st;

	if (status(c, line, len, &st) == -1)
		return -1;
	/* -ERR: the server could not apply the deletions (RFC 1939). */
	if (!st.ok)
		return fail_err(c, &st, POP3_FAIL_PROTOCOL, "QUIT");
	(void)qpop(c);
	set_state(c, P3_DONE);
	free(c->scratch); c->scratch = NULL;
	c->cb.done(c->arg);
	return 0;
}

/* Hands a complete line to the current state. */
static int
dispatch(struct pop3_client *c)
{
	const char *line = pop3_line_text(&c->line);
	size_t len = c->line.len;

	if (memchr(line, '\0', len) != NULL)
		return fail(c, POP3_FAIL_PROTOCOL,
		    "NUL byte in a line while %s: \"%s\"", c->what,
		    quote(c, line, len));
	if (log_verbosity() >= 2)
		log_trace("pop3: S: %s", quote(c, line, len));
	switch (c->state) {
	case P3_GREETING:
		return st_greeting(c, line, len);
	case P3_CAPA:
		return st_capa(c, line, len);
	case P3_STLS:
		return st_stls(c, line, len);
	case P3_AUTH:
		return st_auth(c, line, len);
	case P3_OAUTH:
		return st_oauth(c, line, len);
	case P3_USER:
		return st_user(c, line, len);
	case P3_PASS:
		return st_pass(c, line, len);
	case P3_APOP:
		return st_apop(c, line, len);
	case P3_UIDL:
		return st_uidl(c, line, len);
	case P3_LIST:
		return st_list(c, line, len);
	case P3_STAT:
		return st_stat(c, line, len);
	case P3_READY:
		return st_ready(c, line, len);
	case P3_RETR:
		return st_retr(c, line, len);
	case P3_DELE:
		return st_dele(c, line, len);
	case P3_QUIT:
		return st_quit(c, line, len);
	case P3_TLS:
	case P3_BODY:
	case P3_DONE:
	case P3_FAILED:
		break;
	}
	panic(__FILE__, __LINE__, "line dispatched in a byte state");
}

struct pop3_client *
pop3_client_new(const struct pop3_client_params *params,
    const struct pop3_client_cb *cb, void *arg)
{
	struct pop3_client *c;

	ASSERT(params->user != NULL &&
	    (params->password != NULL || params->token != NULL));
	ASSERT(cb->ready != NULL && cb->failed != NULL && cb->done != NULL);
	ASSERT(!params->starttls || cb->start_tls != NULL);
	c = xcalloc(1, sizeof(*c));
	c->params = *params;
	c->cb = *cb;
	c->arg = arg;
	if (params->pipeline_window == 0)
		c->window = WINDOW_DEFAULT;
	else if (params->pipeline_window > WINDOW_MAX)
		c->window = WINDOW_MAX;
	else
		c->window = params->pipeline_window;
	c->max_msgs = params->max_msgs != 0 ? params->max_msgs :
	    MAX_MSGS_DEFAULT;
	c->max_listing_bytes = params->max_listing_bytes != 0 ?
	    params->max_listing_bytes : POP3_LISTING_BYTES_DEFAULT;
	pop3_line_init(&c->line);
	buf_init(&c->out, OUT_CAP);
	c->state = P3_GREETING;
	snprintf(c->what, sizeof(c->what), "%s", state_names[P3_GREETING]);
	return c;
}

void
pop3_client_free(struct pop3_client **cp)
{
	struct pop3_client *c = *cp;

	if (c == NULL)
		return;
	wipe(c->out.data, c->out.data != NULL ? c->out.cap : 0);
	buf_release(&c->out);
	free(c->scratch);
	free(c->timestamp);
	if (c->oauth_resp != NULL)
		wipe(c->oauth_resp, c->oauth_resplen);
	free(c->oauth_resp);
	free(c->wide_line);
	free(c->list);
	free(c->uids);
	free(c->arena);
	free(c->msgs);
	free(c->q);
	free(c);
	*cp = NULL;
}

int
pop3_client_feed(struct pop3_client *c, const char *p, size_t n)
{
	enum pop3_parse r;
	size_t used;

	c->tls_cut = false;
	while (n > 0) {
		switch (c->state) {
		case P3_FAILED:
			return -1;
		case P3_DONE:
		case P3_TLS:
			/* Nothing more is expected, or to be trusted. */
			return 0;
		case P3_BODY:
			if (st_body(c, p, n, &used) == -1)
				return -1;
			break;
		default:
			r = pop3_line_feed(&c->line, p, n, &used);
			if (r == POP3_PARSE_INVALID)
				return fail(c, POP3_FAIL_PROTOCOL,
				    "line longer than %zu octets while %s: "
				    "\"%s\"", c->line.max, c->what,
				    quote(c, pop3_line_text(&c->line),
				    c->line.len));
			if (r == POP3_PARSE_OK && dispatch(c) == -1)
				return -1;
			break;
		}
		/* Set even if start_tls() already called tls_ready(). */
		if (c->tls_cut) {
			c->tls_cut = false;
			return 0;
		}
		p += used;
		n -= used;
	}
	return c->state == P3_FAILED ? -1 : 0;
}

void
pop3_client_pending(struct pop3_client *c, const char **p_r, size_t *n_r)
{
	*n_r = buf_used(&c->out);
	/* Never NULL, so callers may pass it to memcpy() with 0. */
	*p_r = *n_r > 0 ? buf_peek(&c->out) : "";
}

void
pop3_client_sent(struct pop3_client *c, size_t n)
{
	if (n == 0)
		return;
	ASSERT(n <= buf_used(&c->out));
	/* Sent lines may have held the password. */
	wipe(c->out.data + c->out.off, n);
	buf_consume(&c->out, n);
	/* Grown for a long token: back to the usual size once sent. */
	if (c->out.cap > OUT_CAP && buf_used(&c->out) == 0) {
		buf_release(&c->out);
		buf_init(&c->out, OUT_CAP);
	}
	flush(c);
}

void
pop3_client_tls_ready(struct pop3_client *c)
{
	ASSERT(c->state == P3_TLS);
	c->tls_done = true;
	pop3_line_init(&c->line);
	send_capa(c);
}

void
pop3_client_retr(struct pop3_client *c, uint32_t num)
{
	queue_cmd(c, Q_RETR, num, 0);
}

void
pop3_client_top(struct pop3_client *c, uint32_t num, unsigned lines)
{
	queue_cmd(c, Q_TOP, num, lines);
}

void
pop3_client_dele(struct pop3_client *c, uint32_t num)
{
	queue_cmd(c, Q_DELE, num, 0);
}

void
pop3_client_quit(struct pop3_client *c)
{
	queue_cmd(c, Q_QUIT, 0, 0);
}

bool
pop3_client_idle(const struct pop3_client *c)
{
	return (c->state == P3_READY && c->qlen == 0) ||
	    c->state == P3_DONE || c->state == P3_FAILED;
}

bool
pop3_client_pipelining(const struct pop3_client *c)
{
	return (c->caps & POP3_CAPA_PIPELINING) != 0;
}

bool
pop3_client_has_top(const struct pop3_client *c)
{
	return (c->caps & POP3_CAPA_TOP) != 0;
}

bool
pop3_client_stat(const struct pop3_client *c, uint64_t *size_r)
{
	if (!c->stat_ok)
		return false;
	*size_r = c->stat_size;
	return true;
}

const struct pop3_login_delay *
pop3_client_login_delay(const struct pop3_client *c)
{
	return &c->login_delay;
}

const struct pop3_expire *
pop3_client_expire(const struct pop3_client *c)
{
	return &c->expire;
}

bool
pop3_client_expires_at_quit(const struct pop3_client *c)
{
	return pop3_expire_at_quit(&c->expire);
}

enum pop3_state
pop3_client_state(const struct pop3_client *c)
{
	return c->state;
}

const char *
pop3_client_what(const struct pop3_client *c)
{
	return c->what;
}
