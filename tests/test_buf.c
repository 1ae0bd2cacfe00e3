/* The growable buffer: growth across its doublings, the NUL it keeps, dropping a prefix,
 * and a failure that makes every later call a no-op. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "testutil.h"

START_TEST(test_add_and_printf_grow) {
    Buf b = {0};
    ck_assert_ptr_null(b.s);
    char expect[5000] = "";
    for (int i = 0; i < 600; i++) {
        char piece[16];
        snprintf(piece, sizeof piece, "%d,", i);
        if (i % 2)
            buf_adds(&b, piece);
        else
            buf_printf(&b, "%d,", i);
        strcat(expect, piece);
        ck_assert_uint_eq(b.len, strlen(expect));
        ck_assert_str_eq(b.s, expect); // NUL-terminated after every call
        ck_assert_uint_ge(b.cap, b.len + 1);
    }
    ck_assert(!b.failed);
    buf_free(&b);
    ck_assert_ptr_null(b.s);
    ck_assert_uint_eq(b.len, 0);
}
END_TEST

START_TEST(test_binary_bytes_and_room) {
    Buf b;
    ck_assert_int_eq(buf_init(&b, 4), 0);
    ck_assert_str_eq(b.s, "");
    buf_add(&b, "a\0b", 3);
    ck_assert_uint_eq(b.len, 3);
    ck_assert_mem_eq(b.s, "a\0b\0", 4);
    char *p = buf_room(&b, 100);
    ck_assert_ptr_nonnull(p);
    ck_assert_uint_ge(b.cap, 3 + 100 + 1);
    memcpy(p, "xyz", 3);
    b.len += 3;
    b.s[b.len] = '\0';
    ck_assert_mem_eq(b.s, "a\0bxyz", 7);
    buf_free(&b);
}
END_TEST

START_TEST(test_drop_keeps_the_rest) {
    Buf b = {0};
    buf_adds(&b, "hello world");
    buf_drop(&b, 6);
    ck_assert_str_eq(b.s, "world");
    ck_assert_uint_eq(b.len, 5);
    buf_drop(&b, 5);
    ck_assert_str_eq(b.s, "");
    buf_drop(&b, 0);
    buf_free(&b);
    Buf empty = {0};
    buf_drop(&empty, 0); // nothing allocated: nothing to do
    ck_assert_ptr_null(empty.s);
}
END_TEST

START_TEST(test_failure_is_sticky) {
    Buf b = {0};
    buf_adds(&b, "kept");
    ck_assert_ptr_null(buf_room(&b, SIZE_MAX - 2)); // more than any size can hold
    ck_assert(b.failed);
    buf_adds(&b, " lost");
    buf_printf(&b, "%s", " lost too");
    ck_assert_ptr_null(buf_room(&b, 1));
    ck_assert_str_eq(b.s, "kept"); // what was there stays, for the caller to free
    ck_assert_uint_eq(b.len, 4);
    buf_free(&b);
    ck_assert(!b.failed);
}
END_TEST

int main(void) {
    Suite *s = suite_create("buf");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_add_and_printf_grow);
    tcase_add_test(tc, test_binary_bytes_and_room);
    tcase_add_test(tc, test_drop_keeps_the_rest);
    tcase_add_test(tc, test_failure_is_sticky);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
