/*
 * The plan of a poll: what is fetched, proven by TOP, kept and deleted, for
 * every combination of what the archive knows, what the server offers and
 * the account's policy.  This is the policy that decides DELE, so it is
 * tested against a truth table written out independently of the code.
 */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "ingestd/plan.h"
#include "pop3/client.h"
#include "store/hash.h"
#include "store/known.h"
#include "store/pipe.h"
#include "tests/unit/test.h"

#define TESTS(X)                                                        \
	X(test_nothing_archived_fetches_all)                            \
	X(test_truth_table)                                             \
	X(test_verify_then_verdict)                                     \
	X(test_reused_uidl_of_deleted_message)                          \
	X(test_second_entry_under_one_uidl)                             \
	X(test_duplicate_uidls_are_fetched)                             \
	X(test_missing_uidl)                                            \
	X(test_nonprintable_uidl)                                       \
	X(test_uidl_clean)                                              \
	X(test_long_uidls_are_kept_short)                               \
	X(test_no_top_fetches_every_match)                              \
	X(test_next_and_exhausted)                                      \
	X(test_msg_by_number)                                           \
	X(test_empty_listing)                                           \
	X(test_end_truth_table)                                         \
	X(test_keep_fetching)                                           \
	X(test_body_limit)                                              \
	X(test_refused_truth_table)                                     \
	X(test_refused_messages_are_skipped)
TESTS(TEST_DECLARE)

static const unsigned char HEAD[32] = { 1, 2, 3 };
static const unsigned char OTHER_HEAD[32] = { 9, 9, 9 };
static const unsigned char BODY[32] = { 7, 7, 7 };

static void
add_known(struct known *k, const char *uidl, uint64_t list_size,
    bool server_deleted)
{
	struct known_entry e;

	memset(&e, 0, sizeof(e));
	e.uidl = (char *)uidl;
	e.list_size = list_size;
	e.size = list_size;
	e.server_deleted = server_deleted;
	memcpy(e.head_sha256, HEAD, 32);
	memcpy(e.sha256, BODY, 32);
	known_add(k, &e);
}

static struct plan *
plan_for(const struct known *k, bool delete_archived, bool has_top,
    const struct pop3_msg *list, size_t n)
{
	struct plan_params pp = {
		.known = k,
		.delete_archived = delete_archived,
		.has_top = has_top,
	};

	return plan_new(&pp, list, n);
}

/* What plan_take_present() handed over, freed as its caller must. */
static void
free_present(const char **present, char *mem)
{
	free(present);
	free(mem);
}

static void
test_nothing_archived_fetches_all(void)
{
	struct known *k = known_new();
	struct pop3_msg list[] = {
		{ 1, 100, "b" }, { 2, 200, "a" }, { 3, 300, "c" },
	};
	struct plan *p = plan_for(k, true, true, list, 3);
	const char **present;
	char *mem, *again;
	size_t n, i;

	for (i = 1; i <= 3; i++)
		ASSERT_EQ(plan_msg(p, (uint32_t)i)->action, PLAN_FETCH);
	present = plan_take_present(p, &n, &mem);
	ASSERT_EQ(n, 3);
	/* Sorted, in the plan's own block, which now outlives the plan. */
	ASSERT_STREQ(present[0], "a");
	ASSERT_STREQ(present[1], "b");
	ASSERT_STREQ(present[2], "c");
	ASSERT_TRUE(present[0] != list[1].uidl);
	for (i = 0; i < n; i++)
		ASSERT_TRUE(present[i] >= mem && present[i] < mem + 6);
	/* Moved, not copied: the plan's messages use the same bytes. */
	ASSERT_TRUE(plan_msg(p, 2)->uidl == present[0]);
	/* Taken once. */
	ASSERT_TRUE(plan_take_present(p, &n, &again) == NULL);
	ASSERT_EQ(n, 0);
	ASSERT_TRUE(again == NULL);
	plan_free(&p);
	ASSERT_TRUE(p == NULL);
	plan_free(&p);
	ASSERT_STREQ(present[2], "c");
	free_present(present, mem);
	known_free(&k);
}

