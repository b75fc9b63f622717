/*
 * The configuration, loaded once from a libconfig file into an immutable
 * struct conf.  conf.c is the only includer of libconfig.h.
 *
 * Each section of the file (the top level, database = { ... }, and each
 * account of accounts = ( ... )) is one table of struct conf_setting in
 * conf.c: a row names a setting, its type, the field it fills, its
 * default, its range or choices and what it is for.  The loader walks the
 * tables; README.md and ingestd.8 list the same rows, which
 * tests/unit/test_conf.c checks through conf_settings().
 */
#ifndef INGESTD_CONF_H
#define INGESTD_CONF_H

#include <stdbool.h>
#include <stddef.h>

enum conf_tls {
	CONF_TLS_IMPLICIT,	/* POP3S, port 995 */
	CONF_TLS_STARTTLS,	/* STLS on port 110; refused if not offered */
	CONF_TLS_NONE,		/* only with allow_plaintext = true */
};

enum conf_auth {
	CONF_AUTH_AUTO,
	CONF_AUTH_USER,
	CONF_AUTH_APOP,
	CONF_AUTH_PLAIN,
	CONF_AUTH_XOAUTH2,
	CONF_AUTH_OAUTHBEARER,
};

enum conf_grant {
	CONF_GRANT_REFRESH_TOKEN,
	CONF_GRANT_CLIENT_CREDENTIALS,
};

enum conf_delete {
	CONF_DELETE_AFTER_ARCHIVE,
	CONF_DELETE_NEVER,
	CONF_DELETE_POLICY,	/* delete = { ... }: see policy */
};

/*
 * delete = { ... } (ingestd/delete_policy.h): which settings the group
 * gave (enum delete_rule bits, set by the loader from their presence) and
 * their values.
 */
struct conf_delete_policy {
	unsigned rules;
	unsigned after_days;
	unsigned older_than_days;
	size_t bigger_than;
	size_t keep_under;
	unsigned max_messages;
	size_t max_bytes;
};

struct conf_account {
	char *name;
	char *host;
	int port;
	enum conf_tls tls;
	bool allow_plaintext;
	char *ca_file;		/* NULL: the system trust store */
	char *user;
	char *password;		/* from password or password_file */
	char *password_file;	/* NULL: the password is in the config */
	enum conf_auth auth;
	/* OAuth 2.0 (ingestd/oauth.h): a token from token_command, or from
	 * oauth = { ... } (has_oauth); never both, never with a password. */
	char *token_command;
	int token_timeout;	/* seconds for the command or the request */
	bool has_oauth;
	char *oauth_token_url;
	char *oauth_client_id;
	char *oauth_client_secret_file;
	char *oauth_scope;
	char *oauth_refresh_token_file;
	enum conf_grant oauth_grant;
	char *oauth_ca_file;	/* NULL: the system trust store */
	enum conf_delete delete;
	struct conf_delete_policy policy; /* CONF_DELETE_POLICY */
	bool implicit_delete;	/* the server deletes at QUIT what was
				 * retrieved, whatever CAPA says */
	bool enabled;
	const char *where;	/* "file:line" of the account, for messages */
};

struct conf {
	char *path;
	char *state_dir;
	char *conninfo;		/* NULL: the embedded cluster under state_dir */
	char *pg_bindir;	/* NULL: the newest /usr/lib/postgresql/N/bin */
	bool insecure_transport; /* delete after archiving even over a
				 * link to PostgreSQL that is not
				 * authenticated (main.c checks) */
	int workers;
	int poll_interval;	/* seconds */
	int max_connections_per_host;
	int connect_timeout;	/* seconds, TCP connect + TLS handshake */
	int command_timeout;	/* seconds without progress on a command */
	int session_timeout;	/* seconds for a whole session */
	int zstd_level;
	size_t spool_mem;	/* compressed bytes in memory per message */
	size_t spool_min_free;	/* free bytes the spool's file system keeps;
				 * below it, spooling to disk pauses */
	size_t max_message_size; /* body bytes past which RETR is refused */
	unsigned list_size_factor; /* body bytes past factor x LIST size +  */
	size_t list_size_slack;	/* slack are refused; factor 0: no bound */
	unsigned batch_max;	/* messages per commit */
	unsigned dictionary_after; /* small messages stored without a zstd
				 * dictionary before one is trained; 0: none */
	unsigned purge_approvals; /* purge.approvals: 1, or 2 actors */
	char *cooling_off;	/* retention.cooling_off, a period ("30d") */
	/* ledger = { ... }: checkpoints of the ledger (cmd_ledger.c). */
	char *ledger_signing_key;	/* PEM path; NULL: no checkpoints */
	char *ledger_key_name;		/* key name and checkpoint origin */
	int ledger_checkpoint_interval;	/* seconds; 0: only by command */
	char *ledger_checkpoint_command; /* gets each checkpoint on stdin */
	struct conf_account *accounts;
	size_t naccounts;
};

