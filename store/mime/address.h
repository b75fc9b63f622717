/*
 * RFC 5322 address lists, obsolete forms included: display names (quoted,
 * encoded words, or a trailing comment), angle addresses with or without
 * a route, groups ("undisclosed-recipients:;", "g: a@x, b@y;"), and
 * addresses without a domain.
 */
#ifndef STORE_MIME_ADDRESS_H
#define STORE_MIME_ADDRESS_H

#include <stddef.h>
#include <stdint.h>

/*
 * Called for each address: addr is lower-cased UTF-8, never empty; name
 * the decoded display name or NULL.  Both are the callee's to copy.
 */
typedef void mime_address_fn(void *ctx, const char *addr, const char *name);

/*
 * Reads the address list p[0, n) (a field value, folded or not); returns
 * MIME_F_BAD_ADDRESS if some of it could not be read (what could was
 * passed on) and the flags its encoded words earned.
 */
uint32_t
mime_address_list(const char *p, size_t n, mime_address_fn *fn, void *ctx);

#endif