/* What the archive holds under the listed UIDL. */
enum archived {
	ARCH_NONE,		/* nothing */
	ARCH_SAME,		/* same UIDL and LIST size, on the server */
	ARCH_OTHER_SIZE,	/* same UIDL, another LIST size */
	ARCH_DELETED,		/* same UIDL and size, confirmed deleted */
};

/*
 * The rule, written out: only a unique UIDL with an archived, undeleted
 * entry of the same size is ever spared a download, and only once TOP
 * proves it.  Without TOP nothing can prove it short of the whole
 * message, under either policy: it is fetched again.
 */
static enum plan_action
expected(enum archived a, bool unique, bool has_top, bool delete_archived)
{
	if (a != ARCH_SAME || !unique)
		return PLAN_FETCH;
	if (has_top)
		return PLAN_VERIFY;
	return PLAN_FETCH;
}

static void
test_truth_table(void)
{
	int a, unique, top, del, cases = 0;

	for (a = ARCH_NONE; a <= ARCH_DELETED; a++)
	for (unique = 0; unique <= 1; unique++)
	for (top = 0; top <= 1; top++)
	for (del = 0; del <= 1; del++) {
		struct known *k = known_new();
		struct pop3_msg list[] = {
			{ 1, 500, "u1" }, { 2, 600, unique ? "u2" : "u1" },
		};
		struct plan *p;
		enum plan_action want;

		if (a == ARCH_SAME)
			add_known(k, "u1", 500, false);
		else if (a == ARCH_OTHER_SIZE)
			add_known(k, "u1", 501, false);
		else if (a == ARCH_DELETED)
			add_known(k, "u1", 500, true);
		p = plan_for(k, del, top, list, 2);
		want = expected(a, unique, top, del);
		if (plan_msg(p, 1)->action != want)
			TEST_FAIL_("archived=%d unique=%d top=%d delete=%d: "
			    "action %d, want %d", a, unique, top, del,
			    plan_msg(p, 1)->action, want);
		/* What VERIFY must match is the archived entry. */
		if (want == PLAN_VERIFY)
			ASSERT_EQ(plan_msg(p, 1)->known->list_size, 500);
		else
			ASSERT_TRUE(plan_msg(p, 1)->known == NULL);
		/* A match fetched again for want of TOP is counted. */
		ASSERT_EQ(plan_reproven(p),
		    a == ARCH_SAME && unique && !top ? 1 : 0);
		ASSERT_EQ(plan_delete_archived(p), del);
		plan_free(&p);
		known_free(&k);
		cases++;
	}
	ASSERT_EQ(cases, 4 * 2 * 2 * 2);
}

static void
test_verify_then_verdict(void)
{
	struct known *k = known_new();
	struct pop3_msg list[] = { { 1, 500, "u1" } };
	struct plan *p;
	struct plan_msg *m;
	int del;

	add_known(k, "u1", 500, false);
	for (del = 0; del <= 1; del++) {
		/* The very header block archived: per policy. */
		p = plan_for(k, del, true, list, 1);
		m = plan_msg(p, 1);
		ASSERT_EQ(m->action, PLAN_VERIFY);
		ASSERT_EQ(plan_verified(p, m, HEAD),
		    del ? PLAN_DELETE : PLAN_KEEP);
		ASSERT_MEMEQ(m->known->sha256, BODY, 32);
		plan_free(&p);

		/* Another header under the same UIDL and size: never
		 * deleted, fetched whatever the policy. */
		p = plan_for(k, del, true, list, 1);
		m = plan_msg(p, 1);
		ASSERT_EQ(plan_verified(p, m, OTHER_HEAD), PLAN_REFETCH);
		ASSERT_EQ(m->action, PLAN_FETCH);
		plan_free(&p);
	}
	known_free(&k);
}

/* A server reusing the UIDL of a message it confirmed deleted lists a new
 * message: it is fetched, even under "never" without TOP. */
