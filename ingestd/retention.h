/*
 * Retention decisions, pure: no I/O, no clock, no allocation.  Given one
 * delivery (its archive time and Date header), the versions of every
 * policy with whether each one's scope matches it, whether a hold covers
 * it, and the moment of decision, say whether it is due for purging and
 * why.  The database gathers the inputs; this decides.
 *
 * Times are microseconds since 1970-01-01 UTC.  Periods are counted on
 * the UTC calendar:
 *
 *   Nd, Nw    N days (N * 7 days), of 86400 s each (UTC has no DST).
 *   Nm, Ny    N calendar months (Ny = 12N months): the same day of the
 *             month and time of day, N months on.  When that month is too
 *             short for the day (Jan 31 + 1m, Feb 29 + 1y), the period
 *             ends at the end of that month (00:00 on the 1st of the
 *             next): never earlier than any reading of "N months", since
 *             keeping a message a day longer is harmless and purging it a
 *             day early is not, and a later start never ends earlier.
 *   0d        due at once.
 *
 * Clocks (where a period starts):
 *
 *   archive      the archive time; what a sender cannot influence.
 *   date         the Date header, clamped into [archive time -
 *                RETENTION_DATE_CLAMP_DAYS, archive time]: a forged
 *                "Date: 1970" shortens retention by at most that many
 *                days, and a "Date: 2099" never lengthens it past the
 *                archive clock.  No Date header: the archive time.
 *   end-of-year  00:00 UTC on January 1 after the archive time's year,
 *                i.e. the end of the calendar year of archiving (§147 AO,
 *                §257 HGB).
 *
 * The rules:
 *   - A held delivery is never due.
 *   - A delivery no policy matches is kept.
 *   - Of each policy, the version in force is its newest version that is
 *     either not a shortening or whose cooling-off ended at or before
 *     now; older versions go on applying while a shortening cools off.
 *   - Of the policies in force whose scope matches, the one that keeps
 *     the delivery longest (the latest due time) decides; a tie goes to
 *     the first in the input.
 *   - Due when that due time is at or before now.
 */
#ifndef INGESTD_RETENTION_H
#define INGESTD_RETENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RETENTION_DATE_CLAMP_DAYS 30
#define RETENTION_US_PER_DAY (86400LL * 1000000LL)

enum retention_unit {
	RETENTION_DAYS,
	RETENTION_WEEKS,
	RETENTION_MONTHS,
	RETENTION_YEARS,
};

struct retention_period {
	uint32_t n;
	enum retention_unit unit;
};

enum retention_clock {
	RETENTION_CLOCK_ARCHIVE,
	RETENTION_CLOCK_DATE,
	RETENTION_CLOCK_END_OF_YEAR,
};

/* One version of one policy, as the database holds it. */
struct retention_version {
	int64_t policy_id; /* versions of one policy share it */
	int32_t version;   /* 1, 2, ... within the policy */
	struct retention_period period;
	enum retention_clock clock;
	bool shortens;		  /* recorded when the version was added */
	int64_t cooling_off_ends; /* when a shortening starts to apply */
	bool matches;		  /* its scope matches this delivery */
};

struct retention_input {
	int64_t archived_at;
	bool has_date;
	int64_t date; /* the Date header, when has_date */
	const struct retention_version *versions;
	size_t nversions;
	bool held; /* an active hold covers the delivery */
	int64_t now;
};

enum retention_verdict {
	RETENTION_HELD,	     /* kept: a hold covers it */
	RETENTION_NO_POLICY, /* kept: no policy in force matches it */
	RETENTION_KEPT,	     /* kept until due_at */
	RETENTION_DUE,	     /* due since due_at */
};

struct retention_decision {
	enum retention_verdict verdict;
	const struct retention_version *by; /* KEPT, DUE: the deciding one */
	int64_t due_at;			    /* KEPT, DUE */
};

/*
 * Parses a period "30d", "12w", "18m", "7y" (digits, then one unit
 * letter; "0d" allowed).  On error returns -1 with a message naming s in
 * err.
 */
int retention_period_parse(const char *s, struct retention_period *p_r,
    char *err, size_t errlen);

/* Writes p as it parses ("7y") into buf. */
void retention_period_format(struct retention_period p, char *buf, size_t len);

/* Parses "archive", "date", "end-of-year"; -1 for anything else. */
int retention_clock_parse(const char *s, enum retention_clock *c_r);
const char *retention_clock_name(enum retention_clock c);

/* t plus p on the UTC calendar (see above). */
int64_t retention_add(int64_t t, struct retention_period p);

/* Where v's period starts for a delivery (see the clocks above). */
int64_t
retention_start(const struct retention_input *in, enum retention_clock c);

/* Decides in (see the rules above); d_r->by points into in->versions. */
void retention_decide(const struct retention_input *in,
    struct retention_decision *d_r);

/* t as "YYYY-MM-DDTHH:MM:SSZ" (microseconds dropped when zero, else
 * ".uuuuuuZ"); buf needs 28 bytes. */
void retention_time_format(int64_t t, char *buf, size_t len);

#endif
