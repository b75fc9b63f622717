/*
 * ingestd/conf: config files written to a private directory.  A valid
 * file gives every setting and its defaults; every mistake is refused with
 * the file, the line and the setting in the message.  README.md and
 * ingestd.8 list exactly the rows of the tables in ingestd/conf.c.
 */
#include "tests/unit/test.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ingestd/conf.h"
#include "ingestd/delete_policy.h"
#include "ingestd/base/xmalloc.h"

#define TESTS(X)                                                         \
	X(test_full_config)                                              \
	X(test_defaults)                                                 \
	X(test_password_file_first_line)                                 \
	X(test_unknown_top_level_key)                                    \
	X(test_unknown_account_key)                                      \
	X(test_unknown_database_key)                                     \
	X(test_ledger_settings)                                          \
	X(test_wrong_type)                                               \
	X(test_out_of_range)                                             \
	X(test_size_suffixes)                                            \
	X(test_invalid_choice)                                           \
	X(test_missing_required)                                         \
	X(test_password_and_password_file)                               \
	X(test_missing_password_file)                                    \
	X(test_empty_password)                                           \
	X(test_unreadable_ca_file)                                       \
	X(test_unreadable_as_other_user)                                 \
	X(test_duplicate_account_name)                                   \
	X(test_plaintext_needs_allow)                                    \
	X(test_syntax_error)                                             \
	X(test_permissions_warning)                                      \
	X(test_no_accounts)                                              \
	X(test_not_a_config_file)                                        \
	X(test_small_error_buffer)                                       \
	X(test_oauth_settings)                                           \
	X(test_oauth_refused)                                            \
	X(test_delete_policy)                                            \
	X(test_settings_tables)                                          \
	X(test_readme_lists_settings)                                    \
	X(test_manual_lists_settings)                                    \
	X(test_purge_and_retention)
TESTS(TEST_DECLARE)

/* err contains want. */
#define ASSERT_CONTAINS(err, want)                                       \
	do {                                                             \
		const char *e_ = (err), *w_ = (want);                    \
		if (strstr(e_, w_) == NULL)                              \
			TEST_FAIL_("%s contains %s: \"%s\" lacks \"%s\"", \
			    #err, #want, e_, w_);                        \
	} while (0)

/* err starts with "<config path>:<line>: ". */
#define ASSERT_AT(err, line)                                             \
	do {                                                             \
		char at_[512];                                           \
		snprintf(at_, sizeof(at_), "%s:%d: ", conf_path(), (line)); \
		if (strncmp((err), at_, strlen(at_)) != 0)               \
			TEST_FAIL_("%s starts with \"%s\": \"%s\"", #err, \
			    at_, (err));                                 \
	} while (0)

/* a->where is "<config path>:<line>". */
#define ASSERT_WHERE(a, line)                                            \
	do {                                                             \
		char w_[512];                                            \
		snprintf(w_, sizeof(w_), "%s:%d", conf_path(), (line));  \
		ASSERT_STREQ((a)->where, w_);                            \
	} while (0)

static char tmpdir[64];
static char errbuf[1024];
static const char *conf_name = "ingestd.conf";

/* A valid account, for tests about something else. */
#define ACCOUNT                                                          \
	"name = \"sales\"; host = \"pop.example.com\"; "                 \
	"user = \"sales@example.com\"; password = \"secret\";"

/* Removes tmpdir at exit; after a failure (abort) it stays to look at. */
static void
cleanup(void)
{
	struct dirent *de;
	char path[512];
	DIR *d;

	if ((d = opendir(tmpdir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, de->d_name);
		(void)unlink(path);
	}
	closedir(d);
	(void)rmdir(tmpdir);
}

static void
setup(void)
{
	if (tmpdir[0] != '\0')
		return;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ingestd-test-conf.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		TEST_FAIL_("mkdtemp: %s", strerror(errno));
	atexit(cleanup);
}

/* A path in tmpdir, good until 16 more calls. */
static const char *
path_of(const char *name)
{
	static char buf[16][256];
	static unsigned next;
	char *p = buf[next++ % 16];

	setup();
	snprintf(p, sizeof(buf[0]), "%s/%s", tmpdir, name);
	return p;
}

static const char *
conf_path(void)
{
	return path_of(conf_name);
}

/* Writes n bytes to tmpdir/name with the given mode; returns the path. */
static const char *
write_bytes(const char *name, mode_t mode, const void *p, size_t n)
{
	const char *path = path_of(name);
	int fd;

	(void)unlink(path);
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode)) == -1)
		TEST_FAIL_("open %s: %s", path, strerror(errno));
	if (write(fd, p, n) != (ssize_t)n)
		TEST_FAIL_("write %s: %s", path, strerror(errno));
	close(fd);
	/* The umask must not decide what the permission check sees. */
	if (chmod(path, mode) == -1)
		TEST_FAIL_("chmod %s: %s", path, strerror(errno));
	return path;
}

static const char *
write_file(const char *name, mode_t mode, const char *text)
{
	return write_bytes(name, mode, text, strlen(text));
}

