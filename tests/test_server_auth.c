/* API keys and CORS origins over real HTTP: every route of the table with no key, a wrong
 * key and the right one; keys from the flag, the variables and a key file; refused key
 * files; preflights; several origins. And the key check itself, called directly. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "error.h"
#include "routes.h"
#include "server_harness.h"
#include "testutil.h"

#define KEY "k3y-For_the+tests/0123456789"

// The servers that check every route get --training-dir, so that its routes exist too.
static char *train_dir;

static void suite_setup(void) {
    suite_model_make(2000, 8, 16, 1, 5);
    train_dir = tu_tmpdir();
}

static void suite_teardown(void) {
    tu_rmtree(train_dir);
    free(train_dir);
    suite_model_remove();
}

static size_t sink(char *p, size_t size, size_t n, void *ctx) {
    char **buf = ctx;
    size_t old = *buf ? strlen(*buf) : 0, add = size * n;
    char *d = realloc(*buf, old + add + 1);
    if (!d) return 0;
    memcpy(d + old, p, add);
    d[old + add] = '\0';
    *buf = d;
    return add;
}

/* method path with an Authorization header (NULL: none) and an Origin (NULL: none); a POST
 * sends a small generation request. */
// A body each POST route answers 200.
static const char *post_body(const char *path) {
    if (strcmp(path, "/v1/chat/completions") == 0)
        return "{\"messages\": [{\"role\": \"user\", \"content\": \"ab\"}], \"max_tokens\": 3}";
    if (strcmp(path, "/tokenize") == 0) return "{\"content\": \"ab\"}";
    if (strcmp(path, "/detokenize") == 0) return "{\"tokens\": [0, 1]}";
    return "{\"prompt\": \"ab\", \"max_tokens\": 3}";
}

static Resp req(int port, const char *method, const char *path, const char *auth,
                const char *origin) {
    Resp r = {0};
    CURL *c = curl_easy_init();
    char url[512], ah[512], oh[512];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r.headers);
    struct curl_slist *h = curl_slist_append(NULL, "Expect:");
    if (auth) {
        snprintf(ah, sizeof(ah), "Authorization: %s", auth);
        h = curl_slist_append(h, ah);
    }
    if (origin) {
        snprintf(oh, sizeof(oh), "Origin: %s", origin);
        h = curl_slist_append(h, oh);
    }
    if (strcmp(method, "POST") == 0) {
        h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, post_body(path));
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
    if (!r.body) r.body = strdup("");
    if (!r.headers) r.headers = strdup("");
    r.len = strlen(r.body);
    r.hlen = strlen(r.headers);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return r;
}

/* A request a row answers: GET for GET routes, a generation for POST ones, a file of the
 * page for a prefix; an id of no file for /v1/files/, whose handler's answer is 404. */
static int row_request(const Route *r, const char **method, char *path, size_t cap) {
    *method = r->methods & ROUTE_GET ? "GET" : "POST";
    int files = strcmp(r->path, "/v1/files/") == 0;
    int jobs = strcmp(r->path, "/v1/fine_tuning/jobs/") == 0;
    const char *tail = strcmp(r->path, "/v1/models/") == 0 ? "charlm"
                       : files                             ? "file-0123456789abcdef01234567"
                       : jobs                              ? "ftjob-0123456789abcdef01234567"
                                                           : "app.js";
    snprintf(path, cap, "%s%s", r->path, r->prefix ? tail : "");
    return files || jobs ? 404 : 200;
}

/* A 401 as docs/API.md states it; its message says "missing" or "invalid". */
static void assert_401(const Resp *r, const char *why, const char *what) {
    ck_assert_msg(r->status == 401, "%s: status %ld: %s", what, r->status, r->body);
    char *h = resp_header(r, "WWW-Authenticate");
    ck_assert_msg(h && strcmp(h, "Bearer") == 0, "%s: WWW-Authenticate %s", what, h);
    free(h);
    cJSON *j = resp_json(r);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    ck_assert_str_eq(json_str(e, "type"), "authentication_error");
    ck_assert_msg(strstr(json_str(e, "message"), why), "%s: message %s", what,
                  json_str(e, "message"));
    ck_assert_msg(!strstr(r->body, KEY), "%s: the body holds the key", what);
    cJSON_Delete(j);
}

