/* The Files API over real HTTP (server/files_api.c): uploads of text and JSON lines, list,
 * get, delete; every bad upload's status and reason with nothing left on disk; client
 * filenames that name other paths; the routes absent without --training-dir; keys. And the
 * streaming of uploads: a large one stored byte-identical without the server's memory
 * growing by its size, --max-uploads, a client that leaves mid-body or a refusal mid-body
 * leaving no temp file, and bad UTF-8 found at its offset however the body is cut. */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server_harness.h"
#include "testutil.h"

#define KEY "files-k3y"
#define CT  "multipart/form-data; boundary=XyZ"

static char *tdir; // the --training-dir of the test's server

static void suite_setup(void) {
    suite_model_make(2000, 8, 16, 1, 5);
}

static void suite_teardown(void) {
    suite_model_remove();
}

static void start_files(void) {
    char *t = tu_tmpdir();
    tdir = malloc(strlen(t) + 8);
    sprintf(tdir, "%s/train", t);
    free(t);
    const char *args[] = {"--training-dir", tdir, "--max-upload", "1000", NULL};
    ck_assert_int_eq(srv_start(&S, model_dir, args), 0);
}

static void stop_files(void) {
    ck_assert_int_eq(srv_stop(&S), 0);
    char *parent = strdup(tdir);
    *strrchr(parent, '/') = '\0';
    tu_rmtree(parent);
    free(parent);
    free(tdir);
}

// A form with a purpose (NULL: none) and a file part (filename NULL: no file part);
// malloc'd, its length in *len.
static char *form(const char *purpose, const char *filename, const char *data, size_t dlen,
                  size_t *len) {
    size_t cap = dlen + 1024;
    char *b = malloc(cap);
    size_t n = 0;
    if (purpose)
        n += (size_t)snprintf(b + n, cap - n,
                              "--XyZ\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\n"
                              "%s\r\n",
                              purpose);
    if (filename) {
        n += (size_t)snprintf(b + n, cap - n,
                              "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; "
                              "filename=\"%s\"\r\nContent-Type: text/plain\r\n\r\n",
                              filename);
        memcpy(b + n, data, dlen);
        n += dlen;
        n += (size_t)snprintf(b + n, cap - n, "\r\n");
    }
    n += (size_t)snprintf(b + n, cap - n, "--XyZ--\r\n");
    *len = n;
    return b;
}

static Resp upload(const char *filename, const char *data, size_t dlen) {
    size_t len;
    char *b = form("fine-tune", filename, data, dlen, &len);
    Resp r = http_req(S.port, "POST", "/v1/files", CT, b, len, 0);
    free(b);
    return r;
}

