/*
 * store/db_transport.c: which conninfo strings give a link to PostgreSQL
 * that whoever sits on the path could answer in the server's place.  Every
 * form libpq takes (keywords, URIs, host lists, hostaddr), and the
 * environment and service files libpq fills absent settings from.
 */
#include "tests/unit/test.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "store/db.h"

#define TESTS(X)                                                         \
	X(test_unix_sockets)                                             \
	X(test_verified_tcp)                                             \
	X(test_insecure_tcp)                                             \
	X(test_what_names_the_link)                                      \
	X(test_refused_by_libpq)                                         \
	X(test_environment)                                              \
	X(test_service_file)                                             \
	X(test_service_in_conninfo)
TESTS(TEST_DECLARE)

static const char *const pgenv[] = {
	"PGHOST", "PGHOSTADDR", "PGSSLMODE", "PGREQUIRESSL", "PGSERVICE",
	"PGSERVICEFILE", "PGSYSCONFDIR", "PGPORT", "PGDATABASE",
};

/* The tests start from no PG* variable, whatever the caller had set. */
static void
clear_env(void)
{
	size_t i;

	for (i = 0; i < sizeof(pgenv) / sizeof(pgenv[0]); i++)
		ASSERT_TRUE(unsetenv(pgenv[i]) == 0);
}

static char what[1024];

static const char *const names[] = { "local", "verified", "insecure" };

/* conninfo's link, which must parse. */
static enum db_transport
classify(const char *conninfo)
{
	enum db_transport t = DB_TRANSPORT_INSECURE;
	char err[512] = "";

	what[0] = '\0';
	if (db_conninfo_transport(conninfo, &t, what, sizeof(what), err,
	    sizeof(err)) == -1)
		TEST_FAIL_("\"%s\": refused: %s", conninfo ? conninfo : "NULL",
		    err);
	ASSERT_TRUE(what[0] != '\0');
	ASSERT_TRUE(strchr(what, '\n') == NULL);
	return t;
}

static void
expect(const char *conninfo, enum db_transport want)
{
	enum db_transport got = classify(conninfo);

	if (got != want)
		TEST_FAIL_("\"%s\" is %s (%s); want %s",
		    conninfo ? conninfo : "NULL", names[got], what,
		    names[want]);
}

#define ASSERT_CONTAINS(s, sub)                                          \
	do {                                                             \
		if (strstr((s), (sub)) == NULL)                          \
			TEST_FAIL_("\"%s\" lacks \"%s\"", (s), (sub));   \
	} while (0)

static void
test_unix_sockets(void)
{
	static const char *const local[] = {
		"",
		"dbname=ingestd",
		"host=/run/postgresql dbname=ingestd",
		"host=/var/run/postgresql port=5433 user=ingestd",
		"host='/srv/pg sock' dbname=x",
		"host=/run/postgresql,/tmp dbname=x",
		"host=@ingestd-abstract",
		"host=",
		"host=/run/postgresql sslmode=disable",
		"postgresql:///ingestd",
		"postgres:///ingestd",
		"postgresql://%2Frun%2Fpostgresql/ingestd",
		"postgresql:///ingestd?host=/run/postgresql",
		"postgresql:///ingestd?host=/run/postgresql&sslmode=disable",
		"postgresql://%2Frun%2Fpostgresql:5433/ingestd?user=x",
	};
	size_t i;

	clear_env();
	expect(NULL, DB_TRANSPORT_LOCAL);
	for (i = 0; i < sizeof(local) / sizeof(local[0]); i++)
		expect(local[i], DB_TRANSPORT_LOCAL);
}

static void
test_verified_tcp(void)
{
	static const char *const verified[] = {
		"host=db.example.com sslmode=verify-full",
		"host=db.example.com dbname=x sslmode='verify-full'",
		"hostaddr=192.0.2.1 host=db.example.com sslmode=verify-full",
		"hostaddr=192.0.2.1 sslmode=verify-full",
		"host=a.example.com,b.example.com sslmode=verify-full",
		"host=/run/postgresql,db.example.com sslmode=verify-full",
		"host=localhost sslmode=verify-full",
		"postgresql://db.example.com/ingestd?sslmode=verify-full",
		"postgresql://u@db.example.com:5433/x?sslmode=verify-full",
		"postgresql://a.example.com:5432,b.example.com:5433/x"
		    "?sslmode=verify-full",
		"postgresql://[2001:db8::1]/x?sslmode=verify-full",
		"postgresql:///x?host=db.example.com&sslmode=verify-full",
		"postgresql://db.example.com/x?sslmode=verify-full"
		    "&sslrootcert=/etc/ssl/pg-ca.pem",
	};
	size_t i;

	clear_env();
	for (i = 0; i < sizeof(verified) / sizeof(verified[0]); i++)
		expect(verified[i], DB_TRANSPORT_VERIFIED);
}

