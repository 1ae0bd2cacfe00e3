/* server/jsonscan.c: what the raw bytes of a body say that cJSON's tree does not; one
 * table row per case. */
#include <check.h>
#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonscan.h"
#include "testutil.h"

// cJSON's parse with the NUL after the body counted: nothing may follow the value.
static const struct {
    const char *body;
    int ok;
    long stop; // refused: the byte cJSON stopped at
} parse_cases[] = {
    {"{\"a\": 1}", 1, 0},   {" [1, 2] ", 1, 0},  {"\"s\"", 1, 0}, {"{\"a\": 1} x", 0, 9},
    {"{\"a\": 1}{}", 0, 8}, {"{\"a\": }", 0, 6}, {"", 0, 0},
};

START_TEST(test_parse_table) {
    const char *body = parse_cases[_i].body;
    const char *end = NULL;
    int nomem = -1;
    cJSON *o = jsonscan_parse(body, strlen(body), &end, &nomem);
    ck_assert_int_eq(nomem, 0);
    ck_assert_msg((o != NULL) == parse_cases[_i].ok, "%s", body);
    if (!o) ck_assert_int_eq(end - body, parse_cases[_i].stop);
    cJSON_Delete(o);
}
END_TEST

// Out of memory is told apart from text that is not JSON: an 8 MiB string cJSON cannot
// copy with 4 MiB to spare, which parses once the limit is lifted.
START_TEST(test_parse_out_of_memory) {
    enum { P = 8 << 20 };
    char *body = malloc(P + 3);
    ck_assert_ptr_nonnull(body);
    memset(body, 'a', P + 2);
    body[0] = body[P + 1] = '"';
    body[P + 2] = '\0';
    int nomem = 0;
    tu_limit_memory(P / 2);
    cJSON *o = jsonscan_parse(body, P + 2, NULL, &nomem);
    tu_unlimit_memory();
    ck_assert_ptr_null(o);
    ck_assert_int_eq(nomem, 1);
    o = jsonscan_parse(body, P + 2, NULL, &nomem);
    ck_assert(cJSON_IsString(o) && strlen(o->valuestring) == P);
    ck_assert_int_eq(nomem, 0);
    cJSON_Delete(o);
    free(body);
}
END_TEST

static const struct {
    const char *text;
    int rc;   // 0: an integer, -1: not one
    double v; // rc 0: *out, compared exactly
} integer_cases[] = {
    {"0", 0, 0},
    {"7", 0, 7},
    {"7.0", 0, 7},
    {"7e0", 0, 7},
    {"70e-1", 0, 7},
    {"0.7e1", 0, 7},
    {"1.5e1", 0, 15},
    {"100E-2", 0, 1},
    {"1e3", 0, 1000},
    {"1E+3", 0, 1000},
    {"-0", 0, 0},
    {"-0.0e7", 0, 0},
    {"0e99999999999", 0, 0},
    {"-12", 0, -12},
    {"9007199254740992", 0, 9007199254740992.0},
    {"9007199254740992.0", 0, 9007199254740992.0},
    {"0.9007199254740992e16", 0, 9007199254740992.0},
    // Past 2^53 a double cannot hold every integer: away from zero, never onto 2^53.
    {"9007199254740993", 0, 9007199254740994.0},
    {"90071992547409930e-1", 0, 9007199254740994.0},
    {"-9007199254740993", 0, -9007199254740994.0},
    {"9007199254740995", 0, 9007199254740996.0},
    {"18446744073709551615", 0, 18446744073709551616.0},
    {"18446744073709551616", 0, DBL_MAX},
    {"-18446744073709551617", 0, -DBL_MAX},
    {"1e99999999999999999999", 0, DBL_MAX},
    {"123456789012345678901234567890", 0, DBL_MAX},
    {"0.5", -1, 0},
    {"1e-1", -1, 0},
    {"-0.5", -1, 0},
    {"9007199254740992.5", -1, 0},
    {"1e-99999", -1, 0},
    {"", -1, 0},
    {"-", -1, 0},
    {".", -1, 0},
    {"1e", -1, 0},
    {"1e+", -1, 0},
    {"1x", -1, 0},
    {"true", -1, 0},
    {"\"1\"", -1, 0},
};

