// The route table: lookup of paths and methods, the Allow header, the table's own
// invariants, that docs/API.md documents every route and that --help lists each one.
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fileio.h"
#include "metrics.h"
#include "routes.h"
#include "testutil.h"

// What routing alone answers: 0 when a row takes the request (its handler may still say
// 404, as the static one does for a missing file), else 404 or 405.
static int route_status(const char *method, const char *path, const char **label) {
    int i = routes_find(path);
    *label = i < 0 ? ROUTE_LABEL_NONE : route_table[i].label;
    if (i < 0) return 404;
    return route_allows(&route_table[i], method) ? 0 : 405;
}

static const struct {
    const char *method, *path;
    int status;
    const char *label;
    const char *allow; // for a 405, without CORS
} lookups[] = {
    {"GET", "/", 0, "/", NULL},
    {"HEAD", "/", 0, "/", NULL},
    {"GET", "/index.html", 0, "/", NULL},
    {"POST", "/", 405, "/", "GET, HEAD"},
    {"POST", "/index.html", 405, "/", "GET, HEAD"},
    {"GET", "/static/app.js", 0, "/static", NULL},
    {"HEAD", "/static/img/logo.png", 0, "/static", NULL},
    {"GET", "/static/", 0, "/static", NULL},
    {"GET", "/static/../server.h", 0, "/static", NULL}, // static_name_ok refuses it
    {"DELETE", "/static/app.js", 405, "/static", "GET, HEAD"},
    {"POST", "/generate", 0, "/generate", NULL},
    {"GET", "/generate", 405, "/generate", "POST"},
    {"HEAD", "/generate", 405, "/generate", "POST"},
    {"OPTIONS", "/generate", 405, "/generate", "POST"}, // a preflight only with CORS on
    {"POST", "/v1/completions", 0, "/v1/completions", NULL},
    {"PUT", "/v1/completions", 405, "/v1/completions", "POST"},
    {"GET", "/v1/models", 0, "/v1/models", NULL},
    {"POST", "/v1/models", 405, "/v1/models", "GET, HEAD"},
    {"GET", "/health", 0, "/health", NULL},
    {"HEAD", "/health", 0, "/health", NULL},
    {"DELETE", "/health", 405, "/health", "GET, HEAD"},
    {"get", "/health", 405, "/health", "GET, HEAD"}, // methods are case-sensitive
    {"GET", "/model", 0, "/model", NULL},
    {"GET", "/metrics", 0, "/metrics", NULL},
    {"POST", "/metrics", 405, "/metrics", "GET, HEAD"},
    {"GET", "/nope", 404, "other", NULL},
    {"POST", "/nope", 404, "other", NULL},
    {"GET", "", 404, "other", NULL},
    {"GET", "/static", 404, "other", NULL},
    {"GET", "/staticfile.js", 404, "other", NULL},
    {"GET", "/index.htm", 404, "other", NULL},
    {"GET", "/health/", 404, "other", NULL},
    {"GET", "/Health", 404, "other", NULL},
    {"POST", "/generate/", 404, "other", NULL},
    {"POST", "/v1/embeddings", 404, "other", NULL},
    {"GET", "/v1", 404, "other", NULL},
    {"GET", "//", 404, "other", NULL},
    {"GET", "/v1/files", 0, "/v1/files", NULL},
    {"POST", "/v1/files", 0, "/v1/files", NULL},
    {"DELETE", "/v1/files", 405, "/v1/files", "GET, HEAD, POST"},
    {"GET", "/v1/files/file-abc", 0, "/v1/files/{id}", NULL},
    {"DELETE", "/v1/files/file-abc", 0, "/v1/files/{id}", NULL},
    {"POST", "/v1/files/file-abc", 405, "/v1/files/{id}", "GET, HEAD, DELETE"},
    {"DELETE", "/v1/models", 405, "/v1/models", "GET, HEAD"},
};

START_TEST(test_lookup) {
    for (size_t i = 0; i < sizeof(lookups) / sizeof(*lookups); i++) {
        const char *label;
        int status = route_status(lookups[i].method, lookups[i].path, &label);
        ck_assert_msg(status == lookups[i].status, "%s \"%s\": %d, expected %d", lookups[i].method,
                      lookups[i].path, status, lookups[i].status);
        ck_assert_msg(strcmp(label, lookups[i].label) == 0, "%s \"%s\": label %s, expected %s",
                      lookups[i].method, lookups[i].path, label, lookups[i].label);
        if (!lookups[i].allow) continue;
        const Route *r = &route_table[routes_find(lookups[i].path)];
        char allow[64], expected[64];
        route_allow_text(r, 0, allow, sizeof(allow));
        ck_assert_str_eq(allow, lookups[i].allow);
        snprintf(expected, sizeof(expected), "%s, OPTIONS", lookups[i].allow);
        route_allow_text(r, 1, allow, sizeof(allow));
        ck_assert_str_eq(allow, expected);
    }
}
END_TEST

