/* charlm-server over real HTTP, raw bytes on a socket: framing and header fields a proxy
 * could read another way get their status line at once and the connection closed
 * (headers.h, fields.h); a loopback server without keys answers only Host headers that
 * name this machine or an --allowed-host (hostcheck.h). */
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server_harness.h"
#include "testutil.h"

#define KEY "sekrit-key-123"

static void suite_setup(void) {
    suite_model_make(2000, 8, 32, 1, 5);
}

static void suite_teardown(void) {
    suite_model_remove();
}

typedef struct {
    char status[64]; // the status line, "" when none came
    char body[512];  // the start of the reply's body
    int closed;      // the server closed the connection
    double ms;       // until the close, or the wait's end
} Raw;

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* Sends len bytes on a new connection, then reads until the server closes it or wait_ms
 * passes. */
static Raw raw_exchange(int port, const char *req, size_t len, int wait_ms) {
    Raw r = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
    char buf[8192];
    size_t got = 0;
    double t0 = now_ms();
    for (;;) {
        int left = wait_ms - (int)(now_ms() - t0);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) <= 0) break;
        ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (n <= 0) {
            r.closed = 1; // an orderly close or a reset: either way, it is over
            break;
        }
        got += (size_t)n;
        if (got == sizeof(buf) - 1) break;
    }
    r.ms = now_ms() - t0;
    close(fd);
    buf[got] = '\0';
    snprintf(r.status, sizeof(r.status), "%.*s", (int)strcspn(buf, "\r\n"), buf);
    const char *body = strstr(buf, "\r\n\r\n");
    if (body) snprintf(r.body, sizeof(r.body), "%s", body + 4);
    return r;
}

#define JSON         "{\"prompt\": \"a\", \"max_tokens\": 1}"
#define POST         "POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
#define CHUNKED_BODY "20\r\n" JSON "\r\n0\r\n\r\n"
#define R(s)         s, sizeof(s) - 1

static const struct {
    const char *what, *req;
    size_t len;
    const char *status;
} refused[] = {
    {"Content-Length with Transfer-Encoding",
     R(POST "Content-Length: 32\r\nTransfer-Encoding: chunked\r\n\r\n" CHUNKED_BODY),
     "HTTP/1.1 400 "},
    {"Transfer-Encoding with Content-Length",
     R(POST "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n" CHUNKED_BODY),
     "HTTP/1.1 400 "},
    {"two Content-Length values", R(POST "Content-Length: 32\r\nContent-Length: 5\r\n\r\n" JSON),
     "HTTP/1.1 400 "},
    {"Transfer-Encoding: xchunked", R(POST "Transfer-Encoding: xchunked\r\n\r\n" CHUNKED_BODY),
     "HTTP/1.1 501 "},
    {"Transfer-Encoding: chunked, identity",
     R(POST "Transfer-Encoding: chunked, identity\r\n\r\n" CHUNKED_BODY), "HTTP/1.1 501 "},
    {"GET with an unknown coding",
     R("GET /health HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\n"),
     "HTTP/1.1 501 "},
    {"Transfer-Encoding: chunked twice",
     R(POST "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n" CHUNKED_BODY),
     "HTTP/1.1 400 "},
    {"a space before the colon",
     R(POST "Transfer-Encoding : chunked\r\nContent-Length: 32\r\n\r\n" JSON), "HTTP/1.1 400 "},
    {"a NUL in a value", R("GET /health HTTP/1.1\r\nHost: localhost\r\nX-A: b\0junk\r\n\r\n"),
     "HTTP/1.1 400 "},
    {"a NUL in the first of several values",
     R("GET /health HTTP/1.1\r\nX-A: b\0junk\r\nHost: localhost\r\nX-B: c\r\n\r\n"),
     "HTTP/1.1 400 "},
    {"a NUL ending a value", R("GET /health HTTP/1.1\r\nHost: localhost\r\nX-A: b\0\r\n\r\n"),
     "HTTP/1.1 400 "},
    {"a NUL in the last value, bare LFs", R("GET /health HTTP/1.1\nHost: localhost\0x\n\n"),
     "HTTP/1.1 400 "},
    {"a bare CR in a value", R("GET /health HTTP/1.1\r\nHost: localhost\r\nX-A: b\rc\r\n\r\n"),
     "HTTP/1.1 400 "},
    {"a folded line", R("GET /health HTTP/1.1\r\nHost: localhost\r\nX-A: b\r\n c\r\n\r\n"),
     "HTTP/1.1 400 "},
    {"two Host headers", R("GET /health HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n"),
     "HTTP/1.1 400 "},
};

