/*
 * streamclient — concurrent streaming clients for charlm-server, timed per request.
 *
 *   streamclient --port P --streams N --seconds S [--host 127.0.0.1] [--max-tokens 200]
 *                [--prompt-file F] [--seed-base X] [--native | --openai]
 *                [--probe-file F [--probe-reps R] [--probe-delay SEC]]
 *   streamclient --port P --once --prompt-file F [--max-tokens 1] [--reps R]
 *
 * N threads each hold one keep-alive connection and POST streamed generations one after
 * the other for S seconds (/generate, or /v1/completions with --openai; temperature 0.8,
 * each request its own seed, counting up from --seed-base). Per request it records the
 * time to the first char, the total latency, the chars received (counted in the text of
 * the SSE events, in code points) and the largest gap between two consecutive text
 * events. It prints the chars/s of all streams together (chars that arrived within the S
 * seconds over S), the requests finished within them, p50/p99 latency and time to first
 * char over those requests, and the largest inter-chunk gap. It also prints the rows/s:
 * the generated chars plus the prompt chars of the requests sent within the S seconds,
 * over S — every char the server had to run through the model.
 *
 * --probe-file: while the streams run, one more client sends the file as the prompt
 * (max_tokens 1) --probe-reps times in a row, --probe-delay seconds after the start, and
 * reports its times to first char and the largest gap any running stream saw between
 * chunks while a probe was waiting: how much a long prompt arriving stalls the others.
 * The streams go on until the probes are done, if that is later than S.
 *
 * --once: only that probe, alone: the median time to first char over --reps requests,
 * each on a new connection.
 *
 * Every HTTP exchange is plain HTTP/1.1 over a socket (chunked or sized bodies). The last
 * stdout line is JSON for bench/concurrency.sh. Exit 1 when a request failed (non-200,
 * connection error, a stream without its final event).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_PROMPT "It was on a dreary night of November"
#define GAP_RECORD_MIN 0.001 // gaps shorter than this cannot matter against a probe

typedef struct {
    const char *host;
    int port, streams, max_tokens, max_tokens_set, openai, once, reps, probe_reps;
    double seconds, probe_delay;
    long long seed_base;
    const char *prompt_file, *probe_file;
} Options;

static Options opt = {.host = "127.0.0.1",
                      .streams = 1,
                      .seconds = 10,
                      .max_tokens = 200,
                      .reps = 5,
                      .probe_reps = 3,
                      .probe_delay = 1,
                      .seed_base = 1};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const char *msg) {
    fprintf(stderr, "streamclient: %s\n", msg);
    exit(2);
}

static void *xrealloc(void *p, size_t size) {
    p = realloc(p, size ? size : 1);
    if (!p) die("out of memory");
    return p;
}

/* ---- results ---------------------------------------------------------------------- */

typedef struct {
    double start, first, end; // first = 0: no char arrived
    double max_gap;
    long chars, chars_in_window;
    int ok;
} Result;

typedef struct {
    double a, b;
} Span;

typedef struct {
    Span *v;
    size_t n, cap;
} Spans;

static void spans_push(Spans *s, double a, double b) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->v = xrealloc(s->v, s->cap * sizeof(Span));
    }
    s->v[s->n++] = (Span){a, b};
}

/* ---- the connection and its response parser ---------------------------------------- */

typedef struct {
    int fd;
    char buf[65536];
    size_t pos, len;
    double t_recv; // when the bytes in buf arrived
    // The SSE line being assembled and what the request saw so far.
    char *line;
    size_t line_len, line_cap;
    Result *res;
    Spans *gaps; // NULL: not recorded
    double last_event, window_end;
    int done, status; // status 0: no response line yet
    int requests;     // sent on this connection
} Conn;

static int conn_open(Conn *c) {
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)opt.port)};
    if (inet_pton(AF_INET, opt.host, &sa.sin_addr) != 1) die("--host must be an IPv4 address");
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0) return -1;
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    // A server that stops answering fails the request instead of hanging the run.
    struct timeval tv = {.tv_sec = 60};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    c->pos = c->len = 0;
    c->requests = 0;
    return 0;
}

