/* charlm-server with the largest replies a request can ask for (16 chat choices of 2000
 * chars, each char with its alternatives): tens of MB of JSON each. They are encoded as
 * they are sent, so other requests are answered meanwhile, and a generation's slot is
 * freed when it is done, so clients that read their replies slowly do not lock others
 * out of --max-concurrent, while --max-waiting-bytes bounds what their replies hold
 * together; a stream read long after its generations ran catches up in bounded events. */
#include <check.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server_harness.h"
#include "testutil.h"

#define CLIENTS    4
#define CHOICES    16
#define MAX_TOKENS 2000

static void suite_setup(void) {
    suite_model_make(3000, 16, 48, 1, 3);
}

static void suite_teardown(void) {
    suite_model_remove();
}

// The most alternatives an entry can list: 20, or the vocabulary when it is smaller.
static int top_logprobs(int port) {
    Resp r = http_get(port, "/model");
    ck_assert_int_eq(r.status, 200);
    const char *v = strstr(r.body, "\"vocab_size\":");
    ck_assert_ptr_nonnull(v);
    int n = atoi(v + strlen("\"vocab_size\":"));
    resp_free(&r);
    ck_assert_int_gt(n, 1);
    return n < 20 ? n : 20;
}

static void big_chat_body(char *buf, size_t cap, int top, int seed) {
    snprintf(buf, cap,
             "{\"messages\": [{\"role\": \"user\", \"content\": \"the cat\"}], \"n\": %d, "
             "\"max_tokens\": %d, \"logprobs\": true, \"top_logprobs\": %d, \"seed\": %d}",
             CHOICES, MAX_TOKENS, top, seed);
}

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

// ---- four maximal replies while /health is polled

typedef struct {
    int port;
    char body[256];
    long status;
    size_t bytes;
    long entries; // content entries seen: each has one "top_logprobs" array
    char carry[32];
    size_t ncarry;
    char last;
    atomic_int done;
} BigClient;

// Keeps the last cap bytes of a stream in tail[0 .. *n), given its next piece data.
static void keep_tail(char *tail, size_t *n, size_t cap, const char *data, size_t len) {
    if (len >= cap) {
        memcpy(tail, data + len - cap, cap);
        *n = cap;
        return;
    }
    size_t drop = *n + len > cap ? *n + len - cap : 0;
    memmove(tail, tail + drop, *n - drop);
    memcpy(tail + *n - drop, data, len);
    *n += len - drop;
}

// Counts the bytes and the entries without keeping the body (tens of MB).
static size_t on_big_body(char *data, size_t size, size_t n, void *arg) {
    BigClient *c = arg;
    static const char pat[] = "\"top_logprobs\":[";
    size_t len = size * n, plen = sizeof(pat) - 1;
    // Matches that begin in the previous piece's tail, then those inside this one.
    char joined[64];
    size_t head = len < plen - 1 ? len : plen - 1;
    memcpy(joined, c->carry, c->ncarry);
    memcpy(joined + c->ncarry, data, head);
    for (size_t i = 0; i < c->ncarry && i + plen <= c->ncarry + head; i++)
        c->entries += memcmp(joined + i, pat, plen) == 0;
    for (size_t i = 0; i + plen <= len; i++)
        c->entries += data[i] == '"' && memcmp(data + i, pat, plen) == 0;
    keep_tail(c->carry, &c->ncarry, plen - 1, data, len);
    if (len) c->last = data[len - 1];
    c->bytes += len;
    return len;
}

static void *big_client(void *arg) {
    BigClient *c = arg;
    CURL *h = curl_easy_init();
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/chat/completions", c->port);
    struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_big_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 200L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(h);
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
    else
        c->status = -(long)rc;
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
    atomic_store(&c->done, 1);
    return NULL;
}

