/*
 * pop3/client: whole sessions against scripted server replies.  Each script
 * is replayed whole, split at every point and one byte at a time; every
 * replay must give exactly the same events (body bytes included) and the
 * same command bytes.  A scripted owner reacts to the events as the
 * daemon would: RETR everything, DELE each message once its body is in,
 * QUIT when every message is settled.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ingestd/base/log.h"
#include "pop3/client.h"
#include "pop3/parse.h"
#include "pop3/sasl.h"
#include "tests/unit/test.h"

#define TESTS(X)                                                         \
	X(test_base64_vectors)                                           \
	X(test_sasl_plain_bytes)                                         \
	X(test_apop_digest_rfc1939)                                      \
	X(test_session_user_pass)                                        \
	X(test_expire_zero_no_second_capa)                               \
	X(test_expire_user_capa_after_login)                             \
	X(test_expire_user_capa_after_login_pipelined)                   \
	X(test_login_delay)                                              \
	X(test_stat_when_asked)                                          \
	X(test_stat_refused_or_unreadable)                               \
	X(test_login_delay_user_capa_after_login)                        \
	X(test_expire_user_kept_when_capa_after_login_fails)             \
	X(test_expire_reset_by_capa_after_stls)                          \
	X(test_session_pipelined_plain)                                  \
	X(test_session_apop)                                             \
	X(test_session_auth_plain_continuation)                          \
	X(test_session_stls)                                             \
	X(test_stls_not_offered)                                         \
	X(test_stls_refused)                                             \
	X(test_auth_refused_classes)                                     \
	X(test_no_auth_mechanism)                                        \
	X(test_bad_credentials)                                          \
	X(test_unexpected_sasl_challenge)                                \
	X(test_uidl_err_gives_null_uidls)                                \
	X(test_duplicate_uidls_passed)                                   \
	X(test_listing_mismatch)                                         \
	X(test_list_refused)                                             \
	X(test_max_msgs)                                                 \
	X(test_max_listing_bytes)                                        \
	X(test_bodies)                                                   \
	X(test_large_body_chunks)                                        \
	X(test_top)                                                      \
	X(test_retr_err_continues)                                       \
	X(test_quit_err)                                                 \
	X(test_greeting_refused)                                         \
	X(test_garbage)                                                  \
	X(test_overlong_line)                                            \
	X(test_response_while_idle)                                      \
	X(test_body_consumer_fails)                                      \
	X(test_bytes_after_quit_ignored)                                 \
	X(test_pipelined_emission)                                       \
	X(test_unpipelined_emission)                                     \
	X(test_queue_grows_around)                                       \
	X(test_optional_callbacks_null)                                  \
	X(test_state_names)                                              \
	X(test_secrets_not_logged)                                       \
	X(test_oauth_encodings)                                                \
	X(test_oauth_mechanism_choice)                                         \
	X(test_oauth_255_octets)                                               \
	X(test_oauth_error_challenge)                                          \
	X(test_oauth_long_token_and_challenge)                                 \
	X(test_oauth_no_password_fallback)                                     \
	X(test_oauth_token_not_logged)                                         \
	X(test_queue_after_quit_is_bug)

TESTS(TEST_DECLARE)

/* A growable byte string for transcripts. */
struct str {
	char *p;
	size_t len, cap;
};

static void
str_add(struct str *s, const void *p, size_t n)
{
	if (s->cap - s->len < n + 1) {
		s->cap = (s->len + n + 1) * 2;
		s->p = realloc(s->p, s->cap);
		ASSERT_TRUE(s->p != NULL);
	}
	memcpy(s->p + s->len, p, n);
	s->len += n;
	s->p[s->len] = '\0';
}