static void write_conf(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* Writes the config file, mode 0600, from a printf format. */
static void
write_conf(const char *fmt, ...)
{
	char text[8192];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	ASSERT_TRUE(n >= 0 && (size_t)n < sizeof(text));
	write_file(conf_name, 0600, text);
}

/* Loads the config file, which must be valid. */
static struct conf *
load_ok(void)
{
	struct conf *c;

	errbuf[0] = '\0';
	if ((c = conf_load(conf_path(), errbuf, sizeof(errbuf))) == NULL)
		TEST_FAIL_("conf_load: %s", errbuf);
	return c;
}

/* Loads the config file, which must be refused; returns the message. */
static const char *
load_refused(void)
{
	struct conf *c;

	snprintf(errbuf, sizeof(errbuf), "(no message)");
	if ((c = conf_load(conf_path(), errbuf, sizeof(errbuf))) != NULL) {
		conf_free(&c);
		TEST_FAIL_("conf_load accepted %s", conf_path());
	}
	return errbuf;
}

/* "user NAME (uid N)": whom the messages about unreadable files name. */
static const char *
who(void)
{
	static char buf[128];
	struct passwd *pw = getpwuid(geteuid());

	ASSERT_TRUE(pw != NULL);
	snprintf(buf, sizeof(buf), "user %s (uid %u)", pw->pw_name,
	    (unsigned)geteuid());
	return buf;
}

/* The config file with only an account's settings. */
static const char *
refuse_account(const char *settings)
{
	write_conf("accounts = (\n  { %s }\n);\n", settings);
	return load_refused();
}

/*
 * Standard error is captured through a pipe around the calls in between:
 * log.c writes each line with one write(2), and a few lines fit in the
 * pipe's buffer.
 */
static int saved_stderr = -1, capture_rd = -1;

static void
capture_begin(void)
{
	int p[2];

	if (pipe(p) == -1)
		TEST_FAIL_("pipe: %s", strerror(errno));
	fflush(stderr);
	saved_stderr = dup(STDERR_FILENO);
	ASSERT_TRUE(saved_stderr != -1);
	ASSERT_TRUE(dup2(p[1], STDERR_FILENO) != -1);
	close(p[1]);
	capture_rd = p[0];
}

static void
capture_end(char *buf, size_t len)
{
	size_t n = 0;
	ssize_t r;

	fflush(stderr);
	ASSERT_TRUE(dup2(saved_stderr, STDERR_FILENO) != -1);
	close(saved_stderr);
	saved_stderr = -1;
	/* The write end is closed now, so read() ends at 0. */
	while (n < len - 1 &&
	    (r = read(capture_rd, buf + n, len - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
	close(capture_rd);
	capture_rd = -1;
}

static void
test_full_config(void)
{
	const char *pwf, *ca;
	struct conf *c;
	const struct conf_account *a;

	pwf = write_file("support.pw", 0600, "s3cret pass\nsecond line\n");
	ca = write_file("ca.pem", 0644, "not parsed here\n");
	write_conf(
	    "# every setting\n"
	    "state_dir = \"/srv/ingestd\";\n"
	    "database = { conninfo = \"host=/run/postgresql dbname=x\";\n"
	    "             pg_bindir = \"/usr/lib/postgresql/15/bin\";\n"
	    "             insecure_transport = true; };\n"
	    "workers = 4;\n"
	    "poll_interval = 60;\n"
	    "max_connections_per_host = 8;\n"
	    "connect_timeout = 10;\n"
	    "command_timeout = 20;\n"
	    "session_timeout = 3600;\n"
	    "zstd_level = 19;\n"
	    "spool_memory = 4096;\n"
	    "batch_max = 100000;\n"
	    "dictionary_after = 0;\n"
	    "accounts = (\n"
	    "  { name = \"sales\"; host = \"pop.example.com\"; port = 995;\n"
	    "    tls = \"implicit\"; ca_file = \"%s\";\n"
	    "    user = \"sales@example.com\"; password = \"pw\";\n"
	    "    auth = \"apop\"; delete = \"never\"; enabled = false; },\n"
	    "  { name = \"support\"; host = \"10.0.0.1\"; port = 1110;\n"
	    "    tls = \"starttls\"; user = \"support\";\n"
	    "    password_file = \"%s\"; auth = \"plain\";\n"
	    "    implicit_delete = true; },\n"
	    "  { name = \"lab\"; host = \"localhost\"; tls = \"none\";\n"
	    "    allow_plaintext = true; user = \"lab\";\n"
	    "    password = \"x\"; auth = \"user\"; enabled = true; }\n"
	    ");\n", ca, pwf);
	c = load_ok();
	ASSERT_STREQ(c->path, conf_path());
	ASSERT_STREQ(c->state_dir, "/srv/ingestd");
	ASSERT_STREQ(c->conninfo, "host=/run/postgresql dbname=x");
	ASSERT_STREQ(c->pg_bindir, "/usr/lib/postgresql/15/bin");
	ASSERT_EQ(c->insecure_transport, true);
	ASSERT_EQ(c->workers, 4);
	ASSERT_EQ(c->poll_interval, 60);
	ASSERT_EQ(c->max_connections_per_host, 8);
	ASSERT_EQ(c->connect_timeout, 10);
	ASSERT_EQ(c->command_timeout, 20);
	ASSERT_EQ(c->session_timeout, 3600);
	ASSERT_EQ(c->zstd_level, 19);
	ASSERT_EQ(c->spool_mem, 4096);
	ASSERT_EQ(c->batch_max, 100000);
	ASSERT_EQ(c->dictionary_after, 0);
	ASSERT_EQ(c->naccounts, 3);

	a = &c->accounts[0];
	ASSERT_STREQ(a->name, "sales");
	ASSERT_STREQ(a->host, "pop.example.com");
	ASSERT_EQ(a->port, 995);
	ASSERT_EQ(a->tls, CONF_TLS_IMPLICIT);
	ASSERT_STREQ(a->ca_file, ca);
	ASSERT_STREQ(a->user, "sales@example.com");
	ASSERT_STREQ(a->password, "pw");
	ASSERT_TRUE(a->password_file == NULL);
	ASSERT_EQ(a->auth, CONF_AUTH_APOP);
	ASSERT_EQ(a->delete, CONF_DELETE_NEVER);
	ASSERT_EQ(a->enabled, false);
	ASSERT_EQ(a->allow_plaintext, false);
	ASSERT_EQ(a->implicit_delete, false);
	ASSERT_WHERE(a, 17);

	a = &c->accounts[1];
	ASSERT_STREQ(a->name, "support");
	ASSERT_STREQ(a->host, "10.0.0.1");
	ASSERT_EQ(a->port, 1110);
	ASSERT_EQ(a->tls, CONF_TLS_STARTTLS);
	ASSERT_TRUE(a->ca_file == NULL);
	ASSERT_STREQ(a->password, "s3cret pass");
	ASSERT_STREQ(a->password_file, pwf);
	ASSERT_EQ(a->auth, CONF_AUTH_PLAIN);
	ASSERT_EQ(a->delete, CONF_DELETE_AFTER_ARCHIVE);
	ASSERT_EQ(a->implicit_delete, true);
	ASSERT_EQ(a->enabled, true);
	ASSERT_WHERE(a, 21);

	a = &c->accounts[2];
	ASSERT_EQ(a->tls, CONF_TLS_NONE);
	ASSERT_EQ(a->allow_plaintext, true);
	ASSERT_EQ(a->port, 110);
	ASSERT_EQ(a->auth, CONF_AUTH_USER);
	ASSERT_EQ(a->enabled, true);

	conf_free(&c);
	ASSERT_TRUE(c == NULL);
	conf_free(&c);
}

static void
test_defaults(void)
{
	struct conf *c;
	const struct conf_account *a;

	write_conf("accounts = ( { " ACCOUNT " },\n"
	    "  { name = \"b\"; host = \"h\"; user = \"u\"; password = \"p\";\n"
	    "    tls = \"starttls\"; } );\n");
	c = load_ok();
	ASSERT_STREQ(c->state_dir, "/var/lib/ingestd");
	ASSERT_TRUE(c->conninfo == NULL);
	ASSERT_TRUE(c->pg_bindir == NULL);
	ASSERT_EQ(c->insecure_transport, false);
	ASSERT_EQ(c->workers, 2);
	ASSERT_EQ(c->poll_interval, 300);
	ASSERT_EQ(c->max_connections_per_host, 32);
	ASSERT_EQ(c->connect_timeout, 30);
	ASSERT_EQ(c->command_timeout, 120);
	ASSERT_EQ(c->session_timeout, 21600);
	ASSERT_EQ(c->zstd_level, 3);
	ASSERT_EQ(c->spool_mem, 65536);
	ASSERT_EQ(c->spool_min_free, 100ULL * 1024 * 1024);
	ASSERT_EQ(c->max_message_size, 512ULL * 1024 * 1024);
	ASSERT_EQ(c->list_size_factor, 2);
	ASSERT_EQ(c->list_size_slack, 1024 * 1024);
	ASSERT_EQ(c->batch_max, 256);
	ASSERT_EQ(c->dictionary_after, 1000);
	ASSERT_EQ(c->naccounts, 2);
	a = &c->accounts[0];
	ASSERT_EQ(a->port, 995);
	ASSERT_EQ(a->tls, CONF_TLS_IMPLICIT);
	ASSERT_TRUE(a->ca_file == NULL);
	ASSERT_EQ(a->allow_plaintext, false);
	ASSERT_EQ(a->auth, CONF_AUTH_AUTO);
	ASSERT_EQ(a->delete, CONF_DELETE_AFTER_ARCHIVE);
	ASSERT_EQ(a->enabled, true);
	ASSERT_WHERE(a, 1);
	/* STLS is spoken on the plain POP3 port. */
	ASSERT_EQ(c->accounts[1].port, 110);
	ASSERT_WHERE(&c->accounts[1], 2);
	conf_free(&c);

	/* An empty database group keeps the embedded cluster. */
	write_conf("database = { };\naccounts = ( { " ACCOUNT " } );\n");
	c = load_ok();
	ASSERT_TRUE(c->conninfo == NULL);
	conf_free(&c);
}

static void
test_purge_and_retention(void)
{
	struct conf *c;
	const char *err;

	write_conf("accounts = ( { " ACCOUNT " } );\n");
	c = load_ok();
	ASSERT_EQ(c->purge_approvals, 1);
	ASSERT_STREQ(c->cooling_off, "30d");
	conf_free(&c);
	write_conf("purge = { approvals = 2; };\n"
		   "retention = { cooling_off = \"0d\"; };\n"
		   "accounts = ( { " ACCOUNT " } );\n");
	c = load_ok();
	ASSERT_EQ(c->purge_approvals, 2);
	ASSERT_STREQ(c->cooling_off, "0d");
	conf_free(&c);
	write_conf("purge = { approvals = 3; };\n"
		   "accounts = ( { " ACCOUNT " } );\n");
	err = load_refused();
	ASSERT_TRUE(strstr(err, "purge.approvals") != NULL);
	write_conf("retention = {\n cooling_off = \"7x\"; };\n"
		   "accounts = ( { " ACCOUNT " } );\n");
	err = load_refused();
	ASSERT_TRUE(strstr(err, ":2: 'retention.cooling_off': period '7x': "
				"expected a number followed by d, w, m or "
				"y") != NULL);
}

static void
test_password_file_first_line(void)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{ "pw", "pw" },
		{ "pw\n", "pw" },
		{ "pw\r\n", "pw" },
		{ "pw\r\nsecond\r\n", "pw" },
		{ "pw\nsecond", "pw" },
		{ "with space\tand tab \n", "with space\tand tab " },
		{ "\"quoted\";#\n", "\"quoted\";#" },
	};
	const char *err;
	char *big;
	struct conf *c;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const char *pwf = write_file("a.pw", 0600, cases[i].text);

		write_conf("accounts = ( { name = \"a\"; host = \"h\"; "
		    "user = \"u\"; password_file = \"%s\"; } );\n", pwf);
		c = load_ok();
		ASSERT_STREQ(c->accounts[0].password, cases[i].want);
		conf_free(&c);
	}

	/* A long password is kept whole, not cut at a buffer's size... */
	big = xmalloc(4098);
	memset(big, 'k', 4096);
	big[4096] = '\n';
	big[4097] = '\0';
	write_conf("accounts = ( { name = \"a\"; host = \"h\"; user = \"u\";"
	    " password_file = \"%s\"; } );\n", write_file("a.pw", 0600, big));
	c = load_ok();
	big[4096] = '\0';
	ASSERT_STREQ(c->accounts[0].password, big);
	conf_free(&c);

	/* ...and a longer one, or a file with no line end, is refused. */
	big[4096] = 'k';
	write_conf("accounts = (\n  { name = \"a\"; host = \"h\"; user = \"u\";"
	    " password_file = \"%s\"; } );\n", write_file("a.pw", 0600, big));
	err = load_refused();
	ASSERT_AT(err, 2);
	ASSERT_CONTAINS(err, "'accounts[0].password_file' \"");
	ASSERT_CONTAINS(err, "its first line is longer than 4096 bytes");
	free(big); big = NULL;

	/* A character device that never ends a line. */
	write_conf("accounts = ( { name = \"a\"; host = \"h\"; user = \"u\";"
	    " password_file = \"/dev/zero\"; } );\n");
	ASSERT_CONTAINS(load_refused(), "is longer than 4096 bytes");

	write_conf("accounts = ( { name = \"a\"; host = \"h\"; user = \"u\";"
	    " password_file = \"%s\"; } );\n",
	    write_file("a.pw", 0600, "p\x01w\n"));
	c = load_ok();
	ASSERT_STREQ(c->accounts[0].password, "p\x01w");
	conf_free(&c);
}

static void
test_unknown_top_level_key(void)
{
	const char *err;

	write_conf("workers = 2;\n"
	    "# a comment\n"
	    "wrokers = 3;\n"
	    "accounts = ( { " ACCOUNT " } );\n");
	err = load_refused();
	ASSERT_AT(err, 3);
	ASSERT_CONTAINS(err, "unknown setting 'wrokers'; the settings here "
	    "are state_dir, workers, poll_interval, ");
	ASSERT_CONTAINS(err, ", database, accounts");

	/* A group of ours misplaced at the top is unknown there too. */
	write_conf("accounts = ( { " ACCOUNT " } );\nname = \"x\";\n");
	err = load_refused();
	ASSERT_AT(err, 2);
	ASSERT_CONTAINS(err, "unknown setting 'name'");
}

static void
test_unknown_account_key(void)
{
	const char *err;

	write_conf("workers = 2;\n"
	    "accounts = (\n"
	    "  { " ACCOUNT " },\n"
	    "  { name = \"support\";\n"
	    "    hots = \"pop.example.com\";\n"
	    "    user = \"u\"; password = \"p\"; }\n"
	    ");\n");
	err = load_refused();
	ASSERT_AT(err, 5);
	ASSERT_CONTAINS(err, "unknown setting 'accounts[1].hots'; the settings "
	    "here are name, host, port, tls, ");
}

static void
test_unknown_database_key(void)
{
	const char *err;

	write_conf("database = {\n  conninfo = \"dbname=x\";\n"
	    "  conn_info = \"dbname=y\";\n};\n"
	    "accounts = ( { " ACCOUNT " } );\n");
	err = load_refused();
	ASSERT_AT(err, 3);
	ASSERT_CONTAINS(err, "unknown setting 'database.conn_info'; the "
	    "settings here are conninfo, pg_bindir, insecure_transport");
}

static void
test_ledger_settings(void)
{
	struct conf *c;
	const char *err;

	/* The key need not exist yet: ledger keygen writes it. */
	write_conf("ledger = { signing_key = \"/nonexistent/ledger.key\";\n"
	    "  key_name = \"archive.example.com/ingestd\"; };\n"
	    "accounts = ( { " ACCOUNT " } );\n");
	c = load_ok();
	ASSERT_STREQ(c->ledger_signing_key, "/nonexistent/ledger.key");
	ASSERT_STREQ(c->ledger_key_name, "archive.example.com/ingestd");
	ASSERT_EQ(c->ledger_checkpoint_interval, 300);
	ASSERT_TRUE(c->ledger_checkpoint_command == NULL);
	conf_free(&c);

	write_conf("ledger = { signing_key = \"/k\"; };\n"
	    "accounts = ( { " ACCOUNT " } );\n");
	err = load_refused();
	ASSERT_CONTAINS(err, "'ledger.key_name' is required with "
	    "'ledger.signing_key'");

	write_conf("ledger = {\n  key_name = \"a b\"; };\n"
	    "accounts = ( { " ACCOUNT " } );\n");
	err = load_refused();
	ASSERT_AT(err, 2);
	ASSERT_CONTAINS(err, "'ledger.key_name' \"a b\" may hold no spaces");

	write_conf("ledger = {\n  checkpoint_interval = -1; };\n"
	    "accounts = ( { " ACCOUNT " } );\n");
	err = load_refused();
	ASSERT_CONTAINS(err, "'ledger.checkpoint_interval' is -1");
}

static void
test_wrong_type(void)
{
	const char *err;

	err = refuse_account(ACCOUNT "\n    port = \"995\";");
	ASSERT_AT(err, 3);
	ASSERT_CONTAINS(err, "'accounts[0].port' must be a whole number");

	write_conf("workers = 2.5;\naccounts = ( { " ACCOUNT " } );\n");
	err = load_refused();
	ASSERT_AT(err, 1);
	ASSERT_CONTAINS(err, "'workers' must be a whole number");

	err = refuse_account(ACCOUNT "\n    enabled = \"yes\";");
	ASSERT_AT(err, 3);
	ASSERT_CONTAINS(err, "'accounts[0].enabled' must be true or false");

	err = refuse_account("name = 5; host = \"h\"; user = \"u\"; "
	    "password = \"p\";");
	ASSERT_AT(err, 2);
	ASSERT_CONTAINS(err,
	    "'accounts[0].name' must be a string in double quotes");

	err = refuse_account(ACCOUNT " allow_plaintext = 1;");
	ASSERT_CONTAINS(err,
	    "'accounts[0].allow_plaintext' must be true or false");

	err = refuse_account(ACCOUNT " tls = 1;");
	ASSERT_CONTAINS(err, "'accounts[0].tls' must be one of");

	write_conf("state_dir = [ \"/a\", \"/b\" ];\n"
	    "accounts = ( { " ACCOUNT " } );\n");
	err = load_refused();
	ASSERT_AT(err, 1);
	ASSERT_CONTAINS(err, "'state_dir' must be a string in double quotes");

	write_conf("database = \"dbname=x\";\n"
	    "accounts = ( { " ACCOUNT " } );\n");
	err = load_refused();
	ASSERT_AT(err, 1);
	ASSERT_CONTAINS(err, "'database' must be a group");

	write_conf("database = { conninfo = 5; };\n"
	    "accounts = ( { " ACCOUNT " } );\n");
	err = load_refused();
	ASSERT_AT(err, 1);
	ASSERT_CONTAINS(err, "'database.conninfo' must be a string");

	write_conf("accounts = { " ACCOUNT " };\n");
	err = load_refused();
	ASSERT_AT(err, 1);
	ASSERT_CONTAINS(err, "'accounts' must be a list");

	/*
	 * libconfig 1.5 gives a scalar in a list the line of the token
	 * after it, so the list ends on the same line here.
	 */
	write_conf("accounts = (\n  { " ACCOUNT " },\n  \"support\" );\n");
	err = load_refused();
	ASSERT_AT(err, 3);
	ASSERT_CONTAINS(err, "'accounts[1]' must be a group");

	write_conf("accounts = [ \"sales\" ];\n");
	err = load_refused();
	ASSERT_CONTAINS(err, "'accounts[0]' must be a group");
}

/* Sizes take a bare number of bytes or a string ending in K, M or G. */
static void
test_size_suffixes(void)
{
	struct conf *c;
	const char *err;

	write_conf("max_message_size = \"3G\";\nspool_min_free = \"512M\";\n"
	    "list_size_slack = \"64K\";\nlist_size_factor = 0;\n"
	    "spool_memory = 8192;\naccounts = ( { " ACCOUNT " } );\n");
	c = load_ok();
	ASSERT_EQ(c->max_message_size, 3ULL * 1024 * 1024 * 1024);
	ASSERT_EQ(c->spool_min_free, 512ULL * 1024 * 1024);
	ASSERT_EQ(c->list_size_slack, 64 * 1024);
	ASSERT_EQ(c->list_size_factor, 0);
	ASSERT_EQ(c->spool_mem, 8192);
	conf_free(&c);

	write_conf("spool_min_free = \"0\";\nlist_size_slack = 0;\n"
	    "accounts = ( { " ACCOUNT " } );\n");
	c = load_ok();
	ASSERT_EQ(c->spool_min_free, 0);
	ASSERT_EQ(c->list_size_slack, 0);
	conf_free(&c);

	write_conf("\nmax_message_size = \"512MB\";\n"
	    "accounts = ( { " ACCOUNT " } );\n");
	err = load_refused();
	ASSERT_AT(err, 2);
	ASSERT_CONTAINS(err, "'max_message_size' must be a whole number of "
	    "bytes, or one ending in K, M or G (KiB, MiB, GiB)");

	write_conf("max_message_size = \"2K\";\n"
	    "accounts = ( { " ACCOUNT " } );\n");
	err = load_refused();
	ASSERT_CONTAINS(err, "'max_message_size' is 2048; it must be from "
	    "4096");

	write_conf("spool_min_free = \"99999999999999999999G\";\n"
	    "accounts = ( { " ACCOUNT " } );\n");
	err = load_refused();
	ASSERT_CONTAINS(err, "'spool_min_free' must be a whole number");

	write_conf("spool_min_free = \"-1\";\n"
	    "accounts = ( { " ACCOUNT " } );\n");
	err = load_refused();
	ASSERT_CONTAINS(err, "'spool_min_free' must be a whole number");
}

static void
test_out_of_range(void)
{
	const char *err;
	struct conf *c;

	err = refuse_account(ACCOUNT "\n    port = 0;");
	ASSERT_AT(err, 3);
	ASSERT_CONTAINS(err,
	    "'accounts[0].port' is 0; it must be from 1 to 65535");

	err = refuse_account(ACCOUNT "\n    port = 70000;");
	ASSERT_AT(err, 3);
	ASSERT_CONTAINS(err,
	    "'accounts[0].port' is 70000; it must be from 1 to 65535");

	/* A 64-bit value is not truncated into range. */
	err = refuse_account(ACCOUNT " port = 4294968291L;");
	ASSERT_CONTAINS(err, "'accounts[0].port' is 4294968291;");

	err = refuse_account(ACCOUNT " port = -995;");
	ASSERT_CONTAINS(err, "'accounts[0].port' is -995;");

	write_conf("\nworkers = 0;\naccounts = ( { " ACCOUNT " } );\n");
	err = load_refused();
	ASSERT_AT(err, 2);
	ASSERT_CONTAINS(err, "'workers' is 0; it must be from 1 to 256");

	write_conf("spool_memory = 4095;\naccounts = ( { " ACCOUNT " } );\n");
	err = load_refused();
	ASSERT_CONTAINS(err, "'spool_memory' is 4095; it must be from 4096");

	write_conf("zstd_level = 20;\naccounts = ( { " ACCOUNT " } );\n");
	err = load_refused();
	ASSERT_CONTAINS(err, "'zstd_level' is 20; it must be from 1 to 19");

	write_conf("dictionary_after = -1;\naccounts = ( { " ACCOUNT " } );\n");
	err = load_refused();
	ASSERT_CONTAINS(err, "'dictionary_after' is -1; it must be from 0");

	/* The bounds themselves are accepted, in any integer notation. */
	write_conf("workers = 256; poll_interval = 0x1;\n"
	    "accounts = ( { " ACCOUNT " port = 65535; },\n"
	    "  { name = \"b\"; host = \"h\"; user = \"u\"; password = \"p\";"
	    " port = 1L; } );\n");
	c = load_ok();
	ASSERT_EQ(c->workers, 256);
	ASSERT_EQ(c->poll_interval, 1);
	ASSERT_EQ(c->accounts[0].port, 65535);
	ASSERT_EQ(c->accounts[1].port, 1);
	conf_free(&c);
}

/* delete = { ... }: rules by presence, sizes with suffixes, errors. */
static void
test_delete_policy(void)
{
	const struct conf_account *a;
	const char *err;
	struct conf *c;

	write_conf("accounts = ( { " ACCOUNT "\n"
	    "  delete = { after_days = 14; keep_under = \"80M\";\n"
	    "    max_messages = 0; max_bytes = 1000; }; },\n"
	    "  { name = \"b\"; host = \"h\"; user = \"u\"; password = \"p\";"
	    " delete = { older_than_days = 365; bigger_than = \"5K\"; }; },\n"
	    "  { name = \"c\"; host = \"h\"; user = \"u\"; password = \"p\";"
	    " delete = \"never\"; } );\n");
	c = load_ok();
	a = &c->accounts[0];
	ASSERT_EQ(a->delete, CONF_DELETE_POLICY);
	ASSERT_EQ(a->policy.rules, DELETE_R_AFTER_DAYS | DELETE_R_KEEP_UNDER |
	    DELETE_R_MAX_MESSAGES | DELETE_R_MAX_BYTES);
	ASSERT_EQ(a->policy.after_days, 14);
	ASSERT_EQ(a->policy.keep_under, 80 * 1024 * 1024);
	ASSERT_EQ(a->policy.max_messages, 0);
	ASSERT_EQ(a->policy.max_bytes, 1000);
	a = &c->accounts[1];
	ASSERT_EQ(a->delete, CONF_DELETE_POLICY);
	ASSERT_EQ(a->policy.rules, DELETE_R_OLDER_THAN | DELETE_R_BIGGER_THAN);
	ASSERT_EQ(a->policy.older_than_days, 365);
	ASSERT_EQ(a->policy.bigger_than, 5 * 1024);
	ASSERT_EQ(c->accounts[2].delete, CONF_DELETE_NEVER);
	ASSERT_EQ(c->accounts[2].policy.rules, 0);
	conf_free(&c);

	/* A group with caps alone deletes nothing: refused, not "never". */
	err = refuse_account(ACCOUNT "\n    delete = { max_messages = 5; };");
	ASSERT_AT(err, 3);
	ASSERT_CONTAINS(err, "'accounts[0].delete' has no rule: give "
	    "after_days, older_than_days, bigger_than or keep_under");
	err = refuse_account(ACCOUNT "\n    delete = { };");
	ASSERT_CONTAINS(err, "'accounts[0].delete' has no rule");

	err = refuse_account(ACCOUNT "\n    delete = {\n"
	    "      keep_under = \"80MB\"; };");
	ASSERT_AT(err, 4);
	ASSERT_CONTAINS(err, "'accounts[0].delete.keep_under' must be a whole "
	    "number of bytes, or one ending in K, M or G");
	err = refuse_account(ACCOUNT "\n    delete = { after_days = -1; };");
	ASSERT_AT(err, 3);
	ASSERT_CONTAINS(err, "'accounts[0].delete.after_days' is -1; it must "
	    "be from 0 to 36500");
	err = refuse_account(ACCOUNT "\n    delete = { after_day = 3; };");
	ASSERT_AT(err, 3);
	ASSERT_CONTAINS(err, "unknown setting 'accounts[0].delete.after_day'; "
	    "the settings here are after_days, older_than_days");
	err = refuse_account(ACCOUNT "\n    delete = { bigger_than = 1.5; };");
	ASSERT_CONTAINS(err, "'accounts[0].delete.bigger_than' must be a whole "
	    "number");
}

static void
test_invalid_choice(void)
{
	const char *err;

	err = refuse_account(ACCOUNT "\n    tls = \"ssl\";");
	ASSERT_AT(err, 3);
	ASSERT_CONTAINS(err, "'accounts[0].tls' must be one of \"implicit\", "
	    "\"starttls\", \"none\"");

	err = refuse_account(ACCOUNT "\n    auth = \"login\";");
	ASSERT_AT(err, 3);
	ASSERT_CONTAINS(err, "'accounts[0].auth' must be one of \"auto\", "
	    "\"user\", \"apop\", \"plain\"");

	err = refuse_account(ACCOUNT "\n\n    delete = \"always\";");
	ASSERT_AT(err, 4);
	ASSERT_CONTAINS(err, "'accounts[0].delete' must be one of "
	    "\"after-archive\", \"never\", a group { ... }");

	/* Choices are exact: no case folding. */
	err = refuse_account(ACCOUNT " tls = \"IMPLICIT\";");
	ASSERT_CONTAINS(err, "'accounts[0].tls' must be one of");
}

static void
test_missing_required(void)
{
	static const struct {
		const char *settings, *want;
	} cases[] = {
		{ "host = \"h\"; user = \"u\"; password = \"p\";",
		    "'accounts[1].name' is required" },
		{ "name = \"\"; host = \"h\"; user = \"u\"; password = \"p\";",
		    "'accounts[1].name' is required" },
		{ "name = \"b\"; user = \"u\"; password = \"p\";",
		    "'accounts[1].host' is required" },
		{ "name = \"b\"; host = \"h\"; password = \"p\";",
		    "'accounts[1].user' is required" },
		{ "name = \"b\"; host = \"h\"; user = \"u\";",
		    "'accounts[1].password' or 'accounts[1].password_file' "
		    "is required" },
	};
	const char *err;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		write_conf("accounts = (\n  { " ACCOUNT " },\n"
		    "  { %s }\n);\n", cases[i].settings);
		err = load_refused();
		ASSERT_AT(err, 3);
		ASSERT_CONTAINS(err, cases[i].want);
	}
}

