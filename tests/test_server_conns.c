/* charlm-server's connections over real TCP: --idle-timeout measures no progress, not slow
 * progress (a steady slow reader gets its whole multi-megabyte stream, a reader who stops
 * is cut); at --max-connections idle connections give way to new ones, a connection with a
 * request in flight never does; --max-connections-per-ip closes a client's connections
 * past the limit while other addresses are served. The floods come from 127.0.0.2, the
 * clients measured from 127.0.0.1. */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server_harness.h"
#include "testutil.h"

// A stream of several megabytes: 16 choices, 10 alternatives per char (fewer than the
// tiny model's vocabulary).
#define BIG_STREAM                                                                                 \
    "{\"prompt\": \"the \", \"max_tokens\": 1500, \"n\": 16, \"logprobs\": 10, \"stream\": true, " \
    "\"seed\": 7}"

static void suite_setup(void) {
    suite_model_make(3000, 16, 48, 1, 3);
}

static void suite_teardown(void) {
    suite_model_remove();
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

// A socket from 127.0.0.<from> to the server, connected (accepted or in the listen queue).
static int connect_from(int from, int port, int rcvbuf) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    if (rcvbuf) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    // The port is chosen by connect, clear of the server's sockets in TIME-WAIT.
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK - 1 + (unsigned)from);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_msg(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect: %s",
                  strerror(errno));
    return fd;
}

static void send_all(int fd, const char *s, size_t n) {
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        ck_assert_int_gt(w, 0);
        s += w;
        n -= (size_t)w;
    }
}

static void send_generate(int fd, const char *json) {
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "POST /generate HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
                     "application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     strlen(json), json);
    send_all(fd, req, (size_t)n);
}

typedef struct {
    int fd;
    double rate;       // bytes per second the reader takes
    size_t stop_after; // stop reading after this many bytes (0: read to the end)
    size_t len;        // bytes received
    int complete;      // a 200 whose chunked body ended properly, with its last event
    double seconds;    // from the first byte to the end
    char head[160];    // the reply's status line, for failure messages
} Reader;

