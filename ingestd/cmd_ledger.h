/*
 * The ledger's commands and the checkpoint timer of run:
 *
 *   ingestd [-c FILE] ledger keygen --out FILE [--name NAME]
 *   ingestd [-c FILE] ledger checkpoint
 *   ingestd [-c FILE] ledger verify [--since CHECKPOINT] [--key VKEY]
 *   ingestd [-c FILE] prove SHA256 --out FILE
 *   ingestd verify-proof PROOF MESSAGE --key VKEY
 *
 * Exit status as main.c's: 0, 1 (damage found, or a proof that fails), 2
 * usage, 3 startup (configuration, database, key).
 */
#ifndef INGESTD_CMD_LEDGER_H
#define INGESTD_CMD_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conf;
struct db;
struct ledger_timer;

/* Whether argv names one of the commands above (main.c hands it over). */
bool cmd_ledger_wants(int argc, char **argv);
/* Runs it; returns the exit status. */
int cmd_ledger_main(int argc, char **argv);

/*
 * Records an `ingestd verify` run in the ledger: kind "verify", fields
 * account (empty: all), complete ("yes"/"no"), ok, damaged.  A failure is
 * logged only.
 */
void ledger_record_verify(struct db *db, const char *account, bool complete,
    uint64_t ok, uint64_t bad);
/*
 * An export, as an event of the ledger: what was asked (the account, or
 * the query's SHA-256: no personal data in entries), how many messages,
 * and the SHA-256 of its manifest and of its SHA256SUMS ("" for none), so
 * that a set of files handed over can be shown to be the one exported.
 */
void ledger_record_export(struct db *db, const char *account,
    const char *query, bool complete, uint64_t deliveries, uint64_t written,
    uint64_t bad, const char *manifest_sha256, const char *sums_sha256);

/*
 * For run: a checkpoint every ledger.checkpoint_interval seconds when the
 * ledger grew.  NULL (and nothing to do) without ledger.signing_key or
 * with interval 0; NULL with err filled if the key cannot be read.
 * ledger_timer_fire() sequences, signs and sends, on the caller's thread
 * with db (blocking); a failure is logged and tried again next time.
 */
struct ledger_timer *ledger_timer_new(const struct conf *c, struct db *db,
    char *err, size_t errlen);
unsigned ledger_timer_interval(const struct ledger_timer *t);
void ledger_timer_fire(void *arg);
void ledger_timer_free(struct ledger_timer **t);

#endif
