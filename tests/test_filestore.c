// server/filestore: the store on disk: uploads written to a temp file in pieces and renamed,
// ids, objects, listing, deleting, nothing named by the client, and no temp file left.
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "filestore.h"
#include "testutil.h"

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

// An upload of len bytes in two pieces, committed.
static cJSON *store(const char *data, size_t len, const char *filename, char *err) {
    FileUpload u;
    if (filestore_begin(&u, err)) return NULL;
    if (filestore_append(&u, data, len / 2, err) ||
        filestore_append(&u, data + len / 2, len - len / 2, err)) {
        filestore_abort(&u);
        return NULL;
    }
    return filestore_commit(&u, filename, "fine-tune", err);
}

START_TEST(test_store) {
    char *root = tu_tmpdir(), err[ERR_LEN], dir[4096], files[4096], names[4096];
    snprintf(dir, sizeof(dir), "%s/train", root);
    snprintf(files, sizeof(files), "%s/files", dir);
    ck_assert_msg(filestore_init(dir, err) == 0, "%s", err);
    cJSON *a = store("first", 5, "../../x", err);
    ck_assert_msg(a != NULL, "%s", err);
    cJSON *b = store("second!", 7, "/etc/passwd", err);
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

// An upload is a temp file until committed: an abort removes it, and one a crash left
// behind is removed by the next start (filestore_init).
START_TEST(test_temp_files) {
    char *root = tu_tmpdir(), err[ERR_LEN], files[4096], names[4096];
    snprintf(files, sizeof(files), "%s/files", root);
    ck_assert_msg(filestore_init(root, err) == 0, "%s", err);
    FileUpload u;
    ck_assert_msg(filestore_begin(&u, err) == 0, "%s", err);
    ck_assert_int_eq(filestore_append(&u, "abc", 3, err), 0);
    listing(files, names, sizeof(names));
    ck_assert_msg(strncmp(names, ".upload-", 8) == 0 && !strchr(names, ' '), "%s", names);
    cJSON *list = filestore_list();
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(list, "data")), 0);
    cJSON_Delete(list);
    filestore_abort(&u);
    listing(files, names, sizeof(names));
    ck_assert_str_eq(names, "");
    filestore_abort(&u); // twice is harmless

    ck_assert_msg(filestore_begin(&u, err) == 0, "%s", err);
    ck_assert_int_eq(filestore_append(&u, "abc", 3, err), 0);
    close(u.fd); // the process dies here
    free(u.tmp);
    ck_assert_msg(filestore_init(root, err) == 0, "%s", err);
    listing(files, names, sizeof(names));
    ck_assert_str_eq(names, "");
    tu_rmtree(root);
    free(root);
}
END_TEST

int main(void) {
    Suite *s = suite_create("filestore");
    TCase *tc = tcase_create("filestore");
    tcase_add_test(tc, test_ids);
    tcase_add_test(tc, test_store);
    tcase_add_test(tc, test_temp_files);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
