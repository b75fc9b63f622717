/*
 * libconfig -> struct conf.  The only includer of libconfig.h.
 *
 * Every setting is looked up through a table of the names we know, so an
 * unknown or misspelt key is an error rather than silently ignored, and
 * every message names the file, the line and the setting.
 */
#include "ingestd/conf.h"

#include <errno.h>
#include <fcntl.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ingestd/base/log.h"
#include "ingestd/base/xmalloc.h"

#define CONF_DEFAULT_STATE_DIR "/var/lib/ingestd"

struct ctx {
	const char *path;
	char *err;
	size_t errlen;
	bool failed;
};

static void err_at(struct ctx *x, const config_setting_t *s, const char *fmt,
    ...) __attribute__((format(printf, 3, 4)));

/* Records the first error only: later ones are usually its consequences. */
static void
err_at(struct ctx *x, const config_setting_t *s, const char *fmt, ...)
{
	char what[384];
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

/* The dotted path of a setting, e.g. accounts.[0].port or workers. */
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

/* Rejects any member of group g not in names (NULL-terminated). */
static void
check_known(struct ctx *x, const config_setting_t *g,
    const char *const *names)
{
	char buf[256];
	int i, n = config_setting_length(g);

	for (i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(g, i);
		const char *const *k;

		for (k = names; *k != NULL; k++)
			if (strcmp(*k, s->name) == 0)
				break;
		if (*k == NULL)
			err_at(x, s, "unknown setting '%s'",
			    setting_name(s, buf, sizeof(buf)));
	}
}

static char *
get_string(struct ctx *x, const config_setting_t *g, const char *key,
    const char *def)
{
	const config_setting_t *s = config_setting_get_member(g, key);
	char buf[256];

	if (s == NULL)
		return def ? xstrdup(def) : NULL;
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		err_at(x, s, "'%s' must be a string in double quotes",
		    setting_name(s, buf, sizeof(buf)));
		return NULL;
	}
	return xstrdup(config_setting_get_string(s));
}

static int
get_int(struct ctx *x, const config_setting_t *g, const char *key, int def,
    int min, int max)
{
	const config_setting_t *s = config_setting_get_member(g, key);
	char buf[256];
	long long v;

	if (s == NULL)
		return def;
	if (config_setting_type(s) != CONFIG_TYPE_INT &&
	    config_setting_type(s) != CONFIG_TYPE_INT64) {
		err_at(x, s, "'%s' must be a whole number",
		    setting_name(s, buf, sizeof(buf)));
		return def;
	}
	v = config_setting_get_int64(s);
	if (v < min || v > max) {
		err_at(x, s, "'%s' is %lld; it must be from %d to %d",
		    setting_name(s, buf, sizeof(buf)), v, min, max);
		return def;
	}
	return (int)v;
}

static bool
get_bool(struct ctx *x, const config_setting_t *g, const char *key, bool def)
{
	const config_setting_t *s = config_setting_get_member(g, key);
	char buf[256];

	if (s == NULL)
		return def;
	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		err_at(x, s, "'%s' must be true or false",
		    setting_name(s, buf, sizeof(buf)));
		return def;
	}
	return config_setting_get_bool(s);
}

/* A string setting that must be one of choices; returns its index. */
static int
get_choice(struct ctx *x, const config_setting_t *g, const char *key,
    const char *const *choices, int def)
{
	const config_setting_t *s = config_setting_get_member(g, key);
	char buf[256], list[256] = "";
	const char *v;
	int i;

	if (s == NULL)
		return def;
	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		v = config_setting_get_string(s);
		for (i = 0; choices[i] != NULL; i++)
			if (strcmp(v, choices[i]) == 0)
				return i;
	}
	for (i = 0; choices[i] != NULL; i++) {
		strncat(list, i ? ", \"" : "\"",
		    sizeof(list) - strlen(list) - 1);
		strncat(list, choices[i], sizeof(list) - strlen(list) - 1);
		strncat(list, "\"", sizeof(list) - strlen(list) - 1);
	}
	err_at(x, s, "'%s' must be one of %s",
	    setting_name(s, buf, sizeof(buf)), list);
	return def;
}

