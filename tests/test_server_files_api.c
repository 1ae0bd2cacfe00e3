/* The Files API over real HTTP (server/files_api.c): uploads of text and JSON lines, list,
 * get, delete; every bad upload's status and reason with nothing left on disk; client
 * filenames that name other paths; the routes absent without --training-dir; keys. */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    {"over --max-upload", NULL, 1001, "big.txt", 413, "--max-upload"},
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
    // A body far past the limit, chunked (no Content-Length to refuse it by): 413.
    size_t huge = 1000 + 65536 + 5000;
    char *h = malloc(huge);
    memset(h, 'a', huge);
    r = http_req(S.port, "POST", "/v1/files", CT, h, huge, 1);
    assert_error(&r, 413, NULL);
    resp_free(&r);
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
    ck_assert_int_eq(srv_stop(&s), 0);
    tu_rmtree(t);
    free(t);
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
