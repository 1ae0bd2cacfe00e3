#include "artefacts.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "infer.h"
#include "fileio.h"
#include "safetensors.h"

// The vocab.json next to a model file (for hashing and for messages).
static char *sibling_vocab(const char *model_path) {
    const char *slash = strrchr(model_path, '/');
    if (!slash) return strdup("vocab.json");
    size_t n = (size_t)(slash - model_path) + 1;
    char *p = malloc(n + sizeof "vocab.json");
    if (!p) return NULL;
    memcpy(p, model_path, n);
    memcpy(p + n, "vocab.json", sizeof "vocab.json");
    return p;
}

int artefacts_save_model(const char *path, const Model *model, const ModelInfo *info, char *err) {
    // path may name the folder (then the file is <dir>/model.safetensors) or the file.
    char *file = path_is_dir(path) ? path_join(path, "model.safetensors") : strdup(path);
    if (!file) return err_set(err, "%s: out of memory", path);
    char vocab_sha[65];
    if (info->vocab_sha256[0]) {
        memcpy(vocab_sha, info->vocab_sha256, 65);
    } else {
        char *vpath = sibling_vocab(file), *data;
        size_t len;
        if (!vpath || file_read_regular(vpath, 0, &data, &len, err) != 0) {
            free(vpath);
            free(file);
            return -1;
        }
        sha256_hex(data, len, vocab_sha);
        free(data);
        free(vpath);
    }

    const ModelConfig *c = &model->config;
    ModelTensor t[MODEL_MAX_TENSORS];
    StTensorOut out[MODEL_MAX_TENSORS];
    int n = model_tensors(c, t);
    for (int i = 0; i < n; i++) {
        out[i].name = t[i].name;
        out[i].ndim = t[i].ndim;
        out[i].shape[0] = t[i].shape[0];
        out[i].shape[1] = t[i].shape[1];
        out[i].data = model_tensor(model, i);
    }
    char embed[16], hidden[16], layers[16], vsize[16], steps[24], loss[32];
    snprintf(embed, sizeof embed, "%d", c->embed);
    snprintf(hidden, sizeof hidden, "%d", c->hidden);
    snprintf(layers, sizeof layers, "%d", c->layers);
    snprintf(vsize, sizeof vsize, "%d", c->vocab_size);
    snprintf(steps, sizeof steps, "%ld", info->steps);
    snprintf(loss, sizeof loss, "%.9g", info->best_val_loss);
    StMeta meta[] = {
        {"embed", embed},      {"hidden", hidden},          {"layers", layers},
        {"vocab_size", vsize}, {"vocab_sha256", vocab_sha}, {"corpus_sha256", info->corpus_sha256},
        {"steps", steps},      {"best_val_loss", loss},
    };
    int rc = st_write(file, out, n, meta, (int)(sizeof meta / sizeof meta[0]), err);
    free(file);
    return rc;
}

// Parses a whole metadata string as an integer in [lo, hi].
static int meta_long(const StFile *f, const char *key, long lo, long hi, long *out, char *err) {
    const char *s = st_meta(f, key);
    if (!s) return err_set(err, "%s: metadata \"%s\" is missing", f->path, key);
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0')
        return err_set(err, "%s: metadata \"%s\" = \"%.32s\" is not an integer", f->path, key, s);
    if (v < lo || v > hi)
        return err_set(err, "%s: metadata \"%s\" = %ld is out of range %ld..%ld", f->path, key, v,
                       lo, hi);
    *out = v;
    return 0;
}

static int is_hex64(const char *s) {
    if (strlen(s) != 64) return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) return 0;
    return 1;
}

// A NaN or an infinity in any weight spreads through every later step: such a model would
// load and serve garbage.
static int check_finite(const char *path, const ModelTensor *t, const float *data, char *err) {
    for (size_t i = 0; i < t->count; i++)
        if (!isfinite(data[i]))
            return err_set(err, "%s: tensor %s: element %zu is %s", path, t->name, i,
                           isnan(data[i]) ? "NaN" : "infinite");
    return 0;
}

