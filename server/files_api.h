/*
 * files_api.h — OpenAI's Files API over filestore.h, routed only with --training-dir:
 *
 *   POST   /v1/files       multipart/form-data: "file" (with a filename) and "purpose"
 *                          ("fine-tune"); the file object, 200
 *   GET    /v1/files       {"object": "list", "data": [file objects, newest first]}
 *   GET    /v1/files/{id}  the file object
 *   DELETE /v1/files/{id}  {"id", "object": "file", "deleted": true}
 *
 * A bad form or content is a 400 saying why; a file over --max-upload a 413; an unknown id
 * a 404; more than --max-uploads uploads at once a 503, before the body is read. The body
 * is read up to --max-upload plus FILES_FORM_SLACK for the form around the file (routes.c
 * sets the limit before the body is read), and never held: it is parsed as it arrives and
 * the file's bytes checked and appended to a temp file, so an upload holds some 10 KiB
 * (plus, for JSON lines, the current line: TEXTCHECK_LINE_MAX at most) whatever its size.
 * A refusal removes the temp file at once and drops the rest of the body; a client that
 * leaves mid-body leaves nothing either. The fdatasync and renames that store a whole file
 * run on a thread of their own while the connection is suspended, so the event thread
 * never waits for the disk.
 */
#ifndef CHARLM_FILES_API_H
#define CHARLM_FILES_API_H

#include "http.h"

/* A file over --max-upload is a bad request (400, param "file"), however it shows: by the
 * body's Content-Length, or as its bytes come. */
#define FILES_TOO_LARGE "the file is larger than --max-upload, %ld bytes"

/* Bytes of multipart framing allowed around the file itself. */
#define FILES_FORM_SLACK 65536

/* routes.c's, once an upload's headers have passed its checks: refuses it (503 at
 * --max-uploads, 400 without a boundary) or readies its body's sink. */
enum MHD_Result files_api_begin(struct MHD_Connection *conn, Request *rq);
/* GET lists, POST uploads (the body is in). */
enum MHD_Result files_api_collection(struct MHD_Connection *conn, Request *rq);
/* GET or DELETE of rq->tail, the id. */
enum MHD_Result files_api_item(struct MHD_Connection *conn, Request *rq);

#endif
