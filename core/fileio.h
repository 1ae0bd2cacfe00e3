/*
 * fileio.h — paths, whole-file reads, atomic writes and SHA-256.
 *
 * Every artefact is written to "<path>.tmp", flushed, fsync'd and renamed over the
 * target, so a crash or Ctrl-C leaves either the old file or the new one, never half.
 */
#ifndef CHARLM_FILEIO_H
#define CHARLM_FILEIO_H

#include <stddef.h>

/* Reads a whole file into a malloc'd buffer (NUL-terminated for convenience). Pipes and
 * /proc files are read to EOF. max > 0 refuses a file longer than max bytes. */
int file_read_all(const char *path, size_t max, char **data, size_t *len, char *err);
/* Writes the concatenation of n parts to path atomically. */
int file_write_atomic(const char *path, const void *const *parts, const size_t *lens, int n,
                      char *err);
/* Lowercase hex SHA-256 of data into hex[65]. */
void sha256_hex(const void *data, size_t len, char *hex);
/* dir + "/" + name (no doubled slash), malloc'd; NULL when out of memory. */
char *path_join(const char *dir, const char *name);
/* 1 when path names a directory (following symlinks). */
int path_is_dir(const char *path);
/* Creates dir (and parents) if missing. */
int dir_ensure(const char *dir, char *err);

#endif
