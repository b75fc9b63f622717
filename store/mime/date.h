/*
 * The Date field (RFC 5322 section 3.3 and its obsolete forms): day name
 * optional, two- and three-digit years, seconds optional, numeric zones,
 * the named zones UT, GMT and EST to PDT, military and unknown zones as
 * -0000, comments anywhere; also the asctime() form some old software
 * writes.
 */
#ifndef STORE_MIME_DATE_H
#define STORE_MIME_DATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Seconds since the epoch (UTC) of the date in p[0, n), or false. */
bool mime_date_parse(const char *p, size_t n, int64_t *t_r);

#endif
