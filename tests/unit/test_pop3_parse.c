/*
 * pop3/parse: the line reader is replayed whole, split at every point and
 * one byte at a time; each replay must yield the same lines and verdict.
 * The line parsers are checked on complete lines.
 */
#include <stdbool.h>
#include <stdint.h>

#include "pop3/parse.h"
#include "tests/unit/test.h"

#define TESTS(X)                                                         \
	X(test_lines_crlf_and_lf)                                        \
	X(test_line_keeps_inner_cr)                                      \
	X(test_line_limit_exact)                                         \
	X(test_line_too_long_without_lf)                                 \
	X(test_line_too_long_with_crlf)                                  \
	X(test_line_binary)                                              \
	X(test_status_ok_err)                                            \
	X(test_status_invalid)                                           \
	X(test_status_resp_codes)                                        \
	X(test_continuation)                                             \
	X(test_capa)                                                     \
	X(test_capa_expire)                                              \
	X(test_capa_login_delay)                                         \
	X(test_stat)                                                     \
	X(test_capa_expire_replay)                                       \
	X(test_list_items)                                               \
	X(test_uidl_items)                                               \
	X(test_uidl_long)                                                \
	X(test_timestamp)                                                \
	X(test_uidl_response_replay)                                     \
	X(test_list_response_replay)

TESTS(TEST_DECLARE)

/*
 * Runs the line reader over in[0, n) cut as replay() in test_pop3_dot.c
 * does, and writes each line as "[line]" to log, then "INVALID" or
 * "MORE:<partial length>" for how it stopped.
 */
static void
lines(const char *in, size_t n, size_t cut, char *log, size_t logsize)
{
	struct pop3_line l;
	enum pop3_parse r = POP3_PARSE_NEED_MORE;
	size_t pos = 0, piece, used, o = 0;

	pop3_line_init(&l);
	log[0] = '\0';
	while (pos < n) {
		if (cut == SIZE_MAX)
			piece = 1;
		else
			piece = pos < cut ? cut - pos : n - pos;
		r = pop3_line_feed(&l, in + pos, piece, &used);
		if (r == POP3_PARSE_INVALID)
			break;
		ASSERT_TRUE(used <= piece);
		if (r == POP3_PARSE_OK) {
			ASSERT_EQ(l.buf[l.len], '\0');
			o += (size_t)snprintf(log + o, logsize - o, "[%.*s]",
			    (int)l.len, l.buf);
		} else
			ASSERT_EQ(used, piece);
		ASSERT_TRUE(o < logsize);
		pos += used;
	}
	if (r == POP3_PARSE_INVALID)
		snprintf(log + o, logsize - o, "INVALID");
	else if (r == POP3_PARSE_NEED_MORE)
		snprintf(log + o, logsize - o, "MORE:%zu", l.len);
}

static void
check_lines(const char *in, size_t n, const char *want)
{
	static char log[8192];
	size_t cut;

	for (cut = 0; cut <= n + 1; cut++) {
		lines(in, n, cut == n + 1 ? SIZE_MAX : cut, log, sizeof(log));
		ASSERT_STREQ(log, want);
	}
}

#define CHECK_LINES(in, want) check_lines(in, sizeof(in) - 1, want)

static void
test_lines_crlf_and_lf(void)
{
	CHECK_LINES("+OK hi\r\n-ERR no\n\r\n\n", "[+OK hi][-ERR no][][]");
	CHECK_LINES("+OK", "MORE:3");
	CHECK_LINES("+OK\r", "MORE:4");
	CHECK_LINES("+OK\r\n+O", "[+OK]MORE:2");
}

static void
test_line_keeps_inner_cr(void)
{
	/* Only the CR right before LF belongs to the line ending. */
	CHECK_LINES("a\rb\r\r\n", "[a\rb\r]");
}