static void
test_insecure_tcp(void)
{
	static const char *const insecure[] = {
		/* Loopback TCP is TCP: another local user can take the port. */
		"host=localhost",
		"host=localhost dbname=ingestd",
		"hostaddr=127.0.0.1",
		"hostaddr=::1 dbname=x",
		"host=127.0.0.1 port=5432",
		/* hostaddr wins over a socket directory in host. */
		"host=/run/postgresql hostaddr=127.0.0.1",
		"host=db.example.com",
		"host=db.example.com sslmode=disable",
		"host=db.example.com sslmode=allow",
		"host=db.example.com sslmode=prefer",
		"host=db.example.com sslmode=require",
		/* The chain without the name: any certificate of the CA. */
		"host=db.example.com sslmode=verify-ca",
		"host=db.example.com sslmode=VERIFY-FULL",
		/* One host of the list over TCP is enough. */
		"host=/run/postgresql,db.example.com",
		"host=db.example.com,/run/postgresql",
		"host=,db.example.com",
		"host=a.example.com,b.example.com",
		"hostaddr=,192.0.2.1 host=/run/postgresql,db.example.com",
		"postgresql://db.example.com/ingestd",
		"postgresql://localhost/ingestd",
		"postgresql://127.0.0.1:5432/ingestd",
		"postgresql://[::1]/ingestd",
		"postgresql://db.example.com/ingestd?sslmode=require",
		"postgresql://db.example.com/ingestd?sslmode=verify-ca",
		"postgresql://a.example.com,b.example.com/x",
		"postgresql:///x?host=db.example.com",
		"postgresql:///x?hostaddr=127.0.0.1",
		"postgresql://%2Frun%2Fpostgresql/x?hostaddr=127.0.0.1",
	};
	size_t i;

	clear_env();
	for (i = 0; i < sizeof(insecure) / sizeof(insecure[0]); i++)
		expect(insecure[i], DB_TRANSPORT_INSECURE);
}

static void
test_what_names_the_link(void)
{
	clear_env();
	classify("host=db.example.com dbname=x password=s3cret");
	ASSERT_STREQ(what, "TCP to host \"db.example.com\" (from conninfo), "
	    "sslmode \"prefer\" (from libpq's default)");
	ASSERT_TRUE(strstr(what, "s3cret") == NULL);

	classify("hostaddr=127.0.0.1 sslmode=require");
	ASSERT_STREQ(what, "TCP to hostaddr \"127.0.0.1\" (from conninfo), "
	    "sslmode \"require\" (from conninfo)");

	classify("host=/run/postgresql,a.example.com,b.example.com,c");
	ASSERT_STREQ(what, "TCP to host \"a.example.com\" (from conninfo) "
	    "and 2 more hosts, sslmode \"prefer\" (from libpq's default)");

	classify("host=a.example.com,/tmp,b.example.com sslmode=verify-full");
	ASSERT_STREQ(what, "TCP to host \"a.example.com\" (from conninfo) "
	    "and 1 more host, sslmode \"verify-full\" (from conninfo)");

	classify("host=/run/postgresql");
	ASSERT_STREQ(what, "Unix socket in /run/postgresql (from conninfo)");

	classify("dbname=x");
	ASSERT_STREQ(what, "Unix socket in libpq's default directory");
}

static void
test_refused_by_libpq(void)
{
	static const char *const refused[] = {
		"host=a,b hostaddr=192.0.2.1",
		"host=a hostaddr=192.0.2.1,192.0.2.2",
		"dbname",
		"nonsense words",
		"no_such_option=1",
		"host='unterminated",
		"postgresql://db.example.com/x?no_such_option=1",
		"postgresql://[::1/x",
	};
	enum db_transport t;
	char err[512];
	size_t i;

	clear_env();
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		err[0] = '\0';
		if (db_conninfo_transport(refused[i], &t, what, sizeof(what),
		    err, sizeof(err)) != -1)
			TEST_FAIL_("\"%s\" accepted as %s (%s)", refused[i],
			    names[t], what);
		ASSERT_TRUE(err[0] != '\0');
		ASSERT_TRUE(strchr(err, '\n') == NULL);
	}
	ASSERT_TRUE(db_conninfo_transport("host=a,b hostaddr=192.0.2.1", &t,
	    what, sizeof(what), err, sizeof(err)) == -1);
	ASSERT_STREQ(err, "2 host names (host, from conninfo) for 1 addresses "
	    "(hostaddr, from conninfo): libpq refuses that");
}

