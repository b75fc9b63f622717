/*
 * store/known: lookups by UIDL, several entries under one UIDL in the order
 * they were added, growth, and a mailbox of 100,000 messages.
 */
#include "tests/unit/test.h"

#include <stdbool.h>
#include <stdint.h>

#include "ingestd/base/xmalloc.h"
#include "store/known.h"

#define TESTS(X)                                                         \
	X(test_empty)                                                    \
	X(test_add_find)                                                 \
	X(test_fields_copied)                                            \
	X(test_duplicates_in_order)                                      \
	X(test_duplicates_across_growth)                                 \
	X(test_similar_uidls)                                            \
	X(test_hundred_thousand)
TESTS(TEST_DECLARE)

static struct known_entry
entry(const char *uidl, uint64_t size, unsigned char tag)
{
	struct known_entry e;

	memset(&e, 0, sizeof(e));
	e.uidl = (char *)uidl;
	memset(e.sha256, tag, sizeof(e.sha256));
	memset(e.head_sha256, tag ^ 0xff, sizeof(e.head_sha256));
	e.list_size = size + 1;
	e.size = size;
	e.server_deleted = tag & 1;
	return e;
}

static void
test_empty(void)
{
	struct known *k = known_new();

	ASSERT_EQ(known_count(k), 0);
	ASSERT_TRUE(known_find(k, "x") == NULL);
	ASSERT_TRUE(known_find(k, "") == NULL);
	known_free(&k);
	ASSERT_TRUE(k == NULL);
	known_free(&k);
}

static void
test_add_find(void)
{
	struct known *k = known_new();
	struct known_entry e;
	const struct known_entry *f;

	e = entry("abc", 10, 1);
	known_add(k, &e);
	e = entry("def", 20, 2);
	known_add(k, &e);
	e = entry("", 30, 3);	/* odd but storable */
	known_add(k, &e);
	ASSERT_EQ(known_count(k), 3);
	f = known_find(k, "abc");
	ASSERT_TRUE(f != NULL);
	ASSERT_STREQ(f->uidl, "abc");
	ASSERT_EQ(f->size, 10);
	ASSERT_EQ(f->list_size, 11);
	ASSERT_EQ(f->sha256[0], 1);
	ASSERT_EQ(f->head_sha256[31], 0xfe);
	ASSERT_TRUE(f->server_deleted);
	ASSERT_TRUE(known_next(f) == NULL);
	f = known_find(k, "def");
	ASSERT_EQ(f->size, 20);
	ASSERT_TRUE(!f->server_deleted);
	ASSERT_EQ(known_find(k, "")->size, 30);
	ASSERT_TRUE(known_find(k, "ab") == NULL);
	ASSERT_TRUE(known_find(k, "abcd") == NULL);
	known_free(&k);
}

/* The table keeps its own copy: the caller's buffers may be reused. */
static void
test_fields_copied(void)
{
	struct known *k = known_new();
	struct known_entry e, bogus;
	char uidl[16];

	memset(&bogus, 0, sizeof(bogus));
	strcpy(uidl, "msg-1");
	e = entry(uidl, 5, 4);
	e.next = &bogus;	/* ignored */
	known_add(k, &e);
	strcpy(uidl, "msg-2");
	memset(e.sha256, 0, sizeof(e.sha256));
	ASSERT_TRUE(known_find(k, "msg-2") == NULL);
	ASSERT_TRUE(known_find(k, "msg-1") != NULL);
	ASSERT_EQ(known_find(k, "msg-1")->sha256[5], 4);
	ASSERT_TRUE(known_find(k, "msg-1")->uidl != uidl);
	ASSERT_TRUE(known_next(known_find(k, "msg-1")) == NULL);
	known_free(&k);
}

static void
test_duplicates_in_order(void)
{
	struct known *k = known_new();
	const struct known_entry *f;
	struct known_entry e;
	int i;

	/* RFC 1939 lets two messages share a UIDL; servers reset them */
	for (i = 0; i < 5; i++) {
		e = entry("same", (uint64_t)i, (unsigned char)i);
		known_add(k, &e);
		e = entry("other", 100 + (uint64_t)i, 9);
		known_add(k, &e);
	}
	ASSERT_EQ(known_count(k), 10);
	for (i = 0, f = known_find(k, "same"); f != NULL;
	    f = known_next(f), i++) {
		ASSERT_STREQ(f->uidl, "same");
		ASSERT_EQ(f->size, i);
	}
	ASSERT_EQ(i, 5);
	for (i = 0, f = known_find(k, "other"); f != NULL;
	    f = known_next(f), i++)
		ASSERT_EQ(f->size, 100 + i);
	ASSERT_EQ(i, 5);
	known_free(&k);
}