static void
test_line_limit_exact(void)
{
	char in[600], want[700];

	/* 510 octets + CRLF = 512: the longest line allowed. */
	memset(in, 'x', 510);
	memcpy(in + 510, "\r\n", 2);
	snprintf(want, sizeof(want), "[%.*s]", 510, in);
	check_lines(in, 512, want);
	/* A bare-LF line may use 511 octets before the LF. */
	memset(in, 'y', 511);
	in[511] = '\n';
	snprintf(want, sizeof(want), "[%.*s]", 511, in);
	check_lines(in, 512, want);
}

static void
test_line_too_long_without_lf(void)
{
	char in[2000];

	memset(in, 'z', sizeof(in));
	check_lines(in, 511, "MORE:511");
	check_lines(in, 512, "INVALID");
	check_lines(in, sizeof(in), "INVALID");
	memcpy(in, "+OK\r\n", 5);
	check_lines(in, sizeof(in), "[+OK]INVALID");
}

static void
test_line_too_long_with_crlf(void)
{
	char in[600];

	memset(in, 'x', 511);
	memcpy(in + 511, "\r\n", 2);
	check_lines(in, 513, "INVALID");
}

static void
test_line_binary(void)
{
	static const char in[] = "\0\xff\x01\n";
	struct pop3_line l;
	size_t used;

	pop3_line_init(&l);
	ASSERT_EQ(pop3_line_feed(&l, in, sizeof(in) - 1, &used),
	    POP3_PARSE_OK);
	ASSERT_EQ(used, 4);
	ASSERT_EQ(l.len, 3);
	ASSERT_MEMEQ(l.buf, "\0\xff\x01", 3);
}

static struct pop3_status
status_ok(const char *line)
{
	struct pop3_status st;

	ASSERT_EQ(pop3_parse_status(line, strlen(line), &st), POP3_PARSE_OK);
	return st;
}

static void
test_status_ok_err(void)
{
	struct pop3_status st;

	st = status_ok("+OK");
	ASSERT_TRUE(st.ok);
	ASSERT_EQ(st.textlen, 0);
	ASSERT_EQ(st.code, POP3_CODE_NONE);
	st = status_ok("+OK POP3 server ready");
	ASSERT_TRUE(st.ok);
	ASSERT_MEMEQ(st.text, "POP3 server ready", st.textlen);
	ASSERT_EQ(st.textlen, 17);
	st = status_ok("-ERR");
	ASSERT_TRUE(!st.ok);
	st = status_ok("-ERR no such message");
	ASSERT_TRUE(!st.ok);
	ASSERT_EQ(st.textlen, 15);
	st = status_ok("+OK \t two blanks");
	ASSERT_EQ(st.textlen, 10);
	st = status_ok("+OK 120 octets");
	ASSERT_EQ(st.code, POP3_CODE_NONE);
}

static void
test_status_invalid(void)
{
	static const char *const bad[] = {
		"", "+", "+O", "+ok", "+Ok hi", "OK", "-ER", "-err", "+OKAY",
		"-ERROR", " +OK", "* OK IMAP", "HTTP/1.1 200 OK", "+ ",
		"220 smtp ready",
	};
	struct pop3_status st;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ASSERT_EQ(pop3_parse_status(bad[i], strlen(bad[i]), &st),
		    POP3_PARSE_INVALID);
	ASSERT_EQ(pop3_parse_status("+OK \0x", 6, &st), POP3_PARSE_INVALID);
	ASSERT_EQ(pop3_parse_status("-ERR\0", 5, &st), POP3_PARSE_INVALID);
}

