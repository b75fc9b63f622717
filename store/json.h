/*
 * A small, strict JSON reader (RFC 8259) for the files ingestd reads back,
 * such as proof files: objects, arrays, strings, integers, true, false,
 * null; no fractions or exponents.  Bounded depth and size; every value is
 * allocated in one arena freed by json_free().
 */
#ifndef STORE_JSON_H
#define STORE_JSON_H

#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 16
#define JSON_MAX_SIZE (16 << 20)

enum json_type {
	JSON_NULL, JSON_BOOL, JSON_INT, JSON_STRING, JSON_ARRAY, JSON_OBJECT,
};

struct json {
	enum json_type type;
	int64_t i;		/* JSON_INT; JSON_BOOL 0 or 1 */
	char *s;		/* JSON_STRING: NUL-terminated (may hold NUL) */
	size_t slen;
	struct json **items;	/* JSON_ARRAY values, JSON_OBJECT values */
	char **keys;		/* JSON_OBJECT keys */
	size_t n;
};

/*
 * Parses p[0, n), which must hold one value and white space only.  NULL
 * with err naming the byte offset and what is wrong.
 */
struct json *json_parse(const char *p, size_t n, char *err, size_t errlen);
void json_free(struct json **j);

/* The member named key of object j, or NULL (also if j is no object). */
const struct json *json_get(const struct json *j, const char *key);

#endif
