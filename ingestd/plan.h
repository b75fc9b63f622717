/*
 * What to do with each message a server lists: the safety-critical policy
 * of a poll, kept apart from any connection, loop or database so that it
 * can be tested exhaustively (tests/unit/test_plan.c).
 *
 * A UIDL is never proof on its own: RFC 1939 lets two messages share one,
 * and servers reset and renumber them.  A message listed under the UIDL
 * and LIST size of one archived earlier, and not since confirmed deleted,
 * is taken for that message only once TOP shows the very header block
 * archived (its trace and Message-ID with it); then it is left alone, or
 * deleted under "after-archive".  Anything else is fetched and proven by
 * its full SHA-256.
 *
 * A server without TOP leaves UIDL and size as the only evidence short of
 * the whole message, and they prove nothing: a server that renumbers its
 * UIDLs gives a new message the UIDL of an archived one, and notices sent
 * by machines often share a size.  Under "never" the archive never learns
 * that the archived message left the server, so taking the match on trust
 * would skip the new message at every poll, for good.  A compliance
 * archive must miss nothing, so without TOP such a message is fetched
 * again at every poll, under both policies, and proven by its SHA-256:
 * it costs bandwidth, never storage (blobs and deliveries are stored
 * once).  Re-proving it only every N polls would leave a window of N
 * polls in which its owner can delete it unarchived; fetching every time
 * gives it the window any new message has.  plan_reproven() counts these
 * messages, so the cost shows in the log.
 */
#ifndef INGESTD_PLAN_H
#define INGESTD_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct known;
struct known_entry;
struct pop3_msg;
struct plan;

enum plan_action {
	PLAN_FETCH,	/* RETR, archive, then DELE per policy */
	PLAN_VERIFY,	/* archived earlier: TOP must prove identity */
};

struct plan_msg {
	uint32_t num;
	uint64_t list_size;
	const char *uidl;	/* cleaned (plan_uidl_clean); NULL: none */
	enum plan_action action;
	const struct known_entry *known; /* what PLAN_VERIFY must match */
};

struct plan_params {
	const struct known *known;	/* what the account has archived */
	bool delete_archived;		/* the policy is "after-archive" */
	bool has_top;			/* CAPA offered TOP */
};

/*
 * Plans a poll over the server's listing (ascending message numbers, as
 * pop3/ checks).  list and params->known are borrowed and must outlive the
 * plan; so must the entries plan_msg.known points to.
 */
struct plan *plan_new(const struct plan_params *params,
    const struct pop3_msg *list, size_t n);
void plan_free(struct plan **p);

/* The message numbered num, or NULL if the listing has none. */
struct plan_msg *plan_msg(struct plan *p, uint32_t num);
/*
 * The next message to act on (PLAN_FETCH or PLAN_VERIFY), in listing
 * order; NULL once every one has been handed out.
 */
struct plan_msg *plan_next(struct plan *p);
/* Whether plan_next() has handed out every message to act on. */
bool plan_exhausted(const struct plan *p);
/*
 * How many messages matched an archived one on UIDL and size but are
 * fetched again because the server has no TOP to prove them by.
 */
size_t plan_reproven(const struct plan *p);

enum plan_verdict {
	PLAN_KEEP,	/* proven the archived message; the policy keeps it */
	PLAN_DELETE,	/* proven the archived message; DELE it */
	PLAN_REFETCH,	/* not proven: m is now PLAN_FETCH, RETR it */
};

/*
 * TOP n 0 of a PLAN_VERIFY message hashed to head_sha256.  Returns what to
 * do with it; on PLAN_REFETCH, m->action has become PLAN_FETCH.
 */
enum plan_verdict plan_verified(const struct plan *p, struct plan_msg *m,
    const unsigned char head_sha256[32]);
/* Whether a message whose archive just committed is to be deleted. */
bool plan_delete_archived(const struct plan *p);

/*
 * The server's complete UIDL listing, sorted, for reconciling deliveries
 * removed from the server by others; the caller owns the array and its
 * strings.  NULL (and *n_r = 0) when some message had no UIDL, since then
 * the listing is not complete.
 */
char **plan_take_present(struct plan *p, size_t *n_r);

/*
 * RFC 1939 limits a UIDL to 0x21..0x7E.  A server that sends other bytes
 * still gets its mail archived: such a UIDL is kept with those bytes as
 * %XX, which is stable from poll to poll.  (A collision with a real UIDL
 * spelt that way costs nothing: a UIDL is never proof on its own.)
 * Returns uidl itself when it is clean, else a string the caller frees.
 */
char *plan_uidl_clean(const char *uidl);

#endif
