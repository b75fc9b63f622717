/*
 * libconfig -> struct conf.  The only includer of libconfig.h.
 *
 * Each section of the file is one table below, like nginx's ngx_command_t:
 * a row per setting with its type, the offset of the field it fills, its
 * default, its range or choices and a line of documentation.  The loader
 * walks a section's table, so an unknown or misspelt key is an error
 * rather than silently ignored, every value is checked the same way, and
 * every message names the file, the line and the setting.  What a table
 * cannot say (password or password_file, tls = "none" only with
 * allow_plaintext, unique account names) is checked by the section's
 * check function after its table.
 *
 * A new setting is a field in conf.h and a row here; README.md and
 * ingestd.8 list every row, and tests/unit/test_conf.c holds them to it.
 */
#include "ingestd/conf.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <grp.h>
#include <libconfig.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ingestd/base/log.h"
#include "ingestd/base/xmalloc.h"
#include "ingestd/retention.h"
#include "ingestd/delete_policy.h"

/*
 * The offset of field f of struct s, which must be as large as ctype: a
 * row whose type does not match its field does not compile.
 */
#define FIELD(s, f, ctype)                                               \
	(offsetof(struct s, f) + 0 * SAME_SIZE(((struct s *)0)->f, ctype))
#define SAME_SIZE(a, b) sizeof(char[sizeof(a) == sizeof(b) ? 1 : -1])
#define TOP(f, ctype) FIELD(conf, f, ctype)
#define ACCOUNT(f, ctype) FIELD(conf_account, f, ctype)

static const struct conf_setting top_settings[] = {
	{ "state_dir", CONF_T_PATH, TOP(state_dir, char *),
	    .def_str = "/var/lib/ingestd",
	    .doc = "Embedded database and temporary spool" },
	{ "workers", CONF_T_INT, TOP(workers, int),
	    .def = 2, .min = 1, .max = 256,
	    .doc = "Event loops (threads)" },
	{ "poll_interval", CONF_T_INT, TOP(poll_interval, int),
	    .def = 300, .min = 1, .max = 7 * 86400,
	    .doc = "Seconds between polls of one mailbox" },
	{ "max_connections_per_host", CONF_T_INT,
	    TOP(max_connections_per_host, int),
	    .def = 32, .min = 1, .max = 100000,
	    .doc = "Concurrent sessions to one server host" },
	{ "connect_timeout", CONF_T_INT, TOP(connect_timeout, int),
	    .def = 30, .min = 1, .max = 3600,
	    .doc = "Seconds for the TCP connect and the TLS handshake" },
	{ "command_timeout", CONF_T_INT, TOP(command_timeout, int),
	    .def = 120, .min = 1, .max = 86400,
	    .doc = "Seconds a command may go without progress" },
	{ "session_timeout", CONF_T_INT, TOP(session_timeout, int),
	    .def = 6 * 3600, .min = 1, .max = 7 * 86400,
	    .doc = "Seconds for one whole poll of a mailbox" },
	{ "zstd_level", CONF_T_INT, TOP(zstd_level, int),
	    .def = 3, .min = 1, .max = 19,
	    .doc = "Compression level of zstd" },
	{ "spool_memory", CONF_T_SIZE, TOP(spool_mem, size_t),
	    .def = 64 * 1024, .min = 4096, .max = 64 * 1024 * 1024,
	    .doc = "Compressed bytes of a message kept in memory before a "
	    "temporary file" },
	{ "spool_min_free", CONF_T_SIZE, TOP(spool_min_free, size_t),
	    .def = 100LL * 1024 * 1024, .min = 0, .max = 1LL << 50,
	    .doc = "Free bytes kept on the spool's file system: below, "
	    "receiving pauses until space returns; 0: no floor" },
	{ "max_message_size", CONF_T_SIZE, TOP(max_message_size, size_t),
	    .def = 512LL * 1024 * 1024, .min = 4096, .max = 1LL << 50,
	    .doc = "Bytes of a message past which it is refused and left "
	    "on the server" },
	{ "list_size_factor", CONF_T_UINT, TOP(list_size_factor, unsigned),
	    .def = 2, .min = 0, .max = 1000,
	    .doc = "A message is refused past this many times its LIST "
	    "size plus list_size_slack; 0: no such bound" },
	{ "list_size_slack", CONF_T_SIZE, TOP(list_size_slack, size_t),
	    .def = 1024 * 1024, .min = 0, .max = 1LL << 50,
	    .doc = "Bytes a message may exceed list_size_factor times its "
	    "LIST size by" },
	{ "batch_max", CONF_T_UINT, TOP(batch_max, unsigned),
	    .def = 256, .min = 1, .max = 100000,
	    .doc = "Messages per database commit" },
	{ "dictionary_after", CONF_T_UINT, TOP(dictionary_after, unsigned),
	    .def = 1000, .min = 0, .max = 100000000,
	    .doc = "Small messages stored before a zstd dictionary is "
	    "trained; 0: no dictionaries" },
	{ "ledger", CONF_T_GROUP, 0, .sub = CONF_SECTION_LEDGER,
	    .doc = "Signed checkpoints of the tamper-evident ledger" },
	{ "database", CONF_T_GROUP, 0, .sub = CONF_SECTION_DATABASE,
	    .doc = "The archive's PostgreSQL database" },
	{ "accounts", CONF_T_LIST, TOP(accounts, void *),
	    .count = TOP(naccounts, size_t), .sub = CONF_SECTION_ACCOUNT,
	    .flags = CONF_F_REQUIRED,
	    .doc = "The mailboxes to archive" },
	{ "purge", CONF_T_GROUP, 0, .sub = CONF_SECTION_PURGE,
	    .doc = "How purge plans are approved" },
	{ "retention", CONF_T_GROUP, 0, .sub = CONF_SECTION_RETENTION,
	    .doc = "Retention policies" },
};

