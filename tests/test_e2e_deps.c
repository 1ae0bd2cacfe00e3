// The end-to-end tests' npm packages (package-lock.json) install on bookworm's own nodejs,
// which is 18: every package's engines.node admits the oldest node tests/e2e/run.sh
// accepts. npm only warns about a package that wants a newer node, and the tests then fail
// at run time on bookworm, where CI (which has node 20) never looks.
#include <cjson/cJSON.h>
#include <check.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

static const int RUN_SH_MIN[3] = {18, 15, 0}; // tests/e2e/run.sh's check

static int cmp3(const int a[3], const int b[3]) {
    for (int i = 0; i < 3; i++)
        if (a[i] != b[i]) return a[i] < b[i] ? -1 : 1;
    return 0;
}

// One comparator of an npm range ("=18", ">= 0.4", "^18.2", "4.x") against v: 1 or 0, or
// -1 for a form this reader does not know. *s moves past it.
static int comparator_admits(const char **s, const int v[3]) {
    const char *p = *s;
    char op[3] = "";
    for (int n = 0; n < 2 && *p && strchr("<>=^~", *p); n++) op[n] = *p++;
    while (*p == ' ') p++;
    int ver[3] = {0, 0, 0}, parts = 0;
    while (parts < 3) {
        if (*p == 'x' || *p == 'X' || *p == '*')
            p++;
        else if (isdigit((unsigned char)*p))
            ver[parts++] = (int)strtol(p, (char **)&p, 10);
        else
            break;
        if (*p != '.') break;
        p++;
    }
    if (*p && *p != ' ') return -1;
    *s = p;
    // [lo, hi): the versions the comparator means; a missing part is a wildcard.
    int lo[3] = {ver[0], ver[1], ver[2]}, hi[3] = {ver[0], ver[1], ver[2]};
    int bump = parts == 0 ? -1 : parts - 1; // the part that steps to the next range
    if (op[0] == '~' && parts > 1) bump = 1;
    if (op[0] == '^') bump = ver[0] || parts == 1 ? 0 : ver[1] || parts == 2 ? 1 : 2;
    if (bump >= 0) {
        hi[bump]++;
        for (int i = bump + 1; i < 3; i++) hi[i] = 0;
    }
    int above_lo = cmp3(v, lo) >= 0, below_hi = bump < 0 || cmp3(v, hi) < 0;
    if (!strcmp(op, ">=")) return above_lo;
    if (!strcmp(op, ">")) return bump < 0 ? 0 : !below_hi;
    if (!strcmp(op, "<")) return cmp3(v, lo) < 0;
    if (!strcmp(op, "<=")) return below_hi;
    if (!op[0] || !strcmp(op, "=") || !strcmp(op, "^") || !strcmp(op, "~"))
        return above_lo && below_hi;
    return -1;
}

// An npm range: alternatives joined by "||", each comparators separated by spaces, all
// of which must hold. 1, 0, or -1 when a part of it is unreadable.
static int range_admits(const char *range, const int v[3]) {
    int any = 0;
    for (const char *p = range;;) {
        int all = 1;
        for (;;) {
            while (*p == ' ') p++;
            if (!*p || !strncmp(p, "||", 2)) break;
            int r = comparator_admits(&p, v);
            if (r < 0) return -1;
            all = all && r;
        }
        any = any || all;
        if (!*p) return any;
        p += 2;
    }
}

static const struct {
    const char *range;
    int v[3];
    int admits;
} ranges[] = {
    {">=18", {18, 15, 0}, 1},
    {">=20", {18, 15, 0}, 0},
    {">= 0.4", {18, 15, 0}, 1},
    {">=18.16", {18, 15, 0}, 0},
    {">18", {18, 15, 0}, 0}, // >18 is 19 and up
    {">18.14", {18, 15, 0}, 1},
    {"<19", {18, 15, 0}, 1},
    {"<18", {18, 15, 0}, 0},
    {"<=18", {18, 15, 0}, 1},
    {"4.x || >=6.0.0", {18, 15, 0}, 1},
    {"4.x || >=20.0.0", {18, 15, 0}, 0},
    {"4.x || >=20.0.0", {4, 9, 1}, 1},
    {">=14 <20", {18, 15, 0}, 1},
    {">=14 <18", {18, 15, 0}, 0},
    {"^18.2.0", {18, 15, 0}, 1},
    {"^18.2.0", {19, 0, 0}, 0},
    {"^0.4.1", {0, 5, 0}, 0},
    {"~18.15.0", {18, 15, 3}, 1},
    {"~18.14.0", {18, 15, 0}, 0},
    {"18", {18, 15, 0}, 1},
    {"18.x", {20, 0, 0}, 0},
    {"*", {18, 15, 0}, 1},
    {"", {18, 15, 0}, 1},
    {"18 - 20", {18, 15, 0}, -1}, // hyphen ranges: unknown here, so the test says so
    {">=v18", {18, 15, 0}, -1},
};

START_TEST(test_range_reader) {
    const char *r = ranges[_i].range;
    const int *v = ranges[_i].v;
    ck_assert_msg(range_admits(r, v) == ranges[_i].admits, "\"%s\" admits %d.%d.%d: %d, not %d", r,
                  v[0], v[1], v[2], range_admits(r, v), ranges[_i].admits);
}
END_TEST

START_TEST(test_lock_admits_bookworm_node) {
    char *text = tu_read_file(CHARLM_SOURCE_DIR "/package-lock.json", NULL);
    ck_assert_msg(text, "cannot read package-lock.json");
    cJSON *lock = cJSON_Parse(text);
    free(text);
    cJSON *pkgs = cJSON_GetObjectItemCaseSensitive(lock, "packages");
    ck_assert_msg(cJSON_IsObject(pkgs), "package-lock.json has no \"packages\"");
    int checked = 0;
    for (cJSON *p = pkgs->child; p; p = p->next) {
        if (!p->string[0]) continue; // the project itself
        const cJSON *node = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(p, "engines"), "node");
        checked++;
        if (!cJSON_IsString(node)) continue; // no engines: any node
        int r = range_admits(node->valuestring, RUN_SH_MIN);
        ck_assert_msg(r >= 0, "%s: engines.node \"%s\" is a form this test cannot read: check it",
                      p->string, node->valuestring);
        ck_assert_msg(r == 1,
                      "%s wants node \"%s\": the e2e tests must run on node %d.%d (bookworm's "
                      "nodejs is 18); pin a version that accepts it",
                      p->string, node->valuestring, RUN_SH_MIN[0], RUN_SH_MIN[1]);
    }
    ck_assert_msg(checked >= 2, "package-lock.json lists %d packages: playwright-core and openai?",
                  checked);
    cJSON_Delete(lock);
}
END_TEST

int main(void) {
    Suite *s = suite_create("e2e_deps");
    TCase *tc = tcase_create("engines");
    tcase_add_loop_test(tc, test_range_reader, 0, sizeof(ranges) / sizeof(*ranges));
    tcase_add_test(tc, test_lock_admits_bookworm_node);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
