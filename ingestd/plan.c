/*
 * The plan of a poll (see plan.h): the decision of what to fetch, prove,
 * keep and delete, with no I/O.
 */
#include "ingestd/plan.h"

#include <stdlib.h>
#include <string.h>

#include "ingestd/base/log.h"
#include "ingestd/base/xmalloc.h"
#include "pop3/client.h"
#include "store/hash.h"
#include "store/known.h"
#include "store/pipe.h"

struct plan {
	struct plan_params p;
	struct plan_msg *msgs;	/* in listing order */
	size_t nmsgs;
	size_t next;		/* the next entry to act on, or nmsgs */
	size_t reproven;	/* matched, fetched again for want of TOP */
	size_t skipped;		/* PLAN_SKIP */
	/*
	 * Every UIDL as the archive spells it, NUL-terminated, back to back
	 * in one block: the plan's only copy, at most PLAN_UIDL_MAX + 1
	 * bytes a message.  plan_take_present() may move it out.
	 */
	char *uidls;
	bool uidls_taken;
	const char **sorted;	/* into uidls, sorted */
	size_t nsorted;
	bool complete;		/* every message had a UIDL */
};

/* The longest spelling kept as it is: RFC 1939's longest UIDL. */
#define UIDL_KEPT_MAX	70
#define UIDL_DIGEST	"sha256:"

static bool
uidl_byte_ok(unsigned char ch)
{
	return ch >= 0x21 && ch <= 0x7e;
}

/* Writes uidl with the bytes outside 0x21..0x7E as %XX, and a NUL. */
static void
uidl_spell(const char *uidl, char *out)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;

	for (p = (const unsigned char *)uidl; *p != '\0'; p++)
		if (uidl_byte_ok(*p))
			*out++ = (char)*p;
		else {
			*out++ = '%';
			*out++ = hex[*p >> 4];
			*out++ = hex[*p & 0xf];
		}
	*out = '\0';
}

size_t
plan_uidl_clean(const char *uidl, char out[PLAN_UIDL_MAX + 1])
{
	const unsigned char *p;
	unsigned char digest[32];
	size_t n = 0;
	char *spelt;

	for (p = (const unsigned char *)uidl; *p != '\0'; p++)
		n += uidl_byte_ok(*p) ? 1 : 3;
	if (n <= UIDL_KEPT_MAX) {
		uidl_spell(uidl, out);
		return n;
	}
	/* At most three times a 512-octet line, and only for a moment. */
	spelt = xmalloc(n + 1);
	uidl_spell(uidl, spelt);
	hash_sha256(spelt, n, digest);
	free(spelt);
	memcpy(out, UIDL_DIGEST, sizeof(UIDL_DIGEST) - 1);
	pipe_hex(digest, out + sizeof(UIDL_DIGEST) - 1);
	return PLAN_UIDL_MAX;
}

static int
cmp_str(const void *a, const void *b)
{
	const char *const *x = a, *const *y = b;

	return strcmp(*x, *y);
}

/* Whether uidl occurs once in the sorted listing. */
static bool
uidl_unique(const struct plan *p, const char *uidl)
{
	const char **hit, **end = p->sorted + p->nsorted;

	hit = bsearch(&uidl, p->sorted, p->nsorted, sizeof(*p->sorted),
	    cmp_str);
	ASSERT(hit != NULL);
	return !((hit > p->sorted && strcmp(hit[-1], uidl) == 0) ||
	    (hit + 1 < end && strcmp(hit[1], uidl) == 0));
}

uint64_t
plan_body_limit(const struct plan_params *pp, uint64_t list_size)
{
	uint64_t rel;

	if (pp->size_factor == 0 ||
	    list_size > (UINT64_MAX - pp->size_slack) / pp->size_factor)
		return pp->max_size;
	rel = list_size * pp->size_factor + pp->size_slack;
	return rel < pp->max_size ? rel : pp->max_size;
}

bool
plan_refused(const struct plan_params *pp, const struct known_entry *r,
    uint64_t list_size)
{
	if (r->list_size != list_size)
		return false;
	switch (r->refused) {
	case KNOWN_TOO_LARGE:
		return plan_body_limit(pp, list_size) <= r->size_limit;
	case KNOWN_FAILED:
		return pp->implicit_delete &&
		    r->failures >= PLAN_FAILURES_MAX &&
		    pp->now - r->last_refused < PLAN_FAILED_RETRY;
	case KNOWN_ARCHIVED:
		break;
	}
	return false;
}

static enum plan_action
plan_one(struct plan *p, struct plan_msg *m)
{
	const struct known_entry *e;

	/* RFC 1939 allows one UIDL for two messages; such UIDLs prove
	 * nothing, so those messages are fetched and checked by content. */
	if (m->uidl == NULL || !uidl_unique(p, m->uidl))
		return PLAN_FETCH;
	if (p->p.refused != NULL)
		for (e = known_find(p->p.refused, m->uidl); e != NULL;
		    e = known_next(e))
			if (plan_refused(&p->p, e, m->list_size)) {
				m->refused = e;
				p->skipped++;
				return PLAN_SKIP;
			}
	for (e = known_find(p->p.known, m->uidl); e != NULL;
	    e = known_next(e)) {
		/* A message the server confirmed deleted cannot be listed
		 * again: its UIDL has been reused for another message. */
		if (e->list_size != m->list_size || e->server_deleted)
			continue;
		if (p->p.has_top) {
			m->known = e;
			return PLAN_VERIFY;
		}
		/* Without TOP the only proof is the whole message again,
		 * under either policy (see plan.h). */
		p->reproven++;
		return PLAN_FETCH;
	}
	return PLAN_FETCH;
}

