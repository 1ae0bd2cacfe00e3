// DNS rebinding protection (hostcheck.h): which Host headers a loopback server answers.
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "hostcheck.h"

static const CliList none = {0};
static const CliList some = {2, {"charlm.example, Other.Example", "[fe80::1]"}};

static const struct {
    const char *host;  // NULL: no Host header
    int plain, listed; // answered with no --allowed-host / with `some`
} hosts[] = {
    {NULL, 1, 1},
    {"localhost", 1, 1},
    {"LOCALHOST", 1, 1},
    {"localhost:8080", 1, 1},
    {"localhost:", 1, 1}, // the port may be empty (RFC 3986)
    {"localhost ", 1, 1}, // libmicrohttpd keeps trailing spaces
    {"127.0.0.1", 1, 1},
    {"127.0.0.1:8080", 1, 1},
    {"127.1.2.3:1", 1, 1},
    {"127.255.255.255", 1, 1},
    {"[::1]", 1, 1},
    {"[::1]:8080", 1, 1},
    {"[0:0:0:0:0:0:0:1]:80", 1, 1},
    {"[::ffff:127.0.0.1]", 1, 1},
    // A rebinding page's name, and everything not plainly this machine.
    {"evil.example", 0, 0},
    {"evil.example:8080", 0, 0},
    {"localhost.evil.example", 0, 0},
    {"evil-localhost", 0, 0},
    {"localhostx", 0, 0},
    {"localhost.", 0, 0},
    {"sub.localhost", 0, 0},
    {"127.0.0.1.nip.io", 0, 0},
    {"128.0.0.1", 0, 0},
    {"10.0.0.1", 0, 0},
    {"0.0.0.0", 0, 0},
    {"127.1", 0, 0}, // inet_aton would read it as 127.0.0.1; a browser sends 127.0.0.1
    {"0x7f.0.0.1", 0, 0},
    {"2130706433", 0, 0},
    {"::1", 0, 0}, // an IPv6 address must be in brackets
    {"[::1", 0, 0},
    {"[::2]", 0, 0},
    {"[::1]x", 0, 0},
    {"localhost:80x", 0, 0},
    {"localhost:80:80", 0, 0},
    {"localhost@evil.example", 0, 0},
    {"", 0, 0},
    // --allowed-host names, in any letter case, with any port.
    {"charlm.example", 0, 1},
    {"CHARLM.example:443", 0, 1},
    {"other.example", 0, 1},
    {"[FE80::1]:8080", 0, 1},
    {"charlm.example.evil", 0, 0},
    {"xcharlm.example", 0, 0},
    {"charlm.exampl", 0, 0},
};

START_TEST(test_match) {
    for (size_t i = 0; i < sizeof(hosts) / sizeof(*hosts); i++) {
        const char *h = hosts[i].host ? hosts[i].host : "(none)";
        ck_assert_msg(hostcheck_match(hosts[i].host, &none) == hosts[i].plain, "%s: %s", h,
                      hosts[i].plain ? "refused" : "allowed");
        ck_assert_msg(hostcheck_match(hosts[i].host, &some) == hosts[i].listed,
                      "%s with --allowed-host: %s", h, hosts[i].listed ? "refused" : "allowed");
    }
    const CliList any = {1, {"*"}};
    ck_assert_int_eq(hostcheck_match("evil.example:1", &any), 1);
}
END_TEST

START_TEST(test_init) {
    static const struct {
        const char *value;
        int ok;
    } values[] = {
        {"charlm.example", 1}, {"a.b, c.d e", 1}, {"192.168.1.2", 1}, {"[::1]", 1}, {"*", 1},
        {"my_host-1.lan", 1},  {"x:8080", 0},     {"http://x", 0},    {"x/y", 0},   {"[zz]", 0},
        {"[::1]:80", 0},       {"a,b:1", 0},      {"caf\xc3\xa9", 0},
    };
    for (size_t i = 0; i < sizeof(values) / sizeof(*values); i++) {
        CliList l = {1, {values[i].value}};
        char err[ERR_LEN] = "";
        int rc = hostcheck_init(&l, err);
        ck_assert_msg((rc == 0) == values[i].ok, "'%s': %s", values[i].value,
                      rc ? err : "accepted");
        if (rc) ck_assert_ptr_nonnull(strstr(err, "--allowed-host"));
    }
}
END_TEST

// A socket bound to addr (port 0), or -1 when the machine has no such address.
static int bound(int family, const char *addr) {
    int fd = socket(family, SOCK_STREAM, 0);
    struct sockaddr_storage ss = {0};
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        inet_pton(AF_INET, addr, &a->sin_addr);
        len = sizeof(*a);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        inet_pton(AF_INET6, addr, &a->sin6_addr);
        len = sizeof(*a);
    }
    if (fd >= 0 && bind(fd, (struct sockaddr *)&ss, len) == 0) return fd;
    if (fd >= 0) close(fd);
    return -1;
}

// The check is on for a loopback listener without keys only.
START_TEST(test_listening) {
    ck_assert_int_eq(hostcheck_init(&none, NULL), 0);
    static const struct {
        int family;
        const char *addr;
        int loopback;
    } binds[] = {
        {AF_INET, "127.0.0.1", 1}, {AF_INET, "127.0.0.2", 1}, {AF_INET, "0.0.0.0", 0},
        {AF_INET6, "::1", 1},      {AF_INET6, "::", 0},
    };
    for (size_t i = 0; i < sizeof(binds) / sizeof(*binds); i++) {
        int fd = bound(binds[i].family, binds[i].addr);
        if (fd < 0) continue; // e.g. no IPv6 in this sandbox
        hostcheck_listening(fd, 0);
        ck_assert_msg(hostcheck_allows("evil.example") == !binds[i].loopback, "%s", binds[i].addr);
        ck_assert_int_eq(hostcheck_allows("localhost:1"), 1);
        ck_assert_int_eq(hostcheck_allows(NULL), 1);
        hostcheck_listening(fd, 1); // with keys, never
        ck_assert_int_eq(hostcheck_allows("evil.example"), 1);
        close(fd);
    }
    struct sockaddr_in6 mapped = {.sin6_family = AF_INET6};
    inet_pton(AF_INET6, "::ffff:127.0.0.9", &mapped.sin6_addr);
    ck_assert_int_eq(hostcheck_is_loopback((struct sockaddr *)&mapped), 1);
    inet_pton(AF_INET6, "::ffff:10.0.0.9", &mapped.sin6_addr);
    ck_assert_int_eq(hostcheck_is_loopback((struct sockaddr *)&mapped), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("hostcheck");
    TCase *tc = tcase_create("rules");
    tcase_add_test(tc, test_match);
    tcase_add_test(tc, test_init);
    tcase_add_test(tc, test_listening);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
