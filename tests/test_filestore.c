// server/filestore: what counts as a training text (a table of contents and reasons), and
// the store on disk: ids, objects, listing, deleting, and nothing named by the client.
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "filestore.h"
#include "testutil.h"

static const struct {
    const char *what;
    const char *data;
    size_t len;           // 0: strlen(data)
    const char *filename; // may be NULL
    const char *reason;   // a part of the reason; NULL: accepted
} checks[] = {
    {"plain text", "To be, or not to be\n", 0, "a.txt", NULL},
    {"UTF-8 text", "caf\xc3\xa9 \xe2\x82\xac\n", 0, "a.txt", NULL},
    {"text with no name", "hello", 0, NULL, NULL},
    {"JSON lines", "{\"text\": \"one\"}\n\n{\"text\": \"two\", \"x\": 1}\n", 0, "d.jsonl", NULL},
    {"JSON lines found by their first byte", "  {\"text\": \"a\"}\r\n", 0, "data.txt", NULL},
    {"empty", "", 0, "a.txt", "empty"},
    {"a NUL byte", "ab\0cd", 5, "a.txt", "NUL byte (at byte 2)"},
    {"invalid UTF-8", "ok \xff no", 0, "a.txt", "not UTF-8 text (an invalid byte at byte 3)"},
    {"an overlong form", "\xc0\xaf", 0, "a.txt", "not UTF-8"},
    {"a JSON line without text", "{\"text\": \"a\"}\n{\"t\": \"b\"}\n", 0, "d.jsonl", "line 2"},
    {"text not a string", "{\"text\": 5}\n", 0, "d.jsonl", "line 1"},
    {"a line that is no JSON", "{\"text\": \"a\"}\nplain\n", 0, "x.txt", "line 2"},
    {"a .jsonl of plain text", "hello\n", 0, "d.jsonl", "line 1"},
    {"a .jsonl of blank lines", "\n  \n", 0, "d.jsonl", "no JSON line"},
};

START_TEST(test_check) {
    for (size_t i = 0; i < sizeof(checks) / sizeof(*checks); i++) {
        char why[256] = "";
        size_t len = checks[i].len ? checks[i].len : strlen(checks[i].data);
        int rc = filestore_check(checks[i].data, len, checks[i].filename, why, sizeof(why));
        if (!checks[i].reason) {
            ck_assert_msg(rc == 0, "%s: refused: %s", checks[i].what, why);
            continue;
        }
        ck_assert_msg(rc == -1, "%s: accepted", checks[i].what);
        ck_assert_msg(strstr(why, checks[i].reason), "%s: reason \"%s\", expected \"%s\"",
                      checks[i].what, why, checks[i].reason);
    }
}
END_TEST

START_TEST(test_ids) {
    ck_assert(filestore_id_ok("file-0123456789abcdef01234567"));
    ck_assert(!filestore_id_ok("file-0123456789abcdef0123456"));   // short
    ck_assert(!filestore_id_ok("file-0123456789abcdef012345678")); // long
    ck_assert(!filestore_id_ok("file-0123456789ABCDEF01234567"));
    ck_assert(!filestore_id_ok("file-../../../../etc/passwd0000"));
    ck_assert(!filestore_id_ok("../file-0123456789abcdef01234567"));
    ck_assert(!filestore_id_ok(""));
    ck_assert(!filestore_id_ok(NULL));
}
END_TEST

// The names in dir, sorted and joined by spaces.
static void listing(const char *dir, char *out, size_t cap) {
    struct dirent **names;
    int n = scandir(dir, &names, NULL, alphasort);
    ck_assert_int_ge(n, 0);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        if (strcmp(name, ".") != 0 && strcmp(name, "..") != 0) {
            size_t at = strlen(out);
            snprintf(out + at, cap - at, "%s%s", at ? " " : "", name);
        }
        free(names[i]);
    }
    free(names);
}

START_TEST(test_store) {
    char *root = tu_tmpdir(), err[ERR_LEN], dir[4096], files[4096], names[4096];
    snprintf(dir, sizeof(dir), "%s/train", root);
    snprintf(files, sizeof(files), "%s/files", dir);
    ck_assert_msg(filestore_init(dir, err) == 0, "%s", err);
    cJSON *a = filestore_add("first", 5, "../../x", "fine-tune", err);
    ck_assert_msg(a != NULL, "%s", err);
    cJSON *b = filestore_add("second!", 7, "/etc/passwd", "fine-tune", err);
    ck_assert_msg(b != NULL, "%s", err);
    const char *ida = cJSON_GetStringValue(cJSON_GetObjectItem(a, "id"));
    const char *idb = cJSON_GetStringValue(cJSON_GetObjectItem(b, "id"));
    ck_assert(filestore_id_ok(ida) && filestore_id_ok(idb) && strcmp(ida, idb) != 0);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(a, "filename")), "../../x");
    ck_assert_double_eq(cJSON_GetNumberValue(cJSON_GetObjectItem(b, "bytes")), 7);
    // Only the ids' files, inside the folder: nothing named by the client, nowhere else.
    char want[512];
    snprintf(want, sizeof(want), "%s %s.json %s %s.json", strcmp(ida, idb) < 0 ? ida : idb,
             strcmp(ida, idb) < 0 ? ida : idb, strcmp(ida, idb) < 0 ? idb : ida,
             strcmp(ida, idb) < 0 ? idb : ida);
    listing(files, names, sizeof(names));
    ck_assert_str_eq(names, want);
    listing(dir, names, sizeof(names));
    ck_assert_str_eq(names, "files");
    listing(root, names, sizeof(names));
    ck_assert_str_eq(names, "train");
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", files, ida);
    size_t len;
    char *content = tu_read_file(path, &len);
    ck_assert(content && len == 5 && memcmp(content, "first", 5) == 0);
    free(content);

    cJSON *got = filestore_get(ida);
    ck_assert(cJSON_Compare(got, a, 1));
    cJSON_Delete(got);
    cJSON *list = filestore_list();
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(list, "data")), 2);
    cJSON_Delete(list);

    ck_assert_int_eq(filestore_delete(ida), 0);
    ck_assert_int_eq(filestore_delete(ida), -1);
    ck_assert_ptr_null(filestore_get(ida));
    ck_assert_int_eq(filestore_delete("../train"), -1);
    list = filestore_list();
    cJSON *data = cJSON_GetObjectItem(list, "data");
    ck_assert_int_eq(cJSON_GetArraySize(data), 1);
    ck_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetArrayItem(data, 0), "id")),
                     idb);
    cJSON_Delete(list);
    snprintf(want, sizeof(want), "%s %s.json", idb, idb);
    listing(files, names, sizeof(names));
    ck_assert_str_eq(names, want);
    cJSON_Delete(a);
    cJSON_Delete(b);
    tu_rmtree(root);
    free(root);
}
END_TEST

int main(void) {
    Suite *s = suite_create("filestore");
    TCase *tc = tcase_create("filestore");
    tcase_add_test(tc, test_check);
    tcase_add_test(tc, test_ids);
    tcase_add_test(tc, test_store);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
