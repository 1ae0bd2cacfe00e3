/*
 * safetensors.h — the safetensors container: read with full validation, write atomically.
 *
 * Layout: 8-byte little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [...], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"key": "string value", ...}}
 * then the data. Only F32 tensors are written; reading checks the header length against
 * the file, the JSON, every entry's dtype/shape/offsets (inside the data, consistent with
 * the shape, not overlapping another tensor), and that metadata values are strings.
 *
 * Untrusted files: only a regular file is opened (never blocking on a FIFO), the header
 * is read and checked first, and the data only when the file's size is exactly what the
 * header describes. The data is then read into memory, never mapped: a file that shrinks
 * while read (rewritten in place) is a short read, an error, where a mapping would fault;
 * one whose size or modification time change meanwhile is refused too. The writer records the
 * SHA-256 of the data section in the metadata (ST_DATA_SHA256); a reader checks it when present.
 */
#ifndef CHARLM_SAFETENSORS_H
#define CHARLM_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

// Metadata key: lowercase hex SHA-256 of every byte after the header.
#define ST_DATA_SHA256 "data_sha256"

typedef struct {
    const char *name;
    int ndim;
    int64_t shape[4];
    const float *data;
} StTensorOut;

typedef struct {
    const char *key;
    const char *value;
} StMeta;

/* Writes tensors and metadata to path atomically, adding ST_DATA_SHA256 (a caller's key
 * of that name is replaced). */
int st_write(const char *path, const StTensorOut *tensors, int n, const StMeta *meta, int nmeta,
             char *err);

typedef struct {
    char *path;
    const char *bytes; // the whole file, read into an anonymous mapping, then read-only
    size_t len;
    size_t data_start; // 8 + header length
    void *header;      // cJSON *, the parsed header
} StFile;

/* Reads and validates the container. Messages name the file. */
int st_open(StFile *f, const char *path, char *err);
void st_close(StFile *f);
/* A metadata string, or NULL if absent. */
const char *st_meta(const StFile *f, const char *key);
/* Tensor `name`'s data in bytes, after checking it exists, is F32, has exactly this
 * shape and starts 4-byte aligned (st_write pads the header so that it does, as most
 * writers do; the format does not require it); NULL otherwise, with err set. Valid until
 * st_close, or as long as the bytes taken with st_take_bytes. */
const float *st_data(const StFile *f, const char *name, int ndim, const int64_t *shape, char *err);
/* Copies tensor `name` into dst after checking it exists, is F32 and has exactly this shape
 * (aligned or not); with dst NULL only checks. */
int st_read(const StFile *f, const char *name, int ndim, const int64_t *shape, float *dst,
            char *err);
/* Hands the file's bytes (a mapping of len bytes) to the caller, who munmaps them:
 * pointers from st_data then outlive st_close. */
void st_take_bytes(StFile *f, const void **bytes, size_t *len);
/* Number of tensor entries (metadata excluded). */
int st_count(const StFile *f);

#endif