/* Every route: without a key and with a wrong one, 401 if it needs a key, else its answer;
 * with the right one, its answer. right NULL: the server has no key, every route answers. */
static void check_routes(int port, const char *right) {
    char wrong[sizeof(KEY) + 8];
    snprintf(wrong, sizeof(wrong), "Bearer %s", KEY);
    wrong[strlen(wrong) - 1] ^= 1; // same length, last byte off
    for (int i = 0; i < route_count; i++) {
        const Route *rt = &route_table[i];
        const char *method;
        char path[256];
        int answer = row_request(rt, &method, path, sizeof(path));
        // The list: the page and /health are open, everything else (a new route
        // too) needs the key.
        int open = strcmp(rt->path, "/") == 0 || strcmp(rt->path, "/static/") == 0 ||
                   strcmp(rt->path, "/health") == 0;
        ck_assert_msg(rt->needs_key == !open, "%s: needs_key %d", rt->path, rt->needs_key);
        const char *auths[] = {NULL, wrong, "Basic a2V5OmtleQ==", "Bearer", right};
        for (size_t a = 0; a < sizeof(auths) / sizeof(*auths); a++) {
            Resp r = req(port, method, path, auths[a], NULL);
            char what[512];
            snprintf(what, sizeof(what), "%s %s with %s", method, path,
                     auths[a] == right ? "the key"
                     : auths[a]        ? auths[a]
                                       : "no key");
            if (right && rt->needs_key && auths[a] != right)
                assert_401(&r, auths[a] == wrong ? "invalid" : "missing", what);
            else
                ck_assert_msg(r.status == answer, "%s: status %ld: %s", what, r.status, r.body);
            resp_free(&r);
        }
    }
}

static char *read_log(const Srv *s) {
    char *log = tu_read_file(s->log, NULL);
    ck_assert_ptr_nonnull(log);
    return log;
}

START_TEST(test_every_route) {
    Srv s;
    const char *args[] = {"--api-key", KEY, "--training-dir", train_dir, NULL};
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
    check_routes(s.port, "Bearer " KEY);

    // The pages a route leaves open are all of it: an unknown path is still 404.
    Resp r = req(s.port, "GET", "/nope", NULL, NULL);
    ck_assert_int_eq(r.status, 404);
    resp_free(&r);
    // The key comes before the method: without it a protected route tells nothing.
    const char *probes[][2] = {{"GET", "/generate"}, {"HEAD", "/model"}, {"DELETE", "/metrics"}};
    for (size_t i = 0; i < sizeof(probes) / sizeof(*probes); i++) {
        r = req(s.port, probes[i][0], probes[i][1], NULL, NULL);
        ck_assert_msg(r.status == 401, "%s %s: %ld", probes[i][0], probes[i][1], r.status);
        resp_free(&r);
    }
    r = req(s.port, "GET", "/generate", "Bearer " KEY, NULL);
    ck_assert_int_eq(r.status, 405);
    resp_free(&r);

    // The scheme in any case, spaces around the key; a key one byte shorter or longer, or
    // in another case, is wrong. No CORS configured: OPTIONS is a method like the others.
    const char *good[] = {"bearer " KEY, "BEARER   " KEY "  ", "\tBearer\t" KEY};
    for (size_t i = 0; i < sizeof(good) / sizeof(*good); i++) {
        r = req(s.port, "GET", "/v1/models", good[i], NULL);
        ck_assert_msg(r.status == 200, "'%s': %ld", good[i], r.status);
        resp_free(&r);
    }
    const char *bad[] = {"Bearer k3y-For_the+tests/012345678", "Bearer " KEY "0",
                         "Bearer K3Y-FOR_THE+TESTS/0123456789", "Bearer " KEY " " KEY, "Bearer x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        r = req(s.port, "GET", "/v1/models", bad[i], NULL);
        assert_401(&r, "invalid", bad[i]);
        resp_free(&r);
    }
    r = req(s.port, "OPTIONS", "/generate", NULL, NULL);
    ck_assert_int_eq(r.status, 401);
    resp_free(&r);

    // The refusals are counted like any answer.
    r = req(s.port, "GET", "/metrics", "Bearer " KEY, NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "route=\"/generate\",status=\"401\""));
    resp_free(&r);

    // The access log has each request's method, path and status, and no key anywhere.
    char *log = read_log(&s);
    ck_assert_ptr_nonnull(strstr(log, "GET /model 401 "));
    ck_assert_ptr_nonnull(strstr(log, "GET /model 200 "));
    ck_assert_msg(!strstr(log, "k3y") && !strstr(log, "K3Y"), "the log holds the key:\n%s", log);
    free(log);
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