static void
test_password_and_password_file(void)
{
	const char *pwf = write_file("both.pw", 0600, "pw\n");
	const char *err;

	write_conf("accounts = (\n  { name = \"a\"; host = \"h\"; "
	    "user = \"u\"; password = \"p\";\n    password_file = \"%s\"; }\n"
	    ");\n", pwf);
	err = load_refused();
	ASSERT_AT(err, 3);
	ASSERT_CONTAINS(err, "'accounts[0].password_file': set 'password' or "
	    "'password_file', not both");
}

static void
test_missing_password_file(void)
{
	const char *missing = path_of("missing.pw");
	char want[512];
	const char *err;

	write_conf("accounts = (\n  { name = \"a\"; host = \"h\"; "
	    "user = \"u\";\n    password_file = \"%s\"; }\n);\n", missing);
	err = load_refused();
	ASSERT_AT(err, 3);
	snprintf(want, sizeof(want), "'accounts[0].password_file': cannot "
	    "read %s as %s: %s", missing, who(), strerror(ENOENT));
	ASSERT_CONTAINS(err, want);

	/* A directory opens, but it is no password file. */
	write_conf("accounts = (\n  { name = \"a\"; host = \"h\"; "
	    "user = \"u\";\n    password_file = \"%s\"; }\n);\n", tmpdir);
	err = load_refused();
	ASSERT_AT(err, 3);
	snprintf(want, sizeof(want), "'accounts[0].password_file': cannot "
	    "read %s as %s: %s", tmpdir, who(), strerror(EISDIR));
	ASSERT_CONTAINS(err, want);

	write_conf("accounts = ( { name = \"a\"; host = \"h\"; user = \"u\"; "
	    "password_file = 7; } );\n");
	err = load_refused();
	ASSERT_CONTAINS(err, "'accounts[0].password_file' must be a string");
}