static void
test_reused_uidl_of_deleted_message(void)
{
	struct known *k = known_new();
	struct pop3_msg list[] = { { 1, 500, "u1" } };
	struct plan *p;
	int top, del;

	add_known(k, "u1", 500, true);
	for (top = 0; top <= 1; top++)
		for (del = 0; del <= 1; del++) {
			p = plan_for(k, del, top, list, 1);
			ASSERT_EQ(plan_msg(p, 1)->action, PLAN_FETCH);
			ASSERT_TRUE(plan_msg(p, 1)->known == NULL);
			plan_free(&p);
		}
	known_free(&k);
}

/* Two archived messages under one UIDL (a reuse seen earlier): the one
 * still on the server with the listed size is what TOP must match. */
static void
test_second_entry_under_one_uidl(void)
{
	struct known *k = known_new();
	struct pop3_msg list[] = { { 1, 700, "u1" } };
	struct known_entry e;
	struct plan *p;

	add_known(k, "u1", 700, true);
	add_known(k, "u1", 650, false);
	memset(&e, 0, sizeof(e));
	e.uidl = "u1";
	e.list_size = 700;
	memcpy(e.head_sha256, OTHER_HEAD, 32);
	known_add(k, &e);
	p = plan_for(k, true, true, list, 1);
	ASSERT_EQ(plan_msg(p, 1)->action, PLAN_VERIFY);
	ASSERT_MEMEQ(plan_msg(p, 1)->known->head_sha256, OTHER_HEAD, 32);
	ASSERT_EQ(plan_verified(p, plan_msg(p, 1), OTHER_HEAD), PLAN_DELETE);
	plan_free(&p);
	known_free(&k);
}

static void
test_duplicate_uidls_are_fetched(void)
{
	struct known *k = known_new();
	struct pop3_msg list[] = {
		{ 1, 500, "dup" }, { 2, 500, "ok" }, { 3, 500, "dup" },
		{ 4, 500, "dup" },
	};
	struct plan *p;
	const char **present;
	char *mem;
	size_t n;

	add_known(k, "dup", 500, false);
	add_known(k, "ok", 500, false);
	p = plan_for(k, false, true, list, 4);
	ASSERT_EQ(plan_msg(p, 1)->action, PLAN_FETCH);
	ASSERT_EQ(plan_msg(p, 2)->action, PLAN_VERIFY);
	ASSERT_EQ(plan_msg(p, 3)->action, PLAN_FETCH);
	ASSERT_EQ(plan_msg(p, 4)->action, PLAN_FETCH);
	/* The listing is still complete for reconciliation. */
	present = plan_take_present(p, &n, &mem);
	ASSERT_EQ(n, 4);
	ASSERT_STREQ(present[0], "dup");
	ASSERT_STREQ(present[3], "ok");
	plan_free(&p);
	free_present(present, mem);
	known_free(&k);
}

/* A message without a UIDL is fetched; the others are still matched, and
 * duplicates among them still detected; but the listing is incomplete, so
 * nothing is reconciled from it. */
static void
test_missing_uidl(void)
{
	struct known *k = known_new();
	struct pop3_msg list[] = {
		{ 1, 500, NULL }, { 2, 500, "a" }, { 3, 500, "b" },
		{ 4, 500, "b" },
	};
	struct plan *p;
	const char **present;
	char *mem = "";
	size_t n = 99;

	add_known(k, "a", 500, false);
	add_known(k, "b", 500, false);
	p = plan_for(k, true, true, list, 4);
	ASSERT_EQ(plan_msg(p, 1)->action, PLAN_FETCH);
	ASSERT_TRUE(plan_msg(p, 1)->uidl == NULL);
	ASSERT_EQ(plan_msg(p, 2)->action, PLAN_VERIFY);
	ASSERT_EQ(plan_msg(p, 3)->action, PLAN_FETCH);
	ASSERT_EQ(plan_msg(p, 4)->action, PLAN_FETCH);
	present = plan_take_present(p, &n, &mem);
	ASSERT_TRUE(present == NULL);
	ASSERT_TRUE(mem == NULL);
	ASSERT_EQ(n, 0);
	/* The plan kept its UIDLs. */
	ASSERT_STREQ(plan_msg(p, 4)->uidl, "b");
	plan_free(&p);
	known_free(&k);
}

/* Bytes outside RFC 1939's range are kept as %XX, and the archive knows
 * the message by that spelling from poll to poll. */
