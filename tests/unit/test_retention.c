/*
 * ingestd/retention.c: periods, calendar arithmetic, clocks and the
 * purge decision, table by table, and two properties over random inputs:
 * a held delivery is never due, and lengthening a policy never makes due
 * what was not.
 */
#include "ingestd/retention.h"

#include "tests/unit/test.h"

#define TESTS(X)                                                               \
	X(test_period_parse)                                                   \
	X(test_period_errors)                                                  \
	X(test_add_calendar)                                                   \
	X(test_clock_start)                                                    \
	X(test_decide_table)                                                   \
	X(test_versions_and_cooling_off)                                       \
	X(test_property_held_never_due)                                        \
	X(test_property_lengthening_monotone)
TESTS(TEST_DECLARE)

#define DAY RETENTION_US_PER_DAY

/* Microseconds of a UTC date and time, through the formatter's inverse. */
static int64_t
ts(int y, int m, int d, int hh, int mm, int ss)
{
	/* days_from_civil, independently of retention.c's, for y >= 1970 */
	static const int cum[] = { 0, 31, 59, 90, 120, 151, 181, 212, 243, 273,
		304, 334 };
	int64_t days = 0;
	int i;

	for (i = 1970; i < y; i++)
		days += (i % 4 == 0 && i % 100 != 0) || i % 400 == 0 ? 366 :
								       365;
	days += cum[m - 1] + d - 1;
	if (m > 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		days++;
	return (days * 86400 + hh * 3600 + mm * 60 + ss) * 1000000LL;
}

static struct retention_period
per(const char *s)
{
	struct retention_period p;
	char err[200];

	if (retention_period_parse(s, &p, err, sizeof(err)) == -1)
		TEST_FAIL_("%s", err);
	return p;
}

static void
test_period_parse(void)
{
	static const struct {
		const char *s;
		uint32_t n;
		enum retention_unit u;
	} t[] = {
		{ "0d", 0, RETENTION_DAYS },
		{ "30d", 30, RETENTION_DAYS },
		{ "12w", 12, RETENTION_WEEKS },
		{ "18m", 18, RETENTION_MONTHS },
		{ "7y", 7, RETENTION_YEARS },
		{ "1000y", 1000, RETENTION_YEARS },
		{ "007y", 7, RETENTION_YEARS },
	};
	struct retention_period p;
	char err[200], buf[32];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		ASSERT_EQ(retention_period_parse(t[i].s, &p, err, sizeof(err)),
		    0);
		ASSERT_EQ(p.n, t[i].n);
		ASSERT_EQ(p.unit, t[i].u);
	}
	retention_period_format(per("18m"), buf, sizeof(buf));
	ASSERT_STREQ(buf, "18m");
}

static void
test_period_errors(void)
{
	static const struct {
		const char *s, *err;
	} t[] = {
		{ "7x",
		    "period '7x': expected a number followed by d, w, m "
		    "or y" },
		{ "",
		    "period '': expected a number followed by d, w, m or "
		    "y" },
		{ "y",
		    "period 'y': expected a number followed by d, w, m or "
		    "y" },
		{ "7",
		    "period '7': expected a number followed by d, w, m or "
		    "y" },
		{ "7yy",
		    "period '7yy': expected a number followed by d, w, m "
		    "or y" },
		{ "-1d",
		    "period '-1d': expected a number followed by d, w, "
		    "m or y" },
		{ " 7y",
		    "period ' 7y': expected a number followed by d, w, "
		    "m or y" },
		{ "7Y",
		    "period '7Y': expected a number followed by d, w, m "
		    "or y" },
		{ "1001y",
		    "period '1001y': at most 1000y (about 1000 "
		    "years)" },
		{ "99999999999999999999d",
		    "period '99999999999999999999d': "
		    "expected a number followed by "
		    "d, w, m or y" },
	};
	struct retention_period p;
	char err[200];
	size_t i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		ASSERT_EQ(retention_period_parse(t[i].s, &p, err, sizeof(err)),
		    -1);
		ASSERT_STREQ(err, t[i].err);
	}
}