static void conn_close(Conn *c) {
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

static int send_all(int fd, const char *p, size_t n) {
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

// More bytes into buf; 0 on EOF or error.
static int fill(Conn *c) {
    if (c->pos == c->len) c->pos = c->len = 0;
    if (c->len == sizeof(c->buf)) {
        memmove(c->buf, c->buf + c->pos, c->len - c->pos);
        c->len -= c->pos;
        c->pos = 0;
    }
    ssize_t k;
    do k = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    while (k < 0 && errno == EINTR);
    if (k <= 0) return 0;
    c->len += (size_t)k;
    c->t_recv = now();
    return 1;
}

// One CRLF-terminated line of the head or of chunk framing, without its CRLF.
static int read_line(Conn *c, char *out, size_t cap) {
    size_t n = 0;
    for (;;) {
        while (c->pos < c->len) {
            char ch = c->buf[c->pos++];
            if (ch == '\n') {
                if (n > 0 && out[n - 1] == '\r') n--;
                out[n] = '\0';
                return 0;
            }
            if (n + 1 < cap) out[n++] = ch;
        }
        if (!fill(c)) return -1;
    }
}

/* Code points in the JSON string starting at s (just after its opening quote); a \u
 * escape is one, a surrogate pair too. */
static long json_string_chars(const char *s) {
    long n = 0;
    for (const char *p = s; *p && *p != '"'; p++) {
        if (*p == '\\') {
            p++;
            if (*p == 'u') {
                char hex[5] = {0};
                for (int i = 0; i < 4 && p[1]; i++) hex[i] = *++p;
                unsigned cp = (unsigned)strtoul(hex, NULL, 16);
                // A high surrogate's low half is part of the same char.
                if (cp >= 0xD800 && cp < 0xDC00 && p[1] == '\\' && p[2] == 'u' && p[3] && p[4] &&
                    p[5] && p[6])
                    p += 6;
            } else if (!*p)
                break;
            n++;
        } else if (((unsigned char)*p & 0xC0) != 0x80)
            n++;
    }
    return n;
}

// The value of the first "text" key of an event, counted; -1 when there is none.
static long event_text_chars(const char *ev) {
    for (const char *p = strstr(ev, "\"text\""); p; p = strstr(p + 1, "\"text\"")) {
        const char *q = p + 6;
        while (*q == ' ') q++;
        if (*q != ':') continue;
        q++;
        while (*q == ' ') q++;
        if (*q == '"') return json_string_chars(q + 1);
    }
    return -1;
}

static void on_event(Conn *c, const char *data) {
    if (!strcmp(data, "[DONE]") || strstr(data, "\"done\":true") ||
        strstr(data, "\"done\": true")) {
        c->done = 1;
        return;
    }
    long k = event_text_chars(data);
    if (k <= 0) return;
    Result *r = c->res;
    double t = c->t_recv;
    if (r->first == 0)
        r->first = t;
    else {
        double gap = t - c->last_event;
        if (gap > r->max_gap) r->max_gap = gap;
        if (c->gaps && gap >= GAP_RECORD_MIN) spans_push(c->gaps, c->last_event, t);
    }
    c->last_event = t;
    r->chars += k;
    if (t <= c->window_end) r->chars_in_window += k;
}

// Body bytes: split into SSE lines, each "data:" line one event.
static void on_body(Conn *c, const char *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '\n') {
            if (c->line_len + 2 > c->line_cap) {
                c->line_cap = c->line_cap ? 2 * c->line_cap : 4096;
                c->line = xrealloc(c->line, c->line_cap);
            }
            c->line[c->line_len++] = p[i];
            continue;
        }
        if (c->line_len > 0 && c->line[c->line_len - 1] == '\r') c->line_len--;
        if (c->line_len == 0) continue;
        c->line[c->line_len] = '\0';
        if (c->status == 200 && !strncmp(c->line, "data:", 5))
            on_event(c, c->line + 5 + (c->line[5] == ' '));
        else if (c->status != 200)
            fprintf(stderr, "streamclient: HTTP %d: %.300s\n", c->status, c->line);
        c->line_len = 0;
    }
}

// Feeds n body bytes from the connection to on_body.
static int read_body_bytes(Conn *c, size_t n) {
    while (n > 0) {
        if (c->pos == c->len && !fill(c)) return -1;
        size_t k = c->len - c->pos < n ? c->len - c->pos : n;
        on_body(c, c->buf + c->pos, k);
        c->pos += k;
        n -= k;
    }
    return 0;
}

/* POSTs body and reads the whole reply into r. Returns 0 when the connection can carry
 * the next request, -1 when it must be reopened. */
