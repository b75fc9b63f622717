/*
 * The command word of ingestd's command line, found before getopt runs:
 * commands that parse their own arguments (ledger, prove, verify-proof,
 * policy, hold, purge) are recognised by it and take over.
 */
#ifndef INGESTD_CMDLINE_H
#define INGESTD_CMDLINE_H

/*
 * The index in argv of the first argument that is neither an option nor
 * the value of -c/--config, or 0 if there is none.
 */
int cmdline_command(int argc, char **argv);

#endif
