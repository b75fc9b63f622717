/*
 * The quota-clearing decision (see delete_policy.h): no I/O, no clock.
 */
#include "ingestd/delete_policy.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "ingestd/base/xmalloc.h"
#include "ingestd/conf.h"

#define DAY_S 86400

/* A message's first-seen time, "now" when it has no record yet. */
static int64_t
seen_at(const struct delete_msg *m, int64_t now)
{
	return m->has_first_seen ? m->first_seen : now;
}

/* The rules that judge a message alone, in delete_reason order. */
static enum delete_reason
judge(const struct delete_policy *p, const struct delete_msg *m, int64_t now)
{
	if (!m->archived)
		return DELETE_KEEP;
	if (p->rules & DELETE_R_AFTER_ARCHIVE)
		return DELETE_AFTER_ARCHIVE;
	if ((p->rules & DELETE_R_AFTER_DAYS) &&
	    now - seen_at(m, now) >= (int64_t)p->after_days * DAY_S)
		return DELETE_AFTER_DAYS;
	if ((p->rules & DELETE_R_OLDER_THAN) && m->has_date &&
	    m->date < now - (int64_t)p->older_than_days * DAY_S)
		return DELETE_OLDER_THAN;
	if ((p->rules & DELETE_R_BIGGER_THAN) && m->size > p->bigger_than)
		return DELETE_BIGGER_THAN;
	return DELETE_KEEP;
}

/* Sorting context: qsort has none, so the order is over a copy of keys. */
struct key {
	int64_t seen;
	uint32_t num;
	size_t i;
};

static int
cmp_key(const void *a, const void *b)
{
	const struct key *x = a, *y = b;

	if (x->seen != y->seen)
		return x->seen < y->seen ? -1 : 1;
	if (x->num != y->num)
		return x->num < y->num ? -1 : 1;
	return 0;
}

void
delete_policy_decide(const struct delete_policy *p, struct delete_msg *msgs,
    size_t n, uint64_t mailbox_size, int64_t now, struct delete_totals *t_r)
{
	struct delete_totals t = { 0 };
	struct key *order;
	uint64_t chosen = 0, count = 0, bytes = 0;
	size_t i, k;

	order = xcalloc(n ? n : 1, sizeof(*order));
	for (i = 0; i < n; i++) {
		msgs[i].capped = false;
		msgs[i].reason = judge(p, &msgs[i], now);
		if (msgs[i].reason != DELETE_KEEP)
			chosen += msgs[i].size;
		order[i].seen = seen_at(&msgs[i], now);
		order[i].num = msgs[i].num;
		order[i].i = i;
	}
	/* Oldest first: keep_under takes them in this order, and so do the
	 * caps. */
	if (n > 0)
		qsort(order, n, sizeof(*order), cmp_key);
	if (p->rules & DELETE_R_KEEP_UNDER) {
		for (k = 0; k < n; k++) {
			struct delete_msg *m = &msgs[order[k].i];

			if (mailbox_size -
				(chosen < mailbox_size ? chosen :
							 mailbox_size) <
			    p->keep_under)
				break;
			if (!m->archived || m->reason != DELETE_KEEP)
				continue;
			m->reason = DELETE_KEEP_UNDER;
			chosen += m->size;
		}
	}
	for (k = 0; k < n; k++) {
		struct delete_msg *m = &msgs[order[k].i];

		if (m->reason == DELETE_KEEP)
			continue;
		if (((p->rules & DELETE_R_MAX_MESSAGES) &&
			count >= p->max_messages) ||
		    ((p->rules & DELETE_R_MAX_BYTES) &&
			m->size > p->max_bytes - bytes)) {
			m->capped = true;
			t.capped++;
			continue;
		}
		count++;
		bytes += m->size;
	}
	free(order);
	t.deleted = count;
	t.deleted_bytes = bytes;
	t.remaining = bytes < mailbox_size ? mailbox_size - bytes : 0;
	if (t_r != NULL)
		*t_r = t;
}

bool
delete_policy_deletes(const struct delete_msg *m)
{
	return m->reason != DELETE_KEEP && !m->capped;
}

const char *
delete_reason_name(enum delete_reason r)
{
	switch (r) {
	case DELETE_KEEP:
		return "keep";
	case DELETE_AFTER_ARCHIVE:
		return "after-archive";
	case DELETE_AFTER_DAYS:
		return "after_days";
	case DELETE_OLDER_THAN:
		return "older_than_days";
	case DELETE_BIGGER_THAN:
		return "bigger_than";
	case DELETE_KEEP_UNDER:
		return "keep_under";
	}
	return "?";
}

const char *
delete_policy_explain(const struct delete_policy *p, const struct delete_msg *m,
    int64_t now, char *buf, size_t len)
{
	const char *cap = m->capped ?
	    "; kept this poll by max_messages or max_bytes" :
	    "";

	switch (m->reason) {
	case DELETE_KEEP:
		snprintf(buf, len,
		    m->archived ? "kept: no rule deletes it" :
				  "kept: not proven archived in this poll");
		break;
	case DELETE_AFTER_ARCHIVE:
		snprintf(buf, len, "after-archive%s", cap);
		break;
	case DELETE_AFTER_DAYS:
		snprintf(buf, len,
		    "after_days = %" PRIu32 ": first seen %" PRId64
		    " days ago%s",
		    p->after_days, (now - seen_at(m, now)) / DAY_S, cap);
		break;
	case DELETE_OLDER_THAN:
		snprintf(buf, len,
		    "older_than_days = %" PRIu32 ": dated %" PRId64
		    " days ago%s",
		    p->older_than_days, (now - m->date) / DAY_S, cap);
		break;
	case DELETE_BIGGER_THAN:
		snprintf(buf, len,
		    "bigger_than = %" PRIu64 ": %" PRIu64 " bytes%s",
		    p->bigger_than, m->size, cap);
		break;
	case DELETE_KEEP_UNDER:
		snprintf(buf, len,
		    "keep_under = %" PRIu64 ": among the oldest,"
		    " first seen %" PRId64 " days ago%s",
		    p->keep_under, (now - seen_at(m, now)) / DAY_S, cap);
		break;
	}
	return buf;
}

void
delete_policy_from_conf(const struct conf_account *a,
    struct delete_policy *p_r)
{
	const struct conf_delete_policy *c = &a->policy;

	*p_r = (struct delete_policy){ 0 };
	switch (a->delete) {
	case CONF_DELETE_AFTER_ARCHIVE:
		p_r->rules = DELETE_R_AFTER_ARCHIVE;
		break;
	case CONF_DELETE_NEVER:
		break;
	case CONF_DELETE_POLICY:
		*p_r = (struct delete_policy){
			.rules = c->rules,
			.after_days = c->after_days,
			.older_than_days = c->older_than_days,
			.bigger_than = c->bigger_than,
			.keep_under = c->keep_under,
			.max_messages = c->max_messages,
			.max_bytes = c->max_bytes,
		};
		break;
	}
}

int64_t
delete_policy_keeps_days(const struct delete_policy *p)
{
	if (p->rules & DELETE_R_AFTER_ARCHIVE)
		return 0;
	if (p->rules & DELETE_R_AFTER_DAYS)
		return p->after_days;
	return -1;
}
