#include <stdio.h>
#include <string.h>

#include "error.h"
#include "files_api.h"
#include "filestore.h"
#include "multipart.h"
#include "server.h"

// A form needs two parts; a few more are tolerated (and ignored) for clients that add some.
#define FORM_PARTS_MAX 8

static int field_is(const MultipartPart *p, const char *name) {
    return p->name_len == strlen(name) && memcmp(p->name, name, p->name_len) == 0;
}

static enum MHD_Result upload(struct MHD_Connection *conn, Request *rq) {
    char boundary[MULTIPART_BOUNDARY_MAX + 1];
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    if (multipart_boundary(ct, boundary, sizeof(boundary)) != 0)
        return respond_error(conn, rq, MHD_HTTP_BAD_REQUEST,
                             "the Content-Type's multipart boundary is missing or invalid", NULL);
    MultipartPart parts[FORM_PARTS_MAX];
    int n;
    const char *why;
    if (multipart_parse(rq->body.s ? rq->body.s : "", rq->body.len, boundary, parts, FORM_PARTS_MAX,
                        &n, &why) != 0)
        return respond_error(conn, rq, MHD_HTTP_BAD_REQUEST, why, NULL);
    const MultipartPart *file = NULL, *purpose = NULL;
    for (int i = 0; i < n; i++) {
        if (field_is(&parts[i], "file") && !file) file = &parts[i];
        if (field_is(&parts[i], "purpose") && !purpose) purpose = &parts[i];
    }
    if (!purpose || purpose->len != strlen("fine-tune") ||
        memcmp(purpose->data, "fine-tune", purpose->len) != 0)
        return respond_error(conn, rq, MHD_HTTP_BAD_REQUEST,
                             "purpose must be \"fine-tune\" (the only one this server keeps)",
                             "purpose");
    if (!file)
        return respond_error(conn, rq, MHD_HTTP_BAD_REQUEST, "the form has no \"file\" field",
                             "file");
    if (file->len > (size_t)srv.cfg.max_upload) {
        char msg[128];
        snprintf(msg, sizeof(msg), "the file is larger than --max-upload, %ld bytes",
                 srv.cfg.max_upload);
        return respond_error(conn, rq, MHD_HTTP_CONTENT_TOO_LARGE, msg, "file");
    }
    // A NUL inside the name would hide the rest of it from the label.
    if (file->filename && memchr(file->filename, '\0', file->filename_len))
        return respond_error(conn, rq, MHD_HTTP_BAD_REQUEST, "the filename holds a NUL byte",
                             "file");
    char filename[512] = "";
    if (file->filename)
        snprintf(filename, sizeof(filename), "%.*s", (int)file->filename_len, file->filename);
    char reason[256], msg[300];
    if (filestore_check(file->data, file->len, filename, reason, sizeof(reason)) != 0) {
        snprintf(msg, sizeof(msg), "not a training text: %s", reason);
        return respond_error(conn, rq, MHD_HTTP_BAD_REQUEST, msg, "file");
    }
    char err[ERR_LEN];
    cJSON *o = filestore_add(file->data, file->len, filename, "fine-tune", err);
    if (!o) {
        fprintf(stderr, SERVER_NAME ": cannot store an upload: %s\n", err);
        return respond_error(conn, rq, MHD_HTTP_INSUFFICIENT_STORAGE,
                             "the server could not store the file", NULL);
    }
    return respond_object(conn, rq, MHD_HTTP_OK, o);
}

enum MHD_Result files_api_collection(struct MHD_Connection *conn, Request *rq) {
    if (strcmp(rq->method, "POST") == 0) return upload(conn, rq);
    return respond_object(conn, rq, MHD_HTTP_OK, filestore_list());
}

static enum MHD_Result not_found(struct MHD_Connection *conn, Request *rq) {
    return respond_error(conn, rq, MHD_HTTP_NOT_FOUND,
                         "no such file: ids are the ones POST /v1/files gave", NULL);
}

enum MHD_Result files_api_item(struct MHD_Connection *conn, Request *rq) {
    if (strcmp(rq->method, "DELETE") == 0) {
        if (filestore_delete(rq->tail) != 0) return not_found(conn, rq);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", rq->tail);
        cJSON_AddStringToObject(o, "object", "file");
        cJSON_AddBoolToObject(o, "deleted", 1);
        return respond_object(conn, rq, MHD_HTTP_OK, o);
    }
    cJSON *o = filestore_get(rq->tail);
    return o ? respond_object(conn, rq, MHD_HTTP_OK, o) : not_found(conn, rq);
}
