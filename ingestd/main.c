/*
 * ingestd: archive POP3 mailboxes into PostgreSQL.
 *
 *   ingestd [-c FILE] [-v] once | run | check | migrate |
 *           export --out DIR [--account NAME | --query Q] |
 *           verify [--account NAME] |
 *           search [--format table|jsonl] [--count] [--limit N] QUERY |
 *           policy ... | hold ... | purge ...   (cmd_retention.c)
 *
 * Startup problems (configuration, database, TLS files) are fatal here with
 * a message naming what is wrong; once running, a mailbox's failure is
 * logged, recorded and retried without touching the others.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "ingestd/cmd_retention.h"
#include "ingestd/cmd_search.h"
#include "ingestd/cmd_ledger.h"
#include "ingestd/conf.h"
#include "ingestd/conn.h"
#include "ingestd/base/log.h"
#include "ingestd/pgembed.h"
#include "ingestd/progress.h"
#include "ingestd/sched.h"
#include "ingestd/worker.h"
#include "ingestd/base/xmalloc.h"
#include "store/commit.h"
#include "store/db.h"
#include "store/dicts.h"
#include "store/migrations.h"
#include "store/query.h"
#include "store/reader.h"
#include "store/reindex.h"
#include "store/spool.h"
#include "store/zstd.h"

#define DEFAULT_CONFIG "/etc/ingestd/ingestd.conf"

/* Exit codes, documented in ingestd(8). */
enum {
	EXIT_OK = 0,
	EXIT_FAILED = 1,	/* a mailbox or a message failed */
	EXIT_USAGE = 2,
	EXIT_STARTUP = 3,	/* fatal(): config, database, files */
};

struct opts {
	const char *config;
	const char *command;
	const char *out_dir;
	const char *account;
	struct search_opts search;	/* search; text also export --query */
	bool dry_run;		/* once --dry-run */
};

/* Everything a command needs once the database is reachable. */
struct ctx {
	struct conf *conf;
	char *conninfo;
	bool embedded_started;
	char *spool_dir;
	struct db *db;
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: ingestd [-c FILE] [-v] COMMAND\n"
	    "\n"
	    "commands:\n"
	    "  once [--dry-run]         poll every enabled account once, "
	    "then exit;\n"
	    "                           --dry-run: archive, print what each "
	    "delete\n"
	    "                           policy would delete, delete "
	    "nothing\n"
	    "  run                      poll every poll_interval until "
	    "SIGTERM/SIGINT\n"
	    "  check                    validate the config and reach the "
	    "database\n"
	    "  migrate                  apply pending database migrations\n"
	    "  export --out DIR [--account NAME]\n"
	    "                           write DIR/<account>/<sha256>.eml, "
	    "byte-exact\n"
	    "  verify [--account NAME]  re-read every archived message and "
	    "check its SHA-256\n"
	    "  export --query QUERY --out DIR\n"
	    "                           the deliveries QUERY finds: "
	    "messages/, manifest.jsonl,\n"
	    "                           query.json, SHA256SUMS\n"
	    "  search [--format table|jsonl] [--count] [--limit N] QUERY\n"
	    "                           the deliveries QUERY finds "
	    "(see ingestd(8))\n"
	    "  reindex                  index the messages archived before "
	    "indexing\n"
	    "  ledger keygen|checkpoint|verify, prove, verify-proof\n"
	    "                           the tamper-evident ledger (ingestd "
	    "ledger -h)\n"
	    "  policy add|list, hold add|list|release, purge "
	    "--plan|--approve|--execute\n"
	    "                           retention, legal holds and the "
	    "audited purge (ingestd(8))\n"
	    "\n"
	    "options:\n"
	    "  -c, --config FILE        default " DEFAULT_CONFIG "\n"
	    "  -v, --verbose            more logging (twice: protocol "
	    "trace)\n"
	    "  -h, --help               this text\n"
	    "  -V, --version            the version\n"
	    "\n"
	    "Exit status: 0 success, 1 a mailbox or message failed, 2 usage, "
	    "3 startup error.\n");
}