static const struct conf_setting database_settings[] = {
	{ "conninfo", CONF_T_STRING, TOP(conninfo, char *),
	    .def_doc = "a private cluster under state_dir",
	    .doc = "Connection string, as libpq takes it" },
	{ "pg_bindir", CONF_T_PATH, TOP(pg_bindir, char *),
	    .def_doc = "the newest /usr/lib/postgresql/N/bin",
	    .doc = "PostgreSQL's programs, for the private cluster" },
	{ "insecure_transport", CONF_T_BOOL, TOP(insecure_transport, bool),
	    .def = false,
	    .doc = "Required to delete after archiving over TCP without "
	    "sslmode=verify-full, where whoever is on the path could answer "
	    "COMMIT" },
};

static const struct conf_setting purge_settings[] = {
	{ "approvals", CONF_T_UINT, TOP(purge_approvals, unsigned),
	    .def = 1, .min = 1, .max = 2,
	    .doc = "Actors a purge plan needs: 2 = a PostgreSQL role other "
	    "than the planner's must approve it" },
};

static const struct conf_setting retention_settings[] = {
	{ "cooling_off", CONF_T_STRING, TOP(cooling_off, char *),
	    .def_str = "30d",
	    .doc = "Delay before a policy version that shortens retention "
	    "applies to purge plans: a period (30d, 12w, 18m, 7y; 0d: none)" },
};

static const struct conf_setting ledger_settings[] = {
	{ "signing_key", CONF_T_PATH, TOP(ledger_signing_key, char *),
	    .def_doc = "none: no checkpoints",
	    .doc = "Ed25519 private key (PEM) that signs checkpoints, made by "
	    "ingestd ledger keygen" },
	{ "key_name", CONF_T_STRING, TOP(ledger_key_name, char *),
	    .def_doc = "none; required with signing_key",
	    .doc = "The signed note's key name and the checkpoints' origin, "
	    "e.g. archive.example.com/ingestd" },
	{ "checkpoint_interval", CONF_T_INT,
	    TOP(ledger_checkpoint_interval, int),
	    .def = 300, .min = 0, .max = 7 * 86400,
	    .doc = "Seconds between checkpoints in run, when the ledger grew; "
	    "0: only ingestd ledger checkpoint" },
	{ "checkpoint_command", CONF_T_PATH,
	    TOP(ledger_checkpoint_command, char *),
	    .def_doc = "none",
	    .doc = "Program run with each new checkpoint on its standard "
	    "input (no shell, no arguments)" },
};

static const struct conf_choice tls_choices[] = {
	{ "implicit", CONF_TLS_IMPLICIT },
	{ "starttls", CONF_TLS_STARTTLS },
	{ "none", CONF_TLS_NONE },
	{ NULL, 0 }
};
static const struct conf_choice auth_choices[] = {
	{ "auto", CONF_AUTH_AUTO },
	{ "user", CONF_AUTH_USER },
	{ "apop", CONF_AUTH_APOP },
	{ "plain", CONF_AUTH_PLAIN },
	{ "xoauth2", CONF_AUTH_XOAUTH2 },
	{ "oauthbearer", CONF_AUTH_OAUTHBEARER },
	{ NULL, 0 }
};
static const struct conf_choice grant_choices[] = {
	{ "refresh_token", CONF_GRANT_REFRESH_TOKEN },
	{ "client_credentials", CONF_GRANT_CLIENT_CREDENTIALS },
	{ NULL, 0 }
};
static const struct conf_choice delete_choices[] = {
	{ "after-archive", CONF_DELETE_AFTER_ARCHIVE },
	{ "never", CONF_DELETE_NEVER },
	{ NULL, 0 }
};

static const struct conf_setting account_settings[] = {
	{ "name", CONF_T_STRING, ACCOUNT(name, char *),
	    .flags = CONF_F_REQUIRED,
	    .doc = "Stable id, unique; never rename it" },
	{ "host", CONF_T_STRING, ACCOUNT(host, char *),
	    .flags = CONF_F_REQUIRED,
	    .doc = "POP3 server: host name or IP address" },
	{ "port", CONF_T_INT, ACCOUNT(port, int),
	    .def = 995, .min = 1, .max = 65535,
	    .def_doc = "995, or 110 unless tls is \"implicit\"",
	    .doc = "TCP port" },
	{ "tls", CONF_T_CHOICE, ACCOUNT(tls, int),
	    .def = CONF_TLS_IMPLICIT, .choices = tls_choices,
	    .doc = "POP3S, STLS (refused if not offered), or plaintext" },
	{ "allow_plaintext", CONF_T_BOOL, ACCOUNT(allow_plaintext, bool),
	    .def = false,
	    .doc = "Required for tls = \"none\", which sends the password "
	    "in clear" },
	{ "ca_file", CONF_T_FILE, ACCOUNT(ca_file, char *),
	    .def_doc = "the system trust store",
	    .doc = "CA certificates that verify the server" },
	{ "user", CONF_T_STRING, ACCOUNT(user, char *),
	    .flags = CONF_F_REQUIRED,
	    .doc = "User name to log in with" },
	{ "password", CONF_T_STRING, ACCOUNT(password, char *),
	    .flags = CONF_F_SECRET,
	    .doc = "Password; this or password_file is required" },
	{ "password_file", CONF_T_PATH, ACCOUNT(password_file, char *),
	    .doc = "File whose first line is the password" },
	{ "auth", CONF_T_CHOICE, ACCOUNT(auth, int),
	    .def = CONF_AUTH_AUTO, .choices = auth_choices,
	    .doc = "Login: \"auto\" tries SASL PLAIN, then APOP, then USER; "
	    "with a token, SASL XOAUTH2, then OAUTHBEARER" },
	{ "token_command", CONF_T_STRING, ACCOUNT(token_command, char *),
	    .doc = "Command whose first output line is an OAuth 2.0 access "
	    "token, run before each login; split at blanks, no shell unless "
	    "it starts with sh -c" },
	{ "token_timeout", CONF_T_INT, ACCOUNT(token_timeout, int),
	    .def = 30, .min = 1, .max = 600,
	    .doc = "Seconds token_command or a token request may take" },
	{ "oauth", CONF_T_GROUP, 0, .sub = CONF_SECTION_OAUTH,
	    .def_doc = "none",
	    .doc = "OAuth 2.0 tokens that ingestd requests itself" },
	{ "delete", CONF_T_CHOICE, ACCOUNT(delete, int),
	    .def = CONF_DELETE_AFTER_ARCHIVE, .choices = delete_choices,
	    .flags = CONF_F_OR_GROUP, .sub = CONF_SECTION_DELETE,
	    .def_group = CONF_DELETE_POLICY,
	    .doc = "DELE each message once its commit has returned, never, "
	    "or as a policy group says (below)" },
	{ "implicit_delete", CONF_T_BOOL, ACCOUNT(implicit_delete, bool),
	    .def = false,
	    .doc = "The server deletes retrieved messages at QUIT, as Gmail "
	    "can; a poll that failed to archive one ends without QUIT" },
	{ "enabled", CONF_T_BOOL, ACCOUNT(enabled, bool),
	    .def = true,
	    .doc = "Set to false to keep the account but not poll it" },
};

