#include "store/sign.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "ingestd/base/fdio.h"
#include "ingestd/base/xmalloc.h"

/* A PEM private key is a few hundred bytes; refuse to read more. */
#define SIGN_PEM_MAX 16384

struct sign_key {
	EVP_PKEY *pkey;
};

int
sign_keygen(const char *path, unsigned char pub[SIGN_PUBLIC_LEN],
    char *err, size_t errlen)
{
	EVP_PKEY *pkey = NULL;
	BIO *bio = NULL;
	char *pem;
	long pemlen;
	size_t publen = SIGN_PUBLIC_LEN;
	int fd = -1, rc = -1;

	if ((pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")) == NULL ||
	    EVP_PKEY_get_raw_public_key(pkey, pub, &publen) != 1) {
		snprintf(err, errlen, "OpenSSL cannot make an Ed25519 key");
		goto out;
	}
	if ((bio = BIO_new(BIO_s_mem())) == NULL ||
	    PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL,
	    NULL) != 1 || (pemlen = BIO_get_mem_data(bio, &pem)) <= 0) {
		snprintf(err, errlen, "OpenSSL cannot write the key as PEM");
		goto out;
	}
	if ((fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600)) == -1) {
		snprintf(err, errlen, "%s: %s%s", path, strerror(errno),
		    errno == EEXIST ? "; a key is never overwritten: remove "
		    "it first if you mean to replace it" : "");
		goto out;
	}
	/* The umask may have taken bits; it can only have taken some. */
	if (fchmod(fd, 0600) == -1 ||
	    fd_write_all(fd, pem, (size_t)pemlen) == -1 ||
	    fsync(fd) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		(void)unlink(path);
		goto out;
	}
	if (close(fd) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		(void)unlink(path);
		goto out;
	}
	rc = 0;
out:
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	return rc;
}

struct sign_key *
sign_key_load(const char *path, char *err, size_t errlen)
{
	struct sign_key *k;
	EVP_PKEY *pkey = NULL;
	BIO *bio = NULL;
	char *buf = NULL;
	ssize_t r;
	size_t n = 0;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	buf = xmalloc(SIGN_PEM_MAX);
	while (n < SIGN_PEM_MAX &&
	    (r = read(fd, buf + n, SIGN_PEM_MAX - n)) != 0) {
		if (r == -1) {
			if (errno == EINTR)
				continue;
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		n += (size_t)r;
	}
	if ((bio = BIO_new_mem_buf(buf, (int)n)) == NULL ||
	    (pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL)) == NULL) {
		snprintf(err, errlen, "%s: not a PEM private key (make one "
		    "with ingestd ledger keygen)", path);
		goto fail;
	}
	if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
		snprintf(err, errlen, "%s: not an Ed25519 key", path);
		goto fail;
	}
	close(fd);
	BIO_free(bio);
	explicit_bzero(buf, SIGN_PEM_MAX);
	free(buf); buf = NULL;
	k = xcalloc(1, sizeof(*k));
	k->pkey = pkey;
	return k;
fail:
	close(fd);
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	explicit_bzero(buf, SIGN_PEM_MAX);
	free(buf); buf = NULL;
	return NULL;
}

struct sign_key *
sign_key_from_seed(const unsigned char seed[SIGN_SEED_LEN])
{
	struct sign_key *k;
	EVP_PKEY *pkey;

	if ((pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed,
	    SIGN_SEED_LEN)) == NULL)
		return NULL;
	k = xcalloc(1, sizeof(*k));
	k->pkey = pkey;
	return k;
}

void
sign_key_free(struct sign_key **kp)
{
	struct sign_key *k = *kp;

	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	free(k); *kp = NULL;
}

void
sign_key_public(const struct sign_key *k, unsigned char pub[SIGN_PUBLIC_LEN])
{
	size_t n = SIGN_PUBLIC_LEN;

	if (EVP_PKEY_get_raw_public_key(k->pkey, pub, &n) != 1 ||
	    n != SIGN_PUBLIC_LEN)
		memset(pub, 0, SIGN_PUBLIC_LEN);
}

int
sign_ed25519(const struct sign_key *k, const void *msg, size_t n,
    unsigned char sig[SIGN_SIG_LEN])
{
	EVP_MD_CTX *ctx;
	size_t siglen = SIGN_SIG_LEN;
	int rc = -1;

	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return -1;
	if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, k->pkey) == 1 &&
	    EVP_DigestSign(ctx, sig, &siglen, msg, n) == 1 &&
	    siglen == SIGN_SIG_LEN)
		rc = 0;
	EVP_MD_CTX_free(ctx);
	return rc;
}

bool
sign_verify(const unsigned char pub[SIGN_PUBLIC_LEN], const void *msg,
    size_t n, const unsigned char sig[SIGN_SIG_LEN])
{
	EVP_MD_CTX *ctx = NULL;
	EVP_PKEY *pkey;
	bool ok = false;

	if ((pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pub,
	    SIGN_PUBLIC_LEN)) == NULL)
		return false;
	if ((ctx = EVP_MD_CTX_new()) != NULL &&
	    EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pkey) == 1 &&
	    EVP_DigestVerify(ctx, sig, SIGN_SIG_LEN, msg, n) == 1)
		ok = true;
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pkey);
	return ok;
}
