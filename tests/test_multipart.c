// server/multipart: the boundary from a Content-Type, and bodies parsed into parts, each
// case a row: what it should give, or that it is refused; every body fed whole, split in
// two at every position, and a byte at a time, which must all give the same.
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
    {"multipart/form-data; boundary=\"a\rb\"", NULL},
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
    {"data holding the delimiter's beginnings",
     "--B\r\n" CD "name=a\r\n\r\n\r\r\n-\r\n--\r\n--C\r\r\n--B--", "a|-|\r\r\n-\r\n--\r\n--C\r"},
    {"a preamble holding the delimiter's beginnings",
     "\r\n-\r\n--\r\n--B\r\n" CD "name=a\r\n\r\nv\r\n--B--", "a|-|v"},
    {"another header after the disposition", "--B\r\n" CD "name=a\r\nX-A: 1\r\n\r\nv\r\n--B--",
     "a|-|v"},
    {"no boundary", "hello", NULL},
    {"no closing delimiter", "--B\r\n" CD "name=a\r\n\r\nv", NULL},
    {"cut inside the headers", "--B\r\n" CD "name=a\r\n", NULL},
    {"cut after a delimiter", "--B\r\n" CD "name=a\r\n\r\nv\r\n--B", NULL},
    {"cut inside the closing delimiter", "--B\r\n" CD "name=a\r\n\r\nv\r\n--B-", NULL},
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

// A sink that writes the parts as "name|filename|data" lines into got, and stops the
// parse at a fourth part.
typedef struct {
    char got[512];
    int parts, ended;
} Collect;

static int add(Collect *c, const char *s, size_t n) {
    size_t at = strlen(c->got);
    snprintf(c->got + at, sizeof(c->got) - at, "%.*s", (int)n, s);
    return 0;
}

static int on_part(void *ctx, const MultipartPart *p) {
    Collect *c = ctx;
    ck_assert_int_eq(c->ended, c->parts); // the previous part ended first
    if (++c->parts > 3) return 1;
    if (c->parts > 1) add(c, "\n", 1);
    add(c, p->name, p->name_len);
    add(c, "|", 1);
    add(c, p->filename ? p->filename : "-", p->filename ? p->filename_len : 1);
    return add(c, "|", 1);
}

static int on_data(void *ctx, const char *data, size_t n) {
    ck_assert_uint_gt(n, 0);
    return add(ctx, data, n);
}

static int on_end(void *ctx) {
    ((Collect *)ctx)->ended++;
    return 0;
}

static const MultipartSink collect = {on_part, on_data, on_end};

// Parses body as a first piece of `first` bytes, then pieces of `step` (0: the rest).
// Returns 0 with the parts in c->got, or -1 with *why (NULL: the sink stopped it).
static int parse(const char *body, size_t len, size_t first, size_t step, Collect *c,
                 const char **why) {
    MultipartStream s;
    memset(c, 0, sizeof(*c));
    ck_assert_int_eq(multipart_begin(&s, "B"), 0);
    int rc = multipart_feed(&s, body, first, &collect, c, why);
    for (size_t at = first; at < len && rc == 0;) {
        size_t n = step && step < len - at ? step : len - at;
        rc = multipart_feed(&s, body + at, n, &collect, c, why);
        at += n;
    }
    if (rc) {
        ck_assert_int_eq(multipart_feed(&s, "x", 1, &collect, c, why), -1); // sticky
        return rc;
    }
    return multipart_end(&s, why);
}

START_TEST(test_parse) {
    for (size_t i = 0; i < sizeof(bodies) / sizeof(*bodies); i++) {
        size_t len = strlen(bodies[i].body);
        for (size_t split = 0; split <= len + 1; split++) {
            Collect c;
            const char *why = NULL;
            int rc = split <= len ? parse(bodies[i].body, len, split, 0, &c, &why)
                                  : parse(bodies[i].body, len, 0, 1, &c, &why);
            if (!bodies[i].parts) {
                ck_assert_msg(rc == -1, "%s (split %zu): accepted", bodies[i].what, split);
                ck_assert_msg((why && why[0]) || c.parts > 3, "%s: no reason", bodies[i].what);
                continue;
            }
            ck_assert_msg(rc == 0, "%s (split %zu): refused: %s", bodies[i].what, split, why);
            ck_assert_int_eq(c.ended, c.parts);
            ck_assert_msg(strcmp(c.got, bodies[i].parts) == 0, "%s (split %zu): got \"%s\"",
                          bodies[i].what, split, c.got);
        }
    }
}
END_TEST

// Part headers past MULTIPART_HEAD_MAX are refused, not held.
START_TEST(test_head_bound) {
    static char body[MULTIPART_HEAD_MAX + 200];
    int n = snprintf(body, sizeof(body), "--B\r\n" CD "name=a\r\nX-Pad: ");
    memset(body + n, 'p', sizeof(body) - (size_t)n);
    Collect c;
    const char *why = NULL;
    ck_assert_int_eq(parse(body, sizeof(body), sizeof(body), 0, &c, &why), -1);
    ck_assert_msg(why && strstr(why, "longer than"), "%s", why ? why : "(null)");
    ck_assert_int_eq(c.parts, 0);
}
END_TEST

// The boundaries multipart_boundary refuses are refused by the parser too.
START_TEST(test_begin) {
    MultipartStream s;
    ck_assert_int_eq(multipart_begin(&s, ""), -1);
    ck_assert_int_eq(multipart_begin(&s, "a\rb"), -1);
    char longer[MULTIPART_BOUNDARY_MAX + 2];
    memset(longer, 'b', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    ck_assert_int_eq(multipart_begin(&s, longer), -1);
    longer[MULTIPART_BOUNDARY_MAX] = '\0';
    ck_assert_int_eq(multipart_begin(&s, longer), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("multipart");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_boundary);
    tcase_add_test(tc, test_parse);
    tcase_add_test(tc, test_head_bound);
    tcase_add_test(tc, test_begin);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