START_TEST(test_health_answers_while_big_replies_are_built) {
    const char *args[] = {"--idle-timeout", "120", NULL};
    Srv s;
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
    int top = top_logprobs(s.port);
    BigClient c[CLIENTS];
    pthread_t t[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        memset(&c[i], 0, sizeof(c[i]));
        c[i].port = s.port;
        big_chat_body(c[i].body, sizeof(c[i].body), top, i + 1);
        pthread_create(&t[i], NULL, big_client, &c[i]);
    }
    // Poll /health until every reply is in: each answer must come within the bound.
    // (Built whole on the HTTP thread, one such reply held every connection for seconds.)
    double worst = 0;
    int polls = 0, done = 0;
    while (done < CLIENTS) {
        double t0 = now_ms();
        Resp r = http_get(s.port, "/health");
        double ms = now_ms() - t0;
        ck_assert_int_eq(r.status, 200);
        resp_free(&r);
        if (ms > worst) worst = ms;
        polls++;
        sleep_ms(20);
        done = 0;
        for (int i = 0; i < CLIENTS; i++) done += atomic_load(&c[i].done);
    }
    for (int i = 0; i < CLIENTS; i++) pthread_join(t[i], NULL);
    fprintf(stderr, "test_server_bigreply: %d /health polls, slowest %.1f ms\n", polls, worst);
    for (int i = 0; i < CLIENTS; i++) {
        ck_assert_int_eq(c[i].status, 200);
        // Whole: every choice's every char, with its alternatives; the object closed.
        ck_assert_int_eq(c[i].entries, (long)CHOICES * MAX_TOKENS);
        ck_assert_int_eq(c[i].last, '}');
        ck_assert_uint_gt(c[i].bytes, 10u << 20);
    }
    ck_assert_int_gt(polls, 1);
    ck_assert_msg(worst < 500, "/health took %.0f ms while the big replies were built", worst);
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

// ---- slow readers do not hold generation slots

typedef struct {
    int fd;
    atomic_int started; // the status line came: the generations are done
    atomic_int fast;    // read the rest at full speed
    size_t bytes;
    char head[64], tail[5];
    size_t ntail;
    int complete; // ended with the chunked body's last chunk
} SlowReader;

static void *slow_reader(void *arg) {
    SlowReader *r = arg;
    char buf[4096];
    for (;;) {
        struct pollfd p = {.fd = r->fd, .events = POLLIN};
        if (poll(&p, 1, 30000) <= 0) break;
        // 4 KB per 50 ms, some 80 KB/s, until told otherwise.
        ssize_t n = recv(r->fd, buf, atomic_load(&r->fast) ? sizeof(buf) : 4096, 0);
        if (n <= 0) break;
        size_t h = r->bytes < sizeof(r->head) - 1 ? sizeof(r->head) - 1 - r->bytes : 0;
        if (h > (size_t)n) h = (size_t)n;
        memcpy(r->head + r->bytes, buf, h);
        r->bytes += (size_t)n;
        if (r->bytes >= 12) atomic_store(&r->started, 1);
        keep_tail(r->tail, &r->ntail, 5, buf, (size_t)n);
        if (r->ntail == 5 && memcmp(r->tail, "0\r\n\r\n", 5) == 0) {
            r->complete = 1;
            break;
        }
        if (!atomic_load(&r->fast)) sleep_ms(50);
    }
    return NULL;
}

static long metric(int port, const char *name) {
    Resp r = http_get(port, "/metrics");
    ck_assert_int_eq(r.status, 200);
    char key[128];
    snprintf(key, sizeof(key), "\n%s ", name);
    const char *p = strstr(r.body, key);
    ck_assert_msg(p != NULL, "/metrics has no %s", name);
    long v = atol(p + strlen(key));
    resp_free(&r);
    return v;
}

// Sends a chat request over a connection with a small receive window, so that a reply of
// tens of MB stays mostly unsent until it is read.
static int slow_connect(int port, const char *body) {
    char req[512];
    snprintf(req, sizeof(req),
             "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
             "application/json\r\nContent-Length: %zu\r\n\r\n%s",
             strlen(body), body);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int rcv = 16 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    return fd;
}

/* n slow readers of maximal chat replies (seeds seed0 ...), each on its own thread; returns
 * once every reply has begun. */
static void slow_readers_start(int port, int top, int seed0, SlowReader *r, pthread_t *t, int n) {
    for (int i = 0; i < n; i++) {
        memset(&r[i], 0, sizeof(r[i]));
        char body[256];
        big_chat_body(body, sizeof(body), top, seed0 + i);
        r[i].fd = slow_connect(port, body);
        pthread_create(&t[i], NULL, slow_reader, &r[i]);
    }
    int waited = 0, started = 0;
    while (started < n && waited < 60000) {
        started = 0;
        for (int i = 0; i < n; i++) started += atomic_load(&r[i].started);
        if (started < n) sleep_ms(20), waited += 20;
    }
    ck_assert_int_eq(started, n);
}

START_TEST(test_slow_readers_free_their_slots) {
    // The four requests take every slot (4 x 16 = 64).
    const char *args[] = {"--max-concurrent", "64", "--idle-timeout", "120", NULL};
    Srv s;
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
    int top = top_logprobs(s.port);
    SlowReader r[CLIENTS];
    pthread_t t[CLIENTS];
    // Once every reply has begun, every generation is done.
    slow_readers_start(s.port, top, 10, r, t, CLIENTS);
    int waited;
    for (int i = 0; i < CLIENTS; i++) ck_assert_int_eq(strncmp(r[i].head, "HTTP/1.1 200", 12), 0);
    for (waited = 0; health_in_flight(s.port) > 0 && waited < 5000; waited += 20) sleep_ms(20);

    // A fifth request is admitted although the four replies are still being read.
    Resp g = http_post(s.port, "/generate", "{\"prompt\": \"the \", \"max_tokens\": 5}");
    ck_assert_msg(g.status == 200, "a generation got %ld while four slow readers drained: %s",
                  g.status, g.body);
    resp_free(&g);
    ck_assert_int_eq(health_in_flight(s.port), 0);
    ck_assert_int_eq(metric(s.port, "charlm_replies_waiting"), CLIENTS);
    // They hold at least their entries: 16 x 2000 of them each, with the alternatives.
    ck_assert_int_gt(metric(s.port, "charlm_reply_bytes_waiting"),
                     (long)CLIENTS * CHOICES * MAX_TOKENS * (long)(top * 8));
    for (int i = 0; i < CLIENTS; i++) ck_assert_int_eq(r[i].complete, 0);

    // Read at full speed, each reply arrives whole, and nothing is left waiting.
    for (int i = 0; i < CLIENTS; i++) atomic_store(&r[i].fast, 1);
    for (int i = 0; i < CLIENTS; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < CLIENTS; i++) {
        ck_assert_msg(r[i].complete, "reply %d ended after %zu bytes", i, r[i].bytes);
        ck_assert_uint_gt(r[i].bytes, 10u << 20);
        close(r[i].fd);
    }
    for (waited = 0; metric(s.port, "charlm_replies_waiting") > 0 && waited < 5000; waited += 20)
        sleep_ms(20);
    ck_assert_int_eq(metric(s.port, "charlm_replies_waiting"), 0);
    ck_assert_int_eq(metric(s.port, "charlm_reply_bytes_waiting"), 0);
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

// ---- the memory of all the waiting replies together is bounded

START_TEST(test_waiting_replies_bounded_in_total) {
    // Two maximal chat replies hold some 6 MB each while their clients read slowly.
    const char *args[] = {"--max-waiting-bytes", "4000000", "--idle-timeout", "120", NULL};
    Srv s;
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
    int top = top_logprobs(s.port);
    enum { SLOW = 2 };
    SlowReader r[SLOW];
    pthread_t t[SLOW];
    slow_readers_start(s.port, top, 30, r, t, SLOW);
    int waited;
    for (waited = 0; health_in_flight(s.port) > 0 && waited < 5000; waited += 20) sleep_ms(20);
    ck_assert_int_gt(metric(s.port, "charlm_reply_bytes_waiting"), 4000000);

    // Over the bound: a new generation, on any route, is refused at once; slots are free.
    const char *routes[][2] = {
        {"/generate", "{\"prompt\": \"the \", \"max_tokens\": 5}"},
        {"/v1/completions", "{\"prompt\": \"the \", \"max_tokens\": 5, \"stream\": true}"},
        {"/v1/chat/completions", "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}"}};
    for (int k = 0; k < 3; k++) {
        Resp g = http_post(s.port, routes[k][0], routes[k][1]);
        assert_error(&g, 503, NULL);
        ck_assert_msg(strstr(g.body, "--max-waiting-bytes (4000000)") != NULL, "%s: %s",
                      routes[k][0], g.body);
        char *retry = resp_header(&g, "Retry-After");
        ck_assert_ptr_nonnull(retry);
        ck_assert_str_eq(retry, "1");
        free(retry);
        resp_free(&g);
    }
    // Other routes are answered as usual.
    Resp h = http_get(s.port, "/health");
    ck_assert_int_eq(h.status, 200);
    resp_free(&h);
    h = http_post(s.port, "/tokenize", "{\"content\": \"the\"}");
    ck_assert_int_eq(h.status, 200);
    resp_free(&h);
    for (int i = 0; i < SLOW; i++) ck_assert_int_eq(r[i].complete, 0);

    // Once the readers have taken their replies, generations are admitted again.
    for (int i = 0; i < SLOW; i++) atomic_store(&r[i].fast, 1);
    for (int i = 0; i < SLOW; i++) {
        pthread_join(t[i], NULL);
        ck_assert_msg(r[i].complete, "reply %d ended after %zu bytes", i, r[i].bytes);
        close(r[i].fd);
    }
    for (waited = 0; metric(s.port, "charlm_replies_waiting") > 0 && waited < 5000; waited += 20)
        sleep_ms(20);
    Resp g = http_post(s.port, "/generate", "{\"prompt\": \"the \", \"max_tokens\": 5}");
    ck_assert_msg(g.status == 200, "after the readers: %ld %s", g.status, g.body);
    resp_free(&g);
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

// ---- a stream read long after its generations ran

// Reads a chunked reply to its end; returns its body, de-chunked (malloc'd).
static char *read_chunked(int fd) {
    size_t cap = 1 << 20, len = 0;
    char *raw = malloc(cap);
    ck_assert_ptr_nonnull(raw);
    for (;;) {
        if (len + 65536 + 1 > cap) {
            cap *= 2;
            raw = realloc(raw, cap);
            ck_assert_ptr_nonnull(raw);
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ck_assert_int_gt(poll(&p, 1, 30000), 0);
        ssize_t n = recv(fd, raw + len, 65536, 0);
        ck_assert_int_gt(n, 0);
        len += (size_t)n;
        if (len >= 5 && memcmp(raw + len - 5, "0\r\n\r\n", 5) == 0) break;
    }
    raw[len] = '\0';
    ck_assert_int_eq(strncmp(raw, "HTTP/1.1 200", 12), 0);
    char *p = strstr(raw, "\r\n\r\n");
    ck_assert_ptr_nonnull(p);
    p += 4;
    char *body = malloc(len + 1), *w = body;
    ck_assert_ptr_nonnull(body);
    for (;;) {
        char *end;
        unsigned long size = strtoul(p, &end, 16);
        ck_assert_int_eq(strncmp(end, "\r\n", 2), 0);
        if (size == 0) break;
        memcpy(w, end + 2, size);
        w += size;
        p = end + 2 + size;
        ck_assert_int_eq(strncmp(p, "\r\n", 2), 0);
        p += 2;
    }
    *w = '\0';
    free(raw);
    return body;
}

START_TEST(test_late_stream_reader_gets_bounded_events) {
    const char *args[] = {"--idle-timeout", "120", NULL};
    Srv s;
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
    int top = top_logprobs(s.port);
    char body[300];
    big_chat_body(body, sizeof(body), top, 21);
    strcpy(strrchr(body, '}'), ", \"stream\": true}");
    int fd = slow_connect(s.port, body);
    // Read nothing until the generations are done: the stream's events are then far
    // behind them, 16 x 2000 entries.
    for (int waited = 0; health_in_flight(s.port) > 0 && waited < 10000; waited += 20) sleep_ms(20);
    char *sse = read_chunked(fd);
    close(fd);
    enum { MAX_EVENTS = 100000 };
    char **ev = malloc(MAX_EVENTS * sizeof(*ev));
    ck_assert_ptr_nonnull(ev);
    int n = sse_events(sse, ev, MAX_EVENTS);
    free(sse);
    ck_assert_int_lt(n, MAX_EVENTS);
    ck_assert_str_eq(ev[n - 1], "[DONE]");
    long entries = 0, text = 0;
    int most_entries = 0, finished = 0;
    size_t most_text = 0, largest = 0;
    for (int i = 0; i < n - 1; i++) {
        if (strlen(ev[i]) > largest) largest = strlen(ev[i]);
        cJSON *o = cJSON_Parse(ev[i]);
        ck_assert_ptr_nonnull(o);
        const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "choices"), 0);
        const cJSON *content = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "delta"), "content");
        const cJSON *lp = cJSON_GetObjectItem(cJSON_GetObjectItem(c, "logprobs"), "content");
        int k = cJSON_GetArraySize(lp);
        size_t t = cJSON_IsString(content) ? strlen(content->valuestring) : 0;
        // One entry per char of the event's text (the model's chars are ASCII).
        ck_assert_int_eq((size_t)k, t);
        entries += k;
        text += (long)t;
        if (k > most_entries) most_entries = k;
        if (t > most_text) most_text = t;
        finished += cJSON_IsString(cJSON_GetObjectItem(c, "finish_reason"));
        cJSON_Delete(o);
        free(ev[i]);
    }
    free(ev[n - 1]);
    free(ev);
    fprintf(stderr,
            "test_server_bigreply: late stream: %d events, at most %d entries and %zu bytes "
            "of text in one, the largest %zu bytes\n",
            n, most_entries, most_text, largest);
    // Everything, in events of at most 64 chars each.
    ck_assert_int_eq(entries, (long)CHOICES * MAX_TOKENS);
    ck_assert_int_eq(text, (long)CHOICES * MAX_TOKENS);
    ck_assert_int_eq(finished, CHOICES);
    ck_assert_int_le(most_entries, 64);
    ck_assert_uint_le(most_text, 64);
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("server_bigreply");
    TCase *tc = tcase_create("bigreply");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_health_answers_while_big_replies_are_built);
    tcase_add_test(tc, test_slow_readers_free_their_slots);
    tcase_add_test(tc, test_waiting_replies_bounded_in_total);
    tcase_add_test(tc, test_late_stream_reader_gets_bounded_events);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