static int request(Conn *c, const char *path, const char *body, Result *r) {
    char head[512], line[1024];
    int hn = snprintf(head, sizeof(head),
                      "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                      "Accept: text/event-stream\r\nContent-Length: %zu\r\n\r\n",
                      path, opt.host, opt.port, strlen(body));
    memset(r, 0, sizeof(*r));
    c->res = r;
    c->done = 0;
    c->status = 0;
    c->line_len = 0;
    r->start = now();
    if (send_all(c->fd, head, (size_t)hn) || send_all(c->fd, body, strlen(body))) return -1;
    if (read_line(c, line, sizeof(line)) || sscanf(line, "HTTP/1.%*d %d", &c->status) != 1)
        return -1;
    long content_length = -1;
    int chunked = 0, close_after = 0;
    for (;;) {
        if (read_line(c, line, sizeof(line))) return -1;
        if (!line[0]) break;
        if (!strncasecmp(line, "Content-Length:", 15)) content_length = atol(line + 15);
        if (!strncasecmp(line, "Transfer-Encoding:", 18) && strstr(line, "chunked")) chunked = 1;
        if (!strncasecmp(line, "Connection:", 11) && strstr(line, "close")) close_after = 1;
    }
    if (chunked) {
        for (;;) {
            if (read_line(c, line, sizeof(line))) return -1;
            size_t size = strtoul(line, NULL, 16);
            if (size == 0) {
                do
                    if (read_line(c, line, sizeof(line))) return -1;
                while (line[0]); // trailers, then the blank line
                break;
            }
            if (read_body_bytes(c, size) || read_line(c, line, sizeof(line))) return -1;
        }
    } else if (content_length >= 0) {
        if (read_body_bytes(c, (size_t)content_length)) return -1;
    } else {
        for (;;) { // the body runs to the end of the connection
            if (c->pos == c->len && !fill(c)) break;
            on_body(c, c->buf + c->pos, c->len - c->pos);
            c->pos = c->len;
        }
        close_after = 1;
    }
    on_body(c, "\n", 1); // an event not followed by a newline
    r->end = now();
    r->ok = c->status == 200 && c->done;
    return close_after ? -1 : 0;
}

/* ---- requests --------------------------------------------------------------------- */

static char *prompt_json; // the prompt as a JSON string literal, quotes included
static char *probe_json;

static char *json_quote_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "streamclient: cannot open %s: %s\n", path, strerror(errno));
        exit(2);
    }
    size_t cap = 4096, n = 0;
    char *out = xrealloc(NULL, cap);
    out[n++] = '"';
    int ch;
    while ((ch = fgetc(f)) != EOF) {
        if (n + 8 > cap) out = xrealloc(out, cap *= 2);
        if (ch == '"' || ch == '\\')
            n += (size_t)sprintf(out + n, "\\%c", ch);
        else if (ch < 0x20)
            n += (size_t)sprintf(out + n, "\\u%04x", ch);
        else
            out[n++] = (char)ch;
    }
    fclose(f);
    out[n++] = '"';
    out[n] = '\0';
    return out;
}

static const char *route(void) {
    return opt.openai ? "/v1/completions" : "/generate";
}

static char *make_body(const char *prompt, int max_tokens, long long seed) {
    size_t n = strlen(prompt) + 200;
    char *b = xrealloc(NULL, n);
    snprintf(b, n,
             "{\"prompt\": %s, \"max_tokens\": %d, \"temperature\": 0.8, \"seed\": %lld, "
             "\"stream\": true}",
             prompt, max_tokens, seed);
    return b;
}

static atomic_llong next_seed;
static _Atomic double deadline; // streams start no request after it
static double t_start, window_end;
static atomic_int probe_running;

typedef struct {
    Result *v;
    size_t n, cap;
    long errors;
    long sent; // requests sent within the window, failed ones included
    Spans gaps;
} Log;

static void log_push(Log *l, const Result *r) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->v = xrealloc(l->v, l->cap * sizeof(Result));
    }
    l->v[l->n++] = *r;
}