static void
test_nonprintable_uidl(void)
{
	struct known *k = known_new();
	char raw[] = "a b\x01\xff";
	struct pop3_msg list[] = { { 1, 500, raw }, { 2, 500, "plain" } };
	struct plan *p;
	const char **present;
	char *mem;
	size_t n;

	add_known(k, "a%20b%01%FF", 500, false);
	p = plan_for(k, true, true, list, 2);
	ASSERT_STREQ(plan_msg(p, 1)->uidl, "a%20b%01%FF");
	ASSERT_EQ(plan_msg(p, 1)->action, PLAN_VERIFY);
	/* A clean UIDL is copied too: the listing is given back once
	 * planned, the plan's block is the one copy kept. */
	ASSERT_STREQ(plan_msg(p, 2)->uidl, "plain");
	ASSERT_TRUE(plan_msg(p, 2)->uidl != list[1].uidl);
	present = plan_take_present(p, &n, &mem);
	ASSERT_EQ(n, 2);
	ASSERT_STREQ(present[0], "a%20b%01%FF");
	plan_free(&p);
	free_present(present, mem);
	known_free(&k);
}

/* The spelling of uidl, checked for length and NUL. */
static void
check_clean(const char *uidl, const char *want)
{
	char out[PLAN_UIDL_MAX + 2];
	size_t n;

	memset(out, 'Z', sizeof(out));
	n = plan_uidl_clean(uidl, out);
	ASSERT_TRUE(n <= PLAN_UIDL_MAX);
	ASSERT_EQ(n, strlen(want));
	ASSERT_STREQ(out, want);
	ASSERT_EQ(out[PLAN_UIDL_MAX + 1], 'Z');
}

/* "sha256:" and the lowercase hex digest of spelt. */
static void
digest_form(const char *spelt, char out[PLAN_UIDL_MAX + 1])
{
	unsigned char d[32];

	hash_sha256(spelt, strlen(spelt), d);
	memcpy(out, "sha256:", 7);
	pipe_hex(d, out + 7);
}

static void
test_uidl_clean(void)
{
	char raw[600], spelt[1600], want[PLAN_UIDL_MAX + 1];
	char out[PLAN_UIDL_MAX + 1], out2[PLAN_UIDL_MAX + 1];
	size_t i;

	check_clean("!~AZaz09", "!~AZaz09");
	check_clean("%", "%");		/* '%' itself is printable: kept */
	check_clean("\x7f\x20\x21", "%7F%20!");
	check_clean("\x80", "%80");

	/* RFC 1939's longest, 70 octets, is kept as it is. */
	memset(raw, 'u', 70);
	raw[70] = '\0';
	check_clean(raw, raw);
	/* One more octet, and it is the digest of the spelling. */
	raw[70] = 'u';
	raw[71] = '\0';
	digest_form(raw, want);
	ASSERT_EQ(strlen(want), PLAN_UIDL_MAX);
	check_clean(raw, want);
	/* 70 octets once spelt: kept; 71: digest.  23 bytes of 0x01 and a
	 * printable one spell to 70; two more printable ones to 72. */
	memset(raw, 1, 23);
	strcpy(raw + 23, "x");
	check_clean(raw, "%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01%01"
	    "%01%01%01%01%01%01%01x");
	strcpy(raw + 23, "xyz");
	for (i = 0; i < 23; i++)
		memcpy(spelt + 3 * i, "%01", 3);
	strcpy(spelt + 69, "xyz");
	digest_form(spelt, want);
	check_clean(raw, want);

	/* A binary UIDL as long as a line allows: 500 bytes spelt out to
	 * 1500, kept in 71; the digest is of the spelling, so an archive
	 * that kept the spelling can be rewritten to it in SQL. */
	for (i = 0; i < 500; i++)
		raw[i] = (char)(0x80 | (i & 0x7f));
	raw[500] = '\0';
	for (i = 0; i < 500; i++)
		snprintf(spelt + 3 * i, 4, "%%%02X", (unsigned char)raw[i]);
	digest_form(spelt, want);
	check_clean(raw, want);
	/* Stable, and another UIDL gets another digest. */
	ASSERT_EQ(plan_uidl_clean(raw, out), PLAN_UIDL_MAX);
	raw[499] = (char)0x81;
	ASSERT_EQ(plan_uidl_clean(raw, out2), PLAN_UIDL_MAX);
	ASSERT_TRUE(strcmp(out, out2) != 0);
	ASSERT_STREQ(out, want);
}