static void
test_status_resp_codes(void)
{
	static const struct {
		const char *line;
		enum pop3_code code;
	} cases[] = {
		{ "-ERR [IN-USE] Mailbox locked", POP3_CODE_IN_USE },
		{ "-ERR [LOGIN-DELAY] wait 15 minutes", POP3_CODE_LOGIN_DELAY },
		{ "-ERR [SYS/TEMP] disk full", POP3_CODE_SYS_TEMP },
		{ "-ERR [SYS/PERM] mailbox corrupt", POP3_CODE_SYS_PERM },
		{ "-ERR [AUTH] Invalid login", POP3_CODE_AUTH },
		{ "-ERR [in-use] lower case", POP3_CODE_IN_USE },
		{ "-ERR [Sys/Temp] mixed case", POP3_CODE_SYS_TEMP },
		{ "-ERR [SYS/TEMP/QUOTA] sub-level", POP3_CODE_SYS_TEMP },
		{ "-ERR [AUTH/EXPIRED] sub-level", POP3_CODE_AUTH },
		{ "-ERR [SYS] no second level", POP3_CODE_OTHER },
		{ "-ERR [SYS/OTHER] unknown second", POP3_CODE_OTHER },
		{ "-ERR [UTF8] other code", POP3_CODE_OTHER },
		{ "+OK [IN-USE] on +OK too", POP3_CODE_IN_USE },
		{ "-ERR [IN-USE]", POP3_CODE_IN_USE },
		{ "-ERR [IN USE] blank inside", POP3_CODE_NONE },
		{ "-ERR [IN-USE no bracket", POP3_CODE_NONE },
		{ "-ERR []", POP3_CODE_NONE },
		{ "-ERR [SYS//TEMP]", POP3_CODE_NONE },
		{ "-ERR [/TEMP]", POP3_CODE_NONE },
		{ "-ERR [", POP3_CODE_NONE },
		{ "-ERR text [IN-USE] not first", POP3_CODE_NONE },
	};
	struct pop3_status st;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		st = status_ok(cases[i].line);
		if (st.code != cases[i].code)
			TEST_FAIL_("%s: code %d, want %d", cases[i].line,
			    (int)st.code, (int)cases[i].code);
	}
	st = status_ok("-ERR [IN-USE] locked");
	ASSERT_EQ(st.textlen, 15);
	ASSERT_MEMEQ(st.text, "[IN-USE] locked", 15);
}

static void
test_continuation(void)
{
	ASSERT_TRUE(pop3_parse_continuation("+", 1));
	ASSERT_TRUE(pop3_parse_continuation("+ ", 2));
	ASSERT_TRUE(pop3_parse_continuation("+ YWJj", 6));
	ASSERT_TRUE(!pop3_parse_continuation("+OK", 3));
	ASSERT_TRUE(!pop3_parse_continuation("++", 2));
	ASSERT_TRUE(!pop3_parse_continuation("", 0));
	ASSERT_TRUE(!pop3_parse_continuation("-ERR", 4));
}

static unsigned
capa(const char *const *list, size_t n)
{
	unsigned caps = 0;
	size_t i;

	for (i = 0; i < n; i++)
		ASSERT_EQ(pop3_parse_capa(list[i], strlen(list[i]), &caps),
		    POP3_PARSE_OK);
	return caps;
}

static void
test_capa(void)
{
	static const char *const dovecot[] = {
		"CAPA", "TOP", "UIDL", "RESP-CODES", "PIPELINING",
		"AUTH-RESP-CODE", "USER", "SASL PLAIN LOGIN", "STLS",
	};
	static const char *const minimal[] = {
		"top", "Uidl", "SASL CRAM-MD5 DIGEST-MD5", "LOGIN-DELAY 900",
		"IMPLEMENTATION Example", "EXPIRE NEVER", "",
		"  USER", "STLSX", "PLAIN", "SASL",
	};
	unsigned caps;

	caps = capa(dovecot, sizeof(dovecot) / sizeof(dovecot[0]));
	ASSERT_EQ(caps, POP3_CAPA_TOP | POP3_CAPA_UIDL |
	    POP3_CAPA_RESP_CODES | POP3_CAPA_PIPELINING |
	    POP3_CAPA_AUTH_RESP_CODE | POP3_CAPA_USER |
	    POP3_CAPA_SASL_PLAIN | POP3_CAPA_STLS);
	caps = capa(minimal, sizeof(minimal) / sizeof(minimal[0]));
	ASSERT_EQ(caps, POP3_CAPA_TOP | POP3_CAPA_UIDL | POP3_CAPA_USER);
	caps = 0;
	ASSERT_EQ(pop3_parse_capa("sasl login plain", 16, &caps),
	    POP3_PARSE_OK);
	ASSERT_EQ(caps, POP3_CAPA_SASL_PLAIN);
	ASSERT_EQ(pop3_parse_capa("TOP\0", 4, &caps), POP3_PARSE_INVALID);
}

