/*
 * The embedded PostgreSQL cluster (see pgembed.h).
 *
 * The server binaries run as child processes through posix_spawn(), never
 * through a shell of ours, with their output appended to a log file whose
 * tail goes into the error message when they fail.  The only shell in the
 * path is pg_ctl's own, which interprets its -o string; the state
 * directory is therefore restricted to characters that need no quoting
 * beyond single quotes.
 */
#include "ingestd/pgembed.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ingestd/base/log.h"
#include "ingestd/base/xmalloc.h"
#include "store/db.h"

extern char **environ;

/* No TCP, so the port only names the socket file: any fixed one will do. */
#define PGEMBED_PORT	"5432"
#define PGEMBED_SOCKET	"/.s.PGSQL." PGEMBED_PORT
#define PGEMBED_USER	"ingestd"
#define PGEMBED_DB	"ingestd"
#define PGEMBED_TAIL	600	/* bytes of a log quoted in an error, */
#define PGEMBED_LINES	3	/* at most this many lines */

struct pgembed {
	char *dir;		/* absolute state directory */
	char *bindir;
	char *pgdata;
	char *log;		/* output of initdb and pg_ctl */
	char *serverlog;	/* the server's own log */
};

/*
 * The last lines of path, on one line, into out: what the failing program
 * said last is usually why.
 */
static void
pgembed_tail(const char *path, char *out, size_t outlen)
{
	char buf[PGEMBED_TAIL + 1], *p;
	ssize_t n;
	off_t size;
	size_t i, j;
	int fd;

	if (outlen == 0)
		return;
	out[0] = '\0';
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return;
	if ((size = lseek(fd, 0, SEEK_END)) == -1) {
		close(fd);
		return;
	}
	n = pread(fd, buf, PGEMBED_TAIL,
	    size > PGEMBED_TAIL ? size - PGEMBED_TAIL : 0);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	/* The last PGEMBED_LINES lines, or what of them fits. */
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	for (p = buf + n, i = 0; p > buf; p--)
		if (p[-1] == '\n' && ++i == PGEMBED_LINES)
			break;
	if (p == buf && size > PGEMBED_TAIL && (p = strchr(buf, '\n')) !=
	    NULL && p[1] != '\0')
		p++;	/* not from the middle of a line */
	else if (p == NULL)
		p = buf;
	for (i = j = 0; p[i] != '\0' && j + 3 < outlen; i++) {
		if (p[i] == '\n') {
			if (p[i + 1] != '\0' && j > 0) {
				out[j++] = ' ';
				out[j++] = '|';
				out[j++] = ' ';
			}
		} else if ((unsigned char)p[i] >= 0x20)
			out[j++] = p[i];
	}
	out[j] = '\0';
}

/*
 * Runs argv (argv[0] a path) with stdin from /dev/null and stdout and
 * stderr appended to logpath.  Returns the exit status (0-255), or -1 with
 * err filled if it could not be run or was killed.
 */
static int
pgembed_run(char *const argv[], const char *logpath, char *err,
    size_t errlen)
{
	posix_spawn_file_actions_t fa;
	pid_t pid, w;
	int e, status;

	if ((e = posix_spawn_file_actions_init(&fa)) != 0) {
		snprintf(err, errlen, "running %s: %s", argv[0], strerror(e));
		return -1;
	}
	if ((e = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null",
	    O_RDONLY, 0)) != 0 ||
	    (e = posix_spawn_file_actions_addopen(&fa, 1, logpath,
	    O_WRONLY | O_CREAT | O_APPEND, 0600)) != 0 ||
	    (e = posix_spawn_file_actions_adddup2(&fa, 1, 2)) != 0 ||
	    (e = posix_spawn(&pid, argv[0], &fa, NULL, argv,
	    environ)) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		snprintf(err, errlen, "running %s: %s", argv[0], strerror(e));
		return -1;
	}
	posix_spawn_file_actions_destroy(&fa);
	while ((w = waitpid(pid, &status, 0)) == -1 && errno == EINTR)
		;
	if (w == -1) {
		snprintf(err, errlen, "waiting for %s: %s", argv[0],
		    strerror(errno));
		return -1;
	}
	if (WIFSIGNALED(status)) {
		snprintf(err, errlen, "%s killed by signal %d", argv[0],
		    WTERMSIG(status));
		return -1;
	}
	return WEXITSTATUS(status);
}

/* Whether dir holds an executable initdb and pg_ctl. */
static bool
pgembed_bindir_ok(const char *dir)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/initdb", dir);
	if (access(path, X_OK) == -1)
		return false;
	snprintf(path, sizeof(path), "%s/pg_ctl", dir);
	return access(path, X_OK) == 0;
}

