/* server/watch.c: the watcher notices a client closing the socket of a listed entry
 * (gone set, left called once), and leaves alone an entry whose client stays, one not
 * watched (fd -1) and one no longer listed. Real sockets: socketpair. */
#include <check.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "watch.h"

static atomic_int lefts;

static void left(Watched *w) {
    (void)w;
    atomic_fetch_add(&lefts, 1);
}

static void sleep_ms(int ms) {
    usleep((useconds_t)ms * 1000);
}

START_TEST(test_watch) {
    char err[ERR_LEN];
    ck_assert_int_eq(watch_start(err), 0);
    int a[2], b[2], c[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, c), 0);
    Watched leaves = {.fd = a[0], .left = left};
    Watched stays = {.fd = b[0], .left = left};
    Watched unwatched = {.fd = -1, .left = left};
    Watched removed = {.fd = c[0], .left = left};
    watch_add(&leaves);
    watch_add(&stays);
    watch_add(&unwatched);
    watch_add(&removed);
    watch_remove(&removed);
    close(a[1]); // the client of `leaves` goes
    close(c[1]); // and that of one no longer parked
    for (int waited = 0; !leaves.gone && waited < 5000; waited += 10) sleep_ms(10);
    ck_assert(leaves.gone);
    sleep_ms(300); // several rounds: left is called once, for it alone
    ck_assert_int_eq(atomic_load(&lefts), 1);
    ck_assert(!stays.gone && !unwatched.gone && !removed.gone);
    watch_remove(&leaves);
    watch_remove(&stays);
    watch_remove(&unwatched);
    watch_stop();
    close(a[0]);
    close(b[0]);
    close(b[1]);
    close(c[0]);
}
END_TEST

int main(void) {
    Suite *s = suite_create("watch");
    TCase *tc = tcase_create("watch");
    tcase_add_test(tc, test_watch);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