static void *stream_main(void *arg) {
    Log *log = arg;
    Conn c = {.fd = -1, .window_end = window_end};
    c.gaps = opt.probe_file ? &log->gaps : NULL;
    while (now() < atomic_load(&deadline) || atomic_load(&probe_running)) {
        if (c.fd < 0 && conn_open(&c)) {
            log->errors++;
            usleep(10000);
            continue;
        }
        char *body = make_body(prompt_json, opt.max_tokens, atomic_fetch_add(&next_seed, 1));
        Result r;
        if (now() <= window_end) log->sent++;
        int reused = c.requests > 0;
        int keep = request(&c, route(), body, &r) == 0;
        if (!keep && reused && c.status == 0) {
            // A kept-alive connection the server closed before answering: not a failure
            // of this request, which goes again on a new connection.
            conn_close(&c);
            keep = conn_open(&c) == 0 && request(&c, route(), body, &r) == 0;
        }
        if (!keep) conn_close(&c);
        free(body);
        if (r.ok)
            log_push(log, &r);
        else
            log->errors++;
    }
    conn_close(&c);
    free(c.line);
    return NULL;
}

/* The probe: reps requests of the probe prompt one after the other, each on a new
 * connection; windows[i] = [sent, first char]. Returns the failures. */
static int probe(const char *prompt, int max_tokens, int reps, double pause, Span *windows) {
    int errors = 0;
    for (int i = 0; i < reps; i++) {
        Conn c = {.fd = -1, .window_end = 1e300};
        Result r = {0};
        char *body = make_body(prompt, max_tokens, opt.seed_base + i);
        if (conn_open(&c) == 0) request(&c, route(), body, &r);
        conn_close(&c);
        free(body);
        free(c.line);
        if (!r.ok || r.first == 0) {
            errors++;
            windows[i] = (Span){0, 0};
        } else
            windows[i] = (Span){r.start, r.first};
        if (i + 1 < reps && pause > 0) usleep((useconds_t)(pause * 1e6));
    }
    return errors;
}

typedef struct {
    Span *windows;
    int errors;
} ProbeRun;

static void *probe_main(void *arg) {
    ProbeRun *p = arg;
    usleep((useconds_t)(opt.probe_delay * 1e6));
    p->errors = probe(probe_json, 1, opt.probe_reps, 0.2, p->windows);
    // Let the streams run a little past the last probe, so its stall is seen whole.
    double end = now() + 0.5;
    if (end > atomic_load(&deadline)) atomic_store(&deadline, end);
    atomic_store(&probe_running, 0);
    return NULL;
}

/* ---- statistics ------------------------------------------------------------------- */

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Nearest-rank percentile of v[0 .. n) (sorted in place); 0 when empty.
static double pct(double *v, size_t n, double p) {
    if (n == 0) return 0;
    qsort(v, n, sizeof(double), cmp_double);
    size_t k = (size_t)(p / 100 * (double)n + 0.999999);
    return v[k ? k - 1 : 0];
}

static double ms_window(const Span *w) {
    return (w->b - w->a) * 1e3;
}

static int run_once(void) {
    Span *w = xrealloc(NULL, (size_t)opt.reps * sizeof(Span));
    int errors = probe(prompt_json, opt.max_tokens, opt.reps, 0.1, w);
    double *ms = xrealloc(NULL, (size_t)opt.reps * sizeof(double));
    int n = 0;
    printf("time to first char, %d requests one at a time, max_tokens %d:", opt.reps,
           opt.max_tokens);
    for (int i = 0; i < opt.reps; i++)
        if (w[i].b > 0) {
            ms[n++] = ms_window(&w[i]);
            printf(" %.1f", ms[n - 1]);
        }
    printf(" ms; %d failed\n{\"once\": true, \"reps\": %d, \"errors\": %d, \"ttfc_ms\": [", errors,
           opt.reps, errors);
    for (int i = 0; i < n; i++) printf("%s%.3f", i ? ", " : "", ms[i]);
    double med = pct(ms, (size_t)n, 50);
    printf("], \"ttfc_median_ms\": %.3f}\n", med);
    free(w);
    free(ms);
    return errors ? 1 : 0;
}