// Each one: its status at once (not at the idle timeout), a JSON error, the connection
// closed, and the server fine afterwards. Every case is tried, and the failures listed.
START_TEST(test_framing_refused) {
    char failed[4096] = "";
    size_t used = 0;
    for (size_t i = 0; i < sizeof(refused) / sizeof(*refused); i++) {
        Raw r = raw_exchange(S.port, refused[i].req, refused[i].len, 3000);
        if (strncmp(r.status, refused[i].status, strlen(refused[i].status)) != 0 ||
            !strstr(r.body, "\"error\"") || !r.closed || r.ms >= 2000)
            used += (size_t)snprintf(failed + used, sizeof(failed) - used,
                                     "\n  %s: \"%s\", %s after %.0f ms", refused[i].what, r.status,
                                     r.closed ? "closed" : "open", r.ms);
    }
    ck_assert_msg(!used, "refusals that went wrong:%s", failed);
    Resp h = http_get(S.port, "/health");
    ck_assert_int_eq(h.status, 200);
    resp_free(&h);
}
END_TEST

// What is fine stays fine, and keeps the connection: two requests on one, a chunked body,
// a repeated identical Content-Length, bare LF line ends.
START_TEST(test_framing_accepted) {
    const char two[] = POST "Transfer-Encoding: Chunked\r\n\r\n" CHUNKED_BODY POST
                            "Content-Length: 32\r\nContent-Length: 32\r\n\r\n" JSON;
    Raw r = raw_exchange(S.port, two, sizeof(two) - 1, 1500);
    ck_assert_msg(strncmp(r.status, "HTTP/1.1 200 ", 13) == 0, "%s", r.status);
    ck_assert_msg(strstr(r.body, "HTTP/1.1 200 "), "second reply: %s", r.body);
    ck_assert_msg(!r.closed, "the connection was closed");
    const char lf[] = "GET /health HTTP/1.1\nHost: localhost\nX-A: b\tc \n\n";
    r = raw_exchange(S.port, lf, sizeof(lf) - 1, 1000);
    ck_assert_msg(strncmp(r.status, "HTTP/1.1 200 ", 13) == 0, "%s", r.status);
}
END_TEST

