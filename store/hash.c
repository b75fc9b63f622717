#include "store/hash.h"

#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>

#include "ingestd/base/log.h"

/*
 * The algorithms are fetched once per process: OpenSSL 3 would otherwise
 * look the implementation up in its provider store on every EVP_DigestInit,
 * which shows on the many small messages of a busy poll.  The fetched
 * objects are shared read-only by every thread and live until exit.
 */
static pthread_once_t md_once = PTHREAD_ONCE_INIT;
static EVP_MD *md_sha256;
static EVP_MD *md_md5;

static void
md_fetch(void)
{
	md_sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	md_md5 = EVP_MD_fetch(NULL, "MD5", NULL);
}

/*
 * SHA-256 is in every OpenSSL provider, FIPS included, so its absence means
 * a broken installation rather than a recoverable state.
 */
/*
 * OpenSSL reports failure of a digest on allocated contexts only for
 * allocation failure or misuse; neither is a session error.
 */
static void
evp_ok(int r, const char *what)
{
	if (r != 1)
		panic(__FILE__, __LINE__, what);
}

static const EVP_MD *
sha256_md(void)
{
	(void)pthread_once(&md_once, md_fetch);
	ASSERT(md_sha256 != NULL);
	return md_sha256;
}

void
hash_sha256_init(struct hash_sha256 *h)
{
	/* Fails only when OpenSSL cannot allocate, as xmalloc() would. */
	h->ctx = EVP_MD_CTX_new();
	ASSERT(h->ctx != NULL);
	hash_sha256_reset(h);
}

void
hash_sha256_reset(struct hash_sha256 *h)
{
	evp_ok(EVP_DigestInit_ex(h->ctx, sha256_md(), NULL),
	    "EVP_DigestInit_ex");
}

void
hash_sha256_update(struct hash_sha256 *h, const void *p, size_t n)
{
	if (n == 0)
		return;
	evp_ok(EVP_DigestUpdate(h->ctx, p, n), "EVP_DigestUpdate");
}

void
hash_sha256_final(struct hash_sha256 *h, unsigned char out[32])
{
	unsigned int len = 0;

	evp_ok(EVP_DigestFinal_ex(h->ctx, out, &len), "EVP_DigestFinal_ex");
	ASSERT(len == HASH_SHA256_LEN);
}

void
hash_sha256_snapshot(const struct hash_sha256 *h, unsigned char out[32])
{
	struct hash_sha256 tmp;

	tmp.ctx = EVP_MD_CTX_new();
	ASSERT(tmp.ctx != NULL);
	evp_ok(EVP_MD_CTX_copy_ex(tmp.ctx, h->ctx), "EVP_MD_CTX_copy_ex");
	hash_sha256_final(&tmp, out);
	hash_sha256_release(&tmp);
}

void
hash_sha256_release(struct hash_sha256 *h)
{
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
}

void
hash_sha256(const void *p, size_t n, unsigned char out[32])
{
	unsigned int len = 0;

	evp_ok(EVP_Digest(p, n, out, &len, sha256_md(), NULL), "EVP_Digest");
	ASSERT(len == HASH_SHA256_LEN);
}

bool
hash_md5_available(void)
{
	(void)pthread_once(&md_once, md_fetch);
	return md_md5 != NULL;
}

void
hash_md5(const void *p, size_t n, unsigned char out[16])
{
	unsigned int len = 0;

	if (hash_md5_available() &&
	    EVP_Digest(p, n, out, &len, md_md5, NULL) == 1 &&
	    len == HASH_MD5_LEN)
		return;
	/* A wrong digest makes the server refuse the login: a mailbox error. */
	log_warnx("MD5 is not available from OpenSSL; APOP cannot succeed");
	memset(out, 0, HASH_MD5_LEN);
}