START_TEST(test_integer_table) {
    const char *t = integer_cases[_i].text;
    double v = -12345;
    int rc = jsonscan_integer(t, t + strlen(t), &v);
    ck_assert_msg(rc == integer_cases[_i].rc, "%s: rc %d", t, rc);
    if (rc == 0)
        ck_assert_msg(v == integer_cases[_i].v && !signbit(v) == !signbit(integer_cases[_i].v),
                      "%s: %.17g, expected %.17g", t, v, integer_cases[_i].v);
}
END_TEST

// Each member as key=value, joined with '|'.
static const struct {
    const char *body, *members;
} walk_cases[] = {
    {"{}", ""},
    {"{\"a\": 1}", "\"a\"=1"},
    {" \t{\"a\":1,\"b\":true , \"c\" :null}", "\"a\"=1|\"b\"=true|\"c\"=null"},
    {"{\"a\": [1, {\"b\": \"]}\"}], \"c\": {\"d\": [[]]}}",
     "\"a\"=[1, {\"b\": \"]}\"}]|\"c\"={\"d\": [[]]}"},
    {"{\"k\\\"ey\": \"v\\\\\", \"x\": \"\\\"}{,\"}", "\"k\\\"ey\"=\"v\\\\\"|\"x\"=\"\\\"}{,\""},
    {"{\r\n\"se\\u0065d\"\r: -1e5\n}", "\"se\\u0065d\"=-1e5"},
    {"{\"a\": 1, \"a\": 2}", "\"a\"=1|\"a\"=2"},
    // cJSON takes any byte up to ' ' as whitespace, so the walk does.
    {"{\x01\"a\"\x02:\x03\"b\"\x04}", "\"a\"=\"b\""},
};

START_TEST(test_walk_table) {
    const char *body = walk_cases[_i].body;
    size_t len = strlen(body);
    cJSON *o = cJSON_ParseWithLength(body, len);
    ck_assert_msg(cJSON_IsObject(o), "cJSON refuses %s", body);
    char got[512] = "";
    const char *cursor = jsonscan_begin(body, len);
    JsonMember m;
    int n = 0;
    for (const cJSON *it = o->child; it; it = it->next, n++) {
        ck_assert_msg(jsonscan_next(&cursor, body + len, &m), "%s: member %d missing", body, n);
        snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%.*s=%.*s", n ? "|" : "",
                 (int)(m.key_end - m.key), m.key, (int)(m.val_end - m.val), m.val);
    }
    ck_assert_msg(!jsonscan_next(&cursor, body + len, &m), "%s: more members than cJSON's", body);
    ck_assert_str_eq(got, walk_cases[_i].members);
    cJSON_Delete(o);
}
END_TEST

// Text cut short (the walk never trusts the body to be whole) ends the walk, within it.
START_TEST(test_walk_stops_at_the_end) {
    static const char body[] = "{\"a\": \"xyz\", \"b\": [1, 2]}";
    for (size_t len = 0; len < sizeof(body) - 1; len++) {
        const char *cursor = jsonscan_begin(body, len), *end = body + len;
        JsonMember m;
        for (int k = 0; k < 3 && jsonscan_next(&cursor, end, &m); k++) {
            ck_assert(m.key >= body && m.key_end <= end);
            ck_assert(m.val >= m.key_end && m.val_end <= end);
            ck_assert(cursor <= end);
        }
    }
}
END_TEST

static const struct {
    const char *text;
    int nul;
} nul_cases[] = {
    {"\"ab\\u0000cd\"", 1},
    {"\"\\u0000\"", 1},
    {"[\"x\", \"\\u0000y\"]", 1},
    {"{\"\\u0000\": 1}", 1},
    {"\"a\\\\u0000\"", 0},
    {"\"a\\u0001\"", 0},
    {"\"a\\u000\"", 0},
    {"\"\\u00000\"", 1},
    {"\"plain\"", 0},
    {"x\\u0000", 1}, // the escape ends the text: read to the last byte, not past it

    {"\"a\\\\\\u0000\"", 1},
    {"12", 0},
    {"\"\\n\\t\\\"\"", 0},
};