/* A listing of long binary UIDLs: the plan holds one short spelling of
 * each, matches them against the archive and hands them over. */
static void
test_long_uidls_are_kept_short(void)
{
	enum { N = 300 };
	static char raw[N][501];
	struct pop3_msg list[N];
	struct known *k = known_new();
	char want[PLAN_UIDL_MAX + 1];
	const char **present;
	struct plan *p;
	char *mem;
	size_t i, j, n;

	for (i = 0; i < N; i++) {
		/* i in the first three bytes: every UIDL distinct */
		for (j = 0; j < 500; j++)
			raw[i][j] = (char)(0x80 | ((j < 3 ? i >> (7 * j) :
			    i + j) & 0x7f));
		raw[i][500] = '\0';
		list[i].num = (uint32_t)i + 1;
		list[i].size = 1000;
		list[i].uidl = raw[i];
	}
	ASSERT_EQ(plan_uidl_clean(raw[42], want), PLAN_UIDL_MAX);
	add_known(k, want, 1000, false);
	p = plan_for(k, false, true, list, N);
	ASSERT_EQ(plan_msg(p, 43)->action, PLAN_VERIFY);
	ASSERT_STREQ(plan_msg(p, 43)->uidl, want);
	ASSERT_EQ(plan_msg(p, 42)->action, PLAN_FETCH);
	present = plan_take_present(p, &n, &mem);
	ASSERT_EQ(n, N);
	for (i = 0; i < n; i++) {
		ASSERT_EQ(strlen(present[i]), PLAN_UIDL_MAX);
		/* every spelling in the one block, none repeated */
		ASSERT_TRUE(present[i] >= mem &&
		    present[i] < mem + N * (PLAN_UIDL_MAX + 1));
		if (i > 0)
			ASSERT_TRUE(strcmp(present[i - 1], present[i]) < 0);
	}
	plan_free(&p);
	free_present(present, mem);
	known_free(&k);
}

/*
 * A server without TOP that reused the UIDL of an archived message for a
 * new one of the same size (servers that renumber do): under "never" the
 * archive never saw the old one leave, so only fetching every match again
 * keeps the new one from being skipped for good.
 */
static void
test_no_top_fetches_every_match(void)
{
	struct known *k = known_new();
	struct pop3_msg list[] = {
		{ 1, 10, "reused" }, { 2, 10, "new" }, { 3, 11, "resized" },
		{ 4, 10, "kept" },
	};
	struct plan *p;
	uint32_t num;
	int del;

	add_known(k, "reused", 10, false);
	add_known(k, "resized", 10, false);
	add_known(k, "kept", 10, false);
	for (del = 0; del <= 1; del++) {
		p = plan_for(k, del, false, list, 4);
		for (num = 1; num <= 4; num++) {
			ASSERT_EQ(plan_msg(p, num)->action, PLAN_FETCH);
			ASSERT_TRUE(plan_msg(p, num)->known == NULL);
		}
		/* "reused" and "kept" matched; "resized" has another size
		 * and "new" no entry: plain new messages. */
		ASSERT_EQ(plan_reproven(p), 2);
		plan_free(&p);
	}
	/* With TOP the matches are proven instead. */
	p = plan_for(k, false, true, list, 4);
	ASSERT_EQ(plan_msg(p, 1)->action, PLAN_VERIFY);
	ASSERT_EQ(plan_msg(p, 2)->action, PLAN_FETCH);
	ASSERT_EQ(plan_msg(p, 3)->action, PLAN_FETCH);
	ASSERT_EQ(plan_msg(p, 4)->action, PLAN_VERIFY);
	ASSERT_EQ(plan_reproven(p), 0);
	plan_free(&p);
	known_free(&k);
}