/* The newest /usr/lib/postgresql/N/bin (Debian's layout); NULL if none. */
static char *
pgembed_find_bindir(void)
{
	const char *root = "/usr/lib/postgresql";
	struct dirent *de;
	char *best = NULL, *cand, *end;
	long major, minor, bmajor = -1, bminor = -1;
	DIR *d;

	if ((d = opendir(root)) == NULL)
		return NULL;
	while ((de = readdir(d)) != NULL) {
		/* "15", or "9.6" before PostgreSQL 10. */
		major = strtol(de->d_name, &end, 10);
		if (end == de->d_name)
			continue;
		minor = *end == '.' ? strtol(end + 1, &end, 10) : 0;
		if (*end != '\0')
			continue;
		if (major < bmajor || (major == bmajor && minor <= bminor))
			continue;
		cand = xasprintf("%s/%s/bin", root, de->d_name);
		if (!pgembed_bindir_ok(cand)) {
			free(cand);
			continue;
		}
		free(best);
		best = cand;
		bmajor = major;
		bminor = minor;
	}
	closedir(d);
	return best;
}

static void
pgembed_release(struct pgembed *pg)
{
	free(pg->dir); pg->dir = NULL;
	free(pg->bindir); pg->bindir = NULL;
	free(pg->pgdata); pg->pgdata = NULL;
	free(pg->log); pg->log = NULL;
	free(pg->serverlog); pg->serverlog = NULL;
}

/* Resolves the paths; 0 or -1 with err filled. */
static int
pgembed_init(struct pgembed *pg, const char *state_dir, const char *bindir,
    char *err, size_t errlen)
{
	char real[PATH_MAX];
	const char *c;

	memset(pg, 0, sizeof(*pg));
	if (realpath(state_dir, real) == NULL) {
		snprintf(err, errlen, "%s: %s", state_dir, strerror(errno));
		return -1;
	}
	/*
	 * The directory goes into pg_ctl's -o (a shell string), the server's
	 * socket directory list (comma-separated) and a conninfo.
	 */
	for (c = real; *c != '\0'; c++) {
		if ((unsigned char)*c <= ' ' || *c == '\'' || *c == '"' ||
		    *c == '\\' || *c == ',' || *c == '$' || *c == '`') {
			snprintf(err, errlen, "state directory %s: the "
			    "embedded PostgreSQL needs a path without spaces, "
			    "quotes, commas, '$', '`' or backslashes", real);
			return -1;
		}
	}
	if (strlen(real) + strlen(PGEMBED_SOCKET) >=
	    sizeof(((struct sockaddr_un *)0)->sun_path)) {
		snprintf(err, errlen, "state directory %s: too long for the "
		    "PostgreSQL socket path (at most %zu characters)", real,
		    sizeof(((struct sockaddr_un *)0)->sun_path) -
		    strlen(PGEMBED_SOCKET) - 1);
		return -1;
	}
	if (bindir != NULL) {
		if (!pgembed_bindir_ok(bindir)) {
			snprintf(err, errlen, "%s: no initdb and pg_ctl there",
			    bindir);
			return -1;
		}
		pg->bindir = xstrdup(bindir);
	} else if ((pg->bindir = pgembed_find_bindir()) == NULL) {
		snprintf(err, errlen, "no PostgreSQL server found in "
		    "/usr/lib/postgresql/*/bin (install the postgresql "
		    "package, or set database.conninfo)");
		return -1;
	}
	pg->dir = xstrdup(real);
	pg->pgdata = xasprintf("%s/pgdata", real);
	pg->log = xasprintf("%s/pgembed.log", real);
	pg->serverlog = xasprintf("%s/postgresql.log", real);
	return 0;
}

/* Fills err with what, the log's tail appended. */
static void
pgembed_fail(char *err, size_t errlen, const char *what, const char *log)
{
	char tail[PGEMBED_TAIL + 64];

	pgembed_tail(log, tail, sizeof(tail));
	snprintf(err, errlen, "%s%s%s (see %s)", what,
	    tail[0] != '\0' ? ": " : "", tail, log);
}

static int
pgembed_initdb(struct pgembed *pg, char *err, size_t errlen)
{
	char *initdb = xasprintf("%s/initdb", pg->bindir);
	char *userflag = xasprintf("--username=%s", PGEMBED_USER);
	/*
	 * Trust for the socket only, which its permissions (0700) and the
	 * state directory's confine to our own user; TCP is refused in
	 * pg_hba.conf as well as being off.  The C locale makes the cluster
	 * independent of the locales the machine happens to have.
	 */
	char *const argv[] = {
		initdb, "-D", pg->pgdata, userflag, "--encoding=UTF8",
		"--locale=C", "--auth-local=trust", "--auth-host=reject",
		"--no-instructions", NULL
	};
	char what[256];
	int rc;

	log_info("creating the embedded PostgreSQL cluster in %s",
	    pg->pgdata);
	rc = pgembed_run(argv, pg->log, err, errlen);
	if (rc > 0) {
		snprintf(what, sizeof(what), "initdb failed (exit %d)", rc);
		pgembed_fail(err, errlen, what, pg->log);
	}
	free(initdb);
	free(userflag);
	return rc == 0 ? 0 : -1;
}