START_TEST(test_nul_table) {
    const char *t = nul_cases[_i].text;
    ck_assert_msg(jsonscan_has_nul(t, t + strlen(t)) == nul_cases[_i].nul, "%s", t);
}
END_TEST

// The key of a NaN or Infinity, found from where cJSON stopped, as api_parse does.
static const struct {
    const char *body;
    size_t cap;
    const char *key; // NULL: none
} nonfinite_cases[] = {
    {"{\"temperature\": NaN}", 64, "temperature"},
    {"{\"prompt\": \"a\", \"top_p\" : -Infinity}", 64, "top_p"},
    {"{\"seed\":nan}", 64, "seed"},
    {"{\"a\"\n:\t+inf}", 64, "a"},
    {"{\"temperature\": NaN}", 12, "temperature"}, // just fits
    {"{\"temperature\": NaN}", 11, NULL},          // does not
    {"{\"t\\\"x\": NaN}", 64, NULL},               // escaped: not worth decoding
    {"[NaN]", 64, NULL},
    {"{\"a\": 1,}", 64, NULL},
    {"{\"a\": nul}", 64, NULL},
};

START_TEST(test_nonfinite_table) {
    const char *body = nonfinite_cases[_i].body;
    size_t len = strlen(body);
    const char *at = NULL;
    ck_assert_ptr_null(cJSON_ParseWithLengthOpts(body, len + 1, &at, 1));
    char key[64] = "";
    int found = jsonscan_nonfinite_key(body, len, at, key, nonfinite_cases[_i].cap);
    ck_assert_msg(found == (nonfinite_cases[_i].key != NULL), "%s: found %d (%s)", body, found,
                  key);
    if (found) ck_assert_str_eq(key, nonfinite_cases[_i].key);
    ck_assert_int_eq(jsonscan_nonfinite_key(body, len, NULL, key, 64), 0);
    ck_assert_int_eq(jsonscan_nonfinite_key(body, len, body + len, key, 64), 0);
}
END_TEST

// A field given twice takes its last value.
static const struct {
    const char *json, *name;
    const char *value; // printed; NULL: no member
} member_cases[] = {
    {"{\"model\": \"a\"}", "model", "\"a\""},
    {"{\"model\": \"a\", \"x\": 1, \"model\": 3}", "model", "3"},
    {"{\"model\": 3, \"model\": \"b\"}", "model", "\"b\""},
    {"{\"Model\": 3}", "model", NULL},
    {"{\"x\": {\"model\": 1}}", "model", NULL},
    {"[\"model\", 1]", "model", NULL},
    {"\"model\"", "model", NULL},
};

START_TEST(test_member_table) {
    cJSON *o = cJSON_Parse(member_cases[_i].json);
    ck_assert_ptr_nonnull(o);
    const cJSON *m = jsonscan_member(o, member_cases[_i].name);
    if (!member_cases[_i].value) {
        ck_assert_ptr_null(m);
    } else {
        ck_assert_ptr_nonnull(m);
        char *text = cJSON_PrintUnformatted(m);
        ck_assert_str_eq(text, member_cases[_i].value);
        cJSON_free(text);
    }
    cJSON_Delete(o);
    ck_assert_ptr_null(jsonscan_member(NULL, "model"));
}
END_TEST

#define COUNT(a) (int)(sizeof(a) / sizeof(*(a)))

int main(void) {
    Suite *s = suite_create("jsonscan");
    TCase *tc = tcase_create("jsonscan");
    tcase_add_loop_test(tc, test_parse_table, 0, COUNT(parse_cases));
    tcase_add_test(tc, test_parse_out_of_memory);
    tcase_add_loop_test(tc, test_integer_table, 0, COUNT(integer_cases));
    tcase_add_loop_test(tc, test_walk_table, 0, COUNT(walk_cases));
    tcase_add_test(tc, test_walk_stops_at_the_end);
    tcase_add_loop_test(tc, test_nul_table, 0, COUNT(nul_cases));
    tcase_add_loop_test(tc, test_nonfinite_table, 0, COUNT(nonfinite_cases));
    tcase_add_loop_test(tc, test_member_table, 0, COUNT(member_cases));
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
