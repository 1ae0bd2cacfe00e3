#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "fileio.h"

// Tensor bytes are copied straight between memory and file, and the format is LE.
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors I/O assumes little-endian");

#define ST_MAX_HEADER 100000000ULL       // the reference implementation's limit
#define ST_MAX_INT    9007199254740992.0 // 2^53: larger JSON numbers are not exact integers

static size_t shape_count(int ndim, const int64_t *shape) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    return n;
}

static void shape_str(int ndim, const int64_t *shape, char *out, size_t cap) {
    size_t n = (size_t)snprintf(out, cap, "[");
    for (int i = 0; i < ndim && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%" PRId64, i ? ", " : "", shape[i]);
    if (n < cap) snprintf(out + n, cap - n, "]");
}

int st_write(const char *path, const StTensorOut *tensors, int n, const StMeta *meta, int nmeta,
             char *err) {
    const void **parts = malloc((size_t)(n + 1) * sizeof *parts);
    size_t *lens = malloc((size_t)(n + 1) * sizeof *lens);
    cJSON *root = cJSON_CreateObject();
    if (!parts || !lens || !root) {
        free(parts), free(lens), cJSON_Delete(root);
        return err_set(err, "%s: out of memory", path);
    }
    for (int i = 0; i < n; i++) {
        parts[i + 1] = tensors[i].data;
        lens[i + 1] = shape_count(tensors[i].ndim, tensors[i].shape) * sizeof(float);
    }
    char sha[65];
    sha256_hex_parts(parts + 1, lens + 1, n, sha);
    cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
    for (int i = 0; m && i < nmeta; i++)
        if (strcmp(meta[i].key, ST_DATA_SHA256) != 0)
            cJSON_AddStringToObject(m, meta[i].key, meta[i].value);
    cJSON_AddStringToObject(m, ST_DATA_SHA256, sha);
    size_t offset = 0;
    for (int i = 0; i < n; i++) {
        const StTensorOut *t = &tensors[i];
        size_t bytes = shape_count(t->ndim, t->shape) * sizeof(float);
        cJSON *e = cJSON_AddObjectToObject(root, t->name);
        if (!e) break;
        cJSON_AddStringToObject(e, "dtype", "F32");
        cJSON *shape = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; shape && d < t->ndim; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        cJSON *offs = cJSON_AddArrayToObject(e, "data_offsets");
        if (offs) {
            cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)offset));
            cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(offset + bytes)));
        }
        offset += bytes;
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    // Pad the header with spaces so the data starts 8-byte aligned, as the format allows.
    size_t hlen = json ? strlen(json) : 0;
    size_t padded = (hlen + 7) / 8 * 8;
    char *header = json ? malloc(8 + padded) : NULL;
    if (!header) {
        free(json), free(header), free(parts), free(lens);
        return err_set(err, "%s: out of memory", path);
    }
    uint64_t le = padded;
    memcpy(header, &le, 8);
    memcpy(header + 8, json, hlen);
    memset(header + 8 + hlen, ' ', padded - hlen);
    free(json);
    parts[0] = header;
    lens[0] = 8 + padded;
    int rc = file_write_atomic(path, parts, lens, n + 1, err);
    free(header), free(parts), free(lens);
    return rc;
}

// A JSON number that is an exact non-negative integer (below 2^53).
static int json_uint(const cJSON *item, uint64_t *out) {
    if (!cJSON_IsNumber(item)) return 0;
    double d = item->valuedouble;
    if (!(d >= 0 && d < ST_MAX_INT) || d != (double)(uint64_t)d) return 0;
    *out = (uint64_t)d;
    return 1;
}

typedef struct {
    const char *name;
    uint64_t begin, end;
} Span;