static const struct conf_setting oauth_settings[] = {
	{ "token_url", CONF_T_STRING, ACCOUNT(oauth_token_url, char *),
	    .doc = "The provider's token endpoint, an https:// URL; "
	    "required" },
	{ "client_id", CONF_T_STRING, ACCOUNT(oauth_client_id, char *),
	    .doc = "The application's client id; required" },
	{ "client_secret_file", CONF_T_FILE,
	    ACCOUNT(oauth_client_secret_file, char *),
	    .def_doc = "none (a public client)",
	    .doc = "File whose first line is the client secret; required for "
	    "client_credentials" },
	{ "scope", CONF_T_STRING, ACCOUNT(oauth_scope, char *),
	    .doc = "Scopes to ask for, blank-separated" },
	{ "refresh_token_file", CONF_T_FILE,
	    ACCOUNT(oauth_refresh_token_file, char *),
	    .doc = "File holding the refresh token; a rotated one is written "
	    "back to it before the new access token is used; required for "
	    "refresh_token" },
	{ "grant", CONF_T_CHOICE, ACCOUNT(oauth_grant, int),
	    .def = CONF_GRANT_REFRESH_TOKEN, .choices = grant_choices,
	    .doc = "One mailbox's refresh token, or one application token "
	    "shared by every account with the same token_url, client_id and "
	    "scope" },
	{ "ca_file", CONF_T_FILE, ACCOUNT(oauth_ca_file, char *),
	    .def_doc = "the system trust store",
	    .doc = "CA certificates that verify the token endpoint" },
};

#define POLICY(f, ctype) FIELD(conf_account, policy.f, ctype)
#define DAYS_MAX 36500

/* delete = { ... }; each row's presence sets its rule (check_delete). */
static const struct conf_setting delete_settings[] = {
	{ "after_days", CONF_T_UINT, POLICY(after_days, unsigned),
	    .def = 0, .min = 0, .max = DAYS_MAX, .def_doc = "unset",
	    .doc = "Delete an archived message this many days after "
	    "ingestd first saw it" },
	{ "older_than_days", CONF_T_UINT, POLICY(older_than_days, unsigned),
	    .def = 0, .min = 0, .max = DAYS_MAX, .def_doc = "unset",
	    .doc = "Delete an archived message whose Date header is older "
	    "than this many days; one without a known Date is kept" },
	{ "bigger_than", CONF_T_SIZE, POLICY(bigger_than, size_t),
	    .def = 0, .min = 0, .max = 1LL << 50, .def_doc = "unset",
	    .doc = "Delete an archived message whose LIST size is larger" },
	{ "keep_under", CONF_T_SIZE, POLICY(keep_under, size_t),
	    .def = 0, .min = 0, .max = 1LL << 50, .def_doc = "unset",
	    .doc = "Delete the oldest archived messages until the mailbox "
	    "(STAT) is under this size" },
	{ "max_messages", CONF_T_UINT, POLICY(max_messages, unsigned),
	    .def = 0, .min = 0, .max = 100000000, .def_doc = "no cap",
	    .doc = "Messages one poll deletes at most, the oldest first" },
	{ "max_bytes", CONF_T_SIZE, POLICY(max_bytes, size_t),
	    .def = 0, .min = 0, .max = 1LL << 50, .def_doc = "no cap",
	    .doc = "Bytes (LIST sizes) one poll deletes at most" },
};

struct ctx {
	const char *path;
	char *err;
	size_t errlen;
	bool failed;
	bool has_password;	/* the config file holds a password */
};

/*
 * After a group's table has filled base: what the table cannot say.
 * g is NULL for an absent group; gname is its dotted name.
 */
typedef void check_fn(struct ctx *x, const config_setting_t *g,
    const char *gname, void *base);

static check_fn check_top, check_database, check_ledger, check_account,
    check_delete, check_retention;
static void release_account(void *base);

#define ROWS(t) .settings = (t), .n = sizeof(t) / sizeof((t)[0])

static const struct section {
	const struct conf_setting *settings;
	size_t n;
	size_t size;		/* of the struct a group fills */
	const char *noun;	/* for messages about a list of these */
	const char *example;
	check_fn *check;
	void (*release)(void *base); /* frees what check allocated */
} sections[CONF_SECTION_COUNT] = {
	[CONF_SECTION_TOP] = { ROWS(top_settings),
	    .size = sizeof(struct conf), .check = check_top },
	[CONF_SECTION_DATABASE] = { ROWS(database_settings),
	    .size = sizeof(struct conf), .check = check_database },
	[CONF_SECTION_PURGE] = { ROWS(purge_settings),
	    .size = sizeof(struct conf) },
	[CONF_SECTION_RETENTION] = { ROWS(retention_settings),
	    .size = sizeof(struct conf), .check = check_retention },
	[CONF_SECTION_LEDGER] = { ROWS(ledger_settings),
	    .size = sizeof(struct conf), .check = check_ledger },
	[CONF_SECTION_ACCOUNT] = { ROWS(account_settings),
	    .size = sizeof(struct conf_account), .noun = "account",
	    .example = "{ name = ...; host = ...; ... }",
	    .check = check_account, .release = release_account },
	[CONF_SECTION_OAUTH] = { ROWS(oauth_settings),
	    .size = sizeof(struct conf_account) },
	[CONF_SECTION_DELETE] = { ROWS(delete_settings),
	    .size = sizeof(struct conf_account), .check = check_delete },
};

