/*
 * The SQL files of migrations/, compiled into the binary by the Makefile.
 * Applied in array order by db_migrate(); names are "NNNN_verb_noun".
 */
#ifndef STORE_MIGRATIONS_H
#define STORE_MIGRATIONS_H

#include <stddef.h>

struct migration {
	const char *name;
	const char *sql;
};

extern const struct migration migrations[];
extern const size_t migrations_count;

#endif
