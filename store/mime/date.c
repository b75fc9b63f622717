#include "store/mime/date.h"

#include <string.h>
#include <strings.h>

#define TOKENS_MAX 16

enum tok_kind {
	T_NUM,
	T_ALPHA,
	T_SIGNED,
	T_COLON
};

struct tok {
	enum tok_kind kind;
	const char *p;
	size_t len;
	int64_t num; /* T_NUM, T_SIGNED (with its sign) */
};

static bool
is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static size_t
tokenize(const char *p, size_t n, struct tok *t)
{
	size_t i = 0, nt = 0, s;
	int depth;

	while (i < n && nt < TOKENS_MAX) {
		char c = p[i];

		if (c == '(') {
			/* A comment, nested. */
			depth = 0;
			for (; i < n; i++) {
				if (p[i] == '\\' && i + 1 < n)
					i++;
				else if (p[i] == '(')
					depth++;
				else if (p[i] == ')' && --depth == 0) {
					i++;
					break;
				}
			}
			continue;
		}
		s = i;
		if (is_digit(c) ||
		    ((c == '+' || c == '-') && i + 1 < n &&
			is_digit(p[i + 1]))) {
			int64_t v = 0;

			if (!is_digit(c))
				i++;
			while (i < n && is_digit(p[i])) {
				if (v < 100000000)
					v = v * 10 + (p[i] - '0');
				i++;
			}
			t[nt].kind = is_digit(c) ? T_NUM : T_SIGNED;
			t[nt].num = c == '-' ? -v : v;
		} else if (is_alpha(c)) {
			while (i < n && is_alpha(p[i]))
				i++;
			t[nt].kind = T_ALPHA;
		} else if (c == ':') {
			i++;
			t[nt].kind = T_COLON;
		} else {
			/* Commas, dots, dashes and white space separate. */
			i++;
			continue;
		}
		t[nt].p = p + s;
		t[nt].len = i - s;
		nt++;
	}
	return nt;
}

static int
month_of(const struct tok *t)
{
	static const char months[] = "janfebmaraprmayjunjulaugsepoctnovdec";
	int m;

	if (t->kind != T_ALPHA || t->len < 3)
		return -1;
	for (m = 0; m < 12; m++)
		if (strncasecmp(t->p, months + 3 * m, 3) == 0)
			return m + 1;
	return -1;
}

static bool
is_day_name(const struct tok *t)
{
	static const char days[] = "montuewedthufrisatsun";
	int d;

	if (t->kind != T_ALPHA || t->len < 3)
		return false;
	for (d = 0; d < 7; d++)
		if (strncasecmp(t->p, days + 3 * d, 3) == 0)
			return true;
	return false;
}

/* Digits of a number token, sign aside. */
static size_t
ndigits(const struct tok *t)
{
	return t->kind == T_SIGNED ? t->len - 1 : t->len;
}

static bool
year_of(const struct tok *t, int64_t *y)
{
	int64_t v;

	if (t->kind != T_NUM && !(t->kind == T_SIGNED && t->p[0] == '-'))
		return false;
	v = t->num < 0 ? -t->num : t->num;
	if (ndigits(t) <= 2)
		v += v < 50 ? 2000 : 1900;
	else if (ndigits(t) == 3)
		v += 1900;
	else if (ndigits(t) != 4)
		return false;
	*y = v;
	return v >= 1000;
}

/* hh:mm[:ss] at t[*k]. */
static bool
time_of(const struct tok *t, size_t nt, size_t *k, int *h, int *m, int *s)
{
	size_t i = *k;

	if (i + 2 >= nt || t[i].kind != T_NUM || t[i + 1].kind != T_COLON ||
	    t[i + 2].kind != T_NUM || t[i].len > 2 || t[i + 2].len > 2)
		return false;
	*h = (int)t[i].num;
	*m = (int)t[i + 2].num;
	*s = 0;
	i += 3;
	if (i + 1 < nt && t[i].kind == T_COLON && t[i + 1].kind == T_NUM &&
	    t[i + 1].len <= 2) {
		*s = (int)t[i + 1].num;
		i += 2;
	}
	*k = i;
	return *h <= 23 && *m <= 59 && *s <= 60;
}

