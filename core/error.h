/*
 * error.h — how core reports failure.
 *
 * Functions that can fail on user input (files, flags, requests) return 0 on success
 * and -1 on failure, after writing one human-readable line into a caller-provided
 * `char err[ERR_LEN]`. The caller decides how to show it (stderr, a JSON body).
 * Nothing in core prints or exits.
 */
#ifndef CHARLM_ERROR_H
#define CHARLM_ERROR_H

#include <stddef.h>

#define ERR_LEN 512

/* printf into err (may be NULL); always returns -1 so callers can `return err_set(...)`. */
int err_set(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
