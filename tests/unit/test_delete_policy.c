/*
 * ingestd/delete_policy.c: every rule alone and combined, the caps, the
 * order keep_under and the caps take, unknown first-seen times and Dates,
 * and, over random listings and policies, the invariant that nothing not
 * proven archived is ever deleted.
 */
#include "ingestd/delete_policy.h"

#include <stdint.h>
#include <stdlib.h>

#include "tests/unit/test.h"

#define TESTS(X)                                                               \
	X(test_no_rules_keeps_everything)                                      \
	X(test_table)                                                          \
	X(test_keep_under_order)                                               \
	X(test_keep_under_unreachable)                                         \
	X(test_caps_take_oldest)                                               \
	X(test_max_bytes_skips_to_smaller)                                     \
	X(test_explain)                                                        \
	X(test_keeps_days)                                                     \
	X(test_property_never_unarchived)
TESTS(TEST_DECLARE)

#define DAY 86400
#define NOW ((int64_t)1800000000)

/* A message in a table: '-' for an unknown first-seen time or Date. */
struct tmsg {
	uint64_t size;
	bool archived;
	int seen_days; /* days ago; -1: no record */
	int date_days; /* days ago; -1: unknown */
};

#define MAXM 8

struct tcase {
	const char *name;
	struct delete_policy p;
	uint64_t mailbox; /* 0: the sum of the sizes */
	struct tmsg m[MAXM];
	size_t n;
	/* The expected verdict per message, as a string: 'k' keep, 'A'
	 * after-archive, 'D' after_days, 'O' older_than, 'B' bigger_than,
	 * 'U' keep_under; lowercase of those: chosen but capped. */
	const char *want;
};

static void
fill(const struct tcase *c, struct delete_msg *m, uint64_t *mailbox_r)
{
	uint64_t sum = 0;
	size_t i;

	for (i = 0; i < c->n; i++) {
		m[i] = (struct delete_msg){
			.num = (uint32_t)(i + 1),
			.size = c->m[i].size,
			.archived = c->m[i].archived,
			.has_first_seen = c->m[i].seen_days >= 0,
			.first_seen = NOW - (int64_t)c->m[i].seen_days * DAY,
			.has_date = c->m[i].date_days >= 0,
			.date = NOW - (int64_t)c->m[i].date_days * DAY,
		};
		sum += c->m[i].size;
	}
	*mailbox_r = c->mailbox ? c->mailbox : sum;
}

static char
verdict(const struct delete_msg *m)
{
	static const char letters[] = {
		[DELETE_KEEP] = 'k',
		[DELETE_AFTER_ARCHIVE] = 'A',
		[DELETE_AFTER_DAYS] = 'D',
		[DELETE_OLDER_THAN] = 'O',
		[DELETE_BIGGER_THAN] = 'B',
		[DELETE_KEEP_UNDER] = 'U',
	};
	char ch = letters[m->reason];

	return m->capped ? (char)(ch - 'A' + 'a') : ch;
}

static void
run_case(const struct tcase *c)
{
	struct delete_msg m[MAXM];
	struct delete_totals t;
	uint64_t mailbox, bytes = 0;
	char got[MAXM + 1];
	size_t i, deleted = 0;

	fill(c, m, &mailbox);
	delete_policy_decide(&c->p, m, c->n, mailbox, NOW, &t);
	for (i = 0; i < c->n; i++) {
		got[i] = verdict(&m[i]);
		if (delete_policy_deletes(&m[i])) {
			ASSERT_TRUE(m[i].archived);
			deleted++;
			bytes += m[i].size;
		}
	}
	got[c->n] = '\0';
	if (strcmp(got, c->want) != 0)
		TEST_FAIL_("%s: got \"%s\", want \"%s\"", c->name, got,
		    c->want);
	ASSERT_EQ(t.deleted, deleted);
	ASSERT_EQ(t.deleted_bytes, bytes);
	ASSERT_EQ(t.remaining, mailbox - bytes);
}