/* What conninfo leaves out, libpq takes from PG* variables. */
static void
test_environment(void)
{
	clear_env();
	ASSERT_TRUE(setenv("PGHOST", "db.example.com", 1) == 0);
	expect("dbname=x", DB_TRANSPORT_INSECURE);
	ASSERT_CONTAINS(what, "host \"db.example.com\" (from PGHOST)");
	expect("", DB_TRANSPORT_INSECURE);
	expect("postgresql:///x", DB_TRANSPORT_INSECURE);
	/* What conninfo says wins, an empty host too. */
	expect("host=/run/postgresql", DB_TRANSPORT_LOCAL);
	expect("host=", DB_TRANSPORT_LOCAL);
	expect("dbname=x sslmode=verify-full", DB_TRANSPORT_VERIFIED);

	ASSERT_TRUE(setenv("PGSSLMODE", "verify-full", 1) == 0);
	expect("dbname=x", DB_TRANSPORT_VERIFIED);
	ASSERT_CONTAINS(what, "sslmode \"verify-full\" (from PGSSLMODE)");
	expect("dbname=x sslmode=require", DB_TRANSPORT_INSECURE);
	ASSERT_CONTAINS(what, "sslmode \"require\" (from conninfo)");

	clear_env();
	ASSERT_TRUE(setenv("PGSSLMODE", "verify-full", 1) == 0);
	expect("dbname=x", DB_TRANSPORT_LOCAL);

	/* A hostaddr from the environment turns a socket into TCP. */
	clear_env();
	ASSERT_TRUE(setenv("PGHOSTADDR", "127.0.0.1", 1) == 0);
	expect("host=/run/postgresql", DB_TRANSPORT_INSECURE);
	ASSERT_CONTAINS(what, "hostaddr \"127.0.0.1\" (from PGHOSTADDR)");
	expect("host=/run/postgresql hostaddr=", DB_TRANSPORT_LOCAL);

	/* PGREQUIRESSL=1 is an older way to say sslmode=require. */
	clear_env();
	ASSERT_TRUE(setenv("PGREQUIRESSL", "1", 1) == 0);
	expect("host=db.example.com", DB_TRANSPORT_INSECURE);
	ASSERT_CONTAINS(what, "sslmode \"require\" (from PGREQUIRESSL)");
	clear_env();
}

/* Writes text to a service file in a fresh directory; returns its path. */
static const char *
service_file(const char *text)
{
	static char dir[64], path[128];
	FILE *f;

	if (dir[0] == '\0') {
		snprintf(dir, sizeof(dir), "/tmp/ingestd-test-svc.XXXXXX");
		if (mkdtemp(dir) == NULL)
			TEST_FAIL_("mkdtemp: %s", strerror(errno));
	}
	snprintf(path, sizeof(path), "%s/pg_service.conf", dir);
	if ((f = fopen(path, "w")) == NULL)
		TEST_FAIL_("%s: %s", path, strerror(errno));
	fputs(text, f);
	fclose(f);
	return path;
}

/* PGSERVICE names a service whose settings libpq fills in too. */
static void
test_service_file(void)
{
	const char *path;
	enum db_transport t;
	char err[512];

	clear_env();
	path = service_file("[tcp]\nhost=db.example.com\n"
	    "[verified]\nhost=db.example.com\nsslmode=verify-full\n"
	    "[local]\nhost=/run/postgresql\n");
	ASSERT_TRUE(setenv("PGSERVICEFILE", path, 1) == 0);
	ASSERT_TRUE(setenv("PGSERVICE", "tcp", 1) == 0);
	expect("dbname=x", DB_TRANSPORT_INSECURE);
	ASSERT_CONTAINS(what, "db.example.com");
	expect("host=/run/postgresql", DB_TRANSPORT_LOCAL);
	ASSERT_TRUE(setenv("PGSERVICE", "verified", 1) == 0);
	expect("dbname=x", DB_TRANSPORT_VERIFIED);
	ASSERT_TRUE(setenv("PGSERVICE", "local", 1) == 0);
	expect("dbname=x", DB_TRANSPORT_LOCAL);

	/*
	 * PQconndefaults() passes over a service it cannot find, and so
	 * does the answer; connecting fails with libpq's own message.
	 */
	ASSERT_TRUE(setenv("PGSERVICE", "nosuch", 1) == 0);
	ASSERT_TRUE(db_conninfo_transport("dbname=x", &t, what, sizeof(what),
	    err, sizeof(err)) == 0);
	ASSERT_EQ(t, DB_TRANSPORT_LOCAL);
	(void)unlink(path);
	*strrchr((char *)path, '/') = '\0';
	(void)rmdir(path);
	clear_env();
}

/*
 * A service named in conninfo is not read: unless conninfo itself says
 * sslmode=verify-full, the link is unknown, so not authenticated.
 */
static void
test_service_in_conninfo(void)
{
	clear_env();
	expect("service=archive", DB_TRANSPORT_INSECURE);
	ASSERT_STREQ(what, "host, hostaddr and sslmode from service "
	    "\"archive\", which ingestd does not read");
	expect("service=archive host=/run/postgresql", DB_TRANSPORT_INSECURE);
	expect("service=archive sslmode=verify-full", DB_TRANSPORT_VERIFIED);
	expect("service=archive host=/run/postgresql hostaddr='' "
	    "sslmode=disable", DB_TRANSPORT_LOCAL);
	expect("service=archive host=db.example.com hostaddr=''",
	    DB_TRANSPORT_INSECURE);
	ASSERT_CONTAINS(what, "sslmode from service \"archive\"");
	expect("postgresql://db.example.com/x?service=archive"
	    "&sslmode=verify-full", DB_TRANSPORT_VERIFIED);
}

TEST_MAIN(TESTS)