/* A file holding passwords must not be readable by other users. */
static void
check_permissions(const char *path)
{
	struct stat st;

	if (stat(path, &st) == -1)
		return;
	if (st.st_mode & (S_IRGRP | S_IROTH))
		log_warnx("%s holds passwords and is readable by other users "
		    "(mode %03o); run: chmod 600 %s", path,
		    (unsigned)(st.st_mode & 0777), path);
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
		err_at(x, s, "'%s' \"%s\": %s", name, path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		err_at(x, s, "'%s' \"%s\": %s", name, path, strerror(EISDIR));
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
		err_at(x, s, "'%s' \"%s\": %s", name, path, strerror(errno));
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

static const char *const account_keys[] = {
	"name", "host", "port", "tls", "allow_plaintext", "ca_file", "user",
	"password", "password_file", "auth", "delete", "enabled", NULL
};
static const char *const tls_names[] = { "implicit", "starttls", "none",
	NULL };
static const char *const auth_names[] = { "auto", "user", "apop", "plain",
	NULL };
static const char *const delete_names[] = { "after-archive", "never", NULL };

static void
load_account(struct ctx *x, const config_setting_t *s, struct conf_account *a,
    bool *has_password_r)
{
	const config_setting_t *pw, *pwf;
	char buf[256];

	if (!config_setting_is_group(s)) {
		err_at(x, s, "'%s' must be a group { ... }",
		    setting_name(s, buf, sizeof(buf)));
		return;
	}
	check_known(x, s, account_keys);
	a->where = xasprintf("%s:%u", x->path, config_setting_source_line(s));
	a->name = get_string(x, s, "name", NULL);
	a->host = get_string(x, s, "host", NULL);
	a->user = get_string(x, s, "user", NULL);
	a->ca_file = get_string(x, s, "ca_file", NULL);
	a->tls = get_choice(x, s, "tls", tls_names, CONF_TLS_IMPLICIT);
	a->allow_plaintext = get_bool(x, s, "allow_plaintext", false);
	a->port = get_int(x, s, "port",
	    a->tls == CONF_TLS_IMPLICIT ? 995 : 110, 1, 65535);
	a->auth = get_choice(x, s, "auth", auth_names, CONF_AUTH_AUTO);
	a->delete = get_choice(x, s, "delete", delete_names,
	    CONF_DELETE_AFTER_ARCHIVE);
	a->enabled = get_bool(x, s, "enabled", true);

	/* Messages name each setting as 'accounts[N].key'. */
	setting_name(s, buf, sizeof(buf));
	if (a->name == NULL || *a->name == '\0')
		err_at(x, s, "'%s.name' is required", buf);
	if (a->host == NULL || *a->host == '\0')
		err_at(x, s, "'%s.host' is required", buf);
	if (a->user == NULL || *a->user == '\0')
		err_at(x, s, "'%s.user' is required", buf);
	if (a->tls == CONF_TLS_NONE && !a->allow_plaintext)
		err_at(x, config_setting_get_member(s, "tls"),
		    "'%s.tls' is \"none\", which sends the password in "
		    "clear; it is refused unless allow_plaintext = true", buf);
	if (a->ca_file != NULL && readable_file(a->ca_file) == -1)
		err_at(x, config_setting_get_member(s, "ca_file"),
		    "'%s.ca_file' \"%s\": %s", buf, a->ca_file,
		    strerror(errno));

	pw = config_setting_get_member(s, "password");
	pwf = config_setting_get_member(s, "password_file");
	if (pw != NULL && pwf != NULL)
		err_at(x, pwf, "'%s.password_file': set 'password' or "
		    "'password_file', not both", buf);
	else if (pw != NULL) {
		a->password = get_string(x, s, "password", NULL);
		if (a->password != NULL && *a->password == '\0')
			err_at(x, pw, "'%s.password' is empty", buf);
		*has_password_r = true;
	} else if (pwf != NULL) {
		char *path = get_string(x, s, "password_file", NULL);

		if (path != NULL)
			a->password = read_password_file(x, pwf, path);
		free(path); path = NULL;
	} else
		err_at(x, s, "'%s.password' or '%s.password_file' is required",
		    buf, buf);
}

static const char *const top_keys[] = {
	"state_dir", "database", "workers", "poll_interval",
	"max_connections_per_host", "connect_timeout", "command_timeout",
	"session_timeout", "zstd_level", "spool_memory", "batch_max",
	"dictionary_after", "accounts", NULL
};
static const char *const database_keys[] = { "conninfo", "pg_bindir", NULL };

static void
load_accounts(struct ctx *x, struct conf *c, const config_setting_t *list,
    bool *has_password_r)
{
	size_t i, j;

	if (!config_setting_is_list(list) && !config_setting_is_array(list)) {
		err_at(x, list, "'accounts' must be a list ( { ... }, ... )");
		return;
	}
	c->naccounts = config_setting_length(list);
	if (c->naccounts == 0)
		err_at(x, list, "'accounts' is empty; it needs at least one "
		    "account { name = ...; host = ...; ... }");
	c->accounts = xcalloc(c->naccounts ? c->naccounts : 1,
	    sizeof(*c->accounts));
	for (i = 0; i < c->naccounts; i++)
		load_account(x, config_setting_get_elem(list, i),
		    &c->accounts[i], has_password_r);
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
	const config_setting_t *root, *db, *acc;
	bool has_password = false, ok;
	struct conf *c;
	struct stat st;
	config_t cfg;
	FILE *f;

	/*
	 * Opened here rather than by config_read_file(), which reports a
	 * directory as a read error with errno 0 ("Success").
	 */
	if ((f = fopen(path, "r")) == NULL) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s: %s", path, strerror(EISDIR));
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
	root = config_root_setting(&cfg);
	check_known(&x, root, top_keys);
	c->state_dir = get_string(&x, root, "state_dir",
	    CONF_DEFAULT_STATE_DIR);
	c->workers = get_int(&x, root, "workers", 2, 1, 256);
	c->poll_interval = get_int(&x, root, "poll_interval", 300, 1,
	    7 * 86400);
	c->max_connections_per_host = get_int(&x, root,
	    "max_connections_per_host", 32, 1, 100000);
	c->connect_timeout = get_int(&x, root, "connect_timeout", 30, 1, 3600);
	c->command_timeout = get_int(&x, root, "command_timeout", 120, 1,
	    86400);
	c->session_timeout = get_int(&x, root, "session_timeout", 6 * 3600, 1,
	    7 * 86400);
	c->zstd_level = get_int(&x, root, "zstd_level", 3, 1, 19);
	c->spool_mem = (size_t)get_int(&x, root, "spool_memory", 64 * 1024,
	    4096, 64 * 1024 * 1024);
	c->batch_max = (unsigned)get_int(&x, root, "batch_max", 256, 1,
	    100000);
	c->dictionary_after = (unsigned)get_int(&x, root, "dictionary_after",
	    1000, 0, 100000000);

	if ((db = config_setting_get_member(root, "database")) != NULL) {
		if (!config_setting_is_group(db))
			err_at(&x, db, "'database' must be a group { ... }");
		else {
			check_known(&x, db, database_keys);
			c->conninfo = get_string(&x, db, "conninfo", NULL);
			c->pg_bindir = get_string(&x, db, "pg_bindir", NULL);
			if (c->conninfo != NULL &&
			    strstr(c->conninfo, "password") != NULL)
				has_password = true;
		}
	}
	if ((acc = config_setting_get_member(root, "accounts")) != NULL)
		load_accounts(&x, c, acc, &has_password);
	else
		err_at(&x, NULL, "'accounts' is required: a list of at least "
		    "one account ( { name = ...; host = ...; ... } )");
	config_destroy(&cfg);

	if (x.failed) {
		conf_free(&c);
		return NULL;
	}
	if (has_password)
		check_permissions(path);
	return c;
}

void
conf_free(struct conf **cp)
{
	struct conf *c = *cp;
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < c->naccounts; i++) {
		struct conf_account *a = &c->accounts[i];

		free(a->name);
		free(a->host);
		free(a->ca_file);
		free(a->user);
		if (a->password != NULL)
			explicit_bzero(a->password, strlen(a->password));
		free(a->password);
		free((char *)a->where);
	}
	free(c->accounts);
	free(c->path);
	free(c->state_dir);
	free(c->conninfo);
	free(c->pg_bindir);
	free(c); *cp = NULL;
}