static void
test_add_calendar(void)
{
	static const struct {
		int y, m, d;
		const char *p;
		int wy, wm, wd;
	} t[] = {
		{ 2024, 1, 15, "0d", 2024, 1, 15 },
		{ 2024, 1, 15, "30d", 2024, 2, 14 },
		{ 2024, 2, 28, "1d", 2024, 2, 29 },
		{ 2023, 2, 28, "1d", 2023, 3, 1 },
		{ 2024, 1, 1, "2w", 2024, 1, 15 },
		{ 2024, 1, 15, "1m", 2024, 2, 15 },
		{ 2024, 12, 15, "1m", 2025, 1, 15 },
		{ 2024, 11, 30, "18m", 2026, 5, 30 },
		/* month ends: a day the target month lacks -> next 1st */
		{ 2024, 1, 31, "1m", 2024, 3, 1 },
		{ 2023, 1, 31, "1m", 2023, 3, 1 },
		{ 2023, 1, 29, "1m", 2023, 3, 1 },
		{ 2024, 1, 29, "1m", 2024, 2, 29 },
		{ 2024, 3, 31, "1m", 2024, 5, 1 },
		{ 2024, 8, 31, "1m", 2024, 10, 1 },
		{ 2024, 12, 31, "2m", 2025, 3, 3 - 2 },
		/* Feb 29 */
		{ 2024, 2, 29, "1y", 2025, 3, 1 },
		{ 2024, 2, 29, "4y", 2028, 2, 29 },
		{ 2024, 2, 29, "12m", 2025, 3, 1 },
		{ 2024, 2, 29, "7y", 2031, 3, 1 },
		{ 2000, 2, 29, "100y", 2100, 3, 1 },
		{ 2000, 2, 29, "400y", 2400, 2, 29 },
		{ 2020, 6, 15, "7y", 2027, 6, 15 },
		{ 1970, 1, 1, "1000y", 2970, 1, 1 },
	};
	size_t i;
	int64_t got, want;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		got = retention_add(ts(t[i].y, t[i].m, t[i].d, 13, 14, 15) + 7,
		    per(t[i].p));
		want = ts(t[i].wy, t[i].wm, t[i].wd, 13, 14, 15) + 7;
		/* A day the month lacks ends at that month's end. */
		if (t[i].wd == 1 && t[i].d != 1 &&
		    strchr("my", t[i].p[strlen(t[i].p) - 1]) != NULL)
			want = ts(t[i].wy, t[i].wm, t[i].wd, 0, 0, 0);
		if (got != want) {
			char g[40], w[40];

			retention_time_format(got, g, sizeof(g));
			retention_time_format(want, w, sizeof(w));
			TEST_FAIL_("%d-%d-%d + %s: %s, want %s", t[i].y, t[i].m,
			    t[i].d, t[i].p, g, w);
		}
	}
	/* 12m and 1y agree everywhere; results never go backwards. */
	for (i = 0; i < 3000; i++) {
		int64_t a = ts(2020, 1, 1, 0, 0, 0) + (int64_t)i * DAY / 2;

		ASSERT_EQ(retention_add(a, per("12m")),
		    retention_add(a, per("1y")));
		ASSERT_TRUE(retention_add(a, per("1m")) <=
		    retention_add(a + DAY / 2, per("1m")));
		ASSERT_TRUE(retention_add(a, per("1m")) >= a + 28 * DAY);
	}
	/* Before 1970 too (Date headers can say anything). */
	ASSERT_EQ(retention_add(-DAY, per("1y")), ts(1970, 12, 31, 0, 0, 0));
	{
		char b[40];

		retention_time_format(ts(2024, 2, 29, 1, 2, 3), b, sizeof(b));
		ASSERT_STREQ(b, "2024-02-29T01:02:03Z");
		retention_time_format(ts(2024, 2, 29, 1, 2, 3) + 5, b,
		    sizeof(b));
		ASSERT_STREQ(b, "2024-02-29T01:02:03.000005Z");
		retention_time_format(-1, b, sizeof(b));
		ASSERT_STREQ(b, "1969-12-31T23:59:59.999999Z");
	}
}