static void
parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "out", required_argument, NULL, 'o' },
		{ "account", required_argument, NULL, 'a' },
		{ "query", required_argument, NULL, 'q' },
		{ "format", required_argument, NULL, 'F' },
		{ "limit", required_argument, NULL, 'L' },
		{ "count", no_argument, NULL, 'C' },
		{ "explain", no_argument, NULL, 'E' },
		{ "dry-run", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 }
	};
	int ch, verbosity = 0;

	o->config = DEFAULT_CONFIG;
	while ((ch = getopt_long(argc, argv, "c:vhV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			o->config = optarg;
			break;
		case 'v':
			verbosity++;
			break;
		case 'h':
			usage(stdout);
			exit(EXIT_OK);
		case 'V':
			printf("ingestd %s\n", INGESTD_VERSION);
			exit(EXIT_OK);
		case 'o':
			o->out_dir = optarg;
			break;
		case 'a':
			o->account = optarg;
			break;
		case 'q':
			o->search.text = optarg;
			break;
		case 'F':
			o->search.format = optarg;
			break;
		case 'L':
			o->search.limit = optarg;
			break;
		case 'C':
			o->search.count = true;
			break;
		case 'E':
			o->search.explain = true;
			break;
		case 'n':
			o->dry_run = true;
			break;
		default:
			usage(stderr);
			exit(EXIT_USAGE);
		}
	}
	log_init(verbosity);
	/* search takes its query as a second argument. */
	if (optind == argc - 2 && strcmp(argv[optind], "search") == 0 &&
	    o->search.text == NULL)
		o->search.text = argv[--argc];
	if (optind != argc - 1) {
		fprintf(stderr, "ingestd: %s\n", optind >= argc ?
		    "a command is required" : "one command only");
		usage(stderr);
		exit(EXIT_USAGE);
	}
	o->command = argv[optind];
	if (strcmp(o->command, "export") == 0 && o->out_dir == NULL) {
		fprintf(stderr, "ingestd: export needs --out DIR\n");
		exit(EXIT_USAGE);
	}
	if (strcmp(o->command, "search") == 0 &&
	    (o->search.text == NULL || !search_opts_ok(&o->search))) {
		if (o->search.text == NULL)
			fprintf(stderr, "ingestd: search needs a QUERY\n");
		exit(EXIT_USAGE);
	}
	if ((o->search.format != NULL || o->search.limit != NULL ||
	    o->search.count || o->search.explain) &&
	    strcmp(o->command, "search") != 0) {
		fprintf(stderr, "ingestd: --format, --limit, --count and "
		    "--explain are for search only\n");
		exit(EXIT_USAGE);
	}
	if (o->search.text != NULL && strcmp(o->command, "export") == 0 &&
	    o->account != NULL) {
		fprintf(stderr, "ingestd: export takes --account or --query, "
		    "not both\n");
		exit(EXIT_USAGE);
	}
	if (o->search.text != NULL && strcmp(o->command, "export") != 0 &&
	    strcmp(o->command, "search") != 0) {
		fprintf(stderr, "ingestd: --query is for export only\n");
		exit(EXIT_USAGE);
	}
	if (o->out_dir != NULL && strcmp(o->command, "export") != 0) {
		fprintf(stderr, "ingestd: --out is for export only\n");
		exit(EXIT_USAGE);
	}
	if (o->dry_run && strcmp(o->command, "once") != 0) {
		fprintf(stderr, "ingestd: --dry-run is for once only\n");
		exit(EXIT_USAGE);
	}
	if (o->account != NULL && strcmp(o->command, "export") != 0 &&
	    strcmp(o->command, "verify") != 0) {
		fprintf(stderr,
		    "ingestd: --account is for export and verify\n");
		exit(EXIT_USAGE);
	}
}

/*
 * mkdir -p with mode 0700 for what it creates; what names the directory
 * in messages ("state_dir").  With writable, it must also be ours to
 * write in, as the embedded cluster needs.
 */
