#include "auth.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"
#include "fileio.h"

typedef struct {
    unsigned char bytes[AUTH_KEY_MAX]; // zero-padded, so every comparison is as long
    size_t len;
} Key;

static Key *keys;
static int nkeys;

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

// A key goes in an HTTP header as a Bearer token: visible ASCII, no spaces.
static int key_ok(const char *s, size_t len) {
    if (len == 0 || len > AUTH_KEY_MAX) return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) return 0;
    return 1;
}

static int key_add(const char *s, size_t len) {
    Key *k = realloc(keys, (size_t)(nkeys + 1) * sizeof(*keys));
    if (!k) return -1;
    keys = k;
    memset(&keys[nkeys], 0, sizeof(*keys));
    memcpy(keys[nkeys].bytes, s, len);
    keys[nkeys].len = len;
    nkeys++;
    return 0;
}

static int load_file(const char *path, char *err) {
    char *data = NULL, ferr[ERR_LEN];
    size_t len = 0;
    if (file_read_all(path, AUTH_FILE_MAX, &data, &len, ferr))
        return err_set(err, "--api-key-file: %s", ferr);
    int line = 0, found = 0, rc = 0;
    for (size_t at = 0; at < len && rc == 0;) {
        size_t end = at;
        while (end < len && data[end] != '\n') end++;
        line++;
        size_t a = at, b = end;
        while (a < b && is_space(data[a])) a++;
        while (b > a && is_space(data[b - 1])) b--;
        if (a < b) {
            if (!key_ok(data + a, b - a))
                rc = err_set(err,
                             "--api-key-file %s: line %d: a key is 1 to %d printable ASCII "
                             "characters without spaces",
                             path, line, AUTH_KEY_MAX);
            else if (key_add(data + a, b - a))
                rc = err_set(err, "--api-key-file %s: out of memory", path);
            else
                found++;
        }
        at = end + 1;
    }
    // The file's bytes are keys: leave no copy of them behind in freed memory.
    memset(data, 0, len);
    free(data);
    if (rc == 0 && !found) rc = err_set(err, "--api-key-file %s holds no key", path);
    return rc;
}

int auth_init(const char *key, const char *file, char *err) {
    if (key) {
        if (!key_ok(key, strlen(key))) {
            return err_set(err,
                           "--api-key (CHARLM_API_KEY): a key is 1 to %d printable ASCII "
                           "characters without spaces",
                           AUTH_KEY_MAX);
        }
        if (key_add(key, strlen(key))) return err_set(err, "out of memory");
    }
    if (file && load_file(file, err)) {
        auth_free();
        return -1;
    }
    return 0;
}

void auth_free(void) {
    if (keys) memset(keys, 0, (size_t)nkeys * sizeof(*keys));
    free(keys);
    keys = NULL;
    nkeys = 0;
}

int auth_enabled(void) {
    return nkeys > 0;
}

AuthResult auth_check(const char *h) {
    if (!h) return AUTH_MISSING;
    while (*h == ' ' || *h == '\t') h++;
    // The scheme is case-insensitive (RFC 9110 11.1); one or more spaces follow it.
    if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t')) return AUTH_MISSING;
    h += 6;
    while (*h == ' ' || *h == '\t') h++;
    size_t len = strlen(h);
    while (len && (h[len - 1] == ' ' || h[len - 1] == '\t')) len--;
    if (!len) return AUTH_MISSING;

    unsigned char sent[AUTH_KEY_MAX] = {0};
    memcpy(sent, h, len < AUTH_KEY_MAX ? len : AUTH_KEY_MAX);
    int match = 0;
    for (int k = 0; k < nkeys; k++) {
        // volatile: the compiler may not turn this into a compare that stops early.
        volatile size_t diff = len ^ keys[k].len;
        for (size_t i = 0; i < AUTH_KEY_MAX; i++) diff |= sent[i] ^ keys[k].bytes[i];
        match |= diff == 0;
    }
    return match ? AUTH_OK : AUTH_INVALID;
}