static void
test_clock_start(void)
{
	struct retention_input in = { .archived_at = ts(2024, 6, 10, 8, 0, 0) };
	enum retention_clock c;

	ASSERT_EQ(retention_clock_parse("archive", &c), 0);
	ASSERT_EQ(c, RETENTION_CLOCK_ARCHIVE);
	ASSERT_EQ(retention_clock_parse("end-of-year", &c), 0);
	ASSERT_EQ(c, RETENTION_CLOCK_END_OF_YEAR);
	ASSERT_EQ(retention_clock_parse("date", &c), 0);
	ASSERT_EQ(c, RETENTION_CLOCK_DATE);
	ASSERT_EQ(retention_clock_parse("Date", &c), -1);
	ASSERT_STREQ(retention_clock_name(RETENTION_CLOCK_END_OF_YEAR),
	    "end-of-year");

	ASSERT_EQ(retention_start(&in, RETENTION_CLOCK_ARCHIVE),
	    in.archived_at);
	/* No Date header: the archive time. */
	ASSERT_EQ(retention_start(&in, RETENTION_CLOCK_DATE), in.archived_at);
	in.has_date = true;
	in.date = ts(2024, 6, 1, 0, 0, 0);
	ASSERT_EQ(retention_start(&in, RETENTION_CLOCK_DATE), in.date);
	/* Date: 1970 -> clamped to 30 days before archiving. */
	in.date = 0;
	ASSERT_EQ(retention_start(&in, RETENTION_CLOCK_DATE),
	    in.archived_at - 30 * DAY);
	in.date = in.archived_at - 30 * DAY;
	ASSERT_EQ(retention_start(&in, RETENTION_CLOCK_DATE), in.date);
	/* Date: 2099 -> the archive time. */
	in.date = ts(2099, 1, 1, 0, 0, 0);
	ASSERT_EQ(retention_start(&in, RETENTION_CLOCK_DATE), in.archived_at);
	/* End of the year of archiving, whatever the Date says. */
	ASSERT_EQ(retention_start(&in, RETENTION_CLOCK_END_OF_YEAR),
	    ts(2025, 1, 1, 0, 0, 0));
	in.archived_at = ts(2024, 12, 31, 23, 59, 59);
	ASSERT_EQ(retention_start(&in, RETENTION_CLOCK_END_OF_YEAR),
	    ts(2025, 1, 1, 0, 0, 0));
	in.archived_at = ts(2025, 1, 1, 0, 0, 0);
	ASSERT_EQ(retention_start(&in, RETENTION_CLOCK_END_OF_YEAR),
	    ts(2026, 1, 1, 0, 0, 0));
}

static struct retention_version
ver(int64_t policy, int32_t version, const char *period,
    enum retention_clock clock, bool matches)
{
	struct retention_version v = { .policy_id = policy,
		.version = version,
		.period = per(period),
		.clock = clock,
		.matches = matches };

	return v;
}