/* What a setting accepts, and the C type of the field it fills. */
enum conf_type {
	CONF_T_STRING,	/* char *: any text */
	CONF_T_PATH,	/* char *: a path, not opened while loading */
	CONF_T_FILE,	/* char *: a file that must be readable when loaded */
	CONF_T_INT,	/* int, from min to max */
	CONF_T_UINT,	/* unsigned, from min to max */
	CONF_T_SIZE,	/* size_t: bytes, from min to max; a string may
			 * end in K, M or G (KiB, MiB, GiB) */
	CONF_T_BOOL,	/* bool */
	CONF_T_CHOICE,	/* an int-sized enum, written as one of choices */
	CONF_T_GROUP,	/* { ... }: section sub, filling the same struct */
	CONF_T_LIST,	/* ( { ... }, ... ): an array of section sub at
			 * offset, its size_t length at count */
};

enum conf_section {
	CONF_SECTION_TOP,	/* struct conf */
	CONF_SECTION_DATABASE,	/* database = { ... }: struct conf too */
	CONF_SECTION_LEDGER,	/* ledger = { ... }: struct conf too */
	CONF_SECTION_PURGE,	/* purge = { ... }: struct conf too */
	CONF_SECTION_RETENTION,	/* retention = { ... }: struct conf too */
	CONF_SECTION_ACCOUNT,	/* each of accounts = ( ... ) */
	CONF_SECTION_OAUTH,	/* an account's oauth = { ... }: its struct */
	CONF_SECTION_DELETE,	/* an account's delete = { ... } */
	CONF_SECTION_COUNT,
};

enum conf_setting_flags {
	CONF_F_REQUIRED = 1 << 0,	/* absent, "" or ( ) is refused */
	CONF_F_SECRET = 1 << 1,		/* wiped when freed */
	CONF_F_OR_GROUP = 1 << 2,	/* CONF_T_CHOICE: or a group of
					 * section sub, which sets the
					 * choice to def_group */
};

/* A name a CONF_T_CHOICE setting accepts, and the enum value it means. */
struct conf_choice {
	const char *name;
	int value;
};

/*
 * One row of a section's table.  A setting absent from the file gets def
 * (numbers, bool, choice) or a copy of def_str (strings, NULL for none);
 * def_doc says what that default means where a value cannot, such as
 * "the system trust store" for a NULL ca_file.
 */
struct conf_setting {
	const char *name;
	enum conf_type type;
	size_t offset;		/* of its field in the section's struct */
	size_t count;		/* CONF_T_LIST: offset of the length */
	long long def;
	const char *def_str;
	const char *def_doc;
	long long min, max;	/* numbers */
	const struct conf_choice *choices; /* ends with a NULL name */
	enum conf_section sub;	/* CONF_T_GROUP and CONF_T_LIST */
	int def_group;		/* CONF_F_OR_GROUP: the choice a group
				 * means */
	enum conf_setting_flags flags;
	const char *doc;	/* what it is for, in one line */
};

/*
 * The rows of a section, in the order the loader checks them and the
 * manuals list them; their number in *n_r.  Static and read-only.
 */
const struct conf_setting *conf_settings(enum conf_section section,
    size_t *n_r);

/*
 * Loads and validates path.  On error returns NULL and writes a message
 * naming the file, line and setting into err.
 */
struct conf *conf_load(const char *path, char *err, size_t errlen);
void conf_free(struct conf **c);

/*
 * "user NAME (uid N)" for the effective user, or "uid N" if it has no
 * name, into buf: messages about a file that cannot be read or written
 * say as whom, since the service runs as its own user.  Returns buf.
 * Uses getpwuid(), so only at startup; errno is kept.
 */
const char *conf_user(char *buf, size_t len);

#endif