const struct conf_setting *
conf_settings(enum conf_section section, size_t *n_r)
{
	ASSERT((unsigned)section < CONF_SECTION_COUNT);
	*n_r = sections[section].n;
	return sections[section].settings;
}

static void err_at(struct ctx *x, const config_setting_t *s, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

/* Records the first error only: later ones are usually its consequences. */
static void
err_at(struct ctx *x, const config_setting_t *s, const char *fmt, ...)
{
	char what[1024];
	va_list ap;

	if (x->failed)
		return;
	x->failed = true;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (s != NULL && config_setting_source_line(s) > 0)
		snprintf(x->err, x->errlen, "%s:%u: %s", x->path,
		    config_setting_source_line(s), what);
	else
		snprintf(x->err, x->errlen, "%s: %s", x->path, what);
}

/* The dotted path of a setting, e.g. accounts[0].port or workers. */
static const char *
setting_name(const config_setting_t *s, char *buf, size_t len)
{
	const config_setting_t *p = config_setting_parent(s);
	char parent[192];

	if (p == NULL || config_setting_is_root(p)) {
		snprintf(buf, len, "%s", s->name ? s->name : "?");
		return buf;
	}
	setting_name(p, parent, sizeof(parent));
	if (s->name != NULL)
		snprintf(buf, len, "%s.%s", parent, s->name);
	else
		snprintf(buf, len, "%s[%d]", parent, config_setting_index(s));
	return buf;
}

/* gname.name, or name alone at the top level. */
static const char *
dotted(const char *gname, const char *name, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s", gname, *gname ? "." : "", name);
	return buf;
}

/* Appends item to the comma-separated list in buf, quoted if asked. */
static void
list_add(char *buf, size_t len, const char *item, bool quoted)
{
	size_t n = strlen(buf);
	const char *q = quoted ? "\"" : "";

	snprintf(buf + n, len - n, "%s%s%s%s", n > 0 ? ", " : "", q, item, q);
}

/* Refuses every member of group g that is not a row of sec. */
static void
check_known(struct ctx *x, const config_setting_t *g,
    const struct section *sec)
{
	char buf[256], known[512] = "";
	int i, n = config_setting_length(g);
	size_t k;

	for (i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, i);

		for (k = 0; k < sec->n; k++)
			if (strcmp(sec->settings[k].name, s->name) == 0)
				break;
		if (k < sec->n)
			continue;
		for (k = 0; k < sec->n; k++)
			list_add(known, sizeof(known), sec->settings[k].name,
			    false);
		err_at(x, s, "unknown setting '%s'; the settings here are %s",
		    setting_name(s, buf, sizeof(buf)), known);
		return;
	}
}

/* A copy of string setting s, or NULL if it is not a string. */
static char *
get_string(struct ctx *x, const config_setting_t *s)
{
	char buf[256];

	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		err_at(x, s, "'%s' must be a string in double quotes",
		    setting_name(s, buf, sizeof(buf)));
		return NULL;
	}
	return xstrdup(config_setting_get_string(s));
}

/* Whole number setting s, in row r's range, or r's default. */
/*
 * "512M": digits and an optional K, M or G for KiB, MiB, GiB.  0 with *v_r
 * set, or -1 for anything else, an overflow included.
 */
static int
parse_size(const char *str, long long *v_r)
{
	unsigned long long v = 0, mult = 1;
	const char *p = str;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (v > (unsigned long long)(LLONG_MAX - 9) / 10)
			return -1;
		v = v * 10 + (unsigned long long)(*p - '0');
	}
	switch (*p) {
	case 'K':
		mult = 1024;
		p++;
		break;
	case 'M':
		mult = 1024 * 1024;
		p++;
		break;
	case 'G':
		mult = 1024 * 1024 * 1024;
		p++;
		break;
	default:
		break;
	}
	if (*p != '\0' || v > (unsigned long long)LLONG_MAX / mult)
		return -1;
	*v_r = (long long)(v * mult);
	return 0;
}

static long long
get_number(struct ctx *x, const struct conf_setting *r,
    const config_setting_t *s)
{
	char buf[256];
	long long v;

	if (r->type == CONF_T_SIZE &&
	    config_setting_type(s) == CONFIG_TYPE_STRING) {
		if (parse_size(config_setting_get_string(s), &v) == -1) {
			err_at(x, s, "'%s' must be a whole number of bytes, "
			    "or one ending in K, M or G (KiB, MiB, GiB)",
			    setting_name(s, buf, sizeof(buf)));
			return r->def;
		}
	} else if (config_setting_type(s) != CONFIG_TYPE_INT &&
	    config_setting_type(s) != CONFIG_TYPE_INT64) {
		err_at(x, s, "'%s' must be a whole number",
		    setting_name(s, buf, sizeof(buf)));
		return r->def;
	} else
		v = config_setting_get_int64(s);
	if (v < r->min || v > r->max) {
		err_at(x, s, "'%s' is %lld; it must be from %lld to %lld",
		    setting_name(s, buf, sizeof(buf)), v, r->min, r->max);
		return r->def;
	}
	return v;
}

static bool
get_bool(struct ctx *x, const struct conf_setting *r,
    const config_setting_t *s)
{
	char buf[256];

	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		err_at(x, s, "'%s' must be true or false",
		    setting_name(s, buf, sizeof(buf)));
		return r->def != 0;
	}
	return config_setting_get_bool(s);
}