/* 1 if the server runs, 0 if not, -1 with err filled. */
static int
pgembed_status(struct pgembed *pg, char *err, size_t errlen)
{
	char *pg_ctl = xasprintf("%s/pg_ctl", pg->bindir);
	char *const argv[] = { pg_ctl, "status", "-D", pg->pgdata, NULL };
	char what[256];
	int rc;

	rc = pgembed_run(argv, pg->log, err, errlen);
	free(pg_ctl);
	/* pg_ctl status: 0 running, 3 not running, 4 no data directory. */
	if (rc == 0 || rc == 3)
		return rc == 0;
	if (rc > 0) {
		snprintf(what, sizeof(what), "pg_ctl status failed (exit %d)",
		    rc);
		pgembed_fail(err, errlen, what, pg->log);
	}
	return -1;
}

static int
pgembed_pg_start(struct pgembed *pg, char *err, size_t errlen)
{
	char *pg_ctl = xasprintf("%s/pg_ctl", pg->bindir);
	char *opts = xasprintf("-p " PGEMBED_PORT " -k '%s' "
	    "-c listen_addresses='' -c unix_socket_permissions=0700", pg->dir);
	char *const argv[] = {
		pg_ctl, "start", "-w", "-t", "120", "-D", pg->pgdata,
		"-l", pg->serverlog, "-o", opts, NULL
	};
	char what[256];
	int rc;

	log_info("starting the embedded PostgreSQL in %s", pg->pgdata);
	rc = pgembed_run(argv, pg->log, err, errlen);
	if (rc > 0) {
		snprintf(what, sizeof(what), "pg_ctl start failed (exit %d)",
		    rc);
		pgembed_fail(err, errlen, what, pg->serverlog);
	}
	free(pg_ctl);
	free(opts);
	return rc == 0 ? 0 : -1;
}

int
pgembed_start(const char *state_dir, const char *bindir, char **conninfo_r,
    bool *started_r, char *err, size_t errlen)
{
	struct pgembed pg;
	struct stat st;
	char *version = NULL, *admin = NULL;
	int running, rc = -1;

	*conninfo_r = NULL;
	*started_r = false;
	if (geteuid() == 0) {
		snprintf(err, errlen, "PostgreSQL refuses to run as root: run "
		    "ingestd as an unprivileged user (e.g. runuser -u ingestd "
		    "-- ingestd ...), or set database.conninfo to use an "
		    "existing server");
		return -1;
	}
	if (pgembed_init(&pg, state_dir, bindir, err, errlen) == -1)
		return -1;
	version = xasprintf("%s/PG_VERSION", pg.pgdata);
	if (stat(version, &st) == -1) {
		if (errno != ENOENT) {
			snprintf(err, errlen, "%s: %s", version,
			    strerror(errno));
			goto out;
		}
		if (pgembed_initdb(&pg, err, errlen) == -1)
			goto out;
	}
	if ((running = pgembed_status(&pg, err, errlen)) == -1)
		goto out;
	if (!running) {
		if (pgembed_pg_start(&pg, err, errlen) == -1)
			goto out;
		*started_r = true;
	}
	admin = xasprintf("host=%s port=" PGEMBED_PORT " dbname=postgres "
	    "user=" PGEMBED_USER, pg.dir);
	if (db_create_database(admin, PGEMBED_DB, err, errlen) == -1)
		goto out;
	*conninfo_r = xasprintf("host=%s port=" PGEMBED_PORT " dbname="
	    PGEMBED_DB " user=" PGEMBED_USER, pg.dir);
	rc = 0;
out:
	if (rc == -1 && *started_r) {
		pgembed_stop(pg.dir, pg.bindir);
		*started_r = false;
	}
	free(version);
	free(admin);
	pgembed_release(&pg);
	return rc;
}

void
pgembed_stop(const char *state_dir, const char *bindir)
{
	struct pgembed pg;
	char err[1024], what[256], *pg_ctl;
	int rc;

	if (pgembed_init(&pg, state_dir, bindir, err, sizeof(err)) == -1) {
		log_warnx("stopping the embedded PostgreSQL: %s", err);
		return;
	}
	pg_ctl = xasprintf("%s/pg_ctl", pg.bindir);
	{
		char *const argv[] = {
			pg_ctl, "stop", "-w", "-m", "fast", "-D", pg.pgdata,
			NULL
		};

		rc = pgembed_run(argv, pg.log, err, sizeof(err));
	}
	if (rc > 0) {
		snprintf(what, sizeof(what), "pg_ctl stop failed (exit %d)",
		    rc);
		pgembed_fail(err, sizeof(err), what, pg.log);
	}
	if (rc != 0)
		log_warnx("stopping the embedded PostgreSQL: %s", err);
	free(pg_ctl);
	pgembed_release(&pg);
}
