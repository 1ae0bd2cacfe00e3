#include "server_harness.h"

#include <check.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "testutil.h"

void sleep_ms(int ms) {
    struct timespec t = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

static char *srv_log(const Srv *s) {
    char *t = tu_read_file(s->log, NULL);
    return t ? t : strdup("");
}

int srv_start_env(Srv *s, const char *model_dir, const char *const *args, const char *const *env) {
    memset(s, 0, sizeof(*s));
    s->dir = tu_tmpdir();
    s->log = malloc(strlen(s->dir) + 16);
    sprintf(s->log, "%s/stderr", s->dir);
    const char *argv[40];
    int n = 0;
    argv[n++] = tu_bin("charlm-server");
    if (model_dir) {
        argv[n++] = "--model";
        argv[n++] = model_dir;
    }
    argv[n++] = "--port";
    argv[n++] = "0";
    for (int i = 0; args && args[i] && n < 38; i++) argv[n++] = args[i];
    argv[n] = NULL;
    char bin[4096];
    snprintf(bin, sizeof(bin), "%s", tu_bin("charlm-server"));
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        // The page of the source tree being tested: the server's own search looks beside
        // its binary, which finds it only when the build folder sits in the source tree.
        // A test's own CHARLM_STATIC_DIR in env replaces it.
        setenv("CHARLM_STATIC_DIR", CHARLM_SOURCE_DIR "/static", 1);
        for (int i = 0; env && env[i]; i++) putenv((char *)env[i]);
        int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int devnull = open("/dev/null", O_RDWR);
        dup2(fd, 2);
        dup2(devnull, 1);
        dup2(devnull, 0);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
    for (int waited = 0; waited < 30000; waited += 10) {
        char *log = srv_log(s);
        const char *at = strstr(log, "listening on http://127.0.0.1:");
        if (at) {
            s->port = atoi(at + strlen("listening on http://127.0.0.1:"));
            free(log);
            return s->port > 0 ? 0 : -1;
        }
        free(log);
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            s->pid = 0;
            return -1;
        }
        sleep_ms(10);
    }
    return -1;
}

int srv_start(Srv *s, const char *model_dir, const char *const *args) {
    return srv_start_env(s, model_dir, args, NULL);
}

int proc_signal_wait(pid_t pid, int sig, int ms, int *status) {
    kill(pid, sig);
    for (int waited = 0; waited < ms; waited += 10) {
        if (waitpid(pid, status, WNOHANG) == pid) return 1;
        sleep_ms(10);
    }
    kill(pid, SIGKILL);
    waitpid(pid, status, 0);
    return 0;
}

int srv_stop(Srv *s) {
    int rc = -1;
    if (s->pid > 0) {
        int status = 0;
        if (proc_signal_wait(s->pid, SIGTERM, 30000, &status) && WIFEXITED(status))
            rc = WEXITSTATUS(status);
        s->pid = 0;
    }
    char *log = srv_log(s);
    int clean = !strstr(log, "Sanitizer") && !strstr(log, "runtime error");
    if (!clean) fprintf(stderr, "server stderr:\n%s\n", log);
    free(log);
    tu_rmtree(s->dir);
    free(s->dir);
    free(s->log);
    s->dir = s->log = NULL;
    ck_assert_msg(clean, "the server reported sanitizer errors");
    return rc;
}

void resp_free(Resp *r) {
    free(r->body);
    free(r->headers);
    memset(r, 0, sizeof(*r));
}

typedef struct {
    char *data;
    size_t len;
} HBuf;

static size_t harness_sink(char *p, size_t size, size_t n, void *ctx) {
    HBuf *b = ctx;
    size_t add = size * n;
    char *d = realloc(b->data, b->len + add + 1);
    if (!d) return 0;
    memcpy(d + b->len, p, add);
    b->len += add;
    d[b->len] = '\0';
    b->data = d;
    return add;
}

typedef struct {
    const char *data;
    size_t len, pos, piece;
} Upload;

static size_t harness_source(char *p, size_t size, size_t n, void *ctx) {
    Upload *u = ctx;
    size_t room = size * n, left = u->len - u->pos;
    if (room > u->piece) room = u->piece; // several chunks, not one
    if (room > left) room = left;
    memcpy(p, u->data + u->pos, room);
    u->pos += room;
    return room;
}

Resp http_req(int port, const char *method, const char *path, const char *ctype, const char *body,
              size_t len, int chunked) {
    return http_req_headers(port, method, path, ctype, body, len, chunked, NULL);
}

