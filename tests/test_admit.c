/* server/admit.c: which requests are admitted, the 400 or 503 of each refusal, the slots
 * and the undelivered count taken only when admitted and given back when the start fails,
 * and the start run only when admitted. Table-driven over the server's counters. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "admit.h"
#include "server.h"

typedef struct {
    int calls;
    int fail; // the start's refusal status, or 0
} Start;

static int start(void *ctx, AdmitRefusal *why) {
    Start *s = ctx;
    s->calls++;
    if (!s->fail) return 0;
    why->status = s->fail;
    strcpy(why->message, "from the start");
    why->param = NULL;
    return -1;
}

START_TEST(test_admission) {
    static const struct {
        const char *name;
        int k, in_flight, shutting_down, start_fails;
        long waiting;
        int status; // 0: admitted
        const char *param, *message;
    } rows[] = {
        {"admitted", 3, 0, 0, 0, 0, 0, NULL, NULL},
        {"up to the limit", 4, 4, 0, 0, 0, 0, NULL, NULL},
        {"more than ever runs", 9, 0, 0, 0, 0, 400, "n", "asks for 9 generations"},
        {"draining", 1, 0, 1, 0, 0, 503, NULL, "shutting down"},
        {"slow readers hold too much", 1, 0, 0, 0, 1001, 503, NULL, "--max-waiting-bytes (1000)"},
        {"at the limit of waiting bytes", 1, 0, 0, 0, 1000, 0, NULL, NULL},
        {"slots taken", 2, 7, 0, 0, 0, 503, NULL, "too many generations in flight (limit 8)"},
        {"the start fails", 2, 0, 0, 503, 0, 503, NULL, "from the start"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(*rows); i++) {
        srv.cfg.max_concurrent = 8;
        srv.cfg.max_waiting_bytes = 1000;
        atomic_store(&srv.in_flight, rows[i].in_flight);
        atomic_store(&srv.undelivered, 0);
        atomic_store(&srv.shutting_down, rows[i].shutting_down);
        atomic_store(&srv.reply_bytes_waiting, rows[i].waiting);
        Start s = {0, rows[i].start_fails};
        AdmitRefusal why;
        memset(&why, 0, sizeof(why));
        int rc = admit_run(rows[i].k, start, &s, &why);
        int admitted = rows[i].status == 0;
        ck_assert_msg(rc == (admitted ? 0 : -1), "%s: %d", rows[i].name, rc);
        ck_assert_int_eq(s.calls, admitted || rows[i].start_fails ? 1 : 0);
        ck_assert_int_eq(atomic_load(&srv.in_flight),
                         rows[i].in_flight + (admitted ? rows[i].k : 0));
        ck_assert_int_eq(atomic_load(&srv.undelivered), admitted ? 1 : 0);
        if (admitted) continue;
        ck_assert_int_eq(why.status, rows[i].status);
        ck_assert_msg(strstr(why.message, rows[i].message), "%s: %s", rows[i].name, why.message);
        ck_assert(rows[i].param ? why.param && strcmp(why.param, rows[i].param) == 0 : !why.param);
    }
}
END_TEST

// After admit_stop every request is refused, and nothing is started.
START_TEST(test_stop) {
    srv.cfg.max_concurrent = 8;
    srv.cfg.max_waiting_bytes = 1000;
    atomic_store(&srv.shutting_down, 0);
    atomic_store(&srv.in_flight, 0);
    atomic_store(&srv.reply_bytes_waiting, 0);
    Start s = {0};
    AdmitRefusal why;
    ck_assert_int_eq(admit_run(1, start, &s, &why), 0);
    admit_stop();
    ck_assert_int_eq(atomic_load(&srv.shutting_down), 1);
    ck_assert_int_eq(admit_run(1, start, &s, &why), -1);
    ck_assert_int_eq(why.status, 503);
    ck_assert_int_eq(s.calls, 1);
    ck_assert_int_eq(atomic_load(&srv.in_flight), 1);
}
END_TEST

int main(void) {
    Suite *s = suite_create("admit");
    TCase *tc = tcase_create("admit");
    tcase_add_test(tc, test_admission);
    tcase_add_test(tc, test_stop);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