static void
make_dir(const char *path, const char *what, bool writable)
{
	char *p = xstrdup(path), *s, who[128];

	for (s = p + 1; *s != '\0'; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0700) == -1 && errno != EEXIST)
			fatalx("cannot create %s, for %s %s, as %s: %s", p,
			    what, path, conf_user(who, sizeof(who)),
			    strerror(errno));
		*s = '/';
	}
	if (mkdir(p, 0700) == -1 && errno != EEXIST)
		fatalx("cannot create %s %s as %s: %s", what, p,
		    conf_user(who, sizeof(who)), strerror(errno));
	if (writable &&
	    faccessat(AT_FDCWD, p, R_OK | W_OK | X_OK, AT_EACCESS) == -1)
		fatalx("cannot write in %s %s as %s: %s", what, p,
		    conf_user(who, sizeof(who)), strerror(errno));
	free(p); p = NULL;
}

/*
 * The link to the database is part of the guarantee: a COMMIT that
 * returned is what lets a session send DELE.  Over TCP without
 * sslmode=verify-full, whoever is on the path could answer COMMIT in the
 * server's place, and mail that was never stored would be deleted.  So
 * such a link is always warned about, and with an enabled account that
 * deletes after archiving, a command that polls (or checks for polling)
 * refuses it unless database.insecure_transport = true.  The embedded
 * cluster is reached through a Unix socket.
 */
static void
check_transport(const struct conf *c, bool polls)
{
	const struct conf_account *del = NULL;
	char what[1024], err[512];
	enum db_transport t;
	size_t i;

	/*
	 * main() calls this after fatalx() for a NULL conf, which cppcheck
	 * does not know for one that never returns.
	 */
	/* cppcheck-suppress nullPointerRedundantCheck */
	if (c->conninfo == NULL)
		return;
	if (db_conninfo_transport(c->conninfo, &t, what, sizeof(what), err,
	    sizeof(err)) == -1)
		fatalx("%s: 'database.conninfo': %s", c->path, err);
	if (t != DB_TRANSPORT_INSECURE) {
		log_debug("database link: %s", what);
		return;
	}
	for (i = 0; i < c->naccounts && del == NULL; i++)
		if (c->accounts[i].enabled &&
		    c->accounts[i].delete != CONF_DELETE_NEVER)
			del = &c->accounts[i];
	if (polls && del != NULL && !c->insecure_transport)
		fatalx("%s: 'database.conninfo': the link to PostgreSQL is not "
		    "authenticated: %s; account \"%s\" (%s) deletes after "
		    "archiving, and whoever is on the path could answer COMMIT "
		    "and have mail deleted that was never stored.  Use a Unix "
		    "socket (host=/run/postgresql) or sslmode=verify-full, or "
		    "set database.insecure_transport = true to accept that "
		    "risk", c->path, what, del->name, del->where);
	log_warnx("%s: 'database.conninfo': the link to PostgreSQL is not "
	    "authenticated: %s; whoever is on the path could answer COMMIT.  "
	    "Use a Unix socket (host=/run/postgresql) or sslmode=verify-full"
	    "%s", c->path, what, del == NULL ? "" : !c->insecure_transport ?
	    "; accounts that delete after archiving are refused over it" :
	    "; accounts delete after archiving over it all the same, as "
	    "database.insecure_transport = true allows");
}

/*
 * once and run spool a message that does not fit spool_memory in
 * state_dir/spool: where they could not, check says so.  Only a warning,
 * since the messages that fit are archived all the same.
 */
static void
check_spool(const struct conf *c)
{
	char *spool = xasprintf("%s/spool", c->state_dir), who[128];
	const char *dir = access(spool, F_OK) == 0 ? spool : c->state_dir;

	if (faccessat(AT_FDCWD, dir, W_OK | X_OK, AT_EACCESS) == -1)
		log_warnx("cannot write in %s as %s: %s; once and run will "
		    "fail every message larger than spool_memory (%zu bytes)",
		    dir, conf_user(who, sizeof(who)), strerror(errno),
		    c->spool_mem);
	free(spool); spool = NULL;
}

