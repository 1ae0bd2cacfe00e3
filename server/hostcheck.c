#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "hostcheck.h"

static const CliList *allowed_hosts;
static int checking;

// The next name of a list's values, each holding one or several separated by commas or
// spaces. Start with *vi = 0 and *p = NULL; returns NULL after the last.
static const char *next_name(const CliList *l, int *vi, const char **p, size_t *len) {
    for (;;) {
        if (!*p) {
            if (*vi >= l->n) return NULL;
            *p = l->value[(*vi)++];
        }
        *p += strspn(*p, ", \t");
        if (**p) {
            const char *s = *p;
            *len = strcspn(s, ", \t");
            *p += *len;
            return s;
        }
        *p = NULL;
    }
}

// Parses an address of family af from s[0 .. len) into out.
static int parse_addr(int af, const char *s, size_t len, void *out) {
    char buf[INET6_ADDRSTRLEN + 1];
    if (len >= sizeof(buf)) return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return inet_pton(af, buf, out) == 1;
}

static int v6_is_loopback(const struct in6_addr *a) {
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

static int is_loopback_name(const char *s, size_t n) {
    struct in_addr a4;
    struct in6_addr a6;
    if (n == 9 && strncasecmp(s, "localhost", 9) == 0) return 1;
    if (n > 2 && s[0] == '[') return parse_addr(AF_INET6, s + 1, n - 2, &a6) && v6_is_loopback(&a6);
    return parse_addr(AF_INET, s, n, &a4) && (ntohl(a4.s_addr) >> 24) == 127;
}

// A name --allowed-host may hold: a host name or IPv4 address, or an IPv6 one in brackets.
static int is_host_name(const char *s, size_t n) {
    struct in6_addr a6;
    if (n > 2 && s[0] == '[' && s[n - 1] == ']') return parse_addr(AF_INET6, s + 1, n - 2, &a6);
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && !strchr("-._~", s[i])) return 0;
    return n > 0;
}

int hostcheck_init(const CliList *allowed, char *err) {
    int vi = 0;
    const char *p = NULL, *s;
    size_t n;
    while ((s = next_name(allowed, &vi, &p, &n)))
        if (!(n == 1 && *s == '*') && !is_host_name(s, n))
            return err_set(err,
                           "--allowed-host (CHARLM_ALLOWED_HOST): '%.*s' is not a host name "
                           "(give it without scheme or port)",
                           (int)n, s);
    allowed_hosts = allowed;
    return 0;
}

int hostcheck_is_loopback(const struct sockaddr *addr) {
    if (addr->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)addr)->sin_addr.s_addr) >> 24) == 127;
    if (addr->sa_family == AF_INET6)
        return v6_is_loopback(&((const struct sockaddr_in6 *)addr)->sin6_addr);
    return 0;
}

void hostcheck_listening(int listen_fd, int keys) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    checking = !keys && getsockname(listen_fd, (struct sockaddr *)&ss, &len) == 0 &&
               hostcheck_is_loopback((struct sockaddr *)&ss);
}

int hostcheck_match(const char *host, const CliList *allowed) {
    if (!host) return 1;
    size_t n = strlen(host);
    while (n && (host[n - 1] == ' ' || host[n - 1] == '\t')) n--;
    // uri-host [":" port], the port any digits: an IPv6 address is in brackets, and no
    // other host has a colon.
    const char *end = host[0] == '[' ? memchr(host, ']', n) : NULL;
    size_t name_len = end ? (size_t)(end - host) + 1 : strcspn(host, ":");
    if (name_len > n) name_len = n;
    if (name_len < n) {
        if (host[name_len] != ':') return 0;
        for (size_t i = name_len + 1; i < n; i++)
            if (host[i] < '0' || host[i] > '9') return 0;
    }
    if (is_loopback_name(host, name_len)) return 1;
    int vi = 0;
    const char *p = NULL, *s;
    size_t len;
    while (allowed && (s = next_name(allowed, &vi, &p, &len)))
        if ((len == 1 && *s == '*') || (len == name_len && strncasecmp(s, host, len) == 0))
            return 1;
    return 0;
}

int hostcheck_allows(const char *host) {
    return !checking || hostcheck_match(host, allowed_hosts);
}