static int run_streams(void) {
    Log *logs = calloc((size_t)opt.streams, sizeof(Log));
    pthread_t *tid = calloc((size_t)opt.streams, sizeof(pthread_t));
    ProbeRun pr = {0};
    pthread_t probe_tid;
    if (!logs || !tid) die("out of memory");
    atomic_store(&next_seed, opt.seed_base);
    t_start = now();
    window_end = t_start + opt.seconds;
    atomic_store(&deadline, window_end);
    if (opt.probe_file) {
        pr.windows = xrealloc(NULL, (size_t)opt.probe_reps * sizeof(Span));
        atomic_store(&probe_running, 1);
        if (pthread_create(&probe_tid, NULL, probe_main, &pr)) die("cannot start a thread");
    }
    for (int i = 0; i < opt.streams; i++)
        if (pthread_create(&tid[i], NULL, stream_main, &logs[i])) die("cannot start a thread");
    if (opt.probe_file) pthread_join(probe_tid, NULL);
    for (int i = 0; i < opt.streams; i++) pthread_join(tid[i], NULL);
    // The window the chars/s is over: S, or until the streams stopped after the probes.
    double end = atomic_load(&deadline), span = end - t_start;

    size_t total = 0;
    long errors = 0, chars = 0, sent = 0;
    for (int i = 0; i < opt.streams; i++)
        total += logs[i].n, errors += logs[i].errors, sent += logs[i].sent;
    double *lat = xrealloc(NULL, total * sizeof(double)),
           *ttfc = xrealloc(NULL, total * sizeof(double));
    size_t n = 0, nt = 0;
    double max_gap = 0;
    for (int i = 0; i < opt.streams; i++)
        for (size_t j = 0; j < logs[i].n; j++) {
            const Result *r = &logs[i].v[j];
            chars += r->chars_in_window;
            // Latencies of the requests that ended inside the window: the ones still
            // running at its end finish at a lower concurrency than the run's.
            if (r->end > window_end) continue;
            lat[n++] = (r->end - r->start) * 1e3;
            if (r->first > 0) ttfc[nt++] = (r->first - r->start) * 1e3;
            if (r->max_gap > max_gap) max_gap = r->max_gap;
        }
    // Chars of requests that ran past S count up to S only (chars_in_window).
    double cps = chars / opt.seconds;
    long prompt_chars = json_string_chars(prompt_json + 1), prompt_rows = sent * prompt_chars;
    double rps = (double)(chars + prompt_rows) / opt.seconds;
    double l50 = pct(lat, n, 50), l99 = pct(lat, n, 99), t50 = pct(ttfc, nt, 50),
           t99 = pct(ttfc, nt, 99);
    printf("%d streams, %.1f s, %s, max_tokens %d: %zu requests, %ld failed; %.0f chars/s\n",
           opt.streams, opt.seconds, route(), opt.max_tokens, n, errors, cps);
    printf("rows/s %.0f (%ld requests sent of %ld-char prompts: %.0f%% of the rows prompt)\n", rps,
           sent, prompt_chars,
           chars + prompt_rows ? 100.0 * prompt_rows / (chars + prompt_rows) : 0);
    printf("latency ms p50 %.1f p99 %.1f; first char ms p50 %.1f p99 %.1f; max inter-chunk "
           "gap %.1f ms\n",
           l50, l99, t50, t99, max_gap * 1e3);
    double probe_gap = 0, probe_ms[64];
    int np = 0;
    if (opt.probe_file) {
        for (int k = 0; k < opt.probe_reps; k++) {
            Span *w = &pr.windows[k];
            if (w->b == 0) continue;
            if (np < 64) probe_ms[np++] = ms_window(w);
            for (int i = 0; i < opt.streams; i++)
                for (size_t j = 0; j < logs[i].gaps.n; j++) {
                    Span *g = &logs[i].gaps.v[j];
                    if (g->a < w->b && g->b > w->a && g->b - g->a > probe_gap)
                        probe_gap = g->b - g->a;
                }
        }
        printf("probe (%d requests, prompt %s): time to first char ms", opt.probe_reps,
               opt.probe_file);
        for (int k = 0; k < np; k++) printf(" %.1f", probe_ms[k]);
        printf("; %d failed; the streams' max inter-chunk gap during them %.1f ms (run %.1f s)\n",
               pr.errors, probe_gap * 1e3, span);
    }
    printf("{\"streams\": %d, \"seconds\": %.3f, \"route\": \"%s\", \"max_tokens\": %d, "
           "\"requests\": %zu, \"errors\": %ld, \"chars\": %ld, \"chars_per_s\": %.1f, "
           "\"requests_sent\": %ld, \"prompt_chars\": %ld, \"prompt_rows\": %ld, "
           "\"rows_per_s\": %.1f, "
           "\"latency_p50_ms\": %.3f, \"latency_p99_ms\": %.3f, \"ttfc_p50_ms\": %.3f, "
           "\"ttfc_p99_ms\": %.3f, \"max_gap_ms\": %.3f",
           opt.streams, opt.seconds, route(), opt.max_tokens, n, errors, chars, cps, sent,
           prompt_chars, prompt_rows, rps, l50, l99, t50, t99, max_gap * 1e3);
    if (opt.probe_file) {
        printf(", \"probe\": {\"reps\": %d, \"errors\": %d, \"ttfc_ms\": [", opt.probe_reps,
               pr.errors);
        for (int k = 0; k < np; k++) printf("%s%.3f", k ? ", " : "", probe_ms[k]);
        double med = pct(probe_ms, (size_t)np, 50);
        printf("], \"ttfc_median_ms\": %.3f, \"max_gap_during_ms\": %.3f}", med, probe_gap * 1e3);
    }
    printf("}\n");
    for (int i = 0; i < opt.streams; i++) {
        free(logs[i].v);
        free(logs[i].gaps.v);
    }
    free(logs);
    free(tid);
    free(lat);
    free(ttfc);
    free(pr.windows);
    return errors || pr.errors ? 1 : 0;
}