/* The value of the choice that string setting s names. */
static int
get_choice(struct ctx *x, const struct conf_setting *r,
    const config_setting_t *s)
{
	const struct conf_choice *ch;
	char buf[256], list[256] = "";
	const char *v;

	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		v = config_setting_get_string(s);
		for (ch = r->choices; ch->name != NULL; ch++)
			if (strcmp(v, ch->name) == 0)
				return ch->value;
	}
	for (ch = r->choices; ch->name != NULL; ch++)
		list_add(list, sizeof(list), ch->name, true);
	if (r->flags & CONF_F_OR_GROUP)
		list_add(list, sizeof(list), "a group { ... }", false);
	err_at(x, s, "'%s' must be one of %s",
	    setting_name(s, buf, sizeof(buf)), list);
	return (int)r->def;
}

const char *
conf_user(char *buf, size_t len)
{
	uid_t uid = geteuid();
	struct passwd *pw;
	int e = errno;

	if ((pw = getpwuid(uid)) != NULL)
		snprintf(buf, len, "user %s (uid %u)", pw->pw_name,
		    (unsigned)uid);
	else
		snprintf(buf, len, "uid %u", (unsigned)uid);
	errno = e;
	return buf;
}

/*
 * Whether the user uid, named name, may read a file of ours: root, the
 * user ingestd runs as, or the user whose own group (of the same name)
 * gname is.  The last is how the service reads its files: root:ingestd,
 * mode 640, while an operator runs `ingestd check` as root.
 */
static bool
trusted(uid_t uid, const char *name, const char *gname)
{
	return uid == 0 || uid == geteuid() || strcmp(name, gname) == 0;
}

/*
 * Who other than trusted() users can read a file of mode and owner st,
 * into buf; "" if nobody.  A group's members are its listed ones and the
 * users whose primary group it is.
 */
static const char *
other_readers(const struct stat *st, char *buf, size_t len)
{
	char gname[256];
	struct passwd *pw;
	struct group *gr;
	char **m;

	buf[0] = '\0';
	if (st->st_mode & S_IROTH) {
		snprintf(buf, len, "every user");
		return buf;
	}
	if ((st->st_mode & S_IRUSR) && st->st_uid != 0 &&
	    st->st_uid != geteuid()) {
		if ((pw = getpwuid(st->st_uid)) != NULL)
			snprintf(buf, len, "its owner, user %s", pw->pw_name);
		else
			snprintf(buf, len, "its owner, uid %u",
			    (unsigned)st->st_uid);
		return buf;
	}
	if (!(st->st_mode & S_IRGRP))
		return buf;
	if ((gr = getgrgid(st->st_gid)) == NULL) {
		snprintf(buf, len, "group %u, which has no name",
		    (unsigned)st->st_gid);
		return buf;
	}
	snprintf(gname, sizeof(gname), "%s", gr->gr_name);
	for (m = gr->gr_mem; *m != NULL; m++) {
		pw = getpwnam(*m);
		if (pw == NULL || !trusted(pw->pw_uid, *m, gname)) {
			snprintf(buf, len, "group %s, which has user %s", gname,
			    *m);
			return buf;
		}
	}
	setpwent();
	while ((pw = getpwent()) != NULL)
		if (pw->pw_gid == st->st_gid &&
		    !trusted(pw->pw_uid, pw->pw_name, gname)) {
			snprintf(buf, len, "group %s, which has user %s",
			    gname, pw->pw_name);
			break;
		}
	endpwent();
	return buf;
}

/*
 * A file holding passwords must not be readable by other users: by
 * nobody but root and the user ingestd runs as (see trusted()).
 */
static void
check_permissions(const char *path)
{
	char who[512];
	struct stat st;

	if (stat(path, &st) == -1)
		return;
	if (*other_readers(&st, who, sizeof(who)) != '\0')
		log_warnx("%s holds passwords and is readable by other users: "
		    "%s (mode %03o); give it mode 600, or mode 640 and a "
		    "group only ingestd's user is in", path, who,
		    (unsigned)(st.st_mode & 0777));
}

/* Refuses setting s: the file path it names cannot be read (errno e). */
static void
err_unreadable(struct ctx *x, const config_setting_t *s, const char *path,
    int e)
{
	char name[256], who[128];

	err_at(x, s, "'%s': cannot read %s as %s: %s",
	    setting_name(s, name, sizeof(name)), path,
	    conf_user(who, sizeof(who)), strerror(e));
}

/* The longest password_file line we take; nobody's password is longer. */
#define CONF_PASSWORD_MAX 4096

/*
 * The first line of a password file, without its line ending.  A longer
 * line is refused rather than cut short, and the stack copy is wiped.
 */
static char *
read_password_file(struct ctx *x, const config_setting_t *s, const char *path)
{
	char name[256], line[CONF_PASSWORD_MAX + 1], *pw = NULL;
	size_t n = 0;
	struct stat st;
	int ch;
	FILE *f;

	setting_name(s, name, sizeof(name));
	if ((f = fopen(path, "r")) == NULL) {
		err_unreadable(x, s, path, errno);
		return NULL;
	}
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		err_unreadable(x, s, path, EISDIR);
		goto done;
	}
	while ((ch = getc(f)) != EOF && ch != '\n') {
		if (n == CONF_PASSWORD_MAX) {
			err_at(x, s, "'%s' \"%s\": its first line is longer "
			    "than %d bytes", name, path, CONF_PASSWORD_MAX);
			goto done;
		}
		line[n++] = (char)ch;
	}
	if (ch == EOF && ferror(f)) {
		err_unreadable(x, s, path, errno);
		goto done;
	}
	if (ch == EOF && n == 0) {
		err_at(x, s, "'%s' \"%s\" is empty", name, path);
		goto done;
	}
	line[n] = '\0';
	if (strlen(line) != n) {
		err_at(x, s, "'%s' \"%s\": its first line holds a NUL byte",
		    name, path);
		goto done;
	}
	line[strcspn(line, "\r")] = '\0';
	if (*line == '\0') {
		err_at(x, s, "'%s' \"%s\": its first line is empty", name,
		    path);
		goto done;
	}
	pw = xstrdup(line);
	check_permissions(path);
done:
	explicit_bzero(line, sizeof(line));
	fclose(f);
	return pw;
}