// How many names <tdir>/files holds, temp names included.
static int stored(void) {
    char files[4200];
    snprintf(files, sizeof(files), "%s/files", tdir);
    DIR *d = opendir(files);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

START_TEST(test_upload_list_get_delete) {
    const char *text = "To be, or not to be: that is the question.\n";
    Resp r = upload("hamlet.txt", text, strlen(text));
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    cJSON *f = resp_json(&r);
    char id[64];
    snprintf(id, sizeof(id), "%s", json_str(f, "id"));
    ck_assert(strncmp(id, "file-", 5) == 0 && strlen(id) == 29);
    ck_assert_str_eq(json_str(f, "object"), "file");
    ck_assert_str_eq(json_str(f, "filename"), "hamlet.txt");
    ck_assert_str_eq(json_str(f, "purpose"), "fine-tune");
    ck_assert_double_eq(json_num(f, "bytes"), (double)strlen(text));
    ck_assert(json_num(f, "created_at") > 1.7e9);
    resp_free(&r);
    // The content on disk is the upload's, under the id.
    char path[4200];
    snprintf(path, sizeof(path), "%s/files/%s", tdir, id);
    size_t len;
    char *disk = tu_read_file(path, &len);
    ck_assert(disk && len == strlen(text) && memcmp(disk, text, len) == 0);
    free(disk);

    const char *jsonl = "{\"text\": \"one\"}\n{\"text\": \"two\"}\n";
    r = upload("d.jsonl", jsonl, strlen(jsonl));
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    cJSON *g = resp_json(&r);
    resp_free(&r);

    r = http_get(S.port, "/v1/files");
    ck_assert_int_eq(r.status, 200);
    cJSON *list = resp_json(&r);
    ck_assert_str_eq(json_str(list, "object"), "list");
    cJSON *data = cJSON_GetObjectItem(list, "data");
    ck_assert_int_eq(cJSON_GetArraySize(data), 2);
    int seen = 0;
    cJSON *it;
    cJSON_ArrayForEach(it, data) seen += cJSON_Compare(it, f, 1) + 2 * cJSON_Compare(it, g, 1);
    ck_assert_int_eq(seen, 3);
    cJSON_Delete(list);
    resp_free(&r);

    char url[128];
    snprintf(url, sizeof(url), "/v1/files/%s", id);
    r = http_get(S.port, url);
    ck_assert_int_eq(r.status, 200);
    cJSON *one = resp_json(&r);
    ck_assert(cJSON_Compare(one, f, 1));
    cJSON_Delete(one);
    resp_free(&r);

    r = http_req(S.port, "DELETE", url, NULL, NULL, 0, 0);
    ck_assert_int_eq(r.status, 200);
    cJSON *del = resp_json(&r);
    ck_assert_str_eq(json_str(del, "id"), id);
    ck_assert(cJSON_IsTrue(cJSON_GetObjectItem(del, "deleted")));
    cJSON_Delete(del);
    resp_free(&r);
    r = http_get(S.port, url);
    assert_error(&r, 404, NULL);
    resp_free(&r);
    r = http_req(S.port, "DELETE", url, NULL, NULL, 0, 0);
    assert_error(&r, 404, NULL);
    resp_free(&r);
    ck_assert_int_eq(stored(), 2); // the JSONL file and its object
    cJSON_Delete(f);
    cJSON_Delete(g);
}
END_TEST

static const struct {
    const char *what, *data;
    size_t len; // 0: strlen
    const char *filename;
    int status;
    const char *reason;
} bad[] = {
    {"empty", "", 0, "a.txt", 400, "empty"},
    {"binary",
     "\x7f"
     "ELF\x02\x01\x01\0\0\0",
     10, "a.bin", 400, "NUL byte"},
    {"invalid UTF-8", "caf\xe9 au lait", 0, "a.txt", 400, "not UTF-8"},
    {"a JSON line without text", "{\"text\": \"a\"}\n{\"b\": 1}\n", 0, "d.jsonl", 400, "line 2"},
    {"over --max-upload", NULL, 1001, "big.txt", 400, "--max-upload"},
};

START_TEST(test_bad_uploads) {
    char big[1001];
    memset(big, 'a', sizeof(big));
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        const char *data = bad[i].data ? bad[i].data : big;
        Resp r = upload(bad[i].filename, data, bad[i].len ? bad[i].len : strlen(data));
        ck_assert_msg(r.status == bad[i].status, "%s: %ld %s", bad[i].what, r.status, r.body);
        assert_error(&r, bad[i].status, "file");
        ck_assert_msg(strstr(r.body, bad[i].reason), "%s: %s", bad[i].what, r.body);
        resp_free(&r);
    }
    // Exactly --max-upload is taken.
    Resp r = upload("edge.txt", big, 1000);
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    ck_assert_int_eq(stored(), 2);

    size_t len;
    char *b = form("assistants", "a.txt", "hi", 2, &len);
    r = http_req(S.port, "POST", "/v1/files", CT, b, len, 0);
    assert_error(&r, 400, "purpose");
    resp_free(&r);
    free(b);
    b = form(NULL, "a.txt", "hi", 2, &len);
    r = http_req(S.port, "POST", "/v1/files", CT, b, len, 0);
    assert_error(&r, 400, "purpose");
    resp_free(&r);
    free(b);
    b = form("fine-tune", NULL, NULL, 0, &len);
    r = http_req(S.port, "POST", "/v1/files", CT, b, len, 0);
    assert_error(&r, 400, "file");
    resp_free(&r);
    free(b);
    r = http_req(S.port, "POST", "/v1/files", CT, "--XyZ\r\nno end", 13, 0);
    assert_error(&r, 400, NULL);
    resp_free(&r);
    r = http_req(S.port, "POST", "/v1/files", "multipart/form-data", "x", 1, 0);
    assert_error(&r, 400, NULL);
    ck_assert(strstr(r.body, "boundary"));
    resp_free(&r);
    r = http_req(S.port, "POST", "/v1/files", "application/json", "{}", 2, 0);
    assert_error(&r, 415, NULL);
    resp_free(&r);
    // A body far past the limit is the same 400 whether it is chunked (no Content-Length
    // to refuse it by) or says its length up front (refused before it is read).
    size_t huge = 1000 + 65536 + 5000;
    char *h = malloc(huge);
    memset(h, 'a', huge);
    for (int chunked = 0; chunked < 2; chunked++) {
        r = http_req(S.port, "POST", "/v1/files", CT, h, huge, chunked);
        assert_error(&r, 400, "file");
        ck_assert_msg(strstr(r.body, "larger than --max-upload, 1000 bytes"), "%s", r.body);
        resp_free(&r);
    }
    free(h);
    ck_assert_int_eq(stored(), 2);
}
END_TEST

