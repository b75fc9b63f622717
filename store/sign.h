/*
 * Ed25519 keys and signatures.  sign.c is the only user of OpenSSL's
 * EVP_PKEY and PEM code, so the rest of the tree sees raw 32-byte public
 * keys and 64-byte signatures (RFC 8032).
 */
#ifndef STORE_SIGN_H
#define STORE_SIGN_H

#include <stdbool.h>
#include <stddef.h>

#define SIGN_PUBLIC_LEN 32
#define SIGN_SEED_LEN	32
#define SIGN_SIG_LEN	64

struct sign_key;

/*
 * Makes a new key and writes it to path as a PKCS#8 PEM private key, mode
 * 0600, created with O_EXCL so that nothing existing is ever replaced (nor
 * a symbolic link followed).  Writes its public key into pub.  0, or -1
 * with err naming path and the reason.
 */
int sign_keygen(const char *path, unsigned char pub[SIGN_PUBLIC_LEN],
    char *err, size_t errlen);

/* Reads an Ed25519 private key (PEM) from path; NULL with err filled. */
struct sign_key *sign_key_load(const char *path, char *err, size_t errlen);
/* The key of a raw RFC 8032 seed (test vectors); NULL if OpenSSL fails. */
struct sign_key *sign_key_from_seed(const unsigned char seed[SIGN_SEED_LEN]);
void sign_key_free(struct sign_key **k);

void sign_key_public(const struct sign_key *k,
    unsigned char pub[SIGN_PUBLIC_LEN]);
/* Signs msg[0, n) into sig; 0 or -1. */
int sign_ed25519(const struct sign_key *k, const void *msg, size_t n,
    unsigned char sig[SIGN_SIG_LEN]);
/* Whether sig is pub's signature of msg[0, n). */
bool sign_verify(const unsigned char pub[SIGN_PUBLIC_LEN], const void *msg,
    size_t n, const unsigned char sig[SIGN_SIG_LEN]);

#endif
