/*
 * The checks of the C harnesses in tests/integ (store_check, commit_check,
 * pgembed_check): each CHECK counts, a failure prints where and goes on,
 * and the harness ends with "N passed, N failed" from these counters.
 */
#ifndef TESTS_INTEG_CHECK_H
#define TESTS_INTEG_CHECK_H

#include <stdio.h>

#include "store/db.h"

static int passed, failed;

#define CHECK(e)							\
	do {								\
		if (e)							\
			passed++;					\
		else {							\
			failed++;					\
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__,	\
			    __LINE__, #e);				\
		}							\
	} while (0)

/* e returns 0, or -1 with db_error(db) saying why. */
#define CHECK_OK(e, db)							\
	do {								\
		if ((e) == 0)						\
			passed++;					\
		else {							\
			failed++;					\
			fprintf(stderr, "FAIL %s:%d: %s: %s\n",		\
			    __FILE__, __LINE__, #e, db_error(db));	\
		}							\
	} while (0)

#endif
