/*
 * Reading the archive back, for the CLI: export for discovery, and verify
 * for proof of integrity.  Both decompress every blob as a stream (memory
 * stays a chunk and a zstd window, whatever the message size) and check it
 * against the SHA-256 and size recorded when it was archived.
 *
 * Blocking; run on the main thread with its own struct db.
 */
#ifndef STORE_READER_H
#define STORE_READER_H

#include <stdint.h>
#include <stddef.h>

struct db;

/*
 * Writes each archived message of account (NULL: every account) to
 * out_dir/<account>/<sha256 hex>.eml, byte for byte as the server delivered
 * it.  out_dir is created if missing (its parent must exist); an account
 * name is used as a directory name with anything but [A-Za-z0-9._@+-] (and
 * a leading '.') written as %XX.  Each file is written under a temporary
 * name, checked against its SHA-256 and size, flushed to disk and only then
 * renamed into place, so a file that exists is complete and verified; an
 * existing file of the same name is replaced.
 *
 * Stops at the first failure (database, file system, or a message that
 * does not match its hash: a damaged archive): returns -1 with err filled.
 * *count_r is the number of files written, also on failure.
 */
int reader_export(struct db *db, const char *out_dir, const char *account,
    uint64_t *count_r, char *err, size_t errlen);

/*
 * Reads every stored blob back (of account, or all blobs when NULL),
 * decompresses it and checks its SHA-256 and size.  Each damaged blob is
 * logged and counted in *bad_r and the run goes on; *ok_r counts the good
 * ones.  Returns 0 when every blob was checked (whatever the verdicts), -1
 * with err filled when the run could not finish (the database went away).
 */
int reader_verify(struct db *db, const char *account, uint64_t *ok_r,
    uint64_t *bad_r, char *err, size_t errlen);

#endif