static void
test_no_rules_keeps_everything(void)
{
	struct tcase c = { "never", { 0 }, 0,
		{ { 10, true, 900, 900 }, { 1u << 30, true, 0, 0 },
		    { 5, false, -1, -1 } },
		3, "kkk" };

	run_case(&c);
}

#define P(...) ((struct delete_policy){ __VA_ARGS__ })

static const struct tcase cases[] = {
	/* after-archive: every archived message, nothing else. */
	{ "after-archive", P(.rules = DELETE_R_AFTER_ARCHIVE), 0,
	    { { 10, true, -1, -1 }, { 10, false, 5, 5 }, { 10, true, 0, 0 } },
	    3, "AkA" },
	/* after_days: at the boundary, past it, before it, no record (seen
	 * now), not archived. */
	{ "after_days", P(.rules = DELETE_R_AFTER_DAYS, .after_days = 14), 0,
	    { { 1, true, 14, -1 }, { 1, true, 15, -1 }, { 1, true, 13, -1 },
		{ 1, true, -1, -1 }, { 1, false, 400, -1 } },
	    5, "DDkkk" },
	{ "after_days 0", P(.rules = DELETE_R_AFTER_DAYS, .after_days = 0), 0,
	    { { 1, true, -1, -1 }, { 1, true, 0, -1 }, { 1, false, 0, -1 } }, 3,
	    "DDk" },
	/* older_than_days: strictly older; unknown Date never. */
	{ "older_than", P(.rules = DELETE_R_OLDER_THAN, .older_than_days = 365),
	    0,
	    { { 1, true, 0, 366 }, { 1, true, 0, 365 }, { 1, true, 0, -1 },
		{ 1, true, 900, 10 }, { 1, false, 0, 900 } },
	    5, "Okkkk" },
	/* bigger_than: strictly bigger. */
	{ "bigger_than",
	    P(.rules = DELETE_R_BIGGER_THAN, .bigger_than = 5 << 20), 0,
	    { { 5 << 20, true, 0, 0 }, { (5 << 20) + 1, true, 0, 0 },
		{ 6 << 20, false, 0, 0 }, { 1, true, 0, 0 } },
	    4, "kBkk" },
	/* keep_under: the mailbox already under: nothing. */
	{ "keep_under met", P(.rules = DELETE_R_KEEP_UNDER, .keep_under = 100),
	    99, { { 50, true, 9, -1 }, { 49, true, 8, -1 } }, 2, "kk" },
	/* At the target exactly: not under, so one goes. */
	{ "keep_under equal",
	    P(.rules = DELETE_R_KEEP_UNDER, .keep_under = 100), 100,
	    { { 50, true, 9, -1 }, { 50, true, 8, -1 } }, 2, "Uk" },
	/* Oldest first by first-seen, not listing order; unarchived skipped
	 * though older. */
	{ "keep_under oldest",
	    P(.rules = DELETE_R_KEEP_UNDER, .keep_under = 250), 0,
	    { { 100, true, 1, -1 }, { 100, false, 30, -1 },
		{ 100, true, 20, -1 }, { 100, true, 10, -1 } },
	    4, "kkUU" },
	/* STAT larger than the listing's sizes (the server counts more). */
	{ "keep_under stat",
	    P(.rules = DELETE_R_KEEP_UNDER, .keep_under = 1001), 1200,
	    { { 100, true, 3, -1 }, { 100, true, 2, -1 },
		{ 100, true, 1, -1 } },
	    3, "UUk" },
	/* Combination: what another rule deletes counts toward the target. */
	{ "keep_under after bigger",
	    P(.rules = DELETE_R_KEEP_UNDER | DELETE_R_BIGGER_THAN,
		.keep_under = 250, .bigger_than = 150),
	    0,
	    { { 100, true, 9, -1 }, { 200, true, 1, -1 },
		{ 100, true, 5, -1 } },
	    3, "kBk" },
	{ "after_days or keep_under",
	    P(.rules = DELETE_R_AFTER_DAYS | DELETE_R_KEEP_UNDER,
		.after_days = 30, .keep_under = 150),
	    0,
	    { { 100, true, 40, -1 }, { 100, true, 20, -1 },
		{ 100, true, 10, -1 } },
	    3, "DUk" },
	/* Reason order: after_days before older_than before bigger_than. */
	{ "reason order",
	    P(.rules = DELETE_R_AFTER_DAYS | DELETE_R_OLDER_THAN |
		    DELETE_R_BIGGER_THAN,
		.after_days = 7, .older_than_days = 30, .bigger_than = 10),
	    0,
	    { { 100, true, 8, 100 }, { 100, true, 1, 100 }, { 100, true, 1, 1 },
		{ 5, true, 1, 1 }, { 100, false, 99, 99 } },
	    5, "DOBkk" },
	/* Caps. */
	{ "max_messages",
	    P(.rules = DELETE_R_AFTER_ARCHIVE | DELETE_R_MAX_MESSAGES,
		.max_messages = 2),
	    0,
	    { { 1, true, 3, -1 }, { 1, true, 5, -1 }, { 1, true, 4, -1 },
		{ 1, false, 9, -1 } },
	    4, "aAAk" },
	{ "max_messages 0",
	    P(.rules = DELETE_R_AFTER_ARCHIVE | DELETE_R_MAX_MESSAGES,
		.max_messages = 0),
	    0, { { 1, true, 3, -1 }, { 1, true, 5, -1 } }, 2, "aa" },
	{ "max_bytes",
	    P(.rules = DELETE_R_AFTER_ARCHIVE | DELETE_R_MAX_BYTES,
		.max_bytes = 250),
	    0,
	    { { 100, true, 3, -1 }, { 100, true, 2, -1 },
		{ 100, true, 1, -1 } },
	    3, "AAa" },
	{ "both caps",
	    P(.rules = DELETE_R_BIGGER_THAN | DELETE_R_MAX_BYTES |
		    DELETE_R_MAX_MESSAGES,
		.bigger_than = 0, .max_bytes = 1000, .max_messages = 1),
	    0, { { 100, true, 3, -1 }, { 100, true, 4, -1 } }, 2, "bB" },
	/* Caps keep keep_under short of its target: the next poll goes on. */
	{ "keep_under capped",
	    P(.rules = DELETE_R_KEEP_UNDER | DELETE_R_MAX_MESSAGES,
		.keep_under = 101, .max_messages = 1),
	    0,
	    { { 100, true, 3, -1 }, { 100, true, 2, -1 },
		{ 100, true, 1, -1 } },
	    3, "Uuk" },
};