START_TEST(test_traversal_names) {
    const char *names[] = {"../../x", "/etc/passwd", "..", "a/../../../y", "..\\\\..\\\\z"};
    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
        Resp r = upload(names[i], "text\n", 5);
        ck_assert_msg(r.status == 200, "%s: %ld %s", names[i], r.status, r.body);
        cJSON *f = resp_json(&r);
        ck_assert(strncmp(json_str(f, "id"), "file-", 5) == 0);
        cJSON_Delete(f);
        resp_free(&r);
    }
    ck_assert_int_eq(stored(), 10);
    // Nothing beside files/ (and the jobs' empty folders) in the training dir, nor beside
    // it in its parent.
    char *parent = strdup(tdir);
    *strrchr(parent, '/') = '\0';
    const char *dirs[] = {tdir, parent};
    for (int k = 0; k < 2; k++) {
        DIR *d = opendir(dirs[k]);
        struct dirent *e;
        int n = 0;
        while ((e = readdir(d)))
            if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
                if (k)
                    ck_assert_str_eq(e->d_name, "train");
                else
                    ck_assert_msg(strcmp(e->d_name, "files") == 0 ||
                                      strcmp(e->d_name, "jobs") == 0 ||
                                      strcmp(e->d_name, "models") == 0,
                                  "%s in the training dir", e->d_name);
                n++;
            }
        closedir(d);
        ck_assert_int_eq(n, k ? 1 : 3);
    }
    free(parent);
    // Ids that name other paths are not ids.
    const char *urls[] = {"/v1/files/..%2F..%2Fx", "/v1/files/../files", "/v1/files/",
                          "/v1/files/file-%2E%2E"};
    for (size_t i = 0; i < sizeof(urls) / sizeof(*urls); i++) {
        Resp r = http_get(S.port, urls[i]);
        ck_assert_msg(r.status == 404, "%s: %ld", urls[i], r.status);
        resp_free(&r);
        r = http_req(S.port, "DELETE", urls[i], NULL, NULL, 0, 0);
        ck_assert_msg(r.status == 404, "DELETE %s: %ld", urls[i], r.status);
        resp_free(&r);
    }
    ck_assert_int_eq(stored(), 10);
}
END_TEST

