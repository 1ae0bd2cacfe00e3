#include <arpa/inet.h>
#include <cblas.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "error.h"
#include "http.h"
#include "info.h"
#include "routes.h"
#include "scheduler.h"
#include "server.h"
#include "static.h"

// After SIGTERM, running generations get this long to finish before they are cancelled.
#define DRAIN_SECONDS 5

static void usage(FILE *f) {
    fprintf(f,
            "usage: charlm-server [options]\n"
            "\n"
            "Serves a charlm model over HTTP: the web page at /, POST /generate,\n"
            "POST /v1/completions, GET /v1/models, /health, /model and /metrics.\n"
            "Every option can also be set by the environment variable in brackets; flags win.\n"
            "\n"
            "  --model DIR          artefacts folder: model.safetensors + vocab.json\n"
            "                       (+ train_log.jsonl) [CHARLM_MODEL] (default: artefacts)\n"
            "  --host ADDR          address to listen on [CHARLM_HOST] (default: 127.0.0.1)\n"
            "  --port N             port, 0 = any free one [CHARLM_PORT] (default: 8080)\n"
            "  --threads N          generation workers, each stepping its requests as one\n"
            "                       batch [CHARLM_THREADS] (default: the number of CPUs)\n"
            "  --max-tokens N       largest max_tokens a request may ask for\n"
            "                       [CHARLM_MAX_TOKENS] (default: 2000)\n"
            "  --max-prompt N       longest prompt, in chars [CHARLM_MAX_PROMPT] (default: 8192)\n"
            "  --max-body N         largest request body, in bytes [CHARLM_MAX_BODY]\n"
            "                       (default: 65536)\n"
            "  --max-concurrent N   generations in flight before 503 [CHARLM_MAX_CONCURRENT]\n"
            "                       (default: 64)\n"
            "  --cors-origin ORIGIN send Access-Control-Allow-Origin: ORIGIN and answer\n"
            "                       preflights [CHARLM_CORS_ORIGIN] (default: off)\n"
            "  --help               this text\n"
            "\n"
            "The static page folder is $CHARLM_STATIC_DIR, else ./static, else\n"
            "<program dir>/../static, else /usr/share/charlm/static.\n");
}

typedef enum { OPT_STR, OPT_INT, OPT_LONG } OptKind;

typedef struct {
    const char *flag, *env;
    OptKind kind;
    long min, max;
    void *dst;
} Option;

static int parse_long(const char *s, long min, long max, long *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

static int set_option(const Option *o, const char *value, const char *source) {
    if (o->kind == OPT_STR) {
        if (!value[0]) {
            fprintf(stderr, SERVER_NAME ": %s must not be empty\n", source);
            return -1;
        }
        for (const char *p = value; *p; p++)
            if ((unsigned char)*p < 0x20 || *p == 0x7f) {
                fprintf(stderr, SERVER_NAME ": %s must not contain control characters\n", source);
                return -1;
            }
        *(const char **)o->dst = value;
        return 0;
    }
    long v;
    if (parse_long(value, o->min, o->max, &v)) {
        fprintf(stderr, SERVER_NAME ": %s must be an integer from %ld to %ld, got '%s'\n", source,
                o->min, o->max, value);
        return -1;
    }
    if (o->kind == OPT_INT)
        *(int *)o->dst = (int)v;
    else
        *(long *)o->dst = v;
    return 0;
}

static int parse_config(int argc, char **argv, ServerConfig *c) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    *c = (ServerConfig){.model_dir = "artefacts",
                        .host = "127.0.0.1",
                        .port = 8080,
                        .threads = ncpu > 0 ? (int)ncpu : 1,
                        .max_tokens = 2000,
                        .max_prompt = 8192,
                        .max_body = 65536,
                        .max_concurrent = 64};
    const Option opts[] = {
        {"--model", "CHARLM_MODEL", OPT_STR, 0, 0, &c->model_dir},
        {"--host", "CHARLM_HOST", OPT_STR, 0, 0, &c->host},
        {"--port", "CHARLM_PORT", OPT_INT, 0, 65535, &c->port},
        {"--threads", "CHARLM_THREADS", OPT_INT, 1, 1024, &c->threads},
        {"--max-tokens", "CHARLM_MAX_TOKENS", OPT_INT, 1, 1000000, &c->max_tokens},
        {"--max-prompt", "CHARLM_MAX_PROMPT", OPT_INT, 0, 10000000, &c->max_prompt},
        {"--max-body", "CHARLM_MAX_BODY", OPT_LONG, 2, 1L << 30, &c->max_body},
        {"--max-concurrent", "CHARLM_MAX_CONCURRENT", OPT_INT, 1, 100000, &c->max_concurrent},
        {"--cors-origin", "CHARLM_CORS_ORIGIN", OPT_STR, 0, 0, &c->cors_origin},
    };
    size_t nopts = sizeof(opts) / sizeof(*opts);
    for (size_t i = 0; i < nopts; i++) {
        const char *v = getenv(opts[i].env);
        if (v && set_option(&opts[i], v, opts[i].env)) return -1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            exit(0);
        }
        const Option *o = NULL;
        const char *value = NULL;
        for (size_t k = 0; k < nopts && !o; k++) {
            size_t n = strlen(opts[k].flag);
            if (strncmp(a, opts[k].flag, n) != 0) continue;
            if (a[n] == '=')
                value = a + n + 1, o = &opts[k];
            else if (a[n] == '\0')
                o = &opts[k];
        }
        if (!o) {
            fprintf(stderr, SERVER_NAME ": unknown option '%s' (see --help)\n", a);
            return -1;
        }
        if (!value) {
            if (i + 1 >= argc) {
                fprintf(stderr, SERVER_NAME ": %s needs a value\n", o->flag);
                return -1;
            }
            value = argv[++i];
        }
        if (set_option(o, value, o->flag)) return -1;
    }
    return 0;
}