static void
test_table(void)
{
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i]);
}

/* Ties in first-seen go by message number; no record counts as now. */
static void
test_keep_under_order(void)
{
	struct tcase c = { "ties",
		P(.rules = DELETE_R_KEEP_UNDER, .keep_under = 250), 0,
		{ { 100, true, -1, -1 }, { 100, true, 5, -1 },
		    { 100, true, 5, -1 }, { 100, true, 0, -1 } },
		4, "kUUk" };

	run_case(&c);
	/* Listing order given backwards: numbers still decide ties. */
	{
		struct delete_msg m[3] = {
			{ .num = 9, .size = 10, .archived = true },
			{ .num = 2, .size = 10, .archived = true },
			{ .num = 5, .size = 10, .archived = true },
		};
		struct delete_policy p = { .rules = DELETE_R_KEEP_UNDER,
			.keep_under = 15 };

		delete_policy_decide(&p, m, 3, 30, NOW, NULL);
		ASSERT_EQ(m[1].reason, DELETE_KEEP_UNDER);
		ASSERT_EQ(m[2].reason, DELETE_KEEP_UNDER);
		ASSERT_EQ(m[0].reason, DELETE_KEEP);
	}
}

/* Everything archived goes, and no further: unarchived mail stays. */
static void
test_keep_under_unreachable(void)
{
	struct tcase c = { "unreachable",
		P(.rules = DELETE_R_KEEP_UNDER, .keep_under = 10), 0,
		{ { 100, false, 9, -1 }, { 100, true, 8, -1 },
		    { 100, false, 7, -1 }, { 100, true, -1, -1 } },
		4, "kUkU" };
	struct delete_msg m[1] = { { .num = 1, .size = 5, .archived = true } };
	struct delete_policy p = { .rules = DELETE_R_KEEP_UNDER,
		.keep_under = 10 };
	struct delete_totals t;

	run_case(&c);
	/* STAT smaller than what is deleted: remaining stays at 0. */
	delete_policy_decide(&p, m, 1, 3, NOW, &t);
	ASSERT_EQ(m[0].reason, DELETE_KEEP);
	ASSERT_EQ(t.remaining, 3);
	delete_policy_decide(&p, m, 0, 0, NOW, &t);
	ASSERT_EQ(t.deleted, 0);
}