Resp http_req_headers(int port, const char *method, const char *path, const char *ctype,
                      const char *body, size_t len, int chunked, const char *const *headers) {
    Resp r = {0};
    CURL *c = curl_easy_init();
    char url[4096];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    HBuf body_buf = {0}, head_buf = {0};
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, harness_sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body_buf);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, harness_sink);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &head_buf);
    struct curl_slist *h = NULL;
    char ct[256];
    if (ctype) {
        snprintf(ct, sizeof(ct), "Content-Type: %s", ctype);
        h = curl_slist_append(h, ct);
    } else {
        h = curl_slist_append(h, "Content-Type:");
    }
    h = curl_slist_append(h, "Expect:");
    for (int i = 0; headers && headers[i]; i++) h = curl_slist_append(h, headers[i]);
    Upload up = {body, len, 0, 1000};
    if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        if (chunked) {
            h = curl_slist_append(h, "Transfer-Encoding: chunked");
            curl_easy_setopt(c, CURLOPT_READFUNCTION, harness_source);
            curl_easy_setopt(c, CURLOPT_READDATA, &up);
        } else {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        }
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    else
        r.status = -(long)rc;
    r.body = body_buf.data ? body_buf.data : strdup("");
    r.len = body_buf.len;
    r.headers = head_buf.data ? head_buf.data : strdup("");
    r.hlen = head_buf.len;
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return r;
}

Resp http_get(int port, const char *path) {
    return http_req(port, "GET", path, NULL, NULL, 0, 0);
}

Resp http_post(int port, const char *path, const char *json) {
    return http_req(port, "POST", path, "application/json", json, strlen(json), 0);
}

char *resp_header(const Resp *r, const char *name) {
    size_t n = strlen(name);
    for (const char *line = r->headers; line && *line;) {
        const char *end = strstr(line, "\r\n");
        if (!end) end = line + strlen(line);
        if ((size_t)(end - line) > n && strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ') v++;
            return strndup(v, (size_t)(end - v));
        }
        line = *end ? end + 2 : end;
    }
    return NULL;
}

cJSON *resp_json(const Resp *r) {
    cJSON *j = cJSON_Parse(r->body);
    ck_assert_msg(j != NULL, "response is not JSON: %s", r->body);
    return j;
}

void assert_error(const Resp *r, long status, const char *param) {
    ck_assert_msg(r->status == status, "status %ld, expected %ld: %s", r->status, status, r->body);
    cJSON *j = resp_json(r);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    ck_assert_msg(cJSON_IsObject(e), "no error object: %s", r->body);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(e, "message");
    ck_assert(cJSON_IsString(m) && m->valuestring[0]);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(e, "param");
    if (param) {
        ck_assert_msg(cJSON_IsString(p) && strcmp(p->valuestring, param) == 0,
                      "expected param %s: %s", param, r->body);
    } else {
        ck_assert_msg(p == NULL, "expected no param: %s", r->body);
    }
    cJSON_Delete(j);
}

const char *json_str(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    ck_assert_msg(cJSON_IsString(v), "%s is not a string", k);
    return v->valuestring;
}

double json_num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    ck_assert_msg(cJSON_IsNumber(v), "%s is not a number", k);
    return v->valuedouble;
}

int sse_events(const char *body, char **events, int max) {
    int n = 0;
    const char *p = body;
    while (*p && n < max) {
        const char *end = strstr(p, "\n\n");
        if (!end) break;
        ck_assert_msg(strncmp(p, "data: ", 6) == 0, "not an SSE data line: %.40s", p);
        events[n++] = strndup(p + 6, (size_t)(end - p - 6));
        p = end + 2;
    }
    ck_assert_msg(*p == '\0', "trailing bytes after the last event: %s", p);
    return n;
}

int raw_send(int port, const char *request) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    size_t len = strlen(request);
    ck_assert_int_eq(send(fd, request, len, 0), (ssize_t)len);
    return fd;
}

int raw_generate(int port, const char *json) {
    char req[1024];
    snprintf(req, sizeof(req),
             "POST /generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
             "Content-Length: %zu\r\n\r\n%s",
             strlen(json), json);
    int fd = raw_send(port, req);
    for (int waited = 0; health_in_flight(port) != 1 && waited < 10000; waited += 10) sleep_ms(10);
    return fd;
}

int health_in_flight(int port) {
    Resp r = http_get(port, "/health");
    ck_assert_int_eq(r.status, 200);
    cJSON *j = resp_json(&r);
    int n = (int)json_num(j, "generations_in_flight");
    cJSON_Delete(j);
    resp_free(&r);
    return n;
}

