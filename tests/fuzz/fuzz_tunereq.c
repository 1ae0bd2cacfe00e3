// libFuzzer target: the body of POST /v1/fine_tuning/jobs for tunereq_parse
// (server/tunereq.c). Whatever is accepted is within the documented ranges, its strings are
// NUL-terminated within their arrays, and the suffix is folder-safe; a refusal has a
// message and names a field or the body.
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "tunereq.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) __builtin_trap();                                                                \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    TuneRequest r;
    char err[256];
    const char *param = "unset";
    if (tunereq_parse((const char *)data, size, &r, err, sizeof err, &param) != 0) {
        CHECK(err[0] && memchr(err, '\0', sizeof err));
        CHECK(param == NULL || param[0]);
        return 0;
    }
    CHECK(param == NULL);
    CHECK(r.training_file[0] && memchr(r.training_file, '\0', sizeof r.training_file));
    CHECK(memchr(r.validation_file, '\0', sizeof r.validation_file));
    CHECK(r.model[0] && memchr(r.model, '\0', sizeof r.model));
    CHECK(r.n_epochs == 0 || (r.n_epochs >= 1e-3 && r.n_epochs <= TUNEREQ_EPOCHS_MAX));
    CHECK(r.steps >= 0 && r.steps <= TUNEREQ_STEPS_MAX);
    CHECK(!(r.steps && r.n_epochs));
    CHECK(r.batch_size >= 0 && r.batch_size <= TUNEREQ_BATCH_MAX);
    CHECK(r.lr_mult == 0 || (r.lr_mult >= 1e-4 && r.lr_mult <= TUNEREQ_LR_MULT_MAX));
    CHECK(r.max_time == 0 || (r.max_time >= 1 && r.max_time <= TUNEREQ_TIME_MAX));
    CHECK(strlen(r.suffix) <= TUNEREQ_SUFFIX_MAX);
    for (const char *c = r.suffix; *c; c++)
        CHECK(strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", *c));
    CHECK(!r.has_seed || r.seed <= 2147483647u);
    return 0;
}
