#include "vocab.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fileio.h"
#include "utf8.h"

#define CP_LIMIT 0x110000
// A model's 65536 chars, each written as the longest JSON escape ("\ud83d\ude00", ) in
// 16 bytes, stay under 1 MiB; anything far beyond that is not a vocabulary.
#define VOCAB_MAX_FILE (4u << 20)

int vocab_build(Vocab *vocab, const char *text, size_t len, char *err) {
    vocab->size = 0;
    vocab->chars = NULL;
    if (len == 0) return err_set(err, "empty text: no characters to build a vocabulary from");
    long bad = utf8_find_invalid(text, len);
    if (bad >= 0) return err_set(err, "invalid UTF-8 at byte offset %ld", bad);
    // vocab.json cannot carry U+0000 through the JSON parser, so refuse it up front.
    const char *nul = memchr(text, '\0', len);
    if (nul) return err_set(err, "NUL character at byte offset %ld", (long)(nul - text));

    // A bitmap over all of Unicode: one pass marks, one pass collects in code point order.
    unsigned char *seen = calloc(CP_LIMIT / 8, 1);
    if (!seen) return err_set(err, "out of memory");
    const unsigned char *u = (const unsigned char *)text;
    int count = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        i += (size_t)utf8_decode_one(u + i, len - i, &cp);
        if (!(seen[cp >> 3] & (1u << (cp & 7)))) {
            seen[cp >> 3] |= (unsigned char)(1u << (cp & 7));
            count++;
        }
    }
    vocab->chars = malloc((size_t)count * sizeof(uint32_t));
    if (!vocab->chars) {
        free(seen);
        return err_set(err, "out of memory");
    }
    int k = 0;
    for (uint32_t cp = 0; cp < CP_LIMIT; cp++)
        if (seen[cp >> 3] & (1u << (cp & 7))) vocab->chars[k++] = cp;
    vocab->size = count;
    free(seen);
    return 0;
}

void vocab_free(Vocab *vocab) {
    free(vocab->chars);
    vocab->chars = NULL;
    vocab->size = 0;
}

int vocab_id(const Vocab *vocab, uint32_t cp) {
    int lo = 0, hi = vocab->size - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        uint32_t c = vocab->chars[mid];
        if (c == cp) return mid;
        if (c < cp)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

// Appends the JSON string literal for one code point; returns bytes written (<= 8).
static int json_char(uint32_t cp, char *out) {
    switch (cp) {
    case '"':
        return sprintf(out, "\\\"");
    case '\\':
        return sprintf(out, "\\\\");
    case '\n':
        return sprintf(out, "\\n");
    case '\r':
        return sprintf(out, "\\r");
    case '\t':
        return sprintf(out, "\\t");
    case '\b':
        return sprintf(out, "\\b");
    case '\f':
        return sprintf(out, "\\f");
    }
    if (cp < 0x20 || cp == 0x7F) return sprintf(out, "\\u%04x", (unsigned)cp);
    return utf8_encode(cp, out);
}

char *vocab_to_json(const Vocab *vocab) {
    // A fixed layout rather than a generic printer: these bytes are hashed into every
    // model file, so they must never change with a library version.
    static const char head[] = "{\"format\": \"charlm-vocab\", \"version\": 1, \"chars\": [";
    static const char tail[] = "]}\n";
    size_t cap = sizeof head + sizeof tail + (size_t)vocab->size * 12;
    char *out = malloc(cap);
    if (!out) return NULL;
    size_t n = 0;
    memcpy(out, head, sizeof head - 1);
    n += sizeof head - 1;
    for (int i = 0; i < vocab->size; i++) {
        if (i > 0) {
            out[n++] = ',';
            out[n++] = ' ';
        }
        out[n++] = '"';
        n += (size_t)json_char(vocab->chars[i], out + n);
        out[n++] = '"';
    }
    memcpy(out + n, tail, sizeof tail); // includes the NUL
    return out;
}

int vocab_from_json(Vocab *vocab, const char *json, size_t len, char *err) {
    vocab->size = 0;
    vocab->chars = NULL;
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) return err_set(err, "not valid JSON");
    int rc = -1;
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *version = cJSON_GetObjectItemCaseSensitive(root, "version");
    const cJSON *chars = cJSON_GetObjectItemCaseSensitive(root, "chars");
    if (!cJSON_IsObject(root)) {
        err_set(err, "not a JSON object");
        goto done;
    }
    if (!cJSON_IsString(format) || strcmp(format->valuestring, "charlm-vocab") != 0) {
        err_set(err, "\"format\" is not \"charlm-vocab\"");
        goto done;
    }
    if (!cJSON_IsNumber(version) || version->valuedouble != 1) {
        err_set(err, "unsupported \"version\" (expected 1)");
        goto done;
    }
    if (!cJSON_IsArray(chars)) {
        err_set(err, "\"chars\" is not an array");
        goto done;
    }
    int n = cJSON_GetArraySize(chars);
    if (n == 0) {
        err_set(err, "\"chars\" is empty");
        goto done;
    }
    vocab->chars = malloc((size_t)n * sizeof(uint32_t));
    if (!vocab->chars) {
        err_set(err, "out of memory");
        goto done;
    }
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, chars) {
        if (!cJSON_IsString(item)) {
            err_set(err, "chars[%d] is not a string", i);
            goto done;
        }
        const char *s = item->valuestring;
        size_t slen = strlen(s);
        uint32_t cp;
        int used = utf8_decode_one((const unsigned char *)s, slen, &cp);
        if (slen == 0 || used == 0 || (size_t)used != slen) {
            err_set(err, "chars[%d] is not exactly one character", i);
            goto done;
        }
        if (i > 0 && cp == vocab->chars[i - 1]) {
            err_set(err, "chars[%d] duplicates chars[%d] (U+%04X)", i, i - 1, (unsigned)cp);
            goto done;
        }
        if (i > 0 && cp < vocab->chars[i - 1]) {
            err_set(err, "chars[%d] (U+%04X) is out of code point order", i, (unsigned)cp);
            goto done;
        }
        vocab->chars[i++] = cp;
    }
    vocab->size = n;
    rc = 0;
