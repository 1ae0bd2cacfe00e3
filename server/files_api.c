#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "files_api.h"
#include "filestore.h"
#include "multipart.h"
#include "server.h"
#include "textcheck.h"

// A form needs two parts; a few more are tolerated (and ignored) for clients that add some.
#define FORM_PARTS_MAX 8

// One upload, from its headers to its reply (rq->ctx). Its body is parsed as it arrives
// (multipart.h), the file's bytes checked (textcheck.h) and appended to a temp file
// (filestore.h), so it holds this struct and the check's line, whatever the file's size.
typedef struct {
    MultipartStream form;
    TextCheck check;
    FileUpload file;
    int parts;
    int reading;   // the part being read: 0 none of ours, 'f' the file, 'p' the purpose
    int have_file; // the file part began (the first one counts; others are ignored)
    int file_done; // and ended, checked
    char purpose[16];
    size_t purpose_len; // past sizeof(purpose): too long to be "fine-tune"
    char filename[512];
    // The refusal, once one is decided: the rest of the body is dropped.
    int status;
    const char *param;
    char msg[320];
    // The commit, on its own thread while the connection is suspended.
    struct MHD_Connection *conn;
    pthread_t thread;
    int started; // the thread runs (joined at the end)
    int counted; // in srv.undelivered, so that a drain waits for the reply
    atomic_int done;
    cJSON *stored; // the file object, or NULL with err
    char err[ERR_LEN];
} Upload;

// Uploads between files_api_begin and their end; the HTTP thread's only.
static int uploads_active;

__attribute__((format(printf, 4, 5))) static int refuse(Upload *u, int status, const char *param,
                                                        const char *fmt, ...) {
    if (u->status) return 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(u->msg, sizeof(u->msg), fmt, ap);
    va_end(ap);
    u->status = status;
    u->param = param;
    // Nothing of a refused upload stays on disk, even while its body is still coming.
    filestore_abort(&u->file);
    textcheck_free(&u->check);
    return 1;
}

static int name_is(const MultipartPart *p, const char *name) {
    return p->name_len == strlen(name) && memcmp(p->name, name, p->name_len) == 0;
}

static int on_part(void *ctx, const MultipartPart *p) {
    Upload *u = ctx;
    if (++u->parts > FORM_PARTS_MAX)
        return refuse(u, MHD_HTTP_BAD_REQUEST, NULL, "the form has too many parts");
    u->reading = 0;
    if (name_is(p, "file") && !u->have_file) {
        // A NUL inside the name would hide the rest of it from the label.
        if (p->filename && memchr(p->filename, '\0', p->filename_len))
            return refuse(u, MHD_HTTP_BAD_REQUEST, "file", "the filename holds a NUL byte");
        if (p->filename)
            snprintf(u->filename, sizeof(u->filename), "%.*s", (int)p->filename_len, p->filename);
        textcheck_begin(&u->check, u->filename);
        u->have_file = 1;
        u->reading = 'f';
    } else if (name_is(p, "purpose") && !u->purpose_len) {
        u->reading = 'p';
    }
    return 0;
}

static int on_data(void *ctx, const char *data, size_t n) {
    Upload *u = ctx;
    if (u->reading == 'p') {
        if (u->purpose_len + n <= sizeof(u->purpose)) memcpy(u->purpose + u->purpose_len, data, n);
        u->purpose_len += n;
        return 0;
    }
    if (u->reading != 'f') return 0;
    if (u->file.len + n > (size_t)srv.cfg.max_upload)
        return refuse(u, MHD_HTTP_BAD_REQUEST, "file", FILES_TOO_LARGE, srv.cfg.max_upload);
    if (textcheck_feed(&u->check, data, n))
        return refuse(u, MHD_HTTP_BAD_REQUEST, "file", "not a training text: %s", u->check.why);
    char err[ERR_LEN];
    if (filestore_append(&u->file, data, n, err)) {
        fprintf(stderr, SERVER_NAME ": cannot store an upload: %s\n", err);
        return refuse(u, MHD_HTTP_INSUFFICIENT_STORAGE, NULL,
                      "the server could not store the file");
    }
    return 0;
}

static int on_end(void *ctx) {
    Upload *u = ctx;
    if (u->reading == 'f') {
        if (textcheck_end(&u->check))
            return refuse(u, MHD_HTTP_BAD_REQUEST, "file", "not a training text: %s", u->check.why);
        u->file_done = 1;
    }
    u->reading = 0;
    return 0;
}

static const MultipartSink form_sink = {on_part, on_data, on_end};

