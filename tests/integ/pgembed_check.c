/*
 * pgembed_check STATE_DIR: the embedded PostgreSQL, end to end.
 *
 * As root, checks only that pgembed_start() refuses with a message that
 * says what to do.  As any other user: creates the cluster in STATE_DIR
 * (which must not hold one yet), connects and migrates, finds it running
 * on a second start, stops it, starts it again from the existing data
 * directory, and stops it.  Run it as root and then through
 * `runuser -u ingestd-test --` to cover both.
 *
 * Prints "N passed, N failed"; exits 1 if anything failed.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ingestd/base/log.h"
#include "ingestd/pgembed.h"
#include "store/db.h"
#include "store/migrations.h"
#include "tests/integ/check.h"

static void
use(const char *conninfo, int expect_applied)
{
	char err[1024];
	struct db *db;
	int64_t id;
	int applied = -1;

	if ((db = db_connect(conninfo, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		CHECK(false);
		return;
	}
	CHECK(db_migrate(db, &applied) == 0);
	CHECK(applied == expect_applied);
	CHECK(db_account_id(db, "someone", &id) == 0 && id > 0);
	db_close(&db);
}

int
main(int argc, char **argv)
{
	char err[1024], *ci = NULL;
	bool started;

	if (argc != 2) {
		fprintf(stderr, "usage: pgembed_check STATE_DIR\n");
		return 2;
	}
	log_init(0);
	if (geteuid() == 0) {
		CHECK(pgembed_start(argv[1], NULL, &ci, &started, err,
		    sizeof(err)) == -1);
		CHECK(ci == NULL && !started);
		CHECK(strstr(err, "root") != NULL &&
		    strstr(err, "database.conninfo") != NULL);
		printf("  refused as root: %s\n", err);
		printf("%d passed, %d failed\n", passed, failed);
		return failed > 0;
	}

	/* Fresh: initdb, start, create the database. */
	CHECK(pgembed_start(argv[1], NULL, &ci, &started, err,
	    sizeof(err)) == 0);
	if (ci == NULL) {
		fprintf(stderr, "pgembed_start: %s\n", err);
		printf("%d passed, %d failed\n", passed, failed + 1);
		return 1;
	}
	CHECK(started);
	printf("  conninfo: %s\n", ci);
	use(ci, (int)migrations_count);
	free(ci); ci = NULL;

	/* Already running: used as it is. */
	CHECK(pgembed_start(argv[1], NULL, &ci, &started, err,
	    sizeof(err)) == 0);
	CHECK(!started);
	free(ci); ci = NULL;
	pgembed_stop(argv[1], NULL);

	/* Stopped, data kept: started again, nothing to migrate. */
	CHECK(pgembed_start(argv[1], NULL, &ci, &started, err,
	    sizeof(err)) == 0);
	CHECK(started);
	if (ci != NULL)
		use(ci, 0);
	free(ci); ci = NULL;
	pgembed_stop(argv[1], NULL);

	/* A bindir without the server is refused, not run. */
	CHECK(pgembed_start(argv[1], "/nonexistent", &ci, &started, err,
	    sizeof(err)) == -1);
	printf("  refused as expected: %s\n", err);

	printf("%d passed, %d failed\n", passed, failed);
	return failed > 0;
}
