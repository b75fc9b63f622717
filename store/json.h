/*
 * JSON, both ways.  Reading (json.c): a small, strict reader (RFC 8259)
 * for the files ingestd reads back, such as proof files: objects, arrays,
 * strings, integers, true, false, null; no fractions or exponents.
 * Bounded depth and size; every value is allocated in one arena freed by
 * json_free().  Writing (json_write.c): strings escaped so that any bytes,
 * even invalid UTF-8, give valid JSON, for search results and export
 * manifests.
 */
#ifndef STORE_JSON_H
#define STORE_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

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

/*
 * Writes s as a JSON string (with its quotes), or null when s is NULL.
 * '"', '\\' and control characters are escaped; a byte that is not part
 * of valid UTF-8 becomes U+FFFD.
 */
void json_str(FILE *f, const char *s);

/* Writes ,"key": and then json_str(f, s); first: no leading comma. */
void json_field(FILE *f, const char *key, const char *s, int first);

/*
 * Writes ,"key": and s as it is when s is a JSON number (digits with an
 * optional '-'), or null otherwise.
 */
void json_num(FILE *f, const char *key, const char *s);

#endif