/*
 * 0 if path is a file we can open for reading, else -1 with errno set.
 * O_NONBLOCK: a FIFO must not hold up the check.
 */
static int
readable_file(const char *path)
{
	struct stat st;
	int fd, rc = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1)
		return -1;
	if (fstat(fd, &st) == -1)
		rc = -1;
	else if (S_ISDIR(st.st_mode)) {
		errno = EISDIR;
		rc = -1;
	}
	close(fd);
	return rc;
}

/* Writes n bytes of v into the field at offset off of base. */
static void
put(void *base, size_t off, const void *v, size_t n)
{
	memcpy((char *)base + off, v, n);
}

static void load_group(struct ctx *x, enum conf_section id,
    const config_setting_t *g, const char *gname, void *base);

/* An array of groups of row r's section, at r's offset in base. */
static void
load_list(struct ctx *x, const struct conf_setting *r,
    const config_setting_t *s, void *base)
{
	const struct section *sec = &sections[r->sub];
	char name[256], ename[256], *elts;
	size_t i, n;

	setting_name(s, name, sizeof(name));
	if (!config_setting_is_list(s) && !config_setting_is_array(s)) {
		err_at(x, s, "'%s' must be a list ( { ... }, ... )", name);
		return;
	}
	n = (size_t)config_setting_length(s);
	if (n == 0 && (r->flags & CONF_F_REQUIRED))
		err_at(x, s, "'%s' is empty; it needs at least one %s %s",
		    name, sec->noun, sec->example);
	elts = xcalloc(n ? n : 1, sec->size);
	put(base, r->offset, &elts, sizeof(elts));
	put(base, r->count, &n, sizeof(n));
	for (i = 0; i < n; i++) {
		const config_setting_t *e = config_setting_get_elem(s, i);

		setting_name(e, ename, sizeof(ename));
		if (!config_setting_is_group(e))
			err_at(x, e, "'%s' must be a group { ... }", ename);
		else
			load_group(x, r->sub, e, ename, elts + i * sec->size);
	}
}

/*
 * Row r of a group named gname, from setting s (NULL: absent, so the
 * default), into its field in base.
 */
static void
load_setting(struct ctx *x, const struct conf_setting *r,
    const config_setting_t *s, const char *gname, void *base)
{
	char name[256], *str;
	long long v;
	unsigned u;
	size_t z;
	bool b;
	int i;

	switch (r->type) {
	case CONF_T_STRING:
	case CONF_T_PATH:
	case CONF_T_FILE:
		if (s == NULL)
			str = r->def_str != NULL ? xstrdup(r->def_str) : NULL;
		else if ((str = get_string(x, s)) != NULL &&
		    r->type == CONF_T_FILE && readable_file(str) == -1)
			err_unreadable(x, s, str, errno);
		put(base, r->offset, &str, sizeof(str));
		break;
	case CONF_T_INT:
	case CONF_T_UINT:
	case CONF_T_SIZE:
		v = s != NULL ? get_number(x, r, s) : r->def;
		if (r->type == CONF_T_INT) {
			i = (int)v;
			put(base, r->offset, &i, sizeof(i));
		} else if (r->type == CONF_T_UINT) {
			u = (unsigned)v;
			put(base, r->offset, &u, sizeof(u));
		} else {
			z = (size_t)v;
			put(base, r->offset, &z, sizeof(z));
		}
		break;
	case CONF_T_BOOL:
		b = s != NULL ? get_bool(x, r, s) : r->def != 0;
		put(base, r->offset, &b, sizeof(b));
		break;
	case CONF_T_CHOICE:
		if (s != NULL && (r->flags & CONF_F_OR_GROUP) &&
		    config_setting_is_group(s)) {
			i = r->def_group;
			load_group(x, r->sub, s,
			    setting_name(s, name, sizeof(name)), base);
		} else
			i = s != NULL ? get_choice(x, r, s) : (int)r->def;
		put(base, r->offset, &i, sizeof(i));
		break;
	case CONF_T_GROUP:
		if (s == NULL)
			load_group(x, r->sub, NULL,
			    dotted(gname, r->name, name, sizeof(name)), base);
		else if (!config_setting_is_group(s))
			err_at(x, s, "'%s' must be a group { ... }",
			    setting_name(s, name, sizeof(name)));
		else
			load_group(x, r->sub, s,
			    setting_name(s, name, sizeof(name)), base);
		break;
	case CONF_T_LIST:
		if (s != NULL)
			load_list(x, r, s, base);
		break;
	}
}

/* Refuses a required row that is absent, or an empty string. */
static void
check_required(struct ctx *x, const config_setting_t *g, const char *gname,
    const struct section *sec, const void *base)
{
	const config_setting_t *at;
	char name[256];
	const char *str;
	size_t k;

	/* The top level has no line of its own. */
	at = g != NULL && !config_setting_is_root(g) ? g : NULL;
	for (k = 0; k < sec->n; k++) {
		const struct conf_setting *r = &sec->settings[k];
		bool absent;

		if (!(r->flags & CONF_F_REQUIRED))
			continue;
		absent = g == NULL ||
		    config_setting_get_member(g, r->name) == NULL;
		dotted(gname, r->name, name, sizeof(name));
		switch (r->type) {
		case CONF_T_STRING:
		case CONF_T_PATH:
		case CONF_T_FILE:
			memcpy(&str, (const char *)base + r->offset,
			    sizeof(str));
			if (str == NULL || *str == '\0')
				err_at(x, at, "'%s' is required", name);
			break;
		case CONF_T_LIST:
			if (absent)
				err_at(x, at, "'%s' is required: a list of at "
				    "least one %s ( %s )", name,
				    sections[r->sub].noun,
				    sections[r->sub].example);
			break;
		default:
			if (absent)
				err_at(x, at, "'%s' is required", name);
			break;
		}
	}
}

/*
 * Fills base from group g (NULL: absent, so every default) by the table
 * of section id, then runs the section's check.
 */
