/*
 * Standard base64 (RFC 4648 section 4, with padding), as signed notes,
 * checkpoints and proof files spell hashes, keys and entries.  Pure.
 */
#ifndef STORE_B64_H
#define STORE_B64_H

#include <stddef.h>

/* Characters b64_encode() writes for n bytes, without the NUL. */
#define B64_LEN(n) (((n) + 2) / 3 * 4)

/* Writes the encoding of p[0, n) and a NUL into out (B64_LEN(n) + 1). */
void b64_encode(const void *p, size_t n, char *out);

/*
 * Decodes s[0, len) into out (at most cap bytes); *n_r bytes.  Strict:
 * padding required, no white space, no bits set past the end.  0 or -1.
 */
int b64_decode(const char *s, size_t len, unsigned char *out, size_t cap,
    size_t *n_r);

#endif
