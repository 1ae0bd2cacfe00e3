#include "testutil.h"

#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "arch.h"
#include "artefacts.h"
#include "error.h"
#include "fileio.h"

char *tu_tmpdir(void) {
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    size_t n = strlen(base) + sizeof "/charlm-test-XXXXXX";
    char *p = malloc(n);
    if (!p) return NULL;
    snprintf(p, n, "%s/charlm-test-XXXXXX", base);
    if (!mkdtemp(p)) {
        free(p);
        return NULL;
    }
    return p;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

void tu_rmtree(const char *dir) {
    if (dir) nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

char *tu_dir;

void tu_dir_setup(void) {
    tu_dir = tu_tmpdir();
    ck_assert_ptr_nonnull(tu_dir);
}

void tu_dir_teardown(void) {
    tu_rmtree(tu_dir);
    free(tu_dir);
    tu_dir = NULL;
}

int tu_run_suite(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

char *tu_write_file(const char *dir, const char *name, const char *data, size_t len) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *path = malloc(n);
    if (!path) return NULL;
    snprintf(path, n, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        free(path);
        return NULL;
    }
    if (len > 0 && fwrite(data, 1, len, f) != len) {
        fclose(f);
        free(path);
        return NULL;
    }
    fclose(f);
    return path;
}

char *tu_write_safetensors(const char *dir, const char *name, const char *header, const void *data,
                           size_t dlen) {
    size_t hlen = strlen(header);
    char *buf = malloc(8 + hlen + dlen);
    if (!buf) return NULL;
    uint64_t le = hlen; // little-endian like the machine (core/safetensors.c asserts it)
    memcpy(buf, &le, 8);
    memcpy(buf + 8, header, hlen);
    if (dlen) memcpy(buf + 8 + hlen, data, dlen);
    char *path = tu_write_file(dir, name, buf, 8 + hlen + dlen);
    free(buf);
    return path;
}

char *tu_read_file(const char *path, size_t *len) {
    char *data;
    size_t n;
    if (file_read_all(path, 0, &data, &n, NULL) != 0) return NULL;
    if (len) *len = n;
    return data;
}

int tu_make_model_dir(const char *dir, const char *text, int embed, int hidden, int layers,
                      uint64_t seed) {
    ModelConfig config = {.embed = embed, .hidden = hidden, .layers = layers};
    return tu_make_arch_dir(dir, text, "lstm", &config, seed);
}

int tu_make_arch_dir(const char *dir, const char *text, const char *arch_name, const void *hyper,
                     uint64_t seed) {
    char err[ERR_LEN];
    Vocab vocab;
    Model model = {0};
    const Arch *arch = arch_find(arch_name);
    if (!arch) return -1;
    if (dir_ensure(dir, err) != 0) return -1;
    if (vocab_build(&vocab, text, strlen(text), err) != 0) return -1;
    size_t n = strlen(dir) + 32;
    char *vpath = malloc(n), *mpath = malloc(n);
    int rc = -1;
    if (!vpath || !mpath) goto done;
    snprintf(vpath, n, "%s/vocab.json", dir);
    snprintf(mpath, n, "%s/model.safetensors", dir);
    if (vocab_save(&vocab, vpath, err) != 0) goto done;
    if (arch->config_set(&model, hyper, vocab.size, err) != 0 ||
        arch->init(&model, seed, err) != 0) {
        arch_free(&model);
        goto done;
    }
    ModelInfo info = {.steps = 0, .best_val_loss = log((double)vocab.size)};
    sha256_hex(text, strlen(text), info.corpus_sha256);
    rc = artefacts_save_model(mpath, &model, &info, err);
    arch_free(&model);
    if (rc == 0) {
        // An untrained model's curve: the loss of a uniform guess, twice.
        char log_text[512];
        double u = log((double)vocab.size);
        int len =
            snprintf(log_text, sizeof log_text,
                     "{\"step\": 0, \"train_loss\": %.6f, \"val_loss\": %.6f, \"lr\": 0.002, "
                     "\"tokens_per_s\": 0, \"elapsed_s\": 0}\n"
                     "{\"step\": 10, \"train_loss\": %.6f, \"val_loss\": %.6f, \"lr\": 0.002, "
                     "\"tokens_per_s\": 1000, \"elapsed_s\": 0.1}\n",
                     u, u, u, u);
        char *p = tu_write_file(dir, "train_log.jsonl", log_text, (size_t)len);
        rc = p ? 0 : -1;
        free(p);
    }
done:
    free(vpath);
    free(mpath);
    vocab_free(&vocab);
    return rc;
}

int tu_run(const char *cmd, char **out, char **err) {
    char *dir = tu_tmpdir();
    if (!dir) return -1;
    size_t n = strlen(cmd) + 2 * strlen(dir) + 64;
    char *full = malloc(n), *opath = malloc(strlen(dir) + 8), *epath = malloc(strlen(dir) + 8);
    int rc = -1;
    if (!full || !opath || !epath) goto done;
    sprintf(opath, "%s/out", dir);
    sprintf(epath, "%s/err", dir);
    snprintf(full, n, "( %s ) >'%s' 2>'%s' </dev/null", cmd, opath, epath);
    int status = system(full);
    if (status != -1 && WIFEXITED(status)) rc = WEXITSTATUS(status);
    if (out) {
        *out = tu_read_file(opath, NULL);
        if (!*out) *out = strdup("");
    }
    if (err) {
        *err = tu_read_file(epath, NULL);
        if (!*err) *err = strdup("");
    }
done:
    free(full);
    free(opath);
    free(epath);
    tu_rmtree(dir);
    free(dir);
    return rc;
}

const char *tu_bin(const char *name) {
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", CHARLM_BINARY_DIR, name);
    return path;
}

char *tu_sample_text(size_t n) {
    // Sentences of a few words from a small lexicon, chosen by an LCG: frequent words,
    // fixed spellings and punctuation give a model plenty to learn quickly.
    static const char *words[] = {"the", "cat", "sat", "on",  "a",   "mat", "and", "dog",
                                  "ran", "to",  "big", "red", "hat", "in",  "sun", "was"};
    char *text = malloc(n + 1);
    if (!text) return NULL;
    uint32_t state = 12345;
    size_t len = 0;
    int in_sentence = 0;
    while (len < n) {
        state = state * 1103515245u + 12345u;
        const char *w = words[(state >> 16) % 16];
        char piece[16];
        int plen;
        if (in_sentence >= 4 + (int)((state >> 24) % 4)) {
            plen = snprintf(piece, sizeof piece, ".%c", (state >> 20) % 3 == 0 ? '\n' : ' ');
            in_sentence = 0;
        } else {
            plen = snprintf(piece, sizeof piece, "%s%s", in_sentence ? " " : "", w);
            in_sentence++;
        }
        for (int i = 0; i < plen && len < n; i++) text[len++] = piece[i];
    }
    text[len] = '\0';
    return text;
}

const char *tu_fixture_meta(const StFile *f, const char *key) {
    const char *s = st_meta(f, key);
    ck_assert_msg(s != NULL, "fixture metadata '%s' missing", key);
    return s;
}

long tu_fixture_long(const StFile *f, const char *key) {
    return strtol(tu_fixture_meta(f, key), NULL, 10);
}

float *tu_fixture_tensor(const StFile *f, const char *name, int ndim, const int64_t *shape) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    float *out = malloc(n * sizeof(float));
    ck_assert_ptr_nonnull(out);
    char err[ERR_LEN];
    ck_assert_msg(st_read(f, name, ndim, shape, out, err) == 0, "%s", err);
    return out;
}
