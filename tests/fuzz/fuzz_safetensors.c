// libFuzzer target: model.safetensors as the server loads it. The loader takes a path, so
// the input goes into a memfd opened as /proc/self/fd/N (no change to the loader). First
// st_open (core/safetensors.c) with every accepted tensor read back at its own shape, then
// the whole model load (core/artefacts.c) against a fixed vocab.json, the one of the seed
// corpus/fuzz_safetensors/seed_model.safetensors, which charlm-train wrote from the text
// "the cat sat on the mat.\nthe dog ate a bone!\n" with --embed 2 --hidden 3 --layers 1
// --seq 8 --batch 2 --steps 2 --eval-every 2 --threads 1.
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "artefacts.h"
#include "error.h"
#include "fileio.h"
#include "safetensors.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

static const char vocab_json[] =
    "{\"format\": \"charlm-vocab\", \"version\": 1, \"chars\": [\"\\n\", \" \", \"!\", \".\", "
    "\"a\", \"b\", \"c\", \"d\", \"e\", \"g\", \"h\", \"m\", \"n\", \"o\", \"s\", \"t\"]}\n";

static int fd = -1;
static char path[64];
static Vocab vocab;
static char vocab_sha[65];

static void init(void) {
    char err[ERR_LEN];
    fd = memfd_create("model.safetensors", 0);
    if (fd < 0 || vocab_from_json(&vocab, vocab_json, sizeof vocab_json - 1, err) != 0) abort();
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    sha256_hex(vocab_json, sizeof vocab_json - 1, vocab_sha);
}

// Reads every tensor st_open accepted, at the shape its header gives.
static void read_all(const StFile *f) {
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, (const cJSON *)f->header) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        n++;
        const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
        int ndim = cJSON_GetArraySize(shape);
        if (ndim > 8) continue;
        int64_t dims[8];
        size_t count = 1;
        for (int i = 0; i < ndim; i++) {
            dims[i] = (int64_t)cJSON_GetArrayItem(shape, i)->valuedouble;
            count *= (size_t)dims[i];
        }
        // st_open checked that the shape's bytes lie inside the file.
        CHECK(count * sizeof(float) <= f->len - f->data_start);
        float *dst = malloc(count ? count * sizeof(float) : 1);
        char err[ERR_LEN];
        CHECK(dst && st_read(f, e->string, ndim, dims, dst, err) == 0);
        free(dst);
    }
    CHECK(st_count(f) == n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (fd < 0) init();
    if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size) abort();

    char err[ERR_LEN];
    StFile f;
    if (st_open(&f, path, err) == 0) {
        CHECK(f.len == size && f.data_start >= 8 && f.data_start <= size);
        read_all(&f);
        st_close(&f);
    } else {
        CHECK(err[0]);
    }

    Model model;
    ModelInfo info;
    if (artefacts_load_model(path, &vocab, vocab_sha, &model, &info, err) == 0) {
        CHECK(model.config.vocab_size == vocab.size);
        model_free(&model);
    } else {
        CHECK(err[0]);
    }
    return 0;
}