// http.c's body sink: each piece of the body as it arrives, on the event thread.
static int upload_sink(Request *rq, const char *data, size_t n) {
    Upload *u = rq->ctx;
    if (!data) { // the body is past --max-upload and the form's slack: so is the file
        refuse(u, MHD_HTTP_BAD_REQUEST, "file", FILES_TOO_LARGE, srv.cfg.max_upload);
        return 0;
    }
    const char *why;
    if (!u->status && multipart_feed(&u->form, data, n, &form_sink, u, &why) && why)
        refuse(u, MHD_HTTP_BAD_REQUEST, NULL, "%s", why);
    return 0;
}

static void upload_finish(Request *rq) {
    Upload *u = rq->ctx;
    if (u->started) pthread_join(u->thread, NULL);
    if (u->counted) atomic_fetch_sub(&srv.undelivered, 1);
    filestore_abort(&u->file); // a client that left mid-body leaves no temp file
    textcheck_free(&u->check);
    cJSON_Delete(u->stored);
    free(u);
    uploads_active--;
}

enum MHD_Result files_api_begin(struct MHD_Connection *conn, Request *rq) {
    if (uploads_active >= srv.cfg.max_uploads) {
        char msg[128];
        snprintf(msg, sizeof(msg),
                 "%d uploads are in progress, as many as --max-uploads allows; retry shortly",
                 uploads_active);
        return respond_error_after_body(conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE, msg, NULL);
    }
    char boundary[MULTIPART_BOUNDARY_MAX + 1];
    const char *ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type");
    if (multipart_boundary(ct, boundary, sizeof(boundary)) != 0)
        return respond_error(conn, rq, MHD_HTTP_BAD_REQUEST,
                             "the Content-Type's multipart boundary is missing or invalid", NULL);
    Upload *u = calloc(1, sizeof(*u));
    if (!u) return respond_error(conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory", NULL);
    multipart_begin(&u->form, boundary);
    char err[ERR_LEN];
    if (filestore_begin(&u->file, err)) {
        free(u);
        fprintf(stderr, SERVER_NAME ": cannot store an upload: %s\n", err);
        return respond_error(conn, rq, MHD_HTTP_INSUFFICIENT_STORAGE,
                             "the server could not store the file", NULL);
    }
    u->conn = conn;
    uploads_active++;
    rq->ctx = u;
    rq->sink = upload_sink;
    rq->finish = upload_finish;
    return MHD_YES;
}

// The commit's thread: the disk's wait, away from the event thread.
static void *commit_run(void *arg) {
    Upload *u = arg;
    u->stored = filestore_commit(&u->file, u->filename, "fine-tune", u->err);
    atomic_store(&u->done, 1);
    MHD_resume_connection(u->conn);
    return NULL;
}

// Runs when the commit has resumed the connection.
static enum MHD_Result upload_stored(struct MHD_Connection *conn, Request *rq) {
    Upload *u = rq->ctx;
    if (!atomic_load(&u->done)) return MHD_YES;
    if (!u->stored) {
        fprintf(stderr, SERVER_NAME ": cannot store an upload: %s\n", u->err);
        return respond_error(conn, rq, MHD_HTTP_INSUFFICIENT_STORAGE,
                             "the server could not store the file", NULL);
    }
    cJSON *o = u->stored;
    u->stored = NULL;
    return respond_object(conn, rq, MHD_HTTP_OK, o);
}

// The whole body is in: answers a refusal, or stores the file on a thread of its own.
static enum MHD_Result upload(struct MHD_Connection *conn, Request *rq) {
    Upload *u = rq->ctx;
    const char *why;
    if (!u->status && multipart_end(&u->form, &why))
        refuse(u, MHD_HTTP_BAD_REQUEST, NULL, "%s", why);
    if (!u->status && (u->purpose_len != strlen("fine-tune") ||
                       memcmp(u->purpose, "fine-tune", u->purpose_len) != 0))
        refuse(u, MHD_HTTP_BAD_REQUEST, "purpose",
               "purpose must be \"fine-tune\" (the only one this server keeps)");
    if (!u->status && !u->file_done)
        refuse(u, MHD_HTTP_BAD_REQUEST, "file", "the form has no \"file\" field");
    if (u->status) return respond_error(conn, rq, u->status, u->msg, u->param);
    // Suspended first: the thread resumes it, which must not come before.
    MHD_suspend_connection(conn);
    atomic_fetch_add(&srv.undelivered, 1);
    u->counted = 1;
    rq->resume = upload_stored;
    if (pthread_create(&u->thread, NULL, commit_run, u) == 0) {
        u->started = 1;
        return MHD_YES;
    }
    MHD_resume_connection(conn);
    rq->resume = NULL;
    return respond_error(conn, rq, MHD_HTTP_SERVICE_UNAVAILABLE, "no thread to store the file",
                         NULL);
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