/* Reaches the database, starting the embedded cluster if none is set. */
static void
open_database(struct ctx *x)
{
	char err[1024];
	int applied;

	make_dir(x->conf->state_dir, "state_dir", x->conf->conninfo == NULL);
	if (x->conf->conninfo != NULL)
		x->conninfo = xstrdup(x->conf->conninfo);
	else if (pgembed_start(x->conf->state_dir, x->conf->pg_bindir,
	    &x->conninfo, &x->embedded_started, err, sizeof(err)) == -1)
		fatalx("embedded PostgreSQL under %s: %s", x->conf->state_dir,
		    err);
	if ((x->db = db_connect(x->conninfo, err, sizeof(err))) == NULL)
		fatalx("%s", err);
	if (db_migrate(x->db, &applied) == -1)
		fatalx("database migration: %s", db_error(x->db));
	if (applied > 0)
		log_info("applied %d database migration%s", applied,
		    applied == 1 ? "" : "s");
}

static void
close_database(struct ctx *x)
{
	db_close(&x->db);
	if (x->embedded_started)
		pgembed_stop(x->conf->state_dir, x->conf->pg_bindir);
	free(x->conninfo); x->conninfo = NULL;
}

/* Blocks the signals the scheduler reads from a signalfd, in this thread
 * and so in every thread started after. */
static void
block_signals(void)
{
	sigset_t mask;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
}

/* once and run: committer, workers, scheduler. */
static int
cmd_poll(struct ctx *x, bool once, bool dry_run)
{
	struct committer_params cp = {
		.conninfo = x->conninfo,
		.batch_max = x->conf->batch_max,
		.retry_seconds = 60,
	};
	struct worker **workers;
	struct committer *cm;
	struct dicts *dicts = NULL;
	struct ledger_timer *lt;
	struct sched *s;
	char err[1024];
	unsigned swept;
	bool ok = true;
	int i;

	x->spool_dir = xasprintf("%s/spool", x->conf->state_dir);
	/* Unwritable, it fails only what does not fit spool_memory. */
	make_dir(x->spool_dir, "the spool directory", false);
	if (spool_sweep(x->spool_dir, &swept) == -1)
		fatal("reading %s", x->spool_dir);
	if (swept > 0)
		log_info("removed %u spool files left by an earlier crash",
		    swept);
	if ((cm = committer_start(&cp, err, sizeof(err))) == NULL)
		fatalx("committer: %s", err);
	workers = xcalloc(x->conf->workers, sizeof(*workers));
	for (i = 0; i < x->conf->workers; i++)
		if ((workers[i] = worker_start(i, err, sizeof(err))) == NULL)
			fatalx("%s", err);

	/* A dictionary the archive cannot give is no reason not to poll. */
	if (x->conf->dictionary_after > 0) {
		dicts = dicts_new(x->db, x->conf->zstd_level,
		    x->conf->dictionary_after);
		if (dicts_load_latest(dicts) == -1)
			log_warnx("compression dictionary: %s; compressing "
			    "without one", dicts_error(dicts));
		else if (dicts_current(dicts) != NULL)
			log_info("compressing with dictionary %" PRId64,
			    zdict_id(dicts_current(dicts)));
	}

	struct sched_params sp = {
		.conf = x->conf,
		.db = x->db,
		.committer = cm,
		.workers = workers,
		.nworkers = (size_t)x->conf->workers,
		.spool_dir = x->spool_dir,
		.summary = once ? stdout : NULL,
		.dicts = dicts,
		.dry_run = dry_run,
	};
	/* The ledger's checkpoints every ledger.checkpoint_interval. */
	if (!once && (lt = ledger_timer_new(x->conf, x->db, err,
	    sizeof(err))) != NULL) {
		sp.tick = ledger_timer_fire;
		sp.tick_arg = lt;
		sp.tick_s = ledger_timer_interval(lt);
	} else {
		/* Capture matters more: the events wait for a checkpoint. */
		if (!once && err[0] != '\0')
			log_warnx("'ledger.signing_key': %s; no checkpoints "
			    "until it can be read (ledger events are kept)",
			    err);
		lt = NULL;
	}
	if ((s = sched_new(&sp, err, sizeof(err))) == NULL)
		fatalx("%s", err);
	if (once)
		ok = sched_once(s);
	else
		sched_run(s);
	sched_free(&s);
	ledger_timer_free(&lt);
	for (i = 0; i < x->conf->workers; i++)
		worker_stop(&workers[i]);
	free(workers); workers = NULL;
	/* Sessions end only after their commits are answered, so nothing
	 * is queued now; stopping still waits for a batch in progress. */
	committer_stop(&cm);
	/* Only now can no compression stage be using a dictionary. */
	dicts_free(&dicts);
	free(x->spool_dir); x->spool_dir = NULL;
	return ok ? EXIT_OK : EXIT_FAILED;
}

