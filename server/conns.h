/*
 * conns.h — the open connections as the transport keeps them: --idle-timeout measured as
 * a connection making no progress, and --max-connections kept by making connections that
 * have no request in flight give way to new ones.
 *
 * Every connection libmicrohttpd accepts is registered here (conns_notify is its
 * MHD_OPTION_NOTIFY_CONNECTION callback) and is at any time either busy — its whole
 * request is in and it is being answered — or idle: between two requests, or still
 * sending one (request line, headers or body).
 *
 * Idle timeout. libmicrohttpd's own timeout counts only its own reads and writes, so it
 * cut a client that drains a large socket buffer steadily but too slowly for the socket
 * to turn writable within the timeout. It is off; instead a housekeeping thread reads
 * each socket's TCP counters (bytes received from the client, bytes the client has
 * acknowledged) about ten times per timeout. A connection whose counters have not moved
 * for --idle-timeout is shut down if it is idle, or if it is busy with unacknowledged
 * reply bytes in its socket (a reader who stopped). A busy connection with nothing
 * waiting in its socket is waiting for the server (a generation) and is never cut.
 *
 * The cap. libmicrohttpd may hold CONNS_SLACK more than --max-connections, for the ones
 * being shut down; when a new connection makes more than --max-connections open that are
 * not being shut down, the one idle the longest is shut down — the new one itself when
 * every other is busy. A busy connection is never evicted.
 *
 * --max-connections-per-ip is libmicrohttpd's: a connection past it is closed as soon as
 * it is accepted, before it is registered here.
 *
 * Threads: conns_notify, conns_busy and conns_idle run on libmicrohttpd's thread, the
 * housekeeper on its own; one mutex covers the registry, and a socket is shut down only
 * under it while registered, i.e. before libmicrohttpd closes it (it unregisters first).
 */
#ifndef CHARLM_CONNS_H
#define CHARLM_CONNS_H

#include <microhttpd.h>

/* How many connections beyond --max-connections libmicrohttpd may hold while they close. */
#define CONNS_SLACK 16

/* Sizes the registry for max_conns (+ CONNS_SLACK) and starts the housekeeper. Returns 0,
 * or -1 with err set. */
int conns_start(int max_conns, int idle_timeout_s, char *err);
/* Stops the housekeeper (before libmicrohttpd is stopped). */
void conns_stop(void);
/* Frees the registry, once libmicrohttpd has stopped and unregistered every connection. */
void conns_free(void);

/* libmicrohttpd's connection notice: registers and unregisters, and evicts at the cap. */
void conns_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                  enum MHD_ConnectionNotificationCode code);
/* The connection's request is all in (or answered early): it is busy until conns_idle. */
void conns_busy(struct MHD_Connection *conn);
/* Its request has ended (its reply handed to the socket, or abandoned). */
void conns_idle(struct MHD_Connection *conn);

#endif
