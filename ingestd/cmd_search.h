/*
 * ingestd search and ingestd export --query: the search language
 * (store/query.h) from the command line.
 */
#ifndef INGESTD_CMD_SEARCH_H
#define INGESTD_CMD_SEARCH_H

#include <stdbool.h>

struct db;
struct query;

struct search_opts {
	const char *text;   /* the query (search's argument, --query) */
	const char *format; /* "table", "jsonl"; NULL: table */
	const char *limit;  /* --limit N as given; NULL: none */
	bool count;
	bool explain;
};

/*
 * Parses o->text.  On a syntax error prints it to stderr with the column
 * marked under the query, and returns NULL; what names the command
 * ("search", "export").
 */
struct query *search_parse(const char *what, const char *text);

/*
 * Checks search's options (format, limit); false with a message on
 * stderr for a usage error.
 */
bool search_opts_ok(const struct search_opts *o);

/*
 * Runs the search and prints the deliveries to stdout: with --count their
 * number; --format jsonl one JSON object per line; otherwise a table (on
 * a terminal, aligned with a header; in a pipe, tab-separated).  Returns
 * the exit status (0, or 1 when the database failed).
 */
int
cmd_search(struct db *db, const struct search_opts *o, const struct query *q);

/* export --query: see reader_export_query(); returns the exit status. */
int cmd_export_query(struct db *db, int out_fd, const char *out_dir,
    const char *text, const struct query *q);

#endif
