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
 * a 404. The upload's body is read up to --max-upload plus FILES_FORM_SLACK for the form
 * around the file (routes.c sets the limit before the body is read).
 */
#ifndef CHARLM_FILES_API_H
#define CHARLM_FILES_API_H

#include "http.h"

/* Bytes of multipart framing allowed around the file itself. */
#define FILES_FORM_SLACK 65536

/* GET lists, POST uploads. */
enum MHD_Result files_api_collection(struct MHD_Connection *conn, Request *rq);
/* GET or DELETE of rq->tail, the id. */
enum MHD_Result files_api_item(struct MHD_Connection *conn, Request *rq);

#endif
