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
 * reach a path outside the folder. An upload's content is appended to a temp file as it
 * arrives (filestore_begin) and renamed to its id once whole; temp files a crash left
 * behind are removed by filestore_init. Called from the HTTP thread, but for
 * filestore_commit (a worker's), which shares no memory with the rest.
 */
#ifndef CHARLM_FILESTORE_H
#define CHARLM_FILESTORE_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* Uses <dir>/files, creating it (and dir) if missing. */
int filestore_init(const char *dir, char *err);

/* An upload being written: its content goes to a temp file in the folder as it arrives.
 * A plain struct, the caller's; begin fills it. */
typedef struct {
    int fd;     // the temp file, -1 once closed
    char *tmp;  // its path, NULL once renamed or removed
    size_t len; // bytes appended
} FileUpload;

/* Opens a new temp file ("<folder>/.upload-XXXXXX"); 0, or -1 with err. */
int filestore_begin(FileUpload *u, char *err);
/* Appends n bytes of content; 0, or -1 with err (the upload is then for abort). */
int filestore_append(FileUpload *u, const char *data, size_t n, char *err);
/* Stores the content under a new id: fdatasync, rename, then the object written the
 * same way. Blocks on the disk, so it is for a worker thread; touches nothing but the
 * upload and its files. Returns the object (the caller's to free), or NULL with err set
 * when the disk refuses it (nothing is left behind then). The upload is closed either way. */
cJSON *filestore_commit(FileUpload *u, const char *filename, const char *purpose, char *err);
/* Closes the upload and removes its temp file, if still there; safe after commit, and on
 * a zeroed FileUpload with fd -1. */
void filestore_abort(FileUpload *u);
/* The object of id, or NULL when there is none (or id is not an id's shape). */
cJSON *filestore_get(const char *id);
/* {"object": "list", "data": [...]}, newest first; NULL when out of memory. */
cJSON *filestore_list(void);
/* Removes id; 0, or -1 when there is no such file. */
int filestore_delete(const char *id);
/* 1 when id has the shape filestore_add gives ids. */
int filestore_id_ok(const char *id);

#endif
