/*
 * store/facts.c: lookups by UIDL and by SHA-256, the earliest first-seen
 * time winning, lookups interleaved with additions, and many entries.
 */
#include "store/facts.h"

#include <stdio.h>
#include <string.h>

#include "tests/unit/test.h"

#define TESTS(X)                                                         \
	X(test_empty)                                                    \
	X(test_seen_earliest_wins)                                       \
	X(test_dates)                                                    \
	X(test_add_after_lookup)                                         \
	X(test_many)
TESTS(TEST_DECLARE)

static void
sha_of(unsigned n, unsigned char sha[32])
{
	memset(sha, 0, 32);
	memcpy(sha, &n, sizeof(n));
	sha[31] = 0xa5;
}

static void
test_empty(void)
{
	struct facts *f = facts_new();
	unsigned char sha[32];
	int64_t t = 42;

	sha_of(1, sha);
	ASSERT_TRUE(!facts_seen(f, "a", &t));
	ASSERT_TRUE(!facts_date(f, sha, &t));
	ASSERT_EQ(t, 42);
	ASSERT_EQ(facts_nseen(f), 0);
	facts_free(&f);
	ASSERT_TRUE(f == NULL);
	facts_free(&f);
}

static void
test_seen_earliest_wins(void)
{
	struct facts *f = facts_new();
	int64_t t;

	facts_add_seen(f, "b", 300);
	facts_add_seen(f, "a", 200);
	facts_add_seen(f, "b", 100);
	facts_add_seen(f, "ab", 50);
	ASSERT_TRUE(facts_seen(f, "b", &t));
	ASSERT_EQ(t, 100);
	ASSERT_TRUE(facts_seen(f, "a", &t));
	ASSERT_EQ(t, 200);
	ASSERT_TRUE(facts_seen(f, "ab", &t));
	ASSERT_EQ(t, 50);
	ASSERT_TRUE(!facts_seen(f, "", &t));
	ASSERT_TRUE(!facts_seen(f, "c", &t));
	ASSERT_TRUE(!facts_seen(f, "B", &t));
	facts_free(&f);
}

static void
test_dates(void)
{
	struct facts *f = facts_new();
	unsigned char a[32], b[32], c[32];
	int64_t t;

	sha_of(1, a);
	sha_of(2, b);
	sha_of(3, c);
	facts_add_date(f, b, -86400);	/* before 1970: still a date */
	facts_add_date(f, a, 1700000000);
	ASSERT_TRUE(facts_date(f, a, &t));
	ASSERT_EQ(t, 1700000000);
	ASSERT_TRUE(facts_date(f, b, &t));
	ASSERT_EQ(t, -86400);
	ASSERT_TRUE(!facts_date(f, c, &t));
	ASSERT_EQ(facts_ndates(f), 2);
	facts_free(&f);
}

/* An addition after a lookup is seen by the next lookup. */
static void
test_add_after_lookup(void)
{
	struct facts *f = facts_new();
	unsigned char a[32];
	int64_t t;

	sha_of(7, a);
	facts_add_seen(f, "z", 9);
	ASSERT_TRUE(!facts_seen(f, "a", &t));
	facts_add_seen(f, "a", 8);
	ASSERT_TRUE(facts_seen(f, "a", &t));
	ASSERT_EQ(t, 8);
	ASSERT_TRUE(!facts_date(f, a, &t));
	facts_add_date(f, a, 5);
	ASSERT_TRUE(facts_date(f, a, &t));
	ASSERT_EQ(t, 5);
	facts_free(&f);
}

static void
test_many(void)
{
	struct facts *f = facts_new();
	unsigned char sha[32];
	char uidl[32];
	unsigned i;
	int64_t t;

	for (i = 0; i < 20000; i++) {
		snprintf(uidl, sizeof(uidl), "u%u", (i * 7919) % 20000);
		facts_add_seen(f, uidl, (int64_t)i);
		sha_of(i, sha);
		facts_add_date(f, sha, (int64_t)i * 2);
	}
	for (i = 0; i < 20000; i++) {
		snprintf(uidl, sizeof(uidl), "u%u", (i * 7919) % 20000);
		ASSERT_TRUE(facts_seen(f, uidl, &t));
		ASSERT_EQ(t, i);
		sha_of(i, sha);
		ASSERT_TRUE(facts_date(f, sha, &t));
		ASSERT_EQ(t, (int64_t)i * 2);
	}
	ASSERT_TRUE(!facts_seen(f, "u20000", &t));
	facts_free(&f);
}

TEST_MAIN(TESTS)