/* Parses one EXPIRE line; writes "-" if it is not one, else its reading. */
static void
expire_of(const char *line, size_t len, char *out, size_t size)
{
	static const char *const kinds[] = {
		[POP3_EXPIRE_NONE] = "none", [POP3_EXPIRE_NEVER] = "never",
		[POP3_EXPIRE_DAYS] = "days", [POP3_EXPIRE_UNKNOWN] = "unknown",
	};
	struct pop3_expire e = { POP3_EXPIRE_NONE, 7, false };

	if (!pop3_parse_capa_expire(line, len, &e)) {
		/* Left alone. */
		ASSERT_EQ(e.kind, POP3_EXPIRE_NONE);
		ASSERT_EQ(e.days, 7);
		snprintf(out, size, "-");
		return;
	}
	snprintf(out, size, "%s %" PRIu32 "%s%s", kinds[e.kind], e.days,
	    e.per_user ? " user" : "", pop3_expire_at_quit(&e) ? " quit" : "");
}

#define CHECK_EXPIRE(line, want)                                         \
	do {                                                             \
		char got_[64];                                           \
		expire_of(line, sizeof(line) - 1, got_, sizeof(got_));   \
		ASSERT_STREQ(got_, want);                                \
	} while (0)

static void
test_capa_expire(void)
{
	struct pop3_expire none = { POP3_EXPIRE_NONE, 0, false };
	struct pop3_expire never = { POP3_EXPIRE_NEVER, 0, false };
	unsigned caps = 0;

	CHECK_EXPIRE("EXPIRE 0", "days 0 quit");
	CHECK_EXPIRE("expire 0", "days 0 quit");
	CHECK_EXPIRE("EXPIRE 00", "days 0 quit");
	CHECK_EXPIRE("EXPIRE\t0\t", "days 0 quit");
	CHECK_EXPIRE("  EXPIRE 0", "days 0 quit");
	CHECK_EXPIRE("EXPIRE 0 USER", "days 0 user quit");
	CHECK_EXPIRE("EXPIRE 0 user", "days 0 user quit");
	CHECK_EXPIRE("EXPIRE 30", "days 30");
	CHECK_EXPIRE("EXPIRE 30 USER", "days 30 user");
	CHECK_EXPIRE("EXPIRE 4294967295", "days 4294967295");
	CHECK_EXPIRE("EXPIRE 99999999999999999999999", "days 4294967295");
	CHECK_EXPIRE("EXPIRE 00000000000000000000001", "days 1");
	CHECK_EXPIRE("EXPIRE NEVER", "never 0");
	CHECK_EXPIRE("EXPIRE never USER", "never 0 user");
	/* What we cannot read may be 0: assume it is. */
	CHECK_EXPIRE("EXPIRE", "unknown 0 quit");
	CHECK_EXPIRE("EXPIRE ", "unknown 0 quit");
	CHECK_EXPIRE("EXPIRE -1", "unknown 0 quit");
	CHECK_EXPIRE("EXPIRE +3", "unknown 0 quit");
	CHECK_EXPIRE("EXPIRE 3d", "unknown 0 quit");
	CHECK_EXPIRE("EXPIRE NEVERMORE", "unknown 0 quit");
	CHECK_EXPIRE("EXPIRE 30 SOON", "unknown 30 user quit");
	CHECK_EXPIRE("EXPIRE 30 USER X", "unknown 30 user quit");
	CHECK_EXPIRE("EXPIRE NEVER USER USER", "unknown 0 user quit");
	/* Not EXPIRE at all. */
	CHECK_EXPIRE("", "-");
	CHECK_EXPIRE("EXPIRES 0", "-");
	CHECK_EXPIRE("XEXPIRE 0", "-");
	CHECK_EXPIRE("TOP", "-");
	CHECK_EXPIRE("LOGIN-DELAY 0", "-");
	CHECK_EXPIRE("EXPIRE 0\0", "-");
	ASSERT_TRUE(!pop3_expire_at_quit(&none));
	ASSERT_TRUE(!pop3_expire_at_quit(&never));
	/* The flags parser still ignores it. */
	ASSERT_EQ(pop3_parse_capa("EXPIRE 0 USER", 13, &caps),
	    POP3_PARSE_OK);
	ASSERT_EQ(caps, 0);
}

