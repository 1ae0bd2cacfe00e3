/*
 * auth.h — API keys: the ones --api-key and --api-key-file give, and the check of a
 * request's "Authorization: Bearer <key>" header against them.
 *
 * Which routes need a key is the route table's business (routes.h, `needs_key`); with no
 * key configured nothing is checked. A key is never printed: errors name the flag, the
 * file and the line, not what is in them.
 */
#ifndef CHARLM_AUTH_H
#define CHARLM_AUTH_H

/* Longest key accepted, in bytes. Keys are compared over this many bytes every time. */
#define AUTH_KEY_MAX 256
/* Largest --api-key-file read. */
#define AUTH_FILE_MAX (1 << 20)

typedef enum {
    AUTH_OK,
    AUTH_MISSING, // no Authorization header, another scheme, or "Bearer" with no key
    AUTH_INVALID, // a Bearer key that is none of the configured ones
} AuthResult;

/* Takes the key (or NULL) and the keys of file (or NULL): one a line, blank lines and
 * whitespace around a key ignored. A key is 1 to AUTH_KEY_MAX printable ASCII bytes
 * without spaces. Returns 0, or -1 with err naming the flag (and file line) at fault,
 * e.g. a file that cannot be read or holds no key. Call once, before the server starts;
 * auth_free undoes it. */
int auth_init(const char *key, const char *file, char *err);
void auth_free(void);
/* 1 when at least one key is configured: then routes that need a key check it. */
int auth_enabled(void);
/* Checks an Authorization header value (NULL: none was sent). The key sent is compared
 * with every configured key, each over AUTH_KEY_MAX bytes, without stopping at the first
 * difference or the first match, so the time taken says nothing about the keys. */
AuthResult auth_check(const char *authorization);

#endif