/* ---- flags ------------------------------------------------------------------------ */

static double parse_num(const char *flag, const char *v, double lo, double hi) {
    char *end;
    double x = strtod(v, &end);
    if (*v == '\0' || *end != '\0' || !(x >= lo && x <= hi)) {
        fprintf(stderr, "streamclient: %s must be a number in %g..%g\n", flag, lo, hi);
        exit(2);
    }
    return x;
}

static void usage(void) {
    fprintf(stderr,
            "usage: streamclient --port P --streams N --seconds S [--host ADDR] [--max-tokens N]\n"
            "                    [--prompt-file F] [--seed-base X] [--native | --openai]\n"
            "                    [--probe-file F [--probe-reps R] [--probe-delay SEC]]\n"
            "       streamclient --port P --once --prompt-file F [--max-tokens 1] [--reps R]\n");
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (!strcmp(f, "--native")) {
            opt.openai = 0;
            continue;
        }
        if (!strcmp(f, "--openai")) {
            opt.openai = 1;
            continue;
        }
        if (!strcmp(f, "--once")) {
            opt.once = 1;
            continue;
        }
        if (!strcmp(f, "--help") || !strcmp(f, "-h") || i + 1 >= argc) usage();
        const char *v = argv[++i];
        if (!strcmp(f, "--port"))
            opt.port = (int)parse_num(f, v, 1, 65535);
        else if (!strcmp(f, "--host"))
            opt.host = v;
        else if (!strcmp(f, "--streams"))
            opt.streams = (int)parse_num(f, v, 1, 10000);
        else if (!strcmp(f, "--seconds"))
            opt.seconds = parse_num(f, v, 0.1, 86400);
        else if (!strcmp(f, "--max-tokens")) {
            opt.max_tokens = (int)parse_num(f, v, 1, 1000000);
            opt.max_tokens_set = 1;
        } else if (!strcmp(f, "--prompt-file"))
            opt.prompt_file = v;
        else if (!strcmp(f, "--seed-base"))
            opt.seed_base = (long long)parse_num(f, v, 0, 9007199254740992.0);
        else if (!strcmp(f, "--reps"))
            opt.reps = (int)parse_num(f, v, 1, 1000);
        else if (!strcmp(f, "--probe-file"))
            opt.probe_file = v;
        else if (!strcmp(f, "--probe-reps"))
            opt.probe_reps = (int)parse_num(f, v, 1, 64);
        else if (!strcmp(f, "--probe-delay"))
            opt.probe_delay = parse_num(f, v, 0, 3600);
        else {
            fprintf(stderr, "streamclient: unknown flag %s\n", f);
            usage();
        }
    }
    if (!opt.port) usage();
    if (opt.once && !opt.prompt_file) die("--once needs --prompt-file");
    if (opt.once && !opt.max_tokens_set) opt.max_tokens = 1;
    prompt_json =
        opt.prompt_file ? json_quote_file(opt.prompt_file) : strdup("\"" DEFAULT_PROMPT "\"");
    if (opt.probe_file) probe_json = json_quote_file(opt.probe_file);
    int rc = opt.once ? run_once() : run_streams();
    free(prompt_json);
    free(probe_json);
    return rc;
}