/* Growth rehashes; entries under one UIDL keep their order through it. */
static void
test_duplicates_across_growth(void)
{
	struct known *k = known_new();
	const struct known_entry *f;
	struct known_entry e;
	char u[32];
	int i, j;

	for (i = 0; i < 5000; i++) {
		snprintf(u, sizeof(u), "dup%d", i % 50);
		e = entry(u, (uint64_t)i, 0);
		known_add(k, &e);
	}
	ASSERT_EQ(known_count(k), 5000);
	for (j = 0; j < 50; j++) {
		snprintf(u, sizeof(u), "dup%d", j);
		i = 0;
		for (f = known_find(k, u); f != NULL; f = known_next(f)) {
			ASSERT_STREQ(f->uidl, u);
			ASSERT_EQ(f->size, j + 50 * i);
			i++;
		}
		ASSERT_EQ(i, 100);
	}
	known_free(&k);
}

/*
 * UIDLs that differ in one character, and many sharing buckets: a lookup
 * and known_next() must never stop at the wrong string.
 */
static void
test_similar_uidls(void)
{
	struct known *k = known_new();
	const struct known_entry *f;
	struct known_entry e;
	char u[80];
	int i, n;

	for (i = 0; i < 3000; i++) {
		snprintf(u, sizeof(u), "%070d", i);	/* the RFC maximum */
		e = entry(u, (uint64_t)i, 0);
		known_add(k, &e);
		if (i % 7 == 0)
			known_add(k, &e);
	}
	for (i = 0; i < 3000; i++) {
		snprintf(u, sizeof(u), "%070d", i);
		n = 0;
		for (f = known_find(k, u); f != NULL; f = known_next(f)) {
			ASSERT_STREQ(f->uidl, u);
			ASSERT_EQ(f->size, i);
			n++;
		}
		ASSERT_EQ(n, i % 7 == 0 ? 2 : 1);
	}
	snprintf(u, sizeof(u), "%070d", 3000);
	ASSERT_TRUE(known_find(k, u) == NULL);
	known_free(&k);
}

static void
test_hundred_thousand(void)
{
	enum { N = 100000 };
	struct known *k = known_new();
	const struct known_entry *f;
	struct known_entry e;
	char u[64];
	int i;

	/* Dovecot-style UIDLs: hex pairs, much alike */
	for (i = 0; i < N; i++) {
		snprintf(u, sizeof(u), "%08x%08x", 0x5f3a0000u + (unsigned)i,
		    0x1234u);
		e = entry(u, (uint64_t)i, (unsigned char)i);
		known_add(k, &e);
	}
	/* a server that reset its UIDLs: the first 1000 come again */
	for (i = 0; i < 1000; i++) {
		snprintf(u, sizeof(u), "%08x%08x", 0x5f3a0000u + (unsigned)i,
		    0x1234u);
		e = entry(u, (uint64_t)(N + i), 0);
		known_add(k, &e);
	}
	ASSERT_EQ(known_count(k), N + 1000);
	for (i = 0; i < N; i++) {
		snprintf(u, sizeof(u), "%08x%08x", 0x5f3a0000u + (unsigned)i,
		    0x1234u);
		f = known_find(k, u);
		ASSERT_TRUE(f != NULL);
		ASSERT_EQ(f->size, i);
		ASSERT_EQ(f->sha256[0], (unsigned char)i);
		f = known_next(f);
		if (i < 1000) {
			ASSERT_TRUE(f != NULL);
			ASSERT_EQ(f->size, N + i);
			f = known_next(f);
		}
		ASSERT_TRUE(f == NULL);
	}
	ASSERT_TRUE(known_find(k, "not-there") == NULL);
	known_free(&k);
}

TEST_MAIN(TESTS)