// Without --training-dir the routes are unknown paths, even with a key required.
START_TEST(test_off_by_default) {
    const char *args[][3] = {{NULL}, {"--api-key", KEY, NULL}};
    for (int k = 0; k < 2; k++) {
        Srv s;
        ck_assert_int_eq(srv_start(&s, model_dir, k ? args[k] : NULL), 0);
        const char *auth[] = {"Authorization: Bearer " KEY, NULL};
        size_t len;
        char *b = form("fine-tune", "a.txt", "hi", 2, &len);
        Resp r[4] = {
            http_req_headers(s.port, "GET", "/v1/files", NULL, NULL, 0, 0, auth),
            http_req_headers(s.port, "POST", "/v1/files", CT, b, len, 0, auth),
            http_req_headers(s.port, "GET", "/v1/files/file-0123456789abcdef01234567", NULL, NULL,
                             0, 0, auth),
            http_req_headers(s.port, "DELETE", "/v1/files/file-0123456789abcdef01234567", NULL,
                             NULL, 0, 0, auth),
        };
        free(b);
        for (int i = 0; i < 4; i++) {
            assert_error(&r[i], 404, NULL);
            ck_assert(strstr(r[i].body, "no such endpoint"));
            resp_free(&r[i]);
        }
        ck_assert_int_eq(srv_stop(&s), 0);
    }
}
END_TEST

START_TEST(test_keys) {
    char *t = tu_tmpdir();
    const char *args[] = {"--training-dir", t, "--api-key", KEY, NULL};
    Srv s;
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
    size_t len;
    char *b = form("fine-tune", "a.txt", "hi", 2, &len);
    Resp r = http_req(s.port, "POST", "/v1/files", CT, b, len, 0);
    assert_error(&r, 401, NULL);
    resp_free(&r);
    r = http_get(s.port, "/v1/files");
    assert_error(&r, 401, NULL);
    resp_free(&r);
    r = http_req(s.port, "DELETE", "/v1/files/file-0123456789abcdef01234567", NULL, NULL, 0, 0);
    assert_error(&r, 401, NULL);
    resp_free(&r);
    const char *wrong[] = {"Authorization: Bearer nope", NULL};
    r = http_req_headers(s.port, "GET", "/v1/files", NULL, NULL, 0, 0, wrong);
    assert_error(&r, 401, NULL);
    resp_free(&r);
    const char *auth[] = {"Authorization: Bearer " KEY, NULL};
    r = http_req_headers(s.port, "POST", "/v1/files", CT, b, len, 0, auth);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    resp_free(&r);
    r = http_req_headers(s.port, "GET", "/v1/files", NULL, NULL, 0, 0, auth);
    ck_assert_int_eq(r.status, 200);
    cJSON *list = resp_json(&r);
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(list, "data")), 1);
    cJSON_Delete(list);
    resp_free(&r);
    free(b);

    // An upload refused by its headers is answered once its body is in, not while the
    // client still sends it (which would then meet a reset connection): nothing comes
    // back before the body, then the 401.
    char head[256];
    snprintf(head, sizeof(head),
             "POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\n"
             "Content-Length: 5000\r\n\r\n",
             CT);
    int fd = raw_send(s.port, head);
    sleep_ms(200);
    char reply[4096];
    ck_assert_int_eq(recv(fd, reply, sizeof(reply), MSG_DONTWAIT), -1);
    char *body = malloc(5000);
    memset(body, 'a', 5000);
    ck_assert_int_eq(send(fd, body, 5000, 0), 5000);
    free(body);
    ssize_t got = recv(fd, reply, sizeof(reply) - 1, 0);
    ck_assert_int_gt(got, 0);
    reply[got] = '\0';
    ck_assert_msg(strncmp(reply, "HTTP/1.1 401", 12) == 0, "%s", reply);
    close(fd);
    ck_assert_int_eq(srv_stop(&s), 0);
    tu_rmtree(t);
    free(t);
}
END_TEST

// The streaming suite's server: uploads up to 16 MiB, two at a time.
static void start_stream(void) {
    char *t = tu_tmpdir();
    tdir = malloc(strlen(t) + 8);
    sprintf(tdir, "%s/train", t);
    free(t);
    const char *args[] = {
        "--training-dir", tdir, "--max-upload", "16777216", "--max-uploads", "2", NULL};
    ck_assert_int_eq(srv_start(&S, model_dir, args), 0);
}

// A kB value of /proc/<pid>/status ("VmHWM", "VmRSS").
static long proc_kb(pid_t pid, const char *key) {
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    ck_assert_ptr_nonnull(f);
    long kb = -1;
    size_t k = strlen(key);
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, key, k) == 0 && line[k] == ':') kb = strtol(line + k + 1, NULL, 10);
    fclose(f);
    ck_assert_int_ge(kb, 0);
    return kb;
}