/* Parses one LOGIN-DELAY line; "-" if it is not one. */
static const char *
login_delay_of(const char *line, size_t len, char *out, size_t size)
{
	struct pop3_login_delay d = { true, 7, true };

	if (!pop3_parse_capa_login_delay(line, len, &d)) {
		ASSERT_TRUE(d.present && d.seconds == 7 && d.per_user);
		snprintf(out, size, "-");
	} else if (!d.present)
		snprintf(out, size, "unreadable");
	else
		snprintf(out, size, "%" PRIu32 "%s", d.seconds,
		    d.per_user ? " user" : "");
	return out;
}

#define CHECK_LOGIN_DELAY(line, want)                                    \
	do {                                                             \
		char got_[64];                                           \
		ASSERT_STREQ(login_delay_of(line, sizeof(line) - 1, got_, \
		    sizeof(got_)), want);                                \
	} while (0)

static void
test_capa_login_delay(void)
{
	CHECK_LOGIN_DELAY("LOGIN-DELAY 900", "900");
	CHECK_LOGIN_DELAY("login-delay 0", "0");
	CHECK_LOGIN_DELAY("LOGIN-DELAY 900 USER", "900 user");
	CHECK_LOGIN_DELAY("LOGIN-DELAY\t60\t", "60");
	CHECK_LOGIN_DELAY("LOGIN-DELAY 99999999999999999999", "4294967295");
	CHECK_LOGIN_DELAY("LOGIN-DELAY", "unreadable");
	CHECK_LOGIN_DELAY("LOGIN-DELAY -5", "unreadable");
	CHECK_LOGIN_DELAY("LOGIN-DELAY 5m", "unreadable");
	CHECK_LOGIN_DELAY("LOGIN-DELAY 5 SOON", "unreadable");
	CHECK_LOGIN_DELAY("LOGIN-DELAY 5 USER X", "unreadable");
	CHECK_LOGIN_DELAY("EXPIRE 5", "-");
	CHECK_LOGIN_DELAY("LOGIN-DELAYS 5", "-");
	CHECK_LOGIN_DELAY("LOGIN-DELAY 5\0", "-");
}

static void
test_stat(void)
{
	static const struct {
		const char *text;
		bool ok;
		uint32_t count;
		uint64_t size;
	} v[] = {
		{ "2 320", true, 2, 320 },
		{ "0 0", true, 0, 0 },
		{ "2  320 octets", true, 2, 320 },
		{ "4294967295 9223372036854775807", true, 4294967295u,
		    9223372036854775807ull },
		{ "4294967296 1", false, 0, 0 },
		{ "1 9223372036854775808", false, 0, 0 },
		{ "2", false, 0, 0 },
		{ "2 ", false, 0, 0 },
		{ "", false, 0, 0 },
		{ "two 320", false, 0, 0 },
		{ "2 320x", false, 0, 0 },
		{ "-2 320", false, 0, 0 },
	};
	uint32_t count;
	uint64_t size;
	size_t i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		enum pop3_parse r = pop3_parse_stat(v[i].text,
		    strlen(v[i].text), &count, &size);

		if ((r == POP3_PARSE_OK) != v[i].ok)
			TEST_FAIL_("STAT \"%s\": %d", v[i].text, (int)r);
		if (v[i].ok) {
			ASSERT_EQ(count, v[i].count);
			ASSERT_EQ(size, v[i].size);
		}
	}
	ASSERT_EQ(pop3_parse_stat("1 2\0", 4, &count, &size),
	    POP3_PARSE_INVALID);
}

