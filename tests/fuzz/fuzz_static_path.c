// libFuzzer target: a request URL's path as the server treats it for /static/<name>:
// http_unescape (server/http.c, libmicrohttpd's unescape callback) and then
// static_name_ok (server/static.c), the only check between a URL and open(2). Whatever the
// bytes, an accepted name must be a plain relative path inside the folder, and an error
// reply quoting the path (as /v1/models/{id}'s 404 does) is UTF-8 JSON.
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "static.h"
#include "utf8.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    // libmicrohttpd hands over a C string: the URL ends at the first NUL.
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    size_t before = strlen(s);
    size_t n = http_unescape(s);
    CHECK(n == strlen(s) && n <= before);
    char *json = http_error_json(404, s, s);
    CHECK(json && utf8_find_invalid(json, strlen(json)) == -1);
    cJSON *o = cJSON_Parse(json);
    CHECK(o);
    cJSON_Delete(o);
    free(json);

    if (static_name_ok(s)) {
        CHECK(n >= 1 && n <= 200);
        CHECK(s[0] != '/' && s[n - 1] != '/');
        CHECK(!strstr(s, "//") && !strchr(s, '\\'));
        // No segment is "." or "..": none even starts with a dot ("a..b" is a plain name).
        CHECK(s[0] != '.' && !strstr(s, "/."));
        for (size_t i = 0; i < n; i++) {
            char c = s[i];
            CHECK((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-' || c == '/');
        }
    }
    free(s);
    return 0;
}
