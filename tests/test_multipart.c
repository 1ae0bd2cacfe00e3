// server/multipart: the boundary from a Content-Type, and bodies split into parts, each
// case a row: what it should give, or that it is refused.
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multipart.h"

static const struct {
    const char *ct;
    const char *boundary; // NULL: refused
} boundaries[] = {
    {"multipart/form-data; boundary=abc", "abc"},
    {"Multipart/Form-Data; BOUNDARY=abc", "abc"},
    {"multipart/form-data; charset=utf-8; boundary=\"a b;c\"", "a b;c"},
    {"  multipart/form-data ;boundary=x-1", "x-1"},
    {"multipart/form-data; boundary=------------------------d74496d66958873e",
     "------------------------d74496d66958873e"},
    {"multipart/form-data", NULL},
    {"multipart/form-data; boundary=", NULL},
    {"multipart/form-data; boundary=\"\"", NULL},
    {"multipart/form-data; boundary=\"abc", NULL},
    {"multipart/mixed; boundary=abc", NULL},
    {"application/json", NULL},
    {"multipart/form-data; "
     "boundary=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     NULL}, // 71 chars
    {NULL, NULL},
};

START_TEST(test_boundary) {
    for (size_t i = 0; i < sizeof(boundaries) / sizeof(*boundaries); i++) {
        char out[MULTIPART_BOUNDARY_MAX + 1];
        int rc = multipart_boundary(boundaries[i].ct, out, sizeof(out));
        if (!boundaries[i].boundary) {
            ck_assert_msg(rc == -1, "\"%s\": accepted as \"%s\"", boundaries[i].ct, out);
            continue;
        }
        ck_assert_msg(rc == 0, "\"%s\": refused", boundaries[i].ct);
        ck_assert_str_eq(out, boundaries[i].boundary);
    }
}
END_TEST

#define CD "Content-Disposition: form-data; "
// Each part expected as "name|filename|data" (filename "-" for none), joined by '\n'.
static const struct {
    const char *what, *body;
    const char *parts; // NULL: refused
} bodies[] = {
    {"file and purpose",
     "--B\r\n" CD "name=\"purpose\"\r\n\r\nfine-tune\r\n--B\r\n" CD
     "name=\"file\"; filename=\"a.txt\"\r\nContent-Type: "
     "text/plain\r\n\r\nhello\r\nworld\r\n--B--\r\n",
     "purpose|-|fine-tune\nfile|a.txt|hello\r\nworld"},
    {"preamble and epilogue", "junk\r\n--B\r\n" CD "name=x\r\n\r\n1\r\n--B--\r\nafter", "x|-|1"},
    {"empty data", "--B\r\n" CD "name=\"f\"; filename=\"\"\r\n\r\n\r\n--B--", "f||"},
    {"data holding the boundary without CRLF before it",
     "--B\r\n" CD "name=\"f\"\r\n\r\nx--B y\r\n--B--", "f|-|x--B y"},
    {"a traversal filename is kept as bytes",
     "--B\r\n" CD "name=\"file\"; filename=\"../../x\"\r\n\r\nt\r\n--B--", "file|../../x|t"},
    {"header names in any case", "--B\r\ncontent-disposition: form-data; name=a\r\n\r\nv\r\n--B--",
     "a|-|v"},
    {"padding after a delimiter", "--B  \r\n" CD "name=a\r\n\r\nv\r\n--B--", "a|-|v"},
    {"NUL bytes in data are data", "--B\r\n" CD "name=a\r\n\r\n\x01\r\n--B--", "a|-|\x01"},
    {"no boundary", "hello", NULL},
    {"no closing delimiter", "--B\r\n" CD "name=a\r\n\r\nv", NULL},
    {"cut inside the headers", "--B\r\n" CD "name=a\r\n", NULL},
    {"no Content-Disposition", "--B\r\nContent-Type: text/plain\r\n\r\nv\r\n--B--", NULL},
    {"no headers at all", "--B\r\n\r\nv\r\n--B--", NULL},
    {"not form-data", "--B\r\nContent-Disposition: attachment; name=a\r\n\r\nv\r\n--B--", NULL},
    {"form-data without a name", "--B\r\n" CD "filename=a\r\n\r\nv\r\n--B--", NULL},
    {"unterminated quote", "--B\r\n" CD "name=\"a\r\n\r\nv\r\n--B--", NULL},
    {"garbage after a delimiter", "--Bx\r\n" CD "name=a\r\n\r\nv\r\n--B--", NULL},
    {"empty body", "", NULL},
    {"too many parts",
     "--B\r\n" CD "name=a\r\n\r\n1\r\n--B\r\n" CD "name=b\r\n\r\n2\r\n--B\r\n" CD
     "name=c\r\n\r\n3\r\n--B\r\n" CD "name=d\r\n\r\n4\r\n--B--",
     NULL},
};

START_TEST(test_parse) {
    for (size_t i = 0; i < sizeof(bodies) / sizeof(*bodies); i++) {
        MultipartPart parts[3];
        int n = -1;
        const char *why = NULL;
        int rc = multipart_parse(bodies[i].body, strlen(bodies[i].body), "B", parts, 3, &n, &why);
        if (!bodies[i].parts) {
            ck_assert_msg(rc == -1, "%s: accepted", bodies[i].what);
            ck_assert_msg(why && why[0], "%s: no reason", bodies[i].what);
            continue;
        }
        ck_assert_msg(rc == 0, "%s: refused: %s", bodies[i].what, why);
        char got[512] = "";
        for (int k = 0; k < n; k++) {
            size_t at = strlen(got);
            snprintf(got + at, sizeof(got) - at, "%s%.*s|%.*s|%.*s", k ? "\n" : "",
                     (int)parts[k].name_len, parts[k].name,
                     parts[k].filename ? (int)parts[k].filename_len : 1,
                     parts[k].filename ? parts[k].filename : "-", (int)parts[k].len, parts[k].data);
        }
        ck_assert_msg(strcmp(got, bodies[i].parts) == 0, "%s: got \"%s\"", bodies[i].what, got);
    }
}
END_TEST

// Every pointer points inside the body, whatever the content (binary data included).
START_TEST(test_parts_inside_body) {
    char body[256];
    int len = snprintf(body, sizeof(body), "--B\r\n" CD "name=\"file\"; filename=\"f\"\r\n\r\n");
    memcpy(body + len, "a\0b\r\n--B--", 11);
    len += 11;
    MultipartPart p[2];
    int n;
    const char *why;
    ck_assert_int_eq(multipart_parse(body, (size_t)len, "B", p, 2, &n, &why), 0);
    ck_assert_int_eq(n, 1);
    ck_assert_uint_eq(p[0].len, 3);
    ck_assert(memcmp(p[0].data, "a\0b", 3) == 0);
    ck_assert(p[0].data >= body && p[0].data + p[0].len <= body + len);
}
END_TEST

int main(void) {
    Suite *s = suite_create("multipart");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_boundary);
    tcase_add_test(tc, test_parse);
    tcase_add_test(tc, test_parts_inside_body);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
