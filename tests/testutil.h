/*
 * testutil.h — helpers shared by the check suites: temp folders, files, tiny models,
 * running the built programs.
 */
#ifndef CHARLM_TESTUTIL_H
#define CHARLM_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"

/* A checked fixture (tcase_add_checked_fixture(tc, tu_dir_setup, tu_dir_teardown)): each
 * test gets a fresh temp folder, tu_dir, removed with everything in it afterwards. */
extern char *tu_dir;
void tu_dir_setup(void);
void tu_dir_teardown(void);

/* Runs every test of s, printing check's normal report; returns the process exit status. */
int tu_run_suite(Suite *s);

/* A fresh directory under $TMPDIR (or /tmp); malloc'd path. */
char *tu_tmpdir(void);
/* Removes dir and everything below it. */
void tu_rmtree(const char *dir);
/* Writes len bytes to dir/name; malloc'd full path. */
char *tu_write_file(const char *dir, const char *name, const char *data, size_t len);
/* Writes dir/name as a safetensors file: the 8-byte little-endian length of header, the
 * header text as given (not checked), then dlen bytes of data; malloc'd full path. */
char *tu_write_safetensors(const char *dir, const char *name, const char *header, const void *data,
                           size_t dlen);
/* Reads a whole file; malloc'd, NUL-terminated; NULL if missing. */
char *tu_read_file(const char *path, size_t *len);
/* Makes a model folder in dir (vocab.json + model.safetensors + a short train_log.jsonl)
 * with a vocabulary built from text and freshly initialised weights of the architecture
 * named arch with the hyperparameters hyper (its own struct, arch.h's config_set). */
int tu_make_arch_dir(const char *dir, const char *text, const char *arch, const void *hyper,
                     uint64_t seed);
/* The same for an LSTM of these sizes. Returns 0 on success. */
int tu_make_model_dir(const char *dir, const char *text, int embed, int hidden, int layers,
                      uint64_t seed);
/* Runs a shell command; captures stdout and stderr (malloc'd, may pass NULL to discard)
 * and returns the exit status (or -1). */
int tu_run(const char *cmd, char **out, char **err);
/* Path of a built program, e.g. tu_bin("charlm-train"); static buffer. */
const char *tu_bin(const char *name);
/* A text of n chars in a small alphabet with enough structure to learn, deterministic. */
char *tu_sample_text(size_t n);

/* A PyTorch fixture's metadata value (the test fails when it is missing), and that value as
 * an integer. */
const char *tu_fixture_meta(const StFile *f, const char *key);
long tu_fixture_long(const StFile *f, const char *key);
/* A fixture's F32 tensor of exactly this shape, malloc'd (the test fails otherwise). */
float *tu_fixture_tensor(const StFile *f, const char *name, int ndim, const int64_t *shape);

/* Out-of-memory tests (tests/memlimit.c): limits the address space to what the process
 * maps now plus spare bytes, with every block over 64 KiB a mapping of its own that the
 * limit counts, so that allocating more than spare bytes fails (under AddressSanitizer
 * too: a suite that calls this gets malloc's NULL there rather than a report).
 * tu_unlimit_memory lifts the limit. */
void tu_limit_memory(size_t spare);
void tu_unlimit_memory(void);

#endif
