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
#include "store/known.h"

struct plan {
	struct plan_params p;
	struct plan_msg *msgs;	/* in listing order */
	size_t nmsgs;
	size_t next;		/* the next entry to act on, or nmsgs */
	size_t reproven;	/* matched, fetched again for want of TOP */
	char **owned;		/* UIDLs plan_uidl_clean() rewrote */
	size_t nowned;
	char **sorted;		/* the UIDLs listed, sorted */
	size_t nsorted;
	bool complete;		/* every message had a UIDL */
};

char *
plan_uidl_clean(const char *uidl)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;
	char *out, *o;

	for (p = (const unsigned char *)uidl; *p != '\0'; p++)
		if (*p < 0x21 || *p > 0x7e)
			break;
	if (*p == '\0')
		return (char *)uidl;
	o = out = xmalloc(strlen(uidl) * 3 + 1);
	for (p = (const unsigned char *)uidl; *p != '\0'; p++)
		if (*p < 0x21 || *p > 0x7e) {
			*o++ = '%';
			*o++ = hex[*p >> 4];
			*o++ = hex[*p & 0xf];
		} else
			*o++ = (char)*p;
	*o = '\0';
	return out;
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
	char **hit, **end = p->sorted + p->nsorted;

	hit = bsearch(&uidl, p->sorted, p->nsorted, sizeof(*p->sorted),
	    cmp_str);
	ASSERT(hit != NULL);
	return !((hit > p->sorted && strcmp(hit[-1], uidl) == 0) ||
	    (hit + 1 < end && strcmp(hit[1], uidl) == 0));
}

static enum plan_action
plan_one(struct plan *p, struct plan_msg *m)
{
	const struct known_entry *e;

	/* RFC 1939 allows one UIDL for two messages; such UIDLs prove
	 * nothing, so those messages are fetched and checked by content. */
	if (m->uidl == NULL || !uidl_unique(p, m->uidl))
		return PLAN_FETCH;
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

struct plan *
plan_new(const struct plan_params *params, const struct pop3_msg *list,
    size_t n)
{
	struct plan *p = xcalloc(1, sizeof(*p));
	size_t i;

	p->p = *params;
	p->msgs = xcalloc(n ? n : 1, sizeof(*p->msgs));
	p->nmsgs = n;
	p->sorted = xcalloc(n ? n : 1, sizeof(*p->sorted));
	for (i = 0; i < n; i++) {
		char *u = list[i].uidl ? plan_uidl_clean(list[i].uidl) : NULL;

		if (u != list[i].uidl) {
			p->owned = xreallocarray(p->owned, p->nowned + 1,
			    sizeof(*p->owned));
			p->owned[p->nowned++] = u;
		}
		p->msgs[i].num = list[i].num;
		p->msgs[i].list_size = list[i].size;
		p->msgs[i].uidl = u;
		if (u != NULL)
			p->sorted[p->nsorted++] = u;
	}
	p->complete = p->nsorted == n;
	qsort(p->sorted, p->nsorted, sizeof(*p->sorted), cmp_str);
	for (i = 0; i < n; i++)
		p->msgs[i].action = plan_one(p, &p->msgs[i]);
	return p;
}

void
plan_free(struct plan **pp)
{
	struct plan *p = *pp;

	if (p == NULL)
		return;
	while (p->nowned > 0)
		free(p->owned[--p->nowned]);
	free(p->owned); p->owned = NULL;
	free(p->sorted); p->sorted = NULL;
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

struct plan_msg *
plan_next(struct plan *p)
{
	if (p->next == p->nmsgs)
		return NULL;
	return &p->msgs[p->next++];
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

char **
plan_take_present(struct plan *p, size_t *n_r)
{
	char **present;
	size_t i;

	*n_r = 0;
	if (!p->complete)
		return NULL;
	present = xcalloc(p->nsorted ? p->nsorted : 1, sizeof(*present));
	for (i = 0; i < p->nsorted; i++)
		present[i] = xstrdup(p->sorted[i]);
	*n_r = p->nsorted;
	return present;
}
