/*
 * The command word (see cmdline.h).
 */
#include "ingestd/cmdline.h"

#include <string.h>

int
cmdline_command(int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		/* The one option that takes a separate value. */
		if (strcmp(argv[i], "-c") == 0 ||
		    strcmp(argv[i], "--config") == 0) {
			i++;
			continue;
		}
		if (argv[i][0] != '-')
			return i;
	}
	return 0;
}
