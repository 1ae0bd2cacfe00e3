/*
 * fileio.h — paths, whole-file reads, atomic writes and SHA-256.
 *
 * Every artefact is written to "<path>.tmp", flushed, fsync'd and renamed over the
 * target, so a crash or Ctrl-C leaves either the old file or the new one, never half.
 */
#ifndef CHARLM_FILEIO_H
#define CHARLM_FILEIO_H

#include <stddef.h>
#include <sys/stat.h>

/* Reads a whole file into a malloc'd buffer (NUL-terminated for convenience): a regular
 * file or a pipe (a FIFO, `<(zcat ...)`), read to EOF (/proc files report size 0).
 * Directories, devices and sockets are refused. max > 0 refuses a file longer than max
 * bytes. For what the operator names on the command line, such as a corpus. */
int file_read_all(const char *path, size_t max, char **data, size_t *len, char *err);
/* Opens path for reading only if it is a regular file (following symlinks), without
 * blocking on a FIFO; *st is what fstat says of what was opened (st_size its size).
 * Returns the fd, or -1 with err set ("<path>: not a regular file"). */
int file_open_regular(const char *path, struct stat *st, char *err);
/* Reads exactly n bytes from fd; a short read means the file shrank under us. */
int file_read_exact(int fd, void *buf, size_t n, const char *path, char *err);
/* After reading fd: fails ("<path>: changed while being read") unless it still has the
 * size and modification time of *before (file_open_regular's), so that a file rewritten
 * in place during the read is refused rather than taken half old, half new. */
int file_check_unchanged(int fd, const struct stat *before, const char *path, char *err);
/* file_read_all for files a program finds rather than is given (model, vocab, static
 * files, logs): regular files only, and the size is checked against max (when > 0)
 * before anything is read. */
int file_read_regular(const char *path, size_t max, char **data, size_t *len, char *err);
/* Writes the concatenation of n parts to path atomically. */
int file_write_atomic(const char *path, const void *const *parts, const size_t *lens, int n,
                      char *err);
/* Lowercase hex SHA-256 of data into hex[65]. */
void sha256_hex(const void *data, size_t len, char *hex);
/* The same over the concatenation of n parts. */
void sha256_hex_parts(const void *const *parts, const size_t *lens, int n, char *hex);
/* dir + "/" + name (no doubled slash), malloc'd; NULL when out of memory. */
char *path_join(const char *dir, const char *name);
/* 1 when path names a directory (following symlinks). */
int path_is_dir(const char *path);
/* Creates dir (and parents) if missing. */
int dir_ensure(const char *dir, char *err);

#endif
