/*
 * Which archived messages a poll deletes from the server, and why: the
 * quota-clearing policies of an account's `delete = { ... }`, decided with
 * no I/O so that they can be tested exhaustively
 * (tests/unit/test_delete_policy.c).
 *
 * Only messages proven archived in this poll are ever candidates: those
 * whose RETR committed, and those TOP proved to be the message archived
 * earlier (ingestd/plan.h).  Nothing else is deleted, whatever the rules
 * say: that is the archive's guarantee, and the one invariant the tests
 * check over random listings.
 *
 * Rules, any of which may be combined; a message is deleted when any rule
 * says so ("whichever deletes first"):
 *
 *   after_days = n       first seen by ingestd at least n days ago (a
 *                        message with no first-seen record yet was first
 *                        seen now)
 *   older_than_days = n  its Date header, read from the archived copy, is
 *                        more than n days before now; a message whose
 *                        Date is unknown (not indexed, no or bad header)
 *                        is never deleted by this rule
 *   bigger_than = b      its LIST size is more than b bytes
 *   keep_under = b       after the rules above, the oldest archived
 *                        messages are deleted until the mailbox size
 *                        (STAT) minus the LIST sizes deleted is under b
 *
 * "Oldest" is by first-seen time, earliest first, a message with no
 * first-seen record counting as seen now; ties go by listing order (lower
 * message number first), which on every server we know is arrival order.
 *
 * Caps: max_messages and max_bytes bound what one poll deletes.  When the
 * rules choose more, the oldest (same order as above) are deleted first,
 * and a message whose size would pass max_bytes is skipped for smaller
 * ones after it; the rest are kept until a later poll.
 */
#ifndef INGESTD_DELETE_POLICY_H
#define INGESTD_DELETE_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Which rules and caps a policy sets. */
enum delete_rule {
	DELETE_R_AFTER_ARCHIVE = 1 << 0, /* "after-archive": every one */
	DELETE_R_AFTER_DAYS = 1 << 1,
	DELETE_R_OLDER_THAN = 1 << 2,
	DELETE_R_BIGGER_THAN = 1 << 3,
	DELETE_R_KEEP_UNDER = 1 << 4,
	DELETE_R_MAX_MESSAGES = 1 << 5,
	DELETE_R_MAX_BYTES = 1 << 6,
};

#define DELETE_R_RULES                                                         \
	(DELETE_R_AFTER_ARCHIVE | DELETE_R_AFTER_DAYS | DELETE_R_OLDER_THAN |  \
	    DELETE_R_BIGGER_THAN | DELETE_R_KEEP_UNDER)

struct delete_policy {
	unsigned rules; /* enum delete_rule; none: delete nothing */
	uint32_t after_days;
	uint32_t older_than_days;
	uint64_t bigger_than; /* bytes */
	uint64_t keep_under;  /* bytes */
	uint64_t max_messages;
	uint64_t max_bytes;
};

/* Why a message is deleted; the first rule that says so, in this order. */
enum delete_reason {
	DELETE_KEEP, /* no rule deletes it */
	DELETE_AFTER_ARCHIVE,
	DELETE_AFTER_DAYS,
	DELETE_OLDER_THAN,
	DELETE_BIGGER_THAN,
	DELETE_KEEP_UNDER,
};

/* One message of the listing, as the decision sees it. */
struct delete_msg {
	uint32_t num;
	uint64_t size; /* LIST size */
	bool archived; /* proven archived in this poll */
	bool has_first_seen;
	int64_t first_seen; /* Unix time ingestd first saw its UIDL */
	bool has_date;
	int64_t date; /* Unix time of its Date header */
	/* Out. */
	enum delete_reason reason; /* DELETE_KEEP unless a rule deletes it */
	bool capped;		   /* a rule deletes it, a cap keeps it */
};

/* What a decision came to. */
struct delete_totals {
	size_t deleted; /* reason != KEEP and not capped */
	uint64_t deleted_bytes;
	size_t capped;
	uint64_t remaining; /* mailbox size minus deleted_bytes */
};

/*
 * Decides for each of msgs[0..n) (any order; num unique): fills reason and
 * capped.  A message to DELE is one with reason != DELETE_KEEP and
 * !capped; only archived messages ever are.  mailbox_size is STAT's total
 * (what keep_under compares with); now is Unix time.  Uses a scratch
 * array of n indices; calls nothing back.
 */
void
delete_policy_decide(const struct delete_policy *p, struct delete_msg *msgs,
    size_t n, uint64_t mailbox_size, int64_t now, struct delete_totals *t_r);

/* Whether message m is to be deleted after delete_policy_decide(). */
bool delete_policy_deletes(const struct delete_msg *m);

/* "after_days", "older_than_days", ...; "keep" for DELETE_KEEP. */
const char *delete_reason_name(enum delete_reason r);

/*
 * A line explaining m's verdict under p at time now into buf ("first seen
 * 15 days ago, after_days = 14"; "kept by max_messages = 10"); returns
 * buf.
 */
const char *delete_policy_explain(const struct delete_policy *p,
    const struct delete_msg *m, int64_t now, char *buf, size_t len);

/*
 * How many days at most the policy keeps an archived message on the
 * server, for comparing with the server's EXPIRE: 0 for "after-archive",
 * after_days, or -1 when some message may stay forever (no after_days;
 * keep_under, older_than_days and bigger_than keep some messages for
 * good).
 */
int64_t delete_policy_keeps_days(const struct delete_policy *p);

struct conf_account;
/*
 * The policy an account's delete setting means: "after-archive" is
 * DELETE_R_AFTER_ARCHIVE, "never" no rule, a group its rules.
 */
void delete_policy_from_conf(const struct conf_account *a,
    struct delete_policy *p_r);

#endif