static int span_cmp(const void *a, const void *b) {
    const Span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int name_cmp(const void *a, const void *b) {
    return strcmp(((const Span *)a)->name, ((const Span *)b)->name);
}

// Checks one tensor entry; fills its span.
static int check_entry(const char *path, const cJSON *e, uint64_t data_len, Span *span, char *err) {
    const char *name = e->string;
    if (!cJSON_IsObject(e))
        return err_set(err, "%s: tensor %s: entry is not an object", path, name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!dtype) return err_set(err, "%s: tensor %s: missing dtype", path, name);
    if (!shape) return err_set(err, "%s: tensor %s: missing shape", path, name);
    if (!offs) return err_set(err, "%s: tensor %s: missing data_offsets", path, name);
    if (!cJSON_IsString(dtype))
        return err_set(err, "%s: tensor %s: dtype is not a string", path, name);
    if (strcmp(dtype->valuestring, "F32") != 0)
        return err_set(err, "%s: tensor %s has dtype %.16s, only F32 is supported", path, name,
                       dtype->valuestring);
    if (!cJSON_IsArray(shape))
        return err_set(err, "%s: tensor %s: shape is not an array", path, name);
    // Elements, with an overflow guard: a bogus shape must not wrap around to a match.
    uint64_t count = 1;
    int overflow = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, shape) {
        uint64_t v;
        if (!json_uint(d, &v))
            return err_set(err,
                           "%s: tensor %s: shape has an entry that is not a non-negative integer",
                           path, name);
        if (v != 0 && count > UINT64_MAX / 4 / v)
            overflow = 1;
        else
            count *= v;
    }
    uint64_t begin, end;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        !json_uint(cJSON_GetArrayItem(offs, 0), &begin) ||
        !json_uint(cJSON_GetArrayItem(offs, 1), &end))
        return err_set(err, "%s: tensor %s: data_offsets is not two non-negative integers", path,
                       name);
    if (begin > end)
        return err_set(err, "%s: tensor %s: data_offsets [%" PRIu64 ", %" PRIu64 "] are reversed",
                       path, name, begin, end);
    if (end > data_len)
        return err_set(err,
                       "%s: tensor %s: data_offsets [%" PRIu64 ", %" PRIu64
                       "] lie outside the data area (%" PRIu64 " bytes)",
                       path, name, begin, end, data_len);
    if (overflow || count * 4 != end - begin)
        return err_set(err,
                       "%s: tensor %s: shape does not match data_offsets (%" PRIu64
                       " bytes for the shape, %" PRIu64 " between the offsets)",
                       path, name, overflow ? UINT64_MAX : count * 4, end - begin);
    span->name = name;
    span->begin = begin;
    span->end = end;
    return 0;
}

// data_len: the bytes the file has after the header.
static int check_header(StFile *f, const cJSON *root, uint64_t data_len, char *err) {
    const char *path = f->path;
    int n = cJSON_GetArraySize(root);
    Span *spans = malloc((size_t)(n > 0 ? n : 1) * sizeof *spans);
    if (!spans) return err_set(err, "%s: out of memory", path);
    int ns = 0, rc = -1;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (strcmp(e->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(e)) {
                err_set(err, "%s: __metadata__ is not an object", path);
                goto done;
            }
            const cJSON *m;
            cJSON_ArrayForEach(m, e) {
                if (!cJSON_IsString(m)) {
                    err_set(err, "%s: metadata value for \"%.64s\" is not a string", path,
                            m->string);
                    goto done;
                }
            }
            continue;
        }
        if (check_entry(path, e, data_len, &spans[ns], err) != 0) goto done;
        ns++;
    }
    qsort(spans, (size_t)ns, sizeof *spans, name_cmp);
    for (int i = 1; i < ns; i++) {
        if (strcmp(spans[i].name, spans[i - 1].name) == 0) {
            err_set(err, "%s: tensor %s appears twice in the header", path, spans[i].name);
            goto done;
        }
    }
    // The data area is exactly what the tensors occupy: anything else is a truncated or
    // appended-to file.
    uint64_t used = 0;
    for (int i = 0; i < ns; i++)
        if (spans[i].end > used) used = spans[i].end;
    if (used != data_len) {
        err_set(err,
                "%s: the header describes %" PRIu64
                " bytes of tensor data but the file has %" PRIu64,
                path, used, data_len);
        goto done;
    }
    qsort(spans, (size_t)ns, sizeof *spans, span_cmp);
    for (int i = 1; i < ns; i++) {
        // Empty tensors occupy no bytes, so they cannot collide with anything.
        if (spans[i].begin == spans[i].end || spans[i - 1].begin == spans[i - 1].end) continue;
        if (spans[i].begin < spans[i - 1].end) {
            err_set(err, "%s: tensors %s and %s overlap in the data area", path, spans[i - 1].name,
                    spans[i].name);
            goto done;
        }
    }
    rc = 0;
done:
    free(spans);
    return rc;
}

static int is_hex64(const char *s) {
    if (strlen(s) != 64) return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) return 0;
    return 1;
}