static void
test_decide_table(void)
{
	int64_t arch = ts(2020, 3, 15, 12, 0, 0);
	struct retention_version v[4];
	struct retention_input in = { .archived_at = arch, .versions = v };
	struct retention_decision d;

	/* No policy at all: kept. */
	in.now = ts(2099, 1, 1, 0, 0, 0);
	retention_decide(&in, &d);
	ASSERT_EQ(d.verdict, RETENTION_NO_POLICY);
	/* A policy that does not match: kept. */
	v[0] = ver(1, 1, "1d", RETENTION_CLOCK_ARCHIVE, false);
	in.nversions = 1;
	retention_decide(&in, &d);
	ASSERT_EQ(d.verdict, RETENTION_NO_POLICY);
	/* Matching: due exactly at the end of the period, not a µs before. */
	v[0].matches = true;
	v[0].period = per("7y");
	in.now = ts(2027, 3, 15, 12, 0, 0) - 1;
	retention_decide(&in, &d);
	ASSERT_EQ(d.verdict, RETENTION_KEPT);
	ASSERT_EQ(d.due_at, ts(2027, 3, 15, 12, 0, 0));
	in.now++;
	retention_decide(&in, &d);
	ASSERT_EQ(d.verdict, RETENTION_DUE);
	ASSERT_TRUE(d.by == &v[0]);
	/* 0d: due at once. */
	v[0].period = per("0d");
	in.now = arch;
	retention_decide(&in, &d);
	ASSERT_EQ(d.verdict, RETENTION_DUE);
	/* Held: never due, whatever the policy. */
	in.held = true;
	retention_decide(&in, &d);
	ASSERT_EQ(d.verdict, RETENTION_HELD);
	in.held = false;
	/* The longest of several wins, across clocks. */
	v[0] = ver(1, 1, "7y", RETENTION_CLOCK_ARCHIVE, true);
	v[1] = ver(2, 1, "6y", RETENTION_CLOCK_END_OF_YEAR, true);
	v[2] = ver(3, 1, "10y", RETENTION_CLOCK_ARCHIVE, false);
	in.nversions = 3;
	in.now = ts(2027, 2, 1, 0, 0, 0); /* past v1's 2027-01-01 */
	retention_decide(&in, &d);
	ASSERT_EQ(d.verdict, RETENTION_KEPT);
	ASSERT_TRUE(d.by == &v[0]);
	ASSERT_EQ(d.due_at, ts(2027, 3, 15, 12, 0, 0));
	in.now = ts(2027, 3, 15, 12, 0, 0);
	retention_decide(&in, &d);
	ASSERT_EQ(d.verdict, RETENTION_DUE);
	v[1].period = per("7y"); /* end of 2020 + 7y = 2028-01-01 */
	retention_decide(&in, &d);
	ASSERT_EQ(d.verdict, RETENTION_KEPT);
	ASSERT_TRUE(d.by == &v[1]);
	ASSERT_EQ(d.due_at, ts(2028, 1, 1, 0, 0, 0));
	/* Date clock with a forged Date: 1970: only 30 days earlier. */
	v[0] = ver(1, 1, "1y", RETENTION_CLOCK_DATE, true);
	in.nversions = 1;
	in.has_date = true;
	in.date = 0;
	in.now = ts(2021, 2, 12, 0, 0, 0);
	retention_decide(&in, &d);
	ASSERT_EQ(d.verdict, RETENTION_KEPT);
	ASSERT_EQ(d.due_at, retention_add(arch - 30 * DAY, per("1y")));
	/* A tie goes to the first. */
	v[0] = ver(1, 1, "12m", RETENTION_CLOCK_ARCHIVE, true);
	v[1] = ver(2, 1, "1y", RETENTION_CLOCK_ARCHIVE, true);
	in.nversions = 2;
	retention_decide(&in, &d);
	ASSERT_TRUE(d.by == &v[0]);
}

static void
test_versions_and_cooling_off(void)
{
	int64_t arch = ts(2020, 1, 1, 0, 0, 0);
	struct retention_version v[3];
	struct retention_input in = { .archived_at = arch, .versions = v };
	struct retention_decision d;

	/* v1 7y; v2 1y, a shortening cooling off until 2022-02-01. */
	v[0] = ver(1, 1, "7y", RETENTION_CLOCK_ARCHIVE, true);
	v[1] = ver(1, 2, "1y", RETENTION_CLOCK_ARCHIVE, true);
	v[1].shortens = true;
	v[1].cooling_off_ends = ts(2022, 2, 1, 0, 0, 0);
	in.nversions = 2;
	in.now = ts(2022, 1, 31, 23, 59, 59);
	retention_decide(&in, &d);
	ASSERT_EQ(d.verdict, RETENTION_KEPT);
	ASSERT_TRUE(d.by == &v[0]);
	in.now = ts(2022, 2, 1, 0, 0, 0);
	retention_decide(&in, &d);
	ASSERT_EQ(d.verdict, RETENTION_DUE);
	ASSERT_TRUE(d.by == &v[1]);
	/* A later version that lengthens applies at once, and hides v1. */
	v[2] = ver(1, 3, "10y", RETENTION_CLOCK_ARCHIVE, true);
	in.nversions = 3;
	retention_decide(&in, &d);
	ASSERT_EQ(d.verdict, RETENTION_KEPT);
	ASSERT_TRUE(d.by == &v[2]);
	/* A newer version whose scope no longer matches: its old scope no
	 * longer counts once in force (no policy left). */
	v[2] = ver(1, 3, "10y", RETENTION_CLOCK_ARCHIVE, false);
	retention_decide(&in, &d);
	ASSERT_EQ(d.verdict, RETENTION_NO_POLICY);
	/* ...but while it cools off, v1/v2 decide. */
	v[2].shortens = true;
	v[2].cooling_off_ends = ts(2030, 1, 1, 0, 0, 0);
	retention_decide(&in, &d);
	ASSERT_EQ(d.verdict, RETENTION_DUE);
	ASSERT_TRUE(d.by == &v[1]);
	/* The first version of a policy is never a shortening: applies. */
	v[0] = ver(9, 1, "0d", RETENTION_CLOCK_ARCHIVE, true);
	in.nversions = 1;
	in.now = arch;
	retention_decide(&in, &d);
	ASSERT_EQ(d.verdict, RETENTION_DUE);
}

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t
rnd(uint64_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng % n;
}

