// The static folder's name check: what may be looked up under the page folder.
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "static.h"

static const struct {
    const char *name;
    int ok;
} names[] = {
    // good names
    {"index.html", 1},
    {"app.js", 1},
    {"img/logo.png", 1},
    {"a/b/c/d.txt", 1},
    {"a-b_c.D9", 1},
    {"x", 1},
    {"a..b", 1}, // dots inside a segment are harmless
    {"file.", 1},
    {"v1.2.3/app.min.js", 1},
    // traversal and dot-segments
    {"..", 0},
    {".", 0},
    {"../etc/passwd", 0},
    {"a/../b", 0},
    {"a/..", 0},
    {"./a", 0},
    {"a/./b", 0},
    {".hidden", 0},
    {"a/.git/config", 0},
    // empty segments and absolute paths
    {"", 0},
    {"/", 0},
    {"/etc/passwd", 0},
    {"a//b", 0},
    {"a/", 0},
    {"img/", 0},
    // characters outside [A-Za-z0-9._-]
    {"a\\b", 0},
    {"..\\windows", 0},
    {"a b", 0},
    {"a%2fb", 0},
    {"a?b", 0},
    {"a:b", 0},
    {"~user", 0},
    {"a\x01"
     "b",
     0},
    {"caf\xC3\xA9.html", 0},
    {"x.html%00.js", 0},
};

START_TEST(test_names) {
    for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
        ck_assert_msg(static_name_ok(names[i].name) == names[i].ok, "\"%s\": expected %s",
                      names[i].name, names[i].ok ? "accepted" : "refused");
}
END_TEST

// 200 bytes is the longest name; the limit does not care where the slashes are.
START_TEST(test_long_names) {
    char name[256];
    memset(name, 'a', sizeof(name));
    name[200] = '\0';
    ck_assert_int_eq(static_name_ok(name), 1);
    name[200] = 'a';
    name[201] = '\0';
    ck_assert_int_eq(static_name_ok(name), 0);
    for (int i = 1; i < 200; i += 2) name[i] = '/';
    name[199] = '\0'; // "a/a/.../a": 199 bytes
    ck_assert_int_eq(static_name_ok(name), 1);
    name[199] = '/';
    name[200] = 'a';
    name[201] = '\0';
    ck_assert_int_eq(static_name_ok(name), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("static");
    TCase *tc = tcase_create("names");
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_long_names);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
