/*
 * The embedded PostgreSQL: with no database configured, ingestd runs a
 * private cluster under its state directory with the installed server
 * binaries (initdb, pg_ctl), so a mailbox owner needs no database admin.
 *
 * The cluster listens on a unix socket in the state directory only (no
 * TCP), with socket permissions 0700 and trust authentication for local
 * connections: only the user ingestd runs as can reach it.  Its data is in
 * state_dir/pgdata, its server log in state_dir/postgresql.log, and the
 * output of initdb and pg_ctl in state_dir/pgembed.log.
 */
#ifndef INGESTD_PGEMBED_H
#define INGESTD_PGEMBED_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Makes sure the cluster exists (initdb on first use), runs (pg_ctl start
 * unless pg_ctl status says it already does) and holds database "ingestd".
 * bindir is the directory of initdb and pg_ctl, NULL for the newest
 * /usr/lib/postgresql/N/bin.
 *
 * On 0, *conninfo_r is the caller's to free ("host=<state_dir> port=5432
 * dbname=ingestd user=ingestd") and *started_r says whether this call
 * started the server (false: it was running already, e.g. left by a killed
 * ingestd; it is used as it is).  On -1, err says why, with the tail of the
 * relevant log.  Refuses to run as root, since PostgreSQL does.
 *
 * Runs child processes and waits for them: SIGCHLD must not be ignored.
 */
int pgembed_start(const char *state_dir, const char *bindir,
    char **conninfo_r, bool *started_r, char *err, size_t errlen);

/* pg_ctl stop -m fast; failures are logged. */
void pgembed_stop(const char *state_dir, const char *bindir);

#endif
