/*
 * ingestd policy, hold and purge: retention policies, legal holds and the
 * two-step audited purge (README, "Retention, holds and purge").  The
 * decisions are ingestd/retention.c's; the tables, views and functions
 * are migration 0009's.
 */
#ifndef INGESTD_CMD_RETENTION_H
#define INGESTD_CMD_RETENTION_H

struct conf;
struct db;
struct retention_cmd;

/*
 * Where in argv the command word is, when it is policy, hold or purge
 * (those parse their own arguments, after it); 0 otherwise.  Global
 * options (-c FILE, -v) come before it.
 */
int retention_cmd_index(int argc, char **argv);

/*
 * Parses argv[0] (policy, hold, purge) and what follows it.  A usage
 * error is printed, naming what is wrong, and exits 2.  Every query given
 * is parsed here, before any database is reached.
 */
struct retention_cmd *retention_cmd_parse(int argc, char **argv);

/* Runs it; returns the exit status (0 done, 1 refused or failed). */
int retention_cmd_run(struct retention_cmd *rc, struct db *db,
    const struct conf *conf);

void retention_cmd_free(struct retention_cmd **rc);

#endif
