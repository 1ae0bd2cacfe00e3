// The transport's pure parsers: URL percent-decoding and the JSON Content-Type check.
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

static const struct {
    const char *in, *out;
} unescapes[] = {
    {"", ""},
    {"/health", "/health"},
    {"/a%20b", "/a b"},
    {"%41%42%43", "ABC"},
    {"%2e%2E%2f", "../"},
    {"%C3%A9", "\xC3\xA9"},
    {"%0a%7F%ff", "\n\x7F\xFF"},
    {"a+b", "a+b"},                     // no form decoding in paths
    {"/x.html%00.js", "/x.html%00.js"}, // a NUL would cut the path short
    {"%00%41", "%00A"},                 // %00 stays, what follows still decodes
    {"%", "%"},                         // truncated escapes stay as they are
    {"%4", "%4"},
    {"ab%", "ab%"},
    {"%zz", "%zz"},
    {"%4g", "%4g"},
    {"%g4", "%g4"},
    {"%%41", "%A"},
    {"%2541", "%41"},                           // decoded once, not twice
    {"/static/%2e%2e%2fetc", "/static/../etc"}, // decoding is not the place to refuse it
};

START_TEST(test_unescape) {
    for (size_t i = 0; i < sizeof(unescapes) / sizeof(*unescapes); i++) {
        char buf[64];
        strcpy(buf, unescapes[i].in);
        size_t n = http_unescape(buf);
        ck_assert_msg(strcmp(buf, unescapes[i].out) == 0, "\"%s\" decoded to \"%s\", not \"%s\"",
                      unescapes[i].in, buf, unescapes[i].out);
        ck_assert_msg(n == strlen(unescapes[i].out), "\"%s\": length %zu", unescapes[i].in, n);
    }
}
END_TEST

static const struct {
    const char *type;
    int json;
} types[] = {
    {"application/json", 1},
    {"application/json; charset=utf-8", 1},
    {"Application/JSON;charset=UTF-8", 1},
    {"APPLICATION/JSON", 1},
    {"application/json ; q=1", 1},
    {"  application/json", 1},
    {"\tapplication/json\t", 1},
    {"application/json;", 1},
    {NULL, 0}, // no Content-Type at all
    {"", 0},
    {"text/plain", 0},
    {"application/jsonx", 0},
    {"application/json-patch+json", 0},
    {"application/ld+json", 0},
    {"application/jso", 0},
    {"application/x-www-form-urlencoded", 0},
    {"json", 0},
    {"application/json,text/plain", 0},
    {"text/application/json", 0},
};

START_TEST(test_json_type) {
    for (size_t i = 0; i < sizeof(types) / sizeof(*types); i++)
        ck_assert_msg(http_is_json_type(types[i].type) == types[i].json, "\"%s\": expected %s",
                      types[i].type ? types[i].type : "(none)",
                      types[i].json ? "JSON" : "not JSON");
}
END_TEST

int main(void) {
    Suite *s = suite_create("http");
    TCase *tc = tcase_create("parsers");
    tcase_add_test(tc, test_unescape);
    tcase_add_test(tc, test_json_type);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
