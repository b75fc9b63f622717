/*
 * Two arrays, sorted on first lookup after an addition, searched by
 * bsearch: an account's facts are loaded once per poll and read a few
 * times per message.
 */
#include "store/facts.h"

#include <stdlib.h>
#include <string.h>

#include "ingestd/base/xmalloc.h"

struct seen_ent {
	char *uidl;
	int64_t t;
};

struct date_ent {
	unsigned char sha256[32];
	int64_t t;
};

struct facts {
	struct seen_ent *seen;
	size_t nseen, seencap;
	bool seen_sorted;
	struct date_ent *dates;
	size_t ndates, datecap;
	bool dates_sorted;
};

struct facts *
facts_new(void)
{
	return xcalloc(1, sizeof(struct facts));
}

void
facts_free(struct facts **fp)
{
	struct facts *f = *fp;
	size_t i;

	if (f == NULL)
		return;
	for (i = 0; i < f->nseen; i++)
		free(f->seen[i].uidl);
	free(f->seen); f->seen = NULL;
	free(f->dates); f->dates = NULL;
	free(f); *fp = NULL;
}

void
facts_add_seen(struct facts *f, const char *uidl, int64_t t)
{
	if (f->nseen == f->seencap) {
		f->seencap = f->seencap ? f->seencap * 2 : 64;
		f->seen = xreallocarray(f->seen, f->seencap, sizeof(*f->seen));
	}
	f->seen[f->nseen].uidl = xstrdup(uidl);
	f->seen[f->nseen++].t = t;
	f->seen_sorted = false;
}

void
facts_add_date(struct facts *f, const unsigned char sha256[32], int64_t t)
{
	if (f->ndates == f->datecap) {
		f->datecap = f->datecap ? f->datecap * 2 : 64;
		f->dates = xreallocarray(f->dates, f->datecap,
		    sizeof(*f->dates));
	}
	memcpy(f->dates[f->ndates].sha256, sha256, 32);
	f->dates[f->ndates++].t = t;
	f->dates_sorted = false;
}

static int
cmp_seen(const void *a, const void *b)
{
	const struct seen_ent *x = a, *y = b;
	int c = strcmp(x->uidl, y->uidl);

	if (c != 0)
		return c;
	return x->t < y->t ? -1 : x->t > y->t;
}

static int
cmp_date(const void *a, const void *b)
{
	const struct date_ent *x = a, *y = b;

	return memcmp(x->sha256, y->sha256, 32);
}

bool
facts_seen(struct facts *f, const char *uidl, int64_t *t_r)
{
	size_t lo = 0, hi;

	if (!f->seen_sorted) {
		/* qsort() may not be given NULL, even for nothing. */
		if (f->nseen > 0)
			qsort(f->seen, f->nseen, sizeof(*f->seen), cmp_seen);
		f->seen_sorted = true;
	}
	/* The first entry for uidl: the earliest time. */
	hi = f->nseen;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (strcmp(f->seen[mid].uidl, uidl) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == f->nseen || strcmp(f->seen[lo].uidl, uidl) != 0)
		return false;
	*t_r = f->seen[lo].t;
	return true;
}

bool
facts_date(struct facts *f, const unsigned char sha256[32], int64_t *t_r)
{
	struct date_ent key = { .t = 0 }, *hit;

	if (!f->dates_sorted) {
		if (f->ndates > 0)
			qsort(f->dates, f->ndates, sizeof(*f->dates),
			    cmp_date);
		f->dates_sorted = true;
	}
	memcpy(key.sha256, sha256, 32);
	hit = f->ndates == 0 ? NULL : bsearch(&key, f->dates, f->ndates,
	    sizeof(*f->dates), cmp_date);
	if (hit == NULL)
		return false;
	*t_r = hit->t;
	return true;
}

size_t
facts_nseen(const struct facts *f)
{
	return f->nseen;
}

size_t
facts_ndates(const struct facts *f)
{
	return f->ndates;
}