/* The offset from UTC in seconds of the zone at t[*k], if any. */
static bool
zone_of(const struct tok *t, size_t nt, size_t *k, int64_t *off)
{
	static const struct {
		const char *name;
		int hours;
	} names[] = {
		{ "ut", 0 },
		{ "utc", 0 },
		{ "gmt", 0 },
		{ "z", 0 },
		{ "est", -5 },
		{ "edt", -4 },
		{ "cst", -6 },
		{ "cdt", -5 },
		{ "mst", -7 },
		{ "mdt", -6 },
		{ "pst", -8 },
		{ "pdt", -7 },
	};
	const struct tok *z;
	int64_t v, hh, mm;
	size_t i;

	*off = 0;
	if (*k >= nt)
		return true; /* none: taken as UTC */
	z = &t[*k];
	if (z->kind == T_SIGNED) {
		v = z->num < 0 ? -z->num : z->num;
		if (ndigits(z) == 4) {
			hh = v / 100;
			mm = v % 100;
		} else if (ndigits(z) <= 2 && *k + 2 < nt &&
		    t[*k + 1].kind == T_COLON && t[*k + 2].kind == T_NUM &&
		    t[*k + 2].len == 2) {
			hh = v;
			mm = t[*k + 2].num;
			*k += 2;
		} else if (ndigits(z) <= 2) {
			hh = v;
			mm = 0;
		} else
			return false;
		if (mm > 59)
			return false;
		*off = (hh * 3600 + mm * 60) * (z->num < 0 ? -1 : 1);
		(*k)++;
		return true;
	}
	if (z->kind == T_ALPHA) {
		for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (z->len == strlen(names[i].name) &&
			    strncasecmp(z->p, names[i].name, z->len) == 0)
				*off = (int64_t)names[i].hours * 3600;
		/* Military and unknown zones: -0000 (RFC 5322 4.3). */
		(*k)++;
		return true;
	}
	return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t
days_from_civil(int64_t y, int64_t m, int64_t d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int
days_in_month(int64_t y, int m)
{
	static const int dm[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30,
		31 };

	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return dm[m - 1];
}

bool
mime_date_parse(const char *p, size_t n, int64_t *t_r)
{
	struct tok t[TOKENS_MAX];
	size_t nt, k = 0;
	int64_t day, year, off;
	int mon, h, mi, s;

	nt = tokenize(p, n, t);
	if (k < nt && is_day_name(&t[k]))
		k++;
	if (k + 2 < nt && t[k].kind == T_NUM && month_of(&t[k + 1]) > 0) {
		/* RFC 5322: 4 Dec 2026 14:35:00 +0000 */
		day = t[k].num;
		mon = month_of(&t[k + 1]);
		if (!year_of(&t[k + 2], &year))
			return false;
		k += 3;
		if (!time_of(t, nt, &k, &h, &mi, &s))
			return false;
	} else if (k + 1 < nt && month_of(&t[k]) > 0 &&
	    t[k + 1].kind == T_NUM) {
		/* asctime: Dec  4 14:35:00 2026 */
		mon = month_of(&t[k]);
		day = t[k + 1].num;
		k += 2;
		if (!time_of(t, nt, &k, &h, &mi, &s) || k >= nt ||
		    !year_of(&t[k], &year))
			return false;
		k++;
	} else
		return false;
	if (day < 1 || day > days_in_month(year, mon))
		return false;
	if (!zone_of(t, nt, &k, &off))
		return false;
	*t_r = days_from_civil(year, mon, day) * 86400 + h * 3600 + mi * 60 +
	    s - off;
	return true;
}
