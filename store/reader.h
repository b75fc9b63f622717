/*
 * Reading the archive back, for the CLI: export for discovery, and verify
 * for proof of integrity.  Both decompress every blob as a stream (memory
 * stays a chunk and a zstd window, whatever the message size) and check it
 * against the SHA-256 and size recorded when it was archived.
 *
 * A damaged blob (a chunk missing, chunks that do not add up to the
 * recorded stored size, a zstd error, a SHA-256 or size that differs from
 * the record) is reported, counted, and the run goes on with the next one:
 * one bad blob must not hide the state of, or withhold, all the others.
 * Only what ends the run for every blob (the database gone, the export
 * directory failing) stops it.
 *
 * Blocking; run on the main thread with its own struct db.
 */
#ifndef STORE_READER_H
#define STORE_READER_H

#include <stdint.h>
#include <stddef.h>

struct db;

/*
 * Opens the directory an export writes into, once, so that nothing under
 * it is ever reached again by a path that could be redirected.  path is
 * created with mode 0700 if missing (its parent must exist).  Whether
 * created or found, it is refused, with err naming path and the reason,
 * unless it is
 *   - a directory, and not a symbolic link to one (a trailing '/' does
 *     not make a link acceptable);
 *   - owned by the effective user running the export;
 *   - writable by no one else: no group or other write bit, sticky or
 *     not (a POSIX ACL that grants writing shows in the group bits).
 * Another user who can write in it, or who owns it, could plant names
 * there before the export creates them or swap what it wrote.
 *
 * Returns an O_DIRECTORY descriptor the caller closes, or -1.
 */
int reader_outdir_open(const char *path, char *err, size_t errlen);

/*
 * Writes each archived message of account (NULL: every account) to
 * <dir>/<account>/<sha256 hex>.eml, byte for byte as the server delivered
 * it.  dir_fd is from reader_outdir_open(); dir_name is its path, for
 * messages only.  An account name is used as a directory name with
 * anything but [A-Za-z0-9_@+-] and non-leading '.' written as %XX.
 *
 * Everything is created relative to dir_fd, never following a symbolic
 * link and never replacing anything: an account directory that already
 * exists (an earlier export into the same dir, or anything planted there)
 * stops the export with an error naming it.  Each file is written under
 * the temporary name .<sha256 hex>.eml.tmp, checked against its SHA-256
 * and size, flushed to disk and only then given its final name, so a
 * <sha256 hex>.eml that exists is complete and verified, even after a
 * crash.
 *
 * A damaged blob is logged with its account and SHA-256 and what is
 * wrong, counted in *bad_r, not written, and the export goes on.  Returns
 * 0 when every message was tried, -1 with err filled when the export
 * stopped (database, file system).  *count_r is the number of files
 * written, also on failure.
 */
int reader_export(struct db *db, int dir_fd, const char *dir_name,
    const char *account, uint64_t *count_r, uint64_t *bad_r, char *err,
    size_t errlen);

/*
 * Reads every stored blob back (of account, or all blobs when NULL),
 * decompresses it and checks its SHA-256 and size.  Each damaged blob is
 * logged with what is wrong, and with the accounts that hold it (for all
 * blobs, in a pass over the deliveries at the end), counted in *bad_r and
 * the run goes on; *ok_r counts the good ones.  Returns 0 when every blob
 * was checked (whatever the verdicts), -1 with err filled when the run
 * could not finish (the database went away).
 */
int reader_verify(struct db *db, const char *account, uint64_t *ok_r,
    uint64_t *bad_r, char *err, size_t errlen);

struct query_sql;

/* What reader_export_query() did. */
struct reader_export_stats {
	uint64_t deliveries;	/* matched, one manifest line each */
	uint64_t messages;	/* distinct blobs among them */
	uint64_t written;	/* of those, written and verified */
	uint64_t bad;		/* damaged, reported, not written */
	/* Lowercase hex SHA-256 of manifest.jsonl and of SHA256SUMS (which
	 * covers every file), "" unless the export completed. */
	char manifest_sha256[65];
	char sums_sha256[65];
};

/*
 * Exports the deliveries a search matches (sql: query_compile() of
 * query_text in QUERY_SQL_ROWS mode) into the directory dir_fd (from
 * reader_outdir_open()), creating, never replacing and never through a
 * link:
 *   messages/<sha256>.eml  each distinct blob once, byte-exact, re-hashed
 *                          as it is written (as reader_export() does);
 *   manifest.jsonl         one JSON object per delivery (account, uidl,
 *                          sha256, size, archived_at, date, from, to, cc,
 *                          subject, message_id, attachments);
 *   query.json             the query, when it ran (UTC), the number of
 *                          deliveries, messages, exported and damaged;
 *   SHA256SUMS             of every file above that was written, paths
 *                          relative to the directory, as sha256sum(1)
 *                          writes them, so `sha256sum -c` checks it.
 * A damaged blob is logged, counted in st->bad, left out, and the export
 * goes on.  Returns 0 when everything was tried, -1 with err filled when
 * the export stopped (database, file system, a name in the way).
 */
int reader_export_query(struct db *db, int dir_fd, const char *dir_name,
    const char *query_text, const struct query_sql *sql,
    struct reader_export_stats *st, char *err, size_t errlen);

/*
 * Called after each message export or verify reads (whatever its
 * verdict) with the messages and bytes done so far and, when known, the
 * totals (0 otherwise): for a progress line.  cb NULL: none.  Process-wide,
 * for the command line.
 */
typedef void reader_progress_cb(void *arg, uint64_t done, uint64_t bytes,
    uint64_t total, uint64_t total_bytes);
void reader_set_progress(reader_progress_cb *cb, void *arg);

/*
 * One blob at a time, for whoever else reads the archive back (reindex):
 * reader_stream() decompresses blob m and hands its bytes to cb as they
 * come, then checks its SHA-256 and size as export does.  Returns 0 if
 * the blob is sound (cb saw exactly its bytes); -1 with why filled if it
 * is damaged or cb returned -1 (what cb saw is then not the message); -2
 * if the database went away.  Dictionaries are loaded once per reader.
 */
struct reader;
struct db_message;
struct reader *reader_new(struct db *db);
int reader_stream(struct reader *r, const struct db_message *m,
    int (*cb)(void *arg, const void *p, size_t n), void *arg, char *why,
    size_t whylen);
void reader_free(struct reader **r);

/*
 * Like reader_verify() of every blob, but tells cb the verdict of each
 * damaged blob (its SHA-256 and what is wrong) instead of logging it, for
 * callers that report damage their own way (ledger verify).
 */
int reader_verify_each(struct db *db,
    void (*cb)(void *arg, const char *sha256_hex, const char *why),
    void *arg, uint64_t *ok_r, uint64_t *bad_r, char *err, size_t errlen);

#endif