static void
test_empty_password(void)
{
	const char *err, *pwf;
	char want[512];

	pwf = write_file("empty.pw", 0600, "");
	write_conf("accounts = ( { name = \"a\"; host = \"h\"; user = \"u\"; "
	    "password_file = \"%s\"; } );\n", pwf);
	err = load_refused();
	ASSERT_AT(err, 1);
	snprintf(want, sizeof(want), "'accounts[0].password_file' \"%s\" is "
	    "empty", pwf);
	ASSERT_CONTAINS(err, want);

	/* A blank first line is a mistake, not an empty password. */
	pwf = write_file("empty.pw", 0600, "\r\nsecret\n");
	write_conf("accounts = ( { name = \"a\"; host = \"h\"; user = \"u\"; "
	    "password_file = \"%s\"; } );\n", pwf);
	err = load_refused();
	ASSERT_AT(err, 1);
	snprintf(want, sizeof(want), "'accounts[0].password_file' \"%s\": its "
	    "first line is empty", pwf);
	ASSERT_CONTAINS(err, want);

	/* A NUL would cut the password short wherever it is used. */
	pwf = write_bytes("nul.pw", 0600, "p\0w\n", 4);
	write_conf("accounts = ( { name = \"a\"; host = \"h\"; user = \"u\"; "
	    "password_file = \"%s\"; } );\n", pwf);
	snprintf(want, sizeof(want), "'accounts[0].password_file' \"%s\": its "
	    "first line holds a NUL byte", pwf);
	ASSERT_CONTAINS(load_refused(), want);

	err = refuse_account("name = \"a\"; host = \"h\"; user = \"u\";\n"
	    "    password = \"\";");
	ASSERT_AT(err, 3);
	ASSERT_CONTAINS(err, "'accounts[0].password' is empty");
}