/*
 * A CAPA response holding EXPIRE, through the line reader at every split
 * point and one byte at a time: the same capabilities every time.
 */
static void
capa_replay(const char *in, size_t n, size_t cut, char *log, size_t size)
{
	struct pop3_line l;
	struct pop3_expire e = { POP3_EXPIRE_NONE, 0, false };
	unsigned caps = 0;
	size_t pos = 0, piece, used;
	enum pop3_parse r;

	pop3_line_init(&l);
	while (pos < n) {
		piece = cut == SIZE_MAX ? 1 : pos < cut ? cut - pos : n - pos;
		r = pop3_line_feed(&l, in + pos, piece, &used);
		ASSERT_TRUE(r != POP3_PARSE_INVALID);
		pos += used;
		if (r != POP3_PARSE_OK)
			continue;
		if (l.len > 0 && l.buf[0] == '+')
			continue;
		ASSERT_EQ(pop3_parse_capa(l.buf, l.len, &caps),
		    POP3_PARSE_OK);
		(void)pop3_parse_capa_expire(l.buf, l.len, &e);
	}
	snprintf(log, size, "caps=%u kind=%d days=%" PRIu32 " user=%d",
	    caps, (int)e.kind, e.days, (int)e.per_user);
}

static void
check_capa_replay(const char *in, size_t n, const char *want)
{
	char log[128];
	size_t cut;

	for (cut = 0; cut <= n + 1; cut++) {
		capa_replay(in, n, cut == n + 1 ? SIZE_MAX : cut, log,
		    sizeof(log));
		ASSERT_STREQ(log, want);
	}
}

static void
test_capa_expire_replay(void)
{
	static const char at_quit[] = "+OK\r\nTOP\r\nEXPIRE 0 USER\r\n"
	    "UIDL\n.\r\n";
	static const char days[] = "+OK\r\nEXPIRE 31\r\nPIPELINING\r\n.\r\n";
	static const char never[] = "+OK\r\nexpire NEVER\n.\n";
	char want[128];

	snprintf(want, sizeof(want), "caps=%u kind=%d days=0 user=1",
	    (unsigned)(POP3_CAPA_TOP | POP3_CAPA_UIDL), (int)POP3_EXPIRE_DAYS);
	check_capa_replay(at_quit, sizeof(at_quit) - 1, want);
	snprintf(want, sizeof(want), "caps=%u kind=%d days=31 user=0",
	    (unsigned)POP3_CAPA_PIPELINING, (int)POP3_EXPIRE_DAYS);
	check_capa_replay(days, sizeof(days) - 1, want);
	snprintf(want, sizeof(want), "caps=0 kind=%d days=0 user=0",
	    (int)POP3_EXPIRE_NEVER);
	check_capa_replay(never, sizeof(never) - 1, want);
}

