#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fileio.h"
#include "http.h"
#include "server.h"
#include "static.h"

// The page loads nothing from anywhere but this server.
#define PAGE_CSP                                                                                   \
    "default-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'; "            \
    "object-src 'none'"

#define STATIC_MAX_FILE (8u << 20)

static int is_file(const char *path) {
    struct stat st;
    return path && stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int has_index(const char *dir) {
    char *p = path_join(dir, "index.html");
    int found = is_file(p);
    free(p);
    return found;
}

int static_init(char *err) {
    const char *env = getenv("CHARLM_STATIC_DIR");
    if (env && env[0]) {
        if (!path_is_dir(env)) return err_set(err, "CHARLM_STATIC_DIR=%s is not a folder", env);
        srv.static_dir = realpath(env, NULL);
        return srv.static_dir ? 0 : err_set(err, "CHARLM_STATIC_DIR=%s: cannot resolve", env);
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    char *from_exe = NULL, *from_prefix = NULL;
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        from_exe = path_join(exe, "../static");
        from_prefix = path_join(exe, "../share/charlm/static");
    }
    const char *tries[4] = {"static", from_exe, from_prefix, "/usr/share/charlm/static"};
    for (int i = 0; i < 4 && !srv.static_dir; i++)
        if (tries[i] && has_index(tries[i])) srv.static_dir = realpath(tries[i], NULL);
    free(from_exe);
    free(from_prefix);
    return 0; // no page found: the API still works, GET / answers 404
}

static const char *content_type(const char *name) {
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
        {".webmanifest", "application/manifest+json"},
        {".woff2", "font/woff2"},
    };
    const char *dot = strrchr(name, '.');
    if (dot)
        for (size_t i = 0; i < sizeof(types) / sizeof(*types); i++)
            if (strcmp(dot, types[i].ext) == 0) return types[i].type;
    return "application/octet-stream";
}

// That alone rules out "..", absolute paths, backslashes and anything a percent-decoding
// could have produced.
int static_name_ok(const char *rel) {
    size_t n = strlen(rel);
    if (n == 0 || n > 200) return 0;
    int seg_start = 1;
    for (const char *p = rel; *p; p++) {
        char ch = *p;
        if (ch == '/') {
            if (seg_start) return 0; // empty segment or leading slash
            seg_start = 1;
            continue;
        }
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '.' || ch == '_' || ch == '-';
        if (!ok || (seg_start && ch == '.')) return 0;
        seg_start = 0;
    }
    return !seg_start;
}

static enum MHD_Result serve(struct MHD_Connection *conn, Request *rq, const char *rel) {
    if (!srv.static_dir)
        return respond_error(conn, rq, MHD_HTTP_NOT_FOUND, "the web page is not installed", NULL);
    if (!static_name_ok(rel))
        return respond_error(conn, rq, MHD_HTTP_NOT_FOUND, "no such file", NULL);
    char *path = path_join(srv.static_dir, rel);
    // Symlinks are followed only if they stay inside the folder.
    char *real = path ? realpath(path, NULL) : NULL;
    free(path);
    size_t dl = strlen(srv.static_dir);
    char *data = NULL;
    size_t len = 0;
    char err[ERR_LEN];
    // Opened without blocking and only if regular: a FIFO or a device in the folder must
    // not hold a connection thread.
    int found = real && strncmp(real, srv.static_dir, dl) == 0 && real[dl] == '/' &&
                !file_read_regular(real, STATIC_MAX_FILE, &data, &len, err);
    free(real);
    if (!found) return respond_error(conn, rq, MHD_HTTP_NOT_FOUND, "no such file", NULL);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(data);
        return MHD_NO;
    }
    const char *type = content_type(rel);
    MHD_add_response_header(resp, "Content-Type", type);
    MHD_add_response_header(resp, "Cache-Control", "no-cache");
    if (strncmp(type, "text/html", 9) == 0) {
        MHD_add_response_header(resp, "Content-Security-Policy", PAGE_CSP);
        MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    }
    response_add_common(resp, conn);
    enum MHD_Result r = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    rq->status = 200;
    rq->bytes = len;
    return r;
}

enum MHD_Result static_index(struct MHD_Connection *conn, Request *rq) {
    return serve(conn, rq, "index.html");
}

enum MHD_Result static_asset(struct MHD_Connection *conn, Request *rq) {
    return serve(conn, rq, rq->tail);
}
