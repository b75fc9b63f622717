/*
 * ingestd policy, hold and purge (see cmd_retention.h).
 *
 * The actor of every change is the PostgreSQL role the command connects
 * as (session_user, recorded by the database, which a client cannot
 * choose) and the OS user running it (getpwuid(geteuid()), recorded
 * alongside for the audit trail).  Two actors are different when their
 * PostgreSQL roles are: that is what purge.approvals = 2 asks.
 */
#include "ingestd/cmd_retention.h"

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingestd/base/log.h"
#include "ingestd/base/xmalloc.h"
#include "ingestd/cmd_search.h"
#include "ingestd/cmdline.h"
#include "ingestd/conf.h"
#include "ingestd/retention.h"
#include "store/db.h"
#include "store/db_retention.h"
#include "store/hash.h"
#include "store/json.h"
#include "store/query.h"

#define MAX_SCOPES 64
/* Deliveries removed per transaction of purge --execute. */
#define PURGE_BATCH 500
/* Serialization failures retried per batch before giving up. */
#define PURGE_RETRIES 10
/* Changed items named before "... and N more". */
#define SHOW_CHANGES 20

/*
 * The statements.  Times go to retention.c as microseconds since 1970.
 */
/* clang-format off */
#define US(e) "(extract(epoch FROM " e ") * 1000000)::bigint"

/* Policy versions; policy_id: versions of a name share its first's id. */
static const char SQL_VERSIONS[] =
    "SELECT v.id, v.name, v.version, v.keep, v.clock, v.shortens, "
    US("v.cooling_off_ends_at") ", v.match_sql IS NULL, "
    "min(v.id) OVER (PARTITION BY v.name) "
    "FROM ingestd.policy_version v ORDER BY v.name, v.version";

static const char SQL_NOW[] = "SELECT " US("now()");

/*
 * The decision inputs of a delivery, one per row: [0] id, [1] account,
 * [2] uidl, [3] sha256, [4] archived_at, [5] Date, [6] the first active
 * hold covering it, [7] the ids of the versions with a query that match
 * it, [8] archived_at as text.
 */
#define DELIVERY_INPUTS							\
    "d.id, a.name, d.uidl, encode(d.sha256, 'hex'), "			\
    US("d.archived_at") ", " US("m.date") ", "				\
    "(SELECT c.hold FROM ingestd.hold_cover c "				\
    "WHERE c.delivery_id = d.id LIMIT 1), pm.versions, "		\
    "ingestd.retention_time(d.archived_at)"
#define DELIVERY_JOINS							\
    "JOIN ingestd.account a ON a.id = d.account_id "			\
    "LEFT JOIN ingestd.message m ON m.sha256 = d.sha256 "		\
    "LEFT JOIN (SELECT x.delivery_id, array_agg(x.version_id) "		\
    "AS versions FROM ingestd.policy_matches() x GROUP BY 1) pm "	\
    "ON pm.delivery_id = d.id "

static const char SQL_PLAN[] =
    "SELECT " DELIVERY_INPUTS " FROM ingestd.delivery d " DELIVERY_JOINS
    "ORDER BY d.id";

static const char SQL_EXEC_PLAN[] =
    "SELECT p.id, " US("p.planned_at") ", p.approvals_needed, "
    "p.actor_role, "
    "EXISTS (SELECT 1 FROM ingestd.purge_done x WHERE x.plan_id = p.id), "
    "EXISTS (SELECT 1 FROM ingestd.purge_approval a "
    "WHERE a.plan_id = p.id AND a.actor_role <> p.actor_role), "
    "coalesce((SELECT max(v.id) FROM ingestd.policy_version v), 0) "
    "FROM ingestd.purge_plan p WHERE p.sha256 = decode($1, 'hex')";

/* Each item: DELIVERY_INPUTS (NULL when gone), then what the plan said. */
static const char SQL_EXEC_ITEMS[] =
    "SELECT " DELIVERY_INPUTS ", i.account, i.uidl, "
    "encode(i.sha256, 'hex'), i.policy, i.version, " US("i.due_at") " "
    "FROM ingestd.purge_item i "
    "LEFT JOIN (ingestd.delivery d " DELIVERY_JOINS ") "
    "ON d.id = i.delivery_id "
    "WHERE i.plan_id = $1::bigint ORDER BY i.pos";
/* clang-format on */

enum rcmd {
	RCMD_POLICY_ADD,
	RCMD_POLICY_LIST,
	RCMD_HOLD_ADD,
	RCMD_HOLD_LIST,
	RCMD_HOLD_RELEASE,
	RCMD_PURGE_PLAN,
	RCMD_PURGE_APPROVE,
	RCMD_PURGE_EXECUTE,
};

struct retention_cmd {
	enum rcmd cmd;
	const char *name;
	const char *keep;
	const char *match;
	const char *clock;
	const char *reason;
	const char *from, *to;
	const char *out;
	const char *plan;
	const char *kinds[MAX_SCOPES];
	const char *values[MAX_SCOPES];
	size_t nscopes;
	char os_user[128];
};

static noreturn void usage_error(const char *fmt, ...) LOG_PRINTF(1, 2);