static void
random_input(struct retention_input *in, struct retention_version *v,
    size_t max)
{
	static const char *const periods[] = { "0d", "1d", "30d", "12w", "1m",
		"18m", "1y", "7y", "10y", "365d" };
	size_t i;

	in->archived_at = ts(2000, 1, 1, 0, 0, 0) +
	    (int64_t)rnd(30 * 366) * DAY + (int64_t)rnd(DAY);
	in->has_date = rnd(2);
	in->date = in->archived_at - (int64_t)rnd(400) * DAY +
	    (int64_t)rnd(100) * DAY;
	in->nversions = rnd(max + 1);
	for (i = 0; i < in->nversions; i++) {
		v[i] = ver((int64_t)rnd(3), (int32_t)rnd(4),
		    periods[rnd(sizeof(periods) / sizeof(periods[0]))],
		    (enum retention_clock)rnd(3), rnd(3) != 0);
		v[i].shortens = rnd(3) == 0;
		v[i].cooling_off_ends = in->archived_at +
		    (int64_t)rnd(20 * 366) * DAY;
	}
	in->versions = v;
	in->held = false;
	in->now = in->archived_at + (int64_t)rnd(20 * 366) * DAY;
}

static void
test_property_held_never_due(void)
{
	struct retention_version v[8];
	struct retention_input in;
	struct retention_decision d;
	int i;

	for (i = 0; i < 200000; i++) {
		random_input(&in, v, 8);
		in.held = true;
		retention_decide(&in, &d);
		ASSERT_EQ(d.verdict, RETENTION_HELD);
		ASSERT_TRUE(d.verdict != RETENTION_DUE);
	}
}

static void
test_property_lengthening_monotone(void)
{
	struct retention_version v[8], w[8];
	struct retention_input in, longer;
	struct retention_decision d, e;
	size_t k;
	int i, due = 0;

	for (i = 0; i < 200000; i++) {
		random_input(&in, v, 8);
		retention_decide(&in, &d);
		due += d.verdict == RETENTION_DUE;
		if (in.nversions == 0)
			continue;
		memcpy(w, v, sizeof(v));
		longer = in;
		longer.versions = w;
		k = rnd(in.nversions);
		/* Lengthen one version by days, weeks, months or years. */
		if (w[k].period.unit == RETENTION_DAYS ||
		    w[k].period.unit == RETENTION_WEEKS)
			w[k].period.n += (uint32_t)rnd(400);
		else
			w[k].period.n += (uint32_t)rnd(30);
		retention_decide(&longer, &e);
		if (d.verdict != RETENTION_DUE)
			ASSERT_TRUE(e.verdict != RETENTION_DUE);
		if (e.verdict == RETENTION_DUE || e.verdict == RETENTION_KEPT)
			ASSERT_TRUE(d.verdict == RETENTION_NO_POLICY ||
			    e.due_at >= d.due_at);
		/* Adding a hold never makes anything due either. */
		longer.held = true;
		retention_decide(&longer, &e);
		ASSERT_TRUE(e.verdict != RETENTION_DUE);
	}
	/* The inputs did exercise both outcomes. */
	ASSERT_TRUE(due > 1000 && due < 199000);
}

TEST_MAIN(TESTS)