static void
test_unreadable_ca_file(void)
{
	const char *missing = path_of("missing-ca.pem");
	char want[512];
	const char *err;

	write_conf("accounts = (\n  { " ACCOUNT "\n    ca_file = \"%s\"; }\n"
	    ");\n", missing);
	err = load_refused();
	ASSERT_AT(err, 3);
	snprintf(want, sizeof(want), "'accounts[0].ca_file': cannot read %s "
	    "as %s: %s", missing, who(), strerror(ENOENT));
	ASSERT_CONTAINS(err, want);

	/* Readable, but a directory: TLS set-up would fail later. */
	write_conf("accounts = (\n  { " ACCOUNT "\n    ca_file = \"%s\"; }\n"
	    ");\n", tmpdir);
	err = load_refused();
	ASSERT_AT(err, 3);
	snprintf(want, sizeof(want), "'accounts[0].ca_file': cannot read %s "
	    "as %s: %s", tmpdir, who(), strerror(EISDIR));
	ASSERT_CONTAINS(err, want);
}

/*
 * Mode 000 stops every user but root, so as root the check runs in a
 * child that has become nobody.
 */
static void
test_unreadable_as_other_user(void)
{
	struct passwd *pw = NULL;
	char ca[256], pwf[256], want[512];
	const char *err;
	int status;
	pid_t pid;

	snprintf(ca, sizeof(ca), "%s", write_file("locked-ca.pem", 0, "x\n"));
	snprintf(pwf, sizeof(pwf), "%s", write_file("locked.pw", 0, "x\n"));
	conf_name = "ca.conf";
	write_conf("accounts = (\n  { " ACCOUNT "\n"
	    "    ca_file = \"%s\"; }\n);\n", ca);
	ASSERT_TRUE(chmod(conf_path(), 0644) == 0);
	conf_name = "pw.conf";
	write_conf("accounts = (\n  { name = \"a\"; host = \"h\"; "
	    "user = \"u\";\n    password_file = \"%s\"; }\n);\n", pwf);
	ASSERT_TRUE(chmod(conf_path(), 0644) == 0);
	conf_name = "locked.conf";
	write_conf("accounts = ( { " ACCOUNT " } );\n");
	ASSERT_TRUE(chmod(conf_path(), 0000) == 0);
	conf_name = "ingestd.conf";
	if (geteuid() == 0) {
		if ((pw = getpwnam("nobody")) == NULL)
			TEST_FAIL_("no user nobody to test mode 000 as");
		ASSERT_TRUE(chmod(tmpdir, 0755) == 0);
	}
	fflush(NULL);
	if ((pid = fork()) == -1)
		TEST_FAIL_("fork: %s", strerror(errno));
	if (pid == 0) {
		if (pw != NULL && (setgid(pw->pw_gid) == -1 ||
		    setuid(pw->pw_uid) == -1))
			TEST_FAIL_("setuid nobody: %s", strerror(errno));
		/* Each message says as whom the file could not be read. */
		if (pw != NULL) {
			snprintf(want, sizeof(want), "user nobody (uid %u)",
			    (unsigned)pw->pw_uid);
			ASSERT_STREQ(who(), want);
		}
		conf_name = "ca.conf";
		err = load_refused();
		ASSERT_AT(err, 3);
		snprintf(want, sizeof(want), "'accounts[0].ca_file': cannot "
		    "read %s as %s: %s", ca, who(), strerror(EACCES));
		ASSERT_CONTAINS(err, want);

		conf_name = "pw.conf";
		err = load_refused();
		ASSERT_AT(err, 3);
		snprintf(want, sizeof(want), "'accounts[0].password_file': "
		    "cannot read %s as %s: %s", pwf, who(), strerror(EACCES));
		ASSERT_CONTAINS(err, want);

		conf_name = "locked.conf";
		err = load_refused();
		snprintf(want, sizeof(want), "cannot read %s as %s: %s",
		    conf_path(), who(), strerror(EACCES));
		ASSERT_STREQ(err, want);
		_exit(0);
	}
	ASSERT_TRUE(waitpid(pid, &status, 0) == pid);
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ASSERT_TRUE(chmod(tmpdir, 0700) == 0);
}

static void
test_duplicate_account_name(void)
{
	char want[512];
	const char *err;

	write_conf("accounts = (\n"
	    "  { " ACCOUNT " },\n"
	    "  { name = \"support\"; host = \"h\"; user = \"u\";"
	    " password = \"p\"; },\n"
	    "\n"
	    "  { " ACCOUNT " }\n"
	    ");\n");
	err = load_refused();
	ASSERT_AT(err, 5);
	snprintf(want, sizeof(want), "'accounts[2].name' \"sales\" is used "
	    "twice (also at %s:2)", conf_path());
	ASSERT_CONTAINS(err, want);
}

static void
test_plaintext_needs_allow(void)
{
	const char *err;
	struct conf *c;

	err = refuse_account(ACCOUNT "\n    tls = \"none\";");
	ASSERT_AT(err, 3);
	ASSERT_CONTAINS(err, "'accounts[0].tls' is \"none\", which sends the "
	    "password in clear; it is refused unless allow_plaintext = true");

	err = refuse_account(ACCOUNT " tls = \"none\"; "
	    "allow_plaintext = false;");
	ASSERT_CONTAINS(err, "refused unless allow_plaintext = true");

	/* allow_plaintext alone changes nothing for TLS accounts. */
	write_conf("accounts = ( { " ACCOUNT " allow_plaintext = true; } );\n");
	c = load_ok();
	ASSERT_EQ(c->accounts[0].tls, CONF_TLS_IMPLICIT);
	ASSERT_EQ(c->accounts[0].allow_plaintext, true);
	conf_free(&c);
}

static void
test_syntax_error(void)
{
	const char *err;

	/* libconfig's own message and line; a missing ';' is allowed. */
	write_conf("workers = 2\npoll_interval 300;\n"
	    "accounts = ( { " ACCOUNT " } );\n");
	err = load_refused();
	ASSERT_AT(err, 2);
	ASSERT_CONTAINS(err, "syntax error");

	write_conf("accounts = (\n  { " ACCOUNT "\n);\n");
	err = load_refused();
	ASSERT_AT(err, 3);
	ASSERT_CONTAINS(err, "syntax error");

	write_conf("workers = 2;\n\nworkers = 3;\n"
	    "accounts = ( { " ACCOUNT " } );\n");
	err = load_refused();
	ASSERT_AT(err, 3);
	ASSERT_CONTAINS(err, "duplicate setting name");

	write_conf("accounts = ( { " ACCOUNT " name = \"b\"; } );\n");
	err = load_refused();
	ASSERT_AT(err, 1);
	ASSERT_CONTAINS(err, "duplicate setting name");

	/* An unterminated string. */
	write_conf("state_dir = \"/var/lib\n");
	err = load_refused();
	ASSERT_TRUE(strncmp(err, conf_path(), strlen(conf_path())) == 0);
	ASSERT_CONTAINS(err, "syntax error");
}

/* Loads the config file; returns what it logged. */
static const char *
load_logged(void)
{
	static char out[4096];
	struct conf *c;

	capture_begin();
	c = conf_load(conf_path(), errbuf, sizeof(errbuf));
	capture_end(out, sizeof(out));
	ASSERT_TRUE(c != NULL);
	conf_free(&c);
	return out;
}

