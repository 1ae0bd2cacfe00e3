/*
 * connflood — how much latency a flood of idle connections from one address adds to
 * other clients' requests.
 *
 *   connflood --port N [--sockets 4500] [--from 127.0.0.2] [--requests 200]
 *             [--path /health] [--seconds 60]
 *
 * First times --requests requests from 127.0.0.1 with no flood, one after the other, each
 * on a new connection (GET --path, Connection: close). Then opens --sockets connections
 * from --from (any 127.x address reaches a loopback server) that send nothing, and keeps
 * them open: one the server closes is opened again at once, as an attacker would. Once
 * they are all open (or 10 s have passed) it times the same requests again, then closes
 * everything. Prints, for both rounds, the median, p99 and worst time to a complete reply,
 * and the median and p99 the flood added; a request that fails or takes over 30 s counts
 * as 30 s. Stops after --seconds in all. The soft open files limit is raised to the hard
 * one; exit 2 when it cannot hold --sockets.
 *
 * Loopback only: --from must be a 127.x address, and the server is always 127.0.0.1.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum { REQUEST_TIMEOUT_S = 30, OPEN_WAIT_S = 10 };

typedef struct {
    struct sockaddr_in server, from;
    int n;
    int *fd;         // [n]; -1 while closed (poll skips it)
    int *connected;  // [n]; 1 once its connect completed
    atomic_int open; // connects completed and not closed since
    atomic_long reopened;
    atomic_int stop;
} Flood;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int flood_connect(Flood *f, int i) {
    f->fd[i] = -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    // The port is then chosen by connect, which avoids the 4-tuples still in TIME-WAIT on
    // the server's side; one chosen by bind alone can hit one and wait for a SYN resend.
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&f->from, sizeof(f->from)) != 0 ||
        (connect(fd, (struct sockaddr *)&f->server, sizeof(f->server)) != 0 &&
         errno != EINPROGRESS)) {
        close(fd);
        return -1;
    }
    f->fd[i] = fd;
    f->connected[i] = 0;
    return 0;
}

// Keeps the flood's sockets open: notices the ones that complete and the ones the server
// closes, and opens those again (and any that could not be opened).
static void *flood_main(void *arg) {
    Flood *f = arg;
    struct pollfd *p = calloc((size_t)f->n, sizeof(*p));
    if (!p) return NULL;
    for (int i = 0; i < f->n; i++) flood_connect(f, i);
    while (!atomic_load(&f->stop)) {
        for (int i = 0; i < f->n; i++)
            if (f->fd[i] < 0 && flood_connect(f, i) == 0) atomic_fetch_add(&f->reopened, 1);
        for (int i = 0; i < f->n; i++)
            p[i] = (struct pollfd){.fd = f->fd[i], .events = f->connected[i] ? POLLIN : POLLOUT};
        if (poll(p, (nfds_t)f->n, 100) <= 0) continue;
        for (int i = 0; i < f->n; i++) {
            if (!p[i].revents) continue;
            int err = 0;
            socklen_t len = sizeof(err);
            if (!f->connected[i] && !(p[i].revents & (POLLERR | POLLHUP)) &&
                getsockopt(f->fd[i], SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
                f->connected[i] = 1;
                atomic_fetch_add(&f->open, 1);
                continue;
            }
            char b[256];
            if (f->connected[i] && !(p[i].revents & (POLLERR | POLLHUP)) &&
                recv(f->fd[i], b, sizeof(b), 0) > 0)
                continue; // the server said something; not expected, still open
            if (f->connected[i]) atomic_fetch_sub(&f->open, 1);
            close(f->fd[i]);
            f->fd[i] = -1;
            if (flood_connect(f, i) == 0) atomic_fetch_add(&f->reopened, 1);
        }
    }
    for (int i = 0; i < f->n; i++)
        if (f->fd[i] >= 0) close(f->fd[i]);
    free(p);
    return NULL;
}

// One request on a new connection from 127.0.0.1: seconds to the end of its reply, or
// REQUEST_TIMEOUT_S when it failed.
static double timed_request(const struct sockaddr_in *server, const char *path) {
    double t0 = now_s();
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return REQUEST_TIMEOUT_S;
    struct timeval tv = {.tv_sec = REQUEST_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    char req[512], buf[4096];
    int n = snprintf(req, sizeof(req),
                     "GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", path);
    int ok = connect(fd, (const struct sockaddr *)server, sizeof(*server)) == 0 &&
             send(fd, req, (size_t)n, MSG_NOSIGNAL) == n;
    size_t got = 0;
    ssize_t r;
    while (ok && (r = recv(fd, buf, sizeof(buf), 0)) > 0) {
        if (got == 0 && strncmp(buf, "HTTP/1.1 200", 12) != 0) ok = 0;
        got += (size_t)r;
    }
    ok = ok && got > 0 && r == 0;
    close(fd);
    double s = now_s() - t0;
    return ok && s < REQUEST_TIMEOUT_S ? s : REQUEST_TIMEOUT_S;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Times up to n requests, stopping at the deadline; sorts them and returns how many ran.
static int round_run(const struct sockaddr_in *server, const char *path, double *ms, int n,
                     double deadline) {
    int k = 0;
    for (; k < n && now_s() < deadline; k++) ms[k] = timed_request(server, path) * 1e3;
    qsort(ms, (size_t)k, sizeof(*ms), cmp_double);
    return k;
}

static double pct(const double *sorted, int n, double q) {
    int i = (int)(q * (n - 1) + 0.5);
    return n ? sorted[i] : 0;
}

static int usage(void) {
    fprintf(stderr, "usage: connflood --port N [--sockets 4500] [--from 127.0.0.2] "
                    "[--requests 200] [--path /health] [--seconds 60]\n");
    return 2;
}

int main(int argc, char **argv) {
    long port = 0, sockets = 4500, requests = 200;
    double seconds = 60;
    const char *from = "127.0.0.2", *path = "/health";
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) return usage();
        const char *flag = argv[i], *val = argv[++i];
        char *end;
        double v = strtod(val, &end);
        int num = *end == '\0';
        if (strcmp(flag, "--from") == 0)
            from = val;
        else if (strcmp(flag, "--path") == 0 && val[0] == '/')
            path = val;
        else if (num && strcmp(flag, "--port") == 0 && v >= 1 && v <= 65535)
            port = (long)v;
        else if (num && strcmp(flag, "--sockets") == 0 && v >= 1 && v <= 60000)
            sockets = (long)v;
        else if (num && strcmp(flag, "--requests") == 0 && v >= 1 && v <= 100000)
            requests = (long)v;
        else if (num && strcmp(flag, "--seconds") == 0 && v > 0)
            seconds = v;
        else
            return usage();
    }
    if (!port) return usage();
    Flood f = {.n = (int)sockets};
    f.server = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    f.server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f.from = (struct sockaddr_in){.sin_family = AF_INET};
    if (inet_pton(AF_INET, from, &f.from.sin_addr) != 1 ||
        (ntohl(f.from.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "connflood: --from must be a 127.x address\n");
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < (rlim_t)sockets + 64) {
        fprintf(stderr, "connflood: the open files limit is too low for %ld sockets\n", sockets);
        return 2;
    }
    double *base = calloc((size_t)requests, sizeof(double));
    double *flooded = calloc((size_t)requests, sizeof(double));
    f.fd = calloc((size_t)sockets, sizeof(int));
    f.connected = calloc((size_t)sockets, sizeof(int));
    if (!base || !flooded || !f.fd || !f.connected) {
        fprintf(stderr, "connflood: out of memory\n");
        return 1;
    }
    double t0 = now_s(), end = t0 + seconds;

    int nb = round_run(&f.server, path, base, (int)requests, t0 + seconds / 3);
    printf("without flood: %d requests, median %.2f ms, p99 %.2f ms, max %.2f ms\n", nb,
           pct(base, nb, 0.5), pct(base, nb, 0.99), pct(base, nb, 1));
    fflush(stdout);

    atomic_init(&f.open, 0);
    atomic_init(&f.reopened, 0);
    atomic_init(&f.stop, 0);
    pthread_t ft;
    if (pthread_create(&ft, NULL, flood_main, &f) != 0) return 1;
    double until = now_s() + OPEN_WAIT_S;
    while (atomic_load(&f.open) < f.n && now_s() < until) usleep(20000);
    printf("flood: %d of %d sockets from %s open after %.1f s, %ld reopened\n",
           atomic_load(&f.open), f.n, from, now_s() - (until - OPEN_WAIT_S),
           atomic_load(&f.reopened));
    fflush(stdout);

    int nf = round_run(&f.server, path, flooded, (int)requests, end);
    printf("with flood:    %d requests, median %.2f ms, p99 %.2f ms, max %.2f ms "
           "(flood: %d open, %ld reopened)\n",
           nf, pct(flooded, nf, 0.5), pct(flooded, nf, 0.99), pct(flooded, nf, 1),
           atomic_load(&f.open), atomic_load(&f.reopened));
    printf("added by %ld idle sockets: median %.2f ms, p99 %.2f ms\n", sockets,
           pct(flooded, nf, 0.5) - pct(base, nb, 0.5),
           pct(flooded, nf, 0.99) - pct(base, nb, 0.99));
    atomic_store(&f.stop, 1);
    pthread_join(ft, NULL);
    free(base);
    free(flooded);
    free(f.fd);
    free(f.connected);
    return 0;
}
