#include "corpus.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "fileio.h"
#include "utf8.h"

int corpus_load(Corpus *corpus, const char *path, Vocab *vocab, double val_frac, char *err) {
    memset(corpus, 0, sizeof(*corpus));
    char *text;
    size_t len;
    if (file_read_all(path, 0, &text, &len, err) != 0) return -1;
    long bad = utf8_find_invalid(text, len);
    if (bad >= 0) {
        free(text);
        return err_set(err, "%s: invalid UTF-8 at byte offset %ld", path, bad);
    }
    if (len == 0) {
        free(text);
        return err_set(err, "%s: the file is empty", path);
    }
    if (vocab->size == 0 && vocab_build(vocab, text, len, err) != 0) {
        free(text);
        return -1;
    }
    size_t n = utf8_count(text, len);
    corpus->ids = malloc(n * sizeof(int));
    if (!corpus->ids) {
        free(text);
        return err_set(err, "%s: out of memory for %zu characters", path, n);
    }
    const unsigned char *s = (const unsigned char *)text;
    for (size_t pos = 0, i = 0; pos < len; i++) {
        uint32_t cp;
        pos += utf8_decode_one(s + pos, len - pos, &cp);
        corpus->ids[i] = vocab_id(vocab, cp);
    }
    corpus->n = n;
    corpus->n_train = n - (size_t)((double)n * val_frac);
    sha256_hex(text, len, corpus->sha256);
    free(text);
    return 0;
}

void corpus_free(Corpus *corpus) {
    free(corpus->ids);
    memset(corpus, 0, sizeof(*corpus));
}

size_t corpus_drop_unknown(Corpus *corpus) {
    size_t kept = 0, train = 0;
    for (size_t i = 0; i < corpus->n; i++) {
        if (corpus->ids[i] < 0) continue;
        corpus->ids[kept++] = corpus->ids[i];
        train += i < corpus->n_train;
    }
    size_t dropped = corpus->n - kept;
    corpus->n = kept;
    corpus->n_train = train;
    return dropped;
}

void corpus_batch(const Corpus *corpus, Rng *rng, int T, int B, int *inputs, int *targets) {
    uint64_t starts = corpus->n_train - (size_t)T; // windows of T+1 chars inside the split
    for (int b = 0; b < B; b++) {
        size_t at = rng_below(rng, starts);
        for (int t = 0; t < T; t++) {
            inputs[t * B + b] = corpus->ids[at + t];
            targets[t * B + b] = corpus->ids[at + t + 1];
        }
    }
}