static void
load_group(struct ctx *x, enum conf_section id, const config_setting_t *g,
    const char *gname, void *base)
{
	const struct section *sec = &sections[id];
	size_t k;

	if (g != NULL)
		check_known(x, g, sec);
	for (k = 0; k < sec->n; k++) {
		const struct conf_setting *r = &sec->settings[k];

		load_setting(x, r, g != NULL ?
		    config_setting_get_member(g, r->name) : NULL, gname, base);
	}
	check_required(x, g, gname, sec, base);
	if (sec->check != NULL)
		sec->check(x, g, gname, base);
}

/* Frees the strings and lists of a group of section id in base. */
static void
free_group(enum conf_section id, void *base)
{
	const struct section *sec = &sections[id];
	char *p;
	size_t i, k, n;

	for (k = 0; k < sec->n; k++) {
		const struct conf_setting *r = &sec->settings[k];

		switch (r->type) {
		case CONF_T_STRING:
		case CONF_T_PATH:
		case CONF_T_FILE:
			memcpy(&p, (char *)base + r->offset, sizeof(p));
			if (p != NULL && (r->flags & CONF_F_SECRET))
				explicit_bzero(p, strlen(p));
			free(p);
			break;
		case CONF_T_GROUP:
			free_group(r->sub, base);
			break;
		case CONF_T_LIST:
			memcpy(&p, (char *)base + r->offset, sizeof(p));
			memcpy(&n, (char *)base + r->count, sizeof(n));
			for (i = 0; i < n; i++)
				free_group(r->sub,
				    p + i * sections[r->sub].size);
			free(p);
			break;
		default:
			break;
		}
	}
	if (sec->release != NULL)
		sec->release(base);
}

/* The password, from password or from the first line of password_file. */
static void
check_password(struct ctx *x, const config_setting_t *g, const char *gname,
    struct conf_account *a)
{
	const config_setting_t *pw, *pwf;

	pw = config_setting_get_member(g, "password");
	pwf = config_setting_get_member(g, "password_file");
	if (pw != NULL && pwf != NULL)
		err_at(x, pwf, "'%s.password_file': set 'password' or "
		    "'password_file', not both", gname);
	else if (pw != NULL) {
		if (a->password != NULL && *a->password == '\0')
			err_at(x, pw, "'%s.password' is empty", gname);
		x->has_password = true;
	} else if (pwf != NULL) {
		if (a->password_file != NULL)
			a->password = read_password_file(x, pwf,
			    a->password_file);
	} else
		err_at(x, g, "'%s.password' or '%s.password_file' is required",
		    gname, gname);
}

/*
 * A token source: token_command or oauth = { ... }, not both, and then no
 * password, since a refused token must never fall back to one.  Returns 1
 * if the account has one (the password is not asked for), else 0.
 */
static int
check_token(struct ctx *x, const config_setting_t *g, const char *gname,
    struct conf_account *a)
{
	const config_setting_t *tc, *oa, *at;
	bool oauth_auth = a->auth == CONF_AUTH_XOAUTH2 ||
	    a->auth == CONF_AUTH_OAUTHBEARER;

	tc = config_setting_get_member(g, "token_command");
	oa = config_setting_get_member(g, "oauth");
	a->has_oauth = oa != NULL;
	if (tc == NULL && oa == NULL) {
		if (oauth_auth)
			err_at(x, config_setting_get_member(g, "auth"),
			    "'%s.auth' is an OAuth mechanism: it needs "
			    "'%s.token_command' or '%s.oauth'", gname, gname,
			    gname);
		return 0;
	}
	if (tc != NULL && oa != NULL)
		err_at(x, oa, "'%s.oauth': set 'token_command' or 'oauth', "
		    "not both", gname);
	if (tc != NULL && (a->token_command == NULL ||
	    strspn(a->token_command, " \t") == strlen(a->token_command)))
		err_at(x, tc, "'%s.token_command' is empty", gname);
	if ((at = config_setting_get_member(g, "password")) != NULL ||
	    (at = config_setting_get_member(g, "password_file")) != NULL)
		err_at(x, at, "'%s.%s': an account with an OAuth token takes "
		    "no password (a refused token never falls back to one)",
		    gname, config_setting_name(at));
	if (!oauth_auth && a->auth != CONF_AUTH_AUTO)
		err_at(x, config_setting_get_member(g, "auth"),
		    "'%s.auth': with an OAuth token, \"auto\", \"xoauth2\" "
		    "or \"oauthbearer\"", gname);
	if (oa == NULL)
		return 1;
	if (a->oauth_token_url == NULL || *a->oauth_token_url == '\0')
		err_at(x, oa, "'%s.oauth.token_url' is required", gname);
	else if (strncmp(a->oauth_token_url, "https://", 8) != 0)
		err_at(x, config_setting_get_member(oa, "token_url"),
		    "'%s.oauth.token_url' must be an https:// URL: the request "
		    "carries secrets", gname);
	if (a->oauth_client_id == NULL || *a->oauth_client_id == '\0')
		err_at(x, oa, "'%s.oauth.client_id' is required", gname);
	if (a->oauth_grant == CONF_GRANT_REFRESH_TOKEN &&
	    a->oauth_refresh_token_file == NULL)
		err_at(x, oa, "'%s.oauth.refresh_token_file' is required with "
		    "grant = \"refresh_token\"", gname);
	if (a->oauth_grant == CONF_GRANT_CLIENT_CREDENTIALS) {
		if (a->oauth_client_secret_file == NULL)
			err_at(x, oa, "'%s.oauth.client_secret_file' is "
			    "required with grant = \"client_credentials\"",
			    gname);
		if (a->oauth_refresh_token_file != NULL)
			err_at(x, config_setting_get_member(oa,
			    "refresh_token_file"), "'%s.oauth."
			    "refresh_token_file' is for grant = "
			    "\"refresh_token\" only", gname);
	}
	return 1;
}

