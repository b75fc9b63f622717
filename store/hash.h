/*
 * Message digests.  hash.c is the only user of OpenSSL's EVP digests (and
 * sign.c of its EVP keys), so the rest of the tree sees plain functions
 * and an opaque context.
 *
 * SHA-256 is incremental so a message can be hashed as it streams past; the
 * caller embeds struct hash_sha256 and drives it with init/update/final.
 * MD5 exists only for POP3 APOP (RFC 1939 section 7), which the protocol
 * fixes; nothing in the archive depends on it.
 */
#ifndef STORE_HASH_H
#define STORE_HASH_H

#include <stdbool.h>
#include <stddef.h>

#define HASH_SHA256_LEN 32
#define HASH_MD5_LEN	16

/* Embeddable; ctx is private to hash.c. */
struct hash_sha256 {
	void *ctx;
};

/*
 * Allocates the context and starts a digest.  h need not be initialised.
 * Pair with hash_sha256_release().  Never fails: an allocation failure
 * inside OpenSSL is treated like one in xmalloc().
 */
void hash_sha256_init(struct hash_sha256 *h);
/* Starts a new digest on an initialised context, reusing its memory. */
void hash_sha256_reset(struct hash_sha256 *h);
void hash_sha256_update(struct hash_sha256 *h, const void *p, size_t n);
/*
 * Writes the digest of everything since init/reset.  The context must be
 * reset before it is updated again.
 */
void hash_sha256_final(struct hash_sha256 *h, unsigned char out[32]);
/*
 * Writes the digest of the bytes so far without ending h, which carries on
 * as if this had not been called (the digest of a prefix, in one pass).
 */
void hash_sha256_snapshot(const struct hash_sha256 *h, unsigned char out[32]);
/* Frees the context; safe on a released or zeroed struct. */
void hash_sha256_release(struct hash_sha256 *h);

/* One-shot SHA-256 of p[0, n). */
void hash_sha256(const void *p, size_t n, unsigned char out[32]);

/*
 * One-shot MD5 of p[0, n), with the signature of the md5 callback in
 * struct pop3_client_params.  MD5 may be refused by the OpenSSL
 * configuration (FIPS); then this logs a warning and writes zeros, so APOP
 * fails at the server as a login failure of that mailbox and never takes
 * the daemon down.  Check hash_md5_available() before choosing APOP.
 */
void hash_md5(const void *p, size_t n, unsigned char out[16]);
/* Whether hash_md5() can produce real digests in this process. */
bool hash_md5_available(void);

#endif
