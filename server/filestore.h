/*
 * filestore.h — the uploaded training files of --training-dir, as OpenAI's file objects:
 *
 *   {"id": "file-<24 hex>", "object": "file", "bytes": 1234, "created_at": <unix s>,
 *    "filename": "<the client's name, a label only>", "purpose": "fine-tune"}
 *
 * On disk, under <training dir>/files/: <id> holds the content and <id>.json the object.
 * Both are written to a temp name and renamed, the content first, so a listed object always
 * has its whole content; delete removes the object first. Nothing is ever named after the
 * client's filename, and an id is taken only in its generated shape, so no request can
 * reach a path outside the folder. Called from the HTTP thread, and the fine-tuning runner
 * reads uploads (filestore_get): nothing here is kept between calls but the folder's path.
 */
#ifndef CHARLM_FILESTORE_H
#define CHARLM_FILESTORE_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* Uses <dir>/files, creating it (and dir) if missing. */
int filestore_init(const char *dir, char *err);

/* Why content is not a training text, in why (cap bytes), or 0 when it is one. A text is
 * non-empty UTF-8 without NUL bytes; one named *.jsonl, or whose first non-blank byte is
 * '{', is JSON lines: every non-blank line an object with a string "text". Returns -1. */
int filestore_check(const char *data, size_t len, const char *filename, char *why, size_t cap);

/* 1 when content is read as JSON lines: filename ends in .jsonl, or the first non-blank
 * byte is '{'. */
int filestore_is_jsonl(const char *data, size_t len, const char *filename);

/* Stores a checked content under a new id; returns its object (the caller's to free), or
 * NULL with err set when the disk refuses it (nothing is left behind then). */
cJSON *filestore_add(const char *data, size_t len, const char *filename, const char *purpose,
                     char *err);
/* The object of id, or NULL when there is none (or id is not an id's shape). */
cJSON *filestore_get(const char *id);
/* {"object": "list", "data": [...]}, newest first; NULL when out of memory. */
cJSON *filestore_list(void);
/* Removes id; 0, or -1 when there is no such file. */
int filestore_delete(const char *id);
/* 1 when id has the shape filestore_add gives ids. */
int filestore_id_ok(const char *id);

#endif