done:
    if (rc != 0) vocab_free(vocab);
    cJSON_Delete(root);
    return rc;
}

int vocab_save(const Vocab *vocab, const char *path, char *err) {
    char *json = vocab_to_json(vocab);
    if (!json) return err_set(err, "%s: out of memory", path);
    const void *parts[1] = {json};
    size_t lens[1] = {strlen(json)};
    int rc = file_write_atomic(path, parts, lens, 1, err);
    free(json);
    return rc;
}

int vocab_load(Vocab *vocab, const char *path, char *sha256, char *err) {
    vocab->size = 0;
    vocab->chars = NULL;
    char *data;
    size_t len;
    if (file_read_regular(path, VOCAB_MAX_FILE, &data, &len, err) != 0) return -1;
    char inner[ERR_LEN];
    int rc = vocab_from_json(vocab, data, len, inner);
    if (rc != 0)
        err_set(err, "%s: %s", path, inner);
    else if (sha256)
        sha256_hex(data, len, sha256);
    free(data);
    return rc;
}

size_t vocab_encode(const Vocab *vocab, const char *text, size_t len, int *ids, size_t *offsets,
                    char *unknown) {
    size_t n = 0, nunknown = 0;
    for (size_t off = 0; off < len;) {
        uint32_t cp;
        int k = utf8_decode_one((const unsigned char *)text + off, len - off, &cp);
        if (k <= 0) break; // only valid UTF-8 is given
        int id = vocab_id(vocab, cp);
        if (id >= 0) {
            if (offsets) offsets[n] = off;
            ids[n++] = id;
        } else if (unknown) {
            memcpy(unknown + nunknown, text + off, (size_t)k);
            nunknown += (size_t)k;
        }
        off += (size_t)k;
    }
    if (unknown) unknown[nunknown] = '\0';
    return n;
}

size_t vocab_decode(const Vocab *vocab, const int *ids, size_t n, char *out) {
    size_t len = 0;
    for (size_t i = 0; i < n; i++) len += (size_t)utf8_encode(vocab->chars[ids[i]], out + len);
    out[len] = '\0';
    return len;
}

const char *vocab_char(const Vocab *vocab, int id, char out[5]) {
    out[utf8_encode(vocab->chars[id], out)] = '\0';
    return out;
}
