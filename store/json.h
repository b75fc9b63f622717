/*
 * JSON output for search results and export manifests: strings escaped
 * so that any bytes, even invalid UTF-8, give valid JSON.
 */
#ifndef STORE_JSON_H
#define STORE_JSON_H

#include <stdio.h>

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