// Only a regular file is opened, and nothing past the header is read (or allocated)
// before the header says how much data there must be and the file has exactly that.
int st_open(StFile *f, const char *path, char *err) {
    memset(f, 0, sizeof *f);
    char *hdr = NULL;
    f->path = strdup(path);
    if (!f->path) return err_set(err, "%s: out of memory", path);
    struct stat before;
    int fd = file_open_regular(path, &before, err);
    if (fd < 0) goto fail;
    size_t size = (size_t)before.st_size;
    uint64_t hlen;
    if (size < 8) {
        err_set(err, "%s: file too short (%zu bytes) to be safetensors", path, size);
        goto fail;
    }
    if (file_read_exact(fd, &hlen, 8, path, err) != 0) goto fail;
    if (hlen > ST_MAX_HEADER) {
        err_set(err, "%s: header length %" PRIu64 " is absurd (limit %llu bytes)", path, hlen,
                ST_MAX_HEADER);
        goto fail;
    }
    if (hlen > size - 8) {
        err_set(err, "%s: header length %" PRIu64 " is larger than the file (%zu bytes)", path,
                hlen, size);
        goto fail;
    }
    f->data_start = 8 + (size_t)hlen;
    hdr = malloc((size_t)hlen + 1);
    if (!hdr) {
        err_set(err, "%s: out of memory", path);
        goto fail;
    }
    if (file_read_exact(fd, hdr, (size_t)hlen, path, err) != 0) goto fail;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)hlen, &end, 0);
    if (!root) {
        err_set(err, "%s: header is not valid JSON", path);
        goto fail;
    }
    f->header = root;
    // The parser stops after the value; only padding may follow it.
    for (const char *p = end; p < hdr + hlen; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            err_set(err, "%s: header is not valid JSON (trailing bytes after the object)", path);
            goto fail;
        }
    }
    if (!cJSON_IsObject(root)) {
        err_set(err, "%s: header is not a JSON object", path);
        goto fail;
    }
    if (check_header(f, root, size - f->data_start, err) != 0) goto fail;
    const char *want = st_meta(f, ST_DATA_SHA256);
    if (want && !is_hex64(want)) {
        err_set(err, "%s: metadata \"%s\" is not a sha256 hex digest", path, ST_DATA_SHA256);
        goto fail;
    }

    // Read, not mapped: a mapped file truncated under its reader (cp over it does that)
    // kills the reader with SIGBUS, while a read of it is short, and an error. The memory
    // is a mapping of its own, so that dropping it (st_close, model_free) hands it back to
    // the system at once, whatever malloc would keep.
    void *buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) {
        err_set(err, "%s: out of memory for %zu bytes", path, size);
        goto fail;
    }
    f->bytes = buf;
    f->len = size;
    memcpy(buf, &hlen, 8);
    memcpy((char *)buf + 8, hdr, (size_t)hlen);
    if (file_read_exact(fd, (char *)buf + f->data_start, size - f->data_start, path, err) != 0 ||
        file_check_unchanged(fd, &before, path, err) != 0)
        goto fail;
    // Read-only from here, as the mapped file was: nothing may write a loaded model's weights.
    mprotect(buf, size, PROT_READ);
    close(fd);
    fd = -1;
    if (want) {
        char got[65];
        sha256_hex(f->bytes + f->data_start, f->len - f->data_start, got);
        if (strcmp(got, want) != 0) {
            err_set(err, "%s: tensor data checksum mismatch (file corrupt?)", path);
            goto fail;
        }
    }
    free(hdr);
    return 0;
fail:
    if (fd >= 0) close(fd);
    free(hdr);
    st_close(f);
    return -1;
}

void st_close(StFile *f) {
    cJSON_Delete(f->header);
    if (f->bytes) munmap((void *)f->bytes, f->len);
    free(f->path);
    memset(f, 0, sizeof *f);
}

void st_take_bytes(StFile *f, const void **bytes, size_t *len) {
    *bytes = f->bytes;
    *len = f->len;
    f->bytes = NULL;
    f->len = 0;
}

const char *st_meta(const StFile *f, const char *key) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(f->header, "__metadata__");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

// Tensor `name`'s first byte, after checking it exists with exactly this shape.
static const char *tensor_at(const StFile *f, const char *name, int ndim, const int64_t *shape,
                             char *err) {
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(f->header, name);
    if (!e || strcmp(name, "__metadata__") == 0) {
        err_set(err, "%s: missing tensor %s", f->path, name);
        return NULL;
    }
    // st_open validated dtype, shape entries and offsets already.
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    int64_t got[8];
    int gdim = cJSON_GetArraySize(s);
    int same = gdim == ndim;
    for (int i = 0; i < gdim && i < 8; i++) {
        got[i] = (int64_t)cJSON_GetArrayItem(s, i)->valuedouble;
        if (same && got[i] != shape[i]) same = 0;
    }
    if (!same) {
        char a[128], b[128];
        shape_str(gdim < 8 ? gdim : 8, got, a, sizeof a);
        shape_str(ndim, shape, b, sizeof b);
        err_set(err, "%s: tensor %s has shape %s, expected %s", f->path, name, a, b);
        return NULL;
    }
    return f->bytes + f->data_start + (size_t)cJSON_GetArrayItem(offs, 0)->valuedouble;
}

const float *st_data(const StFile *f, const char *name, int ndim, const int64_t *shape, char *err) {
    const char *at = tensor_at(f, name, ndim, shape, err);
    if (at && (size_t)(at - f->bytes) % sizeof(float) != 0) {
        err_set(err, "%s: tensor %s starts at byte %zu, not a multiple of 4", f->path, name,
                (size_t)(at - f->bytes));
        return NULL;
    }
    return (const float *)at;
}

int st_read(const StFile *f, const char *name, int ndim, const int64_t *shape, float *dst,
            char *err) {
    const char *src = tensor_at(f, name, ndim, shape, err);
    if (!src) return -1;
    if (dst) memcpy(dst, src, shape_count(ndim, shape) * sizeof(float));
    return 0;
}

int st_count(const StFile *f) {
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, (const cJSON *)f->header) n += strcmp(e->string, "__metadata__") != 0;
    return n;
}
