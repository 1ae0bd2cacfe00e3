#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "server.h"

// The page loads nothing from anywhere but this server.
#define PAGE_CSP                                                                                   \
    "default-src 'self'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'; "            \
    "object-src 'none'"

#define STATIC_MAX_FILE (8u << 20)

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int has_index(const char *dir) {
    char p[PATH_MAX];
    struct stat st;
    snprintf(p, sizeof(p), "%s/index.html", dir);
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

int static_init(char *err) {
    const char *env = getenv("CHARLM_STATIC_DIR");
    if (env && env[0]) {
        if (!is_dir(env)) return err_set(err, "CHARLM_STATIC_DIR=%s is not a folder", env);
        srv.static_dir = realpath(env, NULL);
        return srv.static_dir ? 0 : err_set(err, "CHARLM_STATIC_DIR=%s: cannot resolve", env);
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    const char *tries[4] = {"static", NULL, NULL, "/usr/share/charlm/static"};
    char from_exe[PATH_MAX + 32], from_prefix[PATH_MAX + 32];
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        snprintf(from_exe, sizeof(from_exe), "%s/../static", exe);
        snprintf(from_prefix, sizeof(from_prefix), "%s/../share/charlm/static", exe);
        tries[1] = from_exe;
        tries[2] = from_prefix;
    }
    for (int i = 0; i < 4; i++) {
        if (!tries[i] || !has_index(tries[i])) continue;
        srv.static_dir = realpath(tries[i], NULL);
        if (srv.static_dir) return 0;
    }
    return 0; // no page installed: the API still works, GET / answers 404
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

// Only plain names: segments of [A-Za-z0-9._-] that do not start with a dot, joined by
// single slashes. That alone rules out "..", absolute paths, backslashes and anything a
// percent-decoding could have produced.
static int name_ok(const char *rel) {
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

enum MHD_Result static_serve(struct MHD_Connection *conn, Request *rq, const char *rel) {
    if (!srv.static_dir)
        return respond_error(conn, rq, MHD_HTTP_NOT_FOUND, "the web page is not installed", NULL);
    if (!name_ok(rel)) return respond_error(conn, rq, MHD_HTTP_NOT_FOUND, "no such file", NULL);
    char path[PATH_MAX];
    snprintf(path, sizeof(path), "%s/%s", srv.static_dir, rel);
    // Symlinks are followed only if they stay inside the folder.
    char *real = realpath(path, NULL);
    size_t dl = strlen(srv.static_dir);
    if (!real || strncmp(real, srv.static_dir, dl) != 0 || real[dl] != '/') {
        free(real);
        return respond_error(conn, rq, MHD_HTTP_NOT_FOUND, "no such file", NULL);
    }
    int fd = open(real, O_RDONLY | O_CLOEXEC);
    free(real);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > STATIC_MAX_FILE) {
        if (fd >= 0) close(fd);
        return respond_error(conn, rq, MHD_HTTP_NOT_FOUND, "no such file", NULL);
    }
    size_t len = (size_t)st.st_size;
    char *data = malloc(len ? len : 1);
    size_t got = 0;
    while (data && got < len) {
        ssize_t r = read(fd, data + got, len - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    close(fd);
    if (!data || got != len) {
        free(data);
        return respond_error(conn, rq, MHD_HTTP_NOT_FOUND, "no such file", NULL);
    }
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
    response_add_common(resp);
    enum MHD_Result r = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    rq->status = 200;
    rq->bytes = len;
    return r;
}