// Allow must fit Request.allow, and a GET route's Allow names HEAD too.
START_TEST(test_allow_text) {
    Request rq;
    for (int i = 0; i < route_count; i++) {
        const Route *r = &route_table[i];
        char allow[128];
        route_allow_text(r, 1, allow, sizeof(allow));
        ck_assert_msg(strlen(allow) < sizeof(rq.allow), "%s: Allow \"%s\" is too long", r->path,
                      allow);
        ck_assert_int_eq(strstr(allow, "HEAD") != NULL, (r->methods & ROUTE_GET) != 0);
        ck_assert_int_eq(strstr(allow, "POST") != NULL,
                         (r->methods & (ROUTE_POST | ROUTE_UPLOAD)) != 0);
        ck_assert_int_eq(strstr(allow, "DELETE") != NULL, (r->methods & ROUTE_DELETE) != 0);
        for (const char *m = "GET\0HEAD\0POST\0DELETE\0"; *m; m += strlen(m) + 1)
            ck_assert_msg(route_allows(r, m) == (strstr(allow, m) != NULL),
                          "%s: %s allowed but Allow says \"%s\"", r->path, m, allow);
    }
}
END_TEST

START_TEST(test_table) {
    char err[ERR_LEN];
    ck_assert_msg(routes_init(err) == 0, "%s", err); // its labels fit the metrics
    for (int i = 0; i < route_count; i++) {
        const Route *r = &route_table[i];
        ck_assert_msg(r->path[0] == '/', "route %d: path \"%s\"", i, r->path);
        ck_assert_msg(!r->prefix || r->path[strlen(r->path) - 1] == '/',
                      "%s: a prefix ends in a slash", r->path);
        ck_assert_msg(
            r->methods &&
                !(r->methods & ~(unsigned)(ROUTE_GET | ROUTE_POST | ROUTE_UPLOAD | ROUTE_DELETE)) &&
                (r->methods & (ROUTE_POST | ROUTE_UPLOAD)) != (ROUTE_POST | ROUTE_UPLOAD),
            "%s: methods", r->path);
        ck_assert_msg(r->handler && r->label, "%s: handler and label", r->path);
        ck_assert_msg(routes_find(r->path) == i, "%s: found as another route", r->path);
        ck_assert_msg(!r->alias || routes_find(r->alias) == i, "%s: alias %s", r->path, r->alias);
        ck_assert_msg(strcmp(r->label, ROUTE_LABEL_NONE) != 0, "%s: label", r->path);
        for (int j = 0; j < i; j++)
            ck_assert_msg(strcmp(r->label, route_table[j].label) != 0,
                          "%s and %s share the label %s", route_table[j].path, r->path, r->label);
    }
}
END_TEST

// p is an occurrence of path in a heading: bounded before by a space, backtick or '#',
// after by a space, backtick, '{', '*' or the end of the line ("### GET /static/{file}").
static int documented_at(const char *line, const char *p, size_t n) {
    char before = p == line ? ' ' : p[-1], after = p[n];
    return (before == ' ' || before == '`' || before == '#') &&
           (after == ' ' || after == '`' || after == '{' || after == '*' || after == '\n' ||
            after == '\r' || after == '\0');
}

static int documented(const char *doc, const char *path) {
    size_t n = strlen(path);
    for (const char *line = doc; line && *line;) {
        const char *end = strchr(line, '\n');
        if (!end) end = line + strlen(line);
        if (line[0] == '#')
            for (const char *p = line; (p = strstr(p, path)) && p < end; p++)
                if (p + n <= end && documented_at(line, p, n)) return 1;
        line = *end ? end + 1 : NULL;
    }
    return 0;
}

START_TEST(test_documented) {
    const char *doc_path = CHARLM_SOURCE_DIR "/docs/API.md";
    char *doc;
    size_t len;
    char err[ERR_LEN];
    ck_assert_msg(file_read_all(doc_path, 0, &doc, &len, err) == 0,
                  "docs/API.md documents the routes, and cannot be read: %s", err);
    for (int i = 0; i < route_count; i++) {
        const Route *r = &route_table[i];
        ck_assert_msg(documented(doc, r->path),
                      "route %s is not documented: docs/API.md needs a heading with it, "
                      "such as \"### %s %s\"",
                      r->path, r->methods & ROUTE_GET ? "GET" : "POST", r->path);
    }
    free(doc);
}
END_TEST

