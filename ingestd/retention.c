/*
 * Retention decisions (see retention.h).  Calendar arithmetic after
 * Howard Hinnant's days_from_civil / civil_from_days, on the proleptic
 * Gregorian calendar.
 */
#include "ingestd/retention.h"

#include <stdio.h>
#include <string.h>

/* Largest N per unit: about 1000 years, so no sum can overflow. */
static const uint32_t unit_max[] = {
	[RETENTION_DAYS] = 366000,
	[RETENTION_WEEKS] = 52300,
	[RETENTION_MONTHS] = 12000,
	[RETENTION_YEARS] = 1000,
};

static const char unit_letter[] = {
	[RETENTION_DAYS] = 'd',
	[RETENTION_WEEKS] = 'w',
	[RETENTION_MONTHS] = 'm',
	[RETENTION_YEARS] = 'y',
};

int
retention_period_parse(const char *s, struct retention_period *p_r, char *err,
    size_t errlen)
{
	const char *p = s;
	uint64_t n = 0;
	size_t u;

	while (*p >= '0' && *p <= '9' && n <= 100000000)
		n = n * 10 + (uint64_t)(*p++ - '0');
	for (u = 0; u < sizeof(unit_letter); u++)
		if (p > s && *p == unit_letter[u] && p[1] == '\0')
			break;
	if (p == s || u == sizeof(unit_letter) || (*p >= '0' && *p <= '9')) {
		snprintf(err, errlen,
		    "period '%s': expected a number followed by d, w, m or y",
		    s);
		return -1;
	}
	if (n > unit_max[u]) {
		snprintf(err, errlen,
		    "period '%s': at most %u%c (about 1000 years)", s,
		    unit_max[u], unit_letter[u]);
		return -1;
	}
	p_r->n = (uint32_t)n;
	p_r->unit = (enum retention_unit)u;
	return 0;
}

void
retention_period_format(struct retention_period p, char *buf, size_t len)
{
	snprintf(buf, len, "%u%c", p.n, unit_letter[p.unit]);
}

static const char *const clock_names[] = {
	[RETENTION_CLOCK_ARCHIVE] = "archive",
	[RETENTION_CLOCK_DATE] = "date",
	[RETENTION_CLOCK_END_OF_YEAR] = "end-of-year",
};

int
retention_clock_parse(const char *s, enum retention_clock *c_r)
{
	size_t i;

	for (i = 0; i < sizeof(clock_names) / sizeof(clock_names[0]); i++)
		if (strcmp(s, clock_names[i]) == 0) {
			*c_r = (enum retention_clock)i;
			return 0;
		}
	return -1;
}

const char *
retention_clock_name(enum retention_clock c)
{
	return clock_names[c];
}

/* Days since 1970-01-01 of y-m-d (m 1..12). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void
civil_from_days(int64_t z, int64_t *y_r, unsigned *m_r, unsigned *d_r)
{
	int64_t era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d_r = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	*m_r = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	*y_r = yoe + era * 400 + (*m_r <= 2);
}

static bool
leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static unsigned
month_days(int64_t y, unsigned m)
{
	static const unsigned d[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
		30, 31 };

	return m == 2 && leap(y) ? 29 : d[m - 1];
}

/* Floor division of t by a day: the day number and the time in it. */
static void
split_day(int64_t t, int64_t *day_r, int64_t *tod_r)
{
	int64_t day = t / RETENTION_US_PER_DAY, tod = t % RETENTION_US_PER_DAY;

	if (tod < 0) {
		tod += RETENTION_US_PER_DAY;
		day--;
	}
	*day_r = day;
	*tod_r = tod;
}