int artefacts_load_model(const char *path, const Vocab *vocab, const char *vocab_sha256,
                         Model *model, ModelInfo *info_out, char *err) {
    memset(model, 0, sizeof *model);
    ModelInfo local, *info = &local;
    memset(info, 0, sizeof *info);
    info->best_val_loss = NAN;
    StFile f;
    if (st_open(&f, path, err) != 0) return -1;
    char *vpath = sibling_vocab(path);
    int rc = -1;
    if (!vpath) {
        err_set(err, "%s: out of memory", path);
        goto done;
    }

    long V, E, H, L;
    if (meta_long(&f, "vocab_size", 1, 65536, &V, err) ||
        meta_long(&f, "embed", 1, 4096, &E, err) || meta_long(&f, "hidden", 1, 4096, &H, err) ||
        meta_long(&f, "layers", 1, MODEL_MAX_LAYERS, &L, err))
        goto done;
    if (V != vocab->size) {
        err_set(err, "vocab mismatch: %s has vocab_size %ld but %s has %d characters", path, V,
                vpath, vocab->size);
        goto done;
    }
    const char *vsha = st_meta(&f, "vocab_sha256");
    if (!vsha) {
        err_set(err, "%s: metadata \"vocab_sha256\" is missing", path);
        goto done;
    }
    if (strcmp(vsha, vocab_sha256) != 0) {
        err_set(err,
                "vocab mismatch: %s was trained with a vocab.json of sha256 %.12s..., but %s has "
                "sha256 %.12s...",
                path, vsha, vpath, vocab_sha256);
        goto done;
    }
    snprintf(info->vocab_sha256, sizeof info->vocab_sha256, "%s", vsha);
    // The rest is informational: absent is fine, present must make sense.
    const char *csha = st_meta(&f, "corpus_sha256");
    if (csha && csha[0]) {
        if (!is_hex64(csha)) {
            err_set(err, "%s: metadata \"corpus_sha256\" is not a sha256 hex digest", path);
            goto done;
        }
        memcpy(info->corpus_sha256, csha, 65);
    }
    if (st_meta(&f, "steps") && meta_long(&f, "steps", 0, LONG_MAX, &info->steps, err)) goto done;
    const char *loss = st_meta(&f, "best_val_loss");
    if (loss) {
        char *end;
        info->best_val_loss = strtod(loss, &end);
        if (end == loss || *end != '\0') {
            err_set(err, "%s: metadata \"best_val_loss\" = \"%.32s\" is not a number", path, loss);
            goto done;
        }
    }

    ModelConfig c = {.vocab_size = (int)V, .embed = (int)E, .hidden = (int)H, .layers = (int)L};
    ModelTensor t[MODEL_MAX_TENSORS];
    int n = model_tensors(&c, t);
    // Unexpected names first: a tensor from another architecture is a clearer diagnosis
    // than the shape errors it would otherwise cause.
    const cJSON *e;
    cJSON_ArrayForEach(e, (const cJSON *)f.header) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        int known = 0;
        for (int i = 0; i < n && !known; i++) known = strcmp(e->string, t[i].name) == 0;
        if (!known) {
            err_set(err, "%s: unexpected tensor %.64s for a %ld-layer model", path, e->string, L);
            goto done;
        }
    }
    // Every shape is checked against the file before anything is allocated, so metadata
    // claiming a huge model costs nothing unless the file really holds its tensors. The
    // weights stay where st_open read the file: no second copy. A file whose header is
    // not padded to a multiple of 4 bytes has its tensors copied into a buffer of their own.
    for (int i = 0; i < n; i++)
        if (st_read(&f, t[i].name, t[i].ndim, t[i].shape, NULL, err) != 0) goto done;
    float *data[MODEL_MAX_TENSORS];
    int aligned = 1;
    for (int i = 0; i < n && aligned; i++)
        aligned = (data[i] = (float *)st_data(&f, t[i].name, t[i].ndim, t[i].shape, err)) != NULL;
    if (aligned) {
        if (model_config_check(&c, err) != 0) goto done;
        model->config = c;
        model->num_params = model_param_count(&c);
        model_point_each(&model->w, &c, data);
        st_take_bytes(&f, &model->map, &model->map_len);
    } else {
        if (model_alloc(model, &c, err) != 0) goto done;
        for (int i = 0; i < n; i++) {
            data[i] = model->params + t[i].offset;
            st_read(&f, t[i].name, t[i].ndim, t[i].shape, data[i], err);
        }
    }
    for (int i = 0; i < n; i++)
        if (check_finite(path, &t[i], data[i], err) != 0) goto done;
    if (infer_prepare(model, err) != 0) goto done;
    if (info_out) *info_out = local;
    rc = 0;
done:
    if (rc != 0) model_free(model);
    free(vpath);
    st_close(&f);
    return rc;
}

int artefacts_load(const char *dir, Model *model, Vocab *vocab, ModelInfo *info, char *err) {
    memset(model, 0, sizeof *model);
    vocab->size = 0;
    vocab->chars = NULL;
    if (!path_is_dir(dir)) {
        struct stat st;
        if (stat(dir, &st) != 0) return err_set(err, "%s: %s", dir, strerror(errno));
        return err_set(err, "%s: not a directory", dir);
    }
    char *vpath = path_join(dir, "vocab.json");
    char *mpath = path_join(dir, "model.safetensors");
    int rc = -1;
    char sha[65];
    if (!vpath || !mpath)
        err_set(err, "%s: out of memory", dir);
    else if (vocab_load(vocab, vpath, sha, err) == 0)
        rc = artefacts_load_model(mpath, vocab, sha, model, info, err);
    if (rc != 0) vocab_free(vocab);
    free(vpath);
    free(mpath);
    return rc;
}