// The check itself: what counts as documenting a path.
START_TEST(test_documented_rule) {
    ck_assert(documented("### GET /\n", "/"));
    ck_assert(documented("## `/`\n", "/"));
    ck_assert(documented("### GET /static/{file}\n", "/static/"));
    ck_assert(documented("### POST /generate (native)\n", "/generate"));
    ck_assert(documented("text\n### POST /generate", "/generate"));
    ck_assert(documented("### **/health**\n", "/health") == 0); // '*' before: not a boundary
    ck_assert(documented("### GET /static/{file}\n", "/") == 0);
    ck_assert(documented("### GET /generate\n", "/") == 0);
    ck_assert(documented("### POST /generate\n", "/gen") == 0);
    ck_assert(documented("### GET /v1/models\n", "/model") == 0);
    ck_assert(documented("POST /generate is described below\n", "/generate") == 0);
    ck_assert(documented("   ### POST /generate\n", "/generate") == 0);
}
END_TEST

/* Finds the line of --help that lists r: "  METHOD PATH..." with r's method first and its
 * path next, ending there or going on with a placeholder ("{id}", "*"), its alias or a
 * note. Copies it to line and returns 1, or returns 0. */
static int help_line(const char *help, const Route *r, char *line, size_t cap) {
    const char *method = r->methods & ROUTE_GET                     ? "GET"
                         : r->methods & (ROUTE_POST | ROUTE_UPLOAD) ? "POST"
                                                                    : "DELETE";
    size_t n = strlen(r->path);
    for (const char *at = help; at && *at;) {
        const char *end = strchr(at, '\n');
        if (!end) end = at + strlen(at);
        snprintf(line, cap, "%.*s", (int)(end - at), at);
        at = *end ? end + 1 : NULL;
        const char *p = line + strspn(line, " ");
        if (p == line || strncmp(p, method, strlen(method)) != 0) continue;
        p += strlen(method);
        if (*p != ' ' && *p != '|') continue;
        p += strcspn(p, "/");
        if (strncmp(p, r->path, n) != 0 || !strchr("{*, ", p[n])) continue;
        if (r->alias && !strstr(p, r->alias)) continue;
        return 1;
    }
    return 0;
}

START_TEST(test_help_lists_routes) {
    char cmd[4096], *out = NULL, *err = NULL, line[256];
    snprintf(cmd, sizeof(cmd), "%s --help", tu_bin("charlm-server"));
    ck_assert_msg(tu_run(cmd, &out, &err) == 0, "%s: %s", cmd, err);
    for (int i = 0; i < route_count; i++) {
        const Route *r = &route_table[i];
        ck_assert_msg(help_line(out, r, line, sizeof(line)),
                      "charlm-server --help does not list %s %s:\n%s",
                      r->methods & ROUTE_GET ? "GET" : "POST", r->path, out);
        ck_assert_msg((strstr(line, "(open)") != NULL) == !r->needs_key,
                      "--help's \"%s\": marked open or not against the table", line);
    }
    free(out);
    free(err);
}
END_TEST

// The finder above, on lines of the shape --help prints and on near misses.
START_TEST(test_help_line_rule) {
    const Route gen = {"/generate", NULL, 0, ROUTE_POST, NULL, "/generate", 1, 0};
    const Route model = {"/v1/models/", NULL, 1, ROUTE_GET, NULL, "/v1/models/{id}", 1, 0};
    const Route root = {"/", "/index.html", 0, ROUTE_GET, NULL, "/", 0, 0};
    char line[256];
    ck_assert(help_line("  POST /generate\n", &gen, line, sizeof(line)));
    ck_assert_str_eq(line, "  POST /generate");
    ck_assert(!help_line("  GET  /generate\n", &gen, line, sizeof(line)));
    ck_assert(!help_line("  POST /generated\n", &gen, line, sizeof(line)));
    ck_assert(!help_line("POST /generate\n", &gen, line, sizeof(line)));
    ck_assert(!help_line("Serves POST /generate, ...\n", &gen, line, sizeof(line)));
    ck_assert(help_line("  GET  /v1/models/{id}\n", &model, line, sizeof(line)));
    ck_assert(!help_line("  GET  /v1/models\n", &model, line, sizeof(line)));
    ck_assert(help_line("x\n  GET  /, /index.html  (open)\n", &root, line, sizeof(line)));
    ck_assert(!help_line("  GET  /\n", &root, line, sizeof(line)));
    ck_assert(!help_line("  GET  /static/*\n", &root, line, sizeof(line)));
}
END_TEST

int main(void) {
    Suite *s = suite_create("routes");
    TCase *tc = tcase_create("table");
    tcase_add_test(tc, test_lookup);
    tcase_add_test(tc, test_allow_text);
    tcase_add_test(tc, test_table);
    tcase_add_test(tc, test_documented_rule);
    tcase_add_test(tc, test_documented);
    tcase_add_test(tc, test_help_line_rule);
    tcase_add_test(tc, test_help_lists_routes);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