// Binds the listening socket ourselves so that a taken port or a bad address is one
// clear line, and port 0 can report the port the kernel chose.
static int listen_on(const char *host, int port, char *shown, size_t shown_cap, char *err) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc) {
        err_set(err, "cannot resolve --host %s: %s", host, gai_strerror(rc));
        return -2; // a bad flag value, not a runtime failure
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        freeaddrinfo(res);
        return err_set(err, "cannot create a socket: %s", strerror(errno));
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 128) != 0) {
        int e = errno;
        close(fd);
        freeaddrinfo(res);
        return err_set(err, "cannot listen on %s port %d: %s", host, port, strerror(e));
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char addr[INET6_ADDRSTRLEN] = "?";
    int actual = port;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &s6->sin6_addr, addr, sizeof(addr));
            actual = ntohs(s6->sin6_port);
            snprintf(shown, shown_cap, "http://[%s]:%d", addr, actual);
        } else {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &s4->sin_addr, addr, sizeof(addr));
            actual = ntohs(s4->sin_port);
            snprintf(shown, shown_cap, "http://%s:%d", addr, actual);
        }
    }
    return fd;
}

static void free_all(void) {
    sched_stop();
    free(srv.model_card);
    free(srv.static_dir);
    model_free(&srv.model);
    vocab_free(&srv.vocab);
}

static int sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t signals_seen;

static void on_signal(int sig) {
    char c = (char)sig;
    signals_seen++;
    ssize_t n = write(sig_pipe[1], &c, 1);
    (void)n;
}

// Waits for in-flight generations to end, for at most `seconds` or until another signal.
static void wait_in_flight(int seconds) {
    for (int i = 0; i < seconds * 100 && atomic_load(&srv.in_flight) > 0 && signals_seen < 2; i++)
        usleep(10000);
}

int main(int argc, char **argv) {
    if (parse_config(argc, argv, &srv.cfg)) return 2;
    char err[ERR_LEN];

    // Each generation's steps are tiny products on its own thread; OpenBLAS threads on top
    // would only contend with the other generations for the same cores.
    openblas_set_num_threads(1);

    // SIGTERM/SIGINT go through a self-pipe: OpenBLAS starts its threads before main, so
    // blocking the signals for sigwait could not cover every thread, and a handler works in
    // whichever thread the kernel picks. A second signal skips the drain wait.
    if (pipe2(sig_pipe, O_CLOEXEC) != 0) {
        perror(SERVER_NAME ": pipe");
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (artefacts_load(srv.cfg.model_dir, &srv.model, &srv.vocab, &srv.info, err)) {
        fprintf(stderr, SERVER_NAME ": cannot load the model from %s: %s\n", srv.cfg.model_dir,
                err);
        return 1;
    }
    srv.started = time(NULL);
    if (info_build_model_card(err) || static_init(err) || routes_init(err) ||
        sched_start(srv.cfg.threads, err)) {
        fprintf(stderr, SERVER_NAME ": %s\n", err);
        free_all();
        return 1;
    }

    char url[128] = "";
    int fd = listen_on(srv.cfg.host, srv.cfg.port, url, sizeof(url), err);
    if (fd < 0) {
        fprintf(stderr, SERVER_NAME ": %s\n", err);
        free_all();
        return fd == -2 ? 2 : 1;
    }
    struct MHD_Daemon *d = http_start(fd, &routes_router, err);
    if (!d) {
        fprintf(stderr, SERVER_NAME ": %s\n", err);
        close(fd);
        free_all();
        return 1;
    }
    const ModelConfig *mc = &srv.model.config;
    fprintf(stderr,
            SERVER_NAME ": model %s: vocab %d, embed %d, hidden %d, layers %d, %zu parameters\n",
            srv.cfg.model_dir, mc->vocab_size, mc->embed, mc->hidden, mc->layers,
            srv.model.num_params);
    if (!srv.static_dir) fprintf(stderr, SERVER_NAME ": no static/ folder found; GET / is 404\n");
    fprintf(stderr, SERVER_NAME ": listening on %s\n", url);

    char sig = 0;
    while (read(sig_pipe[0], &sig, 1) < 0 && errno == EINTR) {
    }
    fprintf(stderr, SERVER_NAME ": %s: draining %d generation(s)\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM", atomic_load(&srv.in_flight));
    // Stop accepting, let running generations finish for a while, then cancel the rest.
    atomic_store(&srv.shutting_down, 1);
    int lfd = MHD_quiesce_daemon(d);
    if (lfd >= 0) close(lfd);
    wait_in_flight(DRAIN_SECONDS);
    atomic_store(&srv.shutting_down, 2);
    wait_in_flight(2);
    MHD_stop_daemon(d);
    free_all();
    fprintf(stderr, SERVER_NAME ": stopped\n");
    return 0;
}
