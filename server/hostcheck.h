/*
 * hostcheck.h — DNS rebinding protection: which Host headers a loopback server answers.
 *
 * A web page on any site can make its visitor's browser call http://127.0.0.1:8080 under
 * the page's own name, by having that name resolve to 127.0.0.1 (DNS rebinding, the class
 * of Ollama's CVE-2024-28224): the browser then treats the server as the page's origin,
 * so CORS does not stop it from reading replies or from POSTing /admin/reload. The
 * request still carries the page's name in its Host header, which a browser never lets a
 * page set. So a server that listens on a loopback address (127.0.0.0/8, ::1) and asks
 * for no API key answers 403 to every request, on every route, whose Host is none of:
 *
 *   localhost, an IPv4 address in 127.0.0.0/8, [::1] (any spelling of it), each with or
 *   without a port; a name --allowed-host lists; anything when --allowed-host lists *.
 *
 * Names are compared in any letter case. A request without Host is answered: no browser
 * sends one (HTTP/1.0 clients and probes may). Listening on another address, or with
 * API keys, the Host is not looked at: keys are the protection there.
 */
#ifndef CHARLM_HOSTCHECK_H
#define CHARLM_HOSTCHECK_H

#include <stddef.h>
#include <sys/socket.h>

#include "cli.h"

/* Checks the --allowed-host values (each one or several names, separated by commas or
 * spaces: a host name, an IPv4 address, an IPv6 one in brackets, or *; no port). Returns
 * 0, or -1 with err naming the value at fault. */
int hostcheck_init(const CliList *allowed, char *err);
/* Turns the check on when the socket listen_fd listens on a loopback address and keys is
 * 0 (no API key configured). */
void hostcheck_listening(int listen_fd, int keys);
/* 1 when addr is in 127.0.0.0/8, or is ::1 or ::ffff:127.x.x.x. */
int hostcheck_is_loopback(const struct sockaddr *addr);
/* 1 when a request with this Host header (NULL: none) is answered: always when the check
 * is off. */
int hostcheck_allows(const char *host);
/* The rule itself: 1 when host (NULL: none) is a loopback name or one of allowed's. */
int hostcheck_match(const char *host, const CliList *allowed);

#endif