static void
test_list_items(void)
{
	static const char *const bad[] = {
		"", "1", "1 ", " 1 2", "0 5", "-1 5", "+1 5", "1 -5", "1 2x",
		"a 1", "1 a", "1x 2", "4294967296 1",
		"1 18446744073709551616", "99999999999999999999 1",
		"1 9223372036854775808", "1 18446744073709551615",
		"1 99999999999999999999999",
	};
	uint32_t num;
	uint64_t size;
	size_t i;

	ASSERT_EQ(pop3_parse_list_item("1 120", 5, &num, &size),
	    POP3_PARSE_OK);
	ASSERT_EQ(num, 1);
	ASSERT_EQ(size, 120);
	ASSERT_EQ(pop3_parse_list_item("2  0 extra info", 15, &num, &size),
	    POP3_PARSE_OK);
	ASSERT_EQ(num, 2);
	ASSERT_EQ(size, 0);
	ASSERT_EQ(pop3_parse_list_item("4294967295 9223372036854775807", 30,
	    &num, &size), POP3_PARSE_OK);
	ASSERT_EQ(num, UINT32_MAX);
	ASSERT_TRUE(size == INT64_MAX);
	ASSERT_EQ(pop3_parse_list_item("007\t12 ", 7, &num, &size),
	    POP3_PARSE_OK);
	ASSERT_EQ(num, 7);
	ASSERT_EQ(size, 12);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (pop3_parse_list_item(bad[i], strlen(bad[i]), &num,
		    &size) != POP3_PARSE_INVALID)
			TEST_FAIL_("accepted LIST item \"%s\"", bad[i]);
	ASSERT_EQ(pop3_parse_list_item("1 2\0", 4, &num, &size),
	    POP3_PARSE_INVALID);
}

static void
test_uidl_items(void)
{
	static const char *const bad[] = {
		"", "1", "1 ", "0 abc", "x abc", " 1 abc", "1abc",
		"4294967296 a",
	};
	const char *uid;
	size_t uidlen, i;
	uint32_t num;

	ASSERT_EQ(pop3_parse_uidl_item("1 whqtswO00WBw418f9t5JxYwZ", 26,
	    &num, &uid, &uidlen), POP3_PARSE_OK);
	ASSERT_EQ(num, 1);
	ASSERT_EQ(uidlen, 24);
	ASSERT_MEMEQ(uid, "whqtswO00WBw418f9t5JxYwZ", 24);
	ASSERT_EQ(pop3_parse_uidl_item("12 <a@b>!~ \t", 12, &num, &uid,
	    &uidlen), POP3_PARSE_OK);
	ASSERT_EQ(num, 12);
	ASSERT_EQ(uidlen, 7);
	ASSERT_MEMEQ(uid, "<a@b>!~", 7);
	/* Octets >= 0x80 are kept: some servers put UTF-8 there. */
	ASSERT_EQ(pop3_parse_uidl_item("3 \xc3\xa9t\xc3\xa9", 7, &num, &uid,
	    &uidlen), POP3_PARSE_OK);
	ASSERT_EQ(uidlen, 5);
	/* Outside RFC 1939's range, but refusing the line would refuse the
	 * whole mailbox: control bytes and inner blanks are kept, trailing
	 * blanks dropped. */
	ASSERT_EQ(pop3_parse_uidl_item("1 abc def ", 10, &num, &uid,
	    &uidlen), POP3_PARSE_OK);
	ASSERT_EQ(uidlen, 7);
	ASSERT_MEMEQ(uid, "abc def", 7);
	ASSERT_EQ(pop3_parse_uidl_item("2 a\x01\x7f", 5, &num, &uid,
	    &uidlen), POP3_PARSE_OK);
	ASSERT_EQ(uidlen, 3);
	ASSERT_MEMEQ(uid, "a\x01\x7f", 3);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (pop3_parse_uidl_item(bad[i], strlen(bad[i]), &num, &uid,
		    &uidlen) != POP3_PARSE_INVALID)
			TEST_FAIL_("accepted UIDL item \"%s\"", bad[i]);
	ASSERT_EQ(pop3_parse_uidl_item("1 a\0b", 5, &num, &uid, &uidlen),
	    POP3_PARSE_INVALID);
}

static void
test_uidl_long(void)
{
	char line[POP3_LINE_MAX];
	const char *uid;
	size_t uidlen;
	uint32_t num;

	/* RFC 1939 says 70 octets; longer ones up to the line limit pass. */
	memcpy(line, "9 ", 2);
	memset(line + 2, 'u', 508);
	ASSERT_EQ(pop3_parse_uidl_item(line, 510, &num, &uid, &uidlen),
	    POP3_PARSE_OK);
	ASSERT_EQ(num, 9);
	ASSERT_EQ(uidlen, 508);
}