static void
test_next_and_exhausted(void)
{
	struct known *k = known_new();
	struct pop3_msg list[] = {
		{ 1, 10, "kept1" }, { 2, 10, "new" }, { 3, 10, "kept2" },
	};
	struct plan *p;
	struct plan_msg *m;
	int top;

	add_known(k, "kept1", 10, false);
	add_known(k, "kept2", 10, false);
	/* Every message is handed out, in listing order, with or without
	 * TOP: nothing is left alone without a proof. */
	for (top = 0; top <= 1; top++) {
		p = plan_for(k, false, top, list, 3);
		ASSERT_TRUE(!plan_exhausted(p));
		m = plan_next(p);
		ASSERT_EQ(m->num, 1);
		ASSERT_EQ(m->action, top ? PLAN_VERIFY : PLAN_FETCH);
		m = plan_next(p);
		ASSERT_EQ(m->num, 2);
		ASSERT_EQ(m->action, PLAN_FETCH);
		ASSERT_TRUE(!plan_exhausted(p));
		m = plan_next(p);
		ASSERT_EQ(m->num, 3);
		ASSERT_TRUE(plan_exhausted(p));
		ASSERT_TRUE(plan_next(p) == NULL);
		ASSERT_TRUE(plan_next(p) == NULL);
		plan_free(&p);
	}
	known_free(&k);
}

static void
test_msg_by_number(void)
{
	struct known *k = known_new();
	struct pop3_msg list[] = {
		{ 2, 1, "a" }, { 5, 2, "b" }, { 9, 3, "c" }, { 10, 4, "d" },
	};
	struct plan *p = plan_for(k, true, true, list, 4);
	uint32_t num;

	for (num = 0; num <= 11; num++) {
		struct plan_msg *m = plan_msg(p, num);

		if (num == 2 || num == 5 || num == 9 || num == 10) {
			ASSERT_TRUE(m != NULL);
			ASSERT_EQ(m->num, num);
		} else
			ASSERT_TRUE(m == NULL);
	}
	ASSERT_EQ(plan_msg(p, 9)->list_size, 3);
	plan_free(&p);
	known_free(&k);
}

static void
test_empty_listing(void)
{
	struct known *k = known_new();
	struct plan *p = plan_for(k, true, true, NULL, 0);
	const char **present;
	char *mem;
	size_t n = 99;

	ASSERT_TRUE(plan_exhausted(p));
	ASSERT_TRUE(plan_next(p) == NULL);
	ASSERT_TRUE(plan_msg(p, 1) == NULL);
	/* An empty mailbox is a complete listing: everything archived and
	 * not yet marked is gone from the server. */
	present = plan_take_present(p, &n, &mem);
	ASSERT_TRUE(present != NULL);
	ASSERT_EQ(n, 0);
	plan_free(&p);
	free_present(present, mem);
	known_free(&k);
}


/*
 * QUIT or not, for every combination up to 40 messages: QUIT unless the
 * server deletes retrieved messages at QUIT and one of them is not
 * archived.  The rule is written out here independently of the code.
 */
static void
test_end_truth_table(void)
{
	size_t r, a;
	int i;
	bool implicit, safe;

	for (i = 0; i < 2; i++) {
		implicit = i == 1;
		for (r = 0; r <= 40; r++)
			for (a = 0; a <= r; a++) {
				safe = !implicit || a == r;
				ASSERT_EQ(plan_end(implicit, r, a),
				    safe ? PLAN_END_QUIT : PLAN_END_ABANDON);
			}
	}
	/* The cases of the report: 7 retrieved, none archived. */
	ASSERT_EQ(plan_end(true, 7, 0), PLAN_END_ABANDON);
	ASSERT_EQ(plan_end(true, 8, 7), PLAN_END_ABANDON);
	ASSERT_EQ(plan_end(false, 7, 0), PLAN_END_QUIT);
	ASSERT_EQ(plan_end(true, 0, 0), PLAN_END_QUIT);
	ASSERT_EQ(plan_end(true, (size_t)-1, (size_t)-1), PLAN_END_QUIT);
	ASSERT_EQ(plan_end(true, (size_t)-1, (size_t)-2), PLAN_END_ABANDON);
}

