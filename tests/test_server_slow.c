/* charlm-server with many idle and slow connections, over real TCP: they cost descriptors
 * and memory, not threads; normal requests still get through; the idle timeout closes the
 * idle ones and those that stall while sending a request, and every descriptor comes back.
 * Also: a client that leaves while its JSON request waits for its generation cancels it. */
#include <check.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server_harness.h"
#include "testutil.h"

#define IDLE_MAX 1000
#define SLOW_MAX 200
#define NORMAL   24
#define IDLE_TO  "3"

static void suite_setup(void) {
    suite_model_make(3000, 16, 48, 1, 3);
}

static void suite_teardown(void) {
    suite_model_remove();
}

static int count_fds(pid_t pid) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static int count_threads(pid_t pid) {
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    char *s = tu_read_file(path, NULL);
    ck_assert_ptr_nonnull(s);
    const char *t = strstr(s, "\nThreads:");
    ck_assert_ptr_nonnull(t);
    int n = atoi(t + strlen("\nThreads:"));
    free(s);
    return n;
}

// Waits up to ms for the server's descriptor count to satisfy `at_least ? >= n : <= n`.
static int wait_fds(pid_t pid, int n, int at_least, int ms) {
    int c = count_fds(pid);
    for (int waited = 0; waited < ms && (at_least ? c < n : c > n); waited += 20) {
        sleep_ms(20);
        c = count_fds(pid);
    }
    return c;
}

static int connect_to(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

// The client side needs a descriptor per connection too, and the server as many: raises
// the limit as far as it goes and returns how many connections fit under it, keeping 300
// descriptors for everything else. Some build sandboxes cap it at 1,024, which still
// leaves several times the 128 connections the thread-per-connection server held.
static int raise_fd_limit(void) {
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    long room = (long)rl.rlim_cur - 300;
    ck_assert_msg(room >= 600, "the open files limit (%llu) is below 900",
                  (unsigned long long)rl.rlim_cur);
    return room < IDLE_MAX + SLOW_MAX ? (int)room : IDLE_MAX + SLOW_MAX;
}

typedef struct {
    int *fds;
    int n;
    atomic_int stop;
} Trickle;

// A slow client: a request whose headers never end, one byte a second.
static void *trickle_main(void *arg) {
    Trickle *t = arg;
    while (!atomic_load(&t->stop)) {
        for (int i = 0; i < t->n; i++) send(t->fds[i], "a", 1, MSG_NOSIGNAL);
        for (int i = 0; i < 10 && !atomic_load(&t->stop); i++) sleep_ms(100);
    }
    return NULL;
}

typedef struct {
    int port, ok;
} Normal;

static void *normal_main(void *arg) {
    Normal *n = arg;
    for (int i = 0; i < NORMAL / 4; i++) {
        Resp r = http_post(n->port, "/generate", "{\"prompt\": \"the \", \"max_tokens\": 40}");
        n->ok += r.status == 200 && strstr(r.body, "\"finish_reason\":\"length\"") != NULL;
        resp_free(&r);
    }
    return NULL;
}

START_TEST(test_idle_and_slow_clients) {
    int conns = raise_fd_limit();
    const int n_slow = conns / 6, n_idle = conns - n_slow;
    const char *args[] = {"--idle-timeout", IDLE_TO, NULL};
    Srv s;
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
    Resp r = http_post(s.port, "/generate", "{\"prompt\": \"a\", \"max_tokens\": 5}");
    ck_assert_int_eq(r.status, 200);
    resp_free(&r);
    int base = wait_fds(s.pid, 0, 0, 200);

    int idle[IDLE_MAX], slow[SLOW_MAX];
    for (int i = 0; i < n_slow; i++) {
        slow[i] = connect_to(s.port);
        const char *head = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
        ck_assert_int_eq(send(slow[i], head, strlen(head), 0), (ssize_t)strlen(head));
    }
    Trickle tr = {.fds = slow, .n = n_slow};
    atomic_init(&tr.stop, 0);
    pthread_t tt;
    pthread_create(&tt, NULL, trickle_main, &tr);
    for (int i = 0; i < n_idle; i++) idle[i] = connect_to(s.port);
    int open = wait_fds(s.pid, base + n_idle + n_slow, 1, 10000);
    ck_assert_msg(open >= base + n_idle + n_slow, "the server holds %d descriptors, %d before",
                  open, base);
    // Hundreds of connections, and no thread for any of them.
    int threads = count_threads(s.pid);
    ck_assert_msg(threads < 20, "%d threads with %d connections open", threads, n_idle + n_slow);

    // Normal requests get through meanwhile.
    Normal nr[4];
    pthread_t nt[4];
    for (int i = 0; i < 4; i++) {
        nr[i] = (Normal){.port = s.port};
        pthread_create(&nt[i], NULL, normal_main, &nr[i]);
    }
    int ok = 0;
    for (int i = 0; i < 4; i++) pthread_join(nt[i], NULL), ok += nr[i].ok;
    ck_assert_int_eq(ok, NORMAL);

    // The slow clients stall; the timeout then closes them and the idle ones, and every
    // descriptor comes back.
    atomic_store(&tr.stop, 1);
    pthread_join(tt, NULL);
    int left = wait_fds(s.pid, base, 0, 20000);
    ck_assert_msg(left <= base, "%d descriptors, %d before", left, base);
    char b[64];
    ck_assert_int_eq(recv(idle[0], b, sizeof(b), 0), 0); // closed by the server
    for (int i = 0; i < n_idle; i++) close(idle[i]);
    for (int i = 0; i < n_slow; i++) close(slow[i]);

    // Connections the clients close come back at once.
    for (int i = 0; i < n_idle; i++) idle[i] = connect_to(s.port);
    open = wait_fds(s.pid, base + n_idle, 1, 10000);
    ck_assert_int_ge(open, base + n_idle);
    for (int i = 0; i < n_idle; i++) close(idle[i]);
    left = wait_fds(s.pid, base, 0, 2000);
    ck_assert_msg(left <= base, "%d descriptors, %d before", left, base);
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

START_TEST(test_json_client_leaves) {
    const char *args[] = {"--max-tokens", "1000000", NULL};
    Srv s;
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
    const char *json = "{\"prompt\": \"the\", \"max_tokens\": 1000000}";
    int fd = raw_generate(s.port, json);
    ck_assert_int_eq(health_in_flight(s.port), 1);
    close(fd);
    // The suspended request notices, and its generation stops well before it could end.
    int waited = 0;
    while (health_in_flight(s.port) != 0 && waited < 5000) sleep_ms(10), waited += 10;
    ck_assert_int_eq(health_in_flight(s.port), 0);
    Resp r = http_get(s.port, "/metrics");
    ck_assert_ptr_nonnull(
        strstr(r.body, "charlm_requests_total{route=\"/generate\",status=\"499\"} 1"));
    ck_assert_ptr_nonnull(
        strstr(r.body, "charlm_generations_total{model=\"charlm\",finish_reason=\"cancelled\"} 1"));
    // A client that left is not an error of the server's: that series stays apart, at 0.
    ck_assert_ptr_nonnull(
        strstr(r.body, "charlm_generations_total{model=\"charlm\",finish_reason=\"error\"} 0"));
    resp_free(&r);
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("server_slow");
    TCase *tc = tcase_create("slow");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_idle_and_slow_clients);
    tcase_add_test(tc, test_json_client_leaves);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