// n bytes of text: "€" (3 bytes) and ASCII in a pattern, so that pieces of any size cut
// characters, ending with a newline.
static char *euro_text(size_t n) {
    char *t = malloc(n);
    ck_assert_ptr_nonnull(t);
    size_t groups = n > 4 ? (n - 4) / 4 : 0;
    for (size_t i = 0; i < groups * 4; i += 4)
        memcpy(t + i,
               i % 7 ? "\xe2\x82\xac"
                       "a"
                     : "b\xe2\x82\xac",
               4);
    memset(t + groups * 4, 'z', n - groups * 4);
    t[n - 1] = '\n';
    return t;
}

// The names of <tdir>/files that are temp files (".upload-...").
static int temps(void) {
    char files[4200];
    snprintf(files, sizeof(files), "%s/files", tdir);
    DIR *d = opendir(files);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) n += strncmp(e->d_name, ".upload-", 8) == 0;
    closedir(d);
    return n;
}

// Waits up to 5 s for temps() to be want; returns it then.
static int temps_become(int want) {
    for (int waited = 0; temps() != want && waited < 5000; waited += 10) sleep_ms(10);
    return temps();
}

// A raw upload whose head and the file part's headers are sent, with Content-Length saying
// `total` bytes more are to come than those; the socket.
static int raw_upload(size_t total) {
    static const char part[] = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; "
                               "filename=\"a.txt\"\r\n\r\n";
    char req[512];
    snprintf(req, sizeof(req),
             "POST /v1/files HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " CT
             "\r\nContent-Length: %zu\r\n\r\n%s",
             sizeof(part) - 1 + total, part);
    return raw_send(S.port, req);
}

static void send_all(int fd, const char *data, size_t n) {
    while (n) {
        ssize_t k = send(fd, data, n, MSG_NOSIGNAL);
        ck_assert_int_gt(k, 0);
        data += k;
        n -= (size_t)k;
    }
}

// 8 MiB stored byte-identical, in pieces, while the server's peak resident size grows by
// far less than the file.
START_TEST(test_large_upload) {
    size_t n = 8u << 20;
    char *text = euro_text(n);
    long hwm0 = proc_kb(S.pid, "VmHWM");
    Resp r = upload("big.txt", text, n);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    cJSON *o = resp_json(&r);
    ck_assert_double_eq(json_num(o, "bytes"), (double)n);
    char path[4300];
    snprintf(path, sizeof(path), "%s/files/%s", tdir, json_str(o, "id"));
    size_t len;
    char *got = tu_read_file(path, &len);
    ck_assert(got && len == n && memcmp(got, text, n) == 0);
    free(got);
    cJSON_Delete(o);
    resp_free(&r);
    long grew = proc_kb(S.pid, "VmHWM") - hwm0;
    ck_assert_msg(grew < 2048, "the server's peak RSS grew by %ld kB for an 8 MiB upload", grew);
    ck_assert_int_eq(temps(), 0);
    free(text);
}
END_TEST

// --max-uploads 2: a third upload while two are in progress is a 503 with Retry-After,
// before its body is read; once one of them leaves, its temp file goes and uploads work.
START_TEST(test_upload_limit) {
    int a = raw_upload(1000000), b = raw_upload(1000000);
    send_all(a, "hello ", 6);
    send_all(b, "hello ", 6);
    ck_assert_int_eq(temps_become(2), 2);
    Resp r = upload("c.txt", "hi\n", 3);
    assert_error(&r, 503, NULL);
    ck_assert_msg(strstr(r.body, "--max-uploads"), "%s", r.body);
    char *retry = resp_header(&r, "Retry-After");
    ck_assert_ptr_nonnull(retry);
    free(retry);
    resp_free(&r);
    close(a); // abandoned mid-body
    ck_assert_int_eq(temps_become(1), 1);
    r = upload("c.txt", "hi\n", 3);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    resp_free(&r);
    close(b);
    ck_assert_int_eq(temps_become(0), 0);
    ck_assert_int_eq(stored(), 2); // c.txt and its object
}
END_TEST

