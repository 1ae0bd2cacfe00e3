#include <linux/sockios.h>
#include <linux/tcp.h> // struct tcp_info with tcpi_bytes_acked/_received (glibc's has not)
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>

#include "conns.h"
#include "error.h"
#include "server.h"

// Slots the housekeeper looks at per hold of the lock, so that libmicrohttpd's thread
// never waits long for it however many connections are open.
#define SCAN_BATCH 64

typedef struct {
    int fd;      // -1: a free slot
    int busy;    // its request is in and being answered
    int closing; // shut down by us; libmicrohttpd has not closed it yet
    int64_t since_ms;
    uint64_t acked, received; // the socket's TCP counters when last looked at
    int prev, next;           // in the idle list (oldest first) while idle; next in the free list
} Conn;

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    Conn *c;
    int nslots; // allocated
    int used;   // slots ever taken: [used, nslots) were never touched
    int free_head;
    int idle_head, idle_tail; // idle connections, the one idle the longest first
    int open;                 // registered and not being shut down
    int max_conns;
    int64_t timeout_ms, period_ms;
    int stop, started;
    pthread_t thread;
} R = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static int64_t now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void idle_append(int i) {
    Conn *c = &R.c[i];
    c->prev = R.idle_tail;
    c->next = -1;
    if (R.idle_tail >= 0)
        R.c[R.idle_tail].next = i;
    else
        R.idle_head = i;
    R.idle_tail = i;
}

static void idle_remove(int i) {
    Conn *c = &R.c[i];
    if (c->prev >= 0)
        R.c[c->prev].next = c->next;
    else
        R.idle_head = c->next;
    if (c->next >= 0)
        R.c[c->next].prev = c->prev;
    else
        R.idle_tail = c->prev;
}

// Shuts the socket down; libmicrohttpd then sees it end, closes it and unregisters it.
static void conn_shut(int i, atomic_long *counter) {
    Conn *c = &R.c[i];
    if (!c->busy) idle_remove(i);
    c->closing = 1;
    R.open--;
    shutdown(c->fd, SHUT_RDWR);
    atomic_fetch_add(counter, 1);
}

// Progress is the client sending or acknowledging bytes; a busy connection with nothing
// left in its socket waits for the server, which is progress too.
static void conn_check(int i, int64_t now) {
    Conn *c = &R.c[i];
    if (c->fd < 0 || c->closing) return;
    struct tcp_info ti;
    socklen_t len = sizeof(ti);
    memset(&ti, 0, sizeof(ti));
    if (getsockopt(c->fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 &&
        (ti.tcpi_bytes_acked != c->acked || ti.tcpi_bytes_received != c->received)) {
        c->acked = ti.tcpi_bytes_acked;
        c->received = ti.tcpi_bytes_received;
        c->since_ms = now;
        return;
    }
    int unsent = 0;
    if (c->busy && (ioctl(c->fd, SIOCOUTQ, &unsent) != 0 || unsent == 0)) {
        c->since_ms = now;
        return;
    }
    if (now - c->since_ms >= R.timeout_ms) conn_shut(i, &srv.conns_timed_out);
}

static void *housekeeper_main(void *arg) {
    (void)arg;
    pthread_mutex_lock(&R.mu);
    while (!R.stop) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)(R.period_ms % 1000) * 1000000L;
        until.tv_sec += (time_t)(R.period_ms / 1000) + until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&R.cv, &R.mu, &until);
        for (int base = 0; base < R.used && !R.stop; base += SCAN_BATCH) {
            int64_t now = now_ms();
            for (int i = base; i < base + SCAN_BATCH && i < R.used; i++) conn_check(i, now);
            pthread_mutex_unlock(&R.mu);
            pthread_mutex_lock(&R.mu);
        }
    }
    pthread_mutex_unlock(&R.mu);
    return NULL;
}

int conns_start(int max_conns, int idle_timeout_s, char *err) {
    R.nslots = max_conns + CONNS_SLACK;
    R.c = calloc((size_t)R.nslots, sizeof(*R.c));
    if (!R.c) return err_set(err, "out of memory for %d connections", max_conns);
    R.used = 0;
    R.free_head = -1;
    R.idle_head = R.idle_tail = -1;
    R.open = 0;
    R.max_conns = max_conns;
    R.timeout_ms = (int64_t)idle_timeout_s * 1000;
    // Looked at ten times per timeout, at most once a second: a connection goes within
    // a tenth (or a second) past its timeout.
    R.period_ms = R.timeout_ms / 10 < 1000 ? R.timeout_ms / 10 : 1000;
    R.stop = 0;
    if (pthread_create(&R.thread, NULL, housekeeper_main, NULL) != 0) {
        free(R.c);
        R.c = NULL;
        return err_set(err, "cannot start the connection housekeeper");
    }
    R.started = 1;
    return 0;
}

void conns_stop(void) {
    if (!R.started) return;
    pthread_mutex_lock(&R.mu);
    R.stop = 1;
    pthread_cond_signal(&R.cv);
    pthread_mutex_unlock(&R.mu);
    pthread_join(R.thread, NULL);
    R.started = 0;
}

void conns_free(void) {
    free(R.c);
    R.c = NULL;
    R.nslots = R.used = 0;
}

static void conn_register(struct MHD_Connection *conn, void **socket_context) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    pthread_mutex_lock(&R.mu);
    int i = !ci ? -1 : R.free_head >= 0 ? R.free_head : R.used < R.nslots ? R.used++ : -1;
    if (i < 0) {
        // Not expected: libmicrohttpd holds no more than the slots. A connection outside
        // the registry would escape the idle timeout, so it goes at once.
        if (ci) shutdown(ci->connect_fd, SHUT_RDWR);
        pthread_mutex_unlock(&R.mu);
        return;
    }
    Conn *c = &R.c[i];
    if (i == R.free_head) R.free_head = c->next;
    *c = (Conn){.fd = ci->connect_fd, .since_ms = now_ms()};
    idle_append(i);
    *socket_context = c;
    // At the cap the connection idle the longest gives way: there is always one, this one.
    if (++R.open > R.max_conns) conn_shut(R.idle_head, &srv.conns_evicted);
    pthread_mutex_unlock(&R.mu);
}

static void conn_unregister(Conn *c) {
    pthread_mutex_lock(&R.mu);
    int i = (int)(c - R.c);
    if (!c->closing) {
        if (!c->busy) idle_remove(i);
        R.open--;
    }
    c->fd = -1;
    c->next = R.free_head;
    R.free_head = i;
    pthread_mutex_unlock(&R.mu);
}

void conns_notify(void *cls, struct MHD_Connection *conn, void **socket_context,
                  enum MHD_ConnectionNotificationCode code) {
    (void)cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_register(conn, socket_context);
    } else if (*socket_context) {
        conn_unregister(*socket_context);
        *socket_context = NULL;
    }
}

static Conn *conn_of(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

void conns_busy(struct MHD_Connection *conn) {
    Conn *c = conn_of(conn);
    if (!c) return;
    pthread_mutex_lock(&R.mu);
    if (!c->busy && !c->closing) {
        idle_remove((int)(c - R.c));
        c->busy = 1;
        c->since_ms = now_ms();
    }
    pthread_mutex_unlock(&R.mu);
}

void conns_idle(struct MHD_Connection *conn) {
    Conn *c = conn_of(conn);
    if (!c) return;
    pthread_mutex_lock(&R.mu);
    if (c->busy && !c->closing) {
        c->busy = 0;
        c->since_ms = now_ms();
        idle_append((int)(c - R.c));
    }
    pthread_mutex_unlock(&R.mu);
}