static void
check_account(struct ctx *x, const config_setting_t *g, const char *gname,
    void *base)
{
	struct conf_account *a = base;

	a->where = xasprintf("%s:%u", x->path, config_setting_source_line(g));
	/* STLS is spoken on the plain POP3 port. */
	if (config_setting_get_member(g, "port") == NULL &&
	    a->tls != CONF_TLS_IMPLICIT)
		a->port = 110;
	if (a->tls == CONF_TLS_NONE && !a->allow_plaintext)
		err_at(x, config_setting_get_member(g, "tls"),
		    "'%s.tls' is \"none\", which sends the password in "
		    "clear; it is refused unless allow_plaintext = true",
		    gname);
	if (check_token(x, g, gname, a) == 0)
		check_password(x, g, gname, a);
}

/*
 * delete = { ... }: a rule is set by its presence (0 is a value: after_days
 * = 0 deletes once archived, max_messages = 0 deletes nothing), and a
 * group with no rule at all is refused rather than taken for "never".
 */
static void
check_delete(struct ctx *x, const config_setting_t *g, const char *gname,
    void *base)
{
	static const struct {
		const char *name;
		unsigned rule;
	} bits[] = {
		{ "after_days", DELETE_R_AFTER_DAYS },
		{ "older_than_days", DELETE_R_OLDER_THAN },
		{ "bigger_than", DELETE_R_BIGGER_THAN },
		{ "keep_under", DELETE_R_KEEP_UNDER },
		{ "max_messages", DELETE_R_MAX_MESSAGES },
		{ "max_bytes", DELETE_R_MAX_BYTES },
	};
	struct conf_account *a = base;
	size_t i;

	a->policy.rules = 0;
	for (i = 0; i < sizeof(bits) / sizeof(bits[0]); i++)
		if (config_setting_get_member(g, bits[i].name) != NULL)
			a->policy.rules |= bits[i].rule;
	if ((a->policy.rules & DELETE_R_RULES) == 0)
		err_at(x, g, "'%s' has no rule: give after_days, "
		    "older_than_days, bigger_than or keep_under (or write "
		    "delete = \"never\")", gname);
}

static void
release_account(void *base)
{
	struct conf_account *a = base;

	free((char *)a->where);
}

static void
check_database(struct ctx *x, const config_setting_t *g, const char *gname,
    void *base)
{
	const struct conf *c = base;

	if (c->conninfo != NULL && strstr(c->conninfo, "password") != NULL)
		x->has_password = true;
}

/* A key name as signed notes allow it (store/note.h). */
static void
check_ledger(struct ctx *x, const config_setting_t *g, const char *gname,
    void *base)
{
	const struct conf *c = base;
	const char *p;

	if (c->ledger_key_name != NULL) {
		for (p = c->ledger_key_name; *p != '\0'; p++)
			if ((unsigned char)*p <= 0x20 || *p == 0x7f ||
			    *p == '+')
				break;
		if (*p != '\0' || strlen(c->ledger_key_name) > 256)
			err_at(x, config_setting_get_member(g, "key_name"),
			    "'%s.key_name' \"%s\" may hold no spaces, '+' or "
			    "control characters, and at most 256 bytes", gname,
			    c->ledger_key_name);
	}
	if (c->ledger_signing_key != NULL && c->ledger_key_name == NULL)
		err_at(x, g, "'%s.key_name' is required with "
		    "'%s.signing_key'", gname, gname);
}

static void
check_retention(struct ctx *x, const config_setting_t *g, const char *gname,
    void *base)
{
	const struct conf *c = base;
	struct retention_period p;
	char err[256];

	if (c->cooling_off != NULL &&
	    retention_period_parse(c->cooling_off, &p, err, sizeof(err)) == -1)
		err_at(x, g != NULL ? config_setting_get_member(g,
		    "cooling_off") : NULL, "'%s.cooling_off': %s", gname, err);
}

static void
check_top(struct ctx *x, const config_setting_t *g, const char *gname,
    void *base)
{
	const config_setting_t *list = config_setting_get_member(g, "accounts");
	const struct conf *c = base;
	size_t i, j;

	/* Names are complete only if nothing failed. */
	for (i = 0; i < c->naccounts && !x->failed; i++)
		for (j = 0; j < i; j++)
			if (strcmp(c->accounts[i].name,
			    c->accounts[j].name) == 0)
				err_at(x, config_setting_get_elem(list, i),
				    "'accounts[%zu].name' \"%s\" is used twice "
				    "(also at %s)", i, c->accounts[i].name,
				    c->accounts[j].where);
}

struct conf *
conf_load(const char *path, char *err, size_t errlen)
{
	struct ctx x = { .path = path, .err = err, .errlen = errlen };
	char who[128];
	struct conf *c;
	struct stat st;
	config_t cfg;
	bool ok;
	FILE *f;

	/*
	 * Opened here rather than by config_read_file(), which reports a
	 * directory as a read error with errno 0 ("Success").
	 */
	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "cannot read %s as %s: %s", path,
		    conf_user(who, sizeof(who)), strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "cannot read %s as %s: %s", path,
		    conf_user(who, sizeof(who)), strerror(EISDIR));
		fclose(f);
		return NULL;
	}
	config_init(&cfg);
	ok = config_read(&cfg, f) == CONFIG_TRUE;
	fclose(f);
	if (!ok) {
		if (config_error_type(&cfg) == CONFIG_ERR_FILE_IO)
			snprintf(err, errlen, "%s: cannot be read", path);
		else
			snprintf(err, errlen, "%s:%d: %s",
			    config_error_file(&cfg) ? config_error_file(&cfg) :
			    path, config_error_line(&cfg),
			    config_error_text(&cfg));
		config_destroy(&cfg);
		return NULL;
	}

	c = xcalloc(1, sizeof(*c));
	c->path = xstrdup(path);
	load_group(&x, CONF_SECTION_TOP, config_root_setting(&cfg), "", c);
	config_destroy(&cfg);

	if (x.failed) {
		conf_free(&c);
		return NULL;
	}
	if (x.has_password)
		check_permissions(path);
	return c;
}

void
conf_free(struct conf **cp)
{
	struct conf *c = *cp;

	if (c == NULL)
		return;
	free_group(CONF_SECTION_TOP, c);
	free(c->path);
	free(c); *cp = NULL;
}