static void __attribute__((format(printf, 2, 3)))
str_addf(struct str *s, const char *fmt, ...)
{
	char tmp[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	ASSERT_TRUE(n >= 0 && (size_t)n < sizeof(tmp));
	str_add(s, tmp, (size_t)n);
}

/* ---- MD5 (RFC 1321), for APOP: the daemon gets it from OpenSSL. ---- */

static const uint32_t md5_k[64] = {
	0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee,
	0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
	0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be,
	0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
	0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa,
	0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
	0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed,
	0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
	0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
	0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
	0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05,
	0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
	0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039,
	0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
	0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1,
	0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};

static const unsigned md5_s[4][4] = {
	{ 7, 12, 17, 22 }, { 5, 9, 14, 20 }, { 4, 11, 16, 23 },
	{ 6, 10, 15, 21 },
};

static void
md5_block(uint32_t h[4], const unsigned char *b)
{
	uint32_t m[16], a = h[0], bb = h[1], c = h[2], d = h[3], f, t;
	unsigned i, g;

	for (i = 0; i < 16; i++)
		m[i] = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 |
		    (uint32_t)b[4 * i + 2] << 16 | (uint32_t)b[4 * i + 3] << 24;
	for (i = 0; i < 64; i++) {
		switch (i / 16) {
		case 0:
			f = (bb & c) | (~bb & d);
			g = i;
			break;
		case 1:
			f = (d & bb) | (~d & c);
			g = (5 * i + 1) % 16;
			break;
		case 2:
			f = bb ^ c ^ d;
			g = (3 * i + 5) % 16;
			break;
		default:
			f = c ^ (bb | ~d);
			g = (7 * i) % 16;
			break;
		}
		t = a + f + md5_k[i] + m[g];
		a = d;
		d = c;
		c = bb;
		bb += (t << md5_s[i / 16][i % 4]) |
		    (t >> (32 - md5_s[i / 16][i % 4]));
	}
	h[0] += a;
	h[1] += bb;
	h[2] += c;
	h[3] += d;
}

static void
md5(const void *p, size_t n, unsigned char out[16])
{
	uint32_t h[4] = { 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476 };
	unsigned char blk[64];
	const unsigned char *in = p;
	uint64_t bits = (uint64_t)n * 8;
	size_t i, rest;

	for (i = 0; i + 64 <= n; i += 64)
		md5_block(h, in + i);
	rest = n - i;
	memset(blk, 0, sizeof(blk));
	memcpy(blk, in + i, rest);
	blk[rest] = 0x80;
	if (rest >= 56) {
		md5_block(h, blk);
		memset(blk, 0, sizeof(blk));
	}
	for (i = 0; i < 8; i++)
		blk[56 + i] = (unsigned char)(bits >> (8 * i));
	md5_block(h, blk);
	for (i = 0; i < 16; i++)
		out[i] = (unsigned char)(h[i / 4] >> (8 * (i % 4)));
}

/* ---- the scripted owner ---- */

enum policy {
	OWN_FETCH,	/* RETR all; DELE after each body; QUIT when settled */
	OWN_RETR_QUIT,	/* RETR all and QUIT, no DELE */
	OWN_TOP,	/* TOP n 0 for all, then QUIT */
	OWN_NOTHING,	/* queue nothing */
};

struct sim {
	struct pop3_client *c;
	enum policy policy;
	struct str ev;		/* events */
	struct str out;		/* command bytes, as sent */
	bool in_body;
	bool tls_wanted;
	bool tls_inline;	/* start_tls() brings TLS up at once */
	bool finished;		/* done() or failed() fired */
	bool failed;
	size_t nmsgs, settled;
	uint32_t body_fail_num;	/* body() refuses this message */
	size_t max_chunk;
};

static const char *
cmd_name(enum pop3_cmd cmd)
{
	return cmd == POP3_CMD_RETR ? "RETR" : cmd == POP3_CMD_TOP ? "TOP" :
	    "DELE";
}

static const char *
fail_name(enum pop3_fail why)
{
	static const char *const names[] = {
		[POP3_FAIL_PROTOCOL] = "PROTOCOL", [POP3_FAIL_AUTH] = "AUTH",
		[POP3_FAIL_TEMP] = "TEMP", [POP3_FAIL_PERM] = "PERM",
		[POP3_FAIL_NO_STLS] = "NO_STLS",
		[POP3_FAIL_NO_AUTH] = "NO_AUTH", [POP3_FAIL_LOCAL] = "LOCAL",
	};

	return names[why];
}

static void
drain(struct sim *s)
{
	const char *p;
	size_t n;

	for (;;) {
		pop3_client_pending(s->c, &p, &n);
		if (n == 0)
			return;
		str_add(&s->out, p, n);
		pop3_client_sent(s->c, n);
	}
}

/* Every event but body() ends the body being recorded. */
static struct sim *
event(void *arg)
{
	struct sim *s = arg;

	ASSERT_TRUE(!s->finished);
	if (s->in_body) {
		str_add(&s->ev, "]\n", 2);
		s->in_body = false;
	}
	return s;
}

static void
settle(struct sim *s)
{
	if (s->policy == OWN_FETCH && ++s->settled == s->nmsgs)
		pop3_client_quit(s->c);
}

static void
cb_start_tls(void *arg)
{
	struct sim *s = event(arg);

	str_addf(&s->ev, "start_tls\n");
	if (s->tls_inline)
		pop3_client_tls_ready(s->c);
	else
		s->tls_wanted = true;
}

/* What the client learnt of EXPIRE, when a server said anything. */
static void
expire_event(struct sim *s)
{
	static const char *const kinds[] = {
		[POP3_EXPIRE_NONE] = "none", [POP3_EXPIRE_NEVER] = "never",
		[POP3_EXPIRE_DAYS] = "days", [POP3_EXPIRE_UNKNOWN] = "unknown",
	};
	const struct pop3_expire *e = pop3_client_expire(s->c);
	const struct pop3_login_delay *d = pop3_client_login_delay(s->c);

	uint64_t size;

	if (d->present)
		str_addf(&s->ev, "login-delay %" PRIu32 "%s\n", d->seconds,
		    d->per_user ? " user" : "");
	if (pop3_client_stat(s->c, &size))
		str_addf(&s->ev, "stat %" PRIu64 "\n", size);
	ASSERT_EQ(pop3_client_expires_at_quit(s->c), pop3_expire_at_quit(e));
	if (e->kind == POP3_EXPIRE_NONE)
		return;
	str_addf(&s->ev, "expire %s %" PRIu32 "%s%s\n", kinds[e->kind],
	    e->days, e->per_user ? " user" : "",
	    pop3_client_expires_at_quit(s->c) ? " at-quit" : "");
}

static void
cb_ready(void *arg, const struct pop3_msg *msgs, size_t n)
{
	struct sim *s = event(arg);
	size_t i;

	str_addf(&s->ev, "ready %zu\n", n);
	expire_event(s);
	for (i = 0; i < n; i++)
		str_addf(&s->ev, "  %" PRIu32 " %" PRIu64 " %s\n", msgs[i].num,
		    msgs[i].size, msgs[i].uidl != NULL ? msgs[i].uidl :
		    "(none)");
	s->nmsgs = n;
	switch (s->policy) {
	case OWN_FETCH:
		for (i = 0; i < n; i++)
			pop3_client_retr(s->c, msgs[i].num);
		if (n == 0)
			pop3_client_quit(s->c);
		break;
	case OWN_RETR_QUIT:
		for (i = 0; i < n; i++)
			pop3_client_retr(s->c, msgs[i].num);
		pop3_client_quit(s->c);
		break;
	case OWN_TOP:
		for (i = 0; i < n; i++)
			pop3_client_top(s->c, msgs[i].num, 0);
		pop3_client_quit(s->c);
		break;
	case OWN_NOTHING:
		break;
	}
}

static int
cb_body(void *arg, enum pop3_cmd cmd, uint32_t num, const char *p, size_t n)
{
	struct sim *s = arg;

	ASSERT_TRUE(!s->finished);
	ASSERT_TRUE(n > 0);
	if (n > s->max_chunk)
		s->max_chunk = n;
	/* Refuse before recording: how much came first depends on splits. */
	if (num == s->body_fail_num)
		return -1;
	if (!s->in_body) {
		str_addf(&s->ev, "body %s %" PRIu32 " [", cmd_name(cmd), num);
		s->in_body = true;
	}
	str_add(&s->ev, p, n);
	return 0;
}

static void
cb_body_end(void *arg, enum pop3_cmd cmd, uint32_t num)
{
	struct sim *s = event(arg);

	str_addf(&s->ev, "end %s %" PRIu32 "\n", cmd_name(cmd), num);
	if (s->policy == OWN_FETCH)
		pop3_client_dele(s->c, num);
}

static void
cb_deleted(void *arg, uint32_t num)
{
	struct sim *s = event(arg);

	str_addf(&s->ev, "deleted %" PRIu32 "\n", num);
	settle(s);
}

static void
cb_cmd_failed(void *arg, enum pop3_cmd cmd, uint32_t num, const char *text)
{
	struct sim *s = event(arg);

	str_addf(&s->ev, "cmd_failed %s %" PRIu32 ": %s\n", cmd_name(cmd),
	    num, text);
	settle(s);
}

static void
cb_done(void *arg)
{
	struct sim *s = event(arg);

	str_addf(&s->ev, "done\n");
	s->finished = true;
}

static void
cb_failed(void *arg, enum pop3_fail why, const char *text)
{
	struct sim *s = event(arg);

	str_addf(&s->ev, "failed %s: %s\n", fail_name(why), text);
	/* What the client queued before failing went out before the reply
	 * that failed it, in a real session. */
	drain(s);
	s->finished = true;
	s->failed = true;
}

static const struct pop3_client_cb sim_cb = {
	.start_tls = cb_start_tls,
	.ready = cb_ready,
	.body = cb_body,
	.body_end = cb_body_end,
	.deleted = cb_deleted,
	.cmd_failed = cb_cmd_failed,
	.done = cb_done,
	.failed = cb_failed,
};

static void
sim_init(struct sim *s, const struct pop3_client_params *params,
    enum policy policy)
{
	memset(s, 0, sizeof(*s));
	s->policy = policy;
	s->c = pop3_client_new(params, &sim_cb, s);
	str_add(&s->ev, "", 0);
	str_add(&s->out, "", 0);
}

static void
sim_release(struct sim *s)
{
	pop3_client_free(&s->c);
	ASSERT_TRUE(s->c == NULL);
	free(s->ev.p);
	free(s->out.p);
}

static void
sim_feed(struct sim *s, const char *p, size_t n)
{
	int r;

	r = pop3_client_feed(s->c, p, n);
	ASSERT_EQ(r, s->failed ? -1 : 0);
	drain(s);
}

/* One segment of server bytes; TLS comes up between segments. */
struct seg {
	const char *p;
	size_t n;
};

#define SEG(lit) { lit, sizeof(lit) - 1 }

struct script {
	struct pop3_client_params params;
	enum policy policy;
	uint32_t body_fail_num;
	bool tls_inline;
	struct seg segs[4];
	const char *events;
	const char *out;
};

#define USER_PARAMS                                                      \
	{                                                                \
		.user = "alice", .password = "s3cret",                   \
		.auth = POP3_AUTH_AUTO, .md5 = md5,                      \
	}

static const struct pop3_client_params user_params = USER_PARAMS;

/*
 * Replays the script: cut is a global offset into the concatenated
 * segments where the input is split in two, or SIZE_MAX for one byte at a
 * time.
 */
static void
replay(const struct script *sc, size_t cut, struct sim *s)
{
	size_t i, base = 0, pos, piece;

	sim_init(s, &sc->params, sc->policy);
	s->body_fail_num = sc->body_fail_num;
	s->tls_inline = sc->tls_inline;
	for (i = 0; i < 4 && sc->segs[i].p != NULL; i++) {
		for (pos = 0; pos < sc->segs[i].n; pos += piece) {
			piece = sc->segs[i].n - pos;
			if (cut == SIZE_MAX)
				piece = 1;
			else if (base + pos < cut && cut < base + pos + piece)
				piece = cut - (base + pos);
			sim_feed(s, sc->segs[i].p + pos, piece);
		}
		base += sc->segs[i].n;
		if (s->tls_wanted) {
			s->tls_wanted = false;
			pop3_client_tls_ready(s->c);
			drain(s);
		}
	}
}

static void
run(const struct script *sc)
{
	struct sim s;
	size_t i, total = 0, cut;

	for (i = 0; i < 4 && sc->segs[i].p != NULL; i++)
		total += sc->segs[i].n;
	for (cut = 0; cut <= total + 1; cut++) {
		replay(sc, cut == total + 1 ? SIZE_MAX : cut, &s);
		if (strcmp(s.ev.p, sc->events) != 0 ||
		    strcmp(s.out.p, sc->out) != 0)
			fprintf(stderr, "replay cut at %zu of %zu:\n", cut,
			    total);
		ASSERT_STREQ(s.ev.p, sc->events);
		ASSERT_STREQ(s.out.p, sc->out);
		sim_release(&s);
	}
}

/* ---- encodings ---- */

static void
test_base64_vectors(void)
{
	static const char *const vec[][2] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" },
		{ "foo", "Zm9v" }, { "foob", "Zm9vYg==" },
		{ "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
	};
	char out[16];
	size_t i;

	for (i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		ASSERT_EQ(pop3_base64(vec[i][0], strlen(vec[i][0]), out),
		    strlen(vec[i][1]));
		ASSERT_STREQ(out, vec[i][1]);
	}
	ASSERT_EQ(pop3_base64("\xff\xfe\x00", 3, out), 4);
	ASSERT_STREQ(out, "//4A");
}

static void
test_sasl_plain_bytes(void)
{
	char out[POP3_SASL_PLAIN_MAX + 1], user[300];

	/* RFC 4616 section 4, with an empty authorization identity. */
	ASSERT_EQ(pop3_sasl_plain("tim", "tanstaaftanstaaf", out), 28);
	ASSERT_STREQ(out, "AHRpbQB0YW5zdGFhZnRhbnN0YWFm");
	ASSERT_EQ(pop3_sasl_plain("alice", "s3cret", out), 20);
	ASSERT_STREQ(out, "AGFsaWNlAHMzY3JldA==");
	memset(user, 'u', 255);
	user[255] = '\0';
	ASSERT_EQ(pop3_sasl_plain(user, user, out), POP3_SASL_PLAIN_MAX);
	user[255] = 'u';
	user[256] = '\0';
	ASSERT_EQ(pop3_sasl_plain(user, "x", out), 0);
}

static void
test_apop_digest_rfc1939(void)
{
	static const char ts[] = "<1896.697170952@dbc.mtview.ca.us>";
	unsigned char d[16];
	char out[33];

	md5("", 0, d);
	ASSERT_MEMEQ(d, "\xd4\x1d\x8c\xd9\x8f\x00\xb2\x04\xe9\x80\x09\x98"
	    "\xec\xf8\x42\x7e", 16);
	ASSERT_EQ(pop3_apop_digest(md5, ts, sizeof(ts) - 1, "tanstaaf", out),
	    0);
	ASSERT_STREQ(out, "c4c9334bac560ecc979e58001b3e22fb");
}

/* ---- sessions ---- */

static void
test_session_user_pass(void)
{
	static const struct script sc = {
		.params = {
			.user = "alice", .password = "s3cret",
			.auth = POP3_AUTH_AUTO, .md5 = md5,
		},
		.policy = OWN_FETCH,
		.segs = { SEG("+OK POP3 ready\r\n"
		    "-ERR unknown command\r\n"
		    "+OK\r\n"
		    "+OK logged in\r\n"
		    "+OK\r\n1 uid-one\r\n2 uid-two\r\n.\r\n"
		    "+OK 2 messages\r\n1 12\r\n2 5\r\n.\r\n"
		    "+OK 12 octets\r\nHello\r\n..\r\n.\r\n"
		    "+OK\r\nbye\r\n.\r\n"
		    "+OK deleted\r\n"
		    "+OK deleted\r\n"
		    "+OK bye\r\n") },
		.events = "ready 2\n"
		    "  1 12 uid-one\n"
		    "  2 5 uid-two\n"
		    "body RETR 1 [Hello\r\n.\r\n]\n"
		    "end RETR 1\n"
		    "body RETR 2 [bye\r\n]\n"
		    "end RETR 2\n"
		    "deleted 1\n"
		    "deleted 2\n"
		    "done\n",
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\nUIDL\r\nLIST\r\n"
		    "RETR 1\r\nRETR 2\r\nDELE 1\r\nDELE 2\r\nQUIT\r\n",
	};

	run(&sc);
}

/* EXPIRE without USER is the server's value: no CAPA after login. */
static void
test_expire_zero_no_second_capa(void)
{
	static const struct script sc = {
		.params = USER_PARAMS,
		.policy = OWN_RETR_QUIT,
		.segs = { SEG("+OK POP3 ready\r\n"
		    "+OK\r\nUSER\r\nEXPIRE 0\r\nUIDL\r\n.\r\n"
		    "+OK\r\n"
		    "+OK logged in\r\n"
		    "+OK\r\n1 a\r\n.\r\n"
		    "+OK\r\n1 3\r\n.\r\n"
		    "+OK\r\nhi\r\n.\r\n"
		    "+OK bye\r\n") },
		.events = "ready 1\n"
		    "expire days 0 at-quit\n"
		    "  1 3 a\n"
		    "body RETR 1 [hi\r\n]\n"
		    "end RETR 1\n"
		    "done\n",
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\nUIDL\r\n"
		    "LIST\r\nRETR 1\r\nQUIT\r\n",
	};

	run(&sc);
}

/*
 * "EXPIRE 30 USER" before login: this user's value comes from CAPA after
 * login, and there it is 0 (RFC 2449 section 6.7).
 */
static void
test_expire_user_capa_after_login(void)
{
	static const struct script sc = {
		.params = USER_PARAMS,
		.policy = OWN_RETR_QUIT,
		.segs = { SEG("+OK POP3 ready\r\n"
		    "+OK\r\nUSER\r\nEXPIRE 30 USER\r\nUIDL\r\n.\r\n"
		    "+OK\r\n"
		    "+OK logged in\r\n"
		    "+OK\r\nUIDL\r\nEXPIRE 0\r\n.\r\n"
		    "+OK\r\n1 a\r\n.\r\n"
		    "+OK\r\n1 3\r\n.\r\n"
		    "+OK\r\nhi\r\n.\r\n"
		    "+OK bye\r\n") },
		.events = "ready 1\n"
		    "expire days 0 at-quit\n"
		    "  1 3 a\n"
		    "body RETR 1 [hi\r\n]\n"
		    "end RETR 1\n"
		    "done\n",
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\nCAPA\r\n"
		    "UIDL\r\nLIST\r\nRETR 1\r\nQUIT\r\n",
	};

	run(&sc);
}

/*
 * The same with AUTH PLAIN and PIPELINING; CAPA after login lists less
 * than before (no SASL, no PIPELINING): what decided the login stays, and
 * only EXPIRE is taken, here NEVER for this user.
 */
static void
test_expire_user_capa_after_login_pipelined(void)
{
	static const struct script sc = {
		.params = USER_PARAMS,
		.policy = OWN_RETR_QUIT,
		.segs = { SEG("+OK POP3 ready\r\n"
		    "+OK\r\nSASL PLAIN\r\nPIPELINING\r\nTOP\r\n"
		    "expire 0 user\r\n.\r\n"
		    "+OK logged in\r\n"
		    "+OK\r\nEXPIRE NEVER\r\n.\r\n"
		    "+OK\r\n1 a\r\n.\r\n"
		    "+OK\r\n1 3\r\n.\r\n"
		    "+OK\r\nhi\r\n.\r\n"
		    "+OK bye\r\n") },
		.events = "ready 1\n"
		    "expire never 0\n"
		    "  1 3 a\n"
		    "body RETR 1 [hi\r\n]\n"
		    "end RETR 1\n"
		    "done\n",
		.out = "CAPA\r\nAUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n"
		    "CAPA\r\nUIDL\r\nLIST\r\nRETR 1\r\nQUIT\r\n",
	};

	run(&sc);
}

/* LOGIN-DELAY without USER: the server's value, no CAPA after login. */
static void
test_login_delay(void)
{
	static const struct script sc = {
		.params = USER_PARAMS,
		.policy = OWN_RETR_QUIT,
		.segs = { SEG("+OK POP3 ready\r\n"
		    "+OK\r\nUSER\r\nLOGIN-DELAY 900\r\nUIDL\r\n.\r\n"
		    "+OK\r\n"
		    "+OK logged in\r\n"
		    "+OK\r\n.\r\n"
		    "+OK\r\n.\r\n"
		    "+OK bye\r\n") },
		.events = "ready 0\n"
		    "login-delay 900\n"
		    "done\n",
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\nUIDL\r\n"
		    "LIST\r\nQUIT\r\n",
	};

	run(&sc);
}

#define STAT_PARAMS                                                      \
	{                                                                \
		.user = "alice", .password = "s3cret",                   \
		.auth = POP3_AUTH_AUTO, .md5 = md5, .stat = true,        \
	}

/* Asked for, STAT follows LIST; its size may differ from LIST's sum. */
static void
test_stat_when_asked(void)
{
	static const struct script sc = {
		.params = STAT_PARAMS,
		.policy = OWN_RETR_QUIT,
		.segs = { SEG("+OK POP3 ready\r\n"
		    "+OK\r\nUSER\r\nUIDL\r\n.\r\n"
		    "+OK\r\n"
		    "+OK logged in\r\n"
		    "+OK\r\n1 a\r\n.\r\n"
		    "+OK\r\n1 3\r\n.\r\n"
		    "+OK 1 81920 octets\r\n"
		    "+OK\r\nhi\r\n.\r\n"
		    "+OK bye\r\n") },
		.events = "ready 1\n"
		    "stat 81920\n"
		    "  1 3 a\n"
		    "body RETR 1 [hi\r\n]\n"
		    "end RETR 1\n"
		    "done\n",
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\nUIDL\r\n"
		    "LIST\r\nSTAT\r\nRETR 1\r\nQUIT\r\n",
	};

	run(&sc);
}

/* A STAT refused, or answered with nonsense, leaves the size unknown. */
static void
test_stat_refused_or_unreadable(void)
{
	static const struct script refused = {
		.params = STAT_PARAMS,
		.policy = OWN_NOTHING,
		.segs = { SEG("+OK POP3 ready\r\n"
		    "+OK\r\nUSER\r\nUIDL\r\n.\r\n"
		    "+OK\r\n"
		    "+OK logged in\r\n"
		    "+OK\r\n.\r\n"
		    "+OK\r\n.\r\n"
		    "-ERR no\r\n") },
		.events = "ready 0\n",
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\nUIDL\r\n"
		    "LIST\r\nSTAT\r\n",
	};
	static const struct script junk = {
		.params = STAT_PARAMS,
		.policy = OWN_NOTHING,
		.segs = { SEG("+OK POP3 ready\r\n"
		    "+OK\r\nUSER\r\nUIDL\r\n.\r\n"
		    "+OK\r\n"
		    "+OK logged in\r\n"
		    "+OK\r\n.\r\n"
		    "+OK\r\n.\r\n"
		    "+OK maildrop has 0 messages\r\n") },
		.events = "ready 0\n",
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\nUIDL\r\n"
		    "LIST\r\nSTAT\r\n",
	};

	run(&refused);
	run(&junk);
}

/*
 * "LOGIN-DELAY 900 USER" before login: this user's value comes from CAPA
 * after login (RFC 2449 section 6.8), here 3600; EXPIRE alongside.
 */
static void
test_login_delay_user_capa_after_login(void)
{
	static const struct script sc = {
		.params = USER_PARAMS,
		.policy = OWN_RETR_QUIT,
		.segs = { SEG("+OK POP3 ready\r\n"
		    "+OK\r\nUSER\r\nLOGIN-DELAY 900 USER\r\nUIDL\r\n.\r\n"
		    "+OK\r\n"
		    "+OK logged in\r\n"
		    "+OK\r\nUIDL\r\nLOGIN-DELAY 3600\r\nEXPIRE 5\r\n"
		    ".\r\n"
		    "+OK\r\n.\r\n"
		    "+OK\r\n.\r\n"
		    "+OK bye\r\n") },
		.events = "ready 0\n"
		    "login-delay 3600\n"
		    "expire days 5\n"
		    "done\n",
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\nCAPA\r\n"
		    "UIDL\r\nLIST\r\nQUIT\r\n",
	};

	run(&sc);
}

/*
 * CAPA after login refused, or silent on EXPIRE: the value before login
 * stands, the server's default; "EXPIRE 0 USER" stays at QUIT.
 */
static void
test_expire_user_kept_when_capa_after_login_fails(void)
{
	static const struct script refused = {
		.params = USER_PARAMS,
		.policy = OWN_RETR_QUIT,
		.segs = { SEG("+OK POP3 ready\r\n"
		    "+OK\r\nUSER\r\nEXPIRE 0 USER\r\n.\r\n"
		    "+OK\r\n"
		    "+OK logged in\r\n"
		    "-ERR not now\r\n"
		    "+OK\r\n.\r\n"
		    "+OK\r\n.\r\n"
		    "+OK bye\r\n") },
		.events = "ready 0\n"
		    "expire days 0 user at-quit\n"
		    "done\n",
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\nCAPA\r\n"
		    "UIDL\r\nLIST\r\nQUIT\r\n",
	};
	static const struct script silent = {
		.params = USER_PARAMS,
		.policy = OWN_RETR_QUIT,
		.segs = { SEG("+OK POP3 ready\r\n"
		    "+OK\r\nUSER\r\nEXPIRE 0 USER\r\n.\r\n"
		    "+OK\r\n"
		    "+OK logged in\r\n"
		    "+OK\r\nUIDL\r\n.\r\n"
		    "+OK\r\n.\r\n"
		    "+OK\r\n.\r\n"
		    "+OK bye\r\n") },
		.events = "ready 0\n"
		    "expire days 0 user at-quit\n"
		    "done\n",
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\nCAPA\r\n"
		    "UIDL\r\nLIST\r\nQUIT\r\n",
	};

	run(&refused);
	run(&silent);
}

/* CAPA after STLS replaces the plaintext one, EXPIRE included. */
static void
test_expire_reset_by_capa_after_stls(void)
{
	static const struct script sc = {
		.params = {
			.user = "alice", .password = "s3cret",
			.auth = POP3_AUTH_USER, .starttls = true,
		},
		.policy = OWN_RETR_QUIT,
		.segs = {
			SEG("+OK POP3 ready\r\n"
			    "+OK\r\nSTLS\r\nEXPIRE 0 USER\r\n.\r\n"
			    "+OK begin TLS\r\n"),
			SEG("+OK\r\nUSER\r\n.\r\n"
			    "+OK\r\n"
			    "+OK logged in\r\n"
			    "+OK\r\n.\r\n"
			    "+OK\r\n.\r\n"
			    "+OK bye\r\n"),
		},
		.events = "start_tls\n"
		    "ready 0\n"
		    "done\n",
		.out = "CAPA\r\nSTLS\r\nCAPA\r\nUSER alice\r\n"
		    "PASS s3cret\r\nUIDL\r\nLIST\r\nQUIT\r\n",
	};

	run(&sc);
}

static void
test_session_pipelined_plain(void)
{
	static const struct script sc = {
		.params = {
			.user = "alice", .password = "s3cret",
			.auth = POP3_AUTH_AUTO, .md5 = md5,
		},
		.policy = OWN_FETCH,
		.segs = { SEG("+OK Dovecot ready.\r\n"
		    "+OK\r\nCAPA\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nPIPELINING\r\n"
		    "AUTH-RESP-CODE\r\nUSER\r\nSASL PLAIN\r\n.\r\n"
		    "+OK Logged in.\r\n"
		    "+OK\r\n1 a\r\n2 b\r\n3 c\r\n.\r\n"
		    "+OK 3 messages:\r\n1 5\r\n2 6\r\n3 7\r\n.\r\n"
		    "+OK 5 octets\r\none\r\n.\r\n"
		    "+OK\r\ntwo\n\r\n.\r\n"
		    "-ERR [SYS/TEMP] cannot read\r\n"
		    "+OK\r\n"
		    "-ERR no\r\n"
		    "+OK Logging out.\r\n") },
		.events = "ready 3\n"
		    "  1 5 a\n"
		    "  2 6 b\n"
		    "  3 7 c\n"
		    "body RETR 1 [one\r\n]\n"
		    "end RETR 1\n"
		    "body RETR 2 [two\n\r\n]\n"
		    "end RETR 2\n"
		    "cmd_failed RETR 3: [SYS/TEMP] cannot read\n"
		    "deleted 1\n"
		    "cmd_failed DELE 2: no\n"
		    "done\n",
		.out = "CAPA\r\nAUTH PLAIN AGFsaWNlAHMzY3JldA==\r\nUIDL\r\n"
		    "LIST\r\nRETR 1\r\nRETR 2\r\nRETR 3\r\nDELE 1\r\nDELE 2\r\n"
		    "QUIT\r\n",
	};

	run(&sc);
}

static void
test_session_apop(void)
{
	static const struct script sc = {
		.params = {
			.user = "mrose", .password = "tanstaaf",
			.auth = POP3_AUTH_AUTO, .md5 = md5,
		},
		.policy = OWN_FETCH,
		.segs = { SEG("+OK POP3 server ready "
		    "<1896.697170952@dbc.mtview.ca.us>\r\n"
		    "+OK\r\nUSER\r\nUIDL\r\n.\r\n"
		    "+OK maildrop has 0 messages\r\n"
		    "+OK\r\n.\r\n"
		    "+OK\r\n.\r\n"
		    "+OK\r\n") },
		.events = "ready 0\ndone\n",
		.out = "CAPA\r\nAPOP mrose c4c9334bac560ecc979e58001b3e22fb\r\n"
		    "UIDL\r\nLIST\r\nQUIT\r\n",
	};
	struct script explicit = sc;

	run(&sc);
	explicit.params.auth = POP3_AUTH_APOP;
	run(&explicit);
}

static void
test_session_auth_plain_continuation(void)
{
	static char user[121], pass[121];
	static char b64[POP3_SASL_PLAIN_MAX + 1], out[1024];
	struct script sc = {
		.params = {
			.user = user, .password = pass,
			.auth = POP3_AUTH_PLAIN,
		},
		.policy = OWN_FETCH,
		.segs = { SEG("+OK hi\r\n"
		    "+OK\r\nSASL PLAIN\r\n.\r\n"
		    "+ \r\n"
		    "+OK\r\n"
		    "-ERR no UIDL here\r\n"
		    "+OK\r\n.\r\n"
		    "+OK\r\n") },
		.events = "ready 0\ndone\n",
		.out = out,
	};

	/* 242 octets make a response too long for "AUTH PLAIN <resp>". */
	memset(user, 'u', 120);
	memset(pass, 'p', 120);
	ASSERT_EQ(pop3_sasl_plain(user, pass, b64), 324);
	snprintf(out, sizeof(out),
	    "CAPA\r\nAUTH PLAIN\r\n%s\r\nUIDL\r\nLIST\r\nQUIT\r\n", b64);
	run(&sc);
	/* An empty challenge may also come as a lone "+". */
	sc.segs[0] = (struct seg)SEG("+OK hi\r\n"
	    "+OK\r\nSASL PLAIN\r\n.\r\n"
	    "+\r\n"
	    "+OK\r\n"
	    "-ERR no UIDL here\r\n"
	    "+OK\r\n.\r\n"
	    "+OK\r\n");
	run(&sc);
}

static void
test_session_stls(void)
{
	static const struct script sc = {
		.params = {
			.user = "alice", .password = "s3cret",
			.auth = POP3_AUTH_USER, .starttls = true,
		},
		.policy = OWN_FETCH,
		.segs = {
			/* Plaintext injected after the STLS reply must be
			 * dropped, whichever feed it arrives in. */
			SEG("+OK ready\r\n"
			    "+OK\r\nSTLS\r\nUSER\r\n.\r\n"
			    "+OK Begin TLS negotiation now.\r\n"
			    "+OK\r\nUSER\r\n.\r\n-ERR evil\r\n"),
			SEG("+OK\r\nUSER\r\nPIPELINING\r\n.\r\n"
			    "+OK\r\n"
			    "+OK\r\n"
			    "+OK\r\n1 x\r\n.\r\n"
			    "+OK\r\n1 3\r\n.\r\n"
			    "+OK\r\nabc\r\n.\r\n"
			    "+OK\r\n"
			    "+OK\r\n"),
		},
		.events = "start_tls\n"
		    "ready 1\n"
		    "  1 3 x\n"
		    "body RETR 1 [abc\r\n]\n"
		    "end RETR 1\n"
		    "deleted 1\n"
		    "done\n",
		.out = "CAPA\r\nSTLS\r\nCAPA\r\nUSER alice\r\nPASS s3cret\r\n"
		    "UIDL\r\nLIST\r\nRETR 1\r\nDELE 1\r\nQUIT\r\n",
	};
	struct script inline_tls = sc;
	size_t stls_end, cut;
	struct sim s;

	run(&sc);
	/*
	 * An owner whose handshake completes inside start_tls(): the rest
	 * of that feed is still plaintext and still dropped.  Cuts between
	 * the STLS reply and the end of the plaintext are left out: bytes
	 * the owner received before its handshake are its to drop.
	 */
	inline_tls.tls_inline = true;
	stls_end = (size_t)(strstr(sc.segs[0].p, "now.\r\n") + 6 -
	    sc.segs[0].p);
	for (cut = 0; cut <= sc.segs[0].n + sc.segs[1].n; cut++) {
		if (cut >= stls_end && cut < sc.segs[0].n)
			continue;
		replay(&inline_tls, cut, &s);
		ASSERT_STREQ(s.ev.p, sc.events);
		ASSERT_STREQ(s.out.p, sc.out);
		sim_release(&s);
	}
}

static void
test_stls_not_offered(void)
{
	struct script sc = {
		.params = {
			.user = "alice", .password = "s3cret",
			.starttls = true,
		},
		.segs = { SEG("+OK ready\r\n+OK\r\nUSER\r\n.\r\n") },
		.events = "failed NO_STLS: server does not offer STLS\n",
		.out = "CAPA\r\n",
	};

	run(&sc);
	/* No CAPA at all is no STLS either. */
	sc.segs[0] = (struct seg)SEG("+OK ready\r\n-ERR what?\r\n");
	run(&sc);
}

static void
test_stls_refused(void)
{
	static const struct script sc = {
		.params = {
			.user = "alice", .password = "s3cret",
			.starttls = true,
		},
		.segs = { SEG("+OK ready\r\n+OK\r\nSTLS\r\n.\r\n"
		    "-ERR \"not\" now\r\n") },
		.events = "failed NO_STLS: STLS refused: "
		    "-ERR \"\\\"not\\\" now\"\n",
		.out = "CAPA\r\nSTLS\r\n",
	};

	run(&sc);
}

static void
test_auth_refused_classes(void)
{
	static const struct {
		const char *reply;
		const char *events;
	} cases[] = {
		{ "-ERR bad password\r\n",
		    "failed AUTH: PASS refused: -ERR \"bad password\"\n" },
		{ "-ERR [AUTH] Authentication failed.\r\n",
		    "failed AUTH: PASS refused: -ERR "
		    "\"[AUTH] Authentication failed.\"\n" },
		{ "-ERR [IN-USE] mailbox locked\r\n",
		    "failed TEMP: PASS refused: -ERR "
		    "\"[IN-USE] mailbox locked\"\n" },
		{ "-ERR [LOGIN-DELAY] wait\r\n",
		    "failed TEMP: PASS refused: -ERR "
		    "\"[LOGIN-DELAY] wait\"\n" },
		{ "-ERR [SYS/TEMP] try later\r\n",
		    "failed TEMP: PASS refused: -ERR "
		    "\"[SYS/TEMP] try later\"\n" },
		{ "-ERR [SYS/PERM] gone\r\n",
		    "failed PERM: PASS refused: -ERR \"[SYS/PERM] gone\"\n" },
	};
	static char in[256];
	struct script sc = {
		.params = USER_PARAMS,
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\n",
	};
	struct script plain = {
		.params = USER_PARAMS,
		.segs = { SEG("+OK\r\n+OK\r\nSASL PLAIN\r\n.\r\n"
		    "-ERR [IN-USE] locked\r\n") },
		.events = "failed TEMP: AUTH PLAIN refused: -ERR "
		    "\"[IN-USE] locked\"\n",
		.out = "CAPA\r\nAUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n",
	};
	struct script user = {
		.params = USER_PARAMS,
		.segs = { SEG("+OK\r\n-ERR\r\n-ERR [AUTH] no plaintext\r\n") },
		.events = "failed AUTH: USER refused: -ERR "
		    "\"[AUTH] no plaintext\"\n",
		.out = "CAPA\r\nUSER alice\r\n",
	};
	struct script apop = {
		.params = USER_PARAMS,
		.segs = { SEG("+OK <1.2@x>\r\n-ERR\r\n-ERR\r\n") },
		.events = "failed AUTH: APOP refused: -ERR \"\"\n",
		.out = "CAPA\r\n"
		    "APOP alice df1bfe9e886db35880f8c62728a2f7e9\r\n",
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(in, sizeof(in), "+OK\r\n-ERR\r\n+OK\r\n%s",
		    cases[i].reply);
		sc.segs[0].p = in;
		sc.segs[0].n = strlen(in);
		sc.events = cases[i].events;
		run(&sc);
	}
	run(&plain);
	run(&user);
	run(&apop);
}

static void
test_no_auth_mechanism(void)
{
	struct script sc = { .params = user_params };

	/* APOP asked for, greeting without a timestamp. */
	sc.params.auth = POP3_AUTH_APOP;
	sc.segs[0] = (struct seg)SEG("+OK ready\r\n-ERR\r\n");
	sc.events = "failed NO_AUTH: greeting has no APOP timestamp\n";
	sc.out = "CAPA\r\n";
	run(&sc);
	/* APOP asked for, no MD5 to compute it. */
	sc.params.md5 = NULL;
	sc.segs[0] = (struct seg)SEG("+OK <1.2@x>\r\n-ERR\r\n");
	sc.events = "failed NO_AUTH: no MD5 for APOP\n";
	run(&sc);
	/* PLAIN asked for, CAPA does not list it. */
	sc.params = user_params;
	sc.params.auth = POP3_AUTH_PLAIN;
	sc.segs[0] = (struct seg)SEG("+OK\r\n"
	    "+OK\r\nSASL LOGIN\r\nUSER\r\n.\r\n");
	sc.events = "failed NO_AUTH: server does not offer SASL PLAIN\n";
	run(&sc);
	/* USER asked for, CAPA does not list it. */
	sc.params.auth = POP3_AUTH_USER;
	sc.segs[0] = (struct seg)SEG("+OK\r\n+OK\r\nSASL PLAIN\r\n.\r\n");
	sc.events = "failed NO_AUTH: server does not offer USER\n";
	run(&sc);
	/* Anything, and the server offers nothing we know. */
	sc.params.auth = POP3_AUTH_AUTO;
	sc.segs[0] = (struct seg)SEG("+OK\r\n+OK\r\nSASL GSSAPI\r\n.\r\n");
	sc.events = "failed NO_AUTH: server offers none of SASL PLAIN, APOP, "
	    "USER\n";
	run(&sc);
	/* AUTO without MD5 passes over APOP to USER. */
	sc.params.md5 = NULL;
	sc.segs[0] = (struct seg)SEG("+OK <1.2@x>\r\n-ERR\r\n-ERR no\r\n");
	sc.events = "failed AUTH: USER refused: -ERR \"no\"\n";
	sc.out = "CAPA\r\nUSER alice\r\n";
	run(&sc);
}

static void
test_bad_credentials(void)
{
	static char longpw[300];
	struct script sc = {
		.params = USER_PARAMS,
		.segs = { SEG("+OK\r\n-ERR\r\n") },
		.out = "CAPA\r\n",
	};

	/* A CRLF in a password would inject a command after PASS. */
	sc.params.password = "x\r\nDELE 1";
	sc.events = "failed AUTH: user name or password contains CR or LF\n";
	run(&sc);
	sc.params.password = "s3cret";
	sc.params.user = "a\nb";
	run(&sc);
	memset(longpw, 'p', 256);
	sc.params.user = "alice";
	sc.params.password = longpw;
	sc.events = "failed AUTH: user name or password longer than 255 "
	    "octets\n";
	run(&sc);
}

static void
test_unexpected_sasl_challenge(void)
{
	static const struct script sc = {
		.params = USER_PARAMS,
		.segs = { SEG("+OK\r\n+OK\r\nSASL PLAIN\r\n.\r\n+ \r\n") },
		.events = "failed PROTOCOL: unexpected reply to AUTH PLAIN: "
		    "\"+ \"\n",
		.out = "CAPA\r\nAUTH PLAIN AGFsaWNlAHMzY3JldA==\r\n",
	};

	run(&sc);
}

/* Greeting, no CAPA, USER/PASS accepted: what most tests start with. */
#define LOGIN "+OK\r\n-ERR\r\n+OK\r\n+OK\r\n"
#define LOGIN_OUT "CAPA\r\nUSER alice\r\nPASS s3cret\r\n"

static void
test_uidl_err_gives_null_uidls(void)
{
	static const struct script sc = {
		.params = USER_PARAMS,
		.policy = OWN_RETR_QUIT,
		.segs = { SEG(LOGIN "-ERR [SYS/PERM] no UIDL\r\n"
		    "+OK\r\n1 10\r\n2 20\r\n.\r\n"
		    "+OK\r\n.\r\n+OK\r\n.\r\n+OK\r\n") },
		.events = "ready 2\n"
		    "  1 10 (none)\n"
		    "  2 20 (none)\n"
		    "end RETR 1\n"
		    "end RETR 2\n"
		    "done\n",
		.out = LOGIN_OUT "UIDL\r\nLIST\r\nRETR 1\r\nRETR 2\r\n"
		    "QUIT\r\n",
	};

	run(&sc);
}

static void
test_duplicate_uidls_passed(void)
{
	/* Numbers out of order are fine; the owner sees them sorted. */
	static const struct script sc = {
		.params = USER_PARAMS,
		.policy = OWN_NOTHING,
		.segs = { SEG(LOGIN
		    "+OK\r\n2 same\r\n1 same\r\n3 other\r\n.\r\n"
		    "+OK\r\n3 30\r\n1 10\r\n2 20\r\n.\r\n") },
		.events = "ready 3\n"
		    "  1 10 same\n"
		    "  2 20 same\n"
		    "  3 30 other\n",
		.out = LOGIN_OUT "UIDL\r\nLIST\r\n",
	};

	run(&sc);
}

static void
test_listing_mismatch(void)
{
	static const struct {
		const char *in;
		const char *events;
		bool list_sent;
	} cases[] = {
		{ LOGIN "+OK\r\n1 a\r\n2 b\r\n3 c\r\n.\r\n"
		  "+OK\r\n1 1\r\n2 2\r\n.\r\n",
		  "failed PROTOCOL: message 3 in UIDL but not in LIST\n",
		  true },
		{ LOGIN "+OK\r\n1 a\r\n3 c\r\n.\r\n"
		  "+OK\r\n1 1\r\n2 2\r\n3 3\r\n.\r\n",
		  "failed PROTOCOL: message 2 in LIST but not in UIDL\n",
		  true },
		{ LOGIN "+OK\r\n1 a\r\n2 c\r\n.\r\n"
		  "+OK\r\n1 1\r\n3 3\r\n.\r\n",
		  "failed PROTOCOL: message 2 in UIDL but not in LIST\n",
		  true },
		{ LOGIN "+OK\r\n1 a\r\n.\r\n"
		  "+OK\r\n1 1\r\n1 2\r\n.\r\n",
		  "failed PROTOCOL: LIST lists message 1 twice\n", true },
		{ LOGIN "+OK\r\n1 a\r\n1 b\r\n.\r\n"
		  "+OK\r\n1 1\r\n.\r\n",
		  "failed PROTOCOL: UIDL lists message 1 twice\n", true },
		{ LOGIN "+OK\r\nx a\r\n.\r\n",
		  "failed PROTOCOL: bad UIDL line: \"x a\"\n", false },
		{ LOGIN "+OK\r\n1\r\n.\r\n",
		  "failed PROTOCOL: bad UIDL line: \"1\"\n", false },
		{ LOGIN "+OK\r\n.\r\n+OK\r\n1 12k\r\n.\r\n",
		  "failed PROTOCOL: bad LIST line: \"1 12k\"\n", true },
		{ LOGIN "+OK\r\n.\r\n+OK\r\n\r\n.\r\n",
		  "failed PROTOCOL: bad LIST line: \"\"\n", true },
		{ LOGIN "+OK\r\n.\r\n+OK\r\n\x01\xfe\r\n.\r\n",
		  "failed PROTOCOL: bad LIST line: \"\\x01\\xfe\"\n", true },
		{ LOGIN "+OK\r\n.\r\nOK\r\n",
		  "failed PROTOCOL: neither +OK nor -ERR while LIST: "
		  "\"OK\"\n", true },
	};
	struct script sc = {
		.params = USER_PARAMS,
		.policy = OWN_NOTHING,
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sc.segs[0].p = cases[i].in;
		sc.segs[0].n = strlen(cases[i].in);
		sc.events = cases[i].events;
		sc.out = cases[i].list_sent ? LOGIN_OUT "UIDL\r\nLIST\r\n" :
		    LOGIN_OUT "UIDL\r\n";
		run(&sc);
	}
}

static void
test_list_refused(void)
{
	struct script sc = {
		.params = USER_PARAMS,
		.policy = OWN_NOTHING,
		.segs = { SEG(LOGIN "+OK\r\n.\r\n-ERR nope\r\n") },
		.events = "failed PERM: LIST refused: -ERR \"nope\"\n",
		.out = LOGIN_OUT "UIDL\r\nLIST\r\n",
	};

	run(&sc);
	sc.segs[0] = (struct seg)SEG(LOGIN "+OK\r\n.\r\n-ERR [IN-USE] x\r\n");
	sc.events = "failed TEMP: LIST refused: -ERR \"[IN-USE] x\"\n";
	run(&sc);
}

static void
test_max_msgs(void)
{
	struct script sc = {
		.params = USER_PARAMS,
		.policy = OWN_NOTHING,
		.segs = { SEG(LOGIN "+OK\r\n1 a\r\n2 b\r\n.\r\n"
		    "+OK\r\n1 1\r\n2 2\r\n3 3\r\n.\r\n") },
		.events = "failed PERM: LIST lists more than 2 messages\n",
		.out = LOGIN_OUT "UIDL\r\nLIST\r\n",
	};

	sc.params.max_msgs = 2;
	run(&sc);
	sc.segs[0] = (struct seg)SEG(LOGIN "+OK\r\n1 a\r\n2 b\r\n3 c\r\n.\r\n");
	sc.events = "failed PERM: UIDL lists more than 2 messages\n";
	sc.out = LOGIN_OUT "UIDL\r\n";
	run(&sc);
}

/*
 * The listing budget counts UIDL bytes, each with its NUL: a listing at
 * the budget is ready, one byte more fails the session, naming the
 * budget and the message, before LIST is even read.
 */
static void
test_max_listing_bytes(void)
{
	struct script sc = {
		.params = USER_PARAMS,
		.policy = OWN_NOTHING,
		.segs = { SEG(LOGIN "+OK\r\n1 aaa\r\n2 \x80\x01\xff\r\n.\r\n"
		    "+OK\r\n1 1\r\n2 2\r\n.\r\n") },
		.events = "ready 2\n  1 1 aaa\n  2 2 \x80\x01\xff\n",
		.out = LOGIN_OUT "UIDL\r\nLIST\r\n",
	};

	sc.params.max_listing_bytes = 8;
	run(&sc);
	sc.segs[0] = (struct seg)SEG(LOGIN
	    "+OK\r\n1 aaa\r\n2 \x80\x01\xff\xfe\r\n.\r\n");
	sc.events = "failed PERM: UIDL listing exceeds the listing budget of "
	    "8 bytes at message 2\n";
	sc.out = LOGIN_OUT "UIDL\r\n";
	run(&sc);
	/* One UIDL alone larger than the budget. */
	sc.params.max_listing_bytes = 3;
	sc.events = "failed PERM: UIDL listing exceeds the listing budget of "
	    "3 bytes at message 1\n";
	run(&sc);
	/* The default holds 100,000 UIDLs of 500 bytes. */
	ASSERT_TRUE(POP3_LISTING_BYTES_DEFAULT >= (size_t)100000 * 501);
}

static void
test_bodies(void)
{
	static const struct script sc = {
		.params = USER_PARAMS,
		.policy = OWN_RETR_QUIT,
		.segs = { SEG(LOGIN "+OK\r\n1 a\r\n2 b\r\n3 c\r\n4 d\r\n5 e\r\n"
		    "6 f\r\n.\r\n"
		    "+OK\r\n1 1\r\n2 2\r\n3 3\r\n4 4\r\n5 5\r\n6 6\r\n.\r\n"
		    /* dot-stuffed lines and a ".." line */
		    "+OK\r\n..leading\r\n..\r\nmid.dle .\r\n.\r\n"
		    /* empty body */
		    "+OK\r\n.\r\n"
		    /* bare LF throughout */
		    "+OK\nSubject: x\n\nbody\n.\n"
		    /* ".\r" that is not the terminator */
		    "+OK\r\n.\rX\r\nabc.\r\n.\r\n"
		    /* a lone CR is no line end */
		    "+OK\r\na\r.\r\n.\r\n"
		    /* the last line's CRLF is body, "." is not */
		    "+OK\r\nabc\r\n.\r\n"
		    "+OK\r\n") },
		.events = "ready 6\n"
		    "  1 1 a\n  2 2 b\n  3 3 c\n  4 4 d\n  5 5 e\n  6 6 f\n"
		    "body RETR 1 [.leading\r\n.\r\nmid.dle .\r\n]\n"
		    "end RETR 1\n"
		    "end RETR 2\n"
		    "body RETR 3 [Subject: x\n\nbody\n]\n"
		    "end RETR 3\n"
		    "body RETR 4 [\rX\r\nabc.\r\n]\n"
		    "end RETR 4\n"
		    "body RETR 5 [a\r.\r\n]\n"
		    "end RETR 5\n"
		    "body RETR 6 [abc\r\n]\n"
		    "end RETR 6\n"
		    "done\n",
		.out = LOGIN_OUT "UIDL\r\nLIST\r\nRETR 1\r\nRETR 2\r\n"
		    "RETR 3\r\nRETR 4\r\nRETR 5\r\nRETR 6\r\nQUIT\r\n",
	};

	run(&sc);
}

static void
test_large_body_chunks(void)
{
	static const char head[] = LOGIN "+OK\r\n1 big\r\n.\r\n"
	    "+OK\r\n1 40000\r\n.\r\n+OK\r\n";
	struct str in = { 0 }, body = { 0 }, events = { 0 };
	struct script sc = {
		.params = USER_PARAMS,
		.policy = OWN_RETR_QUIT,
		.out = LOGIN_OUT "UIDL\r\nLIST\r\nRETR 1\r\nQUIT\r\n",
	};
	struct sim s;
	size_t i, cut;

	/* 40000 body bytes: more than two chunks of the 16 KiB scratch. */
	str_add(&in, head, sizeof(head) - 1);
	for (i = 0; body.len < 40000; i++) {
		if (i % 3 == 0) {
			str_add(&in, "..", 2);
			str_add(&body, ".", 1);
		}
		str_addf(&in, "line %zu\r\n", i);
		str_addf(&body, "line %zu\r\n", i);
	}
	str_add(&in, ".\r\n+OK\r\n", 8);
	str_addf(&events, "ready 1\n  1 40000 big\nbody RETR 1 [");
	str_add(&events, body.p, body.len);
	str_addf(&events, "]\nend RETR 1\ndone\n");
	sc.segs[0].p = in.p;
	sc.segs[0].n = in.len;
	sc.events = events.p;
	/* Every 97th cut: all of them would take long for little more. */
	for (cut = 0; cut <= in.len + 1; cut += 97) {
		replay(&sc, cut, &s);
		ASSERT_STREQ(s.ev.p, sc.events);
		ASSERT_STREQ(s.out.p, sc.out);
		ASSERT_TRUE(s.max_chunk <= 16384 + 1);
		sim_release(&s);
	}
	replay(&sc, in.len, &s);
	ASSERT_STREQ(s.ev.p, sc.events);
	ASSERT_TRUE(s.max_chunk > 15000);
	sim_release(&s);
	replay(&sc, SIZE_MAX, &s);
	ASSERT_STREQ(s.ev.p, sc.events);
	ASSERT_EQ(s.max_chunk, 1);
	sim_release(&s);
	free(in.p);
	free(body.p);
	free(events.p);
}

static void
test_top(void)
{
	static const struct script sc = {
		.params = USER_PARAMS,
		.policy = OWN_TOP,
		.segs = { SEG("+OK\r\n+OK\r\nTOP\r\nUSER\r\n.\r\n+OK\r\n+OK\r\n"
		    "+OK\r\n1 a\r\n2 b\r\n.\r\n+OK\r\n1 100\r\n2 200\r\n.\r\n"
		    "+OK\r\nSubject: one\r\n\r\n.\r\n"
		    "-ERR no such message\r\n"
		    "+OK\r\n") },
		.events = "ready 2\n  1 100 a\n  2 200 b\n"
		    "body TOP 1 [Subject: one\r\n\r\n]\n"
		    "end TOP 1\n"
		    "cmd_failed TOP 2: no such message\n"
		    "done\n",
		.out = "CAPA\r\nUSER alice\r\nPASS s3cret\r\nUIDL\r\nLIST\r\n"
		    "TOP 1 0\r\nTOP 2 0\r\nQUIT\r\n",
	};

	run(&sc);
}

static void
test_retr_err_continues(void)
{
	static const struct script sc = {
		.params = USER_PARAMS,
		.policy = OWN_FETCH,
		.segs = { SEG(LOGIN "+OK\r\n1 a\r\n2 b\r\n.\r\n"
		    "+OK\r\n1 1\r\n2 2\r\n.\r\n"
		    "-ERR [SYS/TEMP] message 1 unreadable\r\n"
		    "+OK\r\nx\r\n.\r\n"
		    "+OK\r\n"
		    "+OK\r\n") },
		.events = "ready 2\n  1 1 a\n  2 2 b\n"
		    "cmd_failed RETR 1: [SYS/TEMP] message 1 unreadable\n"
		    "body RETR 2 [x\r\n]\n"
		    "end RETR 2\n"
		    "deleted 2\n"
		    "done\n",
		.out = LOGIN_OUT "UIDL\r\nLIST\r\nRETR 1\r\nRETR 2\r\n"
		    "DELE 2\r\nQUIT\r\n",
	};

	run(&sc);
}

static void
test_quit_err(void)
{
	struct script sc = {
		.params = USER_PARAMS,
		.policy = OWN_FETCH,
		.segs = { SEG(LOGIN "+OK\r\n.\r\n+OK\r\n.\r\n"
		    "-ERR some deleted messages not removed\r\n") },
		.events = "ready 0\nfailed PROTOCOL: QUIT refused: -ERR "
		    "\"some deleted messages not removed\"\n",
		.out = LOGIN_OUT "UIDL\r\nLIST\r\nQUIT\r\n",
	};

	run(&sc);
	sc.segs[0] = (struct seg)SEG(LOGIN "+OK\r\n.\r\n+OK\r\n.\r\n"
	    "-ERR [SYS/TEMP] later\r\n");
	sc.events = "ready 0\nfailed TEMP: QUIT refused: -ERR "
	    "\"[SYS/TEMP] later\"\n";
	run(&sc);
}

static void
test_greeting_refused(void)
{
	struct script sc = {
		.params = USER_PARAMS,
		.segs = { SEG("-ERR [SYS/TEMP] too busy\r\n") },
		.events = "failed TEMP: session refused: -ERR "
		    "\"[SYS/TEMP] too busy\"\n",
		.out = "",
	};

	run(&sc);
	sc.segs[0] = (struct seg)SEG("-ERR [IN-USE] locked\r\n");
	sc.events = "failed TEMP: session refused: -ERR \"[IN-USE] locked\"\n";
	run(&sc);
	sc.segs[0] = (struct seg)SEG("-ERR go away\r\n");
	sc.events = "failed PROTOCOL: session refused: -ERR \"go away\"\n";
	run(&sc);
}

static void
test_garbage(void)
{
	static const struct {
		struct seg in;
		const char *events;
		const char *out;
	} cases[] = {
		{ SEG("SSH-2.0-OpenSSH_9.2\r\n"),
		  "failed PROTOCOL: bad greeting: \"SSH-2.0-OpenSSH_9.2\"\n",
		  "" },
		{ SEG("\x16\x03\x01\x02\x01\x7f\xfc\"\\\n"),
		  "failed PROTOCOL: bad greeting: "
		  "\"\\x16\\x03\\x01\\x02\\x01\\x7f\\xfc\\\"\\\\\"\n", "" },
		{ SEG("+OK \0hidden\r\n"),
		  "failed PROTOCOL: NUL byte in a line while greeting: "
		  "\"+OK \\x00hidden\"\n", "" },
		{ SEG("+OK\r\n* OK IMAP4rev1\r\n"),
		  "failed PROTOCOL: neither +OK nor -ERR while CAPA: "
		  "\"* OK IMAP4rev1\"\n", "CAPA\r\n" },
		{ SEG(LOGIN "+OK\r\n1 a\r\n.\r\n+OK\r\n1 5\r\n.\r\n"
		    "HTTP/1.1 400 Bad Request\r\n"),
		  "ready 1\n  1 5 a\n"
		  "failed PROTOCOL: neither +OK nor -ERR while RETR 1: "
		  "\"HTTP/1.1 400 Bad Request\"\n",
		  LOGIN_OUT "UIDL\r\nLIST\r\nRETR 1\r\n" },
		{ SEG(LOGIN "+OK\r\n1 a\r\n.\r\n+OK\r\n1 5\r\n.\r\n"
		    "+OK\r\nx\r\n.\r\n+OKAY\r\n"),
		  "ready 1\n  1 5 a\nbody RETR 1 [x\r\n]\nend RETR 1\n"
		  "failed PROTOCOL: neither +OK nor -ERR while QUIT: "
		  "\"+OKAY\"\n",
		  LOGIN_OUT "UIDL\r\nLIST\r\nRETR 1\r\nQUIT\r\n" },
	};
	struct script sc = {
		.params = USER_PARAMS,
		.policy = OWN_RETR_QUIT,
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		sc.segs[0] = cases[i].in;
		sc.events = cases[i].events;
		sc.out = cases[i].out;
		run(&sc);
	}
}

static void
test_overlong_line(void)
{
	static const char pre[] = LOGIN "+OK\r\n1 ";
	static char in[1200], events[768];
	size_t base = sizeof(pre) - 1;
	struct script sc = {
		.params = USER_PARAMS,
		.out = "",
		.events = events,
	};
	char quoted[97];

	memset(quoted, 'A', 96);
	quoted[96] = '\0';
	snprintf(events, sizeof(events), "failed PROTOCOL: line longer than "
	    "512 octets while greeting: \"%s...\"\n", quoted);
	/* 600 octets and no line end: refused at octet 512. */
	memset(in, 'A', 600);
	sc.segs[0].p = in;
	sc.segs[0].n = 600;
	run(&sc);
	/* 511 octets and CRLF is 513 with the line end. */
	memcpy(in + 511, "\r\n", 2);
	sc.segs[0].n = 513;
	run(&sc);
	/* A UIDL item of 510 octets and CRLF is at the limit and fits... */
	memcpy(in, pre, base);
	memset(in + base, 'u', 508);
	memcpy(in + base + 508, "\r\n.\r\n+OK\r\n1 9\r\n.\r\n", 18);
	sc.segs[0].n = base + 508 + 18;
	snprintf(events, sizeof(events), "ready 1\n  1 9 %.*s\n", 508,
	    in + base);
	sc.out = LOGIN_OUT "UIDL\r\nLIST\r\n";
	sc.policy = OWN_NOTHING;
	run(&sc);
	/* ...one more octet does not. */
	memset(in + base, 'u', 509);
	memcpy(in + base + 509, "\r\n", 2);
	sc.segs[0].n = base + 511;
	snprintf(events, sizeof(events), "failed PROTOCOL: line longer than "
	    "512 octets while UIDL: \"1 %.94s...\"\n", in + base);
	sc.out = LOGIN_OUT "UIDL\r\n";
	run(&sc);
}

static void
test_response_while_idle(void)
{
	static const struct script sc = {
		.params = USER_PARAMS,
		.policy = OWN_NOTHING,
		.segs = { SEG(LOGIN "+OK\r\n.\r\n+OK\r\n.\r\n"
		    "+OK surprise\r\n") },
		.events = "ready 0\nfailed PROTOCOL: response with no command "
		    "in flight: \"+OK surprise\"\n",
		.out = LOGIN_OUT "UIDL\r\nLIST\r\n",
	};

	run(&sc);
}

static void
test_body_consumer_fails(void)
{
	static const struct script sc = {
		.params = USER_PARAMS,
		.policy = OWN_FETCH,
		.body_fail_num = 2,
		.segs = { SEG(LOGIN "+OK\r\n1 a\r\n2 b\r\n.\r\n"
		    "+OK\r\n1 1\r\n2 2\r\n.\r\n"
		    "+OK\r\none\r\n.\r\n+OK\r\ntwo\r\n.\r\n+OK\r\n") },
		.events = "ready 2\n  1 1 a\n  2 2 b\n"
		    "body RETR 1 [one\r\n]\nend RETR 1\n"
		    "failed LOCAL: body consumer refused RETR 2\n",
		.out = LOGIN_OUT "UIDL\r\nLIST\r\nRETR 1\r\nRETR 2\r\n",
	};

	run(&sc);
}

static void
test_bytes_after_quit_ignored(void)
{
	static const struct script sc = {
		.params = USER_PARAMS,
		.policy = OWN_FETCH,
		.segs = { SEG(LOGIN "+OK\r\n.\r\n+OK\r\n.\r\n+OK bye\r\n"
		    "garbage\0\xff after QUIT\r\n") },
		.events = "ready 0\ndone\n",
		.out = LOGIN_OUT "UIDL\r\nLIST\r\nQUIT\r\n",
	};

	run(&sc);
}

/* Feeds a literal and checks the bytes then pending, draining them. */
static void
expect_pending(struct sim *s, const char *in, const char *want)
{
	const char *p;
	size_t n;

	ASSERT_EQ(pop3_client_feed(s->c, in, strlen(in)), 0);
	pop3_client_pending(s->c, &p, &n);
	ASSERT_EQ(n, strlen(want));
	ASSERT_MEMEQ(p, want, n);
	pop3_client_sent(s->c, n);
}

static void
test_pipelined_emission(void)
{
	struct pop3_client_params params = user_params;
	struct sim s;

	params.pipeline_window = 2;
	sim_init(&s, &params, OWN_RETR_QUIT);
	expect_pending(&s, "+OK\r\n", "CAPA\r\n");
	expect_pending(&s, "+OK\r\nPIPELINING\r\nUSER\r\n.\r\n",
	    "USER alice\r\n");
	expect_pending(&s, "+OK\r\n", "PASS s3cret\r\n");
	/* UIDL and LIST go out together. */
	expect_pending(&s, "+OK\r\n", "UIDL\r\nLIST\r\n");
	expect_pending(&s, "+OK\r\n1 a\r\n2 b\r\n3 c\r\n.\r\n", "");
	/* A window of two: RETR 3 and QUIT wait for room. */
	expect_pending(&s, "+OK\r\n1 1\r\n2 2\r\n3 3\r\n.\r\n",
	    "RETR 1\r\nRETR 2\r\n");
	ASSERT_TRUE(pop3_client_pipelining(s.c));
	ASSERT_TRUE(!pop3_client_idle(s.c));
	expect_pending(&s, "+OK\r\nx\r\n", "");
	expect_pending(&s, ".\r\n", "RETR 3\r\n");
	expect_pending(&s, "-ERR\r\n", "QUIT\r\n");
	expect_pending(&s, "+OK\r\ny\r\n.\r\n", "");
	expect_pending(&s, "+OK\r\n", "");
	ASSERT_STREQ(s.ev.p, "ready 3\n  1 1 a\n  2 2 b\n  3 3 c\n"
	    "body RETR 1 [x\r\n]\nend RETR 1\ncmd_failed RETR 2: \n"
	    "body RETR 3 [y\r\n]\nend RETR 3\ndone\n");
	ASSERT_TRUE(pop3_client_idle(s.c));
	sim_release(&s);
}

static void
test_unpipelined_emission(void)
{
	struct sim s;

	sim_init(&s, &user_params, OWN_FETCH);
	expect_pending(&s, "+OK\r\n", "CAPA\r\n");
	expect_pending(&s, "+OK\r\nUSER\r\nTOP\r\n.\r\n", "USER alice\r\n");
	expect_pending(&s, "+OK\r\n", "PASS s3cret\r\n");
	expect_pending(&s, "+OK\r\n", "UIDL\r\n");
	expect_pending(&s, "+OK\r\n1 a\r\n2 b\r\n.\r\n", "LIST\r\n");
	/* One command at a time, each after the previous response. */
	expect_pending(&s, "+OK\r\n1 1\r\n2 2\r\n.\r\n", "RETR 1\r\n");
	ASSERT_TRUE(!pop3_client_pipelining(s.c));
	ASSERT_TRUE(pop3_client_has_top(s.c));
	expect_pending(&s, "+OK\r\nx\r\n", "");
	expect_pending(&s, ".\r\n", "RETR 2\r\n");
	expect_pending(&s, "+OK\r\ny\r\n.\r\n", "DELE 1\r\n");
	expect_pending(&s, "+OK\r\n", "DELE 2\r\n");
	expect_pending(&s, "+OK\r\n", "QUIT\r\n");
	expect_pending(&s, "+OK\r\n", "");
	ASSERT_STREQ(s.ev.p, "ready 2\n  1 1 a\n  2 2 b\n"
	    "body RETR 1 [x\r\n]\nend RETR 1\nbody RETR 2 [y\r\n]\n"
	    "end RETR 2\ndeleted 1\ndeleted 2\ndone\n");
	sim_release(&s);
}

/*
 * The command queue is a ring: grow it while its head has moved on, and
 * every command must still go out once and in order.  A window above the
 * maximum is cut to 128.
 */
static void
test_queue_grows_around(void)
{
	struct pop3_client_params params = user_params;
	struct str in = { 0 }, want = { 0 }, ev = { 0 };
	struct sim s;
	uint32_t i;

	params.pipeline_window = 100000;
	sim_init(&s, &params, OWN_NOTHING);
	/* A stuffed CAPA line is unstuffed, not taken for the end. */
	str_addf(&in, "+OK\r\n+OK\r\nPIPELINING\r\n..X\r\nUSER\r\n.\r\n"
	    "+OK\r\n+OK\r\n+OK\r\n");
	for (i = 1; i <= 200; i++)
		str_addf(&in, "%" PRIu32 " u%" PRIu32 "\r\n", i, i);
	str_addf(&in, ".\r\n+OK\r\n");
	for (i = 1; i <= 200; i++)
		str_addf(&in, "%" PRIu32 " %" PRIu32 "\r\n", i, i);
	str_addf(&in, ".\r\n");
	sim_feed(&s, in.p, in.len);
	ASSERT_TRUE(pop3_client_pipelining(s.c));
	str_addf(&ev, "ready 200\n");
	for (i = 1; i <= 200; i++)
		str_addf(&ev, "  %" PRIu32 " %" PRIu32 " u%" PRIu32 "\n", i, i,
		    i);
	for (i = 1; i <= 10; i++)
		pop3_client_dele(s.c, i);
	for (i = 1; i <= 8; i++) {
		sim_feed(&s, "+OK\r\n", 5);
		str_addf(&ev, "deleted %" PRIu32 "\n", i);
	}
	/* 2 left at the head's new place, 150 more: the ring grows. */
	for (i = 11; i <= 160; i++)
		pop3_client_dele(s.c, i);
	pop3_client_quit(s.c);
	drain(&s);
	for (i = 9; i <= 160; i++) {
		sim_feed(&s, "+OK\r\n", 5);
		str_addf(&ev, "deleted %" PRIu32 "\n", i);
	}
	sim_feed(&s, "+OK\r\n", 5);
	str_addf(&ev, "done\n");
	str_addf(&want, "CAPA\r\nUSER alice\r\nPASS s3cret\r\nUIDL\r\n"
	    "LIST\r\n");
	for (i = 1; i <= 160; i++)
		str_addf(&want, "DELE %" PRIu32 "\r\n", i);
	str_addf(&want, "QUIT\r\n");
	ASSERT_STREQ(s.ev.p, ev.p);
	ASSERT_STREQ(s.out.p, want.p);
	sim_release(&s);
	free(in.p);
	free(want.p);
	free(ev.p);
}

static int ncalls;

static void
count_ready(void *arg, const struct pop3_msg *msgs, size_t n)
{
	struct pop3_client *c = *(struct pop3_client **)arg;
	size_t i;

	for (i = 0; i < n; i++) {
		pop3_client_retr(c, msgs[i].num);
		pop3_client_dele(c, msgs[i].num);
	}
	pop3_client_quit(c);
	ncalls++;
}

static void
count_done(void *arg)
{
	ncalls++;
}

static void
count_failed(void *arg, enum pop3_fail why, const char *text)
{
	abort();
}

/* Only ready, done and failed are required. */
static void
test_optional_callbacks_null(void)
{
	static const char in[] = LOGIN "+OK\r\n1 a\r\n2 b\r\n.\r\n"
	    "+OK\r\n1 1\r\n2 2\r\n.\r\n+OK\r\nx\r\n.\r\n+OK\r\n"
	    "-ERR\r\n-ERR\r\n+OK\r\n";
	static const struct pop3_client_cb cb = {
		.ready = count_ready,
		.done = count_done,
		.failed = count_failed,
	};
	struct pop3_client *c;

	ncalls = 0;
	c = pop3_client_new(&user_params, &cb, &c);
	ASSERT_EQ(pop3_client_feed(c, in, sizeof(in) - 1), 0);
	ASSERT_EQ(ncalls, 2);
	ASSERT_TRUE(pop3_client_idle(c));
	pop3_client_free(&c);
	ASSERT_TRUE(c == NULL);
	pop3_client_free(&c);
}

static void
test_state_names(void)
{
	struct sim s;
	const char *p;
	size_t n;

	sim_init(&s, &user_params, OWN_NOTHING);
	ASSERT_STREQ(pop3_client_what(s.c), "greeting");
	ASSERT_EQ(pop3_client_state(s.c), P3_GREETING);
	expect_pending(&s, "+OK\r\n", "CAPA\r\n");
	ASSERT_STREQ(pop3_client_what(s.c), "CAPA");
	ASSERT_EQ(pop3_client_state(s.c), P3_CAPA);
	expect_pending(&s, "-ERR\r\n", "USER alice\r\n");
	ASSERT_STREQ(pop3_client_what(s.c), "USER");
	ASSERT_EQ(pop3_client_state(s.c), P3_USER);
	expect_pending(&s, "+OK\r\n", "PASS s3cret\r\n");
	ASSERT_STREQ(pop3_client_what(s.c), "PASS");
	ASSERT_EQ(pop3_client_state(s.c), P3_PASS);
	expect_pending(&s, "+OK\r\n", "UIDL\r\n");
	ASSERT_STREQ(pop3_client_what(s.c), "UIDL");
	ASSERT_EQ(pop3_client_state(s.c), P3_UIDL);
	expect_pending(&s, "+OK\r\n5 a\r\n.\r\n", "LIST\r\n");
	ASSERT_STREQ(pop3_client_what(s.c), "LIST");
	ASSERT_EQ(pop3_client_state(s.c), P3_LIST);
	expect_pending(&s, "+OK\r\n5 1\r\n.\r\n", "");
	ASSERT_STREQ(pop3_client_what(s.c), "ready");
	ASSERT_TRUE(pop3_client_idle(s.c));
	pop3_client_top(s.c, 5, 10);
	ASSERT_STREQ(pop3_client_what(s.c), "TOP 5 10");
	expect_pending(&s, "+OK\r\nx", "TOP 5 10\r\n");
	ASSERT_STREQ(pop3_client_what(s.c), "TOP 5 10 body");
	ASSERT_EQ(pop3_client_state(s.c), P3_BODY);
	expect_pending(&s, "\r\n.\r\n", "");
	ASSERT_STREQ(pop3_client_what(s.c), "ready");
	pop3_client_dele(s.c, 5);
	ASSERT_STREQ(pop3_client_what(s.c), "DELE 5");
	ASSERT_EQ(pop3_client_feed(s.c, "bogus\r\n", 7), -1);
	/* After failing, the state says where. */
	ASSERT_STREQ(pop3_client_what(s.c), "DELE 5");
	ASSERT_EQ(pop3_client_state(s.c), P3_FAILED);
	ASSERT_EQ(pop3_client_feed(s.c, "+OK\r\n", 5), -1);
	ASSERT_EQ(pop3_client_feed(s.c, "", 0), -1);
	ASSERT_TRUE(pop3_client_idle(s.c));
	/* Commands after a failure are dropped, not sent. */
	pop3_client_retr(s.c, 5);
	pop3_client_pending(s.c, &p, &n);
	ASSERT_EQ(n, 0);
	sim_release(&s);
}

/* Runs a session with protocol tracing on, capturing stderr. */
static void
traced(const struct script *sc, struct str *log)
{
	char path[] = "/tmp/test_pop3_client.XXXXXX";
	char buf[4096];
	struct sim s;
	int fd, saved;
	ssize_t n;

	fd = mkstemp(path);
	ASSERT_TRUE(fd != -1);
	unlink(path);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	ASSERT_TRUE(saved != -1);
	ASSERT_TRUE(dup2(fd, STDERR_FILENO) != -1);
	log_init(2);
	replay(sc, SIZE_MAX, &s);
	log_init(0);
	ASSERT_TRUE(dup2(saved, STDERR_FILENO) != -1);
	close(saved);
	ASSERT_STREQ(s.ev.p, sc->events);
	sim_release(&s);
	ASSERT_TRUE(lseek(fd, 0, SEEK_SET) == 0);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		str_add(log, buf, (size_t)n);
	close(fd);
}

static void
test_secrets_not_logged(void)
{
	struct script userpass = {
		.params = USER_PARAMS,
		.policy = OWN_FETCH,
		.segs = { SEG(LOGIN "+OK\r\n.\r\n+OK\r\n.\r\n+OK\r\n") },
		.events = "ready 0\ndone\n",
	};
	struct script plain = {
		.params = USER_PARAMS,
		.policy = OWN_FETCH,
		.segs = { SEG("+OK\r\n+OK\r\nSASL PLAIN\r\n.\r\n+OK\r\n"
		    "+OK\r\n.\r\n+OK\r\n.\r\n+OK\r\n") },
		.events = "ready 0\ndone\n",
	};
	struct script apop = {
		.params = USER_PARAMS,
		.policy = OWN_FETCH,
		.segs = { SEG("+OK <1.2@x>\r\n-ERR\r\n+OK\r\n"
		    "+OK\r\n.\r\n+OK\r\n.\r\n+OK\r\n") },
		.events = "ready 0\ndone\n",
	};
	struct str log = { 0 };

	traced(&userpass, &log);
	traced(&plain, &log);
	traced(&apop, &log);
	ASSERT_TRUE(log.p != NULL);
	ASSERT_TRUE(strstr(log.p, "C: PASS ****") != NULL);
	ASSERT_TRUE(strstr(log.p, "C: AUTH PLAIN ****") != NULL);
	ASSERT_TRUE(strstr(log.p, "C: APOP alice ****") != NULL);
	ASSERT_TRUE(strstr(log.p, "C: USER alice") != NULL);
	ASSERT_TRUE(strstr(log.p, "S: +OK") != NULL);
	ASSERT_TRUE(strstr(log.p, "-> ready") != NULL);
	ASSERT_TRUE(strstr(log.p, "s3cret") == NULL);
	ASSERT_TRUE(strstr(log.p, "AGFsaWNlAHMzY3JldA==") == NULL);
	ASSERT_TRUE(strstr(log.p, "df1bfe9e886db35880f8c62728a2f7e9") ==
	    NULL);
	free(log.p);
}

/* ---- OAuth 2.0: XOAUTH2 and OAUTHBEARER ---- */

static void
test_oauth_encodings(void)
{
	unsigned char dec[128];
	char detail[160], *r;
	const char *json;
	size_t n;
	long d;

	r = pop3_sasl_xoauth2("alice", "tok", &n);
	ASSERT_TRUE(r != NULL);
	/* base64("user=alice\1auth=Bearer tok\1\1") */
	ASSERT_STREQ(r, "dXNlcj1hbGljZQFhdXRoPUJlYXJlciB0b2sBAQ==");
	ASSERT_EQ(n, strlen(r));
	d = pop3_base64_decode(r, n, dec);
	ASSERT_EQ(d, 28);
	ASSERT_MEMEQ(dec, "user=alice\001auth=Bearer tok\001\001", 28);
	free(r);
	/* RFC 7628 section 4.1's example, with the saslname escaped. */
	r = pop3_sasl_oauthbearer("a,b=c", "server.example.com", 143,
	    "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==", &n);
	ASSERT_TRUE(r != NULL);
	d = pop3_base64_decode(r, n, dec);
	ASSERT_TRUE(d > 0);
	ASSERT_EQ((size_t)d,
	    strlen(
		"n,a=a=2Cb=3Dc,\001host=server.example."
		"com\001port=143\001auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlz"
		"dGEuY29tCg==\001\001"));
	ASSERT_MEMEQ(dec,
	    "n,a=a=2Cb=3Dc,\001host=server.example.com\001"
	    "port=143\001auth=Bearer vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29t"
	    "Cg==\001\001",
	    (size_t)d);
	free(r);
	r = pop3_sasl_oauthbearer("bob", NULL, 0, "t", &n);
	d = pop3_base64_decode(r, n, dec);
	ASSERT_MEMEQ(dec, "n,a=bob,\001auth=Bearer t\001\001", (size_t)d);
	free(r);
	/* Tokens that would break the line or the SASL fields. */
	ASSERT_TRUE(pop3_sasl_xoauth2("alice", "", &n) == NULL);
	ASSERT_TRUE(pop3_sasl_xoauth2("alice", "a\r\nQUIT", &n) == NULL);
	ASSERT_TRUE(pop3_sasl_xoauth2("alice", "a\001b", &n) == NULL);
	ASSERT_TRUE(pop3_sasl_xoauth2("alice", "a b", &n) == NULL);
	ASSERT_TRUE(pop3_sasl_xoauth2("al\nice", "ab", &n) == NULL);
	ASSERT_TRUE(
	    pop3_sasl_oauthbearer("al\001ice", NULL, 0, "ab", &n) == NULL);
	ASSERT_EQ(pop3_base64_decode("Zm9v!", 5, dec), -1);
	ASSERT_EQ(pop3_base64_decode("Zg=a", 4, dec), -1);
	ASSERT_EQ(pop3_base64_decode("Zg=", 3, dec), -1);
	ASSERT_EQ(pop3_base64_decode("Zg==", 4, dec), 1);
	json = "{\"status\":\"401\",\"schemes\":\"bearer\",\"scope\":"
	    "\"https://mail.google.com/\"}";
	pop3_sasl_oauth_error((const unsigned char *)json, strlen(json),
	    detail, sizeof(detail));
	ASSERT_STREQ(detail,
	    "status=401 schemes=bearer scope=https://mail.google.com/");
	json = " { \"status\" : 400 , \"other\": \"x y\", \"error\": "
	    "\"invalid\\ntoken\" }";
	pop3_sasl_oauth_error((const unsigned char *)json, strlen(json),
	    detail, sizeof(detail));
	ASSERT_STREQ(detail, "status=400 error=invalidntoken");
	pop3_sasl_oauth_error((const unsigned char *)"not json", 8, detail,
	    sizeof(detail));
	ASSERT_STREQ(detail, "");
	pop3_sasl_oauth_error((const unsigned char *)"{\"status\":\"4", 12,
	    detail, sizeof(detail));
	ASSERT_STREQ(detail, "");
	pop3_sasl_oauth_error(
	    (const unsigned char
		    *)"{\"status\":\"401\",\"scope\":\"aaaaaaaaaaaaaaaaaaaa\"}",
	    47, detail, 20);
	ASSERT_EQ(strlen(detail), 19);
}

#define XO_TOK "dXNlcj1hbGljZQFhdXRoPUJlYXJlciB0b2sBAQ=="
/* base64("n,a=alice,\1host=pop.example\1port=995\1auth=Bearer tok\1\1") */
#define OB_TOK                                                                 \
	"bixhPWFsaWNlLAFob3N0PXBvcC5leGFtcGxlAXBvcnQ9OTk1AWF1dGg9Q"            \
	"mVhcmVyIHRvawEB"
#define OAUTH_PARAMS(a)                                                        \
	{                                                                      \
		.user = "alice", .password = "s3cret", .token = "tok",         \
		.host = "pop.example", .port = 995, .auth = (a), .md5 = md5,   \
	}
#define AFTER "+OK\r\n.\r\n+OK\r\n.\r\n+OK\r\n"
#define AFTER_OUT "UIDL\r\nLIST\r\nQUIT\r\n"

static void
test_oauth_mechanism_choice(void)
{
	static const struct script scripts[] = {
		/* auto prefers XOAUTH2, even over PLAIN and a password. */
		{ .params = OAUTH_PARAMS(POP3_AUTH_AUTO),
		    .policy = OWN_FETCH,
		    .segs = { SEG("+OK <1.2@x>\r\n+OK\r\nUSER\r\n"
			"SASL PLAIN OAUTHBEARER XOAUTH2\r\n.\r\n"
			"+OK\r\n" AFTER) },
		    .events = "ready 0\ndone\n",
		    .out = "CAPA\r\nAUTH XOAUTH2 " XO_TOK "\r\n" AFTER_OUT },
		/* OAUTHBEARER when it is the only one. */
		{ .params = OAUTH_PARAMS(POP3_AUTH_AUTO),
		    .policy = OWN_FETCH,
		    .segs = { SEG("+OK\r\n+OK\r\nSASL oauthbearer\r\n.\r\n"
				  "+OK\r\n" AFTER) },
		    .events = "ready 0\ndone\n",
		    .out = "CAPA\r\nAUTH OAUTHBEARER " OB_TOK
			   "\r\n" AFTER_OUT },
		/* No CAPA: try XOAUTH2 and let the server say. */
		{ .params = OAUTH_PARAMS(POP3_AUTH_AUTO),
		    .policy = OWN_FETCH,
		    .segs = { SEG("+OK\r\n-ERR\r\n+OK\r\n" AFTER) },
		    .events = "ready 0\ndone\n",
		    .out = "CAPA\r\nAUTH XOAUTH2 " XO_TOK "\r\n" AFTER_OUT },
		/* Asked for by name. */
		{ .params = OAUTH_PARAMS(POP3_AUTH_OAUTHBEARER),
		    .policy = OWN_FETCH,
		    .segs = { SEG("+OK\r\n+OK\r\nSASL XOAUTH2 OAUTHBEARER\r\n"
				  ".\r\n+OK\r\n" AFTER) },
		    .events = "ready 0\ndone\n",
		    .out = "CAPA\r\nAUTH OAUTHBEARER " OB_TOK
			   "\r\n" AFTER_OUT },
		{ .params = OAUTH_PARAMS(POP3_AUTH_XOAUTH2),
		    .policy = OWN_FETCH,
		    .segs = { SEG("+OK\r\n+OK\r\nSASL OAUTHBEARER\r\n.\r\n") },
		    .events = "failed NO_AUTH: server does not offer SASL "
			      "XOAUTH2\n",
		    .out = "CAPA\r\n" },
		/* A refusal with [AUTH] or none is an AUTH failure;
		 * [SYS/TEMP] stays temporary. */
		{ .params = OAUTH_PARAMS(POP3_AUTH_AUTO),
		    .policy = OWN_FETCH,
		    .segs = { SEG("+OK\r\n+OK\r\nSASL XOAUTH2\r\n.\r\n"
				  "-ERR [AUTH] Invalid credentials\r\n") },
		    .events =
			"failed AUTH: AUTH XOAUTH2 refused: -ERR \"[AUTH] "
			"Invalid credentials\"\n",
		    .out = "CAPA\r\nAUTH XOAUTH2 " XO_TOK "\r\n" },
		{ .params = OAUTH_PARAMS(POP3_AUTH_AUTO),
		    .policy = OWN_FETCH,
		    .segs = { SEG("+OK\r\n+OK\r\nSASL XOAUTH2\r\n.\r\n"
				  "-ERR [SYS/TEMP] busy\r\n") },
		    .events = "failed TEMP: AUTH XOAUTH2 refused: -ERR "
			      "\"[SYS/TEMP] busy\"\n",
		    .out = "CAPA\r\nAUTH XOAUTH2 " XO_TOK "\r\n" },
		/* One challenge only: a second "+" is a protocol error. */
		{ .params = OAUTH_PARAMS(POP3_AUTH_AUTO),
		    .policy = OWN_FETCH,
		    .segs = { SEG("+OK\r\n+OK\r\nSASL XOAUTH2\r\n.\r\n"
				  "+ e30=\r\n+ e30=\r\n") },
		    .events = "failed PROTOCOL: unexpected reply to AUTH "
			      "XOAUTH2: \"+ e30=\"\n",
		    .out = "CAPA\r\nAUTH XOAUTH2 " XO_TOK "\r\n\r\n" },
	};
	size_t i;

	for (i = 0; i < sizeof(scripts) / sizeof(scripts[0]); i++)
		run(&scripts[i]);
}

/* The 255-octet rule counts the whole AUTH line, CRLF included. */
static void
test_oauth_255_octets(void)
{
	static char tok[200], resp[400], out[1024];
	struct script sc = {
		.params = {
			.user = "alice", .token = tok,
			.auth = POP3_AUTH_XOAUTH2,
		},
		.policy = OWN_FETCH,
		.events = "ready 0\ndone\n",
		.out = out,
	};
	char *r;
	size_t n;

	/* "user=alice\1auth=Bearer " 154 "\1\1": 179 octets, 240 in
	 * base64, and "AUTH XOAUTH2 " + 240 + CRLF is 255. */
	memset(tok, 'a', 154);
	r = pop3_sasl_xoauth2("alice", tok, &n);
	ASSERT_EQ(n, 240);
	snprintf(resp, sizeof(resp), "%s", r);
	free(r);
	snprintf(out, sizeof(out), "CAPA\r\nAUTH XOAUTH2 %s\r\n" AFTER_OUT,
	    resp);
	ASSERT_EQ(strlen("AUTH XOAUTH2 \r\n") + n, 255);
	sc.segs[0] = (struct seg)SEG("+OK\r\n+OK\r\nSASL XOAUTH2\r\n.\r\n"
				     "+OK\r\n" AFTER);
	run(&sc);
	/* Two more octets of token make 244: AUTH alone, then the
	 * response. */
	tok[154] = tok[155] = 'a';
	r = pop3_sasl_xoauth2("alice", tok, &n);
	ASSERT_EQ(n, 244);
	snprintf(out, sizeof(out), "CAPA\r\nAUTH XOAUTH2\r\n%s\r\n" AFTER_OUT,
	    r);
	free(r);
	sc.segs[0] = (struct seg)SEG("+OK\r\n+OK\r\nSASL XOAUTH2\r\n.\r\n"
				     "+ \r\n+OK\r\n" AFTER);
	run(&sc);
	sc.segs[0] = (struct seg)SEG("+OK\r\n+OK\r\nSASL XOAUTH2\r\n.\r\n"
				     "+\r\n+OK\r\n" AFTER);
	run(&sc);
}

/*
 * A refused token: the server's "+ base64(JSON)" is answered with an
 * empty line (XOAUTH2) or "AQ==" (OAUTHBEARER), and its -ERR fails the
 * login with what the challenge said.
 */
static void
test_oauth_error_challenge(void)
{
	/* {"status":"401","schemes":"bearer",
	 * "scope":"https://mail.google.com/"} */
#define CHAL                                                                   \
	"eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJo"         \
	"dHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ=="
	static const struct script scripts[] = {
		{ .params = OAUTH_PARAMS(POP3_AUTH_XOAUTH2),
		    .policy = OWN_FETCH,
		    .segs = { SEG(
			"+OK\r\n+OK\r\nSASL XOAUTH2\r\n.\r\n"
			"+ " CHAL
			"\r\n-ERR [AUTH] Authentication failed\r\n") },
		    .events =
			"failed AUTH: AUTH XOAUTH2 refused: -ERR \"[AUTH] "
			"Authentication failed\" (challenge: status=401 "
			"schemes=bearer scope=https://mail.google.com/)\n",
		    .out = "CAPA\r\nAUTH XOAUTH2 " XO_TOK "\r\n\r\n" },
		{ .params = OAUTH_PARAMS(POP3_AUTH_OAUTHBEARER),
		    .policy = OWN_FETCH,
		    .segs = { SEG("+OK\r\n+OK\r\nSASL OAUTHBEARER\r\n.\r\n"
				  "+ " CHAL "\r\n-ERR [AUTH] no\r\n") },
		    .events =
			"failed AUTH: AUTH OAUTHBEARER refused: -ERR "
			"\"[AUTH] no\" (challenge: status=401 schemes=bearer "
			"scope=https://mail.google.com/)\n",
		    .out = "CAPA\r\nAUTH OAUTHBEARER " OB_TOK "\r\nAQ==\r\n" },
		/* A challenge that is not base64 is said so. */
		{ .params = OAUTH_PARAMS(POP3_AUTH_XOAUTH2),
		    .policy = OWN_FETCH,
		    .segs = { SEG("+OK\r\n+OK\r\nSASL XOAUTH2\r\n.\r\n"
				  "+ %%%\r\n-ERR\r\n") },
		    .events = "failed AUTH: AUTH XOAUTH2 refused: -ERR \"\" "
			      "(challenge: not base64)\n",
		    .out = "CAPA\r\nAUTH XOAUTH2 " XO_TOK "\r\n\r\n" },
	};
	size_t i;

	for (i = 0; i < sizeof(scripts) / sizeof(scripts[0]); i++)
		run(&scripts[i]);
#undef CHAL
}

/*
 * A 10 KiB token goes in two steps, through an output far past the usual
 * command buffer, and a 10 KiB error challenge line parses.
 */
static void
test_oauth_long_token_and_challenge(void)
{
	static char tok[10241], out[16384], in[16384], json[8000];
	static char chal[12000], events[512];
	struct script sc = {
		.params = {
			.user = "alice", .token = tok,
			.auth = POP3_AUTH_AUTO,
		},
		.policy = OWN_FETCH,
		.events = "ready 0\ndone\n",
		.out = out,
	};
	char *r;
	size_t n, i;
	int k;

	for (i = 0; i < 10240; i++)
		tok[i] = "abcdefghijklmnopqrstuvwxyz0123456789-._~+/"[i % 42];
	r = pop3_sasl_xoauth2("alice", tok, &n);
	ASSERT_TRUE(n > 13000);
	snprintf(out, sizeof(out), "CAPA\r\nAUTH XOAUTH2\r\n%s\r\n" AFTER_OUT,
	    r);
	free(r);
	k = snprintf(in, sizeof(in),
	    "+OK\r\n+OK\r\nSASL XOAUTH2\r\n.\r\n"
	    "+ \r\n+OK\r\n" AFTER);
	sc.segs[0] = (struct seg){ in, (size_t)k };
	run(&sc);

	/* The same refused, with a challenge line of over 10 KiB. */
	k = snprintf(json, sizeof(json), "{\"status\":\"401\",\"scope\":\"");
	memset(json + k, 's', 7500);
	k += 7500;
	k += snprintf(json + k, sizeof(json) - (size_t)k, "\"}");
	n = pop3_base64(json, (size_t)k, chal);
	ASSERT_TRUE(n > 10000);
	r = pop3_sasl_xoauth2("alice", tok, &n);
	snprintf(out, sizeof(out), "CAPA\r\nAUTH XOAUTH2\r\n%s\r\n\r\n", r);
	free(r);
	k = snprintf(in, sizeof(in),
	    "+OK\r\n+OK\r\nSASL XOAUTH2\r\n.\r\n"
	    "+ \r\n+ %s\r\n-ERR [AUTH] expired\r\n",
	    chal);
	sc.segs[0] = (struct seg){ in, (size_t)k };
	/* The detail keeps what fits in 159 octets. */
	k = snprintf(events, sizeof(events),
	    "failed AUTH: AUTH XOAUTH2 "
	    "refused: -ERR \"[AUTH] expired\" (challenge: status=401 scope=");
	memset(events + k, 's', 159 - 17);
	snprintf(events + k + 159 - 17, 8, ")\n");
	sc.events = events;
	run(&sc);
	/* Status lines stay bounded once logged in. */
	k = snprintf(in, sizeof(in),
	    "+OK\r\n+OK\r\nSASL XOAUTH2\r\n.\r\n"
	    "+ \r\n+OK\r\n+OK %0600d\r\n",
	    0);
	sc.segs[0] = (struct seg){ in, (size_t)k };
	sc.events =
	    "failed PROTOCOL: line longer than 512 octets while "
	    "UIDL: \"+OK 000000000000000000000000000000000000000000000000000"
	    "00000000000000000000000000000000000000000...\"\n";
	r = pop3_sasl_xoauth2("alice", tok, &n);
	snprintf(out, sizeof(out), "CAPA\r\nAUTH XOAUTH2\r\n%s\r\nUIDL\r\n", r);
	free(r);
	run(&sc);
}

/* A token never falls back to a password, whatever the server offers. */
static void
test_oauth_no_password_fallback(void)
{
	static const struct script scripts[] = {
		{ .params = OAUTH_PARAMS(POP3_AUTH_AUTO),
		    .policy = OWN_FETCH,
		    .segs = { SEG("+OK <1.2@x>\r\n+OK\r\nUSER\r\nSASL PLAIN\r\n"
				  ".\r\n") },
		    .events =
			"failed NO_AUTH: server offers neither SASL "
			"XOAUTH2 nor OAUTHBEARER, and a token never falls back "
			"to a password\n",
		    .out = "CAPA\r\n" },
		{ .params = OAUTH_PARAMS(POP3_AUTH_PLAIN),
		    .policy = OWN_FETCH,
		    .segs = { SEG(
			"+OK\r\n+OK\r\nSASL PLAIN XOAUTH2\r\n.\r\n") },
		    .events =
			"failed NO_AUTH: an OAuth token is configured, "
			"which only SASL XOAUTH2 and OAUTHBEARER can carry\n",
		    .out = "CAPA\r\n" },
		/* Refused: the session fails; no USER/PASS follows. */
		{ .params = OAUTH_PARAMS(POP3_AUTH_AUTO),
		    .policy = OWN_FETCH,
		    .segs = { SEG("+OK\r\n+OK\r\nUSER\r\nSASL XOAUTH2 PLAIN\r\n"
				  ".\r\n-ERR [AUTH] no\r\n") },
		    .events =
			"failed AUTH: AUTH XOAUTH2 refused: -ERR \"[AUTH] "
			"no\"\n",
		    .out = "CAPA\r\nAUTH XOAUTH2 " XO_TOK "\r\n" },
	};
	static const struct pop3_client_params xo_nopw = {
		.user = "alice",
		.password = "s3cret",
		.auth = POP3_AUTH_XOAUTH2,
	};
	static const struct script need_token = {
		.params = xo_nopw,
		.policy = OWN_FETCH,
		.segs = { SEG("+OK\r\n+OK\r\nSASL XOAUTH2\r\n.\r\n") },
		.events = "failed NO_AUTH: SASL XOAUTH2 and OAUTHBEARER need a "
			  "token\n",
		.out = "CAPA\r\n",
	};
	size_t i;

	for (i = 0; i < sizeof(scripts) / sizeof(scripts[0]); i++)
		run(&scripts[i]);
	run(&need_token);
}

static void
test_oauth_token_not_logged(void)
{
	static const struct pop3_client_params p = {
		.user = "alice",
		.token = "SECRETTOKENabc",
		.auth = POP3_AUTH_AUTO,
	};
	struct script one = {
		.params = p,
		.policy = OWN_FETCH,
		.segs = { SEG(
		    "+OK\r\n+OK\r\nSASL XOAUTH2\r\n.\r\n+OK\r\n" AFTER) },
		.events = "ready 0\ndone\n",
	};
	struct script two = {
		.params = p,
		.policy = OWN_FETCH,
		.segs = { SEG("+OK\r\n-ERR\r\n+ \r\n+OK\r\n" AFTER) },
		.events = "ready 0\ndone\n",
	};
	struct str log = { 0 };
	char *r;
	size_t n;

	two.params.auth = POP3_AUTH_XOAUTH2;
	traced(&one, &log);
	traced(&two, &log);
	r = pop3_sasl_xoauth2("alice", "SECRETTOKENabc", &n);
	ASSERT_TRUE(log.p != NULL);
	ASSERT_TRUE(strstr(log.p, "C: AUTH XOAUTH2 ****") != NULL);
	ASSERT_TRUE(strstr(log.p, "SECRETTOKEN") == NULL);
	ASSERT_TRUE(strstr(log.p, r) == NULL);
	ASSERT_TRUE(strstr(log.p, "-> AUTH OAuth") != NULL);
	free(r);
	free(log.p);
}

static void
test_queue_after_quit_is_bug(void)
{
	struct sim s;
	pid_t pid;
	int status, null;

	pid = fork();
	ASSERT_TRUE(pid != -1);
	if (pid == 0) {
		/* The panic message is expected: keep it out of the output. */
		null = open("/dev/null", O_WRONLY);
		if (null != -1)
			dup2(null, STDERR_FILENO);
		sim_init(&s, &user_params, OWN_NOTHING);
		pop3_client_feed(s.c, LOGIN "+OK\r\n.\r\n+OK\r\n.\r\n",
		    sizeof(LOGIN "+OK\r\n.\r\n+OK\r\n.\r\n") - 1);
		pop3_client_quit(s.c);
		pop3_client_retr(s.c, 1);
		_exit(0);
	}
	ASSERT_TRUE(waitpid(pid, &status, 0) == pid);
	ASSERT_TRUE(WIFSIGNALED(status));
	ASSERT_EQ(WTERMSIG(status), SIGABRT);
}

TEST_MAIN(TESTS)