// A refusal mid-body (bad UTF-8 after 1 MB) removes the temp file while the rest of the body
// is still to come; the reply, once it has come, is the 400 with the offset.
START_TEST(test_refused_mid_body) {
    size_t head = 1u << 20, rest = 1u << 20;
    char *text = euro_text(head + rest);
    int fd = raw_upload(head + rest + strlen("\r\n--XyZ--\r\n"));
    send_all(fd, text, head);
    ck_assert_int_eq(temps_become(1), 1);
    send_all(fd, "\xff", 1);
    ck_assert_int_eq(temps_become(0), 0);
    send_all(fd, text + head + 1, rest - 1);
    send_all(fd, "\r\n--XyZ--\r\n", 11);
    char reply[2048];
    size_t got = 0;
    ssize_t k;
    while (got < sizeof(reply) - 1 && (k = recv(fd, reply + got, sizeof(reply) - 1 - got, 0)) > 0) {
        got += (size_t)k;
        reply[got] = '\0';
        if (strstr(reply, "}}")) break;
    }
    reply[got] = '\0';
    close(fd);
    ck_assert_msg(strncmp(reply, "HTTP/1.1 400", 12) == 0, "%s", reply);
    char want[64];
    snprintf(want, sizeof(want), "an invalid byte at byte %zu", head);
    ck_assert_msg(strstr(reply, want), "%s", reply);
    ck_assert_int_eq(stored(), 0);
    free(text);
}
END_TEST

// Sent chunked in 1000-byte pieces (the harness's), so that characters of 3 bytes straddle
// the pieces the server gets: a valid text is taken, and a bad byte is named at its offset.
START_TEST(test_utf8_across_pieces) {
    size_t n = 300000;
    char *text = euro_text(n);
    Resp r;
    size_t len;
    char *b = form("fine-tune", "e.txt", text, n, &len);
    r = http_req(S.port, "POST", "/v1/files", CT, b, len, 1);
    ck_assert_msg(r.status == 200, "%ld %s", r.status, r.body);
    resp_free(&r);
    free(b);
    // The first € from byte 200000 on loses its last byte to an ASCII one.
    size_t at = 200000;
    while (text[at] != '\xe2') at++;
    text[at + 2] = 'x';
    char want[64];
    snprintf(want, sizeof(want), "an invalid byte at byte %zu", at);
    b = form("fine-tune", "e.txt", text, n, &len);
    r = http_req(S.port, "POST", "/v1/files", CT, b, len, 1);
    assert_error(&r, 400, "file");
    ck_assert_msg(strstr(r.body, want), "%s", r.body);
    resp_free(&r);
    free(b);
    free(text);
    ck_assert_int_eq(temps(), 0);
    ck_assert_int_eq(stored(), 2);
}
END_TEST

int main(void) {
    Suite *s = suite_create("server_files_api");
    TCase *tc = tcase_create("files");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_checked_fixture(tc, start_files, stop_files);
    tcase_add_test(tc, test_upload_list_get_delete);
    tcase_add_test(tc, test_bad_uploads);
    tcase_add_test(tc, test_traversal_names);
    suite_add_tcase(s, tc);
    TCase *st = tcase_create("streaming");
    tcase_add_unchecked_fixture(st, suite_setup, suite_teardown);
    tcase_add_checked_fixture(st, start_stream, stop_files);
    tcase_add_test(st, test_large_upload);
    tcase_add_test(st, test_upload_limit);
    tcase_add_test(st, test_refused_mid_body);
    tcase_add_test(st, test_utf8_across_pieces);
    tcase_set_timeout(st, 30);
    suite_add_tcase(s, st);
    TCase *other = tcase_create("flags");
    tcase_add_unchecked_fixture(other, suite_setup, suite_teardown);
    tcase_add_test(other, test_off_by_default);
    tcase_add_test(other, test_keys);
    suite_add_tcase(s, other);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