static void
check_ts(const char *line, const char *want)
{
	const char *ts;
	size_t tslen;

	if (want == NULL) {
		ASSERT_TRUE(!pop3_parse_timestamp(line, strlen(line), &ts,
		    &tslen));
		return;
	}
	ASSERT_TRUE(pop3_parse_timestamp(line, strlen(line), &ts, &tslen));
	ASSERT_EQ(tslen, strlen(want));
	ASSERT_MEMEQ(ts, want, tslen);
}

static void
test_timestamp(void)
{
	check_ts("+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>",
	    "<1896.697170952@dbc.mtview.ca.us>");
	check_ts("+OK Dovecot ready. <4d2.1.5f0e1a2b.abc==@host> trailing",
	    "<4d2.1.5f0e1a2b.abc==@host>");
	check_ts("+OK <x> then <a@b>", "<a@b>");
	check_ts("+OK <<a@b>", "<a@b>");
	check_ts("+OK ready", NULL);
	check_ts("+OK <>", NULL);
	check_ts("+OK <no-at-sign>", NULL);
	check_ts("+OK <a @b>", NULL);
	check_ts("+OK <a@b", NULL);
	check_ts("+OK a@b>", NULL);
	check_ts("+OK <a\x01@b>", NULL);
}

/* A multi-line response at every split: the reader plus the item parser. */
static void
replay_items(const char *in, size_t n, bool uidl, const char *want)
{
	static char log[8192];
	struct pop3_line l;
	const char *uid, *line;
	enum pop3_parse r;
	size_t cut, pos, piece, used, o, len, uidlen;
	uint32_t num;
	uint64_t size;

	for (cut = 0; cut <= n + 1; cut++) {
		pop3_line_init(&l);
		pos = o = 0;
		log[0] = '\0';
		while (pos < n) {
			piece = cut == n + 1 ? 1 :
			    pos < cut ? cut - pos : n - pos;
			r = pop3_line_feed(&l, in + pos, piece, &used);
			ASSERT_TRUE(r != POP3_PARSE_INVALID);
			pos += used;
			if (r != POP3_PARSE_OK)
				continue;
			line = l.buf;
			len = l.len;
			if (o == 0) {
				o += (size_t)snprintf(log, sizeof(log), "%s;",
				    line);
				continue;
			}
			if (len == 1 && line[0] == '.') {
				o += (size_t)snprintf(log + o, sizeof(log) - o,
				    "END");
				continue;
			}
			if (uidl)
				r = pop3_parse_uidl_item(line, len, &num, &uid,
				    &uidlen);
			else
				r = pop3_parse_list_item(line, len, &num,
				    &size);
			if (r != POP3_PARSE_OK)
				o += (size_t)snprintf(log + o, sizeof(log) - o,
				    "BAD;");
			else if (uidl)
				o += (size_t)snprintf(log + o, sizeof(log) - o,
				    "%u=%.*s;", (unsigned)num, (int)uidlen,
				    uid);
			else
				o += (size_t)snprintf(log + o, sizeof(log) - o,
				    "%u=%ju;", (unsigned)num, (uintmax_t)size);
		}
		ASSERT_STREQ(log, want);
	}
}

static void
test_uidl_response_replay(void)
{
	static const char in[] = "+OK\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n"
	    "2 QhdPYR:00WBw1Ph7x7\n3 x\r\n4\r\n.\r\n";

	replay_items(in, sizeof(in) - 1, true,
	    "+OK;1=whqtswO00WBw418f9t5JxYwZ;2=QhdPYR:00WBw1Ph7x7;3=x;BAD;END");
}

static void
test_list_response_replay(void)
{
	static const char in[] = "+OK 2 messages (320 octets)\r\n1 120\r\n"
	    "2 200\n3 x\r\n.\r\n";

	replay_items(in, sizeof(in) - 1, false,
	    "+OK 2 messages (320 octets);1=120;2=200;BAD;END");
}

TEST_MAIN(TESTS)
