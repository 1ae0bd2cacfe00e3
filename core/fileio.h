/*
 * fileio.h — whole-file reads, atomic writes and SHA-256.
 *
 * Every artefact is written to "<path>.tmp", flushed, fsync'd and renamed over the
 * target, so a crash or Ctrl-C leaves either the old file or the new one, never half.
 */
#ifndef CHARLM_FILEIO_H
#define CHARLM_FILEIO_H

#include <stddef.h>

/* Reads a whole file into a malloc'd buffer (NUL-terminated for convenience). */
int file_read_all(const char *path, char **data, size_t *len, char *err);
/* Writes the concatenation of n parts to path atomically. */
int file_write_atomic(const char *path, const void *const *parts, const size_t *lens, int n,
                      char *err);
/* Lowercase hex SHA-256 of data into hex[65]. */
void sha256_hex(const void *data, size_t len, char *hex);
/* Creates dir (and parents) if missing. */
int dir_ensure(const char *dir, char *err);

#endif
