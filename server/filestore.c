#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "error.h"
#include "fileio.h"
#include "filestore.h"
#include "utf8.h"

#define ID_PREFIX "file-"
#define ID_HEX    24
// The longest filename label kept, in bytes (cut at a character boundary).
#define LABEL_MAX 255
// An upload's content until it is whole; never the shape of an id or an object.
#define TEMP_PREFIX ".upload-"

static char *files_dir;

int filestore_init(const char *dir, char *err) {
    free(files_dir);
    files_dir = path_join(dir, "files");
    if (!files_dir) return err_set(err, "out of memory");
    if (dir_ensure(files_dir, err)) return -1;
    // What uploads cut short by a crash or a kill left: never listed, never finished.
    DIR *d = opendir(files_dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strncmp(e->d_name, TEMP_PREFIX, strlen(TEMP_PREFIX)) != 0) continue;
        char *p = path_join(files_dir, e->d_name);
        if (p) unlink(p);
        free(p);
    }
    if (d) closedir(d);
    return 0;
}

int filestore_id_ok(const char *id) {
    size_t p = strlen(ID_PREFIX);
    if (!id || strncmp(id, ID_PREFIX, p) != 0 || strlen(id) != p + ID_HEX) return 0;
    for (size_t i = p; i < p + ID_HEX; i++)
        if (!strchr("0123456789abcdef", id[i])) return 0;
    return 1;
}

static int ends_with(const char *s, const char *tail) {
    size_t n = strlen(s), t = strlen(tail);
    return n >= t && strcmp(s + n - t, tail) == 0;
}

static char *path_of(const char *id, const char *ext) {
    char name[64];
    snprintf(name, sizeof(name), "%s%s", id, ext);
    return path_join(files_dir, name);
}

int filestore_begin(FileUpload *u, char *err) {
    u->len = 0;
    u->tmp = path_join(files_dir, TEMP_PREFIX "XXXXXX");
    u->fd = u->tmp ? mkstemp(u->tmp) : -1;
    if (u->fd >= 0) return 0;
    err_set(err, u->tmp ? "cannot create a temp file in %s: %s" : "out of memory", files_dir,
            strerror(errno));
    free(u->tmp);
    u->tmp = NULL;
    return -1;
}

int filestore_append(FileUpload *u, const char *data, size_t n, char *err) {
    while (n) {
        ssize_t k = write(u->fd, data, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return err_set(err, "%s: write failed: %s", u->tmp, strerror(errno));
        data += k;
        n -= (size_t)k;
        u->len += (size_t)k;
    }
    return 0;
}

void filestore_abort(FileUpload *u) {
    if (u->fd >= 0) close(u->fd);
    u->fd = -1;
    if (u->tmp) unlink(u->tmp);
    free(u->tmp);
    u->tmp = NULL;
}

cJSON *filestore_commit(FileUpload *u, const char *filename, const char *purpose, char *err) {
    unsigned char rnd[ID_HEX / 2];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        err_set(err, "no random bytes for a file id");
        filestore_abort(u);
        return NULL;
    }
    char id[sizeof(ID_PREFIX) + ID_HEX];
    int k = snprintf(id, sizeof(id), "%s", ID_PREFIX);
    for (size_t i = 0; i < sizeof(rnd); i++)
        k += snprintf(id + k, sizeof(id) - (size_t)k, "%02x", rnd[i]);
    char label[LABEL_MAX + 1];
    const char *fn = filename ? filename : "";
    utf8_sanitize(fn, strlen(fn), label, sizeof(label));
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", "file");
    cJSON_AddNumberToObject(o, "bytes", (double)u->len);
    cJSON_AddNumberToObject(o, "created_at", (double)time(NULL));
    cJSON_AddStringToObject(o, "filename", label);
    cJSON_AddStringToObject(o, "purpose", purpose);
    char *json = cJSON_PrintUnformatted(o);
    char *content = path_of(id, ""), *meta = path_of(id, ".json");
    int rc = -1;
    if (!json || !content || !meta) {
        err_set(err, "out of memory");
    } else {
        int ok = fdatasync(u->fd) == 0, e = errno;
        if (close(u->fd) != 0 && ok) {
            ok = 0;
            e = errno;
        }
        u->fd = -1;
        if (!ok) {
            err_set(err, "%s: write failed: %s", u->tmp, strerror(e));
        } else if (rename(u->tmp, content) != 0) {
            err_set(err, "%s: cannot rename: %s", u->tmp, strerror(errno));
        } else {
            free(u->tmp);
            u->tmp = NULL;
            const void *mp[] = {json};
            size_t ml[] = {strlen(json)};
            if ((rc = file_write_atomic(meta, mp, ml, 1, err)) != 0) unlink(content);
        }
    }
    filestore_abort(u);
    free(json);
    free(content);
    free(meta);
    if (rc == 0) return o;
    cJSON_Delete(o);
    return NULL;
}

cJSON *filestore_get(const char *id) {
    if (!filestore_id_ok(id)) return NULL;
    char *meta = path_of(id, ".json"), *text = NULL, err[ERR_LEN];
    size_t len;
    cJSON *o = NULL;
    if (meta && file_read_regular(meta, 1 << 16, &text, &len, err) == 0)
        o = cJSON_ParseWithLength(text, len);
    free(text);
    free(meta);
    return o;
}

static int newest_first(const void *a, const void *b) {
    const cJSON *x = *(cJSON *const *)a, *y = *(cJSON *const *)b;
    double tx = cJSON_GetNumberValue(cJSON_GetObjectItem(x, "created_at"));
    double ty = cJSON_GetNumberValue(cJSON_GetObjectItem(y, "created_at"));
    if (tx != ty) return tx < ty ? 1 : -1;
    return strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(x, "id")),
                  cJSON_GetStringValue(cJSON_GetObjectItem(y, "id")));
}

cJSON *filestore_list(void) {
    cJSON *list = cJSON_CreateObject();
    cJSON *data = cJSON_AddArrayToObject(list, "data");
    cJSON_AddStringToObject(list, "object", "list");
    DIR *d = opendir(files_dir);
    if (!d) return list;
    cJSON **found = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        // Only "<id>.json": temp names and the contents are not objects.
        char id[64];
        size_t len = strlen(e->d_name);
        if (len < 5 || len >= sizeof(id) || !ends_with(e->d_name, ".json")) continue;
        memcpy(id, e->d_name, len - 5);
        id[len - 5] = '\0';
        cJSON *o = filestore_get(id);
        if (!o) continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            cJSON **more = realloc(found, cap * sizeof(*found));
            if (!more) {
                cJSON_Delete(o);
                break;
            }
            found = more;
        }
        found[n++] = o;
    }
    closedir(d);
    if (n) qsort(found, n, sizeof(*found), newest_first);
    for (size_t i = 0; i < n; i++) cJSON_AddItemToArray(data, found[i]);
    free(found);
    return list;
}

int filestore_delete(const char *id) {
    if (!filestore_id_ok(id)) return -1;
    char *meta = path_of(id, ".json"), *content = path_of(id, "");
    int rc = meta && content && unlink(meta) == 0 ? 0 : -1;
    if (rc == 0) unlink(content);
    free(meta);
    free(content);
    return rc;
}