/* Steps next past what is not to be handed out. */
static void
plan_skip(struct plan *p)
{
	while (p->next < p->nmsgs && p->msgs[p->next].action == PLAN_SKIP)
		p->next++;
}

struct plan *
plan_new(const struct plan_params *params, const struct pop3_msg *list,
    size_t n)
{
	struct plan *p = xcalloc(1, sizeof(*p));
	size_t i, used = 0;
	char *u;

	p->p = *params;
	p->msgs = xcalloc(n ? n : 1, sizeof(*p->msgs));
	p->nmsgs = n;
	p->sorted = xcalloc(n ? n : 1, sizeof(*p->sorted));
	/*
	 * Room for the longest spellings, then given back: only the bytes
	 * written are ever touched, so the bound costs address space, not
	 * memory, and the UIDLs are cleaned once.
	 */
	p->uidls = xreallocarray(NULL, n ? n : 1, PLAN_UIDL_MAX + 1);
	for (i = 0; i < n; i++) {
		p->msgs[i].num = list[i].num;
		p->msgs[i].list_size = list[i].size;
		if (list[i].uidl != NULL)
			used += plan_uidl_clean(list[i].uidl,
			    p->uidls + used) + 1;
	}
	p->uidls = xreallocarray(p->uidls, used ? used : 1, 1);
	/* Pointers only now that the block has stopped moving. */
	for (i = 0, u = p->uidls; i < n; i++) {
		if (list[i].uidl == NULL)
			continue;
		p->msgs[i].uidl = u;
		p->sorted[p->nsorted++] = u;
		u += strlen(u) + 1;
	}
	p->complete = p->nsorted == n;
	if (p->nsorted > 0)
		qsort(p->sorted, p->nsorted, sizeof(*p->sorted), cmp_str);
	for (i = 0; i < n; i++)
		p->msgs[i].action = plan_one(p, &p->msgs[i]);
	plan_skip(p);
	return p;
}

void
plan_free(struct plan **pp)
{
	struct plan *p = *pp;

	if (p == NULL)
		return;
	if (!p->uidls_taken) {
		free(p->uidls); p->uidls = NULL;
		free(p->sorted); p->sorted = NULL;
	}
	free(p->msgs); p->msgs = NULL;
	free(p); *pp = NULL;
}

/* The listing is in ascending message-number order (checked by pop3/). */
struct plan_msg *
plan_msg(struct plan *p, uint32_t num)
{
	size_t lo = 0, hi = p->nmsgs;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (p->msgs[mid].num == num)
			return &p->msgs[mid];
		if (p->msgs[mid].num < num)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* next never rests on a PLAN_SKIP message (plan_new() starts so). */
struct plan_msg *
plan_next(struct plan *p)
{
	struct plan_msg *m;

	if (p->next == p->nmsgs)
		return NULL;
	m = &p->msgs[p->next++];
	plan_skip(p);
	return m;
}

bool
plan_exhausted(const struct plan *p)
{
	return p->next == p->nmsgs;
}

size_t
plan_reproven(const struct plan *p)
{
	return p->reproven;
}

size_t
plan_skipped(const struct plan *p)
{
	return p->skipped;
}

enum plan_verdict
plan_verified(const struct plan *p, struct plan_msg *m,
    const unsigned char head_sha256[32])
{
	ASSERT(m->action == PLAN_VERIFY && m->known != NULL);
	if (memcmp(head_sha256, m->known->head_sha256, 32) == 0)
		return p->p.delete_archived ? PLAN_DELETE : PLAN_KEEP;
	m->action = PLAN_FETCH;
	return PLAN_REFETCH;
}

bool
plan_delete_archived(const struct plan *p)
{
	return p->p.delete_archived;
}

enum plan_end
plan_end(bool implicit_delete, size_t retrieved, size_t archived)
{
	ASSERT(archived <= retrieved);
	if (implicit_delete && archived < retrieved)
		return PLAN_END_ABANDON;
	return PLAN_END_QUIT;
}

bool
plan_keep_fetching(bool implicit_delete, size_t lost)
{
	return !implicit_delete || lost == 0;
}

const char **
plan_take_present(struct plan *p, size_t *n_r, char **mem_r)
{
	*n_r = 0;
	*mem_r = NULL;
	if (!p->complete || p->uidls_taken)
		return NULL;
	/* Moved, not copied: a listing of long UIDLs is held once. */
	p->uidls_taken = true;
	*n_r = p->nsorted;
	*mem_r = p->uidls;
	return p->sorted;
}