/* POSTs and returns the parsed 200 reply. */
cJSON *http_post_ok(int port, const char *path, const char *body) {
    Resp r = http_post(port, path, body);
    ck_assert_msg(r.status == 200, "%s -> %ld %s", body, r.status, r.body);
    cJSON *j = resp_json(&r);
    resp_free(&r);
    return j;
}

// The text of a /generate SSE body (checked event by event) and its final event.
char *sse_generate_text(const char *body, cJSON **final) {
    char *ev[4096];
    int n = sse_events(body, ev, 4096);
    ck_assert_int_ge(n, 1);
    size_t cap = 1, len = 0;
    for (int i = 0; i < n; i++) cap += strlen(ev[i]);
    char *text = malloc(cap);
    text[0] = '\0';
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_Parse(ev[i]);
        ck_assert_msg(e != NULL, "event is not JSON: %s", ev[i]);
        if (i < n - 1) {
            const char *t = json_str(e, "text");
            ck_assert_msg(t[0] != '\0', "empty chunk");
            ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(e, "done"));
            memcpy(text + len, t, strlen(t) + 1);
            len += strlen(t);
            cJSON_Delete(e);
        } else {
            ck_assert(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "done")));
            ck_assert_ptr_null(cJSON_GetObjectItemCaseSensitive(e, "text"));
            *final = e;
        }
        free(ev[i]);
    }
    return text;
}

// The concatenated choices[0].text of an OpenAI stream; checks the chunk shapes, the
// finish_reason on the last chunk and the closing [DONE].
char *sse_completion_text(const char *body, const char **finish, cJSON **usage) {
    char *ev[4096];
    int n = sse_events(body, ev, 4096);
    ck_assert_int_ge(n, 2);
    ck_assert_str_eq(ev[n - 1], "[DONE]");
    size_t cap = 1, len = 0;
    for (int i = 0; i < n; i++) cap += strlen(ev[i]);
    char *text = malloc(cap);
    text[0] = '\0';
    *finish = NULL;
    *usage = NULL;
    for (int i = 0; i < n - 1; i++) {
        cJSON *e = cJSON_Parse(ev[i]);
        ck_assert_msg(e != NULL, "%s", ev[i]);
        ck_assert_str_eq(json_str(e, "object"), "text_completion");
        ck_assert(strncmp(json_str(e, "id"), "cmpl-", 5) == 0);
        const cJSON *choices = cJSON_GetObjectItemCaseSensitive(e, "choices");
        if (cJSON_GetArraySize(choices) == 0) { // the usage chunk
            ck_assert_ptr_null(*usage);
            *usage = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(e, "usage"), 1);
        } else {
            const cJSON *c = cJSON_GetArrayItem(choices, 0);
            ck_assert_ptr_null(*finish); // nothing after the finishing chunk but usage
            const char *t = json_str(c, "text");
            memcpy(text + len, t, strlen(t) + 1);
            len += strlen(t);
            const cJSON *fr = cJSON_GetObjectItemCaseSensitive(c, "finish_reason");
            if (cJSON_IsString(fr))
                *finish = strcmp(fr->valuestring, "stop") == 0 ? "stop" : "length";
            else
                ck_assert(cJSON_IsNull(fr));
        }
        cJSON_Delete(e);
    }
    for (int i = 0; i < n; i++) free(ev[i]);
    ck_assert_ptr_nonnull(*finish);
    return text;
}

char *root, *model_dir;
Srv S;

void suite_model_make(size_t text_len, int embed, int hidden, int layers, uint64_t seed) {
    curl_global_init(CURL_GLOBAL_ALL);
    root = tu_tmpdir();
    model_dir = malloc(strlen(root) + 16);
    // Named so that the id the server takes from it is the one the suites assert.
    sprintf(model_dir, "%s/charlm", root);
    char *text = tu_sample_text(text_len);
    ck_assert_int_eq(tu_make_model_dir(model_dir, text, embed, hidden, layers, seed), 0);
    free(text);
}

void suite_model_remove(void) {
    tu_rmtree(root);
    free(root);
    free(model_dir);
    curl_global_cleanup();
}

void start_default(void) {
    ck_assert_int_eq(srv_start(&S, model_dir, NULL), 0);
}

void stop_default(void) {
    ck_assert_int_eq(srv_stop(&S), 0);
}

void suite_model_load(Model *model, Vocab *vocab) {
    ModelInfo info;
    char err[ERR_LEN];
    ck_assert_msg(artefacts_load(model_dir, model, vocab, &info, err) == 0, "%s", err);
}

void suite_model_unload(Model *model, Vocab *vocab) {
    model_free(model);
    vocab_free(vocab);
    suite_model_remove();
}
