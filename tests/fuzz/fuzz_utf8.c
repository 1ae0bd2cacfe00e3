// libFuzzer target: core/utf8.c. The three readers must agree with each other and with the
// encoder: decoding step by step stops exactly where utf8_find_invalid says, utf8_count
// counts the steps, and every decoded sequence is the one canonical encoding of its code
// point (so overlong forms, surrogates and values past U+10FFFF are never accepted). The
// copies made for replies and logs are valid UTF-8 from any bytes: utf8_sanitize keeps
// valid text as it is, utf8_escape leaves no control character; utf8_cut never splits one.
#include <stdint.h>
#include <string.h>

#include "utf8.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

static int cp_valid(uint32_t cp) {
    return cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint32_t cp = 0;
    CHECK(utf8_decode_one(data, 0, &cp) == 0);

    size_t i = 0, steps = 0;
    while (i < size) {
        int n = utf8_decode_one(data + i, size - i, &cp);
        if (n == 0) break;
        CHECK(n >= 1 && n <= 4 && (size_t)n <= size - i);
        CHECK(cp_valid(cp));
        char enc[4];
        CHECK(utf8_encode(cp, enc) == n);
        CHECK(memcmp(enc, data + i, (size_t)n) == 0);
        // A sequence cut short is never valid.
        uint32_t cp2;
        if (n > 1) CHECK(utf8_decode_one(data + i, (size_t)n - 1, &cp2) == 0);
        i += (size_t)n;
        steps++;
    }
    long bad = utf8_find_invalid((const char *)data, size);
    if (i < size) {
        CHECK(bad == (long)i);
    } else {
        CHECK(bad == -1);
        CHECK(utf8_count((const char *)data, size) == steps);
    }

    // Copies for a reply and a log line, into room that may cut them short.
    char out[256];
    size_t cap = size ? 1 + data[0] % sizeof(out) : 1;
    const char *s = (const char *)data;
    size_t used = utf8_sanitize(s, size, out, cap);
    CHECK(used <= size && strlen(out) < cap && utf8_find_invalid(out, strlen(out)) == -1);
    if (bad == -1 && !memchr(s, 0, size))
        CHECK(memcmp(out, s, strlen(out)) == 0 && strlen(out) == used);
    used = utf8_escape(s, size, out, cap);
    CHECK(used <= size && strlen(out) < cap && utf8_find_invalid(out, strlen(out)) == -1);
    for (const char *p = out; *p; p++) CHECK((unsigned char)*p >= 0x20 && *p != 0x7f);
    if (bad == -1) {
        size_t keep = utf8_cut(s, size, cap);
        CHECK(keep <= size && keep <= cap && utf8_find_invalid(s, keep) == -1);
        CHECK(keep == size || keep + 4 > cap);
    }

    // The other direction: any valid code point survives encode + decode.
    if (size >= 4) {
        uint32_t want;
        memcpy(&want, data, 4);
        want %= 0x110000;
        if (cp_valid(want)) {
            char enc[4];
            int n = utf8_encode(want, enc);
            CHECK(utf8_decode_one((const unsigned char *)enc, (size_t)n, &cp) == n && cp == want);
        }
    }
    return 0;
}