static void
test_caps_take_oldest(void)
{
	struct tcase c = { "oldest",
		P(.rules = DELETE_R_AFTER_DAYS | DELETE_R_MAX_MESSAGES,
		    .after_days = 1, .max_messages = 2),
		0,
		{ { 1, true, 2, -1 }, { 1, true, 30, -1 }, { 1, true, 10, -1 },
		    { 1, true, 0, -1 } },
		4, "dDDk" };

	run_case(&c);
}

static void
test_max_bytes_skips_to_smaller(void)
{
	struct tcase c = { "skip",
		P(.rules = DELETE_R_AFTER_ARCHIVE | DELETE_R_MAX_BYTES,
		    .max_bytes = 150),
		0,
		{ { 100, true, 9, -1 }, { 100, true, 8, -1 },
		    { 50, true, 7, -1 }, { 1, true, 6, -1 } },
		4, "AaAa" };

	/* 100 + 50 = 150 fills the cap; the 1-byte one does not fit. */
	run_case(&c);
}

static void
test_explain(void)
{
	struct delete_policy p = { .rules = DELETE_R_AFTER_DAYS |
		    DELETE_R_MAX_MESSAGES,
		.after_days = 14,
		.max_messages = 0 };
	struct delete_msg m = { .num = 1,
		.size = 10,
		.archived = true,
		.has_first_seen = true,
		.first_seen = NOW - 15 * DAY };
	char buf[160];

	delete_policy_decide(&p, &m, 1, 10, NOW, NULL);
	ASSERT_STREQ(delete_policy_explain(&p, &m, NOW, buf, sizeof(buf)),
	    "after_days = 14: first seen 15 days ago; kept this poll by "
	    "max_messages or max_bytes");
	ASSERT_STREQ(delete_reason_name(m.reason), "after_days");
	m.archived = false;
	delete_policy_decide(&p, &m, 1, 10, NOW, NULL);
	ASSERT_STREQ(delete_policy_explain(&p, &m, NOW, buf, sizeof(buf)),
	    "kept: not proven archived in this poll");
	p = (struct delete_policy){ .rules = DELETE_R_BIGGER_THAN,
		.bigger_than = 5 };
	m.archived = true;
	delete_policy_decide(&p, &m, 1, 10, NOW, NULL);
	ASSERT_STREQ(delete_policy_explain(&p, &m, NOW, buf, sizeof(buf)),
	    "bigger_than = 5: 10 bytes");
}

static void
test_keeps_days(void)
{
	struct delete_policy p = { 0 };

	ASSERT_EQ(delete_policy_keeps_days(&p), -1);
	p.rules = DELETE_R_AFTER_ARCHIVE;
	ASSERT_EQ(delete_policy_keeps_days(&p), 0);
	p = (struct delete_policy){ .rules = DELETE_R_AFTER_DAYS |
		    DELETE_R_KEEP_UNDER,
		.after_days = 30 };
	ASSERT_EQ(delete_policy_keeps_days(&p), 30);
	p.rules = DELETE_R_KEEP_UNDER | DELETE_R_BIGGER_THAN;
	ASSERT_EQ(delete_policy_keeps_days(&p), -1);
}

