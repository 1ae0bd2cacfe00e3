/*
 * vocab.h — the character vocabulary: token id <-> Unicode code point.
 *
 * Built from the whole corpus, sorted by code point, so id order is reproducible from
 * the text alone. Saved as vocab.json:
 *   {"format": "charlm-vocab", "version": 1, "chars": ["\n", " ", "!", ...]}
 * where index = token id and each entry is a one-code-point string.
 */
#ifndef CHARLM_VOCAB_H
#define CHARLM_VOCAB_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int size;        // V
    uint32_t *chars; // [V] code point of each id, ascending
} Vocab;

/* Every distinct code point of valid UTF-8 text. Fails on an empty text. */
int vocab_build(Vocab *vocab, const char *text, size_t len, char *err);
void vocab_free(Vocab *vocab);

/* Id of a code point, or -1 when it is not in the vocabulary (binary search). */
int vocab_id(const Vocab *vocab, uint32_t cp);

/* Encodes len bytes of valid UTF-8: the ids of the chars the vocabulary has, in order,
 * into ids (room for utf8_count(text, len)), and each one's byte offset in text into
 * offsets when it is not NULL; the chars it lacks, as UTF-8 with a NUL after them, into
 * unknown (room for len + 1 bytes) when it is not NULL. Returns the number of ids. */
size_t vocab_encode(const Vocab *vocab, const char *text, size_t len, int *ids, size_t *offsets,
                    char *unknown);
/* The text of ids[0 .. n), each in [0, size), into out (room for 4 n + 1 bytes) with a NUL
 * after it. Returns its length in bytes. */
size_t vocab_decode(const Vocab *vocab, const int *ids, size_t n, char *out);
/* One id's char as UTF-8 with a NUL, into out; returns out. */
const char *vocab_char(const Vocab *vocab, int id, char out[5]);

/* The vocab.json text (malloc'd, NUL-terminated). Its bytes are what vocab_sha256 hashes. */
char *vocab_to_json(const Vocab *vocab);
/* Parses vocab.json text; rejects wrong format/version, entries that are not exactly one
 * code point, duplicates and unsorted entries. */
int vocab_from_json(Vocab *vocab, const char *json, size_t len, char *err);

/* Writes vocab.json atomically (temp file + rename). */
int vocab_save(const Vocab *vocab, const char *path, char *err);
/* Reads and parses path; if sha256_hex is not NULL it receives the file's SHA-256 [65]. */
int vocab_load(Vocab *vocab, const char *path, char *sha256_hex, char *err);

#endif
