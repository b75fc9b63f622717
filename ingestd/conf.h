/*
 * The configuration, loaded once from a libconfig file into an immutable
 * struct conf.  conf.c is the only includer of libconfig.h.
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
};

enum conf_delete {
	CONF_DELETE_AFTER_ARCHIVE,
	CONF_DELETE_NEVER,
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
	enum conf_auth auth;
	enum conf_delete delete;
	bool enabled;
	const char *where;	/* "file:line" of the account, for messages */
};

struct conf {
	char *path;
	char *state_dir;
	char *conninfo;		/* NULL: the embedded cluster under state_dir */
	char *pg_bindir;	/* NULL: the newest /usr/lib/postgresql/N/bin */
	int workers;
	int poll_interval;	/* seconds */
	int max_connections_per_host;
	int connect_timeout;	/* seconds, TCP connect + TLS handshake */
	int command_timeout;	/* seconds without progress on a command */
	int session_timeout;	/* seconds for a whole session */
	int zstd_level;
	size_t spool_mem;	/* compressed bytes in memory per message */
	unsigned batch_max;	/* messages per commit */
	unsigned dictionary_after; /* small messages stored without a zstd
				 * dictionary before one is trained; 0: none */
	struct conf_account *accounts;
	size_t naccounts;
};

/*
 * Loads and validates path.  On error returns NULL and writes a message
 * naming the file, line and setting into err.
 */
struct conf *conf_load(const char *path, char *err, size_t errlen);
void conf_free(struct conf **c);

#endif
