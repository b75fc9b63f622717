/*
 * Writing a whole buffer to a file descriptor, through short writes and
 * EINTR: what every file ingestd writes (exports, keys) needs.
 */
#ifndef INGESTD_BASE_FDIO_H
#define INGESTD_BASE_FDIO_H

#include <stddef.h>

/* 0 once all n bytes of p are written; -1 with errno set. */
int fd_write_all(int fd, const void *p, size_t n);

#endif
