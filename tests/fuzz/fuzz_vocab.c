// libFuzzer target: vocab.json text for vocab_from_json (core/vocab.c). Whatever is
// accepted is a strictly ascending list of valid code points that survives vocab_to_json
// and back unchanged, and vocab_id inverts it. (vocab_build reads the trainer's corpus, not
// untrusted bytes, and walks a bitmap of all of Unicode per call: too slow to fuzz here.)
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "vocab.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

static void check_vocab(const Vocab *v) {
    CHECK(v->size > 0 && v->chars);
    for (int i = 0; i < v->size; i++) {
        uint32_t cp = v->chars[i];
        CHECK(cp > 0 && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF));
        CHECK(i == 0 || v->chars[i - 1] < cp);
        CHECK(vocab_id(v, cp) == i);
    }
    char *json = vocab_to_json(v);
    CHECK(json);
    Vocab back;
    char err[ERR_LEN];
    CHECK(vocab_from_json(&back, json, strlen(json), err) == 0);
    CHECK(back.size == v->size);
    CHECK(memcmp(back.chars, v->chars, (size_t)v->size * sizeof(uint32_t)) == 0);
    vocab_free(&back);
    free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Vocab v;
    char err[ERR_LEN];
    if (vocab_from_json(&v, (const char *)data, size, err) == 0) {
        check_vocab(&v);
        vocab_free(&v);
    } else {
        CHECK(err[0] && v.size == 0 && !v.chars);
    }
    return 0;
}