static noreturn void
usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("ingestd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nusage: ingestd policy add NAME --keep PERIOD [--match QUERY] "
	      "[--clock archive|date|end-of-year]\n"
	      "       ingestd policy list\n"
	      "       ingestd hold add NAME --reason TEXT (--query Q | "
	      "--account A | --message SHA256)...\n"
	      "                    [--from YYYY-MM-DD] [--to YYYY-MM-DD]\n"
	      "       ingestd hold list\n"
	      "       ingestd hold release NAME --reason TEXT\n"
	      "       ingestd purge --plan --out FILE\n"
	      "       ingestd purge --approve PLAN-HASH\n"
	      "       ingestd purge --execute PLAN-HASH\n",
	    stderr);
	exit(2);
}

int
retention_cmd_index(int argc, char **argv)
{
	int i = cmdline_command(argc, argv);

	if (i > 0 && (strcmp(argv[i], "policy") == 0 ||
	    strcmp(argv[i], "hold") == 0 || strcmp(argv[i], "purge") == 0))
		return i;
	return 0;
}

static bool
is_date(const char *s)
{
	int y, m, d;
	char tail;

	return strlen(s) == 10 &&
	    sscanf(s, "%4d-%2d-%2d%c", &y, &m, &d, &tail) == 3 && s[4] == '-' &&
	    s[7] == '-' && m >= 1 && m <= 12 && d >= 1 && d <= 31;
}

/* Policy and hold names: what migration 0009's CHECKs accept. */
static bool
is_name(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
			(s[i] >= 'A' && s[i] <= 'Z') ||
			(s[i] >= '0' && s[i] <= '9') ||
			(i > 0 && strchr("._-", s[i]) != NULL)))
			return false;
	return i >= 1 && i <= 64;
}