/*
 * Mode 640 is private when the file's group holds only root, the user
 * ingestd runs as, or the user whose own group it is: root:ingestd is how
 * the service reads its config, while root may run `ingestd check`.
 * As root, the config file (holding a password) changes hands.
 */
static void
permissions_by_owner_and_group(void)
{
	struct passwd *nobody = getpwnam("nobody"), *pw;
	struct group *gr;
	char want[512];

	if (nobody == NULL)
		TEST_FAIL_("no user nobody to own files as");
	ASSERT_TRUE(chmod(conf_path(), 0640) == 0);
	ASSERT_TRUE(chown(conf_path(), 0, 0) == 0);
	ASSERT_STREQ(load_logged(), "");

	/* A group whose name is not nobody's own: nobody (and others). */
	ASSERT_TRUE((gr = getgrgid(nobody->pw_gid)) != NULL);
	if (strcmp(gr->gr_name, "nobody") == 0)
		TEST_FAIL_("nobody's group is called nobody: pick another");
	ASSERT_TRUE(chown(conf_path(), 0, nobody->pw_gid) == 0);
	snprintf(want, sizeof(want), "readable by other users: group %s, "
	    "which has user ", gr->gr_name);
	ASSERT_CONTAINS(load_logged(), want);
	ASSERT_CONTAINS(load_logged(), " (mode 640); give it mode 600");

	/* Owned by another user. */
	ASSERT_TRUE(chmod(conf_path(), 0600) == 0);
	ASSERT_TRUE(chown(conf_path(), nobody->pw_uid, 0) == 0);
	ASSERT_CONTAINS(load_logged(), "readable by other users: its owner, "
	    "user nobody (mode 600)");

	/* A user's own group, of the same name, as with root:ingestd. */
	setpwent();
	while ((pw = getpwent()) != NULL)
		if (pw->pw_uid != 0 && (gr = getgrgid(pw->pw_gid)) != NULL &&
		    strcmp(gr->gr_name, pw->pw_name) == 0 &&
		    gr->gr_mem[0] == NULL)
			break;
	if (pw != NULL) {
		ASSERT_TRUE(chmod(conf_path(), 0640) == 0);
		ASSERT_TRUE(chown(conf_path(), 0, pw->pw_gid) == 0);
		ASSERT_STREQ(load_logged(), "");
	}
	endpwent();
	ASSERT_TRUE(chown(conf_path(), 0, 0) == 0);
}

static void
test_permissions_warning(void)
{
	char out[4096], want[512];
	const char *pwf;
	struct conf *c;

	write_conf("accounts = ( { " ACCOUNT " } );\n");
	ASSERT_TRUE(chmod(conf_path(), 0644) == 0);
	capture_begin();
	c = conf_load(conf_path(), errbuf, sizeof(errbuf));
	capture_end(out, sizeof(out));
	ASSERT_TRUE(c != NULL);
	conf_free(&c);
	ASSERT_CONTAINS(out, "warning");
	snprintf(want, sizeof(want), "%s holds passwords and is readable by "
	    "other users: every user (mode 644); give it mode 600, or mode "
	    "640 and a group only ingestd's user is in\n", conf_path());
	ASSERT_CONTAINS(out, want);

	if (geteuid() == 0)
		permissions_by_owner_and_group();

	/* 0600: silent. */
	ASSERT_TRUE(chmod(conf_path(), 0600) == 0);
	capture_begin();
	c = conf_load(conf_path(), errbuf, sizeof(errbuf));
	capture_end(out, sizeof(out));
	ASSERT_TRUE(c != NULL);
	conf_free(&c);
	ASSERT_STREQ(out, "");

	/* A password in the database conninfo is a password too. */
	write_conf("database = { conninfo = \"dbname=x password=pg\"; };\n"
	    "accounts = ( { name = \"a\"; host = \"h\"; user = \"u\"; "
	    "password_file = \"%s\"; } );\n",
	    write_file("a.pw", 0600, "pw\n"));
	ASSERT_TRUE(chmod(conf_path(), 0644) == 0);
	capture_begin();
	c = conf_load(conf_path(), errbuf, sizeof(errbuf));
	capture_end(out, sizeof(out));
	conf_free(&c);
	ASSERT_CONTAINS(out, "holds passwords and is readable");

	/*
	 * Without a password in it, the config may be readable; the
	 * password file may not.
	 */
	pwf = write_file("a.pw", 0644, "pw\n");
	write_conf("accounts = ( { name = \"a\"; host = \"h\"; user = \"u\"; "
	    "password_file = \"%s\"; } );\n", pwf);
	ASSERT_TRUE(chmod(conf_path(), 0644) == 0);
	capture_begin();
	c = conf_load(conf_path(), errbuf, sizeof(errbuf));
	capture_end(out, sizeof(out));
	ASSERT_TRUE(c != NULL);
	conf_free(&c);
	snprintf(want, sizeof(want), "%s holds passwords and is readable by "
	    "other users: every user (mode 644)", pwf);
	ASSERT_CONTAINS(out, want);
	ASSERT_TRUE(strstr(out, conf_path()) == NULL);

	ASSERT_TRUE(chmod(pwf, 0600) == 0);
	capture_begin();
	c = conf_load(conf_path(), errbuf, sizeof(errbuf));
	capture_end(out, sizeof(out));
	ASSERT_TRUE(c != NULL);
	conf_free(&c);
	ASSERT_STREQ(out, "");

	/* A refused config is not also warned about. */
	write_conf("accounts = ( { " ACCOUNT " port = 0; } );\n");
	ASSERT_TRUE(chmod(conf_path(), 0644) == 0);
	capture_begin();
	c = conf_load(conf_path(), errbuf, sizeof(errbuf));
	capture_end(out, sizeof(out));
	ASSERT_TRUE(c == NULL);
	ASSERT_STREQ(out, "");
}

static void
test_no_accounts(void)
{
	const char *err;

	write_conf("workers = 2;\naccounts = ( );\n");
	err = load_refused();
	ASSERT_AT(err, 2);
	ASSERT_CONTAINS(err, "'accounts' is empty");

	write_conf("workers = 2;\naccounts = [ ];\n");
	err = load_refused();
	ASSERT_CONTAINS(err, "'accounts' is empty");

	/* No line to point at: the file as a whole lacks it. */
	write_conf("workers = 2;\n");
	err = load_refused();
	ASSERT_CONTAINS(err, conf_path());
	ASSERT_CONTAINS(err, ": 'accounts' is required");

	write_conf("%s", "");
	err = load_refused();
	ASSERT_CONTAINS(err, "'accounts' is required");
}

static void
test_not_a_config_file(void)
{
	const char *missing = path_of("missing.conf");
	char want[512];
	struct conf *c;

	snprintf(errbuf, sizeof(errbuf), "(no message)");
	c = conf_load(tmpdir, errbuf, sizeof(errbuf));
	ASSERT_TRUE(c == NULL);
	snprintf(want, sizeof(want), "cannot read %s as %s: %s", tmpdir,
	    who(), strerror(EISDIR));
	ASSERT_STREQ(errbuf, want);

	c = conf_load(missing, errbuf, sizeof(errbuf));
	ASSERT_TRUE(c == NULL);
	snprintf(want, sizeof(want), "cannot read %s as %s: %s", missing,
	    who(), strerror(ENOENT));
	ASSERT_STREQ(errbuf, want);

	/* Binary junk is a syntax error, not a crash. */
	write_file("ingestd.conf", 0600, "\x7f" "ELF\x02\x01\x01");
	ASSERT_CONTAINS(load_refused(), "syntax error");
}

static void
test_small_error_buffer(void)
{
	char small[16];
	struct conf *c;

	write_conf("accounts = ( { " ACCOUNT " port = 0; } );\n");
	memset(small, 'x', sizeof(small));
	c = conf_load(conf_path(), small, sizeof(small));
	ASSERT_TRUE(c == NULL);
	ASSERT_EQ(strlen(small), sizeof(small) - 1);
	ASSERT_TRUE(strncmp(small, conf_path(), sizeof(small) - 1) == 0);

	c = conf_load(path_of("missing.conf"), small, sizeof(small));
	ASSERT_TRUE(c == NULL);
	ASSERT_EQ(strlen(small), sizeof(small) - 1);
}

#define OACCOUNT                                                         \
	"name = \"o\"; host = \"h\"; user = \"box@example.com\"; "