// With keys, a key followed by hidden bytes, or two Authorization headers, is a 400
// (libmicrohttpd alone takes the first, cut at the NUL).
START_TEST(test_authorization_refused) {
    const char *args[] = {"--api-key", KEY, NULL};
    Srv s;
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
    const char good[] =
        "GET /model HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " KEY "\r\n\r\n";
    Raw r = raw_exchange(s.port, good, sizeof(good) - 1, 1000);
    ck_assert_msg(strncmp(r.status, "HTTP/1.1 200 ", 13) == 0, "%s", r.status);
    const char nul[] =
        "GET /model HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " KEY "\0junk\r\n\r\n";
    r = raw_exchange(s.port, nul, sizeof(nul) - 1, 5000);
    ck_assert_msg(strncmp(r.status, "HTTP/1.1 400 ", 13) == 0, "key\\0junk: %s", r.status);
    ck_assert(r.closed);
    const char twice[] = "GET /model HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " KEY
                         "\r\nAuthorization: Bearer other\r\n\r\n";
    r = raw_exchange(s.port, twice, sizeof(twice) - 1, 5000);
    ck_assert_msg(strncmp(r.status, "HTTP/1.1 400 ", 13) == 0, "two keys: %s", r.status);
    ck_assert(r.closed);
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

// One request with the given Host ("" for none, as HTTP/1.0); a POST has the body {}.
static void expect_status(int port, const char *method, const char *path, const char *host,
                          int status) {
    char req[512];
    int post = strcmp(method, "POST") == 0;
    int n = *host ? snprintf(req, sizeof(req),
                             "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s\r\n%s", method,
                             path, host,
                             post ? "Content-Type: application/json\r\nContent-Length: 2\r\n" : "",
                             post ? "{}" : "")
                  : snprintf(req, sizeof(req), "%s %s HTTP/1.0\r\n\r\n", method, path);
    Raw r = raw_exchange(port, req, (size_t)n, *host ? 1000 : 5000);
    ck_assert_msg(strncmp(r.status, "HTTP/1.", 7) == 0 && atoi(r.status + 9) == status,
                  "%s %s, Host \"%s\": \"%s\"", method, path, host, r.status);
    if (status == 403) {
        ck_assert_msg(strstr(r.body, "permission_error") && strstr(r.body, "--allowed-host"),
                      "403 body: %s", r.body);
        ck_assert_msg(!strstr(r.body, host), "the Host is echoed: %s", r.body);
    }
}

// The default server listens on 127.0.0.1 without keys: a rebinding page's name is
// refused on every route, this machine's names are answered.
START_TEST(test_host_rebinding) {
    const char *routes[][2] = {{"GET", "/health"},        {"GET", "/"},
                               {"GET", "/v1/models"},     {"POST", "/generate"},
                               {"POST", "/admin/reload"}, {"GET", "/nowhere"}};
    for (size_t i = 0; i < sizeof(routes) / sizeof(*routes); i++) {
        expect_status(S.port, routes[i][0], routes[i][1], "evil.example", 403);
        expect_status(S.port, routes[i][0], routes[i][1], "evil.example:8080", 403);
    }
    const char *ours[] = {"localhost",  "LocalHost:8080", "127.0.0.1", "127.0.0.1:1",
                          "127.8.9.10", "[::1]",          "[::1]:8080"};
    for (size_t i = 0; i < sizeof(ours) / sizeof(*ours); i++)
        expect_status(S.port, "GET", "/health", ours[i], 200);
    expect_status(S.port, "GET", "/health", "", 200); // HTTP/1.0, no Host: not a browser
    // libcurl's own Host, as every other suite sends it.
    Resp h = http_get(S.port, "/health");
    ck_assert_int_eq(h.status, 200);
    resp_free(&h);
}
END_TEST

START_TEST(test_host_allowed) {
    const char *args[] = {"--allowed-host", "charlm.example", "--allowed-host", "[fe80::1]", NULL};
    Srv s;
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
    expect_status(s.port, "GET", "/health", "charlm.example:8080", 200);
    expect_status(s.port, "GET", "/health", "CHARLM.EXAMPLE", 200);
    expect_status(s.port, "GET", "/health", "[fe80::1]:80", 200);
    expect_status(s.port, "GET", "/health", "localhost", 200);
    expect_status(s.port, "GET", "/health", "evil.example", 403);
    ck_assert_int_eq(srv_stop(&s), 0);

    const char *env[] = {"CHARLM_ALLOWED_HOST=a.example, b.example", NULL};
    ck_assert_int_eq(srv_start_env(&s, model_dir, NULL, env), 0);
    expect_status(s.port, "GET", "/health", "b.example", 200);
    expect_status(s.port, "GET", "/health", "charlm.example", 403);
    ck_assert_int_eq(srv_stop(&s), 0);

    const char *any[] = {"--allowed-host", "*", NULL};
    ck_assert_int_eq(srv_start(&s, model_dir, any), 0);
    expect_status(s.port, "GET", "/health", "evil.example", 200);
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

// With a key the key protects the server, and any Host is answered.
START_TEST(test_host_with_keys) {
    const char *args[] = {"--api-key", KEY, NULL};
    Srv s;
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
    expect_status(s.port, "GET", "/health", "evil.example", 200);
    expect_status(s.port, "GET", "/v1/models", "evil.example", 401);
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

START_TEST(test_allowed_host_flag) {
    const char *bad[] = {"x.example:8080", "http://x.example", "[::1]:80"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        char cmd[1024], *out, *err;
        snprintf(cmd, sizeof(cmd), "%s --model %s --port 0 --allowed-host '%s'",
                 tu_bin("charlm-server"), model_dir, bad[i]);
        int rc = tu_run(cmd, &out, &err);
        ck_assert_msg(rc == 2, "%s: exit %d", bad[i], rc);
        const char *nl = strchr(err, '\n');
        ck_assert_msg(strstr(err, "--allowed-host") && strstr(err, "is not a host name") && nl &&
                          !nl[1],
                      "%s: not one line: %s", bad[i], err);
        free(out);
        free(err);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("server_headers");
    TCase *tc = tcase_create("http");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_checked_fixture(tc, start_default, stop_default);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_framing_refused);
    tcase_add_test(tc, test_framing_accepted);
    tcase_add_test(tc, test_authorization_refused);
    tcase_add_test(tc, test_host_rebinding);
    tcase_add_test(tc, test_host_allowed);
    tcase_add_test(tc, test_host_with_keys);
    tcase_add_test(tc, test_allowed_host_flag);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