static bool
is_sha256_hex(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
			(s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return i == 64;
}

/* The option's value: "--opt value" or "--opt=value". */
static const char *
opt_value(int argc, char **argv, int *i, const char *opt)
{
	size_t n = strlen(opt);

	if (strncmp(argv[*i], opt, n) == 0 && argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (*i + 1 >= argc)
		usage_error("%s needs a value", opt);
	return argv[++*i];
}

static bool
opt_is(const char *arg, const char *opt)
{
	size_t n = strlen(opt);

	return strncmp(arg, opt, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

static void
check_query(const char *what, const char *q)
{
	struct query *parsed;

	if ((parsed = search_parse(what, q)) == NULL)
		exit(2);
	query_free(&parsed);
}

struct retention_cmd *
retention_cmd_parse(int argc, char **argv)
{
	struct retention_cmd *c = xcalloc(1, sizeof(*c));
	struct retention_period p;
	enum retention_clock clk;
	struct passwd *pw;
	char err[256];
	const char *word = argv[0], *sub = argc > 1 ? argv[1] : "";
	bool plan = false;
	int i, first = 2;

	if (strcmp(word, "policy") == 0 && strcmp(sub, "add") == 0)
		c->cmd = RCMD_POLICY_ADD;
	else if (strcmp(word, "policy") == 0 && strcmp(sub, "list") == 0)
		c->cmd = RCMD_POLICY_LIST;
	else if (strcmp(word, "hold") == 0 && strcmp(sub, "add") == 0)
		c->cmd = RCMD_HOLD_ADD;
	else if (strcmp(word, "hold") == 0 && strcmp(sub, "list") == 0)
		c->cmd = RCMD_HOLD_LIST;
	else if (strcmp(word, "hold") == 0 && strcmp(sub, "release") == 0)
		c->cmd = RCMD_HOLD_RELEASE;
	else if (strcmp(word, "purge") == 0) {
		c->cmd = RCMD_PURGE_PLAN;
		first = 1;
	} else if (*sub == '\0')
		usage_error("%s needs a subcommand: %s", word,
		    strcmp(word, "policy") == 0 ? "add or list" :
						  "add, list or release");
	else
		usage_error("%s: unknown subcommand \"%s\"", word, sub);
	if (c->cmd == RCMD_POLICY_ADD || c->cmd == RCMD_HOLD_ADD ||
	    c->cmd == RCMD_HOLD_RELEASE) {
		if (argc <= 2 || argv[2][0] == '-')
			usage_error("%s %s needs a NAME", word, sub);
		c->name = argv[2];
		if (!is_name(c->name))
			usage_error("%s %s: name '%s': expected 1 to 64 "
				    "letters, digits, '.', '_' or '-', "
				    "starting with a letter or digit",
			    word, sub, c->name);
		first = 3;
	}
	for (i = first; i < argc; i++) {
		const char *a = argv[i];

		if (opt_is(a, "--keep") && c->cmd == RCMD_POLICY_ADD)
			c->keep = opt_value(argc, argv, &i, "--keep");
		else if (opt_is(a, "--match") && c->cmd == RCMD_POLICY_ADD)
			c->match = opt_value(argc, argv, &i, "--match");
		else if (opt_is(a, "--clock") && c->cmd == RCMD_POLICY_ADD)
			c->clock = opt_value(argc, argv, &i, "--clock");
		else if (opt_is(a, "--reason") &&
		    (c->cmd == RCMD_HOLD_ADD || c->cmd == RCMD_HOLD_RELEASE))
			c->reason = opt_value(argc, argv, &i, "--reason");
		else if ((opt_is(a, "--query") || opt_is(a, "--account") ||
			     opt_is(a, "--message")) &&
		    c->cmd == RCMD_HOLD_ADD) {
			const char *kind = opt_is(a, "--query") ? "query" :
			    opt_is(a, "--account")		? "account" :
								  "message";
			char opt[16];

			if (c->nscopes == MAX_SCOPES)
				usage_error("hold add: at most %d scopes",
				    MAX_SCOPES);
			snprintf(opt, sizeof(opt), "--%s", kind);
			c->kinds[c->nscopes] = kind;
			c->values[c->nscopes++] = opt_value(argc, argv, &i,
			    opt);
		} else if (opt_is(a, "--from") && c->cmd == RCMD_HOLD_ADD)
			c->from = opt_value(argc, argv, &i, "--from");
		else if (opt_is(a, "--to") && c->cmd == RCMD_HOLD_ADD)
			c->to = opt_value(argc, argv, &i, "--to");
		else if (strcmp(a, "--plan") == 0 && first == 1)
			plan = true;
		else if (opt_is(a, "--out") && first == 1)
			c->out = opt_value(argc, argv, &i, "--out");
		else if (opt_is(a, "--approve") && first == 1 &&
		    c->plan == NULL) {
			c->plan = opt_value(argc, argv, &i, "--approve");
			c->cmd = RCMD_PURGE_APPROVE;
		} else if (opt_is(a, "--execute") && first == 1 &&
		    c->plan == NULL) {
			c->plan = opt_value(argc, argv, &i, "--execute");
			c->cmd = RCMD_PURGE_EXECUTE;
		} else
			usage_error("%s%s%s: unexpected \"%s\"%s", word,
			    first > 1 ? " " : "", first > 1 ? sub : "", a,
			    strcmp(a, "-c") == 0 || strcmp(a, "-v") == 0 ?
				" (-c and -v go before the command)" :
				"");
	}
	switch (c->cmd) {
	case RCMD_POLICY_ADD:
		if (c->keep == NULL)
			usage_error("policy add %s needs --keep PERIOD",
			    c->name);
		if (retention_period_parse(c->keep, &p, err, sizeof(err)) == -1)
			usage_error("policy add %s: --keep: %s", c->name, err);
		if (c->clock != NULL &&
		    retention_clock_parse(c->clock, &clk) == -1)
			usage_error("policy add %s: --clock '%s': expected "
				    "archive, date or end-of-year",
			    c->name, c->clock);
		if (c->match != NULL)
			check_query("policy add --match", c->match);
		break;
	case RCMD_HOLD_ADD:
		if (c->reason == NULL || c->reason[0] == '\0')
			usage_error("hold add %s needs --reason TEXT", c->name);
		if (c->nscopes == 0)
			usage_error("hold add %s needs at least one --query, "
				    "--account or --message",
			    c->name);
		for (i = 0; i < (int)c->nscopes; i++) {
			if (strcmp(c->kinds[i], "query") == 0)
				check_query("hold add --query", c->values[i]);
			else if (strcmp(c->kinds[i], "message") == 0 &&
			    !is_sha256_hex(c->values[i]))
				usage_error("hold add %s: --message '%s': "
					    "expected a SHA-256 in 64 "
					    "lowercase hex digits",
				    c->name, c->values[i]);
		}
		if (c->from != NULL && !is_date(c->from))
			usage_error("hold add %s: --from '%s': expected "
				    "YYYY-MM-DD",
			    c->name, c->from);
		if (c->to != NULL && !is_date(c->to))
			usage_error("hold add %s: --to '%s': expected "
				    "YYYY-MM-DD",
			    c->name, c->to);
		if (c->from != NULL && c->to != NULL &&
		    strcmp(c->from, c->to) > 0)
			usage_error("hold add %s: --from %s is after --to %s",
			    c->name, c->from, c->to);
		break;
	case RCMD_HOLD_RELEASE:
		if (c->reason == NULL || c->reason[0] == '\0')
			usage_error("hold release %s needs --reason TEXT",
			    c->name);
		break;
	case RCMD_PURGE_PLAN:
		if (!plan || c->out == NULL)
			usage_error("purge needs --plan --out FILE, --approve "
				    "PLAN-HASH or --execute PLAN-HASH");
		break;
	case RCMD_PURGE_APPROVE:
	case RCMD_PURGE_EXECUTE:
		if (plan || c->out != NULL)
			usage_error("purge: --plan and --out go alone, not "
				    "with --approve or --execute");
		if (!is_sha256_hex(c->plan))
			usage_error("purge: '%s': expected a plan's SHA-256 "
				    "in 64 lowercase hex digits, as purge "
				    "--plan printed it",
			    c->plan);
		break;
	default:
		break;
	}
	if ((pw = getpwuid(geteuid())) != NULL)
		snprintf(c->os_user, sizeof(c->os_user), "%s", pw->pw_name);
	else
		snprintf(c->os_user, sizeof(c->os_user), "uid %u",
		    (unsigned)geteuid());
	return c;
}

void
retention_cmd_free(struct retention_cmd **c)
{
	free(*c);
	*c = NULL;
}

/* Runs sql; rows to cb.  On error logs "what: error" and returns -1. */
static int
run(struct db *db, const struct retention_cmd *c, const char *what,
    bool serializable, const char *sql, int n, const char *const *params,
    int (*cb)(void *, int, const char *const *), void *arg)
{
	if (db_retention_run(db, c->os_user, serializable, sql, n, params, cb,
		arg) == 0)
		return 0;
	if (what != NULL)
		log_warnx("%s: %s", what, db_error(db));
	return -1;
}

/* Prints each row tab-separated, NULL as "-", after a header line. */
static int
print_row(void *arg, int ncols, const char *const *v)
{
	int i;

	(void)arg;
	for (i = 0; i < ncols; i++)
		printf("%s%s", v[i] != NULL ? v[i] : "-",
		    i + 1 < ncols ? "\t" : "\n");
	return 0;
}

static int
policy_added(void *arg, int ncols, const char *const *v)
{
	(void)arg;
	if (ncols < 7)
		return -1;
	printf("policy %s version %s: keep %s, clock %s, %s%s\n", v[0], v[1],
	    v[2], v[3], v[4] != NULL ? "matching " : "every message",
	    v[4] != NULL ? v[4] : "");
	if (strcmp(v[5], "t") == 0)
		printf("this version shortens retention: it applies to purge "
		       "plans made from %s (retention.cooling_off); until "
		       "then the version before it applies\n",
		    v[6]);
	return 0;
}

static int
cmd_policy_add(struct retention_cmd *c, struct db *db, const struct conf *conf)
{
	static const char *const units[] = { "days", "weeks", "months",
		"years" };
	struct retention_period p;
	char interval[64], err[256];
	const char *params[5];

	if (retention_period_parse(conf->cooling_off, &p, err, sizeof(err)) ==
	    -1) {
		log_warnx("retention.cooling_off: %s", err);
		return 1;
	}
	snprintf(interval, sizeof(interval), "%u %s", p.n, units[p.unit]);
	params[0] = c->name;
	params[1] = c->keep;
	params[2] = c->clock != NULL ? c->clock : "archive";
	params[3] = c->match;
	params[4] = interval;
	return run(db, c, "policy add", false,
		   "SELECT name, version, keep, clock, match, shortens, "
		   "ingestd.retention_time(cooling_off_ends_at) "
		   "FROM ingestd.policy_add($1, $2, $3, $4, $5::interval)",
		   5, params, policy_added, NULL) == 0 ?
	    0 :
	    1;
}

static int
cmd_policy_list(struct retention_cmd *c, struct db *db)
{
	puts("NAME\tVERSION\tKEEP\tCLOCK\tMATCH\tSHORTENS\tAPPLIES_FROM\t"
	     "CREATED_AT\tROLE\tOS_USER");
	return run(db, c, "policy list", false,
		   "SELECT name, version, keep, clock, "
		   "coalesce(match, '(every message)'), "
		   "CASE WHEN shortens THEN 'yes' ELSE 'no' END, "
		   "ingestd.retention_time(applies_from), "
		   "ingestd.retention_time(created_at), actor_role, actor_os "
		   "FROM ingestd.policies ORDER BY name, version",
		   0, NULL, print_row, NULL) == 0 ?
	    0 :
	    1;
}

/* A PostgreSQL array literal of n strings: each quoted, \ and " escaped. */
static char *
array_literal(const char *const *v, size_t n)
{
	size_t i, len = 3;
	const char *s;
	char *out, *o;

	for (i = 0; i < n; i++)
		len += 2 * strlen(v[i]) + 3;
	o = out = xmalloc(len);
	*o++ = '{';
	for (i = 0; i < n; i++) {
		if (i > 0)
			*o++ = ',';
		*o++ = '"';
		for (s = v[i]; *s != '\0'; s++) {
			if (*s == '"' || *s == '\\')
				*o++ = '\\';
			*o++ = *s;
		}
		*o++ = '"';
	}
	*o++ = '}';
	*o = '\0';
	return out;
}

static int
hold_added(void *arg, int ncols, const char *const *v)
{
	(void)arg;
	if (ncols < 2)
		return -1;
	printf("hold %s added: %s deliveries held now\n", v[0], v[1]);
	return 0;
}

static int
hold_unknown_account(void *arg, int ncols, const char *const *v)
{
	(void)arg;
	if (ncols < 1)
		return -1;
	log_warnx("hold add: no account named \"%s\" is in the archive yet; "
		  "the hold will cover its deliveries once it is",
	    v[0]);
	return 0;
}

static int
cmd_hold_add(struct retention_cmd *c, struct db *db)
{
	const char *params[6];
	char *kinds, *values;
	int rc;

	kinds = array_literal(c->kinds, c->nscopes);
	values = array_literal(c->values, c->nscopes);
	params[0] = c->name;
	params[1] = c->reason;
	params[2] = kinds;
	params[3] = values;
	params[4] = c->from;
	params[5] = c->to;
	rc = run(db, c, "hold add", false,
	    "SELECT ingestd.hold_add($1, $2, $3::text[], $4::text[], "
	    "$5::date, $6::date)",
	    6, params, NULL, NULL);
	if (rc == 0)
		rc = run(db, c, "hold add", false,
		    "SELECT $1::text, count(*) FROM ingestd.hold_cover c "
		    "JOIN ingestd.hold h ON h.id = c.hold_id WHERE h.name = $1",
		    1, params, hold_added, NULL);
	/* A misspelt account holds nothing: say so (it may come later). */
	if (rc == 0)
		rc = run(db, c, "hold add", false,
		    "SELECT s.value FROM ingestd.hold_scope s "
		    "JOIN ingestd.hold h ON h.id = s.hold_id "
		    "WHERE h.name = $1 AND s.kind = 'account' AND NOT EXISTS "
		    "(SELECT 1 FROM ingestd.account a WHERE a.name = s.value)",
		    1, params, hold_unknown_account, NULL);
	free(kinds);
	kinds = NULL;
	free(values);
	values = NULL;
	return rc == 0 ? 0 : 1;
}

static int
cmd_hold_list(struct retention_cmd *c, struct db *db)
{
	puts("NAME\tSTATE\tDELIVERIES\tSCOPES\tFROM\tTO\tREASON\tCREATED_AT\t"
	     "BY\tRELEASED_AT\tRELEASE_REASON");
	return run(db, c, "hold list", false,
		   "SELECT name, CASE WHEN active THEN 'active' "
		   "ELSE 'released' END, deliveries, scopes, from_date, "
		   "to_date, reason, ingestd.retention_time(created_at), "
		   "actor_role || '/' || actor_os, "
		   "CASE WHEN released_at IS NOT NULL THEN "
		   "ingestd.retention_time(released_at) END, release_reason "
		   "FROM ingestd.holds ORDER BY created_at, name",
		   0, NULL, print_row, NULL) == 0 ?
	    0 :
	    1;
}

static int
hold_released(void *arg, int ncols, const char *const *v)
{
	const struct retention_cmd *c = arg;

	if (ncols < 1)
		return -1;
	printf("hold %s released at %s\n", c->name, v[0]);
	return 0;
}

static int
cmd_hold_release(struct retention_cmd *c, struct db *db)
{
	const char *params[2] = { c->name, c->reason };

	return run(db, c, "hold release", false,
		   "SELECT ingestd.retention_time(released_at) "
		   "FROM ingestd.hold_release($1, $2)",
		   2, params, hold_released, c) == 0 ?
	    0 :
	    1;
}

/* Policy versions, loaded once per plan or execution. */
struct versions {
	struct retention_version *v;
	char **names;
	char **keeps;
	int64_t *ids;
	bool *all; /* no --match: matches every delivery */
	size_t n, cap;
};

static int
load_version(void *arg, int ncols, const char *const *v)
{
	struct versions *vs = arg;
	struct retention_version *x;
	char err[256];

	if (ncols < 9)
		return -1;
	if (vs->n == vs->cap) {
		vs->cap = vs->cap ? vs->cap * 2 : 16;
		vs->v = xreallocarray(vs->v, vs->cap, sizeof(*vs->v));
		vs->names = xreallocarray(vs->names, vs->cap, sizeof(char *));
		vs->keeps = xreallocarray(vs->keeps, vs->cap, sizeof(char *));
		vs->ids = xreallocarray(vs->ids, vs->cap, sizeof(int64_t));
		vs->all = xreallocarray(vs->all, vs->cap, sizeof(bool));
	}
	x = &vs->v[vs->n];
	memset(x, 0, sizeof(*x));
	vs->ids[vs->n] = strtoll(v[0], NULL, 10);
	vs->names[vs->n] = xstrdup(v[1]);
	x->version = (int32_t)strtol(v[2], NULL, 10);
	vs->keeps[vs->n] = xstrdup(v[3]);
	if (retention_period_parse(v[3], &x->period, err, sizeof(err)) == -1 ||
	    retention_clock_parse(v[4], &x->clock) == -1)
		return -1;
	x->shortens = strcmp(v[5], "t") == 0;
	x->cooling_off_ends = strtoll(v[6], NULL, 10);
	vs->all[vs->n] = strcmp(v[7], "t") == 0;
	x->policy_id = strtoll(v[8], NULL, 10);
	vs->n++;
	return 0;
}

static void
versions_release(struct versions *vs)
{
	size_t i;

	for (i = 0; i < vs->n; i++) {
		free(vs->names[i]);
		free(vs->keeps[i]);
	}
	free(vs->v);
	free(vs->names);
	free(vs->keeps);
	free(vs->ids);
	free(vs->all);
	memset(vs, 0, sizeof(*vs));
}

static int
versions_load(struct retention_cmd *c, struct db *db, struct versions *vs)
{
	return run(db, c, "loading the retention policies", false, SQL_VERSIONS,
	    0, NULL, load_version, vs);
}

/* Decides the delivery of row v (DELIVERY_INPUTS above). */
static void
decide(const struct versions *vs, const char *const *v, int64_t now,
    struct retention_decision *d)
{
	struct retention_input in = { .versions = vs->v,
		.nversions = vs->n,
		.now = now };
	char *list, *p, *tok, *save = NULL;
	int64_t id;
	size_t i;

	in.archived_at = strtoll(v[4], NULL, 10);
	in.has_date = v[5] != NULL;
	in.date = v[5] != NULL ? strtoll(v[5], NULL, 10) : 0;
	in.held = v[6] != NULL;
	for (i = 0; i < vs->n; i++)
		vs->v[i].matches = vs->all[i];
	if (v[7] != NULL) {
		list = xstrdup(v[7]);
		for (p = list; (tok = strtok_r(p, "{},", &save)) != NULL;
		     p = NULL) {
			id = strtoll(tok, NULL, 10);
			for (i = 0; i < vs->n; i++)
				if (vs->ids[i] == id)
					vs->v[i].matches = true;
		}
		free(list);
		list = NULL;
	}
	retention_decide(&in, d);
}

struct plan {
	struct retention_cmd *c;
	struct versions vs;
	int64_t now;
	char now_text[40];
	FILE *mem;
	char *text;
	size_t len;
	uint64_t due, kept, held, unmatched;
};

static int
plan_row(void *arg, int ncols, const char *const *v)
{
	struct plan *pl = arg;
	struct retention_decision d;
	char due[40], why[512], ver[16];
	size_t k;

	if (ncols < 9)
		return -1;
	decide(&pl->vs, v, pl->now, &d);
	switch (d.verdict) {
	case RETENTION_HELD:
		pl->held++;
		return 0;
	case RETENTION_NO_POLICY:
		pl->unmatched++;
		return 0;
	case RETENTION_KEPT:
		pl->kept++;
		return 0;
	case RETENTION_DUE:
		break;
	}
	pl->due++;
	k = (size_t)(d.by - pl->vs.v);
	retention_time_format(d.due_at, due, sizeof(due));
	snprintf(why, sizeof(why),
	    "policy %s version %d keeps %s from the %s clock: over at %s, "
	    "and no hold covers it",
	    pl->vs.names[k], d.by->version, pl->vs.keeps[k],
	    retention_clock_name(d.by->clock), due);
	snprintf(ver, sizeof(ver), "%d", d.by->version);
	fputc('{', pl->mem);
	json_field(pl->mem, "account", v[1], 1);
	json_field(pl->mem, "uidl", v[2], 0);
	json_field(pl->mem, "sha256", v[3], 0);
	json_field(pl->mem, "archived_at", v[8], 0);
	json_num(pl->mem, "delivery", v[0]);
	json_field(pl->mem, "policy", pl->vs.names[k], 0);
	json_num(pl->mem, "version", ver);
	json_field(pl->mem, "keep", pl->vs.keeps[k], 0);
	json_field(pl->mem, "clock", retention_clock_name(d.by->clock), 0);
	json_field(pl->mem, "due_at", due, 0);
	json_field(pl->mem, "planned_at", pl->now_text, 0);
	json_field(pl->mem, "why", why, 0);
	fputs("}\n", pl->mem);
	return ferror(pl->mem) ? -1 : 0;
}

static int
get_int64(void *arg, int ncols, const char *const *v)
{
	if (ncols < 1 || v[0] == NULL)
		return -1;
	*(int64_t *)arg = strtoll(v[0], NULL, 10);
	return 0;
}

static int
get_text(void *arg, int ncols, const char *const *v)
{
	char **s = arg;

	if (ncols < 1 || v[0] == NULL)
		return -1;
	free(*s);
	*s = xstrdup(v[0]);
	return 0;
}

static void
hex(const unsigned char *p, size_t n, char *out)
{
	size_t i;

	for (i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", p[i]);
}

static int
write_file(const char *path, const char *p, size_t n)
{
	FILE *f;

	if ((f = fopen(path, "w")) == NULL) {
		log_warnx("purge --plan: cannot create %s: %s", path,
		    strerror(errno));
		return -1;
	}
	if ((n > 0 && fwrite(p, 1, n, f) != n) || fclose(f) == EOF) {
		log_warnx("purge --plan: writing %s: %s", path,
		    strerror(errno));
		return -1;
	}
	return 0;
}

static int
cmd_purge_plan(struct retention_cmd *c, struct db *db, const struct conf *conf)
{
	struct plan pl = { .c = c };
	unsigned char digest[HASH_SHA256_LEN];
	char hexd[2 * HASH_SHA256_LEN + 1], approvals[8], now[24];
	char *recorded = NULL;
	const char *params[3];
	int rc = 1;

	if (run(db, c, "purge --plan", false, SQL_NOW, 0, NULL, get_int64,
		&pl.now) == -1 ||
	    versions_load(c, db, &pl.vs) == -1)
		goto out;
	retention_time_format(pl.now, pl.now_text, sizeof(pl.now_text));
	if ((pl.mem = open_memstream(&pl.text, &pl.len)) == NULL) {
		log_warn("purge --plan: open_memstream");
		goto out;
	}
	if (run(db, c, "purge --plan", false, SQL_PLAN, 0, NULL, plan_row,
		&pl) == -1) {
		fclose(pl.mem);
		goto out;
	}
	if (fclose(pl.mem) == EOF) {
		log_warn("purge --plan: the plan in memory");
		goto out;
	}
	hash_sha256(pl.text, pl.len, digest);
	hex(digest, sizeof(digest), hexd);
	if (write_file(c->out, pl.text, pl.len) == -1)
		goto out;
	if (pl.due > 0) {
		snprintf(approvals, sizeof(approvals), "%u",
		    conf->purge_approvals);
		snprintf(now, sizeof(now), "%" PRId64, pl.now);
		params[0] = pl.text;
		params[1] = now;
		params[2] = approvals;
		if (run(db, c, "purge --plan: recording the plan", false,
			"SELECT ingestd.purge_plan_record($1, "
			"timestamptz 'epoch' + $2::bigint * "
			"interval '1 microsecond', $3::integer)",
			3, params, get_text, &recorded) == -1)
			goto out;
		if (strcmp(recorded, hexd) != 0) {
			log_warnx("purge --plan: the database hashed the plan "
				  "as %s, not %s",
			    recorded, hexd);
			goto out;
		}
	}
	printf("planned at %s: %" PRIu64 " deliveries due, %" PRIu64
	       " kept by a policy, %" PRIu64 " held, %" PRIu64
	       " under no policy (kept)\n",
	    pl.now_text, pl.due, pl.kept, pl.held, pl.unmatched);
	if (pl.due == 0)
		printf("nothing is due: no plan recorded\n");
	else
		printf("plan written to %s; %s\n", c->out,
		    conf->purge_approvals > 1 ?
			"approve it as another PostgreSQL role with purge "
			"--approve, then run purge --execute" :
			"run purge --execute with its hash");
	printf("%s\n", hexd);
	rc = 0;
out:
	free(recorded);
	recorded = NULL;
	free(pl.text);
	pl.text = NULL;
	versions_release(&pl.vs);
	return rc;
}

static int
approved(void *arg, int ncols, const char *const *v)
{
	const struct retention_cmd *c = arg;

	(void)ncols;
	(void)v;
	printf("plan %s approved by PostgreSQL role %s (OS user %s)\n", c->plan,
	    v[0] != NULL ? v[0] : "-", c->os_user);
	return 0;
}

static int
cmd_purge_approve(struct retention_cmd *c, struct db *db)
{
	const char *params[1] = { c->plan };

	return run(db, c, "purge --approve", false,
		   "SELECT session_user::text FROM "
		   "(SELECT ingestd.purge_approve($1)) x",
		   1, params, approved, c) == 0 ?
	    0 :
	    1;
}

struct exec {
	struct retention_cmd *c;
	struct versions vs;
	int64_t plan_id, planned_at, max_version;
	int approvals_needed;
	bool done, found, approved;
	char planner[128];
	uint64_t items, changed;
};

static int
exec_plan(void *arg, int ncols, const char *const *v)
{
	struct exec *ex = arg;

	if (ncols < 7)
		return -1;
	ex->found = true;
	ex->plan_id = strtoll(v[0], NULL, 10);
	ex->planned_at = strtoll(v[1], NULL, 10);
	ex->approvals_needed = atoi(v[2]);
	snprintf(ex->planner, sizeof(ex->planner), "%s", v[3]);
	ex->done = strcmp(v[4], "t") == 0;
	ex->approved = strcmp(v[5], "t") == 0;
	ex->max_version = strtoll(v[6], NULL, 10);
	return 0;
}

/*
 * One item of the plan, re-decided as of the plan's time against the
 * policies and holds of now: v[0..8] as DELIVERY_INPUTS (NULL when the
 * delivery is gone), then the item's account, uidl, sha256, policy,
 * version, due_at (µs).
 */
static int
exec_item(void *arg, int ncols, const char *const *v)
{
	struct exec *ex = arg;
	struct retention_decision d;
	char what[512], due[40], was[40];
	size_t k;

	if (ncols < 15)
		return -1;
	ex->items++;
	retention_time_format(strtoll(v[14], NULL, 10), was, sizeof(was));
	if (v[0] == NULL)
		snprintf(what, sizeof(what), "the delivery is gone");
	else {
		decide(&ex->vs, v, ex->planned_at, &d);
		k = d.by != NULL ? (size_t)(d.by - ex->vs.v) : 0;
		if (d.by != NULL)
			retention_time_format(d.due_at, due, sizeof(due));
		switch (d.verdict) {
		case RETENTION_HELD:
			snprintf(what, sizeof(what), "held by %s now", v[6]);
			break;
		case RETENTION_NO_POLICY:
			snprintf(what, sizeof(what),
			    "no policy matches it now");
			break;
		case RETENTION_KEPT:
			snprintf(what, sizeof(what),
			    "policy %s version %d now keeps it until %s",
			    ex->vs.names[k], d.by->version, due);
			break;
		case RETENTION_DUE:
			if (strcmp(ex->vs.names[k], v[12]) == 0 &&
			    d.by->version == atoi(v[13]) &&
			    d.due_at == strtoll(v[14], NULL, 10))
				return 0;
			snprintf(what, sizeof(what),
			    "now due by policy %s version %d at %s, not by "
			    "%s version %s at %s",
			    ex->vs.names[k], d.by->version, due, v[12], v[13],
			    was);
			break;
		}
	}
	if (++ex->changed <= SHOW_CHANGES)
		fprintf(stderr,
		    "ingestd: purge: account %s uidl %s sha256 %s "
		    "(planned by policy %s version %s, due %s): %s\n",
		    v[9], v[10] != NULL ? v[10] : "-", v[11], v[12], v[13], was,
		    what);
	return 0;
}

static int
exec_batch(void *arg, int ncols, const char *const *v)
{
	int64_t *n = arg;

	if (ncols < 2)
		return -1;
	n[0] = strtoll(v[0], NULL, 10);
	n[1] = strtoll(v[1], NULL, 10);
	return 0;
}

static int
cmd_purge_execute(struct retention_cmd *c, struct db *db)
{
	struct exec ex = { .c = c };
	const char *params[3];
	char id[24], maxv[24], batch[16];
	int64_t n[2], total[2] = { 0, 0 };
	int tries, rc = 1;

	params[0] = c->plan;
	if (run(db, c, "purge --execute", false, SQL_EXEC_PLAN, 1, params,
		exec_plan, &ex) == -1)
		goto out;
	if (!ex.found) {
		log_warnx("purge --execute: no purge plan %s (purge --plan "
			  "records the plans it prints the hash of, unless "
			  "nothing was due)",
		    c->plan);
		goto out;
	}
	if (ex.done) {
		log_warnx("purge --execute: plan %s was executed already",
		    c->plan);
		goto out;
	}
	if (ex.approvals_needed > 1 && !ex.approved) {
		log_warnx("purge --execute: plan %s needs the approval of a "
			  "PostgreSQL role other than %s, its planner "
			  "(purge.approvals = 2): run purge --approve %s as "
			  "that role first",
		    c->plan, ex.planner, c->plan);
		goto out;
	}
	if (versions_load(c, db, &ex.vs) == -1)
		goto out;
	snprintf(id, sizeof(id), "%" PRId64, ex.plan_id);
	params[0] = id;
	if (run(db, c, "purge --execute: re-checking the plan", false,
		SQL_EXEC_ITEMS, 1, params, exec_item, &ex) == -1)
		goto out;
	if (ex.changed > 0) {
		if (ex.changed > SHOW_CHANGES)
			fprintf(stderr,
			    "ingestd: purge: ... and %" PRIu64 " more\n",
			    ex.changed - SHOW_CHANGES);
		log_warnx("purge --execute: plan %s refused: %" PRIu64
			  " of its %" PRIu64 " deliveries changed since it "
			  "was made (above); nothing was removed; make a new "
			  "plan",
		    c->plan, ex.changed, ex.items);
		goto out;
	}
	snprintf(maxv, sizeof(maxv), "%" PRId64, ex.max_version);
	snprintf(batch, sizeof(batch), "%d", PURGE_BATCH);
	params[0] = c->plan;
	params[1] = maxv;
	params[2] = batch;
	for (;;) {
		for (tries = 0;; tries++) {
			if (run(db, c, NULL, true,
				"SELECT deliveries, blobs FROM "
				"ingestd.purge_execute_batch($1, $2::bigint, "
				"$3::integer)",
				3, params, exec_batch, n) == 0)
				break;
			if ((strcmp(db_sqlstate(db), "40001") != 0 &&
				strcmp(db_sqlstate(db), "40P01") != 0) ||
			    tries == PURGE_RETRIES) {
				log_warnx("purge --execute: %s; %" PRId64
					  " deliveries and %" PRId64
					  " blobs were removed before",
				    db_error(db), total[0], total[1]);
				goto out;
			}
		}
		total[0] += n[0];
		total[1] += n[1];
		if (n[0] == 0)
			break;
	}
	printf("plan %s executed: %" PRId64 " deliveries and %" PRId64
	       " blobs removed\n",
	    c->plan, total[0], total[1]);
	rc = 0;
out:
	versions_release(&ex.vs);
	return rc;
}

int
retention_cmd_run(struct retention_cmd *c, struct db *db,
    const struct conf *conf)
{
	int rc = 1;

	switch (c->cmd) {
	case RCMD_POLICY_ADD:
		rc = cmd_policy_add(c, db, conf);
		break;
	case RCMD_POLICY_LIST:
		rc = cmd_policy_list(c, db);
		break;
	case RCMD_HOLD_ADD:
		rc = cmd_hold_add(c, db);
		break;
	case RCMD_HOLD_LIST:
		rc = cmd_hold_list(c, db);
		break;
	case RCMD_HOLD_RELEASE:
		rc = cmd_hold_release(c, db);
		break;
	case RCMD_PURGE_PLAN:
		rc = cmd_purge_plan(c, db, conf);
		break;
	case RCMD_PURGE_APPROVE:
		rc = cmd_purge_approve(c, db);
		break;
	case RCMD_PURGE_EXECUTE:
		rc = cmd_purge_execute(c, db);
		break;
	}
	if (fflush(stdout) == EOF)
		rc = 1;
	return rc;
}