static void
test_keep_fetching(void)
{
	size_t lost;

	for (lost = 0; lost <= 40; lost++) {
		ASSERT_TRUE(plan_keep_fetching(false, lost));
		ASSERT_EQ(plan_keep_fetching(true, lost), lost == 0);
	}
}

static void
test_body_limit(void)
{
	static const struct {
		uint64_t max, factor, slack, list, want;
	} t[] = {
		/* No relative bound: max_message_size alone. */
		{ 1000, 0, 0, 10, 1000 },
		{ 1000, 0, 500, 10, 1000 },
		/* factor x LIST + slack, when below the cap. */
		{ 1 << 20, 2, 1000, 1000, 3000 },
		{ 1 << 20, 2, 1000, 0, 1000 },
		{ 5000, 2, 1000, 10000, 5000 },
		{ 3000, 2, 1000, 1000, 3000 },
		/* A LIST size so large the product would overflow. */
		{ 1 << 20, 4, 10, UINT64_MAX / 2, 1 << 20 },
		{ 1 << 20, 1, 1, UINT64_MAX, 1 << 20 },
	};
	struct plan_params pp;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(&pp, 0, sizeof(pp));
		pp.max_size = t[i].max;
		pp.size_factor = t[i].factor;
		pp.size_slack = t[i].slack;
		ASSERT_EQ(plan_body_limit(&pp, t[i].list), t[i].want);
	}
}

/*
 * Whether a refusal still holds, written out case by case: a message too
 * large is skipped until the bound that applies to it grows past the one
 * that refused it; a message that failed is skipped only on an account
 * whose server deletes at QUIT, after 3 polls in a row, and for a day
 * after the last.
 */
static void
test_refused_truth_table(void)
{
	static const struct {
		enum known_refused why;
		uint64_t rec_list, rec_limit;
		unsigned failures;
		int64_t age;		/* now - last_refused */
		bool implicit;
		uint64_t max, factor, slack, list;
		bool skip;
	} t[] = {
		/* too large: the same cap, a lower one, a raised one */
		{ KNOWN_TOO_LARGE, 1000, 65536, 1, 0, false,
		    65536, 0, 0, 1000, true },
		{ KNOWN_TOO_LARGE, 1000, 65536, 1, 999999, true,
		    65536, 0, 0, 1000, true },
		{ KNOWN_TOO_LARGE, 1000, 65536, 1, 0, false,
		    32768, 0, 0, 1000, true },
		{ KNOWN_TOO_LARGE, 1000, 65536, 1, 0, false,
		    65537, 0, 0, 1000, false },
		{ KNOWN_TOO_LARGE, 1000, 65536, 1, 0, false,
		    1 << 20, 0, 0, 1000, false },
		/* too large for its LIST size: the same, then more slack */
		{ KNOWN_TOO_LARGE, 1000, 3000, 1, 0, false,
		    1 << 20, 2, 1000, 1000, true },
		{ KNOWN_TOO_LARGE, 1000, 3000, 1, 0, false,
		    1 << 20, 2, 2000, 1000, false },
		{ KNOWN_TOO_LARGE, 1000, 3000, 1, 0, false,
		    1 << 20, 3, 1000, 1000, false },
		/* listed with another size: another message */
		{ KNOWN_TOO_LARGE, 1000, 65536, 1, 0, false,
		    65536, 0, 0, 1001, false },
		/* failed: only under implicit delete, from 3 in a row */
		{ KNOWN_FAILED, 1000, 65536, 3, 0, true,
		    65536, 0, 0, 1000, true },
		{ KNOWN_FAILED, 1000, 65536, 7, 60, true,
		    65536, 0, 0, 1000, true },
		{ KNOWN_FAILED, 1000, 65536, 2, 0, true,
		    65536, 0, 0, 1000, false },
		{ KNOWN_FAILED, 1000, 65536, 1, 0, true,
		    65536, 0, 0, 1000, false },
		{ KNOWN_FAILED, 1000, 65536, 3, 0, false,
		    65536, 0, 0, 1000, false },
		{ KNOWN_FAILED, 1000, 65536, 50, 0, false,
		    65536, 0, 0, 1000, false },
		{ KNOWN_FAILED, 1000, 65536, 3, 86399, true,
		    65536, 0, 0, 1000, true },
		{ KNOWN_FAILED, 1000, 65536, 3, 86400, true,
		    65536, 0, 0, 1000, false },
		{ KNOWN_FAILED, 1000, 65536, 3, 0, true,
		    65536, 0, 0, 999, false },
		/* not a refusal at all */
		{ KNOWN_ARCHIVED, 1000, 0, 9, 0, true,
		    65536, 0, 0, 1000, false },
	};
	struct plan_params pp;
	struct known_entry e;
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		memset(&pp, 0, sizeof(pp));
		memset(&e, 0, sizeof(e));
		e.uidl = "u";
		e.refused = t[i].why;
		e.list_size = t[i].rec_list;
		e.size_limit = t[i].rec_limit;
		e.failures = t[i].failures;
		e.last_refused = 1800000000;
		pp.now = e.last_refused + t[i].age;
		pp.implicit_delete = t[i].implicit;
		pp.max_size = t[i].max;
		pp.size_factor = t[i].factor;
		pp.size_slack = t[i].slack;
		if (plan_refused(&pp, &e, t[i].list) != t[i].skip) {
			fprintf(stderr, "row %zu\n", i);
			ASSERT_EQ(plan_refused(&pp, &e, t[i].list), t[i].skip);
		}
	}
}