int64_t
retention_add(int64_t t, struct retention_period p)
{
	int64_t day, tod, y, months;
	unsigned m, d;

	switch (p.unit) {
	case RETENTION_DAYS:
		return t + (int64_t)p.n * RETENTION_US_PER_DAY;
	case RETENTION_WEEKS:
		return t + (int64_t)p.n * 7 * RETENTION_US_PER_DAY;
	case RETENTION_MONTHS:
	case RETENTION_YEARS:
		break;
	}
	months = p.unit == RETENTION_YEARS ? (int64_t)p.n * 12 : p.n;
	split_day(t, &day, &tod);
	civil_from_days(day, &y, &m, &d);
	months += (int64_t)(m - 1);
	y += months / 12;
	m = (unsigned)(months % 12) + 1;
	if (d > month_days(y, m)) {
		/*
		 * The day does not exist there: the end of that month, 00:00
		 * on the 1st of the next (so later starts never end earlier).
		 */
		d = 1;
		tod = 0;
		if (++m == 13) {
			m = 1;
			y++;
		}
	}
	return days_from_civil(y, m, d) * RETENTION_US_PER_DAY + tod;
}

int64_t
retention_start(const struct retention_input *in, enum retention_clock c)
{
	int64_t day, tod, y, lo;
	unsigned m, d;

	switch (c) {
	case RETENTION_CLOCK_ARCHIVE:
		break;
	case RETENTION_CLOCK_DATE:
		if (!in->has_date)
			break;
		lo = in->archived_at -
		    RETENTION_DATE_CLAMP_DAYS * RETENTION_US_PER_DAY;
		if (in->date < lo)
			return lo;
		if (in->date > in->archived_at)
			break;
		return in->date;
	case RETENTION_CLOCK_END_OF_YEAR:
		split_day(in->archived_at, &day, &tod);
		civil_from_days(day, &y, &m, &d);
		return days_from_civil(y + 1, 1, 1) * RETENTION_US_PER_DAY;
	}
	return in->archived_at;
}

static bool
in_force(const struct retention_version *v, int64_t now)
{
	return !v->shortens || v->cooling_off_ends <= now;
}

void
retention_decide(const struct retention_input *in,
    struct retention_decision *d_r)
{
	const struct retention_version *v, *w, *cur;
	size_t i, j;
	int64_t due;

	memset(d_r, 0, sizeof(*d_r));
	if (in->held) {
		d_r->verdict = RETENTION_HELD;
		return;
	}
	for (i = 0; i < in->nversions; i++) {
		v = &in->versions[i];
		if (!in_force(v, in->now))
			continue;
		/* Only the newest version in force of each policy counts. */
		cur = v;
		for (j = 0; j < in->nversions; j++) {
			w = &in->versions[j];
			if (w->policy_id == v->policy_id &&
			    w->version > cur->version && in_force(w, in->now))
				cur = w;
		}
		if (cur != v || !v->matches)
			continue;
		due = retention_add(retention_start(in, v->clock), v->period);
		if (d_r->by == NULL || due > d_r->due_at) {
			d_r->by = v;
			d_r->due_at = due;
		}
	}
	if (d_r->by == NULL)
		d_r->verdict = RETENTION_NO_POLICY;
	else
		d_r->verdict = d_r->due_at <= in->now ? RETENTION_DUE :
							RETENTION_KEPT;
}

void
retention_time_format(int64_t t, char *buf, size_t len)
{
	int64_t day, tod, y;
	unsigned m, d;

	split_day(t, &day, &tod);
	civil_from_days(day, &y, &m, &d);
	if (tod % 1000000 == 0)
		snprintf(buf, len, "%04lld-%02u-%02uT%02lld:%02lld:%02lldZ",
		    (long long)y, m, d, (long long)(tod / 3600000000LL),
		    (long long)(tod / 60000000 % 60),
		    (long long)(tod / 1000000 % 60));
	else
		snprintf(buf, len,
		    "%04lld-%02u-%02uT%02lld:%02lld:%02lld.%06lldZ",
		    (long long)y, m, d, (long long)(tod / 3600000000LL),
		    (long long)(tod / 60000000 % 60),
		    (long long)(tod / 1000000 % 60),
		    (long long)(tod % 1000000));
}