static void
test_oauth_settings(void)
{
	const char *rt = write_file("o.rt", 0600, "rt\n");
	const char *cs = write_file("o.cs", 0600, "cs\n");
	struct conf *c;

	write_conf("accounts = (\n"
	    "  { " OACCOUNT "token_command = \"sh -c 'pass mail'\"; },\n"
	    "  { name = \"p\"; host = \"h\"; user = \"u\";\n"
	    "    auth = \"xoauth2\";\n"
	    "    oauth = { token_url = \"https://login.example/token\";\n"
	    "      client_id = \"app\"; refresh_token_file = \"%s\";\n"
	    "      scope = \"pop offline_access\"; }; },\n"
	    "  { name = \"q\"; host = \"h\"; user = \"u\"; token_timeout = 5;\n"
	    "    auth = \"oauthbearer\";\n"
	    "    oauth = { token_url = \"https://login.example/token\";\n"
	    "      client_id = \"app\"; client_secret_file = \"%s\";\n"
	    "      grant = \"client_credentials\"; ca_file = \"%s\"; }; }\n"
	    ");\n", rt, cs, cs);
	c = load_ok();
	ASSERT_EQ(c->naccounts, 3);
	ASSERT_STREQ(c->accounts[0].token_command, "sh -c 'pass mail'");
	ASSERT_TRUE(c->accounts[0].password == NULL);
	ASSERT_TRUE(!c->accounts[0].has_oauth);
	ASSERT_EQ(c->accounts[0].token_timeout, 30);
	ASSERT_TRUE(c->accounts[1].has_oauth);
	ASSERT_EQ(c->accounts[1].auth, CONF_AUTH_XOAUTH2);
	ASSERT_EQ(c->accounts[1].oauth_grant, CONF_GRANT_REFRESH_TOKEN);
	ASSERT_STREQ(c->accounts[1].oauth_refresh_token_file, rt);
	ASSERT_STREQ(c->accounts[1].oauth_scope, "pop offline_access");
	ASSERT_TRUE(c->accounts[1].oauth_client_secret_file == NULL);
	ASSERT_EQ(c->accounts[2].auth, CONF_AUTH_OAUTHBEARER);
	ASSERT_EQ(c->accounts[2].oauth_grant, CONF_GRANT_CLIENT_CREDENTIALS);
	ASSERT_EQ(c->accounts[2].token_timeout, 5);
	ASSERT_STREQ(c->accounts[2].oauth_ca_file, cs);
	conf_free(&c);
}

static void
test_oauth_refused(void)
{
	static const struct {
		const char *acct;
		int line;
		const char *msg;
	} cases[] = {
		{ "token_command = \"t\";\n  password = \"p\";", 3,
		  "'accounts[0].password': an account with an OAuth token "
		  "takes no password" },
		{ "token_command = \"  \";", 2,
		  "'accounts[0].token_command' is empty" },
		{ "auth = \"xoauth2\"; password = \"p\";", 2,
		  "'accounts[0].auth' is an OAuth mechanism: it needs "
		  "'accounts[0].token_command' or 'accounts[0].oauth'" },
		{ "token_command = \"t\"; auth = \"plain\";", 2,
		  "'accounts[0].auth': with an OAuth token, \"auto\", "
		  "\"xoauth2\" or \"oauthbearer\"" },
		{ "token_command = \"t\";\n  oauth = { client_id = \"c\"; };",
		  3,
		  "'accounts[0].oauth': set 'token_command' or 'oauth', not "
		  "both" },
		{ "oauth = { client_id = \"c\";\n"
		  "  refresh_token_file = \"%s\"; };", 2,
		  "'accounts[0].oauth.token_url' is required" },
		{ "oauth = { token_url = \"http://x/t\"; client_id = \"c\";\n"
		  "  refresh_token_file = \"%s\"; };", 2,
		  "'accounts[0].oauth.token_url' must be an https:// URL" },
		{ "oauth = { token_url = \"https://x/t\"; };", 2,
		  "'accounts[0].oauth.client_id' is required" },
		{ "oauth = { token_url = \"https://x/t\";\n"
		  "  client_id = \"c\"; };", 2,
		  "'accounts[0].oauth.refresh_token_file' is required with "
		  "grant = \"refresh_token\"" },
		{ "oauth = { token_url = \"https://x/t\"; client_id = \"c\";\n"
		  "  grant = \"client_credentials\"; };", 2,
		  "'accounts[0].oauth.client_secret_file' is required with "
		  "grant = \"client_credentials\"" },
		{ "oauth = { token_url = \"https://x/t\"; client_id = \"c\";\n"
		  "  grant = \"device\"; refresh_token_file = \"%s\"; };", 3,
		  "'accounts[0].oauth.grant'" },
		{ "oauth = { token_url = \"https://x/t\"; client_id = \"c\";\n"
		  "  refresh_token_file = \"%s\"; secret = \"x\"; };", 3,
		  "'accounts[0].oauth.secret'" },
		{ "oauth = { token_url = \"https://x/t\"; client_id = \"c\";\n"
		  "  refresh_token_file = \"/nonexistent/rt\"; };", 3,
		  "/nonexistent/rt" },
	};
	const char *rt = write_file("r.rt", 0600, "rt\n");
	char acct[512];
	const char *err, *at;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		/* "%s" in a case stands for the refresh token file. */
		if ((at = strstr(cases[i].acct, "%s")) != NULL)
			snprintf(acct, sizeof(acct), "%.*s%s%s",
			    (int)(at - cases[i].acct), cases[i].acct, rt,
			    at + 2);
		else
			snprintf(acct, sizeof(acct), "%s", cases[i].acct);
		write_conf("accounts = (\n  { " OACCOUNT "%s }\n);\n", acct);
		err = load_refused();
		ASSERT_AT(err, cases[i].line);
		ASSERT_CONTAINS(err, cases[i].msg);
	}
}

/* The sections as README.md and ingestd.8 mark their tables. */
static const struct {
	enum conf_section id;
	const char *marker;
} documented[] = {
	{ CONF_SECTION_TOP, "top" },
	{ CONF_SECTION_DATABASE, "database" },
	{ CONF_SECTION_LEDGER, "ledger" },
	{ CONF_SECTION_ACCOUNT, "accounts" },
	{ CONF_SECTION_PURGE, "purge" },
	{ CONF_SECTION_RETENTION, "retention" },
	{ CONF_SECTION_OAUTH, "oauth" },
	{ CONF_SECTION_DELETE, "delete" },
};

/* The value of number, bool or choice row r's field in base. */
static long long
field_value(const struct conf_setting *r, const void *base)
{
	const char *p = (const char *)base + r->offset;
	unsigned u;
	size_t z;
	bool b;
	int i;

	switch (r->type) {
	case CONF_T_UINT:
		memcpy(&u, p, sizeof(u));
		return u;
	case CONF_T_SIZE:
		memcpy(&z, p, sizeof(z));
		return (long long)z;
	case CONF_T_BOOL:
		memcpy(&b, p, sizeof(b));
		return b;
	default:
		memcpy(&i, p, sizeof(i));
		return i;
	}
}

static bool
is_number(const struct conf_setting *r)
{
	return r->type == CONF_T_INT || r->type == CONF_T_UINT ||
	    r->type == CONF_T_SIZE;
}

static bool
is_string(const struct conf_setting *r)
{
	return r->type == CONF_T_STRING || r->type == CONF_T_PATH ||
	    r->type == CONF_T_FILE;
}

/* The name of choice value v of row r. */
static const char *
choice_name(const struct conf_setting *r, long long v)
{
	const struct conf_choice *ch;

	for (ch = r->choices; ch->name != NULL; ch++)
		if (ch->value == v)
			return ch->name;
	TEST_FAIL_("'%s': no choice has the value %lld", r->name, v);
}

/* Row r's default as the manuals write it. */
static const char *
fmt_default(const struct conf_setting *r, char *buf, size_t len)
{
	if (r->flags & CONF_F_REQUIRED)
		snprintf(buf, len, "required");
	else if (r->def_doc != NULL)
		snprintf(buf, len, "%s", r->def_doc);
	else if (is_string(r))
		snprintf(buf, len, r->def_str ? "\"%s\"" : "none",
		    r->def_str);
	else if (is_number(r))
		snprintf(buf, len, "%lld", r->def);
	else if (r->type == CONF_T_BOOL)
		snprintf(buf, len, "%s", r->def ? "true" : "false");
	else if (r->type == CONF_T_CHOICE)
		snprintf(buf, len, "\"%s\"", choice_name(r, r->def));
	else if (r->type == CONF_T_GROUP)
		snprintf(buf, len, "{ }");
	else
		snprintf(buf, len, "( )");
	return buf;
}

/* What row r accepts, as the manuals write it. */
static const char *
fmt_accepts(const struct conf_setting *r, char *buf, size_t len)
{
	const struct conf_choice *ch;
	size_t n;

	switch (r->type) {
	case CONF_T_STRING:
		snprintf(buf, len, "text");
		break;
	case CONF_T_PATH:
		snprintf(buf, len, "a path");
		break;
	case CONF_T_FILE:
		snprintf(buf, len, "a readable file");
		break;
	case CONF_T_INT:
	case CONF_T_UINT:
	case CONF_T_SIZE:
		snprintf(buf, len, "%lld to %lld", r->min, r->max);
		break;
	case CONF_T_BOOL:
		snprintf(buf, len, "true, false");
		break;
	case CONF_T_CHOICE:
		buf[0] = '\0';
		for (ch = r->choices; ch->name != NULL; ch++) {
			n = strlen(buf);
			snprintf(buf + n, len - n, "%s\"%s\"", n ? ", " : "",
			    ch->name);
		}
		if (r->flags & CONF_F_OR_GROUP) {
			n = strlen(buf);
			snprintf(buf + n, len - n, ", { ... }");
		}
		break;
	case CONF_T_GROUP:
		snprintf(buf, len, "{ ... }");
		break;
	case CONF_T_LIST:
		snprintf(buf, len, "( { ... }, ... )");
		break;
	}
	return buf;
}