START_TEST(test_no_key_configured) {
    // As before keys existed: every route answers, whatever Authorization says.
    Srv s;
    const char *args[] = {"--training-dir", train_dir, NULL};
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
    check_routes(s.port, NULL);
    Resp r = req(s.port, "GET", "/model", "Bearer anything", NULL);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_null(resp_header(&r, "WWW-Authenticate"));
    resp_free(&r);
    ck_assert_int_eq(srv_stop(&s), 0);
}
END_TEST

START_TEST(test_keys_from_variables_and_file) {
    Srv s;
    const char *env[] = {"CHARLM_API_KEY=" KEY, NULL};
    const char *train[] = {"--training-dir", train_dir, NULL};
    ck_assert_int_eq(srv_start_env(&s, model_dir, train, env), 0);
    check_routes(s.port, "Bearer " KEY);
    char *log = read_log(&s);
    ck_assert_msg(!strstr(log, KEY), "the log holds the key:\n%s", log);
    free(log);
    ck_assert_int_eq(srv_stop(&s), 0);

    // Two keys in a file, with blank lines, spaces and CRLF around them, and a third from
    // the flag: all three work at once, keys of different lengths.
    char *dir = tu_tmpdir();
    const char *text = "\n  first-key-a  \r\n\n\tsecond\n";
    char *file = tu_write_file(dir, "keys", text, strlen(text));
    const char *args[] = {"--api-key-file", file, "--api-key", KEY, NULL};
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
    const char *keys[] = {"Bearer first-key-a", "Bearer second", "Bearer " KEY};
    for (size_t i = 0; i < 3; i++) {
        Resp r = req(s.port, "POST", "/generate", keys[i], NULL);
        ck_assert_msg(r.status == 200, "%s: %ld %s", keys[i], r.status, r.body);
        resp_free(&r);
    }
    const char *wrong[] = {"Bearer first-key-", "Bearer second ", "Bearer first-key-asecond",
                           "Bearer second\tfirst-key-a"};
    for (size_t i = 0; i < sizeof(wrong) / sizeof(*wrong); i++) {
        Resp r = req(s.port, "POST", "/generate", wrong[i], NULL);
        // "second " is the key with a trailing space, which is trimmed.
        if (strcmp(wrong[i], "Bearer second ") == 0)
            ck_assert_int_eq(r.status, 200);
        else
            assert_401(&r, "invalid", wrong[i]);
        resp_free(&r);
    }
    log = read_log(&s);
    ck_assert_msg(!strstr(log, "first-key-a") && !strstr(log, "second") && !strstr(log, KEY),
                  "the log holds a key:\n%s", log);
    free(log);
    ck_assert_int_eq(srv_stop(&s), 0);

    // The file by its variable.
    char fenv[4096 + 32];
    snprintf(fenv, sizeof(fenv), "CHARLM_API_KEY_FILE=%s", file);
    const char *env2[] = {fenv, NULL};
    ck_assert_int_eq(srv_start_env(&s, model_dir, train, env2), 0);
    check_routes(s.port, "Bearer second");
    ck_assert_int_eq(srv_stop(&s), 0);
    free(file);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

static int count_lines(const char *s) {
    int n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

START_TEST(test_bad_key_files) {
    char *dir = tu_tmpdir();
    free(tu_write_file(dir, "blank", "\n  \n\t\r\n", 7));
    free(tu_write_file(dir, "spaced", "good-key\nsecret key\n", 20));
    char big[AUTH_KEY_MAX + 2];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    free(tu_write_file(dir, "long", big, strlen(big)));
    free(tu_write_file(dir, "ctrl", "ok\nsecret\x01key\n", 14));
    static const struct {
        const char *file, *says;
    } cases[] = {
        {"missing", "No such file"}, {"blank", "holds no key"}, {"spaced", "line 2"},
        {"long", "line 1"},          {"ctrl", "line 2"},        {".", "directory"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        char cmd[8192], *out, *err;
        snprintf(cmd, sizeof(cmd), "%s --model '%s' --port 0 --api-key-file '%s/%s'",
                 tu_bin("charlm-server"), model_dir, dir, cases[i].file);
        ck_assert_msg(tu_run(cmd, &out, &err) == 2, "%s: %s", cases[i].file, err);
        ck_assert_msg(count_lines(err) == 1, "%s: %s", cases[i].file, err);
        ck_assert_msg(strstr(err, "--api-key-file") && strstr(err, cases[i].file) &&
                          strstr(err, cases[i].says),
                      "%s: %s", cases[i].file, err);
        ck_assert_msg(!strstr(err, "secret") && !strstr(err, "xxxx") && !strstr(err, "good-key"),
                      "%s: the message shows the file's content: %s", cases[i].file, err);
        free(out);
        free(err);
    }
    // A key with a space is refused from the flag and its variable too, without echoing it.
    const char *flags[] = {"--api-key 'secret key'", "--api-key ''"};
    for (size_t i = 0; i < 2; i++) {
        char cmd[8192], *out, *err;
        snprintf(cmd, sizeof(cmd), "%s --model '%s' --port 0 %s", tu_bin("charlm-server"),
                 model_dir, flags[i]);
        ck_assert_msg(tu_run(cmd, &out, &err) == 2, "%s: %s", flags[i], err);
        ck_assert_msg(count_lines(err) == 1 && strstr(err, "--api-key"), "%s: %s", flags[i], err);
        ck_assert_msg(!strstr(err, "secret"), "%s: %s", flags[i], err);
        free(out);
        free(err);
    }
    char cmd[8192], *out, *err;
    snprintf(cmd, sizeof(cmd), "CHARLM_API_KEY='secret key' %s --model '%s' --port 0",
             tu_bin("charlm-server"), model_dir);
    ck_assert_int_eq(tu_run(cmd, &out, &err), 2);
    ck_assert_msg(strstr(err, "CHARLM_API_KEY") && !strstr(err, "secret"), "%s", err);
    free(out);
    free(err);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

static char *acao(int port, const char *method, const char *path, const char *auth,
                  const char *origin, long status) {
    Resp r = req(port, method, path, auth, origin);
    ck_assert_msg(r.status == status, "%s %s from %s: %ld, expected %ld", method, path,
                  origin ? origin : "-", r.status, status);
    char *h = resp_header(&r, "Access-Control-Allow-Origin");
    if (h && strcmp(h, "*") != 0) {
        char *vary = resp_header(&r, "Vary");
        ck_assert_msg(vary && strstr(vary, "Origin"), "Vary: %s", vary);
        free(vary);
    }
    if (strcmp(method, "OPTIONS") == 0) {
        char *allow = resp_header(&r, "Access-Control-Allow-Headers");
        ck_assert_msg(allow && strstr(allow, "Authorization"), "Allow-Headers: %s", allow);
        free(allow);
    }
    resp_free(&r);
    return h;
}

static void assert_acao(char *got, const char *want) {
    if (want) {
        ck_assert_msg(got && strcmp(got, want) == 0, "ACAO %s, expected %s", got, want);
    } else {
        ck_assert_msg(got == NULL, "ACAO %s, expected none", got);
    }
    free(got);
}

START_TEST(test_cors_origins) {
    Srv s;
    const char *a = "http://a.test", *b = "https://b.test:8443", *c = "http://c.test";
    const char *args[] = {
        "--cors-origin", a,   "--cors-origin", b, "--api-key", KEY, "--training-dir",
        train_dir,       NULL};
    ck_assert_int_eq(srv_start(&s, model_dir, args), 0);
    const char *k = "Bearer " KEY;
    // A preflight needs no key; a listed origin is named, another is not.
    for (int i = 0; i < route_count; i++) {
        char path[256];
        const char *method;
        row_request(&route_table[i], &method, path, sizeof(path));
        assert_acao(acao(s.port, "OPTIONS", path, NULL, a, 204), a);
        assert_acao(acao(s.port, "OPTIONS", path, NULL, b, 204), b);
        assert_acao(acao(s.port, "OPTIONS", path, NULL, c, 204), NULL);
    }
    assert_acao(acao(s.port, "POST", "/generate", k, b, 200), b);
    assert_acao(acao(s.port, "POST", "/generate", k, c, 200), NULL);
    assert_acao(acao(s.port, "GET", "/health", NULL, "http://a.test.evil", 200), NULL);
    assert_acao(acao(s.port, "GET", "/health", NULL, "http://a.tes", 200), NULL);
    // A page can read the 401 to ask for a key.
    assert_acao(acao(s.port, "GET", "/model", NULL, a, 401), a);
    // Without an Origin, several origins: none is named.
    assert_acao(acao(s.port, "GET", "/health", NULL, NULL, 200), NULL);
    ck_assert_int_eq(srv_stop(&s), 0);

    // The variable takes several, by commas or spaces; flags replace it.
    const char *env[] = {"CHARLM_CORS_ORIGIN=http://a.test, https://b.test:8443 http://c.test",
                         NULL};
    ck_assert_int_eq(srv_start_env(&s, model_dir, NULL, env), 0);
    assert_acao(acao(s.port, "OPTIONS", "/generate", NULL, a, 204), a);
    assert_acao(acao(s.port, "GET", "/health", NULL, b, 200), b);
    assert_acao(acao(s.port, "POST", "/v1/completions", NULL, c, 200), c);
    assert_acao(acao(s.port, "GET", "/health", NULL, "http://d.test", 200), NULL);
    ck_assert_int_eq(srv_stop(&s), 0);
    const char *only_d[] = {"--cors-origin", "http://d.test", NULL};
    ck_assert_int_eq(srv_start_env(&s, model_dir, only_d, env), 0);
    assert_acao(acao(s.port, "GET", "/health", NULL, a, 200), NULL);
    assert_acao(acao(s.port, "GET", "/health", NULL, "http://d.test", 200), "http://d.test");
    // One origin and a request without Origin: named, as it always was.
    assert_acao(acao(s.port, "GET", "/health", NULL, NULL, 200), "http://d.test");
    ck_assert_int_eq(srv_stop(&s), 0);

    // "*" answers "*" to anyone, and the preflight still needs no key.
    const char *any[] = {"--cors-origin", "*", "--api-key", KEY, NULL};
    ck_assert_int_eq(srv_start(&s, model_dir, any), 0);
    assert_acao(acao(s.port, "OPTIONS", "/generate", NULL, c, 204), "*");
    assert_acao(acao(s.port, "GET", "/model", k, a, 200), "*");
    ck_assert_int_eq(srv_stop(&s), 0);

    // An origin list with no origin in it is a bad variable.
    char cmd[8192], *out, *err;
    snprintf(cmd, sizeof(cmd), "CHARLM_CORS_ORIGIN=' , ' %s --model '%s' --port 0",
             tu_bin("charlm-server"), model_dir);
    ck_assert_int_eq(tu_run(cmd, &out, &err), 2);
    ck_assert_ptr_nonnull(strstr(err, "--cors-origin"));
    free(out);
    free(err);
}
END_TEST

// The check itself: what counts as missing, invalid and right, with keys of several lengths.
START_TEST(test_auth_check) {
    char err[ERR_LEN];
    ck_assert_int_eq(auth_enabled(), 0);
    char *dir = tu_tmpdir();
    char *file = tu_write_file(dir, "keys", "abc\n" KEY "\n", strlen("abc\n" KEY "\n"));
    ck_assert_msg(auth_init("z", file, err) == 0, "%s", err);
    ck_assert_int_eq(auth_enabled(), 1);
    const char *missing[] = {NULL,        "",          "Bearer", "Bearer ",  "Bearer   \t",
                             "Bearerabc", "Basic abc", "abc",    "Token abc"};
    for (size_t i = 0; i < sizeof(missing) / sizeof(*missing); i++)
        ck_assert_msg(auth_check(missing[i]) == AUTH_MISSING, "'%s'", missing[i]);
    char longer[AUTH_KEY_MAX + 16];
    snprintf(longer, sizeof(longer), "Bearer %0*d", AUTH_KEY_MAX + 2, 0);
    const char *invalid[] = {"Bearer ab", "Bearer abcd",  "Bearer ABC", "Bearer zz",
                             "Bearer y",  "Bearer abc z", longer};
    for (size_t i = 0; i < sizeof(invalid) / sizeof(*invalid); i++)
        ck_assert_msg(auth_check(invalid[i]) == AUTH_INVALID, "'%s'", invalid[i]);
    const char *ok[] = {"Bearer abc", "bearer z", "BeArEr " KEY, "  Bearer  abc  "};
    for (size_t i = 0; i < sizeof(ok) / sizeof(*ok); i++)
        ck_assert_msg(auth_check(ok[i]) == AUTH_OK, "'%s'", ok[i]);
    auth_free();
    ck_assert_int_eq(auth_enabled(), 0);

    // A key of exactly AUTH_KEY_MAX bytes is accepted, one more is refused.
    char max[AUTH_KEY_MAX + 2];
    memset(max, 'm', AUTH_KEY_MAX);
    max[AUTH_KEY_MAX] = '\0';
    ck_assert_msg(auth_init(max, NULL, err) == 0, "%s", err);
    char hdr[AUTH_KEY_MAX + 16];
    snprintf(hdr, sizeof(hdr), "Bearer %s", max);
    ck_assert_int_eq(auth_check(hdr), AUTH_OK);
    auth_free();
    max[AUTH_KEY_MAX] = 'm';
    max[AUTH_KEY_MAX + 1] = '\0';
    ck_assert_int_eq(auth_init(max, NULL, err), -1);
    ck_assert_int_eq(auth_enabled(), 0);
    free(file);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

int main(void) {
    Suite *s = suite_create("server_auth");
    TCase *tc = tcase_create("auth");
    tcase_add_unchecked_fixture(tc, suite_setup, suite_teardown);
    tcase_add_checked_fixture(tc, start_default, stop_default);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_every_route);
    tcase_add_test(tc, test_no_key_configured);
    tcase_add_test(tc, test_keys_from_variables_and_file);
    tcase_add_test(tc, test_bad_key_files);
    tcase_add_test(tc, test_cors_origins);
    tcase_add_test(tc, test_auth_check);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
