#include "artefacts.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "arch.h"
#include "error.h"
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

    const Arch *arch = model->arch;
    ModelTensor *t = malloc(ARCH_MAX_TENSORS * sizeof *t);
    StTensorOut *out = malloc(ARCH_MAX_TENSORS * sizeof *out);
    if (!t || !out) {
        free(t);
        free(out);
        free(file);
        return err_set(err, "%s: out of memory", path);
    }
    int n = arch->tensors(model, t);
    for (int i = 0; i < n; i++) {
        out[i].name = t[i].name;
        out[i].ndim = t[i].ndim;
        out[i].shape[0] = t[i].shape[0];
        out[i].shape[1] = t[i].shape[1];
        out[i].data = arch->tensor(model, i);
    }
    // The architecture's hyperparameters first, then what every model records. The
    // default architecture is written without "arch", so its files are what they were
    // before there was a choice.
    ArchField fl[ARCH_MAX_FIELDS];
    int nf = arch->fields(model, fl);
    char num[ARCH_MAX_FIELDS][24], vsize[16], steps[24], loss[32];
    StMeta meta[ARCH_MAX_FIELDS + 7];
    int nm = 0;
    if (strcmp(arch->name, ARCH_DEFAULT) != 0) meta[nm++] = (StMeta){"arch", arch->name};
    for (int i = 0; i < nf; i++) {
        snprintf(num[i], sizeof num[i], "%ld", fl[i].number);
        meta[nm++] = (StMeta){fl[i].name, fl[i].text ? fl[i].text : num[i]};
    }
    snprintf(vsize, sizeof vsize, "%d", model->vocab_size);
    snprintf(steps, sizeof steps, "%ld", info->steps);
    snprintf(loss, sizeof loss, "%.9g", info->best_val_loss);
    meta[nm++] = (StMeta){"vocab_size", vsize};
    meta[nm++] = (StMeta){"vocab_sha256", vocab_sha};
    meta[nm++] = (StMeta){"corpus_sha256", info->corpus_sha256};
    meta[nm++] = (StMeta){"steps", steps};
    meta[nm++] = (StMeta){"best_val_loss", loss};
    int rc = st_write(file, out, n, meta, nm, err);
    free(t);
    free(out);
    free(file);
    return rc;
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

// The tensor a second name in arch's tied pairs stands for, or NULL.
static const char *tied_to(const Arch *arch, const char *name) {
    for (int k = 0; k < arch->ntied; k++)
        if (strcmp(name, arch->tied[k][0]) == 0) return arch->tied[k][1];
    return NULL;
}

/* A file may hold a tied tensor twice (nanoGPT's state_dict has lm_head.weight beside
 * wte); the copy must be the same tensor, or the file holds a model charlm cannot be. */
static int check_tied(const StFile *f, const char *const pair[2], const ModelTensor *t, int n,
                      float *const *data, char *err) {
    if (!cJSON_GetObjectItemCaseSensitive((const cJSON *)f->header, pair[0])) return 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(t[i].name, pair[1]) != 0) continue;
        float *copy = malloc(t[i].count * sizeof(float));
        if (!copy) return err_set(err, "%s: out of memory", f->path);
        int rc = st_read(f, pair[0], t[i].ndim, t[i].shape, copy, err);
        if (rc == 0 && memcmp(copy, data[i], t[i].count * sizeof(float)) != 0)
            rc = err_set(err, "%s: tensor %s differs from %s, which it is tied to", f->path,
                         pair[0], pair[1]);
        free(copy);
        return rc;
    }
    return 0;
}

static int tied_check(const StFile *f, const Arch *arch, const ModelTensor *t, int n,
                      float *const *data, char *err) {
    for (int k = 0; k < arch->ntied; k++)
        if (check_tied(f, arch->tied[k], t, n, data, err) != 0) return -1;
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
    ModelTensor *t = NULL;
    float **data = NULL;
    int rc = -1;
    if (!vpath) {
        err_set(err, "%s: out of memory", path);
        goto done;
    }

    const char *name = st_meta(&f, "arch");
    const Arch *arch = arch_find(name ? name : ARCH_DEFAULT);
    if (!arch) {
        err_set(err, "%s: metadata \"arch\" = \"%.32s\" is not an architecture charlm knows", path,
                name);
        goto done;
    }
    long V;
    model->arch = arch;
    if (arch_meta_long(&f, "vocab_size", 1, 65536, &V, err) ||
        arch->config_read(model, &f, (int)V, err))
        goto done;
    model->vocab_size = (int)V;
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
    if (st_meta(&f, "steps") && arch_meta_long(&f, "steps", 0, LONG_MAX, &info->steps, err))
        goto done;
    const char *loss = st_meta(&f, "best_val_loss");
    if (loss) {
        char *end;
        info->best_val_loss = strtod(loss, &end);
        if (end == loss || *end != '\0') {
            err_set(err, "%s: metadata \"best_val_loss\" = \"%.32s\" is not a number", path, loss);
            goto done;
        }
    }

    t = malloc(ARCH_MAX_TENSORS * sizeof *t);
    data = malloc(ARCH_MAX_TENSORS * sizeof *data);
    if (!t || !data) {
        err_set(err, "%s: out of memory", path);
        goto done;
    }
    int n = arch->tensors(model, t);
    // Unexpected names first: a tensor from another architecture is a clearer diagnosis
    // than the shape errors it would otherwise cause.
    const cJSON *e;
    cJSON_ArrayForEach(e, (const cJSON *)f.header) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        int known = tied_to(arch, e->string) != NULL;
        for (int i = 0; i < n && !known; i++) known = strcmp(e->string, t[i].name) == 0;
        if (!known) {
            err_set(err, "%s: unexpected tensor %.64s for a %ld-layer model", path, e->string,
                    arch_field(model, "layers"));
            goto done;
        }
    }
    // Every shape is checked against the file before anything is allocated, so metadata
    // claiming a huge model costs nothing unless the file really holds its tensors. The
    // weights stay where st_open read the file: no second copy. A file whose header is
    // not padded to a multiple of 4 bytes has its tensors copied into a buffer of their own.
    for (int i = 0; i < n; i++)
        if (st_read(&f, t[i].name, t[i].ndim, t[i].shape, NULL, err) != 0) goto done;
    int aligned = arch->point_each != NULL;
    for (int i = 0; i < n && aligned; i++)
        aligned = (data[i] = (float *)st_data(&f, t[i].name, t[i].ndim, t[i].shape, err)) != NULL;
    if (aligned) {
        if (arch->config_check(model, err) != 0 || tied_check(&f, arch, t, n, data, err) != 0)
            goto done;
        arch->point_each(model, data);
        st_take_bytes(&f, &model->map, &model->map_len);
    } else {
        if (arch->alloc(model, err) != 0) goto done;
        for (int i = 0; i < n; i++) {
            data[i] = model->params + t[i].offset;
            st_read(&f, t[i].name, t[i].ndim, t[i].shape, data[i], err);
        }
        if (tied_check(&f, arch, t, n, data, err) != 0) goto done;
    }
    for (int i = 0; i < n; i++)
        if (check_finite(path, &t[i], data[i], err) != 0) goto done;
    if (arch->prepare(model, err) != 0) goto done;
    if (info_out) *info_out = local;
    rc = 0;
done:
    if (rc != 0) arch_free(model);
    free(t);
    free(data);
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