/* Every row is complete and consistent, and the loader gives its default. */
static void
test_settings_tables(void)
{
	const struct conf_setting *t, *r;
	enum conf_section id;
	struct conf *c;
	const void *base;
	size_t k, j, n;

	write_conf("accounts = ( { " ACCOUNT " } );\n");
	c = load_ok();
	for (id = 0; id < CONF_SECTION_COUNT; id++) {
		t = conf_settings(id, &n);
		ASSERT_TRUE(t != NULL && n > 0);
		base = id >= CONF_SECTION_ACCOUNT ?
		    (const void *)&c->accounts[0] : (const void *)c;
		for (k = 0; k < n; k++) {
			r = &t[k];
			ASSERT_TRUE(r->name != NULL && *r->name != '\0');
			for (j = 0; j < k; j++)
				if (strcmp(t[j].name, r->name) == 0)
					TEST_FAIL_("'%s' is in its table "
					    "twice", r->name);
			/* One line in a table cell and in roff. */
			ASSERT_TRUE(r->doc != NULL && *r->doc != '\0');
			ASSERT_TRUE(strpbrk(r->doc, "|\n\\") == NULL);
			ASSERT_TRUE(strchr(".'", r->doc[0]) == NULL);
			if (is_number(r)) {
				ASSERT_TRUE(r->min <= r->def &&
				    r->def <= r->max);
				ASSERT_EQ(field_value(r, base), r->def);
			}
			if (r->type == CONF_T_BOOL)
				ASSERT_EQ(field_value(r, base), r->def);
			if (r->type == CONF_T_CHOICE) {
				ASSERT_TRUE(r->choices != NULL);
				choice_name(r, r->def);
				ASSERT_EQ(field_value(r, base), r->def);
			}
			if (r->type == CONF_T_GROUP ||
			    r->type == CONF_T_LIST)
				ASSERT_TRUE(r->sub > id &&
				    r->sub < CONF_SECTION_COUNT);
		}
	}
	conf_free(&c);
}

/*
 * A file of the source tree.  The unit tests run from the top directory,
 * where make compiles this file as tests/unit/test_conf.c.
 */
static char *
read_source(const char *rel)
{
	const char *me = __FILE__, *end = strstr(me, "tests/unit/");
	char path[512], *text;
	struct stat st;
	ssize_t r;
	int fd;

	ASSERT_TRUE(end != NULL);
	snprintf(path, sizeof(path), "%.*s%s", (int)(end - me), me, rel);
	if ((fd = open(path, O_RDONLY)) == -1)
		TEST_FAIL_("%s: %s (run from the top directory)", path,
		    strerror(errno));
	ASSERT_TRUE(fstat(fd, &st) == 0);
	text = xmalloc((size_t)st.st_size + 1);
	r = read(fd, text, (size_t)st.st_size);
	ASSERT_EQ(r, st.st_size);
	text[r] = '\0';
	close(fd);
	return text;
}

/* The line at *p, NUL-terminated in place; *p moves to the next one. */
static char *
next_line(char **p)
{
	char *line = *p, *nl;

	if (*line == '\0')
		return NULL;
	if ((nl = strchr(line, '\n')) != NULL) {
		*nl = '\0';
		*p = nl + 1;
	} else
		*p = line + strlen(line);
	return line;
}

/* The text after the line that is exactly marker. */
static char *
after_marker(char *text, const char *file, const char *marker)
{
	char *p = text, *line;

	while ((line = next_line(&p)) != NULL)
		if (strcmp(line, marker) == 0)
			return p;
	TEST_FAIL_("%s has no line \"%s\"", file, marker);
}

/*
 * The cells of a Markdown table row, without backticks or the spaces
 * around them; returns their number.
 */
static size_t
split_row(char *line, char *cells[], size_t max)
{
	char *r, *w, *start, *end;
	size_t n = 0;

	for (r = w = line; *r != '\0'; r++)
		if (*r != '`')
			*w++ = *r;
	*w = '\0';
	if (*line != '|')
		return 0;
	for (start = line + 1; (end = strchr(start, '|')) != NULL;
	    start = end + 1) {
		*end = '\0';
		while (*start == ' ')
			start++;
		for (w = end; w > start && w[-1] == ' '; w--)
			w[-1] = '\0';
		if (n < max)
			cells[n] = start;
		n++;
	}
	return n;
}

static void
expect_cell(const char *what, const char *name, const char *col,
    const char *got, const char *want)
{
	if (strcmp(got, want) != 0)
		TEST_FAIL_("%s, '%s': %s is \"%s\"; the table in "
		    "ingestd/conf.c says \"%s\"", what, name, col, got, want);
}

/*
 * README.md has a table per section after "<!-- settings: NAME -->":
 * setting | default | accepts | meaning, a row per setting of the
 * section's table, in its order.
 */
static void
test_readme_lists_settings(void)
{
	char *text = read_source("README.md"), *copy, *p, *line, *cells[5];
	char marker[64], what[64], buf[256];
	const struct conf_setting *t;
	size_t i, k, n;

	for (i = 0; i < sizeof(documented) / sizeof(documented[0]); i++) {
		snprintf(marker, sizeof(marker), "<!-- settings: %s -->",
		    documented[i].marker);
		/* next_line() cuts the text it reads into lines. */
		copy = xstrdup(text);
		p = after_marker(copy, "README.md", marker);
		/* The header and the |---| line. */
		ASSERT_TRUE((line = next_line(&p)) != NULL);
		ASSERT_EQ(split_row(line, cells, 5), 4);
		ASSERT_TRUE((line = next_line(&p)) != NULL);
		ASSERT_TRUE(strncmp(line, "|---", 4) == 0);
		t = conf_settings(documented[i].id, &n);
		for (k = 0; k < n; k++) {
			snprintf(what, sizeof(what), "README.md, %s row %zu",
			    documented[i].marker, k + 1);
			line = next_line(&p);
			if (line == NULL || split_row(line, cells, 5) != 4)
				TEST_FAIL_("%s: no row for '%s'", what,
				    t[k].name);
			expect_cell(what, t[k].name, "the setting", cells[0],
			    t[k].name);
			expect_cell(what, t[k].name, "the default", cells[1],
			    fmt_default(&t[k], buf, sizeof(buf)));
			expect_cell(what, t[k].name, "what it accepts",
			    cells[2], fmt_accepts(&t[k], buf, sizeof(buf)));
			expect_cell(what, t[k].name, "the meaning", cells[3],
			    t[k].doc);
		}
		line = next_line(&p);
		if (line != NULL && *line == '|')
			TEST_FAIL_("README.md, %s: row %zu, \"%s\", is not "
			    "in the table in ingestd/conf.c",
			    documented[i].marker, n + 1, line);
		free(copy); copy = NULL;
	}
	free(text);
}

/*
 * ingestd.8 has, after '.\" settings: NAME', a .TP entry per setting of
 * the section's table, in its order:
 *	.TP
 *	.B name
 *	Meaning.
 *	Default: default; accepts what it accepts.
 * with "Required; accepts ..." for a required setting.
 */
static void
test_manual_lists_settings(void)
{
	char *text = read_source("deploy/ingestd.8"), *copy, *p, *line;
	char marker[64], want[1024], def[256], acc[256];
	const struct conf_setting *t, *r;
	size_t i, k, n;

	for (i = 0; i < sizeof(documented) / sizeof(documented[0]); i++) {
		snprintf(marker, sizeof(marker), ".\\\" settings: %s",
		    documented[i].marker);
		copy = xstrdup(text);
		p = after_marker(copy, "ingestd.8", marker);
		t = conf_settings(documented[i].id, &n);
		for (k = 0; k < n; k++) {
			r = &t[k];
			line = next_line(&p);
			if (line == NULL || strcmp(line, ".TP") != 0)
				TEST_FAIL_("ingestd.8, %s: no entry for '%s'",
				    documented[i].marker, r->name);
			snprintf(want, sizeof(want), ".B %s", r->name);
			expect_cell("ingestd.8", r->name, "the name",
			    next_line(&p), want);
			snprintf(want, sizeof(want), "%s.", r->doc);
			expect_cell("ingestd.8", r->name, "the meaning",
			    next_line(&p), want);
			fmt_accepts(r, acc, sizeof(acc));
			if (r->flags & CONF_F_REQUIRED)
				snprintf(want, sizeof(want),
				    "Required; accepts %s.", acc);
			else
				snprintf(want, sizeof(want),
				    "Default: %s; accepts %s.",
				    fmt_default(r, def, sizeof(def)), acc);
			expect_cell("ingestd.8", r->name, "the default",
			    next_line(&p), want);
		}
		line = next_line(&p);
		if (line != NULL && strcmp(line, ".TP") == 0)
			TEST_FAIL_("ingestd.8, %s: entry %zu is not in the "
			    "table in ingestd/conf.c", documented[i].marker,
			    n + 1);
		free(copy); copy = NULL;
	}
	free(text);
}

TEST_MAIN(TESTS)