/* xorshift64*: reproducible across libcs. */
static uint64_t
rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

/*
 * Random listings and policies: nothing unarchived is deleted; the caps
 * hold; what is deleted is what the totals say; keep_under stops once the
 * mailbox is under its target, or has deleted every archived message.
 */
static void
test_property_never_unarchived(void)
{
	struct delete_msg m[64];
	struct delete_policy p;
	struct delete_totals t;
	uint64_t seed = 0x9e3779b97f4a7c15ULL, mailbox, sum, bytes;
	size_t iter, i, n, count, archived_kept;

	for (iter = 0; iter < 200000; iter++) {
		n = rnd(&seed) % 65;
		sum = 0;
		for (i = 0; i < n; i++) {
			m[i] = (struct delete_msg){
				.num = (uint32_t)(i * 3 + 1),
				.size = rnd(&seed) % 4096,
				.archived = rnd(&seed) % 3 != 0,
				.has_first_seen = rnd(&seed) % 4 != 0,
				.first_seen = NOW -
				    (int64_t)(rnd(&seed) % (60 * DAY)),
				.has_date = rnd(&seed) % 3 != 0,
				.date = NOW -
				    (int64_t)(rnd(&seed) % (800 * DAY)),
				.reason = DELETE_BIGGER_THAN,
				.capped = true,
			};
			sum += m[i].size;
		}
		p = (struct delete_policy){
			.rules = (unsigned)(rnd(&seed) & 0x7f),
			.after_days = (uint32_t)(rnd(&seed) % 60),
			.older_than_days = (uint32_t)(rnd(&seed) % 800),
			.bigger_than = rnd(&seed) % 4096,
			.keep_under = rnd(&seed) % (sum + 2),
			.max_messages = rnd(&seed) % 40,
			.max_bytes = rnd(&seed) % 60000,
		};
		mailbox = sum + (rnd(&seed) % 2 ? rnd(&seed) % 5000 : 0);
		delete_policy_decide(&p, m, n, mailbox, NOW, &t);
		count = 0;
		bytes = 0;
		archived_kept = 0;
		for (i = 0; i < n; i++) {
			if (!m[i].archived) {
				ASSERT_EQ(m[i].reason, DELETE_KEEP);
				ASSERT_TRUE(!delete_policy_deletes(&m[i]));
			}
			if (m[i].reason == DELETE_KEEP)
				ASSERT_TRUE(!m[i].capped);
			if ((p.rules & DELETE_R_RULES) == 0)
				ASSERT_EQ(m[i].reason, DELETE_KEEP);
			if (m[i].reason == DELETE_KEEP_UNDER)
				ASSERT_TRUE(p.rules & DELETE_R_KEEP_UNDER);
			if (delete_policy_deletes(&m[i])) {
				count++;
				bytes += m[i].size;
			}
			if (m[i].archived && m[i].reason == DELETE_KEEP)
				archived_kept++;
		}
		ASSERT_EQ(t.deleted, count);
		ASSERT_EQ(t.deleted_bytes, bytes);
		if (p.rules & DELETE_R_MAX_MESSAGES)
			ASSERT_TRUE(count <= p.max_messages);
		if (p.rules & DELETE_R_MAX_BYTES)
			ASSERT_TRUE(bytes <= p.max_bytes);
		/* Without caps, keep_under reaches its target or runs out
		 * of archived messages to delete. */
		if ((p.rules & DELETE_R_KEEP_UNDER) &&
		    !(p.rules & (DELETE_R_MAX_MESSAGES | DELETE_R_MAX_BYTES)))
			ASSERT_TRUE(
			    t.remaining < p.keep_under || archived_kept == 0);
	}
}

TEST_MAIN(TESTS)
