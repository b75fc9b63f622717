/*
 * Where a conninfo makes libpq connect, and whether whoever sits on the
 * path could answer in the server's place.  A COMMIT that returned is what
 * lets a session send DELE, so a link that is not authenticated puts the
 * mail itself at stake, not only its confidentiality.
 *
 * The answer follows libpq's own rules (fe-connect.c, connectOptions2()):
 * a setting absent from the conninfo comes from a service file, then the
 * environment (PGHOST, PGHOSTADDR, PGSSLMODE, PGREQUIRESSL, PGSERVICE),
 * then libpq's compiled default.  PQconninfoParse() applies none of these
 * and PQconndefaults() applies them all to an empty conninfo, so the two
 * together give what a connection from this process would use.  The one
 * thing neither gives is a service named by the conninfo itself
 * (service=NAME): ingestd does not read service files, so what such a
 * service could set counts as unknown, and only sslmode=verify-full in the
 * conninfo itself makes that link authenticated.
 */
#include "store/db.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

/* A setting that decides the link, and where its value came from. */
struct setting {
	const char *val;	/* NULL: none, or unknown */
	const char *from;	/* "conninfo", "PGHOST", "libpq's default" */
	bool unknown;		/* a service the conninfo names may set it */
};

static const PQconninfoOption *
option(const PQconninfoOption *opts, const char *keyword)
{
	for (; opts != NULL && opts->keyword != NULL; opts++)
		if (strcmp(opts->keyword, keyword) == 0)
			return opts;
	return NULL;
}

/*
 * keyword as libpq will use it: from the conninfo (parsed), else unknown
 * if the conninfo names a service, else from PQconndefaults() (defs).
 */
static struct setting
resolve(const PQconninfoOption *parsed, const PQconninfoOption *defs,
    const char *keyword, bool service)
{
	const PQconninfoOption *p = option(parsed, keyword);
	const PQconninfoOption *d = option(defs, keyword);
	struct setting s = { NULL, "libpq's default", false };
	const char *env;

	if (p != NULL && p->val != NULL) {
		s.val = p->val;
		s.from = "conninfo";
	} else if (service) {
		s.unknown = true;
		s.from = "the service";
	} else if (d != NULL && d->val != NULL) {
		s.val = d->val;
		if (d->envvar != NULL && (env = getenv(d->envvar)) != NULL &&
		    strcmp(env, d->val) == 0)
			s.from = d->envvar;
		/* libpq's older way to say sslmode=require. */
		else if (strcmp(keyword, "sslmode") == 0 &&
		    getenv("PGREQUIRESSL") != NULL)
			s.from = "PGREQUIRESSL";
	}
	return s;
}

static bool
empty(const char *s)
{
	return s == NULL || *s == '\0';
}

/* The number of elements of a comma-separated list, as libpq counts. */
static size_t
count_elems(const char *list)
{
	size_t n = 1;

	for (; *list != '\0'; list++)
		n += *list == ',';
	return n;
}

/* Element i of a comma-separated list into buf ("" past its end). */
static const char *
elem(const char *list, size_t i, char *buf, size_t len)
{
	const char *end;

	buf[0] = '\0';
	if (empty(list))
		return buf;
	for (; i > 0; i--) {
		if ((list = strchr(list, ',')) == NULL)
			return buf;
		list++;
	}
	end = strchr(list, ',');
	snprintf(buf, len, "%.*s", (int)(end != NULL ? (size_t)(end - list) :
	    strlen(list)), list);
	return buf;
}

/* libpq's is_unixsock_path(): a directory, or an abstract socket name. */
static bool
unix_socket(const char *host)
{
	return host[0] == '/' || host[0] == '@';
}