static int
cmd_check(struct ctx *x)
{
	char err[1024];
	size_t i, enabled = 0;

	for (i = 0; i < x->conf->naccounts; i++) {
		const struct conf_account *a = &x->conf->accounts[i];
		struct conn_tls *t;

		enabled += a->enabled;
		if (a->tls == CONF_TLS_NONE)
			continue;
		if ((t = conn_tls_new(a->ca_file, err, sizeof(err))) == NULL)
			fatalx("%s: account \"%s\": %s", a->where, a->name,
			    err);
		conn_tls_free(&t);
	}
	open_database(x);
	check_spool(x->conf);
	printf("%s: ok: %zu accounts (%zu enabled); database reachable, "
	    "schema %s\n", x->conf->path, x->conf->naccounts, enabled,
	    migrations_count ? migrations[migrations_count - 1].name : "-");
	close_database(x);
	return EXIT_OK;
}

/* After each batch: where a long backfill is (a terminal only). */
static void
reindex_progress(void *arg, const struct reindex_stats *st)
{
	const uint64_t *todo = arg;

	progress_update(st->indexed + st->damaged, st->bytes, todo[0],
	    todo[1]);
}

static int
cmd_reindex(struct ctx *x)
{
	struct reindex_stats st;
	uint64_t todo[2] = { 0, 0 };
	char err[1024];
	int rc = EXIT_OK;

	/* Only for the time left: a failure here is not the run's. */
	if (isatty(STDERR_FILENO) &&
	    db_unindexed_count(x->db, &todo[0], &todo[1]) == -1)
		log_debug("reindex: %s", db_error(x->db));
	progress_start("reindex");
	if (reindex_run(x->db, &st, reindex_progress, todo, err,
	    sizeof(err)) == -1) {
		log_warnx("reindex: %s", err);
		rc = EXIT_FAILED;
	}
	progress_end();
	printf("reindexed %" PRIu64 " messages: %" PRIu64 " with index "
	    "refused, %" PRIu64 " damaged\n", st.indexed, st.refused,
	    st.damaged);
	if (st.damaged > 0)
		rc = EXIT_FAILED;
	return rc;
}