static void
add_refused(struct known *k, const char *uidl, uint64_t list_size)
{
	struct known_entry e;

	memset(&e, 0, sizeof(e));
	e.uidl = (char *)uidl;
	e.list_size = list_size;
	e.refused = KNOWN_TOO_LARGE;
	e.size_limit = 4096;
	e.failures = 1;
	known_add(k, &e);
}

/*
 * Refused messages are never handed out, first, in the middle or last;
 * a refused UIDL listed twice proves nothing and both are fetched; a
 * refusal for another LIST size does not hold.
 */
static void
test_refused_messages_are_skipped(void)
{
	struct known *k = known_new(), *r = known_new();
	struct pop3_msg list[] = {
		{ 1, 100, "big1" }, { 2, 10, "new" }, { 3, 100, "dup" },
		{ 4, 100, "dup" }, { 5, 100, "resized" }, { 6, 100, "big2" },
	};
	struct plan_params pp = {
		.known = k,
		.refused = r,
		.has_top = true,
		.max_size = 4096,
	};
	struct plan *p;
	struct plan_msg *m;
	uint32_t want[] = { 2, 3, 4, 5 };
	size_t i;

	add_refused(r, "big1", 100);
	add_refused(r, "dup", 100);
	add_refused(r, "resized", 99);
	add_refused(r, "big2", 100);
	p = plan_new(&pp, list, 6);
	ASSERT_EQ(plan_skipped(p), 2);
	ASSERT_EQ(plan_msg(p, 1)->action, PLAN_SKIP);
	ASSERT_STREQ(plan_msg(p, 1)->refused->uidl, "big1");
	ASSERT_EQ(plan_msg(p, 6)->action, PLAN_SKIP);
	for (i = 0; i < 4; i++) {
		ASSERT_TRUE(!plan_exhausted(p));
		m = plan_next(p);
		ASSERT_TRUE(m != NULL);
		ASSERT_EQ(m->num, want[i]);
		ASSERT_EQ(m->action, PLAN_FETCH);
	}
	ASSERT_TRUE(plan_exhausted(p));
	ASSERT_TRUE(plan_next(p) == NULL);
	plan_free(&p);

	/* The cap raised: nothing is skipped. */
	pp.max_size = 8192;
	p = plan_new(&pp, list, 6);
	ASSERT_EQ(plan_skipped(p), 0);
	ASSERT_EQ(plan_next(p)->num, 1);
	plan_free(&p);

	/* Everything refused: exhausted from the start. */
	pp.max_size = 4096;
	p = plan_new(&pp, list, 1);
	ASSERT_TRUE(plan_exhausted(p));
	ASSERT_TRUE(plan_next(p) == NULL);
	plan_free(&p);
	known_free(&k);
	known_free(&r);
}

TEST_MAIN(TESTS)