int
db_conninfo_transport(const char *conninfo, enum db_transport *t_r,
    char *what, size_t whatlen, char *err, size_t errlen)
{
	PQconninfoOption *parsed, *defs = NULL;
	const PQconninfoOption *svc;
	struct setting host, hostaddr, sslmode;
	char *msg = NULL, h[256], ha[256], first[600] = "", mode[300];
	size_t i, n, nhost, naddr, ntcp = 0;
	bool service, verified;
	int rc = -1;

	if ((parsed = PQconninfoParse(conninfo != NULL ? conninfo : "",
	    &msg)) == NULL) {
		snprintf(err, errlen, "%s",
		    msg != NULL ? msg : "out of memory");
		/* libpq's messages end in a newline. */
		err[strcspn(err, "\n")] = '\0';
		PQfreemem(msg);
		return -1;
	}
	svc = option(parsed, "service");
	service = svc != NULL && svc->val != NULL;
	if ((defs = PQconndefaults()) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	host = resolve(parsed, defs, "host", service);
	hostaddr = resolve(parsed, defs, "hostaddr", service);
	sslmode = resolve(parsed, defs, "sslmode", service);
	verified = sslmode.val != NULL &&
	    strcmp(sslmode.val, "verify-full") == 0;
	if (sslmode.unknown)
		snprintf(mode, sizeof(mode), "sslmode from service \"%s\", "
		    "which ingestd does not read", svc->val);
	else
		snprintf(mode, sizeof(mode), "sslmode \"%s\" (from %s)",
		    sslmode.val != NULL ? sslmode.val : "", sslmode.from);

	if (host.unknown || hostaddr.unknown) {
		*t_r = verified ? DB_TRANSPORT_VERIFIED :
		    DB_TRANSPORT_INSECURE;
		if (sslmode.unknown)
			snprintf(what, whatlen, "host, hostaddr and sslmode "
			    "from service \"%s\", which ingestd does not "
			    "read", svc->val);
		else
			snprintf(what, whatlen, "host and hostaddr from "
			    "service \"%s\", which ingestd does not read, %s",
			    svc->val, mode);
		rc = 0;
		goto done;
	}

	/* As connectOptions2(): a slot per hostaddr, else per host. */
	nhost = empty(host.val) ? 0 : count_elems(host.val);
	naddr = empty(hostaddr.val) ? 0 : count_elems(hostaddr.val);
	if (nhost > 0 && naddr > 0 && nhost != naddr) {
		snprintf(err, errlen, "%zu host names (host, from %s) for %zu "
		    "addresses (hostaddr, from %s): libpq refuses that", nhost,
		    host.from, naddr, hostaddr.from);
		goto done;
	}
	n = naddr > 0 ? naddr : nhost > 0 ? nhost : 1;
	for (i = 0; i < n; i++) {
		elem(hostaddr.val, i, ha, sizeof(ha));
		elem(host.val, i, h, sizeof(h));
		/* An empty slot is libpq's default, a Unix socket. */
		if (ha[0] == '\0' && (h[0] == '\0' || unix_socket(h)))
			continue;
		if (ntcp++ > 0)
			continue;
		if (ha[0] != '\0')
			snprintf(first, sizeof(first), "TCP to hostaddr \"%s\" "
			    "(from %s)", ha, hostaddr.from);
		else
			snprintf(first, sizeof(first), "TCP to host \"%s\" "
			    "(from %s)", h, host.from);
	}
	if (ntcp == 0) {
		*t_r = DB_TRANSPORT_LOCAL;
		if (empty(host.val))
			snprintf(what, whatlen, "Unix socket in libpq's "
			    "default directory");
		else
			snprintf(what, whatlen, "Unix socket in %s (from %s)",
			    host.val, host.from);
	} else {
		*t_r = verified ? DB_TRANSPORT_VERIFIED :
		    DB_TRANSPORT_INSECURE;
		if (ntcp > 1)
			snprintf(first + strlen(first),
			    sizeof(first) - strlen(first), " and %zu more "
			    "host%s", ntcp - 1, ntcp > 2 ? "s" : "");
		snprintf(what, whatlen, "%s, %s", first, mode);
	}
	rc = 0;
done:
	PQconninfoFree(parsed);
	PQconninfoFree(defs);
	return rc;
}