// Reads the reply at a steady rate, 16 KB at a time, until the server closes.
static void *reader_main(void *arg) {
    Reader *r = arg;
    size_t cap = 1 << 20;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    double t0 = now_s();
    for (;;) {
        if (r->len + 16384 + 1 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
        ssize_t n = recv(r->fd, buf + r->len, 16384, 0);
        if (n <= 0) break;
        r->len += (size_t)n;
        if (r->stop_after && r->len >= r->stop_after) break;
        double ahead = t0 + (double)r->len / r->rate - now_s();
        if (ahead > 0) sleep_ms((int)(ahead * 1000));
    }
    r->seconds = now_s() - t0;
    buf[r->len] = '\0';
    snprintf(r->head, sizeof(r->head), "%.*s", (int)strcspn(buf, "\r\n"), buf);
    r->complete = strncmp(buf, "HTTP/1.1 200", 12) == 0 && r->len > 5 &&
                  strcmp(buf + r->len - 5, "0\r\n\r\n") == 0 && strstr(buf, "\"done\":true");
    free(buf);
    return NULL;
}

static long metric(int port, const char *series) {
    Resp r = http_get(port, "/metrics");
    ck_assert_int_eq(r.status, 200);
    const char *p = strstr(r.body, series);
    ck_assert_msg(p != NULL, "no %s in /metrics", series);
    long v = atol(p + strlen(series));
    resp_free(&r);
    return v;
}

START_TEST(test_slow_reader_gets_everything) {
    // The reply is larger than the socket buffers, read far too slowly to empty a third of
    // a full send buffer within the timeout: the socket stays unwritable for longer than
    // the timeout while the client takes its bytes all along.
    const char *args[] = {"--idle-timeout", "1", NULL};
    Srv s;
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
    Reader r = {.fd = connect_from(1, s.port, 16384), .rate = 600e3};
    send_generate(r.fd, BIG_STREAM);
    pthread_t t;
    pthread_create(&t, NULL, reader_main, &r);
    pthread_join(t, NULL);
    close(r.fd);
    ck_assert_msg(r.complete, "the stream was cut after %zu bytes, %.1f s: %s", r.len, r.seconds,
                  r.head);
    ck_assert_msg(r.len > (5u << 20), "only %zu bytes: the reply is too small to test this", r.len);
    ck_assert_int_eq(metric(s.port, "charlm_connections_closed_total{reason=\"idle_timeout\"} "),
                     0);
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

START_TEST(test_stalled_reader_is_cut) {
    const char *args[] = {"--idle-timeout", "1", NULL};
    Srv s;
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
    int fd = connect_from(1, s.port, 16384);
    send_generate(fd, BIG_STREAM);
    char buf[4096];
    ck_assert_int_gt(recv(fd, buf, sizeof(buf), 0), 0);
    // Stops reading; the timeout (and the housekeeper's tenth) pass.
    sleep_ms(3000);
    ck_assert_int_eq(metric(s.port, "charlm_connections_closed_total{reason=\"idle_timeout\"} "),
                     1);
    Reader r = {.fd = fd, .rate = 1e12};
    reader_main(&r);
    close(fd);
    ck_assert(!r.complete);
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

START_TEST(test_idle_connections_give_way) {
    enum { CAP = 40, FLOOD = 70 };
    const char *args[] = {"--max-connections", "40", "--idle-timeout", "20", NULL};
    Srv s;
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
    // A reply being delivered (read slowly) while the flood comes: it is never evicted.
    Reader r = {.fd = connect_from(1, s.port, 16384), .rate = 2e6};
    send_generate(r.fd, BIG_STREAM);
    pthread_t t;
    pthread_create(&t, NULL, reader_main, &r);
    sleep_ms(200);

    // Half send nothing, half part of a request's headers.
    int flood[FLOOD];
    for (int i = 0; i < FLOOD; i++) {
        flood[i] = connect_from(2, s.port, 0);
        const char *part = "GET /health HTTP/1.1\r\nHost: localhost\r\nX-Never: ends";
        if (i % 2) send_all(flood[i], part, strlen(part));
    }
    sleep_ms(300);
    double t0 = now_s();
    Resp h = http_get(s.port, "/health");
    double ms = (now_s() - t0) * 1e3;
    ck_assert_int_eq(h.status, 200);
    resp_free(&h);
    // Without giving way it waits for idle connections to time out (20 s).
    ck_assert_msg(ms < 1000, "/health took %.0f ms behind %d idle connections", ms, FLOOD);

    // The oldest idle ones went: as many as it takes to keep the cap.
    int closed = 0;
    for (int i = 0; i < FLOOD; i++) {
        struct pollfd p = {.fd = flood[i], .events = POLLIN};
        char c;
        closed += poll(&p, 1, 0) == 1 && recv(flood[i], &c, 1, 0) == 0;
    }
    ck_assert_int_ge(closed, FLOOD + 2 - CAP);
    ck_assert_int_ge(metric(s.port, "charlm_connections_closed_total{reason=\"evicted\"} "),
                     FLOOD + 2 - CAP);
    pthread_join(t, NULL);
    ck_assert_msg(r.complete, "the stream was cut after %zu bytes", r.len);
    close(r.fd);
    for (int i = 0; i < FLOOD; i++) close(flood[i]);
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

START_TEST(test_max_connections_per_ip) {
    enum { N = 3 };
    const char *args[] = {"--max-connections-per-ip", "3", NULL};
    Srv s;
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
    int mine[N];
    for (int i = 0; i < N; i++) mine[i] = connect_from(2, s.port, 0);
    // One more from the same address is closed at once, with no reply.
    int extra = connect_from(2, s.port, 0);
    struct pollfd p = {.fd = extra, .events = POLLIN};
    ck_assert_int_eq(poll(&p, 1, 2000), 1);
    char buf[512];
    ck_assert_int_le(recv(extra, buf, sizeof(buf), 0), 0);
    close(extra);
    // Another address is served meanwhile, and so are the first N.
    Resp h = http_get(s.port, "/health");
    ck_assert_int_eq(h.status, 200);
    resp_free(&h);
    const char *get = "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n";
    for (int i = 0; i < N; i++) {
        send_all(mine[i], get, strlen(get));
        ssize_t n = recv(mine[i], buf, sizeof(buf) - 1, 0);
        ck_assert_int_gt(n, 12);
        ck_assert_int_eq(strncmp(buf, "HTTP/1.1 200", 12), 0);
    }
    // A connection closed makes room for a new one.
    close(mine[0]);
    sleep_ms(200);
    mine[0] = connect_from(2, s.port, 0);
    send_all(mine[0], get, strlen(get));
    ssize_t n = recv(mine[0], buf, sizeof(buf) - 1, 0);
    ck_assert_int_gt(n, 12);
    ck_assert_int_eq(strncmp(buf, "HTTP/1.1 200", 12), 0);
    for (int i = 0; i < N; i++) close(mine[i]);
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("server_conns");
    TCase *tc = tcase_create("conns");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_slow_reader_gets_everything);
    tcase_add_test(tc, test_stalled_reader_is_cut);
    tcase_add_test(tc, test_idle_connections_give_way);
    tcase_add_test(tc, test_max_connections_per_ip);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
