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
	PLAN_SKIP,	/* refused earlier (plan_refused()): left alone */
};

struct plan_msg {
	uint32_t num;
	uint64_t list_size;
	const char *uidl;	/* as plan_uidl_clean() spells it; NULL:
				 * none */
	enum plan_action action;
	const struct known_entry *known; /* what PLAN_VERIFY must match */
	const struct known_entry *refused; /* why PLAN_SKIP */
};

struct plan_params {
	const struct known *known;	/* what the account has archived */
	const struct known *refused;	/* its refusals; NULL for none */
	bool delete_archived;		/* the policy is "after-archive" */
	bool has_top;			/* CAPA offered TOP */
	bool implicit_delete;		/* the server deletes at QUIT what
					 * was retrieved (plan_end()) */
	int64_t now;			/* Unix time, for refusals */
	/* The size bounds (plan_body_limit()). */
	uint64_t max_size;		/* max_message_size */
	uint64_t size_factor;		/* list_size_factor; 0: none */
	uint64_t size_slack;		/* list_size_slack */
};

/*
 * The most body bytes a message listed with list_size may have:
 * max_size, and less when its LIST size says it is small (servers count
 * line ends differently, hence the factor and the slack).
 */
uint64_t plan_body_limit(const struct plan_params *pp, uint64_t list_size);

/*
 * Refusals: a message a poll refused is recorded by its listing identity
 * (UIDL and LIST size, store/known.h, migration 0003) and skipped by the
 * polls after, instead of being downloaded again at each.  It is never
 * deleted.  Whether the refusal r of a message listed again with
 * list_size still holds:
 *
 *   KNOWN_TOO_LARGE  while plan_body_limit() is at most r->size_limit.
 *                    An operator who raises max_message_size or the
 *                    LIST-relative bound has it tried again; a server that
 *                    lists it with another size has another message.
 *   KNOWN_FAILED     only where the server deletes at QUIT what was
 *                    retrieved: there a message that is retrieved and not
 *                    archived makes the poll end without QUIT, so one that
 *                    fails at every poll would keep every other message of
 *                    the account from being deleted, for good.  After
 *                    PLAN_FAILURES_MAX polls in a row it is skipped, and
 *                    tried again once PLAN_FAILED_RETRY seconds have
 *                    passed since the last failure, in case what failed
 *                    (an outage, a full disk) has mended.  Elsewhere a
 *                    failure costs that message only, and it is fetched
 *                    again at each poll.
 *
 * Only messages whose UIDL is unique in the listing are looked up.
 */
#define PLAN_FAILURES_MAX	3
#define PLAN_FAILED_RETRY	(24 * 60 * 60)
bool plan_refused(const struct plan_params *pp, const struct known_entry *r,
    uint64_t list_size);

/*
 * Plans a poll over the server's listing (ascending message numbers, as
 * pop3/ checks).  list is read during the call only: the plan keeps its
 * own copy of each UIDL, as plan_uidl_clean() spells it.  params->known is
 * borrowed and must outlive the plan; so must the entries plan_msg.known
 * points to.
 */
struct plan *plan_new(const struct plan_params *params,
    const struct pop3_msg *list, size_t n);
void plan_free(struct plan **p);

/* The message numbered num, or NULL if the listing has none. */
struct plan_msg *plan_msg(struct plan *p, uint32_t num);
/*
 * The next message to act on (PLAN_FETCH or PLAN_VERIFY; never
 * PLAN_SKIP), in listing order; NULL once every one has been handed out.
 */
struct plan_msg *plan_next(struct plan *p);
/* Whether plan_next() has handed out every message to act on. */
bool plan_exhausted(const struct plan *p);
/*
 * How many messages matched an archived one on UIDL and size but are
 * fetched again because the server has no TOP to prove them by.
 */
size_t plan_reproven(const struct plan *p);
/* How many messages are PLAN_SKIP. */
size_t plan_skipped(const struct plan *p);

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
 * How a poll ends, once nothing is in flight and every commit is answered.
 *
 * RFC 1939 applies DELE only when QUIT enters the UPDATE state, and a
 * connection closed without QUIT applies nothing.  Some servers also
 * delete at QUIT what was retrieved, DELE or not: those that advertise
 * "EXPIRE 0" (RFC 2449 section 6.7), and Gmail, whose "when messages are
 * accessed with POP" disposition (archive, trash) is applied at QUIT.
 * With such a server, QUIT after a message was retrieved but not archived
 * (a failed commit, a failed pipe, anything) loses that message.  So:
 *
 *   implicit_delete  retrieved == archived   end
 *   no               any                     QUIT
 *   yes              yes                     QUIT
 *   yes              no                      ABANDON
 *
 * ABANDON closes the connection without QUIT: the server keeps every
 * message, including those archived and marked with DELE in this poll;
 * the next poll proves them by TOP (or by their bytes) and deletes them.
 */
enum plan_end {
	PLAN_END_QUIT,		/* QUIT: what the server applies is archived */
	PLAN_END_ABANDON,	/* close without QUIT: nothing is applied */
};

/*
 * implicit_delete: the server deletes at QUIT every message retrieved
 * (EXPIRE 0 after login, or the account's implicit_delete setting).
 * retrieved: RETRs whose body ended in this session; archived: how many
 * of them committed (at most retrieved).
 */
enum plan_end plan_end(bool implicit_delete, size_t retrieved,
    size_t archived);

/*
 * Whether to go on retrieving after lost messages (retrieved, answered,
 * not archived).  Under implicit delete, no: the poll will end without
 * QUIT, so every message retrieved after the first loss would be retrieved
 * again at the next poll, and a message that fails at every poll would
 * cost every poll the whole mailbox.  The poll stops fetching, lets the
 * commits in flight finish, and closes without QUIT.  Otherwise a loss
 * costs that message only, and the poll goes on.
 */
bool plan_keep_fetching(bool implicit_delete, size_t lost);

/*
 * The server's complete UIDL listing, sorted, for reconciling deliveries
 * removed from the server by others.  Moved out of the plan, not copied,
 * so a listing is held once: *mem_r receives the block that holds every
 * UIDL's bytes, and the array returned points into it.  The caller frees
 * both, and not before plan_free(), since the plan's messages point into
 * the block too.  NULL (*n_r = 0, *mem_r = NULL) when some message had no
 * UIDL, since then the listing is not complete, or when taken already.
 */
const char **plan_take_present(struct plan *p, size_t *n_r, char **mem_r);

/* The longest UIDL as the archive spells it: "sha256:" and 64 digits. */
#define PLAN_UIDL_MAX 71

/*
 * Writes to out the spelling of a listed UIDL that the archive keeps, and
 * returns its length.  RFC 1939 allows 1 to 70 octets 0x21..0x7E; a
 * server that sends others still gets its mail archived.  Bytes outside
 * that range are written as %XX.  A spelling longer than 70 octets is
 * replaced by "sha256:" and the lowercase hex SHA-256 of that spelling
 * (71 octets), so that however long a server's UIDLs, the archive holds
 * at most PLAN_UIDL_MAX + 1 bytes for each (the listing budget in
 * pop3/client.h bounds the raw ones).  Both forms are the same from poll
 * to poll.  No UIDL kept as spelt is 71 octets long, so the digest form
 * never equals one of them.  Collisions among %XX spellings (a UIDL that
 * says "%01", and one that holds the byte 0x01) cost nothing: a UIDL is
 * never proof on its own.
 */
size_t plan_uidl_clean(const char *uidl, char out[PLAN_UIDL_MAX + 1]);

#endif
