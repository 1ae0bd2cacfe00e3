// The header section's framing rules (headers.h), one header section per row.
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "headers.h"

// A row's fields are "Name: value" lines ended by '\n'; the length is given so that a
// value may hold a NUL. As libmicrohttpd reports them, the value starts after the spaces
// following the colon and keeps those at its end.
#define H(s) s, sizeof(s) - 1

static const struct {
    const char *head;
    size_t len;
    int status;
} rows[] = {
    {H(""), 0},
    {H("Host: localhost:8080\n"), 0},
    {H("Host: a\nContent-Type: application/json\nContent-Length: 29\n"), 0},
    {H("Host: a\nTransfer-Encoding: chunked\n"), 0},
    {H("Transfer-Encoding: CHUNKED\n"), 0},
    {H("Authorization: Bearer k\nX-Tab: a\tb\n"), 0},
    {H("User-Agent: caf\xc3\xa9\n"), 0}, // obs-text is allowed
    {H("X-Empty: \n"), 0},
    {H("Content-Length: 5\nContent-Length: 5\n"), 0},   // repeated, same value
    {H("Content-Length: 5\nContent-Length: 005\n"), 0}, // the same number
    {H("Content-Length: 0\n"), 0},
    {H("Content-Length: 99999999999999999999999\n"), 0}, // libmicrohttpd's 413, not ours
    {H("!#$%&'*+-.^_`|~09azAZ: x\n"), 0},                // every tchar
    // Smuggling: the two framings together, however spelled.
    {H("Content-Length: 29\nTransfer-Encoding: chunked\n"), 400},
    {H("transfer-encoding: chunked\ncontent-length: 29\n"), 400},
    {H("Transfer-Encoding: chunked\nContent-Length: x\n"), 400},
    {H("Transfer-Encoding: xchunked\nContent-Length: 3\n"), 400},
    {H("Transfer-Encoding : chunked\nContent-Length: 3\n"), 400}, // space before the colon
    // Content-Length.
    {H("Content-Length: 29\nContent-Length: 5\n"), 400},
    {H("Content-Length: 5\nContent-Length: 50\n"), 400},
    {H("Content-Length: 5, 5\n"), 400},
    {H("Content-Length: \n"), 400},
    {H("Content-Length: +5\n"), 400},
    {H("Content-Length: 5 \n"), 400},
    {H("Content-Length: 0x10\n"), 400},
    // Transfer codings: unknown ones are 501, malformed lists 400.
    {H("Transfer-Encoding: xchunked\n"), 501},
    {H("Transfer-Encoding: chunked, identity\n"), 501},
    {H("Transfer-Encoding: identity\n"), 501},
    {H("Transfer-Encoding: gzip, chunked\n"), 501},
    {H("Transfer-Encoding: chunked;ext=1\n"), 501},
    {H("Transfer-Encoding: chunked\nTransfer-Encoding: gzip\n"), 501},
    {H("Transfer-Encoding: chunked, chunked\n"), 400},
    {H("Transfer-Encoding: chunked\nTransfer-Encoding: chunked\n"), 400},
    {H("Transfer-Encoding: \n"), 400},
    {H("Transfer-Encoding: ,chunked\n"), 400},
    {H("Transfer-Encoding: chunked \n"), 400},
    // Bytes a value must not hold: NUL first of all, wherever it is.
    {H("Authorization: Bearer KEY\0junk\n"), 400},
    {H("Host: a\0\n"), 400},
    {H("X-A: \0\n"), 400},
    {H("X-A: b\rc\n"), 400},
    {H("X-A: b\x01\n"), 400},
    {H("X-A: b\x7f\n"), 400},
    {H("X-A: b\x1b[0m\n"), 400},
    // Names that are not tokens.
    {H(": value\n"), 400},
    {H("X A: b\n"), 400},
    {H("X-A\t: b\n"), 400},
    {H("X(A): b\n"), 400},
    {H("X-\xc3\xa9: b\n"), 400},
    {H("X\0A: b\n"), 400},
    // Fields that must come once.
    {H("Authorization: Bearer a\nAuthorization: Bearer b\n"), 400},
    {H("Authorization: Bearer a\nauthorization: Bearer a\n"), 400},
    {H("Host: a\nHost: a\n"), 400},
    {H("Host: localhost\nHOST: evil.example\n"), 400},
};

// Splits a row into fields; returns their count.
static int fields_of(const char *head, size_t len, HeaderField *f, int max) {
    int n = 0;
    const char *p = head, *end = head + len;
    while (p < end && n < max) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        ck_assert_ptr_nonnull(colon);
        const char *v = colon + 1;
        while (v < eol && (*v == ' ' || *v == '\t')) v++;
        f[n++] = (HeaderField){p, (size_t)(colon - p), v, (size_t)(eol - v)};
        p = eol + 1;
    }
    return n;
}

static void show(char *out, const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        out += ch >= 0x20 && ch < 0x7f ? sprintf(out, "%c", ch) : sprintf(out, "\\x%02x", ch);
    }
}

START_TEST(test_rules) {
    for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
        HeaderField f[8];
        int n = fields_of(rows[i].head, rows[i].len, f, 8);
        HeaderVerdict v = headers_check(f, n);
        char shown[512];
        show(shown, rows[i].head, rows[i].len);
        ck_assert_msg(v.status == rows[i].status, "row %zu \"%s\": %d (%s), not %d", i, shown,
                      v.status, v.message ? v.message : "fine", rows[i].status);
        ck_assert_msg(!v.status == !v.message, "row %zu: a refusal says why", i);
    }
}
END_TEST

// Each verdict has its own sentence, and the first broken rule is the one reported.
START_TEST(test_order) {
    HeaderField f[8];
    const char both[] = "X A: \0\nContent-Length: 1\nTransfer-Encoding: chunked\n";
    HeaderVerdict v = headers_check(f, fields_of(both, sizeof(both) - 1, f, 8));
    ck_assert_str_eq(v.message, "a header field name is not a token");
    const char smuggle[] = "Transfer-Encoding: xchunked\nContent-Length: 1\n";
    v = headers_check(f, fields_of(smuggle, sizeof(smuggle) - 1, f, 8));
    ck_assert_int_eq(v.status, 400);
    ck_assert_str_eq(v.message, "Content-Length and Transfer-Encoding together");
}
END_TEST

int main(void) {
    Suite *s = suite_create("headers");
    TCase *tc = tcase_create("rules");
    tcase_add_test(tc, test_rules);
    tcase_add_test(tc, test_order);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