int
main(int argc, char **argv)
{
	struct opts o = { 0 };
	struct ctx x = { 0 };
	struct query *q = NULL;
	struct retention_cmd *rcmd = NULL;
	char err[1024];
	uint64_t n = 0, bad = 0;
	int rc = EXIT_OK, out_fd = -1, ri;

	/* policy, hold and purge parse what follows their name. */
	if ((ri = retention_cmd_index(argc, argv)) > 0) {
		rcmd = retention_cmd_parse(argc - ri, argv + ri);
		argc = ri + 1;
	}
	/* The ledger's commands parse their own arguments. */
	if (cmd_ledger_wants(argc, argv))
		return cmd_ledger_main(argc, argv);
	parse_args(argc, argv, &o);
	if (rcmd == NULL && strcmp(o.command, "once") != 0 &&
	    strcmp(o.command, "run") != 0 &&
	    strcmp(o.command, "check") != 0 &&
	    strcmp(o.command, "migrate") != 0 &&
	    strcmp(o.command, "export") != 0 &&
	    strcmp(o.command, "verify") != 0 &&
	    strcmp(o.command, "search") != 0 &&
	    strcmp(o.command, "reindex") != 0) {
		fprintf(stderr, "ingestd: unknown command \"%s\"\n", o.command);
		usage(stderr);
		return EXIT_USAGE;
	}
	if ((x.conf = conf_load(o.config, err, sizeof(err))) == NULL)
		fatalx("%s", err);
	/* SIGTERM from here on drains, however early it comes. */
	block_signals();
	check_transport(x.conf, strcmp(o.command, "once") == 0 ||
	    strcmp(o.command, "run") == 0 || strcmp(o.command, "check") == 0);
	srandom((unsigned)time(NULL) ^ (unsigned)getpid());

	if (strcmp(o.command, "check") == 0) {
		rc = cmd_check(&x);
		conf_free(&x.conf);
		return rc;
	}
	/* A query is checked before anything else is done for it. */
	if (o.search.text != NULL &&
	    (q = search_parse(o.command, o.search.text)) == NULL) {
		conf_free(&x.conf);
		return EXIT_USAGE;
	}
	/* Before the database: a directory export may not write into is a
	 * mistake to learn at once, not after starting a cluster. */
	if (strcmp(o.command, "export") == 0 &&
	    (out_fd = reader_outdir_open(o.out_dir, err, sizeof(err))) == -1)
		fatalx("export: %s", err);
	open_database(&x);
	if (strcmp(o.command, "export") == 0 ||
	    strcmp(o.command, "verify") == 0)
		progress_start(o.command);
	if (strcmp(o.command, "once") == 0)
		rc = cmd_poll(&x, true, o.dry_run);
	else if (strcmp(o.command, "run") == 0)
		rc = cmd_poll(&x, false, false);
	else if (strcmp(o.command, "migrate") == 0)
		printf("database schema is at %s\n", migrations_count ?
		    migrations[migrations_count - 1].name : "-");
	else if (strcmp(o.command, "search") == 0)
		rc = cmd_search(x.db, &o.search, q);
	else if (rcmd != NULL)
		rc = retention_cmd_run(rcmd, x.db, x.conf);
	else if (strcmp(o.command, "export") == 0 && q != NULL) {
		rc = cmd_export_query(x.db, out_fd, o.out_dir, o.search.text,
		    q);
		close(out_fd);
	} else if (strcmp(o.command, "export") == 0) {
		if (reader_export(x.db, out_fd, o.out_dir, o.account, &n,
		    &bad, err, sizeof(err)) == -1) {
			log_warnx("export: %s", err);
			rc = EXIT_FAILED;
		}
		close(out_fd);
		progress_end();
		printf("exported %" PRIu64 " messages to %s: %" PRIu64
		    " damaged\n", n, o.out_dir, bad);
		ledger_record_export(x.db, o.account, NULL, rc == EXIT_OK, n,
		    n, bad, "", "");
		if (bad > 0)
			rc = EXIT_FAILED;
	} else if (strcmp(o.command, "verify") == 0) {
		if (reader_verify(x.db, o.account, &n, &bad, err,
		    sizeof(err)) == -1) {
			log_warnx("verify: %s", err);
			rc = EXIT_FAILED;
		}
		progress_end();
		printf("verified %" PRIu64 " messages: %" PRIu64 " damaged\n",
		    n, bad);
		ledger_record_verify(x.db, o.account, rc == EXIT_OK, n, bad);
		if (bad > 0)
			rc = EXIT_FAILED;
	} else if (strcmp(o.command, "reindex") == 0)
		rc = cmd_reindex(&x);
	progress_end();
	query_free(&q);
	retention_cmd_free(&rcmd);
	close_database(&x);
	conf_free(&x.conf);
	return rc;
}
